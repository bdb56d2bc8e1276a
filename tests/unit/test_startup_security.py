"""What `rayline up` checks before Ray starts, on a real RAYLINE_HOME (tmp_path) with real files and
Settings: the SDK token wherever it comes from, the permissions of the home and of its secrets and
database, and access tokens that end with the SDK token they were issued for. No Ray."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import stat

import pytest

from rayline import cli
from rayline.config import Settings
from rayline.domain.access_tokens import AccessTokens
from rayline.errors import InvalidInput, PlatformFailure
from rayline.services import home as home_module
from rayline.services.credentials import ensure_sdk_token, ensure_secret_key, load_sdk_token_hash
from rayline.services.home import secure_home
from rayline.store import migrate
from rayline.store.db import Database


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "rayline-home"
    monkeypatch.setenv("RAYLINE_HOME", str(path))
    for name in (
        "RAYLINE_SDK_TOKEN",
        "RAYLINE_DATABASE_URL",
        "RAYLINE_PACKAGE_URL_BASE",
        "RAYLINE_PACKAGE_TOKEN",
        "RAYLINE_ACCESS_TOKEN_TTL_S",
    ):
        monkeypatch.delenv(name, raising=False)
    previous = os.umask(0o022)  # the usual one: files 0644, directories 0755
    yield path
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url)
    migrate.upgrade(db)
    return db


def up(monkeypatch, capsys) -> tuple[int, str]:
    """`rayline up` itself, with Ray replaced by a failure: a start-up check must refuse first."""
    from rayline.runtime import cluster

    def no_ray(*_, **__):
        raise AssertionError("rayline up went on to start Ray")

    monkeypatch.setattr(cluster, "start", no_ray)
    monkeypatch.setattr(cluster, "stop", lambda: None)
    environment = dict(os.environ)  # `rayline up` takes the RAYLINE_* variables out of its environment
    try:
        code = cli.main(["up"])
    finally:
        os.environ.clear()
        os.environ.update(environment)
    return code, capsys.readouterr().err


# The SDK token, wherever it comes from.


def test_a_short_token_in_the_token_file_is_refused_and_the_message_says_what_to_do(home, monkeypatch, capsys):
    home.mkdir(mode=0o700)
    (home / "sdk-token").write_text("abc\n")
    settings = Settings()
    with pytest.raises(InvalidInput) as info:
        ensure_sdk_token(settings, database(settings))
    message = info.value.message
    assert "3 characters" in message and "at least 16" in message
    assert f"Delete {home / 'sdk-token'}" in message and "RAYLINE_SDK_TOKEN" in message
    assert "abc" not in message.replace(str(home), "")

    code, err = up(monkeypatch, capsys)  # the same through `rayline up`: refused before Ray, without a traceback
    assert code == 2 and "rayline up: The SDK token in" in err and "Traceback" not in err
    assert (home / "sdk-token").read_text() == "abc\n"  # left for the user to delete


@pytest.mark.parametrize("token", ["short", "aaaa.bbbbbbbb.cccc"])
def test_a_chosen_token_too_short_or_looking_like_a_jwt_is_refused(home, monkeypatch, capsys, token):
    monkeypatch.setenv("RAYLINE_SDK_TOKEN", token)
    settings = Settings()
    with pytest.raises(InvalidInput) as info:
        ensure_sdk_token(settings, database(settings))
    message = info.value.message
    assert message.startswith("RAYLINE_SDK_TOKEN") and token not in message
    assert ("at least 16" in message) if len(token) < 16 else ("must not look like a JWT: no two dots" in message)
    code, err = up(monkeypatch, capsys)
    assert code == 2 and "RAYLINE_SDK_TOKEN" in err and token not in err


def test_a_token_file_looking_like_a_jwt_is_refused(home):
    home.mkdir(mode=0o700)
    (home / "sdk-token").write_text("header-part.payload-part.signature\n")
    settings = Settings()
    with pytest.raises(InvalidInput, match="must not look like a JWT: no two dots"):
        ensure_sdk_token(settings, database(settings))


def test_good_tokens_are_taken(home, monkeypatch):
    settings = Settings()
    secure_home(settings)
    db = database(settings)
    generated = ensure_sdk_token(settings, db)
    assert len(generated) >= 40 and mode(home / "sdk-token") == 0o600
    assert ensure_sdk_token(settings, db) == generated  # the file's, kept
    monkeypatch.setenv("RAYLINE_SDK_TOKEN", "a.chosen.token.with.dots-but-not-two")
    assert ensure_sdk_token(Settings(), db) == "a.chosen.token.with.dots-but-not-two"
    assert (home / "sdk-token").read_text().strip() == "a.chosen.token.with.dots-but-not-two"


def test_a_secret_key_that_is_not_a_key_is_refused(home):
    home.mkdir(mode=0o700)
    (home / "secret-key").write_text("CHANGE-ME\n")
    with pytest.raises(PlatformFailure, match="not a valid secret key"):
        ensure_secret_key(Settings())


# Permissions.


def test_wide_secrets_database_and_home_are_narrowed_with_a_line_each(home, caplog):
    home.mkdir()
    os.chmod(home, 0o755)
    files = {
        "secret-key": 0o644,
        "sdk-token": 0o640,
        "platform-secrets.json": 0o644,
        "rayline.db": 0o644,
        "rayline.db-wal": 0o666,
        "rayline.db-shm": 0o604,
    }
    for name, wide in files.items():
        (home / name).write_text("x")
        os.chmod(home / name, wide)
    (home / "unrelated.txt").write_text("x")
    os.chmod(home / "unrelated.txt", 0o644)
    with caplog.at_level(logging.WARNING, logger="rayline.startup"):
        lines = secure_home(Settings())
    assert mode(home) == 0o700
    assert {name: mode(home / name) for name in files} == dict.fromkeys(files, 0o600)
    assert mode(home / "unrelated.txt") == 0o644  # inside a 0700 home: not ours to change
    assert len(lines) == 1 + len(files)
    assert [r.getMessage() for r in caplog.records if r.name == "rayline.startup"] == lines
    assert any("RAYLINE_HOME" in line and "0755" in line and "0700" in line for line in lines)
    assert any("secret-key" in line and "0644" in line and "0600" in line for line in lines)

    caplog.clear()
    assert secure_home(Settings()) == [] and not [
        r for r in caplog.records if r.name == "rayline.startup"
    ]  # nothing to say the second time


def test_narrower_modes_are_left_alone(home):
    home.mkdir()
    os.chmod(home, 0o500)
    try:
        assert secure_home(Settings()) == []
        assert mode(home) == 0o500
    finally:
        os.chmod(home, 0o700)


def test_a_new_home_and_database_are_private_from_the_start(home):
    settings = Settings()
    assert secure_home(settings) == []  # nothing was wider: created private
    assert mode(home) == 0o700 and mode(home / "rayline.db") == 0o600
    db = database(settings)  # SQLite takes the empty file as a new database; its WAL files get its mode
    ensure_sdk_token(settings, db)
    ensure_secret_key(settings)
    assert load_sdk_token_hash(db)
    for name in ("rayline.db", "rayline.db-wal", "rayline.db-shm", "sdk-token", "secret-key"):
        if (home / name).exists():
            assert mode(home / name) == 0o600, name
    assert (home / "rayline.db-wal").exists()
    db.dispose()


def test_a_sqlite_database_named_by_url_is_narrowed_too(home, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_text("")
    os.chmod(elsewhere, 0o664)
    monkeypatch.setenv("RAYLINE_DATABASE_URL", f"sqlite:///{elsewhere}")
    secure_home(Settings())
    assert mode(elsewhere) == 0o600 and not (home / "rayline.db").exists()
    monkeypatch.setenv("RAYLINE_DATABASE_URL", "postgresql+psycopg://user:password@localhost:5432/rayline")
    settings = Settings()
    assert home_module.private_files(settings) == [
        settings.secret_key_path,
        settings.token_path,
        settings.platform_secrets_path,
    ]


def test_what_cannot_be_narrowed_refuses_the_start_up(home, monkeypatch, capsys):
    home.mkdir(mode=0o700)
    (home / "secret-key").write_text("x")
    os.chmod(home / "secret-key", 0o644)

    def not_the_owner(path, mode):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr(home_module.os, "chmod", not_the_owner)
    with pytest.raises(PlatformFailure) as info:
        secure_home(Settings())
    message = info.value.message
    assert message.startswith("Refusing to start") and "0644" in message
    assert f"chmod 600 {home / 'secret-key'}" in message and "owned by uid" in message

    code, err = up(monkeypatch, capsys)
    assert code == 2 and "rayline up: Refusing to start" in err


def test_a_read_only_mount_keeps_its_mode_with_a_warning(home, monkeypatch, caplog):
    # As on Kubernetes: the secret key mounted read-only from a Secret (0440, group fsGroup).
    home.mkdir(mode=0o700)
    (home / "secret-key").write_text("x")
    os.chmod(home / "secret-key", 0o440)

    def read_only(path, mode):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(home_module.os, "chmod", read_only)
    with caplog.at_level(logging.WARNING, logger="rayline.startup"):
        lines = secure_home(Settings())
    assert len(lines) == 1 and "secret-key" in lines[0] and "a mount" in lines[0] and "keeping them" in lines[0]


def test_rayline_up_secures_the_home_before_anything_else(home, monkeypatch, caplog):
    home.mkdir()
    os.chmod(home, 0o777)
    (home / "sdk-token").write_text("a-token-long-enough-for-the-platform\n")
    os.chmod(home / "sdk-token", 0o644)
    with caplog.at_level(logging.WARNING, logger="rayline.startup"):
        cli._prepare(Settings(), argparse.Namespace(ray_address=None))
    assert mode(home) == 0o700
    assert {name: mode(home / name) for name in ("sdk-token", "secret-key", "rayline.db")} == dict.fromkeys(
        ("sdk-token", "secret-key", "rayline.db"), 0o600
    )
    assert len([r for r in caplog.records if r.name == "rayline.startup"]) == 2


# Access tokens end with the SDK token they were issued for.


def test_an_access_token_issued_under_token_a_is_refused_once_the_sdk_token_is_b(home, monkeypatch):
    from rayline.domain.access_tokens import looks_like_jwt
    from rayline.domain.tokens import token_matches

    def control_plane(settings):
        """What serve_apps/control_plane.py builds from what `rayline up` prepared."""
        db = Database(settings.resolved_database_url)
        sdk_token_hash = load_sdk_token_hash(db)
        db.dispose()
        return sdk_token_hash, AccessTokens(
            settings.secret_key_path.read_bytes().strip(), sdk_token_hash, settings.access_token_ttl_s
        )

    def problem(platform, token):  # as the API's SDK token check (rayline.api.auth) decides
        sdk_token_hash, access_tokens = platform
        if looks_like_jwt(token):
            return access_tokens.problem(token)
        return None if token_matches(token, sdk_token_hash) else "Invalid SDK token."

    monkeypatch.setenv("RAYLINE_SDK_TOKEN", "the-first-sdk-token-a")
    cli._prepare(Settings(), argparse.Namespace(ray_address=None))
    under_a = control_plane(Settings())
    issued = under_a[1].issue()
    assert problem(under_a, issued) is None and problem(under_a, "the-first-sdk-token-a") is None
    assert problem(control_plane(Settings()), issued) is None  # a restart with the same token keeps it

    monkeypatch.setenv("RAYLINE_SDK_TOKEN", "the-second-sdk-token-b")
    key = (home / "secret-key").read_bytes()
    cli._prepare(Settings(), argparse.Namespace(ray_address=None))
    assert (home / "secret-key").read_bytes() == key  # the same secret key: only the SDK token changed
    under_b = control_plane(Settings())
    assert "not issued by this platform" in problem(under_b, issued)
    assert problem(under_b, "the-first-sdk-token-a") == "Invalid SDK token."
    assert problem(under_b, under_b[1].issue()) is None
