"""The platform's vocabularies as ``str`` enums: deployment modes and rules, and the statuses of
executions, deployments and pods (craft-api.md's names).

A member *is* its string (``Mode.ELASTIC == "elastic"``): SQL columns, JSON bodies and the SDK
keep plain strings, and code compares against names that a typo cannot silently miss.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    ELASTIC = "elastic"  # each execution in a fresh worker process
    LOW_LATENCY = "low_latency"  # a warm pod that imported the module once


class ExecutionRule(StrEnum):
    ENDPOINT = "endpoint"
    PERIODIC = "periodic"


class ExecutionStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # the user's code failed (or ran past execution_timeout_s)
    ERROR = "Error"  # the platform could not run it to its end


class DeploymentStatus(StrEnum):
    CREATION_PENDING = "creation_pending"
    UP = "up"
    CREATION_FAILED = "creation_failed"
    DOWN_RETRYING = "down_retrying"
    STANDBY = "standby"
    DISABLED = "disabled"


class PodStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"  # refusing calls (disabled or deleted), not yet gone
    STOPPED = "stopped"


# Pods get_deployment lists: those that are, or may again be, something to look at.
LISTED_POD_STATUSES = (PodStatus.PENDING, PodStatus.RUNNING, PodStatus.RESTARTING, PodStatus.FAILED, PodStatus.STOPPING)
