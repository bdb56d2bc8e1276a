"""Calls from user-code processes (warm pods, elastic workers) to the control plane.

They go through a Serve handle to the control plane's application, with a credential that only
allows recording what that pod or execution owns (``rayline.services.pod_gateway``). Calls are
blocking and made from threads of their own, never from an event loop, which Serve forbids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve

CALL_TIMEOUT_S = 60.0


class ControlPlaneLink:
    def __init__(self, app_name: str, credential: str, threads: int = 8) -> None:
        self._app_name = app_name
        self._credential = credential
        self._handle: Any = None
        # A pod's long poll, writer, load reports and id refills each hold one while they wait:
        # room for all of them and a few more, so that none waits behind a held long poll.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rayline-link")

    def _call(self, method: str, args: tuple, timeout_s: float) -> Any:
        if self._handle is None:
            self._handle = serve.get_app_handle(self._app_name)
        return getattr(self._handle, method).remote(self._credential, *args).result(timeout_s=timeout_s)

    def call(self, method: str, *args: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        """``method(credential, *args)`` on the control plane; raises what it raised."""
        return self._pool.submit(self._call, method, args, timeout_s).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
