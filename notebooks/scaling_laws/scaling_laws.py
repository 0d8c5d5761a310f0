# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: nbgrader,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 5: batch size, learning rate and scaling laws
#
# This assignment is about how to spend compute. Part 1 is the handout's section 1, *batch size vs.
# learning rate*, made hands-on: instead of reading cartoons you simulate SGD on the **noisy quadratic
# model** (NQM), compute its expected loss exactly, tune the learning rate for each batch size and draw
# the handout's Figure 1 with your own code; then you answer the handout's questions on it. Part 2 is
# the handout's section 2.4, *scaling laws and IsoFLOP profiles* (Hoffmann et al. 2022, "Chinchilla"):
# you count the FLOPs of a transformer, train **your own decoder-only model from `nmt_pig_latin`** at
# seven sizes across five compute budgets, fit the IsoFLOP profiles and the power law they follow, and
# predict the compute-optimal model and data size at a budget a thousand times larger.
#
# **Learning goals.** After this assignment you can
#
# 1. explain, with the NQM, why the best learning rate grows with the batch size, and where that stops;
# 2. simulate a stochastic process vectorised over many runs, and check a simulation against an exact
#    expectation within its Monte Carlo error;
# 3. read a steps-vs-batch-size curve: the noise-dominated and curvature-dominated regimes, the
#    critical batch size, and what speeds training up in each;
# 4. count the training FLOPs of a model, `C = 6 N D` and exactly, and say what `6 N` leaves out;
# 5. fit IsoFLOP profiles and a power law in log space, extrapolate them, and judge whether a training
#    setup is compute-optimal (tokens per parameter, against Chinchilla's about 20).
#
# **How this notebook is graded** (100 points in all).
#
# | Part | Points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. Batch size vs. learning rate (handout section 1) | 45 | 25 | 20 |
# | 2. Scaling laws and IsoFLOP profiles (handout section 2.4) | 55 | 19 | 36 |
# | **Total** | **100** | **44** | **56** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names and signatures: the tests call them. Each function
#   is followed by its test cell. The checks you see there are *public checks*: they compare values on
#   small examples with what the test computes itself (a brute-force loop, PyTorch's own FLOP counter,
#   synthetic data whose answer is known) and catch many mistakes, but passing them is not the grade.
#   When the notebook is graded, hidden tests with other inputs and edge cases are added to the same
#   cells. Each test cell checks only its own function: where a function may use another of yours
#   (`steps_to_target` your `nqm_expected_loss`, `optimal_lr` your `steps_to_target`,
#   `isoflop_analysis` your fits), its test swaps in other versions for the duration of the test, so a
#   mistake in one costs only that one's points.
# - **Libraries.** Use NumPy, PyTorch and the standard library in your answers: the grader has no SciPy
#   (nor scikit-learn), so `scipy.stats.linregress` or `scipy.optimize.curve_fit` would fail there
#   even where they work on Colab. `np.polyfit` and `np.linalg.lstsq` do every fit of this notebook.
# - **Answers to the handout's multiple-choice questions** go in the dictionary `ANSWERS` (autograded,
#   1 point each); each has a short written justification, graded by hand.
# - The course's reference implementations (`course_solutions`) and the runner's own analysis
#   (`course_lib.runners.scaling_laws.analyse`) are **disabled while the tests run**.
# - **Written answers** go in the markdown cells that say `YOUR ANSWER HERE`, right below each
#   question. Be concise: the handout's sentence limits apply.
# - **How the grader runs your notebook.** It re-runs every cell from top to bottom in *fast mode*
#   (`COURSE_FAST=1`), **except the cells tagged `experiment`** (the figures of Part 1 and the
#   trainings of Part 2): those are not re-run, and the grader sees the outputs they had when you saved
#   the notebook. So run them yourself before you submit, and copy the numbers a question asks for into
#   your written answers.
# - **Three scales.** The IsoFLOP training of Part 2 runs at the scale that the environment variable
#   `COURSE_SCALE` picks (set it before starting Jupyter): `fast` (`COURSE_FAST=1`: seconds, tiny
#   models and budgets, to check that your code runs; the grader uses it; its profiles need not even
#   have a minimum), `laptop` (the default without a GPU) and `full` (the default with a GPU). The
#   laptop scale **is** the handout's experiment (its budgets of 0.08 to 1.28 TFLOPs are small: about
#   10 CPU minutes for all seven models, half an hour on a busy 2-core laptop); `full` runs the same on
#   the GPU. Part 1 costs seconds at every
#   scale.
# - **Your model from `nmt_pig_latin`.** Part 2 trains the `DecoderOnlyTransformer` **you** wrote in
#   `nmt_pig_latin` (with your `decoder_only_example` and `decoder_only_loss`). It is imported from your
#   completed notebook, not copied: keep `nmt_pig_latin/nmt_pig_latin.ipynb` next to this notebook's
#   folder (as `make lab` lays them out), or upload it next to this notebook (Colab), or paste the
#   classes into the cell made for it. Complete and save `nmt_pig_latin` first.
#
# **Shapes and notation.** Comments and docstrings name tensor dimensions with letters: `B` batch,
# `T` time (the sequence length, or in Part 1 the number of SGD steps), `H` hidden size, `V` vocabulary
# size; in Part 1 `R` is the number of independent runs. `N` is a number of parameters, `D` of tokens
# (positions processed in training), `C` of FLOPs (floating-point operations: one multiplication or one
# addition each).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Setup (read-only, the same in every notebook). Where the course library is missing (Colab), it
# installs course_lib from the course's student distribution (never PyTorch: use the one you
# have). Then it fetches this assignment's data, picks the device (the GPU when there is one) and
# seeds everything. Locally, with course_lib installed and the data cached, it installs and
# downloads nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    if importlib.util.find_spec("torch") is None:
        raise RuntimeError("PyTorch is not installed: install it first (https://pytorch.org), then run this cell again.")
    _source = os.environ.get("COURSE_LIB_SOURCE") or "course-lib @ git+https://github.com/neural-lm-course/neural-lm-course@student"
    print(f"installing course_lib: pip install {_source}")
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", _source],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if _pip.returncode:
        raise RuntimeError(f"pip could not install course_lib:\n{_pip.stdout[-3000:]}")
    print(*[line for line in _pip.stdout.splitlines() if line.startswith("Successfully")], sep="\n")
    importlib.invalidate_caches()

from course_lib.notebook import setup_notebook

device = setup_notebook("scaling_laws", seed=282)

# %%
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from course_lib.device import fast_mode

# %% [markdown]
# ---
# ## 1. Batch size vs. learning rate [45 pts]
#
# **The noisy quadratic model** (the handout's section 1). The loss is $\mathcal{L}(w) = \frac{1}{2} a
# w^2$ with $a > 0$ and one weight $w \in \mathbb{R}$. A query of the gradient returns the true gradient
# $a w$ plus Gaussian noise, $g_i(w) = a w + \epsilon_i$ with $\epsilon_i \sim \mathcal{N}(0, \sigma^2)$;
# a minibatch of size $B$ averages $B$ independent queries:
#
# $$g_B(w) = \frac{1}{B} \sum_{i=1}^{B} g_i(w) = a w + \bar\epsilon, \qquad \bar\epsilon \sim
# \mathcal{N}\!\left(0, \frac{\sigma^2}{B}\right).$$
#
# SGD with learning rate $\eta$ (`lr`) updates $w_{t+1} = w_t - \eta\, g_B(w_t) = (1 - \eta a) w_t - \eta
# \bar\epsilon_t$, with fresh noise at every step. Because the noise is independent of $w_t$ and has
# mean zero, the second moment follows an exact recursion
#
# $$\mathbb{E}[w_{t+1}^2] = (1 - \eta a)^2\, \mathbb{E}[w_t^2] + \frac{\eta^2 \sigma^2}{B}, \qquad
# \mathbb{E}[w_0^2] = w_0^2,$$
#
# and the expected loss is $\mathbb{E}[\mathcal{L}(w_t)] = \frac{a}{2} \mathbb{E}[w_t^2]$. The first
# term shrinks the distance to the minimum (when $|1 - \eta a| < 1$); the second adds the noise of every
# step. A large learning rate shrinks faster but adds more noise; a large batch adds less noise.
#
# ### 1.0(a) SGD on the NQM, many runs at once [4 pts]
#
# Implement `nqm_sgd(a, sigma, batch_size, lr, steps, w0, generator)`: `w0` is a 1-D tensor `(R,)`, the
# starting weight of each of `R` independent runs; return a float64 tensor `(T + 1, R)` (`T = steps`)
# whose row `t` holds $w_t$ of every run (row 0 is `w0`). **Vectorise over the runs**: one update of all
# `R` runs per step, no Python loop over runs. Draw the noise with `torch.randn(..., generator=generator)`
# (so that a seeded generator makes the runs reproducible). You may draw the mean of $B$ noises
# directly: it is exactly $\mathcal{N}(0, \sigma^2 / B)$.
#
# Its test runs 20,000 runs and checks, at several steps, that the mean loss of the runs is within
# **4.5 standard errors** of the exact expectation (the recursion above) and that their spread is within
# 10 % of the exact one (a correct simulator fails this by chance about once in 10,000 gradings).

# %% nbgrader={"grade": false, "grade_id": "nqm_sgd", "locked": false, "schema_version": 3, "solution": true, "task": false}
def nqm_sgd(a, sigma, batch_size, lr, steps, w0, generator=None):
    """Minibatch SGD on the scalar NQM, all runs at once.

    Args:
        a, sigma, batch_size, lr: numbers (curvature, gradient-noise standard deviation of one example,
            batch size B, learning rate).
        steps: the number of SGD steps T.
        w0: tensor (R,), the starting weight of each of R independent runs.
        generator: a torch.Generator for the noise (None: PyTorch's global one).
    Returns:
        float64 tensor (T + 1, R): row t holds w_t of every run (row 0 is w0); column r, of shape
        (T + 1,), is the trajectory of run r.
    """
    ### BEGIN SOLUTION
    w0 = torch.as_tensor(w0, dtype=torch.float64)
    weights = torch.empty((steps + 1, *w0.shape), dtype=torch.float64)
    weights[0] = w0
    noise_std = sigma / math.sqrt(batch_size)  # the mean of B noises of variance sigma^2: variance sigma^2 / B
    for t in range(steps):
        noise = torch.randn(w0.shape, generator=generator, dtype=torch.float64) * noise_std
        weights[t + 1] = weights[t] - lr * (a * weights[t] + noise)
    return weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_nqm_sgd", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import math

import torch

from course_lib.grading.checks import as_float, assert_equal, assert_true, grade, quiet

RUNS = 20_000
STEPS = (1, 5, 20, 60)
SETTING = (1.0, 1.0, 16, 0.5, 2.0)  # a, sigma, B, lr, w0
### BEGIN HIDDEN TESTS
HIDDEN = [(2.0, 3.0, 4, 0.05, 1.0), (0.5, 2.0, 64, 3.0, -1.5), (1.0, 2.0, 1, 0.1, 0.5)]
### END HIDDEN TESTS


def _moments(a, sigma, B, lr, t, w0):
    """The exact mean and variance of w_t (Gaussian: a linear recursion in Gaussian noises), summed term by term."""
    c = 1.0 - lr * a
    return c ** t * w0, lr ** 2 * sigma ** 2 / B * sum(c ** (2 * k) for k in range(t))


def _simulate(setting, seed, runs=RUNS, steps=60):
    a, sigma, B, lr, w0 = setting
    with quiet():
        w = nqm_sgd(a, sigma, B, lr, steps, torch.full((runs,), float(w0), dtype=torch.float64),
                    torch.Generator().manual_seed(seed))
    w = torch.as_tensor(w)
    out = {"shape": list(w.shape)}
    if list(w.shape) == [steps + 1, runs]:
        out["rows"] = w[[0, *STEPS]]  # w_0 and the weights at STEPS; their statistics are computed by the check
    return out


