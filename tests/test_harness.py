"""The grading harness: plain-data records, grade() in its three modes, forbidden functions,
the static scan for them, the harness form of test cells and the test-order repair.

Everything here runs in-process on the CPU with tiny values (no kernels, no sandbox).
"""

from __future__ import annotations

import collections
import enum
import pickle
import threading
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_toy_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from torch import nn

from course_lib.grading import record
from course_lib.grading.checks import CheckFailed
from course_lib.grading.contract import ContractError, harness_problem, validate_source
from course_lib.grading.execute import restore_test_order
from course_lib.grading.forbid import ForbiddenFunction, forbidden
from course_lib.grading.plain import RecordError, to_data
from course_lib.grading.record import RECORD_ENV, grade, record_path
from course_lib.grading.replay import replay_tests
from course_lib.grading.scan import find_forbidden_use


def _replay_state():
    """This thread's replay state (None: grade() runs in the kernel's modes)."""
    return getattr(record._STATE, "replay", None)


@pytest.fixture(autouse=True)
def _inline_mode(monkeypatch):
    """Every test starts in the student's (inline) mode, whatever the environment says."""
    monkeypatch.delenv(RECORD_ENV, raising=False)
    assert _replay_state() is None
    yield
    assert _replay_state() is None, "replay_tests() must reset the replay state"


