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
#   test cells. The checks you see there are *public checks*: unlike the handout's, which only
#   tested shapes, they check **values** on small examples, either a value the test works out
#   or a property you can reason about (attention rows sum to one and never look at the future,
#   exponentiated log-probabilities sum to one, an LSTM read in two pieces gives what it gives at
#   once, agreement with `nn.LayerNorm`, `nn.MultiheadAttention` or
#   `F.scaled_dot_product_attention`, which the checks may use and your code may not). They catch
#   many mistakes, but passing them is not the grade: when the notebook is graded, hidden tests
#   with other inputs and edge cases are added to the same cells. A mistake in one function costs
#   only that function's points: where a method uses another one (the attention's `forward` uses
#   your `split_heads`, ...), the test says so, and its checks accept a result that is right given
#   your own version of the other method.
# - Some functions are **disabled while the tests run**, as in the handout: `nn.LayerNorm` (and
#   `F.layer_norm`) in the LayerNorm test, `nn.MultiheadAttention` and
#   `F.scaled_dot_product_attention` in the attention tests, building any module (and
#   `.parameters()`) in the `attention_parameters` test, and the course's reference
#   implementations (`course_solutions.layers`) everywhere. Outside the tests you may use them to
#   check your work (this notebook does, below each part).
# - **Written answers** (Problem 3) go in the markdown cells that say `YOUR ANSWER HERE`, right
#   below each question, with your plots and tables.
# - When grading, the notebook is re-run from top to bottom in *fast mode* (`COURSE_FAST=1`) and
#   the training cells (Problem 3) are not re-run: they keep the outputs you left in the notebook.
#   So run them yourself, at the `laptop` or `full` scale (Problem 3 explains both), before you
#   submit.
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
                log-probabilities, not logits.
            hidden_states: the final state (h, c) of the LSTM, each (num_layers, B, hidden_size).
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
            A 0-dim tensor: the loss of question 2 above, the mean over the B sequences of the
            batch of each sequence's loss L over its real tokens.
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

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet, to_tensor

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


def _chained_case():
    """Token ids (2, 6) and a random initial state (h, c) for a 2-layer LSTM with hidden_size 4."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 11, (2, 6), generator=g), (torch.randn(2, 2, 4, generator=g), torch.randn(2, 2, 4, generator=g))


def run():
    g = torch.Generator().manual_seed(0)
    out = {"log_probas": []}
    for B, T, layers in CASES:
        inputs = torch.randint(0, 11, (B, T), generator=g)
        with quiet():
            model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=layers)
            log_probas, _ = model(inputs, model.initial_states(B))
        out["log_probas"].append(log_probas)
    # One sequence of 6 tokens from a random initial state, read at once, then in two pieces: tokens
    # 0-1 from that state, and tokens 2-5 from the state the first piece returned.
    inputs, state = _chained_case()
    with quiet(), torch.no_grad():
        model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=2).eval()
        out["whole"], _ = model(inputs, state)
        try:
            first, state_after = model(inputs[:, :2], state)
            out["pieces"] = [first, model(inputs[:, 2:], state_after)[0]]
        except Exception:  # a final state that cannot be passed back: test_LSTM_forward_states says why
            out["pieces"] = None
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
        # log-probabilities, not logits: at every position, exp(log_probas) sums to 1 over the vocabulary
        total = to_tensor(out["log_probas"][i], name="LSTM log_probas").exp().sum(dim=-1)  # (B, T)
        assert_close(total, torch.ones(B, T, dtype=torch.float64), atol=1e-4,
                     name=f"exp(log_probas).sum(dim=-1) (num_layers={layers}): log-probabilities sum to 1 once exponentiated")
    # The state carries the past: reading a sequence in two pieces, the second one starting from the
    # state the first returned, gives the same predictions as reading it at once from the same state.
    assert_shape(out["whole"], (2, 6, 11), name="LSTM log_probas for a (2, 6) input", dims="B, T, V")
    if out["pieces"] is not None:
        first, second = out["pieces"]
        assert_close(first, to_tensor(out["whole"])[:, :2], atol=1e-5,
                     name="log_probas of tokens 0-1 (from a random initial state) vs the same positions read at once")
        assert_close(second, to_tensor(out["whole"])[:, 2:], atol=1e-5,
                     name="log_probas of tokens 2-5, starting from the state the first piece returned, vs the same "
                          "positions of the sequence read at once from the initial state (is forward using hidden_states?)")
    ### BEGIN HIDDEN TESTS
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

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet

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


def _as_list(states):
    return list(states) if isinstance(states, (tuple, list)) else states


def _chained_case():
    """Token ids (2, 6) and a random initial state (h, c) for a 2-layer LSTM with hidden_size 4."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 11, (2, 6), generator=g), (torch.randn(2, 2, 4, generator=g), torch.randn(2, 2, 4, generator=g))


