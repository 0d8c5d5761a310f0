"""Tests for course_lib.plot and course_lib.tables (Agg backend, no display)."""

from __future__ import annotations

import io
import math
import re

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from course_lib.plot import BEST_MARKER_GID, plot_histories, plot_history  # noqa: E402
from course_lib.tables import results_table, to_markdown_table  # noqa: E402


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
    for p, t in zip(probs, [0.5, 1, 4]):
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
