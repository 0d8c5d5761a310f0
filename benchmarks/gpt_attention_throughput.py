"""Training throughput of the gpt_attention models at the handout's sizes, on this machine's device.

    .venv/bin/python benchmarks/gpt_attention_throughput.py [--configs 2 6] [--steps 4] [--device auto]

Runs each configuration of the handout's ``run_exp.py`` (default: 2 LSTM-AdamW-1L and 6 GPT-AdamW-1L)
through the runner itself (:func:`course_lib.runners.gpt_attention.run`: the same data loader,
bf16 autocast and fused optimizer on a GPU, step and logging code as the real runs), at full size
(batches of 16 windows of 256 WikiText-2 tokens, embedding 768), for two short epochs of
``--steps`` optimizer steps each. The first epoch is the warm-up (allocator, kernels, autotuning);
the second one's figures are reported: training tokens per second, seconds per step, the minutes a
full 10-epoch run of the 2,088,628-token training set would take at that speed, and peak memory.
Prints a table; ``--csv`` writes it. A measurement, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import pandas as pd
import torch

from course_lib.runners import gpt_attention as ga

TRAIN_TOKENS = 2_088_628  # WikiText-2 training split, words plus end-of-line tokens


def measure(number: int, steps: int, device: str, amp: bool, compile: bool) -> dict:
    config = ga.CONFIGS[number].replace(
        epochs=2, max_train_sequences=steps * ga.CONFIGS[number].batch_size,
        max_valid_sequences=ga.CONFIGS[number].batch_size, device=device, amp=amp, compile=compile, fast=False,
        scale="full")  # the handout's sizes, whatever COURSE_SCALE or the hardware say
    with tempfile.TemporaryDirectory(prefix="gpt-attention-bench-") as log_dir:
        result = ga.run(config, progress=False, log_dir=log_dir, log=None, load_model=False)
    steady = result.history.iloc[-1]
    tokens_per_second = float(steady["tokens_per_second"])
    return {
        "config": result.label,
        "device": result.device_description or result.device,
        "precision": steady["amp_dtype"],
        "parameters": result.num_parameters,
        "tokens/s": round(tokens_per_second),
        "s/step": round(float(steady["train_seconds"]) / steps, 3),
        "minutes for 10 epochs": round(10 * TRAIN_TOKENS / tokens_per_second / 60, 1),
        "peak memory (MiB)": round(float(steady["peak_memory_mib"])),
        "memory kind": steady["memory_kind"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", type=int, nargs="+", default=[2, 6], help="experiment numbers (1-12)")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per epoch (default 4)")
    p.add_argument("--device", default="auto", help="auto (the GPU if there is one), cuda, mps or cpu")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="fp32 on a GPU instead of bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--csv")
    args = p.parse_args(argv)
    if os.environ.get("COURSE_FAST") == "1":
        print("COURSE_FAST=1 would shrink the models: unset it to measure the handout's sizes", file=sys.stderr)
        return 2
    unknown = sorted(set(args.configs) - set(ga.CONFIGS))
    if unknown:
        print(f"unknown experiment numbers {unknown}: choose from 1-12", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = []
    for number in args.configs:
        rows.append(measure(number, args.steps, args.device, args.amp, args.compile))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
