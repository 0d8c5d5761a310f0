"""Device selection, seeding and the experiment scale shared by every notebook.

>>> from course_lib.device import get_device, seed_everything, fast_mode, scale, describe_device
>>> device = get_device()              # cuda, then mps, then cpu (COURSE_DEVICE=cpu forces the CPU)
>>> g = seed_everything(0)             # seeds random, numpy, torch (and CUDA); returns a CPU torch.Generator
>>> print(describe_device(device))     # e.g. "cpu (16 threads), torch 2.13.0"
>>> scale()                             # "fast", "laptop" or "full" (COURSE_SCALE, COURSE_FAST=1, or the hardware)
>>> n_epochs = 1 if fast_mode() else 20  # fast_mode() is scale() == "fast"
>>> autograde_mode()                    # True while the autograder re-runs a notebook (COURSE_AUTOGRADE=1)

**Scales.** Every assignment's experiments run at one of three scales, with one code path:

- ``fast``: seconds, for CI and autograding (``COURSE_FAST=1`` sets it);
- ``laptop``: every experiment the written questions need, on a 2-core CPU in at most an hour for
  the whole assignment (smaller models, shorter sequences, a slice of the data, fewer epochs);
- ``full``: the handout's settings, meant for a GPU.

``COURSE_SCALE`` chooses one explicitly; otherwise ``COURSE_FAST=1`` means ``fast``, and else the
scale is ``full`` when CUDA is available and ``laptop`` when it is not.
"""

from __future__ import annotations

import os
import platform
import random
import warnings

import torch

__all__ = ["get_device", "seed_everything", "fast_mode", "autograde_mode", "scale", "SCALES", "describe_device"]

_AUTO = {"", "auto", "any", "best"}
_TRUE = {"1", "true", "yes"}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except Exception:  # pragma: no cover - very old or unusual builds
        return False


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if _mps_available():
        return torch.device("mps", 0)
    return torch.device("cpu")


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device to train on: CUDA, then Apple MPS, then the CPU.

    Args:
        prefer: a device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"auto"``.
            When None, the environment variable ``COURSE_DEVICE`` is used if set (e.g. ``COURSE_DEVICE=cpu``
            to force the CPU on a GPU machine); otherwise the choice is automatic.

    Returns:
        A :class:`torch.device` with an explicit index for accelerators (``cuda:0``, ``mps:0``), so that
        ``tensor.device == get_device()`` holds for tensors moved there.

    If the requested device is not available, a :class:`RuntimeWarning` says so and the automatic choice is
    returned instead (a notebook written on a GPU machine still runs on a laptop). A string that is not a
    device at all raises :class:`ValueError`.
    """
    source = "prefer"
    request = prefer
    if request is None:
        request, source = os.environ.get("COURSE_DEVICE"), "COURSE_DEVICE"
    request = (request or "").strip().lower()
    if request in _AUTO:
        return _auto_device()
    try:
        device = torch.device(request)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{source}={request!r} is not a device; use 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto'."
        ) from None

    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if torch.cuda.is_available():
            index = torch.cuda.current_device() if device.index is None else device.index
            if index < torch.cuda.device_count():
                return torch.device("cuda", index)
            reason = f"only {torch.cuda.device_count()} CUDA device(s) are visible"
        else:
            reason = "CUDA is not available (no NVIDIA GPU, or a CPU-only PyTorch build)"
    elif device.type == "mps":
        if _mps_available():
            return torch.device("mps", 0)
        reason = "Apple MPS is not available"
    else:
        backend = getattr(torch, device.type, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and is_available():
            return device
        reason = f"{device.type} is not available"
    fallback = _auto_device()
    warnings.warn(f"{source}={request!r} requested, but {reason}; using {fallback} instead.", RuntimeWarning, stacklevel=2)
    return fallback


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global generator, PyTorch (CPU and every CUDA device).

    Args:
        seed: an integer in ``[0, 2**32)`` (NumPy's limit).

    Returns:
        A fresh CPU :class:`torch.Generator` seeded with ``seed``, for code that takes ``generator=``
        (``torch.randn(..., generator=g)``, ``DataLoader(..., generator=g)``, ``randperm``).

    Also sets ``PYTHONHASHSEED`` for subprocesses (it cannot change hashing in the running interpreter).
    Bit-exact GPU reproducibility additionally needs deterministic kernels, which this does not switch on.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            import numpy as np

            if isinstance(seed, np.integer):
                seed = int(seed)
            else:
                raise TypeError
        except (ImportError, TypeError):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}") from None
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device (lazily) and MPS
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


#: The experiment scales, smallest first.
SCALES = ("fast", "laptop", "full")


def scale() -> str:
    """The experiment scale: ``"fast"``, ``"laptop"`` or ``"full"``.

    ``COURSE_SCALE`` wins when set (any case; an unknown value raises :class:`ValueError` naming the
    allowed ones); else ``COURSE_FAST`` = ``1``/``true``/``yes`` means ``"fast"`` (autograding and CI
    set it); else ``"full"`` when CUDA is available and ``"laptop"`` otherwise.
    """
    requested = os.environ.get("COURSE_SCALE", "").strip().lower()
    if requested:
        if requested not in SCALES:
            raise ValueError(
                f"COURSE_SCALE={os.environ['COURSE_SCALE']!r} is not a scale; use one of {', '.join(SCALES)} "
                "(or unset it: COURSE_FAST=1 means fast, else full with CUDA and laptop without)."
            )
        return requested
    if os.environ.get("COURSE_FAST", "").strip().lower() in _TRUE:
        return "fast"
    return "full" if torch.cuda.is_available() else "laptop"


def fast_mode() -> bool:
    """True at the ``fast`` scale (:func:`scale`): shrink data and epochs to run in seconds."""
    return scale() == "fast"


def autograde_mode() -> bool:
    """True while an autograder re-runs a notebook (``COURSE_AUTOGRADE=1``, set by the grading kernel).

    The experiments are not graded then (the written answers are), so every runner shrinks its runs
    to the smallest that still exercises the code, below even the ``fast`` scale.
    """
    return os.environ.get("COURSE_AUTOGRADE") == "1"


def describe_device(device: torch.device | str | None = None) -> str:
    """A one-line description for notebook printouts, e.g.

    ``"cuda:0 (NVIDIA H100 80GB HBM3, 79.1 GiB, compute capability 9.0), CUDA 12.8, torch 2.13.0"``,
    ``"mps:0 (Apple GPU, macOS 15.1 arm64), torch 2.13.0"`` or ``"cpu (16 threads, x86_64), torch 2.13.0"``.

    Args:
        device: a device or device string; None means :func:`get_device`.
    """
    device = get_device() if device is None else torch.device(device)
    suffix = f"torch {torch.__version__}"
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        try:
            props = torch.cuda.get_device_properties(index)
            memory = props.total_memory / 2**30
            detail = f"{props.name}, {memory:.1f} GiB, compute capability {props.major}.{props.minor}"
        except Exception:
            detail = "not available"
        return f"cuda:{index} ({detail}), CUDA {torch.version.cuda}, {suffix}"
    if device.type == "mps":
        mac = platform.mac_ver()[0] or "unknown macOS"
        return f"mps:0 (Apple GPU, macOS {mac} {platform.machine()}), {suffix}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, {platform.machine() or 'unknown arch'}), {suffix}"
    return f"{device}, {suffix}"
