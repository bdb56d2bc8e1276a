"""Waiting for warm pods to catch up with a change they follow."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, select

from rayline.store.db import Database
from rayline.store.models import Pod

logger = logging.getLogger(__name__)


def wait_until_no_pod(db: Database, *where: Any, timeout_s: float = 5.0) -> bool:
    """Return True once no pod matches ``where`` (each pod is told of a change at once, through
    its long poll, and records what it now applies in its row), or False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as session:
            if not session.scalar(select(func.count()).select_from(Pod).where(*where)):
                return True
        time.sleep(0.05)
    logger.warning("pods did not catch up within %s s", timeout_s)
    return False
