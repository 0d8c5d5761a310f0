"""``course report ASSIGNMENT``: what the class got wrong, from the gradebook ``course autograde`` wrote.

It reads the graded folder (``WORKDIR/<assignment>/``: ``grades.csv``, ``totals.csv``,
``summary.csv``, ``grading_log.csv`` and the executed notebooks in ``autograded/``, see
:mod:`.reports`) and writes ``report/`` next to them:

- ``report.html``: one page, the plots embedded (PNG, matplotlib), the tables below them;
- ``scores.csv``: one row per student (status, automatic, written and total points);
  ``distribution.csv``: how many students got each total;
- ``tests.csv``: per test cell, among the submissions that ran: passed, partial, failed, pass rate;
  submissions that never ran (no notebook, corrupt, refused, an error) are counted in ``not_run``;
- ``failures.csv``: per test, its failure messages grouped once their numbers are normalised
  (``expected 0.39, got 0.325`` and ``expected 0.39, got 0.41`` are one group,
  ``expected <n>, got <n>``: :func:`normalise_message`), most common first, with one message as it
  was and the students who got it;
- ``cofailures.csv``: which tests fail together: for each pair of tests that fail in the same
  submission, how many submissions fail both, each one, and the Jaccard index (both / either);
- ``runs.csv``: per submission, its grading status, seconds, and the limit it hit
  (``cell_timeout``, ``notebook_timeout``, ``memory``, ``processes``, ``output``, ``file``, ``died``;
  from ``grading_log.csv``);
- ``pending.csv``: the written answers still waiting for a human (student, question, points).

A failed test's message is the hint its feedback page shows (:func:`.feedback.hint_for`): the
exception's type and message, never the test's code. Nothing here re-runs a notebook.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from .errors import GradingError
from .feedback import test_messages
from .reports import GRADED_STATUSES, read_log, write_csv

REPORT_DIR = "report"
# Numbers inside a message, as written by Python, NumPy and torch: 3, -0.325, 1e-05, 2.5E+3, .5
# (not the digits of a name such as Q4, test_q2 or d_h2, nor a hexadecimal address).
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w])")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
NO_MESSAGE = "(no error message: the test lost points without raising)"
NOT_REACHED = "(not run: the notebook stopped at a limit before this test)"
# Limits a grading_log.csv message names (see .sandbox.Limits.describe and .worker.failure_reason).
_LIMITS = [("cell_timeout", ("time limit per cell", "longer than the")), ("notebook_timeout", ("time limit per notebook",)),
           ("memory", ("memory limit",)), ("processes", ("process limit",)), ("output", ("output limit",)),
           ("file", ("file size limit",)), ("died", ("kernel died", "kernel could not be started"))]

SCORES_COLUMNS = ["student_id", "status", "auto_score", "auto_max", "manual_score", "manual_max", "pending_manual",
                  "total", "max_total"]
DISTRIBUTION_COLUMNS = ["total", "students", "share"]
TESTS_COLUMNS = ["question", "points", "ran", "passed", "partial", "failed", "not_run", "pass_rate", "mean_score"]
FAILURES_COLUMNS = ["question", "message", "students", "share_of_failures", "example", "student_ids"]
COFAILURES_COLUMNS = ["test_a", "test_b", "both", "a_failed", "b_failed", "jaccard"]
RUNS_COLUMNS = ["student_id", "folder", "status", "seconds", "limit", "message"]
PENDING_COLUMNS = ["student_id", "question", "max_score"]


def normalise_message(message: str) -> str:
    """``message`` with every number replaced by ``<n>`` (and addresses by ``<addr>``), whitespace
    collapsed: failures that differ only in the values they print fall into one group."""
    text = _HEX.sub("<addr>", str(message))
    text = _NUMBER.sub("<n>", text)
    return " ".join(text.split())


def limit_of(status: str, message: str) -> str:
    """The limit a grading-log row names (``""``: none)."""
    if status not in ("limit", "error"):
        return ""
    low = str(message).lower()
    for name, needles in _LIMITS:
        if any(n in low for n in needles):
            return name
    return "other" if status == "limit" else ""


@dataclass
class ClassReport:
    """The tables of one assignment's class report (each one a CSV of ``report/``)."""

    assignment: str
    scores: pd.DataFrame
    distribution: pd.DataFrame
    tests: pd.DataFrame
    failures: pd.DataFrame
    cofailures: pd.DataFrame
    runs: pd.DataFrame
    pending: pd.DataFrame
    failed_sets: dict[str, set[str]] = field(default_factory=dict)  # test -> students whose run failed it

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"scores": self.scores, "distribution": self.distribution, "tests": self.tests,
                "failures": self.failures, "cofailures": self.cofailures, "runs": self.runs, "pending": self.pending}


