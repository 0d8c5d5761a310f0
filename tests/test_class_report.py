"""`course report ASSIGNMENT` (course_lib.grading.class_report): what the class got wrong.

The examples' gradebook: `course demo` grades the toy course's example submissions (its
examples.toml: the solution, the blank release and two wrong versions, each losing exactly the tests
it lists) and now writes the class report; three more folders are then graded into the same gradebook
(a kernel that dies: a limit; a corrupt notebook and an empty folder: never run). Every figure of the
report is computed here independently, from examples.toml and those three, never from the report.
A small hand-written gradebook covers what the examples do not (partial credit, time limits).
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import os
import re

import nbformat
import pandas as pd
import pytest
from conftest import make_toy_course

from course_lib.grading import cli
from course_lib.grading.class_report import (
    NO_MESSAGE,
    NOT_REACHED,
    build_report,
    limit_of,
    make_report,
    normalise_message,
)
from course_lib.grading.contract import validate_source
from course_lib.grading.errors import GradingError
from course_lib.grading.examples import load_examples

EXTRA = {"kernel_killer": "limit", "corrupt": "corrupt", "empty_folder": "missing"}


def _run(argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(argv)
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def examples_gradebook(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class_report")
    root = make_toy_course(tmp)
    old = os.environ.get("COURSE_ROOT")
    os.environ["COURSE_ROOT"] = str(root)
    try:
        work = tmp / "work"
        code, demo_out = _run(["--workdir", str(work), "demo", "toy", "--no-progress", "--workers", "2"])
        assert code == 0, demo_out
        subs, graded = work / "submissions" / "toy", work / "graded" / "toy"
        solution = nbformat.read(subs / "solution" / "toy.ipynb", as_version=4)
        killer = copy.deepcopy(solution)
        killer.cells[2].source = "import os\ndef add(a, b):\n    os._exit(0)"
        (subs / "kernel_killer").mkdir()
        nbformat.write(killer, subs / "kernel_killer" / "toy.ipynb")
        (subs / "corrupt").mkdir()
        (subs / "corrupt" / "toy.ipynb").write_text("{not json")
        (subs / "empty_folder").mkdir()
        code, out = _run(["--workdir", str(work), "autograde", "toy", str(subs), "--output", str(graded),
                          "--no-progress", "--workers", "2"])
        assert code == 0, out
        code, report_out = _run(["--workdir", str(work), "report", "toy", "--graded", str(graded)])
        assert code == 0, report_out
        spec = validate_source(root / "notebooks" / "toy" / "toy.ipynb")
        examples = load_examples(root / "notebooks" / "toy" / "examples.toml", spec)
    finally:
        if old is None:
            os.environ.pop("COURSE_ROOT", None)
        else:
            os.environ["COURSE_ROOT"] = old
    tables = {p.stem: pd.read_csv(p, keep_default_na=False, dtype=str) for p in (graded / "report").glob("*.csv")}
    return {"demo_out": demo_out, "report_out": report_out, "graded": graded, "spec": spec, "examples": examples,
            "tables": tables, "html": (graded / "report" / "report.html").read_text()}


def _expected_failures(examples, spec):
    """{student: set of failed tests}, from examples.toml (and the kernel that dies in test_add, the first
    test that calls add, after which nothing runs)."""
    tests = [t.grade_id for t in spec.tests]
    failed = {ex.student_id: set(tests) if ex.kind == "blank" else set(ex.loses) for ex in examples}
    failed["kernel_killer"] = set(tests)
    return tests, failed


def report_mismatches(report_dir, spec, examples, extra_failed=None):
    """Where the CSVs of a class report in ``report_dir`` differ from what examples.toml says (an
    empty list: none). Usable on any assignment's demo output, e.g. ``graded/rnn_lm/report`` after
    `course demo rnn_lm`. ``extra_failed``: {student: failed tests} of submissions that are no examples."""
    tests = [t.grade_id for t in spec.tests]
    failed = {ex.student_id: set(tests) if ex.kind == "blank" else set(ex.loses) for ex in examples}
    failed |= extra_failed or {}
    t = pd.read_csv(report_dir / "tests.csv").set_index("question")
    co = pd.read_csv(report_dir / "cofailures.csv")
    both = {(a, b): n for a, b, n in zip(co["test_a"], co["test_b"], co["both"], strict=True)}
    out = [f"{q}: {t.loc[q, 'failed'] + t.loc[q, 'partial']} failed, expected {sum(q in f for f in failed.values())}"
           for q in tests if t.loc[q, "failed"] + t.loc[q, "partial"] != sum(q in f for f in failed.values())]
    out += [f"{a} and {b} fail together {both.get((a, b), 0)} times, expected {n}"
            for a, b in itertools.combinations(tests, 2)
            if both.get((a, b), 0) != (n := sum(a in f and b in f for f in failed.values()))]
    return out


def test_demo_writes_the_class_report(examples_gradebook):
    out = examples_gradebook["demo_out"]
    assert "Class report for toy" in out and "report.html" in out
    assert "Every example submission got exactly its expected score." in out
    assert "class report:" in examples_gradebook["report_out"]
    g = examples_gradebook
    assert report_mismatches(g["graded"] / "report", g["spec"], g["examples"],
                             {"kernel_killer": {t.grade_id for t in g["spec"].tests}}) == []


def test_pass_rate_per_test_matches_the_examples(examples_gradebook):
    tests, failed = _expected_failures(examples_gradebook["examples"], examples_gradebook["spec"])
    got = examples_gradebook["tables"]["tests"].set_index("question")
    assert list(got.index) == tests
    ran = len(failed)  # the examples and the kernel that died (a limit keeps what completed)
    for t in tests:
        n_failed = sum(t in f for f in failed.values())
        assert int(got.loc[t, "ran"]) == ran
        assert int(got.loc[t, "not_run"]) == 2  # the corrupt notebook and the empty folder
        assert int(got.loc[t, "failed"]) == n_failed and int(got.loc[t, "passed"]) == ran - n_failed
        assert float(got.loc[t, "pass_rate"]) == pytest.approx(round((ran - n_failed) / ran, 3))
    assert float(got.loc["test_add", "pass_rate"]) == 0.2  # 1 of 5: only the solution


def test_failure_messages_are_grouped_with_numbers_normalised(examples_gradebook):
    f = examples_gradebook["tables"]["failures"]
    add = f[f.question == "test_add"].set_index("message")
    # wrong_sign fails add(1, 2), wrong_float the hidden add(2.5, 2): one group once the numbers go.
    group = add.loc["add(<n>, <n>): expected <n>, got <n>"]
    assert int(group["students"]) == 2 and group["student_ids"] == "wrong_float; wrong_sign"
    assert re.fullmatch(r"add\(\S+, \S+\): expected \S+, got \S+", group["example"])
    assert int(add.loc["Not answered yet (the function still raises NotImplementedError).", "students"]) == 1
    assert add.index[0] == "add(<n>, <n>): expected <n>, got <n>"  # most common first
    # The kernel died in test_add: the grader says so in that cell and in every test cell after it.
    assert "did not run" in f[f.question == "test_add"].set_index("student_ids").loc["kernel_killer", "message"]
    neg = f[f.question == "test_add_negative"].set_index("student_ids")
    assert "kernel died" in neg.loc["kernel_killer", "message"] and "cell <n>" in neg.loc["kernel_killer", "message"]
    assert neg.loc["wrong_sign", "message"] == "add(<n>, <n>): expected <n>, got <n>"
    tests, failed = _expected_failures(examples_gradebook["examples"], examples_gradebook["spec"])
    for t in tests:  # every failure is in exactly one group
        ids = [s for cell in f[f.question == t]["student_ids"] for s in cell.split("; ")]
        assert sorted(ids) == sorted(s for s, fs in failed.items() if t in fs)


def test_tests_failing_together(examples_gradebook):
    tests, failed = _expected_failures(examples_gradebook["examples"], examples_gradebook["spec"])
    co = examples_gradebook["tables"]["cofailures"]
    assert len(co) == 1
    a, b = co.iloc[0]["test_a"], co.iloc[0]["test_b"]
    fa = {s for s, f in failed.items() if a in f}
    fb = {s for s, f in failed.items() if b in f}
    assert (a, b) == ("test_add", "test_add_negative")
    assert int(co.iloc[0]["both"]) == len(fa & fb) == 3  # blank, wrong_sign, kernel_killer
    assert float(co.iloc[0]["jaccard"]) == pytest.approx(round(len(fa & fb) / len(fa | fb), 3))


def test_distribution_runs_and_pending_written_answers(examples_gradebook):
    spec, examples, tables = examples_gradebook["spec"], examples_gradebook["examples"], examples_gradebook["tables"]
    totals = {ex.student_id: ex.expected_auto(spec) for ex in examples} | dict.fromkeys(EXTRA, 0.0)
    want = pd.Series(list(totals.values())).value_counts().sort_index()  # no written answer is graded yet
    dist = tables["distribution"]
    assert [float(x) for x in dist["total"]] == list(want.index)
    assert [int(x) for x in dist["students"]] == list(want.values)
    runs = tables["runs"].set_index("student_id")
    assert len(runs) == len(examples) + len(EXTRA)
    for s, status in EXTRA.items():
        assert runs.loc[s, "status"] == status
    assert runs.loc["kernel_killer", "limit"] == "died" and set(runs.drop(index="kernel_killer")["limit"]) == {""}
    assert all(float(x) >= 0 for x in runs["seconds"])
    # Written answers wait for a human in every submission that ran and changed the answer cell (the blank
    # release's unchanged cell is scored 0 by nbgrader; submissions that never ran score 0).
    written = [c.grade_id for c in spec.written]
    waiting = sorted({ex.student_id for ex in examples if ex.kind != "blank"} | {"kernel_killer"})
    pending = tables["pending"]
    assert sorted(zip(pending["student_id"], pending["question"], strict=True)) == sorted(
        (s, q) for s in waiting for q in written)


def test_page_embeds_the_plots_and_escapes_messages(examples_gradebook):
    page = examples_gradebook["html"]
    assert page.count('src="data:image/png;base64,') == 4  # distribution, pass rates, fail together, time
    for heading in ("Distribution of total scores", "Pass rate per test", "Most common failure messages per test",
                    "Tests that fail together", "Time and limits per submission", "Written answers waiting"):
        assert heading in page
    assert "add(&lt;n&gt;, &lt;n&gt;): expected &lt;n&gt;, got &lt;n&gt;" in page


# ----------------------------------------------------------------------------- units
@pytest.mark.parametrize("raw, norm", [
    ("mask_loss on the Q4 example: expected 0.39, got 0.325", "mask_loss on the Q4 example: expected <n>, got <n>"),
    ("expected shape (B, T, V) = (2, 5, 7), got (2, 7)", "expected shape (B, T, V) = (<n>, <n>, <n>), got (<n>, <n>)"),
    ("got -1.5e-05 at index 3", "got <n> at index <n>"),
    ("d_h2 in test_q2 with float64 of 1E+3", "d_h2 in test_q2 with float64 of <n>"),
    ("object at 0x7f3a2b  moved", "object at <addr> moved"),
])
def test_normalise_message(raw, norm):
    assert normalise_message(raw) == norm


@pytest.mark.parametrize("status, message, limit", [
    ("limit", "the time limit per cell (60 s) was hit in cell 9 (test_x); the cells after it were not run", "cell_timeout"),
    ("limit", "the time limit per notebook (600 s) was hit in cell 3; the cells after it were not run", "notebook_timeout"),
    ("limit", "the memory limit (2 GiB) was hit in cell 4", "memory"),
    ("limit", "the output limit per cell (1 MiB) was hit in cell 2", "output"),
    ("error", "a cell ran longer than the 60.0 s limit per cell", "cell_timeout"),
    ("error", "nbgrader could not grade this notebook: boom", ""),
    ("ok", "", ""),
])
def test_limit_of(status, message, limit):
    assert limit_of(status, message) == limit


def _gradebook(tmp_path):
    """Three students, two tests (2 points each) and a written answer: partial credit, a time limit."""
    g = tmp_path / "graded"
    g.mkdir()
    rows = [("ann", "t1", 2), ("ann", "t2", 1), ("ann", "w", None),
            ("bob", "t1", 0), ("bob", "t2", 0), ("bob", "w", 4),
            ("cid", "t1", 0), ("cid", "t2", 0), ("cid", "w", 0)]
    pd.DataFrame([{"student_id": s, "safe_id": s, "assignment": "a", "question": q, "score": v,
                   "max_score": 4.0 if q == "w" else 2.0} for s, q, v in rows]).to_csv(g / "grades.csv", index=False)
    pd.DataFrame([{"question": "t1", "kind": "test", "max_score": 2.0}, {"question": "t2", "kind": "test", "max_score": 2.0},
                  {"question": "w", "kind": "written", "max_score": 4.0}]).to_csv(g / "summary.csv", index=False)
    pd.DataFrame([{"student_id": s, "safe_id": s, "auto_score": a, "auto_max": 4.0, "manual_score": m, "manual_max": 4.0,
                   "pending_manual": p, "total": a + m, "max_total": 8.0, "status": st, "message": ""}
                  for s, a, m, p, st in [("ann", 3.0, 0.0, 1, "ok"), ("bob", 0.0, 4.0, 0, "limit"),
                                         ("cid", 0.0, 0.0, 0, "missing")]]).to_csv(g / "totals.csv", index=False)
    pd.DataFrame([{"student_id": "ann", "safe_id": "ann", "status": "ok", "seconds": 3.5, "message": "", "folder": "ann", "key": ""},
                  {"student_id": "bob", "safe_id": "bob", "status": "limit", "seconds": 61.0,
                   "message": "the time limit per cell (60 s) was hit in cell 5 (t1); the cells after it were not run",
                   "folder": "bob", "key": ""},
                  {"student_id": "cid", "safe_id": "cid", "status": "missing", "seconds": 0.0,
                   "message": "no notebook in cid/", "folder": "cid", "key": ""}]).to_csv(g / "grading_log.csv", index=False)
    return g


def test_partial_credit_limits_and_not_run_in_a_small_gradebook(tmp_path):
    g = _gradebook(tmp_path)
    msgs = {"ann": {"t2": "CheckFailed: <script>x</script> 1 of 3 wrong"}, "bob": {"t1": "GradingLimit: time limit"}}
    rep = build_report(g, "a", messages=msgs)
    t = rep.tests.set_index("question")
    assert (t.loc["t1", "ran"], t.loc["t1", "passed"], t.loc["t1", "failed"], t.loc["t1", "not_run"]) == (2, 1, 1, 1)
    assert (t.loc["t2", "passed"], t.loc["t2", "partial"], t.loc["t2", "failed"]) == (0, 1, 1)
    assert t.loc["t1", "pass_rate"] == 0.5 and t.loc["t2", "pass_rate"] == 0.0  # cid never ran: not counted
    assert t.loc["t2", "mean_score"] == 0.5
    f = rep.failures.set_index(["question", "student_ids"])
    assert f.loc[("t2", "bob"), "message"] == NOT_REACHED and f.loc[("t1", "bob"), "message"] == "GradingLimit: time limit"
    assert f.loc[("t2", "ann"), "message"] == "CheckFailed: <script>x</script> <n> of <n> wrong"
    assert list(rep.cofailures[["test_a", "test_b", "both"]].iloc[0]) == ["t1", "t2", 1]  # bob only
    assert rep.runs.set_index("student_id").loc["bob", "limit"] == "cell_timeout"
    assert list(rep.pending.itertuples(index=False, name=None)) == [("ann", "w", 4.0)]
    assert list(rep.distribution["total"]) == [0.0, 3.0, 4.0]
    rep2 = build_report(g, "a", messages={})
    assert rep2.failures.set_index(["question", "student_ids"]).loc[("t2", "ann"), "message"] == NO_MESSAGE
    _, page = make_report(g, "a", out=tmp_path / "r")
    assert "<script>x</script>" not in page.read_text()  # messages are data, never markup


def test_a_folder_that_was_never_graded_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(GradingError, match="grades.csv does not exist: grade the assignment first"):
        build_report(tmp_path, "a")
    assert cli.main(["--workdir", str(tmp_path), "report", "toy"]) == 2
    assert "course autograde" in capsys.readouterr().err
