"""``RaylineSdk``: the notebook's handle on a Rayline platform, over its REST API.

Method names, parameters and return shapes follow craft-ai-sdk 0.74.7, so notebooks written for
Craft AI's platform run against Rayline with few changes.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from rayline.sdk.errors import SdkException
from rayline.sdk.io import Input, InputSource, Output, OutputDestination
from rayline.sdk.packaging import pack_folder
from rayline.sdk.progress import StatusLine

DEFAULT_ENVIRONMENT_URL = "http://127.0.0.1:8000"

# How long a wait may last when the caller gives no timeout_s: a pipeline or a deployment, and an
# execution (those have no timeout_s of their own: a pipeline may legitimately run for hours).
_DEFAULT_WAIT_S = 3600.0
_EXECUTION_WAIT_S = 24 * 3600.0
# Polls: the first pause, how much it grows after each poll, and its ceiling. A request that the
# server held (wait_for_completion) longer than the pause is followed by the next one at once.
_POLL_FIRST_S, _POLL_GROWTH, _POLL_MAX_S = 0.25, 1.5, 2.0

# What the server sends (rayline.services.pipelines, rayline.domain.deployments), repeated here so
# that importing the SDK loads nothing of the server.
_PIPELINE_READY = "ready"
_DEPLOYMENT_FINAL_STATUSES = ("up", "creation_failed", "disabled", "standby")

_T = TypeVar("_T")


def _default_token() -> str | None:
    token = os.environ.get("RAYLINE_SDK_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("RAYLINE_HOME", "~/.rayline")).expanduser() / "sdk-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _epoch_ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a naive datetime is taken as UTC, like every date of the platform
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _form_value(value: Any) -> str:
    """How one scalar travels in a multipart form: the server parses it back by data type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _encoded_default(declaration: dict) -> dict:
    """A default value travels as one form field: as is for a string input, else as JSON (the
    server parses it back by data type), so lists and dicts keep their shape and types."""
    if "default_value" in declaration and declaration["data_type"] != "string":
        declaration = {**declaration, "default_value": json.dumps(declaration["default_value"])}
    return declaration


def _flatten_form(data: Any, key: str) -> list[tuple[str, str]]:
    # Nested fields as `inputs[0][name]`, the form craft-ai-sdk sends, so one parser serves both.
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _flatten_form(v, f"{key}[{k}]")]
    if isinstance(data, list):
        return [pair for i, v in enumerate(data) for pair in _flatten_form(v, f"{key}[{i}]")]
    return [(key, _form_value(data))]


def _as_list_of(kind: type, values: Any, argument: str) -> list:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, kind) for v in values):
        raise ValueError(f"'{argument}' must be a list of {kind.__name__} objects.")
    return list(values)


def _is_file(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, io.IOBase, os.PathLike))


