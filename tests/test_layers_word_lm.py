"""Value tests for the word_lm_ptb reference solutions (course_solutions.layers: lstm_cell_params,
GRUCell, gru_cell_backward, build_vocab, batchify, get_batch, WordLM, detach_hidden,
clip_grad_global_norm, train_step).

Every reference comparison is a ``check_*`` function (an adapter: it takes the implementation to
test) that raises AssertionError. The tests run each check on the reference implementation, and on
known-wrong variants defined below (z and 1 - z swapped, PyTorch's reset-gate placement, missing
sigmoid derivatives or W_hg^T, two biases per gate, sorted vocabularies, batchify trimming the front,
unshifted targets, an ignored hidden state, per-parameter clipping, no truncation of the graph, ...),
which each check must reject. The independent computations are float64 NumPy / explicit loops,
PyTorch's own modules with the weights mapped, autograd and ``torch.autograd.gradcheck``.

Shapes: B batch (streams), T time, D input size, E embedding, H hidden, V vocabulary, L stream length.
"""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_solutions.layers import (
    GRUCell,
    WordLM,
    batchify,
    build_vocab,
    clip_grad_global_norm,
    detach_hidden,
    get_batch,
    gru_cell_backward,
    lstm_cell_params,
    train_step,
)

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}
GATES = ("z", "r", "g")
WEIGHT_KEYS = ("W_xz", "W_hz", "W_xg", "W_hg", "W_xr", "W_hr")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rejected(check, *args, **kwargs) -> bool:
    """True when ``check(*args)`` raises AssertionError (what a known-wrong variant must do)."""
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


# =================================================================================================
# known-wrong variants (each must be rejected by the checks below)


class SwappedUpdateGRUCell(GRUCell):
    """Wrong: h' = (1 - z) * h + z * g (z and 1 - z swapped)."""

    def forward(self, x, h=None):
        h = x.new_zeros(x.size(0), self.hidden_size) if h is None else h
        z = torch.sigmoid(x @ self.W_xz + h @ self.W_hz + self.b_z)
        r = torch.sigmoid(x @ self.W_xr + h @ self.W_hr + self.b_r)
        g = torch.tanh(x @ self.W_xg + (r * h) @ self.W_hg + self.b_g)
        return (1 - z) * h + z * g


class TorchStyleResetGRUCell(GRUCell):
    """Wrong for the handout: PyTorch's placement of the reset gate, r * (h W_hg), after the matmul.
    Indistinguishable from the handout's cell when r = 1."""

    def forward(self, x, h=None):
        h = x.new_zeros(x.size(0), self.hidden_size) if h is None else h
        z = torch.sigmoid(x @ self.W_xz + h @ self.W_hz + self.b_z)
        r = torch.sigmoid(x @ self.W_xr + h @ self.W_hr + self.b_r)
        g = torch.tanh(x @ self.W_xg + r * (h @ self.W_hg) + self.b_g)
        return z * h + (1 - z) * g


def backward_swapped_z(x, h_prev, z, r, g, W_hg, dh):
    """Wrong: differentiates h' = (1 - z) h + z g (z and 1 - z swapped)."""
    dz = dh * (g - h_prev) * z * (1 - z)
    dg = dh * z * (1 - g * g)
    dr = (dg @ W_hg.T) * h_prev * r * (1 - r)
    return {"W_xz": x.T @ dz, "W_hz": h_prev.T @ dz, "W_xg": x.T @ dg, "W_hg": (r * h_prev).T @ dg,
            "W_xr": x.T @ dr, "W_hr": h_prev.T @ dr}


def backward_no_sigmoid_derivative(x, h_prev, z, r, g, W_hg, dh):
    """Wrong: forgets sigma'(a) = s (1 - s) for both gates."""
    dz = dh * (h_prev - g)
    dg = dh * (1 - z) * (1 - g * g)
    dr = (dg @ W_hg.T) * h_prev
    return {"W_xz": x.T @ dz, "W_hz": h_prev.T @ dz, "W_xg": x.T @ dg, "W_hg": (r * h_prev).T @ dg,
            "W_xr": x.T @ dr, "W_hr": h_prev.T @ dr}


def backward_no_W_hg_in_dr(x, h_prev, z, r, g, W_hg, dh):
    """Wrong: dr without the back-propagation through W_hg (dg used directly)."""
    dz = dh * (h_prev - g) * z * (1 - z)
    dg = dh * (1 - z) * (1 - g * g)
    dr = dg * h_prev * r * (1 - r)
    return {"W_xz": x.T @ dz, "W_hz": h_prev.T @ dz, "W_xg": x.T @ dg, "W_hg": (r * h_prev).T @ dg,
            "W_xr": x.T @ dr, "W_hr": h_prev.T @ dr}


def backward_W_hg_not_transposed(x, h_prev, z, r, g, W_hg, dh):
    """Wrong: dg @ W_hg instead of dg @ W_hg^T in dr (same shape, as W_hg is square)."""
    dz = dh * (h_prev - g) * z * (1 - z)
    dg = dh * (1 - z) * (1 - g * g)
    dr = (dg @ W_hg) * h_prev * r * (1 - r)
    return {"W_xz": x.T @ dz, "W_hz": h_prev.T @ dz, "W_xg": x.T @ dg, "W_hg": (r * h_prev).T @ dg,
            "W_xr": x.T @ dr, "W_hr": h_prev.T @ dr}


