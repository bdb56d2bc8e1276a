"""One real platform per test session: `rayline up` as a user runs it (local Ray, Serve, SQLite,
HTTP on 127.0.0.1), driven over real HTTP by the SDK."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest

from rayline import RaylineSdk

RAYLINE = Path(sys.executable).parent / "rayline"
START_TIMEOUT_S = 240
STOP_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_in_session(sid: int) -> list[str]:
    """Processes still alive in the session `rayline up` led (it was started with setsid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append((entry / "cmdline").read_text().replace("\0", " ")[:120])
        except (OSError, IndexError, ValueError):
            continue
    return found


class Platform:
    def __init__(self, home: Path, upload_limit_bytes: int = 2_000_000) -> None:
        self.home = home
        self.http_port, self.dashboard_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYLINE_", "RAY_"))}
        self.env.update(RAYLINE_HOME=str(home), RAYLINE_HTTP_PORT=str(self.http_port),
                        RAYLINE_DASHBOARD_PORT=str(self.dashboard_port),
                        RAYLINE_MAX_UPLOAD_BYTES=str(upload_limit_bytes))
        self.process: subprocess.Popen | None = None
        self.log_path = home / "up.log"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "a")
        self.process = subprocess.Popen([str(RAYLINE), "up"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rayline up exited with {self.process.returncode}:\n{self.log_tail()}")
            if "Rayline is up." in self.log_path.read_text()[offset:]:
                return
            time.sleep(0.5)
        raise RuntimeError(f"rayline up did not get ready in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> list[str]:
        """SIGTERM, as a service manager would; returns the processes left behind (should be none)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(STOP_TIMEOUT_S)
        sid, deadline = self.process.pid, time.monotonic() + 20
        while processes_in_session(sid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = processes_in_session(sid)
        if left:
            os.killpg(sid, signal.SIGKILL)
        return left

    def restart(self) -> None:
        left = self.stop()
        assert left == [], f"processes left after stopping: {left}"
        self.start()

    @property
    def token(self) -> str:
        return (self.home / "sdk-token").read_text().strip()

    def sdk(self) -> RaylineSdk:
        return RaylineSdk(sdk_token=self.token, environment_url=self.url)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    instance = Platform(tmp_path_factory.mktemp("rayline-home"))
    instance.start()
    yield instance
    if instance.process and instance.process.poll() is None:
        instance.stop()


@pytest.fixture
def sdk(platform):
    with platform.sdk() as client:
        yield client


@pytest.fixture
def api(platform):
    """A plain HTTP client with the SDK token, for what the SDK does not send."""
    with httpx.Client(base_url=f"{platform.url}/api/v1", headers={"Authorization": f"Bearer {platform.token}"},
                      timeout=120) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root
