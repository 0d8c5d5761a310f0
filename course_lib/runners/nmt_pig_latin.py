"""Train the English -> Pig Latin transformers of ``nmt_pig_latin`` (handout sections 2.2-2.3).

Three experiments, one runner for the notebook and the command line:

1. **Encoder-decoder** (2.2.2 Q4): hidden size 16 and 32, on the small and the large data set (4 runs);
2. **Decoder-only** (2.3 Q3): one decoder-only model, compared with the encoder-decoder on the same
   validation split and the same held-out words;
3. **Parameter efficiency** (2.3 Q5): five decoder-only models, more heads against a larger hidden size.

Public API (``from course_lib.runners import nmt_pig_latin as nmt``)::

    result = nmt.run("enc-dec H32 large", encoder_class=TransformerEncoder, decoder_class=TransformerDecoder)
    result = nmt.run("decoder H32 1 head", decoder_only_class=DecoderOnlyTransformer,
                     decoder_only_example=decoder_only_example, decoder_only_loss=decoder_only_loss)
    result.history                 # one row per epoch: lr, steps, train_loss, val_loss, tokens, seconds, ...
    result.best_val_loss, result.best_epoch, result.held_out_loss, result.exact_match, result.num_parameters
    result.translate("the air conditioning is working")   # word by word, greedy, the best epoch's weights
    results = nmt.run_all(nmt.ENCODER_DECODER_RUNS, encoder_class=..., decoder_class=...)
    nmt.save_loss_comparison_by_hidden(results)    # figure, also written to loss_comparison_by_hidden.png
    nmt.save_loss_comparison_by_dataset(results)   # figure, also written to loss_comparison_by_dataset.png
    nmt.results_table(results)                     # lowest validation loss, held-out exact match, parameters
    nmt.translations_table(results)                # the sample sentence, translated by every run
    nmt.plot_parameter_efficiency(results)         # the five decoder-only models: curves, loss vs parameters
    nmt.conclusions(results)                       # what the runs show, each checked

    # for scaling_laws (issue 17): import these, never copy them
    model = nmt.build_decoder_only(hidden_size=32, num_layers=3, num_heads=1)   # vocab of 30 (with EOP)
    history = nmt.train_decoder_only(model, train_pairs, val_pairs, vocab, max_tokens=2_000_000)  # or epochs=
    #   on_batch=lambda model, tokens_seen: ...   after every step (evaluate at token counts inside one run)
    history["tokens_seen"].iloc[-1], history["val_loss"].iloc[-1]
    nmt.decoder_only_val_loss(model, val_pairs, vocab)
    nmt.exact_match(nmt.decoder_only_translator(model, vocab), pairs)   # or any word -> str function

    python -m course_lib.runners.nmt_pig_latin --list                 # the runs and their settings
    python -m course_lib.runners.nmt_pig_latin --run "enc-dec H32 small"   # one (reference models)
    python -m course_lib.runners.nmt_pig_latin --all --scale laptop   # the nine, on a 2-core CPU

``run(name, *, encoder_class, decoder_class, decoder_only_class, decoder_only_example,
decoder_only_loss, scale, progress, log_dir, resume, log)``: the classes and functions not passed are
the references of ``course_solutions.nmt`` (instructor material; a student passes their own). A run
uses only the pieces of its kind. ``encoder_class(vocab_size, hidden_size, num_layers)`` with
``forward(src) -> (annotations, _)``, ``decoder_class(vocab_size, hidden_size, num_layers)`` with
``forward(inputs, annotations) -> (logits, _)``, ``decoder_only_class(vocab_size, hidden_size,
num_layers, num_heads)`` with ``forward(inputs) -> logits``; ``decoder_only_example(src, tgt, vocab) ->
(inputs, targets, loss_mask)`` and ``decoder_only_loss(logits, targets, loss_mask) -> loss``.

**The runs** (``RUNS``; ``ENCODER_DECODER_RUNS``, ``DECODER_ONLY_RUN``, ``PARAMETER_RUNS`` group them).
Every model has 3 layers (the original's ``num_transformer_layers``); the handout's optimisation at
full scale: Adam, learning rate 5e-4 multiplied by 0.99 before each epoch (the original's
``lr_decay``: epoch ``e`` trains at ``5e-4 * 0.99 ** e``), batches of 64 pairs of one (source length,
target length) group, 100 epochs, the 80/20 split of :func:`course_lib.pig_latin.split_pairs`:

=======================  ============  =======  =====  =====
name                     kind          data     H      heads
=======================  ============  =======  =====  =====
enc-dec H16 small        encoder-dec.  small    16     1
enc-dec H32 small        encoder-dec.  small    32     1
enc-dec H16 large        encoder-dec.  large    16     1
enc-dec H32 large        encoder-dec.  large    32     1
decoder H32 1 head       decoder-only  large    32     1   (also the 2.3 Q3 model)
decoder H32 2 heads      decoder-only  large    32     2
decoder H32 4 heads      decoder-only  large    32     4
decoder H64 1 head       decoder-only  large    64     1
decoder H128 1 head      decoder-only  large    128    1
=======================  ============  =======  =====  =====

**Losses.** The training and validation losses are the mean cross-entropy per target token (the
target characters and the final EOS, for both kinds, so the encoder-decoder's and the decoder-only
model's losses on the same split compare), token-weighted over the epoch (the original averaged the
batch means; with one length per batch the two differ a little). ``held_out_loss`` is the same loss
on :func:`course_lib.pig_latin.held_out_pairs`, English words in neither data file: unlike the two
validation splits, one set for every run. ``exact_match``: the fraction of held-out words whose greedy
translation (up to ``len(word) + 10`` characters, stopped at EOS) is exactly right. Both use the
weights of the epoch with the lowest validation loss.

**Scales** (:func:`course_lib.device.scale`, ``--scale``; one code path for all three):

- ``full`` (the default with CUDA): the table above, 100 epochs each. Targets: the hidden-32
  encoder-decoders near the published validation losses (about 0.95 small, 0.73 large), the best
  model at or above 95 % exact match on the held-out words. Not run here (no GPU): the command is
  ``python -m course_lib.runners.nmt_pig_latin --all --scale full --record
  course_solutions/recorded/nmt_pig_latin.json``.
- ``laptop`` (the default without CUDA): every run of the table, the same models, data, splits and
  batches, 25 epochs at learning rate 1e-3 decayed by 0.95 per epoch (``LAPTOP``; why, in the
  comments there), about ``LAPTOP_MINUTES`` minutes of one CPU thread for all nine. The recorded run is
  ``course_solutions/recorded/nmt_pig_latin-laptop.json``; :func:`conclusions` checks what it shows.
  Lowest validation loss (held-out exact match): encoder-decoder H16 / H32 on the small data 1.407
  (0.8 %) / 0.915 (3.4 %), on the large data 0.457 (32.0 %) / 0.058 (87.9 %); decoder-only H32 with
  1, 2, 4 heads 0.150 (63.3 %), 0.052 (84.3 %), 0.048 (86.8 %); H64 0.043 (87.4 %), H128 0.026
  (93.8 %). The small-data models are far from converged after 25 epochs (the large data set gives
  seven times the updates per epoch).
- ``fast`` (``COURSE_FAST=1``): a few hundred training pairs, 2 epochs: seconds, to check that
  everything runs (not results).

Each run logs through :class:`course_lib.runlog.RunLog` (``<log_dir>/<scale>/<name>/``): a run
stopped midway resumes at its last finished epoch, and a finished run is read back, not trained
again, unless its settings or the code of the model or of the passed functions changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import pig_latin
from .. import train as train_lib
from ..device import SCALES, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..files import atomic_torch_save
from ..runlog import RunLog, code_fingerprint, epoch_memory, model_fingerprint, now, sync
from . import EpochHistory, json_safe, run_folder, runs_dir, with_references

__all__ = [
    "Config", "RunResult", "RUNS", "ENCODER_DECODER_RUNS", "DECODER_ONLY_RUN", "PARAMETER_RUNS", "LAPTOP", "FAST",
    "SAMPLE_SENTENCE", "config_for", "run", "run_all", "EncoderDecoder", "build_decoder_only", "train_decoder_only",
    "decoder_only_val_loss", "exact_match", "encoder_decoder_translator", "decoder_only_translator",
    "translate_sentence", "save_loss_comparison_by_hidden", "save_loss_comparison_by_dataset",
    "plot_parameter_efficiency", "results_table", "translations_table", "conclusions", "record",
    "default_log_dir", "main",
]

ASSIGNMENT = "nmt_pig_latin"
LOG_FORMAT = 1
REFERENCES = "course_solutions.nmt"
_ADVICE = ("Pass your own classes and functions (encoder_class=, decoder_class=, decoder_only_class=, "
           "decoder_only_example=, decoder_only_loss=), as the notebook does.")
#: The sentence the handout's notebook translates word by word.
SAMPLE_SENTENCE = "the air conditioning is working"
#: Greedy decoding stops at EOS or after ``len(word) + MAX_EXTRA`` characters.
MAX_EXTRA = 10

#: What the ``laptop`` scale changes: 25 epochs instead of 100, at twice the learning rate, decayed
#: faster (x0.95 per epoch: 1e-3 to 2.8e-4), for all nine runs alike (the comparisons stay like for
#: like). Measured on a shared 2-core CPU, one thread: an epoch of the large data costs 3.4 s of CPU
#: for the H32 encoder-decoder, 2.1 s for the H32 decoder-only model, 8.5 s for H128 (0.6 s on the
#: small data). The handout's 5e-4 learns too slowly for so few epochs; 2e-3 made the H128 decoder's
#: validation loss jump from epoch to epoch (0.45, 0.55, 0.31, 0.59 over epochs 2-5), 1e-3 did not
#: (0.50, 0.31, 0.19, 0.21), and took the H32 decoder to 0.31 in 10 epochs.
LAPTOP = {"epochs": 25, "lr": 1e-3, "lr_decay": 0.95}
#: The recorded laptop run: 13.8 minutes of CPU (one thread) for the nine runs, evaluations included
#: (33 s per epoch of the nine); 36.6 minutes of wall clock on a 2-core CPU shared with other work.
LAPTOP_MINUTES = 14
#: What the ``fast`` scale changes: slices of the splits and of the held-out words, 2 epochs.
FAST = {"train_pairs": 256, "val_pairs": 64, "held_out": 40, "epochs": 2}


@dataclass(frozen=True)
class Config:
    """One run: the model, the data set, the optimisation and the data slices (``None``: all)."""

    name: str = "enc-dec H32 large"
    kind: str = "encoder-decoder"  # encoder-decoder | decoder-only
    dataset: str = "large"  # small | large
    hidden_size: int = 32
    num_layers: int = 3
    num_heads: int = 1
    lr: float = 5e-4
    lr_decay: float = 0.99  # the learning rate is multiplied by this before each epoch
    batch_size: int = 64
    epochs: int = 100
    seed: int = 0
    train_pairs: int | None = None  # the first n pairs of the (shuffled) training split
    val_pairs: int | None = None
    held_out: int = pig_latin.HELD_OUT_SIZE
    scale: str = "full"
    device: str = "auto"

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (1-based) ``epoch``: ``lr * lr_decay ** epoch`` (the original decays
        the rate at the start of every epoch, the first included)."""
        return self.lr * self.lr_decay ** epoch

    def fingerprint(self) -> dict:
        """The settings that decide what the run computes (not where it runs)."""
        fields = dataclasses.asdict(self)
        fields.pop("device")
        return fields

    @property
    def label(self) -> str:
        return self.name if self.scale == "full" else f"{self.name} [{self.scale}]"


