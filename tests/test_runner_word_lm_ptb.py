"""Tests of the word_lm_ptb runner (course_lib.runners.word_lm_ptb) at the fast scale, on the CPU.

Runs use the reference functions of course_solutions wrapped in counting adapters (made by one
factory, so every adapter has the same code and the same code fingerprint): they show whether a run
trained, read a finished run back, or resumed. The evaluation is compared with an independent
stream computation; the conclusions, table and record with synthetic histories.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pandas as pd
import pytest
import torch

from course_lib.runners import word_lm_ptb as wl
from course_lib.runners.word_lm_ptb import FAST, LAPTOP, RUNS, Config, RunResult, config_for
from course_solutions import layers

HISTORY = ["epoch", "lr", "train_loss", "train_ppl", "dev_loss", "dev_ppl", "train_tokens", "train_seconds",
           "dev_seconds", "seconds", "tokens_per_s", "finished_at"]
BATCHES_PER_EPOCH = math.ceil((FAST["train_words"] // 20 - 1) / 20)


class Interrupted(Exception):
    """Raised by a counting train_step to stop a run midway (like a Ctrl-C or a lost session)."""


def counting_step(fail_after: int | None = None):
    """The reference train_step, counting its calls (``step.calls``) and raising Interrupted on call
    ``fail_after + 1``. Every step this factory makes has the same code fingerprint."""
    calls = [0]

    def step(model, optimizer, inputs, targets, hidden, max_norm):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise Interrupted(f"stopped at call {calls[0]}")
        return layers.train_step(model, optimizer, inputs, targets, hidden, max_norm)

    step.count = lambda: calls[0]
    return step


def other_step(model, optimizer, inputs, targets, hidden, max_norm):
    """A train_step with other code (the same computation)."""
    loss, hidden = layers.train_step(model, optimizer, inputs, targets, hidden, max_norm)
    return loss, hidden


def fast_run(name, log_dir, step, **kwargs):
    return wl.run(name, scale="fast", log_dir=log_dir, progress=False, log=None, train_step=step, **kwargs)


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_SCALE", raising=False)


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """One fast LSTM run, and the counting step that trained it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DEVICE", "cpu")
        log_dir = tmp_path_factory.mktemp("wl") / "lstm"
        step = counting_step()
        result = fast_run("LSTM", log_dir, step)
    return result, step, log_dir


# --------------------------------------------------------------------------------------------------
# settings


def test_config_for_every_scale():
    for name, base in RUNS.items():
        full = config_for(name, "full")
        assert full == Config(**{**base.__dict__, "scale": "full"})
        # the handout's (Zaremba et al.'s small) setup
        assert (full.num_layers, full.embedding_size, full.hidden_size) == (2, 200, 200)
        assert (full.batch_size, full.bptt, full.init_range, full.lr, full.max_norm) == (20, 20, 0.1, 1.0, 5.0)
        assert (full.train_words, full.dev_words, full.test_words) == (None, None, None)
        laptop = config_for(name, "laptop")
        assert (laptop.num_layers, laptop.embedding_size, laptop.hidden_size) == (2, 200, 200)
        assert (laptop.batch_size, laptop.bptt, laptop.init_range, laptop.max_norm) == (20, 20, 0.1, 5.0)
        assert laptop.rnn_type == full.rnn_type and (laptop.dropout > 0) == (full.dropout > 0)
        expected = {**LAPTOP, **(wl.LAPTOP_DROPOUT if full.dropout > 0 else {})}
        assert all(getattr(laptop, k) == v for k, v in expected.items())
        assert laptop.lr == wl.LAPTOP_LR[laptop.rnn_type]
        if full.dropout > 0:  # regularised runs train longer, as at the full scale
            assert laptop.epochs > LAPTOP["epochs"] and laptop.decay_from > LAPTOP["decay_from"]
        # nothing else changes
        changed = {*expected, "lr", "dropout", "scale"}
        assert dataclasses.replace(laptop, **{k: getattr(full, k) for k in changed}) == full
        assert laptop.train_words == LAPTOP["train_words"] < 929_589 and laptop.dev_words is None
        assert laptop.epochs == expected["epochs"] and laptop.scale == "laptop" and laptop.label == f"{name} [laptop]"
        fast = config_for(name, "fast")
        assert fast.train_words == FAST["train_words"] and fast.epochs == FAST["epochs"] == 2
        assert fast.hidden_size == FAST["hidden_size"] < 200 and fast.rnn_type == full.rnn_type
        assert config_for(full, "laptop") == laptop  # a Config is resolved too
    assert (RUNS["LSTM"].dropout, RUNS["LSTM"].epochs, RUNS["LSTM"].lr_decay, RUNS["LSTM"].decay_from) == (0, 13, 0.5, 5)
    assert RUNS["GRU"].rnn_type == "gru" and RUNS["GRU + dropout"].rnn_type == "gru"
    drop = RUNS["LSTM + dropout"]
    assert (drop.dropout, drop.epochs, drop.decay_from) == (0.25, 39, 7) and drop.lr_decay == pytest.approx(1 / 1.2)
    medium = config_for("LSTM medium", "full")
    assert (medium.hidden_size, medium.embedding_size, medium.dropout) == (650, 650, 0.5)


