"""Tests of the gpt_attention runner (run_exp.py): configurations, logs, resume, perplexity, plots, table.

CPU only and fast: tiny stand-in models on tiny synthetic data (the handout's sizes and WikiText-2
are used only by the optional reference-model test, at fast-mode sizes on stand-in data).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.plot import BEST_MARKER_GID, CAPTION_GID
from course_lib.runlog import model_fingerprint
from course_lib.runners import gpt_attention as ga
from course_lib.runners.gpt_attention import CONFIGS, Config, RunInterrupted, RunResult
from course_lib.tables import to_markdown_table

V = 12  # stand-in vocabulary: 0 is padding, 1..11 real tokens
T = 16


@pytest.fixture(autouse=True)
def _cpu_no_fast_env(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("COURSE_AUTOGRADE", raising=False)
    monkeypatch.delenv("COURSE_SCALE", raising=False)
    yield
    plt.close("all")


# ---------------------------------------------------------------------------------------------------
# stand-ins: data and models with the handout's interfaces


class ToyLM(torch.utils.data.Dataset):
    """Sequences of a simple deterministic pattern (next = 3 * token mod 11 + 1), some of them padded."""

    def __init__(self, n: int, seed: int = 0, length: int = T):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            real = length if i % 3 else int(torch.randint(2, length, (1,), generator=g))
            tokens = [int(torch.randint(1, V, (1,), generator=g))]
            for _ in range(real):
                tokens.append(3 * tokens[-1] % (V - 1) + 1)
            source, target, mask = torch.zeros(length, dtype=torch.long), torch.zeros(length, dtype=torch.long), torch.zeros(length)
            source[:real] = torch.tensor(tokens[:-1])
            target[:real] = torch.tensor(tokens[1:])
            mask[:real] = 1.0
            self.items.append({"source": source, "target": target, "mask": mask})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _loss(log_probas, target, mask):
    nll = -log_probas.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return ((nll * mask).sum(1) / mask.sum(1)).mean()


class TinyLSTM(nn.Module):
    def __init__(self, vocabulary_size, embedding_size, hidden_size, num_layers):
        super().__init__()
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.embedding = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers, batch_first=True)
        self.dropout = nn.Dropout(0.2)  # uses the RNG: resume must restore its state
        self.classifier = nn.Linear(hidden_size, vocabulary_size)

    def forward(self, source, hidden_states):
        out, states = self.lstm(self.embedding(source), hidden_states)
        return F.log_softmax(self.classifier(self.dropout(out)), dim=-1), states

    def initial_states(self, batch_size, device=None):
        shape = (self.num_layers, batch_size, self.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def loss(self, log_probas, target, mask):
        return _loss(log_probas, target, mask)


class TinyGPT(nn.Module):
    def __init__(self, vocabulary_size, embedding_size, num_heads, num_layers, sequence_length):
        super().__init__()
        self.tokens = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0)
        self.position = nn.Embedding(sequence_length, embedding_size)
        layer = nn.TransformerEncoderLayer(embedding_size, num_heads, 2 * embedding_size, dropout=0.1,
                                           batch_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(embedding_size, vocabulary_size)

    def forward(self, source):
        B, L = source.shape
        h = self.tokens(source) + self.position(torch.arange(L, device=source.device))
        causal = torch.triu(torch.full((L, L), float("-inf"), device=source.device), diagonal=1)
        return F.log_softmax(self.classifier(self.layers(h, mask=causal)), dim=-1)

    def loss(self, log_probas, target, mask):
        return _loss(log_probas, target, mask)


FACTORY = ga.model_factory_from(lstm=TinyLSTM, gpt=TinyGPT)


def toy_data(n_train=16, n_dev=8):
    return ToyLM(n_train, seed=1), ToyLM(n_dev, seed=2), V


def fast(n: int, **changes) -> Config:
    return CONFIGS[n].replace(fast=True, **changes)


def numeric(history: pd.DataFrame) -> pd.DataFrame:
    """The columns that depend only on the computation (not on timing, memory or dates)."""
    return history[["epoch", "train_loss", "train_ppl", "dev_loss", "dev_ppl", "train_objective",
                    "train_tokens", "dev_tokens"]]


# ---------------------------------------------------------------------------------------------------
# configurations


def test_the_twelve_configurations_numbered_as_in_the_handout():
    expected = {
        1: "LSTM-Adam-1L", 2: "LSTM-AdamW-1L", 3: "LSTM-SGD-1L", 4: "LSTM-Momentum-1L",
        5: "GPT-Adam-1L", 6: "GPT-AdamW-1L", 7: "GPT-SGD-1L", 8: "GPT-Momentum-1L",
        9: "LSTM-AdamW-2L", 10: "LSTM-AdamW-4L", 11: "GPT-AdamW-2L", 12: "GPT-AdamW-4L",
    }
    assert list(CONFIGS) == list(range(1, 13))
    assert {n: c.name for n, c in CONFIGS.items()} == expected
    for n, c in CONFIGS.items():
        assert c.number == n and c.label == f"{n} {expected[n]}"
        # the original run_exp.py's Arguments defaults and load_embeddings_from sizes
        assert (c.batch_size, c.epochs, c.lr, c.momentum, c.weight_decay, c.seed) == (16, 10, 1e-3, 0.9, 5e-4, 42)
        assert (c.embedding_size, c.hidden_size, c.num_heads, c.sequence_length) == (768, 512, 12, 256)
        assert not c.fast and c.max_train_sequences is None and c.amp and not c.compile
        assert c.scale is None and c.max_vocabulary is None
        assert c.replace(scale="full").resolved() == c.replace(scale="full")  # full: the handout's, unchanged
    table = ga.experiments()
    assert table["exp"].tolist() == list(range(1, 13)) and table["name"].tolist() == list(expected.values())
    assert table.loc[table["optimizer"] == "adam", "weight_decay"].eq(0).all()  # Adam: no weight decay
    assert table.loc[table["optimizer"] == "momentum", "momentum"].eq(0.9).all()


def test_optimizers_follow_the_original():
    model = nn.Linear(3, 2)
    device = torch.device("cpu")
    opts = {name: ga._make_optimizer(model, Config(optimizer=name), device) for name in ga.OPTIMIZERS}
    assert type(opts["adam"]) is torch.optim.Adam and opts["adam"].defaults["weight_decay"] == 0
    assert type(opts["adamw"]) is torch.optim.AdamW and opts["adamw"].defaults["weight_decay"] == 5e-4
    assert type(opts["sgd"]) is torch.optim.SGD and opts["sgd"].defaults["momentum"] == 0
    assert opts["sgd"].defaults["weight_decay"] == 5e-4
    assert opts["momentum"].defaults["momentum"] == 0.9 and opts["momentum"].defaults["weight_decay"] == 5e-4
    assert all(o.defaults["lr"] == 1e-3 for o in opts.values())
    frozen = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    frozen[0].requires_grad_(False)
    assert sum(len(g["params"]) for g in ga._make_optimizer(frozen, Config(), device).param_groups) == 2


def test_fast_mode_keeps_the_architecture_and_shrinks_the_rest(monkeypatch, tmp_path):
    c = CONFIGS[12].replace(fast=True).resolved()
    assert (c.model, c.layers, c.optimizer, c.lr, c.weight_decay, c.momentum) == ("gpt1", 4, "adamw", 1e-3, 5e-4, 0.9)
    assert c.epochs == ga.FAST_EPOCHS and c.batch_size == ga.FAST_BATCH_SIZE
    assert c.max_train_sequences == ga.FAST_TRAIN_SEQUENCES and c.sequence_length == ga.FAST_SEQUENCE_LENGTH
    steps = math.ceil(c.max_train_sequences / c.batch_size) * c.epochs
    assert steps * 12 <= 300  # a few hundred steps at most for all 12
    monkeypatch.setenv("COURSE_FAST", "1")
    assert CONFIGS[12].resolved() == c
    assert ga.run_dir(c, tmp_path) == tmp_path / "fast" / "12-GPT-AdamW-4L"
    assert ga.run_dir(CONFIGS[12], tmp_path) == tmp_path / "fast" / "12-GPT-AdamW-4L"  # resolved at COURSE_FAST's scale
    full = CONFIGS[12].replace(scale="full")
    assert ga.run_dir(full, tmp_path) == tmp_path / "12-GPT-AdamW-4L"
    other = ga.run_dir(full.replace(lr=0.01), tmp_path)  # not the handout's: its own folder
    assert other.parent == tmp_path and other.name.startswith("12-GPT-AdamW-4L-")
    assert ga.run_dir(full.replace(epochs=3, device="cuda"), tmp_path) == tmp_path / "12-GPT-AdamW-4L"
    monkeypatch.setenv("COURSE_AUTOGRADE", "1")
    assert CONFIGS[1].resolved().epochs == 1
    with pytest.raises(ValueError):
        Config(model="gru").validate()
    with pytest.raises(ValueError):
        ga.get_config(13)


@pytest.fixture()
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_scale_resolution_for_every_configuration(monkeypatch, tmp_path, no_cuda):
    L = ga.LAPTOP
    for n, config in CONFIGS.items():
        laptop = config.resolved()  # no CUDA, no COURSE_FAST: the laptop scale
        fast_ = config.replace(scale="fast").resolved()
        full = config.replace(scale="full").resolved()
        assert (laptop.scale, fast_.scale, full.scale) == ("laptop", "fast", "full")
        assert fast_ == config.replace(fast=True).resolved() and fast_.fast and not laptop.fast and not full.fast
        assert full == config.replace(scale="full")  # the handout's settings
        for r in (laptop, fast_, full):  # the experiment itself is the handout's at every scale
            assert (r.number, r.model, r.layers, r.optimizer, r.lr, r.momentum, r.weight_decay, r.seed) == (
                config.number, config.model, config.layers, config.optimizer, config.lr, config.momentum,
                config.weight_decay, config.seed)
            assert r.resolved() == r
        assert {k: getattr(laptop, k) for k in L} == L and laptop.num_workers == 0
        # laptop sits between fast and full
        assert fast_.epochs <= laptop.epochs < full.epochs
        assert fast_.max_train_sequences < laptop.max_train_sequences and full.max_train_sequences is None
        assert fast_.embedding_size <= laptop.embedding_size < full.embedding_size
        assert laptop.embedding_size % laptop.num_heads == 0
        assert ga.run_dir(laptop, tmp_path) == tmp_path / "laptop" / f"{n:02d}-{config.name}"
        assert ga.run_dir(config, tmp_path) == ga.run_dir(laptop, tmp_path)
    # the fingerprint of a full-scale run is what it was before scales existed (old logs resume)
    assert set(CONFIGS[1].replace(scale="full").fingerprint()) == set(CONFIGS[1].fingerprint()) == {
        f.name for f in dataclasses.fields(Config)} - set(ga._EXECUTION_FIELDS) - {"scale", "max_vocabulary"}
    assert CONFIGS[1].resolved().fingerprint()["scale"] == "laptop"
    # COURSE_SCALE wins over the hardware and COURSE_FAST; Config(scale=...) wins over both
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert CONFIGS[5].resolved() == CONFIGS[5].replace(scale="full")
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_SCALE", "laptop")
    assert CONFIGS[5].resolved().scale == "laptop" and CONFIGS[5].replace(scale="full").resolved().scale == "full"
    with pytest.raises(ValueError, match="scale must be one of fast, laptop, full"):
        CONFIGS[5].replace(scale="huge").resolved()
    monkeypatch.setenv("COURSE_SCALE", "huge")
    with pytest.raises(ValueError, match="COURSE_SCALE"):
        CONFIGS[5].resolved()
    # a smaller value set by hand is kept
    small = CONFIGS[5].replace(scale="laptop", epochs=2, max_train_sequences=10, max_vocabulary=100).resolved()
    assert (small.epochs, small.max_train_sequences, small.max_vocabulary) == (2, 10, 100)


def test_vocabulary_map_keeps_the_most_frequent_words():
    tokens = torch.tensor([5, 5, 5, 3, 3, 7, 7, 9, 2, 4, 4, 4, 4, 0, 0, 0, 0, 0])  # 0: padding, 4: <unk>
    lut = ga.vocabulary_map(tokens, 10, 5, unk_id=4)
    # kept: the 3 most frequent real words, 5 (3x), then 3 and 7 (2x, smaller id first); the rest -> 1
    assert lut.tolist() == [0, 1, 1, 3, 1, 2, 1, 4, 1, 1]
    mapped = lut[tokens]
    assert int(mapped.max()) + 1 == 5 and (mapped[tokens == 0] == 0).all()
    assert ga.vocabulary_map(tokens, 10, 100).max().item() == 7  # every word kept (no <unk> given)
    with pytest.raises(ValueError, match="max_vocabulary"):
        CONFIGS[1].replace(max_vocabulary=2, scale="full").resolved()


def test_laptop_run_limits_the_vocabulary_and_logs_under_laptop(tmp_path, monkeypatch, no_cuda):
    from course_lib import wikitext

    train_words = ["a b a c a b <unk> d e a"] * 30
    (tmp_path / "data").mkdir()
    for split, lines in (("train", train_words), ("valid", ["a b e <unk> c"] * 10)):
        (tmp_path / "data" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    vocab = wikitext.WordVocab.from_file(tmp_path / "data" / "train.txt")
    real = wikitext.Wikitext2
    monkeypatch.setattr(wikitext, "Wikitext2", lambda **kw: real(root=tmp_path / "data", **{"vocab": vocab, **kw}))
    config = CONFIGS[1].replace(max_vocabulary=4, max_train_sequences=8, max_valid_sequences=2)
    train, valid, size = ga._load_wikitext(config.resolved())
    assert size == 4  # padding, <unk>, "a" (4x per line) and "b" (2x); c, d, e and <eos> -> <unk>
    assert set(train.tokens.unique().tolist()) == {1, 2, 3} and set(valid.tokens.unique().tolist()) == {1, 2, 3}
    result = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "logs", log=None)
    assert result.log_dir.parent == tmp_path / "logs" / "laptop" and result.config.scale == "laptop"
    assert result.vocabulary_size == 4 and result.finished and result.setup_seconds > 0
    assert result.history["cpu_max_rss_mib"].notna().all() and result.cpu_max_rss_mib > 10
    meta = json.loads((result.log_dir / "meta.json").read_text())
    assert meta["config"]["scale"] == "laptop" and meta["setup_seconds"] > 0


# ---------------------------------------------------------------------------------------------------
# running, logs


@pytest.mark.parametrize("number", [2, 6])
def test_fast_run_writes_a_complete_log(tmp_path, number):
    lines = []
    result = ga.run(fast(number), FACTORY, progress=False, log_dir=tmp_path, log=lines.append, data=toy_data())
    h, E = result.history, ga.FAST_EPOCHS
    assert E >= 2 and h["epoch"].tolist() == list(range(1, E + 1)) and result.finished and result.epochs_trained_now == E
    for split in ("train", "dev"):
        assert np.isfinite(h[f"{split}_ppl"]).all() and (h[f"{split}_ppl"] > 1).all()
        np.testing.assert_allclose(h[f"{split}_ppl"], np.exp(h[f"{split}_loss"]), rtol=1e-12)
        assert h[f"{split}_ppl"].iloc[-1] < h[f"{split}_ppl"].iloc[0]  # learning
    assert (h["dev_ppl"] < V).all()
    folder = tmp_path / "fast" / f"{number:02d}-{CONFIGS[number].name}"
    assert result.log_dir == folder
    rows = [json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, E + 1)) and set(ga.HISTORY_COLUMNS) <= set(rows[0])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["config"]["number"] == number and meta["vocabulary_size"] == V and meta["config"]["fast"]
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == E and set(ckpt) >= {"model", "optimizer", "rng", "history"}
    assert any(f"epoch  {E}/{E}" in line for line in lines) and result.model is not None
    assert result.best_dev_ppl == pytest.approx(h["dev_ppl"].min())
    assert result.best_epoch == int(h["epoch"][h["dev_ppl"].idxmin()])


def test_timing_memory_and_throughput_fields(tmp_path):
    r = ga.run(fast(5), FACTORY, progress=True, log_dir=tmp_path, log=None, data=toy_data())  # with tqdm bars
    h = r.history
    assert (h["train_seconds"] > 0).all() and (h["dev_seconds"] > 0).all()
    np.testing.assert_allclose(h["epoch_seconds"], h["train_seconds"] + h["dev_seconds"])
    np.testing.assert_allclose(h["wall_clock_seconds"], h["epoch_seconds"].cumsum())
    np.testing.assert_allclose(h["tokens_per_second"], h["train_tokens"] / h["train_seconds"])
    real = sum(int(d["mask"].sum()) for d in toy_data()[0])  # every real target token, once per epoch
    assert (h["train_tokens"] == real).all()
    assert (h["dev_tokens"] == sum(int(d["mask"].sum()) for d in toy_data()[1])).all()
    assert (h["peak_memory_mib"] > 10).all() and set(h["memory_kind"]) == {"cpu_rss"}
    assert set(h["device"]) == {"cpu"} and set(h["amp_dtype"]) == {"float32"}
    assert h["cuda_max_reserved_mib"].isna().all()
    summary = r.summary()
    assert summary["memory (MiB)"] == h["peak_memory_mib"].iloc[1:].max()  # steady state: after epoch 1
    assert summary["tokens/s"] == pytest.approx(h["tokens_per_second"].iloc[1:].mean())
    assert summary["s/epoch"] == pytest.approx(h["epoch_seconds"].mean())
    assert r.num_parameters == sum(p.numel() for p in r.model.parameters())


def _stop_at(epoch: int, step: int):
    def hook(e, s):
        if (e, s) == (epoch, step):
            raise RunInterrupted(f"simulated interruption at epoch {e}, step {s}")

    return hook


@pytest.mark.parametrize("number", [2, 6])
def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, number):
    config = fast(number, epochs=2)
    straight = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "a", log=None, data=toy_data())

    with pytest.raises(RunInterrupted):
        ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "b", log=None, data=toy_data(),
               on_step=_stop_at(2, 1))
    folder = ga.run_dir(config.resolved(), tmp_path / "b")
    first = (folder / "epochs.jsonl").read_text()
    assert [json.loads(line)["epoch"] for line in first.splitlines()] == [1]
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["epoch"] == 1

    steps, totals = [], []
    resumed = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "b", log=None, data=toy_data(),
                     on_step=lambda e, s: steps.append(e), on_start=totals.append)
    assert steps and set(steps) == {2}  # epoch 1 was not recomputed
    assert totals == [len(steps)]  # the steps still to take, announced before the first one
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_trained_now == 1
    assert (folder / "epochs.jsonl").read_text().splitlines()[0] == first.splitlines()[0]
    pd.testing.assert_frame_equal(numeric(resumed.history), numeric(straight.history))
    assert resumed.history["resumed"].tolist() == [False, True]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history["wall_clock_seconds"].is_monotonic_increasing


def _to_old_names(path):
    """Rewrite a log (JSON lines) with the column names it had before ``dev_*``: ``valid_*``."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k.replace("dev_", "valid_"): v for k, v in r.items()}) + "\n" for r in rows))