# =============================================================================== to_data
class TestToData:
    def test_tensor_with_grad_becomes_a_detached_copy(self):
        x = torch.arange(6.0, requires_grad=True)
        y = (x * 2).reshape(2, 3)
        out = to_data(y)
        assert type(out) is torch.Tensor
        assert not out.requires_grad and out.grad_fn is None
        assert torch.equal(out, torch.tensor([[0.0, 2, 4], [6, 8, 10]]))
        out[0, 0] = 99.0  # a copy: the student's tensor is untouched
        assert y[0, 0].item() == 0.0

    def test_tensor_subclass_and_parameter_become_plain_tensors(self):
        class Tagged(torch.Tensor):
            pass

        t = torch.tensor([1.0, 2.0]).as_subclass(Tagged)
        p = nn.Parameter(torch.tensor([3.0, 4.0]))
        out = to_data({"t": t, "p": p})
        assert type(out["t"]) is torch.Tensor and type(out["p"]) is torch.Tensor
        assert out["t"].tolist() == [1.0, 2.0] and out["p"].tolist() == [3.0, 4.0]
        assert not out["p"].requires_grad

    def test_non_contiguous_tensor_becomes_contiguous(self):
        x = torch.arange(6.0).reshape(2, 3).t()
        assert not x.is_contiguous()
        out = to_data(x)
        assert out.is_contiguous() and torch.equal(out, x)

    def test_sparse_coo_tensor_becomes_dense(self):
        dense = torch.tensor([[0.0, 1.5], [2.0, 0.0]])
        out = to_data(dense.to_sparse())
        assert out.layout == torch.strided and not out.is_sparse
        assert torch.equal(out, dense)

    def test_sparse_csr_tensor_becomes_dense(self):
        dense = torch.tensor([[0.0, 1.5], [2.0, 0.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            csr = dense.to_sparse_csr()
        out = to_data(csr)
        assert out.layout == torch.strided and torch.equal(out, dense)

    def test_numpy_array_becomes_a_tensor_copy(self):
        a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
        out = to_data(a)
        assert type(out) is torch.Tensor and out.dtype == torch.float32
        assert out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
        a[0, 0] = -1.0  # not a view of the student's array
        assert out[0, 0].item() == 1.0

    def test_numpy_scalars_become_python_numbers(self):
        out = to_data([np.float32(1.5), np.int64(7), np.bool_(True), np.float64(-0.25)])
        assert out == [1.5, 7, True, -0.25]
        assert [type(v) for v in out] == [float, int, bool, float]

    def test_numpy_scalar_that_is_not_a_number_is_rejected(self):
        with pytest.raises(RecordError, match=r"output"):
            to_data(np.datetime64("2020-01-01"))

    def test_torch_size_becomes_a_tuple_of_ints(self):
        out = to_data(torch.zeros(2, 3).shape)
        assert out == (2, 3) and type(out) is tuple and all(type(s) is int for s in out)

    def test_int_and_float_subclasses_become_plain_values(self):
        class Liar(int):
            def __eq__(self, other):
                return True

            __hash__ = int.__hash__

        class FloatLiar(float):
            def __eq__(self, other):
                return True

            __hash__ = float.__hash__

        class Color(enum.IntEnum):
            RED = 3

        assert Liar(5) == 6  # what a hostile answer would like a check to believe
        out = to_data({"i": Liar(5), "f": FloatLiar(0.5), "e": Color.RED})
        assert type(out["i"]) is int and out["i"] != 6 and out["i"] == 5
        assert type(out["f"]) is float and out["f"] != 0.25 and out["f"] == 0.5
        assert type(out["e"]) is int and out["e"] == 3

    def test_nested_containers_are_copied_with_their_kinds(self):
        Pair = collections.namedtuple("Pair", "a b")
        inner = [1, 2]
        value = collections.OrderedDict(
            a=[1, (2.5, torch.tensor(3.0))], b=Pair(np.int32(4), None), c=inner, d={7: "seven"})
        out = to_data(value)
        assert type(out) is dict and list(out) == ["a", "b", "c", "d"]
        assert type(out["a"]) is list and type(out["a"][1]) is tuple
        assert out["a"][0] == 1 and out["a"][1][0] == 2.5 and torch.equal(out["a"][1][1], torch.tensor(3.0))
        assert type(out["b"]) is tuple and out["b"] == (4, None)
        assert out["d"] == {7: "seven"}
        inner.append(3)
        assert out["c"] == [1, 2]  # copied, not shared

    def test_strings_dtypes_and_devices_are_recorded_as_text(self):
        assert to_data({"s": "hi", "dt": torch.float16, "dev": torch.device("cpu")}) == {
            "s": "hi", "dt": "torch.float16", "dev": "cpu"}

    @pytest.mark.parametrize("value, where, what", [
        ({"a": [0, {1.5: 2}]}, "output['a'][1]", "keys must be strings or integers, got float"),
        ({(1, 2): 3}, "output", "got tuple"),
        ({True: 1}, "output", "got bool"),
        ({"model": object()}, "output['model']", "builtins.object"),
        ([1, nn.Linear(2, 2)], "output[1]", "torch.nn.modules.linear.Linear"),
        ([0, np.array([1, "a"], dtype=object)], "output[1]", "NumPy array of Python objects"),
        ({"f": len}, "output['f']", "builtin_function_or_method"),
    ])
    def test_non_plain_data_raises_record_error_naming_the_path(self, value, where, what):
        with pytest.raises(RecordError) as info:
            to_data(value)
        msg = str(info.value)
        assert msg.startswith(where + ":"), msg
        assert what in msg

    def test_record_error_uses_the_given_name(self):
        with pytest.raises(RecordError, match=r"^result\[0\]: "):
            to_data([object()], name="result")

    def test_self_referencing_list_is_rejected_not_recursed_forever(self):
        loop: list = [1]
        loop.append(loop)
        with pytest.raises(RecordError, match="too deeply nested"):
            to_data(loop)

    def test_record_error_is_a_type_error(self):
        assert issubclass(RecordError, TypeError)


# =============================================================================== grade(): inline
def _check_sum(out):
    assert out["sum"] == 3, f"add(1, 2): expected 3, got {out['sum']}"


def test_inline_grade_prints_passed(capsys):
    seen = []

    def check(out):
        seen.append(out)
        _check_sum(out)

    assert grade("test_add", lambda: {"sum": np.int64(3)}, check) is None
    assert capsys.readouterr().out == "test_add: public checks passed (hidden tests run at grading)\n"
    assert seen == [{"sum": 3}] and type(seen[0]["sum"]) is int  # check receives plain data


def test_inline_grade_failing_check_raises_check_failed(capsys):
    def check(out):
        if out != 4:
            raise CheckFailed(f"expected 4, got {out}")

    with pytest.raises(CheckFailed, match="expected 4, got 3"):
        grade("test_add", lambda: 3, check)
    assert "passed" not in capsys.readouterr().out


def test_inline_grade_rejects_non_plain_data_before_check():
    called = []
    with pytest.raises(RecordError, match=r"output\['m'\]"):
        grade("test_add", lambda: {"m": object()}, called.append)
    assert called == []


# =============================================================================== grade(): record
@pytest.fixture()
def records(tmp_path, monkeypatch):
    folder = tmp_path / "records"
    folder.mkdir()
    monkeypatch.setenv(RECORD_ENV, str(folder))
    return folder


def _load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_record_mode_writes_the_record_and_does_not_check(records, capsys):
    def check(out):
        raise AssertionError("check must not run in the student's kernel while grading")

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    grade("test_add", lambda: {"sum": np.int64(3), "vec": x * 2}, check)
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in records.iterdir()) == ["test_add.pt"]  # no temporary files left
    payload = _load(records / "test_add.pt")
    assert payload["ok"] is True and set(payload) == {"ok", "value"}
    assert payload["value"]["sum"] == 3
    assert torch.equal(payload["value"]["vec"], torch.tensor([2.0, 4.0]))
    assert not payload["value"]["vec"].requires_grad


def test_record_mode_records_an_error_from_run_then_reraises(records):
    def run():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        grade("test_add", run, lambda out: None)
    assert _load(records / "test_add.pt") == {"ok": False, "error": "ValueError: boom"}


def test_record_mode_records_a_record_error(records):
    with pytest.raises(RecordError):
        grade("test_add", lambda: {"m": object()}, lambda out: None)
    payload = _load(records / "test_add.pt")
    assert payload["ok"] is False and payload["error"].startswith("RecordError: output['m']: got a builtins.object")


def test_record_mode_records_a_forbidden_call(records):
    def run():
        return F.layer_norm(torch.ones(2, 3), (3,))

    with pytest.raises(ForbiddenFunction):
        grade("test_ln", run, lambda out: None, forbid=["torch.nn.functional.layer_norm"])
    err = _load(records / "test_ln.pt")["error"]
    assert err.startswith("ForbiddenFunction: torch.nn.functional.layer_norm is not allowed in test_ln")


def test_record_path_rejects_ids_that_escape_the_folder(tmp_path):
    assert record_path(tmp_path, "test_a-1") == tmp_path / "test_a-1.pt"
    for bad in ("../evil", "a/b", "", "x" * 121, "t.pt"):
        with pytest.raises(ValueError, match="invalid test id"):
            record_path(tmp_path, bad)


# =============================================================================== grade(): replay via replay_tests()
def nbg(**kw):
    return {"nbgrader": {"schema_version": 3, **kw}}


SOLUTION = """def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION"""

TEST_ADD = """import torch
from course_lib.grading.checks import assert_close, grade

def run():
    return {"small": add(1, 2), "vec": add(torch.ones(3), 1)}

def check(out):
    assert_close(out["small"], 3, name="add(1, 2)")
    assert_close(out["vec"], [2.0, 2.0, 2.0], name="add(torch.ones(3), 1)")

grade("test_add", run, check)"""


def make_source(test_src: str = TEST_ADD, test_id: str = "test_add", solution: str = SOLUTION) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# tiny"),
        new_code_cell(solution, metadata=nbg(solution=True, grade=False, locked=False, grade_id="add")),
        new_code_cell(test_src, metadata=nbg(grade=True, solution=False, locked=True, grade_id=test_id, points=1)),
    ]
    return nb


class Graded:
    """A source notebook, a student's executed copy and a record folder, as the grader sees them."""

    def __init__(self, root: Path, source=None, student_solution: str | None = None):
        self.root = root
        self.records = root / "records"
        self.records.mkdir(parents=True, exist_ok=True)
        self.source = source if source is not None else make_source()
        self.src_path = root / "source.ipynb"
        self.exec_path = root / "executed.ipynb"
        nbformat.write(self.source, self.src_path)
        executed = make_source()
        if student_solution is not None:
            executed.cells[1].source = student_solution
        self.write_executed(executed)

    def write_executed(self, nb) -> None:
        nbformat.write(nb, self.exec_path)

    def record_by_running(self, monkeypatch, student_code: str, cell: int = 2) -> None:
        """What the sandboxed kernel does: the student's code, then the test cell in record mode."""
        monkeypatch.setenv(RECORD_ENV, str(self.records))
        ns: dict = {}
        exec(compile(student_code, "<student>", "exec"), ns)
        try:
            exec(compile(self.source.cells[cell].source, "<test>", "exec"), ns)
        except Exception:
            pass
        monkeypatch.delenv(RECORD_ENV)

    def save(self, payload, test_id: str = "test_add") -> None:
        torch.save(payload, self.records / f"{test_id}.pt")

    def verify(self) -> dict:
        return replay_tests(self.src_path, self.exec_path, self.records)


def test_replay_passes_a_correct_record(tmp_path, monkeypatch):
    g = Graded(tmp_path)
    g.record_by_running(monkeypatch, "def add(a, b):\n    return a + b")
    assert g.verify() == {"test_add": {"passed": True, "message": ""}}


def test_replay_fails_a_wrong_record_with_the_checks_message(tmp_path, monkeypatch):
    g = Graded(tmp_path)
    g.record_by_running(monkeypatch, "def add(a, b):\n    return a - b")
    res = g.verify()["test_add"]
    assert res["passed"] is False
    assert "add(1, 2)" in res["message"] and "3" in res["message"]


def test_replay_judges_with_the_source_test_not_the_students_copy(tmp_path):
    g = Graded(tmp_path)
    tampered = make_source(test_src=TEST_ADD.replace("def check(out):", "def check(out):\n    return"))
    g.write_executed(tampered)
    g.save({"ok": True, "value": {"small": 4, "vec": torch.zeros(3)}})
    res = g.verify()["test_add"]
    assert res["passed"] is False and "add(1, 2)" in res["message"]


def test_replay_never_calls_run(tmp_path):
    marker = tmp_path / "run-was-called"
    src = TEST_ADD.replace('    return {"small"', f'    open({str(marker)!r}, "w").close()\n    return {{"small"')
    g = Graded(tmp_path, source=make_source(test_src=src))
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}})
    assert g.verify()["test_add"]["passed"] is True
    assert not marker.exists()


