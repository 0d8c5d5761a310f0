"""Word-level WikiText-2 for the ``gpt_attention`` assignment: a vocabulary and fixed-length samples.

Shape vocabulary: B batch, T time (``sequence_length``, 256 by default), V vocabulary size.

The handout (IFT6135 W2021, assignment 2) ships WikiText-2 pre-tokenized with OpenAI GPT-1's BPE
vocabulary (40,478 subwords), which cannot be rebuilt offline. This module uses the word-level copy
that the data registry serves instead (``fetch("wikitext-2", "train.txt")``, the files of
pytorch/examples ``word_language_model``): one paragraph or heading per line, space-separated
tokens, rare words already replaced by ``<unk>``.

Tokens and ids
--------------
- A *line* of a file is ``line.split() + ["<eos>"]``, exactly as pytorch/examples reads it (blank
  lines become a lone ``<eos>``). The train split has 2,088,628 such tokens, 33,278 distinct ones.
- :class:`WordVocab` numbers the distinct train tokens ``1..N`` **in order of first occurrence** in
  the train file (so id = pytorch/examples' ``Dictionary`` index + 1: ``<eos>`` = 1, ``=`` = 2,
  ``Valkyria`` = 3, ...). Id 0 is reserved for padding (``<pad>``, never a real token), so
  ``len(vocab) == vocabulary_size == N + 1`` (33,279 for WikiText-2). Every valid/test token is in
  the train vocabulary.

Samples
-------
:class:`Wikitext2` follows the course's ``utils/wikitext2.py``: each sample is a dict of

- ``source`` ``(T,)`` LongTensor: a window of tokens without its last one, zero-padded;
- ``target`` ``(T,)`` LongTensor: the same window without its first token (source shifted by one);
- ``mask``   ``(T,)`` FloatTensor: 1.0 where ``target`` is a real token, 0.0 at padding,

so the default ``DataLoader`` collation gives a dict of ``(B, T)`` tensors. A window holds at most
``T + 1`` tokens; windows are cut according to ``break_mode`` (``"none"`` by default, as in
``run_exp.py``):

- ``"none"``: the whole split is one stream (all lines, each ending in ``<eos>``) cut into windows of
  ``T + 1`` tokens that overlap by one token, so every token but the first is a target exactly once;
  only the last window may be shorter (padded).
- ``"lines"``: the same cutting, but line by line: no window crosses the end of a line (a line is the
  "document" of the handout's ``sizes``: one paragraph or heading). Short lines are padded.
- ``"complete"``: whole lines (or the pieces of a line longer than ``T + 1`` tokens) are packed
  greedily, in order, into windows of at most ``T + 1`` tokens.

Windows with fewer than ``min_length`` target tokens are dropped (the default 1 drops the lone
``<eos>`` of a blank line in ``"lines"`` mode, which has nothing to predict).

Example (the first heading of the test split; ``Boulter`` is ``<unk>`` in the word-level files)::

    >>> ds = Wikitext2(split="test", break_mode="lines")
    >>> ds.vocab.decode(ds[0]["source"]), ds.vocab.decode(ds[0]["target"])
    ('= Robert <unk> =', 'Robert <unk> = <eos>')
    >>> ds[0]["mask"][:6]
    tensor([1., 1., 1., 1., 0., 0.])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = ["WordVocab", "Wikitext2", "read_lines", "SPLITS"]

#: Split names accepted by :class:`Wikitext2` -> the registry's file key. ``"validation"`` is the
#: name the original ``utils/wikitext2.py`` used.
SPLITS = {"train": "train.txt", "valid": "valid.txt", "validation": "valid.txt", "test": "test.txt"}
BREAK_MODES = ("none", "lines", "complete")
EOS = "<eos>"
PAD = "<pad>"


def read_lines(path: str | os.PathLike) -> list[list[str]]:
    """The tokenized lines of a word-level file: ``[line.split() + ["<eos>"] for line in file]``.

    Lines are separated by ``"\\n"`` only (a trailing newline does not start a line), as when
    pytorch/examples iterates over the file.
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.split() + [EOS] for line in lines]