def _encdec(dataset: str, hidden: int) -> Config:
    return Config(f"enc-dec H{hidden} {dataset}", "encoder-decoder", dataset, hidden)


def _decoder(hidden: int, heads: int) -> Config:
    return Config(f"decoder H{hidden} {heads} head{'s' if heads > 1 else ''}", "decoder-only", "large", hidden,
                  num_heads=heads)


#: The runs of the handout, at full scale.
RUNS: dict[str, Config] = {c.name: c for c in (
    _encdec("small", 16), _encdec("small", 32), _encdec("large", 16), _encdec("large", 32),
    _decoder(32, 1), _decoder(32, 2), _decoder(32, 4), _decoder(64, 1), _decoder(128, 1))}
ENCODER_DECODER_RUNS = ("enc-dec H16 small", "enc-dec H32 small", "enc-dec H16 large", "enc-dec H32 large")
#: The decoder-only model of 2.3 Q3 (compared with ``enc-dec H32 large``: same data, split, hidden size).
DECODER_ONLY_RUN = "decoder H32 1 head"
PARAMETER_RUNS = ("decoder H32 1 head", "decoder H32 2 heads", "decoder H32 4 heads", "decoder H64 1 head",
                  "decoder H128 1 head")


def config_for(name: str | Config, scale: str | None = None) -> Config:
    """The :class:`Config` of run ``name`` (or ``name`` itself) resolved at ``scale`` (default: the
    current :func:`course_lib.device.scale`)."""
    if isinstance(name, Config):
        config = name
    else:
        if name not in RUNS:
            raise ValueError(f"Unknown run {name!r}: choose one of {', '.join(map(repr, RUNS))}.")
        config = RUNS[name]
    scale = scale or current_scale()
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}: use one of {', '.join(SCALES)}.")
    changes: dict = {"scale": scale}
    if scale == "laptop":
        changes.update(LAPTOP)
    elif scale == "fast":
        changes.update(FAST)
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------------------------------------------
# data: the splits, the vocabulary and the batches, built once


