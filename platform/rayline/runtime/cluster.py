"""Starting and stopping the local Ray head, Serve's HTTP entry, and the control plane."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from rayline.config import Settings
from rayline.domain.names import CONTROL_PLANE_APP
from rayline.ports import free_port

logger = logging.getLogger(__name__)

# Serve's HAProxy mode listens on fixed ports by default (and, for its stats page and Prometheus
# endpoint, on every interface: Ray 2.60 has no host setting for them). Two platforms on one
# machine (a user's and the tests') would collide, so each start-up takes free ones, from a range
# Ray draws none of its own ports from (its workers use 10002-19999, the rest is ephemeral).
_HA_PROXY_PORT_VARIABLES = (
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    "RAY_SERVE_HAPROXY_STATS_PORT",
)


_QUIET_PORTS = range(20000, 32768)


def _prepare_environment(settings: Settings) -> None:
    # Read by the processes Ray starts, so it must be set before ray.init.
    # Serve's autoscaler hears about load every second (later Ray releases read these; 2.60 the
    # autoscaling config's metrics_interval_s, which rayline.runtime.serve_deployments sets).
    for variable in (
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
    ):
        os.environ.setdefault(variable, "1")
    if settings.ha_proxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        # A replacing or deleted replica is drained 30 s by default before it stops; HAProxy
        # stops sending to it within about a second, and a disabled pod must free its resources.
        os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "3")
        for variable in _HA_PROXY_PORT_VARIABLES:
            os.environ.setdefault(variable, str(free_port("0.0.0.0", among=_QUIET_PORTS)))
    else:
        os.environ.pop("RAY_SERVE_ENABLE_HA_PROXY", None)


def start(settings: Settings, control_plane: Callable[[Settings], Any], ray_address: str | None = None) -> str:
    """Start (or join) Ray, start Serve's HTTP entry, and deploy the control plane (the Serve
    application ``control_plane(settings)`` builds, named ``rayline``). Returns the Ray
    cluster's address."""
    import ray
    from ray import serve

    _prepare_environment(settings)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    if ray_address:
        context = ray.init(address=ray_address, namespace="rayline", log_to_driver=False)
    else:
        os.environ.pop("RAY_ADDRESS", None)  # never attach by accident to another cluster
        # Ray's own servers (GCS, raylet) listen on every interface whatever the node address;
        # Ray 2.60 protects them with its token authentication, on by default for local clusters.
        context = ray.init(
            include_dashboard=True,
            dashboard_host=settings.dashboard_host,
            dashboard_port=settings.dashboard_port,
            num_cpus=settings.num_cpus,
            namespace="rayline",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(control_plane(settings), name=CONTROL_PLANE_APP, route_prefix="/", blocking=False)
    # ray.init is typed as returning a BaseContext; a driver's (not ray://) is a RayContext, which has it.
    return context.address_info["gcs_address"]  # type: ignore[attr-defined]


def wait_until_healthy(settings: Settings, timeout_s: float = 180.0) -> None:
    url = f"{settings.environment_url}/api/v1/health"
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = str(error) or type(error).__name__
        time.sleep(0.25)
    raise TimeoutError(f"Rayline did not answer at {url} within {timeout_s:.0f} s ({last}).")


def stop() -> None:
    """Stop everything this process started. Serve's own shutdown can hang for 30 s waiting for
    its controller; ending the Ray head ends Serve's processes with it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
