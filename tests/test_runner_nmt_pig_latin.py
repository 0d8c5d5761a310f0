"""Tests of the nmt_pig_latin runner (course_lib.runners.nmt_pig_latin) at the fast scale, on the CPU.

Runs use the reference models and functions of course_solutions.nmt, the decoder-only loss wrapped in
counting adapters (made by one factory, so every adapter has the same code fingerprint): they show
whether a run trained, read a finished run back, or resumed. Losses, translations and exact match
are compared with independent computations (one word at a time, straight from the model); the
conclusions, tables and record with synthetic histories.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from course_lib import pig_latin as pl
from course_lib.runners import nmt_pig_latin as nmt
from course_lib.runners.nmt_pig_latin import FAST, LAPTOP, RUNS, RunResult, config_for
from course_solutions import nmt as ref

HISTORY = ["epoch", "lr", "steps", "train_loss", "val_loss", "train_loss_tokens", "tokens", "tokens_seen",
           "epoch_fraction", "train_seconds", "val_seconds", "seconds", "cpu_seconds", "tokens_per_s", "finished_at"]


class Interrupted(Exception):
    """Raised by a counting loss to stop a run midway (like a Ctrl-C or a lost session)."""


def counting_loss(fail_after: int | None = None):
    """The reference decoder_only_loss, counting its calls (``loss.count()``) and raising Interrupted on
    call ``fail_after + 1``. Every loss this factory makes has the same code fingerprint."""
    calls = [0]

    def loss(logits, targets, loss_mask):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise Interrupted(f"stopped at call {calls[0]}")
        return ref.decoder_only_loss(logits, targets, loss_mask)

    loss.count = lambda: calls[0]
    return loss


def fast_run(name, log_dir, loss=None, **kwargs):
    return nmt.run(name, scale="fast", log_dir=log_dir, progress=False, log=None, decoder_only_loss=loss, **kwargs)


def n_batches(pairs, batch_size=64):
    return sum(math.ceil(len(g) / batch_size) for g in pl.length_groups(pairs).values())


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_SCALE", raising=False)


@pytest.fixture(scope="module")
def fast_data():
    train, val = pl.split_pairs(pl.load_pairs("large"))
    return train[: FAST["train_pairs"]], val[: FAST["val_pairs"]], pl.held_out_pairs(FAST["held_out"])


@pytest.fixture(scope="module")
def decoder_run(tmp_path_factory):
    """One fast decoder-only run, and the counting loss that trained it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DEVICE", "cpu")
        log_dir = tmp_path_factory.mktemp("nmt") / "decoder"
        loss = counting_loss()
        result = fast_run(nmt.DECODER_ONLY_RUN, log_dir, loss)
    return result, loss, log_dir


@pytest.fixture(scope="module")
def encdec_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DEVICE", "cpu")
        log_dir = tmp_path_factory.mktemp("nmt") / "encdec"
        result = fast_run("enc-dec H32 small", log_dir)
    return result, log_dir


# --------------------------------------------------------------------------------------------------
# settings


def test_config_for_every_scale():
    assert list(RUNS) == [*nmt.ENCODER_DECODER_RUNS, *nmt.PARAMETER_RUNS]
    assert nmt.DECODER_ONLY_RUN in nmt.PARAMETER_RUNS
    shapes = {"enc-dec H16 small": ("encoder-decoder", "small", 16, 1), "enc-dec H32 small": ("encoder-decoder", "small", 32, 1),
              "enc-dec H16 large": ("encoder-decoder", "large", 16, 1), "enc-dec H32 large": ("encoder-decoder", "large", 32, 1),
              "decoder H32 1 head": ("decoder-only", "large", 32, 1), "decoder H32 2 heads": ("decoder-only", "large", 32, 2),
              "decoder H32 4 heads": ("decoder-only", "large", 32, 4), "decoder H64 1 head": ("decoder-only", "large", 64, 1),
              "decoder H128 1 head": ("decoder-only", "large", 128, 1)}
    for name, base in RUNS.items():
        full = config_for(name, "full")
        assert full == dataclasses.replace(base, scale="full")
        assert (full.kind, full.dataset, full.hidden_size, full.num_heads) == shapes[name]
        # the handout's settings
        assert (full.lr, full.lr_decay, full.batch_size, full.epochs, full.num_layers) == (5e-4, 0.99, 64, 100, 3)
        assert (full.train_pairs, full.val_pairs, full.held_out) == (None, None, pl.HELD_OUT_SIZE)
        laptop = config_for(name, "laptop")
        assert all(getattr(laptop, k) == v for k, v in LAPTOP.items())
        assert dataclasses.replace(laptop, **{k: getattr(full, k) for k in (*LAPTOP, "scale")}) == full
        assert laptop.label == f"{name} [laptop]" and (laptop.train_pairs, laptop.val_pairs) == (None, None)
        fast = config_for(name, "fast")
        assert all(getattr(fast, k) == v for k, v in FAST.items()) and fast.epochs == 2
        assert dataclasses.replace(fast, **{k: getattr(full, k) for k in (*FAST, "scale")}) == full
        assert config_for(full, "laptop") == laptop  # a Config is resolved too


