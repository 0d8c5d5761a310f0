"""Value tests for course_solutions.layers against independent computations with the same weights."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib.text import CharVocab
from course_solutions.layers import (
    FeedforwardLanguageModel,
    RNNLanguageModel,
    generate,
    mask_loss,
    token_losses,
)

ATOL = 1e-5


def _batch(lengths, vocab_size, T=None, seed=0, pad_id=0):
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    inputs = torch.randint(3, vocab_size, (len(lengths), T), generator=g)
    for b, n in enumerate(lengths):
        inputs[b, n:] = pad_id
    return inputs, torch.tensor(lengths)


# --- feed-forward LM ---------------------------------------------------------------------------


def _ff_reference(model: FeedforwardLanguageModel, seq: list[int]) -> torch.Tensor:
    """Explicit loop: position t concatenates the embeddings of inputs[t-W+1 .. t] (pad before 0)."""
    W = model.window_size
    E = model.embedding.weight
    W1, b1 = model.hidden.weight, model.hidden.bias
    W2, b2 = model.output.weight, model.output.bias
    padded = [model.pad_id] * (W - 1) + list(seq)
    out = []
    for t in range(len(seq)):
        window = padded[t : t + W]
        x = torch.cat([E[i] for i in window])  # (W*E,)
        h = torch.tanh(W1 @ x + b1)
        out.append(W2 @ h + b2)
    return torch.stack(out)


def test_ff_attributes_and_shapes():
    m = FeedforwardLanguageModel(11, 4, 6, window_size=3, pad_id=0)
    assert m.window_size == 3 and m.pad_id == 0
    assert isinstance(m.embedding, nn.Embedding) and m.embedding.padding_idx == 0
    assert m.hidden.in_features == 12 and m.hidden.out_features == 6
    assert isinstance(m.dropout, nn.Dropout)
    assert m.output.in_features == 6 and m.output.out_features == 11
    inputs, lengths = _batch([5, 3], 11)
    out = m(inputs, lengths)
    assert out.shape == (2, 5, 11), f"expected (B, T, V) = (2, 5, 11), got {tuple(out.shape)}"


@pytest.mark.parametrize("window", [1, 3, 6])
def test_ff_logits_match_explicit_loop(window):
    torch.manual_seed(0)
    m = FeedforwardLanguageModel(13, 5, 7, window_size=window).eval()
    inputs, lengths = _batch([6, 4, 1], 13, seed=window)
    out = m(inputs, lengths)
    with torch.no_grad():
        for b, n in enumerate(lengths.tolist()):
            ref = _ff_reference(m, inputs[b, :n].tolist())
            torch.testing.assert_close(out[b, :n], ref, atol=ATOL, rtol=1e-5)
    # lengths is optional for the feed-forward model
    torch.testing.assert_close(m(inputs), out)


def test_ff_left_padding_at_first_positions():
    """Position 0 sees only inputs[0] plus W-1 pads (zero embeddings): changing later inputs or
    the pad embedding's neighbours must not change it, and it equals a one-token computation."""
    torch.manual_seed(1)
    W = 4
    m = FeedforwardLanguageModel(9, 3, 5, window_size=W).eval()
    seq = torch.tensor([[1, 5, 6, 7, 8]])
    out = m(seq)
    with torch.no_grad():
        x = torch.cat([torch.zeros(3 * (W - 1)), m.embedding.weight[1]])
        ref0 = m.output(torch.tanh(m.hidden(x)))
        torch.testing.assert_close(out[0, 0], ref0, atol=ATOL, rtol=1e-5)
        # position t (< W) depends only on inputs[:t+1]
        other = seq.clone()
        other[0, 3:] = 2
        torch.testing.assert_close(m(other)[0, :3], out[0, :3])
        # and position W-1 is the first with a full window: changing inputs[0] changes it,
        # position W does not depend on inputs[0] any more
        shifted = seq.clone()
        shifted[0, 0] = 4
        moved = m(shifted)[0]
        assert not torch.allclose(moved[W - 1], out[0, W - 1])
        torch.testing.assert_close(moved[W], out[0, W])


