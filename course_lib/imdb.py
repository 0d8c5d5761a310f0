"""The IMDB movie reviews (Maas et al., 2011) for the ``sentiment_and_gpt2`` assignment, and the handout's split.

All 50,000 labelled reviews (aclImdb's ``train`` and ``test`` folders, 25,000 positive and 25,000
negative) are pooled and split as the handout's ``load_imdb`` does with scikit-learn's
``train_test_split`` (no stratification): 20 % test with ``random_state=12``, then 12.5 % of the
rest validation with ``random_state=12``, which leaves 35,000 / 5,000 / 10,000 reviews::

    from course_lib import imdb
    x_train, x_valid, x_test, y_train, y_valid, y_test = imdb.load_imdb()
    len(x_train), len(x_valid), len(x_test)          # (35000, 5000, 10000)
    y_train[:3]                                      # labels are "positive" / "negative"
    imdb.load_imdb(subset=True)                      # the 2,000-review subset: 1,400 / 200 / 400

The handout reads a CSV of the same 50,000 reviews (columns ``review`` and ``sentiment``) in an
order this module cannot reproduce; here the pooled order is fixed and documented (:func:`read_reviews`:
train/neg, train/pos, test/neg, test/pos, each by review id), so the split is the handout's
procedure, seeded as the handout seeds it, but not its exact partition. The reviews are as in
the files, ``<br />`` tags included (the handout's vocabulary leaves them to punctuation stripping,
which turns them into the word ``br``).

The files come through :func:`course_lib.data.fetch`: ``aclImdb_v1_labeled.tar.xz`` (the mirror's
repack of the 50,000 labelled reviews) or, without mirror or cache, the original Stanford tarball
``aclImdb_v1.tar.gz``, which has the same reviews; and ``imdb_subset_2000.csv`` (500 reviews of each
folder, rebuilt from the tarball where needed).

The vocabulary convention of the assignment lives here too: ``PAD_TOKEN`` ``"<pad>"`` at index
``PAD_INDEX`` 0 and ``UNK_TOKEN`` ``"<unk>"`` at ``UNK_INDEX`` 1, as in the handout's ``HyperParams``.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PAD_TOKEN", "UNK_TOKEN", "PAD_INDEX", "UNK_INDEX", "LABELS", "SEED", "TEST_SIZE", "VALID_SIZE", "COUNTS",
    "SUBSET_COUNTS", "archive_path", "read_reviews", "read_subset", "shuffle_split", "split_reviews", "load_imdb",
]

PAD_TOKEN, PAD_INDEX = "<pad>", 0
UNK_TOKEN, UNK_INDEX = "<unk>", 1
#: The handout's labels: index 0 is "negative", index 1 "positive" (the classifier's classes).
LABELS = ("negative", "positive")
#: The handout's split: ``train_test_split(..., test_size=0.2, random_state=12)``, then
#: ``train_test_split(x_train, ..., test_size=0.125, random_state=12)``.
SEED = 12
TEST_SIZE = 0.2
VALID_SIZE = 0.125
#: Reviews per split (and all of them), for the whole data and for the 2,000-review subset.
COUNTS = {"all": 50_000, "train": 35_000, "valid": 5_000, "test": 10_000}
SUBSET_COUNTS = {"all": 2_000, "train": 1_400, "valid": 200, "test": 400}

_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")
_FOLDERS = [("train", "neg"), ("train", "pos"), ("test", "neg"), ("test", "pos")]
_SENTIMENT = {"neg": "negative", "pos": "positive"}
_COLUMNS = ["review", "sentiment", "folder", "id", "rating"]


def archive_path() -> Path:
    """The labelled reviews' tarball, through :func:`course_lib.data.fetch` (mirror, cache or download)."""
    from .data import fetch

    return fetch("imdb", "aclImdb_v1_labeled.tar.xz", progress=False)


