"""`make lab` / `course lab`: the student's JupyterLab (loopback only, token required, work never overwritten)."""

from __future__ import annotations

import os
import types
import urllib.error
import urllib.request

import nbformat
import pytest

from course_lib.grading import cli
from course_lib.grading.errors import GradingError
from course_lib.grading.lab import lab_command, lab_env, prepare_lab_folder, running_lab
from course_lib.grading.workspace import Workspace


def test_lab_command_is_loopback_only_with_a_token(tmp_path):
    cmd = lab_command(tmp_path, 8888, "s3cret")
    assert "--ServerApp.ip=127.0.0.1" in cmd
    assert "--IdentityProvider.token=s3cret" in cmd
    assert "--ServerApp.port_retries=0" in cmd  # never silently another port
    assert not any(a.startswith("--ServerApp.ip=0") or "allow_remote_access=True" in a for a in cmd)
    with pytest.raises(GradingError, match="token"):
        lab_command(tmp_path, 8888, "")


def test_plots_show_inline_even_when_make_sets_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert lab_env()["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
    monkeypatch.setenv("MPLBACKEND", "module://my.backend")
    assert lab_env()["MPLBACKEND"] == "module://my.backend"


def test_students_do_not_get_nbgrader_instructor_tools(monkeypatch):
    import json

    from course_lib.grading.lab import STUDENT_CONFIG

    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/my/config")
    paths = lab_env()["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert paths == [str(STUDENT_CONFIG), "/my/config"]  # first, and the user's own config kept
    disabled = json.loads((STUDENT_CONFIG / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert disabled["@jupyter/nbgrader:create-assignment"] and disabled["@jupyter/nbgrader:formgrader"]
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    assert "JUPYTER_CONFIG_PATH" not in lab_env(student=False) or lab_env(student=False)["JUPYTER_CONFIG_PATH"] == "/my/config"


def test_lab_folder_copies_the_release_once_and_keeps_the_students_work(toy_course, tmp_path):
    ws = Workspace(tmp_path / "ws")
    folder = tmp_path / "lab"
    [(name, nb_path, new)] = prepare_lab_folder(ws, ["toy"], folder)
    assert (name, new) == ("toy", True) and nb_path == folder / "toy" / "toy.ipynb"
    text = nb_path.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "NotImplementedError" in text
    assert (folder / "toy" / "notes.md").is_file() and not (folder / "toy" / "toy.py").exists()

    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[2].source = "def add(a, b):\n    return a + b  # my answer"
    nbformat.write(nb, nb_path)
    [(_, _, new)] = prepare_lab_folder(ws, ["toy"], folder)
    assert new is False
    assert "my answer" in nb_path.read_text()


def test_course_lab_prints_where_the_work_is(toy_course, tmp_path, monkeypatch, capsys):
    """`course lab` with the server start replaced: it copies the release and prints a tokenised URL."""
    started = {}

    class FakePopen:
        def __init__(self, cmd, cwd, env):
            started.update(cmd=cmd, cwd=cwd, env=env)

        def wait(self):
            return 0

    monkeypatch.setattr(cli, "subprocess", types.SimpleNamespace(Popen=FakePopen))
    code = cli.main(["--workdir", str(tmp_path / "ws"), "lab", "--dir", str(tmp_path / "lab"), "--no-browser"])
    assert code == 0
    out = capsys.readouterr().out
    assert "toy" in out and "new copy of the student release" in out
    token = next(a.split("=", 1)[1] for a in started["cmd"] if a.startswith("--IdentityProvider.token="))
    assert len(token) >= 32 and f"?token={token}" in out and "http://127.0.0.1:" in out
    assert "--ServerApp.open_browser=False" in started["cmd"]


@pytest.mark.slow
def test_server_refuses_requests_without_the_token(tmp_path):
    (tmp_path / "hello.txt").write_text("hi")
    with running_lab(tmp_path, log=tmp_path / "lab.log") as (base, token):
        with urllib.request.urlopen(f"{base}/api/contents/hello.txt?token={token}", timeout=10) as r:
            assert r.status == 200
        for bad in ("", "?token=wrong"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{base}/api/contents/hello.txt{bad}", timeout=10)
            assert err.value.code == 403
    assert os.path.exists(tmp_path / "lab.log")
