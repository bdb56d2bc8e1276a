"""Example pipelines that cannot run here (a GPU) are still checked: they parse, define the
function their README deploys, and create what is slow once, at import."""

import ast
from pathlib import Path

import pytest

from rayline.domain.io_types import parse_input_specs

ROOT = Path(__file__).resolve().parents[2]


def test_the_vllm_pipeline_creates_its_engine_at_import_and_defines_generate():
    tree = ast.parse((ROOT / "notebooks" / "vllm" / "main.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert [a.arg for a in functions["generate"].args.args] == ["prompt", "max_tokens", "temperature"]
    module_level = [node for node in tree.body if isinstance(node, ast.Assign)]
    assert any(
        isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "LLM" for node in module_level
    )
    readme = (ROOT / "notebooks" / "vllm" / "README.md").read_text()
    assert "gpu_request=1" in readme and '"generate"' in readme
    parse_input_specs(
        [
            {"name": "prompt", "data_type": "string"},
            {"name": "max_tokens", "data_type": "number", "default_value": 128},
            {"name": "temperature", "data_type": "number", "default_value": 0.7},
        ]
    )


def test_the_gpu_example_runs_where_a_gpu_and_vllm_are_present():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU here: the vLLM example runs only on a machine with an NVIDIA GPU")
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install vllm)")
    import runpy

    generate = runpy.run_path(str(ROOT / "notebooks" / "vllm" / "main.py"))["generate"]
    result = generate("Say hello.", max_tokens=8, temperature=0.0)
    assert result["text"] and 0 < result["tokens"] <= 8