def test_replay_missing_record_did_not_run(tmp_path):
    res = Graded(tmp_path).verify()["test_add"]
    assert res["passed"] is False and "did not run" in res["message"]


def test_replay_symlinked_record_is_not_read(tmp_path):
    g = Graded(tmp_path)
    real = tmp_path / "elsewhere.pt"
    torch.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}}, real)
    (g.records / "test_add.pt").symlink_to(real)
    res = g.verify()["test_add"]
    assert res["passed"] is False and "did not run" in res["message"]


def test_replay_recorded_error_is_the_message(tmp_path, monkeypatch):
    g = Graded(tmp_path)
    g.record_by_running(monkeypatch, "def add(a, b):\n    raise NotImplementedError")
    assert g.verify()["test_add"] == {"passed": False, "message": "NotImplementedError"}


@pytest.mark.parametrize("payload, message", [
    ({"ok": False, "error": "NotImplementedError"}, "NotImplementedError"),
    ({"ok": False, "error": 42}, "the test raised an error"),
    ([1, 2, 3], "the values this test recorded are not in the grader's format"),
    ({"ok": 1, "value": {}}, "the values this test recorded are not in the grader's format"),
    ({"value": {"small": 3}}, "the values this test recorded are not in the grader's format"),
])
def test_replay_bad_or_error_records(tmp_path, payload, message):
    g = Graded(tmp_path)
    g.save(payload)
    assert g.verify()["test_add"] == {"passed": False, "message": message}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_replay_garbage_bytes_cannot_be_read(tmp_path):
    g = Graded(tmp_path)
    (g.records / "test_add.pt").write_bytes(b"\x80\x04not a torch file at all\x00\xff" * 10)
    res = g.verify()["test_add"]
    assert res["passed"] is False and "could not be read" in res["message"]


