"""Tests for course_lib.text: vocabulary, padding, line datasets, batches, loaders."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.text import (
    BucketBatchSampler,
    CharLineDataset,
    CharVocab,
    collate_char_lm,
    make_char_lm_data,
    make_loaders,
    pad_sequences,
)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


# --- CharVocab -------------------------------------------------------------------------------


def test_vocab_special_ids_and_sorted_chars():
    vocab = CharVocab("hello")
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2)
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "e", "h", "l", "o"]
    assert vocab.stoi == {s: i for i, s in enumerate(vocab.itos)}
    assert len(vocab) == 7
    assert CharVocab.PAD == "<pad>" and CharVocab.BOS == "<bos>" and CharVocab.EOS == "<eos>"


def test_vocab_from_text_excludes_newline():
    vocab = CharVocab.from_text(TEXT)
    assert "\n" not in vocab.stoi
    assert vocab.itos[3:] == sorted(set(TEXT) - {"\n"})


def test_encode_decode_values():
    vocab = CharVocab("abc")  # a=3, b=4, c=5
    assert vocab.encode("cab") == [5, 3, 4]
    assert vocab.encode("cab", add_bos=True, add_eos=True) == [1, 5, 3, 4, 2]
    assert vocab.encode("", add_bos=True) == [1]
    assert vocab.decode([1, 5, 3, 4, 2, 0, 0]) == "cab"
    assert vocab.decode(torch.tensor([1, 5, 3, 4, 2])) == "cab"
    assert vocab.decode([1, 5, 2, 0], strip_special=False) == "<bos>c<eos><pad>"


def test_encode_unknown_char_is_a_clear_key_error():
    vocab = CharVocab("abc")
    with pytest.raises(KeyError, match="'z'.*not in the vocabulary"):
        vocab.encode("abz")


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abc XY:,", max_size=30))
def test_encode_decode_round_trip(s):
    vocab = CharVocab("abc XY:,")
    assert vocab.decode(vocab.encode(s, add_bos=True, add_eos=True)) == s


# --- padding and batches -----------------------------------------------------------------------


def test_pad_sequences_values():
    padded, lengths = pad_sequences([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert padded.dtype == torch.long and lengths.dtype == torch.long
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]
    padded, _ = pad_sequences([torch.tensor([1, 2]), torch.tensor([3])], pad_id=-1)
    assert padded.tolist() == [[1, 2], [3, -1]]


def test_collate_shifts_and_masks():
    vocab = CharVocab("abc")
    seqs = [torch.tensor(vocab.encode(s, add_bos=True, add_eos=True)) for s in ["abc", "b"]]
    batch = collate_char_lm(seqs, pad_id=vocab.pad_id)
    assert set(batch) == {"inputs", "targets", "lengths", "mask"}
    # "abc": <bos> a b c <eos> = 1 3 4 5 2 ; "b": <bos> b <eos> = 1 4 2
    assert batch["inputs"].tolist() == [[1, 3, 4, 5], [1, 4, 0, 0]]
    assert batch["targets"].tolist() == [[3, 4, 5, 2], [4, 2, 0, 0]]
    assert batch["lengths"].tolist() == [4, 2]
    assert batch["mask"].dtype == torch.float32
    assert batch["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["inputs"].dtype == torch.long and batch["targets"].dtype == torch.long


# --- datasets ----------------------------------------------------------------------------------


def test_make_char_lm_data_contiguous_split():
    lines = [f"line {i}" for i in range(20)]
    text = "\n".join(lines[:5]) + "\n\n\n" + "\n".join(lines[5:]) + "\n"
    vocab, train, dev = make_char_lm_data(text, dev_fraction=0.1)
    assert isinstance(train, CharLineDataset)
    assert train.lines == lines[:18] and dev.lines == lines[18:]  # empty lines skipped
    ex = train[0]
    assert ex.dtype == torch.long
    assert ex[0].item() == vocab.bos_id and ex[-1].item() == vocab.eos_id
    assert vocab.decode(ex) == "line 0"
    assert train.lengths[0] == len("line 0") + 2
    assert train.num_target_tokens() == sum(len(line) + 1 for line in lines[:18])


def test_make_char_lm_data_max_lines_keeps_full_vocab():
    text = "ab\ncd\nef\ngh\nxyz\n"
    vocab, train, dev = make_char_lm_data(text, dev_fraction=0.25, max_lines=4)
    assert train.lines == ["ab", "cd", "ef"] and dev.lines == ["gh"]
    assert "z" in vocab.stoi  # vocabulary from the whole text


def test_make_char_lm_data_seeded_shuffle_is_reproducible():
    text = "\n".join(f"l{i}" for i in range(30))
    _, a, _ = make_char_lm_data(text, seed=3)
    _, b, _ = make_char_lm_data(text, seed=3)
    _, c, _ = make_char_lm_data(text)
    assert a.lines == b.lines and a.lines != c.lines


# --- loaders -----------------------------------------------------------------------------------


def test_loaders_cover_every_line_once_and_are_deterministic():
    text = "\n".join("x" * (1 + (i * 7) % 13) + str(i) for i in range(103))
    vocab, train, dev = make_char_lm_data(text, dev_fraction=0.2)
    tl1, dl1 = make_loaders(train, dev, 8, pad_id=vocab.pad_id, shuffle_seed=5, bucket_batches=3)
    tl2, _ = make_loaders(train, dev, 8, pad_id=vocab.pad_id, shuffle_seed=5, bucket_batches=3)
    epoch1 = [b["inputs"].tolist() for b in tl1]
    epoch1_again = [b["inputs"].tolist() for b in tl2]
    assert epoch1 == epoch1_again  # same seed, same batches
    epoch2 = [b["inputs"].tolist() for b in tl1]
    assert epoch2 != epoch1  # a new order each epoch
    seen = sorted(vocab.decode(row) for batch in tl1 for row in batch["inputs"])
    assert seen == sorted(train.lines)
    assert len(tl1) == -(-len(train) // 8)
    dev_seen = [vocab.decode(row) for batch in dl1 for row in batch["inputs"]]
    assert sorted(dev_seen) == sorted(dev.lines)
    assert dev_seen == [vocab.decode(row) for batch in dl1 for row in batch["inputs"]]  # fixed order


def test_bucket_sampler_groups_similar_lengths():
    lengths = [(i * 37) % 50 + 1 for i in range(400)]
    sampler = BucketBatchSampler(lengths, 10, shuffle=True, seed=0, bucket_batches=40)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(400))
    # one bucket = the whole data here, so every batch is a run of the sorted lengths
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread <= 2
    sorted_batches = list(BucketBatchSampler(lengths, 10, shuffle=False))
    flat = [lengths[i] for b in sorted_batches for i in b]
    assert flat == sorted(lengths)
