"""Reference solutions of the graded models and functions (instructor material, never shipped to students).

Shape vocabulary: B batch, T time, W window, E embedding size, H hidden size, V vocabulary.

The notebooks' student classes have the same signatures and attribute names, so the runners and
the training loop accept either.

- :class:`FeedforwardLanguageModel`: a fixed-window (Bengio et al., 2003) language model: the
  prediction at position t sees the last ``window_size`` inputs ``inputs[t-W+1 .. t]``.
- :class:`RNNLanguageModel`: an Elman RNN or LSTM language model over padded batches.
- :func:`token_losses`, :func:`mask_loss`: per-token negative log-likelihoods and their masked mean.
- :func:`generate`: sample text from a character language model.

For the ``gpt_attention`` assignment (IFT6135 W2021 assignment 2; signatures and attribute names
follow its ``lstm_solution.py``, ``gpt1_solution_template.py`` and ``utils/embeddings.py``). In this
part the shape letters are: B batch, T time, E embedding size, V vocabulary, H number of heads,
D head size (so the model width is H * D = E):

- :class:`LSTM`: embedding -> ``nn.LSTM`` -> 2-layer MLP tied to the embedding, log-probabilities.
- :class:`LayerNorm`: layer normalization from primitives (biased variance).
- :class:`MultiHeadedAttention`: causal multi-head scaled dot-product attention, with
  ``split_heads``/``merge_heads``/``get_attention_weights``/``apply_attention``;
  :func:`attention_parameter_count` gives its number of parameters.
- :class:`Block`, :class:`GPT1Embedding`, :class:`MiniGPT1`: a post-LayerNorm GPT-1 decoder.
- :func:`sequence_nll_loss`: the handout's loss (each sequence's mean NLL over its real tokens,
  averaged over the batch), used by ``LSTM.loss`` and ``MiniGPT1.loss``.

For the ``word_lm_ptb`` assignment (CS5787 Exercises 2: Zaremba et al.'s LSTM and GRU on Penn
Treebank): :func:`lstm_cell_params`; :class:`GRUCell` (the handout's equations) and
:func:`gru_cell_backward` (its question 4); the data pipeline :func:`build_vocab`, :func:`batchify`,
:func:`get_batch`; the model :class:`WordLM`; truncated backpropagation with :func:`detach_hidden`,
:func:`clip_grad_global_norm` and :func:`train_step`.

For the ``sentiment_and_gpt2`` assignment, part 2 (ECE661 HW3 lab 1: LSTM sentiment classification of
IMDB reviews): :func:`build_review_vocab` and :func:`tokenize_review` (the handout's ``build_vocab``
and ``tokenize``), :class:`ReviewDataset` (its ``IMDB`` dataset, truncating to ``max_length``),
:func:`collate_reviews` (padding, lengths), :class:`SentimentLSTM` (its ``LSTM``: packed sequences,
optionally bidirectional) with :func:`init_sentiment_weights`.
"""

from __future__ import annotations

import math
import string
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib.imdb import PAD_INDEX, PAD_TOKEN, UNK_INDEX, UNK_TOKEN
from course_lib.stopwords import ENGLISH_STOP_WORDS
from course_lib.train import token_losses

__all__ = [
    "FeedforwardLanguageModel",
    "RNNLanguageModel",
    "token_losses",
    "mask_loss",
    "generate",
    "sequence_nll_loss",
    "LSTM",
    "LayerNorm",
    "MultiHeadedAttention",
    "attention_parameter_count",
    "Block",
    "GPT1Embedding",
    "MiniGPT1",
    "lstm_cell_params",
    "GRUCell",
    "gru_cell_backward",
    "build_vocab",
    "batchify",
    "get_batch",
    "WordLM",
    "detach_hidden",
    "clip_grad_global_norm",
    "train_step",
    "build_review_vocab",
    "tokenize_review",
    "ReviewDataset",
    "collate_reviews",
    "init_sentiment_weights",
    "SentimentLSTM",
]


