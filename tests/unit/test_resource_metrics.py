"""Resource metrics without Ray: the Prometheus text of Ray's metrics agents (real text captured
from a Ray 2.60 head and worker, in tests/unit/ray_metrics), the window a query may ask for,
how samples become craft-ai-sdk's series and CSV in SQL, and their retention (SQLite and
PostgreSQL), the sampling loop, the settings, and the route over the real application
(tests/fakes.py)."""

from __future__ import annotations

import csv
import http.server
import io
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from rayline import RaylineSdk
from rayline.config import Settings, describe_settings_error
from rayline.domain.resource_metrics import (
    MAX_POINTS_PER_SERIES,
    NodeSample,
    Window,
    parse_download,
    parse_window,
    to_csv,
)
from rayline.errors import InvalidInput
from rayline.ports import free_port
from rayline.runtime.node_metrics import RayNodeMetrics, node_sample, parse_prometheus
from rayline.services.resource_metrics import ResourceMetricsService, ResourceSampler
from rayline.store.resource_metrics import add as store_add
from tests.fakes import platform_factory

CAPTURED = Path(__file__).resolve().parent / "ray_metrics"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GiB = 1024**3


def sample(node_id: str, **fields) -> NodeSample:
    values = {
        "node_ip": "10.0.0.1",
        "is_head": False,
        "cpu_percent": 10.0,
        "ram_used_bytes": 4 * GiB,
        "ram_total_bytes": 16 * GiB,
        "disk_used_bytes": 25 * GiB,
        "disk_total_bytes": 100 * GiB,
        "network_received_bytes": 0,
        "network_sent_bytes": 0,
    }
    return NodeSample(node_id=node_id, **{**values, **fields})


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def answer(db, timed: list[tuple[datetime, NodeSample]], window: Window, interval_s: float = 10.0) -> dict:
    """The answer over ``window`` once ``timed`` (each sample at the time its node was read) is
    recorded: the series are made in SQL."""
    service = ResourceMetricsService(db, retention_s=31 * 86400, clock=lambda: window.end, interval_s=interval_s)
    service.record([replace(node, sampled_at=at) for at, node in timed])
    return service.report(window)


# --- Ray's metrics agent -------------------------------------------------------------------------


def test_the_text_of_a_real_head_and_worker_gives_each_node_its_numbers():
    head = node_sample("head-id", "192.0.2.2", True, (CAPTURED / "head.prom").read_text())
    worker = node_sample("worker-id", "192.0.2.2", False, (CAPTURED / "worker.prom").read_text())
    # The values of the captured lines (ray_node_cpu_utilization, _mem_used, _mem_total, ...).
    assert head == NodeSample(
        node_id="head-id",
        node_ip="192.0.2.2",
        is_head=True,
        cpu_percent=58.9,
        ram_used_bytes=872_570_880,
        ram_total_bytes=25_276_059_648,
        disk_used_bytes=41_771_728_896,
        disk_total_bytes=41_771_728_896 + 67_172_564_992,  # used + free
        network_received_bytes=9_527_021_505,
        network_sent_bytes=13_621_227,
    )
    assert worker is not None and worker.is_head is False and worker.cpu_percent == 0.0
    assert worker.ram_used_bytes == 843_173_888 and worker.gpu_percent is None and worker.vram_total_bytes is None


def test_the_other_metrics_of_the_agent_and_its_comments_are_passed_over():
    text = (CAPTURED / "worker.prom").read_text()
    assert "python_gc_objects_collected_total" in text and "ray_component_cpu_percentage" in text
    names = {series.name for series in parse_prometheus(text)}
    assert names and all(name.startswith("ray_node_") for name in names)
    assert "ray_node_cpu_utilization" in names and "ray_node_network_sent" in names


def test_label_values_with_quotes_commas_and_braces_are_read_whole():
    text = 'ray_node_cpu_utilization{ip="10.0.0.1",note="a \\"b\\", {c}",x=""} 12.5 1700000000000\n'
    [series] = parse_prometheus(text)
    assert series.labels == {"ip": "10.0.0.1", "note": 'a "b", {c}', "x": ""} and series.value == 12.5


