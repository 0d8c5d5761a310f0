"""Value tests for the sentiment_and_gpt2 part 2 reference solutions (course_solutions.layers:
build_review_vocab, tokenize_review, ReviewDataset, collate_reviews, init_sentiment_weights, SentimentLSTM).

Every reference comparison is a ``check_*`` function (an adapter: it takes the implementation to
test) that raises AssertionError. The tests run each check on the reference and on known-wrong
variants defined below, which each check must reject: the vocabulary's PAD and UNK swapped, stop
words kept, punctuation kept, no lower-casing, ``>`` for ``>=``, document instead of corpus
frequency; unknown words dropped or mapped to PAD; no or tail truncation, a length before
truncation, labels inverted; padding with a fixed value or in front, lengths of the padded batch,
float labels; and for the classifier the bidirectional states of the first layer or in the wrong
order, the padded output's last step, packing with ``enforce_sorted=True`` (it raises on unsorted
lengths), no packing at all, a sorted batch never put back in order.

The independent computations: a regular-expression word splitter and ``collections.Counter`` for
the vocabulary; explicit loops for tokens, items and padding; for the classifier a per-review loop
over ``nn.LSTMCell`` modules (one per layer and direction, weights copied from the ``nn.LSTM``) on
each review's real tokens only, in float64.

Shapes: B batch, T time, E embedding, H hidden, V vocabulary, C classes.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib.imdb import PAD_INDEX, PAD_TOKEN, UNK_INDEX, UNK_TOKEN
from course_lib.stopwords import ENGLISH_STOP_WORDS
from course_solutions.layers import (
    ReviewDataset,
    SentimentLSTM,
    build_review_vocab,
    collate_reviews,
    init_sentiment_weights,
    tokenize_review,
)

TOL = dict(atol=1e-10, rtol=1e-10)  # float64

CORPUS = [
    "A GREAT movie!!! Great acting, great story.<br /><br />I loved it.",
    "The movie was bad... Really bad; the plot? Boring, boring, boring.",
    "Not great, not bad: an average movie. Acting was fine, the story (mostly) fine.",
    "I didn't like it. The story isn't new -- boring & slow. Bad, bad acting!",
    "great Great GREAT. wow-wow, wow. It's a must-see; loved every minute.",
]


def rejected(check, *args, **kwargs) -> bool:
    """True when ``check(*args)`` raises AssertionError (what a known-wrong variant must do)."""
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


def independent_words(text: str) -> list[str]:
    """Lower case, every ASCII punctuation character deleted (a character class, not str.translate)."""
    return re.sub(r"[!-/:-@\[-`{-~]", "", text.lower()).split()


# =================================================================================================
# build_vocab


def check_build_vocab(build_vocab) -> None:
    for min_freq in (1, 2, 3, 4):
        counts = Counter(w for text in CORPUS for w in independent_words(text))
        expected = {w for w, c in counts.items() if c >= min_freq and w not in ENGLISH_STOP_WORDS}
        vocab = build_vocab(CORPUS, min_freq)
        assert isinstance(vocab, dict), f"build_vocab must return a dict, got {type(vocab).__name__}"
        assert vocab.get(PAD_TOKEN) == PAD_INDEX, f"{PAD_TOKEN!r} must be index {PAD_INDEX}, got {vocab.get(PAD_TOKEN)}"
        assert vocab.get(UNK_TOKEN) == UNK_INDEX, f"{UNK_TOKEN!r} must be index {UNK_INDEX}, got {vocab.get(UNK_TOKEN)}"
        words = set(vocab) - {PAD_TOKEN, UNK_TOKEN}
        assert words == expected, (f"min_freq={min_freq}: missing {sorted(expected - words)[:8]}, "
                                   f"unexpected {sorted(words - expected)[:8]}")
        assert sorted(vocab.values()) == list(range(len(vocab))), "indices must be 0 .. len(vocab) - 1"


def vocab_pad_unk_swapped(texts, min_freq=5):
    vocab = build_review_vocab(texts, min_freq)
    vocab[PAD_TOKEN], vocab[UNK_TOKEN] = UNK_INDEX, PAD_INDEX
    return vocab


def vocab_keeps_stop_words(texts, min_freq=5):
    counts = Counter(w for t in texts for w in independent_words(t))
    vocab = {PAD_TOKEN: PAD_INDEX, UNK_TOKEN: UNK_INDEX}
    for w, c in counts.items():
        if c >= min_freq:
            vocab[w] = len(vocab)
    return vocab


def _vocab_from(words_of, texts, min_freq, keep=lambda count, min_freq: count >= min_freq):
    counts = Counter(w for t in texts for w in words_of(t))
    vocab = {PAD_TOKEN: PAD_INDEX, UNK_TOKEN: UNK_INDEX}
    for w, c in counts.items():
        if keep(c, min_freq) and w not in ENGLISH_STOP_WORDS:
            vocab[w] = len(vocab)
    return vocab


def vocab_keeps_punctuation(texts, min_freq=5):
    return _vocab_from(lambda t: t.lower().split(), texts, min_freq)


def vocab_no_lower_case(texts, min_freq=5):
    return _vocab_from(lambda t: re.sub(r"[!-/:-@\[-`{-~]", "", t).split(), texts, min_freq)


def vocab_strictly_more(texts, min_freq=5):
    return _vocab_from(independent_words, texts, min_freq, keep=lambda c, m: c > m)


def vocab_document_frequency(texts, min_freq=5):
    """Wrong: counts the reviews a word occurs in, not its occurrences."""
    return _vocab_from(lambda t: set(independent_words(t)), texts, min_freq)


def test_build_vocab_matches_an_independent_count():
    check_build_vocab(build_review_vocab)


def test_build_vocab_numbers_words_by_first_occurrence():
    vocab = build_review_vocab(CORPUS, 2)
    order = list(dict.fromkeys(w for t in CORPUS for w in independent_words(t) if w in vocab))
    assert list(vocab) == [PAD_TOKEN, UNK_TOKEN, *order]
    assert [vocab[w] for w in order] == list(range(2, len(vocab)))
    assert {"great", "bad", "boring", "movie"} <= set(vocab) and "the" not in vocab and "not" not in vocab
    # the handout's splitting deletes punctuation without a space: "story.<br /><br />I" -> "storybr br i"
    assert build_review_vocab(CORPUS, 1)["storybr"] > 1 and "wowwow" in build_review_vocab(CORPUS, 1)


@pytest.mark.parametrize("wrong", [vocab_pad_unk_swapped, vocab_keeps_stop_words, vocab_keeps_punctuation,
                                   vocab_no_lower_case, vocab_strictly_more, vocab_document_frequency])
def test_build_vocab_check_rejects_wrong_vocabularies(wrong):
    assert rejected(check_build_vocab, wrong)


# =================================================================================================
# tokenize


def check_tokenize(tokenize) -> None:
    vocab = build_review_vocab(CORPUS, 2)
    texts = [*CORPUS, "Great, GREAT story... but the ZOMBIES? unseen-word!", "", "!!! ..."]
    for text in texts:
        expected = [vocab[w] if w in vocab else UNK_INDEX for w in independent_words(text)]
        got = list(tokenize(vocab, text))
        assert got == expected, f"tokenize(vocab, {text!r}) = {got[:12]}, expected {expected[:12]}"


def tokenize_drops_unknown(vocab, text):
    return [i for i in tokenize_review(vocab, text) if i != UNK_INDEX]


def tokenize_unknown_as_pad(vocab, text):
    return [PAD_INDEX if i == UNK_INDEX else i for i in tokenize_review(vocab, text)]


def tokenize_no_lower_case(vocab, text):
    return [vocab.get(w, UNK_INDEX) for w in re.sub(r"[!-/:-@\[-`{-~]", "", text).split()]


def tokenize_keeps_punctuation(vocab, text):
    return [vocab.get(w, UNK_INDEX) for w in text.lower().split()]


def test_tokenize_matches_an_independent_loop():
    check_tokenize(tokenize_review)
    vocab = build_review_vocab(CORPUS, 2)
    assert tokenize_review(vocab, "the GREAT movie") == [UNK_INDEX, vocab["great"], vocab["movie"]]  # stop word: UNK


@pytest.mark.parametrize("wrong", [tokenize_drops_unknown, tokenize_unknown_as_pad, tokenize_no_lower_case,
                                   tokenize_keeps_punctuation])
def test_tokenize_check_rejects_wrong_tokenizers(wrong):
    assert rejected(check_tokenize, wrong)


# =================================================================================================
# the dataset


def check_dataset(dataset_class) -> None:
    vocab = build_review_vocab(CORPUS, 2)
    labels = ["positive", "negative", "negative", "negative", "positive"]
    for max_length in (3, 8, 1000):
        ds = dataset_class(CORPUS, labels, vocab, max_length)
        assert len(ds) == len(CORPUS)
        for i, (text, label) in enumerate(zip(CORPUS, labels, strict=True)):
            ids = [vocab.get(w, UNK_INDEX) for w in independent_words(text)][:max_length]
            item = ds[i]
            assert list(item["ids"]) == ids, f"item {i} (max_length {max_length}): ids {list(item['ids'])[:10]}"
            assert int(item["length"]) == len(ids), f"item {i}: length {item['length']}, expected {len(ids)}"
            assert int(item["label"]) == (1 if label == "positive" else 0), f"item {i}: label {item['label']}"


class DatasetNoTruncation(ReviewDataset):
    def __getitem__(self, idx):
        ids = tokenize_review(self.vocab, self.x[idx])
        return {"ids": ids, "length": len(ids), "label": 1 if self.y[idx] == "positive" else 0}


class DatasetKeepsTheEnd(ReviewDataset):
    def __getitem__(self, idx):
        ids = tokenize_review(self.vocab, self.x[idx])[-self.max_length:]
        return {"ids": ids, "length": len(ids), "label": 1 if self.y[idx] == "positive" else 0}


class DatasetLengthBeforeTruncation(ReviewDataset):
    def __getitem__(self, idx):
        ids = tokenize_review(self.vocab, self.x[idx])
        return {"ids": ids[: self.max_length], "length": len(ids), "label": 1 if self.y[idx] == "positive" else 0}


class DatasetInvertedLabels(ReviewDataset):
    def __getitem__(self, idx):
        item = super().__getitem__(idx)
        return {**item, "label": 1 - item["label"]}


def test_dataset_items():
    check_dataset(ReviewDataset)


@pytest.mark.parametrize("wrong", [DatasetNoTruncation, DatasetKeepsTheEnd, DatasetLengthBeforeTruncation,
                                   DatasetInvertedLabels])
def test_dataset_check_rejects_wrong_datasets(wrong):
    assert rejected(check_dataset, wrong)


# =================================================================================================
# collate


BATCH = [{"ids": [5, 6, 7], "length": 3, "label": 1}, {"ids": [8], "length": 1, "label": 0},
         {"ids": [9, 10, 11, 12, 13], "length": 5, "label": 0}, {"ids": [14, 15], "length": 2, "label": 1}]


def check_collate(collate) -> None:
    for pad_index in (PAD_INDEX, 3):
        out = collate(BATCH, pad_index=pad_index)
        T = max(len(item["ids"]) for item in BATCH)
        expected = torch.full((len(BATCH), T), pad_index, dtype=torch.long)
        for b, item in enumerate(BATCH):
            expected[b, : len(item["ids"])] = torch.tensor(item["ids"])
        assert set(out) >= {"ids", "length", "label"}, f"collate returned the keys {sorted(out)}"
        assert out["ids"].dtype == torch.long and out["ids"].shape == (len(BATCH), T), \
            f"ids: {out['ids'].dtype} {tuple(out['ids'].shape)}, expected long (B, T) = {(len(BATCH), T)}"
        assert torch.equal(out["ids"], expected), f"pad_index {pad_index}: ids\n{out['ids']}\nexpected\n{expected}"
        assert out["length"].tolist() == [3, 1, 5, 2], f"length {out['length'].tolist()}"
        assert not out["length"].is_floating_point()
        assert out["label"].dtype == torch.long and out["label"].tolist() == [1, 0, 0, 1], \
            f"label {out['label']}: cross-entropy needs long class indices"


def collate_fixed_zero(batch, pad_index=PAD_INDEX):
    return collate_reviews(batch, 0)


def collate_pads_in_front(batch, pad_index=PAD_INDEX):
    out = collate_reviews(batch, pad_index)
    T = out["ids"].size(1)
    out["ids"] = torch.stack([torch.cat([torch.full((T - len(i["ids"]),), pad_index), torch.tensor(i["ids"])])
                              for i in batch])
    return out


def collate_padded_lengths(batch, pad_index=PAD_INDEX):
    out = collate_reviews(batch, pad_index)
    out["length"] = torch.full_like(out["length"], out["ids"].size(1))
    return out


def collate_float_labels(batch, pad_index=PAD_INDEX):
    out = collate_reviews(batch, pad_index)
    out["label"] = out["label"].float()
    return out


def test_collate_pads_and_returns_lengths():
    check_collate(collate_reviews)


@pytest.mark.parametrize("wrong", [collate_fixed_zero, collate_pads_in_front, collate_padded_lengths,
                                   collate_float_labels])
def test_collate_check_rejects_wrong_collates(wrong):
    assert rejected(check_collate, wrong)


# =================================================================================================
# the classifier


def loop_logits(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each review alone, its real tokens only: the embedding, then one ``nn.LSTMCell`` per layer and
    direction (weights copied from ``model.lstm``), the reverse direction from the last real token
    back; the last layer's final states (forward, then backward) through ``model.fc``. (B, C)"""
    lstm = model.lstm
    H, dirs = lstm.hidden_size, 2 if lstm.bidirectional else 1
    out = []
    for b in range(ids.size(0)):
        T = int(lengths[b])
        x = model.embedding(ids[b, :T])  # (T, E)
        for layer in range(lstm.num_layers):
            outputs, finals = [], []
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                cell = nn.LSTMCell(x.size(1), H).to(x.dtype)
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, name).copy_(getattr(lstm, name + suffix))
                h = c = x.new_zeros(1, H)
                hs = [None] * T
                for t in (reversed(range(T)) if d else range(T)):
                    h, c = cell(x[t : t + 1], (h, c))
                    hs[t] = h[0]
                outputs.append(torch.stack(hs))  # (T, H)
                finals.append(h[0])
            x = torch.cat(outputs, dim=1)  # (T, dirs * H): the next layer's input
        out.append(model.fc(torch.cat(finals)))
    return torch.stack(out)


