"""The student's path in a real browser: JupyterLab, driven by Playwright in Debian's Chromium.

For every assignment whose ``examples.toml`` has a ``[browser]`` table, the released notebook is
opened in JupyterLab (started by the same code as ``make lab``) with every other answer filled in.
The test then does what a student does:

1. types a correct answer into one solution cell and a wrong one into another, and runs all cells:
   the first public test prints that it passed, the second fails with a readable message;
2. fixes the wrong answer and runs all cells again: every public test passes, a training cell shows
   a progress bar and a plot.

Screenshots of each step are saved under ``build/test-artifacts/browser/<assignment>/``
(``COURSE_TEST_ARTIFACTS`` overrides the folder). Needs ``chromium`` (``make test`` installs it
where it can); without it the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tomllib
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

from course_lib.grading.assignments import get_assignment, list_assignments
from course_lib.grading.examples import solution_notebook
from course_lib.grading.lab import running_lab
from course_lib.grading.workspace import Workspace

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("COURSE_TEST_ARTIFACTS", REPO / "build" / "test-artifacts")) / "browser"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]
RUN_TIMEOUT_MS = 300_000  # a whole notebook in fast mode, on a slow 2-core CI machine


def chromium() -> str:
    exe = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        msg = "chromium is not installed (make test installs it as root: apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def browser_specs() -> list[tuple[str, dict]]:
    out = []
    for name in list_assignments():
        path = get_assignment(name).source_dir / "examples.toml"
        if path.is_file():
            spec = tomllib.loads(path.read_text(encoding="utf-8")).get("browser")
            if spec:
                out.append((name, spec))
    return out


def test_every_assignment_has_a_browser_scenario():
    have = {name for name, _ in browser_specs()}
    assert have == set(list_assignments()), f"no [browser] table in examples.toml of {sorted(set(list_assignments()) - have)}"


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def lab_settings(folder: Path) -> Path:
    """JupyterLab user settings for the test: every cell in the DOM, no news or update pop-ups."""
    for ext, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = folder / f"{ext}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder


class Notebook:
    """The notebook page as the student sees it; cells addressed by their index in the file."""

    def __init__(self, page, cells):
        self.page = page
        self.cells = cells  # the notebook file's cells, to find a cell's index by grade_id or text
        self.dom = page.locator(".jp-Notebook .jp-Cell")

    def index(self, *, grade: str | None = None, text: str | None = None) -> int:
        for i, c in enumerate(self.cells):
            if (grade and grade_id(c) == grade) or (text and c.cell_type == "code" and text in c.source):
                return i
        raise AssertionError(f"no cell with grade_id={grade!r} / text={text!r}")

    def test_after(self, i: int) -> int:
        """The first test cell after solution cell ``i``."""
        for j in range(i + 1, len(self.cells)):
            if (grade_id(self.cells[j]) or "").startswith("test_"):
                return j
        raise AssertionError(f"no test cell after cell {i}")

    def cell(self, i: int):
        return self.dom.nth(i)

    def type_into(self, i: int, code: str) -> None:
        """Replace the cell's text as a student would: click in it, select all, type."""
        editor = self.cell(i).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.press("Delete")
        self.page.keyboard.insert_text(code)  # as typed, without the editor's auto-indent
        self.page.keyboard.press("Escape")  # back to command mode
        assert self.cell(i).locator(".cm-content").inner_text().strip().splitlines()[0] == code.splitlines()[0]

    def run_all(self) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

    def output_text(self, i: int) -> str:
        return self.cell(i).locator(".jp-OutputArea").inner_text()

    def wait_for_output(self, i: int, text: str, timeout: float = RUN_TIMEOUT_MS) -> str:
        self.page.wait_for_function(
            "([i, text]) => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];"
            " const o = c && c.querySelector('.jp-OutputArea'); return !!o && o.innerText.includes(text); }",
            arg=[i, text], timeout=timeout)
        return self.output_text(i)

    def wait_idle(self, timeout: float = RUN_TIMEOUT_MS) -> None:
        self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)

    def shot(self, folder: Path, name: str, i: int | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        if i is None:
            self.page.screenshot(path=path)
        else:
            self.cell(i).scroll_into_view_if_needed()
            self.cell(i).screenshot(path=path)
        return path


def student_notebook(name: str, spec: dict, release_nb: Path) -> nbformat.NotebookNode:
    """The release with every answer filled in (a student's finished work) except the two the test types."""
    a = get_assignment(name)
    release = nbformat.read(release_nb, as_version=4)
    nb = solution_notebook(nbformat.read(a.notebook, as_version=4), release)
    blank = {grade_id(c): c.source for c in release.cells if grade_id(c)}
    for key in ("correct", "wrong"):
        cell = next(c for c in nb.cells if grade_id(c) == spec[key]["cell"])
        cell.source = blank[spec[key]["cell"]]
        assert "NotImplementedError" in cell.source, f"{spec[key]['cell']} is not a solution cell of the release"
    return nb


@pytest.mark.parametrize("name,spec", browser_specs(), ids=[n for n, _ in browser_specs()])
def test_student_in_jupyterlab(name, spec, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = chromium()
    shots = ARTIFACTS / name
    shutil.rmtree(shots, ignore_errors=True)
    ws = Workspace(tmp_path / "ws")
    release_nb = ws.release(name, output=tmp_path / "release")
    work = tmp_path / "lab"
    shutil.copytree(release_nb.parent, work)
    nb = student_notebook(name, spec, release_nb)
    nbformat.write(nb, work / f"{name}.ipynb")
    env = {"COURSE_FAST": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}  # as `make` sets it

    with running_lab(work, env=env, settings_dir=lab_settings(tmp_path / "settings"),
                     log=tmp_path / "jupyterlab.log") as (base, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{name}.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            view = Notebook(page, copy.deepcopy(nb.cells))
            page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n",
                                   arg=len(nb.cells), timeout=90_000)
            view.wait_idle(90_000)
            view.shot(shots, "01-opened")
            # A student's JupyterLab: nbgrader's instructor tools are hidden, its Validate button stays.
            assert page.locator("text=Create Assignment").count() == 0
            assert page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").count() == 0

            correct = view.index(grade=spec["correct"]["cell"])
            wrong = view.index(grade=spec["wrong"]["cell"])
            view.type_into(correct, spec["correct"]["code"])
            view.type_into(wrong, spec["wrong"]["code"])

            # 1. Run all: the correct answer's public test passes, the wrong one's fails, readably.
            view.run_all()
            correct_test, wrong_test = view.test_after(correct), view.test_after(wrong)
            test_id = grade_id(nb.cells[correct_test])
            passed = f"{test_id}: public checks passed (hidden tests run at grading)"
            assert passed in view.wait_for_output(correct_test, passed)
            failure = view.wait_for_output(wrong_test, spec["wrong"]["message"])
            view.wait_idle()
            view.shot(shots, "02-test-passes", correct_test)
            view.shot(shots, "03-test-fails", wrong_test)
            assert "CheckFailed" in failure or "AssertionError" in failure, failure
            last_line = [ln for ln in failure.strip().splitlines() if ln.strip()][-1]
            assert spec["wrong"]["message"] in last_line, f"the message is not the error's last line:\n{failure}"
            assert "passed" not in failure
            # Readable: which test failed and why, not a traceback through the grading code.
            assert f"{grade_id(nb.cells[wrong_test])}: FAILED" in failure
            assert len(failure.strip().splitlines()) <= 4 and "course_lib/grading" not in failure, failure

            # 2. Fix it and run all again: every test passes, training shows a progress bar and a plot.
            view.type_into(wrong, spec["fixed"]["code"])
            view.run_all()
            training = view.index(text=spec["experiment"]["training_cell"])
            cell = view.cell(training)
            cell.locator(".jp-OutputArea progress, .jp-OutputArea .widget-hprogress").first.wait_for(timeout=RUN_TIMEOUT_MS)
            view.shot(shots, "04-training-progress", training)
            img = cell.locator(".jp-OutputArea img").first
            img.wait_for(timeout=RUN_TIMEOUT_MS)
            view.wait_idle()
            img.scroll_into_view_if_needed()
            img.screenshot(path=shots / "05-training-plot.png")  # the plot itself: a long cell overflows the page
            width = img.evaluate("e => e.complete ? e.naturalWidth : 0")
            assert width > 100, "the training plot did not render"
            last = len(nb.cells) - 1
            while nb.cells[last].cell_type != "code":
                last -= 1
            view.cell(last).locator(".jp-OutputArea").first.wait_for(timeout=RUN_TIMEOUT_MS)
            view.shot(shots, "06-end-of-notebook", last)

            tests = [i for i, c in enumerate(nb.cells) if (grade_id(c) or "").startswith("test_")]
            for i in tests:
                text = view.output_text(i)
                assert f"{grade_id(nb.cells[i])}: public checks passed" in text, f"{grade_id(nb.cells[i])} after the fix:\n{text}"
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] >> text=Traceback")
            assert errors.count() == 0, "an error after the fix:\n" + "\n\n".join(errors.all_inner_texts())
        finally:
            browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "01-opened.png", "02-test-passes.png", "03-test-fails.png", "04-training-progress.png",
        "05-training-plot.png", "06-end-of-notebook.png"]