# ----------------------------------------------------------------------------- reading the gradebook
def _read(graded: Path, name: str, **kw) -> pd.DataFrame:
    path = graded / name
    if not path.is_file():
        raise GradingError(f"{path} does not exist: grade the assignment first (course autograde ASSIGNMENT "
                           "SUBMISSIONS), or give the graded folder with --graded.")
    return pd.read_csv(path, keep_default_na=False, **kw)


def _num(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.replace("", None), errors="coerce")


def build_report(graded: Path | str, assignment: str | None = None, *, messages: dict | None = None) -> ClassReport:
    """The class report of the graded folder ``graded`` (``WORKDIR/<assignment>``).

    ``messages``: ``{student_id: {question: hint}}`` to use instead of reading the executed
    notebooks in ``graded/autograded/`` (tests)."""
    graded = Path(graded)
    ids = {"student_id": str, "safe_id": str, "question": str}
    grades = _read(graded, "grades.csv", dtype=ids)
    grades["score"] = _num(grades["score"])
    grades["max_score"] = _num(grades["max_score"])
    totals = _read(graded, "totals.csv", dtype={"student_id": str, "safe_id": str, "status": str})
    summary = _read(graded, "summary.csv", dtype={"question": str, "kind": str})
    log = read_log(graded / "grading_log.csv") if (graded / "grading_log.csv").is_file() else None
    if log is None:
        raise GradingError(f"{graded / 'grading_log.csv'} does not exist: grade the assignment first.")
    name = assignment or (str(grades["assignment"].iloc[0]) if len(grades) else graded.name)

    tests = [q for q, k in zip(summary["question"], summary["kind"], strict=True) if k == "test"]
    written = [q for q, k in zip(summary["question"], summary["kind"], strict=True) if k != "test"]
    points = dict(zip(summary["question"], _num(summary["max_score"]), strict=True))
    status = dict(zip(log["student_id"], log["status"], strict=True))
    safe = dict(zip(grades["student_id"], grades["safe_id"], strict=False))
    students = sorted(set(totals["student_id"]))
    ran = [s for s in students if status.get(s, "") in GRADED_STATUSES]

    scores = totals.copy()
    for c in ("auto_score", "auto_max", "manual_score", "manual_max", "total", "max_total"):
        scores[c] = _num(scores[c]).astype(float)
    scores["pending_manual"] = _num(scores["pending_manual"]).fillna(0).astype(int)
    scores = scores[SCORES_COLUMNS].sort_values(["total", "student_id"], ascending=[False, True]).reset_index(drop=True)
    dist = scores.groupby("total").size().rename("students").reset_index()
    dist["share"] = (dist["students"] / max(len(scores), 1)).round(3)
    dist = dist.sort_values("total").reset_index(drop=True)[DISTRIBUTION_COLUMNS]

    score_of = {(s, q): v for s, q, v in zip(grades["student_id"], grades["question"], grades["score"], strict=True)}
    test_rows, failed_sets = [], {}
    for q in tests:
        pts = float(points[q])
        vals = {s: score_of.get((s, q)) for s in ran}
        vals = {s: (0.0 if v is None or pd.isna(v) else float(v)) for s, v in vals.items()}
        passed = [s for s, v in vals.items() if v >= pts - 1e-9]
        failed = [s for s, v in vals.items() if v <= 0 and pts > 0]
        partial = [s for s, v in vals.items() if 0 < v < pts - 1e-9]
        failed_sets[q] = set(failed) | set(partial)
        test_rows.append({"question": q, "points": pts, "ran": len(vals), "passed": len(passed),
                          "partial": len(partial), "failed": len(failed), "not_run": len(students) - len(ran),
                          "pass_rate": round(len(passed) / len(vals), 3) if vals else None,
                          "mean_score": round(sum(vals.values()) / len(vals), 3) if vals else None})
    tests_df = pd.DataFrame(test_rows, columns=TESTS_COLUMNS)

    if messages is None:
        messages = {s: test_messages(graded / "autograded" / f"{safe.get(s, s)}.ipynb")
                    for s in ran if any(s in failed_sets[q] for q in tests)}
    fail_rows = []
    for q in tests:
        groups: dict[str, list[tuple[str, str]]] = {}
        for s in sorted(failed_sets[q]):
            raw = messages.get(s, {}).get(q)
            if not raw:
                raw = NOT_REACHED if status.get(s) == "limit" else NO_MESSAGE
            groups.setdefault(normalise_message(raw), []).append((s, raw))
        for msg, members in groups.items():
            fail_rows.append({"question": q, "message": msg, "students": len(members),
                              "share_of_failures": round(len(members) / len(failed_sets[q]), 3),
                              "example": members[0][1], "student_ids": "; ".join(s for s, _ in members)})
    failures = pd.DataFrame(fail_rows, columns=FAILURES_COLUMNS)
    if len(failures):
        order = {q: i for i, q in enumerate(tests)}
        failures = (failures.assign(_o=failures["question"].map(order))
                    .sort_values(["_o", "students", "message"], ascending=[True, False, True])
                    .drop(columns="_o").reset_index(drop=True))

    co_rows = []
    for a, b in itertools.combinations(tests, 2):
        both = failed_sets[a] & failed_sets[b]
        if both:
            either = failed_sets[a] | failed_sets[b]
            co_rows.append({"test_a": a, "test_b": b, "both": len(both), "a_failed": len(failed_sets[a]),
                            "b_failed": len(failed_sets[b]), "jaccard": round(len(both) / len(either), 3)})
    cofailures = pd.DataFrame(co_rows, columns=COFAILURES_COLUMNS)
    if len(cofailures):
        cofailures = cofailures.sort_values(["both", "jaccard", "test_a", "test_b"],
                                            ascending=[False, False, True, True]).reset_index(drop=True)

    runs = log[["student_id", "folder", "status", "seconds", "message"]].copy()
    runs["limit"] = [limit_of(st, m) for st, m in zip(runs["status"], runs["message"], strict=True)]
    runs = runs[RUNS_COLUMNS].sort_values(["seconds", "student_id"], ascending=[False, True]).reset_index(drop=True)

    is_written = grades["question"].isin(written)
    pending = grades.loc[is_written & grades["score"].isna(), ["student_id", "question", "max_score"]]
    order = {q: i for i, q in enumerate(written)}
    pending = (pending.assign(_o=pending["question"].map(order)).sort_values(["_o", "student_id"])
               .drop(columns="_o").reset_index(drop=True))[PENDING_COLUMNS]
    return ClassReport(name, scores, dist, tests_df, failures, cofailures, runs, pending, failed_sets)


