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
# # Assignment 2: LSTM and GPT language models on WikiText-2, built from the attention up
#
# In this assignment you do **sequential language modelling** on WikiText-2: a model reads a
# sequence of tokens and, at every position, predicts the next one, each prediction based on all
# the previous tokens. You implement an **LSTM** language model with PyTorch's building blocks
# (Problem 1), then the pieces of a **Transformer** in the style of OpenAI's GPT-1: layer
# normalization and causal multi-head scaled dot-product attention, from primitive tensor
# operations (Problem 2). Finally you train 12 configurations of both models with different
# optimizers and depths, and compare them with learning curves, a results table, memory and
# speed (Problem 3).
#
# **Learning goals.** After this assignment you can
#
# 1. build an LSTM language model from `nn.Embedding`, `nn.LSTM` and a classifier tied to the
#    embedding, return log-probabilities, and write the masked per-sequence negative
#    log-likelihood;
# 2. implement layer normalization from primitives, with the biased variance;
# 3. implement causal multi-head scaled dot-product attention: split and merge heads, the masked
#    softmax, the attention itself and its projections, and count its parameters;
# 4. assemble a GPT-1-style decoder (token and positional embeddings, Transformer blocks, a tied
#    classifier);
# 5. train language models, and compare architectures, optimizers and depths by their learning
#    curves against epochs and wall-clock time, their memory footprint and their overfitting.
#
# **How this notebook is graded** (61 points, the handout's).
#
# | Problem | Handout points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. Implementing an LSTM | 9 | 9 | 0 |
# | 2. Implementing a GPT (LayerNorm 5, attention 17, GPT forward pass 5) | 27 | 27 | 0 |
# | 3. Training language models and model comparison | 25 | 0 | 25 |
# | **Total** | **61** | **36** | **25** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names, signatures and the attributes created in
#   `__init__`: the tests call them and load weights into them. Each function is followed by its
#   test cells. As in the handout, the visible checks only test that your outputs have the right
#   **shapes** (and one or two properties the handout states); more (hidden) checks of the
#   **values** are added when the notebook is graded. A mistake in one function costs only that
#   function's points: where a method uses another one (the attention's `forward` uses your
#   `split_heads`, ...), the test says so, and the hidden checks accept a result that is right
#   given your own version of the other method.
# - Some functions are **disabled while the tests run**, as in the handout: `nn.LayerNorm` (and
#   `F.layer_norm`) in the LayerNorm test, `nn.MultiheadAttention` and
#   `F.scaled_dot_product_attention` in the attention tests, and the course's reference
#   implementations (`course_solutions.layers`) everywhere. Outside the tests you may use them to
#   check your work (this notebook does, below each part).
# - **Written answers** (Problem 3) go in the markdown cells that say `YOUR ANSWER HERE`, right
#   below each question, with your plots and tables.
# - When grading, the notebook is re-run from top to bottom in *fast mode* (`COURSE_FAST=1`) and
#   the training cells (Problem 3) are not re-run: they keep the outputs you left in the notebook.
#
# **Shapes.** Comments and docstrings name tensor dimensions with letters: `B` batch, `T` time
# (sequence length, 256 here), `E` embedding size (the model width; `E = H * D` in the GPT),
# `V` vocabulary size, `H` number of attention heads, `D` head size. (In this notebook `H` is the
# number of heads; the LSTM's hidden size is written `hidden_size`.)
#
# **The data differ from the handout's.** The handout uses WikiText-2 pre-tokenized with OpenAI
# GPT-1's byte-pair vocabulary (40,478 subwords) and GPT-1's *pretrained, frozen* token
# embeddings. Neither can be obtained offline, so this notebook uses the **word-level WikiText-2**
# of the course's data registry (the files of PyTorch's `word_language_model` example: 33,278
# distinct words, rare ones already replaced by `<unk>`, plus `<pad>` = id 0, so
# `V = 33,279`), and **learned embeddings** (initialised like GPT-1's, N(0, 0.02)) that stay
# **tied** to the classifier as in the handout. Everything else follows the handout: sequences of
# 256 tokens, zero-padded, the same models, configurations and questions. Two consequences:
# perplexities here are *per word*, over a different vocabulary, so they are **not directly
# comparable** with the handout's (or its sample reports') perplexities; and the embedding matrix
# (`V x E` = 25.6 million numbers at `E = 768`) is now trained, which makes each run slower and
# more prone to overfitting than with frozen embeddings.

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

device = setup_notebook("gpt_attention", seed=282)

# %%
import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.device import fast_mode

# %% [markdown]
# ---
# ## The data: WikiText-2 as fixed-length sequences
#
# `course_lib.wikitext.Wikitext2` plays the role of the handout's `utils/wikitext2.py`: a
# `torch.utils.data.Dataset` that reads a split of WikiText-2 and cuts it into sequences of
# length 256. Each sample is a dictionary with three tensors of shape `(256,)`:
#
# - `source`: the input sequence (`torch.LongTensor` of token ids);
# - `target`: the sequence to predict, which is `source` shifted one position to the left;
# - `mask`: 1 where `target` is a real token, 0 where it is zero-padding (`torch.FloatTensor`).
#
# Shorter sequences are padded with zeros (id 0 is `<pad>`, never a real token). A
# `torch.utils.data.DataLoader` stacks samples into a dictionary of `(B, 256)` tensors. Below,
# the handout's table for the first heading of the validation split (cut at its end of line,
# `break_mode="lines"`; the training runs use the default, one continuous stream cut into windows).

# %%
from course_lib.wikitext import Wikitext2

example_data = Wikitext2(split="valid", break_mode="lines", max_tokens=2000)  # the first 2,000 tokens only
example = example_data[0]
shown = 8
pd.DataFrame(
    {
        "Text": example_data.vocab.decode(example["source"][:shown], strip_pad=False).split(),
        "source": example["source"][:shown].tolist(),
        "target": example["target"][:shown].tolist(),
        "mask": example["mask"][:shown].tolist(),
    }
).T.rename_axis(columns="position")

# %%
batch = next(iter(torch.utils.data.DataLoader(example_data, batch_size=4)))
print(example_data)
print({key: (tuple(value.shape), value.dtype) for key, value in batch.items()})  # (B, T) each
print(f"vocabulary: {len(example_data.vocab):,} ids (33,278 words + <pad>), e.g. {example_data.vocab.itos[:6]}")

# %% [markdown]
# **Embeddings and parameter sharing.** In both models the embedding layer, a `(V, E)` matrix
# (`V = N + 1` to account for the padding id), is among the layers with the most parameters, and
# the classifier that predicts the next word has a weight of the same size. As in OpenAI's GPT,
# the classifier's weight and the embedding matrix are **shared** (tied): one `nn.Parameter`,
# used twice. (The handout also froze pretrained GPT-1 embeddings; here they are learned, see
# the note at the top.)

# %% [markdown]
# ---
# ## Problem 1: Implementing an LSTM [9 pts]
#
# The model (`LSTM` below) has three parts, created for you in `__init__`:
#
# - `self.embedding`, an `nn.Embedding` that maps token ids `(B, T)` to embeddings `(B, T, E)`;
# - `self.lstm`, an `nn.LSTM` (batch first) that runs over the sequence of embeddings and returns
#   its outputs `(B, T, hidden_size)` and its final state `(h, c)`;
# - `self.classifier`, a 2-layer MLP: `Linear(hidden_size, E)`, ReLU, then `Linear(E, V)` without
#   bias, whose weight *is* the embedding matrix.
#
# 1. [5 pts] Complete `forward()`. It must return the **log-probabilities** (not the logits) of
#    the next word at every position, and the final hidden state of the LSTM.
# 2. [4 pts] Complete `loss()`, the mean negative log-likelihood of the sequences of the
#    mini-batch: for one sequence $w_{1:T+1}$ with $T$ real target tokens,
#
# $$\mathcal{L}(\boldsymbol{\theta}; \boldsymbol{w}_{1:T+1}) = -\frac{1}{T} \sum_{t=1}^{T} \sum_{i=0}^{N} \log p(\widetilde{w}_{t+1} = i \mid \boldsymbol{w}_{1:t}; \boldsymbol{\theta}) \mathbf{1}(i = w_{t+1}),$$
#
#    where $\widetilde{w}$ are the model's predictions and $\mathbf{1}(i = w_{t+1})$ is 1 if
#    $i = w_{t+1}$ and 0 otherwise; then the mean of $\mathcal{L}$ over the sequences of the
#    batch. Here $T$ (the number of real tokens) may be smaller than 256 because the sequence
#    may be zero-padded: use `mask`. The loss takes the log-probabilities (what `forward`
#    returns) as input.

# %% nbgrader={"grade": false, "grade_id": "LSTM", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LSTM(nn.Module):
    """LSTM language model: token ids (B, T) -> next-token log-probabilities (B, T, V).

    embedding (V x E, id 0 = padding) -> nn.LSTM (num_layers layers, E -> hidden_size) ->
    classifier = Linear(hidden_size, E), ReLU, Linear(E, V, bias=False) whose weight is the
    embedding matrix (tied, as in GPT-1).
    """

    def __init__(self, vocabulary_size=33_279, embedding_size=768, hidden_size=512, num_layers=1,
                 learn_embeddings=True, _embedding_weight=None):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.learn_embeddings = learn_embeddings

        # (B, T) -> (B, T, E); the weight is (V, E)
        self.embedding = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0, _weight=_embedding_weight)
        if _embedding_weight is None:  # GPT-1's initialisation; the <pad> row stays zero
            with torch.no_grad():
                self.embedding.weight.normal_(0.0, 0.02)
                self.embedding.weight[0].zero_()
        # (B, T, E) -> (B, T, hidden_size), and the final state (h, c)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=num_layers, batch_first=True)
        # (B, T, hidden_size) -> (B, T, V) logits
        self.classifier = nn.Sequential(
            nn.Linear(hidden_size, embedding_size),
            nn.ReLU(),
            nn.Linear(embedding_size, vocabulary_size, bias=False),
        )
        # Tying classifier and embedding weights (similar to GPT-1): one Parameter, used twice.
        self.classifier[2].weight = self.embedding.weight
        # The handout froze the (pretrained) embeddings; here they are learned by default.
        self.embedding.requires_grad_(learn_embeddings)

    def forward(self, inputs, hidden_states):
        """Log-probabilities of the next token at every position, and the final LSTM state.

        Args:
            inputs: (B, T) long tensor of token ids.
            hidden_states: the initial state, a tuple (h, c) of two tensors of shape
                (num_layers, B, hidden_size) (self.initial_states(B) gives zeros).
        Returns:
            log_probas: (B, T, V), log_probas[b, t, i] = log p(w_{t+1} = i | w_1 .. w_t):
                log-probabilities (each row's exp sums to 1), not logits.
            hidden_states: the final state (h, c) of self.lstm, each (num_layers, B, hidden_size).

        Steps and shapes:
            embed the inputs                                  (B, T, E)
            self.lstm, starting from hidden_states            (B, T, hidden_size), final (h, c)
            self.classifier                                   (B, T, V) logits
            log-softmax over the vocabulary                   (B, T, V)
        """
        ### BEGIN SOLUTION
        embedded = self.embedding(inputs)  # (B, T, E)
        outputs, hidden_states = self.lstm(embedded, hidden_states)  # (B, T, hidden_size)
        logits = self.classifier(outputs)  # (B, T, V)
        return F.log_softmax(logits, dim=-1), hidden_states
        ### END SOLUTION

    def loss(self, log_probas, targets, mask):
        """The mean negative log-likelihood: per sequence over its real tokens, then over the batch.

        Args:
            log_probas: (B, T, V) float tensor of log-probabilities (what forward returns).
            targets: (B, T) long tensor, the next tokens (0 at padded positions).
            mask: (B, T) float tensor, 1.0 where targets is a real token, 0.0 at padding.
        Returns:
            A 0-dim tensor: (1/B) * sum_b L_b, where L_b = -(1/T_b) * sum_t mask[b, t] *
            log_probas[b, t, targets[b, t]] and T_b = mask[b].sum(), the number of real tokens
            of sequence b. (Not the mean over all the real tokens of the batch: a short sequence
            counts as much as a long one.)
        """
        ### BEGIN SOLUTION
        nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
        mask = mask.to(nll.dtype)  # (B, T)
        per_sequence = (nll * mask).sum(dim=1) / mask.sum(dim=1)  # (B,)
        return per_sequence.mean()  # 0-dim
        ### END SOLUTION

    def initial_states(self, batch_size, device=None):
        """The initial state (h_0, c_0): zeros, constants rather than learned parameters.

        Each is a tensor of shape (num_layers, B, hidden_size) with B = batch_size, e.g.
        (1, B, 512) for the default single layer, on device (by default the model's).
        """
        if device is None:
            device = next(self.parameters()).device
        shape = (self.num_layers, batch_size, self.hidden_size)
        h_0 = torch.zeros(shape, dtype=torch.float, device=device)
        c_0 = torch.zeros(shape, dtype=torch.float, device=device)
        return (h_0, c_0)


