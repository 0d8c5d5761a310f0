"""Tests of the IsoFLOP runner (course_lib.runners.scaling_laws) at the fast scale, on the CPU.

The evaluation inside one run is compared with separate runs of nmt_pig_latin.train_decoder_only
stopped at the mark (the prefix property the runner relies on); the analysis with synthetic IsoFLOP
profiles whose optima follow a known power law, computed here with numpy; the conclusions with
synthetic points; the record round trip through JSON.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from course_lib import pig_latin
from course_lib.runners import nmt_pig_latin as nmt
from course_lib.runners import scaling_laws as sl
from course_solutions import nmt as ref


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_SCALE", raising=False)


def counting_loss():
    """The reference decoder_only_loss, counting its calls; every loss this makes has the same code."""
    calls = [0]

    def loss(logits, targets, loss_mask):
        calls[0] += 1
        return ref.decoder_only_loss(logits, targets, loss_mask)

    loss.count = lambda: calls[0]
    return loss


@pytest.fixture(scope="module")
def fast_result(tmp_path_factory):
    """The whole fast experiment, trained once, with the loss that trained it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DEVICE", "cpu")
        root = tmp_path_factory.mktemp("sl")
        loss = counting_loss()
        result = sl.run(scale="fast", log_dir=root, log=None, decoder_only_loss=loss)
    return result, loss, root


# --------------------------------------------------------------------------------------------------
# settings


def test_the_handout_budgets_and_seven_growing_models():
    assert sl.BUDGETS == (8e10, 1.6e11, 3.2e11, 6.4e11, 1.28e12)
    assert len(sl.SIZES) == 7
    sizes = [ref.calc_parameters_decoder(30, c.hidden_size, c.num_layers, c.num_heads) for c in sl.SIZES.values()]
    assert sizes == sorted(sizes) and sizes[-1] / sizes[0] > 20
    for scale in ("laptop", "full"):
        for name in sl.SIZES:
            c = sl.config_for(name, scale)
            assert c.scale == scale and c.budgets == sl.BUDGETS and (c.num_layers, c.num_heads) == (3, 1)
            # the optimisation and data of nmt_pig_latin's decoder-only runs at the handout's settings
            d = nmt.config_for(nmt.DECODER_ONLY_RUN, "full")
            assert (c.lr, c.lr_decay, c.batch_size, c.dataset) == (d.lr, d.lr_decay, d.batch_size, d.dataset)
            assert c.train_pairs is None and c.val_pairs is None
    fast = [sl.config_for(n, "fast") for n in sl.names_for("fast")]
    assert all(c.budgets == sl.FAST["budgets"] and c.train_pairs == sl.FAST["train_pairs"] for c in fast)
    with pytest.raises(ValueError, match="Unknown model"):
        sl.config_for("H1000", "laptop")
    with pytest.raises(ValueError, match="Unknown scale"):
        sl.config_for("H32", "huge")


def test_evaluation_marks_hold_the_budgets_on_a_geometric_grid():
    marks = sl.evaluation_marks(sl.BUDGETS, 2, 3)
    assert all(b in marks for b in sl.BUDGETS)  # exactly, not a float neighbour
    assert marks == sorted(marks) and marks[-1] == 1.28e12
    assert marks[0] == pytest.approx(8e10 / 8)
    ratios = np.diff(np.log2(marks))
    assert np.allclose(ratios, 0.5)
    assert len(marks) == 2 * 7 + 1
    assert sl.evaluation_marks([1e7, 4e7], 1, 0) == [1e7, 2e7, 4e7]


def test_section_2_3_setup_counts_parameters_positions_and_flops():
    setup = sl.section_2_3_setup()
    train, _ = pig_latin.split_pairs(pig_latin.load_pairs("large"))
    per_epoch = sum(len(s) + 1 + 1 + len(t) for s, t in train)  # <SOS> source <EOP> target: the inputs
    vocab = pig_latin.build_vocab(pig_latin.load_pairs("large"), eop=True)
    batches = nmt.make_batches(train, vocab, 64, decoder_only_example=ref.decoder_only_example)
    assert per_epoch == sum(b["inputs"].numel() for b in batches) == setup["positions_per_epoch"]
    n = ref.calc_parameters_decoder(30, 32, 3, 1)
    assert (setup["n_params"], setup["epochs"], setup["tokens"]) == (n, 100, 100 * per_epoch)
    assert setup["flops"] == pytest.approx(6 * n * 100 * per_epoch)


# --------------------------------------------------------------------------------------------------
# training: one run per model, evaluated at the marks