def test_a_log_with_the_old_valid_names_resumes_and_reads_back_under_dev_names(tmp_path):
    config = fast(6, epochs=2)
    straight = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "a", log=None, data=toy_data())
    with pytest.raises(RunInterrupted):
        ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "b", log=None, data=toy_data(),
               on_step=_stop_at(2, 1))
    folder = ga.run_dir(config.resolved(), tmp_path / "b")
    _to_old_names(folder / "epochs.jsonl")
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=True)
    ckpt["history"] = [{k.replace("dev_", "valid_"): v for k, v in r.items()} for r in ckpt["history"]]
    torch.save(ckpt, folder / "checkpoint.pt")
    resumed = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "b", log=None, data=toy_data())
    assert resumed.resumed_from_epoch == 1 and "valid_ppl" not in resumed.history.columns
    pd.testing.assert_frame_equal(numeric(resumed.history), numeric(straight.history))
    assert all("dev_ppl" in json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines())
    _to_old_names(folder / "epochs.jsonl")  # a finished old log is read back under the new names
    again = ga.run(config, FACTORY, progress=False, log_dir=tmp_path / "b", log=None, data=toy_data())
    assert again.epochs_trained_now == 0 and again.best_dev_ppl == pytest.approx(straight.best_dev_ppl)


def test_finished_run_is_read_back_not_retrained(tmp_path):
    config = fast(9)
    first = ga.run(config, FACTORY, progress=False, log_dir=tmp_path, log=None, data=toy_data())
    log = first.log_dir / "epochs.jsonl"
    before = log.read_bytes()

    def must_not_train(epoch, step):
        raise AssertionError("a finished run was trained again")

    lines = []
    again = ga.run(config, FACTORY, progress=False, log_dir=tmp_path, log=lines.append, data=None,
                   on_step=must_not_train, on_start=must_not_train)  # data=None: WikiText-2 is not even loaded
    assert log.read_bytes() == before and again.epochs_trained_now == 0
    pd.testing.assert_frame_equal(again.history, first.history)
    assert any("finished run read from" in line for line in lines)
    a, b = first.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ga.run(config, FACTORY, progress=False, log_dir=tmp_path, log=None, load_model=False).model is None
    loaded = ga.load_runs(tmp_path, fast=True)
    assert list(loaded) == [9] and loaded[9].finished
    pd.testing.assert_frame_equal(loaded[9].history, first.history)


