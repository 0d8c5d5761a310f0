"""File and environment helpers of the grading steps: content hashes, removal, env.

Atomic writes are :mod:`course_lib.files`' (one helper for the whole library)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path


@contextlib.contextmanager
def setenv(**values: str):
    """Set environment variables for the duration of a ``with`` block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def rmtree(path: Path) -> None:
    """Remove a file, a link or a folder tree; nothing if ``path`` does not exist."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ensure_bin_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: make this interpreter's bin dir visible."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])
