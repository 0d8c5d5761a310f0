"""Tests for course_lib.ptb: the Penn Treebank splits as word streams (word_lm_ptb).

The real files come through COURSE_DATA_MIRROR, the cache or a download (skipped when they cannot
be had); their counts are checked against course_lib.ptb.COUNTS, the data manifest
(data/registry.json) and an independent reading of the raw files. Exact values come from a tiny
corpus laid out like the PTB files (a leading space, one sentence per line).
"""

from __future__ import annotations

import pytest

from course_lib import data, ptb
from course_solutions.layers import build_vocab

TINY = {"train": " the cat sat \n a cat <unk> \n", "valid": " the cat \n", "test": " a <unk> sat \n"}


def write_tiny(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in TINY.items():
        (folder / f"ptb.{split}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ptb_files():
    try:
        return {split: data.fetch("ptb", name, progress=False) for split, name in ptb.SPLITS.items()}
    except data.DataError as err:  # no mirror, no cache and no network
        pytest.skip(f"Penn Treebank is not available: {err}")


@pytest.fixture(scope="module")
def words(ptb_files):
    return {split: ptb.read_words(split) for split in ptb.SPLITS}


def test_read_words_from_a_root_folder(tmp_path):
    root = write_tiny(tmp_path / "ptb")
    assert ptb.read_words("train", root) == ["the", "cat", "sat", "<eos>", "a", "cat", "<unk>", "<eos>"]
    assert ptb.read_words("valid", root) == ["the", "cat", "<eos>"]
    assert ptb.read_words("test", str(root)) == ["a", "<unk>", "sat", "<eos>"]
    assert ptb.EOS == "<eos>"


def test_missing_root_file_says_what_to_do(tmp_path):
    root = write_tiny(tmp_path / "ptb")
    (root / "ptb.valid.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        ptb.read_words("valid", root)
    message = str(err.value)
    assert "ptb.valid.txt" in message and str(root) in message
    assert "root=None" in message  # what to do: use the course data
    with pytest.raises(FileNotFoundError, match="ptb.train.txt"):
        ptb.read_words("train", tmp_path / "nowhere")


@pytest.mark.parametrize("split", ["dev", "validation", "TRAIN", ""])
def test_unknown_split_raises_value_error(split, tmp_path):
    with pytest.raises(ValueError, match="train, valid, test"):
        ptb.read_words(split)
    with pytest.raises(ValueError):
        ptb.read_words(split, write_tiny(tmp_path / "ptb"))


def test_counts_match_the_manifest():
    files = data.registry()["datasets"]["ptb"]["files"]
    for split, name in ptb.SPLITS.items():
        content = files[name]["content"]
        assert ptb.COUNTS[split] == (content["lines"], content["words"]), split
    assert data.registry()["datasets"]["ptb"]["vocabulary"] == ptb.VOCABULARY_SIZE == 10_000


def test_real_splits_word_counts(ptb_files, words):
    for split, path in ptb_files.items():
        lines, text_words = ptb.COUNTS[split]
        raw = path.read_bytes().decode("utf-8")
        # independent: newline-terminated lines, whitespace-separated words
        assert raw.count("\n") == lines and raw.endswith("\n"), split
        assert len(raw.split()) == text_words, split
        stream = words[split]
        assert len(stream) == lines + text_words, split
        assert stream.count("<eos>") == lines, split
        assert stream[-1] == "<eos>"
    assert words["train"][:3] == ["aer", "banknote", "berlitz"]
    assert len(words["train"]) == 929_589 and len(words["valid"]) == 73_760 and len(words["test"]) == 82_430


def test_vocabulary_of_the_training_split(words):
    vocab = build_vocab(words["train"])
    assert len(vocab) == ptb.VOCABULARY_SIZE == 10_000
    assert "<eos>" in vocab and "<unk>" in vocab and "N" in vocab
    assert sorted(vocab.values()) == list(range(10_000))
    assert vocab["aer"] == 0
    for split in ("valid", "test"):
        missing = set(words[split]) - set(vocab)
        assert not missing, f"{split} words not in the training vocabulary: {sorted(missing)[:10]}"