def test_config_for_default_scale_and_errors(monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "laptop")
    assert config_for("enc-dec H16 small").scale == "laptop"
    monkeypatch.setenv("COURSE_SCALE", "fast")
    assert config_for("enc-dec H16 small").scale == "fast"
    with pytest.raises(ValueError, match="Unknown run 'GRU'"):
        config_for("GRU", "full")
    with pytest.raises(ValueError, match="Unknown scale"):
        config_for("enc-dec H16 small", "huge")


def test_learning_rate_decays_before_every_epoch():
    c = RUNS["enc-dec H32 large"]
    assert [c.lr_at(e) for e in (1, 2, 100)] == pytest.approx([5e-4 * 0.99, 5e-4 * 0.99 ** 2, 5e-4 * 0.99 ** 100])


# --------------------------------------------------------------------------------------------------
# batches


def test_encoder_decoder_batches(fast_data):
    train, _, _ = fast_data
    vocab = pl.build_vocab(pl.load_pairs("large"))
    batches = nmt.make_batches(train, vocab, 64)
    assert len(batches) == n_batches(train)
    seen = []
    for b in batches:
        src, inputs, targets = b["src"], b["inputs"], b["targets"]
        assert (src[:, -1] == vocab.eos).all() and (targets[:, -1] == vocab.eos).all()
        assert (inputs[:, 0] == vocab.sos).all() and torch.equal(inputs[:, 1:], targets[:, :-1])
        assert b["mask"] is None and b["n_loss"] == targets.numel() and b["n_tokens"] == src.numel() + inputs.numel()
        seen += [(vocab.decode(s), vocab.decode(t)) for s, t in zip(src, targets, strict=True)]
    assert sorted(seen) == sorted(train)


def test_decoder_only_batches(fast_data):
    train, _, _ = fast_data
    vocab = pl.build_vocab(pl.load_pairs("large"), eop=True)
    batches = nmt.make_batches(train, vocab, 64, decoder_only_example=ref.decoder_only_example)
    for b in batches:
        assert "src" not in b and b["inputs"].shape == b["targets"].shape == b["mask"].shape
        assert b["n_loss"] == int(b["mask"].sum()) and b["n_tokens"] == b["inputs"].numel()
        # the loss covers the target characters and the final EOS: target length + 1 per row
        row = b["targets"][0]
        target_len = len(vocab.decode(row[b["mask"][0]]))
        assert int(b["mask"][0].sum()) == target_len + 1


# --------------------------------------------------------------------------------------------------
# independent computations


