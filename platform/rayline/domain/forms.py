"""Multipart forms with nested keys (``inputs[0][name]``, ``container_config[requirements_path]``),
as craft-ai-sdk and RaylineSdk send them, back into dicts and lists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rayline.domain.io_types import parse_form_scalar
from rayline.errors import InvalidInput

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")  # fullmatch: no trailing newline
_PART = re.compile(r"\[([^\[\]]*)\]")


def unflatten(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in items:
        match = _KEY.fullmatch(key)
        if not match:
            raise InvalidInput(f"Form field name {key!r} is malformed.")
        path = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidInput(f"Form field {key!r} conflicts with another field of the same name.")
            node = child
        node[path[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts keyed 0..n-1 are lists."""
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    # Exactly the keys "0".."n-1": not "00" nor other Unicode digits ("²"), which int() reads too.
    if converted and set(converted) == {str(i) for i in range(len(converted))}:
        return [converted[str(i)] for i in range(len(converted))]
    return converted


def _bool(field: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise InvalidInput(f"{field} must be true or false, not {value!r}.")


def declarations(field: str, raw: Any) -> list[dict[str, Any]]:
    """Input or output declarations from a form: typed values back from their text."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidInput(f"{field} must be a list of declarations.") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidInput(f"{field} must be a list of declarations, each with a name and a data_type.")
    result = []
    for index, item in enumerate(raw):
        item = dict(item)
        if "is_required" in item:
            item["is_required"] = _bool(f"{field}[{index}].is_required", item["is_required"])
        default = item.get("default_value")
        if isinstance(default, str) and item.get("data_type") != "string":
            item["default_value"] = parse_form_scalar(str(item.get("data_type")), default)
        result.append(item)
    return result
