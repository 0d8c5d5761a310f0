"""The static scan: what the grader reads in a student's code, where no kernel can patch it.

- :func:`find_forbidden_use`: where the code uses a forbidden function (``F.layer_norm`` through
  any import alias, ``getattr(nn, "LayerNorm")``, an import of a forbidden module).
- :func:`find_tampering`: where it switches off torch's function modes or touches the grading
  modules (:data:`GRADING_MODULES`).
- :func:`reachable_code`: the tested answer plus the definitions it uses, transitively.
- :func:`bound_names` and :func:`grade_call`: the names a top-level statement binds, and the
  ``grade(...)`` call of a test cell (for the kernel's view of a test cell and the test-cell contract).

Pure :mod:`ast`: nothing here imports torch or the rest of the grading package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

__all__ = ["find_forbidden_use", "find_tampering", "reachable_code", "bound_names", "grade_call",
           "TAMPER_NAMES", "TAMPER_MODULES", "GRADING_MODULES", "TEST_CELL_BINDINGS"]

DEFAULT_ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "np": "numpy"}


def find_forbidden_use(code: str, dotted: str) -> str | None:
    """Where ``code`` uses ``dotted``: the grader's check that needs no kernel, so it cannot be patched.

    Matches attribute access that resolves to ``dotted`` through the code's imports (``nn.LayerNorm``
    after ``from torch import nn``, ``F.layer_norm``), ``from torch.nn import LayerNorm``,
    ``getattr(nn, "LayerNorm")``, and imports of a forbidden module. A student's own function that
    happens to share the name (``def layer_norm(x): ...``, ``self.layer_norm``) is not a match.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None  # the kernel could not run it either
    owner, _, last = dotted.rpartition(".")
    resolve = _resolver(_aliases(tree))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""] if not node.level else [])
            for m in mods:
                if m == dotted or m.startswith(dotted + "."):
                    return ast.unparse(node)[:80]
        elif isinstance(node, ast.Attribute):
            path = resolve(node)
            if path and (path == dotted or path.startswith(dotted + ".")):
                return ast.unparse(node)[:80]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == last):
            if resolve(node.args[0]) == owner:
                return ast.unparse(node)[:80]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == dotted:
            return repr(node.value)[:80]
    return None


# Names whose only use in a student's notebook is to switch off the checks for forbidden functions.
# Packages whose attributes a computed ``getattr`` must not reach in the tested answer: always those
# that lead to modules and the grader; torch where the test forbids a torch function.
ALWAYS_DYNAMIC_ROOTS = ("sys", "builtins", "importlib", "course_lib")
DYNAMIC_ROOTS = ("torch", *ALWAYS_DYNAMIC_ROOTS)


def dynamic_roots_for(forbid: Iterable[str]) -> tuple[str, ...]:
    """The packages a computed ``getattr`` must not reach in a test forbidding ``forbid``: the
    always-guarded ones, plus the top-level package of every forbidden name."""
    extra = sorted({name.split(".")[0] for name in forbid} - set(ALWAYS_DYNAMIC_ROOTS))
    return (*ALWAYS_DYNAMIC_ROOTS, *extra)


TAMPER_NAMES = {"DisableTorchFunction", "DisableTorchFunctionSubclass", "_pop_torch_function_stack",
                "_push_on_torch_function_stack", "_set_torch_function_mode", "_pop_mode", "_push_mode",
                "_disable_torch_function", "_len_torch_function_stack", "_get_function_stack_at",
                "_disabled_torch_function_impl", "COURSE_GRADING_RECORD"}


def find_tampering(code: str, dynamic: bool = False, dynamic_roots: Iterable[str] = DYNAMIC_ROOTS) -> str | None:
    """Where ``code`` switches off torch function modes or touches the grading modules (imports, rebinds).

    With ``dynamic`` (for the tested answer and what it uses) also dynamic code that hides what it
    calls: ``eval``/``exec``/``__import__``, ``importlib``, ``ctypes``, a computed ``getattr`` on a
    package of ``dynamic_roots`` (:func:`dynamic_roots_for` gives them for a test's forbidden names:
    ``getattr(nn, cell.upper())`` hides nothing where no torch function is forbidden).
    """
    roots = tuple(dynamic_roots)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    resolve = _resolver(_aliases(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in TAMPER_NAMES:
            return ast.unparse(node)[:80]
        # torch internals that bypass or switch off the checks (whatever torch is imported as)
        if isinstance(node, ast.Attribute):
            path = resolve(node) or ""
            if any(path == p or path.startswith(p + ".") for p in TAMPER_MODULES):
                return ast.unparse(node)[:80]
        if not dynamic:
            pass
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "eval", "exec", "compile", "__import__"):
            return f"{node.func.id}(...)"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant)
                and (resolve(node.args[0]) or "").split(".")[0] in roots):
            return ast.unparse(node)[:80]
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("importlib", "ctypes") for a in node.names):
            return ast.unparse(node)[:80]
        if isinstance(node, ast.Name) and node.id in TAMPER_NAMES:
            return node.id
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in TAMPER_NAMES:
            return repr(node.value)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = [] if isinstance(node, ast.Import) else [a.name for a in node.names]
            if any(m.startswith(p) for m in mods for p in GRADING_PATHS) or (
                    any(m == "course_lib.grading" for m in mods) and set(names) & set(GRADING_MODULES)):
                return ast.unparse(node)[:80]
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for t in targets:
            text = ast.unparse(t)
            if isinstance(t, ast.Attribute) and any(k in text for k in ("grading", "harness", "checks")):
                return text[:80]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                and node.args and any(k in ast.unparse(node.args[0]) for k in ("grading", "harness", "checks"))):
            return ast.unparse(node)[:80]
    return None