# ----------------------------------------------------------------------------- plots
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def plot_distribution(rep: ClassReport) -> str:
    fig = _figure(6, 3)
    ax = fig.add_subplot()
    d = rep.distribution
    max_total = float(rep.scores["max_total"].max()) if len(rep.scores) else 0.0
    ax.bar(d["total"], d["students"], width=max(max_total / 40, 0.4), color="#4472c4")
    ax.set_xlabel(f"total points (of {max_total:g})")
    ax.set_ylabel("students")
    ax.set_xlim(-max_total * 0.03 - 0.5, max_total * 1.03 + 0.5)
    ax.set_title("Distribution of total scores")
    return _png(fig)


def plot_pass_rates(rep: ClassReport) -> str:
    t = rep.tests
    fig = _figure(6, 0.3 * len(t) + 1)
    ax = fig.add_subplot()
    rates = t["pass_rate"].fillna(0).astype(float)
    ax.barh(t["question"][::-1], rates[::-1], color="#70ad47")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the submissions that ran which pass the test")
    ax.set_title("Pass rate per test")
    return _png(fig)


def plot_cofailures(rep: ClassReport) -> str | None:
    tests = [q for q in rep.tests["question"] if rep.failed_sets.get(q)]
    if len(tests) < 2:
        return None
    import numpy as np

    m = np.array([[len(rep.failed_sets[a] & rep.failed_sets[b]) for b in tests] for a in tests])
    fig = _figure(0.35 * len(tests) + 2.5, 0.35 * len(tests) + 1.5)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Reds", vmin=0)
    ax.set_xticks(range(len(tests)), tests, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tests)), tests, fontsize=7)
    fig.colorbar(im, ax=ax, label="submissions failing both")
    ax.set_title("Tests that fail together")
    return _png(fig)


def plot_runs(rep: ClassReport) -> str:
    r = rep.runs.sort_values("seconds")
    fig = _figure(6, 0.22 * len(r) + 1)
    ax = fig.add_subplot()
    colours = {"ok": "#4472c4", "limit": "#ed7d31"}
    ax.barh(r["student_id"], r["seconds"].fillna(0), color=[colours.get(s, "#c00000") for s in r["status"]])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("seconds to grade (blue: ok, orange: stopped at a limit, red: not graded)")
    ax.set_title("Time per submission")
    return _png(fig)


