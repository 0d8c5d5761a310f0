"""Similarity of submissions: which pairs of students share code or written answers, as evidence for a human.

``course similarity ASSIGNMENT SUBMISSIONS`` reads every submission's answers (the solution cells: code
cells, and markdown written answers), matched to the release's cells by nbgrader ``grade_id``
(:mod:`.cells`), and fingerprints each one:

- **code**: copydetect's filter (pygments tokens: every variable name becomes ``V``, a function name
  ``F``, a class name ``O``, a string ``S``; comments and whitespace dropped), a stable hash of every
  k-gram of the filtered code (``k`` = 12 characters) and copydetect's robust winnowing (window 4: any
  shared run of 15 filtered characters is found). copydetect's own defaults (25 and 30) are made for
  whole files; an answer cell is a few lines (a 4-line function filters to about 60 characters), where
  they would miss a copy whose statements were reordered. Renaming variables, rewriting comments or
  moving whole blocks leaves most fingerprints as they were.
- **written answers**: a stable hash of every word n-gram (``words`` = 4) of the lower-cased text.

What the release gives everyone is subtracted first: every fingerprint of the release notebook's code
cells (resp. markdown cells) is removed from every submission's code (resp. written answers), so that the
skeletons, docstrings and prompts a class works from count for nothing. So is a fingerprint that more than
``common`` of the submissions share (an idiom everyone writes is no evidence about two of them).

An inverted index over the remaining fingerprints (fingerprint -> the submissions that hold it) gives, for
every pair that shares at least one, how many they share on each question; a pair that shares none is
never compared. A pair's score on a question is Dice's coefficient ``2|A & B| / (|A| + |B|)`` of their
fingerprint sets (1: the same answer up to names, comments and layout; 0: nothing in common beyond the
release); its ``code`` and ``written`` scores pool the questions of that kind the same way, and its overall
``score`` is their mean (each kind counts the same, however long the answers of each are). Clusters link submissions whose score, overall or on one question, reaches ``cluster``.

Fingerprinting is the work, and it runs as jobs (chunks of submissions) on local processes or on the
workers of a Dask cluster, like autograde (:mod:`.backends`). The hashes are stable (the same on every
machine and in every run), never Python's salted ``hash()``. :mod:`.similarity_report` writes the CSV
files and the HTML page.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .backends import DASK_CONNECT_TIMEOUT, default_workers
from .cells import grade_id, is_solution
from .errors import GradingError
from .submissions import discover_submissions, display_name, read_roster

DISCLAIMER = ("This report is evidence for a human to review, not a verdict. A high score means that two "
              "submissions share code or text beyond what the release gives everyone; it does not say that "
              "anyone copied, or who. Short answers and common idioms can coincide by chance: read the "
              "highlighted answers side by side before concluding anything.")
KINDS = ("code", "written")
SMALL_CLASS = 100  # fewer submissions than this are fingerprinted in this process unless workers is given
OVERALL = "overall"


@dataclass(frozen=True)
class Settings:
    k: int = 12  # code: characters of filtered code per fingerprint (copydetect's noise threshold)
    window: int = 4  # code: winnowing window; a shared run of k + window - 1 characters is always found
    words: int = 4  # written answers: words per n-gram
    common: float = 0.5  # a fingerprint more than this share of the submissions hold is ignored...
    common_min: int = 10  # ... when they are also more than this many (a small class keeps everything)
    min_score: float = 0.2  # pairs from this overall score up are listed (CSV, HTML table)
    top: int = 25  # the most similar pairs shown side by side in the HTML page
    cluster: float = 0.5  # clusters link submissions whose score (overall, or on one question) reaches this
    subtract_release: bool = True  # remove the release's own fingerprints (the boilerplate) first

    def __post_init__(self):
        if self.k < 1 or self.window < 1 or self.words < 1:
            raise GradingError("similarity: k, window and words must be at least 1")
        if not 0 < self.common <= 1:
            raise GradingError(f"similarity: common must be a share in (0, 1], not {self.common}")

    def common_cutoff(self, n: int) -> int:
        """A fingerprint held by more than this many of ``n`` submissions is ignored."""
        return max(math.floor(self.common * n), self.common_min)


@dataclass(frozen=True)
class Question:
    grade_id: str
    kind: str  # "code" | "written"


# ----------------------------------------------------------------------------- fingerprints
# A polynomial hash of each k-gram, modulo two primes below 2**26: the combined value is below 2**52,
# exact as a float (copydetect's winnowing compares hashes as floats), the same on every machine.
_P1, _P2 = 67108859, 67108837
_B1, _B2 = 1_000_003, 2_654_435


@functools.lru_cache(maxsize=8)
def _powers(k: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([pow(_B1, k - 1 - j, _P1) for j in range(k)], dtype=np.int64),
            np.array([pow(_B2, k - 1 - j, _P2) for j in range(k)], dtype=np.int64))


def kgram_hashes(text: str, k: int) -> np.ndarray:
    """A stable hash of every k-character window of ``text`` (copydetect's ``hashed_kgrams``, unsalted)."""
    if len(text) < k:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # < 2**21 each
    win = np.lib.stride_tricks.sliding_window_view(chars, k)
    p1, p2 = _powers(k)  # each term < 2**47: a sum of up to 2**11 of them fits in int64
    return (win @ p1 % _P1) * _P2 + (win @ p2 % _P2)


@dataclass
class CodePrint:
    """One cell's code: its copydetect-filtered form, the winnowed fingerprints (``hashes``, with
    repeats) at positions ``idx`` of the filtered code, and copydetect's ``offsets`` back to the source."""

    source: str
    filtered: str
    offsets: np.ndarray
    hashes: np.ndarray
    idx: np.ndarray


def copydetect_utils():
    """``copydetect.utils`` (its filter, winnowing and copied slices), or a clear error without it."""
    try:
        from copydetect import utils
    except ImportError as exc:
        raise GradingError(f"course similarity needs the 'copydetect' package ({exc}). Install it with "
                           "pip install 'course-lib[grading]' (or: pip install copydetect==0.5.0).") from None
    return utils


def code_print(source: str, settings: Settings) -> CodePrint:
    utils = copydetect_utils()
    filter_code, winnow = utils.filter_code, utils.winnow
    if not source.strip():
        empty = np.zeros(0, dtype=np.int64)
        return CodePrint(source, "", np.zeros((0, 2), dtype=np.int64), empty, empty)
    filtered, offsets = filter_code(source, "answer.py", language="python")
    hashes = kgram_hashes(filtered, settings.k)
    if len(hashes):
        hashes, idx = winnow(hashes, settings.window, remove_duplicates=False)
    else:
        idx = np.zeros(0, dtype=np.int64)
    return CodePrint(source, filtered, np.asarray(offsets, dtype=np.int64), np.asarray(hashes, dtype=np.int64),
                     np.asarray(idx, dtype=np.int64))


_WORD = re.compile(r"[^\W_]+")


def text_print(text: str, settings: Settings) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A stable hash of every word n-gram of ``text`` (lower-cased words), and each n-gram's span in it.
    An answer shorter than n words has none (too short to be evidence)."""
    n = settings.words
    tokens = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    hashes, spans = [], []
    for i in range(len(tokens) - n + 1):
        gram = " ".join(t[0] for t in tokens[i:i + n])
        hashes.append(int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=7).digest(), "big"))
        spans.append((tokens[i][1], tokens[i + n - 1][2]))
    return np.array(hashes, dtype=np.int64), spans


def fingerprints(source: str, kind: str, settings: Settings) -> np.ndarray:
    """The sorted, distinct fingerprints of one answer."""
    h = code_print(source, settings).hashes if kind == "code" else text_print(source, settings)[0]
    return np.unique(h)


# ----------------------------------------------------------------------------- notebooks
def questions_of(release) -> list[Question]:
    """The release's answer cells, in order: code solution cells and written answers (by grade_id)."""
    nb = _read(release)
    out, seen = [], set()
    for cell in nb.cells:
        gid = grade_id(cell)
        if is_solution(cell) and gid and gid not in seen and cell.get("cell_type") in ("code", "markdown"):
            seen.add(gid)
            out.append(Question(gid, "code" if cell.get("cell_type") == "code" else "written"))
    return out


def read_answers(path) -> dict[str, str]:
    """``{grade_id: source}`` of a notebook's solution cells (cells sharing a grade_id are joined)."""
    nb = _read(path)
    out: dict[str, str] = {}
    for cell in nb.cells:
        gid = grade_id(cell)
        if is_solution(cell) and gid:
            src = cell.get("source", "")
            src = "".join(src) if isinstance(src, list) else str(src)
            out[gid] = f"{out[gid]}\n{src}" if gid in out else src
    return out


def _read(path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def release_prints(release, settings: Settings) -> dict[str, np.ndarray]:
    """The boilerplate: the fingerprints of every code cell (``code``) and every markdown cell
    (``written``) of the release notebook, the questions' prompts and skeletons included."""
    nb = _read(release)
    parts: dict[str, list[np.ndarray]] = {"code": [np.zeros(0, np.int64)], "written": [np.zeros(0, np.int64)]}
    for cell in nb.cells:
        kind = {"code": "code", "markdown": "written"}.get(cell.get("cell_type"))
        if kind:
            parts[kind].append(fingerprints(str(cell.get("source", "")), kind, settings))
    return {k: np.unique(np.concatenate(v)) for k, v in parts.items()}


@dataclass
class SimilarityJob:
    """Fingerprint these submissions (``(safe_id, notebook path)``): one task for a worker."""

    items: list[tuple[str, str]]
    questions: list[Question]
    settings: Settings


def fingerprint_submission(path, questions: list[Question], settings: Settings) -> dict:
    """``{"status", "message", "prints": {grade_id: fingerprints}}`` of one notebook; a notebook that
    cannot be read is a ``corrupt`` record with the reason, never an exception."""
    try:
        answers = read_answers(path)
    except Exception as exc:  # any unreadable notebook is a recorded row
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return {"status": "corrupt", "message": f"{Path(path).name} is not a readable notebook ({first})", "prints": {}}
    absent = [q.grade_id for q in questions if q.grade_id not in answers]
    message = ""
    if absent:
        message = (f"{len(absent)} answer cell(s) of the release missing (compared as empty): "
                   + ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else ""))
    prints = {q.grade_id: fingerprints(answers.get(q.grade_id, ""), q.kind, settings) for q in questions}
    return {"status": "ok", "message": message, "prints": prints}


def fingerprint_job(job: SimilarityJob) -> list[dict]:
    """Run on a worker: :func:`fingerprint_submission` of every item, each with its ``safe_id``."""
    return [{"safe_id": sid, **fingerprint_submission(path, job.questions, job.settings)} for sid, path in job.items]


# ----------------------------------------------------------------------------- where the jobs run
def run_jobs(jobs: list[SimilarityJob], *, workers: int = 1, dask_scheduler=None,
             dask_timeout: float = DASK_CONNECT_TIMEOUT, shared: list[str] = (),
             log=print) -> Iterator[tuple[SimilarityJob, list[dict] | BaseException]]:
    """Yield ``(job, its results)`` as each job ends, or ``(job, the exception)`` when its worker failed:
    in this process (``workers`` 1), on ``workers`` spawned processes, or on the workers of a Dask
    scheduler (an address, a cluster or a ``distributed.Client``: see :func:`.backends.dask_client`)."""
    if dask_scheduler is not None:
        yield from _run_dask(jobs, dask_scheduler, dask_timeout, shared, log)
    elif workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            try:
                yield job, fingerprint_job(job)
            except Exception as exc:
                yield job, exc
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(fingerprint_job, job): job for job in jobs}
            for fut in cf.as_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:
                    yield futures[fut], exc


