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
# # Exercises 2: LSTM and GRU language models on the Penn Treebank
#
# In this assignment you work with gated recurrent networks. You answer questions about
# variable-length sequences, the GRU and the LSTM, count the parameters of an LSTM cell, build a
# GRU cell from primitive operations and derive its gradients by hand. Then you replicate the
# "small" word-level language model of Zaremba, Sutskever and Vinyals, *Recurrent Neural Network
# Regularization* (2014) on the Penn Treebank (PTB): the data pipeline, the model (LSTM or GRU),
# truncated backpropagation through time with gradient clipping, and four trainings (LSTM and GRU,
# each with and without dropout) whose curves and perplexities you compare.
#
# **Learning goals.** After this assignment you can
#
# 1. handle variable-length sequences in batches (padding, masking the loss) and say what a GRU
#    simplifies compared with an LSTM;
# 2. count the parameters of a gated cell, and implement a GRU cell from its equations;
# 3. derive the gradients of a GRU cell's weights with the chain rule, and check them against
#    automatic differentiation;
# 4. turn a corpus into the batches of truncated backpropagation through time: a vocabulary,
#    parallel streams, input and target windows shifted by one word;
# 5. train a recurrent language model with the hidden state carried across batches (and detached
#    between them) and gradients clipped by their global norm;
# 6. read learning curves: overfitting, the gap between training and validation perplexity, and
#    what dropout and the learning-rate schedule do to it.
#
# **How this notebook is graded** (113 points in all: the handout's 100, plus 13 for the code this
# notebook adds to the theory questions).
#
# | Section | Handout points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. Theory: sequences, GRU and LSTM (Q1-Q3) | 30 | 3 | 30 |
# | 2. Theory: a GRU cell and its gradients (Q4) | 20 | 10 | 20 |
# | 3. Practical: the data pipeline | 8 | 8 | 0 |
# | 4. Practical: the model and truncated backpropagation | 17 | 17 | 0 |
# | 5. Practical: experiments and evaluation | 25 | 0 | 25 |
# | **Total** | **100** | **38** | **75** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names, signatures and attributes: the tests call them
#   and load weights into them. Each function is followed by its test cells. The checks you see
#   there are *public checks*: they compare values on small examples with what the test computes
#   itself (often with PyTorch's own `nn.GRUCell`, `torch.autograd` or `clip_grad_norm_`, which the
#   tests may use and your code may not) and catch many mistakes, but passing them is not the
#   grade. When the notebook is graded, hidden tests with other inputs and edge cases are added to
#   the same cells. Each test cell checks only its own function (or, for the gradients of Q4,
#   only its own weight), so a mistake in one costs only that one's points; where a function uses
#   another of yours (`train_step` uses your `detach_hidden` and `clip_grad_global_norm`), its
#   test swaps in correct versions of the others.
# - Some functions are **disabled while the tests run**: `nn.GRUCell`, `nn.GRU` and
#   `torch.gru_cell` in the GRU cell's tests; automatic differentiation (`torch.autograd.grad`,
#   `.backward()`, `torch.func`, `torch.autograd.functional`) in the gradient tests of Q4;
#   `torch.nn.utils.clip_grad_norm_` and its relatives in the clipping test; the course's
#   vocabulary class (`course_lib.wikitext.WordVocab`) in the vocabulary test; and the course's
#   reference implementations (`course_solutions.layers`) everywhere. Outside the tests you may use
#   them to check your work.
# - **Written answers** go in the markdown cells that say `YOUR ANSWER HERE`, right below each
#   question. Be concise: a few sentences each, unless the question asks for a derivation.
# - **How the grader runs your notebook.** It re-runs every cell from top to bottom in *fast mode*
#   (`COURSE_FAST=1`), **except the training cells of Section 5** (the cells tagged `experiment`):
#   those are not re-run, and the grader sees the outputs they had when you saved the notebook. So
#   run them yourself before you submit, and copy the numbers a question asks for into your written
#   answers.
# - **Three scales.** The trainings of Section 5 run at the scale that the environment variable
#   `COURSE_SCALE` picks (set it before starting Jupyter): `fast` (`COURSE_FAST=1`: seconds, to
#   check that your code runs; the grader uses it), `laptop` (the default on a machine without a
#   GPU: the four models on a slice of the training text, in about 45 minutes to an hour on a
#   2-core CPU) and `full` (the default with a GPU: the paper's settings on the whole training
#   split, 13 epochs without dropout and 39 with it). Section 5 explains what each one shows.
#
# **Shapes.** Comments and docstrings name tensor dimensions with letters: `B` batch (the number
# of parallel streams), `T` time (the number of steps of a batch, `bptt`), `E` embedding size (the
# input size of the first recurrent layer), `H` hidden size, `V` vocabulary size.
#
# **Notation.** The GRU equations of Section 2 are written with row vectors, as in the handout's
# figure (Géron's *Hands-On Machine Learning*): $x_t W_{xz}$ multiplies the row vector $x_t$ of size
# $E$ by the $E \times H$ matrix $W_{xz}$ (in code `x @ W_xz`, for a whole batch at once); $\odot$
# is the element-wise product and $\sigma$ the logistic sigmoid.

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

device = setup_notebook("word_lm_ptb", seed=282)

# %%
import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.device import fast_mode
from course_lib.ptb import read_words

# %% [markdown]
# ---
# ## 1. Theory: sequences, GRU and LSTM [30 pts]
#
# ### Q1: Sequences of different lengths [10 pts]

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q1", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1** [10 pts] A recurrent network can read sequences of any length, but a mini-batch is one
# tensor of shape `(B, T)`. How would you handle **input** sequences of different lengths in one
# batch? How would you handle **output** (target) sequences of different lengths, and what has to
# change in the computation of the loss?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q1", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* **Inputs:** pad every sequence of the batch to the length of the longest one
# with a padding token (its own id, e.g. `<pad>`, often with a zero embedding), and keep each
# sequence's true length. Sorting or bucketing the data by length keeps the padding small. The
# padding must not change what the network computes for the real tokens: a unidirectional RNN that
# reads the padding after a sequence only changes its states *after* the end, but its final state
# (used by an encoder or a classifier) would be polluted, so pass the lengths (PyTorch's
# `pack_padded_sequence`) so that the RNN stops at each sequence's end, or gather the state at
# position length - 1. **Outputs:** pad the target sequences too, and mark the end of each
# sequence with an end-of-sequence token, so that the model learns where to stop (at generation
# time it stops when it emits that token). **Loss:** compute the per-token losses of the whole
# `(B, T)` batch, multiply them by a binary **mask** (1 at real target tokens, 0 at padding, or use
# `ignore_index` in the cross-entropy) and divide the sum by the **number of real tokens**, not by
# `B * T`: the padding then neither trains the model (to predict `<pad>`) nor distorts the reported
# loss and perplexity.
#
# *Rubric:* 3 pts inputs padded to a common length (padding token, lengths kept); 2 pts the
# padding does not affect the real states or outputs (packing / lengths, or an end-of-sequence
# token for the outputs); 3 pts the loss is masked at padded target positions; 2 pts the masked
# sum is normalised by the number of real tokens.

# %% [markdown]
# ### Q2: GRU and LSTM [10 pts]

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2** [10 pts] Give two advantages of the GRU (gated recurrent unit) over the LSTM, and
# explain each.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (1) **Fewer parameters and less computation.** A GRU has three blocks of
# weights (update gate, reset gate, candidate) where an LSTM has four (input, forget and output
# gates, candidate): with the same input and hidden sizes it has 3/4 of the parameters, so each
# step costs less time and memory, and training and inference are faster. (2) **A simpler cell
# that learns as well with less data.** The GRU merges the cell state and the hidden state into one
# vector and couples forgetting and writing into one update gate ($z$ keeps the old state and
# $1 - z$ lets in the candidate, so the two always sum to one) and has no output gate. It keeps the
# LSTM's additive, gated path through time (so gradients still flow over long distances), with
# fewer parameters to fit, which makes it less prone to overfitting on small data sets and often
# about as accurate in practice.
#
# *Rubric:* 5 pts per advantage: 2 pts the advantage, 3 pts the explanation (what the GRU merges
# or drops: gates, cell state; the 3 vs 4 weight blocks; the consequence for speed, memory or
# generalisation). Credit other correct advantages (e.g. easier to analyse and tune), not "GRUs
# are always more accurate".

# %% [markdown]
# ### Q3: Counting the parameters of an LSTM cell [10 pts, plus 3 autograded]
#
# An LSTM cell computes four vectors of size $H$ from the input $x_t$ (size $E$) and the previous
# hidden state $h_{t-1}$ (size $H$), each with its own affine transformation (one weight matrix for
# $x_t$, one for $h_{t-1}$, **one bias vector**) followed by a non-linearity: the input gate $i_t$,
# the forget gate $f_t$, the output gate $o_t$ and the candidate $g_t$. Then
# $c_t = f_t \odot c_{t-1} + i_t \odot g_t$ and $h_t = o_t \odot \tanh(c_t)$.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q3", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3** [10 pts] An LSTM cell has an input $x_t$ of size 200 and a state $h_t$ of size 200. How
# many trainable parameters does it have? Show your derivation. (Then implement the count for any
# sizes in `lstm_cell_params`, and store your number in `Q3_LSTM_PARAMETERS`.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q3", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The cell has **four** dense layers with the same inputs, one per gate
# ($i_t$, $f_t$, $o_t$) and one for the candidate $g_t$; each maps $x_t$ and $h_{t-1}$ to a vector
# of size 200. One of them has a $200 \times 200$ matrix for $x_t$ (40,000 weights), a
# $200 \times 200$ matrix for $h_{t-1}$ (40,000 weights) and a bias of 200: **80,200**
# parameters. The four together: $4 \times 80{,}200 = \mathbf{320{,}800}$. In general
# $4\,(E H + H^2 + H) = 4 H (E + H + 1)$. (The cell state $c_t$ and the element-wise products add
# no parameters. PyTorch's `nn.LSTMCell(200, 200)` reports 321,600 because it keeps two bias
# vectors per gate, `bias_ih` and `bias_hh`, whose sum is the one bias of the equations.)
#
# *Rubric:* 3 pts four weight blocks (three gates and the candidate); 4 pts the count of one block
# (both matrices and the bias); 3 pts the total 320,800 with the arithmetic shown. Answers that
# count two biases per gate (321,600) lose 1 pt unless they say it is PyTorch's convention.

# %% nbgrader={"grade": false, "grade_id": "lstm_cell_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lstm_cell_params(input_size, hidden_size):
    """Q3: the number of trainable parameters of one LSTM cell, with one bias vector per gate, as in
    the equations above.

    Args:
        input_size: E, the size of the cell's input x_t.
        hidden_size: H, the size of the hidden state h_t (and of the cell state c_t).
    Returns:
        int: the number of parameters (every entry of every weight matrix and bias vector).
    """
    ### BEGIN SOLUTION
    return 4 * (hidden_size * input_size + hidden_size * hidden_size + hidden_size)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lstm_cell_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import hashlib

from torch import nn

from course_lib.grading.checks import as_int, assert_equal, assert_true, grade, quiet

PUBLIC_SIZES = [(3, 2), (5, 7), (200, 200)]  # (input_size, hidden_size)
EXPECTED_FINGERPRINT = "653516e037907dd1"
### BEGIN HIDDEN TESTS

SIZES = [(3, 2), (2, 3), (200, 200), (650, 650), (50, 128), (1, 1)]  # (input_size, hidden_size)
### END HIDDEN TESTS


def fingerprint(values):
    """A short digest of a list of whole numbers. The public check compares it with the digest of
    the expected answer, so that the check can tell you whether you are right without printing the
    answer here."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]


def run():
    out = {}
    with quiet():
        out["public"] = [lstm_cell_params(e, h) for e, h in PUBLIC_SIZES]
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [lstm_cell_params(e, h) for e, h in SIZES]
    ### END HIDDEN TESTS
    return out


def check(out):
    counts = [as_int(n, name=f"lstm_cell_params{size}") for n, size in zip(out["public"], PUBLIC_SIZES)]
    assert_true(fingerprint(counts) == EXPECTED_FINGERPRINT,
                f"lstm_cell_params for (input_size, hidden_size) in {PUBLIC_SIZES} gave {counts}: at least one is not "
                "the number of parameters of the LSTM equations with one bias vector per gate")
    ### BEGIN HIDDEN TESTS
    for i, (e, h) in enumerate(SIZES):
        # nn.LSTMCell has two bias vectors per gate (b_ih and b_hh); the handout counts one.
        expected = sum(p.numel() for p in nn.LSTMCell(e, h).parameters()) - 4 * h
        assert_equal(as_int(out["sizes"][i], name=f"lstm_cell_params({e}, {h})"), expected,
                     name=f"lstm_cell_params({e}, {h})")
    assert_equal(as_int(out["sizes"][2], name="lstm_cell_params(200, 200)"), 320_800, name="lstm_cell_params(200, 200)")
    ### END HIDDEN TESTS


grade("test_lstm_cell_params", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# Your answer to Q3 as a number (a whole number: compute it with your function or type it):

# %% nbgrader={"grade": false, "grade_id": "Q3_LSTM_PARAMETERS", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
Q3_LSTM_PARAMETERS = lstm_cell_params(200, 200)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_Q3_LSTM_PARAMETERS", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import hashlib

from course_lib.grading.checks import as_int, assert_equal, assert_true, grade

EXPECTED_FINGERPRINT = "e79a8e0ec1c50f60"


def fingerprint(values):
    """A short digest of a list of whole numbers (see the test of lstm_cell_params)."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]


def run():
    return {"n": Q3_LSTM_PARAMETERS}


def check(out):
    n = as_int(out["n"], name="Q3_LSTM_PARAMETERS")  # a whole number
    assert_true(fingerprint([n]) == EXPECTED_FINGERPRINT,
                f"Q3_LSTM_PARAMETERS = {n:,} is not the number of parameters of an LSTM cell with input and state "
                "of size 200 (one bias vector per gate)")
    ### BEGIN HIDDEN TESTS
    assert_equal(n, 320_800, name="Q3_LSTM_PARAMETERS")
    ### END HIDDEN TESTS


grade("test_Q3_LSTM_PARAMETERS", run, check)

# %%
print(f"lstm_cell_params(200, 200) = {lstm_cell_params(200, 200):,}")
print(f"nn.LSTMCell(200, 200) holds {sum(p.numel() for p in nn.LSTMCell(200, 200).parameters()):,} parameters "
      "(two bias vectors per gate)")

