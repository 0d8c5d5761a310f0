"""``course export ASSIGNMENT --format canvas|moodle|gradescope|csv``: the gradebook in an LMS's import format.

It reads ``totals.csv`` and ``grading_log.csv`` of the graded folder (``WORKDIR/<assignment>/``,
see :mod:`.reports`) and an *LMS roster* (``--roster lms_roster.csv``), and writes one file:

- ``canvas``: Canvas's gradebook import CSV: the header ``Student, ID, SIS User ID, SIS Login ID,
  Section, <assignment> (<Canvas assignment id>)``, then a ``Points Possible`` row, then one row per
  student. Canvas matches a row by ``ID`` (its user id), then ``SIS User ID``, then ``SIS Login ID``.
  Without ``--canvas-assignment-id`` the column is the bare name and Canvas creates a new assignment.
- ``moodle``: Moodle's grade import CSV: ``Full name, ID number, Email address, <grade item>,
  Late penalty, Feedback``. On import, "Map from" ``Email address`` to ``useremail`` (or ``ID number``
  to ``useridnumber``) and map ``<grade item>`` to the assignment's grade item (the feedback column
  to its feedback, or leave it "ignore"; leave ``Late penalty`` and ``Full name`` "ignore").
- ``gradescope``: Gradescope's grades CSV: ``Name, SID, Email, Sections, <assignment>,
  <assignment> - Max Points, <assignment> - Submission Time, <assignment> - Lateness (H:M:S)``.
- ``csv``: every field: ids, score before and after the late penalty, days late, status, problem.

**The LMS roster** maps the gradebook's student ids (the ``student_id`` of ``totals.csv``, i.e. the
submission folder's name, or the id ``course autograde --roster`` mapped it to) to LMS ids. A UTF-8
CSV whose header names ``student_id`` and any of::

    student_id,name,email,lms_id,sis_user_id,sis_login_id,section
    ada,"Lovelace, Ada",ada@example.edu,1001,S0001,ada,Section A

``name``: as the LMS shows it (Canvas: "Last, First"); ``email``: the LMS login e-mail (Moodle's
``Email address``, Gradescope's ``Email``); ``lms_id``: Canvas's numeric user ``ID``;
``sis_user_id``: the institution's id (Canvas ``SIS User ID``, Moodle ``ID number``, Gradescope
``SID``); ``sis_login_id``: Canvas ``SIS Login ID``; ``section``: Canvas ``Section``, Gradescope
``Sections``. Each format needs some of them on every line (:data:`REQUIRED`); a missing one, an
unknown column, an empty or repeated student id (or a repeated LMS id / e-mail) is a
:class:`GradingError` naming the line.

**Nobody is dropped silently.** A student of the gradebook who is not on the roster cannot be
written to an LMS file (no LMS id): they are listed (on the terminal and in
``<output stem>.problems.csv``). A student on the roster with no submission gets a row with an
empty score (Canvas and Moodle: no change; Gradescope status ``Missing``) and is listed too, as are
submissions that could not be graded normally and scores that still count written answers waiting
for a human as 0.

**Late penalties.** When the course's ``pyproject.toml`` sets a deadline and a late policy for the
assignment (:func:`load_late_policy`)::

    [tool.course.assignments.rnn_lm]
    deadline = "2026-12-01T23:59:00+00:00"         # ISO 8601, with its time zone
    late_policy = { per_day = 0.1, max_days = 5 }   # 10 % of the score per day started; 0 after 5 days

the submission time of each folder is read from ``SUBMISSIONS/<folder>/timestamp.txt`` (nbgrader's
convention: ``2026-12-02 10:00:00.000000 UTC`` or ISO 8601; ``--submissions`` gives the folder).
A submission ``d`` days late (any part of a day counts) loses ``min(1, per_day * d)`` of its score,
and all of it after ``max_days``; the points deducted are a separate column, the score column is
after the penalty. A folder without ``timestamp.txt`` gets no penalty and is listed.
"""

from __future__ import annotations

