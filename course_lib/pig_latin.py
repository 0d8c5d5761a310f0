"""English -> Pig Latin word pairs for the ``nmt_pig_latin`` assignment (handout sections 2.2-2.3).

Data only, no model code. The pairs come through :func:`course_lib.data.fetch` (dataset
``"pig_latin"``: mirror, cache or canonical URL, checksum verified) and are read as the handout's
loader reads them: the file lower-cased, one ``english piglatin`` pair a line, blank lines skipped,
only pairs whose two words are letters or dashes kept, duplicates removed::

    from course_lib import pig_latin as pl
    pairs = pl.load_pairs("small")               # 3,198 sorted (english, pig latin) pairs; "large": 22,402
    vocab = pl.build_vocab(pairs)                # a-z and '-' get 0..26, SOS 27, EOS 28 (29 tokens)
    vocab_d = pl.build_vocab(pairs, eop=True)    # ... and EOP 29 for the decoder-only model (30)
    train, val = pl.split_pairs(pairs)           # seeded 80 / 20 split: 2,558 / 640
    for src, tgt in pl.batches(train, vocab, 64, seed=epoch):
        ...                                      # src (B, len_src + 1), tgt (B, len_tgt + 1): chars + EOS
    test = pl.held_out_pairs()                   # 1,000 English words in neither set, with pig_latin(word)

Each batch holds pairs of one (source length, target length) group (the handout's footnote 1), so no
padding is needed. The original loader filtered the source and target columns separately and zipped
them again; on these files that drops exactly the pairs that pairwise filtering drops (both words
of every rejected pair are rejected), so the counts are the published ones. Its split cut the
shuffled list at ``floor(0.8 n)`` and started validation one pair later, losing one pair; here none
is lost (train keeps ``floor(0.8 n)`` pairs).

The rule (:func:`pig_latin`), derived from the data and checked against every pair of both files:
a word starting with a, e, i, o or u gets ``"way"``; otherwise the leading consonants, up to the first
a, e, i, o, u *or y*, move to the end as a block and ``"ay"`` follows (``shopping -> oppingshay``,
``rhymes -> ymesrhay``; a leading y is not moved: ``yard -> yarday``); a dashed word is translated part
by part (``to-day -> otay-ayday``). Words the data took from the book (pg161, *Sense and Sensibility*)
also move a ``u`` after ``q`` with the cluster (``quite -> itequay``, ``square -> aresquay``); words
taken only from Norvig's top 20,000 do not (``quiz -> uizqay``); words in both have both pairs in
the large file. ``qu_block`` picks the convention. The two pairs no setting reproduces,
:data:`EXCEPTIONS`, are the book's "M.D." and "M.P." translated letter by letter; the large file
also holds their regular pairs (``md mday``, ``mp mpay``). With the default ``qu_block=True`` the rule
reproduces all 3,198 small pairs and 22,315 of the 22,402 large ones (the 85 other pairs are
Norvig-only ``qu`` words, and the two exceptions); with ``qu_block=False``, 3,183 and 22,371.

The held-out test set (:func:`held_out_pairs`) is drawn from the words ranked 20,001-40,000 in
Norvig's ``count_1w`` list (the large file holds all of the top 20,000), lower-case letters only, not
a source word of either file, and not one whose translation depends on ``qu_block`` (the data disagree
on those). It is sampled by length to follow the length distribution of the large file's source words
(lengths 2-14, which hold 99.5 % of them), each length's words taken in a seeded hash order.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

__all__ = [
    "DATASET", "FILES", "SIZES", "COUNTS", "LINES", "VOCAB_SIZE", "SOS", "EOS", "EOP", "VOWELS",
    "EXCEPTIONS", "HELD_OUT_SIZE", "HELD_OUT_RANKS", "HELD_OUT_LENGTHS", "WORD_LIST",
    "Vocab", "is_word", "read_pairs", "load_pairs", "build_vocab", "split_pairs", "pig_latin",
    "ranked_words", "held_out_pairs", "length_groups", "batches",
]

#: The registry's dataset and the file of each size.
DATASET = "pig_latin"
FILES = {"small": "pig_latin_small.txt", "large": "pig_latin_large.txt"}
SIZES = tuple(FILES)
#: Unique pairs after the handout loader's filtering (the handout's numbers) and lines of each file.
COUNTS = {"small": 3_198, "large": 22_402}
LINES = {"small": 3_255, "large": 22_526}
#: The handout's vocabulary: a-z, '-', SOS, EOS (EOP comes on top for the decoder-only model).
VOCAB_SIZE = 29
SOS, EOS, EOP = "SOS", "EOS", "EOP"
VOWELS = "aeiou"
#: (english, pig latin) pairs of the large file that :func:`pig_latin` does not reproduce with either
#: ``qu_block``: the book's "M.D." and "M.P.", translated letter by letter ("may.day.") with the dots dropped.
EXCEPTIONS = frozenset({("md", "mayday"), ("mp", "maypay")})
#: The held-out set: its default size, the count_1w ranks it is drawn from (0-based, end excluded:
#: ranks 20,001-40,000) and the word lengths it covers (inclusive).
HELD_OUT_SIZE = 1_000
HELD_OUT_RANKS = (20_000, 40_000)
HELD_OUT_LENGTHS = (2, 14)
WORD_LIST = "count_1w_top100000.txt"


# ---------------------------------------------------------------------------------------------------
# reading the pairs


def is_word(s: str) -> bool:
    """The handout's filter: every character is alphabetic or a dash (``all_alpha_or_dash``)."""
    return all(c.isalpha() or c == "-" for c in s)


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The pairs of a file as the handout's loader reads them, deduplicated and sorted.

    The text is stripped and lower-cased, each non-blank line must hold exactly two words
    (``english piglatin``), and a pair is kept when both words pass :func:`is_word`.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8").strip().lower()
    pairs = set()
    for number, line in enumerate(text.split("\n"), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise ValueError(f"{path}, line {number}: expected two words 'english piglatin', got {line.strip()!r}.")
        if is_word(words[0]) and is_word(words[1]):
            pairs.add((words[0], words[1]))
    return sorted(pairs)


def _size(size: str) -> str:
    if size not in FILES:
        raise ValueError(f"Unknown Pig Latin data size {size!r}: use one of {', '.join(SIZES)}.")
    return size


@functools.lru_cache(maxsize=4)
def _load(size: str) -> tuple[tuple[str, str], ...]:
    from .data import fetch

    return tuple(read_pairs(fetch(DATASET, FILES[size], progress=False)))


def load_pairs(size: str) -> list[tuple[str, str]]:
    """The (english, pig latin) pairs of ``size`` ("small" or "large"), sorted: 3,198 or 22,402."""
    return list(_load(_size(size)))


# ---------------------------------------------------------------------------------------------------
# vocabulary


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Character vocabulary: ``chars`` (sorted) get 0..len-1, then ``sos``, ``eos`` and (optionally) ``eop``.

    ``char_to_index`` and ``index_to_char`` also map the special tokens' names ``"SOS"``, ``"EOS"``,
    ``"EOP"``, as the original course code does. Build it with :func:`build_vocab`.
    """

    chars: tuple[str, ...]
    sos: int
    eos: int
    eop: int | None = None
    char_to_index: Mapping[str, int] = dataclasses.field(init=False, repr=False, compare=False, hash=False)
    index_to_char: Mapping[int, str] = dataclasses.field(init=False, repr=False, compare=False, hash=False)
    size: int = dataclasses.field(init=False, compare=False, hash=False)

    def __post_init__(self):
        chars = tuple(self.chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars) or list(chars) != sorted(set(chars)):
            raise ValueError(f"Vocab chars must be distinct single characters in sorted order, got {chars!r}.")
        n = len(chars)
        expected = (n, n + 1, None if self.eop is None else n + 2)
        if (self.sos, self.eos, self.eop) != expected:
            raise ValueError(f"Vocab indices must follow the characters: sos={n}, eos={n + 1}, eop={n + 2} or None; "
                             f"got sos={self.sos}, eos={self.eos}, eop={self.eop}. Use build_vocab().")
        c2i = {c: i for i, c in enumerate(chars)}
        c2i[SOS], c2i[EOS] = self.sos, self.eos
        if self.eop is not None:
            c2i[EOP] = self.eop
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "char_to_index", MappingProxyType(c2i))
        object.__setattr__(self, "index_to_char", MappingProxyType({i: c for c, i in c2i.items()}))
        object.__setattr__(self, "size", len(c2i))
        object.__setattr__(self, "_codes", np.array([ord(c) for c in chars], dtype=np.uint32))

    def encode(self, word: str, eos: bool = False) -> list[int]:
        """The indices of ``word``'s characters (then EOS if ``eos``)."""
        unknown = sorted(set(word) - set(self.chars))
        if unknown:
            raise ValueError(f"{word!r} has characters outside the vocabulary: {unknown}.")
        return [self.char_to_index[c] for c in word] + ([self.eos] if eos else [])

    def decode(self, indices: Iterable[int] | torch.Tensor | np.ndarray) -> str:
        """The characters of ``indices`` up to the first EOS, SOS and EOP skipped."""
        if isinstance(indices, (torch.Tensor, np.ndarray)):
            if indices.ndim != 1:
                raise ValueError(f"decode takes one sequence (1-D), got shape {tuple(indices.shape)}.")
            indices = indices.tolist()
        out = []
        for i in indices:
            i = int(i)
            if i == self.eos:
                break
            if i == self.sos or (self.eop is not None and i == self.eop):
                continue
            if not 0 <= i < len(self.chars):
                raise ValueError(f"Index {i} is not in the vocabulary (0..{self.size - 1}).")
            out.append(self.chars[i])
        return "".join(out)

    def encode_matrix(self, words: Sequence[str]) -> np.ndarray:
        """Words of one length as an int64 array (len(words), length), vectorised (no EOS)."""
        if not words:
            return np.zeros((0, 0), dtype=np.int64)
        length = len(words[0])
        if any(len(w) != length for w in words):
            raise ValueError("encode_matrix needs words of one length.")
        codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype="<u4").reshape(len(words), length)
        index = np.searchsorted(self._codes, codes).clip(max=len(self.chars) - 1)
        bad = self._codes[index] != codes
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"{words[row]!r} has a character outside the vocabulary: {words[row][col]!r}.")
        return index.astype(np.int64)