def test_a_node_with_gpus_gets_their_mean_utilization_and_their_memory_summed_in_bytes():
    # Lines as Ray 2.60's reporter writes them for two GPUs (GPU memory in MiB, see node_metrics).
    labels = 'GpuDeviceName="NVIDIA H200",GpuIndex="{i}",IsHeadNode="false",ip="192.0.2.2"'
    gpus = "".join(
        f"ray_node_gpus_utilization{{{labels.format(i=i)}}} {utilization}\n"
        f"ray_node_gram_used{{{labels.format(i=i)}}} {used}\n"
        f"ray_node_gram_available{{{labels.format(i=i)}}} {available}\n"
        for i, utilization, used, available in ((0, 30.0, 1000.0, 3000.0), (1, 90.0, 3000.0, 1000.0))
    )
    node = node_sample("gpu-id", "192.0.2.2", False, (CAPTURED / "worker.prom").read_text() + gpus)
    assert node is not None and node.gpu_percent == 60.0
    assert node.vram_used_bytes == 4000 * 1024**2 and node.vram_total_bytes == 8000 * 1024**2


def test_an_agent_that_exports_no_node_numbers_yet_gives_no_sample():
    before_first_report = "\n".join(
        line for line in (CAPTURED / "worker.prom").read_text().splitlines() if "ray_node_cpu" not in line
    )
    assert node_sample("n", "192.0.2.2", False, before_first_report) is None
    assert node_sample("n", "192.0.2.2", False, "") is None


def test_rays_placeholder_disk_in_a_kubernetes_pod_is_an_unknown_disk():
    # Without RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE=1 in a pod, Ray reports a disk of 1 byte, none used.
    text = "\n".join(
        line
        for line in (CAPTURED / "worker.prom").read_text().splitlines()
        if not line.startswith(("ray_node_disk_usage", "ray_node_disk_free"))
    )
    text += '\nray_node_disk_usage{ip="192.0.2.2"} 0.0\nray_node_disk_free{ip="192.0.2.2"} 1.0\n'
    node = node_sample("pod", "192.0.2.2", False, text)
    assert node is not None and (node.disk_used_bytes, node.disk_total_bytes) == (0, 0)
    assert node.ram_total_bytes > 0  # the rest of the node is read as ever


def test_a_node_of_unknown_disk_has_no_disk_series_and_adds_nothing_to_total_disk(any_database):
    unknown = sample("pod", disk_used_bytes=0, disk_total_bytes=0)
    got = answer(any_database, [(T0, unknown), (T0, sample("vm"))], Window(T0, T0 + timedelta(minutes=1)))
    assert [item["metric"]["worker"] for item in got["metrics"]["disk_usage"]] == ["vm"]
    assert {item["metric"]["worker"] for item in got["metrics"]["ram_usage"]} == {"pod", "vm"}
    assert got["additional_data"] == {"total_disk": 100 * GiB, "total_ram": 32 * GiB}