def _run_dask(jobs, scheduler, timeout, shared, log):
    from .backends import DaskCluster, dask_client, require_distributed

    distributed = require_distributed()
    with dask_client(scheduler, timeout=timeout) as client:
        # The workers must see the notebooks and import course_lib (the check autograde makes); several
        # threads per worker are fine here (no kernels), so autograde's note about them is left out.
        DaskCluster(client, shared=list(shared), log=lambda m: None if "--nthreads 1" in m else log(m))._check_workers()
        futures = {client.submit(fingerprint_job, job, pure=False, key=f"similarity-{uuid.uuid4().hex}"): job
                   for job in jobs}
        try:
            for fut in distributed.as_completed(list(futures), loop=client.loop):
                job = futures.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:
                    res = exc
                fut.release()
                yield job, res
        finally:
            if futures:  # interrupted: leave nothing of ours running on a shared cluster
                client.cancel(list(futures))


# ----------------------------------------------------------------------------- the comparison
@dataclass
class Row:
    """One submission folder: compared (``ok``) or why not (missing, corrupt, invalid_name, error)."""

    student_id: str
    safe_id: str
    status: str
    message: str = ""
    notebook: str = ""
    code_fingerprints: int = 0
    written_fingerprints: int = 0


@dataclass
class Cluster:
    question: str  # a grade_id, or "overall"
    members: list[str]  # student ids
    score: float  # the mean score of the linked pairs in it


