"""Value tests for the nmt_pig_latin references (course_solutions.nmt).

Every comparison is a ``check_*`` function (an adapter: it takes the implementation to test) that
raises AssertionError. The tests run each check on the reference and on known-wrong variants defined
below, which each check must reject: scaling by d instead of sqrt(d), the softmax over the query axis,
a causal mask off by one (either way), sine and cosine swapped, the encodings recomputed per batch
with the wrong length, the loss counted on the source part, W^O missing (forward and parameter count).

The expected values are computed here independently: float64 loops for attention, einsum for whole
models, the closed form of the positional encoding with ``math.sin``/``math.cos``,
``F.scaled_dot_product_attention`` where its conventions match (scale 1/sqrt(H), top-left causal mask).

Shapes: B batch, S keys (source), k or T queries, H hidden size, V vocabulary, L layers.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import course_solutions.nmt as nmt
from course_lib import data, pig_latin
from course_solutions.nmt import (
    CausalScaledDotAttention,
    DecoderOnlyTransformer,
    MultiHeadCausalScaledDotAttention,
    ScaledDotAttention,
    TransformerDecoder,
    TransformerEncoder,
    calc_parameters_decoder,
    decoder_only_example,
    decoder_only_loss,
    greedy_translate,
    greedy_translate_many,
    positional_encoding,
)

F64 = dict(atol=1e-10, rtol=1e-10)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# =================================================================================================
# the course's vocabulary and batches (course_lib.pig_latin)


def make_vocab(eop: bool = True):
    """The handout's 29 tokens (26 letters and '-', SOS, EOS), plus EOP with ``eop``."""
    alphabet = "-abcdefghijklmnopqrstuvwxyz"
    return pig_latin.build_vocab([(alphabet, alphabet)], eop=eop)


VOCAB = make_vocab()


def word_batch(pairs, vocab=VOCAB):
    """One length group's batch as pig_latin.batches makes it (characters, then EOS)."""
    (batch,) = pig_latin.batches(pairs, vocab, batch_size=len(pairs))
    return batch


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """float64, every parameter (biases too) random, so that forgetting one shows."""
    torch.manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


# =================================================================================================
# independent computations


def attention_by_loops(module, queries, keys, values, causal=False):
    """Context (B, k, H) and weights (B, S, k), one query and one key at a time (float64)."""
    Wq, bq, Wk, bk, Wv, bv = (t.detach() for t in (module.Q.weight, module.Q.bias, module.K.weight,
                                                   module.K.bias, module.V.weight, module.V.bias))
    B, k, H = queries.shape
    S = keys.size(1)
    context = torch.zeros(B, k, H, dtype=torch.float64)
    weights = torch.zeros(B, S, k, dtype=torch.float64)
    for b in range(B):
        for t in range(k):
            q = Wq @ queries[b, t] + bq
            allowed = [i for i in range(S) if not causal or i <= t]
            scores = [float((Wk @ keys[b, i] + bk) @ q) / math.sqrt(H) for i in allowed]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            for i, e in zip(allowed, exps, strict=True):
                weights[b, i, t] = e / sum(exps)
                context[b, t] += weights[b, i, t] * (Wv @ values[b, i] + bv)
    return context, weights


def linear(x, layer):
    return torch.einsum("...i,oi->...o", x, layer.weight.detach()) + layer.bias.detach()


def attention_einsum(module, queries, keys, values, causal):
    """(context (B, T, H), weights (B, S, T)) by einsum; -inf where key > query when causal."""
    q, k, v = linear(queries, module.Q), linear(keys, module.K), linear(values, module.V)
    scores = torch.einsum("bth,bsh->bst", q, k) / math.sqrt(q.size(-1))
    if causal:
        S, T = scores.shape[1:]
        later = torch.tensor([[s > t for t in range(T)] for s in range(S)])
        scores = scores.masked_fill(later, float("-inf"))
    weights = torch.softmax(scores, dim=1)
    return torch.einsum("bst,bsh->bth", weights, v), weights


def multihead_einsum(module, x):
    heads = [attention_einsum(head, x, x, x, causal=True) for head in module.heads]
    return linear(torch.cat([c for c, _ in heads], dim=-1), module.W_O), torch.stack([w for _, w in heads], 1)


def pe_closed_form(max_len, d_model):
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        for i in range(0, d_model, 2):
            angle = pos / 10000 ** (i / d_model)
            pe[pos, i] = math.sin(angle)
            if i + 1 < d_model:
                pe[pos, i + 1] = math.cos(angle)
    return pe


def embed_einsum(model, inputs):
    """Embeddings + the closed form rounded to float32 (the models keep the encodings in float32)."""
    T = inputs.size(1)
    return model.embedding.weight.detach()[inputs] + pe_closed_form(T, model.embedding.embedding_dim).float().double()


def mlp_einsum(mlp, x):
    return torch.relu(linear(x, mlp[0]))


