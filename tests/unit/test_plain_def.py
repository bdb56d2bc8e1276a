"""A pipeline whose function is a plain `def` (known from its source when the pipeline is created)
gets warm pods that answer HTTP on Serve's main event loop: its user code only ever runs in the
pods' execution threads. Anything that may be a coroutine function keeps Serve's default."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rayline.domain.deployments import ReplicaConfig
from rayline.errors import InvalidInput
from rayline.services.pipelines import is_plain_def
from serve_apps.low_latency import PLAIN_DEF_ENV, build


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("def handler(x):\n    return x\n", True),
        ("async def handler(x):\n    return x\n", False),
        ("import functools\n\n@functools.cache\ndef handler(x):\n    return x\n", False),
        ("def handler(x):\n    return x\n\nhandler = make_async(handler)\n", False),  # rebound: may be anything
        ("async def handler(x):\n    return x\n\ndef handler(x):\n    return x\n", False),  # bound twice: not sure
        ("class handler:\n    async def __call__(self, x):\n        return x\n", False),
        ("from elsewhere import handler\n", False),
        ("def handler(x):\n    return x\n\nif FAST:\n    async def handler(x):\n        return x\n", False),
        ("def handler(x):\n    return x\n\ntry:\n    from fast import handler\nexcept ImportError:\n    pass\n", False),
        ("def handler(x):\n    return x\n\nfrom helpers import *\n", False),
        ("def handler(x):\n    return x\n\nhandler, other = _async_one, 1\n", False),
        ("def handler(x):\n    return x\n\n(handler := _async_one)\n", False),
        ("def handler(x):\n    return x\n\nglobals()['handler'] = _async_one\n", False),
        ("def handler(x):\n    return x\n\ndef _swap():\n    global handler\n    handler = _async_one\n", False),
        ("def handler(x):\n    return x\n\nhandler.__code__ = _async_one.__code__\n", False),
        ("import sys\n\ndef handler(x):\n    return helper(x)\n\ndef helper(x):\n    return {'y': x}\n", True),
    ],
)
def test_only_a_lone_undecorated_def_nothing_else_may_rebind_is_a_plain_def(source, plain):
    assert is_plain_def(textwrap.dedent(source), "main.py", "handler") is plain


def test_the_variable_set_is_the_one_serve_reads_to_run_a_replica_on_its_main_loop():
    # A typo in the name, or a Serve that no longer reads it, would silently keep two hops per call.
    check = "from ray.serve._private import constants; print(constants.RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD)"
    env = {**os.environ, **PLAIN_DEF_ENV}
    out = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_a_file_without_the_function_is_refused():
    with pytest.raises(InvalidInput, match="'handler' is not defined at the top level of 'main.py'"):
        is_plain_def("def other():\n    pass\n", "main.py", "handler")


@pytest.mark.parametrize("plain_def", [True, False])
def test_only_a_plain_defs_pods_run_on_serves_main_loop(plain_def):
    config = ReplicaConfig(
        deployment_name="report",
        pipeline_name="pipe",
        function_path="main.py",
        function_name="handler",
        credential="pod-credential",
        route_prefix="/endpoints/report",
        version=1,
        plain_def=plain_def,
    )
    given = {"num_cpus": 0, "runtime_env": {"working_dir": "file:///p.zip", "env_vars": {"HIDDEN": ""}}}
    app = build(config, ray_actor_options=given, serving={"num_replicas": 1})
    env_vars = app._bound_deployment.ray_actor_options["runtime_env"]["env_vars"]
    expected = {"HIDDEN": ""} | (PLAIN_DEF_ENV if plain_def else {})
    assert env_vars == expected
    assert given["runtime_env"]["env_vars"] == {"HIDDEN": ""}  # the caller's options are left as they were
