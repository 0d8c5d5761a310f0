"""A student's answer that calls a test cell's helper gets no credit (course_lib/grading/helper_use.py).

A toy notebook goes through what the grader does: the kernel runs the given cell, the student's
cells and the test cells in record mode (so the test's helpers are globals when ``run()`` calls the
student's function, and a cheat does record the right values), then ``replay_tests`` judges the
records from the source notebook, reading the student's code as text only.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib.grading import record
from course_lib.grading.helper_use import HelperNames, find_helper_use, student_bindings
from course_lib.grading.record import RECORD_ENV
from course_lib.grading.replay import replay_tests


def nbg(**kw):
    return {"nbgrader": {"schema_version": 3, **kw}}


GIVEN = """import numpy as np
import torch
import torch.nn.functional as F
from course_lib.pig_latin import *

SCALE = 2.0


class Provided:
    factor = 3.0
"""

DOUBLE = """def double(x):
    ### BEGIN SOLUTION
    return x * 2
    ### END SOLUTION"""

TRIPLE = """def triple(x):
    ### BEGIN SOLUTION
    return x * 3
    ### END SOLUTION"""

TEST_DOUBLE = """import torch
from course_lib.grading.checks import assert_close, grade

H = 4
VOWELS = "aeiou"  # also exported by the given cell's star import


def _expected(x):
    return x * 2.0


### BEGIN HIDDEN TESTS
def _hidden_reference(x):
    return x + x
### END HIDDEN TESTS


def run():
    return {"v": double(torch.arange(H, dtype=torch.float32))}


def check(out):
    assert_close(out["v"], _expected(torch.arange(H, dtype=torch.float32)), name="double(arange(4))")


grade("test_double", run, check)"""

TEST_TRIPLE = """import torch
from course_lib.grading.checks import assert_close, grade

CASE = torch.tensor([1.0, -2.0, 5.0])


def _tripled(x):
    return x * 3


def run():
    return {"v": triple(CASE)}


def check(out):
    assert_close(out["v"], _tripled(CASE), name="triple(CASE)")


grade("test_triple", run, check)"""

SOLUTION = {"double": "def double(x):\n    return x * 2", "triple": "def triple(x):\n    return x * 3"}


def notebook(double: str = DOUBLE, triple: str = TRIPLE, scratch: str = "") -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [
        new_code_cell(GIVEN, metadata=nbg(grade=False, solution=False, locked=True, grade_id="given")),
        new_code_cell(double, metadata=nbg(solution=True, grade=False, locked=False, grade_id="double")),
        new_code_cell(TEST_DOUBLE, metadata=nbg(grade=True, solution=False, locked=True, grade_id="test_double",
                                                points=2)),
        new_code_cell(scratch),  # a cell the student adds
        new_code_cell(triple, metadata=nbg(solution=True, grade=False, locked=False, grade_id="triple")),
        new_code_cell(TEST_TRIPLE, metadata=nbg(grade=True, solution=False, locked=True, grade_id="test_triple",
                                                points=2)),
    ]
    return nb


def grade_submission(tmp_path, monkeypatch, *, double=SOLUTION["double"], triple=SOLUTION["triple"],
                     scratch="") -> dict:
    """The sandboxed kernel's run of every cell in order (record mode), then the clean replay."""
    source, executed = notebook(), notebook(double, triple, scratch)
    src_path, exec_path, records = tmp_path / "source.ipynb", tmp_path / "executed.ipynb", tmp_path / "records"
    records.mkdir()
    nbformat.write(source, src_path)
    nbformat.write(executed, exec_path)
    monkeypatch.setenv(RECORD_ENV, str(records))
    ns: dict = {"__name__": "__main__"}
    for i, cell in enumerate(executed.cells):
        code = source.cells[i].source if i in (2, 5) else cell.source  # the instructor's test cells
        try:
            exec(compile(code, f"<cell {i}>", "exec"), ns)
        except Exception:  # the grader runs on past errors (a failed run is recorded)
            pass
    monkeypatch.delenv(RECORD_ENV)
    return replay_tests(src_path, exec_path, records)


@pytest.fixture(autouse=True)
def _inline_mode(monkeypatch):
    monkeypatch.delenv(RECORD_ENV, raising=False)
    yield
    assert getattr(record._STATE, "replay", None) is None


def passed(results: dict) -> dict[str, bool]:
    return {t: r["passed"] for t, r in results.items()}


def test_the_reference_keeps_full_credit(tmp_path, monkeypatch):
    assert passed(grade_submission(tmp_path, monkeypatch)) == {"test_double": True, "test_triple": True}


def test_calling_a_public_test_helper_loses_exactly_that_test(tmp_path, monkeypatch):
    res = grade_submission(tmp_path, monkeypatch, double="def double(x):\n    return _expected(x)")
    assert passed(res) == {"test_double": False, "test_triple": True}
    msg = res["test_double"]["message"]
    assert "`_expected`" in msg and "test_double defines" in msg and "write your own" in msg


