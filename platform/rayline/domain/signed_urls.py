"""Signed, expiring grants for one data store object, carried in a URL (the folder backend's
answer to S3's presigned URLs): whoever holds the URL may do that one thing to that one object
until it expires, without the SDK token. HS256 JWTs under a key of their own, derived from the
platform's secret key, so every control-plane replica checks them alike and a restart keeps
them valid."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt

from rayline.errors import Forbidden

_ALGORITHM = "HS256"
_AUDIENCE = "rayline-data-store"


class UrlSigner:
    def __init__(self, secret_key: bytes) -> None:
        self._key = hmac.new(secret_key, b"rayline data store urls\x00", hashlib.sha256).digest()

    def sign(self, operation: str, path: str, ttl_s: float, **claims: Any) -> str:
        now = int(time.time())
        payload = {"aud": _AUDIENCE, "op": operation, "path": path, "iat": now, "exp": now + int(ttl_s), **claims}
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM)

    def check(self, signature: str, operation: str) -> dict[str, Any]:
        """The grant's claims, or Forbidden saying why the URL cannot be used."""
        try:
            claims = jwt.decode(
                signature,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["exp", "op", "path"]},
            )
        except jwt.ExpiredSignatureError:
            raise Forbidden("This signed URL has expired; ask the platform for a new one.") from None
        except jwt.InvalidTokenError:
            raise Forbidden(
                "This signed URL is not valid (altered, or not issued by this platform); ask the platform "
                "for a new one."
            ) from None
        if claims.get("op") != operation:
            raise Forbidden(f"This signed URL does not allow this request (it is for {claims.get('op')!r}).")
        return claims