def test_more_epochs_extend_a_finished_run(tmp_path):
    config = Config(number=0, model="lstm", optimizer="adam", epochs=1, batch_size=4, embedding_size=8,
                    hidden_size=8, sequence_length=T)
    totals = []
    one = ga.run(config, FACTORY, progress=False, log_dir=tmp_path, log=None, data=toy_data(n_train=18),
                 on_start=totals.append)
    steps = []
    two = ga.run(config.replace(epochs=2), FACTORY, progress=False, log_dir=tmp_path, log=None,
                 data=toy_data(n_train=18), on_step=lambda e, s: steps.append(e), on_start=totals.append)
    assert totals == [5, 5] and len(steps) == 5  # 18 sequences in batches of 4: 5 steps, the last one short
    assert set(steps) == {2} and two.history["epoch"].tolist() == [1, 2] and two.log_dir == one.log_dir
    pd.testing.assert_frame_equal(numeric(two.history.iloc[:1]), numeric(one.history))
    assert one.log_dir.name.startswith("custom-LSTM-Adam-1L-")


def test_changed_model_code_or_no_resume_starts_over(tmp_path):
    config = fast(2, epochs=2)
    ga.run(config, FACTORY, progress=False, log_dir=tmp_path, log=None, data=toy_data())

    class OtherLSTM(TinyLSTM):
        def forward(self, source, hidden_states):  # a "fixed bug": different code
            log_probas, states = super().forward(source, hidden_states)
            return log_probas, states

    lines, steps = [], []
    ga.run(config, ga.model_factory_from(lstm=OtherLSTM), progress=False, log_dir=tmp_path, log=lines.append,
           data=toy_data(), on_step=lambda e, s: steps.append(e))
    assert set(steps) == {1, 2} and any("code changed" in line for line in lines)
    folder = ga.run_dir(config.resolved(), tmp_path)
    assert len(list(folder.parent.glob(folder.name + ".replaced-*"))) == 1
    steps.clear()
    ga.run(config, ga.model_factory_from(lstm=OtherLSTM), progress=False, log_dir=tmp_path, log=None,
           data=toy_data(), resume=False, on_step=lambda e, s: steps.append(e))
    assert set(steps) == {1, 2} and len(list(folder.parent.glob(folder.name + ".replaced-*"))) == 2


