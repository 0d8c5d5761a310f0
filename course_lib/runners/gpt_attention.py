"""Train the 12 LSTM / GPT configurations of the ``gpt_attention`` assignment on WikiText-2 (Problem 3).

This is the handout's ``run_exp.py``: the 12 experiment configurations at its top, numbered as
there, each trained for 10 epochs, with per-epoch train and validation perplexity, wall-clock time,
peak memory and throughput logged so that the learning curves and the results table of Problem 3
can be drawn from the logs. The command line and the notebook share it::

    python -m course_lib.runners.gpt_attention --list              # the 12 configurations, and which are done
    python -m course_lib.runners.gpt_attention --config 5          # one (GPT-Adam-1L)
    python -m course_lib.runners.gpt_attention --all               # all 12, skipping finished ones
    python -m course_lib.runners.gpt_attention --all --fast        # seconds, on a CPU (a check, not results)
    python -m course_lib.runners.gpt_attention --all --scale laptop   # all 12 on a 2-core CPU, about 25 minutes

Recording the reference runs (instructor material, with ``course_solutions``; ``--record`` also
checks and stores the conclusions the runs show)::

    # full scale, the handout's settings, on a GPU:
    python -m course_lib.runners.gpt_attention --all --scale full
    python -m course_lib.runners.gpt_attention --scale full --record course_solutions/recorded/gpt_attention.json
    # laptop scale, each configuration in a process of its own (so that the peak memory compares them):
    for n in $(seq 12); do python -m course_lib.runners.gpt_attention --scale laptop --config $n; done
    python -m course_lib.runners.gpt_attention --scale laptop --record course_solutions/recorded/gpt_attention-laptop.json

    from course_lib.runners import gpt_attention as ga
    result = ga.run(5, model_factory=ga.model_factory_from(lstm=LSTM, gpt=MiniGPT1))
    result.history, result.best_valid_ppl, result.best_epoch
    results = {n: ga.run(n, model_factory=...) for n in ga.CONFIGS}
    ga.plot_results(results, x="both");  ga.results_table(results)

**The 12 configurations** (``CONFIGS``), as at the top of the original ``run_exp.py``:

==  ================  ======  ======  =========
#   name              model   layers  optimizer
==  ================  ======  ======  =========
1   LSTM-Adam-1L      lstm    1       adam
2   LSTM-AdamW-1L     lstm    1       adamw
3   LSTM-SGD-1L       lstm    1       sgd
4   LSTM-Momentum-1L  lstm    1       momentum
5   GPT-Adam-1L       gpt1    1       adam
6   GPT-AdamW-1L      gpt1    1       adamw
7   GPT-SGD-1L        gpt1    1       sgd
8   GPT-Momentum-1L   gpt1    1       momentum
9   LSTM-AdamW-2L     lstm    2       adamw
10  LSTM-AdamW-4L     lstm    4       adamw
11  GPT-AdamW-2L      gpt1    2       adamw
12  GPT-AdamW-4L      gpt1    4       adamw
==  ================  ======  ======  =========

**Hyperparameters and where they come from.** The configuration table and the shared defaults
are those of the course's original ``run_exp.py`` (IFT6135-H2021 assignment 2; its ``Arguments``
dataclass and ``configs`` dict, found in public copies of the script): batch size 16, 10 epochs,
``lr=1e-3`` for every optimizer, ``momentum=0.9`` (the ``momentum`` optimizer is SGD with
momentum), ``weight_decay=5e-4`` for AdamW, SGD and SGD+momentum (plain Adam gets no weight decay,
as there), seed 42, 2 DataLoader workers. Model sizes are those of the original's
``load_embeddings_from`` calls: LSTM hidden size 512, GPT 12 heads, embedding size 768 (GPT-1's),
sequences of 256 tokens; with frozen embeddings they give the learnable parameter counts quoted with
the handout (3,019,520 for the 1-layer LSTM, 7,087,872 for the 1-layer GPT). No learning-rate
schedule and no gradient clipping, as in the original. One forced change: the handout's data was
WikiText-2 in GPT-1's BPE vocabulary with GPT-1's pretrained, frozen embeddings, which cannot be
rebuilt offline; here the data is word-level WikiText-2 (:mod:`course_lib.wikitext`, vocabulary
33,279 with padding) and the reference models learn their (tied) embeddings
(``learn_embeddings=True``): 28.6M trainable parameters for the 1-layer LSTM and 32.8M for the
1-layer GPT (25.6M of them the 33,279 x 768 embedding), so they use more memory than the handout's
runs.

Differences from the original, on purpose:

- Perplexity is ``exp`` of the mean per-token NLL over *all* real tokens of the split (the formula
  of Problem 3): summed NLL over summed mask, not the exponentiated mean of per-batch losses.
  Training perplexity is measured during the epoch (the model changes as it goes, dropout on).
- Speed on a GPU: bf16 autocast (``amp``), fused Adam/AdamW/SGD kernels, pinned memory and
  non-blocking copies, no per-step host syncs; ``compile=True`` (``--compile``) adds torch.compile.
  On a CPU the same code runs in fp32.
- Logs that survive interruption (see *Logs*), and memory and throughput measured by the runner.

**Scales** (:func:`course_lib.device.scale`, or ``--scale``; one code path for all three):

- ``full`` (the default with CUDA): the handout's settings above, unchanged.
- ``laptop`` (the default without CUDA): every configuration keeps its architecture, number of layers,
  optimizer and its settings (lr, momentum, weight decay, batch size 16), but the model is 128 wide
  (LSTM hidden size 128, GPT 4 heads), sequences are 64 tokens, the data is the first 768 training
  and 64 validation windows, the vocabulary is cut to the 4,094 most frequent words of that training
  slice (the others become one ``<unk>``: the 33k-word output layer would otherwise take most of a
  CPU's time) and each run lasts 6 epochs (:data:`LAPTOP`). All 12 runs took 25 minutes end to end
  (one torch thread each, on a 2-core CPU shared with several other busy processes; less on a free
  laptop), and show what the questions ask about: Adam/AdamW far ahead of SGD and SGD with momentum
  (15x for the LSTM, 2.2x against GPT with momentum), the GPT ahead of the LSTM per epoch and per
  second, deeper models costing more time and memory, GPT-Adam overfitting after epoch 5
  (:func:`conclusions`; the recorded run is ``course_solutions/recorded/gpt_attention-laptop.json``). Perplexities are lower than the
  handout's because of the smaller vocabulary: compare runs with each other, not with the handout.
- ``fast``: seconds, for checks (below).

**Logs.** Each run has a folder ``<log_dir>/<NN>-<name>/`` (``<log_dir>/fast/...`` and
``<log_dir>/laptop/...`` at those scales, so that runs of different scales never mix)
holding ``meta.json`` (configuration, sizes, machine), ``epochs.jsonl`` (one JSON line per finished
epoch: ``train_ppl``, ``valid_ppl``, their per-token losses, ``epoch_seconds``,
``wall_clock_seconds`` (cumulative), ``tokens_per_second``, ``peak_memory_mib`` with its
``memory_kind``, ...; rewritten atomically) and ``checkpoint.pt`` (model, optimizer, RNG states,
epoch and history; written atomically after every epoch). Running a configuration again resumes
from its last finished epoch (the result is the same as an uninterrupted run's) and a finished run
is not trained again: its log is read back. If the model's code or the configuration changed, the
old folder is moved aside (``...replaced-<time>``) and the run starts over. The default log folder
is ``$COURSE_RUNS_DIR/gpt_attention`` if that variable is set, else the user cache
(``platformdirs.user_cache_dir("course_lib")/runs/gpt_attention``); ``--log-dir`` changes it.

**Memory** (question 7): on CUDA, ``torch.cuda.max_memory_allocated`` over each epoch (the peak
statistics are reset at the start of every epoch; ``memory_kind="cuda_max_allocated"``; the
allocator's reserved peak, closer to what ``nvidia-smi`` shows, is kept as ``cuda_max_reserved_mib``);
on a CPU, the process's resident set size at the end of the epoch (``memory_kind="cpu_rss"``), and
the process's peak resident set size so far (``cpu_max_rss_mib``, which compares configurations
when each runs in its own process). The steady-state value of a run is the largest over its epochs
after the first.

**Fast mode** (``--fast`` or ``COURSE_FAST=1``): every configuration keeps its architecture (model
class, number of layers, optimizer and all its settings, the full vocabulary) but runs 3 epochs on
the first 32 training and 8 validation windows of 32 tokens, in batches of 4 (24 optimizer steps per
run, 288 for all 12), with embedding and hidden sizes 64 and 4 heads: 2 to 4 seconds per run on one
CPU thread (46 s for all 12, data loading included). That is enough for the curves to separate:
after 3 epochs the Adam/AdamW GPTs are near validation perplexity 9,000 and the LSTMs between
15,000 and 27,000, while SGD and momentum have hardly moved from the vocabulary size (33,279).
At the handout's sizes one training step takes about 21 s (LSTM) to 25 s (GPT) for a 16 x 256
batch on one CPU thread, and still about 1.1 s for a 4 x 32 batch (the 768-wide embedding
and output layer over a 33k-word vocabulary dominate; at most about 200 tokens/s, against 0.1 s per
step at the fast sizes), so shrinking the data alone does not give a check that takes seconds.
Fast runs are logged under ``<log_dir>/fast/`` and can never be recorded as results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import train as train_lib
from ..device import SCALES, autograde_mode, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..files import atomic_write_text
from ..runlog import MEMORY_KINDS, RunLog, epoch_memory, model_fingerprint, now, read_json, read_jsonl, sync
from ..train import perplexity
from . import json_safe

__all__ = [
    "Config", "CONFIGS", "RunResult", "RunInterrupted", "run", "run_all", "main", "build_parser",
    "default_model_factory", "model_factory_from", "experiments", "default_log_dir", "run_dir",
    "load_runs", "record_results", "load_recorded", "results_frame", "results_table", "plot_results",
    "evaluate", "FAST_EPOCHS", "RECORD_PATH", "ASSIGNMENT",
]

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
# models and data


def default_model_factory(config: Config, vocabulary_size: int) -> nn.Module:
    """The reference models of :mod:`course_solutions.layers`: ``LSTM`` or ``MiniGPT1`` at ``config``'s sizes."""
    from . import reference_layers

    layers = reference_layers()
    if config.model == "lstm":
        cls = getattr(layers, "LSTM", None)
    else:
        cls = getattr(layers, "MiniGPT1", None)
    if cls is None:
        raise RuntimeError(f"course_solutions.layers has no reference model for {config.model!r} yet; pass model_factory")
    return model_factory_from(lstm=cls if config.model == "lstm" else None,
                              gpt=cls if config.model == "gpt1" else None)(config, vocabulary_size)


