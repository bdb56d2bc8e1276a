"""The notebooks run top to bottom against the test session's platform, as a user runs them."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


@pytest.mark.parametrize("name", sorted(BUILD.NOTEBOOKS))
def test_the_committed_notebook_is_the_one_build_py_writes(name):
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in BUILD.build(BUILD.NOTEBOOKS[name]).cells]
    assert any(c.get("outputs") for c in committed.cells), "outputs are kept: run build.py --execute"


@pytest.mark.parametrize("name", sorted(BUILD.NOTEBOOKS))
def test_every_cell_runs(platform, monkeypatch, name):
    monkeypatch.setenv("RAYLINE_ENVIRONMENT_URL", platform.url)
    monkeypatch.setenv("RAYLINE_SDK_TOKEN", platform.token)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    BUILD.execute(notebook)  # raises CellExecutionError, with the cell and its traceback, on any error
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