def test_calling_a_hidden_test_helper_loses_exactly_that_test(tmp_path, monkeypatch):
    res = grade_submission(tmp_path, monkeypatch, double="def double(x):\n    return _hidden_reference(x)")
    assert passed(res) == {"test_double": False, "test_triple": True}
    assert "`_hidden_reference`" in res["test_double"]["message"]


def test_a_helper_of_another_test_through_a_students_own_function_costs_the_test_that_reaches_it(
        tmp_path, monkeypatch):
    scratch = "def times(x, k):\n    return _tripled(x) / 3 * k\n"
    res = grade_submission(tmp_path, monkeypatch, triple="def triple(x):\n    return times(x, 3)", scratch=scratch)
    assert passed(res) == {"test_double": True, "test_triple": False}
    assert "`_tripled`" in res["test_triple"]["message"] and "test_triple defines" in res["test_triple"]["message"]


def test_a_test_constant_read_as_a_global_is_a_helper_too(tmp_path, monkeypatch):
    res = grade_submission(tmp_path, monkeypatch, triple="def triple(x):\n    return x * 3 + 0 * CASE.sum()")
    assert passed(res) == {"test_double": True, "test_triple": False}


@pytest.mark.parametrize("body", [
    'globals()["_exp" + "ected"](x)',
    'double.__globals__["_expected"](x)',
    '__import__("sys").modules["__main__"]._expected(x)',
    'eval("_expected")(x)',
])
def test_reading_the_namespace_by_a_computed_name_loses_the_test(tmp_path, monkeypatch, body):
    res = grade_submission(tmp_path, monkeypatch, double=f"def double(x):\n    return {body}")
    assert passed(res) == {"test_double": False, "test_triple": True}
    assert "namespace" in res["test_double"]["message"]


def test_a_scratch_cell_that_calls_a_test_helper_costs_nothing(tmp_path, monkeypatch):
    scratch = "print(_expected(torch.ones(2)), _tripled(CASE) if 'CASE' in dir() else None)\n"
    assert passed(grade_submission(tmp_path, monkeypatch, scratch=scratch)) == {"test_double": True,
                                                                               "test_triple": True}


LEGIT = {
    "own run, check and H (parameters, nested functions)": """def double(x, H=2):
    def check(v):
        return v

    def run(v):
        return check(v) * H

    return run(x)""",
    "its own _expected (the test's helper's name) and another helper": """def _expected(x):
    return x + x


def _factor():
    return 1


def double(x):
    return _expected(x) * _factor()""",
    "torch, np and F from the given cell": """def double(x):
    return F.relu(x) + F.relu(-x) * -1 + torch.zeros_like(x) + x * float(np.float32(1.0))""",
    "a class and a constant the given cell defines": """def double(x):
    return x * SCALE * Provided.factor / 3.0""",
    "a name from the given cell's star import that a test cell also binds": """def double(x):
    return x * (len(VOWELS) - 3) if callable(build_vocab) else None""",
    "a name the student binds anywhere (a for target)": """def double(x):
    return x * 2 + 0 * H


for H in [2]:
    pass""",
}


@pytest.mark.parametrize("case", LEGIT)
def test_legitimate_names_keep_full_credit(tmp_path, monkeypatch, case):
    res = grade_submission(tmp_path, monkeypatch, double=LEGIT[case])
    assert passed(res) == {"test_double": True, "test_triple": True}, res


def test_test_only_names_exclude_imports_given_names_and_builtins():
    helpers = HelperNames.from_notebook(notebook())
    assert helpers.names() == {"H", "_expected", "_hidden_reference", "run", "check", "CASE", "_tripled"}
    assert helpers.defined_by["run"] == ["test_double", "test_triple"]


@pytest.mark.parametrize("code, name", [
    ("def f(_x): pass", "_x"),
    ("for _x in []: pass", "_x"),
    ("with open('f') as _x: pass", "_x"),
    ("try:\n    pass\nexcept Exception as _x:\n    pass", "_x"),
    ("[1 for _x in []]", "_x"),
    ("def f():\n    global _x", "_x"),
    ("import numpy as _x", "_x"),
    ("from os import path as _x", "_x"),
    ("class _x: pass", "_x"),
    ("(_x := 1)", "_x"),
    ("match 1:\n    case [*_x]:\n        pass", "_x"),
    ("lambda _x: 0", "_x"),
])
def test_every_way_a_student_binds_a_name_counts(code, name):
    assert name in student_bindings([code])
    assert find_helper_use("y = _x", {"_x"}, student_bindings([code])) is None


def test_a_use_is_found_anywhere_in_the_code_but_not_if_name_main():
    assert find_helper_use("def f():\n    return [_x for i in range(2)]", {"_x"}, set()) == ("name", "_x")
    assert find_helper_use('if __name__ == "__main__":\n    print(1)', set(), set()) is None
    assert find_helper_use("model.eval()", set(), set()) is None
    assert find_helper_use("vars(args)", set(), set()) is None
