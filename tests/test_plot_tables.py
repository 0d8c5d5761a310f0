"""Tests for course_lib.plot and course_lib.tables (Agg backend, no display)."""

from __future__ import annotations

import io
import math
import re

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from course_lib.plot import BEST_MARKER_GID, CAPTION_GID, plot_histories, plot_history, plot_runs
from course_lib.tables import results_table, to_markdown_table


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def history(dev_loss=(5.0, 4.6, 4.4, 4.5, 4.7), train_start=5.2, extra=True) -> pd.DataFrame:
    n = len(dev_loss)
    train = np.linspace(train_start, 3.8, n)
    df = pd.DataFrame({"epoch": np.arange(1, n + 1), "train_loss": train, "dev_loss": list(dev_loss)})
    df["train_ppl"] = np.exp(df["train_loss"])
    df["dev_ppl"] = np.exp(df["dev_loss"])
    if extra:
        df["lr"] = 1e-3  # extra columns are ignored
    return df


def best_markers(ax):
    return [a for a in ax.get_children() if a.get_gid() == BEST_MARKER_GID]


# ---------------------------------------------------------------------------------------------------
# plot_history


def test_plot_history_two_labelled_panels():
    fig = plot_history(history(), title="LSTM on PTB")
    assert isinstance(fig, matplotlib.figure.Figure)
    loss_ax, ppl_ax = fig.axes
    assert loss_ax.get_xlabel() == ppl_ax.get_xlabel() == "epoch"
    assert "loss" in loss_ax.get_ylabel() and "nats" in loss_ax.get_ylabel()
    assert "perplexity" in ppl_ax.get_ylabel()
    assert loss_ax.get_yscale() == "linear" and ppl_ax.get_yscale() == "log"
    assert fig._suptitle.get_text() == "LSTM on PTB"
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:2] == ["train", "dev"]
        assert any(label.startswith("best dev: epoch 3") for label in labels)
    fig.savefig(io.BytesIO(), format="png")  # renders under Agg


def test_plot_history_marks_the_best_dev_epoch():
    h = history(dev_loss=(5.0, 4.2, 4.4, 4.1, 4.3))
    fig = plot_history(h)
    loss_ax, ppl_ax = fig.axes
    for ax, column in ((loss_ax, "dev_loss"), (ppl_ax, "dev_ppl")):
        markers = best_markers(ax)
        assert len(markers) == 2  # vertical line + star
        line = next(m for m in markers if isinstance(m, matplotlib.lines.Line2D))
        assert list(line.get_xdata()) == [4, 4]
        star = next(m for m in markers if isinstance(m, matplotlib.collections.PathCollection))
        assert np.allclose(star.get_offsets(), [[4, h.loc[3, column]]])
    ppl_label = [t.get_text() for t in ppl_ax.get_legend().get_texts()][-1]
    assert ppl_label == f"best dev: epoch 4, ppl {math.exp(4.1):.2f}"


def test_plot_history_computes_missing_perplexity_and_epoch():
    h = pd.DataFrame({"train_loss": [3.0, 2.0], "dev_loss": [3.5, 2.5]})
    fig = plot_history(h)
    ppl_ax = fig.axes[1]
    dev_line = [line for line in ppl_ax.get_lines() if line.get_label() == "dev"][0]
    assert np.allclose(dev_line.get_ydata(), np.exp([3.5, 2.5]))
    assert list(dev_line.get_xdata()) == [1, 2]


def test_plot_history_train_only_has_no_best_marker():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5]})
    fig = plot_history(h)
    assert all(best_markers(ax) == [] for ax in fig.axes)


def test_plot_history_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert plot_history(history(), ax=axes) is fig
    assert axes[1].get_yscale() == "log"
    fig2, ax = plt.subplots()
    assert plot_history(history(), ax=ax) is fig2
    assert ax.get_yscale() == "log" and "perplexity" in ax.get_ylabel()


def test_plot_history_rejects_useless_input():
    with pytest.raises(ValueError, match="train_loss, dev_loss"):
        plot_history(pd.DataFrame({"epoch": [1, 2], "acc": [0.1, 0.2]}))
    with pytest.raises(ValueError, match="empty"):
        plot_history(pd.DataFrame())


# ---------------------------------------------------------------------------------------------------
# plot_histories


