"""How many executions a warm replica runs at once, and the queue of those that wait.

Serve's ``max_ongoing_requests`` counts requests, not running code: once an execution has timed
out its caller is answered, but a thread cannot be stopped, so its user function still runs.
The slots are held by the running function itself (a thread, or a coroutine's task) and released
when it really ends, so at no moment do more than ``limit`` user functions run. Callers beyond
the limit wait in arrival order; past ``max_waiting`` they are refused at once.

Everything here runs on the replica's event loop, so no lock is needed; other threads read only
``load``, an immutable pair replaced at each change.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Literal, overload

# How the expected wait is smoothed (an exponential moving average of execution durations).
_DURATION_WEIGHT = 0.2


class ExecutionSlots:
    def __init__(self, limit: int, max_waiting: int) -> None:
        if limit < 1 or max_waiting < 0:
            raise ValueError("limit must be at least 1 and max_waiting at least 0.")
        self.limit, self.max_waiting = limit, max_waiting
        self.running = 0
        self.reading = 0  # admitted calls whose request is still being read
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._mean_duration_s = 1.0
        self.load = (0, 0)  # (running, waiting), for threads other than the loop's

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _changed(self) -> None:
        self.load = (self.running, len(self._waiters))

    def admit(self) -> bool:
        """Room for one more call whose request is still being read, or False when every slot
        and every place in the queue is taken (refuse it before reading its body). An admitted
        call takes its place with ``reserve(admitted=True)`` once read, or ``leave()``s: a slow
        upload holds no running slot meanwhile."""
        if self.running + len(self._waiters) + self.reading >= self.limit + self.max_waiting:
            return False
        self.reading += 1
        return True

    def leave(self) -> None:
        """An admitted call that will not run (its body was refused, or its caller left)."""
        self.reading -= 1

    @overload
    def reserve(self, admitted: Literal[True]) -> asyncio.Future: ...
    @overload
    def reserve(self, admitted: bool = False) -> asyncio.Future | None: ...
    def reserve(self, admitted: bool = False) -> asyncio.Future | None:
        """A place for one execution: a future that is done once it holds a slot (at once when
        one is free and nobody waits), or None when the queue is full (never for an admitted
        call: there was room when it came)."""
        if admitted:
            self.reading -= 1
        place = asyncio.get_running_loop().create_future()
        if self.running < self.limit and not self._waiters:
            self.running += 1
            place.set_result(None)
        elif admitted or len(self._waiters) < self.max_waiting:
            self._waiters.append(place)
        else:
            return None
        self._changed()
        return place

    async def wait(self, place: asyncio.Future) -> None:
        """Wait for a reserved place to become a slot; a caller cancelled right after being
        handed the slot gives it back."""
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.release()
            raise

    def give_back(self, place: asyncio.Future) -> None:
        """A reserved place that will not run (its caller's input was refused, or it left)."""
        if place.done() and not place.cancelled():
            self.release()
        elif place in self._waiters:
            self._waiters.remove(place)
            place.cancel()
            self._changed()

    def release(self, duration_s: float | None = None) -> None:
        """The function holding a slot has ended: hand its slot to the first waiter."""
        if duration_s is not None:
            self._mean_duration_s += _DURATION_WEIGHT * (duration_s - self._mean_duration_s)
        while self._waiters:
            place = self._waiters.popleft()
            if not place.done():  # a waiter cancelled (its replica stopping) lets the next one in
                place.set_result(None)
                self._changed()
                return
        self.running -= 1
        self._changed()

    def retry_after_s(self) -> int:
        """Whole seconds until a refused caller may find room: one slot frees about every mean
        duration / limit seconds."""
        return max(1, math.ceil(self._mean_duration_s / self.limit))
