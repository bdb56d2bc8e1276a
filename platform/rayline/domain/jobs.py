"""What an elastic execution's worker is given: plain data, pickled to it by Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rayline.domain.names import CONTROL_PLANE_APP


@dataclass
class ExecutionJob:
    """Everything a worker needs, pickled to it by Ray."""

    execution_id: str
    function_path: str
    function_name: str
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    outputs_mapping: list[dict[str, Any]] = field(default_factory=list)  # normalized (rayline.domain.mappings)
    timeout_s: float | None = None  # enforced by the runner, which stops the worker past it
    environment: dict[str, str] = field(default_factory=dict)  # the platform's environment variables
    max_file_bytes: int = 50 * 1024**2  # the largest file output
    # Appends to this execution's logs only, until it ends (set by the runner); not in a repr.
    log_credential: str = field(default="", repr=False)
    # The API's URL, the execution's id and its credential, for its user code (code_credentials).
    code_environment: dict[str, str] = field(default_factory=dict, repr=False)
    control_plane_app: str = CONTROL_PLANE_APP
