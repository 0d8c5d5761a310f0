"""Source notebooks: jupytext pairs in sync, the contract kept, releases that leak nothing."""

from __future__ import annotations

import json

import jupytext
import nbformat
import pytest
from conftest import REPO

from course_lib.grading.assignments import list_assignments
from course_lib.grading.contract import shape_comment_problems, validate_source

ASSIGNMENTS = list_assignments(REPO)


def test_there_are_assignments():
    assert "rnn_lm" in ASSIGNMENTS


def _cells(nb):
    return [(c.cell_type, c.source.strip(), json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True)) for c in nb.cells]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_ipynb_matches_its_jupytext_source(name):
    """Edit the .py (py:percent) source, then run `make notebooks`; this catches a forgotten step."""
    folder = REPO / "notebooks" / name
    py = folder / f"{name}.py"
    if not py.exists():
        pytest.skip(f"{name} has no jupytext source")
    from_py = jupytext.read(py)
    ipynb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    assert _cells(from_py) == _cells(ipynb), f"{name}.ipynb is out of date: run `make notebooks`"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_clean(name):
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.get("outputs"), "commit notebooks with outputs stripped"
    validate_source(nb)


# ---------------------------------------------------------------- lesson style: shape comments
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_functions_name_their_tensor_shapes(name):
    """Every function of a solution cell that takes or returns tensors names their shapes ((B, T), ...)
    in its docstring or comments outside the solution, so the student release keeps them."""
    assert shape_comment_problems(REPO / "notebooks" / name / f"{name}.ipynb") == []


SOLUTION_META = {"nbgrader": {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3,
                              "solution": True, "task": False}}


@pytest.mark.parametrize("source, flagged", [
    ('def f(x):\n    """Double a tensor."""\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION', True),
    ('def f(x):\n    """Double a tensor x of shape (B, T)."""\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION', False),
    # a shape only inside the solution is stripped from the release: students would not see it
    ('def f(x):\n    """Double a tensor."""\n    ### BEGIN SOLUTION\n    return 2 * x  # (B, T)\n    ### END SOLUTION', True),
    ('def f(x):\n    # x: (B, T, E)\n    ### BEGIN SOLUTION\n    return torch.exp(x)\n    ### END SOLUTION', False),
    ('def f(x, B, T):\n    """Zeros."""\n    return torch.zeros((B, T))', True),  # code is not a comment
    ('def f(x: torch.Tensor):\n    return x', True),
    ('class M(nn.Module):\n    """Maps (B, T) to (B, T, V)."""\n\n    def forward(self, x):\n        return x', True),
    ('class M(nn.Module):\n    def forward(self, x):\n        """x: (B, T) -> (B, T, V)."""\n        return x', False),
    ('def f(d_e, d_h):\n    """A count of parameters."""\n    return d_e * d_h', False),  # no tensors
])
def test_shape_comment_rule(source, flagged):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, metadata=SOLUTION_META)])
    problems = shape_comment_problems(nb)
    assert bool(problems) == flagged, problems
    if flagged:
        assert "name no shapes" in problems[0] and "(B, T)" in problems[0]


def test_course_lint_reports_missing_shape_comments(toy_course, capsys):
    from course_lib.grading import cli

    path = toy_course / "notebooks" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert cli.main(["lint", "toy"]) == 0
    solution = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add")
    solution.source = solution.source.replace('"""Return a + b."""', '"""Return the tensor a + b."""')
    nbformat.write(nb, path)
    capsys.readouterr()
    assert cli.main(["lint", "toy"]) == 1
    err = capsys.readouterr().err
    assert "add: add (line 2) takes or returns tensors" in err


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_test_cell_fails_for_a_plausible_wrong_solution(name):
    """A test cell that no wrong solution fails could be a test that cannot fail: each one is in the
    `loses` of at least one `wrong_*` example (a plausible bug, not a forbidden-function cheat), and
    the variants together rewrite every solution cell. The end-to-end tests grade them all."""
    from course_lib.grading.examples import load_examples

    spec = validate_source(REPO / "notebooks" / name / f"{name}.ipynb")
    examples = load_examples(REPO / "notebooks" / name / "examples.toml", spec)
    lost = {t for ex in examples if ex.kind == "mutant" and ex.student_id.startswith("wrong_") for t in ex.loses}
    assert sorted({t.grade_id for t in spec.tests} - lost) == [], "test cells no wrong_* example fails"
    rewritten = {e["cell"] for ex in examples if ex.kind == "variant" for e in ex.edits}
    assert sorted({c.grade_id for c in spec.cells if c.kind == "solution"} - rewritten) == [], \
        "solution cells no variant rewrites"