def test_config_for_default_scale_and_errors(monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "laptop")
    assert config_for("GRU").scale == "laptop"
    monkeypatch.setenv("COURSE_SCALE", "fast")
    assert config_for("GRU").scale == "fast"
    with pytest.raises(ValueError, match="Unknown run 'BiLSTM'"):
        config_for("BiLSTM", "full")
    with pytest.raises(ValueError, match="Unknown scale"):
        config_for("LSTM", "huge")


def test_learning_rate_schedules():
    plain, drop = RUNS["LSTM"], RUNS["GRU + dropout"]
    assert [plain.lr_at(e) for e in range(1, 8)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
    assert [drop.lr_at(e) for e in range(1, 7)] == [1] * 6
    assert [drop.lr_at(e) for e in (7, 8, 39)] == pytest.approx([1 / 1.2, 1 / 1.44, 1.2 ** -33])


# --------------------------------------------------------------------------------------------------
# a run, read back, resumed


def test_fast_run_history(lstm_run):
    result, step, log_dir = lstm_run
    h = result.history
    assert set(HISTORY) <= set(h.columns), f"missing columns {set(HISTORY) - set(h.columns)}"
    assert h["epoch"].tolist() == [1, 2]
    config = config_for("LSTM", "fast")
    assert result.config == config
    assert h["lr"].tolist() == [config.lr_at(1), config.lr_at(2)] == [1.0, 0.5]
    for split in ("train", "dev"):
        assert h[f"{split}_ppl"].tolist() == pytest.approx([math.exp(v) for v in h[f"{split}_loss"]])
    assert (h["train_tokens"] == 20 * (FAST["train_words"] // 20 - 1)).all()
    assert step.count() == 2 * BATCHES_PER_EPOCH
    assert h["dev_ppl"].iloc[-1] < h["dev_ppl"].iloc[0] < 10_000  # it learns something
    assert math.isfinite(result.test_ppl) and result.best_epoch == int(h.loc[h["dev_ppl"].idxmin(), "epoch"])
    model = layers.WordLM("lstm", 10_000, FAST["embedding_size"], FAST["hidden_size"], 2, 0.0, 0.1)
    assert result.num_parameters == sum(p.numel() for p in model.parameters())
    assert result.tokens_per_s > 0 and result.seconds > 0
    for name in ("meta.json", "epochs.jsonl", "checkpoint.pt", "best.pt"):
        assert (log_dir / name).is_file(), name
    meta = json.loads((log_dir / "meta.json").read_text())
    assert meta["vocabulary_size"] == 10_000 and meta["train_words"] == FAST["train_words"] // 20 * 20


def test_finished_run_is_read_back_without_training(lstm_run):
    result, _, log_dir = lstm_run
    step = counting_step()
    again = fast_run("LSTM", log_dir, step)
    assert step.count() == 0, "a finished run was trained again"
    pd.testing.assert_frame_equal(again.history[["epoch", "train_ppl", "dev_ppl"]],
                                  result.history[["epoch", "train_ppl", "dev_ppl"]])
    assert again.test_ppl == pytest.approx(result.test_ppl, rel=1e-12)


def test_interrupted_run_resumes_to_the_same_history(tmp_path):
    """GRU + dropout: dropout draws random numbers, so the RNG state must be resumed too."""
    whole = fast_run("GRU + dropout", tmp_path / "whole", counting_step())
    k = 5
    with pytest.raises(Interrupted):
        fast_run("GRU + dropout", tmp_path / "cut", counting_step(fail_after=BATCHES_PER_EPOCH + k))
    assert len((tmp_path / "cut" / "epochs.jsonl").read_text().splitlines()) == 1
    step = counting_step()
    resumed = fast_run("GRU + dropout", tmp_path / "cut", step)
    assert step.count() == BATCHES_PER_EPOCH, "only epoch 2 is trained again"
    cols = ["epoch", "lr", "train_loss", "train_ppl", "dev_loss", "dev_ppl", "train_tokens"]
    pd.testing.assert_frame_equal(resumed.history[cols], whole.history[cols], rtol=1e-9, atol=0)
    assert resumed.test_ppl == pytest.approx(whole.test_ppl, rel=1e-9)


def test_changed_code_moves_the_log_aside(tmp_path):
    """Only the start of each run is needed: the log is opened (and moved aside) before training."""
    log_dir = tmp_path / "gru"

    def attempt(step, **kwargs):
        with pytest.raises(Interrupted):
            fast_run("GRU", log_dir, step, **kwargs)
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("gru.replaced-"))

    assert attempt(counting_step(fail_after=1)) == []
    assert (log_dir / "meta.json").is_file()
    assert attempt(counting_step(fail_after=0)) == [], "the same code must not move the log aside"

    def failing_other_step(model, optimizer, inputs, targets, hidden, max_norm):
        raise Interrupted("other code")

    assert len(attempt(failing_other_step)) == 1, "a train_step with other code must move the log aside"

    class OtherWordLM(layers.WordLM):
        def init_hidden(self, batch_size):
            return super().init_hidden(batch_size)

    assert len(attempt(failing_other_step, model_class=OtherWordLM)) == 2, "other model code: moved aside"
    assert len(attempt(failing_other_step, model_class=OtherWordLM)) == 2


def test_bad_batchify_or_vocabulary_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="batchify"):
        fast_run("LSTM", tmp_path / "a", counting_step(), batchify=lambda ids, b: layers.batchify(ids, b).T)
    with pytest.raises(ValueError, match="batchify"):
        fast_run("LSTM", tmp_path / "b", counting_step(), batchify=lambda ids, b: ids)
    with pytest.raises(ValueError, match="build_vocab"):
        fast_run("LSTM", tmp_path / "c", counting_step(), build_vocab=lambda words: layers.build_vocab(words[:1000]))


# --------------------------------------------------------------------------------------------------
# evaluation


def stream_nll(model, data, bptt):
    """Independent: one pass over the (B, L) stream, hidden carried, sum of NLL / number of targets."""
    model.eval()
    B, L = data.shape
    hidden, total, count = None, 0.0, 0
    with torch.no_grad():
        for i in range(0, L - 1, bptt):
            x, y = data[:, i : min(i + bptt, L - 1)], data[:, i + 1 : min(i + bptt, L - 1) + 1]
            logits, hidden = model(x, hidden)
            logp = torch.log_softmax(logits.double(), dim=-1)
            total -= logp.gather(-1, y.unsqueeze(-1)).sum().item()
            count += y.numel()
    return total / count


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_evaluate_equals_an_independent_stream_computation(rnn_type):
    torch.manual_seed(0)
    B, L, bptt, V = 3, 23, 5, 17  # batches of 5, 5, 5, 5 and 2 steps
    model = layers.WordLM(rnn_type, V, 8, 8, 2, 0.4, 0.5)
    data = torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(1))
    model.train()
    got = wl.evaluate(model, data, layers.get_batch, bptt, B)
    assert model.training, "evaluate must restore the training mode"
    expected = stream_nll(model, data, bptt)
    assert got == pytest.approx(expected, rel=1e-6)
    # what it is not: the hidden state reset at each batch, or the mean of the per-batch means
    model.eval()
    means, sizes = [], []
    with torch.no_grad():
        for i in range(0, L - 1, bptt):
            x, y = layers.get_batch(data, i, bptt)
            means.append(torch.nn.functional.cross_entropy(model(x)[0].reshape(-1, V), y.reshape(-1)).item())
            sizes.append(y.numel())
    reset = sum(m * n for m, n in zip(means, sizes, strict=True)) / sum(sizes)
    assert abs(got - reset) > 1e-4
    assert abs(got - sum(means) / len(means)) > 1e-4