@dataclass
class Data:
    """The pairs of a run and their batches, as tensors built once: dicts of ``src`` (encoder-decoder
    only), ``inputs``, ``targets``, ``mask`` (or None: every position counts) and the counts
    ``n_loss`` (target tokens the loss covers) and ``n_tokens`` (positions the model processes)."""

    vocab: pig_latin.Vocab
    train_pairs: list
    val_pairs: list
    held_out_pairs: list
    train: list[dict]
    val: list[dict]
    held_out: list[dict]


def _encdec_batch(src: torch.Tensor, tgt: torch.Tensor, vocab: pig_latin.Vocab) -> dict:
    """The encoder reads ``src``; the decoder reads ``<SOS> target`` (targets shifted right) and predicts
    ``target <EOS>``."""
    sos = torch.full((tgt.size(0), 1), vocab.sos, dtype=tgt.dtype)
    inputs = torch.cat([sos, tgt[:, :-1]], dim=1)
    return {"src": src, "inputs": inputs, "targets": tgt, "mask": None, "n_loss": tgt.numel(),
            "n_tokens": src.numel() + inputs.numel()}


def _decoder_batch(src: torch.Tensor, tgt: torch.Tensor, vocab: pig_latin.Vocab, example: Callable) -> dict:
    inputs, targets, mask = example(src, tgt, vocab)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if inputs.shape != targets.shape or mask.shape != targets.shape:
        raise ValueError(f"decoder_only_example must return inputs, targets and loss_mask of one shape, got "
                         f"{tuple(inputs.shape)}, {tuple(targets.shape)}, {tuple(mask.shape)}")
    return {"inputs": inputs, "targets": targets, "mask": mask, "n_loss": int(mask.sum()),
            "n_tokens": inputs.numel()}


def make_batches(pairs: Sequence[tuple[str, str]], vocab: pig_latin.Vocab, batch_size: int, *,
                 decoder_only_example: Callable | None = None, device: torch.device | None = None) -> list[dict]:
    """``pairs`` as the runner's batches (one length group each, in :func:`course_lib.pig_latin.batches`'
    order), on ``device``: encoder-decoder batches, or with ``decoder_only_example`` decoder-only ones."""
    out = []
    for src, tgt in pig_latin.batches(pairs, vocab, batch_size):
        if decoder_only_example is None:
            b = _encdec_batch(src, tgt, vocab)
        else:
            b = _decoder_batch(src, tgt, vocab, decoder_only_example)
        out.append({k: v.to(device) if isinstance(v, torch.Tensor) and device is not None else v
                    for k, v in b.items()})
    return out


def load_data(config: Config, decoder_only_example: Callable | None = None,
              device: torch.device | None = None) -> Data:
    """The data of ``config``: its data set split 80/20 (``train_pairs`` / ``val_pairs`` cut the
    splits), the held-out words, the vocabulary (with EOP for a decoder-only run) and the batches."""
    pairs = pig_latin.load_pairs(config.dataset)
    train, val = pig_latin.split_pairs(pairs)
    train = train[: config.train_pairs] if config.train_pairs is not None else train
    val = val[: config.val_pairs] if config.val_pairs is not None else val
    held_out = pig_latin.held_out_pairs(config.held_out)
    decoder_only = config.kind == "decoder-only"
    # the vocabulary of both files (the same 27 characters): the held-out words' letters are all in it
    vocab = pig_latin.build_vocab(pig_latin.load_pairs("large"), eop=decoder_only)
    example = decoder_only_example if decoder_only else None
    if decoder_only and example is None:
        raise ValueError("a decoder-only run needs decoder_only_example")

    def batches(ps):
        return make_batches(ps, vocab, config.batch_size, decoder_only_example=example, device=device)

    return Data(vocab, train, val, held_out, batches(train), batches(val), batches(held_out))


# ---------------------------------------------------------------------------------------------------
# models


class EncoderDecoder(nn.Module):
    """An encoder and a decoder as one module: ``forward(src, inputs) -> logits``, where the decoder
    reads ``inputs`` (``<SOS>`` then the target shifted right) and attends to the encoder's annotations."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, src: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        annotations, _ = self.encoder(src)
        logits, _ = self.decoder(inputs, annotations)
        return logits


def build_decoder_only(hidden_size: int, num_layers: int = 3, num_heads: int = 1, *,
                       decoder_only_class: type | None = None, vocab_size: int = pig_latin.VOCAB_SIZE + 1,
                       seed: int | None = 0) -> nn.Module:
    """A decoder-only model of the given size (``decoder_only_class``, default the reference
    ``course_solutions.nmt.DecoderOnlyTransformer``), initialised after ``seed_everything(seed)``
    (``seed=None``: the current RNG). The vocabulary has 30 tokens: 27 characters, SOS, EOS, EOP."""
    cls = decoder_only_class or _pieces({"decoder_only_class": None})["decoder_only_class"]
    if seed is not None:
        seed_everything(seed)
    return cls(vocab_size, hidden_size, num_layers, num_heads)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_REFERENCE_NAMES = {"encoder_class": "TransformerEncoder", "decoder_class": "TransformerDecoder",
                    "decoder_only_class": "DecoderOnlyTransformer"}


def _pieces(given: dict) -> dict:
    """``given`` with the pieces not passed replaced by the references of ``course_solutions.nmt``."""
    return with_references(given, _REFERENCE_NAMES, module=REFERENCES, advice=_ADVICE)


# ---------------------------------------------------------------------------------------------------
# losses, translation, exact match


def _forward(model: nn.Module, batch: dict) -> torch.Tensor:
    return model(batch["src"], batch["inputs"]) if "src" in batch else model(batch["inputs"])


def _batch_nll_sum(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed cross-entropy of the batch's loss positions (computed here, independently of the loss
    function a run trains with)."""
    logits = _forward(model, batch).float()
    targets, mask = batch["targets"], batch["mask"]
    if mask is not None:
        logits, targets = logits[mask], targets[mask]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")


@torch.no_grad()
def batches_loss(model: nn.Module, batches: Iterable[dict]) -> float:
    """Mean cross-entropy per loss token over ``batches`` (eval mode; the training mode is restored)."""
    was_training = model.training
    model.eval()
    total, count = None, 0
    try:
        for batch in batches:
            s = _batch_nll_sum(model, batch).double()
            total = s if total is None else total + s
            count += batch["n_loss"]
    finally:
        model.train(was_training)
    return float(total.item()) / count if count else float("nan")


