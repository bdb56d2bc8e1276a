"""Starting and stopping the local Ray head, Serve's HTTP entry, and the control plane."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from rayline.config import Settings
from rayline.domain.names import CONTROL_PLANE_APP
from rayline.errors import InvalidInput
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


# What `--ray-address` should be, in every message that refuses one.
_GIVE_AN_ADDRESS = "start one with `ray start --head`, or give the GCS address (host:port) it printed"
_RAY_AUTH_FIX = (
    "set RAY_AUTH_TOKEN (with RAY_AUTH_MODE=token) to the token the cluster's nodes have, "
    "in the environment of `rayline up`"
)


def _shown(value: str) -> str:
    """A value given on the command line, as a message quotes it: on one line."""
    return value if value and value.isprintable() and " " not in value else repr(value)


def check_ray_address(ray_address: str, timeout_s: float = 3.0) -> None:
    """Refuse, at once and before anything is stored, a ``--ray-address`` where no Ray cluster
    can answer: malformed, a Ray Client address, or a host:port nobody listens on (``ray.init``
    would retry for minutes). ``auto`` is resolved as ``ray.init`` resolves it (``RAY_ADDRESS``,
    else the address of the cluster last started on this machine, else a running one)."""
    from ray._common.network_utils import parse_address
    from ray._private import services

    address = ray_address.strip()
    if not address:  # e.g. `--ray-address "$HEAD"` with HEAD unset
        raise InvalidInput(
            "--ray-address is empty: give the GCS address (host:port) of the Ray cluster to attach to, "
            "or leave it out to start a local Ray head."
        )
    given, origin = f"--ray-address {_shown(address)}", "from --ray-address"
    if address == "auto":
        from_environment = os.environ.get("RAY_ADDRESS", "").strip()
        if from_environment and from_environment != "auto":
            address, origin = from_environment, "from RAY_ADDRESS, read for --ray-address auto"
            given = f"RAY_ADDRESS={_shown(address)} (read for --ray-address auto)"
        else:
            try:
                address = str(services.canonicalize_bootstrap_address("auto"))
            except (ConnectionError, ValueError):
                raise InvalidInput(
                    "--ray-address auto found no Ray cluster (RAY_ADDRESS is unset and none was started "
                    f"on this machine): {_GIVE_AN_ADDRESS}."
                ) from None
            origin = "found for --ray-address auto: the cluster last started on this machine"
            given = f"{_shown(address)} ({origin})"
    if address.startswith("ray://"):
        raise InvalidInput(
            f"{given} is a Ray Client address, which rayline up cannot run through: give the cluster's "
            "GCS address instead (host:port; port 6379 unless `ray start --head --port` said otherwise)."
        )
    if address == "local":
        raise InvalidInput(f"{given}: leave --ray-address out to start a local Ray head.")
    parsed = parse_address(address)
    port = parsed[1] if parsed else ""
    if parsed is None or not parsed[0] or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(
            f"{given} is not a Ray cluster address (host:port): {_GIVE_AN_ADDRESS}, e.g. 127.0.0.1:6379."
        )
    host = parsed[0]
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except socket.gaierror:
        reason = f"cannot resolve the host {_shown(host)}"
    except ConnectionRefusedError:
        reason = "connection refused"
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
    raise InvalidInput(f"no Ray cluster answers at {_shown(address)} ({reason}; {origin}): {_GIVE_AN_ADDRESS}.")


def _refused_authentication(error: BaseException) -> bool:
    """Whether ``ray.init`` failed on Ray's token authentication: no token here (Ray's
    ``AuthenticationError``), or one the cluster refused (its GCS answers Unauthenticated)."""
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen) or "Unauthenticated" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def connect(settings: Settings, ray_address: str | None = None) -> str:
    """``ray.init``: start a local Ray head, or attach to the cluster at ``ray_address`` (a
    refusal raises ``InvalidInput``, one line). Returns the Ray cluster's GCS address."""
    import ray
    from ray.exceptions import RayError

    _prepare_environment(settings)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    if ray_address:
        try:
            context = ray.init(address=ray_address, namespace="rayline", log_to_driver=False)
        except (ConnectionError, RuntimeError, RayError) as error:
            if _refused_authentication(error):
                raise InvalidInput(
                    f"the Ray cluster at --ray-address {_shown(ray_address)} refused this driver (Ray's token "
                    f"authentication: no token here, or not the cluster's): {_RAY_AUTH_FIX}."
                ) from None
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InvalidInput(
                f"could not attach to the Ray cluster at --ray-address {_shown(ray_address)} ({first_line}): check "
                "that it is the GCS address `ray start --head` printed, and that this machine runs "
                f"the cluster's Ray version (here {ray.__version__})."
            ) from None
    else:
        # Never attach by accident to another cluster: without an address, ray.init joins the one
        # RAY_ADDRESS names, else the last one `ray start` started on this machine (its address is
        # in /tmp/ray); "local" always starts a new one.
        os.environ.pop("RAY_ADDRESS", None)
        # Ray's own servers (GCS, raylet) listen on every interface whatever the node address;
        # Ray 2.60 protects them with its token authentication, on by default for local clusters.
        context = ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host=settings.dashboard_host,
            dashboard_port=settings.dashboard_port,
            num_cpus=settings.num_cpus,
            namespace="rayline",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    # ray.init is typed as returning a BaseContext; a driver's (not ray://) is a RayContext, which has it.
    return context.address_info["gcs_address"]  # type: ignore[attr-defined]