# %% [markdown]
# ---
# ## 2. Theory: a GRU cell and its gradients [20 pts, plus 10 autograded]
#
# The handout's GRU cell (the figure of Géron's book) computes, at time step $t$, from the input
# $x_t$ (size $E$) and the previous state $h_{t-1}$ (size $H$), with row vectors:
#
# $$\begin{aligned}
# z_t &= \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z) && \text{update gate} \\
# r_t &= \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r) && \text{reset gate} \\
# g_t &= \tanh\big(x_t W_{xg} + (r_t \odot h_{t-1})\, W_{hg} + b_g\big) && \text{candidate} \\
# h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot g_t && \text{new state}
# \end{aligned}$$
#
# with $W_{xz}, W_{xr}, W_{xg}$ of shape $E \times H$, $W_{hz}, W_{hr}, W_{hg}$ of shape
# $H \times H$ and biases $b_z, b_r, b_g$ of size $H$. The update gate $z_t$ decides, component by
# component, how much of the old state to **keep**; the reset gate $r_t$ decides how much of the old
# state the candidate may **read**.
#
# **PyTorch's `nn.GRUCell` is not quite this cell.** Its documentation writes
#
# $$\begin{aligned}
# r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \qquad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}), \\
# n &= \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big), \qquad h' = (1 - z) \odot n + z \odot h,
# \end{aligned}$$
#
# and differs in three ways. (1) It has **two biases** per gate, $b_{i*}$ and $b_{h*}$ (only their
# sum matters for $r$ and $z$). (2) Its weights multiply column vectors and are stacked in the order
# $(r, z, n)$: `weight_ih` is $3H \times E$, its rows $H..2H-1$ are $W_{xz}^\top$, and so on.
# (3) It applies the reset gate **after** the matrix product, $r \odot (W_{hn} h + b_{hn})$, where
# the handout applies it before, $(r_t \odot h_{t-1}) W_{hg}$ (the original GRU paper's version;
# PyTorch follows cuDNN, which is faster). Its $z$ weights the **old** state, as in the handout:
# $h' = (1 - z) \odot n + z \odot h$. Because of (3), your cell and `nn.GRUCell` agree exactly only
# in special cases, which the public checks below use: when the reset gate is held open ($r = 1$:
# $W_{xr} = W_{hr} = 0$, $b_r = 40$, so $\sigma(40) = 1$ in floating point), or when $W_{hg}$ is
# diagonal and $b_{hn} = 0$ (then $(r \odot h) W_{hg} = r \odot (h W_{hg})$). The hidden tests also
# compare your cell with random weights against the handout's equations computed in float64.
#
# Implement the cell's `forward` from primitive operations (`@`, `torch.sigmoid`, `torch.tanh`,
# `*`, `+`); `nn.GRUCell`, `nn.GRU` and `torch.gru_cell` are disabled in its tests.

# %% nbgrader={"grade": false, "grade_id": "GRUCell", "locked": false, "schema_version": 3, "solution": true, "task": false}
class GRUCell(nn.Module):
    """The handout's GRU cell: x (B, E) and h (B, H) -> the new state (B, H)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size  # E
        self.hidden_size = hidden_size  # H
        # The handout's parameters, with its names (keep them: the tests load weights into them):
        # W_xz, W_xr, W_xg of shape (E, H); W_hz, W_hr, W_hg of shape (H, H); b_z, b_r, b_g of shape (H,).
        for gate in ("z", "r", "g"):
            setattr(self, f"W_x{gate}", nn.Parameter(torch.empty(input_size, hidden_size)))
            setattr(self, f"W_h{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.empty(hidden_size)))
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's initialisation of recurrent cells
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def forward(self, x, h=None):
        """One step of the handout's equations.

        Args:
            x: (B, E) float tensor, the inputs x_t of a batch.
            h: (B, H) float tensor, the previous states h_{t-1}; None means zeros.
        Returns:
            (B, H) float tensor, the new states h_t (same dtype as x).
        """
        ### BEGIN SOLUTION
        if h is None:
            h = x.new_zeros(x.size(0), self.hidden_size)
        z = torch.sigmoid(x @ self.W_xz + h @ self.W_hz + self.b_z)  # (B, H)
        r = torch.sigmoid(x @ self.W_xr + h @ self.W_hr + self.b_r)  # (B, H)
        g = torch.tanh(x @ self.W_xg + (r * h) @ self.W_hg + self.b_g)  # (B, H)
        return z * h + (1 - z) * g
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_GRUCell_update", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The update gate z, the candidate g and the new state, with the reset gate held open (r = 1), against nn.GRUCell.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

SHAPES = {"W_xz": "EH", "W_hz": "HH", "b_z": "H", "W_xr": "EH", "W_hr": "HH", "b_r": "H",
          "W_xg": "EH", "W_hg": "HH", "b_g": "H"}
### BEGIN HIDDEN TESTS
HIDDEN = [(7, 5, 1), (2, 6, 4), (3, 3, 8)]  # (E, H, B)
### END HIDDEN TESTS


def _weights(E, H, seed):
    """The handout's nine parameters from a fixed seed, the reset gate held open: W_xr = W_hr = 0 and
    b_r = 40, so r = sigmoid(40) = 1 (in float32 and float64) and the candidate reads all of h."""
    g = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    w = {name: 0.6 * torch.randn(*[sizes[d] for d in dims], generator=g) for name, dims in SHAPES.items()}
    w["W_xr"], w["W_hr"], w["b_r"] = torch.zeros(E, H), torch.zeros(H, H), torch.full((H,), 40.0)
    return w


def _inputs(E, H, B, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(B, E, generator=g), torch.randn(B, H, generator=g)  # x (B, E), h (B, H)


def _your_cell(E, H, weights, dtype=torch.float32):
    """Your GRUCell with the test's weights."""
    cell = GRUCell(E, H).to(dtype)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(cell, name).copy_(value)
    return cell


def _torch_gru_cell(x, h, w):
    """nn.GRUCell with the same weights, in float64. PyTorch stacks the gates as the rows (r, z, n) of
    weight_ih (3H, E) and weight_hh (3H, H) and multiplies column vectors, so each block is the
    transpose of the handout's matrix; its second bias, bias_hh, is zero here."""
    E, H = w["W_xz"].shape
    reference = torch.nn.GRUCell(E, H).double()
    with torch.no_grad():
        reference.weight_ih.copy_(torch.cat([w["W_xr"].T, w["W_xz"].T, w["W_xg"].T]))
        reference.weight_hh.copy_(torch.cat([w["W_hr"].T, w["W_hz"].T, w["W_hg"].T]))
        reference.bias_ih.copy_(torch.cat([w["b_r"], w["b_z"], w["b_g"]]))
        reference.bias_hh.zero_()
        return reference(x.double(), h.double())


