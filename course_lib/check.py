"""Check your notebook before you submit: run its public checks and summarise them per question.

``course check path/to/rnn_lm.ipynb`` (or ``python -m course_lib.check path/to/rnn_lm.ipynb``, which
needs only ``nbformat``, ``nbclient`` and ``ipykernel``, not the grading tools) runs a copy of the
notebook top to bottom in a fresh kernel, in the notebook's own folder, and prints one line per
test cell's public checks: passed, failed (with the check's message), error, not answered, or not
run, and what the test is worth. It does not stop at the first error, so every test gets a result,
and it never writes to the notebook. It ends with e.g. ``public checks: 19/19 passed; hidden tests
run at grading; written answers: 25/27 filled``: it shows no score, because the public checks are
not the grade.

- Fast mode (``COURSE_FAST=1``) by default, as when grading; ``--full`` turns it off.
- Cells tagged ``experiment`` (training runs) are skipped; ``--run-experiments`` runs them too.
- ``--timeout S`` limits each cell (default 120 s; 0 for no limit).
- Written answers (graded by hand) still saying ``YOUR ANSWER HERE`` are listed.
- Read-only cells (tests, questions, helpers) that were edited or deleted are reported: the
  grader restores them, so an edited test shows as "edited" (not passed) whatever your copy does.
- ``--json`` prints the results as JSON.

Exit status: 0 when every public check passed, 1 otherwise, 2 when the notebook cannot be read.
The grader also runs hidden tests, so passing the public checks is necessary, not sufficient.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# nbgrader's cell rules (is_grade, is_solution, is_locked, compute_checksum), from a module that
# needs no nbgrader: checking a notebook does not need the grading tools installed.
from .grading.cells import compute_checksum, is_answer_cell, is_experiment, is_locked
from .grading.cells import grade_id as _grade_id
from .grading.cells import is_solution, is_test_cell, is_written_answer
from .grading.cells import nbgrader as _nbg
from .grading.cells import points as _points

DEFAULT_TIMEOUT = 120.0  # seconds per cell (fast-mode cells take seconds)
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

__all__ = ["compute_checksum", "check_notebook", "format_report", "main", "NotebookUnreadable"]


class NotebookUnreadable(Exception):
    """The file is missing or is not a Jupyter notebook; the message says what to do."""


def _pts(x: float) -> str:
    return f"{x:g} pt" + ("" if x == 1 else "s")


# ----------------------------------------------------------------------------- reading
def read_notebook(path: Path):
    """The notebook at ``path`` (nbformat v4), or :class:`NotebookUnreadable` saying what to do."""
    import nbformat

    path = Path(path)
    fix = ("If it is still open in JupyterLab or Colab, save it again there (Colab: File > Download .ipynb); "
           "otherwise go back to an earlier copy (JupyterLab: File > Revert Notebook to Checkpoint), or take a "
           "fresh copy of the assignment and paste your answers into it.")
    if not path.exists():
        raise NotebookUnreadable(f"{path}: no such file. Give the path of your notebook, "
                                 f"e.g. `course check rnn_lm.ipynb`.")
    if not path.is_file():
        raise NotebookUnreadable(f"{path} is not a file. Give the path of your notebook (the .ipynb file).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookUnreadable(f"{path} cannot be read ({type(exc).__name__}: {exc}). {fix}") from None
    if not text.strip():
        raise NotebookUnreadable(f"{path} is empty: it is not a notebook. {fix}")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookUnreadable(f"{path} is not a Jupyter notebook: its JSON is damaged (line {exc.lineno}, "
                                 f"column {exc.colno}: {exc.msg}). {fix}") from None
    try:
        import logging

        logging.getLogger("traitlets").setLevel(logging.CRITICAL)  # nbformat logs schema details there
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any reason the file is not a notebook
        raise NotebookUnreadable(f"{path} is not a Jupyter notebook ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}). {fix}") from None
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw") and isinstance(c.get("source"), str)
            for c in cells):
        raise NotebookUnreadable(f"{path} is not a valid Jupyter notebook (its cells are damaged). {fix}")
    for c in cells:
        if c.get("cell_type") == "code":
            c.setdefault("outputs", [])
        c.setdefault("metadata", {})
    if not any(is_test_cell(c) for c in cells):
        raise NotebookUnreadable(
            f"{path} has no test cells (no nbgrader metadata): check it is the assignment notebook you were "
            "given, not a copy saved by a tool that drops cell metadata. Paste your answers into a fresh copy "
            "of the assignment if needed.")
    return nb


def _reference_notebook(path: Path):
    """The course's source notebook of the same assignment, when this checkout has it (else None).

    Only its cell ids, kinds and points are used: to tell which read-only cells were deleted.
    """
    import nbformat

    stem = path.stem
    if not re.fullmatch(r"[a-z][a-z0-9_]*", stem):
        return None
    roots = [os.environ.get("COURSE_ROOT", ""), str(Path(__file__).resolve().parents[1])]
    for root in filter(None, roots):
        ref = Path(root) / "notebooks" / stem / f"{stem}.ipynb"
        if ref.is_file():
            try:
                return nbformat.read(ref, as_version=4)
            except Exception:  # noqa: BLE001 - no reference then
                return None
    return None


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
    """The answer a test belongs to: the longest answer name with test_<name> or test_<name>_... ."""
    for name in sorted(names, key=len, reverse=True):
        if test_id == f"test_{name}" or test_id.startswith(f"test_{name}_"):
            return name
    return test_id[5:] if test_id.startswith("test_") else test_id


def _not_answered(cell) -> bool:
    """An answer cell that still raises NotImplementedError (the release's placeholder)."""
    return bool(NOT_IMPLEMENTED_RE.search(cell.get("source", "")))


def _blank(cell) -> bool:
    text = cell.get("source", "")
    return not text.strip() or ANSWER_PLACEHOLDER in text


# ----------------------------------------------------------------------------- execution
@dataclass
class CellRun:
    status: str  # "ok", "error", "timeout", "died", "skipped", "not run"
    ename: str = ""
    evalue: str = ""
    seconds: float = 0.0


def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class _ThisPythonKernel(AsyncKernelManager):
        """ipykernel on this interpreter (the one with course_lib installed), whatever kernels Jupyter lists."""

        @property
        def kernel_spec(self):  # type: ignore[override]
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (course check)", language="python",
                              interrupt_mode="signal", env={}, metadata={})

    return _ThisPythonKernel


