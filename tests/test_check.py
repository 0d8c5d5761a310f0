"""`course check NOTEBOOK` (course_lib.check): a student's pre-submission check, without a browser.

The rnn_lm runs share one module-scoped fixture: the release and the example submissions are built
once (as `course demo` does, with `build_examples`), and the three notebooks checked (reference
solution, blank release, a wrong submission with a tampered test cell) run side by side as
`python -m course_lib.check --json` processes in which nbgrader cannot be imported.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, make_toy_notebook
from nbformat.v4 import new_code_cell, new_notebook

from course_lib import check
from course_lib.grading import cells, cli
from course_lib.grading.contract import validate_source

NAME = "rnn_lm"
SOURCE = REPO / "notebooks" / NAME / f"{NAME}.ipynb"
WRONG = "wrong_mask_loss_numel"  # an example submission whose bug the public test of mask_loss catches
WRONG_MESSAGE = "mask_loss on the Q4 example: expected 0.39, got 0.325"
EDITED_TEST = "test_rnn_cell_params"
DELETED_CELL = "question_1_q1b"  # a read-only markdown question


def _fingerprint(path: Path):
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


def _folder_listing(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _no_nbgrader(tmp: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes `import nbgrader` fail (a student's environment)."""
    fake = tmp / "no_nbgrader" / "nbgrader"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('nbgrader is not installed in this environment')\n")
    return fake.parent


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_no_nbgrader(tmp)), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("COURSE_FAST", None)  # fast mode is check's default, not inherited
    return env