def model_factory_from(lstm: type | None = None, gpt: type | None = None) -> Callable[[Config, int], nn.Module]:
    """A ``model_factory`` from two classes with the handout's constructors (keyword arguments):

    ``lstm(vocabulary_size=, embedding_size=, hidden_size=, num_layers=)`` and
    ``gpt(vocabulary_size=, embedding_size=, num_heads=, num_layers=, sequence_length=)``.
    The notebook passes the student's ``LSTM`` and ``MiniGPT1``.
    """

    def factory(config: Config, vocabulary_size: int) -> nn.Module:
        if config.model == "lstm":
            if lstm is None:
                raise ValueError("this model_factory has no LSTM class (model_factory_from(lstm=...))")
            return lstm(vocabulary_size=vocabulary_size, embedding_size=config.embedding_size,
                        hidden_size=config.hidden_size, num_layers=config.layers)
        if gpt is None:
            raise ValueError("this model_factory has no GPT class (model_factory_from(gpt=...))")
        return gpt(vocabulary_size=vocabulary_size, embedding_size=config.embedding_size,
                   num_heads=config.num_heads, num_layers=config.layers, sequence_length=config.sequence_length)

    return factory


def _load_wikitext(config: Config):
    """WikiText-2 train and validation datasets (:class:`course_lib.wikitext.Wikitext2`, windows of
    ``config.sequence_length`` tokens) and the vocabulary size (the full train vocabulary, also in
    fast mode)."""
    from .. import wikitext

    def max_tokens(n: int | None) -> int | None:
        # Read only what the first n windows need (n windows of T + 1 tokens overlapping by one),
        # with room to spare; the vocabulary stays the full train one.
        return None if n is None else 2 * n * (config.sequence_length + 1)

    train = wikitext.Wikitext2(split="train", sequence_length=config.sequence_length,
                               max_tokens=max_tokens(config.max_train_sequences))
    valid = wikitext.Wikitext2(split="valid", sequence_length=config.sequence_length, vocab=train.vocab,
                               max_tokens=max_tokens(config.max_valid_sequences))
    if config.max_vocabulary is None:
        return train, valid, len(train.vocab)
    lut = vocabulary_map(train.tokens, len(train.vocab), config.max_vocabulary,
                         unk_id=train.vocab.stoi.get("<unk>"))
    train.tokens, valid.tokens = lut[train.tokens], lut[valid.tokens]
    return train, valid, int(lut.max()) + 1


def vocabulary_map(tokens: torch.Tensor, vocabulary_size: int, max_vocabulary: int, *,
                   unk_id: int | None = None) -> torch.Tensor:
    """A lookup table (``vocabulary_size``,) that keeps the ``max_vocabulary - 2`` most frequent ids of
    ``tokens`` (ties: the smaller id first) as ids ``2, 3, ...`` in order of frequency, maps padding
    (0) to 0 and every other id (and ``unk_id``) to 1, the shared ``<unk>``. The laptop scale uses it:
    the output layer over the whole 33,279-word vocabulary would cost most of a CPU's time."""
    counts = torch.bincount(tokens, minlength=vocabulary_size).to(torch.float64)
    counts[0] = -1.0  # padding is not a word
    if unk_id is not None:
        counts[unk_id] = -1.0  # <unk> is the bucket of the dropped words
    order = torch.argsort(-counts, stable=True)  # stable: ties keep the smaller id first
    keep = order[: max(max_vocabulary - 2, 0)]
    keep = keep[counts[keep] > 0]
    lut = torch.ones(vocabulary_size, dtype=torch.long)
    lut[0] = 0
    lut[keep] = torch.arange(2, 2 + keep.numel())
    return lut


def _first(dataset, n: int | None):
    if n is None or n >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, range(n))


class _EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a permutation fixed by (seed, epoch): a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def _loader(dataset, config: Config, device: torch.device, *, sampler=None) -> torch.utils.data.DataLoader:
    workers = config.num_workers if config.num_workers is not None else (2 if device.type == "cuda" else 0)
    return torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(config.seed),  # worker seeds: leave the global RNG alone
    )


