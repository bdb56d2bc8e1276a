"""Resource metrics on the real platform (one local Ray node, sampled every second here: the
session's RAYLINE_RESOURCE_METRICS_INTERVAL_S), read by the published craft-ai-sdk client and by
RaylineSdk over HTTP. The numbers come from the Ray node's own metrics agent."""

from __future__ import annotations

import csv
import io
import re
import shutil
import warnings
from datetime import UTC, datetime, timedelta

import psutil
import pytest

with warnings.catch_warnings():  # importing the client turns every DeprecationWarning on, for good
    from craft_ai_sdk import CraftAiSdk
    from craft_ai_sdk.exceptions import SdkException as CraftSdkException

from rayline import SdkException
from tests.support import wait_until

SERIES = ("cpu_usage", "disk_usage", "ram_usage", "network_input_usage", "network_output_usage")
PERCENT = ("cpu_usage", "disk_usage", "ram_usage")


@pytest.fixture(scope="module")
def craft(platform):
    return CraftAiSdk(sdk_token=platform.token, environment_url=platform.url, control_url=platform.url)


def _complete(answer: dict) -> bool:
    """Every series has points (the network's need two samples: a rate is made from two)."""
    return all(answer["metrics"][name] and answer["metrics"][name][0]["values"] for name in SERIES)


def _closed_window(sdk) -> tuple[datetime, datetime]:
    """From now to the node's last sample seen once every series has points: a window already
    closed (the node's next samples are later), so that every request over it reads the same
    samples, whatever rounds are recorded between the requests. It starts now, not earlier: a
    test before may have restarted the session's platform, whose Ray node then had another id."""
    start = datetime.now(UTC)
    seen = wait_until(
        lambda: (answer := sdk.get_resource_metrics(start, datetime.now(UTC))) and _complete(answer) and answer,
        60,
        "two resource samples of the node",
        interval_s=0.5,
    )
    last = max(at for name in SERIES for at, _ in seen["metrics"][name][0]["values"])
    # The points' times are rounded to the millisecond, as is the end the clients send: 10 ms more
    # keeps that last sample in, and the next one, a second later, out.
    return start, datetime.fromtimestamp(last + 0.01, UTC)


def test_both_clients_read_the_nodes_usage_in_percent_and_bytes(platform, sdk, craft):
    start, end = _closed_window(sdk)
    ours = sdk.get_resource_metrics(start, end)
    theirs = craft.get_resource_metrics(start, end)

    for answer in (ours, theirs):
        assert set(answer) == {"additional_data", "metrics"}
        assert set(answer["metrics"]) == set(SERIES)  # no GPU here: no vram_usage nor gpu_usage
        totals = answer["additional_data"]
        assert set(totals) == {"total_disk", "total_ram"}
        assert 0 < totals["total_ram"] <= psutil.virtual_memory().total
        disk = shutil.disk_usage("/")
        assert abs(totals["total_disk"] - (disk.used + disk.free)) < 0.02 * (disk.used + disk.free)
        for name in SERIES:
            [series] = answer["metrics"][name]  # the platform's one Ray node
            assert re.fullmatch(r"[0-9a-f]{56}", series["metric"]["worker"]), series["metric"]  # its node id
            assert series["metric"]["is_head"] is True
            times = [at for at, _ in series["values"]]
            assert times == sorted(times) and start.timestamp() <= times[0] <= times[-1] <= end.timestamp()
            for _, value in series["values"]:
                assert 0 <= value <= 100 if name in PERCENT else value >= 0
        assert any(value > 0 for _, value in answer["metrics"]["ram_usage"][0]["values"])
        assert any(value > 0 for _, value in answer["metrics"]["disk_usage"][0]["values"])
    # One closed window: the published client is answered just as ours.
    assert theirs == ours


def test_the_csv_holds_the_same_series(sdk, craft):
    start, end = _closed_window(sdk)
    answer = sdk.get_resource_metrics(start, end)
    for client in (sdk, craft):
        content = client.get_resource_metrics(start, end, csv=True)
        assert isinstance(content, bytes)
        rows = list(csv.DictReader(io.StringIO(content.decode())))
        assert rows and list(rows[0]) == ["timestamp", "date", "worker", "metric", "value"]
        assert {row["metric"] for row in rows} == set(SERIES)
        assert all(0 <= float(row["value"]) <= 100 for row in rows if row["metric"] in PERCENT)
        # The same closed window, so the same points, whatever was recorded since.
        assert len(rows) == sum(len(series["values"]) for name in SERIES for series in answer["metrics"][name])


def test_a_bad_window_is_a_400_that_says_what_to_change(platform, sdk, craft, api):
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="start_date must be at or before end_date"):
        sdk.get_resource_metrics(now, now - timedelta(hours=1))  # before any request
    with pytest.raises(CraftSdkException) as info:  # the published client sends it: the platform refuses
        craft.get_resource_metrics(now, now - timedelta(hours=1))
    assert info.value.status_code == 400 and "is before start" in info.value.message
    with pytest.raises(SdkException) as ours:
        sdk.get_resource_metrics(now - timedelta(days=40), now)
    assert ours.value.status_code == 400 and "ask for at most 31 days at a time" in ours.value.message
    end = str(int(now.timestamp() * 1000))
    for params, message in (
        ({"end": end}, "start is missing"),
        ({"start": "last-week", "end": end}, "start must be a whole number of milliseconds since the epoch"),
        ({"start": end, "end": end, "download": "maybe"}, "download must be true"),
    ):
        response = api.get("/resource-metrics", params=params)
        assert response.status_code == 400 and message in response.json()["message"], response.text
