"""How a test cell runs: the student's code in the kernel, the checks in a clean process.

A test cell has two halves::

    from course_lib.grading.checks import assert_close, grade

    def run():                     # runs in the student's kernel: call the student's code
        return {"loss": mask_loss(LOSSES, MASK)}

    def check(out):                # compares plain data against the reference
        assert_close(out["loss"], 0.3444, name="mask_loss(losses, mask)", atol=1e-4)

    grade("test_mask_loss", run, check)

In JupyterLab (and under ``pytest --nbval``) ``grade`` runs both halves at once, so a student sees
the result straight away: ``test_mask_loss: public checks passed (hidden tests run at grading)``, or
``test_mask_loss: FAILED`` and the check's message (in the instructor's source notebook, whose test
cells still hold their hidden tests, a pass says so instead). While grading, the notebook runs in a
sandbox where ``grade`` only *records* what ``run`` returned (tensors, numbers, strings and
containers of them, saved with ``torch.save``); the grader then loads the records with ``torch.load(weights_only=True)`` in a fresh
process that never ran student code and calls ``check`` there, with the test cell's code taken from
the instructor's source notebook. Redefining ``torch.allclose``, builtins, ``sys.modules`` entries
or ``grade`` itself inside the kernel therefore changes nothing about how an answer is judged: to
pass, the recorded values must be right.

``check`` must get everything it compares from ``out`` plus values it computes itself (inputs are
rebuilt from fixed seeds, weights are loaded into the student's model from the test), never from
the student's namespace.

``forbid`` names functions a part must not use (``"torch.nn.LayerNorm"``,
``"torch.nn.functional.scaled_dot_product_attention"``, ``"course_solutions.layers"``): they raise a
clear error while ``run`` executes (:mod:`.forbid`), and the grader also looks for them in the
student's code (:mod:`.scan`). What ``run`` returns is copied to plain data by :mod:`.plain`.

Imports run one way: ``plain``, ``forbid`` and ``scan`` import nothing from the package; this
module imports them; :mod:`.checks` (what test cells import) re-exports :func:`grade` from here.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .forbid import ForbiddenFunction, forbidden, forbidden_message
from .plain import RecordError, to_data
from .scan import dynamic_roots_for, find_forbidden_use, find_tampering, reachable_code

RECORD_ENV = "COURSE_GRADING_RECORD"  # the kernel's record folder (the scan flags the name in student code)
RECORD_SUFFIX = ".pt"
TEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,120}$")

__all__ = ["grade", "to_data", "forbidden", "ForbiddenFunction", "RecordError", "CheckFailed", "TestResult",
           "passed_message", "set_replay", "record_path", "RECORD_ENV"]

_FORBIDDEN = forbidden  # bound at import: rebinding record.forbidden later does not reach grade()


class CheckFailed(AssertionError):
    """An autograder check failed; the message says what to fix.

    In Jupyter it shows as two short lines (which test failed, and why) instead of a traceback
    through the checking code: the message already names the value that is wrong. :func:`grade`
    fills in ``test_id``; the checks in :mod:`.checks` raise it (and re-export it).
    """

    test_id: str | None = None

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is shown
        head = f"{self.test_id}: FAILED" if self.test_id else "check FAILED"
        return [f"\x1b[1;31m{head}\x1b[0m", f"{type(self).__name__}: {self}"]


class TestResult(dict):
    """``{"passed": bool, "message": str}`` for one test, as the replaying grader sees it."""


class _Replay:
    """The grader's side: ``grade`` loads a record and calls ``check`` (see :mod:`.replay`)."""

    def __init__(self, records: Path, student_code: str = "", max_bytes: int = 64 * 1024 * 1024,
                 cells: list[tuple[str | None, str]] | None = None):
        self.records = Path(records)
        self.student_code = student_code  # every cell the student could edit (the tampering scan)
        # (answer grade_id or None, source) per editable cell: the forbidden-function scan looks at
        # the tested answer and what it uses, so a scratch cell that compares an answer with the
        # library function, or another part's answer, is not a use of it
        self.cells = cells
        self.max_bytes = max_bytes
        self.results: dict[str, TestResult] = {}

    def reachable(self, test_id: str) -> str:
        if self.cells is None:
            return self.student_code
        answers = sorted({g for g, _ in self.cells if g}, key=len, reverse=True)
        target = next((g for g in answers if test_id == f"test_{g}" or test_id.startswith(f"test_{g}_")), None)
        roots = {target} if target else set(answers)
        return reachable_code([(g in roots, src) for g, src in self.cells])


_STATE = threading.local()  # per thread: a Dask worker may check two notebooks at once


def set_replay(replay: _Replay | None) -> None:
    """Switch this thread's ``grade`` to replay mode (the grader's clean process) or back."""
    _STATE.replay = replay


