"""Students never hold the answer key: the student distribution and its wheel hold no solution.

`course publish` writes the student distribution onto the student branch of a temporary copy of the
repository (the real `student` branch is never touched); the branch's tree is extracted, a wheel is
built from it, and every file of both (every wheel member, every code cell of every notebook) is
scanned by :mod:`course_lib.grading.leaks` for, per assignment: the body of every graded function or
method (normalised AST: renamed variables still match), every distinctive hidden test line, every
distinctive sentence of a model answer. Then references are put back on purpose, and the scan must
name each one, with its file.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO

from course_lib.grading import canonical, cli, leaks
from course_lib.grading.assignments import list_assignments

ASSIGNMENTS = list_assignments(REPO)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def copy_working_tree(dest: Path) -> Path:
    """The repository's files as git sees them (tracked and untracked-not-ignored), as a fresh git repository."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-qm", "instructor repository")
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """Publish into a copy of the repository, extract the student branch, build its wheel, read the secrets."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    started = time.monotonic()
    base = tmp_path_factory.mktemp("student-dist")
    repo = copy_working_tree(base / "repo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli.main(["--workdir", str(base / "grading"), "publish", "--repo", str(repo)])
    assert code == 0, buf.getvalue()
    branch = "student"
    assert _git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    tree = base / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", branch],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    published = time.monotonic()
    build = base / "build"  # pip writes build/ and *.egg-info into the folder it builds: a copy
    shutil.copytree(tree, build)
    wheel_dir = base / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(wheel_dir), str(build)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = wheel_dir.glob("*.whl")
    secrets = leaks.assignment_secrets(repo, tree, ASSIGNMENTS)  # instructor notebooks against the released ones
    files = {**leaks.read_tree(tree), **leaks.read_wheel(wheel)}
    print(f"\nstudent distribution: published in {published - started:.1f} s, wheel built in "
          f"{time.monotonic() - published:.1f} s; {len(files)} files")
    return SimpleNamespace(repo=repo, tree=tree, wheel=wheel, secrets=secrets, files=files)


# ----------------------------------------------------------------------------- what the distribution holds
def test_the_student_tree_holds_the_student_distribution_only(dist):
    files = sorted(p.relative_to(dist.tree).as_posix() for p in dist.tree.rglob("*") if p.is_file())
    tops = {f.split("/")[0] for f in files}
    assert tops == {"README.md", "pyproject.toml", "course_lib", "data", *ASSIGNMENTS}, tops
    for name in ASSIGNMENTS:
        assert f"{name}/{name}.ipynb" in files
        assert not [f for f in files if f.startswith(f"{name}/") and (f.endswith((".py", ".toml")) or "examples" in f)]
    assert not [f for f in files if "course_solutions" in f or f.startswith(("tests/", "notebooks/"))]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or ".egg-info" in f]
    # all of course_lib (the plumbing), and the data registry as course_lib._data
    # (as git sees them, as copy_working_tree copies them: a tool's ignored cache, e.g. .ruff_cache, is not ours)
    listed = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "--", "course_lib").splitlines()
    instructor_lib = sorted(f for f in listed if (REPO / f).is_file())
    assert [f for f in files if f.startswith("course_lib/")] == instructor_lib
    assert {"data/__init__.py", "data/registry.json"} <= set(files)
    for f in files:  # the released notebooks have no solution regions and no hidden tests left
        if f.endswith(".ipynb") or f == "README.md":
            text = (dist.tree / f).read_text(encoding="utf-8")
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, f


def test_the_student_pyproject_is_the_instructors_without_course_solutions(dist):
    student = tomllib.loads((dist.tree / "pyproject.toml").read_text(encoding="utf-8"))
    instructor = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for key in ("name", "version", "dependencies", "optional-dependencies", "scripts", "requires-python"):
        assert student["project"][key] == instructor["project"][key], key
    assert student["build-system"] == instructor["build-system"]
    packages = student["tool"]["setuptools"]["packages"]
    assert not [p for p in packages if p.startswith("course_solutions")]
    assert set(packages) == {p for p in instructor["tool"]["setuptools"]["packages"] if not p.startswith("course_solutions")}
    assert student["tool"]["setuptools"]["package-dir"] == {"course_lib._data": "data"}
    assert "course" not in student["tool"]  # [tool.course] is the instructor's publishing setup


def test_the_wheel_holds_course_lib_only(dist):
    members = [m.split("!", 1)[1] for m in dist.files if "!" in m]
    tops = {m.split("/")[0] for m in members}
    assert tops == {"course_lib", f"{dist.wheel.name.split('-')[0]}-{dist.wheel.name.split('-')[1]}.dist-info"}, tops
    assert "course_lib/_data/registry.json" in members and "course_lib/grading/checks.py" in members
    assert not [m for m in members if "course_solutions" in m]
    entry_points = next(v for k, v in dist.files.items() if k.endswith("entry_points.txt")).decode()
    assert "course = course_lib.grading.cli:main" in entry_points


# ----------------------------------------------------------------------------- the scan
def test_the_secrets_are_read_from_every_assignment(dist):
    """Each assignment's graded functions, hidden tests and model answers, all found in the instructor notebook."""
    assert [s.assignment for s in dist.secrets] == ASSIGNMENTS
    for s in dist.secrets:
        print(s.summary())
        assert s.count("function") >= 5 and s.count("hidden test") >= 50 and s.count("model answer") >= 20, s.summary()
        # sanity: scanning the instructor notebook itself finds every one of them
        nb = dist.repo / "notebooks" / s.assignment / f"{s.assignment}.ipynb"
        report = leaks.scan({nb.name: nb.read_bytes()}, [s])
        assert {(x.kind, x.name) for x in report.leaks if not x.what} == {(c.kind, c.name) for c in s.code}
        assert {x.what for x in report.leaks if x.what} == {t.text for t in s.text}
    names = {s.assignment: {c.name for c in s.code if c.kind == "function"} for s in dist.secrets}
    assert {"mask_loss", "generate", "RNNLanguageModel.forward", "rnn_cell_params"} <= names["rnn_lm"]
    assert {"LayerNorm.forward", "MultiHeadedAttention.get_attention_weights", "MiniGPT1.forward"} <= names["gpt_attention"]
    # functions the handout gives (unchanged in the released cell) are not graded
    assert "MultiHeadedAttention.__init__" not in names["gpt_attention"]
    blocks = {c.name.split(" ")[0] for s in dist.secrets for c in s.code if c.kind == "solution block"}
    assert "TORCH_LSTMCELL_PARAMS" in blocks