def nll_one_by_one(model, pairs, vocab, decoder_only):
    """Mean cross-entropy per target token, one pair at a time, straight from the model."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for s, t in pairs:
            target = torch.tensor([vocab.encode(t) + [vocab.eos]])
            if decoder_only:
                seq = torch.tensor([[vocab.sos, *vocab.encode(s), vocab.eop, *vocab.encode(t)]])
                logits = model(seq)[:, len(s) + 1:]
            else:
                src = torch.tensor([vocab.encode(s) + [vocab.eos]])
                inputs = torch.tensor([[vocab.sos, *vocab.encode(t)]])
                logits = model(src, inputs)
            total += F.cross_entropy(logits[0], target[0], reduction="sum").item()
            count += target.numel()
    return total / count


def greedy_one(model, word, vocab, decoder_only):
    """Greedy decoding of one word, unbatched (an independent reading of the handout's procedure)."""
    with torch.no_grad():
        if decoder_only:
            return ref.greedy_translate(model, word, vocab)
        annotations, _ = model.encoder(torch.tensor([vocab.encode(word) + [vocab.eos]]))
        seq, out = [vocab.sos], []
        for _ in range(len(word) + 10):
            logits, _ = model.decoder(torch.tensor([seq]), annotations)
            nxt = int(logits[0, -1].argmax())
            if nxt == vocab.eos:
                break
            out.append(vocab.chars[nxt])
            seq.append(nxt)
        return "".join(out)


# --------------------------------------------------------------------------------------------------
# a run, read back, resumed


@pytest.mark.parametrize("which", ["decoder", "encdec"])
def test_fast_run_history_and_evaluation(which, decoder_run, encdec_run, fast_data):
    result = decoder_run[0] if which == "decoder" else encdec_run[0]
    log_dir = decoder_run[2] if which == "decoder" else encdec_run[1]
    decoder_only = which == "decoder"
    train, val, held_out = fast_data
    if not decoder_only:  # the small data set
        t, v = pl.split_pairs(pl.load_pairs("small"))
        train, val = t[: FAST["train_pairs"]], v[: FAST["val_pairs"]]
    h = result.history
    assert set(HISTORY) <= set(h.columns), f"missing columns {set(HISTORY) - set(h.columns)}"
    assert h["epoch"].tolist() == [1, 2]
    assert h["lr"].tolist() == pytest.approx([result.config.lr_at(1), result.config.lr_at(2)])
    per_epoch = n_batches(train)
    assert h["steps"].tolist() == [per_epoch, 2 * per_epoch]
    assert h["epoch_fraction"].tolist() == [1.0, 1.0] and h["tokens_seen"].tolist() == [h["tokens"][0], 2 * h["tokens"][0]]
    expected_tokens = sum(len(s) + len(t) + 2 for s, t in train) if decoder_only else sum(
        len(s) + 1 + len(t) + 1 for s, t in train)
    assert (h["tokens"] == expected_tokens).all()
    assert (h["train_loss_tokens"] == sum(len(t) + 1 for _, t in train)).all()
    assert h["val_loss"].iloc[-1] < h["val_loss"].iloc[0] < math.log(30) + 0.5  # it learns something
    # the model holds the best epoch's weights: its validation loss, recomputed one pair at a time
    vocab = result.vocab
    assert vocab.size == (30 if decoder_only else 29)
    assert result.best_val_loss == pytest.approx(nll_one_by_one(result.model, val, vocab, decoder_only), rel=1e-5)
    assert result.held_out_loss == pytest.approx(nll_one_by_one(result.model, held_out, vocab, decoder_only), rel=1e-5)
    # exact match and the sample translations, from unbatched greedy decoding
    words = [s for s, _ in held_out]
    got = [greedy_one(result.model, w, vocab, decoder_only) for w in words]
    assert result.exact_match == sum(g == t for g, (_, t) in zip(got, held_out, strict=True)) / len(held_out)
    assert result.translator.many(words) == got
    assert result.samples == {w: greedy_one(result.model, w, vocab, decoder_only) for w in nmt.SAMPLE_SENTENCE.split()}
    assert result.translate(nmt.SAMPLE_SENTENCE) == " ".join(result.samples[w] for w in nmt.SAMPLE_SENTENCE.split())
    assert result.num_parameters == sum(p.numel() for p in result.model.parameters())
    if decoder_only:
        c = result.config
        assert result.num_parameters == ref.calc_parameters_decoder(30, c.hidden_size, c.num_layers, c.num_heads)
    for name in ("meta.json", "epochs.jsonl", "checkpoint.pt", "best.pt"):
        assert (log_dir / name).is_file(), name
    meta = json.loads((log_dir / "meta.json").read_text())
    assert meta["train_pairs"] == len(train) and meta["vocabulary_size"] == vocab.size


def test_finished_run_is_read_back_without_training(decoder_run):
    result, _, log_dir = decoder_run
    loss = counting_loss()
    again = fast_run(nmt.DECODER_ONLY_RUN, log_dir, loss)
    assert loss.count() == 0, "a finished run was trained again"
    pd.testing.assert_frame_equal(again.history[["epoch", "train_loss", "val_loss"]],
                                  result.history[["epoch", "train_loss", "val_loss"]])
    assert (again.held_out_loss, again.exact_match, again.samples) == (result.held_out_loss, result.exact_match,
                                                                        result.samples)


def test_interrupted_run_resumes_to_the_same_history(decoder_run, fast_data, tmp_path):
    whole = decoder_run[0]
    per_epoch = n_batches(fast_data[0])
    with pytest.raises(Interrupted):
        fast_run(nmt.DECODER_ONLY_RUN, tmp_path / "cut", counting_loss(fail_after=per_epoch + 2))
    assert len((tmp_path / "cut" / "epochs.jsonl").read_text().splitlines()) == 1
    loss = counting_loss()
    resumed = fast_run(nmt.DECODER_ONLY_RUN, tmp_path / "cut", loss)
    assert loss.count() == per_epoch, "only epoch 2 is trained again"
    cols = ["epoch", "lr", "steps", "train_loss", "val_loss", "tokens_seen"]
    pd.testing.assert_frame_equal(resumed.history[cols], whole.history[cols], rtol=1e-9, atol=0)
    assert resumed.held_out_loss == pytest.approx(whole.held_out_loss, rel=1e-9)


def test_changed_code_moves_the_log_aside(tmp_path):
    log_dir = tmp_path / "d"

    def attempt(loss):
        with pytest.raises(Interrupted):
            fast_run("decoder H32 2 heads", log_dir, loss)
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("d.replaced-"))

    assert attempt(counting_loss(fail_after=1)) == []
    assert attempt(counting_loss(fail_after=0)) == [], "the same code must not move the log aside"

    def other_loss(logits, targets, loss_mask):
        raise Interrupted("other code")

    assert len(attempt(other_loss)) == 1, "a loss with other code must move the log aside"