def test_ff_long_sequence_matches_explicit_loop():
    """Many full windows: every position matches the explicit loop."""
    torch.manual_seed(2)
    m = FeedforwardLanguageModel(7, 2, 3, window_size=5).eval()
    inputs, lengths = _batch([40], 7, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(m(inputs)[0], _ff_reference(m, inputs[0].tolist()), atol=ATOL, rtol=1e-5)


# --- RNN LM ------------------------------------------------------------------------------------


def _rnn_reference(model: RNNLanguageModel, seq: list[int]) -> torch.Tensor:
    """Explicit time loop with the weight matrices (PyTorch's gate order i, f, g, o for LSTM)."""
    x_seq = [model.embedding.weight[i] for i in seq]
    rnn = model.rnn
    H = rnn.hidden_size
    for layer in range(rnn.num_layers):
        W_ih = getattr(rnn, f"weight_ih_l{layer}")
        W_hh = getattr(rnn, f"weight_hh_l{layer}")
        b_ih = getattr(rnn, f"bias_ih_l{layer}")
        b_hh = getattr(rnn, f"bias_hh_l{layer}")
        h = torch.zeros(H)
        c = torch.zeros(H)
        outs = []
        for x in x_seq:
            pre = W_ih @ x + b_ih + W_hh @ h + b_hh
            if model.cell == "rnn":
                h = torch.tanh(pre)
            else:
                i, f, g, o = pre.split(H)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x_seq = outs
    hs = torch.stack(x_seq)
    return hs @ model.output.weight.T + model.output.bias


def test_rnn_attributes_and_bad_cell():
    m = RNNLanguageModel(10, 4, 6, cell="lstm", pad_id=0)
    assert m.cell == "lstm" and isinstance(m.rnn, nn.LSTM) and m.rnn.batch_first
    assert m.embedding.padding_idx == 0 and isinstance(m.dropout, nn.Dropout)
    assert m.output.in_features == 6 and m.output.out_features == 10
    assert isinstance(RNNLanguageModel(10, 4, 6).rnn, nn.RNN)
    with pytest.raises(ValueError, match="'rnn'.*'lstm'"):
        RNNLanguageModel(10, 4, 6, cell="gru")


@pytest.mark.parametrize("cell,num_layers", [("rnn", 1), ("lstm", 1), ("lstm", 2), ("rnn", 2)])
def test_rnn_logits_match_explicit_loop(cell, num_layers):
    torch.manual_seed(3)
    m = RNNLanguageModel(12, 5, 6, cell=cell, num_layers=num_layers).eval()
    inputs, lengths = _batch([7, 2, 5, 1], 12, seed=4)
    out = m(inputs, lengths)
    assert out.shape == (4, 7, 12), f"expected (B, T, V) = (4, 7, 12), got {tuple(out.shape)}"
    with torch.no_grad():
        for b, n in enumerate(lengths.tolist()):
            ref = _rnn_reference(m, inputs[b, :n].tolist())
            torch.testing.assert_close(out[b, :n], ref, atol=ATOL, rtol=1e-5)
            # padded positions carry no hidden state: only the output bias
            if n < out.size(1):
                torch.testing.assert_close(out[b, n:], m.output.bias.expand(out.size(1) - n, -1))


@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    extra=st.integers(0, 5),
    fill=st.integers(0, 8),
    cell=st.sampled_from(["rnn", "lstm"]),
)
def test_rnn_real_positions_ignore_padding(lengths, extra, fill, cell):
    torch.manual_seed(5)
    m = RNNLanguageModel(9, 3, 4, cell=cell).eval()
    inputs, lens = _batch(lengths, 9, seed=len(lengths))
    T = inputs.size(1)
    longer = torch.full((len(lengths), T + extra), fill, dtype=torch.long)  # any token as padding
    longer[:, :T] = inputs
    for b, n in enumerate(lengths):
        longer[b, n:] = fill
    with torch.no_grad():
        a = m(inputs, lens)
        c = m(longer, lens)
    assert c.shape == (len(lengths), T + extra, 9)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(c[b, :n], a[b, :n], atol=1e-6, rtol=1e-6)


# --- losses ------------------------------------------------------------------------------------


def test_token_losses_are_per_token_nll():
    torch.manual_seed(6)
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[0, 4, 2], [1, 1, 3]])
    out = token_losses(logits, targets)
    assert out.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            ref = -(logits[b, t, targets[b, t]] - torch.logsumexp(logits[b, t], 0))
            assert abs(out[b, t].item() - ref.item()) < 1e-6


