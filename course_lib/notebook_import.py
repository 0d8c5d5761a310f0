"""Use your own classes from another of your notebooks, without copying them: student-safe.

``scaling_laws`` trains **your** decoder-only transformer from ``nmt_pig_latin``. This module reads that
notebook (a ``.ipynb`` file, never run), parses its code cells with :mod:`ast` and executes only what
the names you ask for need: their definitions (``class`` and ``def``, and constants such as
``MAX_LEN = 1000``), the definitions those use, and the imports they use, in notebook order. Nothing
else runs: no setup cell, no data loading, no training, no test cell::

    from course_lib.notebook_import import import_from_notebook

    nmt = import_from_notebook("../nmt_pig_latin/nmt_pig_latin.ipynb", ["DecoderOnlyTransformer"])
    model = nmt.DecoderOnlyTransformer(30, 32, 3, 1)

The result is a module object holding the names asked for and everything they needed
(``nmt.CausalScaledDotAttention``, ``nmt.positional_encoding``, ...).

Rules, so that the result is what your notebook's kernel would hold after running top to bottom:

- Code cells are read in order; a name defined twice keeps its **last** definition. Test cells
  (nbgrader ``grade: true`` code cells) and the setup cell are skipped; IPython magics (``%...``,
  ``!...``) are ignored; a cell that does not parse is skipped unless it defines a name that is needed.
- The dependencies of a definition are the names it reads anywhere (bases, decorators, defaults,
  bodies) that the notebook defines or imports at the top level of a cell; ``device`` is the device
  :func:`course_lib.device.get_device` picks unless the notebook's own definitions need another one.
- A needed ``def`` or ``class`` that still holds ``raise NotImplementedError`` (the blank release's
  placeholder) stops the import with :class:`NotebookImportError`, as do a missing file, a missing
  name and an error while executing the definitions. Each message says what to do: complete the other
  notebook and save it, point ``path`` at it, or paste your classes into a cell of this notebook.

``path=None`` looks for ``<assignment>.ipynb`` in ``../<assignment>/`` (two assignments side by side, as
``make lab`` and ``course_lib``'s student distribution lay them out) and then in the current folder
(Colab: upload the notebook next to this one).
"""

from __future__ import annotations
import __future__

import ast
import builtins
import json
import linecache
import os
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NotebookImportError", "import_from_notebook", "candidate_paths", "find_notebook", "NMT_NAMES"]

#: What ``scaling_laws`` needs from ``nmt_pig_latin``: the model (its attention classes and positional
#: encodings come with it as dependencies).
NMT_NAMES = ("DecoderOnlyTransformer",)

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
_IMPORTS = (ast.Import, ast.ImportFrom)
_SKIP_GRADE_IDS = {"setup"}


class NotebookImportError(ImportError):
    """The definitions could not be imported from the notebook; the message says what to do."""


def _advice(assignment: str) -> str:
    return (f"Complete {assignment} first (every class the model needs, its tests passing) and save it, "
            f"then run this cell again; or pass the path of your completed {assignment}.ipynb (on Colab, "
            f"upload it next to this notebook); or paste your classes into the cell below and run that one.")


def candidate_paths(assignment: str, start: str | os.PathLike | None = None) -> list[Path]:
    """Where ``path=None`` looks, in order: ``../<assignment>/<assignment>.ipynb``, ``./<assignment>.ipynb``."""
    base = Path(start) if start is not None else Path.cwd()
    return [base.parent / assignment / f"{assignment}.ipynb", base / f"{assignment}.ipynb"]


def find_notebook(path: str | os.PathLike | None = None, assignment: str = "nmt_pig_latin") -> Path:
    """The notebook file to read: ``path`` if given, else the first of :func:`candidate_paths` that exists."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise NotebookImportError(f"{p} does not exist (or is not a file). {_advice(assignment)}")
        return p
    candidates = candidate_paths(assignment)
    for p in candidates:
        if p.is_file():
            return p
    looked = " and ".join(str(p) for p in candidates)
    raise NotebookImportError(f"your {assignment} notebook was not found (looked for {looked}). {_advice(assignment)}")


# ----------------------------------------------------------------------------------------------- parsing
@dataclass
class _Statement:
    node: ast.stmt
    cell: int  # 1-based code cell number, as Jupyter shows it nowhere but the file has it
    order: int  # position in the notebook
    binds: list[str]
    uses: set[str] = field(default_factory=set)


def _strip_magics(source: str) -> str:
    """IPython magics and shell lines become blank lines (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _targets(elt)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return []


def _binds(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n for t in node.targets for n in _targets(t)]
    if isinstance(node, ast.AnnAssign):
        return _targets(node.target) if node.value is not None else []
    if isinstance(node, ast.Import):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names if a.name != "*"]
    return []


def _uses(node: ast.stmt) -> set[str]:
    """The global names the statement reads: at its top level, and free in the functions and classes it
    defines (:mod:`symtable`: a method's own arguments and locals are not dependencies)."""
    import symtable

    try:
        table = symtable.symtable(ast.unparse(node), "<statement>", "exec")
    except SyntaxError:  # pragma: no cover - the statement parsed already
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    todo = list(table.get_children())
    while todo:
        t = todo.pop()
        names |= {s.get_name() for s in t.get_symbols() if s.is_global() and s.is_referenced()}
        todo.extend(t.get_children())
    return names


def _raises_not_implemented(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Raise) and n.exc is not None:
            exc = n.exc.func if isinstance(n.exc, ast.Call) else n.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


