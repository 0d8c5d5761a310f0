"""Submissions: ``SUBMISSIONS_DIR/<student_id>/<assignment>.ipynb``, one per student folder.

Every student folder becomes a :class:`Submission`; one that cannot be graded (no notebook, a
damaged one, a link) keeps its folder's student id and a status that says why, so that it still
gets a row in the grades and a feedback page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

# Student ids are folder names: letters, digits and _ . @ + -, starting with a letter or digit.
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


@dataclass
class Submission:
    student_id: str
    notebook: Path | None
    status: str = "ok"  # ok | missing | corrupt | invalid-id
    message: str = ""
    key: str = ""  # source and submission hashes: an unchanged, graded submission is not graded again


def discover_submissions(folder: Path, name: str, *, log=print) -> list[Submission]:
    """One :class:`Submission` per student folder; problems are recorded, never skipped."""
    subs: list[Submission] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            log(f"warning: ignoring {entry} (expected a folder per student: {folder}/<student_id>/{name}.ipynb)")
            continue
        sid = entry.name
        if not STUDENT_RE.match(sid):
            log(f"warning: folder name {sid!r} is not a valid student id (letters, digits, _ . @ + -); not graded")
            continue
        subs.append(_read_submission(entry, sid, name, log))
    return subs


def _read_submission(entry: Path, sid: str, name: str, log) -> Submission:
    nb = entry / f"{name}.ipynb"
    if not nb.is_file():
        candidates = sorted(p for p in entry.glob("*.ipynb") if p.is_file() and not p.is_symlink())
        if len(candidates) != 1:
            why = "no notebook" if not candidates else f"{len(candidates)} notebooks and none named {name}.ipynb"
            return Submission(sid, None, "missing", f"{why} in {entry.name}/: submit {name}.ipynb")
        log(f"note: {sid}: using {candidates[0].name} (expected {name}.ipynb)")
        nb = candidates[0]
    if nb.is_symlink():
        return Submission(sid, None, "corrupt", "the notebook is a symbolic link; submit the file itself")
    try:
        node = nbformat.read(nb, as_version=4)
        nbformat.validate(node)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is a recorded failure
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return Submission(sid, None, "corrupt",
                          f"{nb.name} is not a valid notebook ({first}); re-download it from Jupyter and submit again")
    return Submission(sid, nb)
