"""Fakes of the platform's two runtime seams (``rayline.composition``), and the whole control
plane built over them, without Ray.

- ``FakeRunner`` stands for ``rayline.runtime.elastic.ElasticRunner``: it runs an execution in
  this process (at once, or on a thread) and records it as the real runner records a worker's
  result. The pipeline's code is not loaded from its package: the fake is given the Python
  functions to call, by ``function_name``.
- ``FakeServeRuntime`` stands for ``rayline.runtime.serve_deployments.ServeDeployments``: it keeps
  what was deployed, reports it RUNNING (or what a test says), and answers calls with what a
  test's callable returns.
- ``build_platform``: `rayline up`'s preparation of a home (SQLite in it), then the composition
  root and the routes over the fakes, and a ``TestClient`` holding the SDK token.

Nothing here imports Ray (tests/unit/test_routes.py checks it, in a fresh interpreter).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from rayline import cli
from rayline.api.app import create_app
from rayline.api.context import AppContext
from rayline.composition import Assembled, assemble
from rayline.config import Settings
from rayline.domain.deployments import ReplicaConfig, timed_out_error
from rayline.domain.files import FileValue, materialize
from rayline.domain.jobs import ExecutionJob
from rayline.domain.outcomes import Ended, Outcome
from rayline.domain.pod_scaling import PodScaling
from rayline.domain.results import OutputContract, failure_text
from rayline.domain.statuses import ExecutionStatus
from rayline.runtime.log_capture import LogSink, Record, capture_output
from rayline.runtime.user_code import call_function
from rayline.sdk.packaging import pack_folder
from rayline.services.platform_secrets import with_platform_secrets
from rayline.store import executions as store
from rayline.store.db import Database
from rayline.store.models import utcnow

# rayline.runtime.elastic.CREDENTIAL_TTL_S (that module imports Ray).
CREDENTIAL_TTL_S = 24 * 3600.0


# --- elastic executions --------------------------------------------------------------------------


@dataclass
class Submission:
    job: ExecutionJob
    package_uri: str
    requirements: list[str]


@dataclass
class _Result:
    """rayline.runtime.worker.ExecutionResult, as the fake's execution returns it."""

    status: str
    started_at: datetime
    outputs: list[dict[str, Any]] | None = None
    error: str | None = None
    logs: list[Record] = field(default_factory=list)
    files: dict[str, FileValue] = field(default_factory=dict)