def serve(handler_body) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A real HTTP server on 127.0.0.1 whose GET runs ``handler_body(handler)``."""

    class Agent(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            handler_body(self)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def ray_node(node_id: str, port: int, head: bool = False, **fields) -> dict:
    resources = {"CPU": 1.0, **({"node:__internal_head__": 1.0} if head else {})}
    entry = {"NodeID": node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1", "MetricsExportPort": port}
    return {**entry, "Resources": resources, **fields}


@pytest.fixture
def agent():
    """A real HTTP server on 127.0.0.1 answering /metrics with the captured head's text, as
    the head's metrics agent does."""
    text = (CAPTURED / "head.prom").read_bytes()

    class Agent(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_each_live_node_is_read_from_its_agent_and_a_silent_one_is_named_once(agent, monkeypatch, caplog):
    silent_port = free_port()  # nothing listens there
    nodes = [
        {
            "NodeID": "h" * 56,
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "MetricsExportPort": agent,
            "Resources": {"CPU": 1.0, "node:__internal_head__": 1.0},
        },
        {
            "NodeID": "s" * 56,
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "MetricsExportPort": silent_port,
            "Resources": {"CPU": 1.0},
        },
        {
            "NodeID": "d" * 56,
            "Alive": False,
            "NodeManagerAddress": "127.0.0.1",
            "MetricsExportPort": agent,
            "Resources": {},
        },  # Ray keeps lost nodes in its table, dead: not sampled
    ]
    monkeypatch.setattr("ray.nodes", lambda: nodes)  # what Ray's GCS would list; the HTTP reads are real
    read = RayNodeMetrics(timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="rayline.runtime.node_metrics"):
        first, second = read(), read()
    for samples in (first, second):
        assert [(s.node_id, s.is_head, s.cpu_percent) for s in samples] == [("h" * 56, True, 58.9)]
    # Each sample is at the time its node was read (not one time for the round).
    assert first[0].sampled_at is not None and first[0].sampled_at < second[0].sampled_at
    assert abs((datetime.now(UTC) - second[0].sampled_at).total_seconds()) < 60
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "s" * 56 in warnings[0] and f"127.0.0.1:{silent_port}" in warnings[0]


def test_a_node_whose_read_fails_in_any_way_is_left_out_alone_and_named_once(agent, monkeypatch, caplog):
    good = ray_node("g" * 56, agent)
    odd = ray_node("o" * 56, agent, Resources=1)  # an entry Ray never gives: a TypeError in the read
    monkeypatch.setattr("ray.nodes", lambda: [good, odd])
    read = RayNodeMetrics(timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="rayline.runtime.node_metrics"):
        rounds = [read(), read()]
    assert all([s.node_id for s in samples] == ["g" * 56] for samples in rounds)
    [warning] = caplog.records
    assert "o" * 56 in warning.getMessage() and "TypeError" in warning.getMessage() and warning.exc_info


def test_a_node_that_left_the_cluster_is_forgotten_and_named_again_if_it_comes_back_silent(monkeypatch, caplog):
    silent = ray_node("s" * 56, free_port())  # nothing listens there
    listed = [[silent], [], [silent], [silent]]  # gone from ray.nodes() in the second round
    monkeypatch.setattr("ray.nodes", lambda: listed.pop(0))
    read = RayNodeMetrics(timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="rayline.runtime.node_metrics"):
        for _ in range(4):
            assert read() == []
    assert len(caplog.records) == 2 and read._silent == {"s" * 56}


def test_an_answer_past_the_byte_cap_or_the_deadline_is_cut_off(agent, monkeypatch, caplog):
    def drip(handler):  # a line every 0.2 s, without end (until the client leaves)
        handler.send_response(200)
        handler.end_headers()
        try:
            while True:
                handler.wfile.write(b"# slow\n")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    server, slow_port = serve(drip)
    try:
        nodes = [ray_node("h" * 56, agent)]
        monkeypatch.setattr("ray.nodes", lambda: nodes)
        with caplog.at_level(logging.WARNING, logger="rayline.runtime.node_metrics"):
            # The captured head's text is 11 kB: a 1 KiB cap cuts it off.
            assert RayNodeMetrics(timeout_s=5, max_bytes=1024)() == []
            nodes.append(ray_node("d" * 56, slow_port))
            began = time.monotonic()
            [sample] = RayNodeMetrics(timeout_s=1)()
            took = time.monotonic() - began
    finally:
        server.shutdown()
        server.server_close()
    assert sample.node_id == "h" * 56 and took < 4  # each read waits 1 s at most, the answer 1 s in all
    messages = [r.getMessage() for r in caplog.records]
    assert any("h" * 56 in m and "was cut off: it answered more than 1 KiB" in m for m in messages), messages
    assert any("d" * 56 in m and "was cut off: its answer took more than 1 s" in m for m in messages), messages


def test_the_agents_are_read_without_the_environments_proxy(agent, monkeypatch):
    proxied = []

    def proxy(handler):  # what a read through the environment's proxy would reach
        proxied.append(handler.path)
        handler.send_response(502)
        handler.end_headers()

    server, proxy_port = serve(proxy)
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr("ray.nodes", lambda: [ray_node("h" * 56, agent, head=True)])
        assert [s.node_id for s in RayNodeMetrics(timeout_s=2)()] == ["h" * 56]
    finally:
        server.shutdown()
        server.server_close()
    assert proxied == []


# --- the window ----------------------------------------------------------------------------------


def test_a_window_is_two_epoch_milliseconds_end_at_or_after_start():
    window = parse_window(ms(T0), ms(T0 + timedelta(hours=1)))
    assert window == Window(T0, T0 + timedelta(hours=1))
    assert parse_window(ms(T0), ms(T0)).start == T0  # an empty window is a question too


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (None, "1", "start is missing: give it in milliseconds since the epoch"),
        ("1", "", "end is missing"),
        ("yesterday", "1", "start must be a whole number of milliseconds since the epoch (UTC)"),
        ("1", "1.5", "end must be a whole number of milliseconds"),
        ("-1", "1", "start must be from 0 (1970-01-01) to 253402300799999"),
        ("1", "99999999999999999999", "end must be from 0"),
        (ms(T0), ms(T0 - timedelta(seconds=1)), "is before start"),
        (ms(T0), ms(T0 + timedelta(days=31, seconds=1)), "spans 31.0 days; ask for at most 31 days at a time"),
    ],
)
def test_a_bad_window_names_the_parameter_and_the_fix(start, end, message):
    with pytest.raises(InvalidInput) as info:
        parse_window(start, end)
    assert message in info.value.message