def run():
    x, h = _inputs(4, 3, 5, seed=0)
    with quiet():
        out = {"h_new": _your_cell(4, 3, _weights(4, 3, seed=0))(x, h)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (E, H, B) in enumerate(HIDDEN):
        x, h = _inputs(E, H, B, seed=1 + i)
        with quiet():
            out["hidden"].append(_your_cell(E, H, _weights(E, H, seed=1 + i))(x, h))
    x, _ = _inputs(4, 3, 2, seed=9)
    with quiet():
        out["none"] = _your_cell(4, 3, _weights(4, 3, seed=9))(x)  # h=None: zeros
        out["float64"] = _your_cell(4, 3, _weights(4, 3, seed=9), torch.float64)(x.double(), None)
    out["float64_dtype"] = str(out["float64"].dtype) if isinstance(out["float64"], torch.Tensor) else None
    ### END HIDDEN TESTS
    return out


def check(out):
    x, h = _inputs(4, 3, 5, seed=0)
    assert_shape(out["h_new"], (5, 3), name="GRUCell(4, 3)(x, h) for x (5, 4) and h (5, 3)", dims="B, H")
    assert_close(out["h_new"], _torch_gru_cell(x, h, _weights(4, 3, seed=0)), atol=1e-5, rtol=1e-4,
                 name="GRUCell(4, 3)(x, h) with the reset gate held open (r = 1), vs nn.GRUCell with the same weights")
    ### BEGIN HIDDEN TESTS
    for i, (E, H, B) in enumerate(HIDDEN):
        x, h = _inputs(E, H, B, seed=1 + i)
        assert_shape(out["hidden"][i], (B, H), name=f"GRUCell({E}, {H}) on a batch of {B}", dims="B, H")
        assert_close(out["hidden"][i], _torch_gru_cell(x, h, _weights(E, H, seed=1 + i)), atol=1e-5, rtol=1e-4,
                     name=f"GRUCell({E}, {H}) on a batch of {B} (r = 1) vs nn.GRUCell")
    x, _ = _inputs(4, 3, 2, seed=9)
    expected = _torch_gru_cell(x, torch.zeros(2, 3), _weights(4, 3, seed=9))
    assert_close(out["none"], expected, atol=1e-5, rtol=1e-4, name="GRUCell(4, 3)(x) with h=None (zeros)")
    assert_close(out["float64"], expected, atol=1e-12, rtol=1e-10, name="GRUCell(4, 3) in float64")
    assert_true(out["float64_dtype"] == "torch.float64",
                f"GRUCell in float64 (cell.double(), x float64, h=None) returned {out['float64_dtype']}, not float64")
    ### END HIDDEN TESTS


grade("test_GRUCell_update", run, check,
      forbid=["torch.nn.GRUCell", "torch.nn.GRU", "torch.gru_cell", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_GRUCell_reset", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The reset gate r: where it is applied, against nn.GRUCell in the two cases where the handout's cell
# and PyTorch's agree (W_hg diagonal; r a 0/1 mask with W_hz = 0).
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

SHAPES = {"W_xz": "EH", "W_hz": "HH", "b_z": "H", "W_xr": "EH", "W_hr": "HH", "b_r": "H",
          "W_xg": "EH", "W_hg": "HH", "b_g": "H"}
MASK = [1.0, 0.0, 1.0, 1.0, 0.0]  # the reset gate of the second case: r = sigmoid(+-40) = 1 or 0


def _weights(E, H, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    return {name: 0.6 * torch.randn(*[sizes[d] for d in dims], generator=g) for name, dims in SHAPES.items()}


def _diagonal_case():
    """Random weights, but W_hg diagonal: then (r * h) @ W_hg == r * (h @ W_hg), PyTorch's placement."""
    w = _weights(4, 5, seed=20)
    w["W_hg"] = torch.diag(torch.diagonal(w["W_hg"]))
    g = torch.Generator().manual_seed(21)
    return w, torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g)  # weights, x (B, E), h (B, H)


def _mask_case():
    """W_hz = 0 (z does not read h), and r = MASK for every input (W_xr = W_hr = 0, b_r = +-40):
    the candidate reads h only where MASK is 1."""
    w = _weights(4, 5, seed=30)
    w["W_hz"] = torch.zeros(5, 5)
    w["W_xr"], w["W_hr"] = torch.zeros(4, 5), torch.zeros(5, 5)
    w["b_r"] = 40.0 * (2 * torch.tensor(MASK) - 1)
    g = torch.Generator().manual_seed(31)
    return w, torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g)


def _your_cell(E, H, weights, dtype=torch.float32):
    """Your GRUCell with the test's weights."""
    cell = GRUCell(E, H).to(dtype)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(cell, name).copy_(value)
    return cell


def _torch_gru_cell(x, h, w):
    """nn.GRUCell with the same weights in float64 (gates stacked (r, z, n), transposed; bias_hh = 0)."""
    E, H = w["W_xz"].shape
    reference = torch.nn.GRUCell(E, H).double()
    with torch.no_grad():
        reference.weight_ih.copy_(torch.cat([w["W_xr"].T, w["W_xz"].T, w["W_xg"].T]))
        reference.weight_hh.copy_(torch.cat([w["W_hr"].T, w["W_hz"].T, w["W_hg"].T]))
        reference.bias_ih.copy_(torch.cat([w["b_r"], w["b_z"], w["b_g"]]))
        reference.bias_hh.zero_()
        return reference(x.double(), h.double())
### BEGIN HIDDEN TESTS


def _handout_gru(x, h, w):
    """The handout's equations, written out by the test in float64."""
    w = {k: v.double() for k, v in w.items()}
    x, h = x.double(), h.double()
    z = torch.sigmoid(x @ w["W_xz"] + h @ w["W_hz"] + w["b_z"])
    r = torch.sigmoid(x @ w["W_xr"] + h @ w["W_hr"] + w["b_r"])
    g = torch.tanh(x @ w["W_xg"] + (r * h) @ w["W_hg"] + w["b_g"])
    return z * h + (1 - z) * g


HIDDEN = [(4, 5, 6, 40), (7, 3, 1, 41), (2, 8, 5, 42)]  # (E, H, B, seed): random weights, every gate active


def _random_case(E, H, B, seed):
    g = torch.Generator().manual_seed(seed + 500)
    return _weights(E, H, seed), torch.randn(B, E, generator=g), torch.randn(B, H, generator=g)
### END HIDDEN TESTS


def run():
    out = {}
    w, x, h = _diagonal_case()
    with quiet():
        out["diagonal"] = _your_cell(4, 5, w)(x, h)
    w, x, h = _mask_case()
    with quiet():
        out["mask"] = _your_cell(4, 5, w)(x, h)
    ### BEGIN HIDDEN TESTS
    out["random"] = []
    for E, H, B, seed in HIDDEN:
        w, x, h = _random_case(E, H, B, seed)
        with quiet():
            out["random"].append(_your_cell(E, H, w)(x, h))
    # float64, and the gradient of a loss with respect to every parameter, x and h
    w, x, h = _random_case(4, 5, 6, 40)
    x, h = x.double().requires_grad_(), h.double().requires_grad_()
    with quiet():
        cell = _your_cell(4, 5, w, torch.float64)
        h_new = cell(x, h)
    out["float64"] = h_new
    weights = torch.Generator().manual_seed(77)
    (h_new * torch.randn(6, 5, generator=weights, dtype=torch.float64)).sum().backward()
    out["grads"] = {name: getattr(cell, name).grad for name in SHAPES}
    out["grads"]["x"], out["grads"]["h"] = x.grad, h.grad
    ### END HIDDEN TESTS
    return out


def check(out):
    w, x, h = _diagonal_case()
    assert_shape(out["diagonal"], (6, 5), name="GRUCell(4, 5)(x, h) for x (6, 4) and h (6, 5)", dims="B, H")
    assert_close(out["diagonal"], _torch_gru_cell(x, h, w), atol=1e-5, rtol=1e-4,
                 name="GRUCell(4, 5)(x, h) with random weights and a diagonal W_hg, vs nn.GRUCell")
    # r = MASK: the handout's candidate reads MASK * h. nn.GRUCell with r = 1, fed MASK * h, computes the same
    # z (W_hz = 0) and candidate; its new state mixes z with MASK * h instead of h, hence the correction.
    w, x, h = _mask_case()
    mask = torch.tensor(MASK, dtype=torch.float64)
    opened = dict(w, b_r=torch.full((5,), 40.0))
    z = torch.sigmoid(x.double() @ w["W_xz"].double() + w["b_z"].double())
    expected = _torch_gru_cell(x, mask * h, opened) + z * (1 - mask) * h.double()
    assert_close(out["mask"], expected, atol=1e-5, rtol=1e-4,
                 name=f"GRUCell(4, 5)(x, h) with the reset gate fixed at r = {MASK} (the candidate may read h only "
                      "where r is 1), vs nn.GRUCell")
    ### BEGIN HIDDEN TESTS
    for i, (E, H, B, seed) in enumerate(HIDDEN):
        w, x, h = _random_case(E, H, B, seed)
        assert_close(out["random"][i], _handout_gru(x, h, w), atol=1e-5, rtol=1e-4,
                     name=f"GRUCell({E}, {H}) with random weights on a batch of {B}, vs the handout's equations")
    w, x, h = _random_case(4, 5, 6, 40)
    assert_close(out["float64"], _handout_gru(x, h, w), atol=1e-12, rtol=1e-10, name="GRUCell(4, 5) in float64")
    params = {k: v.double().requires_grad_() for k, v in w.items()}
    x, h = x.double().requires_grad_(), h.double().requires_grad_()
    weights = torch.Generator().manual_seed(77)
    loss = (_handout_gru(x, h, params) * torch.randn(6, 5, generator=weights, dtype=torch.float64)).sum()
    expected = dict(zip([*SHAPES, "x", "h"], torch.autograd.grad(loss, [*params.values(), x, h])))
    for name, grad in expected.items():
        assert_close(out["grads"][name], grad, atol=1e-10, rtol=1e-8,
                     name=f"the gradient of a loss with respect to {name} through your GRUCell (does the graph reach it?)")
    ### END HIDDEN TESTS


grade("test_GRUCell_reset", run, check,
      forbid=["torch.nn.GRUCell", "torch.nn.GRU", "torch.gru_cell", "course_solutions.layers"])

# %% [markdown]
# Outside the tests `nn.GRUCell` is allowed. With every gate active, your cell and PyTorch's
# differ (the reset gate's placement), by an amount that depends on the weights:

# %%
torch_cell = nn.GRUCell(8, 6)
your_cell = GRUCell(8, 6)
with torch.no_grad():  # copy PyTorch's weights into yours (gates stacked as r, z, n; transposed)
    for k, gate in enumerate("rzg"):
        getattr(your_cell, f"W_x{gate}").copy_(torch_cell.weight_ih[6 * k:6 * (k + 1)].T)
        getattr(your_cell, f"W_h{gate}").copy_(torch_cell.weight_hh[6 * k:6 * (k + 1)].T)
        getattr(your_cell, f"b_{gate}").copy_(torch_cell.bias_ih[6 * k:6 * (k + 1)])
    torch_cell.bias_hh.zero_()
    x_demo, h_demo = torch.randn(3, 8), torch.randn(3, 6)  # (B, E), (B, H)
    print(f"largest difference from nn.GRUCell: {(your_cell(x_demo, h_demo) - torch_cell(x_demo, h_demo)).abs().max():.3f}")
del torch_cell, your_cell

# %% [markdown]
# ### Q4: The gradients of a GRU cell [20 pts, plus 6 autograded]
#
# Unroll the cell over two time steps: $h_1$ is computed from $x_1$ and $h_0$, then $h_2$ from
# $x_2$ and $h_1$, and a loss $\epsilon_2$ is computed from $h_2$ (for a language model, the
# cross-entropy of the word predicted from $h_2$). Suppose that the upstream gradient
# $\delta = \partial \epsilon_2 / \partial h_2$ (a row vector of size $H$) is known. Q4 asks for
# the gradient of $\epsilon_2$ with respect to each of the six weight matrices **through step 2**:
# treat $x_2$ and $h_1$ as given numbers. (Backpropagation through time would add, for each
# weight, the gradient through $h_1$ into step 1, computed in the same way.) Write your answers
# with $\delta$, the inputs $x_2$, $h_1$ and the values $z_2$, $r_2$, $g_2$ of the forward pass;
# $\partial \epsilon_2 / \partial W$ has the shape of $W$. Useful facts:
# $\sigma'(a) = \sigma(a)\,(1 - \sigma(a))$, $\tanh'(a) = 1 - \tanh^2(a)$, and if
# $a = u W$ (a row vector times a matrix), then $\partial \epsilon / \partial W = u^\top
# (\partial \epsilon / \partial a)$, the outer product of the input and the gradient of the output.
#
# Compute:
#
# - **a.** $\dfrac{\partial \epsilon_2}{\partial W_{xz}}$; **b.** $\dfrac{\partial \epsilon_2}{\partial W_{hz}}$;
#   **c.** $\dfrac{\partial \epsilon_2}{\partial W_{xg}}$; **d.** $\dfrac{\partial \epsilon_2}{\partial W_{hg}}$;
#   **e.** $\dfrac{\partial \epsilon_2}{\partial W_{xr}}$; **f.** $\dfrac{\partial \epsilon_2}{\partial W_{hr}}$.
#
# Write each derivation in its answer cell below, and implement them all in `gru_cell_backward`,
# for a batch: row $b$ of `x`, `h_prev`, `z`, `r`, `g` and `dh` holds $x_2$, $h_1$, $z_2$, $r_2$,
# $g_2$ and $\delta$ of sequence $b$, and the loss is the sum of the sequences' losses, so each
# gradient is the **sum over the batch** of the per-sequence gradients (a matrix product does the
# sum for you). Each part has its own test cell, which compares only that part's gradient with
# `torch.autograd`; automatic differentiation is disabled while they run: derive the gradients
# yourself.

# %% nbgrader={"grade": false, "grade_id": "gru_cell_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gru_cell_backward(x, h_prev, z, r, g, W_hg, dh):
    """Q4a-f: the gradients of the loss with respect to the six weight matrices of one GRU step.

    Args:
        x: (B, E) the step's inputs x_2.
        h_prev: (B, H) the previous states h_1 (constants here).
        z, r, g: (B, H) each, the update gate, reset gate and candidate of the forward pass.
        W_hg: (H, H) the candidate's recurrent weights.
        dh: (B, H) the upstream gradient dL/dh_2 of each sequence.
    Returns:
        dict with the keys "W_xz", "W_hz", "W_xg", "W_hg", "W_xr", "W_hr": the gradient of the loss
        (summed over the batch) with respect to each matrix, with its shape: (E, H) for W_x*, (H, H)
        for W_h*.
    """
    ### BEGIN SOLUTION
    dz = dh * (h_prev - g) * z * (1 - z)  # dL/d(pre-activation of z), (B, H)
    dg = dh * (1 - z) * (1 - g * g)  # dL/d(pre-activation of g), (B, H)
    dr = (dg @ W_hg.T) * h_prev * r * (1 - r)  # dL/d(pre-activation of r), (B, H)
    return {
        "W_xz": x.T @ dz,
        "W_hz": h_prev.T @ dz,
        "W_xg": x.T @ dg,
        "W_hg": (r * h_prev).T @ dg,
        "W_xr": x.T @ dr,
        "W_hr": h_prev.T @ dr,
    }
    ### END SOLUTION


# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4a** [3 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{xz}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* With the pre-activation $a^z = x_2 W_{xz} + h_1 W_{hz} + b_z$, so $z_2 = \sigma(a^z)$: the
# loss depends on $z_2$ only through $h_2 = z_2 \odot h_1 + (1 - z_2) \odot g_2$, element by element, so
# $\partial h_2 / \partial z_2 = h_1 - g_2$ (a diagonal Jacobian: an element-wise product), and
# $\partial z_2 / \partial a^z = z_2 \odot (1 - z_2)$. The gradient of the pre-activation is
# $$\delta^z = \frac{\partial \epsilon_2}{\partial a^z} = \delta \odot (h_1 - g_2) \odot z_2 \odot (1 - z_2).$$
# Each entry $a^z_j = \sum_i x_{2,i} (W_{xz})_{ij} + \dots$, so $\partial \epsilon_2 / \partial (W_{xz})_{ij} = x_{2,i}\,
# \delta^z_j$: the outer product
# $$\frac{\partial \epsilon_2}{\partial W_{xz}} = x_2^\top \big(\delta \odot (h_1 - g_2) \odot z_2 \odot (1 - z_2)\big)
# \quad (E \times H).$$
# For a batch, the rows' outer products are summed: `x.T @ dz`.
#
# *Rubric:* 1 pt $\partial h_2/\partial z_2 = h_1 - g_2$; 1 pt the sigmoid's derivative $z_2(1 - z_2)$; 1 pt
# the outer product with $x_2$ (the shape of $W_{xz}$). Column-vector conventions ($W^\top x$) with
# consistently transposed results earn full marks.

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_xz", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4a: gru_cell_backward(...)["W_xz"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_xz"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_xz", run, check, forbid=NO_AUTOGRAD)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4b** [3 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{hz}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4b", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The same path as 4a; only the input of the matrix changes: $W_{hz}$ multiplies $h_1$.
# With the pre-activation $a^z = x_2 W_{xz} + h_1 W_{hz} + b_z$, so $z_2 = \sigma(a^z)$: the
# loss depends on $z_2$ only through $h_2 = z_2 \odot h_1 + (1 - z_2) \odot g_2$, element by element, so
# $\partial h_2 / \partial z_2 = h_1 - g_2$ (a diagonal Jacobian: an element-wise product), and
# $\partial z_2 / \partial a^z = z_2 \odot (1 - z_2)$. The gradient of the pre-activation is
# $$\delta^z = \frac{\partial \epsilon_2}{\partial a^z} = \delta \odot (h_1 - g_2) \odot z_2 \odot (1 - z_2).$$
# $$\frac{\partial \epsilon_2}{\partial W_{hz}} = h_1^\top \big(\delta \odot (h_1 - g_2) \odot z_2 \odot (1 - z_2)\big)
# \quad (H \times H).$$
# (The handout's derivation writes $\partial \epsilon_2 / \partial W_{xz}$ on the left of its final line by
# mistake: it is $W_{hz}$.) For a batch: `h_prev.T @ dz`.
#
# *Rubric:* 1 pt the same chain as 4a through $z_2$; 1 pt the sigmoid's derivative; 1 pt the outer
# product with $h_1$ (not $x_2$), with $W_{hz}$ on the left.

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_hz", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4b: gru_cell_backward(...)["W_hz"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_hz"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_hz", run, check, forbid=NO_AUTOGRAD)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4c** [3 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{xg}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4c", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* With $a^g = x_2 W_{xg} + (r_2 \odot h_1) W_{hg} + b_g$ and $g_2 = \tanh(a^g)$:
# $\partial h_2 / \partial g_2 = 1 - z_2$ and $\partial g_2 / \partial a^g = 1 - g_2^2$, so
# $$\delta^g = \frac{\partial \epsilon_2}{\partial a^g} = \delta \odot (1 - z_2) \odot (1 - g_2^2).$$
# $$\frac{\partial \epsilon_2}{\partial W_{xg}} = x_2^\top \big(\delta \odot (1 - z_2) \odot (1 - g_2^2)\big) \quad (E \times H).$$
# For a batch: `x.T @ dg`.
#
# *Rubric:* 1 pt $\partial h_2/\partial g_2 = 1 - z_2$; 1 pt $\tanh' = 1 - g_2^2$; 1 pt the outer product with
# $x_2$.

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_xg", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4c: gru_cell_backward(...)["W_xg"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_xg"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_xg", run, check, forbid=NO_AUTOGRAD)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4d", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4d** [3 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{hg}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4d", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* With $a^g = x_2 W_{xg} + (r_2 \odot h_1) W_{hg} + b_g$ and $g_2 = \tanh(a^g)$:
# $\partial h_2 / \partial g_2 = 1 - z_2$ and $\partial g_2 / \partial a^g = 1 - g_2^2$, so
# $$\delta^g = \frac{\partial \epsilon_2}{\partial a^g} = \delta \odot (1 - z_2) \odot (1 - g_2^2).$$
# $W_{hg}$ multiplies the reset state $r_2 \odot h_1$, which is its input:
# $$\frac{\partial \epsilon_2}{\partial W_{hg}} = (r_2 \odot h_1)^\top \big(\delta \odot (1 - z_2) \odot (1 - g_2^2)\big)
# \quad (H \times H).$$
# For a batch: `(r * h_prev).T @ dg`.
#
# *Rubric:* 1 pt the chain through $g_2$ ($1 - z_2$, $1 - g_2^2$); 1 pt the input of $W_{hg}$ is
# $r_2 \odot h_1$ (not $h_1$); 1 pt the outer product, with the shape of $W_{hg}$.

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_hg", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4d: gru_cell_backward(...)["W_hg"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_hg"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_hg", run, check, forbid=NO_AUTOGRAD)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4e", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4e** [4 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{xr}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4e", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* $r_2$ reaches the loss through the candidate: $a^g_j = \dots + \sum_i r_{2,i}\, h_{1,i}\, (W_{hg})_{ij}$, so
# $\partial \epsilon_2 / \partial r_{2,i} = h_{1,i} \sum_j (W_{hg})_{ij}\, \delta^g_j$, that is
# $\partial \epsilon_2 / \partial r_2 = (\delta^g W_{hg}^\top) \odot h_1$, with $\delta^g = \delta \odot (1 - z_2) \odot
# (1 - g_2^2)$ as in 4c. (The matrix multiplies the back-propagated gradient, not $h_1$: the handout's
# "$(1 - g_2^2) \cdot (W_{hg}^\top h_1)$" is not the derivative; in column-vector notation it is
# $W_{hg}\, \delta^g$, transposed here for row vectors.) With $a^r = x_2 W_{xr} + h_1 W_{hr} + b_r$ and
# $\partial r_2 / \partial a^r = r_2 \odot (1 - r_2)$:
# $$\delta^r = \frac{\partial \epsilon_2}{\partial a^r} = \big((\delta^g W_{hg}^\top) \odot h_1\big) \odot r_2 \odot (1 - r_2).$$
# $$\frac{\partial \epsilon_2}{\partial W_{xr}} = x_2^\top \Big(\big((\delta \odot (1 - z_2) \odot (1 - g_2^2))\,
# W_{hg}^\top\big) \odot h_1 \odot r_2 \odot (1 - r_2)\Big) \quad (E \times H).$$
# For a batch: `dr = (dg @ W_hg.T) * h_prev * r * (1 - r)`, then `x.T @ dr`.
#
# *Rubric:* 1 pt the chain $\epsilon_2 \to h_2 \to g_2 \to r_2 \to W_{xr}$; 1 pt $\partial \epsilon_2/\partial r_2$
# with $W_{hg}^\top$ applied to the candidate's gradient and the product with $h_1$ (the handout's
# $W_{hg}^\top h_1$ loses this point); 1 pt the sigmoid's derivative $r_2(1 - r_2)$; 1 pt the outer
# product with $x_2$.

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_xr", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4e: gru_cell_backward(...)["W_xr"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_xr"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_xr", run, check, forbid=NO_AUTOGRAD)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q4f", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4f** [4 pts] Derive $\dfrac{\partial \epsilon_2}{\partial W_{hr}}$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q4f", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* As in 4e, with $h_1$ as the input of the matrix. $r_2$ reaches the loss through the candidate: $a^g_j = \dots + \sum_i r_{2,i}\, h_{1,i}\, (W_{hg})_{ij}$, so
# $\partial \epsilon_2 / \partial r_{2,i} = h_{1,i} \sum_j (W_{hg})_{ij}\, \delta^g_j$, that is
# $\partial \epsilon_2 / \partial r_2 = (\delta^g W_{hg}^\top) \odot h_1$, with $\delta^g = \delta \odot (1 - z_2) \odot
# (1 - g_2^2)$ as in 4c. (The matrix multiplies the back-propagated gradient, not $h_1$: the handout's
# "$(1 - g_2^2) \cdot (W_{hg}^\top h_1)$" is not the derivative; in column-vector notation it is
# $W_{hg}\, \delta^g$, transposed here for row vectors.) With $a^r = x_2 W_{xr} + h_1 W_{hr} + b_r$ and
# $\partial r_2 / \partial a^r = r_2 \odot (1 - r_2)$:
# $$\delta^r = \frac{\partial \epsilon_2}{\partial a^r} = \big((\delta^g W_{hg}^\top) \odot h_1\big) \odot r_2 \odot (1 - r_2).$$
# $$\frac{\partial \epsilon_2}{\partial W_{hr}} = h_1^\top \Big(\big((\delta \odot (1 - z_2) \odot (1 - g_2^2))\,
# W_{hg}^\top\big) \odot h_1 \odot r_2 \odot (1 - r_2)\Big) \quad (H \times H).$$
# $h_1$ appears twice: as the input of $W_{hr}$ (the outer product) and as the factor that the reset
# gate multiplies. For a batch: `h_prev.T @ dr`.
#
# *Rubric:* 1 pt the chain through $g_2$ and $r_2$; 1 pt $\partial \epsilon_2/\partial r_2$ with
# $W_{hg}^\top$ and $h_1$ as in 4e; 1 pt $r_2(1 - r_2)$; 1 pt the outer product with $h_1$, in the
# right order ($h_1^\top \delta^r$, not its transpose: $W_{hr}$ is square, so the shape does not catch
# this).

# %% nbgrader={"grade": true, "grade_id": "test_gru_cell_backward_W_hr", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Q4f: gru_cell_backward(...)["W_hr"] against torch.autograd (this cell checks only this key).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

KEY = "W_hr"
SHAPES = {"W_xz": "EH", "W_hz": "HH", "W_xg": "EH", "W_hg": "HH", "W_xr": "EH", "W_hr": "HH"}
NO_AUTOGRAD = ["torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.autograd.functional",
               "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
               "course_solutions.layers"]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2, 3, 1), (6, 7, 4, 2), (4, 5, 5, 3)]  # (B, E, H, seed)
JACOBIAN_CASE = (2, 3, 3, 4)  # (B, E, H, seed): small enough to ask for the gradient of every output
### END HIDDEN TESTS


def _case(B, E, H, seed):
    """Float64 weights, inputs x (B, E) and h_prev (B, H), and dL/dh (B, H), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"E": E, "H": H}
    W = {name: 0.7 * torch.randn(*[sizes[d] for d in dims], generator=gen, dtype=torch.float64)
         for name, dims in SHAPES.items()}
    b = {name: 0.3 * torch.randn(H, generator=gen, dtype=torch.float64) for name in ("b_z", "b_r", "b_g")}
    x = torch.randn(B, E, generator=gen, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=gen, dtype=torch.float64)
    dh = torch.randn(B, H, generator=gen, dtype=torch.float64)
    return W, b, x, h_prev, dh


def _step(W, b, x, h_prev):
    """The handout's GRU step, computed by the test: (z, r, g, h_new), each (B, H)."""
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + b["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + b["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + b["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def _yours(B, E, H, seed, dh=None):
    """Your gradient for KEY on the case (with dh replaced if given)."""
    W, b, x, h_prev, case_dh = _case(B, E, H, seed)
    z, r, g, _ = _step(W, b, x, h_prev)
    with quiet():
        grads = gru_cell_backward(x, h_prev, z, r, g, W["W_hg"], case_dh if dh is None else dh)
    if not isinstance(grads, dict):
        return f"a {type(grads).__name__}"
    return grads.get(KEY, f"a dict without the key {KEY!r} (its keys: {sorted(map(str, grads))})")


def _autograd(B, E, H, seed):
    """d(sum(dh * h_new))/dW[KEY] by torch.autograd, x and h_prev held constant."""
    W, b, x, h_prev, dh = _case(B, E, H, seed)
    W = {name: w.clone().requires_grad_(name == KEY) for name, w in W.items()}
    h_new = _step(W, b, x, h_prev)[3]
    return torch.autograd.grad((dh * h_new).sum(), W[KEY])[0]


def _check_one(value, B, E, H, seed):
    assert_true(not isinstance(value, str), f"gru_cell_backward should return a dict of gradients, got {value}")
    sizes = {"E": E, "H": H}
    shape = tuple(sizes[d] for d in SHAPES[KEY])
    assert_shape(value, shape, name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}',
                 dims=", ".join(SHAPES[KEY]))
    assert_close(value, _autograd(B, E, H, seed), atol=1e-9, rtol=1e-7,
                 name=f'gru_cell_backward(...)["{KEY}"] for B={B}, E={E}, H={H}, vs torch.autograd')
### BEGIN HIDDEN TESTS


def _gradcheck(rows):
    """torch.autograd.gradcheck of h_new as a function of W[KEY], through a custom autograd.Function whose
    backward is your gradient: rows[k] is your gru_cell_backward(...)[KEY] for dh = the k-th one-hot (B, H)."""
    B, E, H, seed = JACOBIAN_CASE
    W, b, x, h_prev, _ = _case(B, E, H, seed)
    jacobian = torch.stack([torch.as_tensor(row, dtype=torch.float64) for row in rows])  # (B*H, *W.shape)

    class YourGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight):
            return _step({**W, KEY: weight}, b, x, h_prev)[3]

        @staticmethod
        def backward(ctx, grad_output):
            return torch.einsum("k,k...->...", grad_output.reshape(-1), jacobian)

    weight = W[KEY].clone().requires_grad_()
    return torch.autograd.gradcheck(YourGradient.apply, (weight,), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    raise_exception=False, check_undefined_grad=False)
### END HIDDEN TESTS


def run():
    out = {"public": _yours(3, 4, 5, seed=0)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(B, E, H, seed) for B, E, H, seed in HIDDEN]
    B, E, H, seed = JACOBIAN_CASE
    out["rows"] = [_yours(B, E, H, seed, dh=torch.eye(B * H, dtype=torch.float64)[k].reshape(B, H))
                   for k in range(B * H)]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_one(out["public"], 3, 4, 5, seed=0)
    ### BEGIN HIDDEN TESTS
    for value, (B, E, H, seed) in zip(out["hidden"], HIDDEN):
        _check_one(value, B, E, H, seed)
    assert_true(not any(isinstance(row, str) for row in out["rows"]), "gru_cell_backward should return a dict")
    assert_true(_gradcheck(out["rows"]), f"torch.autograd.gradcheck fails with your gradient for {KEY} as the backward")
    ### END HIDDEN TESTS


grade("test_gru_cell_backward_W_hr", run, check, forbid=NO_AUTOGRAD)

# %% [markdown]
# A numerical check of your gradients outside the tests, where autograd is allowed (the same
# comparison as the tests, on another example):

# %%
def autograd_gru_gradients(x, h_prev, weights, dh):
    """The six gradients by torch.autograd, for comparison: weights maps the handout's names to tensors."""
    weights = {name: w.detach().clone().requires_grad_(name.startswith("W")) for name, w in weights.items()}
    z = torch.sigmoid(x @ weights["W_xz"] + h_prev @ weights["W_hz"] + weights["b_z"])
    r = torch.sigmoid(x @ weights["W_xr"] + h_prev @ weights["W_hr"] + weights["b_r"])
    g = torch.tanh(x @ weights["W_xg"] + (r * h_prev) @ weights["W_hg"] + weights["b_g"])
    names = ["W_xz", "W_hz", "W_xg", "W_hg", "W_xr", "W_hr"]
    grads = torch.autograd.grad(((z * h_prev + (1 - z) * g) * dh).sum(), [weights[n] for n in names])
    return dict(zip(names, grads)), (z.detach(), r.detach(), g.detach())


demo_cell = GRUCell(6, 4).double()
demo_weights = dict(demo_cell.named_parameters())
x_demo, h_demo, dh_demo = torch.randn(5, 6).double(), torch.randn(5, 4).double(), torch.randn(5, 4).double()
expected_grads, (z_demo, r_demo, g_demo) = autograd_gru_gradients(x_demo, h_demo, demo_weights, dh_demo)
your_grads = gru_cell_backward(x_demo, h_demo, z_demo, r_demo, g_demo, demo_weights["W_hg"].detach(), dh_demo)
pd.Series({name: f"{(your_grads[name] - grad).abs().max().item():.2e}" for name, grad in expected_grads.items()},
          name="largest difference from autograd")

# %% [markdown]
# ---
# ## 3. Practical: the data pipeline [8 pts]
#
# From here on you replicate the "small" model of Zaremba et al. (2014) on the **Penn Treebank**
# in Mikolov's preprocessed version: about 930,000 training words, 74,000 validation and 82,000 test
# words, lower-cased, numbers replaced by `N`, and every word outside the 10,000 most frequent
# replaced by `<unk>`. `course_lib.ptb.read_words(split)` reads a split (`"train"`, `"valid"` or
# `"test"`) as **one stream of words**: each line's words, followed by the end-of-sentence token
# `"<eos>"`. A language model of this kind reads the corpus as one long text, so sentences are not
# padded and batched separately: the whole stream is cut into `B` parallel streams, and each
# stream is read `T` words at a time, with the hidden state carried from one batch to the next
# (*truncated backpropagation through time*).
#
# 1. `build_vocab(words)` numbers the words **in order of first occurrence**: the first word of
#    the training stream gets id 0, the next new word id 1, and so on. (The vocabulary of the
#    training split contains every word of the validation and test splits.)
# 2. `batchify(ids, batch_size)` cuts the stream of `N` ids into `B = batch_size` contiguous
#    streams of `L = N // B` ids, one per row: row `b` holds `ids[b*L : (b+1)*L]`. The `N % B` ids
#    left over at the **end** of the stream are dropped. With the stream `0 1 2 ... 9` and `B = 3`:
#
#    ```
#    row 0: 0 1 2
#    row 1: 3 4 5
#    row 2: 6 7 8        (9 is dropped)
#    ```
#
#    Each row is read from left to right over the batches, so the word at the end of one batch is
#    followed by the first word of the next batch in the same row, and the hidden state of row `b`
#    carries over.
# 3. `get_batch(data, i, bptt)` returns the batch that starts at column `i`: the **inputs** are the
#    columns `i .. i+T-1` and the **targets** the next words, columns `i+1 .. i+T`, with
#    `T = min(bptt, L - 1 - i)` (the last batch of an epoch can be shorter; the last column is only
#    ever a target). An epoch reads `i = 0, bptt, 2 bptt, ...` while `i < L - 1`.

# %% nbgrader={"grade": false, "grade_id": "build_vocab", "locked": false, "schema_version": 3, "solution": true, "task": false}
def build_vocab(words):
    """Number the distinct words of a stream in order of first occurrence.

    Args:
        words: a list of word strings (e.g. read_words("train")).
    Returns:
        dict mapping each distinct word to its id: the first word of the list gets 0, the next word
        not seen before 1, and so on (ids 0 .. n-1 for n distinct words).
    """
    ### BEGIN SOLUTION
    vocab: dict[str, int] = {}
    for w in words:
        if w not in vocab:
            vocab[w] = len(vocab)
    return vocab
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_build_vocab", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade, quiet

WORDS = ["the", "cat", "sat", "<eos>", "the", "dog", "sat", "down", "<eos>"]
EXPECTED = {"the": 0, "cat": 1, "sat": 2, "<eos>": 3, "dog": 4, "down": 5}  # in order of first occurrence
### BEGIN HIDDEN TESTS
HIDDEN_WORDS = [["b", "a", "b", "c", "a", "d"], ["only"], [], ["x"] * 5 + ["<unk>", "y", "x", "N", "<unk>", "z"]]


def _random_words():
    import random

    rng = random.Random(3)
    pool = [f"w{k}" for k in range(60)]
    return [rng.choice(pool) for _ in range(400)]
### END HIDDEN TESTS


def _as_dict(vocab):
    return dict(vocab) if isinstance(vocab, dict) else f"a {type(vocab).__name__}"


def _check_vocab(got, words, expected, label):
    assert_true(isinstance(got, dict), f"build_vocab({label}) should return a dict word -> id, got {got}")
    assert_true(set(got) == set(words), f"build_vocab({label}) should have exactly the distinct words as keys, got {sorted(got)}")
    assert_true(got == expected, f"build_vocab({label}) gave {got}, expected {expected} (ids in order of first occurrence)")


def run():
    with quiet():
        out = {"toy": _as_dict(build_vocab(list(WORDS)))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [_as_dict(build_vocab(list(words))) for words in HIDDEN_WORDS]
        out["random"] = _as_dict(build_vocab(_random_words()))
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_vocab(out["toy"], WORDS, EXPECTED, f"{WORDS}")
    ### BEGIN HIDDEN TESTS
    for got, words in zip(out["hidden"], HIDDEN_WORDS):
        _check_vocab(got, words, {w: i for i, w in enumerate(dict.fromkeys(words))}, f"{words}")
    words = _random_words()
    _check_vocab(out["random"], words, {w: i for i, w in enumerate(dict.fromkeys(words))}, "400 random words")
    ### END HIDDEN TESTS


grade("test_build_vocab", run, check, forbid=["course_lib.wikitext.WordVocab", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_build_vocab_ptb", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# build_vocab on the Penn Treebank's training split.
import torch

from course_lib.grading.checks import assert_equal, assert_true, grade, quiet
from course_lib.ptb import read_words

FIRST_WORDS = ["aer", "banknote", "berlitz", "calloway", "centrust"]  # the training split begins with these
### BEGIN HIDDEN TESTS
ID_CHECKSUM = 582_494_656_677  # sum over the stream of id * (position % 1009), with the reference's ids
### END HIDDEN TESTS


def run():
    words = read_words("train")
    with quiet():
        vocab = build_vocab(words)
    if not isinstance(vocab, dict):
        return {"error": f"build_vocab returned a {type(vocab).__name__}, not a dict"}
    missing = next((w for w in words if w not in vocab), None)
    if missing is not None:
        return {"error": f"the word {missing!r} of the training split is not in the vocabulary"}
    ids = torch.tensor([vocab[w] for w in words])
    by_id = {i: w for w, i in vocab.items() if isinstance(i, int)}
    out = {"size": len(vocab), "eos": vocab.get("<eos>"), "first": [by_id.get(i) for i in range(len(FIRST_WORDS))],
           "distinct_ids": len(set(vocab.values())), "min_id": int(ids.min()), "max_id": int(ids.max()),
           "words": len(ids), "not_eos": int((ids != vocab.get("<eos>", -1)).sum())}
    ### BEGIN HIDDEN TESTS
    out["checksum"] = int((ids * (torch.arange(len(ids)) % 1009)).sum())
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_true("error" not in out, f"build_vocab on the training split: {out.get('error')}")
    assert_equal(out["words"], 929_589, name="the number of words of the training split (with <eos>)")
    assert_equal(out["size"], 10_000, name="len(build_vocab(read_words('train')))")
    assert_true(out["eos"] is not None, 'the vocabulary should contain "<eos>"')
    assert_equal(out["not_eos"], 887_521, name="the number of training words whose id is not the id of <eos>")
    assert_true(out["distinct_ids"] == out["size"] and out["min_id"] == 0 and out["max_id"] == out["size"] - 1,
                f"the ids should be 0 .. {out['size'] - 1}, each used once, got ids from {out['min_id']} to "
                f"{out['max_id']} with {out['distinct_ids']} distinct values")
    assert_true(out["first"] == FIRST_WORDS,
                f"ids 0 .. 4 should be the first five words of the training split, {FIRST_WORDS}, got {out['first']}")
    assert_equal(out["eos"], 24, name='the id of "<eos>" (the first line has 24 distinct words)')
    ### BEGIN HIDDEN TESTS
    assert_equal(out["checksum"], ID_CHECKSUM, name="a checksum of the ids of the training stream")
    ### END HIDDEN TESTS


grade("test_build_vocab_ptb", run, check, forbid=["course_lib.wikitext.WordVocab", "course_solutions.layers"])

# %% nbgrader={"grade": false, "grade_id": "batchify", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchify(ids, batch_size):
    """Cut a stream of ids into batch_size contiguous streams, one per row.

    Args:
        ids: a 1-D tensor of N token ids (torch.long).
        batch_size: B, the number of streams.
    Returns:
        a (B, L) tensor with L = N // B: row b holds ids[b*L : (b+1)*L]; the N % B ids at the end of
        the stream are dropped. A column data[:, j] is (B,): the j-th id of every stream. The
        dtype is that of ids.
    """
    ### BEGIN SOLUTION
    L = ids.numel() // batch_size
    return ids[: batch_size * L].reshape(batch_size, L)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_batchify", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet

CASES = [(26, 4), (12, 3)]  # (N, B): ids are 100, 101, ..., 100 + N - 1
### BEGIN HIDDEN TESTS
HIDDEN = [(103, 7), (50, 1), (9, 9), (40, 20)]  # (N, B), random ids
### END HIDDEN TESTS


def _ids(N, seed=None):
    if seed is None:
        return torch.arange(100, 100 + N)
    return torch.randint(0, 10_000, (N,), generator=torch.Generator().manual_seed(seed))


def _expected(ids, B):
    """Row b is the b-th block of L = N // B consecutive ids (written as a list of lists)."""
    L = len(ids) // B
    return [[int(ids[b * L + j]) for j in range(L)] for b in range(B)]


def run():
    out = {}
    with quiet():
        out["public"] = [batchify(_ids(N), B) for N, B in CASES]
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [batchify(_ids(N, seed=N), B) for N, B in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for data, (N, B) in zip(out["public"], CASES):
        assert_shape(data, (B, N // B), name=f"batchify(ids, {B}) for N = {N} ids", dims="B, L")
        assert_equal(data, _expected(_ids(N), B), name=f"batchify(ids, {B}) for the ids 100 .. {100 + N - 1}")
    ### BEGIN HIDDEN TESTS
    for data, (N, B) in zip(out["hidden"], HIDDEN):
        assert_shape(data, (B, N // B), name=f"batchify(ids, {B}) for N = {N} ids", dims="B, L")
        assert_equal(data, _expected(_ids(N, seed=N), B), name=f"batchify(ids, {B}) for {N} random ids")
        assert_true(data.dtype == torch.int64, f"batchify should keep the dtype of the ids (long), got {data.dtype}")
    ### END HIDDEN TESTS


grade("test_batchify", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": false, "grade_id": "get_batch", "locked": false, "schema_version": 3, "solution": true, "task": false}
def get_batch(data, i, bptt):
    """The batch that starts at column i of the batchified data.

    Args:
        data: (B, L) tensor of ids, from batchify.
        i: the first column of the batch (0 <= i < L - 1).
        bptt: the number of time steps of a full batch.
    Returns:
        (inputs, targets), each (B, T) with T = min(bptt, L - 1 - i): inputs are the columns
        i .. i+T-1, targets the columns i+1 .. i+T (the next word at every position).
    """
    ### BEGIN SOLUTION
    T = min(bptt, data.size(1) - 1 - i)
    return data[:, i : i + T], data[:, i + 1 : i + 1 + T]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_get_batch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_equal, assert_shape, grade, quiet

DATA_SHAPE, BPTT = (3, 10), 4  # data[b, j] = 10 * b + j
### BEGIN HIDDEN TESTS
HIDDEN = [((5, 23), 7, [0, 7, 14, 21, 3]), ((2, 6), 10, [0, 2]), ((4, 2), 3, [0])]  # (shape, bptt, starts)
### END HIDDEN TESTS


def _data(shape, seed=None):
    B, L = shape
    if seed is None:
        return 10 * torch.arange(B)[:, None] + torch.arange(L)[None, :]
    return torch.randint(0, 1000, shape, generator=torch.Generator().manual_seed(seed))


def _expected(data, i, bptt):
    """Input and target windows, position by position: the target is the next column."""
    B, L = data.shape
    steps = range(min(bptt, L - 1 - i))
    return ([[int(data[b, i + t]) for t in steps] for b in range(B)],
            [[int(data[b, i + t + 1]) for t in steps] for b in range(B)])


def _check_epoch(batches, data, bptt, label):
    """Every batch of an epoch (i = 0, bptt, 2 bptt, ... < L - 1): windows, and together every column once."""
    B, L = data.shape
    starts = list(range(0, L - 1, bptt))
    for (inputs, targets), i in zip(batches, starts):
        expected_inputs, expected_targets = _expected(data, i, bptt)
        T = len(expected_inputs[0])
        assert_shape(inputs, (B, T), name=f"the inputs of get_batch(data, {i}, {bptt}) for {label}", dims="B, T")
        assert_shape(targets, (B, T), name=f"the targets of get_batch(data, {i}, {bptt}) for {label}", dims="B, T")
        assert_equal(inputs, expected_inputs, name=f"the inputs of get_batch(data, {i}, {bptt}) for {label}")
        assert_equal(targets, expected_targets, name=f"the targets of get_batch(data, {i}, {bptt}) for {label}")
    seen = torch.cat([torch.as_tensor(t) for _, t in batches], dim=1)
    assert_equal(seen, data[:, 1:], name=f"the targets of a whole epoch, side by side, for {label} (columns 1 .. L-1)")


def run():
    data = _data(DATA_SHAPE)
    with quiet():
        out = {"epoch": [get_batch(data, i, BPTT) for i in range(0, DATA_SHAPE[1] - 1, BPTT)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for k, (shape, bptt, starts) in enumerate(HIDDEN):
        data = _data(shape, seed=k)
        with quiet():
            out["hidden"].append([get_batch(data, i, bptt) for i in starts])
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_epoch(out["epoch"], _data(DATA_SHAPE), BPTT, "data (3, 10) with data[b, j] = 10 * b + j")
    ### BEGIN HIDDEN TESTS
    for k, (shape, bptt, starts) in enumerate(HIDDEN):
        data = _data(shape, seed=k)
        for (inputs, targets), i in zip(out["hidden"][k], starts):
            expected_inputs, expected_targets = _expected(data, i, bptt)
            T = len(expected_inputs[0])
            assert_shape(inputs, (shape[0], T), name=f"inputs of get_batch(data {shape}, {i}, {bptt})", dims="B, T")
            assert_equal(inputs, expected_inputs, name=f"inputs of get_batch(data {shape}, {i}, {bptt})")
            assert_equal(targets, expected_targets, name=f"targets of get_batch(data {shape}, {i}, {bptt})")
    ### END HIDDEN TESTS


grade("test_get_batch", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# The Penn Treebank through your pipeline: the vocabulary of the training split, the training
# stream in 20 rows (Zaremba's batch size), and the first batch of `bptt = 5` steps as words (the
# experiments use 20 steps):

# %%
train_words = read_words("train")
vocab = build_vocab(train_words)
itos = {i: w for w, i in vocab.items()}
train_data = batchify(torch.tensor([vocab[w] for w in train_words]), 20)
print(f"{len(train_words):,} training words, a vocabulary of {len(vocab):,}; batchified: {tuple(train_data.shape)}")
first_inputs, first_targets = get_batch(train_data, 0, 5)
pd.DataFrame({f"row {b}": [f"{itos[int(a)]} -> {itos[int(t)]}" for a, t in zip(first_inputs[b], first_targets[b])]
              for b in range(3)}).rename_axis("t")

# %% [markdown]
# ---
# ## 4. Practical: the model and truncated backpropagation [17 pts]
#
# ### The model [7 pts]
#
# Zaremba et al.'s word-level language model reads the ids `(B, T)`, looks up their embeddings,
# runs them through a stack of recurrent layers and maps every output to `V` scores (logits) for
# the next word:
#
# ```
# inputs (B, T) -> embedding (B, T, E) -> dropout -> rnn: num_layers x (LSTM or GRU), dropout between layers
#               -> (B, T, H) -> dropout -> decoder: Linear(H, V) -> logits (B, T, V)
# ```
#
# Dropout is applied only to the **non-recurrent** connections (the input of the first layer,
# between the layers, and the output of the last), never to the hidden state carried from one time
# step to the next: that is the paper's point. Use PyTorch's fused `nn.LSTM` / `nn.GRU` with
# `batch_first=True` (inputs `(B, T, E)`), whose `dropout` argument drops between the layers (only
# when `num_layers > 1`), and the module `self.dropout` (an `nn.Dropout`) for the other two. In
# "small", `E = H = 200` and 2 layers. Every parameter (embedding, recurrent weights and biases,
# decoder) is initialised uniformly in `[-init_range, init_range]` (0.1). The hidden state is
# `(h, c)` for an LSTM and `h` for a GRU, each `(num_layers, B, H)`; `init_hidden(B)` gives zeros.
# `forward` takes the hidden state to start from (None means zeros) and returns the logits **and
# the final hidden state**, so that the next batch can start where this one stopped.

# %% nbgrader={"grade": false, "grade_id": "WordLM", "locked": false, "schema_version": 3, "solution": true, "task": false}
class WordLM(nn.Module):
    """Word-level LSTM or GRU language model: (B, T) token ids -> (B, T, V) logits and the final state.

    Attributes (keep these names: the tests read them and load weights into them):
        embedding: nn.Embedding(V, E), weight (V, E).
        dropout: nn.Dropout(dropout), applied to the embeddings (B, T, E) and to the outputs of the
            last recurrent layer (B, T, H).
        rnn: nn.LSTM or nn.GRU(E, H, num_layers, batch_first=True, dropout between the layers).
        decoder: nn.Linear(H, V).
    """

    def __init__(self, rnn_type, vocab_size, embedding_size=200, hidden_size=200, num_layers=2, dropout=0.0,
                 init_range=0.1):
        """Args:
            rnn_type: "lstm" or "gru".
            vocab_size: V.  embedding_size: E.  hidden_size: H.  num_layers: stacked recurrent layers.
            dropout: the dropout probability (embeddings, between layers, before the decoder).
            init_range: every parameter starts uniform in [-init_range, init_range].
        """
        super().__init__()
        self.rnn_type = rnn_type
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        ### BEGIN SOLUTION
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type]
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.rnn = rnn_class(embedding_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                             batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)
        ### END SOLUTION

    def init_hidden(self, batch_size):
        """The initial hidden state of batch_size streams, zeros on the model's device and dtype:
        (h, c) for an LSTM, h for a GRU, each (num_layers, B, H), e.g. (2, B, H)."""
        ### BEGIN SOLUTION
        weight = self.decoder.weight
        h = weight.new_zeros(self.num_layers, batch_size, self.hidden_size)
        return (h, h.clone()) if self.rnn_type == "lstm" else h
        ### END SOLUTION

    def forward(self, inputs, hidden=None):
        """Args:
            inputs: (B, T) token ids (torch.long).
            hidden: the state to start from, as init_hidden returns it ((h, c) or h, each
                (num_layers, B, H)); None means zeros.
        Returns:
            (logits, hidden): logits (B, T, V), and the hidden state after the last step (same
            structure and shapes as the one passed).
        """
        ### BEGIN SOLUTION
        out, hidden = self.rnn(self.dropout(self.embedding(inputs)), hidden)  # (B, T, H)
        return self.decoder(self.dropout(out)), hidden
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_WordLM_structure", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The submodules, the number of parameters, their initialisation and init_hidden.
import torch
from torch import nn

from course_lib.grading.checks import assert_close, assert_equal, assert_shape, assert_true, grade, quiet

CASES = [("lstm", 50, 8, 6, 2, 0.3, 0.1)]  # (rnn_type, V, E, H, num_layers, dropout, init_range)
### BEGIN HIDDEN TESTS
HIDDEN = [("gru", 30, 5, 7, 3, 0.2, 0.05), ("lstm", 40, 12, 9, 1, 0.0, 0.2), ("gru", 25, 6, 6, 2, 0.0, 0.1)]
### END HIDDEN TESTS


def _record(case, batch_size=3):
    rnn_type, V, E, H, num_layers, dropout, init_range = case
    torch.manual_seed(0)
    with quiet():
        model = WordLM(rnn_type, V, embedding_size=E, hidden_size=H, num_layers=num_layers, dropout=dropout,
                       init_range=init_range)
        hidden = model.init_hidden(batch_size)
    rnn = model.rnn
    return {"params": {name: p for name, p in model.named_parameters()},
            "rnn": type(rnn).__name__, "rnn_sizes": [rnn.input_size, rnn.hidden_size, rnn.num_layers],
            "batch_first": rnn.batch_first, "rnn_dropout": rnn.dropout, "dropout_p": model.dropout.p,
            "hidden": hidden}


def _expected_parameters(case):
    """The parameters of nn.Embedding, nn.LSTM / nn.GRU and nn.Linear of these sizes, counted by PyTorch."""
    rnn_type, V, E, H, num_layers, _, _ = case
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type](E, H, num_layers)
    return sum(p.numel() for m in (nn.Embedding(V, E), rnn, nn.Linear(H, V)) for p in m.parameters())


def _check_case(out, case, batch_size=3):
    rnn_type, V, E, H, num_layers, dropout, init_range = case
    label = f"WordLM{case[:5]}"
    assert_true(out["rnn"] == {"lstm": "LSTM", "gru": "GRU"}[rnn_type],
                f"{label}.rnn should be an nn.{rnn_type.upper()}, got {out['rnn']}")
    assert_true(out["rnn_sizes"] == [E, H, num_layers] and out["batch_first"],
                f"{label}.rnn should have input size {E}, hidden size {H}, {num_layers} layers and batch_first=True; "
                f"got sizes {out['rnn_sizes']}, batch_first={out['batch_first']}")
    if num_layers > 1:
        assert_close(out["rnn_dropout"], dropout, name=f"the dropout between the layers of {label}.rnn")
    assert_close(out["dropout_p"], dropout, name=f"{label}.dropout.p")
    params = out["params"]
    for name, shape in [("embedding.weight", (V, E)), ("decoder.weight", (V, H)), ("decoder.bias", (V,))]:
        assert_true(name in params, f"{label} has no parameter {name!r} (its parameters: {sorted(params)})")
        assert_shape(params[name], shape, name=f"{label}.{name}")
    assert_equal(sum(p.numel() for p in params.values()), _expected_parameters(case),
                 name=f"the number of parameters of {label}")
    for name, p in params.items():
        p = torch.as_tensor(p, dtype=torch.float64)
        assert_true(bool(p.abs().max() <= init_range), f"{label}.{name} should be initialised in "
                    f"[-{init_range}, {init_range}], but it holds values up to {float(p.abs().max()):.3f} in absolute value")
        assert_true(p.numel() < 4 or bool(p.abs().max() > init_range / 3) and bool(p.std() > init_range / 5),
                    f"{label}.{name} should be initialised uniformly in [-{init_range}, {init_range}], but its values "
                    f"are all close to 0 (largest {float(p.abs().max()):.4f})")
    values = torch.cat([torch.as_tensor(p, dtype=torch.float64).flatten() for p in params.values()])
    assert_close(values.std(), init_range / 3 ** 0.5, atol=0.12 * init_range,
                 name=f"the standard deviation of all the parameters of {label} (uniform in [-a, a]: a / sqrt(3))")
    hidden = out["hidden"]
    shape = (num_layers, batch_size, H)
    if rnn_type == "lstm":
        assert_true(isinstance(hidden, tuple) and len(hidden) == 2,
                    f"{label}.init_hidden({batch_size}) should return a tuple (h, c), got {type(hidden).__name__}")
        for name, t in zip("hc", hidden):
            assert_shape(t, shape, name=f"{name} of {label}.init_hidden({batch_size})", dims="num_layers, B, H")
            assert_equal(t, torch.zeros(shape), name=f"{name} of {label}.init_hidden({batch_size})")
    else:
        assert_true(isinstance(hidden, torch.Tensor), f"{label}.init_hidden({batch_size}) should return one tensor "
                    f"h for a GRU, got a {type(hidden).__name__}")
        assert_shape(hidden, shape, name=f"{label}.init_hidden({batch_size})", dims="num_layers, B, H")
        assert_equal(hidden, torch.zeros(shape), name=f"{label}.init_hidden({batch_size})")


def run():
    out = {"public": [_record(case) for case in CASES]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_record(case, batch_size=4) for case in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, case in zip(out["public"], CASES):
        _check_case(got, case)
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        _check_case(got, case, batch_size=4)
    ### END HIDDEN TESTS


grade("test_WordLM_structure", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_WordLM_forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# forward in eval mode against the test's own composition of your submodules, and the hidden state carried over.
import torch
from torch import nn

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

CASES = [("lstm", 20, 5, 4, 2, 2, 6), ("gru", 20, 5, 4, 2, 2, 6)]  # (rnn_type, V, E, H, num_layers, B, T)
### BEGIN HIDDEN TESTS
HIDDEN = [("lstm", 13, 3, 7, 1, 1, 4), ("gru", 11, 6, 5, 3, 3, 2), ("lstm", 9, 4, 4, 2, 2, 1)]
### END HIDDEN TESTS


def _inputs(case, seed):
    _, V, E, H, num_layers, B, T = case
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, V, (B, T), generator=g)
    h = 0.5 * torch.randn(num_layers, B, H, generator=g)
    c = 0.5 * torch.randn(num_layers, B, H, generator=g)
    return inputs, ((h, c) if case[0] == "lstm" else h)


def _record(case, seed):
    rnn_type, V, E, H, num_layers, B, T = case
    inputs, start = _inputs(case, seed)
    torch.manual_seed(seed)
    with quiet():
        model = WordLM(rnn_type, V, embedding_size=E, hidden_size=H, num_layers=num_layers, dropout=0.5).eval()
        whole = model(inputs)  # hidden=None: zeros
        first = model(inputs[:, : (T + 1) // 2])
        second = model(inputs[:, (T + 1) // 2:], first[1]) if T > 1 else None
        given = model(inputs, start)
    return {"state": dict(model.state_dict()), "whole": whole, "first": first, "second": second, "given": given}


def _composition(state, case, inputs, hidden):
    """The test's own embedding -> rnn -> decoder with your weights (eval mode: no dropout), in float64."""
    rnn_type, V, E, H, num_layers, B, T = case
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type](E, H, num_layers, batch_first=True).double().eval()
    missing = [k for k in ["embedding.weight", "decoder.weight", "decoder.bias"] + [f"rnn.{k}" for k in rnn.state_dict()]
               if k not in state]
    assert_true(not missing, f"WordLM{case[:5]} has no {missing} in its state_dict: keep the attribute names "
                "embedding, rnn and decoder")
    rnn.load_state_dict({k: state[f"rnn.{k}"].double() for k in rnn.state_dict()})
    embedded = state["embedding.weight"].double()[inputs]  # (B, T, E)
    if hidden is not None:
        hidden = tuple(h.double() for h in hidden) if rnn_type == "lstm" else hidden.double()
    with torch.no_grad():
        out, hidden = rnn(embedded, hidden)  # (B, T, H)
    return out @ state["decoder.weight"].double().T + state["decoder.bias"].double(), hidden


def _check_pair(got, expected, case, what):
    rnn_type, V, E, H, num_layers, B, T = case
    assert_true(isinstance(got, (tuple, list)) and len(got) == 2, f"WordLM.forward should return (logits, hidden), {what}")
    logits, hidden = got
    assert_shape(logits, (B, expected[0].shape[1], V), name=f"the logits {what}", dims="B, T, V")
    assert_close(logits, expected[0], atol=1e-5, rtol=1e-4, name=f"the logits {what}")
    if rnn_type == "lstm":
        assert_true(isinstance(hidden, (tuple, list)) and len(hidden) == 2, f"the hidden state {what} should be (h, c)")
        for name, got_h, want in zip("hc", hidden, expected[1]):
            assert_close(got_h, want, atol=1e-5, rtol=1e-4, name=f"{name} of the hidden state {what}")
    else:
        assert_close(hidden, expected[1], atol=1e-5, rtol=1e-4, name=f"the hidden state {what}")


def _check_case(out, case, seed):
    rnn_type, V, E, H, num_layers, B, T = case
    label = f"WordLM{case[:5]} in eval mode"
    inputs, start = _inputs(case, seed)
    state = out["state"]
    whole = _composition(state, case, inputs, None)
    _check_pair(out["whole"], whole, case, f"of {label} on inputs {tuple(inputs.shape)}, hidden=None")
    _check_pair(out["given"], _composition(state, case, inputs, start), case,
                f"of {label} on inputs {tuple(inputs.shape)}, starting from a given (random) hidden state")
    cut = (T + 1) // 2
    _check_pair(out["first"], _composition(state, case, inputs[:, :cut], None), case,
                f"of {label} on the first {cut} steps")
    if T > 1:  # the second part, started from the first part's final state, continues the whole sequence
        expected = (whole[0][:, cut:], whole[1])
        _check_pair(out["second"], expected, case, f"of {label} on the last {T - cut} steps, started from the hidden "
                    f"state the first {cut} steps returned (it should continue the whole sequence)")


def run():
    out = {"public": [_record(case, seed=k) for k, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_record(case, seed=10 + k) for k, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for k, case in enumerate(CASES):
        _check_case(out["public"][k], case, seed=k)
    ### BEGIN HIDDEN TESTS
    for k, case in enumerate(HIDDEN):
        _check_case(out["hidden"][k], case, seed=10 + k)
    ### END HIDDEN TESTS


grade("test_WordLM_forward", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_WordLM_dropout", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Dropout: active in train mode only, on the embeddings and on the last layer's outputs (self.dropout).
import torch
from torch import nn

from course_lib.grading.checks import assert_close, assert_true, grade, quiet

V, E, H, B, T = 17, 6, 5, 2, 7
### BEGIN HIDDEN TESTS
HIDDEN = [("gru", 1), ("lstm", 1), ("gru", 3)]  # (rnn_type, num_layers) with the test's fixed mask as self.dropout
### END HIDDEN TESTS


class FixedMask(nn.Module):
    """Stands in for your self.dropout: multiplies by a fixed 0 / 1.5 pattern (in any mode) and records
    the shape of what it was applied to."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x * _mask(x.shape).to(x.dtype)


def _mask(shape):
    n = 1
    for s in shape:
        n *= s
    return ((torch.arange(n) % 3 != 0).double() * 1.5).reshape(shape)


def _inputs():
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(5))


def _with_fixed_mask(rnn_type, num_layers):
    torch.manual_seed(1)
    with quiet():
        model = WordLM(rnn_type, V, embedding_size=E, hidden_size=H, num_layers=num_layers, dropout=0.5).eval()
        model.dropout = FixedMask()
        logits = model(_inputs())[0]
    return {"state": dict(model.state_dict()), "logits": logits, "shapes": model.dropout.shapes}


def _expected_with_mask(got, rnn_type, num_layers):
    """embedding -> mask -> rnn (eval: no dropout between layers) -> mask -> decoder, with your weights."""
    state = got["state"]
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type](E, H, num_layers, batch_first=True).double().eval()
    rnn.load_state_dict({k: state[f"rnn.{k}"].double() for k in rnn.state_dict()})
    embedded = state["embedding.weight"].double()[_inputs()]  # (B, T, E)
    with torch.no_grad():
        out = rnn(embedded * _mask(embedded.shape))[0]  # (B, T, H)
    return (out * _mask(out.shape)) @ state["decoder.weight"].double().T + state["decoder.bias"].double()


def _check_mask(got, rnn_type, num_layers):
    label = f'WordLM("{rnn_type}", num_layers={num_layers})'
    assert_true(got["shapes"] == [(B, T, E), (B, T, H)],
                f"{label}.forward should apply self.dropout twice, to the embeddings (B, T, E) = {(B, T, E)} and to the "
                f"outputs of the last recurrent layer (B, T, H) = {(B, T, H)}; it was applied to {got['shapes']}")
    assert_close(got["logits"], _expected_with_mask(got, rnn_type, num_layers), atol=1e-5, rtol=1e-4,
                 name=f"the logits of {label} with a fixed mask in place of self.dropout")


def run():
    torch.manual_seed(0)
    with quiet():
        model = WordLM("lstm", V, embedding_size=E, hidden_size=H, num_layers=2, dropout=0.5)
        model.train()
        train = [model(_inputs())[0] for _ in range(2)]
        model.eval()
        evaluation = [model(_inputs())[0] for _ in range(2)]
    out = {"train": train, "eval": evaluation, "mask": _with_fixed_mask("lstm", 2)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_with_fixed_mask(rnn_type, n) for rnn_type, n in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    a, b = (torch.as_tensor(t, dtype=torch.float64) for t in out["train"])
    assert_true(a.shape == b.shape and bool((a - b).abs().max() > 1e-3),
                "two forward passes in train mode with dropout=0.5 gave the same logits: is dropout applied in train mode?")
    assert_close(out["eval"][0], out["eval"][1], atol=1e-6,
                 name="the logits of two forward passes in eval mode (dropout must be off: the same logits)")
    _check_mask(out["mask"], "lstm", 2)
    ### BEGIN HIDDEN TESTS
    for got, (rnn_type, n) in zip(out["hidden"], HIDDEN):
        _check_mask(got, rnn_type, n)
    ### END HIDDEN TESTS


grade("test_WordLM_dropout", run, check, forbid=["course_solutions.layers"])

# %%
small_model = WordLM("lstm", len(vocab))
print(f"the small LSTM: {sum(p.numel() for p in small_model.parameters()):,} parameters "
      f"({sum(p.numel() for p in small_model.rnn.parameters()):,} in the recurrent layers; the rest in the "
      "embedding and the decoder)")
example_logits, example_hidden = small_model(first_inputs)  # the first batch of section 3: (20, 5)
print(f"logits {tuple(example_logits.shape)}; hidden state (h, c): {[tuple(h.shape) for h in example_hidden]}")
del small_model, example_logits, example_hidden

# %% [markdown]
# ### Truncated backpropagation through time [10 pts]
#
# An epoch reads the batches of `get_batch` in order, and each batch starts from the hidden state
# the previous batch ended with: the model sees the whole stream as one long text. But the
# gradient must not flow back through every earlier batch: the graph would grow with every batch
# (and with it memory and time), and backpropagating through thousands of steps is what makes
# gradients vanish or explode. So between batches the hidden state is **detached** from the
# graph: its *values* carry over, the *graph* that computed them does not. Each update then
# back-propagates through at most `bptt` steps (20 here): truncated backpropagation through time.
#
# Even over 20 steps, gradients of recurrent networks occasionally explode. Zaremba et al. clip
# them by their **global norm**: with $\|g\| = \sqrt{\sum_p \|g_p\|^2}$ over all the parameters
# $p$ (as if all gradients formed one long vector), when $\|g\| > $ `max_norm` (5 here), every
# gradient is multiplied by `max_norm / (||g|| + 1e-6)`. This keeps the direction of the update
# and caps its length. (Clipping each parameter's gradient separately would change the direction.)

# %% nbgrader={"grade": false, "grade_id": "detach_hidden", "locked": false, "schema_version": 3, "solution": true, "task": false}
def detach_hidden(hidden):
    """The hidden state with the same values, cut from the graph that computed it.

    Args:
        hidden: a tensor (a GRU's h, e.g. (2, B, H)), or a tuple or list of hidden states (an LSTM's
            (h, c)), possibly nested.
    Returns:
        the same structure (a tensor, or a tuple / list of the same length), every tensor detached.
    """
    ### BEGIN SOLUTION
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)(detach_hidden(h) for h in hidden)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_detach_hidden", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_true, grade, quiet


def _states(seed):
    """Two tensors (2, 3, 4) computed from a leaf that requires grad: they have a graph (grad_fn)."""
    leaf = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    return leaf * 2, leaf + 1


def _describe(value):
    """Plain data about a (possibly nested) result: its structure, values and whether it has a graph."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value, "requires_grad": value.requires_grad, "has_graph": value.grad_fn is not None}
    if isinstance(value, (tuple, list)):
        return {"type": type(value).__name__, "items": [_describe(v) for v in value]}
    return {"type": type(value).__name__}


def _check(got, expected, label):
    if isinstance(expected, torch.Tensor):
        assert_true("tensor" in got, f"detach_hidden({label}) should return a tensor, got a {got.get('type')}")
        assert_true(not got["requires_grad"] and not got["has_graph"],
                    f"detach_hidden({label}) returned a tensor that is still part of the graph (requires_grad="
                    f"{got['requires_grad']}, grad_fn {'set' if got['has_graph'] else 'None'})")
        assert_close(got["tensor"], expected.detach(), atol=0.0, rtol=0.0, name=f"the values of detach_hidden({label})")
        return
    kinds = ("tuple",) if isinstance(expected, tuple) else ("list", "tuple")
    assert_true(got.get("type") in kinds and len(got["items"]) == len(expected),
                f"detach_hidden({label}) should return a {type(expected).__name__} of {len(expected)} like its input, "
                f"got a {got.get('type')}")
    for k, (g, e) in enumerate(zip(got["items"], expected)):
        _check(g, e, f"{label}[{k}]")


def run():
    h, c = _states(0)
    with quiet():
        out = {"tensor": _describe(detach_hidden(h)), "pair": _describe(detach_hidden((h, c)))}
    ### BEGIN HIDDEN TESTS
    (h1, c1), (h2, c2) = _states(1), _states(2)
    with quiet():
        out["list"] = _describe(detach_hidden([h1, c1]))
        out["nested"] = _describe(detach_hidden(((h1, c1), (h2, c2))))
        out["plain"] = _describe(detach_hidden(torch.ones(2, 2)))
    ### END HIDDEN TESTS
    return out


def check(out):
    h, c = _states(0)
    _check(out["tensor"], h, "h")
    _check(out["pair"], (h, c), "(h, c)")
    ### BEGIN HIDDEN TESTS
    (h1, c1), (h2, c2) = _states(1), _states(2)
    _check(out["list"], [h1, c1], "[h, c]")
    _check(out["nested"], ((h1, c1), (h2, c2)), "((h1, c1), (h2, c2))")
    _check(out["plain"], torch.ones(2, 2), "a tensor without a graph")
    ### END HIDDEN TESTS


grade("test_detach_hidden", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": false, "grade_id": "clip_grad_global_norm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip_grad_global_norm(parameters, max_norm):
    """Clip the gradients of the parameters by their global norm, in place.

    Args:
        parameters: an iterable of parameters (e.g. model.parameters(), a generator: iterate over it
            only once). Each gradient p.grad has its parameter's shape, e.g. (V, E) for the
            embedding; parameters whose .grad is None are skipped.
        max_norm: the largest global norm allowed.
    Returns:
        total_norm: the global L2 norm of all the gradients together, before clipping (a float or
        a 0-dim tensor). When total_norm > max_norm, every gradient has been multiplied by
        max_norm / (total_norm + 1e-6).
    """
    ### BEGIN SOLUTION
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(scale.to(g.device))
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_clip_grad_global_norm", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

CASES = [(0, 1.0, 1.0), (1, 5.0, 0.01)]  # (seed, max_norm, loss scale): the first is clipped, the second is not
NO_CLIPPING = ["torch.nn.utils." + name for name in
               ("clip_grad_norm_", "clip_grad_norm", "get_total_norm", "clip_grads_with_norm_") if hasattr(torch.nn.utils, name)]
### BEGIN HIDDEN TESTS
HIDDEN = [(2, 0.3, 1.0), (3, 2.0, 0.5), (4, 1e-3, 1.0)]
### END HIDDEN TESTS


class Net(nn.Module):
    """A small network for the test: two layers, and a third (unused) whose parameters get no gradient."""

    def __init__(self, seed, dtype=torch.float32):
        super().__init__()
        self.first, self.second, self.unused = nn.Linear(3, 5), nn.Linear(5, 2), nn.Linear(2, 2)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.to(dtype)

    def backward_loss(self, scale):
        """Fill the .grad of first and second (not of unused) with the gradient of a loss."""
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(99)).to(self.first.weight.dtype)
        (scale * self.second(torch.tanh(self.first(x))).pow(2).sum()).backward()


def _yours(seed, max_norm, scale, dtype=torch.float32):
    net = Net(seed, dtype)
    net.backward_loss(scale)
    with quiet():
        total = clip_grad_global_norm(net.parameters(), max_norm)  # a generator, as model.parameters()
    return {"total": total, "grads": {name: p.grad for name, p in net.named_parameters()}}


def _check_case(got, seed, max_norm, scale, dtype=torch.float32):
    """Against torch.nn.utils.clip_grad_norm_ on the same network."""
    net = Net(seed, dtype)
    net.backward_loss(scale)
    total = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    label = f"clip_grad_global_norm(model.parameters(), max_norm={max_norm}) (global norm {float(total):.4g})"
    assert_true(got["total"] is not None, f"{label} should return the total norm, got None")
    assert_close(as_float(got["total"], name=label), float(total), atol=1e-5, rtol=1e-5,
                 name=f"the total norm {label} returned (before clipping)")
    for name, p in net.named_parameters():
        if p.grad is None:
            assert_true(got["grads"][name] is None or bool((torch.as_tensor(got["grads"][name]) == 0).all()),
                        f"{name} had no gradient: {label} should leave it without one")
        else:
            assert_close(got["grads"][name], p.grad, atol=1e-6, rtol=1e-5, name=f"{name}.grad after {label}")


def run():
    out = {"public": [_yours(*case) for case in CASES]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(*case) for case in HIDDEN]
    out["float64"] = _yours(5, 0.5, 1.0, torch.float64)
    net = Net(6)
    with quiet():
        out["no_grads"] = clip_grad_global_norm(net.parameters(), 1.0)
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, case in zip(out["public"], CASES):
        _check_case(got, *case)
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        _check_case(got, *case)
    _check_case(out["float64"], 5, 0.5, 1.0, torch.float64)
    assert_close(as_float(out["no_grads"], name="clip_grad_global_norm without gradients"), 0.0,
                 name="the total norm of parameters without gradients")
    ### END HIDDEN TESTS


grade("test_clip_grad_global_norm", run, check, forbid=NO_CLIPPING + ["course_solutions.layers"])

# %% [markdown]
# ### One training step [5 pts]
#
# `train_step` does one update of truncated backpropagation: it detaches the hidden state it
# receives (your `detach_hidden`), runs the model on the batch from that state, computes the mean
# cross-entropy over the `B * T` predicted words (`F.cross_entropy` wants the logits as
# `(B*T, V)` and the targets as `(B*T,)`), zeroes the old gradients, back-propagates, clips the
# gradients to the global norm `max_norm` (your `clip_grad_global_norm`) and takes an optimizer
# step. It returns the loss (detached: a number to log, not a graph to keep) and the new hidden
# state (detached), which the next call receives. Zaremba et al. use plain SGD (learning rate 1);
# `train_step` works with any optimizer.
#
# The tests of `train_step` swap in correct versions of `detach_hidden` and `clip_grad_global_norm`
# while they run, so they grade `train_step` alone; and they use a small model written for the
# test (an LSTM whose `forward(inputs, hidden)` returns `(logits, hidden)` like yours), not your
# `WordLM`.

# %% nbgrader={"grade": false, "grade_id": "train_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_step(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """One step of truncated backpropagation through time.

    Args:
        model: a language model, model(inputs, hidden) -> (logits (B, T, V), hidden).
        optimizer: a torch.optim optimizer over model.parameters().
        inputs, targets: (B, T) token ids (torch.long), from get_batch.
        hidden: the hidden state the previous batch ended with (a tensor or a tuple of tensors).
        max_norm: clip the gradients to this global norm.
    Returns:
        (loss, hidden): the mean cross-entropy over the B * T words (a 0-dim tensor, detached) and the
        hidden state after this batch (detached).
    """
    ### BEGIN SOLUTION
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), detach_hidden(hidden)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The loss, the parameter update and the new hidden state of one step, against the test's own step.
import copy

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

V, E, H, B, T = 11, 5, 4, 3, 6
CASES = [("lstm", "sgd", 0.5, 0)]  # (cell, optimizer, max_norm, seed); max_norm 0.5 clips these gradients
### BEGIN HIDDEN TESTS
HIDDEN = [("lstm", "sgd", 100.0, 1), ("gru", "sgd", 0.2, 2), ("gru", "adam", 1.0, 3), ("lstm", "momentum", 0.3, 4)]
### END HIDDEN TESTS


class TinyLM(nn.Module):
    """A small recurrent language model written for the test: forward(inputs (B, T), hidden) ->
    (logits (B, T, V), hidden), hidden (h, c) for "lstm", h for "gru"."""

    def __init__(self, cell, seed):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.cell = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](E, H, batch_first=True)
        self.proj = nn.Linear(H, V)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g))

    def forward(self, inputs, hidden=None):
        out, hidden = self.cell(self.embed(inputs), hidden)
        return self.proj(torch.tanh(out)), hidden


def _optimizer(kind, params):
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.05)
    return torch.optim.SGD(params, lr=1.0, momentum=0.9 if kind == "momentum" else 0.0)


def _case(cell, seed):
    """The model, a warm-up batch, the step's batch, and stale gradients left over from an earlier step."""
    model = TinyLM(cell, seed)
    g = torch.Generator().manual_seed(100 + seed)
    warm = torch.randint(0, V, (B, 4), generator=g)
    inputs, targets = torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)
    stale = {name: torch.randn(p.shape, generator=g) for name, p in model.named_parameters()}
    return model, warm, inputs, targets, stale


def _correct_detach(state):
    """A correct detach_hidden, for the duration of this test."""
    return state.detach() if isinstance(state, torch.Tensor) else tuple(_correct_detach(s) for s in state)


def _correct_clip(parameters, max_norm):
    """A correct clip_grad_global_norm (PyTorch's), for the duration of this test."""
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def _with_correct_helpers(step):
    """Run step() with your train_step calling correct detach_hidden and clip_grad_global_norm (restored after)."""
    names = ("detach_hidden", "clip_grad_global_norm")
    saved = {name: globals()[name] for name in names if name in globals()}
    globals().update(detach_hidden=_correct_detach, clip_grad_global_norm=_correct_clip)
    try:
        return step()
    finally:
        for name in names:
            globals().pop(name, None)
        globals().update(saved)


def _yours(cell, kind, max_norm, seed):
    model, warm, inputs, targets, stale = _case(cell, seed)
    _, hidden = model(warm)  # the previous batch's final state: still attached to that batch's graph
    for name, p in model.named_parameters():
        p.grad = stale[name].clone()
    optimizer = _optimizer(kind, model.parameters())

    def step():
        with quiet():
            return train_step(model, optimizer, inputs, targets, hidden, max_norm)

    result = _with_correct_helpers(step)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        return {"error": f"train_step should return (loss, hidden), got a {type(result).__name__}"}
    loss, new_hidden = result
    return {"loss": loss, "loss_dim": loss.dim() if isinstance(loss, torch.Tensor) else 0, "hidden": new_hidden,
            "params": {name: p for name, p in model.named_parameters()}}


def _expected(cell, kind, max_norm, seed):
    """The test's own step on a copy of the model: the gradient of the loss from the detached state,
    clipped, then one optimizer step."""
    model, warm, inputs, targets, _ = _case(cell, seed)
    with torch.no_grad():
        _, hidden = model(warm)
    reference = copy.deepcopy(model)
    logits, new_hidden = reference(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for p, grad in zip(reference.parameters(), grads):
        p.grad = grad
    torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm)
    _optimizer(kind, reference.parameters()).step()
    return float(loss), new_hidden, dict(reference.named_parameters())


def _check_case(got, cell, kind, max_norm, seed):
    label = f"train_step ({cell} test model, {kind}, max_norm={max_norm})"
    assert_true("error" not in got, f"{label}: {got.get('error')}")
    loss, hidden, params = _expected(cell, kind, max_norm, seed)
    assert_true(got["loss_dim"] == 0, f"{label} should return the loss as a 0-dim tensor (the mean over B * T words)")
    assert_close(as_float(got["loss"], name="the loss"), loss, atol=1e-5, rtol=1e-5,
                 name=f"the loss {label} returned (mean cross-entropy over the B * T words, from the detached state)")
    for name, p in params.items():
        assert_close(got["params"][name], p, atol=1e-5, rtol=1e-4,
                     name=f"{name} after {label} (zero the old gradients, back-propagate from the detached state, "
                          "clip, step)")
    expected_hidden = hidden if cell == "lstm" else (hidden,)
    got_hidden = got["hidden"] if cell == "lstm" else (got["hidden"],)
    assert_true(isinstance(got_hidden, (tuple, list)) and len(got_hidden) == len(expected_hidden),
                f"{label} should return the model's new hidden state")
    for g, e in zip(got_hidden, expected_hidden):
        assert_close(g, e, atol=1e-5, rtol=1e-4, name=f"the hidden state {label} returned")


def run():
    out = {"public": [_yours(*case) for case in CASES]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_yours(*case) for case in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, case in zip(out["public"], CASES):
        _check_case(got, *case)
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["hidden"], HIDDEN):
        _check_case(got, *case)
    ### END HIDDEN TESTS


grade("test_train_step", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_train_step_graph", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Five consecutive steps, each from the state the previous one returned: the graph does not grow.
import torch
from torch import nn

from course_lib.grading.checks import assert_true, grade, quiet

V, E, H, B, T, STEPS = 11, 5, 4, 3, 6, 5
### BEGIN HIDDEN TESTS
HIDDEN = [("gru", 8), ("lstm", 9)]  # (cell, seed)
### END HIDDEN TESTS


class TinyLM(nn.Module):
    """A small recurrent language model written for the test; it keeps its last logits, so that the test
    can count the nodes of the graph each step built."""

    def __init__(self, cell, seed):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.cell = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](E, H, batch_first=True)
        self.proj = nn.Linear(H, V)
        self.last_logits = None
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g))

    def forward(self, inputs, hidden=None):
        out, hidden = self.cell(self.embed(inputs), hidden)
        self.last_logits = self.proj(torch.tanh(out))
        return self.last_logits, hidden


def _graph_size(tensor):
    """The number of autograd nodes reachable from tensor.grad_fn."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def _correct_detach(state):
    """A correct detach_hidden, for the duration of this test."""
    return state.detach() if isinstance(state, torch.Tensor) else tuple(_correct_detach(s) for s in state)


def _correct_clip(parameters, max_norm):
    """A correct clip_grad_global_norm (PyTorch's), for the duration of this test."""
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def _with_correct_helpers(step):
    """Run step() with your train_step calling correct detach_hidden and clip_grad_global_norm (restored after)."""
    names = ("detach_hidden", "clip_grad_global_norm")
    saved = {name: globals()[name] for name in names if name in globals()}
    globals().update(detach_hidden=_correct_detach, clip_grad_global_norm=_correct_clip)
    try:
        return step()
    finally:
        for name in names:
            globals().pop(name, None)
        globals().update(saved)


def _yours(cell, seed):
    model = TinyLM(cell, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(200 + seed)
    zeros = torch.zeros(1, B, H)
    hidden = (zeros, zeros.clone()) if cell == "lstm" else zeros
    steps = []
    for _ in range(STEPS):
        inputs, targets = torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)
        with quiet():
            loss, hidden = train_step(model, optimizer, inputs, targets, hidden, 5.0)
        states = list(hidden) if isinstance(hidden, (tuple, list)) else [hidden]
        steps.append({"graph": _graph_size(model.last_logits), "loss_has_graph": bool(torch.as_tensor(loss).requires_grad),
                      "hidden_has_graph": [bool(s.requires_grad or s.grad_fn is not None) for s in states]})
    return steps


def _check_steps(steps, cell):
    label = f"train_step on the {cell} test model"
    assert_true(len(steps) == STEPS, f"{label}: fewer steps than expected")
    sizes = [s["graph"] for s in steps]
    assert_true(len(set(sizes)) == 1, f"{label}: the autograd graph of each step should have the same size when the "
                f"hidden state is detached between steps, but it grew: {sizes} nodes over {STEPS} steps")
    for k, s in enumerate(steps):
        assert_true(not any(s["hidden_has_graph"]), f"{label}: the hidden state returned by step {k + 1} is still "
                    "attached to the graph (detach it before returning it)")
        assert_true(not s["loss_has_graph"], f"{label}: the loss returned by step {k + 1} still requires grad "
                    "(return it detached)")


def run():
    out = {"public": _with_correct_helpers(lambda: _yours("lstm", 7))}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_with_correct_helpers(lambda cell=cell, seed=seed: _yours(cell, seed)) for cell, seed in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    _check_steps(out["public"], "lstm")
    ### BEGIN HIDDEN TESTS
    for steps, (cell, _) in zip(out["hidden"], HIDDEN):
        _check_steps(steps, cell)
    ### END HIDDEN TESTS


grade("test_train_step_graph", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# ---
# ## 5. Practical: experiments and evaluation [25 pts]
#
# The runner `course_lib.runners.word_lm_ptb` trains **your** `WordLM` with **your** `build_vocab`,
# `batchify`, `get_batch` and `train_step`, in Zaremba et al.'s "small" setup: 2 layers of 200
# units, embeddings of 200, batches of 20 streams, `bptt = 20`, every parameter initialised
# U(-0.1, 0.1), plain SGD with learning rate 1 and gradients clipped to global norm 5. An epoch
# reads the training stream once with the hidden state carried across batches (it starts from
# `init_hidden` at the beginning of each epoch); after it, the runner measures the validation
# perplexity, `exp` of the mean cross-entropy per word over the whole validation stream, read the
# same way in eval mode. It keeps the weights of the epoch with the best validation perplexity and
# reports their test perplexity.
#
# **The four models** (`wl.RUNS`): LSTM and GRU, each with and without dropout. At the full scale,
# the models without dropout follow the paper's small schedule (13 epochs; the learning rate is
# halved after each epoch from the 5th on), and those with dropout (0.25, the handout's value) the
# paper's longer schedule for regularised models (39 epochs; the learning rate is divided by 1.2
# after each epoch from the 7th on). The laptop scale trains on much less text, so it adapts the
# number of epochs, the learning rates, the schedule and the dropout probability to it. The first
# cell below shows the settings of each run at your scale (`wl.config_for(name)`).
#
# **Three scales, one code path.** The environment variable `COURSE_SCALE` picks one (set it before
# starting Jupyter); without it the default depends on your machine:
#
# | Scale | How to get it | What it runs | What it is for |
# |---|---|---|---|
# | `fast` | `COURSE_FAST=1` or `COURSE_SCALE=fast` | a few thousand words, a small model, 2 epochs: seconds | checking that your code trains end to end (the grader and the course's tests use it); its numbers mean nothing |
# | `laptop` | `COURSE_SCALE=laptop`; the default without a GPU | the same architecture, batches, initialisation and clipping on a slice of the training text (the whole validation and test splits), with epochs, learning rates and dropout adapted to it (see the settings below) | the four models in about 45 minutes to an hour on a 2-core CPU; on so little text the models without dropout overfit within a few epochs, which is what the questions are about |
# | `full` | `COURSE_SCALE=full`; the default with a GPU | the paper's settings on the whole training split: 13 epochs without dropout, 39 with | the handout's numbers (validation perplexity near 120 without dropout and near 100 with it, for the LSTM) |
#
# Perplexities of different scales are not comparable (different amounts of training text and
# numbers of epochs). Answer the questions with the largest scale you could run, and say which one.
#
# **Logs.** Every run logs each epoch (in `runs/word_lm_ptb/<scale>/`, or in
# `$COURSE_RUNS_DIR/word_lm_ptb/<scale>/`; on Colab, point `COURSE_RUNS_DIR` at your Google Drive),
# so running the cell again resumes an interrupted run and reads finished ones back instead of
# training them again, unless you changed your code. In fast mode the runs go to a temporary
# folder and always start afresh.

# %% tags=["experiment"]
import tempfile
from pathlib import Path

from course_lib.runners import word_lm_ptb as wl

FAST_LOG_DIR = Path(tempfile.mkdtemp(prefix="word_lm_ptb-fast-")) if fast_mode() else None


def train(name):
    """Train (or resume, or read back) one of the four runs with your code; returns a RunResult."""
    log_dir = FAST_LOG_DIR / name.replace(" ", "_") if FAST_LOG_DIR else None
    return wl.run(name, model_class=WordLM, build_vocab=build_vocab, batchify=batchify, get_batch=get_batch,
                  train_step=train_step, progress=True, log_dir=log_dir)


pd.DataFrame([{"run": name, **{k: getattr(c, k) for k in ("rnn_type", "dropout", "epochs", "lr", "lr_decay",
                                                           "decay_from", "train_words", "scale")}}
              for name, c in ((name, wl.config_for(name)) for name in wl.RUNS)]).set_index("run")

# %% [markdown]
# The next cell trains the four models one after the other (a progress bar shows the batches of
# the current epoch, and each finished epoch prints a line), then plots the training and
# validation perplexity of every epoch, one panel per model (log scale; the dotted line marks the
# best validation epoch). The training perplexity is averaged during the epoch, with dropout on
# and the weights still changing; the validation perplexity is measured after it, in eval mode.

# %% tags=["experiment"]
results = {}
for name in wl.RUNS:  # or a subset, e.g. ["LSTM", "LSTM + dropout"]
    results[name] = train(name)
wl.plot_curves(results);

# %% [markdown]
# The handout's table: the training, validation and test perplexity of each model at its best
# validation epoch (the best of each column in bold), with the gap between validation and training
# perplexity, the best epoch and the training time.

# %% tags=["experiment"]
wl.results_table(results)

# %% [markdown]
# Per-epoch numbers of every run (learning rate, training and validation perplexity, seconds and
# words per second), side by side:

# %% tags=["experiment"]
pd.concat({name: r.history.set_index("epoch")[["lr", "train_ppl", "dev_ppl", "seconds", "tokens_per_s"]]
           for name, r in results.items()}, axis=1).round(2)

# %% [markdown]
# ### Reading the curves: overfitting and what dropout does to it
#
# A model **overfits** when it keeps getting better on the text it is trained on but worse on new
# text: the training perplexity keeps falling while the validation perplexity reaches a minimum
# and turns back up. The **gap** between the two (validation minus training perplexity) measures
# how much of what the model learned is specific to the training text. Without regularisation, a
# 2-layer model with 10,000-word embeddings and decoder (about 4.6 million parameters in the
# small setup) can memorise a great deal of a corpus of under a million words, so its gap grows
# quickly once the learning rate has done its job; that is why the best validation epoch, not the
# last, is the one to report (early stopping).
#
# **Dropout** sets each unit it is applied to to zero with probability $p$ during training, and
# scales the others by $1/(1-p)$ so that the expected value is unchanged; in eval mode it does
# nothing. Every batch is therefore computed by a different random "thinned" network, and no unit
# can rely on particular other units being there: co-adapted features that only fit the training
# text are discouraged, and the trained model behaves like an average of many thinned models.
# Zaremba et al.'s observation is that for recurrent networks dropout must go on the
# **non-recurrent** connections only (the input of each layer and the output of the last): dropping
# parts of the hidden state at every time step would erase the memory the network carries across
# time. What to expect in the curves:
#
# - with dropout, the **training** perplexity is higher (the training measurement is made with
#   dropout on, and the noise makes the training text harder to fit), while the **validation**
#   perplexity ends lower: the gap shrinks, and early on the validation curve can even lie below
#   the training curve;
# - a regularised model learns more slowly and keeps improving for longer, so it needs more
#   epochs and a gentler learning-rate decay (at the full scale, the 39-epoch schedule), and its best
#   validation epoch
#   comes later;
# - when the learning rate is decayed, both curves drop sharply (smaller steps settle into a
#   minimum); decaying too early stops the learning, too late leaves the model oscillating.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5a** [5 pts] Results. Show the training and validation perplexity curves of your four models
# (the plot above) and the table of their training, validation and test perplexities. Say which
# scale and device you used, and how long the runs took. (The plots and the table above come from
# your runs; describe them here in two or three sentences, with the numbers of the table.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5a", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the runs).* 2 pts: the curves of all four models (training and
# validation perplexity per epoch) and the table of training, validation and test perplexity per
# model, from the student's own runs at the laptop or full scale (not fast mode: its numbers mean
# nothing). 2 pts: the numbers quoted in the answer match the table (best validation epoch, its
# training, validation and test perplexity). 1 pt: the scale, the device and the training time are
# stated. At the full scale the handout's numbers are the benchmark (LSTM without dropout about 124
# validation, with dropout about 103; the GRUs within a few points); at the laptop scale all
# perplexities are much higher (about a ninth of the training text), so compare the trends, not the
# values.
#
# *Reference, laptop scale* (`course_solutions/recorded/word_lm_ptb-laptop.json`, reference code):
# best validation (training, test) perplexity LSTM 312.3 (140.6, 299.1) at epoch 18 of 18, GRU 295.8
# (111.9, 286.2) at 18, LSTM + dropout 269.5 (130.9, 262.0) at 24 of 24, GRU + dropout 277.7 (163.4,
# 269.5) at 24. The four runs are 84 epochs of about 31-33 s on one free CPU thread (about 45 minutes;
# the recording itself took longer on a CPU shared with other work).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5b** [8 pts] Overfitting across models. Which of your models overfit, and from which epoch
# on? Compare the gap between training and validation perplexity with and without dropout, for
# the LSTM and for the GRU, with your numbers. What does dropout change, and why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5b", "locked": false, "points": 8, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* Both models **without dropout** overfit: after a
# few epochs their validation perplexity reaches its minimum and rises again (or stalls) while their
# training perplexity keeps falling, so the gap between them widens epoch after epoch; the epoch of
# the minimum is where they start to overfit. With **dropout** the training perplexity is higher
# and falls more slowly, but the validation perplexity keeps improving for longer and ends lower:
# the gap at the best epoch is much smaller (for both cells), and the validation curve stays close
# to, or even below, the training curve. Dropout regularises: each batch trains a randomly thinned
# network, so the model cannot memorise the training text through co-adapted units and has to
# learn features that hold up on new text (and it is applied to the non-recurrent connections only,
# so the memory carried through time is not disrupted). The models with dropout may still overfit
# slightly near the end, much less than without it.
#
# *Rubric:* 2 pts which models overfit and when (epoch of the validation minimum, validation
# rising while training falls), from the student's curves; 3 pts the gap with and without dropout
# compared with numbers for both cells (e.g. gap at the best epoch from the table); 2 pts the
# mechanism of dropout (random thinning, no co-adaptation, an ensemble effect; training
# perplexity measured with dropout on); 1 pt consequences (later best epoch, more epochs needed, a
# lower validation perplexity).
#
# *Reference, laptop scale:* without dropout the validation / training ratio grows from 1.11 (LSTM,
# epoch 6) and 1.24 (GRU) to 2.22 and 2.64 at epoch 18: training perplexity falls to 141 and 112 while
# validation only creeps down to 312 and 296 (the decay from epoch 13 stops the learning before the
# validation curve turns up, so the overfitting shows as the widening gap). With dropout the ratio at
# the best epoch is 2.06 (LSTM) and 1.70 (GRU), and the validation perplexity is lower: 269.5 and 277.7.
# Credit "the validation curve flattens while training keeps falling" as overfitting.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5c** [4 pts] Learning rate and schedule. Each run keeps its initial learning rate for some
# epochs, then decays it after every epoch (the settings table above shows the rates, the decay
# factor and the first decayed epoch at your scale; at the full scale: 1, halved from the 5th epoch
# without dropout, divided by 1.2 from the 7th with dropout). What do the curves show at the epochs
# where the decay starts? Why does a model with dropout need a longer schedule? What would you
# expect with a larger initial learning rate, or a decay that starts later (the handout's report
# found that the paper's schedule gave it about 135 to 140 without dropout, and needed a learning
# rate of 2 decayed later to reach 124; it also needed higher rates for its LSTMs than for its
# GRUs)? If your scale gives the LSTMs and the GRUs different learning rates, say what could make
# that necessary.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5c", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* With a constant learning rate of 1, SGD makes fast
# progress but bounces around a minimum; once the decay starts, both perplexities drop noticeably
# for an epoch or two (smaller steps settle into the basin) and then flatten: with the rate halved
# every epoch, it is soon too small to change anything, so the last epochs of the small schedule
# barely move the curves, and the schedule acts as an early stop. Without dropout that is what
# one wants (longer training only overfits more); with dropout the model improves more slowly and
# keeps generalising better as it trains, so it needs more epochs at a high rate and a gentler
# decay (/1.2) to use them. A larger initial rate or a later decay gives faster early progress and
# more time before the steps shrink (the handout's report reached 124 without dropout that way),
# but too large a rate makes training unstable (clipping limits the damage) and a later decay of a
# model without dropout can also mean more overfitting before the best epoch.
#
# Different rates for the two cells: the best (largest stable) learning rate depends on the
# architecture; the GRU's update mixes the old state and the candidate directly and can diverge at
# rates an LSTM tolerates, while an LSTM at a small rate can sit for a long time on the plateau of
# the unigram distribution before it starts to use the context.
#
# *Rubric:* 1 pt what happens at the decay (sharp improvement, then flattening), from the
# student's curves; 1 pt why the fast decay acts like early stopping / limits overfitting for the
# unregularised models; 1 pt why dropout needs more epochs and a slower decay; 1 pt a reasoned
# expectation for a larger rate or a later decay (faster progress vs instability / overfitting),
# including, where the scale uses them, why the cells get different rates (divergence vs a slow
# start).
#
# *Reference, laptop scale:* at the first decayed epochs both curves drop: GRU without dropout 320 ->
# 318 -> 306 -> 301 (epochs 12-15), LSTM + dropout 284 -> 278 -> 276 (epochs 18-20), then flatten as the
# halved rate soon becomes too small to matter. The laptop scale trains the LSTMs at 4 (at 1 an LSTM
# stays near the unigram plateau, validation about 700, for its first 1,000 steps) and the GRUs at 1
# (they diverged at 2 and at 4); the dropout runs get 24 epochs instead of 18 (at 18 the GRU with
# dropout had not yet caught up with the GRU without it).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5d", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5d** [4 pts] Which of your four models is best, and why? Judge by the validation
# perplexity, then report its test perplexity.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5d", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* The best model is the one with the lowest
# **validation** perplexity at its best epoch, usually the **LSTM with dropout** (at the full
# scale, about 100 against about 120 without dropout; the GRU with dropout is close behind). It is
# chosen on the validation set, and only then is its test perplexity reported (choosing by test
# perplexity would make the test set part of model selection, and the reported number
# optimistic). It wins because dropout lets it fit the training text without memorising it (the
# smallest gap), and the LSTM's separate cell state and output gate give it slightly more capacity
# than the GRU at the same size. The test perplexity is close to (on PTB slightly below) the
# validation perplexity.
#
# *Rubric:* 1 pt the best model named from the student's table by validation perplexity (not
# training or test); 1 pt its test perplexity reported, with the reason the choice is made on the
# validation set; 2 pts a reason why it wins, consistent with the curves (regularisation, gap,
# capacity of the cell).
#
# *Reference, laptop scale:* the LSTM with dropout, 269.5 validation at epoch 24, test 262.0 (the GRU
# with dropout 277.7 / 269.5 next; both models without dropout are worse, 295.8 and 312.3).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5e", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5e** [4 pts] GRU against LSTM. Compare the two cells in your runs: perplexities, overfitting,
# number of parameters and speed (the table's time and the words per second of the histories).
# Are the differences what Q2 led you to expect?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5e", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* With the same sizes, the GRU's recurrent layers have
# 3/4 of the LSTM's parameters (3 weight blocks instead of 4: 241,200 against 321,600 per layer in
# PyTorch for 200 x 200; the embedding and decoder, 4 million parameters, are shared), so an epoch
# is somewhat faster (more words per second), though less than 25 % faster in total because the
# decoder over 10,000 words costs the same. The perplexities are close: the LSTM is usually a few
# points better (with and without dropout), and the GRU without dropout overfits about as much
# (or slightly earlier) as the LSTM. This matches Q2 only in part: the GRU is cheaper, but with
# this much data its smaller number of parameters does not protect it from overfitting, and
# dropout, not the choice of cell, is what closes the gap.
#
# *Rubric:* 1 pt perplexities compared with numbers (both with and without dropout); 1 pt
# overfitting compared; 1 pt parameters and speed compared (from the runs or computed); 1 pt a
# reasoned comparison with the expectation of Q2.
#
# *Reference, laptop scale:* without dropout the GRU is ahead (295.8 against 312.3, training perplexity
# 112 against 141: it also fits the training text harder), with dropout the LSTM (269.5 against 277.7):
# within 3 to 5 % of each other, as the handout found. Parameters: 4,492,400 against 4,653,200 (a GRU
# layer has 3 gate blocks where an LSTM layer has 4; the 10,000-word embedding and decoder, 4.01M, are
# the same). Speed on a free CPU thread: about 4,000 words/s for both (the 10,000-way decoder dominates).
