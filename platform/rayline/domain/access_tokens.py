"""Short-lived access tokens: signed JWTs that clients get in exchange for the SDK token.

craft-ai-sdk treats its ``sdk_token`` as a refresh token: it posts it to ``/auth/refresh`` and
sends the returned access token on every call, refreshing it before ``exp``. Our own SDK sends
the SDK token itself; both are accepted. The signing key is derived from the platform's secret
key and from the SDK token's hash, so tokens survive a restart and every control-plane replica
checks them alike, and a new SDK token revokes every access token issued for the previous one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import jwt

from rayline.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "rayline"
SDK_SUBJECT = "sdk"  # the SDK token's holder: every route


class AccessTokens:
    def __init__(self, secret_key: bytes, sdk_token_hash: str, ttl_s: float) -> None:
        # A key of its own, derived: the secret key itself also encrypts stored secrets. The SDK
        # token's hash is part of it, so that access tokens end with the SDK token they came from.
        if not secret_key or not sdk_token_hash:
            raise ValueError("Access tokens need the platform's secret key and the SDK token's hash.")
        self._key = hmac.new(
            secret_key, b"rayline access tokens\x00" + sdk_token_hash.encode("ascii"), hashlib.sha256
        ).digest()
        self.ttl_s = ttl_s

    def issue(self, subject: str = SDK_SUBJECT, expires_at: int | None = None) -> str:
        """An access token for the SDK token's holder, or for an execution's code (``subject``:
        ``rayline.domain.code_credentials.CodeScope.subject``), valid ``ttl_s`` at most and never
        past ``expires_at`` (that of the credential it was exchanged for)."""
        now = int(time.time())
        expires = now + int(self.ttl_s) if expires_at is None else min(now + int(self.ttl_s), expires_at)
        return jwt.encode({"iss": ISSUER, "sub": subject, "iat": now, "exp": expires}, self._key, algorithm=ALGORITHM)

    def read(self, token: str) -> tuple[str, int]:
        """(subject, expiry) of a valid access token; Unauthorized, saying why, otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(
                "The access token has expired; get a new one from POST /api/v1/auth/refresh (clients do it for you)."
            ) from None
        except jwt.InvalidTokenError:
            raise Unauthorized(
                "Invalid access token: it was not issued by this platform (or was altered, or issued for an "
                "SDK token that has since changed); get a new one from POST /api/v1/auth/refresh."
            ) from None
        return str(claims["sub"]), int(claims["exp"])

    def problem(self, token: str) -> str | None:
        """Why ``token`` is not a valid access token, or None when it is."""
        try:
            self.read(token)
        except Unauthorized as refusal:
            return refusal.message
        return None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
