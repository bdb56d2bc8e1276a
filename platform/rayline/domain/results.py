"""What one execution's return value becomes, the same for elastic workers and warm pods: checked
against the pipeline's declared outputs, then placed by the deployment's output mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rayline.domain.files import FileValue
from rayline.domain.io_types import OutputSpec, check_outputs
from rayline.domain.mappings import kept_files, place_outputs, to_data_store


@dataclass(frozen=True)
class Settled:
    returned: dict[str, Any]  # what the endpoint's caller gets
    records: list[dict[str, Any]]  # the execution record's outputs
    files: dict[str, FileValue] = field(default_factory=dict)  # file outputs kept, by output name
    to_data_store: dict[str, FileValue] = field(default_factory=dict)  # by their path in the data store


@dataclass(frozen=True)
class OutputContract:
    specs: list[OutputSpec]
    mapping: list[dict[str, Any]]  # normalized (rayline.domain.mappings)
    max_file_bytes: int

    @classmethod
    def of(cls, outputs: list[dict[str, Any]], mapping: list[dict[str, Any]], max_file_bytes: int) -> OutputContract:
        return cls([OutputSpec(**spec) for spec in outputs], mapping, max_file_bytes)

    def settle(self, returned: Any) -> Settled:
        """Raises (InvalidInput, TypeError...) when the function returned what it did not declare."""
        values = check_outputs(self.specs, returned, self.max_file_bytes)
        caller, records = place_outputs(self.mapping, values)
        return Settled(caller, records, kept_files(records, values), to_data_store(self.mapping, values))


def failure_text(error: BaseException) -> str:
    """An execution's error, when its code raised: the traceback goes to its logs."""
    sentence = f"{type(error).__name__}: {error}"
    return f"{sentence if sentence.endswith('.') else sentence + '.'} The traceback is in the execution's logs."
