"""Instructor material: the reference solutions of every graded function and the recorded reference runs.

Never part of the student distribution (``course publish`` leaves it out, and
``tests/test_student_distribution.py`` proves it). The runners' command lines use these reference
models by default; the notebooks pass the student's own.

- ``course_solutions.layers``: reference implementations of the graded models and functions.
- ``course_solutions/recorded/``: recorded reference runs (JSON), which check the written answers' rubrics:
  ``<assignment>.json`` at the full scale (the handout's settings, meant for a GPU) and
  ``<assignment>-laptop.json`` at the laptop scale (:func:`course_lib.device.scale`; every experiment on a
  2-core CPU in under an hour). A laptop record holds every run's history, timings, memory, the scale's
  settings, the total minutes and the conclusions the written questions rely on, each with whether it
  holds; ``tests/test_recorded.py`` recomputes them from the histories. The runners' ``--help`` says how
  to record each file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["RECORDED", "RecordedError", "load_recorded", "recorded_path"]

#: Where the recorded reference runs live: ``recorded/<assignment>.json`` (full scale) and
#: ``recorded/<assignment>-<scale>.json`` for the other scales.
RECORDED = Path(__file__).resolve().parent / "recorded"


class RecordedError(RuntimeError):
    """A recorded reference run is missing or unreadable; the message says how to make it."""


def recorded_path(assignment: str, scale: str = "full") -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]*", assignment or "") or scale not in ("full", "laptop", "fast"):
        raise RecordedError(f"Invalid assignment name {assignment!r} or scale {scale!r}.")
    return RECORDED / (f"{assignment}.json" if scale == "full" else f"{assignment}-{scale}.json")


def load_recorded(assignment: str, scale: str = "full") -> dict:
    """The recorded reference run of ``assignment`` at ``scale`` as a dict.

    Raises:
        RecordedError: the file does not exist (the message says how to create it) or is not valid JSON.
    """
    path = recorded_path(assignment, scale)
    if not path.is_file():
        available = sorted(p.stem for p in RECORDED.glob("*.json")) if RECORDED.is_dir() else []
        raise RecordedError(
            f"No recorded {scale} run for {assignment!r}: {path} does not exist. Create it with the assignment's "
            f"runner from the repository root (`python -m course_lib.runners.{assignment} --help` says how to "
            f"record). Recorded so far: {', '.join(available) or 'none'}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecordedError(f"{path} is not valid JSON ({err}). Re-run the runner to record it again.") from None
