"""Pipeline metrics as executions record them: names, values and the filters of a listing."""

from __future__ import annotations

import math
import re
from typing import Any

from rayline.errors import InvalidInput

MAX_METRIC_NAME_LENGTH = 128
# A name is a path part of the recording routes (PUT /metrics/single-value/<name>): no slash.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# What one request may add to a list metric: craft-ai-sdk sends them in batches of this many.
MAX_LIST_VALUES_PER_CALL = 10_000
MAX_ITEMS_PER_PAGE = 5_000
MAX_PAGE = 1_000_000_000  # keeps the offset within what databases take
FILTERS = ("pipeline_name", "deployment_name", "execution_id")


def check_metric_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > MAX_METRIC_NAME_LENGTH or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"name {name!r} is not a valid metric name: use 1 to {MAX_METRIC_NAME_LENGTH} letters, digits, "
            "'_', '-' and '.', not starting with '-' or '.' (e.g. 'accuracy' or 'val_loss')."
        )
    return name


def check_metric_value(value: Any, field: str = "value") -> float:
    # bool is an int in Python: True is not a metric value.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number, not {type(value).__name__} ({value!r:.40}).")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number (not NaN or infinity); got {value!r}.")
    return number


def check_metric_values(values: Any) -> list[float]:
    """A list metric's new values: one number, or a list of them."""
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise InvalidInput("values must hold at least one number, e.g. [0.91, 0.93].")
    if len(values) > MAX_LIST_VALUES_PER_CALL:
        raise InvalidInput(
            f"values holds {len(values)} numbers; send at most {MAX_LIST_VALUES_PER_CALL} per call "
            "(the clients split longer lists for you)."
        )
    return [check_metric_value(value, f"values[{index}]") for index, value in enumerate(values)]


def one_filter(pipeline_name: str | None, deployment_name: str | None, execution_id: str | None) -> dict[str, str]:
    """The listing's filter: at most one of them, as Craft AI allows."""
    given = {
        name: value
        for name, value in zip(FILTERS, (pipeline_name, deployment_name, execution_id), strict=True)
        if value is not None
    }
    if len(given) > 1:
        raise InvalidInput(f"Filter metrics by one of {', '.join(FILTERS)} at most; got {', '.join(sorted(given))}.")
    return given


def check_page(page: int, items_per_page: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"page must be from 1 to {MAX_PAGE}; got {page}.")
    if not 1 <= items_per_page <= MAX_ITEMS_PER_PAGE:
        raise InvalidInput(f"items_per_page must be from 1 to {MAX_ITEMS_PER_PAGE}; got {items_per_page}.")
