"""Value tests for the gpt_attention reference layers (course_solutions.layers: LSTM, LayerNorm,
MultiHeadedAttention, Block, GPT1Embedding, MiniGPT1, sequence_nll_loss).

Every reference comparison is a ``check_*`` function (an adapter: it takes the implementation to
test) that raises AssertionError. The tests run each check on the reference implementation, and on
known-wrong variants defined below (unbiased variance, no 1/sqrt(D), a mask off by one, a wrong
head layout, the loss averaged over all tokens), which each check must reject.

Shapes: B batch, T time, E embedding size, V vocabulary, H heads, D head size.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_solutions.layers import (
    LSTM,
    Block,
    GPT1Embedding,
    LayerNorm,
    MiniGPT1,
    MultiHeadedAttention,
    attention_parameter_count,
    sequence_nll_loss,
)

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def causal_bool_mask(T: int) -> torch.Tensor:
    """True where attention is *not* allowed (tau > t): PyTorch's attn_mask convention."""
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


# =================================================================================================
# known-wrong variants (each must be rejected by the checks below)


class UnbiasedLayerNorm(LayerNorm):
    """Wrong: torch.var's default, unbiased variance (divides by n - 1)."""

    def forward(self, inputs):
        mean = inputs.mean(-1, keepdim=True)
        var = inputs.var(-1, keepdim=True)
        return (inputs - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class NoScaleAttention(MultiHeadedAttention):
    """Wrong: forgets the 1/sqrt(D) scaling."""

    def get_attention_weights(self, queries, keys):
        T = queries.size(-2)
        s = torch.ones(T, T, dtype=queries.dtype).tril()
        return torch.softmax((queries @ keys.transpose(-2, -1)) * s - 1e4 * (1 - s), dim=-1)


class OffByOneMaskAttention(MultiHeadedAttention):
    """Wrong: a causal mask shifted by ``diagonal`` (+1: attends to t+1; -1: does not attend to t)."""

    diagonal = 1

    def get_attention_weights(self, queries, keys):
        T = queries.size(-2)
        s = torch.ones(T, T, dtype=queries.dtype).tril(diagonal=self.diagonal)
        x = queries @ keys.transpose(-2, -1) / math.sqrt(queries.size(-1))
        return torch.softmax(x * s - 1e4 * (1 - s), dim=-1)


class PeekAheadAttention(OffByOneMaskAttention):
    diagonal = 1


class NoSelfAttention(OffByOneMaskAttention):
    diagonal = -1


class InterleavedHeadsAttention(MultiHeadedAttention):
    """Wrong head layout: head h gets features h, h + H, h + 2H, ... (view as (B, T, D, H))."""

    def split_heads(self, tensor):
        B, T, width = tensor.shape
        return tensor.view(B, T, width // self.num_heads, self.num_heads).permute(0, 3, 1, 2)

    def merge_heads(self, tensor):
        B, H, T, dim = tensor.shape
        return tensor.permute(0, 2, 3, 1).reshape(B, T, dim * H)


def loss_mean_over_all_tokens(log_probas, targets, mask):
    """Wrong: one mean over every real token of the batch (long sequences weigh more)."""
    nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum()


def loss_mean_over_numel(log_probas, targets, mask):
    """Wrong: divides by B * T instead of by each sequence's real length."""
    nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.numel()


# =================================================================================================
# checks (adapters): each raises AssertionError when the implementation is wrong


def check_layernorm(cls) -> None:
    """``cls(hidden_size)`` against ``nn.LayerNorm`` with the same random weight and bias."""
    for seed, (shape, dtype) in enumerate(
        [((5,), torch.float32), ((3, 8), torch.float32), ((2, 3, 4, 16), torch.float32),
         ((4, 7), torch.float64), ((2, 5, 32), torch.float64)]
    ):
        g = gen(seed)
        hidden = shape[-1]
        x = torch.randn(*shape, generator=g, dtype=dtype) * 3 + 1.5
        module = cls(hidden).to(dtype)
        reference = nn.LayerNorm(hidden, eps=1e-5).to(dtype)
        with torch.no_grad():
            for p in (module.weight, module.bias):
                p.copy_(torch.randn(hidden, generator=g, dtype=dtype))
            reference.weight.copy_(module.weight)
            reference.bias.copy_(module.bias)
            out = module(x)
            assert out.shape == x.shape, f"expected shape {tuple(x.shape)} (*dims, hidden_size), got {tuple(out.shape)}"
            torch.testing.assert_close(out, reference(x), **TOL[dtype], msg=lambda m, shape=shape, dtype=dtype: f"LayerNorm {shape} {dtype}: {m}")


def reference_attention_weights(queries, keys):
    """softmax(q k^T / sqrt(D)) with -inf above the diagonal (independent of the handout's 1e4 trick)."""
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(queries.size(-1))
    scores = scores.masked_fill(causal_bool_mask(queries.size(-2)), float("-inf"))
    return torch.softmax(scores, dim=-1)


def check_attention_weights(module: MultiHeadedAttention, T: int = 7, seed: int = 0) -> None:
    """Shape (B, H, T, T), rows sum to 1, exactly zero above the diagonal, equal to the reference."""
    B, H, D = 2, module.num_heads, module.head_size
    g = gen(seed)
    q = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    with torch.no_grad():
        w = module.get_attention_weights(q, k)
    assert w.shape == (B, H, T, T), f"expected (B, H, T, T) = {(B, H, T, T)}, got {tuple(w.shape)}"
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, T, dtype=w.dtype), atol=1e-9, rtol=0,
                               msg="attention weights: each row must sum to 1")
    above = w.masked_select(causal_bool_mask(T).expand(B, H, T, T))
    assert above.numel() == 0 or above.abs().max() < 1e-6, (
        f"attention to the future (tau > t) must be 0, got up to {above.abs().max():.3g}"
    )
    torch.testing.assert_close(w, reference_attention_weights(q, k), atol=1e-9, rtol=1e-9,
                               msg=lambda m: f"attention weights vs softmax(QK^T/sqrt(D)) with a causal mask: {m}")


