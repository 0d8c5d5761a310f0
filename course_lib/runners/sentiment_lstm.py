"""Train the LSTM sentiment classifier of ``sentiment_and_gpt2`` (part 2) on the IMDB reviews.

The handout (ECE661 HW3, lab 1) classifies movie reviews as positive or negative: a vocabulary of the
training reviews (``build_vocab``: lower case, punctuation stripped, stop words removed, words seen
at least ``min_freq`` times; ``"<pad>"`` 0, ``"<unk>"`` 1), ``tokenize``, a ``Dataset`` truncating
each review to ``max_length`` tokens, a ``collate`` function that pads a batch and returns the
lengths, and an LSTM over the packed sequences whose final hidden state (both directions
concatenated when bidirectional) is classified by a linear layer. The notebook and the command
line share this runner::

    from course_lib.runners import sentiment_lstm as sl
    result = sl.run("LSTM", build_vocab=build_vocab, tokenize=tokenize, dataset_class=IMDB,
                    collate=collate, model_class=LSTM)
    result.history                      # per epoch: train/valid loss and accuracy
    result.test_acc, result.confusion   # the best-validation-loss model on the test split
    result.predict("A wonderful, moving film.")        # ('positive', 0.97...)
    sl.plot_history(result);  sl.history_table(result);  sl.confusion_table(result)

    python -m course_lib.runners.sentiment_lstm --list                  # the runs and their settings
    python -m course_lib.runners.sentiment_lstm --run LSTM --scale laptop
    python -m course_lib.runners.sentiment_lstm --run LSTM --review "What a waste of two hours."

**Data** (:mod:`course_lib.imdb`): the 50,000 labelled reviews, split as the handout's ``load_imdb``
splits them (``train_test_split`` twice with ``random_state=12``): 35,000 training, 5,000
validation and 10,000 test reviews.

**The runs.** ``LSTM`` is the handout's model (``FULL`` below): at most 256 tokens a review, words
seen at least 5 times, batches of 96, one layer of 100 units, no dropout, 5 epochs, seed 2,
cross-entropy over 2 classes, the learning rate warmed up linearly over the first 200 steps (the
starter's ``ConstantWithWarmup``), and the weights of the epoch with the lowest validation loss
tested; embeddings of 64 and Adam at 0.002. The handout prints its results but not its settings;
the values above are those of its starter's ``HyperParams`` except the embedding size and the
optimiser, where the starter has embeddings of 1 and SGD at 0.01 with momentum 0.9 (``STARTER``).
Measured on the laptop scale, those did not learn at all in two epochs (training loss 0.694 after
730 steps, validation accuracy 0.495), while the handout's run is at 0.835 validation accuracy
after two epochs; with Adam at 0.002 and embeddings of 64 the same slice of steps learns (0.77
validation accuracy after 600 steps on 19,200 reviews, where Adam at 0.001 had 0.62).
``BiLSTM`` (``EXTRA_RUNS``) is the same with a bidirectional LSTM.

**Scales** (:func:`course_lib.device.scale`, ``--scale``; one code path for all three):

- ``full`` (the default with CUDA): ``FULL``; the handout reports 87.3 % test accuracy. Measured on a
  CPU (the same computation; no GPU was at hand): 85.9 % test accuracy, best validation loss 0.363
  at epoch 4 (85.4 % validation accuracy, 86.4 % at epoch 5), training accuracy 0.946 at epoch 5
  (the handout's 0.940), 38 minutes with one thread on a shared CPU. ``BiLSTM`` is the first thing
  to try where the target matters.
- ``laptop`` (the default without CUDA): the same with each review cut to its first 128 tokens
  (``LAPTOP``), every split whole. Recorded (``course_solutions/recorded/sentiment_lstm-laptop.json``,
  reference code, one torch thread): 82.0 % test accuracy (best validation loss at epoch 3, 81.6 %
  validation accuracy; the validation loss turns up at epochs 4 and 5 while the training loss keeps
  falling, as in the handout); ``LAPTOP_MINUTES`` = 29.4 minutes of wall clock for the 5 epochs on a
  2-core CPU shared with other busy processes (load about 6), 14.5 minutes of CPU time of the whole
  process (``LAPTOP_CPU_MINUTES``): less on a laptop of its own.
- ``fast`` (``COURSE_FAST=1``): the 2,000-review subset (1,400 / 200 / 400), a small model,
  2 epochs: seconds, to check that everything runs (not results). While an autograder re-runs the
  notebook (:func:`course_lib.device.autograde_mode`) a run shrinks further, to 1 epoch on a
  slice of the subset.

Losses and accuracies: the training ones are measured during the epoch (the model changing),
averaged over reviews; validation and test ones over every review of the split, in eval mode.
Each epoch logs its wall-clock ``seconds`` and the process's ``cpu_seconds`` (the CPU time of every
thread: on a shared machine the wall clock also counts the other processes' turns).

Each run logs through :class:`course_lib.runlog.RunLog` (``<log_dir>/<scale>/<name>/``): a run
stopped midway resumes at its last finished epoch, and a finished run is read back, not trained
again, unless its settings or the code of the model or of the passed functions changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import imdb
from .. import train as train_lib
from ..device import SCALES, autograde_mode, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..files import atomic_torch_save, atomic_write_text
from ..runlog import RunLog, code_fingerprint, epoch_memory, model_fingerprint, now, read_json, sync
from . import EpochHistory, json_safe, reference_layers, run_folder, runs_dir, with_references

__all__ = ["Config", "RunResult", "RUNS", "EXTRA_RUNS", "FULL", "STARTER", "LAPTOP", "LAPTOP_MINUTES",
           "LAPTOP_CPU_MINUTES", "FAST", "AUTOGRADE", "TARGETS", "config_for", "run", "run_all", "evaluate", "predict", "plot_history", "plot_confusion", "history_table",
           "confusion_table", "results_table", "conclusions", "record", "default_log_dir", "main"]

ASSIGNMENT = "sentiment_lstm"
NOTEBOOK = "sentiment_and_gpt2"
LOG_FORMAT = 1

#: The ``full`` scale: the handout's starter's ``HyperParams`` (256 tokens, min_freq 5, batches of 96, one
#: layer of 100 units, no dropout, 5 epochs, seed 2, 200 warm-up steps) with 64-dimensional embeddings and
#: Adam at 0.002 instead of its embeddings of 1 and SGD at 0.01 with momentum 0.9 (``STARTER``), which were
#: measured not to learn in time (see the module docstring).
FULL = {"max_length": 256, "min_freq": 5, "batch_size": 96, "embedding_dim": 64, "hidden_dim": 100,
        "n_layers": 1, "dropout_rate": 0.0, "optimizer": "adam", "lr": 0.002, "momentum": 0.9,
        "weight_decay": 0.0, "warmup_steps": 200, "epochs": 5, "seed": 2}
#: What the starter's ``HyperParams`` have instead (``Config(**{**FULL, **STARTER})`` runs them).
STARTER = {"embedding_dim": 1, "optimizer": "sgd", "lr": 0.01}
#: What the ``laptop`` scale changes: reviews cut to their first 128 tokens (measured: see the module docstring).
LAPTOP = {"max_length": 128}
#: Minutes the recorded laptop run's 5 epochs took: wall clock with one torch thread on a 2-core CPU
#: shared with other busy processes (load about 6), and the CPU time of that one thread.
LAPTOP_MINUTES = 29.4
LAPTOP_CPU_MINUTES = 14.5
#: What the ``fast`` scale changes: the 2,000-review subset, short reviews, a small model, 2 epochs.
FAST = {"subset": True, "max_length": 64, "min_freq": 2, "batch_size": 32, "embedding_dim": 16,
        "hidden_dim": 32, "optimizer": "adam", "lr": 0.005, "warmup_steps": 0, "epochs": 2}
#: What an autograder's re-run changes on top of ``FAST``.
AUTOGRADE = {"train_reviews": 200, "valid_reviews": 100, "test_reviews": 100, "epochs": 1}
#: Test accuracy each scale must reach (the handout's 87.3 % at full scale; none at the fast scale).
TARGETS = {"full": 0.873, "laptop": 0.80}


@dataclass(frozen=True)
class Config:
    """One run: the data, the model and the optimisation (``*_reviews``: the first that many reviews
    of each split; ``None``: all)."""

    name: str = "LSTM"
    bidirectional: bool = False
    max_length: int = 256
    min_freq: int = 5
    batch_size: int = 96
    embedding_dim: int = 64
    hidden_dim: int = 100
    output_dim: int = 2
    n_layers: int = 1
    dropout_rate: float = 0.0
    optimizer: str = "adam"  # adam | sgd (with momentum)
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 200  # the learning rate rises linearly to lr over this many steps
    epochs: int = 5
    seed: int = 2
    subset: bool = False  # the 2,000-review subset instead of the 50,000 reviews
    train_reviews: int | None = None
    valid_reviews: int | None = None
    test_reviews: int | None = None
    scale: str = "full"
    device: str = "auto"

    def lr_at(self, step: int) -> float:
        """The learning rate of (1-based) optimizer step ``step``: ``lr * min(1, step / warmup_steps)``."""
        return self.lr * min(1.0, step / self.warmup_steps) if self.warmup_steps > 0 else self.lr

    def fingerprint(self) -> dict:
        """The settings that decide what the run computes (not where it runs)."""
        fields = dataclasses.asdict(self)
        fields.pop("device")
        return fields

    @property
    def label(self) -> str:
        return self.name if self.scale == "full" else f"{self.name} [{self.scale}]"


#: The handout's model, at full scale.
RUNS: dict[str, Config] = {"LSTM": Config("LSTM", **FULL)}
#: The bidirectional variant.
EXTRA_RUNS: dict[str, Config] = {"BiLSTM": Config("BiLSTM", bidirectional=True, **FULL)}


def config_for(name: str | Config, scale: str | None = None) -> Config:
    """The :class:`Config` of run ``name`` (or ``name`` itself) resolved at ``scale`` (default: the
    current :func:`course_lib.device.scale`)."""
    if isinstance(name, Config):
        config = name
    else:
        known = {**RUNS, **EXTRA_RUNS}
        if name not in known:
            raise ValueError(f"Unknown run {name!r}: choose one of {', '.join(map(repr, known))}.")
        config = known[name]
    scale = scale or current_scale()
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}: use one of {', '.join(SCALES)}.")
    changes: dict = {"scale": scale}
    if scale == "laptop":
        changes.update(LAPTOP)
    elif scale == "fast":
        changes.update(FAST)
        if autograde_mode():
            changes.update(AUTOGRADE)
    return dataclasses.replace(config, **changes)


@dataclass
class RunResult(EpochHistory):
    """A finished run: ``history`` has one row per epoch (``epoch``, ``train_loss``, ``train_acc``,
    ``valid_loss``, ``valid_acc``, ``seconds``, ...); the best epoch has the lowest ``valid_loss``,
    and its weights give ``test_loss``, ``test_acc`` and ``confusion`` (rows: actual negative,
    positive; columns: predicted negative, positive). ``example``: the prediction for the first
    test review (as the handout shows it)."""

    BEST_BY = "valid_loss"

    config: Config
    history: pd.DataFrame
    test_loss: float
    test_acc: float
    confusion: list[list[int]]
    num_parameters: int
    vocabulary_size: int
    example: dict
    log_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)
    vocab: dict | None = field(default=None, repr=False)
    tokenize: Callable | None = field(default=None, repr=False)

    @property
    def best_valid_loss(self) -> float:
        return float(self._best()["valid_loss"])

    @property
    def best_valid_acc(self) -> float:
        """Validation accuracy of the best (lowest validation loss) epoch."""
        return float(self._best()["valid_acc"])

    @property
    def reviews_per_s(self) -> float:
        """Training throughput over the run (reviews per second, evaluation excluded)."""
        return float(self.history["train_reviews"].sum() / self.history["train_seconds"].sum())

    def predict(self, text: str) -> tuple[str, float]:
        """:func:`predict` with this run's model, vocabulary, tokenize and ``max_length``."""
        return predict(self.model, self.vocab, text, tokenize=self.tokenize, max_length=self.config.max_length)


