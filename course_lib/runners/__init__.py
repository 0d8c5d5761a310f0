"""Training runners for the assignments' experiments (``python -m course_lib.runners.<name>``)."""

from __future__ import annotations

import importlib
import math
import os
import re
from pathlib import Path

_ADVICE = ("Pass your own model (model_factory=..., and loss_fn=/generate_fn= where asked), as the notebook does.")


def reference_layers(module: str = "course_solutions.layers", advice: str = _ADVICE):
    """The instructor's reference models and functions (``module``, default ``course_solutions.layers``),
    for the command-line runs.

    They are instructor material and not part of the student package: students pass their own
    classes and functions (``model_factory=``, ``loss_fn=``, ...), as the notebooks do; where the
    package is absent the error says so and ends with ``advice``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("course_solutions", module):
            raise
        raise RuntimeError(
            f"The reference models (course_solutions) are instructor material and not installed here. {advice}"
        ) from None


def with_references(given: dict, names: dict[str, str] | None = None, *, module: str = "course_solutions.layers",
                    advice: str = _ADVICE) -> dict:
    """``given`` (piece name -> function or class, or None) with every None replaced by the reference
    ``getattr(module, names.get(key, key))``; the references are imported only when one is missing."""
    if all(v is not None for v in given.values()):
        return dict(given)
    ref = reference_layers(module, advice)
    names = names or {}
    return {k: v if v is not None else getattr(ref, names.get(k, k)) for k, v in given.items()}


class EpochHistory:
    """What a runner's finished run reads from its per-epoch ``history`` (a DataFrame with ``epoch``,
    ``seconds`` and, where logged, ``cpu_seconds``): the best epoch by the column ``BEST_BY`` (lowest
    value), and the run's times. A run's result class sets ``BEST_BY`` and has ``config`` and ``history``."""

    BEST_BY: str = "val_loss"

    @property
    def name(self) -> str:
        return self.config.name

    def _best(self):
        return self.history.loc[self.history[self.BEST_BY].idxmin()]

    @property
    def best_epoch(self) -> int:
        return int(self._best()["epoch"])

    @property
    def seconds(self) -> float:
        """Wall time of the training and validation epochs."""
        return float(self.history["seconds"].sum())

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the training and validation epochs (NaN where the run did not log it)."""
        if "cpu_seconds" not in self.history:
            return math.nan
        return float(self.history["cpu_seconds"].sum())


def runs_dir(assignment: str) -> Path:
    """Where a runner keeps its runs' folders: ``$COURSE_RUNS_DIR`` (default ``./runs``), then ``assignment``."""
    return Path(os.environ.get("COURSE_RUNS_DIR", "runs")) / assignment


def run_folder(root: str | os.PathLike, scale: str, name: str) -> Path:
    """One run's folder: ``root/<scale>/<name in lower case, runs of other characters as _>``."""
    return Path(root) / scale / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def json_safe(x):
    """``x`` with everything JSON can hold: NaN/inf -> None, paths -> str, 0-dim tensors and numpy
    scalars -> Python numbers, dict keys -> str; lists, tuples and dicts recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:  # numpy / torch scalars
        return json_safe(x.item())
    return x