@dataclass
class SimilarityResult:
    assignment: str
    release: str
    questions: list[Question]
    settings: Settings
    rows: list[Row]  # every submission folder, in folder order
    pairs: pd.DataFrame  # every pair sharing a fingerprint, most similar first (see PAIR_COLUMNS)
    clusters: list[Cluster]
    ignored: dict[str, np.ndarray]  # per grade_id: the fingerprints ignored (boilerplate and common ones)
    stats: dict = field(default_factory=dict)

    @property
    def compared(self) -> list[Row]:
        return [r for r in self.rows if r.status == "ok"]

    def listed(self) -> pd.DataFrame:
        """The pairs the reports list: overall score at least ``settings.min_score``."""
        return self.pairs[self.pairs["score"] >= self.settings.min_score - 1e-12]


PAIR_COLUMNS = ["student_a", "student_b", "safe_id_a", "safe_id_b", "score", "code", "written", "shared"]


def compare_submissions(release, submissions, *, name: str | None = None, settings: Settings | None = None,
                        roster=None, workers: int | None = 1, dask_scheduler=None,
                        dask_timeout: float = DASK_CONNECT_TIMEOUT, chunk: int | None = None,
                        log: Callable[[str], object] = print) -> SimilarityResult:
    """Compare every submission ``SUBMISSIONS/<student>/<name>.ipynb`` with every other.

    ``release``: the student version of the notebook (its answer cells are the questions, its code and
    text the boilerplate). ``roster``: a CSV ``folder,student_id`` (:func:`.submissions.read_roster`).
    ``workers`` processes fingerprint the notebooks (``None``: one per core, or this process alone for
    fewer than :data:`SMALL_CLASS` submissions), or the workers of ``dask_scheduler``, which must see the
    submissions at the same path."""
    t0 = time.perf_counter()
    copydetect_utils()  # here, before any worker starts
    settings = settings or Settings()
    release, submissions = Path(release), Path(submissions)
    name = name or release.stem
    if not release.is_file():
        raise GradingError(f"Release notebook {release} does not exist (run `course release {name}` first).")
    if not submissions.is_dir():
        raise GradingError(f"Submissions folder {submissions} does not exist "
                           f"(expected {submissions}/<student_id>/{name}.ipynb).")
    if dask_scheduler is not None:
        submissions = submissions.resolve()  # remote workers do not share this process's cwd
    questions = questions_of(release)
    if not questions:
        raise GradingError(f"{release} has no answer cells (nbgrader solution cells with a grade_id) to compare.")
    folder_ids = read_roster(roster, submissions) if roster is not None else None
    subs = discover_submissions(submissions, name, log=log, roster=folder_ids)
    rows = [Row(display_name(s.student_id), s.safe_id, s.status, s.message, str(s.notebook or "")) for s in subs]
    by_safe = {r.safe_id: r for r in rows if r.status == "ok"}  # safe ids of compared folders are distinct
    todo = [(r.safe_id, r.notebook) for r in by_safe.values()]
    t_found = time.perf_counter()

    if workers is None:  # a spawned process costs seconds to start: worth it for a large class only
        workers = default_workers() if len(todo) >= SMALL_CLASS else 1
    workers = max(1, int(workers))
    chunk = chunk or max(1, min(50, math.ceil(len(todo) / (4 * workers))))
    jobs = [SimilarityJob(todo[i:i + chunk], questions, settings) for i in range(0, len(todo), chunk)]
    prints: dict[str, dict[str, np.ndarray]] = {}
    for job, res in run_jobs(jobs, workers=workers, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout,
                             shared=[str(submissions)], log=log):
        if isinstance(res, BaseException):
            for sid, _ in job.items:
                r = by_safe[sid]
                r.status, r.message = "error", f"the similarity worker failed: {type(res).__name__}: {res}"
            continue
        for rec in res:
            r = by_safe[rec["safe_id"]]
            r.status, r.message = rec["status"], rec["message"]
            if rec["status"] == "ok":
                prints[r.safe_id] = rec["prints"]
    t_prints = time.perf_counter()

    compared = [r for r in rows if r.status == "ok"]
    boiler = release_prints(release, settings) if settings.subtract_release else {}
    sizes, pair_codes, inter, ignored = _index(compared, prints, questions, boiler, settings)
    for i, r in enumerate(compared):
        r.code_fingerprints = int(sum(sizes[i, j] for j, q in enumerate(questions) if q.kind == "code"))
        r.written_fingerprints = int(sum(sizes[i, j] for j, q in enumerate(questions) if q.kind == "written"))
    pairs = _pair_table(compared, questions, sizes, pair_codes, inter)
    clusters = _clusters(compared, questions, pairs, settings)
    n = len(compared)
    stats = {"submissions": len(rows), "compared": n, "all_pairs": n * (n - 1) // 2, "candidate_pairs": len(pairs),
             "listed_pairs": int((pairs["score"] >= settings.min_score - 1e-12).sum()),
             "common_cutoff": settings.common_cutoff(n),
             "ignored_common": int(sum(len(v) for v in ignored.values())
                                   - sum(len(boiler.get(q.kind, ())) for q in questions)),
             "backend": "dask" if dask_scheduler is not None else f"{workers} worker{'s' if workers > 1 else ''}",
             "jobs": len(jobs), "seconds_discover": t_found - t0, "seconds_fingerprint": t_prints - t_found,
             "seconds_compare": time.perf_counter() - t_prints, "seconds": time.perf_counter() - t0}
    return SimilarityResult(name, str(release), questions, settings, rows, pairs, clusters, ignored, stats)


