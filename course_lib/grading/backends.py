"""Where grading workers run: local processes or a Dask cluster, behind one ``map(jobs)``.

Both run :func:`.worker.execute_submission` on every :class:`.worker.GradingJob` and yield
``(job, result)`` as each one ends; a worker that raised or died yields an ``error`` result
(:func:`.worker.worker_failure`), never a lost submission. Open one with :func:`open_backend`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .errors import GradingError
from .worker import GradingJob, execute_submission, worker_failure

# Seconds to wait for a Dask scheduler (``autograde(dask_scheduler=...)``) to answer before giving up.
DASK_CONNECT_TIMEOUT = 30.0


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class LocalPool:
    """``workers`` spawned processes on this machine."""

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, jobs: list[GradingJob]) -> Iterator[tuple[GradingJob, dict]]:
        import concurrent.futures as cf
        import multiprocessing as mp

        if not jobs:
            return
        with cf.ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(execute_submission, job): job for job in jobs}
            for fut in cf.as_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:
                    res = worker_failure(exc)
                yield futures[fut], res


class DaskCluster:
    """The workers of a Dask cluster, through a connected ``distributed.Client``.

    ``shared`` are paths every worker must see (checked first, with course_lib imported there)."""

    def __init__(self, client, *, shared: list[str] = (), log=print):
        self.client, self.shared, self.log = client, list(shared), log

    def map(self, jobs: list[GradingJob]) -> Iterator[tuple[GradingJob, dict]]:
        import uuid

        import distributed

        client = self.client
        self._check_workers()
        futures = {}
        for job in jobs:
            key = f"grade-{job.name}-{job.student_id}-{uuid.uuid4().hex}"
            futures[client.submit(execute_submission, job, pure=False, key=key)] = job
        try:
            for fut in distributed.as_completed(list(futures), loop=client.loop):
                job = futures.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:
                    res = worker_failure(exc)
                fut.release()
                yield job, res
        finally:
            if futures:  # interrupted: do not leave our tasks running on a shared cluster
                client.cancel(list(futures))

    def _check_workers(self) -> None:
        """Refuse workers that cannot run the grading code or see the grading files; say what is odd."""
        client = self.client
        where = getattr(client.scheduler, "address", None) or "the Dask scheduler"
        try:
            missing = client.run(_missing_paths, self.shared)
        except Exception as exc:
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
            self.log(f"note: no Dask worker has joined {where} yet; grading starts when one does")
        elif any(n > 1 for n in client.nthreads().values()):
            self.log("note: some Dask workers run several threads; start them with --nthreads 1 "
                     "(one kernel per process)")


def _missing_paths(paths: list[str]) -> list[str]:
    """Run on each Dask worker: the grading paths it cannot see (it must share our filesystem)."""
    return [p for p in paths if not os.path.exists(p)]


def require_distributed():
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
    distributed = require_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    address = scheduler if isinstance(scheduler, str) else getattr(scheduler, "scheduler_address", None)
    if not address:
        raise GradingError(f"dask_scheduler must be an address such as tcp://HOST:8786, a Dask cluster or a "
                           f"distributed.Client, not {scheduler!r}")
    try:
        client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except Exception as exc:
        raise GradingError(
            f"Could not reach the Dask scheduler at {address} within {timeout:g} s ({type(exc).__name__}: {exc}). "
            "Check the address and that `dask scheduler` runs and is reachable from this machine."
        ) from None
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def open_backend(*, workers: int = 1, dask_scheduler=None, dask_timeout: float = DASK_CONNECT_TIMEOUT,
                 shared: list[str] = (), log=print):
    """:class:`LocalPool` of ``workers`` processes, or with ``dask_scheduler`` a :class:`DaskCluster`."""
    if dask_scheduler is None:
        yield LocalPool(workers)
        return
    with dask_client(dask_scheduler, timeout=dask_timeout) as client:
        yield DaskCluster(client, shared=shared, log=log)
