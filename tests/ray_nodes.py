"""A real multi-node Ray cluster on this machine: one ``ray start --head`` and worker nodes joined
with ``ray start --address``, as an operator starts them, each in a process session of its own.

Never ``ray stop`` (it ends every Ray process of the machine, other tests' too): a node is
stopped, or killed, through its own session.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rayline.local_platform import processes_in_session, session_pids
from rayline.ports import free_port

RAY = str(Path(sys.executable).parent / "ray")


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def sid(self) -> int:
        return self.process.pid  # started with start_new_session: it leads its session

    def kill(self) -> None:
        """The node dies at once: SIGKILL to its raylet, its workers and every process it runs (all
        of its session, whatever their process group)."""
        for pid in session_pids(self.sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self, timeout_s: float = 30) -> list[str]:
        """SIGTERM to ``ray start --block`` (it stops its node's processes); returns what was left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        deadline = time.monotonic() + 10
        while processes_in_session(self.sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_in_session(self.sid)
        if left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sid, signal.SIGKILL)
        return left


class RayNodes:
    """``ray start --head`` then ``add_node`` for each worker node, all on 127.0.0.1."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Nothing of the test process's Ray or Rayline settings: an operator's plain shell.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYLINE_"))}
        # Ray's token authentication, as a cluster that is not a laptop's runs it: every node and
        # every driver (``rayline up`` included) is given the same token.
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        # A loaded 2-core machine can take longer than Ray's default 10 s to register a raylet.
        self.env.update(self.auth_env, RAY_raylet_start_wait_time_s="60", **(env or {}))
        self.nodes: list[RayNode] = []
        # Ray's session files of this cluster (and its "current cluster" address file, which a bare
        # ray.init() would attach to) away from /tmp/ray; short, for Ray's socket paths.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rl-ray-", dir="/tmp"))

    def _start(
        self, name: str, args: list[str], resources: dict[str, float], num_cpus: int, env: dict[str, str] | None
    ) -> RayNode:
        log_path = self.root / f"{name}.log"
        # Each node's own temporary folder, as on machines of their own (pods journal there).
        node_tmp = self.temp_dir / f"{name}-tmp"
        node_tmp.mkdir()
        command = [
            RAY,
            "start",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources)}",
            # Fixed defaults would collide between the nodes of one machine.
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            *args,
        ]
        with open(log_path, "a") as log:
            process = subprocess.Popen(
                command,
                env={**self.env, "TMPDIR": str(node_tmp), **(env or {})},  # what this node's processes see
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node = RayNode(name, process, log_path)
        self.nodes.append(node)
        return node

    def start_head(
        self, num_cpus: int = 1, resources: dict[str, float] | None = None, env: dict[str, str] | None = None
    ) -> RayNode:
        args = ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}"]
        return self._start("head", args, resources or {}, num_cpus, env)

    def add_node(
        self,
        name: str,
        num_cpus: int = 1,
        resources: dict[str, float] | None = None,
        env: dict[str, str] | None = None,
    ) -> RayNode:
        return self._start(name, [f"--address={self.address}"], resources or {}, num_cpus, env)

    def wait_for_nodes(self, count: int, timeout_s: float = 120) -> None:
        """Until ``count`` nodes are alive in the cluster (asked with ``ray status``)."""
        deadline = time.monotonic() + timeout_s
        seen = ""
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise RuntimeError(f"ray node {node.name} exited:\n{node.log_path.read_text()[-3000:]}")
            probe = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
                    "print(sum(1 for n in ray.nodes() if n['Alive']))",
                    self.address,
                ],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            seen = probe.stdout.strip() or probe.stderr[-500:]
            if probe.returncode == 0 and seen.isdigit() and int(seen) >= count:
                return
            time.sleep(1)
        raise TimeoutError(f"{count} Ray node(s) were not up within {timeout_s} s (last: {seen})")

    def stop(self) -> list[str]:
        """Worker nodes first, then the head; returns the processes that had to be killed."""
        left: list[str] = []
        for node in reversed(self.nodes):
            left += node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return left
