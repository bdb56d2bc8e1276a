"""Environment variables that the platform sets in every execution's ``os.environ``."""

from __future__ import annotations

import os
import re
from typing import Any, MutableMapping

from rayline.errors import InvalidInput

_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Ray's and Rayline's own settings are read from the environment of the processes that run
# executions; a platform-wide variable must not change how they behave.
RESERVED_PREFIXES = ("RAY_", "RAYLINE_")
MAX_VALUE_LENGTH = 64 * 1024


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 255:
        raise InvalidInput(f"Environment variable name {name!r} is not valid: use capital letters, digits and "
                           "underscores, not starting with a digit (e.g. 'MY_API_URL').")
    if name.startswith(RESERVED_PREFIXES):
        raise InvalidInput(f"Environment variable {name!r}: names starting with {' or '.join(RESERVED_PREFIXES)} "
                           "are reserved for Ray and Rayline; choose another name.")
    return name


def check_variables(values: Any) -> dict[str, str]:
    if not isinstance(values, dict) or not values:
        raise InvalidInput("environment_variables must be a non-empty object of name to value.")
    checked = {}
    for name, value in values.items():
        check_name(name)
        if not isinstance(value, str):
            raise InvalidInput(f"Environment variable {name!r}: its value must be a string.")
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidInput(f"Environment variable {name!r}: its value is longer than {MAX_VALUE_LENGTH} characters.")
        checked[name] = value
    return checked


def apply(values: dict[str, str], previous: dict[str, str], environ: MutableMapping[str, str] = os.environ) -> None:
    """Make ``environ`` hold ``values``: set what changed, remove what was deleted since ``previous``
    (variables the platform did not set are left alone)."""
    for name in previous.keys() - values.keys():
        environ.pop(name, None)
    for name, value in values.items():
        if environ.get(name) != value:
            environ[name] = value