# ----------------------------------------------------------------------------- writing
@functools.lru_cache(maxsize=1)
def _template():
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("course_lib.grading", "templates"),
                             autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["esc"] = lambda value: Markup(html.escape(str(value)))
    return env.get_template("class_report.html.j2")


def _html_table(df: pd.DataFrame, limit: int | None = None) -> list[dict]:
    rows = df if limit is None else df.head(limit)
    return [{c: ("" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else v)) for c, v in r.items()}
            for r in rows.to_dict("records")]


def report_html(rep: ClassReport, top_messages: int = 5) -> str:
    s = rep.scores
    stats = {"students": len(s), "mean": round(float(s["total"].mean()), 2) if len(s) else 0,
             "median": float(s["total"].median()) if len(s) else 0, "max_total": float(s["max_total"].max()) if len(s) else 0,
             "ran": int(rep.runs["status"].isin(GRADED_STATUSES).sum()),
             "limits": int((rep.runs["limit"] != "").sum()), "pending": len(rep.pending),
             "median_seconds": float(rep.runs["seconds"].median()) if len(rep.runs) else 0,
             "max_seconds": float(rep.runs["seconds"].max()) if len(rep.runs) else 0}
    per_test = []
    for q in rep.tests["question"]:
        f = rep.failures[rep.failures["question"] == q]
        if len(f):
            per_test.append({"question": q, "failed": len(rep.failed_sets.get(q, ())),
                             "rows": _html_table(f[["students", "message", "example"]], top_messages),
                             "more": max(len(f) - top_messages, 0)})
    pending_by_q = (rep.pending.groupby("question").size().rename("students").reset_index()
                    if len(rep.pending) else pd.DataFrame(columns=["question", "students"]))
    return _template().render(
        name=rep.assignment, stats=stats,
        plots={"distribution": plot_distribution(rep), "pass_rates": plot_pass_rates(rep) if len(rep.tests) else None,
               "cofailures": plot_cofailures(rep), "runs": plot_runs(rep) if len(rep.runs) else None},
        tests=_html_table(rep.tests), per_test=per_test, cofailures=_html_table(rep.cofailures, 15),
        runs=_html_table(rep.runs[rep.runs["status"] != "ok"]), pending=_html_table(pending_by_q),
        pending_rows=_html_table(rep.pending))


def write_report(rep: ClassReport, out: Path | str) -> Path:
    """Every table of ``rep`` as ``out/<table>.csv`` and the page ``out/report.html``; returns the page."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for table, df in rep.tables().items():
        write_csv(df, out / f"{table}.csv")
    page = out / "report.html"
    atomic_write_text(page, report_html(rep))
    return page


def summary_lines(rep: ClassReport, top: int = 3) -> list[str]:
    """A few lines for the terminal: the class's totals, the hardest tests, the limits, the waiting answers."""
    s, t = rep.scores, rep.tests
    lines = [f"{len(s)} students: total mean {s['total'].mean():.2f}, median {s['total'].median():g} "
             f"(of {s['max_total'].max():g})" if len(s) else "no students in the gradebook"]
    hard = t.dropna(subset=["pass_rate"]).sort_values(["pass_rate", "question"]).head(top)
    for r in hard.to_dict("records"):
        f = rep.failures[rep.failures["question"] == r["question"]]
        common = f" most common failure: {f.iloc[0]['message'][:90]}" if len(f) else ""
        lines.append(f"  {r['question']}: pass rate {r['pass_rate']:.0%} ({r['passed']}/{r['ran']});{common}")
    if len(rep.cofailures):
        c = rep.cofailures.iloc[0]
        lines.append(f"  most often failed together: {c['test_a']} and {c['test_b']} ({c['both']} submissions)")
    hit = rep.runs[rep.runs["limit"] != ""]
    lines.append(f"  {len(hit)} submission(s) hit a limit" + (": " + ", ".join(f"{a} ({b})" for a, b in
                                                                       zip(hit["student_id"], hit["limit"], strict=True))
                                                          if len(hit) else ""))
    lines.append(f"  {len(rep.pending)} written answer(s) wait for a human (course formgrade {rep.assignment})")
    return lines


def make_report(graded: Path | str, assignment: str | None = None, out: Path | str | None = None) -> tuple[ClassReport, Path]:
    """Build and write the report of ``graded`` into ``out`` (default ``graded/report``)."""
    rep = build_report(graded, assignment)
    page = write_report(rep, Path(out) if out else Path(graded) / REPORT_DIR)
    return rep, page
