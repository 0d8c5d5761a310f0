"""Similarity throughput: `course similarity` on a synthetic class, local processes and a Dask cluster.

    .venv/bin/python benchmarks/similarity_throughput.py [--students 500] [--workers 1 2] [--dask 2] [--pad-kb 150]

Writes a synthetic class (tests/similarity_class.py: independent students whose answers are assembled
from alternatives, 7 planted copies, 2 blank releases; ``--students`` in all; ``--parts`` times 3 code and
2 written answers, 12 and 8 by default, about one real assignment's), each notebook padded with
a PNG output to ``--pad-kb`` KiB like a notebook that ran its experiments, then times
:func:`course_lib.grading.similarity.compare_submissions` (discover, fingerprint, index and score) and the
report (CSV + HTML) with ``--workers`` local processes each, and on a Dask ``LocalCluster`` of ``--dask``
single-threaded worker processes (started beforehand; its start-up is printed apart). Prints the seconds,
submissions per second, the pairs that share any fingerprint (scored from the index's counts; only the
report's top pairs are compared in full, for the highlights), where the planted pairs rank, and
an estimate of comparing every pair in full with copydetect's own ``compare_files`` (timed on a sample of
pairs). A measurement, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import similarity_class as sc

from course_lib.grading.similarity import compare_submissions, read_answers
from course_lib.grading.similarity_report import _code_print, filtered_map, write_report


def naive_seconds(subs: Path, students: list[str], sample: int, seed: int = 0) -> tuple[float, int]:
    """Seconds to compare every pair's code answers in full with copydetect (``CodeFingerprint`` of each
    answer once, ``compare_files`` per pair and question), extrapolated from ``sample`` random pairs."""
    from copydetect import CodeFingerprint, compare_files

    qs = [g for g in read_answers(subs / students[0] / f"{sc.NAME}.ipynb") if not g.startswith("explain")]
    t0 = time.perf_counter()
    prints = {s: {q: CodeFingerprint(f"{s}.py", 12, 4, fp=io.StringIO(a.get(q, "")), language="python") for q in qs}
              for s in students for a in [read_answers(subs / s / f"{sc.NAME}.ipynb")]}
    build = time.perf_counter() - t0
    rng = random.Random(seed)
    pairs = [tuple(rng.sample(students, 2)) for _ in range(sample)]
    t0 = time.perf_counter()
    for a, b in pairs:
        for q in qs:
            compare_files(prints[a][q], prints[b][q])
    per_pair = (time.perf_counter() - t0) / sample
    n = len(students)
    return build + per_pair * n * (n - 1) / 2, n * (n - 1) // 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=500, help="submissions in all (default 500)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local process counts to time")
    p.add_argument("--dask", type=int, default=2, help="Dask LocalCluster workers (0: skip)")
    p.add_argument("--parts", type=int, default=4,
                   help="the assignment repeats its 3 code and 2 written questions this many times (default 4)")
    p.add_argument("--pad-kb", type=int, default=150, help="size of each notebook's padding output (KiB)")
    p.add_argument("--naive-sample", type=int, default=300, help="pairs timed for the full-comparison estimate (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="similarity-bench-"))
    try:
        n_indep = args.students - len(sc.PLANTED) - 2
        students, sources = sc.make_class(n=n_indep, seed=args.seed, parts=args.parts)
        pad = random.Random(args.seed).randbytes(args.pad_kb * 1024 * 3 // 4)  # base64 makes it pad_kb
        t0 = time.perf_counter()
        release = sc.write_class(tmp, students, pad=pad, parts=args.parts)
        subs = tmp / "subs"
        size = sum(f.stat().st_size for f in subs.rglob("*.ipynb")) / len(students) / 1024
        print(f"{len(students)} submissions ({size:.0f} KiB each, {3 * args.parts} code and {2 * args.parts} written "
              f"answers) written in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores")
        rows, results = [], {}

        def run(label, workers, **kw):
            _code_print.cache_clear()  # each run's report fingerprints its answers afresh
            filtered_map.cache_clear()
            t0 = time.perf_counter()
            res = compare_submissions(release, subs, workers=workers, log=lambda *a: None, **kw)
            t1 = time.perf_counter()
            write_report(res, tmp / f"out-{label}")
            t2 = time.perf_counter()
            st = res.stats
            rows.append({"backend": label, "submissions": st["compared"], "discover_s": st["seconds_discover"],
                         "fingerprint_s": st["seconds_fingerprint"], "compare_s": st["seconds_compare"],
                         "report_s": t2 - t1, "total_s": t2 - t0, "per_second": st["compared"] / (t2 - t0),
                         "pairs_sharing": st["candidate_pairs"], "listed": st["listed_pairs"],
                         "all_pairs": st["all_pairs"]})
            results[label] = res

        for w in args.workers:
            run(f"local, {w} worker{'s' if w > 1 else ''}", w)
        if args.dask:
            import distributed

            t0 = time.perf_counter()
            with distributed.LocalCluster(n_workers=args.dask, threads_per_worker=1, processes=True,
                                          dashboard_address=None) as cluster:
                print(f"Dask LocalCluster of {args.dask} workers started in {time.perf_counter() - t0:.1f} s")
                run(f"dask, {args.dask} workers", None, dask_scheduler=cluster.scheduler_address)
        df = pd.DataFrame(rows)
        for c in df.columns:
            if c.endswith("_s") or c == "per_second":
                df[c] = df[c].round(2)
        print(df.to_string(index=False))
        first = next(iter(results.values()))
        same = all(r.pairs.equals(first.pairs) for r in results.values())
        print(f"same pairs and scores on every backend: {same}")
        planted = {frozenset((c, s)) for c, s in sources.items()} | {frozenset(("copy_ring_1", "copy_ring_2"))}
        ranks = [i + 1 for i, (a, b) in enumerate(zip(first.pairs.student_a, first.pairs.student_b, strict=True))
                 if frozenset((a, b)) in planted]
        print(f"planted pairs rank {ranks} (of {len(first.pairs)} pairs sharing a fingerprint)")
        if args.naive_sample:
            names = [s.student_id for s in students]
            secs, n_pairs = naive_seconds(subs, names, args.naive_sample, args.seed)
            print(f"every pair in full with copydetect.compare_files (code answers only, estimated from "
                  f"{args.naive_sample} pairs): {secs:.0f} s for {n_pairs} pairs")
        if args.csv:
            df.to_csv(args.csv, index=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
