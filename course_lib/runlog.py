"""The run log: what every runner writes so that a run survives an interruption and can be read back.

A run has a folder holding

- ``meta.json``: the configuration, its fingerprint (the settings that decide what the run
  computes), the model's code fingerprint, sizes and machine (rewritten atomically at each start);
- ``epochs.jsonl``: one JSON line per finished epoch (rewritten atomically after each);
- ``checkpoint.pt``: model, optimizer, RNG states, epoch and history after the last finished
  epoch (written atomically, *before* the epoch's log line, so the log never runs ahead of it).

:class:`RunLog` opens such a folder: logs written with other settings or other model code are
moved aside (``<folder>.replaced-<time>``, never deleted); :meth:`RunLog.resume` puts a model,
optimizer and the RNG states back at the last finished epoch, so that an interrupted run, run
again, gives the same result as an uninterrupted one; a finished run is read back, not trained
again. The module also has the measurements every runner logs (memory, device sync) and the
fingerprint of a model's code.

    log = RunLog(folder, label="5 GPT-Adam-1L", say=print)
    log.open(fingerprint=config_fields, resume=True)
    if log.finished(epochs): ...                       # read back
    start_epoch, history = log.resume(model, optimizer, epochs)
    log.write_meta({...})
    for epoch in ...:
        history.append(row); log.save_epoch(history, model, optimizer)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import inspect
import json
import os
import random
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .files import atomic_torch_save, atomic_write_text
from .runners import json_safe

__all__ = [
    "RunLog", "read_json", "read_jsonl", "write_jsonl", "now", "model_fingerprint", "code_fingerprint", "rng_state",
    "set_rng_state", "load_checkpoint", "move_aside", "epoch_memory", "cpu_max_rss_mib", "sync",
    "MEMORY_KINDS",
]

MEMORY_KINDS = {
    "cuda_max_allocated": "peak GPU memory allocated by tensors (torch.cuda.max_memory_allocated)",
    "cpu_rss": "process resident set size at the end of the epoch (CPU run)",
    "cpu_max_rss": "peak resident set size of the process so far (CPU run)",
}


# ---------------------------------------------------------------------------------------------------
# the run folder


class RunLog:
    """A run's folder (``meta.json``, ``epochs.jsonl``, ``checkpoint.pt``), opened for resuming.

    ``label`` starts the messages given to ``say``; ``log_format`` is stored in ``meta.json`` and
    in each checkpoint, and a folder of another format is moved aside.
    """

    def __init__(self, folder: str | os.PathLike, *, label: str = "", log_format: int = 1,
                 say: Callable[[str], object] | None = None):
        self.folder = Path(folder)
        self.label = label
        self.log_format = log_format
        self.say = say or (lambda *_: None)
        self.meta_path = self.folder / "meta.json"
        self.epochs_path = self.folder / "epochs.jsonl"
        self.checkpoint_path = self.folder / "checkpoint.pt"
        self.meta: dict | None = None
        self.rows: list[dict] = []

    def open(self, fingerprint: dict, *, resume: bool = True) -> RunLog:
        """Read what the folder holds; move it aside if ``resume`` is False or if its format or
        configuration ``fingerprint`` differ from this run's."""
        if not resume and self.folder.exists():
            move_aside(self.folder, self.say, f"{self.label}: resume=False")
        meta = read_json(self.meta_path)
        if meta is not None and (meta.get("format") != self.log_format or meta.get("fingerprint") != fingerprint):
            move_aside(self.folder, self.say, f"{self.label}: the logs in {self.folder} were written with other settings")
            meta = None
        self.meta = meta
        self.rows = read_jsonl(self.epochs_path) if meta is not None else []
        return self

    def discard(self, reason: str) -> None:
        """Move the folder aside (``reason`` is said) and start from nothing."""
        move_aside(self.folder, self.say, f"{self.label}: {reason}")
        self.meta, self.rows = None, []

    def finished(self, epochs: int) -> bool:
        """True when the log holds at least ``epochs`` finished epochs."""
        return self.meta is not None and len(self.rows) >= epochs

    def matches_model(self, model: nn.Module) -> bool:
        """True when the log was written by this model's code (:func:`model_fingerprint`)."""
        return self.meta is not None and self.meta.get("model_fingerprint") == model_fingerprint(model)

    def check_model(self, model: nn.Module) -> None:
        """Discard the log if another model's code wrote it."""
        if self.meta is not None and not self.matches_model(model):
            self.discard(f"the model's code changed since {self.folder} was written")

    def load_final(self, model: nn.Module, epochs: int) -> bool:
        """Load the weights of a finished run's last epoch into ``model``; False if there are none."""
        ckpt = load_checkpoint(self.checkpoint_path)
        if ckpt is None or int(ckpt["epoch"]) != epochs:
            return False
        model.load_state_dict(ckpt["model"])
        return True

    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer, epochs: int) -> tuple[int, list[dict]]:
        """Put ``model``, ``optimizer`` and the RNG states back at the checkpoint's epoch; return
        that epoch and the history up to it (``0, []`` when starting over, which empties the log)."""
        start_epoch, history = 0, []
        if self.meta is not None:
            ckpt = load_checkpoint(self.checkpoint_path)
            if ckpt is not None and 0 < int(ckpt["epoch"]) < epochs + 1:
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                set_rng_state(ckpt["rng"])
                start_epoch, history = int(ckpt["epoch"]), list(ckpt["history"])[: int(ckpt["epoch"])]
                write_jsonl(self.epochs_path, history)  # the checkpoint is written first: it is never behind
            elif self.rows:
                self.say(f"{self.label}: {len(self.rows)} epoch(s) logged but no usable checkpoint; starting over")
        if start_epoch == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_jsonl(self.epochs_path, [])
            with contextlib.suppress(FileNotFoundError):
                self.checkpoint_path.unlink()
        return start_epoch, history

    def write_meta(self, meta: dict) -> None:
        """Write ``meta.json`` (``format`` first, then ``meta``'s fields)."""
        self.meta = {"format": self.log_format, **meta}
        atomic_write_text(self.meta_path, json.dumps(json_safe(self.meta), indent=2) + "\n")

    def save_epoch(self, history: list[dict], model: nn.Module, optimizer: torch.optim.Optimizer,
                   **extra) -> None:
        """After a finished epoch: the checkpoint first, then the log lines (``history``, whose last
        row is that epoch's), so that the log never runs ahead of the checkpoint."""
        atomic_torch_save({
            "format": self.log_format, "epoch": len(history), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": rng_state(), "history": history, **extra,
        }, self.checkpoint_path)
        write_jsonl(self.epochs_path, history)
        self.rows = list(history)