# ---------------------------------------------------------------------------------------------------
# data


def default_log_dir() -> Path:
    """``COURSE_RUNS_DIR`` or ``./runs``, then ``sentiment_lstm``."""
    return runs_dir(ASSIGNMENT)


def _run_dir(config: Config, log_dir: str | os.PathLike | None) -> Path:
    return Path(log_dir) if log_dir is not None else run_folder(default_log_dir(), config.scale, config.name)


def _splits(config: Config, data_path=None) -> dict[str, tuple[list[str], list[str]]]:
    """``{"train": (texts, labels), "valid": ..., "test": ...}``, each cut to the config's limit."""
    x_train, x_valid, x_test, y_train, y_valid, y_test = imdb.load_imdb(subset=config.subset, path=data_path)
    limits = {"train": config.train_reviews, "valid": config.valid_reviews, "test": config.test_reviews}
    out = {}
    for split, (x, y) in {"train": (x_train, y_train), "valid": (x_valid, y_valid), "test": (x_test, y_test)}.items():
        n = limits[split] if limits[split] is not None else len(x)
        out[split] = (x[:n], y[:n])
    return out


def _check_vocab(vocab) -> None:
    if not isinstance(vocab, dict):
        raise ValueError(f"build_vocab must return a dict word -> index, got {type(vocab).__name__}")
    for token, index in ((imdb.PAD_TOKEN, imdb.PAD_INDEX), (imdb.UNK_TOKEN, imdb.UNK_INDEX)):
        if vocab.get(token) != index:
            raise ValueError(f"build_vocab must map {token!r} to {index} (got {vocab.get(token)!r}): the padding "
                             f"and unknown-word indices are fixed ({imdb.PAD_TOKEN!r} {imdb.PAD_INDEX}, "
                             f"{imdb.UNK_TOKEN!r} {imdb.UNK_INDEX})")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError("build_vocab must number its words 0, 1, ..., len(vocab) - 1 without gaps or repeats")


