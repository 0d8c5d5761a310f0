"""The reference solutions of scaling_laws (course_solutions.scaling), against independent computations.

Noisy quadratic model. Each check below is a function of the implementation it checks, so that the same
check passes the reference and fails each known-wrong version (``WRONG_*``), as the notebook's tests must:

- Monte Carlo: ``w_t`` is Gaussian (a linear recursion in Gaussian noise), with mean ``(1 - lr a)^t w0`` and
  variance ``v_t``, so ``L_t = a w_t^2 / 2`` has variance ``(a / 2)^2 (2 v_t^2 + 4 mu_t^2 v_t)``. The mean of
  ``R`` runs is within ``4.5`` standard errors ``sd(L_t) / sqrt(R)`` of the exact expectation (a fixed seed; a
  correct simulator fails with probability ~7e-6 per comparison, ~1e-4 over the 15 made), and the runs'
  spread matches the theoretical one within 10 %. Not dividing the noise variance by ``B`` misses by
  hundreds of standard errors at ``B = 16``.
- The expected loss (recursion, closed form) against a third, direct formula: ``w_t = (1 - lr a)^t w0 +
  sum_k lr (1 - lr a)^(t-1-k) eps_k``, so ``E[w_t^2] = (1 - lr a)^(2t) w0^2 + lr^2 sigma^2 / B sum_k (1 - lr a)^(2k)``,
  summed term by term in Python.
- Figure 1 (the default diagonal NQM): the steps to the target for a given lr against a brute-force run of
  the recursion; the tuned lr against a brute-force grid; the two regimes and the critical batch size.

IsoFLOP: FLOPs against ``torch.utils.flop_counter`` on Linear stacks and on the real decoder-only model;
the fits on synthetic data with known answers (a Chinchilla-form loss ``E + A / N^alpha + B / D^beta``,
whose compute-optimal size is known in closed form), with noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_solutions import scaling as ref


# ============================================================================================ NQM references
def _direct_expected_loss(a, sigma, B, lr, t, w0):
    """``E[a w_t^2 / 2]`` summed term by term from ``w_t``'s expansion in the noises (no recursion)."""
    c = 1.0 - lr * a
    return 0.5 * a * (c ** (2 * t) * w0 ** 2 + lr ** 2 * sigma ** 2 / B * sum(c ** (2 * k) for k in range(t)))


def _direct_mean_var(a, sigma, B, lr, t, w0):
    c = 1.0 - lr * a
    return c ** t * w0, lr ** 2 * sigma ** 2 / B * sum(c ** (2 * k) for k in range(t))


# Known-wrong versions (what students get wrong).
def WRONG_sgd_noise_not_divided_by_B(a, sigma, batch_size, lr, steps, w0, generator=None, *, runs=None):
    return ref.nqm_sgd(a, sigma * math.sqrt(batch_size), batch_size, lr, steps, w0, generator, runs=runs)


def WRONG_sgd_noise_std_divided_by_B(a, sigma, batch_size, lr, steps, w0, generator=None, *, runs=None):
    return ref.nqm_sgd(a, sigma / math.sqrt(batch_size), batch_size, lr, steps, w0, generator, runs=runs)


def WRONG_expected_noise_not_divided_by_B(a, sigma, batch_size, lr, steps, w0):
    m = w0 ** 2
    for _ in range(steps):
        m = (1 - lr * a) ** 2 * m + lr ** 2 * sigma ** 2
    return 0.5 * a * m


def WRONG_expected_not_squared(a, sigma, batch_size, lr, steps, w0):
    m = w0 ** 2
    for _ in range(steps):
        m = (1 - lr * a) * m + lr ** 2 * sigma ** 2 / batch_size
    return 0.5 * a * m


# (a, sigma, B, lr, w0): noise-dominated, curvature-dominated and in between; lr a from 0.05 to 1.5.
SETTINGS = [(1.0, 1.0, 16, 0.5, 2.0), (2.0, 3.0, 4, 0.05, 1.0), (0.5, 2.0, 64, 3.0, -1.5)]
MC_STEPS = (1, 5, 20, 60)
RUNS = 20_000


