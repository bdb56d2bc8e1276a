import pytest
from pydantic import ValidationError

from rayline.domain.deployments import DeploymentOptions, check_options, parse_memory
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
    # The package token Ray's agent downloads packages with, and the AWS keys of an S3 data store,
    # are blanked for the user's code.
    hidden = {"RAY_RUNTIME_ENV_BEARER_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert bare == {
        "num_cpus": 0,
        "runtime_env": {"working_dir": "file:///p.zip", "env_vars": dict.fromkeys(hidden, "")},
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


LOW = {"mode": "low_latency"}
PARALLEL = {**LOW, "enable_parallel_executions": True}
PERIODIC = {"execution_rule": "periodic", "schedule": "0 * * * *"}
LOW_LATENCY_ONLY = "enable_parallel_executions, ram_request and gpu_request only go with mode='low_latency'."
MAX_PARALLEL = "max_parallel_executions_per_pod must be an integer from 1 to 1000."
QUEUED_LOW_LATENCY = (
    "max_queued_executions must be an integer from 0 (refuse a call when every slot is busy) to 100000."
)
QUEUED_ELASTIC = (
    "max_queued_executions must be an integer from 1 to 100000: for an elastic deployment, the most "
    "executions it runs at once (each in its own process)."
)
GPU = "gpu_request must be a whole number of GPUs (0, 1, 2...)."
TIMEOUT = "execution_timeout_s must be a number of seconds greater than 0."
SCHEDULE_REQUIRED = (
    "schedule is required for a periodic deployment: a 5-field cron expression in UTC, e.g. '0 * * * *' (every hour)."
)
BAD_PATH = "endpoint_url_path {!r} is not valid: use at most 63 lowercase letters, digits and dashes"
PATH_REQUIRED = "endpoint_url_path is required: lowercase letters, digits and dashes"
BAD_SCHEDULE = "schedule is not a valid cron expression: "

# Every rule of check_options, each alone: (body, the whole message, or how it starts when the
# message is another module's: names, schedules, parse_memory).
REFUSALS = [
    ({"execution_rule": "cron"}, "execution_rule must be one of endpoint, periodic, not 'cron'."),
    ({"execution_rule": None}, "execution_rule must be one of endpoint, periodic, not None."),
    ({"mode": "warm"}, "mode must be one of elastic, low_latency, not 'warm'."),
    ({"mode": 1}, "mode must be one of elastic, low_latency, not 1."),
    ({**PERIODIC, "endpoint_url_path": "x"}, "endpoint_url_path only goes with execution_rule='endpoint'."),
    ({"endpoint_url_path": "Bad/Path"}, BAD_PATH.format("Bad/Path")),
    ({"endpoint_url_path": ""}, PATH_REQUIRED),
    ({"endpoint_url_path": 3}, PATH_REQUIRED),
    ({"execution_rule": "periodic"}, SCHEDULE_REQUIRED),
    ({"execution_rule": "periodic", "schedule": None}, SCHEDULE_REQUIRED),
    ({"execution_rule": "periodic", "schedule": "* * * *"}, BAD_SCHEDULE + "expected 5 fields, got 4"),
    ({"execution_rule": "periodic", "schedule": 5}, BAD_SCHEDULE + "expected a string, got int"),
    ({**PERIODIC, "endpoint_token": "a-token-long-enough"}, "endpoint_token only goes with execution_rule='endpoint'."),
    ({"schedule": "0 * * * *"}, "schedule only goes with execution_rule='periodic'."),
    (
        {**LOW, "max_parallel_executions_per_pod": 4},
        "max_parallel_executions_per_pod needs enable_parallel_executions=True.",
    ),
    (
        {**LOW, "enable_parallel_executions": False, "max_parallel_executions_per_pod": 4},
        "max_parallel_executions_per_pod needs",
    ),
    ({**PARALLEL, "max_parallel_executions_per_pod": 0}, MAX_PARALLEL),
    ({**PARALLEL, "max_parallel_executions_per_pod": 1001}, MAX_PARALLEL),
    ({**PARALLEL, "max_parallel_executions_per_pod": True}, MAX_PARALLEL),
    ({**PARALLEL, "max_parallel_executions_per_pod": "4"}, MAX_PARALLEL),
    ({**PARALLEL, "max_parallel_executions_per_pod": 2.0}, MAX_PARALLEL),
    ({**LOW, "max_queued_executions": -1}, QUEUED_LOW_LATENCY),
    ({**LOW, "max_queued_executions": 100_001}, QUEUED_LOW_LATENCY),
    ({**LOW, "max_queued_executions": False}, QUEUED_LOW_LATENCY),
    ({**LOW, "max_queued_executions": "10"}, QUEUED_LOW_LATENCY),
    ({**LOW, "max_queued_executions": 5.0}, QUEUED_LOW_LATENCY),
    ({"max_queued_executions": 0}, QUEUED_ELASTIC),
    ({"max_queued_executions": 100_001}, QUEUED_ELASTIC),
    ({"max_queued_executions": True}, QUEUED_ELASTIC),
    ({"enable_parallel_executions": True}, LOW_LATENCY_ONLY),
    ({"enable_parallel_executions": "yes"}, LOW_LATENCY_ONLY),  # any true value, as before
    ({"mode": "elastic", "ram_request": "1GiB"}, LOW_LATENCY_ONLY),
    ({"gpu_request": 0}, LOW_LATENCY_ONLY),
    ({**LOW, "ram_request": "lots"}, "ram_request 'lots' is not a size"),
    ({**LOW, "ram_request": "1MiB"}, "ram_request '1MiB' is below 16MiB"),
    ({**LOW, "gpu_request": -1}, GPU),
    ({**LOW, "gpu_request": True}, GPU),
    ({**LOW, "gpu_request": 1.0}, GPU),
    ({**LOW, "gpu_request": "1"}, GPU),
    ({"execution_timeout_s": 0}, TIMEOUT),
    ({"execution_timeout_s": -1.5}, TIMEOUT),
    ({"execution_timeout_s": True}, TIMEOUT),
    ({"execution_timeout_s": "5"}, TIMEOUT),
]

# Several mistakes at once: the message is the first rule's, in the order check_options has
# always checked them.
FIRST_RULE_WINS = [
    ({"execution_rule": "cron", "mode": "warm"}, "execution_rule must be"),
    ({"mode": "warm", "endpoint_url_path": "Bad/Path"}, "mode must be"),
    ({**PERIODIC, "endpoint_url_path": "x", "schedule": None, "gpu_request": -1}, "endpoint_url_path only goes"),
    ({"endpoint_url_path": "Bad/Path", "schedule": "0 * * * *"}, BAD_PATH.format("Bad/Path")),
    ({**PERIODIC, "schedule": "* * * *", "endpoint_token": "a-token-long-enough"}, BAD_SCHEDULE),
    ({**PERIODIC, "endpoint_token": "a-token-long-enough", "max_parallel_executions_per_pod": 2}, "endpoint_token"),
    ({"schedule": "0 * * * *", "max_parallel_executions_per_pod": 2}, "schedule only goes"),
    ({"max_parallel_executions_per_pod": 0, "max_queued_executions": 0}, "max_parallel_executions_per_pod needs"),
    ({"enable_parallel_executions": True, "max_parallel_executions_per_pod": 0}, MAX_PARALLEL),
    ({"enable_parallel_executions": True, "max_queued_executions": 0}, QUEUED_ELASTIC),
    ({"max_queued_executions": 0, "gpu_request": 1}, QUEUED_ELASTIC),
    ({"ram_request": "lots"}, LOW_LATENCY_ONLY),
    ({"gpu_request": -1, "execution_timeout_s": 0}, LOW_LATENCY_ONLY),
    ({**LOW, "ram_request": "lots", "gpu_request": -1}, "ram_request 'lots' is not a size"),
    ({**LOW, "gpu_request": -1, "execution_timeout_s": 0}, GPU),
]


@pytest.mark.parametrize(
    ("body", "message"), REFUSALS + FIRST_RULE_WINS, ids=[repr(b) for b, _ in REFUSALS + FIRST_RULE_WINS]
)
def test_each_rule_refuses_with_its_message(body, message):
    with pytest.raises(InvalidInput) as info:
        check_options("d", body)
    assert info.value.message.startswith(message), info.value.message


def test_the_path_defaults_to_the_name_and_is_checked_as_such():
    assert check_options("my-dep", {"endpoint_url_path": None}).endpoint_url_path == "my-dep"
    with pytest.raises(InvalidInput) as info:
        check_options("Bad_Name", {})
    assert info.value.message.startswith(BAD_PATH.format("Bad_Name"))


def test_options_left_out_get_their_defaults_and_given_ones_are_kept_as_given():
    assert check_options("d", {"name": "d", "pipeline_name": "p", "inputs_mapping": []}).model_dump() == {
        "execution_rule": "endpoint",
        "mode": "elastic",
        "endpoint_url_path": "d",
        "schedule": None,
        "enable_parallel_executions": False,
        "max_parallel_executions_per_pod": 1,
        "max_queued_executions": 100,
        "ram_request": None,
        "gpu_request": None,
        "execution_timeout_s": None,
    }
    assert check_options("d", {"mode": None}).mode == check_options("d", {"mode": ""}).mode == "elastic"
    low = check_options("d", {**PARALLEL, "max_parallel_executions_per_pod": 1000, "max_queued_executions": 0})
    assert (low.max_parallel_executions_per_pod, low.max_queued_executions) == (1000, 0)
    assert check_options("d", {**LOW, "enable_parallel_executions": 0}).enable_parallel_executions is False
    sized = check_options("d", {**LOW, "ram_request": "1GiB", "gpu_request": 0, "execution_timeout_s": 5})
    assert (sized.ram_request, sized.gpu_request) == ("1GiB", 0)
    assert sized.execution_timeout_s == 5 and type(sized.execution_timeout_s) is int  # not made a float
    periodic = check_options("d", {**PERIODIC, "schedule": "@hourly", "endpoint_token": None})
    assert (periodic.schedule, periodic.endpoint_url_path, periodic.max_queued_executions) == ("0 * * * *", None, 100)


def test_options_are_frozen_and_keep_no_endpoint_token():
    options = check_options("d", {"endpoint_token": "a-token-long-enough"})
    assert options.endpoint_token is None and "a-token" not in repr(options)
    with pytest.raises(ValidationError):
        options.mode = "low_latency"  # type: ignore[misc]
    assert isinstance(options, DeploymentOptions)


def test_an_endpoint_caller_sees_its_code_s_error_but_not_the_platform_s():
    from rayline.domain.deployments import failure_for_caller

    assert failure_for_caller("d-1", "Failed", "ValueError: unlucky 13") == "ValueError: unlucky 13"
    told = failure_for_caller("d-2", "Error", "The pipeline's environment could not be set up: pip said ...")
    assert "pip said" not in told and "get_pipeline_execution('d-2')" in told