# %% nbgrader={"grade": true, "grade_id": "test_LSTM_forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Problem 1, question 1: the log-probabilities.
import torch

from course_lib.grading.checks import assert_shape, grade, quiet

CASES = [(2, 5, 1), (3, 1, 2)]  # (B, T, num_layers); V = 11, E = 6, hidden_size = 4
### BEGIN HIDDEN TESTS


def _lstm_weights(V, E, hidden, layers, seed):
    """Weights chosen by the test, with the names of the handout's __init__ (classifier tied)."""
    g = torch.Generator().manual_seed(seed)
    embedding = 0.5 * torch.randn(V, E, generator=g)
    embedding[0] = 0.0
    w = {"embedding.weight": embedding}
    for layer in range(layers):
        fan_in = E if layer == 0 else hidden
        w[f"lstm.weight_ih_l{layer}"] = torch.randn(4 * hidden, fan_in, generator=g) / fan_in ** 0.5
        w[f"lstm.weight_hh_l{layer}"] = torch.randn(4 * hidden, hidden, generator=g) / hidden ** 0.5
        w[f"lstm.bias_ih_l{layer}"] = 0.3 * torch.randn(4 * hidden, generator=g)
        w[f"lstm.bias_hh_l{layer}"] = 0.3 * torch.randn(4 * hidden, generator=g)
    w["classifier.0.weight"] = torch.randn(E, hidden, generator=g) / hidden ** 0.5
    w["classifier.0.bias"] = 0.3 * torch.randn(E, generator=g)
    w["classifier.2.weight"] = embedding
    return w


def _hidden_case(seed, B, T, V, hidden, layers):
    """Token ids (some <pad>) and a random initial state, from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, V, (B, T), generator=g)
    state = (torch.randn(layers, B, hidden, generator=g), torch.randn(layers, B, hidden, generator=g))
    return inputs, state


def _reference_lstm(w, inputs, state, layers):
    """In float64: embedding lookup, nn.LSTM with the same weights, the tied MLP, log-softmax."""
    E, hidden = w["embedding.weight"].shape[1], w["lstm.weight_hh_l0"].shape[1]
    lstm = torch.nn.LSTM(E, hidden, num_layers=layers, batch_first=True).double()
    lstm.load_state_dict({k[len("lstm."):]: v.double() for k, v in w.items() if k.startswith("lstm.")})
    embedded = w["embedding.weight"].double()[inputs]
    with torch.no_grad():
        out, (h, c) = lstm(embedded, (state[0].double(), state[1].double()))
    features = torch.relu(out @ w["classifier.0.weight"].double().T + w["classifier.0.bias"].double())
    logits = features @ w["embedding.weight"].double().T
    return torch.log_softmax(logits, dim=-1), (h, c)


HIDDEN = [(7, 3, 6, 9, 5, 1), (8, 2, 4, 12, 3, 2)]  # (seed, B, T, V, hidden_size, num_layers); E = 4
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"log_probas": []}
    for B, T, layers in CASES:
        inputs = torch.randint(0, 11, (B, T), generator=g)
        with quiet():
            model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=layers)
            log_probas, _ = model(inputs, model.initial_states(B))
        out["log_probas"].append(log_probas)
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for seed, B, T, V, hidden, layers in HIDDEN:
        inputs, state = _hidden_case(seed, B, T, V, hidden, layers)
        with quiet():
            model = LSTM(vocabulary_size=V, embedding_size=4, hidden_size=hidden, num_layers=layers).eval()
            model.load_state_dict(_lstm_weights(V, 4, hidden, layers, seed))
            log_probas, _ = model(inputs, state)
        out["hidden"].append(log_probas)
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, layers) in enumerate(CASES):
        assert_shape(out["log_probas"][i], (B, T, 11), name=f"LSTM log_probas (num_layers={layers})", dims="B, T, V")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    for i, (seed, B, T, V, hidden, layers) in enumerate(HIDDEN):
        inputs, state = _hidden_case(seed, B, T, V, hidden, layers)
        expected, _ = _reference_lstm(_lstm_weights(V, 4, hidden, layers, seed), inputs, state, layers)
        assert_shape(out["hidden"][i], (B, T, V), name="LSTM log_probas", dims="B, T, V")
        assert_close(out["hidden"][i], expected, name=f"LSTM log-probabilities (num_layers={layers}, a random initial state)", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_LSTM_forward", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_LSTM_forward_states", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Problem 1, question 1: the final hidden state.
import torch

from course_lib.grading.checks import assert_shape, assert_true, grade, quiet

CASES = [(2, 5, 1), (3, 1, 2)]  # (B, T, num_layers); V = 11, E = 6, hidden_size = 4
### BEGIN HIDDEN TESTS


def _lstm_weights(V, E, hidden, layers, seed):
    """Weights chosen by the test, with the names of the handout's __init__ (classifier tied)."""
    g = torch.Generator().manual_seed(seed)
    embedding = 0.5 * torch.randn(V, E, generator=g)
    embedding[0] = 0.0
    w = {"embedding.weight": embedding}
    for layer in range(layers):
        fan_in = E if layer == 0 else hidden
        w[f"lstm.weight_ih_l{layer}"] = torch.randn(4 * hidden, fan_in, generator=g) / fan_in ** 0.5
        w[f"lstm.weight_hh_l{layer}"] = torch.randn(4 * hidden, hidden, generator=g) / hidden ** 0.5
        w[f"lstm.bias_ih_l{layer}"] = 0.3 * torch.randn(4 * hidden, generator=g)
        w[f"lstm.bias_hh_l{layer}"] = 0.3 * torch.randn(4 * hidden, generator=g)
    w["classifier.0.weight"] = torch.randn(E, hidden, generator=g) / hidden ** 0.5
    w["classifier.0.bias"] = 0.3 * torch.randn(E, generator=g)
    w["classifier.2.weight"] = embedding
    return w