class _Evil:
    """A pickle that creates a file when it is loaded without weights_only."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_replay_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    g = Graded(tmp_path)
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0), "x": _Evil(str(marker))}})
    # control: an unsafe load really would run the payload
    torch.load(g.records / "test_add.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    res = g.verify()["test_add"]
    assert not marker.exists()
    assert res["passed"] is False and "could not be read" in res["message"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_replay_plain_pickle_record_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    g = Graded(tmp_path)
    (g.records / "test_add.pt").write_bytes(pickle.dumps(_Evil(str(marker))))
    res = g.verify()["test_add"]
    assert not marker.exists()
    assert res["passed"] is False and "could not be read" in res["message"]


def test_replay_record_over_the_size_limit(tmp_path):
    g = Graded(tmp_path)
    with open(g.records / "test_add.pt", "wb") as f:  # a sparse file: large, but costs no disk or time
        f.truncate(64 * 2**20 + 1)
    res = g.verify()["test_add"]
    assert res == {"passed": False, "message": "the values this test recorded are larger than 64 MiB"}


def test_replay_check_raising_type_error_on_odd_data(tmp_path):
    g = Graded(tmp_path)
    g.save({"ok": True, "value": {"small": "three", "vec": [None]}})
    res = g.verify()["test_add"]
    assert res["passed"] is False and res["message"].startswith("add(1, 2): expected numbers")
    # assert_close turns odd values into CheckFailed; a check indexing a string raises TypeError:
    src = TEST_ADD.replace('assert_close(out["small"]', 'assert_close(out["small"] + 0')
    g2 = Graded(tmp_path / "g2", source=make_source(test_src=src))
    g2.save({"ok": True, "value": {"small": "three", "vec": [None]}})
    res2 = g2.verify()["test_add"]
    assert res2["passed"] is False
    assert res2["message"].startswith("TypeError: ")
    assert res2["message"].endswith("(while checking the values your code returned)")


def test_replay_value_missing_from_record(tmp_path):
    g = Graded(tmp_path)
    g.save({"ok": True})
    res = g.verify()["test_add"]
    assert res["passed"] is False and "TypeError" in res["message"]


def test_replay_cell_that_never_calls_grade_blames_the_instructor(tmp_path):
    src = TEST_ADD.replace('grade("test_add", run, check)', "pass")
    g = Graded(tmp_path, source=make_source(test_src=src))
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}})
    res = g.verify()["test_add"]
    assert res["passed"] is False
    assert "does not call grade('test_add'" in res["message"] and "instructor" in res["message"]


def test_replay_cell_calling_grade_with_another_id_is_not_credited(tmp_path):
    src = TEST_ADD.replace('grade("test_add"', 'grade("test_other"')
    g = Graded(tmp_path, source=make_source(test_src=src))
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}})
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}}, test_id="test_other")
    res = g.verify()
    assert list(res) == ["test_add"] and res["test_add"]["passed"] is False


def test_replay_instructor_cell_raising_at_top_level(tmp_path):
    src = TEST_ADD.replace("import torch\n", "import torch\nSCALE = 1 / 0\n")
    g = Graded(tmp_path, source=make_source(test_src=src))
    g.save({"ok": True, "value": {"small": 3, "vec": torch.full((3,), 2.0)}})
    res = g.verify()["test_add"]
    assert res["passed"] is False
    assert res["message"] == ("the test itself failed to run (ZeroDivisionError: division by zero); "
                              "tell your instructor")


FORBID_TEST = """import torch
from course_lib.grading.checks import assert_close, grade

def run():
    return add(torch.ones(2, 3), 0)

def check(out):
    assert_close(out, torch.ones(2, 3), name="add")

