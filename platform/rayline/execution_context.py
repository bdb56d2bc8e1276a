"""The execution a piece of code runs for, as a context variable.

Warm replicas run many executions in one process (one after another, or at once with parallel
executions), so "which execution is this?" cannot be a global: it follows the call, into
threads started with a copied context and into coroutines. Output routing uses it to keep each
execution's logs apart.
"""

from __future__ import annotations

import threading
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
