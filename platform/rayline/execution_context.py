"""The execution a piece of code runs for, as a context variable.

Warm replicas run many executions in one process (one after another, or at once with parallel
executions), so "which execution is this?" cannot be a global: it follows the call, into
threads started with a copied context and into coroutines. Output routing uses it to keep each
execution's logs apart.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from contextvars import ContextVar

Emit = Callable[[str, str], None]  # (stream, line)


class ExecutionScope:
    """Where one execution's output lines go, with its unfinished lines per (stream, thread):
    ``print`` writes a line in pieces, and an execution's threads print at the same time."""

    def __init__(self, execution_id: str | None, emit: Emit) -> None:
        self.execution_id = execution_id
        self.emit = emit
        self.partial: dict[tuple[str, int], str] = {}
        self.lock = threading.Lock()

    def drain(self) -> None:
        with self.lock:
            rest, self.partial = self.partial, {}
        for (stream, _), text in rest.items():
            if text:
                self.emit(stream, text)


current_scope: ContextVar[ExecutionScope | None] = ContextVar("rayline_execution_scope", default=None)


def current_execution_id() -> str | None:
    """The id of the execution the calling code runs for, or None outside an execution."""
    scope = current_scope.get()
    return scope.execution_id if scope else None


# craft-ai-sdk asks this module, where it can import it, which execution runs (Craft AI injects
# it in its steps), before it reads CRAFT_AI_EXECUTION_ID: in a warm pod, many executions share
# the process and its environment.
CRAFT_CONTEXT_MODULE = "__craft_internal_execution_context"


class _CraftCurrentExecutionId:
    """What craft-ai-sdk calls: ``current_execution_id.get()``, LookupError outside an execution."""

    def get(self) -> str:
        execution_id = current_execution_id()
        if execution_id is None:
            raise LookupError("not in an execution")
        return execution_id


def expose_to_craft_ai_sdk() -> None:
    """Let craft-ai-sdk, in this process, find the execution each of its calls is made for."""
    module = types.ModuleType(CRAFT_CONTEXT_MODULE, "The current execution, for craft-ai-sdk (set by Rayline).")
    module.current_execution_id = _CraftCurrentExecutionId()  # type: ignore[attr-defined]
    sys.modules.setdefault(CRAFT_CONTEXT_MODULE, module)
