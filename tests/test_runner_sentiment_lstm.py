"""Tests of the sentiment_lstm runner (course_lib.runners.sentiment_lstm) at the fast scale, on the CPU.

Runs use the reference pieces of course_solutions, with the collate function wrapped in a counting
adapter (made by one factory, so every adapter has the same code and the same code fingerprint):
it shows whether a run trained, read a finished run back, or resumed. The evaluation and the
prediction are compared with independent per-review computations; the conclusions, tables and
record with synthetic histories.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from course_lib import imdb
from course_lib.runners import sentiment_lstm as sl
from course_lib.runners.sentiment_lstm import AUTOGRADE, FAST, FULL, LAPTOP, RUNS, Config, RunResult, config_for
from course_solutions import layers

HISTORY = ["epoch", "lr", "train_loss", "train_acc", "valid_loss", "valid_acc", "train_reviews", "train_seconds", "cpu_seconds",
           "valid_seconds", "seconds", "reviews_per_s", "finished_at"]
TRAIN_BATCHES = math.ceil(imdb.SUBSET_COUNTS["train"] / FAST["batch_size"])  # 44
VALID_BATCHES = math.ceil(imdb.SUBSET_COUNTS["valid"] / FAST["batch_size"])  # 7
TEST_BATCHES = math.ceil(imdb.SUBSET_COUNTS["test"] / FAST["batch_size"])  # 13
#: A smaller run with dropout between two layers (dropout draws random numbers: resuming must restore them).
SMALL = Config("small", n_layers=2, dropout_rate=0.3, train_reviews=256, valid_reviews=64, test_reviews=64)
SMALL_TRAIN_BATCHES = 256 // FAST["batch_size"]  # 8
SMALL_EVAL_BATCHES = 64 // FAST["batch_size"]  # 2, validation and test each


class Interrupted(Exception):
    """Raised by a counting collate to stop a run midway (like a Ctrl-C or a lost session)."""


def counting_collate(fail_after: int | None = None):
    """The reference collate, counting its calls (``collate.count()``) and raising Interrupted on
    call ``fail_after + 1``. Every collate this factory makes has the same code fingerprint."""
    calls = [0]

    def collate(batch, pad_index):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise Interrupted(f"stopped at call {calls[0]}")
        return layers.collate_reviews(batch, pad_index)

    collate.count = lambda: calls[0]
    return collate


def fast_run(name, log_dir, collate, **kwargs):
    return sl.run(name, scale="fast", log_dir=log_dir, progress=False, log=None, collate=collate, **kwargs)


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_SCALE", raising=False)
    monkeypatch.delenv("COURSE_AUTOGRADE", raising=False)


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """One fast LSTM run (in the CLI's folder layout), and the counting collate that trained it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DEVICE", "cpu")
        mp.delenv("COURSE_AUTOGRADE", raising=False)
        root = tmp_path_factory.mktemp("sl")
        collate = counting_collate()
        result = fast_run("LSTM", root / "fast" / "lstm", collate)
    return result, collate, root


# --------------------------------------------------------------------------------------------------
# settings


def test_config_for_every_scale():
    full = config_for("LSTM", "full")
    assert full == dataclasses.replace(RUNS["LSTM"], scale="full")
    assert {k: getattr(full, k) for k in FULL} == FULL
    # the handout's starter: HyperParams and ConstantWithWarmup(200), with embeddings of 64 and Adam
    assert (full.max_length, full.batch_size, full.embedding_dim, full.hidden_dim, full.output_dim) == (256, 96, 64, 100, 2)
    assert (full.n_layers, full.dropout_rate, full.epochs, full.seed, full.min_freq) == (1, 0.0, 5, 2, 5)
    assert (full.optimizer, full.lr, full.warmup_steps) == ("adam", 0.002, 200)
    starter = Config(**{**FULL, **sl.STARTER})
    assert (starter.embedding_dim, starter.optimizer, starter.lr, starter.momentum) == (1, "sgd", 0.01, 0.9)
    assert Config() == Config(**FULL), "the Config defaults are the full settings"
    assert not full.subset and (full.train_reviews, full.valid_reviews, full.test_reviews) == (None, None, None)
    laptop = config_for("LSTM", "laptop")
    assert dataclasses.replace(laptop, **{k: getattr(full, k) for k in (*LAPTOP, "scale")}) == full
    assert all(getattr(laptop, k) == v for k, v in LAPTOP.items()) and laptop.label == "LSTM [laptop]"
    assert not laptop.subset and laptop.test_reviews is None, "the laptop scale tests on the whole test split"
    fast = config_for("LSTM", "fast")
    assert all(getattr(fast, k) == v for k, v in FAST.items()) and fast.subset and fast.epochs == 2
    bi = config_for("BiLSTM", "laptop")
    assert bi.bidirectional and dataclasses.replace(bi, name="LSTM", bidirectional=False) == laptop
    assert config_for(full, "laptop") == laptop  # a Config is resolved too


def test_config_for_default_scale_autograde_and_errors(monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "laptop")
    assert config_for("LSTM").scale == "laptop"
    monkeypatch.setenv("COURSE_SCALE", "fast")
    assert config_for("LSTM") == config_for("LSTM", "fast")
    monkeypatch.setenv("COURSE_AUTOGRADE", "1")
    graded = config_for("LSTM")
    assert all(getattr(graded, k) == v for k, v in AUTOGRADE.items()) and graded.epochs == 1
    laptop = config_for("LSTM", "laptop")  # only the fast scale shrinks for an autograder
    assert (laptop.epochs, laptop.train_reviews, laptop.subset) == (FULL["epochs"], None, False)
    with pytest.raises(ValueError, match="Unknown run 'GRU'"):
        config_for("GRU", "full")
    with pytest.raises(ValueError, match="Unknown scale"):
        config_for("LSTM", "huge")


def test_warmup_schedule():
    full = config_for("LSTM", "full")
    assert [full.lr_at(s) for s in (1, 2, 100, 200, 201, 5000)] == pytest.approx(
        [0.002 / 200, 0.004 / 200, 0.001, 0.002, 0.002, 0.002])
    assert config_for("LSTM", "fast").lr_at(1) == FAST["lr"]  # no warmup


# --------------------------------------------------------------------------------------------------
# a run, read back, resumed


def test_fast_run_history(lstm_run):
    result, collate, root = lstm_run
    h = result.history
    assert set(HISTORY) <= set(h.columns), f"missing columns {set(HISTORY) - set(h.columns)}"
    assert h["epoch"].tolist() == [1, 2] and result.config == config_for("LSTM", "fast")
    assert (h["train_reviews"] == imdb.SUBSET_COUNTS["train"]).all()
    assert collate.count() == VALID_BATCHES + 2 * TRAIN_BATCHES + TEST_BATCHES
    assert h["train_loss"].iloc[1] < h["train_loss"].iloc[0], "it learns something"
    assert h[["train_acc", "valid_acc"]].stack().between(0, 1).all() and 0 <= result.test_acc <= 1
    assert result.best_epoch == int(h.loc[h["valid_loss"].idxmin(), "epoch"])
    assert sum(map(sum, result.confusion)) == imdb.SUBSET_COUNTS["test"]
    assert result.test_acc == pytest.approx((result.confusion[0][0] + result.confusion[1][1]) / 400)
    x_train, *_ = imdb.load_imdb(subset=True)
    vocab = layers.build_review_vocab(x_train, FAST["min_freq"])
    assert result.vocabulary_size == len(vocab) and result.vocab == vocab
    model = layers.SentimentLSTM(len(vocab), FAST["embedding_dim"], FAST["hidden_dim"], 2, 1, 0.0, 0)
    assert result.num_parameters == sum(p.numel() for p in model.parameters())
    assert result.reviews_per_s > 0 and result.seconds > 0
    for name in ("meta.json", "epochs.jsonl", "checkpoint.pt", "best.pt", "test.json"):
        assert (result.log_dir / name).is_file(), name
    meta = json.loads((result.log_dir / "meta.json").read_text())
    assert meta["vocabulary_size"] == len(vocab) and (meta["train_reviews"], meta["test_reviews"]) == (1400, 400)
    ex = result.example
    assert ex["actual"] == imdb.load_imdb(subset=True)[5][0] and ex["predicted"] in imdb.LABELS
    assert 0.5 <= ex["probability"] <= 1


def test_finished_run_is_read_back_without_training(lstm_run):
    result, _, root = lstm_run
    collate = counting_collate()
    again = fast_run("LSTM", root / "fast" / "lstm", collate)
    assert collate.count() == 0, "a finished run was trained (or tested) again"
    pd.testing.assert_frame_equal(again.history[["epoch", "train_loss", "valid_loss", "valid_acc"]],
                                  result.history[["epoch", "train_loss", "valid_loss", "valid_acc"]])
    assert (again.test_acc, again.confusion) == (result.test_acc, result.confusion)
    assert again.example == result.example  # the best weights were loaded back


def test_interrupted_run_resumes_to_the_same_history(tmp_path):
    whole = fast_run(SMALL, tmp_path / "whole", counting_collate())
    k = 3
    with pytest.raises(Interrupted):
        fast_run(SMALL, tmp_path / "cut", counting_collate(fail_after=SMALL_EVAL_BATCHES + SMALL_TRAIN_BATCHES + k))
    assert len((tmp_path / "cut" / "epochs.jsonl").read_text().splitlines()) == 1
    collate = counting_collate()
    resumed = fast_run(SMALL, tmp_path / "cut", collate)
    assert collate.count() == SMALL_EVAL_BATCHES + SMALL_TRAIN_BATCHES + SMALL_EVAL_BATCHES, \
        "only epoch 2 (and the test) run again"
    cols = ["epoch", "lr", "train_loss", "train_acc", "valid_loss", "valid_acc", "train_reviews"]
    pd.testing.assert_frame_equal(resumed.history[cols], whole.history[cols], rtol=1e-9, atol=0)
    assert resumed.test_loss == pytest.approx(whole.test_loss, rel=1e-9) and resumed.confusion == whole.confusion


def test_changed_code_moves_the_log_aside(tmp_path):
    """Only the start of each run is needed: the log is opened (and moved aside) before training."""
    log_dir = tmp_path / "small"

    def attempt(collate, **kwargs):
        with pytest.raises(Interrupted):
            fast_run(SMALL, log_dir, collate, **kwargs)
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("small.replaced-"))

    assert attempt(counting_collate(fail_after=2)) == []
    assert (log_dir / "meta.json").is_file()
    assert attempt(counting_collate(fail_after=0)) == [], "the same code must not move the log aside"

    def other_collate(batch, pad_index):
        raise Interrupted("other code")

    assert len(attempt(other_collate)) == 1, "a collate with other code must move the log aside"

    class OtherLSTM(layers.SentimentLSTM):
        def forward(self, ids, length):
            return super().forward(ids, length)

    assert len(attempt(other_collate, model_class=OtherLSTM)) == 2, "other model code: moved aside"
    assert len(attempt(other_collate, model_class=OtherLSTM)) == 2


