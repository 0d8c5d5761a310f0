"""End to end for `rnn_lm`: release -> example submissions -> autograde -> gradebook and feedback.

The reference solution and the correct versions written differently must get full marks, the blank
release 0, and each wrong version must lose exactly the points of the tests its bug breaks (as listed in notebooks/rnn_lm/examples.toml).
"""

from __future__ import annotations

import contextlib
import io

import nbformat
import pandas as pd
import pytest
from conftest import REPO

from course_lib.grading import cli
from course_lib.grading.contract import validate_source
from course_lib.grading.examples import load_examples

NAME = "rnn_lm"
SOURCE = REPO / "notebooks" / NAME / f"{NAME}.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="rnn_lm notebook not present")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """`course demo rnn_lm`, the path `make demo` takes, run once; the tests read what it wrote."""
    tmp = tmp_path_factory.mktemp("e2e_rnn_lm")
    work = tmp / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["--workdir", str(work), "demo", NAME, "--no-progress"])
    out = work / "graded" / NAME
    grades = pd.read_csv(out / "grades.csv", dtype={"student_id": str}, keep_default_na=False,
                         na_values={"score": [""]})
    spec = validate_source(SOURCE)
    examples = [(ex, ex.expected_auto(spec)) for ex in load_examples(REPO / "notebooks" / NAME / "examples.toml", spec)]
    release_nb = work / "release" / NAME / f"{NAME}.ipynb"
    return code, buf.getvalue(), release_nb, examples, grades, out


def test_release_contains_no_solutions(graded):
    _, _, release_nb, _, _, _ = graded
    text = release_nb.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    files = {p.name for p in release_nb.parent.rglob("*") if p.is_file()}
    assert f"{NAME}.py" not in files and "examples.toml" not in files
    spec = validate_source(SOURCE)
    nb = nbformat.read(release_nb, as_version=4)
    released_ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    assert {c.grade_id for c in spec.graded()} <= released_ids


def test_examples_cover_solution_blank_correct_and_wrong_versions():
    spec = validate_source(SOURCE)
    examples = load_examples(REPO / "notebooks" / NAME / "examples.toml", spec)
    kinds = [e.kind for e in examples]
    assert kinds.count("solution") == 1 and kinds.count("blank") == 1
    assert kinds.count("variant") >= 1 and kinds.count("mutant") >= 5  # coverage: test_notebooks.py


def test_each_example_gets_exactly_its_expected_score(graded):
    _, _, _, examples, grades, _ = graded
    spec = validate_source(SOURCE)
    test_ids = {t.grade_id for t in spec.tests}
    for ex, expected in examples:
        mine = grades[(grades.student_id == ex.student_id) & grades.question.isin(test_ids)]
        lost = sorted(mine[mine.score < mine.max_score].question)
        if ex.kind == "solution":
            assert lost == [], f"the reference solution lost {lost}"
        elif ex.kind == "blank":
            assert mine.score.sum() == 0, f"the blank release scored {mine[mine.score > 0]}"
        else:
            assert lost == sorted(ex.loses), f"{ex.student_id}: lost {lost}, expected to lose {sorted(ex.loses)}"
        assert mine.score.sum() == pytest.approx(expected)


def test_gradebook_files_and_feedback(graded):
    _, _, _, examples, grades, out = graded
    spec = validate_source(SOURCE)
    ids = {ex.student_id for ex, _ in examples}
    assert set(grades.student_id) == ids
    assert len(grades) == len(ids) * len(spec.graded())
    totals = pd.read_csv(out / "totals.csv", dtype={"student_id": str}).set_index("student_id")
    assert totals.loc["solution", "auto_score"] == spec.auto_points
    log = pd.read_csv(out / "grading_log.csv", dtype={"student_id": str})
    assert (log.status == "ok").all(), log
    for sid in ids:
        page = (out / "feedback" / f"{sid}.html").read_text()
        assert "HIDDEN TESTS" not in page and "BEGIN SOLUTION" not in page


def test_demo_command_prints_a_checked_gradebook(graded):
    code, printed, _, _, _, out = graded
    assert code == 0, printed
    assert "Every example submission got exactly its expected score." in printed
    assert "MISMATCH" not in printed
    assert (out / "grades.csv").exists() and (out / "totals.csv").exists()