def test_a_run_uses_the_classes_passed(tmp_path):
    made = []

    class Encoder(ref.TransformerEncoder):
        def __init__(self, *args):
            made.append(("encoder", args))
            super().__init__(*args)

    class Decoder(ref.TransformerDecoder):
        def __init__(self, *args):
            made.append(("decoder", args))
            super().__init__(*args)

    result = nmt.run("enc-dec H16 large", scale="fast", log_dir=tmp_path / "r", progress=False, log=None,
                     encoder_class=Encoder, decoder_class=Decoder)
    assert made == [("encoder", (29, 16, 3)), ("decoder", (29, 16, 3))]
    assert isinstance(result.model.encoder, Encoder) and isinstance(result.model.decoder, Decoder)


# --------------------------------------------------------------------------------------------------
# the exports for scaling_laws


def test_train_decoder_only_with_a_token_budget(fast_data):
    train, val, _ = fast_data
    vocab = pl.build_vocab(pl.load_pairs("large"), eop=True)
    per_epoch = sum(len(s) + len(t) + 2 for s, t in train)
    budget = int(1.5 * per_epoch)
    model = nmt.build_decoder_only(32, 3, 2)
    assert sum(p.numel() for p in model.parameters()) == ref.calc_parameters_decoder(30, 32, 3, 2)
    loss = counting_loss()
    h = nmt.train_decoder_only(model, train, val, vocab, max_tokens=budget, decoder_only_loss=loss)
    assert h["epoch"].tolist() == [1, 2] and h["epoch_fraction"].iloc[0] == 1.0 and 0 < h["epoch_fraction"].iloc[1] < 1
    seen = h["tokens_seen"].iloc[-1]
    assert seen >= budget and seen - 64 * 50 < budget  # stops at the batch that reaches the budget
    assert h["tokens_seen"].tolist() == h["tokens"].cumsum().tolist()
    assert loss.count() == h["steps"].iloc[-1]
    assert h["val_loss"].iloc[-1] == pytest.approx(nmt.decoder_only_val_loss(model, val, vocab), rel=1e-9)
    assert h["val_loss"].iloc[-1] == pytest.approx(nll_one_by_one(model, val, vocab, True), rel=1e-5)
    # epochs= alone, and both (whichever ends first)
    h2 = nmt.train_decoder_only(nmt.build_decoder_only(32, 3, 1), train, val, vocab, epochs=1)
    assert h2["tokens_seen"].tolist() == [per_epoch]
    h3 = nmt.train_decoder_only(nmt.build_decoder_only(32, 3, 1), train, val, vocab, epochs=1, max_tokens=10 * per_epoch)
    assert len(h3) == 1
    with pytest.raises(ValueError, match="epochs"):
        nmt.train_decoder_only(model, train, val, vocab)
    with pytest.raises(ValueError, match="EOP"):
        nmt.train_decoder_only(model, train, val, pl.build_vocab(train), epochs=1)