class FeedforwardLanguageModel(nn.Module):
    """Fixed-window feed-forward language model.

    For every position t, the embeddings of the ``window_size`` most recent inputs
    ``inputs[t-W+1], ..., inputs[t]`` are concatenated, passed through a ``tanh`` hidden layer and
    an output layer that scores the next token.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        window_size: int,
        pad_id: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.window_size = window_size
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.hidden = nn.Linear(window_size * embedding_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``inputs`` (B, T) long -> logits (B, T, V). ``lengths`` is accepted and unused:
        each position only sees the window that ends at it, so padding on the right never
        reaches a real position."""
        B, T = inputs.shape
        W = self.window_size
        # Left-pad with W - 1 pad tokens, so that the first positions also have a full window
        # (the missing history is <pad>, whose embedding is the zero vector).
        left = torch.full((B, W - 1), self.pad_id, dtype=inputs.dtype, device=inputs.device)
        padded = torch.cat([left, inputs], dim=1)  # (B, T + W - 1)
        # windows[b, t] = padded[b, t : t + W] = inputs[b, t-W+1 .. t]
        windows = padded.unfold(1, W, 1)  # (B, T, W)
        embedded = self.embedding(windows)  # (B, T, W, E)
        # "Flatten": concatenate the W embeddings of each window into one vector.
        flat = embedded.reshape(B, T, -1)  # (B, T, W * E)
        hidden = self.dropout(torch.tanh(self.hidden(flat)))  # (B, T, H)
        return self.output(hidden)  # (B, T, V)