def _by_id(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")}


@pytest.fixture(scope="module")
def rnn_lm_release(tmp_path_factory):
    """The rnn_lm student release and its example submissions (no kernel)."""
    pytest.importorskip("nbgrader")
    if not SOURCE.exists():
        pytest.skip("rnn_lm notebook not present")
    from course_lib.grading.examples import build_examples
    from course_lib.grading.workspace import Workspace

    tmp = tmp_path_factory.mktemp("check_rnn_lm")
    release_nb = Workspace(tmp / "grading", root=REPO).release(NAME, output=tmp / "release")
    examples = {ex.student_id: ex for ex, _ in build_examples(NAME, tmp / "subs", release_notebook=release_nb, root=REPO)}
    return tmp, release_nb, examples


@pytest.fixture(scope="module")
def rnn_lm_runs(rnn_lm_release):
    """Check three submissions, side by side, with `python -m course_lib.check --json` (no nbgrader)."""
    tmp, release_nb, examples = rnn_lm_release
    # The wrong submission, with one test cell edited and one read-only question deleted.
    nb = nbformat.read(tmp / "subs" / WRONG / f"{NAME}.ipynb", as_version=4)
    _by_id(nb)[EDITED_TEST].source += "\n# the student changed this test cell"
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != DELETED_CELL]
    tampered = tmp / "tampered" / f"{NAME}.ipynb"  # named like the assignment, so check finds its source
    tampered.parent.mkdir()
    nbformat.write(nb, tampered)

    paths = {"solution": tmp / "subs" / "solution" / f"{NAME}.ipynb", "blank": tmp / "subs" / "blank" / f"{NAME}.ipynb",
             "tampered": tampered}
    before = {k: (_fingerprint(p), _folder_listing(p.parent)) for k, p in paths.items()}
    env = _env(tmp)
    procs = {k: subprocess.Popen([sys.executable, "-m", "course_lib.check", str(p), "--json"], env=env, cwd=tmp,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, p in paths.items()}
    runs = {}
    for k, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        runs[k] = {"code": proc.returncode, "stdout": out, "stderr": err, "path": paths[k], "before": before[k],
                   "after": (_fingerprint(paths[k]), _folder_listing(paths[k].parent))}
        assert out.strip().startswith("{"), f"{k}: no JSON on stdout (exit {proc.returncode}):\n{out}\n{err}"
        runs[k]["data"] = json.loads(out)
    return {"runs": runs, "release": release_nb, "examples": examples, "spec": validate_source(SOURCE)}


# ---------------------------------------------------------------- rnn_lm end to end
@pytest.mark.slow
def test_reference_solution_passes_every_public_test(rnn_lm_runs):
    run, spec = rnn_lm_runs["runs"]["solution"], rnn_lm_runs["spec"]
    data = run["data"]
    assert run["code"] == 0, run["stderr"]
    assert [t["test_id"] for t in data["tests"]] == [t.grade_id for t in spec.tests]
    assert {t["status"] for t in data["tests"]} == {"passed"}, [t for t in data["tests"] if t["status"] != "passed"]
    assert data["warnings"] == [] and data["cell_errors"] == []
    n, w = len(spec.tests), len(spec.written)
    assert data["summary"]["line"] == (f"public checks: {n}/{n} passed; hidden tests run at grading; "
                                       f"written answers: {w}/{w} filled")
    assert "points" not in data["summary"]["line"] and "points_passed" not in data["summary"]  # not a grade
    assert data["exit_code"] == 0 and data["mode"] == "fast" and data["experiments"] == "skipped"
    assert "Traceback" not in run["stderr"]
    # each row names its question (the nearest heading) and the answer it tests
    row = next(t for t in data["tests"] if t["test_id"] == "test_lstm_cell_params")
    assert row["question"] == "Q3: Counting parameters [6 pts]" and row["tests"] == "lstm_cell_params"
    assert row["points"] == spec.points_of("test_lstm_cell_params")


@pytest.mark.slow
def test_blank_release_is_not_answered_without_crashing(rnn_lm_runs):
    run, spec = rnn_lm_runs["runs"]["blank"], rnn_lm_runs["spec"]
    data = run["data"]
    assert run["code"] == 1, run["stderr"]
    assert len(data["tests"]) == len(spec.tests)
    assert {t["status"] for t in data["tests"]} == {"not answered"}
    assert data["summary"]["tests_passed"] == 0 and data["summary"]["written_filled"] == 0
    assert {w["grade_id"] for w in data["written"]} == {c.grade_id for c in spec.written}
    assert data["warnings"] == []
    assert "Traceback" not in run["stderr"]


@pytest.mark.slow
def test_wrong_submission_fails_exactly_its_public_test_with_the_message(rnn_lm_runs):
    data = rnn_lm_runs["runs"]["tampered"]["data"]
    ex = rnn_lm_runs["examples"][WRONG]
    status = {t["test_id"]: t for t in data["tests"]}
    failed = sorted(k for k, t in status.items() if t["status"] == "failed")
    assert failed == ["test_mask_loss"] and set(failed) <= set(ex.loses)
    assert status["test_mask_loss"]["message"] == WRONG_MESSAGE
    assert status["test_mask_loss"]["question"] == "3.3 The masked loss"
    others = {k: t["status"] for k, t in status.items() if k not in ("test_mask_loss", EDITED_TEST)}
    assert set(others.values()) == {"passed"}, others
    assert rnn_lm_runs["runs"]["tampered"]["code"] == 1


@pytest.mark.slow
def test_edited_or_deleted_locked_cells_are_reported(rnn_lm_runs):
    data = rnn_lm_runs["runs"]["tampered"]["data"]
    edited = next(t for t in data["tests"] if t["test_id"] == EDITED_TEST)
    # the edited copy passed, but it is not the test the grader runs: it does not count as passed
    assert edited["status"] == "edited" and "your copy passed" in edited["message"]
    assert any(w.startswith(f"{EDITED_TEST}:") and "restored at grading" in w for w in data["warnings"])
    assert any(w.startswith(f"{DELETED_CELL}:") and "put back at grading" in w for w in data["warnings"])
    spec = rnn_lm_runs["spec"]
    assert data["summary"]["tests_passed"] == len(spec.tests) - 2


@pytest.mark.slow
def test_text_report_is_a_fixed_width_table_with_the_summary(rnn_lm_runs):
    data, spec = rnn_lm_runs["runs"]["tampered"]["data"], rnn_lm_runs["spec"]
    text = check.format_report(data, width=100)
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines[:-1]), [line for line in lines if len(line) > 100]
    header = next(line for line in lines if line.split()[:2] == ["result", "worth"])
    row = next(line for line in lines if line.rstrip().endswith(" test_mask_loss"))
    assert row.split()[:4] == ["FAILED", f"{spec.points_of('test_mask_loss'):g}", "pts", "mask_loss"]
    assert header.split()[:2] == ["result", "worth"]
    assert any(line.startswith("Public checks (") and "not the grade: hidden tests run at grading" in line
               for line in lines)
    assert row.index("test_mask_loss") == header.index("test id")  # columns line up
    assert any(WRONG_MESSAGE in line for line in lines)
    assert "  Q3: Counting parameters [6 pts]" in lines
    assert lines[-1] == data["summary"]["line"]
    assert lines[-1].startswith(f"public checks: {len(spec.tests) - 2}/{len(spec.tests)} passed; "
                                "hidden tests run at grading; written answers: ")