def check_monte_carlo(sgd):
    """The Monte Carlo mean loss is within 4.5 standard errors of the exact expectation at every checked
    step, and the runs' standard deviation within 10 % of the theoretical one."""
    g = torch.Generator().manual_seed(0)
    for a, sigma, B, lr, w0 in SETTINGS:
        w = sgd(a, sigma, B, lr, max(MC_STEPS), w0, g, runs=RUNS)
        assert tuple(w.shape) == (max(MC_STEPS) + 1, RUNS)
        assert torch.all(w[0] == w0)
        for t in MC_STEPS:
            losses = ref.nqm_loss(a, w[t]).double()
            exact = _direct_expected_loss(a, sigma, B, lr, t, w0)
            se = float(losses.std()) / math.sqrt(RUNS)
            assert abs(float(losses.mean()) - exact) <= 4.5 * se, (a, sigma, B, lr, t, float(losses.mean()), exact, se)
            mu, v = _direct_mean_var(a, sigma, B, lr, t, w0)
            sd = 0.5 * a * math.sqrt(2 * v ** 2 + 4 * mu ** 2 * v)
            assert abs(float(losses.std()) / sd - 1) < 0.1, (a, sigma, B, lr, t, float(losses.std()), sd)


def check_expected_loss(expected):
    for a, sigma, B, lr, w0 in SETTINGS:
        for t in (0, 1, 2, 7, 30, 200):
            got = expected(a, sigma, B, lr, t, w0)
            assert got == pytest.approx(_direct_expected_loss(a, sigma, B, lr, t, w0), rel=1e-9, abs=1e-300), \
                (a, sigma, B, lr, t)


def test_sgd_monte_carlo_matches_the_exact_expectation():
    check_monte_carlo(ref.nqm_sgd)


@pytest.mark.parametrize("wrong", [WRONG_sgd_noise_not_divided_by_B, WRONG_sgd_noise_std_divided_by_B])
def test_monte_carlo_check_rejects_wrong_noise(wrong):
    with pytest.raises(AssertionError):
        check_monte_carlo(wrong)


def test_sgd_is_vectorised_over_settings_and_seeded():
    lr = torch.tensor([[0.1], [0.5]])
    w = ref.nqm_sgd(1.0, 1.0, torch.tensor([1.0, 4.0, 16.0]), lr, 3, 1.0, torch.Generator().manual_seed(1), runs=5)
    assert w.shape == (4, 2, 3, 5)
    again = ref.nqm_sgd(1.0, 1.0, torch.tensor([1.0, 4.0, 16.0]), lr, 3, 1.0, torch.Generator().manual_seed(1), runs=5)
    assert torch.equal(w, again)
    runs_as_w0 = ref.nqm_sgd(1.0, 0.0, 1, 0.5, 2, torch.tensor([1.0, -2.0]))
    assert torch.allclose(runs_as_w0[-1], torch.tensor([0.25, -0.5], dtype=torch.float64))  # noiseless: (1-0.5)^2 w0


@pytest.mark.parametrize("expected", [ref.nqm_expected_loss, ref.nqm_loss_closed_form], ids=["recursion", "closed"])
def test_expected_loss_matches_the_direct_sum(expected):
    check_expected_loss(expected)


@pytest.mark.parametrize("wrong", [WRONG_expected_noise_not_divided_by_B, WRONG_expected_not_squared])
def test_expected_loss_check_rejects_wrong_versions(wrong):
    with pytest.raises(AssertionError):
        check_expected_loss(wrong)


def test_wrong_recursions_also_disagree_with_monte_carlo():
    """What the notebook's cross-check does: the student's recursion against the reference simulator."""
    a, sigma, B, lr, w0 = SETTINGS[0]
    w = ref.nqm_sgd(a, sigma, B, lr, 30, w0, torch.Generator().manual_seed(3), runs=RUNS)
    losses = ref.nqm_loss(a, w[30])
    se = float(losses.std()) / math.sqrt(RUNS)
    assert abs(float(losses.mean()) - ref.nqm_expected_loss(a, sigma, B, lr, 30, w0)) <= 4.5 * se
    for wrong in (WRONG_expected_noise_not_divided_by_B, WRONG_expected_not_squared):
        assert abs(float(losses.mean()) - wrong(a, sigma, B, lr, 30, w0)) > 20 * se


