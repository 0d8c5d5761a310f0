"""Hugging Face GPT-2 for the ``sentiment_and_gpt2`` assignment (part 3): the model, its tokenizer and WikiText-2.

The handout loads ``gpt2`` and ``wikitext-2-raw-v1`` from the Hugging Face hub. This module keeps
that code path and makes it work where the hub cannot be reached (this course's CI, tests, a
laptop offline): the same ``from_pretrained`` calls load either the hub's ``gpt2`` or a small GPT-2
that the course builds itself from its own data and saves with ``save_pretrained``::

    from course_lib import hf_models as hf
    name = hf.default_model_name()        # "gpt2" when the hub answers, else the local folder (it says which)
    model, tokenizer = hf.load_model_and_tokenizer(name)   # AutoModelForCausalLM / AutoTokenizer.from_pretrained
    valid = hf.load_wikitext("validation", fraction=0.1)   # a datasets.Dataset with a "text" column

**The local GPT-2** (:func:`local_gpt2`, :func:`build_local_gpt2`): a byte-level BPE tokenizer trained
with ``tokenizers`` on course data (WikiText-2's training split, tokenized version, and IMDB
training reviews), wrapped as a ``transformers`` GPT-2 tokenizer (``<|endoftext|>`` is its
beginning, end and unknown token, as in ``gpt2``; like ``gpt2`` it has no padding token until the
notebook sets ``pad_token = eos_token``; ``model_max_length`` is the model's context); a
``GPT2LMHeadModel`` of a small ``GPT2Config``; pretrained briefly on a mix of mostly **IMDB training
reviews** and some WikiText-2 training rows from *after* the first 10 % of the split (the rows the
handout fine-tunes on are never seen), as GPT-2 was pretrained on web text of many kinds: so the
perplexity before fine-tuning is that of a real (if small) language model that has met this kind
of text, and fine-tuning on the first 10 % still has much to teach it. The result is cached under ``course_lib.data.cache_dir()/hf_models/``
in a folder named by a hash of its settings (:class:`LocalGPT2`): built once (minutes at the laptop
scale, seconds at the fast scale), then reused; ``meta.json`` there records the settings, the
build's seconds and the pretraining loss.

**WikiText-2** (:func:`load_wikitext`, :func:`load_wikitext_texts`): ``wikitext-2-raw-v1`` from the
hub when it is reachable; offline, the course's copy of the *tokenized* WikiText-2 (the raw version
is not in the course data), laid out like the hub's rows: one row per line of the file, ``""`` for
a blank line, otherwise the line with its ``"\\n"``. The two differ in their text (the tokenized
version has ``<unk>`` for rare words), not in their structure: 36,718 / 3,760 / 4,358 rows.

Nothing here downloads when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE`` / ``HF_DATASETS_OFFLINE``)
is set: :func:`hub_reachable` is then False without touching the network.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import re
import shutil
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "LocalGPT2", "LOCAL_SCALES", "EOS", "HUB_MODEL", "HUB_DATASET", "hub_offline", "hub_reachable",
    "default_model_name", "load_model_and_tokenizer", "local_gpt2", "build_local_gpt2", "train_tokenizer",
    "local_model_dir", "read_meta", "pretraining_corpus", "load_wikitext", "load_wikitext_texts", "wikitext_source",
    "imdb_reviews",
    "describe_model",
]

EOS = "<|endoftext|>"
HUB_MODEL = "gpt2"
HUB_DATASET = ("wikitext", "wikitext-2-raw-v1")
#: The hub's split names -> the course's WikiText-2 files.
WIKITEXT_FILES = {"train": "train.txt", "validation": "valid.txt", "valid": "valid.txt", "test": "test.txt"}
BUILD_FORMAT = 1
#: Where a local model's IMDB reviews come from (see :class:`LocalGPT2`).
IMDB_SOURCES = ("archive", "subset")
#: Settings added after models were built and recorded, with their defaults (see :meth:`LocalGPT2.key`).
_LATER_DEFAULTS = {"imdb_source": "archive"}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class LocalGPT2:
    """The settings of a self-built GPT-2: tokenizer, architecture and pretraining.

    The tokenizer is trained on the first ``tokenizer_lines`` lines of WikiText-2's training split
    (None: all) and ``tokenizer_reviews`` IMDB training reviews; the model is pretrained for
    ``pretrain_steps`` AdamW steps of ``batch_size`` blocks of ``n_positions`` tokens, cut from
    ``pretrain_reviews`` IMDB training reviews (shuffled with ``seed``) and the first
    ``pretrain_wikitext_rows`` non-blank rows of WikiText-2's training split after its first
    ``pretrain_wikitext_skip`` (a fraction of the rows: the handout fine-tunes on the first 10 %),
    each text ending in ``<|endoftext|>``, the blocks shuffled; the learning rate warmed up linearly over ``warmup_steps`` and decayed to 0
    on a cosine. ``heldout_blocks`` blocks are kept aside to measure the pretraining's own
    validation perplexity. ``imdb_source``: where the IMDB training reviews come from, ``"archive"``
    (the 25,000 of the full archive, which takes seconds to read) or ``"subset"`` (the 1,000 training
    reviews of the course's 2,000-review CSV, read at once: the toy ``fast`` model).
    """

    vocab_size: int = 8192
    n_positions: int = 128
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    tokenizer_lines: int | None = None
    tokenizer_reviews: int = 5000
    pretrain_reviews: int = 5000
    pretrain_wikitext_rows: int = 5000
    pretrain_wikitext_skip: float = 0.1
    pretrain_steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    heldout_blocks: int = 64
    seed: int = 282
    imdb_source: str = "archive"

    def __post_init__(self):
        if self.imdb_source not in IMDB_SOURCES:
            raise ValueError(f"imdb_source must be one of {', '.join(IMDB_SOURCES)}, got {self.imdb_source!r}")

    def key(self) -> str:
        """A hash of the settings (and of the build's format): the cache folder's name. A setting
        added later is hashed only away from its default, so the models built before keep their key."""
        settings = dataclasses.asdict(self)
        for name, default in _LATER_DEFAULTS.items():
            if settings[name] == default:
                del settings[name]
        text = json.dumps({"format": BUILD_FORMAT, **settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def pretrain_tokens(self) -> int:
        return self.pretrain_steps * self.batch_size * self.n_positions


#: The self-built GPT-2 of each scale: ``laptop`` (and ``full`` offline) about 1.9 million
#: parameters, pretrained on about 1.2 million tokens; ``fast`` a toy that builds in about two seconds
#: (its reviews from the 2,000-review CSV: reading the full archive alone would take six).
LOCAL_SCALES: dict[str, LocalGPT2] = {
    "laptop": LocalGPT2(),
    "fast": LocalGPT2(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=2, tokenizer_lines=3000,
                      tokenizer_reviews=300, pretrain_reviews=300, pretrain_wikitext_rows=100, pretrain_steps=30, batch_size=8, lr=3e-3,
                      warmup_steps=5, heldout_blocks=8, imdb_source="subset"),
}


# ---------------------------------------------------------------------------------------------------
# the hub


def hub_offline() -> bool:
    """True when an environment variable says to stay offline (``HF_HUB_OFFLINE``,
    ``TRANSFORMERS_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set to 1/true/yes/on)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def _probe_hub(timeout: float) -> bool:
    import urllib.request

    request = urllib.request.Request(f"https://huggingface.co/api/models/{HUB_MODEL}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 400
    except Exception:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be used: False when :func:`hub_offline`, without any
    network access; else one quick request (its answer is kept for the rest of the process)."""
    return not hub_offline() and _probe_hub(timeout)


def default_model_name(scale: str | None = None, *, say: Callable[[str], object] | None = print) -> str:
    """``"gpt2"`` when the hub is reachable, else the folder of the self-built GPT-2 of ``scale``
    (default: :func:`course_lib.device.scale`; ``full`` offline means the laptop model), built on
    first use. The ``fast`` scale (checks, tests, the autograder) always takes the course's toy
    GPT-2, without asking the hub: seconds, no download. ``say`` is told which model it is."""
    if scale is None:
        from .device import scale as current_scale

        scale = current_scale()
    if scale != "fast" and hub_reachable():
        if say:
            say(f"Model: {HUB_MODEL} from the Hugging Face hub (124 million parameters).")
        return HUB_MODEL
    settings = LOCAL_SCALES.get(scale, LOCAL_SCALES["laptop"])
    folder = local_gpt2(settings, say=say)
    if say:
        why = ("the fast scale checks the code on" if scale == "fast" else
               "the Hugging Face hub is not reachable, so")
        say(f"Model: {why} the course's own small GPT-2 ({describe_model(folder)}), "
            f"loaded from {folder} with the same from_pretrained calls.")
    return str(folder)


def load_model_and_tokenizer(name_or_path: str | os.PathLike):
    """``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` of ``name_or_path``
    (``"gpt2"`` or a local folder), with the padding token set to the end-of-text token in both, as
    the handout does (GPT-2 has no padding token of its own)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(name_or_path))
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = model.config.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = model.config.eos_token_id
    return model, tokenizer


def describe_model(name_or_path: str | os.PathLike) -> str:
    """A few words on a model: ``gpt2``, or a local folder's size and how it was built."""
    if str(name_or_path) == HUB_MODEL:
        return "gpt2 from the Hugging Face hub, 124 million parameters"
    meta = read_meta(name_or_path) or {}
    s = meta.get("settings", {})
    if not s:
        return f"a local model in {name_or_path}"
    return (f"{s['n_layer']} layers of {s['n_embd']}, {s['n_head']} heads, context {s['n_positions']}, "
            f"{meta.get('num_parameters', 0) / 1e6:.1f} million parameters, a {s['vocab_size']}-token byte-level BPE, "
            f"pretrained on {meta.get('pretrain_tokens', 0) / 1e6:.2f} million tokens of IMDB reviews and "
            f"WikiText-2 rows after its first {s.get('pretrain_wikitext_skip', 0):.0%} "
            f"(held-out perplexity {meta.get('heldout_ppl') or float('nan'):.1f})")


# ---------------------------------------------------------------------------------------------------
# WikiText-2


def wikitext_source(source: str = "auto") -> str:
    """``"hub"`` (``wikitext-2-raw-v1``) or ``"course"`` (the course's tokenized WikiText-2):
    ``source`` itself, or for ``"auto"`` the hub when it is reachable."""
    if source not in ("auto", "hub", "course"):
        raise ValueError(f"source must be 'auto', 'hub' or 'course', got {source!r}")
    if source == "auto":
        return "hub" if hub_reachable() else "course"
    return source


def _fetch(name: str, key: str) -> Path:
    """:func:`course_lib.data.fetch`, also where the cache is read-only (the grader's sandbox binds
    it so): a file that fetch would unpack from the mirror into the cache goes to a temporary cache."""
    from .data import fetch

    try:
        return fetch(name, key, progress=False)
    except OSError:
        if _writable(_cache_root()):
            raise
    import tempfile

    spare = Path(tempfile.gettempdir()) / "course_lib-cache"
    saved = os.environ.get("COURSE_DATA_CACHE")
    os.environ["COURSE_DATA_CACHE"] = str(spare)
    try:
        return fetch(name, key, progress=False)
    finally:
        if saved is None:
            os.environ.pop("COURSE_DATA_CACHE", None)
        else:
            os.environ["COURSE_DATA_CACHE"] = saved


def _cache_root() -> Path:
    from .data import cache_dir

    return cache_dir()


def _course_lines(split: str) -> list[str]:
    if split not in WIKITEXT_FILES:
        raise ValueError(f"Unknown WikiText-2 split {split!r}: use 'train', 'validation' or 'test'.")
    text = _fetch("wikitext-2", WIKITEXT_FILES[split]).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return ["" if not line.strip() else line + "\n" for line in lines]


def _head(n: int, fraction: float | None) -> int:
    if fraction is None:
        return n
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return int(n * fraction) if fraction < 1 else n


def load_wikitext_texts(split: str, fraction: float | None = None, *, source: str = "auto") -> list[str]:
    """The rows of WikiText-2 ``split`` (``"train"``, ``"validation"``, ``"test"``) as strings:
    ``wikitext-2-raw-v1`` from the hub, or offline the course's tokenized copy in the same layout
    (see the module docstring). ``fraction``: only the first ``int(rows * fraction)`` rows, as the
    handout's ``select(range(len(dataset) // 10))`` for 0.1."""
    if wikitext_source(source) == "hub":
        from datasets import load_dataset

        texts = list(load_dataset(*HUB_DATASET, split="validation" if split == "valid" else split)["text"])
    else:
        texts = _course_lines(split)
    return list(texts[: _head(len(texts), fraction)])


def load_wikitext(split: str, fraction: float | None = None, *, source: str = "auto"):
    """:func:`load_wikitext_texts` as a ``datasets.Dataset`` with one column, ``"text"``: the type
    ``load_dataset`` gives, so that the notebook's ``.map(tokenize_function, batched=True,
    remove_columns=["text"])`` runs the same online and offline."""
    from datasets import Dataset

    return Dataset.from_dict({"text": load_wikitext_texts(split, fraction, source=source)})


# ---------------------------------------------------------------------------------------------------
# course data for the local model


def imdb_reviews(limit: int | None = None, *, seed: int = 282, source: str = "archive") -> list[str]:
    """IMDB training reviews, shuffled with ``seed``, the first ``limit`` of them; ``<br />`` line
    breaks become newlines. ``source``: ``"archive"`` (the course's ``aclImdb`` archive, 25,000
    reviews) or ``"subset"`` (the 1,000 training reviews of ``imdb_subset_2000.csv``)."""
    if source not in IMDB_SOURCES:
        raise ValueError(f"source must be one of {', '.join(IMDB_SOURCES)}, got {source!r}")
    found = list(_imdb_train_reviews() if source == "archive" else _imdb_subset_train_reviews())
    random.Random(seed).shuffle(found)
    return [text for _, _, text in found[:limit]]


def _clean_review(text: str) -> str:
    return re.sub(r"<br\s*/?>", "\n", text).strip()


@functools.lru_cache(maxsize=1)
def _imdb_train_reviews() -> tuple[tuple[str, int, str], ...]:
    path = _fetch("imdb", "aclImdb_v1_labeled.tar.xz")
    pattern = re.compile(r"(?:\./)?aclImdb/train/(pos|neg)/(\d+)_\d+\.txt")
    found: list[tuple[str, int, str]] = []
    with tarfile.open(path, "r:*") as tf:
        for info in tf:
            m = pattern.fullmatch(info.name)
            if m and info.isfile():
                fin = tf.extractfile(info)
                assert fin is not None
                text = fin.read().decode("utf-8")
                found.append((m.group(1), int(m.group(2)), _clean_review(text)))
    return tuple(sorted(found))


@functools.lru_cache(maxsize=1)
def _imdb_subset_train_reviews() -> tuple[tuple[str, int, str], ...]:
    """The training rows of the course's ``imdb_subset_2000.csv`` as (label, id, text), sorted."""
    import csv

    with open(_fetch("imdb", "imdb_subset_2000.csv"), newline="", encoding="utf-8") as f:
        found = [(row["label"], int(row["id"]), _clean_review(row["text"])) for row in csv.DictReader(f)
                 if row["split"] == "train"]
    return tuple(sorted(found))


def _tokenizer_corpus(settings: LocalGPT2) -> list[str]:
    lines = [t for t in _course_lines("train") if t]
    if settings.tokenizer_lines is not None:
        lines = lines[: settings.tokenizer_lines]
    return lines + imdb_reviews(settings.tokenizer_reviews, seed=settings.seed + 1, source=settings.imdb_source)


def pretraining_corpus(settings: LocalGPT2) -> list[str]:
    """The texts the local model is pretrained on: IMDB reviews, then WikiText-2 training rows from
    after the first ``pretrain_wikitext_skip`` of the split (see :class:`LocalGPT2`)."""
    rows = _course_lines("train")
    later = [t for t in rows[_head(len(rows), settings.pretrain_wikitext_skip):] if t]
    return (imdb_reviews(settings.pretrain_reviews, seed=settings.seed, source=settings.imdb_source)
            + later[: settings.pretrain_wikitext_rows])


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int):
    """A byte-level BPE (the GPT-2 scheme: bytes mapped to printable characters, no prefix space)
    trained with ``tokenizers`` on ``texts``, wrapped as a ``transformers`` GPT-2 tokenizer whose
    beginning, end and unknown token is ``<|endoftext|>``; no padding token (as ``gpt2``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    return GPT2TokenizerFast(tokenizer_object=core, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                             model_max_length=model_max_length, add_prefix_space=False)


# ---------------------------------------------------------------------------------------------------
# building and caching the local model


def local_model_dir(settings: LocalGPT2) -> Path:
    """Where the model of ``settings`` is cached: ``<cache_dir>/hf_models/local-gpt2-<key>``."""
    from .data import cache_dir

    return cache_dir() / "hf_models" / f"local-gpt2-{settings.key()}"


def read_meta(folder: str | os.PathLike) -> dict | None:
    """The ``meta.json`` a build wrote into ``folder`` (None if there is none)."""
    try:
        return json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def local_gpt2(settings: str | LocalGPT2 = "laptop", *, say: Callable[[str], object] | None = print) -> Path:
    """The folder of the self-built GPT-2 of ``settings`` (a :class:`LocalGPT2` or a key of
    ``LOCAL_SCALES``): read from the cache, or built there first (:func:`build_local_gpt2`). Where
    the cache is read-only (a grading sandbox), a missing model is built in a temporary folder."""
    if isinstance(settings, str):
        if settings not in LOCAL_SCALES:
            raise ValueError(f"Unknown local GPT-2 {settings!r}: use one of {', '.join(LOCAL_SCALES)} or a LocalGPT2.")
        settings = LOCAL_SCALES[settings]
    folder = local_model_dir(settings)
    spare = _spare_model_dir(settings)
    for candidate in (folder, spare):
        meta = read_meta(candidate)
        if meta is not None and meta.get("key") == settings.key():
            return candidate
    if not _writable(folder.parent):
        if say:
            say(f"The cache {folder.parent} is read-only here: building into {spare} instead.")
        folder = spare
    if folder.exists():  # a build that did not finish (no meta.json): start over
        shutil.rmtree(folder, ignore_errors=True)
    return build_local_gpt2(folder, settings, say=say)


def _spare_model_dir(settings: LocalGPT2) -> Path:
    """Where a model is built when the cache cannot be written (the grader's sandbox binds the
    course's cache read-only: a model already there is used, a missing one is built in ``/tmp``)."""
    import tempfile

    return Path(tempfile.gettempdir()) / "course_lib-hf_models" / f"local-gpt2-{settings.key()}"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` (or, where it does not exist yet, its nearest existing parent) can be written."""
    for path in (folder, *folder.parents):
        if path.exists():
            return path.is_dir() and os.access(path, os.W_OK)
    return False


def _blocks(tokenizer, texts: Sequence[str], length: int) -> torch.Tensor:
    """``texts`` tokenized, each followed by ``<|endoftext|>``, concatenated and cut into rows of
    ``length`` tokens (the last partial row is dropped)."""
    ids: list[int] = []
    eos = tokenizer.convert_tokens_to_ids(EOS)
    for row in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        ids.extend(row)
        ids.append(eos)
    n = len(ids) // length
    return torch.tensor(ids[: n * length], dtype=torch.long).view(n, length)


def build_local_gpt2(folder: str | os.PathLike, settings: LocalGPT2 | None = None, *,
                     tokenizer_texts: Sequence[str] | None = None, pretrain_texts: Sequence[str] | None = None,
                     say: Callable[[str], object] | None = print) -> Path:
    """Train the tokenizer, create the model, pretrain it and ``save_pretrained`` both into ``folder``.

    ``tokenizer_texts`` and ``pretrain_texts`` default to the course data of ``settings`` (see
    :class:`LocalGPT2`); tests pass their own. Everything is written into a temporary folder beside
    ``folder`` and renamed into place at the end, so ``folder`` is complete or absent. ``meta.json``
    records the settings, the seconds each stage took, the pretraining losses and the held-out
    perplexity. Returns ``folder``.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    from .device import seed_everything
    from .files import atomic_write_text
    from .runlog import now
    from .runners import json_safe

    settings = settings or LOCAL_SCALES["laptop"]
    say = say or (lambda *_: None)
    folder = Path(folder)
    t0 = time.perf_counter()
    say(f"Building the course's GPT-2 ({settings.n_layer} x {settings.n_embd}, vocabulary {settings.vocab_size}, "
        f"{settings.pretrain_steps} pretraining steps) into {folder} ...")
    if tokenizer_texts is None:
        tokenizer_texts = _tokenizer_corpus(settings)
    if pretrain_texts is None:
        pretrain_texts = pretraining_corpus(settings)
    t_data = time.perf_counter() - t0

    t1 = time.perf_counter()
    tokenizer = train_tokenizer(tokenizer_texts, settings.vocab_size, settings.n_positions)
    t_tokenizer = time.perf_counter() - t1

    seed_everything(settings.seed)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=settings.n_positions, n_embd=settings.n_embd,
                        n_layer=settings.n_layer, n_head=settings.n_head, bos_token_id=eos, eos_token_id=eos)
    model = GPT2LMHeadModel(config)
    blocks = _blocks(tokenizer, pretrain_texts, settings.n_positions)
    g = torch.Generator().manual_seed(settings.seed)
    blocks = blocks[torch.randperm(len(blocks), generator=g)]
    heldout, train = blocks[: settings.heldout_blocks], blocks[settings.heldout_blocks:]
    if len(train) < settings.batch_size:
        raise ValueError(f"{len(train)} pretraining blocks are fewer than one batch of {settings.batch_size}: "
                         "give more pretraining text")
    t2 = time.perf_counter()
    losses = _pretrain(model, train, settings, g, say=say)
    t_pretrain = time.perf_counter() - t2
    heldout_loss = _mean_loss(model, heldout, settings.batch_size) if len(heldout) else float("nan")

    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {
        "format": BUILD_FORMAT, "key": settings.key(), "settings": dataclasses.asdict(settings),
        "num_parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
        "tokenizer_texts": len(tokenizer_texts), "pretrain_texts": len(pretrain_texts),
        "pretrain_blocks": len(train), "pretrain_tokens": settings.pretrain_tokens,
        "pretrain_epochs": settings.pretrain_steps * settings.batch_size / len(train),
        "losses": losses, "heldout_loss": heldout_loss,
        "heldout_ppl": math.exp(heldout_loss) if math.isfinite(heldout_loss) else None,
        "seconds": {"data": t_data, "tokenizer": t_tokenizer, "pretrain": t_pretrain,
                    "total": time.perf_counter() - t0},
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "built_at": now(),
    }
    atomic_write_text(tmp / "meta.json", json.dumps(json_safe(meta), indent=1) + "\n")
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same build first: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)
        if read_meta(folder) is None:
            raise
    say(f"Built in {meta['seconds']['total']:.0f}s (pretraining {t_pretrain:.0f}s): {describe_model(folder)}.")
    return folder


def _lr_factor(step: int, settings: LocalGPT2) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.pretrain_steps - settings.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _pretrain(model, blocks: torch.Tensor, settings: LocalGPT2, generator: torch.Generator,
              say: Callable[[str], object]) -> list[dict]:
    """AdamW on batches of ``blocks`` (reshuffled at each pass), gradients clipped to norm 1; the
    mean training loss of every tenth of the steps (also said)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, settings))
    model.train()
    order, pos = torch.randperm(len(blocks), generator=generator), 0
    every = max(1, settings.pretrain_steps // 10)
    losses, running = [], []
    for step in range(settings.pretrain_steps):
        if pos + settings.batch_size > len(order):
            order, pos = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[pos: pos + settings.batch_size]]
        pos += settings.batch_size
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == settings.pretrain_steps:
            losses.append({"step": step + 1, "loss": sum(running) / len(running)})
            running = []
            say(f"  pretraining step {step + 1}/{settings.pretrain_steps}: loss {losses[-1]['loss']:.3f}")
    return losses


@torch.no_grad()
def _mean_loss(model, blocks: torch.Tensor, batch_size: int) -> float:
    """Mean next-token loss over full ``blocks`` (every block has the same number of targets)."""
    model.eval()
    losses = [model(input_ids=b, labels=b).loss.item() for b in blocks.split(batch_size)]
    sizes = [len(b) for b in blocks.split(batch_size)]
    return sum(x * n for x, n in zip(losses, sizes, strict=True)) / sum(sizes)
