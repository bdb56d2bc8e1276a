"""What Ray's GCS knows of the cluster's nodes and of the warm pods' processes."""

from __future__ import annotations

import ray

# The resource Ray gives the head node alone (the control plane is placed with it).
HEAD_RESOURCE = "node:__internal_head__"
# How Serve names a replica's actor (ray.serve._private.common.ReplicaID.to_full_id_str).
_REPLICA_ACTOR = "SERVE_REPLICA::{app}#{deployment}#{replica}"


def node_of_this_process() -> tuple[str, bool]:
    """(This process's Ray node id, whether that node is the head)."""
    node_id = ray.get_runtime_context().get_node_id()
    on_head = any(node["NodeID"] == node_id and HEAD_RESOURCE in node["Resources"] for node in ray.nodes())
    return node_id, on_head


def dead_nodes() -> set[str]:
    """Ids of the nodes the cluster has lost (Ray keeps them in its node table, not alive)."""
    return {node["NodeID"] for node in ray.nodes() if not node["Alive"]}


def replica_is_alive(app_name: str, deployment_name: str, replica_id: str) -> bool:
    """Whether the process of a Serve replica is alive: its named actor is still there. A dead
    replica's name is released (Serve never restarts a replica: it starts a new one)."""
    name = _REPLICA_ACTOR.format(app=app_name, deployment=deployment_name, replica=replica_id)
    try:
        ray.get_actor(name, namespace="serve")
    except ValueError:
        return False
    return True
