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

from course_solutions import layers
from course_lib.runners import rnn_lm
from course_lib.runners.rnn_lm import Config, RunResult, build_parser, main, run
from course_lib.train import HISTORY_COLUMNS

REPO = Path(__file__).resolve().parent.parent
SLURM = REPO / "notebooks" / "rnn_lm" / "slurm_run.sh"
SHAKESPEARE_LIKE = "\n".join(
    ["First Citizen:", "Before we proceed any further, hear me speak.", "", "All:", "Speak, speak."] * 40
)


@pytest.fixture(autouse=True)
def _cpu_and_no_fast_env(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_FAST", raising=False)


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
    assert Config().resolved() == Config()
    monkeypatch.setenv("COURSE_FAST", "1")
    assert Config().resolved().fast and Config().resolved().epochs == rnn_lm.FAST_EPOCHS


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
    assert (tmp_path / "checkpoints" / "rnn_lm_rnn_seed1.pt").is_file()
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
    lines = [l for l in joined.splitlines() if l.strip().startswith("python")]
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
