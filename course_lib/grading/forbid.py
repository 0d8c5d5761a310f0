"""Forbidden functions at run time: what a part of an assignment must not call.

``forbidden(["torch.nn.LayerNorm"], test_id)`` makes the named functions, classes or modules raise
:class:`ForbiddenFunction` while the student's ``run`` executes in the kernel: by their module
attributes, by a ``TorchFunctionMode`` (references taken earlier, other public names of the same
computation) and by a ``TorchDispatchMode`` (the ATen operators they dispatch to). The kernel is the
student's, so this is the friendly half; the grader also scans the code (:mod:`.scan`), which no
kernel can patch.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["ForbiddenFunction", "forbidden", "forbidden_message", "FORBID_ALIASES", "FORBID_ATEN"]


class ForbiddenFunction(RuntimeError):
    """The student's code called a function this part of the assignment forbids."""


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

    patches, torch_funcs = _patches(names, test_id)

    class _Mode(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in torch_funcs:
                raise ForbiddenFunction(forbidden_message(torch_funcs[func], test_id))
            return func(*args, **(kwargs or {}))

    aten = _aten_ops(names)

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
        function_mode = _Mode() if torch_funcs else contextlib.nullcontext()
        with function_mode, _dispatch_mode() if aten else contextlib.nullcontext():
            yield
    finally:
        for owner, key, old in reversed(saved):
            if old is _MISSING:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(owner, key)
            else:
                setattr(owner, key, old)


_MISSING = object()


def _patches(names: list[str], test_id: str) -> tuple[list[tuple[Any, str, Any]], dict[Any, str]]:
    """What :func:`forbidden` replaces: ``(owner, attribute, raiser)`` triples, and the torch
    functions (with their aliases) its ``TorchFunctionMode`` refuses, each with the name forbidden."""
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
                _, _, a_obj = _resolve(alias)
            except (ImportError, AttributeError):
                continue
            torch_funcs.setdefault(a_obj, dotted)
    return patches, torch_funcs


def _aten_ops(names: list[str]) -> dict[str, str]:
    """ATen operator name -> the forbidden name it computes, for the ``TorchDispatchMode``."""
    aten: dict[str, str] = {}
    for dotted in names:
        for op in FORBID_ATEN.get(dotted, ()):
            aten.setdefault(op, dotted)
    if "torch.nn.MultiheadAttention" in names:
        for op in FORBID_ATEN["torch.nn.functional.scaled_dot_product_attention"]:
            aten.setdefault(op, "torch.nn.MultiheadAttention")
    return aten
