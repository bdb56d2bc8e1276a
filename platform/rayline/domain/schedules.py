"""Cron schedules of periodic deployments: checking, describing, and the next due time.

A schedule is a standard 5-field cron expression, always read in UTC::

    minute hour day-of-month month day-of-week      e.g. '*/5 * * * *' (every 5 minutes)

Parsing and the calendar arithmetic are croniter's; descriptions are cron-descriptor's. What
croniter accepts inside the 5 fields is accepted (ranges, lists, steps, ``JAN``/``MON`` names,
``L``, ``W``, ``#``, ``?``), with three exceptions: a 6th (seconds) or 7th (year) field, the
``H``/``R`` hashed and random values (``R`` draws a new minute each time the expression is read,
so no two schedulers would agree on the due times), and expressions that can never be due
(``0 0 30 2 *``). The macros croniter maps to a 5-field expression (``@hourly``, ``@daily``,
``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually``) are accepted and stored as
that expression, so a stored schedule always has 5 fields. As in cron, when both day-of-month
and day-of-week are restricted, a day matching either is due (``0 0 1 * MON``: the 1st and
every Monday).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter

from rayline.errors import InvalidInput

EXAMPLE = "'*/5 * * * *' (every 5 minutes)"
FIELDS = "minute hour day-of-month month day-of-week"
MAX_LENGTH = 255  # the width of deployments.schedule

# One element of a field that croniter reads as hashed (H) or random (R): see the module doc.
_HASHED_OR_RANDOM = re.compile(r"^[hr](\(|/|$)", re.IGNORECASE)
# Built once: Options reads the locale. en_US with 24-hour times whatever the server's locale.
_DESCRIBE_OPTIONS = Options(use_24hour_time_format=True, locale_code="en_US")


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(
        f"schedule is not a valid cron expression: {reason}. Give 5 fields ({FIELDS}, in UTC), e.g. {EXAMPLE}."
    )


def parse_schedule(text: object) -> str:
    """Check a cron schedule and return it normalised (single spaces; a macro as its 5 fields).

    Raises ``InvalidInput`` naming the ``schedule`` field, why it is wrong, and an example.
    """
    if not isinstance(text, str):
        raise _invalid(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise _invalid(f"longer than {MAX_LENGTH} characters")
    fields = text.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        try:
            fields = croniter(fields[0]).expressions  # croniter's own table of macros
        except Exception as error:
            raise _invalid(f"{fields[0]!r} is not a supported macro ({error})") from None
        if len(fields) != 5:
            raise _invalid(f"{text.strip()!r} is not a supported macro")
    if len(fields) != 5:
        extra = " (a seconds or year field is not supported)" if len(fields) in (6, 7) else ""
        raise _invalid(f"expected 5 fields, got {len(fields)}{extra}")
    for name, field in zip(FIELDS.split(), fields, strict=True):
        if any(_HASHED_OR_RANDOM.match(element) for element in field.split(",")):
            raise _invalid(f"the hashed/random value {field!r} in the {name} field is not supported")
    schedule = " ".join(fields)
    try:
        # Computing a due time also catches dates that never come (30 February): croniter
        # accepts those and only fails when asked for a date.
        croniter(schedule, datetime.now(UTC)).get_next(datetime)
    except Exception as error:  # croniter raises ValueError, TypeError and KeyError subclasses
        raise _invalid(str(error) or type(error).__name__) from None
    return schedule


def human_readable(schedule: str) -> str:
    """An English description with 24-hour UTC times ("Every minute", "At 00:00"); the raw
    expression if cron-descriptor cannot describe it."""
    try:
        return ExpressionDescriptor(schedule, _DESCRIBE_OPTIONS).get_description()
    except Exception:  # a croniter-only syntax, or a bug there: the expression says it all
        return schedule


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    # Naive datetimes are UTC in this code base (the database stores them so). Converting an
    # aware one to UTC first matters: croniter computes in the zone it is given.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def next_due(schedule: str, after: datetime) -> datetime:
    """The first due time strictly after ``after`` (naive means UTC), as an aware UTC datetime."""
    due = croniter(schedule, as_utc(after)).get_next(datetime)
    return due.astimezone(UTC)


def due_times_between(schedule: str, first: datetime, until: datetime, limit: int = 1000) -> int:
    """How many due times lie in ``[first, until]``, ``first`` being one; counting stops at
    ``limit`` so that a long outage of a frequent schedule stays cheap."""
    until = as_utc(until)
    count, iterator = 1, croniter(schedule, as_utc(first))
    while count < limit and iterator.get_next(datetime) <= until:
        count += 1
    return count