def test_on_batch_sees_the_model_a_shorter_budget_ends_with(fast_data):
    """Evaluating inside one run at a token count gives what a run stopped there (max_tokens) gives."""
    train, val, _ = fast_data
    vocab = pl.build_vocab(pl.load_pairs("large"), eop=True)
    calls, marks = [], {}
    mark = None

    def on_batch(model, tokens_seen):
        nonlocal mark
        assert model.training
        calls.append(tokens_seen)
        if mark is not None and tokens_seen >= mark and mark not in marks:
            marks[mark] = nmt.decoder_only_val_loss(model, val, vocab)

    per_epoch = sum(len(s) + len(t) + 2 for s, t in train)
    mark = per_epoch + 100  # inside the second epoch
    h = nmt.train_decoder_only(nmt.build_decoder_only(32), train, val, vocab, epochs=2, on_batch=on_batch)
    assert len(calls) == h["steps"].iloc[-1] and calls[-1] == h["tokens_seen"].iloc[-1] == 2 * per_epoch
    assert calls == sorted(calls) and calls[n_batches(train) - 1] == per_epoch
    shorter = nmt.build_decoder_only(32)
    h2 = nmt.train_decoder_only(shorter, train, val, vocab, max_tokens=mark)
    assert h2["tokens_seen"].iloc[-1] == min(c for c in calls if c >= mark)
    assert marks[mark] == pytest.approx(h2["val_loss"].iloc[-1], rel=1e-9)


def test_same_seed_same_training(fast_data):
    train, val, _ = fast_data
    vocab = pl.build_vocab(pl.load_pairs("large"), eop=True)
    a = nmt.train_decoder_only(nmt.build_decoder_only(32), train, val, vocab, epochs=1)
    b = nmt.train_decoder_only(nmt.build_decoder_only(32), train, val, vocab, epochs=1)
    assert a["val_loss"].tolist() == b["val_loss"].tolist()


def test_exact_match():
    pairs = [("the", "ethay"), ("air", "airway"), ("working", "orkingway")]
    assert nmt.exact_match(pl.pig_latin, pairs) == 1.0
    assert nmt.exact_match(lambda w: w, pairs) == 0.0
    assert nmt.exact_match(lambda w: pl.pig_latin(w) if w != "air" else "airay", pairs) == pytest.approx(2 / 3)
    assert nmt.translate_sentence(pl.pig_latin, "i went shopping") == "iway entway oppingshay"
    with pytest.raises(ValueError):
        nmt.exact_match(pl.pig_latin, [])


# --------------------------------------------------------------------------------------------------
# conclusions, tables, plots, record (synthetic histories)


def synthetic(losses: dict[str, float], held_out: dict[str, float] | None = None) -> dict:
    """Recorded-style runs whose best validation loss is ``losses[name]``."""
    out = {}
    for name, best in losses.items():
        c = dataclasses.asdict(config_for(name, "fast"))
        hist = [{"epoch": e, "steps": 10 * e, "train_loss": best + 0.5 / e, "val_loss": best + 1 / e - 0.5,
                 "seconds": 1.0} for e in (1, 2)]
        out[name] = {"config": c, "history": hist, "num_parameters": 1000 * c["hidden_size"] * (1 + c["num_heads"]),
                     "held_out_loss": (held_out or losses)[name] + 0.1, "exact_match": max(0.0, 1 - best),
                     "samples": {w: w for w in nmt.SAMPLE_SENTENCE.split()}}
    return out


GOOD = {"enc-dec H16 small": 0.9, "enc-dec H32 small": 0.7, "enc-dec H16 large": 0.5, "enc-dec H32 large": 0.3,
        "decoder H32 1 head": 0.4, "decoder H32 2 heads": 0.35, "decoder H32 4 heads": 0.33,
        "decoder H64 1 head": 0.2, "decoder H128 1 head": 0.1}


