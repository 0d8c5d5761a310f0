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
# # Assignment 2, programming part: translating English into Pig Latin with transformers
#
# In this assignment you build **neural machine translation** (NMT) models from attention up, on
# a toy task: translating English words into Pig Latin, character by character. You implement
# scaled dot-product attention and its causal version, sinusoidal positional encodings, and the
# encoder and decoder of a simplified transformer (Vaswani et al., *Attention Is All You Need*,
# 2017), then train it with two hidden sizes on two data sets and read the loss curves. Then you
# turn the same parts into a **decoder-only** translator, which reads `<SOS> source <EOP>` and
# writes the translation after it, as GPT-style models do: its training sequences, its loss, greedy
# generation, multi-head attention, and a comparison of more heads against a larger hidden size
# for the same number of parameters. (Section 2.4 of the handout, scaling laws, is the notebook
# `scaling_laws`.)
#
# **Learning goals.** After this assignment you can
#
# 1. implement scaled dot-product attention with batched matrix products, for one query or many,
#    and mask it so that no position sees the future;
# 2. say why a transformer needs positional encodings, compute the sinusoidal ones, and compute
#    them once rather than for every batch;
# 3. wire a transformer encoder and decoder: self-attention, cross-attention on the encoder's
#    annotations, residual connections and MLPs;
# 4. read loss curves: the effect of model size and of data set size on fitting and on
#    generalisation;
# 5. train a decoder-only model on `<SOS> source <EOP> target <EOS>` with the loss on the target
#    only, and translate with it greedily;
# 6. build multi-head attention with its output projection $W^O$, count a model's parameters, and
#    compare architectures by parameter efficiency.
#
# **How this notebook is graded** (100 points; the handout's questions, with the points this course
# gives them).
#
# | Section | Points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. Scaled dot-product attention (2.2.2 Q1, Q2) | 14 | 14 | 0 |
# | 2. The transformer encoder and decoder (2.2.2 Q3) | 22 | 14 | 8 |
# | 3. Training the transformer (2.2.2 Q4) | 16 | 0 | 16 |
# | 4. Decoder-only NMT (2.3 Q1-Q3) | 26 | 14 | 12 |
# | 5. Multi-head attention and parameter efficiency (2.3 Q4, Q5) | 22 | 8 | 14 |
# | **Total** | **100** | **50** | **50** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names, signatures and the attributes that `__init__`
#   creates: the tests call them and load weights into them. Each function is followed by its test
#   cells. The checks you see there are *public checks*: they compare values on small examples with
#   what the test computes itself (with `F.scaled_dot_product_attention`, which the tests may use
#   and your attention code may not) or with numbers computed by the course's reference, and catch
#   many mistakes, but passing them is not the grade. When the notebook is graded, hidden tests with
#   other inputs and edge cases are added to the same cells. Each test cell checks only its own
#   function: where a model uses your attention classes, its test swaps in correct attention layers,
#   so a mistake in your attention costs only the attention's points.
# - Some functions are **disabled while the tests run**: `F.scaled_dot_product_attention` and
#   `nn.MultiheadAttention` in the tests of `ScaledDotAttention` and `CausalScaledDotAttention`;
#   building a module (`nn.Module`) and
#   `.parameters()` in the test of `calc_parameters_decoder`; and the course's reference
#   implementations (`course_solutions`) everywhere.
# - **Written answers** go in the markdown cells that say `YOUR ANSWER HERE`, right below each
#   question. Be concise: the handout's limits (two sentences, six sentences) are given with each
#   question.
# - **How the grader runs your notebook.** It re-runs every cell from top to bottom in *fast mode*
#   (`COURSE_FAST=1`), **except the training cells** of Sections 3, 4 and 5 (the cells tagged
#   `experiment`): those are not re-run, and the grader sees the outputs they had when you saved the
#   notebook. So run them yourself before you submit, and copy the numbers a question asks for into
#   your written answers.
# - **Three scales.** The trainings run at the scale that the environment variable `COURSE_SCALE`
#   picks (set it before starting Jupyter): `fast` (`COURSE_FAST=1`: seconds, to check that your
#   code runs; the grader uses it), `laptop` (the default on a machine without a GPU: every run the
#   questions need, with fewer epochs, in about a quarter of an hour on a laptop CPU) and `full` (the
#   default with a GPU: the handout's settings). Section 3 lists what each one runs.
#
# **Shapes.** Comments and docstrings name tensor dimensions with letters: `B` batch, `S` the length
# of the source (the keys and values of an attention), `T` the length of the target (the queries),
# `H` hidden size, `V` vocabulary size (29 characters and special tokens, 30 with `<EOP>`), `L` the
# number of layers.

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

device = setup_notebook("nmt_pig_latin", seed=282)

# %%
import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import pig_latin as pl
from course_lib.device import fast_mode

# %% [markdown]
# ---
# ## 0. The task and the data
#
# Pig Latin is a simple transformation of English. (1) A word that starts with a **consonant**
# moves it to the end and adds "ay": **team** $\rightarrow$ **eamtay**. (2) A word that starts
# with a **vowel** stays as it is and gets "way": **impress** $\rightarrow$ **impressway**.
# (3) Some consonant clusters, such as "sh", move as a block: **shopping** $\rightarrow$
# **oppingshay**. A sentence is translated word by word: *i went shopping* $\rightarrow$ *iway
# entway oppingshay*.
#
# The models below learn these rules *implicitly*, from (English, Pig Latin) word pairs only,
# character by character. The task is almost a copy task: the model must remember every character
# of the input and recall them in a different order, which makes it a clean test of what attention
# can do.
#
# **The data.** Two sets of pairs: a *small* one, 3,198 distinct words of Jane Austen's *Sense and
# Sensibility*, and a *large* one, 22,402 words (the 20,000 most frequent English words of Peter
# Norvig's corpus together with the small set). `course_lib.pig_latin` (imported as `pl`) reads them
# as the handout's loader does (`pl.load_pairs("small")`, sorted), splits them 80 / 20 into training
# and validation pairs with a fixed seed (`pl.split_pairs`), and builds the character vocabulary
# (`pl.build_vocab`): the 26 letters and the dash get the indices 0 to 26, `<SOS>` (start of
# sequence) 27 and `<EOS>` (end of sequence) 28: 29 tokens. The decoder-only model of Section 4 also
# needs `<EOP>` (end of prompt), index 29 (`pl.build_vocab(pairs, eop=True)`: 30 tokens).
#
# **Batches.** To avoid padding, a mini-batch holds words of one source length and one target
# length only (the handout's footnote 1). `pl.batches(pairs, vocab, batch_size)` returns a list of
# `(src, tgt)`: `src` of shape `(B, S)` holds the source characters followed by `<EOS>`, `tgt` of
# shape `(B, T)` the target characters followed by `<EOS>`.

# %%
small_pairs = pl.load_pairs("small")
vocab = pl.build_vocab(small_pairs)
print(f"{len(small_pairs):,} pairs, e.g. {small_pairs[100:104]}")
print(f"vocabulary: {vocab.size} tokens: {''.join(vocab.chars)}, <SOS> = {vocab.sos}, <EOS> = {vocab.eos}")
print(f"'team' -> {vocab.encode('team')} -> {vocab.decode(vocab.encode('team'))!r}")
example_src, example_tgt = pl.batches(small_pairs, vocab, batch_size=3)[40]
print(f"one batch: src {tuple(example_src.shape)}, tgt {tuple(example_tgt.shape)}")
for s, t in zip(example_src, example_tgt):
    print(f"  {s.tolist()} = {vocab.decode(s)!r} -> {t.tolist()} = {vocab.decode(t)!r}")

# %% [markdown]
# ---
# ## 1. Scaled dot-product attention [14 pts]
#
# ### 2.2.2 Q1: `ScaledDotAttention` [7 pts]
#
# An attention layer looks up, for each **query**, a weighted average of **values**, with weights
# given by how well the query matches each **key**. Scaled dot-product attention compares the
# query $Q_t$ and the keys $K_i$ after linear maps $W_q$ and $W_k$, divides by $\sqrt{d}$ ($d$ is
# the hidden size, `hidden_size`), and averages the values after a linear map $W_v$:
#
# $$\begin{aligned}
# \tilde{\alpha}_i^{(t)} &= \frac{(W_q Q_t)^\top (W_k K_i)}{\sqrt{d}}, \qquad
# \alpha_i^{(t)} = \operatorname{softmax}\big(\tilde{\alpha}^{(t)}\big)_i, \qquad
# c_t = \sum_{i=1}^{S} \alpha_i^{(t)}\, W_v V_i .
# \end{aligned}$$
#
# The softmax runs over the **keys** $i$: for every query $t$, the weights
# $\alpha_1^{(t)}, \dots, \alpha_S^{(t)}$ are positive and sum to 1. Dividing by $\sqrt{d}$ keeps the
# scores of order 1 whatever the hidden size (a dot product of $d$ terms of order 1 has a standard
# deviation of order $\sqrt{d}$), so that the softmax does not saturate.
#
# Implement `forward` with batched matrix products: `torch.bmm` (or `@`) between the batched
# queries and the batched keys for the unnormalised weights, and between the weights and the
# values for the context. Useful: `unsqueeze`, `transpose`, `squeeze`, `bmm`. Your forward must work
# with a **2-D** query `(B, H)` (one query per sequence, e.g. one step of a decoder: treat it as
# `(B, 1, H)`) and a **3-D** query `(B, T, H)`. Use the layers `__init__` creates (`self.Q`,
# `self.K`, `self.V`, `self.softmax`, `self.scaling_factor`).
#
# **The layout of the weights** follows the original course code: `attention_weights` has shape
# `(B, S, T)`, one column per query, and each column sums to 1 (the softmax over `dim=1`).

# %% nbgrader={"grade": false, "grade_id": "ScaledDotAttention", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ScaledDotAttention(nn.Module):
    """Scaled dot-product attention with its own query, key and value maps."""

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.Q = nn.Linear(hidden_size, hidden_size)  # W_q (with a bias)
        self.K = nn.Linear(hidden_size, hidden_size)  # W_k
        self.V = nn.Linear(hidden_size, hidden_size)  # W_v
        self.softmax = nn.Softmax(dim=1)  # over the keys: dim 1 of (B, S, T)
        self.scaling_factor = 1.0 / math.sqrt(hidden_size)  # 1 / sqrt(d)

    def forward(self, queries, keys, values):
        """The attention of each query to the keys, and the weighted average of the values.

        Args:
            queries: (B, H) (one query per sequence) or (B, T, H) float tensor.
            keys: (B, S, H) float tensor.
            values: (B, S, H) float tensor.
        Returns:
            context: (B, T, H), the weighted averages of W_v V (T = 1 for a 2-D query).
            attention_weights: (B, S, T), softmax over the keys: attention_weights[b, :, t] sums to 1.
        """
        ### BEGIN SOLUTION
        if queries.dim() == 2:
            queries = queries.unsqueeze(1)  # (B, 1, H)
        q = self.Q(queries)  # (B, T, H)
        k = self.K(keys)  # (B, S, H)
        v = self.V(values)  # (B, S, H)
        unnormalized_attention = torch.bmm(k, q.transpose(1, 2)) * self.scaling_factor  # (B, S, T)
        attention_weights = self.softmax(unnormalized_attention)  # (B, S, T)
        context = torch.bmm(attention_weights.transpose(1, 2), v)  # (B, T, H)
        return context, attention_weights
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ScaledDotAttention", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# 3-D queries (B, T, H): the context and the attention weights, with the test's weights in Q, K and V,
# against F.scaled_dot_product_attention (allowed in the check, not in your code).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

CASES = [(2, 3, 5, 4), (1, 1, 4, 8)]  # (B, T, S, H): T queries, S keys and values
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 6, 2, 16), (2, 4, 4, 6), (1, 5, 1, 4), (2, 7, 9, 32)]  # (B, T, S, H)
### END HIDDEN TESTS


def _weights(H, seed):
    """The test's weights and biases for Q, K and V."""
    g = torch.Generator().manual_seed(seed)
    return {f"{name}.{p}": torch.randn(H, H, generator=g) / H ** 0.5 if p == "weight" else 0.5 * torch.randn(H, generator=g)
            for name in "QKV" for p in ("weight", "bias")}


def _inputs(B, T, S, H, seed):
    """Queries (B, T, H), keys and values (B, S, H)."""
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(B, T, H, generator=g), torch.randn(B, S, H, generator=g), torch.randn(B, S, H, generator=g)


def _attend(case, seed):
    B, T, S, H = case
    queries, keys, values = _inputs(B, T, S, H, seed)
    with quiet():
        attention = ScaledDotAttention(H)
        loaded = attention.load_state_dict(_weights(H, seed), strict=False)
        with torch.no_grad():
            context, attention_weights = attention(queries, keys, values)
    return {"context": context, "weights": attention_weights, "not_loaded": sorted(loaded.unexpected_keys)}


def _expected(case, seed):
    """Context (B, T, H) and weights (B, S, T) from F.scaled_dot_product_attention, in float64."""
    import torch.nn.functional as F

    B, T, S, H = case
    w = {k: v.double() for k, v in _weights(H, seed).items()}
    queries, keys, values = (x.double() for x in _inputs(B, T, S, H, seed))
    q = queries @ w["Q.weight"].T + w["Q.bias"]
    k = keys @ w["K.weight"].T + w["K.bias"]
    v = values @ w["V.weight"].T + w["V.bias"]
    context = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(H)) v
    # With the identity as the values, the same call returns the weights themselves, (B, T, S).
    weights = F.scaled_dot_product_attention(q, k, torch.eye(S, dtype=torch.float64).expand(B, S, S))
    return context, weights.transpose(1, 2)