def build_vocab(pairs: Iterable[tuple[str, str]], eop: bool = False) -> Vocab:
    """The vocabulary of ``pairs`` as the original builds it: the sorted characters of all source and
    target words get 0..n-1, then SOS n and EOS n+1 (29 tokens for either file), and with ``eop``
    EOP n+2 (30)."""
    chars = set()
    count = 0
    for src, tgt in pairs:
        chars.update(src)
        chars.update(tgt)
        count += 1
    if not count:
        raise ValueError("build_vocab needs at least one pair.")
    n = len(chars)
    return Vocab(tuple(sorted(chars)), n, n + 1, n + 2 if eop else None)


# ---------------------------------------------------------------------------------------------------
# split


def _check_pairs(pairs) -> list[tuple[str, str]]:
    pairs = list(pairs)
    for p in pairs:
        if not (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)):
            raise TypeError(f"Pairs must be (english, pig latin) tuples of two strings, got {p!r}.")
    return pairs


def _hash_key(seed: int, *parts: str) -> bytes:
    return hashlib.blake2b("\t".join((str(seed),) + parts).encode("utf-8"), digest_size=8).digest()


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}.")
    return int(seed)


def split_pairs(pairs: Iterable[tuple[str, str]], val_fraction: float = 0.2,
                seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A seeded shuffle of the sorted pairs cut into (train, val): ``floor((1 - val_fraction) n)`` train.

    The shuffle orders pairs by a BLAKE2b hash of (seed, pair), so it depends only on the seed and
    the pairs, on every machine and library version. Both lists come back in shuffled order.
    """
    pairs = sorted(_check_pairs(pairs))
    seed = _check_seed(seed)
    if len(set(pairs)) != len(pairs):
        raise ValueError("split_pairs got duplicate pairs; deduplicate them first (load_pairs does).")
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}.")
    n = len(pairs)
    n_train = n - math.ceil(round(n * val_fraction, 9))
    if n_train < 1 or n_train == n:
        raise ValueError(f"{n} pairs cannot be split with val_fraction={val_fraction}: one side would be empty.")
    order = sorted(pairs, key=lambda p: (_hash_key(seed, *p), p))
    return order[:n_train], order[n_train:]


# ---------------------------------------------------------------------------------------------------
# the rule and the held-out words


def _part(w: str, qu_block: bool) -> str:
    if not w:
        return w
    if w[0] in VOWELS:
        return w + "way"
    i = 0
    while i < len(w) and w[i] not in "aeiouy":
        i += 1
    if qu_block and 0 < i < len(w) and w[i] == "u" and w[i - 1] == "q":
        i += 1
    return w[i:] + w[:i] + "ay"


def pig_latin(word: str, *, qu_block: bool = True) -> str:
    """The Pig Latin of a lower-case word (letters a-z and dashes), by the rule that made the data.

    A vowel (a, e, i, o, u) first: add "way". Otherwise move the letters before the first a, e, i, o,
    u or y to the end and add "ay" (a leading y stays: ``yard -> yarday``). With ``qu_block`` (the
    book words' convention) a u after q moves with the cluster: ``quite -> itequay``; without it
    (Norvig's words) ``quite -> uiteqay``. Dashed words are translated part by part.
    """
    if not isinstance(word, str) or not word:
        raise ValueError(f"pig_latin takes a non-empty word, got {word!r}.")
    if any(not ("a" <= c <= "z" or c == "-") for c in word):
        raise ValueError(f"pig_latin takes lower-case letters a-z and dashes only, got {word!r}.")
    return "-".join(_part(p, qu_block) for p in word.split("-"))


@functools.lru_cache(maxsize=1)
def _ranked_words() -> tuple[str, ...]:
    from .data import fetch

    text = fetch(DATASET, WORD_LIST, progress=False).read_text(encoding="utf-8")
    return tuple(line.split("\t", 1)[0] for line in text.split("\n") if line)


def ranked_words() -> list[str]:
    """The 100,000 most frequent words of Norvig's ``count_1w.txt``, most frequent first."""
    return list(_ranked_words())


@functools.lru_cache(maxsize=8)
def _held_out(n: int, seed: int) -> tuple[tuple[str, str], ...]:
    lo, hi = HELD_OUT_LENGTHS
    seen = {s for s, _ in _load("small")} | {s for s, _ in _load("large")}
    pool: dict[int, list[str]] = {k: [] for k in range(lo, hi + 1)}
    for w in _ranked_words()[slice(*HELD_OUT_RANKS)]:
        if (lo <= len(w) <= hi and w.isascii() and w.isalpha() and w.islower() and w not in seen
                and pig_latin(w, qu_block=True) == pig_latin(w, qu_block=False)):
            pool[len(w)].append(w)
    # the length distribution of the large file's letter-only source words
    counts = np.zeros(hi + 1)
    for s, _ in _load("large"):
        if lo <= len(s) <= hi and "-" not in s:
            counts[len(s)] += 1
    quota = n * counts / counts.sum()
    take = np.floor(quota).astype(int)
    remainder = quota - take
    for k in sorted(range(hi + 1), key=lambda k: (-remainder[k], k))[: n - take.sum()]:
        take[k] += 1  # largest remainders
    chosen = []
    for k, words in pool.items():
        if take[k] > len(words):
            raise ValueError(f"held_out_pairs(n={n}) needs {take[k]} words of length {k}, but only {len(words)} "
                             f"are held out; use a smaller n.")
        chosen += sorted(words, key=lambda w: (_hash_key(seed, w), w))[: take[k]]
    return tuple(sorted((w, pig_latin(w)) for w in chosen))


def held_out_pairs(n: int = HELD_OUT_SIZE, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (english, pig latin) pairs of words in neither data file, sorted; fixed for a given seed.

    Drawn from count_1w's ranks 20,001-40,000 (letters only, lengths 2-14, not a source word of
    small or large, translation the same under either ``qu_block``), with lengths distributed as in
    the large file, then translated with :func:`pig_latin`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}.")
    return list(_held_out(int(n), _check_seed(seed)))


# ---------------------------------------------------------------------------------------------------
# batches


def length_groups(pairs: Iterable[tuple[str, str]]) -> dict[tuple[int, int], list[tuple[str, str]]]:
    """``{(len(source), len(target)): [pairs]}``, keys sorted, pairs in their given order."""
    groups: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for s, t in _check_pairs(pairs):
        groups.setdefault((len(s), len(t)), []).append((s, t))
    return {k: groups[k] for k in sorted(groups)}


def batches(pairs: Iterable[tuple[str, str]], vocab: Vocab, batch_size: int,
            seed: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(src, tgt)`` of LongTensors, each batch from one length group.

    ``src`` is (B, len_src + 1), the source characters then EOS; ``tgt`` is (B, len_tgt + 1), the
    target characters then EOS (the original's convention). Groups are chunked into batches of
    ``batch_size`` (the last one of a group may be smaller). ``seed=None`` keeps the order (groups by
    length, pairs as given); an int shuffles the pairs within each group and the order of the batches.
    """
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a pig_latin.Vocab (build_vocab), got {type(vocab).__name__}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    rng = None if seed is None else np.random.default_rng(_check_seed(seed))
    out = []
    for group in length_groups(pairs).values():
        sources, targets = zip(*group, strict=True)
        eos = np.full((len(group), 1), vocab.eos, dtype=np.int64)
        src = np.concatenate([vocab.encode_matrix(sources), eos], axis=1)
        tgt = np.concatenate([vocab.encode_matrix(targets), eos], axis=1)
        if rng is not None:
            order = rng.permutation(len(group))
            src, tgt = src[order], tgt[order]
        src, tgt = torch.from_numpy(src), torch.from_numpy(tgt)
        for start in range(0, len(group), batch_size):
            out.append((src[start:start + batch_size], tgt[start:start + batch_size]))
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out
