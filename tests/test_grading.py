"""The grading pipeline on a toy course: contract, release, autograde, gradebook, feedback."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request

import nbformat
import pandas as pd
import pytest
from conftest import REPO, make_toy_course, make_toy_notebook

from course_lib.grading import cli
from course_lib.grading.assignments import list_assignments
from course_lib.grading.contract import ContractError, validate_source
from course_lib.grading.examples import build_examples
from course_lib.grading.reports import GRADES_COLUMNS
from course_lib.grading.workspace import Workspace


# ---------------------------------------------------------------- contract
def test_contract_accepts_the_toy_notebook():
    spec = validate_source(make_toy_notebook())
    assert [c.grade_id for c in spec.tests] == ["test_add", "test_add_negative"]
    assert spec.auto_points == 3 and spec.manual_points == 3
    assert spec.target_of("test_add_negative") == "add"


@pytest.mark.parametrize("breakage, message", [
    (lambda nb: nb.cells.pop(4) and nb.cells.pop(3), "has no test cell with points"),
    (lambda nb: nb.cells[3].metadata["nbgrader"].update(points=0), "needs points > 0"),
    (lambda nb: nb.cells[3].metadata["nbgrader"].update(grade_id="check_add"), "must start with 'test_'"),
    (lambda nb: nb.cells[4].metadata["nbgrader"].update(grade_id="test_sub"), "does not name a graded solution"),
    (lambda nb: nb.cells[2].metadata["nbgrader"].update(grade_id="plus"), "must name the function"),
    (lambda nb: nb.cells[4].metadata["nbgrader"].update(grade_id="test_add"), "duplicate grade_id"),
    (lambda nb: nb.cells[6].metadata["nbgrader"].update(points=0), "needs points > 0"),
])
def test_contract_rejects_broken_metadata(breakage, message):
    nb = make_toy_notebook()
    breakage(nb)
    with pytest.raises(ContractError, match=message):
        validate_source(nb)


@pytest.mark.parametrize("name", list_assignments(REPO))
def test_every_course_notebook_keeps_the_contract(name):
    spec = validate_source(REPO / "notebooks" / name / f"{name}.ipynb")
    assert spec.tests and spec.auto_points > 0


# ---------------------------------------------------------------- release
def test_release_strips_solutions_hidden_tests_and_private_files(toy_course, tmp_path):
    ws = Workspace(tmp_path / "grading", root=toy_course)
    nb_path = ws.release("toy", output=tmp_path / "release")
    files = sorted(p.name for p in nb_path.parent.iterdir())
    assert files == ["notes.md", "toy.ipynb"]  # no jupytext pair (solutions), no examples.toml
    text = nb_path.read_text()
    for secret in ("BEGIN SOLUTION", "return a + b", "HIDDEN TESTS", "add(2.5, 2)", "Model answer"):
        assert secret not in text
    nb = nbformat.read(nb_path, as_version=4)
    assert "raise NotImplementedError()" in nb.cells[2].source
    assert "YOUR ANSWER HERE" in nb.cells[6].source


def test_release_is_redone_only_when_the_source_changes(toy_course, tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "grading", root=toy_course)
    first = ws.release("toy")
    calls = []
    real = Workspace.release
    monkeypatch.setattr(Workspace, "release", lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    assert ws.ensure_released("toy") == first and calls == []
    nb_path = toy_course / "notebooks" / "toy" / "toy.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source = "# Toy assignment, revised"
    nbformat.write(nb, nb_path)
    ws.ensure_released("toy")
    assert len(calls) == 1 and "revised" in first.read_text()


# ---------------------------------------------------------------- autograde
@pytest.fixture(scope="module")
def graded_toy(tmp_path_factory):
    """Ten submissions graded once for the whole module (kernels are the slow part)."""
    tmp_path = tmp_path_factory.mktemp("graded_toy")
    toy_course = make_toy_course(tmp_path)
    ws = Workspace(tmp_path / "grading", root=toy_course)
    release_nb = ws.release("toy")
    subs = tmp_path / "subs"
    expected = {ex.student_id: score for ex, score in build_examples("toy", subs, release_notebook=release_nb, root=toy_course)}
    solution = nbformat.read(subs / "solution" / "toy.ipynb", as_version=4)
    # The student ran the experiment (the last cell) in JupyterLab: its output is in the submission.
    solution.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="my experiment result: 42\n")]
    nbformat.write(solution, subs / "solution" / "toy.ipynb")
    # A correct answer that prints to stderr from C-level-like code paths and Python alike.
    noisy = copy.deepcopy(solution)
    noisy.cells[2].source = "import sys, warnings\ndef add(a, b):\n    print('debug', file=sys.stderr)\n    warnings.warn('x')\n    return b + a"
    noisy.cells[6].source = "Addition of real numbers is commutative."
    (subs / "noisy_but_right").mkdir()
    nbformat.write(noisy, subs / "noisy_but_right" / "toy.ipynb")
    # A correct answer saved under another file name.
    (subs / "renamed").mkdir()
    nbformat.write(solution, subs / "renamed" / "Copy of toy.ipynb")
    # A long student id in a deep workspace: the kernel's socket paths must still fit (107 bytes).
    (subs / LONG_ID).mkdir()
    nbformat.write(solution, subs / LONG_ID / "toy.ipynb")
    # Broken submissions are recorded, never skipped.
    (subs / "corrupt").mkdir()
    (subs / "corrupt" / "toy.ipynb").write_text("{not json")
    (subs / "empty_folder").mkdir()
    # A student who deleted the test cells and wrote a passing stub in their place.
    tampered = copy.deepcopy(solution)
    tampered.cells[2].source = "def add(a, b):\n    return 0"
    del tampered.cells[3:5]
    (subs / "deleted_tests").mkdir()
    nbformat.write(tampered, subs / "deleted_tests" / "toy.ipynb")
    # An honest student who deleted the test cells and the read-only helper: they are put back.
    careless = copy.deepcopy(solution)
    del careless.cells[3:5]
    del careless.cells[1]
    (subs / "deleted_cells_correct").mkdir()
    nbformat.write(careless, subs / "deleted_cells_correct" / "toy.ipynb")
    # A student who edited a test cell to always pass.
    edited = copy.deepcopy(solution)
    edited.cells[2].source = "def add(a, b):\n    return 0"
    edited.cells[3].source = "pass"
    edited.cells[4].source = "pass"
    (subs / "edited_tests").mkdir()
    nbformat.write(edited, subs / "edited_tests" / "toy.ipynb")
    # A submission that kills its own kernel ends only itself.
    killer = copy.deepcopy(solution)
    killer.cells[2].source = "import os\ndef add(a, b):\n    os._exit(0)"
    (subs / "kernel_killer").mkdir()
    nbformat.write(killer, subs / "kernel_killer" / "toy.ipynb")
    out = tmp_path / "out"
    grades = ws.autograde("toy", subs, output=out, progress=False, workers=2, log=lambda *a: None)
    return ws, out, grades, expected


LONG_ID = "a.student.with.a.very.long.identifier." + "x" * 60


def _auto(grades, sid):
    g = grades[(grades.student_id == sid) & grades.question.str.startswith("test_")]
    return float(g.score.sum())


def test_autograde_scores_every_submission(graded_toy):
    ws, out, grades, expected = graded_toy
    assert list(pd.read_csv(out / "grades.csv").columns) == GRADES_COLUMNS
    assert set(expected) == {"solution", "blank", "wrong_sign", "wrong_float"}
    for sid, score in expected.items():
        assert _auto(grades, sid) == score, sid
    assert expected["solution"] == 3 and expected["blank"] == 0 and expected["wrong_float"] == 1
    assert _auto(grades, "noisy_but_right") == 3  # stderr and warnings cost nothing
    assert _auto(grades, "renamed") == 3
    assert _auto(grades, "deleted_tests") == 0  # tests are restored from the source
    assert _auto(grades, "deleted_cells_correct") == 3  # ... and so is a deleted read-only helper
    assert _auto(grades, "edited_tests") == 0
    # one row per graded cell per student, nobody lost
    students = {"solution", "blank", "wrong_sign", "wrong_float", "noisy_but_right", "renamed",
                "corrupt", "empty_folder", "deleted_tests", "edited_tests", "kernel_killer",
                "deleted_cells_correct", LONG_ID}
    assert _auto(grades, LONG_ID) == 3
    assert set(grades.student_id) == students
    assert len(grades) == 3 * len(students)
    log = pd.read_csv(out / "grading_log.csv").set_index("student_id")
    assert log.loc["corrupt", "status"] == "corrupt" and "not a valid notebook" in log.loc["corrupt", "message"]
    assert log.loc["empty_folder", "status"] == "missing"
    assert _auto(grades, "corrupt") == 0
    summary = pd.read_csv(out / "summary.csv").set_index("question")
    n = len(students)
    full = sum(_auto(grades[grades.question == "test_add"], sid) == 2 for sid in students)
    assert summary.loc["test_add", "share_full_marks"] == pytest.approx(round(full / n, 3))
    assert summary.loc["test_add", "students"] == n and summary.loc["written_why", "kind"] == "written"
    assert log.loc["kernel_killer", "status"] == "limit" and "kernel died" in log.loc["kernel_killer", "message"]
    assert _auto(grades, "kernel_killer") == 0


def test_manual_answers_pending_blank_zero_and_merged_after_formgrading(graded_toy):
    ws, out, grades, _ = graded_toy
    written = grades[grades.question == "written_why"].set_index("student_id").score
    assert written["blank"] == 0  # an unanswered written question scores 0 automatically
    assert pd.isna(written["noisy_but_right"])  # answered: waits for a human
    with ws.gradebook() as gb:  # what the formgrader does when an instructor grades
        g = gb.find_grade("written_why", "toy", "toy", "noisy_but_right")
        g.manual_score = 2.5
        c = gb.find_comment("written_why", "toy", "toy", "noisy_but_right")
        c.manual_comment = "Good, but say why for reals."
        gb.db.commit()
    merged = ws.export("toy", output=out).set_index(["student_id", "question"]).score
    assert merged["noisy_but_right", "written_why"] == 2.5
    totals = pd.read_csv(out / "totals.csv").set_index("student_id")
    assert totals.loc["noisy_but_right", "total"] == 5.5
    assert totals.loc["noisy_but_right", "pending_manual"] == 0
    page = (out / "feedback" / "noisy_but_right.html").read_text()
    assert "Good, but say why for reals." in page


def test_feedback_names_tests_without_revealing_hidden_code(graded_toy):
    ws, out, grades, _ = graded_toy
    pages = {p.stem for p in (out / "feedback").glob("*.html")}
    assert pages == set(grades.student_id)
    page = (out / "feedback" / "wrong_sign.html").read_text()
    assert "test_add" in page and "failed" in page and "expected 3, got -1" in page
    for secret in ("BEGIN HIDDEN", "assert_close(", "Model answer", "return a + b"):
        assert secret not in page
    data = json.loads(page.split('id="feedback-data">')[1].split("</script>")[0])
    assert data["auto"] == 0
    assert "not answered yet" in (out / "feedback" / "blank.html").read_text().lower()
    assert "could not be graded" in (out / "feedback" / "corrupt.html").read_text()


def test_regrading_one_student_keeps_the_others(graded_toy):
    ws, out, grades, _ = graded_toy
    before = pd.read_csv(out / "grades.csv")
    sub = out.parent / "subs" / "wrong_float" / "toy.ipynb"
    nb = nbformat.read(sub, as_version=4)
    nb.cells[2].source = "def add(a, b):\n    return a + b"
    nbformat.write(nb, sub)
    after = ws.autograde("toy", out.parent / "subs", output=out, students=["wrong_float"], progress=False, workers=1)
    assert _auto(after, "wrong_float") == 3
    others = lambda df: df[df.student_id != "wrong_float"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(others(before), others(after))


def test_cli_reports_bad_input_clearly(toy_course, tmp_path, capsys):
    wd = str(tmp_path / "g")
    assert cli.main(["--workdir", wd, "autograde", "nope", str(tmp_path)]) == 2
    assert "No assignment 'nope'" in capsys.readouterr().err
    assert cli.main(["--workdir", wd, "autograde", "toy", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_formgrader_serves_on_loopback(toy_course, tmp_path):
    ws = Workspace(tmp_path / "grading", root=toy_course)
    ws.release("toy")
    port, token = cli._free_port(), "testtoken"
    proc = subprocess.Popen(cli.formgrade_command(ws, port, token), cwd=ws.nbroot,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status, body = None, ""
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/formgrader?token={token}", timeout=5) as r:
                    status, body = r.status, r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, "formgrader did not answer"
        assert "formgrader" in body.lower()
        # It reads this workspace's gradebook: the released assignment is listed for grading.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/formgrader/api/assignments?token={token}", timeout=10) as r:
            assignments = json.loads(r.read().decode())
        assert [a["name"] for a in assignments] == ["toy"]
        assert assignments[0]["max_written_score"] == 3.0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_rerun_keeps_graded_work_and_finishes_an_interrupted_run(graded_toy):
    from course_lib.grading.reports import read_log

    ws, out, grades, _ = graded_toy
    subs = out.parent / "subs"
    log_path = out / "grading_log.csv"
    before = read_log(log_path)
    messages = []
    again = ws.autograde("toy", subs, output=out, progress=False, workers=2, log=messages.append)
    assert any("already graded and unchanged" in m for m in messages)
    pd.testing.assert_frame_equal(read_log(log_path), before)  # nothing was graded again
    pd.testing.assert_frame_equal(again.reset_index(drop=True), pd.read_csv(out / "grades.csv").reset_index(drop=True),
                                  check_dtype=False)
    # A run killed half-way left only part of the log: the re-run grades exactly the rest.
    kept = before[~before.student_id.isin(["solution", "blank"])]
    kept.to_csv(log_path, index=False)
    ws.autograde("toy", subs, output=out, progress=False, workers=2, log=lambda *a: None)
    after = read_log(log_path).set_index("student_id")
    assert set(after.index) == set(before.student_id)
    unchanged = before.set_index("student_id").drop(["solution", "blank"])
    pd.testing.assert_frame_equal(after.drop(["solution", "blank"]).sort_index(), unchanged.sort_index())
    final = pd.read_csv(out / "grades.csv")
    assert _auto(final, "solution") == 3 and _auto(final, "blank") == 0


def test_experiments_are_not_rerun_and_keep_the_students_outputs(graded_toy):
    ws, out, grades, _ = graded_toy
    nb = nbformat.read(out / "autograded" / "solution.ipynb", as_version=4)
    cell = nb.cells[-1]
    assert "experiment" in cell.metadata.get("tags", [])
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    assert "not re-run" in text and "my experiment result: 42" in text
    assert not any(o.get("output_type") == "error" for o in cell.outputs)  # it did not run
