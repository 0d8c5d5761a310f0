"""The grading harness's old import path, for the modules that still use it.

The harness now lives in four modules whose names say their jobs: :mod:`.record` (``grade()``:
run, record, replay), :mod:`.forbid` (forbidden functions at run time), :mod:`.plain` (plain data)
and :mod:`.scan` (the static scan). Import from those; this module only re-exports the names
``replay`` and ``catch_rate`` still take from here, and goes once they import them directly.
"""

from __future__ import annotations

from .record import TestResult, _Replay, set_replay
from .scan import bound_names as _bound_names

__all__ = ["TestResult", "_Replay", "set_replay", "_bound_names"]
