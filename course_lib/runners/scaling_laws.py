"""The IsoFLOP experiment of ``scaling_laws`` (handout section 2.4): seven decoder-only Pig Latin
translators, each trained across the compute budgets, the IsoFLOP profiles and the compute-optimal
model size they predict (Hoffmann et al. 2022, "Chinchilla", approach 2).

Public API (``from course_lib.runners import scaling_laws as sl``)::

    result = sl.run(model_class=DecoderOnlyTransformer, decoder_only_example=decoder_only_example,
                    decoder_only_loss=decoder_only_loss, fit_isoflop_minimum=fit_isoflop_minimum,
                    fit_power_law=fit_power_law, compute_optimal_tokens=compute_optimal_tokens)
    result.points        # DataFrame, one row per (model, evaluation): name, hidden_size, n_params, mark_flops,
                         #   budget (NaN between budgets), tokens, flops (= 6 N tokens), val_loss, ...
    result.profiles      # {budget C: (n_params, val_losses)}: the IsoFLOP profiles, smallest model first
    result.analysis      # budgets, n_opt, d_opt, coeffs, tokens_per_parameter, coefficient, exponent,
                         #   n_opt_at (1e15), d_opt_at, tokens_per_parameter_at, section_2_3, fit_errors
    result.runs          # {name: SizeRun}: each model's history, parameters, times
    sl.plot_loss_vs_flops(result)         # Q1: validation loss against FLOPs, one curve per model
    sl.plot_isoflop_profiles(result)      # the profiles with their fitted parabolas and minima
    sl.plot_compute_optimal(result)       # Q2, Q3: N_opt(C) and D_opt(C) power laws, the 1e15 prediction
    sl.profiles_table(result); sl.results_table(result)    # loss per size and budget; the optima
    sl.conclusions(result)                # what the run shows, each checked; also for a recorded dict
    one = sl.run_size("H32")              # one model (read back when finished): one.points, one.at_budgets()
    sl.analyse(profiles, fit_isoflop_minimum=..., ...)   # the analysis of any {C: (N list, loss list)}
    sl.section_2_3_setup()                # N, D, C of section 2.3's decoder-only training (Q3)
    sl.names_for("laptop"), sl.BUDGETS, sl.SIZES, sl.evaluation_marks(sl.BUDGETS)

    python -m course_lib.runners.scaling_laws --list              # the models and budgets at this scale
    python -m course_lib.runners.scaling_laws --run H32           # one model (reference code, instructors)
    python -m course_lib.runners.scaling_laws --all --scale laptop --record PATH

``run(*, model_class, decoder_only_example, decoder_only_loss, flops_per_token, fit_isoflop_minimum,
fit_power_law, compute_optimal_tokens, names, scale, progress, log_dir, resume, log)``: the pieces not
passed are the references (``course_solutions.nmt`` for the model and the data functions,
``course_solutions.scaling`` for the rest; instructor material: a student passes their own).
``model_class(vocab_size, hidden_size, num_layers, num_heads)`` with ``forward(inputs) -> logits``;
``flops_per_token(n_params) -> FLOPs``; ``fit_isoflop_minimum(n_params, losses) -> (n_opt, coeffs)``
(``coeffs`` of ``np.polyval`` in ``log10 N``); ``fit_power_law(C, n_opt) -> (coefficient, exponent)``;
``compute_optimal_tokens(C, n_opt) -> D_opt``. Training uses only the first three and
``flops_per_token``; the fits are recomputed from the logged points at every call (cheap).

**Training and budgets.** The model, data, split, batches and optimisation are imported from
:mod:`course_lib.runners.nmt_pig_latin` (``build_decoder_only``, ``train_decoder_only``,
``make_batches``, ``decoder_only_val_loss``): the large data set, the 80/20 split, batches of 64
pairs of one length group, Adam at ``5e-4 * 0.99 ** epoch``, 3 layers, one head; the seven sizes
differ in hidden size only (``SIZES``). **FLOPs** are ``C = flops_per_token(N) * D = 6 N D`` with
``N`` = **all** parameters (``sum(p.numel())``, embedding and biases included, as
``calc_parameters_decoder`` counts them and ``course_solutions.scaling.flops_per_token`` expects) and
``D`` = the **positions processed** (every input position of ``<SOS> source <EOP> target``, the loss
positions and the prompt alike: the model computes all of them; ``train_decoder_only``'s
``max_tokens`` counts the same).

Each model is trained **once**, up to the largest budget, and its validation loss is measured when
its cumulative FLOPs first reach each budget (and at the marks between them, for the curves of Q1):
``D_C = ceil(C / (6 N))`` positions, after the batch that reaches them, as ``max_tokens`` stops.
That is exactly the model a separate run to that budget would give: the learning rate depends on the
epoch number only (the handout's ``0.99`` decay per epoch, not a schedule stretched to the run's
length) and the batch order of every epoch is seeded, so a run to a smaller budget is a prefix of the
run to the largest (``tests/test_runner_scaling_laws.py`` checks it against
``train_decoder_only(max_tokens=D_C)``). This is how the handout varies the FLOPs ("by training for
different numbers of epochs") and it costs 1/1.94 of one run per (size, budget). With a cosine
schedule that must end at the budget (Chinchilla's runs), each (size, budget) would need its own run.
The overshoot past a budget is less than one batch (``budget_overshoot`` in :func:`conclusions`; the
points are placed at their budget in the profiles, at their true FLOPs in the curves).

The evaluation at a mark is ``train_decoder_only``'s ``on_batch`` callback (after every optimizer
step, with the positions processed so far): the first step whose positions reach a mark evaluates it.

**Analysis** (:func:`analyse`): each budget's points (the seven sizes' validation losses) are one
IsoFLOP profile, fitted by a parabola in ``log10 N`` whose vertex is ``N_opt(C)``; a power law
``N_opt = k C^a`` through the vertices gives the prediction at ``1e15`` FLOPs (the handout's Q2), and
``D_opt = C / (6 N_opt)`` the compute-optimal tokens (Q3), whose ratio ``D_opt / N_opt`` compares with
Chinchilla's about 20 tokens per parameter. The setup of section 2.3 (``nmt_pig_latin``'s
``decoder H32 1 head``: 100 epochs of the large training split) is placed against the law:
``section_2_3`` holds its ``N``, ``D``, ``C`` and the optimal ``N`` and ``D`` at that ``C``.

**Scales** (:func:`course_lib.device.scale`, ``--scale``; one code path):

- ``full`` and ``laptop``: the handout's budgets, ``0.08, 0.16, 0.32, 0.64, 1.28`` TFLOPs
  (``BUDGETS``), and the seven sizes of ``SIZES``. Measured on one CPU thread: the whole experiment
  takes about ``LAPTOP_CPU_MINUTES`` minutes of CPU (30 minutes of wall clock on a shared 2-core CPU),
  so the laptop scale **is** the handout's; ``full`` (the default with CUDA) runs the same settings on
  a GPU (not measured there): ``python -m course_lib.runners.scaling_laws --all --scale full --record
  course_solutions/recorded/scaling_laws.json``.
  Recorded: ``course_solutions/recorded/scaling_laws-laptop.json`` (:func:`conclusions` checks what it
  shows): every profile has an interior minimum (the lowest loss at H32 for 8e10 FLOPs, at H48 for
  the others; fitted optima 11 thousand to 45 thousand parameters); ``N_opt = 0.074 C^0.485`` (Chinchilla:
  exponent about 0.5); at ``1e15`` FLOPs ``N_opt`` = 1.4 million parameters and ``D_opt`` = 119 million
  positions, 84 per parameter (Chinchilla's about 20: on this small, repetitive task a model learns
  from more passes over less data; the ratio also varies from 44 to 109 across the five budgets). The
  setup of section 2.3 (14,622 parameters, 100 epochs: 32.7 million positions, 2,233 per parameter,
  2.9e12 FLOPs) is **not** compute-optimal: at its compute the law gives 82 thousand parameters on 5.8
  million positions, a model 5.6 times larger trained 5.6 times shorter (about 18 epochs).
- ``fast`` (``COURSE_FAST=1``): four tiny one-layer models, budgets of ``1e7 .. 4e7`` FLOPs, a few
  hundred pairs: seconds, to check that everything runs (the profiles need not have minima).

Each model logs through :class:`course_lib.runlog.RunLog` (``<log_dir>/<scale>/<name>/``): a finished
model is read back, not trained again, unless its settings or the code of the model or of the passed
training functions changed; an interrupted one starts over (each takes minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import pig_latin
from ..device import SCALES, describe_device, get_device
from ..device import scale as current_scale
from ..runlog import RunLog, code_fingerprint, model_fingerprint, now
from . import json_safe, run_folder, runs_dir, with_references
from . import nmt_pig_latin as nmt

__all__ = ["Config", "SizeRun", "ScalingResult", "SIZES", "BUDGETS", "FAST", "HANDOUT_BUDGET", "CHINCHILLA_TOKENS_PER_PARAMETER",
           "names_for", "config_for", "run_size", "run", "analyse", "profiles_from_points", "section_2_3_setup",
           "evaluation_marks", "plot_loss_vs_flops",
           "plot_isoflop_profiles", "plot_compute_optimal", "profiles_table", "results_table", "conclusions",
           "record", "default_log_dir", "main"]

ASSIGNMENT = "scaling_laws"
LOG_FORMAT = 1
_ADVICE = ("Pass your own classes and functions (model_class=, decoder_only_example=, decoder_only_loss=, "
           "flops_per_token=, fit_isoflop_minimum=, fit_power_law=, compute_optimal_tokens=), as the notebook does.")
_NMT_NAMES = {"model_class": "DecoderOnlyTransformer"}

#: The handout's compute budgets (FLOPs): 0.08 to 1.28 TFLOPs, doubling.
BUDGETS: tuple[float, ...] = (8e10, 1.6e11, 3.2e11, 6.4e11, 1.28e12)
#: The budget of the handout's question 2: the optimal model size at 1e15 FLOPs.
HANDOUT_BUDGET = 1e15
#: Hoffmann et al. 2022: compute-optimal models train on about 20 tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAMETER = 20.0
#: The seven hidden sizes (3 layers, one head): 4,254 to 205,854 parameters, each 1.7 to 2.2 times the one
#: before. Measured (the recorded run): the lowest loss of every budget is inside (H32 at 8e10 FLOPs, H48 above),
#: H16 and H128 are worse at every budget.
HIDDEN_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128)
#: Evaluations per halving of the FLOPs, and how far below the smallest budget the curves start.
MARKS_PER_OCTAVE = 2
OCTAVES_BELOW = 3
#: Measured: the seven models took 10.4 minutes of one CPU thread (the recorded run; 30 minutes of wall
#: clock on a 2-core CPU shared with other work; H16 alone 3.8 CPU minutes: 50 million positions).
LAPTOP_CPU_MINUTES = 11
#: What the ``fast`` scale changes: four one-layer models of hidden size 4..16, tiny budgets, slices.
FAST = {"num_layers": 1, "budgets": (1e7, 2e7, 4e7), "train_pairs": 384, "val_pairs": 96}
FAST_HIDDEN_SIZES: tuple[int, ...] = (4, 6, 8, 12)


@dataclass(frozen=True)
class Config:
    """One model of the experiment: its size, the budgets it is evaluated at, the optimisation (that of
    ``nmt_pig_latin``'s decoder-only runs) and the data slices (``None``: all)."""

    name: str = "H32"
    hidden_size: int = 32
    num_layers: int = 3
    num_heads: int = 1
    budgets: tuple[float, ...] = BUDGETS
    marks_per_octave: int = MARKS_PER_OCTAVE
    octaves_below: int = OCTAVES_BELOW
    dataset: str = "large"
    lr: float = 5e-4
    lr_decay: float = 0.99
    batch_size: int = 64
    seed: int = 0
    train_pairs: int | None = None
    val_pairs: int | None = None
    scale: str = "full"
    device: str = "auto"

    def fingerprint(self) -> dict:
        """The settings that decide what the run computes (not where it runs)."""
        fields = dataclasses.asdict(self)
        fields.pop("device")
        fields["budgets"] = [float(b) for b in self.budgets]
        return fields

    @property
    def label(self) -> str:
        return self.name if self.scale == "full" else f"{self.name} [{self.scale}]"


#: The seven models, at full scale (the laptop scale is the same).
SIZES: dict[str, Config] = {f"H{h}": Config(f"H{h}", h) for h in HIDDEN_SIZES}


def _fast_config(h: int) -> Config:
    return Config(f"H{h}", h, **{k: v for k, v in FAST.items()}, scale="fast")


def names_for(scale: str | None = None) -> list[str]:
    """The models of ``scale`` (default: the current one): the seven of ``SIZES``, or the fast four."""
    scale = scale or current_scale()
    return [f"H{h}" for h in FAST_HIDDEN_SIZES] if scale == "fast" else list(SIZES)


def config_for(name: str | Config, scale: str | None = None) -> Config:
    """The :class:`Config` of model ``name`` (``"H32"``, or a Config) at ``scale`` (default: the
    current :func:`course_lib.device.scale`)."""
    scale = scale or current_scale()
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}: use one of {', '.join(SCALES)}.")
    if isinstance(name, Config):
        return dataclasses.replace(name, scale=scale)
    known = names_for(scale)
    if name not in known:
        raise ValueError(f"Unknown model {name!r} at the {scale} scale: choose one of {', '.join(known)}.")
    if scale == "fast":
        return _fast_config(int(name[1:]))
    return dataclasses.replace(SIZES[name], scale=scale)


