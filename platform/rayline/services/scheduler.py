"""Starts the executions of periodic deployments when their cron schedule (UTC) is due.

Each enabled periodic deployment row carries ``next_run_at``, the next due time not yet started.
A scheduler that finds ``next_run_at <= now`` claims that due time by moving it forward in ONE
conditional UPDATE::

    UPDATE deployments SET next_run_at = :following
    WHERE name = :name AND next_run_at = :claimed_due AND schedule = :schedule
      AND is_enabled AND execution_rule = 'periodic'

and starts an execution only when that UPDATE changed a row. The database applies concurrent
UPDATEs of one row one after the other and re-checks the WHERE clause each time (SQLite holds a
write lock; PostgreSQL re-reads the row under READ COMMITTED), so exactly one of several
schedulers - control-plane replicas, or a replica and its restarted self - wins a due time;
the others see ``rowcount == 0`` and move on. No lock, leader election or clock agreement is
needed beyond clocks that are roughly right. ``next_run_at`` only moves forward, so a claim can
never be repeated.

The claim is committed before the execution starts: a crash in between loses that one
execution rather than running it twice (at most once per due time, exactly once otherwise).

Missed due times (the platform was down, or the deployment's turn came while every scheduler
was busy) are not replayed one by one: a single catch-up execution starts, ``catch_up`` is True,
and a deployment log line says how many were missed. Changing a schedule or re-enabling a
deployment sets ``next_run_at`` to the next due time (``rayline.domain.schedules.next_due``):
the change counts from there, with no catch-up for the time it was disabled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update

from rayline.domain.schedules import as_utc, due_times_between, next_due
from rayline.domain.statuses import ExecutionRule
from rayline.store.db import Database, rowcount
from rayline.store.executions import add_deployment_log
from rayline.store.models import Deployment, utcnow

log = logging.getLogger(__name__)

_deployments = cast(Table, Deployment.__table__)  # typed as the FromClause of any mapped class
MAX_COUNTED_MISSES = 1000  # counting the misses of '* * * * *' over a month-long outage is pointless

StartFn = Callable[[str, datetime, bool], None]
LogFn = Callable[[str, str, str], None]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_periodic_and_enabled():
    return (_deployments.c.is_enabled.is_(True)) & (_deployments.c.execution_rule == ExecutionRule.PERIODIC)


class Scheduler:
    """Ticks over the periodic deployments and starts what is due.

    ``start(deployment_name, due_time, catch_up)`` starts one execution; it may raise, which is
    written to the deployment's logs (stream stderr) - that due time is not retried.
    ``logger_fn(deployment_name, message, stream)`` writes one deployment log line; by default a
    ``DeploymentLog`` row is inserted (``RecordWriter.deployment_log`` fits too).
    """

    def __init__(self, db: Database, start: StartFn, logger_fn: LogFn | None = None) -> None:
        self._db = db
        self._start = start
        self._log_line = logger_fn or self._insert_log
        self._warned: set[tuple[str, str | None]] = set()  # broken schedules, reported once

    def tick(self, now: datetime | None = None) -> list[tuple[str, datetime, bool]]:
        """Start every due execution once; returns ``(name, due_time, catch_up)`` of each that
        started (a ``start`` that raised is not in it)."""
        now = as_utc(now) if now is not None else utcnow()
        with self._db.session() as session:
            rows = session.execute(
                select(_deployments.c.name, _deployments.c.schedule, _deployments.c.next_run_at)
                .where(_is_periodic_and_enabled())
                .where(_deployments.c.next_run_at.is_(None) | (_deployments.c.next_run_at <= now))
            ).all()
        started = []
        for name, schedule, next_run_at in rows:
            try:
                outcome = self._due(name, schedule, next_run_at, now)
            except Exception:
                # One broken row must not hold up the others; say so once, not every second.
                if (name, schedule) not in self._warned:
                    self._warned.add((name, schedule))
                    log.exception("Cannot schedule periodic deployment %r (schedule %r)", name, schedule)
                continue
            if outcome is not None:
                started.append(outcome)
        return started

    def _due(
        self, name: str, schedule: str, next_run_at: datetime | None, now: datetime
    ) -> tuple[str, datetime, bool] | None:
        following = next_due(schedule, now)
        if next_run_at is None:
            # First sight (new, or rescheduled without a time): the first due time is in the
            # future, nothing runs now. Conditional, so two schedulers agree on one value.
            self._claim(name, schedule, None, following)
            return None
        # More than one due time has passed: one execution stands for all of them (no burst).
        catch_up = next_due(schedule, next_run_at) <= now
        if not self._claim(name, schedule, next_run_at, following):
            return None  # another scheduler owns this due time, or the row changed meanwhile
        try:
            self._start(name, next_run_at, catch_up)
        except Exception as error:
            log.exception("Starting the execution of %r due at %s failed", name, next_run_at)
            what = "catch-up execution" if catch_up else "execution"
            self._write_log(
                name,
                f"Could not start the {what} due at {_iso(next_run_at)}: {type(error).__name__}: {error}",
                "stderr",
            )
            return None
        if catch_up:
            self._write_log(name, lambda: self._catch_up_message(schedule, next_run_at, now), "stdout")
        return name, next_run_at, catch_up

    @staticmethod
    def _catch_up_message(schedule: str, first_missed: datetime, now: datetime) -> str:
        missed = due_times_between(schedule, first_missed, now, MAX_COUNTED_MISSES)
        count = f"{missed}+" if missed >= MAX_COUNTED_MISSES else str(missed)
        return (
            f"Missed {count} due times while the platform was down (since {_iso(first_missed)}); "
            f"started one catch-up execution."
        )

    def _claim(self, name: str, schedule: str, due: datetime | None, following: datetime) -> bool:
        # The whole of exactly-once (see the module docstring): one statement, in its own short
        # transaction, that only succeeds while the row still holds what this scheduler read.
        current = _deployments.c.next_run_at.is_(None) if due is None else _deployments.c.next_run_at == due
        with self._db.session() as session:
            result = session.execute(
                update(_deployments)
                .where(
                    _deployments.c.name == name,
                    current,
                    _deployments.c.schedule == schedule,
                    _is_periodic_and_enabled(),
                )
                .values(next_run_at=following)
            )
            return rowcount(result) == 1

    def _write_log(self, name: str, message: str | Callable[[], str], stream: str) -> None:
        try:
            self._log_line(name, message if isinstance(message, str) else message(), stream)
        except Exception:  # the due time is claimed (and maybe started): a lost log line is the lesser harm
            log.exception("Could not write a deployment log line for %r", name)

    def _insert_log(self, name: str, message: str, stream: str) -> None:
        add_deployment_log(self._db, name, message, stream)

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        """Tick every ``interval_s`` until ``stop`` is set (run it in a thread). A due time is
        picked up within about ``interval_s``; a failing tick is logged and the loop goes on."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("Scheduler tick failed; trying again in %.1f s", interval_s)
            stop.wait(max(0.0, interval_s - (time.monotonic() - began)))
