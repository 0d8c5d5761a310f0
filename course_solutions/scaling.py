"""Reference solutions of ``scaling_laws`` (issue 17): instructor material.

Section 1 of the handout, made hands-on: the noisy quadratic model (NQM).

- Loss ``L(w) = a w^2 / 2``; a minibatch gradient of batch size ``B`` is ``a w + eps``, ``eps ~ N(0, sigma^2 / B)``
  (the mean of ``B`` independent ``N(0, sigma^2)`` noises). SGD: ``w <- w - lr (a w + eps)``.
- :func:`nqm_sgd` simulates it over many independent runs at once (one vectorised update per step);
  :func:`nqm_expected_loss` is the exact expected loss from the recursion
  ``E[w_{t+1}^2] = (1 - lr a)^2 E[w_t^2] + lr^2 sigma^2 / B``; :func:`nqm_loss_closed_form` sums that
  geometric series: with ``r = (1 - lr a)^2`` and ``q = lr^2 sigma^2 / B``,
  ``E[w_t^2] = r^t w0^2 + q (1 - r^t) / (1 - r)`` (``w0^2 + t q`` when ``r = 1``), whose limit for ``r < 1`` is
  the noise floor ``lr sigma^2 / (B a (2 - lr a))``.
- Every NQM function broadcasts its arguments (numbers or arrays) against each other.
  :func:`optimal_lr`, :func:`steps_to_target`, :func:`critical_batch_size` and :func:`batch_size_curves`
  also take a **diagonal** NQM: ``a``, ``sigma`` and ``w0`` as 1-D arrays over independent coordinates (the
  loss is the sum of the coordinates' losses, so its expectation is the scalar model's summed). A scalar
  ``a`` is the scalar model of the handout.

Why a diagonal default (:data:`NQM`): in the **scalar** model, noiseless gradient descent with ``lr = 1 / a``
(Newton's step on a quadratic) reaches the minimum in one step, so the curvature-dominated plateau of
Figure 1 is a single step and no optimiser can do better. With curvatures spread over a condition number
``kappa = a_max / a_min``, the stable learning rate is capped by the sharpest coordinate (``lr < 2 / a_max``)
while the flattest one needs ``~kappa`` steps: the plateau that higher-order (preconditioned) optimisers
lower (Zhang et al. 2019, "Which algorithmic choices matter at which batch sizes?", whose NQM this is;
noise variance proportional to curvature, as there). Both are supported; the tests use both.

Well-posed choices (stated because the handout's figure leaves them open):

- :func:`steps_to_target`: the first step ``t`` at which the **expected** loss is ``<= target``; with
  ``lr=None`` the learning rate is tuned for each batch size (:func:`optimal_lr`), as in Figure 1.
- :func:`optimal_lr`: the learning rate that **minimises the steps to reach the target** (ties, since
  steps are whole numbers, broken by the lower expected loss at that step). In the noise-dominated regime
  it grows linearly with ``B`` (the noise floor ``~ lr sigma^2 / (4 B)`` must stay under the target, so
  ``lr / B`` is what matters); in the curvature-dominated regime it saturates at the curvature limit
  (``1 / a`` for the scalar model, ``~2 / (a_max + a_min)`` for a diagonal one). The other natural choice,
  the lr minimising the loss after a fixed number of steps, grows only like ``log B`` (balancing
  ``exp(-2 lr a T)`` against ``lr sigma^2 / B``: ``+ ln 2 / (2 a T)`` per doubling of ``B``; with
  ``a = sigma = w0 = 1`` and ``T = 100``, 0.029 at ``B = 1``, 0.046 at ``B = 32``), so it does not show the
  linear scaling rule.
- :func:`critical_batch_size`: where the curve bends, the intersection of its two asymptotes:
  ``S_min`` (steps at ``B -> inf``: noiseless gradient descent with a tuned lr) and ``E_min / B``
  (``E_min = lim_{B -> 0} B * steps(B)``, the fewest training examples, reached in the continuous-time
  limit ``lr -> 0`` with ``lr / B`` tuned). ``B_crit = E_min / S_min``; there the curve is at about
  ``2 S_min`` (McCandlish et al. 2018's ``S = S_min (1 + B_noise / B)``).

Section 2.4, IsoFLOP (Hoffmann et al. 2022):

- :func:`flops_per_token`: ``6 N`` training FLOPs per token (forward ``2 N``: a multiply and an add per
  weight; backward ``4 N``: the gradients with respect to the inputs and to the weights), so ``C = 6 N D``.
- :func:`model_flops`: an analytic count of the real model (``course_solutions.nmt.DecoderOnlyTransformer``
  or a student's model of the same shape), read from its modules: every ``nn.Linear`` (``2 * in * out``
  per token forward) and every attention head's two ``T x T`` products (``4 T H`` per token forward),
  times 3 for training. :func:`decoder_flops_per_token` is the same count from the hyperparameters. The
  gap to ``6 N``: the embedding's ``V H`` parameters are a lookup (no FLOPs) but are counted by ``6 N``,
  the biases are additions that FLOP counters do not count, and attention's products have no parameters
  at all (``6 N`` misses ``12 T H`` per head per layer per token). ``tests/test_scaling.py`` checks both
  against ``torch.utils.flop_counter``.
- :func:`fit_isoflop_minimum`: a parabola in ``log10 N`` through one budget's (N, loss) points; its vertex
  is the optimal model size. :func:`fit_power_law`: ``N_opt = k C^alpha`` by least squares in log-log.
  :func:`predict_power_law`, :func:`compute_optimal_tokens` (``D_opt = C / (6 N_opt)``) and
  :func:`isoflop_analysis` (all of it, with the prediction at the handout's ``1e15`` FLOPs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["NQM", "nqm_sgd", "nqm_loss", "nqm_expected_loss", "nqm_loss_closed_form", "nqm_noise_floor",
           "initial_loss", "steps_to_target", "optimal_lr", "min_steps", "min_examples",
           "critical_batch_size", "batch_size_curves", "plot_batch_size_curves",
           "flops_per_token", "model_flops", "decoder_flops_per_token", "fit_isoflop_minimum",
           "fit_power_law", "predict_power_law", "compute_optimal_tokens", "isoflop_analysis",
           "HANDOUT_BUDGET"]

#: The handout's question 2.4.2: the compute budget to predict the optimal model size at.
HANDOUT_BUDGET = 1e15


# =========================================================================================== section 1: NQM
#: Default diagonal NQM, chosen so that both regimes of Figure 1 span two decades or more of
#: ``B = 1 .. 2^16``: ``d = 16`` coordinates with curvatures ``a_i`` log-spaced from 1 down to 0.01 (condition
#: number 100), gradient-noise variances ``sigma_i^2 = a_i`` (noise proportional to curvature, as in Zhang et
#: al. 2019), ``w0_i = a_i^(-1/2)`` (every coordinate starts at loss 1/2, so the flat ones matter: initial
#: loss 8), and a target of 0.1 % of the initial loss (0.008). It gives (``tests/test_scaling.py`` checks
#: these): ``S_min = 110`` steps at ``lr = 1.96`` (~ ``2 / (a_max + a_min) = 1.98``), ``E_min = 42,345``
#: examples at ``lr / B = 0.0074``, so ``B_crit = 385``; the tuned steps follow ``S_min + E_min / B``
#: within 4 % from ``B = 1`` (42,434 steps, ``lr = 0.0074``) to ``B = 65,536`` (112 steps, ``lr = 1.96``).
NQM: dict = {
    "a": np.logspace(0.0, -2.0, 16),
    "sigma": np.logspace(0.0, -1.0, 16),  # sqrt(a)
    "w0": np.logspace(0.0, 1.0, 16),  # a^(-1/2)
    "target_fraction": 1e-3,
}


def _tensor(x, dtype) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=float), dtype=dtype)


def nqm_sgd(a, sigma, batch_size, lr, steps: int, w0, generator: torch.Generator | None = None, *,
            runs: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Minibatch SGD on the scalar NQM, every run at once: the weights ``(steps + 1, *shape)``, row ``t``
    holding ``w_t`` of every run (row 0 is ``w0``).

    ``a``, ``sigma``, ``batch_size``, ``lr`` and ``w0`` broadcast together to ``shape`` (a tensor ``w0`` of
    shape ``(R,)`` is ``R`` independent runs); ``runs=R`` appends an axis of ``R`` runs of every setting.
    Each step is one vectorised update of all runs: ``w <- w - lr (a w + sigma / sqrt(B) z)``, ``z ~ N(0, 1)``,
    drawn from ``generator``: the mean of ``B`` independent ``N(0, sigma^2)`` noises is exactly
    ``N(0, sigma^2 / B)``, so no ``B`` samples are drawn. The losses are :func:`nqm_loss`\\ ``(a, w)``.
    """
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    a, sigma, B, lr, w0 = (_tensor(x, dtype) for x in (a, sigma, batch_size, lr, w0))
    if bool((B <= 0).any()) or bool((sigma < 0).any()):
        raise ValueError("batch_size must be > 0 and sigma >= 0")
    shape = torch.broadcast_shapes(a.shape, sigma.shape, B.shape, lr.shape, w0.shape)
    a, lr, w0 = (x.expand(shape) for x in (a, lr, w0))
    noise_std = (sigma / B.sqrt()).expand(shape)
    if runs is not None:
        a, lr, w0, noise_std = (x.unsqueeze(-1) for x in (a, lr, w0, noise_std))
        shape = (*shape, int(runs))
    weights = torch.empty((steps + 1, *shape), dtype=dtype)
    weights[0] = w0.expand(shape)
    noise = torch.randn((steps, *shape), generator=generator, dtype=dtype) * noise_std
    for t in range(steps):
        weights[t + 1] = weights[t] - lr * (a * weights[t] + noise[t])
    return weights


