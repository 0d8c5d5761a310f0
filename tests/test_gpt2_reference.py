"""The reference solutions of sentiment_and_gpt2 part 3 (course_solutions.gpt2), on a toy GPT-2.

Perplexity is checked against an independent per-token computation (each row run alone, without
padding, its log-probabilities gathered by hand) on batches of uneven lengths; the known-wrong
versions (a per-batch average, padding counted, the handout's denominator) fail the same check.
LoRA's trainable parameters are counted from the layer shapes; versions that adapt no module, or
the wrong ones, fail that count. Everything runs offline on the CPU in a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib import hf_models as hf
from course_solutions import gpt2 as ref

TEXTS = [
    " = Valkyria Chronicles III = \n",
    " The game began development in 2010 , carrying over a large portion of the work done on Valkyria Chronicles II . \n",
    " It met with positive sales in Japan , and was praised by both Japanese and western critics . \n",
    " = = Gameplay = = \n",
    " As with previous games in the series , the story is told through comic book @-@ like panels . \n",
    " The film was a lot better than I expected , and the acting was good . \n",
] * 4


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    tok = hf.train_tokenizer(TEXTS, vocab_size=300, model_max_length=32)
    tok.pad_token = tok.eos_token
    return tok


def toy_model(vocab_size: int, n_positions: int = 32, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=16, n_layer=2,
                                       n_head=2, bos_token_id=0, eos_token_id=0, pad_token_id=0))
    return model.eval()


@pytest.fixture(scope="module")
def model(tokenizer):
    return toy_model(len(tokenizer))


def uneven_batches(tokenizer, lengths_per_batch, pad_to=None):
    """Batches of rows of the given token lengths (right-padded with the pad token), labels as the
    collator makes them. Rows are slices of one token stream without the end-of-text token."""
    eos = tokenizer.eos_token_id
    stream = [t for t in tokenizer(" ".join(TEXTS))["input_ids"] if t != eos]
    batches, pos = [], 0
    for lengths in lengths_per_batch:
        width = pad_to or max(lengths)
        ids = torch.full((len(lengths), width), eos, dtype=torch.long)
        mask = torch.zeros((len(lengths), width), dtype=torch.long)
        for i, n in enumerate(lengths):
            ids[i, :n] = torch.tensor(stream[pos: pos + n])
            mask[i, :n] = 1
            pos += n
        labels = ids.masked_fill(mask == 0, -100)
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return batches


@torch.no_grad()
def per_token_ppl(model, batches, *, extra_per_row: int = 0, count_padding: bool = False) -> float:
    """Independent: every row alone, unpadded; NLL of tokens 1..n-1 from log_softmax; exp of the sum over
    the count (``extra_per_row`` and ``count_padding`` give the known-wrong denominators)."""
    nll, count = 0.0, 0
    for b in batches:
        for ids, mask in zip(b["input_ids"], b["attention_mask"], strict=True):
            n = int(mask.sum())
            row = ids[:n].unsqueeze(0)
            logp = torch.log_softmax(model(input_ids=row).logits[0, :-1].double(), dim=-1)
            nll -= float(logp.gather(1, row[0, 1:].unsqueeze(1)).sum())
            count += n - 1 + extra_per_row + (len(ids) - n if count_padding else 0)
    return math.exp(nll / count)


# --------------------------------------------------------------------------------------------------
# wrong versions the checks must catch


@torch.no_grad()
def ppl_padding_counted(model, dataloader):
    """Wrong: the sum of NLL over the real targets divided by every position, padding included."""
    total, count = 0.0, 0
    for b in dataloader:
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        targets = b["labels"][:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum").item()
        count += targets.numel()
    return math.exp(total / count)


@torch.no_grad()
def ppl_padding_as_targets(model, dataloader):
    """Wrong: labels = input_ids, so padding (end-of-text) positions are predicted and counted."""
    total, count = 0.0, 0
    for b in dataloader:
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        targets = b["input_ids"][:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum").item()
        count += targets.numel()
    return math.exp(total / count)


WRONG_PPL = {"per-batch average": ref.per_batch_perplexity, "handout's denominator": ref.handout_perplexity,
             "padding counted": ppl_padding_counted, "padding as targets": ppl_padding_as_targets}

LENGTHS = [[3, 17, 9, 30], [30, 30], [2, 5]]  # uneven rows, and batches holding very different token counts


def check_perplexity(fn, model, tokenizer) -> None:
    """The check a test cell makes: equal to the independent per-token value on uneven batches."""
    batches = uneven_batches(tokenizer, LENGTHS)
    assert fn(model, batches) == pytest.approx(per_token_ppl(model, batches), rel=1e-4)


def test_evaluate_perplexity_equals_the_models_loss_without_padding(model, tokenizer):
    batches = uneven_batches(tokenizer, [[20, 20, 20], [20, 20, 20]])
    with torch.no_grad():
        losses = [model(**b).loss.item() for b in batches]
    expected = math.exp(sum(losses) / len(losses))  # equal token counts: the batch mean is the token mean
    assert ref.evaluate_perplexity(model, batches) == pytest.approx(expected, rel=1e-5)
    assert ref.evaluate_perplexity(model, batches) == pytest.approx(per_token_ppl(model, batches), rel=1e-5)


def test_evaluate_perplexity_is_token_weighted_and_ignores_padding(model, tokenizer):
    check_perplexity(ref.evaluate_perplexity, model, tokenizer)
    # the same rows padded much further give the same value (right padding changes no real token's logits)
    batches = uneven_batches(tokenizer, LENGTHS, pad_to=32)
    assert ref.evaluate_perplexity(model, batches) == pytest.approx(per_token_ppl(model, batches), rel=1e-4)
    # labels that forget the padding are repaired by the attention mask
    unmasked = [{**b, "labels": b["input_ids"].clone()} for b in batches]
    assert ref.evaluate_perplexity(model, unmasked) == pytest.approx(per_token_ppl(model, batches), rel=1e-4)


@pytest.mark.parametrize("name", list(WRONG_PPL))
def test_wrong_perplexities_fail_the_check(name, model, tokenizer):
    with pytest.raises(AssertionError):
        check_perplexity(WRONG_PPL[name], model, tokenizer)


def test_handout_perplexity_counts_one_token_per_row_too_many(model, tokenizer):
    batches = uneven_batches(tokenizer, LENGTHS)
    handout, correct = ref.handout_perplexity(model, batches), ref.evaluate_perplexity(model, batches)
    assert handout == pytest.approx(per_token_ppl(model, batches, extra_per_row=1), rel=1e-4)
    assert handout < correct * 0.9  # short rows: a visible difference
    assert ppl_padding_counted(model, batches) == pytest.approx(per_token_ppl(model, batches, count_padding=True),
                                                                rel=1e-4)


def test_tokenize_dataset_and_collator(tokenizer):
    texts = ["", TEXTS[0], " \n", TEXTS[1], TEXTS[4] * 3]
    ds = ref.tokenize_dataset(texts, tokenizer)
    assert len(ds) == 3 and set(ds.column_names) == {"input_ids", "attention_mask", "labels"}
    rows = ds[:]
    assert rows["input_ids"].shape == (3, tokenizer.model_max_length)
    assert torch.equal(rows["labels"], rows["input_ids"])
    assert rows["attention_mask"][2].sum() == tokenizer.model_max_length  # truncated to the context
    expected = tokenizer(TEXTS[0])["input_ids"]
    assert rows["input_ids"][0, : len(expected)].tolist() == expected
    assert rows["attention_mask"][0].sum() == len(expected)
    assert len(ref.tokenize_dataset(texts, tokenizer, drop_empty=False)) == 5
    batch = ref.make_collator(tokenizer)([ds[i] for i in range(3)])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert torch.equal(batch["labels"] == -100, batch["attention_mask"] == 0)  # padding is never a target
    loader = DataLoader(ds, batch_size=2, collate_fn=ref.make_collator(tokenizer))
    model = toy_model(len(tokenizer))
    rows = [{k: v[i: i + 1] for k, v in batch.items()} for i in range(3)]
    assert ref.evaluate_perplexity(model, loader) == pytest.approx(per_token_ppl(model, rows), rel=1e-4)


# --------------------------------------------------------------------------------------------------
# LoRA


def expected_lora_parameters(model, r: int, names=("c_attn",)) -> int:
    """r * (in + out) for every adapted layer (A is r x in, B is out x r); GPT-2's Conv1D weights are in x out."""
    total = 0
    for name, module in model.named_modules():
        if name.split(".")[-1] in names and hasattr(module, "weight"):
            fan_in, fan_out = module.weight.shape
            total += r * (fan_in + fan_out)
    return total