# ---------------------------------------------------------------------------------------------------
# one step, evaluation


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _amp_dtype(device: torch.device, enabled: bool) -> str:
    return "bfloat16" if enabled and device.type == "cuda" else "float32"


def _forward(model: nn.Module, forward: Callable, kind: str, source: torch.Tensor) -> torch.Tensor:
    """``log_probas`` (B, T, V): ``forward(source, initial_states)`` for an LSTM, ``forward(source)`` for GPT."""
    if kind == "lstm":
        states = model.initial_states(source.size(0), source.device)
        out = forward(source, states)
    else:
        out = forward(source)
    return out[0] if isinstance(out, (tuple, list)) else out


def _gathered_nll(log_probas: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-log p(target)`` per token (B, T), without gradients."""
    return -log_probas.detach().gather(-1, target.unsqueeze(-1)).squeeze(-1)


def _token_nll_fn(model: nn.Module, kind: str, device: torch.device, amp: bool,
                  forward: Callable | None = None) -> Callable[[Mapping], torch.Tensor]:
    """A batch's per-token NLL (B, T) under ``model``: the plumbing of :func:`course_lib.train.evaluate`."""
    forward = forward or model

    def token_nll(batch: Mapping) -> torch.Tensor:
        with _autocast(device, amp):
            log_probas = _forward(model, forward, kind, batch["source"])
        return _gathered_nll(log_probas, batch["target"])

    return token_nll


def _train_step_fn(model: nn.Module, kind: str, device: torch.device, amp: bool,
                   forward: Callable) -> Callable[[Mapping], tuple[torch.Tensor, torch.Tensor]]:
    """One training step's forward for :func:`course_lib.train.train_epoch`: the model's own
    ``loss(log_probas, target, mask)`` (the student's or the reference's) and the per-token NLL."""
    loss_fn = getattr(model, "loss", None)
    if not callable(loss_fn):
        raise TypeError(f"{type(model).__name__} has no loss(log_probas, target, mask) method: the runner "
                        "trains a model with its own loss")

    def step(batch: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(device, amp):
            log_probas = _forward(model, forward, kind, batch["source"])
            loss = loss_fn(log_probas, batch["target"], batch["mask"])
        return loss, _gathered_nll(log_probas, batch["target"])

    return step


def _acc_dtype(device: torch.device) -> torch.dtype:
    """Sums of millions of token NLLs: float64, except on Apple MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def evaluate(model: nn.Module, loader, *, kind: str, device: torch.device | str | None = None,
             amp: bool = True, forward: Callable | None = None) -> tuple[float, int]:
    """Mean NLL per real token over ``loader`` (``sum(nll * mask) / sum(mask)``) and the token count.

    Perplexity is ``exp`` of the first value: the formula of Problem 3, over all tokens of the split
    (not the mean of per-sequence or per-batch losses). :func:`course_lib.train.evaluate` with this
    assignment's forward (``source`` -> log-probabilities, ``kind`` ``"lstm"`` or ``"gpt1"``).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    return train_lib.evaluate(model, loader, device=device, acc_dtype=_acc_dtype(device),
                              token_nll=_token_nll_fn(model, kind, device, amp, forward))


def _make_optimizer(model: nn.Module, config: Config, device: torch.device) -> torch.optim.Optimizer:
    """As in the original ``run_exp.py``; fused kernels on CUDA where this torch has them."""
    params = [p for p in model.parameters() if p.requires_grad]  # frozen embeddings: no decay either way
    if config.optimizer == "adamw":
        cls, kwargs = torch.optim.AdamW, {"lr": config.lr, "weight_decay": config.weight_decay}
    elif config.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, {"lr": config.lr}
    elif config.optimizer == "sgd":
        cls, kwargs = torch.optim.SGD, {"lr": config.lr, "weight_decay": config.weight_decay}
    else:
        cls, kwargs = torch.optim.SGD, {"lr": config.lr, "momentum": config.momentum,
                                        "weight_decay": config.weight_decay}
    if device.type == "cuda" and "fused" in inspect.signature(cls).parameters:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # e.g. a parameter dtype the fused kernel lacks
            pass
    return cls(params, **kwargs)


# ---------------------------------------------------------------------------------------------------
# memory


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


# ---------------------------------------------------------------------------------------------------
# results


HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_ppl", "valid_loss", "valid_ppl", "train_objective", "train_tokens",
    "valid_tokens", "train_seconds", "valid_seconds", "epoch_seconds", "wall_clock_seconds",
    "tokens_per_second", "peak_memory_mib", "memory_kind", "cuda_max_reserved_mib", "device", "amp_dtype",
    "resumed", "finished_at",
]


@dataclass
class RunResult:
    """One experiment's record. ``history`` has one row per epoch (:data:`HISTORY_COLUMNS`):
    ``train_ppl`` / ``valid_ppl`` (exp of ``train_loss`` / ``valid_loss``, the mean NLL per real
    token), ``train_objective`` (mean of the model's ``loss`` over the epoch's batches),
    ``epoch_seconds`` (train + validation), ``wall_clock_seconds`` (cumulative), ``tokens_per_second``
    (real target tokens per training second), ``peak_memory_mib`` and its ``memory_kind``.
    ``model`` holds the final weights when they were loaded; ``recorded`` is True for results read
    from the recorded file rather than trained here."""

    config: Config
    history: pd.DataFrame
    log_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)
    vocabulary_size: int | None = None
    num_parameters: int | None = None
    num_trainable_parameters: int | None = None
    device: str | None = None
    device_description: str | None = None
    resumed_from_epoch: int = 0
    epochs_trained_now: int = 0
    recorded: bool = False
    note: str | None = None
    setup_seconds: float | None = None  # data loading and model building before the first epoch

    @property
    def number(self) -> int:
        return self.config.number

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def label(self) -> str:
        return self.config.label + (" (recorded)" if self.recorded else "")

    @property
    def finished(self) -> bool:
        return len(self.history) >= self.config.epochs

    def _best(self):
        if not len(self.history):
            return None
        values = pd.to_numeric(self.history["valid_ppl"], errors="coerce")
        return None if values.notna().sum() == 0 else self.history.loc[values.idxmin()]

    @property
    def best_epoch(self) -> int | None:
        row = self._best()
        return None if row is None else int(row["epoch"])

    @property
    def best_valid_ppl(self) -> float:
        """The lowest validation perplexity across epochs (not necessarily the last epoch's)."""
        row = self._best()
        return float("nan") if row is None else float(row["valid_ppl"])

    @property
    def final_train_ppl(self) -> float:
        return float(self.history["train_ppl"].iloc[-1]) if len(self.history) else float("nan")

    @property
    def final_valid_ppl(self) -> float:
        return float(self.history["valid_ppl"].iloc[-1]) if len(self.history) else float("nan")

    def _steady(self) -> pd.DataFrame:
        """Epochs after the first (warm-up, allocator growth, compilation), or the first if alone."""
        return self.history.iloc[1:] if len(self.history) > 1 else self.history

    @property
    def seconds_per_epoch(self) -> float:
        return float(self.history["epoch_seconds"].mean()) if len(self.history) else float("nan")

    @property
    def cpu_seconds_per_epoch(self) -> float | None:
        """Mean CPU seconds of the run's process per epoch (None for logs without them)."""
        if not len(self.history) or "epoch_cpu_seconds" not in self.history:
            return None
        values = pd.to_numeric(self.history["epoch_cpu_seconds"], errors="coerce")
        return None if values.isna().any() else float(values.mean())

    @property
    def total_seconds(self) -> float:
        return float(self.history["wall_clock_seconds"].iloc[-1]) if len(self.history) else float("nan")

    @property
    def tokens_per_second(self) -> float:
        """Mean training throughput over the steady-state epochs."""
        steady = self._steady()
        return float(steady["tokens_per_second"].mean()) if len(steady) else float("nan")

    @property
    def memory_mib(self) -> float:
        """Steady-state peak memory: the largest ``peak_memory_mib`` over the epochs after the first."""
        steady = self._steady()
        return float(steady["peak_memory_mib"].max()) if len(steady) else float("nan")

    @property
    def cpu_max_rss_mib(self) -> float | None:
        """CPU runs: the process's peak resident set size at the end of the run (``ru_maxrss``); it
        compares configurations only when each ran in a process of its own (as the recorded laptop
        runs did). None on a GPU or for logs written before it was measured."""
        if not len(self.history) or "cpu_max_rss_mib" not in self.history:
            return None
        values = pd.to_numeric(self.history["cpu_max_rss_mib"], errors="coerce")
        return None if values.notna().sum() == 0 else float(values.max())

    @property
    def memory_kind(self) -> str | None:
        return str(self.history["memory_kind"].iloc[-1]) if len(self.history) else None

    def summary(self) -> dict:
        """One row of the results table."""
        return {
            "exp": self.number,
            "architecture": self.config.architecture,
            "layers": self.config.layers,
            "optimizer": self.config.optimizer_name,
            "best valid ppl": self.best_valid_ppl,
            "best epoch": self.best_epoch,
            "final train ppl": self.final_train_ppl,
            "s/epoch": self.seconds_per_epoch,
            "memory (MiB)": self.memory_mib,
            "tokens/s": self.tokens_per_second,
        }

    def to_json(self) -> dict:
        return json_safe({
            "number": self.number,
            "name": self.name,
            "config": dataclasses.asdict(self.config),
            "vocabulary_size": self.vocabulary_size,
            "num_parameters": self.num_parameters,
            "num_trainable_parameters": self.num_trainable_parameters,
            "device": self.device,
            "device_description": self.device_description,
            "epochs_run": int(len(self.history)),
            "best_epoch": self.best_epoch,
            "best_valid_ppl": self.best_valid_ppl,
            "final_train_ppl": self.final_train_ppl,
            "seconds_per_epoch": self.seconds_per_epoch,
            "cpu_seconds_per_epoch": self.cpu_seconds_per_epoch,
            "total_seconds": self.total_seconds,
            "tokens_per_second": self.tokens_per_second,
            "memory_mib": self.memory_mib,
            "memory_kind": self.memory_kind,
            "cpu_max_rss_mib": self.cpu_max_rss_mib,
            "setup_seconds": self.setup_seconds,
            "history": self.history.to_dict(orient="records"),
        })


