"""Release, autograde, gradebook and feedback on top of nbgrader.

The instructor never sees nbgrader's directory layout. A *workspace* (``--workdir``, default
``./grading``) holds everything::

    grading/
      nbgrader/                 nbgrader's course directory: source/, release/, submitted/,
                                autograded/, gradebook.db, nbgrader_config.py (for the formgrader)
      <assignment>/
        grades.csv              one row per graded cell: student_id, assignment, question, score, max_score
        totals.csv              one row per student: auto, manual, total, max, pending manual cells, status
        grading_log.csv         one row per submission: status, seconds, message (nothing is skipped silently)
        feedback/<student>.html one page per student: each test's pass/fail and a safe hint
        autograded/<student>.ipynb  the executed notebook (for the instructor)

Submissions are read from ``SUBMISSIONS_DIR/<student_id>/<assignment>.ipynb``.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat
import pandas as pd

from .contract import NotebookSpec, validate_source
from .sandbox import Limits

ASSIGNMENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
COURSE_ID = "nlm_course"
# Seconds a cell may run while grading (notebooks run in fast mode then: cells take seconds).
DEFAULT_CELL_TIMEOUT = Limits().cell_timeout
# Seconds to wait for a Dask scheduler (``autograde(dask_scheduler=...)``) to answer before giving up.
DASK_CONNECT_TIMEOUT = 30.0
# Files in notebooks/<assignment>/ that never reach students.
PRIVATE_FILES = {"examples.toml"}
PRIVATE_SUFFIXES = {".pyc"}
PRIVATE_DIRS = {"__pycache__", ".ipynb_checkpoints", "examples"}

# Statuses of a submission whose executed notebook was scored: "limit" is one that stopped at a
# limit (time, memory, processes, a dead kernel) and keeps the points of the cells that completed.
GRADED_STATUSES = ("ok", "limit")
GRADES_COLUMNS = ["student_id", "assignment", "question", "score", "max_score"]
LOG_COLUMNS = ["student_id", "status", "seconds", "message"]
# grading_log.csv also keeps, per submission, a key (source and submission hashes) for resuming.


def read_log(path: Path) -> pd.DataFrame:
    """grading_log.csv as written: text stays text (a student id such as "NA" is not a missing value)."""
    df = pd.read_csv(path, dtype={"student_id": str, "status": str, "message": str, "key": str}, keep_default_na=False)
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    if "key" not in df.columns:
        df["key"] = ""
    return df[LOG_COLUMNS + ["key"]]


def _done_keys(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    df = read_log(path)
    return dict(zip(df["student_id"], df["key"]))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class GradingError(RuntimeError):
    """A grading step failed; the message says which and what to do."""


# ----------------------------------------------------------------------------- assignments
def find_root(start: Path | None = None) -> Path:
    """The course repository root: ``$COURSE_ROOT``, else the nearest parent with ``notebooks/``."""
    env = os.environ.get("COURSE_ROOT")
    if env:
        return Path(env).resolve()
    for base in [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]:
        for p in [base, *base.parents]:
            if (p / "notebooks").is_dir() and (p / "course_lib").is_dir():
                return p
    raise GradingError(
        "Could not find the course repository (a folder with notebooks/ and course_lib/). "
        "Run the command inside the repository or set COURSE_ROOT."
    )


@dataclass
class Assignment:
    name: str
    source_dir: Path

    @property
    def notebook(self) -> Path:
        return self.source_dir / f"{self.name}.ipynb"

    def spec(self) -> NotebookSpec:
        return validate_source(self.notebook)

    def release_files(self) -> list[Path]:
        """Files copied to nbgrader's source folder: the notebook and public extras only."""
        out = []
        for p in sorted(self.source_dir.rglob("*")):
            rel = p.relative_to(self.source_dir)
            if p.is_dir() or any(part in PRIVATE_DIRS for part in rel.parts):
                continue
            if p.name in PRIVATE_FILES or p.suffix in PRIVATE_SUFFIXES:
                continue
            if p.suffix == ".py" and p.stem == self.name:  # the jupytext pair holds the solutions
                continue
            out.append(p)
        return out


def list_assignments(root: Path | None = None) -> list[str]:
    root = root or find_root()
    return sorted(
        d.name for d in (root / "notebooks").iterdir() if d.is_dir() and (d / f"{d.name}.ipynb").is_file()
    )