grade("test_add", run, check, forbid=["torch.nn.functional.layer_norm"])"""


def test_replay_state_is_per_thread(tmp_path, capsys):
    """A Dask worker may check one notebook while another thread grades inline."""
    g = Graded(tmp_path)
    g.save({"ok": True, "value": {"small": 4, "vec": torch.zeros(3)}})
    record.set_replay(record._Replay(g.records))
    try:
        seen = []
        t = threading.Thread(target=lambda: grade("test_other", lambda: 1, seen.append))
        t.start()
        t.join()
        assert seen == [1] and capsys.readouterr().out == "test_other: public checks passed (hidden tests run at grading)\n"
    finally:
        record.set_replay(None)


def test_verify_works_off_the_main_thread(tmp_path, monkeypatch):
    g = Graded(tmp_path)
    g.record_by_running(monkeypatch, "def add(a, b):\n    return a - b")
    out = {}
    t = threading.Thread(target=lambda: out.update(g.verify()))
    t.start()
    t.join(timeout=60)
    assert out["test_add"]["passed"] is False and "add(1, 2)" in out["test_add"]["message"]


def test_replay_static_scan_fails_forbidden_use_even_with_a_correct_record(tmp_path):
    student = "import torch.nn.functional as F\ndef add(a, b):\n    return F.layer_norm(a, (3,)) * 0 + a + b"
    g = Graded(tmp_path, source=make_source(test_src=FORBID_TEST), student_solution=student)
    g.save({"ok": True, "value": torch.ones(2, 3)})
    res = g.verify()["test_add"]
    assert res["passed"] is False
    assert res["message"].startswith("ForbiddenFunction: torch.nn.functional.layer_norm is not allowed in test_add")
    assert "found `F.layer_norm`" in res["message"]


def test_replay_static_scan_ignores_the_students_own_layer_norm(tmp_path):
    student = "def layer_norm(x):\n    return x\ndef add(a, b):\n    return layer_norm(a) + b"
    g = Graded(tmp_path, source=make_source(test_src=FORBID_TEST), student_solution=student)
    g.save({"ok": True, "value": torch.ones(2, 3)})
    assert g.verify()["test_add"] == {"passed": True, "message": ""}


def test_replay_static_scan_sees_code_after_a_blank_line_in_a_function(tmp_path):
    student = ("import torch.nn.functional as F\ndef add(a, b):\n    y = a + b\n\n"
               "    return F.layer_norm(y, (3,)) * 0 + y")
    g = Graded(tmp_path, source=make_source(test_src=FORBID_TEST), student_solution=student)
    g.save({"ok": True, "value": torch.ones(2, 3)})
    res = g.verify()["test_add"]
    assert res["passed"] is False and "ForbiddenFunction" in res["message"]


# =============================================================================== forbidden()
def test_forbidden_catches_a_torch_function_captured_before_the_block():
    ln = F.layer_norm
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    expected = ln(x, (3,))
    with forbidden(["torch.nn.functional.layer_norm"], "test_ln"):
        with pytest.raises(ForbiddenFunction, match="torch.nn.functional.layer_norm is not allowed in test_ln"):
            ln(x, (3,))
        with pytest.raises(ForbiddenFunction):
            F.layer_norm(x, (3,))
        assert torch.equal(torch.relu(x), x.clamp(min=0))  # other functions still work
    assert torch.allclose(ln(x, (3,)), expected) and torch.allclose(F.layer_norm(x, (3,)), expected)
    assert F.layer_norm is ln


def test_forbidden_class_construction_and_forward_raise():
    before = nn.LayerNorm(3)
    init, forward = nn.LayerNorm.__init__, nn.LayerNorm.forward
    x = torch.ones(2, 3)
    with forbidden(["torch.nn.LayerNorm"]):
        with pytest.raises(ForbiddenFunction, match="torch.nn.LayerNorm is not allowed"):
            nn.LayerNorm(3)
        with pytest.raises(ForbiddenFunction):
            before(x)  # a module built before the block
        assert nn.Linear(3, 1)(x).shape == (2, 1)
    assert nn.LayerNorm.__init__ is init and nn.LayerNorm.forward is forward
    assert torch.allclose(nn.LayerNorm(3)(torch.tensor([[1.0, 2.0, 3.0]])),
                          torch.tensor([[-1.2247, 0.0, 1.2247]]), atol=1e-4)


def test_forbidden_module_functions_raise():
    import course_solutions.layers as L

    losses, mask = torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 0]])
    originals = {k: getattr(L, k) for k in L.__all__}
    with forbidden(["course_solutions.layers"], "test_gen"):
        with pytest.raises(ForbiddenFunction, match="course_solutions.layers.mask_loss is not allowed in test_gen"):
            L.mask_loss(losses, mask)
        with pytest.raises(ForbiddenFunction, match="course_solutions.layers.generate"):
            L.generate(None, None)
    assert {k: getattr(L, k) for k in L.__all__} == originals
    assert L.mask_loss(losses, mask).item() == 1.0


def test_forbidden_restores_everything_after_an_exception_in_the_block():
    ln, init = F.layer_norm, nn.LayerNorm.__init__
    depth = torch._C._len_torch_function_stack()
    with pytest.raises(KeyError):
        with forbidden(["torch.nn.functional.layer_norm", "torch.nn.LayerNorm"]):
            assert F.layer_norm is not ln
            raise KeyError("student bug")
    assert F.layer_norm is ln and nn.LayerNorm.__init__ is init
    assert torch._C._len_torch_function_stack() == depth  # the TorchFunctionMode is gone
    assert F.layer_norm(torch.ones(1, 2), (2,)).tolist() == [[0.0, 0.0]]


def test_forbidden_with_nothing_to_forbid_changes_nothing():
    ln = F.layer_norm
    with forbidden(["", ""]):
        assert F.layer_norm is ln


# =============================================================================== find_forbidden_use
@pytest.mark.parametrize("code, dotted, hit", [
    ("from torch import nn\nm = nn.LayerNorm(3)", "torch.nn.LayerNorm", "nn.LayerNorm"),
    ("import torch\nm = torch.nn.LayerNorm(3)", "torch.nn.LayerNorm", "torch.nn.LayerNorm"),
    ("from torch import nn as N\nm = N.LayerNorm(3)", "torch.nn.LayerNorm", "N.LayerNorm"),
    ("import torch.nn.functional as G\ny = G.layer_norm(x, (3,))", "torch.nn.functional.layer_norm", "G.layer_norm"),
    ("from torch.nn.functional import layer_norm\n", "torch.nn.functional.layer_norm",
     "from torch.nn.functional import layer_norm"),
    ("from torch.nn.functional import layer_norm as ln\n", "torch.nn.functional.layer_norm", "layer_norm as ln"),
    ("from torch import nn\ncls = getattr(nn, 'LayerNorm')", "torch.nn.LayerNorm", "getattr(nn, 'LayerNorm')"),
    ("import course_solutions.layers\n", "course_solutions.layers", "import course_solutions.layers"),
    ("from course_solutions import layers\n", "course_solutions.layers", "from course_solutions import layers"),
    ("from course_solutions.layers import generate\n", "course_solutions.layers", "from course_solutions.layers import generate"),
    ("import importlib\nm = importlib.import_module('course_solutions.layers')", "course_solutions.layers", "'course_solutions.layers'"),
    ("def f(x):\n    import torch.nn.functional as Q\n    return Q.layer_norm(x, (3,))",
     "torch.nn.functional.layer_norm", "Q.layer_norm"),
])
def test_find_forbidden_use_positives(code, dotted, hit):
    found = find_forbidden_use(code, dotted)
    assert found is not None and hit in found, found


@pytest.mark.parametrize("code, dotted", [
    ("def layer_norm(x):\n    return x\ny = layer_norm(1)", "torch.nn.functional.layer_norm"),
    ("class Block:\n    def __init__(self):\n        self.layer_norm = MyNorm(3)\n"
     "    def forward(self, x):\n        return self.layer_norm(x)", "torch.nn.functional.layer_norm"),
    ("class Block:\n    def __init__(self):\n        self.LayerNorm = MyNorm(3)", "torch.nn.LayerNorm"),
    ("from torch import nn\n# like nn.LayerNorm, but by hand\nx = 1", "torch.nn.LayerNorm"),
    ('def norm(x):\n    """Same as nn.LayerNorm(3) without the weights."""\n    return x', "torch.nn.LayerNorm"),
    ("import my.layers\nfrom my import layers\nlayers.generate()", "course_solutions.layers"),
    ("from torch import nn\nm = nn.LayerNormalization(3)", "torch.nn.LayerNorm"),
    ("from torch import nn\nm = nn.Linear(3, 3)", "torch.nn.LayerNorm"),
    ("def broken(:\n    nn.LayerNorm(3)", "torch.nn.LayerNorm"),  # does not parse: the kernel could not run it
])
def test_find_forbidden_use_negatives(code, dotted):
    assert find_forbidden_use(code, dotted) is None


@pytest.mark.parametrize("code, dotted", [
    ("class B:\n    def forward(self, x):\n        return getattr(self, 'layer_norm')(x)", "torch.nn.functional.layer_norm"),
    ("for block in getattr(model, 'layers'):\n    pass", "course_solutions.layers"),
])
def test_find_forbidden_use_getattr_on_the_students_own_object(code, dotted):
    assert find_forbidden_use(code, dotted) is None


# =============================================================================== reachable_code
def test_reachable_code_follows_globals_not_locals_of_the_same_name():
    """A scratch cell's top-level `weights` (built with a forbidden class, to compare) is not what an
    answer's local `weights` is: a correct solution must not lose its points over a variable name."""
    from course_lib.grading.scan import reachable_code

    scratch = "from torch import nn\nweights = nn.MultiheadAttention(4, 2)\nscores = weights\n"
    answer = ("def apply_attention(q, k, v, scale=SCALE):\n    weights = softmax(q @ k)\n"
              "    scores = [w for w in weights]\n    return weights @ v\n")
    helpers = "SCALE = 2\ndef softmax(x):\n    return x.exp() / x.exp().sum()\n"
    code = reachable_code([(False, scratch), (False, helpers), (True, answer)])
    assert "SCALE = 2" in code and "def softmax" in code  # globals the answer uses are followed
    assert "MultiheadAttention" not in code
    assert find_forbidden_use(code, "torch.nn.MultiheadAttention") is None
    # ... but a helper the answer calls that uses the forbidden class is followed, through any depth
    cheat = "from torch import nn\ndef softmax(x):\n    return inner(x)\ndef inner(x):\n    return nn.MultiheadAttention(4, 2)(x, x, x)[0]\n"
    code = reachable_code([(False, scratch), (False, cheat), (True, answer)])
    assert find_forbidden_use(code, "torch.nn.MultiheadAttention") is not None
    # a name declared global inside the answer is the global one
    answer_global = "def f(x):\n    global weights\n    return weights(x)\n"
    code = reachable_code([(False, scratch), (True, answer_global)])
    assert find_forbidden_use(code, "torch.nn.MultiheadAttention") is not None
    # methods do not see class-body names; comprehension variables are local
    answer_cls = ("class M:\n    weights = 1\n    def forward(self, x):\n        return weights(x)\n"
                  "def g(xs):\n    return [weights for weights in xs]\n")
    code = reachable_code([(False, scratch), (True, answer_cls)])
    assert "MultiheadAttention" in code  # forward's `weights` is the global one


