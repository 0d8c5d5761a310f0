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
# # Homework 3: Recurrent neural language models
#
# In this assignment you work with recurrent neural networks (RNNs) for language modelling. You
# will answer questions about RNN and LSTM internals, padding and masking for variable-length
# sequences, and perplexity; implement the pieces of a character-level language model in PyTorch;
# and train models with different hyperparameters to see their effect on the text they generate.
#
# **Learning goals.** After this assignment you can
#
# 1. explain what recurrence adds to a fixed-window (feed-forward) language model, what the LSTM's
#    cell state and gates add to a vanilla RNN, and count the parameters of both cells;
# 2. turn sentences into a padded language-model batch (inputs, targets, mask) and mask the loss;
# 3. compute perplexity and relate it to the cross-entropy loss used in training;
# 4. implement the forward pass of a feed-forward and of a recurrent language model, the masked
#    loss, and temperature sampling, with the tensor shapes in mind;
# 5. train character-level language models, change hyperparameters with a hypothesis in mind,
#    and read training curves and generated text.
#
# **How this notebook is graded** (124 points in all: the handout's 100, plus 24 for the code
# this notebook adds).
#
# | Section | Handout points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. RNN language models | 31 | 13 | 20 |
# | 2. Language model evaluation | 16 | 4 | 16 |
# | 3. Understanding the implementation | 26 | 18 | 26 |
# | 4. Running the language model | 27 | 0 | 27 |
# | **Total** | **100** | **35** | **89** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names and signatures: the tests call them. Each function
#   is followed by a test cell. The checks you see there are *public checks*: they run small
#   examples whose answers are known and catch many mistakes, but passing them is not the grade.
#   When the notebook is graded, hidden tests with other inputs and edge cases are added to the same
#   cells. Each test cell checks only its own function, so a mistake in one function costs only
#   that function's points.
# - **Written answers** go in the markdown cells that say `YOUR ANSWER HERE`, right below each
#   question. Be concise: a few sentences each, unless the question asks for more.
# - **How the grader runs your notebook.** It re-runs every cell from top to bottom in *fast mode*
#   (`COURSE_FAST=1`), **except the training cells of Section 4** (the cells tagged `experiment`):
#   those are not re-run, and the grader sees the outputs they had when you saved the notebook.
#   So run them yourself before you submit, and also copy the numbers and generated text that a
#   question asks for into your written answers.
#
# **Shapes.** Comments and docstrings name tensor dimensions with letters: `B` batch,
# `T` time (sequence length), `W` window, `E` embedding size, `H` hidden size, `V` vocabulary size.

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

device = setup_notebook("rnn_lm", seed=282)

# %%
import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib.device import fast_mode

# %% [markdown]
# ---
# ## 1. RNN language models [31 pts]
#
# ### Q1: Understanding RNNs [4 pts]

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q1a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1a** [2 pts] What is the main limitation of feed-forward neural networks that is overcome by
# recurrent networks, and how do recurrent networks achieve this?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q1a", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* A feed-forward language model conditions on a **fixed-size window** of the
# previous n−1 tokens (a Markov assumption): anything earlier is invisible, and each window
# position has its own weights, so the context length is fixed at design time. A recurrent network
# keeps a **hidden state** $h_t$ that it updates at every step from $h_{t-1}$ and the current
# input, **with the same weights at every step**. $h_t$ summarises the whole prefix
# $w_1 \dots w_t$, so the prediction can (in principle) depend on unboundedly long context, and
# the network handles sequences of any length.
#
# *Rubric:* 1 pt fixed window / limited context; 1 pt hidden state carried across time steps with
# shared weights.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q1b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1b** [2 pts] The vanilla RNN equation has the form $h_t = f(h_{t-1}, x_t)$. What extra
# "ingredient" does the LSTM add to this general form? What problem is the LSTM designed to solve?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q1b", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The LSTM adds a **memory cell** (cell state) $c_t$, read and written through
# **gates** (forget, input, output): $(h_t, c_t) = f(h_{t-1}, c_{t-1}, x_t)$. It is designed to
# solve the **vanishing (and exploding) gradient problem** of vanilla RNNs, which makes
# long-distance dependencies hard to learn: the cell state is updated additively, so information
# and gradients can flow across many time steps.
#
# *Rubric:* 1 pt cell state (with gates); 1 pt vanishing gradients / long-range dependencies.

# %% [markdown]
# ### Q2: LSTM update [11 pts]
#
# One of the "central" equations in the LSTM computation is
#
# $$c_t = f_t \odot c_{t-1} + i_t \odot \hat{c}_t$$
#
# This equation performs an essential update of one part of the LSTM.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2a** [1 pt] What is $c_t$?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2a", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The **cell state** (memory cell) at time $t$: a vector of size $d_h$ that carries
# long-term information along the sequence, separate from the hidden state
# ($h_t = o_t \odot \tanh(c_t)$ is read out of it).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2b** [2 pts] What is the range of $f_t$ and what is its purpose?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2b", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* $f_t = \sigma(W_f x_t + U_f h_{t-1} + b_f)$, so each component is in
# $(0, 1)$. It is the **forget gate**: element-wise, it decides how much of each component of the
# old cell state $c_{t-1}$ to keep (near 1) or erase (near 0).
#
# *Rubric:* 1 pt range (0, 1) (sigmoid, element-wise); 1 pt controls how much old memory is kept.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2c** [2 pts] What is the range of $i_t$ and what is its purpose?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2c", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* Also a sigmoid, so each component is in $(0, 1)$. It is the **input gate**: it
# decides, element-wise, how much of the new candidate content $\hat{c}_t$ is written into the
# cell.
#
# *Rubric:* 1 pt range (0, 1); 1 pt controls how much new information is written.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2d", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2d** [1 pt] What is $\hat{c}_t$?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2d", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The **candidate** cell content,
# $\hat{c}_t = \tanh(W_c x_t + U_c h_{t-1} + b_c) \in (-1, 1)^{d_h}$: the new information
# computed from the current input and the previous hidden state, which may be added to the memory.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q2e", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2e** [5 pts] In your own words, describe how this equation implements the central "update"
# inside of an LSTM (2-3 sentences).

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q2e", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The new memory is a gated, element-wise mix of the old memory and the new
# candidate: the forget gate scales down what should be forgotten from $c_{t-1}$, and the input
# gate selects how much of the candidate $\hat{c}_t$ to add. Because the update is **additive**
# (no squashing non-linearity or repeated matrix multiplication on the path from $c_{t-1}$ to
# $c_t$), information can be kept unchanged over many steps when $f_t \approx 1$ and
# $i_t \approx 0$, and the gradient $\partial c_t / \partial c_{t-1} = \mathrm{diag}(f_t)$ does not
# vanish, which is what lets LSTMs learn long-range dependencies.
#
# *Rubric:* 2 pts keep/forget old memory via $f_t$; 2 pts add new content via $i_t$ and
# $\hat{c}_t$; 1 pt why it matters (additive path, long-term memory / gradient flow).

# %% [markdown]
# ### Q3: Counting parameters [6 pts]
#
# Let $d_e$ be the dimension of token embeddings and $d_h$ the hidden state size. Focusing on just
# the recurrent cell (ignoring the embedding and output layers), write the number of parameters as
# a function of $d_e$ and $d_h$. Assume the cell is at the bottom of a possibly-deep RNN, so its
# inputs are token embeddings, not an earlier layer's hidden states. Count **one bias vector** for
# each affine transformation, as in the textbook equations
# ($h_t = \tanh(W x_t + U h_{t-1} + b)$ for the vanilla RNN; one $W$, $U$, $b$ per gate for the
# LSTM).

# %% nbgrader={"grade": false, "grade_id": "rnn_cell_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rnn_cell_params(d_e, d_h):
    """Q3a [2 pts]: number of parameters of a vanilla (Elman) RNN cell.

    Args:
        d_e: embedding size (the cell's input size).
        d_h: hidden state size.
    Returns:
        int: the number of parameters (weights and biases) of the cell.
    """
    ### BEGIN SOLUTION
    return d_h * d_e + d_h * d_h + d_h
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rnn_cell_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import hashlib

from torch import nn

from course_lib.grading.checks import as_int, assert_equal, assert_true, grade, quiet

PUBLIC_SIZES = [(3, 2), (5, 7), (1, 4)]  # (d_e, d_h)
EXPECTED_FINGERPRINT = "fa12613d3d5d45c7"
### BEGIN HIDDEN TESTS

SIZES = [(3, 2), (2, 3), (200, 200), (50, 128), (1, 1)]  # (d_e, d_h)
### END HIDDEN TESTS


def fingerprint(values):
    """A short digest of a list of whole numbers. The public check compares it with the digest of
    the expected answer, so that the check can tell you whether you are right without printing the
    answer here."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]


def run():
    out = {}
    with quiet():
        out["n"] = rnn_cell_params(3, 2)
        out["public"] = [rnn_cell_params(d_e, d_h) for d_e, d_h in PUBLIC_SIZES]
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [rnn_cell_params(d_e, d_h) for d_e, d_h in SIZES]
    ### END HIDDEN TESTS
    return out


def check(out):
    as_int(out["n"], name="rnn_cell_params(3, 2)")  # a whole number
    counts = [as_int(n, name=f"rnn_cell_params{size}") for n, size in zip(out["public"], PUBLIC_SIZES)]
    assert_true(fingerprint(counts) == EXPECTED_FINGERPRINT,
                f"rnn_cell_params for (d_e, d_h) in {PUBLIC_SIZES} gave {counts}: at least one is not the number "
                "of parameters of the vanilla RNN equation (count every entry of every matrix and bias vector)")
    ### BEGIN HIDDEN TESTS
    for i, (d_e, d_h) in enumerate(SIZES):
        # nn.RNNCell has two bias vectors (b_ih and b_hh); the handout counts one.
        expected = sum(p.numel() for p in nn.RNNCell(d_e, d_h).parameters()) - d_h
        got = as_int(out["sizes"][i], name=f"rnn_cell_params({d_e}, {d_h})")
        assert_equal(got, expected, name=f"rnn_cell_params({d_e}, {d_h})")
    ### END HIDDEN TESTS


grade("test_rnn_cell_params", run, check)

# %% nbgrader={"grade": false, "grade_id": "lstm_cell_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lstm_cell_params(d_e, d_h):
    """Q3b [4 pts]: number of parameters of an LSTM cell (one bias vector per gate).

    Args:
        d_e: embedding size (the cell's input size).
        d_h: hidden state size (also the cell state size).
    Returns:
        int: the number of parameters (weights and biases) of the cell.
    """
    ### BEGIN SOLUTION
    return 4 * (d_h * d_e + d_h * d_h + d_h)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lstm_cell_params", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import hashlib

from torch import nn

from course_lib.grading.checks import as_int, assert_equal, assert_true, grade, quiet

PUBLIC_SIZES = [(3, 2), (5, 7), (1, 4)]  # (d_e, d_h)
EXPECTED_FINGERPRINT = "4a21e00107c32179"
### BEGIN HIDDEN TESTS

SIZES = [(3, 2), (2, 3), (200, 200), (50, 128), (1, 1)]  # (d_e, d_h)
### END HIDDEN TESTS


def fingerprint(values):
    """A short digest of a list of whole numbers. The public check compares it with the digest of
    the expected answer, so that the check can tell you whether you are right without printing the
    answer here."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]


def run():
    out = {}
    with quiet():
        out["n"] = lstm_cell_params(3, 2)
        out["public"] = [lstm_cell_params(d_e, d_h) for d_e, d_h in PUBLIC_SIZES]
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [lstm_cell_params(d_e, d_h) for d_e, d_h in SIZES]
        out["n_200"] = lstm_cell_params(200, 200)
    ### END HIDDEN TESTS
    return out


def check(out):
    as_int(out["n"], name="lstm_cell_params(3, 2)")  # a whole number
    counts = [as_int(n, name=f"lstm_cell_params{size}") for n, size in zip(out["public"], PUBLIC_SIZES)]
    assert_true(fingerprint(counts) == EXPECTED_FINGERPRINT,
                f"lstm_cell_params for (d_e, d_h) in {PUBLIC_SIZES} gave {counts}: at least one is not the number "
                "of parameters of the LSTM equations with one bias vector per affine transformation")
    ### BEGIN HIDDEN TESTS
    for i, (d_e, d_h) in enumerate(SIZES):
        # nn.LSTMCell has two bias vectors per gate (b_ih and b_hh); the handout counts one.
        expected = sum(p.numel() for p in nn.LSTMCell(d_e, d_h).parameters()) - 4 * d_h
        got = as_int(out["sizes"][i], name=f"lstm_cell_params({d_e}, {d_h})")
        assert_equal(got, expected, name=f"lstm_cell_params({d_e}, {d_h})")
    assert_equal(as_int(out["n_200"], name="lstm_cell_params(200, 200)"), 320_800, name="lstm_cell_params(200, 200)")
    ### END HIDDEN TESTS


grade("test_lstm_cell_params", run, check)

# %% [markdown]
# **Q3c** (not in the handout) [2 pts: 1 for the number, 1 for the explanation] PyTorch has an
# LSTM cell too. Count the parameters of `nn.LSTMCell(200, 200)` with PyTorch (one line: sum
# `p.numel()` over its parameters), store the number in `TORCH_LSTMCELL_PARAMS`, and compare it
# with your `lstm_cell_params(200, 200)`.

# %% nbgrader={"grade": false, "grade_id": "TORCH_LSTMCELL_PARAMS", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
TORCH_LSTMCELL_PARAMS = sum(p.numel() for p in nn.LSTMCell(200, 200).parameters())
### END SOLUTION

# %%
print(f"nn.LSTMCell(200, 200): {TORCH_LSTMCELL_PARAMS:,} parameters")
print(f"lstm_cell_params(200, 200): {lstm_cell_params(200, 200):,} parameters")

# %% nbgrader={"grade": true, "grade_id": "test_TORCH_LSTMCELL_PARAMS", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from torch import nn

from course_lib.grading.checks import as_int, assert_equal, grade


def run():
    return {"n": TORCH_LSTMCELL_PARAMS}


def check(out):
    n = as_int(out["n"], name="TORCH_LSTMCELL_PARAMS")  # a whole number
    # What PyTorch itself reports for nn.LSTMCell(200, 200).
    assert_equal(n, sum(p.numel() for p in nn.LSTMCell(200, 200).parameters()), name="TORCH_LSTMCELL_PARAMS")


grade("test_TORCH_LSTMCELL_PARAMS", run, check)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q3c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3c, continued** [1 pt] Why does `nn.LSTMCell(200, 200)` report more parameters than your
# count? Where does the difference come from? (Hint: `list(nn.LSTMCell(200, 200).named_parameters())`.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q3c", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* PyTorch keeps **two bias vectors per gate**: `bias_ih` (added to $W x_t$) and
# `bias_hh` (added to $U h_{t-1}$), each of size $4 d_h$ for the four gates. That is
# $4 d_h = 800$ extra parameters: $320{,}800 + 800 = 321{,}600$. The two biases are redundant
# (only their sum matters); PyTorch keeps both for compatibility with cuDNN.

# %% [markdown]
# ### Q4: Understanding masking [10 pts]
#
# Suppose that we want to train a (word-level) language model on these two sentences:
#
# 1. *the dog chased the cat*
# 2. *birds can fly*
#
# Each sentence is wrapped in a start token `<s>` and an end token `</s>`. The sentences have
# different lengths, so to batch them together the shorter one is **padded** with `<pad>` tokens,
# as the next cell shows.

# %%
EXAMPLE_SENTENCES = [["the", "dog", "chased", "the", "cat"], ["birds", "can", "fly"]]
EXAMPLE_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "the": 3, "dog": 4, "chased": 5, "cat": 6,
                 "birds": 7, "can": 8, "fly": 9}