def test_the_student_distribution_leaks_no_solution(dist):
    started = time.monotonic()
    report = leaks.scan(dist.files, dist.secrets)
    print(f"scanned {report.files} files ({report.python_sources} Python sources and notebook code cells, "
          f"{report.statement_lists} statement lists) in {time.monotonic() - started:.1f} s")
    assert report.python_sources > 40 and report.statement_lists > 1000
    assert report.unparsable == []  # every Python file and code cell was read
    assert report.leaks == [], "\n".join(map(str, report.leaks))
    # single distinctive statements of a graded body, found alone: not the body, but worth a look
    for near in report.partial:
        print(f"partial (check by hand): {near}")


# ----------------------------------------------------------------------------- it fails when a reference is put back
def _renamed_source(obj, renames: dict[str, str]) -> str:
    source = inspect.getsource(obj)
    for old, new in renames.items():
        source = re.sub(rf"\b{old}\b", new, source)
    return source


def test_a_reference_put_back_in_the_student_package_is_caught(dist):
    """The reference mask_loss, variables renamed, pasted into course_lib/train.py (tree and wheel)."""
    pytest.importorskip("course_solutions")
    from course_solutions import layers

    source = _renamed_source(layers.mask_loss, {"losses": "per_token", "mask": "weights", "mask_loss": "masked_mean"})
    assert not re.search(r"\b(losses|mask)\b", source)
    # (test_the_student_distribution_leaks_no_solution scans everything else: here only the changed files)
    wheel_train = next(k for k in dist.files if k.endswith("!course_lib/train.py"))
    files = {key: dist.files[key] + b"\n\n" + source.encode() for key in ("course_lib/train.py", wheel_train)}
    report = leaks.scan(files, dist.secrets)
    found = {(x.path, x.kind, x.name) for x in report.leaks}
    assert found == {("course_lib/train.py", "function", "mask_loss"), (wheel_train, "function", "mask_loss")}, found
    assert "course_lib/train.py:line " in str(report.leaks[0]) and "'mask_loss' of rnn_lm" in str(report.leaks[0])
    # the whole reference package in the student tree: every graded function it implements as the notebook does
    files = {"course_lib/layers.py": inspect.getsource(layers).encode()}
    report = leaks.scan(files, dist.secrets)
    names = {x.name for x in report.leaks if x.path == "course_lib/layers.py"}
    assert {"mask_loss", "FeedforwardLanguageModel.forward", "MultiHeadedAttention.apply_attention"} <= names
    # bodies written differently still share distinctive statements with the notebook's: reported as partial
    near = {x.name for x in report.partial}
    assert "MultiHeadedAttention.get_attention_weights" in near and not near & names


