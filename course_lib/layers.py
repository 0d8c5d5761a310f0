"""Reference implementations of the models and helpers the handouts give.

Shape vocabulary: B batch, T time, W window, E embedding size, H hidden size, V vocabulary.

The notebooks' student classes have the same signatures and attribute names, so the runners and
the training loop accept either.

- :class:`FeedforwardLanguageModel`: a fixed-window (Bengio et al., 2003) language model: the
  prediction at position t sees the last ``window_size`` inputs ``inputs[t-W+1 .. t]``.
- :class:`RNNLanguageModel`: an Elman RNN or LSTM language model over padded batches.
- :func:`token_losses`, :func:`mask_loss`: per-token negative log-likelihoods and their masked mean.
- :func:`generate`: sample text from a character language model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "FeedforwardLanguageModel",
    "RNNLanguageModel",
    "token_losses",
    "mask_loss",
    "generate",
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


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood: logits (B, T, V), targets (B, T) -> losses (B, T)."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), reduction="none").view(B, T)


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
