"""The control plane's own secrets (database URL, package token), kept out of Ray's GCS.

Serve keeps every replica's constructor arguments in the GCS, where any code running in the
cluster (a pipeline included) can read them. So ``rayline up`` writes these to a 0600 file in
``RAYLINE_HOME`` on the head node, and the control plane, placed on the head, reads them back.
"""

from __future__ import annotations

import json

from rayline.config import Settings
from rayline.services.credentials import _write_private


def write_platform_secrets(settings: Settings) -> None:
    _write_private(settings.platform_secrets_path, json.dumps(settings.secrets()))


def with_platform_secrets(settings: Settings) -> Settings:
    """``settings`` (as shipped to the cluster) with the secrets ``rayline up`` wrote."""
    return settings.with_secrets(json.loads(settings.platform_secrets_path.read_text()))
