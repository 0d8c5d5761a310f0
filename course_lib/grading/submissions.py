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
any other name (:func:`name_problem`) is recorded with status ``invalid_name`` and never used,
unless a roster (:func:`read_roster`: a CSV ``folder,student_id``) maps the folder to an acceptable
student id: the folder is then graded under that id. Roster entries are data, never code.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import GradingError

# Safe ids: letters, digits and _ . @ + -, starting with a letter or digit. A folder name that
# matches is its own safe id (ASCII ids are unchanged).
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
# Punctuation a name or an e-mail address may hold, besides letters, digits and spaces.
NAME_PUNCTUATION = frozenset("_.@+-',\u2019")
INVALID_NAME = "invalid_name"
_SLUG_MAX = 48
ROSTER_COLUMNS = ("folder", "student_id")
ROSTER_HINT = ("rename the folder (letters, digits, spaces and _ . @ + - ' , only; not starting with '-'), "
               "or map it in a roster (--roster roster.csv, a CSV with the header folder,student_id and one line "
               "per folder: its name exactly as on disk, and the student id to grade it under)")


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
    folder: str = ""  # the folder's name as shown (display_name); defaults to student_id (differs when mapped by a roster)

    def __post_init__(self):
        if not self.safe_id:
            self.safe_id = safe_id(self.student_id)
        if not self.folder:
            self.folder = self.student_id


def read_roster(path: Path | str, submissions: Path) -> dict[str, str]:
    """``{folder name: student id}`` from roster CSV ``path`` (header ``folder,student_id``).

    Every line must name an existing folder of ``submissions`` (exactly as on disk), once, and map it
    to an acceptable name (:func:`name_problem`) that no other folder has or is mapped to; anything
    else is a :class:`GradingError` naming the line, raised before any grading. The values are data:
    read with the csv module, compared with folder names, never run."""
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"Roster {path} does not exist (expected a CSV file with the header folder,student_id).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GradingError(f"Roster {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    rows = list(csv.reader(text.splitlines()))
    header = [c.strip() for c in rows[0]] if rows else []
    if tuple(header) != ROSTER_COLUMNS:
        raise GradingError(f"Roster {path}, line 1: the header must be exactly folder,student_id "
                           f"(found {','.join(header) if header else 'an empty file'}).")
    on_disk = {e.name for e in submissions.iterdir() if e.is_dir() and not e.name.startswith(".")}
    roster: dict[str, str] = {}
    line_of_folder: dict[str, int] = {}
    line_of_id: dict[str, int] = {}
    id_of_key: dict[str, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"Roster {path}, line {lineno}"
        if len(row) != 2:
            raise GradingError(f"{where}: expected 2 values (folder,student_id), found {len(row)}.")
        folder, sid = row[0], unicodedata.normalize("NFC", row[1].strip())
        shown = display_name(folder)
        if folder not in on_disk:
            raise GradingError(f"{where}: there is no folder {shown!r} in {submissions} "
                               "(give the folder's name exactly as on disk; quote it if it holds a comma).")
        if folder in line_of_folder:
            raise GradingError(f"{where}: folder {shown!r} is already mapped on line {line_of_folder[folder]}.")
        problem = name_problem(sid)
        if problem:
            raise GradingError(f"{where}: student id {display_name(sid)!r} for folder {shown!r} "
                               f"is not acceptable: {problem}.")
        key = safe_id(sid)
        if key in line_of_id:
            raise GradingError(f"{where}: student id {sid!r} is already given to another folder on line "
                               f"{line_of_id[key]} (two folders cannot be one student).")
        line_of_folder[folder], line_of_id[key], id_of_key[key] = lineno, lineno, sid
        roster[folder] = sid
    for folder in sorted(on_disk - roster.keys()):
        if not name_problem(folder) and safe_id(folder) in line_of_id:
            raise GradingError(f"Roster {path}, line {line_of_id[safe_id(folder)]}: student id "
                               f"{id_of_key[safe_id(folder)]!r} is already the name of folder {folder!r} (map that folder too, "
                               "or choose another id).")
    return roster


@dataclass
class Census:
    """Every entry of a submissions folder, counted: what :func:`discover_submissions` saw."""

    folders: int = 0
    hidden: list[str] | None = None  # folders whose name starts with "." (not submissions)
    files: list[str] | None = None  # plain files next to the folders (not submissions)


def discover_submissions(folder: Path, name: str, *, log=print, census: Census | None = None,
                         roster: dict[str, str] | None = None) -> list[Submission]:
    """One :class:`Submission` per student folder; problems are recorded, never skipped.

    A folder that ``roster`` (:func:`read_roster`) maps is graded under the mapped student id.

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
        shown = display_name(entry.name)
        mapped = (roster or {}).get(entry.name)
        sid = mapped if mapped is not None else entry.name
        problem = "" if mapped is not None else name_problem(sid)
        if not problem and safe_id(sid) in taken:
            problem = f"its id {safe_id(sid)} is already the id of folder {display_name(taken[safe_id(sid)])!r}"
        if problem:
            log(f"warning: folder {shown!r} not graded: {problem}")
            subs.append(Submission(shown, None, INVALID_NAME,
                                   f"folder name not graded: {problem}. To grade it: {ROSTER_HINT}; "
                                   "then grade it again", safe_id=safe_id(sid)))
            continue
        taken[safe_id(sid)] = entry.name
        if mapped is not None:
            log(f"note: folder {shown!r} graded as {sid!r} (roster)")
        sub = _read_submission(entry, sid, name, log)
        sub.folder = shown
        subs.append(sub)
    return subs


def _read_submission(entry: Path, sid: str, name: str, log) -> Submission:
    nb = entry / f"{name}.ipynb"
    if not nb.is_file():
        candidates = sorted(p for p in entry.glob("*.ipynb") if p.is_file() and not p.is_symlink())
        if len(candidates) != 1:
            why = "no notebook" if not candidates else f"{len(candidates)} notebooks and none named {name}.ipynb"
            return Submission(sid, None, "missing", f"{why} in {display_name(entry.name)}/: submit {name}.ipynb")
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