def _loader(dataset, config: Config, collate: Callable, *, shuffle: bool, epoch: int = 0):
    """Batches of ``dataset`` through the notebook's ``collate`` (padding index ``PAD_INDEX``); a
    shuffled loader's order depends only on the seed and the epoch (so a resumed run sees the same).
    Every loader has its own generator: a DataLoader without one draws its base seed from the global
    RNG, which would shift the dropout masks of a resumed run."""
    generator = torch.Generator().manual_seed(config.seed * 1_000 + epoch)
    return torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle, generator=generator,
                                       collate_fn=functools.partial(collate, pad_index=imdb.PAD_INDEX))


def _check_batch(batch) -> None:
    if not isinstance(batch, dict) or not {"ids", "length", "label"} <= set(batch):
        raise ValueError("collate must return a dict with the keys 'ids', 'length' and 'label', got "
                         f"{sorted(batch) if isinstance(batch, dict) else type(batch).__name__}")


# ---------------------------------------------------------------------------------------------------
# evaluation and prediction


def evaluate(model: nn.Module, batches, device: torch.device) -> dict:
    """Mean cross-entropy and accuracy over every review of ``batches`` (eval mode, no gradients),
    and the confusion matrix ``[[TN, FP], [FN, TP]]`` (rows actual, columns predicted; class 1 is
    positive)."""
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    counts = torch.zeros(4, dtype=torch.long, device=device)
    with torch.no_grad():
        for batch in batches:
            _check_batch(batch)
            ids, label = batch["ids"].to(device), batch["label"].to(device)
            logits = model(ids, batch["length"])
            loss += F.cross_entropy(logits.double(), label, reduction="sum")
            counts += torch.bincount(label * 2 + logits.argmax(dim=1), minlength=4)
    n = int(counts.sum().item())
    confusion = counts.view(2, 2).tolist()
    return {"loss": float(loss.item()) / n if n else math.nan, "acc": (confusion[0][0] + confusion[1][1]) / n
            if n else math.nan, "confusion": confusion, "reviews": n}