def test_conclusions_hold_on_good_runs_and_fail_on_wrong_ones():
    c = nmt.conclusions(synthetic(GOOD))
    assert c["checks"] == {"large beats small (H16)": True, "large beats small (H32)": True,
                           "32 beats 16 (small)": True, "32 beats 16 (large)": True,
                           "more heads improve (H32)": True, "larger hidden size improves (1 head)": True,
                           "hidden size beats heads at matched size": True}
    assert c["runs"]["enc-dec H32 large"]["best_val_loss"] == pytest.approx(0.3)
    d = c["comparisons"]["decoder-only vs encoder-decoder"]
    assert d["val_loss_ratio"] == pytest.approx(0.4 / 0.3) and d["exact_match_difference"] == pytest.approx(-0.1)
    p = c["comparisons"]["parameter efficiency"]
    base_params = 1000 * 32 * 2
    assert p["loss_drop_per_1k_parameters"]["decoder H64 1 head"] == pytest.approx(
        1000 * 0.2 / (1000 * 64 * 2 - base_params))
    assert p["best_by_hidden"] == pytest.approx(0.1) and p["best_by_heads"] == pytest.approx(0.33)
    assert p["matched_size_loss_ratio"] == pytest.approx(0.2 / 0.33)
    # the parameter-efficiency checks: 4 heads no better than 2; width worse than heads at matched size
    wrong = nmt.conclusions(synthetic({**GOOD, "decoder H32 4 heads": 0.36, "decoder H64 1 head": 0.37}))["checks"]
    assert wrong["more heads improve (H32)"] is False and wrong["hidden size beats heads at matched size"] is False
    assert wrong["larger hidden size improves (1 head)"] is True
    wrong = nmt.conclusions(synthetic({**GOOD, "decoder H128 1 head": 0.25}))["checks"]
    assert wrong["larger hidden size improves (1 head)"] is False and wrong["hidden size beats heads at matched size"]
    # small data better than large for H16: that check fails; a held-out loss that disagrees fails too
    wrong = nmt.conclusions(synthetic({**GOOD, "enc-dec H16 small": 0.4}))["checks"]
    assert wrong["large beats small (H16)"] is False and wrong["32 beats 16 (small)"] is False
    assert wrong["large beats small (H32)"] is True
    worse = {**GOOD, "enc-dec H32 large": 0.95}
    for losses, held_out in ((worse, GOOD), (GOOD, worse)):  # either measure disagreeing fails the check
        wrong = nmt.conclusions(synthetic(losses, held_out))["checks"]
        assert wrong["large beats small (H32)"] is False and wrong["32 beats 16 (large)"] is False
        assert wrong["large beats small (H16)"] is True


def test_tables_plots_and_record(decoder_run, encdec_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    results = synthetic(GOOD)
    table = nmt.results_table(results).data
    assert list(table.index) == list(GOOD)
    assert table.loc["enc-dec H32 large", "Lowest validation loss"] == pytest.approx(0.3)
    assert table.loc["decoder H64 1 head", "Held-out exact match"] == pytest.approx(0.8)
    for fn, stem in ((nmt.save_loss_comparison_by_hidden, "hidden"), (nmt.save_loss_comparison_by_dataset, "dataset")):
        fig = fn(results, path=tmp_path / f"{stem}.png")
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000 and len(fig.axes) == 4
    fig = nmt.plot_parameter_efficiency(results)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 5
    real = {nmt.DECODER_ONLY_RUN: decoder_run[0], "enc-dec H32 small": encdec_run[0]}
    words = nmt.SAMPLE_SENTENCE.split()
    frame = nmt.translations_table(real)
    assert frame.loc["rule (pig_latin)", "sentence"] == "ethay airway onditioningcay isway orkingway"
    assert frame.loc[nmt.DECODER_ONLY_RUN, words].tolist() == [decoder_run[0].samples[w] for w in words]
    payload = nmt.record(real, tmp_path / "rec.json", wall_seconds=12.0, cpu_seconds=6.0)
    data = json.loads((tmp_path / "rec.json").read_text())
    assert data == json.loads(json.dumps(payload)) and data["scale"] == "fast" and data["command_cpu_minutes"] == 0.1
    run = data["runs"]["enc-dec H32 small"]
    assert run["best_val_loss"] == pytest.approx(encdec_run[0].best_val_loss)
    assert run["exact_match"] == encdec_run[0].exact_match and run["samples"] == encdec_run[0].samples
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    assert data["total_cpu_minutes"] == pytest.approx(sum(
        r.cpu_seconds + r.eval_cpu_seconds for r in real.values()) / 60)
    assert isinstance(decoder_run[0], RunResult) and data["conclusions"]["checks"] == {}


def test_command_line_list(capsys):
    assert nmt.main(["--list", "--scale", "laptop"]) == {}
    out = capsys.readouterr().out
    assert out.count("Config(") == len(RUNS) and "scale='laptop'" in out