def encoder_einsum(model, inputs):
    x = embed_einsum(model, inputs)
    for attention, mlp in zip(model.self_attentions, model.attention_mlps, strict=True):
        x = x + attention_einsum(attention, x, x, x, causal=False)[0]
        x = x + mlp_einsum(mlp, x)
    return x


def decoder_einsum(model, inputs, annotations):
    x = embed_einsum(model, inputs)
    cross, selfs = [], []
    for sa, ea, mlp in zip(model.self_attentions, model.encoder_attentions, model.attention_mlps, strict=True):
        c, w_self = attention_einsum(sa, x, x, x, causal=True)
        x = x + c
        c, w_cross = attention_einsum(ea, x, annotations, annotations, causal=False)
        x = x + c
        x = x + mlp_einsum(mlp, x)
        cross.append(w_cross)
        selfs.append(w_self)
    return linear(x, model.out), cross, selfs


def decoder_only_einsum(model, inputs):
    x = embed_einsum(model, inputs)
    for attention, mlp in zip(model.self_attentions, model.attention_mlps, strict=True):
        if isinstance(attention, MultiHeadCausalScaledDotAttention):
            x = x + multihead_einsum(attention, x)[0]
        else:
            x = x + attention_einsum(attention, x, x, x, causal=True)[0]
        x = x + mlp_einsum(mlp, x)
    return linear(x, model.out)


def count_by_hand(V, H, L, heads):
    """Parameters of the decoder-only model, layer by layer (weights + biases)."""
    embedding, output = V * H, H * V + V
    qkv = 3 * (H * H + H)
    w_o = (heads * H) * H + H if heads > 1 else 0
    mlp = H * H + H
    return embedding + L * (heads * qkv + w_o + mlp) + output


# =================================================================================================
# known-wrong variants (each must be rejected by the checks below)


class ScaledByDAttention(ScaledDotAttention):
    """Wrong: divides the scores by d instead of sqrt(d)."""

    def forward(self, queries, keys, values):
        queries = queries.unsqueeze(1) if queries.dim() == 2 else queries
        scores = self.K(keys) @ self.Q(queries).transpose(1, 2) / self.hidden_size
        weights = torch.softmax(scores, dim=1)
        return weights.transpose(1, 2) @ self.V(values), weights


class QueryAxisSoftmaxAttention(ScaledDotAttention):
    """Wrong: the softmax normalises over the queries (dim 2 of (B, S, k)) instead of the keys."""

    def forward(self, queries, keys, values):
        queries = queries.unsqueeze(1) if queries.dim() == 2 else queries
        scores = self.K(keys) @ self.Q(queries).transpose(1, 2) / math.sqrt(self.hidden_size)
        weights = torch.softmax(scores, dim=2)
        return weights.transpose(1, 2) @ self.V(values), weights


class ShiftedMaskAttention(CausalScaledDotAttention):
    """Wrong: the causal mask off by one; ``keep`` is the tril diagonal of the allowed keys (0 is right)."""

    keep = 1

    def forward(self, queries, keys, values):
        queries = queries.unsqueeze(1) if queries.dim() == 2 else queries
        scores = self.K(keys) @ self.Q(queries).transpose(1, 2) / math.sqrt(self.hidden_size)
        S, k = scores.shape[1:]
        allowed = torch.ones(k, S, dtype=torch.bool).tril(self.keep).T  # (S, k): key i allowed for query t
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=1)
        return weights.transpose(1, 2) @ self.V(values), weights


class PeekOneAheadAttention(ShiftedMaskAttention):
    keep = 1


class NoSelfAttention(ShiftedMaskAttention):
    keep = -1


def swapped_positional_encoding(max_len, d_model):
    """Wrong: cosine on the even features, sine on the odd ones."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    feature = torch.arange(d_model)
    angles = pos / 10000.0 ** ((feature - feature % 2).double() / d_model)
    return torch.where(feature % 2 == 0, torch.cos(angles), torch.sin(angles)).float()


class SwappedEncoder(TransformerEncoder):
    """Wrong: its pre-computed encodings have sine and cosine swapped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.positional_encodings = swapped_positional_encoding(*self.positional_encodings.shape)


class RecomputedEncoder(TransformerEncoder):
    """Wrong: recomputes the encodings in every forward, for as many positions as the batch has rows."""

    def embed(self, inputs):
        B, T = inputs.shape
        return self.embedding(inputs) + nmt.positional_encoding(B, self.hidden_size)[:T]


class RecomputedDecoderOnly(DecoderOnlyTransformer):
    """Wrong: recomputes the encodings in every forward (right values; not pre-computed once)."""

    def embed(self, inputs):
        return self.embedding(inputs) + nmt.positional_encoding(inputs.size(1), self.hidden_size)


class NoWOMultiHead(MultiHeadCausalScaledDotAttention):
    """Wrong: averages the heads instead of projecting their concatenation with W^O."""

    def forward(self, queries, keys, values):
        contexts, weights = zip(*(head(queries, keys, values) for head in self.heads), strict=True)
        return torch.stack(contexts).mean(0), torch.stack(weights, 1)


