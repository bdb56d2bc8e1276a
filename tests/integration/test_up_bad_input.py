"""`rayline up` refuses bad input (issue 14): a `--ray-address` where no Ray cluster answers, a
setting that does not validate, a RAYLINE_PACKAGE_URL_BASE that does not reach the platform. It
exits non-zero with one line on stderr that names the option or variable and the fix, prints no
traceback, and, for what it can check before it starts, stores nothing (no database, no token).

`rayline up` runs as a child process, as a user runs it, with its own RAYLINE_HOME and none of
the test process's RAY_* / RAYLINE_* variables (as LocalPlatform builds it)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rayline.config import Settings
from rayline.errors import InvalidInput
from rayline.local_platform import processes_in_session
from rayline.ports import free_port

RAYLINE = str(Path(sys.executable).parent / "rayline")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    sid: int

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def rayline(home: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAYLINE_", "RAY_"))}
    environment.update(
        {
            "RAYLINE_HOME": str(home),
            "RAYLINE_HTTP_PORT": str(free_port()),
            "RAYLINE_DASHBOARD_PORT": str(free_port()),
            **(env or {}),
        }
    )
    process = subprocess.Popen(
        [RAYLINE, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own session: what it started can be found, and ended
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"rayline {' '.join(args)} still ran after {timeout_s} s:\n{stderr[-3000:]}")
    return Run(process.returncode, stdout, stderr, process.pid)


def assert_refused(run: Run, *named: str, command: str = "up") -> str:
    """Non-zero, no traceback, and the last line of stderr is ours, naming what is wrong."""
    assert run.code != 0, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    assert run.lines, "nothing on stderr"
    last = run.lines[-1]
    assert last.startswith(f"rayline {command}: "), run.stderr
    for name in named:
        assert name in last, last
    return last


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "rayline-home"
    path.mkdir()
    return path


def assert_nothing_stored(home: Path) -> None:
    assert sorted(path.name for path in home.iterdir()) == [], "rayline up stored something"


# 1. A --ray-address where no Ray cluster answers: refused at once, before the database is migrated.


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("127.0.0.1:1", ["--ray-address", "127.0.0.1:1", "connection refused", "ray start --head"]),
        ("not-an-address", ["--ray-address", "not-an-address", "host:port"]),
        ("127.0.0.1:notaport", ["--ray-address", "host:port"]),
        ("", ["--ray-address is empty"]),
        ("ray://127.0.0.1:10001", ["--ray-address", "Ray Client", "GCS address"]),
    ],
)
def test_a_ray_address_where_no_cluster_answers_is_refused_at_once_and_nothing_is_stored(home, address, named):
    began = time.monotonic()
    run = rayline(home, "up", "--ray-address", address)
    assert_refused(run, *named)
    assert run.code == 2
    assert len([line for line in run.lines if line.startswith("rayline up: ")]) == 1
    assert time.monotonic() - began < 30, "no quick refusal"
    assert "Starting Rayline" not in run.stdout
    assert_nothing_stored(home)


def test_auto_resolves_ray_address_as_ray_does_and_says_where_the_address_came_from(home):
    run = rayline(home, "up", "--ray-address", "auto", env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert_refused(run, "127.0.0.1:1", "connection refused", "RAY_ADDRESS", "--ray-address auto")
    assert_nothing_stored(home)


def test_an_explicit_ray_address_is_the_one_checked_whatever_ray_address_says(home):
    run = rayline(home, "up", "--ray-address", "127.0.0.1:1", env={"RAY_ADDRESS": "garbage-host:99999"})
    last = assert_refused(run, "--ray-address", "127.0.0.1:1", "connection refused", "from --ray-address")
    assert "garbage" not in run.stderr, last
    assert_nothing_stored(home)


@pytest.fixture
def listening() -> Iterator[str]:
    """A host:port something listens on (no Ray there): check_ray_address lets it through."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("given", ["explicit", "auto"])
def test_ray_init_attaches_to_the_address_checked_and_not_to_ray_address(monkeypatch, tmp_path, listening, given):
    """Ray reads RAY_ADDRESS for "auto": once resolved, it is taken out of the environment and
    ray.init gets the address checked; a refusal names where that address came from."""
    import ray

    from rayline.runtime import cluster, startup_checks

    seen: list[tuple[str, str | None]] = []

    def refuse(address=None, **_):
        seen.append((address, os.environ.get("RAY_ADDRESS")))
        raise RuntimeError("Version mismatch")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(cluster, "_prepare_environment", lambda _: None)
    if given == "explicit":
        monkeypatch.setenv("RAY_ADDRESS", "garbage-host:99999")
        resolved = startup_checks.check_ray_address(listening)
        named = f"--ray-address {listening}"
    else:
        monkeypatch.setenv("RAY_ADDRESS", listening)
        resolved = startup_checks.check_ray_address("auto")
        named = f"RAY_ADDRESS={listening} (read for --ray-address auto)"
    assert resolved.address == listening and not resolved.found_locally
    with pytest.raises(InvalidInput) as info:
        cluster.connect(Settings(home=tmp_path), resolved)
    assert seen == [(listening, None)]
    assert f"at {named} (Version mismatch)" in info.value.message


