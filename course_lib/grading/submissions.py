"""Submissions: ``SUBMISSIONS_DIR/<student>/<assignment>.ipynb``, one per student folder.

Every folder becomes a :class:`Submission`; one that cannot be graded (no notebook, a damaged one,
a link, a name that is not safe to use) keeps its folder's name and a status that says why, so
that it still gets a row in the grades and the grading log.

Folder names are data. A name is shown as it is (``student_id``: the name the instructor knows)
and, wherever nbgrader or the filesystem needs an id, replaced by its *safe id*
(:func:`safe_id`): the name itself when it is already plain ASCII (``STUDENT_RE``), otherwise an
ASCII slug of it plus a short hash of the name (``José García`` -> ``Jose_Garcia-3f1c9a2b``), so
two names with the same slug stay two students. A name is accepted when it is made of Unicode
letters, digits, spaces and the punctuation of names and e-mail addresses (:data:`NAME_PUNCTUATION`);
any other name (:func:`name_problem`) is recorded with status ``invalid_name`` and never used.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nbformat

# Safe ids: letters, digits and _ . @ + -, starting with a letter or digit. A folder name that
# matches is its own safe id (ASCII ids are unchanged).
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
# Punctuation a name or an e-mail address may hold, besides letters, digits and spaces.
NAME_PUNCTUATION = frozenset("_.@+-',\u2019")
INVALID_NAME = "invalid_name"
_SLUG_MAX = 48


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def name_problem(name: str) -> str:
    """Why folder name ``name`` cannot be used as a student's name ("" when it can)."""
    if name in (".", ".."):
        return f"the name {name!r} is a path component, not a name"
    if not name.strip():
        return "the name is empty or only spaces"
    if "/" in name or "\\" in name or "\0" in name:
        return "the name holds a path separator"
    bad_cc = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad_cc:
        return "the name holds control or invisible characters (" + ", ".join(
            sorted({f"U+{ord(c):04X}" for c in bad_cc})) + ")"
    if name.startswith("-"):
        return "the name starts with '-' (it would read as a command-line option)"
    other = sorted({c for c in name if not _name_char(c)})
    if other:
        return ("the name holds characters that are not part of a name: " + " ".join(other)
                + " (names may hold letters, digits, spaces and _ . @ + - ' ,)")
    if not any(unicodedata.category(c)[0] in "LN" for c in name):
        return "the name has no letter or digit"
    return ""


def _name_char(c: str) -> bool:
    cat = unicodedata.category(c)
    return cat[0] in "LM" or cat == "Nd" or cat == "Zs" or c in NAME_PUNCTUATION


def safe_id(name: str) -> str:
    """The id nbgrader and file names use for folder ``name``: ``name`` itself when it matches
    :data:`STUDENT_RE`, else an ASCII slug of it, ``-`` and 8 hex digits of the SHA-256 of its NFC
    form (stable across runs and machines; same slug, different name: different id)."""
    if STUDENT_RE.match(name):
        return name
    folded = unicodedata.normalize("NFKD", _nfc(name)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9_.@+-]+", "_", folded)
    slug = re.sub(r"^[^A-Za-z0-9]+", "", slug)[:_SLUG_MAX].rstrip("_.-@+") or "student"
    digest = hashlib.sha256(_nfc(name).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slug}-{digest}"


def display_name(name: str) -> str:
    """``name`` as the tables show it: control and invisible characters written as ``\\xNN`` /
    ``\\uNNNN`` escapes (they would garble a terminal or a CSV reader); anything else as it is."""
    out = []
    for c in name:
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(c.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(c)
    return "".join(out)


@dataclass
class Submission:
    student_id: str  # the folder's name, as shown in every table (see display_name)
    notebook: Path | None
    status: str = "ok"  # ok | missing | corrupt | invalid_name
    message: str = ""
    key: str = ""  # source and submission hashes: an unchanged, graded submission is not graded again
    safe_id: str = ""  # the id nbgrader and file names use (see safe_id); defaults to safe_id(student_id)

    def __post_init__(self):
        if not self.safe_id:
            self.safe_id = safe_id(self.student_id)


@dataclass
class Census:
    """Every entry of a submissions folder, counted: what :func:`discover_submissions` saw."""

    folders: int = 0
    hidden: list[str] | None = None  # folders whose name starts with "." (not submissions)
    files: list[str] | None = None  # plain files next to the folders (not submissions)


def discover_submissions(folder: Path, name: str, *, log=print, census: Census | None = None) -> list[Submission]:
    """One :class:`Submission` per student folder; problems are recorded, never skipped.

    Folders whose name starts with ``.`` (``.ipynb_checkpoints``) and plain files are not
    submissions: they are counted in ``census`` and named in the log."""
    subs: list[Submission] = []
    census = census if census is not None else Census()
    census.hidden, census.files = [], []
    taken: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            census.hidden.append(entry.name)
            continue
        if not entry.is_dir():
            census.files.append(entry.name)
            log(f"warning: ignoring {display_name(entry.name)!r}: not a folder "
                f"(expected a folder per student: {folder}/<student>/{name}.ipynb)")
            continue
        census.folders += 1
        sid = entry.name
        shown = display_name(sid)
        problem = name_problem(sid)
        if not problem and safe_id(sid) in taken:
            problem = f"its id {safe_id(sid)} is already the id of folder {taken[safe_id(sid)]!r}"
        if problem:
            log(f"warning: folder {shown!r} not graded: {problem}")
            subs.append(Submission(shown, None, INVALID_NAME,
                                   f"folder name not graded: {problem}. Rename the folder (letters, digits, spaces "
                                   f"and _ . @ + - ' , only; not starting with '-') and grade it again",
                                   safe_id=safe_id(sid)))
            continue
        taken[safe_id(sid)] = sid
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
    except Exception as exc:  # any unreadable notebook is a recorded failure
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return Submission(sid, None, "corrupt",
                          f"{nb.name} is not a valid notebook ({first}); re-download it from Jupyter and submit again")
    return Submission(sid, nb)
