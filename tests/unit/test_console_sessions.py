"""The console's sessions and its redirect rule, without a platform (rayline.console.sessions,
rayline.console.guard.local_path), and its cookie over https (the fakes' control plane,
tests/fakes.py: the same routes, no Ray)."""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from rayline.console.guard import local_path
from rayline.console.sessions import COOKIE_NAME, Sessions
from rayline.domain.tokens import hash_token
from tests.fakes import platform_factory

KEY, TOKEN_HASH = b"k" * 32, hash_token("an-sdk-token-of-some-length")
SERIAL = itertools.count()


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


# --- signed-out sessions, in SQL ------------------------------------------------------------------


@pytest.fixture
def database(tmp_path):
    from rayline.store import migrate
    from rayline.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'console.db'}")
    migrate.upgrade(db)
    yield db
    db.dispose()


def test_a_signed_out_session_stays_refused_after_a_restart_and_on_another_replica(database):
    from sqlalchemy import func, select

    from rayline.console.sessions import SqlRevocations
    from rayline.store.models import ConsoleRevokedSession

    clock = [0.0]
    first = Sessions(KEY, TOKEN_HASH, 600, SqlRevocations(database, clock=lambda: clock[0]))
    replica = Sessions(KEY, TOKEN_HASH, 600, SqlRevocations(database, clock=lambda: clock[0]))
    cookie, session = first.issue()
    assert replica.read(cookie) == session  # read once: believed for RECHECK_S
    first.revoke(session)
    assert first.read(cookie) is None  # here at once
    assert replica.read(cookie) == session  # the other replica's cache, for a moment
    clock[0] += 2.5
    assert replica.read(cookie) is None  # then SQL says so
    restarted = Sessions(KEY, TOKEN_HASH, 600, SqlRevocations(database))  # a new process: no cache
    assert restarted.read(cookie) is None
    # Rows are pruned once their sessions would have expired anyway.
    old_cookie, old = first.issue(now=time.time() - 599)
    first.revoke(old)
    with database.session() as db_session:
        db_session.add(ConsoleRevokedSession(nonce="x" * 22, expires_at=int(time.time()) - 1))
    first.revoke(first.issue()[1])
    with database.session() as db_session:
        nonces = set(db_session.scalars(select(ConsoleRevokedSession.nonce)))
        assert session.nonce in nonces and "x" * 22 not in nonces
        assert db_session.scalar(select(func.count()).select_from(ConsoleRevokedSession)) == 3


