"""The grading workspace: release, autograde and export on top of nbgrader.

The instructor never sees nbgrader's directory layout. A *workspace* (``--workdir``, default
``./grading``) holds everything::

    grading/
      nbgrader/                 nbgrader's course directory: source/, release/, submitted/,
                                autograded/, gradebook.db, nbgrader_config.py (for the formgrader)
      scratch/                  the workers' copies of the course directory, one per submission
      <assignment>/
        grades.csv, totals.csv, summary.csv, grading_log.csv   (see :mod:`.reports`)
        feedback/<safe_id>.html one page per student: each test's pass/fail and a safe hint
        autograded/<safe_id>.ipynb  the executed notebook (for the instructor)

Submissions are read from ``SUBMISSIONS_DIR/<student>/<assignment>.ipynb`` (:mod:`.submissions`);
a folder's name is shown as it is and only its safe id (:func:`.submissions.safe_id`) reaches
nbgrader, the workers and the file system; a name that is not safe to use is recorded
(``invalid_name``) and never used.
Workers (:mod:`.worker`, run by :mod:`.backends`) execute them, and this process scores them into
the gradebook, writes the tables (:mod:`.reports`) and the feedback pages (:mod:`.feedback`).
"""

from __future__ import annotations

import shutil
import time
import unicodedata
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from .assignments import Assignment, find_root, get_assignment
from .backends import DASK_CONNECT_TIMEOUT, default_workers, open_backend, require_distributed
from .contract import NotebookSpec
from .errors import GradingError
from .feedback import write_feedback
from .files import ensure_bin_on_path, rmtree, setenv, sha256
from .nbconfig import COURSE_ID, config_file_text, nbgrader_api, nbgrader_config
from .reports import GRADED_STATUSES, GRADES_COLUMNS, done_keys, log_row, merge_log, read_log_or_empty, write_tables
from .sandbox import Limits
from .submissions import INVALID_NAME, Census, Submission, discover_submissions, read_roster, safe_id
from .worker import GradingJob, failure_reason