def lstm_params_two_biases(input_size, hidden_size):
    """Wrong for the handout: PyTorch's count, two bias vectors per gate."""
    return 4 * (hidden_size * input_size + hidden_size * hidden_size + 2 * hidden_size)


def lstm_params_three_gates(input_size, hidden_size):
    """Wrong: a GRU-sized count (three blocks)."""
    return 3 * (hidden_size * input_size + hidden_size * hidden_size + hidden_size)


def build_vocab_sorted(words):
    """Wrong: alphabetical ids."""
    return {w: i for i, w in enumerate(sorted(set(words)))}


def build_vocab_by_frequency(words):
    """Wrong: most frequent first."""
    return {w: i for i, (w, _) in enumerate(Counter(words).most_common())}


def batchify_trim_front(ids, batch_size):
    """Wrong: drops the first N % batch_size ids instead of the last."""
    L = ids.numel() // batch_size
    return ids[ids.numel() - batch_size * L:].reshape(batch_size, L)


def batchify_column_major(ids, batch_size):
    """Wrong: consecutive ids in consecutive rows (streams interleaved)."""
    L = ids.numel() // batch_size
    return ids[: batch_size * L].reshape(L, batch_size).T


def get_batch_unshifted(data, i, bptt):
    """Wrong: targets are the inputs (no shift)."""
    T = min(bptt, data.size(1) - 1 - i)
    return data[:, i : i + T], data[:, i : i + T]


def get_batch_full_last(data, i, bptt):
    """Wrong: the last batch's inputs run to the end of the stream (one more than the targets)."""
    return data[:, i : i + bptt], data[:, i + 1 : i + 1 + bptt]


class DefaultInitWordLM(WordLM):
    """Wrong: keeps PyTorch's default initialisation (embedding N(0, 1), ...)."""

    def __init__(self, rnn_type, vocab_size, embedding_size=200, hidden_size=200, num_layers=2, dropout=0.0,
                 init_range=0.1):
        super().__init__(rnn_type, vocab_size, embedding_size, hidden_size, num_layers, dropout, init_range)
        self.embedding.reset_parameters()
        self.rnn.reset_parameters()
        self.decoder.reset_parameters()


class ForgetfulWordLM(WordLM):
    """Wrong: ignores the hidden state passed in (starts every batch from zeros)."""

    def forward(self, inputs, hidden=None):
        return super().forward(inputs, None)


class NoDecoderBiasWordLM(WordLM):
    """Wrong: a decoder without a bias (V parameters short)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder = nn.Linear(self.hidden_size, self.decoder.out_features, bias=False)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)


def detach_nothing(hidden):
    """Wrong: returns the hidden state as it is."""
    return hidden


def detach_first_only(hidden):
    """Wrong: an LSTM's (h, c): only h detached."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)([hidden[0].detach(), *hidden[1:]])


def clip_per_parameter(parameters, max_norm):
    """Wrong: clips each gradient to norm max_norm on its own."""
    norms = []
    for p in parameters:
        if p.grad is not None:
            norm = p.grad.norm()
            norms.append(norm)
            if norm > max_norm:
                p.grad.mul_(max_norm / (norm + 1e-6))
    return torch.linalg.vector_norm(torch.stack(norms))


def clip_always(parameters, max_norm):
    """Wrong: rescales to norm max_norm even when the norm is below it."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    for g in grads:
        g.mul_(max_norm / (total + 1e-6))
    return total


def train_step_no_detach(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: never cuts the graph (the second backward runs into the first step's freed graph)."""
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), hidden


