import pytest

from rayline.domain.deployments import check_options, parse_memory
from rayline.errors import InvalidInput
from rayline.runtime.serve_deployments import replica_options


def test_memory_sizes():
    assert parse_memory("512MiB") == 512 * 1024**2
    assert parse_memory("1GiB") == parse_memory("1Gi") == 1024**3
    assert parse_memory("1.5GB") == 1_500_000_000
    for bad in ("lots", "12XB", "-1GiB", "1MiB"):
        with pytest.raises(InvalidInput, match="ram_request"):
            parse_memory(bad)


def test_resources_map_to_ray_and_nothing_is_reserved_by_default():
    bare = replica_options("file:///p.zip", [], None, None)
    # The package token Ray's agent downloads packages with is blanked for the user's code.
    assert bare == {
        "num_cpus": 0,
        "runtime_env": {"working_dir": "file:///p.zip", "env_vars": {"RAY_RUNTIME_ENV_BEARER_TOKEN": ""}},
    }
    sized = replica_options("file:///p.zip", ["six"], "1GiB", 1)
    assert sized["memory"] == 1024**3 and sized["num_gpus"] == 1 and sized["num_cpus"] == 0
    assert sized["runtime_env"]["pip"]["packages"] == ["six"]


def test_options_defaults_and_refusals():
    options = check_options("my-dep", {"mode": "low_latency", "enable_parallel_executions": True})
    assert options.endpoint_url_path == "my-dep" and options.max_parallel_executions_per_pod == 6
    assert check_options("d", {}).max_parallel_executions_per_pod == 1
    assert options.max_queued_executions == 1000
    assert check_options("d", {"mode": "low_latency", "max_queued_executions": 0}).max_queued_executions == 0
    # Elastic deployments are bounded too: by default 100 executions in flight, or what is asked.
    assert check_options("d", {}).max_queued_executions == 100
    assert check_options("d", {"max_queued_executions": 5}).max_queued_executions == 5
    for body, fragment in [
        ({"mode": "warm"}, "mode must be"),
        ({"execution_rule": "cron"}, "execution_rule"),
        ({"gpu_request": 1}, "only go with mode='low_latency'"),
        ({"mode": "low_latency", "gpu_request": -1}, "gpu_request"),
        ({"endpoint_url_path": "Bad/Path"}, "endpoint_url_path"),
        ({"execution_rule": "periodic", "endpoint_url_path": "x"}, "only goes with"),
        # elastic: the most executions in flight, at least 1
        ({"max_queued_executions": 0}, "from 1 to"),
        ({"mode": "low_latency", "max_queued_executions": -1}, "max_queued_executions must be"),
        ({"mode": "low_latency", "max_queued_executions": "10"}, "max_queued_executions must be"),
        ({"mode": "low_latency", "max_parallel_executions_per_pod": 4}, "needs enable_parallel_executions"),
        (
            {"mode": "low_latency", "enable_parallel_executions": True, "max_parallel_executions_per_pod": 0},
            "from 1 to",
        ),
        ({"execution_timeout_s": 0}, "execution_timeout_s"),
    ]:
        with pytest.raises(InvalidInput, match=fragment):
            check_options("d", body)


def test_an_endpoint_caller_sees_its_code_s_error_but_not_the_platform_s():
    from rayline.domain.deployments import failure_for_caller

    assert failure_for_caller("d-1", "Failed", "ValueError: unlucky 13") == "ValueError: unlucky 13"
    told = failure_for_caller("d-2", "Error", "The pipeline's environment could not be set up: pip said ...")
    assert "pip said" not in told and "get_pipeline_execution('d-2')" in told
