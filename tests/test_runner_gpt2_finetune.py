"""Tests of the GPT-2 fine-tuning runner (course_lib.runners.gpt2_finetune) at the fast scale, on the CPU, offline.

One fast run (the toy GPT-2 built into a temporary cache, the reference functions, evaluate_perplexity
wrapped to count its calls) is checked end to end: the three methods, their trainable parameters
counted from the layer shapes, the per-epoch log, the final perplexity against an independent
evaluation of the saved model, read back without training, and run again when a function changes.
The conclusions, table and record are checked on synthetic numbers.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import hf_models as hf
from course_lib.runners import gpt2_finetune as gf
from course_lib.runners.gpt2_finetune import FAST, LAPTOP, METHODS, config_for
from course_solutions import gpt2 as ref


def counting(fn):
    calls = [0]

    def evaluate_perplexity(model, dataloader):
        calls[0] += 1
        return fn(model, dataloader)

    evaluate_perplexity.calls = calls
    return evaluate_perplexity


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("COURSE_DEVICE", "cpu")
        mp.setenv("COURSE_DATA_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("COURSE_SCALE", raising=False)
        yield tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def fast(env):
    evaluate = counting(ref.evaluate_perplexity)
    results = gf.run("fast", evaluate_perplexity=evaluate, log_dir=env, progress=False, log=None)
    return results, evaluate


def test_settings_of_each_scale():
    full, laptop, fast = config_for("full"), config_for("laptop"), config_for("fast")
    assert (full.model, full.train_fraction, full.epochs, full.batch_size, full.lr, full.warmup_steps) == (
        "gpt2", 0.1, 3, 8, 5e-5, 500)
    assert (full.lora_r, full.lora_alpha, full.lora_dropout) == (64, 16, 0.1)
    for config, changes in ((laptop, LAPTOP), (fast, FAST)):
        for key, value in changes.items():
            assert getattr(config, key) == value, key
    assert laptop.model == "local:laptop" and laptop.data == "course" and fast.model == "local:fast"
    with pytest.raises(ValueError):
        config_for("huge")


def test_fast_run_end_to_end(fast, env):
    results, evaluate = fast
    assert list(results) == list(METHODS) and results.model_name == "local"
    config = results.config
    build = results.model_build
    assert build["key"] == hf.LOCAL_SCALES["fast"].key()
    s = build["settings"]
    assert results.rows["train_rows"] == config.train_rows and results.rows["valid_rows"] == config.valid_rows
    assert results.rows["row_length"] == s["n_positions"]
    total = build["num_parameters"]
    before, full, lora = (results[m] for m in METHODS)
    assert before.trainable == 0 and full.trainable == total
    assert lora.trainable == s["n_layer"] * config.lora_r * (s["n_embd"] + 3 * s["n_embd"])
    for r in (before, full, lora):
        assert r.parameters == total and math.isfinite(r.ppl) and r.sample.startswith(config.prompt[:10])
        assert r.handout_ppl < r.ppl  # the handout divides by one token per row too many
    for r in (full, lora):
        assert [h["epoch"] for h in r.history] == list(range(1, config.epochs + 1))
        assert all(h["valid_ppl"] > 1 and h["train_loss"] > 0 for h in r.history)
        assert r.history[-1]["valid_ppl"] == pytest.approx(r.ppl, rel=1e-6)  # the last epoch is the final model
        assert r.train_seconds > 0 and r.train_cpu_seconds > 0
        logged = [json.loads(line) for line in (r.log_dir / "epochs.jsonl").read_text().splitlines()]
        assert [row["valid_ppl"] for row in logged] == [h["valid_ppl"] for h in r.history]
    assert full.ppl < before.ppl  # even a few steps of full fine-tuning help the toy model
    # the notebook's function evaluated: once before, and per epoch plus once at the end for each fine-tuning
    assert evaluate.calls[0] == 1 + 2 * (config.epochs + 1)


def test_final_perplexity_matches_an_independent_evaluation(fast):
    results, _ = fast
    lora = results["lora"]
    model, tokenizer = hf.load_model_and_tokenizer(results["full"].log_dir / "model")
    texts = [t for t in hf.load_wikitext_texts("validation", source="course") if t.strip()][: results.config.valid_rows]
    valid = ref.tokenize_dataset(texts, tokenizer)
    loader = DataLoader(valid, batch_size=3, collate_fn=ref.make_collator(tokenizer))  # another batching
    assert ref.evaluate_perplexity(model, loader) == pytest.approx(results["full"].ppl, rel=1e-5)
    assert ref.evaluate_perplexity(lora.model, loader) == pytest.approx(lora.ppl, rel=1e-5)
    assert ref.count_trainable(lora.model) == lora.trainable


def test_a_finished_run_is_read_back(fast, env, monkeypatch):
    results, _ = fast

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(gf, "_finetune", no_training)
    again = gf.run("fast", evaluate_perplexity=counting(ref.evaluate_perplexity), log_dir=env, progress=False, log=None)
    for m in METHODS:
        assert again[m].ppl == results[m].ppl and again[m].history == results[m].history
    assert torch.equal(next(again["full"].model.parameters()), next(results["full"].model.parameters()))
    # other code for a passed function: the runs are redone (here: the training is called)
    def other_evaluate(model, dataloader):
        return ref.evaluate_perplexity(model, dataloader)

    with pytest.raises(AssertionError, match="trained again"):
        gf.run("fast", evaluate_perplexity=other_evaluate, log_dir=env, progress=False, log=None)


def synthetic(before=40.0, full=27.0, lora=30.0, lora_trainable=2_359_296, full_seconds=870, lora_seconds=525):
    def method(name, ppl, trainable, seconds):
        return {"method": name, "ppl": ppl, "handout_ppl": ppl * 0.97, "trainable": trainable,
                "parameters": 124_439_808, "train_seconds": seconds, "history": [], "sample": ""}

    return {"before": method("before", before, 0, 0), "full": method("full", full, 124_439_808, full_seconds),
            "lora": method("lora", lora, lora_trainable, lora_seconds)}


def test_conclusions():
    checks = gf.conclusions(synthetic())["checks"]
    assert all(checks.values()) and set(checks) == {
        "finetuning_lowers_perplexity", "full_beats_lora", "lora_trains_few_parameters", "lora_is_faster",
        "handout_count_is_too_low"}
    assert not gf.conclusions(synthetic(lora=26.0))["checks"]["full_beats_lora"]
    assert not gf.conclusions(synthetic(lora=41.0))["checks"]["finetuning_lowers_perplexity"]
    assert not gf.conclusions(synthetic(lora_trainable=20_000_000))["checks"]["lora_trains_few_parameters"]
    assert not gf.conclusions(synthetic(lora_trainable=0))["checks"]["lora_trains_few_parameters"]
    assert not gf.conclusions(synthetic(lora_seconds=900))["checks"]["lora_is_faster"]
    timed = synthetic(lora_seconds=900)  # the wall clock says slower, the CPU time (where given) faster
    timed["full"]["train_cpu_seconds"], timed["lora"]["train_cpu_seconds"] = 800, 500
    assert gf.conclusions(timed)["checks"]["lora_is_faster"]
    timed["lora"]["train_cpu_seconds"] = 850
    assert not gf.conclusions(timed)["checks"]["lora_is_faster"]
    bad = synthetic()
    bad["full"]["handout_ppl"] = 28.0
    assert not gf.conclusions(bad)["checks"]["handout_count_is_too_low"]


def test_table_and_record(fast, tmp_path):
    results, _ = fast
    table = gf.results_table(results)
    assert list(table.index) == [gf.LABELS[m] for m in METHODS]
    assert table.loc["Full fine-tuning", "Share of parameters (%)"] == pytest.approx(100)
    assert table.loc["LoRA fine-tuning", "Validation perplexity"] == results["lora"].ppl
    payload = gf.record(results, tmp_path / "rec.json", total_seconds=12.0)
    saved = json.loads((tmp_path / "rec.json").read_text())
    assert saved["scale"] == "fast" and saved["total_minutes"] == pytest.approx(0.2)
    assert saved["conclusions"] == json.loads(json.dumps(payload["conclusions"]))
    assert saved["methods"]["lora"]["trainable"] == results["lora"].trainable
    assert saved["model_build"]["key"] == hf.LOCAL_SCALES["fast"].key()
    with pytest.raises(ValueError):
        gf.record({"before": results["before"]}, tmp_path / "x.json")


def test_command_line(fast, env, tmp_path, capsys):
    gf.main(["--list", "--scale", "laptop"])
    assert "local:laptop" in capsys.readouterr().out
    results = gf.main(["--scale", "fast", "--log-dir", str(env), "--no-progress", "--record", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "LoRA fine-tuning" in out and "full_beats_lora" in out
    assert json.loads((tmp_path / "r.json").read_text())["methods"]["full"]["ppl"] == results["full"].ppl