def _file_part(name: str, value: Any) -> tuple[str, Any]:
    """A file input as a multipart part: a path (str or Path), bytes, or an open binary file."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"Input {name!r} is a file input: {str(path)!r} is not a file.")
        return path.name, path.read_bytes()
    if isinstance(value, (bytes, bytearray)):
        return name, bytes(value)
    if isinstance(value, io.IOBase) and value.readable():
        return Path(getattr(value, "name", name) or name).name, value.read()
    raise ValueError(f"Input {name!r} is a file input: give a path, bytes or an open binary file.")


def _split_files(inputs: dict[str, Any], file_inputs: set[str]) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """Inputs as JSON values and file parts (files by declaration, or by their Python type)."""
    values, files = {}, {}
    for name, value in inputs.items():
        if name in file_inputs or _is_file(value):
            files[name] = _file_part(name, value)
        else:
            values[name] = value
    return values, files


def _mappings(kind: type, values: Any, argument: str) -> list[dict] | None:
    """Mappings on the wire, or None when not given (the server then keeps its default)."""
    return None if values is None else [m.to_dict() for m in _as_list_of(kind, values, argument)]


def _pod_settings(
    min_pods: int | None, max_pods: int | None, scale_down_after_s: float | None, standby_after_s: float | None
) -> dict[str, Any]:
    """The pod settings given, checked as far as the client can (the platform checks the rest)."""
    given: dict[str, Any] = {}
    for name, value, low in (("min_pods", min_pods, 0), ("max_pods", max_pods, 1)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}.")
            given[name] = value
    for name, seconds in (("scale_down_after_s", scale_down_after_s), ("standby_after_s", standby_after_s)):
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
                raise ValueError(f"{name} must be a number of seconds greater than 0, not {seconds!r}.")
            given[name] = seconds
    if min_pods is not None and max_pods is not None and max_pods < min_pods:
        raise ValueError(f"max_pods ({max_pods}) must be at least min_pods ({min_pods}).")
    return given


def _check_timeout(timeout_s: float | None) -> None:
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(
            f"timeout_s must be greater than 0, or None to wait up to {_seconds(_DEFAULT_WAIT_S)} s (the default)."
        )


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _wait_until(
    fetch: Callable[[], _T],
    done: Callable[[_T], bool],
    timeout_s: float,
    what: str,
    *,
    status: Callable[[_T], str],
    hint: str = "",
    progress: StatusLine | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """Call ``fetch`` until ``done`` holds for what it returns, and return that.

    Every wait of the SDK goes through here. One call per pause at most: the pause starts at
    ``_POLL_FIRST_S`` and grows by ``_POLL_GROWTH`` up to ``_POLL_MAX_S``; a call that the server
    held longer than the pause is followed by the next one at once. Once ``timeout_s`` has passed,
    ``SdkException(name="TimeoutException")`` says what was waited for, how long, and the last
    status seen (``what`` reads "pipeline 'p' to be ready"; ``hint`` says what to do next).
    ``progress`` shows each status seen, and the last one on a line of its own at the end.
    """
    deadline = clock() + timeout_s
    pause = _POLL_FIRST_S
    last: str | None = None
    try:
        while True:
            began = clock()
            result = fetch()
            last = status(result)
            if done(result):
                return result
            now = clock()
            if now >= deadline:
                message = f"Gave up waiting for {what} after {_seconds(timeout_s)} s; its status was still {last}."
                raise SdkException(f"{message} {hint}" if hint else message, name="TimeoutException")
            if progress is not None:
                progress.update(last)
            rest = min(pause - (now - began), deadline - now)
            if rest > 0:
                sleep(rest)
            pause = min(pause * _POLL_GROWTH, _POLL_MAX_S)
    finally:
        if progress is not None and last is not None:
            progress.close(last)


class RaylineSdk:
    """Client for a Rayline environment.

    Args:
        sdk_token: the platform's SDK token. Defaults to ``RAYLINE_SDK_TOKEN``, then to the file
            ``$RAYLINE_HOME/sdk-token`` that ``rayline up`` writes on this machine.
        environment_url: the platform's URL. Defaults to ``RAYLINE_ENVIRONMENT_URL``, then to
            ``http://127.0.0.1:8000``.
        http_timeout_s: how long one HTTP request may take.
        show_progress: a status line while waiting for a pipeline or a deployment; by default only
            in a notebook or a terminal, never when output goes to a file.
    """

    # Where requests go; None for the network. Tests set an ``httpx.MockTransport`` here (on a
    # subclass), so that the constructor's signature stays the public one.
    _transport: httpx.BaseTransport | None = None

    def __init__(
        self,
        sdk_token: str | None = None,
        environment_url: str | None = None,
        http_timeout_s: float = 120.0,
        show_progress: bool | None = None,
    ) -> None:
        self.show_progress = show_progress
        self.environment_url = (
            environment_url or os.environ.get("RAYLINE_ENVIRONMENT_URL") or DEFAULT_ENVIRONMENT_URL
        ).rstrip("/")
        token = sdk_token or _default_token()
        if not token:
            raise ValueError(
                "No SDK token: pass sdk_token=..., set RAYLINE_SDK_TOKEN, or run this on the machine "
                "where `rayline up` wrote $RAYLINE_HOME/sdk-token."
            )
        self._client = httpx.Client(
            base_url=f"{self.environment_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=http_timeout_s,
            transport=self._transport,
        )

    def __repr__(self) -> str:
        return f"RaylineSdk(environment_url={self.environment_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RaylineSdk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP, and the one place errors are mapped to SdkException -----------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except (httpx.TransportError, httpx.TooManyRedirects) as error:
            raise SdkException(
                f"Could not reach Rayline at {self.environment_url} ({error}). Is the platform "
                "running (`make up`), and is environment_url right?",
                name="RequestError",
            ) from error

    @staticmethod
    def _parse(response: httpx.Response) -> Any:
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        raise SdkException(
            body.get("message") or f"The platform answered {response.status_code}: {response.text[:500]}",
            status_code=response.status_code,
            name=body.get("name"),
            request_id=body.get("request_id"),
            additional_data=body.get("additional_data"),
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._parse(self._send(method, path, **kwargs))

    # --- Pipelines -------------------------------------------------------------------------------

    def create_pipeline(
        self,
        pipeline_name: str,
        function_path: str,
        function_name: str,
        description: str | None = None,
        container_config: dict | None = None,
        inputs: Sequence[Input] | None = None,
        outputs: Sequence[Output] | None = None,
        wait_for_completion: bool = True,
        timeout_s: float | None = None,
    ) -> dict:
        """Create a pipeline from a local folder: its code is uploaded and kept by the platform.

        ``container_config`` takes ``local_folder`` (required), ``requirements_path`` (a pip
        requirements file inside the folder, installed for every execution) and
        ``included_folders`` (upload only these files and folders of it).
        """
        config = dict(container_config or {})
        if "local_folder" not in config:
            raise ValueError("container_config must give 'local_folder', the folder that holds the pipeline's code.")
        unsupported = sorted(set(config) - {"local_folder", "requirements_path", "included_folders", "language"})
        if unsupported:
            raise ValueError(
                f"container_config keys {unsupported} are not supported by Rayline; "
                "give local_folder, requirements_path or included_folders."
            )
        inputs = _as_list_of(Input, inputs, "inputs")
        outputs = _as_list_of(Output, outputs, "outputs")
        _check_timeout(timeout_s)
        included = config.pop("included_folders", None)
        if included:
            included = list(dict.fromkeys([*included, function_path, config.get("requirements_path")]))
            included = [item for item in included if item]
        archive = pack_folder(config.pop("local_folder"), included)

        fields = [("pipeline_name", pipeline_name), ("function_path", function_path), ("function_name", function_name)]
        if description is not None:
            fields.append(("description", description))
        for key, value in config.items():
            if value is not None:
                fields.append((f"container_config[{key}]", str(value)))
        fields += _flatten_form([_encoded_default(i.to_dict()) for i in inputs], "inputs")
        fields += _flatten_form([o.to_dict() for o in outputs], "outputs")
        self._request(
            "POST",
            "/pipelines",
            data=dict(fields),
            files={"step_file": ("pipeline.tar.gz", archive, "application/gzip")},
        )
        return self.get_pipeline(pipeline_name, wait_for_completion=wait_for_completion, timeout_s=timeout_s)

    def get_pipeline(
        self, pipeline_name: str, wait_for_completion: bool = False, timeout_s: float | None = None
    ) -> dict:
        """Get a pipeline: ``{"parameters": {...}, "creation_info": {...}}``.

        With ``wait_for_completion``, wait until its status is ``ready`` (the platform makes a
        pipeline ready as it stores it), for ``timeout_s`` seconds, or an hour by default.
        """
        _check_timeout(timeout_s)

        def fetch() -> dict:
            return self._request(
                "GET",
                f"/pipelines/{pipeline_name}",
                params={"wait_for_completion": "true"} if wait_for_completion else None,
            )

        if wait_for_completion:
            pipeline = _wait_until(
                fetch,
                lambda p: p["creation_info"]["status"] == _PIPELINE_READY,
                _DEFAULT_WAIT_S if timeout_s is None else timeout_s,
                f"pipeline {pipeline_name!r} to be ready",
                status=lambda p: p["creation_info"]["status"],
                hint=f"Check it later with get_pipeline({pipeline_name!r}).",
                progress=StatusLine(f"Pipeline {pipeline_name!r}", self.show_progress),
            )
        else:
            pipeline = fetch()
        latest = self._request("GET", f"/pipelines/{pipeline_name}/executions/latest")
        pipeline["creation_info"]["last_execution_id"] = (latest or {}).get("execution_id")
        return pipeline

    def list_pipelines(self) -> list[dict]:
        """List pipelines: ``[{pipeline_name, created_at, status}]``."""
        return self._request("GET", "/pipelines")

    def delete_pipeline(self, pipeline_name: str, force_deployments_deletion: bool = False) -> dict:
        """Delete a pipeline. Refused while deployments use it, unless ``force_deployments_deletion``."""
        return self._request(
            "DELETE",
            f"/pipelines/{pipeline_name}",
            params={"force_deployments_deletion": str(bool(force_deployments_deletion)).lower()},
        )

    # --- Executions ------------------------------------------------------------------------------

    def run_pipeline(
        self,
        pipeline_name: str,
        inputs: dict[str, Any] | None = None,
        inputs_mapping: Sequence[InputSource] | None = None,
        outputs_mapping: Sequence[OutputDestination] | None = None,
        wait_for_completion: bool = True,
    ) -> dict:
        """Run a pipeline once, in a fresh worker process.

        Returns ``{"execution_id"}``, plus ``"outputs"`` (a dict by output name) when waiting. A
        failed execution raises ``SdkException``; its logs say why.
        """
        if inputs is not None and not isinstance(inputs, dict):
            raise ValueError("'inputs' must be a dict of input name to value.")
        file_inputs = set()
        if inputs:  # a file input may be given as a path string: its declaration says so
            declared = self._request("GET", f"/pipelines/{pipeline_name}")["parameters"]["inputs"]
            file_inputs = {item["name"] for item in declared if item["data_type"] == "file"}
        values, files = _split_files(inputs or {}, file_inputs)
        form = {"json_inputs": json.dumps(values)}
        for field, value in (
            ("inputs_mapping", _mappings(InputSource, inputs_mapping, "inputs_mapping")),
            ("outputs_mapping", _mappings(OutputDestination, outputs_mapping, "outputs_mapping")),
        ):
            if value is not None:
                form[field] = json.dumps(value)
        started = self._request("POST", f"/pipelines/{pipeline_name}/run", data=form, files=files or None)
        if not wait_for_completion:
            return {"execution_id": started["execution_id"]}
        return self.retrieve_pipeline_execution_outputs(started["execution_id"])

    def retrieve_pipeline_execution_outputs(self, execution_id: str) -> dict:
        """Wait for an execution to end (for up to a day) and return ``{"execution_id", "outputs":
        {name: value}}``. A failed execution raises ``SdkException``."""
        # The server holds each request a few seconds, then answers 307 while it still runs.
        response = _wait_until(
            lambda: self._send(
                "GET",
                f"/executions/{execution_id}/outputs",
                params={"wait_for_completion": "true"},
                follow_redirects=False,
            ),
            lambda r: r.status_code != 307,
            _EXECUTION_WAIT_S,
            f"execution {execution_id!r} to end",
            status=_execution_status,
            hint=f"Get its outputs later with retrieve_pipeline_execution_outputs({execution_id!r}).",
        )
        body = self._parse(response)
        outputs = {}
        for item in body["outputs"]:
            name, value = item["pipeline_output_name"], item.get("value")
            # As craft-ai-sdk: a file that went to the data store is described, not downloaded.
            if item["data_type"] == "file" and item.get("mapping_type") not in ("is_null", "datastore") and value:
                value = self._file(f"/executions/{execution_id}/outputs/{name}")
            outputs[name] = value
        return {"execution_id": execution_id, "outputs": outputs}

    def _file(self, path: str, **kwargs: Any) -> bytes:
        response = self._send("GET", path, **kwargs)
        if response.status_code >= 400:
            self._parse(response)  # raises SdkException with the platform's message
        return response.content

    def get_pipeline_execution(self, execution_id: str) -> dict:
        """Get an execution: status, dates, and each input and output with its source or destination."""
        execution = self._request("GET", f"/executions/{execution_id}")
        execution["inputs"] = [_with_kind(item, "source") for item in execution.get("inputs", [])]
        execution["outputs"] = [_with_kind(item, "destination") for item in execution.get("outputs", [])]
        return execution

    def list_pipeline_executions(self, pipeline_name: str) -> list[dict]:
        """List a pipeline's executions, newest first."""
        return self._request("GET", f"/pipelines/{pipeline_name}/executions")

    def get_pipeline_execution_logs(
        self,
        execution_id: str,
        from_datetime: datetime | None = None,
        to_datetime: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Get what an execution printed: ``[{timestamp, message, stream}]``, oldest first."""
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError("limit must be a positive integer, or None.")
        body = {
            k: v
            for k, v in (("from", _epoch_ms(from_datetime)), ("to", _epoch_ms(to_datetime)), ("limit", limit))
            if v is not None
        }
        logs_by_step = self._request("POST", f"/executions/{execution_id}/logs", json=body)
        return logs_by_step[0] if logs_by_step else []

    def delete_pipeline_execution(self, execution_id: str) -> dict:
        """Delete an ended execution, with its logs."""
        return self._request("DELETE", f"/executions/{execution_id}")

    # --- Deployments -----------------------------------------------------------------------------

    def create_deployment(
        self,
        pipeline_name: str,
        deployment_name: str,
        execution_rule: str,
        mode: str = "elastic",
        schedule: str | None = None,
        endpoint_url_path: str | None = None,
        inputs_mapping: Sequence[InputSource] | None = None,
        outputs_mapping: Sequence[OutputDestination] | None = None,
        description: str | None = None,
        enable_parallel_executions: bool | None = None,
        max_parallel_executions_per_pod: int | None = None,
        ram_request: str | None = None,
        gpu_request: int | None = None,
        wait_for_completion: bool = True,
        timeout_s: float | None = None,
        execution_timeout_s: float | None = None,
        endpoint_token: str | None = None,
        max_queued_executions: int | None = None,
        min_pods: int | None = None,
        max_pods: int | None = None,
        scale_down_after_s: float | None = None,
        standby_after_s: float | None = None,
    ) -> dict:
        """Deploy a pipeline. ``execution_rule="endpoint"`` makes it callable at
        ``POST {environment_url}/endpoints/<endpoint_url_path>`` with its endpoint token.

        ``mode="elastic"`` runs each call in a fresh worker process; ``mode="low_latency"`` keeps a
        warm pod that imports the pipeline's module once (its globals are shared by every call).
        There, one execution runs at a time, or up to ``max_parallel_executions_per_pod`` (default
        6) with ``enable_parallel_executions=True``: ``def`` functions in threads, ``async def``
        ones as coroutines. Calls beyond wait in arrival order; past ``max_queued_executions``
        waiting (default 1000) a call gets 503 with ``Retry-After``. An execution running longer
        than ``execution_timeout_s`` ends Failed and its caller gets 504.

        A low-latency deployment runs from ``min_pods`` (default 1) to ``max_pods`` (default
        ``max(1, min_pods)``) pods, each importing the module once; Ray Serve's autoscaler adds a
        pod when the others are busy and removes one after ``scale_down_after_s`` (default 60) of
        low load. With ``min_pods=0`` the last pod goes after ``standby_after_s`` (default 600)
        without a call: the deployment is in ``standby``, holding no memory or GPU, and the next
        call wakes it (it waits while a pod starts, then runs).
        Waits until the deployment is up unless ``wait_for_completion=False``.
        """
        if execution_rule not in ("endpoint", "periodic"):
            raise ValueError("execution_rule must be 'endpoint' or 'periodic'.")
        if mode not in ("elastic", "low_latency"):
            raise ValueError("mode must be 'elastic' or 'low_latency'.")
        if schedule is not None and execution_rule != "periodic":
            raise ValueError("schedule only goes with execution_rule='periodic'.")
        if execution_rule != "endpoint" and (endpoint_url_path is not None or endpoint_token is not None):
            raise ValueError("endpoint_url_path and endpoint_token only go with execution_rule='endpoint'.")
        pods = _pod_settings(min_pods, max_pods, scale_down_after_s, standby_after_s)
        if pods and mode != "low_latency":
            raise ValueError(f"{', '.join(pods)}: pod settings only go with mode='low_latency'.")
        _check_timeout(timeout_s)
        body = {
            "pipeline_name": pipeline_name,
            "name": deployment_name,
            "description": description,
            "mode": mode,
            "enable_parallel_executions": enable_parallel_executions,
            "max_parallel_executions_per_pod": max_parallel_executions_per_pod,
            "max_queued_executions": max_queued_executions,
            "ram_request": ram_request,
            "gpu_request": gpu_request,
            "execution_timeout_s": execution_timeout_s,
            "schedule": schedule,
            "endpoint_url_path": endpoint_url_path,
            "endpoint_token": endpoint_token,
            "inputs_mapping": _mappings(InputSource, inputs_mapping, "inputs_mapping"),
            "outputs_mapping": _mappings(OutputDestination, outputs_mapping, "outputs_mapping"),
            **pods,
        }
        path = "/endpoints" if execution_rule == "endpoint" else "/periodic-deployment"
        self._request("POST", path, json={k: v for k, v in body.items() if v is not None})
        return self.get_deployment(deployment_name, wait_for_completion=wait_for_completion, timeout_s=timeout_s)

    def get_deployment(
        self, deployment_name: str, wait_for_completion: bool = False, timeout_s: float | None = None
    ) -> dict:
        """Get a deployment; with ``wait_for_completion``, wait until its status is final
        (``up``, ``creation_failed``, ``disabled`` or ``standby``), for ``timeout_s`` seconds, or an
        hour by default."""
        _check_timeout(timeout_s)

        def fetch() -> dict:
            # With wait_for_completion the server holds the request a few seconds while not final.
            return self._request(
                "GET",
                f"/deployments/{deployment_name}",
                params={"wait_for_completion": "true"} if wait_for_completion else None,
            )

        if wait_for_completion:
            deployment = _wait_until(
                fetch,
                lambda d: d["status"] in _DEPLOYMENT_FINAL_STATUSES,
                _DEFAULT_WAIT_S if timeout_s is None else timeout_s,
                f"deployment {deployment_name!r} to reach a final status (up, creation_failed, disabled or standby)",
                status=lambda d: d["status"],
                hint=f"Check it later with get_deployment({deployment_name!r}).",
                progress=StatusLine(f"Deployment {deployment_name!r}", self.show_progress),
            )
        else:
            deployment = fetch()
        if wait_for_completion and deployment["status"] == "creation_failed":
            lines = self.get_deployment_logs(deployment_name)[-15:]
            tail = "\n".join(f"  {line['message']}" for line in lines)
            raise SdkException(
                f"The deployment {deployment_name!r} failed to start. Its last log lines:\n{tail}",
                name="CreationFailedException",
            )
        latest = self._request("GET", f"/deployments/{deployment_name}/executions/latest")
        deployment["last_execution_id"] = (latest or {}).get("execution_id")
        return deployment

    def list_deployments(self) -> list[dict]:
        """List deployments: ``[{name, pipeline_name, execution_rule, mode, is_enabled, status, created_at}]``."""
        return self._request("GET", "/deployments")

    def update_deployment(
        self,
        deployment_name: str,
        is_enabled: bool | None = None,
        inputs_mapping: Sequence[InputSource] | None = None,
        outputs_mapping: Sequence[OutputDestination] | None = None,
        schedule: str | None = None,
        wait_for_completion: bool = True,
        timeout_s: float | None = None,
        min_pods: int | None = None,
        max_pods: int | None = None,
        scale_down_after_s: float | None = None,
        standby_after_s: float | None = None,
    ) -> dict:
        """Enable or disable a deployment, or change a low-latency one's pod settings
        (``min_pods``, ``max_pods``, ``scale_down_after_s``, ``standby_after_s``: applied to the
        running pods, none is restarted). Called with no change on a low-latency deployment, it
        reloads the pods (the module is imported again; the new pods are a new ``version``)."""
        _check_timeout(timeout_s)
        body = {
            "is_enabled": is_enabled,
            "schedule": schedule,
            "inputs_mapping": _mappings(InputSource, inputs_mapping, "inputs_mapping"),
            "outputs_mapping": _mappings(OutputDestination, outputs_mapping, "outputs_mapping"),
            **_pod_settings(min_pods, max_pods, scale_down_after_s, standby_after_s),
        }
        self._request("PATCH", f"/deployments/{deployment_name}", json={k: v for k, v in body.items() if v is not None})
        return self.get_deployment(deployment_name, wait_for_completion=wait_for_completion, timeout_s=timeout_s)

    def delete_deployment(self, deployment_name: str) -> dict:
        """Delete a deployment; its endpoint disappears. Its past executions stay readable."""
        return self._request("DELETE", f"/deployments/{deployment_name}")

    def get_deployment_logs(
        self,
        deployment_name: str,
        from_datetime: datetime | None = None,
        to_datetime: datetime | None = None,
        limit: int | None = None,
        type: str = "deployment",
    ) -> list[dict]:
        """The deployment's own logs (pods created, module imported, what it printed at import,
        executions started, failures): ``[{timestamp, message, stream, pod_id, type}]``."""
        if type != "deployment":
            raise ValueError("type must be 'deployment'.")
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError("limit must be a positive integer, or None.")
        body = {
            k: v
            for k, v in (("from", _epoch_ms(from_datetime)), ("to", _epoch_ms(to_datetime)), ("limit", limit))
            if v is not None
        }
        return self._request("POST", f"/deployments/{deployment_name}/logs", json=body)

    # --- Endpoints -------------------------------------------------------------------------------

    def _endpoint(self, endpoint_name: str) -> tuple[str, dict]:
        deployment = self._request("GET", f"/deployments/{endpoint_name}")
        return f"{self.environment_url}/endpoints/{deployment.get('endpoint_url_path') or endpoint_name}", deployment

    def trigger_endpoint(
        self,
        endpoint_name: str,
        endpoint_token: str | None = None,
        inputs: dict[str, Any] | None = None,
        wait_for_completion: bool = True,
    ) -> dict:
        """Call an endpoint deployment: with its endpoint token over its HTTP route, or without one
        through the API with the SDK token. Returns ``{"execution_id"}``, plus ``"outputs"`` when
        waiting. File inputs are given as bytes, an open binary file or a ``pathlib.Path``; a file
        output comes back as bytes."""
        if inputs is not None and not isinstance(inputs, dict):
            raise ValueError("'inputs' must be a dict of input name to value.")
        values, files = _split_files(inputs or {}, set())
        # JSON without files; with files, multipart with each other value JSON-encoded.
        payload = {"files": files, "data": {k: json.dumps(v) for k, v in values.items()}} if files else {"json": values}
        if endpoint_token is None:
            started = self._request("POST", f"/deployments/{endpoint_name}/executions", **payload)
            if not wait_for_completion:
                return {"execution_id": started["execution_id"]}
            return self.retrieve_pipeline_execution_outputs(started["execution_id"])
        url, deployment = self._endpoint(endpoint_name)
        headers = {"Authorization": f"EndpointToken {endpoint_token}"}
        response = self._send("POST", url, follow_redirects=False, headers=headers, **payload)
        if response.status_code == 303:  # still running after the server's wait: its result is at Location
            execution_id = self._parse(response)["execution_id"]
            if not wait_for_completion:
                return {"execution_id": execution_id}
            result_url = str(response.url.join(response.headers["location"]))
            return self._endpoint_result(endpoint_name, result_url, execution_id, headers)
        if response.status_code < 400 and response.headers.get("content-type", "").startswith("application/octet"):
            execution_id = response.headers.get("x-rayline-execution-id", "")
            name = next(m["endpoint_output_name"] for m in deployment["outputs_mapping"] if "endpoint_output_name" in m)
            outputs = {name: response.content}
        else:
            body = self._parse(response)
            execution_id, outputs = body["execution_id"], body.get("output", {})
        if not wait_for_completion:
            return {"execution_id": execution_id}
        return {"execution_id": execution_id, "outputs": outputs}

    def retrieve_endpoint_results(
        self, endpoint_name: str, execution_id: str, endpoint_token: str | None = None
    ) -> dict:
        """The outputs of an endpoint's execution, waiting for it to end (a file output as bytes)."""
        if endpoint_token is None:
            return self.retrieve_pipeline_execution_outputs(execution_id)
        url = (
            f"{self._endpoint(endpoint_name)[0].replace('/endpoints/', '/endpoints/v1/', 1)}/executions/{execution_id}"
        )
        # In a header, not in the URL (?token=), where access logs would keep it.
        headers = {"Authorization": f"EndpointToken {endpoint_token}"}
        return self._endpoint_result(endpoint_name, url, execution_id, headers)

    def _endpoint_result(self, endpoint_name: str, url: str, execution_id: str, headers: dict[str, str]) -> dict:
        """Wait at an endpoint's result URL (held a few seconds, then 307 to itself while the
        execution runs) and return its outputs, a file output as bytes."""
        response = _wait_until(
            lambda: self._send("GET", url, headers=headers, follow_redirects=False),
            lambda r: r.status_code != 307,
            _EXECUTION_WAIT_S,
            f"execution {execution_id!r} to end",
            status=_execution_status,
            hint=(
                f"Get its outputs later with retrieve_endpoint_results({endpoint_name!r}, {execution_id!r}, "
                "endpoint_token=...)."
            ),
        )
        body = self._parse(response)
        outputs = {
            name: self._file(item["url"], headers=headers) if "url" in item else item.get("value")
            for name, item in body.get("outputs", {}).items()
        }
        return {"execution_id": execution_id, "outputs": outputs}

    def generate_new_endpoint_token(self, endpoint_name: str, endpoint_token: str | None = None) -> dict:
        """Replace an endpoint's token (a chosen one, or a generated one); the old one stops working."""
        data = {"endpoint_token": endpoint_token} if endpoint_token is not None else {}
        return self._request("POST", f"/endpoints/{endpoint_name}/generate-new-token", data=data)

    # --- Environment variables -------------------------------------------------------------------

    def create_or_update_environment_variable(
        self, environment_variable_name: str, environment_variable_value: str
    ) -> dict:
        """Set a platform-wide variable in every execution's ``os.environ`` (warm pods included:
        their next execution sees it, no restart). Names look like ``MY_API_URL``."""
        if not isinstance(environment_variable_name, str) or not environment_variable_name:
            raise ValueError("environment_variable_name must be a non-empty string, e.g. 'MY_API_URL'.")
        if not isinstance(environment_variable_value, str):
            raise ValueError("environment_variable_value must be a string.")
        return self._request(
            "PUT",
            "/environment-variables",
            json={"environment_variables": {environment_variable_name: environment_variable_value}},
        )

    def list_environment_variables(self) -> list[dict]:
        """``[{"name", "value"}]``."""
        return self._request("GET", "/environment-variables")

    def delete_environment_variable(self, environment_variable_name: str) -> dict:
        return self._request("DELETE", f"/environment-variables/{environment_variable_name}")

    # --- Resource metrics ------------------------------------------------------------------------

    def get_resource_metrics(self, start_date: datetime, end_date: datetime, csv: bool = False) -> dict | bytes:
        """What the platform's Ray nodes used from ``start_date`` to ``end_date`` (naive dates
        are UTC; at most 31 days): ``{"additional_data": {"total_disk", "total_ram"[,
        "total_vram"]} (bytes), "metrics": {"cpu_usage", "disk_usage", "ram_usage"[,
        "vram_usage", "gpu_usage"] (percent), "network_input_usage", "network_output_usage"
        (bytes per second): [{"metric": {"worker": <Ray node id>, ...}, "values": [[timestamp in
        seconds, value], ...]}]}}``. With ``csv=True``, the same series as CSV bytes."""
        if not isinstance(start_date, datetime) or not isinstance(end_date, datetime):
            raise ValueError("start_date and end_date must be datetime.datetime objects.")
        start, end = _epoch_ms(start_date), _epoch_ms(end_date)
        assert start is not None and end is not None  # never None for a datetime
        if start > end:
            raise ValueError("start_date must be at or before end_date.")
        params = {"start": start, "end": end, "download": "true" if csv else "false"}
        if csv:
            return self._file("/resource-metrics", params=params)
        return self._request("GET", "/resource-metrics", params=params)

    # --- Data store ------------------------------------------------------------------------------
    # The platform answers signed URLs; the bytes go to them directly (S3 itself with an S3 data
    # store), without the SDK token. Objects from _MULTIPART_THRESHOLD bytes on go in parts.

    _MULTIPART_THRESHOLD = 100_000_000
    _MULTIPART_PART_SIZE = 38 * 256 * 1024

    def _signed(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request to a signed URL: no Authorization header (S3 would refuse the URL with one)."""
        try:
            with httpx.Client(timeout=self._client.timeout, transport=self._transport) as bare:
                response = bare.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise SdkException(
                f"Could not reach the data store at {url.split('?')[0]} ({error}).", name="RequestError"
            ) from error
        if response.status_code >= 400:
            code, message = "DataStoreError", response.text[:500]
            try:
                import xml.etree.ElementTree as ElementTree

                fields = {node.tag: node.text for node in ElementTree.fromstring(response.text)}
                code, message = fields.get("Code") or code, fields.get("Message") or message
            except ElementTree.ParseError:
                pass
            raise SdkException(message, status_code=response.status_code, name=code)
        return response

    def upload_data_store_object(
        self, filepath_or_buffer: str | os.PathLike | io.IOBase, object_path_in_datastore: str
    ) -> None:
        """Store a file (a path, or a binary file object) at ``object_path_in_datastore``."""
        if isinstance(filepath_or_buffer, (str, os.PathLike)):
            with open(filepath_or_buffer, "rb") as file:
                return self.upload_data_store_object(file, object_path_in_datastore)
        if not hasattr(filepath_or_buffer, "read"):
            raise ValueError("filepath_or_buffer must be a file path or a binary file object (open(path, 'rb')).")
        buffer = filepath_or_buffer
        start = buffer.tell() if hasattr(buffer, "tell") else 0
        first = buffer.read(self._MULTIPART_THRESHOLD)
        if isinstance(first, str):
            raise ValueError("filepath_or_buffer must be opened in binary mode ('rb'), not text mode.")
        if len(first) < self._MULTIPART_THRESHOLD:
            target = self._request("GET", "/data-store/upload", params={"path_to_object": object_path_in_datastore})
            self._signed("POST", target["signed_url"], data=target["fields"], files={"file": ("object", first)})
            return None
        buffer.seek(start)
        base = "/data-store/upload/multipart"
        upload = self._request("POST", base, json={"path_to_object": object_path_in_datastore})
        parts, number = [], 0
        while chunk := buffer.read(self._MULTIPART_PART_SIZE):
            number += 1
            target = self._request(
                "POST",
                f"{base}/part",
                json={
                    "path_to_object": object_path_in_datastore,
                    "multipart_upload_configuration": upload,
                    "chunk_size": self._MULTIPART_PART_SIZE,
                    "part_number": number,
                    # A short part is the last: the object's size, for the platform's size check.
                    **(
                        {"size": (number - 1) * self._MULTIPART_PART_SIZE + len(chunk)}
                        if len(chunk) < self._MULTIPART_PART_SIZE
                        else {}
                    ),
                },
            )
            answer = self._signed("PUT", target["signed_url"], content=chunk, headers=target.get("headers") or {})
            parts.append({"number": number, "metadata": answer.headers.get("ETag")})
        self._request(
            "POST",
            f"{base}/end",
            json={"path_to_object": object_path_in_datastore, "multipart_upload_configuration": upload, "parts": parts},
        )
        return None

    def download_data_store_object(
        self, object_path_in_datastore: str, filepath_or_buffer: str | os.PathLike | io.IOBase
    ) -> None:
        """Write the object's bytes to a file path, or to a binary file object."""
        url = self._request("POST", "/data-store/download", json={"path_to_object": object_path_in_datastore})
        content = self._signed("GET", url["signed_url"]).content
        if isinstance(filepath_or_buffer, (str, os.PathLike)):
            Path(filepath_or_buffer).write_bytes(content)
        elif hasattr(filepath_or_buffer, "write"):
            filepath_or_buffer.write(content)
        else:
            raise ValueError("filepath_or_buffer must be a file path or a binary file object (open(path, 'wb')).")

    def iter_data_store_objects(self, folder_path: str | None = None):
        """Every object (under ``folder_path``): ``{"path", "last_modified", "size"}``, page by page."""
        params: dict[str, str] = {"folder_path": folder_path} if folder_path else {}
        while True:
            page = self._request("GET", "/data-store/list", params=params)
            yield from page["items"]
            if page.get("continuation_token") is None:
                return
            params["continuation_token"] = page["continuation_token"]

    def list_data_store_objects(self, folder_path: str | None = None) -> list[dict]:
        return list(self.iter_data_store_objects(folder_path))

    def get_data_store_object_information(self, object_path_in_datastore: str) -> dict:
        """``{"path", "last_modified", "size"}`` (size in bytes)."""
        return self._request("POST", "/data-store/information", json={"path_to_object": object_path_in_datastore})

    def delete_data_store_object(self, object_path_in_datastore: str) -> dict:
        """``{"path"}`` of the object deleted."""
        return self._request("DELETE", "/data-store/delete", json={"path_to_object": object_path_in_datastore})

    # --- Pipeline metrics ------------------------------------------------------------------------
    # Recorded from inside an execution, where RaylineSdk() finds the platform's URL and the
    # execution's credential in its environment; read back from anywhere with the SDK token.

    _METRICS_PAGE = 5000
    _LIST_VALUES_PER_CALL = 10_000

    @staticmethod
    def _execution_id() -> str | None:
        # A warm pod runs many executions at once: each call's own, from its context; an elastic
        # execution's process runs only one: its environment says which.
        from rayline.execution_context import current_execution_id

        return current_execution_id() or os.environ.get("RAYLINE_EXECUTION_ID") or None

    def _outside_execution(self) -> bool:
        if self._execution_id() is not None:
            return False
        warnings.warn(
            "You cannot send a metric outside a pipeline code, the metric has not been sent "
            "(metrics are recorded from inside an execution).",
            stacklevel=3,
        )
        return True

    def record_metric_value(self, name: str, value: float) -> bool:
        """Set the metric ``name`` of the current execution (the last value recorded wins); False,
        with a warning, outside an execution."""
        if self._outside_execution():
            return False
        self._request(
            "PUT", f"/metrics/single-value/{name}", json={"value": value, "execution_id": self._execution_id()}
        )
        return True

    def record_list_metric_values(self, name: str, values: float | list[float]) -> bool:
        """Append ``values`` to the list metric ``name`` of the current execution; False, with a
        warning, outside an execution."""
        if self._outside_execution():
            return False
        values = values if isinstance(values, list) else [values]
        for start in range(0, len(values), self._LIST_VALUES_PER_CALL):  # nothing to send for []
            self._request(
                "POST",
                f"/metrics/list-values/{name}",
                json={
                    "values": values[start : start + self._LIST_VALUES_PER_CALL],
                    "execution_id": self._execution_id(),
                },
            )
        return True

    def _metrics(
        self,
        kind: str,
        name: str | None,
        pipeline_name: str | None,
        deployment_name: str | None,
        execution_id: str | None,
    ) -> list[dict]:
        filters = {"pipeline_name": pipeline_name, "deployment_name": deployment_name, "execution_id": execution_id}
        given = {key: value for key, value in filters.items() if value is not None}
        if len(given) > 1:
            raise ValueError(
                f"Filter metrics by one of pipeline_name, deployment_name, execution_id; got {sorted(given)}."
            )
        params: dict[str, Any] = {f"filters[{key}]": value for key, value in given.items()}
        if name is not None:
            params["filters[name]"] = name
        metrics: list[dict] = []
        page = 1
        while True:
            answer = self._request(
                "GET", f"/metrics/{kind}", params={**params, "page": page, "items_per_page": self._METRICS_PAGE}
            )
            metrics.extend(answer["metrics"])
            if not answer["metrics"] or len(metrics) >= answer["total_count"]:
                return metrics
            page += 1

    def get_metrics(
        self,
        name: str | None = None,
        pipeline_name: str | None = None,
        deployment_name: str | None = None,
        execution_id: str | None = None,
    ) -> list[dict]:
        """Single-value metrics ``{"name", "value", "created_at", "execution_id", "deployment_name",
        "pipeline_name"}``, of one pipeline, deployment or execution at most."""
        return self._metrics("single-value", name, pipeline_name, deployment_name, execution_id)

    def get_list_metrics(
        self,
        name: str | None = None,
        pipeline_name: str | None = None,
        deployment_name: str | None = None,
        execution_id: str | None = None,
    ) -> list[dict]:
        """List metrics ``{"name", "values", "created_at", "execution_id", "deployment_name",
        "pipeline_name"}`` (values in the order recorded), of one pipeline, deployment or execution at most."""
        return self._metrics("list-values", name, pipeline_name, deployment_name, execution_id)


def _execution_status(response: httpx.Response) -> str:
    """What an answer of a waiting route says of its execution: a 307 means not ended yet."""
    return "Pending or Running" if response.status_code == 307 else f"ended (HTTP {response.status_code})"


def _with_kind(item: dict, kind: str) -> dict:
    """Turn the wire's ``mapping_type``/``mapping_value`` into craft-ai-sdk's ``source``/``destination``."""
    item = dict(item)
    mapping_value = item.pop("mapping_value", None) or {}
    item[kind] = item.pop("mapping_type", None)
    return {**item, **mapping_value}