@functools.lru_cache(maxsize=2)
def _read_archive(path: str, mtime: float) -> tuple[tuple, ...]:
    found = {}
    with tarfile.open(path, "r:*") as tf:
        for info in tf:
            m = _REVIEW.fullmatch(info.name)
            if m and info.isfile():
                fin = tf.extractfile(info)
                assert fin is not None
                found[(m.group(1), m.group(2), int(m.group(3)))] = (fin.read().decode("utf-8"), int(m.group(4)))
    rows = []
    for split, label in _FOLDERS:
        ids = sorted(i for (s, lab, i) in found if s == split and lab == label)
        rows.extend((found[(split, label, i)][0], _SENTIMENT[label], f"{split}/{label}", i, found[(split, label, i)][1])
                    for i in ids)
    return tuple(rows)


def read_reviews(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """All labelled reviews of an aclImdb tarball (default: :func:`archive_path`), pooled in a fixed
    order: ``train/neg``, ``train/pos``, ``test/neg``, ``test/pos``, each by review id.

    Columns: ``review`` (the text as in the file), ``sentiment`` (``"positive"``/``"negative"``),
    ``folder`` (e.g. ``"train/pos"``), ``id`` and ``rating`` (1-10, from the file name). The tarball
    is read once per process (about 5 s) and kept.
    """
    path = Path(path) if path is not None else archive_path()
    if not path.is_file():
        raise FileNotFoundError(f"No IMDB archive at {path}. Leave path=None to use the course data "
                                "(course_lib.data.fetch('imdb', 'aclImdb_v1_labeled.tar.xz')).")
    rows = _read_archive(str(path.resolve()), path.stat().st_mtime)
    if len(rows) != COUNTS["all"]:
        raise ValueError(f"{path} holds {len(rows):,} labelled reviews, not {COUNTS['all']:,}: is it aclImdb v1?")
    return pd.DataFrame(list(rows), columns=_COLUMNS)


def read_subset(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The 2,000-review subset (500 of each folder, ids 0-499) as :func:`read_reviews` gives the whole:
    same columns, same order (default: ``course_lib.data.fetch("imdb", "imdb_subset_2000.csv")``)."""
    if path is None:
        from .data import fetch

        path = fetch("imdb", "imdb_subset_2000.csv", progress=False)
    rows = []
    with open(path, encoding="utf-8", newline="") as fin:
        for row in csv.DictReader(fin):
            rows.append((row["text"], _SENTIMENT[row["label"]], f"{row['split']}/{row['label']}", int(row["id"]),
                         int(row["rating"])))
    rows.sort(key=lambda r: (_FOLDERS.index(tuple(r[2].split("/"))), r[3]))
    return pd.DataFrame(rows, columns=_COLUMNS)


def shuffle_split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (train, test) positions of scikit-learn's ``train_test_split(..., test_size, random_state=seed)``
    for ``n`` items without stratification: ``RandomState(seed).permutation(n)``, whose first
    ``ceil(test_size * n)`` entries are the test positions and the rest, in that order, the training ones."""
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves no training or no test item of {n}")
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_test:], permutation[:n_test]


def split_reviews(texts: Sequence[str], labels: Sequence[str], seed: int = SEED):
    """The handout's split of ``texts`` and ``labels``: test ``TEST_SIZE`` of all, then validation
    ``VALID_SIZE`` of the rest, both with ``seed``. Returns lists
    ``(x_train, x_valid, x_test, y_train, y_valid, y_test)``."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    texts, labels = list(texts), list(labels)
    rest, test = shuffle_split(len(texts), TEST_SIZE, seed)
    x_rest, y_rest = [texts[i] for i in rest], [labels[i] for i in rest]
    train, valid = shuffle_split(len(x_rest), VALID_SIZE, seed)
    return ([x_rest[i] for i in train], [x_rest[i] for i in valid], [texts[i] for i in test],
            [y_rest[i] for i in train], [y_rest[i] for i in valid], [labels[i] for i in test])


def load_imdb(subset: bool = False, seed: int = SEED, path: str | os.PathLike | None = None):
    """The handout's ``load_imdb()``: ``(x_train, x_valid, x_test, y_train, y_valid, y_test)``, lists of
    review texts and of ``"positive"``/``"negative"`` labels, 35,000 / 5,000 / 10,000 reviews
    (``subset=True``: the 2,000-review subset, 1,400 / 200 / 400). ``path``: another tarball (or,
    with ``subset``, another subset CSV)."""
    frame = read_subset(path) if subset else read_reviews(path)
    return split_reviews(frame["review"].tolist(), frame["sentiment"].tolist(), seed)
