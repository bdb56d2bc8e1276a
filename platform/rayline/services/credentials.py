"""The SDK token: chosen (RAYLINE_SDK_TOKEN) or generated once, kept in a 0600 file for the
user, and stored in SQL only as a hash."""

from __future__ import annotations

import os
from pathlib import Path

from rayline.config import Settings
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


def ensure_sdk_token(settings: Settings, db: Database) -> str:
    """The token this start-up uses: RAYLINE_SDK_TOKEN, else the one in the token file, else a
    new one written there. Its hash replaces the stored one."""
    if settings.sdk_token is not None:
        token = settings.sdk_token.get_secret_value().strip()
        if len(token) < MIN_CHOSEN_TOKEN_LENGTH:
            raise InvalidInput(f"RAYLINE_SDK_TOKEN must be at least {MIN_CHOSEN_TOKEN_LENGTH} characters long.")
        # The file is where RaylineSdk() looks on this machine: it must not hold an older token.
        _write_private(settings.token_path, token)
    else:
        path = settings.token_path
        token = path.read_text().strip() if path.exists() else ""
        if not token:
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
    """Generate the secret key once ($RAYLINE_HOME/secret-key, mode 0600)."""
    from cryptography.fernet import Fernet

    if not settings.secret_key_path.exists():
        _write_private(settings.secret_key_path, Fernet.generate_key().decode())


def load_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key_path.read_text().strip().encode())
