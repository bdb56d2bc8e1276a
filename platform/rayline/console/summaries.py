"""What the console's pages show of a deployment, an execution and a pipeline, gathered from the
services (``rayline.services``) into plain values for the templates. The overview's rows take two
queries whatever their number (``summarize_all``): their pods, and their latest executions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from rayline.api.context import AppContext
from rayline.console.charts import Chart, recent_executions_chart
from rayline.domain.schedules import human_readable
from rayline.domain.statuses import LISTED_POD_STATUSES, ExecutionRule, Mode
from rayline.services.deployments import scaling_of
from rayline.store.models import Deployment, Execution, ExecutionLog, Pod

TRACEBACK_START = "Traceback (most recent call last):"
SAMPLE_VALUES = {"number": 1, "string": "text", "boolean": True, "json": {}, "array": []}


@dataclass
class DeploymentSummary:
    row: Deployment
    rule: str  # the endpoint's path or the schedule, in words
    pods: list[Pod]
    recent: list[Execution]
    chart: Chart
    running: int = 0  # executions running in its pods now
    capacity: int = 0  # how many its pods may run at once
    waiting: int = 0

    @property
    def last(self) -> Execution | None:
        return self.recent[0] if self.recent else None

    @property
    def low_latency(self) -> bool:
        return self.row.mode == Mode.LOW_LATENCY


def rule_of(row: Deployment) -> str:
    if row.execution_rule == ExecutionRule.ENDPOINT:
        return f"endpoint /endpoints/{row.endpoint_url_path}"
    if row.schedule:
        return f"periodic {row.schedule} ({human_readable(row.schedule)}, UTC)"
    return str(row.execution_rule)


def summarize(context: AppContext, row: Deployment, recent: int = 30, flush: bool = False) -> DeploymentSummary:
    """One deployment's summary (its own page); ``flush``: have its pods commit what they
    answered first."""
    return summarize_all(context, [row], recent, flush=flush and row.is_enabled)[0]


def summarize_all(
    context: AppContext, rows: list[Deployment], recent: int = 30, flush: bool = False
) -> list[DeploymentSummary]:
    """The summaries of ``rows``, in their order: one query for the pods of all the low-latency
    ones, one for the latest ``recent`` executions of each."""
    pods = pods_of(context, [row for row in rows if row.mode == Mode.LOW_LATENCY])
    executions = context.executions.recent_for_deployment([row.name for row in rows], recent, flush=flush)
    return [_summary(row, pods.get(row.name, []), executions.get(row.name, [])) for row in rows]


def pods_of(context: AppContext, rows: list[Deployment]) -> dict[str, list[Pod]]:
    """The listed pods of these deployments, newest first, as ``DeploymentService.pods`` lists
    one deployment's (the same statuses, the same bound), in one query."""
    if not rows:
        return {}
    bound = context.settings.max_pods_per_deployment + 4  # with a reload's new pods
    found: dict[str, list[Pod]] = {row.name: [] for row in rows}
    with context.db.session() as session:
        query = (
            select(Pod)
            .where(Pod.deployment_name.in_(list(found)), Pod.status.in_(LISTED_POD_STATUSES))
            .order_by(Pod.started_at.desc())
        )
        for pod in session.scalars(query):
            if len(found[pod.deployment_name]) < bound:
                found[pod.deployment_name].append(pod)
    return found


def _summary(row: Deployment, pods: list[Pod], executions: list[Execution]) -> DeploymentSummary:
    return DeploymentSummary(
        row=row,
        rule=rule_of(row),
        pods=pods,
        recent=executions,
        chart=recent_executions_chart(executions),
        running=sum(pod.running_executions or 0 for pod in pods),
        waiting=sum(pod.waiting_executions or 0 for pod in pods),
        capacity=len(pods) * (row.max_parallel_executions_per_pod or 1),
    )


@dataclass
class Curl:
    """The copyable example of a call to an endpoint, the token as the shell variable it reads."""

    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " \\\n  ".join(self.lines)


def curl_example(url: str, inputs_mapping: list[dict[str, Any]]) -> Curl:
    exposed = [item for item in inputs_mapping if item.get("endpoint_input_name")]
    lines = [f"curl -X POST {url}", '-H "Authorization: EndpointToken $ENDPOINT_TOKEN"']
    if any(item.get("data_type") == "file" for item in exposed):
        for item in exposed:
            name = item["endpoint_input_name"]
            if item.get("data_type") == "file":
                lines.append(f"-F {name}=@{name}.bin")
            else:
                value = json.dumps(SAMPLE_VALUES.get(item.get("data_type", ""), "text"))
                lines.append(f"-F '{name}={value}'")
    else:
        body = {item["endpoint_input_name"]: SAMPLE_VALUES.get(item.get("data_type", ""), "text") for item in exposed}
        lines += ['-H "Content-Type: application/json"', f"-d '{json.dumps(body)}'"]
    return Curl(url, lines)


def scaling_fields(row: Deployment) -> dict[str, Any]:
    scaling = scaling_of(row)
    return {
        "min_pods": scaling.min_pods,
        "max_pods": scaling.max_pods,
        "scale_down_after_s": scaling.scale_down_after_s,
        "standby_after_s": scaling.standby_after_s,
    }


def traceback_of(logs: list[ExecutionLog]) -> str | None:
    """The last traceback the execution's stderr holds (a failure logs it there), or None."""
    lines = [line.message for line in logs if line.stream == "stderr"]
    starts = [index for index, message in enumerate(lines) if message.startswith(TRACEBACK_START)]
    return "\n".join(lines[starts[-1] :]) if starts else None


@dataclass
class Value:
    """One input or output of an execution as the page shows it."""

    name: str
    data_type: str
    source: str  # where it came from, or where it went
    text: str | None  # the value, as JSON
    file: dict[str, Any] | None  # {filename, size}: a download link instead


def values_of(records: list[dict[str, Any]], direction: str) -> list[Value]:
    shown = []
    for record in records:
        value = record.get("value")
        mapping = record.get("mapping_value") or {}
        source = record.get("mapping_type") or ""
        if mapping:
            source += " " + ", ".join(f"{key}={item}" for key, item in mapping.items())
        is_file = record.get("data_type") == "file" and isinstance(value, dict)
        shown.append(
            Value(
                name=record.get(f"pipeline_{direction}_name", ""),
                data_type=record.get("data_type", ""),
                source=source.strip(),
                text=None if is_file else json.dumps(value, ensure_ascii=False, default=str),
                file=value if is_file else None,
            )
        )
    return shown
