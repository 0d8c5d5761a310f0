"""``course check``, step 4: the report as the fixed-width text the command prints.

:func:`format_report` takes ``Report.to_dict()`` (the same data ``--json`` prints) and lays it out:
the public checks by question, the written answers still blank, the other cells that raised, and
the warnings, then the summary line.
"""

from __future__ import annotations

import shutil
import textwrap

from .check_analysis import ANSWER_PLACEHOLDER, HIDDEN_NOTE, LABELS, NOT_ANSWERED, PASSED

__all__ = ["format_report"]


def _pts(x: float) -> str:
    return f"{x:g} pt" + ("" if x == 1 else "s")


def _truncate(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 3, 1)].rstrip() + "..."


def _wrap(text: str, width: int, first: str, rest: str, max_lines: int = 2) -> list[str]:
    """``text`` on at most ``max_lines`` lines of ``width`` (cut with "..." beyond)."""
    width = max(width, len(first) + 30)
    return textwrap.wrap(" ".join(str(text).split()), width, initial_indent=first, subsequent_indent=rest,
                         max_lines=max_lines, placeholder=" ...")


def format_report(data: dict, width: int | None = None) -> str:
    """The report (``Report.to_dict()``, or the ``--json`` output) as a fixed-width table."""
    width = width or max(72, min(shutil.get_terminal_size((100, 24)).columns, 140))
    tests, written = data["tests"], data["written"]
    lines = [f"course check: {data['notebook']}",
             f"ran top to bottom in a fresh kernel in {data['seconds']:g} s "
             f"({'fast mode, COURSE_FAST=1' if data['mode'] == 'fast' else 'full mode'}; "
             f"experiment cells {'run' if data['experiments'] == 'run' else 'skipped'})", ""]
    lines.append(f"Public checks ({len(tests)} test cells; not the grade: {HIDDEN_NOTE})")
    w_res = max([len(LABELS.get(t["status"], t["status"])) for t in tests] + [len("result")])
    w_pts = max([len(_pts(t["points"])) for t in tests] + [len("worth")])
    w_name = max([len(t["tests"]) for t in tests] + [len("tests")])
    w_id = max([len(t["test_id"]) for t in tests] + [len("test id")])
    row = f"  {{:<{w_res}}}  {{:<{w_pts}}}  {{:<{w_name}}}  {{}}"
    lines.append(row.format("result", "worth", "tests", "test id"))
    lines.append(row.format("-" * w_res, "-" * w_pts, "-" * w_name, "-" * w_id))
    current = None
    indent = " " * (2 + w_res + 2 + w_pts + 2)
    for t in tests:
        if t["question"] != current:
            current = t["question"]
            lines.append(f"  {_truncate(current or '(before the first heading)', width - 2)}")
        lines.append(row.format(LABELS.get(t["status"], t["status"]), _pts(t["points"]), t["tests"], t["test_id"]))
        if t["message"] and t["status"] not in (PASSED, NOT_ANSWERED):  # "not answered" says it all
            lines += _wrap(t["message"], width, indent + "-> ", indent + "   ")
    lines.append("")
    filled = sum(w["filled"] for w in written)
    lines.append(f"Written answers (graded by hand): {filled}/{len(written)} filled")
    blank = [w for w in written if not w["filled"]]
    if blank:
        w_gid = max(len(w["grade_id"]) for w in blank)
        w_p = max(len(_pts(w["points"])) for w in blank)
        lines.append(f"  still blank ({ANSWER_PLACEHOLDER}):")
        for w in blank:
            head = f"    {w['grade_id']:<{w_gid}}  {_pts(w['points']):<{w_p}}  "
            lines.append(head + _truncate(w["question"], max(width - len(head), 20)))
    if data.get("cell_errors"):
        lines += ["", "Other cells that raised an error (they can make later tests fail):"]
        for e in data["cell_errors"][:8]:
            where = f"{e['question'] or 'top of the notebook'}, the cell `{_truncate(e['first_line'], 40)}`"
            lines += _wrap(f"{where}: {e['error']}", width, "  ", "    ")
        if len(data["cell_errors"]) > 8:
            lines.append(f"  ... and {len(data['cell_errors']) - 8} more")
    if data.get("warnings"):
        lines += ["", "Warnings:"]
        for w in data["warnings"]:
            lines += textwrap.wrap(w, width, initial_indent="  ! ", subsequent_indent="    ")
    lines += ["", data["summary"]["line"]]
    return "\n".join(lines)