def execute(nb, folder: Path, *, fast: bool = True, timeout: float | None = DEFAULT_TIMEOUT,
            run_experiments: bool = False, progress=None) -> dict[int, CellRun]:
    """Run a copy of ``nb`` cell by cell in a fresh kernel started in ``folder``; errors do not stop it.

    Returns a :class:`CellRun` per code cell index. After a cell that kills the kernel, the rest are
    "not run".
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = copy.deepcopy(nb)
    client = NotebookClient(
        nb, timeout=(timeout or None), allow_errors=True, interrupt_on_timeout=True, record_timing=False,
        kernel_manager_class=_kernel_manager_class(), resources={"metadata": {"path": str(folder)}},
        startup_timeout=120)
    env = dict(os.environ)
    env["COURSE_FAST"] = "1" if fast else "0"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    runs: dict[int, CellRun] = {}
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    dead = False
    # The kernel's own stdout/stderr carry only its log lines: what cells print reaches their outputs.
    with client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        for n, i in enumerate(code):
            cell = nb.cells[i]
            if progress:
                progress(n + 1, len(code))
            if dead:
                runs[i] = CellRun("not run")
                continue
            if is_experiment(cell) and not run_experiments:
                runs[i] = CellRun("skipped")
                continue
            if not cell.source.strip():
                runs[i] = CellRun("ok")
                continue
            cell.outputs = []
            start = time.monotonic()
            try:
                client.execute_cell(cell, i)
            except DeadKernelError:
                runs[i] = CellRun("died", "DeadKernelError", "the kernel died while running this cell "
                                  "(out of memory, or a crash)", time.monotonic() - start)
                dead = True
                continue
            except CellTimeoutError:
                runs[i] = CellRun("timeout", "Timeout", f"the cell ran longer than {timeout:g} s",
                                  time.monotonic() - start)
                continue
            seconds = time.monotonic() - start
            err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
            if err is None:
                runs[i] = CellRun("ok", seconds=seconds)
            elif timeout and seconds >= timeout and err.get("ename") == "KeyboardInterrupt":
                runs[i] = CellRun("timeout", "Timeout", f"the cell ran longer than {timeout:g} s "
                                  "(--timeout to allow more)", seconds)
            else:
                runs[i] = CellRun("error", str(err.get("ename", "Error")), _strip_ansi(str(err.get("evalue", ""))),
                                  seconds)
    return runs


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


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


def _first_line(text: str, limit: int = 300) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def analyse(nb, runs: dict[int, CellRun], *, path: Path, seconds: float, fast: bool, run_experiments: bool,
            reference=None) -> Report:
    """Turn the executed cells into per-test results, written-answer status and warnings."""
    cells = nb.cells
    questions = _question_labels(cells)
    answers = {_grade_id(c): i for i, c in enumerate(cells) if is_answer_cell(c) and _grade_id(c)}
    report = Report(notebook=str(path), mode="fast" if fast else "full",
                    experiments="run" if run_experiments else "skipped", seconds=round(seconds, 1))
    edited = _edited_cells(cells, report.warnings)
    for i, c in enumerate(cells):
        if is_test_cell(c):
            report.tests.append(_checked_test(cells, i, questions[i], runs.get(i, CellRun("not run")), answers,
                                              edited=i in edited))
        elif is_written_answer(c):
            report.written.append(WrittenAnswer(_grade_id(c), _written_label(cells, i, questions[i]), _points(c),
                                                not _blank(c), cell=i))
        elif (c.cell_type == "code" and runs.get(i) and runs[i].status in ("error", "timeout", "died")
              and not (is_answer_cell(c) and _not_answered(c))):
            r = runs[i]
            report.cell_errors.append({"cell": i, "grade_id": _grade_id(c) or None, "question": questions[i],
                                       "first_line": _first_line(c.source, 80),
                                       "error": f"{r.ename}: {_first_line(r.evalue)}".rstrip(": ")})
    _report_missing_cells(report, cells, answers, reference)
    return report


def _edited_cells(cells, warnings: list[str]) -> set[int]:
    """Indices of read-only cells whose checksum no longer matches (a warning for each)."""
    edited: set[int] = set()
    for i, c in enumerate(cells):
        checksum = _nbg(c).get("checksum")
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
                f"{_grade_id(c)}: this {what} was edited; the original is restored at grading"
                + (", so its result here is not the one the grader will see. Undo your change to see the real result"
                   if is_test_cell(c) else "") + ".")
    return edited


def _checked_test(cells, i: int, question: str, run: CellRun, answers: dict[str, int], *, edited: bool) -> CheckedTest:
    """Test cell ``i`` as its run in the student's kernel left it."""
    c = cells[i]
    tid = _grade_id(c)
    target = _target(tid, answers)
    t = CheckedTest(tid, target, question, _points(c), NOT_RUN, cell=i)
    answer = cells[answers[target]] if target in answers else None
    unanswered = answer is not None and _not_answered(answer)
    if run.status == "ok":
        t.status = PASSED
    elif run.status in ("not run", "skipped"):
        t.status, t.message = NOT_RUN, "the kernel stopped before this cell" if run.status == "not run" else ""
    elif unanswered or run.ename == "NotImplementedError":
        t.status, t.message = NOT_ANSWERED, f"{target} still raises NotImplementedError: write your answer in its cell"
    elif run.status == "error" and run.ename in FAILED_NAMES:
        t.status, t.message = FAILED, _first_line(run.evalue) or "a check failed"
    else:
        msg = _first_line(run.evalue)
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
    present = {_grade_id(c) for c in cells if _grade_id(c)}
    ref_questions = _question_labels(reference.cells)
    ref_answers = [_grade_id(c) for c in reference.cells if is_answer_cell(c)]
    for j, c in enumerate(reference.cells):
        gid = _grade_id(c)
        if not gid or gid in present:
            continue
        if is_test_cell(c):
            report.tests.append(CheckedTest(gid, _target(gid, ref_answers), ref_questions[j], _points(c), MISSING,
                                            "this test cell was deleted; it is put back at grading"))
            report.warnings.append(f"{gid}: this test cell is missing (deleted?); it is put back at grading.")
        elif is_written_answer(c):
            report.written.append(WrittenAnswer(gid, _written_label(reference.cells, j, ref_questions[j]),
                                                _points(c), False))
            report.warnings.append(f"{gid}: this written-answer cell is missing (deleted?); it is put back "
                                   "empty at grading and scores 0.")
        elif is_answer_cell(c):
            report.warnings.append(f"{gid}: this answer cell is missing (deleted?); its tests fail at grading "
                                   "(answer cells are not put back).")
        elif is_locked(c):
            report.warnings.append(f"{gid}: this read-only cell is missing (deleted?); it is put back at grading.")


