"""Start and stop a whole local platform (`rayline up` in a child process), for tests,
benchmarks and notebooks that need a real one. Never imported by the SDK itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rayline.ports import free_port
from rayline.sdk.client import RaylineSdk

READY_LINE = "Rayline is up."


def session_pids(sid: int) -> list[int]:
    """Live processes of the process session ``sid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def processes_in_session(sid: int) -> list[str]:
    """The command lines of the live processes of the session that `rayline up` leads."""
    found = []
    for pid in session_pids(sid):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:120])
        except OSError:
            continue
    return found


class LocalPlatform:
    """`rayline up` on free ports with its own ``RAYLINE_HOME``, in its own process session so
    that stopping it can check that nothing it started is left behind."""

    def __init__(
        self,
        home: Path,
        extra_env: dict[str, str] | None = None,
        start_timeout_s: float = 240,
        stop_timeout_s: float = 90,
        ray_address: str | None = None,
    ) -> None:
        self.home = Path(home)
        self.http_port, self.dashboard_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYLINE_", "RAY_"))}
        self.env.update(
            RAYLINE_HOME=str(self.home),
            RAYLINE_HTTP_PORT=str(self.http_port),
            RAYLINE_DASHBOARD_PORT=str(self.dashboard_port),
            **(extra_env or {}),
        )
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self.process: subprocess.Popen | None = None
        self.log_path = self.home / "up.log"
        # Attach to a running Ray cluster (`rayline up --ray-address`) instead of starting one.
        self.ray_address_given = ray_address

    def start(self) -> float:
        """Start and wait for the ready line; returns the seconds it took."""
        self.home.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        began = time.monotonic()
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "rayline"),
                    "up",
                    *(["--ray-address", self.ray_address_given] if self.ray_address_given else []),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        while time.monotonic() - began < self.start_timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"rayline up exited with {self.process.returncode}:\n{self.log_tail()}")
            if READY_LINE in self.log_path.read_text()[offset:]:
                return time.monotonic() - began
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rayline up was not ready after {self.start_timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> list[str]:
        """SIGTERM, as a service manager would. Returns what was left behind (killed then)."""
        if self.process is None or self.process.poll() is not None:
            return []
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(self.stop_timeout_s)
        sid, deadline = self.process.pid, time.monotonic() + 20
        while processes_in_session(sid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = processes_in_session(sid)
        if left:
            os.killpg(sid, signal.SIGKILL)
        return left

    @property
    def token(self) -> str:
        return (self.home / "sdk-token").read_text().strip()

    @property
    def ray_address(self) -> str:
        return (self.home / "ray-address").read_text().strip()

    def sdk(self) -> RaylineSdk:
        return RaylineSdk(sdk_token=self.token, environment_url=self.url)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalPlatform:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