def nqm_loss(a, w):
    """``a w^2 / 2`` (elementwise)."""
    return 0.5 * a * w ** 2


def _arrays(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in xs))


def _out(x):
    return float(x) if np.ndim(x) == 0 else x


def nqm_expected_loss(a, sigma, batch_size, lr, steps: int, w0, *, trajectory: bool = False):
    """The exact expected loss ``E[L(w_steps)] = a E[w_steps^2] / 2`` from the recursion
    ``E[w_{t+1}^2] = (1 - lr a)^2 E[w_t^2] + lr^2 sigma^2 / B``, ``E[w_0^2] = w0^2``.

    Arguments broadcast (numpy); a float for scalar arguments. ``trajectory=True``: the expected losses of
    steps ``0..steps``, an array ``(steps + 1, *shape)``."""
    a, sigma, B, lr, w0 = _arrays(a, sigma, batch_size, lr, w0)
    contraction = (1.0 - lr * a) ** 2
    noise = lr ** 2 * sigma ** 2 / B
    m = w0 ** 2
    history = [m]
    for _ in range(int(steps)):
        m = contraction * m + noise
        history.append(m)
    if trajectory:
        return 0.5 * a * np.stack(history)
    return _out(0.5 * a * m)


def _log_contraction(lr_a):
    """``log (1 - lr a)^2``, precise when ``lr a`` is small; ``-inf`` at ``lr a = 1``."""
    lr_a = np.asarray(lr_a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * np.where(lr_a < 1.0, np.log1p(-np.minimum(lr_a, 1.0)), np.log(np.abs(lr_a - 1.0)))


def _power(log_rho, t):
    """``exp(t log_rho)`` with ``0 ** 0 = 1``."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(t == 0, 1.0, np.exp(t * log_rho))


def nqm_loss_closed_form(a, sigma, batch_size, lr, steps, w0):
    """The expected loss after ``steps`` steps (an int or an array of them), summing the recursion's
    geometric series: ``E[w_t^2] = r^t w0^2 + q (1 - r^t) / (1 - r)`` with ``r = (1 - lr a)^2`` and
    ``q = lr^2 sigma^2 / B`` (``w0^2 + t q`` when ``r = 1``). ``1 - r = lr a (2 - lr a)`` is computed as such."""
    a, sigma, B, lr, steps, w0 = _arrays(a, sigma, batch_size, lr, steps, w0)
    log_r = _log_contraction(lr * a)
    r_t = _power(log_r, steps)
    one_minus_r = lr * a * (2.0 - lr * a)
    q = lr ** 2 * sigma ** 2 / B
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        series = np.where(one_minus_r == 0, steps, -np.expm1(np.where(steps == 0, 0.0, steps * log_r)) / one_minus_r)
    series = np.where(steps == 0, 0.0, series)
    return _out(0.5 * a * (r_t * w0 ** 2 + q * series))


def nqm_noise_floor(a, sigma, batch_size, lr):
    """The expected loss SGD settles at, ``lim_t E[L(w_t)] = lr sigma^2 / (2 B (2 - lr a))`` (``inf`` when
    ``lr a >= 2``: unstable), independent of ``w0``."""
    a, sigma, B, lr = _arrays(a, sigma, batch_size, lr)
    with np.errstate(divide="ignore"):
        return _out(np.where(lr * a < 2.0, lr * sigma ** 2 / (2.0 * B * (2.0 - lr * a)), np.inf))


# ------------------------------------------------------------------ Figure 1: steps to a target vs batch size
def _diagonal(a, sigma, w0):
    """``a``, ``sigma``, ``w0`` as 1-D float arrays of one length (a diagonal NQM; a scalar ``a`` is d = 1)."""
    a, sigma, w0 = np.broadcast_arrays(np.atleast_1d(np.asarray(a, dtype=float)), np.asarray(sigma, dtype=float),
                                       np.asarray(w0, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"a, sigma and w0 must be numbers or 1-D arrays over coordinates, got shape {a.shape}")
    if not (a > 0).all() or (sigma < 0).any():
        raise ValueError("curvatures a must be > 0 and sigma >= 0")
    return a.copy(), sigma.copy(), w0.copy()


def initial_loss(a, w0) -> float:
    """``sum_i a_i w0_i^2 / 2``: the (deterministic) loss at step 0."""
    a, _, w0 = _diagonal(a, 0.0, w0)
    return float(np.sum(0.5 * a * w0 ** 2))


def _terms(a, sigma, w0, batch_size, lrs):
    """The expected loss of each learning rate as ``L(t) = sum_i c_i + b_i rho_i^t``: returns
    ``(log_rho, c, b, stable)`` with ``(n, d)`` arrays and ``stable`` (n,) (``0 < lr`` and ``lr a_i < 2``)."""
    lr_a = lrs[:, None] * a
    log_rho = _log_contraction(lr_a)
    stable = (lrs > 0) & (lr_a < 2.0).all(axis=1)
    q = lrs[:, None] ** 2 * sigma ** 2 / batch_size
    with np.errstate(divide="ignore", invalid="ignore"):
        m_inf = np.where(stable[:, None], q / (lr_a * (2.0 - lr_a)), 0.0)
    return log_rho, 0.5 * a * m_inf, 0.5 * a * (w0 ** 2 - m_inf), stable


def _loss_at(log_rho, c, b, t):
    return (c + b * _power(log_rho, np.asarray(t, dtype=float)[:, None])).sum(axis=1)


def _first_hit(log_rho, c, b, target: float, *, integer: bool = True, max_t: float = 1e13,
               block: int = 512):
    """First ``t >= 0`` (a whole number when ``integer``) with ``sum_i c_i + b_i exp(t log_rho_i) <= target``,
    per row of the ``(n, d)`` arrays (every ``log_rho <= 0``); ``inf`` where it never happens (or after
    ``max_t``). Returns ``(t, loss at t)``.

    Rows whose terms all decrease (every ``b >= 0``) are monotone: doubling then bisection. Others are
    scanned in order (steps of 1, or a fine grid then bisection when continuous) until they hit, or until
    the decreasing terms are closer to their limit than the loss is above the target: from then on the
    increasing terms keep the loss above it.
    """
    n = log_rho.shape[0]
    t_hit = np.full(n, np.inf)
    loss0 = (c + b).sum(axis=1)
    hit0 = loss0 <= target
    t_hit[hit0] = 0.0
    limit = c.sum(axis=1)
    monotone = (b >= 0).all(axis=1)

    rows = np.flatnonzero(~hit0 & monotone & (limit < target))
    if rows.size:
        lr_, c_, b_ = log_rho[rows], c[rows], b[rows]
        lo, hi = np.zeros(rows.size), np.ones(rows.size)
        for _ in range(80):
            above = _loss_at(lr_, c_, b_, hi) > target
            if not above.any():
                break
            lo = np.where(above, hi, lo)
            hi = np.where(above, np.minimum(2.0 * hi, 2.0 * max_t), hi)
        for _ in range(200):
            gap = hi - lo
            active = gap > 1.0 if integer else gap > 1e-12 * hi
            if not active.any():
                break
            mid = np.floor((lo + hi) / 2.0) if integer else (lo + hi) / 2.0
            above = _loss_at(lr_, c_, b_, mid) > target
            lo = np.where(active & above, mid, lo)
            hi = np.where(active & ~above, mid, hi)
        t_hit[rows] = np.where(hi <= max_t, hi, np.inf)

    rows = np.flatnonzero(~hit0 & ~monotone)
    if rows.size:
        step = 1.0 if integer else 0.02 / max(float(np.max(-log_rho[rows][np.isfinite(log_rho[rows])], initial=1.0)),
                                              1e-300)
        pending = rows.copy()
        start = 0.0
        while pending.size and start <= max_t:
            t = start + step * np.arange(1, block + 1)
            lr_, c_, b_ = log_rho[pending][:, None, :], c[pending][:, None, :], b[pending][:, None, :]
            terms = b_ * _power(lr_, t[None, :, None])
            loss = c_.sum(axis=2) + terms.sum(axis=2)  # (p, block)
            below = loss <= target
            found = below.any(axis=1)
            first = below.argmax(axis=1)
            decreasing = np.where(b_ >= 0, terms, 0.0).sum(axis=2)  # minus their limit (0)
            settled = (decreasing < loss - target).any(axis=1) & ~found
            for k in np.flatnonzero(found):
                hit = t[first[k]]
                if not integer:  # bisect between the grid points around the crossing
                    lo_, hi_ = hit - step, hit
                    one = (log_rho[pending[k]][None], c[pending[k]][None], b[pending[k]][None])
                    for _ in range(100):
                        mid = (lo_ + hi_) / 2.0
                        if _loss_at(*one, np.array([mid]))[0] > target:
                            lo_ = mid
                        else:
                            hi_ = mid
                    hit = hi_
                t_hit[pending[k]] = hit
            pending = pending[~found & ~settled]
            start = t[-1]
    loss = np.full(n, np.nan)
    finite = np.isfinite(t_hit)
    if finite.any():
        loss[finite] = _loss_at(log_rho[finite], c[finite], b[finite], t_hit[finite])
    return t_hit, loss


def _steps_for_lrs(a, sigma, w0, batch_size: float, lrs, target: float):
    """Steps to the target and the expected loss there, per learning rate (``inf`` if never, or unstable)."""
    lrs = np.asarray(lrs, dtype=float).reshape(-1)
    log_rho, c, b, stable = _terms(a, sigma, w0, float(batch_size), lrs)
    steps, loss = np.full(lrs.size, np.inf), np.full(lrs.size, np.nan)
    if stable.any():
        steps[stable], loss[stable] = _first_hit(log_rho[stable], c[stable], b[stable], target)
    l0 = initial_loss(a, w0)
    steps[~stable & (l0 <= target)] = 0.0
    return steps, loss


def _best(lrs, steps, loss):
    """Index of the fewest steps, ties broken by the lower expected loss there (``None`` if none is finite)."""
    if not np.isfinite(steps).any():
        return None
    return int(np.lexsort((np.nan_to_num(loss, nan=np.inf), steps))[0])


def _tune_lr(a, sigma, w0, batch_size: float, target: float, lrs=None, *, points: int = 241,
             rounds: int = 4) -> tuple[float, float, float]:
    """``(lr, steps, loss at steps)`` of the learning rate reaching ``target`` in the fewest steps.

    ``lrs`` given: the best of them. Otherwise a log grid below the stability limit ``2 / a_max``
    (extended downwards while the best is its lowest point), refined ``rounds`` times between the best
    point's neighbours."""
    if lrs is not None:
        lrs = np.asarray(lrs, dtype=float).reshape(-1)
        steps, loss = _steps_for_lrs(a, sigma, w0, batch_size, lrs, target)
        i = _best(lrs, steps, loss)
        return (math.nan, math.inf, math.nan) if i is None else (float(lrs[i]), float(steps[i]), float(loss[i]))
    top = math.log10(2.0 / float(np.max(a))) + math.log10(1.0 - 1e-9)
    bottom = top - 8.0
    for _ in range(6):
        grid = np.logspace(bottom, top, points)
        steps, loss = _steps_for_lrs(a, sigma, w0, batch_size, grid, target)
        i = _best(grid, steps, loss)
        if i is None:
            return math.nan, math.inf, math.nan
        if i > 0:
            break
        bottom, top = bottom - 8.0, bottom + 8.0 * (points - 1) / points
    for _ in range(rounds):
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        fine = np.geomspace(lo, hi, 41)
        fine_steps, fine_loss = _steps_for_lrs(a, sigma, w0, batch_size, fine, target)
        grid = np.concatenate([fine, [grid[i]]])
        steps = np.concatenate([fine_steps, [steps[i]]])
        loss = np.concatenate([fine_loss, [loss[i]]])
        order = np.argsort(grid)
        grid, steps, loss = grid[order], steps[order], loss[order]
        i = _best(grid, steps, loss)
    return float(grid[i]), float(steps[i]), float(loss[i])


def _per_batch(batch_size, fn):
    sizes = np.asarray(batch_size, dtype=float)
    out = np.array([fn(float(B)) for B in sizes.reshape(-1)], dtype=float).reshape(sizes.shape)
    return _out(out)


def steps_to_target(a, sigma, batch_size, target: float, w0, lr=None, *, lrs=None):
    """Steps until the expected loss of the (diagonal) NQM is first ``<= target``; ``inf`` if never (an
    unstable ``lr >= 2 / a_max`` never does).

    ``lr=None``: tuned for each batch size (:func:`optimal_lr`, over ``lrs`` when given), as in the handout's
    Figure 1. ``batch_size`` is a number (a float back) or an array (an array back, one entry each).
    """
    a, sigma, w0 = _diagonal(a, sigma, w0)
    if lr is None:
        return _per_batch(batch_size, lambda B: _tune_lr(a, sigma, w0, B, target, lrs)[1])
    return _per_batch(batch_size, lambda B: _steps_for_lrs(a, sigma, w0, B, [lr], target)[0][0])


def optimal_lr(a, sigma, batch_size, target: float, w0, lrs=None):
    """The learning rate that reaches ``target`` (an expected loss) in the fewest SGD steps at each batch
    size, ties broken by the lower expected loss at that step: over ``lrs`` when given, else searched
    (log grid below ``2 / a_max``, refined). ``nan`` where no learning rate reaches the target.

    Noise-dominated (small ``B``): grows like ``B``. Curvature-dominated (large ``B``): saturates near
    ``1 / a`` (scalar) or ``2 / (a_max + a_min)`` (diagonal), the noiseless optimum."""
    a, sigma, w0 = _diagonal(a, sigma, w0)
    return _per_batch(batch_size, lambda B: _tune_lr(a, sigma, w0, B, target, lrs)[0])


def min_steps(a, target: float, w0) -> tuple[float, float]:
    """``(S_min, lr)``: the fewest steps to ``target`` with exact gradients (``B -> inf``), lr tuned: the
    curvature-dominated asymptote (1 for the scalar model, at ``lr = 1 / a``)."""
    a, _, w0 = _diagonal(a, 0.0, w0)
    lr, steps, _ = _tune_lr(a, np.zeros_like(a), w0, 1.0, target)
    return steps, lr


def min_examples(a, sigma, target: float, w0) -> tuple[float, float]:
    """``(E_min, eta)``: ``lim_{B -> 0} B * steps(B)``, the fewest training examples (steps times batch size)
    to reach ``target``, and the learning rate per example ``eta = lr / B`` that achieves it.

    As ``B -> 0`` the tuned ``lr -> 0`` with ``lr / B -> eta``, and SGD follows its continuous-time limit
    (``tau = lr t``): ``E[L](tau) = sum_i eta sigma_i^2 / 4 + (a_i w0_i^2 / 2 - eta sigma_i^2 / 4) exp(-2 a_i tau)``.
    ``E_min = min_eta tau*(eta) / eta`` with ``tau*`` its first time at the target (``eta < 4 target / sum sigma^2``).
    """
    a, sigma, w0 = _diagonal(a, sigma, w0)
    total_noise = float(np.sum(sigma ** 2))
    if total_noise == 0.0:
        return 0.0, math.inf

    def examples(etas):
        noise = etas[:, None] * sigma ** 2 / 4.0
        log_rho = np.broadcast_to(-2.0 * a, noise.shape)
        tau, _ = _first_hit(log_rho, noise, 0.5 * a * w0 ** 2 - noise, target, integer=False)
        return tau / etas

    eta_max = 4.0 * target / total_noise
    etas = eta_max * np.logspace(-8.0, math.log10(1.0 - 1e-9), 241)
    values = examples(etas)
    for _ in range(5):
        i = int(np.argmin(values))
        fine = np.geomspace(etas[max(i - 1, 0)], etas[min(i + 1, etas.size - 1)], 41)
        etas, values = fine, examples(fine)
    i = int(np.argmin(values))
    return float(values[i]), float(etas[i])


def critical_batch_size(a, sigma, target: float, w0) -> float:
    """Where the steps-vs-batch-size curve bends: the batch size at which its two asymptotes, ``E_min / B``
    (noise-dominated, :func:`min_examples`) and ``S_min`` (curvature-dominated, :func:`min_steps`), meet:
    ``B_crit = E_min / S_min``."""
    return min_examples(a, sigma, target, w0)[0] / min_steps(a, target, w0)[0]


def batch_size_curves(batch_sizes=None, *, a=None, sigma=None, w0=None, target: float | None = None) -> dict:
    """Everything Figure 1 needs, for the default :data:`NQM` unless given: per batch size the tuned
    learning rate, the steps to the target and the examples (steps times B); the asymptotes ``S_min``
    (with its lr) and ``E_min`` (with ``eta = lr / B``), and ``critical_batch_size``.
    ``batch_sizes`` defaults to ``2^0 .. 2^16``; ``target`` to ``NQM['target_fraction']`` of the initial loss."""
    a = NQM["a"] if a is None else a
    sigma = NQM["sigma"] if sigma is None else sigma
    w0 = NQM["w0"] if w0 is None else w0
    a, sigma, w0 = _diagonal(a, sigma, w0)
    if target is None:
        target = NQM["target_fraction"] * initial_loss(a, w0)
    sizes = np.asarray(2.0 ** np.arange(17) if batch_sizes is None else batch_sizes, dtype=float)
    tuned = [_tune_lr(a, sigma, w0, float(B), target) for B in sizes]
    s_min, lr_inf = min_steps(a, target, w0)
    e_min, eta = min_examples(a, sigma, target, w0)
    return {"batch_sizes": sizes, "optimal_lr": np.array([t[0] for t in tuned]),
            "steps": np.array([t[1] for t in tuned]), "examples": sizes * np.array([t[1] for t in tuned]),
            "target": float(target), "initial_loss": initial_loss(a, w0),
            "s_min": s_min, "lr_curvature": lr_inf, "e_min": e_min, "eta": eta,
            "critical_batch_size": e_min / s_min}


def plot_batch_size_curves(curves: Mapping, axes=None):
    """The handout's Figure 1 from :func:`batch_size_curves`: tuned learning rate (left) and steps to the
    target (right) against batch size, log-log, with both asymptotes dashed and the critical batch size
    marked. Returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig = axes[0].figure
    sizes = np.asarray(curves["batch_sizes"], dtype=float)
    b_crit = curves["critical_batch_size"]
    ax = axes[0]
    ax.loglog(sizes, curves["optimal_lr"], "o-", label="tuned learning rate")
    ax.loglog(sizes, curves["eta"] * sizes, "--", color="gray", label=r"$\eta^* B$ (noise-dominated)")
    ax.axhline(curves["lr_curvature"], ls=":", color="gray", label="noiseless optimum (curvature)")
    ax.set_ylim(0.5 * np.nanmin(curves["optimal_lr"]), 2.0 * curves["lr_curvature"])
    ax.set(xlabel="batch size B", ylabel="optimal learning rate", title="Optimal learning rate vs batch size")
    ax2 = axes[1]
    ax2.loglog(sizes, curves["steps"], "o-", label="steps to target (lr tuned)")
    ax2.loglog(sizes, curves["e_min"] / sizes, "--", color="gray", label=r"$E_{min}/B$ (noise-dominated)")
    ax2.axhline(curves["s_min"], ls=":", color="gray", label=r"$S_{min}$ (curvature-dominated)")
    ax2.set_ylim(0.5 * curves["s_min"], 2.0 * np.nanmax(curves["steps"]))
    ax2.set(xlabel="batch size B", ylabel="steps to target", title="Steps to target loss vs batch size")
    for a_ in axes:
        a_.axvline(b_crit, color="red", lw=1)
        a_.text(b_crit, a_.get_ylim()[0], f"  B_crit = {b_crit:.0f}", color="red", va="bottom")
        a_.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ===================================================================================== section 2.4: IsoFLOP
def flops_per_token(n_params):
    """Training FLOPs per token of a model of ``n_params`` parameters: ``6 N`` (forward ``2 N``, a multiply
    and an add per weight; backward ``4 N``, gradients with respect to the activations and to the weights).
    So a run on ``D`` tokens costs ``C = 6 N D``."""
    return 6 * n_params


def _attention_heads(model: nn.Module) -> list[nn.Module]:
    """The attention heads: modules with linear maps ``Q``, ``K``, ``V`` (the course's attention classes)."""
    return [m for m in model.modules()
            if all(isinstance(getattr(m, name, None), nn.Linear) for name in ("Q", "K", "V"))]


def model_flops(model: nn.Module, tokens: float, seq_len: float, *, training: bool = True) -> float:
    """FLOPs of ``model`` on ``tokens`` tokens that come in sequences of ``seq_len``, counted from its
    modules: each ``nn.Linear`` costs ``2 * in * out`` per token forward; each attention head (a module with
    linear ``Q``, ``K``, ``V``) of size ``H`` attends over the whole sequence: scores ``Q K^T`` and the
    weighted sum of values, ``2 T H`` each per token forward (the causal mask is applied after the full
    product, as the course's models do). Training (``training=True``) is 3 times the forward pass (the
    backward pass computes two products per forward product: gradients of both operands).

    Not counted: the embedding lookup, the positional encodings, biases, softmax, scaling, residual
    additions and ReLU (elementwise, ``O(T H)``; FLOP counters such as ``torch.utils.flop_counter`` count
    only matrix products too). For sequences of different lengths ``T_i``, ``seq_len = sum T_i^2 / sum T_i``
    (the token-weighted mean length) makes the count exact.
    """
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    attention = sum(4 * seq_len * head.Q.out_features for head in _attention_heads(model))
    forward = tokens * (2 * linear + attention)
    return float(3 * forward if training else forward)


def decoder_flops_per_token(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int = 1,
                            seq_len: float = 1, *, training: bool = True) -> float:
    """:func:`model_flops` per token of ``DecoderOnlyTransformer(vocab_size, hidden_size, num_layers,
    num_heads)``, from its hyperparameters. Forward: per layer, ``num_heads`` heads of ``Q, K, V``
    (``3 H^2`` weights each) and ``4 T H`` attention, ``W_O`` (``num_heads H^2``) when ``num_heads > 1``, the
    MLP's ``H^2``; the output layer's ``H V``; two FLOPs per weight. Times 3 for training.

    Against ``6 N`` (``N`` = :func:`course_solutions.nmt.calc_parameters_decoder`): ``6 N`` also counts the
    embedding's ``V H`` (a lookup, free) and the biases, and misses ``12 T H`` of attention per head and
    layer. Per token at ``V = 30``, ``H = 32``, one layer, one head, ``T = 20``: ``6 N = 37,044`` (weights
    ``30,336``, embedding ``5,760``, biases ``948``) against ``38,016`` here (weights ``30,336``, attention
    ``7,680``): 2.6 % apart only because the missing attention and the extra embedding nearly cancel.
    Attention's share grows with ``T / H``, the embedding's with ``V / H``."""
    V, H, L, h = vocab_size, hidden_size, num_layers, num_heads
    weights = L * (h * 3 * H * H + (h * H * H if h > 1 else 0) + H * H) + H * V
    forward = 2 * weights + L * h * 4 * seq_len * H
    return float(3 * forward if training else forward)


def fit_isoflop_minimum(n_params, losses) -> tuple[float, np.ndarray]:
    """One IsoFLOP profile (runs of the same compute budget): fit ``loss = c2 x^2 + c1 x + c0`` with
    ``x = log10 N`` by least squares, and return ``(n_opt, coeffs)``: ``n_opt = 10^(-c1 / (2 c2))``, the
    vertex, and ``coeffs = [c2, c1, c0]`` (``np.polyfit``'s order). The fit is in ``log N`` because the
    profiles are parabola-like on a log axis (Hoffmann et al. 2022, approach 2), and the sizes are spread
    geometrically.

    Raises ``ValueError`` with fewer than 3 distinct sizes or a fit that is not convex (no minimum)."""
    n = np.asarray(n_params, dtype=float).reshape(-1)
    y = np.asarray(losses, dtype=float).reshape(-1)
    if n.shape != y.shape or np.unique(n).size < 3 or not (n > 0).all():
        raise ValueError("need at least 3 distinct positive model sizes, one loss each")
    coeffs = np.polyfit(np.log10(n), y, 2)
    if not coeffs[0] > 0:
        raise ValueError(f"the parabola in log10 N opens downwards (c2 = {coeffs[0]:.3g}): no minimum")
    return float(10.0 ** (-coeffs[1] / (2.0 * coeffs[0]))), coeffs


def fit_power_law(c, n_opt) -> tuple[float, float]:
    """``(coefficient, exponent)`` of ``N_opt = coefficient * C^exponent``, a least-squares line through
    ``(log10 C, log10 N_opt)``."""
    x = np.log10(np.asarray(c, dtype=float).reshape(-1))
    y = np.log10(np.asarray(n_opt, dtype=float).reshape(-1))
    if x.shape != y.shape or np.unique(x).size < 2:
        raise ValueError("need at least 2 distinct budgets, one optimal size each")
    exponent, intercept = np.polyfit(x, y, 1)
    return float(10.0 ** intercept), float(exponent)


def predict_power_law(c, coefficient: float, exponent: float):
    """``coefficient * C^exponent``."""
    return _out(coefficient * np.asarray(c, dtype=float) ** exponent)


def compute_optimal_tokens(c, n_opt):
    """``D_opt = C / (6 N_opt)``: the tokens a compute-optimal model of ``N_opt`` parameters trains on with
    budget ``C`` (from ``C = 6 N D``). ``n_opt`` must be the optimal size **at that budget**."""
    return _out(np.asarray(c, dtype=float) / (6.0 * np.asarray(n_opt, dtype=float)))


def isoflop_analysis(profiles: Mapping[float, tuple[Sequence[float], Sequence[float]]],
                     predict_at: float = HANDOUT_BUDGET) -> dict:
    """The whole of 2.4 from ``{budget C: (model sizes N, final losses)}``: each profile's optimum
    (:func:`fit_isoflop_minimum`) and its compute-optimal tokens, the power law through the optima, and the
    prediction at ``predict_at``: ``n_opt_at = coefficient * predict_at^exponent`` and
    ``d_opt_at = predict_at / (6 n_opt_at)``."""
    budgets = np.array(sorted(profiles), dtype=float)
    fits = [fit_isoflop_minimum(*profiles[c]) for c in sorted(profiles)]
    n_opt = np.array([f[0] for f in fits])
    coefficient, exponent = fit_power_law(budgets, n_opt)
    n_at = coefficient * predict_at ** exponent
    return {"budgets": budgets, "n_opt": n_opt, "coeffs": [f[1] for f in fits],
            "d_opt": compute_optimal_tokens(budgets, n_opt), "coefficient": coefficient, "exponent": exponent,
            "predict_at": float(predict_at), "n_opt_at": float(n_at),
            "d_opt_at": float(compute_optimal_tokens(predict_at, n_at))}
