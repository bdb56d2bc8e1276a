"""Free TCP ports, for whatever starts a server on one: the local platform, Serve's HAProxy ports,
and the tests' and benchmarks' own servers. Imports nothing beyond the standard library."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1", among: range | None = None) -> int:
    """A TCP port free on ``host`` right now (another process may still take it before it is
    used). The system picks one of its ephemeral ports, or, with ``among``, one of that range."""
    if among is None:
        with socket.socket() as sock:
            sock.bind((host, 0))
            return sock.getsockname()[1]
    for _ in range(200):
        port = random.choice(among)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found on {host} in {among.start}-{among.stop - 1}")