def test_download_is_pythons_true_or_false_in_any_case():
    assert [parse_download(v) for v in ("True", "true", "1", "False", "false", "0", None, "")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    with pytest.raises(InvalidInput, match="download must be true"):
        parse_download("csv")


# --- series, totals and CSV ----------------------------------------------------------------------


def test_each_node_is_a_series_in_percent_and_the_network_in_bytes_per_second(any_database):
    t = [T0 + timedelta(seconds=seconds) for seconds in (0, 10, 20, 120)]
    samples = [
        (t[0], sample("a", is_head=True, cpu_percent=20.0, network_received_bytes=1000, network_sent_bytes=50)),
        (t[0], sample("b", cpu_percent=50.0, ram_used_bytes=8 * GiB, network_received_bytes=5000)),
        # a's sent counter goes back (no rate across it); b is read 2 s after a (its own time).
        (t[1], sample("a", is_head=True, cpu_percent=40.0, network_received_bytes=6000)),
        (
            t[1] + timedelta(seconds=2),
            sample("b", cpu_percent=70.0, ram_used_bytes=12 * GiB, network_received_bytes=6200),
        ),
        # b restarted: its received counter starts again from 0, no rate across that.
        (t[2], sample("a", is_head=True, network_received_bytes=8000, network_sent_bytes=150)),
        (t[2], sample("b", network_received_bytes=100)),
        # a, 100 s after its last sample (the control plane was away): counters that grew, but
        # more than 3 intervals (3 x 10 s) apart, so no rate. b is gone.
        (t[3], sample("a", is_head=True, network_received_bytes=9000, network_sent_bytes=1150)),
    ]
    got = answer(any_database, samples, Window(T0, T0 + timedelta(minutes=5)), interval_s=10)
    t0 = T0.timestamp()
    assert list(got["metrics"]) == [
        "cpu_usage",
        "disk_usage",
        "ram_usage",
        "network_input_usage",
        "network_output_usage",
    ]  # no GPU in the window: no vram_usage nor gpu_usage
    cpu = {item["metric"]["worker"]: item for item in got["metrics"]["cpu_usage"]}
    assert list(cpu) == ["a", "b"]  # in the order they first appear
    assert cpu["a"]["metric"] == {"worker": "a", "node_ip": "10.0.0.1", "is_head": True}
    assert cpu["a"]["values"] == [[t0, 20.0], [t0 + 10, 40.0], [t0 + 20, 10.0], [t0 + 120, 10.0]]
    assert cpu["b"]["values"] == [[t0, 50.0], [t0 + 12, 70.0], [t0 + 20, 10.0]]
    ram_b = next(item for item in got["metrics"]["ram_usage"] if item["metric"]["worker"] == "b")
    assert ram_b["values"] == [[t0, 50.0], [t0 + 12, 75.0], [t0 + 20, 25.0]]
    assert all(v == 25.0 for item in got["metrics"]["disk_usage"] for _, v in item["values"])
    received = {item["metric"]["worker"]: item["values"] for item in got["metrics"]["network_input_usage"]}
    # a: 5000 B in 10 s, 2000 B in 10 s, none over the 100 s gap; b: 1200 B in 12 s, then reset.
    assert received == {"a": [[t0 + 10, 500], [t0 + 20, 200]], "b": [[t0 + 12, 100]]}
    sent = {item["metric"]["worker"]: item["values"] for item in got["metrics"]["network_output_usage"]}
    assert sent["a"] == [[t0 + 20, 15]]  # 50 -> 0 went back: no rate at t0 + 10
    assert sent["b"] == [[t0 + 12, 0], [t0 + 20, 0]]
    # The totals are those of the nodes still sampled at the window's end (a alone), not every
    # node the window saw.
    assert got["additional_data"] == {"total_disk": 100 * GiB, "total_ram": 16 * GiB}


def test_a_node_that_missed_a_round_is_still_in_the_totals(any_database):
    samples = [(T0, sample("a")), (T0, sample("b")), (T0 + timedelta(seconds=10), sample("a"))]
    got = answer(any_database, samples, Window(T0, T0 + timedelta(minutes=1)), interval_s=10)
    assert got["additional_data"] == {"total_disk": 200 * GiB, "total_ram": 32 * GiB}


def test_gpu_series_and_total_vram_come_with_a_node_that_has_gpus(any_database):
    gpu = {"gpu_percent": 80.0, "vram_used_bytes": 30 * GiB, "vram_total_bytes": 120 * GiB}
    samples = [(T0, sample("cpu-node")), (T0, sample("gpu-node", **gpu))]
    got = answer(any_database, samples, Window(T0, T0 + timedelta(minutes=1)))
    assert got["additional_data"] == {"total_disk": 200 * GiB, "total_ram": 32 * GiB, "total_vram": 120 * GiB}
    assert [item["metric"]["worker"] for item in got["metrics"]["gpu_usage"]] == ["gpu-node"]
    assert got["metrics"]["gpu_usage"][0]["values"] == [[T0.timestamp(), 80.0]]
    assert got["metrics"]["vram_usage"][0]["values"] == [[T0.timestamp(), 25.0]]
    assert len(got["metrics"]["cpu_usage"]) == 2


def test_an_empty_window_has_empty_series_and_zero_totals(any_database):
    got = answer(any_database, [], Window(T0, T0))
    assert got["additional_data"] == {"total_disk": 0, "total_ram": 0}
    assert all(series == [] for series in got["metrics"].values())


def test_a_long_window_is_answered_in_at_most_a_thousand_points_each_a_mean(any_database):
    count = 3 * MAX_POINTS_PER_SERIES
    samples = [
        (T0 + timedelta(seconds=i), sample("a", cpu_percent=float(i % 2) * 100, network_received_bytes=i * (i % 3)))
        for i in range(count)
    ]
    few = [(T0 + timedelta(seconds=10 * i), sample("few", cpu_percent=float(i))) for i in range(5)]
    got = answer(any_database, samples + few, Window(T0, T0 + timedelta(seconds=count)), interval_s=1)
    cpu = {item["metric"]["worker"]: item["values"] for item in got["metrics"]["cpu_usage"]}
    values = cpu["a"]
    assert len(values) == MAX_POINTS_PER_SERIES
    assert {value for _, value in values} == {33.33, 66.67}  # 3 samples a step: 0, 100, 0 or 100, 0, 100
    times = [at for at, _ in values]
    assert times == sorted(times) and times[-1] == (T0 + timedelta(seconds=count - 1)).timestamp()
    assert times[:2] == [T0.timestamp() + 2, T0.timestamp() + 5]  # each step's last sample
    # Rates are made from consecutive samples, then averaged over a step: the received counter
    # goes 0, 3k+1, 2(3k+2), then 3(k+1) * 0: a reset every third second.
    received = next(item["values"] for item in got["metrics"]["network_input_usage"] if item["metric"]["worker"] == "a")
    assert len(received) == MAX_POINTS_PER_SERIES
    assert received[1] == [T0.timestamp() + 5, round(((4 - 0) + (10 - 4)) / 2)]  # 4 B/s and 6 B/s; the reset left out
    # A node with no more samples than a series may have points keeps each.
    assert cpu["few"] == [[T0.timestamp() + 10 * i, float(i)] for i in range(5)]


def test_the_csv_has_one_row_per_timestamp_worker_and_metric(any_database):
    samples = [
        (T0, sample("b", network_received_bytes=0)),
        (T0, sample("a")),
        (T0 + timedelta(seconds=15), sample("b", network_received_bytes=1500)),
        (T0 + timedelta(seconds=15), sample("a")),
    ]
    got = answer(any_database, samples, Window(T0, T0 + timedelta(minutes=1)))
    rows = list(csv.DictReader(io.StringIO(to_csv(got).decode())))
    points = sum(len(item["values"]) for series in got["metrics"].values() for item in series)
    assert len(rows) == points == 2 * 3 * 2 + 2 * 2  # 3 gauges each round, 2 rates at the second
    assert list(rows[0]) == ["timestamp", "date", "worker", "metric", "value"]
    assert rows[0] == {
        "timestamp": str(T0.timestamp()),
        "date": "2026-12-01T12:00:00.000Z",
        "worker": "a",
        "metric": "cpu_usage",
        "value": "10.0",
    }
    keys = [(float(r["timestamp"]), r["worker"], r["metric"]) for r in rows]
    assert keys == sorted(keys)
    received = [row for row in rows if row["metric"] == "network_input_usage"]
    assert [(row["worker"], row["value"]) for row in received] == [("a", "0"), ("b", "100")]  # 1500 B in 15 s


# --- retention in SQL, and the sampling loop ----------------------------------------------------


def test_samples_are_kept_for_the_retention_and_read_back_by_window(any_database):
    now = [T0]
    service = ResourceMetricsService(any_database, retention_s=3600, clock=lambda: now[0])
    gpu = {"gpu_percent": 5.0, "vram_used_bytes": 1, "vram_total_bytes": 140 * GiB}
    for minutes in (0, 30, 60, 90):
        now[0] = T0 + timedelta(minutes=minutes)
        forgotten = service.record([sample("a", cpu_percent=float(minutes)), sample("g", **gpu)])
        assert forgotten == (2 if minutes == 90 else 0)  # the round of minute 0 is past the hour
    everything = service.report(Window(T0 - timedelta(days=1), T0 + timedelta(days=1)))
    cpu_a = next(item for item in everything["metrics"]["cpu_usage"] if item["metric"]["worker"] == "a")
    assert [value for _, value in cpu_a["values"]] == [30.0, 60.0, 90.0]
    assert everything["additional_data"]["total_vram"] == 140 * GiB  # read back with its GPU columns
    middle = service.report(Window(T0 + timedelta(minutes=30), T0 + timedelta(minutes=60)))  # both ends in
    cpu_a = next(item for item in middle["metrics"]["cpu_usage"] if item["metric"]["worker"] == "a")
    assert [value for _, value in cpu_a["values"]] == [30.0, 60.0]
    assert service.record([]) == 0  # a round with no node answering still forgets what is past


def test_the_sampler_goes_on_after_a_failing_round_and_stops_when_asked(any_database):
    service = ResourceMetricsService(any_database, retention_s=3600)
    calls = []

    def sample_nodes() -> list[NodeSample]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the GCS is briefly away")
        return [sample("a")]

    stop = threading.Event()
    thread = threading.Thread(target=ResourceSampler(service, sample_nodes, interval_s=0.01).run, args=(stop,))
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while len(calls) < 3 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.01)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and len(calls) >= 3
    answer = service.report(Window(datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC)))
    assert len(answer["metrics"]["cpu_usage"][0]["values"]) >= 2