class RNNLanguageModel(nn.Module):
    """Recurrent (Elman RNN or LSTM) language model over right-padded batches."""

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM}

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        cell: str = "rnn",
        pad_id: int = 0,
        dropout: float = 0.0,
        num_layers: int = 1,
    ):
        super().__init__()
        cell = str(cell).lower()
        if cell not in self.CELLS:
            raise ValueError(f"unknown cell {cell!r}: expected one of 'rnn', 'lstm'")
        self.cell = cell
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.rnn = self.CELLS[cell](
            embedding_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``inputs`` (B, T) long, ``lengths`` (B,) -> logits (B, T, V).

        Packing makes the RNN stop at each sequence's true length: outputs at real positions do
        not depend on the padding after them, and the padded positions come back as zeros.
        """
        T = inputs.size(1)
        embedded = self.dropout(self.embedding(inputs))  # (B, T, E)
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)  # (B, T, H)
        return self.output(self.dropout(out))  # (B, T, V)


def mask_loss(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean loss over the real tokens: ``(losses * mask).sum() / mask.sum()``."""
    mask = mask.to(losses.dtype)
    return (losses * mask).sum() / mask.sum()


def generate(
    model: nn.Module,
    vocab,
    prefix: str = "",
    max_len: int = 200,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> str:
    """Sample up to ``max_len`` characters after ``prefix`` from a character language model.

    Starts from ``<bos>`` + ``prefix``; at each step the model reads the whole sequence so far,
    the last position's logits are divided by ``temperature`` and one token is drawn from their
    softmax (on the CPU, with ``generator`` if given); ``<eos>`` stops generation. Returns
    ``prefix`` + the generated characters (no special tokens). Runs under ``torch.no_grad()`` in
    eval mode and restores the model's training mode afterwards.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    generated: list[int] = []
    try:
        with torch.no_grad():
            start = torch.full((1, 1), vocab.bos_id, dtype=torch.long, device=device)
            pre = torch.tensor([vocab.encode(prefix)], dtype=torch.long, device=device).view(1, -1)
            inputs = torch.cat([start, pre], dim=1)  # (1, T)
            for _ in range(max_len):
                lengths = torch.tensor([inputs.size(1)], dtype=torch.long)
                logits = model(inputs, lengths)[:, -1].float().cpu() / temperature  # (1, V)
                probs = torch.softmax(logits, dim=-1)
                next_id = torch.multinomial(probs, 1, generator=generator)  # (1, 1) on CPU
                token = int(next_id)
                if token == vocab.eos_id:
                    break
                generated.append(token)
                inputs = torch.cat([inputs, next_id.to(device)], dim=1)
    finally:
        model.train(was_training)
    return prefix + vocab.decode(generated)


# ===================================================================================================
# gpt_attention (IFT6135 W2021 assignment 2): LSTM and mini GPT-1 language models.
# Shape letters here: B batch, T time, E embedding size, V vocabulary size (N + 1: id 0 is padding),
# H number of heads, D head size (H * D = E in MiniGPT1).

#: Word-level WikiText-2: 33,278 distinct train tokens (ids 1..N) + padding (id 0); see course_lib.wikitext.
WIKITEXT2_VOCABULARY_SIZE = 33_279


def _init_embedding_(embedding: nn.Embedding, std: float = 0.02) -> None:
    """GPT-1's N(0, 0.02) initialisation (the handout used pretrained GPT-1 embeddings instead);
    the padding row, if any, stays zero."""
    with torch.no_grad():
        embedding.weight.normal_(0.0, std)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx].zero_()


def sequence_nll_loss(log_probas: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The handout's loss: the mean over the batch of each sequence's mean NLL over its real tokens.

    For sequence b with T_b = ``mask[b].sum()`` real tokens::

        L_b = -(1 / T_b) * sum_t mask[b, t] * log_probas[b, t, targets[b, t]]
        loss = (1 / B) * sum_b L_b

    (Not the mean over all real tokens of the batch: a short sequence weighs as much as a long one.)

    Args:
        log_probas: ``(B, T, V)`` log-probabilities of the next token.
        targets: ``(B, T)`` long, the next tokens (any valid id at padded positions, usually 0).
        mask: ``(B, T)`` 1.0 at real tokens, 0.0 at padding. Every sequence needs at least one real
            token (the datasets guarantee it); an all-zero row gives NaN, as in the formula.

    Returns:
        A 0-dim tensor.
    """
    nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    mask = mask.to(nll.dtype)
    per_sequence = (nll * mask).sum(dim=1) / mask.sum(dim=1)  # (B,)
    return per_sequence.mean()


class LSTM(nn.Module):
    """LSTM language model (handout Problem 1; ``lstm_solution.py``).

    ``embedding`` (V, E) -> ``lstm`` (``num_layers`` layers, E -> hidden_size, batch-first) ->
    ``classifier`` = Linear(hidden_size, E) -> ReLU -> Linear(E, V, bias=False) whose weight *is* the
    embedding matrix (tied, as in GPT-1) -> log-softmax.

    Args (same names and order as the original):
        vocabulary_size: V = N + 1 (id 0 is padding; ``padding_idx=0``). Default: word-level
            WikiText-2 (33,279); the handout's GPT-1 BPE vocabulary was 40,479.
        embedding_size: E (768, GPT-1's).
        hidden_size: the LSTM's hidden size (512).
        num_layers: stacked LSTM layers (1).
        learn_embeddings: train the (tied) embedding matrix. Default True here: the handout froze
            pretrained GPT-1 embeddings (default False there), which word-level data cannot use; the
            embedding is then initialised N(0, 0.02) like GPT-1's.
        _embedding_weight: optional (V, E) initial embedding matrix (as in the original).
    """

    def __init__(
        self,
        vocabulary_size: int = WIKITEXT2_VOCABULARY_SIZE,
        embedding_size: int = 768,
        hidden_size: int = 512,
        num_layers: int = 1,
        learn_embeddings: bool = True,
        _embedding_weight: torch.Tensor | None = None,
    ):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.learn_embeddings = learn_embeddings

        self.embedding = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0, _weight=_embedding_weight)
        if _embedding_weight is None:
            _init_embedding_(self.embedding)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.classifier = nn.Sequential(
            nn.Linear(hidden_size, embedding_size),
            nn.ReLU(),
            nn.Linear(embedding_size, vocabulary_size, bias=False),
        )
        # Tying classifier and embedding weights (similar to GPT-1): one Parameter, two uses.
        self.classifier[2].weight = self.embedding.weight
        self.embedding.requires_grad_(learn_embeddings)

    def forward(
        self, inputs: torch.Tensor, hidden_states: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Log-probabilities of the next token at every position, and the final LSTM state.

        Args:
            inputs: ``(B, T)`` long token ids in [0, V).
            hidden_states: initial ``(h, c)``, each ``(num_layers, B, hidden_size)``; None means
                zeros (:meth:`initial_states`).

        Returns:
            ``log_probas`` ``(B, T, V)``: ``log_probas[b, t, i] = log p(x_{t+1} = i | x_{0..t})``;
            ``(h, c)``: the final state, each ``(num_layers, B, hidden_size)``.
        """
        embedded = self.embedding(inputs)  # (B, T, E)
        outputs, states = self.lstm(embedded, hidden_states)  # (B, T, hidden_size)
        logits = self.classifier(outputs)  # (B, T, V)
        return F.log_softmax(logits, dim=-1), states

    def loss(self, log_probas: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`sequence_nll_loss`: log_probas (B, T, V), targets (B, T) long, mask (B, T) -> scalar."""
        return sequence_nll_loss(log_probas, targets, mask)

    def initial_states(self, batch_size: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(h_0, c_0)``, each ``(num_layers, batch_size, hidden_size)`` (constants, not learned),
        on ``device`` (default: the model's) with the model's dtype."""
        param = next(self.parameters())
        device = param.device if device is None else device
        shape = (self.num_layers, batch_size, self.hidden_size)
        return (
            torch.zeros(shape, dtype=param.dtype, device=device),
            torch.zeros(shape, dtype=param.dtype, device=device),
        )


class LayerNorm(nn.Module):
    """Layer normalization over the last dimension, from primitives (no ``torch.layer_norm``).

    ``(x - E[x]) / sqrt(Var[x] + eps) * weight + bias`` with the *biased* variance
    (``mean((x - E[x])**2)``, i.e. dividing by n, not n - 1). ``weight`` starts at ones, ``bias`` at
    zeros (``reset_parameters``), as in ``gpt1_solution_template.py``.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(*dims, hidden_size)`` -> the same shape, normalized over the last dimension."""
        mean = inputs.mean(dim=-1, keepdim=True)  # (*dims, 1)
        centered = inputs - mean
        variance = (centered * centered).mean(dim=-1, keepdim=True)  # biased: / n
        return centered / torch.sqrt(variance + self.eps) * self.weight + self.bias


def attention_parameter_count(num_heads: int, head_size: int) -> int:
    """Learnable parameters of :class:`MultiHeadedAttention`: four (H*D x H*D) weight matrices
    (queries, keys, values, output) and their four biases: ``4 (H D)^2 + 4 H D``."""
    width = num_heads * head_size
    return 4 * width * width + 4 * width


class MultiHeadedAttention(nn.Module):
    """Causal multi-head scaled dot-product self-attention (``gpt1_solution_template.py``).

    For hidden states X ``(B, T, H*D)``: ``Q = X W_Q + b_Q``, ``K = X W_K + b_K``, ``V = X W_V + b_V``
    (``q_proj``, ``k_proj``, ``v_proj``), each head attends causally with
    ``softmax(q k^T / sqrt(D))``, the heads are concatenated and projected by ``out_proj``
    (``W_O``, ``b_O``). Head h owns the features ``h*D .. (h+1)*D - 1`` (the layout of
    ``nn.MultiheadAttention``). Parameters: :func:`attention_parameter_count`.

    Args: ``head_size`` D, ``num_heads`` H, ``sequence_length`` (the maximal T; any T works).
    """

    def __init__(self, head_size: int, num_heads: int, sequence_length: int):
        super().__init__()
        self.head_size = head_size
        self.num_heads = num_heads
        self.sequence_length = sequence_length
        width = num_heads * head_size
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def get_attention_weights(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Causal attention weights of every head.

        ``x = q k^T / sqrt(D)``, then the handout's masked softmax: with ``s[t, tau] = 1`` if
        ``tau <= t`` else 0, ``softmax(x * s - 1e4 * (1 - s))`` over the last dimension.

        Args:
            queries: ``(B, H, T, D)``.
            keys: ``(B, H, T, D)``.

        Returns:
            ``(B, H, T, T)``: ``weights[b, h, t, tau]`` is how much position t attends to tau; rows sum
            to 1 and ``weights[..., t, tau] == 0`` for ``tau > t``.
        """
        T, S = queries.size(-2), keys.size(-2)
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(queries.size(-1))  # (B, H, T, S)
        s = torch.ones(T, S, dtype=scores.dtype, device=scores.device).tril()  # (T, S), 1 where tau <= t
        scores = scores * s - 1e4 * (1.0 - s)
        return torch.softmax(scores, dim=-1)

    def apply_attention(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Attended values of all heads, concatenated.

        Args:
            queries, keys, values: ``(B, H, T, D)`` each.

        Returns:
            ``(B, T, H*D)``: ``merge_heads(weights @ values)``.
        """
        weights = self.get_attention_weights(queries, keys)  # (B, H, T, T)
        return self.merge_heads(weights @ values)  # (B, H, T, D) -> (B, T, H*D)

    def split_heads(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(B, T, H*dim)`` -> ``(B, H, T, dim)`` (any ``dim``): ``y[b, h, t, d] = x[b, t, h*dim + d]``.

        Only a reshape and a transpose; the exact inverse of :meth:`merge_heads`.
        """
        B, T, width = tensor.shape
        if width % self.num_heads:
            raise ValueError(f"the last dimension ({width}) is not a multiple of num_heads ({self.num_heads})")
        return tensor.view(B, T, self.num_heads, width // self.num_heads).transpose(1, 2)

    def merge_heads(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(B, H, T, dim)`` -> ``(B, T, H*dim)``: ``x[b, t, h*dim + d] = y[b, h, t, d]``.

        Only a transpose and a reshape; the exact inverse of :meth:`split_heads`.
        """
        B, H, T, dim = tensor.shape
        return tensor.transpose(1, 2).reshape(B, T, H * dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden_states`` ``(B, T, H*D)`` -> ``(B, T, H*D)``: causal multi-head self-attention."""
        queries = self.split_heads(self.q_proj(hidden_states))  # (B, H, T, D)
        keys = self.split_heads(self.k_proj(hidden_states))
        values = self.split_heads(self.v_proj(hidden_states))
        attended = self.apply_attention(queries, keys, values)  # (B, T, H*D)
        return self.out_proj(attended)


class Block(nn.Module):
    """A GPT-1 decoder layer (``gpt1_solution_template.py``, provided code), post-LayerNorm::

        a = norm1(attention(x) + x)
        y = norm2(mlp(a) + a),   mlp = Linear(H*D, mlp_hidden_size) -> GELU -> Linear(mlp_hidden_size, H*D)

    ``forward``: ``(B, T, H*D)`` -> ``(B, T, H*D)``.
    """

    def __init__(self, head_size: int, mlp_hidden_size: int, num_heads: int, sequence_length: int):
        super().__init__()
        self.head_size = head_size
        self.mlp_hidden_size = mlp_hidden_size
        self.num_heads = num_heads
        self.sequence_length = sequence_length
        self.hidden_size = num_heads * head_size

        self.attention = MultiHeadedAttention(head_size, num_heads, sequence_length)
        self.norm1 = LayerNorm(self.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(self.hidden_size, mlp_hidden_size),
            nn.GELU(),
            nn.Linear(mlp_hidden_size, self.hidden_size),
        )
        self.norm2 = LayerNorm(self.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attention_outputs = self.attention(hidden_states)
        attention_outputs = self.norm1(attention_outputs + hidden_states)
        outputs = self.mlp(attention_outputs)
        return self.norm2(outputs + attention_outputs)


class GPT1Embedding(nn.Module):
    """Token embedding (``tokens``, V x E, ``padding_idx=0``) plus learned positional embedding
    (``position``, sequence_length x E), as in ``utils/embeddings.py``."""

    def __init__(
        self,
        vocabulary_size: int,
        embedding_size: int,
        sequence_length: int,
        _tokens_embedding_weight: torch.Tensor | None = None,
        _positional_embedding_weight: torch.Tensor | None = None,
    ):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.sequence_length = sequence_length
        self.tokens = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0, _weight=_tokens_embedding_weight)
        self.position = nn.Embedding(sequence_length, embedding_size, _weight=_positional_embedding_weight)
        if _tokens_embedding_weight is None:
            _init_embedding_(self.tokens)
        if _positional_embedding_weight is None:
            _init_embedding_(self.position)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``(B, T)`` in [0, V) and ``positions`` ``(B, T)`` in [0, sequence_length) ->
        ``(B, T, E)``: ``tokens_embedding[tokens] + position_embedding[positions]``.

        Raises RuntimeError for a position or token id out of range (as the original does).
        """
        if torch.any(positions >= self.sequence_length):
            raise RuntimeError("Some position indices are larger than the maximum sequence length.")
        if torch.any(tokens >= self.vocabulary_size):
            raise RuntimeError("Some tokens are larger than the size of the vocabulary.")
        return self.tokens(tokens) + self.position(positions)


class MiniGPT1(nn.Module):
    """A small GPT-1 for causal language modelling (``gpt1_solution_template.py``).

    ``embedding`` (:class:`GPT1Embedding`) -> ``layers`` (``num_layers`` :class:`Block` with
    ``head_size = embedding_size // num_heads`` and an MLP of ``4 * embedding_size``) ->
    ``classifier`` = Linear(E, V, bias=False) whose weight *is* ``embedding.tokens.weight`` (tied)
    -> log-softmax.

    Args (same names and order as the original): ``vocabulary_size`` (default 33,279, word-level
    WikiText-2; the handout's was 40,479), ``embedding_size`` (768), ``sequence_length`` (256, the
    number of learned positions), ``num_heads`` (12), ``num_layers`` (4), ``learn_embeddings``
    (default True here, False in the handout, which froze pretrained GPT-1 token *and* positional
    embeddings), ``_tokens_embedding_weight``, ``_positional_embedding_weight``.
    """

    def __init__(
        self,
        vocabulary_size: int = WIKITEXT2_VOCABULARY_SIZE,
        embedding_size: int = 768,
        sequence_length: int = 256,
        num_heads: int = 12,
        num_layers: int = 4,
        learn_embeddings: bool = True,
        _tokens_embedding_weight: torch.Tensor | None = None,
        _positional_embedding_weight: torch.Tensor | None = None,
    ):
        super().__init__()
        if embedding_size % num_heads:
            raise ValueError(f"embedding_size ({embedding_size}) must be a multiple of num_heads ({num_heads})")
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.sequence_length = sequence_length
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.learn_embeddings = learn_embeddings
        self.head_size = embedding_size // num_heads

        self.embedding = GPT1Embedding(
            vocabulary_size,
            embedding_size,
            sequence_length,
            _tokens_embedding_weight=_tokens_embedding_weight,
            _positional_embedding_weight=_positional_embedding_weight,
        )
        self.layers = nn.ModuleList(
            [Block(self.head_size, 4 * embedding_size, num_heads, sequence_length) for _ in range(num_layers)]
        )
        self.classifier = nn.Linear(embedding_size, vocabulary_size, bias=False)
        # Tying classifier and embedding weights: one Parameter, two uses.
        self.classifier.weight = self.embedding.tokens.weight
        self.embedding.requires_grad_(learn_embeddings)

    def get_embeddings(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(B, T)`` (T <= sequence_length) -> ``(B, T, E)`` token + position embeddings,
        with positions ``0 .. T-1`` for every sequence."""
        B, T = inputs.shape
        positions = torch.arange(T, device=inputs.device).unsqueeze(0).expand(B, T)  # (B, T)
        return self.embedding(inputs, positions)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(B, T)`` long -> ``log_probas`` ``(B, T, V)``, where
        ``log_probas[b, t, i] = log p(x_{t+1} = i | x_{0..t})`` (causal: position t sees inputs 0..t)."""
        hidden = self.get_embeddings(inputs)  # (B, T, E)
        for layer in self.layers:
            hidden = layer(hidden)  # (B, T, E)
        return F.log_softmax(self.classifier(hidden), dim=-1)  # (B, T, V)

    def loss(self, log_probas: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`sequence_nll_loss`: log_probas (B, T, V), targets (B, T) long, mask (B, T) -> scalar."""
        return sequence_nll_loss(log_probas, targets, mask)


# ===================================================================================================
# word_lm_ptb: LSTM and GRU word-level language models on Penn Treebank (CS5787 Exercises 2,
# Zaremba et al. 2014). Shapes: B batch (streams), T time (bptt), E embedding, H hidden, V vocabulary.
# The GRU follows the handout's equations (Geron's notation, row vectors: x @ W_xz):
#   z = sigmoid(x W_xz + h W_hz + b_z)          update gate
#   r = sigmoid(x W_xr + h W_hr + b_r)          reset gate
#   g = tanh(x W_xg + (r * h) W_hg + b_g)       candidate
#   h' = z * h + (1 - z) * g
# ===================================================================================================


def lstm_cell_params(input_size: int, hidden_size: int) -> int:
    """Trainable parameters of one LSTM cell with one bias vector per gate (the handout's Q3)."""
    return 4 * (hidden_size * input_size + hidden_size * hidden_size + hidden_size)


class GRUCell(nn.Module):
    """A GRU cell from primitives, with the handout's equations and weight names.

    Parameters (row-vector convention, ``x @ W``): ``W_xz, W_xr, W_xg`` (input_size, H);
    ``W_hz, W_hr, W_hg`` (H, H); ``b_z, b_r, b_g`` (H,). Initialised U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        for gate in ("z", "r", "g"):
            setattr(self, f"W_x{gate}", nn.Parameter(torch.empty(input_size, hidden_size)))
            setattr(self, f"W_h{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.empty(hidden_size)))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, input_size), ``h`` (B, H) or None (zeros) -> the new hidden state (B, H)."""
        if h is None:
            h = x.new_zeros(x.size(0), self.hidden_size)
        z = torch.sigmoid(x @ self.W_xz + h @ self.W_hz + self.b_z)  # (B, H)
        r = torch.sigmoid(x @ self.W_xr + h @ self.W_hr + self.b_r)  # (B, H)
        g = torch.tanh(x @ self.W_xg + (r * h) @ self.W_hg + self.b_g)  # (B, H)
        return z * h + (1 - z) * g


def gru_cell_backward(x, h_prev, z, r, g, W_hg, dh):
    """Gradients of a loss L with respect to the six GRU weight matrices, for one step.

    ``x`` (B, input_size) and ``h_prev`` (B, H) are the step's inputs; ``z, r, g`` (B, H) its gates
    and candidate as computed in the forward pass; ``W_hg`` (H, H); ``dh`` (B, H) is dL/dh' for the
    step's output h'. ``h_prev`` and ``x`` are treated as constants (the handout's question 4:
    the gradient of this step alone). Returns a dict with the keys ``"W_xz", "W_hz", "W_xg",
    "W_hg", "W_xr", "W_hr"``, each the gradient, summed over the batch, with the weight's shape.
    """
    dz = dh * (h_prev - g) * z * (1 - z)  # dL/d(pre-activation of z), (B, H)
    dg = dh * (1 - z) * (1 - g * g)  # dL/d(pre-activation of g), (B, H)
    dr = (dg @ W_hg.T) * h_prev * r * (1 - r)  # dL/d(pre-activation of r), (B, H)
    return {
        "W_xz": x.T @ dz,
        "W_hz": h_prev.T @ dz,
        "W_xg": x.T @ dg,
        "W_hg": (r * h_prev).T @ dg,
        "W_xr": x.T @ dr,
        "W_hr": h_prev.T @ dr,
    }


def build_vocab(words) -> dict[str, int]:
    """Word -> id, numbered in order of first occurrence in ``words`` (0, 1, 2, ...)."""
    vocab: dict[str, int] = {}
    for w in words:
        if w not in vocab:
            vocab[w] = len(vocab)
    return vocab


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A 1-D tensor of N ids -> (batch_size, N // batch_size): ``batch_size`` contiguous streams,
    row b holding ids[b*L : (b+1)*L]; the last N % batch_size ids are dropped."""
    L = ids.numel() // batch_size
    return ids[: batch_size * L].reshape(batch_size, L)


def get_batch(data: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns ``i .. i+T-1`` of ``data`` (B, L) as inputs and ``i+1 .. i+T`` as targets, each
    (B, T) with ``T = min(bptt, L - 1 - i)`` (the last batch is shorter)."""
    T = min(bptt, data.size(1) - 1 - i)
    return data[:, i : i + T], data[:, i + 1 : i + 1 + T]


class WordLM(nn.Module):
    """Zaremba et al.'s word-level language model: embedding -> dropout -> ``nn.LSTM`` or ``nn.GRU``
    (``num_layers``, dropout between layers) -> dropout -> linear decoder to V logits.

    Attributes: ``embedding`` (nn.Embedding V x E), ``rnn`` (nn.LSTM or nn.GRU, batch_first),
    ``dropout`` (nn.Dropout), ``decoder`` (nn.Linear H -> V). Every parameter is initialised
    U(-init_range, init_range).
    """

    def __init__(self, rnn_type: str, vocab_size: int, embedding_size: int = 200, hidden_size: int = 200,
                 num_layers: int = 2, dropout: float = 0.0, init_range: float = 0.1):
        super().__init__()
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type]
        self.rnn_type = rnn_type
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.rnn = rnn_class(embedding_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                             batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def init_hidden(self, batch_size: int):
        """Zeros: ``(h, c)`` for an LSTM, ``h`` for a GRU, each (num_layers, B, H)."""
        weight = self.decoder.weight
        h = weight.new_zeros(self.num_layers, batch_size, self.hidden_size)
        return (h, h.clone()) if self.rnn_type == "lstm" else h

    def forward(self, inputs: torch.Tensor, hidden=None):
        """``inputs`` (B, T) long, ``hidden`` as :meth:`init_hidden` (None: zeros) ->
        ``(logits (B, T, V), hidden)``."""
        out, hidden = self.rnn(self.dropout(self.embedding(inputs)), hidden)  # (B, T, H)
        return self.decoder(self.dropout(out)), hidden


def detach_hidden(hidden):
    """The hidden state cut from its graph: a tensor detached, a tuple or list of them element-wise."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)(detach_hidden(h) for h in hidden)


def clip_grad_global_norm(parameters, max_norm: float) -> torch.Tensor:
    """Scale every gradient by ``max_norm / total_norm`` when the global L2 norm of all gradients
    together, ``total_norm``, exceeds ``max_norm`` (parameters without a gradient are skipped).
    Returns ``total_norm`` before clipping (a 0-dim tensor)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(scale.to(g.device))
    return total


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
               hidden, max_norm: float = 5.0):
    """One truncated-backpropagation step: cut ``hidden`` from the previous batch's graph, predict
    ``targets`` (B, T) from ``inputs`` (B, T), back-propagate the mean cross-entropy over the B*T
    tokens, clip the gradients to global norm ``max_norm`` and step the optimizer.
    Returns ``(loss, hidden)``: the loss (0-dim, detached) and the new hidden state, detached."""
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), detach_hidden(hidden)


# ===================================================================================================
# sentiment_and_gpt2 (part 2): an LSTM sentiment classifier on IMDB (ECE661 HW3, lab 1). Shapes:
# B batch, T time (the longest review of the batch, at most max_length), E embedding, H hidden,
# V vocabulary, C classes (output_dim, 2). The vocabulary convention: PAD_TOKEN "<pad>" at index 0,
# UNK_TOKEN "<unk>" at index 1, then the words (course_lib.imdb); labels "negative" -> 0, "positive" -> 1.
# ===================================================================================================

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _review_words(text: str) -> list[str]:
    """The handout's word splitting: lower case, ASCII punctuation deleted, split on white space."""
    return text.lower().translate(_PUNCTUATION).split()


def build_review_vocab(texts, min_freq: int = 5) -> dict[str, int]:
    """The handout's ``build_vocab``: word -> index over the training ``texts``.

    Words as :func:`_review_words` splits them; every word seen at least ``min_freq`` times in all
    ``texts`` together that is not an English stop word (``course_lib.stopwords``) gets an index
    from 2 on, in order of first occurrence; ``"<pad>"`` is 0 and ``"<unk>"`` is 1.
    """
    counts = Counter(w for text in texts for w in _review_words(text))
    vocab = {PAD_TOKEN: PAD_INDEX, UNK_TOKEN: UNK_INDEX}
    for word, count in counts.items():  # a Counter keeps the order of first occurrence
        if count >= min_freq and word not in ENGLISH_STOP_WORDS:
            vocab[word] = len(vocab)
    return vocab


def tokenize_review(vocab: dict[str, int], text: str) -> list[int]:
    """The handout's ``tokenize``: the index of each word of ``text`` (split as in
    :func:`build_review_vocab`), ``UNK_INDEX`` for words not in ``vocab`` (stop words included)."""
    unk = vocab[UNK_TOKEN]
    return [vocab.get(w, unk) for w in _review_words(text)]


class ReviewDataset(torch.utils.data.Dataset):
    """The handout's ``IMDB`` dataset: item ``i`` is ``{"ids": list of at most max_length token
    indices, "length": len(ids), "label": 1 if y[i] == "positive" else 0}``."""

    def __init__(self, x, y, vocab: dict[str, int], max_length: int = 256):
        self.x = x
        self.y = y
        self.vocab = vocab
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> dict:
        ids = tokenize_review(self.vocab, self.x[idx])[: self.max_length]
        return {"ids": ids, "length": len(ids), "label": 1 if self.y[idx] == "positive" else 0}


def collate_reviews(batch, pad_index: int = PAD_INDEX) -> dict[str, torch.Tensor]:
    """A list of dataset items -> ``{"ids": (B, T) long, padded with pad_index after each review,
    "length": (B,) long, "label": (B,) long}``, T the longest review of the batch."""
    ids = [torch.tensor(item["ids"], dtype=torch.long) for item in batch]
    return {"ids": nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_index),
            "length": torch.tensor([item["length"] for item in batch], dtype=torch.long),
            "label": torch.tensor([item["label"] for item in batch], dtype=torch.long)}


def init_sentiment_weights(m: nn.Module) -> None:
    """The classifier's initialisation (as in Trevett's pytorch-sentiment-analysis, which the
    handout's starter follows): Linear Xavier-normal weights and zero biases; LSTM orthogonal
    weights and zero biases. Embeddings keep PyTorch's N(0, 1) with a zero padding row."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_normal_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LSTM):
        for name, param in m.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)
            elif "weight" in name:
                nn.init.orthogonal_(param)


class SentimentLSTM(nn.Module):
    """The handout's LSTM classifier: embedding (padding row ``pad_index``) -> ``nn.LSTM`` over the
    packed reviews (``n_layers``, batch_first, dropout between layers, optionally bidirectional) ->
    the last layer's final hidden state (both directions concatenated, forward first, when
    bidirectional) -> dropout -> linear to ``output_dim`` logits.

    Attributes: ``embedding``, ``lstm``, ``dropout``, ``fc`` (``nn.Linear(H or 2H, output_dim)``).
    ``weight_init_fn`` (keyword): applied to every module instead of :func:`init_sentiment_weights`.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, output_dim: int, n_layers: int,
                 dropout_rate: float, pad_index: int, bidirectional: bool = False, **kwargs):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=n_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout_rate if n_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(hidden_dim * 2 if bidirectional else hidden_dim, output_dim)
        self.apply(kwargs.get("weight_init_fn", init_sentiment_weights))

    def forward(self, ids: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) long, padded after each review; ``length`` (B,) the real lengths, in any
        order -> logits (B, output_dim)."""
        embedded = self.embedding(ids)  # (B, T, E)
        packed = pack_padded_sequence(embedded, length.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)  # hidden (n_layers * directions, B, H), in the batch's order
        if self.lstm.bidirectional:
            hidden = torch.cat((hidden[-2], hidden[-1]), dim=1)  # last layer: forward, backward (B, 2H)
        else:
            hidden = hidden[-1]  # (B, H)
        return self.fc(self.dropout(hidden))
