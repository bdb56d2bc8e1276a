"""The data store's objects: their paths, checked once for every backend, and what is told of them.

A path is relative, with ``/`` between its parts, like an S3 key: ``reports/2026/q4.csv``. It
must be safe as a file path under the store's folder too, so ``..``, ``.``, empty parts, a
leading ``/``, backslashes, NUL and other control characters are refused, and it fits in S3's
1024 bytes.
"""

from __future__ import annotations

from typing import TypedDict

from rayline.errors import InvalidInput, PayloadTooLarge

MAX_PATH_BYTES = 1024
MAX_PART_BYTES = 255  # a file name, on the folder backend
_SHAPE = "a relative path such as 'folder/file.csv' (parts separated by '/', no '..', '.' or empty part)"


def too_large(size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The object would be {size} bytes; the data store takes objects of at most {max_bytes} bytes "
        "(RAYLINE_MAX_DATA_STORE_OBJECT_BYTES). Split it, or raise the limit on the platform."
    )


def object_path(value: object, field: str = "path_to_object") -> str:
    """``value`` as an object's path, or InvalidInput naming ``field`` and the fix."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} is required: give the object's path in the data store, {_SHAPE}.")
    if len(value.encode()) > MAX_PATH_BYTES:
        raise InvalidInput(
            f"{field} is {len(value.encode())} bytes long; a data store path is at most {MAX_PATH_BYTES}."
        )
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        raise InvalidInput(f"{field} must not contain NUL or other control characters; give {_SHAPE}.")
    if value.startswith("/") or "\\" in value:
        raise InvalidInput(f"{field} {value!r} must be {_SHAPE}, not absolute and without backslashes.")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"{field} {value!r} must be {_SHAPE}.")
    if any(len(part.encode()) > MAX_PART_BYTES for part in parts):
        raise InvalidInput(f"{field}: each part of a path (between '/') is at most {MAX_PART_BYTES} bytes long.")
    return value


def folder_prefix(value: object, field: str = "folder_path") -> str:
    """A folder to list, as the prefix of the paths under it: '' for the whole store."""
    if value is None or value == "" or value == "/":
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a folder's path, e.g. 'reports/2026'.")
    return object_path(value.rstrip("/"), field) + "/"


class ObjectInformation(TypedDict):
    path: str
    last_modified: str  # ISO 8601
    size: int  # bytes