def run():
    out = {"public": _simulate(SETTING, 0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_simulate(s, i + 1) for i, s in enumerate(HIDDEN)]
    with quiet():
        noiseless = nqm_sgd(1.0, 0.0, 4, 0.3, 5, torch.tensor([1.0, -2.0], dtype=torch.float64))
        g1 = nqm_sgd(1.0, 1.0, 2, 0.2, 7, torch.zeros(5, dtype=torch.float64), torch.Generator().manual_seed(3))
        g2 = nqm_sgd(1.0, 1.0, 2, 0.2, 7, torch.zeros(5, dtype=torch.float64), torch.Generator().manual_seed(3))
    out["noiseless"] = torch.as_tensor(noiseless).double()
    out["seeded"] = [torch.as_tensor(g1), torch.as_tensor(g2)]
    ### END HIDDEN TESTS
    return out


def _check(got, setting, label):
    a, sigma, B, lr, w0 = setting
    assert_equal(got["shape"], [max(STEPS) + 1, RUNS], name=f"{label}: the shape (T + 1, R) of the weights")
    rows = got["rows"].to(torch.float64)
    assert_true(bool(torch.all(rows[0] == w0)), f"{label}: row 0 must hold w0 = {w0} for every run")
    losses = 0.5 * a * rows[1:] ** 2
    for t, mean, std in zip(STEPS, losses.mean(dim=1).tolist(), losses.std(dim=1).tolist()):
        mu, var = _moments(a, sigma, B, lr, t, w0)
        exact = 0.5 * a * (mu ** 2 + var)
        se = as_float(std) / math.sqrt(RUNS)
        assert_true(abs(as_float(mean) - exact) <= 4.5 * se,
                    f"{label}: at step {t} the mean loss of the {RUNS} runs is {as_float(mean):.5g}, the exact "
                    f"expectation {exact:.5g}: more than 4.5 standard errors ({4.5 * se:.2g}) apart. Is the noise "
                    f"of a minibatch gradient N(0, sigma^2 / B)?")
        sd = 0.5 * a * math.sqrt(2 * var ** 2 + 4 * mu ** 2 * var)
        assert_true(abs(as_float(std) / sd - 1) < 0.1,
                    f"{label}: at step {t} the runs' losses spread by {as_float(std):.4g} (standard deviation), "
                    f"the exact value is {sd:.4g}: are the runs independent, with fresh noise at every step?")


def check(out):
    _check(out["public"], SETTING, "nqm_sgd(1, 1, 16, 0.5, 60, w0=2)")
    ### BEGIN HIDDEN TESTS
    for got, setting in zip(out["hidden"], HIDDEN):
        _check(got, setting, f"nqm_sgd(a, sigma, B, lr, w0) = {setting}")
    expected = torch.tensor([[0.7 ** t, -2.0 * 0.7 ** t] for t in range(6)], dtype=torch.float64)
    assert_true(tuple(out["noiseless"].shape) == (6, 2) and torch.allclose(out["noiseless"], expected),
                "with sigma = 0, SGD is deterministic: w_t = (1 - lr a)^t w0")
    assert_true(torch.equal(*out["seeded"]), "the same seeded generator must give the same runs (draw the noise from `generator`)")
    ### END HIDDEN TESTS


grade("test_nqm_sgd", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### 1.0(b) The exact expected loss [4 pts]
#
# Implement `nqm_expected_loss(a, sigma, batch_size, lr, steps, w0)`: $\mathbb{E}[\mathcal{L}(w_T)]$
# after `steps` $= T$ steps, from the recursion above (a number; `steps = 0` gives the initial loss
# $\frac{1}{2} a w_0^2$).

# %% nbgrader={"grade": false, "grade_id": "nqm_expected_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def nqm_expected_loss(a, sigma, batch_size, lr, steps, w0):
    """E[L(w_steps)] = a E[w_steps^2] / 2 from E[w_{t+1}^2] = (1 - lr a)^2 E[w_t^2] + lr^2 sigma^2 / B."""
    ### BEGIN SOLUTION
    second_moment = w0 ** 2
    for _ in range(steps):
        second_moment = (1 - lr * a) ** 2 * second_moment + lr ** 2 * sigma ** 2 / batch_size
    return 0.5 * a * second_moment
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_nqm_expected_loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_close, grade, quiet

SETTING = (1.0, 1.0, 16, 0.5, 2.0)  # a, sigma, B, lr, w0
PUBLIC_STEPS = (0, 1, 7, 30)
### BEGIN HIDDEN TESTS
HIDDEN = [(2.0, 3.0, 4, 0.05, 1.0), (0.5, 2.0, 64, 3.0, -1.5), (1.0, 1.3, 8.0, 2.5, 0.7), (3.0, 0.5, 1, 1 / 3, 2.0)]
HIDDEN_STEPS = (0, 1, 2, 7, 30, 200)
### END HIDDEN TESTS


def _direct(a, sigma, B, lr, t, w0):
    """E[a w_t^2 / 2] from w_t's expansion in the noises: (1 - lr a)^(2t) w0^2 + lr^2 sigma^2 / B sum_k (1 - lr a)^(2k)."""
    c = 1.0 - lr * a
    return 0.5 * a * (c ** (2 * t) * w0 ** 2 + lr ** 2 * sigma ** 2 / B * sum(c ** (2 * k) for k in range(t)))


def run():
    with quiet():
        out = {"public": [nqm_expected_loss(*SETTING[:4], t, SETTING[4]) for t in PUBLIC_STEPS]}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [[nqm_expected_loss(*s[:4], t, s[4]) for t in HIDDEN_STEPS] for s in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for t, got in zip(PUBLIC_STEPS, out["public"]):
        assert_close(got, _direct(*SETTING[:4], t, SETTING[4]), rtol=1e-9, atol=0,
                     name=f"nqm_expected_loss(1, 1, 16, 0.5, steps={t}, w0=2)")
    ### BEGIN HIDDEN TESTS
    for s, row in zip(HIDDEN, out["hidden"]):
        for t, got in zip(HIDDEN_STEPS, row):
            assert_close(got, _direct(*s[:4], t, s[4]), rtol=1e-9, atol=1e-300,
                         name=f"nqm_expected_loss{(*s[:4], t, s[4])}")
    ### END HIDDEN TESTS


grade("test_nqm_expected_loss", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# Your two functions against each other: the mean loss of 2,000 simulated runs (a band of $\pm 2$
# standard errors) and the exact expectation, for three batch sizes at the same learning rate. The
# loss falls, then levels off at a **noise floor** that is lower for a larger batch.

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(7, 4))
for i, B in enumerate((1, 4, 16)):
    w = nqm_sgd(1.0, 1.0, B, 0.1, 100, torch.full((2000,), 1.0, dtype=torch.float64), torch.Generator().manual_seed(i))
    losses = 0.5 * torch.as_tensor(w).double() ** 2
    mean, se = losses.mean(dim=1).numpy(), (losses.std(dim=1) / math.sqrt(losses.shape[1])).numpy()
    steps = np.arange(len(mean))
    ax.fill_between(steps, mean - 2 * se, mean + 2 * se, alpha=0.3, color=f"C{i}")
    ax.plot(steps, [nqm_expected_loss(1.0, 1.0, B, 0.1, t, 1.0) for t in steps], color=f"C{i}",
            label=f"B = {B}: exact; band: 2,000 runs")
ax.set(yscale="log", xlabel="step t", ylabel="expected loss", title="NQM, a = sigma = w0 = 1, lr = 0.1")
ax.legend();

# %% [markdown]
# ### 1.0(c) The noise floor [2 pts]
#
# Where the recursion settles: when $|1 - \eta a| < 1$ (that is $0 < \eta a < 2$), $\mathbb{E}[w_t^2]$
# converges to the fixed point of the recursion. Derive it, and implement `nqm_noise_floor(a, sigma,
# batch_size, lr)`: $\lim_{t \to \infty} \mathbb{E}[\mathcal{L}(w_t)]$, or `math.inf` when $\eta a \ge 2$
# (SGD diverges). It does not depend on $w_0$. Look at how it depends on $\eta$ and $B$: this is the
# heart of question 1(a).

# %% nbgrader={"grade": false, "grade_id": "nqm_noise_floor", "locked": false, "schema_version": 3, "solution": true, "task": false}
def nqm_noise_floor(a, sigma, batch_size, lr):
    """lim_t E[L(w_t)] of SGD on the NQM (numbers in, a number out); math.inf when lr * a >= 2."""
    ### BEGIN SOLUTION
    if lr * a >= 2:
        return math.inf
    # fixed point m = (1 - lr a)^2 m + lr^2 sigma^2 / B, and 1 - (1 - lr a)^2 = lr a (2 - lr a)
    return 0.5 * a * (lr ** 2 * sigma ** 2 / batch_size) / (lr * a * (2 - lr * a))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_nqm_noise_floor", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

CASE = (1.0, 1.0, 16, 0.5)  # a, sigma, B, lr
### BEGIN HIDDEN TESTS
HIDDEN = [(2.0, 3.0, 4, 0.05), (0.5, 2.0, 64, 3.0), (1.0, 1.0, 1, 1.0), (2.0, 1.0, 8, 0.999), (0.1, 0.3, 2, 0.01)]
UNSTABLE = [(1.0, 1.0, 4, 2.0), (2.0, 1.0, 4, 1.5)]
### END HIDDEN TESTS


def _limit(a, sigma, B, lr, steps=100_000):
    """The recursion run until it settles."""
    m = 0.0
    for _ in range(steps):
        m = (1 - lr * a) ** 2 * m + lr ** 2 * sigma ** 2 / B
    return 0.5 * a * m


def run():
    with quiet():
        out = {"public": nqm_noise_floor(*CASE)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [nqm_noise_floor(*c) for c in HIDDEN]
        out["unstable"] = [nqm_noise_floor(*c) for c in UNSTABLE]
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["public"], _limit(*CASE), rtol=1e-9, atol=0, name="nqm_noise_floor(1, 1, 16, 0.5)")
    ### BEGIN HIDDEN TESTS
    for c, got in zip(HIDDEN, out["hidden"]):
        assert_close(got, _limit(*c), rtol=1e-6, atol=0, name=f"nqm_noise_floor{c}")
    for c, got in zip(UNSTABLE, out["unstable"]):
        assert_true(as_float(got) == math.inf, f"nqm_noise_floor{c}: lr * a >= 2 diverges, expected math.inf")
    ### END HIDDEN TESTS


grade("test_nqm_noise_floor", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### 1.0(d) Steps to a target loss [4 pts]
#
# The handout's Figure 1 plots the number of training steps needed to reach a target loss against the
# batch size, with the learning rate tuned for each batch size. To draw it for the NQM we need the
# steps to a target, and a model that has both regimes of the figure.
#
# **A diagonal NQM.** In the scalar model, noiseless gradient descent with $\eta = 1/a$ (Newton's step)
# reaches the minimum in **one** step, so nothing can be slow when the noise vanishes. Real losses are
# ill-conditioned: curvatures spread over orders of magnitude. The NQM of Zhang et al. (2019, "Which
# algorithmic choices matter at which batch sizes?") has $d$ independent coordinates, each a scalar NQM
# with its own $a_i$, $\sigma_i$ and $w_{0,i}$, all updated with **one** learning rate; the loss is the
# **sum** of the coordinates' losses, and so is its expectation. The learning rate must stay below
# $2 / a_{\max}$ for the sharpest coordinate, while the flattest one needs many steps at that rate.
# The NQM below has 16 coordinates with curvatures from 1 down to 0.01 (a condition number of 100),
# noise variances proportional to the curvatures ($\sigma_i^2 = a_i$), every coordinate starting at
# loss $1/2$ (initial loss 8), and a target of 0.1 % of the initial loss.
#
# Implement `steps_to_target(a, sigma, batch_size, lr, target, w0, max_steps)`: `a`, `sigma` and `w0`
# are numbers (the scalar NQM) or 1-D NumPy arrays of one length (a diagonal NQM); return the first step
# $t \ge 0$ at which the expected loss (summed over the coordinates) is $\le$ `target`, by running the
# recursion for every coordinate at once. Return `math.inf`, before taking any step, when it cannot get
# there: when $\eta a_i \ge 2$ for some coordinate (unstable), or when the noise floor (summed over the
# coordinates) is at or above the target (the NQMs of this notebook start above their floor, so their
# expected loss falls steadily towards it: it never reaches a target below it). Return `math.inf` too
# when more than `max_steps` steps would be needed.

# %%
# The NQM of the handout's Figure 1 (the sums over its coordinates are the loss).
NQM_A = np.logspace(0.0, -2.0, 16)  # curvatures a_i, 1 down to 0.01
NQM_SIGMA = np.sqrt(NQM_A)  # gradient-noise standard deviation of one example, sigma_i^2 = a_i
NQM_W0 = 1.0 / np.sqrt(NQM_A)  # every coordinate starts at loss a_i w0_i^2 / 2 = 1/2
NQM_TARGET = 1e-3 * np.sum(0.5 * NQM_A * NQM_W0 ** 2)  # 0.1 % of the initial loss (8): 0.008


# %% nbgrader={"grade": false, "grade_id": "steps_to_target", "locked": false, "schema_version": 3, "solution": true, "task": false}
def steps_to_target(a, sigma, batch_size, lr, target, w0, max_steps=1_000_000):
    """The first step t >= 0 whose expected loss (summed over the coordinates) is <= target.

    a, sigma, w0: numbers, or 1-D NumPy arrays of one length (one entry per coordinate). Returns an int,
    or math.inf when the target is never reached (lr * a_i >= 2 for some i, the noise floor at or above
    the target, or more than max_steps steps).
    """
    ### BEGIN SOLUTION
    a, sigma, w0 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float)) for x in (a, sigma, w0)))
    if np.any(lr * a >= 2):
        return math.inf
    if np.sum(0.5 * a * (lr ** 2 * sigma ** 2 / batch_size) / (lr * a * (2 - lr * a))) >= target:
        return math.inf  # the noise floor, summed over the coordinates
    contraction, noise = (1 - lr * a) ** 2, lr ** 2 * sigma ** 2 / batch_size
    second_moment = w0 ** 2
    for t in range(max_steps + 1):
        if np.sum(0.5 * a * second_moment) <= target:
            return t
        second_moment = contraction * second_moment + noise
    return math.inf
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_steps_to_target", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Your steps_to_target with a correct nqm_expected_loss and nqm_noise_floor swapped in for the duration
# of the test (in case it uses them: a mistake there costs only their points).
import math

