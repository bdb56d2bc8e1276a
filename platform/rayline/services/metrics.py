"""Pipeline metrics: recorded by executions (their code, with its credential), read from a notebook."""

from __future__ import annotations

from typing import Any

from rayline.domain.code_credentials import CodeScope
from rayline.domain.metrics import check_metric_name, check_metric_value, check_metric_values, check_page, one_filter
from rayline.errors import InvalidInput
from rayline.services.code_access import CodeAccess
from rayline.store import metrics as store
from rayline.store.db import Database


def _body(body: Any, field: str) -> dict[str, Any]:
    if not isinstance(body, dict) or field not in body:
        raise InvalidInput(
            f'The request body must be a JSON object with {field!r} and "execution_id", '
            f'e.g. {{"{field}": 0.93, "execution_id": "my-pipeline-12"}}.'
        )
    return body


class MetricsService:
    def __init__(self, db: Database, access: CodeAccess) -> None:
        self._db = db
        self._access = access

    def record_value(self, scope: CodeScope | None, name: str, body: Any) -> None:
        """Set the execution's metric ``name`` to ``body["value"]``: the last value recorded wins."""
        body = _body(body, "value")
        value = check_metric_value(body["value"])
        execution_id, pipeline_name, deployment_name = self._owner(scope, name, body)
        store.record_value(self._db, execution_id, name, value, pipeline_name, deployment_name)

    def record_list_values(self, scope: CodeScope | None, name: str, body: Any) -> None:
        """Append ``body["values"]`` to the execution's list metric ``name``."""
        body = _body(body, "values")
        values = check_metric_values(body["values"])
        execution_id, pipeline_name, deployment_name = self._owner(scope, name, body)
        store.record_list_values(self._db, execution_id, name, values, pipeline_name, deployment_name)

    def _owner(self, scope: CodeScope | None, name: str, body: dict[str, Any]) -> tuple[str, str, str | None]:
        """(execution, pipeline, deployment) of the metric ``name`` the caller records, once it may."""
        check_metric_name(name)
        pipeline_name, deployment_name = self._access.owner_of(scope, body.get("execution_id"))
        return body["execution_id"], pipeline_name, deployment_name

    def list(
        self,
        lists: bool,
        name: str | None,
        pipeline_name: str | None,
        deployment_name: str | None,
        execution_id: str | None,
        page: int,
        items_per_page: int,
    ) -> dict[str, Any]:
        """``{"metrics": [...], "total_count": n}``: one page, as craft-ai-sdk reads it."""
        filters = one_filter(pipeline_name, deployment_name, execution_id)
        check_page(page, items_per_page)
        read = store.list_lists if lists else store.list_values
        metrics, total = read(self._db, name, filters, (page - 1) * items_per_page, items_per_page)
        return {"metrics": metrics, "total_count": total}
