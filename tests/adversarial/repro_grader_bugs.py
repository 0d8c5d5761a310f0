"""Minimal reproductions of the grader bugs the adversarial corpus found (tests/test_adversarial.py).

Run one (or ``all``) from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python tests/adversarial/repro_grader_bugs.py leak

Each prints what happens; "BUG" lines state the observed misbehaviour. They use the toy course of
tests/conftest.py (one test cell ``test_add`` 2 pts, ``test_add_negative`` 1 pt) in a temporary folder.

- ``leak``      the student's exception message (shown on the feedback page) carries hidden test code
- ``forbid``    forbid= bypass: ``import torch as T`` hides getattr(T._C, ...) from the deny-list scans
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: conftest's toy course


def _toy(tmp: Path):
    from conftest import make_toy_course

    from course_lib.grading.examples import solution_notebook
    from course_lib.grading.workspace import Workspace

    root = make_toy_course(tmp)
    ws = Workspace(tmp / "grading", root=root, limits={"cell_timeout": 5, "notebook_timeout": 60})
    release = nbformat.read(ws.release("toy"), as_version=4)
    source = nbformat.read(root / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    return ws, solution_notebook(source, release)


def _grade(ws, subs: dict, tmp: Path):
    """Write {student: notebook} and autograde them; returns (grades, log)."""
    from course_lib.grading.reports import read_log

    folder = tmp / "subs"
    for sid, nb in subs.items():
        (folder / sid).mkdir(parents=True)
        nbformat.write(nb, folder / sid / "toy.ipynb")
    grades = ws.autograde("toy", folder, output=tmp / "out", progress=False, workers=1, log=lambda *a: None)
    log = read_log(tmp / "out" / "grading_log.csv").set_index("student_id")
    for sid in subs:
        auto = grades[(grades.student_id == sid) & grades.question.str.startswith("test_")].score.sum()
        print(f"  {sid}: auto score {auto:g}/3, status {log.loc[sid, 'status']!r}, message {log.loc[sid, 'message'][:160]!r}")
    return grades, log










def leak():
    tmp = Path(tempfile.mkdtemp(prefix="repro-leak-"))
    ws, sol = _toy(tmp)
    nb = copy.deepcopy(sol)
    nb.cells[2].source = ("def add(a, b):\n    if isinstance(a, float):\n        t = open('toy.ipynb').read()\n"
                          "        raise ValueError(t[t.rfind('BEGIN HIDDEN'):][:160])\n    return a + b")
    _grade(ws, {"leaker": nb}, tmp)
    page = (tmp / "out" / "feedback" / "leaker.html").read_text()
    if "add(2.5, 2)" in page:
        print("BUG: the feedback page shows hidden test code (add(2.5, 2)), copied into the student's own "
              "exception message from the graded notebook in the working folder")


BYPASS = """import torch as T
_ln = getattr(T.nn.functional, "layer" + "_norm")
_no_function_modes = getattr(T._C, "Disable" + "TorchFunction")
_no_dispatch_modes = getattr(T.utils, "_python" + "_dispatch")._disable_current_modes

def layer_norm(x, eps=1e-5):
    with _no_function_modes(), _no_dispatch_modes():
        return _ln(x, x.shape[-1:], eps=eps)
"""


def forbid():
    import torch

    from course_lib.grading import record, scan

    names = ["torch.nn.functional.layer_norm", "torch.nn.LayerNorm"]
    hits = [scan.find_forbidden_use(BYPASS, n) for n in names] + [scan.find_tampering(BYPASS)]
    print(f"static scans (forbidden use x2, tampering) of the answer: {hits}")
    ns: dict = {}
    exec(BYPASS, ns)
    x = torch.randn(2, 5)
    try:
        record.grade("test_layer_norm", lambda: ns["layer_norm"](x), lambda out: None, forbid=names)
        if not any(hits):
            print("BUG: torch.nn.functional.layer_norm ran inside grade(..., forbid=...) and no scan flags the code")
    except Exception as exc:
        print(f"blocked at run time ({type(exc).__name__})")


if __name__ == "__main__":
    which = sys.argv[1:] or ["all"]
    funcs = {f.__name__: f for f in (leak, forbid)}
    for name in (list(funcs) if which == ["all"] else which):
        print(f"== {name}")
        funcs[name]()
    os._exit(0)  # do not wait for anything a repro left behind
