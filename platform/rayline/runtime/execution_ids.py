"""A warm pod's execution ids: numbers taken from the control plane in blocks, so that a call
does not wait for it. The first block is taken at start-up, the next in the background before the
current one runs out; only a burst that empties the block makes a call wait (``next``, which
waits on a thread, never on the event loop)."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable

from rayline.errors import PlatformFailure

logger = logging.getLogger(__name__)

ID_BLOCK = 100
# A pod that used its last block within a second takes twice as many numbers next time, up to
# this: a busy pod asks for numbers about once a second (each ask is a Serve call, milliseconds
# of its CPU). Its next refill after 10 s without one takes ID_BLOCK again; until then a pod that
# stops after a burst leaves a gap of up to MAX_ID_BLOCK and a half in the numbering.
MAX_ID_BLOCK = 1000
WAIT_S = 60.0  # how long a call waits for a block before it fails


class ExecutionIds:
    def __init__(self, prefix: str, take_block: Callable[[int], list[int]], block: int = ID_BLOCK) -> None:
        self._prefix = prefix  # ids are "<deployment>-<number>"
        self._take_block = take_block  # the control plane's numbers (blocking)
        self._block = self._first_block = block
        self._refilled_at = -1.0  # monotonic
        self._numbers: collections.deque[int] = collections.deque()
        self._ready = threading.Condition()
        self._refilling = True
        self._refill()  # the first block now: a pod that cannot have one must not start

    def _refill(self, quietly: bool = False) -> None:
        """Take a block; ``quietly`` (in the background), a failure is logged, and the next call
        that finds the block low tries again."""
        now = time.monotonic()
        if self._refilled_at >= 0 and now - self._refilled_at < 1.0:
            self._block = min(self._block * 2, max(MAX_ID_BLOCK, self._first_block))
        elif now - self._refilled_at > 10.0:
            self._block = self._first_block
        self._refilled_at = now
        try:
            numbers = self._take_block(self._block)
            with self._ready:
                self._numbers.extend(numbers)
        except Exception:
            if not quietly:
                raise
            logger.warning(
                "could not take execution numbers for %s; retrying at the next call", self._prefix, exc_info=True
            )
        finally:
            with self._ready:
                self._refilling = False
                self._ready.notify_all()

    def _take(self) -> str | None:
        # Called with the condition held.
        number = self._numbers.popleft() if self._numbers else None
        if len(self._numbers) < self._block // 2 and not self._refilling:
            self._refilling = True
            threading.Thread(target=self._refill, args=(True,), name="rayline-ids", daemon=True).start()
        return None if number is None else f"{self._prefix}-{number}"

    def next_nowait(self) -> str | None:
        """The next id, or None when the block is empty (then ``await next()``)."""
        with self._ready:
            return self._take()

    async def next(self) -> str:
        return await asyncio.to_thread(self.wait)

    def wait(self) -> str:
        """The next id, waiting for the next block if need be (blocking: on a thread only)."""
        deadline = time.monotonic() + WAIT_S
        with self._ready:
            while True:
                execution_id = self._take()
                if execution_id is not None:
                    return execution_id
                if time.monotonic() > deadline:
                    raise PlatformFailure(f"No execution number could be had from the control plane for {WAIT_S:g} s.")
                self._ready.wait(1.0)
