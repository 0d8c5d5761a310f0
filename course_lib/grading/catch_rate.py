"""How many realistic wrong answers the public checks alone catch, per assignment.

A student sees only the public checks (the released test cells; nbgrader strips the hidden tests).
Each ``wrong_*`` example submission of ``notebooks/<name>/examples.toml`` is a plausible bug; it is
*caught* when at least one public check fails for it, as in ``course check`` on that submission.

:func:`measure` does this in one kernel per assignment instead of one notebook run per example:

1. release the assignment (nbgrader, hidden tests stripped) and fill in the reference solution;
2. run it top to bottom in a fresh kernel in fast mode, cells tagged ``experiment`` skipped, as
   ``course check`` does, and record which public test cells pass (all of them should);
3. for each wrong example, latest first edit first: forget the names that its first edited cell and
   the cells after it define (and no cell before defines), as a fresh run would not have them yet;
   re-run from that cell to the last test cell every code cell (its edited answer cells with the
   example's text, all others with the reference text); record which test cells fail. Each re-run
   starts at or before the previous example's first edited cell, so it overwrites what that left.

Cross-checked against ``course check`` on the built example notebooks (same failing public tests).

``course catch-rate NAME`` prints the result; ``tests/test_public_checks.py`` asserts the rate.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..check_kernel import DEFAULT_TIMEOUT, first_line, kernel_session, notebook_client, run_cell
from .assignments import get_assignment, list_assignments
from .cells import grade_id, is_experiment, is_test_cell
from .contract import validate_source
from .examples import Example, apply_edits, load_examples, solution_notebook
from .workspace import Workspace

WRONG_PREFIX = "wrong_"

__all__ = ["Verdict", "CatchRate", "measure", "format_catch_rate", "wrong_examples", "assignments_with_examples"]


@dataclass
class Verdict:
    student_id: str
    description: str
    loses: list[str]  # the test cells the full grader (public + hidden tests) takes off
    failed: dict[str, str] = field(default_factory=dict)  # public test id -> first line of why

    @property
    def caught(self) -> bool:
        return bool(self.failed)


@dataclass
class CatchRate:
    assignment: str
    verdicts: list[Verdict]
    baseline_failures: dict[str, str]  # public tests the reference solution fails (should be none)
    seconds: float
    order: list[str] = field(default_factory=list)  # student ids in the order they were measured

    @property
    def caught(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.caught]

    @property
    def uncaught(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.caught]

    @property
    def rate(self) -> float:
        return len(self.caught) / len(self.verdicts) if self.verdicts else 1.0

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "rate": self.rate, "caught": len(self.caught),
                "total": len(self.verdicts), "seconds": round(self.seconds, 1),
                "baseline_failures": self.baseline_failures,
                "examples": [{"student_id": v.student_id, "caught": v.caught, "failed": v.failed,
                              "loses": v.loses, "description": v.description} for v in self.verdicts]}


def wrong_examples(name: str, root: Path | None = None) -> list[Example]:
    """The ``wrong_*`` example submissions of ``name`` (mutants named as plausible bugs, not cheats)."""
    a = get_assignment(name, root)
    path = a.source_dir / "examples.toml"
    if not path.is_file():
        return []
    spec = validate_source(a.notebook)
    return [ex for ex in load_examples(path, spec) if ex.kind == "mutant" and ex.student_id.startswith(WRONG_PREFIX)]


class _Kernel:
    """One kernel that runs cells of ``nb`` by index and says whether each raised, and why.

    Cells run as in ``course check`` (:mod:`course_lib.check_kernel`: same client, same environment,
    fast mode), in one kernel kept for every example.
    """

    def __init__(self, nb, folder: Path, timeout: float | None):
        self.nb = nb
        self.timeout = timeout
        self.client = notebook_client(nb, folder, timeout)

    def session(self):
        return kernel_session(self.client, fast=True)  # as when grading and in `course check`

    def forget(self, names: set[str]) -> None:
        """Delete ``names`` from the kernel's globals (quietly, outside the history)."""
        if names:
            from nbformat.v4 import new_code_cell

            code = f"for _catch_rate_name in {sorted(names)!r}:\n    globals().pop(_catch_rate_name, None)\n" \
                   "del _catch_rate_name"
            first = self.nb.cells[0]  # execute_cell stores the cell it ran at the index it is given
            try:
                self.client.execute_cell(new_code_cell(code), 0, store_history=False)
            finally:
                self.nb.cells[0] = first

    def run(self, i: int, source: str) -> str | None:
        """Run cell ``i`` with ``source``; None when it ran without error, else why it failed."""
        cell = self.nb.cells[i]
        cell.source = source
        cell.outputs = []
        if not source.strip():
            return None
        result = run_cell(self.client, cell, i, self.timeout)
        if result.status == "ok":
            return None
        if result.status == "timeout":
            return f"Timeout: the cell ran longer than {self.timeout:g} s"
        evalue = first_line(result.evalue, 200)
        return f"{result.ename}: {evalue}" if evalue else result.ename


