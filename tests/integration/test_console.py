"""The web console at `/`, against the session's real platform (`rayline up`: Ray, Serve, SQLite,
HTTP on 127.0.0.1): plain HTTP for what a browser does not show (cookie flags, headers,
redirects, refusals), then one flow in a real browser (Debian's chromium, headless, driven by
Playwright) as a user goes through it. Screenshots of the main pages go to tests/artifacts/console/.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rayline import Input, Output
from rayline.config import Settings
from rayline.console.sessions import COOKIE_NAME, Sessions
from rayline.domain.tokens import hash_token
from rayline.ports import free_port
from tests.integration.conftest import folder_pipeline, unique

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
SCRIPT_LINE = '<script>alert("from the logs")</script>'
LIVE_SCRIPT_LINE = '<script>alert("from the live tail")</script>'  # written after the pause
PIPELINE = {
    "main.py": f"""
        import sys
        import time

        print("module imported")

        def handler(x, pause=0):
            print(f"handling {{x}}")
            print({SCRIPT_LINE!r})
            if pause:
                time.sleep(pause)
                print("after the pause")
                print({LIVE_SCRIPT_LINE!r})
                time.sleep(1)  # the page shows it live a moment before the end reloads it
            if x == 13:
                raise ValueError("unlucky 13")
            return {{"y": x * 2}}
    """,
}


@pytest.fixture(scope="module")
def pipeline(platform, tmp_path_factory):
    inputs = [Input("x", "number"), Input("pause", "number", is_required=False)]
    folder = tmp_path_factory.mktemp("console")
    with folder_pipeline(platform, folder, "console", PIPELINE, "handler", inputs, [Output("y", "number")]) as name:
        yield name


@pytest.fixture(scope="module")
def elastic(platform, pipeline):
    """An elastic endpoint deployment (up at once, no pod to wait for)."""
    name = unique("console-elastic")
    return platform.sdk().create_deployment(pipeline, name, "endpoint")


def sign_in(platform, client: httpx.Client | None = None) -> httpx.Client:
    client = client or httpx.Client(base_url=platform.url, timeout=60)
    answer = client.post("/login", data={"token": platform.token}, headers={"Origin": platform.url})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def call(platform, deployment: dict, **inputs) -> dict:
    answer = httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json=inputs,
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
        timeout=120,
        follow_redirects=True,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- signing in and out ---------------------------------------------------------------------------


def test_a_page_asked_without_a_session_comes_back_after_sign_in(platform, elastic):
    asked = f"/deployments/{elastic['name']}"
    with httpx.Client(base_url=platform.url, timeout=60) as client:
        redirected = client.get(asked)
        assert redirected.status_code == 303
        assert redirected.headers["location"] == f"/login?next={asked}"
        form = client.get(redirected.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text
        assert f'name="next" value="{asked}"' in form.text

        signed_in = client.post(
            "/login", data={"token": platform.token, "next": asked}, headers={"Origin": platform.url}
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == asked
        assert platform.token not in signed_in.headers["location"]
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert any(flag.startswith("max-age=") for flag in flags)
        assert "secure" not in flags  # served over http here; over https it is Secure
        assert platform.token not in cookie

        page = client.get(asked)
        assert page.status_code == 200 and elastic["name"] in page.text


def test_a_wrong_or_empty_token_shows_the_form_again_without_a_session(platform):
    with httpx.Client(base_url=platform.url, timeout=60) as client:
        for token, status, message in (
            ("", 400, "Type the SDK token"),
            ("not-the-token-at-all", 401, "not this platform&#39;s SDK token"),
        ):
            refused = client.post("/login", data={"token": token}, headers={"Origin": platform.url})
            assert refused.status_code == status
            assert message in refused.text and 'name="token"' in refused.text
            assert not client.cookies.get(COOKIE_NAME)
        assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    "asked, followed",
    [
        ("/pipelines/p?status=Failed", "/pipelines/p?status=Failed"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/login?next=/x", "/"),
    ],
)
def test_after_sign_in_only_a_local_path_is_followed(platform, asked, followed):
    answer = httpx.post(
        f"{platform.url}/login", data={"token": platform.token, "next": asked}, headers={"Origin": platform.url}
    )
    assert answer.status_code == 303 and answer.headers["location"] == followed


def test_an_expired_or_altered_session_goes_back_to_sign_in(platform):
    ttl_s = Settings.model_fields[
        "console_session_ttl_s"
    ].default  # the platform's (RAYLINE_CONSOLE_SESSION_TTL_S unset)
    sessions = Sessions((platform.home / "secret-key").read_bytes().strip(), hash_token(platform.token), ttl_s)
    expired, _ = sessions.issue(now=time.time() - ttl_s - 1)
    fresh, _ = sessions.issue()
    altered = fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB")
    for cookie in (expired, altered):
        with httpx.Client(base_url=platform.url, timeout=60, cookies={COOKIE_NAME: cookie}) as client:
            answer = client.get("/executions/whatever-1")
            assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/executions/whatever-1"
            assert "Your session has ended" in client.get(answer.headers["location"]).text
    with httpx.Client(base_url=platform.url, timeout=60, cookies={COOKIE_NAME: fresh}) as client:
        assert client.get("/").status_code == 200  # the same signing, unexpired: accepted


def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(platform):
    client = sign_in(platform)
    copied = client.cookies.get(COOKIE_NAME)
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token}, headers={"Origin": platform.url})
    assert out.status_code == 303 and out.headers["location"] == "/login?reason=signed-out"
    with httpx.Client(base_url=platform.url, timeout=60, cookies={COOKIE_NAME: copied}) as replay:
        assert replay.get("/").status_code == 303


# --- what keeps other sites and scripts out -------------------------------------------------------


def test_cross_site_actions_are_refused(platform, elastic):
    name = elastic["name"]
    client = sign_in(platform)
    token = csrf_of(client.get(f"/deployments/{name}").text)
    attempts = [
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),  # another site's page
        ({"csrf_token": token}, {"Referer": "http://evil.example/page"}),  # no Origin, another Referer
        ({}, {"Origin": platform.url}),  # no CSRF token
        ({"csrf_token": "x" + token[1:]}, {"Origin": platform.url}),  # a wrong one
    ]
    for form, headers in attempts:
        refused = client.post(f"/deployments/{name}/disable", data=form, headers=headers)
        assert refused.status_code == 403, (form, headers, refused.text)
        assert "cross-site" in refused.text
    assert platform.sdk().get_deployment(name)["is_enabled"] is True
    # The sign-in form too: a foreign page cannot sign a browser in.
    foreign = httpx.post(
        f"{platform.url}/login", data={"token": platform.token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    # The endpoint token is only given to the console's script (its CSRF header).
    assert client.post(f"/deployments/{name}/endpoint-token", headers={"Accept": "application/json"}).status_code == 403


def test_pages_carry_a_strict_content_security_policy_and_no_inline_code(platform, elastic, pipeline):
    client = sign_in(platform)
    paths = ("/", f"/deployments/{elastic['name']}", f"/pipelines/{pipeline}", "/login", "/pipelines/none-such")
    for path in (*paths, "/no-such-console-page", "/logout"):  # the last two: 404 and 405, as pages
        answer = client.get(path, follow_redirects=True)
        assert answer.headers["content-type"].startswith("text/html") and answer.headers["cache-control"] == "no-store"
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
        html = answer.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"an inline script in {path}"
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), f"an inline style or handler in {path}"
    assert platform.token not in client.get("/").text


def test_the_console_is_not_in_the_openapi_document(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if not path.startswith("/api/v1") and not path.startswith("/endpoints")]


def test_the_sign_in_form_is_bounded_like_any_request_body(platform):
    answer = httpx.post(
        f"{platform.url}/login",
        content=b"token=" + b"a" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": platform.url},
        timeout=60,
    )
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "path, says",
    [
        ("/pipelines/no-such-pipeline", "There is no pipeline named &#39;no-such-pipeline&#39;."),
        ("/deployments/no-such-deployment", "There is no deployment named &#39;no-such-deployment&#39;."),
        ("/executions/no-such-7", "There is no execution named &#39;no-such-7&#39;."),
    ],
)
def test_an_unknown_page_subject_is_a_404_page_saying_what_is_missing(platform, path, says):
    answer = sign_in(platform).get(path)
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert says in answer.text


# --- what the pages show --------------------------------------------------------------------------


def test_logs_are_shown_as_text_and_failures_with_their_traceback(platform, elastic):
    client = sign_in(platform)
    succeeded = call(platform, elastic, x=4)["execution_id"]
    page = client.get(f"/executions/{succeeded}").text
    assert "&lt;script&gt;alert(&#34;from the logs&#34;)&lt;/script&gt;" in page
    assert SCRIPT_LINE not in page
    assert "Succeeded" in page and "<code>8</code>" in page  # the output y

    failed = failing_call(platform, elastic)
    page = client.get(f"/executions/{failed}").text
    assert "Failed" in page and "unlucky 13" in page
    assert "Traceback (most recent call last):" in page and "ValueError: unlucky 13" in page


def failing_call(platform, deployment: dict) -> str:
    answer = httpx.post(
        f"{platform.url}/endpoints/{deployment['endpoint_url_path']}",
        json={"x": 13},
        headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"},
        timeout=120,
        follow_redirects=True,
    )
    return answer.json().get("execution_id") or answer.json()["additional_data"]["execution_id"]


def test_a_pipeline_page_filters_its_executions_by_status(platform, pipeline, elastic):
    sdk = platform.sdk()
    done = sdk.run_pipeline(pipeline, {"x": 1})["execution_id"]
    client = sign_in(platform)
    call(platform, elastic, x=2)
    failed = failing_call(platform, elastic)
    everything = client.get(f"/pipelines/{pipeline}").text
    assert done in everything and failed in everything and elastic["name"] in everything
    failed_only = client.get(f"/pipelines/{pipeline}", params={"status": "Failed"}).text
    assert failed in failed_only and done not in failed_only
    bad = client.get(f"/pipelines/{pipeline}", params={"status": "Sleeping"})
    assert bad.status_code == 400 and "status must be one of" in bad.text


def test_an_execution_log_is_streamed_live_through_serve(platform, pipeline):
    """Server-Sent Events through Serve's HTTP proxy: each line arrives as it is written, not at the end."""
    execution = platform.sdk().run_pipeline(pipeline, {"x": 3, "pause": 4}, wait_for_completion=False)
    execution_id = execution["execution_id"]
    client = sign_in(platform)
    began, arrivals = time.monotonic(), {}
    with client.stream(
        "GET", f"/executions/{execution_id}/logs/events", headers={"Accept": "text/event-stream"}
    ) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in events.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "log":
                arrivals.setdefault(json.loads(line[6:])["message"], time.monotonic() - began)
            elif line.startswith("data: ") and kind == "end":
                assert json.loads(line[6:])["status"] == "Succeeded"
                break
    assert {"handling 3", SCRIPT_LINE, "after the pause", LIVE_SCRIPT_LINE} <= set(arrivals)
    # The first lines came while the function was still sleeping its 4 s (an elastic execution
    # writes its lines to SQL from its first second on: rayline.runtime.elastic_task).
    assert arrivals["after the pause"] - arrivals["handling 3"] > 1.5, arrivals


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (`make test` installs it as root: apt-get install chromium).")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is in the test extra")
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield instance
        instance.close()


