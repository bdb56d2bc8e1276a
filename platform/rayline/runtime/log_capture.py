"""Capturing what executions print (stdout, stderr, ``logging``) as their logs.

``sys.stdout`` and ``sys.stderr`` are replaced by streams that split writes into lines and send
each line to the current execution's scope (a context variable), or to a default scope (the
deployment's log in a warm replica, the one execution in an elastic worker). ``logging``'s
default handler writes to ``sys.stderr`` at each call, so it is captured too. Everything is also
copied to the original stream, so Ray's worker logs and dashboard keep showing it.

Threads do not inherit context variables, so in a warm replica ``follow_executions_into_threads``
makes a thread started (``threading.Thread``) or a task submitted (``ThreadPoolExecutor``) during
an execution belong to that execution: what the user's own threads print stays in its logs.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

from rayline.execution_context import ExecutionScope, current_scope

_following_threads = False

Record = tuple[datetime, str, str]


class LogSink:
    """Collects log records and hands them to ``write`` in batches every ``interval_s``, starting
    ``delay_s`` after it is created: a long execution's logs are readable while it runs, a short
    one writes nothing itself (its caller records what ``close`` returns)."""

    def __init__(self, write: Callable[[list[Record]], None], interval_s: float = 0.2, delay_s: float = 0.0) -> None:
        self._write = write
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval_s, self._delay_s = interval_s, delay_s
        self._thread = threading.Thread(target=self._run, name="rayline-log-sink", daemon=True)
        self._thread.start()

    def add(self, stream: str, message: str) -> None:
        with self._lock:
            self._pending.append((datetime.now(UTC), stream, message))

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            try:
                self._write(batch)
            except Exception:
                with self._lock:  # put it back, in order, for the next flush
                    self._pending[:0] = batch
                raise

    def _run(self) -> None:
        if self._stop.wait(self._delay_s):
            return
        while True:
            # A failed batch stays pending: the next flush, or close(), has it. Not logged: this
            # runs in the user's process, where stderr is the execution's own log.
            with contextlib.suppress(Exception):
                self.flush()
            if self._stop.wait(self._interval_s):
                return

    def close(self) -> list[Record]:
        """Stop streaming; returns what was not written yet."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            rest, self._pending = self._pending, []
        return rest


class RoutingStream(io.TextIOBase):
    """A text stream whose lines go to the current execution's scope, else to ``default``."""

    encoding = "utf-8"  # shadows TextIOBase's, which is None

    def __init__(self, stream: str, original, default: ExecutionScope) -> None:
        self._stream, self._original, self.default = stream, original, default

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        scope = current_scope.get() or self.default
        key = (self._stream, threading.get_ident())
        with scope.lock:
            buffered = scope.partial.get(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                scope.partial[key] = rest
            else:
                scope.partial.pop(key, None)
        for line in lines:
            scope.emit(self._stream, line)
        with contextlib.suppress(Exception):
            self._original.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self._original.flush()

    def isatty(self) -> bool:
        return False


def install_routing(default: ExecutionScope) -> tuple[RoutingStream, RoutingStream]:
    """Replace sys.stdout/sys.stderr for the rest of the process's life (a warm replica)."""
    sys.stdout = RoutingStream("stdout", sys.__stdout__, default)
    sys.stderr = RoutingStream("stderr", sys.__stderr__, default)
    return sys.stdout, sys.stderr


@contextmanager
def capture_output(sink: LogSink, execution_id: str) -> Iterator[None]:
    """Send everything printed in the block to ``sink`` (an elastic worker's one execution),
    from any thread: the process serves only this execution."""
    scope = ExecutionScope(execution_id, sink.add)
    saved = sys.stdout, sys.stderr
    sys.stdout = RoutingStream("stdout", saved[0], scope)
    sys.stderr = RoutingStream("stderr", saved[1], scope)
    token = current_scope.set(scope)
    try:
        yield
    finally:
        current_scope.reset(token)
        sys.stdout, sys.stderr = saved
        scope.drain()


def _in_scope(scope: ExecutionScope, function: Callable, *args, **kwargs):
    token = current_scope.set(scope)
    try:
        return function(*args, **kwargs)
    finally:
        current_scope.reset(token)


def follow_executions_into_threads() -> None:
    """Make threads and thread-pool tasks started during an execution run in its scope (once
    per process; code outside executions is left untouched)."""
    global _following_threads
    if _following_threads:
        return
    _following_threads = True
    start, submit = threading.Thread.start, ThreadPoolExecutor.submit

    def start_in_scope(self: threading.Thread) -> None:
        scope = current_scope.get()
        if scope is not None:
            run = self.run  # a subclass's run too: the instance attribute shadows it
            self.run = lambda: _in_scope(scope, run)  # type: ignore[method-assign]  # this thread's only
        start(self)

    def submit_in_scope(self: ThreadPoolExecutor, fn: Callable, /, *args, **kwargs):
        # A pool's worker thread serves the tasks of any execution: the scope goes with the task,
        # and a worker the pool starts now belongs to none.
        scope = current_scope.get()
        if scope is None:
            return submit(self, fn, *args, **kwargs)
        token = current_scope.set(None)
        try:
            return submit(self, _in_scope, scope, fn, *args, **kwargs)
        finally:
            current_scope.reset(token)

    # Patched on purpose, for every thread and pool of the process (see the module's docstring).
    threading.Thread.start = start_in_scope  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = submit_in_scope  # type: ignore[method-assign, assignment]