def check_apply_attention(module: MultiHeadedAttention, T: int = 6, seed: int = 1) -> None:
    """apply_attention vs F.scaled_dot_product_attention(is_causal=True), heads concatenated."""
    B, H, D = 3, module.num_heads, module.head_size
    g = gen(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g, dtype=torch.float64) for _ in range(3))
    with torch.no_grad():
        out = module.apply_attention(q, k, v)
    assert out.shape == (B, T, H * D), f"expected (B, T, H*D) = {(B, T, H * D)}, got {tuple(out.shape)}"
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
    ref = torch.cat([ref[:, h] for h in range(H)], dim=-1)  # head h -> features h*D .. (h+1)*D - 1
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9, msg=lambda m: f"apply_attention vs SDPA: {m}")


def check_attention_forward(module: MultiHeadedAttention, T: int = 5, seed: int = 2) -> None:
    """forward vs nn.MultiheadAttention with the same weights and a causal mask."""
    H, D = module.num_heads, module.head_size
    E = H * D
    module = module.double()
    reference = nn.MultiheadAttention(E, H, bias=True, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([module.q_proj.weight, module.k_proj.weight, module.v_proj.weight]))
        reference.in_proj_bias.copy_(torch.cat([module.q_proj.bias, module.k_proj.bias, module.v_proj.bias]))
        reference.out_proj.weight.copy_(module.out_proj.weight)
        reference.out_proj.bias.copy_(module.out_proj.bias)
        x = torch.randn(2, T, E, generator=gen(seed), dtype=torch.float64)
        out = module(x)
        ref, _ = reference(x, x, x, attn_mask=causal_bool_mask(T), need_weights=False)
    assert out.shape == (2, T, E), f"expected (B, T, H*D) = {(2, T, E)}, got {tuple(out.shape)}"
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9,
                               msg=lambda m: f"MultiHeadedAttention.forward vs nn.MultiheadAttention: {m}")


def random_attention(cls, num_heads=3, head_size=4, sequence_length=16, seed=0):
    torch.manual_seed(seed)
    module = cls(head_size, num_heads, sequence_length).double()
    with torch.no_grad():  # non-zero biases, so that forgetting one shows
        for m in (module.q_proj, module.k_proj, module.v_proj, module.out_proj):
            m.bias.normal_()
    return module