def test_a_body_pasted_inside_other_code_with_renamed_variables_is_caught(dist):
    """The notebook's own solution of a method, renamed and wrapped in a larger function of a notebook cell."""
    secret = next(c for s in dist.secrets for c in s.code if c.name == "MultiHeadedAttention.get_attention_weights")
    nb = json.loads((dist.repo / "notebooks" / "gpt_attention" / "gpt_attention.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "MultiHeadedAttention")
    tree = ast.parse("\n".join(line for line in "".join(cell["source"]).splitlines() if "SOLUTION" not in line))
    fn = canonical.functions(tree)["MultiHeadedAttention.get_attention_weights"]
    body = canonical.drop_docstring(fn.body)
    params = [a.arg for a in fn.args.args]
    local = sorted(canonical.function_locals(fn), key=len, reverse=True)
    text = "\n".join(ast.unparse(s) for s in body)
    for i, name in enumerate(local):
        text = re.sub(rf"\b{name}\b", f"renamed_{i}", text)
    pasted = ("def helper(unused, " + ", ".join(f"renamed_{local.index(p)}" for p in params) + "):\n"
              "    print('something else first')\n" + "\n".join("    " + line for line in text.splitlines()) + "\n")
    released = json.loads(dist.files["gpt_attention/gpt_attention.ipynb"])
    released["cells"].append({"cell_type": "code", "metadata": {}, "source": pasted, "outputs": [], "execution_count": None})
    files = {"gpt_attention/gpt_attention.ipynb": json.dumps(released).encode()}
    report = leaks.scan(files, dist.secrets)
    assert [(x.path, x.name) for x in report.leaks] == [("gpt_attention/gpt_attention.ipynb", secret.name)], report.leaks
    assert report.leaks[0].where.startswith(f"cell {len(released['cells']) - 1} ")


def test_a_hidden_test_line_and_a_model_answer_put_back_are_caught(dist):
    hidden = next(t for s in dist.secrets if s.assignment == "rnn_lm" for t in s.text
                  if t.kind == "hidden test" and t.name == "test_lstm_cell_params")
    answer_cell = "written_1_q1b"
    nb = json.loads((dist.repo / "notebooks" / "rnn_lm" / "rnn_lm.ipynb").read_text(encoding="utf-8"))
    model_answer = "".join(next(c for c in nb["cells"]
                                if c["metadata"].get("nbgrader", {}).get("grade_id") == answer_cell)["source"])
    sentence = max(re.split(r"(?<=\.)\s+", " ".join(model_answer.split())), key=len)  # its longest sentence
    files = {"course_lib/text.py": dist.files["course_lib/text.py"] + f"\n#     {hidden.text}\n".encode()}
    released = json.loads(dist.files["rnn_lm/rnn_lm.ipynb"])
    released["cells"].insert(5, {"cell_type": "markdown", "metadata": {}, "source": "A hint:\n" + sentence.replace(" ", "\n", 3)})
    files["rnn_lm/rnn_lm.ipynb"] = json.dumps(released).encode()
    report = leaks.scan(files, dist.secrets)
    found = {(x.path, x.kind, x.name) for x in report.leaks}
    assert found == {("course_lib/text.py", "hidden test", "test_lstm_cell_params"),
                     ("rnn_lm/rnn_lm.ipynb", "model answer", answer_cell)}, report.leaks
    assert any(hidden.text[:40] in str(x) for x in report.leaks)


# ----------------------------------------------------------------------------- the normalised AST
def _canon(src: str) -> str:
    fn = canonical.functions(ast.parse(src))["f"]
    return canonical.canonical(canonical.drop_docstring(fn.body), canonical.function_locals(fn))


def test_canonical_bodies_ignore_names_docstrings_and_comments_but_not_the_code():
    ref = _canon('def f(losses, mask):\n    """Doc."""\n    mask = mask.to(losses.dtype)\n'
                 '    return (losses * mask).sum() / mask.sum()\n')
    assert ref == _canon("def f(a, b):  # other names, no docstring\n    b = b.to(a.dtype)\n"
                         "    return (a * b).sum() / b.sum()  # a comment\n")
    assert ref == _canon("def f(x, y, z=None):\n    y = y.to(x.dtype)\n    return (x*y).sum()/y.sum()\n")
    # different code: a token mean, a swapped role, another attribute, a global instead of a local
    assert ref != _canon("def f(a, b):\n    b = b.to(a.dtype)\n    return (a * b).sum() / b.numel()\n")
    assert ref != _canon("def f(a, b):\n    b = b.to(a.dtype)\n    return (a * b).sum() / a.sum()\n")
    assert ref != _canon("def f(a, b):\n    b = b.to(a.device)\n    return (a * b).sum() / b.sum()\n")
    assert ref != _canon("def f(a, b):\n    b = b.to(a.dtype)\n    return (a * mask).sum() / b.sum()\n")
    # globals and attributes are kept, comprehension variables renamed
    assert _canon("def f(m):\n    return sum(p.numel() for p in m.parameters())\n") == \
        _canon("def f(model):\n    return sum(q.numel() for q in model.parameters())\n")
    assert _canon("def f(x):\n    return torch.tanh(x)\n") != _canon("def f(x):\n    return torch.relu(x)\n")
    assert _canon("def f(x):\n    return torch.tanh(x)\n") != _canon("def f(x):\n    return np.tanh(x)\n")
