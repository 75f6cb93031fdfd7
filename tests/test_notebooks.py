"""Every notebook in notebooks/ runs top to bottom, short, and is stored without outputs.

Each notebook opens with one code cell tagged "parameters" whose defaults are
the real thing (25 epochs, every example). The test appends the short values
in SHORT to that cell, executes the notebook in a fresh Jupyter kernel with
nbclient from the repository root (so `import nn` is this checkout), and fails
on any cell's error. The short values keep all four within about two minutes.
"""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: What CI runs instead of each notebook's defaults (appended to its parameters cell).
SHORT = {
    "01-seed-notebook.ipynb": "EPOCHS = 1\nEXAMPLES = 6000\nSPREAD_SEEDS = (0, 1)\nSPREAD_EPOCHS = 1",
    "02-backprop-by-hand.ipynb": "FULL_GRADCHECK = False",
    "03-check-your-own-layer.ipynb": "TRAIN_EXAMPLES = 2000\nEPOCHS = 1\nHIDDEN = 8",
    "04-why-two-correct-implementations-diverge.ipynb": "STEPS = 300\nFLOAT64_STEPS = 300",
}


def test_every_notebook_has_a_short_run():
    assert sorted(SHORT) == [path.name for path in NOTEBOOKS]


def parameters_cell(notebook):
    """The first code cell, which must be tagged "parameters"."""
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be the parameters cell"
    return first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    parameters_cell(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} is stored with outputs; clear them (jupyter nbconvert --clear-output --inplace)")


@pytest.mark.slow
@pytest.mark.keras
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, record_property):
    notebook = nbformat.read(path, as_version=4)
    cell = parameters_cell(notebook)
    cell.source += "\n\n# CI: a short run (tests/test_notebooks.py)\n" + SHORT[path.name]
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
