"""Character vocabularies, padding and batching for language models.

Shape vocabulary: B batch, T time (padded length), V vocabulary size.

A character language model here treats every non-empty line of a text as one sequence::

    <bos> c1 c2 ... cn <eos>

and learns to predict each token from the ones before it: the model reads
``inputs = [<bos>, c1, ..., cn]`` and is scored on ``targets = [c1, ..., cn, <eos>]``.
Sequences in a batch have different lengths, so they are right-padded with ``<pad>`` and a
``mask`` (1.0 for real target tokens, 0.0 for padding) says which positions count in the loss.

Typical use::

    vocab, train, dev = make_char_lm_data(text, dev_fraction=0.1)
    train_loader, dev_loader = make_loaders(train, dev, batch_size=64,
                                            pad_id=vocab.pad_id, shuffle_seed=1)
    batch = next(iter(train_loader))   # {"inputs", "targets", "lengths", "mask"}
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = [
    "CharVocab",
    "pad_sequences",
    "CharLineDataset",
    "collate_char_lm",
    "BucketBatchSampler",
    "split_lines",
    "make_char_lm_data",
    "make_loaders",
]


class CharVocab:
    """A character vocabulary with three special tokens.

    Ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then the distinct characters in sorted order.

    >>> vocab = CharVocab("hello")
    >>> vocab.itos
    ['<pad>', '<bos>', '<eos>', 'e', 'h', 'l', 'o']
    >>> vocab.encode("hello", add_bos=True, add_eos=True)
    [1, 4, 3, 5, 5, 6, 2]
    >>> vocab.decode([1, 4, 3, 5, 5, 6, 2])
    'hello'
    """

    PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"

    def __init__(self, chars: Iterable[str]):
        chars = set(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharVocab expects single characters, got {c!r}")
        self.itos: list[str] = [self.PAD, self.BOS, self.EOS] + sorted(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id: int = 0
        self.bos_id: int = 1
        self.eos_id: int = 2
        self.special_ids = frozenset({self.pad_id, self.bos_id, self.eos_id})

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """All characters of ``text`` except ``'\\n'`` (lines are the sequences)."""
        return cls(set(text) - {"\n"})

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, char: str) -> bool:
        return char in self.stoi

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)}, chars={''.join(self.itos[3:])!r})"

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Character ids of ``text``, optionally wrapped in ``<bos>`` ... ``<eos>``.

        A character that is not in the vocabulary raises ``KeyError`` naming it.
        """
        ids = [self.bos_id] if add_bos else []
        stoi = self.stoi
        for i, c in enumerate(text):
            try:
                ids.append(stoi[c])
            except KeyError:
                raise KeyError(
                    f"character {c!r} (position {i} of {text[:40]!r}) is not in the vocabulary; "
                    f"known characters: {''.join(self.itos[3:])!r}"
                ) from None
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids, *, strip_special: bool = True) -> str:
        """The text of ``ids`` (a list of ints or a 1-D tensor).

        With ``strip_special=True`` (default) the ``<pad>``, ``<bos>`` and ``<eos>`` tokens are
        dropped; otherwise they are written out as ``<pad>`` etc.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if strip_special and i in self.special_ids:
                continue
            out.append(self.itos[i])
        return "".join(out)


def pad_sequences(seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_id: int = 0):
    """Right-pad a list of id sequences into one ``(B, T)`` LongTensor.

    Returns ``(padded, lengths)``: ``padded`` is ``(B, T)`` with ``T = max(lengths)`` and
    ``padded[b, lengths[b]:] == pad_id``; ``lengths`` is a ``(B,)`` LongTensor.
    """
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    T = int(lengths.max()) if len(seqs) else 0
    padded = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        if len(s):
            padded[b, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return padded, lengths


class CharLineDataset(Dataset):
    """One example per line: the LongTensor ``<bos> c1 .. cn <eos>`` (length n + 2).

    ``lines`` must be non-empty strings (``make_char_lm_data`` drops empty lines).
    ``dataset.lines`` keeps the text, ``dataset.lengths`` the example lengths.
    """

    def __init__(self, lines: Sequence[str], vocab: CharVocab):
        self.vocab = vocab
        self.lines = list(lines)
        self.examples = [
            torch.tensor(vocab.encode(line, add_bos=True, add_eos=True), dtype=torch.long)
            for line in self.lines
        ]
        self.lengths = [len(e) for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.examples[i]

    def num_target_tokens(self) -> int:
        """How many tokens a model is scored on: every example's length minus one."""
        return sum(self.lengths) - len(self.lengths)


