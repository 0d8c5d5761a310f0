"""`course export ASSIGNMENT --format canvas|moodle|gradescope|csv` (course_lib.grading.lms_export).

Each format is checked against a sample file in tests/lms_samples/, written from its documentation,
by reading both with the rules the LMS documents:

- Canvas (canvas_gradebook_import.csv): the gradebook import CSV. Its importer
  (instructure/canvas-lms, app/models/gradebook_importer.rb) wants a header whose first column is
  ``Student`` and second ``ID``, then ``SIS User ID``, ``SIS Login ID`` and ``Section`` (the last
  student column), then one column per assignment named ``<title> (<assignment id>)``; a row whose
  first cell is ``Points Possible``; a column whose Points Possible cell reads "read only" is not
  imported. It matches a student by ``ID``, then ``SIS User ID``, then ``SIS Login ID``. The Ohio
  State CarmenCanvas guide "Import a CSV file to Carmen Grades" lists the same columns (Student Name,
  Student ID, SIS User ID, SIS Login ID, Section, Assignment Name); the nemogb "Detailed Canvas
  Export Info" vignette documents ``Quiz 1 (87568490)``-style assignment columns.
- Moodle (moodle_grade_import.csv): MoodleDocs "Grade import": the import format is the export
  format; on import "Map from" ``Email address`` to ``useremail`` or ``ID number`` to
  ``useridnumber``, map a column to the grade item and, optionally, one to its feedback.
- Gradescope (gradescope_grades.csv): the grades CSV Gradescope exports and course tools read
  (cs161-staff/grades-py README: ``SID``, ``<assignment>``, ``<assignment> - Lateness (H:M:S)``;
  with ``Name``, ``Email``, ``Sections``, ``<assignment> - Max Points`` and ``<assignment> - Submission
  Time``); Gradescope's roster guide ("Adding Students and Staff") keys students by e-mail, with a
  name and an optional SID.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from course_lib.grading import cli
from course_lib.grading.errors import GradingError
from course_lib.grading.lms_export import export, load_late_policy, read_lms_roster, render

SAMPLES = Path(__file__).resolve().parent / "lms_samples"
DEADLINE = datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)
PER_DAY, MAX_DAYS = 0.1, 5
# student: (status, total, pending written answers, submitted after the deadline by, on the roster)
CLASS = {
    "ada": ("ok", 9.0, 0, timedelta(hours=-1), True),
    "bob": ("ok", 8.0, 0, timedelta(days=1, hours=2), True),  # 2 days started: 20 % off
    "eve": ("ok", 7.0, 0, timedelta(days=6), True),  # after max_days: 0
    "fay": ("ok", 6.0, 0, None, True),  # no timestamp.txt: no penalty, listed
    "gus": ("ok", 5.0, 1, timedelta(0), True),  # a written answer waits: listed
    "hal": ("missing", 0.0, 0, None, True),  # a folder without a notebook: listed
    "cid": ("ok", 10.0, 0, timedelta(0), False),  # graded, not on the roster: listed, not in the LMS file
}
ROSTER_ONLY = "dan"  # on the roster, no submission: a row with no score, listed
MAX = 10.0


def _expected_score(sid):
    status, total, _, late, _ = CLASS[sid]
    if late is None or late <= timedelta(0):
        return total
    days = math.ceil(late.total_seconds() / 86400)
    return 0.0 if days > MAX_DAYS else round(total - total * min(1, PER_DAY * days), 2)


@pytest.fixture()
def course(tmp_path, monkeypatch):
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "course_lib").mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.course]\nrepository = "https://github.com/o/r"\n\n[tool.course.assignments.hw]\n'
        f'deadline = "{DEADLINE.isoformat()}"\nlate_policy = {{ per_day = {PER_DAY}, max_days = {MAX_DAYS} }}\n')
    monkeypatch.setenv("COURSE_ROOT", str(root))
    graded, subs = tmp_path / "graded", tmp_path / "subs"
    graded.mkdir()
    totals, log = [], []
    for sid, (status, total, pending, late, _) in CLASS.items():
        totals.append({"student_id": sid, "safe_id": sid, "auto_score": total, "auto_max": 6.0, "manual_score": 0.0,
                       "manual_max": 4.0, "pending_manual": pending, "total": total, "max_total": MAX, "status": status,
                       "message": "no notebook" if status == "missing" else ""})
        log.append({"student_id": sid, "safe_id": sid, "status": status, "seconds": 1.0, "message": "",
                    "folder": f"folder_{sid}", "key": ""})
        (subs / f"folder_{sid}").mkdir(parents=True)
        if late is not None:  # nbgrader's timestamp.txt format
            (subs / f"folder_{sid}" / "timestamp.txt").write_text(
                (DEADLINE + late).strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC\n")
    pd.DataFrame(totals).to_csv(graded / "totals.csv", index=False)
    pd.DataFrame(log).to_csv(graded / "grading_log.csv", index=False)
    rows = ["student_id,name,email,lms_id,sis_user_id,sis_login_id,section"]
    for i, sid in enumerate([s for s, v in CLASS.items() if v[4]] + [ROSTER_ONLY]):
        rows.append(f'{sid},"{sid.title()}, Student",{sid}@example.edu,{1001 + i},S{i:04d},{sid},Section A')
    (tmp_path / "roster.csv").write_text("\n".join(rows) + "\n")
    return {"root": root, "graded": graded, "subs": subs, "roster": tmp_path / "roster.csv", "tmp": tmp_path}


def _export(course, fmt, **kw):
    return export("hw", course["graded"], fmt, roster=course["roster"], submissions=course["subs"],
                  root=course["root"], title="Homework 1", **kw)


def _rows(path):
    return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))


# ----------------------------------------------------------------------------- the formats, read as each LMS reads them
def read_canvas(rows):
    """{student key: {assignment column: score}} as Canvas's importer reads a gradebook CSV."""
    head = rows[0]
    assert head[0] == "Student" and head[1] == "ID" and head[2:5] == ["SIS User ID", "SIS Login ID", "Section"]
    points = next(r for r in rows[1:] if r[0].startswith("Points Possible"))
    keep = [i for i in range(5, len(head)) if not re.search(r"read\s+only", points[i])
            and head[i] not in ("Current Score", "Final Score")]
    out = {}
    for r in rows[1:]:
        if r[0].startswith("Points Possible"):
            continue
        key = r[1] or r[2] or r[3]  # ID, then SIS User ID, then SIS Login ID
        out[key] = {head[i]: r[i] for i in keep}
    return out, {head[i]: points[i] for i in keep}