def test_bad_vocabulary_or_collate_raise_value_errors(tmp_path):
    def swapped(texts, min_freq):
        vocab = layers.build_review_vocab(texts, min_freq)
        vocab[imdb.PAD_TOKEN], vocab[imdb.UNK_TOKEN] = 1, 0
        return vocab

    with pytest.raises(ValueError, match="'<pad>' to 0"):
        fast_run(SMALL, tmp_path / "a", counting_collate(), build_vocab=swapped)
    with pytest.raises(ValueError, match="without gaps"):
        fast_run(SMALL, tmp_path / "b", counting_collate(),
                 build_vocab=lambda texts, m: {**layers.build_review_vocab(texts, m), "zzz": 10**6})
    with pytest.raises(ValueError, match="'ids', 'length' and 'label'"):
        fast_run(SMALL, tmp_path / "c", lambda batch, pad_index: layers.collate_reviews(batch, pad_index)["ids"])


# --------------------------------------------------------------------------------------------------
# evaluation and prediction


def test_evaluate_equals_an_independent_per_review_computation():
    torch.manual_seed(0)
    items = [{"ids": torch.randint(1, 40, (n,)).tolist(), "length": n, "label": n % 2} for n in (5, 9, 2, 7, 3, 8, 1)]
    model = layers.SentimentLSTM(40, 6, 5, 2, 2, 0.5, 0, True).double()
    batches = [layers.collate_reviews(items[i : i + 3], 0) for i in range(0, len(items), 3)]
    model.train()
    got = sl.evaluate(model, batches, torch.device("cpu"))
    assert not model.training
    nll, confusion = 0.0, [[0, 0], [0, 0]]
    with torch.no_grad():
        for item in items:
            logits = model(torch.tensor([item["ids"]]), torch.tensor([item["length"]]))[0]
            nll -= torch.log_softmax(logits, -1)[item["label"]].item()
            confusion[item["label"]][int(logits.argmax())] += 1
    assert got["loss"] == pytest.approx(nll / len(items), rel=1e-10)
    assert got["confusion"] == confusion and got["reviews"] == len(items)
    assert got["acc"] == pytest.approx((confusion[0][0] + confusion[1][1]) / len(items))
    # not the mean of the per-batch means (batches of 3, 3, 1)
    means = [torch.nn.functional.cross_entropy(model(b["ids"], b["length"]), b["label"]).item() for b in batches]
    assert abs(got["loss"] - sum(means) / len(means)) > 1e-6