def example_loss_on_everything(src, tgt, vocab):
    """Wrong: the loss counts every prediction, the source part included."""
    inputs, targets, mask = decoder_only_example(src, tgt, vocab)
    return inputs, targets, torch.ones_like(mask)


def example_loss_from_last_source_char(src, tgt, vocab):
    """Wrong: the loss also counts predicting <EOP> from the last source character."""
    inputs, targets, mask = decoder_only_example(src, tgt, vocab)
    mask = mask.clone()
    mask[:, src.size(1) - 1] = True
    return inputs, targets, mask


def loss_over_all_positions(logits, targets, mask):
    """Wrong: ignores the mask."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def count_without_wo(V, H, L, heads=1):
    """Wrong: forgets W^O."""
    return V * H + L * (heads * 3 * (H * H + H) + H * H + H) + H * V + V


# =================================================================================================
# checks (adapters): each raises AssertionError when the implementation is wrong


ATTENTION_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 4), (3, 4, 4, 8), (2, 6, 3, 5)]  # (B, k, S, H)


def check_scaled_dot_attention(cls, causal=False) -> None:
    """3-D queries (B, k, H) and 2-D queries (B, H) against the loops; the context against SDPA."""
    for seed, (B, k, S, H) in enumerate(ATTENTION_SHAPES):
        if causal:
            S = k  # self-attention: query t is position t
        module = randomise(cls(H), seed)
        g = gen(seed)
        queries, keys, values = (torch.randn(B, n, H, generator=g, dtype=torch.float64) for n in (k, S, S))
        with torch.no_grad():
            context, weights = module(queries, keys, values)
        assert context.shape == (B, k, H), f"context: expected (B, k, H) = {(B, k, H)}, got {tuple(context.shape)}"
        assert weights.shape == (B, S, k), f"weights: expected (B, S, k) = {(B, S, k)}, got {tuple(weights.shape)}"
        expected_context, expected_weights = attention_by_loops(module, queries, keys, values, causal)
        torch.testing.assert_close(weights, expected_weights, **F64, msg=lambda m, shape=(B, k, S, H): f"weights {shape}: {m}")
        torch.testing.assert_close(context, expected_context, **F64, msg=lambda m, shape=(B, k, S, H): f"context {shape}: {m}")
        with torch.no_grad():
            sdpa = F.scaled_dot_product_attention(module.Q(queries), module.K(keys), module.V(values), is_causal=causal)
        torch.testing.assert_close(context, sdpa, **F64, msg=lambda m: f"context vs SDPA: {m}")
        # a 2-D query is one query (k = 1); causal: it is position 0
        with torch.no_grad():
            context, weights = module(queries[:, 0], keys, values)
        assert context.shape == (B, 1, H) and weights.shape == (B, S, 1), (tuple(context.shape), tuple(weights.shape))
        expected_context, expected_weights = attention_by_loops(module, queries[:, :1], keys, values, causal)
        torch.testing.assert_close(weights, expected_weights, **F64)
        torch.testing.assert_close(context, expected_context, **F64)


def check_causal(module, T: int, seed: int = 0) -> None:
    """Self-attention on (B, T, H): exactly zero weight on later keys, rows of weights over the keys sum to
    1, and changing positions after t changes no output at t or before, for every t."""
    H = module.hidden_size
    g = gen(seed)
    x = torch.randn(2, T, H, generator=g, dtype=torch.float64)
    with torch.no_grad():
        context, weights = module(x, x, x)
        weights = weights if weights.dim() == 3 else weights.flatten(0, 1)  # multi-head: (B*heads, S, k)
        assert torch.isfinite(context).all(), "the context has NaN or inf (a query that may see no key?)"
        torch.testing.assert_close(weights.sum(1), torch.ones_like(weights.sum(1)), **F64,
                                   msg="the weights of each query must sum to 1 over the keys")
        later = torch.ones(T, T, dtype=torch.bool).tril(-1)  # (key i, query t) with i > t
        assert bool((weights[:, later] == 0).all()), "a query attends to a later key"
        for t in range(T - 1):
            y = x.clone()
            y[:, t + 1:] = torch.randn(2, T - t - 1, H, generator=g, dtype=torch.float64) * 3
            changed, _ = module(y, y, y)
            torch.testing.assert_close(changed[:, :t + 1], context[:, :t + 1], atol=1e-12, rtol=0,
                                       msg=lambda m, t=t: f"T={T}: output at <= {t} depends on later inputs: {m}")
        y = x.clone()
        y[:, T - 1] += 1.0
        changed, _ = module(y, y, y)
        assert not torch.allclose(changed[:, T - 1], context[:, T - 1]), "the last query ignores its own position"


def check_positional_encoding(fn) -> None:
    for max_len, d in [(1, 1), (1, 2), (6, 4), (7, 5), (60, 16), (1000, 32)]:
        pe = fn(max_len, d)
        assert pe.shape == (max_len, d) and pe.dtype == torch.float32, (tuple(pe.shape), pe.dtype)
        torch.testing.assert_close(pe.double(), pe_closed_form(max_len, d), atol=2e-7, rtol=0,
                                   msg=lambda m, max_len=max_len, d=d: f"positional_encoding({max_len}, {d}): {m}")


def _forbid_recomputing(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the positional encodings must be computed once in __init__, not in forward")

    monkeypatch.setattr(nmt, "positional_encoding", forbidden)
    monkeypatch.setattr(torch, "sin", forbidden)
    monkeypatch.setattr(torch, "cos", forbidden)


def check_precomputed_encodings(build, monkeypatch, hidden_sizes=(4, 7, 16)) -> None:
    """``build(hidden_size, num_layers=0)``: a buffer (max_len, H) of the closed form, made in __init__;
    with no layers, forward adds its first T rows to the embeddings, for lengths longer than the batch."""
    for H in hidden_sizes:
        model = randomise(build(H), H)
        buffers = dict(model.named_buffers())
        assert "positional_encodings" in buffers, f"no buffer named positional_encodings in {sorted(buffers)}"
        pe = buffers["positional_encodings"]
        assert not any(p is pe for p in model.parameters()), "the encodings are not learned"
        assert pe.shape == (model.max_len, H) and model.max_len >= 46, (tuple(pe.shape), model.max_len)
        torch.testing.assert_close(pe, pe_closed_form(model.max_len, H), atol=2e-7, rtol=0,
                                   msg=lambda m: f"the pre-computed encodings vs the closed form: {m}")
        with monkeypatch.context() as patch:
            _forbid_recomputing(patch)
            for T in (1, 3, 17, 46):
                inputs = torch.randint(0, VOCAB.size, (2, T), generator=gen(T))
                with torch.no_grad():
                    out = model(inputs, torch.zeros(2, 3, H, dtype=torch.float64)) if isinstance(
                        model, TransformerDecoder) else model(inputs)
                out = out[0] if isinstance(out, tuple) else out
                expected = embed_einsum(model, inputs)
                if hasattr(model, "out"):
                    expected = linear(expected, model.out)
                torch.testing.assert_close(out, expected, atol=1e-6, rtol=0,
                                           msg=lambda m, H=H, T=T: f"H={H}, T={T}: embedding + PE[:T]: {m}")


def check_multihead(cls) -> None:
    for seed, (B, T, H, heads) in enumerate([(2, 5, 4, 2), (1, 7, 6, 3), (3, 1, 5, 4)]):
        module = randomise(cls(H, heads), seed)
        x = torch.randn(B, T, H, generator=gen(seed), dtype=torch.float64)
        with torch.no_grad():
            context, weights = module(x, x, x)
        assert context.shape == (B, T, H), f"expected (B, T, H) = {(B, T, H)}, got {tuple(context.shape)}"
        expected, expected_weights = multihead_einsum(module, x)
        torch.testing.assert_close(context, expected, **F64, msg=lambda m: f"multi-head context: {m}")
        torch.testing.assert_close(weights, expected_weights, **F64, msg=lambda m: f"multi-head weights: {m}")
        # each head as SDPA on its own projections, concatenated, then W^O
        with torch.no_grad():
            heads_out = [F.scaled_dot_product_attention(h.Q(x), h.K(x), h.V(x), is_causal=True) for h in module.heads]
            torch.testing.assert_close(context, module.W_O(torch.cat(heads_out, -1)), **F64)


def check_decoder_only_example(fn) -> None:
    for pairs in ([("team", "eamtay")], [("shop", "opshay"), ("team", "eamtay"), ("clap", "apclay")],
                  [("i", "iway")], [("impress", "impressway"), ("example", "exampleway")]):
        src, tgt = word_batch(pairs)
        inputs, targets, mask = fn(src, tgt, VOCAB)
        n = 1 + len(pairs[0][0]) + 1 + len(pairs[0][1])  # <SOS> source <EOP> target (then <EOS>)
        assert inputs.shape == targets.shape == mask.shape == (len(pairs), n), (inputs.shape, targets.shape, mask.shape)
        assert mask.dtype == torch.bool
        for b, (s, t) in enumerate(pairs):
            seq = [VOCAB.sos, *VOCAB.encode(s), VOCAB.eop, *VOCAB.encode(t), VOCAB.eos]
            assert inputs[b].tolist() == seq[:-1], (pairs[b], inputs[b].tolist(), seq[:-1])
            assert targets[b].tolist() == seq[1:], (pairs[b], targets[b].tolist(), seq[1:])
            counted = [j for j in range(n) if mask[b, j]]
            first = len(s) + 1  # the position whose input is <EOP>
            assert counted == list(range(first, n)), f"{pairs[b]}: loss on positions {counted}, expected {first}..{n - 1}"
            assert inputs[b, first] == VOCAB.eop and targets[b][mask[b]].tolist() == [*VOCAB.encode(t), VOCAB.eos]


def check_decoder_only_loss(fn) -> None:
    for seed, (B, n, V) in enumerate([(1, 5, 7), (3, 9, 30), (4, 12, 30)]):
        g = gen(seed)
        logits = torch.randn(B, n, V, generator=g, dtype=torch.float64) * 2
        targets = torch.randint(0, V, (B, n), generator=g)
        mask = torch.zeros(B, n, dtype=torch.bool)
        mask[:, n // 2:] = True
        total, count = 0.0, 0
        for b in range(B):
            for j in range(n):
                if mask[b, j]:
                    row = logits[b, j].tolist()
                    top = max(row)
                    total += top + math.log(sum(math.exp(v - top) for v in row)) - row[targets[b, j]]
                    count += 1
        out = fn(logits, targets, mask)
        assert out.shape == (), f"the loss must be a 0-dim tensor, got shape {tuple(out.shape)}"
        assert abs(out.item() - total / count) < 1e-10, f"expected {total / count:.8f}, got {out.item():.8f}"


def check_calc_parameters(fn) -> None:
    for V, H, L, heads in [(29, 16, 1, 1), (30, 32, 2, 1), (30, 32, 2, 4), (30, 64, 3, 2), (30, 8, 0, 3),
                           (30, 24, 1, 3), (7, 1, 2, 2)]:
        real = sum(p.numel() for p in DecoderOnlyTransformer(V, H, L, heads).parameters())
        assert fn(V, H, L, heads) == real, f"{(V, H, L, heads)}: expected {real}, got {fn(V, H, L, heads)}"


# =================================================================================================
# ScaledDotAttention and CausalScaledDotAttention


def test_scaled_dot_attention_matches_the_loops_and_sdpa():
    check_scaled_dot_attention(ScaledDotAttention)


def test_causal_scaled_dot_attention_matches_the_loops_and_sdpa():
    check_scaled_dot_attention(CausalScaledDotAttention, causal=True)


def test_attention_layout():
    module = ScaledDotAttention(6)
    for name in ("Q", "K", "V"):
        layer = getattr(module, name)
        assert isinstance(layer, nn.Linear) and layer.bias is not None and (layer.in_features, layer.out_features) == (6, 6)
    assert sum(p.numel() for p in module.parameters()) == 3 * (36 + 6)
    assert sum(p.numel() for p in CausalScaledDotAttention(6).parameters()) == 3 * (36 + 6)


def test_attention_weights_are_a_softmax_over_the_keys():
    module = randomise(ScaledDotAttention(5), 0)
    g = gen(0)
    _, weights = module(torch.randn(3, 4, 5, generator=g, dtype=torch.float64),
                        *(torch.randn(3, 6, 5, generator=g, dtype=torch.float64),) * 2)
    torch.testing.assert_close(weights.sum(1), torch.ones(3, 4, dtype=torch.float64), **F64)
    assert (weights > 0).all()


@pytest.mark.parametrize("T", [1, 2, 5, 13, 46])
def test_causal_attention_never_looks_ahead(T):
    check_causal(randomise(CausalScaledDotAttention(6), T), T)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 20), H=st.integers(1, 8), seed=st.integers(0, 1000))
def test_causal_attention_never_looks_ahead_for_any_length(T, H, seed):
    check_causal(randomise(CausalScaledDotAttention(H), seed), T, seed)


@pytest.mark.parametrize("wrong", [ScaledByDAttention, QueryAxisSoftmaxAttention])
def test_attention_check_rejects_wrong_scaling_and_axis(wrong):
    with pytest.raises(AssertionError):
        check_scaled_dot_attention(wrong)


@pytest.mark.parametrize("wrong", [PeekOneAheadAttention, NoSelfAttention])
def test_causal_checks_reject_a_mask_off_by_one(wrong):
    with pytest.raises(AssertionError):
        check_scaled_dot_attention(wrong, causal=True)
    with pytest.raises(AssertionError):
        check_causal(randomise(wrong(6), 0), 5)


def test_causal_attention_with_fewer_queries_than_keys():
    """Query t is position t: with k < S, query t still sees keys 0..t (SDPA's top-left mask)."""
    module = randomise(CausalScaledDotAttention(4), 3)
    g = gen(3)
    q, kv = torch.randn(2, 3, 4, generator=g, dtype=torch.float64), torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        context, weights = module(q, kv, kv)
        sdpa = F.scaled_dot_product_attention(module.Q(q), module.K(kv), module.V(kv), is_causal=True)
    expected_context, expected_weights = attention_by_loops(module, q, kv, kv, causal=True)
    torch.testing.assert_close(weights, expected_weights, **F64)
    torch.testing.assert_close(context, expected_context, **F64)
    torch.testing.assert_close(context, sdpa, **F64)


# =================================================================================================
# MultiHeadCausalScaledDotAttention


def test_multihead_matches_heads_concatenated_then_w_o():
    check_multihead(MultiHeadCausalScaledDotAttention)


def test_multihead_layout_and_causality():
    module = MultiHeadCausalScaledDotAttention(8, 3)
    assert len(module.heads) == 3 and all(isinstance(h, CausalScaledDotAttention) and h.hidden_size == 8
                                          for h in module.heads)
    assert isinstance(module.W_O, nn.Linear) and (module.W_O.in_features, module.W_O.out_features) == (24, 8)
    assert module.W_O.bias is not None
    assert sum(p.numel() for p in module.parameters()) == 3 * 3 * (64 + 8) + 24 * 8 + 8
    for T in (1, 4, 11):
        check_causal(randomise(MultiHeadCausalScaledDotAttention(5, 2), T), T)


def test_multihead_check_rejects_a_missing_w_o():
    with pytest.raises(AssertionError):
        check_multihead(NoWOMultiHead)


# =================================================================================================
# positional encodings


def test_positional_encoding_is_the_closed_form():
    check_positional_encoding(positional_encoding)
    pe = positional_encoding(3, 4)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))  # sin 0, cos 0
    assert abs(pe[1, 0].item() - math.sin(1)) < 1e-7 and abs(pe[1, 3].item() - math.cos(1 / 100)) < 1e-7


