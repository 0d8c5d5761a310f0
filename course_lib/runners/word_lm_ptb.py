"""Train the four word-level language models of ``word_lm_ptb`` on Penn Treebank (Zaremba et al.'s small setup).

The handout (CS5787 Exercises 2) trains LSTM and GRU language models, each with and without dropout,
in the setup of Zaremba, Sutskever and Vinyals, *Recurrent Neural Network Regularization* (2014),
"small": 2 layers of 200 units, embeddings of 200, batches of 20 streams, truncated backpropagation
through 20 steps, every parameter initialised U(-0.1, 0.1), SGD with learning rate 1, gradients clipped
to global norm 5. The notebook and the command line share this runner::

    from course_lib.runners import word_lm_ptb as wl
    result = wl.run("LSTM", model_class=WordLM, build_vocab=build_vocab, batchify=batchify,
                    get_batch=get_batch, train_step=train_step)
    result.history, result.best_dev_ppl, result.test_ppl
    results = {name: wl.run(name, ...) for name in wl.RUNS}
    wl.plot_curves(results);  wl.results_table(results)

    python -m course_lib.runners.word_lm_ptb --list                # the runs and their settings
    python -m course_lib.runners.word_lm_ptb --run LSTM            # one (reference code, instructors)
    python -m course_lib.runners.word_lm_ptb --all --scale laptop  # the four, on a 2-core CPU
    python -m course_lib.runners.word_lm_ptb --run "LSTM medium"   # the stretch goal (2 x 650), GPU

**The runs** (``RUNS``; ``EXTRA_RUNS`` holds the stretch goal). The schedules are the paper's: without
dropout its small setup (13 epochs, the learning rate halved after each epoch from the 5th); with
dropout its medium schedule (39 epochs, the learning rate divided by 1.2 after each epoch from the
7th) and the handout's dropout probability, 0.25, on the embedding output, between the layers and
before the decoder (the non-recurrent connections, as in the paper):

=================  =====  =======  ======  ==================
name               cell   dropout  epochs  decay
=================  =====  =======  ======  ==================
LSTM               lstm   0        13      x0.5 from epoch 5
GRU                gru    0        13      x0.5 from epoch 5
LSTM + dropout     lstm   0.25     39      /1.2 from epoch 7
GRU + dropout      gru    0.25     39      /1.2 from epoch 7
LSTM medium        lstm   0.5      39      /1.2 from epoch 7  (2 x 650; the paper: 86.2 validation)
=================  =====  =======  ======  ==================

Targets at full scale (on a GPU): LSTM without dropout at or below 125 validation perplexity
(handout 123.75, paper 120.7), LSTM with dropout at or below 103 (handout 102.66), the GRUs within a
few points of the LSTMs.

**Scales** (:func:`course_lib.device.scale`, ``--scale``; one code path for all three):

- ``full`` (the default with CUDA): the table above, on the whole training split.
- ``laptop`` (the default without CUDA): the same models, batches, initialisation and clipping, on
  the first ``LAPTOP["train_words"]`` = 100,000 words of the training split (the vocabulary is still
  the full split's 10,000 words; validation and test are whole), with the learning rates, epochs,
  schedule and dropout adapted to so little text (``LAPTOP``, ``LAPTOP_LR``, ``LAPTOP_DROPOUT``: 18
  epochs without dropout, 24 with; why, in the comments there). Without dropout the training
  perplexity pulls far below the validation perplexity (the gap the handout's section 5.4 discusses);
  dropout narrows the gap and gives the better validation perplexity, for both cells. The recorded run
  (``course_solutions/recorded/word_lm_ptb-laptop.json``; :func:`conclusions` checks what it shows)
  took about ``LAPTOP_MINUTES`` minutes of one CPU thread for the four models.
- ``fast`` (``COURSE_FAST=1``): a few thousand words and a small model, 2 epochs: seconds, to check
  that everything runs (not results).

Perplexities: training perplexity is measured during the epoch (dropout on, the model changing),
as the handout's plots do; validation and test perplexity run the whole split as one stream of 20
rows with the hidden state carried across batches (``exp`` of the mean NLL over every predicted
word). The test perplexity is that of the model of the best validation epoch.

Each run logs through :class:`course_lib.runlog.RunLog` (``<log_dir>/<scale>/<name>/``): a run
stopped midway resumes at its last finished epoch, and a finished run is read back, not trained
again, unless its settings or the code of the model or of the passed functions changed.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from torch import nn

from .. import ptb
from .. import train as train_lib
from ..device import SCALES, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..files import atomic_torch_save
from ..runlog import RunLog, code_fingerprint, epoch_memory, model_fingerprint, now, sync
from ..train import perplexity
from . import EpochHistory, json_safe, run_folder, runs_dir, with_references

__all__ = ["Config", "RunResult", "RUNS", "EXTRA_RUNS", "LAPTOP", "FAST", "config_for", "run", "run_all",
           "plot_curves", "results_table", "conclusions", "default_log_dir", "main"]

ASSIGNMENT = "word_lm_ptb"
LOG_FORMAT = 1

#: What the ``laptop`` scale changes: a 100,000-word slice of the training split, 18 epochs, the
#: learning rate halved after each epoch from the 13th, a higher learning rate for the LSTMs
#: (``LAPTOP_LR``); the dropout runs get dropout 0.5 (the paper's medium setting) and, as at the full
#: scale, more epochs and a later decay (``LAPTOP_DROPOUT``). Measured: at learning rate 1 an LSTM spends
#: most of a laptop's budget on the unigram plateau (validation perplexity about 700 after 1,000 steps),
#: so the LSTMs get 4; the GRUs diverged at 2 and at 4 and keep 1 (the handout, too, needed higher
#: rates for its LSTMs than for its GRUs: its section 5.4.2). On 100,000 words dropout 0.25 regularises
#: too little to show the handout's point, and with dropout 0.5 the GRU had not caught up with the
#: GRU without dropout after the same 18 epochs (298.8 against 295.8): regularised models need longer.
LAPTOP = {"train_words": 100_000, "epochs": 18, "lr_decay": 0.5, "decay_from": 13}
LAPTOP_LR = {"lstm": 4.0, "gru": 1.0}
LAPTOP_DROPOUT = {"dropout": 0.5, "epochs": 24, "decay_from": 19}
LAPTOP_MINUTES = 45  # 84 epochs of 31-33 s on one free CPU thread (the recording, on a shared CPU, took longer)
#: What the ``fast`` scale changes: slices of every split, a small model, 2 epochs.
FAST = {"train_words": 6_000, "dev_words": 2_000, "test_words": 2_000, "epochs": 2,
        "embedding_size": 32, "hidden_size": 32}


@dataclass(frozen=True)
class Config:
    """One run: the model, the optimisation and the data slice (``None``: the whole split)."""

    name: str = "LSTM"
    rnn_type: str = "lstm"  # lstm | gru
    dropout: float = 0.0
    num_layers: int = 2
    embedding_size: int = 200
    hidden_size: int = 200
    batch_size: int = 20
    bptt: int = 20
    init_range: float = 0.1
    lr: float = 1.0
    lr_decay: float = 0.5  # multiply the learning rate by this after each epoch from decay_from on
    decay_from: int = 5  # the first epoch with a decayed learning rate
    epochs: int = 13
    max_norm: float = 5.0
    seed: int = 1234
    train_words: int | None = None
    dev_words: int | None = None
    test_words: int | None = None
    scale: str = "full"
    device: str = "auto"

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (1-based) ``epoch``: ``lr * lr_decay ** max(0, epoch - decay_from + 1)``."""
        return self.lr * self.lr_decay ** max(0, epoch - self.decay_from + 1)

    def fingerprint(self) -> dict:
        """The settings that decide what the run computes (not where it runs)."""
        fields = dataclasses.asdict(self)
        fields.pop("device")
        return fields

    @property
    def label(self) -> str:
        return self.name if self.scale == "full" else f"{self.name} [{self.scale}]"


