"""``course check``, step 2: run a copy of the notebook cell by cell in a fresh kernel.

:func:`execute` runs every code cell (errors do not stop it) and returns a :class:`CellRun` per
cell: ok, error, timeout, died (the kernel), skipped (an ``experiment`` cell) or not run (after the
kernel died). The pieces are public for ``course catch-rate`` (:mod:`course_lib.grading.catch_rate`),
which runs cells the same way in one long-lived kernel: :func:`notebook_client`,
:func:`kernel_session`, :func:`run_cell`, and the error-text helpers :func:`strip_ansi` and
:func:`first_line`. Only ``nbclient`` and ``ipykernel`` are needed (imported when called).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .grading.cells import is_experiment

DEFAULT_TIMEOUT = 120.0  # seconds per cell (fast-mode cells take seconds)

__all__ = ["DEFAULT_TIMEOUT", "CellRun", "execute", "notebook_client", "kernel_session", "run_cell",
           "kernel_manager_class", "strip_ansi", "first_line"]


@dataclass
class CellRun:
    status: str  # "ok", "error", "timeout", "died", "skipped", "not run"
    ename: str = ""
    evalue: str = ""
    seconds: float = 0.0


def kernel_manager_class():
    """A kernel manager that starts ipykernel on this interpreter (the one with course_lib installed)."""
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


def notebook_client(nb, folder: Path, timeout: float | None):
    """An nbclient client for ``nb`` whose kernel starts in ``folder``; a cell's error does not stop it,
    and a cell running past ``timeout`` seconds (None or 0: no limit) is interrupted."""
    from nbclient import NotebookClient

    return NotebookClient(
        nb, timeout=(timeout or None), allow_errors=True, interrupt_on_timeout=True, record_timing=False,
        kernel_manager_class=kernel_manager_class(), resources={"metadata": {"path": str(folder)}},
        startup_timeout=120)


def kernel_session(client, *, fast: bool):
    """The context in which ``client``'s kernel runs: ``COURSE_FAST`` set as ``fast`` says, the kernel's own
    stdout/stderr (its log lines only: what cells print reaches their outputs) discarded."""
    env = dict(os.environ)
    env["COURSE_FAST"] = "1" if fast else "0"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_cell(client, cell, index: int, timeout: float | None) -> CellRun:
    """Run ``cell`` (at ``index`` of the client's notebook) with its outputs cleared: how it ended.

    ``DeadKernelError`` is the caller's to handle (``execute`` reports the rest as not run).
    """
    from nbclient.exceptions import CellTimeoutError

    cell.outputs = []
    start = time.monotonic()
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        return CellRun("timeout", "Timeout", f"the cell ran longer than {timeout:g} s", time.monotonic() - start)
    seconds = time.monotonic() - start
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if err is None:
        return CellRun("ok", seconds=seconds)
    if timeout and seconds >= timeout and err.get("ename") == "KeyboardInterrupt":
        return CellRun("timeout", "Timeout", f"the cell ran longer than {timeout:g} s (--timeout to allow more)",
                       seconds)
    return CellRun("error", str(err.get("ename", "Error")), strip_ansi(str(err.get("evalue", ""))), seconds)


def execute(nb, folder: Path, *, fast: bool = True, timeout: float | None = DEFAULT_TIMEOUT,
            run_experiments: bool = False, progress=None) -> dict[int, CellRun]:
    """Run a copy of ``nb`` cell by cell in a fresh kernel started in ``folder``; errors do not stop it.

    Returns a :class:`CellRun` per code cell index. After a cell that kills the kernel, the rest are
    "not run".
    """
    from nbclient.exceptions import DeadKernelError

    nb = copy.deepcopy(nb)
    client = notebook_client(nb, folder, timeout)
    runs: dict[int, CellRun] = {}
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    dead = False
    with kernel_session(client, fast=fast):
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
            start = time.monotonic()
            try:
                runs[i] = run_cell(client, cell, i, timeout)
            except DeadKernelError:
                runs[i] = CellRun("died", "DeadKernelError", "the kernel died while running this cell "
                                  "(out of memory, or a crash)", time.monotonic() - start)
                dead = True
    return runs


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (tracebacks' error values carry them)."""
    return _ANSI_RE.sub("", text)


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of ``text``, stripped, cut to ``limit`` characters (with "...")."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
