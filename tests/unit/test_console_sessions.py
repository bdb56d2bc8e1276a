"""The console's sessions and its redirect rule, without a platform (rayline.console.sessions,
rayline.console.guard.local_path), and its cookie over https (the fakes' control plane,
tests/fakes.py: the same routes, no Ray)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rayline.console.guard import local_path
from rayline.console.sessions import COOKIE_NAME, Sessions
from rayline.domain.tokens import hash_token
from tests.fakes import platform_factory

KEY, TOKEN_HASH = b"k" * 32, hash_token("an-sdk-token-of-some-length")


def test_a_session_is_read_back_until_it_expires():
    sessions = Sessions(KEY, TOKEN_HASH, ttl_s=60)
    cookie, issued = sessions.issue(now=1_000_000)
    assert sessions.read(cookie, now=1_000_059) == issued
    assert sessions.read(cookie, now=1_000_060) is None  # expired
    assert sessions.read(cookie, now=1_000_000 - 3600) is None  # issued in the future


def test_an_altered_or_foreign_session_is_refused():
    sessions = Sessions(KEY, TOKEN_HASH, ttl_s=60)
    cookie, _ = sessions.issue()
    version, issued, nonce, signature = cookie.split(".")
    for altered in (
        f"{version}.{int(issued) + 3600}.{nonce}.{signature}",  # a later date, to live longer
        f"{version}.{issued}.{nonce}x.{signature}",
        f"{version}.{issued}.{nonce}.{signature[:-1]}",
        "",
        "v1...",
        cookie + "." * 300,
    ):
        assert sessions.read(altered) is None, altered
    # A new SDK token (or secret key) ends every session: the key is derived from both.
    assert Sessions(KEY, hash_token("another-sdk-token-xyz"), 60).read(cookie) is None
    assert Sessions(b"j" * 32, TOKEN_HASH, 60).read(cookie) is None


def test_the_csrf_token_is_bound_to_its_session_and_signing_out_revokes_it():
    sessions = Sessions(KEY, TOKEN_HASH, ttl_s=60)
    first_cookie, first = sessions.issue()
    _, second = sessions.issue()
    assert first.csrf_token != second.csrf_token
    assert sessions.csrf_matches(first, first.csrf_token)
    assert not sessions.csrf_matches(first, second.csrf_token) and not sessions.csrf_matches(first, "")
    sessions.revoke(first)
    assert sessions.read(first_cookie) is None


@pytest.mark.parametrize(
    "asked, followed",
    [
        ("/deployments/d?done=x", "/deployments/d?done=x"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("deployments/d", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("/login?next=//evil.example", "/"),
    ],
)
def test_only_a_local_path_is_followed_after_sign_in(asked, followed):
    assert local_path(asked) == followed


@pytest.fixture
def make_platform(tmp_path, monkeypatch):
    yield from platform_factory(tmp_path, monkeypatch)


def test_the_cookie_is_secure_over_https_and_the_origin_must_match(make_platform):
    platform = make_platform()
    browser = TestClient(platform.client.app, base_url="https://console.test")
    signed_in = browser.post(
        "/login", data={"token": platform.token}, headers={"Origin": "https://console.test"}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    assert "secure" in {flag.strip().lower() for flag in signed_in.headers["set-cookie"].split(";")}
    refused = browser.post("/login", data={"token": platform.token}, headers={"Origin": "https://console.test.evil"})
    assert refused.status_code == 403 and COOKIE_NAME not in refused.headers.get("set-cookie", "")
