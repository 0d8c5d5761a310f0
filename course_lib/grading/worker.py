"""The grading worker: one submission sanitized, run in a sandboxed kernel and judged, in a scratch folder.

It runs in a local worker process or on a Dask worker (see :mod:`.backends`) and needs only its
:class:`GradingJob`: the workspace's paths and the grading settings. The main process then scores the
executed notebook into the gradebook (:meth:`.workspace.Workspace.autograde`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .files import ensure_bin_on_path, rmtree, setenv
from .nbconfig import nbgrader_api, nbgrader_config
from .sandbox import Limits


@dataclass(frozen=True)
class GradingJob:
    """What a worker needs to grade one submission (plain data: it travels to Dask workers)."""

    workdir: str  # the workspace: its nbgrader/source/<name>/ and scratch/gradebook.base.db are read
    name: str  # the assignment
    student_id: str  # the submission's safe id (submissions.safe_id): never a raw folder name
    notebook: str  # the submitted notebook
    limits: dict = field(default_factory=dict)  # Limits fields
    sandbox: str = "auto"
    run_experiments: bool = False


def worker_failure(exc: BaseException) -> dict:
    """The result of a submission whose worker raised or died: an error record, never a lost student."""
    return {"status": "error", "seconds": 0.0, "executed": "",
            "message": f"the grading worker failed: {type(exc).__name__}: {exc}"}


def execute_submission(job: GradingJob) -> dict:
    """Worker: sanitize one submission, run it in a sandboxed kernel, judge its tests in a clean process.

    The scratch course directory holds a copy of the assignment's source and of the gradebook, so
    workers never share a database; the main process then imports the executed notebook. The
    kernel sees none of the scratch folder: only the submission's working copy and its record folder.
    Returns the status, the seconds it took, a message (which limit was hit in which cell) and the
    execution report.
    """
    t0 = time.perf_counter()
    prefetch_data(job.name)
    limits = Limits(**job.limits)
    workdir, name, sid = Path(job.workdir).resolve(), job.name, job.student_id
    ensure_bin_on_path()  # this process's own PATH: nbgrader may run `alembic` by name
    scratch = workdir / "scratch" / sid
    rmtree(scratch)
    shutil.copytree(workdir / "nbgrader" / "source" / name, scratch / "source" / name)
    shutil.copyfile(workdir / "scratch" / "gradebook.base.db", scratch / "gradebook.db")
    dest = scratch / "submitted" / sid / name
    dest.mkdir(parents=True)
    shutil.copyfile(job.notebook, dest / f"{name}.ipynb")
    report_path = scratch / "private" / "report.json"
    report_path.parent.mkdir(parents=True)
    config = nbgrader_config(scratch, limits=limits, sandbox=job.sandbox, run_experiments=job.run_experiments,
                             scratch=scratch / "private", source_notebook=scratch / "source" / name / f"{name}.ipynb",
                             report=report_path)
    with setenv(PYTHONWARNINGS="ignore", COURSE_GRADING_QUIET="1"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Object of type <Submitted")
        result = nbgrader_api(config).autograde(name, sid, force=True, create=True)
    executed = scratch / "autograded" / sid / name / f"{name}.ipynb"
    report = {}
    if report_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            report = json.loads(report_path.read_text())
    out = {"student_id": sid, "seconds": time.perf_counter() - t0, "executed": str(executed), "report": report}
    if not result.get("success") or not executed.is_file():
        reason = failure_reason(f"{result.get('log') or ''}\n{result.get('error') or ''}", limits.cell_timeout)
        return {**out, "status": "error", "message": reason}
    if report.get("limit"):
        return {**out, "status": "limit", "message": report.get("message", "")}
    return {**out, "status": "ok", "message": report.get("verify_error", "")}


_PREFETCHED: set[str] = set()


def prefetch_data(name: str) -> list[str]:
    """Unpack the assignment's registered data files from the mirror into this machine's cache, once
    per process; returns the ``dataset/file`` keys it could not (best effort: a problem is the
    kernel's to report, as when a student runs the notebook).

    The kernel reads the cache read-only (:func:`course_lib.grading.execute.host_data_cache`), so a
    file it would otherwise unpack there itself must be there first. Files that the mirror does not
    hold are left alone: nothing is downloaded while grading.
    """
    if name in _PREFETCHED:
        return []
    _PREFETCHED.add(name)
    failed: list[str] = []
    try:
        from course_lib.data import fetch, list_datasets
        from course_lib.notebook import assignment_files

        files = assignment_files(name)
        if not files:
            return []
        table = list_datasets().set_index(["name", "file"])
    except Exception:
        return []
    for dataset, key in files:
        try:
            row = table.loc[(dataset, key)]
            if bool(row["in_mirror"]) and not bool(row["in_cache"]):
                fetch(dataset, key, progress=False)
        except Exception:
            failed.append(f"{dataset}/{key}")
    return failed


_GENERIC = ("There was an error processing", "Please see the", "Traceback (most recent call last)")


def failure_reason(log: str, cell_timeout: float) -> str:
    """Why nbgrader could not grade a notebook, in words an instructor (and student) can act on."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return ("the notebook's kernel died while running it (a crash, os._exit, or running out of "
                "memory); cells after that point were not run")
    if "CellTimeoutError" in log or "TimeoutError" in log:
        return f"a cell ran longer than the {cell_timeout} s limit per cell"
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("[ERROR]") and not any(g in line for g in _GENERIC):
            return "nbgrader could not grade this notebook: " + line[len("[ERROR]"):].strip()[:300]
    last = [ln.strip() for ln in log.splitlines() if ln.strip()]
    return "nbgrader could not grade this notebook: " + (last[-1][:300] if last else "unknown error")