import numpy as np

from course_lib.grading.checks import as_float, assert_true, grade, quiet

A16 = np.logspace(0.0, -2.0, 16)
SCALAR = (1.0, 1.0, 4, 0.1, 0.05, 1.0)  # a, sigma, B, lr, target, w0
DIAGONAL = (A16, np.sqrt(A16), 64, 0.4, 0.008, 1 / np.sqrt(A16))
### BEGIN HIDDEN TESTS
HIDDEN = [
    (A16, np.sqrt(A16), 1, 0.0074, 0.008, 1 / np.sqrt(A16)),  # about 42,000 steps
    (A16, np.sqrt(A16), 4096, 1.9, 0.008, 1 / np.sqrt(A16)),
    (2.0, 3.0, 8, 0.05, 0.2, 1.0),
    (np.array([1.0, 0.05]), np.array([0.5, 0.1]), 2, 0.8, 0.05, np.array([2.0, 6.0])),
]
NEVER = [
    (1.0, 1.0, 4, 2.0, 0.01, 1.0),  # unstable: lr * a = 2
    (A16, np.sqrt(A16), 64, 2.01, 0.008, 1 / np.sqrt(A16)),  # unstable: lr * a_max = 2.01
    (1.0, 1.0, 1, 0.5, 0.01, 1.0),  # the noise floor, 1/6, is above the target
]
ZERO = (1.0, 1.0, 1, 0.5, 0.6, 1.0)  # the initial loss 0.5 is already below the target
CAPPED = (A16, np.sqrt(A16), 64, 0.4, 0.008, 1 / np.sqrt(A16), 100)  # needs about 750 steps, max_steps 100
### END HIDDEN TESTS


def _brute(a, sigma, B, lr, target, w0, max_steps=10 ** 6):
    """First step with a summed expected loss <= target, by running the recursion step by step."""
    a, sigma, w0 = (np.broadcast_to(np.asarray(x, dtype=float), np.broadcast(a, sigma, w0).shape) for x in (a, sigma, w0))
    m = np.array(w0, dtype=float) ** 2
    for t in range(max_steps + 1):
        if (0.5 * a * m).sum() <= target:
            return t
        m = (1 - lr * a) ** 2 * m + lr ** 2 * sigma ** 2 / B
    return math.inf


def _expected_loss(a, sigma, batch_size, lr, steps, w0):
    """A correct nqm_expected_loss, for the duration of this test (the recursion's closed form; elementwise
    on arrays, in case your steps_to_target calls it with the coordinates' arrays)."""
    a, sigma, w0 = (np.asarray(x, dtype=float) for x in (a, sigma, w0))
    r = (1 - lr * a) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        series = np.where(r == 1, float(steps), (1 - r ** steps) / (1 - r))  # sum of r^k, k < steps
    out = 0.5 * a * (r ** steps * w0 ** 2 + lr ** 2 * sigma ** 2 / batch_size * series)
    return float(out) if out.ndim == 0 else out


def _noise_floor(a, sigma, batch_size, lr):
    """A correct nqm_noise_floor, for the duration of this test (elementwise on arrays)."""
    a, sigma = np.asarray(a, dtype=float), np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(lr * a >= 2, np.inf, lr * sigma ** 2 / (2 * batch_size * (2 - lr * a)))
    return float(out) if out.ndim == 0 else out


def _with_correct_helpers(make):
    saved = {k: globals().get(k) for k in ("nqm_expected_loss", "nqm_noise_floor")}
    globals().update(nqm_expected_loss=_expected_loss, nqm_noise_floor=_noise_floor)
    try:
        return make()
    finally:
        for k, v in saved.items():
            globals().pop(k, None)
            if v is not None:
                globals()[k] = v


def _steps(case):
    a, sigma, B, lr, target, w0, *cap = case
    with quiet():
        got = steps_to_target(a, sigma, B, lr, target, w0, *cap)
    return float(got)


def _yours():
    out = {"scalar": _steps(SCALAR), "diagonal": _steps(DIAGONAL)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_steps(c) for c in HIDDEN]
    out["never"] = [_steps(c) for c in NEVER]
    out["zero"] = _steps(ZERO)
    out["capped"] = _steps(CAPPED)
    ### END HIDDEN TESTS
    return out


def run():
    return _with_correct_helpers(_yours)


def _check(got, case, label):
    expected = _brute(*case)
    assert_true(as_float(got) == expected, f"{label}: expected {expected} steps, got {got}")


def check(out):
    _check(out["scalar"], SCALAR, "steps_to_target(a=1, sigma=1, B=4, lr=0.1, target=0.05, w0=1)")
    _check(out["diagonal"], DIAGONAL, "steps_to_target on the 16-coordinate NQM with B=64, lr=0.4, target=0.008")
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        _check(got, case, f"steps_to_target with B={case[2]}, lr={case[3]}, target={case[4]}")
    for got, case in zip(out["never"], NEVER):
        assert_true(as_float(got) == math.inf, f"steps_to_target with B={case[2]}, lr={case[3]}: never, math.inf")
    assert_true(as_float(out["zero"]) == 0, "steps_to_target when the initial loss is already below the target: 0")
    assert_true(as_float(out["capped"]) == math.inf, "steps_to_target needing more than max_steps steps: math.inf")
    ### END HIDDEN TESTS


grade("test_steps_to_target", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### 1.0(e) The optimal learning rate [4 pts]
#
# Implement `optimal_lr(a, sigma, batch_size, target, w0, lrs, max_steps)`: of the learning rates `lrs`
# (an array), the one that reaches `target` in the **fewest** steps, as `(lr, steps)`; ties (the same
# number of steps) go to the **smallest** of those learning rates; `(math.nan, math.inf)` when none
# reaches the target. You may call your `steps_to_target` once per learning rate, but that is slow for
# small learning rates (hundreds of thousands of steps each): run the recursion for **all** learning
# rates at once (a 2-D array, learning rates by coordinates) and stop at the first step at which one of
# them reaches the target. Figure 1 calls it for 17 batch sizes with 200 learning rates each.

# %% nbgrader={"grade": false, "grade_id": "optimal_lr", "locked": false, "schema_version": 3, "solution": true, "task": false}
def optimal_lr(a, sigma, batch_size, target, w0, lrs, max_steps=1_000_000):
    """(lr, steps): the learning rate of lrs reaching target in the fewest steps (ties: the smallest lr),
    and its steps; (math.nan, math.inf) when none does. a, sigma, w0: numbers or 1-D arrays, as in
    steps_to_target."""
    ### BEGIN SOLUTION
    a, sigma, w0 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float)) for x in (a, sigma, w0)))
    lrs = np.sort(np.asarray(lrs, dtype=float).reshape(-1))
    lr = lrs[:, None]  # learning rates x coordinates
    stable = np.all(lr * a < 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(stable, np.sum(lr * sigma ** 2 / (2 * batch_size * (2 - lr * a)), axis=1), np.inf)
    usable = stable & (floor < target)
    second_moment = np.broadcast_to(w0 ** 2, (lrs.size, a.size)).copy()
    contraction, noise = (1 - lr * a) ** 2, lr ** 2 * sigma ** 2 / batch_size
    for t in range(max_steps + 1):
        reached = usable & (np.sum(0.5 * a * second_moment, axis=1) <= target)
        if reached.any():
            return float(lrs[reached][0]), t  # sorted: the first is the smallest
        if not usable.any():
            break
        second_moment = contraction * second_moment + noise
    return math.nan, math.inf
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_optimal_lr", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Your optimal_lr with a correct steps_to_target (and nqm_expected_loss, nqm_noise_floor) swapped in for
# the duration of the test, in case it uses them.
import math

import numpy as np

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

A16 = np.logspace(0.0, -2.0, 16)
LRS = np.geomspace(0.01, 1.9, 12)
CASE = (1.0, 1.0, 4, 0.05, 1.0, LRS)  # a, sigma, B, target, w0, lrs
### BEGIN HIDDEN TESTS
HIDDEN = [
    (A16, np.sqrt(A16), 1, 0.008, 1 / np.sqrt(A16), np.geomspace(0.003, 0.02, 9)),
    (A16, np.sqrt(A16), 4096, 0.008, 1 / np.sqrt(A16), np.geomspace(0.5, 1.99, 15)),
    (A16, np.sqrt(A16), 64, 0.008, 1 / np.sqrt(A16), np.geomspace(1.99, 0.05, 20)),  # given in decreasing order
    (1.0, 0.0, 1, 0.001, 1.0, np.array([1.05, 0.95, 0.5])),  # noiseless: 0.95 and 1.05 tie at two steps
]
NONE = (1.0, 1.0, 1, 0.01, 1.0, np.array([0.9, 1.5, 2.5]))  # floors 0.1 and 0.6 above the target; 2.5 unstable
### END HIDDEN TESTS


def _reference(a, sigma, B, target, w0, lrs, max_steps=10 ** 6):
    """Steps of every learning rate run together until the first reaches the target: (smallest such lr, steps)."""
    shape = np.broadcast(a, sigma, w0).shape or (1,)
    a, sigma, w0 = (np.broadcast_to(np.asarray(x, dtype=float), shape) for x in (a, sigma, w0))
    lrs = np.asarray(lrs, dtype=float)
    ok = [bool(np.all(lr * a < 2)) and np.sum(lr * sigma ** 2 / (2 * B * (2 - lr * a))) < target for lr in lrs]
    m = np.tile(w0 ** 2, (len(lrs), 1))
    for t in range(max_steps + 1):
        hit = [o and (0.5 * a * row).sum() <= target for o, row in zip(ok, m)]
        if any(hit):
            return min(lr for lr, h in zip(lrs, hit) if h), t
        if not any(ok):
            break
        m = (1 - lrs[:, None] * a) ** 2 * m + lrs[:, None] ** 2 * sigma ** 2 / B
    return math.nan, math.inf


def _steps_to_target(a, sigma, batch_size, lr, target, w0, max_steps=1_000_000):
    """A correct steps_to_target, for the duration of this test."""
    return _reference(a, sigma, batch_size, target, w0, np.array([float(lr)]), max_steps)[1]


def _expected_loss(a, sigma, batch_size, lr, steps, w0):
    """A correct nqm_expected_loss, for the duration of this test (the recursion's closed form, elementwise)."""
    a, sigma, w0 = (np.asarray(x, dtype=float) for x in (a, sigma, w0))
    r = (1 - lr * a) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        series = np.where(r == 1, float(steps), (1 - r ** steps) / (1 - r))  # sum of r^k, k < steps
    out = 0.5 * a * (r ** steps * w0 ** 2 + lr ** 2 * sigma ** 2 / batch_size * series)
    return float(out) if out.ndim == 0 else out


def _noise_floor(a, sigma, batch_size, lr):
    """A correct nqm_noise_floor, for the duration of this test (elementwise on arrays)."""
    a, sigma = np.asarray(a, dtype=float), np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(lr * a >= 2, np.inf, lr * sigma ** 2 / (2 * batch_size * (2 - lr * a)))
    return float(out) if out.ndim == 0 else out


def _with_correct_helpers(make):
    names = {"steps_to_target": _steps_to_target, "nqm_expected_loss": _expected_loss, "nqm_noise_floor": _noise_floor}
    saved = {k: globals().get(k) for k in names}
    globals().update(names)
    try:
        return make()
    finally:
        for k, v in saved.items():
            globals().pop(k, None)
            if v is not None:
                globals()[k] = v


def _call(case):
    a, sigma, B, target, w0, lrs = case
    with quiet():
        lr, steps = optimal_lr(a, sigma, B, target, w0, np.array(lrs))
    return [float(lr), float(steps)]


def _yours():
    out = {"public": _call(CASE)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_call(c) for c in HIDDEN]
    out["none"] = _call(NONE)
    ### END HIDDEN TESTS
    return out


def run():
    return _with_correct_helpers(_yours)


def _check(got, case, label):
    lr, steps = _reference(*case)
    assert_true(as_float(got[1]) == steps, f"{label}: the fewest steps are {steps}, got {got[1]}")
    assert_close(got[0], lr, rtol=1e-12, atol=0, name=f"{label}: the learning rate")


def check(out):
    _check(out["public"], CASE, "optimal_lr(a=1, sigma=1, B=4, target=0.05, w0=1, lrs=12 from 0.01 to 1.9)")
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        _check(got, case, f"optimal_lr with B={case[2]} and {len(case[5])} learning rates")
    assert_true(math.isnan(as_float(out["none"][0])) and as_float(out["none"][1]) == math.inf,
                "optimal_lr when no learning rate reaches the target: (math.nan, math.inf)")
    ### END HIDDEN TESTS


grade("test_optimal_lr", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### 1.0(f) The critical batch size [2 pts]
#
# Figure 1 bends between two straight lines (on log-log axes). At small batch sizes the steps fall like
# $E_{\min} / B$: each example removes the same amount of noise, so doubling the batch halves the steps
# and the number of examples processed, $B \times \text{steps}$, stays at its minimum $E_{\min}$. At large
# batch sizes the steps level off at $S_{\min}$, the steps of noiseless gradient descent with the best
# learning rate. The **critical batch size** is where the two lines cross (McCandlish et al. 2018):
# $B_{\text{crit}} = E_{\min} / S_{\min}$; there the curve is at about $2 S_{\min}$.
#
# Implement `critical_batch_size(batch_sizes, steps)` from a measured curve (batch sizes increasing,
# spanning both regimes): $E_{\min}$ from the smallest batch size ($B \times$ its steps) and $S_{\min}$
# the steps at the largest.

# %% nbgrader={"grade": false, "grade_id": "critical_batch_size", "locked": false, "schema_version": 3, "solution": true, "task": false}
def critical_batch_size(batch_sizes, steps):
    """E_min / S_min: E_min = the smallest batch size times its steps, S_min = the steps at the largest."""
    ### BEGIN SOLUTION
    batch_sizes, steps = np.asarray(batch_sizes, dtype=float), np.asarray(steps, dtype=float)
    return float(batch_sizes[0] * steps[0] / steps[-1])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_critical_batch_size", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np

from course_lib.grading.checks import assert_close, grade, quiet

SIZES = 2.0 ** np.arange(11)  # 1 .. 1024
STEPS = np.maximum(4000 / SIZES, 25)  # E_min = 4000 examples, S_min = 25 steps
### BEGIN HIDDEN TESTS
HIDDEN_SIZES = [4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]
HIDDEN_STEPS = [110 + 42345 / b for b in HIDDEN_SIZES]
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"public": critical_batch_size(SIZES.copy(), STEPS.copy())}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = critical_batch_size(list(HIDDEN_SIZES), list(HIDDEN_STEPS))
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["public"], 160.0, rtol=1e-9, atol=0, name="critical_batch_size(1 .. 1024, max(4000 / B, 25))")
    ### BEGIN HIDDEN TESTS
    expected = HIDDEN_SIZES[0] * HIDDEN_STEPS[0] / HIDDEN_STEPS[-1]
    assert_close(out["hidden"], expected, rtol=1e-9, atol=0, name="critical_batch_size of lists, S_min + E_min / B")
    ### END HIDDEN TESTS


