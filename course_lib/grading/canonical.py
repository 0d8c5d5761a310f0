"""Python code in a canonical form, to find copies of it: normalised ASTs.

Docstrings are dropped and local names (parameters, locals, loop and comprehension variables) are
renamed canonically in order of first use, while attribute names and globals (``torch``, ``F``) are
kept: a copy with renamed variables, other comments or other formatting has the same
:func:`canonical` text. :mod:`.leaks` compares the answer key with a student distribution this way.
"""

from __future__ import annotations

import ast
import copy
import re

_MAGIC = re.compile(r"^\s*[%!]")


def parse_code(source: str) -> ast.Module | None:
    """A code cell or file as an AST (IPython magics blanked out); None when it is not Python."""
    lines = ["" if _MAGIC.match(line) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _stores(nodes, *, into_functions: bool) -> set[str]:
    """Names bound by assignment (and parameters of nested scopes when ``into_functions``)."""
    names: set[str] = set()
    declared: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)) and not into_functions:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names - declared


def function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Parameters and every name the function (or a function nested in it) binds."""
    return _stores([fn.args, *fn.body], into_functions=True)


def module_locals(tree: ast.Module) -> set[str]:
    """Names assigned at the module's (or a class body's) level, outside any function."""
    return _stores(tree.body, into_functions=False)


def drop_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


class _Rename(ast.NodeTransformer):
    def __init__(self, local: set[str], placeholder: str | None):
        self.local, self.placeholder, self.names = local, placeholder, {}

    def _name(self, name: str) -> str:
        if name not in self.local:
            return name
        if self.placeholder is not None:
            return self.placeholder
        return self.names.setdefault(name, f"_v{len(self.names)}")

    def visit_Name(self, node):
        node.id = self._name(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._name(node.arg)
        node.annotation = None
        return self.generic_visit(node)

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self._name(node.name)
        return self.generic_visit(node)

    def visit_Expr(self, node):  # a bare string statement (a docstring of a nested function, a note)
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return ast.Pass()
        return self.generic_visit(node)


def _walk_order(stmts: list[ast.stmt], local: set[str]) -> list[str]:
    """Local names in order of first use (source order), for canonical renaming."""
    seen: dict[str, None] = {}
    for stmt in stmts:
        for node in sorted((n for n in ast.walk(stmt) if isinstance(n, (ast.Name, ast.arg, ast.ExceptHandler))),
                           key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
            name = node.id if isinstance(node, ast.Name) else node.arg if isinstance(node, ast.arg) else node.name
            if name and name in local:
                seen.setdefault(name, None)
    return list(seen)


def canonical(stmts: list[ast.stmt], local: set[str]) -> str:
    """The statements as a normalised AST dump: locals renamed ``_v0, _v1, ...`` in order of first use."""
    renamer = _Rename(local, None)
    for i, name in enumerate(_walk_order(stmts, local)):
        renamer.names[name] = f"_v{i}"
    body = [renamer.visit(copy.deepcopy(s)) for s in stmts]
    return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False, include_attributes=False)


def shape(stmt: ast.stmt, local: set[str]) -> str:
    """One statement with every local name replaced by ``_`` (a cheap key to find candidates)."""
    node = _Rename(local, "_").visit(copy.deepcopy(stmt))
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def node_count(stmts: list[ast.stmt]) -> int:
    return sum(1 for s in stmts for _ in ast.walk(s))


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method of a module by qualified name (``Class.method``, ``outer.inner``)."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.setdefault(prefix + child.name, child)
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def statement_lists(tree: ast.Module):
    """Every list of consecutive statements in a module, with the names local to its scope."""
    mod_local = module_locals(tree)

    def visit(node, local):
        for _, value in ast.iter_fields(node):
            if isinstance(value, list) and value and all(isinstance(v, ast.stmt) for v in value):
                yield value, local
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, function_locals(child))
            else:
                yield from visit(child, local)

    yield from visit(tree, mod_local)
