"""The course repository and its assignments: ``notebooks/<name>/<name>.ipynb`` and their public files."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .contract import NotebookSpec, validate_source
from .errors import GradingError

ASSIGNMENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Files in notebooks/<assignment>/ that never reach students.
PRIVATE_FILES = {"examples.toml"}
PRIVATE_SUFFIXES = {".pyc"}
PRIVATE_DIRS = {"__pycache__", ".ipynb_checkpoints", "examples"}


def find_root(start: Path | None = None) -> Path:
    """The course repository root: ``$COURSE_ROOT``, else the nearest parent with ``notebooks/``."""
    env = os.environ.get("COURSE_ROOT")
    if env:
        return Path(env).resolve()
    for base in [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]:
        for p in [base, *base.parents]:
            if (p / "notebooks").is_dir() and (p / "course_lib").is_dir():
                return p
    raise GradingError(
        "Could not find the course repository (a folder with notebooks/ and course_lib/). "
        "Run the command inside the repository or set COURSE_ROOT."
    )


@dataclass
class Assignment:
    name: str
    source_dir: Path

    @property
    def notebook(self) -> Path:
        return self.source_dir / f"{self.name}.ipynb"

    def spec(self) -> NotebookSpec:
        return validate_source(self.notebook)

    def release_files(self) -> list[Path]:
        """Files copied to nbgrader's source folder: the notebook and public extras only."""
        out = []
        for p in sorted(self.source_dir.rglob("*")):
            rel = p.relative_to(self.source_dir)
            if p.is_dir() or any(part in PRIVATE_DIRS for part in rel.parts):
                continue
            if p.name in PRIVATE_FILES or p.suffix in PRIVATE_SUFFIXES:
                continue
            if p.suffix == ".py" and p.stem == self.name:  # the jupytext pair holds the solutions
                continue
            out.append(p)
        return out


def list_assignments(root: Path | None = None) -> list[str]:
    root = root or find_root()
    return sorted(
        d.name for d in (root / "notebooks").iterdir() if d.is_dir() and (d / f"{d.name}.ipynb").is_file()
    )


def get_assignment(name: str, root: Path | None = None) -> Assignment:
    root = root or find_root()
    if not ASSIGNMENT_RE.match(name or ""):
        raise GradingError(f"Invalid assignment name {name!r}: use lower-case letters, digits and '_'.")
    a = Assignment(name, root / "notebooks" / name)
    if not a.notebook.is_file():
        raise GradingError(
            f"No assignment {name!r}: {a.notebook} does not exist. "
            f"Available: {', '.join(list_assignments(root)) or 'none'}."
        )
    return a
