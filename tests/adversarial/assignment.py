"""A small purpose-built assignment, ``adv``, that the adversarial corpus attacks.

Three autograded functions (5 points) and one written answer (2 points, graded by hand):

- ``softmax(x)``                 test_softmax       2 pts (hidden part: large values, 3-d input)
- ``layer_norm(x, eps=1e-5)``    test_layer_norm    2 pts (hidden part: another eps; forbids the library versions)
- ``count_params(d_in, d_out)``  test_count_params  1 pt  (hidden part: other sizes)

Test cells follow the harness rules (course_lib.grading.record): at top level only imports,
constants, ``def run()``, ``def check(out)`` and one ``grade(...)`` call; ``check`` recomputes every
expectation itself. Each hidden part carries the comment ``HIDDEN_CANARY`` so that a leak of the
hidden tests (into a feedback page, say) can be detected by searching for it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NAME = "adv"
HIDDEN_CANARY = "hidden-canary-7f3a"
POINTS = {"test_softmax": 2.0, "test_layer_norm": 2.0, "test_count_params": 1.0}
AUTO_POINTS = sum(POINTS.values())
WRITTEN_POINTS = 2.0
FORBID = ["torch.nn.functional.layer_norm", "torch.nn.LayerNorm"]


def nbmeta(**kw):
    d = {"schema_version": 3, "locked": False, "solution": False, "grade": False}
    d.update(kw)
    return {"nbgrader": d}


HELPERS = "import torch"

SOFTMAX = '''def softmax(x):
    """Softmax over the last dimension of a tensor x (numerically stable)."""
    ### BEGIN SOLUTION
    z = x - x.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION'''

TEST_SOFTMAX = f'''import torch
from course_lib.grading.checks import assert_close, grade

X = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])


def run():
    out = {{"x": softmax(X.clone())}}
    ### BEGIN HIDDEN TESTS
    # {HIDDEN_CANARY}
    out["big"] = softmax(torch.tensor([[1000.0, 1001.0, 1002.0]]))
    out["cube"] = softmax(torch.arange(24.0).reshape(2, 3, 4) / 7)
    ### END HIDDEN TESTS
    return out


def check(out):
    def ref(x):
        x = x.double()
        e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
        return e / e.sum(dim=-1, keepdim=True)

    assert_close(out["x"], ref(X), name="softmax(X)", atol=1e-5)
    ### BEGIN HIDDEN TESTS
    assert_close(out["big"], ref(torch.tensor([[1000.0, 1001.0, 1002.0]])), name="softmax of large values", atol=1e-5)
    assert_close(out["cube"], ref(torch.arange(24.0).reshape(2, 3, 4) / 7), name="softmax of a 3-d tensor", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_softmax", run, check)'''

LAYER_NORM = '''def layer_norm(x, eps=1e-5):
    """Normalise the last dimension of x to mean 0 and variance 1 (no learned scale or shift)."""
    ### BEGIN SOLUTION
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
    ### END SOLUTION'''

TEST_LAYER_NORM = f'''import torch
from course_lib.grading.checks import assert_close, grade

SEED = 0


def inputs(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 3 + 1


def run():
    out = {{"y": layer_norm(inputs(SEED, 4, 6))}}
    ### BEGIN HIDDEN TESTS
    # {HIDDEN_CANARY}
    out["y_eps"] = layer_norm(inputs(SEED + 1, 2, 3, 5), eps=0.5)
    ### END HIDDEN TESTS
    return out


def check(out):
    def ref(x, eps):
        x = x.double()
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps)

    assert_close(out["y"], ref(inputs(SEED, 4, 6), 1e-5), name="layer_norm(x)", atol=1e-4)
    ### BEGIN HIDDEN TESTS
    assert_close(out["y_eps"], ref(inputs(SEED + 1, 2, 3, 5), 0.5), name="layer_norm(x, eps=0.5)", atol=1e-4)
    ### END HIDDEN TESTS


grade("test_layer_norm", run, check, forbid={FORBID!r})'''

COUNT_PARAMS = '''def count_params(d_in, d_out):
    """Number of parameters (weights and biases) of a linear layer from d_in to d_out features."""
    ### BEGIN SOLUTION
    return d_in * d_out + d_out
    ### END SOLUTION'''

TEST_COUNT_PARAMS = f'''from course_lib.grading.checks import assert_equal, grade


def run():
    out = {{"small": count_params(3, 4)}}
    ### BEGIN HIDDEN TESTS
    # {HIDDEN_CANARY}
    out["big"] = count_params(128, 10)
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_equal(out["small"], 3 * 4 + 4, name="count_params(3, 4)")
    ### BEGIN HIDDEN TESTS
    assert_equal(out["big"], 128 * 10 + 10, name="count_params(128, 10)")
    ### END HIDDEN TESTS


grade("test_count_params", run, check)'''


def make_adv_notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                "language_info": {"name": "python"}})
    nb.cells = [
        new_markdown_cell("# Adversarial assignment\n\nWrite `softmax`, `layer_norm` and `count_params`."),
        new_code_cell(HELPERS, metadata=nbmeta(grade_id="helpers", locked=True)),
        new_code_cell(SOFTMAX, metadata=nbmeta(solution=True, grade_id="softmax")),
        new_code_cell(TEST_SOFTMAX, metadata=nbmeta(grade=True, grade_id="test_softmax", points=2, locked=True)),
        new_code_cell(LAYER_NORM, metadata=nbmeta(solution=True, grade_id="layer_norm")),
        new_code_cell(TEST_LAYER_NORM, metadata=nbmeta(grade=True, grade_id="test_layer_norm", points=2, locked=True)),
        new_code_cell(COUNT_PARAMS, metadata=nbmeta(solution=True, grade_id="count_params")),
        new_code_cell(TEST_COUNT_PARAMS, metadata=nbmeta(grade=True, grade_id="test_count_params", points=1, locked=True)),
        new_markdown_cell("**Q.** Why subtract the maximum before exponentiating?"),
        new_markdown_cell("Model answer: exp overflows for large inputs; softmax is shift-invariant.",
                          metadata=nbmeta(solution=True, grade=True, grade_id="written_max", points=2)),
    ]
    return nb


def make_adv_course(base: Path) -> Path:
    """A course root (``notebooks/adv/adv.ipynb``) under ``base``; returns the root."""
    root = Path(base) / "course"
    (root / "notebooks" / NAME).mkdir(parents=True)
    (root / "course_lib").mkdir()
    nbformat.write(make_adv_notebook(), root / "notebooks" / NAME / f"{NAME}.ipynb")
    return root
