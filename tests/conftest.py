"""Shared fixtures: a small toy course used to test the grading pipeline quickly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")

# Tests use small tensors: one thread is faster than two fighting over a 2-core CI machine.
import torch  # noqa: E402

torch.set_num_threads(1)


def nbmeta(**kw):
    d = {"schema_version": 3, "locked": False, "solution": False, "grade": False}
    d.update(kw)
    return {"nbgrader": d}


TOY_SOLUTION = """import warnings
def add(a, b):
    \"\"\"Return a + b.\"\"\"
    ### BEGIN SOLUTION
    warnings.warn("a harmless warning")
    return a + b
    ### END SOLUTION"""

TOY_TESTS = """from course_lib.grading.checks import assert_close, grade

def run():
    out = {"small": add(1, 2)}
    ### BEGIN HIDDEN TESTS
    out["float"] = add(2.5, 2)
    ### END HIDDEN TESTS
    return out

def check(out):
    assert_close(out["small"], 3, name="add(1, 2)")
    ### BEGIN HIDDEN TESTS
    assert_close(out["float"], 4.5, name="add(2.5, 2)")
    ### END HIDDEN TESTS

grade("test_add", run, check)"""

TOY_TESTS_NEGATIVE = """from course_lib.grading.checks import assert_close, grade
grade("test_add_negative", lambda: add(10, -1) + OFFSET, lambda out: assert_close(out, 9, name="add(10, -1)"))"""


def make_toy_notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        new_markdown_cell("# Toy assignment"),
        new_code_cell("OFFSET = 0  # a read-only helper the tests use",
                      metadata=nbmeta(grade_id="helpers", locked=True)),
        new_code_cell(TOY_SOLUTION, metadata=nbmeta(solution=True, grade_id="add")),
        new_code_cell(TOY_TESTS, metadata=nbmeta(grade=True, grade_id="test_add", points=2, locked=True)),
        new_code_cell(TOY_TESTS_NEGATIVE,
                      metadata=nbmeta(grade=True, grade_id="test_add_negative", points=1, locked=True)),
        new_markdown_cell("**Q.** Why does addition commute?"),
        new_markdown_cell("Model answer: because.", metadata=nbmeta(solution=True, grade=True, grade_id="written_why", points=3)),
        # An experiment (a training run in a real assignment): the grader keeps the student's outputs
        # instead of re-running it; running it here would fail.
        new_code_cell("print('my experiment result: 42')\nraise RuntimeError('the grader ran an experiment')",
                      metadata={"tags": ["experiment"]}),
    ]
    return nb


@pytest.fixture()
def toy_course(tmp_path, monkeypatch):
    """A course root with one assignment `toy` (2 test cells, 1 written answer)."""
    root = make_toy_course(tmp_path)
    monkeypatch.setenv("COURSE_ROOT", str(root))
    return root


def make_toy_course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "notebooks" / "toy").mkdir(parents=True)
    (root / "course_lib").mkdir()
    nbformat.write(make_toy_notebook(), root / "notebooks" / "toy" / "toy.ipynb")
    (root / "notebooks" / "toy" / "toy.py").write_text("# jupytext pair: holds the solutions\n")
    (root / "notebooks" / "toy" / "notes.md").write_text("public notes\n")
    (root / "notebooks" / "toy" / "examples.toml").write_text(
        '[[submission]]\nstudent_id = "solution"\nkind = "solution"\n'
        '[[submission]]\nstudent_id = "blank"\nkind = "blank"\n'
        '[[submission]]\nstudent_id = "wrong_sign"\nkind = "mutant"\ndescription = "subtracts"\n'
        'loses = ["test_add", "test_add_negative"]\n'
        '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "return a - b"\n'
        '[[submission]]\nstudent_id = "wrong_float"\nkind = "mutant"\ndescription = "truncates"\n'
        'loses = ["test_add"]\n'
        '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "return int(a) + int(b)"\n'
    )
    return root


@pytest.fixture(scope="session")
def python_bin():
    return Path(sys.executable).parent
