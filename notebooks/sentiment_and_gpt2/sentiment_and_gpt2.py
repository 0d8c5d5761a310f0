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
# # Exercises 3: sentiment analysis with an LSTM, and GPT-2 with Hugging Face
#
# This assignment has three parts. Part 1 is a true/false quiz on recurrent networks,
# transformers and large language models. In Part 2 you classify IMDB movie reviews as positive
# or negative with an LSTM: a vocabulary, a tokenizer, a `Dataset`, a collate function that pads a
# batch, and an LSTM classifier over packed sequences (optionally bidirectional), which the course
# runner then trains. In Part 3 you use a pretrained GPT-2 through Hugging Face's `transformers`:
# you load it, generate text, tokenize WikiText-2 for causal language modelling, measure
# perplexity **correctly** (the handout's version miscounts), and compare full fine-tuning with
# `Trainer` against LoRA (`peft`).
#
# **Learning goals.** After this assignment you can
#
# 1. say what LSTM gates, multi-head attention, BPE, positional encodings, cross-attention,
#    FlashAttention, RLHF and the KV cache do, and justify it in one sentence;
# 2. turn raw text into padded batches of token indices (vocabulary, stop words, unknown words,
#    truncation, padding, lengths);
# 3. build an LSTM classifier whose output does not depend on the padding (packed sequences,
#    the final states of both directions of a bidirectional LSTM);
# 4. load, run and generate with a Hugging Face causal language model, and prepare a dataset for
#    it (labels, the causal language-modelling collator);
# 5. compute a token-weighted perplexity that ignores padding, and explain why a per-batch average
#    or a count of the wrong tokens gives another number;
# 6. compare full fine-tuning and LoRA by time, trainable parameters and perplexity.
#
# **How this notebook is graded** (100 points in all).
#
# | Section | Points | Autograded (tests) | Written (graded by hand) |
# |---|---|---|---|
# | 1. True/false quiz | 20 | 10 (the answers) | 10 (the justifications) |
# | 2. IMDB sentiment with an LSTM | 40 | 19 | 21 |
# | 3. GPT-2 with Hugging Face | 40 | 17 | 23 |
# | **Total** | **100** | **46** | **54** |
#
# - **Code answers** go in the cells that say `# YOUR CODE HERE` (delete the
#   `raise NotImplementedError()`). Keep the names and signatures: the tests call them. Each
#   function is followed by its test cells. The checks you see there are *public checks*: they
#   compare values on small examples with what the test computes itself and catch many mistakes,
#   but passing them is not the grade. When the notebook is graded, hidden tests with other inputs
#   and edge cases are added to the same cells. Each test cell checks only its own function, so a
#   mistake in one costs only that one's points.
# - The course's reference implementations (`course_solutions`) and the course library's own
#   GPT-2 loader (`course_lib.hf_models.load_model_and_tokenizer`, in the test of your loader) are
#   **disabled while the tests run**.
# - **Written answers** go in the markdown cells that say `YOUR ANSWER HERE`, right below each
#   question. Be concise: a few sentences each.
# - **How the grader runs your notebook.** It re-runs every cell from top to bottom in *fast mode*
#   (`COURSE_FAST=1`), **except the training cells** (the cells tagged `experiment`): those are
#   not re-run, and the grader sees the outputs they had when you saved the notebook. So run them
#   yourself before you submit, and copy the numbers a question asks for into your written answers.
# - **Three scales.** The trainings run at the scale that the environment variable `COURSE_SCALE`
#   picks (set it before starting Jupyter): `fast` (`COURSE_FAST=1`: seconds, to check that your
#   code runs; the grader uses it), `laptop` (the default on a machine without a GPU: the LSTM on
#   every review, truncated shorter, and the course's own small GPT-2 fine-tuned on a slice of
#   WikiText-2, each in well under an hour on a 2-core CPU) and `full` (the default with a GPU: the
#   handout's settings, with `gpt2` from the Hugging Face hub).
#
# **Which GPT-2.** On Colab (or wherever the Hugging Face hub answers) Part 3 loads `gpt2` from the
# hub, as the handout does. Offline (the course's tests, a laptop without network) the same
# `from_pretrained` calls load a small GPT-2 that the course builds itself from its own data
# (`course_lib.hf_models`); at the `fast` scale (the grader's) it is always the course's toy GPT-2.
# The notebook prints which one it used. Report it in your answers.
#
# **Shapes.** Comments and docstrings name tensor dimensions with letters: `B` batch, `T` time (the
# longest sequence of the batch), `E` embedding size, `H` hidden size, `V` vocabulary size, `C`
# classes.

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

device = setup_notebook("sentiment_and_gpt2", seed=282)

# %%
# Part 3 needs Hugging Face's transformers, peft, tokenizers, accelerate and datasets (course_lib's
# `hf` extra). Colab ships most of them: on Colab this cell installs the missing ones (and only
# those); elsewhere it installs nothing and says what is missing (`pip install "course-lib[hf]"`).
import importlib.util
import subprocess
import sys

_HF_PACKAGES = {"transformers": "transformers>=4.46", "peft": "peft>=0.13", "tokenizers": "tokenizers>=0.20",
                "accelerate": "accelerate>=1.1", "datasets": "datasets>=3.0"}
_missing = [req for module, req in _HF_PACKAGES.items() if importlib.util.find_spec(module) is None]
if _missing and importlib.util.find_spec("google.colab") is not None:
    print(f"installing: pip install {' '.join(_missing)}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *_missing], check=True)
    importlib.invalidate_caches()
elif _missing:
    print(f"missing for Part 3: {', '.join(_missing)}; install them with pip install \"course-lib[hf]\"")
else:
    print("Hugging Face packages: all present")

# %%
import math
import string
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from course_lib.device import fast_mode
from course_lib.imdb import PAD_INDEX, PAD_TOKEN, UNK_INDEX, UNK_TOKEN
from course_lib.stopwords import ENGLISH_STOP_WORDS

# %% [markdown]
# ---
# ## 1. True/false quiz [20 pts]
#
# Decide whether each statement is true or false. Put your answers in the dictionary `QUIZ`
# below, one Python `bool` per statement (`QUIZ = {"1.1": True, "1.2": False, ...}`): they are
# autograded (1 point each). Then justify each answer in **one sentence** in the cell after it
# (1 point each, graded by hand: a right answer with a wrong or missing justification gets no
# justification point).
#
# - **1.1** In an LSTM, the forget gate $f_t$ decides how much of the previous cell state
#   $c_{t-1}$ is kept in the new cell state $c_t$.
# - **1.2** For $n$ tokens of dimension $d$, multi-head attention with $h$ heads of dimension
#   $d/h$ has the same $O(n^2 d)$ time complexity as single-head attention of dimension $d$.
# - **1.3** Byte-pair encoding (BPE) builds its vocabulary by starting from single characters and
#   repeatedly merging the most frequent adjacent pair; compared with word-level tokenization it
#   keeps the vocabulary smaller and avoids the out-of-vocabulary problem (a word never seen in
#   training is split into known subwords).
# - **1.4** In the Transformer, the positional encodings are multiplied element-wise with the
#   token embeddings.
# - **1.5** In the encoder-decoder attention of a Transformer decoder (its second attention
#   block), the queries come from the encoder's output and the keys and values from the decoder.
# - **1.6** A token of a language model is always one whole word.
# - **1.7** Computing the queries, keys and values of $N + M$ tokens of dimension $d$ with
#   $d \times d$ projection matrices takes $O((N + M)\, d)$ operations.
# - **1.8** FlashAttention computes exactly the same result as standard attention, faster, by
#   computing it in tiles that stay in fast on-chip memory instead of writing the $n \times n$
#   attention matrix to the GPU's main memory.
# - **1.9** In reinforcement learning from human feedback (RLHF), human annotators adjust the
#   language model's weights directly.
# - **1.10** A KV cache brings no speed-up to autoregressive generation: at every new token, the
#   keys and values of all the earlier tokens have to be computed again anyway.

# %% nbgrader={"grade": false, "grade_id": "QUIZ", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
QUIZ = {
    "1.1": True,
    "1.2": True,
    "1.3": True,
    "1.4": False,
    "1.5": False,
    "1.6": False,
    "1.7": False,
    "1.8": True,
    "1.9": False,
    "1.10": False,
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_1", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.1") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.1"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is True, 'QUIZ["1.1"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_1", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_2", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.2") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.2"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is True, 'QUIZ["1.2"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_2", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_3", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.3") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.3"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is True, 'QUIZ["1.3"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_3", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_4", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.4") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.4"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.4"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_4", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_5", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.5") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.5"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.5"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_5", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_6", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.6") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.6"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.6"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_6", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_7", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.7") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.7"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.7"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_7", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_8", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.8") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.8"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is True, 'QUIZ["1.8"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_8", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_9", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.9") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.9"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.9"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_9", run, check)

# %% nbgrader={"grade": true, "grade_id": "test_QUIZ_1_10", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_lib.grading.checks import assert_true, grade


def run():
    return {"answer": QUIZ.get("1.10") if isinstance(QUIZ, dict) else None}


def check(out):
    assert_true(isinstance(out["answer"], bool),
                f'QUIZ["1.10"] should be True or False (a bool), got {out["answer"]!r}')
    ### BEGIN HIDDEN TESTS
    assert_true(out["answer"] is False, 'QUIZ["1.10"] is not the right answer')
    ### END HIDDEN TESTS


grade("test_QUIZ_1_10", run, check)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_1_justify", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Justifications** [10 pts] One sentence for each of the ten answers, 1.1 to 1.10.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_1_justify", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.*
# **1.1 True:** $c_t = f_t \odot c_{t-1} + i_t \odot g_t$, so the forget gate scales each component
# of the old cell state between 0 (erase) and 1 (keep); the input gate and the candidate $g_t$ only
# add new content, they cannot remove what $c_{t-1}$ holds.
# **1.2 True:** each head costs $O(n^2 d/h)$ for its scores and weighted sums, so $h$ heads cost
# $O(n^2 d)$ together, the same as one head of dimension $d$ (the projections are $O(n d^2)$ in both).
# **1.3 True:** BPE starts from characters (or bytes) and greedily merges the most frequent
# adjacent pair into a new symbol; a rare or unseen word is spelled with the subwords (down to single
# characters; with bytes, as in GPT-2, any text at all), with a vocabulary far smaller than a word
# list, which must map every unseen word to `<unk>`.
# **1.4 False:** they are *added* to the token embeddings (sinusoidal or learned), not multiplied.
# **1.5 False:** it is the other way round: the queries come from the decoder and the keys and
# values from the encoder's output.
# **1.6 False:** tokens can be words, subwords (BPE, WordPiece) or characters/bytes; GPT-2's tokens
# are mostly subwords.
# **1.7 False:** each of the $N + M$ tokens is multiplied by $d \times d$ matrices, $O(d^2)$ each, so
# it costs $O((N + M) d^2)$.
# **1.8 True:** FlashAttention is an exact, IO-aware algorithm: tiling with an online softmax
# keeps the work in fast on-chip memory and avoids materialising the $n \times n$ matrix in
# high-bandwidth memory; it saves memory traffic (better locality, no redundant reads and writes),
# not arithmetic.
# **1.9 False:** humans rank or compare outputs; those preferences train a reward model, and an RL
# algorithm (e.g. PPO) updates the weights.
# **1.10 False:** the KV cache stores the keys and values of the earlier tokens (in every layer),
# so each generation step projects only the new token and attends to the cached ones, instead of
# recomputing the whole prefix: it trades memory for computation and is what makes generation fast.
# (It does not help training with teacher forcing, which computes every position in one parallel
# pass.)
#
# *Rubric:* 1 pt per statement whose justification gives the correct reason (the formula, the
# mechanism or the correction of the false statement); 0 for a missing or wrong reason, whatever
# the true/false answer.

