"""Tables. Dates are stored as naive UTC and read back as aware UTC (SQLite keeps no zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class Credential(Base):
    """Hashes of platform secrets (the SDK token); never the secrets themselves."""

    __tablename__ = "credentials"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Counter(Base):
    """Monotonic counters that name executions (``my-pipeline-1``, ``-2``...), never reused."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Pipeline(Base):
    __tablename__ = "pipelines"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    function_path: Mapped[str] = mapped_column(String(1024))
    function_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    inputs: Mapped[list] = mapped_column(JSON, default=list)
    outputs: Mapped[list] = mapped_column(JSON, default=list)
    container_config: Mapped[dict] = mapped_column(JSON, default=dict)
    requirements: Mapped[list] = mapped_column(JSON, default=list)
    package_uri: Mapped[str] = mapped_column(String(2048))
    package_sha256: Mapped[str] = mapped_column(String(64))
    # The function is a plain `def` (services.pipelines.is_plain_def); None: created before this was known.
    plain_def: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Package(Base):
    """A pipeline's package (a zip), kept in SQL when nodes download it from the control plane."""

    __tablename__ = "packages"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Execution(Base):
    __tablename__ = "executions"
    execution_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(63), index=True)
    deployment_name: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    pod_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the warm pod that ran it
    status: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[list] = mapped_column(JSON, default=list)
    outputs: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # The console's pages: a pipeline's (of one status) or a deployment's executions, newest first.
    __table_args__ = (
        Index("ix_executions_pipeline_created", "pipeline_name", "created_at"),
        Index("ix_executions_pipeline_status_created", "pipeline_name", "status", "created_at"),
        Index("ix_executions_deployment_created", "deployment_name", "created_at"),
    )


class ExecutionLog(Base):
    __tablename__ = "execution_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(160), ForeignKey("executions.execution_id", ondelete="CASCADE"))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    stream: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_execution_logs_execution_time", "execution_id", "timestamp"),
        Index("ix_execution_logs_execution_id", "execution_id", "id"),  # the console's page and live tail
    )


class ExecutionFile(Base):
    """A file input or output of an execution, kept with it (records only name its file and size)."""

    __tablename__ = "execution_files"
    execution_id: Mapped[str] = mapped_column(
        String(160), ForeignKey("executions.execution_id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)  # "input" or "output"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # the pipeline input's or output's name
    filename: Mapped[str] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Deployment(Base):
    __tablename__ = "deployments"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(63), index=True)
    execution_rule: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    endpoint_url_path: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    endpoint_token_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Encrypted with the platform's secret key so get_deployment can show it; checks use the hash.
    endpoint_token_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    inputs_mapping: Mapped[list] = mapped_column(JSON, default=list)
    outputs_mapping: Mapped[list] = mapped_column(JSON, default=list)
    enable_parallel_executions: Mapped[bool] = mapped_column(default=False)
    max_parallel_executions_per_pod: Mapped[int] = mapped_column(Integer, default=1)
    max_queued_executions: Mapped[int] = mapped_column(Integer, default=1000)
    ram_request: Mapped[str | None] = mapped_column(String(32), nullable=True)
    gpu_request: Mapped[int | None] = mapped_column(Integer, nullable=True)
    execution_timeout_s: Mapped[float | None] = mapped_column(nullable=True)
    # Low-latency deployments: how many pods (rayline.domain.pod_scaling); None for elastic ones.
    min_pods: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_pods: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scale_down_after_s: Mapped[float | None] = mapped_column(nullable=True)
    standby_after_s: Mapped[float | None] = mapped_column(nullable=True)
    # Periodic deployments: the 5-field cron schedule (UTC), and the next due time not yet
    # started; a scheduler claims a due time by moving it forward in one conditional UPDATE.
    schedule: Mapped[str | None] = mapped_column(String(255), nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    is_enabled: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(32))
    has_been_up: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    version_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnvironmentVariable(Base):
    """A platform-wide variable set in every execution's ``os.environ``; the value is encrypted
    with the platform's secret key."""

    __tablename__ = "environment_variables"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeploymentLog(Base):
    __tablename__ = "deployment_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_name: Mapped[str] = mapped_column(String(63))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    stream: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    pod_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(16), default="deployment")

    __table_args__ = (
        Index("ix_deployment_logs_name_time", "deployment_name", "timestamp"),
        Index("ix_deployment_logs_name_id", "deployment_name", "id"),  # the console's live tail
    )


class ConsoleRevokedSession(Base):
    """A console session signed out of before its expiry (``rayline.console.sessions``): its
    cookie stays refused, across restarts and replicas, until ``expires_at`` (epoch seconds),
    when the row is pruned."""

    __tablename__ = "console_revoked_sessions"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class Pod(Base):
    """A low-latency replica, as it reports itself."""

    __tablename__ = "pods"
    pod_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_name: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # The Ray node it runs on: when that node is lost, the control plane ends what it was running.
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The start of the endpoint token hash the pod checks calls against, so that a rotation can
    # wait until every pod refuses the old token.
    token_fingerprint: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Executions whose function runs (a timed-out thread included) and callers waiting for a slot.
    running_executions: Mapped[int] = mapped_column(Integer, default=0)
    waiting_executions: Mapped[int] = mapped_column(Integer, default=0)
    # The version of the environment variables the pod has loaded (set at each execution start).
    environment_version: Mapped[int] = mapped_column(Integer, default=0)
    # The last flush request (a generation the control plane counts) the pod has committed
    # its records for: read-your-writes over every pod of a deployment.
    flushed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceSample(Base):
    """What one Ray node used when the control plane read it (``sampled_at``: that node's own read,
    in a sampling round); kept RAYLINE_RESOURCE_METRICS_RETENTION_S. The network
    columns are the node's counters since its boot: rates are made from two samples when read."""

    __tablename__ = "resource_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    node_ip: Mapped[str] = mapped_column(String(64))
    is_head: Mapped[bool] = mapped_column(default=False)
    cpu_percent: Mapped[float] = mapped_column(Double)
    ram_used_bytes: Mapped[int] = mapped_column(BigInteger)
    ram_total_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_used_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_total_bytes: Mapped[int] = mapped_column(BigInteger)
    network_received_bytes: Mapped[int] = mapped_column(BigInteger)
    network_sent_bytes: Mapped[int] = mapped_column(BigInteger)
    # Only on a node with GPUs: their mean utilization, and their memory summed.
    gpu_percent: Mapped[float | None] = mapped_column(Double, nullable=True)
    vram_used_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    vram_total_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MetricValue(Base):
    """A pipeline metric of one value, recorded by an execution: the last value recorded wins.
    Not tied to the execution's row by a foreign key: a warm pod's execution may record a metric
    before the pod's batch of records has reached the database."""

    __tablename__ = "metric_values"
    execution_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    pipeline_name: Mapped[str] = mapped_column(String(63), index=True)
    deployment_name: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_metric_values_name", "name"),)


class ListMetricBatch(Base):
    """The values one call appended to a pipeline list metric; an execution's batches of a name,
    in ``id`` order, are the list. A row per call, not per value: 10,000 values are one insert."""

    __tablename__ = "list_metric_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(160))
    name: Mapped[str] = mapped_column(String(128))
    values: Mapped[list] = mapped_column(JSON)
    pipeline_name: Mapped[str] = mapped_column(String(63), index=True)
    deployment_name: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_list_metric_batches_execution_name", "execution_id", "name"),
        Index("ix_list_metric_batches_name", "name"),
    )
