"""The ``gpt_attention`` runner's results: a run's record (:class:`RunResult`) read from its log,
the recorded reference runs, the conclusions they show, tables and plots (see
:mod:`course_lib.runners.gpt_attention`)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..files import atomic_write_text
from ..runlog import MEMORY_KINDS, now, read_json, read_jsonl
from . import json_safe
from ._gpt_attention_config import (
    _ARCH_NAMES,
    _OPT_NAMES,
    ASSIGNMENT,
    CONFIGS,
    DATASET,
    LAPTOP,
    Config,
    _at_scale,
    run_dir,
)

# ---------------------------------------------------------------------------------------------------
# results


HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_ppl", "dev_loss", "dev_ppl", "train_objective", "train_tokens",
    "dev_tokens", "train_seconds", "dev_seconds", "epoch_seconds", "wall_clock_seconds",
    "tokens_per_second", "peak_memory_mib", "memory_kind", "cuda_max_reserved_mib", "device", "amp_dtype",
    "resumed", "finished_at",
]


@dataclass
class RunResult:
    """One experiment's record. ``history`` has one row per epoch (:data:`HISTORY_COLUMNS`):
    ``train_ppl`` / ``dev_ppl`` (exp of ``train_loss`` / ``dev_loss``, the mean NLL per real
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
        values = pd.to_numeric(self.history["dev_ppl"], errors="coerce")
        return None if values.notna().sum() == 0 else self.history.loc[values.idxmin()]

    @property
    def best_epoch(self) -> int | None:
        row = self._best()
        return None if row is None else int(row["epoch"])

    @property
    def best_dev_ppl(self) -> float:
        """The lowest validation perplexity across epochs (not necessarily the last epoch's)."""
        row = self._best()
        return float("nan") if row is None else float(row["dev_ppl"])

    @property
    def final_train_ppl(self) -> float:
        return float(self.history["train_ppl"].iloc[-1]) if len(self.history) else float("nan")

    @property
    def final_dev_ppl(self) -> float:
        return float(self.history["dev_ppl"].iloc[-1]) if len(self.history) else float("nan")

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
            "best dev ppl": self.best_dev_ppl,
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
            "best_dev_ppl": self.best_dev_ppl,
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


#: Column names of logs and recorded files written before the library settled on ``dev`` for the
#: held-out split (as :mod:`course_lib.train`): read under their current names.
_OLD_NAMES = {"valid_loss": "dev_loss", "valid_ppl": "dev_ppl", "valid_tokens": "dev_tokens",
              "valid_seconds": "dev_seconds"}


def current_names(row: Mapping) -> dict:
    """A history row with any old column name (``valid_ppl``, ...) under its current one (``dev_ppl``)."""
    return {_OLD_NAMES.get(k, k): v for k, v in row.items()}


def _history_frame(rows: Sequence[dict]) -> pd.DataFrame:
    df = pd.DataFrame([current_names(r) for r in rows])
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
    done = [float(v) for t, v in zip(clock, result.history["dev_ppl"], strict=True) if t <= seconds + 1e-9]
    return min(done) if done else float("inf")


# Longer than most functions on purpose: one short block per conclusion, in the order of the list in
# the docstring, so that each statement reads next to the numbers that check it.
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
        return r[n].best_dev_ppl

    groups = {"LSTM": (1, 2, 3, 4), "GPT": (5, 6, 7, 8)}
    adaptive = {arch: (max(best(a), best(b)), min(best(c), best(d))) for arch, (a, b, c, d) in groups.items()}

    def ahead_every_epoch(a, b, c, d):
        hs = [pd.to_numeric(r[n].history["dev_ppl"]).tolist() for n in (a, b, c, d)]
        return all(max(x[:2]) < min(x[2:]) for x in zip(*hs, strict=False))  # the epochs all four runs have finished

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
                "evidence": {k: f"AdamW / Adam best dev ppl = {v:.4f}" for k, v in ratio.items()}})
    lstm, gpt = r[1].history, r[5].history
    epochs = min(len(lstm), len(gpt))
    per_epoch = [float(lstm["dev_ppl"].iloc[i]) < float(gpt["dev_ppl"].iloc[i]) for i in range(epochs)]
    lstm_wins = sum(per_epoch) > epochs / 2
    winner = "LSTM" if lstm_wins else "GPT"
    out.append({"id": "gpt_vs_lstm_per_epoch", "winner": winner,
                "statement": f"Per epoch, the {winner} (Adam, 1 layer) has the lower validation perplexity after most "
                             "epochs (experiments 1 and 5).", "holds": sum(per_epoch) != epochs / 2,
                "evidence": {"LSTM dev ppl": [round(float(v), 2) for v in lstm["dev_ppl"]],
                             "GPT dev ppl": [round(float(v), 2) for v in gpt["dev_ppl"]]}})
    (clock_lstm, unit), (clock_gpt, _) = _clock(r[1]), _clock(r[5])
    budget = min(clock_lstm[-1], clock_gpt[-1])
    at = {"LSTM": _best_so_far_at(r[1], budget), "GPT": _best_so_far_at(r[5], budget)}
    winner = min(at, key=at.get)
    out.append({"id": "gpt_vs_lstm_per_second", "winner": winner, "clock": unit,
                "statement": f"Per second of training ({unit}), the {winner} (Adam, 1 layer) reaches the lower "
                             f"validation perplexity within the time the faster run took ({budget:.0f} s).",
                "holds": at["LSTM"] != at["GPT"],
                "evidence": {k: f"best dev ppl within {budget:.0f} {unit}: {v:.1f}" for k, v in at.items()}
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
    b = int(pd.to_numeric(h["dev_ppl"]).idxmin())
    train = pd.to_numeric(h["train_ppl"]).tolist()
    overfits = b < len(h) - 1 and float(h["dev_ppl"].iloc[-1]) > float(h["dev_ppl"].iloc[b]) \
        and all(x > y for x, y in itertools.pairwise(train[b:]))
    out.append({"id": "gpt_overfits", "statement": "GPT-Adam-1L overfits: after its best epoch its validation "
                "perplexity rises while its training perplexity keeps falling.", "holds": overfits,
                "evidence": {"best epoch": int(h["epoch"].iloc[b]), "train ppl": [round(x, 2) for x in train],
                             "dev ppl": [round(float(v), 2) for v in h["dev_ppl"]]}})
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
            "exp: experiment number in run_exp.py; best dev ppl: lowest validation ppl across epochs, "
            "reached at 'best epoch'; final train ppl: training ppl of the last epoch; s/epoch: mean "
            "wall-clock seconds per epoch (training + validation); memory (MiB): steady-state " + memory
            + "; tokens/s: training tokens per second. Bold: best validation ppl of each architecture."
        )
    return _table(df, sort_by=["architecture", "layers", "optimizer"], best_in_bold=["best dev ppl"],
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
