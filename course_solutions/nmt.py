"""Reference solutions of ``nmt_pig_latin`` (English to Pig Latin with transformers): instructor material.

The handout's models (sections 2.2 and 2.3), in the original course code's shapes and conventions:

- :class:`ScaledDotAttention`: biased linear maps Q, K, V of ``hidden_size``; queries ``(B, H)`` or
  ``(B, k, H)``, keys and values ``(B, S, H)``; returns ``(context (B, k, H), attention_weights (B, S, k))``,
  the weights a softmax over the **key** axis (``dim=1``) of ``K q / sqrt(hidden_size)``.
- :class:`CausalScaledDotAttention`: the same, with ``-inf`` on every key after its query (key index
  ``i`` > query index ``t``) before the softmax.
- :class:`MultiHeadCausalScaledDotAttention`: ``num_heads`` causal heads, each of the full
  ``hidden_size``, concatenated and projected back by ``W_O = Linear(num_heads * hidden_size, hidden_size)``;
  returns ``(context (B, k, H), attention_weights (B, num_heads, S, k))``.
- :func:`positional_encoding`: the closed form of Vaswani et al. (sine on even features, cosine on odd).
  The models compute it **once**, in ``__init__``, as the buffer ``positional_encodings`` of
  ``(max_len, hidden_size)``, and add its first ``T`` rows to the embeddings in ``forward``.
- :class:`TransformerEncoder`, :class:`TransformerDecoder`: the simplified transformer of the handout
  (no layer norm, no dropout): per layer self-attention + residual, (decoder: cross-attention on the
  annotations + residual), MLP ``Linear-ReLU`` + residual.
- :class:`DecoderOnlyTransformer`: causal self-attention layers only; ``num_heads == 1`` uses one
  :class:`CausalScaledDotAttention` (no ``W_O``: what 2.3 Q1-3 train before multi-head attention exists),
  ``num_heads > 1`` a :class:`MultiHeadCausalScaledDotAttention`. ``forward`` returns the logits.
- :func:`decoder_only_example`, :func:`decoder_only_loss`: ``<SOS> source <EOP> target <EOS>``, the loss
  counted only on the predictions made from ``<EOP>`` on (the target characters and the final ``<EOS>``).
- :func:`greedy_translate` (one word) and :func:`greedy_translate_many` (a list, batched by length, the same
  answers): feed ``<SOS> word <EOP>``, append the argmax until ``<EOS>`` or ``max_len`` characters.
- :func:`calc_parameters_decoder`: the decoder-only model's parameter count, ``== sum(p.numel())``.

``vocab`` is a :class:`course_lib.pig_latin.Vocab` (fields ``sos``, ``eos``, ``eop``, ``encode``, ``decode``).
Shapes: B batch, S source (key) length, k or T query length, H hidden size, V vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from course_lib.pig_latin import Vocab

__all__ = ["ScaledDotAttention", "CausalScaledDotAttention", "MultiHeadCausalScaledDotAttention",
           "positional_encoding", "TransformerEncoder", "TransformerDecoder", "DecoderOnlyTransformer",
           "decoder_only_example", "decoder_only_loss", "greedy_translate", "greedy_translate_many",
           "calc_parameters_decoder", "MAX_LEN"]

#: Rows of the pre-computed positional encodings (the original course code's 1000; the longest
#: decoder-only sequence of the large data set is 46 tokens).
MAX_LEN = 1000


# ----------------------------------------------------------------------------------------- attention
class ScaledDotAttention(nn.Module):
    """Scaled dot-product attention with its own query, key and value maps (2.2.2 Q1)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.Q = nn.Linear(hidden_size, hidden_size)
        self.K = nn.Linear(hidden_size, hidden_size)
        self.V = nn.Linear(hidden_size, hidden_size)
        self.softmax = nn.Softmax(dim=1)  # over the keys of (B, S, k)
        self.scaling_factor = 1.0 / math.sqrt(hidden_size)

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The unnormalised weights ``(B, S, k)``: ``(W_k K_i) . (W_q q_t) / sqrt(H)``."""
        return torch.bmm(self.K(keys), self.Q(queries).transpose(1, 2)) * self.scaling_factor

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
        """queries ``(B, H)`` or ``(B, k, H)``, keys and values ``(B, S, H)`` ->
        ``(context (B, k, H), attention_weights (B, S, k))`` (a 2-D query gives ``k = 1``)."""
        if queries.dim() == 2:
            queries = queries.unsqueeze(1)
        attention_weights = self.softmax(self.scores(queries, keys))
        context = torch.bmm(attention_weights.transpose(1, 2), self.V(values))
        return context, attention_weights


class CausalScaledDotAttention(ScaledDotAttention):
    """Scaled dot-product attention where query ``t`` sees keys ``0..t`` only (2.2.2 Q2).

    Queries and keys index the same sequence: query ``t`` is position ``t``.
    """

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        scores = super().scores(queries, keys)  # (B, S, k)
        S, k = scores.shape[1:]
        future = torch.ones(S, k, dtype=torch.bool, device=scores.device).tril(diagonal=-1)  # key i > query t
        return scores.masked_fill(future, float("-inf"))


class MultiHeadCausalScaledDotAttention(nn.Module):
    """``Concat(head_1, ..., head_h) W_O``, each head a :class:`CausalScaledDotAttention` of ``hidden_size``."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.heads = nn.ModuleList([CausalScaledDotAttention(hidden_size) for _ in range(num_heads)])
        self.W_O = nn.Linear(num_heads * hidden_size, hidden_size)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
        """-> ``(context (B, k, H), attention_weights (B, num_heads, S, k))``."""
        contexts, weights = zip(*(head(queries, keys, values) for head in self.heads), strict=True)
        return self.W_O(torch.cat(contexts, dim=-1)), torch.stack(weights, dim=1)


