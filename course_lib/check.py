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

The tool in four steps, a module each: :mod:`course_lib.check_read` (read the notebook, and the
course's copy of the assignment), :mod:`course_lib.check_kernel` (run a copy in a fresh kernel),
:mod:`course_lib.check_analysis` (per-test results, written answers, warnings: the :class:`Report`)
and :mod:`course_lib.check_format` (the text report). This module runs them (:func:`check_notebook`)
and is the command line; it re-exports their public names.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

from .check_analysis import (
    ANSWER_PLACEHOLDER,
    EDITED,
    ERROR,
    FAILED,
    HIDDEN_NOTE,
    LABELS,
    MISSING,
    NOT_ANSWERED,
    NOT_RUN,
    PASSED,
    CheckedTest,
    Report,
    WrittenAnswer,
    analyse,
)
from .check_format import format_report
from .check_kernel import DEFAULT_TIMEOUT, CellRun, execute, first_line
from .check_read import NotebookUnreadable, read_notebook, reference_notebook
from .grading.cells import compute_checksum

__all__ = ["compute_checksum", "check_notebook", "format_report", "main", "NotebookUnreadable",
           # re-exported from the step modules
           "read_notebook", "execute", "CellRun", "analyse", "Report", "CheckedTest", "WrittenAnswer",
           "DEFAULT_TIMEOUT", "ANSWER_PLACEHOLDER", "HIDDEN_NOTE", "LABELS", "PASSED", "FAILED", "ERROR",
           "NOT_ANSWERED", "NOT_RUN", "EDITED", "MISSING"]


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
                   run_experiments=run_experiments, reference=reference_notebook(path))


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
    except Exception as exc:  # the kernel could not start, etc.
        print(f"\ncourse check: error: could not run the notebook ({type(exc).__name__}: {first_line(str(exc))}). "
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