def test_plot_histories_compares_runs():
    runs = {"RNN": history(dev_loss=(5.0, 4.8, 4.7)), "LSTM": history(dev_loss=(4.9, 4.5, 4.6))}
    fig = plot_histories(runs)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["RNN", "LSTM"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" and "perplexity" in ax.get_ylabel()
    stars = best_markers(ax)
    assert len(stars) == 2
    assert np.allclose(stars[1].get_offsets(), [[2, math.exp(4.5)]])
    fig.savefig(io.BytesIO(), format="png")


def test_plot_histories_loss_metric_and_errors():
    runs = {"a": history(), "b": pd.DataFrame({"dev_loss": [4.0, 3.9]})}
    fig = plot_histories(runs, metric="dev_loss")
    assert fig.axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="Run 'b' has no column 'dev_acc'"):
        plot_histories({"b": pd.DataFrame({"dev_loss": [4.0]})}, metric="dev_acc")
    with pytest.raises(ValueError, match="empty"):
        plot_histories({})


# ---------------------------------------------------------------------------------------------------
# results_table


ROWS = [
    {"model": "RNN", "dev_ppl": 141.25, "test_ppl": 135.0, "params_M": 2.1},
    {"model": "LSTM", "dev_ppl": 98.7, "test_ppl": 94.3, "params_M": 6.3},
    {"model": "GRU", "dev_ppl": 104.0, "test_ppl": 99.9, "params_M": 4.8},
    {"model": "Transformer", "dev_ppl": float("nan"), "test_ppl": 90.1, "params_M": 8.0},
]


def bold_cells(styler) -> set[tuple[int, int]]:
    """(row, col) of the cells that the rendered HTML makes bold."""
    html = styler.to_html()
    cells = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", html.split("</style>")[0]):
        if "font-weight: bold" in body:
            cells |= {(int(r), int(c)) for r, c in re.findall(r"_row(\d+)_col(\d+)", selectors)}
    return cells


def test_results_table_sorts_best_first_and_bolds_best():
    styler = results_table(ROWS, sort_by="dev_ppl")
    df = styler.data
    assert list(df["model"]) == ["LSTM", "GRU", "RNN", "Transformer"]  # NaN last
    assert list(df.index) == [0, 1, 2, 3]
    assert bold_cells(styler) == {(0, 1)}  # LSTM's dev_ppl
    html = styler.to_html()
    assert "98.700" in html and "141.250" in html  # precision 3


def test_results_table_bold_several_columns_and_directions():
    styler = results_table(ROWS, sort_by="dev_ppl", best_in_bold=["dev_ppl", "test_ppl", "params_M"],
                           higher_is_better=["params_M"])
    df = styler.data
    col = {name: i for i, name in enumerate(df.columns)}
    assert bold_cells(styler) == {
        (0, col["dev_ppl"]),  # LSTM
        (3, col["test_ppl"]),  # Transformer, 90.1
        (3, col["params_M"]),  # the largest
    }


def test_results_table_descending_and_ties():
    rows = [{"run": "a", "acc": 0.91}, {"run": "b", "acc": 0.95}, {"run": "c", "acc": 0.95}]
    styler = results_table(rows, sort_by="acc", ascending=False, caption="accuracy")
    assert list(styler.data["run"]) == ["b", "c", "a"]  # stable: b before c
    assert bold_cells(styler) == {(0, 1), (1, 1)}
    assert "accuracy" in styler.to_html()
    assert bold_cells(results_table(rows, sort_by="acc", best_in_bold=[])) == set()


def test_results_table_accepts_dataframe_and_checks_columns():
    df = pd.DataFrame(ROWS)
    styler = results_table(df, sort_by="test_ppl")
    assert styler.data["model"].iloc[0] == "Transformer"
    assert list(df["model"]) == [r["model"] for r in ROWS]  # input not modified
    with pytest.raises(KeyError, match="dev_loss"):
        results_table(ROWS, sort_by="dev_loss")
    with pytest.raises(KeyError, match="bleu"):
        results_table(ROWS, sort_by="dev_ppl", best_in_bold=["bleu"])


def test_results_table_sorts_by_several_columns_in_category_order():
    rows = pd.DataFrame({
        "arch": ["GPT", "LSTM", "GPT", "LSTM", "LSTM"],
        "layers": [1, 2, 1, 1, 1],
        "opt": ["SGD", "AdamW", "Adam", "SGD", "Adam"],
        "ppl": [1500.0, 139.6, 146.9, 2173.8, 146.3],
    })
    rows["arch"] = pd.Categorical(rows["arch"], categories=["LSTM", "GPT"], ordered=True)
    rows["opt"] = pd.Categorical(rows["opt"], categories=["Adam", "AdamW", "SGD"], ordered=True)
    styler = results_table(rows, sort_by=["arch", "layers", "opt"])
    df = styler.data
    assert list(zip(df["arch"], df["layers"], df["opt"], strict=True)) == [
        ("LSTM", 1, "Adam"), ("LSTM", 1, "SGD"), ("LSTM", 2, "AdamW"), ("GPT", 1, "Adam"), ("GPT", 1, "SGD")]
    assert bold_cells(styler) == set()  # a list of sort columns bolds nothing by default
    desc = results_table(rows, sort_by=["arch", "ppl"], ascending=[True, False]).data
    assert list(desc["ppl"]) == [2173.8, 146.3, 139.6, 1500.0, 146.9]
    with pytest.raises(ValueError, match="ascending"):
        results_table(rows, sort_by=["arch", "ppl"], ascending=[True])
    with pytest.raises(KeyError, match="nope"):
        results_table(rows, sort_by=["arch", "nope"])