def _index(compared: list[Row], prints, questions, boiler, settings):
    """The inverted index, question by question: sizes (n, Q) of each submission's fingerprint sets
    once the boilerplate and the common fingerprints are removed; the pairs (``a * n + b``, a < b) that
    share any, and how many they share on each question (P, Q); the ignored fingerprints per question."""
    n, nq = len(compared), len(questions)
    cutoff = settings.common_cutoff(n)
    sizes = np.zeros((n, nq), dtype=np.int64)
    per_q, ignored = [], {}
    for j, q in enumerate(questions):
        arrs = [prints[r.safe_id][q.grade_id] for r in compared]
        bp = boiler.get(q.kind, np.zeros(0, np.int64))
        if len(bp):
            arrs = [a[~np.isin(a, bp, assume_unique=True)] for a in arrs]
        h = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
        owner = np.repeat(np.arange(n), [len(a) for a in arrs])
        uniq, inv, df = np.unique(h, return_inverse=True, return_counts=True)
        ignored[q.grade_id] = np.union1d(bp, uniq[df > cutoff])
        keep = df[inv] <= cutoff
        sizes[:, j] = np.bincount(owner[keep], minlength=n)
        shared = keep & (df[inv] >= 2)
        g, o = inv[shared], owner[shared]
        order = np.lexsort((o, g))
        g, o = g[order], o[order]
        codes = [np.zeros(0, np.int64)]
        if len(g):
            starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
            lengths = np.diff(np.r_[starts, len(g)])
            for m in np.unique(lengths):  # every posting list of length m at once
                members = o[starts[lengths == m][:, None] + np.arange(m)]  # (groups, m), sorted rows
                ia, ib = np.triu_indices(int(m), 1)
                codes.append((members[:, ia] * n + members[:, ib]).ravel())
        pc, cnt = np.unique(np.concatenate(codes), return_counts=True)
        per_q.append((pc, cnt))
    pair_codes = np.unique(np.concatenate([pc for pc, _ in per_q])) if per_q else np.zeros(0, np.int64)
    inter = np.zeros((len(pair_codes), nq), dtype=np.int64)
    for j, (pc, cnt) in enumerate(per_q):
        inter[np.searchsorted(pair_codes, pc), j] = cnt
    return sizes, pair_codes, inter, ignored