# --------------------------------------------------------------------------------------------------
# conclusions, table, record


def synthetic(train, dev, name="LSTM", test=None):
    """A RunResult with the given per-epoch perplexities."""
    n = len(dev)
    history = pd.DataFrame({
        "epoch": list(range(1, n + 1)), "lr": [1.0] * n, "train_ppl": train, "dev_ppl": dev,
        "train_loss": [math.log(v) for v in train], "dev_loss": [math.log(v) for v in dev],
        "train_tokens": [1000] * n, "train_seconds": [2.0] * n, "seconds": [3.0] * n})
    return RunResult(config=config_for(name, "fast"), history=history,
                     test_ppl=test if test is not None else min(dev) * 1.01, num_parameters=123)


# ratios dev / train: 0.9, 1.0, 1.6, 2.125: the gap grows and ends above 1.5; best 150 at epoch 2 (ratio 1.0)
PLAIN = ([200, 150, 100, 80], [180, 150, 160, 170])
DROPOUT = ([250, 200, 170], [160, 140, 135])  # best 135 at epoch 3, ratio 135 / 170 = 0.79


def four(plain=PLAIN, dropout=DROPOUT, gru_factor=1.05, gru_plain=None):
    scaled = lambda h, f: ([v * f for v in h[0]], [v * f for v in h[1]])  # noqa: E731
    return {"LSTM": synthetic(*plain, "LSTM"), "LSTM + dropout": synthetic(*dropout, "LSTM + dropout"),
            "GRU": synthetic(*(gru_plain or scaled(plain, gru_factor)), "GRU"),
            "GRU + dropout": synthetic(*scaled(dropout, gru_factor), "GRU + dropout")}


