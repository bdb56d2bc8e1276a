"""Warm pods' rows: registering them, what they report, what they follow, and waiting for them to
catch up with a change. Pods reach these only through the control plane (services/pod_gateway)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rayline.domain.failures import DEAD_POD_ERROR
from rayline.domain.statuses import PodStatus
from rayline.store import environment as environment_store
from rayline.store.db import Database
from rayline.store.executions import ERROR, UNFINISHED_STATUSES
from rayline.store.models import Deployment, Execution, Pod, utcnow

logger = logging.getLogger(__name__)

# A pod in these has not reported its end (stopped or failed).
ALIVE_STATUSES = (PodStatus.PENDING, PodStatus.RUNNING, PodStatus.STOPPING)


def register(
    db: Database, deployment_name: str, pod_id: str, version: int, dead_pods: list[str], node_id: str | None = None
) -> None:
    """A new pod's row; the pods that died marked failed, and what they were running ended."""
    with db.session() as session:
        _end_pods(session, select(Pod).where(Pod.deployment_name == deployment_name, Pod.pod_id.in_(dead_pods)))
        session.merge(
            Pod(
                pod_id=pod_id,
                deployment_name=deployment_name,
                version=version,
                status=PodStatus.PENDING,
                node_id=node_id,
                started_at=utcnow(),
                updated_at=utcnow(),
            )
        )


def _end_pods(session: Session, query: Any, reason: str = DEAD_POD_ERROR) -> list[Pod]:
    """The pods ``query`` selects marked failed, and what they were running ended in Error."""
    ended = list(session.scalars(query))
    for pod in ended:
        pod.status, pod.updated_at = PodStatus.FAILED, utcnow()
    if ended:
        stale = session.scalars(
            select(Execution).where(
                Execution.pod_id.in_([pod.pod_id for pod in ended]), Execution.status.in_(UNFINISHED_STATUSES)
            )
        )
        for execution in stale:
            execution.status, execution.end_date, execution.error = ERROR, utcnow(), reason
    return ended


def alive(db: Database) -> list[tuple[str, str, str | None]]:
    """(deployment, pod id, node id) of every pod that has not reported its end."""
    with db.session() as session:
        rows = session.execute(
            select(Pod.deployment_name, Pod.pod_id, Pod.node_id).where(Pod.status.in_(ALIVE_STATUSES))
        )
        return [(row.deployment_name, row.pod_id, row.node_id) for row in rows]


def end(db: Database, pod_ids: list[str], reason: str, only_alive: bool) -> list[tuple[str, str]]:
    """Pods whose process is gone without reporting it: failed, what they ran ended with ``reason``
    (``only_alive``: unless their row says they ended). Returns their (deployment, pod id)."""
    if not pod_ids:
        return []
    query = select(Pod).where(Pod.pod_id.in_(pod_ids))
    if only_alive:
        query = query.where(Pod.status.in_(ALIVE_STATUSES))
    with db.session() as session:
        return [(pod.deployment_name, pod.pod_id) for pod in _end_pods(session, query, reason)]


def update(db: Database, deployment_name: str, pod_id: str, fields: dict[str, Any]) -> None:
    with db.session() as session:
        pod = session.get(Pod, pod_id)
        if pod is None or pod.deployment_name != deployment_name:
            return  # deleted with its deployment meanwhile
        if pod.status == PodStatus.STOPPED:
            return  # a report that was on its way when the pod stopped: it stays stopped
        for name, value in fields.items():
            setattr(pod, name, value)
        pod.updated_at = utcnow()


def followed_state(
    db: Database, deployment_name: str, known_environment_version: int, open_sealed: Callable[[str], str]
) -> dict[str, Any]:
    """What a pod follows: its deployment's token hash, whether it must refuse calls, and the
    environment variables (their values only when their version is not ``known_environment_version``)."""
    with db.session() as session:
        row = session.execute(
            select(Deployment.endpoint_token_hash, Deployment.is_enabled).where(Deployment.name == deployment_name)
        ).first()
        version = environment_store.version(session)
        values = environment_store.load(session, open_sealed) if version != known_environment_version else None
    return {
        "token_hash": row.endpoint_token_hash if row is not None else None,
        "refusing": "deleted" if row is None else (None if row.is_enabled else "disabled"),
        "environment_version": version,
        "environment": values,
    }


def deployment_origin(db: Database, deployment_name: str) -> tuple[str, datetime] | None:
    """(pipeline name, created at) of the deployment, or None once it is deleted."""
    with db.session() as session:
        row = session.execute(
            select(Deployment.pipeline_name, Deployment.created_at).where(Deployment.name == deployment_name)
        ).first()
    return (row.pipeline_name, row.created_at) if row is not None else None


def foreign_executions(
    db: Database, deployment_name: str, created_after: datetime | None, execution_ids: set[str]
) -> set[str]:
    """Those of ``execution_ids`` that are not this deployment's (created since ``created_after``:
    a deleted deployment of the same name kept its executions)."""
    owned = select(Execution.execution_id).where(
        Execution.execution_id.in_(execution_ids), Execution.deployment_name == deployment_name
    )
    if created_after is not None:
        owned = owned.where(Execution.created_at >= created_after)
    with db.session() as session:
        return execution_ids - set(session.scalars(owned))


def _count(session: Session, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(Pod).where(*where)) or 0


def wait_until_no_pod(db: Database, *where: Any, timeout_s: float = 5.0) -> bool:
    """Return True once no pod matches ``where`` (each pod is told of a change at once, through
    its long poll, and records what it now applies in its row), or False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as session:
            if not _count(session, *where):
                return True
        time.sleep(0.05)
    logger.warning("pods did not catch up within %s s", timeout_s)
    return False


@dataclass(frozen=True)
class PodLife:
    """What the deployment's log says of its pods' comings and goings is decided from these."""

    autoscaled: bool  # min_pods != max_pods
    can_standby: bool  # min_pods == 0
    standby_after_s: float
    is_enabled: bool
    has_been_up: bool
    current: bool  # the pod asked about runs the deployment's version (not a reload's old pod)
    serving: int  # running pods of that version
    alive: int  # pods of any version starting, running or stopping


def life_of(db: Database, deployment_name: str, version: int) -> PodLife | None:
    with db.session() as session:
        row = session.get(Deployment, deployment_name)
        if row is None or row.min_pods is None or row.max_pods is None:
            return None
        serving = _count(
            session, Pod.deployment_name == deployment_name, Pod.version == row.version, Pod.status == PodStatus.RUNNING
        )
        alive = _count(
            session,
            Pod.deployment_name == deployment_name,
            Pod.status.in_(ALIVE_STATUSES),
        )
        return PodLife(
            autoscaled=row.min_pods != row.max_pods,
            can_standby=row.min_pods == 0,
            standby_after_s=row.standby_after_s or 0.0,
            is_enabled=row.is_enabled,
            has_been_up=row.has_been_up,
            current=version == row.version,
            serving=serving,
            alive=alive,
        )


def version_of(db: Database, pod_id: str) -> int | None:
    with db.session() as session:
        return session.scalar(select(Pod.version).where(Pod.pod_id == pod_id))


def unflushed(db: Database, deployment_name: str, generation: int) -> int:
    """Pods of the deployment that serve, or drain, and have not committed for flush ``generation``."""
    with db.session() as session:
        return _count(
            session,
            Pod.deployment_name == deployment_name,
            Pod.status.in_((PodStatus.RUNNING, PodStatus.STOPPING)),
            Pod.flushed < generation,
        )