def loss_by_loops(log_probas, targets, mask) -> float:
    """The handout's formula, one sequence and one token at a time."""
    B, T, _ = log_probas.shape
    total = 0.0
    for b in range(B):
        nll, n = 0.0, 0
        for t in range(T):
            if mask[b, t] == 1:
                nll -= log_probas[b, t, targets[b, t]].item()
                n += 1
        total += nll / n
    return total / B


def make_loss_batch(lengths, T, V, seed, dtype=torch.float64):
    g = gen(seed)
    log_probas = torch.log_softmax(torch.randn(len(lengths), T, V, generator=g, dtype=dtype) * 2, dim=-1)
    targets = torch.randint(1, V, (len(lengths), T), generator=g)
    mask = torch.zeros(len(lengths), T, dtype=torch.float32)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1.0
        targets[b, n:] = 0
    return log_probas, targets, mask


def check_loss(loss_fn) -> None:
    """loss_fn(log_probas, targets, mask) vs the per-sequence loops, on sequences of different lengths."""
    for seed, lengths in enumerate([[5, 2, 7, 1], [3], [4, 4, 1]]):
        log_probas, targets, mask = make_loss_batch(lengths, 7, 9, seed)
        out = loss_fn(log_probas, targets, mask)
        assert isinstance(out, torch.Tensor) and out.shape == (), f"the loss must be a 0-dim tensor, got {out!r}"
        expected = loss_by_loops(log_probas, targets, mask)
        assert abs(out.item() - expected) < 1e-9, f"loss for lengths {lengths}: expected {expected:.6f}, got {out.item():.6f}"


# =================================================================================================
# LayerNorm


def test_layernorm_matches_nn_layernorm():
    check_layernorm(LayerNorm)
    ln = LayerNorm(6)
    assert ln.eps == 1e-5 and ln.hidden_size == 6
    assert torch.equal(ln.weight, torch.ones(6)) and torch.equal(ln.bias, torch.zeros(6))
    assert {n for n, _ in ln.named_parameters()} == {"weight", "bias"}


def test_layernorm_check_rejects_unbiased_variance():
    with pytest.raises(AssertionError):
        check_layernorm(UnbiasedLayerNorm)


def test_layernorm_does_not_call_torch_layer_norm(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.layer_norm must not be used")

    ln = LayerNorm(8)
    x = torch.randn(3, 8, generator=gen(0))
    expected = F.layer_norm(x, (8,))
    monkeypatch.setattr(torch, "layer_norm", forbidden)
    monkeypatch.setattr(F, "layer_norm", forbidden)
    with torch.no_grad():
        torch.testing.assert_close(ln(x), expected, **TOL[torch.float32])


# =================================================================================================
# MultiHeadedAttention


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 5), H=st.integers(1, 4), dim=st.integers(1, 5))
def test_split_merge_heads_are_inverse_with_the_index_contract(B, T, H, dim):
    attention = MultiHeadedAttention(dim, H, T)
    x = torch.arange(B * T * H * dim, dtype=torch.float32).view(B, T, H * dim)
    y = attention.split_heads(x)
    assert y.shape == (B, H, T, dim), f"expected (B, H, T, dim) = {(B, H, T, dim)}, got {tuple(y.shape)}"
    for b in range(B):
        for h in range(H):
            for t in range(T):
                for d in range(dim):
                    assert y[b, h, t, d] == x[b, t, h * dim + d]
    assert torch.equal(attention.merge_heads(y), x)
    z = torch.randn(B, H, T, dim)
    assert attention.merge_heads(z).shape == (B, T, H * dim)
    assert torch.equal(attention.split_heads(attention.merge_heads(z)), z)


