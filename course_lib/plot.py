"""Loss and perplexity curves for language-model training runs.

A *history* is a DataFrame with one row per epoch and the columns (extra columns are ignored)

=============  ==========================================================
``epoch``      1, 2, ... (if absent, the row number + 1 is used)
``train_loss``  mean cross-entropy on the training set, nats per token
``dev_loss``    the same on the development (validation) set
``train_ppl``   training perplexity, ``exp(train_loss)`` (computed if absent)
``dev_ppl``     development perplexity, ``exp(dev_loss)`` (computed if absent)
=============  ==========================================================

>>> fig = plot_history(history, title="2-layer LSTM on PTB")
>>> fig = plot_histories({"RNN": h_rnn, "LSTM": h_lstm}, metric="dev_ppl")

Both return a :class:`matplotlib.figure.Figure` created with pyplot. In Jupyter it shows exactly once,
whether the call is the cell's last expression, assigned (``fig = plot_history(...)``) or inside a block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_histories", "plot_temperature", "BEST_MARKER_GID", "CourseFigure"]

#: ``gid`` of the artists that mark the best development epoch (useful in tests).
BEST_MARKER_GID = "best-dev-epoch"

_LABELS = {
    "loss": "cross-entropy loss (nats/token)",
    "ppl": "perplexity (log scale)",
}


class CourseFigure(Figure):
    """A pyplot Figure that Jupyter's inline backend shows once, not twice.

    With ``%matplotlib inline``, a pyplot figure returned as a cell's last expression is shown as the
    cell's result *and* again when the backend flushes open figures at the end of the cell. Displaying a
    CourseFigure closes it in pyplot first (``plt.close(fig)``: the object stays usable, ``fig.savefig``
    works) and then renders it with IPython's usual Figure formatters (so retina/svg settings apply).
    """

    def _ipython_display_(self):
        import matplotlib
        import matplotlib.pyplot as plt
        from IPython.display import display

        manager = getattr(self.canvas, "manager", None)
        if "inline" in matplotlib.get_backend() and manager is not None and plt.fignum_exists(manager.num):
            plt.close(self)  # the end-of-cell flush would show it again
        cls = self.__class__
        self.__class__ = Figure  # render with the formatters registered for Figure, without coming back here
        try:
            display(self)
        finally:
            self.__class__ = cls


def _as_frame(history) -> pd.DataFrame:
    if isinstance(history, pd.DataFrame):
        df = history.copy()
    else:
        df = pd.DataFrame(history)
    if df.empty:
        raise ValueError("The history is empty: it needs one row per epoch.")
    if "epoch" not in df.columns:
        df["epoch"] = np.arange(1, len(df) + 1)
    for split in ("train", "dev"):
        loss, ppl = f"{split}_loss", f"{split}_ppl"
        if ppl not in df.columns and loss in df.columns:
            df[ppl] = np.exp(df[loss].astype(float))
    if not any(c in df.columns for c in ("train_loss", "dev_loss", "train_ppl", "dev_ppl")):
        raise ValueError(
            "The history needs some of the columns train_loss, dev_loss, train_ppl, dev_ppl "
            f"(one row per epoch); it has {list(df.columns)}."
        )
    return df


def _best_row(df: pd.DataFrame, column: str, *, lower_is_better: bool = True):
    values = pd.to_numeric(df[column], errors="coerce")
    if values.notna().sum() == 0:
        return None
    return values.idxmin() if lower_is_better else values.idxmax()


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_history(history: pd.DataFrame, *, title: str | None = None, ax=None):
    """Plot one training run: loss (left) and perplexity on a log axis (right), train vs dev.

    Args:
        history: one row per epoch with ``epoch, train_loss, dev_loss, train_ppl, dev_ppl`` (loss in nats per
            token; any may be missing except that at least one loss or perplexity column is needed; missing
            perplexities are computed as ``exp(loss)``). A list of dicts is accepted too.
        title: figure title (suptitle).
        ax: None for a new 1x2 figure; a pair of Axes ``(loss_ax, ppl_ax)`` to draw into; or a single Axes,
            which then gets only the perplexity panel.

    Returns:
        The :class:`matplotlib.figure.Figure`. The epoch with the lowest ``dev_loss`` (or ``dev_ppl``) is marked
        in every panel by a dotted vertical line and a star (artists with ``gid == BEST_MARKER_GID``), and named
        in the legend.
    """
    import matplotlib.pyplot as plt

    df = _as_frame(history)
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True, FigureClass=CourseFigure)
        panels = list(zip(axes, ("loss", "ppl")))
    elif isinstance(ax, (Sequence, np.ndarray)):
        axes = list(np.ravel(ax))
        if len(axes) != 2:
            raise ValueError(f"ax must be one Axes or a pair (loss_ax, ppl_ax); got {len(axes)} Axes.")
        fig = axes[0].figure
        panels = list(zip(axes, ("loss", "ppl")))
    else:
        fig = ax.figure
        panels = [(ax, "ppl")]

    best_col = "dev_loss" if "dev_loss" in df.columns else ("dev_ppl" if "dev_ppl" in df.columns else None)
    best = _best_row(df, best_col) if best_col else None
    epochs = df["epoch"].to_numpy()

    for axis, kind in panels:
        for split, style in (("train", dict(color="tab:blue", linestyle="-")), ("dev", dict(color="tab:orange", linestyle="-"))):
            column = f"{split}_{kind}"
            if column in df.columns:
                axis.plot(epochs, df[column].astype(float).to_numpy(), marker="o", markersize=3, label=split, **style)
        if best is not None and f"dev_{kind}" in df.columns:
            x = df.loc[best, "epoch"]
            y = float(df.loc[best, f"dev_{kind}"])
            value = f"{y:.2f}" if kind == "ppl" else f"{y:.3f}"
            axis.axvline(x, color="gray", linestyle=":", linewidth=1, gid=BEST_MARKER_GID)
            axis.scatter(
                [x], [y], marker="*", s=160, color="tab:red", zorder=5, gid=BEST_MARKER_GID,
                label=f"best dev: epoch {x:g}, {'ppl' if kind == 'ppl' else 'loss'} {value}",
            )
        if kind == "ppl":
            axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_ylabel(_LABELS[kind])
        axis.set_title("perplexity" if kind == "ppl" else "loss")
        _integer_epochs(axis)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_histories(
    histories: Mapping[str, pd.DataFrame],
    metric: str = "dev_ppl",
    *,
    title: str | None = None,
    ax=None,
    lower_is_better: bool | None = None,
):
    """Compare runs: one line per run for ``metric`` against epoch, each run's best epoch starred.

    Args:
        histories: ``{run label: history DataFrame}`` (see :func:`plot_history` for the columns).
        metric: the column to compare, e.g. ``"dev_ppl"`` (default; log y axis), ``"dev_loss"``, ``"train_ppl"``.
            A missing ``*_ppl`` column is computed from the matching ``*_loss``.
        title: axes title (default: the metric).
        ax: an Axes to draw into, or None for a new figure.
        lower_is_better: whether the best epoch minimises the metric; by default True unless the metric name
            contains "acc", "bleu", "f1" or "score".

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("histories is empty: pass {run label: history DataFrame}.")
    if lower_is_better is None:
        lower_is_better = not any(word in metric.lower() for word in ("acc", "bleu", "f1", "score"))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True, FigureClass=CourseFigure)
    else:
        fig = ax.figure
    for label, history in histories.items():
        df = _as_frame(history)
        if metric not in df.columns:
            raise ValueError(f"Run {label!r} has no column {metric!r}; it has {list(df.columns)}.")
        (line,) = ax.plot(df["epoch"].to_numpy(), df[metric].astype(float).to_numpy(), marker="o", markersize=3, label=str(label))
        best = _best_row(df, metric, lower_is_better=lower_is_better)
        if best is not None:
            ax.scatter(
                [df.loc[best, "epoch"]], [float(df.loc[best, metric])], marker="*", s=140,
                color=line.get_color(), zorder=5, gid=BEST_MARKER_GID,
            )
    if metric.endswith("ppl"):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    kind = "ppl" if metric.endswith("ppl") else ("loss" if metric.endswith("loss") else None)
    ax.set_ylabel(f"{metric.split('_')[0]} {_LABELS[kind]}" if kind else metric)
    ax.set_title(title or f"{metric} by epoch (star: best epoch of each run)")
    _integer_epochs(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def plot_temperature(logits, labels: Sequence[str], temperatures: Sequence[float] = (0.5, 1.0, 2.0), *,
                     title: str | None = None):
    """Bar charts of ``softmax(logits / T)`` for each temperature ``T``: how sampling sharpens or flattens.

    Args:
        logits: (V,) scores of the next token (a sequence of numbers or a 1-D tensor/array).
        labels: V token names, one per score.
        temperatures: positive temperatures, one panel each.

    Returns:
        The figure; each panel's bars (gid ``"probabilities"``) sum to 1, and its title gives the
        temperature and the entropy of the distribution in bits.
    """
    import matplotlib.pyplot as plt

    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if len(labels) != len(z):
        raise ValueError(f"got {len(z)} logits but {len(labels)} labels")
    temps = [float(t) for t in temperatures]
    if not temps or min(temps) <= 0:
        raise ValueError(f"temperatures must be positive, got {list(temperatures)}")
    fig, axes = plt.subplots(1, len(temps), figsize=(3.6 * len(temps), 3.2), sharey=True,
                             constrained_layout=True, FigureClass=CourseFigure, squeeze=False)
    for ax, t in zip(axes[0], temps):
        scaled = z / t
        p = np.exp(scaled - scaled.max())
        p /= p.sum()
        entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
        ax.bar(range(len(p)), p, color="tab:blue", gid="probabilities")
        ax.set_xticks(range(len(p)), labels)
        ax.set_title(f"T = {t:g}  (entropy {entropy:.2f} bits)")
        ax.set_xlabel("next token")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title)
    return fig