def test_recursion_and_closed_form_agree_everywhere():
    """Broadcast over a grid, including ``lr a = 1`` (r = 0), ``lr a = 2`` (r = 1), unstable ``lr a > 2``,
    zero noise and step 0; the trajectory's last row is the final value."""
    a = np.array([0.5, 1.0, 2.0])[:, None, None]
    lr = np.array([1e-4, 0.3, 0.5, 1.0, 1.9, 2.5])[None, :, None] / a
    B = np.array([1.0, 8.0, 1e6])[None, None, :]
    for steps in (0, 1, 5, 40):
        rec = ref.nqm_expected_loss(a, 1.3, B, lr, steps, 0.7)
        closed = ref.nqm_loss_closed_form(a, 1.3, B, lr, steps, 0.7)
        assert rec.shape == (3, 6, 3)
        np.testing.assert_allclose(closed, rec, rtol=1e-10)
        np.testing.assert_allclose(ref.nqm_expected_loss(a, 1.3, B, lr, steps, 0.7, trajectory=True)[-1], rec)
    np.testing.assert_allclose(ref.nqm_loss_closed_form(1.0, 0.0, 1, 0.3, np.arange(5), 1.0),
                               0.5 * 0.49 ** np.arange(5), rtol=1e-12)
    assert ref.nqm_loss_closed_form(1.0, 1.0, 4, 2.0, 10, 1.0) == pytest.approx(0.5 * (1 + 10 * 4 / 4))  # r = 1


def test_noise_floor_is_the_limit():
    for a, sigma, B, lr, w0 in SETTINGS[:2]:
        floor = ref.nqm_noise_floor(a, sigma, B, lr)
        assert ref.nqm_loss_closed_form(a, sigma, B, lr, 10_000, w0) == pytest.approx(floor, rel=1e-9)
        assert floor == pytest.approx(lr * sigma ** 2 / (2 * B * (2 - lr * a)))
    assert ref.nqm_noise_floor(1.0, 1.0, 1, 2.0) == math.inf


# ================================================================================================ Figure 1
NQM = ref.NQM
A, SIGMA, W0 = NQM["a"], NQM["sigma"], NQM["w0"]
TARGET = NQM["target_fraction"] * ref.initial_loss(A, W0)


@pytest.fixture(scope="module")
def curves():
    return ref.batch_size_curves()


def _brute_steps(a, sigma, w0, B, lr, target, max_steps=100_000):
    """First step whose expected loss (the recursion, summed over coordinates) is <= target, for one
    learning rate or an array of them (all run together, step by step)."""
    lrs = np.atleast_1d(np.asarray(lr, dtype=float))[:, None]
    m = np.broadcast_to(np.asarray(w0, dtype=float) ** 2, (lrs.size, np.size(a))).copy()
    first = np.full(lrs.size, math.inf)
    for t in range(max_steps + 1):
        hit = (np.sum(0.5 * a * m, axis=1) <= target) & np.isinf(first)
        first[hit] = t
        if np.isfinite(first).all():
            break
        m = (1 - lrs * a) ** 2 * m + lrs ** 2 * sigma ** 2 / B
    return first if np.ndim(lr) else float(first[0])


def test_default_nqm_is_the_documented_one():
    np.testing.assert_allclose(SIGMA ** 2, A)
    np.testing.assert_allclose(W0, A ** -0.5)
    assert A.max() / A.min() == pytest.approx(100)
    assert TARGET == pytest.approx(0.008)


@pytest.mark.parametrize("B,lr", [(1, 0.005), (1, 0.0074), (64, 0.4), (4096, 1.9), (4096, 1.0), (1e6, 1.97)])
def test_steps_to_target_matches_brute_force(B, lr):
    assert ref.steps_to_target(A, SIGMA, B, TARGET, W0, lr=lr) == _brute_steps(A, SIGMA, W0, B, lr, TARGET)


