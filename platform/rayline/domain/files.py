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


@dataclass
class FileValue:
    filename: str
    data: bytes

    def describe(self) -> dict[str, Any]:
        """What an execution's record shows of it."""
        return {"filename": self.filename, "size": len(self.data)}


@dataclass(frozen=True)
class DataStoreFile:
    """A file input mapped to the data store (``datastore_path``): the process that runs the
    execution reads it when the execution starts, with the execution's credential."""

    path: str


class FormText(str):
    """A text field of a form, whose type the input it feeds decides (see ``mappings.from_form``)."""


def size_problem(what: str, size: int, limit: int) -> str | None:
    if size > limit:
        return f"{what} is {size} bytes; the limit is {limit} bytes (RAYLINE_MAX_FILE_BYTES)."
    return None


def _safe_name(filename: str, fallback: str) -> str:
    # Only the base name of what the client sent: it must not choose where the file goes.
    name = Path(filename.replace("\\", "/")).name.replace("\x00", "")
    return fallback if name in ("", ".", "..") else name


def materialize(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The function's arguments with each file written under ``folder`` and replaced by its path."""
    placed = {}
    for name, value in values.items():
        if isinstance(value, FileValue):
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            path = target / _safe_name(value.filename, name)
            path.write_bytes(value.data)
            value = str(path)
        placed[name] = value
    return placed


def read_output(name: str, value: Any, limit: int) -> FileValue:
    """A file output as the function returned it (a path, or bytes), read now: its temporary
    folder is removed after the execution. Raises ValueError, a user error, when it is neither."""
    if isinstance(value, (bytes, bytearray)):
        size, read = len(value), lambda: bytes(value)
        filename = name
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise ValueError(
                f"Output {name!r}: {str(path)!r} is not a file; return the path of a file you wrote, or its bytes."
            )
        size, read, filename = path.stat().st_size, path.read_bytes, path.name
    else:
        raise ValueError(
            f"Output {name!r} is a file: return the path of a file you wrote, or bytes, not {type(value).__name__}."
        )
    problem = size_problem(f"Output {name!r}", size, limit)
    if problem:
        raise ValueError(problem)
    return FileValue(filename, read())
