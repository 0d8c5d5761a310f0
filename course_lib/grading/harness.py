"""How a test cell runs: the student's code in the kernel, the checks in a clean process.

A test cell has two halves::

    from course_lib.grading.checks import assert_close, grade

    def run():                     # runs in the student's kernel: call the student's code
        return {"loss": mask_loss(LOSSES, MASK)}

    def check(out):                # compares plain data against the reference
        assert_close(out["loss"], 0.3444, name="mask_loss(losses, mask)", atol=1e-4)

    grade("test_mask_loss", run, check)

In JupyterLab (and under ``pytest --nbval``) ``grade`` runs both halves at once, so a student sees
the result straight away: ``test_mask_loss: public checks passed (hidden tests run at grading)``, or
``test_mask_loss: FAILED`` and the check's message (in the instructor's source notebook, whose test
cells still hold their hidden tests, a pass says so instead). While grading, the notebook runs in a sandbox where ``grade`` only
*records* what ``run`` returned (tensors, numbers, strings and containers of them, saved with
``torch.save``); the grader then loads the records with ``torch.load(weights_only=True)`` in a fresh
process that never ran student code and calls ``check`` there, with the test cell's code taken from
the instructor's source notebook. Redefining ``torch.allclose``, builtins, ``sys.modules`` entries
or ``grade`` itself inside the kernel therefore changes nothing about how an answer is judged: to
pass, the recorded values must be right.

``check`` must get everything it compares from ``out`` plus values it computes itself (inputs are
rebuilt from fixed seeds, weights are loaded into the student's model from the test), never from
the student's namespace.

``forbid`` names functions a part must not use (``"torch.nn.LayerNorm"``,
``"torch.nn.functional.scaled_dot_product_attention"``, ``"course_solutions.layers"``): they raise a
clear error while ``run`` executes, and the grader also looks for them in the student's code.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

RECORD_ENV = "COURSE_GRADING_RECORD"
RECORD_SUFFIX = ".pt"
MAX_ITEMS = 1_000_000  # values in one record (a guard against runaway recursion or huge lists)
MAX_DEPTH = 20
TEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,120}$")

__all__ = ["grade", "to_data", "forbidden", "ForbiddenFunction", "RecordError", "TestResult", "passed_message"]


class ForbiddenFunction(RuntimeError):
    """The student's code called a function this part of the assignment forbids."""


class RecordError(TypeError):
    """``run`` returned something that is not plain data (tensors, numbers, strings, containers)."""


# ----------------------------------------------------------------------------- plain data
def to_data(value: Any, *, name: str = "output") -> Any:
    """A copy of ``value`` made of plain data only: what a test records and ``check`` receives.

    Tensors become detached, contiguous CPU tensors (plain ``torch.Tensor``); NumPy arrays become
    tensors and NumPy scalars Python numbers; ``torch.Size`` a tuple; tuples, lists and dicts (with
    string or integer keys) are copied. Anything else raises :class:`RecordError` naming the path.
    """
    count = [0]
    return _to_data(value, name, 0, count)