@pytest.mark.slow
def test_the_students_file_is_never_modified(rnn_lm_runs):
    for name, run in rnn_lm_runs["runs"].items():
        assert run["after"][0] == run["before"][0], f"{name}: the notebook file changed"
        assert run["after"][1] == run["before"][1], f"{name}: files appeared or vanished next to the notebook"


def test_checksum_is_nbgrader_s(rnn_lm_release):
    """check.compute_checksum re-implements nbgrader.utils.compute_checksum (check must not import nbgrader)."""
    from nbgrader.utils import compute_checksum as nbgrader_checksum

    nb = nbformat.read(rnn_lm_release[1], as_version=4)
    stored = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("checksum")]
    assert len(stored) > 50
    for cell in stored:
        assert check.compute_checksum(cell) == nbgrader_checksum(cell) == cell.metadata.nbgrader.checksum
        edited = copy.deepcopy(cell)
        edited.source += "\n# edited"
        if cells.is_grade(edited):
            edited.metadata.nbgrader["points"] = 7
        assert check.compute_checksum(edited) == nbgrader_checksum(edited) != cell.metadata.nbgrader.checksum


def test_cell_rules_are_nbgrader_s(rnn_lm_release):
    """course_lib.grading.cells repeats nbgrader.utils' flags, on the release and on every mix of flags."""
    from nbgrader import utils

    nb = nbformat.read(rnn_lm_release[1], as_version=4)
    variants = list(nb.cells)
    for cell_type in ("code", "markdown"):
        for grade in (False, True):
            for solution in (False, True):
                for locked in (False, True):
                    flags = {"grade": grade, "solution": solution, "locked": locked, "grade_id": "x"}
                    variants.append(nbformat.from_dict({"cell_type": cell_type, "source": "", "metadata": {"nbgrader": flags}}))
    variants.append(nbformat.from_dict({"cell_type": "code", "source": "", "metadata": {}}))
    for cell in variants:
        assert bool(cells.is_grade(cell)) == bool(utils.is_grade(cell))
        assert bool(cells.is_solution(cell)) == bool(utils.is_solution(cell))
        assert bool(cells.is_locked(cell)) == bool(utils.is_locked(cell))


def test_hidden_test_blocks_are_nbgrader_s():
    """cells.split_hidden_tests reads hidden-test blocks as nbgrader's ClearHiddenTests strips them: what
    it keeps outside is the released source, on every test cell of the course and on looser delimiters."""
    from nbgrader.preprocessors import ClearHiddenTests

    nb = nbformat.read(SOURCE, as_version=4)
    sources = [c.source for c in nb.cells if cells.is_test_cell(c)]
    assert sum("### BEGIN HIDDEN TESTS" in s for s in sources) > 5
    sources += [
        "a = 1\n## BEGIN HIDDEN TESTS\nassert secret_one()\n## END HIDDEN TESTS\nb = 2",
        "a = 1\n### BEGIN HIDDEN TESTS (edge cases)\nassert secret_two()\n    # END HIDDEN TESTS here\n",
        "x = 1\n#BEGIN HIDDEN TESTS\n\nassert hidden\n#END HIDDEN TESTS\n\ny = 2\n",
    ]
    strip = ClearHiddenTests()
    for src in sources:
        cell = nbformat.from_dict({"cell_type": "code", "source": src, "metadata": {}, "outputs": []})
        strip._remove_hidden_test_region(cell)
        inside, outside = cells.split_hidden_tests(src)
        assert outside == cell.source.splitlines()
        markers = sum(("BEGIN HIDDEN TESTS" in ln or "END HIDDEN TESTS" in ln) for ln in src.splitlines())
        assert len(inside) + len(outside) + markers == len(src.splitlines())
        assert not any("secret" in ln for ln in outside)