def decoder_only_val_loss(model: nn.Module, pairs: Sequence[tuple[str, str]] | Sequence[dict],
                          vocab: pig_latin.Vocab | None = None, *, batch_size: int = 64,
                          decoder_only_example: Callable | None = None) -> float:
    """The decoder-only model's mean cross-entropy per target token (target characters and the final
    EOS) on ``pairs``: (english, pig latin) pairs with ``vocab`` (built with ``eop=True``), or batches
    of :func:`make_batches`. ``decoder_only_example`` defaults to the reference."""
    if pairs and isinstance(pairs[0], dict):
        return batches_loss(model, pairs)
    if vocab is None:
        raise ValueError("decoder_only_val_loss needs the vocabulary to batch word pairs")
    example = decoder_only_example or _pieces({"decoder_only_example": None})["decoder_only_example"]
    device = _model_device(model)
    return batches_loss(model, make_batches(pairs, vocab, batch_size, decoder_only_example=example, device=device))


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


class _Translator:
    """Greedy word translation with a trained model: ``translator(word) -> str`` and
    ``translator.many(words) -> list[str]`` (words of one length decode as one batch)."""

    def __init__(self, model: nn.Module, vocab: pig_latin.Vocab, max_extra: int = MAX_EXTRA):
        self.model, self.vocab, self.max_extra = model, vocab, max_extra

    def __call__(self, word: str) -> str:
        return self.many([word])[0]

    @torch.no_grad()
    def many(self, words: Sequence[str]) -> list[str]:
        model, vocab = self.model, self.vocab
        was_training = model.training
        model.eval()
        device = _model_device(model)
        out = [""] * len(words)
        groups: dict[int, list[int]] = {}
        for i, w in enumerate(words):
            groups.setdefault(len(w), []).append(i)
        try:
            for length, idx in groups.items():
                codes = torch.tensor([vocab.encode(words[i]) for i in idx], dtype=torch.long, device=device)
                rows = self._decode(codes, length + self.max_extra).tolist()
                for i, row in zip(idx, rows, strict=True):
                    out[i] = vocab.decode(row)
        finally:
            model.train(was_training)
        return out

    def _decode(self, codes: torch.Tensor, limit: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class _EncoderDecoderTranslator(_Translator):
    def _decode(self, codes, limit):
        vocab, model = self.vocab, self.model
        src = torch.cat([codes, torch.full((codes.size(0), 1), vocab.eos, dtype=torch.long, device=codes.device)], 1)
        annotations, _ = model.encoder(src)
        seq = torch.full((codes.size(0), 1), vocab.sos, dtype=torch.long, device=codes.device)
        done = torch.zeros(codes.size(0), dtype=torch.bool, device=codes.device)
        for _ in range(limit):
            logits, _ = model.decoder(seq, annotations)
            nxt = logits[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt.unsqueeze(1)], 1)
            done |= nxt == vocab.eos
            if bool(done.all()):
                break
        return seq[:, 1:]


class _DecoderOnlyTranslator(_Translator):
    def _decode(self, codes, limit):
        vocab, model = self.vocab, self.model
        n, prompt = codes.size(0), codes.size(1) + 2
        seq = torch.cat([torch.full((n, 1), vocab.sos, dtype=torch.long, device=codes.device), codes,
                         torch.full((n, 1), vocab.eop, dtype=torch.long, device=codes.device)], 1)
        done = torch.zeros(n, dtype=torch.bool, device=codes.device)
        for _ in range(limit):
            nxt = model(seq)[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt.unsqueeze(1)], 1)
            done |= nxt == vocab.eos
            if bool(done.all()):
                break
        return seq[:, prompt:]


def encoder_decoder_translator(model: EncoderDecoder, vocab: pig_latin.Vocab) -> _Translator:
    """``translate(word) -> str`` (and ``.many(words)``) with an :class:`EncoderDecoder`: the encoder
    reads ``word <EOS>``, the decoder starts from ``<SOS>`` and appends its most likely character until
    EOS or ``len(word) + 10`` characters."""
    return _EncoderDecoderTranslator(model, vocab)


def decoder_only_translator(model: nn.Module, vocab: pig_latin.Vocab) -> _Translator:
    """``translate(word) -> str`` (and ``.many(words)``) with a decoder-only model: it reads
    ``<SOS> word <EOP>`` and appends its most likely character until EOS or ``len(word) + 10``."""
    return _DecoderOnlyTranslator(model, vocab)


def exact_match(translate: Callable[[str], str], pairs: Sequence[tuple[str, str]]) -> float:
    """The fraction of ``pairs`` (english, pig latin) whose translation ``translate(english)`` is exactly
    the pig latin word. A translator with ``.many(words)`` translates them in batches."""
    if not pairs:
        raise ValueError("exact_match needs at least one pair")
    words = [s for s, _ in pairs]
    many = getattr(translate, "many", None)
    got = many(words) if many is not None else [translate(w) for w in words]
    return sum(g == t for g, (_, t) in zip(got, pairs, strict=True)) / len(pairs)


def translate_sentence(translate: Callable[[str], str], sentence: str = SAMPLE_SENTENCE) -> str:
    """The sentence translated word by word (the handout's ``translate_sentence``)."""
    return " ".join(translate(w) for w in sentence.split())


# ---------------------------------------------------------------------------------------------------
# the training loop (both kinds)