def test_canvas_matches_the_documented_layout(course):
    sample = _rows(SAMPLES / "canvas_gradebook_import.csv")
    s_scores, s_points = read_canvas(sample)
    assert s_scores["1001"] == {"Homework 1 (87568490)": "9"} and s_points == {"Homework 1 (87568490)": "10"}
    path, table, _ = _export(course, "canvas", canvas_assignment_id="87568490")
    ours = _rows(path)
    assert ours[0][:5] == sample[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert ours[1][0] == sample[1][0] == "Points Possible"
    assert re.fullmatch(r".+ \(\d+\)", ours[0][5]) and ours[0][5] == "Homework 1 (87568490)"
    scores, points = read_canvas(ours)
    assert points == {"Homework 1 (87568490)": f"{MAX:g}"}  # the late-penalty column is read only: not imported
    assert ours[1][6] == "(read only)" and ours[0][6] == "Late penalty: Homework 1"
    by_name = {r[0]: r for r in ours[2:]}
    roster = pd.read_csv(course["roster"], dtype=str).set_index("student_id")
    for sid in [s for s, v in CLASS.items() if v[4]]:
        r = roster.loc[sid]
        assert by_name[r["name"]][1:5] == [r["lms_id"], r["sis_user_id"], r["sis_login_id"], r["section"]]
        assert float(scores[r["lms_id"]]["Homework 1 (87568490)"]) == pytest.approx(_expected_score(sid))
    assert scores[roster.loc[ROSTER_ONLY, "lms_id"]]["Homework 1 (87568490)"] == ""  # no submission: no score
    assert by_name[roster.loc[ROSTER_ONLY, "name"]][6] == ""  # and no penalty
    assert "cid" not in {r[3] for r in ours[2:]}  # not on the roster: cannot be in the LMS file
    # Without an assignment id the column is the bare title (Canvas creates the assignment).
    path, _, _ = _export(course, "canvas", output=course["tmp"] / "new.csv")
    assert _rows(path)[0][5] == "Homework 1"


def read_moodle(rows, identifier):
    """{identifier: (grade, feedback)} as Moodle's CSV import maps them ("Map from" a column)."""
    head = rows[0]
    i, g, f = head.index(identifier), head.index("Homework 1"), head.index("Feedback")
    return {r[i]: (r[g], r[f]) for r in rows[1:]}


def test_moodle_matches_the_documented_layout(course):
    sample = _rows(SAMPLES / "moodle_grade_import.csv")
    assert read_moodle(sample, "Email address")["ada@example.edu"] == ("9", "Well done")
    path, _, _ = _export(course, "moodle")
    ours = _rows(path)
    for col in ("ID number", "Email address", "Homework 1", "Feedback"):  # the documented identifiers, item, feedback
        assert col in sample[0] and col in ours[0]
    assert "Late penalty" in ours[0]
    by_email = read_moodle(ours, "Email address")
    by_idnumber = read_moodle(ours, "ID number")
    roster = pd.read_csv(course["roster"], dtype=str).set_index("student_id")
    for sid in [s for s, v in CLASS.items() if v[4]]:
        grade, feedback = by_email[roster.loc[sid, "email"]]
        assert float(grade) == pytest.approx(_expected_score(sid))
        assert by_idnumber[roster.loc[sid, "sis_user_id"]][0] == grade
    assert by_email["bob@example.edu"][1] == "2 day(s) late: 1.6 point(s) deducted"
    assert by_email["ada@example.edu"][1] == ""
    assert by_email[f"{ROSTER_ONLY}@example.edu"] == ("", "")
    pen = ours[0].index("Late penalty")
    assert {r[2]: r[pen] for r in ours[1:]}["bob@example.edu"] == "1.6"


def test_gradescope_matches_the_documented_layout(course):
    sample = _rows(SAMPLES / "gradescope_grades.csv")
    path, _, _ = _export(course, "gradescope")
    ours = _rows(path)
    assert ours[0][:4] == sample[0][:4] == ["Name", "SID", "Email", "Sections"]
    suffixes = ["", " - Max Points", " - Submission Time", " - Lateness (H:M:S)"]
    assert sample[0][4:8] == [f"Homework 1{s}" for s in suffixes] == ours[0][4:8]
    assert ours[0][8] == "Homework 1 - Late Penalty"
    rows = {r[2]: dict(zip(ours[0], r, strict=True)) for r in ours[1:]}
    for sid in [s for s, v in CLASS.items() if v[4]]:
        r = rows[f"{sid}@example.edu"]
        assert float(r["Homework 1"]) == pytest.approx(_expected_score(sid))
        assert r["Homework 1 - Max Points"] == f"{MAX:g}"
    late = CLASS["bob"][3]
    h, rem = divmod(int(late.total_seconds()), 3600)
    assert rows["bob@example.edu"]["Homework 1 - Lateness (H:M:S)"] == f"{h}:{rem // 60:02d}:{rem % 60:02d}" == "26:00:00"
    assert rows["ada@example.edu"]["Homework 1 - Lateness (H:M:S)"] == "0:00:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", rows["bob@example.edu"]["Homework 1 - Submission Time"])
    assert rows[f"{ROSTER_ONLY}@example.edu"]["Homework 1"] == ""