class FakeRunner:
    """The ``Runner`` seam: ``submit`` marks the execution Running, calls
    ``functions[job.function_name]`` (else ``default``) with the job's inputs, and records the
    end as ``ElasticRunner`` records a worker's result: the logs, the file outputs, then
    Succeeded with the outputs' records (``OutputContract.settle``) or Failed with the error, its
    traceback in the logs. A function it was not given fails the execution, as a file that does
    not define it would.

    ``threaded=False`` (the default): the execution runs inside ``submit``, what it prints is
    captured as its logs (``capture_output``, as the worker does), and the returned future is
    already done. ``threaded=True``: it runs on a thread of its own (concurrent executions, an
    execution still running when the call returns); prints are then not captured (each thread
    would replace ``sys.stdout``), and past ``job.timeout_s`` it is recorded Failed as the real
    runner records the worker it stopped (the thread runs on; its result is dropped).
    """

    def __init__(
        self,
        db: Database,
        functions: dict[str, Callable[..., Any]] | None = None,
        *,
        default: Callable[..., Any] | None = None,
        threaded: bool = False,
        execution_credential: Callable[[str, float], str] | None = None,
    ) -> None:
        self.db = db
        self.functions = dict(functions or {})
        self.default = default
        self.threaded = threaded
        self._execution_credential = execution_credential
        self.submissions: list[Submission] = []
        self.prepared: list[tuple[str, list[str]]] = []

    @property
    def jobs(self) -> list[ExecutionJob]:
        return [submission.job for submission in self.submissions]

    def prepare(self, package_uri: str, requirements: list[str]) -> None:
        self.prepared.append((package_uri, list(requirements)))

    def submit(self, job: ExecutionJob, package_uri: str, requirements: list[str]) -> Future:
        self.submissions.append(Submission(job, package_uri, list(requirements)))
        if self._execution_credential is not None:
            job.log_credential = self._execution_credential(job.execution_id, CREDENTIAL_TTL_S + (job.timeout_s or 0))
        recorded: Future = Future()
        if not self.threaded:
            self._record(job, self._execute(job, capture=True))
            recorded.set_result(None)
            return recorded
        threading.Thread(
            target=self._supervise, args=(job, recorded), name=f"fake-runner-{job.execution_id}", daemon=True
        ).start()
        return recorded

    def _supervise(self, job: ExecutionJob, recorded: Future) -> None:
        result: Future = Future()

        def work() -> None:
            try:
                result.set_result(self._execute(job, capture=False))
            except BaseException as error:  # a bug of the fake's: on the future, not a hang
                result.set_exception(error)

        threading.Thread(target=work, name=f"fake-execution-{job.execution_id}", daemon=True).start()
        try:
            try:
                ended = result.result(timeout=job.timeout_s)
            except TimeoutError:
                assert job.timeout_s is not None
                message = timed_out_error(job.timeout_s, "; its worker process was stopped.")
                why = [(utcnow(), "stderr", message)]
                store.finish(self.db, job.execution_id, store.FAILED, error=message, ending_log=why)
            else:
                self._record(job, ended)
        except BaseException as error:  # a failure to record: the test sees it on the future
            recorded.set_exception(error)
        else:
            recorded.set_result(None)

    def _function(self, job: ExecutionJob) -> Callable[..., Any]:
        function = self.functions.get(job.function_name, self.default)
        if function is None:  # what rayline.runtime.user_code.load_function raises
            raise AttributeError(f"{job.function_path} defines no callable named {job.function_name!r}")
        return function

    def _execute(self, job: ExecutionJob, capture: bool) -> _Result:
        """rayline.runtime.worker.execute, with the function handed in instead of loaded."""
        started_at = datetime.now(UTC)
        contract = OutputContract.of(job.outputs, job.outputs_mapping, job.max_file_bytes)
        sink = LogSink(lambda batch: None, delay_s=3600.0)  # nothing streamed: all comes with the result
        captured: AbstractContextManager[Any] = capture_output(sink, job.execution_id) if capture else nullcontext()
        settled, error, failure_lines = None, None, []
        try:
            with tempfile.TemporaryDirectory(prefix=f"fake-{job.execution_id}-") as scratch, captured:
                try:
                    inputs = materialize(job.inputs, Path(scratch) / "inputs")
                    settled = contract.settle(call_function(self._function(job), inputs))
                except (Exception, SystemExit) as exc:  # the worker's `traceback.print_exc()`
                    failure_lines = traceback.format_exc().rstrip().split("\n")
                    error = failure_text(exc)
        finally:
            logs = sink.close()
        logs += [(datetime.now(UTC), "stderr", line) for line in failure_lines]
        return _Result(
            status=ExecutionStatus.SUCCEEDED if settled is not None else ExecutionStatus.FAILED,
            started_at=started_at,
            outputs=settled.records if settled is not None else None,
            error=error,
            logs=logs,
            files=settled.files if settled is not None else {},
        )

    def _record(self, job: ExecutionJob, result: _Result) -> None:
        """ElasticRunner._settle, for a worker that returned its result: one transaction."""
        store.finish(
            self.db,
            job.execution_id,
            result.status,
            outputs=result.outputs,
            error=result.error,
            start_date=result.started_at,
            logs=result.logs,
            files=result.files,
        )


# --- warm deployments ----------------------------------------------------------------------------


@dataclass
class AppState:
    """What ServeDeployments.states() reports per application (rayline.runtime.serve_deployments)."""

    status: str
    message: str = ""
    replica_states: dict[str, int] = field(default_factory=dict)


@dataclass
class Deployed:
    config: ReplicaConfig
    ram_request: str | None
    gpu_request: int | None
    package_uri: str
    requirements: list[str]
    scaling: PodScaling


Answer = Callable[[str, dict[str, Any]], Outcome]