def test_a_window_older_than_the_retention_is_read_from_what_can_be_kept(any_database):
    now = T0 + timedelta(days=2)
    service = ResourceMetricsService(any_database, retention_s=86400, clock=lambda: now)
    store_add(any_database, T0, [sample("a")])  # older than the retention, not yet deleted
    assert service.report(Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1)))["metrics"]["cpu_usage"] == []
    service.record([sample("a", cpu_percent=42.0)])
    got = service.report(Window(T0, now))
    assert got["metrics"]["cpu_usage"][0]["values"] == [[now.timestamp(), 42.0]]


@pytest.mark.parametrize(
    ("interval", "retention", "ok"),
    [("15", "30", True), ("15", "29", False), ("1", str(31 * 86400), True), ("1", str(31 * 86400 + 1), False)],
)
def test_the_retention_is_from_two_intervals_to_31_days(monkeypatch, interval, retention, ok):
    monkeypatch.setenv("RAYLINE_RESOURCE_METRICS_INTERVAL_S", interval)
    monkeypatch.setenv("RAYLINE_RESOURCE_METRICS_RETENTION_S", retention)
    if ok:
        Settings()
        return
    with pytest.raises(ValidationError) as info:
        Settings()
    [line] = describe_settings_error(info.value)
    assert line.startswith(f"RAYLINE_RESOURCE_METRICS_RETENTION_S ({retention} s) must be at least twice ")
    assert f"RAYLINE_RESOURCE_METRICS_INTERVAL_S ({interval} s) and at most 2678400 (31 days" in line