# ------------------------------------------------------------------------------------ position encoding
def positional_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """``(max_len, d_model)`` float32: ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``
    (computed in float64; an odd ``d_model`` ends on a sine)."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    feature = torch.arange(d_model)
    angles = pos / 10000.0 ** ((feature - feature % 2).double() / d_model)
    return torch.where(feature % 2 == 0, torch.sin(angles), torch.cos(angles)).float()


class _Positional(nn.Module):
    """Token embedding plus the positional encodings pre-computed once (a buffer, not a parameter)."""

    def _init_embedding(self, vocab_size: int, hidden_size: int, max_len: int) -> None:
        self.vocab_size, self.hidden_size, self.max_len = vocab_size, hidden_size, max_len
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.register_buffer("positional_encodings", positional_encoding(max_len, hidden_size), persistent=False)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, H)`` embeddings plus ``positional_encodings[:T]``."""
        T = inputs.size(1)
        if T > self.max_len:
            raise ValueError(f"sequences of {T} tokens, longer than the {self.max_len} positions encoded "
                             f"(build the model with max_len >= {T})")
        return self.embedding(inputs) + self.positional_encodings[:T]


def _mlps(hidden_size: int, num_layers: int) -> nn.ModuleList:
    return nn.ModuleList([nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU()) for _ in range(num_layers)])