def run():
    g = torch.Generator().manual_seed(0)
    out = {"states": []}
    for B, T, layers in CASES:
        inputs = torch.randint(0, 11, (B, T), generator=g)
        with quiet():
            model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=layers)
            _, states = model(inputs, model.initial_states(B))
        out["states"].append(_as_list(states))
    # One sequence of 6 tokens from a random initial state, read at once, then in two pieces: tokens
    # 0-1 from that state, and tokens 2-5 from the state the first piece returned.
    inputs, state = _chained_case()
    with quiet(), torch.no_grad():
        model = LSTM(vocabulary_size=11, embedding_size=6, hidden_size=4, num_layers=2).eval()
        out["whole"] = _as_list(model(inputs, state)[1])
        out["pieces"] = _as_list(model(inputs[:, 2:], model(inputs[:, :2], state)[1])[1])
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for seed, B, T, V, hidden, layers in HIDDEN:
        inputs, state = _hidden_case(seed, B, T, V, hidden, layers)
        with quiet():
            model = LSTM(vocabulary_size=V, embedding_size=4, hidden_size=hidden, num_layers=layers).eval()
            model.load_state_dict(_lstm_weights(V, 4, hidden, layers, seed))
            _, states = model(inputs, state)
        out["hidden"].append(_as_list(states))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, layers) in enumerate(CASES):
        states = out["states"][i]
        assert_true(isinstance(states, list) and len(states) == 2,
                    "forward should return (log_probas, (h, c)): the final state is a tuple of two tensors")
        for name, value in zip("hc", states):
            assert_shape(value, (layers, B, 4), name=f"final {name} (num_layers={layers})", dims="num_layers, B, hidden_size")
    # The final state summarises everything read so far: after the second piece (started from the
    # state the first piece returned) it is the final state of the whole sequence.
    for key in ("whole", "pieces"):
        assert_true(isinstance(out[key], list) and len(out[key]) == 2,
                    "forward should return (log_probas, (h, c)): the final state is a tuple of two tensors")
    for name, whole, pieces in zip("hc", out["whole"], out["pieces"]):
        assert_close(pieces, whole, atol=1e-5, name=f"final {name} after tokens 0-1 then 2-5 (passing the state along) "
                     "vs after reading the 6 tokens at once, from the same random initial state")
    ### BEGIN HIDDEN TESTS
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

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

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


def _expected_loss(seed):
    """The loss written out with loops: each sequence's mean NLL over its real tokens, then the mean over sequences."""
    log_probas, targets, _ = _batch(seed)
    per_sequence = []
    for b, n in enumerate(LENGTHS):
        per_sequence.append(-sum(float(log_probas[b, t, targets[b, t]]) for t in range(n)) / n)
    return sum(per_sequence) / len(per_sequence)