def test_mask_loss_is_mean_over_real_tokens():
    losses = torch.tensor([[0.1, 0.3, 0.2, 0.4, 0.7, 0.5], [0.2, 0.6, 0.1, 0.8, 0.9, 0.4]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.float32)
    expected = (0.1 + 0.3 + 0.2 + 0.4 + 0.7 + 0.5 + 0.2 + 0.6 + 0.1 + 0.8) / 10
    assert abs(mask_loss(losses, mask).item() - expected) < 1e-6
    assert abs(mask_loss(losses, mask).item() - losses.mean().item()) > 1e-3  # not numel


# --- generate ----------------------------------------------------------------------------------

VOCAB = CharVocab("abc")  # <pad>=0 <bos>=1 <eos>=2 a=3 b=4 c=5


class BigramStub(nn.Module):
    """logits[t] = table[inputs[t]]: the next token depends on the current one only."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table.clone().float())
        self.calls = []

    def forward(self, inputs, lengths=None):
        self.calls.append(
            {"grad": torch.is_grad_enabled(), "training": self.training, "inputs": inputs.clone(),
             "lengths": None if lengths is None else torch.as_tensor(lengths).clone()}
        )
        return self.table[inputs]  # (B, T, V)


def _chain_table(margin=1.0):
    """<bos> -> a -> b -> c -> <eos>, each the argmax by ``margin``."""
    V = len(VOCAB)
    table = torch.zeros(V, V)
    for cur, nxt in [("<bos>", "a"), ("a", "b"), ("b", "c"), ("c", "<eos>")]:
        table[VOCAB.stoi[cur], VOCAB.stoi[nxt]] = margin
    return table


def test_generate_near_greedy_at_low_temperature_and_stops_at_eos():
    model = BigramStub(_chain_table(margin=1.0))
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        assert generate(model, VOCAB, max_len=50, temperature=1e-4, generator=g) == "abc"
    # max_len caps the number of generated characters
    assert generate(model, VOCAB, max_len=2, temperature=1e-4) == "ab"
    # a prefix is fed after <bos> and returned in front of the continuation
    model.calls.clear()
    assert generate(model, VOCAB, prefix="b", max_len=50, temperature=1e-4) == "bc"
    assert model.calls[0]["inputs"].tolist() == [[VOCAB.bos_id, VOCAB.stoi["b"]]]
    assert model.calls[0]["lengths"].tolist() == [2]


def test_generate_no_grad_eval_and_restores_training_mode():
    model = BigramStub(_chain_table())
    model.train()
    generate(model, VOCAB, max_len=5, temperature=1e-4)
    assert model.calls and all(not c["grad"] for c in model.calls)
    assert all(not c["training"] for c in model.calls)
    assert model.training
    model.eval()
    generate(model, VOCAB, max_len=5, temperature=1e-4)
    assert not model.training


def test_generate_is_reproducible_with_seeded_generator():
    torch.manual_seed(7)
    model = BigramStub(torch.randn(len(VOCAB), len(VOCAB)))
    a = generate(model, VOCAB, max_len=100, generator=torch.Generator().manual_seed(11))
    b = generate(model, VOCAB, max_len=100, generator=torch.Generator().manual_seed(11))
    outs = {generate(model, VOCAB, max_len=100, generator=torch.Generator().manual_seed(s)) for s in range(5)}
    assert a == b
    assert len(outs) > 1


@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_generate_sample_frequencies_follow_tempered_softmax(temperature):
    V = len(VOCAB)
    logits = torch.full((V,), -math.inf)
    logits[VOCAB.stoi["a"]], logits[VOCAB.stoi["b"]], logits[VOCAB.stoi["c"]] = 1.0, 0.0, -1.0
    model = BigramStub(logits.expand(V, V))  # the same distribution after every token, no <eos>
    n = 2000
    text = generate(model, VOCAB, max_len=n, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert len(text) == n
    counts = Counter(text)
    expected = torch.softmax(torch.tensor([1.0, 0.0, -1.0]) / temperature, 0).tolist()
    for ch, p in zip("abc", expected, strict=True):
        freq = counts[ch] / n
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(freq - p) < 5 * sigma, f"{ch}: frequency {freq:.4f}, softmax(logits/T) gives {p:.4f}"


def test_generate_with_real_models_runs():
    torch.manual_seed(8)
    vocab = CharVocab("abcdef ")
    for model in (RNNLanguageModel(len(vocab), 4, 8, cell="lstm"), FeedforwardLanguageModel(len(vocab), 4, 8, 3)):
        out = generate(model, vocab, prefix="ab", max_len=20, generator=torch.Generator().manual_seed(0))
        assert out.startswith("ab") and len(out) <= 22
        assert set(out) <= set("abcdef ")