@pytest.mark.parametrize(
    "cookie",
    [
        "v1.²³.abc.def",
        "v1.١٢٣.abc.def",  # Arabic-Indic digits: isdigit() passes them, int() too
        "v1.1000.ééééééééééééééééééééééé.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "v1.1000.nonce.sig\u00e9",
        "v2.1000.aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "v1.1000.aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
        "v1." + "9" * 40 + ".aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ],
)
def test_a_malformed_or_non_ascii_cookie_is_no_session_and_never_raises(cookie):
    assert Sessions(KEY, TOKEN_HASH, ttl_s=60).read(cookie) is None


# --- the console over the fakes' control plane ----------------------------------------------------


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """One fake platform for the console's tests: pipeline ``p`` (a file input), an elastic and a
    low-latency endpoint deployment, and a signed-in browser (``console.browser``)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        factory = platform_factory(tmp_path_factory.mktemp("console"), monkeypatch)
        make = next(factory)
        platform = make(functions={"handler": lambda x=0, f=None: {"y": 1}})
        declared = platform.create_pipeline(
            "p",
            {"main.py": "def handler(x=0, f=None):\n    return {'y': 1}\n"},
            inputs=[{"name": "x", "data_type": "number"}, {"name": "f", "data_type": "file", "is_required": False}],
            outputs=[{"name": "y", "data_type": "number"}],
        )
        assert declared.status_code == 201, declared.text
        for name, mode in (("p-elastic", "elastic"), ("p-warm", "low_latency")):
            made = platform.client.post("/api/v1/endpoints", json={"pipeline_name": "p", "name": name, "mode": mode})
            assert made.status_code == 201, made.text
        platform.browser = signed_in_browser(platform)  # type: ignore[attr-defined]
        yield platform
        with pytest.raises(StopIteration):
            next(factory)


def signed_in_browser(platform, base_url: str = "http://testserver") -> TestClient:
    browser = TestClient(platform.client.app, base_url=base_url, follow_redirects=False)
    assert browser.post("/login", data={"token": platform.token}).status_code == 303
    return browser


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def add_executions(platform, count: int, status_of=lambda n: "Succeeded", **fields) -> list[str]:
    """``count`` executions of pipeline p written straight to SQL (oldest first), ids returned."""
    from sqlalchemy import insert

    from rayline.store.models import Execution, utcnow

    began, prefix = utcnow() - timedelta(hours=1), f"bulk{next(SERIAL)}"
    rows = [
        {
            "execution_id": f"{prefix}-{n}",
            "pipeline_name": "p",
            "status": status_of(n),
            "inputs": [],
            "outputs": [],
            "created_at": began + timedelta(seconds=n),
            "start_date": began + timedelta(seconds=n),
            "end_date": began + timedelta(seconds=n, milliseconds=5),
            **fields,
        }
        for n in range(count)
    ]
    with platform.context.db.session() as session:
        session.execute(insert(Execution), rows)
    return [row["execution_id"] for row in rows]


def assert_console_page(answer, status: int) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert '<a class="brand" href="/">Rayline</a>' in answer.text


def test_pages_and_the_endpoint_token_are_never_cached(console):
    browser = console.browser
    page = browser.get("/deployments/p-elastic")
    for path in ("/", "/deployments/p-elastic", "/pipelines/p", "/login"):
        assert browser.get(path).headers["cache-control"] == "no-store", path
    revealed = browser.post(
        "/deployments/p-elastic/endpoint-token",
        headers={"X-CSRF-Token": csrf_of(page.text), "Accept": "application/json"},
    )
    assert revealed.status_code == 200 and revealed.json()["endpoint_token"]
    assert revealed.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "cookie",
    [b"v1.\xc2\xb2.x.y", "v1.1000.é.s".encode(), b"\xff\xfe", b"v1.1.aaaaaaaaaaaaaaaaaaaaaa.bbb"],
)
def test_a_malformed_cookie_gets_the_sign_in_page_not_an_error(console, cookie):
    client = TestClient(console.client.app, follow_redirects=False)
    header = {"Cookie": b"rayline_console=" + cookie}
    assert client.get("/", headers=header).headers["location"] == "/login"
    assert_console_page(client.get("/login", headers=header), 200)
    assert_console_page(client.get("/no/such/page", headers=header), 404)


@pytest.mark.parametrize("number", ["²", "١", "-1", "0", "1.5", "abc", "9" * 7, "9" * 40, "999999"])
def test_a_bad_or_huge_page_number_gives_a_page(console, number):
    answer = console.browser.get("/pipelines/p", params={"page": number})
    assert_console_page(answer, 200)


def test_the_pipeline_page_pages_filters_and_clamps(console):
    ids = add_executions(console, 60, status_of=lambda n: "Failed" if n == 7 else "Succeeded")
    browser = console.browser
    first = browser.get("/pipelines/p").text
    assert ids[-1] in first and ids[0] not in first  # newest first, 50 a page
    assert 'rel="next" href="?page=2"' in first
    counted = re.search(r"Page 1 of (\d+)", first)
    assert counted
    pages = int(counted.group(1))
    last = browser.get("/pipelines/p", params={"page": pages}).text
    assert ids[0] in last and f"Page {pages} of {pages}" in last
    assert browser.get("/pipelines/p", params={"page": "999999"}).text == last  # clamped to the last
    failed = browser.get("/pipelines/p", params={"status": "Failed"}).text
    assert ids[7] in failed and ids[8] not in failed
    assert "status-failed" in failed


def test_a_file_input_is_downloaded_from_its_link(console):
    from rayline.store.models import ExecutionFile

    (execution_id,) = add_executions(
        console,
        1,
        inputs=[
            {"pipeline_input_name": "f", "data_type": "file", "value": {"filename": "notes é.txt", "size": 5}},
        ],
    )
    with console.context.db.session() as session:
        session.add(
            ExecutionFile(execution_id=execution_id, direction="input", name="f", filename="notes é.txt", data=b"hello")
        )
    page = console.browser.get(f"/executions/{execution_id}").text
    link = re.search(r'<a href="([^"]+)" download>notes é.txt</a>', page)
    assert link, page
    answer = console.browser.get(link.group(1).replace("&amp;", "&"))
    assert answer.status_code == 200 and answer.content == b"hello"
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert console.browser.get(f"/executions/{execution_id}/files/input/nope").status_code == 404


def test_enable_disable_reload_and_pod_settings_act_on_the_deployment(console):
    browser = console.browser
    token = csrf_of(browser.get("/deployments/p-warm").text)
    sdk = console.client

    def act(action: str, **form) -> None:
        answer = browser.post(f"/deployments/p-warm/{action}", data={"csrf_token": token, **form})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith("/deployments/p-warm?done=")

    deploys = len(console.serve.deploys)
    act("reload")
    assert len(console.serve.deploys) == deploys + 1  # new pods, the same settings
    act("pods", min_pods="1", max_pods="3", scale_down_after_s="30", standby_after_s="")
    settings = sdk.get("/api/v1/deployments/p-warm").json()
    assert (settings["min_pods"], settings["max_pods"], settings["scale_down_after_s"]) == (1, 3, 30)
    act("disable")
    assert sdk.get("/api/v1/deployments/p-warm").json()["is_enabled"] is False
    assert "Enable" in browser.get("/deployments/p-warm").text
    act("enable")
    assert sdk.get("/api/v1/deployments/p-warm").json()["is_enabled"] is True
    refused = browser.post("/deployments/p-warm/pods", data={"csrf_token": token, "max_pods": "many"})
    assert_console_page(refused, 400)
    assert "max_pods must be a number" in refused.text


def test_sign_out_needs_the_csrf_token_and_the_console_s_origin(console):
    browser = signed_in_browser(console)
    token = csrf_of(browser.get("/").text)
    for form, headers in (
        ({}, {}),
        ({"csrf_token": "x" + token[1:]}, {}),
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {"Origin": "https://testserver"}),  # another scheme
        ({"csrf_token": token}, {"Origin": "http://testserver:8080"}),  # another port
    ):
        refused = browser.post("/logout", data=form, headers=headers)
        assert refused.status_code == 403, (form, headers)
        assert browser.get("/").status_code == 200  # still signed in
    out = browser.post("/logout", data={"csrf_token": token}, headers={"Origin": "http://testserver"})
    assert out.status_code == 303 and browser.get("/").status_code == 303


def test_the_origin_is_compared_by_scheme_host_and_port(console):
    https = signed_in_browser(console, base_url="https://console.test")
    token = csrf_of(https.get("/deployments/p-elastic").text)
    reveal = "/deployments/p-elastic/endpoint-token"
    for origin, status in (
        ("https://console.test", 200),
        ("https://console.test:443", 200),
        ("https://CONSOLE.test", 200),
        ("http://console.test", 403),
        ("https://console.test:8443", 403),
        ("null", 403),
    ):
        answer = https.post(reveal, headers={"X-CSRF-Token": token, "Origin": origin, "Accept": "application/json"})
        assert answer.status_code == status, origin
    # Behind a proxy that ends TLS: the origin it was asked with.
    plain = signed_in_browser(console)
    token = csrf_of(plain.get("/deployments/p-elastic").text)
    proxied = {"X-CSRF-Token": token, "Accept": "application/json", "X-Forwarded-Proto": "https"}
    assert plain.post(reveal, headers={**proxied, "Origin": "https://testserver"}).status_code == 200
    assert plain.post(reveal, headers={**proxied, "Origin": "http://testserver"}).status_code == 403
    forwarded = {**proxied, "X-Forwarded-Host": "console.example", "Origin": "https://console.example"}
    assert plain.post(reveal, headers=forwarded).status_code == 200


def test_an_action_with_an_expired_session_signs_in_back_to_its_page_not_to_the_action(console):
    browser = TestClient(console.client.app, follow_redirects=False)
    sessions = console.client.app.state.console.sessions
    expired, _ = sessions.issue(now=time.time() - sessions.ttl_s - 1)
    browser.cookies.set(COOKIE_NAME, expired)
    answer = browser.post("/deployments/p-elastic/disable", data={"csrf_token": "whatever"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/deployments/p-elastic"
    assert console.client.get("/api/v1/deployments/p-elastic").json()["is_enabled"] is True
    page = browser.get("/deployments/p-elastic?done=enabled")  # a page (GET) comes back to itself
    assert page.headers["location"] == "/login?next=/deployments/p-elastic%3Fdone%3Denabled"
    assert browser.post("/logout").headers["location"] == "/login?reason=signed-out"


def test_errors_outside_the_console_s_handlers_are_its_pages_and_the_api_keeps_json(console):
    browser = console.browser
    token = csrf_of(browser.get("/").text)
    not_allowed = browser.get("/deployments/p-elastic/disable")
    assert_console_page(not_allowed, 405)
    assert "POST" in not_allowed.headers["allow"]
    assert_console_page(browser.get("/logout"), 405)
    assert_console_page(browser.get("/no-such-page"), 404)
    assert_console_page(browser.get("/console/static/none.js"), 404)
    with_file = browser.post(
        "/deployments/p-elastic/disable", data={"csrf_token": token}, files={"upload": ("a.txt", b"x")}
    )
    assert_console_page(with_file, 400)
    assert console.client.get("/api/v1/deployments/p-elastic").json()["is_enabled"] is True
    # The API's own answers, unchanged: JSON, under /api and /endpoints.
    for answer, status in (
        (console.client.get("/api/v1/no-such-route"), 404),
        (console.client.delete("/api/v1/health"), 405),
        (console.client.get("/api/no-such"), 404),
    ):
        assert answer.status_code == status and answer.headers["content-type"] == "application/json"
        assert "message" in answer.json()
    endpoint = console.client.get("/endpoints/no-such-path")
    assert endpoint.headers["content-type"] == "application/json", endpoint.text


def test_the_live_tail_takes_only_digit_cursors_and_clamps_them(console):
    (execution_id,) = add_executions(console, 1)
    from rayline.store.executions import append_logs
    from rayline.store.models import utcnow

    append_logs(console.context.db, execution_id, [(utcnow(), "stdout", f"line {n}") for n in range(3)])
    url = f"/executions/{execution_id}/logs/events"
    for headers, params, lines in (
        ({}, {"after": "0"}, 3),
        ({"Last-Event-ID": "²".encode()}, {"after": "٣"}, 0),  # neither is a cursor: from the last line
        ({}, {"after": "9" * 40}, 0),
        ({"Last-Event-ID": "9" * 18}, {}, 0),  # past the last line: brought down to it
    ):
        with console.browser.stream(
            "GET", url, params=params, headers={"Accept": "text/event-stream", **headers}
        ) as events:
            assert events.status_code == 200
            text = "".join(events.iter_text())
        assert text.count("event: log") == lines, (headers, params, text)
        assert "event: end" in text


def test_a_deployment_s_live_tails_share_one_look_at_serve():
    from rayline.console.snapshot import StatusSnapshot

    looks: list[int] = []
    clock = [0.0]

    def observe() -> list[SimpleNamespace]:
        looks.append(1)
        return [SimpleNamespace(name="d", status="up")]

    snapshot = StatusSnapshot(observe, 2.0, lambda: clock[0])
    for _ in range(20):
        assert snapshot.status_of("d") == "up"
    assert len(looks) == 1
    assert snapshot.status_of("new-one") is None and len(looks) == 2  # a name it lacks: looked for again
    clock[0] = 2.0
    snapshot.status_of("d")
    assert len(looks) == 3


def test_a_stream_ends_when_its_session_does_and_late_commits_are_sent_once():
    import asyncio

    from rayline.console import live

    committed: list[int] = [1, 2, 4]  # 3 is taken (INSERT) but committed after 4
    reads: list[tuple[int, list[int]]] = []
    signed_in = iter([True, True, True, False])

    def read_lines(after, skip):
        reads.append((after, sorted(skip)))
        return [
            SimpleNamespace(id=i, timestamp=datetime.now(UTC), stream="stdout", message=f"m{i}")
            for i in sorted(committed)
            if i > after and i not in skip
        ]

    def poll():
        if 3 not in committed and len(reads) >= 1:
            committed.append(3)
        return None, False

    async def run() -> list[str]:
        return [event async for event in live._tail(0, read_lines, poll, lambda: next(signed_in))]

    live.POLL_S, saved = 0.0, live.POLL_S
    try:
        events = asyncio.run(run())
    finally:
        live.POLL_S = saved
    ids = [int(line[4:]) for event in events for line in event.splitlines() if line.startswith("id: ")]
    assert ids == [1, 2, 4, 3]  # each once, the late one too
    assert "event: signed-out" in events[-1]
