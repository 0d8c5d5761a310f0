"""Example submissions generated from an instructor notebook.

``notebooks/<assignment>/examples.toml`` lists them: the reference solution (full marks), the blank
release (0), correct solutions written differently from the reference (``variant``: full marks), and
realistic wrong solutions (``mutant``), each a few exact text edits of solution cells plus the list
of test cells it must lose. :func:`build_examples` writes them as
``OUT/<student_id>/<assignment>.ipynb`` and returns the expected automatic score of each, so a demo
or a test can check that the grader takes off exactly the points of each bug.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .assignments import get_assignment
from .cells import grade_id, is_solution
from .contract import NotebookSpec, strip_solution_markers, validate_source
from .errors import GradingError
from .submissions import STUDENT_RE

KINDS = ("solution", "blank", "variant", "mutant")


@dataclass
class Example:
    student_id: str
    kind: str  # solution | blank | variant (correct, written differently) | mutant
    description: str = ""
    loses: list[str] = field(default_factory=list)
    edits: list[dict] = field(default_factory=list)

    def expected_auto(self, spec: NotebookSpec) -> float:
        if self.kind == "blank":
            return 0.0
        return spec.auto_points - sum(spec.points_of(t) for t in self.loses)


def load_examples(path: Path, spec: NotebookSpec) -> list[Example]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GradingError(f"Cannot read example submissions from {path}: {exc}") from None
    test_ids = {t.grade_id for t in spec.tests}
    solution_ids = {c.grade_id for c in spec.cells if c.kind in ("solution", "written", "manual-code")}
    out: list[Example] = []
    for i, item in enumerate(data.get("submission", [])):
        ex = Example(
            student_id=str(item.get("student_id", "")),
            kind=str(item.get("kind", "")),
            description=str(item.get("description", "")),
            loses=list(item.get("loses", [])),
            edits=list(item.get("edits", [])),
        )
        where = f"{path}: submission {i} ({ex.student_id or '?'})"
        if not STUDENT_RE.match(ex.student_id):
            raise GradingError(f"{where}: invalid student_id")
        if ex.kind not in KINDS:
            raise GradingError(f"{where}: kind must be one of {', '.join(KINDS)}")
        unknown = sorted(set(ex.loses) - test_ids)
        if unknown:
            raise GradingError(f"{where}: loses names unknown test cells {unknown}")
        if ex.kind == "mutant" and not (ex.edits and ex.loses):
            raise GradingError(f"{where}: a mutant needs edits and the tests it loses")
        if ex.kind == "variant" and (ex.loses or not ex.edits):
            raise GradingError(f"{where}: a variant is a correct solution written differently: it needs edits "
                               "and loses no test")
        for e in ex.edits:
            if e.get("cell") not in solution_ids or "old" not in e or "new" not in e:
                raise GradingError(f"{where}: each edit needs cell (a solution grade_id), old and new")
        out.append(ex)
    if len({e.student_id for e in out}) != len(out):
        raise GradingError(f"{path}: student_id values must be unique")
    return out


def _by_grade_id(nb) -> dict[str, object]:
    return {grade_id(c): c for c in nb.cells if grade_id(c)}


def solution_notebook(source_nb, release_nb):
    """The release notebook with every answer cell filled in from the instructor's solution."""
    nb = copy.deepcopy(release_nb)
    src = _by_grade_id(source_nb)
    for cell in nb.cells:
        if is_solution(cell) and grade_id(cell) in src:
            cell.source = strip_solution_markers(src[grade_id(cell)].source)
    return nb


def apply_edits(nb, edits: list[dict], student_id: str):
    cells = _by_grade_id(nb)
    for e in edits:
        cell = cells[e["cell"]]
        n = cell.source.count(e["old"])
        if n != 1:
            raise GradingError(
                f"example {student_id}: the text to replace occurs {n} times in cell {e['cell']!r} (must be exactly once): {e['old']!r}"
            )
        cell.source = cell.source.replace(e["old"], e["new"])
    return nb


def build_examples(name: str, out: Path, *, release_notebook: Path, root: Path | None = None) -> list[tuple[Example, float]]:
    """Write every example submission of ``name`` to ``out``; returns (example, expected auto score)."""
    a = get_assignment(name, root)
    spec = validate_source(a.notebook)
    examples_file = a.source_dir / "examples.toml"
    if not examples_file.is_file():
        raise GradingError(f"{name} has no example submissions ({examples_file} is missing)")
    examples = load_examples(examples_file, spec)
    source_nb = nbformat.read(a.notebook, as_version=4)
    release_nb = nbformat.read(release_notebook, as_version=4)
    result = []
    for ex in examples:
        if ex.kind == "blank":
            nb = copy.deepcopy(release_nb)
        else:
            nb = apply_edits(solution_notebook(source_nb, release_nb), ex.edits, ex.student_id)
        dest = Path(out) / ex.student_id / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        result.append((ex, ex.expected_auto(spec)))
    return result
