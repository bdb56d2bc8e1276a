"""The control plane's sweep of pods that died without a word (rayline.services.pod_sweeper), on a
real SQLite database, with what Ray knows handed in; and the writer's commit that durable replies
wait for (rayline.store.record_writer.RecordWriter.committed)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from rayline.domain.failures import CONTROL_PLANE_GONE_ERROR, DEAD_POD_ERROR
from rayline.services.pod_sweeper import PodSweeper
from rayline.store import migrate, pods
from rayline.store.db import Database
from rayline.store.executions import end_unfinished_executions
from rayline.store.models import Deployment, DeploymentLog, Execution, Pod, utcnow
from rayline.store.record_sql import sql_sink
from rayline.store.record_writer import RecordWriter


def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    with db.session() as session:
        session.add(
            Deployment(name="dep", pipeline_name="pipe", mode="low_latency", execution_rule="endpoint", status="up")
        )
    return db


def running(db: Database, execution_id: str, pod_id: str | None) -> None:
    with db.session() as session:
        session.add(
            Execution(
                execution_id=execution_id,
                pipeline_name="pipe",
                deployment_name="dep",
                pod_id=pod_id,
                status="Running",
                inputs=[],
                outputs=[],
                created_at=utcnow(),
            )
        )


def status(db: Database, execution_id: str) -> tuple[str, str | None]:
    with db.session() as session:
        row = session.get(Execution, execution_id)
        return row.status, row.error


NODES = ("head-node", "node-a", "node-b")


def sweeper(db, tmp_path, dead_nodes=(), alive=(), grace_s=0.0) -> PodSweeper:
    return PodSweeper(
        db,
        sql_sink(db),
        tmp_path / "journal",
        nodes=lambda: {node: node not in dead_nodes for node in NODES},
        live_pods=lambda: set(alive),
        node_death_grace_s=grace_s,
    )


def test_a_gone_pod_on_a_node_said_alive_waits_for_ray_to_tell_whether_its_node_is_lost(tmp_path):
    db = database(tmp_path)
    pods.register(db, "dep", "unreachable", 1, [], node_id="node-a")
    pods.register(db, "dep", "crashed", 1, [], node_id="node-b")
    running(db, "dep-1", "unreachable")
    running(db, "dep-2", "crashed")
    now = [0.0]
    dead: set[str] = set()
    sweep = PodSweeper(
        db,
        sql_sink(db),
        tmp_path / "journal",
        nodes=lambda: {node: node not in dead for node in NODES},
        live_pods=set,  # Serve replaced both
        node_death_grace_s=45,
        clock=lambda: now[0],
    )
    assert sweep.sweep() == 0 and status(db, "dep-1") == ("Running", None)
    now[0], dead = 20.0, {"node-a"}  # Ray has now declared node-a lost
    assert sweep.sweep() == 1 and "node-a" in status(db, "dep-1")[1]
    assert status(db, "dep-2") == ("Running", None)
    now[0] = 46.0  # node-b still alive after the grace: a crash
    assert sweep.sweep() == 1 and status(db, "dep-2") == ("Error", DEAD_POD_ERROR)


def test_pods_of_a_lost_node_and_dead_pods_end_what_they_ran_and_live_ones_are_left_alone(tmp_path):
    db = database(tmp_path)
    pods.register(db, "dep", "lost", 1, [], node_id="node-a")
    pods.register(db, "dep", "crashed", 1, [], node_id="node-b")
    pods.register(db, "dep", "fine", 1, [], node_id="node-b")
    pods.register(db, "dep", "stopped", 1, [], node_id="node-a")
    pods.update(db, "dep", "stopped", {"status": "stopped"})
    for execution_id, pod_id in (("dep-1", "lost"), ("dep-2", "crashed"), ("dep-3", "fine"), ("dep-4", None)):
        running(db, execution_id, pod_id)

    assert sweeper(db, tmp_path, dead_nodes={"node-a"}, alive={"fine"}).sweep() == 2
    assert status(db, "dep-1")[0] == "Error" and "node-a" in status(db, "dep-1")[1]
    assert "lost" in status(db, "dep-1")[1]
    assert status(db, "dep-2") == ("Error", DEAD_POD_ERROR)
    assert status(db, "dep-3") == ("Running", None) and status(db, "dep-4") == ("Running", None)
    with db.session() as session:
        assert {p.pod_id: p.status for p in session.query(Pod)} == {
            "lost": "failed",
            "crashed": "failed",
            "fine": "pending",
            "stopped": "stopped",
        }
    with db.session() as session:
        logs = [line.message for line in session.query(DeploymentLog)]
    assert any("Pod lost was lost with its node (node-a)" in line for line in logs), logs
    assert any("Pod crashed stopped unexpectedly" in line for line in logs), logs
    assert sweeper(db, tmp_path, dead_nodes={"node-a"}, alive={"fine"}).sweep() == 0  # once


def test_pods_of_a_cluster_started_anew_end_at_once(tmp_path):
    db = database(tmp_path)
    pods.register(db, "dep", "old", 1, [], node_id="node-of-the-last-cluster")
    running(db, "dep-1", "old")
    assert sweeper(db, tmp_path, grace_s=45).sweep() == 1  # no grace: Ray never knew that node
    assert status(db, "dep-1") == ("Error", DEAD_POD_ERROR)


def test_what_an_earlier_control_plane_ran_ends_and_what_pods_run_goes_on(tmp_path):
    db = database(tmp_path)
    pods.register(db, "dep", "fine", 1, [], node_id="node-b")
    running(db, "pipe-1", None)
    running(db, "dep-1", "fine")
    assert end_unfinished_executions(db, CONTROL_PLANE_GONE_ERROR, without_pod=True) == 1
    assert status(db, "pipe-1") == ("Error", CONTROL_PLANE_GONE_ERROR)
    assert status(db, "dep-1") == ("Running", None)  # its pod lives on


def test_the_replica_actor_names_read_are_those_ray_serve_gives():
    from ray.serve._private.common import DeploymentID, ReplicaID

    from rayline.runtime.cluster_state import replica_id_of

    name = ReplicaID(unique_id="ab12cd34", deployment_id=DeploymentID(name="pipeline", app_name="dep")).to_full_id_str()
    assert replica_id_of(name, "pipeline") == "ab12cd34"
    assert replica_id_of(name, "control-plane") is None and replica_id_of("SERVE_CONTROLLER_ACTOR", "pipeline") is None


def _answer_then_die(url: str, journal: str) -> None:
    writer = RecordWriter(sql_sink(Database(url)), journal_path=Path(journal), interval_s=60)
    writer.execution_started("dep-9", "pipe", "dep", [], utcnow(), "crashed-here")
    assert writer.flush()  # Running in SQL: ending it before the replay would lose the answer
    writer.execution_finished("dep-9", "Succeeded", [], None)
    os._exit(1)  # answered (the journal has it) but not committed: the batch waits 60 s


def test_journals_of_pods_that_died_on_the_control_planes_node_are_replayed_before_their_end(tmp_path):
    db = database(tmp_path)
    pods.register(db, "dep", "crashed-here", 1, [], node_id="head-node")
    process = multiprocessing.get_context("fork").Process(
        target=_answer_then_die, args=(db.url, str(tmp_path / "journal" / "dep" / "crashed-here.journal"))
    )
    process.start()
    process.join(30)
    assert sweeper(db, tmp_path).sweep() == 1
    assert status(db, "dep-9") == ("Succeeded", None)  # replayed first, not ended


def test_committed_is_done_once_what_came_before_is_committed_and_commits_at_once(tmp_path):
    db = database(tmp_path)
    gate, batches = threading.Event(), []

    def slow_sink(events, replaying):
        gate.wait(5)
        batches.append(len(events))
        sql_sink(db)(events, replaying)

    writer = RecordWriter(slow_sink, interval_s=60)  # without a waiter, a batch would wait a minute
    writer.execution_started("dep-5", "pipe", "dep", [], utcnow())
    first = writer.committed()
    writer.execution_finished("dep-5", "Succeeded", [], None)
    second = writer.committed()
    assert not first.done()
    gate.set()
    first.result(5), second.result(5)
    assert status(db, "dep-5")[0] == "Succeeded"
    assert sum(batches) == 2 and len(batches) <= 2  # calls that wait share a commit
    writer.close()
    assert writer.committed().done()  # closed: nothing more to wait for