# %% [markdown]
# ---
# ## 2. IMDB sentiment with an LSTM [40 pts]
#
# The IMDB data set holds 50,000 movie reviews, each labelled `"positive"` or `"negative"`. The
# course's `course_lib.imdb.load_imdb()` splits them as the handout's `load_imdb` does
# (`train_test_split` twice with `random_state=12`): 35,000 training, 5,000 validation and 10,000
# test reviews. Your code turns each review into token indices and classifies it.
#
# **The vocabulary convention** (the handout's `HyperParams`): the padding token `PAD_TOKEN =
# "<pad>"` has index `PAD_INDEX = 0` and the unknown-word token `UNK_TOKEN = "<unk>"` has index
# `UNK_INDEX = 1` (all four are imported above from `course_lib.imdb`). The words of the vocabulary
# get the indices from 2 on.
#
# **Words.** A review is split into words by lower-casing it, deleting every ASCII punctuation
# character (`string.punctuation`: so `"don't"` becomes `"dont"` and `"great!"` becomes
# `"great"`) and splitting on white space (`str.split()`). The English stop words (`"the"`, `"was"`,
# `"a"`, ...) are left out of the vocabulary: use `ENGLISH_STOP_WORDS` (imported above, the
# Snowball list, a `frozenset` available offline; NLTK's list needs a download).
#
# ### 2(a) The vocabulary [3 pts]
#
# Implement `build_vocab(texts, min_freq)`: every word seen **at least** `min_freq` times in all
# the `texts` together that is not a stop word gets an index from 2 on (in any order, each index
# used once), plus `PAD_TOKEN -> PAD_INDEX` and `UNK_TOKEN -> UNK_INDEX`.

# %% nbgrader={"grade": false, "grade_id": "build_vocab", "locked": false, "schema_version": 3, "solution": true, "task": false}
def build_vocab(texts, min_freq=5):
    """Build the vocabulary of the training reviews.

    Args:
        texts: a list of review strings.
        min_freq: the least number of times a word must occur (in all texts together) to be kept.
    Returns:
        dict word -> index: PAD_TOKEN -> PAD_INDEX (0), UNK_TOKEN -> UNK_INDEX (1), and every
        non-stop word seen at least min_freq times -> an index from 2 on.
    """
    ### BEGIN SOLUTION
    table = str.maketrans("", "", string.punctuation)
    counts = Counter(w for text in texts for w in text.lower().translate(table).split())
    vocab = {PAD_TOKEN: PAD_INDEX, UNK_TOKEN: UNK_INDEX}
    for word, count in counts.items():
        if count >= min_freq and word not in ENGLISH_STOP_WORDS:
            vocab[word] = len(vocab)
    return vocab
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_build_vocab", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import random
import string
from collections import Counter

from course_lib.grading.checks import assert_equal, assert_true, grade, quiet
from course_lib.stopwords import ENGLISH_STOP_WORDS

TEXTS = ["The movie was GREAT, great fun!", "A great movie; the plot was fun.", "Fun, fun... the PLOT, the end?"]
EXPECTED_WORDS = {"movie", "great", "fun", "plot"}  # min_freq=2: "the", "was" and "a" are stop words
### BEGIN HIDDEN TESTS
POOL = ["the", "a", "was", "is", "Film", "film!", "don't", "dont", "acting,", "Plot.", "plot", "end", "bad", "good",
        "BAD", "it's", "10/10", "wasn't", "(great)", "boring...", "x", "I", "me", "scene"]


