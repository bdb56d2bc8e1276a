"""Live tails: Server-Sent Events of an execution's or a deployment's new log lines.

The page renders the lines written so far and the id of the last one; its script opens an
``EventSource`` from there (and closes it while the tab is hidden, reopening it from the last id
it got when it is shown again). Each event is one line (``event: log``, its row id as the event
id, so that the browser's reconnection resumes where it stopped with ``Last-Event-ID``). An
execution's stream ends with ``event: end`` once it has ended and its last lines are sent; a
deployment's also tells its status when it changes (``event: status``), read from one snapshot
that all streams share (``rayline.console.snapshot``: Serve's controller is asked once per
``MAX_AGE_S``, not once per stream and poll). A stream lasts ``STREAM_LIFETIME_S`` at most (the
browser reconnects, and the session is checked again then); its session is also checked at
every poll, and the stream ends (``event: signed-out``) once it has expired or been signed out
of. A browser that goes away is noticed when an event (a keepalive at least) cannot be sent.

The database is read every ``POLL_S`` on a thread: the platform's writers (an elastic worker, a
pod's batches) commit lines as they go, and nothing else signals them here. A row id is taken at
INSERT, not at COMMIT (``rayline.store.executions.log_tail``), so each read goes back behind the
cursor over the lines sent in the last ``LATE_S`` (``MAX_BEHIND`` of them at most) and skips
those: a line committed up to that late after a later one is still sent, once. The limit: a line
committed later than that, or one committed late behind the page's first cursor (the lines the
page rendered, whose ids the stream does not know), is not sent; reloading the page shows it.

A cursor the browser sends (``after``, ``Last-Event-ID``) is digits only (``CURSOR``), and is
brought down to the owner's last line; anything else starts the stream at that last line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from rayline.api.context import AppContext, get_context
from rayline.console.guard import ConsoleRoute, PageNotFound, session_of, sessions_of
from rayline.console.pages import found
from rayline.console.sessions import COOKIE_NAME, Session
from rayline.store.executions import FINAL_STATUSES

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
POLL_S = 0.5
KEEPALIVE_S = 15.0
STREAM_LIFETIME_S = 300.0
BATCH = 500
LATE_S = 10.0
MAX_BEHIND = 200
CURSOR = re.compile(r"[0-9]{1,18}", re.ASCII)  # below 2**63: any SQL integer column


def _event(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _log_event(row: Any) -> str:
    return _event(
        "log",
        {"timestamp": row.timestamp.isoformat().replace("+00:00", "Z"), "stream": row.stream, "message": row.message},
        row.id,
    )


def parse_cursor(request: Request, after: str | None) -> int | None:
    """The browser's cursor: its ``Last-Event-ID`` (a reconnection), else ``after`` (the page's);
    None when neither is one."""
    for given in (request.headers.get("last-event-id"), after):
        if given is not None and CURSOR.fullmatch(given):
            return int(given)
    return None


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    # No proxy between here and the browser may hold the events back (nginx reads X-Accel-Buffering).
    return StreamingResponse(events, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


class SentWindow:
    """The ids a tail sent lately: every sent id above ``floor`` is in it (the smallest go first,
    once older than ``late_s`` or past ``max_ids``), so that reading the ids above ``floor`` but
    these finds exactly what is new, late commits included."""

    def __init__(self, cursor: int, late_s: float = LATE_S, max_ids: int = MAX_BEHIND) -> None:
        self.floor = cursor
        self._sent: dict[int, float] = {}  # id -> when it was sent
        self._late_s, self._max_ids = late_s, max_ids

    @property
    def ids(self) -> Collection[int]:
        return self._sent.keys()

    def add(self, row_id: int, now: float) -> None:
        if row_id > self.floor:
            self._sent[row_id] = now

    def prune(self, now: float) -> None:
        for row_id in sorted(self._sent):
            if len(self._sent) <= self._max_ids and now - self._sent[row_id] <= self._late_s:
                break
            del self._sent[row_id]
            self.floor = max(self.floor, row_id)


async def _tail(
    cursor: int,
    read_lines: Callable[[int, Collection[int]], list[Any]],
    poll: Callable[[], tuple[str | None, bool]],
    signed_in: Callable[[], bool],
) -> AsyncIterator[str]:
    """Lines after ``cursor`` as they come (``read_lines(after, skip)``). ``poll()`` -> (a status
    to tell or None, whether it is the last: then it is told as ``end``, after the last lines);
    ``signed_in()``: whether the stream's session still is."""
    loop = asyncio.get_running_loop()
    began = last_sent = loop.time()
    window = SentWindow(cursor)
    yield "retry: 2000\n\n"
    while loop.time() - began < STREAM_LIFETIME_S:
        if not await asyncio.to_thread(signed_in):
            yield _event("signed-out", {"message": "Your session has ended; sign in again."})
            return
        status, ended = await asyncio.to_thread(poll)  # before the lines: an end's last lines are committed with it
        while True:
            rows = await asyncio.to_thread(read_lines, window.floor, list(window.ids))
            now = loop.time()
            for row in rows:
                yield _log_event(row)
                window.add(row.id, now)
            if rows:
                last_sent = now
            window.prune(now)
            if len(rows) < BATCH:
                break
        if status is not None:
            yield _event("end" if ended else "status", {"status": status})
            last_sent = loop.time()
        if ended:
            return
        if loop.time() - last_sent > KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = loop.time()
        await asyncio.sleep(POLL_S)


def _session_check(request: Request) -> Callable[[], bool]:
    sessions, cookie = sessions_of(request), request.cookies.get(COOKIE_NAME)
    return lambda: sessions.read(cookie) is not None


def _start(given: int | None, last_line: list[Any]) -> int:
    """Where a stream starts: the browser's cursor, brought down to the last line there is."""
    last_id = last_line[-1].id if last_line else 0
    return last_id if given is None else min(given, last_id)


@router.get("/executions/{execution_id}/logs/events")
def execution_log_events(
    execution_id: str,
    request: Request,
    after: str | None = None,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
) -> StreamingResponse:
    found("execution", execution_id, lambda: context.executions.get(execution_id, flush=False))
    cursor = _start(parse_cursor(request, after), context.executions.log_tail(execution_id, limit=1))

    def poll() -> tuple[str | None, bool]:
        status = context.executions.get(execution_id, flush=False).status
        return (status, True) if status in FINAL_STATUSES else (None, False)

    def read_lines(at: int, skip: Collection[int]) -> list[Any]:
        return context.executions.log_tail(execution_id, at, BATCH, skip)

    return _stream(_tail(cursor, read_lines, poll, _session_check(request)))


@router.get("/deployments/{name}/logs/events")
def deployment_log_events(
    name: str,
    request: Request,
    after: str | None = None,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
) -> StreamingResponse:
    statuses = request.app.state.console.statuses
    seen = {"status": statuses.status_of(name)}
    if seen["status"] is None:
        raise PageNotFound("deployment", name)
    cursor = _start(parse_cursor(request, after), context.deployments.log_tail(name, limit=1))

    def poll() -> tuple[str | None, bool]:
        status = statuses.status_of(name)
        if status is None:  # deleted meanwhile: the stream ends
            return "deleted", True
        changed = status != seen["status"]
        seen["status"] = status
        return (status if changed else None, False)

    def read_lines(at: int, skip: Collection[int]) -> list[Any]:
        return context.deployments.log_tail(name, at, BATCH, skip)

    return _stream(_tail(cursor, read_lines, poll, _session_check(request)))