def _is_test_or_setup(cell: dict) -> bool:
    nbgrader = (cell.get("metadata") or {}).get("nbgrader") or {}
    if nbgrader.get("grade_id") in _SKIP_GRADE_IDS:
        return True
    return bool(nbgrader.get("grade")) and not bool(nbgrader.get("solution"))


def _read_cells(path: Path, assignment: str) -> list[tuple[int, str, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = data["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotebookImportError(f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: {exc}). "
                                  f"{_advice(assignment)}") from None
    out, number = [], 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        out.append((number, source, cell))
    return out


def _statements(path: Path, assignment: str) -> tuple[list[_Statement], dict[int, str], dict[int, str]]:
    """Top-level imports and definitions of the usable code cells; the sources by cell; cells that do
    not parse (cell -> error)."""
    statements: list[_Statement] = []
    sources: dict[int, str] = {}
    broken: dict[int, str] = {}
    for number, source, cell in _read_cells(path, assignment):
        if _is_test_or_setup(cell):
            continue
        text = _strip_magics(source)
        sources[number] = text
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            broken[number] = f"{exc.msg} (line {exc.lineno})"
            continue
        for node in tree.body:
            if isinstance(node, _DEFINITIONS + _IMPORTS):
                binds = _binds(node)
                if binds:
                    statements.append(_Statement(node, number, len(statements), binds, _uses(node)))
    return statements, sources, broken


def _broken_definitions(source: str) -> set[str]:
    """Names a cell that does not parse seems to define (``def NAME`` / ``class NAME`` lines)."""
    return set(re.findall(r"^(?:def|class)\s+([A-Za-z_]\w*)", source, flags=re.M))


# ----------------------------------------------------------------------------------------------- import
def _closure(names: Sequence[str], statements: list[_Statement]) -> list[_Statement]:
    """The statements needed for ``names``, in notebook order: the last binding of each name (what the
    kernel holds after running every cell), then, recursively, the last binding of each global it reads."""
    last: dict[str, _Statement] = {}
    for st in statements:
        for name in st.binds:
            last[name] = st
    needed: dict[int, _Statement] = {}
    todo, seen = [n for n in names if n in last], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        st = last[name]
        needed[st.order] = st
        todo.extend(n for n in st.uses if n in last and n not in seen)
    return [needed[k] for k in sorted(needed)]


def _default_device():
    from .device import get_device

    return get_device()


def import_from_notebook(path: str | os.PathLike | None = None, names: Iterable[str] = NMT_NAMES, *,
                         assignment: str = "nmt_pig_latin", module_name: str | None = None) -> types.ModuleType:
    """Execute the definitions of ``names`` found in a notebook (and only what they need) into a new
    module, and return it. See the module docstring for the rules and the errors."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names: ask for at least one name")
    nb_path = find_notebook(path, assignment)
    statements, sources, broken = _statements(nb_path, assignment)
    defined = {n for st in statements for n in st.binds}
    in_broken = {n: c for c in broken for n in _broken_definitions(sources[c])}
    missing = [n for n in names if n not in defined]
    if missing:
        detail = ", ".join(f"{n} (code cell {in_broken[n]} does not parse: {broken[in_broken[n]]})"
                           if n in in_broken else n for n in missing)
        raise NotebookImportError(f"{nb_path} does not define {detail}. {_advice(assignment)}")
    chosen = _closure(names, statements)
    unparsed = sorted({n for st in chosen for n in st.uses if n not in defined and n in in_broken})
    if unparsed:
        detail = ", ".join(f"{n} (code cell {in_broken[n]}: {broken[in_broken[n]]})" for n in unparsed)
        raise NotebookImportError(f"in {nb_path}, the definitions need {detail}, in a cell that does not parse: "
                                  f"fix it. {_advice(assignment)}")
    placeholders = sorted({name for st in chosen if isinstance(st.node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                            ast.ClassDef))
                           and _raises_not_implemented(st.node) for name in st.binds})
    if placeholders:
        raise NotebookImportError(
            f"in {nb_path}, {', '.join(placeholders)} still raise{'s' if len(placeholders) == 1 else ''} "
            f"NotImplementedError (the blank release's placeholder): not completed yet. {_advice(assignment)}")

    module = types.ModuleType(module_name or f"{assignment}_notebook")
    module.__file__ = str(nb_path)
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    namespace["device"] = _default_device()  # the setup cell's name (never run); the notebook may rebind it
    groups: list[tuple[int, list[ast.stmt]]] = []  # consecutive chosen statements of one cell run together
    for st in chosen:
        if groups and groups[-1][0] == st.cell:
            groups[-1][1].append(st.node)
        else:
            groups.append((st.cell, [st.node]))
    for cell, nodes in groups:
        filename = f"<{nb_path.name}, code cell {cell}>"
        linecache.cache[filename] = (len(sources[cell]), None, sources[cell].splitlines(keepends=True), filename)
        # annotations are not evaluated (a notebook may annotate with names it imports only for type checking)
        code = compile(ast.Module(body=nodes, type_ignores=[]), filename, "exec",
                       flags=__future__.annotations.compiler_flag, dont_inherit=True)
        try:
            exec(code, namespace)  # the student's own notebook, by design
        except Exception as exc:
            raise NotebookImportError(
                f"running the definitions of code cell {cell} of {nb_path} raised {type(exc).__name__}: {exc}. "
                f"{_advice(assignment)}") from exc
    return module