_NO_DROPOUT = {"dropout": 0.0, "epochs": 13, "lr_decay": 0.5, "decay_from": 5}
_DROPOUT = {"dropout": 0.25, "epochs": 39, "lr_decay": 1 / 1.2, "decay_from": 7}
#: The handout's four models, at full scale.
RUNS: dict[str, Config] = {
    "LSTM": Config("LSTM", "lstm", **_NO_DROPOUT),
    "GRU": Config("GRU", "gru", **_NO_DROPOUT),
    "LSTM + dropout": Config("LSTM + dropout", "lstm", **_DROPOUT),
    "GRU + dropout": Config("GRU + dropout", "gru", **_DROPOUT),
}
#: The stretch goal: the paper's medium LSTM (2 x 650, dropout 0.5; 82.7 test, 86.2 validation there).
EXTRA_RUNS: dict[str, Config] = {
    "LSTM medium": Config("LSTM medium", "lstm", embedding_size=650, hidden_size=650, **{**_DROPOUT, "dropout": 0.5}),
}


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
        changes.update(LAPTOP, lr=LAPTOP_LR[config.rnn_type])
        if config.dropout > 0:
            changes.update(LAPTOP_DROPOUT)
    elif scale == "fast":
        changes.update(FAST, decay_from=2)
    return dataclasses.replace(config, **changes)


