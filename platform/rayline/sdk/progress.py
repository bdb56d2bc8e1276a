"""A status line while the SDK waits: in a notebook or a terminal, one line rewritten in place
("Deployment 'x': creation_pending, 3 s"); nothing when output goes to a file or a pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def interactive(stream: TextIO) -> bool:
    if _in_a_notebook():  # a Jupyter kernel shows its output live and honours "\r"
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _in_a_notebook() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: only if the process already has it
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class StatusLine:
    def __init__(self, what: str, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self._what, self._stream = what, stream or sys.stderr
        self._enabled = interactive(self._stream) if enabled is None else enabled
        self._began, self._width, self._shown = time.monotonic(), 0, False

    def update(self, status: str) -> None:
        if not self._enabled:
            return
        text = f"{self._what}: {status}, {time.monotonic() - self._began:.0f} s"
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width, self._shown = max(self._width, len(text)), True

    def close(self, status: str) -> None:
        """The final status, on a line of its own (only if something was shown)."""
        if self._shown:
            self.update(status)
            self._stream.write("\n")
            self._stream.flush()
