"""The narrow path of user-code processes: a pod's credential writes its own deployment's
records and nothing else; an execution's credential its own logs, until it ends."""

from datetime import timedelta

import pytest

from rayline.domain.files import FileValue
from rayline.errors import InvalidInput, Unauthorized
from rayline.services.pod_gateway import PodGateway
from rayline.store import executions as store
from rayline.store import migrate
from rayline.store.db import Database
from rayline.store.models import Deployment, Execution, ExecutionLog, utcnow


@pytest.fixture
def gateway(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    now = utcnow()
    with db.session() as session:
        session.add(
            Deployment(
                name="report",
                pipeline_name="pipe",
                execution_rule="endpoint",
                mode="low_latency",
                inputs_mapping=[],
                outputs_mapping=[],
                enable_parallel_executions=False,
                max_parallel_executions_per_pod=1,
                max_queued_executions=1,
                is_enabled=True,
                status="up",
                has_been_up=True,
                version=1,
                version_updated_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        # A pipeline run named like the deployment (same counter, same prefix), and an execution
        # of a deleted deployment of the same name: neither is the deployment's now.
        session.add(
            Execution(
                execution_id="report-7",
                pipeline_name="report",
                deployment_name=None,
                status="Running",
                inputs=[],
                outputs=[],
                created_at=now,
            )
        )
        session.add(
            Execution(
                execution_id="report-3",
                pipeline_name="pipe",
                deployment_name="report",
                status="Running",
                inputs=[],
                outputs=[],
                created_at=now - timedelta(days=1),
            )
        )
    return PodGateway(db, b"k" * 32, lambda sealed: sealed), db


def _started(execution_id: str, **row):
    return {
        "kind": "started",
        "row": {
            "execution_id": execution_id,
            "pipeline_name": "pipe",
            "deployment_name": "report",
            "pod_id": "p",
            "status": "Running",
            "inputs": [],
            "outputs": [],
            "created_at": utcnow(),
            "start_date": utcnow(),
            **row,
        },
    }


def _finished(execution_id: str):
    return {
        "kind": "finished",
        "execution_id": execution_id,
        "values": {"status": "Succeeded", "end_date": utcnow(), "error": None, "outputs": [{"value": 1}]},
    }


def test_a_pod_writes_its_own_records(gateway):
    gw, db = gateway
    credential = gw.pod_credential("report")
    gw.write(
        credential,
        "report",
        [
            _started("report-8"),
            {
                "kind": "execution_log",
                "row": {"execution_id": "report-8", "timestamp": utcnow(), "stream": "stdout", "message": "hi"},
            },
        ],
    )
    gw.write(
        credential,
        "report",
        [
            _finished("report-8"),
            {
                "kind": "files",
                "execution_id": "report-8",
                "direction": "output",
                "files": {"doc": FileValue("a.txt", b"x")},
            },
        ],
    )
    with db.session() as session:
        assert session.get(Execution, "report-8").status == "Succeeded"
        assert [log.message for log in session.query(ExecutionLog)] == ["hi"]
    assert store.load_file(db, "report-8", "output", "doc") == FileValue("a.txt", b"x")


@pytest.mark.parametrize(
    "events",
    [
        [_finished("report-7")],  # a pipeline run whose id has the deployment's form
        [_finished("report-3")],  # an execution of a deleted deployment of the same name
        [
            {
                "kind": "execution_log",
                "row": {"execution_id": "report-7", "timestamp": utcnow(), "stream": "stdout", "message": "forged"},
            }
        ],
        [{"kind": "files", "execution_id": "report-7", "direction": "output", "files": {}}],
        [_started("other-1", deployment_name="other")],
        [_started("report-9", pipeline_name="another-pipeline")],
        [{"kind": "deployment_log", "row": {"deployment_name": "other", "type": "deployment"}}],
        [{"kind": "sql", "row": {}}],
    ],
)
def test_a_pod_cannot_write_what_is_not_its_deployment_s(gateway, events):
    gw, db = gateway
    with pytest.raises(InvalidInput):
        gw.write(gw.pod_credential("report"), "report", events)
    with db.session() as session:
        assert session.get(Execution, "report-7").status == "Running"
        assert session.get(Execution, "report-3").status == "Running"
        assert session.query(ExecutionLog).count() == 0


def test_credentials_are_checked(gateway):
    gw, _ = gateway
    with pytest.raises(Unauthorized):
        gw.write(gw.pod_credential("other"), "report", [_started("report-8")])
    with pytest.raises(Unauthorized):
        gw.take_ids("pod:report:" + "0" * 64, "report", 10)
    assert len(gw.take_ids(gw.pod_credential("report"), "report", 10)) == 10
    expired = gw.execution_credential("report-7", ttl_s=-10)
    with pytest.raises(Unauthorized, match="expired"):
        gw.append_execution_logs(expired, "report-7", [(utcnow(), "stdout", "x")])
    with pytest.raises(Unauthorized):  # one execution's credential is not another's
        gw.append_execution_logs(gw.execution_credential("report-7", 60), "report-3", [(utcnow(), "stdout", "x")])
    gw.append_execution_logs(gw.execution_credential("report-7", 60), "report-7", [(utcnow(), "stdout", "x")])


def test_a_record_that_cannot_be_written_is_refused_not_retried(gateway):
    gw, _ = gateway
    credential = gw.pod_credential("report")
    gw.write(credential, "report", [_started("report-8")])
    with pytest.raises(InvalidInput, match="cannot be written"):  # the same start twice
        gw.write(credential, "report", [_started("report-8")])
    gw.write(credential, "report", [_started("report-8")], replaying=True)  # a replay skips it


def test_an_idle_pods_state_is_not_read_again_until_something_changes(gateway):
    gw, db = gateway
    credential = gw.pod_credential("report")
    first = gw.pod_state(credential, "report", 0, generation=1)
    with db.session() as session:  # changed behind the control plane's back: not seen at once...
        session.get(Deployment, "report").endpoint_token_hash = "changed"
    assert gw.pod_state(credential, "report", 0, generation=1) == first
    # ...but as soon as the control plane says something changed (its generation moves).
    assert gw.pod_state(credential, "report", 0, generation=2)["token_hash"] == "changed"


def test_a_flush_waits_for_every_serving_pod_to_report_it(gateway, monkeypatch):
    import threading
    import time

    from rayline.services import pod_gateway

    gw, db = gateway
    credential = gw.pod_credential("report")
    for pod_id in ("pod-a", "pod-b"):
        gw.register_pod(credential, "report", pod_id, 1, [])
        gw.update_pod(credential, "report", pod_id, {"status": "running"})
    gw.register_pod(credential, "report", "pod-gone", 1, [])  # pending, then stopped: not waited for
    gw.update_pod(credential, "report", "pod-gone", {"status": "stopped"})

    def pod(pod_id: str) -> None:  # what a pod's follower does when its long poll says "flush"
        deadline = time.monotonic() + 5
        while not gw.pod_state(credential, "report", 0)["flush"] and time.monotonic() < deadline:
            time.sleep(0.01)
        gw.update_pod(credential, "report", pod_id, {"flushed": gw.pod_state(credential, "report", 0)["flush"]})

    followers = [threading.Thread(target=pod, args=(pod_id,)) for pod_id in ("pod-a", "pod-b")]
    for follower in followers:
        follower.start()
    began = time.monotonic()
    assert gw.flush_pods("report") is True
    assert time.monotonic() - began < 2  # woken by the reports, not by the timeout
    for follower in followers:
        follower.join()

    monkeypatch.setattr(pod_gateway, "FLUSH_TIMEOUT_S", 0.3)
    assert gw.flush_pods("report") is False  # nobody reports this one


def test_a_pods_code_records_metrics_of_its_own_deployments_numbers_only(gateway):
    from rayline.errors import Forbidden, NotFound
    from rayline.services.code_access import CodeAccess
    from rayline.store import pods

    gw, db = gateway
    access = CodeAccess(db, gw.credentials)
    created_at = pods.deployment_origin(db, "report")[1]
    scope = access.scope_of(gw.credentials.for_deployment("report", created_at))
    store.take_numbers(db, store.execution_counter("report"), 20)  # what its pods have taken
    # Not in SQL yet (a pod's batch on its way): one of the numbers its pods took.
    assert access.owner_of(scope, "report-12") == ("pipe", "report")
    with pytest.raises(NotFound):
        access.owner_of(scope, "report-999")  # a number no pod has taken
    with pytest.raises(Forbidden):
        access.owner_of(scope, "report-7")  # a pipeline run of the same name
    with pytest.raises(Forbidden):
        access.owner_of(scope, "other-1")
    with pytest.raises(Forbidden):
        access.owner_of(scope, "report-3")  # an execution of a deleted deployment of the same name
    with pytest.raises(InvalidInput, match="at most 160"):
        access.owner_of(scope, "report-" + "1" * 200)
    # A later deployment of the same name does not take the old one's credential.
    stale = access.scope_of(gw.credentials.for_deployment("report", created_at - timedelta(seconds=5)))
    with pytest.raises(Unauthorized, match="deleted"):
        access.owner_of(stale, "report-12")