@dataclass
class RunResult(EpochHistory):
    """A finished run: ``history`` has one row per epoch (``epoch``, ``lr``, ``train_ppl``,
    ``dev_ppl``, ``seconds``, ``tokens_per_s``, ...); the best epoch is the lowest ``dev_ppl``."""

    BEST_BY = "dev_ppl"

    config: Config
    history: pd.DataFrame
    test_ppl: float
    num_parameters: int
    log_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def best_dev_ppl(self) -> float:
        return float(self._best()["dev_ppl"])

    @property
    def train_ppl(self) -> float:
        """Training perplexity of the best epoch."""
        return float(self._best()["train_ppl"])

    @property
    def tokens_per_s(self) -> float:
        """Training throughput over the run (words per second, evaluation excluded)."""
        return float(self.history["train_tokens"].sum() / self.history["train_seconds"].sum())


# ---------------------------------------------------------------------------------------------------
# data


def default_log_dir() -> Path:
    """``COURSE_RUNS_DIR`` or ``./runs``, then ``word_lm_ptb``."""
    return runs_dir(ASSIGNMENT)


def _run_dir(config: Config, log_dir: str | os.PathLike | None) -> Path:
    return Path(log_dir) if log_dir is not None else run_folder(default_log_dir(), config.scale, config.name)


def _streams(config: Config, build_vocab: Callable, batchify: Callable, device: torch.device, root=None):
    """(vocabulary size, train, dev, test): each split encoded with the vocabulary of the whole
    training split and batchified into ``batch_size`` rows, on ``device``."""
    words = {split: ptb.read_words(split, root) for split in ptb.SPLITS}
    vocab = build_vocab(words["train"])
    limits = {"train": config.train_words, "valid": config.dev_words, "test": config.test_words}
    data = {}
    for split, ws in words.items():
        ws = ws[: limits[split]] if limits[split] is not None else ws
        try:
            ids = torch.tensor([vocab[w] for w in ws], dtype=torch.long)
        except KeyError as exc:
            raise ValueError(f"build_vocab left out the word {exc.args[0]!r} of the {split} split: the vocabulary "
                             "must hold every word of the training split (and PTB's valid and test words are all in it)"
                             ) from None
        batched = batchify(ids, config.batch_size)
        if not isinstance(batched, torch.Tensor) or batched.dim() != 2 or batched.size(0) != config.batch_size:
            raise ValueError(f"batchify(ids, {config.batch_size}) must return a ({config.batch_size}, L) tensor, "
                             f"got {getattr(batched, 'shape', type(batched).__name__)}")
        data[split] = batched.to(device)
    return len(vocab), data["train"], data["valid"], data["test"]