def test_csv_keeps_every_field_and_the_penalty_separate(course):
    path, table, problems = _export(course, "csv")
    df = pd.read_csv(path, dtype={"student_id": str}, keep_default_na=False).set_index("student_id")
    for sid in [s for s, v in CLASS.items() if v[4]]:
        before, after = float(df.loc[sid, "score_before_penalty"]), float(df.loc[sid, "score"])
        assert before == CLASS[sid][1] and after == pytest.approx(_expected_score(sid))
        assert float(df.loc[sid, "late_penalty"]) == pytest.approx(before - after)
    assert int(df.loc["bob", "days_late"]) == 2 and int(df.loc["eve", "days_late"]) == 6
    assert df.loc[ROSTER_ONLY, "status"] == "no submission" and df.loc[ROSTER_ONLY, "score"] == ""


def test_nobody_is_dropped_silently(course, capsys):
    code = cli.main(["--workdir", str(course["tmp"] / "w"), "export", "hw", "--format", "canvas", "--roster",
                     str(course["roster"]), "--graded", str(course["graded"]), "--submissions", str(course["subs"])])
    assert code == 0
    err = capsys.readouterr().err
    side = course["graded"] / "export" / "hw-canvas.problems.csv"
    problems = pd.read_csv(side, dtype=str).set_index("student_id")["problem"]
    assert "not on the LMS roster" in problems["cid"]
    assert "no submission" in problems[ROSTER_ONLY]
    assert "no folder_fay/timestamp.txt" in problems["fay"]
    assert "written answer(s) not graded yet" in problems["gus"]
    assert "not graded normally (missing" in problems["hal"]
    assert "6 day(s) late" in problems["eve"]
    assert "ada" not in problems.index and "bob" not in problems.index  # on time / simply late: nothing to look at
    for sid in problems.index:
        assert sid in err