def test_predict_gives_the_label_and_its_softmax_probability():
    torch.manual_seed(0)
    vocab = layers.build_review_vocab(["good good film", "bad bad film", "good bad"], 1)
    model = layers.SentimentLSTM(len(vocab), 4, 3, 2, 1, 0.0, 0).double()
    for text in ("Good film!", "bad, BAD", "good bad film film"):
        label, p = sl.predict(model, vocab, text, tokenize=layers.tokenize_review)
        ids = layers.tokenize_review(vocab, text)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([ids]), torch.tensor([len(ids)])), -1)[0]
        assert (label, p) == (imdb.LABELS[int(probs.argmax())], pytest.approx(float(probs.max()), rel=1e-12))
    cut = sl.predict(model, vocab, "good bad film film", tokenize=layers.tokenize_review, max_length=2)
    assert cut == sl.predict(model, vocab, "good bad", tokenize=layers.tokenize_review)
    assert sl.predict(model, vocab, "Good film!") == sl.predict(model, vocab, "Good film!", tokenize=layers.tokenize_review)
    with pytest.raises(ValueError, match="no words"):
        sl.predict(model, vocab, "?!", tokenize=layers.tokenize_review)


def test_result_predict_uses_the_runs_pieces(lstm_run):
    result, _, _ = lstm_run
    text = "An excellent, touching film: the best acting I have seen this year."
    assert result.predict(text) == sl.predict(result.model, result.vocab, text, tokenize=layers.tokenize_review,
                                              max_length=FAST["max_length"])