def check(out):
    loss = as_float(out["loss"], name="LSTM.loss(log_probas, targets, mask)")  # a single number
    assert_true(loss == loss and loss > 0, f"a negative log-likelihood is a positive number, got {loss}")
    # sequences of 5, 2, 4 real tokens: each sequence counts as much as the others, whatever its length
    assert_close(loss, _expected_loss(0), rtol=1e-5, name="LSTM.loss on the test's batch (the mean over its "
                 "3 sequences of each one's mean NLL over its real tokens)")
    ### BEGIN HIDDEN TESTS
    log_probas, targets, mask = _batch(1)
    got = out["hidden"]
    assert_close(as_float(got["loss"], name="LSTM.loss"), _expected_loss(1),
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
            (*dims, hidden_size), the same shape: each vector inputs[..., :] normalized as in the
            formula above, with the affine parameters self.weight and self.bias, of shape (E,).
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


def _affine_case():
    """Inputs (2, 3, 4), and a weight and a bias (4,) chosen by the test."""
    g = torch.Generator().manual_seed(1)
    return 3 * torch.randn(2, 3, 4, generator=g) - 1, torch.randn(4, generator=g), torch.randn(4, generator=g)


def run():
    g = torch.Generator().manual_seed(0)
    outputs = []
    for shape in SHAPES:
        x = 10 * torch.randn(*shape, generator=g) + 3
        with quiet():
            outputs.append(LayerNorm(shape[-1])(x))
    out = {"outputs": outputs}
    x, weight, bias = _affine_case()
    with quiet():
        layer = LayerNorm(4)
        layer.load_state_dict({"weight": weight, "bias": bias})
        out["affine"] = layer(x)
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
    # With a weight and a bias chosen by the test, the same numbers as nn.LayerNorm (the check may use it).
    x, weight, bias = _affine_case()
    reference = torch.nn.LayerNorm(4).double()
    reference.load_state_dict({"weight": weight.double(), "bias": bias.double()})
    with torch.no_grad():
        expected = reference(x.double())
    assert_close(out["affine"], expected, atol=1e-5, rtol=1e-4,
                 name="LayerNorm(4)(x) with the test's weight and bias vs nn.LayerNorm(4) with the same ones")
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
#    `head_size * i + j`, the same number when `num_heads == head_size`, as in the example's
#    4 heads of size 4.) The two functions are exact inverses of each other. They must handle
#    mini-batches, and take the size of each head's vector from their input, which need not be
#    `head_size`: as in the original course's public tests, the tests below also split and merge
#    8 heads of vectors of size 3 in a module whose `head_size` is 4 (see the docstrings).
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
            attends to position tau, the causal attention weights A_i of the equations above.
            Each row is a distribution over tau (it sums to 1), with no weight on the future
            (tau > t).
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
                the H heads concatenated, each of size dim. dim is usually D, but take it from
                the input (the tests also use other sizes).
        Returns:
            (B, H, T, dim) float tensor y with y[b, i, t, j] = tensor[b, t, i * dim + j];
            merge_heads is its exact inverse.
        """
        ### BEGIN SOLUTION
        B, T, width = tensor.shape
        heads = tensor.reshape(B, T, self.num_heads, width // self.num_heads)  # (B, T, H, D)
        return heads.transpose(1, 2)  # (B, H, T, D)
        ### END SOLUTION

    def merge_heads(self, tensor):
        """Concatenate the head vectors again (the inverse of split_heads).

        Args:
            tensor: (B, H, T, dim) float tensor, the vectors of each head (dim: as in split_heads,
                taken from the input).
        Returns:
            (B, T, H * dim) float tensor x, e.g. (B, T, E), with x[b, t, i * dim + j] =
            tensor[b, i, t, j].
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
            (B, T, E) float tensor: A(Q, K, V) of the equations above, with the projections
            q_proj, k_proj, v_proj and out_proj. Use your split_heads and apply_attention.
        """
        ### BEGIN SOLUTION
        queries = self.split_heads(self.q_proj(hidden_states))  # (B, H, T, D)
        keys = self.split_heads(self.k_proj(hidden_states))  # (B, H, T, D)
        values = self.split_heads(self.v_proj(hidden_states))  # (B, H, T, D)
        return self.out_proj(self.apply_attention(queries, keys, values))  # (B, T, E)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_split_heads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 2: split_heads (4 heads of size 4, as in the handout's example; then 8 heads whose vectors
# have size 3, not head_size = 4, as in the original course's public test).
import torch

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet

### BEGIN HIDDEN TESTS
HIDDEN = [(2, 5, 3, 4), (1, 1, 2, 6), (3, 4, 1, 5), (2, 3, 6, 2)]  # (B, T, H, D)
### END HIDDEN TESTS


def run():
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).reshape(2, 3, 16)  # (B, T, H*D) = (2, 3, 4*4)
    with quiet():
        out = {"y": MultiHeadedAttention(head_size=4, num_heads=4, sequence_length=3).split_heads(x)}
    x = torch.arange(2 * 5 * 24, dtype=torch.float32).reshape(2, 5, 24)  # (B, T, H*dim) = (2, 5, 8*3)
    try:
        with quiet():
            out["dim_3"] = MultiHeadedAttention(head_size=4, num_heads=8, sequence_length=5).split_heads(x)
    except Exception as exc:  # check says what was asked
        out["dim_3"] = f"{type(exc).__name__}: {exc}"
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
    # 8 heads and an input of size 8 * 3: each head's vector has the input's size (3), not head_size (4).
    y = out["dim_3"]
    assert_true(not isinstance(y, str), f"split_heads of a (2, 5, 24) input with 8 heads (head_size=4) raised {y}: "
                "take the size of each head's vector from the input (24 / 8 = 3 here), not from head_size")
    assert_shape(y, (2, 8, 5, 3), name="split_heads(x) for x of shape (2, 5, 24) and 8 heads", dims="B, H, T, dim")
    x = torch.arange(2 * 5 * 24, dtype=torch.float64).reshape(2, 5, 24)
    expected = torch.stack([x[:, :, 3 * h:3 * (h + 1)] for h in range(8)], dim=1)  # head h: features 3h .. 3h + 2
    assert_equal(y, expected, name="split_heads(x) for x of shape (2, 5, 24) and 8 heads (y[b, i, t, j] = x[b, t, 3 * i + j])")
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
# Question 2: merge_heads (4 heads of size 4, as in the handout's example; then 8 heads of vectors
# of size 3, not head_size = 4, as in the original course's public test).
import torch

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet, to_tensor

### BEGIN HIDDEN TESTS
HIDDEN = [(2, 5, 3, 4), (1, 1, 2, 6), (3, 4, 1, 5), (2, 3, 6, 2)]  # (B, T, H, D)
### END HIDDEN TESTS


def run():
    y = torch.arange(2 * 4 * 3 * 4, dtype=torch.float32).reshape(2, 4, 3, 4)  # (B, H, T, D) = (2, 4, 3, 4)
    with quiet():
        out = {"x": MultiHeadedAttention(head_size=4, num_heads=4, sequence_length=3).merge_heads(y)}
    y = torch.arange(2 * 8 * 5 * 3, dtype=torch.float32).reshape(2, 8, 5, 3)  # (B, H, T, dim) = (2, 8, 5, 3)
    try:
        with quiet():
            out["dim_3"] = MultiHeadedAttention(head_size=4, num_heads=8, sequence_length=5).merge_heads(y)
    except Exception as exc:  # check says what was asked
        out["dim_3"] = f"{type(exc).__name__}: {exc}"
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
    # 8 heads whose vectors have size 3 (not head_size = 4): the output has 8 * 3 features.
    x = out["dim_3"]
    assert_true(not isinstance(x, str), f"merge_heads of a (2, 8, 5, 3) input (head_size=4) raised {x}: "
                "take the size of each head's vector from the input (3 here), not from head_size")
    assert_shape(x, (2, 5, 24), name="merge_heads(y) for y of shape (2, 8, 5, 3)", dims="B, T, H*dim")
    x, y = to_tensor(x), torch.arange(2 * 8 * 5 * 3, dtype=torch.float64).reshape(2, 8, 5, 3)
    for h in range(8):  # head h: features 3h .. 3h + 2
        assert_equal(x[:, :, 3 * h:3 * (h + 1)], y[:, h], name=f"merge_heads(y)[:, :, {3 * h}:{3 * h + 3}] (y of shape "
                     f"(2, 8, 5, 3): head {h}'s vectors, x[b, t, 3 * i + j] = y[b, i, t, j])")
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

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet, to_tensor

CASES = [(2, 3, 5, 4), (1, 2, 1, 3), (1, 1, 4, 2)]  # (B, H, T, D)


def _case(i):
    """Queries and keys (B, H, T, D) of CASES[i], from a fixed seed."""
    B, H, T, D = CASES[i]
    g = torch.Generator().manual_seed(i)
    return 2 * torch.randn(B, H, T, D, generator=g), 2 * torch.randn(B, H, T, D, generator=g)
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
    out = {"weights": []}
    for i, (B, H, T, D) in enumerate(CASES):
        queries, keys = _case(i)
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
    import torch.nn.functional as F

    for i, (B, H, T, D) in enumerate(CASES):
        what = f"queries and keys of shape {(B, H, T, D)}"
        assert_shape(out["weights"][i], (B, H, T, T), name=f"get_attention_weights for {what}", dims="B, H, T, T")
        weights = to_tensor(out["weights"][i], name="get_attention_weights")
        # Each row is a probability distribution over the positions tau.
        assert_close(weights.sum(dim=-1), torch.ones(B, H, T, dtype=torch.float64), atol=1e-5,
                     name=f"weights.sum(dim=-1) for {what} (each row of weights sums to 1)")
        # Causal: position t never attends to the future, tau > t.
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T): True where tau > t
        assert_close(weights[..., future], torch.zeros(B, H, int(future.sum()), dtype=torch.float64), atol=1e-6,
                     name=f"weights[b, i, t, tau] for tau > t (the future), {what}: the causal mask")
        # The values: F.scaled_dot_product_attention (allowed in the check, not in your code) returns
        # weights @ values; with the identity matrix as the values, that is the weights themselves.
        queries, keys = (t.double() for t in _case(i))
        identity = torch.eye(T, dtype=torch.float64).expand(B, H, T, T)
        expected = F.scaled_dot_product_attention(queries, keys, identity, is_causal=True)  # (B, H, T, T)
        assert_close(weights, expected, atol=1e-5, name=f"get_attention_weights for {what} vs "
                     "F.scaled_dot_product_attention(queries, keys, identity, is_causal=True)")
    ### BEGIN HIDDEN TESTS
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
# them): they must run. The checks accept the right result, or the result your own
# get_attention_weights and merge_heads give, so a mistake in those costs only their own tests.
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet, to_tensor

CASES = [(2, 3, 5, 4), (1, 2, 1, 3)]  # (B, H, T, D)


def _case(i):
    """Queries, keys and values (B, H, T, D) of CASES[i], from a fixed seed."""
    B, H, T, D = CASES[i]
    g = torch.Generator().manual_seed(i)
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))


def _own(mha, queries, keys, values):
    """What your own get_attention_weights and merge_heads give (None if one of them fails)."""
    try:
        with quiet():
            return mha.merge_heads(mha.get_attention_weights(queries, keys) @ values)
    except Exception:  # a method that does not run: only the exact answer counts
        return None


def _check_output(got, own, queries, keys, values, name):
    """got is right, or what your own get_attention_weights and merge_heads give."""
    import torch.nn.functional as F

    B, H, T, D = queries.shape
    assert_shape(got, (B, T, H * D), name=name, dims="B, T, H*D")
    if own is not None and tuple(to_tensor(own).shape) == (B, T, H * D) and torch.allclose(
            to_tensor(got), to_tensor(own), atol=1e-5):
        return  # consistent with your own get_attention_weights and merge_heads
    # F.scaled_dot_product_attention (allowed in the check, not in your code) gives each head's h_i
    heads = F.scaled_dot_product_attention(queries.double(), keys.double(), values.double(), is_causal=True)
    expected = torch.cat([heads[:, h] for h in range(H)], dim=-1)  # (B, T, H*D): h_1, ..., h_H side by side
    assert_close(got, expected, atol=1e-5, name=f"{name} vs the h_i of F.scaled_dot_product_attention(q, k, v, "
                 "is_causal=True), concatenated (nor is it merge_heads(get_attention_weights(q, k) @ v) with your methods)")
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 3, 6, 4), (1, 2, 7, 5)]  # (B, H, T, D)


def _hidden_case(i):
    B, H, T, D = HIDDEN[i]
    g = torch.Generator().manual_seed(30 + i)
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))
### END HIDDEN TESTS


def run():
    out = {"outputs": []}
    for i, (B, H, T, D) in enumerate(CASES):
        queries, keys, values = _case(i)
        with quiet():
            mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=T)
            got = mha.apply_attention(queries, keys, values)
        out["outputs"].append({"output": got, "own": _own(mha, queries, keys, values)})
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
        _check_output(out["outputs"][i]["output"], out["outputs"][i]["own"], *_case(i),
                      name=f"apply_attention for inputs of shape {(B, H, T, D)}")
    ### BEGIN HIDDEN TESTS
    for i, (B, H, T, D) in enumerate(HIDDEN):
        _check_output(out["hidden"][i]["output"], out["hidden"][i]["own"], *_hidden_case(i),
                      name=f"apply_attention (B, H, T, D) = {(B, H, T, D)}")
    ### END HIDDEN TESTS


grade("test_MultiHeadedAttention_apply_attention", run, check,
      forbid=["torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
              "torch.nn.functional.multi_head_attention_forward", "course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MultiHeadedAttention_forward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Question 5: forward. It runs your split_heads and apply_attention (if you use them): they must
# run. The checks accept the right result, or the result your own split_heads and apply_attention
# give with the projections, so a mistake in those costs only their own tests.
import torch

from course_lib.grading.checks import assert_close, assert_shape, assert_true, grade, quiet, to_tensor

CASES = [(2, 5, 3, 4), (1, 1, 2, 4)]  # (B, T, H, D)
NAMES = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _weights(E, seed):
    """Weights and biases chosen by the test for q_proj, k_proj, v_proj and out_proj."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name in NAMES:
        w[f"{name}.weight"] = torch.randn(E, E, generator=g) / E ** 0.5
        w[f"{name}.bias"] = 0.5 * torch.randn(E, generator=g)
    return w


def _reference(w, x, num_heads):
    """nn.MultiheadAttention (float64; allowed in the check, not in your code) with the same weights and a causal mask."""
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
    except Exception:  # a method that does not run: only the exact answer counts
        return None


def _attend(H, D, x, seed):
    """Your module with the test's weights loaded, on x: its output, and what your own methods give."""
    with quiet():
        mha = MultiHeadedAttention(head_size=D, num_heads=H, sequence_length=8).eval()
        # strict=False: a buffer of your own (a causal mask, say) may stay; every test weight must land
        loaded = mha.load_state_dict(_weights(H * D, seed), strict=False)
        with torch.no_grad():
            return {"output": mha(x), "own": _own(mha, x), "not_loaded": sorted(loaded.unexpected_keys)}


def _check_output(got, x, H, seed, name):
    """The output is nn.MultiheadAttention's, or what your own split_heads and apply_attention give."""
    B, T, E = x.shape
    assert_true(not got["not_loaded"], "keep the projections q_proj, k_proj, v_proj and out_proj that __init__ "
                f"creates: the test could not load {got['not_loaded']} into your module")
    assert_shape(got["output"], (B, T, E), name=name, dims="B, T, E")
    own = got["own"]
    if own is not None and tuple(to_tensor(own).shape) == (B, T, E) and torch.allclose(
            to_tensor(got["output"]), to_tensor(own), atol=1e-5):
        return  # consistent with your own split_heads and apply_attention
    assert_close(got["output"], _reference(_weights(E, seed), x, H), atol=1e-5,
                 name=f"{name} (test weights and biases) vs nn.MultiheadAttention with a causal mask")


def _case(i):
    B, T, H, D = CASES[i]
    return torch.randn(B, T, H * D, generator=torch.Generator().manual_seed(i))
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 6, 3, 4), (3, 5, 2, 5)]  # (B, T, H, D)