def train_step_no_detach_retain(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: never cuts the graph and keeps it alive: the graph grows with every step."""
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward(retain_graph=True)
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), hidden


def train_step_no_detach_manual_sgd(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: never cuts the graph, keeps it alive and updates through ``.data`` (which autograd does
    not see): no error, but the graph, and the time of a step, grow with every step."""
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward(retain_graph=True)
    clip_grad_global_norm(model.parameters(), max_norm)
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.data -= group["lr"] * p.grad
    return loss.detach(), hidden


def train_step_no_clip(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: no gradient clipping."""
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach(), detach_hidden(hidden)


def train_step_summed_loss(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: the summed cross-entropy over the B*T tokens (not the mean)."""
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
    optimizer.zero_grad()
    loss.backward()
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), detach_hidden(hidden)


def train_step_no_zero_grad(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: gradients accumulate from step to step."""
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    loss.backward()
    clip_grad_global_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), detach_hidden(hidden)


def train_step_clip_after_step(model, optimizer, inputs, targets, hidden, max_norm=5.0):
    """Wrong: clips after the optimizer step (the update is not clipped)."""
    hidden = detach_hidden(hidden)
    logits, hidden = model(inputs, hidden)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    clip_grad_global_norm(model.parameters(), max_norm)
    return loss.detach(), detach_hidden(hidden)


# =================================================================================================
# Q3: parameters of an LSTM cell with one bias per gate


def check_lstm_cell_params(fn) -> None:
    """``fn(D, H)`` equals ``nn.LSTMCell(D, H)``'s parameter count minus its second bias (4 H)."""
    for D, H in [(200, 200), (1, 1), (3, 5), (650, 650), (10, 7)]:
        torch_count = sum(p.numel() for p in nn.LSTMCell(D, H).parameters())
        expected = torch_count - 4 * H
        got = fn(D, H)
        assert got == expected, f"lstm_cell_params({D}, {H}): expected {expected}, got {got}"


def test_lstm_cell_params_matches_nn_lstmcell_with_one_bias_per_gate():
    check_lstm_cell_params(lstm_cell_params)
    assert lstm_cell_params(200, 200) == 320_800


@pytest.mark.parametrize("wrong", [lstm_params_two_biases, lstm_params_three_gates])
def test_lstm_cell_params_check_rejects_wrong_counts(wrong):
    assert rejected(check_lstm_cell_params, wrong)


# =================================================================================================
# GRUCell: the handout's equations


def set_gru_weights(cell: nn.Module, g: torch.Generator, scale: float = 0.5) -> None:
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def numpy_gru(x, h, W: dict) -> np.ndarray:
    """The handout's equations in float64 NumPy (row vectors)."""
    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    z = sigmoid(x @ W["W_xz"] + h @ W["W_hz"] + W["b_z"])
    r = sigmoid(x @ W["W_xr"] + h @ W["W_hr"] + W["b_r"])
    g = np.tanh(x @ W["W_xg"] + (r * h) @ W["W_hg"] + W["b_g"])
    return z * h + (1 - z) * g


def check_gru_cell_structure(cls) -> None:
    """Parameter names and shapes (row-vector convention) and count 3 (D H + H H + H)."""
    D, H = 3, 5
    cell = cls(D, H)
    shapes = {name: tuple(p.shape) for name, p in cell.named_parameters()}
    expected = {**{f"W_x{k}": (D, H) for k in GATES}, **{f"W_h{k}": (H, H) for k in GATES},
                **{f"b_{k}": (H,) for k in GATES}}
    assert shapes == expected, f"parameters: expected {expected}, got {shapes}"
    assert sum(p.numel() for p in cell.parameters()) == 3 * (D * H + H * H + H)


def check_gru_cell_vs_torch_with_r_one(cls) -> None:
    """With the reset gate forced to 1 (W_xr = W_hr = 0, b_r = 40, and PyTorch's r rows likewise),
    the cell equals ``nn.GRUCell`` with the z and candidate weights mapped (float32)."""
    for seed, (B, D, H) in enumerate([(4, 3, 5), (1, 7, 7), (6, 16, 8)]):
        g = gen(seed)
        cell = cls(D, H)
        set_gru_weights(cell, g)
        ref = nn.GRUCell(D, H)
        with torch.no_grad():
            cell.W_xr.zero_()
            cell.W_hr.zero_()
            cell.b_r.fill_(40.0)
            # PyTorch's rows: [r; z; n], column-vector weights (out, in); n = tanh(W_in x + b_in + r (W_hn h + b_hn))
            ref.weight_ih.copy_(torch.cat([torch.zeros(H, D), cell.W_xz.T, cell.W_xg.T]))
            ref.weight_hh.copy_(torch.cat([torch.zeros(H, H), cell.W_hz.T, cell.W_hg.T]))
            ref.bias_ih.copy_(torch.cat([torch.full((H,), 40.0), cell.b_z, cell.b_g]))
            ref.bias_hh.zero_()
            x = torch.randn(B, D, generator=g)
            h = torch.randn(B, H, generator=g)
            out = cell(x, h)
            assert out.shape == (B, H), f"expected shape {(B, H)}, got {tuple(out.shape)}"
            torch.testing.assert_close(out, ref(x, h), **TOL[torch.float32])
            torch.testing.assert_close(cell(x), ref(x), **TOL[torch.float32])  # h=None: zeros


def check_gru_cell_general(cls) -> None:
    """Random weights (the reset gate active), float64, against NumPy's handout equations."""
    for seed, (B, D, H) in enumerate([(4, 3, 5), (2, 6, 6), (5, 8, 4)]):
        g = gen(100 + seed)
        cell = cls(D, H).double()
        set_gru_weights(cell, g, scale=0.8)
        x = torch.randn(B, D, generator=g, dtype=torch.float64)
        h = torch.randn(B, H, generator=g, dtype=torch.float64)
        W = {name: p.detach().numpy() for name, p in cell.named_parameters()}
        with torch.no_grad():
            out = cell(x, h)
            out0 = cell(x)
        torch.testing.assert_close(out, torch.from_numpy(numpy_gru(x.numpy(), h.numpy(), W)), **TOL[torch.float64])
        torch.testing.assert_close(out0, torch.from_numpy(numpy_gru(x.numpy(), np.zeros((B, H)), W)),
                                   **TOL[torch.float64])


def test_gru_cell_structure_and_init():
    check_gru_cell_structure(GRUCell)
    cell = GRUCell(10, 16)
    bound = 1 / math.sqrt(16)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.5 * bound, f"{name}: not U(-1/sqrt(H), 1/sqrt(H))"


def test_gru_cell_matches_nn_grucell_when_the_reset_gate_is_one():
    check_gru_cell_vs_torch_with_r_one(GRUCell)


def test_gru_cell_matches_the_handout_equations_in_float64():
    check_gru_cell_general(GRUCell)


def test_gru_cell_checks_reject_wrong_cells():
    assert rejected(check_gru_cell_vs_torch_with_r_one, SwappedUpdateGRUCell)
    assert rejected(check_gru_cell_general, SwappedUpdateGRUCell)
    # PyTorch's reset-gate placement agrees when r = 1: only the general check tells it apart.
    check_gru_cell_vs_torch_with_r_one(TorchStyleResetGRUCell)
    assert rejected(check_gru_cell_general, TorchStyleResetGRUCell)


def test_gru_cell_backpropagates_into_every_weight():
    cell = GRUCell(3, 4)
    cell(torch.randn(2, 3), torch.randn(2, 4)).sum().backward()
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# =================================================================================================
# gru_cell_backward (the handout's question 4)


def gru_problem(seed: int, B: int = 3, D: int = 4, H: int = 5):
    """Inputs, weights (float64, leaves requiring grad), the forward's gates and dL/dh'."""
    g = gen(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    h_prev = torch.randn(B, H, generator=g, dtype=torch.float64)
    W = {}
    for k in GATES:
        W[f"W_x{k}"] = (torch.randn(D, H, generator=g, dtype=torch.float64) * 0.7).requires_grad_()
        W[f"W_h{k}"] = (torch.randn(H, H, generator=g, dtype=torch.float64) * 0.7).requires_grad_()
        W[f"b_{k}"] = (torch.randn(H, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    dh = torch.randn(B, H, generator=g, dtype=torch.float64)
    return x, h_prev, W, dh


def gru_forward(x, h_prev, W):
    z = torch.sigmoid(x @ W["W_xz"] + h_prev @ W["W_hz"] + W["b_z"])
    r = torch.sigmoid(x @ W["W_xr"] + h_prev @ W["W_hr"] + W["b_r"])
    g = torch.tanh(x @ W["W_xg"] + (r * h_prev) @ W["W_hg"] + W["b_g"])
    return z, r, g, z * h_prev + (1 - z) * g


def check_gru_backward_vs_autograd(fn) -> None:
    """Each of the six gradients equals autograd's for L = sum(h' * dh) (float64, x and h_prev constant)."""
    for seed, (B, D, H) in enumerate([(3, 4, 5), (1, 2, 2), (6, 3, 7)]):
        x, h_prev, W, dh = gru_problem(seed, B, D, H)
        z, r, g, h = gru_forward(x, h_prev, W)
        grads = torch.autograd.grad((h * dh).sum(), [W[k] for k in WEIGHT_KEYS])
        got = fn(x, h_prev, z.detach(), r.detach(), g.detach(), W["W_hg"].detach(), dh)
        assert set(got) == set(WEIGHT_KEYS), f"keys: expected {sorted(WEIGHT_KEYS)}, got {sorted(got)}"
        for key, expected in zip(WEIGHT_KEYS, grads, strict=True):
            assert tuple(got[key].shape) == tuple(W[key].shape), f"{key}: shape {tuple(got[key].shape)}"
            torch.testing.assert_close(got[key], expected, **TOL[torch.float64],
                                       msg=lambda m, key=key: f"dL/d{key}: {m}")


def make_gru_function(backward_fn):
    """A GRU step as an autograd.Function whose backward for the six weights is ``backward_fn``."""

    class GRUStep(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, h_prev, W_xz, W_hz, W_xg, W_hg, W_xr, W_hr, b_z, b_r, b_g):
            W = {"W_xz": W_xz, "W_hz": W_hz, "W_xg": W_xg, "W_hg": W_hg, "W_xr": W_xr, "W_hr": W_hr,
                 "b_z": b_z, "b_r": b_r, "b_g": b_g}
            z, r, g, h = gru_forward(x, h_prev, W)
            ctx.save_for_backward(x, h_prev, z, r, g, W_hg)
            return h

        @staticmethod
        def backward(ctx, dh):
            x, h_prev, z, r, g, W_hg = ctx.saved_tensors
            grads = backward_fn(x, h_prev, z, r, g, W_hg, dh)
            return (None, None, *(grads[k] for k in WEIGHT_KEYS), None, None, None)

    return GRUStep.apply


def check_gru_backward_gradcheck(fn) -> None:
    """``torch.autograd.gradcheck`` (finite differences, float64) through a GRU step whose backward is ``fn``."""
    for seed in range(2):
        x, h_prev, W, _ = gru_problem(10 + seed, B=2, D=3, H=3)
        b = {k: W[k].detach() for k in ("b_z", "b_r", "b_g")}
        ok = torch.autograd.gradcheck(
            make_gru_function(fn), (x, h_prev, *(W[k] for k in WEIGHT_KEYS), b["b_z"], b["b_r"], b["b_g"]),
            eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        assert ok, f"gradcheck failed (seed {seed})"


def test_gru_cell_backward_matches_autograd():
    check_gru_backward_vs_autograd(gru_cell_backward)


def test_gru_cell_backward_passes_gradcheck():
    check_gru_backward_gradcheck(gru_cell_backward)


def test_gru_cell_backward_agrees_with_the_gru_cell_module():
    """The reference backward, fed the gates of the reference GRUCell, equals the module's autograd."""
    g = gen(7)
    cell = GRUCell(4, 6).double()
    set_gru_weights(cell, g)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    h_prev = torch.randn(3, 6, generator=g, dtype=torch.float64)
    dh = torch.randn(3, 6, generator=g, dtype=torch.float64)
    (cell(x, h_prev) * dh).sum().backward()
    with torch.no_grad():
        z, r, gg, _ = gru_forward(x, h_prev, dict(cell.named_parameters()))
        got = gru_cell_backward(x, h_prev, z, r, gg, cell.W_hg, dh)
    for key in WEIGHT_KEYS:
        torch.testing.assert_close(got[key], getattr(cell, key).grad, **TOL[torch.float64])


@pytest.mark.parametrize("wrong", [backward_swapped_z, backward_no_sigmoid_derivative, backward_no_W_hg_in_dr,
                                   backward_W_hg_not_transposed])
def test_gru_backward_checks_reject_wrong_gradients(wrong):
    assert rejected(check_gru_backward_vs_autograd, wrong)
    assert rejected(check_gru_backward_gradcheck, wrong)


# =================================================================================================
# data: build_vocab, batchify, get_batch


def check_build_vocab(fn) -> None:
    """Ids 0, 1, 2, ... in order of first occurrence (dict.fromkeys keeps that order)."""
    for words in (["b", "a", "b", "<eos>", "c", "a", "<eos>"], "the cat sat on the mat <eos> a cat".split(),
                  "z y x y x x <eos>".split(),
                  ["only"], [str(i % 13) for i in range(100, 0, -3)]):
        expected = {w: i for i, w in enumerate(dict.fromkeys(words))}
        got = fn(words)
        assert dict(got) == expected, f"build_vocab({words[:8]}...): expected {expected}, got {dict(got)}"
    assert len(fn([])) == 0
    assert fn(iter(["x", "y", "x"])) == {"x": 0, "y": 1}, "build_vocab must accept any iterable of words"


def test_build_vocab_first_occurrence_order():
    check_build_vocab(build_vocab)


@pytest.mark.parametrize("wrong", [build_vocab_sorted, build_vocab_by_frequency])
def test_build_vocab_check_rejects_other_orders(wrong):
    assert rejected(check_build_vocab, wrong)


def check_batchify(fn) -> None:
    """(B, N // B): row b is ids[b L : (b + 1) L] (lists, independently), the last N % B ids dropped."""
    for N, B in [(20, 4), (23, 4), (7, 7), (101, 20), (45, 1), (59, 6)]:
        ids = torch.randperm(N, generator=gen(N))
        out = fn(ids, B)
        L = N // B
        assert tuple(out.shape) == (B, L), f"batchify(N={N}, B={B}): expected shape {(B, L)}, got {tuple(out.shape)}"
        assert out.dtype == ids.dtype
        flat = ids.tolist()
        assert out.tolist() == [flat[b * L : (b + 1) * L] for b in range(B)], f"batchify(N={N}, B={B})"


def test_batchify_contiguous_streams_trimmed_at_the_end():
    check_batchify(batchify)
    assert batchify(torch.arange(10), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize("wrong", [batchify_trim_front, batchify_column_major])
def test_batchify_check_rejects_wrong_layouts(wrong):
    assert rejected(check_batchify, wrong)


def check_get_batch(fn) -> None:
    """Inputs = columns i .. i+T-1, targets = i+1 .. i+T with T = min(bptt, L - 1 - i); one pass
    covers every target column 1 .. L-1 exactly once."""
    for B, L, bptt in [(3, 11, 4), (2, 9, 4), (4, 21, 20), (1, 5, 1), (5, 50, 7)]:
        data = torch.arange(B * L).view(B, L)
        rows = data.tolist()
        covered = []
        for i in range(0, L - 1, bptt):
            inputs, targets = fn(data, i, bptt)
            T = min(bptt, L - 1 - i)
            assert tuple(inputs.shape) == tuple(targets.shape) == (B, T), (
                f"get_batch(data {(B, L)}, i={i}, bptt={bptt}): expected (B, T) = {(B, T)}, "
                f"got {tuple(inputs.shape)} and {tuple(targets.shape)}")
            assert inputs.tolist() == [r[i : i + T] for r in rows], f"inputs at i={i}"
            assert targets.tolist() == [r[i + 1 : i + 1 + T] for r in rows], f"targets at i={i}"
            covered += list(range(i + 1, i + 1 + T))
        assert covered == list(range(1, L)), f"targets cover columns {covered}"


def test_get_batch_shift_and_short_last_batch():
    check_get_batch(get_batch)
    x, y = get_batch(torch.arange(10).view(1, 10), 8, 4)
    assert x.tolist() == [[8]] and y.tolist() == [[9]]


@pytest.mark.parametrize("wrong", [get_batch_unshifted, get_batch_full_last])
def test_get_batch_check_rejects_wrong_batches(wrong):
    assert rejected(check_get_batch, wrong)


# =================================================================================================
# WordLM


def word_lm_param_count(rnn_type, V, E, H, layers):
    gates = {"lstm": 4, "gru": 3}[rnn_type]
    rnn = sum(gates * (H * (E if k == 0 else H) + H * H + 2 * H) for k in range(layers))  # PyTorch: 2 biases
    return V * E + rnn + H * V + V


def check_word_lm_param_count(cls) -> None:
    for rnn_type in ("lstm", "gru"):
        for V, E, H, layers in [(10_000, 200, 200, 2), (50, 8, 12, 1), (30, 6, 4, 3)]:
            model = cls(rnn_type, V, E, H, layers, 0.0, 0.1)
            got = sum(p.numel() for p in model.parameters())
            expected = word_lm_param_count(rnn_type, V, E, H, layers)
            assert got == expected, f"{rnn_type} V={V} E={E} H={H} x{layers}: expected {expected}, got {got}"


def check_word_lm_init(cls) -> None:
    """Every parameter U(-init_range, init_range): within the range, filling it, mean near 0."""
    for rnn_type, init_range in (("lstm", 0.1), ("gru", 0.05)):
        torch.manual_seed(0)
        model = cls(rnn_type, 500, 32, 32, 2, 0.0, init_range)
        for name, p in model.named_parameters():
            p = p.detach()
            assert p.abs().max() <= init_range, f"{name}: |value| up to {p.abs().max():.3g} > {init_range}"
            if p.numel() >= 100:
                assert p.abs().max() > 0.9 * init_range, f"{name}: not U(-{init_range}, {init_range})"
                assert abs(p.mean()) < 0.1 * init_range, f"{name}: mean {p.mean():.3g}"
                # uniform: the variance is r^2 / 3
                assert abs(p.var() / (init_range ** 2 / 3) - 1) < 0.2, f"{name}: variance {p.var():.3g}"


def manual_word_lm(model, inputs, hidden):
    """An explicit float64 loop over time and layers with the model's weights (PyTorch's gate layout)."""
    rnn = model.rnn
    H, layers = rnn.hidden_size, rnn.num_layers
    is_lstm = isinstance(rnn, nn.LSTM)
    w = {k: v.detach().double() for k, v in rnn.named_parameters()}
    if is_lstm:
        h = [hidden[0][k].double() for k in range(layers)]
        c = [hidden[1][k].double() for k in range(layers)]
    else:
        h = [hidden[k].double() for k in range(layers)]
    emb = model.embedding.weight.detach().double()
    outputs = []
    for t in range(inputs.size(1)):
        x = emb[inputs[:, t]]
        for k in range(layers):
            gi = x @ w[f"weight_ih_l{k}"].T + w[f"bias_ih_l{k}"]
            gh = h[k] @ w[f"weight_hh_l{k}"].T + w[f"bias_hh_l{k}"]
            if is_lstm:
                i_, f_, g_, o_ = (gi + gh).split(H, dim=-1)
                c[k] = torch.sigmoid(f_) * c[k] + torch.sigmoid(i_) * torch.tanh(g_)
                h[k] = torch.sigmoid(o_) * torch.tanh(c[k])
            else:
                r = torch.sigmoid(gi[:, :H] + gh[:, :H])
                z = torch.sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
                n = torch.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
                h[k] = (1 - z) * n + z * h[k]
            x = h[k]
        outputs.append(x @ model.decoder.weight.detach().double().T + model.decoder.bias.detach().double())
    logits = torch.stack(outputs, dim=1)
    return logits, ((torch.stack(h), torch.stack(c)) if is_lstm else torch.stack(h))


def check_word_lm_forward(cls) -> None:
    """Shapes, init_hidden, and the forward (eval) against an explicit loop, with a nonzero starting
    hidden state; the hidden state carried over two halves gives the same logits as one pass."""
    for rnn_type in ("lstm", "gru"):
        torch.manual_seed(1)
        B, T, V, E, H, layers = 3, 8, 40, 6, 5, 2
        model = cls(rnn_type, V, E, H, layers, 0.3, 0.3).eval()
        hidden0 = model.init_hidden(B)
        if rnn_type == "lstm":
            assert isinstance(hidden0, tuple) and len(hidden0) == 2, "an LSTM's hidden state is (h, c)"
            assert all(tuple(h.shape) == (layers, B, H) and not h.any() for h in hidden0)
            start = (torch.randn(layers, B, H) * 0.5, torch.randn(layers, B, H) * 0.5)
        else:
            assert isinstance(hidden0, torch.Tensor) and tuple(hidden0.shape) == (layers, B, H) and not hidden0.any()
            start = torch.randn(layers, B, H) * 0.5
        inputs = torch.randint(0, V, (B, T), generator=gen(3))
        with torch.no_grad():
            logits, hidden = model(inputs, start)
            assert tuple(logits.shape) == (B, T, V), f"logits: expected {(B, T, V)}, got {tuple(logits.shape)}"
            expected_logits, expected_hidden = manual_word_lm(model, inputs, start)
            torch.testing.assert_close(logits.double(), expected_logits, atol=1e-5, rtol=1e-5)
            for got, exp in zip(detach_hidden_tuple(hidden), detach_hidden_tuple(expected_hidden), strict=True):
                torch.testing.assert_close(got.double(), exp, atol=1e-5, rtol=1e-5)
            # carried across halves
            first, h1 = model(inputs[:, : T // 2], hidden0)
            second, _ = model(inputs[:, T // 2 :], h1)
            whole, _ = model(inputs, hidden0)
            torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=1e-5,
                                       msg=lambda m, rnn_type=rnn_type: f"{rnn_type}: the hidden state is not carried: {m}")


def detach_hidden_tuple(hidden):
    return tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)


def test_word_lm_parameter_count():
    check_word_lm_param_count(WordLM)
    assert sum(p.numel() for p in WordLM("lstm", 10_000).parameters()) == 4_653_200
    assert sum(p.numel() for p in WordLM("gru", 10_000).parameters()) == 4_492_400


def test_word_lm_init_range():
    check_word_lm_init(WordLM)


def test_word_lm_forward_matches_an_explicit_loop_and_carries_the_hidden_state():
    check_word_lm_forward(WordLM)


def test_word_lm_attributes_and_dropout():
    model = WordLM("gru", 30, 8, 6, 2, 0.5, 0.1)
    assert isinstance(model.embedding, nn.Embedding) and isinstance(model.rnn, nn.GRU)
    assert isinstance(model.decoder, nn.Linear) and model.rnn.batch_first
    assert model.dropout.p == 0.5 and model.rnn.dropout == 0.5
    assert isinstance(WordLM("lstm", 30, 8, 6, 1, 0.5, 0.1).rnn, nn.LSTM)
    inputs = torch.randint(0, 30, (2, 5), generator=gen(0))
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = model.train()(inputs)[0], model(inputs)[0]
        assert not torch.allclose(a, b), "dropout is not active in training mode"
        torch.testing.assert_close(model.eval()(inputs)[0], model(inputs)[0])
        # one layer: no dropout between layers, but still on the embedding output and before the decoder
        single = WordLM("lstm", 30, 8, 6, 1, 0.5, 0.1).train()
        assert not torch.allclose(single(inputs)[0], single(inputs)[0])


def test_word_lm_checks_reject_wrong_models():
    assert rejected(check_word_lm_init, DefaultInitWordLM)
    assert rejected(check_word_lm_forward, ForgetfulWordLM)
    assert rejected(check_word_lm_param_count, NoDecoderBiasWordLM)


# =================================================================================================
# detach_hidden


def check_detach_hidden(fn) -> None:
    """A tensor, a tuple (LSTM) and a list: same values and container type, cut from the graph."""
    w = torch.randn(2, 3, 4, requires_grad=True)
    h, c = w * 2, w.exp()
    for hidden in (h, (h, c), [h, c]):
        out = fn(hidden)
        if isinstance(hidden, torch.Tensor):
            assert isinstance(out, torch.Tensor)
            pairs = [(out, hidden)]
        else:
            assert type(out) is type(hidden), f"expected a {type(hidden).__name__}, got {type(out).__name__}"
            assert len(out) == len(hidden)
            pairs = list(zip(out, hidden, strict=True))
        for o, i in pairs:
            assert not o.requires_grad and o.grad_fn is None, "still attached to the graph"
            assert torch.equal(o, i)


def test_detach_hidden_tensor_and_tuple():
    check_detach_hidden(detach_hidden)


@pytest.mark.parametrize("wrong", [detach_nothing, detach_first_only])
def test_detach_hidden_check_rejects_wrong_versions(wrong):
    assert rejected(check_detach_hidden, wrong)


# =================================================================================================
# clip_grad_global_norm


def params_with_grads(seed: int, grad_scale: float, with_none: bool = False):
    g = gen(seed)
    shapes = [(4, 3), (7,), (2, 2, 5), (1,)]
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * grad_scale
    if with_none:
        params.append(nn.Parameter(torch.randn(3, generator=g)))  # no gradient: skipped
    return params


def check_clip_grad_global_norm(fn) -> None:
    """Gradients and the returned norm equal ``torch.nn.utils.clip_grad_norm_``'s, with the global
    norm above (clipped) and below (unchanged) ``max_norm``."""
    for seed, grad_scale, max_norm, with_none in [(0, 3.0, 5.0, False), (1, 0.1, 5.0, False), (2, 1.0, 0.25, True),
                                                  (3, 10.0, 1.0, True)]:
        ours = params_with_grads(seed, grad_scale, with_none)
        theirs = params_with_grads(seed, grad_scale, with_none)
        expected_norm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
        got_norm = fn(iter(ours), max_norm)  # a generator, like model.parameters()
        torch.testing.assert_close(torch.as_tensor(got_norm).float(), expected_norm, atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f"returned total norm: {m}")
        for a, b in zip(ours, theirs, strict=True):
            if b.grad is None:
                assert a.grad is None
            else:
                torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours if p.grad is not None]))
        assert after <= max_norm * (1 + 1e-5) or expected_norm <= max_norm


def test_clip_grad_global_norm_matches_torch():
    check_clip_grad_global_norm(clip_grad_global_norm)


@pytest.mark.parametrize("wrong", [clip_per_parameter, clip_always])
def test_clip_check_rejects_wrong_clipping(wrong):
    assert rejected(check_clip_grad_global_norm, wrong)


# =================================================================================================
# train_step


def graph_size(tensor: torch.Tensor) -> int:
    """Autograd nodes reachable from ``tensor.grad_fn``."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(fn for fn, _ in node.next_functions)
    return len(seen)


def tiny_problem(rnn_type: str, seed: int = 0, dropout: float = 0.0):
    torch.manual_seed(seed)
    V, B, T = 25, 3, 6
    model = WordLM(rnn_type, V, 8, 7, 2, dropout, 0.3)
    stream = torch.randint(0, V, (B, 6 * T + 1), generator=gen(seed))
    batches = [get_batch(stream, i, T) for i in range(0, stream.size(1) - 1, T)]
    return model, batches


def check_train_step_truncates(fn) -> None:
    """Over 5 steps the graph of the forward does not grow (the hidden state is cut at every step),
    and the hidden state returned is detached."""
    for rnn_type in ("lstm", "gru"):
        model, batches = tiny_problem(rnn_type)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        seen = []
        model.register_forward_hook(lambda module, args, output, seen=seen: seen.append(output[0]))
        hidden = model.init_hidden(3)
        sizes, attached = [], []
        for step, (inputs, targets) in enumerate(batches[:5]):
            try:
                loss, hidden = fn(model, optimizer, inputs, targets, hidden, 5.0)
            except RuntimeError as err:  # backward through a freed graph
                raise AssertionError(f"{rnn_type} step {step}: {err}") from err
            sizes.append(graph_size(seen[-1]))
            attached.append(torch.as_tensor(loss).requires_grad or any(
                h.requires_grad or h.grad_fn is not None for h in detach_hidden_tuple(hidden)))
        assert len(set(sizes)) == 1, f"{rnn_type}: the graph grows from step to step: {sizes} nodes"
        assert not any(attached), f"{rnn_type}: the loss and hidden state returned must be detached"


def check_train_step_update(fn) -> None:
    """Three steps with the hidden state carried equal an independent loop on a deep copy (mean
    cross-entropy, torch's clip_grad_norm_, p -= lr * grad): losses, hidden states and parameters;
    ``max_norm`` small enough that clipping acts."""
    for rnn_type, max_norm in (("lstm", 0.05), ("gru", 0.05), ("lstm", 1e3)):
        model, batches = tiny_problem(rnn_type, seed=4)
        twin = copy.deepcopy(model)
        lr = 0.7
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        hidden = model.init_hidden(3)
        twin_hidden = twin.init_hidden(3)
        for step, (inputs, targets) in enumerate(batches[:3]):
            loss, hidden = fn(model, optimizer, inputs, targets, hidden, max_norm)
            # the independent step
            twin_hidden = tuple(h.detach() for h in twin_hidden) if rnn_type == "lstm" else twin_hidden.detach()
            logits, twin_hidden = twin(inputs, twin_hidden)
            V = logits.size(-1)
            nll = -torch.log_softmax(logits, -1).reshape(-1, V)[torch.arange(targets.numel()), targets.reshape(-1)]
            twin_loss = nll.mean()
            for p in twin.parameters():
                p.grad = None
            twin_loss.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm)
            with torch.no_grad():
                for p in twin.parameters():
                    p -= lr * p.grad
            where = f"{rnn_type}, max_norm {max_norm}, step {step}"
            torch.testing.assert_close(torch.as_tensor(loss).float(), twin_loss.detach(), atol=1e-5, rtol=1e-5,
                                       msg=lambda m, where=where: f"{where}: loss: {m}")
            for got, exp in zip(detach_hidden_tuple(hidden), detach_hidden_tuple(twin_hidden), strict=True):
                torch.testing.assert_close(got, exp.detach(), atol=1e-5, rtol=1e-5)
            for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
                torch.testing.assert_close(p.detach(), q.detach(), atol=1e-5, rtol=1e-5,
                                           msg=lambda m, where=where, name=name: f"{where}: {name}: {m}")


def test_train_step_truncates_the_graph():
    check_train_step_truncates(train_step)


def test_train_step_equals_an_independent_sgd_step():
    check_train_step_update(train_step)


def test_train_step_checks_reject_wrong_steps():
    assert rejected(check_train_step_truncates, train_step_no_detach)
    assert rejected(check_train_step_truncates, train_step_no_detach_retain)
    with pytest.raises(AssertionError, match="grows"):
        check_train_step_truncates(train_step_no_detach_manual_sgd)
    for wrong in (train_step_no_clip, train_step_summed_loss, train_step_no_zero_grad, train_step_clip_after_step):
        check_train_step_truncates(wrong)  # they cut the graph ...
        assert rejected(check_train_step_update, wrong), wrong.__name__  # ... but update wrongly


def test_train_step_with_dropout_trains():
    """With dropout the step still runs and lowers the loss on a batch it sees repeatedly."""
    model, batches = tiny_problem("gru", seed=2, dropout=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    inputs, targets = batches[0]
    losses = []
    for _ in range(30):
        loss, _ = train_step(model, optimizer, inputs, targets, model.init_hidden(3), 5.0)
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.5, losses
