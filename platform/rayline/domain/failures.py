"""What an execution that ended for a reason of the platform's says (its record's error)."""

from __future__ import annotations

# Its Ray node was lost (a machine, a Kubernetes node, a raylet killed); Ray's own error names it.
NODE_LOST_ERROR = "The node running this execution (Ray node {node}) was lost before it ended."
# Its warm pod's process is gone without ending it: crashed (os._exit, the OOM killer), killed.
DEAD_POD_ERROR = "The pod running this execution stopped (crashed or was killed) before it ended."
# The control plane that started it (and owned its Ray task) stopped: `rayline up` again.
CONTROL_PLANE_GONE_ERROR = "The control plane that ran this execution stopped before it ended."

# How long a process that became unreachable may wait for Ray to declare its node lost (Ray's GCS
# takes up to about 30 s after a node's last heartbeat) before it is taken for a crash.
NODE_DEATH_GRACE_S = 45.0