def _epoch_batches(batches: list[dict], seed: int, epoch: int, budget: int | None) -> list[dict]:
    """The epoch's batches in a seeded order (the same for a resumed run); with ``budget``, only the
    first ones up to the batch that reaches ``budget`` processed positions."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    if budget is None:
        return order
    out, seen = [], 0
    for b in order:
        if seen >= budget:
            break
        out.append(b)
        seen += b["n_tokens"]
    return out


def _train_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, train: list[dict], val: list[dict], *,
                  loss_fn: Callable, epochs: int, lr: float, lr_decay: float, seed: int,
                  max_tokens: int | None = None, history: list[dict] | None = None,
                  on_epoch: Callable[[list[dict]], object] | None = None,
                  on_batch: Callable[[nn.Module, int], object] | None = None, label: str = "",
                  progress: bool = False, say: Callable = lambda *_: None) -> list[dict]:
    """Train from ``len(history)`` finished epochs to ``epochs`` (or until ``max_tokens`` positions have
    been processed); after each epoch the validation loss, a history row, then ``on_epoch(history)``;
    after each optimizer step ``on_batch(model, positions processed so far)``.

    ``loss_fn(model, batch) -> loss`` is the training loss of a batch (a mean over its loss tokens)."""
    history = [] if history is None else history
    device = _model_device(model)
    tqdm = None
    if progress:
        from tqdm.auto import tqdm
    steps = int(history[-1]["steps"]) if history else 0
    seen = int(history[-1]["tokens_seen"]) if history else 0
    for epoch in range(len(history) + 1, epochs + 1):
        if max_tokens is not None and seen >= max_tokens:
            break
        rate = lr * lr_decay ** epoch
        for group in optimizer.param_groups:
            group["lr"] = rate
        chosen = _epoch_batches(train, seed, epoch, None if max_tokens is None else max_tokens - seen)
        tokens = sum(b["n_tokens"] for b in chosen)
        running = [seen]

        def update(batch, running=running):
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_batch is not None:
                running[0] += batch["n_tokens"]
                on_batch(model, running[0])
            n = batch["n_loss"]
            return loss, loss.detach() * n, n

        batches = tqdm(chosen, desc=f"{label} epoch {epoch}", leave=False, unit="batch") if tqdm else chosen
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        totals = train_lib.run_updates(batches, update, device=device, acc_dtype=torch.float64,
                                       postfix=lambda t: {"loss": f"{t.token_nll():.3f}"})
        sync(device)
        train_seconds, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        t1, c1 = time.perf_counter(), time.process_time()
        val_loss = batches_loss(model, val)
        val_seconds, val_cpu = time.perf_counter() - t1, time.process_time() - c1
        steps += totals.steps
        seen += tokens
        row = {"epoch": epoch, "lr": rate, "steps": steps, "train_loss": totals.token_nll(), "val_loss": val_loss,
               "train_loss_tokens": totals.n_tokens, "tokens": tokens, "tokens_seen": seen,
               "epoch_fraction": tokens / sum(b["n_tokens"] for b in train),
               "train_seconds": train_seconds, "val_seconds": val_seconds, "seconds": train_seconds + val_seconds,
               # CPU time of this process (all its threads): on a shared CPU, steadier than the wall clock
               "cpu_seconds": train_cpu + val_cpu,
               "tokens_per_s": tokens / train_seconds if train_seconds > 0 else float("nan"),
               **epoch_memory(device), "finished_at": now()}
        history.append(json_safe(row))
        if on_epoch is not None:
            on_epoch(history)
        say(f"{label} epoch {epoch:3d}/{epochs}: lr {rate:.3g} | train loss {row['train_loss']:.4f} | "
            f"val loss {val_loss:.4f} | {row['seconds']:.1f}s ({row['cpu_seconds']:.1f}s CPU)")
    return history


def _encdec_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    logits = model(batch["src"], batch["inputs"])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1))


def _decoder_loss_fn(decoder_only_loss: Callable) -> Callable:
    def loss(model, batch):
        return decoder_only_loss(model(batch["inputs"]), batch["targets"], batch["mask"])

    return loss


def train_decoder_only(model: nn.Module, train_pairs: Sequence[tuple[str, str]],
                       val_pairs: Sequence[tuple[str, str]], vocab: pig_latin.Vocab, *,
                       epochs: int | None = None, max_tokens: int | None = None, lr: float = 5e-4,
                       lr_decay: float = 0.99, batch_size: int = 64, seed: int = 0,
                       decoder_only_example: Callable | None = None, decoder_only_loss: Callable | None = None,
                       optimizer: torch.optim.Optimizer | None = None,
                       on_batch: Callable[[nn.Module, int], object] | None = None, progress: bool = False,
                       log: Callable[[str], object] | None = None) -> pd.DataFrame:
    """Train a decoder-only ``model`` (already on its device) with Adam; return the history.

    The batches are built once (one length group each, :func:`course_lib.pig_latin.batches`), with
    ``decoder_only_example`` and trained with ``decoder_only_loss`` (default: the references of
    ``course_solutions.nmt``); every epoch visits them in a seeded order at learning rate
    ``lr * lr_decay ** epoch``. Give ``epochs``, or ``max_tokens`` (a budget of processed positions,
    the input tokens the model reads: training stops after the batch that reaches it, the last epoch
    then partial), or both (whichever ends first). ``on_batch(model, tokens_seen)``, if given, is called
    after every optimizer step with the positions processed so far, that batch's included (the model
    in training mode; leave it so): evaluating there at a count ``D`` sees the model a run with
    ``max_tokens=D`` ends with, since the schedule and the batch order do not depend on the budget.
    ``optimizer``: default Adam at ``lr``.

    The history (a DataFrame, one row per epoch) has ``epoch``, ``lr``, ``steps`` (optimizer steps so
    far), ``train_loss`` (token-weighted mean of the training losses), ``val_loss``
    (:func:`decoder_only_val_loss` after the epoch), ``tokens`` (positions processed in the epoch),
    ``tokens_seen`` (so far), ``epoch_fraction``, ``seconds``, ``cpu_seconds``, ``tokens_per_s``.
    """
    if epochs is None and max_tokens is None:
        raise ValueError("train_decoder_only needs epochs=, max_tokens= or both")
    if vocab.eop is None:
        raise ValueError("the decoder-only model needs a vocabulary with EOP: pig_latin.build_vocab(pairs, eop=True)")
    fns = _pieces({"decoder_only_example": decoder_only_example, "decoder_only_loss": decoder_only_loss})
    device = _model_device(model)
    train = make_batches(train_pairs, vocab, batch_size, decoder_only_example=fns["decoder_only_example"],
                         device=device)
    val = make_batches(val_pairs, vocab, batch_size, decoder_only_example=fns["decoder_only_example"],
                       device=device)
    if epochs is None:
        per_epoch = sum(b["n_tokens"] for b in train)
        epochs = math.ceil(max_tokens / per_epoch)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    rows = _train_epochs(model, optimizer, train, val, loss_fn=_decoder_loss_fn(fns["decoder_only_loss"]),
                         epochs=epochs, lr=lr, lr_decay=lr_decay, seed=seed, max_tokens=max_tokens,
                         on_batch=on_batch, label="decoder-only", progress=progress, say=log or (lambda *_: None))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# a run


@dataclass
class RunResult(EpochHistory):
    """A finished run: ``history`` (one row per epoch), the held-out evaluation of the best epoch's
    weights (lowest validation loss), ``samples`` (the sample sentence translated), the model."""

    config: Config
    history: pd.DataFrame
    num_parameters: int
    held_out_loss: float
    exact_match: float
    samples: dict[str, str]
    eval_seconds: float = 0.0
    eval_cpu_seconds: float = 0.0
    log_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)
    vocab: pig_latin.Vocab | None = field(default=None, repr=False)

    @property
    def best_val_loss(self) -> float:
        return float(self._best()["val_loss"])

    @property
    def train_loss(self) -> float:
        """Training loss of the best epoch."""
        return float(self._best()["train_loss"])

    @property
    def tokens_per_s(self) -> float:
        return float(self.history["tokens"].sum() / self.history["train_seconds"].sum())

    @property
    def translator(self) -> _Translator:
        if self.config.kind == "decoder-only":
            return decoder_only_translator(self.model, self.vocab)
        return encoder_decoder_translator(self.model, self.vocab)

    def translate(self, sentence: str) -> str:
        """``sentence`` translated word by word by the best epoch's weights (greedy)."""
        return translate_sentence(self.translator, sentence)


