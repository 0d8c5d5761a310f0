"""course_lib.notebook_import: a student's classes from another notebook, only what they need.

On a synthetic notebook (the rules, each error and its advice) and on the instructor's nmt_pig_latin
notebook (its DecoderOnlyTransformer, imported, equals the reference's output for the same weights; the
blank release's placeholders are refused).
"""

from __future__ import annotations

import re

import nbformat
import pytest
import torch
from conftest import REPO
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.notebook_import import NotebookImportError, candidate_paths, find_notebook, import_from_notebook

SETUP = {"nbgrader": {"grade": False, "grade_id": "setup", "locked": True, "schema_version": 3, "solution": False}}
SOLUTION = {"nbgrader": {"grade": False, "grade_id": "x", "locked": False, "schema_version": 3, "solution": True}}
TEST = {"nbgrader": {"grade": True, "grade_id": "test_x", "locked": True, "points": 1, "schema_version": 3,
                     "solution": False}}

CELLS = [
    new_markdown_cell("# nmt_pig_latin (synthetic)"),
    new_code_cell("raise RuntimeError('the setup cell ran')\ndevice = 'the setup device'", metadata=SETUP),
    new_code_cell("%matplotlib inline\nimport math\n\nimport torch\nfrom torch import nn\n"
                  "import json as never_needed\nMAX_LEN = 50\nresults = None"),
    new_code_cell("def positional_encoding(max_len, d_model):\n"
                  "    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)\n"
                  "    i = torch.arange(d_model)\n"
                  "    angles = pos / 10000.0 ** ((i - i % 2).double() / d_model)\n"
                  "    return torch.where(i % 2 == 0, torch.sin(angles), torch.cos(angles)).float()",
                  metadata=SOLUTION),
    new_code_cell("class CausalScaledDotAttention(nn.Module):\n"
                  "    def __init__(self, hidden_size):\n"
                  "        super().__init__()\n"
                  "        self.Q, self.K, self.V = (nn.Linear(hidden_size, hidden_size) for _ in range(3))\n"
                  "        self.scale = 1 / math.sqrt(hidden_size)\n"
                  "    def forward(self, queries, keys, values):\n"
                  "        results = torch.bmm(self.K(keys), self.Q(queries).transpose(1, 2)) * self.scale\n"
                  "        T = results.size(1)\n"
                  "        future = torch.ones(T, T, dtype=torch.bool).tril(-1)\n"
                  "        weights = results.masked_fill(future, float('-inf')).softmax(dim=1)\n"
                  "        return torch.bmm(weights.transpose(1, 2), self.V(values)), weights",
                  metadata=SOLUTION),
    # a test cell that redefines the model badly: never read
    new_code_cell("class DecoderOnlyTransformer:\n    pass\nraise AssertionError('a test cell ran')", metadata=TEST),
    new_code_cell("class DecoderOnlyTransformer(nn.Module):\n"
                  "    def __init__(self, vocab_size, hidden_size, num_layers, num_heads=1):\n"
                  "        super().__init__()\n"
                  "        self.embedding = nn.Embedding(vocab_size, hidden_size)\n"
                  "        self.register_buffer('pe', positional_encoding(MAX_LEN, hidden_size))\n"
                  "        self.layers = nn.ModuleList([CausalScaledDotAttention(hidden_size) for _ in range(num_layers)])\n"
                  "        self.out = nn.Linear(hidden_size, vocab_size)\n"
                  "    def forward(self, inputs):\n"
                  "        x = self.embedding(inputs) + self.pe[: inputs.size(1)]\n"
                  "        for layer in self.layers:\n"
                  "            x = x + layer(x, x, x)[0]\n"
                  "        return self.out(x)", metadata=SOLUTION),
    # an experiment: must not run (training, data)
    new_code_cell("results = train_everything(DecoderOnlyTransformer)\nraise RuntimeError('an experiment ran')",
                  metadata={"tags": ["experiment"]}),
    # a later, better constant: the last binding wins, as in the kernel
    new_code_cell("MAX_LEN = 64"),
    new_code_cell("def helper_with_a_syntax_error(:\n    pass"),
]


def write(path, cells=CELLS):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[c.copy() for c in cells]), path)
    return path


@pytest.fixture()
def notebook(tmp_path):
    return write(tmp_path / "nmt_pig_latin" / "nmt_pig_latin.ipynb")


def test_imports_the_model_and_what_it_needs_only(notebook):
    nmt = import_from_notebook(notebook, ["DecoderOnlyTransformer"])
    assert {"DecoderOnlyTransformer", "CausalScaledDotAttention", "positional_encoding", "MAX_LEN", "torch", "nn",
            "math"} <= set(vars(nmt))
    assert "never_needed" not in vars(nmt) and "results" not in vars(nmt)  # a method's local is not a dependency
    assert nmt.MAX_LEN == 64
    torch.manual_seed(0)
    model = nmt.DecoderOnlyTransformer(29, 8, 2)
    assert model.pe.shape == (64, 8)
    inputs = torch.randint(0, 29, (3, 7))
    logits = model(inputs)
    assert logits.shape == (3, 7, 29)
    changed = inputs.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 29
    assert torch.allclose(model(changed)[:, :4], logits[:, :4])  # causal: the prefix does not see the change
    assert isinstance(nmt.device, torch.device)  # the setup cell's name, without running the setup cell
    assert nmt.__file__ == str(notebook)


