"""Training throughput of the nmt_pig_latin runner's loop against a bare PyTorch loop, same model and batches.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmt_throughput.py [--kind decoder-only] [--hidden 32]
        [--heads 1] [--steps 60] [--repeats 5] [--threads 1] [--device cpu] [--clock wall] [--csv out.csv]

The model is the reference ``DecoderOnlyTransformer`` (or, with ``--kind encoder-decoder``, the
reference encoder and decoder) of 3 layers, the batches the first ``--steps`` batches of 64 pairs of
the large data set's training split, one length group each, built once by the runner's
``make_batches`` (the tensors every loop reuses). Three loops, each on its own copy of the same
initial model with its own Adam optimizer (learning rate 5e-4):

- ``bare loop``: ``for b in batches``: forward; the loss (masked cross-entropy, written out here);
  ``zero_grad``; ``backward``; ``step``.
- ``bare loop + graded loss``: the same loop with the reference ``decoder_only_loss`` (decoder-only
  only), to tell the cost of the graded function from that of the runner around it.
- ``runner``: one epoch of ``course_lib.runners.nmt_pig_latin._train_epochs``, what :func:`run` does per
  epoch (the seeded batch order, the update closure, ``train.run_updates`` with float64 sums on the
  device, the device syncs), timed by the runner itself (``train_seconds`` of its history row; the
  validation pass, on one batch, is not timed).

``--clock cpu`` times every loop by the process's CPU time instead (``time.process_time``; the
runner's pass then includes its one-batch validation), steadier on a machine shared with other work.

Every repeat runs the loops once, in a rotating order, after one untimed warm-up pass of each; the
table has the median target tokens per second (min and max too) and each loop's ratio to the bare
loop (the target: runner >= 0.9). A measurement, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import pandas as pd
import torch
import torch.nn.functional as F

from course_lib import pig_latin
from course_lib.device import get_device
from course_lib.runlog import sync
from course_lib.runners import nmt_pig_latin as nmt
from course_lib.runners import reference_layers

LR = 5e-4
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def references():
    return reference_layers(nmt.REFERENCES)


def make_model(kind: str, hidden: int, heads: int, vocab_size: int):
    ref = references()
    torch.manual_seed(0)
    if kind == "decoder-only":
        return ref.DecoderOnlyTransformer(vocab_size, hidden, 3, heads)
    return nmt.EncoderDecoder(ref.TransformerEncoder(vocab_size, hidden, 3), ref.TransformerDecoder(vocab_size, hidden, 3))


def make_batches(kind: str, steps: int, device: torch.device):
    pairs = pig_latin.load_pairs("large")
    train, _ = pig_latin.split_pairs(pairs)
    vocab = pig_latin.build_vocab(pairs, eop=kind == "decoder-only")
    example = references().decoder_only_example if kind == "decoder-only" else None
    batches = nmt.make_batches(train, vocab, 64, decoder_only_example=example, device=device)
    if steps > len(batches):
        raise SystemExit(f"--steps {steps}: the training split has {len(batches)} batches")
    # every length group is represented: take the batches spread over the whole list
    stride = len(batches) / steps
    return [batches[int(i * stride)] for i in range(steps)], vocab.size


def bare_loop(model, optimizer, batches, device) -> float:
    model.train()
    sync(device)
    t0 = clock()
    for b in batches:
        if "src" in b:
            logits = model(b["src"], b["inputs"])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), b["targets"].reshape(-1))
        else:
            logits = model(b["inputs"])
            loss = F.cross_entropy(logits[b["mask"]], b["targets"][b["mask"]])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return clock() - t0


def bare_graded_loop(model, optimizer, batches, device) -> float:
    loss_fn = references().decoder_only_loss
    model.train()
    sync(device)
    t0 = clock()
    for b in batches:
        loss = loss_fn(model(b["inputs"]), b["targets"], b["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return clock() - t0


class RunnerLoop:
    """One epoch of the runner's ``_train_epochs`` per call; its own timing of the training pass."""

    def __init__(self, kind: str):
        self.loss_fn = (nmt._decoder_loss_fn(references().decoder_only_loss) if kind == "decoder-only"
                        else nmt._encdec_loss)
        self.calls = 0

    def __call__(self, model, optimizer, batches, device) -> float:
        self.calls += 1
        t0 = clock()
        rows = nmt._train_epochs(model, optimizer, batches, batches[:1], loss_fn=self.loss_fn, epochs=1, lr=LR,
                                 lr_decay=1.0, seed=self.calls)
        (row,) = rows
        assert row["steps"] == len(batches), row
        return float(row["train_seconds"]) if clock is time.perf_counter else clock() - t0


def measure(kind: str, hidden: int, heads: int, steps: int, repeats: int, device: torch.device) -> pd.DataFrame:
    batches, vocab_size = make_batches(kind, steps, device)
    base = make_model(kind, hidden, heads, vocab_size).to(device)
    loops = {"bare loop": bare_loop}
    if kind == "decoder-only":
        loops["bare loop + graded loss"] = bare_graded_loop
    loops["runner"] = RunnerLoop(kind)
    state = {}
    for name in loops:
        model = copy.deepcopy(base)
        state[name] = (model, torch.optim.Adam(model.parameters(), lr=LR))
    warm = batches[: min(5, steps)]
    for name, loop in loops.items():  # warm-up: allocator, thread pool, first-call costs
        loop(*state[name], warm, device)
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            seconds[name].append(loops[name](*state[name], batches, device))
    tokens = sum(b["n_loss"] for b in batches)
    bare = statistics.median(tokens / s for s in seconds["bare loop"])
    rows = []
    for name, times in seconds.items():
        rates = [tokens / s for s in times]
        rows.append({"loop": name, "target tokens/s (median)": round(statistics.median(rates)),
                     "min": round(min(rates)), "max": round(max(rates)),
                     "ratio to bare loop": round(statistics.median(rates) / bare, 3)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=["decoder-only", "encoder-decoder"], default="decoder-only")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=1, help="attention heads (decoder-only)")
    p.add_argument("--steps", type=int, default=60, help="batches per timed pass (default 60)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes of each loop (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's current number)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--clock", choices=list(CLOCK), default="wall", help="wall clock (default) or process CPU time")
    p.add_argument("--csv")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        print("--steps and --repeats must be at least 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    clock = CLOCK[args.clock]
    device = get_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; {args.kind} H={args.hidden}, "
          f"{args.heads} head(s), 3 layers; {args.steps} batches of up to 64 pairs per pass, {args.repeats} repeats, {args.clock} clock")
    table = measure(args.kind, args.hidden, args.heads, args.steps, args.repeats, device)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