def test_an_evaluation_inside_the_run_equals_a_run_stopped_at_that_mark(fast_result):
    """The runner evaluates each model inside one run; a separate train_decoder_only run with
    max_tokens = the mark's positions must give the same model (the same validation loss)."""
    result, _, _ = fast_result
    run = result.runs["H8"]
    c = run.config
    train, val, vocab = sl._data(c)
    val_batches = nmt.make_batches(val, vocab, c.batch_size, decoder_only_example=ref.decoder_only_example)
    per_token = 6 * run.num_parameters
    pts = run.points
    for i in (3, len(pts) - 3, len(pts) - 1):  # a mark inside the first epoch, a middle budget, the last
        row = pts.iloc[i]
        model = nmt.build_decoder_only(c.hidden_size, c.num_layers, c.num_heads, seed=c.seed)
        history = nmt.train_decoder_only(model, train, val[:8], vocab, max_tokens=math.ceil(row["mark_flops"] / per_token),
                                         lr=c.lr, lr_decay=c.lr_decay, batch_size=c.batch_size, seed=c.seed)
        assert int(history["tokens_seen"].iloc[-1]) == row["tokens"]
        assert nmt.decoder_only_val_loss(model, val_batches) == pytest.approx(row["val_loss"], rel=1e-6, abs=1e-7)


def test_each_model_lands_on_its_budgets(fast_result):
    result, loss, _ = fast_result
    assert list(result.runs) == sl.names_for("fast")
    for run in result.runs.values():
        n = run.num_parameters
        assert n == sum(p.numel() for p in run.model.parameters())
        pts = run.points
        marks = sl.evaluation_marks(run.config.budgets)
        assert pts["mark_flops"].tolist() == pytest.approx(marks)
        assert pts["flops"].tolist() == pytest.approx((6 * n * pts["tokens"]).tolist())
        # evaluated after the batch that reaches the mark: at or past it, by less than one batch
        assert (pts["flops"] >= pts["mark_flops"] * (1 - 1e-12)).all()
        longest = max(len(s) + len(t) + 2 for s, t in sl._data(run.config)[0])
        assert ((pts["tokens"] - np.ceil(pts["mark_flops"] / (6 * n))) < run.config.batch_size * longest).all()
        at = run.at_budgets()
        assert at["budget"].tolist() == list(run.config.budgets)
        assert pts["val_loss"].between(0, 10).all() and pts["tokens"].is_monotonic_increasing
        assert int(run.history["tokens_seen"].iloc[-1]) == int(pts["tokens"].iloc[-1])
    # the loss function was called once per training batch of every model
    steps = sum(int(r.history["steps"].iloc[-1]) for r in result.runs.values())
    assert loss.count() == steps


def test_finished_models_are_read_back_and_changed_code_retrains(fast_result):
    result, _, root = fast_result
    loss = counting_loss()
    again = sl.run(scale="fast", log_dir=root, log=None, decoder_only_loss=loss, names=["H4", "H6"])
    assert loss.count() == 0
    for name in ("H4", "H6"):
        pd.testing.assert_frame_equal(again.runs[name].points, result.runs[name].points, check_dtype=False)
        assert again.runs[name].seconds == pytest.approx(result.runs[name].seconds)

    def other_loss(logits, targets, loss_mask):  # other code, the same computation
        return ref.decoder_only_loss(logits, targets, loss_mask) * 1.0

    retrained = sl.run_size("H4", scale="fast", log_dir=root / "fast" / "h4", log=None, decoder_only_loss=other_loss)
    assert retrained.points["val_loss"].tolist() == pytest.approx(result.runs["H4"].points["val_loss"].tolist())
    assert any(p.name.startswith("h4.replaced-") for p in (root / "fast").iterdir())


def test_the_passed_flops_per_token_sets_the_budgets(tmp_path):
    run = sl.run_size("H4", scale="fast", log_dir=tmp_path / "h4", log=None, flops_per_token=lambda n: 2 * n)
    n = run.num_parameters
    assert run.points["tokens"].iloc[-1] >= math.ceil(sl.FAST["budgets"][-1] / (2 * n))
    assert run.points["flops"].tolist() == pytest.approx((2 * n * run.points["tokens"]).tolist())


# --------------------------------------------------------------------------------------------------
# the analysis


