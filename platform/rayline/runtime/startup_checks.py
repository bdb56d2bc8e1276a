"""What `rayline up` checks before it goes on, so that a mistake is one line, not a hang: the Ray
cluster that ``--ray-address`` names answers, and once the control plane is up, Ray's nodes reach
it at ``RAYLINE_PACKAGE_URL_BASE`` (where they download pipeline packages)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rayline.config import Settings
from rayline.errors import InvalidInput

# What `--ray-address` should be, in every message that refuses one.
_GIVE_AN_ADDRESS = "start one with `ray start --head`, or give the GCS address (host:port) it printed"


def shown(value: str) -> str:
    """A value given on the command line, as a message quotes it: on one line."""
    return value if value and value.isprintable() and " " not in value else repr(value)


@dataclass(frozen=True)
class RayAddress:
    """The cluster a ``--ray-address`` names, resolved (``check_ray_address``): what ``connect``
    attaches to, with no second resolution (``RAY_ADDRESS`` is not read again)."""

    address: str  # host:port
    named: str  # how a message names it, e.g. "--ray-address 10.0.0.5:6379"
    # `auto` found the cluster last started on this machine: Ray turns on its token
    # authentication for it, as for a local cluster, when this machine has a token.
    found_locally: bool = False


def check_ray_address(ray_address: str, timeout_s: float = 3.0) -> RayAddress:
    """Refuse, at once and before anything is stored, a ``--ray-address`` where no Ray cluster
    can answer: malformed, a Ray Client address, or a host:port nobody listens on (``ray.init``
    would retry for minutes). ``auto`` is resolved as ``ray.init`` resolves it (``RAY_ADDRESS``,
    else the address of the cluster last started on this machine, else a running one). Returns
    the address checked, for ``connect``."""
    from ray._common.network_utils import parse_address
    from ray._private import services

    address = ray_address.strip()
    if not address:  # e.g. `--ray-address "$HEAD"` with HEAD unset
        raise InvalidInput(
            "--ray-address is empty: give the GCS address (host:port) of the Ray cluster to attach to, "
            "or leave it out to start a local Ray head."
        )
    given, origin = f"--ray-address {shown(address)}", "from --ray-address"
    found_locally = False
    if address == "auto":
        from_environment = os.environ.get("RAY_ADDRESS", "").strip()
        if from_environment and from_environment != "auto":
            address, origin = from_environment, "from RAY_ADDRESS, read for --ray-address auto"
            given = f"RAY_ADDRESS={shown(address)} (read for --ray-address auto)"
        else:
            try:
                address = str(services.canonicalize_bootstrap_address("auto"))
            except (ConnectionError, ValueError):
                raise InvalidInput(
                    "--ray-address auto found no Ray cluster (RAY_ADDRESS is unset and none was started "
                    f"on this machine): {_GIVE_AN_ADDRESS}."
                ) from None
            origin = "found for --ray-address auto: the cluster last started on this machine"
            given = f"{shown(address)} ({origin})"
            found_locally = True
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
            return RayAddress(address, given, found_locally)
    except socket.gaierror:
        reason = f"cannot resolve the host {shown(host)}"
    except ConnectionRefusedError:
        reason = "connection refused"
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
    raise InvalidInput(f"no Ray cluster answers at {shown(address)} ({reason}; {origin}): {_GIVE_AN_ADDRESS}.")


def _package_url_probe() -> Callable[[str, float, float], tuple[bool, str, str]]:
    """What a Ray node runs to GET the package URL base: defined here, inside a function, so
    that Ray ships its code by value. It needs nothing on the node but Python and Ray (no
    rayline import, no httpx)."""

    def probe(url: str, window_s: float, timeout_s: float) -> tuple[bool, str, str]:
        """``(True, "", node)`` once ``url`` answers HTTP 200, else ``(False, reason, node)``, with
        the node's Ray id. Whatever is not an answer (or is a 5xx) is retried for ``window_s``;
        another answer is final."""
        import http.client
        import re
        import time
        import urllib.error
        import urllib.request

        import ray

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *_: Any, **__: Any) -> None:
                return None  # a redirect is an answer of its own, as for the API's clients

        opener = urllib.request.build_opener(NoRedirect)
        node = ray.get_runtime_context().get_node_id()
        deadline = time.monotonic() + window_s
        while True:
            try:
                with opener.open(url, timeout=timeout_s) as response:
                    status = response.status
                if status == 200:
                    return True, "", node
                reason = f"{url} answered HTTP {status}"
                break  # a 2xx other than 200: something else answers there
            except urllib.error.HTTPError as error:
                reason = f"{url} answered HTTP {error.code}"
                if error.code < 500:
                    break  # something else answers there: waiting will not change it
            except (OSError, http.client.HTTPException, ValueError) as error:
                cause = error.reason if isinstance(error, urllib.error.URLError) else error
                text = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
                text = re.sub(r"^\[Errno -?\d+\] ", "", " ".join(text.split())) or type(cause).__name__
                reason = text[:1].lower() + text[1:]  # retried, name resolution too (a headless Service)
            if time.monotonic() >= deadline:
                reason += f", for {window_s:g} s"
                break
            time.sleep(1.0)
        return False, reason, node

    return probe


def check_package_url(
    settings: Settings, window_s: float = 30.0, timeout_s: float = 5.0, schedule_timeout_s: float = 60.0
) -> str | None:
    """Once the control plane answers, check that ``RAYLINE_PACKAGE_URL_BASE`` reaches it from a
    node where user code runs (a Ray task that asks for ``RAYLINE_USER_CODE_RESOURCES``): else
    every execution would fail on its package download. Not from here: on Kubernetes the base is
    a Service that routes to this very pod, which a cluster without hairpin NAT never lets it
    reach, though the nodes do. Whatever is not an answer (or is a 5xx) is retried for
    ``window_s``: a Kubernetes Service (kuberay/) routes to the head pod only once its readiness
    probe has seen the control plane answer. Raises ``InvalidInput`` when it does not reach it;
    returns why it could not be checked (no node took the task within ``schedule_timeout_s``:
    the autoscaler may still be adding one), or None."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    base = settings.package_url_base
    if not base:
        return None
    url = f"{base.rstrip('/')}/api/v1/health"
    resources = settings.user_code_resources
    # No runtime_env: the job has none, and the check must not itself need a package download.
    options: dict[str, Any] = {"num_cpus": 0, "max_retries": 0}
    if resources:
        options["resources"] = dict(resources)

    def could_not(why: str) -> str:
        return f"could not check RAYLINE_PACKAGE_URL_BASE from a node {why}; continuing"

    def place() -> None:
        return None

    # First a task that returns at once: whether a node takes the check at all, told apart from
    # the time the check itself takes.
    placed = ray.remote(place).options(**options).remote()
    try:
        if not ray.wait([placed], timeout=schedule_timeout_s)[0]:
            ray.cancel(placed)  # the autoscaler need not add a node for it
            offers = f"offers {json.dumps(resources)} (RAYLINE_USER_CODE_RESOURCES)" if resources else "took it"
            return could_not(
                f"within {schedule_timeout_s:g} s (no node {offers} yet: the Ray autoscaler may still be adding one)"
            )
        ray.get(placed)
        probe = ray.remote(_package_url_probe()).options(**options).remote(url, window_s, timeout_s)
        ending_s = schedule_timeout_s + window_s + timeout_s
        try:
            reached, reason, node = ray.get(probe, timeout=ending_s)
        except GetTimeoutError:
            ray.cancel(probe, force=True)
            return could_not(f"(the check did not end within {ending_s:g} s)")
    except RayError as error:  # e.g. its node or worker died
        return could_not(f"(the check failed: {(str(error).strip().splitlines() or [type(error).__name__])[0]})")
    if reached:
        return None
    # Where the node is, as Ray's node table has it (a process on it would only guess its address).
    where = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), None)
    reason += f", from the Ray node at {where}" if where else f", from the Ray node {node[:8]}"
    raise InvalidInput(
        f"RAYLINE_PACKAGE_URL_BASE={base} does not reach this platform ({reason}): set it to the URL "
        f"Ray's nodes reach the control plane at, e.g. http://<head-host>:{settings.http_port} (RAYLINE_HTTP_PORT)."
    )
