"""The narrow path between user-code processes and the platform's state.

Warm pods and elastic workers run the user's code in their own process, so whatever they hold,
that code can read. They therefore get neither the database URL, nor the secret key, nor any
token: what they must record (executions, logs, files, their pod's state) and follow (their
deployment's token and status, the environment variables) goes through the control plane, with
a credential that allows only that:

- a pod credential (``pod:<deployment>:<mac>``) lets a pod of that deployment record that
  deployment's executions and logs, take its execution numbers and report its own pods;
- an execution credential (``execution:<id>:<expiry>:<mac>``) lets an elastic worker append
  logs to that one execution, while it runs and until the expiry (its user code gets it too, for
  the API calls an execution may make: ``rayline.domain.code_credentials``).

The MACs use a key derived from the platform's secret key, which stays in the control plane.
Plain Python over the store: the control plane's Serve methods are thin wrappers around this.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from rayline.domain.code_credentials import CodeCredentials
from rayline.domain.statuses import PodStatus
from rayline.errors import InvalidInput, Unauthorized
from rayline.store import executions as store
from rayline.store import pods
from rayline.store.db import Database
from rayline.store.record_sql import sql_sink
from rayline.store.record_writer import Event

logger = logging.getLogger(__name__)

# What a pod may report about itself, and the values it may take.
POD_FIELDS = {
    "status",
    "token_fingerprint",
    "environment_version",
    "running_executions",
    "waiting_executions",
    "flushed",
}
POD_STATUSES = {PodStatus.PENDING, PodStatus.RUNNING, PodStatus.FAILED, PodStatus.STOPPING, PodStatus.STOPPED}
MAX_ID_BLOCK = 1000
# What a pod's state is read from the database at most this often while nothing changes (a change
# made through this control plane is seen at once: its generation moves).
STATE_TTL_S = 30.0
FLUSH_TIMEOUT_S = 10.0
_STARTED_KEYS = {
    "execution_id",
    "pipeline_name",
    "deployment_name",
    "pod_id",
    "status",
    "inputs",
    "outputs",
    "created_at",
    "start_date",
}


class PodGateway:
    def __init__(
        self,
        db: Database,
        secret_key: bytes,
        open_secret: Callable[[str], str],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self.credentials = CodeCredentials(secret_key)
        self._open = open_secret  # decrypts stored environment variable values
        self._sink = sql_sink(db)
        self._wake = wake  # answers the pods' long polls at once (what they follow is unchanged)
        # What pods follow, as last read: (deployment, environment version) -> (generation, read at, state).
        self._states: dict[tuple[str, int], tuple[int, float, dict[str, Any]]] = {}
        # The last flush asked of each deployment's pods: a number that grows across restarts too;
        # and how many flushes pods have reported, which a flush waits on.
        self._flushes: dict[str, int] = {}
        self._flush_reports = 0
        self._flushed = threading.Condition()

    # --- credentials -------------------------------------------------------------------------

    def pod_credential(self, deployment_name: str) -> str:
        return f"pod:{deployment_name}:{self.credentials.mac('pod:' + deployment_name)}"

    def execution_credential(self, execution_id: str, ttl_s: float) -> str:
        return self.credentials.for_execution(execution_id, ttl_s)

    def check_pod(self, credential: str, deployment_name: str) -> None:
        if not isinstance(credential, str) or not hmac.compare_digest(
            credential.encode(), self.pod_credential(deployment_name).encode()
        ):
            raise Unauthorized(f"This credential does not belong to a pod of deployment {deployment_name!r}.")

    # --- what a pod does ---------------------------------------------------------------------

    def register_pod(
        self,
        credential: str,
        deployment_name: str,
        pod_id: str,
        version: int,
        dead_pods: list[str],
        node_id: str | None = None,
    ) -> None:
        """A new pod: its row, and the end of what the pods of this deployment that died were
        running (their journals were replayed just before, so finished calls keep their result)."""
        self.check_pod(credential, deployment_name)
        life = pods.life_of(self._db, deployment_name, version)
        pods.register(self._db, deployment_name, pod_id, version, dead_pods, node_id)
        if life is not None and life.autoscaled and life.can_standby and life.has_been_up and not life.alive:
            store.add_deployment_log(self._db, deployment_name, f"Woken by a call: starting pod {pod_id}.")

    def update_pod(self, credential: str, deployment_name: str, pod_id: str, fields: dict[str, Any]) -> None:
        self.check_pod(credential, deployment_name)
        unknown = set(fields) - POD_FIELDS
        if unknown or fields.get("status", PodStatus.RUNNING) not in POD_STATUSES:
            raise InvalidInput(f"A pod cannot report {sorted(unknown) or fields.get('status')!r}.")
        pods.update(self._db, deployment_name, pod_id, fields)
        if "flushed" in fields:
            with self._flushed:
                self._flush_reports += 1
                self._flushed.notify_all()
        if fields.get("status") in (PodStatus.RUNNING, PodStatus.STOPPED):
            self._tell_scale(deployment_name, pod_id, fields["status"])

    def _tell_scale(self, deployment_name: str, pod_id: str, status: str) -> None:
        """The deployment's log says how many pods serve when an autoscaled one gains or loses one."""
        version = pods.version_of(self._db, pod_id)
        life = pods.life_of(self._db, deployment_name, version) if version is not None else None
        if life is None or not life.autoscaled or not life.current:
            return  # a fixed number of pods, or a reload's old pod: "Pod ... created/stopping" says it
        if status == PodStatus.STOPPED and not life.serving and life.can_standby and life.is_enabled:
            message = (
                f"Standby after {life.standby_after_s:g} s idle: no pod runs, nor holds memory or a GPU, "
                "until the next call wakes the deployment."
            )
        else:
            message = f"Scaled to {life.serving} pod(s)."
        store.add_deployment_log(self._db, deployment_name, message)

    def take_ids(self, credential: str, deployment_name: str, count: int) -> list[int]:
        self.check_pod(credential, deployment_name)
        count = max(1, min(int(count), MAX_ID_BLOCK))
        return list(store.take_numbers(self._db, store.execution_counter(deployment_name), count))

    def pod_state(
        self, credential: str, deployment_name: str, known_environment_version: int, generation: int = 0
    ) -> dict[str, Any]:
        """What a pod follows: its deployment's token hash, whether it must refuse calls, the
        environment variables (their values only when their version is not the one it has), and
        the last flush asked of its pods. ``generation`` counts the changes made through this
        control plane: while it stays the same, the state is not read again (an idle pod's long
        poll costs no database read), for ``STATE_TTL_S`` at most."""
        self.check_pod(credential, deployment_name)
        key = (deployment_name, known_environment_version)
        cached = self._states.get(key)
        now = time.monotonic()
        if cached is None or cached[0] != generation or now - cached[1] > STATE_TTL_S:
            state = pods.followed_state(self._db, deployment_name, known_environment_version, self._open)
            # A copy first: other gateway threads add entries meanwhile.
            for stale in [k for k, (_, read_at, _) in list(self._states.items()) if now - read_at > STATE_TTL_S]:
                self._states.pop(stale, None)  # deleted deployments, old environment versions
            self._states[key] = cached = (generation, now, state)
        return {**cached[2], "flush": self._flushes.get(deployment_name, 0)}

    def flush_pods(self, deployment_name: str) -> bool:
        """Ask every pod of the deployment to commit what it answered (read-your-writes: a pod
        answers before its batch writer commits), through their long polls; True once each has."""
        with self._flushed:
            # Above any number of an earlier control plane: milliseconds since the epoch.
            generation = max(self._flushes.get(deployment_name, 0) + 1, time.time_ns() // 1_000_000)
            self._flushes[deployment_name] = generation
        self._wake()
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while True:
            with self._flushed:
                reports = self._flush_reports
            if not pods.unflushed(self._db, deployment_name, generation):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.warning("pods of %s did not commit their records within %s s", deployment_name, FLUSH_TIMEOUT_S)
                return False
            with self._flushed:  # until a pod reports a flush (or a while, should a report be missed)
                if self._flush_reports == reports:
                    self._flushed.wait(min(remaining, 0.5))

    def write(self, credential: str, deployment_name: str, events: list[Event], replaying: bool = False) -> None:
        """Apply a pod's batch of records, each checked to be this deployment's."""
        self.check_pod(credential, deployment_name)
        origin = pods.deployment_origin(self._db, deployment_name)
        checked = [_checked(event, deployment_name, origin[0] if origin else None) for event in events]
        # The executions the events end or add to: this deployment's (not a pipeline run, nor one of
        # a deleted deployment of the same name), or started in this very batch.
        started = {e["row"]["execution_id"] for e in checked if e["kind"] == "started"}
        touched = {
            e.get("execution_id") or e["row"]["execution_id"]
            for e in checked
            if e["kind"] in ("finished", "execution_log", "files")
        } - started
        foreign = touched and pods.foreign_executions(self._db, deployment_name, origin[1] if origin else None, touched)
        if foreign:
            raise InvalidInput(
                f"A pod of {deployment_name!r} may not write the records of "
                f"{sorted(foreign)[:3]}: they are not its deployment's executions."
            )
        try:
            self._sink(checked, replaying)
        except IntegrityError as error:  # e.g. a log line of an execution deleted meanwhile: not retried
            raise InvalidInput(f"A record of {deployment_name!r} cannot be written: {error.orig}") from None

    # --- what an elastic worker does ---------------------------------------------------------

    def append_execution_logs(
        self, credential: str, execution_id: str, records: list[tuple[datetime, str, str]]
    ) -> None:
        self.credentials.check_execution(credential, execution_id)
        status = store.status_of(self._db, execution_id)
        if status not in store.UNFINISHED_STATUSES:
            raise Unauthorized(f"Execution {execution_id!r} has ended; its credential no longer works.")
        store.append_logs(self._db, execution_id, [(ts, str(stream), str(message)) for ts, stream, message in records])


def _checked(event: Event, deployment_name: str, pipeline_name: str | None) -> Event:
    """The event if it only touches ``deployment_name``'s own records; else InvalidInput."""
    own_id = re.compile(re.escape(deployment_name) + r"-[0-9]+")
    kind = event.get("kind")
    row = event.get("row") or {}
    if kind == "started":
        ok = (
            set(row) <= _STARTED_KEYS
            and row.get("deployment_name") == deployment_name
            and row.get("pipeline_name") == pipeline_name
            and row.get("status") == store.RUNNING
            and own_id.fullmatch(str(row.get("execution_id")))
        )
    elif kind == "execution_log":
        ok = own_id.fullmatch(str(row.get("execution_id"))) and set(row) == {
            "execution_id",
            "timestamp",
            "stream",
            "message",
        }
    elif kind == "deployment_log":
        ok = row.get("deployment_name") == deployment_name and row.get("type") == "deployment"
    elif kind == "finished":
        ok = (
            own_id.fullmatch(str(event.get("execution_id")))
            and event.get("values", {}).get("status") in store.FINAL_STATUSES
            and set(event["values"]) <= {"status", "end_date", "error", "outputs"}
        )
    elif kind == "files":
        ok = own_id.fullmatch(str(event.get("execution_id"))) and event.get("direction") in ("input", "output")
    else:
        ok = False
    if not ok:
        raise InvalidInput(f"A pod of {deployment_name!r} sent a record it may not write ({kind!r}).")
    return event