def test_steps_to_target_non_monotone_losses():
    """A coordinate starting below its noise floor rises while another falls: the loss dips then settles."""
    a, sigma, w0 = np.array([1.0, 0.05]), np.array([2.0, 0.1]), np.array([0.0, 6.0])
    for B, lr, target in [(4, 1.5, 0.6), (4, 1.5, 0.3), (64, 0.8, 0.05), (1, 1.9, 5.0)]:
        got = ref.steps_to_target(a, sigma, B, target, w0, lr=lr)
        assert got == _brute_steps(a, sigma, w0, B, lr, target, max_steps=20_000), (B, lr, target)
    # noise floor above the target: never, though the loss falls at first
    assert ref.steps_to_target(a, sigma, 1, 0.2, w0, lr=1.5) == math.inf
    assert ref.steps_to_target(1.0, 1.0, 1, 0.01, 1.0, lr=2.5) == math.inf  # unstable


def test_tuned_lr_beats_a_brute_force_grid(curves):
    for i in (0, 6, 9, 14):
        B, lr, steps = curves["batch_sizes"][i], curves["optimal_lr"][i], curves["steps"][i]
        assert _brute_steps(A, SIGMA, W0, B, lr, TARGET) == steps
        grid = np.geomspace(lr / 3, min(3 * lr, 1.999), 25)
        assert np.isinf(_brute_steps(A, SIGMA, W0, B, grid, TARGET, max_steps=int(steps) - 1)).all()  # none is faster
        assert ref.optimal_lr(A, SIGMA, B, TARGET, W0, lrs=grid) in grid


def test_optimal_lr_linear_in_the_noise_regime_then_saturates(curves):
    B, lr, b_crit = curves["batch_sizes"], curves["optimal_lr"], curves["critical_batch_size"]
    assert np.all(np.diff(lr[B <= 16_384]) > 0)
    noise = B <= b_crit / 32
    assert noise.sum() >= 4
    np.testing.assert_allclose(lr[noise] / B[noise], curves["eta"], rtol=0.02)  # lr = eta B
    np.testing.assert_allclose(lr[noise][1:] / lr[noise][:-1], 2.0, rtol=0.02)  # doubling B doubles lr
    curvature = B >= 32 * b_crit
    assert curvature.sum() >= 3
    np.testing.assert_allclose(lr[curvature], curves["lr_curvature"], rtol=0.02)
    assert np.all(lr < 2 / A.max())
    assert curves["lr_curvature"] == pytest.approx(2 / (A.max() + A.min()), rel=0.02)


def test_steps_fall_like_one_over_B_then_flatten(curves):
    B, steps, b_crit = curves["batch_sizes"], curves["steps"], curves["critical_batch_size"]
    assert np.all(np.diff(steps) <= 0)
    noise = B <= b_crit / 32
    np.testing.assert_allclose(B[noise] * steps[noise], curves["e_min"], rtol=0.02)
    curvature = B >= 32 * b_crit
    np.testing.assert_allclose(steps[curvature], curves["s_min"], rtol=0.05)
    assert steps[-1] / steps[-3] > 0.97  # quadrupling B past the bend saves < 3 %
    assert steps[0] / steps[2] == pytest.approx(4, rel=0.01)  # quadrupling B far below it saves 4x
    # the whole curve is McCandlish et al.'s S_min + E_min / B within 4 %
    np.testing.assert_allclose(steps, curves["s_min"] + curves["e_min"] / B, rtol=0.04)


