"""Does the student distribution hold any part of the answer key? (An instructor tool.)

The *secrets* of an assignment are read from its instructor notebook and its released notebook:

- **graded functions**: every function or method of a solution cell whose body differs between the
  instructor cell (solution markers stripped) and the released cell, and every solution region
  (``### BEGIN SOLUTION`` .. ``### END SOLUTION``) that parses as statements (e.g.
  ``TORCH_LSTMCELL_PARAMS = ...``). They are compared as *normalised ASTs*: docstrings dropped,
  local names (parameters, locals, loop and comprehension variables) renamed canonically in order of
  first use, attribute names and globals (``torch``, ``F``) kept; so a copy with renamed variables
  or other comments and formatting still matches;
- **hidden tests**: every line between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` of a
  test cell that is distinctive: at least :data:`MIN_HIDDEN_LINE` characters once stripped, not an
  import, and not part of a line outside the hidden blocks of the course's instructor notebooks;
- **model answers**: every sentence of a written answer's solution cell (markdown, ``grade`` and
  ``solution``) of at least :data:`MIN_ANSWER_CHARS` characters once reduced to lower-case words,
  unless the public text of the course's instructor notebooks says it too.

:func:`scan` then looks for them in every file of a distribution (a folder, a wheel, or a mapping
of names to bytes): function bodies and solution blocks in every Python file and every code cell of
every ``.ipynb`` (as a window of consecutive statements of any statement list, so a body pasted into
a larger function is found too), hidden test lines and model answers in the text of every file
(notebook cells and outputs included). Each :class:`Leak` names the file and what leaked.

``python -m course_lib.grading.leaks [--root REPO] PATH...`` scans folders or wheels against the
assignments of ``REPO`` (released on the fly) and exits 1 when something leaked.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .canonical import (
    canonical,
    drop_docstring,
    function_locals,
    functions,
    module_locals,
    node_count,
    parse_code,
    shape,
    statement_lists,
)
from .cells import grade_id, nbgrader, split_hidden_tests

#: Hidden test lines shorter than this (stripped) are not distinctive (``with quiet():``).
MIN_HIDDEN_LINE = 20
#: Model-answer sentences shorter than this (as lower-case words) are not distinctive.
MIN_ANSWER_CHARS = 30
#: Solution regions smaller than this many AST nodes (``return x``) are not distinctive.
MIN_BLOCK_NODES = 6
#: A single statement of a graded body this large is reported as a *partial* match where found alone.
MIN_STATEMENT_NODES = 16

_SOLUTION_MARK = re.compile(r"^\s*#+\s*(BEGIN|END) SOLUTION\s*$")
_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
             ast.With, ast.AsyncWith, ast.Try, ast.Match)


# ----------------------------------------------------------------------------- secrets
@dataclass
class CodeSecret:
    assignment: str
    kind: str  # "function" or "solution block"
    name: str  # Class.method, or the cell's grade_id for a block
    canonical: str
    shapes: tuple[str, ...]
    types: tuple[str, ...] = ()


@dataclass
class TextSecret:
    assignment: str
    kind: str  # "hidden test" or "model answer"
    name: str  # the cell's grade_id
    text: str  # what is looked for (hidden test: a stripped line; model answer: lower-case words)


@dataclass
class Secrets:
    assignment: str
    code: list[CodeSecret] = field(default_factory=list)
    text: list[TextSecret] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    #: distinctive single statements of graded bodies, as shapes -> the function they come from
    statements: dict[str, str] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(s.kind == kind for s in self.code) + sum(s.kind == kind for s in self.text)

    def summary(self) -> str:
        return (f"{self.assignment}: {self.count('function')} graded functions, "
                f"{self.count('solution block')} solution blocks, {self.count('hidden test')} hidden test lines, "
                f"{self.count('model answer')} model-answer sentences"
                + (f" (not distinctive, skipped: {', '.join(f'{v} {k}' for k, v in self.skipped.items())})"
                   if self.skipped else ""))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _code_secret(assignment, kind, name, stmts, local) -> CodeSecret:
    return CodeSecret(assignment, kind, name, canonical(stmts, local), tuple(shape(s, local) for s in stmts),
                      tuple(type(s).__name__ for s in stmts))


def words(text: str) -> str:
    """Lower-case words separated by single spaces (markup, punctuation and comment marks dropped)."""
    return " ".join(re.findall(r"[0-9a-z]+", text.lower()))


def _squash(line: str) -> str:
    return " ".join(line.split())


def _sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [p for p in re.split(r"(?<=[.!?;:])\s+|\s+[-*]\s+|\|", flat) if p.strip()]


def _solution_regions(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of every solution region of a code cell (1-based, markers excluded)."""
    out, start, lines = [], None, source.splitlines()
    for i, line in enumerate(lines, 1):
        if _SOLUTION_MARK.match(line):
            if "BEGIN" in line:
                start = i + 1
            elif start is not None:
                out.append((start, i - 1, "\n".join(lines[start - 1:i - 1])))
                start = None
    return out


