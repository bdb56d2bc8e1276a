"""Cron schedules (checking, describing, next due time) and the scheduler of periodic
deployments: a due time starts exactly one execution, even with several schedulers racing."""

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rayline.domain.schedules import human_readable, next_due, parse_schedule
from rayline.errors import InvalidInput
from rayline.services.scheduler import Scheduler
from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import Deployment, DeploymentLog

UTC = UTC
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a whole minute


def database(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    return db


def add_deployment(
    db: Database,
    name: str,
    schedule: str | None = "* * * * *",
    next_run_at=None,
    execution_rule: str = "periodic",
    is_enabled: bool = True,
) -> None:
    with db.session() as session:
        session.add(
            Deployment(
                name=name,
                pipeline_name="pipe",
                execution_rule=execution_rule,
                mode="elastic",
                schedule=schedule,
                next_run_at=next_run_at,
                is_enabled=is_enabled,
                status="up",
            )
        )


def next_run_at(db: Database, name: str) -> datetime | None:
    with db.session() as session:
        return session.get(Deployment, name).next_run_at


def deployment_logs(db: Database, name: str) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.query(DeploymentLog).filter_by(deployment_name=name).order_by(DeploymentLog.id)
        return [(row.stream, row.message) for row in rows]


class Recorder:
    """A ``start`` that remembers what it was asked to start."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime, bool]] = []

    def __call__(self, name: str, due: datetime, catch_up: bool) -> None:
        self.calls.append((name, due, catch_up))  # list.append is atomic: threads may share one


# --- schedules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("* * * * *", "* * * * *"),
        ("  */5   *  * *\t* ", "*/5 * * * *"),
        ("0 9 * * MON-FRI", "0 9 * * MON-FRI"),
        ("0 0 1,15 * *", "0 0 1,15 * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days come
        ("0 0 L * *", "0 0 L * *"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
    ],
)
def test_valid_schedules_are_normalised(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        (None, "expected a string"),
        (5, "expected a string"),
        ("", "expected 5 fields, got 0"),
        ("* * * *", "expected 5 fields, got 4"),
        ("0 * * * * *", "seconds or year field"),
        ("0 0 * * * 2026 x", "expected 5 fields, got 7"),
        ("60 * * * *", "out of range"),
        ("0 24 * * *", "out of range"),
        ("0 0 0 * *", "out of range"),
        ("0 0 * 13 *", "out of range"),
        ("0 0 * * 8", "out of range"),
        ("*/0 * * * *", "step"),
        ("a b c d e", "not acceptable"),
        ("0 0 30 2 *", "failed to find next date"),  # 30 February never comes
        ("R * * * *", "hashed/random"),
        ("H * * * *", "hashed/random"),
        ("@reboot", "not a supported macro"),
        ("* " * 200, "longer than 255"),
    ],
)
def test_bad_schedules_say_which_field_why_and_what_would_do(text, reason):
    with pytest.raises(InvalidInput) as raised:
        parse_schedule(text)
    message = raised.value.message
    assert message.startswith("schedule ")
    assert reason in message
    assert "'*/5 * * * *' (every 5 minutes)" in message


@pytest.mark.parametrize(
    "schedule, description",
    [
        ("* * * * *", "Every minute"),
        ("0 0 * * *", "At 00:00"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("30 14 * * 1-5", "At 14:30, Monday through Friday"),
    ],
)
def test_human_readable_uses_24_hour_times(schedule, description):
    assert human_readable(schedule) == description


def test_human_readable_falls_back_to_the_expression():
    assert human_readable("not a cron") == "not a cron"


def test_next_due_is_strictly_after_and_utc():
    assert next_due("* * * * *", T0) == T0 + timedelta(minutes=1)
    assert next_due("* * * * *", T0 + timedelta(seconds=59, microseconds=999999)) == T0 + timedelta(minutes=1)
    assert next_due("0 0 * * *", T0) == datetime(2026, 3, 2, tzinfo=UTC)
    assert next_due("0 0 29 2 *", T0) == datetime(2028, 2, 29, tzinfo=UTC)
    # Another zone is the same instant; a naive datetime is UTC.
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert next_due("0 13 * * *", paris) == datetime(2026, 3, 1, 13, tzinfo=UTC)
    assert next_due("0 13 * * *", paris).tzinfo is UTC
    assert next_due("0 13 * * *", T0.replace(tzinfo=None)) == datetime(2026, 3, 1, 13, tzinfo=UTC)


# --- the scheduler -------------------------------------------------------------------------------


def test_a_due_time_starts_exactly_one_execution(any_database):
    db = any_database
    add_deployment(db, "every-minute", next_run_at=T0 + timedelta(minutes=1))
    start = Recorder()
    scheduler = Scheduler(db, start)
    assert scheduler.tick(T0 + timedelta(seconds=30)) == []  # not due yet
    due = T0 + timedelta(minutes=1)
    assert scheduler.tick(due) == [("every-minute", due, False)]
    assert scheduler.tick(due + timedelta(seconds=30)) == []  # the same due time, not again
    assert start.calls == [("every-minute", due, False)]
    assert next_run_at(db, "every-minute") == due + timedelta(minutes=1)
    assert deployment_logs(db, "every-minute") == []


def test_a_new_deployment_gets_its_first_due_time_without_running(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "hourly", schedule="0 * * * *")
    start = Recorder()
    scheduler = Scheduler(db, start)
    assert scheduler.tick(T0 + timedelta(minutes=10)) == []
    assert next_run_at(db, "hourly") == T0 + timedelta(hours=1)
    assert scheduler.tick(T0 + timedelta(hours=1, seconds=1)) == [("hourly", T0 + timedelta(hours=1), False)]
    assert start.calls == [("hourly", T0 + timedelta(hours=1), False)]


def test_disabled_and_endpoint_deployments_never_run(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "disabled", next_run_at=T0, is_enabled=False)
    add_deployment(db, "disabled-new", is_enabled=False)
    add_deployment(db, "endpoint", next_run_at=T0, execution_rule="endpoint")
    start = Recorder()
    scheduler = Scheduler(db, start)
    for minute in range(5):
        assert scheduler.tick(T0 + timedelta(minutes=minute)) == []
    assert start.calls == []
    assert next_run_at(db, "disabled") == T0  # untouched
    assert next_run_at(db, "disabled-new") is None


def test_missed_due_times_run_once_as_a_catch_up_and_the_log_says_so(any_database):
    db = any_database
    add_deployment(db, "every-5", schedule="*/5 * * * *", next_run_at=T0)
    start = Recorder()
    scheduler = Scheduler(db, start)
    back = T0 + timedelta(hours=1, minutes=2)  # down from 12:00 to 13:02: 13 due times missed
    assert scheduler.tick(back) == [("every-5", T0, True)]
    assert scheduler.tick(back + timedelta(seconds=30)) == []  # no burst
    assert start.calls == [("every-5", T0, True)]
    assert next_run_at(db, "every-5") == T0 + timedelta(hours=1, minutes=5)  # no catch-up of those
    assert deployment_logs(db, "every-5") == [
        (
            "stdout",
            "Missed 13 due times while the platform was down (since 2026-03-01T12:00:00Z); "
            "started one catch-up execution.",
        )
    ]
    # Then it is on time again.
    assert scheduler.tick(T0 + timedelta(hours=1, minutes=5)) == [
        ("every-5", T0 + timedelta(hours=1, minutes=5), False)
    ]


def test_a_late_tick_within_one_period_is_no_catch_up(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "every-minute", next_run_at=T0)
    scheduler = Scheduler(db, Recorder())
    assert scheduler.tick(T0 + timedelta(seconds=59)) == [("every-minute", T0, False)]


def test_the_count_of_missed_due_times_is_capped(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "every-minute", next_run_at=T0)
    scheduler = Scheduler(db, Recorder())
    assert scheduler.tick(T0 + timedelta(days=30)) == [("every-minute", T0, True)]
    [(_, message)] = deployment_logs(db, "every-minute")
    assert message.startswith("Missed 1000+ due times")


def test_a_start_that_raises_is_logged_and_later_ticks_go_on(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "flaky", next_run_at=T0)
    add_deployment(db, "steady", next_run_at=T0)
    calls = Recorder()

    def start(name, due, catch_up):
        calls(name, due, catch_up)
        if name == "flaky" and due == T0:
            raise RuntimeError("no worker left")

    scheduler = Scheduler(db, start)
    assert scheduler.tick(T0) == [("steady", T0, False)]
    assert deployment_logs(db, "flaky") == [
        ("stderr", "Could not start the execution due at 2026-03-01T12:00:00Z: RuntimeError: no worker left")
    ]
    one = T0 + timedelta(minutes=1)
    assert sorted(scheduler.tick(one)) == [("flaky", one, False), ("steady", one, False)]
    assert sorted(calls.calls) == [
        ("flaky", T0, False),
        ("flaky", one, False),
        ("steady", T0, False),
        ("steady", one, False),
    ]


def test_a_broken_row_does_not_hold_up_the_others(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "broken", schedule="not a cron", next_run_at=T0)
    add_deployment(db, "fine", next_run_at=T0)
    scheduler = Scheduler(db, Recorder())
    assert scheduler.tick(T0) == [("fine", T0, False)]


def test_a_custom_logger_gets_the_lines(tmp_path):
    db = database(tmp_path)
    add_deployment(db, "every-minute", next_run_at=T0)
    lines = []
    scheduler = Scheduler(db, Recorder(), logger_fn=lambda *line: lines.append(line))
    scheduler.tick(T0 + timedelta(minutes=3))
    assert lines == [
        (
            "every-minute",
            "Missed 4 due times while the platform was down "
            "(since 2026-03-01T12:00:00Z); started one catch-up execution.",
            "stdout",
        )
    ]
    assert deployment_logs(db, "every-minute") == []


def test_a_claim_fails_when_the_schedule_changed_under_it(any_database):
    db = any_database
    add_deployment(db, "changing", schedule="*/5 * * * *", next_run_at=T0)
    start = Recorder()

    def change_then_read(*args, **kwargs):
        # What a tick read is stale by the time it claims: the service changed the schedule.
        with db.session() as session:
            session.get(Deployment, "changing").schedule = "*/10 * * * *"
        return original(*args, **kwargs)

    scheduler = Scheduler(db, start)
    original, scheduler._claim = scheduler._claim, change_then_read
    assert scheduler.tick(T0) == []
    assert start.calls == []


def test_run_ticks_until_stopped_and_survives_a_failing_tick(tmp_path):
    db = database(tmp_path)
    scheduler = Scheduler(db, Recorder())
    ticks = []

    def tick(now=None):
        ticks.append(now)
        if len(ticks) == 1:
            raise RuntimeError("database away")
        return []

    scheduler.tick = tick
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop, 0.01))
    runner.start()
    try:
        deadline = datetime.now() + timedelta(seconds=10)
        while len(ticks) < 3 and datetime.now() < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        runner.join(5)
    assert not runner.is_alive()
    assert len(ticks) >= 3


# --- several schedulers --------------------------------------------------------------------------

SCHEDULES = {"every-minute": "* * * * *", "every-2": "*/2 * * * *", "every-3": "*/3 * * * *"}
MINUTES = 90  # 30 due times of every-3, 45 of every-2, 90 of every-minute


def expected_starts() -> list[tuple[str, datetime]]:
    return sorted(
        (name, T0 + timedelta(minutes=minute))
        for name, schedule in SCHEDULES.items()
        for minute in range(1, MINUTES + 1)
        if next_due(schedule, T0 + timedelta(minutes=minute - 1)) == T0 + timedelta(minutes=minute)
    )


def add_racing_deployments(db: Database) -> None:
    for name, schedule in SCHEDULES.items():
        add_deployment(db, name, schedule=schedule, next_run_at=next_due(schedule, T0))


def test_exactly_once_with_two_schedulers_racing_in_threads(any_database):
    db = any_database
    add_racing_deployments(db)
    start = Recorder()
    # Two schedulers as two control-plane replicas: each its own engine on the same file.
    schedulers = [Scheduler(Database(db.url), start) for _ in range(2)]
    threads_per_scheduler = 4
    barrier = threading.Barrier(len(schedulers) * threads_per_scheduler)
    errors = []

    def ticker(scheduler: Scheduler, offset_s: int) -> None:
        try:
            for minute in range(1, MINUTES + 1):
                barrier.wait(30)  # every thread ticks the same simulated minute at once
                scheduler.tick(T0 + timedelta(minutes=minute, seconds=offset_s))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=ticker, args=(scheduler, i))
        for scheduler in schedulers
        for i in range(threads_per_scheduler)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert not any(call[2] for call in start.calls)  # nothing was missed, so no catch-up
    assert sorted((name, due) for name, due, _ in start.calls) == expected_starts()
    assert len(expected_starts()) == 90 + 45 + 30


def test_no_due_time_twice_with_unsynchronised_schedulers(any_database):
    # Without the barrier a fast thread runs minutes ahead of a slow one, so catch-ups happen;
    # still no due time starts twice, and no execution starts before the previous claim.
    db = any_database
    add_racing_deployments(db)
    start = Recorder()
    schedulers = [Scheduler(Database(db.url), start) for _ in range(2)]
    threads = [
        threading.Thread(target=lambda s=scheduler: [s.tick(T0 + timedelta(minutes=m)) for m in range(1, MINUTES + 1)])
        for scheduler in schedulers
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    started = [(name, due) for name, due, _ in start.calls]
    assert len(started) == len(set(started))
    assert set(started) <= set(expected_starts())
    for name, schedule in SCHEDULES.items():  # the last minute was started by someone
        assert (name, T0 + timedelta(minutes=MINUTES)) in started
        assert next_run_at(db, name) == next_due(schedule, T0 + timedelta(minutes=MINUTES))


def _tick_in_a_process(url: str, barrier, results) -> None:
    starts = []
    scheduler = Scheduler(Database(url), lambda name, due, catch_up: starts.append((name, due.isoformat(), catch_up)))
    for minute in range(1, MINUTES + 1):
        barrier.wait(30)
        scheduler.tick(T0 + timedelta(minutes=minute))
    results.put(starts)


def test_exactly_once_with_two_scheduler_processes(any_database):
    db = any_database
    add_racing_deployments(db)
    context = multiprocessing.get_context("spawn")  # nothing shared with this process but the file
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_tick_in_a_process, args=(db.url, barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    collected = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    started = [(name, datetime.fromisoformat(due), catch_up) for starts in collected for name, due, catch_up in starts]
    assert not any(catch_up for _, _, catch_up in started)
    assert sorted((name, due) for name, due, _ in started) == expected_starts()
