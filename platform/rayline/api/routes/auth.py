"""``/auth/refresh``: an access token in exchange for the SDK token (craft-ai-sdk's login)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.schemas import AccessTokenPublic, RefreshRequest
from rayline.domain.tokens import token_matches
from rayline.errors import Unauthorized

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/refresh",
    response_model=AccessTokenPublic,
    responses=error_responses(400, 401, 413, 415, s401="Not the platform's SDK token."),
)
def refresh(body: RefreshRequest = Body(default_factory=RefreshRequest), context: AppContext = Depends(get_context)):
    """``{"refresh_token": <sdk token>}`` -> ``{"access_token": <JWT>}``, valid ``RAYLINE_ACCESS_TOKEN_TTL_S``."""
    token = body.refresh_token
    if not isinstance(token, str) or not token_matches(token.strip(), context.sdk_token_hash):
        raise Unauthorized("Invalid refresh_token: send the platform's SDK token ($RAYLINE_HOME/sdk-token).")
    return AccessTokenPublic(access_token=context.access_tokens.issue())