def _check(got, case, seed):
    B, T, S, H = case
    what = f"ScaledDotAttention({H}) on queries {(B, T, H)} and keys / values {(B, S, H)}"
    assert_true(not got["not_loaded"], f"keep the layers Q, K and V that __init__ creates: the test could not load "
                f"{got['not_loaded']} into your module")
    assert_shape(got["context"], (B, T, H), name=f"{what}: context", dims="B, T, H")
    assert_shape(got["weights"], (B, S, T), name=f"{what}: attention_weights", dims="B, S, T")
    context, weights = _expected(case, seed)
    assert_close(to_tensor(got["weights"]).sum(dim=1), torch.ones(B, T, dtype=torch.float64), atol=1e-5,
                 name=f"{what}: attention_weights.sum(dim=1) (the softmax is over the keys, so each column sums to 1)")
    assert_close(got["weights"], weights, atol=1e-5, name=f"{what}: attention_weights vs softmax(K q / sqrt(H))")
    assert_close(got["context"], context, atol=1e-5, name=f"{what}: context vs F.scaled_dot_product_attention")


def run():
    out = {"public": [_attend(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_attend(case, seed=10 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        _check(out["public"][i], case, seed=i)
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        _check(out["hidden"][i], case, seed=10 + i)
    ### END HIDDEN TESTS


grade("test_ScaledDotAttention", run, check,
      forbid=["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.nmt"])

# %% nbgrader={"grade": true, "grade_id": "test_ScaledDotAttention_2d", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# 2-D queries (B, H): one query per sequence, treated as (B, 1, H).
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

CASES = [(3, 5, 4), (1, 2, 8)]  # (B, S, H)
### BEGIN HIDDEN TESTS
HIDDEN = [(2, 1, 6), (4, 9, 16)]  # (B, S, H)
### END HIDDEN TESTS


def _weights(H, seed):
    g = torch.Generator().manual_seed(seed)
    return {f"{name}.{p}": torch.randn(H, H, generator=g) / H ** 0.5 if p == "weight" else 0.5 * torch.randn(H, generator=g)
            for name in "QKV" for p in ("weight", "bias")}


def _inputs(B, S, H, seed):
    """One query per sequence (B, H), keys and values (B, S, H)."""
    g = torch.Generator().manual_seed(2000 + seed)
    return torch.randn(B, H, generator=g), torch.randn(B, S, H, generator=g), torch.randn(B, S, H, generator=g)


def _attend(case, seed):
    B, S, H = case
    with quiet():
        attention = ScaledDotAttention(H)
        attention.load_state_dict(_weights(H, seed), strict=False)
        with torch.no_grad():
            context, attention_weights = attention(*_inputs(B, S, H, seed))
    return {"context": context, "weights": attention_weights}


def _check(got, case, seed):
    import torch.nn.functional as F

    B, S, H = case
    what = f"ScaledDotAttention({H}) on a 2-D query {(B, H)} and keys / values {(B, S, H)}"
    assert_shape(got["context"], (B, 1, H), name=f"{what}: context", dims="B, T, H")
    assert_shape(got["weights"], (B, S, 1), name=f"{what}: attention_weights", dims="B, S, T")
    w = {k: v.double() for k, v in _weights(H, seed).items()}
    queries, keys, values = (x.double() for x in _inputs(B, S, H, seed))
    q = (queries @ w["Q.weight"].T + w["Q.bias"]).unsqueeze(1)  # (B, 1, H)
    k = keys @ w["K.weight"].T + w["K.bias"]
    v = values @ w["V.weight"].T + w["V.bias"]
    weights = F.scaled_dot_product_attention(q, k, torch.eye(S, dtype=torch.float64).expand(B, S, S))
    assert_close(got["weights"], weights.transpose(1, 2), atol=1e-5, name=f"{what}: attention_weights")
    assert_close(got["context"], F.scaled_dot_product_attention(q, k, v), atol=1e-5, name=f"{what}: context")


def run():
    out = {"public": [_attend(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_attend(case, seed=20 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        _check(out["public"][i], case, seed=i)
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        _check(out["hidden"][i], case, seed=20 + i)
    ### END HIDDEN TESTS


grade("test_ScaledDotAttention_2d", run, check,
      forbid=["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.nmt"])

# %% [markdown]
# ### 2.2.2 Q2: `CausalScaledDotAttention` [7 pts]
#
# A decoder generates the translation one character at a time, so during training, when it reads
# the whole target at once (*teacher forcing*), position $t$ must not see positions after $t$: it
# would learn to copy the next character instead of predicting it. **Causal** attention masks the
# future: before the softmax, the unnormalised weight of every key $i > t$ (a key after its query)
# is set to $-\infty$, so that its weight after the softmax is exactly 0. The queries and the keys
# index the same sequence (self-attention), so query $t$ may attend to the keys $0, \dots, t$.
#
# Implement `forward`: the same computation as `ScaledDotAttention`, plus the mask. Add
# `float("-inf")` to the masked entries, or fill them with it; `torch.tril`, `torch.triu` and
# `masked_fill` are handy. Careful with the layout: the unnormalised weights are `(B, S, T)`, key
# first. Your mask must work for any sequence length.

# %% nbgrader={"grade": false, "grade_id": "CausalScaledDotAttention", "locked": false, "schema_version": 3, "solution": true, "task": false}
class CausalScaledDotAttention(nn.Module):
    """Scaled dot-product attention in which query t sees the keys 0..t only."""

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.neg_inf = float("-inf")
        self.Q = nn.Linear(hidden_size, hidden_size)
        self.K = nn.Linear(hidden_size, hidden_size)
        self.V = nn.Linear(hidden_size, hidden_size)
        self.softmax = nn.Softmax(dim=1)  # over the keys: dim 1 of (B, S, T)
        self.scaling_factor = 1.0 / math.sqrt(hidden_size)

    def forward(self, queries, keys, values):
        """Causal attention of a sequence to itself (S = T: query t is position t).

        Args:
            queries: (B, T, H) float tensor.
            keys: (B, S, H) float tensor, S = T.
            values: (B, S, H) float tensor.
        Returns:
            context: (B, T, H).
            attention_weights: (B, S, T), softmax over the keys, 0 wherever the key comes after the
                query (attention_weights[b, i, t] = 0 for i > t).
        """
        ### BEGIN SOLUTION
        if queries.dim() == 2:
            queries = queries.unsqueeze(1)  # (B, 1, H)
        q = self.Q(queries)  # (B, T, H)
        k = self.K(keys)  # (B, S, H)
        v = self.V(values)  # (B, S, H)
        unnormalized_attention = torch.bmm(k, q.transpose(1, 2)) * self.scaling_factor  # (B, S, T)
        S, T = unnormalized_attention.shape[1:]
        future = torch.ones(S, T, dtype=torch.bool, device=unnormalized_attention.device).tril(diagonal=-1)  # key i > query t
        unnormalized_attention = unnormalized_attention.masked_fill(future, self.neg_inf)
        attention_weights = self.softmax(unnormalized_attention)  # (B, S, T)
        context = torch.bmm(attention_weights.transpose(1, 2), v)  # (B, T, H)
        return context, attention_weights
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_CausalScaledDotAttention", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# The context and the weights, against F.scaled_dot_product_attention(..., is_causal=True) (allowed in
# the check, not in your code).
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

CASES = [(2, 5, 4), (1, 3, 8)]  # (B, T, H); S = T
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 1, 4), (2, 8, 16), (1, 12, 6)]  # (B, T, H)
### END HIDDEN TESTS


def _weights(H, seed):
    g = torch.Generator().manual_seed(seed)
    return {f"{name}.{p}": torch.randn(H, H, generator=g) / H ** 0.5 if p == "weight" else 0.5 * torch.randn(H, generator=g)
            for name in "QKV" for p in ("weight", "bias")}


def _inputs(B, T, H, seed):
    """Queries, keys and values (B, T, H) of one sequence length."""
    g = torch.Generator().manual_seed(3000 + seed)
    return tuple(torch.randn(B, T, H, generator=g) for _ in range(3))


def _attend(case, seed):
    B, T, H = case
    with quiet():
        attention = CausalScaledDotAttention(H)
        loaded = attention.load_state_dict(_weights(H, seed), strict=False)
        with torch.no_grad():
            context, attention_weights = attention(*_inputs(B, T, H, seed))
    return {"context": context, "weights": attention_weights, "not_loaded": sorted(loaded.unexpected_keys)}


def _check(got, case, seed):
    import torch.nn.functional as F

    B, T, H = case
    what = f"CausalScaledDotAttention({H}) on queries, keys and values {(B, T, H)}"
    assert_true(not got["not_loaded"], f"keep the layers Q, K and V that __init__ creates: the test could not load "
                f"{got['not_loaded']} into your module")
    assert_shape(got["context"], (B, T, H), name=f"{what}: context", dims="B, T, H")
    assert_shape(got["weights"], (B, T, T), name=f"{what}: attention_weights", dims="B, S, T")
    w = {k: v.double() for k, v in _weights(H, seed).items()}
    queries, keys, values = (x.double() for x in _inputs(B, T, H, seed))
    q = queries @ w["Q.weight"].T + w["Q.bias"]
    k = keys @ w["K.weight"].T + w["K.bias"]
    v = values @ w["V.weight"].T + w["V.bias"]
    eye = torch.eye(T, dtype=torch.float64).expand(B, T, T)
    weights = F.scaled_dot_product_attention(q, k, eye, is_causal=True).transpose(1, 2)  # (B, S, T)
    assert_close(got["weights"], weights, atol=1e-5,
                 name=f"{what}: attention_weights (0 where the key i comes after the query t, softmax over i <= t)")
    assert_close(got["context"], F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5,
                 name=f"{what}: context vs F.scaled_dot_product_attention(q, k, v, is_causal=True)")


def run():
    out = {"public": [_attend(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_attend(case, seed=30 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        _check(out["public"][i], case, seed=i)
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        _check(out["hidden"][i], case, seed=30 + i)
    ### END HIDDEN TESTS


grade("test_CausalScaledDotAttention", run, check,
      forbid=["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.nmt"])

# %% nbgrader={"grade": true, "grade_id": "test_CausalScaledDotAttention_causal", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The property itself, for every length: changing the positions after t changes nothing at t.
import torch

from course_lib.grading.checks import assert_close, assert_true, grade, quiet, to_tensor

LENGTHS = [1, 2, 5, 9]  # T
### BEGIN HIDDEN TESTS
HIDDEN_LENGTHS = [3, 17, 33]
### END HIDDEN TESTS
H = 4


def _probe(T, seed):
    """Your attention on a sequence x (2, T, H), and on T - 1 copies where the positions after t are changed."""
    g = torch.Generator().manual_seed(4000 + seed)
    x = torch.randn(2, T, H, generator=g)
    with quiet():
        attention = CausalScaledDotAttention(H)
        with torch.no_grad():
            context, attention_weights = attention(x, x, x)
            changed = []
            for t in range(T - 1):
                y = x.clone()
                y[:, t + 1:] = 3 * torch.randn(2, T - t - 1, H, generator=g)  # a different future
                changed.append(attention(y, y, y)[0][:, : t + 1])  # (2, t + 1, H): positions 0..t
    return {"context": context, "weights": attention_weights, "changed": changed}


def _check(got, T):
    assert_true(tuple(got["context"].shape) == (2, T, H) and tuple(got["weights"].shape) == (2, T, T),
                f"CausalScaledDotAttention on x of shape {(2, T, H)} returned a context of shape "
                f"{tuple(got['context'].shape)} and weights of shape {tuple(got['weights'].shape)}, "
                f"expected {(2, T, H)} and {(2, T, T)}")
    future = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)  # (S, T): key i > query t
    assert_close(to_tensor(got["weights"])[:, future], torch.zeros(2, int(future.sum()), dtype=torch.float64),
                 atol=1e-7, name=f"attention_weights[b, i, t] for the keys i > t (the future), T = {T}: they must be 0")
    for t, part in enumerate(got["changed"]):
        assert_close(part, got["context"][:, : t + 1], atol=1e-5,
                     name=f"context[:, :{t + 1}] for T = {T} after changing the positions {t + 1}..{T - 1} "
                     "(the output at positions <= t must not depend on later positions)")


def run():
    out = {"public": [_probe(T, seed=i) for i, T in enumerate(LENGTHS)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_probe(T, seed=40 + i) for i, T in enumerate(HIDDEN_LENGTHS)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, T in zip(out["public"], LENGTHS):
        _check(got, T)
    ### BEGIN HIDDEN TESTS
    for got, T in zip(out["hidden"], HIDDEN_LENGTHS):
        _check(got, T)
    ### END HIDDEN TESTS


grade("test_CausalScaledDotAttention_causal", run, check,
      forbid=["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.nmt"])

# %% [markdown]
# A look at the weights of one causal layer (random weights): each column $t$ is a distribution
# over the keys $0..t$, with zeros below the diagonal.

# %%
with torch.no_grad():
    _, example_weights = CausalScaledDotAttention(8)(*(torch.randn(1, 6, 8),) * 3)
print(example_weights[0].numpy().round(3))

# %% [markdown]
# ---
# ## 2. The transformer encoder and decoder [22 pts]
#
# The encoder reads the source word, `<EOS>` included, in parallel and turns each character into
# an **annotation**, a vector of size $H$ that describes the character in its context. The decoder
# then produces the translation: at every position it attends to the characters it has produced
# so far (causal self-attention) and to the annotations of the source (cross-attention), and it
# outputs unnormalised log-probabilities (*logits*) over the 29 tokens for the next character.
#
# The course's transformer is the handout's simplified one: no layer normalisation, no dropout and
# one head per attention. The **encoder** has three components:
#
# 1. **positional encodings**, added to the character embeddings:
#    $p$-th embedding $=$ embedding of the $p$-th character $+$ positional encoding$(p)$;
# 2. per layer, a **self-attention** (`ScaledDotAttention`, the queries, keys and values all being
#    the current annotations) with a residual connection: $r = a + \operatorname{attention}(a, a, a)$;
# 3. an **MLP** (`Linear` then `ReLU`) with a residual connection: $a' = r + \operatorname{MLP}(r)$.
#
# ### Positional encodings [3 pts]
#
# Attention on its own does not know in which order its keys come: permuting the characters of the
# source permutes the annotations the same way. The position of each character is therefore added
# to its embedding, with the sine and cosine functions of Vaswani et al. (2017): for position
# $\text{pos}$ and feature $2i$ or $2i + 1$ of $d_{\text{model}} = H$ features,
#
# $$\text{PE}(\text{pos}, 2i) = \sin\frac{\text{pos}}{10000^{2i/d_{\text{model}}}}, \qquad
# \text{PE}(\text{pos}, 2i+1) = \cos\frac{\text{pos}}{10000^{2i/d_{\text{model}}}} .$$
#
# Positions count from 0, and a feature pair $(2i, 2i + 1)$ shares one frequency. Implement
# `positional_encoding` (for an even `d_model`), returning a float32 tensor.

# %% nbgrader={"grade": false, "grade_id": "positional_encoding", "locked": false, "schema_version": 3, "solution": true, "task": false}
def positional_encoding(max_len, d_model):
    """The sinusoidal positional encodings of the positions 0 .. max_len - 1.

    Args:
        max_len: the number of positions.
        d_model: H, the number of features (even).
    Returns:
        (max_len, H) float32 tensor, i.e. (T, H) for T = max_len positions: row pos holds
        sin(pos / 10000^(2i / H)) in column 2i and cos(pos / 10000^(2i / H)) in column 2i + 1.
    """
    ### BEGIN SOLUTION
    positions = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # the even features 2i, (H / 2,)
    angles = positions / 10000 ** (two_i / d_model)  # (max_len, H / 2)
    encodings = torch.zeros(max_len, d_model, dtype=torch.float64)
    encodings[:, 0::2] = torch.sin(angles)
    encodings[:, 1::2] = torch.cos(angles)
    return encodings.float()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_positional_encoding", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The values against the closed form (public: the whole table for 6 positions and H = 4, and the last
# row for 50 positions and H = 16; hidden: other sizes, entry by entry).
from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

SIZES = [(6, 4), (50, 16)]  # (max_len, d_model)
# positional_encoding(6, 4), and the row of position 49 of positional_encoding(50, 16), to 6 decimals
EXPECTED_6_4 = [[0.0, 1.0, 0.0, 1.0], [0.841471, 0.540302, 0.01, 0.99995], [0.909297, -0.416147, 0.019999, 0.9998],
                [0.14112, -0.989992, 0.029996, 0.99955], [-0.756802, -0.653644, 0.039989, 0.9992],
                [-0.958924, 0.283662, 0.049979, 0.99875]]
EXPECTED_49_16 = [-0.953753, 0.300593, 0.2112, -0.977443, -0.982453, 0.186512, 0.999774, 0.021279, 0.470626,
                  0.882333, 0.154332, 0.988019, 0.04898, 0.9988, 0.015495, 0.99988]
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 2), (1000, 32), (12, 2), (30, 64), (50, 16)]  # (max_len, d_model)


def _closed_form(max_len, d_model):
    """PE[pos][2i] = sin(pos / 10000^(2i / d)), PE[pos][2i + 1] = cos(the same), as nested lists."""
    import math

    table = [[0.0] * d_model for _ in range(max_len)]
    for pos in range(max_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos][2 * i] = math.sin(angle)
            table[pos][2 * i + 1] = math.cos(angle)
    return table
### END HIDDEN TESTS


def _check_form(got, max_len, d_model):
    name = f"positional_encoding({max_len}, {d_model})"
    assert_shape(got["pe"], (max_len, d_model), name=name, dims="max_len, H")
    assert_true(got["dtype"] == "torch.float32", f"{name} returned a {got['dtype']} tensor, expected float32 "
                "(the dtype of the embeddings it is added to)")
    return name


def _encode(max_len, d_model):
    with quiet():
        pe = positional_encoding(max_len, d_model)
    return {"pe": pe, "dtype": str(getattr(pe, "dtype", type(pe).__name__))}


def run():
    out = {"public": [_encode(*size) for size in SIZES]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_encode(*size) for size in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    name = _check_form(out["public"][0], 6, 4)
    assert_close(out["public"][0]["pe"], EXPECTED_6_4, atol=1e-5, rtol=0,
                 name=f"{name} (sin in the even columns, cos in the odd ones; rows are positions 0..5)")
    name = _check_form(out["public"][1], 50, 16)
    assert_close(to_tensor(out["public"][1]["pe"])[49], EXPECTED_49_16, atol=1e-4, rtol=0,
                 name=f"{name}[49] (the row of position 49)")
    ### BEGIN HIDDEN TESTS
    for got, size in zip(out["hidden"], HIDDEN):
        name = _check_form(got, *size)
        assert_close(got["pe"], _closed_form(*size), atol=1e-4 if size[0] <= 100 else 1e-3, rtol=0,
                     name=f"{name} vs the closed form")
    ### END HIDDEN TESTS


grade("test_positional_encoding", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# The encodings of 64 positions with $H = 32$: each pair of columns is a sine and a cosine of one
# frequency, from one cycle every $2\pi \approx 6$ positions (columns 0 and 1) to cycles far longer
# than any word (the last columns).

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(8, 3.5))
im = ax.imshow(positional_encoding(64, 32).T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set_xlabel("position")
ax.set_ylabel("feature")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ### 2.2.2 Q3: `TransformerEncoder` [6 pts]
#
# The encodings never change, so the handout computes them **once**, when the model is built,
# for every position up to `max_len`, and reuses them in every batch: `__init__` stores
# `positional_encoding(max_len, hidden_size)` as a **buffer** named `positional_encodings`
# (`self.register_buffer(...)`: a buffer is moved with the model by `model.to(device)`, but it is
# not a parameter, so the optimiser does not change it). Implement `forward`: add the first `S` rows
# of these stored encodings to the embeddings (do not compute them again), and run the layers
# (attention with its residual, then the MLP with its residual) with the modules `__init__`
# creates. A transformer encoder has no final hidden state: return `None` in its place.

# %% nbgrader={"grade": false, "grade_id": "TransformerEncoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TransformerEncoder(nn.Module):
    """Embedding + positional encodings, then per layer: self-attention + residual, MLP + residual."""

    def __init__(self, vocab_size, hidden_size, num_layers, max_len=1000):
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.self_attentions = nn.ModuleList([ScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.attention_mlps = nn.ModuleList([nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
                                             for _ in range(num_layers)])
        # The positional encodings of the positions 0 .. max_len - 1, computed once, (max_len, H).
        self.register_buffer("positional_encodings", positional_encoding(max_len, hidden_size), persistent=False)

    def forward(self, inputs):
        """Encode a batch of source words.

        Args:
            inputs: (B, S) long tensor, the source characters (then <EOS>): the encoder's time axis,
                (B, T) with T = S.
        Returns:
            annotations: (B, S, H), the output of the last layer.
            None: a transformer encoder has no final hidden state.
        """
        batch_size, seq_len = inputs.size()
        encoded = self.embedding(inputs)  # (B, S, H)
        ### BEGIN SOLUTION
        annotations = encoded + self.positional_encodings[:seq_len]  # (B, S, H)
        for attention, mlp in zip(self.self_attentions, self.attention_mlps):
            new_annotations, _ = attention(annotations, annotations, annotations)  # (B, S, H)
            residual_annotations = annotations + new_annotations
            annotations = residual_annotations + mlp(residual_annotations)
        return annotations, None
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_TransformerEncoder", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# The annotations, with the test's weights. The test swaps in correct attention layers for yours (so a
# mistake in ScaledDotAttention costs only its own tests), and while your encoder is built and runs,
# positional_encoding returns the test's own table (random values), so a mistake there costs only its test.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

V = 29
CASES = [(2, 3, 8, 2), (1, 6, 4, 1)]  # (B, S, H, L): L layers
# annotations[0, -1, :6] and (annotations * _probe(...)).sum() of each case, from the course's reference
EXPECTED = [([1.824708, 0.903941, 1.222653, 1.507398, 1.23909, 0.587645], -7.50948),
            ([-1.008261, 1.395742, 0.385913, 0.693537], -4.83828)]
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 5, 8, 3), (2, 1, 6, 2), (1, 9, 16, 1), (2, 4, 4, 0)]  # (B, S, H, L)
### END HIDDEN TESTS


def _attention_params(H, seed):
    """Q, K and V weights and biases of the attention layer the test swaps in."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(H, H, generator=g) / H ** 0.5, 0.5 * torch.randn(H, generator=g)) for _ in range(3)]


class _Attention(torch.nn.Module):
    """A correct attention layer (with F.scaled_dot_product_attention: allowed here, not in your attention
    code), swapped in for yours. Returns (context (B, T, H), weights (B, S, T)) as ScaledDotAttention does."""

    def __init__(self, H, causal, seed):
        super().__init__()
        self.Q, self.K, self.V = (torch.nn.Linear(H, H) for _ in range(3))
        with torch.no_grad():
            for layer, (weight, bias) in zip((self.Q, self.K, self.V), _attention_params(H, seed)):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
        self.causal = causal

    def forward(self, queries, keys, values):
        import torch.nn.functional as F

        if queries.dim() == 2:
            queries = queries.unsqueeze(1)
        q, k, v = self.Q(queries), self.K(keys), self.V(values)
        eye = torch.eye(k.size(1), dtype=q.dtype).expand(k.size(0), -1, -1)
        weights = F.scaled_dot_product_attention(q, k, eye, is_causal=self.causal).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal), weights


def _table(max_len, d_model):
    """The test's stand-in for the positional encodings: fixed random values in [-1, 1), (max_len, H)."""
    g = torch.Generator().manual_seed(1234 + d_model)
    return (2 * torch.rand(1024, d_model, generator=g) - 1)[:max_len].clone()


def _weights(H, L, seed):
    """The embedding and the MLPs' weights."""
    g = torch.Generator().manual_seed(seed)
    w = {"embedding.weight": torch.randn(V, H, generator=g)}
    for layer in range(L):
        w[f"attention_mlps.{layer}.0.weight"] = torch.randn(H, H, generator=g) / H ** 0.5
        w[f"attention_mlps.{layer}.0.bias"] = 0.5 * torch.randn(H, generator=g)
    return w


def _tokens(B, S, seed):
    return torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(5000 + seed))


def _probe(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(6000 + seed), dtype=torch.float64)


def _encode(case, seed):
    B, S, H, L = case
    namespace = globals()
    own = namespace.get("positional_encoding")
    namespace["positional_encoding"] = _table
    try:
        with quiet():
            encoder = TransformerEncoder(V, H, L)
            encoder.self_attentions = torch.nn.ModuleList([_Attention(H, False, 100 * seed + i) for i in range(L)])
            loaded = encoder.load_state_dict(_weights(H, L, seed), strict=False)
            with torch.no_grad():
                annotations, hidden = encoder(_tokens(B, S, seed))
    finally:
        namespace["positional_encoding"] = own
    return {"annotations": annotations, "hidden_is_none": hidden is None, "not_loaded": sorted(loaded.unexpected_keys)}


def _check_common(got, case):
    B, S, H, L = case
    what = f"TransformerEncoder(29, {H}, {L}) on inputs of shape {(B, S)}"
    assert_true(not got["not_loaded"], f"keep the modules that __init__ creates (embedding, attention_mlps): the test "
                f"could not load {got['not_loaded']} into your encoder")
    assert_shape(got["annotations"], (B, S, H), name=f"{what}: annotations", dims="B, S, H")
    assert_true(got["hidden_is_none"], f"{what}: the second value returned should be None")
    return what
### BEGIN HIDDEN TESTS


def _reference(case, seed):
    """The encoder in float64: embedding + table[:S], then per layer attention + residual, MLP + residual."""
    import torch.nn.functional as F

    B, S, H, L = case
    w = {k: v.double() for k, v in _weights(H, L, seed).items()}
    x = w["embedding.weight"][_tokens(B, S, seed)] + _table(1000, H).double()[:S]
    for layer in range(L):
        (wq, bq), (wk, bk), (wv, bv) = ((a.double(), b.double()) for a, b in _attention_params(H, 100 * seed + layer))
        r = x + F.scaled_dot_product_attention(x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv)
        x = r + torch.relu(r @ w[f"attention_mlps.{layer}.0.weight"].T + w[f"attention_mlps.{layer}.0.bias"])
    return x
### END HIDDEN TESTS


def run():
    out = {"public": [_encode(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_encode(case, seed=10 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        got = out["public"][i]
        what = _check_common(got, case)
        annotations = to_tensor(got["annotations"])
        assert_close(annotations[0, -1, :6], EXPECTED[i][0], atol=1e-4,
                     name=f"{what}: annotations[0, -1, :6] (the last position of the first word)")
        assert_close((annotations * _probe(annotations.shape, i)).sum(), EXPECTED[i][1], atol=1e-3,
                     name=f"{what}: a weighted sum of all the annotations")
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        got = out["hidden"][i]
        what = _check_common(got, case)
        assert_close(got["annotations"], _reference(case, seed=10 + i), atol=1e-4, name=f"{what}: annotations")
    ### END HIDDEN TESTS


grade("test_TransformerEncoder", run, check, forbid=["course_solutions.nmt"])

# %% nbgrader={"grade": true, "grade_id": "test_TransformerEncoder_precomputed", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# forward uses the encodings computed once in __init__ (the buffer positional_encodings) and never calls
# positional_encoding itself. (While the test runs, positional_encoding is the test's own stand-in.)
import torch

from course_lib.grading.checks import assert_true, grade, quiet

CASES = [(8, 50, (3, 7, 3)), (4, 1000, (1, 12))]  # (H, max_len, the lengths S of three batches)


def _build_and_run(H, max_len, lengths):
    namespace = globals()
    own = namespace.get("positional_encoding")
    calls = []

    def counting(n, d_model):
        calls.append((n, d_model))
        return torch.rand(n, d_model, generator=torch.Generator().manual_seed(n))

    namespace["positional_encoding"] = counting
    try:
        with quiet():
            encoder = TransformerEncoder(29, H, 1, max_len=max_len)
            in_init = list(calls)
            with torch.no_grad():
                for S in lengths:
                    encoder(torch.randint(0, 29, (2, S)))
    finally:
        namespace["positional_encoding"] = own
    return {"in_init": in_init, "in_forward": calls[len(in_init):]}


def run():
    return [_build_and_run(*case) for case in CASES]


def check(out):
    for got, (H, max_len, lengths) in zip(out, CASES):
        what = f"TransformerEncoder(29, {H}, 1, max_len={max_len})"
        assert_true([tuple(c) for c in got["in_init"]] == [(max_len, H)],
                    f"{what}: __init__ should call positional_encoding({max_len}, {H}) once (keep the line that stores "
                    f"the buffer), got the calls {got['in_init']}")
        assert_true(not got["in_forward"], f"{what}: forward on {len(lengths)} batches called positional_encoding "
                    f"{len(got['in_forward'])} times; add the rows of self.positional_encodings, computed once in "
                    "__init__, instead")


grade("test_TransformerEncoder_precomputed", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# ### The decoder [5 pts]
#
# The decoder embeds the target characters it is given (during training: `<SOS>` followed by the
# target, shifted by one position, so that position $t$ predicts character $t$), adds the same
# positional encodings, and runs per layer:
#
# 1. a **causal self-attention** (`CausalScaledDotAttention`) on the current contexts $c$, with a
#    residual connection: $r = c + \operatorname{causal\ attention}(c, c, c)$;
# 2. an **attention to the encoder's annotations** $a$ (cross-attention, `ScaledDotAttention`):
#    the queries come from the decoder, the keys and values are the annotations, again with a
#    residual: $r' = r + \operatorname{attention}(r, a, a)$;
# 3. the **MLP** with its residual: $c' = r' + \operatorname{MLP}(r')$.
#
# A last linear layer (`self.out`) turns the contexts into logits over the vocabulary. Write the
# body of the loop over the layers; the lines before and after it are given (they collect the
# attention weights of each layer, which Section 3 plots).

# %% nbgrader={"grade": false, "grade_id": "TransformerDecoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TransformerDecoder(nn.Module):
    """Per layer: causal self-attention + residual, attention to the annotations + residual, MLP + residual."""

    def __init__(self, vocab_size, hidden_size, num_layers, max_len=1000):
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.self_attentions = nn.ModuleList([CausalScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.encoder_attentions = nn.ModuleList([ScaledDotAttention(hidden_size) for _ in range(num_layers)])
        self.attention_mlps = nn.ModuleList([nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
                                             for _ in range(num_layers)])
        self.out = nn.Linear(hidden_size, vocab_size)
        self.register_buffer("positional_encodings", positional_encoding(max_len, hidden_size), persistent=False)

    def forward(self, inputs, annotations, hidden_init=None):
        """Decode a batch with teacher forcing.

        Args:
            inputs: (B, T) long tensor, the decoder's input characters (<SOS>, then the target shifted).
            annotations: (B, S, H) float tensor, the encoder's output.
            hidden_init: not used by a transformer (kept for the original course code's interface).
        Returns:
            logits: (B, T, V), unnormalised scores of the next character at each position.
            (encoder_attention_weights (L, B, S, T), self_attention_weights (L, B, T, T)): per layer.
        """
        batch_size, seq_len = inputs.size()
        contexts = self.embedding(inputs) + self.positional_encodings[:seq_len]  # (B, T, H)
        encoder_attention_weights_list, self_attention_weights_list = [], []
        for i in range(self.num_layers):
            # Compute the new contexts (B, T, H) of layer i, with self_attention_weights (B, T, T) of
            # self.self_attentions[i] and encoder_attention_weights (B, S, T) of self.encoder_attentions[i].
            ### BEGIN SOLUTION
            new_contexts, self_attention_weights = self.self_attentions[i](contexts, contexts, contexts)
            residual_contexts = contexts + new_contexts  # (B, T, H)
            new_contexts, encoder_attention_weights = self.encoder_attentions[i](residual_contexts, annotations,
                                                                                 annotations)
            residual_contexts = residual_contexts + new_contexts
            contexts = residual_contexts + self.attention_mlps[i](residual_contexts)
            ### END SOLUTION
            encoder_attention_weights_list.append(encoder_attention_weights)
            self_attention_weights_list.append(self_attention_weights)
        logits = self.out(contexts)  # (B, T, V)
        if not encoder_attention_weights_list:  # no layer
            return logits, (contexts.new_zeros(0, batch_size, annotations.size(1), seq_len),
                            contexts.new_zeros(0, batch_size, seq_len, seq_len))
        return logits, (torch.stack(encoder_attention_weights_list), torch.stack(self_attention_weights_list))


# %% nbgrader={"grade": true, "grade_id": "test_TransformerDecoder", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# The logits, with the test's weights and annotations. As for the encoder, the test swaps in correct
# attention layers (causal ones for the self-attention) and its own table for the positional encodings.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

V = 29
CASES = [(2, 4, 3, 8, 2), (1, 2, 5, 4, 1)]  # (B, T, S, H, L): T target positions, S source positions
# logits[0, -1, :6] and (logits * _probe(...)).sum() of each case, from the course's reference
EXPECTED = [([-6.498968, 2.644493, 4.002727, 1.246647, 3.172871, -3.927146], 72.97897),
            ([-1.37081, -1.707863, -0.70615, 0.864214, -2.037008, 0.785547], -22.99584)]
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 5, 2, 8, 3), (2, 1, 4, 6, 2), (1, 7, 7, 16, 1)]  # (B, T, S, H, L)
### END HIDDEN TESTS


def _attention_params(H, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(H, H, generator=g) / H ** 0.5, 0.5 * torch.randn(H, generator=g)) for _ in range(3)]


class _Attention(torch.nn.Module):
    """A correct attention layer (with F.scaled_dot_product_attention: allowed here, not in your attention
    code), swapped in for yours. Returns (context (B, T, H), weights (B, S, T)) as ScaledDotAttention does."""

    def __init__(self, H, causal, seed):
        super().__init__()
        self.Q, self.K, self.V = (torch.nn.Linear(H, H) for _ in range(3))
        with torch.no_grad():
            for layer, (weight, bias) in zip((self.Q, self.K, self.V), _attention_params(H, seed)):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
        self.causal = causal

    def forward(self, queries, keys, values):
        import torch.nn.functional as F

        if queries.dim() == 2:
            queries = queries.unsqueeze(1)
        q, k, v = self.Q(queries), self.K(keys), self.V(values)
        eye = torch.eye(k.size(1), dtype=q.dtype).expand(k.size(0), -1, -1)
        weights = F.scaled_dot_product_attention(q, k, eye, is_causal=self.causal).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal), weights


def _table(max_len, d_model):
    """The test's stand-in for the positional encodings: fixed random values in [-1, 1), (max_len, H)."""
    g = torch.Generator().manual_seed(1234 + d_model)
    return (2 * torch.rand(1024, d_model, generator=g) - 1)[:max_len].clone()


def _weights(H, L, seed):
    """The embedding, the MLPs' and the output layer's weights."""
    g = torch.Generator().manual_seed(seed)
    w = {"embedding.weight": torch.randn(V, H, generator=g)}
    for layer in range(L):
        w[f"attention_mlps.{layer}.0.weight"] = torch.randn(H, H, generator=g) / H ** 0.5
        w[f"attention_mlps.{layer}.0.bias"] = 0.5 * torch.randn(H, generator=g)
    w["out.weight"] = torch.randn(V, H, generator=g) / H ** 0.5
    w["out.bias"] = 0.5 * torch.randn(V, generator=g)
    return w


def _inputs(B, T, S, H, seed):
    """Decoder inputs (B, T) and annotations (B, S, H)."""
    g = torch.Generator().manual_seed(7000 + seed)
    return torch.randint(0, V, (B, T), generator=g), torch.randn(B, S, H, generator=g)


def _probe(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(8000 + seed), dtype=torch.float64)


def _decode(case, seed):
    B, T, S, H, L = case
    namespace = globals()
    own = namespace.get("positional_encoding")
    namespace["positional_encoding"] = _table
    try:
        with quiet():
            decoder = TransformerDecoder(V, H, L)
            decoder.self_attentions = torch.nn.ModuleList([_Attention(H, True, 100 * seed + i) for i in range(L)])
            decoder.encoder_attentions = torch.nn.ModuleList([_Attention(H, False, 100 * seed + 50 + i)
                                                              for i in range(L)])
            loaded = decoder.load_state_dict(_weights(H, L, seed), strict=False)
            with torch.no_grad():
                logits, _ = decoder(*_inputs(B, T, S, H, seed))
    finally:
        namespace["positional_encoding"] = own
    return {"logits": logits, "not_loaded": sorted(loaded.unexpected_keys)}


def _check_common(got, case):
    B, T, S, H, L = case
    what = f"TransformerDecoder(29, {H}, {L}) on inputs {(B, T)} and annotations {(B, S, H)}"
    assert_true(not got["not_loaded"], f"keep the modules that __init__ creates (embedding, attention_mlps, out): "
                f"the test could not load {got['not_loaded']} into your decoder")
    assert_shape(got["logits"], (B, T, V), name=f"{what}: logits", dims="B, T, V")
    return what
### BEGIN HIDDEN TESTS


def _reference(case, seed):
    """The decoder in float64."""
    import torch.nn.functional as F

    B, T, S, H, L = case
    w = {k: v.double() for k, v in _weights(H, L, seed).items()}
    tokens, annotations = _inputs(B, T, S, H, seed)
    a = annotations.double()
    x = w["embedding.weight"][tokens] + _table(1000, H).double()[:T]
    for layer in range(L):
        (wq, bq), (wk, bk), (wv, bv) = ((m.double(), b.double()) for m, b in _attention_params(H, 100 * seed + layer))
        r = x + F.scaled_dot_product_attention(x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv, is_causal=True)
        (wq, bq), (wk, bk), (wv, bv) = ((m.double(), b.double())
                                        for m, b in _attention_params(H, 100 * seed + 50 + layer))
        r = r + F.scaled_dot_product_attention(r @ wq.T + bq, a @ wk.T + bk, a @ wv.T + bv)
        x = r + torch.relu(r @ w[f"attention_mlps.{layer}.0.weight"].T + w[f"attention_mlps.{layer}.0.bias"])
    return x @ w["out.weight"].T + w["out.bias"]
### END HIDDEN TESTS


def run():
    out = {"public": [_decode(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_decode(case, seed=10 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        got = out["public"][i]
        what = _check_common(got, case)
        logits = to_tensor(got["logits"])
        assert_close(logits[0, -1, :6], EXPECTED[i][0], atol=1e-4,
                     name=f"{what}: logits[0, -1, :6] (the last position of the first sequence)")
        assert_close((logits * _probe(logits.shape, i)).sum(), EXPECTED[i][1], atol=1e-3,
                     name=f"{what}: a weighted sum of all the logits")
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        got = out["hidden"][i]
        what = _check_common(got, case)
        assert_close(got["logits"], _reference(case, seed=10 + i), atol=1e-4, name=f"{what}: logits")
    ### END HIDDEN TESTS


grade("test_TransformerDecoder", run, check, forbid=["course_solutions.nmt"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_q3", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **2.2.2 Q3** [8 pts] Why do we need to represent the position of each character with a
# positional encoding? (one or two sentences) What are the advantages of this sinusoidal encoding
# over other ways of encoding positions, such as a one-hot encoding of the position? (one or two
# sentences)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_q3", "locked": false, "points": 8, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* **Why:** attention is permutation-equivariant: each annotation is a weighted
# average whose weights depend only on the contents of the query and the keys, not on where they
# are, so without positional information the model could not tell "team" from "meat" or know which
# character comes first, and for Pig Latin the order is the whole task (which letters are the
# leading consonants, where the word ends). **Sinusoidal rather than one-hot:** the encoding has the
# model's own dimension $H$ whatever the length (a one-hot code needs one dimension per position and
# a maximum length fixed in advance), its values stay bounded in $[-1, 1]$, it is defined for any
# position, including positions longer than those seen in training, and it needs no parameters; and
# because each pair of features is a sine and a cosine of one frequency, the encoding of
# $\text{pos} + k$ is a fixed linear function (a rotation) of that of $\text{pos}$, so relative
# offsets are easy for the attention's linear maps to pick up, and nearby positions get similar
# codes (one-hot codes are all orthogonal, equally far from each other).
#
# *Rubric:* 3 pts why: attention ignores the order of its keys (it is permutation-equivariant), so
# the position must be added to the input; 5 pts advantages, any two
# well explained (2.5 each): fixed size $H$ independent of the length / no growth with length;
# works for any length, extrapolates beyond the training lengths; bounded, deterministic, no
# parameters to learn; relative positions as linear functions (rotations), smooth similarity of
# nearby positions, multiple frequencies. "One-hot is too big" alone earns 1.5 of the 2.5.

# %% [markdown]
# ---
# ## 3. Training the transformer [16 pts]
#
# The runner `course_lib.runners.nmt_pig_latin` trains **your** `TransformerEncoder` and
# `TransformerDecoder` as the handout's notebook does: 3 layers, Adam with a learning rate of
# $5 \cdot 10^{-4}$ multiplied by 0.99 before each epoch, batches of 64 pairs of one length group,
# 100 epochs, on the 80 / 20 split of a data set. The decoder is trained with **teacher forcing**:
# it reads `<SOS>` followed by the target shifted by one position, and at each position it is scored
# (cross-entropy) on the next target character, `<EOS>` included. The loss reported is the mean
# cross-entropy per target character, on the training pairs (averaged during the epoch) and on the
# validation pairs (after it).
#
# After training, each run keeps the weights of its epoch with the lowest validation loss and
# translates with them **greedily**: the encoder reads the word once, then the decoder starts from
# `<SOS>` and appends its most likely next character until it writes `<EOS>` (or 10 characters more
# than the word). Two numbers measure generalisation on the same **held-out words** for every run
# (`pl.held_out_pairs()`: 1,000 English words that are in neither data set, translated by the rule):
# their loss, and the fraction translated exactly right (**exact match**).
#
# **The four runs of 2.2.2 Q4** (`nmt.ENCODER_DECODER_RUNS`): hidden size 16 and 32, each on the small
# and on the large data set.
#
# **Three scales, one code path.** The environment variable `COURSE_SCALE` picks one (set it before
# starting Jupyter); without it the default depends on your machine:
#
# | Scale | How to get it | What it runs | What it is for |
# |---|---|---|---|
# | `fast` | `COURSE_FAST=1` or `COURSE_SCALE=fast` | 256 training pairs, 2 epochs: seconds | checking that your code trains end to end (the grader and the course's tests use it); its numbers mean nothing |
# | `laptop` | `COURSE_SCALE=laptop`; the default without a GPU | the same models, data, splits and batches, 25 epochs instead of 100, at twice the learning rate, multiplied by 0.95 before each epoch (the settings below) | the nine runs of Sections 3 to 5 in about a quarter of an hour of one CPU core; the trends the questions ask about |
# | `full` | `COURSE_SCALE=full`; the default with a GPU | the handout's settings, 100 epochs | the handout's numbers |
#
# Losses of different scales are not comparable. Answer the questions with the largest scale you
# could run, and say which one.
#
# **Logs.** Every run logs each epoch (in `runs/nmt_pig_latin/<scale>/`, or in
# `$COURSE_RUNS_DIR/nmt_pig_latin/<scale>/`; on Colab, point `COURSE_RUNS_DIR` at your Google Drive),
# so running a cell again resumes an interrupted run and reads finished ones back instead of
# training them again, unless you changed your code. In fast mode the runs go to a temporary folder
# and always start afresh.

# %% tags=["experiment"]
import tempfile
from pathlib import Path

from course_lib.runners import nmt_pig_latin as nmt

FAST_LOG_DIR = Path(tempfile.mkdtemp(prefix="nmt_pig_latin-fast-")) if fast_mode() else None
FIGURES = FAST_LOG_DIR or Path(".")  # where the two loss plots are written as PNG files


def train(name, **yours):
    """Train (or resume, or read back) one run of nmt.RUNS with your classes and functions; returns a RunResult."""
    log_dir = FAST_LOG_DIR / name.replace(" ", "_") if FAST_LOG_DIR else None
    return nmt.run(name, log_dir=log_dir, **yours)


pd.DataFrame([{"run": name, **{k: getattr(c, k) for k in ("kind", "dataset", "hidden_size", "num_layers", "num_heads",
                                                           "epochs", "lr", "lr_decay", "batch_size", "scale")}}
              for name, c in ((name, nmt.config_for(name)) for name in nmt.RUNS)]).set_index("run")

# %% [markdown]
# The next cell trains the four encoder-decoders one after the other (a progress bar shows the
# batches of the current epoch, and each finished epoch prints a line with its losses), then draws
# the handout's two plots: the training loss (top) and the validation loss (bottom) against the
# gradient descent iterations, log scale. `save_loss_comparison_by_hidden` compares the hidden
# sizes on each data set; `save_loss_comparison_by_dataset` (the cell after) compares the data sets
# at each hidden size (the large data set has 7 times as many pairs, so the same number of epochs is
# 7 times as many iterations). Each also writes its figure to a PNG file next to the notebook (in fast
# mode, to a temporary folder), for your report.

# %% tags=["experiment"]
results = {}
for name in nmt.ENCODER_DECODER_RUNS:  # or a subset, e.g. ["enc-dec H32 small"]
    results[name] = train(name, encoder_class=TransformerEncoder, decoder_class=TransformerDecoder)
nmt.save_loss_comparison_by_hidden(results, path=FIGURES / "loss_comparison_by_hidden.png");

# %% tags=["experiment"]
nmt.save_loss_comparison_by_dataset(results, path=FIGURES / "loss_comparison_by_dataset.png");

# %% [markdown]
# The lowest validation loss of each run (the handout asks for it), with its epoch, the loss and
# the exact match on the held-out words, the number of parameters and the training time. (The two
# data sets have different validation splits; the held-out words are the same for every run.)

# %% tags=["experiment"]
nmt.results_table(results)

# %% [markdown]
# The handout's sample sentence, translated word by word by each run (the first row is the rule):

# %% tags=["experiment"]
nmt.translations_table(results)

# %% [markdown]
# **What attention looks at.** The cross-attention weights of the last decoder layer of one run,
# while it translates a word (greedily, as above): row $t$ is the step that writes output character
# $t$, column $i$ the source character $i$. A model that has learned the rule reads the source in
# the new order: the letters after the leading consonants first, then the consonants, then "ay".

# %% tags=["experiment"]
def plot_cross_attention(result, word):
    """The last decoder layer's attention to the source while result's model translates word."""
    model, vocab = result.model.eval(), result.vocab
    dev = next(model.parameters()).device
    translation = result.translator(word)
    src = torch.tensor([vocab.encode(word) + [vocab.eos]], device=dev)  # (1, S)
    inputs = torch.tensor([[vocab.sos] + vocab.encode(translation)], device=dev)  # (1, T)
    with torch.no_grad():
        annotations, _ = model.encoder(src)
        _, (encoder_weights, _) = model.decoder(inputs, annotations)
    weights = encoder_weights[-1, 0].T.cpu().numpy()  # (T, S): rows are output steps
    fig, ax = plt.subplots(figsize=(0.45 * len(word) + 2, 0.45 * len(translation) + 2))
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(word) + 1), list(word) + ["<EOS>"])
    ax.set_yticks(range(len(translation) + 1), list(translation) + ["<EOS>"])
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(f"{result.name}: {word} -> {translation}")
    plt.show()


plot_cross_attention(list(results.values())[-1], "shopping")  # the last run trained above

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q4a", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **2.2.2 Q4a** [4 pts] Results. Show the two loss plots of your four runs (above, or the PNG files
# they wrote) and the lowest validation loss of each run (the table above). Say which scale and
# device you used.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q4a", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the runs).* 2 pts: both plots (by hidden size, by data set) from the
# student's own four runs at the laptop or full scale (not fast mode: its numbers mean nothing);
# 1 pt: the lowest validation loss of each of the four runs, matching the table; 1 pt: the scale
# and the device stated.
#
# *Reference, laptop scale* (`course_solutions/recorded/nmt_pig_latin-laptop.json`, reference code,
# 25 epochs): lowest validation loss H16 small 1.407, H32 small 0.915, H16 large 0.457, H32 large
# 0.058, each at the last epoch (25 of 25). The four runs took 0.3 to 1.3 minutes of CPU each (about
# 10 minutes of wall clock on a CPU shared with other work; all nine runs of the notebook: 13.8 CPU
# minutes). At the full scale (100 epochs) the handout's notebook reached about 0.95 for H32 small and
# 0.73 for H32 large: the course's runs go much lower on the large set, so judge the trends and the
# student's own numbers, not closeness to the handout's.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q4b", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **2.2.2 Q4b** [12 pts] Analysis (at most six sentences). What is the effect of increasing the
# model's capacity (hidden size 16 to 32), and of increasing the data set (small to large)? In
# particular, how do they change the loss as a function of the gradient descent iterations, and how
# do they change generalisation (the gap between training and validation loss, the held-out loss
# and exact match)? Are these results what you would expect?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q4b", "locked": false, "points": 12, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* **Hidden size:** with 32 units both the training
# and the validation loss fall faster per iteration and reach lower values than with 16, on either
# data set: the larger model has the capacity to store the characters of the word and the
# attention patterns that move the leading consonants, while the 16-unit model learns slowly and
# stays far higher. **Data set:** on the small set (about 2,560 training words) the training loss
# falls below the validation loss and the gap between them widens, most for H = 32, which can
# memorise more of it, and the loss on new words (held-out) is higher still; on the large set
# (about 17,900 training words, 7 times as many iterations per epoch) the validation loss follows
# the training loss closely and ends far lower, and the held-out loss and exact match are far
# better: more data makes the model learn the rule rather than the words. Even at the same number
# of iterations the large set is ahead, since its batches keep bringing new words where the small
# set repeats its own. This is what one expects: more capacity lowers the loss as long as there is
# enough data to use it, and more data reduces overfitting and improves generalisation, so the best
# run is the larger model on the larger data set; the two effects compound (H32 gains far more from
# the large set than H16, whose capacity limits it).
#
# *Rubric:* 3 pts the effect of the hidden size on the curves (faster decrease, lower loss) with the
# student's numbers; 3 pts the effect of the data set on the curves per iteration and on the
# train / validation gap (overfitting on small); 3 pts generalisation compared with numbers
# (lowest validation loss, held-out loss or exact match); 2 pts whether this matches expectations,
# with the reason (capacity vs data, memorising vs learning the rule); 1 pt the answer is consistent
# with the student's own plots and table and within six sentences. Accept other observations that
# the student's curves show (e.g. H = 16 on the small set barely overfitting), if explained.
#
# *Reference, laptop scale* (25 epochs; training / validation loss at the last, best epoch; held-out
# loss; held-out exact match): H16 small 1.334 / 1.407, 1.581, 0.8 %; H32 small 0.763 / 0.915, 1.173,
# 3.4 %; H16 large 0.456 / 0.457, 0.533, 32.0 %; H32 large 0.029 / 0.058, 0.073, 87.9 %. Per iteration,
# after about 2,000 steps (the small runs' 25 epochs, 6 epochs of the large ones) the validation loss
# is 0.91 (H32 small) against 0.40 (H32 large), and 1.41 against 1.03 for H16. No run's validation
# loss turned back up within the laptop scale's 25 epochs (every best epoch is the last), so on the
# small set overfitting shows as the widening gap (H32 small: 0.15 at the end, against 0.03 for H32
# large) and the much higher held-out loss, not as a rising curve; at the full scale's 100 epochs the
# small-set curves do flatten and turn. The runner's four encoder-decoder checks (`conclusions`) hold:
# the large set beats the small one at both sizes, and 32 beats 16 on both sets (validation and
# held-out loss).

# %% [markdown]
# ---
# ## 4. Decoder-only NMT [26 pts]
#
# A decoder-only model has no encoder: it reads the source and the target as **one sequence**,
# separated by the end-of-prompt token `<EOP>`, and predicts each next token with causal
# self-attention, as a GPT-style language model does:
#
# | position | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 |
# |---|---|---|---|---|---|---|---|---|---|---|---|---|
# | input | `<SOS>` | c | a | t | `<EOP>` | a | t | c | a | y | | |
# | target | c | a | t | `<EOP>` | a | t | c | a | y | `<EOS>` | | |
# | loss? | no | no | no | no | **yes** | **yes** | **yes** | **yes** | **yes** | **yes** | | |
#
# For training, the whole sequence `<SOS> source <EOP> target <EOS>` is fed at once (teacher
# forcing); the inputs are the sequence without its last token and the targets the sequence
# without its first. The model could also learn to predict the English word, but that is not the
# task: the cross-entropy is counted only on the predictions made from `<EOP>` on, i.e. on the
# target characters and the final `<EOS>`.
#
# To **translate**, the model is given `<SOS> word <EOP>`; its prediction at the last position is
# the first character of the translation, which is appended to the input, and so on, until it
# predicts `<EOS>` or the translation reaches a maximum length.
#
# The decoder-only models use the vocabulary with `<EOP>` (30 tokens):

# %%
vocab_eop = pl.build_vocab(small_pairs, eop=True)
print(f"{vocab_eop.size} tokens: <SOS> = {vocab_eop.sos}, <EOS> = {vocab_eop.eos}, <EOP> = {vocab_eop.eop}")

# %% [markdown]
# ### 2.3 Q1: `DecoderOnlyTransformer` [4 pts]
#
# The model is the decoder of Section 2 without the cross-attention: embedding plus positional
# encodings, then per layer a causal self-attention with its residual and an MLP with its residual,
# and the output layer. With one head (`num_heads=1`) its attention layers are your
# `CausalScaledDotAttention`; with more, the `MultiHeadCausalScaledDotAttention` of Section 5.
# Implement `forward`.

# %% nbgrader={"grade": false, "grade_id": "DecoderOnlyTransformer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DecoderOnlyTransformer(nn.Module):
    """A transformer decoder without cross-attention, reading <SOS> source <EOP> target."""

    def __init__(self, vocab_size, hidden_size, num_layers, num_heads=1, max_len=1000):
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.self_attentions = nn.ModuleList([
            CausalScaledDotAttention(hidden_size) if num_heads == 1
            else MultiHeadCausalScaledDotAttention(hidden_size, num_heads)  # Section 5
            for _ in range(num_layers)])
        self.attention_mlps = nn.ModuleList([nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
                                             for _ in range(num_layers)])
        self.out = nn.Linear(hidden_size, vocab_size)
        self.register_buffer("positional_encodings", positional_encoding(max_len, hidden_size), persistent=False)

    def forward(self, inputs):
        """The logits of the next token at every position.

        Args:
            inputs: (B, T) long tensor, e.g. <SOS> source <EOP> target (without its last token).
        Returns:
            logits: (B, T, V); position t depends on inputs[:, :t + 1] only.
        """
        ### BEGIN SOLUTION
        seq_len = inputs.size(1)
        contexts = self.embedding(inputs) + self.positional_encodings[:seq_len]  # (B, T, H)
        for attention, mlp in zip(self.self_attentions, self.attention_mlps):
            new_contexts, _ = attention(contexts, contexts, contexts)
            residual_contexts = contexts + new_contexts
            contexts = residual_contexts + mlp(residual_contexts)
        return self.out(contexts)  # (B, T, V)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_DecoderOnlyTransformer", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# The logits of a one-head model, with the test's weights, correct (causal) attention layers swapped in
# for yours and the test's table in place of the positional encodings.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

V = 30
CASES = [(2, 6, 8, 2), (1, 3, 4, 1)]  # (B, T, H, L)
# logits[0, -1, :6] and (logits * _probe(...)).sum() of each case, from the course's reference
EXPECTED = [([1.934255, 5.679027, 0.630991, 1.036617, 3.231364, 3.437748], -20.58177),
            ([0.188019, -0.866024, 0.755794, 0.627309, -1.97264, 0.745711], 7.46877)]
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 9, 8, 3), (2, 1, 6, 2), (1, 12, 16, 1)]  # (B, T, H, L)
### END HIDDEN TESTS


def _attention_params(H, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(H, H, generator=g) / H ** 0.5, 0.5 * torch.randn(H, generator=g)) for _ in range(3)]


class _Attention(torch.nn.Module):
    """A correct causal attention layer (with F.scaled_dot_product_attention: allowed here, not in your
    attention code), swapped in for yours. Returns (context (B, T, H), weights (B, S, T))."""

    def __init__(self, H, seed):
        super().__init__()
        self.Q, self.K, self.V = (torch.nn.Linear(H, H) for _ in range(3))
        with torch.no_grad():
            for layer, (weight, bias) in zip((self.Q, self.K, self.V), _attention_params(H, seed)):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)

    def forward(self, queries, keys, values):
        import torch.nn.functional as F

        q, k, v = self.Q(queries), self.K(keys), self.V(values)
        eye = torch.eye(k.size(1), dtype=q.dtype).expand(k.size(0), -1, -1)
        weights = F.scaled_dot_product_attention(q, k, eye, is_causal=True).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True), weights


def _table(max_len, d_model):
    """The test's stand-in for the positional encodings: fixed random values in [-1, 1), (max_len, H)."""
    g = torch.Generator().manual_seed(1234 + d_model)
    return (2 * torch.rand(1024, d_model, generator=g) - 1)[:max_len].clone()


def _weights(H, L, seed):
    g = torch.Generator().manual_seed(seed)
    w = {"embedding.weight": torch.randn(V, H, generator=g)}
    for layer in range(L):
        w[f"attention_mlps.{layer}.0.weight"] = torch.randn(H, H, generator=g) / H ** 0.5
        w[f"attention_mlps.{layer}.0.bias"] = 0.5 * torch.randn(H, generator=g)
    w["out.weight"] = torch.randn(V, H, generator=g) / H ** 0.5
    w["out.bias"] = 0.5 * torch.randn(V, generator=g)
    return w


def _tokens(B, T, seed):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(9000 + seed))


def _probe(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(9500 + seed), dtype=torch.float64)


def _forward(case, seed):
    B, T, H, L = case
    namespace = globals()
    own = namespace.get("positional_encoding")
    namespace["positional_encoding"] = _table
    try:
        with quiet():
            model = DecoderOnlyTransformer(V, H, L, 1)
            model.self_attentions = torch.nn.ModuleList([_Attention(H, 100 * seed + i) for i in range(L)])
            loaded = model.load_state_dict(_weights(H, L, seed), strict=False)
            with torch.no_grad():
                logits = model(_tokens(B, T, seed))
    finally:
        namespace["positional_encoding"] = own
    return {"logits": logits, "not_loaded": sorted(loaded.unexpected_keys)}


def _check_common(got, case):
    B, T, H, L = case
    what = f"DecoderOnlyTransformer(30, {H}, {L}, 1) on inputs of shape {(B, T)}"
    assert_true(not got["not_loaded"], f"keep the modules that __init__ creates (embedding, attention_mlps, out): "
                f"the test could not load {got['not_loaded']} into your model")
    assert_shape(got["logits"], (B, T, V), name=f"{what}: logits", dims="B, T, V")
    return what
### BEGIN HIDDEN TESTS


def _reference(case, seed):
    import torch.nn.functional as F

    B, T, H, L = case
    w = {k: v.double() for k, v in _weights(H, L, seed).items()}
    x = w["embedding.weight"][_tokens(B, T, seed)] + _table(1000, H).double()[:T]
    for layer in range(L):
        (wq, bq), (wk, bk), (wv, bv) = ((m.double(), b.double()) for m, b in _attention_params(H, 100 * seed + layer))
        r = x + F.scaled_dot_product_attention(x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv, is_causal=True)
        x = r + torch.relu(r @ w[f"attention_mlps.{layer}.0.weight"].T + w[f"attention_mlps.{layer}.0.bias"])
    return x @ w["out.weight"].T + w["out.bias"]
### END HIDDEN TESTS


def run():
    out = {"public": [_forward(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_forward(case, seed=10 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        got = out["public"][i]
        what = _check_common(got, case)
        logits = to_tensor(got["logits"])
        assert_close(logits[0, -1, :6], EXPECTED[i][0], atol=1e-4,
                     name=f"{what}: logits[0, -1, :6] (the last position of the first sequence)")
        assert_close((logits * _probe(logits.shape, i)).sum(), EXPECTED[i][1], atol=1e-3,
                     name=f"{what}: a weighted sum of all the logits")
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        got = out["hidden"][i]
        what = _check_common(got, case)
        assert_close(got["logits"], _reference(case, seed=10 + i), atol=1e-4, name=f"{what}: logits")
    ### END HIDDEN TESTS


grade("test_DecoderOnlyTransformer", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# ### 2.3 Q2: the training sequences and the loss [6 pts]
#
# `decoder_only_example` turns a batch of `pl.batches` (built with the `<EOP>` vocabulary) into the
# decoder-only model's inputs, targets and loss mask. A row of `src` is a source word's characters
# followed by `<EOS>`, a row of `tgt` the target's characters followed by `<EOS>`; all the rows of a
# batch have the same lengths. Build the sequence `<SOS> source <EOP> target <EOS>` (the source
# **without** its `<EOS>`: `<EOP>` takes its place), then the inputs (the sequence without its last
# token), the targets (the sequence without its first token) and the mask: `True` exactly where the
# target is a target character or the final `<EOS>` (the positions whose input is `<EOP>` or a
# target character). Use `vocab.sos`, `vocab.eop` and `vocab.eos`.
#
# Then `decoder_only_loss`: the mean cross-entropy over the masked positions of the whole batch
# (every masked position counts once, whatever its row).

# %% nbgrader={"grade": false, "grade_id": "decoder_only_example", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decoder_only_example(src, tgt, vocab):
    """The decoder-only training example of a batch.

    Args:
        src: (B, S) long tensor, each row a source word's characters then <EOS> (S = its length + 1).
        tgt: (B, T) long tensor, each row a target word's characters then <EOS> (T = its length + 1).
        vocab: a pl.Vocab built with eop=True (vocab.sos, vocab.eop, vocab.eos).
    Returns:
        inputs: (B, S + T) long tensor, <SOS> source <EOP> target (the sequence without its last token).
        targets: (B, S + T) long tensor, source <EOP> target <EOS> (the sequence without its first token).
        loss_mask: (B, S + T) bool tensor, True on the T positions whose target is a target character
            or the final <EOS>.
    """
    ### BEGIN SOLUTION
    batch_size, src_len = src.shape
    sos = torch.full((batch_size, 1), vocab.sos, dtype=src.dtype, device=src.device)
    eop = torch.full((batch_size, 1), vocab.eop, dtype=src.dtype, device=src.device)
    sequence = torch.cat([sos, src[:, :-1], eop, tgt], dim=1)  # (B, S + T + 1)
    inputs, targets = sequence[:, :-1], sequence[:, 1:]
    loss_mask = torch.zeros(targets.shape, dtype=torch.bool, device=src.device)
    loss_mask[:, src_len:] = True  # from the prediction made at <EOP> on
    return inputs, targets, loss_mask
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decoder_only_example", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# The sequences, token by token, for batches of pl.batches.
import torch

from course_lib import pig_latin as pl
from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet, to_tensor

PAIRS = [("cat", "atcay"), ("dog", "ogday"), ("egg", "eggway"), ("team", "eamtay"), ("air", "airway"),
         ("shopping", "oppingshay"), ("a", "away"), ("be", "ebay")]
### BEGIN HIDDEN TESTS
MORE = [("string", "ingstray"), ("x-ray", "ay-xay"), ("queen", "eenquay"), ("i", "iway"), ("zoo", "oozay"),
        ("rhythm", "ythmrhay"), ("mother-in-law", "othermay-inway-awlay")]
### END HIDDEN TESTS


def _vocab():
    return pl.build_vocab([("abcdefghijklmnopqrstuvwxyz-", "a")], eop=True)


def _expected(src_word, tgt_word, vocab):
    """<SOS> source <EOP> target <EOS> as a list; the inputs, the targets and the mask."""
    sequence = [vocab.sos, *vocab.encode(src_word), vocab.eop, *vocab.encode(tgt_word), vocab.eos]
    mask = [False] * (len(src_word) + 1) + [True] * (len(tgt_word) + 1)
    return sequence[:-1], sequence[1:], mask


def _examples(pairs):
    vocab = _vocab()
    out = []
    for src, tgt in pl.batches(pairs, vocab, batch_size=2):
        with quiet():
            inputs, targets, loss_mask = decoder_only_example(src, tgt, vocab)
        words = [(vocab.decode(s), vocab.decode(t)) for s, t in zip(src, tgt)]
        out.append({"words": words, "inputs": inputs, "targets": targets, "mask": loss_mask,
                    "mask_dtype": str(getattr(loss_mask, "dtype", type(loss_mask).__name__))})
    return out


def _check(got):
    vocab = _vocab()
    names = {vocab.sos: "<SOS>", vocab.eos: "<EOS>", vocab.eop: "<EOP>"}

    def show(ids):
        return " ".join(names.get(int(i), vocab.chars[int(i)] if 0 <= int(i) < len(vocab.chars) else str(int(i)))
                        for i in ids)

    for batch in got:
        expected = [_expected(s, t, vocab) for s, t in batch["words"]]
        B, n = len(expected), len(expected[0][0])
        what = f"decoder_only_example on the batch {batch['words']}"
        for key in ("inputs", "targets", "mask"):
            assert_shape(batch[key], (B, n), name=f"{what}: {key}", dims="B, S + T")
        inputs, targets = to_tensor(batch["inputs"]), to_tensor(batch["targets"])
        for row, (words, (inp, tar, mask)) in enumerate(zip(batch["words"], expected)):
            assert_true(inputs[row].tolist() == inp, f"{what}: the inputs of {words[0]!r} should be {show(inp)}, "
                        f"got {show(inputs[row].tolist())}")
            assert_true(targets[row].tolist() == tar, f"{what}: the targets of {words[0]!r} should be {show(tar)}, "
                        f"got {show(targets[row].tolist())}")
        assert_true(batch["mask_dtype"] == "torch.bool", f"{what}: loss_mask should be a bool tensor, got "
                    f"{batch['mask_dtype']}")
        assert_equal(batch["mask"], [m for _, _, m in expected],
                     name=f"{what}: loss_mask (True where the target is a target character or the final <EOS>)")


def run():
    out = {"public": _examples(PAIRS)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = _examples(MORE + PAIRS[:3])
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["public"])
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"])
    ### END HIDDEN TESTS


grade("test_decoder_only_example", run, check, forbid=["course_solutions.nmt"])

# %% nbgrader={"grade": false, "grade_id": "decoder_only_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decoder_only_loss(logits, targets, loss_mask):
    """The mean cross-entropy over the masked positions of the whole batch.

    Args:
        logits: (B, T, V) float tensor, the model's output.
        targets: (B, T) long tensor.
        loss_mask: (B, T) bool tensor, True where the prediction counts.
    Returns:
        0-dim float tensor (differentiable): the sum of the cross-entropies at the masked positions
        divided by their number.
    """
    ### BEGIN SOLUTION
    return F.cross_entropy(logits[loss_mask], targets[loss_mask])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decoder_only_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The loss on random logits, targets and masks (a different number of masked positions in each row).
import torch

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

CASES = [(2, 5, 7, 0), (3, 4, 30, 1)]  # (B, T, V, seed)
EXPECTED = [5.084966, 4.18203]  # the mean cross-entropy of the masked positions, from the course's reference
### BEGIN HIDDEN TESTS
HIDDEN = [(1, 1, 5, 2), (4, 9, 30, 3), (2, 6, 11, 4)]
### END HIDDEN TESTS


def _case(B, T, V, seed):
    """Logits (B, T, V), targets (B, T) and a mask (B, T) with a different number of True in each row."""
    g = torch.Generator().manual_seed(300 + seed)
    logits = 2 * torch.randn(B, T, V, generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[:, -1] = True  # at least one position per row
    return logits, targets, mask


def _loss(case):
    logits, targets, mask = _case(*case)
    logits.requires_grad_(True)
    with quiet():
        loss = decoder_only_loss(logits, targets, mask)
    return {"loss": loss, "differentiable": bool(getattr(loss, "requires_grad", False))}


def _check(got, case, expected):
    logits, targets, mask = _case(*case)
    what = f"decoder_only_loss on logits of shape {tuple(logits.shape)} with {int(mask.sum())} masked positions"
    assert_close(as_float(got["loss"], name=what), expected, atol=1e-5, name=what)
    assert_true(got["differentiable"], f"{what}: the loss must stay differentiable (return a tensor computed from the "
                "logits, not a Python number)")
### BEGIN HIDDEN TESTS


def _reference(case):
    """The cross-entropy of each position from log_softmax in float64, averaged over the masked ones."""
    logits, targets, mask = _case(*case)
    nll = -torch.log_softmax(logits.double(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return float(nll[mask].sum() / mask.sum())
### END HIDDEN TESTS


def run():
    out = {"public": [_loss(case) for case in CASES]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_loss(case) for case in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    for got, case, expected in zip(out["public"], CASES, EXPECTED):
        _check(got, case, expected)
    ### BEGIN HIDDEN TESTS
    for got, case in zip(out["public"] + out["hidden"], CASES + HIDDEN):
        _check(got, case, _reference(case))
    ### END HIDDEN TESTS


grade("test_decoder_only_loss", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# ### Greedy translation [4 pts]
#
# The handout's `decoder_generate` builds the model's input `<SOS> word <EOP>`. Implement the
# whole greedy translation: build that input (one row, on the model's device), then repeat: run the
# model on the sequence so far, take the most likely token at the **last** position, stop if it is
# `<EOS>`, otherwise append it. Stop also after `max_len` generated characters (by default
# `len(word) + 10`). Return the generated characters as a string (`vocab.decode` turns indices into
# characters). Run the model in eval mode and without gradients (`torch.no_grad()`).

# %% nbgrader={"grade": false, "grade_id": "greedy_translate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def greedy_translate(model, word, vocab, max_len=None):
    """Translate one word greedily with a decoder-only model.

    Args:
        model: a decoder-only model: inputs (B, T) long tensor -> logits (B, T, V).
        word: the English word (a str).
        vocab: the pl.Vocab with <EOP> the model was trained with.
        max_len: the largest number of characters to generate (None: len(word) + 10).
    Returns:
        str: the generated characters, without <EOS>.
    """
    ### BEGIN SOLUTION
    max_len = len(word) + 10 if max_len is None else max_len
    model.eval()
    device = next(model.parameters()).device
    sequence = torch.tensor([[vocab.sos, *vocab.encode(word), vocab.eop]], device=device)  # (1, T)
    generated = []
    with torch.no_grad():
        for _ in range(max_len):
            next_token = int(model(sequence)[0, -1].argmax())
            if next_token == vocab.eos:
                break
            generated.append(next_token)
            sequence = torch.cat([sequence, torch.tensor([[next_token]], device=device)], dim=1)
    return vocab.decode(generated)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_greedy_translate", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# A stand-in model whose prediction depends on the whole sequence it is given (where <SOS> and <EOP>
# are, the word before <EOP>, the tokens generated so far); the expected translations are its greedy ones.
import torch

from course_lib import pig_latin as pl
from course_lib.grading.checks import assert_true, grade, quiet

WORDS = [("cat", 10, True), ("shopping", 3, True), ("a", 20, True), ("team", None, True)]  # (word, max_len, stops)
EXPECTED = ["bhu", "dla", "en", "qlnwmjn"]  # the greedy translations with the stand-in model
### BEGIN HIDDEN TESTS
HIDDEN_WORDS = [("zebra", None, True), ("x", None, False), ("queen", 1, True), ("air", 2, True),
                ("mother-in-law", None, True), ("strength", 30, False), ("be", 5, False)]
### END HIDDEN TESTS


def _vocab():
    return pl.build_vocab([("abcdefghijklmnopqrstuvwxyz-", "a")], eop=True)


def _next_token(sequence, vocab, stops=True):
    """The stand-in's prediction after the token ids `sequence` (a list); it never predicts <EOS> if not stops."""
    if not sequence or sequence[0] != vocab.sos or vocab.eop not in sequence:
        return 0  # '-': what a prompt without <SOS> ... <EOP> gets
    eop = sequence.index(vocab.eop)
    word, generated = sequence[1:eop], sequence[eop + 1:]
    if stops and len(generated) >= len(word) + sum(word) % 4:
        return vocab.eos
    return 1 + (sum(word) + 7 * len(generated) + sequence[-1]) % 26  # a letter


class _StandIn(torch.nn.Module):
    """inputs (B, T) -> logits (B, T, V): at each position, a peak at _next_token of the prefix."""

    def __init__(self, vocab, stops):
        super().__init__()
        self.vocab, self.stops = vocab, stops
        self.weight = torch.nn.Parameter(torch.zeros(1))  # so that next(model.parameters()) works
        # What DecoderOnlyTransformer has that a translation may read (its device, its length limit).
        self.vocab_size, self.max_len = vocab.size, 1000
        self.embedding = torch.nn.Embedding(vocab.size, 1)
        self.register_buffer("positional_encodings", torch.zeros(1000, 1), persistent=False)

    def forward(self, inputs):
        B, T = inputs.shape
        logits = torch.randn(B, T, self.vocab.size, generator=torch.Generator().manual_seed(T))
        for b in range(B):
            row = inputs[b].tolist()
            for t in range(T):
                logits[b, t, _next_token(row[: t + 1], self.vocab, self.stops)] = 10.0
        return logits.to(inputs.device) + 0 * self.weight


### BEGIN HIDDEN TESTS


def _expected(word, max_len, stops, vocab):
    """The greedy translation with the stand-in, token by token."""
    sequence = [vocab.sos, *vocab.encode(word), vocab.eop]
    limit = len(word) + 10 if max_len is None else max_len
    out = []
    while len(out) < limit:
        token = _next_token(sequence, vocab, stops)
        if token == vocab.eos:
            break
        out.append(token)
        sequence.append(token)
    return vocab.decode(out)
### END HIDDEN TESTS


def _translate(words):
    vocab = _vocab()
    out = []
    for word, max_len, stops in words:
        with quiet():
            if max_len is None:
                out.append(greedy_translate(_StandIn(vocab, stops), word, vocab))
            else:
                out.append(greedy_translate(_StandIn(vocab, stops), word, vocab, max_len=max_len))
    return out


def _check(got, words, expected_translations):
    for translation, (word, max_len, stops), expected in zip(got, words, expected_translations):
        call = f"greedy_translate(model, {word!r}, vocab" + ("" if max_len is None else f", max_len={max_len}") + ")"
        assert_true(isinstance(translation, str), f"{call} should return a str, got {type(translation).__name__}")
        assert_true(translation == expected, f"{call} with the test's stand-in model: expected {expected!r}, got "
                    f"{translation!r} (the input <SOS> word <EOP>, the argmax at the last position, stop at <EOS> "
                    "or after max_len characters)")


def run():
    out = {"public": _translate(WORDS)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = _translate(HIDDEN_WORDS)
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["public"], WORDS, EXPECTED)
    ### BEGIN HIDDEN TESTS
    vocab = _vocab()
    _check(out["public"] + out["hidden"], WORDS + HIDDEN_WORDS,
           [_expected(word, max_len, stops, vocab) for word, max_len, stops in WORDS + HIDDEN_WORDS])
    ### END HIDDEN TESTS


grade("test_greedy_translate", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# ### 2.3 Q3: training the decoder-only model
#
# The runner trains your `DecoderOnlyTransformer` with your `decoder_only_example` and
# `decoder_only_loss` (run `decoder H32 1 head`: hidden size 32, 3 layers, one head, on the large data
# set, with the same split, optimiser, epochs and batches as `enc-dec H32 large`, whose loss it
# measures the same way: per target character, `<EOS>` included). Then the table compares it with
# the encoder-decoder of the same hidden size (run in Section 3; if you did not run it, the cell
# trains it), and both translate the sample sentence: the decoder-only model with your
# `greedy_translate`.

# %% tags=["experiment"]
decoder_only_result = train(nmt.DECODER_ONLY_RUN, decoder_only_class=DecoderOnlyTransformer,
                            decoder_only_example=decoder_only_example, decoder_only_loss=decoder_only_loss)
if "enc-dec H32 large" not in results:
    results["enc-dec H32 large"] = train("enc-dec H32 large", encoder_class=TransformerEncoder,
                                         decoder_class=TransformerDecoder)
comparison = {"enc-dec H32 large": results["enc-dec H32 large"], nmt.DECODER_ONLY_RUN: decoder_only_result}
nmt.results_table(comparison)

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(7, 3.5))
for name, r in comparison.items():
    line, = ax.plot(r.history["epoch"], r.history["train_loss"], "--", label=f"{name}: training")
    ax.plot(r.history["epoch"], r.history["val_loss"], color=line.get_color(), label=f"{name}: validation")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("loss per target character")
ax.legend(fontsize=8)
plt.show()
print("your greedy_translate:",
      " ".join(greedy_translate(decoder_only_result.model, w, decoder_only_result.vocab) for w in nmt.SAMPLE_SENTENCE.split()))
nmt.translations_table(comparison)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_4_q3", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **2.3 Q3** [12 pts] What are the pros and cons of the decoder-only approach? How does the quality
# of its translations compare with the encoder-decoder model's (use the table and the translations
# above)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_4_q3", "locked": false, "points": 12, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* **Pros:** one stack of layers and one kind of
# attention: a simpler architecture with fewer parameters for the same hidden size and depth (no
# cross-attention), the same model and training objective for any task that can be written as a
# prompt followed by an answer (a GPT-style language model), and every layer can attend jointly to
# the source and to the translation so far. **Cons:** the source is re-read with causal attention
# only (a source character cannot attend to later source characters, where the encoder sees the
# whole word in both directions), the sequences are longer (source + target), so attention costs
# more per example and the positional encodings must cover both parts, the model must also learn
# where the prompt ends, and the training signal covers only the target half of each sequence; at
# generation time the prompt is re-processed at every step unless keys and values are cached.
# **Quality:** with the same hidden size, layers and training, the decoder-only model is worse than
# the encoder-decoder: a higher validation and held-out loss and fewer words exactly right, and its
# errors on long words are typical of greedy decoding that has lost its place in the source (letters
# repeated in a loop, e.g. "conditioning" becoming "ondionininin...ay"), while short words come out
# right for both. Part of the gap is size: without cross-attention it has about 40 % of the
# encoder-decoder's parameters at the same hidden size; a larger decoder-only model (Section 5)
# closes it.
#
# *Rubric:* 4 pts pros (at least two: simplicity / one stack, fewer parameters, one objective for any
# prompt-answer task, joint attention over source and target); 4 pts cons (at least two: causal
# attention on the source, longer sequences and their cost, loss on only part of the sequence,
# generation cost or the need for a cache); 4 pts quality compared with the student's numbers
# (validation loss, held-out exact match or the sample translations) and a reason consistent with
# them.
#
# *Reference, laptop scale* (`decoder H32 1 head` against `enc-dec H32 large`, same data, split and
# 25 epochs): lowest validation loss 0.150 against 0.058 (2.6 times higher), held-out loss 0.169
# against 0.073, held-out exact match 63.3 % against 87.9 %, with 14,622 parameters against 37,661
# (0.39 times), and 0.8 against 1.3 CPU minutes. The sample sentence: decoder-only "ethay airway
# ondionininininininay isway orkingway", encoder-decoder "ethay airway onditioningcay isway
# orkingway" (the rule: "ethay airway onditioningcay isway orkingway").

# %% [markdown]
# ---
# ## 5. Multi-head attention and parameter efficiency [22 pts]
#
# ### 2.3 Q4: `MultiHeadCausalScaledDotAttention` [5 pts]
#
# Multi-head attention runs several attention heads side by side, each with its own query, key
# and value maps, concatenates their contexts and maps the concatenation back to the hidden size
# with an output projection $W^O$:
#
# $$\operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_h)\, W^O,
# \qquad \text{head}_i = \operatorname{Attention}(Q W_i^Q, K W_i^K, V W_i^V).$$
#
# As in the handout's code, each head here is a whole `CausalScaledDotAttention` of the full hidden
# size $H$ (its own $W_q$, $W_k$, $W_v$ of $H \times H$), so the concatenation has $h H$ features and
# $W^O$ maps them to $H$. (Transformers usually split $H$ among the heads instead, each of size $H/h$,
# which keeps the parameter count fixed; this version adds parameters with every head.) Complete
# `__init__` with $W^O$, an `nn.Linear` (with a bias) named `W_O`, and implement `forward`.

# %% nbgrader={"grade": false, "grade_id": "MultiHeadCausalScaledDotAttention", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MultiHeadCausalScaledDotAttention(nn.Module):
    """num_heads causal heads of the full hidden size, concatenated and projected by W_O."""

    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.heads = nn.ModuleList([CausalScaledDotAttention(hidden_size) for _ in range(num_heads)])
        # W_O: the output projection, from the concatenated heads to the hidden size.
        ### BEGIN SOLUTION
        self.W_O = nn.Linear(num_heads * hidden_size, hidden_size)
        ### END SOLUTION

    def forward(self, queries, keys, values):
        """Causal multi-head attention of a sequence to itself.

        Args:
            queries, keys, values: (B, T, H) float tensors.
        Returns:
            context: (B, T, H), W_O applied to the heads' contexts concatenated along the features.
            attention_weights: (B, num_heads, T, T), the heads' weights stacked (each (B, S, T)).
        """
        ### BEGIN SOLUTION
        contexts, weights = zip(*(head(queries, keys, values) for head in self.heads))
        return self.W_O(torch.cat(contexts, dim=-1)), torch.stack(weights, dim=1)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadCausalScaledDotAttention", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# The context with the test's W_O, and correct causal heads swapped in for yours (so a mistake in your
# CausalScaledDotAttention costs only its own tests), against F.scaled_dot_product_attention.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

CASES = [(2, 5, 4, 2), (1, 3, 8, 3)]  # (B, T, H, num_heads)
### BEGIN HIDDEN TESTS
HIDDEN = [(3, 1, 4, 4), (2, 7, 6, 2), (1, 9, 16, 1)]
### END HIDDEN TESTS


def _head_params(H, seed):
    """Q, K and V weights and biases of one head."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(H, H, generator=g) / H ** 0.5, 0.5 * torch.randn(H, generator=g)) for _ in range(3)]


class _Head(torch.nn.Module):
    """A correct causal head (F.scaled_dot_product_attention), returning (context (B, T, H), weights (B, S, T))."""

    def __init__(self, H, seed):
        super().__init__()
        self.Q, self.K, self.V = (torch.nn.Linear(H, H) for _ in range(3))
        with torch.no_grad():
            for layer, (weight, bias) in zip((self.Q, self.K, self.V), _head_params(H, seed)):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)

    def forward(self, queries, keys, values):
        import torch.nn.functional as F

        q, k, v = self.Q(queries), self.K(keys), self.V(values)
        eye = torch.eye(k.size(1), dtype=q.dtype).expand(k.size(0), -1, -1)
        weights = F.scaled_dot_product_attention(q, k, eye, is_causal=True).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True), weights


def _w_o(H, n, seed):
    g = torch.Generator().manual_seed(500 + seed)
    return {"W_O.weight": torch.randn(H, n * H, generator=g) / (n * H) ** 0.5, "W_O.bias": 0.5 * torch.randn(H, generator=g)}


def _x(B, T, H, seed):
    return torch.randn(B, T, H, generator=torch.Generator().manual_seed(600 + seed))


def _attend(case, seed):
    B, T, H, n = case
    with quiet():
        attention = MultiHeadCausalScaledDotAttention(H, n)
        attention.heads = torch.nn.ModuleList([_Head(H, 10 * seed + i) for i in range(n)])
        w_o = getattr(attention, "W_O", None)
        shape = tuple(w_o.weight.shape) if isinstance(getattr(w_o, "weight", None), torch.Tensor) else None
        if shape != (H, n * H):
            return {"w_o_shape": shape}
        attention.load_state_dict(_w_o(H, n, seed), strict=False)
        x = _x(B, T, H, seed)
        with torch.no_grad():
            context, _ = attention(x, x, x)
    return {"w_o_shape": shape, "context": context}


def _check(got, case, seed):
    import torch.nn.functional as F

    B, T, H, n = case
    what = f"MultiHeadCausalScaledDotAttention({H}, {n}) on x of shape {(B, T, H)}"
    assert_true(got["w_o_shape"] == (H, n * H), f"{what}: W_O.weight has shape {got['w_o_shape']}, expected "
                f"{(H, n * H)}: define W_O in __init__ as nn.Linear(num_heads * hidden_size, hidden_size)")
    assert_shape(got["context"], (B, T, H), name=f"{what}: context", dims="B, T, H")
    x = _x(B, T, H, seed).double()
    heads = []
    for i in range(n):
        (wq, bq), (wk, bk), (wv, bv) = ((m.double(), b.double()) for m, b in _head_params(H, 10 * seed + i))
        heads.append(F.scaled_dot_product_attention(x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv, is_causal=True))
    w = {k: v.double() for k, v in _w_o(H, n, seed).items()}
    expected = torch.cat(heads, dim=-1) @ w["W_O.weight"].T + w["W_O.bias"]  # Concat(head_1, ..., head_h) W_O
    assert_close(got["context"], expected, atol=1e-5, name=f"{what}: context vs Concat(heads) W_O")


def run():
    out = {"public": [_attend(case, seed=i) for i, case in enumerate(CASES)]}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = [_attend(case, seed=10 + i) for i, case in enumerate(HIDDEN)]
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, case in enumerate(CASES):
        _check(out["public"][i], case, seed=i)
    ### BEGIN HIDDEN TESTS
    for i, case in enumerate(HIDDEN):
        _check(out["hidden"][i], case, seed=10 + i)
    ### END HIDDEN TESTS


grade("test_MultiHeadCausalScaledDotAttention", run, check, forbid=["course_solutions.nmt"])

# %% [markdown]
# ### Counting the parameters [3 pts]
#
# To compare models by parameter efficiency, implement `calc_parameters_decoder`: the number of
# learnable parameters of `DecoderOnlyTransformer(vocab_size, hidden_size, num_layers, num_heads)`
# as built above, biases included (the positional encodings are a buffer, not parameters). Derive it
# from the layers `__init__` creates: while the test runs, building a module (any `nn.Module`) and
# calling `.parameters()` are disabled, so a function that builds the model and counts fails the
# test. (The cell after the test compares your formula with the model itself.)

# %% nbgrader={"grade": false, "grade_id": "calc_parameters_decoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
def calc_parameters_decoder(vocab_size, hidden_size, num_layers, num_heads):
    """The number of learnable parameters of DecoderOnlyTransformer(vocab_size, hidden_size, num_layers, num_heads).

    Args:
        vocab_size: V. hidden_size: H. num_layers: L. num_heads: the heads of each attention layer
            (1: a CausalScaledDotAttention; more: a MultiHeadCausalScaledDotAttention with W_O).
    Returns:
        int: the number of parameters, derived from the layers (not counted on a module).
    """
    ### BEGIN SOLUTION
    V, H = vocab_size, hidden_size
    attention = num_heads * 3 * (H * H + H)  # Q, K and V of each head
    if num_heads > 1:
        attention += num_heads * H * H + H  # W_O
    mlp = H * H + H
    return V * H + num_layers * (attention + mlp) + H * V + V  # embedding, layers, output layer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_calc_parameters_decoder", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# While your function runs, building a module (nn.Module and its subclasses) and .parameters() are
# disabled. The check builds the layers of DecoderOnlyTransformer's __init__ with torch.nn and counts them.
from course_lib.grading.checks import as_int, assert_true, grade, quiet

PUBLIC = [(30, 32, 3, 1), (30, 32, 3, 4), (29, 8, 2, 2)]  # (vocab_size, hidden_size, num_layers, num_heads)
### BEGIN HIDDEN TESTS
SIZES = [(30, 64, 3, 1), (30, 128, 3, 1), (30, 32, 3, 2), (5, 1, 1, 1), (7, 3, 0, 3), (30, 16, 6, 8), (100, 10, 4, 5)]
### END HIDDEN TESTS


def _built(V, H, L, n):
    """sum(p.numel()) of the layers DecoderOnlyTransformer(V, H, L, n) creates."""
    import torch

    layers = [torch.nn.Embedding(V, H), torch.nn.Linear(H, V)]  # the embedding and the output layer
    for _ in range(L):
        layers += [torch.nn.Linear(H, H) for _ in range(3 * n)]  # Q, K, V of each head
        if n > 1:
            layers.append(torch.nn.Linear(n * H, H))  # W_O
        layers.append(torch.nn.Linear(H, H))  # the MLP
    return sum(p.numel() for layer in layers for p in layer.parameters())


def run():
    with quiet():
        out = {"public": [calc_parameters_decoder(*size) for size in PUBLIC]}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [calc_parameters_decoder(*size) for size in SIZES]
    ### END HIDDEN TESTS
    return out


def check(out):
    for size, got in zip(PUBLIC, out["public"]):
        got, expected = as_int(got, name=f"calc_parameters_decoder{size}"), _built(*size)
        assert_true(got == expected, f"calc_parameters_decoder{size}: expected {expected:,} (the parameters of "
                    f"DecoderOnlyTransformer{size}), got {got:,}")
    ### BEGIN HIDDEN TESTS
    for size, got in zip(SIZES, out["sizes"]):
        got, expected = as_int(got, name=f"calc_parameters_decoder{size}"), _built(*size)
        assert_true(got == expected, f"calc_parameters_decoder{size}: expected {expected:,}, got {got:,}")
    ### END HIDDEN TESTS


grade("test_calc_parameters_decoder", run, check,
      forbid=["torch.nn.Module", "torch.nn.Module.parameters", "course_solutions.nmt"])

# %%
for size in [(30, 32, 3, 1), (30, 32, 3, 2), (30, 32, 3, 4), (30, 64, 3, 1), (30, 128, 3, 1)]:
    built = sum(p.numel() for p in DecoderOnlyTransformer(*size).parameters())
    print(f"DecoderOnlyTransformer{size}: calc_parameters_decoder {calc_parameters_decoder(*size):>9,}, "
          f"the model {built:>9,}")

# %% [markdown]
# ### 2.3 Q5: more heads or a larger hidden size?
#
# The runner trains five decoder-only models (`nmt.PARAMETER_RUNS`) on the large data set with the
# same settings as in Section 4: hidden size 32 with 1, 2 and 4 heads, and one head with hidden size
# 32, 64 and 128. The plot shows the validation loss per epoch of each (left) and the lowest
# validation loss against the number of parameters (right, log scale): a curve further down and to
# the left is more parameter-efficient. (`decoder H32 1 head` is the model of Section 4: its run is
# read back, not trained again.)

# %% tags=["experiment"]
parameter_results = {}
for name in nmt.PARAMETER_RUNS:
    parameter_results[name] = train(name, decoder_only_class=DecoderOnlyTransformer,
                                    decoder_only_example=decoder_only_example, decoder_only_loss=decoder_only_loss)
nmt.plot_parameter_efficiency(parameter_results);

# %% tags=["experiment"]
pd.DataFrame([{"run": name, "heads": r.config.num_heads, "hidden": r.config.hidden_size,
               "calc_parameters_decoder": calc_parameters_decoder(30, r.config.hidden_size, r.config.num_layers,
                                                                  r.config.num_heads),
               "parameters of the model": r.num_parameters, "lowest validation loss": round(r.best_val_loss, 4),
               "held-out exact match": f"{r.exact_match:.1%}", "minutes": round(r.seconds / 60, 1)}
              for name, r in parameter_results.items()]).set_index("run")

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_5_q5", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **2.3 Q5** [14 pts] Compare increasing the number of attention heads with increasing the hidden
# size. What tends to improve performance more: more attention heads for a fixed hidden size, or a
# larger hidden size with a single head? Which of the two is more parameter-efficient? Include the
# plot and the parameter counts (your `calc_parameters_decoder`) in your answer.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_5_q5", "locked": false, "points": 14, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* In this architecture every head has the full hidden
# size, so each extra head adds $3(H^2 + H)$ parameters per layer plus a wider $W^O$: with $H = 32$
# and 3 layers, 1, 2 and 4 heads have 14,622, 30,366 and 55,518 parameters, while one head with
# $H = 64$ and $128$ has 53,790 and 205,854 (and going from one head to two adds $W^O$ as well).
# **Performance:** both help, but increasing the hidden size lowers the validation loss more: a
# wider model has wider embeddings, MLPs and residual stream, i.e. more capacity everywhere, whereas
# extra heads only add ways of attending while the information each position carries stays
# 32-dimensional. A second head helps a lot (plausibly, one head has to track both where it is in
# the source and what to copy next, and two can split the work), a fourth much less: the returns of
# heads diminish quickly, those of width more slowly. **Parameter efficiency:** compare the models at
# equal parameter counts (4 heads at H = 32 against 1 head at H = 64, both about 54-56k): the larger
# hidden size reaches the
# lower loss, so at a given budget it is the better use of parameters, and the largest model
# (H = 128) is best in absolute terms, at about four times the parameters of H = 64. Per parameter
# *added*, though, the cheapest step can win: going from one head to two often gives the largest
# drop in loss per 1,000 parameters, after which both routes show diminishing returns. (With heads
# that split $H$ instead, extra heads would cost no parameters and the comparison would differ.)
#
# *Rubric:* 3 pts the plot and the parameter counts (from the student's calc_parameters_decoder,
# matching the model); 4 pts which improves performance more, with the student's numbers; 4 pts
# parameter efficiency argued at comparable parameter counts (or per parameter added), with numbers;
# 3 pts an explanation (full-size heads add parameters without widening the representation; hidden
# size widens every layer; what the task needs). Credit a conclusion the student's runs support even
# if it differs from the model answer (e.g. heads help on their runs), when argued from the data.
#
# *Reference, laptop scale* (lowest validation loss, held-out exact match): H32 1 head 0.150, 63.3 %
# (14,622 parameters); 2 heads 0.052, 84.3 % (30,366); 4 heads 0.048, 86.8 % (55,518); H64 1 head
# 0.043, 87.4 % (53,790); H128 1 head 0.026, 93.8 % (205,854). Drop in validation loss per 1,000
# parameters added to the one-head H32 model: 2 heads 0.0062, 4 heads 0.0025, H64 0.0027, H128 0.0006.
# So on this run the hidden size improves performance more (the best model; and at matched size H64
# reaches 0.89 times the loss of 4 heads: the runner's check "hidden size beats heads at matched size"
# holds), while the single step to 2 heads is the most efficient per parameter added. Either
# conclusion on efficiency earns its points when argued from the student's numbers with the measure
# stated (at equal budgets, or per parameter added).
