"""course_lib.runlog: a run's folder survives interruption, resumes exactly, and refuses other settings."""

from __future__ import annotations

import json
import random

import torch
from torch import nn

from course_lib.runlog import RunLog, model_fingerprint, read_jsonl, rng_state, set_rng_state


def _make(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def _train(log: RunLog, epochs: int, stop_after: int | None = None) -> list[dict]:
    model, opt = _make()
    start, history = log.resume(model, opt, epochs)
    log.write_meta({"fingerprint": {"k": 1}})
    for epoch in range(start + 1, epochs + 1):
        x = torch.randn(8, 3)  # the global RNG: restored on resume
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"epoch": epoch, "loss": loss.item()})
        log.save_epoch(history, model, opt)
        if stop_after == epoch:
            break
    return history


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    straight = _train(RunLog(tmp_path / "a").open({"k": 1}), 4)
    _train(RunLog(tmp_path / "b").open({"k": 1}), 4, stop_after=2)
    torch.manual_seed(123)  # whatever happened in between
    log = RunLog(tmp_path / "b").open({"k": 1})
    assert not log.finished(4) and len(log.rows) == 2
    resumed = _train(log, 4)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    assert read_jsonl(tmp_path / "b" / "epochs.jsonl") == resumed
    assert RunLog(tmp_path / "b").open({"k": 1}).finished(4)


def test_other_settings_or_no_resume_move_the_folder_aside(tmp_path):
    said = []
    log = RunLog(tmp_path / "run", label="x", say=said.append).open({"k": 1})
    log.resume(*_make(), 2)
    log.write_meta({"fingerprint": {"k": 1}})
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["format"] == 1
    assert RunLog(tmp_path / "run").open({"k": 1}).meta is not None
    again = RunLog(tmp_path / "run", label="x", say=said.append).open({"k": 2})
    assert again.meta is None and again.rows == []
    assert [p.name.startswith("run.replaced-") for p in tmp_path.iterdir()] == [True]
    assert "other settings" in said[-1]


def test_model_fingerprint_and_rng_state():
    assert model_fingerprint(nn.Linear(2, 2)) == model_fingerprint(nn.Linear(2, 2))
    assert model_fingerprint(nn.Linear(2, 2)) != model_fingerprint(nn.Linear(2, 3))
    state = rng_state()
    a = (random.random(), torch.rand(2))
    set_rng_state(state)
    b = (random.random(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_code_fingerprint_follows_the_code_not_the_identity():
    from course_lib.runlog import code_fingerprint

    def make(scale):
        def step(x):
            return x * scale
        return step

    def step(x):
        return x * 2

    namespace_a, namespace_b = {}, {}
    source = "def step(x):\n    return x + 1\n"
    exec(compile(source, "<cell 1>", "exec"), namespace_a)  # a notebook cell, run twice
    exec(compile("\n\n" + source, "<cell 7>", "exec"), namespace_b)  # elsewhere, other line numbers
    assert code_fingerprint(namespace_a["step"]) == code_fingerprint(namespace_b["step"])
    namespace_c = {}
    exec(compile(source.replace("x + 1", "x + 2"), "<cell 1>", "exec"), namespace_c)  # a changed constant
    assert code_fingerprint(namespace_c["step"]) != code_fingerprint(namespace_a["step"])
    namespace_d = {}
    exec(compile(source.replace("x + 1", "x - 1"), "<cell 1>", "exec"), namespace_d)  # a changed operation
    assert code_fingerprint(namespace_d["step"]) != code_fingerprint(namespace_a["step"])
    assert code_fingerprint(make(1)) == code_fingerprint(make(2))  # closures: the code, not the captured values
    assert code_fingerprint(step) != code_fingerprint(make(2))  # another qualified name
    f, g = namespace_a["step"], namespace_c["step"]
    assert code_fingerprint(f, g) != code_fingerprint(g, f)  # order matters: each is one argument's function
    assert code_fingerprint(f, g) == code_fingerprint(f, g) and len(code_fingerprint(f)) == 16


def test_code_fingerprint_of_methods_builtins_and_nested_code():
    from course_lib.runlog import code_fingerprint

    class A:
        def run(self, x):
            return [i for i in range(x)]  # a nested code object (the comprehension)

    class B:
        def run(self, x):
            return [i * 2 for i in range(x)]

    assert code_fingerprint(A().run) == code_fingerprint(A.run)  # a bound method: its function
    assert code_fingerprint(A.run) != code_fingerprint(B.run)
    assert code_fingerprint(len) == code_fingerprint(len) != code_fingerprint(abs)  # no __code__: the name


def test_code_fingerprint_follows_the_helpers_a_function_calls():
    """A log must not be read back after a student fixes a helper that train_step calls: the fingerprint
    covers the functions and classes of the same module that the passed functions use, transitively."""
    from course_lib.runlog import code_fingerprint

    def make(helper_body):
        scope: dict = {"__name__": "__main__"}
        exec("def clip(x):\n    return " + helper_body + "\n"
             "def outer(x):\n    return inner(x)\n"
             "def inner(x):\n    return clip(x) + 1\n"
             "def step(x):\n    return outer(x) * 2\n", scope)
        return scope["step"]

    assert code_fingerprint(make("x")) == code_fingerprint(make("x"))
    assert code_fingerprint(make("x")) != code_fingerprint(make("min(x, 5)"))  # two calls away from step
    # recursion and builtins do not trip it
    scope: dict = {"__name__": "__main__"}
    exec("def f(n):\n    return 1 if n < 1 else n * f(n - 1) + len([n])\n", scope)
    assert len(code_fingerprint(scope["f"])) == 16