class WordVocab:
    """A word vocabulary with id 0 reserved for padding.

    ``words`` are the distinct tokens in id order: ``words[i]`` gets id ``i + 1``. ``itos[0]`` is
    ``"<pad>"``, so ``len(vocab) = len(words) + 1`` (the ``vocabulary_size`` of the models).

    >>> vocab = WordVocab.from_lines([["the", "cat", "<eos>"], ["the", "end", "<eos>"]])
    >>> vocab.itos
    ['<pad>', 'the', 'cat', '<eos>', 'end']
    >>> vocab.encode("the end", add_eos=True)
    [1, 4, 3]
    >>> vocab.decode([1, 2, 3, 0, 0])
    'the cat <eos>'
    """

    def __init__(self, words: Iterable[str]):
        words = list(words)
        seen: set[str] = set()
        for w in words:
            if not isinstance(w, str) or not w or len(w.split()) != 1 or w != w.strip():
                raise ValueError(f"a vocabulary word must be a non-empty string without whitespace, got {w!r}")
            if w == PAD:
                raise ValueError(f"{PAD!r} is reserved for id 0 and cannot be a word")
            if w in seen:
                raise ValueError(f"duplicate word {w!r} in the vocabulary")
            seen.add(w)
        self.itos: list[str] = [PAD] + words
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id: int = 0
        self.eos_id: int | None = self.stoi.get(EOS)
        self.unk_id: int | None = self.stoi.get("<unk>")

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def from_lines(cls, lines: Iterable[Sequence[str]]) -> "WordVocab":
        """Distinct tokens of already tokenized ``lines``, numbered by first occurrence."""
        order: dict[str, None] = {}
        for line in lines:
            for w in line:
                if w not in order:
                    order[w] = None
        return cls(order)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "WordVocab":
        """The vocabulary of a word-level file (tokens by first occurrence, ``<eos>`` after each line)."""
        return cls.from_lines(read_lines(path))

    @classmethod
    def wikitext2(cls, root: str | os.PathLike | None = None) -> "WordVocab":
        """The WikiText-2 train vocabulary (33,278 words + ``<pad>``), built once per process.

        ``root``: a folder holding ``train.txt`` (or ``wiki.train.tokens``); by default the file comes
        from :func:`course_lib.data.fetch` (mirror, cache or download).
        """
        path = _split_path("train", root)
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _VOCAB_CACHE:
            _VOCAB_CACHE[key] = cls.from_file(path)
        return _VOCAB_CACHE[key]

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the words, one per line in id order (line k holds id k; ``<pad>`` is not written)."""
        Path(path).write_text("".join(w + "\n" for w in self.itos[1:]), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WordVocab":
        """Read a file written by :meth:`save`; the ids are the same."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines)

    # --- use -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def num_words(self) -> int:
        """N, the number of real tokens (``len(vocab) - 1``)."""
        return len(self.itos) - 1

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, WordVocab) and self.itos == other.itos

    __hash__ = None  # mutable-looking container: compare by content only

    def __repr__(self) -> str:
        head = " ".join(self.itos[1:6])
        return f"WordVocab(size={len(self)} including <pad>, first words: {head!r})"

    def encode(self, words: str | Sequence[str], *, add_eos: bool = False) -> list[int]:
        """Ids of ``words`` (a list of tokens, or a string split on whitespace).

        A word that is not in the vocabulary raises ``KeyError`` naming it (WikiText-2's valid and
        test splits have none: their rare words are already ``<unk>``).
        """
        if isinstance(words, str):
            words = words.split()
        stoi = self.stoi
        ids = []
        for i, w in enumerate(words):
            try:
                ids.append(stoi[w])
            except KeyError:
                raise KeyError(f"word {w!r} (position {i}) is not in the vocabulary of {len(self)} tokens") from None
        if add_eos:
            if self.eos_id is None:
                raise KeyError(f"this vocabulary has no {EOS!r} token")
            ids.append(self.eos_id)
        return ids

    def decode(self, ids, *, strip_pad: bool = True) -> str:
        """The space-joined words of ``ids`` (a list of ints or a 1-D tensor); padding (id 0) is
        dropped unless ``strip_pad=False`` (then it is written ``<pad>``)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        return " ".join(self.itos[int(i)] for i in ids if not (strip_pad and int(i) == self.pad_id))


_VOCAB_CACHE: dict[tuple[str, int, int], WordVocab] = {}


def _split_path(split: str, root: str | os.PathLike | None) -> Path:
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split {split!r} for Wikitext-2: the split must be one of "
            "'train', 'valid' (or 'validation'), 'test'."
        )
    key = SPLITS[split]
    if root is None:
        from .data import fetch

        return fetch("wikitext-2", key, progress=False)
    root = Path(root).expanduser()
    stem = key.removesuffix(".txt")
    candidates = [root / key, root / f"wiki.{stem}.tokens"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"No {split!r} split of Wikitext-2 in {root}: looked for {candidates[0].name} and {candidates[1].name}. "
        "Leave root=None to use the course data (course_lib.data.fetch('wikitext-2', ...))."
    )


def _window_indices(num_tokens: int, window: int) -> list[tuple[int, int]]:
    """``(start, length)`` windows of at most ``window`` tokens over ``num_tokens`` tokens, each
    starting on the last token of the previous one (so each token but the first is a target once).

    (The original ``utils/wikitext2.py`` started the last, shorter window one token too late and
    made it one token too long; this is the corrected version.)
    """
    if num_tokens <= 0:
        return []
    step = window - 1
    return [(start, min(window, num_tokens - start)) for start in range(0, max(num_tokens - 1, 1), step)]


class Wikitext2(Dataset):
    """Word-level WikiText-2 as fixed-length, zero-padded language-model samples.

    Args:
        root: folder holding ``train.txt``/``valid.txt``/``test.txt`` (or ``wiki.*.tokens``); None
            (default) uses :func:`course_lib.data.fetch` (``COURSE_DATA_MIRROR``, cache, download).
        split: ``"train"``, ``"valid"`` (also ``"validation"``, the original's name) or ``"test"``.
        break_mode: ``"none"`` (default), ``"lines"`` or ``"complete"`` (see the module docstring).
        sequence_length: T, the length of every ``source``/``target``/``mask`` (default 256).
        min_length: drop windows with fewer target tokens than this (default 1).
        vocab: a :class:`WordVocab` to use; default: the train vocabulary of the same ``root``
            (:meth:`WordVocab.wikitext2`), so valid/test ids match train ids.
        max_tokens: fast mode: keep only the first ``max_tokens`` tokens of the split (lines after
            that are dropped, the line it falls in is cut). The vocabulary is still the full one.

    Attributes: ``vocab``, ``split``, ``break_mode``, ``sequence_length`` (also ``max_length``, the
    original's name), ``min_length``, ``tokens`` (the split as one ``(num_tokens,)`` LongTensor),
    ``sizes`` (tokens per line), ``num_tokens``, ``num_lines``, ``vocabulary_size`` (``len(vocab)``).
    Each item is ``{"source": (T,) long, "target": (T,) long, "mask": (T,) float32}``.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        break_mode: str = "none",
        sequence_length: int = 256,
        min_length: int = 1,
        *,
        vocab: WordVocab | None = None,
        max_tokens: int | None = None,
    ):
        if break_mode not in BREAK_MODES:
            raise ValueError(f"Unknown break_mode {break_mode!r} for Wikitext-2: use one of {', '.join(BREAK_MODES)}.")
        if sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
        if max_tokens is not None and max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0 or None, got {max_tokens}")
        path = _split_path(split, root)
        self.root = root
        self.split = split
        self.path = path
        self.break_mode = break_mode
        self.sequence_length = int(sequence_length)
        self.min_length = int(min_length)
        self.vocab = vocab if vocab is not None else WordVocab.wikitext2(root)

        lines = read_lines(path)
        if max_tokens is not None:
            kept, total = [], 0
            for line in lines:
                if total >= max_tokens:
                    break
                line = line[: max_tokens - total]
                kept.append(line)
                total += len(line)
            lines = kept
        ids: list[int] = []
        stoi = self.vocab.stoi
        for n, line in enumerate(lines):
            try:
                ids.extend(stoi[w] for w in line)
            except KeyError as err:
                raise KeyError(
                    f"{path} line {n + 1}: word {err.args[0]!r} is not in the vocabulary "
                    f"({len(self.vocab)} tokens); build the vocabulary from the train split of the same data"
                ) from None
        self.tokens = torch.tensor(ids, dtype=torch.long)
        self.sizes: tuple[int, ...] = tuple(len(line) for line in lines)
        self._examples = self._make_examples()

    # --- cutting into windows ------------------------------------------------------------------

    def _line_pieces(self) -> list[tuple[int, int]]:
        window = self.sequence_length + 1
        pieces, start = [], 0
        for size in self.sizes:
            pieces.extend((start + s, n) for s, n in _window_indices(size, window))
            start += size
        return pieces

    def _make_examples(self) -> list[list[tuple[int, int]]]:
        """Each example is a list of ``(start, length)`` pieces of ``self.tokens``, concatenated."""
        window = self.sequence_length + 1
        keep = lambda n: n - 1 >= self.min_length  # noqa: E731  (n tokens give n - 1 targets)
        if self.break_mode == "none":
            return [[p] for p in _window_indices(self.num_tokens, window) if keep(p[1])]
        pieces = self._line_pieces()
        if self.break_mode == "lines":
            return [[p] for p in pieces if keep(p[1])]
        # "complete": pack whole line pieces greedily into windows of at most T + 1 tokens
        examples: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        length = 0
        for piece in pieces:
            if not keep(piece[1]):
                continue
            if current and length + piece[1] > window:
                examples.append(current)
                current, length = [], 0
            current.append(piece)
            length += piece[1]
        if current:
            examples.append(current)
        return examples

    # --- Dataset API ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._examples)

    def example(self, index: int) -> torch.Tensor:
        """The window of ``index`` as a 1-D LongTensor of 2 to ``T + 1`` token ids (no padding)."""
        pieces = self._examples[index]
        if len(pieces) == 1:
            start, n = pieces[0]
            return self.tokens[start : start + n]
        return torch.cat([self.tokens[s : s + n] for s, n in pieces])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        example = self.example(index)
        T = self.sequence_length
        n = example.numel() - 1  # real target tokens
        source = torch.zeros(T, dtype=torch.long)
        target = torch.zeros(T, dtype=torch.long)
        mask = torch.zeros(T, dtype=torch.float32)
        source[:n] = example[:-1]
        target[:n] = example[1:]
        mask[:n] = 1.0
        return {"source": source, "target": target, "mask": mask}

    @property
    def max_length(self) -> int:
        """``sequence_length`` under the original ``utils/wikitext2.py`` name (``run_exp.py`` uses it)."""
        return self.sequence_length

    @property
    def num_tokens(self) -> int:
        return self.tokens.numel()

    @property
    def num_lines(self) -> int:
        return len(self.sizes)

    @property
    def vocabulary_size(self) -> int:
        """``len(vocab)`` = N + 1 (id 0 is padding): the models' ``vocabulary_size``."""
        return len(self.vocab)

    def num_target_tokens(self) -> int:
        """How many real target tokens the samples hold (the sum of all masks)."""
        return sum(sum(n for _, n in pieces) - 1 for pieces in self._examples)

    def __repr__(self) -> str:
        return (
            f"Wikitext2(split={self.split!r}, break_mode={self.break_mode!r}, sequence_length={self.sequence_length}, "
            f"samples={len(self)}, tokens={self.num_tokens:,}, vocabulary_size={self.vocabulary_size:,})"
        )
