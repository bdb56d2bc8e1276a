"""Console sessions: signed, expiring cookies, and the CSRF token each one carries.

A session is ``v1.<issued_at>.<nonce>.<signature>``: when it was issued (epoch seconds), a random
nonce, and an HMAC-SHA256 over both with a key of its own. The key is derived from the
platform's secret key and the SDK token's hash, as the access tokens' key is
(``rayline.domain.access_tokens``): a session survives a restart of the control plane, and a new
SDK token (or secret key) ends every session. Nothing is stored server-side but the nonces of
the sessions signed out of before their expiry (``revoke``), kept in memory until then.

The CSRF token is a second HMAC of the nonce (another purpose, the same key): bound to the
session, unknown to another site, checked in constant time on every action.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

VERSION = "v1"
COOKIE_NAME = "rayline_console"
# A clock a little ahead on the machine that issued a session (another control-plane replica).
CLOCK_SKEW_S = 60


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    nonce: str
    issued_at: int
    expires_at: int
    csrf_token: str


class Sessions:
    def __init__(self, secret_key: bytes, sdk_token_hash: str, ttl_s: float) -> None:
        if not secret_key or not sdk_token_hash:
            raise ValueError("Console sessions need the platform's secret key and the SDK token's hash.")
        self._key = hmac.new(
            secret_key, b"rayline console sessions\x00" + sdk_token_hash.encode("ascii"), hashlib.sha256
        ).digest()
        self.ttl_s = int(ttl_s)
        self._revoked: dict[str, int] = {}  # nonce -> its session's expiry
        self._lock = threading.Lock()

    def _mac(self, purpose: bytes, text: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + text.encode("ascii"), hashlib.sha256).digest())

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new session: the cookie's value, and the session it stands for."""
        issued = int(time.time() if now is None else now)
        body = f"{VERSION}.{issued}.{secrets.token_urlsafe(16)}"
        cookie = f"{body}.{self._mac(b'session', body)}"
        session = self.read(cookie, now=issued)
        assert session is not None
        return cookie, session

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None when it is missing, altered, expired or revoked."""
        if not cookie or len(cookie) > 256:
            return None
        version, _, rest = cookie.partition(".")
        issued_text, _, rest = rest.partition(".")
        nonce, _, signature = rest.partition(".")
        if version != VERSION or not issued_text.isdigit() or not nonce or not signature:
            return None
        if not hmac.compare_digest(signature, self._mac(b"session", f"{version}.{issued_text}.{nonce}")):
            return None
        issued, current = int(issued_text), int(time.time() if now is None else now)
        expires = issued + self.ttl_s
        if current >= expires or issued > current + CLOCK_SKEW_S:
            return None
        with self._lock:
            if nonce in self._revoked:
                return None
        return Session(nonce, issued, expires, self._mac(b"csrf", nonce))

    def csrf_matches(self, session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf_token.encode(), (given or "").encode())

    def revoke(self, session: Session) -> None:
        """End a session before its expiry (sign-out): its cookie is refused from now on."""
        now = int(time.time())
        with self._lock:
            self._revoked = {nonce: expiry for nonce, expiry in self._revoked.items() if expiry > now}
            self._revoked[session.nonce] = session.expires_at
