"""Train a character-level language model on Tiny Shakespeare (hw3: RNN language models).

The command line and the notebook share this runner::

    python -m course_lib.runners.rnn_lm --model_type lstm --hidden_size 256 --epochs 16
    python -m course_lib.runners.rnn_lm --fast --record /tmp/run.json      # seconds, on a CPU

    from course_lib.runners.rnn_lm import Config, run
    result = run(Config(model_type="rnn"), model_factory=my_factory, loss_fn=my_mask_loss,
                 generate_fn=my_generate)
    result.history, result.samples, result.best_epoch, result.best_dev_ppl

Like the handout's ``run.py`` it prints the train and dev loss (and perplexity) of every epoch,
keeps the model with the best dev loss, and every ``generate_every`` epochs prints text generated
by the best model so far. The data (non-empty lines of Tiny Shakespeare; dev = the last 10 %)
and the seeds are fixed, so a run is reproducible on a given machine.

Fast mode (``--fast`` or ``COURSE_FAST=1``) keeps the first few hundred lines, 2 epochs and
samples every epoch, so a whole run takes seconds on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
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
from torch import nn

from ..data import fetch_text
from ..device import describe_device, fast_mode, get_device, seed_everything
from ..text import CharVocab, make_char_lm_data, make_loaders
from ..train import fit
from . import reference_layers
from . import json_safe

__all__ = ["Config", "RunResult", "build_parser", "default_model_factory", "run", "main",
           "FAST_MAX_LINES", "FAST_EPOCHS"]

MODEL_TYPES = ("rnn", "lstm", "ff")
FAST_MAX_LINES = 400
FAST_EPOCHS = 2
FAST_GENERATE_LEN = 80
AUTOGRADE_MAX_LINES = 96
AUTOGRADE_GENERATE_LEN = 40
DATASET = "tinyshakespeare"

_HELP = {
    "model_type": "rnn (Elman RNN), lstm, or ff (fixed-window feed-forward)",
    "hidden_size": "hidden layer / state size",
    "embedding_size": "character embedding size",
    "window_size": "context window of the feed-forward model (ff only)",
    "batch_size": "sequences (lines) per batch",
    "learning_rate": "Adam learning rate",
    "epochs": "training epochs",
    "temperature": "softmax temperature for generation (lower: more conservative)",
    "l2": "L2 regularisation coefficient (Adam weight decay)",
    "dropout": "dropout probability",
    "generate_every": "generate text from the best model every N epochs",
    "generate_len": "maximum number of characters to generate",
    "prefix": "text the generated samples start with",
    "seed": "random seed (initialisation, batch order, sampling)",
    "fast": "tiny run for checks: a few hundred lines, 2 epochs (also on with COURSE_FAST=1)",
    "device": "auto (cuda, then mps, then cpu), or a torch device such as cpu or cuda:0",
    "save_dir": "where the best checkpoint is saved ('' for nowhere)",
    "max_lines": "use only the first N non-empty lines of the text",
}


@dataclass
class Config:
    """Every hyperparameter of the handout's ``run.py`` (same flag names), plus run settings."""

    model_type: str = "rnn"  # rnn | lstm | ff
    hidden_size: int = 256
    embedding_size: int = 64
    window_size: int = 16  # ff only
    batch_size: int = 64
    learning_rate: float = 1e-3  # Adam
    epochs: int = 64
    temperature: float = 1.0  # softmax temperature for generation
    l2: float = 0.0  # weight decay
    dropout: float = 0.0
    generate_every: int = 4
    generate_len: int = 200
    prefix: str = ""
    seed: int = 1
    fast: bool = False
    device: str = "auto"
    save_dir: str = "checkpoints"
    max_lines: int | None = None

    def resolved(self) -> "Config":
        """A copy with fast mode applied (``fast`` also turns on with ``COURSE_FAST=1``)."""
        cfg = dataclasses.replace(self)
        if not cfg.fast and fast_mode():
            cfg.fast = True
        if cfg.fast:
            cfg.epochs = min(cfg.epochs, FAST_EPOCHS)
            cfg.max_lines = FAST_MAX_LINES if cfg.max_lines is None else min(cfg.max_lines, FAST_MAX_LINES)
            cfg.generate_every = 1
            cfg.generate_len = min(cfg.generate_len, FAST_GENERATE_LEN)
        if os.environ.get("COURSE_AUTOGRADE") == "1":
            # While an autograder re-runs a notebook, experiments are not graded (the written
            # answers are): the smallest run that still exercises the code keeps grading fast.
            cfg.fast = True
            cfg.epochs = min(cfg.epochs, 1)
            cfg.max_lines = min(cfg.max_lines or AUTOGRADE_MAX_LINES, AUTOGRADE_MAX_LINES)
            cfg.generate_every = 1
            cfg.generate_len = min(cfg.generate_len, AUTOGRADE_GENERATE_LEN)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        for name in ("hidden_size", "embedding_size", "window_size", "batch_size", "generate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.generate_len < 0:
            raise ValueError("epochs and generate_len must be >= 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})


def _optional_int(value: str) -> int | None:
    return None if value.lower() in ("", "none") else int(value)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags: one per :class:`Config` field, plus ``--record`` and ``--note``."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.runners.rnn_lm",
        description="Train a character-level language model on Tiny Shakespeare.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in dataclasses.fields(Config):
        flag = f"--{f.name}"
        if f.name == "fast":
            parser.add_argument(flag, action="store_true", help=_HELP[f.name])
        elif f.name == "max_lines":
            parser.add_argument(flag, type=_optional_int, default=None, help=_HELP[f.name])
        elif f.name == "model_type":
            parser.add_argument(flag, choices=MODEL_TYPES, default=f.default, help=_HELP[f.name])
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=_HELP[f.name])
    parser.add_argument("--record", metavar="PATH", default=None,
                        help="write the run (config, history, samples, timings) as JSON to PATH")
    parser.add_argument("--note", default=None, help="a note stored in the --record JSON")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="tqdm progress bars (on stderr)")
    return parser