def test_critical_batch_size_is_where_the_asymptotes_meet(curves):
    s_min, lr_inf = ref.min_steps(A, TARGET, W0)
    assert s_min == _brute_steps(A, 0 * SIGMA, W0, 1, lr_inf, TARGET) == 110
    assert np.isinf(_brute_steps(A, 0 * SIGMA, W0, 1, np.linspace(1.5, 1.999, 60), TARGET, max_steps=109)).all()
    e_min, eta = ref.min_examples(A, SIGMA, TARGET, W0)
    tiny = 1e-3  # B -> 0: B * steps(B) -> E_min
    assert tiny * ref.steps_to_target(A, SIGMA, tiny, TARGET, W0) == pytest.approx(e_min, rel=1e-3)
    assert e_min == pytest.approx(42_345, rel=1e-3)
    b_crit = ref.critical_batch_size(A, SIGMA, TARGET, W0)
    assert b_crit == pytest.approx(e_min / s_min) == pytest.approx(curves["critical_batch_size"])
    assert b_crit == pytest.approx(385, rel=0.01)
    assert ref.steps_to_target(A, SIGMA, b_crit, TARGET, W0) == pytest.approx(2 * s_min, rel=0.1)  # on the bend


def test_scalar_model_plateaus_at_one_newton_step():
    s_min, lr = ref.min_steps(1.0, 0.005, 1.0)
    assert s_min == 1 and lr == pytest.approx(1.0, rel=1e-6)
    e_min, _ = ref.min_examples(1.0, 1.0, 0.005, 1.0)
    steps = ref.steps_to_target(1.0, 1.0, np.array([1.0, 2.0, 4.0, 1024.0]), 0.005, 1.0)
    np.testing.assert_allclose(steps[:3] * [1, 2, 4], e_min, rtol=0.02)
    assert steps[3] == 1
    assert ref.optimal_lr(1.0, 1.0, 1024.0, 0.005, 1.0) == pytest.approx(1.0, rel=0.01)


def test_plot_marks_the_critical_batch_size(curves):
    import matplotlib

    matplotlib.use("Agg")
    fig = ref.plot_batch_size_curves(curves)
    for ax in fig.axes:
        xs = [line.get_xdata()[0] for line in ax.get_lines() if line.get_color() == "red"]
        assert xs == [pytest.approx(curves["critical_batch_size"])]
    import matplotlib.pyplot as plt

    plt.close(fig)


# ================================================================================================== FLOPs
def _counted(model, inputs, *, backward=True):
    with FlopCounterMode(display=False) as counter:
        out = model(inputs)
        if backward:
            out.float().sum().backward()
    return counter.get_total_flops()


def WRONG_flops_per_token_2N(n_params):
    return 2 * n_params


def check_flops_per_token(flops_per_token):
    """Training FLOPs of wide Linear stacks (inputs that need gradients, as activations do inside a model):
    ``torch.utils.flop_counter`` counts ``6 W`` per token for ``W`` weights (forward ``2 W``; backward ``2 W``
    for the input gradients and ``2 W`` for the weight gradients). ``6 N`` also counts the biases, which are
    additions the counter ignores: ``N = W + biases``, 1.6 % more at width 64."""
    torch.manual_seed(0)
    for widths in [(64, 128, 64), (96, 96, 96, 96), (64, 256, 256, 64)]:
        stack = nn.Sequential(*[nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:], strict=True)])
        tokens = 37
        counted = _counted(stack, torch.randn(tokens, widths[0], requires_grad=True))
        weights = sum(m.weight.numel() for m in stack)
        n = sum(p.numel() for p in stack.parameters())
        assert counted == 6 * weights * tokens
        assert flops_per_token(n) * tokens == pytest.approx(counted, rel=0.02)


def test_flops_per_token_is_6N_against_flop_counter():
    assert ref.flops_per_token(1_000) == 6_000
    check_flops_per_token(ref.flops_per_token)


def test_flop_check_rejects_C_equals_2ND():
    with pytest.raises(AssertionError):
        check_flops_per_token(WRONG_flops_per_token_2N)


def test_first_layer_without_input_gradient():
    """A stack's first layer needs no input gradient when its input needs none (a data batch): the counter
    then has ``2 W_first`` per token less. Inside the real model the first linear maps read the embeddings,
    which need gradients, so every product is counted three times."""
    stack = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))
    counted = _counted(stack, torch.randn(11, 32))
    assert counted == (6 * (32 * 64 + 64 * 16) - 2 * 32 * 64) * 11
    assert ref.model_flops(stack, 11, seq_len=1) == 6 * (32 * 64 + 64 * 16) * 11


