"""The ``course`` command: release, autograde, gradebook, feedback, formgrade, similarity, examples, demo.

Run ``course --help`` or ``course <command> --help``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .assignments import get_assignment, list_assignments
from .backends import DASK_CONNECT_TIMEOUT
from .contract import ContractError, validate_source
from .errors import GradingError
from .reports import print_table, read_log
from .sandbox import GIB, MIB, Limits
from .workspace import Workspace


def _workspace(args) -> Workspace:
    lim = Limits()
    values = {
        "cell_timeout": getattr(args, "cell_timeout", None),
        "notebook_timeout": getattr(args, "notebook_timeout", None),
        "memory_bytes": None if getattr(args, "memory", None) is None else int(args.memory * GIB),
        "max_processes": getattr(args, "max_processes", None),
        "output_bytes": None if getattr(args, "max_output", None) is None else int(args.max_output * MIB),
        "cpus": getattr(args, "cpus", None),
    }
    lim = replace(lim, **{k: v for k, v in values.items() if v is not None})
    return Workspace(args.workdir, limits=lim, sandbox=getattr(args, "sandbox", "auto"),
                     run_experiments=getattr(args, "run_experiments", False))


def _add_limit_options(s) -> None:
    d = Limits()
    g = s.add_argument_group("sandbox and limits (per submission)")
    g.add_argument("--sandbox", choices=["auto", "require", "off"], default="auto",
                   help="run each kernel in a bubblewrap sandbox: when available (auto, the default, with a "
                        "warning otherwise), always (require: refuse to grade without it), or never (off)")
    g.add_argument("--cell-timeout", type=float, default=None, metavar="S", help=f"seconds per cell (default {d.cell_timeout:g})")
    g.add_argument("--notebook-timeout", type=float, default=None, metavar="S",
                   help=f"seconds per notebook (default {d.notebook_timeout:g})")
    g.add_argument("--memory", type=float, default=None, metavar="GIB", help=f"memory limit in GiB (default {d.memory_bytes / GIB:g})")
    g.add_argument("--max-processes", type=int, default=None, metavar="N",
                   help=f"processes and threads in one sandbox (default {d.max_processes})")
    g.add_argument("--max-output", type=float, default=None, metavar="MIB",
                   help=f"output one cell may print, in MiB (default {d.output_bytes / MIB:g})")
    g.add_argument("--run-experiments", action="store_true",
                   help="also re-run cells tagged 'experiment' (training runs); by default their outputs are "
                        "the student's own, kept for grading the written answers")
    g.add_argument("--cpus", type=float, default=None, metavar="N",
                   help=f"CPU cores one sandbox may use, where cgroups are available (default {d.cpus:g})")


def _names(args) -> list[str]:
    names = list_assignments() if getattr(args, "all", False) or not args.assignments else args.assignments
    for n in names:
        get_assignment(n)
    return names


def cmd_list(args) -> int:
    rows = []
    for n in list_assignments():
        spec = get_assignment(n).spec()
        rows.append({"assignment": n, "tests": len(spec.tests), "auto_points": spec.auto_points,
                     "written": len(spec.written), "manual_points": spec.manual_points})
    print_table(pd.DataFrame(rows))
    return 0


def cmd_lint(args) -> int:
    from .contract import check_shape_comments

    bad = 0
    for n in _names(args):
        try:
            spec = validate_source(get_assignment(n).notebook)
            check_shape_comments(get_assignment(n).notebook)  # lesson style: tensor shapes named
            print(f"{n}: ok ({len(spec.tests)} test cells, {spec.auto_points:g} auto points, "
                  f"{len(spec.written)} written answers, {spec.manual_points:g} manual points)")
        except ContractError as exc:
            print(exc, file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def cmd_check(args) -> int:
    """Students: run a notebook's public tests in a fresh kernel and summarise them (course_lib.check)."""
    from .. import check

    return check.run(args)


def cmd_release(args) -> int:
    ws = _workspace(args)
    for n in _names(args):
        path = ws.release(n, output=Path(args.output))
        print(f"released {n}: {path}")
    return 0


