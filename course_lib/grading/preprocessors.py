"""nbgrader preprocessors the course adds to autograding."""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearOutput, NbGraderPreprocessor
from traitlets import Integer, List, Unicode

from .cells import EXPERIMENT_TAG, grade_id, is_experiment


class RepairCells(NbGraderPreprocessor):
    """Make a submission's graded cells match the gradebook before nbgrader's own sanitizing.

    nbgrader stops with an error (and the whole submission scores 0) on several things students do
    by accident or on purpose: a copy-pasted test cell, a cell with grade metadata from another
    notebook, a test cell whose flags were changed, an answer deleted together with its test. Here:

    - a cell whose ``grade_id`` the assignment does not have loses its nbgrader metadata (it is the
      student's own cell and earns nothing);
    - a second cell with the same ``grade_id`` is dropped if the original is read-only (a test or a
      helper), otherwise it becomes an ordinary cell;
    - every remaining graded cell gets the source's flags, points, checksum and cell type back, and a
      read-only cell its source text;
    - missing read-only and graded cells (tests, helpers, written answers) are inserted after the
      nearest earlier cell of the source that the submission still has.
    """

    def preprocess(self, nb: NotebookNode, resources: dict):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            cells = {c.name: c for c in source.source_cells}
            order = [c.name for c in source.source_cells]
            points = {c.name: c.max_score for c in source.grade_cells}
            solutions = {c.name for c in source.solution_cells}
            tasks = {c.name for c in getattr(source, "task_cells", [])}
            src = {n: (c.cell_type, bool(c.locked), c.source, c.checksum) for n, c in cells.items()}
        kept, seen = [], set()
        for cell in nb.cells:
            meta = cell.get("metadata", {})
            nbg = meta.get("nbgrader")
            gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
            if not isinstance(nbg, dict) or gid not in src or gid in tasks:
                if isinstance(nbg, dict) and (nbg.get("grade") or nbg.get("solution") or nbg.get("locked")):
                    self.log.warning("Ignoring grading metadata of a cell the assignment does not have (%s)", gid)
                meta.pop("nbgrader", None)
                kept.append(cell)
                continue
            cell_type, locked, text, checksum = src[gid]
            if gid in seen:
                if locked or gid in points and gid not in solutions:
                    self.log.warning("Dropping a copy of cell %s", gid)
                    continue
                meta.pop("nbgrader", None)
                kept.append(cell)
                continue
            seen.add(gid)
            fixed = {"grade": gid in points, "solution": gid in solutions, "locked": locked, "grade_id": gid,
                     "schema_version": 3, "task": False}
            if gid in points:
                fixed["points"] = points[gid]
            if checksum:
                fixed["checksum"] = checksum
            meta["nbgrader"] = fixed
            if cell.cell_type != cell_type:
                cell = _make(cell_type, text if locked else cell.get("source", ""), meta)
            elif locked and cell.get("source") != text:
                cell.source = text  # outputs stay (after execution they are the grader's verdicts)
            kept.append(cell)
        nb.cells = kept
        for name in order:
            if name in seen or name in tasks or not (src[name][1] or (name in points)):
                continue
            if name in solutions and name not in points:
                continue  # a deleted answer stays deleted: its tests fail
            cell_type, locked, text, checksum = src[name]
            meta = {"nbgrader": {"grade": name in points, "solution": name in solutions, "locked": locked,
                                 "grade_id": name, "schema_version": 3, "task": False,
                                 **({"points": points[name]} if name in points else {}),
                                 **({"checksum": checksum} if checksum else {})}}
            if locked:
                meta.update({"editable": False, "deletable": False})
            position = 0
            for earlier in reversed(order[: order.index(name)]):
                idx = next((i for i, c in enumerate(nb.cells) if grade_id(c) == earlier), None)
                if idx is not None:
                    position = idx + 1
                    break
            nb.cells.insert(position, _make(cell_type, text if locked else "", meta))
            seen.add(name)
            self.log.warning("Restored missing cell %s", name)
        return nb, resources


def _make(cell_type: str, text: str, metadata: dict) -> NotebookNode:
    make = new_code_cell if cell_type == "code" else new_markdown_cell
    return make(source=text, metadata=metadata)


class ClearOutputKeepExperiments(ClearOutput):
    """nbgrader's ClearOutput, except for experiment cells (tagged ``experiment``).

    The grader does not re-run experiments (training runs, in fast mode they would show a
    meaningless one-epoch run); their outputs are the student's own, kept for the person who grades
    the written answers about them, under a note that says so. Oversized outputs are replaced by a
    note.
    """

    skip_tags = List(Unicode(), [EXPERIMENT_TAG]).tag(config=True)
    max_kept_bytes = Integer(2 * 1024 * 1024).tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if not is_experiment(cell, self.skip_tags):
            return super().preprocess_cell(cell, resources, cell_index)
        import json

        kept = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
        size = len(json.dumps(kept, default=str))
        note = "[grader: this experiment was not re-run during grading; below are the outputs of the student's own run]\n"
        if size > self.max_kept_bytes:
            kept, note = [], f"[grader: this experiment was not re-run; its outputs ({size // 1024} KiB) were too large to keep]\n"
        cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=note), *kept]
        return cell, resources
