"""Low-latency deployments as Ray Serve applications: deploy, delete, observe, call.

Called from the control plane, itself a Serve replica, which Serve allows. Each deployment is an
application named after it, with route prefix ``/endpoints/<path>``; Serve's longest-prefix
routing sends everything else (including the paths of elastic or stopped deployments) to the
control plane at ``/``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingConfig

from rayline.domain.deployments import ReplicaConfig, parse_memory
from rayline.domain.outcomes import Outcome
from rayline.domain.pod_scaling import PodScaling
from rayline.runtime.elastic import runtime_env
from rayline.runtime.environment_errors import last_error, runtime_env_failure

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    status: str  # Serve's: DEPLOYING, RUNNING, DEPLOY_FAILED, UNHEALTHY, DELETING, NOT_STARTED
    message: str  # Serve's; once the application failed, why its pods do not run (pod_failure)
    replica_states: dict[str, int]


FAILED = ("DEPLOY_FAILED", "UNHEALTHY")
_SERVE_RETRIES = re.compile(r"The deployment failed to start (\d+) times in a row( during a rolling update)?")


def pod_failure(message: str) -> str:
    """Serve's message on a deployment whose pods failed to start, in words and bounded: the
    runtime env that could not be set up (the package download, or pip, with the cause), or the
    error the pod's constructor raised (the module's import), without Serve's boilerplate."""
    if "Failed to set up runtime environment" in message or "runtime env failed to be created" in message:
        return f"The pod's environment could not be set up: {runtime_env_failure(message)}"
    error = last_error(message.split("Error:\n", 1)[1] if "Error:\n" in message else message)
    retries = _SERVE_RETRIES.search(message)
    if retries is None:
        return error
    who = "The pods of the new version" if retries.group(2) else "The pod"
    return f"{who} failed to start {retries.group(1)} times in a row: {error}"


def _failure(app: Any) -> str:
    """Why a failed application's pods do not run: what its failed deployments say, else its own
    message (one deployment per application here, the pipeline's)."""
    told = [
        pod_failure(deployment.message)
        for deployment in app.deployments.values()
        if deployment.message and str(getattr(deployment.status, "value", deployment.status)) in FAILED
    ]
    if not told and app.message:
        told.append(pod_failure(app.message))
    return "\n".join(dict.fromkeys(told))


# Serve's autoscaler, tuned to react within seconds: pods report their load every second (Ray
# 2.60 reads it from the autoscaling config; later releases from the RAY_SERVE_*_METRIC_PUSH_
# INTERVAL_S variables, which rayline up sets as well), averaged over a few seconds.
METRICS_INTERVAL_S = 1.0
LOOK_BACK_PERIOD_S = 3.0
UPSCALE_DELAY_S = 0.5


def serving_options(scaling: PodScaling, max_parallel_executions: int, new: bool = True) -> dict[str, Any]:
    """How many pods Serve runs: a fixed number, or its autoscaler between min_pods and max_pods,
    adding a pod when each has ``max_parallel_executions`` calls (running or waiting) on average.
    A ``new`` application starts one pod at least (its import errors show at once, then it may go
    to standby); an existing one keeps the pods it has (Serve would reset them to the initial
    count at each change of its config)."""
    if scaling.fixed:
        return {"num_replicas": scaling.min_pods}
    config: dict[str, Any] = {
        "min_replicas": scaling.min_pods,
        "max_replicas": scaling.max_pods,
        "initial_replicas": max(1, scaling.min_pods) if new else None,
        "target_ongoing_requests": max_parallel_executions,
        "upscale_delay_s": UPSCALE_DELAY_S,
        "downscale_delay_s": scaling.scale_down_after_s,
        "downscale_to_zero_delay_s": scaling.standby_after_s,
        "metrics_interval_s": METRICS_INTERVAL_S,
        "look_back_period_s": LOOK_BACK_PERIOD_S,
    }
    with warnings.catch_warnings():  # metrics_interval_s is deprecated, but what 2.60 reads
        warnings.simplefilter("ignore", DeprecationWarning)
        return {"autoscaling_config": AutoscalingConfig(**config)}


def replica_options(
    package_uri: str,
    requirements: list[str],
    ram_request: str | None,
    gpu_request: int | None,
    resources: dict[str, float] | None = None,
) -> dict[str, Any]:
    # No CPU reserved unless asked: many warm deployments fit on a small machine.
    options: dict[str, Any] = {"num_cpus": 0, "runtime_env": runtime_env(package_uri, requirements)}
    if resources:  # RAYLINE_USER_CODE_RESOURCES: the nodes user code may run on
        options["resources"] = dict(resources)
    if ram_request:
        options["memory"] = parse_memory(ram_request)
    if gpu_request:
        options["num_gpus"] = gpu_request
    return options


class ServeDeployments:
    """``ServeRuntime`` on Ray Serve (``rayline.services.deployments``). ``build_app`` makes a
    deployment's Serve application from its replica config and actor options: the warm pod's
    code lives in ``serve_apps``, which the composition root hands in (runtime never imports it)."""

    def __init__(
        self, build_app: Callable[..., Application], user_code_resources: dict[str, float] | None = None
    ) -> None:
        self._build_app = build_app
        self._user_code_resources = user_code_resources or {}

    def deploy(
        self,
        config: ReplicaConfig,
        *,
        ram_request: str | None,
        gpu_request: int | None,
        package_uri: str,
        requirements: list[str],
        scaling: PodScaling,
    ) -> None:
        """Create the deployment's Serve application, or update it: its pods are replaced when
        ``config.version`` changed, else only their number follows ``scaling``."""
        app = self._build_app(
            config,
            ray_actor_options=replica_options(
                package_uri, requirements, ram_request, gpu_request, self._user_code_resources
            ),
            serving=serving_options(scaling, config.max_parallel_executions, new=self._is_new(config.deployment_name)),
        )
        # serve.run waits until the application is RUNNING, which would hold the API's request
        # while a pod imports its module (minutes, for a model); what it calls does not wait.
        serve._run(app, name=config.deployment_name, route_prefix=config.route_prefix, _blocking=False)

    def _is_new(self, name: str) -> bool:
        """No application of that name, or one being deleted (a disable just before): Serve
        would keep the count of the one it replaces, none."""
        state = self.states().get(name)
        return state is None or state.status == "DELETING"

    def delete(self, name: str) -> None:
        try:
            serve.delete(name, _blocking=False)
        except Exception:  # already gone, most likely; reconcile or the next delete tries again
            logger.warning("could not delete Serve application %s", name, exc_info=True)

    def states(self) -> dict[str, AppState]:
        result = {}
        for name, app in serve.status().applications.items():
            replicas: dict[str, int] = {}
            for deployment in app.deployments.values():
                for state, count in deployment.replica_states.items():
                    key = str(getattr(state, "value", state))
                    replicas[key] = replicas.get(key, 0) + count
            status = str(getattr(app.status, "value", app.status))
            result[name] = AppState(status, _failure(app) if status in FAILED else app.message or "", replicas)
        return result

    async def run(self, name: str, given: dict[str, Any]) -> Outcome:
        """One execution in the deployment's pod, through a Serve handle (not HTTP)."""
        return await serve.get_app_handle(name).run.remote(given)

    def run_blocking(self, name: str, given: dict[str, Any]) -> Outcome:
        """The same, from a thread that is not an event loop (the periodic scheduler's)."""
        return serve.get_app_handle(name).run.remote(given).result()
