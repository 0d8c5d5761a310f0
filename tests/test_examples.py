"""examples.toml: the kinds of example submission and the mistakes in the file that are refused.

A `variant` (a correct solution written differently) must keep full marks, so it may not list tests
to lose; a `mutant` must. The end-to-end tests grade the real assignments' examples.
"""

from __future__ import annotations

import nbformat
import pytest

from course_lib.grading.contract import validate_source
from course_lib.grading.errors import GradingError
from course_lib.grading.examples import apply_edits, load_examples, solution_notebook

VARIANT = ('[[submission]]\nstudent_id = "alt_sum"\nkind = "variant"\ndescription = "sum of a list"\n'
           '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "return sum([a, b])"\n')


def _spec(root):
    return validate_source(root / "notebooks" / "toy" / "toy.ipynb")


def _write(root, text):
    path = root / "notebooks" / "toy" / "examples.toml"
    path.write_text(text)
    return path


def test_variant_expects_full_marks_and_mutant_loses_its_tests(toy_course):
    path = toy_course / "notebooks" / "toy" / "examples.toml"
    path.write_text(path.read_text() + VARIANT)
    spec = _spec(toy_course)
    examples = {ex.student_id: ex for ex in load_examples(path, spec)}
    assert examples["alt_sum"].kind == "variant"
    assert examples["alt_sum"].expected_auto(spec) == spec.auto_points == 3
    assert examples["wrong_sign"].expected_auto(spec) == 0
    assert examples["wrong_float"].expected_auto(spec) == 1
    assert examples["blank"].expected_auto(spec) == 0


def test_variant_edit_is_applied_to_the_solution(toy_course):
    path = toy_course / "notebooks" / "toy" / "examples.toml"
    path.write_text(path.read_text() + VARIANT)
    spec = _spec(toy_course)
    ex = {e.student_id: e for e in load_examples(path, spec)}["alt_sum"]
    source = nbformat.read(toy_course / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    nb = apply_edits(solution_notebook(source, source), ex.edits, ex.student_id)
    add = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add")
    assert "return sum([a, b])" in add.source and "return a + b" not in add.source
    with pytest.raises(GradingError, match="occurs 0 times"):
        apply_edits(nb, ex.edits, ex.student_id)  # the old text is gone: refused, not skipped


@pytest.mark.parametrize("text, message", [
    (VARIANT.replace('description = "sum of a list"\n', 'loses = ["test_add"]\n'), "variant is a correct solution"),
    ('[[submission]]\nstudent_id = "alt"\nkind = "variant"\n', "variant is a correct solution"),
    ('[[submission]]\nstudent_id = "m"\nkind = "mutant"\n', "a mutant needs edits"),
    ('[[submission]]\nstudent_id = "x"\nkind = "correct"\n', "kind must be one of solution, blank, variant, mutant"),
    ('[[submission]]\nstudent_id = "m"\nkind = "mutant"\nloses = ["test_nope"]\n'
     '[[submission.edits]]\ncell = "add"\nold = "a"\nnew = "b"\n', "unknown test cells"),
    ('[[submission]]\nstudent_id = "m"\nkind = "mutant"\nloses = ["test_add"]\n'
     '[[submission.edits]]\ncell = "test_add"\nold = "a"\nnew = "b"\n', "each edit needs cell"),
    ('[[submission]]\nstudent_id = "a b"\nkind = "solution"\n', "invalid student_id"),
    ('[[submission]]\nstudent_id = "s"\nkind = "solution"\n[[submission]]\nstudent_id = "s"\nkind = "blank"\n', "unique"),
    ('[[submission]\n', "Cannot read example submissions"),
])
def test_mistakes_in_examples_toml_are_refused(toy_course, text, message):
    path = _write(toy_course, text)
    with pytest.raises(GradingError, match=message):
        load_examples(path, _spec(toy_course))