def default_log_dir() -> Path:
    """``COURSE_RUNS_DIR`` or ``./runs``, then ``nmt_pig_latin``."""
    return runs_dir(ASSIGNMENT)


def _run_dir(config: Config, log_dir: str | os.PathLike | None) -> Path:
    return Path(log_dir) if log_dir is not None else run_folder(default_log_dir(), config.scale, config.name)


def run(
    name: str | Config,
    *,
    encoder_class: type | None = None,
    decoder_class: type | None = None,
    decoder_only_class: type | None = None,
    decoder_only_example: Callable | None = None,
    decoder_only_loss: Callable | None = None,
    scale: str | None = None,
    progress: bool = True,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = print,
) -> RunResult:
    """Train (or resume, or read back) run ``name`` (a key of ``RUNS``, or a :class:`Config`).

    An encoder-decoder run uses ``encoder_class`` and ``decoder_class``; a decoder-only run
    ``decoder_only_class``, ``decoder_only_example`` and ``decoder_only_loss``; those not given are the
    references of ``course_solutions.nmt`` (instructor material). ``log_dir``: this run's folder
    (default ``runs/nmt_pig_latin/<scale>/<name>``); ``resume=False`` moves earlier logs aside; ``log``
    receives one line per epoch. The held-out evaluation and the sample translations use the weights
    of the epoch with the lowest validation loss.
    """
    config = config_for(name, scale)
    decoder_only = config.kind == "decoder-only"
    if decoder_only:
        fns = _pieces({"decoder_only_class": decoder_only_class, "decoder_only_example": decoder_only_example,
                       "decoder_only_loss": decoder_only_loss})
    else:
        fns = _pieces({"encoder_class": encoder_class, "decoder_class": decoder_class})
    say = log or (lambda *_: None)
    device = get_device(None if config.device in ("", "auto") else config.device)
    data = load_data(config, fns.get("decoder_only_example"), device)
    seed_everything(config.seed)
    V = data.vocab.size
    if decoder_only:
        model = fns["decoder_only_class"](V, config.hidden_size, config.num_layers, config.num_heads).to(device)
        loss_fn = _decoder_loss_fn(fns["decoder_only_loss"])
        code = code_fingerprint(fns["decoder_only_example"], fns["decoder_only_loss"])
    else:
        model = EncoderDecoder(fns["encoder_class"](V, config.hidden_size, config.num_layers),
                               fns["decoder_class"](V, config.hidden_size, config.num_layers)).to(device)
        loss_fn = _encdec_loss
        code = code_fingerprint(_encdec_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fingerprint = {**config.fingerprint(), "code": code}
    runlog = RunLog(_run_dir(config, log_dir), label=config.label, log_format=LOG_FORMAT, say=say)
    runlog.open(fingerprint, resume=resume)
    runlog.check_model(model)
    start_epoch, history = runlog.resume(model, optimizer, config.epochs)
    n_params = num_parameters(model)
    runlog.write_meta({
        "runner": f"course_lib.runners.{ASSIGNMENT}", "config": dataclasses.asdict(config),
        "fingerprint": fingerprint, "model_fingerprint": model_fingerprint(model), "num_parameters": n_params,
        "vocabulary_size": V, "train_pairs": len(data.train_pairs), "val_pairs": len(data.val_pairs),
        "held_out_pairs": len(data.held_out_pairs), "train_batches": len(data.train),
        "device": str(device), "device_description": describe_device(device), "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "python_version": platform.python_version(),
        "platform": platform.platform(), "updated_at": now(),
    })
    if start_epoch < config.epochs:
        say(f"{config.label}: {config.kind}, H={config.hidden_size}, {config.num_heads} head(s), {n_params:,} "
            f"parameters, on {device}; {len(data.train_pairs):,} training pairs ({config.dataset}), {config.epochs} "
            f"epochs" + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))
        best = [min((row["val_loss"] for row in history), default=math.inf)]

        def on_epoch(rows):
            if rows[-1]["val_loss"] < best[0]:  # the best weights first, then the checkpoint and the log line
                best[0] = rows[-1]["val_loss"]
                atomic_torch_save(model.state_dict(), runlog.folder / "best.pt")
            runlog.save_epoch(rows, model, optimizer)

        _train_epochs(model, optimizer, data.train, data.val, loss_fn=loss_fn, epochs=config.epochs, lr=config.lr,
                      lr_decay=config.lr_decay, seed=config.seed, history=history, on_epoch=on_epoch,
                      label=config.label, progress=progress, say=say)
    best_path = runlog.folder / "best.pt"
    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    model.eval()
    t0, c0 = time.perf_counter(), time.process_time()
    held_out_loss = batches_loss(model, data.held_out)
    translator = (decoder_only_translator if decoder_only else encoder_decoder_translator)(model, data.vocab)
    match = exact_match(translator, data.held_out_pairs)
    samples = {w: translator(w) for w in SAMPLE_SENTENCE.split()}
    result = RunResult(config=config, history=pd.DataFrame(history), num_parameters=n_params,
                       held_out_loss=held_out_loss, exact_match=match, samples=samples,
                       eval_seconds=time.perf_counter() - t0, eval_cpu_seconds=time.process_time() - c0,
                       log_dir=runlog.folder, model=model, vocab=data.vocab)
    say(f"{config.label}: lowest validation loss {result.best_val_loss:.4f} at epoch {result.best_epoch}; held-out "
        f"loss {held_out_loss:.4f}, exact match {match:.1%}; '{result.translate(SAMPLE_SENTENCE)}'")
    return result


def run_all(names: Sequence[str] | None = None, **kwargs) -> dict[str, RunResult]:
    """:func:`run` for each name (default: every run of ``RUNS``), same keyword arguments."""
    return {name: run(name, **kwargs) for name in (names or RUNS)}


# ---------------------------------------------------------------------------------------------------
# what students see: curves, tables, conclusions


def _hist(r) -> pd.DataFrame:
    return r.history if isinstance(r, RunResult) else pd.DataFrame(r["history"])


def _cfg(r) -> dict:
    return dataclasses.asdict(r.config) if isinstance(r, RunResult) else r["config"]


def _get(r, key):
    return getattr(r, key) if isinstance(r, RunResult) else r[key]


