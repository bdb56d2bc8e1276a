"""Capturing what executions print (stdout, stderr, ``logging``) as their logs.

``sys.stdout`` and ``sys.stderr`` are replaced by streams that split writes into lines and send
each line to the current execution's scope (a context variable), or to a default scope (the
deployment's log in a warm replica, the one execution in an elastic child). ``logging``'s
default handler writes to ``sys.stderr`` at each call, so it is captured too. Everything is also
copied to the original stream, so Ray's worker logs and dashboard keep showing it. An elastic
child also captures its file descriptors 1 and 2 (``capture_descriptors``): what subprocesses and
C extensions write there is its execution's too.

Threads do not inherit context variables, so in a warm replica ``follow_executions_into_threads``
makes a thread started (``threading.Thread``) or a task submitted (``ThreadPoolExecutor``) during
an execution belong to that execution: what the user's own threads print stays in its logs.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol, TextIO

from rayline.execution_context import ExecutionScope, current_scope

_following_threads = False

Record = tuple[datetime, str, str]
# How long the end of an execution waits for what its descriptors still carry (a process it
# started, still running, may hold them open: it is stopped with the execution anyway).
DESCRIPTOR_DRAIN_S = 0.5


class Lines(Protocol):
    def add(self, stream: str, message: str) -> None: ...


class LogSink:
    """Collects log records and hands them to ``write`` in batches every ``interval_s``, starting
    ``delay_s`` after it is created: a long execution's logs are readable while it runs, a short
    one writes nothing itself (its caller records what ``close`` returns). Its thread starts
    with the first record: an execution that prints nothing costs no thread."""

    def __init__(self, write: Callable[[list[Record]], None], interval_s: float = 0.2, delay_s: float = 0.0) -> None:
        self._write = write
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval_s = interval_s
        self._first_write_at = time.monotonic() + delay_s
        self._thread: threading.Thread | None = None

    def add(self, stream: str, message: str) -> None:
        self.add_record((datetime.now(UTC), stream, message))

    def add_record(self, record: Record) -> None:
        with self._lock:
            self._pending.append(record)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="rayline-log-sink", daemon=True)
                self._thread.start()

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
        if self._stop.wait(max(0.0, self._first_write_at - time.monotonic())):
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
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
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
def capture_output(sink: Lines, execution_id: str, originals: tuple[TextIO, TextIO] | None = None) -> Iterator[None]:
    """Send everything printed in the block to ``sink`` (an elastic child's one execution),
    from any thread: the process serves only this execution. Copies go to ``originals``, by
    default the streams replaced."""
    scope = ExecutionScope(execution_id, sink.add)
    saved = sys.stdout, sys.stderr
    copies = originals or saved
    sys.stdout = RoutingStream("stdout", copies[0], scope)
    sys.stderr = RoutingStream("stderr", copies[1], scope)
    token = current_scope.set(scope)
    try:
        yield
    finally:
        current_scope.reset(token)
        sys.stdout, sys.stderr = saved
        scope.drain()


def _pump(pipes: dict[int, tuple[str, int]], emit: Callable[[str, str], None]) -> None:
    """Read the pipes (read end -> (stream, where to copy)) line by line until each is closed."""
    partial = dict.fromkeys(pipes, b"")
    with selectors.DefaultSelector() as selector:
        for read_end in pipes:
            selector.register(read_end, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                read_end = key.fd
                stream, copy_to = pipes[read_end]
                try:
                    data = os.read(read_end, 65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(read_end)
                    os.close(read_end)
                    if partial[read_end]:
                        emit(stream, partial[read_end].decode("utf-8", "replace"))
                    continue
                with contextlib.suppress(OSError):
                    os.write(copy_to, data)
                *lines, partial[read_end] = (partial[read_end] + data).split(b"\n")
                for line in lines:
                    emit(stream, line.decode("utf-8", "replace"))


@contextmanager
def capture_descriptors(emit: Callable[[str, str], None]) -> Iterator[tuple[TextIO, TextIO]]:
    """Send what is written to file descriptors 1 and 2 in the block (by subprocesses, C
    extensions, ``sys.__stdout__``) to ``emit`` line by line, copied to where they pointed
    before. Yields text streams on those former destinations, for Python's own streams to copy
    to (which ``capture_output`` sends to the sink itself, in order with the rest)."""
    saved, pipes = [], {}
    for fd, stream in ((1, "stdout"), (2, "stderr")):
        original = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        saved.append(original)
        pipes[read_end] = (stream, original)
    pump = threading.Thread(target=_pump, args=(pipes, emit), name="rayline-descriptors", daemon=True)
    pump.start()
    # Not closed: they are the former descriptors themselves (closefd=False), kept for the process.
    out, err = (open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False) for fd in saved)  # noqa: SIM115
    try:
        yield out, err
    finally:
        for text in (sys.__stdout__, sys.__stderr__, out, err):
            with contextlib.suppress(Exception):
                if text is not None:
                    text.flush()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)  # the pipes' last write ends in this process: the pump sees their end
        pump.join(DESCRIPTOR_DRAIN_S)


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
