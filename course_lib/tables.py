"""Result tables: sorted, best value in bold, as a pandas Styler (notebooks) or Markdown (reports).

>>> rows = [{"model": "RNN", "dev_ppl": 141.2, "params_M": 2.1}, {"model": "LSTM", "dev_ppl": 98.7, "params_M": 6.3}]
>>> results_table(rows, sort_by="dev_ppl")                     # LSTM first, 98.7 in bold
>>> print(to_markdown_table(results_table(rows, sort_by="dev_ppl")))
| model | dev_ppl    | params_M |
| :---- | ---------: | -------: |
| LSTM  | **98.700** |    6.300 |
| RNN   |    141.200 |    2.100 |
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["results_table", "to_markdown_table"]

_BOLD_CSS = "font-weight: bold"
_BOLD_ATTR = "_course_lib_bold"  # boolean DataFrame of bold cells, attached to the Styler


def _frame(rows) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    rows = list(rows)
    if not rows:
        raise ValueError("results_table needs at least one row.")
    return pd.DataFrame(rows)


def _bold_mask(df: pd.DataFrame, columns: list[str], *, maximise_by_default: bool, higher_is_better: set[str],
               group_by: list[str] | None = None) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    for column in columns:
        if column not in df.columns:
            raise KeyError(f"best_in_bold names {column!r}, which is not a column; columns: {list(df.columns)}.")
    if group_by:
        key = group_by[0] if len(group_by) == 1 else group_by
        groups = list(df.groupby(key, sort=False, observed=True, dropna=False).groups.values())
    else:
        groups = [df.index]
    for column in columns:
        maximise = column in higher_is_better or maximise_by_default
        for index in groups:
            values = pd.to_numeric(df.loc[index, column], errors="coerce")
            if values.notna().sum() == 0:
                continue
            best = values.max() if maximise else values.min()
            mask.loc[index, column] = (
                np.isclose(values.to_numpy(dtype=float), best, rtol=1e-12, atol=0.0) & values.notna().to_numpy()
            )
    return mask


def results_table(
    rows,
    *,
    sort_by: str | Sequence[str],
    ascending: bool | Sequence[bool] = True,
    best_in_bold: list[str] | None = None,
    higher_is_better: list[str] | None = None,
    precision: int = 3,
    caption: str | None = None,
    group_by: str | Sequence[str] | None = None,
):
    """A sorted results table with the best value of chosen columns in bold.

    Args:
        rows: a list of dicts (one per run/model) or a DataFrame.
        sort_by: the column to sort by (the best row comes first), or a list of columns sorted in turn
            (e.g. ``["architecture", "layers", "optimizer"]``; an ordered ``pd.Categorical`` column sorts
            in its categories' order). Ties keep the input order.
        ascending: True when lower is better for ``sort_by`` (loss, perplexity), False when higher is better;
            a list gives the direction of each ``sort_by`` column.
        best_in_bold: columns whose best value(s) are bold; default ``[sort_by]`` for a single sort column,
            none for a list; ``[]`` for none. Ties are all bold; NaN is ignored.
        higher_is_better: columns where the maximum is best. Any other bold column's best value follows
            ``ascending`` (the minimum when ascending=True, and always the minimum when ``ascending`` is a list).
        precision: decimals shown for floats.
        caption: a table caption.
        group_by: column(s) whose groups each get their own best value in bold (e.g. the best perplexity
            per architecture); default: one best value over the whole table.

    Returns:
        A :class:`pandas.io.formats.style.Styler` whose ``.data`` is the sorted DataFrame (index 0..n-1, hidden
        in the display). ``.to_html()`` renders the bold cells with ``font-weight: bold``;
        :func:`to_markdown_table` turns it into Markdown with ``**bold**``.
    """
    df = _frame(rows)
    sort_columns = [sort_by] if isinstance(sort_by, str) else list(sort_by)
    for column in sort_columns:
        if column not in df.columns:
            raise KeyError(f"sort_by={column!r} is not a column; columns: {list(df.columns)}.")
    if isinstance(ascending, bool):
        directions: bool | list[bool] = ascending
    else:
        directions = [bool(a) for a in ascending]
        if len(directions) != len(sort_columns):
            raise ValueError(f"ascending has {len(directions)} values for {len(sort_columns)} sort_by columns.")
    df = df.sort_values(sort_columns if len(sort_columns) > 1 else sort_columns[0], ascending=directions,
                        kind="mergesort", na_position="last").reset_index(drop=True)
    if best_in_bold is None:
        bold_columns = [sort_by] if isinstance(sort_by, str) else []
    else:
        bold_columns = list(best_in_bold)
    groups = None
    if group_by is not None:
        groups = [group_by] if isinstance(group_by, str) else list(group_by)
        for column in groups:
            if column not in df.columns:
                raise KeyError(f"group_by={column!r} is not a column; columns: {list(df.columns)}.")
    mask = _bold_mask(df, bold_columns, maximise_by_default=isinstance(ascending, bool) and not ascending,
                      higher_is_better=set(higher_is_better or ()), group_by=groups)
    css = pd.DataFrame(np.where(mask.to_numpy(), _BOLD_CSS, ""), index=df.index, columns=df.columns)

    styler = df.style.apply(lambda _: css, axis=None).format(precision=precision, na_rep="–").hide(axis="index")
    if caption:
        styler = styler.set_caption(caption)
    setattr(styler, _BOLD_ATTR, mask)
    return styler


def _cell(value, precision: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        text = str(bool(value))
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = f"{float(value):.{precision}f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def to_markdown_table(df, *, precision: int = 3, index: bool | None = None) -> str:
    """A GitHub-flavoured Markdown pipe table (no ``tabulate`` needed).

    Args:
        df: a DataFrame, or a Styler from :func:`results_table` (its bold cells become ``**value**``).
        precision: decimals for floats; integers are printed as they are, NaN as an empty cell.
        index: include the index as the first column; by default only when it is not a plain 0..n-1 range
            (never for a Styler).

    Returns:
        The table as a string ending in a newline: a header row, an alignment row (numbers right-aligned,
        text left-aligned) and one row per DataFrame row, padded to equal widths. ``|`` in cells is escaped.
    """
    bold = None
    if not isinstance(df, pd.DataFrame):
        data = getattr(df, "data", None)
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"to_markdown_table needs a DataFrame or a Styler, got {type(df).__name__}.")
        bold = getattr(df, _BOLD_ATTR, None)
        df = data
        index = bool(index)
    if index is None:
        index = not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1)

    headers = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    body = []
    for i, (label, row) in enumerate(df.iterrows()):
        cells = []
        for j, value in enumerate(row.tolist()):
            text = _cell(value, precision)
            if bold is not None and text and bool(bold.iat[i, j]):
                text = f"**{text}**"
            cells.append(text)
        if index:
            cells.insert(0, _cell(label, precision))
        body.append(cells)
    if index:
        headers.insert(0, str(df.index.name or ""))
        numeric.insert(0, pd.api.types.is_numeric_dtype(df.index))
    headers = [h.replace("|", "\\|") for h in headers]

    widths = [max([3, len(headers[j])] + [len(r[j]) for r in body]) for j in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if num else (":" + "-" * (w - 1)) for w, num in zip(widths, numeric, strict=True)) + " |"
    header = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    return "\n".join([header, rule, *(line(r) for r in body)]) + "\n"