def base_weights(model) -> dict:
    """The original model's weights under their plain names (LoRA wraps a layer as ``<name>.base_layer``)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return {k.replace(".base_layer", ""): v.clone() for k, v in model.state_dict().items() if "lora_" not in k}


def lora_adapts_no_module(model):
    """Wrong: every weight frozen, no adapter added."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lora_on_the_wrong_layers(model):
    """Wrong: adapters on the projections after attention and in the MLP, not on c_attn."""
    return ref.lora_model(model, target_modules=["c_proj"])


def lora_without_freezing(model):
    """Wrong: the model returned as it is, every weight trainable."""
    return model


def check_lora(fn) -> None:
    model = toy_model(300)
    expected = expected_lora_parameters(model, 64)
    assert expected == 2 * 64 * (16 + 48)
    adapted = fn(model)
    assert ref.count_trainable(adapted) == expected


def test_lora_trains_only_the_adapters():
    check_lora(ref.lora_model)
    base = toy_model(300)
    before = base_weights(base)
    adapted = ref.lora_model(toy_model(300))
    names = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert names and all("lora_A" in n or "lora_B" in n for n in names)
    assert all(".c_attn." in n for n in names)
    assert ref.count_parameters(adapted) == ref.count_parameters(base) + ref.count_trainable(adapted)
    config = adapted.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (64, 16, 0.1)
    ids = torch.randint(0, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    adapted.eval()
    with torch.no_grad():  # B starts at zero: the adapted model computes what the base model does
        assert torch.allclose(adapted(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-6)
    adapted.train()
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    adapted(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = base_weights(adapted)
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base weights did not move


@pytest.mark.parametrize("wrong", [lora_adapts_no_module, lora_on_the_wrong_layers, lora_without_freezing])
def test_wrong_lora_fails_the_check(wrong):
    with pytest.raises(AssertionError):
        check_lora(wrong)


# --------------------------------------------------------------------------------------------------
# generation and fine-tuning


def test_generate_text_is_greedy_and_deterministic(model, tokenizer):
    prompt = " The game began"
    text = ref.generate_text(model, tokenizer, prompt, max_new_tokens=8)
    assert text == ref.generate_text(model, tokenizer, prompt, max_new_tokens=8)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # independent greedy decoding
        for _ in range(8):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert text == tokenizer.decode(ids[0], skip_special_tokens=True)
    assert text.startswith(prompt)
    n_prompt = tokenizer(prompt, return_tensors="pt")["input_ids"].shape[1]
    assert ref.generate_text(model, tokenizer, prompt, n_prompt + 8) == text  # max_length counts the prompt


@pytest.mark.parametrize("method", ["full", "lora"])
def test_finetune_with_trainer(method, tokenizer, tmp_path):
    train = ref.tokenize_dataset(TEXTS[:8], tokenizer)
    model = toy_model(len(tokenizer))
    start = base_weights(model)
    args = ref.training_arguments(tmp_path, epochs=1, batch_size=4, lr=1e-2, warmup_steps=0, progress=False,
                                  eval_strategy="no", use_cpu=True)
    finetune = ref.finetune_full if method == "full" else ref.finetune_lora
    trainer = finetune(model, tokenizer, train, args=args)
    assert trainer.state.global_step == 2
    assert [row["epoch"] for row in trainer.state.log_history if "loss" in row] == [1]
    end = base_weights(trainer.model)
    assert set(end) == set(start)
    changed = {k for k, v in end.items() if not torch.equal(v, start[k])}
    if method == "full":
        assert "transformer.h.0.attn.c_attn.weight" in changed and "lm_head.weight" in changed
    else:
        assert not changed  # the base model's weights stay; only the adapters moved
        assert ref.count_trainable(trainer.model) == expected_lora_parameters(model, 64)