def default_model_factory(config: Config, vocab: CharVocab) -> nn.Module:
    """The reference models of :mod:`course_solutions.layers` for ``config.model_type``."""
    layers = reference_layers()
    if config.model_type == "ff":
        return layers.FeedforwardLanguageModel(
            len(vocab), config.embedding_size, config.hidden_size, config.window_size,
            pad_id=vocab.pad_id, dropout=config.dropout,
        )
    return layers.RNNLanguageModel(
        len(vocab), config.embedding_size, config.hidden_size, cell=config.model_type,
        pad_id=vocab.pad_id, dropout=config.dropout,
    )



@dataclass
class RunResult:
    """What :func:`run` returns. ``history`` is the :class:`course_lib.train.History` DataFrame
    (epoch, train_loss, train_ppl, dev_loss, dev_ppl, seconds, is_best); ``samples`` a DataFrame
    with columns ``epoch`` (when it was generated), ``model_epoch`` (the best epoch so far, whose
    weights generated it) and ``text``. ``model`` holds the best weights."""

    config: Config
    history: pd.DataFrame
    samples: pd.DataFrame
    best_epoch: int | None
    best_dev_ppl: float
    seconds: float
    device: str
    model: nn.Module | None = field(default=None, repr=False)
    vocab: CharVocab | None = field(default=None, repr=False)
    num_parameters: int | None = None
    device_description: str | None = None
    note: str | None = None

    @property
    def best_dev_loss(self) -> float:
        return math.log(self.best_dev_ppl) if self.best_dev_ppl > 0 else float("nan")

    def to_json(self) -> dict:
        """A JSON-ready dict: config, history records, samples, best epoch/ppl, timings, machine."""
        device_type = torch.device(self.device).type
        hist = pd.DataFrame(self.history)
        data = {
            "runner": "course_lib.runners.rnn_lm",
            "dataset": DATASET,
            "config": dataclasses.asdict(self.config),
            "best_epoch": self.best_epoch,
            "best_dev_ppl": self.best_dev_ppl,
            "best_dev_loss": self.best_dev_loss,
            "epochs_run": int(len(hist)),
            "seconds": self.seconds,
            "seconds_per_epoch": (float(hist["seconds"].mean()) if len(hist) else None),
            "device": self.device,
            "device_type": device_type,
            "device_description": self.device_description,
            "cpu_run": device_type == "cpu",
            "torch_threads": torch.get_num_threads(),
            "num_parameters": self.num_parameters,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "note": self.note,
            "history": hist.to_dict(orient="records"),
            "samples": pd.DataFrame(self.samples).to_dict(orient="records"),
        }
        return json_safe(data)

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def run(
    config: Config,
    *,
    model_factory: Callable[[Config, CharVocab], nn.Module] | None = None,
    loss_fn: Callable | None = None,
    generate_fn: Callable | None = None,
    progress: bool = True,
    log: Callable[[str], object] | None = print,
    text: str | None = None,
) -> RunResult:
    """Train and evaluate one configuration; return a :class:`RunResult`.

    ``model_factory(config, vocab)`` builds the model (default: :func:`default_model_factory`),
    ``loss_fn(losses, mask)`` is the training loss (default: :func:`course_solutions.layers.mask_loss`),
    ``generate_fn(model, vocab, prefix, max_len, temperature, generator)`` samples text (default:
    :func:`course_solutions.layers.generate`). The notebook passes the student's versions. ``log``
    receives the per-epoch lines and samples (``None`` for silence); ``text`` replaces Tiny
    Shakespeare (for tests).
    """
    config = config.resolved()
    model_factory = model_factory or default_model_factory
    loss_fn = loss_fn or reference_layers().mask_loss
    generate_fn = generate_fn or reference_layers().generate
    say = log or (lambda *_: None)

    t0 = time.perf_counter()
    # "auto" defers to COURSE_DEVICE, then cuda > mps > cpu
    device = get_device(None if config.device in ("", "auto") else config.device)
    seed_everything(config.seed)
    if text is None:
        text = fetch_text(DATASET)
    vocab, train_ds, dev_ds = make_char_lm_data(text, dev_fraction=0.1, max_lines=config.max_lines)
    train_loader, dev_loader = make_loaders(
        train_ds, dev_ds, config.batch_size, pad_id=vocab.pad_id, shuffle_seed=config.seed
    )
    model = model_factory(config, vocab).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.l2)
    sample_gen = torch.Generator().manual_seed(config.seed)  # CPU: generate() samples on the CPU

    say(
        f"{config.model_type} language model, {n_params:,} parameters, on {device}; "
        f"{len(train_ds):,} train / {len(dev_ds):,} dev lines, vocabulary {len(vocab)}"
        + (" [fast mode]" if config.fast else "")
    )
    samples: list[dict] = []
    best = {"epoch": None}

    def callback(epoch: int, best_model: nn.Module, row: dict):
        if row["is_best"]:
            best["epoch"] = epoch
        say(
            f"Epoch {epoch:3d}: train loss {row['train_loss']:.4f} (ppl {row['train_ppl']:.3f}) | "
            f"dev loss {row['dev_loss']:.4f} (ppl {row['dev_ppl']:.3f}) | {row['seconds']:.1f}s"
            + ("  *best*" if row["is_best"] else "")
        )
        if epoch % config.generate_every == 0 or epoch == config.epochs:
            sample = generate_fn(
                best_model, vocab, prefix=config.prefix, max_len=config.generate_len,
                temperature=config.temperature, generator=sample_gen,
            )
            samples.append({"epoch": epoch, "model_epoch": best["epoch"], "text": sample})
            say(f"--- generated after epoch {epoch} (best model: epoch {best['epoch']}) ---\n{sample}\n---")
            return sample
        return None

    checkpoint = None
    if config.save_dir:
        checkpoint = Path(config.save_dir) / f"rnn_lm_{config.model_type}_seed{config.seed}.pt"
    history = fit(
        model, train_loader, dev_loader,
        optimizer=optimizer, epochs=config.epochs, loss_fn=loss_fn, device=device,
        callback=callback, callback_model="best", checkpoint_path=checkpoint,
        progress=progress, desc=f"{config.model_type} LM",
    )
    seconds = time.perf_counter() - t0
    best_epoch = history.best_epoch if len(history) else None
    best_ppl = history.best_dev_ppl if len(history) else float("nan")
    if best_epoch is not None:
        say(f"Best epoch {best_epoch}: dev perplexity {best_ppl:.3f} ({seconds:.0f}s in all)")
    return RunResult(
        config=config,
        history=history,
        samples=pd.DataFrame(samples, columns=["epoch", "model_epoch", "text"]),
        best_epoch=best_epoch,
        best_dev_ppl=best_ppl,
        seconds=seconds,
        device=str(device),
        model=model,
        vocab=vocab,
        num_parameters=n_params,
        device_description=describe_device(device),
    )


def main(argv: Sequence[str] | None = None) -> RunResult:
    """Command-line entry point; ``--record PATH`` writes :meth:`RunResult.to_json` to PATH."""
    args = build_parser().parse_args(argv)
    config = Config.from_args(args)
    result = run(config, progress=args.progress, log=lambda s: print(s, flush=True))
    result.note = args.note
    if args.record:
        path = result.save_json(args.record)
        print(f"recorded {path}", flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