def public_parts(instructor: dict) -> tuple[set[str], list[str]]:
    """What a notebook shows students: (its code and text lines outside hidden tests and written
    answers, whitespace-squashed; its public cells as lower-case words)."""
    lines: set[str] = set()
    texts: list[str] = []
    for cell in instructor.get("cells", []):
        meta, src = nbgrader(cell), _source(cell)
        if cell.get("cell_type") == "markdown" and meta.get("solution"):
            continue
        _, outside = split_hidden_tests(src)
        lines.update(_squash(line) for line in outside if not _SOLUTION_MARK.match(line))
        if cell.get("cell_type") == "markdown" or not meta.get("solution"):
            texts.append(words(src))
    return lines, texts


def collect_secrets(assignment: str, instructor: dict, released: dict, *, others: list[dict] = ()) -> Secrets:
    """The secrets of one assignment: its instructor notebook against its released notebook (nbformat dicts).

    What the public part of the notebook (or of the ``others``, the course's other instructor
    notebooks) also says is not a secret.
    """
    secrets = Secrets(assignment)
    released_cells = {grade_id(c): c for c in released.get("cells", []) if grade_id(c)}
    public_lines: set[str] = set()
    public_words: list[str] = []
    for nb in [instructor, *others]:
        lines, texts = public_parts(nb)
        public_lines |= lines
        public_words += texts
    public_text = " | ".join(public_words)
    public_code = "\n".join(sorted(public_lines))

    for cell in instructor.get("cells", []):
        meta, src, kind = nbgrader(cell), _source(cell), cell.get("cell_type")
        gid = meta.get("grade_id", "?")
        if kind == "code" and meta.get("solution"):
            full = parse_code("\n".join(line for line in src.splitlines() if not _SOLUTION_MARK.match(line)))
            if full is None:
                _skip(secrets, "unparsable solution cells")
                continue
            rel = released_cells.get(gid)
            rel_tree = parse_code(_source(rel)) if rel is not None else None
            _function_secrets(secrets, full, functions(rel_tree) if rel_tree is not None else {})
            _region_secrets(secrets, gid, src)
        elif kind == "code" and meta.get("grade"):
            _hidden_test_secrets(secrets, gid, src, public_code)
        elif kind == "markdown" and meta.get("solution") and meta.get("grade"):
            _answer_secrets(secrets, gid, src, public_text)
    _dedupe(secrets)
    return secrets


def _skip(secrets: Secrets, why: str) -> None:
    secrets.skipped[why] = secrets.skipped.get(why, 0) + 1


def _function_secrets(secrets: Secrets, full: ast.Module, released_fns: dict) -> None:
    """Every function of a solution cell that the release does not give as it is, and its large statements."""
    for qualname, fn in functions(full).items():
        body = drop_docstring(fn.body)
        if not body:
            continue
        local = function_locals(fn)
        ref = _code_secret(secrets.assignment, "function", qualname, body, local)
        other = released_fns.get(qualname)
        if other is not None and canonical(drop_docstring(other.body), function_locals(other)) == ref.canonical:
            continue  # given to students as it is: not graded
        secrets.code.append(ref)
        given = {shape(st, function_locals(other)) for st in ast.walk(other) if isinstance(st, ast.stmt)} \
            if other is not None else set()
        for st in ast.walk(ast.Module(body=body, type_ignores=[])):
            if isinstance(st, ast.stmt) and not isinstance(st, _COMPOUND) and node_count([st]) >= MIN_STATEMENT_NODES:
                sh = shape(st, local)
                if sh not in given:
                    secrets.statements.setdefault(sh, qualname)


def _region_secrets(secrets: Secrets, gid: str, src: str) -> None:
    """Every solution region that parses as statements, in the scope it sits in."""
    marked = parse_code(src)
    for first, last, text in _solution_regions(src):
        region = parse_code(textwrap.dedent(text))
        if region is None or not region.body:
            _skip(secrets, "unparsable solution regions")
            continue
        if all(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for s in region.body):
            continue  # whole functions: found as functions above
        enclosing = None
        if marked is not None:
            for fn in functions(marked).values():
                if fn.lineno < first and (fn.end_lineno or 0) >= last:
                    enclosing = fn if enclosing is None or fn.lineno > enclosing.lineno else enclosing
        local = function_locals(enclosing) if enclosing is not None else module_locals(region)
        if node_count(region.body) < MIN_BLOCK_NODES:
            _skip(secrets, "tiny solution regions")
            continue
        secrets.code.append(_code_secret(secrets.assignment, "solution block", f"{gid} (lines {first}-{last})",
                                         region.body, local))


