"""docs/tutorial.ipynb runs from top to bottom on real CIFAR-10 images, so it cannot go
stale: every cell is executed on a Python kernel (nbclient) and its own asserts hold (the
hand-made gradient matches backprop, training learns, unit_normal fails its health checks,
lr 3 makes the loss leap and the ReLUs die, the MLflow run ends FINISHED). 35-40 s on 2
cores shared with other work."""

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def _execute(folder: Path, timeout: int = 300):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def _text(notebook) -> str:
    return "\n".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", ()))


def test_the_tutorial_is_committed_without_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert [i for i, c in enumerate(notebook.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count)] == []


@pytest.mark.slow
@pytest.mark.data
def test_the_tutorial_runs_from_top_to_bottom(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_ROOT", str(cifar_root))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile: its MLflow store
    text = _text(_execute(tmp_path))
    assert "relative error" in text
    assert "=> FAIL: initial weights far too large" in text  # unit_normal's diagnosis
    assert "=> FAIL: learning rate too high" in text  # lr 3's
    assert re.search(r"\[(WARN|FAIL)\] largest fraction of dead ReLUs", text)
    stores = list(tmp_path.glob("tutorial-mlflow-*/mlflow.db"))
    assert len(stores) == 1
    assert list(stores[0].parent.glob("artifacts/*/artifacts/weights.npz"))
    assert not (tmp_path / "mlruns").exists()
    assert f'make ui ARGS="--tracking-uri sqlite:///{stores[0]}' in text


def test_the_tutorial_says_what_to_set_without_cifar10_root(tmp_path, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    monkeypatch.delenv("CIFAR10_ROOT", raising=False)
    with pytest.raises(CellExecutionError, match="Set CIFAR10_ROOT to a folder holding"):
        _execute(tmp_path, timeout=120)