def _plot_pairs(results: dict, panels: dict[str, list[str]], title: str, x: str, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 6.4), squeeze=False, sharex="col")
    for col, (panel, names) in enumerate(panels.items()):
        for name in names:
            if name not in results:
                continue
            h = _hist(results[name])
            line, = axes[0][col].plot(h[x], h["train_loss"], label=name)
            axes[1][col].plot(h[x], h["val_loss"], color=line.get_color(), label=name)
        axes[0][col].set_title(f"{panel}: training loss")
        axes[1][col].set_title(f"{panel}: validation loss")
        axes[1][col].set_xlabel("gradient descent iterations" if x == "steps" else x)
        for a in (axes[0][col], axes[1][col]):
            a.set_yscale("log")
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def save_loss_comparison_by_hidden(results: dict, path: str | os.PathLike | None = "loss_comparison_by_hidden.png",
                                   x: str = "steps"):
    """The handout's plot: one column per data set, hidden size 16 against 32 in each (training loss
    above, validation below, log scale) against the gradient descent iterations (``x="epoch"``: per
    epoch). Written to ``path`` (``None``: not written); returns the figure."""
    panels = {f"{d} data": [f"enc-dec H{h} {d}" for h in (16, 32)] for d in ("small", "large")}
    return _plot_pairs(results, panels, "Encoder-decoder: hidden size 16 vs 32", x, path)


def save_loss_comparison_by_dataset(results: dict,
                                    path: str | os.PathLike | None = "loss_comparison_by_dataset.png",
                                    x: str = "steps"):
    """The handout's plot: one column per hidden size, the small against the large data set in each."""
    panels = {f"H={h}": [f"enc-dec H{h} {d}" for d in ("small", "large")] for h in (16, 32)}
    return _plot_pairs(results, panels, "Encoder-decoder: small vs large data set", x, path)


def plot_parameter_efficiency(results: dict, path: str | os.PathLike | None = None):
    """The five decoder-only models: validation loss per epoch (left), lowest validation loss against
    the parameter count (right, log scale; heads in one colour, hidden sizes in another)."""
    import matplotlib.pyplot as plt

    names = [n for n in PARAMETER_RUNS if n in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        h = _hist(results[name])
        left.plot(h["epoch"], h["val_loss"], label=f"{name} ({_get(results[name], 'num_parameters'):,})")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("validation loss")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    groups = {"more heads (H=32)": ["decoder H32 1 head", "decoder H32 2 heads", "decoder H32 4 heads"],
              "larger hidden size (1 head)": ["decoder H32 1 head", "decoder H64 1 head", "decoder H128 1 head"]}
    for label, members in groups.items():
        members = [n for n in members if n in results]
        xs = [_get(results[n], "num_parameters") for n in members]
        ys = [float(_hist(results[n])["val_loss"].min()) for n in members]
        right.plot(xs, ys, "o-", label=label)
        for n, x_, y_ in zip(members, xs, ys, strict=True):
            right.annotate(n.replace("decoder ", ""), (x_, y_), fontsize=7, xytext=(3, 3), textcoords="offset points")
    right.set_xscale("log")
    right.set_xlabel("parameters")
    right.set_ylabel("lowest validation loss")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def results_table(results: dict):
    """One row per run: kind, data set, hidden size, heads, parameters, the lowest validation loss and
    its epoch, the held-out loss and exact match, minutes; the best of each measure in bold."""
    rows = []
    for name, r in results.items():
        c, h = _cfg(r), _hist(r)
        best = h.loc[h["val_loss"].idxmin()]
        rows.append({"Run": name, "Kind": c["kind"], "Data": c["dataset"], "Hidden": c["hidden_size"],
                     "Heads": c["num_heads"], "Parameters": _get(r, "num_parameters"),
                     "Lowest validation loss": float(best["val_loss"]), "Best epoch": int(best["epoch"]),
                     "Held-out loss": _get(r, "held_out_loss"), "Held-out exact match": _get(r, "exact_match"),
                     "Minutes": float(h["seconds"].sum()) / 60})
    frame = pd.DataFrame(rows).set_index("Run")

    def bold(column, best):
        return ["font-weight: bold" if v == best(column) else "" for v in column]

    return (frame.style.format("{:.4f}", subset=["Lowest validation loss", "Held-out loss"])
            .format("{:.1%}", subset=["Held-out exact match"]).format("{:,}", subset=["Parameters"])
            .format("{:.1f}", subset=["Minutes"])
            .apply(bold, best=min, subset=["Lowest validation loss", "Held-out loss"])
            .apply(bold, best=max, subset=["Held-out exact match"]))


def translations_table(results: dict, sentence: str = SAMPLE_SENTENCE) -> pd.DataFrame:
    """The sentence translated word by word by every run (RunResults), with the rule's answer first."""
    words = sentence.split()
    rows = {"rule (pig_latin)": [pig_latin.pig_latin(w) for w in words]}
    for name, r in results.items():
        if isinstance(r, RunResult):
            rows[name] = r.translator.many(words)
        else:
            rows[name] = [r["samples"].get(w, "") for w in words]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=words)
    frame["sentence"] = [" ".join(v) for v in rows.values()]
    return frame


def _best_val(r) -> float:
    return float(_hist(r)["val_loss"].min())


