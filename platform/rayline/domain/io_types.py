"""Pipeline inputs and outputs: their declarations, and the checks of values against them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rayline.domain.files import FileValue, read_output
from rayline.errors import InvalidInput

DATA_TYPES = ("string", "number", "boolean", "json", "array", "file")


# Plain dataclasses, not pydantic models: elastic workers import this module, and every fresh
# worker pays for its imports.
@dataclass
class InputSpec:
    name: str
    data_type: str
    description: str | None = None
    is_required: bool = True
    default_value: Any = None


@dataclass
class OutputSpec:
    name: str
    data_type: str
    description: str | None = None


def type_error(data_type: str, value: Any) -> str | None:
    """Why ``value`` is not a ``data_type`` value, or None when it is."""
    if data_type == "string":
        ok = isinstance(value, str)
    elif data_type == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif data_type == "boolean":
        ok = isinstance(value, bool)
    elif data_type == "array":
        ok = isinstance(value, list)
    elif data_type == "json":
        try:
            json.dumps(value, allow_nan=False)
            ok = True
        except (TypeError, ValueError):
            ok = False
    else:  # a file arrives as a multipart part, never as a JSON value
        ok = isinstance(value, FileValue)
        if not ok:
            return "a file is sent as a multipart/form-data file part, not as a JSON value"
    return None if ok else f"expected a {data_type}, got {type(value).__name__} {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_declaration_name(kind: str, name: Any, seen: set[str]) -> str:
    """``name``, once it is an identifier not in ``seen`` (which it is added to)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidInput(
            f"{kind} name {name!r} must be a valid Python identifier (it is passed as a keyword argument)."
        )
    if name in seen:
        raise InvalidInput(f"{kind} {name!r} is declared twice; give each {kind.lower()} a unique name.")
    seen.add(name)
    return name


def _check_data_type(kind: str, name: str, data_type: Any) -> str:
    """``data_type``, once it is one of ``DATA_TYPES``."""
    if data_type not in DATA_TYPES:
        raise InvalidInput(f"{kind} {name!r}: data_type must be one of {', '.join(DATA_TYPES)}, not {data_type!r}.")
    return data_type


def parse_input_specs(raw: list[dict[str, Any]]) -> list[InputSpec]:
    """Check declared inputs. An input is required unless is_required=False or it has a default."""
    specs: list[InputSpec] = []
    seen: set[str] = set()
    for item in raw:
        name = _check_declaration_name("Input", item.get("name"), seen)
        data_type = _check_data_type("Input", name, item.get("data_type"))
        default = item.get("default_value")
        if default is not None:
            if data_type == "file":
                raise InvalidInput(f"Input {name!r}: a file input cannot have a default_value.")
            reason = type_error(data_type, default)
            if reason:
                raise InvalidInput(f"Input {name!r}: default_value does not match its data_type: {reason}.")
        is_required = item.get("is_required")
        if is_required is None:
            is_required = default is None
        specs.append(
            InputSpec(
                name=name,
                data_type=data_type,
                description=item.get("description"),
                is_required=bool(is_required),
                default_value=default,
            )
        )
    return specs


def parse_output_specs(raw: list[dict[str, Any]]) -> list[OutputSpec]:
    specs: list[OutputSpec] = []
    seen: set[str] = set()
    for item in raw:
        name = _check_declaration_name("Output", item.get("name"), seen)
        data_type = _check_data_type("Output", name, item.get("data_type"))
        specs.append(OutputSpec(name=name, data_type=data_type, description=item.get("description")))
    return specs


def check_outputs(specs: list[OutputSpec], returned: Any, max_file_bytes: int) -> dict[str, Any]:
    """Check what the function returned against its declared outputs; raise ValueError (a user
    error). File outputs are read now (see ``rayline.domain.files``); the rest must be JSON."""
    if returned is None:
        returned = {}
    if not isinstance(returned, dict):
        raise ValueError(
            f"The pipeline function must return a dict keyed by output name, not {type(returned).__name__}."
        )
    declared = {spec.name: spec for spec in specs}
    unknown = sorted(set(returned) - set(declared))
    if unknown:
        raise ValueError(
            f"The function returned undeclared output(s) {unknown}; declared: {sorted(declared) or 'none'}."
        )
    outputs = {}
    for spec in specs:
        value = returned.get(spec.name)
        if value is not None:
            if spec.data_type == "file":
                value = read_output(spec.name, value, max_file_bytes)
            else:
                reason = type_error(spec.data_type, value)
                if reason:
                    raise ValueError(f"Output {spec.name!r}: {reason}.")
        outputs[spec.name] = value
    try:  # what is returned must be storable as JSON (an array may hold anything)
        json.dumps({k: v for k, v in outputs.items() if not isinstance(v, FileValue)}, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"The outputs must be JSON values: {error}.") from None
    return outputs


def parse_form_scalar(data_type: str, text: str) -> Any:
    """A default value sent as multipart text, back to its type (craft-ai-sdk sends ``str(value)``)."""
    if data_type == "string":
        return text
    if data_type == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise InvalidInput(f"default_value {text!r} is not a boolean (true or false).")
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput(f"default_value {text!r} is not a valid {data_type}.") from None
