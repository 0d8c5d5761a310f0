"""nbgrader's cell rules, written once: which cell is a test, an answer, a written answer, read-only.

The predicates take any dict-like cell (an ``nbformat`` node or a plain dict read from JSON) and
import nothing but the standard library, so the student's ``course check`` (which has no nbgrader)
and the grader share them. ``is_grade``, ``is_solution``, ``is_locked`` and ``compute_checksum``
follow ``nbgrader.utils`` exactly; a test compares them with nbgrader's own.

Kinds of cells, by their nbgrader flags:

==================  =========  ========  ==========================================
cell                cell type  grade     solution
==================  =========  ========  ==========================================
test cell           code       true      false   (points; run by the grader)
answer cell         code       false     true    (the student's code, which tests call)
written answer      markdown   true      true    (points; graded by hand)
==================  =========  ========  ==========================================

:func:`split_hidden_tests` reads a cell's hidden-test blocks as nbgrader's ``ClearHiddenTests`` finds
them, for the grader's replay (which scrubs hidden test code from messages) and the leak scan.
"""

from __future__ import annotations

import hashlib

EXPERIMENT_TAG = "experiment"
#: nbgrader's (default) hidden-test delimiters: a line that *contains* one opens or closes a block.
BEGIN_HIDDEN_TESTS = "BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "END HIDDEN TESTS"


def nbgrader(cell) -> dict:
    """The cell's nbgrader metadata (``{}`` when it has none, or when it is not a dict)."""
    meta = cell.get("metadata", {}) or {}
    nbg = meta.get("nbgrader")
    return nbg if isinstance(nbg, dict) else {}


def is_grade(cell):
    """nbgrader's ``is_grade``: the cell carries points (a test cell or a written answer)."""
    return nbgrader(cell).get("grade", False)


def is_solution(cell):
    """nbgrader's ``is_solution``: the student writes this cell (an answer or a written answer)."""
    return nbgrader(cell).get("solution", False)


def is_locked(cell):
    """nbgrader's ``is_locked``: read-only (a test, or a cell marked locked), never a solution."""
    if is_solution(cell):
        return False
    if is_grade(cell):
        return True
    return nbgrader(cell).get("locked", False)


def is_test_cell(cell) -> bool:
    """An autograded test: a code cell with points that is not a solution."""
    return cell.get("cell_type") == "code" and bool(is_grade(cell)) and not is_solution(cell)


def is_written_answer(cell) -> bool:
    """A written answer, graded by hand: a markdown solution cell with points."""
    return cell.get("cell_type") == "markdown" and bool(is_grade(cell)) and bool(is_solution(cell))


def is_answer_cell(cell) -> bool:
    """An autograded code answer: a solution cell the tests call."""
    return cell.get("cell_type") == "code" and bool(is_solution(cell)) and not is_grade(cell)


def is_experiment(cell, tags=(EXPERIMENT_TAG,)) -> bool:
    """A code cell tagged as an experiment (a training run, by default tagged ``experiment``) that is
    no part of grading (not a test, an answer or a read-only cell): the grader does not re-run it."""
    if cell.get("cell_type") != "code" or not tags:
        return False
    if is_grade(cell) or is_solution(cell) or is_locked(cell):
        return False
    return any(t in ((cell.get("metadata", {}) or {}).get("tags") or []) for t in tags)


def grade_id(cell) -> str:
    """The cell's ``grade_id`` (``""`` when it has none)."""
    return str(nbgrader(cell).get("grade_id", "") or "")


def tested_name(test_id: str, names) -> str | None:
    """The answer a test cell tests: the longest of ``names`` (answer cells' grade_ids) for which
    ``test_id`` is ``test_<name>`` or starts with ``test_<name>_``; None when none is."""
    for name in sorted(names, key=len, reverse=True):
        if test_id == f"test_{name}" or test_id.startswith(f"test_{name}_"):
            return name
    return None


def points(cell) -> float:
    """The points the cell is worth (0 when it has none or they are not a number)."""
    try:
        return float(nbgrader(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def compute_checksum(cell) -> str:
    """nbgrader's checksum of a cell (source, type, flags, grade_id and points), as nbgrader computes it."""
    m = hashlib.md5(usedforsecurity=False)
    m.update(cell["source"].encode("utf-8"))
    m.update(cell["cell_type"].encode("utf-8"))
    m.update(str(is_grade(cell)).encode("utf-8"))
    m.update(str(is_solution(cell)).encode("utf-8"))
    m.update(str(is_locked(cell)).encode("utf-8"))
    m.update(nbgrader(cell)["grade_id"].encode("utf-8"))
    if is_grade(cell):
        m.update(str(float(nbgrader(cell)["points"])).encode("utf-8"))
    return m.hexdigest()


def split_hidden_tests(source: str) -> tuple[list[str], list[str]]:
    """(the lines inside hidden-test blocks, the lines outside them) of a cell's source, the delimiter
    lines in neither.

    The rule is nbgrader's ``ClearHiddenTests`` (what ``course release`` strips): a line containing
    :data:`BEGIN_HIDDEN_TESTS` opens a block, one containing :data:`END_HIDDEN_TESTS` closes it. Where
    nbgrader refuses a cell (a nested begin, a block left open), this reads on: the block goes on to the
    next end, or to the end of the cell.
    """
    inside: list[str] = []
    outside: list[str] = []
    hidden = False
    for line in source.splitlines():
        if BEGIN_HIDDEN_TESTS in line:
            hidden = True
        elif END_HIDDEN_TESTS in line:
            hidden = False
        else:
            (inside if hidden else outside).append(line)
    return inside, outside