def test_model_fingerprint_ignores_line_numbers_but_not_code():
    namespace_a, namespace_b, namespace_c = {}, {}, {}
    src = "import torch\nclass M(torch.nn.Linear):\n    def forward(self, x):\n        return super().forward(x) * 2\n"
    exec(compile(src, "<cell-1>", "exec"), namespace_a)
    exec(compile("\n\n\n" + src, "<cell-7>", "exec"), namespace_b)  # the same cell, run again elsewhere
    exec(compile(src.replace("* 2", "* 3"), "<cell-8>", "exec"), namespace_c)
    fp = [model_fingerprint(ns["M"](2, 2)) for ns in (namespace_a, namespace_b, namespace_c)]
    assert fp[0] == fp[1] != fp[2]
    assert model_fingerprint(nn.Linear(2, 2)) != model_fingerprint(nn.Linear(2, 3))


# ---------------------------------------------------------------------------------------------------
# perplexity over all tokens


class Unigram(nn.Module):
    """log p(next = i) = log_softmax(logits)[i] at every position, whatever the input."""

    def __init__(self, probabilities):
        super().__init__()
        self.logits = nn.Parameter(torch.log(torch.tensor(probabilities, dtype=torch.float32)))

    def forward(self, source):
        return F.log_softmax(self.logits, -1).expand(*source.shape, -1)

    def loss(self, log_probas, target, mask):
        return _loss(log_probas, target, mask)