def _format_exc(exc: BaseException) -> str:
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def record_path(folder: Path | str, test_id: str) -> Path:
    if not TEST_ID_RE.match(test_id):
        raise ValueError(f"invalid test id {test_id!r}")
    return Path(folder) / f"{test_id}{RECORD_SUFFIX}"


def _write_record(test_id: str, payload: dict) -> None:
    # Not course_lib.files.atomic_torch_save: this runs in the student's kernel, where only the
    # grading modules the tampering scan protects (scan.GRADING_MODULES) may be relied on.
    import torch

    folder = Path(os.environ[RECORD_ENV])
    path = record_path(folder, test_id)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def grade(test_id: str, run: Callable[[], Any], check: Callable[[Any], None], *,
          forbid: Iterable[str] = ()) -> None:
    """Run one autograded test: ``check(to_data(run()))`` (see the module docstring)."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    forbid = list(forbid)
    replay = getattr(_STATE, "replay", None)
    if replay is not None:
        _replay(replay, test_id, check, forbid)
        return
    recording = bool(os.environ.get(RECORD_ENV))
    try:
        with _FORBIDDEN(forbid, test_id):
            value = run()
        out = to_data(value)
    except BaseException as exc:
        if recording:
            _write_record(test_id, {"ok": False, "error": _format_exc(exc)[:2000]})
        raise
    if recording:
        _write_record(test_id, {"ok": True, "value": out})
        return
    try:
        check(out)
    except AssertionError as exc:
        if isinstance(exc, CheckFailed):
            exc.test_id = test_id
        raise
    print(passed_message(test_id, hidden=_cell_has_hidden_tests()))


def passed_message(test_id: str, hidden: bool = False) -> str:
    """What a test cell prints in the kernel when its checks pass.

    The released notebook holds the public checks only (nbgrader strips the hidden tests), so the
    line says so: passing them is not the grade. ``hidden``: the cell still has its hidden tests
    (the instructor's source notebook). The grader never prints it (it records instead).
    """
    if hidden:
        return f"{test_id}: passed (public and hidden tests: this is the instructor's copy)"
    return f"{test_id}: public checks passed (hidden tests run at grading)"


def _cell_has_hidden_tests() -> bool:
    """Whether the cell running now (IPython's last input) holds nbgrader's hidden-test markers."""
    try:
        from IPython import get_ipython

        ip = get_ipython()
        history = ip.user_ns.get("In") if ip is not None else None
        return bool(history) and "### BEGIN HIDDEN TESTS" in str(history[-1])
    except Exception:
        return False


def _replay(rp: _Replay, test_id: str, check: Callable[[Any], None], forbid: list[str]) -> None:
    import torch

    def result(passed: bool, message: str = "", quoted: bool = False) -> None:
        # quoted: the message carries text the student's code produced (scrubbed of hidden test code)
        rp.results[test_id] = TestResult(passed=passed, message=message, quoted=quoted)

    if forbid:
        hit = find_tampering(rp.student_code) or find_tampering(
            rp.reachable(test_id), dynamic=True, dynamic_roots=dynamic_roots_for(forbid))
        if hit:
            result(False, f"ForbiddenFunction: your code changes how the grader checks for forbidden functions "
                          f"(found `{hit}`), so {test_id} cannot be credited")
            return
    used = rp.reachable(test_id) if forbid else ""
    for dotted in forbid:
        hit = find_forbidden_use(used, dotted)
        if hit:
            result(False, f"ForbiddenFunction: {forbidden_message(dotted, test_id)} (found `{hit}` in your code)")
            return
    try:
        path = record_path(rp.records, test_id)
    except ValueError as exc:
        result(False, str(exc))
        return
    if not path.is_file() or path.is_symlink():
        result(False, "this test did not run (the notebook stopped before it, or the cell was not executed)")
        return
    if path.stat().st_size > rp.max_bytes:
        result(False, f"the values this test recorded are larger than {rp.max_bytes // 2**20} MiB")
        return
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        result(False, f"the values this test recorded could not be read ({type(exc).__name__})")
        return
    if not isinstance(payload, dict) or type(payload.get("ok")) is not bool:
        result(False, "the values this test recorded are not in the grader's format")
        return
    if not payload["ok"]:
        err = payload.get("error")
        result(False, err if isinstance(err, str) else "the test raised an error", quoted=True)
        return
    try:
        check(payload.get("value"))
    except AssertionError as exc:  # CheckFailed and plain asserts
        result(False, str(exc).strip() or "a check failed")
    except Exception as exc:
        result(False, f"{_format_exc(exc)[:500]} (while checking the values your code returned)", quoted=True)
    else:
        result(True)