def _batches(data: torch.Tensor, get_batch: Callable, bptt: int):
    """The truncated-backpropagation batches of one pass over ``data`` (B, L): dicts of ``inputs``
    and ``targets`` (B, T)."""
    for i in range(0, data.size(1) - 1, bptt):
        inputs, targets = get_batch(data, i, bptt)
        yield {"inputs": inputs, "targets": targets}


def _num_batches(data: torch.Tensor, bptt: int) -> int:
    return math.ceil((data.size(1) - 1) / bptt)


def evaluate(model: nn.Module, data: torch.Tensor, get_batch: Callable, bptt: int, batch_size: int) -> float:
    """Mean NLL per predicted word over one pass of ``data`` (B, L), the hidden state carried from
    batch to batch (eval mode, no gradients; :func:`course_lib.train.evaluate`)."""
    state = {"hidden": model.init_hidden(batch_size)}

    def token_nll(batch):
        logits, state["hidden"] = model(batch["inputs"], state["hidden"])
        return train_lib.token_losses(logits.float(), batch["targets"])

    def with_mask(batches):
        for b in batches:
            yield {**b, "mask": torch.ones_like(b["targets"], dtype=torch.float32)}

    loss, _ = train_lib.evaluate(model, with_mask(_batches(data, get_batch, bptt)), device=data.device,
                                 token_nll=token_nll, acc_dtype=torch.float64)
    return loss


# ---------------------------------------------------------------------------------------------------
# training


def _functions(model_class, build_vocab, batchify, get_batch, train_step) -> dict:
    """The five pieces a run uses: the ones passed, the references (instructors) for the others."""
    return with_references({"model_class": model_class, "build_vocab": build_vocab, "batchify": batchify,
                            "get_batch": get_batch, "train_step": train_step}, {"model_class": "WordLM"})


def run(
    name: str | Config,
    *,
    model_class: type | None = None,
    build_vocab: Callable | None = None,
    batchify: Callable | None = None,
    get_batch: Callable | None = None,
    train_step: Callable | None = None,
    scale: str | None = None,
    progress: bool = True,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = print,
    data_root: str | os.PathLike | None = None,
) -> RunResult:
    """Train (or resume, or read back) run ``name`` (a key of ``RUNS``/``EXTRA_RUNS``, or a Config).

    ``model_class(rnn_type, vocab_size, embedding_size, hidden_size, num_layers, dropout, init_range)``
    builds the model (with ``init_hidden(batch_size)`` and ``forward(inputs, hidden) -> (logits,
    hidden)``); ``build_vocab``, ``batchify``, ``get_batch`` and ``train_step`` are the notebook's
    functions. Those not given are the references of ``course_solutions`` (instructor material).
    ``log_dir``: this run's folder (default ``runs/word_lm_ptb/<scale>/<name>``); ``resume=False``
    moves earlier logs aside; ``log`` receives one line per epoch; ``data_root``: a folder with the
    ``ptb.*.txt`` files instead of the course data.
    """
    config = config_for(name, scale)
    fns = _functions(model_class, build_vocab, batchify, get_batch, train_step)
    say = log or (lambda *_: None)
    device = get_device(None if config.device in ("", "auto") else config.device)
    seed_everything(config.seed)
    vocab_size, train, dev, test = _streams(config, fns["build_vocab"], fns["batchify"], device, data_root)
    model = fns["model_class"](config.rnn_type, vocab_size, config.embedding_size, config.hidden_size,
                               config.num_layers, config.dropout, config.init_range).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    fingerprint = {**config.fingerprint(), "code": code_fingerprint(
        fns["build_vocab"], fns["batchify"], fns["get_batch"], fns["train_step"])}
    runlog = RunLog(_run_dir(config, log_dir), label=config.label, log_format=LOG_FORMAT, say=say)
    runlog.open(fingerprint, resume=resume)
    runlog.check_model(model)
    start_epoch, history = runlog.resume(model, optimizer, config.epochs)
    num_parameters = sum(p.numel() for p in model.parameters())
    runlog.write_meta({
        "runner": f"course_lib.runners.{ASSIGNMENT}", "config": dataclasses.asdict(config),
        "fingerprint": fingerprint, "model_fingerprint": model_fingerprint(model),
        "num_parameters": num_parameters, "vocabulary_size": vocab_size,
        "train_words": train.numel(), "dev_words": dev.numel(), "test_words": test.numel(),
        "device": str(device), "device_description": describe_device(device), "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "python_version": platform.python_version(),
        "platform": platform.platform(), "updated_at": now(),
    })
    if start_epoch < config.epochs:
        say(f"{config.label}: {config.rnn_type.upper()} {config.num_layers} x {config.hidden_size}, dropout "
            f"{config.dropout:g}, {num_parameters:,} parameters, on {device}; {train.numel():,} training words, "
            f"{config.epochs} epochs" + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))
        _train(config, model, optimizer, runlog, history, fns, (train, dev), device, progress=progress, say=say)
    # The test perplexity of the best validation epoch's weights.
    best_path = runlog.folder / "best.pt"
    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    test_loss = evaluate(model, test, fns["get_batch"], config.bptt, config.batch_size)
    frame = pd.DataFrame(history)
    result = RunResult(config=config, history=frame, test_ppl=perplexity(test_loss), num_parameters=num_parameters,
                       log_dir=runlog.folder, model=model.eval())
    say(f"{config.label}: best validation perplexity {result.best_dev_ppl:.2f} at epoch {result.best_epoch} "
        f"(train {result.train_ppl:.2f}), test {result.test_ppl:.2f}")
    return result


