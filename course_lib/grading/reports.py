"""The grading log and the tables of a graded assignment: grades, totals, a per-question summary.

Files in ``<workspace>/<assignment>/``:

- ``grading_log.csv``: one row per submission folder (status, seconds, message, and a key of the
  source and submission hashes for resuming): nothing is skipped silently;
- ``grades.csv``: one row per graded cell: student_id, safe_id, assignment, question, score, max_score;
- ``totals.csv``: one row per student: auto, manual, total, max, pending manual cells, status, message;

``student_id`` is the folder's name as the instructor knows it (``José García``); ``safe_id`` the id
nbgrader and the file names use (:func:`.submissions.safe_id`: the same for a plain ASCII name).
- ``summary.csv``: per question: points, mean, median, share of full marks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from .contract import NotebookSpec

# Statuses of a submission whose executed notebook was scored: "limit" is one that stopped at a
# limit (time, memory, processes, a dead kernel) and keeps the points of the cells that completed.
GRADED_STATUSES = ("ok", "limit")
GRADES_COLUMNS = ["student_id", "safe_id", "assignment", "question", "score", "max_score"]
LOG_COLUMNS = ["student_id", "safe_id", "status", "seconds", "message", "folder"]
# ``folder``: the submission folder's name; it differs from student_id when a roster maps the folder.
# grading_log.csv also keeps, per submission, a key (source and submission hashes) for resuming.
TOTALS_COLUMNS = ["student_id", "safe_id", "auto_score", "auto_max", "manual_score", "manual_max", "pending_manual", "total",
                  "max_total", "status", "message"]
SUMMARY_COLUMNS = ["question", "kind", "max_score", "students", "graded", "mean", "median", "share_full_marks"]


def write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


# ----------------------------------------------------------------------------- grading log
def read_log(path: Path) -> pd.DataFrame:
    """grading_log.csv as written: text stays text (a student id such as "NA" is not a missing value)."""
    df = pd.read_csv(path, dtype={"student_id": str, "safe_id": str, "status": str, "message": str, "key": str,
                                       "folder": str},
                     keep_default_na=False)
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    if "safe_id" not in df.columns:  # a log written before safe ids: every id was already safe
        df["safe_id"] = df["student_id"]
    if "key" not in df.columns:
        df["key"] = ""
    if "folder" not in df.columns:  # a log written before rosters: every folder was its student's id
        df["folder"] = df["student_id"]
    return df[LOG_COLUMNS + ["key"]]


def read_log_or_empty(path: Path) -> pd.DataFrame:
    return read_log(path) if path.exists() else pd.DataFrame(columns=LOG_COLUMNS)


def done_keys(path: Path) -> dict[str, str]:
    """``{student_id: key}`` of the submissions ``grading_log.csv`` at ``path`` holds."""
    if not path.exists():
        return {}
    df = read_log(path)
    return dict(zip(df["student_id"], df["key"], strict=True))


def log_row(student_id: str, status: str, message: str, seconds: float, key: str, safe_id: str = "",
            folder: str = "") -> pd.DataFrame:
    return pd.DataFrame([{"student_id": student_id, "safe_id": safe_id or student_id, "status": status,
                          "seconds": round(seconds, 2), "message": message, "folder": folder or student_id, "key": key}],
                        columns=LOG_COLUMNS + ["key"])


def merge_log(path: Path, new: pd.DataFrame) -> None:
    """Replace the rows of ``new``'s students in ``grading_log.csv`` (after every submission: a killed
    run resumes where it stopped)."""
    if path.exists():
        old = read_log(path)
        old = old[~old["student_id"].isin(new["student_id"])]
        new = pd.concat([old, new], ignore_index=True)
    write_csv(new.sort_values("student_id"), path)


# ----------------------------------------------------------------------------- tables
def totals_table(grades: pd.DataFrame, spec: NotebookSpec, log_df: pd.DataFrame) -> pd.DataFrame:
    auto_ids = {c.grade_id for c in spec.tests}
    rows = []
    status = dict(zip(log_df["student_id"], log_df["status"], strict=True)) if len(log_df) else {}
    message = dict(zip(log_df["student_id"], log_df["message"], strict=True)) if len(log_df) else {}
    for (sid, safe), g in grades.groupby(["student_id", "safe_id"], sort=True):
        is_auto = g["question"].isin(auto_ids)
        rows.append(
            {
                "student_id": sid,
                "safe_id": safe,
                "auto_score": float(g.loc[is_auto, "score"].fillna(0).sum()),
                "auto_max": float(g.loc[is_auto, "max_score"].sum()),
                "manual_score": float(g.loc[~is_auto, "score"].fillna(0).sum()),
                "manual_max": float(g.loc[~is_auto, "max_score"].sum()),
                "pending_manual": int(g.loc[~is_auto, "score"].isna().sum()),
                "total": float(g["score"].fillna(0).sum()),
                "max_total": float(g["max_score"].sum()),
                "status": status.get(sid, ""),
                "message": message.get(sid, ""),
            }
        )
    return pd.DataFrame(rows, columns=TOTALS_COLUMNS)


def summary_table(grades: pd.DataFrame, spec: NotebookSpec) -> pd.DataFrame:
    """Per question: points, mean, median, share of students with full marks, and how many wait for a human."""
    kinds = {c.grade_id: ("test" if c.kind == "test" else "written") for c in spec.graded()}
    rows = []
    for cell in spec.graded():
        g = grades[grades["question"] == cell.grade_id]
        scored = g["score"].dropna()
        rows.append({
            "question": cell.grade_id, "kind": kinds[cell.grade_id], "max_score": float(cell.points),
            "students": int(len(g)), "graded": int(len(scored)),
            "mean": round(float(scored.mean()), 3) if len(scored) else None,
            "median": float(scored.median()) if len(scored) else None,
            "share_full_marks": round(float((scored >= cell.points).mean()), 3) if len(scored) else None,
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_tables(out: Path, grades: pd.DataFrame, spec: NotebookSpec, log_df: pd.DataFrame) -> None:
    """grades.csv, totals.csv and summary.csv of one assignment, in ``out``."""
    write_csv(grades, out / "grades.csv")
    write_csv(totals_table(grades, spec, log_df), out / "totals.csv")
    write_csv(summary_table(grades, spec), out / "summary.csv")


def print_table(df: pd.DataFrame, file=None) -> None:
    with pd.option_context("display.max_rows", 500, "display.max_columns", 30, "display.width", 160):
        print(df.to_string(index=False), file=file or sys.stdout)