def _random_texts(seed, n=30):
    rng = random.Random(seed)
    return [" ".join(rng.choice(POOL) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def _expected(texts, min_freq):
    table = str.maketrans("", "", string.punctuation)
    counts = Counter()
    for text in texts:
        counts.update(text.lower().translate(table).split())
    return {w for w, c in counts.items() if c >= min_freq and w not in ENGLISH_STOP_WORDS}
### END HIDDEN TESTS


def _summary(vocab):
    if not isinstance(vocab, dict):
        return {"error": f"build_vocab returned a {type(vocab).__name__}, not a dict"}
    return {"keys": sorted(vocab), "pad": vocab.get("<pad>"), "unk": vocab.get("<unk>"),
            "ids": sorted(v if isinstance(v, int) else -1 for k, v in vocab.items() if k not in ("<pad>", "<unk>"))}


def _check(got, words, label):
    assert_true("error" not in got, f"{label}: {got.get('error')}")
    assert_equal(got["pad"], 0, name=f'{label}["<pad>"] (PAD_INDEX)')
    assert_equal(got["unk"], 1, name=f'{label}["<unk>"] (UNK_INDEX)')
    assert_true(set(got["keys"]) - {"<pad>", "<unk>"} == set(words),
                f"{label} should hold exactly the words {sorted(words)} (besides <pad> and <unk>), got "
                f"{sorted(set(got['keys']) - {'<pad>', '<unk>'})}")
    assert_true(got["ids"] == list(range(2, 2 + len(words))),
                f"{label}: the words should have the indices 2 .. {len(words) + 1}, each once, got {got['ids']}")


def run():
    with quiet():
        out = {"toy": _summary(build_vocab(list(TEXTS), 2))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [_summary(build_vocab(_random_texts(seed), m)) for seed, m in ((1, 1), (2, 3), (3, 5))]
        out["empty"] = _summary(build_vocab([], 1))
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["toy"], EXPECTED_WORDS, "build_vocab(TEXTS, min_freq=2)")
    ### BEGIN HIDDEN TESTS
    for got, (seed, m) in zip(out["hidden"], ((1, 1), (2, 3), (3, 5))):
        _check(got, _expected(_random_texts(seed), m), f"build_vocab(30 random reviews, min_freq={m})")
    _check(out["empty"], set(), "build_vocab([], 1)")
    ### END HIDDEN TESTS


grade("test_build_vocab", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 2(b) Tokenizing a review [2 pts]
#
# Implement `tokenize(vocab, text)`: the index of each word of `text` (split as in 2(a)), and the
# index of `UNK_TOKEN` for every word that is not in the vocabulary (stop words included: they
# were left out of it).

# %% nbgrader={"grade": false, "grade_id": "tokenize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tokenize(vocab, text):
    """The list of token indices of text: vocab[word] for each word, vocab[UNK_TOKEN] where the word is unknown."""
    ### BEGIN SOLUTION
    unk = vocab[UNK_TOKEN]
    return [vocab.get(w, unk) for w in text.lower().translate(str.maketrans("", "", string.punctuation)).split()]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tokenize", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import string

from course_lib.grading.checks import assert_equal, grade, quiet

VOCAB = {"<pad>": 0, "<unk>": 1, "movie": 2, "great": 3, "fun": 4, "dont": 5}
TEXT = "The movie was GREAT -- I don't know, great FUN!"
EXPECTED = [1, 2, 1, 3, 1, 5, 1, 3, 4]  # the, movie, was, great, i, dont, know, great, fun ("--" is deleted)
### BEGIN HIDDEN TESTS
HIDDEN = ["", "   ", "fun\tfun\nMOVIE", "unknown words only", "great!!!movie", "don't DONT dont'", "...", "Movie 10/10"]


def _expected(text):
    words = text.lower().translate(str.maketrans("", "", string.punctuation)).split()
    return [VOCAB.get(w, 1) for w in words]
### END HIDDEN TESTS


def run():
    with quiet():
        out = {"toy": list(tokenize(dict(VOCAB), TEXT))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [list(tokenize(dict(VOCAB), text)) for text in HIDDEN]
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_equal(out["toy"], EXPECTED, name=f"tokenize(VOCAB, {TEXT!r})")
    ### BEGIN HIDDEN TESTS
    for got, text in zip(out["hidden"], HIDDEN):
        assert_equal(got, _expected(text), name=f"tokenize(VOCAB, {text!r})")
    ### END HIDDEN TESTS


grade("test_tokenize", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 2(c) The dataset [2 pts]
#
# Implement the `Dataset` of the handout, `IMDB(x, y, vocab, max_length)`: `x` the review texts,
# `y` their labels (`"positive"` or `"negative"`). (Its test swaps in a correct `tokenize`.) Item `i` is a dict `{"ids": list of token
# indices of review i (your tokenize), cut to its first max_length, "length": the number of those
# indices, "label": 1 for "positive" and 0 for "negative"}`.

# %% nbgrader={"grade": false, "grade_id": "IMDB", "locked": false, "schema_version": 3, "solution": true, "task": false}
class IMDB(torch.utils.data.Dataset):
    """The IMDB reviews as token indices: item i is {"ids": list, "length": int, "label": 0 or 1}."""

    def __init__(self, x, y, vocab, max_length=256):
        ### BEGIN SOLUTION
        self.x = x
        self.y = y
        self.vocab = vocab
        self.max_length = max_length
        ### END SOLUTION

    def __len__(self):
        ### BEGIN SOLUTION
        return len(self.x)
        ### END SOLUTION

    def __getitem__(self, idx):
        ### BEGIN SOLUTION
        ids = tokenize(self.vocab, self.x[idx])[: self.max_length]
        return {"ids": ids, "length": len(ids), "label": 1 if self.y[idx] == "positive" else 0}
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_IMDB", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Your IMDB with a correct tokenize swapped in for the duration of the test (a mistake in tokenize
# costs only tokenize's points).
import re
import string

from course_lib.grading.checks import assert_equal, grade, quiet

VOCAB = {"<pad>": 0, "<unk>": 1, "movie": 2, "great": 3, "fun": 4, "bad": 5}
X = ["Great movie, great fun, a great great movie!", "Bad."]
Y = ["positive", "negative"]
EXPECTED = [{"ids": [3, 2, 3, 4], "length": 4, "label": 1}, {"ids": [5], "length": 1, "label": 0}]  # max_length 4
### BEGIN HIDDEN TESTS
HX = ["fun " * 10, "", "movie bad movie", "the a an"]
HY = ["negative", "positive", "positive", "negative"]
HEXPECTED = [{"ids": [4, 4, 4], "length": 3, "label": 0}, {"ids": [], "length": 0, "label": 1},
             {"ids": [2, 5, 2], "length": 3, "label": 1}, {"ids": [1, 1, 1], "length": 3, "label": 0}]
### END HIDDEN TESTS


def _item(item):
    return {"ids": [int(i) for i in item["ids"]], "length": int(item["length"]), "label": int(item["label"])}


def _correct_tokenize(vocab, text):
    """A correct tokenize, for the duration of this test."""
    words = re.sub(f"[{re.escape(string.punctuation)}]", "", text.lower()).split()
    return [vocab[w] if w in vocab else vocab["<unk>"] for w in words]


def _with_correct_tokenize(make):
    """make() with your IMDB calling a correct tokenize (yours restored after)."""
    saved = globals().get("tokenize")
    globals()["tokenize"] = _correct_tokenize
    try:
        return make()
    finally:
        globals().pop("tokenize", None)
        if saved is not None:
            globals()["tokenize"] = saved


def _yours():
    with quiet():
        data = IMDB(list(X), list(Y), dict(VOCAB), 4)
        out = {"len": len(data), "items": [_item(data[i]) for i in range(len(X))]}
    ### BEGIN HIDDEN TESTS
    with quiet():
        data = IMDB(list(HX), list(HY), dict(VOCAB), 3)
        out["hidden_len"] = len(data)
        out["hidden"] = [_item(data[i]) for i in range(len(HX))]
        out["long"] = _item(IMDB(["fun " * 300], ["positive"], dict(VOCAB), 256)[0])["length"]
    ### END HIDDEN TESTS
    return out


def run():
    return _with_correct_tokenize(_yours)


def check(out):
    assert_equal(out["len"], 2, name="len(IMDB(X, Y, VOCAB, 4))")
    for i, (got, expected) in enumerate(zip(out["items"], EXPECTED)):
        for key in ("ids", "length", "label"):
            assert_equal(got[key], expected[key], name=f"IMDB(X, Y, VOCAB, max_length=4)[{i}][{key!r}]")
    ### BEGIN HIDDEN TESTS
    assert_equal(out["hidden_len"], 4, name="len of a dataset of 4 reviews")
    for i, (got, expected) in enumerate(zip(out["hidden"], HEXPECTED)):
        for key in ("ids", "length", "label"):
            assert_equal(got[key], expected[key], name=f"IMDB(hidden reviews, max_length=3)[{i}][{key!r}]")
    assert_equal(out["long"], 256, name="the length of a 300-word review with max_length=256")
    ### END HIDDEN TESTS


grade("test_IMDB", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 2(d) Collating a batch [2 pts]
#
# A `DataLoader` hands its `collate_fn` a list of dataset items. Implement `collate(batch,
# pad_index)`: a dict `{"ids": LongTensor (B, T), each review's indices followed by pad_index up
# to T, the longest review of the batch, "length": LongTensor (B,), "label": LongTensor (B,)}`, the
# reviews in the order of `batch`.

# %% nbgrader={"grade": false, "grade_id": "collate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def collate(batch, pad_index=PAD_INDEX):
    """A list of items {"ids", "length", "label"} -> {"ids": (B, T) long, "length": (B,) long, "label": (B,) long}."""
    ### BEGIN SOLUTION
    ids = [torch.tensor(item["ids"], dtype=torch.long) for item in batch]
    return {"ids": pad_sequence(ids, batch_first=True, padding_value=pad_index),
            "length": torch.tensor([item["length"] for item in batch], dtype=torch.long),
            "label": torch.tensor([item["label"] for item in batch], dtype=torch.long)}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_collate", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

from course_lib.grading.checks import assert_equal, assert_true, grade, quiet

BATCH = [{"ids": [5, 6], "length": 2, "label": 1}, {"ids": [7, 8, 9, 10], "length": 4, "label": 0},
         {"ids": [11], "length": 1, "label": 1}]
EXPECTED = {"ids": [[5, 6, 0, 0], [7, 8, 9, 10], [11, 0, 0, 0]], "length": [2, 4, 1], "label": [1, 0, 1]}
EXPECTED_PAD = {"ids": [[5, 6, 9, 9], [7, 8, 9, 10]], "length": [2, 4], "label": [1, 0]}  # pad_index 9
### BEGIN HIDDEN TESTS
HBATCH = [{"ids": [3], "length": 1, "label": 0}, {"ids": [4, 4, 4], "length": 3, "label": 0}]
HEXPECTED = {"ids": [[3, 7, 7], [4, 4, 4]], "length": [1, 3], "label": [0, 0]}  # pad_index 7
### END HIDDEN TESTS


def _summary(out):
    if not isinstance(out, dict):
        return {"error": f"collate returned a {type(out).__name__}, not a dict"}
    if any(not torch.is_tensor(out.get(k)) for k in ("ids", "length", "label")):
        return {"error": f"collate should return tensors under 'ids', 'length' and 'label', got {sorted(out)}"}
    return {**{k: out[k].tolist() for k in ("ids", "length", "label")},
            "dtypes": [str(out[k].dtype) for k in ("ids", "length", "label")]}


def run():
    with quiet():
        out = {"toy": _summary(collate([dict(b) for b in BATCH], 0)),
               "toy_pad": _summary(collate([dict(b) for b in BATCH[:2]], 9))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = _summary(collate([dict(b) for b in HBATCH], 7))
    ### END HIDDEN TESTS
    return out


def _check(got, expected, label):
    assert_true("error" not in got, f"{label}: {got.get('error')}")
    for key in ("ids", "length", "label"):
        assert_equal(got[key], expected[key], name=f'{label}["{key}"]')
    assert_true(got["dtypes"] == ["torch.int64"] * 3,
                f"{label}: ids, length and label should be long tensors (torch.int64), got {got['dtypes']}")


def check(out):
    _check(out["toy"], EXPECTED, "collate(BATCH, pad_index=0)")
    _check(out["toy_pad"], EXPECTED_PAD, "collate(BATCH[:2], pad_index=9)")
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"], HEXPECTED, "collate(batch, pad_index=7)")
    ### END HIDDEN TESTS


grade("test_collate", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 2(e) The LSTM classifier [10 pts]
#
# Implement the handout's classifier `LSTM(vocab_size, embedding_dim, hidden_dim, output_dim,
# n_layers, dropout_rate, pad_index, bidirectional=False, **kwargs)` with these attributes:
#
# - `self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)`;
# - `self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=n_layers, batch_first=True,
#   bidirectional=bidirectional, dropout=dropout_rate if n_layers > 1 else 0)`;
# - `self.dropout = nn.Dropout(dropout_rate)`;
# - `self.fc = nn.Linear(2 * hidden_dim if bidirectional else hidden_dim, output_dim)`;
# - then `self.apply(kwargs.get("weight_init_fn", init_weights))` (the handout's initialisation, given below).
#
# `forward(ids, length)`: `ids` (B, T) padded after each review, `length` (B,) the real lengths
# **in any order** (a `DataLoader` does not sort them). Embed, **pack** the embedded batch with
# `pack_padded_sequence(..., length.cpu(), batch_first=True, enforce_sorted=False)` so that the
# LSTM stops at each review's end, run the LSTM, and classify the **final hidden state of the
# last layer** (`hidden` of shape `(n_layers * directions, B, H)`): `hidden[-1]` for a
# unidirectional LSTM, and for a bidirectional one the last layer's forward and backward states
# concatenated, forward first: `torch.cat((hidden[-2], hidden[-1]), dim=1)`. Apply the dropout,
# then `fc`: logits `(B, output_dim)`.
#
# The tests check the output against an independent loop (each review run alone through your
# `self.lstm`, without padding), and check that the logits do not depend on the padding: on how
# many padding columns the batch has, on what they contain, or on the other reviews of the batch.

# %%
def init_weights(m):
    """The handout's initialisation (given): Linear Xavier-normal weights and zero biases, LSTM
    orthogonal weights and zero biases; embeddings keep PyTorch's N(0, 1) with a zero padding row."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_normal_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LSTM):
        for name, param in m.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)
            elif "weight" in name:
                nn.init.orthogonal_(param)


# %% nbgrader={"grade": false, "grade_id": "LSTM", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LSTM(nn.Module):
    """Embedding -> (packed) LSTM -> final hidden state of the last layer (both directions) -> dropout -> linear."""

    def __init__(self, vocab_size, embedding_dim, hidden_dim, output_dim, n_layers, dropout_rate, pad_index,
                 bidirectional=False, **kwargs):
        super().__init__()
        ### BEGIN SOLUTION
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=n_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout_rate if n_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(hidden_dim * 2 if bidirectional else hidden_dim, output_dim)
        self.apply(kwargs.get("weight_init_fn", init_weights))
        ### END SOLUTION

    def forward(self, ids, length):
        """ids (B, T) long, length (B,) long in any order -> logits (B, output_dim)."""
        ### BEGIN SOLUTION
        embedded = self.embedding(ids)  # (B, T, E)
        packed = pack_padded_sequence(embedded, length.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)  # (n_layers * directions, B, H)
        if self.lstm.bidirectional:
            hidden = torch.cat((hidden[-2], hidden[-1]), dim=1)  # the last layer: forward, backward (B, 2H)
        else:
            hidden = hidden[-1]  # (B, H)
        return self.fc(self.dropout(hidden))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_LSTM_structure", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn

from course_lib.grading.checks import assert_equal, assert_shape, assert_true, grade, quiet


def _describe(model):
    e, lstm, fc = model.embedding, model.lstm, model.fc
    return {"embedding": [e.num_embeddings, e.embedding_dim, e.padding_idx],
            "lstm": [int(isinstance(lstm, nn.LSTM)), lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.batch_first,
                     lstm.bidirectional, float(lstm.dropout)],
            "fc": [int(isinstance(fc, nn.Linear)), fc.in_features, fc.out_features], "dropout": float(model.dropout.p),
            "pad_row": float(e.weight[e.padding_idx].abs().sum()) if e.padding_idx is not None else -1.0}


def run():
    torch.manual_seed(0)
    out = {}
    with quiet():
        for bidirectional in (False, True):
            model = LSTM(50, 8, 6, 2, 2, 0.3, 0, bidirectional).eval()
            ids = torch.randint(1, 50, (3, 5))
            length = torch.tensor([5, 4, 2])  # sorted, longest first
            ids[1, 4:], ids[2, 2:] = 0, 0
            out[str(bidirectional)] = {**_describe(model), "shape": list(model(ids, length).shape)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        model = LSTM(30, 4, 5, 3, 1, 0.5, 2, False)
        out["one_layer"] = _describe(model)
        calls = []
        LSTM(30, 4, 5, 3, 1, 0.5, 2, True, weight_init_fn=lambda m: calls.append(type(m).__name__))
        out["init_calls"] = sorted(set(calls))
    ### END HIDDEN TESTS
    return out


def check(out):
    for bidirectional in (False, True):
        got = out[str(bidirectional)]
        label = f"LSTM(50, 8, 6, 2, n_layers=2, dropout_rate=0.3, pad_index=0, bidirectional={bidirectional})"
        assert_equal(got["embedding"], [50, 8, 0], name=f"{label}.embedding (num_embeddings, embedding_dim, padding_idx)")
        assert_equal(got["lstm"], [1, 8, 6, 2, True, bidirectional, 0.3],
                     name=f"{label}.lstm (is an nn.LSTM, input_size, hidden_size, num_layers, batch_first, bidirectional, dropout)")
        assert_equal(got["fc"], [1, 12 if bidirectional else 6, 2], name=f"{label}.fc (is an nn.Linear, in, out)")
        assert_equal(got["dropout"], 0.3, name=f"{label}.dropout.p")
        assert_equal(got["pad_row"], 0.0, name=f"the sum of |{label}.embedding.weight[0]| (the padding row)")
        assert_equal(got["shape"], [3, 2], name=f"the shape of the logits of {label} for a batch of 3")
    ### BEGIN HIDDEN TESTS
    assert_equal(out["one_layer"]["lstm"], [1, 4, 5, 1, True, False, 0.0],
                 name="a one-layer LSTM (no dropout between layers)")
    assert_equal(out["one_layer"]["embedding"], [30, 4, 2], name="the embedding with pad_index=2")
    assert_equal(out["one_layer"]["dropout"], 0.5, name="dropout.p")
    assert_true({"LSTM", "Linear", "Embedding"} <= set(out["init_calls"]),
                f"weight_init_fn should be applied to every module (self.apply), got it on {out['init_calls']}")
    ### END HIDDEN TESTS


grade("test_LSTM_structure", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": true, "grade_id": "test_LSTM_forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# A unidirectional LSTM of two layers against an independent loop: each review alone, unpadded,
# through your self.embedding, self.lstm (its last layer's final state) and self.fc.
import torch

from course_lib.grading.checks import assert_close, grade, quiet

LENGTHS = [3, 7, 1, 5]  # not sorted
### BEGIN HIDDEN TESTS
HIDDEN_LENGTHS = [2, 2, 9, 4, 1, 6]
### END HIDDEN TESTS


def _case(lengths, seed, n_layers):
    torch.manual_seed(seed)
    model = LSTM(40, 6, 5, 3, n_layers, 0.2, 0, False).eval()
    length = torch.tensor(lengths)
    ids = torch.randint(1, 40, (len(lengths), max(lengths)))
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    with torch.no_grad():
        got = model(ids, length)
        expected = []
        for b, n in enumerate(lengths):
            _, (h, _) = model.lstm(model.embedding(ids[b : b + 1, :n]))  # one review, no padding
            expected.append(model.fc(h[-1])[0])
    return {"got": got, "expected": torch.stack(expected)}


def run():
    with quiet():
        out = {"toy": _case(LENGTHS, 1, 2)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [_case(HIDDEN_LENGTHS, 2, 1), _case(HIDDEN_LENGTHS, 3, 3)]
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["toy"]["got"], out["toy"]["expected"], atol=1e-5,
                 name=f"the logits of a 2-layer LSTM for reviews of lengths {LENGTHS} (each review run alone)")
    ### BEGIN HIDDEN TESTS
    for case, layers in zip(out["hidden"], (1, 3)):
        assert_close(case["got"], case["expected"], atol=1e-5,
                     name=f"the logits of a {layers}-layer LSTM for reviews of lengths {HIDDEN_LENGTHS}")
    ### END HIDDEN TESTS


grade("test_LSTM_forward", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": true, "grade_id": "test_LSTM_bidirectional", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# A bidirectional LSTM of two layers against an independent loop: the last layer's forward and
# backward final states (forward first) of each review run alone, unpadded.
import torch

from course_lib.grading.checks import assert_close, grade, quiet

LENGTHS = [4, 6, 2]  # not sorted
### BEGIN HIDDEN TESTS
HIDDEN_LENGTHS = [1, 8, 3, 8, 5]
### END HIDDEN TESTS


def _case(lengths, seed, n_layers):
    torch.manual_seed(seed)
    model = LSTM(40, 6, 5, 3, n_layers, 0.2, 0, True).eval()
    length = torch.tensor(lengths)
    ids = torch.randint(1, 40, (len(lengths), max(lengths)))
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    with torch.no_grad():
        got = model(ids, length)
        expected = []
        for b, n in enumerate(lengths):
            _, (h, _) = model.lstm(model.embedding(ids[b : b + 1, :n]))  # h: (n_layers * 2, 1, H)
            expected.append(model.fc(torch.cat([h[2 * n_layers - 2], h[2 * n_layers - 1]], dim=1))[0])
    return {"got": got, "expected": torch.stack(expected)}


def run():
    with quiet():
        out = {"toy": _case(LENGTHS, 4, 2)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = [_case(HIDDEN_LENGTHS, 5, 1), _case(HIDDEN_LENGTHS, 6, 3)]
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["toy"]["got"], out["toy"]["expected"], atol=1e-5,
                 name=f"the logits of a 2-layer bidirectional LSTM for reviews of lengths {LENGTHS} (each run alone)")
    ### BEGIN HIDDEN TESTS
    for case, layers in zip(out["hidden"], (1, 3)):
        assert_close(case["got"], case["expected"], atol=1e-5,
                     name=f"the logits of a {layers}-layer bidirectional LSTM for lengths {HIDDEN_LENGTHS}")
    ### END HIDDEN TESTS


grade("test_LSTM_bidirectional", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": true, "grade_id": "test_LSTM_padding", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Padding invariance: the logits of each review do not change with extra padding columns, with
# what the padded positions hold, or with the other reviews of the batch.
import torch

from course_lib.grading.checks import assert_close, grade, quiet

LENGTHS = [2, 5, 3]
### BEGIN HIDDEN TESTS
HIDDEN_LENGTHS = [6, 1, 4, 6, 2]
### END HIDDEN TESTS


def _case(lengths, seed, bidirectional):
    torch.manual_seed(seed)
    model = LSTM(30, 4, 5, 2, 2, 0.0, 0, bidirectional).eval()
    length = torch.tensor(lengths)
    ids = torch.randint(1, 30, (len(lengths), max(lengths)))
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    wider = torch.cat([ids, torch.zeros(len(lengths), 4, dtype=torch.long)], dim=1)  # 4 more padding columns
    garbage = wider.clone()
    for b, n in enumerate(lengths):
        garbage[b, n:] = torch.randint(1, 30, (garbage.size(1) - n,))  # the padded positions hold words
    with torch.no_grad():
        base = model(ids, length)
        alone = torch.cat([model(ids[b : b + 1, :n], length[b : b + 1]) for b, n in enumerate(lengths)])
        return {"base": base, "wider": model(wider, length), "garbage": model(garbage, length), "alone": alone}


def _check(case, label):
    assert_close(case["wider"], case["base"], atol=1e-5, name=f"{label}: the logits with 4 more padding columns")
    assert_close(case["garbage"], case["base"], atol=1e-5,
                 name=f"{label}: the logits with random words at the padded positions (beyond each length)")
    assert_close(case["alone"], case["base"], atol=1e-5, name=f"{label}: the logits of each review in a batch of one")


def run():
    with quiet():
        out = {"toy": _case(LENGTHS, 7, False)}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = _case(HIDDEN_LENGTHS, 8, True)
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["toy"], f"a 2-layer LSTM, lengths {LENGTHS}")
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"], f"a 2-layer bidirectional LSTM, lengths {HIDDEN_LENGTHS}")
    ### END HIDDEN TESTS


grade("test_LSTM_padding", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 2(f) Training and evaluation [21 pts]
#
# The runner `course_lib.runners.sentiment_lstm` trains **your** `LSTM` with **your**
# `build_vocab`, `tokenize`, `IMDB` and `collate` with the handout's settings (its starter's
# `HyperParams`): words seen at least 5 times, reviews cut to 256 tokens, batches of 96, one layer
# of 100 units, no dropout, a learning rate warmed up over the first 200 steps, 5 epochs, the
# cross-entropy loss over two classes; but embeddings of 64 and Adam at 0.002, where the starter has
# embeddings of 1 and SGD at 0.01 (which, measured, did not learn at all in two epochs: the runner's
# docstring has the numbers). After each epoch it measures the validation loss and
# accuracy; it keeps the weights of the epoch with the lowest validation loss and reports their
# test accuracy and confusion matrix.
#
# | Scale | What it runs | What it is for |
# |---|---|---|
# | `fast` | the 2,000-review subset, a small model, 2 epochs: seconds | checking that your code trains end to end (the grader uses it); its numbers mean nothing |
# | `laptop` | every review, truncated shorter (see the settings printed), about half an hour on a 2-core CPU | the questions: at least 80 % test accuracy |
# | `full` | the handout's settings | the handout reports 87.3 % test accuracy |
#
# **Logs.** The run logs each epoch (in `runs/sentiment_lstm/<scale>/`, or in `$COURSE_RUNS_DIR`;
# on Colab, point it at your Google Drive), so running the cell again resumes an interrupted run
# and reads a finished one back, unless you changed your code. In fast mode the runs go to a
# temporary folder and always start afresh.

# %% tags=["experiment"]
from course_lib.runners import sentiment_lstm as sl

SENTIMENT_LOG_DIR = Path(tempfile.mkdtemp(prefix="sentiment_lstm-fast-")) if fast_mode() else None


def train_sentiment(name="LSTM"):
    """Train (or resume, or read back) the runner's run `name` ("LSTM" or "BiLSTM") with your code."""
    log_dir = SENTIMENT_LOG_DIR / name if SENTIMENT_LOG_DIR else None
    return sl.run(name, build_vocab=build_vocab, tokenize=tokenize, dataset_class=IMDB, collate=collate,
                  model_class=LSTM, progress=True, log_dir=log_dir)


sentiment = train_sentiment("LSTM")
sl.plot_history(sentiment);

# %% [markdown]
# Per epoch: the training loss and accuracy (averaged during the epoch, the weights changing) and
# the validation loss and accuracy (after it, in eval mode):

# %% tags=["experiment"]
sl.history_table(sentiment)

# %% [markdown]
# The test split with the weights of the lowest validation loss: loss, accuracy and confusion
# matrix (rows: the true label; columns: the predicted one), and the prediction for the first test
# review (as in the handout).

# %% tags=["experiment"]
print(f"test loss {sentiment.test_loss:.3f}, test accuracy {sentiment.test_acc:.3f} "
      f"(best epoch {sentiment.best_epoch}, validation accuracy {sentiment.best_valid_acc:.3f})")
print(f"first test review: actual {sentiment.example['actual']}, predicted {sentiment.example['predicted']} "
      f"with probability {sentiment.example['probability']:.4f}")
sl.confusion_table(sentiment)

# %% [markdown]
# Write a short review of a film of your own choice in `MY_REVIEW` (a few sentences, positive or
# negative as you like) and run the cell: the model predicts its sentiment and its probability.

# %% tags=["experiment"]
MY_REVIEW = "I expected little, but the acting was superb and the story kept me gripped until the very end."
label, probability = sentiment.predict(MY_REVIEW)
print(f"{MY_REVIEW!r}\n-> {label} (probability {probability:.4f})")

# %% [markdown]
# What the run shows, checked against the handout's discussion (`True` where it holds):

# %% tags=["experiment"]
sl.conclusions(sentiment)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_curves", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2.1** [10 pts] Report the scale you ran, the per-epoch training and validation loss and
# accuracy, the test accuracy and the confusion matrix. Describe the dynamics of the training and
# validation loss: is there overfitting, and from which epoch? Is the test accuracy close to the
# validation accuracy, and what does that tell you? Which errors does the confusion matrix show
# more of (false positives or false negatives)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_curves", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (Numbers of the handout's full-scale run; a laptop run is similar with lower
# accuracy, above 80 %.) The training loss falls every epoch (0.689 -> 0.172) and the training
# accuracy rises (0.54 -> 0.94). The validation loss follows it down until epoch 4 (0.349,
# accuracy 0.873) and rises again at epoch 5 (0.401) while the training loss still falls: the model
# starts to overfit after epoch 4, which is why the runner tests the weights of the epoch with the
# lowest validation loss. The first epoch barely learns (accuracy near chance): the learning rate
# warms up over its first 200 steps (of 365). The test accuracy (0.873) is within a point of the
# best validation accuracy: the validation split is a fair estimate and the model generalises to
# unseen reviews. The handout shows no confusion matrix; the run's says which error is more frequent
# (in the laptop reference below, negative reviews called positive), typically reviews with mixed
# or sarcastic wording.
#
# *Reference, laptop scale* (`course_solutions/recorded/sentiment_lstm-laptop.json`, reference code,
# reviews cut to 128 tokens, every split whole, 5 epochs): training loss 0.687 -> 0.167, accuracy
# 0.54 -> 0.94; validation loss lowest at epoch 3 (0.402, accuracy 0.816), then 0.406 and 0.488 while
# the training loss keeps falling (overfitting from epoch 4); test accuracy of the epoch-3 weights 0.820;
# confusion matrix (rows true negative / positive) [[3878, 1109], [687, 4326]]: more negative reviews
# called positive than the reverse. About 15 CPU minutes (29 wall minutes on a shared 2-core CPU).
#
# *Rubric:* 2 pts scale and numbers reported; 3 pts the loss dynamics described (training falls,
# validation falls then rises); 2 pts overfitting identified with its epoch and linked to keeping the
# best-validation weights; 2 pts test vs validation accuracy compared and interpreted; 1 pt the
# confusion matrix read (which error is more frequent).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_review", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2.2** [5 pts] Give your review, the predicted sentiment and its probability. Is the prediction
# right? Then change a few words (add a negation such as "not", or sarcasm) and report what
# happens. Explain with what the model sees of a review: the vocabulary (stop words removed, unknown
# words) and the LSTM's final state.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_review", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* My review "I expected little, but the acting was superb and the story kept me
# gripped until the very end." is predicted positive with a high probability (the number depends on
# the run): right, driven by words such as "superb" and "gripped". With "the acting was not superb"
# the prediction barely changes: "not" is in the stop-word list, so it is removed from the vocabulary and maps to
# `<unk>` like every unknown word, and the model cannot see the negation; sarcasm fails for the same
# reason (the words are positive). The LSTM summarises the review in its final state, which favours
# strong sentiment words, especially near the end.
#
# *Rubric:* 2 pts the review, prediction and probability reported and judged; 1 pt a modification
# tried and reported; 2 pts an explanation that names what the model cannot see (stop words such as
# "not" removed, unknown words, the final state).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_2_packing", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q2.3** [6 pts] (a) Why does the classifier pack the padded batch instead of running the LSTM
# on the padded tensor? What would the final hidden state be without packing, for a unidirectional
# and for a bidirectional LSTM? (b) Why does `pack_padded_sequence` need `enforce_sorted=False`
# here? (c) Why does a bidirectional LSTM concatenate `hidden[-2]` and `hidden[-1]`, and not
# `hidden[0]` and `hidden[1]`?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_2_packing", "locked": false, "points": 6, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (a) Without packing the LSTM also reads the padding tokens after each review, so
# the final state of a short review is the state after many `<pad>` steps (each still updates the
# state, even with a zero embedding), and the prediction would depend on the batch's longest review.
# For a bidirectional LSTM it is worse: the backward direction would *start* in the padding. Packing
# stops each sequence at its length: the forward final state is at the last real token and the
# backward pass starts there. (b) By default `pack_padded_sequence` requires the lengths in
# decreasing order and raises an error otherwise; a `DataLoader`'s batches are in random order, so
# `enforce_sorted=False` lets PyTorch sort them internally and return the states in the batch's
# order. (c) `hidden` is ordered layer by layer, each with its forward then backward direction:
# `hidden[-2]` and `hidden[-1]` are the last layer's forward and backward final states, the ones to
# classify; `hidden[0]` and `hidden[1]` are the first layer's (the same only with one layer).
#
# *Rubric:* 3 pts (a) padding read without packing, its effect on the final state, the backward
# direction starting in the padding; 1 pt (b) sorted lengths required otherwise; 2 pts (c) the
# layout of `hidden` (layers x directions) and why the last layer's states.

# %% [markdown]
# ---
# ## 3. GPT-2 with Hugging Face [40 pts]
#
# GPT-2 is a decoder-only transformer language model. Hugging Face's `transformers` loads it with
# two calls: `AutoModelForCausalLM.from_pretrained(name)` (the network, a `GPT2LMHeadModel`) and
# `AutoTokenizer.from_pretrained(name)` (its byte-level BPE tokenizer). `name` is `"gpt2"` on the
# hub, or a local folder written by `save_pretrained`: the cell below picks `"gpt2"` where the hub
# answers and otherwise the course's own small GPT-2 (at the `fast` scale, always the course's toy
# one; it prints which: say it in your answers).

# %%
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling

from course_lib import hf_models as hf

MODEL_NAME = hf.default_model_name()  # "gpt2" from the hub, or the folder of the course's GPT-2 (it says which)

# %% [markdown]
# ### 3(a) Loading the model and generating text [4 pts]
#
# Implement `load_model_and_tokenizer(name)`: the model (`AutoModelForCausalLM`) and the tokenizer
# (`AutoTokenizer`) of `name`. GPT-2 has no padding token: set the tokenizer's `pad_token` to its
# `eos_token` (`"<|endoftext|>"`) and the model's `config.pad_token_id` to its
# `config.eos_token_id`, as the handout does.
#
# Then implement `generate_text(model, tokenizer, prompt, max_length)`: tokenize the prompt
# (`return_tensors="pt"`), call `model.generate` with the input ids, the attention mask,
# `max_length` (which counts the prompt's tokens) and greedy decoding (`do_sample=False`, the
# default), and **return** the decoded text of the first sequence (`skip_special_tokens=True`), the
# prompt included.

# %% nbgrader={"grade": false, "grade_id": "load_model_and_tokenizer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def load_model_and_tokenizer(name):
    """(AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)), padding token = end of text."""
    ### BEGIN SOLUTION
    model = AutoModelForCausalLM.from_pretrained(str(name))
    tokenizer = AutoTokenizer.from_pretrained(str(name))
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = model.config.eos_token_id
    return model, tokenizer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_load_model_and_tokenizer", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import tempfile

import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from course_lib import hf_models as hf
from course_lib.grading.checks import assert_equal, assert_true, grade, quiet

FOLDER = hf.local_gpt2("fast", say=None)  # the course's toy GPT-2 (built once, then cached)


def _summary(loaded, folder):
    model, tokenizer = loaded
    reference = GPT2LMHeadModel.from_pretrained(str(folder))
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    return {"model": type(model).__name__, "tokenizer_vocab": len(tokenizer), "pad_token": tokenizer.pad_token,
            "eos_token": tokenizer.eos_token, "pad_token_id": model.config.pad_token_id,
            "eos_token_id": model.config.eos_token_id, "same_weights": same,
            "n_tensors": [len(model.state_dict()), len(reference.state_dict())]}


def _check(got, label, vocab):
    assert_true(got["model"] == "GPT2LMHeadModel", f"the model of {label} should be a GPT2LMHeadModel, got {got['model']}")
    assert_equal(got["tokenizer_vocab"], vocab, name=f"len(tokenizer) of {label}")
    assert_true(got["same_weights"] and got["n_tensors"][0] == got["n_tensors"][1],
                f"the model of {label} should hold the weights saved there (from_pretrained)")
    assert_true(got["pad_token"] == "<|endoftext|>",
                f"tokenizer.pad_token of {label} should be the end-of-text token, got {got['pad_token']!r}")
    assert_equal(got["pad_token_id"], got["eos_token_id"], name=f"model.config.pad_token_id of {label} (= eos_token_id)")


def run():
    with quiet():
        out = {"toy": _summary(load_model_and_tokenizer(str(FOLDER)), FOLDER)}
    ### BEGIN HIDDEN TESTS
    with quiet(), tempfile.TemporaryDirectory() as folder:
        tokenizer = AutoTokenizer.from_pretrained(str(FOLDER))
        torch.manual_seed(3)
        GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                   bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
                        ).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out["hidden"] = _summary(load_model_and_tokenizer(folder), folder)
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["toy"], "the course's toy GPT-2", 512)
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"], "a random GPT-2 saved in a temporary folder", 512)
    ### END HIDDEN TESTS


grade("test_load_model_and_tokenizer", run, check,
      forbid=["course_lib.hf_models.load_model_and_tokenizer", "course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": false, "grade_id": "generate_text", "locked": false, "schema_version": 3, "solution": true, "task": false}
def generate_text(model, tokenizer, prompt, max_length=100):
    """The greedy continuation of prompt, decoded (prompt included), at most max_length tokens in all.

    The prompt's input_ids and attention_mask are (1, T) tensors; model.generate returns (1, T') token ids,
    T' <= max_length.
    """
    ### BEGIN SOLUTION
    model.eval()
    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        tokens = model.generate(inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device),
                                max_length=max_length, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(tokens[0], skip_special_tokens=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_generate_text", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Against an independent greedy loop: append the most likely next token until max_length tokens
# (or the end-of-text token), then decode.
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from course_lib import hf_models as hf
from course_lib.grading.checks import assert_equal, assert_true, grade, quiet

PROMPT = "The movie was"
### BEGIN HIDDEN TESTS
HIDDEN = [("GPT-2 is a language model", 8), ("Hello", 1), ("A long, long prompt of several words here", 12)]  # new tokens
### END HIDDEN TESTS


def _setup(seed):
    """The course's toy GPT-2 (seed None) or a random one of its vocabulary."""
    folder = str(hf.local_gpt2("fast", say=None))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    if seed is None:
        return GPT2LMHeadModel.from_pretrained(folder).eval(), tokenizer
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).eval(), tokenizer


def _greedy(model, tokenizer, prompt, max_length):
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        while len(ids) < max_length:
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
            if nxt == tokenizer.eos_token_id:
                break
    return tokenizer.decode(ids, skip_special_tokens=True)


def run():
    model, tokenizer = _setup(None)
    with quiet():
        out = {"toy": generate_text(model, tokenizer, PROMPT, 15), "expected": _greedy(model, tokenizer, PROMPT, 15)}
    ### BEGIN HIDDEN TESTS
    model, tokenizer = _setup(1)
    with quiet():
        out["toy_long"] = (generate_text(model, tokenizer, PROMPT, 40), _greedy(model, tokenizer, PROMPT, 40))
        lengths = [len(tokenizer(p)["input_ids"]) + k for p, k in HIDDEN]  # max_length counts the prompt
        out["hidden"] = [(generate_text(model, tokenizer, p, n), _greedy(model, tokenizer, p, n), n)
                         for (p, _), n in zip(HIDDEN, lengths)]
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_true(isinstance(out["toy"], str), f"generate_text should return the decoded text (a str), got {out['toy']!r}")
    assert_true(out["toy"] == out["expected"],
                f"generate_text(model, tokenizer, {PROMPT!r}, max_length=15) gave {out['toy']!r}, expected "
                f"{out['expected']!r} (greedy)")
    ### BEGIN HIDDEN TESTS
    assert_true(out["toy_long"][0] == out["toy_long"][1], "generate_text with a random GPT-2, max_length=40")
    for (got, expected, n), (prompt, _) in zip(out["hidden"], HIDDEN):
        assert_true(got == expected, f"generate_text(model, tokenizer, {prompt!r}, max_length={n}) gave {got!r}, "
                    f"expected {expected!r}")
    ### END HIDDEN TESTS


grade("test_generate_text", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# The model as loaded, on the handout's prompt:

# %%
model, tokenizer = load_model_and_tokenizer(MODEL_NAME)
print(f"{MODEL_NAME}: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer):,}")
print(generate_text(model, tokenizer, "GPT-2 is a language model based on transformer developed by OpenAI", 60))

# %% [markdown]
# ### 3(b) The data: tokenized rows with labels, and the collator [3 pts]
#
# The handout fine-tunes on 10 % of WikiText-2 (`load_dataset("wikitext", "wikitext-2-raw-v1")`; the
# course's `hf.load_wikitext(split, fraction)` returns the same `datasets.Dataset`, from the hub or,
# offline, from the course's copy). Implement `tokenize_dataset(dataset, tokenizer, max_length=None)`:
#
# - drop the rows whose `"text"` is blank (`text.strip() == ""`: a third of WikiText-2's rows; they
#   hold no token to predict);
# - tokenize the others with `padding="max_length"`, `truncation=True` and `max_length` (default:
#   `tokenizer.model_max_length`) in a batched `dataset.map`, with `"labels"` a copy of
#   `"input_ids"`, and the `"text"` column removed;
# - return the dataset in torch format (`set_format("torch")`): columns `input_ids`,
#   `attention_mask`, `labels`.
#
# Then implement `make_collator(tokenizer)`: the causal language-modelling collator,
# `DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)`. It pads a batch and rebuilds
# `labels` from `input_ids` with **-100 at every padding position** (the value the loss ignores).

# %% nbgrader={"grade": false, "grade_id": "tokenize_dataset", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tokenize_dataset(dataset, tokenizer, max_length=None):
    """A datasets.Dataset with a "text" column -> its non-blank rows tokenized: input_ids, attention_mask, labels."""
    ### BEGIN SOLUTION
    max_length = max_length or tokenizer.model_max_length
    dataset = dataset.filter(lambda row: bool(row["text"].strip()))

    def tokenize_function(examples):
        tokenized = tokenizer(examples["text"], padding="max_length", truncation=True, max_length=max_length)
        tokenized["labels"] = [list(ids) for ids in tokenized["input_ids"]]
        return tokenized

    tokenized = dataset.map(tokenize_function, batched=True, remove_columns=["text"])
    tokenized.set_format("torch")
    return tokenized
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tokenize_dataset", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from datasets import Dataset
from transformers import AutoTokenizer

from course_lib import hf_models as hf
from course_lib.grading.checks import assert_equal, assert_true, grade, quiet

TEXTS = [" = Valkyria Chronicles = \n", "", " The game was released in 2011 . It is a tactical role playing game \n", " \n"]
### BEGIN HIDDEN TESTS
HIDDEN_TEXTS = ["\n", " A \n", "  ", " " + "word " * 100 + "\n", " Two rows \n"]
### END HIDDEN TESTS


def _tokenizer():
    tokenizer = AutoTokenizer.from_pretrained(str(hf.local_gpt2("fast", say=None)))
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _summary(ds):
    return {"columns": sorted(ds.column_names), "rows": len(ds), "format": ds.format["type"],
            "data": [{k: [int(v) for v in row[k]] for k in ("input_ids", "attention_mask", "labels") if k in row}
                     for row in ds]}


def _expected(tokenizer, texts, max_length):
    rows = []
    for text in texts:
        if text.strip():
            enc = tokenizer(text, padding="max_length", truncation=True, max_length=max_length)
            rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                         "labels": enc["input_ids"]})
    return rows


def _check(got, expected, label):
    assert_true(got["columns"] == ["attention_mask", "input_ids", "labels"],
                f"the columns of {label} should be attention_mask, input_ids, labels, got {got['columns']}")
    assert_equal(got["rows"], len(expected), name=f"the number of rows of {label} (blank rows dropped)")
    assert_true(got["format"] == "torch", f"{label} should be in torch format (set_format), got {got['format']!r}")
    for i, (row, exp) in enumerate(zip(got["data"], expected)):
        for key in ("input_ids", "attention_mask", "labels"):
            assert_equal(row[key], exp[key], name=f"{label}[{i}][{key!r}]")


def run():
    tokenizer = _tokenizer()
    with quiet():
        out = {"toy": _summary(tokenize_dataset(Dataset.from_dict({"text": list(TEXTS)}), tokenizer, 8))}
    ### BEGIN HIDDEN TESTS
    with quiet():
        out["hidden"] = _summary(tokenize_dataset(Dataset.from_dict({"text": list(HIDDEN_TEXTS)}), tokenizer))
    ### END HIDDEN TESTS
    return out


def check(out):
    tokenizer = _tokenizer()
    _check(out["toy"], _expected(tokenizer, TEXTS, 8), "tokenize_dataset(4 rows, tokenizer, max_length=8)")
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"], _expected(tokenizer, HIDDEN_TEXTS, tokenizer.model_max_length),
           "tokenize_dataset(5 rows, tokenizer) (max_length: the tokenizer's model_max_length)")
    ### END HIDDEN TESTS


grade("test_tokenize_dataset", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": false, "grade_id": "make_collator", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_collator(tokenizer):
    """The causal language-modelling collator (no masking): pads, labels = input_ids with -100 at padding.

    The padding token must be set: where the tokenizer has none, use its end-of-text token (as GPT-2 needs)."""
    ### BEGIN SOLUTION
    if tokenizer.pad_token is None:  # GPT-2 has none: pad with its end-of-text token
        tokenizer.pad_token = tokenizer.eos_token
    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_make_collator", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from transformers import AutoTokenizer

from course_lib import hf_models as hf
from course_lib.grading.checks import assert_equal, assert_true, grade, quiet

ROWS = [[5, 6, 7], [8, 9, 10, 11, 12, 13]]
### BEGIN HIDDEN TESTS
HIDDEN_ROWS = [[4], [9, 8], [7, 7, 7, 7]]
### END HIDDEN TESTS


def _collate(tokenizer, rows):
    with quiet():
        collator = make_collator(tokenizer)
        batch = collator([{"input_ids": list(r)} for r in rows])
    return {"type": type(collator).__name__, "mlm": bool(getattr(collator, "mlm", True)), "pad": tokenizer.eos_token_id,
            **{k: batch[k].tolist() for k in ("input_ids", "attention_mask", "labels")}}


def _check(got, rows, label):
    assert_true(got["type"] == "DataCollatorForLanguageModeling",
                f"{label} should be a DataCollatorForLanguageModeling, got a {got['type']}")
    assert_equal(got["mlm"], False, name=f"{label}.mlm (causal language modelling: no masking)")
    pad, T = got["pad"], max(map(len, rows))
    assert_equal(got["input_ids"], [r + [pad] * (T - len(r)) for r in rows],
                 name=f"the input_ids collated by {label} (padded on the right)")
    assert_equal(got["attention_mask"], [[1] * len(r) + [0] * (T - len(r)) for r in rows],
                 name=f"the attention mask of {label}")
    assert_equal(got["labels"], [r + [-100] * (T - len(r)) for r in rows], name=f"the labels of {label} (-100 at padding)")


def run():
    folder = str(hf.local_gpt2("fast", say=None))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    out = {"toy": _collate(tokenizer, ROWS)}
    ### BEGIN HIDDEN TESTS
    out["no_pad"] = _collate(AutoTokenizer.from_pretrained(folder), HIDDEN_ROWS)  # no padding token, as gpt2's
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["toy"], ROWS, "make_collator(tokenizer)")
    ### BEGIN HIDDEN TESTS
    _check(out["no_pad"], HIDDEN_ROWS, "make_collator of a tokenizer without a padding token (pad with end of text)")
    ### END HIDDEN TESTS


grade("test_make_collator", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 3(c) Perplexity, counted right [11 pts]
#
# The perplexity of a model on a data set is the exponential of the mean negative log-likelihood
# **per predicted token**: $\exp\big(\frac{1}{N}\sum_{\text{rows}} \sum_{t \ge 1} -\log
# p(x_t \mid x_{<t})\big)$, where $N$ counts the tokens that are predicted: in each row, every
# real (non-padding) token after the first (nothing predicts the first token of a row).
#
# Implement `evaluate_perplexity(model, dataloader)` for batches of the collator of 3(b)
# (`input_ids`, `attention_mask`, `labels` with -100 at padding): in eval mode and without
# gradients, for each batch take the logits, shift them (position $t$ predicts token $t + 1$),
# **sum** the cross-entropy of every predicted, non-padding token (`ignore_index=-100`,
# `reduction="sum"`), add up those sums and the numbers of tokens over **all** the batches, and
# return `math.exp(total NLL / total tokens)` as a Python float. On a batch without padding it
# equals `exp` of the model's own loss, `model(**batch).loss`.
#
# The handout's version divides the summed loss by `attention_mask.sum()`: one token per row too
# many (the first token of each row, never predicted). Averaging `model(**batch).loss` over the
# batches (what `Trainer`'s `eval_loss` does) is wrong too when the batches hold different numbers
# of tokens. You compare the three after the tests.

# %% nbgrader={"grade": false, "grade_id": "evaluate_perplexity", "locked": false, "schema_version": 3, "solution": true, "task": false}
def evaluate_perplexity(model, dataloader):
    """exp(summed NLL of every predicted non-padding token / their number), over all the batches.

    Each batch: input_ids, attention_mask, labels (B, T); the model's logits (B, T, V); position t
    predicts token t + 1, so the shifted logits (B, T - 1, V) meet the targets labels[:, 1:] (B, T - 1).
    Returns a Python float.
    """
    ### BEGIN SOLUTION
    model.eval()
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for batch in dataloader:
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
            targets = labels[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)  # (B, T - 1)
            nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                  ignore_index=-100, reduction="sum")
            total_nll += nll.item()
            total_tokens += int((targets != -100).sum())
    return math.exp(total_nll / total_tokens)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_evaluate_perplexity", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Batches without padding: the perplexity is exp of the model's own loss, weighted by the number of
# predicted tokens of each batch.
import math

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib.grading.checks import as_float, assert_close, grade, quiet


def _model(seed):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2, bos_token_id=49,
                        eos_token_id=49, pad_token_id=49)
    return GPT2LMHeadModel(config).eval()


def _batch(rows, length):
    ids = torch.randint(0, 49, (rows, length))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _case(seed, shapes):
    model = _model(seed)
    batches = [_batch(r, t) for r, t in shapes]
    with torch.no_grad():
        losses = [float(model(**b).loss) for b in batches]
    expected = math.exp(sum(loss * r * (t - 1) for loss, (r, t) in zip(losses, shapes))
                        / sum(r * (t - 1) for r, t in shapes))
    with quiet():
        got = evaluate_perplexity(model, [dict(b) for b in batches])
    return {"got": as_float(got, name="evaluate_perplexity(...)"), "expected": expected}


def run():
    out = {"toy": _case(0, [(2, 10)])}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = _case(1, [(2, 10), (3, 4), (1, 2)])
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["toy"]["got"], out["toy"]["expected"], rtol=1e-4,
                 name="evaluate_perplexity on one batch of 2 x 10 tokens without padding (exp of the model's loss)")
    ### BEGIN HIDDEN TESTS
    assert_close(out["hidden"]["got"], out["hidden"]["expected"], rtol=1e-4,
                 name="evaluate_perplexity on batches of 2 x 10, 3 x 4 and 1 x 2 tokens (token-weighted)")
    ### END HIDDEN TESTS


grade("test_evaluate_perplexity", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": true, "grade_id": "test_evaluate_perplexity_padding", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Batches of rows of uneven lengths, padded on the right (labels -100 and attention mask 0 at
# padding): against each row run alone without padding, weighted by its number of predicted tokens.
import math

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib.grading.checks import as_float, assert_close, grade, quiet

BATCHES = [[10, 4, 7], [3, 2]]  # the lengths of the rows of each batch
### BEGIN HIDDEN TESTS
HIDDEN_BATCHES = [[5], [12, 2, 2, 9], [6, 6]]
### END HIDDEN TESTS


def _case(seed, batches):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2, bos_token_id=49,
                        eos_token_id=49, pad_token_id=49)
    model = GPT2LMHeadModel(config).eval()
    loader, nll, count = [], 0.0, 0
    for lengths in batches:
        rows = [torch.randint(0, 49, (n,)) for n in lengths]
        T = max(lengths)
        ids = torch.full((len(rows), T), 49)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, : len(row)], mask[b, : len(row)] = row, 1
            with torch.no_grad():
                nll += float(model(row[None], labels=row[None]).loss) * (len(row) - 1)
            count += len(row) - 1
        loader.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    with quiet():
        got = evaluate_perplexity(model, loader)
    return {"got": as_float(got, name="evaluate_perplexity(...)"), "expected": math.exp(nll / count)}


def run():
    out = {"toy": _case(2, BATCHES)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = _case(3, HIDDEN_BATCHES)
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_close(out["toy"]["got"], out["toy"]["expected"], rtol=1e-4,
                 name=f"evaluate_perplexity on padded batches of rows of lengths {BATCHES}")
    ### BEGIN HIDDEN TESTS
    assert_close(out["hidden"]["got"], out["hidden"]["expected"], rtol=1e-4,
                 name=f"evaluate_perplexity on padded batches of rows of lengths {HIDDEN_BATCHES}")
    ### END HIDDEN TESTS


grade("test_evaluate_perplexity_padding", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# **The handout's count and a per-batch average, on a batch of uneven lengths.** The handout's
# `evaluate_perplexity` (below, as the handout wrote it) divides by `attention_mask.sum()`; the
# per-batch version averages the model's own loss over the batches. The cell compares them with
# yours on a few sentences of very different lengths, in two batches.

# %%
def handout_evaluate_perplexity(model, dataloader):
    """The handout's 3(c), as written there (one token per row too many in the count)."""
    model.eval()
    device = next(model.parameters()).device
    total_loss, total_length = 0.0, 0
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    with torch.no_grad():
        for batch in dataloader:
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)
            logits = model(input_ids, attention_mask=attention_mask, labels=labels).logits
            shift_logits = logits[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous()
            total_loss += loss_fn(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1)).item()
            total_length += attention_mask.sum().item()
    return math.exp(total_loss / total_length)


def per_batch_perplexity(model, dataloader):
    """exp of the mean over batches of the model's own (per-batch mean) loss."""
    model.eval()
    with torch.no_grad():
        losses = [model(**{k: v.to(next(model.parameters()).device) for k, v in b.items()}).loss.item()
                  for b in dataloader]
    return math.exp(sum(losses) / len(losses))


SENTENCES = ["The film opens on a quiet street .",
             "It rains .",
             "Critics praised the performances , the score and the long final scene in the station .",
             "Yes ."]
collator = make_collator(tokenizer)
uneven = [collator([{"input_ids": tokenizer(s)["input_ids"]} for s in SENTENCES[:2]]),
          collator([{"input_ids": tokenizer(s)["input_ids"]} for s in SENTENCES[2:]])]
print("tokens per row:", [len(tokenizer(s)["input_ids"]) for s in SENTENCES])
pd.Series({"token-weighted (yours)": evaluate_perplexity(model, uneven),
           "the handout's (attention_mask.sum())": handout_evaluate_perplexity(model, uneven),
           "per-batch average of the loss": per_batch_perplexity(model, uneven)}, name="perplexity").round(2)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_count", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3.1** [5 pts] Report the three numbers of the cell above. Explain why the handout's perplexity
# is lower than yours, and for which rows the difference is largest. Why is the per-batch average
# different too, and when would it be equal to yours?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_count", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (The numbers depend on the model the notebook loaded.) The handout sums the loss
# of the predicted tokens, $n - 1$ per row of $n$ tokens, but divides by `attention_mask.sum()`,
# $n$ per row: the mean NLL is too small by the factor $(n - 1)/n$, so its exponential, the
# perplexity, is too low. The error is largest for short rows ("It rains ." or "Yes .": with 2 or 3
# tokens a third to a half of the count is wrong) and vanishes for long rows (1,024-token rows barely
# change). (In the handout the padding is also counted in the loss unless the collator's -100 labels
# are used, because `tokenize_function` copies `input_ids`, padding included.) The per-batch average
# gives each batch the same weight whatever its number of tokens: a batch of two short rows weighs as
# much as a batch with a long one, so the mean is not the mean per token. It equals the
# token-weighted value only when every batch holds the same number of predicted tokens (e.g. all rows
# full length, no padding).
#
# *Reference, laptop scale* (the course's GPT-2; the four sentences are 9, 4, 18 and 3 tokens):
# 388.0 token-weighted; 192.4 the handout's count (the NLL of the 30 predicted tokens divided by
# 34: the mean NLL 12 % too small, which halves the perplexity of this model); 449.2 the per-batch
# average (the batch of 11 predicted tokens weighs as much as the one of 19). On the runner's
# validation rows the handout's count gives 259 where the per-token perplexity is 280 (before
# fine-tuning): 7 % too low.
#
# *Rubric:* 1 pt the numbers; 2 pts the handout's denominator counts one unpredicted token per row,
# so too low, worst for short rows; 2 pts the per-batch average weighs batches equally, equal only
# with equal token counts.

# %% [markdown]
# ### 3(d) LoRA and the trainable parameters [4 pts]
#
# Full fine-tuning updates every weight of the model. LoRA (Hu et al., 2021) freezes them and adds
# beside some weight matrices $W$ (here GPT-2's fused query/key/value projection `c_attn` in every
# block) a low-rank update $\frac{\alpha}{r} B A$ with $A$ of shape $r \times d_{in}$ and $B$ of
# shape $d_{out} \times r$ ($B$ starts at zero, so the model is unchanged at first); only $A$ and $B$
# are trained.
#
# Implement `lora_model(model)`: wrap `model` with `peft`'s `get_peft_model` and a `LoraConfig`
# with the handout's settings, `r=64`, `lora_alpha=16`, `lora_dropout=0.1`, `bias="none"`,
# `task_type="CAUSAL_LM"`, on `target_modules=["c_attn"]` (GPT-2's layers are `Conv1D`, which store
# their weights transposed: pass `fan_in_fan_out=True`). Return the `PeftModel`.
#
# And `count_trainable(model)`: the number of parameters that receive gradients (each counted once).

# %% nbgrader={"grade": false, "grade_id": "lora_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lora_model(model):
    """model with LoRA adapters (r=64, alpha=16, dropout 0.1) on c_attn, every original weight frozen."""
    from peft import LoraConfig, get_peft_model

    ### BEGIN SOLUTION
    config = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.1, bias="none", task_type="CAUSAL_LM",
                        target_modules=["c_attn"], fan_in_fan_out=True)
    return get_peft_model(model, config)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lora_model", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib.grading.checks import assert_close, assert_equal, assert_true, grade, quiet


def _case(seed, n_embd, n_layer):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=n_embd, n_layer=n_layer, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        before = model(ids).logits
    with quiet():
        wrapped = lora_model(model)
    wrapped.eval()
    with torch.no_grad():
        after = wrapped(input_ids=ids).logits
    peft_config = getattr(wrapped, "peft_config", {}).get("default")
    trainable = {n: p.numel() for n, p in wrapped.named_parameters() if p.requires_grad}
    return {"type": type(wrapped).__name__,
            "config": [getattr(peft_config, k, None) for k in ("r", "lora_alpha", "lora_dropout")],
            "trainable": sum(trainable.values()), "not_lora": sorted(n for n in trainable if "lora_" not in n),
            "adapted": sorted({n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if "lora_" in n}),
            "before": before, "after": after}


def _check(got, n_embd, n_layer, label):
    assert_true(got["type"].startswith("Peft"), f"lora_model should return a peft PeftModel, got a {got['type']}")
    assert_equal(got["config"], [64, 16, 0.1], name=f"(r, lora_alpha, lora_dropout) of {label}")
    assert_true(got["not_lora"] == [], f"only the LoRA matrices of {label} should be trainable, also: {got['not_lora'][:5]}")
    assert_true(got["adapted"] == ["c_attn"], f"{label} should adapt the c_attn layers, it adapts {got['adapted']}")
    expected = n_layer * 64 * (n_embd + 3 * n_embd)  # A: r x n_embd and B: 3 n_embd x r in each block's c_attn
    assert_equal(got["trainable"], expected, name=f"the number of trainable parameters of {label}")
    assert_close(got["after"], got["before"], atol=1e-5, name=f"the logits of {label} before training (B = 0)")


def run():
    out = {"toy": _case(0, 32, 2)}
    ### BEGIN HIDDEN TESTS
    out["hidden"] = _case(1, 24, 3)
    ### END HIDDEN TESTS
    return out


def check(out):
    _check(out["toy"], 32, 2, "lora_model(a GPT-2 of 2 blocks of 32)")
    ### BEGIN HIDDEN TESTS
    _check(out["hidden"], 24, 3, "lora_model(a GPT-2 of 3 blocks of 24)")
    ### END HIDDEN TESTS


grade("test_lora_model", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% nbgrader={"grade": false, "grade_id": "count_trainable", "locked": false, "schema_version": 3, "solution": true, "task": false}
def count_trainable(model):
    """The number of parameters of model with requires_grad (shared parameters counted once)."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_count_trainable", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn

from course_lib.grading.checks import as_int, assert_equal, grade, quiet


def run():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # 16 + 10 parameters
    model[0].weight.requires_grad_(False)  # 12 frozen
    with quiet():
        out = {"toy": as_int(count_trainable(model), name="count_trainable(model)")}
    ### BEGIN HIDDEN TESTS
    shared = nn.Linear(5, 5)
    tied = nn.Sequential(shared, nn.Tanh(), shared)  # one Linear used twice: 30 parameters
    frozen = nn.Linear(7, 3).requires_grad_(False)
    with quiet():
        out["tied"] = as_int(count_trainable(tied), name="count_trainable(tied)")
        out["frozen"] = as_int(count_trainable(frozen), name="count_trainable(frozen)")
    ### END HIDDEN TESTS
    return out


def check(out):
    assert_equal(out["toy"], 14, name="count_trainable(Linear(3, 4) with its weight frozen, ReLU, Linear(4, 2))")
    ### BEGIN HIDDEN TESTS
    assert_equal(out["tied"], 30, name="count_trainable of a model using one Linear(5, 5) twice")
    assert_equal(out["frozen"], 0, name="count_trainable of a frozen Linear(7, 3)")
    ### END HIDDEN TESTS


grade("test_count_trainable", run, check, forbid=["course_solutions.layers", "course_solutions.gpt2"])

# %% [markdown]
# ### 3(e) Full fine-tuning and LoRA [18 pts]
#
# The runner `course_lib.runners.gpt2_finetune` compares three models on the same validation rows,
# each measured with **your** `evaluate_perplexity` (and, for comparison, the handout's count):
# the model as loaded (`before`); the model fine-tuned fully (`full`, every parameter trained); and
# the model with **your** `lora_model` adapters fine-tuned (`lora`, only the adapters trained). It
# tokenizes WikiText-2 with **your** `tokenize_dataset`, generates the handout's prompt with **your**
# `generate_text`, and fine-tunes with `transformers.Trainer`, as the handout does:
#
# ```python
# args = TrainingArguments(output_dir, num_train_epochs=3, per_device_train_batch_size=8,
#                          learning_rate=5e-5, warmup_steps=500, eval_strategy="epoch", ...)
# trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
#                   data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
# trainer.train()
# ```
#
# Each fine-tuning starts from a fresh copy of the loaded model, and its time excludes the
# evaluations. The scales:
#
# | Scale | Model and data | What it is for |
# |---|---|---|
# | `fast` | a toy GPT-2, a few dozen rows, 2 epochs: seconds | checking that your code runs (the grader uses it); its numbers mean nothing |
# | `laptop` | the course's small GPT-2 (about 2 million parameters, pretrained mostly on IMDB reviews) on 2,000 rows of the handout's 10 % of WikiText-2, 3 epochs, learning rate 1e-3 | the questions, on a 2-core CPU in about 20 minutes (plus building the model once) |
# | `full` | `gpt2` from the hub on the handout's 10 % of `wikitext-2-raw-v1`, the handout's settings | the handout's numbers (perplexity 43 before, 27 full, 30 LoRA), on a GPU |
#
# The methods log into `runs/gpt2_finetune/<scale>/<method>/` (or `$COURSE_RUNS_DIR`): a finished
# method is read back, not trained again, unless you changed your code.

# %% tags=["experiment"]
from course_lib.runners import gpt2_finetune as gf

GPT2_LOG_DIR = Path(tempfile.mkdtemp(prefix="gpt2_finetune-fast-")) if fast_mode() else None
finetuned = gf.run(evaluate_perplexity=evaluate_perplexity, lora_model=lora_model, tokenize_dataset=tokenize_dataset,
                   generate_text=generate_text, log_dir=GPT2_LOG_DIR)
print(f"model: {finetuned.model_name} ({finetuned.model_description}); rows: {finetuned.rows}")
gf.results_table(finetuned)

# %% [markdown]
# The validation perplexity after each epoch, and your `count_trainable` on the fine-tuned models:

# %% tags=["experiment"]
for method in ("full", "lora"):
    print(f"{gf.LABELS[method]}: {count_trainable(finetuned[method].model):,} trainable parameters")
pd.concat({gf.LABELS[m]: pd.DataFrame(finetuned[m].history).set_index("epoch") for m in ("full", "lora")}, axis=1)

# %% [markdown]
# The handout's prompt, continued greedily by each model:

# %% tags=["experiment"]
for method in gf.METHODS:
    print(f"--- {gf.LABELS[method]}\n{finetuned[method].sample}\n")

# %% [markdown]
# What the comparison shows (`True` where it holds):

# %% tags=["experiment"]
gf.conclusions(finetuned)

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_compare", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3.2** [10 pts] Which model and scale did you run? Report, for the model before fine-tuning,
# after full fine-tuning and after LoRA: the validation perplexity, the number (and share) of
# trainable parameters and the fine-tuning time. Which fine-tuning reaches the lower perplexity, and
# why? Why is LoRA faster per step, and why is the speed-up much smaller than the ratio of trainable
# parameters?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_compare", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (The handout's numbers, `gpt2` on a GPU; a laptop run with the course's small
# GPT-2 shows the same ordering.) Before fine-tuning the perplexity is 43.0 (as the handout counts
# it; a little higher counted per predicted token); full fine-tuning brings it to 27.3 and LoRA to
# 30.3. Full fine-tuning trains all 124 million parameters; LoRA with r = 64 on `c_attn` trains
# 12 x 64 x (768 + 2304) = 2.4 million (about 2 % of the model). Full fine-tuning took 14.5 minutes
# and LoRA 8.7. Full fine-tuning reaches the lower perplexity because it can change every weight
# (embeddings, MLPs, every projection), while LoRA constrains the update to a rank-64 change of the
# attention projections; LoRA still recovers most of the gain. LoRA is faster because no gradients
# are needed for the frozen weights and the optimizer (AdamW, two moments per parameter) updates 2 %
# of the parameters, which also saves memory; but the forward pass is as expensive as before (plus
# the adapters) and the backward pass must still propagate activations' gradients through every
# layer, so the time falls far less than the parameter count.
#
# *Reference, laptop scale* (`course_solutions/recorded/gpt2_finetune-laptop.json`, the course's own
# GPT-2: 4 layers of 128, 1.86 million parameters, the handout's 10 % of WikiText-2, 3 epochs): perplexity
# 280 before, 216 after full fine-tuning (1,858,304 trainable parameters, 3.6 CPU minutes), 270 with LoRA
# (131,072 trainable, 7 %; 3.2 CPU minutes). The ordering is the handout's, but the sizes differ: full
# fine-tuning lowers the perplexity by 23 % (the handout: 36 %), LoRA by only 4 % (the handout: 30 %),
# with the same learning rate for both and LoRA's update scaled by alpha / r = 0.25. Credit an answer
# that reports its own numbers honestly, with a reasoned explanation, rather than the handout's.
#
# *Rubric:* 1 pt model and scale named; 3 pts the three perplexities, parameter counts and times
# reported; 2 pts full fine-tuning lower, explained by the constrained low-rank update; 2 pts LoRA
# faster because of fewer weight gradients and optimizer updates; 2 pts why the speed-up is small
# (forward pass and backpropagation through the frozen layers remain).

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_text", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3.3** [4 pts] Compare the three generated texts. How does fine-tuning on WikiText-2 change
# them? What problem do all three show with greedy decoding, and how would you reduce it?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_text", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The model before fine-tuning continues in the style of its pretraining text (for
# the course's model, movie reviews); after fine-tuning, both models write in WikiText's
# encyclopaedic style (with its spaces around punctuation, " , " and " . ", and `@-@`), full
# fine-tuning the more so. All three repeat themselves: greedy decoding always picks the most likely
# token, and once a phrase is likely after itself it loops. Sampling (temperature, top-k, nucleus
# top-p), a repetition penalty or `no_repeat_ngram_size`, or beam search with such a penalty
# reduce it.
#
# *Reference, laptop scale* (the recorded run of the course's GPT-2, greedy, 100 tokens): before
# fine-tuning the continuation is a review-like fragment, `was a "s of the film.`, then only line
# breaks; after full fine-tuning `, and the <unk> , and the <unk> , and the <unk> , and <unk> ...`,
# after LoRA `was a <unk> , the <unk> , and <unk> , the <unk> ...`: the spaced punctuation of WikiText-2 and its `<unk>`
# (the course's offline copy is the tokenized version, where rare words are `<unk>`), in a loop.
# Offline there is no `@-@` in the samples and no encyclopaedic sentence: credit an answer that
# describes what its own texts show.
#
# *Rubric:* 2 pts the change of style after fine-tuning described with the texts; 1 pt repetition
# under greedy decoding identified and explained; 1 pt a remedy.

# %% [markdown] nbgrader={"grade": false, "grade_id": "question_3_lora", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Q3.4** [4 pts] Your `lora_model` uses r = 64 and alpha = 16. What does the scaling alpha / r do?
# Compute the number of LoRA parameters for `gpt2` (12 blocks, `c_attn` of 768 -> 2304) and check it
# against the runner's count where you ran `gpt2`. Why is $B$ initialised to zero?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_3_lora", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* The update is scaled by alpha / r = 16 / 64 = 0.25: it sets the size of the
# adapters' contribution independently of the rank, so changing r does not require retuning the
# learning rate. For `gpt2`: per block $A$ is 64 x 768 and $B$ is 2304 x 64, 64 x (768 + 2304) =
# 196,608 parameters, times 12 blocks = 2,359,296 (1.9 % of 124 million). $B = 0$ makes $BA = 0$ at
# the start, so the adapted model is exactly the pretrained one and training starts from its
# behaviour ($A$ is random so that the gradient of $B$ is not zero).
#
# *Rubric:* 1 pt the scaling's role; 2 pts the count (2,359,296); 1 pt why B starts at zero.