def _history_frame(rows: Sequence[dict]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for column in HISTORY_COLUMNS:
        if column not in df.columns:
            df[column] = None
    return df[HISTORY_COLUMNS + [c for c in df.columns if c not in HISTORY_COLUMNS]]


def _config_from_dict(d: Mapping) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in d.items() if k in names})


def _result_from_folder(folder: Path, config: Config | None = None, *, epochs: int | None = None) -> RunResult | None:
    meta = read_json(folder / "meta.json")
    rows = read_jsonl(folder / "epochs.jsonl")
    if meta is None and not rows:
        return None
    if config is None:
        config = _config_from_dict(meta["config"]) if meta else None
    if config is None:
        return None
    if epochs is not None:
        rows = rows[:epochs]
    meta = meta or {}
    return RunResult(
        config=config, history=_history_frame(rows), log_dir=folder,
        vocabulary_size=meta.get("vocabulary_size"), num_parameters=meta.get("num_parameters"),
        num_trainable_parameters=meta.get("num_trainable_parameters"), device=meta.get("device"),
        device_description=meta.get("device_description"), setup_seconds=meta.get("setup_seconds"),
    )


# ---------------------------------------------------------------------------------------------------
# training


class RunInterrupted(Exception):
    """Raise from an ``on_step`` hook to stop a run (as a crash or a lost session would)."""


def run(
    config: Config | int,
    model_factory: Callable[[Config, int], nn.Module] | None = None,
    progress: bool = True,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    *,
    log: Callable[[str], object] | None = print,
    data=None,
    on_step: Callable[[int, int], object] | None = None,
    on_start: Callable[[int], object] | None = None,
    load_model: bool = True,
) -> RunResult:
    """Train (or resume, or read back) one experiment; return its :class:`RunResult`.

    Args:
        config: an experiment number 1-12 (``CONFIGS[n]``) or a :class:`Config`. Fast mode
            (``COURSE_FAST=1``) is applied here.
        model_factory: ``model_factory(config, vocabulary_size) -> nn.Module`` (default: the reference
            ``course_solutions.layers.LSTM`` / ``MiniGPT1``; see :func:`model_factory_from` for the student's
            classes). LSTM models are called as ``model(source, model.initial_states(B, device))``,
            GPT models as ``model(source)``; both return log-probabilities (B, T, V) and are trained
            with their own ``loss(log_probas, target, mask)`` method (a model without one is refused).
        progress: tqdm progress bars.
        log_dir: where the runs' folders are (default :func:`default_log_dir`).
        resume: continue from the last finished epoch, or return a finished run without training.
            ``False`` moves any previous logs of this configuration aside and starts over.
        log: receives the per-epoch lines (``None`` for silence).
        data: ``(train_dataset, valid_dataset, vocabulary_size)`` instead of WikiText-2 (tests);
            datasets of dicts ``source``, ``target`` (LongTensor (T,)) and ``mask`` (FloatTensor (T,)).
        on_step: ``on_step(epoch, step)`` after every optimizer step (raise :class:`RunInterrupted`
            to simulate an interruption).
        on_start: ``on_start(total_steps)`` once, before training, with the number of optimizer steps
            still to take (the remaining epochs times the batches per epoch), e.g. for a progress
            bar's total. Not called for a finished run that is read back.
        load_model: for a finished run, build the model and load its final weights (``result.model``).
    """
    setup_start = time.perf_counter()
    config = get_config(config).resolved()
    say = log or (lambda *_: None)
    factory = model_factory or default_model_factory
    device = get_device(None if config.device in ("", "auto") else config.device)
    runlog = RunLog(run_dir(config, log_dir), label=config.label, log_format=LOG_FORMAT, say=say)
    runlog.open(config.fingerprint(), resume=resume)

    # A finished run is read back, not trained again (unless the model's code changed).
    if runlog.finished(config.epochs):
        result = _read_back(runlog, config, factory, device, load_model)
        if result is not None:
            say(f"{config.label}: finished run read from {runlog.folder} (best validation perplexity "
                f"{result.best_valid_ppl:.2f} at epoch {result.best_epoch})")
            return result
        runlog.discard(f"the model's code changed since {runlog.folder} was written")

    # Data, model, optimizer (seeded as in the original: seed_experiment(args.seed) comes first).
    seed_everything(config.seed)
    train_ds, valid_ds, vocabulary_size = _load_wikitext(config) if data is None else data
    train_ds = _first(train_ds, config.max_train_sequences)
    valid_ds = _first(valid_ds, config.max_valid_sequences)
    model = factory(config, int(vocabulary_size)).to(device)
    runlog.check_model(model)
    optimizer = _make_optimizer(model, config, device)
    start_epoch, history = runlog.resume(model, optimizer, config.epochs)
    sizes = {"vocabulary_size": int(vocabulary_size),
             "num_parameters": sum(p.numel() for p in model.parameters()),
             "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    runlog.write_meta(_meta(config, model, device, sizes, len(train_ds), len(valid_ds), setup_start))
    say(f"{config.label}: {type(model).__name__}, {sizes['num_parameters']:,} parameters "
        f"({sizes['num_trainable_parameters']:,} trainable), "
        f"{config.optimizer_name} lr {config.lr:g}, on {device} ({_amp_dtype(device, config.amp)}); "
        f"{len(train_ds):,} train / {len(valid_ds):,} valid sequences of {config.sequence_length}, "
        f"vocabulary {int(vocabulary_size):,}" + (f" [{config.scale} scale]" if config.scale != "full" else "")
        + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))

    trained_now = _train(config, model, optimizer, runlog, history, (train_ds, valid_ds), device,
                         progress=progress, say=say, on_step=on_step, on_start=on_start)
    result = RunResult(
        config=config, history=_history_frame(history), log_dir=runlog.folder, model=model.eval(),
        setup_seconds=runlog.meta.get("setup_seconds"), **sizes,
        device=str(device), device_description=describe_device(device), resumed_from_epoch=start_epoch,
        epochs_trained_now=trained_now,
    )
    if len(result.history):
        say(f"{config.label}: best validation perplexity {result.best_valid_ppl:.2f} at epoch "
            f"{result.best_epoch}; logs in {runlog.folder}")
    return result