def _hidden_case(seed, B, T, V, hidden, layers):
    """Token ids (some <pad>) and a random initial state, from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, V, (B, T), generator=g)
    state = (torch.randn(layers, B, hidden, generator=g), torch.randn(layers, B, hidden, generator=g))
    return inputs, state


def _reference_states(w, inputs, state, layers):
    """In float64: the final (h, c) of nn.LSTM with the same weights, from the same initial state."""
    E, hidden = w["embedding.weight"].shape[1], w["lstm.weight_hh_l0"].shape[1]
    lstm = torch.nn.LSTM(E, hidden, num_layers=layers, batch_first=True).double()
    lstm.load_state_dict({k[len("lstm."):]: v.double() for k, v in w.items() if k.startswith("lstm.")})
    with torch.no_grad():
        _, (h, c) = lstm(w["embedding.weight"].double()[inputs], (state[0].double(), state[1].double()))
    return h, c


HIDDEN = [(7, 3, 6, 9, 5, 1), (8, 2, 4, 12, 3, 2)]  # (seed, B, T, V, hidden_size, num_layers); E = 4
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"states": []}
    for B, T, layers in CASES:
        inputs = torch.randint(0, 11, (B, T), generator=g)
        with quiet():
            model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=layers)
            _, states = model(inputs, model.initial_states(B))
        out["states"].append(list(states) if isinstance(states, (tuple, list)) else states)
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for seed, B, T, V, hidden, layers in HIDDEN:
        inputs, state = _hidden_case(seed, B, T, V, hidden, layers)
        with quiet():
            model = LSTM(vocabulary_size=V, embedding_size=4, hidden_size=hidden, num_layers=layers).eval()
            model.load_state_dict(_lstm_weights(V, 4, hidden, layers, seed))
            _, states = model(inputs, state)
        out["hidden"].append(list(states) if isinstance(states, (tuple, list)) else states)
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, layers) in enumerate(CASES):
        states = out["states"][i]
        assert_true(isinstance(states, list) and len(states) == 2,
                    "forward should return (log_probas, (h, c)): the final state is a tuple of two tensors")
        for name, value in zip("hc", states):
            assert_shape(value, (layers, B, 4), name=f"final {name} (num_layers={layers})", dims="num_layers, B, hidden_size")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    for i, (seed, B, T, V, hidden, layers) in enumerate(HIDDEN):
        inputs, state = _hidden_case(seed, B, T, V, hidden, layers)
        expected = _reference_states(_lstm_weights(V, 4, hidden, layers, seed), inputs, state, layers)
        states = out["hidden"][i]
        assert_true(isinstance(states, list) and len(states) == 2,
                    "forward should return (log_probas, (h, c)): the final state is a tuple of two tensors")
        for name, value, ref in zip("hc", states, expected):
            assert_close(value, ref, name=f"final {name} (num_layers={layers}, from a random initial state)", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_LSTM_forward_states", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_LSTM_loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Problem 1, question 2: the loss.
import torch

from course_lib.grading.checks import as_float, assert_true, grade, quiet

LENGTHS = [5, 2, 4]  # real tokens of each sequence; T = 5, V = 7


def _batch(seed):
    """Log-probabilities (B, T, V), targets (B, T) with 0 at padding and the float mask (B, T)."""
    g = torch.Generator().manual_seed(seed)
    B, T, V = len(LENGTHS), 5, 7
    log_probas = torch.log_softmax(torch.randn(B, T, V, generator=g), dim=-1)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).float()
    targets = torch.randint(1, V, (B, T), generator=g) * mask.long()
    return log_probas, targets, mask


def run():
    log_probas, targets, mask = _batch(0)
    with quiet():
        model = LSTM(vocabulary_size=7, embedding_size=4, hidden_size=3)
        out = {"loss": model.loss(log_probas, targets, mask)}
    ### BEGIN HIDDEN TESTS
    log_probas, targets, mask = _batch(1)
    log_probas = log_probas.clone().requires_grad_(True)
    with quiet():
        loss = model.loss(log_probas, targets, mask)
    connected = isinstance(loss, torch.Tensor) and loss.requires_grad
    if connected:
        loss.backward()
    out["hidden"] = {"loss": loss, "connected": connected, "grad": log_probas.grad}
    ### END HIDDEN TESTS
    return out


def check(out):
    loss = as_float(out["loss"], name="LSTM.loss(log_probas, targets, mask)")  # a single number
    assert_true(loss == loss and loss > 0, f"a negative log-likelihood is a positive number, got {loss}")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    log_probas, targets, mask = _batch(1)
    per_sequence = []
    for b, n in enumerate(LENGTHS):
        per_sequence.append(-sum(float(log_probas[b, t, targets[b, t]]) for t in range(n)) / n)
    expected = sum(per_sequence) / len(per_sequence)
    got = out["hidden"]
    assert_close(as_float(got["loss"], name="LSTM.loss"), expected,
                 name="LSTM.loss (mean over the batch of each sequence's mean NLL over its real tokens)", rtol=1e-5)
    assert_true(got["connected"] is True, "LSTM.loss should return a tensor connected to log_probas (so that .backward() works)")
    grad = torch.zeros(len(LENGTHS), 5, 7, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        for t in range(n):
            grad[b, t, targets[b, t]] = -1.0 / (n * len(LENGTHS))
    assert_close(got["grad"], grad, name="gradient of LSTM.loss with respect to log_probas", atol=1e-6)
    ### END HIDDEN TESTS


grade("test_LSTM_loss", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# **Check your LSTM.** At the handout's sizes (`E = 768`, `hidden_size = 512`), the LSTM and its
# classifier (without the embedding matrix, which the handout froze) have 3,019,520 parameters,
# the number quoted with the handout; the embedding matrix adds `V x E`. An untrained model
# predicts nearly uniformly, so its loss is close to `log V`.

# %%
lstm_model = LSTM()
embedding_params = lstm_model.embedding.weight.numel()
print(f"LSTM: {sum(p.numel() for p in lstm_model.parameters()) - embedding_params:,} parameters without the "
      f"embedding matrix, plus {embedding_params:,} in the (tied) embedding")
tiny_lstm = LSTM(vocabulary_size=len(example_data.vocab), embedding_size=16, hidden_size=16)
with torch.no_grad():
    tiny_log_probas, _ = tiny_lstm(batch["source"], tiny_lstm.initial_states(len(batch["source"])))  # (B, T, V)
    print(f"untrained loss {tiny_lstm.loss(tiny_log_probas, batch['target'], batch['mask']):.3f}, "
          f"log V = {math.log(len(example_data.vocab)):.3f}")
del lstm_model, tiny_lstm

# %% [markdown]
# ---
# ## Problem 2: Implementing a GPT (Generative Pre-trained Transformer) [27 pts]
#
# While RNNs "remember" the past by taking their previous hidden state as input at each step,
# the Transformer (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762) uses self-attention:
# several attention "heads", in parallel, look directly at every earlier position. Most of the
# GPT's code is given; you implement the layer normalization and the multi-head scaled
# dot-product attention, then the model's forward pass.
#
# ### Layer normalization [5 pts]
#
# You are not allowed to use `nn.LayerNorm` (nor any function that calls `torch.layer_norm`).
# The layer norm of a mini-batch of inputs $x$ is
#
# $$\operatorname{layernorm}(x) = \frac{x - \mathbb{E}[x]}{\sqrt{\operatorname{Var}[x] + \epsilon}} * \operatorname{weight} + \operatorname{bias},$$
#
# where $\mathbb{E}[x]$ and $\operatorname{Var}[x]$ are taken **over the last dimension** of
# `x` only, and `weight` and `bias` are learnable affine parameters.
#
# 1. [5 pts] Implement `forward()` of `LayerNorm`. Mind the variance: `torch.var` uses the
#    *unbiased* estimate by default (left), while layer normalization uses the *biased* one
#    (right), where $\overline{X}$ is the mean:
#
# $$\overline{\operatorname{Var}}(X)_{\text{unbiased}} = \frac{1}{n-1} \sum_{i=1}^{n} (X_i - \overline{X})^2 \qquad \overline{\operatorname{Var}}(X)_{\text{biased}} = \frac{1}{n} \sum_{i=1}^{n} (X_i - \overline{X})^2$$

# %% nbgrader={"grade": false, "grade_id": "LayerNorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LayerNorm(nn.Module):
    """Layer normalization over the last dimension: (*dims, E) -> (*dims, E), e.g. (B, T, E)."""

    def __init__(self, hidden_size, eps=1e-5):
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(hidden_size))  # (E,), starts at ones
        self.bias = nn.Parameter(torch.empty(hidden_size))  # (E,), starts at zeros
        self.reset_parameters()

    def forward(self, inputs):
        """Layer normalization.

        Args:
            inputs: (*dims, hidden_size) float tensor, e.g. (B, T, E).
        Returns:
            (*dims, hidden_size), the same shape:
            (inputs - mean) / sqrt(var + eps) * weight + bias, where mean and var are the mean
            and the *biased* variance of inputs over its last dimension, and weight and bias,
            of shape (E,), apply to the last dimension.
        """
        ### BEGIN SOLUTION
        mean = inputs.mean(dim=-1, keepdim=True)  # (B, T, 1)
        variance = ((inputs - mean) ** 2).mean(dim=-1, keepdim=True)  # (B, T, 1), divided by E: biased
        return (inputs - mean) / torch.sqrt(variance + self.eps) * self.weight + self.bias  # (B, T, E)
        ### END SOLUTION

    def reset_parameters(self):
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)


# %% nbgrader={"grade": true, "grade_id": "test_LayerNorm", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import as_float, assert_close, assert_shape, grade, quiet, to_tensor

SHAPES = [(2, 3, 4), (5, 4), (2, 2, 3, 4)]  # (*dims, E) with E = 4
### BEGIN HIDDEN TESTS

HIDDEN = [((3, 5, 7), 1e-5, 2.0), ((6, 9), 1e-5, 0.5), ((2, 4, 6), 0.1, 0.05), ((4, 1), 1e-5, 1.0)]  # (shape, eps, scale)


def _hidden_case(i):
    """Inputs (shape, times scale, plus an offset), weight and bias, from a fixed seed."""
    shape, eps, scale = HIDDEN[i]
    g = torch.Generator().manual_seed(10 + i)
    x = scale * torch.randn(*shape, generator=g) + torch.randn(shape[-1], generator=g)
    return x, torch.randn(shape[-1], generator=g), torch.randn(shape[-1], generator=g)
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    outputs = []
    for shape in SHAPES:
        x = 10 * torch.randn(*shape, generator=g) + 3
        with quiet():
            outputs.append(LayerNorm(shape[-1])(x))
    out = {"outputs": outputs}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (shape, eps, _) in enumerate(HIDDEN):
        x, weight, bias = _hidden_case(i)
        with quiet():
            layer = LayerNorm(shape[-1], eps=eps)
            layer.load_state_dict({"weight": weight, "bias": bias})
            out["hidden"].append(layer(x))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, shape in enumerate(SHAPES):
        assert_shape(out["outputs"][i], shape, name=f"LayerNorm(4)(x) for x of shape {shape}", dims="*dims, E")
    # With weight 1 and bias 0 (their initial values), each output vector has mean 0 and variance 1.
    y = to_tensor(out["outputs"][0], name="LayerNorm(4)(x)")
    assert_close(as_float(y.mean(dim=-1).abs().max()), 0.0, atol=1e-4,
                 name="largest |mean| of LayerNorm(4)(x) over the last dimension (weight 1, bias 0)")
    variance = ((y - y.mean(dim=-1, keepdim=True)) ** 2).mean(dim=-1)
    assert_close(as_float(variance.mean()), 1.0, atol=1e-3,
                 name="variance of LayerNorm(4)(x) over the last dimension (weight 1, bias 0)")
    ### BEGIN HIDDEN TESTS
    for i, (shape, eps, _) in enumerate(HIDDEN):
        x, weight, bias = _hidden_case(i)
        reference = torch.nn.LayerNorm(shape[-1], eps=eps).double()
        reference.load_state_dict({"weight": weight.double(), "bias": bias.double()})
        with torch.no_grad():
            expected = reference(x.double())
        assert_close(out["hidden"][i], expected, name=f"LayerNorm({shape[-1]}, eps={eps:g}) for x of shape {shape}, "
                     "random weight and bias, vs nn.LayerNorm", atol=1e-5, rtol=1e-4)
    ### END HIDDEN TESTS


grade("test_LayerNorm", run, check,
      forbid=["torch.nn.LayerNorm", "torch.nn.functional.layer_norm", "torch.layer_norm", "course_solutions.layers"])

# %% [markdown]
# Outside the test, `nn.LayerNorm` is allowed: compare yours with it.

# %%
ln_input = torch.randn(2, 5, 8)  # (B, T, E)
torch_ln = nn.LayerNorm(8)
with torch.no_grad():
    torch_ln.weight.normal_()
    torch_ln.bias.normal_()
    your_ln = LayerNorm(8)
    your_ln.load_state_dict(torch_ln.state_dict())
    print(f"largest difference from nn.LayerNorm: {(your_ln(ln_input) - torch_ln(ln_input)).abs().max():.2e}")

# %% [markdown]
# ### Implementing the attention mechanism [17 pts]
#
# You now implement the core module of the Transformer, multi-head attention. You are not
# allowed to use `nn.MultiheadAttention` (nor `F.multi_head_attention_forward` or
# `F.scaled_dot_product_attention`). With $m$ heads (`num_heads`, `H` in shapes), the attention
# vector of head $i$ is
#
# $$\begin{aligned} [\boldsymbol{q}_1, \ldots, \boldsymbol{q}_m] &= \boldsymbol{X}\boldsymbol{W}_Q + \boldsymbol{b}_Q & [\boldsymbol{k}_1, \ldots, \boldsymbol{k}_m] &= \boldsymbol{X}\boldsymbol{W}_K + \boldsymbol{b}_K & [\boldsymbol{v}_1, \ldots, \boldsymbol{v}_m] &= \boldsymbol{X}\boldsymbol{W}_V + \boldsymbol{b}_V \\ \boldsymbol{A}_i &= \operatorname{softmax}\left(\frac{\boldsymbol{q}_i \boldsymbol{k}_i^\top}{\sqrt{d}}\right) & \boldsymbol{h}_i &= \boldsymbol{A}_i \boldsymbol{v}_i & A(\boldsymbol{Q}, \boldsymbol{K}, \boldsymbol{V}) &= \operatorname{concat}(\boldsymbol{h}_1, \ldots, \boldsymbol{h}_m)\boldsymbol{W}_O + \boldsymbol{b}_O \end{aligned}$$
#
# Here $\boldsymbol{X} \in \mathbb{R}^{T \times md}$ holds the input vectors of the layer (the
# output of the previous layer), where all the heads are concatenated into one vector of size
# $md$ ($d$ is the head size, `head_size`, `D` in shapes). $\boldsymbol{W}_Q, \boldsymbol{W}_K,
# \boldsymbol{W}_V$ are the projection matrices (with biases $\boldsymbol{b}$) and
# $\boldsymbol{W}_O$ the output projection (with bias $\boldsymbol{b}_O$). The $\boldsymbol{A}_i$
# are the attention weights: which elements of the sequence each head attends to. The four
# projections are created for you in `__init__` (`q_proj`, `k_proj`, `v_proj`, `out_proj`, all with
# biases): keep these names, the tests load weights into them.
#
# 2. [4 pts] The equations need the heads split apart and put back together. Implement
#    `split_heads()` (the concatenated vectors, e.g. the queries $\boldsymbol{Q}$ after the
#    projection $\boldsymbol{W}_Q$, are split into $m$ vectors, one per head, and the time and head
#    axes are transposed for convenience) and `merge_heads()` (the $\boldsymbol{h}_i$ are
#    concatenated back before the projection $\boldsymbol{W}_O$). Head $i$ owns the features
#    $i \cdot d, \ldots, (i+1) \cdot d - 1$ of the concatenated vector. For example, for the first
#    sequence of the mini-batch:
#
#    `y = split_heads(x)` gives `y[0, 1, 2, 3] == x[0, 2, num_heads * 1 + 3]`, and
#    `x = merge_heads(y)` gives `x[0, 1, num_heads * 2 + 3] == y[0, 2, 1, 3]`.
#
#    (The handout writes the feature index as `num_heads * i + j`; in the layout above it is
#    `head_size * i + j`, the same number when `num_heads == head_size`, as in the public tests
#    below: 4 heads of size 4. The hidden tests use other sizes.) The two functions are exact
#    inverses of each other and only reshape and transpose. They must handle mini-batches (see
#    the docstrings).
# 3. [4 pts] Implement `get_attention_weights()`, which returns the $\boldsymbol{A}_i$ of all the
#    heads at once from the $\boldsymbol{q}_i$ and $\boldsymbol{k}_i$. The language model is
#    *auto-regressive* (*causal*): position $t$ may only attend to positions $\tau \le t$, never
#    to the future. With a binary mask $s_t$ ($s_t(\tau) = 1$ if $\tau \le t$, else 0; not the
#    data loader's `mask`), the softmax becomes
#
# $$[\operatorname{softmax}(\boldsymbol{x}, \boldsymbol{s}_t)]_{\tau} = \frac{\exp(x_{\tau}) s_t(\tau)}{\sum_i \exp(x_i) s_t(i)}.$$
#
#    To avoid numerical problems, implement it instead as
#
# $$[\operatorname{softmax}(\boldsymbol{x}, \boldsymbol{s}_t)]_{\tau} = \frac{\exp(\widetilde{x}_{\tau})}{\sum_i \exp(\widetilde{x}_i)} \quad\text{where}\quad \widetilde{x}_{\tau} = x_{\tau} s_t(\tau) - 10^4 (1 - s_t(\tau)),$$
#
#    which is the same up to numerical precision as long as $x \gg -10^4$ (true in practice). Use
#    vectorized operations (no Python loops over positions): it matters for the speed of Problem 3.
# 4. [3 pts] Using your functions, implement `apply_attention()`, which computes the
#    $\boldsymbol{h}_i$ from the $\boldsymbol{q}_i$, $\boldsymbol{k}_i$, $\boldsymbol{v}_i$ and
#    concatenates them: $\operatorname{concat}(\boldsymbol{h}_1, \ldots, \boldsymbol{h}_m)$.
# 5. [4 pts] Using your functions, implement `forward()`: the three projections, the attention,
#    the output projection (do not forget the biases). [2 pts] How many learnable parameters does
#    the module have, as a function of `num_heads` and `head_size`? Answer with the function
#    `attention_parameters` below the tests.

# %% nbgrader={"grade": false, "grade_id": "MultiHeadedAttention", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MultiHeadedAttention(nn.Module):
    """Causal multi-head scaled dot-product self-attention: (B, T, E) -> (B, T, E), E = H * D."""

    def __init__(self, head_size, num_heads, sequence_length):
        super().__init__()
        self.head_size = head_size
        self.num_heads = num_heads
        self.sequence_length = sequence_length  # the longest sequence the module is used on
        width = num_heads * head_size  # E = H * D
        # The affine projections W_Q, W_K, W_V and W_O, with biases: (B, T, E) -> (B, T, E) each.
        # Keep these names: the tests load weights into them.
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def get_attention_weights(self, queries, keys):
        """The causal attention weights A_i of all the heads.

        Args:
            queries: (B, H, T, D) float tensor, the q_i of each head.
            keys: (B, H, T, D) float tensor, the k_i of each head.
        Returns:
            (B, H, T, T) float tensor: weights[b, i, t, tau] is how much position t of head i
            attends to position tau: the softmax over tau of q_t . k_tau / sqrt(D), with the
            handout's mask (s_t(tau) = 1 if tau <= t, else 0; masked scores set to -1e4). Each
            row sums to 1, and weights[b, i, t, tau] = 0 (numerically) for tau > t.
        """
        ### BEGIN SOLUTION
        T = queries.size(-2)
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(queries.size(-1))  # (B, H, T, T)
        s = torch.ones(T, T, dtype=scores.dtype, device=scores.device).tril()  # (T, T): 1 where tau <= t
        scores = scores * s - 1e4 * (1.0 - s)  # (B, H, T, T)
        return torch.softmax(scores, dim=-1)  # (B, H, T, T)
        ### END SOLUTION

    def apply_attention(self, queries, keys, values):
        """The attended values h_i = A_i v_i of all the heads, concatenated.

        Args:
            queries, keys, values: (B, H, T, D) float tensors, the q_i, k_i, v_i of each head.
        Returns:
            (B, T, E) float tensor with E = H * D: concat(h_1, ..., h_H) at every position.
            Use your get_attention_weights and merge_heads.
        """
        ### BEGIN SOLUTION
        weights = self.get_attention_weights(queries, keys)  # (B, H, T, T)
        return self.merge_heads(weights @ values)  # (B, H, T, D) -> (B, T, E)
        ### END SOLUTION

    def split_heads(self, tensor):
        """Split the concatenated head vectors, and transpose the time and head axes.

        Args:
            tensor: (B, T, H * dim) float tensor, e.g. the queries (B, T, E): the vectors of
                the H heads concatenated, each of size dim (usually D; use the input's size).
        Returns:
            (B, H, T, dim) float tensor y with y[b, i, t, j] = tensor[b, t, i * dim + j]. Only a
            reshape and a transpose; merge_heads is its exact inverse.
        """
        ### BEGIN SOLUTION
        B, T, width = tensor.shape
        heads = tensor.reshape(B, T, self.num_heads, width // self.num_heads)  # (B, T, H, D)
        return heads.transpose(1, 2)  # (B, H, T, D)
        ### END SOLUTION

    def merge_heads(self, tensor):
        """Concatenate the head vectors again (the inverse of split_heads).

        Args:
            tensor: (B, H, T, dim) float tensor, the vectors of each head.
        Returns:
            (B, T, H * dim) float tensor x, e.g. (B, T, E), with x[b, t, i * dim + j] =
            tensor[b, i, t, j]. Only a transpose and a reshape.
        """
        ### BEGIN SOLUTION
        B, H, T, dim = tensor.shape
        return tensor.transpose(1, 2).reshape(B, T, H * dim)  # (B, T, E)
        ### END SOLUTION

    def forward(self, hidden_states):
        """Multi-headed causal self-attention.

        Args:
            hidden_states: (B, T, E) float tensor with E = H * D (X in the equations).
        Returns:
            (B, T, E) float tensor: A(Q, K, V) = concat(h_1, ..., h_H) W_O + b_O, with the queries,
            keys and values projected by q_proj, k_proj and v_proj. Use your split_heads and
            apply_attention.
        """
        ### BEGIN SOLUTION
        queries = self.split_heads(self.q_proj(hidden_states))  # (B, H, T, D)
        keys = self.split_heads(self.k_proj(hidden_states))  # (B, H, T, D)
        values = self.split_heads(self.v_proj(hidden_states))  # (B, H, T, D)
        return self.out_proj(self.apply_attention(queries, keys, values))  # (B, T, E)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_split_heads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 2: split_heads (4 heads of size 4, as in the handout's example).
import torch

from course_lib.grading.checks import assert_equal, assert_shape, grade, quiet

### BEGIN HIDDEN TESTS
HIDDEN = [(2, 5, 3, 4), (1, 1, 2, 6), (3, 4, 1, 5), (2, 3, 6, 2)]  # (B, T, H, D)
### END HIDDEN TESTS


def run():
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).reshape(2, 3, 16)  # (B, T, H*D) = (2, 3, 4*4)
    with quiet():
        out = {"y": MultiHeadedAttention(head_size=4, num_heads=4, sequence_length=3).split_heads(x)}
    ### BEGIN HIDDEN TESTS
    g = torch.Generator().manual_seed(3)
    out["hidden"] = []
    for B, T, H, D in HIDDEN:
        with quiet():
            out["hidden"].append(MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=T).split_heads(
                torch.randn(B, T, H * D, generator=g)))
    ### END HIDDEN TESTS
    return out


def check(out):
    y = out["y"]
    assert_shape(y, (2, 4, 3, 4), name="split_heads(x) for x of shape (2, 3, 16) and 4 heads", dims="B, H, T, D")
    # x[0, 2, num_heads * 1 + 3] is x[0, 2, 7], which holds 2 * 16 + 7 = 39.
    assert_equal(y[0, 1, 2, 3], 39.0, name="y[0, 1, 2, 3] (the handout's example: x[0, 2, num_heads * 1 + 3])")
    ### BEGIN HIDDEN TESTS
    g = torch.Generator().manual_seed(3)
    for i, (B, T, H, D) in enumerate(HIDDEN):
        x = torch.randn(B, T, H * D, generator=g)
        expected = torch.empty(B, H, T, D)
        for h in range(H):
            expected[:, h] = x[:, :, h * D:(h + 1) * D]
        assert_shape(out["hidden"][i], (B, H, T, D), name=f"split_heads with {H} heads of size {D}", dims="B, H, T, D")
        assert_equal(out["hidden"][i], expected, name=f"split_heads with {H} heads of size {D} (y[b, i, t, j] = x[b, t, i * D + j])")
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_split_heads", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_merge_heads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 2: merge_heads (4 heads of size 4, as in the handout's example).
import torch

from course_lib.grading.checks import assert_equal, assert_shape, grade, quiet

### BEGIN HIDDEN TESTS
HIDDEN = [(2, 5, 3, 4), (1, 1, 2, 6), (3, 4, 1, 5), (2, 3, 6, 2)]  # (B, T, H, D)
### END HIDDEN TESTS


def run():
    y = torch.arange(2 * 4 * 3 * 4, dtype=torch.float32).reshape(2, 4, 3, 4)  # (B, H, T, D) = (2, 4, 3, 4)
    with quiet():
        out = {"x": MultiHeadedAttention(head_size=4, num_heads=4, sequence_length=3).merge_heads(y)}
    ### BEGIN HIDDEN TESTS
    g = torch.Generator().manual_seed(4)
    out["hidden"] = []
    for B, T, H, D in HIDDEN:
        with quiet():
            out["hidden"].append(MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=T).merge_heads(
                torch.randn(B, H, T, D, generator=g)))
    ### END HIDDEN TESTS
    return out


def check(out):
    x = out["x"]
    assert_shape(x, (2, 3, 16), name="merge_heads(y) for y of shape (2, 4, 3, 4)", dims="B, T, H*D")
    # y[0, 2, 1, 3] holds 2 * 12 + 1 * 4 + 3 = 31.
    assert_equal(x[0, 1, 4 * 2 + 3], 31.0, name="x[0, 1, num_heads * 2 + 3] (the handout's example: y[0, 2, 1, 3])")
    ### BEGIN HIDDEN TESTS
    g = torch.Generator().manual_seed(4)
    for i, (B, T, H, D) in enumerate(HIDDEN):
        y = torch.randn(B, H, T, D, generator=g)
        expected = torch.cat([y[:, h] for h in range(H)], dim=-1)  # (B, T, H*D)
        assert_shape(out["hidden"][i], (B, T, H * D), name=f"merge_heads with {H} heads of size {D}", dims="B, T, H*D")
        assert_equal(out["hidden"][i], expected, name=f"merge_heads with {H} heads of size {D} (x[b, t, i * D + j] = y[b, i, t, j])")
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_merge_heads", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_get_attention_weights", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Question 3: get_attention_weights.
import torch

from course_lib.grading.checks import assert_shape, grade, quiet

CASES = [(2, 3, 5, 4), (1, 2, 1, 3)]  # (B, H, T, D)
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 3, 6, 4, 1.0), (1, 2, 7, 5, 3.0), (3, 1, 4, 8, 0.3)]  # (B, H, T, D, scale of q and k)


def _hidden_case(i):
    B, H, T, D, scale = HIDDEN[i]
    g = torch.Generator().manual_seed(20 + i)
    return scale * torch.randn(B, H, T, D, generator=g), scale * torch.randn(B, H, T, D, generator=g)


def _reference_weights(q, k):
    """Explicit loops in float64: for each query position t, a softmax over tau <= t only."""
    B, H, T, D = q.shape
    w = torch.zeros(B, H, T, T, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                scores = torch.tensor([float(q[b, h, t] @ k[b, h, tau]) / D ** 0.5 for tau in range(t + 1)],
                                      dtype=torch.float64)
                w[b, h, t, : t + 1] = torch.exp(scores - scores.max()) / torch.exp(scores - scores.max()).sum()
    return w
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"weights": []}
    for B, H, T, D in CASES:
        queries, keys = torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g)
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=T)
            out["weights"].append(mha.get_attention_weights(queries, keys))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, H, T, D, _) in enumerate(HIDDEN):
        queries, keys = _hidden_case(i)
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=8)
            out["hidden"].append(mha.get_attention_weights(queries, keys))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, H, T, D) in enumerate(CASES):
        assert_shape(out["weights"][i], (B, H, T, T), name=f"get_attention_weights for queries of shape {(B, H, T, D)}",
                     dims="B, H, T, T")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    for i, (B, H, T, D, _) in enumerate(HIDDEN):
        queries, keys = _hidden_case(i)
        assert_shape(out["hidden"][i], (B, H, T, T), name="get_attention_weights", dims="B, H, T, T")
        assert_close(out["hidden"][i], _reference_weights(queries, keys),
                     name=f"causal attention weights (B, H, T, D) = {(B, H, T, D)}", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_get_attention_weights", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_apply_attention", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Question 4: apply_attention. It runs your get_attention_weights and merge_heads (if you use
# them): they must run. The hidden checks accept the right result, or the result your own
# get_attention_weights and merge_heads give, so a mistake in those costs only their own tests.
import torch

from course_lib.grading.checks import assert_shape, grade, quiet

CASES = [(2, 3, 5, 4), (1, 2, 1, 3)]  # (B, H, T, D)
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 3, 6, 4), (1, 2, 7, 5)]  # (B, H, T, D)


def _hidden_case(i):
    B, H, T, D = HIDDEN[i]
    g = torch.Generator().manual_seed(30 + i)
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))


def _own(mha, queries, keys, values):
    """What your own get_attention_weights and merge_heads give (None if one of them fails)."""
    try:
        with quiet():
            return mha.merge_heads(mha.get_attention_weights(queries, keys) @ values)
    except Exception:  # noqa: BLE001 - a method that does not run: only the exact answer counts
        return None
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"outputs": []}
    for B, H, T, D in CASES:
        queries, keys, values = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=T)
            out["outputs"].append(mha.apply_attention(queries, keys, values))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, H, T, D) in enumerate(HIDDEN):
        queries, keys, values = _hidden_case(i)
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=8)
            got = mha.apply_attention(queries, keys, values)
        out["hidden"].append({"output": got, "own": _own(mha, queries, keys, values)})
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, H, T, D) in enumerate(CASES):
        assert_shape(out["outputs"][i], (B, T, H * D), name=f"apply_attention for inputs of shape {(B, H, T, D)}",
                     dims="B, T, H*D")
    ### BEGIN HIDDEN TESTS
    import torch.nn.functional as F

    from course_lib.grading.checks import assert_close, to_tensor

    for i, (B, H, T, D) in enumerate(HIDDEN):
        queries, keys, values = (t.double() for t in _hidden_case(i))
        heads = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)  # (B, H, T, D)
        expected = torch.cat([heads[:, h] for h in range(H)], dim=-1)  # (B, T, H*D)
        got, own = out["hidden"][i]["output"], out["hidden"][i]["own"]
        assert_shape(got, (B, T, H * D), name="apply_attention", dims="B, T, H*D")
        if own is not None and tuple(to_tensor(own).shape) == (B, T, H * D) and torch.allclose(
                to_tensor(got), to_tensor(own), atol=1e-5):
            continue  # consistent with your own get_attention_weights and merge_heads
        assert_close(got, expected, name=f"apply_attention (B, H, T, D) = {(B, H, T, D)}", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_apply_attention", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_forward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Question 5: forward. It runs your split_heads and apply_attention (if you use them): they must
# run. The hidden checks accept the right result, or the result your own split_heads and
# apply_attention give with the projections, so a mistake in those costs only their own tests.
import torch

from course_lib.grading.checks import assert_shape, grade, quiet

CASES = [(2, 5, 3, 4), (1, 1, 2, 4)]  # (B, T, H, D)
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 6, 3, 4), (3, 5, 2, 5)]  # (B, T, H, D)
NAMES = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _weights(E, seed):
    """Weights and biases chosen by the test for q_proj, k_proj, v_proj and out_proj."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name in NAMES:
        w[f"{name}.weight"] = torch.randn(E, E, generator=g) / E ** 0.5
        w[f"{name}.bias"] = 0.5 * torch.randn(E, generator=g)
    return w


def _hidden_inputs(i):
    B, T, H, D = HIDDEN[i]
    return torch.randn(B, T, H * D, generator=torch.Generator().manual_seed(40 + i))


def _reference(w, x, num_heads):
    """nn.MultiheadAttention (float64) with the same weights and a causal mask."""
    E = x.shape[-1]
    reference = torch.nn.MultiheadAttention(E, num_heads, batch_first=True).double()
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([w["q_proj.weight"], w["k_proj.weight"], w["v_proj.weight"]]))
        reference.in_proj_bias.copy_(torch.cat([w["q_proj.bias"], w["k_proj.bias"], w["v_proj.bias"]]))
        reference.out_proj.weight.copy_(w["out_proj.weight"])
        reference.out_proj.bias.copy_(w["out_proj.bias"])
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # True where tau > t: not allowed
        y, _ = reference(x.double(), x.double(), x.double(), attn_mask=future, need_weights=False)
    return y