def _hidden_inputs(i):
    B, T, H, D = HIDDEN[i]
    return torch.randn(B, T, H * D, generator=torch.Generator().manual_seed(40 + i))
### END HIDDEN TESTS


def run():
    out = {"outputs": []}
    for i, (B, T, H, D) in enumerate(CASES):
        out["outputs"].append(_attend(H, D, _case(i), seed=90 + i))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, T, H, D) in enumerate(HIDDEN):
        out["hidden"].append(_attend(H, D, _hidden_inputs(i), seed=50 + i))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, H, D) in enumerate(CASES):
        _check_output(out["outputs"][i], _case(i), H, 90 + i,
                      name=f"MultiHeadedAttention({D}, {H}, 8) for x of shape {(B, T, H * D)}")
    ### BEGIN HIDDEN TESTS
    for i, (B, T, H, D) in enumerate(HIDDEN):
        _check_output(out["hidden"][i], _hidden_inputs(i), H, 50 + i,
                      name=f"MultiHeadedAttention output ({H} heads of size {D})")
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
# as a function. Derive it from the equations: while the test runs, building a module (any
# `nn.Module`) and calling `.parameters()` are disabled, so a function that builds one and counts
# fails the test. (The cell after it compares your formula with your module, outside the test.)

# %% nbgrader={"grade": false, "grade_id": "attention_parameters", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention_parameters(num_heads, head_size):
    """The number of learnable parameters of MultiHeadedAttention(head_size, num_heads, ...).

    Args:
        num_heads: the number of heads, m (H).
        head_size: the size of each head, d (D).
    Returns:
        int: the number of learnable parameters, derived from the equations (not counted on a
        module).
    """
    ### BEGIN SOLUTION
    width = num_heads * head_size  # E = H * D
    return 4 * (width * width + width)
    ### END SOLUTION