def collate_char_lm(batch: Sequence[torch.Tensor], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Turn a list of ``<bos> .. <eos>`` sequences into a padded language-model batch.

    Returns a dict of
      - ``inputs``  ``(B, T)`` long: each sequence without its last token, right-padded;
      - ``targets`` ``(B, T)`` long: each sequence without its first token (inputs shifted by one);
      - ``lengths`` ``(B,)`` long: the number of real input (= target) tokens per sequence;
      - ``mask``    ``(B, T)`` float32: 1.0 at real target tokens, 0.0 at padding.
    """
    padded, full_lengths = pad_sequences(batch, pad_id)
    inputs = padded[:, :-1].clone()
    targets = padded[:, 1:].clone()
    lengths = full_lengths - 1
    # A sequence's last real input token is its last real token minus one: blank the <eos>
    # that slid into the inputs of shorter sequences so padded input positions hold pad_id.
    T = inputs.size(1)
    mask_bool = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    inputs[~mask_bool] = pad_id
    return {
        "inputs": inputs,
        "targets": targets,
        "lengths": lengths,
        "mask": mask_bool.to(torch.float32),
    }


class BucketBatchSampler(Sampler[list[int]]):
    """Deterministic batches of similar length (less padding, faster RNNs).

    With ``shuffle=True``, each epoch: shuffle all indices (seeded by ``seed + epoch``), cut them
    into chunks of ``batch_size * bucket_batches`` examples, sort each chunk by length, cut it
    into batches, and shuffle the order of the batches. The epoch counter advances every time
    the sampler is iterated (or set it with :meth:`set_epoch`), so two samplers built with the same
    seed yield the same batches, epoch after epoch.

    With ``shuffle=False``, batches are consecutive runs of the examples sorted by length
    (stable sort: ties keep dataset order), which is the same every time.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        bucket_batches: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_batches = max(1, bucket_batches)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self, order: list[int]) -> list[list[int]]:
        bs = self.batch_size
        batches = [order[i : i + bs] for i in range(0, len(order), bs)]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: self.lengths[i])
            yield from self._batches(order)
            return
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = list(range(n))
        rng.shuffle(order)
        chunk = self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, n, chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i])
            batches.extend(self._batches(part))
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        yield from batches


def split_lines(text: str, *, max_lines: int | None = None) -> list[str]:
    """The non-empty lines of ``text`` (the first ``max_lines`` of them, if given)."""
    lines = [line for line in text.split("\n") if line]
    if max_lines is not None:
        lines = lines[:max_lines]
    return lines


def make_char_lm_data(
    text: str,
    *,
    dev_fraction: float = 0.1,
    max_lines: int | None = None,
    seed: int | None = None,
):
    """Vocabulary and train/dev line datasets for a character language model.

    - The vocabulary is built from the *whole* ``text`` (so any prefix from it can be encoded,
      even when ``max_lines`` keeps only part of it).
    - Sequences are the non-empty lines; ``max_lines`` keeps the first ``max_lines`` of them.
    - The split is contiguous and deterministic: dev is the last ``dev_fraction`` of the lines
      (at least one line each when there are two or more lines), train the rest. Contiguous,
      so dev lines come from scenes the model has not seen.
    - ``seed``: ``None`` (default) keeps that contiguous split; an integer shuffles the lines with
      ``random.Random(seed)`` before splitting (a random, still reproducible, split).

    Returns ``(vocab, train_dataset, dev_dataset)`` (:class:`CharLineDataset` objects).
    """
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    vocab = CharVocab.from_text(text)
    lines = split_lines(text, max_lines=max_lines)
    if seed is not None:
        lines = list(lines)
        random.Random(seed).shuffle(lines)
    n_dev = int(round(len(lines) * dev_fraction))
    if dev_fraction > 0 and len(lines) >= 2:
        n_dev = min(max(n_dev, 1), len(lines) - 1)
    n_train = len(lines) - n_dev
    train = CharLineDataset(lines[:n_train], vocab)
    dev = CharLineDataset(lines[n_train:], vocab)
    return vocab, train, dev


def make_loaders(
    train: CharLineDataset,
    dev: CharLineDataset | None,
    batch_size: int,
    *,
    pad_id: int = 0,
    shuffle_seed: int = 0,
    pin_memory: bool | str = "auto",
    bucket_batches: int = 50,
):
    """Train and dev ``DataLoader`` objects yielding :func:`collate_char_lm` dict batches.

    Train batches come from a :class:`BucketBatchSampler` (shuffled, seeded by
    ``shuffle_seed``, sorted by length within buckets of ``bucket_batches`` batches: reproducible
    and little padding). Dev batches are the dev examples sorted by length (no shuffling).
    ``pin_memory="auto"`` pins host memory when CUDA is available. ``dev`` may be ``None``
    (then the second loader is ``None``).
    """
    if pin_memory == "auto":
        pin_memory = torch.cuda.is_available()
    collate = functools.partial(collate_char_lm, pad_id=pad_id)
    train_loader = DataLoader(
        train,
        batch_sampler=BucketBatchSampler(
            train.lengths, batch_size, shuffle=True, seed=shuffle_seed, bucket_batches=bucket_batches
        ),
        collate_fn=collate,
        pin_memory=bool(pin_memory),
    )
    dev_loader = None
    if dev is not None:
        dev_loader = DataLoader(
            dev,
            batch_sampler=BucketBatchSampler(dev.lengths, batch_size, shuffle=False),
            collate_fn=collate,
            pin_memory=bool(pin_memory),
        )
    return train_loader, dev_loader