def test_a_cluster_found_on_this_machine_for_auto_gets_rays_token_authentication_as_ray_init_gives_it(
    monkeypatch, tmp_path, listening
):
    """ray.init("auto") turns Ray's token authentication on for a cluster it finds on this
    machine when a token is here; given that cluster's address instead, it would not."""
    import ray
    from ray._private.authentication import authentication_token_setup

    from rayline.runtime import cluster, startup_checks

    calls: list[str] = []
    monkeypatch.setattr(
        authentication_token_setup,
        "maybe_enable_token_auth_if_token_available",
        lambda warn_if_disabled=True: calls.append("enabled"),
    )

    def attach(address=None, **_):
        calls.append(address)
        raise RuntimeError("stopped here")

    monkeypatch.setattr(ray, "init", attach)
    monkeypatch.setattr(cluster, "_prepare_environment", lambda _: None)
    for found_locally, expected in ((True, ["enabled", listening]), (False, [listening])):
        calls.clear()
        with pytest.raises(InvalidInput):
            cluster.connect(Settings(home=tmp_path), startup_checks.RayAddress(listening, listening, found_locally))
        assert calls == expected


# 2. Settings that do not validate: one line per problem, naming the variable; never the value.


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RAYLINE_PACKAGE_URL_BASE": "http://127.0.0.1:9"}, ["needs RAYLINE_PACKAGE_TOKEN"]),
        (
            {"RAYLINE_PACKAGE_URL_BASE": "http://127.0.0.1:9", "RAYLINE_PACKAGE_TOKEN": "short-secret-xy"},
            ["RAYLINE_PACKAGE_TOKEN", "at least 16"],
        ),
        (
            {"RAYLINE_PACKAGE_URL_BASE": "ftp://short-secret-xy", "RAYLINE_PACKAGE_TOKEN": "0" * 32},
            ["RAYLINE_PACKAGE_URL_BASE", "http://", "https://"],
        ),
        (
            {"RAYLINE_PACKAGE_URL_BASE": "http://short-secret-xy:x@host:8000", "RAYLINE_PACKAGE_TOKEN": "0" * 32},
            ["RAYLINE_PACKAGE_URL_BASE", "no user, password"],
        ),
        ({"RAYLINE_HTTP_PORT": "short-secret-xy"}, ["RAYLINE_HTTP_PORT", "integer"]),
    ],
)
def test_a_setting_that_does_not_validate_is_one_line_naming_its_variable(home, env, named):
    run = rayline(home, "up", env=env)
    assert_refused(run, *named)
    assert run.code == 2
    assert run.lines == [run.lines[-1]], run.stderr  # that line only: nothing started yet
    assert "short-secret-xy" not in run.stdout + run.stderr  # hide_input_in_errors
    assert_nothing_stored(home)


def test_each_problem_has_its_line_and_rayline_token_tells_them_too(home):
    env = {"RAYLINE_HTTP_PORT": "eighty", "RAYLINE_PACKAGE_URL_BASE": "127.0.0.1:8000"}
    run = rayline(home, "token", env=env)
    assert_refused(run, command="token")
    assert run.code == 2
    assert len(run.lines) == 2, run.stderr
    assert any("RAYLINE_HTTP_PORT" in line for line in run.lines)
    assert any("RAYLINE_PACKAGE_URL_BASE" in line for line in run.lines)
    assert all(line.startswith("rayline token: ") for line in run.lines)
    assert_nothing_stored(home)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://rayline-serve:8000", "http://rayline-serve:8000"),
        ("https://head.example.com/rayline/", "https://head.example.com/rayline"),
        (" http://10.0.0.5:8000/ ", "http://10.0.0.5:8000"),
        ("", None),
    ],
)
def test_a_package_url_base_of_the_right_shape_is_kept_without_its_trailing_slash(monkeypatch, given, kept):
    monkeypatch.setenv("RAYLINE_PACKAGE_URL_BASE", given)
    monkeypatch.setenv("RAYLINE_PACKAGE_TOKEN", "0" * 32)
    assert Settings().package_url_base == kept


# ray.init refused by Ray's token authentication (a real one takes a token-protected cluster and
# about 20 s of Ray's retries): one line that says to set RAY_AUTH_TOKEN.


def _refused_by_the_gcs() -> ConnectionError:
    error = ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")
    error.__cause__ = RuntimeError(
        "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
        "ray.exceptions.RpcError: Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing"
    )
    return error


def _no_token_here() -> Exception:
    from ray.exceptions import AuthenticationError

    return AuthenticationError("Token authentication is enabled but no authentication token was found.")


