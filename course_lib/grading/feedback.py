"""Feedback pages: one HTML page per student, from ``templates/feedback.html.j2``.

Each graded cell gets a row: its score, passed / failed / partial (or, for a written answer, graded
by hand or not yet), and for a failed test a safe hint: the exception's type and message, never the
test's code (unless the instructor reveals every test after the final deadline).
"""

from __future__ import annotations

import functools
import html
import json
import shutil
from pathlib import Path

import nbformat

from ..check_kernel import strip_ansi
from ..files import atomic_write_text
from .cells import grade_id, is_test_cell
from .contract import NotebookSpec
from .reports import GRADED_STATUSES


def hint_for(ename: str, evalue: str) -> str:
    """A safe one-line hint from a test's exception: type and message, never source lines."""
    evalue = strip_ansi(evalue).strip()
    if (ename == "NotImplementedError" and not evalue) or evalue == "NotImplementedError":
        return "Not answered yet (the function still raises NotImplementedError)."
    if ename in ("CheckFailed", "AssertionError"):
        return evalue[:400] or "A check failed."
    line = evalue.splitlines()[0][:300] if evalue else ""
    return f"{ename}: {line}" if line else ename


def test_messages(executed: Path) -> dict[str, str]:
    """Failure hints per test cell of an executed notebook: the exception's type and message, never
    the test's code."""
    msgs: dict[str, str] = {}
    if not executed.is_file():
        return msgs
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return msgs
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                ename, evalue = o.get("ename", "Error"), str(o.get("evalue", ""))
                msgs[grade_id(cell)] = hint_for(ename, evalue)
                break
    return msgs


def test_sources(notebook: Path) -> dict[str, str]:
    """Every test cell's code, hidden tests included (for --reveal-hidden-tests); never solutions."""
    nb = nbformat.read(notebook, as_version=4)
    return {grade_id(cell): cell.source for cell in nb.cells if is_test_cell(cell)}


@functools.lru_cache(maxsize=1)
def _template():
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("course_lib.grading", "templates"),
                             autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["esc"] = lambda value: Markup(html.escape(str(value)))
    env.filters["g"] = lambda value: f"{float(value):g}"
    return env.get_template("feedback.html.j2")


def feedback_rows(spec: NotebookSpec, rec: dict, info: dict, msgs: dict,
                  tests: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """One row per graded cell (score, state, hint) and the totals: auto, manual, pending_manual."""
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
        elif score is None:
            state, hint = "to be graded by hand", ""
            pending += 1
        else:
            state, hint = "graded by hand", i.get("comment") or ""
            manual += float(score)
        rows.append({"grade_id": cell.grade_id, "kind": "test" if cell.kind == "test" else "written",
                     "shown": "–" if score is None else f"{float(score):g}", "points": cell.points,
                     "state": state, "hint": hint,
                     "test_code": tests.get(cell.grade_id) if tests else None})  # --reveal-hidden-tests
    return rows, {"auto": auto, "manual": manual, "pending_manual": pending}


def feedback_html(name: str, sid: str, spec: NotebookSpec, rec: dict, info: dict, msgs: dict,
                  tests: dict[str, str] | None = None, safe_id: str | None = None) -> str:
    """The feedback page of student ``sid`` (the name as the instructor knows it; ``safe_id`` the
    id of the page's file): ``rec`` is the grading log's row, ``info`` the score and comment of each
    graded cell, ``msgs`` the hints of failed tests, ``tests`` the test code to show."""
    rows, totals = feedback_rows(spec, rec, info, msgs, tests)
    data = json.dumps({"student_id": sid, "safe_id": safe_id or sid, "assignment": name, **totals})
    # Inside <script>: a name is data, never markup (no "<", ">" or "&" reaches the HTML parser).
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _template().render(
        name=name, sid=sid, rows=rows, auto=totals["auto"], manual=totals["manual"], pending=totals["pending_manual"],
        auto_max=spec.auto_points, manual_max=spec.manual_points, status=rec["status"], message=rec["message"],
        data=data)


def write_feedback(name: str, spec: NotebookSpec, details: dict, out: Path, *, autograded: Path,
                   reveal: Path | None = None) -> None:
    """``out/feedback/<safe_id>.html`` and ``out/autograded/<safe_id>.ipynb`` for every student in
    ``details`` (``{safe_id: (log row, cell info)}``; the page shows the row's ``student_id``, the
    name as it is); executed notebooks are read from
    nbgrader's ``autograded`` folder. ``reveal``: the source notebook whose tests to show."""
    tests = test_sources(reveal) if reveal is not None else {}
    fb_dir = out / "feedback"
    nb_dir = out / "autograded"
    fb_dir.mkdir(parents=True, exist_ok=True)
    nb_dir.mkdir(parents=True, exist_ok=True)
    for sid, (rec, info) in details.items():
        executed = autograded / sid / name / f"{name}.ipynb"
        msgs = test_messages(executed) if rec["status"] in GRADED_STATUSES else {}
        if executed.is_file():
            shutil.copyfile(executed, nb_dir / f"{sid}.ipynb")
        atomic_write_text(fb_dir / f"{sid}.html",
                          feedback_html(name, rec.get("student_id", sid), spec, rec, info, msgs, tests, safe_id=sid))