def batch_of(lengths, V=30, seed=0):
    """Token ids (B, T) with ``PAD_INDEX`` after each review's ``lengths[b]`` real tokens (ids 1..V-1)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(1, V, (len(lengths), T), generator=g)
    for b, n in enumerate(lengths):
        ids[b, n:] = PAD_INDEX
    return ids, torch.tensor(lengths)


SETTINGS = [  # (embedding_dim, hidden_dim, n_layers, bidirectional)
    (5, 4, 1, False), (5, 4, 2, False), (5, 4, 1, True), (6, 3, 2, True), (4, 3, 3, True),
]
UNSORTED = [3, 7, 5, 1, 7, 2]


def make(model_class, E, H, n_layers, bidirectional, V=30, C=2, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return model_class(V, E, H, C, n_layers, dropout, PAD_INDEX, bidirectional).double().eval()


def _forward(model, ids, lengths):
    try:
        return model(ids, lengths)
    except RuntimeError as err:  # e.g. pack_padded_sequence(enforce_sorted=True) on unsorted lengths
        raise AssertionError(f"the model failed on a batch with lengths {lengths.tolist()}: {err}") from None


def check_model_matches_loop(model_class) -> None:
    for E, H, n_layers, bidirectional in SETTINGS:
        model = make(model_class, E, H, n_layers, bidirectional)
        ids, lengths = batch_of(UNSORTED)
        with torch.no_grad():
            got = _forward(model, ids, lengths)
            expected = loop_logits(model, ids, lengths)
        assert got.shape == expected.shape == (len(UNSORTED), 2), f"logits {tuple(got.shape)}"
        assert torch.allclose(got, expected, **TOL), (
            f"E={E} H={H} layers={n_layers} bidirectional={bidirectional}: max difference "
            f"{(got - expected).abs().max():.3g} from the per-review LSTMCell loop")


def check_padding_invariance(model_class) -> None:
    """A review's logits do not depend on how much padding follows it, or on its neighbours."""
    for E, H, n_layers, bidirectional in SETTINGS:
        model = make(model_class, E, H, n_layers, bidirectional)
        ids, lengths = batch_of(UNSORTED)
        with torch.no_grad():
            batched = _forward(model, ids, lengths)
            wide_ids = torch.cat([ids, torch.full((len(UNSORTED), 6), PAD_INDEX)], dim=1)
            wider = _forward(model, wide_ids, lengths)
            alone = torch.cat([_forward(model, ids[b : b + 1, : UNSORTED[b]], lengths[b : b + 1])
                               for b in range(len(UNSORTED))])
        assert torch.allclose(batched, wider, **TOL), "more padding changed the logits"
        assert torch.allclose(batched, alone, **TOL), "a review's logits in a padded batch differ from it alone"


