"""Rendering: the console's Jinja2 environment (autoescaped: whatever a pipeline printed or a user
named is text on the page, never markup) and the filters its templates use."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from rayline import __version__
from rayline.console.charts import duration_s, human_duration
from rayline.console.sessions import Session

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/console/static"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def as_json(value: Any) -> str:
    """A value as the API shows it (JSON), for the inputs and outputs tables."""
    return json.dumps(value, ensure_ascii=False, default=str)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a name a template misspells fails the page, not silently blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        as_json=as_json,
        duration=human_duration,
        took=lambda execution: human_duration(duration_s(execution)),
        status_class=lambda status: str(status or "").lower().replace(" ", "-"),
    )
    env.globals.update(static=lambda name: f"{STATIC_PREFIX}/{name}?v={__version__}", version=__version__)
    return env


def dashboard_url(request: Request) -> str:
    """Ray's dashboard as this browser reaches it: its host, unless it listens on every interface."""
    settings = request.app.state.context.settings
    host = settings.dashboard_host
    if host in ("0.0.0.0", "::", ""):
        host = request.url.hostname or "127.0.0.1"
    return f"http://{host}:{settings.dashboard_port}"


def render(request: Request, template: str, session: Session | None, **values: Any) -> str:
    return (
        environment()
        .get_template(template)
        .render(
            request_path=request.url.path,
            csrf_token=session.csrf_token if session else "",
            signed_in=session is not None,
            dashboard=dashboard_url(request),
            **values,
        )
    )


def page(request: Request, template: str, session: Session | None, status_code: int = 200, **values: Any):
    return HTMLResponse(render(request, template, session, **values), status_code=status_code)