def predict(model: nn.Module, vocab: dict, text: str, *, tokenize: Callable | None = None,
            max_length: int | None = None) -> tuple[str, float]:
    """The model's sentiment for ``text``: ``(label, probability)``, the label ``"positive"`` or
    ``"negative"`` and the softmax probability the model gives it. ``tokenize(vocab, text)`` is the
    notebook's (default: the reference); the tokens are cut to ``max_length`` if given."""
    if tokenize is None:
        tokenize = reference_layers().tokenize_review
    ids = list(tokenize(vocab, text))[:max_length]
    if not ids:
        raise ValueError(f"{text!r} has no words after tokenization: write a review with words in it.")
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids], dtype=torch.long, device=device), torch.tensor([len(ids)]))
        probs = torch.softmax(logits.double(), dim=-1)[0]
    k = int(probs.argmax())
    return imdb.LABELS[k], float(probs[k])


# ---------------------------------------------------------------------------------------------------
# training


def _functions(build_vocab, tokenize, dataset_class, collate, model_class) -> dict:
    """The five pieces a run uses: the ones passed, the references (instructors) for the others."""
    return with_references(
        {"build_vocab": build_vocab, "tokenize": tokenize, "dataset_class": dataset_class, "collate": collate,
         "model_class": model_class},
        {"build_vocab": "build_review_vocab", "tokenize": "tokenize_review", "dataset_class": "ReviewDataset",
         "collate": "collate_reviews", "model_class": "SentimentLSTM"})


