"""Environment variables that the platform sets in every execution's ``os.environ``."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from typing import Any

from rayline.errors import InvalidInput

# Matched whole (fullmatch): with match and "$", a trailing newline would pass.
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# What the processes that run executions need as Ray set them up (Ray's and Rayline's settings,
# the GPUs Ray assigned, the interpreter's and the loader's paths): a platform-wide variable must
# not change them.
RESERVED_PREFIXES = ("RAY_", "RAYLINE_", "CUDA_", "NVIDIA_", "PYTHON", "LD_")
RESERVED_NAMES = ("PATH", "HOME", "VIRTUAL_ENV")
MAX_VALUE_LENGTH = 64 * 1024


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 255:
        raise InvalidInput(
            f"Environment variable name {name!r} is not valid: use capital letters, digits and "
            "underscores, not starting with a digit (e.g. 'MY_API_URL')."
        )
    if name.startswith(RESERVED_PREFIXES) or name in RESERVED_NAMES:
        raise InvalidInput(
            f"Environment variable {name!r} is reserved: names starting with "
            f"{', '.join(RESERVED_PREFIXES)} and {', '.join(RESERVED_NAMES)} configure the processes "
            "that run executions; choose another name."
        )
    return name


def check_variables(values: Any) -> dict[str, str]:
    if not isinstance(values, dict) or not values:
        raise InvalidInput("environment_variables must be a non-empty object of name to value.")
    checked = {}
    for name, value in values.items():
        check_name(name)
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInput(f"Environment variable {name!r}: its value must be a string (without NUL characters).")
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidInput(
                f"Environment variable {name!r}: its value is longer than {MAX_VALUE_LENGTH} characters."
            )
        checked[name] = value
    return checked


def apply(
    values: dict[str, str],
    previous: dict[str, str],
    environ: MutableMapping[str, str] = os.environ,
    originals: dict[str, str | None] | None = None,
) -> None:
    """Make ``environ`` hold ``values``: set what changed; a variable deleted since ``previous``
    gets back the value the process had before the platform set it (or goes)."""
    originals = _ORIGINALS if originals is None else originals
    for name in previous.keys() - values.keys():
        original = originals.pop(name, None)
        if original is None:
            environ.pop(name, None)
        else:
            environ[name] = original
    for name, value in values.items():
        if name not in previous:
            originals.setdefault(name, environ.get(name))
        if environ.get(name) != value:
            environ[name] = value


_ORIGINALS: dict[str, str | None] = {}  # this process's own values of the variables the platform set
