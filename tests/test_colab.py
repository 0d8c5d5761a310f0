"""The Colab path: one place for the course's URL, the notebooks' setup cell, the badges, `course publish`.

The slow test runs the setup cell of a notebook (taken from the notebook itself) in a fresh virtual
environment that only has PyTorch (as on Colab): it must install course_lib and its dependencies from
the package index, import it, fetch the data and pick the CPU, and then be a no-op the second time.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
from conftest import REPO

from course_lib import notebook as nbsetup
from course_lib.grading import cli, distribution, project
from course_lib.grading.assignments import list_assignments
from course_lib.grading.workspace import Workspace

ASSIGNMENTS = list_assignments(REPO)
PROJECT = project.load_project(REPO)


def _setup_source(name: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == project.SETUP_GRADE_ID]
    assert cells, f"{name} has no setup cell"
    return cells[0].source


# ----------------------------------------------------------------------------- one place, generated cells
def test_project_settings_live_in_pyproject():
    assert PROJECT.repository.startswith("https://github.com/")
    owner, repo = PROJECT.github
    assert owner and repo
    assert PROJECT.requirement == f"course-lib @ git+{PROJECT.repository}@{PROJECT.ref}"
    assert PROJECT.student_branch and PROJECT.ref


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_setup_cell_is_the_template(name):
    """The first code cell of every notebook is the template rendered from [tool.course]: `make notebooks`."""
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    assert project.setup_cell_problems(nb, name, PROJECT) == []
    py = REPO / "notebooks" / name / f"{name}.py"
    if py.exists():
        assert project.setup_cell_problems(jupytext.read(py), name, PROJECT) == []
    source = _setup_source(name)
    assert PROJECT.requirement in source and f'setup_notebook("{name}", seed={PROJECT.seed})' in source
    # identical across assignments except the name
    assert source == project.setup_cell_source("other", PROJECT).replace('"other"', f'"{name}"')


def test_everything_generated_is_up_to_date():
    assert project.check(REPO) == []


def test_readme_badges_open_the_student_release():
    urls = project.colab_urls((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(urls) == len(ASSIGNMENTS)
    owner, repo = PROJECT.github
    for name, url in zip(ASSIGNMENTS, urls, strict=True):
        assert url == f"https://colab.research.google.com/github/{owner}/{repo}/blob/{PROJECT.student_branch}/{name}/{name}.ipynb"
        assert "/notebooks/" not in url  # never the instructor notebook


def _copy_course(dest: Path) -> Path:
    """pyproject.toml, README.md, the notebooks, course_lib, data and course_solutions of the working tree
    (what sync and publish read; course_solutions so that publish is seen to leave it out)."""
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", dest)
    shutil.copy2(REPO / "README.md", dest)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for name in ASSIGNMENTS:
        shutil.copytree(REPO / "notebooks" / name, dest / "notebooks" / name, ignore=ignore)
    for folder in ("course_lib", "data", "course_solutions"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    return dest


def test_sync_rewrites_setup_cells_and_badges_from_pyproject(tmp_path):
    root = _copy_course(tmp_path / "course")
    assert project.sync(root) == []  # already in sync: nothing rewritten
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(PROJECT.repository, "https://github.com/fork/course")
                         .replace(f'student_branch = "{PROJECT.student_branch}"', 'student_branch = "release"'))
    problems = project.check(root)
    assert any("setup cell differs" in p for p in problems) and any("README.md" in p for p in problems)
    changed = project.sync(root)
    assert root / "README.md" in changed
    text = (root / "README.md").read_text()
    assert "colab.research.google.com/github/fork/course/blob/release/rnn_lm/rnn_lm.ipynb" in text
    py = root / "notebooks" / "rnn_lm" / "rnn_lm.py"
    assert py in changed
    fork = project.load_project(root)
    assert project.setup_cell_problems(jupytext.read(py), "rnn_lm", fork) == []
    assert f"git+https://github.com/fork/course@{PROJECT.ref}" in py.read_text()
    assert project.sync(root) == []  # idempotent
    # the rest of the notebook is untouched
    old = [c.source for c in jupytext.read(REPO / "notebooks" / "rnn_lm" / "rnn_lm.py").cells]
    new = [c.source for c in jupytext.read(py).cells]
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new, strict=True)) == 1


def test_ref_names_the_student_distribution(tmp_path):
    """The setup cell installs from the student distribution (its branch or a tag), never the instructor's main."""
    assert PROJECT.ref == PROJECT.student_branch and project.ref_problems(PROJECT) == []
    assert PROJECT.requirement.endswith(f"@{PROJECT.student_branch}")
    for ref in ("main", "master"):
        (problem,) = project.ref_problems(project.Project(PROJECT.repository, ref=ref, student_branch="student"))
        assert f"ref = {ref!r}" in problem and "instructor" in problem
    assert project.ref_problems(project.Project(PROJECT.repository, ref="v1.0", student_branch="student")) == []
    # `ref` defaults to the student branch; `project check` reports a ref naming main
    root = _copy_course(tmp_path / "course")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(re.sub(r'(?m)^ref = .*\n', "", text))
    assert project.load_project(root).ref == PROJECT.student_branch
    pyproject.write_text(re.sub(r'(?m)^ref = .*$', 'ref = "main"', text))
    assert project.load_project(root).ref == "main"
    assert any("ref = 'main'" in p for p in project.check(root))