def evaluation_marks(budgets: Sequence[float], per_octave: int = MARKS_PER_OCTAVE,
                     octaves_below: int = OCTAVES_BELOW) -> list[float]:
    """The FLOPs at which a model's validation loss is measured: every budget, ``per_octave`` points
    per doubling between them, and as many from ``octaves_below`` doublings below the smallest one
    (the curves of Q1). Sorted, the budgets exactly among them."""
    lo, hi = min(budgets), max(budgets)
    steps = int(round(per_octave * (math.log2(hi / lo) + octaves_below)))
    grid = {lo * 2.0 ** (k / per_octave) for k in range(-per_octave * octaves_below, steps - per_octave * octaves_below + 1)}
    grid = {m for m in grid if m <= hi * (1 + 1e-9)}
    out = sorted(grid | {float(b) for b in budgets})
    # the budgets themselves, not a float neighbour of them
    merged: list[float] = []
    for m in out:
        if merged and math.isclose(m, merged[-1], rel_tol=1e-9):
            merged[-1] = m if any(m == b for b in budgets) else merged[-1]
            continue
        merged.append(m)
    return merged


# ---------------------------------------------------------------------------------------------------
# the pieces: passed, or the references


def _training_pieces(given: dict) -> dict:
    out = with_references({k: given[k] for k in ("model_class", "decoder_only_example", "decoder_only_loss")},
                          _NMT_NAMES, module=nmt.REFERENCES, advice=_ADVICE)
    out.update(with_references({"flops_per_token": given["flops_per_token"]}, module="course_solutions.scaling",
                               advice=_ADVICE))
    return out