def test_positional_encoding_check_rejects_sin_and_cos_swapped():
    with pytest.raises(AssertionError):
        check_positional_encoding(swapped_positional_encoding)


@pytest.mark.parametrize("build", [
    lambda H: TransformerEncoder(VOCAB.size, H, 0),
    lambda H: TransformerDecoder(VOCAB.size, H, 0),
    lambda H: DecoderOnlyTransformer(VOCAB.size, H, 0),
], ids=["encoder", "decoder", "decoder_only"])
def test_models_precompute_the_encodings_once(build, monkeypatch):
    check_precomputed_encodings(build, monkeypatch)


@pytest.mark.parametrize("wrong", [SwappedEncoder, RecomputedEncoder, RecomputedDecoderOnly])
def test_encoding_checks_reject_swapped_or_recomputed_encodings(wrong, monkeypatch):
    with pytest.raises(AssertionError):
        check_precomputed_encodings(lambda H: wrong(VOCAB.size, H, 0), monkeypatch)


def test_recomputing_with_the_wrong_length_gives_wrong_values():
    """Without the guard on recomputation, the batch-size-long encodings are still caught by value."""
    model = randomise(RecomputedEncoder(VOCAB.size, 8, 0), 0)
    inputs = torch.randint(0, VOCAB.size, (4, 3), generator=gen(0))
    wrong, _ = model(torch.cat([inputs, inputs]))  # 8 rows: right values for T=3
    torch.testing.assert_close(wrong[:4], embed_einsum(model, inputs), atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError):  # 2 rows, 5 positions: too few encodings
        model(torch.randint(0, VOCAB.size, (2, 5), generator=gen(1)))