def conclusions(results: dict) -> dict:
    """What the runs show, each checked (``checks``), for the runs present:

    - ``large beats small (H<h>)``: with the same hidden size, the large data set gives the lower held-out
      loss (the same English words for both; the two validation splits differ) and the lower validation
      loss, for h = 16 and 32;
    - ``32 beats 16 (<data>)``: on the same data, hidden size 32 gives the lower validation loss and the
      lower held-out loss;
    - ``more heads improve (H32)``: 1, 2, 4 heads of hidden size 32, each lowers the validation loss;
    - ``larger hidden size improves (1 head)``: hidden size 32, 64, 128, each lowers it;
    - ``hidden size beats heads at matched size``: ``decoder H64 1 head`` has no more parameters than
      ``decoder H32 4 heads`` (53,790 against 55,518 with a 30-token vocabulary) and the lower
      validation loss: per parameter, width buys more than heads (the handout's 2.3 Q5);
    - ``decoder-only vs encoder-decoder`` (``comparisons``, not checked): the decoder-only H32 model and
      the H32 encoder-decoder on the large data, same validation split: losses, exact match, parameters;
    - ``parameter efficiency`` (``comparisons``): the drop in validation loss per 1,000 parameters
      added to ``decoder H32 1 head``, per model (returns diminish, so this slope favours the smallest
      step, 2 heads; the matched-size check above is the fair comparison).

    ``results`` maps run names to RunResults or to recorded dicts (``history``, ``config``,
    ``num_parameters``, ``held_out_loss``, ``exact_match``).
    """
    out: dict = {"runs": {}}
    checks: dict[str, bool] = {}
    for name, r in results.items():
        out["runs"][name] = {"best_val_loss": _best_val(r), "held_out_loss": float(_get(r, "held_out_loss")),
                             "exact_match": float(_get(r, "exact_match")),
                             "num_parameters": int(_get(r, "num_parameters"))}
    runs = out["runs"]

    def both_lower(a, b):
        return runs[a]["best_val_loss"] < runs[b]["best_val_loss"] and runs[a]["held_out_loss"] < runs[b]["held_out_loss"]

    for h in (16, 32):
        small, large = f"enc-dec H{h} small", f"enc-dec H{h} large"
        if small in runs and large in runs:
            checks[f"large beats small (H{h})"] = both_lower(large, small)
    for d in ("small", "large"):
        a, b = f"enc-dec H32 {d}", f"enc-dec H16 {d}"
        if a in runs and b in runs:
            checks[f"32 beats 16 ({d})"] = both_lower(a, b)
    comparisons: dict = {}
    if DECODER_ONLY_RUN in runs and "enc-dec H32 large" in runs:
        d, e = runs[DECODER_ONLY_RUN], runs["enc-dec H32 large"]
        comparisons["decoder-only vs encoder-decoder"] = {
            "val_loss_ratio": d["best_val_loss"] / e["best_val_loss"],
            "exact_match_difference": d["exact_match"] - e["exact_match"],
            "parameter_ratio": d["num_parameters"] / e["num_parameters"]}
    if all(n in runs for n in PARAMETER_RUNS):
        base = runs[PARAMETER_RUNS[0]]

        def per_1k(n):
            return 1000 * (base["best_val_loss"] - runs[n]["best_val_loss"]) / (runs[n]["num_parameters"]
                                                                               - base["num_parameters"])

        def falling(names):
            losses = [runs[n]["best_val_loss"] for n in names]
            return all(b < a for a, b in itertools.pairwise(losses))

        heads, hidden = PARAMETER_RUNS[:3], (PARAMETER_RUNS[0], *PARAMETER_RUNS[3:])
        wide, many = runs["decoder H64 1 head"], runs["decoder H32 4 heads"]
        checks["more heads improve (H32)"] = falling(heads)
        checks["larger hidden size improves (1 head)"] = falling(hidden)
        checks["hidden size beats heads at matched size"] = bool(
            wide["num_parameters"] <= many["num_parameters"] and wide["best_val_loss"] < many["best_val_loss"])
        comparisons["parameter efficiency"] = {
            "loss_drop_per_1k_parameters": {n: per_1k(n) for n in PARAMETER_RUNS[1:]},
            "best_by_heads": min(runs[n]["best_val_loss"] for n in heads),
            "best_by_hidden": min(runs[n]["best_val_loss"] for n in hidden),
            "matched_size_loss_ratio": wide["best_val_loss"] / many["best_val_loss"]}
    out["comparisons"] = comparisons
    out["checks"] = checks
    return out


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m course_lib.runners.{ASSIGNMENT}",
        description="Train the English -> Pig Latin transformers (encoder-decoder and decoder-only) with the "
                    "reference code (course_solutions, instructor material). Students run the notebook.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recording the laptop scale (instructors):\n"
               f"  OMP_NUM_THREADS=1 python -m course_lib.runners.{ASSIGNMENT} --all --scale laptop \\\n"
               f"      --record course_solutions/recorded/{ASSIGNMENT}-laptop.json\n"
               "the full scale (a GPU):\n"
               f"  python -m course_lib.runners.{ASSIGNMENT} --all --scale full --record "
               f"course_solutions/recorded/{ASSIGNMENT}.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", metavar="NAME", help=f"a run: {', '.join(RUNS)}")
    which.add_argument("--all", action="store_true", help="every run of the handout (nine)")
    which.add_argument("--list", action="store_true", help="list the runs and their settings at this scale")
    parser.add_argument("--scale", choices=SCALES, help="fast, laptop or full (default: COURSE_SCALE, ...)")
    parser.add_argument("--fast", action="store_true", help="same as --scale fast")
    parser.add_argument("--log-dir", help=f"folder of the runs (default: runs/{ASSIGNMENT})")
    parser.add_argument("--no-resume", action="store_true", help="start over (earlier logs are moved aside)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--record", metavar="PATH", help="write the runs' histories, results and conclusions to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, RunResult]:
    args = build_parser().parse_args(argv)
    scale = "fast" if args.fast else args.scale
    if args.list:
        for name in RUNS:
            print(config_for(name, scale))
        return {}
    names = args.run or list(RUNS)
    t0, c0 = time.perf_counter(), time.process_time()
    results = {}
    for name in names:
        kwargs = {}
        if args.log_dir:
            kwargs["log_dir"] = run_folder(args.log_dir, scale or current_scale(), name)
        results[name] = run(name, scale=scale, progress=not args.no_progress, resume=not args.no_resume, **kwargs)
    if args.record:
        record(results, args.record, wall_seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    return results


def record(results: dict[str, RunResult], path: str | os.PathLike, *, wall_seconds: float | None = None,
           cpu_seconds: float | None = None) -> dict:
    """Write the runs (settings, per-epoch history, held-out results, samples, times) and their
    :func:`conclusions` to ``path`` (JSON; instructor material). ``wall_seconds`` / ``cpu_seconds``: the
    whole command's, data loading included."""
    import json

    from ..files import atomic_write_text

    if not results:
        raise ValueError("record() needs at least one run")
    runs = {}
    for name, r in results.items():
        runs[name] = {"config": dataclasses.asdict(r.config), "history": r.history.to_dict("records"),
                      "best_epoch": r.best_epoch, "best_val_loss": r.best_val_loss, "train_loss": r.train_loss,
                      "held_out_loss": r.held_out_loss, "exact_match": r.exact_match,
                      "held_out_words": r.config.held_out, "samples": r.samples,
                      "sample_translation": translate_sentence(lambda w, s=r.samples: s[w]),
                      "num_parameters": r.num_parameters, "minutes": r.seconds / 60,
                      "cpu_minutes": r.cpu_seconds / 60, "eval_seconds": r.eval_seconds,
                      "eval_cpu_seconds": r.eval_cpu_seconds, "tokens_per_s": r.tokens_per_s}
    scale = next(iter(results.values())).config.scale
    payload = {
        "assignment": ASSIGNMENT, "scale": scale, "scale_settings": {"laptop": LAPTOP, "fast": FAST}.get(scale, {}),
        "recorded_at": now(), "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "device": describe_device(get_device()),
        "total_minutes": sum(r.seconds + r.eval_seconds for r in results.values()) / 60,
        "total_cpu_minutes": sum(r.cpu_seconds + r.eval_cpu_seconds for r in results.values()) / 60,
        "command_wall_minutes": None if wall_seconds is None else wall_seconds / 60,
        "command_cpu_minutes": None if cpu_seconds is None else cpu_seconds / 60,
        "runs": runs, "conclusions": conclusions(results),
    }
    atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1) + "\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