def _own(mha, x):
    """The projections with your own split_heads and apply_attention (None if one fails)."""
    try:
        with quiet():
            q, k, v = (mha.split_heads(proj(x)) for proj in (mha.q_proj, mha.k_proj, mha.v_proj))
            return mha.out_proj(mha.apply_attention(q, k, v))
    except Exception:  # noqa: BLE001 - a method that does not run: only the exact answer counts
        return None
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"outputs": []}
    for B, T, H, D in CASES:
        x = torch.randn(B, T, H * D, generator=g)
        with quiet():
            out["outputs"].append(MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=8)(x))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, T, H, D) in enumerate(HIDDEN):
        x = _hidden_inputs(i)
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=8).eval()
            # strict=False: a buffer of your own (a causal mask, say) may stay; every test weight must land
            loaded = mha.load_state_dict(_weights(H * D, 50 + i), strict=False)
            with torch.no_grad():
                out["hidden"].append({"output": mha(x), "own": _own(mha, x),
                                      "not_loaded": sorted(loaded.unexpected_keys)})
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, H, D) in enumerate(CASES):
        assert_shape(out["outputs"][i], (B, T, H * D), name=f"MultiHeadedAttention({D}, {H}, 8) for x of shape "
                     f"{(B, T, H * D)}", dims="B, T, E")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close, assert_true, to_tensor

    for i, (B, T, H, D) in enumerate(HIDDEN):
        expected = _reference(_weights(H * D, 50 + i), _hidden_inputs(i), H)
        got, own = out["hidden"][i]["output"], out["hidden"][i]["own"]
        assert_true(not out["hidden"][i]["not_loaded"], "keep the projections q_proj, k_proj, v_proj and out_proj that "
                    f"__init__ creates: the test could not load {out['hidden'][i]['not_loaded']} into your module")
        assert_shape(got, (B, T, H * D), name="MultiHeadedAttention output", dims="B, T, E")
        if own is not None and tuple(to_tensor(own).shape) == (B, T, H * D) and torch.allclose(
                to_tensor(got), to_tensor(own), atol=1e-5):
            continue  # consistent with your own split_heads and apply_attention
        assert_close(got, expected, name=f"MultiHeadedAttention output ({H} heads of size {D}, test weights and "
                     "biases) vs nn.MultiheadAttention with a causal mask", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_forward", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% [markdown]
# Outside the tests, `nn.MultiheadAttention` is allowed: with the same weights and a causal mask
# (`True` where position `t` may **not** attend to `tau`, i.e. `tau > t`), it computes the same
# thing as your module.

# %%
attn_input = torch.randn(2, 6, 12)  # (B, T, E), 3 heads of size 4
your_mha = MultiHeadedAttention(head_size=4, num_heads=3, sequence_length=6)
torch_mha = nn.MultiheadAttention(12, 3, batch_first=True)
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(torch.cat([your_mha.q_proj.weight, your_mha.k_proj.weight, your_mha.v_proj.weight]))
    torch_mha.in_proj_bias.copy_(torch.cat([your_mha.q_proj.bias, your_mha.k_proj.bias, your_mha.v_proj.bias]))
    torch_mha.out_proj.load_state_dict(your_mha.out_proj.state_dict())
    not_allowed = torch.ones(6, 6, dtype=torch.bool).triu(1)  # (T, T): True where tau > t
    torch_output, _ = torch_mha(attn_input, attn_input, attn_input, attn_mask=not_allowed, need_weights=False)
    print(f"largest difference from nn.MultiheadAttention: {(your_mha(attn_input) - torch_output).abs().max():.2e}")
    example_weights = your_mha.get_attention_weights(torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4))[0, 0]  # (T, T)
    print("attention weights of one head (rows: position t, columns: tau):")
    print(example_weights.numpy().round(3))