# --------------------------------------------------------------------------------------------------
# conclusions, tables, plots, record


def recorded(train_loss, valid_loss, valid_acc, test_acc, scale="laptop", predicted="positive"):
    n = len(train_loss)
    history = [{"epoch": e + 1, "train_loss": train_loss[e], "train_acc": 0.5 + 0.1 * e, "valid_loss": valid_loss[e],
                "valid_acc": valid_acc[e], "train_reviews": 100, "train_seconds": 1.0, "seconds": 2.0}
               for e in range(n)]
    return {"config": {"scale": scale}, "history": history, "test_acc": test_acc,
            "example": {"actual": "positive", "predicted": predicted, "probability": 0.9}}


# the handout's run: valid loss lowest at epoch 4, up at epoch 5; test 0.873 vs validation 0.873
HANDOUT = dict(train_loss=[0.689, 0.558, 0.314, 0.220, 0.172], valid_loss=[0.676, 0.389, 0.363, 0.349, 0.401],
               valid_acc=[0.563, 0.835, 0.850, 0.873, 0.862], test_acc=0.873)
CHECKS = {"reaches the target", "training loss falls every epoch", "validation loss turns up",
          "test close to validation", "example predicted correctly"}


def failed(**kwargs):
    out = sl.conclusions(recorded(**{**HANDOUT, **kwargs}))
    assert set(out["checks"]) == CHECKS or kwargs.get("scale") == "fast"
    return {k for k, v in out["checks"].items() if not v}


def test_conclusions_true_case():
    out = sl.conclusions(recorded(**HANDOUT, scale="full"))
    assert all(out["checks"].values()) and set(out["checks"]) == CHECKS
    assert (out["best_epoch"], out["best_valid_acc"], out["target"]) == (4, 0.873, 0.873)
    assert failed() == set()  # laptop target 0.80


def test_conclusions_false_cases():
    assert failed(test_acc=0.79) == {"reaches the target", "test close to validation"}
    assert sl.conclusions(recorded(**{**HANDOUT, "test_acc": 0.872}, scale="full"))["checks"]["reaches the target"] is False
    assert failed(train_loss=[0.689, 0.558, 0.314, 0.320, 0.172]) == {"training loss falls every epoch"}
    assert failed(valid_loss=[0.676, 0.389, 0.363, 0.349, 0.340]) == {"validation loss turns up"}
    assert failed(test_acc=0.90) == {"test close to validation"}
    assert failed(predicted="negative") == {"example predicted correctly"}
    fast = sl.conclusions(recorded(**HANDOUT, scale="fast"))
    assert "reaches the target" not in fast["checks"] and fast["target"] is None


def test_conclusions_of_a_run_result(lstm_run):
    result, _, _ = lstm_run
    as_dict = {"config": dataclasses.asdict(result.config), "history": result.history.to_dict("records"),
               "test_acc": result.test_acc, "example": result.example}
    assert sl.conclusions(result) == sl.conclusions(as_dict)