def test_results_table_bolds_the_best_of_each_group():
    rows = [
        {"arch": "LSTM", "opt": "Adam", "ppl": 146.3, "tok_s": 10.0},
        {"arch": "LSTM", "opt": "AdamW", "ppl": 139.6, "tok_s": 12.0},
        {"arch": "GPT", "opt": "Adam", "ppl": 146.9, "tok_s": 30.0},
        {"arch": "GPT", "opt": "SGD", "ppl": 1497.8, "tok_s": 30.0},
        {"arch": "RNN", "opt": "SGD", "ppl": float("nan"), "tok_s": 5.0},
    ]
    styler = results_table(rows, sort_by="ppl", best_in_bold=["ppl", "tok_s"], higher_is_better=["tok_s"],
                           group_by="arch")
    df = styler.data
    col = {name: i for i, name in enumerate(df.columns)}
    best = {(df.loc[r, "arch"], df.columns[c]) for r, c in bold_cells(styler)}
    assert best == {("LSTM", "ppl"), ("GPT", "ppl"), ("LSTM", "tok_s"), ("GPT", "tok_s"), ("RNN", "tok_s")}
    gpt_ties = [r for r, c in bold_cells(styler) if c == col["tok_s"] and df.loc[r, "arch"] == "GPT"]
    assert len(gpt_ties) == 2  # ties within a group are all bold
    md = to_markdown_table(styler, precision=1)
    assert "**139.6**" in md and "**146.9**" in md and "**146.3**" not in md
    two_keys = results_table(rows, sort_by="ppl", group_by=["arch", "opt"])
    assert len(bold_cells(two_keys)) == 4  # every (arch, opt) group has one row; NaN never bold
    with pytest.raises(KeyError, match="family"):
        results_table(rows, sort_by="ppl", group_by="family")


# ---------------------------------------------------------------------------------------------------
# plot_runs


def run_history(valid, seconds=30.0, names=("train_ppl", "valid_ppl")):
    valid = np.asarray(valid, dtype=float)
    df = pd.DataFrame({"epoch": np.arange(1, len(valid) + 1), names[0]: valid * 0.8, names[1]: valid})
    df["epoch_seconds"] = seconds
    return df


def test_plot_runs_against_epochs():
    runs = {"LSTM": run_history([300, 200, 150, 160]), "GPT": run_history([330, 170, 150, 149])}
    fig = plot_runs(runs, x="epoch", caption="Figure 1: learning curves.", title="Problem 3")
    train_ax, valid_ax = fig.axes
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["LSTM", "GPT"]
    assert train_ax.get_ylabel() == "training perplexity (log scale)"
    assert valid_ax.get_ylabel() == "validation perplexity (log scale)"
    assert "vs epoch" in valid_ax.get_title()
    stars = best_markers(valid_ax)
    assert sorted(int(s.get_offsets()[0][0]) for s in stars) == [3, 4] and not best_markers(train_ax)
    np.testing.assert_allclose(valid_ax.get_lines()[0].get_ydata(), [300, 200, 150, 160])
    caption = [t for t in fig.texts if t.get_gid() == CAPTION_GID]
    assert [t.get_text() for t in caption] == ["Figure 1: learning curves."]
    assert fig._suptitle.get_text() == "Problem 3"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # the caption is inside the saved image


def test_plot_runs_against_wall_clock_time_units_and_aliases():
    runs = {"a": run_history([10, 8], seconds=120.0), "b": run_history([12, 9], seconds=100.0, names=("train_ppl", "dev_ppl"))}
    fig = plot_runs(runs, x="seconds", splits=("valid",))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "wall-clock time (min)"  # 240 s -> minutes
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [2.0, 4.0])  # cumulative
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [12, 9])  # dev_ppl is the validation split
    cumulative = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "wall_clock_seconds": [5.0, 9.0]})
    fig = plot_runs({"c": cumulative}, x="both", splits=("train",))
    top, bottom = fig.axes
    assert top.get_xlabel() == "epoch" and bottom.get_xlabel() == "wall-clock time (s)"
    np.testing.assert_allclose(bottom.get_lines()[0].get_xdata(), [5.0, 9.0])
    np.testing.assert_allclose(top.get_lines()[0].get_ydata(), np.exp([2.0, 1.0]))
    fig, axes = plt.subplots(1, 2)
    assert plot_runs(runs, axes=axes) is fig


