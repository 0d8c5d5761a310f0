"""Test helpers are not answers: where a student's code reads a name that only a test cell defines.

In the grading kernel the instructor's test cells run in the student's namespace, so a helper a test
cell defines at its top level (``_expected``, ``_reference_attention``, a stand-in model, a constant,
public or hidden) is a global when ``run()`` calls the student's function, which resolves its globals
at call time: ``def decoder_only_example(src, tgt, vocab): return _expected(...)`` would hand back the
test's own reference answer. The replay (:mod:`.replay`) never runs student code, so it reads both
notebooks as text and applies one rule, with no list of helper names:

* **test-only names**: the names bound at the top level of the source notebook's test cells (def,
  class, assignment and for/with targets, hidden blocks included; *not* imports, which students may
  share, e.g. ``torch``), less the names the given instructor cells (every code cell that is neither
  a test nor an answer) bind (imports and ``from m import *`` included), less builtins;
* **the student's own names**: every name the student's cells (answers and unlocked cells, as
  :func:`.replay.student_cells` gives them) bind anywhere: assignment, def/class, import, parameter,
  for/with/except/comprehension/match target, walrus, ``global``/``nonlocal``;
* a test **fails** when the code it reaches (:meth:`.record._Replay.reachable`: the tested answer
  and the student's definitions it uses) *loads* a test-only name that is not one of the student's
  own. Only the reachable code counts, so a scratch cell that calls a test helper costs nothing, and
  one answer's use costs that answer's tests only.

The reachable code also must not read the notebook's namespace behind the names' back (which would
reach a test helper as ``globals()["_exp" + "ected"]``): :data:`NAMESPACE_CALLS`, a no-argument
``vars()``, :data:`NAMESPACE_ATTRS`, and the module ``__main__`` (imported, or looked up as
``sys.modules["__main__"]``; ``if __name__ == "__main__":`` is fine) are flagged the same way.

Pure :mod:`ast` over text, like :mod:`.scan`; only a ``from m import *`` of a module the grader
itself already has (the standard library, torch, numpy, course_lib) is resolved by importing it.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import sys
from collections.abc import Iterable

__all__ = ["HelperNames", "test_helper_names", "student_bindings", "find_helper_use", "helper_message",
           "NAMESPACE_CALLS", "NAMESPACE_ATTRS"]

# What the kernel (IPython) adds to builtins: a student's use of them is no test helper.
KERNEL_BUILTINS = {"display", "get_ipython", "In", "Out", "exit", "quit", "_", "__", "___", "_ih", "_oh", "_dh"}
# Calls and attributes that read a namespace by a computed name: the way around the name rule.
NAMESPACE_CALLS = {"globals", "eval", "exec", "get_ipython"}
NAMESPACE_ATTRS = {"__globals__", "f_globals", "f_locals", "f_back", "_getframe", "currentframe", "user_ns",
                   "user_global_ns", "__main__"}
_STAR_SAFE = {"torch", "numpy", "course_lib", "math", "collections", "itertools", "functools", "typing"}


def _parse(src: str):
    src = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(src)
    except SyntaxError:
        return None


def _star_names(module: str | None, level: int) -> set[str]:
    """The names ``from module import *`` binds, when the grader can know them without running
    anything the student wrote (a module of the standard library or a package the course ships)."""
    if not module or level:
        return set()
    top = module.split(".")[0]
    if top not in _STAR_SAFE and top not in getattr(sys, "stdlib_module_names", ()):
        return set()
    try:
        mod = importlib.import_module(module)
    except Exception:
        return set()
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    return {n for n in names if isinstance(n, str)}


def _bound_by(node, *, imports: bool) -> set[str]:
    """The names one AST node binds in the scope it runs in: stored or deleted names, a def's or class's
    name, ``except ... as``, match captures, and with ``imports`` the names an import binds."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
        return {node.id}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        return {node.name}
    if isinstance(node, ast.MatchMapping) and node.rest:
        return {node.rest}
    if imports and isinstance(node, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if imports and isinstance(node, ast.ImportFrom):
        out: set[str] = set()
        for a in node.names:
            out.update(_star_names(node.module, node.level) if a.name == "*" else {a.asname or a.name})
        return out
    return set()


def _top_level_bindings(tree, *, imports: bool) -> set[str]:
    """Names bound at the top level of ``tree`` (the module scope: not inside defs, classes, lambdas)."""
    return {name for stmt in tree.body for node in _module_scope_nodes(stmt)
            for name in _bound_by(node, imports=imports)}


def _module_scope_nodes(stmt):
    """The nodes of a top-level statement that run in the module scope (defs' and classes' names and
    decorators, not their bodies; comprehensions bind their targets in their own scope)."""
    todo = [stmt]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        todo.extend(ast.iter_child_nodes(node))


class HelperNames:
    """The test-only names of a source notebook: ``{name: [test ids that define it, in order]}``."""

    def __init__(self, test_cells: Iterable[tuple[str, str]], given_cells: Iterable[str]):
        self.defined_by: dict[str, list[str]] = {}
        for test_id, src in test_cells:
            tree = _parse(src)
            if tree is None:
                continue
            for name in sorted(_top_level_bindings(tree, imports=False)):
                self.defined_by.setdefault(name, []).append(test_id)
        given: set[str] = set()
        for src in given_cells:
            tree = _parse(src)
            if tree is not None:
                given |= _top_level_bindings(tree, imports=True)
        drop = given | set(dir(builtins)) | KERNEL_BUILTINS
        self.defined_by = {n: ids for n, ids in self.defined_by.items() if n not in drop}

    @classmethod
    def from_notebook(cls, nb) -> HelperNames:
        from .cells import grade_id, is_solution, is_test_cell

        tests, given = [], []
        for cell in nb.cells:
            if cell.get("cell_type") != "code":
                continue
            if is_test_cell(cell):
                tests.append((grade_id(cell), cell.source))
            elif not is_solution(cell):  # a given cell, locked or not (answers hold the reference)
                given.append(cell.source)
        return cls(tests, given)

    def names(self) -> set[str]:
        return set(self.defined_by)


def test_helper_names(nb) -> dict[str, list[str]]:
    """``{test-only name: [the test cells that define it]}`` of a source notebook."""
    return dict(HelperNames.from_notebook(nb).defined_by)


def student_bindings(cells: Iterable[str]) -> set[str]:
    """Every name the student's cells bind anywhere, in any scope (see the module docstring)."""
    out: set[str] = set()
    for src in cells:
        tree = _parse(src)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.arg):
                out.add(node.arg)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                out.update(node.names)
            else:
                out.update(_bound_by(node, imports=True))
    return out