CHECKS = [f"{c}: {what}" for c in ("LSTM", "GRU") for what in
          ("the gap grows without dropout", "dropout narrows the gap", "dropout improves validation")]


def checks_of(results):
    checks = wl.conclusions(results)["checks"]
    assert set(checks) == set(CHECKS)
    return {k for k, v in checks.items() if not v}  # the failed ones


def test_conclusions_true_case():
    out = wl.conclusions(four())
    assert not {k for k, v in out["checks"].items() if not v}
    assert out["LSTM"]["best_dev_ppl"] == 150 and out["LSTM"]["best_epoch"] == 2
    assert out["LSTM"]["ratio_at_best"] == 1.0 and out["LSTM"]["ratio_at_end"] == pytest.approx(170 / 80)
    assert out["LSTM"]["ratio_at_third"] == 1.0  # epoch ceil(4 / 3) = 2
    assert out["LSTM + dropout"]["ratio_at_best"] == pytest.approx(135 / 170)
    assert out["comparisons"]["GRU / LSTM"] == pytest.approx(1.05)
    # recorded dicts (a history list) work as RunResults do
    as_dicts = {k: {"history": r.history.to_dict("records")} for k, r in four().items()}
    assert wl.conclusions(as_dicts) == out


def test_conclusions_false_cases():
    gap_stays_small = ([200, 150, 120, 110], [180, 150, 140, 139])  # ratio 1.26 at the end: below 1.5
    assert checks_of(four(plain=gap_stays_small)) >= {"LSTM: the gap grows without dropout",
                                                      "GRU: the gap grows without dropout"}
    gap_shrinks = ([100, 60, 120, 110], [180, 150, 170, 170])  # 1.8, 2.5, 1.4, 1.55: below the ratio at a third
    assert "LSTM: the gap grows without dropout" in checks_of(four(plain=gap_shrinks))
    wide_gap = ([250, 200, 100], [160, 140, 135])  # ratio 1.35 at the best epoch > 1.0, still better validation
    assert checks_of(four(dropout=wide_gap)) == {"LSTM: dropout narrows the gap", "GRU: dropout narrows the gap"}
    worse = ([250, 200, 170], [180, 165, 160])  # best 160 > 150, ratio 0.94 < 1.0
    assert checks_of(four(dropout=worse)) == {"LSTM: dropout improves validation", "GRU: dropout improves validation"}


