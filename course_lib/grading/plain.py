"""Plain data: what a test records from the student's kernel and what ``check`` receives.

:func:`to_data` copies a value into tensors, numbers, strings and containers of them, the only
things the grader saves (``torch.save``) and loads back (``torch.load(weights_only=True)``).
Nothing here imports the rest of the grading package.
"""

from __future__ import annotations

from typing import Any

MAX_ITEMS = 1_000_000  # values in one record (a guard against runaway recursion or huge lists)
MAX_DEPTH = 20

__all__ = ["to_data", "RecordError", "MAX_ITEMS", "MAX_DEPTH"]


class RecordError(TypeError):
    """``run`` returned something that is not plain data (tensors, numbers, strings, containers)."""


def to_data(value: Any, *, name: str = "output") -> Any:
    """A copy of ``value`` made of plain data only: what a test records and ``check`` receives.

    Tensors become detached, contiguous CPU tensors (plain ``torch.Tensor``); NumPy arrays become
    tensors and NumPy scalars Python numbers; ``torch.Size`` a tuple; tuples, lists and dicts (with
    string or integer keys) are copied. Anything else raises :class:`RecordError` naming the path.
    """
    count = [0]
    return _to_data(value, name, 0, count)


def _to_data(v: Any, path: str, depth: int, count: list[int]) -> Any:
    import numpy as np
    import torch

    count[0] += 1
    if count[0] > MAX_ITEMS or depth > MAX_DEPTH:
        raise RecordError(f"{path}: the output is too large or too deeply nested to record")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, torch.Tensor):
        t = v.detach()
        if t.layout != torch.strided:  # sparse COO, CSR, ...
            t = t.to_dense()
        return t.to("cpu").as_subclass(torch.Tensor).contiguous().clone()
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise RecordError(f"{path}: a NumPy array of Python objects cannot be recorded; use numbers")
        return torch.from_numpy(np.array(v, copy=True))
    if isinstance(v, np.generic):
        return _to_data(v.item(), path, depth + 1, count)
    if isinstance(v, torch.Size):
        return tuple(int(s) for s in v)
    if isinstance(v, (torch.dtype, torch.device)):
        return str(v)
    if isinstance(v, int):  # int subclasses (IntEnum, hostile subclasses): the plain value
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, complex):
        return complex(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        items = [_to_data(x, f"{path}[{i}]", depth + 1, count) for i, x in enumerate(v)]
        return tuple(items) if isinstance(v, tuple) else items
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if type(k) not in (str, int):
                raise RecordError(f"{path}: dictionary keys must be strings or integers, got {type(k).__name__}")
            out[k] = _to_data(x, f"{path}[{k!r}]", depth + 1, count)
        return out
    raise RecordError(
        f"{path}: got a {type(v).__module__}.{type(v).__qualname__}; the test expects numbers, tensors, "
        "strings, or lists/tuples/dicts of them"
    )
