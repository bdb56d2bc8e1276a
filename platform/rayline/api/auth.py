"""The SDK token check for every ``/api/v1`` route but health, auth/refresh, packages and the 501s.

One check, used twice: by ``RequestGuard`` (``rayline.api.limits``) before a request's body is
read, since FastAPI reads and parses a ``Body(...)`` parameter before it runs a router's
dependencies; and as the protected router's dependency, so no route depends on the middleware
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import Scope

from rayline.api.context import AppContext, get_context
from rayline.api.limits import route_path
from rayline.domain.access_tokens import looks_like_jwt
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


def sdk_token_problem(authorization: str, context: AppContext) -> str | None:
    """Why an ``Authorization`` header does not carry the SDK token or an access token issued for
    it by ``/auth/refresh``; None when it does."""
    token = bearer_of(authorization, "Bearer")
    if token is None:
        return (
            "Missing SDK token: send 'Authorization: Bearer <token>' (RaylineSdk does it for you; "
            "`cat $RAYLINE_HOME/sdk-token` shows the token)."
        )
    if looks_like_jwt(token):
        return context.access_tokens.problem(token)
    if not token_matches(token, context.sdk_token_hash):
        return (
            "Invalid SDK token. Use the token `rayline up` printed the path of "
            "($RAYLINE_HOME/sdk-token), or the RAYLINE_SDK_TOKEN it was started with."
        )
    return None


def require_sdk_token(request: Request, context: AppContext = Depends(get_context)) -> None:
    """The dependency of the protected router."""
    problem = sdk_token_problem(request.headers.get("authorization", ""), context)
    if problem:
        raise Unauthorized(problem)


def sdk_token_gate(
    context: AppContext, prefix: str, open_routes: Iterable[tuple[Iterable[str], str]]
) -> Callable[[Scope], Unauthorized | None]:
    """For ``RequestGuard``: the refusal of a request under ``prefix`` that lacks the SDK token,
    unless it is for one of ``open_routes`` (``(methods, path template)``: health, auth/refresh,
    packages with its own token, the 501s, the OpenAPI page). A path under ``prefix`` that no
    route serves needs the token too, so that the API cannot be probed without it."""
    compiled = [
        (frozenset(method.upper() for method in methods), compile_path(path)[0]) for methods, path in open_routes
    ]

    def refusal(scope: Scope) -> Unauthorized | None:
        path = route_path(scope)
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        method = scope["method"]
        if any(method in methods and regex.match(path) for methods, regex in compiled):
            return None
        problem = sdk_token_problem(Headers(scope=scope).get("authorization", ""), context)
        return Unauthorized(problem) if problem else None

    return refusal