def test_split_merge_handout_examples():
    """The handout's examples, literally (they hold as written when dim == num_heads, here 4)."""
    num_heads = 4
    attention = MultiHeadedAttention(4, num_heads, 3)
    x = torch.randn(2, 3, num_heads * 4)
    y = attention.split_heads(x)
    assert y[0, 1, 2, 3] == x[0, 2, num_heads * 1 + 3]
    x2 = attention.merge_heads(y)
    assert x2[0, 1, num_heads * 2 + 3] == y[0, 2, 1, 3]


@pytest.mark.parametrize("T", [1, 2, 7, 16])
def test_attention_weights_causal_softmax(T):
    check_attention_weights(random_attention(MultiHeadedAttention), T=T)


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 24), H=st.integers(1, 3), D=st.integers(1, 6), seed=st.integers(0, 1000))
def test_attention_weights_never_look_ahead_for_any_T(T, H, D, seed):
    check_attention_weights(MultiHeadedAttention(D, H, 24), T=T, seed=seed)


def test_apply_attention_matches_scaled_dot_product_attention():
    for H, D in [(1, 8), (3, 4), (4, 2)]:
        check_apply_attention(random_attention(MultiHeadedAttention, H, D))


def test_forward_matches_nn_multiheadattention():
    for H, D, T in [(1, 6, 4), (3, 4, 5), (2, 8, 9)]:
        check_attention_forward(random_attention(MultiHeadedAttention, H, D), T=T)


@pytest.mark.parametrize(
    "wrong,checks",
    [
        (NoScaleAttention, ["weights", "apply", "forward"]),
        (PeekAheadAttention, ["weights", "apply", "forward"]),
        (NoSelfAttention, ["weights", "apply", "forward"]),
        (InterleavedHeadsAttention, ["apply", "forward"]),
    ],
)
def test_attention_checks_reject_wrong_variants(wrong, checks):
    run = {"weights": check_attention_weights, "apply": check_apply_attention, "forward": check_attention_forward}
    for name in checks:
        with pytest.raises(AssertionError):
            run[name](random_attention(wrong, num_heads=3, head_size=4))


def test_attention_uses_no_builtin_attention(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("built-in attention must not be used")

    module = random_attention(MultiHeadedAttention)
    monkeypatch.setattr(F, "multi_head_attention_forward", forbidden)
    monkeypatch.setattr(F, "scaled_dot_product_attention", forbidden)
    out = module(torch.randn(2, 5, 12, dtype=torch.float64))
    assert out.shape == (2, 5, 12)


@pytest.mark.parametrize("H,D", [(1, 1), (1, 8), (3, 4), (12, 64)])
def test_attention_parameter_count(H, D):
    module = MultiHeadedAttention(D, H, 8)
    real = sum(p.numel() for p in module.parameters())
    assert attention_parameter_count(H, D) == real == 4 * (H * D) ** 2 + 4 * H * D


def test_attention_is_biased_linear_projections():
    module = MultiHeadedAttention(4, 3, 8)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(module, name)
        assert isinstance(layer, nn.Linear) and layer.bias is not None
        assert (layer.in_features, layer.out_features) == (12, 12)
    assert (module.head_size, module.num_heads, module.sequence_length) == (4, 3, 8)


# =================================================================================================
# losses


def test_sequence_nll_loss_matches_the_handout_formula():
    check_loss(sequence_nll_loss)
    check_loss(LSTM(9, 4, 5).loss)
    check_loss(MiniGPT1(9, 8, 7, 2, 1).loss)


@pytest.mark.parametrize("wrong", [loss_mean_over_all_tokens, loss_mean_over_numel])
def test_loss_check_rejects_wrong_averaging(wrong):
    with pytest.raises(AssertionError):
        check_loss(wrong)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    extra=st.integers(0, 4),
    fill=st.integers(0, 8),
    seed=st.integers(0, 100),
)
def test_loss_is_invariant_to_padding(lengths, extra, fill, seed):
    """More padding (any target id, any log-probabilities there) does not change the loss."""
    T = max(lengths)
    log_probas, targets, mask = make_loss_batch(lengths, T, 9, seed)
    base = sequence_nll_loss(log_probas, targets, mask)
    B = len(lengths)
    g = gen(seed + 1)
    longer_lp = torch.log_softmax(torch.randn(B, T + extra, 9, generator=g, dtype=torch.float64), dim=-1)
    longer_lp[:, :T] = log_probas
    longer_targets = torch.full((B, T + extra), fill, dtype=torch.long)
    longer_mask = torch.zeros(B, T + extra)
    for b, n in enumerate(lengths):
        longer_lp[b, n:] = torch.log_softmax(torch.randn(T + extra - n, 9, generator=g, dtype=torch.float64), -1)
        longer_targets[b, :n] = targets[b, :n]
        longer_mask[b, :n] = 1
    torch.testing.assert_close(sequence_nll_loss(longer_lp, longer_targets, longer_mask), base, atol=1e-12, rtol=0)


