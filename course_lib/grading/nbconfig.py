"""nbgrader's configuration, built in one place for the workspace, its workers and the formgrader.

:func:`nbgrader_config` is what ``course autograde`` runs with; :func:`config_file_text` writes the
same settings as ``nbgrader_config.py`` for the formgrader and the nbgrader command line.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .sandbox import Limits

COURSE_ID = "nlm_course"


def nbgrader_config(root: Path, phase: str = "full", *, limits: Limits, sandbox: str = "auto",
                    run_experiments: bool = False, scratch: Path | None = None,
                    source_notebook: Path | None = None, report: Path | None = None):
    """nbgrader configuration for the course directory ``root``.

    ``phase="full"`` sanitizes, executes and scores a submission. ``phase="import"`` scores a
    notebook that a worker already executed (in a scratch copy of this course directory): it
    keeps the outputs and starts no kernel.
    """
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )
    from traitlets.config import Config

    from .execute import SandboxedExecute
    from .preprocessors import ClearOutputKeepExperiments, RepairCells

    root = Path(root)
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.Execute.timeout = limits.cell_timeout
    c.Execute.interrupt_on_timeout = True
    # Kernels log start-up notices to the grader's terminal; only errors matter there.
    c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
    # A warning printed to stderr must not zero a test cell (nbgrader counts any stderr as a
    # failure). Errors are separate "error" outputs, so removing stderr streams is safe.
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = r"[\s\S]"
    # A test cell the student deleted is put back and run (nbgrader's default drops it), and so
    # is a deleted read-only helper cell.
    c.OverwriteCells.add_missing_cells = True
    sanitize = [RepairCells, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
    if phase == "import":
        c.Autograde.sanitize_preprocessors = sanitize
        c.Autograde.autograde_preprocessors = [IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                               SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    else:
        c.Autograde.sanitize_preprocessors = [ClearOutputKeepExperiments, *sanitize]
        skip = [] if run_experiments else ["experiment"]
        c.ClearOutputKeepExperiments.skip_tags = skip
        c.SandboxedExecute.skip_tags = skip
        # The student's code runs in a sandboxed kernel with limits; test cells are judged from
        # recorded values in a clean process (course_lib.grading.execute).
        c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                               LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
        c.SandboxedExecute.limits = asdict(limits)
        c.SandboxedExecute.sandbox = sandbox
        c.SandboxedExecute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
        if scratch is not None:
            c.SandboxedExecute.scratch_dir = str(scratch)
        if source_notebook is not None:
            c.SandboxedExecute.source_notebook = str(source_notebook)
        if report is not None:
            c.SandboxedExecute.report_path = str(report)
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.Exchange.root = str(root / "exchange")
    return c


def nbgrader_api(config):
    """nbgrader's API on the course directory that ``config`` names."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def config_file_text(config) -> str:
    """``nbgrader_config.py`` holding ``config``: the formgrader and the nbgrader CLI then use it too."""
    lines = ["# Written by `course` from Workspace.config(): the formgrader and the nbgrader CLI",
             "# use the same settings as `course autograde`.", "c = get_config()  # noqa: F821"]
    for section in sorted(config):
        for key in sorted(config[section]):
            lines.append(f"c.{section}.{key} = {py_literal(config[section][key])}")
    return "\n".join(lines) + "\n"


def py_literal(value) -> str:
    """A config value as Python source; classes (preprocessors) become import strings."""
    if isinstance(value, type):
        return repr(f"{value.__module__}.{value.__qualname__}")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)