def cmd_publish(args) -> int:
    """Release every assignment onto the local student branch (for the README's Colab badges)."""
    from .distribution import publish
    from .project import ProjectError

    root = Path(args.repo).resolve() if args.repo else None
    try:
        result = publish(Workspace(args.workdir, root=root), branch=args.branch, message=args.message)
    except ProjectError as exc:
        raise GradingError(str(exc)) from None
    if result.changed:
        print(f"published {', '.join(result.names)} to branch {result.branch!r}: commit {result.commit[:12]}"
              + (f" (parent {result.parent[:12]})" if result.parent else " (new branch)"))
    else:
        print(f"branch {result.branch!r} already holds this release ({result.commit[:12]}); nothing committed")
    print(f"Your working tree and current branch are unchanged. To publish it: {result.push_command}")
    return 0


def cmd_autograde(args) -> int:
    ws = _workspace(args)
    out = Path(args.output) if args.output else None
    if args.dask_scheduler and args.workers is not None:
        print(f"note: --workers is ignored with --dask-scheduler: the Dask workers of {args.dask_scheduler} "
              "run the notebooks", file=sys.stderr)
    grades = ws.autograde(args.assignment, Path(args.submissions), output=out, students=args.student or None,
                          roster=args.roster,
                          progress=not args.no_progress, workers=args.workers, force=args.force,
                          dask_scheduler=args.dask_scheduler or None, dask_timeout=args.dask_timeout)
    out = out or ws.workdir / args.assignment
    _report(out)
    print(f"\ngrades: {out / 'grades.csv'}\nfeedback: {out / 'feedback'}/<safe_id>.html")
    return 0 if len(grades) else 1


def _report(out: Path) -> pd.DataFrame:
    totals = pd.read_csv(out / "totals.csv", dtype={"student_id": str}, keep_default_na=False)
    print_table(totals.drop(columns=["message"], errors="ignore"))
    log = read_log(out / "grading_log.csv")
    problems = log[log["status"] != "ok"]
    if len(problems):
        print("\nSubmissions that could not be graded normally:")
        print_table(problems[["student_id", "status", "seconds", "message"]])
    return totals


def cmd_gradebook(args) -> int:
    ws = _workspace(args)
    out = Path(args.output) if args.output else ws.workdir / args.assignment
    ws.export(args.assignment, output=out)
    _report(out)
    print(f"\ngrades: {out / 'grades.csv'}  (manual scores from the formgrader are merged)")
    return 0


def cmd_feedback(args) -> int:
    ws = _workspace(args)
    out = Path(args.output) if args.output else ws.workdir / args.assignment
    ws.export(args.assignment, output=out, reveal_hidden_tests=args.reveal_hidden_tests)
    if args.reveal_hidden_tests:
        print("note: the pages show every test's code, hidden tests included (--reveal-hidden-tests)")
    pages = sorted((out / "feedback").glob("*.html"))
    print(f"wrote {len(pages)} feedback pages to {out / 'feedback'}")
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def formgrade_command(ws: Workspace, port: int, token: str) -> list[str]:
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", *root,
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ws.nbroot}",
    ]


def cmd_formgrade(args) -> int:
    ws = _workspace(args)
    ws.release(args.assignment)
    port = args.port or _free_port()
    token = args.token or secrets.token_hex(16)
    print(f"Formgrader for {args.assignment}: http://127.0.0.1:{port}/formgrader?token={token}")
    print("Grade the written answers there, then run `course gradebook "
          f"{args.assignment}` to merge them into grades.csv. Stop with Ctrl-C.")
    sys.stdout.flush()
    proc = subprocess.Popen(formgrade_command(ws, port, token), cwd=ws.nbroot)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0


def cmd_lab(args) -> int:
    """Copy the student releases into a work folder (once) and start JupyterLab on it."""
    from .lab import free_port, lab_command, lab_env, prepare_lab_folder

    ws = _workspace(args)
    folder = Path(args.dir)
    for name, notebook, new in prepare_lab_folder(ws, _names(args), folder):
        print(f"{name}: {notebook}" + ("  (new copy of the student release)" if new else "  (your work, kept as it is)"))
    port = args.port or free_port()
    token = secrets.token_hex(24)
    print(f"\nJupyterLab: http://127.0.0.1:{port}/lab?token={token}\n(loopback only; the token is the password. "
          "Stop with Ctrl-C.)" + ("" if os.environ.get("COURSE_FAST") else
          "\nTip: `COURSE_FAST=1 make lab` runs every training cell in seconds, to check your code first."))
    sys.stdout.flush()
    proc = subprocess.Popen(lab_command(folder, port, token, open_browser=not args.no_browser), cwd=folder,
                            env=lab_env())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0


