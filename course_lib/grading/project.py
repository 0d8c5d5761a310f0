"""The course's project settings, the notebooks' setup cell, the Colab badges and the student branch.

One place holds the course's public address: ``[tool.course]`` in ``pyproject.toml``::

    [tool.course]
    repository = "https://github.com/OWNER/REPO"   # where pip installs course_lib from, and the Colab badges point
    ref = "student"                                # the branch or tag OF THE STUDENT DISTRIBUTION the setup cell installs
    student_branch = "student"                     # the branch `course publish` writes the student distribution to
    seed = 282                                     # the seed every notebook's setup cell uses

Two audiences, two artefacts. The instructor repository (private) holds everything: the source
notebooks with their solutions and hidden tests, ``examples.toml``, the tests, and the reference
implementations and recorded runs (``course_solutions``). The *student distribution* is what
:func:`.distribution.publish` writes onto ``student_branch`` (:func:`.distribution.write_student_tree`):
the released notebooks, a student README and the student package (``course_lib`` with its
``pyproject.toml``, no ``course_solutions``). The setup cell pip-installs ``course_lib`` from ``<repository>@<ref>``, so
``ref`` must name a branch or tag of the student distribution, never the instructor's ``main``
(:func:`check` reports it); the README's badges open ``student_branch``.

Everything else is generated from it:

- :func:`setup_cell_source` renders the first code cell of every notebook (the same in every
  assignment except its name): it installs ``course_lib`` when it is missing (Colab), then calls
  :func:`course_lib.notebook.setup_notebook`, which fetches the assignment's data, picks the device
  and seeds everything. The cell is read-only for nbgrader (``grade_id`` ``setup``).
- :func:`badge_table` renders the README's "Open in Colab" table (between :data:`BADGES_BEGIN` and
  :data:`BADGES_END`), one row per assignment, pointing at the *student* release on
  ``student_branch`` (never at the instructor notebooks, which hold the solutions).
- :func:`sync` writes both (``make notebooks`` runs ``python -m course_lib.grading.project sync``
  before regenerating the ``.ipynb`` files); ``python -m course_lib.grading.project check`` and the
  tests fail when a notebook or the README is out of date.
- :func:`.distribution.publish` (``course publish``) writes the student distribution and commits it onto the
  local branch ``student_branch``, without touching the working tree or the current branch.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .assignments import find_root, list_assignments

SETUP_GRADE_ID = "setup"
SETUP_NBGRADER = {"grade": False, "grade_id": SETUP_GRADE_ID, "locked": True, "schema_version": 3,
                  "solution": False, "task": False}
#: The environment variable that overrides what the setup cell installs (any pip requirement or path).
SOURCE_ENV = "COURSE_LIB_SOURCE"
BADGES_BEGIN = "<!-- colab-badges:begin (generated from [tool.course] in pyproject.toml by `make notebooks`; do not edit) -->"
BADGES_END = "<!-- colab-badges:end -->"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

SETUP_TEMPLATE = '''\
# Setup (read-only, the same in every notebook). Where the course library is missing (Colab), it
# installs course_lib from the course's student distribution (never PyTorch: use the one you
# have). Then it fetches this assignment's data, picks the device (the GPU when there is one) and
# seeds everything. Locally, with course_lib installed and the data cached, it installs and
# downloads nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    if importlib.util.find_spec("torch") is None:
        raise RuntimeError("PyTorch is not installed: install it first (https://pytorch.org), then run this cell again.")
    _source = os.environ.get("{source_env}") or "{requirement}"
    print(f"installing course_lib: pip install {{_source}}")
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", _source],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if _pip.returncode:
        raise RuntimeError(f"pip could not install course_lib:\\n{{_pip.stdout[-3000:]}}")
    print(*[line for line in _pip.stdout.splitlines() if line.startswith("Successfully")], sep="\\n")
    importlib.invalidate_caches()

from course_lib.notebook import setup_notebook

device = setup_notebook("{name}", seed={seed})'''


class ProjectError(RuntimeError):
    """The project settings are missing or wrong, or publishing failed; the message says what to do."""


@dataclass(frozen=True)
class Project:
    """``[tool.course]`` of ``pyproject.toml``."""

    repository: str
    ref: str = "student"
    student_branch: str = "student"
    seed: int = 0

    @property
    def requirement(self) -> str:
        """What the setup cell gives pip: ``course-lib @ git+<repository>@<ref>``."""
        return f"course-lib @ git+{self.repository}@{self.ref}"

    @property
    def github(self) -> tuple[str, str]:
        """``(owner, repo)`` of a GitHub repository (Colab opens notebooks from GitHub only)."""
        m = re.fullmatch(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?", self.repository)
        if not m:
            raise ProjectError(
                f"[tool.course] repository = {self.repository!r} is not a GitHub URL "
                "(https://github.com/OWNER/REPO): Colab badges can only open notebooks on GitHub."
            )
        return m.group(1), m.group(2)

    def colab_url(self, name: str) -> str:
        """The Colab address of the *student* release of ``name`` (on ``student_branch``)."""
        owner, repo = self.github
        return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{self.student_branch}/{name}/{name}.ipynb"


def load_project(root: Path | None = None) -> Project:
    """Read ``[tool.course]`` from ``<root>/pyproject.toml`` (root: the course repository)."""
    root = Path(root) if root is not None else find_root()
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"Cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get("course")
    if not isinstance(table, dict) or not table.get("repository"):
        raise ProjectError(
            f"{path} has no [tool.course] table with a repository: add\n"
            '  [tool.course]\n  repository = "https://github.com/OWNER/REPO"\n  ref = "student"\n'
            '  student_branch = "student"\n  seed = 0'
        )
    # "assignments": per-assignment grading settings (deadline, late_policy), read by .lms_export.
    unknown = sorted(set(table) - {"repository", "ref", "student_branch", "seed", "assignments"})
    if unknown:
        raise ProjectError(f"{path}: unknown keys in [tool.course]: {', '.join(unknown)}")
    student_branch = str(table.get("student_branch", "student")).strip()
    project = Project(
        repository=str(table["repository"]).strip(),
        ref=str(table.get("ref", student_branch)).strip(),  # default: the student distribution's branch
        student_branch=student_branch,
        seed=table.get("seed", 0),
    )
    for key in ("ref", "student_branch"):
        value = getattr(project, key)
        if not value or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", value) or ".." in value:
            raise ProjectError(f"{path}: [tool.course] {key} = {value!r} is not a git ref name")
    if isinstance(project.seed, bool) or not isinstance(project.seed, int) or not 0 <= project.seed < 2**32:
        raise ProjectError(f"{path}: [tool.course] seed must be an integer in [0, 2**32), not {project.seed!r}")
    if any(c in project.repository for c in '"\\ \n'):
        raise ProjectError(f"{path}: [tool.course] repository = {project.repository!r} is not a URL")
    return project


# ----------------------------------------------------------------------------- the setup cell
def setup_cell_source(name: str, project: Project) -> str:
    """The setup cell of assignment ``name``: identical in every notebook except the name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ProjectError(f"Invalid assignment name {name!r}")
    return SETUP_TEMPLATE.format(name=name, seed=project.seed, requirement=project.requirement, source_env=SOURCE_ENV)