def find_helper_use(code: str, helpers: set[str], own: set[str]) -> tuple[str, str] | None:
    """``(kind, what)`` for the first use in ``code`` of a test-only name in ``helpers`` that is not
    in ``own`` (``kind`` "name"), or of a namespace read by computed name (``kind`` "namespace");
    None when there is none."""
    tree = _parse(code)
    if tree is None:
        return None
    foreign = helpers - own
    hits: list[tuple[int, int, str, str]] = []
    for node in ast.walk(tree):
        pos = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in foreign:
                hits.append((*pos, "name", node.id))
            elif node.id in NAMESPACE_CALLS and node.id not in own:
                hits.append((*pos, "namespace", node.id))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars"
              and not node.args and "vars" not in own):
            hits.append((*pos, "namespace", "vars()"))
        elif isinstance(node, ast.Attribute) and node.attr in NAMESPACE_ATTRS:
            hits.append((*pos, "namespace", ast.unparse(node)[:80]))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if "__main__" in mods:
                hits.append((*pos, "namespace", ast.unparse(node)[:80]))
        elif isinstance(node, ast.Subscript) and _is_main(node.slice):  # sys.modules["__main__"]
            hits.append((*pos, "namespace", ast.unparse(node)[:80]))
        elif isinstance(node, ast.Call) and any(_is_main(a) for a in node.args):  # import_module("__main__")
            hits.append((*pos, "namespace", ast.unparse(node)[:80]))
    if not hits:
        return None
    hits.sort()
    return hits[0][2], hits[0][3]


def _is_main(node) -> bool:
    return isinstance(node, ast.Constant) and node.value == "__main__"


def helper_message(kind: str, what: str, test_id: str, defined_by: list[str] | None = None) -> str:
    if kind == "name":
        where = test_id if not defined_by or test_id in defined_by else defined_by[0]
        return (f"your code uses `{what}`, which the test cell {where} defines; test helpers are not part of "
                f"a solution (write your own), so {test_id} cannot be credited")
    return (f"your code reads the notebook's namespace by a computed name (found `{what}`), which could reach "
            f"the test cells' helpers; test helpers are not part of a solution, so {test_id} cannot be credited")
