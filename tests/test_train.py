"""Tests for course_lib.train.fit on a tiny deterministic problem (CPU, seconds)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from course_lib.text import make_char_lm_data, make_loaders
from course_lib.train import HISTORY_COLUMNS, History, evaluate, fit
from course_solutions.layers import RNNLanguageModel, mask_loss

TEXT = "\n".join(["abcabc", "aabbcc", "abc", "cba", "bca", "ccbbaa", "abcab", "ca", "b", "acbacb"] * 3)


@pytest.fixture()
def problem():
    torch.manual_seed(0)
    vocab, train, dev = make_char_lm_data(TEXT, dev_fraction=0.2)
    train_loader, dev_loader = make_loaders(train, dev, 4, pad_id=vocab.pad_id, shuffle_seed=0)
    model = RNNLanguageModel(len(vocab), 4, 8, cell="rnn", pad_id=vocab.pad_id)
    return vocab, train, dev, train_loader, dev_loader, model


def _independent_mean_nll(model, dataset):
    """Sum of -log p(target) over every real target token, one sequence at a time, / token count."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for seq in dataset.examples:
            inputs, targets = seq[:-1].unsqueeze(0), seq[1:]
            logits = model(inputs, torch.tensor([len(targets)]))[0]
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += len(targets)
    return total / count


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_history_columns_and_best_epoch(problem):
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    h = fit(model, tl, dl, optimizer=opt, epochs=4, loss_fn=mask_loss, progress=False)
    assert isinstance(h, History) and isinstance(h, pd.DataFrame)
    assert list(h.columns) == HISTORY_COLUMNS
    assert h["epoch"].tolist() == [1, 2, 3, 4]
    assert h["is_best"].sum() == 1
    best = h.loc[h["dev_loss"].idxmin()]
    assert h.best_epoch == int(best["epoch"]) and bool(best["is_best"])
    assert h.best_dev_ppl == pytest.approx(math.exp(best["dev_loss"]))
    assert h.best_dev_loss == pytest.approx(best["dev_loss"])
    assert (h["train_ppl"] - h["train_loss"].map(math.exp)).abs().max() < 1e-9
    assert (h["seconds"] > 0).all()
    # loss decreases on this easy problem
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["dev_loss"].min() < h["dev_loss"].iloc[0]


def test_dev_loss_equals_independent_computation(problem):
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    h = fit(model, tl, dl, optimizer=opt, epochs=3, loss_fn=mask_loss, progress=False)
    # the model holds the best epoch's weights, so its dev NLL is that epoch's dev_loss
    ref = _independent_mean_nll(model, dev)
    assert h.best_dev_loss == pytest.approx(ref, rel=1e-5, abs=1e-6)
    loss, n = evaluate(model, dl)
    assert n == dev.num_target_tokens()
    assert loss == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_train_loss_is_token_weighted_mean(problem):
    """With a zero learning rate the weights never move, so the epoch's train loss is the mean
    NLL over all training tokens (a plain mean of batch means would weight tokens unequally)."""
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    h = fit(model, tl, dl, optimizer=opt, epochs=1, loss_fn=mask_loss, progress=False)
    assert h["train_loss"].iloc[0] == pytest.approx(_independent_mean_nll(model, train), rel=1e-5)


def test_dev_loss_does_not_use_loss_fn(problem):
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    wrong = lambda losses, mask: (losses * mask).sum() / mask.numel()  # noqa: E731
    h = fit(model, tl, dl, optimizer=opt, epochs=1, loss_fn=wrong, progress=False)
    assert h["dev_loss"].iloc[0] == pytest.approx(_independent_mean_nll(model, dev), rel=1e-5)
    assert h["train_loss"].iloc[0] < _independent_mean_nll(model, train)  # the wrong loss, as given


def test_best_weights_restored_and_checkpointed(problem, tmp_path):
    """Gradient *ascent* makes the dev loss worse every epoch, so epoch 1 is the best: the model
    must end with epoch 1's weights (recorded by the callback), not the last epoch's."""
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ascent = lambda losses, mask: -mask_loss(losses, mask)  # noqa: E731
    snapshots, epochs_seen = {}, []

    def callback(epoch, m, row):
        epochs_seen.append(epoch)
        snapshots[epoch] = _params(m)
        assert set(row) == set(HISTORY_COLUMNS)
        assert row["epoch"] == epoch
        return f"sample {epoch}"

    ckpt = tmp_path / "sub" / "best.pt"
    h = fit(model, tl, dl, optimizer=opt, epochs=3, loss_fn=ascent, callback=callback,
            checkpoint_path=ckpt, progress=False)
    assert epochs_seen == [1, 2, 3]
    assert h.callback_results == {1: "sample 1", 2: "sample 2", 3: "sample 3"}
    assert h["dev_loss"].is_monotonic_increasing
    assert h.best_epoch == 1 and h["is_best"].tolist() == [True, False, False]
    final = _params(model)
    assert not torch.equal(snapshots[3]["output.weight"], snapshots[1]["output.weight"])
    for k, v in final.items():
        torch.testing.assert_close(v, snapshots[1][k], rtol=0, atol=0)
    saved = torch.load(ckpt)
    for k, v in final.items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)
    assert list(ckpt.parent.iterdir()) == [ckpt]  # atomic write leaves no temporary file