def _is_setup(cell) -> bool:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == SETUP_GRADE_ID


def setup_cell_problems(nb, name: str, project: Project) -> list[str]:
    """Why a notebook's setup cell is not the template rendered for it (empty when it is)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = [c for c in nb.cells if _is_setup(c)]
    if not setup:
        return [f"{name}: no setup cell (a code cell with grade_id {SETUP_GRADE_ID!r}); run `make notebooks`"]
    problems = []
    cell = setup[0]
    if len(setup) > 1:
        problems.append(f"{name}: {len(setup)} cells have grade_id {SETUP_GRADE_ID!r}")
    if not code or code[0] is not cell:
        problems.append(f"{name}: the setup cell must be the first code cell")
    meta = cell.metadata.get("nbgrader", {})
    for key in ("locked", "solution", "grade"):
        if bool(meta.get(key)) != SETUP_NBGRADER[key]:
            problems.append(f"{name}: the setup cell must have nbgrader {key}={SETUP_NBGRADER[key]}")
    if cell.source.strip() != setup_cell_source(name, project).strip():
        problems.append(f"{name}: the setup cell differs from the template (pyproject [tool.course]); run `make notebooks`")
    return problems


_HEADER = re.compile(r"^# %%.*$", re.M)


def _py_header() -> str:
    return f"# %% nbgrader={json.dumps(SETUP_NBGRADER, sort_keys=True)}"


def sync_py_source(py: Path, name: str, project: Project) -> bool:
    """Write the setup cell into a jupytext ``py:percent`` source; returns True when the file changed.

    The cell is replaced where it is (found by its ``grade_id``), or inserted after the first cell
    (the title) when the notebook has none.
    """
    text = py.read_text(encoding="utf-8")
    body = setup_cell_source(name, project) + "\n\n"
    headers = list(_HEADER.finditer(text))
    setup = [h for h in headers if '"grade_id": "setup"' in h.group(0)]
    if setup:
        h = setup[0]
        later = [g for g in headers if g.start() > h.start()]
        end = later[0].start() if later else len(text)
        new = text[: h.start()] + _py_header() + "\n" + body + text[end:]
    else:
        if len(headers) < 1:
            raise ProjectError(f"{py} has no `# %%` cells: is it a jupytext py:percent notebook?")
        at = headers[1].start() if len(headers) > 1 else len(text)
        new = text[:at] + _py_header() + "\n" + body + text[at:]
    if new != text:
        py.write_text(new, encoding="utf-8")
        return True
    return False


# ----------------------------------------------------------------------------- README badges
def badge_table(project: Project, names: list[str]) -> str:
    """The Markdown table of "Open in Colab" badges, one row per assignment (the student release)."""
    rows = ["| assignment | student notebook |", "|---|---|"]
    for name in names:
        rows.append(f"| `{name}` | [![Open In Colab]({COLAB_BADGE})]({project.colab_url(name)}) |")
    return "\n".join(rows)


def badges_block(project: Project, names: list[str]) -> str:
    return f"{BADGES_BEGIN}\n{badge_table(project, names)}\n{BADGES_END}"


_BLOCK = re.compile(re.escape(BADGES_BEGIN.split(" (")[0]) + r".*?" + re.escape(BADGES_END), re.S)


def readme_badges(text: str) -> str | None:
    """The badge block of a README's text (None when it has none)."""
    m = _BLOCK.search(text)
    return m.group(0) if m else None


