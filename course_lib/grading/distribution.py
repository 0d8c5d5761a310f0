"""The student distribution: what students get, written to a folder and committed onto the student branch.

:func:`write_student_tree` writes the released notebooks, a student README and the student package
(``course_lib`` and its data registry, never ``course_solutions``); :func:`publish` (``course
publish``) commits that tree onto the local branch ``[tool.course] student_branch`` without touching
the working tree or the current branch, and says how to push it. Settings: :mod:`.project`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .assignments import list_assignments
from .project import Project, ProjectError, badge_table, load_project


@dataclass
class Published:
    branch: str
    commit: str
    parent: str | None
    changed: bool
    names: list[str]
    push_command: str


def _git(args: list[str], *, cwd: Path, env: dict | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode:
        raise ProjectError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def student_readme(project: Project, names: list[str]) -> str:
    return (
        "# Student notebooks\n\n"
        f"The student distribution of the course in {project.repository}, written by `course publish`:\n"
        "the assignments' notebooks (no solutions, no hidden tests) and the course library `course_lib`\n"
        "they use. Open a notebook in Colab (Runtime -> Change runtime type -> GPU for the training\n"
        "sections), or download it and open it in JupyterLab. Its first cell installs the course library\n"
        "where it is missing and fetches the data. To install the library yourself:\n\n"
        f"    pip install \"{project.requirement}\"\n\n"
        f"{badge_table(project, names)}\n"
    )


#: What of the instructor repository the student distribution takes besides the released notebooks:
#: the student package (``course_lib``: plumbing only, no reference solutions) and its data registry.
STUDENT_PACKAGE_DIRS = ("course_lib", "data")
#: The instructor-only package (references, recorded runs): never in the student distribution.
INSTRUCTOR_PACKAGE = "course_solutions"
_SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ProjectError(f"cannot write {value!r} into the student pyproject.toml")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_table(name: str, table: dict) -> str:
    lines = [f"[{name}]"]
    for key, value in table.items():
        if isinstance(value, dict):
            continue  # sub-tables ([project.scripts], ...) are written as tables of their own
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def student_packages(tree: Path) -> list[str]:
    """The import packages of a student tree: every folder of ``course_lib`` with an ``__init__.py``."""
    top = tree / "course_lib"
    return sorted(".".join(d.relative_to(tree).parts) for d in [top, *top.rglob("*")]
                  if d.is_dir() and (d / "__init__.py").is_file() and not _SKIP_PARTS & set(d.parts))


def student_pyproject(root: Path, tree: Path) -> str:
    """The student distribution's ``pyproject.toml``, generated from the instructor's.

    Same name, version, dependencies, extras and scripts; its packages are the student tree's
    ``course_lib`` packages plus ``course_lib._data`` (``data/registry.json``), never
    ``course_solutions``; no ``[tool.course]`` (that is the instructor's publishing setup).
    """
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    proj = dict(data.get("project") or {})
    if not proj.get("name"):
        raise ProjectError(f"{root / 'pyproject.toml'} has no [project] name")
    setuptools = (data.get("tool") or {}).get("setuptools") or {}
    packages = student_packages(tree)
    package_dir, package_data = {}, {}
    if (tree / "data" / "__init__.py").is_file():
        packages.append("course_lib._data")
        package_dir["course_lib._data"] = "data"
    for pkg, globs in (setuptools.get("package-data") or {}).items():
        if pkg in packages:
            package_data[pkg] = list(globs)
    if any(p == INSTRUCTOR_PACKAGE or p.startswith(INSTRUCTOR_PACKAGE + ".") for p in packages):
        raise ProjectError("the student distribution must not contain course_solutions")
    out = ["# The student distribution of the course, written by `course publish` from the instructor",
           "# repository's pyproject.toml (do not edit here: edit the instructor's and publish again).", ""]
    out.append("[build-system]\n" + "\n".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                             for k, v in (data.get("build-system") or {}).items()) + "\n")
    out.append(_toml_table("project", proj))
    for key, value in proj.items():
        if isinstance(value, dict):
            out.append(f"[project.{_toml_key(key)}]\n" + "\n".join(
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "\n")
    out.append("[tool.setuptools]\n" + f"packages = {_toml_value(packages)}\n")
    if package_dir:
        out.append("[tool.setuptools.package-dir]\n" + "\n".join(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in package_dir.items()) + "\n")
    if package_data:
        out.append("[tool.setuptools.package-data]\n" + "\n".join(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in package_data.items()) + "\n")
    return "\n".join(out)


def _copy_package_dir(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if (path.is_dir() or _SKIP_PARTS & set(rel.parts) or path.suffix in _SKIP_SUFFIXES
                or any(part.startswith(".") or part.endswith(".egg-info") for part in rel.parts)):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def write_student_tree(workspace, dest: Path, *, names: list[str] | None = None) -> list[str]:
    """Write the student distribution of the course into the (empty or missing) folder ``dest``.

    It holds, and nothing else:

    - ``<name>/<name>.ipynb`` and its public extras for every assignment (``course release``:
      solutions, hidden tests and model answers stripped);
    - ``README.md`` for students, with the Colab badges;
    - the student package: ``course_lib/`` (data, text, training loop, plotting, tables, device, the
      check tool and the grading helpers test cells use) and ``data/registry.json`` (installed as
      ``course_lib._data``);
    - ``pyproject.toml`` (:func:`student_pyproject`), so that ``pip install <dest>`` (or
      ``pip install "course-lib @ git+<repository>@<student branch>"``) installs ``course_lib``.

    Never: the instructor notebooks (``notebooks/*/*.py``, the source ``.ipynb``), ``examples.toml``,
    ``tests/``, ``course_solutions/`` (references and recorded runs). Returns the assignments written.
    """
    root = Path(workspace.root)
    project = load_project(root)
    names = names or list_assignments(root)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ProjectError(f"{dest} is not empty: the student tree is written into an empty folder")
    for name in names:
        workspace.release(name, output=dest)
    (dest / "README.md").write_text(student_readme(project, names), encoding="utf-8")
    for folder in STUDENT_PACKAGE_DIRS:
        if not (root / folder).is_dir():
            raise ProjectError(f"{root / folder} is missing: the student distribution needs it")
        _copy_package_dir(root / folder, dest / folder)
    if (dest / INSTRUCTOR_PACKAGE).exists():
        raise ProjectError(f"{INSTRUCTOR_PACKAGE} must not be part of the student distribution")
    (dest / "pyproject.toml").write_text(student_pyproject(root, dest), encoding="utf-8")
    return names


def _same_repository(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        url = url.strip().rstrip("/")
        url = re.sub(r"\.git$", "", url)
        url = re.sub(r"^git@github\.com:", "https://github.com/", url)
        return re.sub(r"^(ssh://git@|git://)github\.com/", "https://github.com/", url).lower()

    return norm(a) == norm(b)


def public_remote(root: Path, project: Project) -> str | None:
    """The git remote of ``root`` whose URL is ``[tool.course] repository`` (the student distribution's home)."""
    for name in _git(["remote"], cwd=root, check=False).splitlines():
        url = _git(["remote", "get-url", name], cwd=root, check=False)
        if url and _same_repository(url, project.repository):
            return name
    return None


def publish(workspace, *, branch: str | None = None, message: str | None = None,
            names: list[str] | None = None) -> Published:
    """Write the student distribution (:func:`write_student_tree`) and commit it onto the local branch ``branch``.

    The tree holds ``<name>/<name>.ipynb`` (and its public extras) for every assignment, a README
    with the Colab badges, and the student package (``course_lib``, its data registry and a
    ``pyproject.toml``: the setup cell pip-installs the branch). Git plumbing with a private index:
    the working tree, the index and the current branch are never touched. When the release is
    unchanged, no commit is made. ``push_command`` pushes the branch to the student distribution's
    repository (the remote whose URL is ``[tool.course] repository``, else that URL), never to the
    instructor's private remote unless it is that repository.
    """
    root = Path(workspace.root)
    project = load_project(root)
    branch = branch or project.student_branch
    names = names or list_assignments(root)
    git_dir = _git(["rev-parse", "--absolute-git-dir"], cwd=root)
    if not git_dir:
        raise ProjectError(f"{root} is not in a git repository")
    if _git(["check-ref-format", "--branch", branch], cwd=root, check=False) != branch:
        raise ProjectError(f"{branch!r} is not a valid branch name")
    ref = f"refs/heads/{branch}"
    worktrees = _git(["worktree", "list", "--porcelain"], cwd=root, check=False).splitlines()
    if f"branch {ref}" in worktrees:
        raise ProjectError(f"{branch!r} is checked out in a working tree: switch to another branch first "
                           "(publishing rewrites it from the release only)")
    head = _git(["rev-parse", "--short", "HEAD"], cwd=root, check=False)
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd=root, check=False))
    origin = f"from {head or 'an unborn branch'}" + (" with uncommitted changes" if dirty else "")
    local = _git(["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], cwd=root, check=False) or None
    remote = public_remote(root, project)
    push = f"git push {remote or project.repository} {branch}"
    # A fresh clone has only the remote's copy of the branch: build on it, so that the push fast-forwards.
    parent = local
    for name in dict.fromkeys([remote, "origin"]):
        if name and not parent:
            parent = _git(["rev-parse", "--verify", "-q", f"refs/remotes/{name}/{branch}^{{commit}}"],
                          cwd=root, check=False) or None

    with tempfile.TemporaryDirectory(prefix="course-publish-") as tmp:
        tree_dir = Path(tmp) / "tree"
        write_student_tree(workspace, tree_dir, names=names)
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if not _git(["var", "GIT_COMMITTER_IDENT"], cwd=root, check=False):
            env.update(GIT_AUTHOR_NAME="course publish", GIT_AUTHOR_EMAIL="course@localhost",
                       GIT_COMMITTER_NAME="course publish", GIT_COMMITTER_EMAIL="course@localhost")
        base = ["--git-dir", git_dir, "--work-tree", str(tree_dir)]
        _git([*base, "add", "--all", "--force", "."], cwd=tree_dir, env=env)
        tree = _git([*base, "write-tree"], cwd=tree_dir, env=env)
        if parent and _git(["rev-parse", f"{parent}^{{tree}}"], cwd=root) == tree:
            if not local:  # origin already has this release: just create the local branch there
                _git(["update-ref", "-m", "course publish", ref, parent, "0" * len(parent)], cwd=root)
            return Published(branch, parent, parent, False, names, push)
        msg = message or f"Student release of {', '.join(names)} ({origin})"
        commit = _git(["commit-tree", tree, *(["-p", parent] if parent else []), "-m", msg], cwd=root, env=env)
        _git(["update-ref", "-m", "course publish", ref, commit, local or "0" * len(commit)], cwd=root)
    return Published(branch, commit, parent, True, names, push)