@pytest.fixture(scope="module")
def nmt():
    return pytest.importorskip("course_solutions.nmt")


@pytest.mark.parametrize("V,H,L,heads,T", [(30, 32, 1, 1, 20), (29, 16, 2, 3, 7), (30, 64, 2, 1, 23),
                                           (30, 24, 3, 2, 1)])
def test_model_flops_of_the_real_model(nmt, V, H, L, heads, T):
    """``model_flops`` equals ``torch.utils.flop_counter`` on a training step of the real decoder-only
    model, and so does the count from hyperparameters. The gap to ``6 N D`` is exactly: plus the
    attention products (``3 * 4 T H`` per head, layer and token, parameter-free), minus the embedding
    (``6 V H``: a lookup costs no FLOPs) and the biases (``6`` per bias: additions, not counted)."""
    torch.manual_seed(0)
    model = nmt.DecoderOnlyTransformer(V, H, L, heads)
    batch = 5
    tokens = batch * T
    counted = _counted(model, torch.randint(0, V, (batch, T)))
    assert ref.model_flops(model, tokens, T) == counted
    assert ref.decoder_flops_per_token(V, H, L, heads, T) * tokens == counted
    assert ref.model_flops(model, tokens, T, training=False) * 3 == counted
    n = nmt.calc_parameters_decoder(V, H, L, heads)
    assert n == sum(p.numel() for p in model.parameters())
    biases = sum(m.bias.numel() for m in model.modules() if isinstance(m, nn.Linear))
    attention = 3 * 4 * T * H * heads * L
    assert counted - ref.flops_per_token(n) * tokens == tokens * (attention - 6 * V * H - 6 * biases)


def test_forward_only_count(nmt):
    model = nmt.DecoderOnlyTransformer(30, 16, 2, 2)
    with torch.no_grad():
        counted = _counted(model, torch.randint(0, 30, (3, 9)), backward=False)
    assert ref.model_flops(model, 27, 9, training=False) == counted


# ================================================================================================== IsoFLOP
# A Chinchilla-form loss (Hoffmann et al. 2022's fitted constants): for C = 6 N D fixed, its minimum over N
# is at N_opt = G (C / 6)^(beta / (alpha + beta)), G = (alpha A / (beta B))^(1 / (alpha + beta)).
E_, A_, B_, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
EXPONENT = BETA / (ALPHA + BETA)
G = (ALPHA * A_ / (BETA * B_)) ** (1 / (ALPHA + BETA))
BUDGETS = [8e10 * 2 ** k for k in range(5)]  # the handout's 0.08 .. 1.28 TFLOPs


def _n_opt(c):
    return G * (c / 6) ** EXPONENT


def _chinchilla(n, c):
    return E_ + A_ / n ** ALPHA + B_ / (c / (6 * n)) ** BETA


