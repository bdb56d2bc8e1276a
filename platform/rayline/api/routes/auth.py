"""``/auth/refresh``: an access token in exchange for the SDK token (craft-ai-sdk's login)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.schemas import AccessTokenPublic, RefreshRequest
from rayline.domain.code_credentials import is_code_credential
from rayline.domain.tokens import token_matches
from rayline.errors import Unauthorized

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/refresh",
    response_model=AccessTokenPublic,
    responses=error_responses(400, 401, 413, 415, s401="Not the platform's SDK token."),
)
def refresh(body: RefreshRequest = Body(default_factory=RefreshRequest), context: AppContext = Depends(get_context)):
    """``{"refresh_token": <sdk token>}`` -> ``{"access_token": <JWT>}``, valid ``RAYLINE_ACCESS_TOKEN_TTL_S``
    (an execution's credential, as its code's craft-ai-sdk sends it, gets one of the same scope)."""
    token = body.refresh_token.strip() if isinstance(body.refresh_token, str) else None
    if token is not None and token_matches(token, context.sdk_token_hash):
        return AccessTokenPublic(access_token=context.access_tokens.issue())
    if token is not None and is_code_credential(token):
        # Inside an execution, craft-ai-sdk's "SDK token" is the execution's credential: its
        # access tokens keep that scope, and its expiry.
        scope = context.code_access.scope_of(token)
        context.code_access.check_alive(scope)
        return AccessTokenPublic(access_token=context.access_tokens.issue(scope.subject, scope.expires_at))
    raise Unauthorized("Invalid refresh_token: send the platform's SDK token ($RAYLINE_HOME/sdk-token).")