grade("test_critical_batch_size", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### The handout's Figure 1, from your code
#
# For each batch size $B = 1, 2, 4, \dots, 65536$ the cell below tunes the learning rate with your
# `optimal_lr` (200 learning rates from $10^{-4}$ to just below the stability limit $2 / a_{\max} = 2$)
# on the 16-coordinate NQM, and plots the tuned learning rate (left) and the steps to the target
# (right) against the batch size, with the two asymptotes (dashed: $E_{\min} / B$; dotted: $S_{\min}$)
# and your critical batch size (red). The points **A**, **B** and **C** are placed as on the handout's
# Figure 1 (see below): A on the straight part at a small batch size, B at the bend, C on the plateau.

# %% tags=["experiment"]
BATCH_SIZES = 2.0 ** np.arange(0, 17, 4 if fast_mode() else 1)
LEARNING_RATES = np.geomspace(1e-4, 1.999, 60 if fast_mode() else 200)
tuned = [optimal_lr(NQM_A, NQM_SIGMA, B, NQM_TARGET, NQM_W0, LEARNING_RATES)
         for B in tqdm(BATCH_SIZES, desc="tuning the learning rate per batch size", unit="batch size")]
tuned_lr = np.array([lr for lr, _ in tuned])
tuned_steps = np.array([steps for _, steps in tuned], dtype=float)
b_crit = critical_batch_size(BATCH_SIZES, tuned_steps)
e_min, s_min = BATCH_SIZES[0] * tuned_steps[0], tuned_steps[-1]
points = {"A": b_crit / 64, "B": b_crit, "C": b_crit * 64}
points = {k: int(np.argmin(np.abs(np.log(BATCH_SIZES / v)))) for k, v in points.items()}  # the nearest B run

fig, (ax_lr, ax_steps) = plt.subplots(1, 2, figsize=(12, 4.2))
ax_lr.loglog(BATCH_SIZES, tuned_lr, "o-", ms=4, label="tuned learning rate")
ax_lr.loglog(BATCH_SIZES, tuned_lr[0] / BATCH_SIZES[0] * BATCH_SIZES, "--", color="grey", label="proportional to B")
ax_lr.axhline(tuned_lr[-1], ls=":", color="grey", label="the largest batch's")
ax_lr.set(ylim=(0.5 * tuned_lr.min(), 3 * tuned_lr.max()), xlabel="batch size B", ylabel="optimal learning rate",
          title="Optimal learning rate vs batch size")
ax_steps.loglog(BATCH_SIZES, tuned_steps, "o-", ms=4, label="steps to the target (lr tuned)")
ax_steps.loglog(BATCH_SIZES, e_min / BATCH_SIZES, "--", color="grey", label=r"$E_{min} / B$")
ax_steps.axhline(s_min, ls=":", color="grey", label=r"$S_{min}$")
ax_steps.set(ylim=(0.5 * s_min, 2 * tuned_steps.max()), xlabel="batch size B", ylabel="steps to the target",
             title="Figure 1: steps to the target loss vs batch size")
for name, i in points.items():
    ax_steps.annotate(name, (BATCH_SIZES[i], tuned_steps[i]), xytext=(0, 10), textcoords="offset points",
                      ha="center", fontsize=13, fontweight="bold")
for ax in (ax_lr, ax_steps):
    ax.axvline(b_crit, color="red", lw=1)
    ax.text(b_crit, ax.get_ylim()[0], f" critical B = {b_crit:.0f}", color="red", va="bottom")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
fig.tight_layout()
print(f"E_min = {e_min:,.0f} examples, S_min = {s_min:,.0f} steps, critical batch size {b_crit:,.0f}")
pd.DataFrame({"batch size": BATCH_SIZES.astype(int), "optimal lr": tuned_lr, "steps": tuned_steps.astype(int),
              "examples (B x steps)": (BATCH_SIZES * tuned_steps).astype(int)}).set_index("batch size").T

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_figure", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1.0** [8 pts] Read your two plots. (i) How does the tuned learning rate grow with $B$ at small
# batch sizes (by what factor per doubling), and where does it stop growing? Explain both ends with
# `nqm_noise_floor` and the stability limit. (ii) Report your $E_{\min}$, $S_{\min}$ and critical batch
# size, and by what factor quadrupling the batch size cuts the steps far below it and far above it.
# (iii) The scalar NQM would have $S_{\min} = 1$: why does this NQM need about a hundred steps even with
# exact gradients?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_figure", "locked": false, "points": 8, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (i) At small batch sizes the tuned learning rate doubles when $B$ doubles (0.0072 at
# $B = 1$, 0.0145 at $B = 2$, 0.029 at $B = 4$, 0.11 at $B = 16$): the noise floor $\eta \sigma^2 / (2B(2 -
# \eta a)) \approx \eta \sigma^2 / (4B)$ depends on $\eta / B$, and in the noise-dominated regime the best
# learning rate is the largest whose floor stays safely below the target, so $\eta \propto B$ (the linear
# scaling rule). From $B \approx 4{,}096$ on it stays at 1.90, just below the stability limit $2 / a_{\max} =
# 2$: the gradient is nearly exact and the curvature sets the step (noiseless gradient descent's optimum is
# $\approx 2 / (a_{\max} + a_{\min}) = 1.98$). (ii) $E_{\min} = 42{,}485$ examples (at $B = 1$), $S_{\min} =
# 114$ steps (at $B = 65{,}536$), critical batch size $42{,}485 / 114 \approx 373$. Far below it, quadrupling
# $B$ divides the steps by 4 (42,485 at $B = 1$, 10,677 at $B = 4$); far above it, it saves almost nothing
# (125 at 4,096, 116 at 16,384, 114 at 65,536). (iii) The learning rate is capped by the sharpest
# coordinate ($\eta < 2 / a_{\max} = 2$), while the flattest ($a = 0.01$) shrinks only by $(1 - 0.019)^2$ per
# step at that rate: its loss alone starts at 1/2 and must fall below the whole target, 0.008, a factor
# 62.5, which takes about $\ln(62.5) / (2 \eta a_{\min}) \approx 109$ steps (a condition number of 100
# means about a hundred steps). In the scalar model $\eta = 1/a$ removes the whole error in one step.
#
# *Rubric:* 3 pts (i) linear growth (x2 per doubling) explained by the floor's $\eta / B$, saturation
# explained by stability/curvature; 3 pts (ii) the three numbers from the student's run (about 42,500 /
# 114 / 373 with the notebook's grid; 110 and 385 with a finer one) and the two factors (about 4 and
# about 1); 2 pts (iii) ill-conditioning: the step size
# capped by the largest curvature, the smallest curvature converging slowly.

# %% [markdown]
# ### The handout's questions
#
# **The figures of the handout** (you cannot see the PDF: here is what they show).
#
# - **Figure 1** (after Shallue et al. 2018) is a cartoon of what you just drew: on log-log axes, the
#   number of training steps needed to reach a given validation loss (y) against the batch size (x),
#   with the learning rate and other hyperparameters tuned for each point. At small batch sizes the
#   curve is a straight line falling with slope $-1$ (doubling the batch halves the steps: *perfect
#   scaling*); it then bends (the "knee") and flattens into a horizontal plateau at large batch sizes
#   (more examples per step no longer save steps: *diminishing returns*). **Point A** lies on the falling
#   straight part, at a small batch size; **point B** at the knee, where the line starts to bend; **point
#   C** on the flat plateau, at a large batch size. (They sit where your plot marks them.)
# - **Figure 2** (Kaplan et al. 2020): the test loss of language models of sizes from $10^3$ to $10^9$
#   parameters, against the tokens processed (left) and against the compute in petaflop-days (right).
#   Larger models reach a given loss with fewer tokens (they are more sample-efficient), and in the right
#   panel the lower envelope of the curves (the best loss for each amount of compute) is made of ever
#   larger models as the compute grows; each curve flattens when its model is too small for the compute.
# - **Figure 3** (Kaplan et al. 2020): the test loss of models of different sizes against $S_{\min}$,
#   the steps taken at the critical batch size: larger models reach a lower loss in fewer steps.
#
# **1(a)** As the batch size increases, how do you expect the optimal learning rate to change?
#
# **1.1(a)** For the three points (A, B, C) of Figure 1, which one has the most efficient batch size
# (in terms of the best resource and training-time trade-off)? Assume scalable (but not free) compute,
# so that minibatches are parallelised efficiently.
#
# **1.1(b)** Figure 1 shows two regimes: in the *noise-dominated* regime the bottleneck is the gradient
# noise; in the *curvature-dominated* regime it is the ill-conditioned loss landscape. For points A and
# B, which regime do they belong to, and what would you do to accelerate training? Options: regimes
# `"noise dominated"` / `"curvature dominated"`; ways to accelerate training `"use higher order
# optimizers"` / `"seek parallel compute"`.
#
# **1.2(a)** You have trained a neural language model with adequate performance, and you now have more
# compute (in PF-days) to improve its test performance, training from scratch. Which is the best option?
# **A.** Train the same model with the same batch size for more steps. **B.** Train the same model with a
# larger batch size (after tuning the learning rate), for the same number of steps. **C.** Increase the
# model size.
#
# Put your answers in `ANSWERS` below (autograded, 1 point each test), exactly with these keys and one
# of the options given for each (strings):
#
# | key | options |
# |---|---|
# | `"1a"` | `"increase"`, `"decrease"`, `"unchanged"` |
# | `"1.1a"` | `"A"`, `"B"`, `"C"` |
# | `"1.1b A regime"`, `"1.1b B regime"` | `"noise dominated"`, `"curvature dominated"` |
# | `"1.1b A accelerate"`, `"1.1b B accelerate"` | `"use higher order optimizers"`, `"seek parallel compute"` |
# | `"1.2a"` | `"A"`, `"B"`, `"C"` |
#
# (Point A's two answers are graded together, as are point B's.) Then justify each answer in the
# written cells after the tests.

# %% nbgrader={"grade": false, "grade_id": "ANSWERS", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
ANSWERS = {
    "1a": "increase",
    "1.1a": "B",
    "1.1b A regime": "noise dominated",
    "1.1b A accelerate": "seek parallel compute",
    "1.1b B regime": "curvature dominated",
    "1.1b B accelerate": "use higher order optimizers",
    "1.2a": "C",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_ANSWERS_1a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade

KEYS = {"1a": ("increase", "decrease", "unchanged")}


def run():
    return {k: ANSWERS.get(k) if isinstance(ANSWERS, dict) else None for k in KEYS}


def check(out):
    for key, options in KEYS.items():
        assert_true(out[key] in options, f'ANSWERS["{key}"] should be one of {options}, got {out[key]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["1a"] == "increase", 'ANSWERS["1a"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_ANSWERS_1a", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_ANSWERS_1_1a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade

KEYS = {"1.1a": ("A", "B", "C")}


def run():
    return {k: ANSWERS.get(k) if isinstance(ANSWERS, dict) else None for k in KEYS}


def check(out):
    for key, options in KEYS.items():
        assert_true(out[key] in options, f'ANSWERS["{key}"] should be one of {options}, got {out[key]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["1.1a"] == "B", 'ANSWERS["1.1a"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_ANSWERS_1_1a", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_ANSWERS_1_1b_A", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade

KEYS = {"1.1b A regime": ("noise dominated", "curvature dominated"),
        "1.1b A accelerate": ("use higher order optimizers", "seek parallel compute")}


def run():
    return {k: ANSWERS.get(k) if isinstance(ANSWERS, dict) else None for k in KEYS}


def check(out):
    for key, options in KEYS.items():
        assert_true(out[key] in options, f'ANSWERS["{key}"] should be one of {options}, got {out[key]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["1.1b A regime"] == "noise dominated" and out["1.1b A accelerate"] == "seek parallel compute",
                "the answers for point A are not both right")
    ### END HIDDEN TESTS


grade("test_ANSWERS_1_1b_A", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_ANSWERS_1_1b_B", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade

KEYS = {"1.1b B regime": ("noise dominated", "curvature dominated"),
        "1.1b B accelerate": ("use higher order optimizers", "seek parallel compute")}


def run():
    return {k: ANSWERS.get(k) if isinstance(ANSWERS, dict) else None for k in KEYS}


def check(out):
    for key, options in KEYS.items():
        assert_true(out[key] in options, f'ANSWERS["{key}"] should be one of {options}, got {out[key]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["1.1b B regime"] == "curvature dominated"
                and out["1.1b B accelerate"] == "use higher order optimizers",
                "the answers for point B are not both right")
    ### END HIDDEN TESTS


grade("test_ANSWERS_1_1b_B", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_ANSWERS_1_2a", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade

KEYS = {"1.2a": ("A", "B", "C")}


def run():
    return {k: ANSWERS.get(k) if isinstance(ANSWERS, dict) else None for k in KEYS}


def check(out):
    for key, options in KEYS.items():
        assert_true(out[key] in options, f'ANSWERS["{key}"] should be one of {options}, got {out[key]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["1.2a"] == "C", 'ANSWERS["1.2a"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_ANSWERS_1_2a", run, check)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Justify 1(a)** [3 pts] in 2-3 sentences (hint: how does the minibatch gradient noise change with
# $B$?). Use your NQM: the noise floor and your tuned learning rates.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The minibatch gradient's noise has variance $\sigma^2 / B$, so a larger batch gives a
# more accurate gradient, and a larger step can be taken without the noise dominating: in the NQM the
# noise floor $\eta \sigma^2 / (2B(2 - \eta a))$ depends on $\eta / B$, so the best learning rate grows
# about linearly with $B$ (it doubled per doubling of $B$ in my Figure 1). The growth stops at large
# batch sizes, where the gradient is nearly exact and the learning rate is limited by the curvature
# (stability, $\eta < 2 / a_{\max}$).
#
# *Rubric:* 1 pt noise variance $\sigma^2 / B$ falls with $B$; 1 pt so a larger learning rate is
# affordable (linear scaling in the noise-dominated regime, e.g. the floor's $\eta / B$); 1 pt the
# saturation at large $B$ (curvature/stability limit).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_1a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Justify 1.1(a)** [3 pts] in 1-2 sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_1a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* B, at the knee (the critical batch size): up to it, a larger batch cuts the steps
# (the training time) almost proportionally at almost no extra cost in examples (compute); past it,
# larger batches (C) cost more compute for hardly fewer steps, while smaller ones (A) take many more
# steps for the same compute. B buys nearly the shortest time for nearly the least compute
# (McCandlish et al.: at $B_{\text{crit}}$, about $2 S_{\min}$ steps and $2 E_{\min}$ examples).
#
# *Rubric:* 1 pt B; 1 pt past the knee extra compute buys few steps (C wasteful); 1 pt before it time
# can still be cut nearly for free (A slow).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_1b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Justify 1.1(b)** [3 pts] in 1-2 sentences per point: why is each point in its regime, and why does
# your choice accelerate training there?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_1b", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* A is noise-dominated: on the slope $-1$ part, doubling the batch halves the steps,
# so the gradient noise is the bottleneck; seek parallel compute (larger batches spread over more
# devices) to cut the steps proportionally. B is where the curve stops falling like $1/B$ and bends
# into the plateau, where more examples per step no longer help and the number of steps is set by the
# curvature (ill-conditioning: the learning rate is capped by the sharpest direction while flat ones
# converge slowly); higher-order (preconditioned) optimisers such as K-FAC or Adam-like methods reduce
# that bottleneck, as the NQM's $S_{\min} \approx 110$ steps with a condition number of 100 shows.
#
# *Instructor note.* B sits at the knee, on the boundary between the regimes; the commonly used key
# (and this notebook's autograded answer) puts it in the curvature-dominated regime, with higher-order
# optimisers. Give the justification point to a student who argues that B is at the boundary, as long
# as the remedies match the regimes (parallel compute for noise, better optimisers for curvature).
#
# *Rubric:* 1 pt A's regime justified (slope $-1$, noise); 1 pt B's regime justified (bend/plateau,
# curvature); 1 pt the remedies matched to the bottlenecks.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_2a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Justify 1.2(a)** [3 pts] in 2-3 sentences, from Figures 2 and 3 as described above.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_2a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* C, increase the model size. Figure 2 shows that for a fixed compute budget the best
# test loss comes from ever larger models as the compute grows (a small model's curve flattens: more
# steps or tokens give diminishing returns), and larger models are more sample-efficient; Figure 3 shows
# that larger models reach lower loss in fewer steps. A larger batch (B) only helps up to the critical
# batch size and does not lower the loss the model can reach; more steps (A) on the same model hits the
# flattening of its curve.
#
# *Rubric:* 1 pt C; 1 pt compute-efficient frontier made of larger models / sample efficiency (Fig. 2);
# 1 pt why A and B give diminishing returns (plateau of a fixed size; critical batch size).

# %% [markdown]
# ---
# ## 2. Scaling laws and IsoFLOP profiles [55 pts]
#
# A **scaling law** relates a model's loss to its size $N$ (parameters), the data $D$ it is trained on
# (tokens) and the compute $C$ it costs (FLOPs). With a fixed budget $C$ you can train a large model on
# few tokens or a small model on many: which is best? Hoffmann et al. (2022) answer it with **IsoFLOP
# profiles**: train models of several sizes, each for exactly the budget $C$; plot the final loss
# against $\log N$ (a valley: too small a model underfits, too large a one sees too few tokens); its
# minimum is the compute-optimal size $N_{\text{opt}}(C)$. Repeat for several budgets, fit a power law
# $N_{\text{opt}} = k\, C^{\alpha}$ through the minima, and extrapolate to a budget you cannot afford.
# Chinchilla found $\alpha \approx 0.5$: parameters and tokens should grow together, about **20 tokens
# per parameter**.
#
# ### 2.1 Counting FLOPs [6 pts]
#
# **The rule of thumb** (Kaplan et al. 2020): training costs $C \approx 6 N D$ FLOPs. Per token, the
# forward pass multiplies every weight by an input and adds the product to a sum: $2N$ FLOPs; the
# backward pass computes, for every matrix product, the gradient with respect to its input (to pass it
# on) **and** the gradient with respect to the weights, each as costly as the forward product: $4N$.
#
# Implement `flops_per_token(n_params)`: the training FLOPs per token of a model with `n_params`
# parameters, $6N$. Its test compares it with PyTorch's own FLOP counter
# (`torch.utils.flop_counter.FlopCounterMode`) on stacks of linear layers, within 2 % (the counter
# ignores the biases, which $6N$ counts).

# %% nbgrader={"grade": false, "grade_id": "flops_per_token", "locked": false, "schema_version": 3, "solution": true, "task": false}
def flops_per_token(n_params):
    """Training FLOPs per token of a model of n_params parameters: forward 2N, backward 4N."""
    ### BEGIN SOLUTION
    return 6 * n_params
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_flops_per_token", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.grading.checks import assert_close, grade, quiet

PUBLIC = (64, 128, 64)  # the widths of a stack of linear layers
TOKENS = 37
### BEGIN HIDDEN TESTS
HIDDEN = [(96, 96, 96, 96), (64, 256, 256, 64), (512, 512)]
### END HIDDEN TESTS


def _stack(widths):
    return nn.Sequential(*[nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:])])


def _counted(widths):
    """FLOPs of one training step on TOKENS tokens, counted by PyTorch (inputs needing gradients, as
    activations inside a model do)."""
    stack = _stack(widths)
    with FlopCounterMode(display=False) as counter:
        stack(torch.randn(TOKENS, widths[0], requires_grad=True)).sum().backward()
    return counter.get_total_flops()


def _yours(widths):
    n = sum(p.numel() for p in _stack(widths).parameters())
    with quiet():
        return flops_per_token(n)


def run():
    out = {"public": _yours(PUBLIC)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(w) for w in HIDDEN]
    with quiet():
        out["exact"] = flops_per_token(1000)
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["public"] * TOKENS, _counted(PUBLIC), rtol=0.02, atol=0,
                 name=f"flops_per_token(N) x {TOKENS} tokens, linear layers {PUBLIC} (against FlopCounterMode)")
    ### BEGIN HIDDEN TESTS
    for got, widths in zip(out["hidden"], HIDDEN):
        assert_close(got * TOKENS, _counted(widths), rtol=0.02, atol=0, name=f"flops_per_token, linear layers {widths}")
    assert_close(out["exact"], 6000, rtol=1e-12, atol=0, name="flops_per_token(1000)")
    ### END HIDDEN TESTS


grade("test_flops_per_token", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# **The actual model.** Your `DecoderOnlyTransformer(vocab_size, hidden_size, num_layers, num_heads)`
# from `nmt_pig_latin` is: an embedding $V \times H$ plus the fixed positional encodings; per layer,
# causal self-attention (one head: a `CausalScaledDotAttention` with linear maps $Q$, $K$, $V$ of
# $H \times H$ with biases; $h > 1$ heads: $h$ such heads, their contexts concatenated and projected by
# $W^O$, a linear map $hH \to H$) plus a residual, then an MLP (one linear map $H \times H$ and a ReLU)
# plus a residual; finally a linear map $H \to V$ to the logits. On sequences of $T$ tokens, count its
# FLOPs as `FlopCounterMode` does, that is **matrix products only**:
#
# - a linear map with an $n_{in} \times n_{out}$ weight costs $2\, n_{in} n_{out}$ FLOPs per token
#   forward (its bias, an addition, is not counted);
# - each attention head computes the scores $Q K^\top$ and the weighted sum of the values, two
#   products of a $T \times H$ by an $H \times T$ (or $T \times T$ by $T \times H$) matrix: $2TH$ FLOPs
#   per token each, $4TH$ per token and head forward (the whole $T \times T$ matrix: the causal mask is
#   applied after the product);
# - the embedding lookup, the positional encodings, the softmax, the scaling, the residual additions
#   and the ReLU are not counted;
# - training costs 3 times the forward pass (every product has two gradient products of its size).
#
# Implement `decoder_flops_per_token(vocab_size, hidden_size, num_layers, num_heads, seq_len)`: the
# training FLOPs per token of this model on sequences of `seq_len` $= T$ tokens. (For example, $V = 30$,
# $H = 32$, one layer, one head and $T = 20$ give 38,016.) Its test compares it with `FlopCounterMode`
# on such models.

# %% nbgrader={"grade": false, "grade_id": "decoder_flops_per_token", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decoder_flops_per_token(vocab_size, hidden_size, num_layers, num_heads, seq_len):
    """Training FLOPs per token of DecoderOnlyTransformer(vocab_size, hidden_size, num_layers, num_heads)
    on sequences of seq_len tokens, counting matrix products only (forward x 3)."""
    ### BEGIN SOLUTION
    V, H, L, h, T = vocab_size, hidden_size, num_layers, num_heads, seq_len
    per_layer = h * 3 * H * H + (h * H * H if h > 1 else 0) + H * H  # Q, K, V of each head; W_O; the MLP
    weights = L * per_layer + H * V  # and the output layer
    forward = 2 * weights + L * h * 4 * T * H  # two FLOPs per weight, plus attention's two T x T products
    return 3 * forward
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decoder_flops_per_token", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_close, grade, quiet

# (V, H, layers, heads, T): FLOPs per token counted by FlopCounterMode on one training step of the model
PUBLIC = {(30, 32, 1, 1, 20): 38_016, (29, 16, 2, 3, 7): 50_784}
### BEGIN HIDDEN TESTS
import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

HIDDEN = [(30, 64, 2, 1, 23), (30, 24, 3, 2, 1), (29, 16, 2, 3, 7), (30, 128, 3, 1, 46), (30, 32, 3, 4, 12)]


class _Head(nn.Module):
    def __init__(self, H):
        super().__init__()
        self.Q, self.K, self.V = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)

    def forward(self, x):
        s = torch.bmm(self.Q(x), self.K(x).transpose(1, 2)) / math.sqrt(x.shape[-1])  # (B, T, T)
        T = x.shape[1]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return torch.bmm(s.softmax(-1), self.V(x))


class _Model(nn.Module):
    def __init__(self, V, H, L, h):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.heads = nn.ModuleList([nn.ModuleList([_Head(H) for _ in range(h)]) for _ in range(L)])
        self.w_o = nn.ModuleList([nn.Linear(h * H, H) for _ in range(L)]) if h > 1 else None
        self.mlps = nn.ModuleList([nn.Linear(H, H) for _ in range(L)])
        self.out = nn.Linear(H, V)

    def forward(self, x):
        x = self.emb(x)
        for i, (heads, mlp) in enumerate(zip(self.heads, self.mlps)):
            c = torch.cat([head(x) for head in heads], -1)
            x = x + (self.w_o[i](c) if self.w_o is not None else c)
            x = x + torch.relu(mlp(x))
        return self.out(x)


def _counted(V, H, L, h, T):
    torch.manual_seed(0)
    model = _Model(V, H, L, h)
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(0, V, (3, T))).sum().backward()
    return counter.get_total_flops() / (3 * T)
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"public": [decoder_flops_per_token(*case) for case in PUBLIC]}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [decoder_flops_per_token(*case) for case in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, (case, expected) in zip(out["public"], PUBLIC.items()):
        assert_close(got, expected, rtol=1e-9, atol=0, name=f"decoder_flops_per_token{case}")
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        assert_close(got, _counted(*case), rtol=1e-9, atol=0, name=f"decoder_flops_per_token{case} (FlopCounterMode)")
    ### END HIDDEN TESTS


grade("test_decoder_flops_per_token", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# ### 2.2 Your model from `nmt_pig_latin`, and its FLOPs [4 pts]
#
# The cell below imports your `DecoderOnlyTransformer`, `decoder_only_example` and `decoder_only_loss`
# from your completed `nmt_pig_latin` notebook with `course_lib.notebook_import.import_from_notebook`: it
# reads the notebook file and runs **only** these definitions, what they use (your attention classes,
# your `positional_encoding`, your imports) and nothing else (no setup, no data, no training, no
# tests). It looks for `../nmt_pig_latin/nmt_pig_latin.ipynb` (the two assignments side by side, as
# `make lab` lays them out), then for `nmt_pig_latin.ipynb` in this folder (on Colab: upload it with the
# Files panel); set `NMT_NOTEBOOK` to another path if yours is elsewhere. Save `nmt_pig_latin` first:
# the file is read, not the notebook open in another tab. If it cannot import them it says why and what
# to do; the cells that need the model then skip. If you cannot import them, paste your classes and
# functions into the cell after it and run that cell.

# %% tags=["experiment"]
from course_lib.notebook_import import NotebookImportError, import_from_notebook

NMT_NOTEBOOK = None  # None: ../nmt_pig_latin/nmt_pig_latin.ipynb, then ./nmt_pig_latin.ipynb; or a path
try:
    nmt_code = import_from_notebook(NMT_NOTEBOOK, ["DecoderOnlyTransformer", "decoder_only_example",
                                                   "decoder_only_loss"])
    DecoderOnlyTransformer = nmt_code.DecoderOnlyTransformer
    decoder_only_example, decoder_only_loss = nmt_code.decoder_only_example, nmt_code.decoder_only_loss
    print(f"imported your DecoderOnlyTransformer, decoder_only_example and decoder_only_loss from {nmt_code.__file__}")
except NotebookImportError as error:
    DecoderOnlyTransformer = decoder_only_example = decoder_only_loss = None
    print(f"Your model could not be imported, so the cells that train it will skip.\n{error}")

# %% tags=["experiment"]
# Only if the cell above could not import your model: paste here, from your nmt_pig_latin notebook, your
# DecoderOnlyTransformer and every class and function it uses (CausalScaledDotAttention,
# MultiHeadCausalScaledDotAttention, positional_encoding, ...), decoder_only_example and decoder_only_loss,
# then run this cell and the ones below.

# %% [markdown]
# **Both counts against PyTorch's.** For a few small models built with your class, the cell below
# counts the FLOPs of one training step (forward and backward) with `FlopCounterMode`, per token, and
# compares them with your `decoder_flops_per_token` and with `6 N` (your `flops_per_token` of the
# model's parameter count).

# %% tags=["experiment"]
def counted_flops_per_token(model, vocab_size, seq_len, batch=4):
    """FLOPs of one training step on a batch (batch, T) of random tokens, per token, by FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(0, vocab_size, (batch, seq_len))).sum().backward()
    return counter.get_total_flops() / (batch * seq_len)


if DecoderOnlyTransformer is None:
    print("skipped: your model could not be imported (see above)")
else:
    rows = []
    for V, H, L, heads, T in [(30, 16, 3, 1, 20), (30, 32, 3, 1, 20), (30, 64, 3, 1, 20), (30, 128, 3, 1, 20),
                              (30, 32, 3, 1, 46), (30, 32, 3, 4, 20)]:
        torch.manual_seed(0)
        model = DecoderOnlyTransformer(V, H, L, heads)
        n = sum(p.numel() for p in model.parameters())
        counted = counted_flops_per_token(model, V, T)
        rows.append({"H": H, "heads": heads, "T": T, "N": n, "FlopCounterMode": counted,
                     "decoder_flops_per_token": decoder_flops_per_token(V, H, L, heads, T),
                     "6N": flops_per_token(n), "6N / counted": flops_per_token(n) / counted,
                     "embedding share of N": V * H / n})
    display(pd.DataFrame(rows).set_index(["H", "heads", "T"]).round(3))

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_flops", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2.1** [4 pts] Does your `decoder_flops_per_token` match `FlopCounterMode`? By how much does `6 N`
# differ from the counted FLOPs for these models, and in which direction? Explain the gap with what
# `6 N` counts but costs nothing, and what costs FLOPs but has no parameters; say how the gap changes
# with $H$ and with $T$, and why `6 N` is nonetheless accurate for large language models.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_flops", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* `decoder_flops_per_token` equals the counter exactly. `6 N` is below it for every model
# of the table: 22 % below at $H = 16$, 14 % at $H = 32$, 8 % at $H = 64$, 5 % at $H = 128$ ($T = 20$, one
# head), 34 % at $H = 32$ with $T = 46$, 19 % with four heads. It errs both ways: it counts the
# embedding's $VH$ parameters, a table lookup that costs no FLOPs (7 % of $N$ at $H = 32$, 2 % at $H = 128$),
# and the biases, additions the counter ignores; and it misses attention's two $T \times T$ products, which
# have no parameters ($12 TH$ per head and layer per token in training). Here the missing attention wins.
# As $H$ grows the weights ($\propto H^2$) outgrow both attention ($\propto TH$) and the embedding
# ($\propto VH$), so $6N$ approaches the count; longer sequences and more heads make attention's share
# larger. For large language models ($H$ in the thousands, the embedding a small share of $N$, $T$ not
# much larger than $H$) the weights dominate and $6N$ is accurate (Kaplan et al. add $6 n_{layer} T d$ for
# attention).
#
# *Rubric:* 1 pt agreement reported; 1 pt embedding (lookup, no FLOPs) and biases; 1 pt attention
# products without parameters; 1 pt the trend with $H$ and $T$ and why $6N$ holds for large models.

# %% [markdown]
# ### 2.3 Fitting IsoFLOP profiles and the compute-optimal law [13 pts]
#
# **One profile.** At one budget $C$, the final losses $L_i$ of models of sizes $N_i$ (spread
# geometrically) form a valley in $\log N$. Implement `fit_isoflop_minimum(n_params, losses)`: fit
# $L = c_2 x^2 + c_1 x + c_0$ with $x = \log_{10} N$ by least squares (`np.polyfit`), and return
# `(n_opt, coeffs)`: the parabola's vertex as a number of parameters, $N_{\text{opt}} = 10^{-c_1 / (2
# c_2)}$, and `coeffs` $= [c_2, c_1, c_0]$ (`np.polyfit`'s order, so that `np.polyval(coeffs,
# np.log10(n))` evaluates it). Raise a `ValueError` when the parabola opens downwards ($c_2 \le 0$: no
# minimum). Why in $\log N$? The profiles are parabola-like on a log axis (Hoffmann et al.'s approach 2),
# and the sizes are spread geometrically, so a fit in $N$ itself would be dominated by the largest
# models and its vertex would land in the wrong place.

# %% nbgrader={"grade": false, "grade_id": "fit_isoflop_minimum", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fit_isoflop_minimum(n_params, losses):
    """(n_opt, coeffs): the vertex of the least-squares parabola of losses in x = log10(n_params), and its
    coefficients [c2, c1, c0]. ValueError when c2 <= 0 (no minimum)."""
    ### BEGIN SOLUTION
    x = np.log10(np.asarray(n_params, dtype=float))
    coeffs = np.polyfit(x, np.asarray(losses, dtype=float), 2)
    if not coeffs[0] > 0:
        raise ValueError(f"the parabola in log10 N opens downwards (c2 = {coeffs[0]:.3g}): no minimum")
    return float(10 ** (-coeffs[1] / (2 * coeffs[0]))), coeffs
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_isoflop_minimum", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import numpy as np

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

N_STAR, C2 = 3e5, 0.3
SIZES = N_STAR * np.logspace(-0.8, 1.0, 7)  # seven models, not centred on the optimum
LOSSES = C2 * (np.log10(SIZES) - np.log10(N_STAR)) ** 2 + 2.0
### BEGIN HIDDEN TESTS
E_, A_, B_, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28  # Chinchilla's fitted loss E + A / N^alpha + B / D^beta
G = (ALPHA * A_ / (BETA * B_)) ** (1 / (ALPHA + BETA))


def _n_opt(c):
    """The exact compute-optimal size of the Chinchilla-form loss at budget c = 6 N D."""
    return G * (c / 6) ** (BETA / (ALPHA + BETA))


def _profiles():
    rng = np.random.default_rng(0)
    out = []
    for c in [8e10 * 2 ** k for k in range(5)]:
        n = _n_opt(c) * np.logspace(-0.5, 0.7, 7)
        out.append((c, n, E_ + A_ / n ** ALPHA + B_ / (c / (6 * n)) ** BETA + rng.normal(0, 1e-3, n.size)))
    return out
### END HIDDEN TESTS


def run():
    with quiet():
        n_opt, coeffs = fit_isoflop_minimum(SIZES.copy(), LOSSES.copy())
    out = {"n_opt": n_opt, "coeffs": np.asarray(coeffs, dtype=float)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        n2 = 2e7 * np.logspace(-1.0, 0.6, 6)
        out["other"] = fit_isoflop_minimum(list(n2), list(0.05 * (np.log10(n2) - np.log10(2e7)) ** 2 + 3.0))[0]
        out["chinchilla"] = [fit_isoflop_minimum(n, losses)[0] for _, n, losses in _profiles()]
        n3 = np.array([1e4, 1e5, 1e6])
        try:
            fit_isoflop_minimum(n3, -((np.log10(n3) - 5) ** 2))
            out["concave"] = "no error"
        except Exception as exc:
            out["concave"] = type(exc).__name__
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["n_opt"], N_STAR, rtol=1e-6, atol=0, name="fit_isoflop_minimum(SIZES, LOSSES)[0] (n_opt)")
    x_star = np.log10(N_STAR)
    assert_close(out["coeffs"], [C2, -2 * C2 * x_star, C2 * x_star ** 2 + 2.0], rtol=1e-6, atol=1e-6,
                 name="fit_isoflop_minimum(SIZES, LOSSES)[1] (coeffs [c2, c1, c0] in log10 N)")
    ### BEGIN HIDDEN TESTS
    assert_close(out["other"], 2e7, rtol=1e-6, atol=0, name="fit_isoflop_minimum of lists, optimum 2e7")
    for got, (c, _, _) in zip(out["chinchilla"], _profiles()):
        assert_close(got, _n_opt(c), rtol=0.05, atol=0, name=f"fit_isoflop_minimum of a noisy profile at C = {c:.3g}")
    assert_true(out["concave"] == "ValueError", f"a parabola opening downwards must raise ValueError, got {out['concave']}")
    ### END HIDDEN TESTS


grade("test_fit_isoflop_minimum", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# **The power law.** Implement `fit_power_law(c, n_opt)`: `(coefficient, exponent)` of $N_{\text{opt}} =
# k\, C^{\alpha}$, by a least-squares line through $(\log_{10} C, \log_{10} N_{\text{opt}})$, so that
# `coefficient` $= k$ (not its logarithm). (NumPy, not SciPy: the grader has no SciPy.)

# %% nbgrader={"grade": false, "grade_id": "fit_power_law", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fit_power_law(c, n_opt):
    """(coefficient, exponent) of n_opt = coefficient * c ** exponent, a least-squares line in log-log."""
    ### BEGIN SOLUTION
    exponent, intercept = np.polyfit(np.log10(np.asarray(c, dtype=float)), np.log10(np.asarray(n_opt, dtype=float)), 1)
    return float(10 ** intercept), float(exponent)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_power_law", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np

from course_lib.grading.checks import assert_close, grade, quiet

C = np.logspace(10, 14, 9)
N = 0.8 * C ** 0.45
### BEGIN HIDDEN TESTS
C2 = [8e10, 1.6e11, 3.2e11, 6.4e11, 1.28e12]
N2 = [3e-3 * c ** 0.62 for c in C2]
NOISY = 0.8 * C ** 0.45 * 10 ** np.random.default_rng(1).normal(0, 0.03, C.size)
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"public": list(fit_power_law(C.copy(), N.copy()))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["lists"] = list(fit_power_law(list(C2), list(N2)))
        out["noisy"] = list(fit_power_law(C.copy(), NOISY.copy()))
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["public"][1], 0.45, rtol=1e-9, atol=0, name="fit_power_law(C, 0.8 C^0.45): the exponent")
    assert_close(out["public"][0], 0.8, rtol=1e-6, atol=0, name="fit_power_law(C, 0.8 C^0.45): the coefficient")
    ### BEGIN HIDDEN TESTS
    assert_close(out["lists"][1], 0.62, rtol=1e-9, atol=0, name="fit_power_law of lists: the exponent")
    assert_close(out["lists"][0], 3e-3, rtol=1e-6, atol=0, name="fit_power_law of lists: the coefficient")
    x, y = np.log10(C), np.log10(NOISY)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert_close(out["noisy"][1], slope, rtol=1e-9, atol=0, name="fit_power_law of noisy data: the least-squares exponent")
    assert_close(out["noisy"][0], 10 ** (y.mean() - slope * x.mean()), rtol=1e-6, atol=0,
                 name="fit_power_law of noisy data: the coefficient")
    ### END HIDDEN TESTS


grade("test_fit_power_law", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# **Compute-optimal tokens.** With $C = 6 N D$, a model of $N_{\text{opt}}$ parameters trained with
# budget $C$ sees $D_{\text{opt}} = C / (6 N_{\text{opt}})$ tokens. Implement
# `compute_optimal_tokens(c, n_opt)` (numbers, or NumPy arrays of one shape).

# %% nbgrader={"grade": false, "grade_id": "compute_optimal_tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
def compute_optimal_tokens(c, n_opt):
    """D_opt = C / (6 N_opt), elementwise."""
    ### BEGIN SOLUTION
    return np.asarray(c, dtype=float) / (6 * np.asarray(n_opt, dtype=float))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_compute_optimal_tokens", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np

from course_lib.grading.checks import assert_close, grade, quiet

### BEGIN HIDDEN TESTS
C = np.array([8e10, 1.6e11, 1e15])
N = np.array([2.5e4, 3.1e4, 1.2e6])
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"public": compute_optimal_tokens(6e12, 1e6)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["arrays"] = compute_optimal_tokens(C.copy(), N.copy())
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["public"], 1e6, rtol=1e-12, atol=0, name="compute_optimal_tokens(6e12, 1e6)")
    ### BEGIN HIDDEN TESTS
    assert_close(out["arrays"], C / (6 * N), rtol=1e-12, atol=0, name="compute_optimal_tokens of arrays")
    ### END HIDDEN TESTS


grade("test_compute_optimal_tokens", run, check, forbid=["course_solutions.scaling", "course_solutions.nmt"])

# %% [markdown]
# **The whole analysis.** Implement `isoflop_analysis(profiles, predict_at)`: `profiles` maps each
# budget $C$ to `(n_params, losses)`, its IsoFLOP profile. Return a dict with
#
# - `"budgets"`: the budgets, increasing; `"n_opt"`: each profile's optimum (your
#   `fit_isoflop_minimum`), in the same order; `"d_opt"`: each budget's compute-optimal tokens;
# - `"coefficient"`, `"exponent"`: the power law through the optima (your `fit_power_law`);
# - `"n_opt_at"`: the law's prediction at `predict_at` FLOPs (the handout's $10^{15}$), and
#   `"d_opt_at"`: the compute-optimal tokens **at that budget** for that model size.
#
# (Its test swaps in other, exact fits for the duration of the test: only this function's own steps are
# graded here.)

# %% nbgrader={"grade": false, "grade_id": "isoflop_analysis", "locked": false, "schema_version": 3, "solution": true, "task": false}
def isoflop_analysis(profiles, predict_at=1e15):
    """{budget C: (n_params, losses)} -> dict: budgets, n_opt, d_opt (per budget, increasing C), coefficient,
    exponent (N_opt = coefficient * C ** exponent), n_opt_at and d_opt_at (at predict_at FLOPs)."""
    ### BEGIN SOLUTION
    budgets = sorted(profiles)
    n_opt = [fit_isoflop_minimum(*profiles[c])[0] for c in budgets]
    coefficient, exponent = fit_power_law(budgets, n_opt)
    n_opt_at = coefficient * predict_at ** exponent
    return {"budgets": budgets, "n_opt": n_opt, "d_opt": [float(compute_optimal_tokens(c, n)) for c, n in zip(budgets, n_opt)],
            "coefficient": coefficient, "exponent": exponent, "n_opt_at": n_opt_at,
            "d_opt_at": float(compute_optimal_tokens(predict_at, n_opt_at))}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_isoflop_analysis", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Your isoflop_analysis with exact fits swapped in for the duration of the test (the profiles are built
# so that their minima and the power law are exact): a mistake in your fits costs only their points.
import numpy as np

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

BUDGETS = [8e10 * 2 ** k for k in range(5)]  # the handout's 0.08 .. 1.28 TFLOPs
K, ALPHA = 0.1, 0.5  # the profiles' optima: N_opt = K C^ALPHA
CURVE = 0.05  # each profile: CURVE (log10 N - log10 N_opt)^2 + 3, sampled symmetrically around N_opt
### BEGIN HIDDEN TESTS
HIDDEN = [(2e-3, 0.62, 1e14), (5.0, 0.3, 1e15)]
### END HIDDEN TESTS


def _profiles(k, alpha, budgets=BUDGETS):
    out = {}
    for c in budgets[::-1]:  # given in decreasing order: the analysis sorts them
        n = k * c ** alpha * np.logspace(-0.6, 0.6, 7)
        out[c] = (n, CURVE * (np.log10(n) - np.log10(k * c ** alpha)) ** 2 + 3.0)
    return out


def _fit_minimum(n_params, losses):
    """Exact here: the lowest point is the vertex (sampled symmetrically around it)."""
    n_params, losses = np.asarray(n_params, dtype=float), np.asarray(losses, dtype=float)
    x = np.log10(n_params[np.argmin(losses)])
    return float(10 ** x), np.array([CURVE, -2 * CURVE * x, CURVE * x ** 2 + losses.min()])


def _fit_law(c, n):
    """Exact here: the line through the first and last points (the optima lie on a power law)."""
    x, y = np.log10(np.asarray(c, dtype=float)), np.log10(np.asarray(n, dtype=float))
    i, j = int(np.argmin(x)), int(np.argmax(x))
    slope = (y[j] - y[i]) / (x[j] - x[i])
    return float(10 ** (y[i] - slope * x[i])), float(slope)


def _tokens(c, n):
    tokens_times_6 = np.asarray(c, dtype=float) / np.asarray(n, dtype=float)
    return tokens_times_6 / 6


def _with_exact_fits(make):
    names = {"fit_isoflop_minimum": _fit_minimum, "fit_power_law": _fit_law, "compute_optimal_tokens": _tokens,
             "flops_per_token": lambda n: 6 * n}
    saved = {k: globals().get(k) for k in names}
    globals().update(names)
    try:
        return make()
    finally:
        for k, v in saved.items():
            globals().pop(k, None)
            if v is not None:
                globals()[k] = v


def _analysis(k, alpha, predict_at):
    with quiet():
        out = isoflop_analysis(_profiles(k, alpha), predict_at)
    keys = ("budgets", "n_opt", "d_opt", "coefficient", "exponent", "n_opt_at", "d_opt_at")
    return {key: (np.asarray(out[key], dtype=float) if key in out else None) for key in keys} if isinstance(out, dict) \
        else {"error": f"isoflop_analysis returned a {type(out).__name__}, not a dict"}


def _yours():
    out = {"public": _analysis(K, ALPHA, 1e15)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_analysis(*case) for case in HIDDEN]
    ### END HIDDEN TESTS
    return out


def run():
    return _with_exact_fits(_yours)


def _check(got, k, alpha, predict_at, label):
    assert_true("error" not in got, f"{label}: {got.get('error')}")
    missing = [key for key, v in got.items() if v is None]
    assert_true(not missing, f"{label}: the dict has no {missing}")
    budgets = np.array(BUDGETS)
    assert_close(got["budgets"], budgets, rtol=1e-12, atol=0, name=f'{label}["budgets"] (increasing)')
    assert_close(got["n_opt"], k * budgets ** alpha, rtol=1e-9, atol=0, name=f'{label}["n_opt"]')
    assert_close(got["d_opt"], budgets / (6 * k * budgets ** alpha), rtol=1e-9, atol=0, name=f'{label}["d_opt"]')
    assert_close(got["exponent"], alpha, rtol=1e-9, atol=0, name=f'{label}["exponent"]')
    assert_close(got["coefficient"], k, rtol=1e-6, atol=0, name=f'{label}["coefficient"]')
    n_at = k * predict_at ** alpha
    assert_close(got["n_opt_at"], n_at, rtol=1e-6, atol=0, name=f'{label}["n_opt_at"]')
    assert_close(got["d_opt_at"], predict_at / (6 * n_at), rtol=1e-6, atol=0,
                 name=f'{label}["d_opt_at"] (the tokens at predict_at for the predicted size)')


def check(out):
    _check(out["public"], K, ALPHA, 1e15, "isoflop_analysis(profiles with N_opt = 0.1 C^0.5)")
    ### BEGIN HIDDEN TESTS
    for got, (k, alpha, at) in zip(out["hidden"], HIDDEN):
        _check(got, k, alpha, at, f"isoflop_analysis(N_opt = {k} C^{alpha}, predict_at={at:g})")
    ### END HIDDEN TESTS


grade("test_isoflop_analysis", run, check,
      forbid=["course_solutions.scaling", "course_solutions.nmt", "course_lib.runners.scaling_laws.analyse"])

# %% [markdown]
# ### 2.4 Training across compute budgets [32 pts]
#
# The runner `course_lib.runners.scaling_laws` trains **your** `DecoderOnlyTransformer` (with your
# `decoder_only_example` and `decoder_only_loss`) as the handout's notebook does: seven models of 3
# layers and one head that differ only in their hidden size (16 to 128: about 4 thousand to 200
# thousand parameters), on the large Pig Latin data set (its 80/20 split), with `nmt_pig_latin`'s
# optimisation (Adam at $5 \cdot 10^{-4}$, decayed by 0.99 per epoch, batches of 64 pairs of one length).
# The FLOPs of a model after $D$ positions are your `flops_per_token(N)` $\times D$, with $N$ all its
# parameters and $D$ every input position it processed (`<SOS> source <EOP> target`). Each model is
# trained **once**, up to the largest budget, and its validation loss is measured when its FLOPs reach
# each of the handout's budgets, 0.08, 0.16, 0.32, 0.64 and 1.28 TFLOPs (and in between, for the
# curves): the learning rate depends only on the epoch and the batches are seeded, so that is exactly
# the model a separate run to that budget would give. Then it fits the five IsoFLOP profiles with
# **your** `fit_isoflop_minimum`, the power law with **your** `fit_power_law`, and the tokens with
# **your** `compute_optimal_tokens`.
#
# | Scale | What it runs | What it is for |
# |---|---|---|
# | `fast` | four tiny one-layer models, budgets of $10^7$ to $4 \cdot 10^7$ FLOPs, a few hundred pairs: seconds | checking that your code runs (the grader uses it); its numbers mean nothing |
# | `laptop` | the handout's experiment: seven models, five budgets; about 10 CPU minutes (30 on a busy 2-core laptop) | the questions |
# | `full` | the same, on the GPU: minutes | the questions |
#
# **Logs.** Each model logs its evaluations (in `runs/scaling_laws/<scale>/<model>/`, or in
# `$COURSE_RUNS_DIR`; on Colab, point it at your Google Drive), so running the cell again reads a
# finished model back instead of training it, unless you changed your code. In fast mode the runs go
# to a temporary folder and always start afresh.

# %% tags=["experiment"]
from course_lib.runners import scaling_laws as sl

SCALING_LOG_DIR = Path(tempfile.mkdtemp(prefix="scaling_laws-fast-")) if fast_mode() else None
if DecoderOnlyTransformer is None:
    isoflop = None
    print("skipped: your model could not be imported (see 2.2)")
else:
    isoflop = sl.run(model_class=DecoderOnlyTransformer, decoder_only_example=decoder_only_example,
                     decoder_only_loss=decoder_only_loss, flops_per_token=flops_per_token,
                     fit_isoflop_minimum=fit_isoflop_minimum, fit_power_law=fit_power_law,
                     compute_optimal_tokens=compute_optimal_tokens, progress=True, log_dir=SCALING_LOG_DIR)
    print(f"scale: {isoflop.scale}; {isoflop.seconds / 60:.1f} minutes of training ({isoflop.cpu_seconds / 60:.1f} CPU)")
    sl.plot_loss_vs_flops(isoflop)

# %% [markdown]
# The validation loss of each model at each budget (the IsoFLOP profiles are the columns), and the
# profiles with your fitted parabolas (a star at each minimum):

# %% tags=["experiment"]
if isoflop is not None:
    display(sl.profiles_table(isoflop).round(4))
    sl.plot_isoflop_profiles(isoflop)

# %% [markdown]
# The compute-optimal model and tokens: your fits through the minima, extended to $10^{15}$ FLOPs (the
# star), with the training setup of section 2.3 (`nmt_pig_latin`'s decoder-only model, hidden size 32,
# trained 100 epochs on the large training split) as a cross; then the same prediction from your own
# `isoflop_analysis`:

# %% tags=["experiment"]
if isoflop is not None:
    sl.plot_compute_optimal(isoflop)
    display(sl.results_table(isoflop))
    try:
        mine = isoflop_analysis(isoflop.profiles)
        print(f"your isoflop_analysis: N_opt = {mine['coefficient']:.3g} C^{mine['exponent']:.3f}; at 1e15 FLOPs "
              f"N_opt = {mine['n_opt_at']:,.0f} parameters and D_opt = {mine['d_opt_at']:,.0f} tokens, "
              f"{mine['d_opt_at'] / mine['n_opt_at']:.1f} tokens per parameter (Chinchilla: about 20)")
    except ValueError as error:
        print(f"your isoflop_analysis: {error} (at the fast scale the profiles need not have a minimum)")
    setup = isoflop.analysis.get("section_2_3", {})
    print(f"section 2.3's setup: N = {setup['n_params']:,} parameters, D = {setup['tokens']:,} tokens "
          f"({setup['tokens_per_parameter']:,.0f} per parameter), C = {setup['flops']:.3g} FLOPs")
    if "n_opt" in setup:
        print(f"the law at that C: N_opt = {setup['n_opt']:,.0f} parameters, D_opt = {setup['d_opt']:,.0f} tokens")

# %% [markdown]
# What the experiment shows (`True` where it holds):

# %% tags=["experiment"]
if isoflop is not None:
    display(sl.conclusions(isoflop))
else:
    print("skipped: your model could not be imported (see 2.2)")

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1** [10 pts] (The handout's 2.4 Q1, at most 3 sentences, plus the numbers.) Which scale did you
# run? Describe the plot of validation loss against FLOPs: does a larger model always have a smaller
# validation loss? Relate what you see to the IsoFLOP profiles and to section 1.2.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (laptop scale, which is the handout's experiment; the numbers of the reference run
# below.) Every model's loss falls as it uses more FLOPs, but the curves cross: at 0.08 TFLOPs the best is
# H32 (14,622 parameters, loss 1.60) and the largest model, H128 (205,854), is the worst (1.95), because
# for the same compute it has seen 14 times fewer tokens than H32; from 0.16 TFLOPs on H48 (31,134) is
# best (0.149 at 1.28 TFLOPs) and H128 is still behind it (0.260), so a larger model does **not** always
# have a smaller loss. Each budget's profile is a valley in $\log N$ whose minimum moves to larger models as the budget
# grows (fitted optima 11 thousand to 45 thousand parameters), which is section 1.2's answer C and the lower
# envelope of Kaplan et al.'s Figure 2: more compute should buy a larger model, but only as much larger as
# the tokens it can then see allow.
#
# *Reference, laptop scale* (`course_solutions/recorded/scaling_laws-laptop.json`, reference code, 10 CPU
# minutes, 30 wall minutes on a shared 2-core CPU). Validation loss at 0.08 / 0.16 / 0.32 / 0.64 / 1.28
# TFLOPs: H16 (4,254) 1.66 1.46 1.22 0.94 0.49; H24 (8,670) 1.65 1.42 1.17 0.55 0.21; H32 (14,622) 1.60 1.20
# 0.75 0.40 0.24; H48 (31,134) 1.71 1.20 0.54 0.21 0.15; H64 (53,790) 1.67 1.20 0.62 0.28 0.16; H96
# (117,534) 1.92 1.53 0.94 0.37 0.18; H128 (205,854) 1.95 1.61 1.14 0.54 0.26. All five profiles have
# their lowest loss strictly inside the range of sizes. A student's own model gives other numbers (its initialisation and code differ); credit the
# description of the student's own plot.
#
# *Rubric:* 2 pts scale named and the plot described with numbers; 3 pts the curves cross / a larger
# model is not always better, with the reason (fewer tokens for the same compute); 3 pts the optimum moves
# to larger models with the budget (the profiles' interior minima); 2 pts the link to section 1.2 /
# Figure 2.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q2", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2** [13 pts] (The handout's 2.4 Q2.) Report the fitted law $N_{\text{opt}} = k C^{\alpha}$ (its
# exponent), and the optimal number of parameters at a budget of $10^{15}$ FLOPs, with the scale you ran
# and how you estimated it. Compare the exponent with Chinchilla's (about 0.5) and Kaplan et al.'s
# (0.73). How much would you trust the prediction, so far outside the budgets you trained?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q2", "locked": false, "points": 13, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (laptop scale; the reference run's numbers.) Each of the five IsoFLOP profiles is fitted
# by a parabola in $\log_{10} N$; the vertices, 11,036, 24,702, 34,467, 43,183 and 44,872 parameters at
# 0.08 to 1.28 TFLOPs, are the compute-optimal sizes, and a least-squares line through $(\log_{10} C,
# \log_{10} N_{\text{opt}})$ gives $N_{\text{opt}} = 0.0739\, C^{0.485}$. Extrapolated to $C = 10^{15}$ FLOPs
# it predicts $N_{\text{opt}} \approx 1.4$ million parameters (the star on the plot). The exponent is close
# to Chinchilla's 0.5 (parameters and tokens should grow about equally) and far from Kaplan et al.'s 0.73.
# I would trust it only to an order of magnitude: the budgets span a factor of 16 and the prediction is
# 780 times beyond the largest, so an error of 0.05 in the exponent changes it by a factor of 1.4; the
# optima flatten between the last two budgets (43 and 45 thousand), where the toy task is nearly solved
# (loss 0.15), so the law may bend; and the smallest models' embeddings inflate $N$.
#
# *Reference, laptop scale* (`course_solutions/recorded/scaling_laws-laptop.json`): exponent 0.485,
# coefficient 0.0739, $N_{\text{opt}}(10^{15}) = 1{,}406{,}352$ parameters. A student's own model gives
# somewhat different optima; an exponent between about 0.3 and 0.7 with a matching prediction (hundreds of
# thousands to a few million parameters) is a sound result.
#
# *Rubric:* 2 pts scale named; 3 pts the fitted exponent (and coefficient) reported; 3 pts the prediction at
# 1e15 with its method (power law through the profiles' minima, extrapolated); 2 pts comparison with 0.5 /
# 0.73; 3 pts a reasoned judgement of the extrapolation's reliability.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q3", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3** [9 pts] (The handout's 2.4 Q3, at most 3 sentences, plus the numbers.) Report the compute-optimal
# tokens $D_{\text{opt}}$ at $10^{15}$ FLOPs and the tokens per parameter of your fit, against
# Chinchilla's about 20. Given the compute-optimal model and token plots, was the training setup of
# section 2.3 (hidden size 32, 100 epochs of the large data set) compute-optimal? If not, how should it
# change?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q3", "locked": false, "points": 9, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (laptop scale; the reference run's numbers.) At $10^{15}$ FLOPs the law gives $D_{\text{opt}}
# = 10^{15} / (6 \times 1.41 \cdot 10^6) \approx 1.2 \cdot 10^8$ tokens, 84 tokens per parameter (44 to 110
# at the trained budgets), several times Chinchilla's 20: on this small character-level task a small model
# needs many tokens, and the counts differ (each position of the prompt counts as a token; the embedding
# is a large share of these tiny models). Section 2.3's setup, 14,622 parameters trained on 100 epochs of
# 326,509 positions (32.7 million tokens, 2,233 per parameter) for $2.9 \cdot 10^{12}$ FLOPs, was not
# compute-optimal: at that compute the law's optimum is about 82,000 parameters on 5.8 million tokens, so it
# used a model 5.6 times too small for 5.6 times too many tokens; for the same compute, train a larger model
# (hidden size 64 to 96) for about 18 epochs instead of 100.
#
# *Reference, laptop scale* (`course_solutions/recorded/scaling_laws-laptop.json`): $D_{\text{opt}}(10^{15})
# = 118{,}509{,}964$ tokens, 84.3 tokens per parameter; section 2.3: $N = 14{,}622$, $D = 32{,}650{,}900$, $C =
# 2.86 \cdot 10^{12}$ FLOPs (a little beyond the largest budget), $N_{\text{opt}}(C) = 82{,}036$,
# $D_{\text{opt}}(C) = 5{,}819{,}628$.
#
# *Rubric:* 2 pts $D_{\text{opt}}$ and tokens per parameter reported; 2 pts compared with 20 (with a reason
# for the difference); 3 pts section 2.3 placed against the law (its N, D, C) and judged not compute-optimal
# (or argued otherwise with the student's numbers); 2 pts the change (a larger model, fewer tokens or epochs
# at the same compute).
