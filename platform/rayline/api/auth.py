"""The SDK token check for every ``/api/v1`` route but health."""

from __future__ import annotations

from fastapi import Depends, Request

from rayline.api.context import AppContext, get_context
from rayline.domain.access_tokens import looks_like_jwt
from rayline.domain.tokens import token_matches
from rayline.errors import Unauthorized


def require_sdk_token(request: Request, context: AppContext = Depends(get_context)) -> None:
    """The SDK token itself, or an access token issued for it by ``/auth/refresh``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing SDK token: send 'Authorization: Bearer <token>' (RaylineSdk does it for you; "
                           "`cat $RAYLINE_HOME/sdk-token` shows the token).")
    if looks_like_jwt(token):
        problem = context.access_tokens.problem(token)
        if problem:
            raise Unauthorized(problem)
        return
    if not token_matches(token, context.sdk_token_hash):
        raise Unauthorized("Invalid SDK token. Use the token `rayline up` printed the path of "
                           "($RAYLINE_HOME/sdk-token), or the RAYLINE_SDK_TOKEN it was started with.")
