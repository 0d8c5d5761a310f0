"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a uniquely named temporary file in the destination's folder (same file system,
so that the final rename is atomic), is flushed and ``fsync``-ed, and then renamed over the
destination with :func:`os.replace`. On any error the temporary file is removed and the
destination is left as it was. Every module that writes logs, checkpoints or records uses these::

    atomic_write_text(path, json.dumps(data))
    atomic_write_bytes(path, payload)
    atomic_torch_save(state_dict, path)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_torch_save"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fh)`` on a binary file handle and put the result at ``path`` atomically.

    The parent folder is created if needed. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600: give the file the mode open() would
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _mode_for(path: Path) -> int:
    """An existing file's permissions, else those ``open()`` gives a new file (0666 less the umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (``encoding``, default UTF-8; newlines as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))
