"""Loss and perplexity curves for language-model training runs.

A *history* is a DataFrame with one row per epoch and the columns (extra columns are ignored)

=============  ==========================================================
``epoch``      1, 2, ... (if absent, the row number + 1 is used)
``train_loss``  mean cross-entropy on the training set, nats per token
``dev_loss``    the same on the development (validation) set
``train_ppl``   training perplexity, ``exp(train_loss)`` (computed if absent)
``dev_ppl``     development perplexity, ``exp(dev_loss)`` (computed if absent)
=============  ==========================================================

``valid_loss`` / ``valid_ppl`` are accepted as other names of ``dev_loss`` / ``dev_ppl``.

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

__all__ = ["plot_history", "plot_histories", "plot_runs", "plot_temperature", "BEST_MARKER_GID", "CourseFigure",
           "CAPTION_GID"]

#: ``gid`` of the artists that mark the best development epoch (useful in tests).
BEST_MARKER_GID = "best-dev-epoch"
#: ``gid`` of a figure's caption text (:func:`plot_runs`).
CAPTION_GID = "caption"

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
    for kind in ("loss", "ppl"):  # "valid" is another name for the development split
        if f"dev_{kind}" not in df.columns and f"valid_{kind}" in df.columns:
            df[f"dev_{kind}"] = df[f"valid_{kind}"]
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
        panels = list(zip(axes, ("loss", "ppl"), strict=True))
    elif isinstance(ax, (Sequence, np.ndarray)):
        axes = list(np.ravel(ax))
        if len(axes) != 2:
            raise ValueError(f"ax must be one Axes or a pair (loss_ax, ppl_ax); got {len(axes)} Axes.")
        fig = axes[0].figure
        panels = list(zip(axes, ("loss", "ppl"), strict=True))
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


_X_AXES = {"epoch": "epoch", "seconds": "wall-clock time"}


def _wall_clock(df: pd.DataFrame) -> np.ndarray:
    """Cumulative seconds at the end of each epoch: ``wall_clock_seconds``, else the running sum of
    ``epoch_seconds`` or ``seconds``."""
    if "wall_clock_seconds" in df.columns:
        return df["wall_clock_seconds"].astype(float).to_numpy()
    for column in ("epoch_seconds", "seconds"):
        if column in df.columns:
            return df[column].astype(float).cumsum().to_numpy()
    raise ValueError(
        "x='seconds' needs a column wall_clock_seconds (cumulative), epoch_seconds or seconds; "
        f"the history has {list(df.columns)}."
    )


def _time_unit(max_seconds: float) -> tuple[float, str]:
    if max_seconds >= 3 * 3600:
        return 3600.0, "h"
    if max_seconds >= 180:
        return 60.0, "min"
    return 1.0, "s"


def plot_runs(
    histories: Mapping[str, pd.DataFrame],
    *,
    x: str = "epoch",
    splits: Sequence[str] = ("train", "valid"),
    title: str | None = None,
    caption: str | None = None,
    axes=None,
):
    """Learning curves of several runs: perplexity (log scale) against epochs or wall-clock time.

    Args:
        histories: ``{run label: history}``, one row per epoch with ``train_ppl`` and ``valid_ppl`` (or
            ``dev_ppl``, or the matching ``*_loss``, from which the perplexity is computed); for wall-clock
            time also ``wall_clock_seconds`` (cumulative) or ``epoch_seconds`` / ``seconds`` per epoch.
        x: ``"epoch"``, ``"seconds"`` (cumulative wall-clock time; shown in s, min or h) or ``"both"``
            (one row of panels for each).
        splits: the panels of a row, ``"train"`` and/or ``"valid"`` (``"dev"`` is the same split).
        title: the figure's title (suptitle).
        caption: an explanatory caption written under the panels (a text artist with
            ``gid == CAPTION_GID``; it is inside the saved image with ``bbox_inches="tight"``, which
            Jupyter uses).
        axes: Axes to draw into, one per panel (rows for ``x``, columns for ``splits``), or None.

    Returns:
        The figure. Every panel has a log-scale y axis, labelled axes, a title, a legend with one entry
        per run, and on validation panels a star (gid ``BEST_MARKER_GID``) at each run's lowest perplexity.
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("histories is empty: pass {run label: history DataFrame}.")
    xs = ["epoch", "seconds"] if x == "both" else [x]
    for kind in xs:
        if kind not in _X_AXES:
            raise ValueError(f"x must be 'epoch', 'seconds' or 'both', got {x!r}")
    splits = ["dev" if s in ("dev", "valid", "validation") else s for s in splits]
    for split in splits:
        if split not in ("train", "dev"):
            raise ValueError(f"splits must be 'train' and/or 'valid', got {split!r}")
    frames = {label: _as_frame(h) for label, h in histories.items()}
    n_rows, n_cols = len(xs), len(splits)
    if axes is None:
        fig, grid = plt.subplots(n_rows, n_cols, figsize=(6.2 * n_cols, 4.3 * n_rows), squeeze=False,
                                 constrained_layout=True, FigureClass=CourseFigure)
    else:
        flat = list(np.ravel(axes))
        if len(flat) != n_rows * n_cols:
            raise ValueError(f"axes must hold {n_rows * n_cols} Axes ({n_rows} x {n_cols}), got {len(flat)}")
        grid = np.array(flat, dtype=object).reshape(n_rows, n_cols)
        fig = flat[0].figure
    colors = plt.get_cmap("tab20" if len(frames) > 10 else "tab10").colors
    if x == "both" or "seconds" in xs:
        max_seconds = max(float(np.nanmax(_wall_clock(df))) for df in frames.values())
        scale, unit = _time_unit(max_seconds)
    for row, kind in enumerate(xs):
        for col, split in enumerate(splits):
            ax = grid[row][col]
            column = f"{split}_ppl"
            for i, (label, df) in enumerate(frames.items()):
                if column not in df.columns:
                    wanted = "train_ppl (or train_loss)" if split == "train" else "valid_ppl or dev_ppl (or a *_loss)"
                    raise ValueError(f"Run {label!r} has no {wanted}; it has {list(df.columns)}.")
                xv = df["epoch"].to_numpy() if kind == "epoch" else _wall_clock(df) / scale
                yv = df[column].astype(float).to_numpy()
                color = colors[i % len(colors)]
                ax.plot(xv, yv, marker="o", markersize=3, color=color, label=str(label))
                if split == "dev":
                    best = _best_row(df, column)
                    if best is not None:
                        j = df.index.get_loc(best)
                        ax.scatter([xv[j]], [yv[j]], marker="*", s=120, color=color, zorder=5, gid=BEST_MARKER_GID)
            name = "training" if split == "train" else "validation"
            ax.set_yscale("log")
            ax.set_xlabel("epoch" if kind == "epoch" else f"wall-clock time ({unit})")
            ax.set_ylabel(f"{name} perplexity (log scale)")
            ax.set_title(f"{name} perplexity vs {_X_AXES[kind]}")
            if kind == "epoch":
                _integer_epochs(ax)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small", ncol=2 if len(frames) > 6 else 1)
    if title:
        fig.suptitle(title)
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", wrap=True, fontsize="small", gid=CAPTION_GID)
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
    for ax, t in zip(axes[0], temps, strict=True):
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
