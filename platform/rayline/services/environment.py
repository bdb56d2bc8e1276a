"""Environment variables: set, listed and deleted platform-wide, seen by every execution.

Values are stored encrypted with the platform's key. Elastic executions get the current values
when they start; warm pods follow the variables' version and confirm it in their pod row, so once
a change returns, the next execution anywhere sees it, without a restart.
"""

from __future__ import annotations

import builtins  # in annotations after a method named list, which shadows the built-in there
from collections.abc import Callable

from rayline.domain.environment import check_name, check_variables
from rayline.domain.statuses import PodStatus
from rayline.errors import NotFound, PlatformFailure
from rayline.services.credentials import SecretBox
from rayline.store import environment as store
from rayline.store.db import Database
from rayline.store.models import Pod
from rayline.store.pods import wait_until_no_pod


class EnvironmentService:
    def __init__(self, db: Database, box: SecretBox, on_change: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self._box = box
        self._on_change = on_change  # wakes the warm pods, which follow the variables' version
        # Every elastic execution reads the variables: decrypted once per version, not per call.
        self._cached: tuple[int, dict[str, str]] | None = None

    def current(self) -> dict[str, str]:
        with self._db.session() as session:
            version = store.version(session)
            cached = self._cached
            if cached is None or cached[0] != version:
                # Read in the same transaction as the version: what is cached is that version's
                # or newer (a change is written before its version is bumped).
                cached = self._cached = (version, store.load(session, self._box.open))
        return dict(cached[1])

    def list(self) -> list[dict[str, str]]:
        return [{"name": name, "value": value} for name, value in sorted(self.current().items())]

    def put(self, values: object) -> builtins.list[str]:
        checked = check_variables(values)
        self._reached_pods(store.put(self._db, {name: self._box.seal(value) for name, value in checked.items()}))
        return sorted(checked)

    def delete(self, name: str) -> None:
        version = store.remove(self._db, check_name(name))
        if version is None:
            raise NotFound(f"Environment variable {name!r} does not exist; list_environment_variables() shows them.")
        self._reached_pods(version)

    def _reached_pods(self, version: int) -> None:
        self._on_change()
        if not wait_until_no_pod(self._db, Pod.status == PodStatus.RUNNING, Pod.environment_version < version):
            raise PlatformFailure(
                "The environment variables were saved, but a warm pod has not loaded them yet; "
                "its next executions may still see the previous values for a moment."
            )