def _bound(sources) -> set[str]:
    """The names the top-level statements of ``sources`` bind (defs, classes, assignments, imports)."""
    import ast

    from .scan import bound_names

    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for stmt in tree.body:
            names.update(bound_names(stmt))
    return names


def measure(name: str, *, root: Path | None = None, timeout: float | None = DEFAULT_TIMEOUT,
            workdir: Path | None = None, progress=None) -> CatchRate:
    """Which ``wrong_*`` examples of ``name`` fail at least one public check (see the module docstring)."""
    start = time.monotonic()
    a = get_assignment(name, root)
    examples = wrong_examples(name, root)
    with tempfile.TemporaryDirectory(prefix=f"catch-rate-{name}-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        release_path = Workspace(work / "grading", root=root).release(name, output=work / "release")
        release_nb = nbformat.read(release_path, as_version=4)
        source_nb = nbformat.read(a.notebook, as_version=4)
        nb = solution_notebook(source_nb, release_nb)
        reference = [c.source for c in nb.cells]
        code = [i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and not is_experiment(c)]
        tests = [i for i in code if is_test_cell(nb.cells[i])]
        code = [i for i in code if i <= max(tests, default=-1)]  # nothing after the last test cell matters

        # each example: its edited sources (by cell index) and the first code cell it changes
        plans = []
        for ex in examples:
            edited = apply_edits(copy.deepcopy(nb), ex.edits, ex.student_id)
            changed = {i: edited.cells[i].source for i in code if edited.cells[i].source != reference[i]}
            plans.append((min(changed, default=len(nb.cells)), ex, changed))
        plans.sort(key=lambda p: -p[0])  # latest first: each suffix re-run covers the previous one

        verdicts: dict[str, Verdict] = {}
        baseline: dict[str, str] = {}
        todo = list(plans)
        while True:  # a new kernel after one dies (the example that killed it counts as caught)
            kernel = _Kernel(copy.deepcopy(nb), release_path.parent, timeout)
            with kernel.session():
                for i in code:
                    why = kernel.run(i, reference[i])
                    if i in tests and why and not verdicts:
                        baseline[grade_id(nb.cells[i])] = why
                died = False
                while todo:
                    first, ex, changed = todo.pop(0)
                    if progress:
                        progress(ex.student_id, len(plans) - len(todo), len(plans))
                    v = Verdict(ex.student_id, ex.description, list(ex.loses))
                    verdicts[ex.student_id] = v
                    try:
                        # as in a fresh run: what the suffix defines, and nothing before it does, is not
                        # there yet (an edited definition that fails must not leave the reference's behind)
                        kernel.forget((_bound(reference[i] for i in code if i >= first) | _bound(changed.values()))
                                      - _bound(reference[i] for i in code if i < first))
                        for i in (i for i in code if i >= first):
                            why = kernel.run(i, changed.get(i, reference[i]))
                            if i in tests and why and grade_id(nb.cells[i]) not in baseline:
                                v.failed[grade_id(nb.cells[i])] = why
                    except Exception as exc:  # DeadKernelError and the like
                        v.failed.setdefault("(kernel)", f"{type(exc).__name__}: the kernel stopped ({exc})"[:200])
                        died = True
                        break
            if not died or not todo:
                break
    ordered = [verdicts[ex.student_id] for ex in examples]
    return CatchRate(name, ordered, baseline, time.monotonic() - start, [p[1].student_id for p in plans])


def format_catch_rate(result: CatchRate, width: int = 100) -> str:
    """One entry per wrong example (caught or not, the public tests that failed and why), then the rate."""
    import textwrap

    lines = [f"{result.assignment}: which wrong_* examples fail at least one public check "
             "(the released test cells, hidden tests stripped)"]
    if result.baseline_failures:
        lines += textwrap.wrap("! the reference solution fails these public tests (not counted): " + "; ".join(
            f"{k} ({v})" for k, v in result.baseline_failures.items()), width, initial_indent="  ",
            subsequent_indent="    ")
    for v in result.verdicts:
        if v.caught:
            lines.append(f"  caught  {v.student_id}")
            for k, msg in v.failed.items():
                lines += textwrap.wrap(f"{k}: {msg}", width, initial_indent="          ",
                                       subsequent_indent="            ", max_lines=2, placeholder=" ...")
            extra = sorted(set(v.failed) - set(v.loses) - {"(kernel)"})
            if extra:
                lines.append("          ! fails public tests its `loses` does not list: " + ", ".join(extra))
        else:
            lines.append(f"  MISSED  {v.student_id}")
            lines += textwrap.wrap("every public check passes; only the hidden tests catch it (" + ", ".join(v.loses)
                                   + ")", width, initial_indent="          ", subsequent_indent="            ")
    n, k = len(result.verdicts), len(result.caught)
    lines.append(f"{result.assignment}: public checks catch {k}/{n} wrong examples"
                 + (f" ({100 * result.rate:.0f}%)" if n else "") + f"; measured in {result.seconds:.0f} s")
    return "\n".join(lines)


def assignments_with_examples(root: Path | None = None) -> list[str]:
    return [n for n in list_assignments(root) if wrong_examples(n, root)]