def _code(fns: dict) -> str:
    cls = fns["dataset_class"]
    methods = [getattr(cls, m) for m in ("__init__", "__getitem__", "__len__") if m in vars(cls)]
    return code_fingerprint(fns["build_vocab"], fns["tokenize"], fns["collate"], *methods)


def _optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}: use 'sgd' or 'adam'.")


def run(
    name: str | Config = "LSTM",
    *,
    build_vocab: Callable | None = None,
    tokenize: Callable | None = None,
    dataset_class: type | None = None,
    collate: Callable | None = None,
    model_class: type | None = None,
    scale: str | None = None,
    progress: bool = True,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = print,
    data_path: str | os.PathLike | None = None,
) -> RunResult:
    """Train (or resume, or read back) run ``name`` (a key of ``RUNS``/``EXTRA_RUNS``, or a Config).

    The notebook's pieces: ``build_vocab(texts, min_freq) -> dict``, ``tokenize(vocab, text) -> list``,
    ``dataset_class(x, y, vocab, max_length)`` (items ``{"ids", "length", "label"}``),
    ``collate(batch, pad_index) -> {"ids", "length", "label"}`` and ``model_class(vocab_size,
    embedding_dim, hidden_dim, output_dim, n_layers, dropout_rate, pad_index, bidirectional)`` with
    ``forward(ids, length) -> logits``. Those not given are the references of ``course_solutions``
    (instructor material). ``log_dir``: this run's folder (default
    ``runs/sentiment_lstm/<scale>/<name>``); ``resume=False`` moves earlier logs aside; ``log``
    receives one line per epoch; ``data_path``: another aclImdb tarball (or subset CSV).
    """
    config = config_for(name, scale)
    fns = _functions(build_vocab, tokenize, dataset_class, collate, model_class)
    say = log or (lambda *_: None)
    device = get_device(None if config.device in ("", "auto") else config.device)
    seed_everything(config.seed)
    splits = _splits(config, data_path)
    vocab = fns["build_vocab"](splits["train"][0], config.min_freq)
    _check_vocab(vocab)
    datasets = {split: fns["dataset_class"](x, y, vocab, config.max_length) for split, (x, y) in splits.items()}
    model = fns["model_class"](len(vocab), config.embedding_dim, config.hidden_dim, config.output_dim,
                               config.n_layers, config.dropout_rate, imdb.PAD_INDEX, config.bidirectional).to(device)
    optimizer = _optimizer(config, model)
    fingerprint = {**config.fingerprint(), "code": _code(fns)}
    runlog = RunLog(_run_dir(config, log_dir), label=config.label, log_format=LOG_FORMAT, say=say)
    runlog.open(fingerprint, resume=resume)
    runlog.check_model(model)
    start_epoch, history = runlog.resume(model, optimizer, config.epochs)
    num_parameters = sum(p.numel() for p in model.parameters())
    runlog.write_meta({
        "runner": f"course_lib.runners.{ASSIGNMENT}", "config": dataclasses.asdict(config),
        "fingerprint": fingerprint, "model_fingerprint": model_fingerprint(model),
        "num_parameters": num_parameters, "vocabulary_size": len(vocab),
        **{f"{split}_reviews": len(ds) for split, ds in datasets.items()},
        "device": str(device), "device_description": describe_device(device), "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "python_version": platform.python_version(),
        "platform": platform.platform(), "updated_at": now(),
    })
    if start_epoch < config.epochs:
        direction = "bidirectional " if config.bidirectional else ""
        say(f"{config.label}: {direction}LSTM {config.n_layers} x {config.hidden_dim}, embeddings {config.embedding_dim}, "
            f"{num_parameters:,} parameters, on {device}; {len(datasets['train']):,} training reviews of at most "
            f"{config.max_length} tokens, vocabulary {len(vocab):,}, {config.epochs} epochs"
            + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))
        _train(config, model, optimizer, runlog, history, fns, datasets, device, progress=progress, say=say)
    # The test split with the weights of the lowest validation loss (cached once computed).
    best_path, test_path = runlog.folder / "best.pt", runlog.folder / "test.json"
    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    frame = pd.DataFrame(history)
    best_epoch = int(frame.loc[frame["valid_loss"].idxmin(), "epoch"])
    test = read_json(test_path)
    if test is None or test.get("best_epoch") != best_epoch or test.get("epochs") != len(history):
        test = {**evaluate(model, _loader(datasets["test"], config, fns["collate"], shuffle=False), device),
                "best_epoch": best_epoch, "epochs": len(history)}
        atomic_write_text(test_path, json.dumps(json_safe(test), indent=1) + "\n")
    x0, y0 = splits["test"][0][0], splits["test"][1][0]
    label, probability = predict(model, vocab, x0, tokenize=fns["tokenize"], max_length=config.max_length)
    example = {"review": x0, "actual": y0, "predicted": label, "probability": probability}
    result = RunResult(config=config, history=frame, test_loss=test["loss"], test_acc=test["acc"],
                       confusion=test["confusion"], num_parameters=num_parameters, vocabulary_size=len(vocab),
                       example=example, log_dir=runlog.folder, model=model.eval(), vocab=vocab,
                       tokenize=fns["tokenize"])
    say(f"{config.label}: best validation loss {result.best_valid_loss:.3f} at epoch {result.best_epoch} "
        f"(accuracy {result.best_valid_acc:.3f}); test loss {result.test_loss:.3f}, test accuracy {result.test_acc:.3f}")
    return result


