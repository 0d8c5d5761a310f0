"""The grader's clean process: judge the values a sandboxed notebook recorded.

Run as ``python -m course_lib.grading.replay --source SRC.ipynb --executed EXEC.ipynb --records DIR
--out RESULTS.json``. It executes every test cell *of the instructor's source notebook* (hidden tests
included) with :func:`course_lib.grading.record.grade` in replay mode: ``run`` is never called,
the recorded values are loaded with ``torch.load(weights_only=True)`` and ``check`` runs here. This
process never imports or executes student code; it only reads the student's code as text, to look
for functions a test forbids and for names only the test cells define (:mod:`.helper_use`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import nbformat

from . import record
from .cells import grade_id, is_test_cell, nbgrader, split_hidden_tests
from .helper_use import HelperNames, find_helper_use, helper_message, student_bindings

PER_TEST_SECONDS = 120


def student_code(nb) -> list[str]:
    """The code a student wrote or could edit, one string per cell: solution cells and unlocked cells."""
    return [src for _, src in student_cells(nb)]


def student_cells(nb) -> list[tuple[str | None, str]]:
    """``(answer grade_id or None, source)`` for every cell the student could edit (see :func:`student_code`)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        m = nbgrader(cell)
        if m.get("locked") or is_test_cell(cell):  # the raw flag: a locked solution cell is skipped too
            continue
        src = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        out.append((m.get("grade_id") if m.get("solution") else None, src))
    return out


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def replay_tests(source: Path, executed: Path, records: Path) -> dict[str, dict]:
    """Each test cell of ``source`` judged from the values in ``records``: ``{test_id: {passed, message}}``."""
    src = nbformat.read(source, as_version=4)
    try:
        ex = nbformat.read(executed, as_version=4)
        code = student_code(ex)
        cells = student_cells(ex)
    except Exception:  # the executed notebook is the student's: judge records only
        code, cells = [], []
    results: dict[str, dict] = {}
    # Test helpers are no answer (helper_use.py): a test whose reachable code reads a name only the
    # test cells define, or the namespace by a computed name, fails. Reachable code only: a scratch
    # cell's use, or another answer's, costs this test nothing.
    helpers = HelperNames.from_notebook(src)
    own = student_bindings(src_ for _, src_ in cells)
    replay = record._Replay(records, student_code=_safe_parse_code(code), cells=cells)
    record.set_replay(replay)
    # Checks are the instructor's code; a time limit guards against a slow one. SIGALRM exists only
    # on the main thread (a Dask worker thread checks without it).
    timed = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGALRM, _alarm) if timed else None
    try:
        for cell in src.cells:
            if not is_test_cell(cell):
                continue
            test_id = grade_id(cell)
            replay.results.pop(test_id, None)
            ns = {"__name__": "__course_test__"}
            if timed:
                signal.alarm(PER_TEST_SECONDS)
            try:
                exec(compile(cell.source, f"<test {test_id}>", "exec"), ns)  # instructor's test code
            except _Timeout:
                replay.results[test_id] = record.TestResult(passed=False, message=f"checking took longer than {PER_TEST_SECONDS} s")
            except Exception as exc:  # an instructor error, reported as such
                replay.results.setdefault(test_id, record.TestResult(
                    passed=False, message=f"the test itself failed to run ({type(exc).__name__}: {exc}); tell your instructor"))
            finally:
                if timed:
                    signal.alarm(0)
            res = replay.results.get(test_id)
            if res is None:
                res = record.TestResult(passed=False, message=f"{test_id} does not call grade({test_id!r}, ...): tell your instructor")
            results[test_id] = dict(res)
            hit = find_helper_use(replay.reachable(test_id), helpers.names(), own)
            if hit:
                results[test_id] = dict(record.TestResult(passed=False, message=helper_message(
                    *hit, test_id, helpers.defined_by.get(hit[1]))))
        hidden = hidden_lines(src)
        for res in results.values():  # a student's error message must not carry hidden test code into feedback
            if res.pop("quoted", False):
                res["message"] = scrub(res.get("message", ""), hidden)
    finally:
        if timed:
            signal.signal(signal.SIGALRM, old)
        record.set_replay(None)
    return results


def hidden_lines(nb) -> list[str]:
    """The distinctive lines of every hidden test block in the source notebook (longest first).

    Looser than the leak scan's hidden-test secrets (:mod:`course_lib.grading.leaks`): a message that
    quotes any of these (8+ characters once stripped, imports included) is withheld from feedback, which
    costs a student only the quote; the leak scan reports a line as a leak, so it keeps only long ones.
    """
    lines: set[str] = set()
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        inside, _ = split_hidden_tests(cell.source)
        lines.update(text for text in (line.strip() for line in inside) if len(text) >= 8)
    return sorted(lines, key=len, reverse=True)


def scrub(message: str, hidden: list[str], window: int = 16) -> str:
    """``message`` unless it quotes hidden test code (any 16 characters of a hidden line, also
    JSON-escaped, as in a notebook file); then a note that it was withheld."""
    import json as _json

    if not message or not hidden:
        return message
    variants = set()
    for line in hidden:
        for text in (line, _json.dumps(line)[1:-1]):
            if len(text) <= window:
                variants.add(text)
            else:
                variants.update(text[k:k + window] for k in range(0, len(text) - window + 1))
    if any(v in message for v in variants):
        return "the error message was withheld because it quotes hidden test code"
    return message


def _safe_parse_code(cells: list[str]) -> str:
    """Student code as one text for the static scan: the cells that parse (each is a complete unit)."""
    import ast

    good = []
    for cell in cells:
        try:
            ast.parse(cell)
        except SyntaxError:
            continue
        good.append(cell)
    return "\n\n".join(good)


def run_replay(source: Path, executed: Path, records: Path, *, timeout: float = 600,
               in_process: bool | None = None) -> dict[str, dict]:
    """Run :func:`replay_tests` in a process that never ran student code.

    A grading worker qualifies (students' code only ever runs in its sandboxed kernels, and
    records are loaded as data only), so by default the worker checks in-process;
    ``in_process=False`` starts a fresh interpreter instead.
    """
    import subprocess
    import tempfile

    if in_process is None:
        in_process = True
    if in_process:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return replay_tests(source, executed, records)

    with tempfile.TemporaryDirectory(prefix="course-verify-") as tmp:
        out = Path(tmp) / "results.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_GRADING_RECORD", "JPY_"))}
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONWARNINGS"] = "ignore"
        proc = subprocess.run(
            [sys.executable, "-m", "course_lib.grading.replay", "--source", str(source), "--executed", str(executed),
             "--records", str(records), "--out", str(out)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"the grader's checking process failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m course_lib.grading.replay", description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--executed", type=Path, required=True)
    p.add_argument("--records", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass
    res = replay_tests(a.source, a.executed, a.records)
    a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