def _read_back(runlog: RunLog, config: Config, factory: Callable, device: torch.device,
               load_model: bool) -> RunResult | None:
    """A finished run's result from its log (with its final weights when ``load_model``); ``None``
    when the model's code changed since the log was written."""
    seed_everything(config.seed)
    model = factory(config, int(runlog.meta["vocabulary_size"]))
    if not runlog.matches_model(model):
        return None
    result = _result_from_folder(runlog.folder, config, epochs=config.epochs)
    if load_model and runlog.load_final(model, config.epochs):
        result.model = model.to(device).eval()
    return result


def _meta(config: Config, model: nn.Module, device: torch.device, sizes: dict, n_train: int, n_valid: int,
          setup_start: float) -> dict:
    """The fields of ``meta.json``."""
    return {
        "runner": f"course_lib.runners.{ASSIGNMENT}", "dataset": DATASET,
        "number": config.number, "name": config.name, "config": dataclasses.asdict(config),
        "fingerprint": config.fingerprint(), "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_fingerprint": model_fingerprint(model), **sizes,
        "train_sequences": n_train, "valid_sequences": n_valid,
        "device": str(device), "device_description": describe_device(device),
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "platform": platform.platform(), "updated_at": now(),
        "setup_seconds": time.perf_counter() - setup_start,
    }


def _train(config: Config, model: nn.Module, optimizer: torch.optim.Optimizer, runlog: RunLog,
           history: list[dict], datasets, device: torch.device, *, progress: bool, say: Callable,
           on_step: Callable | None, on_start: Callable | None) -> int:
    """The remaining epochs: train, evaluate, log and checkpoint each. Appends to ``history``;
    returns the number of epochs trained."""
    start_epoch = len(history)
    sampler = _EpochSampler(len(datasets[0]), config.seed)
    train_loader = _loader(datasets[0], config, device, sampler=sampler)
    valid_loader = _loader(datasets[1], config, device)
    forward = torch.compile(model) if config.compile else model
    step = _train_step_fn(model, config.model, device, config.amp, forward)
    token_nll = _token_nll_fn(model, config.model, device, config.amp, forward)
    tqdm = None
    if progress:
        from tqdm.auto import tqdm
    old_precision = torch.get_float32_matmul_precision()
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in fp32
    if on_start is not None:
        on_start((config.epochs - start_epoch) * len(train_loader))
    epochs = range(start_epoch + 1, config.epochs + 1)
    epoch_bar = tqdm(epochs, desc=config.label, unit="epoch", initial=start_epoch, total=config.epochs) if tqdm else None
    try:
        for epoch in epoch_bar if epoch_bar is not None else epochs:
            sampler.set_epoch(epoch)
            batches = tqdm(train_loader, desc=f"epoch {epoch}", leave=False, unit="batch") if tqdm else train_loader
            row = _epoch(config, model, optimizer, step, token_nll, batches, valid_loader, device, epoch,
                         wall=float(history[-1]["wall_clock_seconds"]) if history else 0.0,
                         resumed=start_epoch > 0, on_step=on_step)
            if tqdm:
                batches.close()
            history.append(json_safe(row))
            runlog.save_epoch(history, model, optimizer, config=dataclasses.asdict(config))
            say(f"{config.label} epoch {epoch:2d}/{config.epochs}: train ppl {row['train_ppl']:.2f} | "
                f"valid ppl {row['valid_ppl']:.2f} | {row['epoch_seconds']:.1f}s "
                f"({row['tokens_per_second']:,.0f} tokens/s) | memory {row['peak_memory_mib']:,.0f} MiB "
                f"({row['memory_kind']})")
            if epoch_bar is not None:
                epoch_bar.set_postfix(train_ppl=f"{row['train_ppl']:.1f}", valid_ppl=f"{row['valid_ppl']:.1f}")
    finally:
        if epoch_bar is not None:
            epoch_bar.close()
        torch.set_float32_matmul_precision(old_precision)
    return len(history) - start_epoch


