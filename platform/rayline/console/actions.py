"""The console's actions (POST): signing in and out, and what a deployment's page can change.
Each checks where it comes from (``rayline.console.guard.check_action``) before it reads more
than its small form, then calls the service, then answers 303 to the page to show (so that a
reload never repeats it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from rayline.api.context import AppContext, get_context
from rayline.console.guard import (
    CSRF_FIELD,
    CSRF_HEADER,
    ConsoleRoute,
    check_action,
    is_https,
    local_path,
    session_of,
    sessions_of,
)
from rayline.console.pages import found
from rayline.console.sessions import COOKIE_NAME, Session
from rayline.console.views import page
from rayline.domain.pod_scaling import FIELDS as SCALING_FIELDS
from rayline.domain.tokens import token_matches
from rayline.errors import InvalidInput

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
LOGIN_MESSAGES = {
    "expired": "Your session has ended; sign in again.",
    "signed-out": "You are signed out.",
}


async def small_form(request: Request) -> FormData:
    # The body itself is bounded before this (rayline.api.limits: 1 MiB for any form).
    return await request.form(max_files=0, max_fields=10)


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None):
    target = local_path(next)
    if sessions_of(request).read(request.cookies.get(COOKIE_NAME)) is not None:
        return RedirectResponse(target, status_code=303)
    reason = "expired" if COOKIE_NAME in request.cookies else request.query_params.get("reason")
    return page(
        request, "login.html", None, title="Sign in", next=target, message=LOGIN_MESSAGES.get(reason or ""), error=None
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: AppContext = Depends(get_context)):
    check_action(request, None, None)  # no session yet: the Origin check alone (and SameSite)
    form = await small_form(request)
    token, target = field(form, "token"), local_path(field(form, "next"))
    if not token or not token_matches(token, context.sdk_token_hash):
        message = (
            "Type the SDK token to sign in."
            if not token
            else "That is not this platform's SDK token. `rayline token` (or `cat $RAYLINE_HOME/sdk-token`) shows it."
        )
        refused = page(
            request,
            "login.html",
            None,
            status_code=400 if not token else 401,
            title="Sign in",
            next=target,
            message=None,
            error=message,
        )
        refused.delete_cookie(COOKIE_NAME, path="/")
        return refused
    cookie, session = sessions_of(request).issue()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=session.expires_at - session.issued_at,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request):
    session = sessions_of(request).read(request.cookies.get(COOKIE_NAME))
    if session is not None:
        form = await small_form(request)
        check_action(request, session, field(form, CSRF_FIELD))
        sessions_of(request).revoke(session)
    response = RedirectResponse("/login?reason=signed-out", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=is_https(request))
    return response


async def _deployment_action(request: Request, session: Session) -> FormData:
    form = await small_form(request)
    check_action(request, session, field(form, CSRF_FIELD))
    return form


def _back(name: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/deployments/{name}?done={done}", status_code=303)


@router.post("/deployments/{name}/enable")
async def enable(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    await _deployment_action(request, session)
    await run_in_threadpool(found, "deployment", name, lambda: context.deployments.update(name, {"is_enabled": True}))
    return _back(name, "enabled")


@router.post("/deployments/{name}/disable")
async def disable(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    await _deployment_action(request, session)
    await run_in_threadpool(found, "deployment", name, lambda: context.deployments.update(name, {"is_enabled": False}))
    return _back(name, "disabled")


@router.post("/deployments/{name}/reload")
async def reload(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    """Re-import the pipeline's module in new pods (a low-latency deployment's update with no change)."""
    await _deployment_action(request, session)
    row = await run_in_threadpool(found, "deployment", name, lambda: context.deployments.get(name))
    if row.mode != "low_latency" or not row.is_enabled:
        raise InvalidInput(f"Only an enabled low_latency deployment has pods to reload; {name!r} is {row.mode}.")
    await run_in_threadpool(context.deployments.update, name, {})
    return _back(name, "reloaded")


@router.post("/deployments/{name}/rotate-token")
async def rotate_token(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    await _deployment_action(request, session)
    await run_in_threadpool(found, "deployment", name, lambda: context.deployments.rotate_token(name))
    return _back(name, "token-rotated")


@router.post("/deployments/{name}/pods")
async def pod_settings(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    """min_pods, max_pods, scale_down_after_s and standby_after_s of a low-latency deployment."""
    form = await _deployment_action(request, session)
    changes: dict[str, Any] = {}
    for name_of_field in SCALING_FIELDS:
        text = field(form, name_of_field)
        if not text:
            continue
        try:
            changes[name_of_field] = int(text) if name_of_field.endswith("_pods") else float(text)
        except ValueError:
            raise InvalidInput(f"{name_of_field} must be a number, not {text!r}.") from None
    if changes:
        await run_in_threadpool(found, "deployment", name, lambda: context.deployments.update(name, changes))
    return _back(name, "pods")


@router.post("/deployments/{name}/endpoint-token")
async def reveal_endpoint_token(
    name: str, request: Request, session: Session = Depends(session_of), context: AppContext = Depends(get_context)
) -> Response:
    """The endpoint token, for the page's script (the token is in no page until asked for)."""
    check_action(request, session, request.headers.get(CSRF_HEADER))
    row = await run_in_threadpool(found, "deployment", name, lambda: context.deployments.get(name))
    token = context.deployments.endpoint_token(row)
    if token is None:
        raise InvalidInput(f"Deployment {name!r} is not an endpoint; it has no endpoint token.")
    return JSONResponse({"endpoint_token": token})