# Seconds a cell may run while grading (notebooks run in fast mode then: cells take seconds).
DEFAULT_CELL_TIMEOUT = Limits().cell_timeout


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
        ensure_bin_on_path()

    # -- nbgrader configuration
    def config(self, root: Path | None = None, phase: str = "full", **paths):
        """nbgrader configuration for a course directory ``root`` (default: the workspace's); see
        :func:`.nbconfig.nbgrader_config`."""
        return nbgrader_config(Path(root or self.nbroot), phase, limits=self.limits, sandbox=self.sandbox,
                               run_experiments=self.run_experiments, **paths)

    def _write_config_file(self) -> None:
        """nbgrader_config.py for the formgrader and the nbgrader CLI, derived from :meth:`config`."""
        text = config_file_text(self.config())
        cfg = self.nbroot / "nbgrader_config.py"
        if not cfg.exists() or cfg.read_text() != text:
            atomic_write_text(cfg, text)

    def api(self, root: Path | None = None, phase: str = "full", **paths):
        return nbgrader_api(self.config(root, phase, **paths))

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
        rmtree(src)
        src.mkdir(parents=True)
        for f in a.release_files():
            dest = src / f.relative_to(a.source_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        with setenv(PYTHONWARNINGS="ignore"):
            result = self.api().generate_assignment(name, force=True, create=True)
        if not result.get("success"):
            raise GradingError(f"nbgrader could not generate the release of {name!r}:\n"
                               f"{result.get('error') or result.get('log')}")
        released = self.nbroot / "release" / name
        nb_path = released / f"{name}.ipynb"
        if not nb_path.is_file():
            raise GradingError(f"nbgrader ran but wrote no {nb_path}; log:\n{result.get('log')}")
        atomic_write_text(self._release_key_path(name), self._release_key(a))
        if output is not None:
            dest = Path(output) / name
            rmtree(dest)
            shutil.copytree(released, dest)
            return dest / f"{name}.ipynb"
        return nb_path

    def _release_key_path(self, name: str) -> Path:
        return self.nbroot / f".released-{name}.key"

    def _release_key(self, a: Assignment) -> str:
        """What the gradebook's copy of an assignment depends on: its public files, by content."""
        parts = [f"{f.relative_to(a.source_dir)}:{sha256(f)}" for f in a.release_files()]
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
        roster: Path | str | None = None,
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

        ``roster``: a CSV ``folder,student_id`` (:func:`.submissions.read_roster`) mapping folder names
        to the student ids to grade them under (e.g. a folder whose name is not acceptable); it is
        checked before anything is graded. ``grading_log.csv`` keeps each folder's name in ``folder``.
        """
        get_assignment(name, self.root).spec()  # fail early if the contract is broken
        submissions = Path(submissions)
        if not submissions.is_dir():
            raise GradingError(f"Submissions folder {submissions} does not exist "
                               f"(expected {submissions}/<student_id>/{name}.ipynb).")
        if dask_scheduler is not None:
            require_distributed()
            submissions = submissions.resolve()  # remote workers do not share this process's cwd
        folder_ids = read_roster(roster, submissions) if roster is not None else None
        out = Path(output) if output else self.workdir / name
        out.mkdir(parents=True, exist_ok=True)
        self.ensure_released(name)  # registers the assignment and its tests in the gradebook
        self._check_sandbox(log)
        census = Census()
        todo = self._to_grade(name, submissions, out, students=students, force=force, log=log, census=census,
                             roster=folder_ids)

        workers = max(1, int(workers or default_workers()))
        where = "dask" if dask_scheduler is not None else f"{workers} worker{'s' if workers > 1 else ''}"
        recorder = _Recorder(out / "grading_log.csv", len(todo), f"autograde {name} ({where})" if progress else None)
        for sub in todo:
            if sub.status != "ok":
                recorder.record(sub, sub.status, sub.message, 0.0)
        runnable = [s for s in todo if s.status == "ok"]
        if runnable:
            self._execute(name, runnable, recorder, workers=workers, dask_scheduler=dask_scheduler,
                          dask_timeout=dask_timeout, log=log)
        recorder.close()
        grades = self.export(name, output=out)
        self.last_run_summary = run_summary(census, todo, read_log_or_empty(out / "grading_log.csv"),
                                            submissions, every=not students)
        log(self.last_run_summary)
        return grades

    def _to_grade(self, name: str, submissions: Path, out: Path, *, students: list[str] | None, force: bool,
                  log, census: Census | None = None, roster: dict[str, str] | None = None) -> list[Submission]:
        """The submissions to grade: every student folder (or ``students``: student ids, folder names or safe ids),
        less those already graded from the same notebook and source (unless ``force``). Each gets its
        resume key."""
        found = discover_submissions(submissions, name, log=log, census=census, roster=roster)
        if students:
            wanted = {unicodedata.normalize("NFC", s) for s in students}
            chosen = [s for s in found
                      if {unicodedata.normalize("NFC", n) for n in (s.student_id, s.safe_id, s.folder)} & wanted]
            known = {unicodedata.normalize("NFC", n) for s in chosen for n in (s.student_id, s.safe_id, s.folder)}
            missing = sorted(wanted - known)
            if missing:
                raise GradingError(f"No submission folder for: {', '.join(map(repr, missing))} in {submissions} "
                                   "(give a folder's name or its safe_id from grading_log.csv)")
            found = chosen
        source_hash = sha256(self.nbroot / "source" / name / f"{name}.ipynb")
        done = {} if force else done_keys(out / "grading_log.csv")
        todo, skipped = [], 0
        for sub in found:
            sub.key = f"{source_hash[:16]}:{sha256(sub.notebook)[:16] if sub.notebook else sub.status}"
            if done.get(sub.student_id) == sub.key:
                skipped += 1
            else:
                todo.append(sub)
        if skipped:
            log(f"{skipped} submission(s) already graded and unchanged: kept (use --force to grade them again)")
        return todo

    def _execute(self, name: str, runnable: list[Submission], recorder: _Recorder, *, workers: int,
                 dask_scheduler, dask_timeout: float, log) -> None:
        """Run ``runnable`` on the workers; score each executed notebook here as it comes back."""
        importer = self.api(phase="import")
        # Workers start from a snapshot of the gradebook, never from the file being written.
        scratch = self.workdir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.nbroot / "gradebook.db", scratch / "gradebook.base.db")
        # Only safe ids reach the workers (nbgrader's student id, scratch and sandbox paths).
        subs = {s.safe_id: s for s in runnable}
        jobs = [GradingJob(str(self.workdir), name, s.safe_id, str(s.notebook), asdict(self.limits), self.sandbox,
                           self.run_experiments) for s in runnable]
        shared = [str(p) for p in (scratch / "gradebook.base.db", self.root, runnable[0].notebook)]
        with open_backend(workers=workers, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout,
                          shared=shared, log=log) as backend:
            for job, res in backend.map(jobs):
                # One executed (or failed) submission, from either backend: import, clean up, log.
                sub, t0 = subs[job.student_id], time.perf_counter()
                status, message = res["status"], res["message"]
                if status in GRADED_STATUSES:
                    st, msg = self._import_executed(importer, name, sub, Path(res["executed"]))
                    if st != "ok":
                        status, message = st, msg
                rmtree(scratch / sub.safe_id)
                recorder.record(sub, status, message, res["seconds"] + time.perf_counter() - t0)

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

    def _import_executed(self, api, name: str, sub: Submission, executed: Path) -> tuple[str, str]:
        """Score a notebook a worker executed: into this workspace's gradebook, without a kernel."""
        dest = self.nbroot / "submitted" / sub.safe_id / name
        rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copyfile(executed, dest / f"{name}.ipynb")
        with warnings.catch_warnings():
            # nbgrader's own SQLAlchemy session warnings are noise for an instructor.
            warnings.filterwarnings("ignore", message="Object of type <Submitted")
            result = api.autograde(name, sub.safe_id, force=True, create=True)
        if not result.get("success"):
            return "error", failure_reason(f"{result.get('log') or ''}\n{result.get('error') or ''}", self.cell_timeout)
        return "ok", ""

    # -- gradebook export
    def export(self, name: str, *, output: Path | None = None, reveal_hidden_tests: bool = False) -> pd.DataFrame:
        """Write grades.csv, totals.csv, summary.csv and feedback pages for ``name`` from the gradebook."""
        a = get_assignment(name, self.root)
        spec = a.spec()
        out = Path(output) if output else self.workdir / name
        out.mkdir(parents=True, exist_ok=True)
        log_df = read_log_or_empty(out / "grading_log.csv")
        rows, details = self._gradebook_rows(name, spec, log_df)
        grades = pd.DataFrame(rows, columns=GRADES_COLUMNS)
        write_tables(out, grades, spec, log_df)
        write_feedback(name, spec, details, out, autograded=self.nbroot / "autograded",
                       reveal=a.notebook if reveal_hidden_tests else None)
        return grades

    def _gradebook_rows(self, name: str, spec: NotebookSpec, log_df: pd.DataFrame) -> tuple[list[dict], dict]:
        """One grades row per graded cell of every logged submission, and per student its log row and
        ``{grade_id: {score, comment}}`` (for the feedback page)."""
        rows, details = [], {}
        with self.gradebook() as gb:
            for rec in log_df.to_dict("records"):
                sid = rec.get("safe_id") or safe_id(rec["student_id"])  # nbgrader's id
                graded = {}
                if rec["status"] in GRADED_STATUSES:
                    try:
                        nb = gb.find_submission_notebook(name, name, sid)
                        graded = {g.name: g for g in nb.grades}
                    except Exception:  # missing in the gradebook: treated as not graded
                        rec["status"], rec["message"] = "error", "no grades were recorded for this submission"
                info = {}
                for cell in spec.graded():
                    score, comment = _score_and_comment(gb, graded.get(cell.grade_id), cell, name, sid)
                    rows.append({"student_id": rec["student_id"], "safe_id": sid, "assignment": name, "question": cell.grade_id,
                                 "score": None if score is None else float(score), "max_score": float(cell.points)})
                    info[cell.grade_id] = {"score": score, "comment": comment}
                details[sid] = (rec, info)
        return rows, details


def _score_and_comment(gb, g, cell, name: str, sid: str):
    """A graded cell's score (None: waits for a human) and the grader's comment, from the gradebook."""
    if g is None:
        return 0.0, None
    score = g.score if not (g.needs_manual_grade and g.manual_score is None and g.auto_score is None) else None
    comment = None
    if cell.kind in ("written", "manual-code"):
        try:
            comment = gb.find_comment(cell.grade_id, name, name, sid).comment
        except Exception:  # no comment recorded
            comment = None
    return score, comment


class _Recorder:
    """Writes each graded submission's row to ``grading_log.csv`` at once (a killed run resumes where
    it stopped), and moves the progress bar (``desc`` None: no bar)."""

    def __init__(self, path: Path, total: int, desc: str | None):
        self.path, self.failures, self.bar = path, 0, None
        if desc is not None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="submission")

    def record(self, sub: Submission, status: str, message: str, seconds: float) -> None:
        self.failures += status != "ok"
        merge_log(self.path, log_row(sub.student_id, status, message, seconds, sub.key, sub.safe_id, sub.folder))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failures=self.failures)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_summary(census: Census, todo: list[Submission], log_df: pd.DataFrame, submissions: Path, *,
                every: bool = True) -> str:
    """One record of every folder under ``submissions``: how many were graded, refused (invalid
    name), had no notebook, were corrupt, failed, or were kept from an earlier run."""
    labels = {"ok": "graded", "limit": "graded (stopped at a limit)", "error": "failed (error)",
              INVALID_NAME: "refused (invalid name)", "missing": "missing notebook", "corrupt": "corrupt"}
    counts = dict.fromkeys(labels.values(), 0)
    ran = {s.student_id for s in todo}
    status = dict(zip(log_df["student_id"], log_df["status"], strict=True)) if len(log_df) else {}
    for sid in ran:
        counts[labels.get(status.get(sid, "error"), "failed (error)")] += 1
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    if every:
        kept = census.folders - len(ran)
        if kept:
            parts.append(f"{kept} unchanged (kept from an earlier run)")
    head = (f"{census.folders} folder(s) in {submissions}: " if every else f"{len(ran)} chosen folder(s): ")
    text = head + (", ".join(parts) or "nothing to do")
    ignored = []
    if census.hidden:
        ignored.append(f"{len(census.hidden)} hidden folder(s) ({', '.join(census.hidden[:3])})")
    if census.files:
        ignored.append(f"{len(census.files)} file(s) that are not folders")
    if ignored:
        text += "; ignored: " + ", ".join(ignored)
    return text
