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
    result.history, result.best_dev_ppl, result.best_epoch
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
epoch: ``train_ppl``, ``dev_ppl``, their per-token losses, ``epoch_seconds``,
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

**Code.** This module holds the data, the model's forward and loss as functions of a batch, the
training loop of one configuration (:func:`run`) and the command line; it trains with
:func:`course_lib.train.train_epoch` and :func:`course_lib.train.evaluate` and logs through
:class:`course_lib.runlog.RunLog`. The configurations and scales are in ``_gpt_attention_config``,
the results (:class:`RunResult`, recording, conclusions, tables, plots) in ``_gpt_attention_results``;
their public names are re-exported here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .. import train as train_lib
from ..device import SCALES, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..runlog import RunLog, epoch_memory, model_fingerprint, now, sync
from ..train import perplexity
from . import json_safe
from ._gpt_attention_config import (  # noqa: F401 - re-exported: the runner's public names live here
    _EXECUTION_FIELDS,
    ASSIGNMENT,
    CONFIGS,
    DATASET,
    FAST_BATCH_SIZE,
    FAST_EPOCHS,
    FAST_SEQUENCE_LENGTH,
    FAST_SIZES,
    FAST_TRAIN_SEQUENCES,
    FAST_VALID_SEQUENCES,
    LAPTOP,
    LOG_FORMAT,
    MODELS,
    OPTIMIZERS,
    RECORD_PATH,
    Config,
    _at_scale,
    default_log_dir,
    experiments,
    get_config,
    run_dir,
)
from ._gpt_attention_results import (  # noqa: F401 - re-exported
    HISTORY_COLUMNS,
    RunResult,
    _history_frame,
    _result_from_folder,
    conclusions,
    current_names,
    load_recorded,
    load_runs,
    plot_results,
    record_results,
    results_frame,
    results_table,
)

__all__ = [
    "Config", "CONFIGS", "RunResult", "RunInterrupted", "run", "run_all", "main", "build_parser",
    "default_model_factory", "model_factory_from", "experiments", "default_log_dir", "run_dir",
    "load_runs", "record_results", "load_recorded", "results_frame", "results_table", "plot_results",
    "evaluate", "FAST_EPOCHS", "RECORD_PATH", "ASSIGNMENT",
]

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
# training


class RunInterrupted(Exception):
    """Raise from an ``on_step`` hook to stop a run (as a crash or a lost session would)."""


# About half of run() is its docstring; the steps are _read_back, _meta, _train and _epoch.
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
                f"{result.best_dev_ppl:.2f} at epoch {result.best_epoch})")
            return result
        runlog.discard(f"the model's code changed since {runlog.folder} was written")

    # Data, model, optimizer (seeded as in the original: seed_experiment(args.seed) comes first).
    seed_everything(config.seed)
    train_ds, dev_ds, vocabulary_size = _load_wikitext(config) if data is None else data
    train_ds = _first(train_ds, config.max_train_sequences)
    dev_ds = _first(dev_ds, config.max_valid_sequences)
    model = factory(config, int(vocabulary_size)).to(device)
    runlog.check_model(model)
    optimizer = _make_optimizer(model, config, device)
    start_epoch, history = runlog.resume(model, optimizer, config.epochs)
    history = [current_names(r) for r in history]  # a log begun before the dev_* names
    sizes = {"vocabulary_size": int(vocabulary_size),
             "num_parameters": sum(p.numel() for p in model.parameters()),
             "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    runlog.write_meta(_meta(config, model, device, sizes, len(train_ds), len(dev_ds), setup_start))
    say(f"{config.label}: {type(model).__name__}, {sizes['num_parameters']:,} parameters "
        f"({sizes['num_trainable_parameters']:,} trainable), "
        f"{config.optimizer_name} lr {config.lr:g}, on {device} ({_amp_dtype(device, config.amp)}); "
        f"{len(train_ds):,} train / {len(dev_ds):,} valid sequences of {config.sequence_length}, "
        f"vocabulary {int(vocabulary_size):,}" + (f" [{config.scale} scale]" if config.scale != "full" else "")
        + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))

    trained_now = _train(config, model, optimizer, runlog, history, (train_ds, dev_ds), device,
                         progress=progress, say=say, on_step=on_step, on_start=on_start)
    result = RunResult(
        config=config, history=_history_frame(history), log_dir=runlog.folder, model=model.eval(),
        setup_seconds=runlog.meta.get("setup_seconds"), **sizes,
        device=str(device), device_description=describe_device(device), resumed_from_epoch=start_epoch,
        epochs_trained_now=trained_now,
    )
    if len(result.history):
        say(f"{config.label}: best validation perplexity {result.best_dev_ppl:.2f} at epoch "
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


def _meta(config: Config, model: nn.Module, device: torch.device, sizes: dict, n_train: int, n_dev: int,
          setup_start: float) -> dict:
    """The fields of ``meta.json``."""
    return {
        "runner": f"course_lib.runners.{ASSIGNMENT}", "dataset": DATASET,
        "number": config.number, "name": config.name, "config": dataclasses.asdict(config),
        "fingerprint": config.fingerprint(), "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_fingerprint": model_fingerprint(model), **sizes,
        "train_sequences": n_train, "dev_sequences": n_dev,
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
    dev_loader = _loader(datasets[1], config, device)
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
            row = _epoch(config, model, optimizer, step, token_nll, batches, dev_loader, device, epoch,
                         wall=float(history[-1]["wall_clock_seconds"]) if history else 0.0,
                         resumed=start_epoch > 0, on_step=on_step)
            if tqdm:
                batches.close()
            history.append(json_safe(row))
            runlog.save_epoch(history, model, optimizer, config=dataclasses.asdict(config))
            say(f"{config.label} epoch {epoch:2d}/{config.epochs}: train ppl {row['train_ppl']:.2f} | "
                f"dev ppl {row['dev_ppl']:.2f} | {row['epoch_seconds']:.1f}s "
                f"({row['tokens_per_second']:,.0f} tokens/s) | memory {row['peak_memory_mib']:,.0f} MiB "
                f"({row['memory_kind']})")
            if epoch_bar is not None:
                epoch_bar.set_postfix(train_ppl=f"{row['train_ppl']:.1f}", dev_ppl=f"{row['dev_ppl']:.1f}")
    finally:
        if epoch_bar is not None:
            epoch_bar.close()
        torch.set_float32_matmul_precision(old_precision)
    return len(history) - start_epoch


def _epoch(config: Config, model: nn.Module, optimizer, step, token_nll, batches, dev_loader,
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
    dev_loss, n_dev = train_lib.evaluate(model, dev_loader, device=device, token_nll=token_nll, acc_dtype=acc)
    sync(device)
    dev_seconds = time.perf_counter() - t1
    epoch_seconds = train_seconds + dev_seconds
    return {
        "epoch": epoch,
        "train_loss": train_loss, "train_ppl": perplexity(train_loss),
        "dev_loss": dev_loss, "dev_ppl": perplexity(dev_loss),
        "train_objective": totals.mean_loss(),
        "train_tokens": n_train, "dev_tokens": n_dev,
        "train_seconds": train_seconds, "dev_seconds": dev_seconds,
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