def test_the_encodings_move_with_the_model():
    model = DecoderOnlyTransformer(VOCAB.size, 8, 1).double()
    assert model.positional_encodings.dtype == torch.float64
    assert "positional_encodings" not in model.state_dict()  # a constant, not a learned weight
    with pytest.raises(ValueError, match="max_len"):
        DecoderOnlyTransformer(VOCAB.size, 8, 1, max_len=4)(torch.zeros(1, 5, dtype=torch.long))


# =================================================================================================
# encoder and decoder


@pytest.mark.parametrize("H,L", [(4, 1), (8, 2), (5, 3)])
def test_encoder_matches_einsum(H, L):
    model = randomise(TransformerEncoder(VOCAB.size, H, L), H + L)
    inputs = torch.randint(0, VOCAB.size, (3, 7), generator=gen(H))
    with torch.no_grad():
        annotations, hidden = model(inputs)
    assert hidden is None and annotations.shape == (3, 7, H)
    torch.testing.assert_close(annotations, encoder_einsum(model, inputs), atol=1e-9, rtol=1e-9)
    assert [type(a) for a in model.self_attentions] == [ScaledDotAttention] * L and len(model.attention_mlps) == L


@pytest.mark.parametrize("H,L,S,T", [(4, 1, 5, 3), (8, 2, 4, 7), (5, 3, 1, 1)])
def test_decoder_matches_einsum(H, L, S, T):
    model = randomise(TransformerDecoder(VOCAB.size, H, L), H + L)
    g = gen(H)
    inputs = torch.randint(0, VOCAB.size, (2, T), generator=g)
    annotations = torch.randn(2, S, H, generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits, (cross, selfs) = model(inputs, annotations)
    expected, expected_cross, expected_selfs = decoder_einsum(model, inputs, annotations)
    assert logits.shape == (2, T, VOCAB.size) and cross.shape == (L, 2, S, T) and selfs.shape == (L, 2, T, T)
    torch.testing.assert_close(logits, expected, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(cross, torch.stack(expected_cross), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(selfs, torch.stack(expected_selfs), atol=1e-9, rtol=1e-9)
    assert [type(a) for a in model.self_attentions] == [CausalScaledDotAttention] * L
    assert [type(a) for a in model.encoder_attentions] == [ScaledDotAttention] * L


def test_decoder_is_causal_and_reads_the_annotations():
    model = randomise(TransformerDecoder(VOCAB.size, 6, 2), 0)
    g = gen(0)
    inputs = torch.randint(0, VOCAB.size, (2, 9), generator=g)
    annotations = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits, _ = model(inputs, annotations)
        for t in range(8):
            changed = inputs.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % VOCAB.size
            torch.testing.assert_close(model(changed, annotations)[0][:, :t + 1], logits[:, :t + 1], atol=1e-12, rtol=0)
        other = model(inputs, annotations + 1)[0]
    assert not torch.isclose(other, logits).any(), "every output must depend on the encoder's annotations"


def test_encoder_decoder_learns_a_tiny_copy_task():
    """Sanity: trained together for 150 steps, encoder and decoder reproduce a source word by teacher forcing."""
    torch.manual_seed(0)
    encoder, decoder = TransformerEncoder(VOCAB.size, 16, 1), TransformerDecoder(VOCAB.size, 16, 1)
    src, tgt = word_batch([("cat", "atcay"), ("dog", "ogday"), ("pig", "igpay"), ("owl", "owlway")][:3])
    decoder_inputs = torch.cat([torch.full((3, 1), VOCAB.sos), tgt[:, :-1]], dim=1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=0.01)
    for _ in range(150):
        logits, _ = decoder(decoder_inputs, encoder(src)[0])
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 and torch.equal(logits.argmax(-1), tgt)


# =================================================================================================
# decoder-only transformer


@pytest.mark.parametrize("H,L,heads", [(4, 1, 1), (8, 2, 1), (6, 2, 3), (5, 1, 2)])
def test_decoder_only_forward_matches_einsum(H, L, heads):
    model = randomise(DecoderOnlyTransformer(VOCAB.size, H, L, heads), H * L * heads)
    inputs = torch.randint(0, VOCAB.size, (3, 11), generator=gen(H))
    with torch.no_grad():
        logits = model(inputs)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 11, VOCAB.size)
    torch.testing.assert_close(logits, decoder_only_einsum(model, inputs), atol=1e-9, rtol=1e-9)
    kind = CausalScaledDotAttention if heads == 1 else MultiHeadCausalScaledDotAttention
    assert [type(a) for a in model.self_attentions] == [kind] * L


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 24), heads=st.integers(1, 3), seed=st.integers(0, 1000))
def test_decoder_only_never_looks_ahead(T, heads, seed):
    model = randomise(DecoderOnlyTransformer(VOCAB.size, 6, 2, heads), seed)
    g = gen(seed)
    inputs = torch.randint(0, VOCAB.size, (2, T), generator=g)
    with torch.no_grad():
        logits = model(inputs)
        for t in range(T - 1):
            changed = inputs.clone()
            changed[:, t + 1:] = torch.randint(0, VOCAB.size, (2, T - t - 1), generator=g)
            torch.testing.assert_close(model(changed)[:, :t + 1], logits[:, :t + 1], atol=1e-12, rtol=0)
        changed = inputs.clone()
        changed[:, -1] = (changed[:, -1] + 1) % VOCAB.size
        assert not torch.allclose(model(changed)[:, -1], logits[:, -1])


