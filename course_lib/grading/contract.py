"""The nbgrader metadata contract between an instructor notebook and the grader.

Rules (``validate_source`` enforces them, and a test runs it on every source notebook):

- An autograded *solution* cell (code, ``solution: true, grade: false``) defines the function,
  class or variable named by its ``grade_id``.
- A *test* cell (code, ``grade: true, solution: false``) has ``points > 0`` and a ``grade_id`` of the
  form ``test_<name>`` or ``test_<name>_<what>``, where ``<name>`` is a graded solution cell.
- Every graded solution cell has at least one test cell with points.
- A *written answer* (markdown, ``solution: true, grade: true``) has ``points > 0``; it is graded by
  hand in the formgrader.
- ``grade_id`` values are unique and use only letters, digits, ``_`` and ``-``.
- A test cell follows the harness form: imports, definitions, constants and one
  ``grade("<its grade_id>", run, check)`` call (see :mod:`course_lib.grading.record`).

``course lint`` also checks a lesson rule (:func:`check_shape_comments`, not needed to grade): every
function or method of a solution cell that takes or returns tensors names their shapes, e.g.
``(B, T)``, in its docstring or comments outside the solution, where students see them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .cells import grade_id, is_answer_cell, is_grade, is_solution, points, tested_name
from .scan import TEST_CELL_BINDINGS, bound_names, grade_call

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
        return tested_name(test_id, [c.grade_id for c in self.solutions])


#: The top-level statements that *define* a name for the contract: functions, classes and assignments
#: (not imports, augmented assignments or names bound inside a top-level for/with/if/try).
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _defined_names(source: str) -> list[str]:
    """Top-level names a code cell defines (functions, classes, assignments), as :func:`scan.bound_names`
    binds them."""
    # Drop IPython magics so the cell parses.
    text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    return [name for node in tree.body if isinstance(node, _DEFINITIONS) for name in bound_names(node)]


def harness_problem(source: str, grade_id: str) -> str | None:
    """Why a test cell does not follow the harness form (see course_lib.grading.record), or None.

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
        if isinstance(node, TEST_CELL_BINDINGS):  # imports, definitions, constants
            known |= set(bound_names(node))
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or note
        if (call := grade_call(node)) is not None:
            calls.append(call)
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
        solution, grade = bool(is_solution(cell)), bool(is_grade(cell))
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
        gid = grade_id(cell)
        problem = harness_problem(cell.source, gid) if kind == "test" else None
        cells.append(GradedCell(gid, kind, points(cell) if grade else 0.0, i, cell.cell_type, defines, problem))
    return NotebookSpec(path, cells)


def validate_source(nb_or_path) -> NotebookSpec:
    """An instructor's source notebook, parsed and validated against the contract above.

    Raises :class:`ContractError` listing every problem found."""
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


# ----------------------------------------------------------------------------- lesson style (course lint)
# Shape comments use the letters each notebook's introduction defines: B batch, T time, W window,
# E embedding, H hidden, V vocabulary; digits and arithmetic are fine: (B, T), (B,), (1, V), (B, T, W*E).
_SHAPE_DIM = r"(?:\d+|[BTWEHV])(?:\s*[*+-]\s*(?:\d+|[BTWEHV]))*"
SHAPE_RE = re.compile(rf"\(\s*{_SHAPE_DIM}\s*(?:,\s*{_SHAPE_DIM}\s*)*,?\s*\)")
_TENSOR_WORD = re.compile(r"\btensors?\b", re.I)


def has_shape_comment(text: str) -> bool:
    """Whether ``text`` names a tensor shape in the course's letters, e.g. ``(B, T)`` or ``(B, T, V)``."""
    return any(re.search(r"[BTWEHV]", m.group()) for m in SHAPE_RE.finditer(text))


def _solution_lines(source: str) -> set[int]:
    """1-based line numbers between (and including) ``### BEGIN SOLUTION`` and ``### END SOLUTION``."""
    inside, lines = False, set()
    for n, line in enumerate(source.splitlines(), start=1):
        if line.strip() == BEGIN_SOLUTION:
            inside = True
        if inside:
            lines.add(n)
        if line.strip() == END_SOLUTION:
            inside = False
    return lines


def _takes_tensors(fn: ast.AST) -> bool:
    """A function or method that takes or returns tensors: a Tensor annotation, a ``forward``, a
    docstring that speaks of tensors, or a body that calls torch."""
    args = fn.args
    annotations = [a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                   if a is not None and a.annotation is not None] + ([fn.returns] if fn.returns else [])
    if any("Tensor" in ast.unparse(a) for a in annotations) or fn.name == "forward":
        return True
    if _TENSOR_WORD.search(ast.get_docstring(fn) or ""):
        return True
    return any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in ("torch", "F")
               for n in ast.walk(fn))


def shape_comment_problems(nb_or_path) -> list[str]:
    """Functions and methods of solution cells that take or return tensors but name no shapes.

    A shape (``(B, T)``, see :data:`SHAPE_RE`) must appear in the function's docstring or comments,
    in the part students see: outside ``### BEGIN SOLUTION`` / ``### END SOLUTION``, which the
    release replaces (a helper written entirely inside the solution may carry it there).
    """
    import io
    import tokenize

    nb = nbformat.read(Path(nb_or_path), as_version=4) if isinstance(nb_or_path, (str, Path)) else nb_or_path
    problems = []
    for cell in nb.cells:
        if not is_answer_cell(cell):
            continue
        source = cell.source
        try:
            tree = ast.parse(source)
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (SyntaxError, tokenize.TokenError):
            continue  # validate_source reports cells that do not parse
        hidden = _solution_lines(source)
        comments = [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]
        docstrings = []  # (first line, last line, text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
                first = node.body[0]
                if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                        and isinstance(first.value.value, str)):
                    docstrings.append((first.lineno, first.end_lineno, first.value.value))
        for parent in ast.walk(tree):
            for fn in ast.iter_child_nodes(parent):
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or not _takes_tensors(fn):
                    continue
                span = range(fn.lineno, fn.end_lineno + 1)
                visible = (lambda n: True) if fn.lineno in hidden else (lambda n, hidden=hidden: n not in hidden)
                texts = [text for n, text in comments if n in span and visible(n)]
                texts += [text for a, b, text in docstrings if a in span and b in span and visible(a)]
                if not any(has_shape_comment(t) for t in texts):
                    name = f"{parent.name}.{fn.name}" if isinstance(parent, ast.ClassDef) else fn.name
                    problems.append(
                        f"{grade_id(cell) or '?'}: {name} (line {fn.lineno}) takes or returns tensors but its "
                        "docstring and comments name no shapes where students see them (outside the solution): "
                        "add e.g. `(B, T)` with B batch, T time, W window, E embedding, H hidden, V vocabulary")
    return problems


def check_shape_comments(nb_or_path) -> None:
    """``course lint``'s lesson rule (see :func:`shape_comment_problems`); raises :class:`ContractError`."""
    problems = shape_comment_problems(nb_or_path)
    if problems:
        label = str(nb_or_path) if isinstance(nb_or_path, (str, Path)) else "notebook"
        raise ContractError(f"{label} has functions without shape comments:\n  - " + "\n  - ".join(problems))
