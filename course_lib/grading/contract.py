"""The nbgrader metadata contract between an instructor notebook and the grader.

Rules (``check_notebook`` enforces them, and a test runs it on every source notebook):

- An autograded *solution* cell (code, ``solution: true, grade: false``) defines the function,
  class or variable named by its ``grade_id``.
- A *test* cell (code, ``grade: true, solution: false``) has ``points > 0`` and a ``grade_id`` of the
  form ``test_<name>`` or ``test_<name>_<what>``, where ``<name>`` is a graded solution cell.
- Every graded solution cell has at least one test cell with points.
- A *written answer* (markdown, ``solution: true, grade: true``) has ``points > 0``; it is graded by
  hand in the formgrader.
- ``grade_id`` values are unique and use only letters, digits, ``_`` and ``-``.
- A test cell follows the harness form: imports, definitions, constants and one
  ``grade("<its grade_id>", run, check)`` call (see :mod:`course_lib.grading.harness`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

GRADE_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


class ContractError(ValueError):
    """The notebook breaks the metadata contract; the message lists every problem."""


@dataclass
class GradedCell:
    grade_id: str
    kind: str  # "solution" (autograded code answer), "test", "written" (manual), "manual-code"
    points: float
    index: int
    cell_type: str
    defines: list[str] = field(default_factory=list)
    harness_problem: str | None = None  # tests only: how the cell breaks the grade(run, check) form


@dataclass
class NotebookSpec:
    path: Path | None
    cells: list[GradedCell]

    @property
    def tests(self) -> list[GradedCell]:
        return [c for c in self.cells if c.kind == "test"]

    @property
    def written(self) -> list[GradedCell]:
        return [c for c in self.cells if c.kind in ("written", "manual-code")]

    @property
    def solutions(self) -> list[GradedCell]:
        return [c for c in self.cells if c.kind == "solution"]

    @property
    def auto_points(self) -> float:
        return sum(c.points for c in self.tests)

    @property
    def manual_points(self) -> float:
        return sum(c.points for c in self.written)

    def graded(self) -> list[GradedCell]:
        """Cells that carry points, in notebook order (one gradebook row each)."""
        return [c for c in self.cells if c.kind in ("test", "written", "manual-code")]

    def points_of(self, grade_id: str) -> float:
        for c in self.cells:
            if c.grade_id == grade_id:
                return c.points
        raise KeyError(grade_id)

    def target_of(self, test_id: str) -> str | None:
        """The solution name a test cell belongs to (longest matching prefix)."""
        names = sorted((c.grade_id for c in self.solutions), key=len, reverse=True)
        for name in names:
            if test_id == f"test_{name}" or test_id.startswith(f"test_{name}_"):
                return name
        return None


def _defined_names(source: str) -> list[str]:
    """Top-level names a code cell defines (functions, classes, assignments)."""
    # Drop IPython magics so the cell parses.
    text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.append(n.id)
    return names


def harness_problem(source: str, grade_id: str) -> str | None:
    """Why a test cell does not follow the harness form (see course_lib.grading.harness), or None.

    Its top level holds only imports, definitions, constant assignments and exactly one
    ``grade("<grade_id>", run, check[, forbid=...])`` call: the grader re-runs that top level in a
    clean process, where nothing from the student's notebook exists.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return f"the test cell does not parse ({exc.msg}, line {exc.lineno})"
    import builtins

    calls = []
    known = set(dir(builtins))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            known |= {(a.asname or a.name).split(".")[0] for a in node.names}
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            known.add(node.name)
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = node.value
            local = set()  # names bound inside the value (comprehension variables, lambda arguments)
            for n in ast.walk(value) if value is not None else []:
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    local.add(n.id)
                elif isinstance(n, ast.arg):
                    local.add(n.arg)
            unknown = sorted({n.id for n in ast.walk(value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                             - known - local) if value is not None else []
            if unknown:
                return (f"line {node.lineno}: a constant at the test cell's top level uses {', '.join(unknown)}, "
                        "which the clean checking process does not have (call student code inside run())")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            known |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or note
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "grade"):
            calls.append(node.value)
            continue
        return (f"line {node.lineno}: a test cell's top level may hold only imports, definitions, constants "
                "and one grade(...) call (student code belongs in run())")
    if len(calls) != 1:
        return f"a test cell must call grade({grade_id!r}, run, check) exactly once (found {len(calls)})"
    first = calls[0].args[0] if calls[0].args else None
    if not (isinstance(first, ast.Constant) and first.value == grade_id):
        return f"grade(...) must name this cell's grade_id as its first argument: grade({grade_id!r}, run, check)"
    given = len(calls[0].args) + sum(1 for k in calls[0].keywords if k.arg in ("run", "check"))
    if given < 3:
        return "grade(...) needs run and check: grade(test_id, run, check)"
    return None


def strip_solution_markers(source: str) -> str:
    """The instructor's solution as a student would have written it (marker lines removed)."""
    keep = [line for line in source.splitlines() if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION)]
    return "\n".join(keep)