def test_decoder_only_example_builds_sos_source_eop_target_eos():
    check_decoder_only_example(decoder_only_example)


@pytest.mark.parametrize("wrong", [example_loss_on_everything, example_loss_from_last_source_char])
def test_example_check_rejects_the_loss_on_the_source(wrong):
    with pytest.raises(AssertionError):
        check_decoder_only_example(wrong)


def test_decoder_only_example_refuses_what_it_cannot_build():
    src, tgt = word_batch([("team", "eamtay")])
    with pytest.raises(ValueError, match="EOP"):
        decoder_only_example(src, tgt, make_vocab(eop=False))
    with pytest.raises(ValueError, match="EOS"):
        decoder_only_example(src[:, :-1], tgt, VOCAB)


def test_decoder_only_loss_is_the_mean_over_the_masked_positions():
    check_decoder_only_loss(decoder_only_loss)
    with pytest.raises(AssertionError):
        check_decoder_only_loss(loss_over_all_positions)


def test_decoder_only_loss_ignores_the_source_predictions():
    """Whatever the model predicts on the source part, the loss of a batch is the same."""
    src, tgt = word_batch([("shop", "opshay"), ("team", "eamtay")])
    inputs, targets, mask = decoder_only_example(src, tgt, VOCAB)
    logits = torch.randn(*targets.shape, VOCAB.size, generator=gen(0), dtype=torch.float64)
    other = logits.clone()
    other[:, :5] = torch.randn(2, 5, VOCAB.size, generator=gen(1), dtype=torch.float64) * 5
    assert decoder_only_loss(other, targets, mask) == decoder_only_loss(logits, targets, mask)
    other[:, 5] += torch.randn(2, VOCAB.size, generator=gen(2), dtype=torch.float64)  # the prediction from <EOP>
    assert decoder_only_loss(other, targets, mask) != decoder_only_loss(logits, targets, mask)