# %% [markdown]
# **Question 5, continued** [2 pts]. How many learnable parameters does your
# `MultiHeadedAttention` have, as a function of `num_heads` and `head_size`? Write the formula
# as a function (it must not build a module and count: derive it from the equations).

# %% nbgrader={"grade": false, "grade_id": "attention_parameters", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention_parameters(num_heads, head_size):
    """The number of learnable parameters of MultiHeadedAttention(head_size, num_heads, ...).

    Args:
        num_heads: the number of heads, m (H).
        head_size: the size of each head, d (D).
    Returns:
        int: the weights and biases of the four projections W_Q, W_K, W_V, W_O.
    """
    ### BEGIN SOLUTION
    width = num_heads * head_size  # E = H * D
    return 4 * (width * width + width)
    ### END SOLUTION


# %%
print(f"attention_parameters(12, 64) = {attention_parameters(12, 64):,}; your module has "
      f"{sum(p.numel() for p in MultiHeadedAttention(64, 12, 256).parameters()):,} parameters")

# %% nbgrader={"grade": true, "grade_id": "test_attention_parameters", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import as_int, grade, quiet

### BEGIN HIDDEN TESTS
SIZES = [(12, 64), (1, 1), (3, 5), (4, 16), (2, 7)]  # (num_heads, head_size)
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"n": attention_parameters(12, 64)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [attention_parameters(H, D) for H, D in SIZES]
    ### END HIDDEN TESTS
    return out


def check(out):
    as_int(out["n"], name="attention_parameters(12, 64)")  # a whole number
    ### BEGIN HIDDEN TESTS
    import torch

    from course_lib.grading.checks import assert_equal

    for i, (H, D) in enumerate(SIZES):
        # nn.MultiheadAttention(E, H) has the same four projections with biases (in_proj holds W_Q, W_K, W_V).
        expected = sum(p.numel() for p in torch.nn.MultiheadAttention(H * D, H).parameters())
        got = as_int(out["sizes"][i], name=f"attention_parameters({H}, {D})")
        assert_equal(got, expected, name=f"attention_parameters({H}, {D})")
    ### END HIDDEN TESTS