def _to_data(v: Any, path: str, depth: int, count: list[int]) -> Any:
    import numpy as np
    import torch

    count[0] += 1
    if count[0] > MAX_ITEMS or depth > MAX_DEPTH:
        raise RecordError(f"{path}: the output is too large or too deeply nested to record")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, torch.Tensor):
        t = v.detach()
        if t.layout != torch.strided:  # sparse COO, CSR, ...
            t = t.to_dense()
        return t.to("cpu").as_subclass(torch.Tensor).contiguous().clone()
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise RecordError(f"{path}: a NumPy array of Python objects cannot be recorded; use numbers")
        return torch.from_numpy(np.array(v, copy=True))
    if isinstance(v, np.generic):
        return _to_data(v.item(), path, depth + 1, count)
    if isinstance(v, torch.Size):
        return tuple(int(s) for s in v)
    if isinstance(v, (torch.dtype, torch.device)):
        return str(v)
    if isinstance(v, int):  # int subclasses (IntEnum, hostile subclasses): the plain value
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, complex):
        return complex(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        items = [_to_data(x, f"{path}[{i}]", depth + 1, count) for i, x in enumerate(v)]
        return tuple(items) if isinstance(v, tuple) else items
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if type(k) not in (str, int):
                raise RecordError(f"{path}: dictionary keys must be strings or integers, got {type(k).__name__}")
            out[k] = _to_data(x, f"{path}[{k!r}]", depth + 1, count)
        return out
    raise RecordError(
        f"{path}: got a {type(v).__module__}.{type(v).__qualname__}; the test expects numbers, tensors, "
        "strings, or lists/tuples/dicts of them"
    )


# ----------------------------------------------------------------------------- forbidden functions
def _resolve(dotted: str):
    """(owner, attribute name, object) for ``"pkg.module.Class.attr"``; (None, None, module) for a module."""
    try:
        return None, None, importlib.import_module(dotted)
    except ImportError:
        pass
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        owner = obj
        for name in parts[cut:]:
            owner, obj = obj, getattr(obj, name)
        return owner, parts[-1], obj
    raise ImportError(f"cannot find {dotted}")


def _installed(dotted: str) -> bool:
    """Whether the top-level package of ``dotted`` can be found at all."""
    return importlib.util.find_spec(dotted.split(".")[0]) is not None


# Forbidding a function also forbids the other public names of the same computation (caught by the
# TorchFunctionMode, so references taken earlier are caught too).
FORBID_ALIASES = {
    "torch.nn.functional.layer_norm": ["torch.layer_norm", "torch.native_layer_norm"],
    "torch.nn.LayerNorm": ["torch.nn.functional.layer_norm", "torch.layer_norm", "torch.native_layer_norm"],
    "torch.nn.functional.scaled_dot_product_attention": ["torch._C._nn.scaled_dot_product_attention"],
    "torch.nn.MultiheadAttention": ["torch.nn.functional.multi_head_attention_forward",
                                    "torch.nn.functional.scaled_dot_product_attention"],
    "torch.nn.functional.softmax": ["torch.softmax", "torch.Tensor.softmax", "torch._softmax"],
    "torch.nn.functional.cross_entropy": ["torch.nn.functional.nll_loss", "torch.nn.functional.log_softmax"],
}


# ... and the ATen operators they dispatch to (caught by a TorchDispatchMode, which also sees
# torch.ops.aten.* called directly).
FORBID_ATEN = {
    "torch.nn.functional.layer_norm": ["native_layer_norm", "layer_norm"],
    "torch.nn.LayerNorm": ["native_layer_norm", "layer_norm"],
    "torch.nn.functional.scaled_dot_product_attention": [
        "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention"],
    "torch.nn.MultiheadAttention": ["_native_multi_head_attention"],
    "torch.nn.functional.softmax": ["_softmax", "softmax"],
}


def forbidden_message(dotted: str, test_id: str = "") -> str:
    where = f" in {test_id}" if test_id else ""
    return (f"{dotted} is not allowed{where}: this part asks you to write it yourself "
            "(see the task's instructions), so the solution must not call it")


@contextlib.contextmanager
def forbidden(names: Iterable[str], test_id: str = "") -> Iterator[None]:
    """Make the named functions, classes or modules raise :class:`ForbiddenFunction` for a while.

    A class is disabled by its constructor and its ``forward``; a function by its module attribute
    and, for torch functions, by a ``TorchFunctionMode`` that also catches references taken before
    the block (``ln = F.layer_norm``); a module by its attributes.
    """
    names = [n for n in names if n]
    if not names:
        yield
        return
    import torch

    patches: list[tuple[Any, str, Any]] = []
    torch_funcs: dict[Any, str] = {}

    def raiser(dotted):
        def _raise(*args, **kwargs):
            raise ForbiddenFunction(forbidden_message(dotted, test_id))

        return _raise

    for dotted in names:
        try:
            owner, attr, obj = _resolve(dotted)
        except ImportError:
            if _installed(dotted):
                raise
            # Not installed here (the instructor-only course_solutions in a student's environment
            # or in the grading sandbox): code that cannot be imported cannot be called, and the
            # static scan still flags any attempt to import it.
            continue
        if owner is None:  # a module: every public callable in it
            for key in dir(obj):
                if not key.startswith("_") and callable(getattr(obj, key, None)):
                    patches.append((obj, key, raiser(f"{dotted}.{key}")))
            continue
        if isinstance(obj, type):
            patches.append((obj, "__init__", raiser(dotted)))
            if hasattr(obj, "forward"):
                patches.append((obj, "forward", raiser(dotted)))
        else:
            patches.append((owner, attr, raiser(dotted)))
            torch_funcs[obj] = dotted
        for alias in FORBID_ALIASES.get(dotted, ()):  # the same computation under another name
            try:
                a_owner, a_attr, a_obj = _resolve(alias)
            except (ImportError, AttributeError):
                continue
            torch_funcs.setdefault(a_obj, dotted)

    class _Mode(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in torch_funcs:
                raise ForbiddenFunction(forbidden_message(torch_funcs[func], test_id))
            return func(*args, **(kwargs or {}))

    aten: dict[str, str] = {}
    for dotted in names:
        for op in FORBID_ATEN.get(dotted, ()):
            aten.setdefault(op, dotted)
    if "torch.nn.MultiheadAttention" in names:
        for op in FORBID_ATEN["torch.nn.functional.scaled_dot_product_attention"]:
            aten.setdefault(op, "torch.nn.MultiheadAttention")

    def _dispatch_mode():
        from torch.utils._python_dispatch import TorchDispatchMode  # costs an import: only when needed

        class _Dispatch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = getattr(getattr(func, "overloadpacket", None), "__name__", "")
                if name in aten:
                    raise ForbiddenFunction(forbidden_message(aten[name], test_id))
                return func(*args, **(kwargs or {}))

        return _Dispatch()

    saved = [(owner, key, owner.__dict__.get(key, _MISSING)) for owner, key, _ in patches]
    try:
        for owner, key, repl in patches:
            setattr(owner, key, repl)
        with _Mode() if torch_funcs else contextlib.nullcontext(), _dispatch_mode() if aten else contextlib.nullcontext():
            yield
    finally:
        for owner, key, old in reversed(saved):
            if old is _MISSING:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(owner, key)
            else:
                setattr(owner, key, old)


_MISSING = object()
_FORBIDDEN = forbidden  # bound at import: rebinding harness.forbidden later does not reach grade()


# ----------------------------------------------------------------------------- grade()
class TestResult(dict):
    """``{"passed": bool, "message": str}`` for one test, as the replaying grader sees it."""


class _Replay:
    """The grader's side: ``grade`` loads a record and calls ``check`` (see :mod:`.verify`)."""

    def __init__(self, records: Path, student_code: str = "", max_bytes: int = 64 * 1024 * 1024,
                 cells: list[tuple[str | None, str]] | None = None):
        self.records = Path(records)
        self.student_code = student_code  # every cell the student could edit (the tampering scan)
        # (answer grade_id or None, source) per editable cell: the forbidden-function scan looks at
        # the tested answer and what it uses, so a scratch cell that compares an answer with the
        # library function, or another part's answer, is not a use of it
        self.cells = cells
        self.max_bytes = max_bytes
        self.results: dict[str, TestResult] = {}

    def reachable(self, test_id: str) -> str:
        if self.cells is None:
            return self.student_code
        answers = sorted({g for g, _ in self.cells if g}, key=len, reverse=True)
        target = next((g for g in answers if test_id == f"test_{g}" or test_id.startswith(f"test_{g}_")), None)
        roots = {target} if target else set(answers)
        return reachable_code([(g in roots, src) for g, src in self.cells])


_STATE = threading.local()  # per thread: a Dask worker may check two notebooks at once


def set_replay(replay: "_Replay | None") -> None:
    """Switch this thread's ``grade`` to replay mode (the grader's clean process) or back."""
    _STATE.replay = replay


def _format_exc(exc: BaseException) -> str:
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def record_path(folder: Path | str, test_id: str) -> Path:
    if not TEST_ID_RE.match(test_id):
        raise ValueError(f"invalid test id {test_id!r}")
    return Path(folder) / f"{test_id}{RECORD_SUFFIX}"


def _write_record(test_id: str, payload: dict) -> None:
    import torch

    folder = Path(os.environ[RECORD_ENV])
    path = record_path(folder, test_id)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def grade(test_id: str, run: Callable[[], Any], check: Callable[[Any], None], *,
          forbid: Iterable[str] = ()) -> None:
    """Run one autograded test: ``check(to_data(run()))`` (see the module docstring)."""
    __tracebackhide__ = True  # IPython and pytest show the student's frames, not these
    forbid = list(forbid)
    replay = getattr(_STATE, "replay", None)
    if replay is not None:
        _replay(replay, test_id, check, forbid)
        return
    recording = bool(os.environ.get(RECORD_ENV))
    try:
        with _FORBIDDEN(forbid, test_id):
            value = run()
        out = to_data(value)
    except BaseException as exc:
        if recording:
            _write_record(test_id, {"ok": False, "error": _format_exc(exc)[:2000]})
        raise
    if recording:
        _write_record(test_id, {"ok": True, "value": out})
        return
    try:
        check(out)
    except AssertionError as exc:
        from .checks import CheckFailed

        if isinstance(exc, CheckFailed):
            exc.test_id = test_id
        raise
    print(passed_message(test_id, hidden=_cell_has_hidden_tests()))


def passed_message(test_id: str, hidden: bool = False) -> str:
    """What a test cell prints in the kernel when its checks pass.

    The released notebook holds the public checks only (nbgrader strips the hidden tests), so the
    line says so: passing them is not the grade. ``hidden``: the cell still has its hidden tests
    (the instructor's source notebook). The grader never prints it (it records instead).
    """
    if hidden:
        return f"{test_id}: passed (public and hidden tests: this is the instructor's copy)"
    return f"{test_id}: public checks passed (hidden tests run at grading)"


def _cell_has_hidden_tests() -> bool:
    """Whether the cell running now (IPython's last input) holds nbgrader's hidden-test markers."""
    try:
        from IPython import get_ipython

        ip = get_ipython()
        history = ip.user_ns.get("In") if ip is not None else None
        return bool(history) and "### BEGIN HIDDEN TESTS" in str(history[-1])
    except Exception:  # noqa: BLE001 - outside IPython, or a history we cannot read: the student's wording
        return False


def _replay(rp: _Replay, test_id: str, check: Callable[[Any], None], forbid: list[str]) -> None:
    import torch

    def result(passed: bool, message: str = "", quoted: bool = False) -> None:
        # quoted: the message carries text the student's code produced (scrubbed of hidden test code)
        rp.results[test_id] = TestResult(passed=passed, message=message, quoted=quoted)

    if forbid:
        hit = find_tampering(rp.student_code) or find_tampering(rp.reachable(test_id), dynamic=True)
        if hit:
            result(False, f"ForbiddenFunction: your code changes how the grader checks for forbidden functions "
                          f"(found `{hit}`), so {test_id} cannot be credited")
            return
    used = rp.reachable(test_id) if forbid else ""
    for dotted in forbid:
        hit = find_forbidden_use(used, dotted)
        if hit:
            result(False, f"ForbiddenFunction: {forbidden_message(dotted, test_id)} (found `{hit}` in your code)")
            return
    try:
        path = record_path(rp.records, test_id)
    except ValueError as exc:
        result(False, str(exc))
        return
    if not path.is_file() or path.is_symlink():
        result(False, "this test did not run (the notebook stopped before it, or the cell was not executed)")
        return
    if path.stat().st_size > rp.max_bytes:
        result(False, f"the values this test recorded are larger than {rp.max_bytes // 2**20} MiB")
        return
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a tampered or truncated record
        result(False, f"the values this test recorded could not be read ({type(exc).__name__})")
        return
    if not isinstance(payload, dict) or type(payload.get("ok")) is not bool:
        result(False, "the values this test recorded are not in the grader's format")
        return
    if not payload["ok"]:
        err = payload.get("error")
        result(False, err if isinstance(err, str) else "the test raised an error", quoted=True)
        return
    try:
        check(payload.get("value"))
    except AssertionError as exc:  # CheckFailed and plain asserts
        result(False, str(exc).strip() or "a check failed")
    except Exception as exc:  # noqa: BLE001 - the recorded values had an unexpected form
        result(False, f"{_format_exc(exc)[:500]} (while checking the values your code returned)", quoted=True)
    else:
        result(True)


# ----------------------------------------------------------------------------- static scan
DEFAULT_ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "np": "numpy"}


def find_forbidden_use(code: str, dotted: str) -> str | None:
    """Where ``code`` uses ``dotted``: the grader's check that needs no kernel, so it cannot be patched.

    Matches attribute access that resolves to ``dotted`` through the code's imports (``nn.LayerNorm``
    after ``from torch import nn``, ``F.layer_norm``), ``from torch.nn import LayerNorm``,
    ``getattr(nn, "LayerNorm")``, and imports of a forbidden module. A student's own function that
    happens to share the name (``def layer_norm(x): ...``, ``self.layer_norm``) is not a match.
    """
    import ast

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
TAMPER_NAMES = {"DisableTorchFunction", "DisableTorchFunctionSubclass", "_pop_torch_function_stack",
                "_push_on_torch_function_stack", "_set_torch_function_mode", "_pop_mode", "_push_mode",
                "_disable_torch_function", "_len_torch_function_stack", "_get_function_stack_at",
                "_disabled_torch_function_impl", "COURSE_GRADING_RECORD"}


def find_tampering(code: str, dynamic: bool = False) -> str | None:
    """Where ``code`` switches off torch function modes or rebinds anything in the grading harness.

    With ``dynamic`` (for the tested answer and what it uses) also dynamic code that hides what it
    calls: ``eval``/``exec``/``__import__``, ``importlib``, ``ctypes``, computed ``getattr`` on torch.
    """
    import ast

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
                and (resolve(node.args[0]) or "").split(".")[0] in ("torch", "sys", "builtins", "importlib", "course_lib")):
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
            if any(m.startswith("course_lib.grading.harness") for m in mods) or (
                    any(m == "course_lib.grading" for m in mods) and "harness" in names):
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


TAMPER_MODULES = ("torch._C", "torch.ops", "torch.overrides", "torch.utils._python_dispatch", "torch._dynamo",
                  "course_lib.grading.harness")


def _aliases(tree) -> dict[str, str]:
    """name -> dotted module/attribute path, from the imports in ``tree`` (plus F, nn, torch, np)."""
    import ast

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
    import ast

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
    import ast

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
            for name in _bound_names(stmt):
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


def _free_names(stmt) -> set[str]:
    """Names ``stmt`` reads from the module's globals: a function's locals and parameters (``weights``
    inside ``apply_attention``) are not references to a top-level ``weights`` in a scratch cell."""
    import ast

    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
              ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def bound_in(nodes) -> set[str]:
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
            if isinstance(n, scopes):
                continue
            todo.extend(ast.iter_child_nodes(n))
        return out - glob

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
            inner = bound | params | bound_in(body)
            for b in body:
                visit(b, frozenset(inner))
            return
        if isinstance(node, ast.ClassDef):
            for n in [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]:
                visit(n, bound)
            class_locals = bound_in(node.body)
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


def _bound_names(stmt) -> list[str]:
    import ast

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
