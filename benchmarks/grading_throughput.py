"""Grading throughput: plain serial `nbgrader autograde` vs `course autograde --workers N`.

    .venv/bin/python benchmarks/grading_throughput.py [--assignment rnn_lm] [--copies 1] [--workers 1 2]

Builds the assignment's example submissions (``--copies`` times each), then grades the same set
(1) with the nbgrader command line and nbgrader's default configuration (no sandbox, checks in the
kernel), serially, (2) with `course autograde --workers 1 --sandbox off` (to measure the sandbox's
overhead) and (3) with `course autograde --workers N` and the sandbox on, for each N, each in a
fresh, already released workspace. Prints submissions per minute, the speed-up over plain nbgrader
and the sandbox overhead; writes the table as CSV with --csv. A measurement, not a test: run it on
an otherwise idle machine.
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

from course_lib.grading.assignments import find_root
from course_lib.grading.examples import build_examples
from course_lib.grading.sandbox import probe
from course_lib.grading.workspace import Workspace


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

        # (1) plain nbgrader, serial, on the same notebooks, with nbgrader's own defaults
        plain_root = tmp / "plain_nbgrader"
        shutil.copytree(ws0.nbroot / "source", plain_root / "source")
        shutil.copytree(ws0.nbroot / "release", plain_root / "release")
        shutil.copyfile(ws0.nbroot / "gradebook.db", plain_root / "gradebook.db")
        (plain_root / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            f"c.CourseDirectory.root = {str(plain_root)!r}\n"
            "c.CourseDirectory.course_id = 'nlm_course'\n"
            f"c.CourseDirectory.db_url = 'sqlite:///{plain_root / 'gradebook.db'}'\n"
            "c.Execute.timeout = 60\n")
        for d in subs.iterdir():
            dest = plain_root / "submitted" / d.name / name
            dest.mkdir(parents=True)
            shutil.copy(d / f"{name}.ipynb", dest / f"{name}.ipynb")
        env = dict(os.environ, COURSE_FAST="1", COURSE_AUTOGRADE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--force", "--create"],
                       cwd=plain_root, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        plain = time.perf_counter() - t0
        rows.append({"grader": "nbgrader autograde (serial, no sandbox)", "workers": 1, "sandbox": "off",
                     "submissions": n, "seconds": plain})

        # (2) and (3): course autograde, released beforehand (as nbgrader's course dir was)
        runs = [(1, "off")] + [(w, "auto") for w in args.workers]
        for w, sandbox in runs:
            ws = Workspace(tmp / f"course_w{w}_{sandbox}", root=root, sandbox=sandbox)
            ws.ensure_released(name)
            t0 = time.perf_counter()
            ws.autograde(name, subs, progress=False, workers=w, force=True, log=lambda *a: None)
            label = "bubblewrap" if sandbox == "auto" and probe() is None else "off"
            rows.append({"grader": f"course autograde --workers {w}" + (" --sandbox off" if sandbox == "off" else ""),
                         "workers": w, "sandbox": label, "submissions": n, "seconds": time.perf_counter() - t0})
        df = pd.DataFrame(rows)
        df["per_minute"] = (60 * df.submissions / df.seconds).round(2)
        df["speedup_vs_nbgrader"] = (plain / df.seconds).round(2)
        on1 = df[(df.workers == 1) & (df.sandbox == "bubblewrap")].seconds
        off1 = df[(df.workers == 1) & (df.sandbox == "off") & df.grader.str.startswith("course")].seconds
        df["seconds"] = df.seconds.round(1)
        print(f"{name}: {n} submissions, {os.cpu_count()} cores")
        print(df.to_string(index=False))
        if len(on1) and len(off1):
            print(f"sandbox overhead per submission (1 worker): {100 * (on1.iloc[0] / off1.iloc[0] - 1):+.1f}%")
        ws_rows = df[df.sandbox == "bubblewrap"].set_index("workers").per_minute
        if 1 in ws_rows and 2 in ws_rows:
            print(f"2 workers vs 1 (sandbox on): {ws_rows[2] / ws_rows[1]:.2f}x")
        if args.csv:
            df.to_csv(args.csv, index=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