class FakeServeRuntime:
    """The ``ServeRuntime`` seam. ``deploy`` keeps the config (``deployed``, and every call in
    ``deploys``); ``states`` reports each deployed application RUNNING with one running replica,
    unless ``status[name]`` says otherwise (``DEPLOYING``, ``DEPLOY_FAILED``...); ``run`` and
    ``run_blocking`` return ``answer(name, given)`` (by default: Succeeded, the inputs echoed as
    the output, ids ``<name>-1``, ``<name>-2``...) and are recorded in ``runs``. Nothing is written
    to the database: a warm pod records through the pod gateway, which this does not fake."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or self.echo
        self.deployed: dict[str, Deployed] = {}
        self.deploys: list[Deployed] = []
        self.deleted: list[str] = []
        self.runs: list[tuple[str, dict[str, Any]]] = []
        self.status: dict[str, str] = {}
        self.deploy_error: Exception | None = None  # raised by the next deploy calls, when set
        self._numbers: defaultdict[str, int] = defaultdict(int)

    def echo(self, name: str, given: dict[str, Any]) -> Outcome:
        self._numbers[name] += 1
        return Ended(f"{name}-{self._numbers[name]}", ExecutionStatus.SUCCEEDED, output=dict(given))

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
        if self.deploy_error is not None:
            raise self.deploy_error
        deployed = Deployed(config, ram_request, gpu_request, package_uri, list(requirements), scaling)
        self.deploys.append(deployed)
        self.deployed[config.deployment_name] = deployed

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.deployed.pop(name, None)

    def states(self) -> dict[str, AppState]:
        states = {}
        for name in self.deployed:
            status = self.status.get(name, "RUNNING")
            states[name] = AppState(status, replica_states={"RUNNING": 1} if status == "RUNNING" else {})
        return states

    async def run(self, name: str, given: dict[str, Any]) -> Outcome:
        return self.run_blocking(name, given)

    def run_blocking(self, name: str, given: dict[str, Any]) -> Outcome:
        if name not in self.deployed:  # Serve has no such application
            raise RuntimeError(f"FakeServeRuntime: {name!r} is not deployed")
        self.runs.append((name, dict(given)))
        return self.answer(name, given)


# --- the platform --------------------------------------------------------------------------------


@dataclass
class FakePlatform:
    settings: Settings
    assembled: Assembled
    client: TestClient  # with the SDK token
    token: str
    serve: FakeServeRuntime
    runner: FakeRunner

    @property
    def context(self) -> AppContext:
        return self.assembled.context

    def create_pipeline(
        self,
        name: str,
        files: dict[str, str],
        *,
        function_path: str = "main.py",
        function_name: str = "handler",
        inputs: Sequence[dict[str, Any]] = (),
        outputs: Sequence[dict[str, Any]] = (),
        **fields: str,
    ) -> Any:
        """``POST /api/v1/pipelines`` as RaylineSdk.create_pipeline sends it: the folder packed as
        a tar.gz part ``step_file``, the declarations flattened as ``inputs[0][name]`` fields."""
        folder = Path(tempfile.mkdtemp(prefix=f"pipeline-{name}-", dir=self.settings.home_dir.parent))
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        form = {"pipeline_name": name, "function_path": function_path, "function_name": function_name, **fields}
        for kind, declarations in (("inputs", inputs), ("outputs", outputs)):
            for index, declaration in enumerate(declarations):
                for key, value in declaration.items():
                    form[f"{kind}[{index}][{key}]"] = str(value)
        return self.client.post(
            "/api/v1/pipelines",
            data=form,
            files={"step_file": ("pipeline.tar.gz", pack_folder(folder), "application/gzip")},
        )

    def close(self) -> None:
        self.client.close()
        self.context.db.dispose()


def build_platform(
    home: Path,
    *,
    functions: dict[str, Callable[..., Any]] | None = None,
    default: Callable[..., Any] | None = None,
    threaded: bool = False,
    answer: Answer | None = None,
    **settings: Any,
) -> FakePlatform:
    """The control plane as `rayline up` starts it (``cli._prepare`` on ``home``, then the
    settings shipped to the cluster read back with their secrets), over the fakes. ``settings``:
    more ``Settings`` fields. RAYLINE_* environment variables apply too: clear them first."""
    base = Settings(home=home, **settings)
    cli._prepare(base, argparse.Namespace(ray_address=None))
    serve = FakeServeRuntime(answer)
    runners: list[FakeRunner] = []

    def make_runner(db: Database, credential: Callable[[str, float], str]) -> FakeRunner:
        runners.append(FakeRunner(db, functions, default=default, threaded=threaded, execution_credential=credential))
        return runners[-1]

    assembled = assemble(with_platform_secrets(base.for_cluster()), serve_runtime=serve, make_runner=make_runner)
    token = base.token_path.read_text().strip()
    client = TestClient(create_app(assembled.context), headers={"Authorization": f"Bearer {token}"})
    return FakePlatform(base, assembled, client, token, serve, runners[0])


def platform_factory(tmp_path: Path, monkeypatch: Any) -> Iterator[Callable[..., FakePlatform]]:
    """For a fixture: ``make(**options)`` builds a platform (``build_platform``) in a home of its
    own under ``tmp_path``, with no RAYLINE_* variable of the caller's environment; each is closed
    afterwards."""
    for name in [name for name in os.environ if name.startswith("RAYLINE_")]:
        monkeypatch.delenv(name)
    platforms: list[FakePlatform] = []

    def make(**options: Any) -> FakePlatform:
        platforms.append(build_platform(tmp_path / f"home-{len(platforms)}", **options))
        return platforms[-1]

    try:
        yield make
    finally:
        for platform in platforms:
            platform.close()
