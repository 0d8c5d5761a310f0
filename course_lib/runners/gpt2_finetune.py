"""Fine-tune GPT-2 on WikiText-2, fully and with LoRA, and compare (``sentiment_and_gpt2`` part 3).

The handout fine-tunes ``gpt2`` on 10 % of ``wikitext-2-raw-v1`` with ``transformers.Trainer``, once
updating every parameter and once with LoRA adapters (``peft``: r = 64, alpha 16, dropout 0.1),
and compares validation perplexity (42.99 before, 27.34 full, 30.29 LoRA), fine-tuning time
(14.5 and 8.7 minutes) and the number of trained parameters. The notebook and the command line
share this runner::

    from course_lib.runners import gpt2_finetune as gf
    results = gf.run(evaluate_perplexity=evaluate_perplexity, lora_model=add_lora,
                     tokenize_dataset=tokenize_dataset, generate_text=generate_text)
    gf.results_table(results);  gf.conclusions(results)
    results["lora"].sample, results["full"].history, results["full"].model

    python -m course_lib.runners.gpt2_finetune --list                 # the settings of each scale
    python -m course_lib.runners.gpt2_finetune --scale laptop         # reference code (instructors)

**The three methods** (``METHODS``): ``before`` (the model as loaded), ``full`` (every parameter
trained) and ``lora`` (adapters on ``c_attn`` only), each evaluated on the same validation rows
with the notebook's ``evaluate_perplexity`` (token-weighted: the exponential of the mean NLL per
predicted token) and, for comparison, with the handout's version (:func:`course_solutions.gpt2.
handout_perplexity`, too low by one token per row). Each fine-tuning starts from a fresh copy of the
model and logs its validation perplexity after every epoch (a ``TrainerCallback``; ``Trainer``'s own
evaluation is switched off so the rows are not evaluated twice).

**Scales** (:func:`course_lib.device.scale`, ``--scale``; one code path for all three):

- ``full`` (the default with CUDA): ``gpt2`` from the hub and ``wikitext-2-raw-v1``, the handout's
  settings (10 % of each split, 3 epochs, batches of 8, learning rate 5e-5, 500 warm-up steps,
  rows padded to 1,024 tokens). Offline it falls back on the laptop model (and says so).
- ``laptop`` (the default without CUDA): the course's own small GPT-2 (:func:`course_lib.hf_models.
  local_gpt2`: 4 layers of 128, 1.9 million parameters, pretrained on IMDB reviews and WikiText-2
  rows outside the handout's 10 %, built once and cached: about 10 minutes, reported apart) on the
  course's tokenized WikiText-2, ``LAPTOP``'s slice and settings. Recorded (``course_solutions/
  recorded/gpt2_finetune-laptop.json``, one torch thread on a 2-core CPU shared with other jobs):
  perplexity 280 before, 216 after full fine-tuning, 270 after LoRA (131,072 trained parameters,
  7 % of the model); ``LAPTOP_MINUTES`` for the whole comparison (about 8 minutes of CPU time).
  LoRA on ``c_attn`` gains much less here than on ``gpt2`` (30.3 against 27.3 there): the small
  model's embeddings and MLPs, which only full fine-tuning trains, have more left to learn.
- ``fast`` (``COURSE_FAST=1``): a toy GPT-2 that builds in seconds and a few dozen rows: checks that
  everything runs, not results.

Each method logs into ``<log_dir>/<scale>/<method>/`` (:class:`course_lib.runlog.RunLog`: ``meta.json``,
``epochs.jsonl``, ``result.json`` and the fine-tuned weights with ``save_pretrained``): a finished
method is read back, not trained again, unless its settings or the code of the passed functions
changed. ``Trainer`` has its own loop, so an interrupted fine-tuning starts over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .. import hf_models as hf
from ..device import SCALES, describe_device, get_device, seed_everything
from ..device import scale as current_scale
from ..files import atomic_write_text
from ..runlog import RunLog, code_fingerprint, now, read_json, write_jsonl
from . import json_safe, reference_layers, runs_dir, with_references

__all__ = ["Config", "MethodResult", "METHODS", "FULL", "LAPTOP", "FAST", "config_for", "run", "results_table",
           "conclusions", "record", "default_log_dir", "main"]

ASSIGNMENT = "gpt2_finetune"
LOG_FORMAT = 1
METHODS = ("before", "full", "lora")
LABELS = {"before": "Before fine-tuning", "full": "Full fine-tuning", "lora": "LoRA fine-tuning"}
#: The handout's numbers (gpt2, 10 % of wikitext-2-raw-v1, on a GPU).
HANDOUT = {"before": 42.9958610534668, "full": 27.341890335083008, "lora": 30.291595458984375,
           "minutes": {"full": 14.5, "lora": 8.75}}
PROMPT = "GPT-2 is a language model based on transformer developed by OpenAI"


@dataclass(frozen=True)
class Config:
    """The comparison's settings. ``model``: ``"gpt2"`` (the hub) or ``"local:<scale>"`` (the
    course's GPT-2 of :data:`course_lib.hf_models.LOCAL_SCALES`); ``data``: ``"auto"``, ``"hub"`` or
    ``"course"`` (:func:`course_lib.hf_models.wikitext_source`); ``train_fraction``/``valid_fraction``:
    the first rows of each split as the handout selects them, then blank rows dropped and at most
    ``train_rows``/``valid_rows`` kept (None: all); ``max_length``: tokens per row (None: the
    tokenizer's ``model_max_length``). ``lr`` is used for both fine-tunings, as in the handout."""

    scale: str = "full"
    model: str = "gpt2"
    data: str = "auto"
    train_fraction: float | None = 0.1
    valid_fraction: float | None = 0.1
    train_rows: int | None = None
    valid_rows: int | None = None
    max_length: int | None = None
    epochs: int = 3
    batch_size: int = 8
    eval_batch_size: int = 4
    lr: float = 5e-5
    warmup_steps: int = 500
    weight_decay: float = 0.0
    lora_r: int = 64
    lora_alpha: float = 16
    lora_dropout: float = 0.1
    seed: int = 42
    prompt: str = PROMPT
    generate_max_length: int = 100
    device: str = "auto"

    def fingerprint(self) -> dict:
        fields = dataclasses.asdict(self)
        fields.pop("device")
        return fields


#: The handout's settings (a GPU and the hub).
FULL = Config()
#: The laptop scale: the course's small GPT-2 on the tokenized WikiText-2, the handout's 10 % of
#: each split, of which the first 2,000 non-blank training rows (about 150,000 tokens, 256,000 with
#: the padding to 128) and all the validation rows; the handout's 3 epochs, at learning rate 1e-3
#: (5e-5 barely moves a 2-million-parameter model), 30 warm-up steps.
LAPTOP = {"model": "local:laptop", "data": "course", "train_rows": 2000, "lr": 1e-3, "warmup_steps": 30,
          "eval_batch_size": 16}
#: Measured minutes of the three methods together at the laptop scale (the cached model's build
#: excluded), wall clock on a 2-core CPU shared with other jobs (CPU time of the process: about 8).
LAPTOP_MINUTES = 16
#: The fast scale: the toy GPT-2, a few dozen rows, 2 epochs.
FAST = {"model": "local:fast", "data": "course", "valid_fraction": None, "train_rows": 48, "valid_rows": 24,
        "epochs": 2, "batch_size": 8, "eval_batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "generate_max_length": 64}


def config_for(scale: str | None = None) -> Config:
    """The :class:`Config` of ``scale`` (default: :func:`course_lib.device.scale`)."""
    scale = scale or current_scale()
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}: use one of {', '.join(SCALES)}.")
    changes = {"laptop": LAPTOP, "fast": FAST, "full": {}}[scale]
    return dataclasses.replace(FULL, scale=scale, **changes)


@dataclass
class MethodResult:
    """One method: validation perplexity (``ppl``, the notebook's ``evaluate_perplexity``) and the
    handout's (``handout_ppl``), parameters, seconds of fine-tuning (evaluation excluded), the
    per-epoch ``history`` (``epoch``, ``train_loss``, ``valid_ppl``, ``seconds``), generated text.

    ``train_cpu_seconds``: the CPU time of the process over the same span, steadier than the wall
    clock on a shared CPU."""

    method: str
    ppl: float
    handout_ppl: float
    trainable: int
    parameters: int
    train_seconds: float
    train_cpu_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    sample: str = ""
    log_dir: Path | None = None
    model: object | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return LABELS[self.method]

    def to_dict(self) -> dict:
        return json_safe({k: v for k, v in dataclasses.asdict(self).items() if k not in ("model", "log_dir")})


class Results(dict):
    """``{method: MethodResult}`` plus what the run used: ``config``, ``model_name`` (``"gpt2"`` or
    ``"local"``), ``model_description``, ``model_build`` (the local model's ``meta.json``: its build
    seconds), ``rows`` (training and validation rows and tokens)."""

    def __init__(self, *, config: Config, model_name: str, model_description: str = "",
                 model_build: dict | None = None, rows: dict | None = None):
        super().__init__()
        self.config = config
        self.model_name = model_name
        self.model_description = model_description
        self.model_build = model_build
        self.rows = rows or {}


# ---------------------------------------------------------------------------------------------------
# functions: the notebook's, or the references (instructors)


_REFERENCE = "course_solutions.gpt2"
_ADVICE = ("Pass your own (evaluate_perplexity=..., lora_model=..., tokenize_dataset=..., generate_text=...), "
           "as the notebook does.")


def _reference():
    return reference_layers(_REFERENCE, _ADVICE)


def _functions(**given) -> dict:
    return with_references(given, module=_REFERENCE, advice=_ADVICE)


def default_log_dir() -> Path:
    """``COURSE_RUNS_DIR`` or ``./runs``, then ``gpt2_finetune``."""
    return runs_dir(ASSIGNMENT)


def _model_name(config: Config, say: Callable) -> str:
    if config.model.startswith("local:"):
        return str(hf.local_gpt2(config.model.split(":", 1)[1], say=say))
    if config.model == hf.HUB_MODEL and not hf.hub_reachable():
        say("The Hugging Face hub is not reachable: using the course's laptop GPT-2 instead of gpt2.")
        return str(hf.local_gpt2("laptop", say=say))
    return config.model


# ---------------------------------------------------------------------------------------------------
# the run


def _quiet_hf():
    """Fewer progress bars and notices from datasets and transformers (warnings stay)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def run(
    scale: str | None = None,
    *,
    evaluate_perplexity: Callable | None = None,
    lora_model: Callable | None = None,
    tokenize_dataset: Callable | None = None,
    generate_text: Callable | None = None,
    methods: Sequence[str] = METHODS,
    config: Config | None = None,
    log_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], object] | None = print,
) -> Results:
    """Evaluate the model before fine-tuning, fine-tune it fully and with LoRA, evaluate each.

    ``evaluate_perplexity(model, dataloader) -> float``, ``lora_model(model) -> PeftModel``,
    ``tokenize_dataset(dataset, tokenizer) -> tokenized datasets.Dataset`` (``input_ids``,
    ``attention_mask``, ``labels``) and ``generate_text(model, tokenizer, prompt, max_length) -> str``
    are the notebook's; those not given are the references of ``course_solutions`` (instructor
    material). ``config`` overrides the scale's settings; ``log_dir``: the folder of the runs
    (default ``runs/gpt2_finetune``; each method in ``<log_dir>/<scale>/<method>``); ``resume=False``
    moves earlier logs aside.
    """
    from torch.utils.data import DataLoader

    config = config or config_for(scale)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown method(s) {sorted(unknown)}: use {', '.join(METHODS)}")
    fns = _functions(evaluate_perplexity=evaluate_perplexity, lora_model=lora_model,
                     tokenize_dataset=tokenize_dataset, generate_text=generate_text)
    ref = _reference_or_none()
    say = log or (lambda *_: None)
    _quiet_hf()
    device = get_device(None if config.device in ("", "auto") else config.device)
    name = _model_name(config, say)
    model, tokenizer = hf.load_model_and_tokenizer(name)
    results = Results(config=config, model_name=name if name == hf.HUB_MODEL else "local",
                      model_description=hf.describe_model(name), model_build=hf.read_meta(name))
    skip = ((results.model_build or {}).get("settings") or {}).get("pretrain_wikitext_skip")
    if skip and (config.train_fraction is None or config.train_fraction > skip):
        say(f"Warning: the local model was pretrained on the WikiText-2 training rows after the first {skip:.0%}; "
            f"fine-tuning on train_fraction={config.train_fraction} repeats some of them.")
    source = hf.wikitext_source(config.data)
    datasets_ = {}
    for split, fraction, rows in (("train", config.train_fraction, config.train_rows),
                                  ("validation", config.valid_fraction, config.valid_rows)):
        texts = [t for t in hf.load_wikitext_texts(split, fraction, source=source) if t.strip()][:rows]
        datasets_[split] = fns["tokenize_dataset"](_as_dataset(texts), tokenizer)
    train_ds, valid_ds = datasets_["train"], datasets_["validation"]
    collator = _collator(tokenizer)
    valid_loader = DataLoader(valid_ds, batch_size=config.eval_batch_size, collate_fn=collator)
    real_tokens = {k: sum(int(sum(m)) for m in _column(v, "attention_mask")) for k, v in datasets_.items()}
    results.rows = {"source": source, "train_rows": len(train_ds), "valid_rows": len(valid_ds),
                    "row_length": max(len(ids) for ids in _column(train_ds, "input_ids")),
                    "train_tokens": real_tokens["train"], "valid_tokens": real_tokens["validation"]}
    say(f"{results.model_description}; WikiText-2 from {'the hub' if source == 'hub' else 'the course data'}: "
        f"{len(train_ds):,} training rows ({real_tokens['train']:,} tokens), {len(valid_ds):,} validation rows "
        f"({real_tokens['validation']:,} tokens), padded to {results.rows['row_length']}; on {device}")

    code = code_fingerprint(*(fns[k] for k in sorted(fns)))
    base = {**config.fingerprint(), "model_name": results.model_name,
            "model_key": (results.model_build or {}).get("key"), "code": code, "rows": results.rows}
    root = Path(log_dir) if log_dir is not None else default_log_dir()
    for method in methods:
        folder = root / config.scale / method
        runlog = RunLog(folder, label=f"{method} [{config.scale}]", log_format=LOG_FORMAT, say=say)
        runlog.open({**base, "method": method}, resume=resume)
        done = read_json(folder / "result.json") if runlog.meta is not None else None
        if done is not None:
            result = MethodResult(**{k: v for k, v in done.items() if k in _FIELDS}, log_dir=folder)
            result.model = _load_back(method, name, folder, device)
            say(f"{LABELS[method]}: read back from {folder}: perplexity {result.ppl:.2f}")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            write_jsonl(runlog.epochs_path, [])
            runlog.write_meta({"runner": f"course_lib.runners.{ASSIGNMENT}", "config": dataclasses.asdict(config),
                               "fingerprint": {**base, "method": method}, "model": name,
                               "device": str(device), "device_description": describe_device(device),
                               "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
                               "python_version": platform.python_version(), "platform": platform.platform(),
                               "started_at": now()})
            result = _run_method(method, config, name, tokenizer, train_ds, valid_loader, fns, ref, device,
                                 runlog, progress=progress, say=say)
            result.log_dir = folder
            atomic_write_text(folder / "result.json", json.dumps(result.to_dict(), indent=1) + "\n")
        results[method] = result
    del model
    return results


_FIELDS = {"method", "ppl", "handout_ppl", "trainable", "parameters", "train_seconds", "train_cpu_seconds", "history",
           "sample"}


def _column(dataset, name: str) -> list:
    """A column of a tokenized dataset as a list of rows (lists of ints)."""
    return dataset.with_format(None)[name]


def _as_dataset(texts: list[str]):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts})


def _collator(tokenizer):
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)


def _reference_or_none():
    try:
        return _reference()
    except RuntimeError:
        return None


def _handout_ppl(ref, model, loader) -> float:
    """The handout's perplexity (for the comparison), NaN without the reference package."""
    return ref.handout_perplexity(model, loader) if ref is not None else float("nan")


