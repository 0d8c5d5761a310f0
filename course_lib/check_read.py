"""``course check``, step 1: read the student's notebook, and the course's own copy of the assignment.

:func:`read_notebook` refuses (with :class:`NotebookUnreadable`, saying what to do) a file that is
missing, empty, damaged or not the assignment notebook; :func:`reference_notebook` finds the
course's source notebook of the same assignment, when this checkout has it, to tell which read-only
cells were deleted. Only ``nbformat`` is needed (imported when called), not the grading tools.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .grading.cells import is_test_cell

__all__ = ["NotebookUnreadable", "read_notebook", "reference_notebook"]


class NotebookUnreadable(Exception):
    """The file is missing or is not a Jupyter notebook; the message says what to do."""


def read_notebook(path: Path):
    """The notebook at ``path`` (nbformat v4), or :class:`NotebookUnreadable` saying what to do."""
    import nbformat

    path = Path(path)
    fix = ("If it is still open in JupyterLab or Colab, save it again there (Colab: File > Download .ipynb); "
           "otherwise go back to an earlier copy (JupyterLab: File > Revert Notebook to Checkpoint), or take a "
           "fresh copy of the assignment and paste your answers into it.")
    if not path.exists():
        raise NotebookUnreadable(f"{path}: no such file. Give the path of your notebook, "
                                 f"e.g. `course check rnn_lm.ipynb`.")
    if not path.is_file():
        raise NotebookUnreadable(f"{path} is not a file. Give the path of your notebook (the .ipynb file).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookUnreadable(f"{path} cannot be read ({type(exc).__name__}: {exc}). {fix}") from None
    if not text.strip():
        raise NotebookUnreadable(f"{path} is empty: it is not a notebook. {fix}")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookUnreadable(f"{path} is not a Jupyter notebook: its JSON is damaged (line {exc.lineno}, "
                                 f"column {exc.colno}: {exc.msg}). {fix}") from None
    try:
        import logging

        logging.getLogger("traitlets").setLevel(logging.CRITICAL)  # nbformat logs schema details there
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # any reason the file is not a notebook
        raise NotebookUnreadable(f"{path} is not a Jupyter notebook ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}). {fix}") from None
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw") and isinstance(c.get("source"), str)
            for c in cells):
        raise NotebookUnreadable(f"{path} is not a valid Jupyter notebook (its cells are damaged). {fix}")
    for c in cells:
        if c.get("cell_type") == "code":
            c.setdefault("outputs", [])
        c.setdefault("metadata", {})
    if not any(is_test_cell(c) for c in cells):
        raise NotebookUnreadable(
            f"{path} has no test cells (no nbgrader metadata): check it is the assignment notebook you were "
            "given, not a copy saved by a tool that drops cell metadata. Paste your answers into a fresh copy "
            "of the assignment if needed.")
    return nb


def reference_notebook(path: Path):
    """The course's source notebook of the same assignment, when this checkout has it (else None).

    Only its cell ids, kinds and points are used: to tell which read-only cells were deleted.
    """
    import nbformat

    stem = path.stem
    if not re.fullmatch(r"[a-z][a-z0-9_]*", stem):
        return None
    roots = [os.environ.get("COURSE_ROOT", ""), str(Path(__file__).resolve().parents[1])]
    for root in filter(None, roots):
        ref = Path(root) / "notebooks" / stem / f"{stem}.ipynb"
        if ref.is_file():
            try:
                return nbformat.read(ref, as_version=4)
            except Exception:  # no reference then
                return None
    return None