# =============================================================================== find_tampering
GRADING_MODULES = ["harness", "record", "forbid", "plain", "scan"]  # harness: the four's old name


@pytest.mark.parametrize("module", GRADING_MODULES)
@pytest.mark.parametrize("code", [
    "import course_lib.grading.{m} as h\nh.grade = lambda *a, **k: None",
    "import course_lib.grading.{m}\ncourse_lib.grading.{m}.forbidden = None",
    "from course_lib.grading import {m}\n{m}.to_data = None",
    "from course_lib.grading import {m} as h\nsetattr(h, 'forbidden', None)",
    "from course_lib.grading.{m} import grade\n",
])
def test_find_tampering_flags_every_grading_module(module, code):
    """A submission that imports or rebinds anything in the grading modules is caught, under each
    module's name: rebinding grade(), the forbidden-function guard or to_data in the kernel."""
    from course_lib.grading.scan import find_tampering

    assert find_tampering(code.format(m=module)) is not None


@pytest.mark.parametrize("code", [
    "import course_lib.grading.checks as checks\nchecks.grade = lambda *a, **k: None",
    "import sys\nsys.modules['course_lib.grading.record'].grade = None",
    "import course_lib.grading as g\ng.record.forbidden = None",
    "from course_lib.grading import record as r\ndelattr(r, '_FORBIDDEN')",
])
def test_find_tampering_flags_rebinding_through_other_paths(code):
    from course_lib.grading.scan import find_tampering

    assert find_tampering(code) is not None


@pytest.mark.parametrize("code", [
    "from course_lib.grading.checks import assert_close, quiet\nwith quiet():\n    y = 1",
    "class Log:\n    def __init__(self):\n        self.record = []\n        self.scan = 0\n        self.plain = 1\n"
    "        self.forbidden = set()",
    "record = {}\nscan = plain = forbid = None",
    "from course_lib.grading import checks\nchecks.assert_close(1, 1, name='x')",
])
def test_find_tampering_leaves_honest_code_alone(code):
    from course_lib.grading.scan import find_tampering

    assert find_tampering(code) is None