def _dice(shared: np.ndarray, total: np.ndarray) -> np.ndarray:
    return np.divide(2.0 * shared, total, out=np.zeros(shared.shape, dtype=float), where=total > 0)


def _pair_table(compared, questions, sizes, pair_codes, inter) -> pd.DataFrame:
    n = len(compared)
    a, b = pair_codes // max(n, 1), pair_codes % max(n, 1)
    tot = sizes[a] + sizes[b]  # (P, Q)
    cols: dict[str, object] = {
        "student_a": [compared[i].student_id for i in a], "student_b": [compared[i].student_id for i in b],
        "safe_id_a": [compared[i].safe_id for i in a], "safe_id_b": [compared[i].safe_id for i in b]}
    for kind in KINDS:
        sel = [j for j, q in enumerate(questions) if q.kind == kind]
        cols[kind] = _dice(inter[:, sel].sum(1), tot[:, sel].sum(1))
    present = [kind for kind in KINDS if any(q.kind == kind for q in questions)]
    cols["score"] = sum(cols[kind] for kind in present) / len(present)  # each kind counts the same
    cols["shared"] = inter.sum(1)
    for j, q in enumerate(questions):
        cols[q.grade_id] = _dice(inter[:, j], tot[:, j])
    cols = {c: cols[c] for c in PAIR_COLUMNS + [q.grade_id for q in questions]}
    df = pd.DataFrame(cols) if len(pair_codes) else pd.DataFrame(columns=list(cols))
    for j, q in enumerate(questions):  # how many fingerprints the pair shares on each question
        df[f"{q.grade_id} shared"] = inter[:, j]
    df = df.sort_values(["score", "code", "written", "student_a", "student_b"],
                        ascending=[False, False, False, True, True], kind="stable").reset_index(drop=True)
    return df


def _clusters(compared, questions, pairs: pd.DataFrame, settings: Settings) -> list[Cluster]:
    """Groups of submissions linked by pairs whose score reaches ``settings.cluster``: overall, then per
    question (where at least 2 fingerprints are shared); groups of two or more, the largest first."""
    out: list[Cluster] = []
    for col in [OVERALL] + [q.grade_id for q in questions]:
        score = pairs["score"] if col == OVERALL else pairs[col]
        linked = score >= settings.cluster
        if col != OVERALL:
            linked &= pairs[f"{col} shared"] >= 2
        edges = pairs[linked]
        found = []
        for members in _components(zip(edges["student_a"], edges["student_b"], strict=True)):
            inside = edges["student_a"].isin(members)
            mean = float(score[edges.index[inside]].mean())
            found.append(Cluster(col, sorted(members), mean))
        out.extend(sorted(found, key=lambda c: (-len(c.members), -c.score, c.members)))
    return out


def _components(edges) -> list[list[str]]:
    """The connected components (of two or more nodes) of a graph given by its edges (union-find)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return list(groups.values())