def synthetic_profiles(k=0.015, a=0.55, curvature=0.4, budgets=sl.BUDGETS, sizes=None):
    """Profiles whose losses are exact parabolas in log10 N with vertex N* = k C^a."""
    sizes = sizes or [ref.calc_parameters_decoder(30, c.hidden_size, 3, 1) for c in sl.SIZES.values()]
    out = {}
    for c in budgets:
        vertex = math.log10(k * c ** a)
        out[c] = (sizes, [1.0 / math.log10(c) + curvature * (math.log10(n) - vertex) ** 2 for n in sizes])
    return out


def test_analyse_recovers_a_known_power_law():
    profiles = synthetic_profiles()
    a = sl.analyse(profiles)
    assert a["budgets"] == list(sl.BUDGETS) and not a["fit_errors"]
    assert a["n_opt"] == pytest.approx([0.015 * c ** 0.55 for c in sl.BUDGETS], rel=1e-6)
    assert (a["coefficient"], a["exponent"]) == pytest.approx((0.015, 0.55), rel=1e-6)
    assert a["n_opt_at"] == pytest.approx(0.015 * 1e15 ** 0.55, rel=1e-5)
    assert a["d_opt_at"] == pytest.approx(1e15 / (6 * 0.015 * 1e15 ** 0.55), rel=1e-5)
    assert a["tokens_per_parameter_at"] == pytest.approx(a["d_opt_at"] / a["n_opt_at"])
    assert a["d_opt"] == pytest.approx([c / (6 * n) for c, n in zip(sl.BUDGETS, a["n_opt"], strict=True)])
    assert a["d_exponent"] == pytest.approx(1 - 0.55, rel=1e-6)  # D_opt = C / (6 N_opt)
    # numpy, independently: the vertex of each profile's parabola
    for (ns, losses), n_opt in zip(profiles.values(), a["n_opt"], strict=True):
        c2, c1, _ = np.polyfit(np.log10(ns), losses, 2)
        assert n_opt == pytest.approx(10 ** (-c1 / (2 * c2)), rel=1e-9)


def test_analyse_uses_the_passed_functions_and_places_the_2_3_setup():
    profiles = synthetic_profiles()

    def wrong_tokens(c, n_opt):  # forgets the 6
        return c / n_opt

    def argmin_fit(ns, losses):  # the best measured size, not the parabola's vertex
        return float(ns[int(np.argmin(losses))]), np.array([1.0, 0.0, 0.0])

    right = sl.analyse(profiles)
    wrong = sl.analyse(profiles, compute_optimal_tokens=wrong_tokens)
    assert wrong["d_opt"] == pytest.approx([6 * d for d in right["d_opt"]])
    coarse = sl.analyse(profiles, fit_isoflop_minimum=argmin_fit)
    assert coarse["n_opt"] != pytest.approx(right["n_opt"])
    setup = {"n_params": 14_622, "tokens": 3.2e7, "flops": 6 * 14_622 * 3.2e7}
    placed = sl.analyse(profiles, setup=setup)["section_2_3"]
    n_c = 0.015 * setup["flops"] ** 0.55
    assert placed["n_opt"] == pytest.approx(n_c, rel=1e-5)
    assert placed["d_opt"] == pytest.approx(setup["flops"] / (6 * n_c), rel=1e-5)
    assert placed["n_ratio"] == pytest.approx(14_622 / n_c, rel=1e-5)
    assert placed["compute_optimal"] is bool(0.5 <= 14_622 / n_c <= 2)