def _load_back(method: str, name: str, folder: Path, device: torch.device):
    """The fine-tuned model saved in ``folder/model`` (None for ``before`` or when absent)."""
    if method == "before":
        return hf.load_model_and_tokenizer(name)[0].to(device).eval()
    path = folder / "model"
    if not path.is_dir():
        return None
    if method == "lora":
        from peft import PeftModel

        return PeftModel.from_pretrained(hf.load_model_and_tokenizer(name)[0], str(path)).to(device).eval()
    return hf.load_model_and_tokenizer(path)[0].to(device).eval()


def _run_method(method: str, config: Config, name: str, tokenizer, train_ds, valid_loader, fns: dict, ref, device,
                runlog: RunLog, *, progress: bool, say: Callable) -> MethodResult:
    seed_everything(config.seed)
    model = hf.load_model_and_tokenizer(name)[0].to(device)
    parameters = sum(p.numel() for p in model.parameters())
    history: list[dict] = []
    train_seconds = train_cpu_seconds = 0.0
    if method != "before":
        if method == "lora":
            model = fns["lora_model"](model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        say(f"{LABELS[method]}: {trainable:,} of {parameters:,} parameters trained "
            f"({100 * trainable / parameters:.2f} %), {config.epochs} epochs")
        train_seconds, train_cpu_seconds = _finetune(model, config, tokenizer, train_ds, valid_loader, fns, runlog, history,
                                  progress=progress, say=say, label=LABELS[method])
    else:
        trainable = 0
    t0 = time.perf_counter()
    ppl = float(fns["evaluate_perplexity"](model, valid_loader))
    handout_ppl = _handout_ppl(ref, model, valid_loader)
    eval_seconds = time.perf_counter() - t0
    sample = fns["generate_text"](model, tokenizer, config.prompt, config.generate_max_length)
    sample = "" if sample is None else str(sample)  # the handout's version prints and returns nothing
    if method != "before":  # a complete model folder (adapters only for LoRA): from_pretrained reads it
        model.save_pretrained(runlog.folder / "model")
        tokenizer.save_pretrained(runlog.folder / "model")
    say(f"{LABELS[method]}: validation perplexity {ppl:.2f} (the handout's count: {handout_ppl:.2f}); "
        f"fine-tuning {train_seconds / 60:.1f} min, evaluation {eval_seconds:.0f}s")
    return MethodResult(method=method, ppl=ppl, handout_ppl=handout_ppl, trainable=trainable, parameters=parameters,
                        train_seconds=train_seconds, train_cpu_seconds=train_cpu_seconds, history=history,
                        sample=sample, model=model.eval())


def _finetune(model, config: Config, tokenizer, train_ds, valid_loader, fns: dict, runlog: RunLog,
              history: list[dict], *, progress: bool, say: Callable, label: str) -> tuple[float, float]:
    """``Trainer`` on ``train_ds``; after each epoch the notebook's ``evaluate_perplexity`` on the
    validation rows (a callback, its time not counted). Returns the seconds of training, wall clock
    and CPU time of the process."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    evaluate = fns["evaluate_perplexity"]

    class EpochPerplexity(TrainerCallback):
        eval_seconds = 0.0
        eval_cpu_seconds = 0.0

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            ppl = float(evaluate(model, valid_loader))
            spent = time.perf_counter() - t0
            EpochPerplexity.eval_seconds += spent
            EpochPerplexity.eval_cpu_seconds += time.process_time() - c0
            model.train()
            history.append({"epoch": len(history) + 1, "step": state.global_step, "valid_ppl": ppl,
                            "eval_seconds": spent, "finished_at": now()})
            write_jsonl(runlog.epochs_path, history)
            say(f"{label} epoch {len(history)}/{config.epochs}: validation perplexity {ppl:.2f}")
            return control

    args = TrainingArguments(
        output_dir=str(runlog.folder / "trainer"), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.lr, warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        eval_strategy="no", logging_strategy="epoch", save_strategy="no", report_to="none",
        label_names=["labels"], seed=config.seed, data_seed=config.seed, disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(), use_cpu=model.device.type == "cpu")
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=_collator(tokenizer),
                      callbacks=[EpochPerplexity()])
    trainer.remove_callback(PrinterCallback)  # without progress bars Trainer prints its logs: ours say enough
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    seconds = time.perf_counter() - t0 - EpochPerplexity.eval_seconds
    cpu_seconds = time.process_time() - c0 - EpochPerplexity.eval_cpu_seconds
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    for row, loss in zip(history, losses, strict=False):
        row["train_loss"] = loss
        row["train_ppl"] = math.exp(loss)
    write_jsonl(runlog.epochs_path, history)
    return seconds, cpu_seconds


# ---------------------------------------------------------------------------------------------------
# what students see


def _as_method(r) -> dict:
    return r.to_dict() if isinstance(r, MethodResult) else r


def results_table(results: dict) -> pd.DataFrame:
    """The comparison: per method the trained parameters (and their share), minutes of fine-tuning
    and validation perplexity (and the handout's miscounted one)."""
    rows = []
    for method, r in results.items():
        r = _as_method(r)
        rows.append({"Method": LABELS[method], "Trainable parameters": r["trainable"],
                     "Share of parameters (%)": 100 * r["trainable"] / r["parameters"],
                     "Minutes": r["train_seconds"] / 60, "Validation perplexity": r["ppl"],
                     "Handout's count": r["handout_ppl"]})
    return pd.DataFrame(rows).set_index("Method")


def conclusions(results: dict) -> dict:
    """What the comparison shows, each checked (``results`` maps the methods to MethodResults or
    to recorded dicts):

    - ``finetuning_lowers_perplexity``: both fine-tunings end below the perplexity before;
    - ``full_beats_lora``: full fine-tuning reaches the lower perplexity (before > LoRA > full,
      the handout's ordering);
    - ``lora_trains_few_parameters``: LoRA trains under 10 % of the parameters full fine-tuning trains;
    - ``lora_is_faster``: LoRA's fine-tuning took less time (CPU time of the process where both
      have it: on a shared CPU the wall clock depends on the other processes);
    - ``handout_count_is_too_low``: the handout's perplexity is below the token-weighted one (it
      divides by one token per row too many).
    """
    r = {m: _as_method(results[m]) for m in METHODS}
    ppl = {m: r[m]["ppl"] for m in METHODS}
    checks = {
        "finetuning_lowers_perplexity": ppl["full"] < ppl["before"] and ppl["lora"] < ppl["before"],
        "full_beats_lora": ppl["full"] < ppl["lora"],
        "lora_trains_few_parameters": 0 < r["lora"]["trainable"] < 0.1 * r["full"]["trainable"],
        "lora_is_faster": _faster(r["lora"], r["full"]),
        "handout_count_is_too_low": all(r[m]["handout_ppl"] is not None and r[m]["handout_ppl"] < ppl[m]
                                        for m in METHODS),
    }
    return {"ppl": ppl, "trainable": {m: r[m]["trainable"] for m in METHODS},
            "minutes": {m: r[m]["train_seconds"] / 60 for m in METHODS}, "checks": checks}


def _faster(a: dict, b: dict) -> bool:
    """``a`` trained in less time than ``b``: CPU seconds where both have them, else wall-clock seconds."""
    if a.get("train_cpu_seconds") and b.get("train_cpu_seconds"):
        return a["train_cpu_seconds"] < b["train_cpu_seconds"]
    return a["train_seconds"] < b["train_seconds"]


# ---------------------------------------------------------------------------------------------------
# command line


def record(results: Results, path: str | os.PathLike, *, total_seconds: float | None = None,
           total_cpu_seconds: float | None = None) -> dict:
    """Write the comparison (settings, model and its build, rows, each method's history, perplexities,
    parameters, minutes, samples) and its :func:`conclusions` to ``path`` (JSON; instructor material)."""
    if set(METHODS) - set(results):
        raise ValueError(f"record() needs the three methods {METHODS}")
    build = results.model_build or {}
    payload = {
        "assignment": ASSIGNMENT, "scale": results.config.scale, "recorded_at": now(),
        "config": dataclasses.asdict(results.config), "model_name": results.model_name,
        "model_description": results.model_description,
        "model_build": {k: build.get(k) for k in ("key", "settings", "num_parameters", "pretrain_tokens",
                                                  "heldout_ppl", "seconds", "torch_threads", "built_at")},
        "rows": results.rows, "methods": {m: results[m].to_dict() for m in METHODS},
        "fine_tuning_minutes": sum(results[m].train_seconds for m in METHODS) / 60,
        "fine_tuning_cpu_minutes": sum(results[m].train_cpu_seconds for m in METHODS) / 60,
        "total_minutes": total_seconds / 60 if total_seconds is not None else None,
        "total_cpu_minutes": total_cpu_seconds / 60 if total_cpu_seconds is not None else None,
        "handout": HANDOUT, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "device": describe_device(get_device()),
        "conclusions": conclusions(results),
    }
    try:
        import peft
        import transformers

        payload["versions"] = {"transformers": transformers.__version__, "peft": peft.__version__}
    except ImportError:
        pass
    atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1) + "\n")
    return payload


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.runners.gpt2_finetune",
        description="Fine-tune GPT-2 on WikiText-2 fully and with LoRA using the reference code (course_solutions, "
                    "instructor material), and compare. Students run the notebook.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recording the laptop scale (instructors):\n"
               "  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m course_lib.runners.gpt2_finetune --scale laptop \\\n"
               "      --record course_solutions/recorded/gpt2_finetune-laptop.json")
    parser.add_argument("--scale", choices=SCALES, help="fast, laptop or full (default: COURSE_SCALE, ...)")
    parser.add_argument("--list", action="store_true", help="print the settings of the scale")
    parser.add_argument("--log-dir", help="folder of the runs (default: runs/gpt2_finetune)")
    parser.add_argument("--no-resume", action="store_true", help="start over (earlier logs are moved aside)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--record", metavar="PATH", help="write the comparison and its conclusions to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> Results | None:
    args = build_parser().parse_args(argv)
    if args.list:
        print(config_for(args.scale))
        return None
    t0, c0 = time.perf_counter(), time.process_time()
    results = run(args.scale, log_dir=args.log_dir, resume=not args.no_resume, progress=not args.no_progress)
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print(results_table(results).round(2))
    print(json.dumps(conclusions(results)["checks"], indent=1))
    if args.record:
        record(results, args.record, total_seconds=total, total_cpu_seconds=total_cpu)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