def test_the_last_definition_wins_and_test_cells_are_skipped(notebook, tmp_path):
    cells = [*CELLS, new_code_cell("def positional_encoding(max_len, d_model):\n"
                                   "    return torch.ones(max_len, d_model)")]
    nmt = import_from_notebook(write(tmp_path / "later.ipynb", cells), "DecoderOnlyTransformer")
    assert torch.equal(nmt.DecoderOnlyTransformer(5, 4, 1).pe, torch.ones(64, 4))


def test_default_paths_sibling_folder_then_here(notebook, tmp_path, monkeypatch):
    here = tmp_path / "scaling_laws"
    here.mkdir()
    monkeypatch.chdir(here)
    assert [p.resolve() for p in candidate_paths("nmt_pig_latin")] == [
        notebook.resolve(), (here / "nmt_pig_latin.ipynb").resolve()]
    assert find_notebook().resolve() == notebook.resolve()
    assert import_from_notebook().DecoderOnlyTransformer(5, 4, 1) is not None
    notebook.unlink()
    write(here / "nmt_pig_latin.ipynb")  # on Colab: uploaded next to this notebook
    assert find_notebook().resolve() == (here / "nmt_pig_latin.ipynb").resolve()


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_missing_file_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotebookImportError) as e:
        import_from_notebook()
    msg = _message(e)
    assert "nmt_pig_latin notebook was not found" in msg and "nmt_pig_latin/nmt_pig_latin.ipynb" in msg
    assert "Complete nmt_pig_latin first" in msg and "paste your classes into the cell below" in msg
    with pytest.raises(NotebookImportError, match="does not exist"):
        import_from_notebook(tmp_path / "nope.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(NotebookImportError, match="not a readable Jupyter notebook"):
        import_from_notebook(tmp_path / "broken.ipynb")


def test_missing_name_and_unparsable_cells(notebook, tmp_path):
    with pytest.raises(NotebookImportError, match=r"does not define MultiHeadCausalScaledDotAttention\. Complete"):
        import_from_notebook(notebook, ["DecoderOnlyTransformer", "MultiHeadCausalScaledDotAttention"])
    with pytest.raises(NotebookImportError, match=r"helper_with_a_syntax_error \(code cell 9 does not parse"):
        import_from_notebook(notebook, ["helper_with_a_syntax_error"])
    # a dependency in a cell that does not parse
    cells = list(CELLS)
    cells[4] = new_code_cell(CELLS[4].source.replace("def forward(self, queries, keys, values):",
                                                     "def forward(self, queries, keys, values:"))
    with pytest.raises(NotebookImportError, match=r"need CausalScaledDotAttention \(code cell 4"):
        import_from_notebook(write(tmp_path / "b.ipynb", cells), ["DecoderOnlyTransformer"])


def test_placeholders_of_the_blank_release_are_refused(tmp_path):
    cells = list(CELLS)
    cells[4] = new_code_cell("class CausalScaledDotAttention(nn.Module):\n"
                             "    def __init__(self, hidden_size):\n"
                             "        super().__init__()\n"
                             "        # YOUR CODE HERE\n"
                             "        raise NotImplementedError()\n")
    with pytest.raises(NotebookImportError) as e:
        import_from_notebook(write(tmp_path / "blank.ipynb", cells), ["DecoderOnlyTransformer"])
    assert "CausalScaledDotAttention still raises NotImplementedError" in _message(e)
    assert "paste your classes into the cell below" in _message(e)
    # a placeholder in a part the model does not need does not matter
    cells.append(new_code_cell("def greedy_translate(model, word):\n    raise NotImplementedError"))
    cells[4] = CELLS[4]
    assert import_from_notebook(write(tmp_path / "half.ipynb", cells), ["DecoderOnlyTransformer"])


def test_an_error_while_defining_names_its_cell(tmp_path):
    cells = [*CELLS[:2], new_code_cell("import torch\nSIZE = torch.zeros(2) + undefined_name"),
             new_code_cell("def f():\n    return SIZE")]
    with pytest.raises(NotebookImportError, match=r"code cell 2 .* raised NameError"):
        import_from_notebook(write(tmp_path / "err.ipynb", cells), ["f"])


# ------------------------------------------------------------------------------- the real nmt_pig_latin
NMT = REPO / "notebooks" / "nmt_pig_latin" / "nmt_pig_latin.ipynb"
needs_nmt = pytest.mark.skipif(not NMT.is_file(), reason="notebooks/nmt_pig_latin is not there yet")


def _blank(source: str) -> str:
    """The release's version of a solution cell: each solution region replaced by the placeholder."""
    def repl(m):
        indent = m.group(1)
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()"
    return re.sub(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION", repl, source, flags=re.M | re.S)


@needs_nmt
@pytest.mark.parametrize("heads", [1, 3])
def test_the_instructor_nmt_notebook_gives_the_reference_model(heads):
    ref = pytest.importorskip("course_solutions.nmt")
    nmt = import_from_notebook(NMT, ["DecoderOnlyTransformer"])
    torch.manual_seed(0)
    ours = nmt.DecoderOnlyTransformer(30, 16, 2, heads)
    theirs = ref.DecoderOnlyTransformer(30, 16, 2, heads)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    theirs.load_state_dict(ours.state_dict())
    inputs = torch.randint(0, 30, (4, 11))
    assert torch.allclose(ours(inputs), theirs(inputs), atol=1e-5)


@needs_nmt
def test_the_blank_nmt_release_is_refused(tmp_path):
    nb = nbformat.read(NMT, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _blank(cell.source)
    path = tmp_path / "nmt_pig_latin.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookImportError, match="still raise.* NotImplementedError"):
        import_from_notebook(path, ["DecoderOnlyTransformer"])
