"""``/auth/refresh``: an access token in exchange for the SDK token (craft-ai-sdk's login)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from rayline.api.context import AppContext, get_context
from rayline.domain.tokens import token_matches
from rayline.errors import Unauthorized

router = APIRouter(tags=["auth"])


@router.post("/auth/refresh")
def refresh(body: dict[str, Any] = Body(default_factory=dict), context: AppContext = Depends(get_context)):
    """``{"refresh_token": <sdk token>}`` -> ``{"access_token": <JWT>}``, valid ``RAYLINE_ACCESS_TOKEN_TTL_S``."""
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token_matches(token.strip(), context.sdk_token_hash):
        raise Unauthorized("Invalid refresh_token: send the platform's SDK token ($RAYLINE_HOME/sdk-token).")
    return {"access_token": context.access_tokens.issue()}