import csv
import io
import math
import tomllib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from .errors import GradingError
from .reports import GRADED_STATUSES, read_log

FORMATS = ("canvas", "moodle", "gradescope", "csv")
ROSTER_FIELDS = ("student_id", "name", "email", "lms_id", "sis_user_id", "sis_login_id", "section")
# Fields every roster line needs, per format: any one of each tuple.
REQUIRED = {
    "canvas": [("lms_id", "sis_user_id", "sis_login_id")],  # Canvas matches ID, then SIS User ID, then SIS Login ID
    "moodle": [("email", "sis_user_id")],  # Moodle's "Map to": useremail or useridnumber
    "gradescope": [("email",)],  # Gradescope's roster is keyed by e-mail
    "csv": [],
}
UNIQUE = ("lms_id", "email", "sis_user_id", "sis_login_id")
# The documented columns of each format (the tests compare them with sample files).
CANVAS_ID_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "Points Possible"
CANVAS_READ_ONLY = "(read only)"  # in the Points Possible row: Canvas's importer skips the column
MOODLE_COLUMNS = ["Full name", "ID number", "Email address"]
GRADESCOPE_COLUMNS = ["Name", "SID", "Email", "Sections"]
CSV_COLUMNS = ["student_id", "name", "email", "lms_id", "sis_user_id", "sis_login_id", "section", "status",
               "submitted_at", "lateness", "days_late", "score_before_penalty", "late_penalty", "score", "max_score",
               "pending_manual", "problem"]
PROBLEM_COLUMNS = ["student_id", "problem"]


# ----------------------------------------------------------------------------- roster
def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s.strip())


