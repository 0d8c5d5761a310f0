"""What the first cell of every notebook runs: data, device, seed.

>>> from course_lib.notebook import setup_notebook
>>> device = setup_notebook("rnn_lm", seed=282)
device: cpu (16 threads, x86_64), torch 2.13.0
scale: laptop (fast: seconds, for checks; laptop: every experiment on a 2-core CPU in under an hour; full: the handout's settings, for a GPU)
  fast mode (COURSE_FAST=1): False; to change the scale, set COURSE_SCALE=fast|laptop|full before starting Jupyter,
  or run os.environ["COURSE_SCALE"] = "full" (say) before this cell
data: tinyshakespeare/input.txt (/home/me/.cache/course_lib/tinyshakespeare/input.txt)

The datasets of each assignment are listed in the data registry (``data/registry.json``, shipped
with the package), under ``"assignments"``: ``{"rnn_lm": {"datasets": ["tinyshakespeare/input.txt"]}}``.
An entry is ``"<dataset>/<file key>"`` or a dataset name alone (all its files). They are fetched with
:func:`course_lib.data.fetch` (mirror, then cache, then download), so a second run downloads nothing.
"""

from __future__ import annotations

import sys
import warnings

import torch

from .data import DataError, fetch, registry
from .device import describe_device, get_device, scale, seed_everything

__all__ = ["setup_notebook", "assignment_files", "on_colab"]


def on_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def assignment_files(assignment: str) -> list[tuple[str, str]]:
    """``(dataset, file key)`` pairs the assignment uses, from the registry's ``"assignments"``.

    Raises KeyError for an assignment the registry does not list (every assignment has an entry,
    ``{"datasets": []}`` when it needs no data).
    """
    reg = registry()
    entries = reg.get("assignments", {})
    if assignment not in entries:
        raise KeyError(f"the data registry lists no assignment {assignment!r} (known: {', '.join(sorted(entries))})")
    out: list[tuple[str, str]] = []
    for item in entries[assignment].get("datasets", []):
        name, _, key = str(item).partition("/")
        files = reg["datasets"].get(name, {}).get("files", {})
        if name not in reg["datasets"] or (key and key not in files):
            raise KeyError(f"assignment {assignment!r} names {item!r}, which the data registry does not have")
        out += [(name, key)] if key else [(name, k) for k in files]
    return out


def setup_notebook(assignment: str, *, seed: int | None = 0, progress: bool = True) -> torch.device:
    """Prepare a notebook: pick the device, seed everything, fetch the assignment's data.

    Prints the device, the experiment scale (:func:`course_lib.device.scale`) and how to change it,
    and where each dataset file is. A dataset that
    cannot be fetched (no network, no mirror) is a warning, not an error: the autograded parts of a
    notebook do not need it, and the training cells that do raise the full error themselves.

    Args:
        assignment: the assignment's name (``"rnn_lm"``).
        seed: passed to :func:`course_lib.device.seed_everything`; None does not seed.
        progress: show download progress bars.

    Returns:
        The :class:`torch.device` to use (:func:`course_lib.device.get_device`: cuda, mps, cpu).
    """
    device = get_device()
    if seed is not None:
        seed_everything(seed)
    print(f"device: {describe_device(device)}")
    if device.type == "cpu" and on_colab():
        print("  (no GPU: for the training sections choose Runtime -> Change runtime type -> GPU, then run again)")
    level = scale()
    print(f"scale: {level} (fast: seconds, for checks; laptop: every experiment on a 2-core CPU in under an hour; "
          "full: the handout's settings, for a GPU)")
    print(f"  fast mode (COURSE_FAST=1): {level == 'fast'}; to change the scale, set COURSE_SCALE=fast|laptop|full "
          "before starting Jupyter,\n  or run os.environ[\"COURSE_SCALE\"] = \"full\" (say) before this cell")
    try:
        files = assignment_files(assignment)
    except KeyError as exc:
        warnings.warn(f"{exc.args[0]}; no data fetched (an older course_lib?)", RuntimeWarning, stacklevel=2)
        files = []
    for name, key in files:
        try:
            path = fetch(name, key, progress=progress)
        except DataError as exc:
            warnings.warn(f"could not fetch {name}/{key}; the cells that train on it will fail.\n{exc}",
                          RuntimeWarning, stacklevel=2)
        else:
            print(f"data: {name}/{key} ({path})")
    return device