def test_tables_and_plots(lstm_run):
    import matplotlib.pyplot as plt

    result, _, _ = lstm_run
    table = sl.history_table(result)
    assert table.index.tolist() == [1, 2] and table["validation accuracy"].tolist() == result.history["valid_acc"].tolist()
    confusion = sl.confusion_table(result)
    assert confusion.loc["actual positive", "predicted negative"] == result.confusion[1][0]
    assert confusion.to_numpy().sum() == 400
    summary = sl.results_table({"LSTM": result})
    assert summary.loc["LSTM", "Test accuracy"] == result.test_acc
    assert summary.loc["LSTM", "Best epoch"] == result.best_epoch
    fig = sl.plot_history(result)
    assert [ax.get_title() for ax in fig.axes] == ["LSTM: cross-entropy", "LSTM: accuracy"]
    plt.close(fig)
    fig = sl.plot_confusion(result)
    assert "test accuracy" in fig.axes[0].get_title()
    plt.close(fig)


def test_record_writes_json_with_conclusions(lstm_run, tmp_path):
    result, _, _ = lstm_run
    payload = sl.record({"LSTM": result}, tmp_path / "rec.json")
    written = json.loads((tmp_path / "rec.json").read_text())
    assert written == json.loads(json.dumps(payload))
    assert (written["assignment"], written["notebook"], written["scale"]) == ("sentiment_lstm", "sentiment_and_gpt2",
                                                                              "fast")
    run = written["runs"]["LSTM"]
    assert run["test_acc"] == result.test_acc and run["confusion"] == result.confusion
    assert [row["valid_loss"] for row in run["history"]] == result.history["valid_loss"].tolist()
    assert run["conclusions"] == json.loads(json.dumps(sl.conclusions(result)))
    assert written["total_minutes"] == pytest.approx(result.seconds / 60)
    with pytest.raises(ValueError, match="at least one run"):
        sl.record({}, tmp_path / "none.json")


# --------------------------------------------------------------------------------------------------
# command line


def test_cli_list(capsys):
    assert sl.main(["--list", "--scale", "laptop"]) == {}
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Config(")]
    assert len(lines) == 2 and all("scale='laptop'" in line for line in lines)


def test_cli_trains_reads_back_predicts_and_records(tmp_path, capsys):
    """The command line's reference run equals the fixture's counting-collate run (same computation)."""
    first = sl.main(["--run", "LSTM", "--fast", "--log-dir", str(tmp_path), "--no-progress"])["LSTM"]
    assert "LSTM [fast] epoch 2/2" in capsys.readouterr().out
    assert (tmp_path / "fast" / "lstm" / "test.json").is_file()
    results = sl.main(["--run", "LSTM", "--fast", "--log-dir", str(tmp_path), "--no-progress",
                       "--review", "Loved it.", "--record", str(tmp_path / "rec.json")])
    result = results["LSTM"]
    assert list(results) == ["LSTM"] and result.test_acc == first.test_acc
    out = capsys.readouterr().out
    assert "epoch" not in out.split("best validation loss")[0], "read back: no epoch was trained"
    label, p = result.predict("Loved it.")
    assert f"LSTM: {label} ({p:.4f}): Loved it." in out
    assert json.loads((tmp_path / "rec.json").read_text())["runs"]["LSTM"]["test_acc"] == result.test_acc
    with pytest.raises(ValueError, match="Unknown run"):
        sl.main(["--run", "RNN", "--fast", "--log-dir", str(tmp_path), "--no-progress"])


def test_run_result_without_a_history_row_is_not_made():
    """RunResult's best epoch is the lowest validation loss, not the highest accuracy."""
    h = pd.DataFrame({"epoch": [1, 2, 3], "valid_loss": [0.5, 0.4, 0.45], "valid_acc": [0.7, 0.8, 0.85],
                      "train_reviews": [10] * 3, "train_seconds": [1.0] * 3, "seconds": [2.0] * 3})
    r = RunResult(config=config_for("LSTM", "fast"), history=h, test_loss=0.4, test_acc=0.8,
                  confusion=[[4, 1], [1, 4]], num_parameters=1, vocabulary_size=2, example={})
    assert (r.best_epoch, r.best_valid_loss, r.best_valid_acc) == (2, 0.4, 0.8)
    assert r.seconds == 6.0 and r.reviews_per_s == 10.0
