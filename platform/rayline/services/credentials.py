"""The SDK token: chosen (RAYLINE_SDK_TOKEN) or generated once, kept in a 0600 file for the
user, and stored in SQL only as a hash."""

from __future__ import annotations

import os
from pathlib import Path

from rayline.config import Settings
from rayline.domain.access_tokens import looks_like_jwt
from rayline.domain.tokens import MIN_CHOSEN_TOKEN_LENGTH, generate_token, hash_token
from rayline.errors import InvalidInput, PlatformFailure
from rayline.store.db import Database
from rayline.store.models import Credential, utcnow

SDK_CREDENTIAL = "sdk"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)


def check_sdk_token(token: str, where: str, fix: str) -> str:
    """Refuse an SDK token that is too short, or that the API would take for an access token (a
    JWT: exactly two dots); the message says where it came from and what to do, never the token."""
    if len(token) < MIN_CHOSEN_TOKEN_LENGTH:
        raise InvalidInput(
            f"{where} is {len(token)} characters long; an SDK token must be at least {MIN_CHOSEN_TOKEN_LENGTH}. {fix}"
        )
    if looks_like_jwt(token):
        raise InvalidInput(
            f"{where} must not look like a JWT: no two dots (a token with exactly two dots is read "
            f"as an access token, never compared with the SDK token). {fix}"
        )
    return token


def ensure_sdk_token(settings: Settings, db: Database) -> str:
    """The token this start-up uses: RAYLINE_SDK_TOKEN, else the one in the token file, else a
    new one written there. Its hash replaces the stored one."""
    if settings.sdk_token is not None:
        token = check_sdk_token(
            settings.sdk_token.get_secret_value().strip(),
            "RAYLINE_SDK_TOKEN",
            f"Set RAYLINE_SDK_TOKEN to {MIN_CHOSEN_TOKEN_LENGTH}+ characters without two dots "
            "(e.g. `openssl rand -hex 32`), or unset it to use a generated one.",
        )
        # The file is where RaylineSdk() looks on this machine: it must not hold an older token.
        _write_private(settings.token_path, token)
    else:
        path = settings.token_path
        token = path.read_text().strip() if path.exists() else ""
        if token:
            check_sdk_token(
                token,
                f"The SDK token in {path}",
                f"Delete {path} to get a new one generated at the next start, or set RAYLINE_SDK_TOKEN "
                f"to {MIN_CHOSEN_TOKEN_LENGTH}+ characters.",
            )
        else:
            token = generate_token()
            _write_private(path, token)
    with db.session() as session:
        row = session.get(Credential, SDK_CREDENTIAL)
        if row is None:
            session.add(Credential(name=SDK_CREDENTIAL, token_hash=hash_token(token)))
        else:
            row.token_hash, row.updated_at = hash_token(token), utcnow()
    return token


def load_sdk_token_hash(db: Database) -> str:
    with db.session() as session:
        row = session.get(Credential, SDK_CREDENTIAL)
    if row is None:
        raise PlatformFailure("No SDK token is set up; start the platform with `rayline up`.")
    return row.token_hash


class SecretBox:
    """Symmetric encryption with the platform's secret key, for secrets that must be shown again
    (endpoint tokens in get_deployment); comparisons still use hashes."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()


def ensure_secret_key(settings: Settings) -> None:
    """Generate the secret key once ($RAYLINE_HOME/secret-key, mode 0600); refuse one that is
    there but is not a key."""
    from cryptography.fernet import Fernet

    path = settings.secret_key_path
    if not path.exists():
        _write_private(path, Fernet.generate_key().decode())
        return
    try:
        Fernet(path.read_text().strip().encode())
    except (ValueError, TypeError, UnicodeError):
        raise PlatformFailure(
            f"{path} is not a valid secret key (a Fernet key: 44 URL-safe base64 characters). "
            "Restore it from where it came from: the stored endpoint tokens and environment "
            "variable values can only be read with it (deleting it makes a new key, and loses "
            "them)."
        ) from None


def load_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key_path.read_text().strip().encode())
