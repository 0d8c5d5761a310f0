"""Training runners for the assignments' experiments (``python -m course_lib.runners.<name>``)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path


def reference_layers():
    """The instructor's reference models (``course_solutions.layers``), for the command-line runs.

    They are instructor material and not part of the student package: students pass their own
    classes and functions (``model_factory=``, ``loss_fn=``, ...), as the notebooks do.
    """
    try:
        return importlib.import_module("course_solutions.layers")
    except ModuleNotFoundError as exc:
        if exc.name not in ("course_solutions", "course_solutions.layers"):
            raise
        raise RuntimeError(
            "The reference models (course_solutions) are instructor material and not installed here. "
            "Pass your own model (model_factory=..., and loss_fn=/generate_fn= where asked), as the "
            "notebook does."
        ) from None


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
