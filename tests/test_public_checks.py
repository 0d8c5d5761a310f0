"""The public checks alone (the released test cells) catch at least 70% of each assignment's wrong examples.

Each `wrong_*` submission of `notebooks/<name>/examples.toml` is a plausible bug; it is caught when
at least one public check fails for it, as `course check` would show the student
(course_lib.grading.catch_rate; `course catch-rate NAME` prints the same per example). The fast
measurement (one kernel, suffix re-runs) is cross-checked against `course check` on the built
example notebook for the example it measures last, the one most exposed to state left behind by
the others.
"""

from __future__ import annotations

import pytest
from conftest import REPO

from course_lib import check
from course_lib.grading.catch_rate import assignments_with_examples, format_catch_rate, measure
from course_lib.grading.examples import build_examples

MIN_RATE = 0.70
ASSIGNMENTS = assignments_with_examples(REPO)


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_public_checks_catch_most_wrong_examples(name, tmp_path, monkeypatch):
    pytest.importorskip("nbgrader")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = measure(name, root=REPO, workdir=tmp_path)
    report = format_catch_rate(result)
    print(report)
    assert result.verdicts, f"{name} has no wrong_* examples"
    assert not result.baseline_failures, f"the reference solution fails public checks:\n{report}"
    # what the grader takes off includes every public check that fails (public checks are part of it)
    for v in result.verdicts:
        assert set(v.failed) <= set(v.loses) | {"(kernel)"}, (
            f"{v.student_id} fails public tests its examples.toml `loses` does not list:\n{report}")
    uncaught = [v.student_id for v in result.uncaught]
    assert result.rate >= MIN_RATE, (
        f"{name}: the public checks catch {len(result.caught)}/{len(result.verdicts)} wrong examples "
        f"({result.rate:.0%} < {MIN_RATE:.0%}); not caught: {', '.join(uncaught)}\n{report}")

    # the fast measurement agrees with `course check` on the example it measured last
    last = result.order[-1]
    release = tmp_path / "release" / name / f"{name}.ipynb"
    build_examples(name, tmp_path / "subs", release_notebook=release, root=REPO)
    rep = check.check_notebook(tmp_path / "subs" / last / f"{name}.ipynb")
    failing = sorted(t.test_id for t in rep.tests if t.status != check.PASSED)
    assert failing == sorted(next(v for v in result.verdicts if v.student_id == last).failed), last


# ---------------------------------------------------------------- the measurement itself, on the toy course
KILLS_KERNEL = ('[[submission]]\nstudent_id = "wrong_exits"\nkind = "mutant"\ndescription = "kills the kernel"\n'
                'loses = ["test_add", "test_add_negative"]\n'
                '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "import os; os._exit(1)"\n'
                '[[submission]]\nstudent_id = "wrong_syntax"\nkind = "mutant"\ndescription = "does not compile"\n'
                'loses = ["test_add", "test_add_negative"]\n'
                '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "return a +"\n'
                '[[submission]]\nstudent_id = "cheat_ignored"\nkind = "mutant"\ndescription = "not a wrong_ example"\n'
                'loses = ["test_add", "test_add_negative"]\n'
                '[[submission.edits]]\ncell = "add"\nold = "return a + b"\nnew = "return 0"\n')


@pytest.mark.slow
def test_only_public_checks_count_and_a_dead_kernel_is_caught(toy_course, tmp_path, capsys, monkeypatch):
    """toy: wrong_sign fails both public tests; wrong_float fails only a hidden test (missed); an example
    that kills the kernel is caught and the ones after it are still measured; one whose answer cell does
    not compile is caught (the reference's `add` is not left behind); cheat_* is not counted."""
    pytest.importorskip("nbgrader")
    from course_lib.grading import cli

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = toy_course / "notebooks" / "toy" / "examples.toml"
    path.write_text(KILLS_KERNEL + path.read_text())  # measured first: a new kernel measures the others
    result = measure("toy", root=toy_course, workdir=tmp_path)
    verdicts = {v.student_id: v for v in result.verdicts}
    assert list(verdicts) == ["wrong_exits", "wrong_syntax", "wrong_sign", "wrong_float"]  # examples.toml's order
    assert result.order == list(verdicts)  # same first edited cell: measured in that order too
    assert result.baseline_failures == {}  # the experiment cell (it raises) is skipped, as in course check
    assert sorted(verdicts["wrong_sign"].failed) == ["test_add", "test_add_negative"]
    assert "add(1, 2): expected 3, got -1" in verdicts["wrong_sign"].failed["test_add"]
    assert verdicts["wrong_float"].failed == {}  # add(2.5, 2) is a hidden test: the release does not have it
    assert list(verdicts["wrong_exits"].failed) == ["(kernel)"]
    assert verdicts["wrong_syntax"].failed == {
        "test_add": "NameError: name 'add' is not defined", "test_add_negative": "NameError: name 'add' is not defined"}
    assert result.rate == pytest.approx(3 / 4) and [v.student_id for v in result.uncaught] == ["wrong_float"]

    monkeypatch.chdir(toy_course)
    assert cli.main(["--workdir", str(tmp_path / "ws"), "catch-rate", "toy", "--min-rate", "0.8"]) == 1
    out, err = capsys.readouterr()
    assert "  MISSED  wrong_float" in out and "only the hidden tests catch it (test_add)" in out
    assert out.strip().splitlines()[-1].startswith("toy: public checks catch 3/4 wrong examples (75%)")
    assert "catch rate below 80%: toy 75%" in err