def test_a_profile_without_a_minimum_is_left_out_of_the_power_law():
    profiles = synthetic_profiles()
    c0 = sl.BUDGETS[0]
    ns, losses = profiles[c0]
    profiles[c0] = (ns, [-v for v in losses])  # opens downwards
    a = sl.analyse(profiles)
    assert str(c0) in a["fit_errors"] and a["budgets"] == list(sl.BUDGETS[1:])
    assert a["exponent"] == pytest.approx(0.55, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# conclusions, tables, plots, record


def synthetic_points(profiles, overshoot=0.01):
    rows = []
    for c, (ns, losses) in profiles.items():
        for i, (n, loss) in enumerate(zip(ns, losses, strict=True)):
            rows.append({"name": f"M{i}", "hidden_size": 8 * (i + 1), "n_params": n, "budget": c, "mark_flops": c,
                         "tokens": c * (1 + overshoot) / (6 * n), "flops": c * (1 + overshoot), "val_loss": loss})
            rows.append({"name": f"M{i}", "hidden_size": 8 * (i + 1), "n_params": n, "budget": math.nan,
                         "mark_flops": c * 0.7, "tokens": c * 0.7 / (6 * n), "flops": c * 0.7, "val_loss": loss + 0.1})
    return pd.DataFrame(rows)


def result_from(points, analysis):
    runs = {}
    for name, g in points.groupby("name", sort=False):
        n = int(g["n_params"].iloc[0])
        cfg = sl.Config(name, int(g["hidden_size"].iloc[0]))
        runs[name] = sl.SizeRun(cfg, g.drop(columns=["name", "hidden_size", "n_params"]).sort_values("mark_flops")
                                .reset_index(drop=True), pd.DataFrame(), n, 1.0, 1.0, 0.1)
    return sl.ScalingResult("laptop", runs, analysis)


def test_conclusions_hold_for_interior_minima_and_fail_otherwise():
    profiles = synthetic_profiles()
    good = result_from(synthetic_points(profiles), sl.analyse(profiles))
    out = sl.conclusions(good)
    assert all(out["checks"].values()), out["checks"]
    assert out["exponent"] == pytest.approx(0.55) and out["budget_overshoot"] == pytest.approx(0.01)
    assert out["vs_chinchilla"] == pytest.approx(out["tokens_per_parameter_at"] / 20)
    for p in out["profiles"].values():
        assert p["interior_minimum"]
    # the optima beyond the largest model: no interior minimum at any budget
    far = synthetic_profiles(k=1.0)
    bad = sl.conclusions(result_from(synthetic_points(far, overshoot=0.2), sl.analyse(far)))
    assert not bad["checks"]["every profile has an interior minimum"]
    assert not bad["checks"]["a larger model is not always better"]
    assert not bad["checks"]["the budgets are met"]
    # a shrinking optimum: a negative exponent
    shrinking = synthetic_profiles(k=3e5, a=-0.1)
    worse = sl.conclusions(result_from(synthetic_points(shrinking), sl.analyse(shrinking)))
    assert not worse["checks"]["the optimum grows with the budget"]
    assert not worse["checks"]["the exponent is plausible"]


def test_tables_and_plots(fast_result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = synthetic_profiles()
    res = result_from(synthetic_points(profiles), sl.analyse(profiles))
    table = sl.profiles_table(res)
    assert table.shape == (7, 5) and list(table.index.get_level_values("n_params")) == sorted(profiles[8e10][0])
    assert table.iloc[2, 0] == pytest.approx(profiles[8e10][1][2])
    best = sl.results_table(res)
    assert list(best.index) == list(sl.BUDGETS)
    assert best["N_opt (fit)"].tolist() == pytest.approx(res.analysis["n_opt"])
    fig = sl.plot_loss_vs_flops(res)
    assert len(fig.axes[0].lines) >= 7
    fig2 = sl.plot_isoflop_profiles(res)
    assert len(fig2.axes[0].lines) == 3 * 5  # points, parabola, minimum per budget
    fig3 = sl.plot_compute_optimal(res)
    assert len(fig3.axes) == 2
    # the fast experiment (no minima): the plots and tables still work
    result, _, _ = fast_result
    sl.plot_isoflop_profiles(result)
    sl.plot_compute_optimal(result)
    assert sl.profiles_table(result).shape == (4, 3)
    plt.close("all")


def test_record_round_trip_and_conclusions_from_the_record(fast_result, tmp_path):
    result, _, _ = fast_result
    path = tmp_path / "rec.json"
    sl.record(result, path, wall_seconds=12.0, cpu_seconds=6.0)
    data = json.loads(path.read_text())
    assert data["assignment"] == "scaling_laws" and data["scale"] == "fast"
    assert list(data["runs"]) == sl.names_for("fast") and data["command_cpu_minutes"] == pytest.approx(0.1)
    assert sl.conclusions(data)["checks"] == data["conclusions"]["checks"]
    for name, r in data["runs"].items():
        assert [p["val_loss"] for p in r["points"]] == pytest.approx(result.runs[name].points["val_loss"].tolist())
    assert data["analysis"]["section_2_3"]["n_params"] == ref.calc_parameters_decoder(30, 32, 3, 1)


def test_command_line_list_and_fast_run(tmp_path, capsys):
    assert sl.main(["--list", "--scale", "laptop"]) is None
    out = capsys.readouterr().out
    assert out.count("Config(") == 7 and "1.28e+12" in out
    result = sl.main(["--run", "H4", "--run", "H6", "--run", "H8", "--fast", "--no-progress",
                      "--log-dir", str(tmp_path), "--record", str(tmp_path / "r.json")])
    assert list(result.runs) == ["H4", "H6", "H8"]
    assert json.loads((tmp_path / "r.json").read_text())["runs"].keys() == {"H4", "H6", "H8"}
    assert torch.get_num_threads() >= 1