def cmd_examples(args) -> int:
    from .examples import build_examples

    ws = _workspace(args)
    release_nb = ws.released_notebook(args.assignment)
    for ex, expected in build_examples(args.assignment, Path(args.output), release_notebook=release_nb):
        print(f"{ex.student_id:32s} expected auto score {expected:g}  {ex.description}")
    return 0


def cmd_catch_rate(args) -> int:
    """Per assignment: which wrong_* examples the public checks alone catch (course_lib.grading.catch_rate)."""
    import json

    from .catch_rate import assignments_with_examples, format_catch_rate, measure

    names = args.assignments or assignments_with_examples()
    results = []
    for n in names:
        def progress(student_id, k, total, n=n):
            if not args.json and sys.stderr.isatty():
                print(f"\r  {n}: {k}/{total} {student_id[:50]:<50}", end="", file=sys.stderr, flush=True)

        r = measure(n, timeout=args.timeout or None, progress=progress)
        if not args.json and sys.stderr.isatty():
            print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)
        results.append(r)
        if not args.json:
            print(format_catch_rate(r) + "\n")
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    below = [r for r in results if r.rate < args.min_rate]
    if below:
        print(f"catch rate below {args.min_rate:.0%}: " + ", ".join(f"{r.assignment} {r.rate:.0%}" for r in below),
              file=sys.stderr)
        return 1
    return 0


def cmd_report(args) -> int:
    """What the class got wrong: one HTML page with plots and CSVs (course_lib.grading.class_report)."""
    from .class_report import make_report, summary_lines

    graded = Path(args.graded) if args.graded else Path(args.workdir).resolve() / args.assignment
    rep, page = make_report(graded, args.assignment, out=args.output)
    print("\n".join(summary_lines(rep)))
    print(f"\nclass report: {page}\ntables:       {page.parent}/*.csv")
    return 0


def cmd_export(args) -> int:
    """The gradebook in an LMS's import format (course_lib.grading.lms_export)."""
    from .assignments import find_root
    from .lms_export import export

    graded = Path(args.graded) if args.graded else Path(args.workdir).resolve() / args.assignment
    path, table, problems = export(args.assignment, graded, args.format, roster=args.roster, output=args.output,
                                   submissions=args.submissions, root=find_root(), title=args.title,
                                   canvas_assignment_id=args.canvas_assignment_id)
    print(f"wrote {path} ({args.format}): {int(table['score'].notna().sum())} score(s), {len(table)} row(s)")
    if len(problems):
        print(f"\n{len(problems)} student(s) need a look (also in {path.with_name(path.stem + '.problems.csv')}):",
              file=sys.stderr)
        print_table(problems, file=sys.stderr)
    return 0


def cmd_similarity(args) -> int:
    """Which pairs of submissions share code or written answers (course_lib.grading.similarity)."""
    from .similarity import Settings, compare_submissions
    from .similarity_report import summary_lines, write_report

    release = Path(args.release) if args.release else _workspace(args).released_notebook(args.assignment)
    out = Path(args.output) if args.output else Path(args.workdir) / args.assignment / "similarity"
    result = compare_submissions(release, Path(args.submissions), name=args.assignment, roster=args.roster,
                                 settings=Settings(min_score=args.min_score, top=args.top, common=args.common),
                                 workers=args.workers, dask_scheduler=args.dask_scheduler or None,
                                 dask_timeout=args.dask_timeout)
    print("\n".join(summary_lines(result, write_report(result, out))))
    return 0 if result.compared else 1