def get_assignment(name: str, root: Path | None = None) -> Assignment:
    root = root or find_root()
    if not ASSIGNMENT_RE.match(name or ""):
        raise GradingError(f"Invalid assignment name {name!r}: use lower-case letters, digits and '_'.")
    a = Assignment(name, root / "notebooks" / name)
    if not a.notebook.is_file():
        raise GradingError(
            f"No assignment {name!r}: {a.notebook} does not exist. Available: {', '.join(list_assignments(root)) or 'none'}."
        )
    return a


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def setenv(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    _atomic_write_text(path, df.to_csv(index=False))


def _py_literal(value) -> str:
    """A config value as Python source; classes (preprocessors) become import strings."""
    if isinstance(value, type):
        return repr(f"{value.__module__}.{value.__qualname__}")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _ensure_bin_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: make this interpreter's bin dir visible."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])


# ----------------------------------------------------------------------------- Dask
def _worker_failure(exc: BaseException) -> dict:
    """The result of a submission whose worker raised or died: an error record, never a lost student."""
    return {"status": "error", "seconds": 0.0, "executed": "",
            "message": f"the grading worker failed: {type(exc).__name__}: {exc}"}


def _require_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise GradingError(
            f"Grading on a Dask scheduler needs the 'distributed' package ({exc}). Install it here and on "
            "every worker: pip install 'course-lib[grading]' (or: pip install dask distributed)."
        ) from None
    return distributed


@contextlib.contextmanager
def dask_client(scheduler, *, timeout: float = DASK_CONNECT_TIMEOUT):
    """A ``distributed.Client`` for ``scheduler``: an address (``tcp://HOST:8786``), a cluster object
    or a ``Client`` (yielded as is and left open). Raises :class:`GradingError` when the scheduler does
    not answer within ``timeout`` seconds."""
    distributed = _require_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    address = scheduler if isinstance(scheduler, str) else getattr(scheduler, "scheduler_address", None)
    if not address:
        raise GradingError(f"dask_scheduler must be an address such as tcp://HOST:8786, a Dask cluster or a "
                           f"distributed.Client, not {scheduler!r}")
    try:
        client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a bad address: all mean "not reachable"
        raise GradingError(
            f"Could not reach the Dask scheduler at {address} within {timeout:g} s ({type(exc).__name__}: {exc}). "
            "Check the address and that `dask scheduler` runs and is reachable from this machine."
        ) from None
    try:
        yield client
    finally:
        client.close()


def _missing_paths(paths: list[str]) -> list[str]:
    """Run on each Dask worker: the grading paths it cannot see (it must share our filesystem)."""
    return [p for p in paths if not os.path.exists(p)]


def _run_on_dask(client, name: str, jobs: list[tuple], subs: list["Submission"], finish, *,
                 shared: list[str] = (), log=print) -> None:
    """``execute_submission(*job)`` for every job on the cluster; ``finish(sub, result)`` as each ends.

    ``shared`` are paths every worker must see (checked first, with course_lib imported there)."""
    import uuid

    import distributed

    where = getattr(client.scheduler, "address", None) or "the Dask scheduler"
    try:
        missing = client.run(_missing_paths, list(shared))
    except Exception as exc:  # noqa: BLE001 - typically course_lib is not importable on a worker
        raise GradingError(
            f"The Dask workers of {where} could not run the grading code ({type(exc).__name__}: {exc}). "
            "Install course-lib (the same version, with its grading extra) in every worker's environment."
        ) from None
    blind = {w: m for w, m in missing.items() if m}
    if blind:
        w, m = next(iter(blind.items()))
        raise GradingError(
            f"{len(blind)} of {len(missing)} Dask worker(s) of {where} cannot see the grading files "
            f"(worker {w} has no {m[0]}). The workers must share this machine's filesystem at the same paths "
            "(workspace, course root and submissions), e.g. on NFS."
        )
    if not missing:
        log(f"note: no Dask worker has joined {where} yet; grading starts when one does")
    elif any(n > 1 for n in client.nthreads().values()):
        log("note: some Dask workers run several threads; start them with --nthreads 1 (one kernel per process)")
    futures = {}
    for job, sub in zip(jobs, subs):
        key = f"grade-{name}-{sub.student_id}-{uuid.uuid4().hex}"
        futures[client.submit(execute_submission, *job, pure=False, key=key)] = sub
    try:
        for fut in distributed.as_completed(list(futures), loop=client.loop):
            sub = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a raised error, a cancelled task
                res = _worker_failure(exc)
            fut.release()
            finish(sub, res)
    finally:
        if futures:  # interrupted: do not leave our tasks running on a shared cluster
            client.cancel(list(futures))


# ----------------------------------------------------------------------------- workspace
class Workspace:
    """An nbgrader course directory owned by the ``course`` command."""

    def __init__(self, workdir: Path | str = "grading", *, root: Path | None = None,
                 cell_timeout: float | None = None, limits: Limits | dict | None = None, sandbox: str = "auto",
                 run_experiments: bool = False):
        self.workdir = Path(workdir).resolve()
        self.nbroot = self.workdir / "nbgrader"
        self.root = root or find_root()
        lim = limits if isinstance(limits, Limits) else Limits(**(limits or {}))
        if cell_timeout is not None:
            lim = replace(lim, cell_timeout=float(cell_timeout))
        self.limits = lim
        self.cell_timeout = lim.cell_timeout
        if sandbox not in ("auto", "require", "off"):
            raise GradingError(f"--sandbox must be auto, require or off, not {sandbox!r}")
        self.sandbox = sandbox
        # Experiment cells (tagged "experiment": training runs) are not re-run while grading: their
        # outputs are the student's own, for the written answers about them.
        self.run_experiments = bool(run_experiments)
        self.nbroot.mkdir(parents=True, exist_ok=True)
        self._write_config_file()
        _ensure_bin_on_path()

    # -- nbgrader configuration
    def config(self, root: Path | None = None, phase: str = "full", *, scratch: Path | None = None,
               source_notebook: Path | None = None, report: Path | None = None):
        """nbgrader configuration for a course directory ``root`` (default: the workspace's).

        ``phase="full"`` sanitizes, executes and scores a submission. ``phase="import"`` scores a
        notebook that a worker already executed (in a scratch copy of this course directory): it
        keeps the outputs and starts no kernel.
        """
        from nbconvert.preprocessors import ClearMetadataPreprocessor
        from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                            IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec,
                                            SaveAutoGrades)
        from traitlets.config import Config

        from .execute import SandboxedExecute
        from .preprocessors import ClearOutputKeepExperiments, RepairCells

        root = Path(root or self.nbroot)
        c = Config()
        c.CourseDirectory.root = str(root)
        c.CourseDirectory.course_id = COURSE_ID
        c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
        c.Execute.timeout = self.cell_timeout
        c.Execute.interrupt_on_timeout = True
        # Kernels log start-up notices to the grader's terminal; only errors matter there.
        c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
        # A warning printed to stderr must not zero a test cell (nbgrader counts any stderr as a
        # failure). Errors are separate "error" outputs, so removing stderr streams is safe.
        c.IgnorePattern.enabled = True
        c.IgnorePattern.pattern = r"[\s\S]"
        # A test cell the student deleted is put back and run (nbgrader's default drops it), and so
        # is a deleted read-only helper cell.
        c.OverwriteCells.add_missing_cells = True
        sanitize = [RepairCells, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
        if phase == "import":
            c.Autograde.sanitize_preprocessors = sanitize
            c.Autograde.autograde_preprocessors = [IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                                   SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
        else:
            c.Autograde.sanitize_preprocessors = [ClearOutputKeepExperiments, *sanitize]
            skip = [] if self.run_experiments else ["experiment"]
            c.ClearOutputKeepExperiments.skip_tags = skip
            c.SandboxedExecute.skip_tags = skip
            # The student's code runs in a sandboxed kernel with limits; test cells are judged from
            # recorded values in a clean process (course_lib.grading.execute).
            c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                   LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
            c.SandboxedExecute.limits = asdict(self.limits)
            c.SandboxedExecute.sandbox = self.sandbox
            c.SandboxedExecute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
            if scratch is not None:
                c.SandboxedExecute.scratch_dir = str(scratch)
            if source_notebook is not None:
                c.SandboxedExecute.source_notebook = str(source_notebook)
            if report is not None:
                c.SandboxedExecute.report_path = str(report)
        c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
        c.Exchange.root = str(root / "exchange")
        return c

    def _write_config_file(self) -> None:
        """nbgrader_config.py for the formgrader and the nbgrader CLI, derived from :meth:`config`."""
        c = self.config()
        lines = ["# Written by `course` from Workspace.config(): the formgrader and the nbgrader CLI",
                 "# use the same settings as `course autograde`.", "c = get_config()  # noqa: F821"]
        for section in sorted(c):
            for key in sorted(c[section]):
                lines.append(f"c.{section}.{key} = {_py_literal(c[section][key])}")
        text = "\n".join(lines) + "\n"
        cfg = self.nbroot / "nbgrader_config.py"
        if not cfg.exists() or cfg.read_text() != text:
            _atomic_write_text(cfg, text)

    def api(self, root: Path | None = None, phase: str = "full", **kwargs):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        config = self.config(root, phase, **kwargs)
        coursedir = CourseDirectory(config=config)
        return NbGraderAPI(coursedir=coursedir, config=config)

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(f"sqlite:///{self.nbroot / 'gradebook.db'}", course_id=COURSE_ID)

    # -- release
    def release(self, name: str, output: Path | None = None) -> Path:
        """Generate the student version of ``name``; returns the released notebook's path.

        Copies the notebook and its public extras to ``<output>/<name>/`` when ``output`` is given.
        """
        a = get_assignment(name, self.root)
        a.spec()  # fail early, with every problem listed, if the contract is broken
        src = self.nbroot / "source" / name
        _rmtree(src)
        src.mkdir(parents=True)
        for f in a.release_files():
            dest = src / f.relative_to(a.source_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        with setenv(PYTHONWARNINGS="ignore"):
            result = self.api().generate_assignment(name, force=True, create=True)
        if not result.get("success"):
            raise GradingError(f"nbgrader could not generate the release of {name!r}:\n{result.get('error') or result.get('log')}")
        released = self.nbroot / "release" / name
        nb_path = released / f"{name}.ipynb"
        if not nb_path.is_file():
            raise GradingError(f"nbgrader ran but wrote no {nb_path}; log:\n{result.get('log')}")
        _atomic_write_text(self._release_key_path(name), self._release_key(a))
        if output is not None:
            dest = Path(output) / name
            _rmtree(dest)
            shutil.copytree(released, dest)
            return dest / f"{name}.ipynb"
        return nb_path

    def _release_key_path(self, name: str) -> Path:
        return self.nbroot / f".released-{name}.key"

    def _release_key(self, a: "Assignment") -> str:
        """What the gradebook's copy of an assignment depends on: its public files, by content."""
        parts = [f"{f.relative_to(a.source_dir)}:{_sha256(f)}" for f in a.release_files()]
        return "\n".join(parts) + "\n"

    def ensure_released(self, name: str) -> Path:
        """Release ``name`` unless the gradebook already holds this exact version of it."""
        a = get_assignment(name, self.root)
        key = self._release_key_path(name)
        nb_path = self.nbroot / "release" / name / f"{name}.ipynb"
        if (key.is_file() and key.read_text() == self._release_key(a) and nb_path.is_file()
                and (self.nbroot / "gradebook.db").is_file()):
            return nb_path
        return self.release(name)

    def released_notebook(self, name: str) -> Path:
        return self.ensure_released(name)

    # -- autograde
    def autograde(
        self,
        name: str,
        submissions: Path | str,
        *,
        output: Path | None = None,
        students: list[str] | None = None,
        progress: bool = True,
        workers: int | None = 1,
        force: bool = False,
        log=print,
        dask_scheduler=None,
        dask_timeout: float = DASK_CONNECT_TIMEOUT,
    ) -> pd.DataFrame:
        """Grade ``submissions/<student_id>/<name>.ipynb``; returns the grades DataFrame.

        ``workers`` processes execute notebooks in parallel (``None``: one per core). A submission
        already graded from the same notebook and the same source is kept unless ``force``.

        ``dask_scheduler`` runs the notebooks on an existing Dask cluster instead (``workers`` is then
        ignored): a scheduler address such as ``"tcp://HOST:8786"``, a cluster object
        (``distributed.LocalCluster``...) or a ``distributed.Client`` (used as is, not closed). It needs
        the ``distributed`` package (``pip install 'course-lib[grading]'``). The Dask workers must see
        this machine's filesystem at the same paths (the workspace ``workdir``, the course root and the
        submissions folder, e.g. on NFS) and have ``course-lib`` installed; that is checked before any
        notebook is sent. Run one thread per worker process (``dask worker ADDRESS --nworkers N
        --nthreads 1``): each task sets process-wide environment variables for its kernel. A scheduler
        that does not answer within ``dask_timeout`` seconds is a :class:`GradingError`. Scores and
        gradebook updates stay in this process, exactly as with local workers; a task whose worker
        dies or raises is recorded as an ``error`` for that student.

        Every student folder gets rows in ``grades.csv``: a submission that cannot be read or run
        scores 0 and the reason is written to ``grading_log.csv`` and to its feedback page.
        """
        a = get_assignment(name, self.root)
        spec = a.spec()
        submissions = Path(submissions)
        if not submissions.is_dir():
            raise GradingError(f"Submissions folder {submissions} does not exist (expected {submissions}/<student_id>/{name}.ipynb).")
        if dask_scheduler is not None:
            _require_distributed()
            submissions = submissions.resolve()  # remote workers do not share this process's cwd
        out = Path(output) if output else self.workdir / name
        out.mkdir(parents=True, exist_ok=True)
        self.ensure_released(name)  # registers the assignment and its tests in the gradebook
        self._check_sandbox(log)

        found = discover_submissions(submissions, name, log=log)
        if students:
            missing = sorted(set(students) - {s.student_id for s in found})
            if missing:
                raise GradingError(f"No submission folder for: {', '.join(missing)} in {submissions}")
            found = [s for s in found if s.student_id in set(students)]

        source_hash = _sha256(self.nbroot / "source" / name / f"{name}.ipynb")
        done = {} if force else _done_keys(out / "grading_log.csv")
        todo, skipped = [], 0
        for sub in found:
            sub.key = f"{source_hash[:16]}:{_sha256(sub.notebook)[:16] if sub.notebook else sub.status}"
            if done.get(sub.student_id) == sub.key:
                skipped += 1
            else:
                todo.append(sub)
        if skipped:
            log(f"{skipped} submission(s) already graded and unchanged: kept (use --force to grade them again)")

        workers = max(1, int(workers or default_workers()))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            where = "dask" if dask_scheduler is not None else f"{workers} worker{'s' if workers > 1 else ''}"
            bar = tqdm(total=len(todo), desc=f"autograde {name} ({where})", unit="submission")
        failures = 0

        def record(sub: Submission, status: str, message: str, seconds: float) -> None:
            nonlocal failures
            failures += status != "ok"
            row = pd.DataFrame([{"student_id": sub.student_id, "status": status, "seconds": round(seconds, 2),
                                 "message": message, "key": sub.key}], columns=LOG_COLUMNS + ["key"])
            self._merge_log(out, row)  # after every submission: a killed run resumes where it stopped
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failures=failures)

        runnable = [s_ for s_ in todo if s_.status == "ok"]
        for sub in todo:
            if sub.status != "ok":
                record(sub, sub.status, sub.message, 0.0)
        if runnable:
            import concurrent.futures as cf
            import multiprocessing as mp

            importer = self.api(phase="import")
            # Workers start from a snapshot of the gradebook, never from the file being written.
            (self.workdir / "scratch").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.nbroot / "gradebook.db", self.workdir / "scratch" / "gradebook.base.db")
            jobs = [(str(self.workdir), str(self.root), name, s_.student_id, str(s_.notebook), asdict(self.limits),
                     self.sandbox, self.run_experiments) for s_ in runnable]

            def finish(sub: Submission, res: dict) -> None:
                """One executed (or failed) submission, from either backend: import, clean up, log."""
                t0 = time.perf_counter()
                status, message = res["status"], res["message"]
                if status in GRADED_STATUSES:
                    st, msg = self._import_executed(importer, name, sub, Path(res["executed"]))
                    if st != "ok":
                        status, message = st, msg
                _rmtree(self.workdir / "scratch" / sub.student_id)
                record(sub, status, message, res["seconds"] + time.perf_counter() - t0)

            if dask_scheduler is not None:
                with dask_client(dask_scheduler, timeout=dask_timeout) as client:
                    shared = [self.workdir / "scratch" / "gradebook.base.db", self.root, runnable[0].notebook]
                    _run_on_dask(client, name, jobs, runnable, finish, shared=[str(p) for p in shared], log=log)
            else:
                with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
                    futures = {pool.submit(execute_submission, *job): s_ for job, s_ in zip(jobs, runnable)}
                    for fut in cf.as_completed(futures):
                        try:
                            res = fut.result()
                        except Exception as exc:  # noqa: BLE001 - a worker that died still yields a record
                            res = _worker_failure(exc)
                        finish(futures[fut], res)
        if bar is not None:
            bar.close()
        grades = self.export(name, output=out)
        return grades

    def _check_sandbox(self, log) -> None:
        """Refuse (``require``) or warn (``auto``) when bubblewrap cannot isolate kernels here."""
        from .sandbox import probe

        if self.sandbox == "off":
            log("warning: --sandbox off: students' code runs WITHOUT isolation (limits still apply)")
            return
        why = probe()
        if why and self.sandbox == "require":
            raise GradingError(f"cannot grade with --sandbox require: {why}")
        if why:
            log(f"warning: students' code runs WITHOUT a sandbox: {why}. Limits still apply; "
                "use --sandbox require to refuse instead.")

    def _import_executed(self, api, name: str, sub: "Submission", executed: Path) -> tuple[str, str]:
        """Score a notebook a worker executed: into this workspace's gradebook, without a kernel."""
        dest = self.nbroot / "submitted" / sub.student_id / name
        _rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copyfile(executed, dest / f"{name}.ipynb")
        with warnings.catch_warnings():
            # nbgrader's own SQLAlchemy session warnings are noise for an instructor.
            warnings.filterwarnings("ignore", message="Object of type <Submitted")
            result = api.autograde(name, sub.student_id, force=True, create=True)
        if not result.get("success"):
            return "error", failure_reason(f"{result.get('log') or ''}\n{result.get('error') or ''}", self.cell_timeout)
        return "ok", ""

    def _merge_log(self, out: Path, new: pd.DataFrame) -> None:
        path = out / "grading_log.csv"
        if path.exists():
            old = read_log(path)
            old = old[~old["student_id"].isin(new["student_id"])]
            new = pd.concat([old, new], ignore_index=True)
        _write_csv(new.sort_values("student_id"), path)

    # -- gradebook export
    def export(self, name: str, *, output: Path | None = None, reveal_hidden_tests: bool = False) -> pd.DataFrame:
        """Write grades.csv, totals.csv and feedback pages for ``name`` from the gradebook."""
        a = get_assignment(name, self.root)
        spec = a.spec()
        out = Path(output) if output else self.workdir / name
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "grading_log.csv"
        log_df = read_log(log_path) if log_path.exists() else pd.DataFrame(columns=LOG_COLUMNS)
        rows, details = [], {}
        with self.gradebook() as gb:
            for rec in log_df.to_dict("records"):
                sid = rec["student_id"]
                graded = {}
                if rec["status"] in GRADED_STATUSES:
                    try:
                        nb = gb.find_submission_notebook(name, name, sid)
                        graded = {g.name: g for g in nb.grades}
                    except Exception:  # noqa: BLE001 - missing in the gradebook: treated as not graded
                        rec["status"], rec["message"] = "error", "no grades were recorded for this submission"
                info = {}
                for cell in spec.graded():
                    g = graded.get(cell.grade_id)
                    if g is None:
                        score = 0.0
                    else:
                        score = g.score if not (g.needs_manual_grade and g.manual_score is None and g.auto_score is None) else None
                    comment = None
                    if g is not None and cell.kind in ("written", "manual-code"):
                        try:
                            c = gb.find_comment(cell.grade_id, name, name, sid)
                            comment = c.comment
                        except Exception:  # noqa: BLE001 - no comment recorded
                            comment = None
                    rows.append(
                        {"student_id": sid, "assignment": name, "question": cell.grade_id,
                         "score": None if score is None else float(score), "max_score": float(cell.points)}
                    )
                    info[cell.grade_id] = {"score": score, "comment": comment}
                details[sid] = (rec, info)
        grades = pd.DataFrame(rows, columns=GRADES_COLUMNS)
        _write_csv(grades, out / "grades.csv")
        totals = totals_table(grades, spec, log_df)
        _write_csv(totals, out / "totals.csv")
        _write_csv(summary_table(grades, spec), out / "summary.csv")
        self._write_feedback(name, spec, details, out, reveal=a.notebook if reveal_hidden_tests else None)
        return grades

    # -- feedback
    def _test_messages(self, name: str, sid: str) -> dict[str, str]:
        """Failure hints per test cell: the exception's type and message, never the test's code."""
        path = self.nbroot / "autograded" / sid / name / f"{name}.ipynb"
        msgs: dict[str, str] = {}
        if not path.is_file():
            return msgs
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001
            return msgs
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    ename, evalue = o.get("ename", "Error"), str(o.get("evalue", ""))
                    msgs[meta.get("grade_id")] = hint_for(ename, evalue)
                    break
        return msgs

    def _write_feedback(self, name: str, spec: NotebookSpec, details: dict, out: Path, reveal: Path | None = None) -> None:
        tests = _test_sources(reveal) if reveal is not None else {}
        fb_dir = out / "feedback"
        nb_dir = out / "autograded"
        fb_dir.mkdir(parents=True, exist_ok=True)
        nb_dir.mkdir(parents=True, exist_ok=True)
        for sid, (rec, info) in details.items():
            msgs = self._test_messages(name, sid) if rec["status"] in GRADED_STATUSES else {}
            executed = self.nbroot / "autograded" / sid / name / f"{name}.ipynb"
            if executed.is_file():
                shutil.copyfile(executed, nb_dir / f"{sid}.ipynb")
            page = feedback_html(name, sid, spec, rec, info, msgs, tests)
            _atomic_write_text(fb_dir / f"{sid}.html", page)


def execute_submission(workdir: str, root: str, name: str, student_id: str, notebook: str,
                       limits: dict | float | None = None, sandbox: str = "auto", run_experiments: bool = False) -> dict:
    """Worker: sanitize one submission, run it in a sandboxed kernel, judge its tests in a clean process.

    The scratch course directory holds a copy of the assignment's source and of the gradebook, so
    workers never share a database; the main process then imports the executed notebook. The
    kernel sees none of the scratch folder: only the submission's working copy and its record folder.
    Returns the status, the seconds it took, a message (which limit was hit in which cell) and the
    execution report.
    """
    t0 = time.perf_counter()
    if isinstance(limits, (int, float)):
        limits = {"cell_timeout": float(limits)}
    ws = Workspace(workdir, root=Path(root), limits=limits, sandbox=sandbox, run_experiments=run_experiments)
    scratch = ws.workdir / "scratch" / student_id
    _rmtree(scratch)
    shutil.copytree(ws.nbroot / "source" / name, scratch / "source" / name)
    shutil.copyfile(ws.workdir / "scratch" / "gradebook.base.db", scratch / "gradebook.db")
    dest = scratch / "submitted" / student_id / name
    dest.mkdir(parents=True)
    shutil.copyfile(notebook, dest / f"{name}.ipynb")
    report_path = scratch / "private" / "report.json"
    report_path.parent.mkdir(parents=True)
    api = ws.api(root=scratch, scratch=scratch / "private", source_notebook=scratch / "source" / name / f"{name}.ipynb",
                 report=report_path)
    with setenv(PYTHONWARNINGS="ignore", COURSE_GRADING_QUIET="1"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Object of type <Submitted")
        result = api.autograde(name, student_id, force=True, create=True)
    executed = scratch / "autograded" / student_id / name / f"{name}.ipynb"
    report = {}
    if report_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            report = json.loads(report_path.read_text())
    out = {"student_id": student_id, "seconds": time.perf_counter() - t0, "executed": str(executed), "report": report}
    if not result.get("success") or not executed.is_file():
        reason = failure_reason(f"{result.get('log') or ''}\n{result.get('error') or ''}", ws.cell_timeout)
        return {**out, "status": "error", "message": reason}
    if report.get("limit"):
        return {**out, "status": "limit", "message": report.get("message", "")}
    return {**out, "status": "ok", "message": report.get("verify_error", "")}


# ----------------------------------------------------------------------------- submissions
@dataclass
class Submission:
    student_id: str
    notebook: Path | None
    status: str = "ok"  # ok | missing | corrupt | invalid-id
    message: str = ""
    key: str = ""  # source and submission hashes: an unchanged, graded submission is not graded again


def discover_submissions(folder: Path, name: str, *, log=print) -> list[Submission]:
    """One :class:`Submission` per student folder; problems are recorded, never skipped."""
    subs: list[Submission] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            log(f"warning: ignoring {entry} (expected a folder per student: {folder}/<student_id>/{name}.ipynb)")
            continue
        sid = entry.name
        if not STUDENT_RE.match(sid):
            log(f"warning: folder name {sid!r} is not a valid student id (letters, digits, _ . @ + -); not graded")
            continue
        nb = entry / f"{name}.ipynb"
        if not nb.is_file():
            candidates = sorted(p for p in entry.glob("*.ipynb") if p.is_file() and not p.is_symlink())
            if len(candidates) == 1:
                log(f"note: {sid}: using {candidates[0].name} (expected {name}.ipynb)")
                nb = candidates[0]
            else:
                why = "no notebook" if not candidates else f"{len(candidates)} notebooks and none named {name}.ipynb"
                subs.append(Submission(sid, None, "missing", f"{why} in {entry.name}/: submit {name}.ipynb"))
                continue
        if nb.is_symlink():
            subs.append(Submission(sid, None, "corrupt", "the notebook is a symbolic link; submit the file itself"))
            continue
        try:
            node = nbformat.read(nb, as_version=4)
            nbformat.validate(node)
        except Exception as exc:  # noqa: BLE001 - any unreadable notebook is a recorded failure
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            subs.append(Submission(sid, None, "corrupt", f"{nb.name} is not a valid notebook ({first}); re-download it from Jupyter and submit again"))
            continue
        subs.append(Submission(sid, nb))
    return subs


# ----------------------------------------------------------------------------- tables and pages
def totals_table(grades: pd.DataFrame, spec: NotebookSpec, log_df: pd.DataFrame) -> pd.DataFrame:
    auto_ids = {c.grade_id for c in spec.tests}
    rows = []
    status = dict(zip(log_df["student_id"], log_df["status"])) if len(log_df) else {}
    for sid, g in grades.groupby("student_id", sort=True):
        is_auto = g["question"].isin(auto_ids)
        rows.append(
            {
                "student_id": sid,
                "auto_score": float(g.loc[is_auto, "score"].fillna(0).sum()),
                "auto_max": float(g.loc[is_auto, "max_score"].sum()),
                "manual_score": float(g.loc[~is_auto, "score"].fillna(0).sum()),
                "manual_max": float(g.loc[~is_auto, "max_score"].sum()),
                "pending_manual": int(g.loc[~is_auto, "score"].isna().sum()),
                "total": float(g["score"].fillna(0).sum()),
                "max_total": float(g["max_score"].sum()),
                "status": status.get(sid, ""),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["student_id", "auto_score", "auto_max", "manual_score", "manual_max", "pending_manual", "total", "max_total", "status"],
    )


_GENERIC = ("There was an error processing", "Please see the", "Traceback (most recent call last)")


def failure_reason(log: str, cell_timeout: int) -> str:
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


def summary_table(grades: pd.DataFrame, spec: NotebookSpec) -> pd.DataFrame:
    """Per question: points, mean, median, share of students with full marks, and how many wait for a human."""
    kinds = {c.grade_id: ("test" if c.kind == "test" else "written") for c in spec.graded()}
    rows = []
    for cell in spec.graded():
        g = grades[grades["question"] == cell.grade_id]
        scored = g["score"].dropna()
        rows.append({
            "question": cell.grade_id, "kind": kinds[cell.grade_id], "max_score": float(cell.points),
            "students": int(len(g)), "graded": int(len(scored)),
            "mean": round(float(scored.mean()), 3) if len(scored) else None,
            "median": float(scored.median()) if len(scored) else None,
            "share_full_marks": round(float((scored >= cell.points).mean()), 3) if len(scored) else None,
        })
    return pd.DataFrame(rows, columns=["question", "kind", "max_score", "students", "graded", "mean", "median",
                                       "share_full_marks"])


def hint_for(ename: str, evalue: str) -> str:
    """A safe one-line hint from a test's exception: type and message, never source lines."""
    evalue = re.sub(r"\x1b\[[0-9;]*m", "", evalue).strip()
    if (ename == "NotImplementedError" and not evalue) or evalue == "NotImplementedError":
        return "Not answered yet (the function still raises NotImplementedError)."
    if ename in ("CheckFailed", "AssertionError"):
        return evalue[:400] or "A check failed."
    line = evalue.splitlines()[0][:300] if evalue else ""
    return f"{ename}: {line}" if line else ename


def _test_sources(notebook: Path) -> dict[str, str]:
    """Every test cell's code, hidden tests included (for --reveal-hidden-tests); never solutions."""
    nb = nbformat.read(notebook, as_version=4)
    out = {}
    for cell in nb.cells:
        m = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and m.get("grade") and not m.get("solution"):
            out[m.get("grade_id")] = cell.source
    return out


def feedback_html(name: str, sid: str, spec: NotebookSpec, rec: dict, info: dict, msgs: dict,
                  tests: dict[str, str] | None = None) -> str:
    esc = html.escape
    rows = []
    auto = manual = 0.0
    pending = 0
    for cell in spec.graded():
        i = info.get(cell.grade_id, {"score": 0.0, "comment": None})
        score = i["score"]
        if cell.kind == "test":
            ok = score is not None and float(score) >= cell.points
            state = "passed" if ok else ("partial" if score and float(score) > 0 else "failed")
            hint = "" if ok else msgs.get(cell.grade_id, "" if rec["status"] in GRADED_STATUSES else rec["message"])
            auto += float(score or 0)
        else:
            if score is None:
                state, hint = "to be graded by hand", ""
                pending += 1
            else:
                state, hint = "graded by hand", i.get("comment") or ""
                manual += float(score)
        shown = "–" if score is None else f"{float(score):g}"
        rows.append(
            f"<tr class='{esc(state.split()[0])}'><td><code>{esc(cell.grade_id)}</code></td>"
            f"<td>{'test' if cell.kind == 'test' else 'written'}</td><td>{shown} / {cell.points:g}</td>"
            f"<td>{esc(state)}</td><td>{esc(hint)}</td></tr>"
        )
        if tests and cell.grade_id in tests:  # --reveal-hidden-tests, after the final deadline
            rows.append(f"<tr class='test-code'><td colspan='5'><details><summary>the test's code</summary>"
                        f"<pre>{esc(tests[cell.grade_id])}</pre></details></td></tr>")
    if rec["status"] == "ok":
        status_note = ""
    elif rec["status"] == "limit":
        status_note = (f"<p class='problem'><b>Your notebook hit a grading limit:</b> {esc(rec['message'])}. "
                       "The tests that completed before it kept their points.</p>")
    else:
        status_note = f"<p class='problem'><b>Your submission could not be graded:</b> {esc(rec['message'])}</p>"
    data = json.dumps({"student_id": sid, "assignment": name, "auto": auto, "manual": manual, "pending_manual": pending})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {esc(name)} ({esc(sid)})</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: .4em; text-align: left; vertical-align: top; }}
tr.passed td:nth-child(4) {{ color: #1a7f37; }} tr.failed td:nth-child(4) {{ color: #cf222e; }} tr.partial td:nth-child(4) {{ color: #9a6700; }}
.problem {{ background: #fff1f0; padding: .6em; border-left: 4px solid #cf222e; }}
</style></head><body>
<h1>Feedback: <code>{esc(name)}</code></h1>
<p>Student: <b>{esc(sid)}</b>. Automatic score: <b>{auto:g} / {spec.auto_points:g}</b>.
Written answers: {manual:g} / {spec.manual_points:g} graded so far{f", {pending} still to be graded by hand" if pending else ""}.</p>
{status_note}
<table><thead><tr><th>question</th><th>kind</th><th>score</th><th>result</th><th>hint</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table>
<script type="application/json" id="feedback-data">{data}</script>
</body></html>
"""


def print_table(df: pd.DataFrame, file=None) -> None:
    with pd.option_context("display.max_rows", 500, "display.max_columns", 30, "display.width", 160):
        print(df.to_string(index=False), file=file or sys.stdout)