# The grading modules a submission has no business importing, reading into or rebinding: grade()
# and its records, the forbidden-function guard, plain data and this scan (plus course_lib.grading.harness,
# the old name of all four, still flagged). Test cells import course_lib.grading.checks, which
# re-exports grade(); rebinding anything in it is caught by the text of the assignment instead.
GRADING_MODULES = ("harness", "record", "forbid", "plain", "scan")
GRADING_PATHS = tuple(f"course_lib.grading.{m}" for m in GRADING_MODULES)
TAMPER_MODULES = ("torch._C", "torch.ops", "torch.overrides", "torch.utils._python_dispatch", "torch._dynamo",
                  *GRADING_PATHS)


def _aliases(tree) -> dict[str, str]:
    """name -> dotted module/attribute path, from the imports in ``tree`` (plus F, nn, torch, np)."""
    aliases = dict(DEFAULT_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _resolver(aliases: dict[str, str]):
    def resolve(expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = resolve(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    return resolve


def reachable_code(cells: list[tuple[bool, str]]) -> str:
    """The answer cells' code plus the student's definitions they use, transitively, as one text.

    ``cells`` are ``(is_answer_cell, source)`` pairs. Top-level statements of other cells count
    only when they define (assign, import, def, class) a name the answers use.
    """
    parsed = []
    for is_answer, src in cells:
        try:
            parsed.append((is_answer, ast.parse(src)))
        except SyntaxError:
            continue
    defs: dict[str, list] = {}
    for is_answer, tree in parsed:
        if is_answer:
            continue
        for stmt in tree.body:
            for name in bound_names(stmt):
                defs.setdefault(name, []).append(stmt)
    included: list = [stmt for is_answer, tree in parsed if is_answer for stmt in tree.body]
    seen_ids = {id(s) for s in included}
    work = list(included)
    while work:
        stmt = work.pop()
        for name in _free_names(stmt):
            for d in defs.get(name, []):
                if id(d) not in seen_ids:
                    seen_ids.add(id(d))
                    included.append(d)
                    work.append(d)
    return "\n".join(ast.unparse(s) for s in included)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _scope_bindings(nodes) -> set[str]:
    """Names bound in this scope (not inside nested scopes), less those declared global."""
    out, glob, todo = set(), set(), list(nodes)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            glob.update(n.names)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            todo.extend(n.decorator_list)  # evaluated here; the body is its own scope
            continue
        if isinstance(n, _SCOPES):
            continue
        todo.extend(ast.iter_child_nodes(n))
    return out - glob


def _free_names(stmt) -> set[str]:
    """Names ``stmt`` reads from the module's globals: a function's locals and parameters (``weights``
    inside ``apply_attention``) are not references to a top-level ``weights`` in a scratch cell."""
    free: set[str] = set()

    def visit(node, bound: frozenset) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and node.id not in bound:
                free.add(node.id)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            for d in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
                visit(d, bound)
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    visit(a.annotation, bound)
            if isinstance(node, ast.Lambda):
                body = [node.body]
            else:
                for d in node.decorator_list:
                    visit(d, bound)
                if node.returns is not None:
                    visit(node.returns, bound)
                body = node.body
            params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
            inner = bound | params | _scope_bindings(body)
            for b in body:
                visit(b, frozenset(inner))
            return
        if isinstance(node, ast.ClassDef):
            for n in [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]:
                visit(n, bound)
            class_locals = _scope_bindings(node.body)
            for b in node.body:  # methods do not see the class body's names
                is_def = isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
                visit(b, bound if is_def else frozenset(bound | class_locals))
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            targets = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            visit(node.generators[0].iter, bound)  # evaluated in the enclosing scope
            inner = frozenset(bound | targets)
            for i, g in enumerate(node.generators):
                if i:
                    visit(g.iter, inner)
                for cond in g.ifs:
                    visit(cond, inner)
            for part in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
                visit(part, inner)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, bound)

    visit(stmt, frozenset())
    return free


# The statements that bind names at the top level of a test cell in the harness form (see
# contract.harness_problem): imports, definitions and constant assignments.
TEST_CELL_BINDINGS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                      ast.Assign, ast.AnnAssign)


def bound_names(stmt) -> list[str]:
    """The names a top-level statement binds: a def's or class's name, imported names, assignment
    targets, and names stored inside a top-level for/with/if/try."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, (ast.For, ast.With, ast.If, ast.Try)):
        return [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return []


def grade_call(stmt) -> ast.Call | None:
    """The ``grade(...)`` call when the top-level statement ``stmt`` is one, else None."""
    if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "grade"):
        return stmt.value
    return None
