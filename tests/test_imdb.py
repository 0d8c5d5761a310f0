"""course_lib.imdb: the 50,000 labelled IMDB reviews, the handout's seeded 35,000 / 5,000 / 10,000 split,
the 2,000-review subset; and course_lib.stopwords, the offline stop word list.

The split's positions are checked against constants computed with scikit-learn 1.9.1's
``train_test_split`` (the handout's calls: ``test_size=0.2, random_state=12`` on all reviews, then
``test_size=0.125, random_state=12`` on the rest), so the module's NumPy re-implementation is tied to
the library the handout uses, which the course does not install.
"""

from __future__ import annotations

import io
import tarfile
from collections import Counter

import numpy as np
import pytest

from course_lib import imdb
from course_lib.data import DataError
from course_lib.stopwords import ENGLISH_STOP_WORDS

#: The first five positions of each split, from scikit-learn (see the module docstring).
SKLEARN_FIRST = {
    50_000: {"train": [40806, 19295, 34571, 9798, 29254], "valid": [3365, 4223, 7245, 17349, 96],
             "test": [34622, 1163, 7637, 7045, 43847]},
    2_000: {"train": [371, 525, 1521, 1968, 104], "valid": [1771, 1519, 986, 644, 46],
            "test": [369, 1342, 520, 1636, 1982]},
}


@pytest.fixture(scope="module")
def reviews():
    try:
        return imdb.read_reviews()
    except DataError as err:  # no mirror, no cache and no network
        pytest.skip(f"the IMDB archive is not available: {err}")


@pytest.fixture(scope="module")
def subset():
    try:
        return imdb.read_subset()
    except DataError as err:
        pytest.skip(f"the IMDB subset is not available: {err}")


def positions(n: int):
    """The split of positions 0..n-1 (as strings), with labels equal to the positions."""
    items = [str(i) for i in range(n)]
    x_train, x_valid, x_test, y_train, y_valid, y_test = imdb.split_reviews(items, list(range(n)))
    assert [int(x) for x in x_train] == y_train and [int(x) for x in x_test] == y_test
    assert [int(x) for x in x_valid] == y_valid
    return y_train, y_valid, y_test


# --------------------------------------------------------------------------------------------------
# the split procedure


@pytest.mark.parametrize("n", [50_000, 2_000])
def test_split_matches_scikit_learn_and_partitions(n):
    train, valid, test = positions(n)
    counts = imdb.COUNTS if n == 50_000 else imdb.SUBSET_COUNTS
    assert (len(train), len(valid), len(test)) == (counts["train"], counts["valid"], counts["test"])
    assert sum(counts[s] for s in ("train", "valid", "test")) == counts["all"] == n
    for split, first in SKLEARN_FIRST[n].items():
        assert {"train": train, "valid": valid, "test": test}[split][:5] == first, split
    assert sorted(train + valid + test) == list(range(n)), "the three splits partition the reviews"


def test_shuffle_split_is_numpys_seeded_permutation():
    rest, test = imdb.shuffle_split(10, 0.25, 3)
    perm = np.random.RandomState(3).permutation(10)
    assert test.tolist() == perm[:3].tolist() and rest.tolist() == perm[3:].tolist()  # ceil(2.5) = 3 test items
    assert imdb.shuffle_split(10, 0.25, 4)[1].tolist() != test.tolist()
    with pytest.raises(ValueError, match="leaves no"):
        imdb.shuffle_split(3, 0.0, 1)
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        imdb.split_reviews(["a", "b", "c"], ["positive", "negative"])


def test_split_depends_on_the_seed_only():
    items = [str(i) for i in range(500)]
    labels = ["positive"] * 500
    assert imdb.split_reviews(items, labels) == imdb.split_reviews(items, labels, seed=imdb.SEED)
    assert imdb.split_reviews(items, labels, seed=13)[0] != imdb.split_reviews(items, labels)[0]


# --------------------------------------------------------------------------------------------------
# the 50,000 reviews


def test_read_reviews_counts_and_order(reviews):
    assert len(reviews) == imdb.COUNTS["all"] == 50_000
    assert list(reviews.columns) == ["review", "sentiment", "folder", "id", "rating"]
    assert reviews["folder"].tolist() == [f for f in ("train/neg", "train/pos", "test/neg", "test/pos")
                                          for _ in range(12_500)]
    for _, part in reviews.groupby("folder", sort=False):
        assert part["id"].tolist() == list(range(12_500))
    assert Counter(reviews["sentiment"]) == {"positive": 25_000, "negative": 25_000}
    pos = reviews["sentiment"] == "positive"
    assert (reviews["folder"].str.endswith("pos") == pos).all()
    assert reviews.loc[pos, "rating"].between(7, 10).all() and reviews.loc[~pos, "rating"].between(1, 4).all()
    assert reviews["review"].str.len().min() > 0
    assert reviews["review"].iloc[0].startswith("Story of a man who has unnatural feelings for a pig.")
    assert reviews["review"].str.contains("<br />", regex=False).sum() > 25_000  # kept as in the files


