"""Live tails: Server-Sent Events of an execution's or a deployment's new log lines.

The page renders the lines written so far and the id of the last one; its script opens an
``EventSource`` from there. Each event is one line (``event: log``, its row id as the event id,
so that the browser's reconnection resumes where it stopped with ``Last-Event-ID``). An
execution's stream ends with ``event: end`` once it has ended and its last lines are sent; a
deployment's also tells its status when it changes (``event: status``). A stream lasts
``STREAM_LIFETIME_S`` at most (the browser reconnects, and the session is checked again then).
A browser that goes away is noticed when an event (a keepalive at least) cannot be sent.
The database is read every ``POLL_S`` on a thread: the platform's writers (an elastic worker, a
pod's batches) commit lines as they go, and nothing else signals them here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from rayline.api.context import AppContext, get_context
from rayline.console.guard import ConsoleRoute, session_of
from rayline.console.pages import found
from rayline.console.sessions import Session
from rayline.errors import NotFound
from rayline.store.executions import FINAL_STATUSES

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
POLL_S = 0.5
KEEPALIVE_S = 15.0
STREAM_LIFETIME_S = 300.0
BATCH = 500


def _event(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _log_event(row: Any) -> str:
    return _event(
        "log",
        {"timestamp": row.timestamp.isoformat().replace("+00:00", "Z"), "stream": row.stream, "message": row.message},
        row.id,
    )


def _cursor(request: Request, after: int | None) -> int:
    resumed = request.headers.get("last-event-id", "")
    return int(resumed) if resumed.isdigit() else max(0, after or 0)


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    # No proxy between here and the browser may hold the events back (nginx reads X-Accel-Buffering).
    return StreamingResponse(events, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


async def _tail(
    cursor: int,
    read_lines: Callable[[int], list[Any]],
    poll: Callable[[], tuple[str | None, bool]],
) -> AsyncIterator[str]:
    """Lines after ``cursor`` as they come. ``poll()`` -> (a status to tell or None, whether it is
    the last: then it is told as ``end``, after the last lines)."""
    loop = asyncio.get_running_loop()
    began = last_sent = loop.time()
    yield "retry: 2000\n\n"
    while loop.time() - began < STREAM_LIFETIME_S:
        status, ended = await asyncio.to_thread(poll)  # before the lines: an end's last lines are committed with it
        while True:
            rows = await asyncio.to_thread(read_lines, cursor)
            for row in rows:
                yield _log_event(row)
            if rows:
                cursor, last_sent = rows[-1].id, loop.time()
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


@router.get("/executions/{execution_id}/logs/events")
def execution_log_events(
    execution_id: str,
    request: Request,
    after: int | None = None,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
) -> StreamingResponse:
    found("execution", execution_id, lambda: context.executions.get(execution_id, flush=False))

    def poll() -> tuple[str | None, bool]:
        status = context.executions.get(execution_id, flush=False).status
        return (status, True) if status in FINAL_STATUSES else (None, False)

    return _stream(
        _tail(_cursor(request, after), lambda at: context.executions.log_tail(execution_id, at, BATCH), poll)
    )


@router.get("/deployments/{name}/logs/events")
def deployment_log_events(
    name: str,
    request: Request,
    after: int | None = None,
    session: Session = Depends(session_of),
    context: AppContext = Depends(get_context),
) -> StreamingResponse:
    seen = {"status": found("deployment", name, lambda: context.deployments.get(name)).status}

    def poll() -> tuple[str | None, bool]:
        try:
            status = context.deployments.get(name).status
        except NotFound:  # deleted meanwhile: the stream ends
            return "deleted", True
        changed = status != seen["status"]
        seen["status"] = status
        return (status if changed else None, False)

    return _stream(_tail(_cursor(request, after), lambda at: context.deployments.log_tail(name, at, BATCH), poll))