longest = max(len(s) for s in EXAMPLE_SENTENCES) + 2
padded_table = pd.DataFrame(
    [["<s>", *s, "</s>"] + ["<pad>"] * (longest - len(s) - 2) for s in EXAMPLE_SENTENCES],
    index=["sentence 1", "sentence 2"],
).rename_axis(columns="position")
padded_table


# %% [markdown]
# **Q4a** [2 pts] and **Q4b** [2 pts]. In a recurrent language model, what would the input batch
# be? What would the target labels be? (Hint: think about what the *input* and *output* tokens are
# at each time step.) Recurrent language models use a *mask* of ones and zeros to "eliminate" the
# loss for `<pad>` tokens: what would the mask be for this batch?
#
# Answer by implementing `make_lm_batch`, which builds all three for any list of sentences. For the
# two sentences above, the batch has `B = 2` rows and `T = 6` time steps.

# %% nbgrader={"grade": false, "grade_id": "make_lm_batch", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_lm_batch(sentences, vocab):
    """Build a padded language-model batch from tokenized sentences (Q4a, Q4b).

    Args:
        sentences: a list of B sentences, each a list of word strings (without <s> and </s>).
        vocab: a dict word -> id that contains "<pad>", "<s>" and "</s>" (their ids may be anything).
    Returns:
        (inputs, targets, mask), three (B, T) tensors with T = (longest sentence length) + 1, row b
        for sentence b, padded with <pad> where the sentence is shorter:
        - inputs: the token id the model reads at each time step (torch.long);
        - targets: the token id it must predict at that time step (torch.long);
        - mask: 1 where the loss of that time step counts, 0 where it does not (bool, int or float).
    """
    pad, bos, eos = vocab["<pad>"], vocab["<s>"], vocab["</s>"]
    B = len(sentences)
    T = max(len(words) for words in sentences) + 1
    inputs = torch.full((B, T), pad, dtype=torch.long)  # (B, T)
    targets = torch.full((B, T), pad, dtype=torch.long)  # (B, T)
    ### BEGIN SOLUTION
    for b, words in enumerate(sentences):
        ids = [vocab[w] for w in words]
        inp = [bos] + ids  # n + 1 ids: <s> w_1 ... w_n
        tgt = ids + [eos]  # n + 1 ids: w_1 ... w_n </s>
        inputs[b, : len(inp)] = torch.tensor(inp)  # row b of the (B, T) inputs; <pad> after it
        targets[b, : len(tgt)] = torch.tensor(tgt)  # row b of the (B, T) targets
    mask = (targets != pad).long()  # (B, T)
    ### END SOLUTION
    return inputs, targets, mask


# %% [markdown]
# Your batch for the two example sentences (token strings, with the mask below the targets):

# %%
def show_batch(inputs, targets, mask, vocab):
    """A table of a (B, T) batch as token strings: one block of rows per sentence."""
    itos = {i: w for w, i in vocab.items()}
    rows = {}
    for b in range(len(inputs)):
        rows[(f"sentence {b + 1}", "inputs")] = [itos[int(i)] for i in inputs[b]]
        rows[(f"sentence {b + 1}", "targets")] = [itos[int(i)] for i in targets[b]]
        rows[(f"sentence {b + 1}", "mask")] = [int(m) for m in torch.as_tensor(mask[b])]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(columns="t")


example_inputs, example_targets, example_mask = make_lm_batch(EXAMPLE_SENTENCES, EXAMPLE_VOCAB)
show_batch(example_inputs, example_targets, example_mask, EXAMPLE_VOCAB)

# %% nbgrader={"grade": true, "grade_id": "test_make_lm_batch_inputs_targets", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Q4a: the inputs and the targets.
import hashlib

import torch

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet, to_tensor

SENTENCES = [["the", "dog", "chased", "the", "cat"], ["birds", "can", "fly"]]
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "the": 3, "dog": 4, "chased": 5, "cat": 6, "birds": 7, "can": 8, "fly": 9}
# Digests of the expected inputs and targets of the Q4 example, row by row (</s> in the inputs is
# read as <pad>: what the model reads after the end of a sentence is never scored).
EXPECTED_INPUTS, EXPECTED_TARGETS = "da04d6bc69503e05", "86a18eb0c1a2e221"


