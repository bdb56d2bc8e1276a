"""The OpenAPI document (``/api/v1/openapi.json``) against the API as it behaves: schemathesis
generates requests for every operation from the document alone (its examples, coverage, fuzzing
and stateful phases), sends them to a live platform, and checks each answer against the
document: no server error, a documented status, a documented content type, a body and headers
that match the documented schemas, and for methods the document does not list, 405 with an
``Allow`` header naming exactly the listed ones.

So that the generator reaches the core logic and not only 404s, a real pipeline, deployment,
execution and environment variable are created first; their names replace the generated path
parameters, and inputs the pipeline takes replace the generated bodies of the calls that run
it, about two cases out of three (the others keep what was generated). Bounded: a fixed seed and
``MAX_EXAMPLES`` cases per operation and phase (about a minute on 2 cores).

What the generator does to the shared resources is kept from breaking the rest: deletions run
last (their own test, on resources of their own where it matters), a disabled deployment is
enabled again, a rotated endpoint token is picked up, and what it created (deployments,
variables) is deleted as soon as it was.
"""

from __future__ import annotations

import contextlib
import json
import uuid
import zlib
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from rayline import Input, Output
from tests.integration.conftest import unique, write_folder

SEED = 20261201
MAX_EXAMPLES = 12
# Not positive_data_acceptance: whether a request the document allows is accepted also depends on
# what it names (a pipeline's declared inputs, a deployment's rule), which no document can say,
# and on what the generator cannot make (a tar.gz archive, JSON inside form fields). Nor
# negative_data_rejection: the tokens this test puts in every request make some of its invalid
# cases valid again, and a repeated query parameter (the last one counts) passes for an array.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    allow_header_conformance,
]

# The pipeline's function returns what it is given: no input the document allows makes it fail
# (a failed execution is a 500 on its endpoint, which would hide a real server error).
MODULE = {
    "main.py": """
    def echo(x, label="none"):
        print("echo", x, label)
        return {"y": x, "label": label}

    def nothing():
        return {}
"""
}


class World:
    """The resources the generator is pointed at, and what it created, to delete it."""

    def __init__(self, platform, folder) -> None:
        self.platform = platform
        self.sdk = platform.sdk()
        self.pipeline = unique("contract")
        self.sdk.create_pipeline(
            self.pipeline,
            "main.py",
            "echo",
            container_config={"local_folder": str(folder)},
            inputs=[Input("x", "number"), Input("label", "string", is_required=False)],
            outputs=[Output("y", "number"), Output("label", "string")],
        )
        # Periodic deployments must map every input: this one has none, so a generated one can be created.
        self.bare_pipeline = unique("contract-bare")
        self.sdk.create_pipeline(
            self.bare_pipeline, "main.py", "nothing", container_config={"local_folder": str(folder)}
        )
        self.deployment = self.sdk.create_deployment(self.pipeline, unique("contract-ep"), "endpoint", mode="elastic")[
            "name"
        ]
        self.endpoint_token = self.sdk.get_deployment(self.deployment)["endpoint_token"]
        self.execution = self.sdk.run_pipeline(self.pipeline, {"x": 1})["execution_id"]
        self.endpoint_execution = self.sdk.trigger_endpoint(self.deployment, inputs={"x": 2})["execution_id"]
        self.variable = f"RLFUZZ_{uuid.uuid4().hex[:8].upper()}"
        self.sdk.create_or_update_environment_variable(self.variable, "fuzz")
        self.variables_before = {v["name"] for v in self.sdk.list_environment_variables()}
        self.deployments_before = {d["name"] for d in self.sdk.list_deployments()}

    def path_values(self, case) -> dict[str, str]:
        """The real resources for this operation's path parameters."""
        path = case.operation.path
        execution = self.endpoint_execution if path.startswith("/endpoints/") else self.execution
        values = {
            "pipeline_name": self.pipeline,
            "name": self.deployment,
            "path": self.deployment,
            "execution_id": execution,
        }
        if case.method.upper() == "DELETE" and path == "/api/v1/pipelines/{pipeline_name}":
            values["pipeline_name"] = self.bare_pipeline  # the deployment's stays, for DELETE /deployments
        if path.startswith("/api/v1/environment-variables/"):
            values["name"] = self.variable
        elif path.startswith(("/api/v1/executions/", "/endpoints/v1/")) and path.endswith("/{name}"):
            values["name"] = "label" if "/inputs/" in path else "y"
        return values

    def clean_up(self) -> None:
        """What the generator created, deleted; the deployment enabled again (if a run stopped half-way)."""
        with contextlib.suppress(Exception):
            self.sdk.update_deployment(self.deployment, is_enabled=True)
        for row in self.sdk.list_deployments():
            if row["name"] not in self.deployments_before:
                with contextlib.suppress(Exception):
                    self.sdk.delete_deployment(row["name"])
        for row in self.sdk.list_environment_variables():
            if row["name"] not in self.variables_before:
                with contextlib.suppress(Exception):
                    self.sdk.delete_environment_variable(row["name"])

    def remove(self) -> None:
        for name in (self.pipeline, self.bare_pipeline):
            with contextlib.suppress(Exception):
                self.sdk.delete_pipeline(name, force_deployments_deletion=True)
        with contextlib.suppress(Exception):
            self.sdk.delete_environment_variable(self.variable)
        self.clean_up()


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    created = World(platform, write_folder(tmp_path_factory.mktemp("contract"), MODULE))
    yield created
    created.remove()


