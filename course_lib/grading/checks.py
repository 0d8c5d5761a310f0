"""Helpers that autograded test cells call.

Every helper accepts any *correct* answer, whatever its container: a Python number, a NumPy
scalar or array, a nested list, or a torch tensor of any dtype or device, with or without
``requires_grad``. Values are compared in float64 on the CPU with explicit tolerances, and a
failure says what was expected, what came back, and where they differ, in words a student can act
on.

Usage in a test cell::

    from course_lib.grading.checks import assert_close, assert_shape, quiet
    with quiet():                      # warnings never cost a correct answer its points
        out = mask_loss(losses, mask)
    assert_close(out, 0.3444, name="mask_loss(losses, mask)", atol=1e-4)
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import sys
import warnings
from collections.abc import Iterator, Sequence

# The test harness, ``grade(test_id, run, check)`` (see course_lib.grading.record), and the failure
# the checks raise: test cells import them from here.
from .record import CheckFailed, ForbiddenFunction, forbidden, grade, passed_message, to_data

__all__ = [
    "CheckFailed",
    "to_tensor",
    "as_float",
    "as_int",
    "assert_shape",
    "assert_close",
    "assert_equal",
    "assert_true",
    "quiet",
    "grade",
    "to_data",
    "forbidden",
    "ForbiddenFunction",
    "passed_message",
]


def _torch():
    import torch

    return torch


def to_tensor(x, *, name: str = "value", dtype=None):
    """Convert ``x`` (number, bool, list, NumPy array, tensor) to a detached CPU float64 tensor.

    Raises :class:`CheckFailed` naming ``name`` when ``x`` is ``None`` or cannot be converted.
    """
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    torch = _torch()
    dtype = dtype or torch.float64
    if x is None:
        raise CheckFailed(f"{name}: got None. Did the function forget to `return` its result?")
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
        if t.is_complex():
            raise CheckFailed(f"{name}: got a complex tensor, expected real values")
        return t.to(dtype)
    try:
        import numpy as np

        if isinstance(x, np.ndarray) or isinstance(x, np.generic):
            return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(x, (numbers.Number, bool)):
        return torch.tensor(float(x), dtype=dtype)
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        try:
            items = [to_tensor(v, name=name, dtype=dtype) for v in x]
            return torch.stack(items) if items else torch.zeros(0, dtype=dtype)
        except (RuntimeError, CheckFailed) as exc:
            raise CheckFailed(f"{name}: could not read {type(x).__name__} as numbers ({exc})") from None
    raise CheckFailed(f"{name}: expected numbers or a tensor, got {type(x).__name__}: {x!r:.80}")


def as_float(x, *, name: str = "value") -> float:
    """A scalar answer as a Python float: accepts numbers, 0-dim or one-element tensors/arrays."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    t = to_tensor(x, name=name)
    if t.numel() != 1:
        raise CheckFailed(f"{name}: expected a single number, got shape {tuple(t.shape)}")
    return float(t.reshape(()).item())


def as_int(x, *, name: str = "value") -> int:
    """An integer answer (a count): accepts ints, integral floats and one-element tensors."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    v = as_float(x, name=name)
    if not math.isfinite(v) or v != round(v):
        raise CheckFailed(f"{name}: expected a whole number, got {v}")
    return int(round(v))


def _fmt_shape(shape) -> str:
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def assert_shape(x, expected: Sequence[int], *, name: str = "output", dims: str | None = None) -> None:
    """Check ``x.shape == expected``. ``dims`` names the axes, e.g. ``"B, T, V"``."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    torch = _torch()
    if x is None:
        raise CheckFailed(f"{name}: got None. Did the function forget to `return` its result?")
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(to_tensor(x, name=name).shape)
    if tuple(int(s) for s in shape) != tuple(int(s) for s in expected):
        what = f"({dims}) = " if dims else ""
        raise CheckFailed(
            f"{name}: expected shape {what}{_fmt_shape(expected)}, got {_fmt_shape(shape)}"
        )
    del torch


def assert_close(actual, expected, *, name: str = "output", atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Check values (and shape) within ``atol + rtol * |expected|``; NaN never matches."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    torch = _torch()
    a = to_tensor(actual, name=name)
    e = to_tensor(expected, name=f"expected {name}")
    if a.shape != e.shape:
        if a.numel() == 1 and e.numel() == 1:
            a, e = a.reshape(()), e.reshape(())
        else:
            raise CheckFailed(f"{name}: expected shape {_fmt_shape(e.shape)}, got {_fmt_shape(a.shape)}")
    if not torch.isfinite(a).all():
        raise CheckFailed(f"{name}: contains NaN or infinity")
    ok = (a - e).abs() <= atol + rtol * e.abs()
    if bool(ok.all()):
        return
    diff = (a - e).abs()
    idx = int(torch.argmax(diff.reshape(-1)))
    if a.dim() == 0:
        raise CheckFailed(f"{name}: expected {e.item():.6g}, got {a.item():.6g}")
    pos = tuple(int(i) for i in torch.unravel_index(torch.tensor(idx), a.shape))
    n_bad = int((~ok).sum())
    raise CheckFailed(
        f"{name}: {n_bad} of {a.numel()} values differ; largest difference at index {pos}: "
        f"expected {e.reshape(-1)[idx].item():.6g}, got {a.reshape(-1)[idx].item():.6g}"
    )


def assert_equal(actual, expected, *, name: str = "output") -> None:
    """Exact comparison of numbers or integer-valued arrays (token ids, counts, masks)."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    assert_close(actual, expected, name=name, atol=0.0, rtol=0.0)


def assert_true(condition, message: str) -> None:
    """``assert`` that survives ``python -O`` and gives a readable message."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    if not bool(condition):
        raise CheckFailed(message)


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Silence warnings and Python-level stderr while student code runs inside a test.

    A correct answer that happens to print a warning must not lose its points (nbgrader scores a
    test cell that wrote to stderr as 0). The captured text is available as the context value.
    """
    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = sys.stderr
        sys.stderr = buf
        try:
            yield buf
        finally:
            sys.stderr = old