# =================================================================================================
# LSTM


def lstm_reference(model: LSTM, inputs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
    """Explicit time loop with the gate equations (PyTorch's gate order i, f, g, o), then the tied MLP."""
    lstm = model.lstm
    Hs = lstm.hidden_size
    x_seq = [model.embedding.weight[inputs[:, t]] for t in range(inputs.size(1))]  # T x (B, E)
    hs, cs = [], []
    for layer in range(lstm.num_layers):
        W_ih, W_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        h, c = h0[layer], c0[layer]
        outs = []
        for x in x_seq:
            i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b).split(Hs, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x_seq = outs
        hs.append(h)
        cs.append(c)
    hidden = torch.stack(x_seq, dim=1)  # (B, T, hidden)
    W1, b1 = model.classifier[0].weight, model.classifier[0].bias
    logits = torch.relu(hidden @ W1.T + b1) @ model.embedding.weight.T  # tied output layer
    return torch.log_softmax(logits, dim=-1), (torch.stack(hs), torch.stack(cs))


def test_lstm_attributes_and_defaults():
    m = LSTM()
    assert (m.vocabulary_size, m.embedding_size, m.hidden_size, m.num_layers) == (33_279, 768, 512, 1)
    assert m.learn_embeddings and m.embedding.weight.requires_grad
    assert m.embedding.padding_idx == 0 and torch.equal(m.embedding.weight[0], torch.zeros(768))
    assert isinstance(m.lstm, nn.LSTM) and m.lstm.batch_first
    layers = list(m.classifier)
    assert [type(x) for x in layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (512, 768)
    assert layers[2].bias is None and layers[2].weight is m.embedding.weight  # tied
    frozen = LSTM(11, 4, 5, learn_embeddings=False)
    assert not frozen.embedding.weight.requires_grad and not frozen.classifier[2].weight.requires_grad


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_forward_matches_explicit_loop(num_layers):
    torch.manual_seed(num_layers)
    V, E, Hs, B, T = 11, 6, 5, 3, 7
    m = LSTM(V, E, Hs, num_layers).double()
    inputs = torch.randint(0, V, (B, T), generator=gen(3))
    g = gen(4)
    h0 = torch.randn(num_layers, B, Hs, generator=g, dtype=torch.float64)
    c0 = torch.randn(num_layers, B, Hs, generator=g, dtype=torch.float64)
    with torch.no_grad():
        log_probas, (h, c) = m(inputs, (h0, c0))
        ref, (h_ref, c_ref) = lstm_reference(m, inputs, h0, c0)
    assert log_probas.shape == (B, T, V), f"expected (B, T, V) = {(B, T, V)}, got {tuple(log_probas.shape)}"
    assert h.shape == c.shape == (num_layers, B, Hs)
    torch.testing.assert_close(log_probas, ref, **TOL[torch.float64])
    torch.testing.assert_close(h, h_ref, **TOL[torch.float64])
    torch.testing.assert_close(c, c_ref, **TOL[torch.float64])
    torch.testing.assert_close(log_probas.exp().sum(-1), torch.ones(B, T, dtype=torch.float64), atol=1e-12, rtol=0)


def test_lstm_initial_states():
    m = LSTM(11, 6, 5, num_layers=3)
    h, c = m.initial_states(4)
    assert h.shape == c.shape == (3, 4, 5) and h.dtype == torch.float32
    assert not h.any() and not c.any() and not h.requires_grad
    assert m.initial_states(2, device="cpu")[0].device.type == "cpu"
    inputs = torch.randint(0, 11, (4, 6), generator=gen(0))
    with torch.no_grad():
        a, _ = m(inputs, (h, c))
        b, _ = m(inputs)  # None means zeros
    torch.testing.assert_close(a, b)


def test_lstm_tied_weights_are_one_parameter():
    torch.manual_seed(0)
    V, E, Hs = 13, 6, 5
    m = LSTM(V, E, Hs)
    assert m.classifier[2].weight is m.embedding.weight
    expected = V * E + 4 * Hs * (E + Hs + 2) + (Hs * E + E)  # embedding (= classifier), LSTM, first Linear
    assert sum(p.numel() for p in m.parameters()) == expected
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    log_probas, _ = m(torch.randint(1, V, (2, 4), generator=gen(1)))
    m.loss(log_probas, torch.randint(1, V, (2, 4), generator=gen(2)), torch.ones(2, 4)).backward()
    before = m.embedding.weight.detach().clone()
    opt.step()
    assert m.classifier[2].weight is m.embedding.weight
    assert not torch.equal(m.embedding.weight, before)  # learned (learn_embeddings=True)


# =================================================================================================
# Block, GPT1Embedding, MiniGPT1


def torch_encoder_layer(block: Block) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer with the weights of ``block`` (post-LN, GELU, no dropout)."""
    E = block.hidden_size
    layer = nn.TransformerEncoderLayer(
        E, block.num_heads, dim_feedforward=block.mlp_hidden_size, dropout=0.0, activation="gelu",
        layer_norm_eps=1e-5, batch_first=True, norm_first=False, dtype=torch.float64,
    )
    att = block.attention
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]))
        layer.self_attn.in_proj_bias.copy_(torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]))
        layer.self_attn.out_proj.weight.copy_(att.out_proj.weight)
        layer.self_attn.out_proj.bias.copy_(att.out_proj.bias)
        layer.linear1.weight.copy_(block.mlp[0].weight)
        layer.linear1.bias.copy_(block.mlp[0].bias)
        layer.linear2.weight.copy_(block.mlp[2].weight)
        layer.linear2.bias.copy_(block.mlp[2].bias)
        for ours, theirs in ((block.norm1, layer.norm1), (block.norm2, layer.norm2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return layer.eval()


def randomize_norms(module: nn.Module, seed: int) -> None:
    g = gen(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, LayerNorm):
                sub.weight.copy_(1 + 0.3 * torch.randn(sub.hidden_size, generator=g, dtype=sub.weight.dtype))
                sub.bias.copy_(0.3 * torch.randn(sub.hidden_size, generator=g, dtype=sub.bias.dtype))


def test_block_matches_transformer_encoder_layer():
    torch.manual_seed(0)
    block = Block(head_size=4, mlp_hidden_size=20, num_heads=3, sequence_length=8).double()
    randomize_norms(block, 1)
    x = torch.randn(2, 6, 12, generator=gen(2), dtype=torch.float64)
    with torch.no_grad():
        ref = torch_encoder_layer(block)(x, src_mask=causal_bool_mask(6))
        torch.testing.assert_close(block(x), ref, **TOL[torch.float64])


def tiny_gpt(seed=0, **kw) -> MiniGPT1:
    torch.manual_seed(seed)
    args = dict(vocabulary_size=17, embedding_size=12, sequence_length=10, num_heads=3, num_layers=2)
    args.update(kw)
    model = MiniGPT1(**args).double().eval()
    randomize_norms(model, seed + 1)
    return model


def test_minigpt1_attributes_and_defaults():
    m = MiniGPT1(num_layers=1)
    assert (m.vocabulary_size, m.embedding_size, m.sequence_length, m.num_heads) == (33_279, 768, 256, 12)
    assert m.head_size == 64 and m.learn_embeddings and len(m.layers) == 1
    assert m.layers[0].mlp[0].out_features == 4 * 768
    assert m.classifier.bias is None and m.classifier.weight is m.embedding.tokens.weight
    assert (m.embedding.tokens.num_embeddings, m.embedding.position.num_embeddings) == (33_279, 256)
    assert torch.equal(m.embedding.tokens.weight[0], torch.zeros(768))
    frozen = MiniGPT1(17, 12, 10, 3, 1, learn_embeddings=False)
    assert not frozen.embedding.tokens.weight.requires_grad and not frozen.embedding.position.weight.requires_grad
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MiniGPT1(17, 10, 10, 3, 1)


def test_minigpt1_parameter_count_and_tying():
    m = tiny_gpt()
    V, E, S, L = 17, 12, 10, 2
    per_block = attention_parameter_count(3, 4) + 2 * 2 * E + (E * 4 * E + 4 * E) + (4 * E * E + E)
    assert sum(p.numel() for p in m.parameters()) == V * E + S * E + L * per_block


def test_minigpt1_forward_matches_torch_reference():
    m = tiny_gpt()
    B, T = 3, 7
    inputs = torch.randint(0, 17, (B, T), generator=gen(5))
    with torch.no_grad():
        log_probas = m(inputs)
        # reference: embeddings by indexing, torch's encoder layers with a causal mask, tied output
        h = m.embedding.tokens.weight[inputs] + m.embedding.position.weight[:T]
        torch.testing.assert_close(m.get_embeddings(inputs), h, **TOL[torch.float64])
        for block in m.layers:
            h = torch_encoder_layer(block)(h, src_mask=causal_bool_mask(T))
        ref = torch.log_softmax(h @ m.embedding.tokens.weight.T, dim=-1)
    assert log_probas.shape == (B, T, 17), f"expected (B, T, V) = {(B, T, 17)}, got {tuple(log_probas.shape)}"
    torch.testing.assert_close(log_probas, ref, **TOL[torch.float64])
    torch.testing.assert_close(log_probas.exp().sum(-1), torch.ones(B, T, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", [0, 3, 9])
def test_minigpt1_is_causal(k):
    m = tiny_gpt()
    inputs = torch.randint(1, 17, (2, 10), generator=gen(6))
    changed = inputs.clone()
    changed[:, k] = (changed[:, k] % 16) + 1  # another real token at position k
    with torch.no_grad():
        a, b = m(inputs), m(changed)
    torch.testing.assert_close(a[:, :k], b[:, :k], atol=1e-12, rtol=0)  # the past does not see the change
    assert (a[:, k] - b[:, k]).abs().max() > 1e-6  # position k does


def test_minigpt1_shorter_sequences_and_wrong_inputs():
    m = tiny_gpt()
    inputs = torch.randint(0, 17, (2, 10), generator=gen(7))
    with torch.no_grad():
        full = m(inputs)
        torch.testing.assert_close(m(inputs[:, :4]), full[:, :4], atol=1e-12, rtol=0)  # any T <= sequence_length
    with pytest.raises(RuntimeError, match="maximum sequence length"):
        m(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(RuntimeError, match="size of the vocabulary"):
        m(torch.full((1, 3), 17))


def test_gpt1_embedding_adds_token_and_position():
    emb = GPT1Embedding(7, 4, 5)
    assert emb.tokens.padding_idx == 0 and emb.position.num_embeddings == 5
    tokens = torch.tensor([[1, 0, 6], [2, 2, 3]])
    positions = torch.tensor([[0, 1, 2], [4, 3, 0]])
    out = emb(tokens, positions)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out, emb.tokens.weight[tokens] + emb.position.weight[positions])
    given_weights = GPT1Embedding(7, 4, 5, torch.ones(7, 4), torch.zeros(5, 4))
    assert torch.equal(given_weights(tokens, positions), torch.ones(2, 3, 4))


def test_minigpt1_trains_its_tied_embeddings():
    m = tiny_gpt()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    inputs = torch.randint(1, 17, (2, 6), generator=gen(8))
    log_probas = m.train()(inputs)
    loss = m.loss(log_probas, torch.roll(inputs, -1, 1), torch.ones(2, 6))
    loss.backward()
    before = m.embedding.tokens.weight.detach().clone()
    opt.step()
    assert m.classifier.weight is m.embedding.tokens.weight
    assert not torch.equal(m.embedding.tokens.weight, before)
