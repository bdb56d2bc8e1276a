"""The fork server of elastic executions (``rayline.runtime.forks``), without Ray: a template
process forks one child per execution, which runs the user's code and sends its logs and result.
What a child does (crash, print without end, write to its channel) never reaches the next one."""

from __future__ import annotations

import textwrap
import time

import pytest

from rayline.domain.io_types import OutputSpec
from rayline.domain.jobs import ExecutionJob
from rayline.domain.mappings import normalize_outputs_mapping
from rayline.domain.statuses import ExecutionStatus
from rayline.runtime import elastic_task
from rayline.runtime.forks import ForkServer

PIPELINE = """
import os
import pickle
import socket
import struct
import sys

def run(mode):
    print("running", mode, flush=True)
    if mode == "flood":
        while True:
            print("x" * 100)
    if mode in ("garbage", "evil"):
        # User code that finds its channel to the worker and writes to it itself.
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                channel = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            if channel.type == socket.SOCK_STREAM and channel.family == socket.AF_UNIX:
                data = b"not a pickle" if mode == "garbage" else pickle.dumps(("result", os.system))
                channel.sendall(struct.pack("!Q", len(data)) + data)
        return {"y": 0}
    return {"y": len(mode)}
"""


@pytest.fixture
def server(tmp_path, monkeypatch):
    package = tmp_path / "package"
    package.mkdir()
    (package / "main.py").write_text(textwrap.dedent(PIPELINE))
    monkeypatch.chdir(package)  # the template's working directory, as Ray's working_dir is
    instance = ForkServer()
    monkeypatch.setattr(elastic_task, "fork_server", lambda: instance)
    yield instance
    instance._abandon()


_NUMBERS = iter(range(1, 1000))


def _job(mode: str, timeout_s: float | None = None) -> ExecutionJob:
    return ExecutionJob(
        execution_id=f"forks-{next(_NUMBERS)}",
        function_path="main.py",
        function_name="run",
        inputs={"mode": mode},
        outputs=[{"name": "y", "data_type": "number"}],
        timeout_s=timeout_s,
    )


def test_a_child_printing_without_end_is_stopped_at_its_timeout(server):
    began = time.monotonic()
    result = elastic_task.run_in_child(_job("flood", timeout_s=1.0))
    assert time.monotonic() - began < 5
    assert result.status == ExecutionStatus.FAILED and "execution_timeout_s=1 s" in result.error
    assert result.logs[0][1:] == ("stdout", "running flood")
    assert elastic_task.run_in_child(_job("ok")).status == ExecutionStatus.SUCCEEDED


@pytest.mark.parametrize("mode", ["garbage", "evil"])
def test_what_user_code_writes_to_its_channel_is_refused_and_the_next_child_is_clean(server, mode):
    result = elastic_task.run_in_child(_job(mode))
    assert result.status == ExecutionStatus.ERROR, result
    assert "could not be followed" in result.error
    if mode == "evil":  # a pickle that would call os.system in the worker is never loaded
        assert "posix.system" in result.error
    after = elastic_task.run_in_child(_job("fine"))
    assert after.status == ExecutionStatus.SUCCEEDED, after


def test_a_template_that_died_is_started_again(server):
    assert elastic_task.run_in_child(_job("one")).status == ExecutionStatus.SUCCEEDED
    first = server.start()
    server._process.kill()
    server._process.wait()
    assert elastic_task.run_in_child(_job("two")).status == ExecutionStatus.SUCCEEDED
    assert server.start() != first


def test_outputs_come_back_as_plain_json_values(server, tmp_path):
    (tmp_path / "package" / "arrays.py").write_text(
        "class Number(float):\n    pass\n\n\ndef run(mode):\n    return {'y': [Number(1.5), 2]}\n"
    )
    job = _job("x")
    job.function_path, job.outputs = "arrays.py", [{"name": "y", "data_type": "array"}]
    job.outputs_mapping = normalize_outputs_mapping([OutputSpec("y", "array")], None, "run")
    result = elastic_task.run_in_child(job)
    assert result.status == ExecutionStatus.SUCCEEDED, result
    (record,) = result.outputs
    assert record["value"] == [1.5, 2] and type(record["value"][0]) is float