# %%
print(f"attention_parameters(12, 64) = {attention_parameters(12, 64):,}; your module has "
      f"{sum(p.numel() for p in MultiHeadedAttention(64, 12, 256).parameters()):,} parameters")

# %% nbgrader={"grade": true, "grade_id": "test_attention_parameters", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# While your function runs, building a module (nn.Module and its subclasses) and .parameters() are
# disabled: derive the count from the equations. The check itself counts nn.MultiheadAttention's.
from course_lib.grading.checks import as_int, assert_equal, assert_true, grade, quiet

PUBLIC = [(12, 64), (2, 3)]  # (num_heads, head_size)
### BEGIN HIDDEN TESTS
SIZES = [(12, 64), (1, 1), (3, 5), (4, 16), (2, 7)]  # (num_heads, head_size)
### END HIDDEN TESTS


def _expected(H, D):
    """nn.MultiheadAttention(E, H) has the same four projections with biases (in_proj holds W_Q, W_K, W_V)."""
    import torch

    return sum(p.numel() for p in torch.nn.MultiheadAttention(H * D, H).parameters())


def run():
    with quiet():
        out = {"public": [attention_parameters(H, D) for H, D in PUBLIC]}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["sizes"] = [attention_parameters(H, D) for H, D in SIZES]
    ### END HIDDEN TESTS
    return out


def check(out):
    for (H, D), got in zip(PUBLIC, out["public"]):
        got, expected = as_int(got, name=f"attention_parameters({H}, {D})"), _expected(H, D)
        assert_true(got == expected, f"attention_parameters({H}, {D}): expected {expected:,} (the parameters of "
                    f"nn.MultiheadAttention({H * D}, {H}), the same four projections), got {got:,}")
    ### BEGIN HIDDEN TESTS
    for i, (H, D) in enumerate(SIZES):
        got = as_int(out["sizes"][i], name=f"attention_parameters({H}, {D})")
        assert_equal(got, _expected(H, D), name=f"attention_parameters({H}, {D})")
    ### END HIDDEN TESTS


