"""nbgrader preprocessors the course adds to autograding."""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor


class RestoreLockedCells(NbGraderPreprocessor):
    """Put back read-only cells (setup, helpers the tests use) that a submission deleted.

    nbgrader's ``add_missing_cells`` restores graded cells only; a deleted locked helper cell would
    make every test that uses it fail, costing a correct answer its points. Each missing locked
    cell is re-inserted, from the gradebook's copy of the source, after the nearest earlier cell of
    the source that the submission still has.
    """

    def preprocess(self, nb: NotebookNode, resources: dict):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            cells = [(c.name, c.cell_type, c.source, c.checksum) for c in source.source_cells if c.locked]
            graded = {c.name for c in source.grade_cells} | {c.name for c in source.solution_cells}
            order = [c.name for c in source.source_cells]
        present = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
        for name, cell_type, text, checksum in cells:
            if name in present or name in graded:
                continue
            position = 0
            for earlier in reversed(order[: order.index(name)]):
                idx = next((i for i, c in enumerate(nb.cells)
                            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == earlier), None)
                if idx is not None:
                    position = idx + 1
                    break
            meta = {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": name,
                                 "schema_version": 3, "checksum": checksum},
                    "editable": False, "deletable": False}
            make = new_code_cell if cell_type == "code" else new_markdown_cell
            nb.cells.insert(position, make(source=text, metadata=meta))  # with a fresh cell id
            present.add(name)
            self.log.warning("Restored deleted read-only cell %s", name)
        return nb, resources
