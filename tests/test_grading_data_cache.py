"""The grader's kernel reads this machine's course data cache, read-only, and the worker fills it first.

The sandbox gives the kernel its own ``$HOME``, where ``course_lib.data.cache_dir()`` would be an empty
folder: every submission would unpack its data from the mirror again and rebuild whatever a library
caches there (the local GPT-2 of ``course_lib.hf_models``). The kernel gets ``COURSE_DATA_CACHE`` set
to the grader's cache, which the sandbox binds read-only.
"""

from __future__ import annotations

import copy

import nbformat
import pandas as pd
import pytest
from conftest import make_toy_course

from course_lib.grading import worker
from course_lib.grading.examples import build_examples
from course_lib.grading.execute import host_data_cache
from course_lib.grading.sandbox import probe
from course_lib.grading.workspace import Workspace


def test_host_data_cache_names_the_cache_where_it_exists(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "cache"))
    assert host_data_cache() == ""  # not there: the kernel keeps its own
    (tmp_path / "cache").mkdir()
    assert host_data_cache() == str(tmp_path / "cache")


def test_prefetch_unpacks_only_mirror_files_missing_from_the_cache_once_per_process(monkeypatch):
    import course_lib.data
    import course_lib.notebook

    files = [("a", "in_mirror_only"), ("a", "in_both"), ("a", "in_cache_only"), ("a", "nowhere"), ("b", "broken")]
    table = pd.DataFrame([{"name": d, "file": f, "in_mirror": f in ("in_mirror_only", "in_both", "broken"),
                           "in_cache": f in ("in_both", "in_cache_only")} for d, f in files])
    fetched = []

    def fetch(name, key, progress=True):
        fetched.append((name, key))
        if key == "broken":
            raise course_lib.data.ChecksumError("bad copy", path="broken", expected="", actual="")

    monkeypatch.setattr(course_lib.notebook, "assignment_files", lambda name: list(files))
    monkeypatch.setattr(course_lib.data, "list_datasets", lambda: table)
    monkeypatch.setattr(course_lib.data, "fetch", fetch)
    monkeypatch.setattr(worker, "_PREFETCHED", set())
    assert worker.prefetch_data("demo") == ["b/broken"]  # a problem is the kernel's to report
    assert fetched == [("a", "in_mirror_only"), ("b", "broken")]  # nothing is downloaded
    assert worker.prefetch_data("demo") == [] and len(fetched) == 2  # once per process


READS_THE_CACHE = """from course_lib.data import cache_dir
def add(a, b):
    return a + b + int((cache_dir() / "probe.txt").read_text())"""
WRITES_THE_CACHE = """from course_lib.data import cache_dir
def add(a, b):
    (cache_dir() / "written.txt").write_text("x")
    return a + b"""


@pytest.mark.slow
def test_the_kernel_reads_the_graders_cache_and_cannot_write_it(tmp_path, monkeypatch):
    if probe() is not None:
        pytest.skip(f"no sandbox here ({probe()}): the kernel shares the grader's cache anyway")
    monkeypatch.delenv("COURSE_DATA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the grader's cache_dir(): xdg/course_lib
    cache = tmp_path / "xdg" / "course_lib"
    cache.mkdir(parents=True)
    (cache / "probe.txt").write_text("0")
    root = make_toy_course(tmp_path)
    monkeypatch.setenv("COURSE_ROOT", str(root))
    ws = Workspace(tmp_path / "grading", root=root)
    release = ws.release("toy")
    subs = tmp_path / "subs"
    build_examples("toy", subs, release_notebook=release, root=root)
    solution = nbformat.read(subs / "solution" / "toy.ipynb", as_version=4)
    index = next(i for i, c in enumerate(solution.cells) if "def add" in c.source)
    for sid, source in (("reads", READS_THE_CACHE), ("writes", WRITES_THE_CACHE)):
        nb = copy.deepcopy(solution)
        nb.cells[index].source = source
        (subs / sid).mkdir()
        nbformat.write(nb, subs / sid / "toy.ipynb")
    grades = ws.autograde("toy", subs, output=tmp_path / "out", progress=False, workers=1, log=lambda *a: None,
                          students=["solution", "reads", "writes"])
    auto = grades[grades.question.str.startswith("test_")].groupby("student_id").score.sum()
    assert auto["reads"] == auto["solution"] > 0  # the kernel found the file in the grader's cache
    assert auto["writes"] == 0  # and could not write there
    assert not (cache / "written.txt").exists()