def cmd_demo(args) -> int:
    """Release every assignment, grade its example submissions, check and print the gradebook."""
    from .examples import build_examples

    ws = _workspace(args)
    work = ws.workdir
    ok = True
    for n in _names(args):
        rel = ws.release(n, output=work / "release")
        print(f"== {n}: released {rel}")
        a = get_assignment(n)
        if not (a.source_dir / "examples.toml").is_file():
            print(f"   ({n} ships no example submissions)")
            continue
        subs = work / "submissions" / n
        if subs.exists():
            import shutil

            shutil.rmtree(subs)
        examples = build_examples(n, subs, release_notebook=ws.nbroot / "release" / n / f"{n}.ipynb")
        out = work / "graded" / n
        ws.autograde(n, subs, output=out, progress=not args.no_progress, workers=args.workers, force=True)
        totals = pd.read_csv(out / "totals.csv", dtype={"student_id": str}, keep_default_na=False).set_index("student_id")
        rows = []
        for ex, expected in examples:
            got = float(totals.loc[ex.student_id, "auto_score"])
            match = abs(got - expected) < 1e-9
            ok &= match
            rows.append({"student": ex.student_id, "auto": got, "expected": expected,
                         "max": float(totals.loc[ex.student_id, "auto_max"]),
                         "check": "ok" if match else "MISMATCH", "what": ex.description[:60]})
        print(f"\nGradebook for {n} (automatic points):")
        print_table(pd.DataFrame(rows))
        print(f"\ngrades.csv: {out / 'grades.csv'}\nfeedback:   {out / 'feedback'}/")
        from .class_report import make_report, summary_lines

        rep, page = make_report(out, n)
        print(f"\nClass report for {n} (what the example submissions got wrong):")
        print("\n".join(summary_lines(rep)))
        print(f"report:     {page}")
        from .similarity_report import demo_lines

        print("\n" + "\n".join(demo_lines(n, ws.nbroot / "release" / n / f"{n}.ipynb", subs, out / "similarity")))
    if not ok:
        print("\nSome example submissions did not get their expected score.", file=sys.stderr)
        return 1
    print("\nEvery example submission got exactly its expected score.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # Longer than 80 lines on purpose: one short block per subcommand, the command line read as a table.
    p = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=os.environ.get("COURSE_WORKDIR", "grading"),
                   help="grading workspace (default: ./grading or $COURSE_WORKDIR)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list assignments and their points")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("lint", help="check the nbgrader metadata contract of source notebooks")
    s.add_argument("assignments", nargs="*")
    s.set_defaults(func=cmd_lint)

    from .. import check

    s = sub.add_parser("check", help="students: run your notebook's public tests before you submit",
                       description=check.__doc__.splitlines()[0])
    check.add_arguments(s)
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("release", help="write the student version (solutions and hidden tests stripped)")
    s.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    s.add_argument("--all", action="store_true")
    s.add_argument("--output", default="release", help="folder for released assignments (default: ./release)")
    s.set_defaults(func=cmd_release)

    s = sub.add_parser("publish", help="commit the student release of every assignment onto a local branch "
                                       "(default: [tool.course] student_branch), for Colab; prints the push command")
    s.add_argument("--branch", default=None, help="the branch to write (default: student_branch in pyproject.toml)")
    s.add_argument("--message", default=None, help="commit message")
    s.add_argument("--repo", default=None, help="the course repository (default: the one around the current folder)")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("autograde", help="grade SUBMISSIONS/<student_id>/<assignment>.ipynb")
    s.add_argument("assignment")
    s.add_argument("submissions")
    s.add_argument("--output", help="where grades.csv and feedback go (default: WORKDIR/<assignment>)")
    s.add_argument("--student", action="append", metavar="NAME",
                   help="grade only this student: the folder's name or its safe_id (repeatable)")
    s.add_argument("--roster", metavar="CSV", default=None,
                   help="a CSV with the header folder,student_id: grade each listed folder (its name exactly as on "
                        "disk) under that student id, e.g. a folder whose name cannot be used; checked before grading")
    s.add_argument("--workers", type=int, default=None, help="notebooks graded in parallel (default: one per core)")
    s.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="run the notebooks on this Dask scheduler (tcp://HOST:8786) instead of local processes; "
                        "its workers must share this filesystem at the same paths; --workers is then ignored")
    s.add_argument("--dask-timeout", type=float, default=DASK_CONNECT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds to wait for the Dask scheduler to answer (default {DASK_CONNECT_TIMEOUT:g})")
    s.add_argument("--force", action="store_true", help="grade again submissions already graded and unchanged")
    s.add_argument("--no-progress", action="store_true")
    _add_limit_options(s)
    s.set_defaults(func=cmd_autograde)

    for name, fn, text in [("gradebook", cmd_gradebook, "export grades (auto + manual) and totals"),
                           ("feedback", cmd_feedback, "write one feedback page per student")]:
        s = sub.add_parser(name, help=text)
        s.add_argument("assignment")
        s.add_argument("--output")
        if name == "feedback":
            s.add_argument("--reveal-hidden-tests", action="store_true",
                           help="after the final deadline: show every test's code, hidden tests included, in the "
                                "feedback pages (never the solutions)")
        s.set_defaults(func=fn)

    s = sub.add_parser("formgrade", help="grade written answers by hand in nbgrader's formgrader (loopback only)")
    s.add_argument("assignment")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--token", default=None)
    s.set_defaults(func=cmd_formgrade)

    s = sub.add_parser("lab", help="students: open the assignments in JupyterLab (loopback only, with a token)")
    s.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    s.add_argument("--dir", default="lab", help="your work folder (default: ./lab); existing notebooks are never overwritten")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--no-browser", action="store_true", help="only print the URL")
    s.set_defaults(func=cmd_lab)

    s = sub.add_parser("examples", help="write the example submissions of an assignment")
    s.add_argument("assignment")
    s.add_argument("output")
    s.set_defaults(func=cmd_examples)

    s = sub.add_parser("catch-rate", help="which wrong_* example submissions the public checks alone catch")
    s.add_argument("assignments", nargs="*", help="assignments (default: every one with wrong_* examples)")
    s.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds one cell may run (default 120)")
    s.add_argument("--min-rate", type=float, default=0.0, metavar="R",
                   help="exit with status 1 when an assignment's rate is below R (e.g. 0.7)")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.set_defaults(func=cmd_catch_rate)

    s = sub.add_parser("report", help="what the class got wrong: score distribution, pass rate and failure messages per "
                                      "test, tests failing together, time and limits, written answers waiting (HTML + CSV)")
    s.add_argument("assignment")
    s.add_argument("--graded", metavar="DIR", default=None,
                   help="the graded folder course autograde wrote (default: WORKDIR/<assignment>)")
    s.add_argument("--output", metavar="DIR", default=None, help="where report.html and the CSVs go (default: GRADED/report)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="write the grades in an LMS's import format (Canvas, Moodle, Gradescope) or a plain CSV")
    s.add_argument("assignment")
    s.add_argument("--format", required=True, choices=["canvas", "moodle", "gradescope", "csv"])
    s.add_argument("--roster", metavar="CSV", default=None,
                   help="the LMS roster: a CSV with the header student_id and any of name,email,lms_id,sis_user_id,"
                        "sis_login_id,section (needed by every format but csv; the README's instructor workflow "
                        "describes it)")
    s.add_argument("--submissions", metavar="DIR", default=None,
                   help="the submissions folder: each folder's timestamp.txt is its submission time, for the late "
                        "penalty when pyproject.toml sets [tool.course.assignments.<name>] deadline and late_policy")
    s.add_argument("--graded", metavar="DIR", default=None, help="the graded folder (default: WORKDIR/<assignment>)")
    s.add_argument("--output", metavar="FILE", default=None,
                   help="the file to write (default: GRADED/export/<assignment>-<format>.csv)")
    s.add_argument("--title", default=None, help="the assignment's name in the LMS (default: the assignment's name)")
    s.add_argument("--canvas-assignment-id", default=None, metavar="ID",
                   help="Canvas: the assignment's id, so the column updates it instead of creating a new assignment")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("similarity", help="which pairs of submissions share code or written answers beyond the release "
                                          "(HTML + CSV: evidence for a human to review, not a verdict)")
    s.add_argument("assignment")
    s.add_argument("submissions")
    s.add_argument("--output", metavar="DIR", default=None,
                   help="where report.html and the CSVs go (default: WORKDIR/<assignment>/similarity)")
    s.add_argument("--release", metavar="NOTEBOOK", default=None,
                   help="the student version whose code and text everyone shares (default: the assignment's release)")
    s.add_argument("--roster", metavar="CSV", default=None, help="a CSV folder,student_id, as for autograde")
    s.add_argument("--workers", type=int, default=None, help="processes reading the notebooks (default: one per core)")
    s.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="read them on this Dask scheduler's workers instead (they must see the submissions folder)")
    s.add_argument("--dask-timeout", type=float, default=DASK_CONNECT_TIMEOUT, metavar="SECONDS")
    s.add_argument("--min-score", type=float, default=0.2, metavar="S", help="list pairs from this score up (default 0.2)")
    s.add_argument("--top", type=int, default=25, metavar="N", help="pairs shown side by side in the page (default 25)")
    s.add_argument("--common", type=float, default=0.5, metavar="SHARE",
                   help="ignore a fingerprint more than this share of the submissions hold (default 0.5; 1 keeps all)")
    s.set_defaults(func=cmd_similarity)

    s = sub.add_parser("demo", help="release everything, grade the example submissions, print the gradebook")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--workers", type=int, default=None, help="notebooks graded in parallel (default: one per core)")
    s.add_argument("--no-progress", action="store_true")
    _add_limit_options(s)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (GradingError, ContractError) as exc:
        print(f"course: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
