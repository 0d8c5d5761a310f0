"""The ``gpt_attention`` runner's configurations: the handout's 12 experiments, the three scales'
adjustments and where each configuration's logs live (see :mod:`course_lib.runners.gpt_attention`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..device import SCALES, autograde_mode
from ..device import scale as current_scale
from ..runlog import read_jsonl

ASSIGNMENT = "gpt_attention"
DATASET = "wikitext-2"
MODELS = ("lstm", "gpt1")
OPTIMIZERS = ("adam", "adamw", "sgd", "momentum")
_ARCH_NAMES = {"lstm": "LSTM", "gpt1": "GPT"}
_OPT_NAMES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "momentum": "Momentum"}

FAST_EPOCHS = 3
FAST_BATCH_SIZE = 4
FAST_SEQUENCE_LENGTH = 32
FAST_TRAIN_SEQUENCES = 32
FAST_VALID_SEQUENCES = 8
FAST_SIZES = {"embedding_size": 64, "hidden_size": 64, "num_heads": 4}
#: What the ``laptop`` scale sets (never raising a value set lower): the architecture, optimizer and
#: all its settings stay; the model is narrower (128 wide, 4 heads), sequences are 64 tokens, the
#: data is the first 768 training and 64 validation windows (49,152 and 4,096 tokens), the
#: vocabulary keeps the 4,094 most frequent words of that training slice (the rest become one
#: ``<unk>``) and runs last 6 epochs.
LAPTOP = {"epochs": 6, "batch_size": 16, "sequence_length": 64, "max_train_sequences": 768,
          "max_valid_sequences": 64, "embedding_size": 128, "hidden_size": 128, "num_heads": 4,
          "max_vocabulary": 4096}
AUTOGRADE_TRAIN_SEQUENCES = 8
AUTOGRADE_VALID_SEQUENCES = 4

#: Where :func:`record_results` writes by default: the instructor package's ``recorded/`` folder
#: (never in the student distribution), where :func:`course_solutions.load_recorded` finds it.
RECORD_PATH = Path(__file__).resolve().parents[2] / "course_solutions" / "recorded" / f"{ASSIGNMENT}.json"
LOG_FORMAT = 1
# Config fields that change how a run executes but not what it computes: a log written with other
# values of these can be resumed (each epoch line records the device and precision it ran with).
_EXECUTION_FIELDS = ("epochs", "device", "amp", "compile", "num_workers")


# ---------------------------------------------------------------------------------------------------
# configurations


@dataclass(frozen=True)
class Config:
    """One experiment: the fields of the original ``run_exp.py`` ``Arguments`` plus run settings.

    ``number`` is the experiment's number in the handout (1-12; 0 for a configuration of your own).
    ``model`` is ``"lstm"`` or ``"gpt1"``; ``optimizer`` one of ``adam``, ``adamw``, ``sgd``,
    ``momentum`` (SGD with ``momentum``). ``max_train_sequences`` / ``max_valid_sequences`` keep only
    the first N sequences of a split (fast mode sets them). ``amp``: bf16 autocast on CUDA (ignored
    on other devices). ``num_workers``: DataLoader workers, ``None`` for 2 on CUDA and 0 elsewhere.
    """

    number: int = 0
    model: str = "lstm"
    layers: int = 1
    optimizer: str = "adamw"
    batch_size: int = 16
    epochs: int = 10
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 42
    embedding_size: int = 768
    hidden_size: int = 512  # LSTM only
    num_heads: int = 12  # GPT only
    sequence_length: int = 256
    max_train_sequences: int | None = None
    max_valid_sequences: int | None = None
    fast: bool = False
    scale: str | None = None  # fast | laptop | full; None: course_lib.device.scale()
    max_vocabulary: int | None = None  # keep the N most frequent training words (laptop scale); None: all
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int | None = None

    @property
    def architecture(self) -> str:
        return _ARCH_NAMES.get(self.model, self.model)

    @property
    def optimizer_name(self) -> str:
        return _OPT_NAMES.get(self.optimizer, self.optimizer)

    @property
    def name(self) -> str:
        """``LSTM-Adam-1L``, ``GPT-AdamW-4L``, ... (the handout's table titles)."""
        return f"{self.architecture}-{self.optimizer_name}-{self.layers}L"

    @property
    def label(self) -> str:
        """``"5 GPT-Adam-1L"``: number and name, for legends and tables."""
        return f"{self.number} {self.name}" if self.number else self.name

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def resolved(self) -> "Config":
        """A copy with the scale's adjustments applied and ``scale`` filled in, validated.

        The scale is ``"fast"`` if ``fast`` is set, else ``scale``, else :func:`course_lib.device.scale`
        (``COURSE_SCALE``, ``COURSE_FAST=1``, CUDA or not). ``full`` changes nothing; ``laptop``
        applies :data:`LAPTOP`, ``fast`` the ``FAST_*`` sizes (neither raises a value set lower).
        """
        level = "fast" if self.fast else (self.scale or current_scale())
        if level not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {level!r}")
        cfg = self.replace(scale=level, fast=level == "fast")
        if level == "laptop":
            cfg = cfg.replace(**{k: (v if getattr(cfg, k) is None else min(getattr(cfg, k), v))
                                 for k, v in LAPTOP.items()},
                              num_workers=0 if cfg.num_workers is None else cfg.num_workers)
        if cfg.fast:
            cfg = cfg.replace(
                epochs=min(cfg.epochs, FAST_EPOCHS),
                batch_size=min(cfg.batch_size, FAST_BATCH_SIZE),
                sequence_length=min(cfg.sequence_length, FAST_SEQUENCE_LENGTH),
                max_train_sequences=_min_opt(cfg.max_train_sequences, FAST_TRAIN_SEQUENCES),
                max_valid_sequences=_min_opt(cfg.max_valid_sequences, FAST_VALID_SEQUENCES),
                embedding_size=min(cfg.embedding_size, FAST_SIZES["embedding_size"]),
                hidden_size=min(cfg.hidden_size, FAST_SIZES["hidden_size"]),
                num_heads=min(cfg.num_heads, FAST_SIZES["num_heads"]),
                num_workers=0 if cfg.num_workers is None else cfg.num_workers,
            )
        if autograde_mode():
            # While an autograder re-runs a notebook the experiments are not graded (the written
            # answers are): the smallest run that still exercises the code keeps grading fast.
            cfg = cfg.replace(
                fast=True, scale="fast", epochs=min(cfg.epochs, 1),
                max_train_sequences=_min_opt(cfg.max_train_sequences, AUTOGRADE_TRAIN_SEQUENCES),
                max_valid_sequences=_min_opt(cfg.max_valid_sequences, AUTOGRADE_VALID_SEQUENCES),
            )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("layers", "batch_size", "embedding_size", "hidden_size", "num_heads", "sequence_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model == "gpt1" and self.embedding_size % self.num_heads:
            raise ValueError(f"embedding_size ({self.embedding_size}) must be a multiple of num_heads ({self.num_heads})")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr < 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError("lr and weight_decay must be >= 0 and momentum in [0, 1)")
        for name in ("max_train_sequences", "max_valid_sequences"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.max_vocabulary is not None and self.max_vocabulary < 3:
            raise ValueError(f"max_vocabulary must be >= 3 (padding, <unk> and a word) or None, got {self.max_vocabulary}")
        if self.scale is not None and self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)} or None, got {self.scale!r}")

    def fingerprint(self) -> dict:
        """The fields that decide what a run computes (all but :data:`_EXECUTION_FIELDS`). ``scale``
        and ``max_vocabulary`` appear only when they change something (not ``full`` / ``None``), so
        full-scale logs written before they existed still resume."""
        d = dataclasses.asdict(self)
        for name in _EXECUTION_FIELDS:
            d.pop(name)
        if d["scale"] in (None, "full"):
            d.pop("scale")
        if d["max_vocabulary"] is None:
            d.pop("max_vocabulary")
        return d


def _min_opt(value: int | None, limit: int) -> int:
    return limit if value is None else min(value, limit)


def _handout(number: int, model: str, layers: int, optimizer: str) -> Config:
    return Config(number=number, model=model, layers=layers, optimizer=optimizer)


#: The 12 configurations of the handout's ``run_exp.py``, by number.
CONFIGS: dict[int, Config] = {
    1: _handout(1, "lstm", 1, "adam"),
    2: _handout(2, "lstm", 1, "adamw"),
    3: _handout(3, "lstm", 1, "sgd"),
    4: _handout(4, "lstm", 1, "momentum"),
    5: _handout(5, "gpt1", 1, "adam"),
    6: _handout(6, "gpt1", 1, "adamw"),
    7: _handout(7, "gpt1", 1, "sgd"),
    8: _handout(8, "gpt1", 1, "momentum"),
    9: _handout(9, "lstm", 2, "adamw"),
    10: _handout(10, "lstm", 4, "adamw"),
    11: _handout(11, "gpt1", 2, "adamw"),
    12: _handout(12, "gpt1", 4, "adamw"),
}


def get_config(config: Config | int) -> Config:
    """``CONFIGS[n]`` for a number, or the config itself."""
    if isinstance(config, Config):
        return config
    if isinstance(config, (int, np.integer)) and not isinstance(config, bool) and int(config) in CONFIGS:
        return CONFIGS[int(config)]
    raise ValueError(f"config must be a Config or an experiment number 1-12, got {config!r}")


def _at_scale(config: Config, scale: str | None = None, fast: bool | None = None) -> Config:
    """``config`` resolved at ``scale`` (``fast=True``: "fast", ``fast=False``: "full"; neither: the
    config's own scale, else :func:`course_lib.device.scale`)."""
    if scale is None and fast is not None:
        scale = "fast" if fast else "full"
    if scale is None:
        scale = "fast" if config.fast else (config.scale or current_scale())
    return config.replace(fast=scale == "fast", scale=scale).resolved()


def experiments(log_dir: str | os.PathLike | None = None, *, fast: bool | None = None,
                scale: str | None = None) -> pd.DataFrame:
    """The 12 configurations as a table; with the log folder, each one's status (epochs done) at
    ``scale`` (default: :func:`course_lib.device.scale`; ``fast=True`` is ``scale="fast"``)."""
    rows = []
    for n, c in CONFIGS.items():
        row = {"exp": n, "name": c.name, "model": c.model, "layers": c.layers, "optimizer": c.optimizer,
               "lr": c.lr, "weight_decay": c.weight_decay if c.optimizer != "adam" else 0.0,
               "momentum": c.momentum if c.optimizer == "momentum" else 0.0,
               "batch_size": c.batch_size, "epochs": c.epochs}
        if log_dir is not None:
            rc = _at_scale(c, scale, fast)
            done = len(read_jsonl(run_dir(rc, log_dir) / "epochs.jsonl"))
            row["status"] = "finished" if done >= rc.epochs else (f"{done}/{rc.epochs} epochs" if done else "not started")
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# files


def default_log_dir() -> Path:
    """``$COURSE_RUNS_DIR/gpt_attention``, else ``<user cache>/runs/gpt_attention``."""
    root = os.environ.get("COURSE_RUNS_DIR", "").strip()
    if root:
        return Path(root).expanduser() / ASSIGNMENT
    import platformdirs

    return Path(platformdirs.user_cache_dir("course_lib")) / "runs" / ASSIGNMENT


def run_dir(config: Config, log_dir: str | os.PathLike | None = None) -> Path:
    """The folder of ``config``'s logs: ``<log_dir>[/<scale>]/<NN>-<name>`` (``fast/`` and ``laptop/``
    subfolders; full-scale runs directly in ``log_dir``), so runs of different scales never mix. A
    configuration that differs from handout experiment NN at that scale (or has no number) gets a short
    hash of its settings. An unresolved ``config`` is resolved first (:meth:`Config.resolved`)."""
    if config.scale is None:
        config = _at_scale(config)
    base = Path(log_dir) if log_dir is not None else default_log_dir()
    if config.scale != "full":
        base = base / config.scale
    name = f"{config.number:02d}-{config.name}" if config.number else f"custom-{config.name}"
    reference = CONFIGS.get(config.number)
    if reference is not None:
        reference = _at_scale(reference, config.scale)
    if reference is None or reference.fingerprint() != config.fingerprint():
        digest = hashlib.sha256(json.dumps(config.fingerprint(), sort_keys=True).encode()).hexdigest()[:8]
        name = f"{name}-{digest}"
    return base / name