# ---------------------------------------------------------------- small notebooks
def _toy(tmp_path: Path, edit=None, extra_first=None) -> Path:
    nb = make_toy_notebook()
    if edit:
        cell = _by_id(nb)["add"]
        cell.source = cell.source.replace(*edit)
    if extra_first:
        nb.cells.insert(2, new_code_cell(extra_first))
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_course_check_command_on_a_correct_notebook(tmp_path, capsys, monkeypatch):
    """`course check` is registered; a solution that warns (stderr) still passes; experiments are skipped."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = _toy(tmp_path)
    before = _fingerprint(path)
    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.splitlines()[-1] == ("public checks: 2/2 passed; hidden tests run at grading; "
                                    "written answers: 1/1 filled")
    assert "Other cells that raised an error" not in out  # the experiment that raises was not run
    assert _fingerprint(path) == before


@pytest.mark.slow
def test_errors_and_timeouts_do_not_stop_the_run(tmp_path, capsys, monkeypatch):
    """A cell over --timeout is interrupted, later tests still run; errors are reported per test."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = _toy(tmp_path, edit=("return a + b", "return a + undefined_name"), extra_first="import time\ntime.sleep(60)")
    code = check.main([str(path), "--json", "--timeout", "3", "--run-experiments"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["exit_code"] == 1
    assert [(t["test_id"], t["status"]) for t in data["tests"]] == [("test_add", "error"), ("test_add_negative", "error")]
    assert data["tests"][0]["message"] == "NameError: name 'undefined_name' is not defined"
    errors = [e["error"] for e in data["cell_errors"]]
    assert errors[0].startswith("Timeout: the cell ran longer than 3 s")
    assert errors[1] == "RuntimeError: the grader ran an experiment"  # --run-experiments ran it
    assert data["experiments"] == "run"


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"cells": [', "is not a Jupyter notebook: its JSON is damaged"),
    ("", "is empty"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}', "not a"),
    (json.dumps(new_notebook(cells=[new_code_cell("x = 1")])), "has no test cells"),
])
def test_unreadable_notebook_exits_2_with_what_to_do(tmp_path, capsys, content, message):
    path = tmp_path / "rnn_lm.ipynb"
    if content is not None:
        path.write_text(content)
    assert check.main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.startswith("course check: error: ")
    if content:
        assert "fresh copy" in err or "assignment notebook" in err
        assert path.read_text() == content


def test_analyse_marks_cells_the_kernel_never_reached_as_not_run():
    nb = make_toy_notebook()
    cells = nb.cells
    test_add = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_add")
    runs = {i: check.CellRun("ok") for i, c in enumerate(cells) if c.cell_type == "code" and i < test_add}
    runs[test_add] = check.CellRun("died", "DeadKernelError", "the kernel died while running this cell")
    report = check.analyse(nb, runs, path=Path("toy.ipynb"), seconds=1.0, fast=True, run_experiments=False)
    assert [(t.test_id, t.status) for t in report.tests] == [("test_add", "error"), ("test_add_negative", "not run")]
    assert report.exit_code == 1 and report.summary()["tests_passed"] == 0


def test_module_does_not_import_nbgrader():
    code = "import sys, course_lib.check; sys.exit(1 if any(m.startswith('nbgrader') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_cell_rules_import_nothing_heavy():
    """course_lib.grading.cells (which check uses) imports neither nbformat, nbgrader, pandas nor torch."""
    heavy = ("nbgrader", "nbformat", "nbconvert", "pandas", "torch", "traitlets")
    code = ("import sys, course_lib.grading.cells; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {heavy!r}]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