# =============================================================================== test cells: names and grade()
def test_bound_names_of_top_level_statements():
    import ast

    from course_lib.grading.scan import bound_names

    def names(src):
        return bound_names(ast.parse(src).body[0])

    assert names("def f(x):\n    y = 1") == ["f"]
    assert names("class C:\n    z = 1") == ["C"]
    assert names("import torch.nn.functional as F2") == ["F2"]
    assert names("import torch.nn") == ["torch"]
    assert names("from a.b import c, d as e") == ["c", "e"]
    assert names("a, (b, c) = 1, (2, 3)") == ["a", "b", "c"]
    assert names("x: int = 3") == ["x"]
    assert names("for i in range(3):\n    j = i") == ["i", "j"]
    assert names("grade('t', run, check)") == []


def test_grade_call_finds_only_a_top_level_call_of_grade():
    import ast

    from course_lib.grading.scan import grade_call

    stmts = ast.parse("grade('t', run, check)\nx = grade('t', run, check)\nchecks.grade('t', run, check)\n"
                      "print('grade')").body
    found = [grade_call(s) for s in stmts]
    assert isinstance(found[0], ast.Call) and found[0].args[0].value == "t"
    assert found[1:] == [None, None, None]


def test_kernel_view_keeps_run_and_what_it_uses_and_drops_check():
    from course_lib.grading.execute import kernel_view

    source = (
        "import torch\n"
        "from course_lib.grading.checks import assert_close, grade\n"
        "SEED = 3\n"
        "EXPECTED = torch.tensor([1.0])  # only check uses it\n"
        "def inputs():\n    return torch.full((2,), float(SEED))\n"
        "def run():\n    return {'y': add(inputs(), 1)}\n"
        "def reference(x):\n    return x + 1\n"
        "def check(out):\n    assert_close(out['y'], reference(inputs()), name='add')\n"
        "grade('test_add', run, check, forbid=FORBID)\n"
        "FORBID = ['torch.add']\n"
    )
    view = kernel_view(source)
    for kept in ("import torch", "SEED = 3", "def inputs", "def run", "FORBID = ['torch.add']"):
        assert kept in view, kept
    for dropped in ("EXPECTED", "def reference", "def check", "assert_close(out"):
        assert dropped not in view, dropped
    assert view.rstrip().endswith("grade('test_add', run, lambda out: None, forbid=FORBID)")
    # not the harness form: the cell as written
    assert kernel_view("print('hello')") == "print('hello')"
    assert kernel_view("grade('test_add')") == "grade('test_add')"
    assert kernel_view("def broken(:") == "def broken(:"


def test_the_grading_modules_import_one_way():
    """plain, forbid and scan import nothing from the package; record only those three; checks (what
    test cells import) only record: no cycle, lazy imports included."""
    import ast

    import course_lib.grading

    allowed = {"plain": set(), "forbid": set(), "scan": set(), "record": {"plain", "forbid", "scan"},
               "checks": {"record"}}
    folder = Path(course_lib.grading.__file__).parent
    for module, may in allowed.items():
        tree = ast.parse((folder / f"{module}.py").read_text())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                used |= {a.name for a in node.names} if not node.module else {node.module.split(".")[0]}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib.grading"):
                used.add((node.module.split(".") + [""])[2] or "?")
            elif isinstance(node, ast.Import):
                used |= {a.name.split(".")[2] for a in node.names if a.name.startswith("course_lib.grading.")}
        assert used <= may, (module, used - may)


# =============================================================================== contract: harness form
VALID_TEST = """from course_lib.grading.checks import assert_close, grade
import torch

SEED = 0
X = torch.ones(3)

def run():
    return add(X, 1)

def check(out):
    \"\"\"The sum.\"\"\"
    assert_close(out, X + 1, name="add(X, 1)")

grade("test_add", run, check, forbid=["torch.nn.LayerNorm"])"""


def test_harness_problem_accepts_a_valid_cell():
    assert harness_problem(VALID_TEST, "test_add") is None


@pytest.mark.parametrize("source, message", [
    (VALID_TEST + "\nadd(1, 2)", "line 15: a test cell's top level may hold only imports"),
    (VALID_TEST + "\nprint(add(1, 2))", "line 15: a test cell's top level may hold only imports"),
    (VALID_TEST.replace("SEED = 0", "for i in range(2):\n    add(i, i)"), "line 4: a test cell's top level"),
    (VALID_TEST.replace('grade("test_add", run, check, forbid=["torch.nn.LayerNorm"])', "check(run())"),
     "top level may hold only"),
    (VALID_TEST.replace('grade("test_add", run, check, forbid=["torch.nn.LayerNorm"])', ""),
     "must call grade('test_add', run, check) exactly once (found 0)"),
    (VALID_TEST + '\ngrade("test_add", run, check)', "exactly once (found 2)"),
    (VALID_TEST.replace('grade("test_add"', 'grade("test_sub"'),
     "grade(...) must name this cell's grade_id as its first argument: grade('test_add', run, check)"),
    (VALID_TEST.replace('grade("test_add"', "grade(TEST_ID"), "must name this cell's grade_id"),
    (VALID_TEST.replace('grade("test_add", run, check, forbid=["torch.nn.LayerNorm"])', 'grade("test_add", run)'),
     "grade(...) needs run and check"),
    ("def run(:\n    pass", "the test cell does not parse"),
])
def test_harness_problem_finds(source, message):
    problem = harness_problem(source, "test_add")
    assert problem is not None and message in problem, problem


def test_harness_problem_finds_student_code_in_a_top_level_assignment():
    source = VALID_TEST.replace("SEED = 0", "OUT = add(1, 2)")
    assert harness_problem(source, "test_add") is not None


