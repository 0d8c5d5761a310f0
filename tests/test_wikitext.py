"""Tests for course_lib.wikitext: the word vocabulary and the fixed-length WikiText-2 samples.

Exact values come from a tiny hand-made corpus laid out like the word-level WikiText-2 files
(leading/trailing spaces, blank lines, ` = Title = ` headings); the real files (through
COURSE_DATA_MIRROR, the cache or a download) are checked against the registry's statistics and
skipped when they cannot be had.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from course_lib import data
from course_lib.wikitext import Wikitext2, WordVocab, read_lines

# Laid out like the pytorch/examples files: every line starts (and ends) with a space.
TRAIN = " \n = Robert Boulter = \n \n Robert Boulter is an English actor . \n \n = = Career = = \n \n"
VALID = " \n = Career = \n Boulter is an actor . \n"
# first-occurrence ids: <eos>=1 '='=2 Robert=3 Boulter=4 is=5 an=6 English=7 actor=8 '.'=9 Career=10
TRAIN_WORDS = ["<eos>", "=", "Robert", "Boulter", "is", "an", "English", "actor", ".", "Career"]
TRAIN_STREAM = [1, 2, 3, 4, 2, 1, 1, 3, 4, 5, 6, 7, 8, 9, 1, 1, 2, 2, 10, 2, 2, 1, 1]
TRAIN_SIZES = (1, 5, 1, 8, 1, 6, 1)


def write_corpus(folder: Path, **splits: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in splits.items():
        (folder / f"{split}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "wt", train=TRAIN, valid=VALID)


def targets_of(sample) -> list[int]:
    n = int(sample["mask"].sum())
    return sample["target"][:n].tolist()


def check_sample_structure(sample, T):
    """Shapes and dtypes of one sample; source shifted by one is target; padding after the real tokens."""
    assert set(sample) == {"source", "target", "mask"}
    for key, dtype in (("source", torch.long), ("target", torch.long), ("mask", torch.float32)):
        assert sample[key].shape == (T,), f"{key}: expected shape (T,) = ({T},), got {tuple(sample[key].shape)}"
        assert sample[key].dtype == dtype, f"{key}: expected {dtype}, got {sample[key].dtype}"
    mask = sample["mask"]
    n = int(mask.sum())
    assert n >= 1
    assert mask[:n].eq(1).all() and mask[n:].eq(0).all(), f"mask is not n ones then zeros: {mask.tolist()}"
    src, tgt = sample["source"], sample["target"]
    assert torch.equal(src[1:n], tgt[: n - 1]), "target must be source shifted left by one"
    assert src[:n].ne(0).all() and tgt[:n].ne(0).all(), "real tokens are never padding (id 0)"
    assert src[n:].eq(0).all() and tgt[n:].eq(0).all(), "padding must be zeros"


# --- WordVocab ---------------------------------------------------------------------------------


def test_vocab_first_occurrence_ids_and_padding(corpus):
    vocab = WordVocab.from_file(corpus / "train.txt")
    assert vocab.itos == ["<pad>"] + TRAIN_WORDS
    assert vocab.stoi == {w: i for i, w in enumerate(vocab.itos)}
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, None)
    assert len(vocab) == 11 and vocab.num_words == 10
    assert "Boulter" in vocab and vocab.stoi["<pad>"] == 0
    assert read_lines(corpus / "train.txt")[1] == ["=", "Robert", "Boulter", "=", "<eos>"]


def test_vocab_encode_decode(corpus):
    vocab = WordVocab.from_file(corpus / "train.txt")
    assert vocab.encode(" = Robert Boulter = ") == [2, 3, 4, 2]
    assert vocab.encode(["Robert", "is"], add_eos=True) == [3, 5, 1]
    assert vocab.decode([2, 3, 4, 2, 1, 0, 0]) == "= Robert Boulter = <eos>"
    assert vocab.decode(torch.tensor([3, 0])) == "Robert"
    assert vocab.decode([3, 0], strip_pad=False) == "Robert <pad>"
    with pytest.raises(KeyError, match="'Smith'.*not in the vocabulary"):
        vocab.encode("Robert Smith")
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))


def test_vocab_save_load_round_trip_is_exact(corpus, tmp_path):
    vocab = WordVocab.from_file(corpus / "train.txt")
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8") == "".join(w + "\n" for w in TRAIN_WORDS)  # line k = id k
    loaded = WordVocab.load(path)
    assert loaded == vocab and loaded.itos == vocab.itos and loaded.stoi == vocab.stoi
    vocab.save(tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()  # deterministic
    assert WordVocab.from_file(corpus / "train.txt") == vocab


@pytest.mark.parametrize("words,match", [(["a", "a"], "duplicate"), (["<pad>"], "reserved"),
                                         (["a b"], "whitespace"), ([""], "non-empty")])
def test_vocab_rejects_bad_words(words, match):
    with pytest.raises(ValueError, match=match):
        WordVocab(words)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "c", "d", "=", "<unk>"]), max_size=6), max_size=6))
def test_vocab_encode_decode_round_trip(lines):
    vocab = WordVocab.from_lines([line + ["<eos>"] for line in lines] or [["<eos>"]])
    for line in lines:
        ids = vocab.encode(line, add_eos=True)
        assert all(1 <= i < len(vocab) for i in ids)
        assert vocab.decode(ids) == " ".join(line + ["<eos>"])


# --- Wikitext2 on the tiny corpus --------------------------------------------------------------


def test_lines_mode_reproduces_the_handout_table(corpus):
    """The handout's example: '= Robert Boul ter =' -> 4 source, 4 target tokens, then padding.

    Word-level, the heading is '= Robert Boulter =' + <eos>: source '= Robert Boulter =', target
    'Robert Boulter = <eos>', mask 1 1 1 1 0 0 0 (T = 7 for presentation, as in the handout)."""
    ds = Wikitext2(corpus, split="train", break_mode="lines", sequence_length=7)
    sample = ds[0]  # the blank first line (a lone <eos>) has nothing to predict: dropped
    assert sample["source"].tolist() == [2, 3, 4, 2, 0, 0, 0]
    assert sample["target"].tolist() == [3, 4, 2, 1, 0, 0, 0]
    assert sample["mask"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert sample["source"].dtype == torch.long and sample["target"].dtype == torch.long
    assert sample["mask"].dtype == torch.float32
    assert ds.vocab.decode(sample["source"]) == "= Robert Boulter ="
    assert ds.vocab.decode(sample["target"]) == "Robert Boulter = <eos>"
    check_sample_structure(sample, 7)


def test_none_mode_exact_windows(corpus):
    """One stream of 23 tokens, windows of T + 1 = 6 tokens overlapping by one."""
    ds = Wikitext2(corpus, split="train", sequence_length=5)
    assert ds.tokens.tolist() == TRAIN_STREAM and ds.sizes == TRAIN_SIZES
    assert (ds.num_tokens, ds.num_lines, ds.max_length, ds.vocabulary_size) == (23, 7, 5, 11)
    # windows start at 0, 5, 10, 15, 20: the last has 3 tokens (2 targets)
    assert len(ds) == 5
    assert ds[0]["source"].tolist() == [1, 2, 3, 4, 2] and ds[0]["target"].tolist() == [2, 3, 4, 2, 1]
    assert ds[1]["source"].tolist() == [1, 1, 3, 4, 5] and ds[1]["target"].tolist() == [1, 3, 4, 5, 6]
    assert ds[4]["source"].tolist() == [2, 1, 0, 0, 0] and ds[4]["target"].tolist() == [1, 1, 0, 0, 0]
    assert ds[4]["mask"].tolist() == [1, 1, 0, 0, 0]
    assert ds[0]["mask"].tolist() == [1.0] * 5
    # every token but the first is a target exactly once, in order
    assert sum((targets_of(ds[i]) for i in range(len(ds))), []) == TRAIN_STREAM[1:]
    assert ds.num_target_tokens() == 22


@pytest.mark.parametrize("T", [1, 2, 3, 4, 21, 22, 23, 256])
def test_none_mode_covers_every_transition_once_for_any_length(corpus, T):
    ds = Wikitext2(corpus, split="train", sequence_length=T)
    for i in range(len(ds)):
        check_sample_structure(ds[i], T)
    assert sum((targets_of(ds[i]) for i in range(len(ds))), []) == TRAIN_STREAM[1:]
    sources = [ds[i]["source"][0].item() for i in range(len(ds))]
    assert sources == TRAIN_STREAM[: -1 : T][: len(ds)]  # window k starts at token k * T


def test_lines_mode_never_crosses_a_line(corpus):
    ds = Wikitext2(corpus, split="train", break_mode="lines", sequence_length=4)
    got = [(ds[i]["source"][: int(ds[i]["mask"].sum())].tolist(), targets_of(ds[i])) for i in range(len(ds))]
    assert got == [
        ([2, 3, 4, 2], [3, 4, 2, 1]),  # = Robert Boulter = <eos>
        ([3, 4, 5, 6], [4, 5, 6, 7]),  # Robert Boulter is an English actor . <eos>: 8 tokens, 2 windows
        ([7, 8, 9], [8, 9, 1]),
        ([2, 2, 10, 2], [2, 10, 2, 2]),  # = = Career = = <eos>: 6 tokens, 2 windows
        ([2], [1]),
    ]
    # per line, every token but the first is a target exactly once; blank lines give nothing
    assert ds.num_target_tokens() == sum(n - 1 for n in TRAIN_SIZES)


def test_complete_mode_packs_whole_lines(corpus):
    ds = Wikitext2(corpus, split="train", break_mode="complete", sequence_length=14)
    # blank lines (a lone <eos>) are dropped, then lines are packed into windows of <= 15 tokens
    examples = [ds.example(i).tolist() for i in range(len(ds))]
    assert examples == [
        [2, 3, 4, 2, 1, 3, 4, 5, 6, 7, 8, 9, 1],  # heading (5) + paragraph (8) = 13 <= 15
        [2, 2, 10, 2, 2, 1],
    ]
    sample = ds[0]
    check_sample_structure(sample, 14)
    assert int(sample["mask"].sum()) == 12
    # a line longer than a window is cut as in "lines" mode, and its last piece starts a new window
    small = Wikitext2(corpus, split="train", break_mode="complete", sequence_length=4)
    assert [small.example(i).tolist() for i in range(len(small))] == [
        [2, 3, 4, 2, 1], [3, 4, 5, 6, 7], [7, 8, 9, 1], [2, 2, 10, 2, 2], [2, 1]
    ]


def test_min_length_drops_short_windows(corpus):
    ds = Wikitext2(corpus, split="train", break_mode="lines", sequence_length=4, min_length=2)
    assert all(ds[i]["mask"].sum() >= 2 for i in range(len(ds)))
    assert len(ds) == 4  # the last piece of '= = Career = =' (2 tokens, 1 target) is dropped


def test_valid_split_uses_the_train_vocabulary(corpus):
    ds = Wikitext2(corpus, split="valid", sequence_length=8)
    assert ds.vocab == WordVocab.from_file(corpus / "train.txt")
    assert ds.tokens.tolist() == [1, 2, 10, 2, 1, 4, 5, 6, 8, 9, 1]
    alias = Wikitext2(corpus, split="validation", sequence_length=8)  # the original's split name
    assert torch.equal(alias.tokens, ds.tokens)


def test_prebuilt_vocab_is_used(corpus, tmp_path):
    vocab = WordVocab(["Career", "=", "<eos>", "Boulter", "is", "an", "actor", ".", "Robert", "English"])
    ds = Wikitext2(corpus, split="valid", sequence_length=8, vocab=vocab)
    assert ds.vocab is vocab
    assert ds.tokens.tolist() == [3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 3]
    with pytest.raises(KeyError, match=r"valid\.txt line 3: word 'Boulter'"):
        Wikitext2(corpus, split="valid", vocab=WordVocab(["<eos>", "=", "Career"]))


def test_max_tokens_keeps_a_prefix(corpus):
    full = Wikitext2(corpus, split="train", sequence_length=4)
    for k in (0, 1, 3, 6, 7, 12, 23, 100):
        fast = Wikitext2(corpus, split="train", sequence_length=4, max_tokens=k)
        assert fast.tokens.tolist() == TRAIN_STREAM[:k]
        assert sum(fast.sizes) == min(k, 23)
        assert fast.vocab == full.vocab  # the vocabulary is always the full train one
        assert sum((targets_of(fast[i]) for i in range(len(fast))), []) == TRAIN_STREAM[1:k]
    assert len(Wikitext2(corpus, split="train", sequence_length=4, max_tokens=12)) == 3


def test_clear_errors(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No 'test' split .*test\.txt"):
        Wikitext2(corpus, split="test")
    with pytest.raises(ValueError, match=r"Unknown split 'dev'.*'train', 'valid' \(or 'validation'\), 'test'"):
        Wikitext2(corpus, split="dev")
    with pytest.raises(ValueError, match="break_mode 'sentences'.*none, lines, complete"):
        Wikitext2(corpus, break_mode="sentences")
    with pytest.raises(ValueError, match="sequence_length"):
        Wikitext2(corpus, sequence_length=0)
    with pytest.raises(FileNotFoundError, match="train.txt"):  # the default vocab needs the train split
        Wikitext2(write_corpus(tmp_path / "only_valid", valid=VALID), split="valid")


def test_original_file_names_are_accepted(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "wiki.train.tokens").write_text(TRAIN, encoding="utf-8")
    assert Wikitext2(root, sequence_length=5).tokens.tolist() == TRAIN_STREAM


def test_default_collation_gives_a_dict_of_batches(corpus):
    ds = Wikitext2(corpus, split="train", sequence_length=6)
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False)))
    assert set(batch) == {"source", "target", "mask"}
    for key, dtype in (("source", torch.long), ("target", torch.long), ("mask", torch.float32)):
        assert batch[key].shape == (3, 6), f"{key}: expected (B, T) = (3, 6), got {tuple(batch[key].shape)}"
        assert batch[key].dtype == dtype
    assert torch.equal(batch["source"][1], ds[1]["source"])


@settings(max_examples=30, deadline=None)
@given(
    lines=st.lists(st.lists(st.sampled_from(["x", "y", "z", "=", "w"]), max_size=9), min_size=1, max_size=7),
    T=st.integers(1, 9),
    mode=st.sampled_from(["none", "lines", "complete"]),
)
def test_samples_are_consistent_for_any_corpus(lines, T, mode):
    text = "".join(" " + " ".join(line) + " \n" for line in lines)
    with tempfile.TemporaryDirectory() as folder:
        root = write_corpus(Path(folder), train=text)
        ds = Wikitext2(root, break_mode=mode, sequence_length=T)
        stream = ds.tokens.tolist()
        assert len(stream) == sum(len(line) + 1 for line in lines)
        targets = []
        for i in range(len(ds)):
            sample = ds[i]
            check_sample_structure(sample, T)
            example = ds.example(i).tolist()
            assert 2 <= len(example) <= T + 1
            n = int(sample["mask"].sum())
            assert sample["source"][:n].tolist() == example[:-1] and targets_of(sample) == example[1:]
            targets += example[1:]
        if mode == "none":
            assert targets == stream[1:]
        elif mode == "lines":
            per_line, start = [], 0
            for size in ds.sizes:
                per_line += stream[start + 1 : start + size]
                start += size
            assert targets == per_line


# --- the real files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wikitext_files():
    try:
        return {split: data.fetch("wikitext-2", f"{split}.txt", progress=False) for split in ("train", "valid", "test")}
    except data.DataError as err:  # no mirror, no cache and no network
        pytest.skip(f"WikiText-2 is not available: {err}")


def test_real_vocabulary_is_33278_words_plus_padding(wikitext_files):
    registry = data.registry()["datasets"]["wikitext-2"]
    vocab = WordVocab.wikitext2()
    assert vocab.num_words == registry["vocabulary"] == 33_278
    assert len(vocab) == 33_279
    assert vocab.itos[:6] == ["<pad>", "<eos>", "=", "Valkyria", "Chronicles", "III"]
    assert vocab.unk_id is not None and vocab.itos[vocab.unk_id] == "<unk>"
    assert WordVocab.wikitext2() is vocab  # built once per process


def test_real_splits_token_counts_match_the_registry(wikitext_files):
    registry = data.registry()["datasets"]["wikitext-2"]["files"]
    expected = {"train": 2_088_628, "valid": 217_646, "test": 245_569}
    vocab = WordVocab.wikitext2()
    for split, count in expected.items():
        ds = Wikitext2(split=split, vocab=vocab)  # every valid/test word is in the train vocabulary
        assert ds.num_tokens == count == registry[f"{split}.txt"]["content"]["tokens_with_eos"]
        assert ds.num_lines == registry[f"{split}.txt"]["content"]["lines"]
        assert ds.num_target_tokens() == count - 1
        if split == "train":
            assert len(ds) == -(-(count - 1) // 256)  # windows of 257 tokens overlapping by one
            batch = next(iter(DataLoader(ds, batch_size=4)))
            assert {k: tuple(v.shape) for k, v in batch.items()} == {k: (4, 256) for k in ("source", "target", "mask")}
            assert batch["mask"].eq(1).all()


def test_real_test_split_starts_like_the_handout_example(wikitext_files):
    ds = Wikitext2(split="test", break_mode="lines")
    sample = ds[0]
    check_sample_structure(sample, 256)
    assert ds.vocab.decode(sample["source"]) == "= Robert <unk> ="  # 'Boulter' is <unk> at word level
    assert ds.vocab.decode(sample["target"]) == "Robert <unk> = <eos>"
    assert sample["mask"].sum() == 4
    fast = Wikitext2(split="train", max_tokens=1000)
    assert fast.num_tokens == 1000 and len(fast) == 4 and fast.vocabulary_size == 33_279


def test_registry_lists_the_assignment_data():
    from course_lib.notebook import assignment_files

    assert assignment_files("gpt_attention") == [("wikitext-2", "train.txt"), ("wikitext-2", "valid.txt")]