def test_plot_runs_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        plot_runs({})
    with pytest.raises(ValueError, match="x must be"):
        plot_runs({"a": run_history([3, 2])}, x="steps")
    with pytest.raises(ValueError, match="splits"):
        plot_runs({"a": run_history([3, 2])}, splits=("test",))
    with pytest.raises(ValueError, match="wall_clock_seconds"):
        plot_runs({"a": pd.DataFrame({"train_ppl": [3.0, 2.0]})}, x="seconds", splits=("train",))
    with pytest.raises(ValueError, match="valid_ppl"):
        plot_runs({"a": pd.DataFrame({"train_ppl": [3.0, 2.0]})})
    with pytest.raises(ValueError, match="4 Axes"):
        plot_runs({"a": run_history([3, 2])}, x="both", axes=plt.subplots(1, 2)[1])


def test_plot_history_accepts_valid_as_the_dev_split():
    df = run_history([300, 200, 250])
    df["train_loss"], df["valid_loss"] = np.log(df["train_ppl"]), np.log(df["valid_ppl"])
    fig = plot_history(df)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == ["train", "dev"]
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]  # the perplexity panel
    assert labels[:2] == ["train", "dev"] and labels[2].startswith("best dev: epoch 2")


# ---------------------------------------------------------------------------------------------------
# to_markdown_table


def test_to_markdown_table_dataframe():
    df = pd.DataFrame({"model": ["LSTM", "a|b"], "dev_ppl": [98.7, float("nan")], "layers": [2, 10]})
    assert to_markdown_table(df) == (
        "| model | dev_ppl | layers |\n"
        "| :---- | ------: | -----: |\n"
        "| LSTM  |  98.700 |      2 |\n"
        "| a\\|b  |         |     10 |\n"
    )


def test_to_markdown_table_from_styler_keeps_bold():
    md = to_markdown_table(results_table(ROWS[:2], sort_by="dev_ppl"), precision=1)
    lines = md.splitlines()
    assert lines[0].split("|")[1].strip() == "model"
    assert "**98.7**" in lines[2] and "LSTM" in lines[2]
    assert "**" not in lines[3]
    assert len({len(line) for line in lines}) == 1  # columns padded to equal widths


def test_to_markdown_table_index():
    df = pd.DataFrame({"ppl": [1.5]}, index=pd.Index(["lstm"], name="model"))
    assert to_markdown_table(df) == "| model | ppl   |\n| :---- | ----: |\n| lstm  | 1.500 |\n"
    assert to_markdown_table(df, index=False).startswith("| ppl   |")


# ---------------------------------------------------------------------------------------------------
# shown once in Jupyter


@pytest.mark.parametrize("backend,closed", [("module://matplotlib_inline.backend_inline", True), ("agg", False)])
def test_figure_displays_once_under_the_inline_backend(monkeypatch, backend, closed):
    ipython_display = pytest.importorskip("IPython.display")
    shown = []
    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: shown.append(type(obj)))
    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    fig = plot_history(history())
    number = fig.canvas.manager.num
    assert plt.fignum_exists(number)
    fig._ipython_display_()  # what Jupyter calls for the cell's result, or on display(fig)
    assert shown == [matplotlib.figure.Figure]  # rendered by the plain Figure formatters
    assert type(fig).__name__ == "CourseFigure"  # class restored
    assert plt.fignum_exists(number) is not closed  # closed in pyplot: the end-of-cell flush won't repeat it
    fig.savefig(io.BytesIO(), format="png")  # still usable


def test_plot_temperature_sharpens_and_flattens():
    from course_lib.plot import plot_temperature

    logits = [2.0, 1.0, 0.0, -1.0]
    fig = plot_temperature(logits, list("abcd"), temperatures=[0.5, 1, 4])
    axes = fig.axes
    assert len(axes) == 3
    probs = [[bar.get_height() for bar in ax.patches if bar.get_gid() == "probabilities"] for ax in axes]
    for p, t in zip(probs, [0.5, 1, 4], strict=True):
        expected = np.exp(np.array(logits) / t) / np.exp(np.array(logits) / t).sum()
        np.testing.assert_allclose(p, expected, rtol=1e-9)
    assert probs[0][0] > probs[1][0] > probs[2][0]  # a low temperature favours the top token
    assert [t.get_text() for t in axes[0].get_xticklabels()] == list("abcd")
    assert "T = 0.5" in axes[0].get_title() and "bits" in axes[0].get_title()
    with pytest.raises(ValueError, match="labels"):
        plot_temperature(logits, ["a"])
    with pytest.raises(ValueError, match="positive"):
        plot_temperature(logits, list("abcd"), temperatures=[0])
    plt.close("all")
