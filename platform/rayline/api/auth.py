"""The SDK token check for every ``/api/v1`` route but health, auth/refresh, packages and the 501s;
and, for the few routes an execution's code may call (recording its metrics, the data store), the
check of its credential.

One check, used twice: by ``RequestGuard`` (``rayline.api.limits``) before a request's body is
read, since FastAPI reads and parses a ``Body(...)`` parameter before it runs a router's
dependencies; and as the protected router's dependency, so no route depends on the middleware
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import Scope

from rayline.api.context import AppContext, get_context
from rayline.api.limits import route_path
from rayline.domain.access_tokens import SDK_SUBJECT, looks_like_jwt
from rayline.domain.code_credentials import CodeScope, is_code_credential
from rayline.domain.tokens import bearer_of, token_matches
from rayline.errors import Unauthorized

# How the OpenAPI document tells the tokens apart. FastAPI's security classes only describe them
# here (they never refuse: auto_error=False); the checks are the functions below.
SDK_TOKEN_SCHEME = HTTPBearer(
    scheme_name="SdkToken",
    auto_error=False,
    description="The SDK token ($RAYLINE_HOME/sdk-token), or an access token from /api/v1/auth/refresh.",
)
ENDPOINT_TOKEN_SCHEME = APIKeyHeader(
    name="Authorization",
    scheme_name="EndpointToken",
    auto_error=False,
    description="'EndpointToken <token>': a deployment's endpoint_token (get_deployment shows it).",
)


def caller_of(authorization: str, context: AppContext) -> CodeScope | None:
    """Who sends a request: None for the SDK token's holder (the SDK token, or an access token
    issued for it), else the scope of an execution's code (its credential, or an access token
    issued for it). Unauthorized, saying why, for anything else."""
    token = bearer_of(authorization, "Bearer")
    if token is None:
        raise Unauthorized(
            "Missing SDK token: send 'Authorization: Bearer <token>' (RaylineSdk does it for you; "
            "`cat $RAYLINE_HOME/sdk-token` shows the token)."
        )
    if looks_like_jwt(token):
        subject, expires_at = context.access_tokens.read(token)
        if subject == SDK_SUBJECT:
            return None
        scope = CodeScope.of_subject(subject, expires_at)
        if scope is None:
            raise Unauthorized("Invalid access token: get a new one from POST /api/v1/auth/refresh.")
        return scope
    if token_matches(token, context.sdk_token_hash):
        return None
    if is_code_credential(token):
        return context.code_access.scope_of(token)
    raise Unauthorized(
        "Invalid SDK token. Use the token `rayline up` printed the path of "
        "($RAYLINE_HOME/sdk-token), or the RAYLINE_SDK_TOKEN it was started with."
    )


CODE_SCOPE_REFUSED = (
    "This is the credential of an execution's code: it only records that execution's metrics and "
    "uses the data store. Everything else needs the SDK token."
)


def sdk_token_problem(authorization: str, context: AppContext, code_allowed: bool = False) -> str | None:
    """Why an ``Authorization`` header does not carry the SDK token or an access token issued for
    it by ``/auth/refresh`` (or, where ``code_allowed``, an execution's credential); None when it does."""
    try:
        scope = caller_of(authorization, context)
    except Unauthorized as refusal:
        return refusal.message
    return CODE_SCOPE_REFUSED if scope is not None and not code_allowed else None


def require_sdk_token(request: Request, context: AppContext = Depends(get_context)) -> None:
    """The dependency of the protected router."""
    problem = sdk_token_problem(request.headers.get("authorization", ""), context)
    if problem:
        raise Unauthorized(problem)


def request_caller(request: Request, context: AppContext = Depends(get_context)) -> CodeScope | None:
    """The dependency of the routes an execution's code may call too: who calls (see ``caller_of``)."""
    return caller_of(request.headers.get("authorization", ""), context)


def require_live_caller(request: Request, context: AppContext = Depends(get_context)) -> None:
    """The data store's dependency: the SDK token, or the credential of code whose execution
    still runs (of a deployment that still exists, for a warm pod's)."""
    scope = request_caller(request, context)
    if scope is not None:
        context.code_access.check_alive(scope)  # an SQL read: FastAPI runs a sync dependency in a thread


def sdk_token_gate(
    context: AppContext,
    prefix: str,
    open_routes: Iterable[tuple[Iterable[str], str]],
    code_routes: Iterable[tuple[Iterable[str], str]] = (),
) -> Callable[[Scope], Unauthorized | None]:
    """For ``RequestGuard``: the refusal of a request under ``prefix`` that lacks the SDK token,
    unless it is for one of ``open_routes`` (``(methods, path template)``: health, auth/refresh,
    packages with its own token, the 501s, the OpenAPI page), or one of ``code_routes`` with an
    execution's credential (metrics recording, the data store). A path under ``prefix`` that no
    route serves needs the token too, so that the API cannot be probed without it."""

    def compile_all(routes: Iterable[tuple[Iterable[str], str]]) -> list[tuple[frozenset[str], Any]]:
        return [(frozenset(method.upper() for method in methods), compile_path(path)[0]) for methods, path in routes]

    compiled, for_code = compile_all(open_routes), compile_all(code_routes)

    def refusal(scope: Scope) -> Unauthorized | None:
        path = route_path(scope)
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        method = scope["method"]
        if any(method in methods and regex.match(path) for methods, regex in compiled):
            return None
        code_allowed = any(method in methods and regex.match(path) for methods, regex in for_code)
        problem = sdk_token_problem(Headers(scope=scope).get("authorization", ""), context, code_allowed)
        return Unauthorized(problem) if problem else None

    return refusal