def _hidden_test_secrets(secrets: Secrets, gid: str, src: str, public_code: str) -> None:
    """The distinctive lines of a test cell's hidden tests that the public material does not also show."""
    # Stricter than the replay's scrub (:func:`course_lib.grading.replay.hidden_lines`): a line found in a
    # distribution is reported as a leak, so only lines long enough to be distinctive, not imports and not
    # also public count; the scrub withholds any message quoting any hidden line of 8+ characters.
    inside, _ = split_hidden_tests(src)
    for line in inside:
        stripped = _squash(line)
        if len(stripped) < MIN_HIDDEN_LINE:
            if stripped:
                _skip(secrets, "short hidden lines")
            continue
        if stripped.startswith(("import ", "from ")):
            _skip(secrets, "hidden imports")
            continue
        if stripped in public_code:
            _skip(secrets, "hidden lines also public")
            continue
        secrets.text.append(TextSecret(secrets.assignment, "hidden test", gid, stripped))


def _answer_secrets(secrets: Secrets, gid: str, src: str, public_text: str) -> None:
    """The distinctive sentences of a model answer that the public material does not also say."""
    for sentence in _sentences(src):
        w = words(sentence)
        if len(w) < MIN_ANSWER_CHARS:
            continue
        if w in public_text:
            _skip(secrets, "answer sentences also public")
            continue
        secrets.text.append(TextSecret(secrets.assignment, "model answer", gid, w))


def _dedupe(secrets: Secrets) -> None:
    """One entry per distinct secret."""
    seen, code = set(), []
    for s in sorted(secrets.code, key=lambda s: s.kind != "function"):  # a region that is a whole body: once
        if s.canonical not in seen:
            seen.add(s.canonical)
            code.append(s)
    secrets.code = code
    seen, text = set(), []
    for s in secrets.text:
        if (s.kind, s.text) not in seen:
            seen.add((s.kind, s.text))
            text.append(s)
    secrets.text = text


# ----------------------------------------------------------------------------- scanning
@dataclass(frozen=True)
class Leak:
    path: str
    assignment: str
    kind: str
    name: str
    where: str = ""
    what: str = ""  # the hidden test line or model-answer sentence found (empty for code)

    def __str__(self) -> str:
        what = f": {self.what[:70]!r}" if self.what else ""
        return f"{self.path}{':' + self.where if self.where else ''}: {self.kind} {self.name!r} of {self.assignment}{what}"


@dataclass
class ScanReport:
    leaks: list[Leak]
    files: int = 0
    python_sources: int = 0
    statement_lists: int = 0
    unparsable: list[str] = field(default_factory=list)
    #: single distinctive statements of a graded body found outside a whole-body match: not a leak
    #: of the body, but worth a look (an equivalent implementation written differently)
    partial: list[Leak] = field(default_factory=list)


def _notebook_parts(data: bytes) -> tuple[list[tuple[str, str]], str] | None:
    """(code cells as (where, source), all text of the cells and their outputs) of an .ipynb; None if not one."""
    try:
        nb = json.loads(data.decode("utf-8"))
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    code, text = [], []
    for i, cell in enumerate(cells):
        src = _source(cell)
        text.append(src)
        if cell.get("cell_type") == "code":
            code.append((f"cell {i}", src))
        for out in cell.get("outputs", []) or []:
            for value in [out.get("text"), *(out.get("data") or {}).values(), out.get("evalue"),
                          *(out.get("traceback") or [])]:
                if isinstance(value, list):
                    value = "".join(v for v in value if isinstance(v, str))
                if isinstance(value, str):
                    text.append(value)
    return code, "\n".join(text)