def _train(config: Config, model: nn.Module, optimizer, runlog: RunLog, history: list[dict], fns: dict,
           data, device: torch.device, *, progress: bool, say: Callable) -> None:
    """The remaining epochs: train with the notebook's ``train_step`` (hidden state carried across
    batches), evaluate, checkpoint, keep the best weights in ``best.pt``."""
    train, dev = data
    tqdm = None
    if progress:
        from tqdm.auto import tqdm
    best = min((row["dev_ppl"] for row in history), default=math.inf)
    for epoch in range(len(history) + 1, config.epochs + 1):
        lr = config.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        state = {"hidden": model.init_hidden(config.batch_size)}
        train_step = fns["train_step"]

        def update(batch, state=state, train_step=train_step):
            loss, state["hidden"] = train_step(model, optimizer, batch["inputs"], batch["targets"], state["hidden"],
                                               config.max_norm)
            loss = torch.as_tensor(loss)
            n = batch["targets"].numel()
            return loss, loss.detach() * n, n

        batches = _batches(train, fns["get_batch"], config.bptt)
        if tqdm:
            batches = tqdm(batches, total=_num_batches(train, config.bptt), desc=f"{config.label} epoch {epoch}",
                           leave=False, unit="batch")
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        totals = train_lib.run_updates(batches, update, device=device, acc_dtype=torch.float64,
                                       postfix=lambda t: {"ppl": f"{perplexity(t.token_nll()):.1f}"})
        sync(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        dev_loss = evaluate(model, dev, fns["get_batch"], config.bptt, config.batch_size)
        dev_seconds = time.perf_counter() - t1
        train_loss = totals.token_nll()
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_ppl": perplexity(train_loss),
               "dev_loss": dev_loss, "dev_ppl": perplexity(dev_loss), "train_tokens": totals.n_tokens,
               "train_seconds": train_seconds, "dev_seconds": dev_seconds, "seconds": train_seconds + dev_seconds,
               "tokens_per_s": totals.n_tokens / train_seconds if train_seconds > 0 else float("nan"),
               # CPU time of this process over the epoch (all its threads): on a CPU shared with other
               # work, a steadier measure of the cost than the wall clock
               "cpu_seconds": time.process_time() - c0,
               **epoch_memory(device), "finished_at": now()}
        history.append(json_safe(row))
        if row["dev_ppl"] < best:  # the best weights first, then the checkpoint and the log line
            best = row["dev_ppl"]
            atomic_torch_save(model.state_dict(), runlog.folder / "best.pt")
        runlog.save_epoch(history, model, optimizer)
        say(f"{config.label} epoch {epoch:2d}/{config.epochs}: lr {lr:.4g} | train ppl {row['train_ppl']:.2f} | "
            f"valid ppl {row['dev_ppl']:.2f} | {row['seconds']:.0f}s ({row['tokens_per_s']:,.0f} words/s)")


