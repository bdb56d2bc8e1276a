"""Rayline: run Python pipelines on Ray, from a notebook.

This top-level package is the SDK. Importing it loads only httpx and pydantic, never Ray or
FastAPI, so a notebook can talk to a remote platform without the platform's dependencies. The
platform itself lives in sub-packages (``rayline.api``, ``rayline.services``, ``rayline.runtime``...)
that the SDK never imports. ``current_execution_id()`` is for pipeline code: the id of the
execution it runs for (parallel executions share a process, so this follows the call).
"""

from rayline.execution_context import current_execution_id
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