def _analysis_pieces(given: dict) -> dict:
    return with_references({k: given.get(k) for k in ("fit_isoflop_minimum", "fit_power_law",
                                                      "compute_optimal_tokens")},
                           module="course_solutions.scaling", advice=_ADVICE)


# ---------------------------------------------------------------------------------------------------
# one model


@dataclass
class SizeRun:
    """One model trained across the budgets: ``points`` (one row per evaluation mark: ``mark_flops``,
    ``budget`` (the budget it stands for, NaN between budgets), ``tokens`` (positions processed),
    ``flops`` (``flops_per_token(N) * tokens``), ``val_loss``, ``seconds`` and ``cpu_seconds`` so far),
    ``history`` (``train_decoder_only``'s rows, one per epoch), its size and times."""

    config: Config
    points: pd.DataFrame
    history: pd.DataFrame
    num_parameters: int
    seconds: float
    cpu_seconds: float
    eval_seconds: float
    log_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def at_budgets(self) -> pd.DataFrame:
        """The rows of ``points`` at the budgets."""
        return self.points[self.points["budget"].notna()].reset_index(drop=True)


def default_log_dir() -> Path:
    """``COURSE_RUNS_DIR`` or ``./runs``, then ``scaling_laws``."""
    return runs_dir(ASSIGNMENT)


def _data(config: Config):
    """The training and validation pairs of ``nmt_pig_latin``'s decoder-only runs (the large data set,
    its 80/20 split; the slices of the fast scale), and the vocabulary with EOP."""
    pairs = pig_latin.load_pairs(config.dataset)
    train, val = pig_latin.split_pairs(pairs)
    train = train[: config.train_pairs] if config.train_pairs is not None else train
    val = val[: config.val_pairs] if config.val_pairs is not None else val
    vocab = pig_latin.build_vocab(pig_latin.load_pairs("large"), eop=True)
    return train, val, vocab


class _MarkEvaluator:
    """``train_decoder_only``'s ``on_batch``: after each optimizer step, with the positions processed so
    far, evaluates the model at every mark those positions have reached (once each)."""

    def __init__(self, marks_tokens: list[int], evaluate: Callable[[], dict]):
        self.marks, self.evaluate = marks_tokens, evaluate
        self.next, self.rows = 0, []

    def __call__(self, model: nn.Module, tokens_seen: int) -> None:
        while self.next < len(self.marks) and tokens_seen >= self.marks[self.next]:
            self.rows.append({"mark": self.next, "tokens": int(tokens_seen), **self.evaluate()})
            self.next += 1