def run_all(names: Sequence[str] | None = None, **kwargs) -> dict[str, RunResult]:
    """:func:`run` for each name (default: the four of ``RUNS``), same keyword arguments."""
    return {name: run(name, **kwargs) for name in (names or RUNS)}


# ---------------------------------------------------------------------------------------------------
# what students see: curves, table, conclusions


def plot_curves(results: dict[str, RunResult]):
    """Training and validation perplexity per epoch, one panel per run (log scale; the dotted
    line marks the best validation epoch). Returns the figure."""
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False, sharey=True)
    axes = axes[0]
    for a, name in zip(axes, names, strict=True):
        h = results[name].history
        a.plot(h["epoch"], h["train_ppl"], "o-", ms=3, label="train")
        a.plot(h["epoch"], h["dev_ppl"], "s-", ms=3, label="validation")
        a.axvline(results[name].best_epoch, color="grey", lw=0.8, ls=":")
        a.set_yscale("log")
        a.set_title(name)
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
    axes[0].set_ylabel("perplexity")
    axes[0].legend()
    fig.tight_layout()
    return fig


def results_table(results: dict[str, RunResult]):
    """The handout's table: training, validation and test perplexity per model (at the best
    validation epoch), the best of each column in bold; also the train/validation gap."""
    rows = [{"Model": name, "Training perplexity": r.train_ppl, "Validation perplexity": r.best_dev_ppl,
             "Test perplexity": r.test_ppl, "Gap (validation - training)": r.best_dev_ppl - r.train_ppl,
             "Best epoch": r.best_epoch, "Minutes": r.seconds / 60} for name, r in results.items()]
    frame = pd.DataFrame(rows).set_index("Model")
    ppl = ["Training perplexity", "Validation perplexity", "Test perplexity"]

    def bold_min(column):
        return ["font-weight: bold" if v == column.min() else "" for v in column]

    return frame.style.format("{:.2f}", subset=ppl + ["Gap (validation - training)"]).format(
        "{:.1f}", subset=["Minutes"]).apply(bold_min, subset=ppl)


