"""What Ray's GCS knows of the cluster's nodes and of the warm pods' processes."""

from __future__ import annotations

from typing import Any

import ray

# The resource Ray gives the head node alone (the control plane is placed with it).
HEAD_RESOURCE = "node:__internal_head__"
# How Serve names a replica's actor (ray.serve._private.common.ReplicaID.to_full_id_str), in
# Serve's namespace; pinned by tests/unit/test_pod_sweeper.py.
REPLICA_ACTOR_PREFIX = "SERVE_REPLICA::"
SERVE_NAMESPACE = "serve"


def node_of_this_process() -> tuple[str, bool]:
    """(This process's Ray node id, whether that node is the head)."""
    node_id = ray.get_runtime_context().get_node_id()
    on_head = any(node["NodeID"] == node_id and HEAD_RESOURCE in node["Resources"] for node in ray.nodes())
    return node_id, on_head


def nodes() -> dict[str, bool]:
    """Every node the cluster has known, by id: whether it is alive (Ray keeps lost nodes in its
    node table, dead)."""
    return {node["NodeID"]: bool(node["Alive"]) for node in ray.nodes()}


def live_nodes() -> list[dict[str, Any]]:
    """The entries of ``ray.nodes()`` of the nodes alive now (Ray keeps lost nodes in its node
    table, dead)."""
    return [node for node in ray.nodes() if node.get("Alive")]


def replica_id_of(actor_name: str, deployment_name: str) -> str | None:
    """The replica id in a Serve replica actor's name (``SERVE_REPLICA::<app>#<deployment>#<id>``)
    when it is one of ``deployment_name``'s, else None."""
    if not actor_name.startswith(REPLICA_ACTOR_PREFIX):
        return None
    *_, deployment, replica_id = actor_name.removeprefix(REPLICA_ACTOR_PREFIX).split("#")
    return replica_id if deployment == deployment_name else None


def live_replicas(deployment_name: str) -> set[str]:
    """The ids of the Serve replicas of every application's ``deployment_name`` whose process is
    alive: their named actors (a dead replica's name is released; Serve never restarts a replica,
    it starts a new one). One GCS call."""
    found = set()
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == SERVE_NAMESPACE:
            replica_id = replica_id_of(actor["name"], deployment_name)
            if replica_id is not None:
                found.add(replica_id)
    return found
