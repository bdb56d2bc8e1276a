"""Loading and calling the user's function: shared by elastic workers and warm pods, free of Ray."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def load_function(workdir: Path, function_path: str, function_name: str) -> Callable[..., Any]:
    """Import the pipeline's file as a module (a dotted import when its path allows one, so that
    relative imports work) with the pipeline folder and the file's folder on ``sys.path``."""
    path = workdir / function_path
    sys.path[:0] = [str(path.parent), str(workdir)]
    parts = Path(function_path).with_suffix("").parts
    # A path whose top module is already imported must not resolve to that module.
    if all(part.isidentifier() for part in parts) and parts[0] not in sys.modules:
        module = importlib.import_module(".".join(parts))
    else:
        spec = importlib.util.spec_from_file_location("rayline_pipeline", path)
        if spec is None or spec.loader is None:  # never for a .py file, which pipelines are
            raise ImportError(f"{function_path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AttributeError(f"{function_path} defines no callable named {function_name!r}")
    return function


def argument_filler(function: Callable[..., Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How to turn inputs into the function's keyword arguments: an optional input that was not
    given gets the function's own default, or None when it has none. The signature is read once:
    a warm pod fills arguments at every execution, and ``inspect.signature`` costs more than a
    trivial function's whole call."""
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    without_default = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]

    def fill(inputs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(inputs)
        for name in without_default:
            kwargs.setdefault(name, None)
        return kwargs

    return fill


def call_function(
    function: Callable[..., Any],
    inputs: dict[str, Any],
    fill: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Any:
    """Call the function in this process, running a coroutine to its end; ``fill``: its
    ``argument_filler``, when the caller keeps one."""
    result = function(**(fill or argument_filler(function))(inputs))
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