# ---------------------------------------------------------------------------------------------------
# files, fingerprints, RNG states


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(json_safe(r), sort_keys=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _code_digest(h, code) -> None:
    """Feed a code object into ``h``: its bytecode, names and constants (nested code objects too),
    not its line numbers, so re-running an unchanged notebook cell elsewhere changes nothing."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _code_digest(h, const)
        else:
            h.update(_const_repr(const).encode())


def _const_repr(const) -> str:
    """``repr`` that does not depend on string hashing (frozenset constants of ``x in {...}``)."""
    if isinstance(const, frozenset):
        return "frozenset(" + ",".join(sorted(_const_repr(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_repr(c) for c in const) + ")"
    return repr(const)


def _class_digest(h, cls: type) -> None:
    for name, value in sorted(vars(cls).items()):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        code = getattr(value, "__code__", None)
        if code is not None:
            h.update(name.encode())
            _code_digest(h, code)


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the model's code (the methods of every non-torch module class in it and of their
    base classes) and of its parameter names and shapes: logs made by other code are not resumed.
    Works for classes defined in a notebook, where the source is not available."""
    h = hashlib.sha256()
    classes = set()
    for m in model.modules():
        classes.update(c for c in type(m).__mro__ if c is not object and c.__module__.split(".")[0] != "torch")
    for cls in sorted(classes, key=lambda c: (c.__module__, c.__qualname__)):
        h.update(f"{cls.__module__}.{cls.__qualname__}\n".encode())
        _class_digest(h, cls)
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
    return h.hexdigest()[:16]


def _own_callees(fn) -> list:
    """The functions and classes ``fn``'s code names that are defined in ``fn``'s own module (a
    notebook's, or the same library module): the helpers it calls, whose code decides what it computes."""
    module, names, found = getattr(fn, "__module__", None), set(), []

    def collect(code):
        names.update(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                collect(const)

    collect(fn.__code__)
    scope = getattr(fn, "__globals__", {})
    for name in sorted(names):
        obj = scope.get(name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == module:
            found.append(obj)
    return found


def code_fingerprint(*functions: Callable) -> str:
    """A hash of the code of ``functions`` and of the functions and classes of their own module that
    they use, transitively (bytecode, names and constants, as :func:`model_fingerprint` hashes
    methods): a log written by other code is not resumed, even when only a helper changed. Works for
    functions defined in a notebook."""
    h = hashlib.sha256()
    seen: set[int] = set()
    pending = [getattr(fn, "__func__", fn) for fn in functions]
    while pending:
        fn = pending.pop(0)
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}\n".encode())
        if inspect.isclass(fn):
            _class_digest(h, fn)
            continue
        if getattr(fn, "__code__", None) is not None:
            _code_digest(h, fn.__code__)
            pending.extend(_own_callees(fn))
    return h.hexdigest()[:16]


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def load_checkpoint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        warnings.warn(f"could not read {path} ({type(err).__name__}: {err}); starting that run over",
                      RuntimeWarning, stacklevel=3)
        return None


def move_aside(folder: Path, say: Callable[[str], object], reason: str) -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = folder.with_name(f"{folder.name}.replaced-{stamp}")
    i = 1
    while target.exists():
        target = folder.with_name(f"{folder.name}.replaced-{stamp}-{i}")
        i += 1
    folder.rename(target)
    say(f"{reason}: the old logs were moved to {target}; starting over.")


# ---------------------------------------------------------------------------------------------------
# measurements


def _cpu_rss() -> tuple[float, str]:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20, "cpu_rss"
    except Exception:
        pass
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20, "cpu_rss"
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak / 2**20 if sys.platform == "darwin" else peak / 2**10), "cpu_max_rss"


def epoch_memory(device: torch.device) -> dict:
    """The memory columns of an epoch's log line (:data:`MEMORY_KINDS`): on CUDA the peak allocated
    since the last ``reset_peak_memory_stats`` (and the reserved peak), on a CPU the resident set
    size now and the process's peak so far."""
    if device.type == "cuda":
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
                "memory_kind": "cuda_max_allocated",
                "cuda_max_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20}
    mib, kind = _cpu_rss()
    return {"peak_memory_mib": mib, "memory_kind": kind, "cuda_max_reserved_mib": None,
            "cpu_max_rss_mib": cpu_max_rss_mib()}


def cpu_max_rss_mib() -> float | None:
    """The process's peak resident set size so far (``ru_maxrss``), in MiB: a peak over everything the
    process did, so it compares models only when each configuration runs in its own process."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    except (ImportError, OSError):  # pragma: no cover - Windows
        return None


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a clock read after it measures that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