def read_lms_roster(path: Path | str, fmt: str = "csv") -> pd.DataFrame:
    """The LMS roster at ``path`` (see the module's docstring), checked for format ``fmt``.

    Returns one row per student with every field of :data:`ROSTER_FIELDS` (empty where not given)
    and ``line`` (its line in the file)."""
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"LMS roster {path} does not exist (expected a CSV with the header "
                           f"{','.join(ROSTER_FIELDS)}; only student_id is always needed).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GradingError(f"LMS roster {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [c.strip() for c in rows[0]] if rows else []
    if "student_id" not in header:
        raise GradingError(f"LMS roster {path}, line 1: the header must name student_id "
                           f"(found {','.join(header) if header else 'an empty file'}); "
                           f"its columns may be {', '.join(ROSTER_FIELDS)}.")
    unknown = [c for c in header if c not in ROSTER_FIELDS]
    if unknown:
        raise GradingError(f"LMS roster {path}, line 1: unknown column(s) {', '.join(map(repr, unknown))} "
                           f"(the columns may be {', '.join(ROSTER_FIELDS)}).")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise GradingError(f"LMS roster {path}, line 1: column(s) {', '.join(dup)} given twice.")
    out, seen = [], {f: {} for f in ("student_id", *UNIQUE)}
    # Line numbers as csv counts them (a quoted field may span lines): a reader over the text.
    reader = csv.reader(io.StringIO(text))
    next(reader)
    for row in reader:
        lineno = reader.line_num
        if not row or not any(c.strip() for c in row):
            continue
        where = f"LMS roster {path}, line {lineno}"
        if len(row) != len(header):
            raise GradingError(f"{where}: expected {len(header)} values ({','.join(header)}), found {len(row)} "
                               "(quote a value that holds a comma).")
        rec = dict.fromkeys(ROSTER_FIELDS, "")
        rec.update({h: _nfc(v) for h, v in zip(header, row, strict=True)})
        if not rec["student_id"]:
            raise GradingError(f"{where}: student_id is empty.")
        for need in REQUIRED[fmt]:
            if not any(rec[f] for f in need):
                raise GradingError(f"{where}: student {rec['student_id']!r} has no {' or '.join(need)}, which the "
                                   f"{fmt} format needs to find the student in the LMS.")
        for f in ("student_id", *UNIQUE):
            v = rec[f] if f == "student_id" else rec[f].casefold() if f == "email" else rec[f]
            if v and v in seen[f]:
                raise GradingError(f"{where}: {f} {rec[f]!r} is already on line {seen[f][v]} (one line per student).")
            if v:
                seen[f][v] = lineno
        rec["line"] = lineno
        out.append(rec)
    return pd.DataFrame(out, columns=[*ROSTER_FIELDS, "line"])


# ----------------------------------------------------------------------------- late policy
@dataclass(frozen=True)
class LatePolicy:
    """A deadline and a penalty per day late (a fraction of the score), nothing after ``max_days``."""

    deadline: datetime
    per_day: float
    max_days: int

    def days_late(self, submitted: datetime) -> int:
        """Days started after the deadline (0: on time)."""
        seconds = (submitted - self.deadline).total_seconds()
        return 0 if seconds <= 0 else math.ceil(seconds / 86400)

    def penalty(self, score: float, days: int) -> float:
        """Points a score loses ``days`` days late."""
        if days <= 0:
            return 0.0
        if days > self.max_days:
            return float(score)
        return round(float(score) * min(1.0, self.per_day * days), 2)


def _datetime(text: str, where: str) -> datetime:
    s = str(text).strip()
    if s.endswith(" UTC"):  # nbgrader's timestamp.txt: "2026-12-02 10:00:00.000000 UTC"
        s = s[:-4] + "+00:00"
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise GradingError(f"{where}: {text!r} is not a date and time (write ISO 8601 with a time zone, "
                           "e.g. 2026-12-01T23:59:00+00:00)") from None
    if t.tzinfo is None:
        raise GradingError(f"{where}: {text!r} has no time zone (add one, e.g. +00:00 or Z)")
    return t.astimezone(timezone.utc)


def load_late_policy(name: str, root: Path) -> LatePolicy | None:
    """The deadline and late policy of assignment ``name`` in ``[tool.course.assignments.<name>]`` of
    ``root/pyproject.toml`` (None when it sets none)."""
    path = Path(root) / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise GradingError(f"Cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get("course", {}).get("assignments", {}).get(name)
    if not table:
        return None
    where = f"{path}: [tool.course.assignments.{name}]"
    unknown = sorted(set(table) - {"deadline", "late_policy"})
    if unknown:
        raise GradingError(f"{where}: unknown key(s) {', '.join(unknown)} (expected deadline and late_policy)")
    if "deadline" not in table or "late_policy" not in table:
        raise GradingError(f"{where}: give both deadline (ISO 8601 with a time zone) and "
                           "late_policy = {{ per_day = 0.1, max_days = 5 }}")
    pol = table["late_policy"]
    if not isinstance(pol, dict) or set(pol) != {"per_day", "max_days"}:
        raise GradingError(f"{where}: late_policy must be {{ per_day = <fraction of the score per day>, "
                           f"max_days = <days after which the score is 0> }}, not {pol!r}")
    per_day, max_days = pol["per_day"], pol["max_days"]
    if isinstance(per_day, bool) or not isinstance(per_day, (int, float)) or not 0 <= per_day <= 1:
        raise GradingError(f"{where}: late_policy.per_day must be a number in [0, 1], not {per_day!r}")
    if isinstance(max_days, bool) or not isinstance(max_days, int) or max_days < 0:
        raise GradingError(f"{where}: late_policy.max_days must be a whole number of days >= 0, not {max_days!r}")
    deadline = table["deadline"]
    if isinstance(deadline, datetime):  # TOML's own date-time
        if deadline.tzinfo is None:
            raise GradingError(f"{where}: deadline {deadline} has no time zone (add one, e.g. +00:00)")
        deadline = deadline.astimezone(timezone.utc)
    else:
        deadline = _datetime(deadline, f"{where} deadline")
    return LatePolicy(deadline, float(per_day), max_days)


def submission_time(folder: Path) -> datetime | None:
    """When the submission in ``folder`` was made: its ``timestamp.txt`` (None when there is none)."""
    f = folder / "timestamp.txt"
    if not f.is_file():
        return None
    return _datetime(f.read_text(encoding="utf-8").strip(), str(f))


# ----------------------------------------------------------------------------- the export table
def export_table(graded: Path | str, roster: pd.DataFrame | None, *, policy: LatePolicy | None = None,
                 submissions: Path | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, problems)``: one row per student (:data:`CSV_COLUMNS`) of the roster (or, without
    one, of the gradebook), and every student the LMS file cannot hold as it should, with why."""
    graded = Path(graded)
    path = graded / "totals.csv"
    if not path.is_file():
        raise GradingError(f"{path} does not exist: grade the assignment first (course autograde ASSIGNMENT SUBMISSIONS).")
    totals = pd.read_csv(path, dtype={"student_id": str, "status": str}, keep_default_na=False)
    log = read_log(graded / "grading_log.csv") if (graded / "grading_log.csv").is_file() else None
    folder_of = dict(zip(log["student_id"], log["folder"], strict=True)) if log is not None else {}
    if policy is not None and submissions is None:
        raise GradingError("this assignment has a deadline and a late policy: give --submissions DIR (each "
                           "folder's timestamp.txt is its submission time)")
    book = {_nfc(s): r for s, r in zip(totals["student_id"], totals.to_dict("records"), strict=True)}
    max_score = float(pd.to_numeric(totals["max_total"]).max()) if len(totals) else 0.0
    problems: list[dict] = []
    if roster is None:
        people = [dict.fromkeys(ROSTER_FIELDS, "") | {"student_id": s} for s in book]
    else:
        people = roster.to_dict("records")
        listed = {p["student_id"] for p in people}
        for s in sorted(set(book) - listed):
            problems.append({"student_id": s, "problem": "graded but not on the LMS roster: not in the export "
                                                         "(add the student to the roster)"})
    rows = []
    for p in people:
        sid = p["student_id"]
        rec = book.get(sid)
        row = {k: p.get(k, "") for k in ROSTER_FIELDS} | {"status": "", "submitted_at": "", "lateness": "", "days_late": 0,
                                                         "score_before_penalty": None, "late_penalty": 0.0,
                                                         "score": None, "max_score": max_score,
                                                         "pending_manual": 0, "problem": ""}
        notes, late_only = [], False
        if rec is None:
            row["status"] = "no submission"
            notes.append("on the roster, no submission: empty score")
        else:
            status = str(rec["status"])
            score = float(rec["total"])
            row.update(status=status, score_before_penalty=score, score=score,
                       pending_manual=int(float(rec["pending_manual"] or 0)))
            if status not in GRADED_STATUSES:
                notes.append(f"not graded normally ({status}: {rec['message']}): score {score:g}")
            if row["pending_manual"]:
                notes.append(f"{row['pending_manual']} written answer(s) not graded yet (counted as 0)")
            if policy is not None:
                folder = Path(submissions) / folder_of.get(sid, sid)
                when = submission_time(folder) if folder.is_dir() else None
                if when is None:
                    notes.append(f"no {folder.name}/timestamp.txt: no late penalty applied")
                else:
                    days = policy.days_late(when)
                    pen = policy.penalty(score, days)
                    row.update(submitted_at=when.strftime("%Y-%m-%d %H:%M:%S %z"), days_late=days, late_penalty=pen,
                               lateness=_hms((when - policy.deadline).total_seconds()), score=round(score - pen, 2))
                    if days > policy.max_days:
                        notes.append(f"{days} day(s) late, more than max_days = {policy.max_days}: score 0 "
                                     f"({pen:g} point(s) deducted)")
                    elif days:
                        notes.append(f"{days} day(s) late: {pen:g} point(s) deducted")
                        late_only = len(notes) == 1  # a penalty as the policy says: nothing to look at
        row["problem"] = "; ".join(notes)
        rows.append(row)
        if notes and not late_only:
            problems.append({"student_id": sid, "problem": row["problem"]})
    return pd.DataFrame(rows, columns=CSV_COLUMNS), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


# ----------------------------------------------------------------------------- the formats
def _g(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{float(v):g}"


def _hms(seconds: float) -> str:
    """Gradescope's lateness, ``H:M:S`` after the deadline (``0:00:00``: on time)."""
    s = max(0, math.ceil(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _csv_text(rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180, as the LMSs write and read it
    w.writerows(rows)
    return buf.getvalue()


def render(fmt: str, table: pd.DataFrame, *, title: str, canvas_assignment_id: str | None = None) -> str:
    """The text of the ``fmt`` file for ``table`` (:func:`export_table`); ``title`` names the
    assignment in the LMS."""
    recs = table.to_dict("records")
    max_score = _g(table["max_score"].max()) if len(table) else ""
    if fmt == "canvas":
        col = f"{title} ({canvas_assignment_id})" if canvas_assignment_id else title
        head = [*CANVAS_ID_COLUMNS, col, f"Late penalty: {title}"]
        rows = [head, [CANVAS_POINTS_ROW, "", "", "", "", max_score, CANVAS_READ_ONLY]]
        rows += [[r["name"], r["lms_id"], r["sis_user_id"], r["sis_login_id"], r["section"], _g(r["score"]),
                  _g(r["late_penalty"]) if pd.notna(r["score"]) else ""] for r in recs]
        return _csv_text(rows)
    if fmt == "moodle":
        head = [*MOODLE_COLUMNS, title, "Late penalty", "Feedback"]
        rows = [head] + [[r["name"], r["sis_user_id"], r["email"], _g(r["score"]),
                          _g(r["late_penalty"]) if pd.notna(r["score"]) else "",
                          (f"{r['days_late']} day(s) late: {_g(r['late_penalty'])} point(s) deducted"
                           if r["days_late"] else "")] for r in recs]
        return _csv_text(rows)
    if fmt == "gradescope":
        head = [*GRADESCOPE_COLUMNS, title, f"{title} - Max Points", f"{title} - Submission Time",
                f"{title} - Lateness (H:M:S)", f"{title} - Late Penalty"]
        rows = [head] + [[r["name"], r["sis_user_id"], r["email"], r["section"], _g(r["score"]), max_score,
                          r["submitted_at"], r["lateness"],
                          _g(r["late_penalty"]) if pd.notna(r["score"]) else ""] for r in recs]
        return _csv_text(rows)
    if fmt == "csv":
        rows = [CSV_COLUMNS] + [[_g(r[c]) if c in ("score_before_penalty", "late_penalty", "score", "max_score")
                                 else r[c] for c in CSV_COLUMNS] for r in recs]
        return _csv_text(rows)
    raise GradingError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")


def export(name: str, graded: Path | str, fmt: str, *, roster: Path | str | None, output: Path | str | None = None,
           submissions: Path | str | None = None, root: Path | None = None, title: str | None = None,
           canvas_assignment_id: str | None = None) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Write the ``fmt`` file of assignment ``name`` (graded in ``graded``); returns its path, the
    table and the problems (also written next to it as ``<stem>.problems.csv`` when there are any)."""
    if fmt not in FORMATS:
        raise GradingError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
    if roster is None and fmt != "csv":
        raise GradingError(f"--format {fmt} needs --roster (a CSV mapping student ids to LMS ids; see "
                           "`course export --help`)")
    people = read_lms_roster(roster, fmt) if roster is not None else None
    policy = load_late_policy(name, root) if root is not None else None
    table, problems = export_table(graded, people, policy=policy, submissions=submissions)
    out = Path(output) if output else Path(graded) / "export" / f"{name}-{fmt}.csv"
    atomic_write_text(out, render(fmt, table, title=title or name, canvas_assignment_id=canvas_assignment_id))
    side = out.with_name(out.stem + ".problems.csv")
    if len(problems):
        atomic_write_text(side, problems.to_csv(index=False))
    elif side.exists():
        side.unlink()
    return out, table, problems
