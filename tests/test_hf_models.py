"""course_lib.hf_models: the course's own GPT-2 (built offline, cached, loaded with from_pretrained) and WikiText-2.

Everything runs offline: HF_HUB_OFFLINE is set and the hub probe raises if anything calls it. The
builds are tiny (a 300-token tokenizer, a 2 x 16 model, a few pretraining steps on a few lines).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

from course_lib import hf_models as hf

TINY = hf.LocalGPT2(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2, tokenizer_lines=200,
                    tokenizer_reviews=20, pretrain_reviews=20, pretrain_steps=12, batch_size=4, lr=3e-3,
                    warmup_steps=2, heldout_blocks=4)
TEXTS = [hf._course_lines("valid")[i] for i in range(1, 400)]
TEXTS = [t for t in TEXTS if t]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was probed")

    monkeypatch.setattr(hf, "_probe_hub", no_network)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "model"
    return hf.build_local_gpt2(folder, TINY, tokenizer_texts=TEXTS, pretrain_texts=TEXTS, say=None)


def test_the_build_writes_a_transformers_model_and_tokenizer(built):
    names = {p.name for p in built.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "meta.json"} <= names
    model = AutoModelForCausalLM.from_pretrained(built)
    tokenizer = AutoTokenizer.from_pretrained(built)
    assert isinstance(model, GPT2LMHeadModel)
    c = model.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_positions, c.vocab_size) == (2, 16, 2, 32, len(tokenizer))
    assert len(tokenizer) == TINY.vocab_size
    assert tokenizer.eos_token == tokenizer.bos_token == hf.EOS and tokenizer.pad_token is None  # as gpt2
    assert c.eos_token_id == c.bos_token_id == tokenizer.eos_token_id
    assert tokenizer.model_max_length == TINY.n_positions
    meta = hf.read_meta(built)
    assert meta["key"] == TINY.key() and meta["settings"] == dataclasses.asdict(TINY)
    assert meta["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert meta["pretrain_tokens"] == 12 * 4 * 32 and set(meta["seconds"]) >= {"tokenizer", "pretrain", "total"}


def test_the_tokenizer_is_byte_level_and_lossless(built):
    tokenizer = AutoTokenizer.from_pretrained(built)
    for text in [TEXTS[0], " Ça coûte 3 € — naïve ✓\n", "<unk> @-@ 1 @,@ 000"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert max(ids) < len(tokenizer)
    assert tokenizer(hf.EOS)["input_ids"] == [tokenizer.eos_token_id]


def test_load_model_and_tokenizer_sets_padding_and_round_trips(built, tmp_path):
    model, tokenizer = hf.load_model_and_tokenizer(built)
    assert tokenizer.pad_token == tokenizer.eos_token and model.config.pad_token_id == model.config.eos_token_id
    # save_pretrained and from_pretrained again: the same weights, the same tokens
    model.save_pretrained(tmp_path / "again")
    tokenizer.save_pretrained(tmp_path / "again")
    model2, tokenizer2 = hf.load_model_and_tokenizer(tmp_path / "again")
    state, state2 = model.state_dict(), model2.state_dict()
    assert set(state) == set(state2) and all(torch.equal(state[k], state2[k]) for k in state)
    assert tokenizer2(TEXTS[3])["input_ids"] == tokenizer(TEXTS[3])["input_ids"]


def test_the_build_is_deterministic_and_pretraining_learns(built, tmp_path):
    again = hf.build_local_gpt2(tmp_path / "again", TINY, tokenizer_texts=TEXTS, pretrain_texts=TEXTS, say=None)
    a, b = (AutoModelForCausalLM.from_pretrained(f).state_dict() for f in (built, again))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (built / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
    meta = hf.read_meta(built)
    losses = [row["loss"] for row in meta["losses"]]
    assert losses[-1] < losses[0] - 0.2
    assert meta["heldout_ppl"] < TINY.vocab_size  # better than a uniform guess


def test_local_gpt2_builds_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path))
    monkeypatch.setattr(hf, "_tokenizer_corpus", lambda settings: TEXTS)
    monkeypatch.setattr(hf, "imdb_reviews", lambda limit, seed=0, source="archive": TEXTS[:limit])
    builds = []
    real_build = hf.build_local_gpt2

    def counting_build(folder, settings, **kwargs):
        builds.append(settings)
        return real_build(folder, settings, **kwargs)

    monkeypatch.setattr(hf, "build_local_gpt2", counting_build)
    folder = hf.local_gpt2(TINY, say=None)
    assert folder == tmp_path / "hf_models" / f"local-gpt2-{TINY.key()}" and hf.read_meta(folder) is not None
    assert hf.local_gpt2(TINY, say=None) == folder and len(builds) == 1  # read from the cache
    other = dataclasses.replace(TINY, pretrain_steps=13)
    assert other.key() != TINY.key()
    assert hf.local_gpt2(other, say=None) != folder and len(builds) == 2
    (folder / "meta.json").unlink()  # an unfinished build is started over
    assert hf.local_gpt2(TINY, say=None) == folder and len(builds) == 3
    assert not list(tmp_path.glob("hf_models/.*tmp*"))  # no temporary folder left behind
    monkeypatch.setitem(hf.LOCAL_SCALES, "fast", TINY)
    said = []
    assert hf.default_model_name("fast", say=said.append) == str(folder) and len(builds) == 3
    assert "fast scale" in said[0] and str(folder) in said[0]
    monkeypatch.setitem(hf.LOCAL_SCALES, "laptop", TINY)
    assert hf.default_model_name("laptop", say=said.append) == str(folder) and len(builds) == 3
    assert "not reachable" in said[1] and str(folder) in said[1]
    with pytest.raises(ValueError, match="Unknown local GPT-2"):
        hf.local_gpt2("huge")


def test_every_setting_changes_the_key():
    for f in dataclasses.fields(hf.LocalGPT2):
        value = getattr(TINY, f.name)
        if isinstance(value, str):
            other = next(v for v in hf.IMDB_SOURCES if v != value)
            changed = dataclasses.replace(TINY, **{f.name: other})
        else:
            changed = dataclasses.replace(TINY, **{f.name: (value or 0) + 1})
        assert changed.key() != TINY.key(), f.name
    assert hf.LOCAL_SCALES["laptop"].key() != hf.LOCAL_SCALES["fast"].key()
    with pytest.raises(ValueError, match="imdb_source"):
        dataclasses.replace(TINY, imdb_source="web")


def test_the_laptop_model_keeps_the_key_of_its_recorded_run():
    # imdb_source was added after the laptop model was built and its run recorded: at its default it
    # is left out of the hash, so the recorded run (and every student's cache) still names this folder
    assert hf.LOCAL_SCALES["laptop"].key() == "9b07bf2caaa0"
    assert hf.LOCAL_SCALES["fast"].imdb_source == "subset"


def test_the_fast_model_reads_the_review_subset(monkeypatch):
    def no_archive():
        raise AssertionError("the fast model read the full IMDB archive")

    monkeypatch.setattr(hf, "_imdb_train_reviews", no_archive)
    reviews = hf.imdb_reviews(50, seed=1, source="subset")
    assert len(reviews) == 50 and len(set(reviews)) == 50 and all("<br" not in r for r in reviews)
    subset = hf._imdb_subset_train_reviews()
    assert len(subset) == 1000 and {label for label, _, _ in subset} == {"neg", "pos"}
    assert reviews == hf.imdb_reviews(50, seed=1, source="subset") != hf.imdb_reviews(50, seed=2, source="subset")
    corpus = hf.pretraining_corpus(hf.LOCAL_SCALES["fast"])
    assert corpus[: hf.LOCAL_SCALES["fast"].pretrain_reviews] == hf.imdb_reviews(
        hf.LOCAL_SCALES["fast"].pretrain_reviews, seed=hf.LOCAL_SCALES["fast"].seed, source="subset")
    with pytest.raises(ValueError, match="source"):
        hf.imdb_reviews(3, source="web")


def test_a_read_only_cache_is_read_and_a_missing_model_built_elsewhere(monkeypatch, tmp_path):
    # the grader's sandbox binds the cache read-only: a model there is used; a missing one is built
    # in a temporary folder (and found there the next time), never written into the cache
    cache, spare = tmp_path / "cache", tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setenv("COURSE_DATA_CACHE", str(cache))
    monkeypatch.setattr("tempfile.tempdir", str(spare))
    monkeypatch.setattr(hf, "_tokenizer_corpus", lambda settings: TEXTS)
    monkeypatch.setattr(hf, "pretraining_corpus", lambda settings: TEXTS)
    built = hf.local_gpt2(TINY, say=None)
    assert built == cache / "hf_models" / f"local-gpt2-{TINY.key()}"
    other = dataclasses.replace(TINY, pretrain_steps=13)
    (cache / "hf_models").chmod(0o555)
    try:
        if hf._writable(cache / "hf_models"):  # root ignores the mode bits: make it read-only for local_gpt2
            monkeypatch.setattr(hf, "_writable", lambda folder: False)
        assert hf.local_gpt2(TINY, say=None) == built  # read from the read-only cache
        said = []
        elsewhere = hf.local_gpt2(other, say=said.append)
        assert elsewhere == spare / "course_lib-hf_models" / f"local-gpt2-{other.key()}"
        assert hf.read_meta(elsewhere)["key"] == other.key() and "read-only" in said[0]
        assert hf.local_gpt2(other, say=None) == elsewhere  # built once
        assert sorted(p.name for p in (cache / "hf_models").iterdir()) == [built.name]
    finally:
        (cache / "hf_models").chmod(0o755)


def test_offline_means_no_network(monkeypatch):
    assert hf.hub_offline() and not hf.hub_reachable()  # _probe_hub raises if it is called
    assert hf.wikitext_source("auto") == "course" and hf.wikitext_source("hub") == "hub"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    assert hf.hub_offline() and not hf.hub_reachable()
    with pytest.raises(ValueError):
        hf.wikitext_source("web")


def test_wikitext_rows_have_the_hubs_layout():
    valid = hf.load_wikitext_texts("validation", source="course")
    assert len(valid) == 3760  # the hub's wikitext-2 validation split has 3,760 rows too
    assert valid[0] == "" and valid[1] == " = Homarus gammarus = \n"
    assert all(t == "" or (t.endswith("\n") and t.strip()) for t in valid)
    tenth = hf.load_wikitext_texts("validation", 0.1, source="course")
    assert tenth == valid[: 3760 // 10]
    ds = hf.load_wikitext("test", 0.01, source="course")
    assert ds.column_names == ["text"] and len(ds) == 4358 // 100
    assert ds[1]["text"] == " = Robert <unk> = \n"
    with pytest.raises(ValueError, match="split"):
        hf.load_wikitext_texts("dev", source="course")
    with pytest.raises(ValueError, match="fraction"):
        hf.load_wikitext_texts("test", 0, source="course")


def test_describe_model(built):
    text = hf.describe_model(built)
    assert "2 layers of 16" in text and "300-token" in text
    assert hf.describe_model("gpt2").startswith("gpt2 from the Hugging Face hub")
    json.dumps(hf.read_meta(built))  # plain JSON


def test_the_hub_path_calls_load_dataset_and_names_gpt2(monkeypatch):
    """Online (simulated: the probe answers yes, load_dataset is replaced): the hub's names, no local build."""
    import datasets

    calls = []

    def fake_load_dataset(*args, split=None, **kwargs):
        calls.append((args, split))
        return datasets.Dataset.from_dict({"text": ["", " = A = \n", " b \n"] * 10})

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf, "_probe_hub", lambda timeout: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hf, "local_gpt2", lambda *a, **k: pytest.fail("built a local model online"))
    assert hf.hub_reachable() and hf.wikitext_source() == "hub"
    assert hf.load_wikitext_texts("train", 0.1) == ["", " = A = \n", " b \n"]
    assert calls == [(("wikitext", "wikitext-2-raw-v1"), "train")]
    hf.load_wikitext("valid")
    assert calls[-1][1] == "validation"
    said = []
    assert hf.default_model_name("laptop", say=said.append) == "gpt2" and "hub" in said[0]
    assert hf.default_model_name("full", say=None) == "gpt2"


def test_the_fast_scale_takes_the_toy_model_without_asking_the_hub(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf, "_probe_hub", lambda timeout: pytest.fail("the fast scale asked the hub"))
    monkeypatch.setattr(hf, "local_gpt2", lambda settings, say=None: tmp_path / settings.key())
    said = []
    assert hf.default_model_name("fast", say=said.append) == str(tmp_path / hf.LOCAL_SCALES["fast"].key())
    assert "fast scale" in said[0]
