"""Rayline: run Python pipelines on Ray, from a notebook.

This top-level package is the SDK. Importing it loads only httpx and pydantic, never Ray or
FastAPI, so a notebook can talk to a remote platform without the platform's dependencies. The
platform itself lives in sub-packages (``rayline.api``, ``rayline.services``, ``rayline.runtime``...)
that the SDK never imports; the SDK's names are imported on first use, so that the platform's own
processes (an elastic execution's template above all) do not pay for httpx.
``current_execution_id()`` is for pipeline code: the id of the execution it runs for (parallel
executions share a process, so this follows the call).
"""

from typing import TYPE_CHECKING, Any

from rayline.execution_context import current_execution_id

if TYPE_CHECKING:
    from rayline.sdk.client import RaylineSdk
    from rayline.sdk.errors import SdkException
    from rayline.sdk.io import INPUT_OUTPUT_TYPES, Input, InputSource, Output, OutputDestination

__version__ = "0.1.0"

__all__ = [
    "INPUT_OUTPUT_TYPES",
    "Input",
    "InputSource",
    "Output",
    "OutputDestination",
    "RaylineSdk",
    "SdkException",
    "current_execution_id",
]

_LAZY = {
    "INPUT_OUTPUT_TYPES": "rayline.sdk.io",
    "Input": "rayline.sdk.io",
    "InputSource": "rayline.sdk.io",
    "Output": "rayline.sdk.io",
    "OutputDestination": "rayline.sdk.io",
    "RaylineSdk": "rayline.sdk.client",
    "SdkException": "rayline.sdk.errors",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'rayline' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