def test_sync_inserts_a_missing_setup_cell(tmp_path):
    py = tmp_path / "toy.py"
    py.write_text("# %% [markdown]\n# # Title\n\n# %%\nx = 1\n")
    assert project.sync_py_source(py, "toy", PROJECT)
    nb = jupytext.read(py)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert project.setup_cell_problems(nb, "toy", PROJECT) == []
    assert nb.cells[2].source == "x = 1"
    assert not project.sync_py_source(py, "toy", PROJECT)


def test_setup_cell_must_be_first_locked_and_unchanged():
    nb = nbformat.read(REPO / "notebooks" / "rnn_lm" / "rnn_lm.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    cell.metadata["nbgrader"]["locked"] = False
    cell.source += "\nprint('edited')"
    problems = project.setup_cell_problems(nb, "rnn_lm", PROJECT)
    assert any("locked" in p for p in problems) and any("differs" in p for p in problems)


# ----------------------------------------------------------------------------- setup_notebook
def test_every_assignment_lists_its_data():
    for name in ASSIGNMENTS:
        nbsetup.assignment_files(name)  # raises for a missing entry or an unknown dataset
    assert nbsetup.assignment_files("rnn_lm") == [("tinyshakespeare", "input.txt")]


def _no_network(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("setup_notebook tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_setup_cell_is_a_no_op_locally(monkeypatch, tmp_path, capsys):
    """With course_lib installed and the data mirrored, the cell installs nothing and downloads nothing."""
    from course_lib.data import mirror_dir

    mirror = mirror_dir()
    if mirror is None or not (mirror / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("needs COURSE_DATA_MIRROR holding tinyshakespeare (in CI it is ../shared/data)")
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    _no_network(monkeypatch)

    def no_pip(*args, **kwargs):
        raise AssertionError(f"the setup cell ran {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    namespace: dict = {}
    exec(compile(_setup_source("rnn_lm"), "setup-cell", "exec"), namespace)
    out = capsys.readouterr().out
    assert str(namespace["device"]) == "cpu"
    assert "installing" not in out
    assert re.search(r"^device: cpu", out, re.M) and "fast mode (COURSE_FAST=1):" in out
    assert f"data: tinyshakespeare/input.txt ({mirror / 'tinyshakespeare' / 'input.txt'})" in out
    assert not (tmp_path / "cache").exists()  # nothing downloaded, nothing cached


def test_setup_notebook_warns_when_the_data_cannot_be_fetched(monkeypatch, tmp_path, capsys):
    """Where the data cannot be had (the grader's sandbox without a mirror), the notebook still runs."""
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "cache"))
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.warns(RuntimeWarning, match="could not fetch tinyshakespeare/input.txt"):
        device = nbsetup.setup_notebook("rnn_lm", seed=1, progress=False)
    assert device.type in ("cpu", "cuda", "mps")
    with pytest.warns(RuntimeWarning, match="lists no assignment 'nope'"):
        nbsetup.setup_notebook("nope", seed=None)


# ----------------------------------------------------------------------------- course publish
def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _publish(tmp_path: Path, repo: Path, *extra: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli.main(["--workdir", str(tmp_path / "grading"), "publish", "--repo", str(repo), *extra])
    return code, buf.getvalue()


def test_publish_writes_the_student_branch(tmp_path):
    repo = _copy_course(tmp_path / "repo")
    (repo / "notes.txt").write_text("uncommitted work\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A", ":!notes.txt")
    _git(repo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-qm", "course")
    head = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain")

    code, out = _publish(tmp_path, repo)
    assert code == 0, out
    # no remote is the student distribution's repository: the command names its URL
    assert f"git push {PROJECT.repository} student" in out
    # the working tree, the index and the current branch are untouched
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert _git(repo, "status", "--porcelain") == status

    branch = PROJECT.student_branch
    files = set(_git(repo, "ls-tree", "-r", "--name-only", branch).splitlines())
    for name in ASSIGNMENTS:
        assert f"{name}/{name}.ipynb" in files
        assert f"{name}/{name}.py" not in files and f"{name}/examples.toml" not in files
    # the student package: course_lib, its data registry and a pyproject.toml, never course_solutions
    assert {"README.md", "pyproject.toml", "course_lib/__init__.py", "course_lib/grading/checks.py",
            "data/registry.json"} <= files
    assert not [f for f in files if f.startswith(("course_solutions/", "notebooks/", "tests/"))]
    student_pyproject = tomllib.loads(_git(repo, "show", f"{branch}:pyproject.toml"))
    assert "course_lib" in student_pyproject["tool"]["setuptools"]["packages"]
    assert not [p for p in student_pyproject["tool"]["setuptools"]["packages"] if "course_solutions" in p]
    for f in files:
        if f.endswith(".ipynb") or f == "README.md":
            text = _git(repo, "show", f"{branch}:{f}")
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, f
    # the released notebooks keep the setup cell
    for name in ASSIGNMENTS:
        nb = nbformat.reads(_git(repo, "show", f"{branch}:{name}/{name}.ipynb"), as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.source == _setup_source(name)
    # every README badge opens a file of the branch
    for url in project.colab_urls((REPO / "README.md").read_text(encoding="utf-8")):
        ref, _, path = url.partition("/blob/")[2].partition("/")
        assert ref == branch and path in files, url

    # unchanged release: no new commit; a changed one: a commit on top of the previous one
    first_commit = _git(repo, "rev-parse", branch)
    code, out = _publish(tmp_path, repo)
    assert code == 0 and "nothing committed" in out
    assert _git(repo, "rev-parse", branch) == first_commit
    # a fresh clone (only origin/student) builds on origin's branch, so the push fast-forwards
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    code, out = _publish(tmp_path, clone)
    assert code == 0 and "nothing committed" in out
    assert _git(clone, "rev-parse", branch) == first_commit
    # the remote whose URL is [tool.course] repository is where the student branch goes
    _git(clone, "remote", "add", "public", PROJECT.repository + ".git")
    code, out = _publish(tmp_path, clone)
    assert code == 0 and f"git push public {branch}" in out
    name = ASSIGNMENTS[0]
    nb_path = repo / "notebooks" / name / f"{name}.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source += "\n\nErratum: a note added after the first release."
    nbformat.write(nb, nb_path)
    code, out = _publish(tmp_path, repo, "--message", "Erratum")
    assert code == 0, out
    assert _git(repo, "rev-parse", f"{branch}^") == first_commit
    assert _git(repo, "log", "-1", "--format=%s", branch) == "Erratum"
    assert "Erratum: a note" in _git(repo, "show", f"{branch}:{name}/{name}.ipynb")

    # never rewrites a branch that is checked out
    _git(repo, "checkout", "-q", "-b", "other")
    code, out = _publish(tmp_path, repo, "--branch", "other")
    assert code == 2 and "checked out" in out


# ----------------------------------------------------------------------------- the clean environment
@pytest.mark.slow
def test_setup_cell_installs_course_lib_in_a_clean_environment(tmp_path):
    """A fresh venv with torch only (as on Colab): the cell installs course_lib from the student distribution
    (the tree `course publish` commits, without course_solutions) and its dependencies from the index, then
    is a no-op."""
    from course_lib.data import mirror_dir

    mirror = mirror_dir()
    if mirror is None or not (mirror / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("needs COURSE_DATA_MIRROR holding tinyshakespeare (in CI it is ../shared/data)")
    if shutil.which("git") is None:
        pytest.skip("needs git")
    started = time.monotonic()
    # what the setup cell's `pip install "course-lib @ git+<repository>@<student branch>"` gets
    source = tmp_path / "student"
    distribution.write_student_tree(Workspace(tmp_path / "grading", root=REPO), source)
    assert (source / "pyproject.toml").is_file() and not (source / "course_solutions").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "COURSE_ROOT")}
    # PIP_COMPILE=0: no .pyc precompilation (what is installed is the same; it halves the time)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_COMPILE="0", COURSE_DEVICE="", COURSE_FAST="1",
               COURSE_DATA_MIRROR=str(mirror), COURSE_DATA_CACHE=str(tmp_path / "cache"))
    # Colab's preinstalled PyTorch (here the CPU build from the local wheel; never a CUDA download).
    subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True, env=env)
    with_torch = time.monotonic()
    probe = "import importlib.util, torch; print(torch.version.cuda, importlib.util.find_spec('course_lib'))"
    assert subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, env=env,
                          cwd=tmp_path).stdout.split() == ["None", "None"]

    cell = tmp_path / "setup_cell.py"
    cell.write_text(_setup_source("rnn_lm"))  # the notebook's own cell, not a copy of the template
    env["COURSE_LIB_SOURCE"] = str(source)

    def run_cell() -> str:
        proc = subprocess.run([str(python), str(cell)], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    before = time.monotonic()
    first = run_cell()
    installed_at = time.monotonic()
    assert f"installing course_lib: pip install {source}" in first
    installed = " ".join(line for line in first.splitlines() if line.startswith("Successfully installed"))
    for package in ("course-lib-0.1.0", "pandas", "matplotlib", "tqdm", "platformdirs", "ipywidgets"):
        assert package in installed, first
    assert "torch-" not in installed  # the cell never installs PyTorch
    assert re.search(r"^device: cpu ", first, re.M), first
    assert "fast mode (COURSE_FAST=1): True" in first
    assert f"data: tinyshakespeare/input.txt ({mirror / 'tinyshakespeare' / 'input.txt'})" in first

    # course_lib is importable from the venv itself (not from the repository)
    where = subprocess.run([str(python), "-c", "import course_lib.notebook as m; print(m.__file__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    # the student package works without the references, and does not hold them
    probe = ("import importlib.util, course_lib.train, course_lib.grading.checks, course_lib.check; "
             "print(importlib.util.find_spec('course_solutions'))")
    assert subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, env=env,
                          cwd=tmp_path).stdout.strip() == "None"

    second = run_cell()  # now a no-op: nothing installed, nothing downloaded
    assert "installing" not in second and "Successfully" not in second
    assert re.search(r"^device: cpu ", second, re.M)
    assert not (tmp_path / "cache").exists()
    print(f"clean-venv setup cell test: {time.monotonic() - started:.0f} s (venv and torch "
          f"{with_torch - started:.0f} s, first run of the cell {installed_at - before:.0f} s)")
