"""Names of pipelines and deployments: they become URL path parts and Ray Serve app names."""

from __future__ import annotations

import re

from rayline.errors import InvalidInput

MAX_NAME_LENGTH = 63
# Matched whole (fullmatch): with match and "$", a trailing newline would pass.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

# The control plane's Serve application: pods and elastic workers reach it by this name.
CONTROL_PLANE_APP = "rayline"
# The one Serve deployment in a low-latency deployment's application (serve_apps.low_latency
# builds it; the console links to its replicas in Ray's dashboard).
POD_SERVE_DEPLOYMENT = "pipeline"


def validate_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} is required: lowercase letters, digits and dashes, e.g. 'my-pipeline'.")
    if len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{field} {value!r} is not valid: use at most {MAX_NAME_LENGTH} lowercase letters, digits "
            "and dashes, starting and ending with a letter or a digit (e.g. 'my-pipeline')."
        )
    return value