grade("test_attention_parameters", run, check,
      forbid=["torch.nn.Module", "torch.nn.Module.parameters", "torch.nn.MultiheadAttention",
              "torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward",
              "course_solutions.layers"])

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
            (B, T, E) float tensor: the embedding of each token at its position (0, 1, ..., T-1
            in every sequence), with self.embedding.
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
            A 0-dim tensor: the loss of Problem 1, question 2 (the mean over the sequences of the
            batch of each sequence's loss over its real tokens).
        """
        ### BEGIN SOLUTION
        nll = -log_probas.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
        mask = mask.to(nll.dtype)  # (B, T)
        return ((nll * mask).sum(dim=1) / mask.sum(dim=1)).mean()  # (B,) -> 0-dim
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_MiniGPT1_get_embeddings", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Question 6: get_embeddings (a model without layers: only the embeddings are used).
import torch

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet

CASES = [(2, 5), (3, 6), (1, 1)]  # (B, T); V = 11, E = 8, sequence_length = 6


def _embedding_weights(V, E, S, seed):
    """Token (V, E; the <pad> row zero) and position (S, E) embedding weights chosen by the test."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(V, E, generator=g)
    tokens[0] = 0.0
    return {"tokens.weight": tokens, "position.weight": torch.randn(S, E, generator=g)}


def _inputs(B, T, V, seed):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _expected(w, inputs):
    """The token embedding of each token plus the embedding of its position (0, 1, ..., T-1)."""
    T = inputs.shape[1]
    return w["tokens.weight"][inputs] + w["position.weight"][:T].unsqueeze(0)
### BEGIN HIDDEN TESTS

HIDDEN = [(2, 5), (3, 7), (1, 1)]  # (B, T); V = 13, E = 6, sequence_length = 7
### END HIDDEN TESTS


def run():
    out = {"embeddings": []}
    for i, (B, T) in enumerate(CASES):
        with quiet():
            model = MiniGPT1(vocabulary_size=11, embedding_size=8, sequence_length=6, num_heads=2, num_layers=0)
            model.embedding.load_state_dict(_embedding_weights(11, 8, 6, 100 + i))
            out["embeddings"].append(model.get_embeddings(_inputs(B, T, 11, 110 + i)))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for i, (B, T) in enumerate(HIDDEN):
        with quiet():
            model = MiniGPT1(vocabulary_size=13, embedding_size=6, sequence_length=7, num_heads=3, num_layers=0)
            model.embedding.load_state_dict(_embedding_weights(13, 6, 7, 70 + i))
            out["hidden"].append(model.get_embeddings(_inputs(B, T, 13, 60 + i)))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T) in enumerate(CASES):
        name = f"get_embeddings for inputs of shape {(B, T)}"
        assert_shape(out["embeddings"][i], (B, T, 8), name=name, dims="B, T, E")
        assert_close(out["embeddings"][i], _expected(_embedding_weights(11, 8, 6, 100 + i), _inputs(B, T, 11, 110 + i)),
                     atol=1e-6, name=f"{name}, with the test's token and position embeddings")
    ### BEGIN HIDDEN TESTS
    for i, (B, T) in enumerate(HIDDEN):
        assert_close(out["hidden"][i], _expected(_embedding_weights(13, 6, 7, 70 + i), _inputs(B, T, 13, 60 + i)),
                     name=f"get_embeddings (token + position embeddings), inputs of shape {(B, T)}", atol=1e-6)
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

from course_lib.grading.checks import assert_close, assert_shape, grade, quiet, to_tensor

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


def _inputs(B, T, seed):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(80 + seed))


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


def _check_log_probas(got, B, T, seed, name):
    assert_shape(got, (B, T, V), name=name, dims="B, T, V")
    got = to_tensor(got, name=name)
    # log-probabilities, not logits: at every position, exp(log_probas) sums to 1 over the vocabulary
    assert_close(got.exp().sum(dim=-1), torch.ones(B, T, dtype=torch.float64), atol=1e-4,
                 name=f"exp(log_probas).sum(dim=-1), {name}: log-probabilities sum to 1 once exponentiated")
    with_stand_in, with_real_embeddings = _expected(seed, _inputs(B, T, seed))
    if torch.allclose(got, with_real_embeddings, atol=1e-5):
        return  # your forward computed the embeddings itself, correctly
    assert_close(got, with_stand_in, atol=1e-5, name=f"{name}: the stand-in embeddings through the stand-in "
                 "layers (a linear layer, then tanh, in order), the tied classifier and a log-softmax")


CASES = [(2, 5, 0), (3, 6, 1)]  # (B, T, seed)
### BEGIN HIDDEN TESTS
HIDDEN = [(4, 3, 2), (1, 6, 3)]  # (B, T, seed)
### END HIDDEN TESTS


def run():
    out = {"log_probas": []}
    for B, T, seed in CASES:
        with quiet():
            out["log_probas"].append(_model_with_stand_ins(seed)(_inputs(B, T, seed)))
    ### BEGIN HIDDEN TESTS
    out["hidden"] = []
    for B, T, seed in HIDDEN:
        with quiet():
            out["hidden"].append(_model_with_stand_ins(seed)(_inputs(B, T, seed)))
    ### END HIDDEN TESTS
    return out


def check(out):
    for i, (B, T, seed) in enumerate(CASES):
        _check_log_probas(out["log_probas"][i], B, T, seed, name=f"MiniGPT1 log_probas for inputs of shape {(B, T)}")
    ### BEGIN HIDDEN TESTS
    for i, (B, T, seed) in enumerate(HIDDEN):
        _check_log_probas(out["hidden"][i], B, T, seed, name=f"MiniGPT1 log_probas (stand-ins), inputs of shape {(B, T)}")
    ### END HIDDEN TESTS


grade("test_MiniGPT1_forward", run, check, forbid=["course_solutions.layers"])

# %% nbgrader={"grade": true, "grade_id": "test_MiniGPT1_loss", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Question 8: the loss.
import torch

from course_lib.grading.checks import as_float, assert_close, assert_true, grade, quiet

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


def _expected_loss(seed):
    """The loss written out with loops: each sequence's mean NLL over its real tokens, then the mean over sequences."""
    log_probas, targets, _ = _batch(seed)
    per_sequence = []
    for b, n in enumerate(LENGTHS):
        per_sequence.append(-sum(float(log_probas[b, t, targets[b, t]]) for t in range(n)) / n)
    return sum(per_sequence) / len(per_sequence)