def fingerprint(values):
    """A short digest of a list of whole numbers. The public check compares it with the digest of
    the expected answer, so that the check can tell you whether you are right without printing the
    answer here."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]
### BEGIN HIDDEN TESTS
VOCAB2 = {"x": 0, "</s>": 1, "y": 2, "<s>": 3, "z": 4, "<pad>": 5}
SENTENCES2 = [["x"], ["y", "x", "z", "z"], ["z", "y"]]


def _check_inputs_targets(sentences, vocab, inputs, targets):
    pad, bos, eos = vocab["<pad>"], vocab["<s>"], vocab["</s>"]
    T = max(len(s) for s in sentences) + 1
    assert_shape(inputs, (len(sentences), T), name="inputs", dims="B, T")
    assert_shape(targets, (len(sentences), T), name="targets", dims="B, T")
    inp, tgt = to_tensor(inputs, name="inputs"), to_tensor(targets, name="targets")
    for b, words in enumerate(sentences):
        ids = [vocab[w] for w in words]
        n = len(ids) + 1
        assert_equal(inp[b, :n], [bos] + ids, name=f"inputs[{b}] (the real tokens)")
        assert_equal(tgt[b, :n], ids + [eos], name=f"targets[{b}] (the real tokens)")
        assert_equal(tgt[b, n:], [pad] * (T - n), name=f"targets[{b}] (the padding)")
        # What the model reads at a padded position is never scored: accept <pad> or </s> there.
        assert_true(all(int(v) in (pad, eos) for v in inp[b, n:]),
                    f"inputs[{b}] after the sentence should be padding, got {inp[b, n:].tolist()}")
### END HIDDEN TESTS


def run():
    with quiet():
        inputs, targets, mask = make_lm_batch([list(s) for s in SENTENCES], dict(VOCAB))
    out = {"inputs": inputs, "targets": targets}
    ### BEGIN HIDDEN TESTS
    with quiet():
        inputs2, targets2, _ = make_lm_batch([list(s) for s in SENTENCES2], dict(VOCAB2))
    out["inputs2"], out["targets2"] = inputs2, targets2
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_shape(out["inputs"], (2, 6), name="inputs", dims="B, T")
    assert_shape(out["targets"], (2, 6), name="targets", dims="B, T")
    inputs = to_tensor(out["inputs"], name="inputs").long()
    inputs = torch.where(inputs == VOCAB["</s>"], VOCAB["<pad>"], inputs)
    targets = to_tensor(out["targets"], name="targets").long()
    assert_true(fingerprint(inputs.flatten().tolist()) == EXPECTED_INPUTS,
                f"the inputs of the Q4 example are not right, got {inputs.tolist()}")
    assert_true(fingerprint(targets.flatten().tolist()) == EXPECTED_TARGETS,
                f"the targets of the Q4 example are not right, got {targets.tolist()}")
    ### BEGIN HIDDEN TESTS
    _check_inputs_targets(SENTENCES, VOCAB, out["inputs"], out["targets"])
    _check_inputs_targets(SENTENCES2, VOCAB2, out["inputs2"], out["targets2"])
    ### END HIDDEN TESTS


grade("test_make_lm_batch_inputs_targets", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_make_lm_batch_mask", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Q4b: the mask.
import hashlib

import torch

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet, to_tensor

SENTENCES = [["the", "dog", "chased", "the", "cat"], ["birds", "can", "fly"]]
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "the": 3, "dog": 4, "chased": 5, "cat": 6, "birds": 7, "can": 8, "fly": 9}
EXPECTED_MASK = "203e7e57fa4c410e"  # a digest of the expected mask of the Q4 example, row by row, as 0/1


def fingerprint(values):
    """A short digest of a list of whole numbers. The public check compares it with the digest of
    the expected answer, so that the check can tell you whether you are right without printing the
    answer here."""
    return hashlib.sha256(repr([int(v) for v in values]).encode()).hexdigest()[:16]
### BEGIN HIDDEN TESTS
VOCAB2 = {"x": 0, "</s>": 1, "y": 2, "<s>": 3, "z": 4, "<pad>": 5}
SENTENCES2 = [["x"], ["y", "x", "z", "z"], ["z", "y"]]
### END HIDDEN TESTS


def run():
    with quiet():
        inputs, targets, mask = make_lm_batch([list(s) for s in SENTENCES], dict(VOCAB))
    out = {"mask": mask}
    ### BEGIN HIDDEN TESTS
    with quiet():
        _, _, mask2 = make_lm_batch([list(s) for s in SENTENCES2], dict(VOCAB2))
    out["mask2"] = mask2
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_shape(out["mask"], (2, 6), name="mask", dims="B, T")
    mask = to_tensor(out["mask"], name="mask")
    assert_true(bool(((mask == 0) | (mask == 1)).all()), f"the mask should hold only 0 and 1 (or False and True), got {mask.tolist()}")
    mask = (mask != 0).long()
    assert_true(fingerprint(mask.flatten().tolist()) == EXPECTED_MASK, f"the mask of the Q4 example is not right, got {mask.tolist()}")
    ### BEGIN HIDDEN TESTS
    assert_equal(out["mask"], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], name="mask")
    assert_equal(out["mask2"], [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], name="mask (second batch)")
    ### END HIDDEN TESTS


grade("test_make_lm_batch_mask", run, check)

# %% [markdown]
# **Q4c** [2 pts] Suppose that we have the following per-token losses for the batch:
#
# $$\begin{bmatrix} 0.1 & 0.3 & 0.2 & 0.4 & 0.7 & 0.5 \\ 0.2 & 0.6 & 0.1 & 0.8 & 0.9 & 0.4 \end{bmatrix}$$
#
# What is the corresponding masked loss matrix? Implement `masked_loss_matrix` and look at its
# output for these losses and your mask.

# %% nbgrader={"grade": false, "grade_id": "masked_loss_matrix", "locked": false, "schema_version": 3, "solution": true, "task": false}
def masked_loss_matrix(losses, mask):
    """Q4c: zero out the losses at padded positions.

    Args:
        losses: (B, T) float tensor of per-token losses.
        mask: (B, T) tensor, 1 (or True) at real target tokens and 0 (False) at padding.
    Returns:
        (B, T) float tensor: losses where mask is 1, 0.0 where mask is 0.
    """
    ### BEGIN SOLUTION
    return losses * mask.to(losses.dtype)  # (B, T) * (B, T) -> (B, T)
    ### END SOLUTION


# %%
EXAMPLE_LOSSES = torch.tensor([[0.1, 0.3, 0.2, 0.4, 0.7, 0.5],
                               [0.2, 0.6, 0.1, 0.8, 0.9, 0.4]])
masked_loss_matrix(EXAMPLE_LOSSES, torch.as_tensor(example_mask))

# %% nbgrader={"grade": true, "grade_id": "test_masked_loss_matrix", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

LOSSES = [[0.1, 0.3, 0.2, 0.4, 0.7, 0.5], [0.2, 0.6, 0.1, 0.8, 0.9, 0.4]]
MASK = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
### BEGIN HIDDEN TESTS


def _random_case():
    """Losses (3, 5) and a bool mask, from a fixed seed."""
    g = torch.Generator().manual_seed(4)
    losses = torch.rand(3, 5, generator=g)
    mask = torch.rand(3, 5, generator=g) < 0.6
    return losses, mask
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"q4": masked_loss_matrix(torch.tensor(LOSSES), torch.tensor(MASK))}
        # A mask of all ones keeps every loss; a mask of all zeros keeps none.
        out["ones"] = masked_loss_matrix(torch.tensor(LOSSES), torch.ones(2, 6, dtype=torch.long))
        out["zeros"] = masked_loss_matrix(torch.tensor(LOSSES), torch.zeros(2, 6, dtype=torch.long))
    ### BEGIN HIDDEN TESTS
    losses, mask = _random_case()
    for m, kind in [(mask, "bool"), (mask.float(), "float"), (mask.long(), "int")]:
        with quiet():
            out[kind] = masked_loss_matrix(losses.clone(), m)
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_shape(out["q4"], (2, 6), name="masked_loss_matrix(losses, mask)", dims="B, T")
    assert_close(out["ones"], LOSSES, name="masked_loss_matrix with a mask of all ones (nothing is padding)", atol=1e-6)
    assert_close(out["zeros"], [[0.0] * 6] * 2, name="masked_loss_matrix with a mask of all zeros (everything is padding)", atol=1e-6)
    ### BEGIN HIDDEN TESTS
    expected = [[0.1, 0.3, 0.2, 0.4, 0.7, 0.5], [0.2, 0.6, 0.1, 0.8, 0.0, 0.0]]
    assert_close(out["q4"], expected, name="masked loss matrix of the Q4 example", atol=1e-6)
    losses, mask = _random_case()
    expected = [[float(losses[b, t]) if mask[b, t] else 0.0 for t in range(5)] for b in range(3)]
    for kind in ["bool", "float", "int"]:
        assert_close(out[kind], expected, name=f"masked_loss_matrix with a {kind} mask", atol=1e-6)
    ### END HIDDEN TESTS


grade("test_masked_loss_matrix", run, check)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_q4d", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4d** [4 pts] Why is it important to mask losses in this way? What might a model learn to do if
# the loss is not masked? Answer in a few sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_q4d", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* Padding is an artefact of batching, not part of the data: the loss should only
# measure how well the model predicts real tokens. Without the mask, (1) the model is also trained
# to predict `<pad>` after `</s>` and after `<pad>`, a trivial pattern that wastes capacity and
# gradient signal and puts probability mass on `<pad>` (which can then show up when generating);
# (2) the reported loss and perplexity are wrong (pads are easy, so they look too good) and depend
# on how much padding a batch happens to have, i.e. on which other sentences share the batch, so
# short sentences in long batches are weighted differently from the same sentences elsewhere.
#
# *Rubric:* 2 pts the model learns to predict padding / wastes capacity / outputs pads; 2 pts
# loss and evaluation distorted, dependent on batch composition.

# %% [markdown]
# ---
# ## 2. Language model evaluation [16 pts]
#
# ### Q1: Evaluating language models [16 pts]
#
# Given a corpus $W = w_1 w_2 \dots w_N$ (with $N$ the number of tokens in the corpus), a common
# (intrinsic) evaluation metric for language models is *perplexity*, defined as
#
# $$PP(W) = P(w_1 \dots w_N)^{-\frac{1}{N}}$$
#
# This can be thought of as the inverse probability that the model assigns to the corpus,
# normalized by the size of the corpus.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1a** [2 pts] Is a lower or higher perplexity better? Why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1a", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* **Lower** is better. Perplexity is the inverse of the (geometric mean)
# probability per token the model gives the held-out text, so lower perplexity means the model
# assigns higher probability to real text, i.e. it is less "surprised". A perplexity of $k$ means
# the model is on average as uncertain as if it chose uniformly among $k$ tokens.
#
# *Rubric:* 1 pt lower; 1 pt because it is inverse probability (higher probability of the data).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1b** [4 pts] For a recurrent language model, write an expression for $P(w_1 \dots w_N)$ using
# the chain rule of probability. How is this different from the expression for a feed-forward
# language model?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1b", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* Recurrent LM: $P(w_1 \dots w_N) = \prod_{i=1}^{N} P(w_i \mid w_1 \dots w_{i-1})$,
# where each factor is computed from the hidden state $h_{i-1}$, which depends on the **whole**
# prefix. A feed-forward LM with a window of $n-1$ tokens makes a Markov approximation:
# $P(w_1 \dots w_N) \approx \prod_{i=1}^{N} P(w_i \mid w_{i-n+1} \dots w_{i-1})$: each factor
# sees only the last $n-1$ tokens (padding at the start).
#
# *Rubric:* 2 pts the chain rule with full history; 2 pts feed-forward conditions on a fixed
# window only.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1c** [4 pts] Show that
#
# $$PP(W) = e^{-\frac{1}{N} \sum_{i=1}^{N} \log P(w_i \mid w_{<i})}$$
#
# where $w_{<i} = w_1 w_2 \dots w_{i-1}$ and $\log$ is the natural (base $e$) logarithm.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1c", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* Since $x = e^{\log x}$ for $x > 0$,
#
# $$PP(W) = P(w_1 \dots w_N)^{-\frac{1}{N}} = e^{\log P(w_1 \dots w_N)^{-1/N}} = e^{-\frac{1}{N} \log P(w_1 \dots w_N)}.$$
#
# By the chain rule, $P(w_1 \dots w_N) = \prod_{i=1}^N P(w_i \mid w_{<i})$, and the log of a product
# is the sum of the logs, so $\log P(w_1 \dots w_N) = \sum_{i=1}^N \log P(w_i \mid w_{<i})$, which
# gives the result.
#
# *Rubric:* 2 pts exp/log rewrite with the $-1/N$ exponent; 2 pts chain rule and log of product =
# sum of logs.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1d", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1d** [2 pts] What is another name for the exponent
# $-\frac{1}{N}\sum_{i=1}^{N} \log P(w_i \mid w_{<i})$ in the above expression? Hint: it appears
# in training as well.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1d", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The **cross-entropy** (average negative log-likelihood per token): the training
# loss, i.e. the masked mean of `F.cross_entropy` over real tokens. So perplexity = exp(loss).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q1e", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1e** [4 pts] Suppose that the same text corpus were tokenized with two different
# vocabularies of different sizes (perhaps, e.g., one replaces infrequent tokens with an UNK token)
# and two language models were trained on the resulting tokenized text. All else being equal, would
# you expect perplexity to be lower or higher for the model with a smaller vocabulary? What
# consequences does this have for comparing different language models?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q1e", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* **Lower** for the smaller vocabulary: there are fewer outcomes to spread
# probability over, and UNK pools the probability mass of many rare (hard to predict) words into
# one frequent, easy-to-predict token. Consequently, perplexities are only comparable between
# models evaluated on the **same test text with the same vocabulary/tokenization**; a lower
# perplexity with a different tokenization does not mean a better model. To compare across
# tokenizations, normalise by a common unit (e.g. bits per character or per byte, or per word) or
# use an extrinsic evaluation.
#
# *Rubric:* 2 pts lower, with a reason; 2 pts perplexities comparable only with the same
# vocabulary / tokenization (and test set).

# %% [markdown]
# ### Perplexity in code [4 pts]
#
# Language models are evaluated on batches, so perplexity is computed from a `(B, T)` matrix of
# per-token log-probabilities $\log P(w_i \mid w_{<i})$ and the mask of real tokens: the $N$ of
# the formula is the number of real (unmasked) tokens in the whole batch, and padded positions,
# whatever they hold, must not count.

# %% nbgrader={"grade": false, "grade_id": "sequence_perplexity", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sequence_perplexity(token_log_probs, mask):
    """Perplexity of a batch of sequences: exp of the mean negative log-probability per real token.

    Args:
        token_log_probs: (B, T) float tensor, natural-log probabilities log P(w_i | w_<i) the model
            gave each target token. Padded positions may hold anything.
        mask: (B, T) tensor, 1 (True) at real tokens, 0 (False) at padding.
    Returns:
        The perplexity over all N real tokens of the batch (a 0-dim tensor or a float):
        exp(-(1/N) * sum of log-probabilities of real tokens).
    """
    ### BEGIN SOLUTION
    mask = mask.bool()  # (B, T)
    total = torch.where(mask, token_log_probs, torch.zeros_like(token_log_probs)).sum()  # (B, T) -> 0-dim
    nll = -total / mask.sum()  # 0-dim: mean negative log-probability over the N = mask.sum() real tokens
    return torch.exp(nll)  # 0-dim
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sequence_perplexity_masked", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math

import torch

from course_lib.grading.checks import as_float, assert_close, grade, quiet

### BEGIN HIDDEN TESTS

LENGTHS = [6, 2, 4]


def _random_case():
    """Log-probabilities (3, 6) of random models and the bool mask of LENGTHS, from a fixed seed."""
    g = torch.Generator().manual_seed(7)
    log_probs = torch.log_softmax(torch.randn(3, 6, 10, generator=g), dim=-1)[..., 0]  # (B, T)
    mask = torch.arange(6)[None, :] < torch.tensor(LENGTHS)[:, None]
    return log_probs, mask
### END HIDDEN TESTS


def run():
    # Worked example: a model that is uniform over 4 tokens has perplexity 4. Padded positions hold junk.
    log_probs = torch.full((2, 5), math.log(1 / 4))
    log_probs[1, 3:] = -50.0
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with quiet():
        out = {"uniform": sequence_perplexity(log_probs, mask)}
    ### BEGIN HIDDEN TESTS
    log_probs, mask = _random_case()
    junk = torch.where(mask, log_probs, torch.full_like(log_probs, -30.0))
    for m, kind in [(mask, "bool"), (mask.float(), "float"), (mask.long(), "int")]:
        with quiet():
            out[kind] = sequence_perplexity(junk.clone(), m)
    ### END HIDDEN TESTS
    return out


def check(out):
    pp = as_float(out["uniform"], name="sequence_perplexity")
    assert_close(pp, 4.0, name="perplexity of a uniform model over 4 tokens", atol=1e-4)
    ### BEGIN HIDDEN TESTS
    log_probs, _ = _random_case()
    real = [float(log_probs[b, t]) for b in range(3) for t in range(LENGTHS[b])]
    expected = math.exp(-sum(real) / len(real))
    for kind in ["bool", "float", "int"]:
        pp = as_float(out[kind], name="sequence_perplexity")
        assert_close(pp, expected, name=f"sequence_perplexity ({kind} mask)", rtol=1e-5)
    ### END HIDDEN TESTS


grade("test_sequence_perplexity_masked", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_sequence_perplexity_chain_rule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math

import torch

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

# A toy bigram language model with explicit probabilities P(next | previous).
P = {
    "<s>": {"a": 0.5, "b": 0.25, "</s>": 0.25},
    "a": {"a": 0.1, "b": 0.6, "</s>": 0.3},
    "b": {"a": 0.4, "b": 0.4, "</s>": 0.2},
}
CORPUS = [["a", "b", "a"], ["b"], ["a", "a", "b", "b"]]
### BEGIN HIDDEN TESTS
CORPUS2 = [["b", "b"], ["a", "b", "a", "a", "b"], []]
### END HIDDEN TESTS


def _batch(corpus, pad_value):
    """Per-token log-probabilities (B, T) of the bigram model on ``corpus``, and the mask of real tokens."""
    rows = []
    for words in corpus:
        tokens = ["<s>", *words, "</s>"]
        rows.append([math.log(P[prev][nxt]) for prev, nxt in zip(tokens[:-1], tokens[1:])])
    T = max(len(r) for r in rows)
    log_probs = torch.tensor([r + [pad_value] * (T - len(r)) for r in rows])  # (B, T)
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    return log_probs, mask


def _chain_rule_perplexity(corpus):
    """PP(W) = P(w_1 .. w_N) ** (-1/N), with the corpus probability written out as a product."""
    prob, N = 1.0, 0
    for words in corpus:
        tokens = ["<s>", *words, "</s>"]
        for prev, nxt in zip(tokens[:-1], tokens[1:]):
            prob *= P[prev][nxt]
            N += 1
    return prob ** (-1 / N)


def run():
    with quiet():
        out = {"pp": sequence_perplexity(*_batch(CORPUS, 0.0))}  # 0.0 at padding
    ### BEGIN HIDDEN TESTS
    log_probs, mask = _batch(CORPUS2, -20.0)  # junk at padding
    with quiet():
        out["pp2"] = sequence_perplexity(log_probs, mask.bool())
    ### END HIDDEN TESTS
    return out


def check(out):
    pp = as_float(out["pp"], name="sequence_perplexity")
    assert_true(math.isfinite(pp) and pp >= 1.0, f"a perplexity is a number >= 1, got {pp}")
    assert_close(pp, _chain_rule_perplexity(CORPUS), name="perplexity of the toy bigram model on CORPUS", rtol=1e-5)
    ### BEGIN HIDDEN TESTS
    pp2 = as_float(out["pp2"], name="sequence_perplexity")
    assert_close(pp2, _chain_rule_perplexity(CORPUS2), name="perplexity of the toy bigram model on a second corpus", rtol=1e-5)
    ### END HIDDEN TESTS


grade("test_sequence_perplexity_chain_rule", run, check)

# %% [markdown]
# ---
# ## 3. Understanding the implementation [26 pts]
#
# The handout's code implements character-level language models in three files: `models.py`
# (the models), `data.py` (vocabulary and batching) and `run.py` (masked loss, generation and the
# training loop). Here you write the central pieces yourself, below, and the course library does
# the plumbing: `course_lib.text` builds the character vocabulary and padded batches,
# `course_lib.train` runs the training loop, and `course_lib.runners.rnn_lm` plays the role of
# `run.py` (Section 4), with your classes and functions.
#
# A character language model treats every line of text as one sequence `<bos> c_1 ... c_n <eos>`:
# it reads `inputs = <bos> c_1 ... c_n` and is scored on `targets = c_1 ... c_n <eos>`, exactly
# like your `make_lm_batch`. Both models map `inputs` `(B, T)` to next-token logits `(B, T, V)`.
#
# ### 3.1 A fixed-window feed-forward language model
#
# The feed-forward model (Bengio et al., 2003) predicts the token after position `t` from the
# `W = window_size` most recent inputs `inputs[t-W+1], ..., inputs[t]`: their `W` embeddings,
# oldest first, make one vector of size `W*E`, which goes through a `tanh` hidden layer and an
# output layer. The first positions have fewer than `W` inputs before them: the missing ones are filled
# with `<pad>`, whose embedding is the zero vector (`padding_idx=pad_id`).
#
# Implement `forward` without a Python loop over time: left-pad, cut the padded sequence into
# overlapping windows with
# [`Tensor.unfold`](https://pytorch.org/docs/stable/generated/torch.Tensor.unfold.html), embed
# all windows at once and flatten each window's embeddings with `reshape`.

# %% nbgrader={"grade": false, "grade_id": "FeedforwardLanguageModel", "locked": false, "schema_version": 3, "solution": true, "task": false}
class FeedforwardLanguageModel(nn.Module):
    """Fixed-window feed-forward language model: token ids (B, T) -> next-token logits (B, T, V).

    The prediction at position t sees the W = window_size most recent inputs
    inputs[t-W+1], ..., inputs[t] (missing history at the start is <pad>).
    """

    def __init__(self, vocab_size, embedding_size, hidden_size, window_size, pad_id=0, dropout=0.0):
        super().__init__()
        self.window_size = window_size
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)  # (B, T, W) -> (B, T, W, E)
        self.hidden = nn.Linear(window_size * embedding_size, hidden_size)  # (B, T, W*E) -> (B, T, H)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)  # (B, T, H) -> (B, T, V)

    def forward(self, inputs, lengths=None):
        """Next-token logits at every position.

        Args:
            inputs: (B, T) long tensor of token ids.
            lengths: (B,) true lengths; accepted for a common interface and not needed (each
                position only sees the window that ends at it).
        Returns:
            logits: (B, T, V).

        Steps and shapes:
            left-pad with W-1 pad_id tokens (torch.full)     (B, T+W-1)
            windows: windows[:, t] = inputs[:, t-W+1 .. t]   (B, T, W)
            embed the windows                                (B, T, W, E)
            flatten each window, oldest token first          (B, T, W*E)
            tanh(hidden layer), then dropout                 (B, T, H)
            output layer                                     (B, T, V)
        """
        ### BEGIN SOLUTION
        B, T = inputs.shape
        W = self.window_size
        left = torch.full((B, W - 1), self.pad_id, dtype=inputs.dtype, device=inputs.device)
        padded = torch.cat([left, inputs], dim=1)  # (B, T+W-1)
        windows = padded.unfold(1, W, 1)  # (B, T, W)
        embedded = self.embedding(windows)  # (B, T, W, E)
        flat = embedded.reshape(B, T, -1)  # (B, T, W*E)
        hidden = self.dropout(torch.tanh(self.hidden(flat)))  # (B, T, H)
        return self.output(hidden)  # (B, T, V)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_FeedforwardLanguageModel_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

CASES = [(2, 7, 3), (3, 1, 4), (1, 5, 1)]  # (B, T, window_size)


def run():
    g = torch.Generator().manual_seed(0)
    logits = []
    for B, T, W in CASES:
        inputs = torch.randint(1, 11, (B, T), generator=g)
        with quiet():
            model = FeedforwardLanguageModel(vocab_size=11, embedding_size=4, hidden_size=8, window_size=W)
            logits.append(model(inputs))
    # A sequence of <pad> only: every window embeds to zeros, so each position's logits are the
    # output layer applied to tanh(hidden bias).
    with quiet():
        model = FeedforwardLanguageModel(vocab_size=11, embedding_size=4, hidden_size=8, window_size=3, pad_id=0).eval()
        all_pad = model(torch.zeros(1, 4, dtype=torch.long))
    with torch.no_grad():
        expected = model.output(torch.tanh(model.hidden.bias)).expand(1, 4, 11).clone()
    return {"logits": logits, "all_pad": all_pad, "all_pad_expected": expected}


def check(out):
    for i, (B, T, W) in enumerate(CASES):
        assert_shape(out["logits"][i], (B, T, 11), name=f"FeedforwardLanguageModel logits (window_size={W})", dims="B, T, V")
    assert_shape(out["all_pad"], (1, 4, 11), name="FeedforwardLanguageModel logits of a sequence of <pad>", dims="B, T, V")
    assert_close(out["all_pad"], out["all_pad_expected"],
                 name="logits of a sequence of <pad> (zero embeddings: output(tanh(hidden.bias)))", atol=1e-5)


grade("test_FeedforwardLanguageModel_shape", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_FeedforwardLanguageModel_left_padding", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

W, PAD = 3, 0


def _ff_weights(vocab_size, embedding_size, hidden_size, window_size, pad_id, seed):
    """Weights chosen by the test, in the layout of the handout's __init__ (the <pad> embedding is 0)."""
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(vocab_size, embedding_size, generator=g)
    embedding[pad_id] = 0.0
    fan_in = window_size * embedding_size
    return {
        "embedding.weight": embedding,
        "hidden.weight": torch.randn(hidden_size, fan_in, generator=g) / fan_in ** 0.5,
        "hidden.bias": 0.5 * torch.randn(hidden_size, generator=g),
        "output.weight": torch.randn(vocab_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "output.bias": 0.5 * torch.randn(vocab_size, generator=g),
    }


def _inputs():
    """x (2, 8); the same with inputs[5:] changed (the future); with inputs[0] changed (the past)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 9, (2, 8), generator=g)
    future = x.clone()
    future[:, 5:] = (x[:, 5:] % 8) + 1
    past = x.clone()
    past[:, 0] = (x[:, 0] % 8) + 1
    return x, future, past


def run():
    x, future, past = _inputs()
    with quiet():
        model = FeedforwardLanguageModel(vocab_size=9, embedding_size=4, hidden_size=6, window_size=W, pad_id=PAD).eval()
        model.load_state_dict(_ff_weights(9, 4, 6, W, PAD, seed=1))
        return {
            "out": model(x),
            # Spelling out the left padding gives the same predictions for the real tokens.
            "out_padded": model(torch.cat([torch.full((2, W - 1), PAD), x], dim=1)),
            "out_future": model(future),
            "out_past": model(past),
        }


def check(out):
    logits = out["out"]
    assert_shape(logits, (2, 8, 9), name="FeedforwardLanguageModel logits", dims="B, T, V")
    assert_close(logits, out["out_padded"][:, W - 1:], name="logits vs. logits with the left padding written out", atol=1e-5)
    # Position t depends on inputs[t-W+1 .. t] only: not on the future ...
    assert_close(out["out_future"][:, :5], logits[:, :5], name="logits at t < 5 after changing inputs[5:] (they must not see the future)", atol=1e-5)
    # ... and not on anything older than the window.
    out_past = out["out_past"]
    assert_close(out_past[:, W:], logits[:, W:], name=f"logits at t >= {W} after changing inputs[0] (outside their window)", atol=1e-5)
    assert_true(not torch.allclose(out_past[:, :W], logits[:, :W]),
                f"logits at t < {W} should change when inputs[0] (inside their window) changes")


grade("test_FeedforwardLanguageModel_left_padding", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_FeedforwardLanguageModel_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet


def _ff_weights(vocab_size, embedding_size, hidden_size, window_size, pad_id, seed):
    """Weights chosen by the test, in the layout of the handout's __init__ (the <pad> embedding is 0)."""
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(vocab_size, embedding_size, generator=g)
    embedding[pad_id] = 0.0
    fan_in = window_size * embedding_size
    return {
        "embedding.weight": embedding,
        "hidden.weight": torch.randn(hidden_size, fan_in, generator=g) / fan_in ** 0.5,
        "hidden.bias": 0.5 * torch.randn(hidden_size, generator=g),
        "output.weight": torch.randn(vocab_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "output.bias": 0.5 * torch.randn(vocab_size, generator=g),
    }
### BEGIN HIDDEN TESTS


CASES = [(3, 2), (1, 0), (4, 0)]  # (window_size, pad_id)


def _hidden_inputs():
    """One (2, 6) batch of token ids (never <pad>) per case, from a fixed seed."""
    g = torch.Generator().manual_seed(3)
    return [torch.randint(3, 8, (2, 6), generator=g) for _ in CASES]


def _reference_ff(weights, inputs, window_size):
    """Loop over positions: concatenate the window's embeddings (zeros before the start)."""
    w = {k: v.double() for k, v in weights.items()}
    E = w["embedding.weight"].shape[1]
    B, T = inputs.shape
    out = torch.zeros(B, T, w["output.bias"].shape[0], dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            parts = []
            for s in range(t - window_size + 1, t + 1):
                parts.append(w["embedding.weight"][inputs[b, s]] if s >= 0 else torch.zeros(E, dtype=torch.float64))
            x = torch.cat(parts)  # (W*E,)
            h = torch.tanh(w["hidden.weight"] @ x + w["hidden.bias"])  # (H,)
            out[b, t] = w["output.weight"] @ h + w["output.bias"]  # (V,)
    return out
### END HIDDEN TESTS


def run():
    with quiet():
        model = FeedforwardLanguageModel(vocab_size=7, embedding_size=3, hidden_size=5, window_size=3, pad_id=0).eval()
        model.load_state_dict(_ff_weights(7, 3, 5, 3, 0, seed=2))
        out = {"logits": model(torch.tensor([[1, 4, 5, 6]]))}
    ### BEGIN HIDDEN TESTS
    out["cases"] = []
    for (W, pad), inputs in zip(CASES, _hidden_inputs()):
        with quiet():
            model = FeedforwardLanguageModel(vocab_size=8, embedding_size=3, hidden_size=5, window_size=W, pad_id=pad, dropout=0.3).eval()
            model.load_state_dict(_ff_weights(8, 3, 5, W, pad, seed=10 + W))
            out["cases"].append(model(inputs))
    ### END HIDDEN TESTS
    return out


def _window_logits(weights, window):
    """The logits for one window of W token ids (None: the zero vector of a missing token), by hand:
    output(tanh(hidden(x))), x the window's W embeddings one after the other, oldest first."""
    E = weights["embedding.weight"].shape[1]
    x = torch.cat([torch.zeros(E) if i is None else weights["embedding.weight"][i] for i in window])  # (W*E,)
    h = torch.tanh(weights["hidden.weight"] @ x + weights["hidden.bias"])  # (H,)
    return weights["output.weight"] @ h + weights["output.bias"]  # (V,)


def check(out):
    assert_shape(out["logits"], (1, 4, 7), name="FeedforwardLanguageModel logits", dims="B, T, V")
    # Inputs [1, 4, 5, 6], window_size 3: position 0 sees (none, none, 1), position 3 sees (4, 5, 6).
    weights = _ff_weights(7, 3, 5, 3, 0, seed=2)
    assert_close(out["logits"][0, 0], _window_logits(weights, [None, None, 1]), name="logits at position 0", atol=1e-5)
    assert_close(out["logits"][0, 3], _window_logits(weights, [4, 5, 6]), name="logits at position 3", atol=1e-5)
    ### BEGIN HIDDEN TESTS
    for i, ((W, pad), inputs) in enumerate(zip(CASES, _hidden_inputs())):
        expected = _reference_ff(_ff_weights(8, 3, 5, W, pad, seed=10 + W), inputs, W)
        assert_close(out["cases"][i], expected, name=f"FeedforwardLanguageModel logits (window_size={W}, pad_id={pad})", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_FeedforwardLanguageModel_values", run, check, forbid=["course_solutions.layers"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q1a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Q1: Understanding LM forward passes [8 pts]
#
# **Q1a** [3 pts] In `FeedforwardLanguageModel.forward`, look at the left-padding step (the
# `torch.full(...)` block that builds `W-1` pad tokens and concatenates them in front of the
# inputs). In your own words, what is it doing? What would go wrong if we didn't include this
# block? Go beyond what the docstring says.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q1a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* It prepends `W-1` `<pad>` tokens to every sequence so that **every** position
# `t`, including the first `W-1`, has a full window of `W` tokens ending at `t`. `unfold` then
# produces exactly `T` windows, one per input position, aligned with the `T` targets, and each
# window contains only the current and past tokens (causal). The pad embedding is the zero vector
# (and gets no gradient), so "missing history" contributes nothing.
# Without it, `unfold` would give only `T-W+1` windows: the logits would no longer line up with
# the `(B, T)` targets (a shape error in the loss, or, if forced to line up, windows shifted so
# that they include future tokens, i.e. the model sees the token it should predict). And the
# first `W-1` characters of every line, including the first prediction after `<bos>`, would never
# be predicted or trained; with short lines and a large window that is most of the data.
#
# *Rubric:* 1 pt what it does (fills the missing history with pads so each position has a full
# window); 1 pt alignment of windows with targets / causality; 1 pt concrete consequence of
# removing it.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q1b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1b** [2 pts] In the same function, the "flattening" step uses PyTorch's `reshape` to turn the
# `(B, T, W, E)` window embeddings into `(B, T, W*E)`. What is this "flattening" operation in the
# terms of the feed-forward LM described in the slides and the textbook? What is its purpose?
# (Looking up the `reshape` method may help.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q1b", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* It is the **concatenation** of the `W` context-word embeddings into the input
# vector $x = [e(w_{t-W+1}); \dots; e(w_t)]$ of the feed-forward LM. `reshape` only re-views the
# last two dimensions as one (no copy when the tensor is contiguous), keeping each window's
# embeddings in order. Its purpose is to give the hidden layer a single `W*E` vector per position,
# so that `self.hidden` (a `W*E -> H` linear layer) has separate weights for each window position,
# i.e. word order inside the window matters (unlike, say, averaging the embeddings).
#
# *Rubric:* 1 pt concatenation of the window's embeddings; 1 pt purpose (one input vector for the
# hidden layer, position-specific weights).

# %% [markdown]
# ### 3.2 A recurrent language model
#
# The recurrent model embeds the inputs, runs an `nn.RNN` (Elman, `tanh`) or `nn.LSTM` over them
# and maps each hidden state to next-token logits. Sequences in a batch have different lengths
# (`lengths[b]` real tokens, then padding), so `forward` **packs** the embedded batch with
# [`pack_padded_sequence`](https://pytorch.org/docs/stable/generated/torch.nn.utils.rnn.pack_padded_sequence.html)
# before the RNN and unpacks its outputs with
# [`pad_packed_sequence`](https://pytorch.org/docs/stable/generated/torch.nn.utils.rnn.pad_packed_sequence.html).
# The batches are not sorted by length, and the output must keep the input's time dimension `T`
# even when no sequence fills it.

# %% nbgrader={"grade": false, "grade_id": "RNNLanguageModel", "locked": false, "schema_version": 3, "solution": true, "task": false}
class RNNLanguageModel(nn.Module):
    """Recurrent (vanilla RNN or LSTM) language model over right-padded batches.

    Token ids (B, T) and lengths (B,) -> next-token logits (B, T, V).
    """

    def __init__(self, vocab_size, embedding_size, hidden_size, cell="rnn", pad_id=0, dropout=0.0, num_layers=1):
        super().__init__()
        if cell not in ("rnn", "lstm"):
            raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
        self.cell = cell
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)  # (B, T) -> (B, T, E)
        rnn_class = nn.RNN if cell == "rnn" else nn.LSTM
        self.rnn = rnn_class(embedding_size, hidden_size, num_layers, batch_first=True)  # (B, T, E) -> (B, T, H)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)  # (B, T, H) -> (B, T, V)

    def forward(self, inputs, lengths):
        """Next-token logits at every position.

        Args:
            inputs: (B, T) long tensor of token ids, right-padded.
            lengths: (B,) long tensor, the number of real tokens of each sequence (any order).
        Returns:
            logits: (B, T, V). At padded positions the RNN output is zero, so the logits there are
            just the output layer's bias (they are masked out of the loss anyway).

        Shapes:
            embed, then dropout                                      (B, T, E)
            pack, run self.rnn, unpack                               (B, T, H)
            dropout, then output layer                               (B, T, V)
        """
        ### BEGIN SOLUTION
        T = inputs.size(1)
        embedded = self.dropout(self.embedding(inputs))  # (B, T, E)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()  # (B,) on the CPU, as packing requires
        # packed: only the real steps, sum(lengths) of them, each (E,); packed_out: the same steps, each (H,)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)  # (B, T, H)
        return self.output(self.dropout(out))  # (B, T, V)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_RNNLanguageModel_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

# lengths are not sorted, and no sequence fills all T = 6 steps.
INPUTS = [[1, 5, 6, 7, 0, 0], [1, 4, 4, 5, 6, 0], [1, 3, 0, 0, 0, 0]]
LENGTHS = [4, 5, 2]
ORDER = [2, 0, 1]  # the same batch with its rows in another order


def run():
    out = {}
    for cell in ["rnn", "lstm"]:
        with quiet():
            model = RNNLanguageModel(vocab_size=9, embedding_size=4, hidden_size=5, cell=cell, pad_id=0).eval()
            out[cell] = model(torch.tensor(INPUTS), torch.tensor(LENGTHS))
            out[cell + "_reordered"] = model(torch.tensor(INPUTS)[ORDER], torch.tensor(LENGTHS)[ORDER])
    return out


def check(out):
    for cell in ["rnn", "lstm"]:
        assert_shape(out[cell], (3, 6, 9), name=f"RNNLanguageModel logits (cell={cell!r})", dims="B, T, V")
        assert_shape(out[cell + "_reordered"], (3, 6, 9), name=f"RNNLanguageModel logits (cell={cell!r})", dims="B, T, V")
        # Each row's logits depend on that row only, whatever the order of the batch.
        assert_close(out[cell + "_reordered"], out[cell][ORDER], name=f"{cell}: logits of the batch with its rows reordered", atol=1e-5)


grade("test_RNNLanguageModel_shape", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_RNNLanguageModel_padding", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

INPUTS = [[1, 5, 6, 7, 0, 0], [1, 4, 4, 5, 6, 0], [1, 3, 0, 0, 0, 0]]
LENGTHS = [4, 5, 2]


def _rnn_weights(cell, vocab_size, embedding_size, hidden_size, pad_id, seed):
    """Weights chosen by the test, in the layout of the handout's __init__ (nn.RNN / nn.LSTM names)."""
    g = torch.Generator().manual_seed(seed)
    gates = 4 if cell == "lstm" else 1
    embedding = torch.randn(vocab_size, embedding_size, generator=g)
    embedding[pad_id] = 0.0
    return {
        "embedding.weight": embedding,
        "rnn.weight_ih_l0": torch.randn(gates * hidden_size, embedding_size, generator=g) / embedding_size ** 0.5,
        "rnn.weight_hh_l0": torch.randn(gates * hidden_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "rnn.bias_ih_l0": 0.5 * torch.randn(gates * hidden_size, generator=g),
        "rnn.bias_hh_l0": 0.5 * torch.randn(gates * hidden_size, generator=g),
        "output.weight": torch.randn(vocab_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "output.bias": 0.5 * torch.randn(vocab_size, generator=g),
    }


def run():
    inputs = torch.tensor(INPUTS)
    more_padding = torch.cat([inputs, torch.zeros(3, 3, dtype=torch.long)], dim=1)
    out = {}
    for cell in ["rnn", "lstm"]:
        with quiet():
            model = RNNLanguageModel(vocab_size=9, embedding_size=4, hidden_size=5, cell=cell, pad_id=0).eval()
            model.load_state_dict(_rnn_weights(cell, 9, 4, 5, 0, seed=1))
            out[cell] = {
                "logits": model(inputs, torch.tensor(LENGTHS)),
                "logits_more": model(more_padding, torch.tensor(LENGTHS)),
                # the same sentences, one at a time and without padding
                "alone": [model(inputs[b:b + 1, :L], torch.tensor([L])) for b, L in enumerate(LENGTHS)],
            }
    return out


def check(out):
    for cell in ["rnn", "lstm"]:
        bias = _rnn_weights(cell, 9, 4, 5, 0, seed=1)["output.bias"]
        logits, logits_more, alone = out[cell]["logits"], out[cell]["logits_more"], out[cell]["alone"]
        assert_shape(logits, (3, 6, 9), name=f"{cell}: logits", dims="B, T, V")
        assert_shape(logits_more, (3, 9, 9), name=f"{cell}: logits with 3 more padding steps", dims="B, T, V")
        for b, L in enumerate(LENGTHS):
            assert_close(logits[b, :L], alone[b][0], name=f"{cell}: logits of sentence {b} in the batch vs. alone", atol=1e-5)
            assert_close(logits_more[b, :L], logits[b, :L], name=f"{cell}: logits of sentence {b} with more padding after it", atol=1e-5)
            # Packing stops the RNN at each sentence's end: padded positions get a zero RNN output.
            assert_close(logits[b, L:], bias.expand(6 - L, 9),
                         name=f"{cell}: logits at the padded positions of sentence {b} (should be the output bias)", atol=1e-5)


grade("test_RNNLanguageModel_padding", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_RNNLanguageModel_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet


def _rnn_weights(cell, vocab_size, embedding_size, hidden_size, pad_id, seed):
    """Weights chosen by the test, in the layout of the handout's __init__ (nn.RNN / nn.LSTM names)."""
    g = torch.Generator().manual_seed(seed)
    gates = 4 if cell == "lstm" else 1
    embedding = torch.randn(vocab_size, embedding_size, generator=g)
    embedding[pad_id] = 0.0
    return {
        "embedding.weight": embedding,
        "rnn.weight_ih_l0": torch.randn(gates * hidden_size, embedding_size, generator=g) / embedding_size ** 0.5,
        "rnn.weight_hh_l0": torch.randn(gates * hidden_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "rnn.bias_ih_l0": 0.5 * torch.randn(gates * hidden_size, generator=g),
        "rnn.bias_hh_l0": 0.5 * torch.randn(gates * hidden_size, generator=g),
        "output.weight": torch.randn(vocab_size, hidden_size, generator=g) / hidden_size ** 0.5,
        "output.bias": 0.5 * torch.randn(vocab_size, generator=g),
    }
### BEGIN HIDDEN TESTS


LENGTHS = [3, 6, 1, 4]


def _hidden_inputs():
    """A (4, 7) batch of token ids from a fixed seed, padded after LENGTHS with pad_id = 1."""
    g = torch.Generator().manual_seed(5)
    inputs = torch.randint(2, 10, (4, 7), generator=g)
    for b, L in enumerate(LENGTHS):
        inputs[b, L:] = 1
    return inputs


def _reference_rnn(cell, weights, inputs, lengths):
    """Explicit loop over time (nn.RNN / nn.LSTM math written out); one (L, V) tensor per sequence."""
    w = {k: v.double() for k, v in weights.items()}
    W_ih, W_hh, b_ih, b_hh = w["rnn.weight_ih_l0"], w["rnn.weight_hh_l0"], w["rnn.bias_ih_l0"], w["rnn.bias_hh_l0"]
    H = W_hh.shape[1]
    outs = []
    for b, L in enumerate(lengths):
        h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
        rows = []
        for t in range(L):
            x = w["embedding.weight"][inputs[b, t]]
            pre = W_ih @ x + b_ih + W_hh @ h + b_hh
            if cell == "rnn":
                h = torch.tanh(pre)
            else:
                i, f, g_, o = pre.chunk(4)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g_)
                h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(w["output.weight"] @ h + w["output.bias"])
        outs.append(torch.stack(rows))  # (L, V)
    return outs
### END HIDDEN TESTS


def _rnn_by_hand(weights, ids):
    """A vanilla RNN language model on one sequence without padding, written out:
    h_t = tanh(W_ih e(x_t) + b_ih + W_hh h_{t-1} + b_hh), logits_t = output(h_t)."""
    h = torch.zeros(weights["rnn.weight_hh_l0"].shape[1])
    rows = []
    for i in ids:
        x = weights["embedding.weight"][i]
        h = torch.tanh(weights["rnn.weight_ih_l0"] @ x + weights["rnn.bias_ih_l0"]
                       + weights["rnn.weight_hh_l0"] @ h + weights["rnn.bias_hh_l0"])
        rows.append(weights["output.weight"] @ h + weights["output.bias"])
    return torch.stack(rows)  # (T, V)


def _lstm_builtin(weights, ids):
    """The same for an LSTM, with PyTorch's nn.LSTM on the embedded sequence (no padding, no packing)."""
    lstm = nn.LSTM(weights["embedding.weight"].shape[1], weights["rnn.weight_hh_l0"].shape[1], batch_first=True)
    lstm.load_state_dict({k[len("rnn."):]: v for k, v in weights.items() if k.startswith("rnn.")})
    with torch.no_grad():
        hidden, _ = lstm(weights["embedding.weight"][torch.tensor([ids])])  # (1, T, H)
        return hidden[0] @ weights["output.weight"].T + weights["output.bias"]  # (T, V)


def run():
    with quiet():
        model = RNNLanguageModel(vocab_size=7, embedding_size=3, hidden_size=4, cell="lstm").eval()
        model.load_state_dict(_rnn_weights("lstm", 7, 3, 4, 0, seed=2))
        out = {"logits": model(torch.tensor([[1, 4, 5]]), torch.tensor([3]))}
        model = RNNLanguageModel(vocab_size=7, embedding_size=3, hidden_size=4, cell="rnn").eval()
        model.load_state_dict(_rnn_weights("rnn", 7, 3, 4, 0, seed=3))
        out["public_rnn"] = model(torch.tensor([[1, 4, 5, 2]]), torch.tensor([4]))
    ### BEGIN HIDDEN TESTS
    for cell in ["rnn", "lstm"]:
        with quiet():
            model = RNNLanguageModel(vocab_size=10, embedding_size=3, hidden_size=5, cell=cell, pad_id=1, dropout=0.3).eval()
            model.load_state_dict(_rnn_weights(cell, 10, 3, 5, 1, seed=6))
            out[cell] = model(_hidden_inputs(), torch.tensor(LENGTHS))
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_shape(out["logits"], (1, 3, 7), name="RNNLanguageModel logits", dims="B, T, V")
    assert_close(out["logits"][0], _lstm_builtin(_rnn_weights("lstm", 7, 3, 4, 0, seed=2), [1, 4, 5]),
                 name="lstm: logits of [1, 4, 5] vs. nn.LSTM and the output layer", atol=1e-5)
    assert_shape(out["public_rnn"], (1, 4, 7), name="RNNLanguageModel logits (cell='rnn')", dims="B, T, V")
    assert_close(out["public_rnn"][0], _rnn_by_hand(_rnn_weights("rnn", 7, 3, 4, 0, seed=3), [1, 4, 5, 2]),
                 name="rnn: logits of [1, 4, 5, 2] vs. the vanilla RNN equations written out", atol=1e-5)
    ### BEGIN HIDDEN TESTS
    for cell in ["rnn", "lstm"]:
        expected = _reference_rnn(cell, _rnn_weights(cell, 10, 3, 5, 1, seed=6), _hidden_inputs(), LENGTHS)
        got = out[cell]
        assert_shape(got, (4, 7, 10), name=f"{cell}: logits", dims="B, T, V")
        for b, L in enumerate(LENGTHS):
            assert_close(got[b, :L], expected[b], name=f"{cell}: logits of sequence {b} (length {L})", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_RNNLanguageModel_values", run, check, forbid=["course_solutions.layers"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q1c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1c** [3 pts] In `RNNLanguageModel.forward` we use the functions `pack_padded_sequence` and
# `pad_packed_sequence`. Look up the PyTorch documentation for these functions. In general terms,
# what is their purpose? Again, go beyond the information provided in the docstring.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q1c", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* A padded batch wastes computation and can corrupt an RNN's state: the RNN would
# keep stepping through `<pad>` tokens. `pack_padded_sequence` turns the padded `(B, T, E)` tensor
# plus the lengths into a `PackedSequence`: only the real tokens, stored time step by time step,
# with `batch_sizes` saying how many sequences are still active at each step (with
# `enforce_sorted=False` it sorts by length internally and remembers how to undo it). The RNN
# then processes each sequence only up to its own length, so no work is spent on padding and the
# returned final state `h_n` (and `c_n`) is the state after each sequence's **last real token**,
# not after the padding. `pad_packed_sequence` converts the packed outputs back to an ordinary
# padded `(B, T, H)` tensor in the original batch order, with zeros at padded positions
# (`total_length=T` keeps the time dimension equal to the targets'). For our unidirectional LM the
# outputs at real positions would be the same without packing (the RNN is causal); the benefits
# are efficiency and correct final states, which matter when `h_n` is used (encoders, stacking
# states across batches) and for bidirectional RNNs, whose backward direction would otherwise
# start in the padding.
#
# *Rubric:* 1 pt packing skips pad positions / handles variable lengths efficiently; 1 pt final
# hidden state / bidirectional correctness; 1 pt unpacking restores the padded tensor (zeros at
# pads, original order).

# %% [markdown]
# ### 3.3 The masked loss
#
# The training loop computes one loss per target token with
# `F.cross_entropy(logits.reshape(B*T, V), targets.reshape(B*T), reduction="none")` reshaped to
# `(B, T)`, and then reduces it to one number with `mask_loss`.

# %% nbgrader={"grade": false, "grade_id": "mask_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mask_loss(losses, mask):
    """Mean loss over the real tokens of a batch.

    Args:
        losses: (B, T) float tensor of per-token losses (negative log-likelihoods).
        mask: (B, T) tensor, 1 (True) at real target tokens, 0 (False) at padding.
    Returns:
        A 0-dim tensor (differentiable with respect to losses): the sum of the losses at real
        tokens divided by the number of real tokens, mask.sum().
    """
    ### BEGIN SOLUTION
    # losses, mask: (B, T) -> a 0-dim tensor
    mask = mask.to(losses.dtype)
    return (losses * mask).sum() / mask.sum()  # 0-dim: sum over the real tokens / their number
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mask_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

### BEGIN HIDDEN TESTS


def _random_case():
    """Losses (3, 7) and the bool mask of lengths 7, 2, 4, from a fixed seed."""
    g = torch.Generator().manual_seed(8)
    losses = torch.rand(3, 7, generator=g) * 4
    mask = torch.arange(7)[None, :] < torch.tensor([7, 2, 4])[:, None]
    return losses, mask
### END HIDDEN TESTS


def run():
    # Worked example: the Q4 losses and mask. Real tokens: 6 + 4 = 10, their losses sum to 3.9.
    losses = torch.tensor([[0.1, 0.3, 0.2, 0.4, 0.7, 0.5], [0.2, 0.6, 0.1, 0.8, 0.9, 0.4]])
    mask = torch.tensor([[1.0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with quiet():
        out = {"q4": mask_loss(losses, mask)}
    ### BEGIN HIDDEN TESTS
    losses, mask = _random_case()
    for m, kind in [(mask, "bool"), (mask.long(), "int"), (mask.float(), "float")]:
        x = losses.clone().requires_grad_(True)
        with quiet():
            loss = mask_loss(x, m)
        connected = isinstance(loss, torch.Tensor) and loss.requires_grad
        if connected:
            loss.backward()
        out[kind] = {"loss": loss, "connected": connected, "grad": x.grad}
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(as_float(out["q4"], name="mask_loss"), 0.39, name="mask_loss on the Q4 example", atol=1e-6)
    ### BEGIN HIDDEN TESTS
    losses, mask = _random_case()
    real = [float(losses[b, t]) for b in range(3) for t in range(7) if mask[b, t]]
    for kind in ["bool", "int", "float"]:
        got = out[kind]
        assert_close(as_float(got["loss"], name="mask_loss"), sum(real) / len(real), name=f"mask_loss ({kind} mask)", rtol=1e-5)
        assert_true(got["connected"] is True,
                    "mask_loss should return a tensor connected to the losses (so that .backward() works)")
        assert_close(got["grad"], mask.double() / len(real), name="gradient of mask_loss with respect to the losses", atol=1e-6)
    ### END HIDDEN TESTS


grade("test_mask_loss", run, check, forbid=["course_solutions.layers"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q2", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Q2: Understanding masking [4 pts]
#
# Look at your `mask_loss` function. Explain in 2-3 sentences why we divide by `mask.sum()` rather
# than by the total number of elements in the loss tensor. What would happen to the gradient
# magnitudes if we used the wrong denominator?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q2", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* `mask.sum()` is the number of **real** target tokens, so the result is the
# average loss per real token, the quantity we want to minimise and whose exponential is the
# perplexity, independent of how much padding the batch contains. Dividing by `losses.numel()`
# (`B*T`, pads included) would underestimate the loss by the factor `mask.sum() / numel` and
# scale **every gradient down by that same factor**, which varies from batch to batch: batches
# with much padding (one long line with many short ones) would get smaller updates, as if the
# learning rate were randomly lowered, and the reported loss/perplexity would be too low.
#
# *Rubric:* 2 pts mean over real tokens / independent of padding; 2 pts gradients shrink by
# the fraction of real tokens, inconsistently across batches.

# %% [markdown]
# ### 3.4 Generating text
#
# `generate` samples a continuation of `prefix` one character at a time, from the model's
# next-character distribution (sharpened or flattened by the `temperature`, below). The model was
# trained on sequences `<bos> c_1 ... c_n`: the text it continues must start the same way (use
# `torch.full` to make the `<bos>` part), and it predicts the next character from everything
# before it. Generation stops at `<eos>` or after `max_len` characters. The vocabulary is a
# `course_lib.text.CharVocab`: `vocab.bos_id`, `vocab.eos_id`, `vocab.encode(text)` (a list of ids)
# and `vocab.decode(ids)` (a string, special tokens dropped).
#
# **What the temperature does.** Dividing the logits by $T$ before the softmax sharpens the
# distribution when $T < 1$ (sampling picks the most likely character more often, and the text gets
# repetitive) and flattens it when $T > 1$ (rare characters come up more often, and the text gets
# noisier); $T = 1$ samples from the model's own distribution. Below, five made-up scores for the
# character after "th":

# %%
from course_lib.plot import plot_temperature

plot_temperature([3.0, 1.5, 1.0, 0.2, -1.0], ["e", "a", "i", "r", "x"], temperatures=[0.5, 1.0, 2.0],
                 title='softmax(logits / T) for the character after "th"')

# %% nbgrader={"grade": false, "grade_id": "generate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def generate(model, vocab, prefix="", max_len=200, temperature=1.0, generator=None):
    """Sample text from a character language model.

    Args:
        model: called as model(inputs, lengths) with inputs (1, T) long and lengths (1,) long;
            returns logits (1, T, V).
        vocab: a CharVocab (bos_id, eos_id, encode, decode).
        prefix: the text to continue.
        max_len: the largest number of characters to generate (exactly max_len if <eos> is never
            drawn).
        temperature: the logits are divided by it before the softmax (< 1: more conservative,
            > 1: more random).
        generator: a torch.Generator for torch.multinomial (on the CPU), or None.
    Returns:
        str: prefix followed by the generated characters (without <eos>).

    Runs without building an autograd graph, in eval mode, and leaves the model in the training
    mode it had before. Draws every character with torch.multinomial on the CPU, passing it
    `generator`, so that a seeded generator gives reproducible text.

    Shapes: the model reads (1, T) ids and returns (1, T, V) logits; one character is drawn
    from a distribution over the V ids, (1, V).
    """
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generated = []
    with torch.no_grad():
        start = torch.full((1, 1), vocab.bos_id, dtype=torch.long, device=device)  # (1, 1)
        prefix_ids = torch.tensor(vocab.encode(prefix), dtype=torch.long, device=device).view(1, -1)  # (1, T-1)
        inputs = torch.cat([start, prefix_ids], dim=1)  # (1, T)
        for _ in range(max_len):
            lengths = torch.tensor([inputs.size(1)])  # (1,)
            logits = model(inputs, lengths)[:, -1] / temperature  # (1, V)
            probs = torch.softmax(logits.float(), dim=-1)  # (1, V)
            next_id = torch.multinomial(probs.cpu(), 1, generator=generator)  # (1, 1)
            if next_id.item() == vocab.eos_id:
                break
            generated.append(next_id.item())
            inputs = torch.cat([inputs, next_id.to(device)], dim=1)  # (1, T+1)
    model.train(was_training)
    return prefix + vocab.decode(generated)
    ### END SOLUTION


# %% [markdown]
# The test cells below call your `generate` with small stand-in models rather than your
# `RNNLanguageModel`, so that they test generation alone. The stand-ins are defined here:
# `BigramStub`, whose next character depends only on the last one, and `ContextStub`, whose next
# character depends on the whole sequence it is given.

# %% nbgrader={"grade": false, "grade_id": "generate_test_models", "locked": true, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn

from course_lib.text import CharVocab


class BigramStub(nn.Module):
    """A stand-in language model whose next-token logits depend only on the last input token.

    ``table`` is (V, V): row i holds the logits of the token after token i. The model records,
    at every call, whether autograd was on and whether it was in training mode.
    """

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32).clone())
        self.grad_enabled, self.training_flags = [], []

    def forward(self, inputs, lengths=None):
        self.grad_enabled.append(torch.is_grad_enabled())
        self.training_flags.append(self.training)
        return self.table[inputs]  # (B, T, V)


class ContextStub(nn.Module):
    """A stand-in language model whose next token depends on the whole sequence it reads.

    For a vocabulary with 3 characters (ids 3, 4, 5): after the ids x_0, ..., x_t (<bos> included)
    it predicts the character with id 3 + (x_0 + ... + x_t) % 3 (by ``margin`` logits over the other
    two; <pad>, <bos> and <eos> are never drawn). It records the inputs of every call.
    """

    def __init__(self, margin=50.0):
        super().__init__()
        self.margin = nn.Parameter(torch.tensor(float(margin)))
        self.calls = []

    def forward(self, inputs, lengths=None):
        self.calls.append(inputs.detach().cpu().tolist())
        nxt = 3 + inputs.cumsum(dim=1) % 3  # (B, T)
        logits = self.margin * nn.functional.one_hot(nxt, 6).float()  # (B, T, V)
        special = torch.tensor([True, True, True, False, False, False], device=inputs.device)
        return logits.masked_fill(special, float("-inf"))


def bigram_table(vocab, next_char, margin):
    """Logits where the token after ``a`` is ``next_char[a]`` (by ``margin`` logits over the other
    characters; ``"<eos>"`` allowed); <pad>, <bos> and <eos> are never drawn otherwise."""
    V = len(vocab)
    table = torch.zeros(V, V)
    table[:, [vocab.pad_id, vocab.bos_id, vocab.eos_id]] = float("-inf")
    for prev, nxt in next_char.items():
        i = vocab.bos_id if prev == "<bos>" else vocab.stoi[prev]
        j = vocab.eos_id if nxt == "<eos>" else vocab.stoi[nxt]
        table[i, j] = margin
    return table


def unigram_table(vocab, logits):
    """Logits that ignore the context: every row is ``logits`` over the characters ``vocab.itos[3:]``."""
    V = len(vocab)
    table = torch.full((V, V), float("-inf"))
    table[:, 3:] = torch.as_tensor(logits, dtype=torch.float32)
    return table


# %% nbgrader={"grade": true, "grade_id": "test_generate_output", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_equal, assert_true, grade, quiet
from course_lib.text import CharVocab


def _context_continuation(prefix, n):
    """The n characters ContextStub predicts after <bos> and ``prefix`` (its rule, by hand)."""
    vocab = CharVocab("abc")
    ids = [vocab.bos_id, *vocab.encode(prefix)]
    for _ in range(n):
        ids.append(3 + sum(ids) % 3)
    return vocab.decode(ids[-n:]) if n else ""


def run():
    vocab = CharVocab("abc")
    model = BigramStub(bigram_table(vocab, {"<bos>": "a", "a": "b", "b": "c", "c": "a"}, margin=1.0))
    with quiet():
        out = {
            "text": generate(model, vocab, prefix="ba", max_len=30, temperature=1.0, generator=torch.Generator().manual_seed(0)),
            "again": generate(model, vocab, prefix="ba", max_len=30, temperature=1.0, generator=torch.Generator().manual_seed(0)),
            "short": generate(model, vocab, prefix="", max_len=12, generator=torch.Generator().manual_seed(1)),
        }
    # A model that reads the whole sequence: the continuation depends on <bos> and every character.
    with quiet():
        out["context"] = generate(ContextStub(), vocab, prefix="ab", max_len=8, generator=torch.Generator().manual_seed(0))
    ### BEGIN HIDDEN TESTS
    out["context2"] = {}
    for prefix in ["", "c", "bcca"]:
        with quiet():
            out["context2"][prefix] = generate(ContextStub(), vocab, prefix=prefix, max_len=10, generator=torch.Generator().manual_seed(2))
    ### END HIDDEN TESTS
    return out


def check(out):
    text, again, short = out["text"], out["again"], out["short"]
    assert_true(isinstance(text, str), f"generate should return a str, got {type(text).__name__}")
    assert_true(text.startswith("ba"), f"the text should start with the prefix 'ba', got {text!r}")
    assert_true(set(text) <= set("abc"), f"the text should contain only vocabulary characters (no special tokens), got {text!r}")
    assert_equal(len(text), 2 + 30, name="len(prefix + generated) when <eos> is never drawn (max_len=30)")
    assert_true(isinstance(short, str), f"generate should return a str, got {type(short).__name__}")
    assert_equal(len(short), 12, name="len(generated) with prefix='' and max_len=12")
    assert_true(text == again, f"the same seeded generator should give the same text, got {text!r} and {again!r}")
    expected = "ab" + _context_continuation("ab", 8)
    assert_true(out["context"] == expected,
                f"with ContextStub (its next character depends on <bos> and every character so far), generate(prefix='ab', "
                f"max_len=8) should give {expected!r}, got {out['context']!r}")
    ### BEGIN HIDDEN TESTS
    for prefix, got in out["context2"].items():
        expected = prefix + _context_continuation(prefix, 10)
        assert_true(got == expected, f"with ContextStub, generate(prefix={prefix!r}, max_len=10) should give {expected!r}, got {got!r}")
    ### END HIDDEN TESTS


grade("test_generate_output", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_generate_no_grad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_true, grade, quiet
from course_lib.text import CharVocab


def run():
    vocab = CharVocab("abc")
    model = BigramStub(bigram_table(vocab, {"<bos>": "a", "a": "b", "b": "c", "c": "a"}, margin=1.0))
    with quiet():
        generate(model, vocab, prefix="a", max_len=5, generator=torch.Generator().manual_seed(0))
    return {"grad_enabled": list(model.grad_enabled)}


def check(out):
    assert_true(len(out["grad_enabled"]) > 0, "generate never called the model")
    assert_true(not any(out["grad_enabled"]), "the model was called with autograd on: use torch.no_grad()")


grade("test_generate_no_grad", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_generate_eval_mode", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_true, grade, quiet
from course_lib.text import CharVocab


def run():
    vocab = CharVocab("abc")
    model = BigramStub(bigram_table(vocab, {"<bos>": "a", "a": "b", "b": "c", "c": "a"}, margin=1.0))
    model.train()
    with quiet():
        generate(model, vocab, prefix="a", max_len=5, generator=torch.Generator().manual_seed(0))
    out = {"training_flags": list(model.training_flags), "training_after": model.training}
    model.eval()
    with quiet():
        generate(model, vocab, prefix="a", max_len=5, generator=torch.Generator().manual_seed(0))
    out["eval_after"] = model.training
    return out


def check(out):
    assert_true(len(out["training_flags"]) > 0, "generate never called the model")
    assert_true(not any(out["training_flags"]), "the model should be in eval mode while generating (model.eval())")
    assert_true(out["training_after"] is True, "generate should put a model that was training back in training mode")
    assert_true(out["eval_after"] is False, "generate should leave a model that was in eval mode in eval mode")


grade("test_generate_eval_mode", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_generate_stops_at_eos", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_true, grade, quiet
from course_lib.text import CharVocab

CASES = [("", 50, "abc"), ("b", 50, "bc"), ("", 2, "ab")]  # (prefix, max_len, expected text)


def run():
    vocab = CharVocab("abc")
    # <bos> -> a -> b -> c -> <eos>, each with probability ~1 (a margin of 50 logits).
    model = BigramStub(bigram_table(vocab, {"<bos>": "a", "a": "b", "b": "c", "c": "<eos>"}, margin=50.0))
    texts = []
    for prefix, max_len, _ in CASES:
        with quiet():
            texts.append(generate(model, vocab, prefix=prefix, max_len=max_len, generator=torch.Generator().manual_seed(0)))
    return {"texts": texts}


def check(out):
    for i, (prefix, max_len, expected) in enumerate(CASES):
        got = out["texts"][i]
        assert_true(got == expected, f"generate(prefix={prefix!r}, max_len={max_len}) should give {expected!r}, got {got!r}")


grade("test_generate_stops_at_eos", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_generate_temperature", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_close, assert_true, grade, quiet
from course_lib.text import CharVocab


def _frequencies(text, chars):
    """The fraction of the characters of ``text`` that are each of ``chars``."""
    return torch.tensor([text.count(c) / max(len(text), 1) for c in chars])
### BEGIN HIDDEN TESTS


LOGITS = [0.0, 1.5, 3.0]  # of a, b, c, whatever the context
TEMPERATURES = [2.0, 1e6]
### END HIDDEN TESTS


def run():
    vocab = CharVocab("abc")
    # Near-greedy: at temperature 1e-3 only the most likely next character is ever drawn.
    peaked = BigramStub(bigram_table(vocab, {"<bos>": "a", "a": "b", "b": "c", "c": "a"}, margin=2.0))
    with quiet():
        out = {"greedy": generate(peaked, vocab, prefix="a", max_len=30, temperature=1e-3, generator=torch.Generator().manual_seed(0))}
    # Sampling, not the argmax: a model with equal logits for a, b and c, at temperature 1.
    uniform = BigramStub(unigram_table(vocab, torch.zeros(3)))
    with quiet():
        out["uniform"] = generate(uniform, vocab, prefix="", max_len=300, temperature=1.0, generator=torch.Generator().manual_seed(1))
    ### BEGIN HIDDEN TESTS
    # Frequencies of a context-free model match softmax(logits / temperature): 1200 draws, a margin of
    # 0.06 (over 4 standard deviations; temperature 1 would be off by 0.1 to 0.2).
    free = BigramStub(unigram_table(vocab, torch.tensor(LOGITS)))
    out["free"] = []
    for temperature in TEMPERATURES:
        generator = torch.Generator().manual_seed(3)
        with quiet():
            out["free"].append([generate(free, vocab, prefix="", max_len=200, temperature=temperature, generator=generator)
                                for _ in range(6)])
    ### END HIDDEN TESTS
    return out


def check(out):
    text = out["greedy"]
    assert_true(text == "a" + "bca" * 10, f"at temperature 1e-3 generation should be (nearly) greedy: expected 'abcabc...', got {text!r}")
    # Each character has probability 1/3; in 300 draws each frequency is within 0.1 of it (over 3.6
    # standard deviations; the seed fixes the draws).
    freqs = _frequencies(out["uniform"], "abc")
    assert_close(freqs, torch.full((3,), 1 / 3), name="frequencies of a, b, c drawn from equal logits (it should sample, not take the argmax)", atol=0.1)
    ### BEGIN HIDDEN TESTS
    for i, temperature in enumerate(TEMPERATURES):
        texts = out["free"][i]
        assert_true(all(isinstance(t, str) for t in texts), "generate should return a str")
        expected = torch.softmax(torch.tensor(LOGITS) / temperature, dim=0)
        assert_close(_frequencies("".join(texts), "abc"), expected, name=f"frequencies of a, b, c at temperature {temperature:g}", atol=0.06)
    ### END HIDDEN TESTS


grade("test_generate_temperature", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# ### Q3: Understanding generation [8 pts]

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q3a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3a** [4 pts] In 3-4 sentences of plain English, describe how the loop in your `generate`
# function works.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q3a", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The sequence starts as `<bos>` followed by the prefix's ids. At each step the
# model reads the whole sequence so far and we keep only the logits at the last position: a score
# for every possible next character. They are divided by the temperature and turned into a
# probability distribution with a softmax, and one character id is **sampled** from it with
# `torch.multinomial` (not the argmax). If it is `<eos>` the loop stops; otherwise the id is
# appended to the sequence (so the next step conditions on it) and to the generated text, for at
# most `max_len` steps; finally the prefix plus the decoded characters is returned.
#
# *Rubric:* 1 pt starts from `<bos>` + prefix; 1 pt model on the sequence, last position's
# logits; 1 pt temperature + softmax + sampling; 1 pt append and repeat, stop at `<eos>` or
# `max_len`.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q3b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3b** [2 pts] `generate` uses the `torch.full` function to start the sequence. Look up the
# documentation for it, and briefly explain how it works. We used it for something similar in the
# left-padding block of `FeedforwardLanguageModel.forward`. Briefly summarize the connection
# between the two calls to this same function.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q3b", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* `torch.full(size, fill_value, dtype=..., device=...)` creates a new tensor of
# the given shape with every element equal to `fill_value`. In `generate` it makes a `(1, 1)`
# tensor holding the `<bos>` id; in the feed-forward model a `(B, W-1)` tensor of `<pad>` ids.
# Both build a constant block of **special token ids** that is concatenated **in front of** the
# real tokens along the time dimension, to give the model a well-defined "start of sequence"
# context where there is no real history (and both need `dtype=torch.long` and the model's device).
#
# *Rubric:* 1 pt what `torch.full` does; 1 pt the connection (special-token context prepended
# before the real tokens).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q3c", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3c** [2 pts] Why do we use `torch.no_grad()` during generation? What advantage does it
# provide?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q3c", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* Generation never calls `backward()`, so we do not need gradients. Under
# `torch.no_grad()` autograd does not record the operations or keep the intermediate activations
# for a backward pass: generation uses much less memory (otherwise a graph would grow over up to
# `max_len` forward passes) and runs faster, and no gradient can leak into training by accident.
# (Dropout is a separate matter, switched off by `model.eval()`.)
#
# *Rubric:* 1 pt no gradients needed / no graph recorded; 1 pt saves memory and time.

# %% [markdown]
# ### Q4: GPU training [6 pts]

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q4a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4a** [3 pts] The code uses `torch.device` and the `.to(device)` pattern throughout. Find where
# the device is determined and where it is used (in this notebook and in the parts of `course_lib`
# it calls). Why is it important
# that the model, input data, and target labels all be on the same device? Why does the code
# determine the device flexibly at runtime rather than hardcoding whether to use GPU or CPU?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q4a", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* `get_device()` in the setup cell picks CUDA if available, then Apple `mps`, then
# the CPU. The training loop moves the model (`model.to(device)`) and every batch's inputs,
# targets, lengths and mask to that device, and `generate` reads the device from
# `next(model.parameters()).device` and creates its input tensors there. A PyTorch operation runs
# on the device where its operands live, and there is no implicit copy between devices: mixing a
# CUDA weight with a CPU input raises "Expected all tensors to be on the same device" (and
# copying every step would be slow anyway). Choosing at runtime lets the same code run unchanged
# on a laptop without a GPU, on Colab, on a Mac and on a cluster GPU node, instead of crashing
# where there is no GPU or silently ignoring one that is there.
#
# *Rubric:* 1 pt where determined and used; 1 pt same device required (error, no implicit
# transfer); 1 pt portability of runtime choice.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q4b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4b** [3 pts] Research and briefly explain (3-4 sentences): What makes GPUs faster than CPUs for
# neural network training? What kinds of operations benefit most from GPU acceleration? What kind
# of operations would not especially benefit?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q4b", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* A GPU has thousands of simple arithmetic cores and very high memory bandwidth,
# built to apply the same operation to many data elements in parallel, while a CPU has a few
# powerful cores optimised for sequential, branchy code. Neural network training is dominated by
# large dense linear algebra: matrix multiplications over a whole batch (embedding, hidden and
# output layers, the softmax over the vocabulary for every position), element-wise activations
# and convolutions, which parallelise almost perfectly. Operations that do not especially benefit
# are inherently sequential or tiny: an RNN's steps over time (each depends on the previous one;
# only the work within a step is parallel), generating one character at a time with batch size 1,
# small tensors where kernel-launch overhead dominates, Python control flow, data loading and
# tokenisation, and CPU-GPU copies.
#
# *Rubric:* 1 pt massive parallelism / bandwidth; 1 pt large matrix/tensor operations benefit;
# 1 pt sequential, small or I/O-bound work does not.

# %% [markdown]
# ---
# ## 4. Running the language model [27 pts]
#
# The runner `course_lib.runners.rnn_lm` plays the role of the handout's `run.py`: it trains a
# character-level language model on **Tiny Shakespeare** (each non-empty line is a sequence; the
# last 10 % of the lines are the dev set), records the train and dev loss and perplexity of every
# epoch, keeps the model with the best dev loss, and every `generate_every` epochs generates text
# from the best model so far. Below, it trains **your** classes with **your** `mask_loss` and
# `generate`.
#
# **Three scales, one code path.** The same cells run at three scales; the environment variable
# `COURSE_SCALE` picks one (`course_lib.device.scale()` reads it), and without it the default
# depends on your machine:
#
# | Scale | How to get it | What it runs | What it is for |
# |---|---|---|---|
# | `fast` | `COURSE_FAST=1` or `COURSE_SCALE=fast` | a few hundred lines, 2 epochs: seconds | checking that the code runs (the course's tests use it; the grader runs the rest of the notebook this way); far too short to learn anything |
# | `laptop` | `COURSE_SCALE=laptop`; the default without a GPU | smaller data and fewer epochs than the handout, on a 2-core CPU | every experiment that Q1-Q3 need: the trends the questions ask about (samples improving over the epochs, dev perplexity levelling off, the effect of your hyperparameter changes) still show |
# | `full` | `COURSE_SCALE=full`; the default with a GPU | the handout's settings (64 epochs) | the handout's numbers |
#
# At the `laptop` scale (the first 6,000 lines, 20 epochs, a sample every 2 epochs), Q1-Q3 together
# took **32 minutes** on a shared 2-core CPU when the course was built (the LSTMs take longest). At the `full`
# scale, an RNN does about 8 epochs in 30 seconds on a dedicated GPU node, so a full run takes
# about 4 minutes (the handout's figure); the feed-forward model (`model_type="ff"`) takes
# **much longer**: reduce the epochs if you try it. Whatever the scale, answer Q1-Q3 with the
# numbers and text of your own runs, and say in your answers which scale you used.
#
# - *In this notebook:* set `COURSE_SCALE` (or `COURSE_FAST=1`) before starting Jupyter, or leave
#   it unset for the default, and run the cells below.
# - *From the command line* (instructors): the same runner trains the course's reference models,
#   which live in the instructor-only package `course_solutions` (not in the student
#   distribution), with one flag per hyperparameter (`--help` lists them):
#
#   ```
#   python -m course_lib.runners.rnn_lm --model_type lstm --hidden_size 256
#   python -m course_lib.runners.rnn_lm --fast          # a few seconds, to check the setup
#   ```
#
#   (`COURSE_SCALE` applies to the command line too.)
# - *On a cluster with SLURM* (e.g. BlueHive; it runs the command line above): `slurm_run.sh`,
#   next to this notebook, is a batch job script. Its `#SBATCH` lines ask for one GPU
#   (`--gres=gpu:1`), CPUs (`-c 9`), memory (`--mem=44g`) and a time limit (`-t 1:00:00`), send
#   the job's standard output (training log and generated text) to `gen.out` and its errors to
#   `gen.err`, and, once you uncomment it, use
#   the GPU nodes reserved for the class (`--reservation=...`). Change the hyperparameters on the
#   `python -u -m course_lib.runners.rnn_lm ...` line at the bottom, submit from the repository
#   root with `sbatch notebooks/rnn_lm/slurm_run.sh`, and watch the results arrive with
#   `tail -f gen.out`.

# %% tags=["experiment"]
import dataclasses

from course_lib.plot import plot_history
from course_lib.runners import rnn_lm
from course_lib.tables import results_table


def make_model(config, vocab):
    """Build *your* model for a runner configuration."""
    if config.model_type == "ff":
        return FeedforwardLanguageModel(len(vocab), config.embedding_size, config.hidden_size,
                                        config.window_size, pad_id=vocab.pad_id, dropout=config.dropout)
    return RNNLanguageModel(len(vocab), config.embedding_size, config.hidden_size, cell=config.model_type,
                            pad_id=vocab.pad_id, dropout=config.dropout)


def train(config):
    """Train one configuration with your model, mask_loss and generate; returns a RunResult.

    The best model stays in memory (result.model) instead of being saved as a checkpoint file.
    Progress bars show the epochs and the batches of the current epoch.
    """
    config = dataclasses.replace(config, save_dir="")
    return rnn_lm.run(config, model_factory=make_model, loss_fn=mask_loss, generate_fn=generate, progress=True)


HYPERPARAMETERS = ["model_type", "hidden_size", "embedding_size", "window_size", "batch_size",
                   "learning_rate", "epochs", "temperature", "l2", "dropout"]


def summary(label, result):
    """One row of the comparison table: the hyperparameters that differ from the defaults, and results."""
    defaults = rnn_lm.Config().resolved()  # resolved: the same fast-mode adjustments as the run
    changed = [f"{name}={getattr(result.config, name)}" for name in HYPERPARAMETERS
               if getattr(result.config, name) != getattr(defaults, name)
               and (name != "window_size" or result.config.model_type == "ff")]
    return {"run": label, "changes from the defaults": ", ".join(changed) or "(none)",
            "parameters": result.num_parameters, "best_epoch": result.best_epoch,
            "best_dev_ppl": result.best_dev_ppl, "seconds": round(result.seconds, 1)}


runs = {}  # label -> RunResult, for the comparison table at the end
rnn_lm.Config()  # the default hyperparameters

# %% [markdown]
# ### Q1: Default parameters [7 pts]
#
# Train with the default arguments. The cell prints the train and dev loss (and perplexity) of
# every epoch and the text generated every `generate_every` epochs (4 in the handout's settings;
# `default_run.config.generate_every` holds your run's), then plots the curves and lists the
# samples.

# %% tags=["experiment"]
runs["Q1"] = default_run = train(rnn_lm.Config())
plot_history(default_run.history)
print(f"best epoch: {default_run.best_epoch}, dev perplexity {default_run.best_dev_ppl:.3f}")
default_run.samples

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_4_q1", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1** [7 pts] Paste below the texts that are generated every 4 epochs (every `generate_every`
# epochs at your scale), as well as the epoch with
# the best dev loss and the dev perplexity from that epoch. In 3-4 sentences, describe any trends
# that you see in the generated text as training progresses. (Note that generated text will not
# necessarily be completely coherent: recall that this is a *character-level* language model.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_4_q1", "locked": false, "points": 7, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the run).* 2 pts: the samples from every 4th epoch, the best epoch and
# its dev perplexity (from the student's own laptop- or full-scale run, not fast mode; instructors
# can compare with the recorded reference run of the same scale, `course_solutions.load_recorded`).
# 5 pts: 3-4 sentences on trends, e.g. early
# samples are nearly random strings of frequent characters and spaces; then word-length chunks,
# common short words ("the", "and", "I"), capitalisation after line starts and punctuation appear;
# later the text looks like Shakespeare's format (speaker names in capitals followed by a colon,
# archaic forms such as "thou"), real words are more frequent and lines end more naturally, but
# the text stays semantically incoherent. Credit an observation about dev perplexity levelling off
# or rising again (overfitting) when supported by the numbers.
#
# *Reference, laptop scale* (`course_solutions/recorded/rnn_lm-laptop.json`, reference models):
# best dev perplexity 6.90 at epoch 20 of 20 (13.5 after epoch 1, 7.7 after epoch 10: falling,
# then levelling off); samples go from "A oo gaaisie, l or 'ec the she an wrave" (epoch 2) to
# "It badled dankely not was condoffI for amush't your tifely" (epoch 8) and speaker names such
# as "CORIOLANUS:" (epoch 20); the share of real words rises from about 0.54 to 0.67.

# %% [markdown]
# ### Q2: Modify hyper-parameters [10 pts]
#
# Re-run training with a different combination of hyperparameters (the fields of
# `rnn_lm.Config`, the same as the command-line flags):
#
# - model type: `model_type="rnn"` (default), `"lstm"` or `"ff"` (feed-forward, with `window_size`)
# - hidden layer size `hidden_size`, embedding size `embedding_size`
# - batch size `batch_size`, learning rate `learning_rate`
# - number of epochs `epochs` (in particular: making it larger)
# - softmax temperature for generation `temperature`
# - L2 regularization coefficient `l2`
# - dropout probability `dropout`
#
# Edit the configuration in the next cell (the values there are only an example), run it, and
# compare with the default run.

# %% tags=["experiment"]
q2_config = rnn_lm.Config(model_type="lstm", hidden_size=256)  # <- your changes
runs["Q2"] = q2_run = train(q2_config)
plot_history(q2_run.history)
print(f"best epoch: {q2_run.best_epoch}, dev perplexity {q2_run.best_dev_ppl:.3f}")
q2_run.samples

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_4_q2", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2** [10 pts] Include your model's generated texts here. In 3-5 sentences, state exactly what
# hyperparameter change(s) you made, and what effects (if any) you see in terms of the dev set
# perplexity and the text that the model generated.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_4_q2", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the run).* 2 pts: generated texts included. 3 pts: the exact changes
# (values, not "bigger"). 3 pts: effect on dev perplexity with numbers, compared with the default
# run (best epoch and value). 2 pts: effect on the generated text, consistent with the numbers.
# Typical observations: an LSTM reaches a lower dev perplexity than the vanilla RNN and produces
# more word-like text; a lower temperature gives more repetitive, conservative text with common
# words, a higher one more random strings (temperature does not change perplexity: it only affects
# sampling); a much larger learning rate makes training unstable; more epochs or larger models can
# overfit (dev perplexity rises while train perplexity keeps falling) unless dropout or L2 is used.
# *Reference, laptop scale:* the notebook's example change (`model_type="lstm", hidden_size=256`)
# reached 6.71 against the RNN's 6.90 (3 % lower, still improving at epoch 20), taking about four
# times as long; at this scale the gap is small, so credit a student who reports it as small.

# %% [markdown]
# ### Q3: Modify hyper-parameters again [10 pts]
#
# Based on your results from Q1-Q2, pick another different set of hyperparameters to try.
# **Before you re-run training**, write down your prediction in the next answer cell.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_4_q3_hypothesis", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3, before running** [3 pts] Which hyperparameters will you change, to which values, and what
# do you predict will happen to the dev perplexity and to the generated text? Why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_4_q3_hypothesis", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Rubric.* 1 pt: a concrete change (which hyperparameters, which values), different from Q2.
# 1 pt: a specific, checkable prediction (direction of dev perplexity and/or a property of the
# text). 1 pt: a reason grounded in Q1-Q2 or in the lectures (e.g. "Q2's LSTM started to overfit
# after epoch 30, so dropout 0.3 should lower the best dev perplexity and delay the best epoch").

# %% tags=["experiment"]
q3_config = rnn_lm.Config(model_type="lstm", hidden_size=256, dropout=0.3, temperature=0.7)  # <- your changes
runs["Q3"] = q3_run = train(q3_config)
plot_history(q3_run.history)
print(f"best epoch: {q3_run.best_epoch}, dev perplexity {q3_run.best_dev_ppl:.3f}")
q3_run.samples

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_4_q3_results", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3, after running** [7 pts] In 3-4 sentences, state what hyperparameter change(s) you made.
# Was the prediction you made supported? Report any trends and why you think your prediction was
# or was not borne out.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_4_q3_results", "locked": false, "points": 7, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the run).* 2 pts: the change made and the results (best epoch, dev
# perplexity, samples). 2 pts: an explicit verdict on the prediction, with the numbers. 3 pts: a
# plausible explanation of why it was or was not borne out (e.g. capacity vs. overfitting,
# optimisation speed, the fact that temperature only affects sampling, variance between runs),
# and the trends seen in the curves or text.
#
# *Reference, laptop scale:* the notebook's example (the Q2 LSTM plus `dropout=0.3`,
# `temperature=0.7`) reached 7.10, worse than the Q2 LSTM's 6.71: in 20 epochs the model never
# overfits, so dropout only slows learning. A student who predicted "dropout lowers the dev
# perplexity" and explains why it did not (no overfitting to prevent at this length; temperature
# changes the samples, not the perplexity) earns the explanation points.

# %% [markdown]
# ### All runs side by side
#
# The comparison table lists every run of this notebook (best dev perplexity in bold).

# %% tags=["experiment"]
results_table([summary(label, result) for label, result in runs.items()], sort_by="best_dev_ppl",
              caption="Runs of this notebook" + (" (fast mode: 2 epochs on a few hundred lines)" if fast_mode() else ""))