class Batch(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        target, n = self.rows[i]
        t = torch.tensor(target)
        mask = (torch.arange(len(target)) < n).float()
        return {"source": torch.ones_like(t), "target": t, "mask": mask}


def test_perplexity_is_over_all_real_tokens_by_hand():
    p = [0.0625, 0.5, 0.25, 0.125, 0.0625]  # id 0 is padding
    # sequence 1: one real token (id 1); sequence 2: three real tokens (ids 2, 3, 4); the rest is padding
    data = Batch([([1, 0, 0, 0], 1), ([2, 3, 4, 0], 3)])
    nll = {1: -math.log(0.5), 2: -math.log(0.25), 3: -math.log(0.125), 4: -math.log(0.0625)}
    by_hand = math.exp((nll[1] + nll[2] + nll[3] + nll[4]) / 4)  # exp(mean over the 4 real tokens)
    per_sequence = math.exp((nll[1] + (nll[2] + nll[3] + nll[4]) / 3) / 2)  # what the training loss averages
    assert by_hand == pytest.approx(2**2.5) and per_sequence == pytest.approx(4.0)  # 2.5 vs 2 bits per token

    model = Unigram(p)
    loader = torch.utils.data.DataLoader(data, batch_size=1)  # one sequence per batch: means would differ
    loss, count = ga.evaluate(model, loader, kind="gpt1", device="cpu")
    assert count == 4 and math.exp(loss) == pytest.approx(by_hand, rel=1e-6)


def test_run_reports_token_level_perplexity(tmp_path):
    """With lr 0 the model does not change: train and validation perplexity are both the hand value."""
    p = [0.0625, 0.5, 0.25, 0.125, 0.0625]
    data = Batch([([1, 0, 0, 0], 1), ([2, 3, 4, 0], 3)])
    config = Config(model="gpt1", optimizer="sgd", lr=0.0, weight_decay=0.0, epochs=1, batch_size=1,
                    embedding_size=4, num_heads=1, sequence_length=4)
    result = ga.run(config, lambda c, v: Unigram(p), progress=False, log_dir=tmp_path, log=None,
                    data=(data, data, len(p)))
    row = result.history.iloc[0]
    assert row["train_ppl"] == pytest.approx(2**2.5, rel=1e-6) and row["dev_ppl"] == pytest.approx(2**2.5, rel=1e-6)
    assert row["train_tokens"] == row["dev_tokens"] == 4
    # the training objective is the handout's per-sequence mean, averaged over the two batches
    nll = [-math.log(0.5), -math.log(0.25), -math.log(0.125), -math.log(0.0625)]
    assert row["train_objective"] == pytest.approx((nll[0] + sum(nll[1:]) / 3) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------------------
# recorded results, table, plots


def fake_result(n: int, valid, train=None, seconds=10.0, memory=1000.0, recorded=False) -> RunResult:
    """A RunResult with given per-epoch perplexities (for table and plot tests only)."""
    valid = list(valid)
    train = list(train) if train is not None else [v * 0.8 for v in valid]
    k = len(valid)
    history = ga._history_frame([{
        "epoch": e + 1, "train_ppl": train[e], "dev_ppl": valid[e], "train_loss": math.log(train[e]),
        "dev_loss": math.log(valid[e]), "epoch_seconds": seconds, "wall_clock_seconds": seconds * (e + 1),
        "tokens_per_second": 1000.0 * n, "peak_memory_mib": memory + e, "memory_kind": "cuda_max_allocated",
    } for e in range(k)])
    return RunResult(config=CONFIGS[n].replace(epochs=k), history=history, recorded=recorded)


def all_fake(recorded=False) -> dict[int, RunResult]:
    best = {1: 146.3, 2: 145.0, 3: 2173.8, 4: 1652.1, 5: 146.9, 6: 148.1, 7: 1497.8, 8: 677.3, 9: 139.6,
            10: 159.5, 11: 375.1, 12: 1478.5}
    return {n: fake_result(n, [b * 2, b, b * 1.1], recorded=recorded) for n, b in best.items()}


def test_results_table_sorted_by_architecture_layers_optimizer_with_bold_per_architecture():
    styler = ga.results_table(all_fake())
    df = styler.data
    assert df["exp"].tolist() == [1, 2, 3, 4, 9, 10, 5, 6, 7, 8, 11, 12]
    assert list(df.columns) == ["exp", "architecture", "layers", "optimizer", "best dev ppl", "best epoch",
                                "final train ppl", "s/epoch", "memory (MiB)", "tokens/s"]
    assert (df["best epoch"] == 2).all()
    bold = styler._course_lib_bold
    bold_rows = df.loc[bold["best dev ppl"], ["exp", "architecture"]]
    assert bold_rows.values.tolist() == [[9, "LSTM"], [5, "GPT"]]  # one per architecture
    assert bold.drop(columns="best dev ppl").to_numpy().sum() == 0
    md = to_markdown_table(styler, precision=1)
    assert md.count("**") == 4 and "**139.6**" in md and "**146.9**" in md
    caption = styler.caption
    assert "lowest validation ppl across epochs" in caption and "Bold: best validation ppl of each architecture" in caption
    assert "max_memory_allocated" in caption and "RECORDED" not in caption
    assert "RECORDED" in ga.results_table(all_fake(recorded=True)).caption
    assert 'font-weight: bold' in styler.to_html()


def test_record_path_is_where_load_recorded_looks():
    import course_solutions

    assert ga.RECORD_PATH == course_solutions.recorded_path("gpt_attention")


def test_record_and_load_recorded(tmp_path):
    results = all_fake()
    for r in results.values():
        r.config = r.config.replace(epochs=len(r.history))
    path = ga.record_results(results, tmp_path / "gpt_attention.json", note="test")
    data = json.loads(path.read_text())
    assert data["assignment"] == "gpt_attention" and data["complete"] and data["note"] == "test"
    assert [r["number"] for r in data["runs"]] == list(range(1, 13))
    loaded = ga.load_recorded(data)
    assert all(r.recorded and r.label.endswith("(recorded)") for r in loaded.values())
    for n in CONFIGS:
        assert loaded[n].best_dev_ppl == pytest.approx(results[n].best_dev_ppl)
        assert loaded[n].config.name == CONFIGS[n].name
    partial = {n: r for n, r in results.items() if n != 7}
    with pytest.raises(ValueError, match="not finished"):
        ga.record_results(partial, tmp_path / "x.json")
    assert json.loads(ga.record_results(partial, tmp_path / "x.json", allow_partial=True).read_text())["complete"] is False
    fast_one = {**results, 1: fake_result(1, [3.0, 2.0])}
    fast_one[1].config = fast_one[1].config.replace(fast=True)
    with pytest.raises(ValueError, match="fast-mode"):
        ga.record_results(fast_one, tmp_path / "y.json")


def test_load_recorded_without_a_file_says_how_to_make_it(monkeypatch, tmp_path):
    import course_solutions

    monkeypatch.setattr(course_solutions, "RECORDED", tmp_path)
    with pytest.raises(course_solutions.RecordedError, match="gpt_attention"):
        ga.load_recorded()


def test_plot_results_against_epochs_and_wall_clock():
    results = {n: r for n, r in all_fake().items() if n in (1, 5, 9)}
    fig = ga.plot_results(results, x="both", title="Problem 3")
    axes = fig.axes
    assert len(axes) == 4
    assert [ax.get_xlabel() for ax in axes] == ["epoch", "epoch", "wall-clock time (s)", "wall-clock time (s)"]
    assert [ax.get_ylabel() for ax in axes] == ["training perplexity (log scale)", "validation perplexity (log scale)"] * 2
    for ax in axes:
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1 LSTM-Adam-1L", "5 GPT-Adam-1L", "9 LSTM-AdamW-2L"]
        assert len(ax.get_lines()) == 3
    stars = [a for a in axes[1].get_children() if a.get_gid() == BEST_MARKER_GID]
    assert len(stars) == 3 and not [a for a in axes[0].get_children() if a.get_gid() == BEST_MARKER_GID]
    x_seconds = axes[2].get_lines()[0].get_xdata()
    np.testing.assert_allclose(x_seconds, [10.0, 20.0, 30.0])
    captions = [t for t in fig.texts if t.get_gid() == CAPTION_GID]
    assert len(captions) == 1 and "log scale" in captions[0].get_text()
    assert fig._suptitle.get_text() == "Problem 3"
    one = ga.plot_results(all_fake(recorded=True), x="seconds", numbers=[2, 6, 11, 12])
    assert len(one.axes) == 2 and one.axes[0].get_xlabel() == "wall-clock time (s)"
    assert "RECORDED" in [t for t in one.texts if t.get_gid() == CAPTION_GID][0].get_text()
    assert len(one.axes[0].get_legend().get_texts()) == 4


# ---------------------------------------------------------------------------------------------------
# command line, reference models


def test_cli_list_run_and_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ga, "_load_wikitext", lambda config: toy_data())
    monkeypatch.setattr(ga, "default_model_factory", FACTORY)
    ga.main(["--list", "--log-dir", str(tmp_path), "--fast"])
    out = capsys.readouterr().out
    assert out.count("not started") == 12 and "GPT-AdamW-4L" in out
    results = ga.main(["--config", "3", "7", "--fast", "--log-dir", str(tmp_path), "--no-progress"])
    assert sorted(results) == [3, 7] and all(r.finished for r in results.values())
    out = capsys.readouterr().out
    assert "| exp | architecture |" in out and "logs:" in out
    ga.main(["--list", "--log-dir", str(tmp_path), "--fast"])
    assert capsys.readouterr().out.count("finished") == 2
    with pytest.raises(SystemExit):
        ga.main(["--fast", "--record", str(tmp_path / "r.json"), "--log-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        ga.main(["--log-dir", str(tmp_path)])  # nothing to do
    with pytest.raises(SystemExit):
        ga.main(["--config", "13"])
    args = ga.build_parser().parse_args(["--all", "--epochs", "3", "--device", "cpu", "--compile", "--no-amp",
                                         "--no-resume", "--num-workers", "0"])
    assert args.all and args.epochs == 3 and args.compile and not args.amp and not args.resume
    assert not (tmp_path / "r.json").exists()


def test_reference_models_through_the_default_factory(tmp_path):
    from course_solutions import layers

    if not all(hasattr(layers, name) for name in ("LSTM", "MiniGPT1")):
        pytest.skip("course_solutions.layers has no LSTM / MiniGPT1 yet")
    lstm = ga.default_model_factory(CONFIGS[10], 100)
    assert isinstance(lstm, layers.LSTM) and lstm.lstm.num_layers == 4 and lstm.hidden_size == 512
    gpt = ga.default_model_factory(CONFIGS[11].replace(fast=True).resolved(), 100)
    assert isinstance(gpt, layers.MiniGPT1) and len(gpt.layers) == 2 and gpt.embedding_size == 64
    assert gpt.num_heads == 4 and gpt.sequence_length == ga.FAST_SEQUENCE_LENGTH
    for n in (1, 5):
        r = ga.run(fast(n), progress=False, log_dir=tmp_path, log=None, data=toy_data(8, 4))
        assert np.isfinite(r.history[["train_ppl", "dev_ppl"]].to_numpy()).all()
        assert type(r.model).__name__ == ("LSTM" if n == 1 else "MiniGPT1")


# ---------------------------------------------------------------------------------------------------
# the throughput benchmark (benchmarks/gpt_attention_throughput.py): runs, reports the second epoch


def _benchmark_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpt_attention_throughput.py"
    spec = importlib.util.spec_from_file_location("gpt_attention_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_benchmark_measures_the_runner_at_full_configuration(monkeypatch):
    bench = _benchmark_module()
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.setattr(ga, "_load_wikitext", lambda config: toy_data(n_train=64))
    monkeypatch.setattr(ga, "default_model_factory", FACTORY)
    seen = []
    real_run = ga.run

    def spy(config, *args, **kwargs):
        result = real_run(config, *args, **kwargs)
        seen.append((config, result.history))
        return result

    monkeypatch.setattr(ga, "run", spy)
    row = bench.measure(6, steps=2, device="cpu", amp=True, compile=False)
    (config, history), = seen
    assert not config.fast and config.epochs == 2 and config.embedding_size == 768 and config.batch_size == 16
    assert config.max_train_sequences == 2 * 16 and len(history) == 2
    resolved = config.resolved()  # on this CPU the default scale is laptop: the benchmark must ask for full
    assert resolved.scale == "full" and resolved.embedding_size == 768 and resolved.sequence_length == 256
    steady = history.iloc[-1]  # the second epoch; the first is the warm-up
    assert row["config"] == "6 GPT-AdamW-1L" and row["precision"] == "float32"
    assert row["tokens/s"] == round(steady["tokens_per_second"])
    assert row["s/step"] == round(steady["train_seconds"] / 2, 3)
    assert row["minutes for 10 epochs"] == pytest.approx(10 * bench.TRAIN_TOKENS / steady["tokens_per_second"] / 60, abs=0.05)


def test_throughput_benchmark_refuses_fast_mode_and_unknown_configs(monkeypatch, capsys):
    bench = _benchmark_module()
    monkeypatch.delenv("COURSE_FAST", raising=False)
    assert bench.main(["--configs", "13"]) == 2 and "choose from 1-12" in capsys.readouterr().err
    monkeypatch.setenv("COURSE_FAST", "1")
    assert bench.main([]) == 2 and "unset it" in capsys.readouterr().err


def _conclusion_fakes(overrides=None) -> dict[int, RunResult]:
    spec = {  # n: (valid ppl per epoch, seconds per epoch, memory)
        1: ([300, 200, 150], 12.0, 1000.0), 2: ([300, 200, 151], 10.0, 1000.0),
        3: ([3000, 2500, 2000], 10.0, 1000.0), 4: ([2500, 2000, 1500], 10.0, 1000.0),
        5: ([250, 150, 160], 10.0, 1000.0), 6: ([250, 150, 160], 10.0, 1000.0),
        7: ([3000, 2600, 2200], 10.0, 1000.0), 8: ([2000, 1500, 1000], 10.0, 1000.0),
        9: ([280, 190, 150], 12.0, 1100.0), 10: ([290, 195, 155], 15.0, 1200.0),
        11: ([260, 160, 170], 12.0, 1100.0), 12: ([270, 170, 180], 15.0, 1200.0),
    }
    spec.update(overrides or {})
    out = {}
    for n, (valid, seconds, memory) in spec.items():
        train = [300, 150, 100] if n in (5, 6) else None  # GPT-Adam: training keeps improving, validation turns
        out[n] = fake_result(n, valid, train=train, seconds=seconds, memory=memory)
    return out


def test_conclusions_are_computed_from_the_histories():
    got = {c["id"]: c for c in ga.conclusions(_conclusion_fakes())}
    assert {k: c["holds"] for k, c in got.items()} == {
        "adaptive_beats_sgd": True, "momentum_beats_sgd": True, "adamw_close_to_adam": True,
        "gpt_vs_lstm_per_epoch": True, "gpt_vs_lstm_per_second": True, "deeper_costs_time": True,
        "deeper_costs_memory": True, "gpt_overfits": True}
    # GPT wins 2 of 3 epochs; within GPT's 30 s the LSTM (12 s/epoch) finished 2 epochs: 200 > 150
    assert got["gpt_vs_lstm_per_epoch"]["winner"] == "GPT" and got["gpt_vs_lstm_per_second"]["winner"] == "GPT"
    lstm_faster = ga.conclusions(_conclusion_fakes({1: ([240, 140, 130], 5.0, 1000.0)}))
    assert {c["id"]: c.get("winner") for c in lstm_faster}["gpt_vs_lstm_per_second"] == "LSTM"
    assert {c["id"]: c.get("winner") for c in lstm_faster}["gpt_vs_lstm_per_epoch"] == "LSTM"
    broken = {  # one wrong number each: exactly that conclusion fails
        "adaptive_beats_sgd": {4: ([2500, 2000, 250], 10.0, 1000.0)},  # momentum within 2x of Adam at the end
        "momentum_beats_sgd": {8: ([3000, 2700, 2300], 10.0, 1000.0)},
        "adamw_close_to_adam": {2: ([300, 200, 170], 10.0, 1000.0)},
        "deeper_costs_time": {11: ([260, 160, 170], 9.0, 1100.0)},
        "deeper_costs_memory": {12: ([270, 170, 180], 15.0, 1100.0)},
        "gpt_overfits": {5: ([250, 150, 140], 10.0, 1000.0), 6: ([250, 150, 140], 10.0, 1000.0)},
    }
    for key, change in broken.items():
        holds = {c["id"]: c["holds"] for c in ga.conclusions(_conclusion_fakes(change))}
        assert [k for k, v in holds.items() if not v] == [key], key
    assert ga.conclusions({n: r for n, r in _conclusion_fakes().items() if n != 12}) == []  # needs all 12


def test_record_laptop_runs_with_conclusions(tmp_path):
    results = _conclusion_fakes()
    for r in results.values():
        r.config = r.config.replace(scale="laptop")
        r.setup_seconds = 2.0
    path = ga.record_results(results, tmp_path / "gpt_attention-laptop.json", note="laptop")
    data = json.loads(path.read_text())
    assert data["scale"] == "laptop" and data["scale_settings"] == ga.LAPTOP and data["complete"]
    summed = sum(2.0 + r.total_seconds for r in results.values())
    assert data["runs_seconds"] == pytest.approx(summed) and data["total_minutes"] == pytest.approx(summed / 60)
    assert [c["id"] for c in data["conclusions"]] == [c["id"] for c in ga.conclusions(results)]
    assert all(c["holds"] for c in data["conclusions"])
    elapsed = json.loads(ga.record_results(results, tmp_path / "b.json", elapsed_seconds=600).read_text())
    assert elapsed["total_minutes"] == 10 and elapsed["runs_seconds"] == pytest.approx(summed)
    mixed = {**results, 1: fake_result(1, [3.0, 2.0])}  # a full-scale run among laptop ones
    with pytest.raises(ValueError, match="different scales"):
        ga.record_results(mixed, tmp_path / "c.json", allow_partial=True)


def test_conclusions_use_cpu_time_when_it_was_logged():
    """On a shared CPU the wall clock is noisy; CPU seconds of each run's process decide instead."""
    results = _conclusion_fakes({12: ([270, 170, 180], 9.0, 1200.0)})  # wall clock: 4 layers look fastest
    assert {c["id"]: c["holds"] for c in ga.conclusions(results)}["deeper_costs_time"] is False
    cpu = {2: 5.0, 9: 6.0, 10: 8.0, 6: 5.0, 11: 6.0, 12: 8.0}
    for n, r in results.items():
        r.history["epoch_cpu_seconds"] = cpu.get(n, 4.0 if n == 1 else 5.0)
        r.history["device"] = "cpu"
    got = {c["id"]: c for c in ga.conclusions(results)}
    assert got["deeper_costs_time"]["holds"] and got["deeper_costs_time"]["clock"] == "CPU seconds"
    assert results[12].cpu_seconds_per_epoch == 8.0
    # per second of CPU time the LSTM (4 s/epoch) finishes all 3 epochs (best 150) within GPT's 15 s
    assert got["gpt_vs_lstm_per_second"]["winner"] == "LSTM" and got["gpt_vs_lstm_per_second"]["clock"] == "CPU seconds"
