"""Pod settings of low-latency deployments: their rules, what Serve is asked for, and the status a
deployment shows from Serve's state."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rayline.domain.pod_scaling import PodScaling, check_scaling, describe_scaling
from rayline.errors import InvalidInput
from rayline.runtime.serve_deployments import serving_options
from rayline.services.deployments import _status_from_serve

CAP = 16


def test_the_defaults_are_one_pod_always_on():
    assert check_scaling({}, "low_latency", CAP) == PodScaling(1, 1, 60.0, 600.0)
    assert check_scaling({}, "elastic", CAP) is None
    assert serving_options(PodScaling(), 1) == {"num_replicas": 1}  # no autoscaler: today's behaviour


def test_max_pods_follows_min_pods_on_a_new_deployment_and_is_kept_on_an_update():
    assert check_scaling({"min_pods": 3}, "low_latency", CAP).max_pods == 3
    assert check_scaling({"min_pods": 0}, "low_latency", CAP).max_pods == 1
    current = PodScaling(1, 4, 30.0, 600.0)
    assert check_scaling({"min_pods": 2}, "low_latency", CAP, current) == PodScaling(2, 4, 30.0, 600.0)
    assert check_scaling({"standby_after_s": 5}, "low_latency", CAP, current).standby_after_s == 5.0


@pytest.mark.parametrize(
    ("given", "mode", "field"),
    [
        ({"min_pods": 1}, "elastic", "min_pods"),
        ({"standby_after_s": 10}, "elastic", "standby_after_s"),
        ({"min_pods": -1}, "low_latency", "min_pods"),
        ({"min_pods": 1.0}, "low_latency", "min_pods"),
        ({"min_pods": True}, "low_latency", "min_pods"),
        ({"min_pods": "2"}, "low_latency", "min_pods"),
        ({"min_pods": 17}, "low_latency", "min_pods"),
        ({"max_pods": 0}, "low_latency", "max_pods"),
        ({"max_pods": 17}, "low_latency", "max_pods"),
        ({"min_pods": 3, "max_pods": 2}, "low_latency", "max_pods"),
        ({"scale_down_after_s": 0}, "low_latency", "scale_down_after_s"),
        ({"scale_down_after_s": -1}, "low_latency", "scale_down_after_s"),
        ({"scale_down_after_s": float("nan")}, "low_latency", "scale_down_after_s"),
        ({"standby_after_s": float("inf")}, "low_latency", "standby_after_s"),
        ({"standby_after_s": "10"}, "low_latency", "standby_after_s"),
        ({"standby_after_s": False}, "low_latency", "standby_after_s"),
    ],
)
def test_bad_settings_name_their_field(given, mode, field):
    with pytest.raises(InvalidInput) as raised:
        check_scaling(given, mode, CAP)
    assert raised.value.message.startswith(field) or field in raised.value.message


def test_the_cap_is_the_platforms():
    assert check_scaling({"max_pods": 40}, "low_latency", 64).max_pods == 40
    with pytest.raises(InvalidInput, match="RAYLINE_MAX_PODS_PER_DEPLOYMENT"):
        check_scaling({"max_pods": 40}, "low_latency", 16)


def test_an_update_that_would_put_min_above_max_says_to_raise_max_too():
    with pytest.raises(InvalidInput, match="raise max_pods too"):
        check_scaling({"min_pods": 3}, "low_latency", CAP, PodScaling(1, 2))


def test_serve_autoscales_between_min_and_max_pods_from_the_settings():
    options = serving_options(PodScaling(0, 3, 30.0, 120.0), max_parallel_executions=4)
    config = options["autoscaling_config"]
    assert (config.min_replicas, config.max_replicas, config.initial_replicas) == (0, 3, 1)
    assert config.target_ongoing_requests == 4  # a pod is added once each has its slots busy
    assert (config.downscale_delay_s, config.downscale_to_zero_delay_s) == (30.0, 120.0)
    assert config.upscale_delay_s <= 2 and config.look_back_period_s > config.metrics_interval_s


def _state(status, **replicas):
    return SimpleNamespace(status=status, message="", replica_states=replicas)


@pytest.mark.parametrize(
    ("state", "scaling", "has_been_up", "expected"),
    [
        (_state("RUNNING", RUNNING=1), PodScaling(), True, "up"),
        (_state("RUNNING"), PodScaling(), True, "up"),  # a fixed pod count: Serve's status says it
        (_state("RUNNING"), PodScaling(0, 2), True, "standby"),
        (_state("RUNNING", STOPPING=1), PodScaling(0, 2), True, "up"),  # the last pod still drains
        (_state("RUNNING", STARTING=1), PodScaling(0, 2), True, "creation_pending"),  # woken by a call
        (_state("RUNNING", RUNNING=2, STARTING=1), PodScaling(1, 3), True, "up"),
        (_state("DEPLOYING", STARTING=1), PodScaling(0, 2), False, "creation_pending"),
        (_state("DEPLOY_FAILED"), PodScaling(0, 2), False, "creation_failed"),
        (_state("RUNNING"), PodScaling(1, 3), True, "up"),
    ],
)
def test_the_status_shown_from_serves_state(state, scaling, has_been_up, expected):
    assert _status_from_serve(state, has_been_up, scaling) == expected


def test_the_settings_are_told_in_words():
    assert describe_scaling(PodScaling()) == "1 pod(s), always on"
    assert "standby after 600 s without a call" in describe_scaling(PodScaling(0, 2))


def test_only_a_new_application_is_given_an_initial_pod_count():
    # Ray 2.60 resets the replica target to initial_replicas at each change of the config: an
    # update of the pod settings must not (a deployment in standby would wake, a busy one shrink).
    assert serving_options(PodScaling(0, 3), 1, new=True)["autoscaling_config"].initial_replicas == 1
    assert serving_options(PodScaling(0, 3), 1, new=False)["autoscaling_config"].initial_replicas is None
    assert serving_options(PodScaling(2, 4), 1, new=True)["autoscaling_config"].initial_replicas == 2