grade("test_attention_parameters", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% [markdown]
# ### The GPT forward pass [5 pts]
#
# You now have all the building blocks of a miniature GPT. `Block` (given, below) is a full
# Transformer layer: your self-attention and a feed-forward network, each followed by a
# skip-connection and your `LayerNorm` (GPT-1's "post-LN" layout). `GPT1Embedding` (given, the
# handout's `utils/embeddings.py`) adds a learned embedding of each token and of each position.
# The model is: embeddings -> `num_layers` blocks -> a linear classifier (tied to the token
# embeddings) -> log-softmax.

# %% nbgrader={"grade": false, "grade_id": "Block", "locked": true, "schema_version": 3, "solution": false, "task": false}
class Block(nn.Module):
    """A GPT-1 Transformer layer (given): (B, T, E) -> (B, T, E), E = H * D.

        a = norm1(attention(x) + x)
        y = norm2(mlp(a) + a),   mlp = Linear(E, mlp_hidden_size), GELU, Linear(mlp_hidden_size, E)
    """

    def __init__(self, head_size, mlp_hidden_size, num_heads, sequence_length):
        super().__init__()
        self.head_size = head_size
        self.mlp_hidden_size = mlp_hidden_size
        self.num_heads = num_heads
        self.sequence_length = sequence_length
        self.hidden_size = num_heads * head_size  # E

        self.attention = MultiHeadedAttention(head_size, num_heads, sequence_length)
        self.norm1 = LayerNorm(self.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(self.hidden_size, mlp_hidden_size),
            nn.GELU(),
            nn.Linear(mlp_hidden_size, self.hidden_size),
        )
        self.norm2 = LayerNorm(self.hidden_size)

    def forward(self, hidden_states):
        """hidden_states (B, T, E) -> (B, T, E)."""
        attention_outputs = self.attention(hidden_states)  # (B, T, E)
        attention_outputs = self.norm1(attention_outputs + hidden_states)
        outputs = self.mlp(attention_outputs)  # (B, T, E)
        return self.norm2(outputs + attention_outputs)


# %% nbgrader={"grade": false, "grade_id": "GPT1Embedding", "locked": true, "schema_version": 3, "solution": false, "task": false}
class GPT1Embedding(nn.Module):
    """Token embeddings plus learned positional embeddings (given; the handout's utils/embeddings.py).

    tokens: nn.Embedding(V, E, padding_idx=0); position: nn.Embedding(sequence_length, E).
    """

    def __init__(self, vocabulary_size, embedding_size, sequence_length,
                 _tokens_embedding_weight=None, _positional_embedding_weight=None):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.sequence_length = sequence_length
        self.tokens = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0, _weight=_tokens_embedding_weight)
        self.position = nn.Embedding(sequence_length, embedding_size, _weight=_positional_embedding_weight)
        with torch.no_grad():  # GPT-1's initialisation (the handout loaded GPT-1's pretrained weights)
            if _tokens_embedding_weight is None:
                self.tokens.weight.normal_(0.0, 0.02)
                self.tokens.weight[0].zero_()
            if _positional_embedding_weight is None:
                self.position.weight.normal_(0.0, 0.02)

    def forward(self, tokens, positions):
        """The embeddings of tokens at positions.

        Args:
            tokens: (B, T) long tensor of token ids, in [0, V).
            positions: (B, T) long tensor of positions, in [0, sequence_length).
        Returns:
            (B, T, E): self.tokens(tokens) + self.position(positions).
        """
        if torch.any(positions >= self.sequence_length):
            raise RuntimeError("Some position indices are larger than the maximum sequence length.")
        if torch.any(tokens >= self.vocabulary_size):
            raise RuntimeError("Some tokens are larger than the size of the vocabulary.")
        return self.tokens(tokens) + self.position(positions)


# %% [markdown]
# 6. [2 pts] In `MiniGPT1`, implement `get_embeddings()`, which computes the embedding vectors
#    of the input sequences from their tokens and their positions (`0, 1, ..., T-1` in every
#    sequence), with `self.embedding` (see `GPT1Embedding` above).
# 7. [2 pts] Complete `forward()` with the modules described above. It must return the
#    **log-probabilities** (not the logits) of the next word at every position.
# 8. [1 pt] Complete `loss()`: the mean negative log-likelihood of the sequences of the
#    mini-batch, averaged over the mini-batch, as in Problem 1.

# %% nbgrader={"grade": false, "grade_id": "MiniGPT1", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MiniGPT1(nn.Module):
    """A small GPT-1 language model: token ids (B, T) -> next-token log-probabilities (B, T, V).

    embedding (GPT1Embedding: tokens and positions) -> layers (num_layers Blocks of H heads of
    size D = E / H, MLP of 4 E) -> classifier = Linear(E, V, bias=False), whose weight is the
    token embedding matrix (tied) -> log-softmax.
    """

    def __init__(self, vocabulary_size=33_279, embedding_size=768, sequence_length=256, num_heads=12,
                 num_layers=4, learn_embeddings=True, _tokens_embedding_weight=None,
                 _positional_embedding_weight=None):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.embedding_size = embedding_size
        self.sequence_length = sequence_length
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.learn_embeddings = learn_embeddings
        self.head_size = embedding_size // num_heads  # D = E / H

        # tokens (B, T) and positions (B, T) -> (B, T, E)
        self.embedding = GPT1Embedding(vocabulary_size, embedding_size, sequence_length,
                                       _tokens_embedding_weight, _positional_embedding_weight)
        # (B, T, E) -> (B, T, E), num_layers times
        self.layers = nn.ModuleList(
            [Block(self.head_size, 4 * embedding_size, num_heads, sequence_length) for _ in range(num_layers)]
        )
        # (B, T, E) -> (B, T, V) logits
        self.classifier = nn.Linear(embedding_size, vocabulary_size, bias=False)
        # Tying classifier and embedding weights: one Parameter, used twice.
        self.classifier.weight = self.embedding.tokens.weight
        # The handout froze the (pretrained) embeddings; here they are learned by default.
        self.embedding.requires_grad_(learn_embeddings)

    def get_embeddings(self, inputs):
        """The embeddings of the input tokens at their positions.

        Args:
            inputs: (B, T) long tensor of token ids, T <= sequence_length.
        Returns:
            (B, T, E) float tensor: self.embedding(inputs, positions), where positions is the
            (B, T) long tensor of positions 0, 1, ..., T-1 of every sequence.
        """
        ### BEGIN SOLUTION
        B, T = inputs.shape
        positions = torch.arange(T, device=inputs.device).unsqueeze(0).expand(B, T)  # (B, T)
        return self.embedding(inputs, positions)  # (B, T, E)
        ### END SOLUTION

    def forward(self, inputs):
        """Log-probabilities of the next token at every position.

        Args:
            inputs: (B, T) long tensor of token ids.
        Returns:
            log_probas: (B, T, V), log_probas[b, t, i] = log p(w_{t+1} = i | w_1 .. w_t):
            log-probabilities, not logits.

        Steps and shapes:
            get_embeddings                          (B, T, E)
            each layer of self.layers, in order     (B, T, E)
            self.classifier                         (B, T, V) logits
            log-softmax over the vocabulary         (B, T, V)
        """
        ### BEGIN SOLUTION
        hidden_states = self.get_embeddings(inputs)  # (B, T, E)
        for layer in self.layers:
            hidden_states = layer(hidden_states)  # (B, T, E)
        logits = self.classifier(hidden_states)  # (B, T, V)
        return F.log_softmax(logits, dim=-1)
        ### END SOLUTION

    def loss(self, log_probas, targets, mask):
        """The mean negative log-likelihood, as in Problem 1.

        Args:
            log_probas: (B, T, V) float tensor of log-probabilities (what forward returns).
            targets: (B, T) long tensor, the next tokens (0 at padded positions).
            mask: (B, T) float tensor, 1.0 where targets is a real token, 0.0 at padding.
        Returns:
            A 0-dim tensor: the mean over the batch of each sequence's mean negative
            log-likelihood over its real tokens.
        """
        ### BEGIN SOLUTION
        nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
        mask = mask.to(nll.dtype)  # (B, T)
        return ((nll * mask).sum(dim=1) / mask.sum(dim=1)).mean()  # (B,) -> 0-dim
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_MiniGPT1_get_embeddings", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 6: get_embeddings (a model without layers: only the embeddings are used).
import torch

from course_lib.grading.checks import assert_shape, grade, quiet

CASES = [(2, 5), (3, 6), (1, 1)]  # (B, T); V = 11, E = 8, sequence_length = 6
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 5), (3, 7), (1, 1)]  # (B, T); V = 13, E = 6, sequence_length = 7


def _embedding_weights(seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(13, 6, generator=g)
    tokens[0] = 0.0
    return {"tokens.weight": tokens, "position.weight": torch.randn(7, 6, generator=g)}


def _hidden_inputs(i):
    B, T = HIDDEN[i]
    return torch.randint(0, 13, (B, T), generator=torch.Generator().manual_seed(60 + i))
### END HIDDEN TESTS


def run():
    g = torch.Generator().manual_seed(0)
    out = {"embeddings": []}
    for B, T in CASES:
        inputs = torch.randint(0, 11, (B, T), generator=g)
        with quiet():
            model = MiniGPT1(vocabulary_size=11, embedding_size=8, sequence_length=6, num_heads=2, num_layers=0)
            out["embeddings"].append(model.get_embeddings(inputs))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, T) in enumerate(HIDDEN):
        with quiet():
            model = MiniGPT1(vocabulary_size=13, embedding_size=6, sequence_length=7, num_heads=3, num_layers=0)
            model.embedding.load_state_dict(_embedding_weights(70 + i))
            out["hidden"].append(model.get_embeddings(_hidden_inputs(i)))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T) in enumerate(CASES):
        assert_shape(out["embeddings"][i], (B, T, 8), name=f"get_embeddings for inputs of shape {(B, T)}", dims="B, T, E")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    for i, (B, T) in enumerate(HIDDEN):
        w = _embedding_weights(70 + i)
        inputs = _hidden_inputs(i)
        expected = w["tokens.weight"][inputs] + w["position.weight"][:T].unsqueeze(0)  # positions 0 .. T-1
        assert_close(out["hidden"][i], expected, name=f"get_embeddings (token + position embeddings), inputs of "
                     f"shape {(B, T)}", atol=1e-6)
    ### END HIDDEN TESTS