def check_notebook(path, *, fast: bool = True, timeout: float | None = DEFAULT_TIMEOUT, run_experiments: bool = False,
                   progress=None) -> Report:
    """Run the public checks of the notebook at ``path`` (never modified); see the module docstring."""
    path = Path(path)
    nb = read_notebook(path)
    folder = path.resolve().parent
    start = time.monotonic()
    runs = execute(nb, folder, fast=fast, timeout=timeout, run_experiments=run_experiments, progress=progress)
    executed = copy.deepcopy(nb)  # analysis reads the student's sources; outputs come from runs
    return analyse(executed, runs, path=path, seconds=time.monotonic() - start, fast=fast,
                   run_experiments=run_experiments, reference=_reference_notebook(path))


# ----------------------------------------------------------------------------- text output
def _truncate(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 3, 1)].rstrip() + "..."


def _wrap(text: str, width: int, first: str, rest: str, max_lines: int = 2) -> list[str]:
    """``text`` on at most ``max_lines`` lines of ``width`` (cut with "..." beyond)."""
    width = max(width, len(first) + 30)
    return textwrap.wrap(" ".join(str(text).split()), width, initial_indent=first, subsequent_indent=rest,
                         max_lines=max_lines, placeholder=" ...")


def format_report(data: dict, width: int | None = None) -> str:
    """The report (``Report.to_dict()``, or the ``--json`` output) as a fixed-width table."""
    width = width or max(72, min(shutil.get_terminal_size((100, 24)).columns, 140))
    tests, written = data["tests"], data["written"]
    lines = [f"course check: {data['notebook']}",
             f"ran top to bottom in a fresh kernel in {data['seconds']:g} s "
             f"({'fast mode, COURSE_FAST=1' if data['mode'] == 'fast' else 'full mode'}; "
             f"experiment cells {'run' if data['experiments'] == 'run' else 'skipped'})", ""]
    lines.append(f"Public checks ({len(tests)} test cells; not the grade: {HIDDEN_NOTE})")
    w_res = max([len(LABELS.get(t["status"], t["status"])) for t in tests] + [len("result")])
    w_pts = max([len(_pts(t["points"])) for t in tests] + [len("worth")])
    w_name = max([len(t["tests"]) for t in tests] + [len("tests")])
    w_id = max([len(t["test_id"]) for t in tests] + [len("test id")])
    row = f"  {{:<{w_res}}}  {{:<{w_pts}}}  {{:<{w_name}}}  {{}}"
    lines.append(row.format("result", "worth", "tests", "test id"))
    lines.append(row.format("-" * w_res, "-" * w_pts, "-" * w_name, "-" * w_id))
    current = None
    indent = " " * (2 + w_res + 2 + w_pts + 2)
    for t in tests:
        if t["question"] != current:
            current = t["question"]
            lines.append(f"  {_truncate(current or '(before the first heading)', width - 2)}")
        lines.append(row.format(LABELS.get(t["status"], t["status"]), _pts(t["points"]), t["tests"], t["test_id"]))
        if t["message"] and t["status"] not in (PASSED, NOT_ANSWERED):  # "not answered" says it all
            lines += _wrap(t["message"], width, indent + "-> ", indent + "   ")
    lines.append("")
    filled = sum(w["filled"] for w in written)
    lines.append(f"Written answers (graded by hand): {filled}/{len(written)} filled")
    blank = [w for w in written if not w["filled"]]
    if blank:
        w_gid = max(len(w["grade_id"]) for w in blank)
        w_p = max(len(_pts(w["points"])) for w in blank)
        lines.append(f"  still blank ({ANSWER_PLACEHOLDER}):")
        for w in blank:
            head = f"    {w['grade_id']:<{w_gid}}  {_pts(w['points']):<{w_p}}  "
            lines.append(head + _truncate(w["question"], max(width - len(head), 20)))
    if data.get("cell_errors"):
        lines += ["", "Other cells that raised an error (they can make later tests fail):"]
        for e in data["cell_errors"][:8]:
            where = f"{e['question'] or 'top of the notebook'}, the cell `{_truncate(e['first_line'], 40)}`"
            lines += _wrap(f"{where}: {e['error']}", width, "  ", "    ")
        if len(data["cell_errors"]) > 8:
            lines.append(f"  ... and {len(data['cell_errors']) - 8} more")
    if data.get("warnings"):
        lines += ["", "Warnings:"]
        for w in data["warnings"]:
            lines += textwrap.wrap(w, width, initial_indent="  ! ", subsequent_indent="    ")
    lines += ["", data["summary"]["line"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", help="your notebook (.ipynb), e.g. rnn_lm.ipynb")
    p.add_argument("--full", action="store_true",
                   help="run in full mode (without COURSE_FAST=1): the handout's data sizes, slower")
    p.add_argument("--run-experiments", action="store_true",
                   help="also run the cells tagged 'experiment' (training runs), skipped by default")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds one cell may run (default {DEFAULT_TIMEOUT:g}; 0: no limit)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args) -> int:
    """Run ``course check`` with parsed ``args``; returns the exit status."""
    path = Path(args.notebook)
    fast = not args.full
    err = sys.stderr
    try:
        read_notebook(path)  # fail fast, before starting a kernel
    except NotebookUnreadable as exc:
        print(f"course check: error: {exc}", file=err)
        return 2
    mode = "fast mode" if fast else "full mode"
    exp = "with experiments" if args.run_experiments else "experiment cells skipped"
    print(f"Running {path.name} top to bottom in a fresh kernel ({mode}, {exp}); your file is not modified...",
          file=err, flush=True)
    tty = hasattr(err, "isatty") and err.isatty()

    def progress(n, total):
        if tty:
            print(f"\r  code cell {n}/{total}", end="", file=err, flush=True)

    try:
        report = check_notebook(path, fast=fast, timeout=args.timeout or None, run_experiments=args.run_experiments,
                                progress=progress)
    except NotebookUnreadable as exc:
        print(f"\ncourse check: error: {exc}", file=err)
        return 2
    except Exception as exc:  # noqa: BLE001 - the kernel could not start, etc.
        print(f"\ncourse check: error: could not run the notebook ({type(exc).__name__}: {_first_line(str(exc))}). "
              "Check that ipykernel is installed in this environment (pip install ipykernel).", file=err)
        return 2
    if tty:
        print("\r" + " " * 30 + "\r", end="", file=err, flush=True)
    data = report.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_report(data))
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.check", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
