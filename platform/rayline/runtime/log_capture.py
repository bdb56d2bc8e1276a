"""Capturing what executions print (stdout, stderr, ``logging``) as their logs.

``sys.stdout`` and ``sys.stderr`` are replaced by streams that split writes into lines and send
each line to the current execution's scope (a context variable), or to a default scope (the
deployment's log in a warm replica, the one execution in an elastic worker). ``logging``'s
default handler writes to ``sys.stderr`` at each call, so it is captured too. Everything is also
copied to the original stream, so Ray's worker logs and dashboard keep showing it.
"""

from __future__ import annotations

import io
import sys
import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

from rayline.execution_context import ExecutionScope, current_scope
from rayline.store.models import utcnow

Record = tuple[datetime, str, str]


class LogSink:
    """Collects log records and hands them to ``write`` in batches every ``interval_s``, so a long
    execution's logs are readable while it runs and a chatty one pays no write per line."""

    def __init__(self, write: Callable[[list[Record]], None], interval_s: float = 0.2) -> None:
        self._write = write
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval_s = interval_s
        self._thread = threading.Thread(target=self._run, name="rayline-log-sink", daemon=True)
        self._thread.start()

    def add(self, stream: str, message: str) -> None:
        with self._lock:
            self._pending.append((utcnow(), stream, message))

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
        while not self._stop.wait(self._interval_s):
            try:
                self.flush()
            except Exception:  # a failed batch must not kill the execution; the final flush retries
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


class RoutingStream(io.TextIOBase):
    """A text stream whose lines go to the current execution's scope, else to ``default``."""

    def __init__(self, stream: str, original, default: ExecutionScope) -> None:
        self._stream, self._original, self.default = stream, original, default

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        scope = current_scope.get() or self.default
        with scope.lock:
            buffered = scope.partial.get(self._stream, "") + text
            *lines, scope.partial[self._stream] = buffered.split("\n")
        for line in lines:
            scope.emit(self._stream, line)
        try:
            self._original.write(text)
        except Exception:
            pass
        return len(text)

    def flush(self) -> None:
        try:
            self._original.flush()
        except Exception:
            pass

    @property
    def encoding(self) -> str:
        return "utf-8"

    def isatty(self) -> bool:
        return False


def install_routing(default: ExecutionScope) -> tuple[RoutingStream, RoutingStream]:
    """Replace sys.stdout/sys.stderr for the rest of the process's life (a warm replica)."""
    sys.stdout = RoutingStream("stdout", sys.__stdout__, default)
    sys.stderr = RoutingStream("stderr", sys.__stderr__, default)
    return sys.stdout, sys.stderr


@contextmanager
def capture_output(sink: LogSink) -> Iterator[None]:
    """Send everything printed in the block to ``sink`` (an elastic worker's one execution)."""
    scope = ExecutionScope(None, sink.add)
    saved = sys.stdout, sys.stderr
    sys.stdout = RoutingStream("stdout", saved[0], scope)
    sys.stderr = RoutingStream("stderr", saved[1], scope)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        scope.drain()
