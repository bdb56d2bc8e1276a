"""File inputs and outputs: bytes that travel with an execution, a path for the user's code.

A file input arrives as a multipart part and reaches the function as the path of a temporary
file that the platform removes after the execution. A file output is returned by the function as
a path (or bytes); the platform reads it, stores it with the execution, and answers the caller
with it (``application/octet-stream``). Records never hold file contents, only their name and size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayline.errors import PayloadTooLarge


@dataclass
class FileValue:
    filename: str
    data: bytes

    def describe(self) -> dict[str, Any]:
        """What an execution's record shows of it."""
        return {"filename": self.filename, "size": len(self.data)}


def check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"File {name!r} is {size} bytes; the limit is {limit} bytes (RAYLINE_MAX_FILE_BYTES).")


def materialize(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The function's arguments with each file written under ``folder`` and replaced by its path."""
    placed = {}
    for name, value in values.items():
        if isinstance(value, FileValue):
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            # Only the base name of what the client sent: it must not choose where the file goes.
            path = target / (Path(value.filename).name or name)
            path.write_bytes(value.data)
            value = str(path)
        placed[name] = value
    return placed


def read_output(name: str, value: Any, limit: int) -> FileValue:
    """A file output as the function returned it (a path, or bytes), read now: its temporary
    folder is removed after the execution. Raises ValueError, a user error, when it is neither."""
    if isinstance(value, (bytes, bytearray)):
        check_output_size(name, len(value), limit)
        return FileValue(name, bytes(value))
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"Output {name!r}: {str(path)!r} is not a file; return the path of a file you wrote, "
                             "or its bytes.")
        check_output_size(name, path.stat().st_size, limit)
        return FileValue(path.name, path.read_bytes())
    raise ValueError(f"Output {name!r} is a file: return the path of a file you wrote, or bytes, not "
                     f"{type(value).__name__}.")


def check_output_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise ValueError(f"Output {name!r} is a file of {size} bytes; the limit is {limit} bytes "
                         "(RAYLINE_MAX_FILE_BYTES).")