def start(settings: Settings, control_plane: Callable[[Settings], Any], ray_address: str | None = None) -> str:
    """Start (or join) Ray, unless ``connect`` already did, start Serve's HTTP entry, and deploy
    the control plane (the Serve application ``control_plane(settings)`` builds, named
    ``rayline``). Returns the Ray cluster's address."""
    import ray
    from ray import serve

    address = ray.get_runtime_context().gcs_address if ray.is_initialized() else connect(settings, ray_address)
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(control_plane(settings), name=CONTROL_PLANE_APP, route_prefix="/", blocking=False)
    return address


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


def check_package_url(settings: Settings, window_s: float = 30.0, timeout_s: float = 5.0) -> None:
    """Once the control plane answers here, check that ``RAYLINE_PACKAGE_URL_BASE`` reaches it
    too: else every execution would fail on its package download. Whatever is not an answer
    (or is a 5xx) is retried for ``window_s``: a Kubernetes Service (kuberay/) routes to the head
    pod only once its readiness probe has seen the control plane answer."""
    base = settings.package_url_base
    if not base:
        return
    url = f"{base.rstrip('/')}/api/v1/health"
    deadline = time.monotonic() + window_s
    while True:
        try:
            response = httpx.get(url, timeout=timeout_s)
            if response.status_code == 200:
                return
            reason = f"{url} answered HTTP {response.status_code}"
            if response.status_code < 500:
                break  # something else answers there: waiting will not change it
        except httpx.HTTPError as error:
            reason = re.sub(r"^\[Errno -?\d+\] ", "", " ".join(str(error).split())) or type(error).__name__
            reason = reason[:1].lower() + reason[1:]  # retried, name resolution too (a headless Service)
        if time.monotonic() >= deadline:
            reason += f", for {window_s:g} s"
            break
        time.sleep(1.0)
    raise InvalidInput(
        f"RAYLINE_PACKAGE_URL_BASE={base} does not reach this platform ({reason}): set it to the URL "
        f"Ray's nodes reach the control plane at, e.g. http://<head-host>:{settings.http_port} (RAYLINE_HTTP_PORT)."
    )


def stop() -> None:
    """Stop everything this process started. Serve's own shutdown can hang for 30 s waiting for
    its controller; ending the Ray head ends Serve's processes with it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