def check_model_structure(model_class) -> None:
    for E, H, n_layers, bidirectional in SETTINGS:
        model = make(model_class, E, H, n_layers, bidirectional, V=17, C=3)
        assert isinstance(model.embedding, nn.Embedding) and model.embedding.padding_idx == PAD_INDEX
        assert tuple(model.embedding.weight.shape) == (17, E)
        assert isinstance(model.lstm, nn.LSTM) and model.lstm.batch_first
        assert (model.lstm.num_layers, model.lstm.bidirectional, model.lstm.hidden_size) == (n_layers, bidirectional, H)
        assert model.fc.in_features == H * (2 if bidirectional else 1) and model.fc.out_features == 3


# ----- known-wrong classifiers


class FirstLayerStates(SentimentLSTM):
    """Wrong: the first layer's final states (hidden[0], hidden[1]): right only with one layer."""

    def forward(self, ids, length):
        packed = pack_padded_sequence(self.embedding(ids), length.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        hidden = torch.cat((hidden[0], hidden[1]), dim=1) if self.lstm.bidirectional else hidden[0]
        return self.fc(self.dropout(hidden))


class SwappedDirections(SentimentLSTM):
    """Wrong: the backward state first (hidden[-1], hidden[-2])."""

    def forward(self, ids, length):
        packed = pack_padded_sequence(self.embedding(ids), length.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        hidden = torch.cat((hidden[-1], hidden[-2]), dim=1) if self.lstm.bidirectional else hidden[-1]
        return self.fc(self.dropout(hidden))


class LastPaddedOutput(SentimentLSTM):
    """Wrong: the padded output at the last time step (zeros after a short review's end; the backward
    direction there has seen one token)."""

    def forward(self, ids, length):
        packed = pack_padded_sequence(self.embedding(ids), length.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.fc(self.dropout(out[:, -1]))


class EnforceSorted(SentimentLSTM):
    """Wrong: packs with the default enforce_sorted=True (raises on unsorted lengths)."""

    def forward(self, ids, length):
        packed = pack_padded_sequence(self.embedding(ids), length.cpu(), batch_first=True)
        _, (hidden, _) = self.lstm(packed)
        hidden = torch.cat((hidden[-2], hidden[-1]), dim=1) if self.lstm.bidirectional else hidden[-1]
        return self.fc(self.dropout(hidden))


class NoPacking(SentimentLSTM):
    """Wrong: the LSTM runs over the padding too."""

    def forward(self, ids, length):
        _, (hidden, _) = self.lstm(self.embedding(ids))
        hidden = torch.cat((hidden[-2], hidden[-1]), dim=1) if self.lstm.bidirectional else hidden[-1]
        return self.fc(self.dropout(hidden))


class SortedNotRestored(SentimentLSTM):
    """Wrong: sorts the batch by length to pack it, and returns the logits in the sorted order."""

    def forward(self, ids, length):
        order = torch.argsort(length, descending=True)
        packed = pack_padded_sequence(self.embedding(ids[order]), length[order].cpu(), batch_first=True)
        _, (hidden, _) = self.lstm(packed)
        hidden = torch.cat((hidden[-2], hidden[-1]), dim=1) if self.lstm.bidirectional else hidden[-1]
        return self.fc(self.dropout(hidden))


WRONG_MODELS = [FirstLayerStates, SwappedDirections, LastPaddedOutput, EnforceSorted, NoPacking, SortedNotRestored]


def test_model_matches_the_per_review_lstmcell_loop():
    check_model_matches_loop(SentimentLSTM)


def test_model_is_padding_invariant():
    check_padding_invariance(SentimentLSTM)


def test_model_structure():
    check_model_structure(SentimentLSTM)


def test_loop_agrees_with_nn_lstm_on_each_review_alone():
    """The independent loop itself, against nn.LSTM run on one unpadded review at a time."""
    model = make(SentimentLSTM, 5, 4, 2, True)
    ids, lengths = batch_of(UNSORTED)
    with torch.no_grad():
        for b, n in enumerate(UNSORTED):
            _, (h, _) = model.lstm(model.embedding(ids[b : b + 1, :n]))
            expected = model.fc(torch.cat((h[-2, 0], h[-1, 0])))
            assert torch.allclose(loop_logits(model, ids[b : b + 1], lengths[b : b + 1])[0], expected, **TOL)


@pytest.mark.parametrize("wrong", WRONG_MODELS, ids=lambda c: c.__name__)
def test_model_checks_reject_wrong_classifiers(wrong):
    assert rejected(check_model_matches_loop, wrong)


@pytest.mark.parametrize("wrong", [LastPaddedOutput, EnforceSorted, NoPacking, SortedNotRestored],
                         ids=lambda c: c.__name__)
def test_padding_invariance_rejects_wrong_classifiers(wrong):
    assert rejected(check_padding_invariance, wrong)


def test_enforce_sorted_raises_on_unsorted_lengths_and_not_on_sorted_ones():
    model = make(EnforceSorted, 5, 4, 1, True)
    ids, lengths = batch_of(UNSORTED)
    with pytest.raises(RuntimeError, match="sorted"):
        model(ids, lengths)
    ids, lengths = batch_of(sorted(UNSORTED, reverse=True))
    with torch.no_grad():
        assert torch.allclose(model(ids, lengths), loop_logits(model, ids, lengths), **TOL)


def test_wrong_layer_and_direction_agree_with_the_reference_where_they_should():
    """The variants differ from the reference exactly where the brief says: the first layer's
    states only with several layers, the swapped order only when bidirectional."""
    ids, lengths = batch_of(UNSORTED)
    with torch.no_grad():
        for wrong, same in ((FirstLayerStates, [(5, 4, 1, False), (5, 4, 1, True)]),
                            (SwappedDirections, [(5, 4, 1, False), (5, 4, 2, False)])):
            for E, H, n_layers, bidirectional in SETTINGS:
                ref = make(SentimentLSTM, E, H, n_layers, bidirectional)
                bad = make(wrong, E, H, n_layers, bidirectional)
                equal = torch.allclose(ref(ids, lengths), bad(ids, lengths), **TOL)
                assert equal == ((E, H, n_layers, bidirectional) in same), (wrong.__name__, E, H, n_layers)


def test_init_weights_and_padding_row():
    model = SentimentLSTM(50, 8, 6, 2, 2, 0.0, PAD_INDEX, True)
    assert torch.count_nonzero(model.embedding.weight[PAD_INDEX]) == 0
    for name, p in model.lstm.named_parameters():
        if "bias" in name:
            assert torch.count_nonzero(p) == 0, name
        else:  # orthogonal: the columns (4H x in, 4H > in) are orthonormal
            assert torch.allclose(p.T @ p, torch.eye(p.size(1)), atol=1e-5), name
    assert torch.count_nonzero(model.fc.bias) == 0
    calls = []
    custom = SentimentLSTM(50, 8, 6, 2, 1, 0.0, PAD_INDEX, weight_init_fn=lambda m: calls.append(type(m).__name__))
    assert {"Embedding", "LSTM", "Linear", "Dropout", "SentimentLSTM"} <= set(calls)
    assert torch.count_nonzero(custom.fc.bias) > 0, "weight_init_fn replaces init_sentiment_weights"
    lin = nn.Linear(3, 2)
    init_sentiment_weights(lin)
    assert torch.count_nonzero(lin.bias) == 0


def test_dropout_between_layers_and_before_the_classifier():
    model = SentimentLSTM(30, 5, 4, 2, 2, 0.5, PAD_INDEX, True)
    assert model.lstm.dropout == 0.5 and model.dropout.p == 0.5
    assert SentimentLSTM(30, 5, 4, 2, 1, 0.5, PAD_INDEX).lstm.dropout == 0.0  # one layer: no LSTM dropout
    ids, lengths = batch_of(UNSORTED)
    model.train()
    torch.manual_seed(0)
    a = model(ids, lengths)
    b = model(ids, lengths)
    assert not torch.allclose(a, b), "dropout is active in training mode"
    model.eval()
    assert torch.equal(model(ids, lengths), model(ids, lengths))


def test_model_trains_on_separable_reviews():
    """A short optimisation run on reviews whose label is which of two tokens they contain learns it."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 9, (64,), generator=g)
    ids = torch.randint(3, 20, (64, 8), generator=g)
    label = torch.randint(0, 2, (64,), generator=g)
    for b in range(64):
        ids[b, int(torch.randint(0, int(lengths[b]), (1,), generator=g))] = 20 + int(label[b])
        ids[b, int(lengths[b]):] = PAD_INDEX
    model = SentimentLSTM(22, 8, 16, 2, 1, 0.0, PAD_INDEX, True)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(ids, lengths), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model(ids, lengths).argmax(1) == label).float().mean() > 0.95