def check(out):
    loss = as_float(out["loss"], name="MiniGPT1.loss(log_probas, targets, mask)")  # a single number
    assert_true(loss == loss and loss > 0, f"a negative log-likelihood is a positive number, got {loss}")
    # sequences of 4, 1, 5 real tokens: each sequence counts as much as the others, whatever its length
    assert_close(loss, _expected_loss(0), rtol=1e-5, name="MiniGPT1.loss on the test's batch (the mean over its "
                 "3 sequences of each one's mean NLL over its real tokens)")
    ### BEGIN HIDDEN TESTS
    log_probas, targets, mask = _batch(2)
    got = out["hidden"]
    assert_close(as_float(got["loss"], name="MiniGPT1.loss"), _expected_loss(2),
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
# where $t$ indexes the positions within a sequence and $j$ the sequences. A perplexity of $k$
# means the model is, on average, as unsure as if it chose uniformly among $k$ words; a model that
# predicts every word uniformly has perplexity $V$, and one that only learned how frequent each
# word is (the unigram distribution) sits near a thousand on WikiText-2. This problem is about
# model exploration, which is done with the **validation** set (the test set is not used).
#
# ### What the 12 experiments compare
#
# The runner `course_lib.runners.gpt_attention` plays the role of the handout's `run_exp.py`: the
# 12 configurations at its top, numbered as there, all with the same learning rate (1e-3), batch
# size and number of epochs. Each group changes **one thing** and holds the rest fixed, so each
# answers one question:
#
# | Experiments | What changes | What it is meant to show |
# |---|---|---|
# | 1 vs 5, 2 vs 6 | the architecture: LSTM or GPT (1 layer, same optimizer) | recurrence (a fixed-size state, read one step at a time) against attention (every earlier position at once, in parallel over time): which learns more from the same data, which is cheaper per epoch, which overfits sooner |
# | 1-4 (LSTM), 5-8 (GPT) | the optimizer: Adam, AdamW, SGD, SGD with momentum 0.9 | how much the optimizer alone decides where a model gets in a fixed budget: adaptive per-parameter step sizes (Adam) against one global step (SGD), what momentum adds, and what weight decay (5e-4; decoupled in AdamW, an L2 penalty with SGD) does to the gap between train and validation |
# | 2, 9, 10 (LSTM), 6, 11, 12 (GPT) | the depth: 1, 2 or 4 layers (AdamW) | what more capacity buys and costs: time and memory per epoch grow with depth; does the validation perplexity improve, or does the extra capacity go to overfitting, or to a model that is harder to optimize? |
#
# **Reading the curves.** Each run gives a train and a validation perplexity per epoch; plot
# perplexity on a **log scale** (SGD starts in the thousands, Adam ends far lower).
#
# - *Against epochs*, the curves compare what each model makes of the **same data**: how fast
#   each one falls, where it levels off, and when the validation curve reaches its **minimum**
#   (the best epoch: report the lowest validation perplexity across epochs, not the last one).
#   A train curve that keeps falling while the validation curve turns back up is
#   **overfitting**; the widening gap between the two measures it. The train perplexity is
#   averaged *during* the epoch, while the model is still changing, and the validation
#   perplexity is measured *after* it, so early on the train curve can lie above the validation
#   curve.
# - *Against wall-clock time*, the same curves compare the **cost** of getting there: a model that
#   is better per epoch but twice as slow per epoch can lose per hour. Deeper models' curves are
#   stretched to the right. Wall-clock time depends on the hardware: the GPT's attention is
#   parallel over positions and pays off most on a GPU, while the LSTM must step through time, so
#   the two architectures do not compare the same way on a CPU and on a GPU. Say which device your
#   runs used.
#
# **Reading the table.** For each run: the best validation perplexity and its epoch, the train
# perplexity (how far apart they are tells you about overfitting), the seconds per epoch and the
# throughput in tokens per second (the cost), and the peak memory. The memory is the sum of the
# parameters, their gradients and the optimizer's state (Adam and AdamW keep two extra numbers per
# parameter, momentum one, plain SGD none), plus the activations kept for the backward pass: these
# grow with the number of layers, and in the GPT include the attention weights of every head,
# `B x H x T x T`, quadratic in the sequence length. The output layer, `(B, T, V)` numbers, is the
# same for every configuration. Compare memory across runs made at the same scale on the same
# device.
#
# ### Three scales
#
# The same runner and the same 12 configurations run at three scales; it reads the scale from
# `course_lib.device.scale()`. Set `COURSE_SCALE` (or `COURSE_FAST`) before starting Jupyter.
#
# - **`fast`** (`COURSE_FAST=1`): seconds per configuration, on tiny models and a few sequences.
#   It checks that your code trains end to end; its numbers mean nothing. The autograder uses it.
# - **`laptop`** (`COURSE_SCALE=laptop`, the default without a GPU): all 12 configurations at
#   reduced size (narrower models, shorter sequences, a slice of the training data with a smaller
#   vocabulary, fewer epochs): the 12 took 25 minutes in all on a shared 2-core CPU when the course
#   was built (its budget is one hour). It is built to show the handout's qualitative conclusions (the order of the
#   optimizers, the GPT overfitting sooner than the LSTM, what depth does), not its perplexities.
# - **`full`** (`COURSE_SCALE=full`, the default on a GPU): the handout's settings (10 epochs over
#   the 2 million words of the training set, sequences of 256 tokens, width 768), for a GPU (the
#   course has not timed it on one yet; the handout's runs took minutes per epoch). On a 2-core CPU one full run takes 18 to
#   21 hours: do not try.
#
# Answer the questions with the largest scale you could run, and say which one in your captions.
# The perplexities of the two larger scales are not comparable with each other (different
# vocabularies and data), nor with the handout's (see the note at the top).
#
# **Logs.** Every run logs each epoch (in the user cache, or in `$COURSE_RUNS_DIR/gpt_attention`;
# on Colab, point `COURSE_RUNS_DIR` at your Google Drive), so running a cell again resumes an
# interrupted run and reads finished ones back. `python -m course_lib.runners.gpt_attention --help`
# lists the command-line options.

# %% tags=["experiment"]
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from course_lib.runners import gpt_attention as ga

# Your LSTM and MiniGPT1 (the command line uses the course's reference models).
make_model = ga.model_factory_from(lstm=LSTM, gpt=MiniGPT1)
# Fast mode trains afresh in a temporary folder; the other scales keep (and resume) their logs.
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
# The next cell runs the 12 experiments one after the other (finished ones are read back from
# their logs) and plots train and validation perplexity against epochs and against wall-clock
# time. Look first at the groups of the table above: the optimizers within each architecture,
# then the two architectures, then the depths.

# %% tags=["experiment"]
results = train(list(ga.CONFIGS))  # all 12; e.g. train([1, 5]) for some of them
ga.plot_results(results, x="both", title="Your runs" + (" (fast mode: a check, not results)" if fast_mode() else ""));

# %% [markdown]
# Per-epoch perplexities of every run (the handout's Tables 1 to 12, side by side):

# %% tags=["experiment"]
pd.concat({result.label: result.history.set_index("epoch")[["train_ppl", "dev_ppl"]] for result in results.values()},
          axis=1).round(2)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_q1", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q1** [4 pts] For each of the 12 experiments, plot the learning curves (train and validation)
# of perplexity over both **epochs** and **wall-clock time**. Figures should have labeled axes,
# a legend and an explanatory caption. Paste or describe your figures below (the plots above are
# made from your runs; in a written report, include them with their captions).

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q1", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Rubric (answers depend on the runs).* 2 pts: the four kinds of curves (train and validation
# perplexity, each against epochs and against wall-clock time) for all 12 runs at the laptop or
# full scale, not fast mode; 1 pt: labeled axes with units, a legend that identifies each
# experiment by its number in `run_exp.py`, a log-scale perplexity axis (or separate panels) so
# that the SGD runs do not flatten the others; 1 pt: an explanatory caption (what is plotted, that train
# perplexity is measured during the epoch and validation after it, what the markers mean, which
# scale and device). Expected picture (the shapes and the order, not the numbers, which depend on
# the scale): Adam and AdamW drop fastest and lowest, SGD and SGD with momentum stay far higher
# (at the full scale: low hundreds against thousands after 10 epochs); GPT's validation curve
# reaches its minimum after a few epochs and rises again while its train curve keeps falling;
# against wall-clock time the deeper models' curves are stretched to the right.

# %% [markdown]
# ### Q2: Results table [3 pts]
#
# The table of your runs: sorted by architecture, then number of layers, then optimizer, with the
# experiment numbers of `run_exp.py`; the best validation perplexity of each architecture is in
# bold.

# %% tags=["experiment"]
ga.results_table(results, caption=None if not fast_mode() else
                 "FAST MODE (tiny models, a few short sequences): a check, not results. "
                 "ppl = exp(mean NLL per real token); best dev ppl: the lowest validation ppl across epochs; "
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
# epoch) validation perplexity and a train perplexity, from laptop- or full-scale runs (not fast
# mode); 1 pt: the order (architecture, then layers, then optimizer) and the best validation
# perplexity of each architecture in bold; 1 pt: a caption that explains the columns and abbreviations (ppl, what
# "best" means, units of time and memory, the scale). At the full scale the best LSTM is
# typically experiment 2 or 9 (AdamW, 1 or 2 layers) and the best GPT experiment 5 or 6
# (Adam/AdamW, 1 layer); accept whatever the student's own table shows.
#
# *Reference, laptop scale* (`course_solutions/recorded/gpt_attention-laptop.json`, reference
# models, 6 epochs; best validation perplexity @ epoch): LSTM Adam 255.5 @6, AdamW 255.5 @6,
# SGD 4,102 @6, momentum 4,019 @6, AdamW 2L 269.5 @6, AdamW 4L 267.1 @2; GPT Adam 141.4 @5,
# AdamW 141.4 @5, SGD 1,300 @6, momentum 313.2 @6, AdamW 2L 139.5 @5, AdamW 4L 203.0 @6. Peak
# memory (process RSS) grows with depth: LSTM 569 / 571 / 594 MiB, GPT 559 / 571 / 634 MiB for
# 1 / 2 / 4 layers. What differs from the full scale, so that students are not marked down for
# it: the GPT beats the LSTM clearly (short sequences and a 4,096-word vocabulary favour it), and
# the LSTMs do not overfit within 6 epochs.

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
# reserved memory, closer to what `nvidia-smi` shows; on a CPU, the process's resident memory,
# which also holds the data and Python itself, so compare differences between runs rather than
# totals. The table's memory column is the steady-state value, the largest peak over the epochs
# after the first.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_q7", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# *Model answer (numbers depend on the runs).* The memory does not depend on the optimizer
# except for its state: Adam and AdamW keep two extra tensors per parameter (the moments),
# momentum one, plain SGD none, so for the same model SGD uses the least memory (about
# 2 x 4 bytes per parameter; at the full scale, some 230 to 260 MB for the 29 to 33 million
# parameters of the 1-layer models, most of them in the embedding matrix). A large, fixed part
# comes from the **output layer**: the logits and log-probabilities of shape `(B, T, V)` (at the
# full scale 16 x 256 x 33,279 values, about 545 MB each in fp32) and their gradients, the same
# for both architectures and all depths. On top of that, the activations
# kept for the backward pass grow **linearly with the number of layers**: for the LSTM, each
# layer stores its gates and states for every time step (`B x T x 4 hidden_size`), so
# experiments 9 and 10 use a little more than 1-4; for the GPT, each block stores its
# projections, its MLP activations (`B x T x 4E`) and the **attention weights of every head,
# `B x H x T x T`** (quadratic in the sequence length), so GPT layers cost more memory than LSTM
# layers and experiments 11 and 12 grow fastest. The GPT's parameters per layer (7.1 M vs 2.1 to
# 2.6 M for an LSTM layer) add weights, gradients and optimizer state as well.
#
# *Rubric:* 1 pt memory numbers per experiment (measured, steady state, on the student's own
# device and scale); 1 pt growth with depth
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
