"""Every submission folder gets a row, whatever its name (issue 19).

Unicode names are graded under a safe id (an ASCII slug plus a hash of the name); names that are
not safe to use (options, path separators, control characters, shell code) are recorded with status
``invalid_name`` and never used, unless a roster (``--roster``, CSV ``folder,student_id``) maps the
folder to an acceptable student id; no name is ever interpreted by a shell.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import REPO, make_toy_course

from course_lib.grading import cli
from course_lib.grading.errors import GradingError
from course_lib.grading.reports import read_log
from course_lib.grading.submissions import (
    INVALID_NAME,
    STUDENT_RE,
    Census,
    discover_submissions,
    display_name,
    name_problem,
    read_roster,
    safe_id,
)
from course_lib.grading.workspace import Workspace

# ---------------------------------------------------------------- the mapping


def _hash8(name: str) -> str:
    return hashlib.sha256(unicodedata.normalize("NFC", name).encode()).hexdigest()[:8]


@pytest.mark.parametrize("name", ["solution", "wrong_float", "ana.lopez+ml@uni.edu", "A-1", "NA", "x" * 100])
def test_an_ascii_id_is_its_own_safe_id(name):
    assert safe_id(name) == name and name_problem(name) == ""


@pytest.mark.parametrize("name, slug", [
    ("José García", "Jose_Garcia"), ("x y", "x_y"), ("é", "e"), ("O'Brien", "O_Brien"), ("Zoë Łęcka", "Zoe_ecka"),
    ("李雷", "student"), ("García, José", "Garcia_Jose"), ("Ana\u00a0Li", "Ana_Li"), ("ana ", "ana"),
    ("_under", "under"), ("x" * 200 + " y", "x" * 48),
])
def test_a_unicode_name_maps_to_a_slug_and_a_hash_of_the_name(name, slug):
    assert name_problem(name) == ""
    sid = safe_id(name)
    assert sid == f"{slug}-{_hash8(name)}"
    assert STUDENT_RE.match(sid) and sid.isascii() and len(sid) <= 100


def test_names_with_the_same_slug_stay_distinct_and_ids_are_stable():
    names = ["José García", "Jose Garcia", "José_García", "Jose_García", "JOSÉ GARCÍA"]
    ids = [safe_id(n) for n in names]
    assert len(set(ids)) == len(names)
    assert {i.rsplit("-", 1)[0] for i in ids[:4]} == {"Jose_Garcia"}
    # The same name written with a combining accent (NFD, as macOS stores it) keeps its id.
    assert safe_id(unicodedata.normalize("NFD", "José García")) == safe_id("José García") == ids[0]


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("   ", "empty or only spaces"), (".", "path component"), ("..", "path component"),
    ("--force", "starts with '-'"), ("-rf", "starts with '-'"), ("a\\b", "path separator"),
    ("a/b", "path separator"), ("a\nb", "control"), ("a\x1b[31mb", "control"), ("\u202eevil", "invisible"),
    ("a;b", "not part of a name: ;"), ("$(touch x)", "$ ( )"), ("`id`", "`"), ('say "hi"', '"'),
    ("a|b", "|"), ("a&b", "&"), ("a*", "*"), ("~root", "~"), ("a>b", ">"), ("!!", "!"),
])
def test_unsafe_names_are_refused_with_a_reason(name, why):
    assert why in name_problem(name)


def test_display_name_escapes_control_characters_only():
    assert display_name("José García") == "José García"
    assert display_name("a\x1b[31mb") == "a\\x1b[31mb"
    assert display_name("a\nb") == "a\\nb"
    assert display_name("\u202eevil") == "\\u202eevil"


def test_discovery_gives_every_folder_one_submission(tmp_path):
    for n in ["José García", "a;b", "--force", ".ipynb_checkpoints"]:
        (tmp_path / n).mkdir()
    (tmp_path / "notes.txt").write_text("not a submission")
    census = Census()
    subs = discover_submissions(tmp_path, "toy", log=lambda *a: None, census=census)
    by = {s.student_id: s for s in subs}
    assert sorted(by) == sorted(["José García", "a;b", "--force"])
    assert by["José García"].status == "missing" and by["José García"].safe_id == safe_id("José García")
    assert by["a;b"].status == INVALID_NAME and "rename the folder" in by["a;b"].message
    assert "or map it in a roster (--roster" in by["a;b"].message and "folder,student_id" in by["a;b"].message
    assert census.folders == 3 and census.hidden == [".ipynb_checkpoints"] and census.files == ["notes.txt"]


def test_a_safe_id_that_is_another_folders_name_is_refused(tmp_path):
    (tmp_path / "José García").mkdir()
    (tmp_path / safe_id("José García")).mkdir()  # someone named a folder after the other's id
    subs = discover_submissions(tmp_path, "toy", log=lambda *a: None)
    assert len(subs) == 2 and len({s.safe_id for s in subs if s.status != INVALID_NAME}) == 1
    assert sum(s.status == INVALID_NAME and "already the id of folder" in s.message for s in subs) == 1


def test_no_grading_code_hands_a_command_line_to_a_shell():
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput|pexpect")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in sorted((REPO / "course_lib").rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


# ---------------------------------------------------------------- a class with real and hostile names
GOOD = ["José García", "Jose Garcia", "x y", "é", "ana.lopez+ml@uni.edu", "O'Brien", "李雷", "solution"]
BLANK = "Zoë Łęcka"  # hands in the unanswered release: 0 points, still graded
HOSTILE = ["--force", "-rf", "a;touch PWNED_semicolon", "$(touch PWNED_dollar)", "`touch PWNED_backtick`",
           "q\"uote'; touch PWNED_quote; '", "ctrl\x01char", "esc\x1b[2Jclear", "   ", "back\\slash"]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    import os

    tmp = tmp_path_factory.mktemp("names")
    course = make_toy_course(tmp)
    ws = Workspace(tmp / "grading", root=course)
    release_nb = ws.release("toy")
    from course_lib.grading.examples import build_examples

    build_examples("toy", tmp / "examples", release_notebook=release_nb, root=course)
    solution = nbformat.read(tmp / "examples" / "solution" / "toy.ipynb", as_version=4)
    subs = tmp / "subs"
    for n in GOOD + HOSTILE:  # the hostile folders hold a correct notebook too: it is never run
        (subs / n).mkdir(parents=True)
        nbformat.write(solution, subs / n / "toy.ipynb")
    (subs / BLANK).mkdir()
    nbformat.write(nbformat.read(release_nb, as_version=4), subs / BLANK / "toy.ipynb")
    (subs / "Ñandú sin cuaderno").mkdir()  # a folder with no notebook
    (subs / "corrupt ü").mkdir()
    (subs / "corrupt ü" / "toy.ipynb").write_text("{not json")
    here = tmp / "cwd"
    here.mkdir()
    old = os.getcwd()
    os.chdir(here)  # a shell that ran a name would touch PWNED_* here (or in the submission's folder)
    messages: list[str] = []
    try:
        grades = ws.autograde("toy", subs, output=tmp / "out", progress=False, workers=2, log=messages.append)
    finally:
        os.chdir(old)
    return ws, tmp, grades, messages


def _auto(df, sid):
    g = df[(df.student_id == sid) & df.question.str.startswith("test_")]
    return float(g.score.sum())


def test_every_folder_gets_exactly_one_row(graded_class):
    ws, tmp, grades, _ = graded_class
    folders = GOOD + HOSTILE + [BLANK, "Ñandú sin cuaderno", "corrupt ü"]
    shown = sorted(display_name(n) for n in folders)
    log = read_log(tmp / "out" / "grading_log.csv")
    totals = pd.read_csv(tmp / "out" / "totals.csv", dtype=str, keep_default_na=False)
    on_disk = pd.read_csv(tmp / "out" / "grades.csv", dtype={"student_id": str, "safe_id": str}, keep_default_na=False)
    assert sorted(log.student_id) == shown and sorted(totals.student_id) == shown
    assert len(on_disk) == 3 * len(folders) and on_disk.groupby("student_id").size().eq(3).all()
    assert sorted(set(on_disk.student_id)) == shown
    assert log.safe_id.is_unique and totals.safe_id.is_unique
    assert all(STUDENT_RE.match(s) for s in log.safe_id)
    assert dict(zip(totals.student_id, totals.safe_id, strict=True))["José García"] == safe_id("José García")
    assert dict(zip(totals.student_id, totals.safe_id, strict=True))["solution"] == "solution"


def test_the_correct_notebooks_get_full_marks_under_their_own_names(graded_class):
    ws, tmp, grades, _ = graded_class
    ids = dict(zip(grades.student_id, grades.safe_id, strict=True))
    for n in GOOD:
        assert _auto(grades, n) == 3, n
    assert _auto(grades, BLANK) == 0
    log = read_log(tmp / "out" / "grading_log.csv").set_index("student_id")
    assert (log.loc[GOOD + [BLANK], "status"] == "ok").all()
    assert log.loc["Ñandú sin cuaderno", "status"] == "missing" and log.loc["corrupt ü", "status"] == "corrupt"
    # nbgrader only ever saw safe ids; the pages and notebooks are named by them and show the name.
    with ws.gradebook() as gb:
        assert {s.id for s in gb.students} == {ids[n] for n in GOOD + [BLANK]}
    page = (tmp / "out" / "feedback" / f"{safe_id('José García')}.html").read_text()
    assert "José García" in page and "3 / 3" in page
    assert (tmp / "out" / "autograded" / f"{safe_id('李雷')}.ipynb").is_file()


def test_unsafe_names_are_recorded_never_run(graded_class):
    ws, tmp, grades, messages = graded_class
    log = read_log(tmp / "out" / "grading_log.csv").set_index("student_id")
    totals = pd.read_csv(tmp / "out" / "totals.csv", dtype=str, keep_default_na=False).set_index("student_id")
    for n in HOSTILE:
        d = display_name(n)
        assert log.loc[d, "status"] == INVALID_NAME and totals.loc[d, "status"] == INVALID_NAME, n
        assert name_problem(n) in log.loc[d, "message"] and "rename the folder" in totals.loc[d, "message"]
        assert "map it in a roster (--roster" in log.loc[d, "message"]
        assert _auto(grades, d) == 0
    assert "esc\\x1b[2Jclear" in set(log.index)  # no escape sequence reaches a table
    # Nothing ran on the host: no file a shell would have made, and no unsafe name in nbgrader's folders.
    made = [p for p in tmp.rglob("PWNED_*")] + list(Path("/tmp").glob("PWNED_*"))
    assert made == []
    for folder in ("submitted", "autograded"):
        assert sorted(p.name for p in (ws.nbroot / folder).iterdir()) == sorted(
            safe_id(n) for n in GOOD + [BLANK])
    summary = [m for m in messages if "folder(s) in" in m]
    assert summary and summary[-1].startswith(f"{len(GOOD) + len(HOSTILE) + 3} folder(s) in ")
    assert f"{len(GOOD) + 1} graded" in summary[-1] and f"{len(HOSTILE)} refused (invalid name)" in summary[-1]
    assert "1 missing notebook" in summary[-1] and "1 corrupt" in summary[-1]


def test_regrading_one_student_by_name_or_safe_id(graded_class):
    ws, tmp, grades, _ = graded_class
    sub = tmp / "subs" / "José García" / "toy.ipynb"
    nb = nbformat.read(sub, as_version=4)
    nb.cells[2].source = "def add(a, b):\n    return a - b"
    nbformat.write(nb, sub)
    messages: list[str] = []
    after = ws.autograde("toy", tmp / "subs", output=tmp / "out", students=["José García"], progress=False,
                         workers=1, log=messages.append)
    assert _auto(after, "José García") == 0 and _auto(after, "Jose Garcia") == 3
    assert any(m.startswith("1 chosen folder(s): 1 graded") for m in messages)
    nb.cells[2].source = "def add(a, b):\n    return a + b"
    nbformat.write(nb, sub)
    nfd = unicodedata.normalize("NFD", "José García")
    again = ws.autograde("toy", tmp / "subs", output=tmp / "out", students=[safe_id("José García")], progress=False,
                         workers=1, log=lambda *a: None)
    assert _auto(again, "José García") == 3
    assert len(again) == len(grades)
    from course_lib.grading.errors import GradingError

    with pytest.raises(GradingError, match="No submission folder"):
        ws.autograde("toy", tmp / "subs", output=tmp / "out", students=["nobody"], progress=False, log=lambda *a: None)
    ws.autograde("toy", tmp / "subs", output=tmp / "out", students=[nfd], progress=False, workers=1,
                 log=lambda *a: None)  # the same name typed with a combining accent


# ---------------------------------------------------------------- a roster maps folders to student ids
def _roster(path: Path, rows: list[list[str]], header: str = "folder,student_id") -> Path:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(header + "\n" + buf.getvalue(), encoding="utf-8")
    return path


def test_discovery_grades_a_mapped_folder_under_its_roster_id(tmp_path):
    subs = tmp_path / "subs"
    for n in ["--force", "a;b", "-rf", "carol"]:
        (subs / n).mkdir(parents=True)
    roster = read_roster(_roster(tmp_path / "r.csv", [["--force", "Ana Li"], ["a;b", "bob"]]), subs)
    assert roster == {"--force": "Ana Li", "a;b": "bob"}
    by = {s.folder: s for s in discover_submissions(subs, "toy", log=lambda *a: None, roster=roster)}
    assert (by["--force"].student_id, by["--force"].safe_id, by["--force"].status) == (
        "Ana Li", safe_id("Ana Li"), "missing")
    assert (by["a;b"].student_id, by["a;b"].status) == ("bob", "missing")
    assert by["-rf"].status == INVALID_NAME and "map it in a roster" in by["-rf"].message
    assert by["carol"].student_id == "carol" == by["carol"].folder


@pytest.mark.parametrize("header, rows, match", [
    ("folder,student_id", [["carol", "Carol"], ["nobody", "x"]], r"line 3: there is no folder 'nobody'"),
    ("folder,student_id", [["--force", "-x"]], r"line 2: student id '-x' for folder '--force' is not acceptable: "
                                                r"the name starts with '-'"),
    ("folder,student_id", [["--force", "a;b"]], r"line 2: .* not acceptable: .*not part of a name: ;"),
    ("folder,student_id", [["--force", ""]], r"line 2: .* not acceptable: the name is empty"),
    ("folder,student_id", [["--force", "bob"], ["a;b", "bob"]], r"line 3: student id 'bob' is already given to "
                                                                r"another folder on line 2"),
    ("folder,student_id", [["--force", "bob"], ["--force", "ann"]], r"line 3: folder '--force' is already mapped"),
    ("folder,student_id", [["--force", "carol"]], r"line 2: student id 'carol' is already the name of folder 'carol'"),
    ("folder,student_id", [["--force", "bob", "extra"]], r"line 2: expected 2 values"),
    ("folder,id", [["--force", "bob"]], r"line 1: the header must be exactly folder,student_id \(found folder,id\)"),
    ("student_id,folder", [["bob", "--force"]], r"line 1: the header must be exactly folder,student_id"),
])
def test_roster_errors_name_the_line(tmp_path, header, rows, match):
    subs = tmp_path / "subs"
    for n in ["--force", "a;b", "carol"]:
        (subs / n).mkdir(parents=True)
    with pytest.raises(GradingError, match=match):
        read_roster(_roster(tmp_path / "r.csv", rows, header), subs)


def test_roster_names_are_data(tmp_path):
    """A roster value that looks like shell code is a name to compare, never run."""
    subs = tmp_path / "subs"
    (subs / "$(touch PWNED_roster)").mkdir(parents=True)
    roster = _roster(tmp_path / "r.csv", [["$(touch PWNED_roster)", "$(touch PWNED_id)"]])
    with pytest.raises(GradingError, match="not acceptable"):
        read_roster(roster, subs)
    assert read_roster(_roster(roster, [["$(touch PWNED_roster)", "dave"]]), subs) == {"$(touch PWNED_roster)": "dave"}
    assert list(tmp_path.rglob("PWNED_*")) == []  # the folder itself is named "$(touch ...)"


def test_autograde_with_a_roster_grades_unsafe_folders_under_their_ids(toy_course, tmp_path, capsys):
    wd = tmp_path / "g"
    release_nb = Workspace(wd, root=toy_course).release("toy")
    from course_lib.grading.examples import build_examples

    build_examples("toy", tmp_path / "examples", release_notebook=release_nb, root=toy_course)
    solution = nbformat.read(tmp_path / "examples" / "solution" / "toy.ipynb", as_version=4)
    subs = tmp_path / "subs"
    for n in ["--force", "a;b", "-rf", "carol"]:
        (subs / n).mkdir(parents=True)
        nbformat.write(solution, subs / n / "toy.ipynb")
    out = tmp_path / "out"
    bad = _roster(tmp_path / "bad.csv", [["--force", "Ana Li"], ["a;b", "Ana Li"]])
    args = ["--workdir", str(wd), "autograde", "toy", str(subs), "--output", str(out), "--no-progress",
            "--workers", "1"]
    assert cli.main([*args, "--roster", str(bad)]) == 2  # checked before anything is graded
    assert "line 3: student id 'Ana Li' is already given" in capsys.readouterr().err
    assert not (out / "grading_log.csv").exists()
    roster = _roster(tmp_path / "roster.csv", [["--force", "Ana Li"], ["a;b", "bob"]])
    assert cli.main([*args, "--roster", str(roster)]) == 0
    grades = pd.read_csv(out / "grades.csv", dtype={"student_id": str, "safe_id": str}, keep_default_na=False)
    grades["score"] = pd.to_numeric(grades["score"])
    assert _auto(grades, "Ana Li") == 3 and _auto(grades, "bob") == 3 and _auto(grades, "carol") == 3
    assert _auto(grades, "-rf") == 0
    assert sorted(set(grades.student_id)) == sorted(["Ana Li", "bob", "carol", "-rf"])
    log = read_log(out / "grading_log.csv").set_index("student_id")
    assert log.loc["Ana Li", ["folder", "safe_id", "status"]].tolist() == ["--force", safe_id("Ana Li"), "ok"]
    assert log.loc["bob", ["folder", "status"]].tolist() == ["a;b", "ok"]
    assert log.loc["carol", "folder"] == "carol"
    assert log.loc["-rf", "status"] == INVALID_NAME and "or map it in a roster (--roster" in log.loc["-rf", "message"]
    with Workspace(wd, root=toy_course).gradebook() as gb:
        assert {s.id for s in gb.students} == {safe_id("Ana Li"), "bob", "carol"}
    # Regrading one mapped student by its folder's name keeps its id.
    ws = Workspace(wd, root=toy_course)
    again = ws.autograde("toy", subs, output=out, students=["a;b"], roster=roster, force=True, progress=False,
                         workers=1, log=lambda *a: None)
    assert _auto(again, "bob") == 3 and "a;b" not in set(again.student_id)