def test_validate_source_reports_the_harness_problem():
    nb = make_toy_notebook()
    nb.cells[3].source += "\nadd(5, 6)"
    with pytest.raises(ContractError) as info:
        validate_source(nb)
    msg = str(info.value)
    assert "cell 3 (test_add): line " in msg and "top level may hold only" in msg
    assert "test_add_negative" not in msg  # only the broken cell is reported

    nb = make_toy_notebook()
    nb.cells[4].source = nb.cells[4].source.replace('grade("test_add_negative"', 'grade("test_add"')
    with pytest.raises(ContractError, match=r"cell 4 \(test_add_negative\): grade\(\.\.\.\) must name"):
        validate_source(nb)


# =============================================================================== restore_test_order
def _ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id", c.source[:12]) for c in nb.cells]


def order_source(path: Path) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# order"),
        new_code_cell("OFFSET = 0", metadata=nbg(grade_id="helpers", locked=True, solution=False, grade=False)),
        new_code_cell("def add(a, b):\n    return a + b", metadata=nbg(grade_id="add", solution=True, grade=False)),
        new_code_cell("grade('test_add', ...)", metadata=nbg(grade_id="test_add", grade=True, solution=False, points=1)),
        new_code_cell("def mul(a, b):\n    return a * b", metadata=nbg(grade_id="mul", solution=True, grade=False)),
        new_code_cell("grade('test_mul', ...)", metadata=nbg(grade_id="test_mul", grade=True, solution=False, points=1)),
    ]
    nbformat.write(nb, path)
    return nb


def test_restore_test_order_moves_a_test_back_below_its_solution(tmp_path):
    src = order_source(tmp_path / "src.ipynb")
    nb = nbformat.from_dict(src)
    nb.cells.insert(1, nb.cells.pop(3))  # test_add moved above helpers and add
    assert _ids(nb)[:4] == ["# order", "test_add", "helpers", "add"]
    assert restore_test_order(nb, tmp_path / "src.ipynb") == ["test_add"]
    assert _ids(nb) == ["# order", "helpers", "add", "test_add", "mul", "test_mul"]


def test_restore_test_order_moves_a_test_from_the_end_back(tmp_path):
    src = order_source(tmp_path / "src.ipynb")
    nb = nbformat.from_dict(src)
    nb.cells.append(nb.cells.pop(3))  # test_add after mul and test_mul
    assert restore_test_order(nb, tmp_path / "src.ipynb") == ["test_add"]
    assert _ids(nb) == ["# order", "helpers", "add", "test_add", "mul", "test_mul"]


def test_restore_test_order_leaves_a_correct_order_alone(tmp_path):
    src = order_source(tmp_path / "src.ipynb")
    nb = nbformat.from_dict(src)
    before = _ids(nb)
    assert restore_test_order(nb, tmp_path / "src.ipynb") == []
    assert _ids(nb) == before


def test_restore_test_order_keeps_student_cells_before_the_test(tmp_path):
    src = order_source(tmp_path / "src.ipynb")
    nb = nbformat.from_dict(src)
    nb.cells.insert(3, new_code_cell("STUDENT = 1"))  # a cell the student added after their answer
    assert restore_test_order(nb, tmp_path / "src.ipynb") == []
    assert _ids(nb) == ["# order", "helpers", "add", "STUDENT = 1", "test_add", "mul", "test_mul"]

    nb.cells.insert(2, nb.cells.pop(4))  # and test_add moved above add: back after the student's cell
    assert restore_test_order(nb, tmp_path / "src.ipynb") == ["test_add"]
    assert _ids(nb) == ["# order", "helpers", "add", "STUDENT = 1", "test_add", "mul", "test_mul"]


def test_restore_test_order_without_a_source_changes_nothing(tmp_path):
    src = order_source(tmp_path / "src.ipynb")
    nb = nbformat.from_dict(src)
    nb.cells.insert(1, nb.cells.pop(3))
    before = _ids(nb)
    assert restore_test_order(nb, tmp_path / "missing.ipynb") == []
    assert _ids(nb) == before


def test_forbidden_skips_a_package_that_is_not_installed_but_not_a_typo_in_an_installed_one():
    # The instructor-only course_solutions is absent in a student's environment and in the grading
    # sandbox: nothing there can call it, so the test cell must still run.
    with forbidden(["no_such_course_package.layers", "torch.nn.LayerNorm"], "test_x"):
        with pytest.raises(ForbiddenFunction):
            torch.nn.LayerNorm(3)
    with pytest.raises(AttributeError, match="NoSuchLayer"):  # a typo still fails loudly
        with forbidden(["torch.nn.NoSuchLayer"], "test_x"):
            pass


def test_computed_getattr_on_torch_is_tampering_only_where_a_torch_function_is_forbidden():
    """`getattr(nn, cell.upper())` hides nothing from a test that forbids no torch function (an honest
    way to pick nn.LSTM or nn.GRU); where the test forbids one, the same code could hide it."""
    from course_lib.grading.scan import dynamic_roots_for, find_tampering

    code = "from torch import nn\ndef make(cell):\n    return getattr(nn, cell.upper())(4, 4)\n"
    assert find_tampering(code, dynamic=True, dynamic_roots=dynamic_roots_for(["course_solutions.layers"])) is None
    assert find_tampering(code, dynamic=True, dynamic_roots=dynamic_roots_for(["torch.nn.GRUCell"])) is not None
    assert find_tampering(code, dynamic=True) is not None  # the default guards torch
    # modules and the grader stay guarded whatever the test forbids
    for sneaky in ("import sys\nm = getattr(sys, 'mod' + 'ules')\n",
                   "import course_lib\ng = getattr(course_lib, 'gra' + 'ding')\n",
                   "import torch\noff = getattr(torch._C, 'x')\n"):
        assert find_tampering(sneaky, dynamic=True, dynamic_roots=dynamic_roots_for(["course_solutions.layers"]))