def run_size(
    name: str | Config,
    *,
    model_class: type | None = None,
    decoder_only_example: Callable | None = None,
    decoder_only_loss: Callable | None = None,
    flops_per_token: Callable | None = None,
    scale: str | None = None,
    progress: bool = False,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = print,
) -> SizeRun:
    """Train (or read back) model ``name`` up to the largest budget, measuring its validation loss at
    each mark of :func:`evaluation_marks`. ``log_dir``: this model's folder (default
    ``runs/scaling_laws/<scale>/<name>``)."""
    config = config_for(name, scale)
    fns = _training_pieces({"model_class": model_class, "decoder_only_example": decoder_only_example,
                            "decoder_only_loss": decoder_only_loss, "flops_per_token": flops_per_token})
    say = log or (lambda *_: None)
    device = get_device(None if config.device in ("", "auto") else config.device)
    model = nmt.build_decoder_only(config.hidden_size, config.num_layers, config.num_heads,
                                   decoder_only_class=fns["model_class"], seed=config.seed).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    per_token = float(fns["flops_per_token"](n_params))
    if not per_token > 0:
        raise ValueError(f"flops_per_token({n_params}) must be a positive number of FLOPs, got {per_token!r}")
    marks = evaluation_marks(config.budgets, config.marks_per_octave, config.octaves_below)
    marks_tokens = [math.ceil(m / per_token) for m in marks]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fingerprint = {**config.fingerprint(), "code": code_fingerprint(
        fns["decoder_only_example"], fns["decoder_only_loss"], fns["flops_per_token"])}
    folder = Path(log_dir) if log_dir is not None else run_folder(default_log_dir(), config.scale, config.name)
    runlog = RunLog(folder, label=config.label, log_format=LOG_FORMAT, say=say)
    runlog.open(fingerprint, resume=resume)
    runlog.check_model(model)
    budgets = {i: float(b) for i, m in enumerate(marks) for b in config.budgets if m == b}

    def frame(rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame(rows)

    if runlog.finished(len(marks)) and runlog.load_final(model, len(marks)):
        meta = runlog.meta or {}
        rows = runlog.rows[: len(marks)]
        say(f"{config.label}: read back from {runlog.folder} ({n_params:,} parameters)")
        return SizeRun(config, frame(rows), pd.DataFrame(meta.get("train_history", [])), n_params,
                       float(meta.get("seconds", math.nan)), float(meta.get("cpu_seconds", math.nan)),
                       float(meta.get("eval_seconds", math.nan)), runlog.folder, model.eval())
    runlog.resume(model, optimizer, len(marks))  # no partial checkpoints are written: this starts over
    train, val, vocab = _data(config)
    val_batches = nmt.make_batches(val, vocab, config.batch_size, decoder_only_example=fns["decoder_only_example"],
                                   device=device)
    meta = {"runner": f"course_lib.runners.{ASSIGNMENT}", "config": dataclasses.asdict(config),
            "fingerprint": fingerprint, "model_fingerprint": model_fingerprint(model), "num_parameters": n_params,
            "flops_per_token": per_token, "marks": marks, "marks_tokens": marks_tokens,
            "train_pairs": len(train), "val_pairs": len(val), "device": str(device),
            "device_description": describe_device(device), "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python_version": platform.python_version(),
            "platform": platform.platform(), "started_at": now()}
    runlog.write_meta(meta)
    say(f"{config.label}: H={config.hidden_size}, {config.num_layers} layers, {n_params:,} parameters "
        f"({per_token:,.0f} FLOPs per position), on {device}; {marks_tokens[-1]:,} positions to reach "
        f"{marks[-1]:.3g} FLOPs ({len(marks)} evaluations)")
    t0, c0 = time.perf_counter(), time.process_time()
    clock = {"eval": 0.0}

    def evaluate() -> dict:
        t1 = time.perf_counter()
        loss = nmt.decoder_only_val_loss(model, val_batches)
        clock["eval"] += time.perf_counter() - t1
        return {"val_loss": loss, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}

    hook = _MarkEvaluator(marks_tokens, evaluate)
    # The per-epoch validation loss of train_decoder_only is not used here (the marks are): it gets the
    # first batch of validation pairs only, to cost nothing.
    history = nmt.train_decoder_only(model, train, val[: config.batch_size], vocab, max_tokens=marks_tokens[-1],
                                     lr=config.lr, lr_decay=config.lr_decay, batch_size=config.batch_size,
                                     seed=config.seed, decoder_only_example=fns["decoder_only_example"],
                                     decoder_only_loss=fns["decoder_only_loss"], optimizer=optimizer,
                                     on_batch=hook, progress=progress)
    if len(hook.rows) != len(marks):
        raise RuntimeError(f"{config.label}: {len(hook.rows)} of {len(marks)} evaluations were made: train_decoder_only "
                           "stopped before the largest budget")
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    per_epoch = float(history["tokens"].iloc[0] / history["epoch_fraction"].iloc[0])  # positions of one epoch
    rows = []
    for r in hook.rows:
        i = r["mark"]
        rows.append(json_safe({"mark_flops": marks[i], "budget": budgets.get(i, math.nan), "tokens": r["tokens"],
                               "flops": per_token * r["tokens"], "epochs": r["tokens"] / per_epoch,
                               "val_loss": r["val_loss"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"]}))
    train_history = [json_safe(dict(row)) for row in history.to_dict("records")]
    runlog.save_epoch(rows, model, optimizer)
    runlog.write_meta({**meta, "train_history": train_history, "seconds": seconds, "cpu_seconds": cpu_seconds,
                       "eval_seconds": clock["eval"], "finished_at": now()})
    last = rows[-1]
    say(f"{config.label}: {last['tokens']:,} positions, validation loss {last['val_loss']:.4f} at "
        f"{last['flops']:.3g} FLOPs; {seconds:.0f}s ({cpu_seconds:.0f}s CPU, {clock['eval']:.0f}s evaluating)")
    return SizeRun(config, frame(rows), history, n_params, seconds, cpu_seconds, clock["eval"], runlog.folder,
                   model.eval())


# ---------------------------------------------------------------------------------------------------
# all the models, and the analysis


def _positions_per_pair(pair: tuple[str, str]) -> int:
    """The positions a decoder-only model processes for one pair: ``<SOS> source <EOP> target`` (the
    inputs; the targets are the same shifted by one, ending with ``<EOS>``)."""
    return len(pair[0]) + len(pair[1]) + 2


def section_2_3_setup(model_class: type | None = None, flops_per_token: Callable | None = None) -> dict:
    """The training setup of section 2.3 (``nmt_pig_latin``'s ``decoder H32 1 head`` at the handout's
    settings): its parameters ``n_params``, the positions it processes ``tokens`` (epochs times the
    positions of the large training split) and its compute ``flops``."""
    c = nmt.config_for(nmt.DECODER_ONLY_RUN, "full")
    fns = {**with_references({"model_class": model_class}, _NMT_NAMES, module=nmt.REFERENCES, advice=_ADVICE),
           **with_references({"flops_per_token": flops_per_token}, module="course_solutions.scaling", advice=_ADVICE)}
    model = nmt.build_decoder_only(c.hidden_size, c.num_layers, c.num_heads, decoder_only_class=fns["model_class"])
    n = sum(p.numel() for p in model.parameters())
    train, _ = pig_latin.split_pairs(pig_latin.load_pairs(c.dataset))
    per_epoch = sum(_positions_per_pair(p) for p in train)
    tokens = c.epochs * per_epoch
    return {"run": nmt.DECODER_ONLY_RUN, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
            "num_heads": c.num_heads, "epochs": c.epochs, "positions_per_epoch": per_epoch, "n_params": n,
            "tokens": tokens, "flops": float(fns["flops_per_token"](n)) * tokens, "tokens_per_parameter": tokens / n}


def profiles_from_points(points: pd.DataFrame) -> dict[float, tuple[list[int], list[float]]]:
    """``{budget: (n_params, val_losses)}`` from the points at the budgets (sizes in increasing order)."""
    at = points[points["budget"].notna()].sort_values(["budget", "n_params"])
    return {float(b): (g["n_params"].astype(int).tolist(), g["val_loss"].astype(float).tolist())
            for b, g in at.groupby("budget", sort=True)}


def analyse(profiles: Mapping[float, tuple[Sequence[float], Sequence[float]]], *,
            fit_isoflop_minimum: Callable | None = None, fit_power_law: Callable | None = None,
            compute_optimal_tokens: Callable | None = None, predict_at: float = HANDOUT_BUDGET,
            setup: dict | None = None) -> dict:
    """The IsoFLOP analysis of ``profiles`` (``{budget C: (model sizes N, losses)}``) with the given fits
    (default: the references): per budget the fitted optimum ``n_opt`` (the parabola's vertex,
    ``coeffs`` in ``log10 N``), ``d_opt = compute_optimal_tokens(C, n_opt)``, ``tokens_per_parameter``;
    the power law ``n_opt = coefficient * C^exponent`` (and ``d_exponent`` of ``D_opt``), the prediction
    ``n_opt_at`` / ``d_opt_at`` / ``tokens_per_parameter_at`` at ``predict_at``; with ``setup``
    (:func:`section_2_3_setup`) ``section_2_3``: the optimal ``N`` and ``D`` at its compute. A profile
    whose fit fails is left out of the power law (``fit_errors``)."""
    fns = _analysis_pieces({"fit_isoflop_minimum": fit_isoflop_minimum, "fit_power_law": fit_power_law,
                            "compute_optimal_tokens": compute_optimal_tokens})
    out: dict = {"budgets": [], "n_opt": [], "d_opt": [], "tokens_per_parameter": [], "coeffs": [],
                 "fit_errors": {}, "predict_at": float(predict_at)}
    for c in sorted(profiles):
        ns, losses = profiles[c]
        try:
            n_opt, coeffs = fns["fit_isoflop_minimum"](np.asarray(ns, dtype=float), np.asarray(losses, dtype=float))
            n_opt = float(n_opt)
            if not (math.isfinite(n_opt) and n_opt > 0):
                raise ValueError(f"the fitted optimum is {n_opt!r}")
        except (ValueError, np.linalg.LinAlgError) as err:
            out["fit_errors"][str(float(c))] = str(err)
            continue
        d_opt = float(fns["compute_optimal_tokens"](float(c), n_opt))
        out["budgets"].append(float(c))
        out["n_opt"].append(n_opt)
        out["d_opt"].append(d_opt)
        out["tokens_per_parameter"].append(d_opt / n_opt)
        out["coeffs"].append([float(x) for x in np.asarray(coeffs, dtype=float).reshape(-1)])
    keys = ("coefficient", "exponent", "d_coefficient", "d_exponent", "n_opt_at", "d_opt_at", "tokens_per_parameter_at")
    out.update(dict.fromkeys(keys, math.nan))
    if len(set(out["budgets"])) >= 2:
        k, a = fns["fit_power_law"](np.asarray(out["budgets"]), np.asarray(out["n_opt"]))
        kd, ad = fns["fit_power_law"](np.asarray(out["budgets"]), np.asarray(out["d_opt"]))
        n_at = float(k) * float(predict_at) ** float(a)
        d_at = float(fns["compute_optimal_tokens"](float(predict_at), n_at))
        out.update(coefficient=float(k), exponent=float(a), d_coefficient=float(kd), d_exponent=float(ad),
                   n_opt_at=n_at, d_opt_at=d_at, tokens_per_parameter_at=d_at / n_at)
        if setup is not None:
            n_c = float(k) * setup["flops"] ** float(a)
            d_c = float(fns["compute_optimal_tokens"](setup["flops"], n_c))
            out["section_2_3"] = {**setup, "n_opt": n_c, "d_opt": d_c, "n_ratio": setup["n_params"] / n_c,
                                  "d_ratio": setup["tokens"] / d_c,
                                  "compute_optimal": bool(0.5 <= setup["n_params"] / n_c <= 2.0)}
    if setup is not None and "section_2_3" not in out:
        out["section_2_3"] = dict(setup)
    return out


@dataclass
class ScalingResult:
    """The experiment: ``runs`` (``{name: SizeRun}``, smallest model first) and ``analysis``
    (:func:`analyse`)."""

    scale: str
    runs: dict[str, SizeRun]
    analysis: dict

    @property
    def points(self) -> pd.DataFrame:
        """Every evaluation of every model: ``name``, ``hidden_size``, ``n_params`` and the columns of
        :attr:`SizeRun.points`."""
        frames = [r.points.assign(name=n, hidden_size=r.config.hidden_size, n_params=r.num_parameters)
                  for n, r in self.runs.items()]
        frame = pd.concat(frames, ignore_index=True)
        first = ["name", "hidden_size", "n_params"]
        return frame[first + [c for c in frame.columns if c not in first]]

    @property
    def profiles(self) -> dict[float, tuple[list[int], list[float]]]:
        """``{budget: (n_params, val_losses)}``: the IsoFLOP profiles."""
        return profiles_from_points(self.points)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.runs.values()))

    @property
    def cpu_seconds(self) -> float:
        return float(sum(r.cpu_seconds for r in self.runs.values()))


def run(
    *,
    model_class: type | None = None,
    decoder_only_example: Callable | None = None,
    decoder_only_loss: Callable | None = None,
    flops_per_token: Callable | None = None,
    fit_isoflop_minimum: Callable | None = None,
    fit_power_law: Callable | None = None,
    compute_optimal_tokens: Callable | None = None,
    names: Sequence[str] | None = None,
    scale: str | None = None,
    progress: bool = False,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = print,
) -> ScalingResult:
    """Train (or read back) the models ``names`` (default: all of the scale) with :func:`run_size`,
    then :func:`analyse` their IsoFLOP profiles with the given fits. ``log_dir``: the folder holding the
    models' folders (default ``runs/scaling_laws``; each model in ``<log_dir>/<scale>/<name>``)."""
    scale = scale or current_scale()
    names = list(names or names_for(scale))
    root = Path(log_dir) if log_dir is not None else default_log_dir()
    runs = {name: run_size(name, model_class=model_class, decoder_only_example=decoder_only_example,
                           decoder_only_loss=decoder_only_loss, flops_per_token=flops_per_token, scale=scale,
                           progress=progress, log_dir=run_folder(root, scale, name), resume=resume, log=log)
            for name in names}
    runs = dict(sorted(runs.items(), key=lambda kv: kv[1].num_parameters))
    setup = section_2_3_setup(model_class, flops_per_token)
    result = ScalingResult(scale, runs, {})
    result.analysis = analyse(result.profiles, fit_isoflop_minimum=fit_isoflop_minimum, fit_power_law=fit_power_law,
                              compute_optimal_tokens=compute_optimal_tokens, setup=setup)
    a = result.analysis
    if log is not None and math.isfinite(a["exponent"]):
        log(f"N_opt = {a['coefficient']:.3g} C^{a['exponent']:.3f}; at {a['predict_at']:.0e} FLOPs N_opt = "
            f"{a['n_opt_at']:,.0f} parameters, D_opt = {a['d_opt_at']:,.0f} tokens "
            f"({a['tokens_per_parameter_at']:.1f} per parameter; Chinchilla: about {CHINCHILLA_TOKENS_PER_PARAMETER:.0f})")
    return result


# ---------------------------------------------------------------------------------------------------
# what students see: plots, tables, conclusions


def _points(result) -> pd.DataFrame:
    """The points of a ScalingResult or of a recorded dict (``runs[name]["points"]``, ``num_parameters``)."""
    if isinstance(result, ScalingResult):
        return result.points
    frames = [pd.DataFrame(r["points"]).assign(name=n, hidden_size=r["config"]["hidden_size"],
                                               n_params=r["num_parameters"]) for n, r in result["runs"].items()]
    frame = pd.concat(frames, ignore_index=True)
    frame["budget"] = pd.to_numeric(frame["budget"], errors="coerce")  # JSON null -> NaN
    return frame


def _analysis(result) -> dict:
    """The analysis of a ScalingResult or of a recorded dict (where JSON wrote NaN as null)."""
    if isinstance(result, ScalingResult):
        return result.analysis
    return {k: math.nan if v is None else v for k, v in result["analysis"].items()}


def plot_loss_vs_flops(result, ax=None):
    """Q1: each model's validation loss against the FLOPs it has used (log-log), the budgets dotted."""
    import matplotlib.pyplot as plt

    pts = _points(result)
    fig, ax = (plt.subplots(figsize=(7, 4.5)) if ax is None else (ax.figure, ax))
    for name, g in pts.groupby("name", sort=False):
        ax.plot(g["flops"], g["val_loss"], "o-", ms=3, label=f"{name} ({int(g['n_params'].iloc[0]):,} parameters)")
    for b in sorted(pts["budget"].dropna().unique()):
        ax.axvline(b, color="grey", lw=0.7, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs (6 N D)")
    ax.set_ylabel("validation loss")
    ax.set_title("Validation loss against compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_isoflop_profiles(result, ax=None):
    """The IsoFLOP profiles: per budget the validation loss against the parameters (log x), the fitted
    parabola in ``log10 N`` and its minimum (a star)."""
    import matplotlib.pyplot as plt

    pts, a = _points(result), _analysis(result)
    fig, ax = (plt.subplots(figsize=(7, 4.5)) if ax is None else (ax.figure, ax))
    fits = dict(zip(a["budgets"], zip(a["coeffs"], a["n_opt"], strict=True), strict=True))
    for budget, (ns, losses) in profiles_from_points(pts).items():
        line, = ax.plot(ns, losses, "o", label=f"{budget:.2g} FLOPs")
        if budget in fits:
            coeffs, n_opt = fits[budget]
            x = np.linspace(math.log10(min(ns)) - 0.1, math.log10(max(ns)) + 0.1, 100)
            ax.plot(10 ** x, np.polyval(coeffs, x), color=line.get_color(), lw=1)
            ax.plot([n_opt], [np.polyval(coeffs, math.log10(n_opt))], "*", ms=12, color=line.get_color(), mec="k")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("validation loss")
    ax.set_title("IsoFLOP profiles")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_compute_optimal(result, axes=None):
    """Q2 and Q3: the optimal parameters ``N_opt`` (left) and tokens ``D_opt`` (right) against the
    budget, log-log, with the fitted power laws extended to ``1e15`` FLOPs (the prediction marked) and
    the setup of section 2.3 (a cross)."""
    import matplotlib.pyplot as plt

    a = _analysis(result)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig = axes[0].figure
    c = np.asarray(a["budgets"], dtype=float)
    setup = a.get("section_2_3", {})
    for ax, key, k, e, label in ((axes[0], "n_opt", "coefficient", "exponent", "parameters"),
                                 (axes[1], "d_opt", "d_coefficient", "d_exponent", "tokens")):
        ax.loglog(c, a[key], "o", label="optimum of each profile")
        if math.isfinite(a[e]):
            grid = np.logspace(math.log10(c.min()) - 0.3, math.log10(a["predict_at"]) + 0.3, 100)
            ax.loglog(grid, a[k] * grid ** a[e], "--", color="grey", label=f"{a[k]:.3g} C^{a[e]:.3f}")
            at = a["n_opt_at"] if key == "n_opt" else a["d_opt_at"]
            ax.loglog([a["predict_at"]], [at], "*", ms=12, color="C3", label=f"{a['predict_at']:.0e} FLOPs: {at:,.0f}")
        if setup.get("flops"):
            ax.loglog([setup["flops"]], [setup["n_params"] if key == "n_opt" else setup["tokens"]], "x", ms=9,
                      color="k", label="section 2.3 setup")
        ax.set_xlabel("compute budget C (FLOPs)")
        ax.set_ylabel(f"compute-optimal {label}")
        ax.set_title(f"Compute-optimal {'model' if key == 'n_opt' else 'tokens'}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def profiles_table(result) -> pd.DataFrame:
    """The validation loss of each model (rows: name and parameters) at each budget (columns)."""
    pts = _points(result)
    at = pts[pts["budget"].notna()]
    table = at.pivot_table(index=["name", "n_params"], columns="budget", values="val_loss", sort=False)
    table = table.sort_index(level="n_params")
    table.columns = [f"{c:.2g} FLOPs" for c in table.columns]
    return table


def results_table(result) -> pd.DataFrame:
    """One row per budget: the fitted optimum ``N_opt``, ``D_opt``, tokens per parameter, the best
    measured model and its loss."""
    pts, a = _points(result), _analysis(result)
    rows = []
    fits = dict(zip(a["budgets"], range(len(a["budgets"])), strict=True))
    for budget, g in pts[pts["budget"].notna()].groupby("budget"):
        best = g.loc[g["val_loss"].idxmin()]
        i = fits.get(float(budget))
        rows.append({"budget (FLOPs)": float(budget), "N_opt (fit)": a["n_opt"][i] if i is not None else math.nan,
                     "D_opt": a["d_opt"][i] if i is not None else math.nan,
                     "tokens per parameter": a["tokens_per_parameter"][i] if i is not None else math.nan,
                     "best model": best["name"], "its parameters": int(best["n_params"]),
                     "lowest loss": float(best["val_loss"])})
    return pd.DataFrame(rows).set_index("budget (FLOPs)")


def conclusions(result) -> dict:
    """What the experiment shows, each checked (``checks``), from a ScalingResult or a recorded dict:

    - ``every profile has an interior minimum``: at every budget the lowest measured loss is neither the
      smallest nor the largest model's, and the fitted parabola opens upwards with its vertex inside
      the sizes' range;
    - ``a larger model is not always better`` (Q1): at some budget the largest model's loss is above
      the lowest;
    - ``the optimum grows with the budget``: the fitted exponent is positive;
    - ``the exponent is plausible``: between 0.2 and 1 (Chinchilla about 0.5, Kaplan et al. 0.73);
    - ``the budgets are met``: every model's evaluation at a budget used at most 10 % more FLOPs.

    Numbers: the fit (``exponent``, ``coefficient``), ``n_opt_at`` / ``d_opt_at`` /
    ``tokens_per_parameter_at`` (at 1e15), their ratio to Chinchilla's 20, per budget the fitted and
    the measured minimum, ``budget_overshoot`` (largest relative excess), ``section_2_3`` (compute
    optimal or not, and how far).
    """
    pts, a = _points(result), _analysis(result)
    at = pts[pts["budget"].notna()]
    profiles = profiles_from_points(pts)
    out: dict = {"profiles": {}}
    interior = True
    largest_not_best = False
    fits = dict(zip(a["budgets"], zip(a["coeffs"], a["n_opt"], strict=True), strict=True))
    for budget, (ns, losses) in profiles.items():
        i = int(np.argmin(losses))
        coeffs, n_opt = fits.get(budget, (None, math.nan))
        vertex_inside = coeffs is not None and coeffs[0] > 0 and min(ns) <= n_opt <= max(ns)
        inner = 0 < i < len(ns) - 1 and vertex_inside
        interior &= inner
        largest_not_best |= losses[-1] > min(losses)
        out["profiles"][f"{budget:.3g}"] = {"n_opt": n_opt, "best_measured_n": ns[i], "lowest_loss": losses[i],
                                            "interior_minimum": bool(inner)}
    overshoot = float(((at["flops"] - at["budget"]) / at["budget"]).max())
    exponent = a["exponent"]
    out.update({"exponent": exponent, "coefficient": a["coefficient"], "n_opt_at": a["n_opt_at"],
                "d_opt_at": a["d_opt_at"], "tokens_per_parameter_at": a["tokens_per_parameter_at"],
                "tokens_per_parameter": dict(zip((f"{b:.3g}" for b in a["budgets"]), a["tokens_per_parameter"],
                                                 strict=True)),
                "vs_chinchilla": a["tokens_per_parameter_at"] / CHINCHILLA_TOKENS_PER_PARAMETER,
                "budget_overshoot": overshoot, "section_2_3": a.get("section_2_3", {})})
    out["checks"] = {
        "every profile has an interior minimum": bool(interior and profiles and not a["fit_errors"]),
        "a larger model is not always better": bool(largest_not_best),
        "the optimum grows with the budget": bool(math.isfinite(exponent) and exponent > 0),
        "the exponent is plausible": bool(math.isfinite(exponent) and 0.2 <= exponent <= 1.0),
        "the budgets are met": bool(0 <= overshoot <= 0.1),
    }
    return out


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m course_lib.runners.{ASSIGNMENT}",
        description="The IsoFLOP experiment of handout section 2.4: seven decoder-only Pig Latin translators "
                    "trained across the compute budgets, with the reference code (course_solutions, instructor "
                    "material). Students run the notebook.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recording the laptop scale (instructors):\n"
               f"  OMP_NUM_THREADS=1 python -m course_lib.runners.{ASSIGNMENT} --all --scale laptop \\\n"
               f"      --record course_solutions/recorded/{ASSIGNMENT}-laptop.json\n"
               "the full scale (a GPU; the same budgets and models):\n"
               f"  python -m course_lib.runners.{ASSIGNMENT} --all --scale full --record "
               f"course_solutions/recorded/{ASSIGNMENT}.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", metavar="NAME", help=f"a model: {', '.join(SIZES)}")
    which.add_argument("--all", action="store_true", help="the seven models, then the analysis")
    which.add_argument("--list", action="store_true", help="list the models and their budgets at this scale")
    parser.add_argument("--scale", choices=SCALES, help="fast, laptop or full (default: COURSE_SCALE, ...)")
    parser.add_argument("--fast", action="store_true", help="same as --scale fast")
    parser.add_argument("--log-dir", help=f"folder of the runs (default: runs/{ASSIGNMENT})")
    parser.add_argument("--no-resume", action="store_true", help="start over (earlier logs are moved aside)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--record", metavar="PATH", help="write the runs, the analysis and the conclusions to PATH")
    return parser


def main(argv: Sequence[str] | None = None):
    args = build_parser().parse_args(argv)
    scale = "fast" if args.fast else (args.scale or current_scale())
    if args.list:
        for name in names_for(scale):
            c = config_for(name, scale)
            print(c, "| evaluated at", ", ".join(f"{m:.3g}" for m in evaluation_marks(
                c.budgets, c.marks_per_octave, c.octaves_below)), "FLOPs")
        return None
    t0, c0 = time.perf_counter(), time.process_time()
    result = run(names=args.run, scale=scale, progress=not args.no_progress, log_dir=args.log_dir,
                 resume=not args.no_resume)
    print(profiles_table(result).to_string(float_format=lambda v: f"{v:.4f}"))
    print(results_table(result).to_string())
    print(conclusions(result)["checks"])
    if args.record:
        record(result, args.record, wall_seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    return result


#: The columns of ``train_decoder_only``'s per-epoch history that :func:`record` keeps (its ``val_loss``
#: is on one batch of validation pairs here, a progress signal only: the marks hold the validation loss).
HISTORY_COLUMNS = ["epoch", "lr", "steps", "train_loss", "tokens", "tokens_seen", "epoch_fraction", "train_seconds",
                   "seconds", "cpu_seconds", "tokens_per_s"]


def record(result: ScalingResult, path: str | os.PathLike, *, wall_seconds: float | None = None,
           cpu_seconds: float | None = None) -> dict:
    """Write the models (settings, evaluations, training history, times), the analysis and the
    :func:`conclusions` to ``path`` (JSON; instructor material). ``wall_seconds`` / ``cpu_seconds``: the
    whole command's (models read back from their logs count their own training times in ``runs``)."""
    import json

    from ..files import atomic_write_text

    if not result.runs:
        raise ValueError("record() needs at least one model")
    runs = {name: {"config": dataclasses.asdict(r.config), "num_parameters": r.num_parameters,
                   "points": r.points.to_dict("records"),
                   "history": r.history[[c for c in HISTORY_COLUMNS if c in r.history.columns]].to_dict("records"),
                   "minutes": r.seconds / 60, "cpu_minutes": r.cpu_seconds / 60, "eval_seconds": r.eval_seconds}
            for name, r in result.runs.items()}
    payload = {
        "assignment": ASSIGNMENT, "scale": result.scale, "budgets": list(BUDGETS if result.scale != "fast"
                                                                          else FAST["budgets"]),
        "scale_settings": FAST if result.scale == "fast" else {},
        "recorded_at": now(), "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "device": describe_device(get_device()),
        "total_minutes": result.seconds / 60, "total_cpu_minutes": result.cpu_seconds / 60,
        "command_wall_minutes": None if wall_seconds is None else wall_seconds / 60,
        "command_cpu_minutes": None if cpu_seconds is None else cpu_seconds / 60,
        "runs": runs, "analysis": result.analysis, "conclusions": conclusions(result),
    }
    atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1) + "\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