grade("test_MiniGPT1_get_embeddings", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# The next test calls your `forward` on a model whose `get_embeddings` and layers are replaced by
# stand-ins (fixed embeddings, and a linear layer followed by `tanh` instead of the two blocks),
# so that it tests `forward` alone, whatever the state of your attention and `get_embeddings`.

# %% nbgrader={"grade": true, "grade_id": "test_MiniGPT1_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 7: forward, with stand-ins for get_embeddings and the layers.
import torch
from torch import nn

from course_lib.grading.checks import assert_shape, grade, quiet

V, E, S = 11, 8, 6  # vocabulary size, embedding size, sequence_length


def _stand_ins(seed):
    """Token and position embeddings, a table for the stand-in get_embeddings, a linear layer's weights."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(V, E, generator=g)
    tokens[0] = 0.0
    return {"tokens": tokens, "position": torch.randn(S, E, generator=g), "table": torch.randn(V, E, generator=g),
            "weight": torch.randn(E, E, generator=g) / E ** 0.5, "bias": 0.5 * torch.randn(E, generator=g)}


def _model_with_stand_ins(seed):
    w = _stand_ins(seed)
    model = MiniGPT1(vocabulary_size=V, embedding_size=E, sequence_length=S, num_heads=2, num_layers=2).eval()
    model.embedding.load_state_dict({"tokens.weight": w["tokens"], "position.weight": w["position"]})
    linear = nn.Linear(E, E)
    linear.load_state_dict({"weight": w["weight"], "bias": w["bias"]})
    model.layers = nn.ModuleList([linear, nn.Tanh()])  # stand-ins for the two blocks
    model.get_embeddings = lambda inputs: w["table"][inputs]  # a stand-in for your get_embeddings: (B, T, E)
    return model


CASES = [(2, 5, 0), (3, 6, 1)]  # (B, T, seed)
### BEGIN HIDDEN TESTS


def _expected(seed, inputs):
    """log_softmax(classifier(tanh(linear(h)))) in float64, for the stand-in embeddings (and, if your
    forward computes the embeddings itself, the real ones)."""
    w = {k: v.double() for k, v in _stand_ins(seed).items()}
    T = inputs.shape[1]
    out = []
    for h in (w["table"][inputs], w["tokens"][inputs] + w["position"][:T]):
        features = torch.tanh(h @ w["weight"].T + w["bias"])
        out.append(torch.log_softmax(features @ w["tokens"].T, dim=-1))
    return out


def _inputs(B, T, seed):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(80 + seed))
### END HIDDEN TESTS


def run():
    out = {"log_probas": []}
    for B, T, seed in CASES:
        inputs = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(80 + seed))
        with quiet():
            out["log_probas"].append(_model_with_stand_ins(seed)(inputs))
    return out


def check(out):
    for i, (B, T, seed) in enumerate(CASES):
        assert_shape(out["log_probas"][i], (B, T, V), name=f"MiniGPT1 log_probas for inputs of shape {(B, T)}", dims="B, T, V")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close, to_tensor

    for i, (B, T, seed) in enumerate(CASES):
        with_stand_in, with_real_embeddings = _expected(seed, _inputs(B, T, seed))
        got = to_tensor(out["log_probas"][i])
        if torch.allclose(got, with_real_embeddings, atol=1e-5):
            continue  # your forward computed the embeddings itself, correctly
        assert_close(got, with_stand_in, name="MiniGPT1 log-probabilities (stand-in embeddings and layers)", atol=1e-5)
    ### END HIDDEN TESTS


grade("test_MiniGPT1_forward", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MiniGPT1_loss", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Question 8: the loss.
import torch

from course_lib.grading.checks import as_float, assert_true, grade, quiet

LENGTHS = [4, 1, 5]  # real tokens of each sequence; T = 5, V = 7


def _batch(seed):
    """Log-probabilities (B, T, V), targets (B, T) with 0 at padding and the float mask (B, T)."""
    g = torch.Generator().manual_seed(seed)
    B, T, V = len(LENGTHS), 5, 7
    log_probas = torch.log_softmax(torch.randn(B, T, V, generator=g), dim=-1)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).float()
    targets = torch.randint(1, V, (B, T), generator=g) * mask.long()
    return log_probas, targets, mask


def run():
    log_probas, targets, mask = _batch(0)
    with quiet():
        model = MiniGPT1(vocabulary_size=7, embedding_size=4, sequence_length=5, num_heads=2, num_layers=0)
        out = {"loss": model.loss(log_probas, targets, mask)}
    ### BEGIN HIDDEN TESTS
    log_probas, targets, mask = _batch(2)
    log_probas = log_probas.clone().requires_grad_(True)
    with quiet():
        loss = model.loss(log_probas, targets, mask)
    connected = isinstance(loss, torch.Tensor) and loss.requires_grad
    if connected:
        loss.backward()
    out["hidden"] = {"loss": loss, "connected": connected, "grad": log_probas.grad}
    ### END HIDDEN TESTS
    return out


def check(out):
    loss = as_float(out["loss"], name="MiniGPT1.loss(log_probas, targets, mask)")  # a single number
    assert_true(loss == loss and loss > 0, f"a negative log-likelihood is a positive number, got {loss}")
    ### BEGIN HIDDEN TESTS
    from course_lib.grading.checks import assert_close

    log_probas, targets, mask = _batch(2)
    per_sequence = []
    for b, n in enumerate(LENGTHS):
        per_sequence.append(-sum(float(log_probas[b, t, targets[b, t]]) for t in range(n)) / n)
    got = out["hidden"]
    assert_close(as_float(got["loss"], name="MiniGPT1.loss"), sum(per_sequence) / len(per_sequence),
                 name="MiniGPT1.loss (mean over the batch of each sequence's mean NLL over its real tokens)", rtol=1e-5)
    assert_true(got["connected"] is True, "MiniGPT1.loss should return a tensor connected to log_probas (so that .backward() works)")
    grad = torch.zeros(len(LENGTHS), 5, 7, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        for t in range(n):
            grad[b, t, targets[b, t]] = -1.0 / (n * len(LENGTHS))
    assert_close(got["grad"], grad, name="gradient of MiniGPT1.loss with respect to log_probas", atol=1e-6)
    ### END HIDDEN TESTS


grade("test_MiniGPT1_loss", run, check, forbid=["course_solutions.layers"])

# %% [markdown]
# **Check your GPT.** A one-layer `MiniGPT1` at the handout's sizes (`E = 768`, 12 heads) has
# 7,087,872 parameters without its embeddings (which the handout froze), the number quoted with
# the handout. Below, also a check that it is causal: changing a token changes no prediction
# before it.

# %%
gpt_model = MiniGPT1(num_layers=1)
embedding_params = sum(p.numel() for p in gpt_model.embedding.parameters())
print(f"MiniGPT1 (1 layer): {sum(p.numel() for p in gpt_model.parameters()) - embedding_params:,} parameters "
      f"without the embeddings, plus {embedding_params:,} in the token (tied) and positional embeddings")
tiny_gpt = MiniGPT1(vocabulary_size=50, embedding_size=16, sequence_length=10, num_heads=4, num_layers=2).eval()
some_tokens = torch.randint(1, 50, (1, 10))  # (B, T)
one_changed = some_tokens.clone()
one_changed[0, 6] = (some_tokens[0, 6] % 49) + 1
with torch.no_grad():
    change = (tiny_gpt(some_tokens) - tiny_gpt(one_changed)).abs().amax(dim=-1)[0]  # (T,)
print("largest change of the predictions at each position after changing token 6:", change.numpy().round(4))
del gpt_model, tiny_gpt

# %% [markdown]
# ---
# ## Problem 3: Training language models and model comparison [25 pts]
#
# In language modelling the performance metric is based directly on the cross-entropy loss, the
# negative log-likelihood (NLL) the model assigns to the tokens. For word-level language
# modelling it is standard to report the **perplexity** (PPL), the exponentiated average
# per-token NLL over all tokens:
#
# $$\exp\left(\frac{1}{TM}\sum_{t=1}^{T}\sum_{j=1}^{M}-\log p(\boldsymbol{w}_{t}^{(j)} \mid \boldsymbol{w}_{1}^{(j)}, \ldots, \boldsymbol{w}_{t-1}^{(j)}; \boldsymbol{\theta})\right),$$
#
# where $t$ indexes the positions within a sequence and $j$ the sequences. This problem is about
# model exploration, which is done with the **validation** set (the test set is not used).
#
# The runner `course_lib.runners.gpt_attention` plays the role of the handout's `run_exp.py`: the
# 12 configurations at its top, numbered as there, each trained for 10 epochs with batches of 16
# sequences and a learning rate of 1e-3 (Adam; AdamW, SGD and SGD with momentum 0.9 with weight
# decay 5e-4). For each run it logs, per epoch, the train and validation perplexity, the
# wall-clock time, the peak memory and the throughput (tokens per second), and it resumes an
# interrupted run from its last finished epoch. Below it trains **your** `LSTM` and `MiniGPT1`.
# Note: for each experiment, report the **lowest validation perplexity across epochs** (not
# necessarily the last epoch's).
#
# **Where to run it.** The full runs need a GPU: each one is 10 epochs over the 2 million words
# of the training set. On a 2-core CPU the runner trains about 330 (LSTM) and 270 (GPT) tokens
# per second: 18 to 21 hours per run. The runner uses bf16 mixed precision on a GPU. With `COURSE_FAST=1` (set
# it before starting Jupyter) every configuration keeps its architecture, optimizer and settings
# but runs 3 epochs on 32 short sequences (24 optimizer steps), at embedding size 64, in seconds on
# a CPU: a check that everything works (Adam already pulls away from SGD), not results. Full runs keep their logs in the user cache (or in
# `$COURSE_RUNS_DIR/gpt_attention`; on Colab, point `COURSE_RUNS_DIR` at your Google Drive so
# that the logs survive a disconnection), so running a cell again continues where it stopped
# and reads finished runs back. From the command line, the same runner with the reference
# models of `course_solutions.layers`:
#
# ```
# python -m course_lib.runners.gpt_attention --list         # the 12 configurations and their status
# python -m course_lib.runners.gpt_attention --config 1 5   # experiments 1 and 5
# python -m course_lib.runners.gpt_attention --all          # all 12, skipping finished ones
# ```

# %% tags=["experiment"]
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from course_lib.data import DataError
from course_lib.runners import gpt_attention as ga

# Your LSTM and MiniGPT1 (the command line uses the reference classes of course_solutions.layers).
make_model = ga.model_factory_from(lstm=LSTM, gpt=MiniGPT1)
# Fast mode trains afresh in a temporary folder; full runs keep (and resume) their logs.
LOG_DIR = Path(tempfile.mkdtemp(prefix="gpt_attention-fast-")) if fast_mode() else ga.default_log_dir()


def train(numbers):
    """Train (or resume, or read back) the experiments `numbers` (1-12) with your classes, one after
    the other; returns {number: RunResult}. A progress bar counts the experiments, another the
    optimizer steps of the current one, and every finished epoch prints a line."""
    results = {}
    experiments_bar = tqdm(total=len(numbers), desc="experiments", unit="run")
    steps_bar = tqdm(desc="steps", unit="step")
    for number in numbers:
        steps_bar.reset(total=0)  # stays at 0/0 for a finished run that is read back
        steps_bar.set_description(f"experiment {number}: steps")
        results[number] = ga.run(number, model_factory=make_model, progress=False, log_dir=LOG_DIR,
                                 on_start=lambda total: steps_bar.reset(total=total),
                                 on_step=lambda epoch, step: steps_bar.update())
        experiments_bar.update()
    steps_bar.close()
    experiments_bar.close()
    return results


ga.experiments(LOG_DIR)  # the 12 configurations of run_exp.py, and how far each one is

# %% [markdown]
# ### Q1: Learning curves [4 pts]
#
# The next cell runs the 12 experiments (one after the other; finished ones are read back from
# their logs, an interrupted one resumes) and plots the learning curves: train and validation perplexity against epochs and
# against wall-clock time, on a log scale (SGD's perplexities start in the thousands).

# %% tags=["experiment"]
results = train(list(ga.CONFIGS))  # all 12; e.g. train([1, 5]) for some of them
ga.plot_results(results, x="both", title="Your runs" + (" (fast mode: a check, not results)" if fast_mode() else ""));

# %% [markdown]
# Per-epoch perplexities of every run (the handout's Tables 1 to 12, side by side):

# %% tags=["experiment"]
pd.concat({result.label: result.history.set_index("epoch")[["train_ppl", "valid_ppl"]] for result in results.values()},
          axis=1).round(2)

# %% [markdown]
# **Recorded reference runs.** Below are full-size runs of the reference implementation
# (`course_solutions.layers`) recorded when the course was built, so that you can see what full runs
# look like even if you can only run fast mode. They are *not* your runs: answer the questions
# with your own full-size results.

# %% tags=["experiment"]
try:
    recorded = ga.load_recorded()
except DataError as err:
    recorded = None
    print(f"No recorded reference runs are available yet ({err})")
if recorded:
    devices = sorted({r.device_description for r in recorded.values() if r.device_description})
    print(f"RECORDED reference runs (not your runs), on {', '.join(devices) or 'an unknown device'}")
    ga.plot_results(recorded, x="both", title="Recorded reference runs (not your runs)")
    display(ga.results_table(recorded))

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q1", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1** [4 pts] For each of the 12 experiments, plot the learning curves (train and validation)
# of perplexity over both **epochs** and **wall-clock time**. Figures should have labeled axes,
# a legend and an explanatory caption. Paste or describe your figures below (the plots above are
# made from your runs; in a written report, include them with their captions).

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q1", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the runs).* 2 pts: the four kinds of curves (train and validation
# perplexity, each against epochs and against wall-clock time) for all 12 full-size runs, not
# fast mode; 1 pt: labeled axes with units, a legend that identifies each experiment by its
# number in `run_exp.py`, a log-scale perplexity axis (or separate panels) so that the SGD runs
# do not flatten the others; 1 pt: an explanatory caption (what is plotted, that train
# perplexity is measured during the epoch and validation after it, what the markers mean).
# Expected picture: Adam and AdamW drop within an epoch or two to the low hundreds, SGD and SGD
# with momentum stay in the thousands after 10 epochs; GPT's validation curve reaches its minimum
# after a few epochs and rises again while its train curve keeps falling; against wall-clock time
# the deeper models' curves are stretched to the right.

# %% [markdown]
# ### Q2: Results table [3 pts]
#
# The table of your runs: sorted by architecture, then number of layers, then optimizer, with the
# experiment numbers of `run_exp.py`; the best validation perplexity of each architecture is in
# bold.

# %% tags=["experiment"]
ga.results_table(results, caption=None if not fast_mode() else
                 "FAST MODE (3 epochs on 32 short sequences, embedding size 64): a check, not results. "
                 "ppl = exp(mean NLL per real token); best valid ppl: the lowest validation ppl across epochs; "
                 "s/epoch: seconds per epoch; memory: peak memory (MiB); tokens/s: training throughput. "
                 "Bold: the best validation ppl of each architecture.")

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q2", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2** [3 pts] Make a table of results summarizing the train and validation performance of each
# experiment, indicating the architecture and optimizer. Sort by architecture, then number of
# layers, then optimizer, and use the same experiment numbers as in the runner script for easy
# reference. Bold the best result for each architecture. The table should have an explanatory
# caption and appropriate column and/or row headers; explain any shorthand or symbols in the
# caption.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q2", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the runs).* 1 pt: all 12 experiments with their numbers,
# architecture, layers and optimizer, and at least the best (lowest across epochs, with its
# epoch) validation perplexity and a train perplexity, from full-size runs; 1 pt: the order
# (architecture, then layers, then optimizer) and the best validation perplexity of each
# architecture in bold; 1 pt: a caption that explains the columns and abbreviations (ppl, what
# "best" means, units of time and memory). Typically the best LSTM is experiment 2 or 9
# (AdamW, 1 or 2 layers) and the best GPT experiment 5 or 6 (Adam/AdamW, 1 layer).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q3", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3** [3 pts] Which hyperparameters + optimizer would you use if you were most concerned with
# wall-clock time? With generalization performance?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q3", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* For **wall-clock time**, what matters is the time
# to reach a good validation perplexity, not the time per epoch: all optimizers cost about the
# same per step, so an adaptive optimizer (Adam or AdamW, lr 1e-3) with a **single layer** wins;
# SGD and momentum are barely cheaper per epoch but are far from converged after 10 epochs.
# Among the 1-layer models, the faster architecture per epoch on a GPU (the GPT's attention is
# parallel over time, the LSTM is sequential; compare the tokens/s column), reaching its best
# validation perplexity within a few epochs, with early stopping there. For **generalization**,
# the configuration with the lowest best validation perplexity, typically an LSTM with AdamW
# (weight decay) and 1 or 2 layers (experiment 2 or 9), stopped at its best epoch; a deeper
# model only helps if it is regularized.
#
# *Rubric:* 1 pt a concrete choice for wall-clock time, justified with time per epoch *and*
# epochs to converge (from the curves against time); 1 pt a concrete choice for generalization,
# justified by the best validation perplexity; 1 pt the answers are consistent with the
# student's own table (numbers quoted).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q4", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q4** [4 pts] Between the experiment configurations 1-4 and 5-8 at the top of `run_exp.py`,
# only the optimizer changed. What difference did you notice about the four optimizers used?
# What was the impact of weight decay, momentum, and Adam?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q4", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* With the same learning rate (1e-3) for all four,
# **Adam and AdamW** converge by far the fastest and reach the lowest perplexities (low hundreds
# after a few epochs), for both architectures: Adam scales each parameter's step by a running
# estimate of its gradient's magnitude, so rare words' embeddings and small gradients still get
# useful steps. **Plain SGD** at lr 1e-3 is much too slow: after 10 epochs its perplexity is
# still in the thousands (it mostly learns the unigram distribution). **Momentum** (0.9)
# accumulates past gradients, an effective step about 10 times larger, so it is clearly better
# than SGD but still far behind Adam. **Weight decay** (5e-4) changes little in 10 epochs:
# AdamW's decoupled decay is a mild regularizer (slightly lower or similar validation perplexity
# than Adam, slightly higher train perplexity, later or weaker overfitting); with SGD the same
# coefficient is an L2 penalty that only slows it further.
#
# *Rubric:* 1 pt adaptive (Adam/AdamW) much faster and better than SGD, with numbers; 1 pt SGD
# too slow at this learning rate, momentum helps (why); 1 pt the effect of weight decay
# (small, regularizing; decoupled in AdamW); 1 pt the same ranking or differences noted for both
# architectures, consistent with the student's table.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q5", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q5** [3 pts] Compare experiments 1 and 5. Which model did you think performed better (LSTM or
# GPT)? Why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q5", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* Both use Adam and one layer. The GPT typically
# drops faster in the first epochs and reaches a lower *train* perplexity, but its validation
# perplexity bottoms out after a few epochs and then rises (overfitting), while the LSTM improves
# more slowly and steadily; their best validation perplexities end up close, and the better one
# by the best validation perplexity is the answer (in the handout's sample runs the LSTM was
# slightly better, 146 vs 147). Reasons: the 1-layer GPT has more parameters (about 7.1 M besides
# the embeddings vs 3.0 M), no recurrence to bias it towards local, sequential patterns, and no
# regularization (no dropout), so on 2 million words it memorizes faster; it is also faster per
# epoch on a GPU (parallel over time), so per unit of wall-clock time it may be the better model.
#
# *Rubric:* 1 pt a clear verdict based on the best validation perplexity (numbers quoted);
# 1 pt an observation about the curves (speed of convergence, overfitting of the GPT); 1 pt a
# plausible reason (capacity vs data, inductive bias of recurrence, no regularization, cost per
# epoch).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q6", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q6** [3 pts] In configurations 5-8 and in configurations 11 and 12, you trained a transformer
# with various hyper-parameter settings. Given the recent high profile transformer based language
# models, are the results as you expected? Speculate as to why or why not.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q6", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* Not really: large Transformers beat LSTMs by wide
# margins, but here the GPT is at best on par with the LSTM, is very sensitive to the optimizer
# (SGD and momentum are useless at this learning rate) and **does not get better with depth**:
# the 2- and especially the 4-layer models (11, 12) reach worse validation perplexities in 10
# epochs (in the handout's sample runs the 4-layer GPT stayed stuck near 1,500). Reasons: the
# successful Transformers are trained on orders of magnitude more data (2 million words is tiny,
# so capacity turns into overfitting, and there is no dropout here), for much longer, with a
# learning-rate **warm-up and decay schedule**, gradient clipping and careful initialization.
# This GPT uses GPT-1's *post-LayerNorm* blocks, which are known to be unstable to train
# without warm-up (the gradients of the early layers are poorly scaled), more so the deeper the
# model; a pre-LN layout or a warm-up would likely fix the deep runs.
#
# *Rubric:* 1 pt compares with expectations (Transformers should win, and depth should help)
# using the student's numbers; 1 pt data/regularization/overfitting argument; 1 pt an
# optimization argument (no warm-up or schedule, post-LN instability, fixed lr 1e-3, too few
# epochs).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q7", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q7** [3 pts] For each of the experiment configurations above, measure the average
# steady-state GPU memory usage (`nvidia-smi` is your friend!). Comment about the GPU memory
# footprints of each model, discussing reasons behind increased or decreased memory consumption
# where applicable.
#
# (The runner records the peak memory of each epoch in its logs: on a GPU,
# `torch.cuda.max_memory_allocated`, the memory held by tensors, and also the allocator's
# reserved memory, closer to what `nvidia-smi` shows; the table's memory column is the
# steady-state value, the largest peak over the epochs after the first.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q7", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* The memory does not depend on the optimizer
# except for its state: Adam and AdamW keep two extra tensors per parameter (the moments),
# momentum one, plain SGD none, so for the same model SGD uses the least memory (about
# 2 x 4 bytes per parameter, some 230 to 260 MB for the 29 to 33 million parameters of the
# 1-layer models, most of them in the embedding matrix). A large, fixed part comes from the **output layer**: the logits and log-probabilities
# of shape `(B, T, V)` = 16 x 256 x 33,279 values (about 545 MB each in fp32) and their
# gradients, the same for both architectures and all depths. On top of that, the activations
# kept for the backward pass grow **linearly with the number of layers**: for the LSTM, each
# layer stores its gates and states for every time step (`B x T x 4 hidden_size`), so
# experiments 9 and 10 use a little more than 1-4; for the GPT, each block stores its
# projections, its MLP activations (`B x T x 4E`) and the **attention weights of every head,
# `B x H x T x T`** (quadratic in the sequence length), so GPT layers cost more memory than LSTM
# layers and experiments 11 and 12 grow fastest. The GPT's parameters per layer (7.1 M vs 2.1 to
# 2.6 M for an LSTM layer) add weights, gradients and optimizer state as well.
#
# *Rubric:* 1 pt memory numbers per experiment (measured, steady state); 1 pt growth with depth
# explained by stored activations (attention `T x T` maps for the GPT); 1 pt another correct
# factor (output layer over the vocabulary, optimizer state, parameter counts).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q8", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q8** [2 pts] Comment on the overfitting behavior of the various models you trained, under
# different hyper-parameter settings. Did a particular class of models overfit more easily than
# the others? Can you make an informed guess of the various steps a practitioner can take to
# prevent overfitting in this case? (You might want to refer to sets of experiments 2, 9, 10 for
# the LSTM and 6, 11, 12 for GPT that evaluate models of increasing capacities.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q8", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* Overfitting shows as a train perplexity that keeps
# falling while the validation perplexity reaches a minimum and rises. The **GPT models overfit
# most easily** (with Adam/AdamW the validation minimum comes after 3-5 epochs, then the gap
# grows quickly); the LSTMs overfit later and less, more so with 2 layers than 1 (experiments 2,
# 9, 10: more capacity, earlier minimum), while the 4-layer models are limited by optimization
# rather than overfitting within 10 epochs. SGD and momentum never get far enough to overfit.
# Learned embeddings (25.6 M parameters) make overfitting worse than with the handout's frozen
# ones. To prevent it: early stopping on the validation perplexity (keep the best epoch);
# dropout (on embeddings, attention weights and residual branches; none is used here); stronger
# weight decay; smaller or shared embeddings (freezing pretrained ones, as the handout did);
# more data or data augmentation; smaller models; and a learning-rate schedule.
#
# *Rubric:* 1 pt which models overfit (GPT more, and when; capacity trend with depth), with
# evidence from the curves; 1 pt at least two sensible remedies (early stopping, dropout, weight
# decay, more data, smaller model or frozen embeddings).
