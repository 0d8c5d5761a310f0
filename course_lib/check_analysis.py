"""``course check``, step 3: what the run says about each test cell, written answer and read-only cell.

:func:`analyse` turns the :class:`~course_lib.check_kernel.CellRun` of every code cell into a
:class:`Report`: one :class:`CheckedTest` per test cell (passed, failed with the check's message,
error, not answered, not run, edited, or missing, and what it is worth), one :class:`WrittenAnswer`
per written answer (filled or still ``YOUR ANSWER HERE``), the other cells that raised, and warnings
for read-only cells that were edited or deleted. It reads cell sources and nbgrader metadata only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .check_kernel import CellRun, first_line

# nbgrader's cell rules (is_grade, is_solution, is_locked, compute_checksum), from a module that
# needs no nbgrader: checking a notebook does not need the grading tools installed.
from .grading.cells import (
    compute_checksum,
    grade_id,
    is_answer_cell,
    is_locked,
    is_solution,
    is_test_cell,
    is_written_answer,
    nbgrader,
    points,
    tested_name,
)

ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"
NOT_IMPLEMENTED_RE = re.compile(r"^[ \t]*raise[ \t]+NotImplementedError\b", re.M)
HEADING_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$")
BOLD_LABEL_RE = re.compile(r"^\s*\*\*(.+?)\*\*")
FAILED_NAMES = {"AssertionError", "CheckFailed"}  # a check said no (CheckFailed is an AssertionError)

# statuses of a test cell
PASSED, FAILED, ERROR, NOT_ANSWERED, NOT_RUN, EDITED, MISSING = (
    "passed", "failed", "error", "not answered", "not run", "edited", "missing")
LABELS = {PASSED: "passed", FAILED: "FAILED", ERROR: "ERROR", NOT_ANSWERED: "not answered", NOT_RUN: "not run",
          EDITED: "edited", MISSING: "missing"}

HIDDEN_NOTE = "hidden tests run at grading"

__all__ = ["CheckedTest", "WrittenAnswer", "Report", "analyse", "PASSED", "FAILED", "ERROR", "NOT_ANSWERED",
           "NOT_RUN", "EDITED", "MISSING", "LABELS", "HIDDEN_NOTE", "ANSWER_PLACEHOLDER"]


# ----------------------------------------------------------------------------- the report
@dataclass
class CheckedTest:
    """One test cell as ``course check`` saw it run in the student's kernel (not the grader's verdict)."""

    test_id: str
    tests: str  # the answer (function, class or variable) it tests
    question: str
    points: float
    status: str
    message: str = ""
    cell: int | None = None


@dataclass
class WrittenAnswer:
    grade_id: str
    question: str
    points: float
    filled: bool
    cell: int | None = None


@dataclass
class Report:
    notebook: str
    mode: str
    experiments: str
    seconds: float
    tests: list[CheckedTest] = field(default_factory=list)
    written: list[WrittenAnswer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cell_errors: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        passed = [t for t in self.tests if t.status == PASSED]
        s = {
            "tests_passed": len(passed), "tests_total": len(self.tests),
            "written_filled": sum(w.filled for w in self.written), "written_total": len(self.written),
        }
        # The public checks are not the grade: the grader also runs hidden tests, so no score is shown.
        s["line"] = (f"public checks: {s['tests_passed']}/{s['tests_total']} passed; {HIDDEN_NOTE}; "
                     f"written answers: {s['written_filled']}/{s['written_total']} filled")
        return s

    @property
    def exit_code(self) -> int:
        return 0 if self.tests and all(t.status == PASSED for t in self.tests) else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["summary"] = self.summary()
        d["exit_code"] = self.exit_code
        return d



# ----------------------------------------------------------------------------- structure
def _question_labels(cells) -> list[str]:
    """The heading in force at each cell (a cell's own heading counts from the next cell on)."""
    labels, current = [], ""
    for cell in cells:
        labels.append(current)
        if cell.get("cell_type") == "markdown" and not is_solution(cell):
            fenced = False
            for line in cell.get("source", "").splitlines():
                if line.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                    continue
                m = None if fenced else HEADING_RE.match(line)
                if m:
                    current = m.group(1).strip()
    return labels


def _written_label(cells, i: int, heading: str) -> str:
    """A written answer's question: the heading, plus the bold label of the question just above it."""
    for j in range(i - 1, -1, -1):
        c = cells[j]
        if c.get("cell_type") != "markdown" or is_solution(c):
            continue
        text = c.get("source", "")
        lines = [ln for ln in text.splitlines() if ln.strip() and not HEADING_RE.match(ln)]
        m = BOLD_LABEL_RE.match(lines[0]) if lines else None
        if m and m.group(1).strip() not in heading:
            return f"{heading} / {m.group(1).strip()}" if heading else m.group(1).strip()
        break
    return heading


def _target(test_id: str, names) -> str:
    """The answer a test belongs to (:func:`tested_name`), or the test's name without ``test_`` when none is."""
    return tested_name(test_id, names) or (test_id[5:] if test_id.startswith("test_") else test_id)


def _not_answered(cell) -> bool:
    """An answer cell that still raises NotImplementedError (the release's placeholder)."""
    return bool(NOT_IMPLEMENTED_RE.search(cell.get("source", "")))


def _blank(cell) -> bool:
    text = cell.get("source", "")
    return not text.strip() or ANSWER_PLACEHOLDER in text


# ----------------------------------------------------------------------------- analysis
def analyse(nb, runs: dict[int, CellRun], *, path: Path, seconds: float, fast: bool, run_experiments: bool,
            reference=None) -> Report:
    """Turn the executed cells into per-test results, written-answer status and warnings."""
    cells = nb.cells
    questions = _question_labels(cells)
    answers = {grade_id(c): i for i, c in enumerate(cells) if is_answer_cell(c) and grade_id(c)}
    report = Report(notebook=str(path), mode="fast" if fast else "full",
                    experiments="run" if run_experiments else "skipped", seconds=round(seconds, 1))
    edited = _edited_cells(cells, report.warnings)
    for i, c in enumerate(cells):
        if is_test_cell(c):
            report.tests.append(_checked_test(cells, i, questions[i], runs.get(i, CellRun("not run")), answers,
                                              edited=i in edited))
        elif is_written_answer(c):
            report.written.append(WrittenAnswer(grade_id(c), _written_label(cells, i, questions[i]), points(c),
                                                not _blank(c), cell=i))
        elif (c.cell_type == "code" and runs.get(i) and runs[i].status in ("error", "timeout", "died")
              and not (is_answer_cell(c) and _not_answered(c))):
            r = runs[i]
            report.cell_errors.append({"cell": i, "grade_id": grade_id(c) or None, "question": questions[i],
                                       "first_line": first_line(c.source, 80),
                                       "error": f"{r.ename}: {first_line(r.evalue)}".rstrip(": ")})
    _report_missing_cells(report, cells, answers, reference)
    return report


def _edited_cells(cells, warnings: list[str]) -> set[int]:
    """Indices of read-only cells whose checksum no longer matches (a warning for each)."""
    edited: set[int] = set()
    for i, c in enumerate(cells):
        checksum = nbgrader(c).get("checksum")
        if not checksum or not is_locked(c):
            continue
        try:
            same = compute_checksum(c) == checksum
        except (KeyError, TypeError, ValueError, AttributeError):
            same = False
        if not same:
            edited.add(i)
            what = "test cell" if is_test_cell(c) else "read-only cell"
            warnings.append(
                f"{grade_id(c)}: this {what} was edited; the original is restored at grading"
                + (", so its result here is not the one the grader will see. Undo your change to see the real result"
                   if is_test_cell(c) else "") + ".")
    return edited


def _checked_test(cells, i: int, question: str, run: CellRun, answers: dict[str, int], *, edited: bool) -> CheckedTest:
    """Test cell ``i`` as its run in the student's kernel left it."""
    c = cells[i]
    tid = grade_id(c)
    target = _target(tid, answers)
    t = CheckedTest(tid, target, question, points(c), NOT_RUN, cell=i)
    answer = cells[answers[target]] if target in answers else None
    unanswered = answer is not None and _not_answered(answer)
    if run.status == "ok":
        t.status = PASSED
    elif run.status in ("not run", "skipped"):
        t.status, t.message = NOT_RUN, "the kernel stopped before this cell" if run.status == "not run" else ""
    elif unanswered or run.ename == "NotImplementedError":
        t.status, t.message = NOT_ANSWERED, f"{target} still raises NotImplementedError: write your answer in its cell"
    elif run.status == "error" and run.ename in FAILED_NAMES:
        t.status, t.message = FAILED, first_line(run.evalue) or "a check failed"
    else:
        msg = first_line(run.evalue)
        t.status, t.message = ERROR, f"{run.ename}: {msg}" if msg else run.ename
    if answer is None and target not in answers and t.status != PASSED:
        t.message = (f"the answer cell for {target} is missing from the notebook; " + t.message).rstrip("; ")
    if edited:
        outcome = "passed" if t.status == PASSED else f"{LABELS[t.status]}" + (f": {t.message}" if t.message else "")
        t.status, t.message = EDITED, f"you edited this test cell (the original is restored at grading); your copy {outcome}"
    return t


def _report_missing_cells(report: Report, cells, answers: dict[str, int], reference) -> None:
    """Graded or read-only cells of the assignment that are not in this notebook (needs the course's copy;
    without it, only answers left without any test)."""
    if reference is None:
        tested = {t.tests for t in report.tests}
        for name in answers:
            if name not in tested:
                report.warnings.append(f"{name}: no test cell for this answer is left in the notebook (deleted?); "
                                       "the tests are put back at grading.")
        return
    present = {grade_id(c) for c in cells if grade_id(c)}
    ref_questions = _question_labels(reference.cells)
    ref_answers = [grade_id(c) for c in reference.cells if is_answer_cell(c)]
    for j, c in enumerate(reference.cells):
        gid = grade_id(c)
        if not gid or gid in present:
            continue
        if is_test_cell(c):
            report.tests.append(CheckedTest(gid, _target(gid, ref_answers), ref_questions[j], points(c), MISSING,
                                            "this test cell was deleted; it is put back at grading"))
            report.warnings.append(f"{gid}: this test cell is missing (deleted?); it is put back at grading.")
        elif is_written_answer(c):
            report.written.append(WrittenAnswer(gid, _written_label(reference.cells, j, ref_questions[j]),
                                                points(c), False))
            report.warnings.append(f"{gid}: this written-answer cell is missing (deleted?); it is put back "
                                   "empty at grading and scores 0.")
        elif is_answer_cell(c):
            report.warnings.append(f"{gid}: this answer cell is missing (deleted?); its tests fail at grading "
                                   "(answer cells are not put back).")
        elif is_locked(c):
            report.warnings.append(f"{gid}: this read-only cell is missing (deleted?); it is put back at grading.")