@pytest.mark.parametrize("wrong", [None, count_without_wo])
def test_calc_parameters_decoder_counts_every_parameter(wrong):
    if wrong is None:
        check_calc_parameters(calc_parameters_decoder)
        for V, H, L, heads in [(30, 32, 2, 1), (30, 32, 2, 4), (30, 64, 1, 2)]:
            assert calc_parameters_decoder(V, H, L, heads) == count_by_hand(V, H, L, heads)
        assert calc_parameters_decoder(30, 32, 2, 4) == 960 + 2 * (4 * 3 * 1056 + 4128 + 1056) + 990
    else:
        with pytest.raises(AssertionError):
            check_calc_parameters(wrong)


# =================================================================================================
# greedy translation


class ScriptedModel(nn.Module):
    """Predicts ``script[j]`` after the prompt and j generated tokens; records what it is fed."""

    def __init__(self, prompt_len, script):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.prompt_len, self.script, self.fed = prompt_len, script, []

    def forward(self, inputs):
        self.fed.append(inputs.tolist())
        logits = torch.zeros(*inputs.shape, VOCAB.size)
        step = inputs.size(1) - self.prompt_len
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = 1.0
        return logits


def test_greedy_translate_feeds_the_prompt_and_stops_at_eos():
    word = "team"
    script = [*VOCAB.encode("eamtay"), VOCAB.eos, *VOCAB.encode("zzz")]
    model = ScriptedModel(len(word) + 2, script).train()
    assert greedy_translate(model, word, VOCAB) == "eamtay"
    assert model.fed[0] == [[VOCAB.sos, *VOCAB.encode(word), VOCAB.eop]]
    assert model.fed[-1] == [[VOCAB.sos, *VOCAB.encode(word), VOCAB.eop, *VOCAB.encode("eamtay")]]
    assert len(model.fed) == 7 and model.training  # six characters then <EOS>; the mode is restored


