"""Source notebooks: jupytext pairs in sync, the contract kept, releases that leak nothing."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import pytest

from course_lib.grading.contract import check_notebook
from course_lib.grading.course import list_assignments

from conftest import REPO

ASSIGNMENTS = list_assignments(REPO)


def test_there_are_assignments():
    assert "rnn_lm" in ASSIGNMENTS


def _cells(nb):
    return [(c.cell_type, c.source.strip(), json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True)) for c in nb.cells]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_ipynb_matches_its_jupytext_source(name):
    """Edit the .py (py:percent) source, then run `make notebooks`; this catches a forgotten step."""
    folder = REPO / "notebooks" / name
    py = folder / f"{name}.py"
    if not py.exists():
        pytest.skip(f"{name} has no jupytext source")
    from_py = jupytext.read(py)
    ipynb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    assert _cells(from_py) == _cells(ipynb), f"{name}.ipynb is out of date: run `make notebooks`"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_clean(name):
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.get("outputs"), "commit notebooks with outputs stripped"
    check_notebook(nb)