def test_callback_model_best_sees_best_weights_and_training_continues(problem):
    vocab, train, dev, tl, dl, model = problem
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ascent = lambda losses, mask: -mask_loss(losses, mask)  # noqa: E731
    seen_best, seen_current = {}, {}
    h_best = fit(model, tl, dl, optimizer=opt, epochs=3, loss_fn=ascent, progress=False,
        callback=lambda e, m, r: seen_best.__setitem__(e, _params(m)), callback_model="best")
    torch.manual_seed(0)
    vocab, train, dev = make_char_lm_data(TEXT, dev_fraction=0.2)
    tl2, dl2 = make_loaders(train, dev, 4, pad_id=vocab.pad_id, shuffle_seed=0)
    model2 = RNNLanguageModel(len(vocab), 4, 8, cell="rnn", pad_id=vocab.pad_id)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.5)
    h_current = fit(model2, tl2, dl2, optimizer=opt2, epochs=3, loss_fn=ascent, progress=False,
        callback=lambda e, m, r: seen_current.__setitem__(e, _params(m)))
    w = "output.weight"
    # epochs 2 and 3 were worse than epoch 1: the "best" callback saw epoch 1's weights ...
    assert torch.equal(seen_best[2][w], seen_current[1][w]) and torch.equal(seen_best[3][w], seen_current[1][w])
    assert not torch.equal(seen_current[3][w], seen_current[1][w])
    # ... and swapping them in did not disturb training (the same run as with "current")
    pd.testing.assert_series_equal(h_best["dev_loss"], h_current["dev_loss"])
    pd.testing.assert_series_equal(h_best["train_loss"], h_current["train_loss"])


def test_grad_clip_bounds_each_update(problem):
    vocab, train, dev, tl, dl, model = problem
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    clip = 1e-3
    fit(model, tl, dl, optimizer=opt, epochs=1, loss_fn=mask_loss, grad_clip=clip, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    steps = len(tl)
    assert (after - before).norm().item() <= steps * clip * (1 + 1e-4)
    assert (after - before).norm().item() > 0
    # without clipping the same step moves much further
    torch.manual_seed(0)
    free = RNNLanguageModel(len(vocab), 4, 8, cell="rnn", pad_id=vocab.pad_id)
    b2 = torch.cat([p.detach().flatten().clone() for p in free.parameters()])
    fit(free, tl, dl, optimizer=torch.optim.SGD(free.parameters(), lr=1.0), epochs=1, loss_fn=mask_loss, progress=False)
    a2 = torch.cat([p.detach().flatten() for p in free.parameters()])
    assert (a2 - b2).norm().item() > 10 * steps * clip


def test_progress_bars_run(problem, capsys):
    vocab, train, dev, tl, dl, model = problem
    h = fit(model, tl, dl, optimizer=torch.optim.Adam(model.parameters()), epochs=1, loss_fn=mask_loss, progress=True, desc="toy")
    assert len(h) == 1


def test_without_dev_loader_best_is_lowest_train_loss(problem):
    vocab, train, dev, tl, dl, model = problem
    h = fit(model, tl, None, optimizer=torch.optim.Adam(model.parameters(), lr=0.05), epochs=2, loss_fn=mask_loss, progress=False)
    assert h["dev_loss"].isna().all()
    assert h.best_epoch == int(h.loc[h["train_loss"].idxmin(), "epoch"])


# ----------------------------------------------------------------------------- the shared steps, with another forward
class _Bigram(torch.nn.Module):
    """A model called with ``source`` batches (the gpt_attention vocabulary), not ``inputs/lengths``."""

    def __init__(self, v=5):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(v, v))

    def forward(self, source):
        return torch.log_softmax(self.table[source], dim=-1)


def _source_batches():
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        target = torch.randint(1, 5, (2, 6), generator=g)
        mask = (torch.arange(6) < torch.tensor([[6], [3]])).float()
        batches.append({"source": torch.roll(target, 1, 1), "target": target, "mask": mask})
    return batches


def _nll_fn(model):
    return lambda b: -model(b["source"]).gather(-1, b["target"].unsqueeze(-1)).squeeze(-1)