def _sometimes(value: Any) -> bool:
    """About two cases out of three, chosen from the generated value itself (so, by the seed)."""
    return zlib.crc32(repr(value).encode()) % 3 != 0


def _aim(case, world: World) -> None:
    """Point the case at the real resources, most of the time, with the right token."""
    values = world.path_values(case)
    for key, value in list((case.path_parameters or {}).items()):
        if key in values and _sometimes(value):
            case.path_parameters[key] = values[key]
    body, path = case.body, case.operation.path
    creating = path in ("/api/v1/endpoints", "/api/v1/periodic-deployment") and isinstance(body, dict)
    if creating and body.get("mode") == "low_latency":
        # A low-latency deployment would start a pod (test_deployments does): never of a real pipeline
        # here, though schemathesis learns the names from the answers.
        body["pipeline_name"] = "contract-no-such-pipeline"
    elif isinstance(body, dict) and _sometimes(sorted(body, key=str)):
        if creating:  # an elastic deployment is a row, deleted at once (_after)
            if path.endswith("periodic-deployment"):
                body.update(pipeline_name=world.bare_pipeline, schedule="0 0 1 1 *")
            else:
                body["pipeline_name"] = world.pipeline
        elif path in ("/endpoints/{path}", "/api/v1/deployments/{name}/executions"):
            case.body = {"x": zlib.crc32(repr(body).encode()) % 1000}  # what the pipeline takes
        elif path == "/api/v1/pipelines/{pipeline_name}/run":
            inputs = {"x": zlib.crc32(repr(body).encode()) % 1000}
            body["json_inputs"] = inputs if case.media_type == "application/json" else json.dumps(inputs)
    token = (
        f"EndpointToken {world.endpoint_token}" if path.startswith("/endpoints/") else f"Bearer {world.platform.token}"
    )
    case.headers = {
        **{k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"},
        "Authorization": token,
    }


def _after(case, response, world: World) -> None:
    """Keep the shared resources usable, and delete what the call created."""
    path, method = case.operation.path, case.method.upper()
    if response.status_code >= 300:
        return
    if path == "/api/v1/endpoints/{name}/generate-new-token" and case.path_parameters["name"] == world.deployment:
        world.endpoint_token = response.json()["endpoint_token"]
    elif method == "PATCH" and case.path_parameters["name"] == world.deployment:
        if not response.json()["is_enabled"]:
            world.sdk.update_deployment(world.deployment, is_enabled=True)
    elif method == "POST" and path in ("/api/v1/endpoints", "/api/v1/periodic-deployment"):
        world.sdk.delete_deployment(response.json()["name"])
    elif method == "PUT" and path == "/api/v1/environment-variables":
        for name in response.json()["environment_variables"]:
            if name != world.variable:
                world.sdk.delete_environment_variable(name)


def fuzz(url: str, world: World, **filters: Any) -> tuple[list[str], int]:
    """Run schemathesis' phases on the operations ``filters`` select (``method=...``: its include
    filters; ``exclude_method=...``: its exclude filters). Returns the failures, one text each
    (what failed, the answer, a curl command), and how many cases were sent."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": True}},
            "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
            "request-timeout": 120,
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=config)
    include = {k: v for k, v in filters.items() if not k.startswith("exclude_")}
    exclude = {k.removeprefix("exclude_"): v for k, v in filters.items() if k.startswith("exclude_")}
    schema = schema.include(**include) if include else schema
    schema = schema.exclude(**exclude) if exclude else schema

    def before_call(context, case, kwargs):
        _aim(case, world)

    def after_call(context, case, response):
        _after(case, response, world)

    # Hooks on calls are global in schemathesis: registered for this run only.
    for hook in (before_call, after_call):
        schemathesis.hook(hook)
    try:
        return _run(schema)
    finally:
        for hook in (before_call, after_call):
            GLOBAL_HOOK_DISPATCHER.unregister(hook)


def _run(schema) -> tuple[list[str], int]:
    failures, sent = [], 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            sent += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        response = event.recorder.find_response(case_id=case_id)
                        answer = f"{response.status_code} {response.text[:300]}" if response is not None else "-"
                        failures.append(
                            f"{event.recorder.label}: {failure.title}: {failure.message}\n"
                            f"    answer: {answer}\n    {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error: {event.info}")
        elif isinstance(event, events.FatalError):
            failures.append(f"fatal: {event.exception!r}")
    return sorted(set(failures)), sent


def test_every_operation_answers_as_the_document_says(platform, world):
    failures, sent = fuzz(platform.url, world, exclude_method="DELETE")
    assert sent > 200
    assert failures == [], "\n".join(failures)


def test_deletions_answer_as_the_document_says(platform, world):
    # After every other operation: deleting the shared resources ends what the others can reach.
    failures, sent = fuzz(platform.url, world, method="DELETE")
    assert sent > 20
    assert failures == [], "\n".join(failures)


def test_the_generator_left_nothing_behind(world):
    assert {d["name"] for d in world.sdk.list_deployments()} <= world.deployments_before
    assert {v["name"] for v in world.sdk.list_environment_variables()} <= world.variables_before
