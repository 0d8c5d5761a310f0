"""Reference solutions of ``sentiment_and_gpt2`` part 3 (GPT-2 with Hugging Face): instructor material.

The handout's code, with ``transformers`` and ``peft``, corrected where it miscounts:

- :func:`generate_text`: tokenize a prompt, ``model.generate`` (greedy by default), decode.
- :func:`tokenize_dataset`: the handout's ``tokenize_function`` mapped over a ``datasets.Dataset``
  (padding to the tokenizer's ``model_max_length``, truncation, ``labels`` = a copy of ``input_ids``).
  Blank rows (a third of WikiText-2) are dropped: they are all padding, have no token to predict
  and change no correct perplexity.
- :func:`make_collator`: ``DataCollatorForLanguageModeling(tokenizer, mlm=False)``. It rebuilds
  ``labels`` from ``input_ids`` with every padding token set to -100 (GPT-2's padding token is its
  end-of-text token, so that one is ignored too), which the losses skip.
- :func:`evaluate_perplexity`: the exponential of the mean negative log-likelihood **per predicted
  token**: the sum of the NLL of every predicted, non-padding token over the whole dataloader,
  divided by their number. It equals ``exp`` of the model's own loss on a batch without padding.
- :func:`handout_perplexity` (the handout's 3(c), kept to show its error): the same sum of NLL,
  divided by ``attention_mask.sum()``, which counts every real token, including the first of each
  row, which nothing predicts: one token too many per row, so its perplexity is too low, the more
  so for short rows. :func:`per_batch_perplexity` averages the model's per-batch mean loss (what
  ``Trainer``'s ``eval_loss`` does): batches with few tokens weigh as much as full ones.
- :func:`training_arguments`, :func:`finetune_full`, :func:`finetune_lora`: ``Trainer`` with the
  handout's settings (3 epochs, batches of 8, learning rate 5e-5, 500 warm-up steps); LoRA with
  ``peft`` (:func:`lora_model`: r = 64, alpha = 16, dropout 0.1, on GPT-2's attention projection
  ``c_attn``, the target ``peft`` picks for GPT-2 when none is given); :func:`count_trainable`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["generate_text", "tokenize_dataset", "make_collator", "evaluate_perplexity", "handout_perplexity",
           "per_batch_perplexity", "LORA", "lora_model", "count_trainable", "count_parameters",
           "training_arguments", "make_trainer", "finetune_full", "finetune_lora"]

#: The handout's LoRA settings (3(e)).
LORA = {"r": 64, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ("c_attn",)}
#: The handout's training settings (3(d), 3(e)).
HANDOUT_TRAINING = {"epochs": 3, "batch_size": 8, "lr": 5e-5, "warmup_steps": 500}
IGNORE_INDEX = -100


def _device(model) -> torch.device:
    return next(model.parameters()).device


# ---------------------------------------------------------------------------------------------------
# 3(a) generation


def generate_text(model, tokenizer, prompt: str, max_length: int | None = 100, *, max_new_tokens: int | None = None,
                  **generate_kwargs) -> str:
    """The decoded continuation of ``prompt`` (prompt included), greedy unless ``generate_kwargs``
    say otherwise. ``max_length`` counts the prompt's tokens (the handout's call); ``max_new_tokens``,
    when given, is used instead."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt", truncation=True)
    device = _device(model)
    kwargs = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None
              else tokenizer.eos_token_id, **generate_kwargs}
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = max_new_tokens
    else:
        kwargs["max_length"] = max_length
    with torch.no_grad():
        tokens = model.generate(inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device),
                                **kwargs)
    return tokenizer.decode(tokens[0], skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------------
# 3(b) data


def tokenize_dataset(dataset, tokenizer, *, max_length: int | None = None, drop_empty: bool = True):
    """``dataset`` (a ``datasets.Dataset`` with a ``"text"`` column, or a list of strings) tokenized
    as the handout does: padded to ``max_length`` (default: the tokenizer's ``model_max_length``),
    truncated, ``labels`` a copy of ``input_ids``; the ``"text"`` column removed, torch format.
    Rows without text are dropped unless ``drop_empty=False``."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset):
        dataset = Dataset.from_dict({"text": list(dataset)})
    if drop_empty:
        dataset = dataset.filter(lambda row: bool(row["text"].strip()))
    max_length = max_length or tokenizer.model_max_length

    def tokenize_function(examples):
        tokenized = tokenizer(examples["text"], padding="max_length", truncation=True, max_length=max_length)
        tokenized["labels"] = [list(ids) for ids in tokenized["input_ids"]]
        return tokenized

    tokenized = dataset.map(tokenize_function, batched=True, remove_columns=["text"])
    tokenized.set_format("torch")
    return tokenized


def make_collator(tokenizer):
    """The causal language-modelling collator: ``DataCollatorForLanguageModeling(mlm=False)``."""
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)


# ---------------------------------------------------------------------------------------------------
# 3(c) perplexity


def _shifted(model, batch: dict, device: torch.device):
    """(logits of positions 0..T-2, their targets 1..T-1 with -100 where not predicted, attention mask)."""
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch.get("attention_mask")
    attention_mask = attention_mask.to(device) if attention_mask is not None else torch.ones_like(input_ids)
    labels = batch.get("labels")
    labels = labels.to(device) if labels is not None else input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    targets = labels[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return logits[:, :-1].float(), targets, attention_mask


@torch.no_grad()
def evaluate_perplexity(model, dataloader: Iterable[dict], device: torch.device | str | None = None) -> float:
    """Perplexity of ``model`` on ``dataloader``'s batches (``input_ids``, ``attention_mask``, ``labels``):
    ``exp(sum of NLL / number of predicted tokens)``, where token ``t`` of a row is predicted from
    the tokens before it (``t >= 1``) and counts unless its label is -100 or it is padding
    (attention mask 0)."""
    device = torch.device(device) if device is not None else _device(model)
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for batch in dataloader:
        logits, targets, _ = _shifted(model, batch, device)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                              reduction="sum")
        total_nll += nll.item()
        total_tokens += int((targets != IGNORE_INDEX).sum())
    if total_tokens == 0:
        raise ValueError("the dataloader holds no token to predict (every row is padding or one token long)")
    return math.exp(total_nll / total_tokens)


@torch.no_grad()
def handout_perplexity(model, dataloader: Iterable[dict], device: torch.device | str | None = None) -> float:
    """The handout's ``evaluate_perplexity`` (3(c)), kept to show its error: the summed NLL of the
    predicted tokens divided by ``attention_mask.sum()``, one token more per row than were predicted."""
    device = torch.device(device) if device is not None else _device(model)
    model.eval()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    total_loss, total_length = 0.0, 0
    for batch in dataloader:
        input_ids = batch["input_ids"].to(device)
        attention_mask = batch["attention_mask"].to(device)
        labels = batch["labels"].to(device)
        logits = model(input_ids, attention_mask=attention_mask, labels=labels).logits
        shift_logits = logits[..., :-1, :].contiguous()
        shift_labels = labels[..., 1:].contiguous()
        loss = loss_fn(shift_logits.view(-1, shift_logits.size(-1)).float(), shift_labels.view(-1))
        total_loss += loss.item()
        total_length += attention_mask.sum().item()
    return math.exp(total_loss / total_length)


@torch.no_grad()
def per_batch_perplexity(model, dataloader: Iterable[dict], device: torch.device | str | None = None) -> float:
    """``exp`` of the mean over batches of the model's own (per-batch mean) loss: wrong when the
    batches hold different numbers of predicted tokens (what ``Trainer``'s ``eval_loss`` averages)."""
    device = torch.device(device) if device is not None else _device(model)
    model.eval()
    losses = []
    for batch in dataloader:
        batch = {k: v.to(device) for k, v in batch.items()}
        losses.append(model(**batch).loss.item())
    return math.exp(sum(losses) / len(losses))


# ---------------------------------------------------------------------------------------------------
# 3(d), 3(e) fine-tuning


def count_trainable(model) -> int:
    """The number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_parameters(model) -> int:
    """The number of parameters (trainable or frozen)."""
    return sum(p.numel() for p in model.parameters())


def lora_model(model, *, r: int = LORA["r"], lora_alpha: float = LORA["lora_alpha"],
               lora_dropout: float = LORA["lora_dropout"], target_modules: Sequence[str] = LORA["target_modules"]):
    """``model`` with LoRA adapters (``peft.get_peft_model``): rank ``r`` matrices A (r x in) and
    B (out x r) beside each ``target_modules`` layer (GPT-2's ``c_attn``, the fused query/key/value
    projection), scaled by ``lora_alpha / r``; every original weight frozen. GPT-2's layers are
    ``Conv1D`` (weights stored in x out), hence ``fan_in_fan_out=True``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, bias="none", task_type="CAUSAL_LM",
                        target_modules=list(target_modules), fan_in_fan_out=True)
    return get_peft_model(model, config)


def training_arguments(output_dir, *, epochs: int = HANDOUT_TRAINING["epochs"],
                       batch_size: int = HANDOUT_TRAINING["batch_size"], lr: float = HANDOUT_TRAINING["lr"],
                       warmup_steps: int = HANDOUT_TRAINING["warmup_steps"], seed: int = 42, progress: bool = True,
                       **overrides):
    """``TrainingArguments`` with the handout's settings, under ``transformers`` 5 names: training
    loss logged each epoch, validation each epoch (``eval_strategy="epoch"``), no checkpoints
    written (``save_strategy="no"``; the handout saves each epoch), nothing reported to trackers."""
    from transformers import TrainingArguments

    kwargs = dict(output_dir=str(output_dir), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                  per_device_eval_batch_size=batch_size, learning_rate=lr, warmup_steps=warmup_steps,
                  eval_strategy="epoch", logging_strategy="epoch", save_strategy="no", report_to="none",
                  prediction_loss_only=True, label_names=["labels"], seed=seed, data_seed=seed,
                  disable_tqdm=not progress, dataloader_pin_memory=torch.cuda.is_available())
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def make_trainer(model, tokenizer, args, train_dataset, eval_dataset=None, *, callbacks=None):
    """A ``Trainer`` on the tokenized datasets with :func:`make_collator`'s collator."""
    from transformers import Trainer

    return Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   data_collator=make_collator(tokenizer), processing_class=tokenizer, callbacks=callbacks)


def finetune_full(model, tokenizer, train_dataset, eval_dataset=None, *, args, callbacks=None):
    """Fine-tune every parameter of ``model`` with ``Trainer``; returns the trainer (``trainer.model``,
    ``trainer.state.log_history``)."""
    trainer = make_trainer(model, tokenizer, args, train_dataset, eval_dataset, callbacks=callbacks)
    trainer.train()
    return trainer


def finetune_lora(model, tokenizer, train_dataset, eval_dataset=None, *, args, callbacks=None, **lora):
    """Wrap ``model`` with :func:`lora_model` (``lora``: its keyword arguments) and fine-tune the
    adapters with ``Trainer``; returns the trainer (``trainer.model`` is the ``PeftModel``)."""
    trainer = make_trainer(lora_model(model, **lora), tokenizer, args, train_dataset, eval_dataset,
                           callbacks=callbacks)
    trainer.train()
    return trainer