def test_evaluate_takes_the_forward_as_a_function():
    model, batches = _Bigram(), _source_batches()
    with torch.no_grad():
        model.table.copy_(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
    total, count = 0.0, 0
    for b in batches:  # by hand: every real token's -log p, one at a time
        for i in range(2):
            for t in range(int(b["mask"][i].sum())):
                row = torch.log_softmax(model.table[b["source"][i, t]], -1)
                total -= row[b["target"][i, t]].item()
                count += 1
    loss, n = evaluate(model, batches, device="cpu", token_nll=_nll_fn(model), acc_dtype=torch.float64)
    assert n == count == 27 and loss == pytest.approx(total / count, rel=1e-6)
    assert model.training  # the training mode is put back


def test_train_epoch_sums_what_the_steps_return():
    from course_lib.train import train_epoch

    model, batches = _Bigram(), _source_batches()
    nll = _nll_fn(model)
    seen = []

    def step(b):  # a per-sequence mean loss, as the gpt_attention models' .loss
        token = nll(b)
        loss = ((token * b["mask"]).sum(1) / b["mask"].sum(1)).mean()
        seen.append((loss.item(), (token.detach() * b["mask"]).sum().item(), b["mask"].sum().item()))
        return loss, token

    steps = []
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every step sees the same model
    totals = train_epoch(model, batches, opt, step, device=torch.device("cpu"), acc_dtype=torch.float64,
                         on_step=steps.append)
    assert steps == [0, 1, 2] and totals.steps == 3 and totals.n_tokens == 27
    assert totals.token_nll() == pytest.approx(sum(s[1] for s in seen) / 27, rel=1e-9)
    assert totals.mean_loss() == pytest.approx(sum(s[0] for s in seen) / 3, rel=1e-9)
    assert totals.token_weighted_loss() == pytest.approx(sum(s[0] * s[2] for s in seen) / 27, rel=1e-9)
    # a step that learns: the table moves
    train_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=1.0), step, device=torch.device("cpu"))
    assert model.table.abs().sum() > 0


def test_run_updates_sums_what_update_returns():
    """run_updates: the loop of train_epoch around an update that makes its own step (word_lm_ptb's
    train_step, which carries the hidden state); the sums against a hand computation."""
    from course_lib.train import run_updates

    g = torch.Generator().manual_seed(0)
    batches = [{"x": torch.randn(3, k + 1, generator=g, dtype=torch.float64)} for k in range(7)]
    seen, returned = [], []
    state = {"carried": 0}

    def update(batch):  # a loss with a graph, an int token count (as the runner passes), a carried state
        assert isinstance(batch["x"], torch.Tensor) and batch["x"].device.type == "cpu"
        w = torch.ones((), requires_grad=True)
        loss = (batch["x"] * w).pow(2).mean()
        n = batch["x"].numel()
        state["carried"] += 1
        seen.append(state["carried"])
        returned.append((loss.item(), loss.item() * n * 1.5, n))
        return loss, loss.detach() * n * 1.5, n

    steps = []
    totals = run_updates(batches, update, device=torch.device("cpu"), acc_dtype=torch.float64, on_step=steps.append)
    assert seen == list(range(1, 8)) and steps == list(range(7)) and totals.steps == 7
    n_total = sum(r[2] for r in returned)
    assert totals.n_tokens == n_total == 3 * sum(range(1, 8))
    assert totals.tokens.dtype == totals.nll_sum.dtype == torch.float64
    assert totals.token_nll() == pytest.approx(sum(r[1] for r in returned) / n_total, rel=1e-12)
    assert totals.mean_loss() == pytest.approx(sum(r[0] for r in returned) / 7, rel=1e-12)
    assert totals.token_weighted_loss() == pytest.approx(sum(r[0] * r[2] for r in returned) / n_total, rel=1e-12)
    assert not totals.nll_sum.requires_grad and not totals.weighted_loss.requires_grad


def test_run_updates_shows_a_postfix_every_50_steps():
    from course_lib.train import run_updates

    class Bar(list):
        def __init__(self, items):
            super().__init__(items)
            self.postfixes = []

        def set_postfix(self, refresh=True, **kw):
            self.postfixes.append(kw)

    bar = Bar([{"x": torch.tensor([float(i)])} for i in range(120)])
    totals = run_updates(bar, lambda b: (b["x"].sum(), b["x"].sum(), torch.tensor(1)), device=torch.device("cpu"),
                         postfix=lambda t: {"steps": t.steps, "mean": round(t.token_nll(), 6)})
    assert totals.steps == 120
    assert bar.postfixes == [{"steps": 50, "mean": 24.5}, {"steps": 100, "mean": 49.5}]