# --------------------------------------------------------------------------------------------- models
class TransformerEncoder(_Positional):
    """Embedding + positional encodings, then per layer: self-attention + residual, MLP + residual (2.2.2 Q3)."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, *, max_len: int = MAX_LEN):
        super().__init__()
        self.num_layers = num_layers
        self._init_embedding(vocab_size, hidden_size, max_len)
        self.self_attentions = nn.ModuleList([ScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.attention_mlps = _mlps(hidden_size, num_layers)

    def forward(self, inputs: torch.Tensor):
        """inputs ``(B, S)`` -> ``(annotations (B, S, H), None)`` (a transformer has no final hidden state)."""
        annotations = self.embed(inputs)
        for attention, mlp in zip(self.self_attentions, self.attention_mlps, strict=True):
            new_annotations, _ = attention(annotations, annotations, annotations)
            residual = annotations + new_annotations
            annotations = residual + mlp(residual)
        return annotations, None


class TransformerDecoder(_Positional):
    """Per layer: causal self-attention + residual, attention on the encoder's annotations + residual,
    MLP + residual; then a linear map to the vocabulary."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, *, max_len: int = MAX_LEN):
        super().__init__()
        self.num_layers = num_layers
        self._init_embedding(vocab_size, hidden_size, max_len)
        self.self_attentions = nn.ModuleList([CausalScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.encoder_attentions = nn.ModuleList([ScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.attention_mlps = _mlps(hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs: torch.Tensor, annotations: torch.Tensor, hidden_init=None):
        """inputs ``(B, T)``, annotations ``(B, S, H)`` (``hidden_init`` is unused, as in the original) ->
        ``(logits (B, T, V), (encoder_attention_weights (L, B, S, T), self_attention_weights (L, B, T, T)))``."""
        contexts = self.embed(inputs)
        encoder_weights, self_weights = [], []
        for self_attention, encoder_attention, mlp in zip(self.self_attentions, self.encoder_attentions,
                                                          self.attention_mlps, strict=True):
            new_contexts, self_attention_weights = self_attention(contexts, contexts, contexts)
            residual = contexts + new_contexts
            new_contexts, encoder_attention_weights = encoder_attention(residual, annotations, annotations)
            residual = residual + new_contexts
            contexts = residual + mlp(residual)
            encoder_weights.append(encoder_attention_weights)
            self_weights.append(self_attention_weights)
        B, T = inputs.shape
        empty = contexts.new_zeros(0, B, annotations.size(1), T), contexts.new_zeros(0, B, T, T)
        return self.out(contexts), (torch.stack(encoder_weights) if encoder_weights else empty[0],
                                    torch.stack(self_weights) if self_weights else empty[1])


class DecoderOnlyTransformer(_Positional):
    """A decoder without cross-attention, on ``<SOS> source <EOP> target`` (2.3 Q1)."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int = 1, *,
                 max_len: int = MAX_LEN):
        super().__init__()
        self.num_layers, self.num_heads = num_layers, num_heads
        self._init_embedding(vocab_size, hidden_size, max_len)
        self.self_attentions = nn.ModuleList([
            CausalScaledDotAttention(hidden_size) if num_heads == 1
            else MultiHeadCausalScaledDotAttention(hidden_size, num_heads) for _ in range(num_layers)])
        self.attention_mlps = _mlps(hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs ``(B, T)`` -> logits ``(B, T, V)``; position ``t`` depends on ``inputs[:, :t + 1]`` only."""
        contexts = self.embed(inputs)
        for attention, mlp in zip(self.self_attentions, self.attention_mlps, strict=True):
            new_contexts, _ = attention(contexts, contexts, contexts)
            residual = contexts + new_contexts
            contexts = residual + mlp(residual)
        return self.out(contexts)


def calc_parameters_decoder(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int = 1) -> int:
    """Parameters of ``DecoderOnlyTransformer(vocab_size, hidden_size, num_layers, num_heads)`` (biases
    included): embedding ``V H``; per layer ``num_heads`` heads of ``3 (H^2 + H)``, ``W_O`` of
    ``num_heads H^2 + H`` when ``num_heads > 1``, the MLP's ``H^2 + H``; the output layer ``H V + V``."""
    V, H = vocab_size, hidden_size
    attention = num_heads * 3 * (H * H + H) + (num_heads * H * H + H if num_heads > 1 else 0)
    return V * H + num_layers * (attention + H * H + H) + H * V + V


# -------------------------------------------------------------------------------- decoder-only data
def decoder_only_example(src: torch.Tensor, tgt: torch.Tensor, vocab: Vocab):
    """A length group's batch ``(src (B, S+1), tgt (B, T+1))``, each row ending with EOS (as
    ``course_lib.pig_latin.batches`` makes them), -> ``(inputs, targets, loss_mask)``, each ``(B, S+T+2)``.

    The sequence is ``<SOS> source <EOP> target <EOS>``; ``inputs = seq[:, :-1]``, ``targets = seq[:, 1:]``;
    ``loss_mask`` is True on the ``T + 1`` last positions: those whose input is ``<EOP>`` or a target
    character, whose targets are the target characters and the final ``<EOS>``.
    """
    if vocab.eop is None:
        raise ValueError("the decoder-only model needs a vocabulary with <EOP>: build_vocab(pairs, eop=True)")
    if not (bool((src[:, -1] == vocab.eos).all()) and bool((tgt[:, -1] == vocab.eos).all())):
        raise ValueError("every source and target row must end with <EOS> (as pig_latin.batches makes them)")
    B, n_src = src.size(0), src.size(1) - 1
    sos = torch.full((B, 1), vocab.sos, dtype=src.dtype, device=src.device)
    eop = torch.full((B, 1), vocab.eop, dtype=src.dtype, device=src.device)
    seq = torch.cat([sos, src[:, :-1], eop, tgt], dim=1)
    inputs, targets = seq[:, :-1], seq[:, 1:]
    loss_mask = torch.zeros(targets.shape, dtype=torch.bool, device=src.device)
    loss_mask[:, n_src + 1:] = True  # inputs[:, n_src + 1] is <EOP>
    return inputs, targets, loss_mask


def decoder_only_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked positions of the whole batch: logits ``(B, L, V)``, targets and
    loss_mask ``(B, L)``."""
    return F.cross_entropy(logits[loss_mask], targets[loss_mask])


# ---------------------------------------------------------------------------------------- generation
def _default_max_len(word: str) -> int:
    return len(word) + 10  # Pig Latin adds at most 3 characters; room to show a model that rambles


@torch.no_grad()
def greedy_translate_many(model: nn.Module, words: Sequence[str], vocab: Vocab,
                          max_len: int | None = None) -> list[str]:
    """:func:`greedy_translate` of every word, in the order given; words of the same length decode together."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[str] = [""] * len(words)
    groups: dict[int, list[int]] = {}
    for i, word in enumerate(words):
        groups.setdefault(len(word), []).append(i)
    try:
        for indices in groups.values():
            limit = _default_max_len(words[indices[0]]) if max_len is None else max_len
            seq = torch.tensor([[vocab.sos, *vocab.encode(words[i]), vocab.eop] for i in indices], device=device)
            done = torch.zeros(len(indices), dtype=torch.bool, device=device)
            generated = []
            for _ in range(limit):
                nxt = model(seq)[:, -1].argmax(dim=-1)
                generated.append(nxt)
                done |= nxt == vocab.eos
                if bool(done.all()):
                    break
                seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
            rows = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in indices]
            for i, row in zip(indices, rows, strict=True):
                results[i] = vocab.decode(row)  # stops at the first <EOS>
    finally:
        model.train(was_training)
    return results


def greedy_translate(model: nn.Module, word: str, vocab: Vocab, max_len: int | None = None) -> str:
    """The decoder-only model's greedy translation of ``word``: feed ``<SOS> word <EOP>``, append the most
    likely next token until ``<EOS>`` or ``max_len`` generated characters (default ``len(word) + 10``)."""
    return greedy_translate_many(model, [word], vocab, max_len)[0]
