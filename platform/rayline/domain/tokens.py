"""Secrets: generated with ``secrets``, stored only as hashes, compared in constant time.

Tokens are 256-bit random strings (or long user-chosen ones), so a plain SHA-256 is enough: there
is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MIN_CHOSEN_TOKEN_LENGTH = 16


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(candidate: str | None, stored_hash: str | None) -> bool:
    if not candidate or not stored_hash:
        return False
    return hmac.compare_digest(hash_token(candidate), stored_hash)


# What a call to an endpoint without its token is told: the same wherever it went (a warm pod,
# the API, a path where no deployment is).
ENDPOINT_TOKEN_REFUSED = (
    "Missing or invalid endpoint token: send 'Authorization: EndpointToken <token>' "
    "(get_deployment shows the deployment's endpoint_token)."
)


def bearer_of(authorization: str | None, scheme: str) -> str | None:
    """The token an ``Authorization`` header carries in ``scheme`` ("Bearer", "EndpointToken"),
    or None. The scheme is case-insensitive (RFC 9110), the token stripped of spaces around it."""
    given_scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if token and given_scheme.lower() == scheme.lower() else None