def test_load_imdb_counts_and_label_balance(reviews):
    x_train, x_valid, x_test, y_train, y_valid, y_test = imdb.load_imdb()
    for x, y, split in ((x_train, y_train, "train"), (x_valid, y_valid, "valid"), (x_test, y_test, "test")):
        assert len(x) == len(y) == imdb.COUNTS[split]
        assert set(y) == {"positive", "negative"}
        share = y.count("positive") / len(y)
        assert abs(share - 0.5) < 0.02, f"{split}: {share:.3f} positive"
    # the exact counts of this split (a change to the pooled order or the seed shows here)
    assert Counter(y_train)["positive"] == 17_460 and Counter(y_valid)["positive"] == 2_527
    assert Counter(y_test)["positive"] == 5_013
    # the split picks the reviews at the scikit-learn positions of the pooled order
    texts, labels = reviews["review"].tolist(), reviews["sentiment"].tolist()
    for split, x, y in (("train", x_train, y_train), ("valid", x_valid, y_valid), ("test", x_test, y_test)):
        first = SKLEARN_FIRST[50_000][split]
        assert x[:5] == [texts[i] for i in first] and y[:5] == [labels[i] for i in first]
    assert imdb.load_imdb()[2][:50] == x_test[:50], "the split is deterministic"


def test_read_reviews_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No IMDB archive"):
        imdb.read_reviews(tmp_path / "nope.tar.gz")


def _toy_archive(path, members: dict[str, str]):
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_archive_reader_orders_by_folder_and_numeric_id_and_skips_unsup(tmp_path):
    """The original Stanford tarball also holds train/unsup and *.feat files: they are not reviews."""
    members = {"aclImdb/test/pos/10_9.txt": "t-pos-10", "aclImdb/test/pos/9_8.txt": "t-pos-9",
               "aclImdb/train/unsup/0_0.txt": "unlabelled", "aclImdb/train/labeledBow.feat": "0 0:1",
               "aclImdb/train/pos/0_7.txt": "pos-0", "aclImdb/train/neg/2_1.txt": "neg-2",
               "aclImdb/test/neg/0_4.txt": "t-neg-0", "aclImdb/README": "readme"}
    path = tmp_path / "toy.tar.gz"
    _toy_archive(path, members)
    rows = imdb._read_archive(str(path), path.stat().st_mtime)
    assert [r[0] for r in rows] == ["neg-2", "pos-0", "t-neg-0", "t-pos-9", "t-pos-10"]
    assert [r[1] for r in rows] == ["negative", "positive", "negative", "positive", "positive"]
    assert [(r[2], r[3], r[4]) for r in rows][-1] == ("test/pos", 10, 9)
    with pytest.raises(ValueError, match="holds 5 labelled reviews, not 50,000"):
        imdb.read_reviews(path)


# --------------------------------------------------------------------------------------------------
# the 2,000-review subset


def test_subset_counts_split_and_balance(subset):
    assert len(subset) == imdb.SUBSET_COUNTS["all"] == 2_000
    assert Counter(subset["folder"]) == {f: 500 for f in ("train/neg", "train/pos", "test/neg", "test/pos")}
    assert subset["id"].tolist() == list(range(500)) * 4
    splits = imdb.load_imdb(subset=True)
    for k, split in enumerate(("train", "valid", "test")):
        assert len(splits[k]) == len(splits[k + 3]) == imdb.SUBSET_COUNTS[split]
    assert Counter(splits[3]) == {"negative": 708, "positive": 692}
    assert abs(splits[5].count("positive") / 400 - 0.5) < 0.03
    texts = subset["review"].tolist()
    assert splits[2][:5] == [texts[i] for i in SKLEARN_FIRST[2_000]["test"]]


def test_subset_reviews_are_the_archives(subset, reviews):
    """Every subset row is the review of the same folder and id in the tarball, text and rating."""
    small = reviews[reviews["id"] < 500].reset_index(drop=True)
    assert small[["review", "sentiment", "folder", "id", "rating"]].equals(subset)


# --------------------------------------------------------------------------------------------------
# the stop words


def test_stop_words_are_snowballs_english_list():
    assert len(ENGLISH_STOP_WORDS) == 174
    assert all(w == w.lower() and " " not in w for w in ENGLISH_STOP_WORDS)
    assert {"the", "a", "and", "not", "no", "very", "don't", "cannot", "ourselves"} <= ENGLISH_STOP_WORDS
    assert not {"movie", "good", "bad", "us", "will", "can", "never", "br"} & ENGLISH_STOP_WORDS
    from course_lib import stopwords

    assert "BSD-3-Clause" in stopwords.LICENCE and "Redistribution and use" in stopwords.__doc__