# ----------------------------------------------------------------------------- roster, policy, errors
@pytest.mark.parametrize("text, fmt, message", [
    ("name,email\nAda,a@x\n", "csv", "line 1: the header must name student_id"),
    ("student_id,canvas_id\nada,1\n", "canvas", "line 1: unknown column(s) 'canvas_id'"),
    ("student_id,email\nada,a@x\nada,b@x\n", "csv", "line 3: student_id 'ada' is already on line 2"),
    ("student_id,email\nada,A@x.edu\nbob,a@X.edu\n", "gradescope", "line 3: email 'a@X.edu' is already on line 2"),
    ("student_id,name,lms_id\nada,Ada,1\nbob,Bob,\n", "canvas", "line 3: student 'bob' has no lms_id or sis_user_id or sis_login_id"),
    ("student_id,email\nada,\n", "gradescope", "line 2: student 'ada' has no email"),
    ("student_id,email\nada,a@x,extra\n", "csv", "line 2: expected 2 values"),
    ('student_id,name,email\nada,"Lovelace,\nAda",a@x\n ,Bob,b@x\n', "csv", "line 4: student_id is empty"),
])
def test_roster_problems_name_the_line(tmp_path, text, fmt, message):
    p = tmp_path / "r.csv"
    p.write_text(text)
    with pytest.raises(GradingError, match=re.escape(message)):
        read_lms_roster(p, fmt)


def test_formats_need_a_roster_and_csv_does_not(course):
    with pytest.raises(GradingError, match="--format moodle needs --roster"):
        export("hw", course["graded"], "moodle", roster=None, root=None)
    path, table, problems = export("hw", course["graded"], "csv", roster=None, root=None)
    assert sorted(table["student_id"]) == sorted(CLASS) and table["late_penalty"].eq(0).all()
    with pytest.raises(GradingError, match="give --submissions"):
        export("hw", course["graded"], "csv", roster=None, root=course["root"])


@pytest.mark.parametrize("table, message", [
    ('deadline = "2026-12-01T23:59:00"\nlate_policy = { per_day = 0.1, max_days = 5 }', "has no time zone"),
    ('deadline = 2026-12-01T23:59:00\nlate_policy = { per_day = 0.1, max_days = 5 }', "has no time zone"),
    ('deadline = "2026-12-01T23:59:00Z"\nlate_policy = { per_day = 2, max_days = 5 }', "per_day must be a number in [0, 1]"),
    ('deadline = "2026-12-01T23:59:00Z"', "give both deadline"),
    ('deadline = "soon"\nlate_policy = { per_day = 0.1, max_days = 5 }', "is not a date and time"),
])
def test_late_policy_errors(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.course.assignments.hw]\n{table}\n")
    with pytest.raises(GradingError, match=re.escape(message)):
        load_late_policy("hw", tmp_path)


def test_late_policy_and_the_project_settings_share_pyproject(course):
    from course_lib.grading.project import load_project

    pol = load_late_policy("hw", course["root"])
    assert pol.deadline == DEADLINE and pol.per_day == PER_DAY and pol.max_days == MAX_DAYS
    assert pol.days_late(DEADLINE) == 0 and pol.days_late(DEADLINE + timedelta(seconds=1)) == 1
    assert pol.penalty(10, 3) == 3.0 and pol.penalty(10, MAX_DAYS + 1) == 10
    assert load_late_policy("other", course["root"]) is None
    assert load_project(course["root"]).repository == "https://github.com/o/r"  # [tool.course] still reads


def test_render_rejects_an_unknown_format():
    with pytest.raises(GradingError, match="unknown format"):
        render("blackboard", pd.DataFrame(columns=["max_score"]), title="x")
