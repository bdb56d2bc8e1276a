"""Rayline's web console, served by the control plane at ``/`` on the API's port: server-rendered
pages (Jinja2, ``templates/``) over the services, a small script and a stylesheet (``static/``),
no build step. ``install`` is the one thing the application calls.

Everything but the sign-in page and the static files needs a session (``sessions``), got by
typing the SDK token once; actions are guarded against other sites (``guard``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rayline.api.context import AppContext
from rayline.console.sessions import Sessions, SqlRevocations
from rayline.console.snapshot import StatusSnapshot

HERE = Path(__file__).resolve().parent


class ConsoleState:
    """What the console's routes share, built at the first request that needs it (the platform's
    secret key is read then: an application built without one, in tests, still serves its API)."""

    def __init__(self, context: AppContext) -> None:
        self._context = context

    @cached_property
    def statuses(self) -> StatusSnapshot:
        """The deployments' statuses, one look shared by every live tail (``rayline.console.live``)."""
        return StatusSnapshot(self._context.deployments.list_observed)

    @cached_property
    def sessions(self) -> Sessions:
        settings = self._context.settings
        return Sessions(
            settings.secret_key_path.read_bytes().strip(),
            self._context.sdk_token_hash,
            settings.console_session_ttl_s,
            SqlRevocations(self._context.db),
        )


def install(app: FastAPI, context: AppContext) -> None:
    """Add the console's pages, actions, live tails and static files to the control plane's app
    (none of them in the OpenAPI document)."""
    from rayline.console import actions, live, pages
    from rayline.console.guard import install_error_pages
    from rayline.console.views import STATIC_PREFIX

    app.state.console = ConsoleState(context)
    install_error_pages(app)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(live.router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")