def colab_urls(text: str) -> list[str]:
    """Every Colab address in a README's badge block."""
    block = readme_badges(text) or ""
    return re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)", block)


def sync_readme(readme: Path, project: Project, names: list[str]) -> bool:
    text = readme.read_text(encoding="utf-8")
    if readme_badges(text) is None:
        raise ProjectError(f"{readme} has no badge block: add the two lines\n{BADGES_BEGIN}\n{BADGES_END}\nwhere it belongs")
    new = _BLOCK.sub(lambda _: badges_block(project, names), text, count=1)
    if new != text:
        readme.write_text(new, encoding="utf-8")
        return True
    return False


# ----------------------------------------------------------------------------- sync and check
def sync(root: Path | None = None) -> list[Path]:
    """Rewrite every assignment's setup cell (in its jupytext source) and the README badges.

    Returns the files that changed. ``make notebooks`` then regenerates the ``.ipynb`` files.
    """
    root = Path(root) if root is not None else find_root()
    project = load_project(root)
    names = list_assignments(root)
    changed = []
    for name in names:
        py = root / "notebooks" / name / f"{name}.py"
        if py.is_file() and sync_py_source(py, name, project):
            changed.append(py)
    readme = root / "README.md"
    if sync_readme(readme, project, names):
        changed.append(readme)
    return changed


#: Branch names that are the instructor repository's, never the student distribution's.
INSTRUCTOR_BRANCHES = ("main", "master")


def ref_problems(project: Project) -> list[str]:
    """Why ``[tool.course] ref`` may not name the student distribution (empty when it may).

    The setup cell installs ``course_lib`` from ``<repository>@<ref>``: that must be the student
    distribution (the ``student_branch`` that ``course publish`` writes, or a tag of it), never the
    instructor's default branch, which holds the source notebooks and the reference solutions.
    """
    if project.ref in INSTRUCTOR_BRANCHES and project.ref != project.student_branch:
        return [(f"pyproject.toml: [tool.course] ref = {project.ref!r} would make the setup cell install from the "
                 f"instructor's branch; set it to the student distribution's branch ({project.student_branch!r}) "
                 "or a tag of it, then run `make notebooks`")]
    return []


def check(root: Path | None = None) -> list[str]:
    """Every way the notebooks (``.ipynb``) and README are out of date with ``[tool.course]``."""
    import nbformat

    root = Path(root) if root is not None else find_root()
    project = load_project(root)
    names = list_assignments(root)
    problems = ref_problems(project)
    for name in names:
        nb = nbformat.read(root / "notebooks" / name / f"{name}.ipynb", as_version=4)
        problems += setup_cell_problems(nb, name, project)
    readme = (root / "README.md").read_text(encoding="utf-8")
    if readme_badges(readme) != badges_block(project, names):
        problems.append("README.md: the Colab badges are out of date with [tool.course]; run `make notebooks`")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.grading.project sync|check``: what ``make notebooks`` and CI run."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["sync"], ["check"]):
        print("usage: python -m course_lib.grading.project sync|check", file=sys.stderr)
        return 2
    try:
        if argv == ["sync"]:
            for path in sync():
                print(f"updated {path}")
            return 0
        problems = check()
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