class EvilSite:
    """Another origin (another port) whose page posts a form to the console, as a site the user
    visits while signed in could."""

    def __init__(self, action: str) -> None:
        page = (
            f'<form id="f" method="post" action="{action}"><input name="csrf_token" value="guessed"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_user_signs_in_watches_a_deployment_and_its_executions_then_signs_out(platform, pipeline, browser):
    from playwright.sync_api import expect

    sdk = platform.sdk()
    name = unique("console-warm")
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    try:
        # Signing in: a wrong token is refused, the right one opens the overview.
        page.goto(platform.url)
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("#token", "a-wrong-token-of-some-length")
        page.click("button[type=submit]")
        expect(page.locator("p.error")).to_contain_text("not this platform's SDK token")
        shoot(page, "sign-in-refused")
        page.fill("#token", platform.token)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Overview")

        # A low-latency deployment comes up: its page follows the status live.
        sdk.create_deployment(pipeline, name, "endpoint", mode="low_latency", wait_for_completion=False)
        page.goto(f"{platform.url}/deployments/{name}")
        expect(page.locator("[data-live-status]")).to_have_text("up", timeout=120_000)
        expect(page.locator(".logs")).to_contain_text("module imported", timeout=30_000)
        deployment = sdk.get_deployment(name)

        # The endpoint token is hidden until asked for; then the curl example holds it.
        expect(page.locator("[data-curl]")).not_to_contain_text(deployment["endpoint_token"])
        page.click("[data-reveal-token]")
        expect(page.locator("[data-token]")).to_have_text(deployment["endpoint_token"])

        # Calling the endpoint: the execution appears, with its logs, the script in them as text.
        execution_id = call(platform, deployment, x=21)["execution_id"]
        page.reload()
        expect(page.locator("table.executions")).to_contain_text(execution_id, timeout=10_000)
        expect(page.locator("section.pods tbody tr").first).to_contain_text("running")
        shoot(page, "deployment")
        page.click(f"table.executions a:text('{execution_id}')")
        expect(page.locator("[data-live-status]")).to_have_text("Succeeded")
        expect(page.locator(".logs")).to_contain_text(SCRIPT_LINE)
        expect(page.locator("table.values").last).to_contain_text("42")
        shoot(page, "execution")

        # An execution that is still running: its lines appear live, then the page shows its end.
        running = sdk.run_pipeline(pipeline, {"x": 5, "pause": 3}, wait_for_completion=False)["execution_id"]
        page.goto(f"{platform.url}/executions/{running}")
        expect(page.locator(".logs")).to_contain_text("handling 5", timeout=20_000)
        expect(page.locator(".logs")).to_contain_text("after the pause", timeout=20_000)
        # Appended by the live tail (written after the page was rendered): as text, not markup.
        expect(page.locator(".logs")).to_contain_text(LIVE_SCRIPT_LINE)
        expect(page.locator(".logs script")).to_have_count(0)
        expect(page.locator("[data-live-status]")).to_have_text("Succeeded", timeout=20_000)

        # The overview: the deployment with its chart of recent executions.
        page.goto(platform.url)
        row = page.locator(f"tr[data-deployment='{name}']")
        expect(row).to_contain_text("low_latency")
        expect(row.locator("svg.chart rect.bar-succeeded")).to_have_count(1)
        shoot(page, "overview")

        # A cross-site form post (another origin's page) is refused; the deployment stays enabled.
        evil = EvilSite(f"{platform.url}/deployments/{name}/disable")
        try:
            page.goto(evil.url)
            expect(page.locator("body")).to_contain_text("cross-site", timeout=10_000)
        finally:
            evil.close()
        assert sdk.get_deployment(name)["is_enabled"] is True

        # Rotating the token asks first; then disabling the deployment.
        page.goto(f"{platform.url}/deployments/{name}")
        page.click("text=Rotate the endpoint token")
        expect(page.locator("p.notice")).to_contain_text("new endpoint token")
        assert any("stops working" in message for message in dialogs)
        assert sdk.get_deployment(name)["endpoint_token"] != deployment["endpoint_token"]
        page.click("button[value=disable]")
        expect(page.locator("p.notice")).to_contain_text("Deployment disabled")
        expect(page.locator("[data-live-status]")).to_have_text("disabled")
        assert sdk.get_deployment(name)["is_enabled"] is False

        # Signing out: back to the sign-in form; the pages ask for it again.
        page.click("text=Sign out")
        expect(page.locator("p.notice")).to_have_text("You are signed out.")
        page.goto(f"{platform.url}/deployments/{name}")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        # The only dialog was the rotation's confirmation: the script in the logs never ran.
        assert len(dialogs) == 1, dialogs
    finally:
        context.close()
        with contextlib.suppress(Exception):
            sdk.delete_deployment(name)