def _epoch(config: Config, model: nn.Module, optimizer, step, token_nll, batches, valid_loader,
           device: torch.device, epoch: int, *, wall: float, resumed: bool, on_step) -> dict:
    """Train one epoch and evaluate; return its log line (``wall``: the clock before it)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    acc = _acc_dtype(device)
    totals = train_lib.train_epoch(
        model, batches, optimizer, step, device=device, acc_dtype=acc,
        on_step=None if on_step is None else (lambda i: on_step(epoch, i)),
        postfix=lambda t: {"ppl": f"{perplexity(t.token_nll()):.1f}"})
    sync(device)
    train_seconds = time.perf_counter() - t0
    n_train, train_loss = totals.n_tokens, totals.token_nll()
    t1 = time.perf_counter()
    valid_loss, n_valid = train_lib.evaluate(model, valid_loader, device=device, token_nll=token_nll, acc_dtype=acc)
    sync(device)
    valid_seconds = time.perf_counter() - t1
    epoch_seconds = train_seconds + valid_seconds
    return {
        "epoch": epoch,
        "train_loss": train_loss, "train_ppl": perplexity(train_loss),
        "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
        "train_objective": totals.mean_loss(),
        "train_tokens": n_train, "valid_tokens": n_valid,
        "train_seconds": train_seconds, "valid_seconds": valid_seconds,
        # CPU time of this process (all its threads) over the epoch: on a CPU shared with other
        # work, a steadier measure of a model's cost than wall-clock time
        "epoch_cpu_seconds": time.process_time() - c0,
        "epoch_seconds": epoch_seconds, "wall_clock_seconds": wall + epoch_seconds,
        "tokens_per_second": n_train / train_seconds if train_seconds > 0 else float("nan"),
        **epoch_memory(device),
        "device": str(device), "amp_dtype": _amp_dtype(device, config.amp),
        "resumed": resumed, "finished_at": now(),
    }


def run_all(numbers: Iterable[int] | None = None, **kwargs) -> dict[int, RunResult]:
    """:func:`run` for each experiment number (default: all 12, in order); same keyword arguments."""
    return {n: run(n, **kwargs) for n in (numbers or CONFIGS)}


# ---------------------------------------------------------------------------------------------------
# reading logs, recording, tables and plots


def load_runs(log_dir: str | os.PathLike | None = None, *, fast: bool | None = None,
              numbers: Iterable[int] | None = None, scale: str | None = None) -> dict[int, RunResult]:
    """The logged runs of the handout configurations in ``log_dir`` (finished or not), by number.

    ``scale``: which scale's logs to read (default: :func:`course_lib.device.scale`); ``fast=True``
    is ``scale="fast"``, ``fast=False`` is ``scale="full"``. Runs with no log are left out.
    """
    out = {}
    for n in numbers or CONFIGS:
        config = _at_scale(CONFIGS[n], scale, fast)
        result = _result_from_folder(run_dir(config, log_dir), config, epochs=config.epochs)
        if result is not None and len(result.history):
            out[n] = result
    return out


def record_results(results: Mapping[int, RunResult] | None = None, path: str | os.PathLike | None = None, *,
                   log_dir: str | os.PathLike | None = None, note: str | None = None,
                   allow_partial: bool = False, scale: str | None = None,
                   elapsed_seconds: float | None = None) -> Path:
    """Pack the finished logs of the 12 runs into one JSON file.

    ``results`` defaults to :func:`load_runs` of ``log_dir`` at ``scale`` (default: full). The
    default ``path`` is ``course_solutions.recorded_path("gpt_attention", scale)``:
    ``course_solutions/recorded/gpt_attention.json`` (full) or ``gpt_attention-laptop.json``.
    Fast-mode runs are refused: they are checks, not results. Unless ``allow_partial``, all 12 runs
    must be finished. The file holds each run (configuration, per-epoch history, timings, memory),
    the scale and its settings, the total time (``elapsed_seconds`` if given, else the sum of every
    run's setup and training time) and :func:`conclusions` with whether each holds.
    """
    if results is None:
        results = load_runs(log_dir, scale=scale or "full")
    fast = [r.label for r in results.values() if r.config.fast or r.config.scale == "fast"]
    if fast:
        raise ValueError(f"fast-mode runs cannot be recorded as results: {', '.join(fast)}")
    scales = {r.config.scale or "full" for r in results.values()}
    if len(scales) > 1:
        raise ValueError(f"runs of different scales cannot be recorded together: {sorted(scales)}")
    level = scales.pop() if scales else (scale or "full")
    if path is None:
        from course_solutions import recorded_path

        path = recorded_path(ASSIGNMENT, level)
    unfinished = [n for n in CONFIGS if n not in results or not results[n].finished]
    if unfinished and not allow_partial:
        raise ValueError(f"runs not finished (or missing): {unfinished}; finish them first (--all), "
                         "or pass allow_partial=True")
    runs = [results[n].to_json() for n in sorted(results)]
    devices = sorted({r["device_description"] for r in runs if r.get("device_description")})
    summed = sum((r.get("setup_seconds") or 0.0) + (r.get("total_seconds") or 0.0) for r in runs)
    total = summed if elapsed_seconds is None else float(elapsed_seconds)
    data = json_safe({
        "runner": f"course_lib.runners.{ASSIGNMENT}", "assignment": ASSIGNMENT, "dataset": DATASET,
        "scale": level, "scale_settings": {"full": {}, "laptop": LAPTOP}.get(level, {}),
        "date": now(), "note": note, "devices": devices, "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python_version": platform.python_version(), "platform": platform.platform(),
        "complete": not unfinished, "total_seconds": total, "total_minutes": total / 60,
        "runs_seconds": summed, "conclusions": conclusions(results) if not unfinished else [],
        "runs": runs,
    })
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def _clock(result: RunResult) -> tuple[list[float], str]:
    """Cumulative seconds at the end of each epoch: CPU seconds of the run's process where they were
    logged on a CPU (steady on a shared machine), else wall-clock seconds; and which."""
    h = result.history
    if result.cpu_seconds_per_epoch is not None and str(h["device"].iloc[-1]).startswith("cpu"):
        return np.cumsum(pd.to_numeric(h["epoch_cpu_seconds"]).to_numpy()).tolist(), "CPU seconds"
    return pd.to_numeric(h["wall_clock_seconds"]).tolist(), "wall-clock seconds"


def _best_so_far_at(result: RunResult, seconds: float) -> float:
    """The lowest validation perplexity among the epochs finished within ``seconds`` (:func:`_clock`)."""
    clock, _ = _clock(result)
    done = [float(v) for t, v in zip(clock, result.history["valid_ppl"]) if t <= seconds + 1e-9]
    return min(done) if done else float("inf")


def conclusions(results: Mapping[int, RunResult]) -> list[dict]:
    """What Problem 3's questions rely on, checked on the 12 runs: ``[{"id", "statement", "holds",
    "evidence"}, ...]`` (``holds`` is computed here, from the histories).

    - ``adaptive_beats_sgd`` (Q4): for each architecture, Adam and AdamW have a lower validation
      perplexity than SGD and SGD with momentum after every epoch, and the worse of Adam and AdamW
      reaches a best validation perplexity at least 2 times lower than the better of the other two.
    - ``momentum_beats_sgd`` (Q4): momentum reaches a lower best validation perplexity than plain SGD
      (both architectures).
    - ``adamw_close_to_adam`` (Q4): weight decay 5e-4 changes the best validation perplexity of Adam
      by less than 5 % (both architectures).
    - ``gpt_vs_lstm_per_epoch`` (Q5): which of experiments 1 (LSTM) and 5 (GPT), both Adam and
      1 layer, has the lower validation perplexity after the most epochs (``winner``).
    - ``gpt_vs_lstm_per_second`` (Q3, Q5): which has the lower best validation perplexity within the
      time the faster of the two took (``winner``). Time is the CPU time of the run's process where
      it was logged on a CPU (wall-clock time on a CPU shared with other work varies by a factor of
      several between identical epochs), else wall-clock time (``clock`` says which).
    - ``deeper_costs_time`` (Q3, Q7): time per epoch grows with depth, 1 < 2 < 4 layers (experiments
      2, 9, 10 and 6, 11, 12; the same clock).
    - ``deeper_costs_memory`` (Q7): the peak memory grows with depth, 1 < 2 < 4 layers (peak RSS of
      each run's own process on a CPU; peak allocated on CUDA).
    - ``gpt_overfits`` (Q8): GPT-Adam-1L's validation perplexity rises after its best epoch while
      its training perplexity keeps falling.
    """
    r = results
    out: list[dict] = []
    needed = set(CONFIGS)
    if not needed <= set(r):
        return out

    def best(n):
        return r[n].best_valid_ppl

    groups = {"LSTM": (1, 2, 3, 4), "GPT": (5, 6, 7, 8)}
    adaptive = {arch: (max(best(a), best(b)), min(best(c), best(d))) for arch, (a, b, c, d) in groups.items()}

    def ahead_every_epoch(a, b, c, d):
        hs = [pd.to_numeric(r[n].history["valid_ppl"]).tolist() for n in (a, b, c, d)]
        return all(max(x[:2]) < min(x[2:]) for x in zip(*hs))

    every = {arch: ahead_every_epoch(*ns) for arch, ns in groups.items()}
    out.append({"id": "adaptive_beats_sgd", "statement": "Adam and AdamW are far ahead of SGD and SGD with momentum, "
                "for both architectures: a lower validation perplexity after every epoch, and a best validation "
                "perplexity at least 2 times lower.",
                "holds": all(s >= 2 * a for a, s in adaptive.values()) and all(every.values()),
                "evidence": {k: f"worst of Adam/AdamW {a:.1f}, best of SGD/momentum {s:.1f} (x{s / a:.1f}); "
                                f"ahead after every epoch: {every[k]}" for k, (a, s) in adaptive.items()}})
    out.append({"id": "momentum_beats_sgd", "statement": "SGD with momentum reaches a lower best validation perplexity "
                "than plain SGD, for both architectures.", "holds": best(4) < best(3) and best(8) < best(7),
                "evidence": f"LSTM: SGD {best(3):.1f}, momentum {best(4):.1f}; GPT: SGD {best(7):.1f}, momentum {best(8):.1f}"})
    ratio = {"LSTM": best(2) / best(1), "GPT": best(6) / best(5)}
    out.append({"id": "adamw_close_to_adam", "statement": "AdamW's weight decay (5e-4) changes the best validation "
                "perplexity of Adam by less than 5%, for both architectures.",
                "holds": all(abs(v - 1) < 0.05 for v in ratio.values()),
                "evidence": {k: f"AdamW / Adam best valid ppl = {v:.4f}" for k, v in ratio.items()}})
    lstm, gpt = r[1].history, r[5].history
    epochs = min(len(lstm), len(gpt))
    per_epoch = [float(lstm["valid_ppl"].iloc[i]) < float(gpt["valid_ppl"].iloc[i]) for i in range(epochs)]
    lstm_wins = sum(per_epoch) > epochs / 2
    winner = "LSTM" if lstm_wins else "GPT"
    out.append({"id": "gpt_vs_lstm_per_epoch", "winner": winner,
                "statement": f"Per epoch, the {winner} (Adam, 1 layer) has the lower validation perplexity after most "
                             "epochs (experiments 1 and 5).", "holds": sum(per_epoch) != epochs / 2,
                "evidence": {"LSTM valid ppl": [round(float(v), 2) for v in lstm["valid_ppl"]],
                             "GPT valid ppl": [round(float(v), 2) for v in gpt["valid_ppl"]]}})
    (clock_lstm, unit), (clock_gpt, _) = _clock(r[1]), _clock(r[5])
    budget = min(clock_lstm[-1], clock_gpt[-1])
    at = {"LSTM": _best_so_far_at(r[1], budget), "GPT": _best_so_far_at(r[5], budget)}
    winner = min(at, key=at.get)
    out.append({"id": "gpt_vs_lstm_per_second", "winner": winner, "clock": unit,
                "statement": f"Per second of training ({unit}), the {winner} (Adam, 1 layer) reaches the lower "
                             f"validation perplexity within the time the faster run took ({budget:.0f} s).",
                "holds": at["LSTM"] != at["GPT"],
                "evidence": {k: f"best valid ppl within {budget:.0f} {unit}: {v:.1f}" for k, v in at.items()}
                | {"seconds per epoch": {"LSTM": r[1].seconds_per_epoch, "GPT": r[5].seconds_per_epoch},
                   "CPU seconds per epoch": {"LSTM": r[1].cpu_seconds_per_epoch, "GPT": r[5].cpu_seconds_per_epoch}}})
    depth = {"LSTM": (2, 9, 10), "GPT": (6, 11, 12)}
    use_cpu = all(_clock(r[n])[1] == "CPU seconds" for ns in depth.values() for n in ns)
    spe = {k: [r[n].cpu_seconds_per_epoch if use_cpu else r[n].seconds_per_epoch for n in ns] for k, ns in depth.items()}
    unit = "CPU seconds" if use_cpu else "wall-clock seconds"
    out.append({"id": "deeper_costs_time", "clock": unit,
                "statement": f"Deeper models take more time per epoch ({unit}): 1 < 2 < 4 layers (AdamW; "
                             "experiments 2, 9, 10 and 6, 11, 12).",
                "holds": all(v[0] < v[1] < v[2] for v in spe.values()),
                "evidence": {k: f"{unit} per epoch for 1, 2, 4 layers: " + ", ".join(f"{x:.2f}" for x in v)
                             for k, v in spe.items()}
                | {"wall-clock seconds per epoch": {k: [r[n].seconds_per_epoch for n in ns] for k, ns in depth.items()}}})

    def memory(n):
        return r[n].cpu_max_rss_mib if r[n].memory_kind in ("cpu_rss", "cpu_max_rss") else r[n].memory_mib

    mem = {k: [memory(n) for n in ns] for k, ns in depth.items()}
    out.append({"id": "deeper_costs_memory", "statement": "Deeper models use more memory: the peak grows from 1 to 2 "
                "to 4 layers (AdamW; experiments 2, 9, 10 and 6, 11, 12).",
                "holds": all(None not in v and v[0] < v[1] < v[2] for v in mem.values()),
                "evidence": {k: "peak MiB for 1, 2, 4 layers: " + ", ".join(f"{x:.1f}" if x is not None else "?" for x in v)
                             for k, v in mem.items()}})
    h = r[5].history
    b = int(pd.to_numeric(h["valid_ppl"]).idxmin())
    train = pd.to_numeric(h["train_ppl"]).tolist()
    overfits = b < len(h) - 1 and float(h["valid_ppl"].iloc[-1]) > float(h["valid_ppl"].iloc[b]) \
        and all(x > y for x, y in zip(train[b:], train[b + 1:]))
    out.append({"id": "gpt_overfits", "statement": "GPT-Adam-1L overfits: after its best epoch its validation "
                "perplexity rises while its training perplexity keeps falling.", "holds": overfits,
                "evidence": {"best epoch": int(h["epoch"].iloc[b]), "train ppl": [round(x, 2) for x in train],
                             "valid ppl": [round(float(v), 2) for v in h["valid_ppl"]]}})
    return json_safe(out)


def load_recorded(data: Mapping | None = None) -> dict[int, RunResult]:
    """The recorded runs (``course_solutions.load_recorded("gpt_attention")``) as RunResults with
    ``recorded=True`` (labels end in "(recorded)"). Raises ``course_solutions.RecordedError`` if
    there is no recorded file yet (instructor material: students never have it)."""
    if data is None:
        from course_solutions import load_recorded as load_result

        data = load_result(ASSIGNMENT)
    out = {}
    for r in data["runs"]:
        config = _config_from_dict(r["config"])
        out[int(r["number"])] = RunResult(
            config=config, history=_history_frame(r["history"]), recorded=True,
            vocabulary_size=r.get("vocabulary_size"), num_parameters=r.get("num_parameters"),
            num_trainable_parameters=r.get("num_trainable_parameters"), device=r.get("device"),
            device_description=r.get("device_description"), note=data.get("note"),
        )
    return out


def results_frame(results: Mapping[int, RunResult] | Iterable[RunResult]) -> pd.DataFrame:
    """One row per experiment (:meth:`RunResult.summary`), sorted by architecture (LSTM first, as in
    the handout), layers, then optimizer (Adam, AdamW, SGD, Momentum)."""
    items = list(results.values() if isinstance(results, Mapping) else results)
    if not items:
        raise ValueError("no runs to tabulate")
    df = pd.DataFrame([r.summary() for r in items])
    df["architecture"] = pd.Categorical(df["architecture"], categories=list(_ARCH_NAMES.values()), ordered=True)
    df["optimizer"] = pd.Categorical(df["optimizer"], categories=list(_OPT_NAMES.values()), ordered=True)
    df = df.sort_values(["architecture", "layers", "optimizer"], kind="mergesort").reset_index(drop=True)
    return df


def results_table(results: Mapping[int, RunResult] | Iterable[RunResult], *, caption: str | None = None,
                  precision: int = 2):
    """The results table of Problem 3 (question 2) as a Styler: sorted by architecture, layers, then
    optimizer; the best validation perplexity of each architecture in bold; a caption that explains
    the columns (and says when the numbers are recorded ones)."""
    from ..tables import results_table as _table

    items = list(results.values() if isinstance(results, Mapping) else results)
    df = results_frame(items)
    kinds = sorted({r.memory_kind for r in items if r.memory_kind})
    if caption is None:
        memory = "; ".join(MEMORY_KINDS.get(k, k) for k in kinds) or "peak memory"
        recorded = any(r.recorded for r in items)
        caption = (
            ("RECORDED results (not run here). " if recorded else "")
            + "WikiText-2, perplexity (ppl) = exp(mean NLL per token over all real tokens). "
            "exp: experiment number in run_exp.py; best valid ppl: lowest validation ppl across epochs, "
            "reached at 'best epoch'; final train ppl: training ppl of the last epoch; s/epoch: mean "
            "wall-clock seconds per epoch (training + validation); memory (MiB): steady-state " + memory
            + "; tokens/s: training tokens per second. Bold: best validation ppl of each architecture."
        )
    return _table(df, sort_by=["architecture", "layers", "optimizer"], best_in_bold=["best valid ppl"],
                  group_by="architecture", precision=precision, caption=caption)


def plot_results(results: Mapping[int, RunResult] | Iterable[RunResult], *, x: str = "both",
                 numbers: Iterable[int] | None = None, title: str | None = None, caption: str | None = None):
    """Learning curves (question 1): train and validation perplexity, log scale, against epochs
    and/or wall-clock time (``x="epoch"``, ``"seconds"`` or ``"both"``), one line per experiment."""
    from ..plot import plot_runs

    items = list(results.values() if isinstance(results, Mapping) else results)
    if numbers is not None:
        wanted = set(numbers)
        items = [r for r in items if r.number in wanted]
    if not items:
        raise ValueError("no runs to plot")
    recorded = any(r.recorded for r in items)
    if caption is None:
        caption = (("RECORDED runs (not run here). " if recorded else "")
                   + "Perplexity on a log scale (SGD runs start in the thousands). Train perplexity is "
                   "measured during each epoch, validation perplexity after it; wall-clock time is "
                   "cumulative training + validation time. Stars: each run's lowest validation perplexity.")
    return plot_runs({r.label: r.history for r in items}, x=x, title=title, caption=caption)


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m course_lib.runners.{ASSIGNMENT}",
        description="Train the 12 LSTM / GPT configurations of Problem 3 on WikiText-2 (the handout's run_exp.py).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""scales (--scale, else COURSE_SCALE, else fast with COURSE_FAST=1, else full with CUDA, laptop without):
  fast    seconds on a CPU, a check of the code (never recorded as results)
  laptop  all 12 on a 2-core CPU in about 25 minutes: narrower models, 64-token sequences, a slice of
          the data, the 4,094 most frequent words, 6 epochs; logs under <log-dir>/laptop/
  full    the handout's settings (10 epochs, batch 16 x 256 tokens, embedding 768), for a GPU

recording the reference runs (instructor material, needs course_solutions):
  full scale, on a GPU:
    python -m course_lib.runners.gpt_attention --all --scale full
    python -m course_lib.runners.gpt_attention --scale full --record course_solutions/recorded/gpt_attention.json
  laptop scale, one process per configuration (so that the peak memory compares them):
    for n in $(seq 12); do python -m course_lib.runners.gpt_attention --scale laptop --config $n; done
    python -m course_lib.runners.gpt_attention --scale laptop --record course_solutions/recorded/gpt_attention-laptop.json
--record checks the conclusions the runs show and stores them with the runs.""",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", type=int, nargs="+", choices=sorted(CONFIGS), metavar="N",
                       help="experiment number(s), 1-12, as in the handout")
    which.add_argument("--all", action="store_true", help="all 12 experiments (finished ones are skipped)")
    which.add_argument("--list", action="store_true", help="list the configurations and their status")
    parser.add_argument("--scale", choices=SCALES, default=None,
                        help="fast (seconds, checks), laptop (all 12 in about 25 minutes on a 2-core CPU) or full "
                             "(the handout's settings, for a GPU); default: COURSE_SCALE, else fast with "
                             "COURSE_FAST=1, else full with CUDA and laptop without")
    parser.add_argument("--fast", action="store_true", help="same as --scale fast")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 10, the handout's)")
    parser.add_argument("--log-dir", default=None,
                        help="folder of the runs' logs (default: $COURSE_RUNS_DIR/gpt_attention or the user cache)")
    parser.add_argument("--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda:0, ...")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA (fp32 everywhere)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: 2 on CUDA, else 0)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start over (previous logs are moved aside, not deleted)")
    parser.add_argument("--record", metavar="PATH", nargs="?", const="", default=None,
                        help="pack the finished logs of the 12 runs at --scale into PATH, with the conclusions they "
                             "show (no PATH: course_solutions/recorded/gpt_attention.json for full, "
                             "gpt_attention-laptop.json for laptop)")
    parser.add_argument("--note", default=None, help="a note stored in the --record JSON")
    parser.add_argument("--elapsed", type=float, default=None, metavar="SECONDS",
                        help="with --record: the measured total time of the 12 runs (default: the sum of their "
                             "setup and training times from the logs)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="tqdm progress bars (default: on)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[int, RunResult]:
    args = build_parser().parse_args(argv)
    log_dir = Path(args.log_dir) if args.log_dir else default_log_dir()
    level = "fast" if args.fast else (args.scale or current_scale())
    fast = level == "fast"
    if args.list:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(experiments(log_dir, scale=level).to_string(index=False))
        print(f"logs: {log_dir if level == 'full' else log_dir / level}")
        return {}
    numbers = list(CONFIGS) if args.all else (args.config or [])
    if not numbers and args.record is None:
        build_parser().error("say which runs: --config N, --all, or --list (or --record to pack finished logs)")
    results: dict[int, RunResult] = {}
    for n in numbers:
        config = CONFIGS[n].replace(fast=fast, scale=level, device=args.device, amp=args.amp,
                                    compile=args.compile, num_workers=args.num_workers)
        if args.epochs is not None:
            config = config.replace(epochs=args.epochs)
        results[n] = run(config, progress=args.progress, log_dir=log_dir, resume=args.resume,
                         log=lambda s: print(s, flush=True), load_model=False)
    if results:
        from ..tables import to_markdown_table

        print(to_markdown_table(results_table(results), precision=2), flush=True)
        print(f"logs: {run_dir(next(iter(results.values())).config, log_dir).parent}", flush=True)
    if args.record is not None:
        if fast:
            build_parser().error("fast-mode runs cannot be recorded as results (drop --fast)")
        path = record_results(load_runs(log_dir, scale=level), args.record or None, note=args.note,
                              scale=level, elapsed_seconds=args.elapsed)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for c in data["conclusions"]:
            print(f"[{'holds' if c['holds'] else 'DOES NOT HOLD'}] {c['statement']}", flush=True)
        print(f"recorded {path} ({level} scale, {data['total_minutes']:.1f} minutes)", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
