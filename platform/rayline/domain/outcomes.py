"""What asking a deployment for one execution comes to, as frozen values instead of status dicts.

A warm pod returns one of these through a Serve handle (they pickle), the elastic path builds one
from the execution's record, and each boundary maps it once: ``rayline.api.http_errors.outcome_response`` to an HTTP
answer, ``DeploymentService.trigger`` to the platform's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rayline.domain.statuses import ExecutionStatus


@dataclass(frozen=True)
class Refused:
    """The inputs are wrong (400); no execution was recorded."""

    message: str


@dataclass(frozen=True)
class Busy:
    """The pod runs and queues all it may (503 with Retry-After); no execution was recorded."""

    message: str
    retry_after_s: int


@dataclass(frozen=True)
class Ended:
    """An execution that was recorded and has ended (its record says the same)."""

    execution_id: str
    status: ExecutionStatus
    output: dict[str, Any] = field(default_factory=dict)  # what the caller gets, when it succeeded
    error: str | None = None
    timed_out: bool = False  # it ran past execution_timeout_s

    @property
    def succeeded(self) -> bool:
        return self.status == ExecutionStatus.SUCCEEDED


Outcome = Refused | Busy | Ended