@pytest.mark.parametrize("failure", [_refused_by_the_gcs, _no_token_here])
def test_a_refused_ray_token_is_one_line_saying_to_set_ray_auth_token(monkeypatch, tmp_path, failure):
    import ray

    from rayline.runtime import cluster

    def refuse(**_):
        raise failure()

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(cluster, "_prepare_environment", lambda _: None)
    with pytest.raises(InvalidInput) as info:
        cluster.connect(Settings(home=tmp_path), "10.0.0.5:6379")
    message = info.value.message
    assert "RAY_AUTH_TOKEN" in message and "10.0.0.5:6379" in message and "\n" not in message


def test_another_failure_of_ray_init_is_one_line_too(monkeypatch, tmp_path):
    import ray

    from rayline.runtime import cluster

    def refuse(**_):
        raise RuntimeError("Version mismatch: the cluster was started with Ray 2.59.0\nand more lines")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(cluster, "_prepare_environment", lambda _: None)
    with pytest.raises(InvalidInput) as info:
        cluster.connect(Settings(home=tmp_path), "10.0.0.5:6379")
    message = info.value.message
    assert "--ray-address 10.0.0.5:6379" in message and "Version mismatch" in message and "\n" not in message


# 3. A RAYLINE_PACKAGE_URL_BASE that does not reach the platform: known only once it is up; what
# was started is stopped.


def test_a_package_url_base_that_does_not_reach_the_platform_stops_it_with_one_line(home):
    nobody = free_port()  # nothing listens there
    token = secrets.token_hex(16)
    run = rayline(
        home,
        "up",
        env={
            "RAYLINE_PACKAGE_URL_BASE": f"http://127.0.0.1:{nobody}",
            "RAYLINE_PACKAGE_TOKEN": token,
        },
        timeout_s=300,
    )
    try:
        last = assert_refused(run, f"RAYLINE_PACKAGE_URL_BASE=http://127.0.0.1:{nobody}", "does not reach")
        assert "Rayline is up." not in run.stdout
        assert token not in run.stdout + run.stderr
        deadline = time.monotonic() + 20
        while processes_in_session(run.sid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_in_session(run.sid) == [], f"left behind after: {last}"
    finally:
        if processes_in_session(run.sid):  # only while some are left: the group id is still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.sid, signal.SIGKILL)


# On a cluster that outlives `rayline up` (--ray-address), a refused RAYLINE_PACKAGE_URL_BASE leaves
# nothing serving: the control plane's Serve application is deleted before the driver leaves. (A
# real one takes a `ray start --head` cluster; Ray is replaced here.)


@pytest.mark.parametrize("attached", [True, False])
@pytest.mark.parametrize("deleted", [True, False])
def test_a_refused_package_url_on_an_attached_cluster_deletes_the_control_plane(
    monkeypatch, tmp_path, capsys, attached, deleted
):
    from rayline import cli
    from rayline.runtime import cluster, startup_checks

    done: list[str] = []

    def delete() -> None:
        done.append("delete")
        if not deleted:
            raise TimeoutError("Some of these applications weren't deleted after 60s: ['rayline']")

    def refuse(_):
        done.append("check")
        raise InvalidInput("RAYLINE_PACKAGE_URL_BASE=http://10.0.0.9:8000 does not reach this platform (...)")

    monkeypatch.setattr(startup_checks, "check_ray_address", lambda given: startup_checks.RayAddress(given, given))
    monkeypatch.setattr(cluster, "connect", lambda *_: done.append("connect"))
    monkeypatch.setattr(cluster, "start", lambda *_, **__: "10.0.0.5:6379")
    monkeypatch.setattr(cluster, "wait_until_healthy", lambda _: None)
    monkeypatch.setattr(startup_checks, "check_package_url", refuse)
    monkeypatch.setattr(cluster, "delete_control_plane", delete)
    monkeypatch.setattr(cluster, "stop", lambda: done.append("stop"))
    monkeypatch.setenv("RAYLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAYLINE_PACKAGE_URL_BASE", "http://10.0.0.9:8000")
    monkeypatch.setenv("RAYLINE_PACKAGE_TOKEN", "0" * 32)
    environment = dict(os.environ)  # `rayline up` takes the RAYLINE_* variables out of its environment
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = cli.main(["up", "--ray-address", "10.0.0.5:6379"] if attached else ["up"])
    finally:
        os.environ.clear()
        os.environ.update(environment)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert lines[-1].startswith("rayline up: RAYLINE_PACKAGE_URL_BASE=http://10.0.0.9:8000 does not reach")
    if attached:
        assert done == ["connect", "check", "delete", "stop"]
        assert len(lines) == (1 if deleted else 2), lines
        if not deleted:
            assert "could not delete the control plane's Serve application 'rayline'" in lines[0]
    else:  # the Ray head ends with `rayline up`, and Serve with it
        assert done == ["check", "stop"]
        assert len(lines) == 1, lines
