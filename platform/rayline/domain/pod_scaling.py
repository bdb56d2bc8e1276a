"""How many pods a low-latency deployment runs: at least ``min_pods`` (0 lets it go to standby),
at most ``max_pods`` under load, one removed after ``scale_down_after_s`` of low load, the last
one after ``standby_after_s`` without any execution (with ``min_pods=0``).

The defaults are one pod, always on. Ray Serve's autoscaler does the scaling
(``rayline.runtime.serve_deployments`` turns these settings into its ``autoscaling_config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from rayline.domain.statuses import Mode
from rayline.errors import InvalidInput

FIELDS = ("min_pods", "max_pods", "scale_down_after_s", "standby_after_s")
DEFAULT_SCALE_DOWN_AFTER_S = 60.0
DEFAULT_STANDBY_AFTER_S = 600.0


@dataclass(frozen=True)
class PodScaling:
    min_pods: int = 1
    max_pods: int = 1
    scale_down_after_s: float = DEFAULT_SCALE_DOWN_AFTER_S
    standby_after_s: float = DEFAULT_STANDBY_AFTER_S

    @property
    def fixed(self) -> bool:
        """Always the same number of pods: nothing for an autoscaler to do."""
        return self.min_pods == self.max_pods


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{field} must be a number of seconds greater than 0, not {value!r}.")
    return float(value)


def check_scaling(
    given: dict[str, Any], mode: str, max_pods_cap: int, current: PodScaling | None = None
) -> PodScaling | None:
    """The pod settings of ``given`` (a create or update body) over ``current`` (a new
    deployment's defaults when None); None for an elastic deployment, which takes none.
    InvalidInput names the field and the fix."""
    asked = {field: given[field] for field in FIELDS if given.get(field) is not None}
    if mode != Mode.LOW_LATENCY:
        if asked:
            raise InvalidInput(
                f"{', '.join(asked)}: pod settings only go with mode='low_latency'; an elastic deployment "
                "runs each execution in a fresh process and holds nothing while idle."
            )
        return None
    base = current or PodScaling()
    min_pods = asked.get("min_pods", base.min_pods)
    if not _integer(min_pods) or not 0 <= min_pods <= max_pods_cap:
        raise InvalidInput(
            f"min_pods must be an integer from 0 (standby when idle) to {max_pods_cap}, not {min_pods!r}."
        )
    # A new deployment's max_pods follows its min_pods; an update keeps the one it has.
    max_pods = asked.get("max_pods", base.max_pods if current is not None else max(1, min_pods))
    if not _integer(max_pods) or not 1 <= max_pods <= max_pods_cap:
        raise InvalidInput(
            f"max_pods must be an integer from 1 to {max_pods_cap} (the platform's "
            f"RAYLINE_MAX_PODS_PER_DEPLOYMENT), not {max_pods!r}."
        )
    if max_pods < min_pods:
        raise InvalidInput(
            f"max_pods ({max_pods}) must be at least min_pods ({min_pods}); "
            + ("raise max_pods too." if "max_pods" not in asked else "lower min_pods or raise max_pods.")
        )
    return replace(
        base,
        min_pods=min_pods,
        max_pods=max_pods,
        scale_down_after_s=_seconds("scale_down_after_s", asked.get("scale_down_after_s", base.scale_down_after_s)),
        standby_after_s=_seconds("standby_after_s", asked.get("standby_after_s", base.standby_after_s)),
    )


def describe_scaling(scaling: PodScaling) -> str:
    if scaling.fixed:
        return f"{scaling.min_pods} pod(s), always on"
    standby = f", standby after {scaling.standby_after_s:g} s without a call" if scaling.min_pods == 0 else ""
    return (
        f"{scaling.min_pods} to {scaling.max_pods} pods, one removed after {scaling.scale_down_after_s:g} s "
        f"of low load{standby}"
    )