def conclusions(results: dict[str, dict | RunResult]) -> dict:
    """What the four runs show, as the handout's section 5.4 states it, each checked (``checks``):

    - ``<cell>: the gap grows without dropout``: without dropout, training perplexity pulls away from
      validation perplexity: their ratio at the last epoch is above 1.5 and above its value a third of
      the way through (the model learns the training text faster than anything that generalises);
    - ``<cell>: dropout narrows the gap``: the validation / training ratio at the best epoch is
      smaller with dropout;
    - ``<cell>: dropout improves validation``: the best validation perplexity is lower with dropout.

    ``comparisons`` adds the GRU / LSTM ratios of the best validation perplexities (the handout found
    them within a few points of each other; at the laptop scale they also differ in learning rate).
    ``results`` maps the run names to RunResults or to recorded dicts with a ``history`` list.
    """
    def hist(r):
        return r.history if isinstance(r, RunResult) else pd.DataFrame(r["history"])

    def ratio(row):
        return float(row["dev_ppl"] / row["train_ppl"])

    out: dict = {}
    checks: dict[str, bool] = {}
    for cell in ("LSTM", "GRU"):
        plain, drop = hist(results[cell]), hist(results[f"{cell} + dropout"])
        b_plain, b_drop = plain.loc[plain["dev_ppl"].idxmin()], drop.loc[drop["dev_ppl"].idxmin()]
        third = plain.iloc[max(0, math.ceil(len(plain) / 3) - 1)]
        out[cell] = {"best_dev_ppl": float(b_plain["dev_ppl"]), "best_epoch": int(b_plain["epoch"]),
                     "ratio_at_best": ratio(b_plain), "ratio_at_third": ratio(third),
                     "ratio_at_end": ratio(plain.iloc[-1])}
        out[f"{cell} + dropout"] = {"best_dev_ppl": float(b_drop["dev_ppl"]), "best_epoch": int(b_drop["epoch"]),
                                    "ratio_at_best": ratio(b_drop)}
        checks[f"{cell}: the gap grows without dropout"] = bool(
            out[cell]["ratio_at_end"] > 1.5 and out[cell]["ratio_at_end"] > out[cell]["ratio_at_third"])
        checks[f"{cell}: dropout narrows the gap"] = out[f"{cell} + dropout"]["ratio_at_best"] < out[cell]["ratio_at_best"]
        checks[f"{cell}: dropout improves validation"] = (
            out[f"{cell} + dropout"]["best_dev_ppl"] < out[cell]["best_dev_ppl"])
    out["comparisons"] = {f"GRU / LSTM{s}": out[f"GRU{s}"]["best_dev_ppl"] / out[f"LSTM{s}"]["best_dev_ppl"]
                          for s in ("", " + dropout")}
    out["checks"] = checks
    return out


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.runners.word_lm_ptb",
        description="Train Zaremba et al.'s small LSTM / GRU language models on Penn Treebank with the reference "
                    "code (course_solutions, instructor material). Students run the notebook.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recording the laptop scale (instructors):\n"
               "  OMP_NUM_THREADS=1 python -m course_lib.runners.word_lm_ptb --all --scale laptop \\\n"
               "      --record course_solutions/recorded/word_lm_ptb-laptop.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", metavar="NAME", help=f"a run: {', '.join({**RUNS, **EXTRA_RUNS})}")
    which.add_argument("--all", action="store_true", help="the four runs of the handout")
    which.add_argument("--list", action="store_true", help="list the runs and their settings at this scale")
    parser.add_argument("--scale", choices=SCALES, help="fast, laptop or full (default: COURSE_SCALE, ...)")
    parser.add_argument("--fast", action="store_true", help="same as --scale fast")
    parser.add_argument("--log-dir", help="folder of the runs (default: runs/word_lm_ptb)")
    parser.add_argument("--no-resume", action="store_true", help="start over (earlier logs are moved aside)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    if args.record:
        record(results, args.record)
    return results


def record(results: dict[str, RunResult], path: str | os.PathLike) -> dict:
    """Write the runs (settings, per-epoch history, test perplexity, machine) and, for the four
    runs together, their :func:`conclusions` to ``path`` (JSON; instructor material)."""
    import json

    from ..files import atomic_write_text

    if not results:
        raise ValueError("record() needs at least one run")
    payload = {
        "assignment": ASSIGNMENT, "scale": next(iter(results.values())).config.scale,
        "recorded_at": now(), "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "device": describe_device(get_device()),
        "runs": {name: {"config": dataclasses.asdict(r.config), "history": r.history.to_dict("records"),
                        "best_epoch": r.best_epoch, "best_dev_ppl": r.best_dev_ppl, "train_ppl": r.train_ppl,
                        "test_ppl": r.test_ppl, "num_parameters": r.num_parameters, "minutes": r.seconds / 60,
                        "tokens_per_s": r.tokens_per_s}
                 for name, r in results.items()},
    }
    if set(RUNS) <= set(results):
        payload["conclusions"] = conclusions(results)
    atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1) + "\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