def test_our_sdk_refuses_a_start_after_the_end_before_any_request():
    sdk = RaylineSdk(sdk_token="t" * 20, environment_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ValueError, match="start_date must be at or before end_date"):
        sdk.get_resource_metrics(T0, T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="datetime.datetime objects"):
        sdk.get_resource_metrics("2026-12-01", T0)


# --- the route -----------------------------------------------------------------------------------


@pytest.fixture
def make_platform(tmp_path, monkeypatch):
    yield from platform_factory(tmp_path, monkeypatch)


def test_the_route_answers_json_csv_and_clear_400s(make_platform):
    platform = make_platform()
    platform.context.resource_metrics.record([sample("a", is_head=True), sample("b")])
    now = datetime.now(UTC)
    window = {"start": ms(now - timedelta(minutes=5)), "end": ms(now + timedelta(minutes=1))}

    response = platform.client.get("/api/v1/resource-metrics", params={**window, "download": "False"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["additional_data"] == {"total_disk": 200 * GiB, "total_ram": 32 * GiB}
    assert sorted(item["metric"]["worker"] for item in body["metrics"]["ram_usage"]) == ["a", "b"]

    download = platform.client.get("/api/v1/resource-metrics", params={**window, "download": "True"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == 6 and {row["metric"] for row in rows} == {"cpu_usage", "disk_usage", "ram_usage"}

    for params, message in (
        ({"end": window["end"]}, "start is missing"),
        ({**window, "end": "soon"}, "end must be a whole number of milliseconds"),
        ({"start": window["end"], "end": window["start"]}, "is before start"),
        ({**window, "download": "yes please"}, "download must be true"),
    ):
        refused = platform.client.get("/api/v1/resource-metrics", params=params)
        assert refused.status_code == 400, refused.text
        assert refused.json()["name"] == "InvalidInput" and message in refused.json()["message"]
    anonymous = platform.client.get("/api/v1/resource-metrics", params=window, headers={"Authorization": ""})
    assert anonymous.status_code == 401
