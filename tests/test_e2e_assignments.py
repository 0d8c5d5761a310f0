"""Every assignment end to end, the path `make demo` takes: release, example submissions, autograde.

`course demo NAME` exits non-zero when any example submission (the reference solution, the blank
release, the correct versions written differently, and each wrong or cheating version in
examples.toml) does not get exactly its expected automatic score. `rnn_lm` has its own, more detailed test (test_e2e_rnn_lm.py).
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest

from course_lib.grading import cli
from course_lib.grading.assignments import get_assignment, list_assignments
from course_lib.grading.contract import validate_source
from course_lib.grading.examples import load_examples

pytestmark = pytest.mark.slow

DETAILED = {"rnn_lm"}


@pytest.mark.parametrize("name", [n for n in list_assignments() if n not in DETAILED])
def test_every_example_submission_gets_its_expected_score(name, tmp_path):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["--workdir", str(tmp_path / "demo"), "demo", name, "--no-progress"])
    out = buf.getvalue()
    assert code == 0, out
    assert "Every example submission got exactly its expected score." in out
    totals = pd.read_csv(tmp_path / "demo" / "graded" / name / "totals.csv", dtype={"student_id": str})
    by_id = totals.set_index("student_id")
    assert by_id.loc["solution", "auto_score"] == by_id.loc["solution", "auto_max"] > 0
    assert by_id.loc["blank", "auto_score"] == 0
    a = get_assignment(name)
    spec = validate_source(a.notebook)
    kinds = {ex.student_id: ex.kind for ex in load_examples(a.source_dir / "examples.toml", spec)}
    assert set(kinds) == set(by_id.index)
    correct = [s for s, kind in kinds.items() if kind == "variant"]
    wrong = [s for s, kind in kinds.items() if kind == "mutant"]
    assert correct and all(by_id.loc[s, "auto_score"] == by_id.loc[s, "auto_max"] for s in correct)
    assert len(wrong) >= 5 and all(by_id.loc[s, "auto_score"] < by_id.loc[s, "auto_max"] for s in wrong)
    feedback = sorted(p.stem for p in (tmp_path / "demo" / "graded" / name / "feedback").glob("*.html"))
    assert feedback == sorted(by_id.index)
