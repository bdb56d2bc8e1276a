"""Capturing what an execution prints (stdout, stderr, ``logging``) as its logs.

Lines go to the store in small batches from a background thread, so a long execution's logs are
readable while it runs and a chatty one does not pay one SQL write per line. Everything is also
written to the original stream, so Ray's worker logs and dashboard keep showing it.
"""

from __future__ import annotations

import io
import sys
import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

from rayline.store.models import utcnow

Record = tuple[datetime, str, str]


class LogSink:
    """Collects log records and hands them to ``write`` in batches every ``interval_s``."""

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
            self._write(batch)

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


class _LineTee(io.TextIOBase):
    """A text stream that splits writes into lines for the sink and copies them to ``original``."""

    def __init__(self, sink: LogSink, stream: str, original) -> None:
        self._sink, self._stream, self._original = sink, stream, original
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._sink.add(self._stream, line)
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

    def drain(self) -> None:
        with self._lock:
            rest, self._buffer = self._buffer, ""
        if rest:
            self._sink.add(self._stream, rest)

    @property
    def encoding(self):  # some libraries ask
        return "utf-8"

    def isatty(self) -> bool:
        return False


@contextmanager
def capture_output(sink: LogSink) -> Iterator[None]:
    """Send ``print``, ``sys.stderr`` and ``logging`` output (which writes to sys.stderr) to ``sink``."""
    out, err = _LineTee(sink, "stdout", sys.stdout), _LineTee(sink, "stderr", sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        out.drain()
        err.drain()
