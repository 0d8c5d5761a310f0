"""Training throughput of the word_lm_ptb runner's loop against a bare PyTorch loop, same model and batches.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/word_lm_ptb_throughput.py [--steps 40] [--threads 1]
        [--repeats 5] [--rnn lstm] [--data ptb] [--device cpu] [--csv out.csv]

The model is the reference ``WordLM`` at the handout's size (2 x 200, embeddings of 200, the 10,000
words of PTB, dropout 0), the batches ``--steps`` truncated-backpropagation batches of 20 streams x 20
words (the first words of PTB's training split, or random ids with ``--data random``). Three loops,
each on its own copy of the same initial model with its own SGD optimizer (learning rate 1):

- ``bare loop``: ``for i in range(0, steps * 20, 20): x, y = data[:, i:i+20], data[:, i+1:i+21]``;
  detach the hidden state; forward; cross-entropy; ``zero_grad``; ``backward``;
  ``torch.nn.utils.clip_grad_norm_(..., 5)``; ``step``.
- ``bare loop + train_step``: the same loop calling the reference ``train_step`` (its own global-norm
  clipping), to tell the cost of the graded step from that of the runner around it.
- ``runner``: one epoch of ``course_lib.runners.word_lm_ptb._train``, what :func:`run` does per
  epoch (``get_batch`` batches, the update closure around ``train_step``, ``train.run_updates`` with
  float64 sums on the device, the device syncs), timed by the runner itself (``train_seconds`` of
  its history row; the validation pass, on a tiny stream, and the checkpoint are not timed).

Every repeat runs the three loops once, in a rotating order, after one untimed warm-up pass of each;
the table has the median words per second (min and max too) and each loop's ratio to the bare
loop (the target: runner >= 0.9). A measurement, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from course_lib.device import get_device
from course_lib.runlog import RunLog, sync
from course_lib.runners import reference_layers
from course_lib.runners import word_lm_ptb as wl

B, T = 20, 20


def make_data(source: str, steps: int, vocab_size: int, device: torch.device) -> torch.Tensor:
    """(B, steps * T + 1) ids: exactly ``steps`` batches of T."""
    ref = reference_layers()
    n = B * (steps * T + 1)
    if source == "ptb":
        from course_lib import ptb

        words = ptb.read_words("train")
        vocab = ref.build_vocab(words)
        if n > len(words):
            raise SystemExit(f"--steps {steps} needs {n:,} words; PTB's training split has {len(words):,}")
        ids = torch.tensor([vocab[w] for w in words[:n]], dtype=torch.long)
    else:
        ids = torch.randint(0, vocab_size, (n,), generator=torch.Generator().manual_seed(0))
    return ref.batchify(ids, B).to(device)


def bare_loop(model, optimizer, data: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` plain PyTorch steps."""
    hidden = model.init_hidden(B)
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for i in range(0, steps * T, T):
        x, y = data[:, i : i + T], data[:, i + 1 : i + 1 + T]
        hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        logits, hidden = model(x, hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    sync(device)
    return time.perf_counter() - t0


def bare_train_step_loop(model, optimizer, data: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls of the reference train_step in a plain loop."""
    train_step = reference_layers().train_step
    hidden = model.init_hidden(B)
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for i in range(0, steps * T, T):
        _, hidden = train_step(model, optimizer, data[:, i : i + T], data[:, i + 1 : i + 1 + T], hidden, 5.0)
    sync(device)
    return time.perf_counter() - t0


class RunnerLoop:
    """One epoch of the runner's ``_train`` per call, on ``data``; its own timing of the training pass."""

    def __init__(self, config: wl.Config, folder: Path):
        self.config, self.folder, self.calls = config, folder, 0
        self.fns = wl._functions(None, None, None, None, None)  # the references

    def __call__(self, model, optimizer, data: torch.Tensor, steps: int, device: torch.device) -> float:
        self.calls += 1
        runlog = RunLog(self.folder / f"epoch{self.calls}", label="benchmark")
        history: list[dict] = []
        dev = data[:, : 2 * T + 1]  # a tiny validation stream (not timed)
        wl._train(self.config, model, optimizer, runlog, history, self.fns, (data, dev), device, progress=False,
                  say=lambda *_: None)
        (row,) = history
        assert row["train_tokens"] == steps * B * T, row["train_tokens"]
        return float(row["train_seconds"])


def measure(steps: int, repeats: int, rnn: str, source: str, device: torch.device) -> pd.DataFrame:
    config = dataclasses.replace(wl.config_for("LSTM" if rnn == "lstm" else "GRU", "full"), epochs=1,
                                 device=str(device))
    torch.manual_seed(config.seed)
    base = reference_layers().WordLM(rnn, 10_000, config.embedding_size, config.hidden_size, config.num_layers,
                                     0.0, config.init_range).to(device)
    data = make_data(source, steps, 10_000, device)
    with tempfile.TemporaryDirectory(prefix="word-lm-bench-") as tmp:
        loops = {"bare loop": bare_loop, "bare loop + train_step": bare_train_step_loop,
                 "runner": RunnerLoop(config, Path(tmp))}
        state = {}
        for name in loops:
            model = copy.deepcopy(base)
            state[name] = (model, torch.optim.SGD(model.parameters(), lr=config.lr))
        warm_steps = min(3, steps)
        warm = data[:, : warm_steps * T + 1]
        for name, loop in loops.items():  # warm-up: allocator, thread pool, first-call costs
            loop(*state[name], warm, warm_steps, device)
        seconds: dict[str, list[float]] = {name: [] for name in loops}
        names = list(loops)
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                seconds[name].append(loops[name](*state[name], data, steps, device))
    words = steps * B * T
    rows = []
    bare = statistics.median(words / s for s in seconds["bare loop"])
    for name, times in seconds.items():
        rates = [words / s for s in times]
        rows.append({"loop": name, "words/s (median)": round(statistics.median(rates)),
                     "min": round(min(rates)), "max": round(max(rates)),
                     "ratio to bare loop": round(statistics.median(rates) / bare, 3)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="batches of 20 x 20 words per timed pass (default 40)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's current number)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes of each loop (default 5)")
    p.add_argument("--rnn", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--data", choices=["ptb", "random"], default="ptb", help="PTB's first training words or random ids")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--csv")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        print("--steps and --repeats must be at least 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; WordLM {args.rnn} 2 x 200, "
          f"V=10,000; {args.steps} batches of {B} x {T} words ({args.data}) per pass, {args.repeats} repeats")
    table = measure(args.steps, args.repeats, args.rnn, args.data, device)
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
