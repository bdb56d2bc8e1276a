"""What an execution's code may still do with its credential (``rayline.domain.code_credentials``):
its credential is checked by its MAC, and here against the records: an execution that has ended,
or a deployment that is gone (or was created again since), no longer lets its code in."""

from __future__ import annotations

from sqlalchemy import select

from rayline.domain.code_credentials import CodeCredentials, CodeScope, epoch_ms
from rayline.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from rayline.store import executions as store
from rayline.store import pods
from rayline.store.db import Database
from rayline.store.models import Counter, Execution

MAX_EXECUTION_ID_LENGTH = 160  # the records' column


class CodeAccess:
    def __init__(self, db: Database, credentials: CodeCredentials) -> None:
        self._db = db
        self.credentials = credentials

    def scope_of(self, credential: str) -> CodeScope:
        return self.credentials.scope_of(credential)

    def check_alive(self, scope: CodeScope) -> str | None:
        """Refuse the credential of an execution that has ended, or of a deployment's pods once
        that deployment is deleted (or replaced by a new one of the same name). Returns the
        deployment's pipeline, for a pod's credential."""
        if scope.execution_id is not None:
            status = store.status_of(self._db, scope.execution_id)
            if status not in store.UNFINISHED_STATUSES:
                raise Unauthorized(_ended(scope.execution_id))
            return None
        origin = pods.deployment_origin(self._db, str(scope.deployment_name))
        if origin is None or epoch_ms(origin[1]) != scope.deployment_created_ms:
            raise Unauthorized(
                f"Deployment {scope.deployment_name!r} is deleted; its pods' credential no longer works."
            )
        return origin[0]

    def owner_of(self, scope: CodeScope | None, execution_id: object) -> tuple[str, str | None]:
        """(pipeline, deployment) of the execution a metric is recorded for, once the caller may
        record it: ``scope`` None is the SDK token's holder (any execution that exists); an
        execution's code only its own execution while it runs. A warm pod's execution may not be
        in the database yet (its pod sends its records in batches): it must then be a number its
        deployment's pods have taken."""
        if not isinstance(execution_id, str) or not execution_id:
            raise InvalidInput(
                "execution_id is required: the execution the metric is recorded for (the clients send it "
                "from inside an execution)."
            )
        if len(execution_id) > MAX_EXECUTION_ID_LENGTH:
            raise InvalidInput(f"execution_id is at most {MAX_EXECUTION_ID_LENGTH} characters long.")
        if scope is not None and not scope.covers(execution_id):
            mine = scope.execution_id or f"the executions of deployment {scope.deployment_name!r}"
            raise Forbidden(f"This credential records metrics of {mine} only, not of {execution_id!r}.")
        pipeline_name = self.check_alive(scope) if scope is not None else None
        with self._db.session() as session:
            row = session.execute(
                select(
                    Execution.pipeline_name, Execution.deployment_name, Execution.status, Execution.created_at
                ).where(Execution.execution_id == execution_id)
            ).first()
            if row is None and scope is not None and scope.deployment_name is not None:
                taken = session.scalar(
                    select(Counter.value).where(Counter.name == store.execution_counter(scope.deployment_name))
                )
                number = int(execution_id.rsplit("-", 1)[1])
                if taken is not None and number <= taken and pipeline_name is not None:
                    return pipeline_name, scope.deployment_name
        if row is None:
            raise NotFound(f"Execution {execution_id!r} does not exist.")
        if scope is not None:
            if scope.deployment_name is not None and (
                row.deployment_name != scope.deployment_name
                or epoch_ms(row.created_at) < (scope.deployment_created_ms or 0)  # an earlier one's, same name
            ):
                raise Forbidden(
                    f"Execution {execution_id!r} is not one of deployment {scope.deployment_name!r}'s executions."
                )
            if row.status not in store.UNFINISHED_STATUSES:
                raise Unauthorized(_ended(execution_id))
        return row.pipeline_name, row.deployment_name


def _ended(execution_id: str) -> str:
    return f"Execution {execution_id!r} has ended; the credential of its code no longer works."
