"""Autograding on a Dask distributed cluster: same scores, same log, same resume as local workers."""

from __future__ import annotations

import sys
import time

import pandas as pd
import pytest
from conftest import make_toy_course

from course_lib.grading import cli
from course_lib.grading.backends import DaskCluster, LocalPool, dask_client
from course_lib.grading.errors import GradingError
from course_lib.grading.examples import build_examples
from course_lib.grading.reports import read_log
from course_lib.grading.worker import GradingJob
from course_lib.grading.workspace import Workspace

distributed = pytest.importorskip("distributed")

EXPECTED = {"solution": 3, "blank": 0, "wrong_sign": 0, "wrong_float": 1}


@pytest.fixture(scope="module")
def cluster():
    """A real two-process cluster on this machine (its workers share our filesystem)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def _auto(grades, sid):
    g = grades[(grades.student_id == sid) & grades.question.str.startswith("test_")]
    return float(g.score.sum())


def _toy(tmp_path):
    root = make_toy_course(tmp_path)
    ws = Workspace(tmp_path / "grading", root=root)
    release_nb = ws.release("toy")
    subs = tmp_path / "subs"
    expected = {ex.student_id: s for ex, s in build_examples("toy", subs, release_notebook=release_nb, root=root)}
    return ws, subs, expected


def test_autograde_on_a_dask_scheduler_scores_logs_and_resumes(tmp_path, cluster):
    ws, subs, expected = _toy(tmp_path)
    assert expected == EXPECTED
    (subs / "corrupt").mkdir()
    (subs / "corrupt" / "toy.ipynb").write_text("{not json")  # never sent to the cluster, still recorded
    out = tmp_path / "out"
    messages = []
    grades = ws.autograde("toy", subs, output=out, progress=False, dask_scheduler=cluster.scheduler_address,
                          log=messages.append)
    log = read_log(out / "grading_log.csv")
    for sid, score in EXPECTED.items():
        assert _auto(grades, sid) == score, (sid, log.to_dict("records"))
    assert _auto(grades, "corrupt") == 0
    assert set(grades.student_id) == {*EXPECTED, "corrupt"} and len(grades) == 3 * 5
    assert sorted(log.student_id) == sorted([*EXPECTED, "corrupt"])  # one row per submission
    status = dict(zip(log.student_id, log.status, strict=True))
    assert status == {**{sid: "ok" for sid in EXPECTED}, "corrupt": "corrupt"}
    assert not any(p.name != "gradebook.base.db" for p in (ws.workdir / "scratch").iterdir())  # cleaned up

    # A re-run grades nothing again: it does not even need the cluster (the resume logic is shared
    # with local workers; tests/test_grading.py checks that an interrupted run grades the rest).
    again = []
    regraded = ws.autograde("toy", subs, output=out, progress=False, dask_scheduler="tcp://127.0.0.1:1",
                            dask_timeout=1, log=again.append)
    assert any("5 submission(s) already graded and unchanged" in m for m in again)
    pd.testing.assert_frame_equal(read_log(out / "grading_log.csv"), log)
    pd.testing.assert_frame_equal(regraded, grades)


def _ghost(tmp_path) -> GradingJob:
    """A job whose workspace does not exist: the worker raises FileNotFoundError."""
    return GradingJob(str(tmp_path / "ws"), "toy", "ghost", str(tmp_path / "ghost.ipynb"), {"cell_timeout": 5.0})


def test_a_task_that_fails_on_a_worker_becomes_an_error_record(tmp_path, cluster):
    job = _ghost(tmp_path)
    with distributed.Client(cluster, set_as_default=False) as client:
        with dask_client(client) as c:  # a caller's Client is used as is and left open
            assert c is client
            got = list(DaskCluster(c, log=lambda *a: None).map([job]))
        assert client.status == "running"
    [(done, res)] = got
    assert done == job and res["status"] == "error"
    assert res["message"].startswith("the grading worker failed: FileNotFoundError")


def test_a_local_worker_that_fails_becomes_an_error_record_too(tmp_path):
    job = _ghost(tmp_path)
    [(done, res)] = list(LocalPool(2).map([job]))
    assert done == job and res["status"] == "error"
    assert res["message"].startswith("the grading worker failed: FileNotFoundError")


def test_workers_that_cannot_see_the_files_are_refused_before_grading(tmp_path, cluster):
    with dask_client(cluster) as client:  # a cluster object: we connect, and close our Client after
        backend = DaskCluster(client, shared=[str(tmp_path / "elsewhere")], log=lambda *a: None)
        with pytest.raises(GradingError, match="cannot see the grading files"):
            next(backend.map([_ghost(tmp_path)]))


def test_an_unreachable_scheduler_is_a_clear_error_quickly(tmp_path, capsys, monkeypatch):
    ws, subs, _ = _toy(tmp_path)
    monkeypatch.setenv("COURSE_ROOT", str(ws.root))
    t0 = time.perf_counter()
    with pytest.raises(GradingError, match=r"Could not reach the Dask scheduler at tcp://127\.0\.0\.1:1 within 1 s"):
        ws.autograde("toy", subs, output=tmp_path / "out", progress=False, dask_scheduler="tcp://127.0.0.1:1",
                     dask_timeout=1, log=lambda *a: None)
    assert time.perf_counter() - t0 < 15
    # nothing that needed the cluster was marked as graded: a later run grades it
    log_path = tmp_path / "out" / "grading_log.csv"
    assert not log_path.exists() or "solution" not in set(read_log(log_path).student_id)
    code = cli.main(["--workdir", str(ws.workdir), "autograde", "toy", str(subs), "--no-progress", "--workers", "3",
                     "--dask-scheduler", "tcp://127.0.0.1:1", "--dask-timeout", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--workers is ignored with --dask-scheduler" in err
    assert "Could not reach the Dask scheduler at tcp://127.0.0.1:1" in err


def test_a_missing_distributed_package_says_what_to_install(toy_course, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    ws = Workspace(tmp_path / "grading", root=toy_course)
    (tmp_path / "subs").mkdir()
    with pytest.raises(GradingError, match=r"pip install 'course-lib\[grading\]'"):
        ws.autograde("toy", tmp_path / "subs", progress=False, dask_scheduler="tcp://127.0.0.1:8786")
