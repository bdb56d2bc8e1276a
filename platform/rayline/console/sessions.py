"""Console sessions: signed, expiring cookies, and the CSRF token each one carries.

A session is ``v1.<issued_at>.<nonce>.<signature>``: when it was issued (epoch seconds), a random
nonce, and an HMAC-SHA256 over both with a key of its own. The key is derived from the
platform's secret key and the SDK token's hash, as the access tokens' key is
(``rayline.domain.access_tokens``): a session survives a restart of the control plane, and a new
SDK token (or secret key) ends every session. A cookie of any other shape (``COOKIE_SHAPE``:
ASCII, those lengths) is no session, before anything else is computed from it.

The only thing stored server-side is the nonce of each session signed out of before its expiry
(``revoke``): in SQL (``SqlRevocations``, table ``console_revoked_sessions``), so that a copied
cookie stays refused after a restart and on every replica, until the session would have
expired (then the row is pruned). Reads go through a cache: a nonce found revoked is remembered
until its expiry, one found valid is asked again after ``RECHECK_S`` (a sign-out on another
replica is seen there within that time; on this one at once).

The CSRF token is a second HMAC of the nonce (another purpose, the same key): bound to the
session, unknown to another site, checked in constant time on every action.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from rayline.store.db import Database
from rayline.store.models import ConsoleRevokedSession

VERSION = "v1"
COOKIE_NAME = "rayline_console"
# A clock a little ahead on the machine that issued a session (another control-plane replica).
CLOCK_SKEW_S = 60
NONCE_BYTES = 16
# The whole cookie (fullmatch): the version, up to 12 digits of epoch seconds, the nonce
# (token_urlsafe(16): 22 characters) and the signature (32 bytes, unpadded base64url: 43).
COOKIE_SHAPE = re.compile(r"v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})", re.ASCII)
# How long a nonce found not revoked is believed without asking SQL again.
RECHECK_S = 2.0
CACHE_ENTRIES = 4096


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    nonce: str
    issued_at: int
    expires_at: int
    csrf_token: str


class Revocations(Protocol):
    """Where the nonces of the sessions signed out of are kept until their expiry."""

    def is_revoked(self, nonce: str, now: int) -> bool: ...

    def revoke(self, nonce: str, expires_at: int, now: int) -> None: ...


class MemoryRevocations:
    """In this process only (a restart forgets them): for tests and tools without a database."""

    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}  # nonce -> its session's expiry
        self._lock = threading.Lock()

    def is_revoked(self, nonce: str, now: int) -> bool:
        with self._lock:
            return self._revoked.get(nonce, 0) > now

    def revoke(self, nonce: str, expires_at: int, now: int) -> None:
        with self._lock:
            self._revoked = {key: expiry for key, expiry in self._revoked.items() if expiry > now}
            self._revoked[nonce] = expires_at


class SqlRevocations:
    """In SQL, read through a cache (see the module's docstring)."""

    def __init__(self, db: Database, recheck_s: float = RECHECK_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._recheck_s = recheck_s
        self._clock = clock
        # nonce -> (revoked until this epoch second, or 0: not revoked), when SQL was asked.
        self._cache: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def is_revoked(self, nonce: str, now: int) -> bool:
        checked = self._clock()
        with self._lock:
            cached = self._cache.get(nonce)
        if cached is not None:
            until, asked_at = cached
            if until > now:
                return True
            if checked - asked_at < self._recheck_s:
                return False
        with self._db.session() as session:
            expires_at = session.scalar(
                select(ConsoleRevokedSession.expires_at).where(ConsoleRevokedSession.nonce == nonce)
            )
        until = expires_at if expires_at is not None and expires_at > now else 0
        self._remember(nonce, until, checked, now)
        return until > 0

    def revoke(self, nonce: str, expires_at: int, now: int) -> None:
        try:
            with self._db.session() as session:
                session.execute(delete(ConsoleRevokedSession).where(ConsoleRevokedSession.expires_at <= now))
                if session.get(ConsoleRevokedSession, nonce) is None:
                    session.add(ConsoleRevokedSession(nonce=nonce, expires_at=expires_at))
        except IntegrityError:  # signed out at the same moment elsewhere (the same cookie): revoked
            pass
        self._remember(nonce, expires_at, self._clock(), now)

    def _remember(self, nonce: str, until: int, asked_at: float, now: int) -> None:
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                fresh = self._clock() - self._recheck_s
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now or v[1] >= fresh}
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
            self._cache[nonce] = (until, asked_at)


class Sessions:
    def __init__(
        self, secret_key: bytes, sdk_token_hash: str, ttl_s: float, revocations: Revocations | None = None
    ) -> None:
        if not secret_key or not sdk_token_hash:
            raise ValueError("Console sessions need the platform's secret key and the SDK token's hash.")
        self._key = hmac.new(
            secret_key, b"rayline console sessions\x00" + sdk_token_hash.encode("ascii"), hashlib.sha256
        ).digest()
        self.ttl_s = int(ttl_s)
        self._revocations: Revocations = revocations if revocations is not None else MemoryRevocations()

    def _mac(self, purpose: bytes, text: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + text.encode("ascii"), hashlib.sha256).digest())

    def _session(self, issued: int, nonce: str) -> Session:
        return Session(nonce, issued, issued + self.ttl_s, self._mac(b"csrf", nonce))

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new session: the cookie's value, and the session it stands for."""
        issued = int(time.time() if now is None else now)
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        body = f"{VERSION}.{issued}.{nonce}"
        return f"{body}.{self._mac(b'session', body)}", self._session(issued, nonce)

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None when it is missing, malformed, altered, expired
        or revoked. Never raises on what a client sent."""
        shape = COOKIE_SHAPE.fullmatch(cookie) if cookie else None
        if shape is None:
            return None
        issued_text, nonce, signature = shape.groups()
        if not hmac.compare_digest(signature, self._mac(b"session", f"{VERSION}.{issued_text}.{nonce}")):
            return None
        issued, current = int(issued_text), int(time.time() if now is None else now)
        if current >= issued + self.ttl_s or issued > current + CLOCK_SKEW_S:
            return None
        if self._revocations.is_revoked(nonce, current):
            return None
        return self._session(issued, nonce)

    def csrf_matches(self, session: Session, given: str | None) -> bool:
        given_bytes = (given or "").encode("utf-8", "replace")
        return bool(given) and hmac.compare_digest(session.csrf_token.encode("ascii"), given_bytes)

    def revoke(self, session: Session) -> None:
        """End a session before its expiry (sign-out): its cookie is refused from now on."""
        self._revocations.revoke(session.nonce, session.expires_at, int(time.time()))
