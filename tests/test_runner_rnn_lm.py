"""End-to-end tests of the hw3 runner (fast mode, CPU) and of the example SLURM script."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from course_lib.runners import rnn_lm
from course_lib.runners.rnn_lm import Config, RunResult, build_parser, main, run
from course_lib.train import HISTORY_COLUMNS
from course_solutions import layers

REPO = Path(__file__).resolve().parent.parent
SLURM = REPO / "notebooks" / "rnn_lm" / "slurm_run.sh"
SHAKESPEARE_LIKE = "\n".join(
    ["First Citizen:", "Before we proceed any further, hear me speak.", "", "All:", "Speak, speak."] * 40
)


@pytest.fixture(autouse=True)
def _cpu_and_no_fast_env(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("COURSE_SCALE", raising=False)


@pytest.fixture()
def shakespeare():
    """Tiny Shakespeare must be reachable (set COURSE_DATA_MIRROR offline); skip if it cannot be downloaded."""
    from course_lib.data import DownloadError, fetch

    try:
        return fetch("tinyshakespeare")
    except DownloadError as err:  # no mirror, no cache and no network
        pytest.skip(f"Tiny Shakespeare is not available: {err}")


def test_config_defaults_follow_the_handout():
    c = Config()
    assert (c.model_type, c.hidden_size, c.embedding_size, c.batch_size) == ("rnn", 256, 64, 64)
    assert (c.learning_rate, c.epochs, c.temperature, c.l2, c.dropout) == (1e-3, 64, 1.0, 0.0, 0.0)
    assert (c.generate_every, c.window_size, c.seed, c.fast) == (4, 16, 1, False)


def test_parser_flags_map_onto_config():
    args = build_parser().parse_args(
        ["--model_type", "lstm", "--hidden_size", "32", "--embedding_size", "8", "--window_size", "5",
         "--batch_size", "16", "--learning_rate", "0.01", "--epochs", "3", "--temperature", "0.5",
         "--l2", "1e-5", "--dropout", "0.2", "--generate_every", "2", "--prefix", "ROMEO:",
         "--max_lines", "100", "--fast", "--record", "x.json"]
    )
    c = Config.from_args(args)
    assert c == Config(model_type="lstm", hidden_size=32, embedding_size=8, window_size=5, batch_size=16,
                       learning_rate=0.01, epochs=3, temperature=0.5, l2=1e-5, dropout=0.2,
                       generate_every=2, prefix="ROMEO:", max_lines=100, fast=True)
    assert args.record == "x.json"
    assert Config.from_args(build_parser().parse_args([])) == Config()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model_type", "gru"])


def test_fast_mode_from_flag_and_environment(monkeypatch):
    r = Config(fast=True, epochs=64).resolved()
    assert (r.epochs, r.max_lines, r.generate_every) == (rnn_lm.FAST_EPOCHS, rnn_lm.FAST_MAX_LINES, 1)
    assert r.scale == "fast" and Config(scale="fast").resolved() == r
    assert Config(scale="full").resolved() == Config(scale="full")  # full: the handout's settings, unchanged
    monkeypatch.setenv("COURSE_FAST", "1")
    assert Config().resolved().fast and Config().resolved().epochs == rnn_lm.FAST_EPOCHS
    assert Config().resolved().scale == "fast"


@pytest.fixture()
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_scale_resolution(monkeypatch, no_cuda):
    laptop = Config().resolved()  # no CUDA, no COURSE_FAST: the laptop scale
    L = rnn_lm.LAPTOP
    assert (laptop.scale, laptop.fast) == ("laptop", False)
    assert (laptop.epochs, laptop.max_lines, laptop.generate_every) == (L["epochs"], L["max_lines"], L["generate_every"])
    assert L["epochs"] < Config().epochs and L["max_lines"] > rnn_lm.FAST_MAX_LINES
    # the model and the optimisation are the handout's (or the student's) at every scale
    for config in (Config(), *rnn_lm.NOTEBOOK_RUNS.values()):
        for level in ("fast", "laptop", "full"):
            r = config.__class__(**{**config.__dict__, "scale": level}).resolved()
            assert (r.model_type, r.hidden_size, r.embedding_size, r.dropout, r.learning_rate, r.temperature,
                    r.batch_size) == (config.model_type, config.hidden_size, config.embedding_size, config.dropout,
                                      config.learning_rate, config.temperature, config.batch_size)
            assert r.scale == level and r.fast is (level == "fast")
    # a value set lower than the scale's is kept; the result is stable under resolving again
    small = Config(epochs=5, max_lines=100, generate_every=1).resolved()
    assert (small.epochs, small.max_lines, small.generate_every) == (5, 100, 1)
    assert laptop.resolved() == laptop and small.resolved() == small
    # COURSE_SCALE wins over the hardware and COURSE_FAST; an explicit Config(scale=...) wins over both
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Config().resolved() == Config(scale="full")
    monkeypatch.setenv("COURSE_SCALE", "laptop")
    monkeypatch.setenv("COURSE_FAST", "1")
    assert Config().resolved() == laptop
    assert Config(scale="full").resolved() == Config(scale="full")
    assert Config(fast=True).resolved().scale == "fast"
    with pytest.raises(ValueError, match="scale must be one of fast, laptop, full"):
        Config(scale="huge").resolved()
    monkeypatch.setenv("COURSE_SCALE", "huge")
    with pytest.raises(ValueError, match="COURSE_SCALE"):
        Config().resolved()
    assert build_parser().parse_args(["--scale", "laptop"]).scale == "laptop"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--scale", "huge"])


def test_laptop_run_is_labelled_with_its_scale(tmp_path, no_cuda):
    lines = []
    cfg = Config(hidden_size=8, embedding_size=4, epochs=2, batch_size=32, generate_len=20, save_dir=str(tmp_path))
    result = run(cfg, progress=False, log=lines.append, text=SHAKESPEARE_LIKE)
    assert result.config.scale == "laptop" and result.config.max_lines == rnn_lm.LAPTOP["max_lines"]
    assert "[laptop scale]" in lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["rnn_lm_laptop_rnn_seed1.pt"]  # never the full run's file
    data = result.to_json()
    assert data["scale"] == "laptop" and data["config"]["scale"] == "laptop"
    # throughput and memory: the train set's predicted characters (line + </s>) per epoch second
    lines_kept = [line for line in SHAKESPEARE_LIKE.split("\n") if line]
    n_train = len(lines_kept) - round(len(lines_kept) * 0.1)
    assert data["train_tokens"] == sum(len(line) + 1 for line in lines_kept[:n_train])
    assert data["tokens_per_second"] == pytest.approx(data["train_tokens"] / result.history["seconds"].mean())
    assert data["peak_memory_mib"] > 10 and data["memory_kind"] == "cpu_max_rss"


def _fake_run(dev_ppls, samples=()):
    return {"history": [{"epoch": i + 1, "dev_ppl": p} for i, p in enumerate(dev_ppls)],
            "samples": [{"epoch": e, "text": t} for e, t in samples]}


def test_conclusions_are_computed_from_the_histories():
    words = {"the", "king", "is", "dead", "long", "live"}
    good = {"Q1": _fake_run([20, 10, 8, 7.5, 7.4, 7.38], [(2, "xq zzv the"), (6, "the king is dead")]),
            "Q2": _fake_run([18, 9, 7, 6.5, 6.45, 6.44]), "Q3": _fake_run([19, 9.5, 7.2, 6.8, 6.7, 6.69])}
    result = {c["id"]: c["holds"] for c in rnn_lm.conclusions(good, words)}
    assert result == {"dev_ppl_falls": True, "dev_ppl_levels_off": True, "lstm_beats_rnn": True, "samples_improve": True}
    still_falling = {**good, "Q2": _fake_run([18, 14, 11, 9, 7.5, 6.0])}  # a quarter of the drop in the last third
    worse_lstm = {**good, "Q2": _fake_run([18, 9, 7.6, 7.5, 7.45, 7.44])}
    flat = {**good, "Q3": _fake_run([19, 18, 17.6, 17.5, 17.5, 17.5])}
    worse_text = {**good, "Q1": _fake_run([20, 10, 8, 7.5, 7.4, 7.38], [(2, "the king"), (6, "thx kng is")])}
    for runs, broken in ((still_falling, "dev_ppl_levels_off"), (worse_lstm, "lstm_beats_rnn"),
                         (flat, "dev_ppl_falls"), (worse_text, "samples_improve")):
        holds = {c["id"]: c["holds"] for c in rnn_lm.conclusions(runs, words)}
        assert [k for k, v in holds.items() if not v] == [broken]
    assert rnn_lm.known_word_share("The KING, is... qq", words) == pytest.approx(3 / 4)
    assert rnn_lm.known_word_share("!!", words) is None


def _check_result(result: RunResult, epochs: int):
    h = result.history
    assert list(h.columns) == HISTORY_COLUMNS and h["epoch"].tolist() == list(range(1, epochs + 1))
    assert h[["train_loss", "dev_loss", "train_ppl", "dev_ppl"]].notna().all().all()
    assert result.best_epoch == int(h.loc[h["dev_loss"].idxmin(), "epoch"])
    assert result.best_dev_ppl == pytest.approx(math.exp(h["dev_loss"].min()))
    assert isinstance(result.samples, pd.DataFrame)
    assert result.samples["epoch"].tolist() == list(range(1, epochs + 1))  # fast: every epoch
    assert {"epoch", "text"} <= set(result.samples.columns)
    assert result.device == "cpu" and result.seconds > 0


def test_fast_run_end_to_end_on_tiny_shakespeare(tmp_path, monkeypatch, shakespeare):
    monkeypatch.chdir(tmp_path)
    lines = []
    result = run(Config(fast=True), progress=False, log=lines.append)
    _check_result(result, rnn_lm.FAST_EPOCHS)
    assert result.config.fast and result.config.max_lines == rnn_lm.FAST_MAX_LINES
    assert len(result.vocab) == 67  # 64 characters of Tiny Shakespeare (no newline) + 3 specials
    assert isinstance(result.model, layers.RNNLanguageModel)
    assert any(line.startswith("Epoch   1: train loss") for line in lines)
    assert any("generated after epoch 2" in line for line in lines)
    assert (tmp_path / "checkpoints" / "rnn_lm_fast_rnn_seed1.pt").is_file()  # the scale is in the name
    assert result.seconds < 15


def test_run_is_deterministic_and_uses_student_functions(tmp_path):
    calls = {"factory": 0, "loss": 0, "generate": 0}

    def factory(config, vocab):
        calls["factory"] += 1
        return layers.FeedforwardLanguageModel(len(vocab), config.embedding_size, config.hidden_size,
                                               config.window_size, pad_id=vocab.pad_id)

    def loss_fn(losses, mask):
        calls["loss"] += 1
        return layers.mask_loss(losses, mask)

    def generate_fn(model, vocab, prefix="", max_len=200, temperature=1.0, generator=None):
        calls["generate"] += 1
        return layers.generate(model, vocab, prefix, max_len, temperature, generator)

    cfg = Config(model_type="ff", hidden_size=16, embedding_size=4, window_size=3, epochs=2, batch_size=16,
                 generate_every=1, generate_len=30, prefix="All:", save_dir="")
    a = run(cfg, model_factory=factory, loss_fn=loss_fn, generate_fn=generate_fn, progress=False, log=None,
            text=SHAKESPEARE_LIKE)
    assert calls["factory"] == 1 and calls["loss"] > 0 and calls["generate"] == 2
    _check_result(a, 2)
    assert all(t.startswith("All:") for t in a.samples["text"])
    b = run(cfg, progress=False, log=None, text=SHAKESPEARE_LIKE)
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"), b.history.drop(columns="seconds"))
    assert a.samples["text"].tolist() == b.samples["text"].tolist()


def test_samples_come_from_best_model_so_far(tmp_path):
    """Gradient ascent makes every epoch worse than the first, so every sample is generated by
    epoch 1's model (``model_epoch``), as the handout's run.py does."""
    cfg = Config(model_type="lstm", hidden_size=16, embedding_size=4, epochs=3, batch_size=8,
                 learning_rate=0.05, generate_every=1, generate_len=10, save_dir="")
    seen = []

    def generate_fn(model, vocab, prefix="", max_len=200, temperature=1.0, generator=None):
        seen.append(model.output.weight.detach().clone())
        return layers.generate(model, vocab, prefix, max_len, temperature, generator)

    ascent = lambda losses, mask: -layers.mask_loss(losses, mask)  # noqa: E731
    r = run(cfg, loss_fn=ascent, generate_fn=generate_fn, progress=False, log=None, text=SHAKESPEARE_LIKE)
    assert r.history["dev_loss"].is_monotonic_increasing and r.best_epoch == 1
    assert r.samples["epoch"].tolist() == [1, 2, 3]
    assert r.samples["model_epoch"].tolist() == [1, 1, 1]
    assert all(torch.equal(w, seen[0]) for w in seen)
    assert torch.equal(r.model.output.weight, seen[0])  # the returned model is the best one


def test_cli_main_writes_json(tmp_path, monkeypatch, shakespeare):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "rnn_lm.json"
    main(["--fast", "--record", str(out), "--no-progress", "--save_dir", "", "--note", "test run"])
    data = json.loads(out.read_text())
    for key in ("config", "history", "samples", "best_epoch", "best_dev_ppl", "seconds", "device",
                "torch_version", "date", "cpu_run", "epochs_run", "note"):
        assert key in data, key
    assert data["config"]["fast"] is True and data["cpu_run"] is True and data["note"] == "test run"
    assert data["epochs_run"] == len(data["history"]) == rnn_lm.FAST_EPOCHS
    assert set(data["history"][0]) == set(HISTORY_COLUMNS)
    assert data["samples"] and isinstance(data["samples"][0]["text"], str)
    assert data["torch_version"] == torch.__version__
    best = min(data["history"], key=lambda r: r["dev_loss"])
    assert data["best_epoch"] == best["epoch"] and data["best_dev_ppl"] == pytest.approx(best["dev_ppl"])


# --- the example SLURM script ------------------------------------------------------------------


def _slurm_python_command() -> list[str]:
    text = SLURM.read_text()
    joined = re.sub(r"\\\n", " ", text)  # join continuation lines
    lines = [line for line in joined.splitlines() if line.strip().startswith("python")]
    assert len(lines) == 1, f"expected one python command line in {SLURM}, found {len(lines)}"
    return shlex.split(lines[0])


def test_slurm_script_is_valid_bash_with_handout_directives():
    bash = shutil.which("bash")
    assert bash, "bash is needed for this test"
    subprocess.run([bash, "-n", str(SLURM)], check=True)
    text = SLURM.read_text()
    for directive in ("#SBATCH -o gen.out", "#SBATCH -e gen.err", "#SBATCH -c ", "#SBATCH --mem=",
                      "#SBATCH --gres=gpu:1", "#SBATCH -t 1:00:00"):
        assert directive in text, directive
    assert re.search(r"^##+SBATCH --reservation=", text, re.M), "reservation line should be commented out"


def test_slurm_python_command_flags_parse():
    argv = _slurm_python_command()
    assert argv[:4] == ["python", "-u", "-m", "course_lib.runners.rnn_lm"]
    args = build_parser().parse_args(argv[4:])
    config = Config.from_args(args)
    assert config.model_type == "rnn" and config.epochs == 64


def test_autograde_mode_shrinks_experiments_further(monkeypatch):
    from course_lib.runners.rnn_lm import AUTOGRADE_MAX_LINES, Config

    monkeypatch.setenv("COURSE_FAST", "1")
    fast = Config(model_type="lstm", hidden_size=128).resolved()
    monkeypatch.setenv("COURSE_AUTOGRADE", "1")
    graded = Config(model_type="lstm", hidden_size=128).resolved()
    assert graded.epochs == 1 and graded.max_lines == AUTOGRADE_MAX_LINES < fast.max_lines
    # everything the student chose is kept
    assert (graded.model_type, graded.hidden_size) == ("lstm", 128)
