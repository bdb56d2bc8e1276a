"""Helpers shared by the unit and integration tests. Free ports come from ``rayline.ports``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout_s: float, what: str | Callable[[], str], interval_s: float = 0.05
) -> T:
    """Call ``condition`` until what it returns is true, and return that; past ``timeout_s``,
    raise AssertionError naming ``what`` did not happen (a callable ``what`` is called then, to
    say what was seen last). The condition is called at least once, and once more at the deadline.
    Instead of a fixed sleep before an assertion: as fast as the platform allows, yet bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = condition()
        if outcome:
            return outcome
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what() if callable(what) else what}")
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
