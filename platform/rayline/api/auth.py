"""The SDK token check for every ``/api/v1`` route but health."""

from __future__ import annotations

from fastapi import Depends, Request

from rayline.api.context import AppContext, get_context
from rayline.domain.tokens import token_matches
from rayline.errors import Unauthorized


def require_sdk_token(request: Request, context: AppContext = Depends(get_context)) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing SDK token: send 'Authorization: Bearer <token>' (RaylineSdk does it for you; "
                           "`cat $RAYLINE_HOME/sdk-token` shows the token).")
    if not token_matches(token.strip(), context.sdk_token_hash):
        raise Unauthorized("Invalid SDK token. Use the token `rayline up` printed the path of "
                           "($RAYLINE_HOME/sdk-token), or the RAYLINE_SDK_TOKEN it was started with.")
