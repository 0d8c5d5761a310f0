"""Grading throughput: plain serial `nbgrader autograde` vs `course autograde --workers N`.

    .venv/bin/python benchmarks/grading_throughput.py [--assignment rnn_lm] [--copies 1] [--workers 1 2]

Builds the assignment's example submissions (``--copies`` times each), then grades the same set
(1) with the nbgrader command line, serially, in a workspace's nbgrader course directory, and
(2) with `course autograde` for each worker count, each in a fresh workspace. Prints submissions per
minute and the speed-up over plain nbgrader; writes the table as CSV with --csv. A measurement, not a
test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from course_lib.grading.course import Workspace, find_root
from course_lib.grading.examples import build_examples


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignment", default="rnn_lm")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--csv")
    args = p.parse_args(argv)
    name, root = args.assignment, find_root()
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        ws0 = Workspace(tmp / "plain", root=root)
        release = ws0.release(name)
        base = tmp / "examples"
        build_examples(name, base, release_notebook=release, root=root)
        subs = tmp / "subs"
        for c in range(args.copies):
            for d in sorted(base.iterdir()):
                shutil.copytree(d, subs / f"{d.name}_{c}")
        n = sum(1 for _ in subs.iterdir())
        rows = []

        # (1) plain nbgrader, serial, on the same notebooks
        for d in subs.iterdir():
            dest = ws0.nbroot / "submitted" / d.name / name
            dest.mkdir(parents=True)
            shutil.copy(d / f"{name}.ipynb", dest / f"{name}.ipynb")
        env = dict(os.environ, COURSE_FAST="1", COURSE_AUTOGRADE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--force", "--create"],
                       cwd=ws0.nbroot, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        plain = time.perf_counter() - t0
        rows.append({"grader": "nbgrader autograde (serial)", "submissions": n, "seconds": plain})

        # (2) course autograde with N workers
        for w in args.workers:
            ws = Workspace(tmp / f"course_w{w}", root=root)
            t0 = time.perf_counter()
            ws.autograde(name, subs, progress=False, workers=w, force=True, log=lambda *a: None)
            rows.append({"grader": f"course autograde --workers {w}", "submissions": n, "seconds": time.perf_counter() - t0})
        df = pd.DataFrame(rows)
        df["per_minute"] = (60 * df.submissions / df.seconds).round(2)
        df["speedup_vs_nbgrader"] = (plain / df.seconds).round(2)
        df["seconds"] = df.seconds.round(1)
        print(f"{name}: {n} submissions, {os.cpu_count()} cores")
        print(df.to_string(index=False))
        if args.csv:
            df.to_csv(args.csv, index=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