def test_greedy_translate_stops_at_max_len():
    model = ScriptedModel(4, VOCAB.encode("a"))  # never says <EOS>
    assert greedy_translate(model, "ab", VOCAB, max_len=5) == "aaaaa" and len(model.fed) == 5
    model.fed.clear()
    assert greedy_translate(model, "ab", VOCAB) == "a" * 12  # default len(word) + 10


def test_greedy_translate_many_agrees_with_one_at_a_time():
    torch.manual_seed(0)
    model = DecoderOnlyTransformer(VOCAB.size, 8, 1, 2)
    words = ["team", "i", "shop", "impress", "of", "team", "clap"]
    one_by_one = [greedy_translate(model, w, VOCAB, max_len=6) for w in words]
    assert greedy_translate_many(model, words, VOCAB, max_len=6) == one_by_one
    assert greedy_translate_many(model, [], VOCAB) == []


def test_decoder_only_learns_a_few_words():
    """Sanity: trained on one length group's batch, the greedy translations are its targets."""
    torch.manual_seed(0)
    pairs = [("shop", "opshay"), ("team", "eamtay"), ("clap", "apclay"), ("drip", "ipdray")]
    src, tgt = word_batch(pairs)
    inputs, targets, mask = decoder_only_example(src, tgt, VOCAB)
    model = DecoderOnlyTransformer(VOCAB.size, 32, 2, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        loss = decoder_only_loss(model(inputs), targets, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert greedy_translate_many(model, [s for s, _ in pairs], VOCAB) == [t for _, t in pairs]


def test_decoder_only_example_on_every_batch_of_the_small_data_set():
    try:
        pairs = pig_latin.load_pairs("small")
    except data.DataError as err:  # no mirror, no cache and no network
        pytest.skip(f"Pig Latin data is not available: {err}")
    vocab = pig_latin.build_vocab(pairs, eop=True)
    assert vocab.size == 30
    count = 0
    for src, tgt in pig_latin.batches(pairs, vocab, 64):
        inputs, targets, mask = decoder_only_example(src, tgt, vocab)
        n_src = src.size(1) - 1
        assert (inputs[:, 0] == vocab.sos).all() and torch.equal(inputs[:, 1:n_src + 1], src[:, :-1])
        assert (inputs[:, n_src + 1] == vocab.eop).all() and torch.equal(targets[:, -tgt.size(1):], tgt)
        assert (mask.sum(1) == tgt.size(1)).all() and torch.equal(targets[mask].view(len(src), -1), tgt)
        count += len(src)
    assert count == len(pairs) == 3198