def scan(files: dict[str, bytes], secrets: list[Secrets]) -> ScanReport:
    """Every leak of ``secrets`` in ``files`` (name -> content)."""
    report = ScanReport([], files=len(files))
    # candidates are found by the statements' types first, then by their shapes, then compared exactly
    by_types: dict[tuple[str, ...], list[CodeSecret]] = {}
    for group in secrets:
        for s in group.code:
            by_types.setdefault(s.types, []).append(s)
    lengths = sorted({len(t) for t in by_types})
    statements = {sh: (group.assignment, name) for group in secrets for sh, name in group.statements.items()}
    partial: set[Leak] = set()
    text_secrets = [s for group in secrets for s in group.text]
    found: set[Leak] = set()

    for path, data in sorted(files.items()):
        sources: list[tuple[str, str]] = []
        if path.endswith(".ipynb"):
            parts = _notebook_parts(data)
            if parts is None:
                text = data.decode("utf-8", "replace")
            else:
                sources, text = parts
        else:
            text = data.decode("utf-8", "replace")
            if path.endswith((".py", ".pyw", ".pyi")):
                sources = [("", text)]
        for where, src in sources:
            tree = parse_code(src)
            if tree is None:
                if src.strip():
                    report.unparsable.append(f"{path}{':' + where if where else ''}")
                continue
            report.python_sources += 1
            for stmts, local in statement_lists(tree):
                report.statement_lists += 1
                types = [type(st).__name__ for st in stmts]
                shapes: dict[int, str] = {}
                for j, st in enumerate(stmts):
                    if not isinstance(st, _COMPOUND) and statements:
                        shapes[j] = shape(st, local)
                        if shapes[j] in statements:
                            assignment, name = statements[shapes[j]]
                            line = f"{where + ' ' if where else ''}line {st.lineno}"
                            partial.add(Leak(path, assignment, "statement of", name, line))
                for length in lengths:
                    for i in range(len(stmts) - length + 1):
                        candidates = by_types.get(tuple(types[i:i + length]))
                        if not candidates:
                            continue
                        for j in range(i, i + length):
                            if j not in shapes:
                                shapes[j] = shape(stmts[j], local)
                        window = tuple(shapes[j] for j in range(i, i + length))
                        for s in candidates:
                            if s.shapes == window and canonical(stmts[i:i + length], local) == s.canonical:
                                line = f"{where + ' ' if where else ''}line {stmts[i].lineno}"
                                found.add(Leak(path, s.assignment, s.kind, s.name, line))
        squashed = "\n".join(_squash(line) for line in text.splitlines())
        worded = f" {words(text)} "
        for s in text_secrets:
            if s.kind == "hidden test":
                hit = s.text in squashed
                if not hit:  # the code without its trailing comment
                    code_part = s.text.split(" # ")[0].rstrip()
                    hit = len(code_part) >= MIN_HIDDEN_LINE and code_part != s.text and code_part in squashed
            else:
                hit = f" {s.text} " in worded
            if hit:
                found.add(Leak(path, s.assignment, s.kind, s.name, "", s.text))
    report.leaks = sorted(found, key=lambda x: (x.path, x.assignment, x.kind, x.name, x.where))
    whole = {(x.path, x.name) for x in found}
    report.partial = sorted((x for x in partial if (x.path, x.name) not in whole),
                            key=lambda x: (x.path, x.assignment, x.name, x.where))
    return report


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by its relative path."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_wheel(wheel: Path) -> dict[str, bytes]:
    """Every member of a wheel (or any zip), named ``<wheel>!<member>``."""
    with zipfile.ZipFile(wheel) as z:
        return {f"{Path(wheel).name}!{n}": z.read(n) for n in z.namelist() if not n.endswith("/")}


def assignment_secrets(root: Path, released_dir: Path, names: list[str]) -> list[Secrets]:
    """The secrets of every assignment: ``<root>/notebooks/<name>/<name>.ipynb`` against
    ``<released_dir>/<name>/<name>.ipynb`` (what ``course release --output`` writes)."""
    instructor = {name: json.loads((Path(root) / "notebooks" / name / f"{name}.ipynb").read_text(encoding="utf-8"))
                  for name in names}
    out = []
    for name in names:
        released = json.loads((Path(released_dir) / name / f"{name}.ipynb").read_text(encoding="utf-8"))
        others = [nb for other, nb in instructor.items() if other != name]
        out.append(collect_secrets(name, instructor[name], released, others=others))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from .assignments import find_root, list_assignments
    from .workspace import Workspace

    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.leaks", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="folders or wheels of a student distribution")
    parser.add_argument("--root", help="the instructor repository (default: the one found from here)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve() if args.root else find_root()
    names = list_assignments(root)
    with tempfile.TemporaryDirectory(prefix="course-leaks-") as tmp:
        ws = Workspace(Path(tmp) / "ws", root=root)
        for name in names:
            ws.release(name, output=Path(tmp) / "released")
        secrets = assignment_secrets(root, Path(tmp) / "released", names)
    files: dict[str, bytes] = {}
    for p in map(Path, args.paths):
        if p.is_dir():
            files.update({f"{p.name}/{k}": v for k, v in read_tree(p).items()})
        else:
            files.update(read_wheel(p))
    for s in secrets:
        print(s.summary())
    report = scan(files, secrets)
    print(f"scanned {report.files} files ({report.python_sources} Python sources, "
          f"{report.statement_lists} statement lists)")
    for leak in report.leaks:
        print(f"LEAK {leak}")
    for near in report.partial:
        print(f"PARTIAL (one distinctive statement; check by hand) {near}")
    return 1 if report.leaks else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