def bold_cells(html: str) -> set[tuple[int, int]]:
    cells = set()
    for selectors in re.findall(r"([^{}]+)\{\s*font-weight: bold;\s*\}", html):
        cells |= {(int(r), int(c)) for r, c in re.findall(r"_row(\d+)_col(\d+)", selectors)}
    return cells


def test_results_table_bolds_the_minimum():
    results = {"LSTM": synthetic([90, 80], [120, 110], test=105), "GRU": synthetic([85, 82], [125, 112], test=104),
               "LSTM + dropout": synthetic([130, 100], [115, 100], test=99)}
    styler = wl.results_table(results)
    frame = styler.data
    assert frame.index.tolist() == list(results)
    assert frame["Training perplexity"].tolist() == [80, 82, 100]
    assert frame["Validation perplexity"].tolist() == [110, 112, 100]
    assert frame["Test perplexity"].tolist() == [105, 104, 99]
    assert frame["Gap (validation - training)"].tolist() == [30, 30, 0]
    columns = list(frame.columns)
    expected = {(0, columns.index("Training perplexity")), (2, columns.index("Validation perplexity")),
                (2, columns.index("Test perplexity"))}
    assert bold_cells(styler.to_html()) == expected


def test_record_writes_json_with_conclusions(tmp_path):
    results = four()
    payload = wl.record(results, tmp_path / "rec.json")
    written = json.loads((tmp_path / "rec.json").read_text())
    assert written == json.loads(json.dumps(payload))
    assert written["assignment"] == "word_lm_ptb" and written["scale"] == "fast"
    assert set(written["runs"]) == set(RUNS)
    lstm = written["runs"]["LSTM"]
    assert lstm["best_epoch"] == 2 and lstm["best_dev_ppl"] == 150 and lstm["train_ppl"] == 150
    assert [row["dev_ppl"] for row in lstm["history"]] == PLAIN[1]
    assert written["conclusions"]["checks"] == {k: True for k in CHECKS}
    one = wl.record({"LSTM": results["LSTM"]}, tmp_path / "one.json")
    assert "conclusions" not in one  # only for the four runs together


def test_plot_curves_one_panel_per_run():
    fig = wl.plot_curves(four())
    assert [ax.get_title() for ax in fig.axes] == list(four())
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# command line


def test_cli_list(capsys):
    assert wl.main(["--list", "--scale", "laptop"]) == {}
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Config(")]
    assert len(lines) == 5 and all("scale='laptop'" in line for line in lines)
    for name in [*RUNS, "LSTM medium"]:
        assert f"name='{name}'" in out


def test_cli_runs_one_model(tmp_path, capsys):
    results = wl.main(["--run", "GRU", "--fast", "--log-dir", str(tmp_path), "--no-progress"])
    assert list(results) == ["GRU"]
    result = results["GRU"]
    assert result.config == config_for("GRU", "fast") and result.history["epoch"].tolist() == [1, 2]
    assert len((tmp_path / "fast" / "gru" / "epochs.jsonl").read_text().splitlines()) == 2
    out = capsys.readouterr().out
    assert "GRU [fast] epoch  2/2" in out and "best validation perplexity" in out
    with pytest.raises(ValueError, match="Unknown run"):
        wl.main(["--run", "RNN", "--fast", "--log-dir", str(tmp_path), "--no-progress"])


# --------------------------------------------------------------------------------------------------
# the throughput benchmark (benchmarks/word_lm_ptb_throughput.py) runs the runner's own loop


def test_throughput_benchmark_runs_the_three_loops(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "word_lm_ptb_throughput.py"
    spec = importlib.util.spec_from_file_location("word_lm_ptb_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--steps", "1", "--repeats", "1", "--data", "random", "--rnn", "gru"]) == 0
    out = capsys.readouterr().out
    for loop in ("bare loop", "bare loop + train_step", "runner"):
        assert loop in out
    assert bench.main(["--steps", "0"]) == 2