def _profiles(noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for c in BUDGETS:
        n = _n_opt(c) * np.logspace(-0.5, 0.7, 7)  # seven models, not centred on the optimum
        out[c] = (n, _chinchilla(n, c) + rng.normal(0, noise, n.size))
    return out


def WRONG_fit_in_N(n_params, losses):
    coeffs = np.polyfit(np.asarray(n_params, float), losses, 2)
    return float(-coeffs[1] / (2 * coeffs[0])), coeffs


def WRONG_fit_best_point(n_params, losses):
    return float(np.asarray(n_params)[np.argmin(losses)]), None


def check_isoflop_minimum(fit):
    """Exact parabolas in log10 N are recovered exactly; noisy Chinchilla profiles within 5 %."""
    for n_star, c2 in [(3e5, 0.3), (2e7, 0.05)]:
        n = n_star * np.logspace(-0.8, 1.0, 7)
        n_opt, _ = fit(n, c2 * (np.log10(n) - np.log10(n_star)) ** 2 + 2.0)
        assert n_opt == pytest.approx(n_star, rel=1e-6)
    for c, (n, losses) in _profiles().items():
        assert fit(n, losses)[0] == pytest.approx(_n_opt(c), rel=0.05)


def test_fit_isoflop_minimum_recovers_known_optima():
    check_isoflop_minimum(ref.fit_isoflop_minimum)
    n = np.array([1e4, 1e5, 1e6])
    n_opt, coeffs = ref.fit_isoflop_minimum(n, 0.5 * (np.log10(n) - 5) ** 2 + 3)
    np.testing.assert_allclose(coeffs, [0.5, -5.0, 15.5], atol=1e-9)
    with pytest.raises(ValueError):
        ref.fit_isoflop_minimum(n, -((np.log10(n) - 5) ** 2))  # concave: no minimum


@pytest.mark.parametrize("wrong", [WRONG_fit_in_N, WRONG_fit_best_point])
def test_isoflop_check_rejects_wrong_fits(wrong):
    with pytest.raises(AssertionError):
        check_isoflop_minimum(wrong)


def test_fit_power_law_recovers_known_parameters():
    c = np.logspace(10, 14, 9)
    k, e = ref.fit_power_law(c, 0.8 * c ** 0.45)
    assert (k, e) == (pytest.approx(0.8, rel=1e-9), pytest.approx(0.45, rel=1e-12))
    rng = np.random.default_rng(1)
    noisy = 0.8 * c ** 0.45 * 10 ** rng.normal(0, 0.03, c.size)
    k, e = ref.fit_power_law(c, noisy)
    assert e == pytest.approx(0.45, abs=0.03)
    assert ref.predict_power_law(1e15, k, e) == pytest.approx(0.8 * 1e15 ** 0.45, rel=0.2)


def WRONG_analysis_d_from_largest_budget(profiles, predict_at=ref.HANDOUT_BUDGET):
    out = ref.isoflop_analysis(profiles, predict_at)
    return {**out, "d_opt_at": predict_at / (6 * out["n_opt"][-1])}


def WRONG_analysis_d_from_best_trained(profiles, predict_at=ref.HANDOUT_BUDGET):
    out = ref.isoflop_analysis(profiles, predict_at)
    n, losses = profiles[max(profiles)]
    return {**out, "d_opt_at": predict_at / (6 * n[np.argmin(losses)])}


def WRONG_analysis_2ND(profiles, predict_at=ref.HANDOUT_BUDGET):
    out = ref.isoflop_analysis(profiles, predict_at)
    return {**out, "d_opt_at": predict_at / (2 * out["n_opt_at"])}


def WRONG_analysis_fit_in_N(profiles, predict_at=ref.HANDOUT_BUDGET):
    n_opt = np.array([WRONG_fit_in_N(*profiles[c])[0] for c in sorted(profiles)])
    k, e = ref.fit_power_law(sorted(profiles), n_opt)
    n_at = k * predict_at ** e
    return {"exponent": e, "n_opt_at": n_at, "d_opt_at": predict_at / (6 * n_at)}


def check_predictions(analysis):
    """The scaling exponent within 0.02 and the predictions at 1e15 FLOPs within 10 % of the closed form."""
    out = analysis(_profiles())
    assert out["exponent"] == pytest.approx(EXPONENT, abs=0.02)
    assert out["n_opt_at"] == pytest.approx(_n_opt(1e15), rel=0.1)
    assert out["d_opt_at"] == pytest.approx(1e15 / (6 * _n_opt(1e15)), rel=0.1)


def test_isoflop_analysis_predicts_the_compute_optimal_model():
    check_predictions(ref.isoflop_analysis)
    out = ref.isoflop_analysis(_profiles())
    np.testing.assert_allclose(out["d_opt"], np.array(BUDGETS) / (6 * out["n_opt"]))
    assert out["d_opt_at"] == pytest.approx(1e15 / (6 * out["n_opt_at"]))
    assert ref.compute_optimal_tokens(6e12, 1e6) == pytest.approx(1e6)


@pytest.mark.parametrize("wrong", [WRONG_analysis_d_from_largest_budget, WRONG_analysis_d_from_best_trained,
                                   WRONG_analysis_2ND, WRONG_analysis_fit_in_N])
def test_prediction_check_rejects_wrong_versions(wrong):
    with pytest.raises(AssertionError):
        check_predictions(wrong)