def _train(config: Config, model: nn.Module, optimizer, runlog: RunLog, history: list[dict], fns: dict,
           datasets: dict, device: torch.device, *, progress: bool, say: Callable) -> None:
    """The remaining epochs: train (cross-entropy, the learning rate warmed up per step), evaluate on
    the validation split, checkpoint, keep the lowest-validation-loss weights in ``best.pt``."""
    tqdm = None
    if progress:
        from tqdm.auto import tqdm
    best = min((row["valid_loss"] for row in history), default=math.inf)
    steps_per_epoch = math.ceil(len(datasets["train"]) / config.batch_size)
    valid_batches = list(_loader(datasets["valid"], config, fns["collate"], shuffle=False))
    _check_batch(valid_batches[0])
    for epoch in range(len(history) + 1, config.epochs + 1):
        state = {"step": (epoch - 1) * steps_per_epoch, "correct": torch.zeros((), dtype=torch.long, device=device)}

        def update(batch, state=state):
            _check_batch(batch)
            state["step"] += 1
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(state["step"])
            logits = model(batch["ids"], batch["length"].cpu())
            loss = F.cross_entropy(logits, batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                state["correct"] += (logits.argmax(dim=1) == batch["label"]).sum()
            n = batch["label"].numel()
            return loss, loss.detach() * n, n

        batches = _loader(datasets["train"], config, fns["collate"], shuffle=True, epoch=epoch)
        if tqdm:
            batches = tqdm(batches, total=steps_per_epoch, desc=f"{config.label} epoch {epoch}", leave=False,
                           unit="batch")
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        totals = train_lib.run_updates(batches, update, device=device, acc_dtype=torch.float64,
                                       postfix=lambda t: {"loss": f"{t.token_nll():.3f}"})
        sync(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        valid = evaluate(model, valid_batches, device)
        valid_seconds = time.perf_counter() - t1
        n = totals.n_tokens
        row = {"epoch": epoch, "lr": config.lr_at(state["step"]), "train_loss": totals.token_nll(),
               "train_acc": int(state["correct"].item()) / n, "valid_loss": valid["loss"], "valid_acc": valid["acc"],
               "train_reviews": n, "train_seconds": train_seconds, "valid_seconds": valid_seconds,
               "seconds": train_seconds + valid_seconds, "cpu_seconds": time.process_time() - c0,
               "reviews_per_s": n / train_seconds if train_seconds > 0 else float("nan"),
               **epoch_memory(device), "finished_at": now()}
        history.append(json_safe(row))
        if row["valid_loss"] < best:  # the best weights first, then the checkpoint and the log line
            best = row["valid_loss"]
            atomic_torch_save(model.state_dict(), runlog.folder / "best.pt")
        runlog.save_epoch(history, model, optimizer)
        say(f"{config.label} epoch {epoch}/{config.epochs}: train loss {row['train_loss']:.3f}, acc "
            f"{row['train_acc']:.3f} | valid loss {row['valid_loss']:.3f}, acc {row['valid_acc']:.3f} | "
            f"{row['seconds']:.0f}s ({row['reviews_per_s']:,.0f} reviews/s)")


def run_all(names: Sequence[str] | None = None, **kwargs) -> dict[str, RunResult]:
    """:func:`run` for each name (default: ``RUNS``), same keyword arguments."""
    return {name: run(name, **kwargs) for name in (names or RUNS)}


# ---------------------------------------------------------------------------------------------------
# what students see: curves, tables, confusion matrix, conclusions


def plot_history(result: RunResult):
    """Loss (left) and accuracy (right) per epoch, training and validation; the dotted line marks
    the epoch of the lowest validation loss, whose weights are tested. Returns the figure."""
    import matplotlib.pyplot as plt

    h = result.history
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, title in ((left, "loss", "cross-entropy"), (right, "acc", "accuracy")):
        ax.plot(h["epoch"], h[f"train_{metric}"], "o-", ms=3, label="train")
        ax.plot(h["epoch"], h[f"valid_{metric}"], "s-", ms=3, label="validation")
        ax.axvline(result.best_epoch, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{result.name}: {title}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    right.axhline(result.test_acc, color="C2", lw=0.8, ls="--", label=f"test {result.test_acc:.3f}")
    left.legend()
    right.legend()
    fig.tight_layout()
    return fig


def plot_confusion(result: RunResult, ax=None):
    """The test confusion matrix as a heat map with the counts. Returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
    else:
        fig = ax.figure
    counts = torch.tensor(result.confusion, dtype=torch.float64)
    ax.imshow(counts.numpy(), cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{int(counts[i, j]):,}", ha="center", va="center",
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks([0, 1], [f"predicted\n{lab}" for lab in imdb.LABELS])
    ax.set_yticks([0, 1], [f"actual\n{lab}" for lab in imdb.LABELS])
    ax.set_title(f"{result.name}: test accuracy {result.test_acc:.3f}")
    fig.tight_layout()
    return fig


def history_table(result: RunResult) -> pd.DataFrame:
    """The handout's printout as a table: per epoch, training and validation loss and accuracy."""
    cols = {"train_loss": "train loss", "train_acc": "train accuracy", "valid_loss": "validation loss",
            "valid_acc": "validation accuracy", "seconds": "seconds"}
    return result.history.set_index("epoch")[list(cols)].rename(columns=cols)


def confusion_table(result: RunResult) -> pd.DataFrame:
    """The test confusion matrix: rows the actual label, columns the predicted one."""
    return pd.DataFrame(result.confusion, index=[f"actual {lab}" for lab in imdb.LABELS],
                        columns=[f"predicted {lab}" for lab in imdb.LABELS])


def results_table(results: dict[str, RunResult]) -> pd.DataFrame:
    """One row per run: the best epoch's validation loss and accuracy, test loss and accuracy, minutes."""
    rows = [{"Model": name, "Best epoch": r.best_epoch, "Validation loss": r.best_valid_loss,
             "Validation accuracy": r.best_valid_acc, "Test loss": r.test_loss, "Test accuracy": r.test_acc,
             "Parameters": r.num_parameters, "Minutes": r.seconds / 60} for name, r in results.items()]
    return pd.DataFrame(rows).set_index("Model")


def conclusions(result: RunResult | dict) -> dict:
    """What the run shows, as the handout's discussion of it states it, each checked:

    - ``reaches the target``: test accuracy at least ``TARGETS[scale]`` (87.3 % at full scale,
      80 % on a laptop; no target at the fast scale);
    - ``training loss falls every epoch``;
    - ``validation loss turns up``: the last epoch's validation loss is above the lowest one (the
      slight overfitting the handout sees at epoch 5) while the training loss kept falling;
    - ``test close to validation``: test accuracy within 2 points of the best epoch's validation accuracy;
    - ``example predicted correctly``: the first test review's predicted label is its actual one.

    ``result``: a RunResult or a recorded run (a dict with ``config``, ``history``, ``test_acc``, ``example``).
    """
    if isinstance(result, RunResult):
        h, scale, test_acc, example = result.history, result.config.scale, result.test_acc, result.example
    else:
        h, scale = pd.DataFrame(result["history"]), result["config"]["scale"]
        test_acc, example = float(result["test_acc"]), result["example"]
    best = h.loc[h["valid_loss"].idxmin()]
    train = h["train_loss"].tolist()
    out = {"test_acc": test_acc, "best_epoch": int(best["epoch"]), "best_valid_acc": float(best["valid_acc"]),
           "best_valid_loss": float(best["valid_loss"]), "final_valid_loss": float(h["valid_loss"].iloc[-1]),
           "target": TARGETS.get(scale)}
    checks = {}
    if scale in TARGETS:
        checks["reaches the target"] = test_acc >= TARGETS[scale]
    checks["training loss falls every epoch"] = all(b < a for a, b in itertools.pairwise(train))
    checks["validation loss turns up"] = bool(out["final_valid_loss"] > out["best_valid_loss"]
                                              and train[-1] < float(best["train_loss"]))
    checks["test close to validation"] = abs(test_acc - out["best_valid_acc"]) <= 0.02
    checks["example predicted correctly"] = example["predicted"] == example["actual"]
    out["checks"] = checks
    return out


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.runners.sentiment_lstm",
        description="Train the handout's LSTM sentiment classifier on IMDB with the reference code "
                    "(course_solutions, instructor material). Students run the notebook.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recording the laptop scale (instructors):\n"
               "  OMP_NUM_THREADS=1 python -m course_lib.runners.sentiment_lstm --run LSTM --scale laptop \\\n"
               "      --record course_solutions/recorded/sentiment_lstm-laptop.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", metavar="NAME", help=f"a run: {', '.join({**RUNS, **EXTRA_RUNS})}")
    which.add_argument("--all", action="store_true", help="the runs of RUNS (the handout's model)")
    which.add_argument("--list", action="store_true", help="list the runs and their settings at this scale")
    parser.add_argument("--scale", choices=SCALES, help="fast, laptop or full (default: COURSE_SCALE, ...)")
    parser.add_argument("--fast", action="store_true", help="same as --scale fast")
    parser.add_argument("--log-dir", help="folder of the runs (default: runs/sentiment_lstm)")
    parser.add_argument("--no-resume", action="store_true", help="start over (earlier logs are moved aside)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--review", action="append", metavar="TEXT", help="print each run's prediction for TEXT")
    parser.add_argument("--record", metavar="PATH", help="write the runs' histories, results and conclusions to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, RunResult]:
    args = build_parser().parse_args(argv)
    scale = "fast" if args.fast else args.scale
    if args.list:
        for name in {**RUNS, **EXTRA_RUNS}:
            print(config_for(name, scale))
        return {}
    names = args.run or list(RUNS)
    results = {}
    for name in names:
        kwargs = {}
        if args.log_dir:
            kwargs["log_dir"] = run_folder(args.log_dir, scale or current_scale(), name)
        results[name] = run(name, scale=scale, progress=not args.no_progress, resume=not args.no_resume, **kwargs)
        for text in args.review or []:
            label, probability = results[name].predict(text)
            print(f"{name}: {label} ({probability:.4f}): {text}")
    if args.record:
        record(results, args.record)
    return results


def record(results: dict[str, RunResult], path: str | os.PathLike) -> dict:
    """Write the runs (settings, per-epoch history, test results, the first test review's prediction,
    machine) and each run's :func:`conclusions` to ``path`` (JSON; instructor material)."""
    if not results:
        raise ValueError("record() needs at least one run")
    first = next(iter(results.values())).config
    scale_settings = {"full": {}, "laptop": LAPTOP, "fast": FAST}[first.scale]
    runs = {}
    for name, r in results.items():
        runs[name] = {"config": dataclasses.asdict(r.config), "history": r.history.to_dict("records"),
                      "best_epoch": r.best_epoch, "best_valid_loss": r.best_valid_loss,
                      "best_valid_acc": r.best_valid_acc, "test_loss": r.test_loss, "test_acc": r.test_acc,
                      "confusion": r.confusion, "example": r.example, "num_parameters": r.num_parameters,
                      "vocabulary_size": r.vocabulary_size, "minutes": r.seconds / 60,
                      "reviews_per_s": r.reviews_per_s}
        runs[name]["conclusions"] = conclusions(runs[name])
    payload = {
        "assignment": ASSIGNMENT, "notebook": NOTEBOOK, "scale": first.scale, "scale_settings": scale_settings,
        "recorded_at": now(), "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "device": describe_device(get_device()),
        "total_minutes": sum(r["minutes"] for r in runs.values()), "runs": runs,
    }
    atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1) + "\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