def parse_notebook(nb_or_path) -> NotebookSpec:
    if isinstance(nb_or_path, (str, Path)):
        path = Path(nb_or_path)
        nb = nbformat.read(path, as_version=4)
    else:
        path, nb = None, nb_or_path
    cells: list[GradedCell] = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        solution, grade = bool(meta.get("solution")), bool(meta.get("grade"))
        if not (solution or grade):
            continue
        if solution and not grade:
            kind = "solution"
        elif grade and not solution:
            kind = "test"
        elif cell.cell_type == "markdown":
            kind = "written"
        else:
            kind = "manual-code"
        defines = _defined_names(cell.source) if cell.cell_type == "code" else []
        points = float(meta.get("points", 0) or 0) if grade else 0.0
        problem = harness_problem(cell.source, str(meta.get("grade_id", ""))) if kind == "test" else None
        cells.append(GradedCell(str(meta.get("grade_id", "")), kind, points, i, cell.cell_type, defines, problem))
    return NotebookSpec(path, cells)


def check_notebook(nb_or_path) -> NotebookSpec:
    """Parse and validate; raises :class:`ContractError` listing every problem found."""
    spec = parse_notebook(nb_or_path)
    problems: list[str] = []
    seen: set[str] = set()
    for c in spec.cells:
        where = f"cell {c.index} ({c.grade_id or 'no grade_id'})"
        if not c.grade_id or not GRADE_ID_RE.match(c.grade_id):
            problems.append(f"{where}: grade_id must be letters, digits, '_' or '-'")
        if c.grade_id in seen:
            problems.append(f"{where}: duplicate grade_id {c.grade_id!r}")
        seen.add(c.grade_id)
        if c.kind == "solution":
            if c.cell_type != "code":
                problems.append(f"{where}: an autograded solution cell must be a code cell")
            elif c.grade_id not in c.defines:
                problems.append(
                    f"{where}: a solution cell's grade_id must name the function, class or variable it "
                    f"defines (defines {c.defines or 'nothing'})"
                )
        if c.kind in ("test", "written", "manual-code") and not c.points > 0:
            problems.append(f"{where}: a graded cell needs points > 0")
        if c.kind == "test":
            if not c.grade_id.startswith("test_"):
                problems.append(f"{where}: a test cell's grade_id must start with 'test_'")
            elif spec.target_of(c.grade_id) is None:
                problems.append(f"{where}: test cell does not name a graded solution (test_<name>[_...])")
            if c.harness_problem:
                problems.append(f"{where}: {c.harness_problem}")
    for s in spec.solutions:
        tests = [t for t in spec.tests if spec.target_of(t.grade_id) == s.grade_id and t.points > 0]
        if not tests:
            problems.append(f"solution {s.grade_id!r} has no test cell with points (expected 'test_{s.grade_id}...')")
    if problems:
        label = str(spec.path) if spec.path else "notebook"
        raise ContractError(f"{label} breaks the grading contract:\n  - " + "\n  - ".join(problems))
    return spec
