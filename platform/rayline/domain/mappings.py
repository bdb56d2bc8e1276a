"""Where an execution's inputs come from and where its outputs go (craft-api's input sources and
output destinations).

A mapping is stored and shown flat, as craft-ai-sdk's ``InputSource``/``OutputDestination``
dicts plus the pipeline's ``data_type``: ``{"pipeline_input_name", "data_type",
"endpoint_input_name" | "constant_value" | "environment_variable_name" | "is_null", ...}``.
Normalizing fills in every input and output, so that running an execution never guesses:

- an endpoint exposes unmapped inputs and outputs under their own names;
- a periodic deployment has no caller, so every input and output must be mapped;
- ``run_pipeline`` takes unmapped inputs from its ``inputs`` and returns unmapped outputs.

Plain Python: elastic workers and warm replicas import it.
"""

from __future__ import annotations

import json
from typing import Any

from rayline.domain.data_store import object_path
from rayline.domain.environment import check_name as check_variable_name
from rayline.domain.files import DataStoreFile, FileValue, FormText
from rayline.domain.io_types import InputSpec, OutputSpec, type_error
from rayline.errors import InvalidInput

RULES = ("endpoint", "periodic", "run")
_INPUT_SOURCES = ("endpoint_input_name", "constant_value", "environment_variable_name", "is_null", "datastore_path")
_OUTPUT_DESTINATIONS = ("endpoint_output_name", "is_null", "datastore_path")
# The mapping_type of an execution's input or output record (craft-api.md), per source key.
_MAPPING_TYPES = {
    "endpoint_input_name": "endpoint",
    "endpoint_output_name": "endpoint",
    "constant_value": "constant",
    "environment_variable_name": "environment_variable",
    "is_null": "is_null",
    "datastore_path": "datastore",
}


def _given(item: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    # `is_null=False` means "not null", the same as leaving it out; a constant may be False.
    return [key for key in keys if item.get(key) is not None and not (key == "is_null" and item[key] is False)]


def _items(
    raw: Any, field: str, name_key: str, declared: dict[str, Any], all_mapped_to: str | None = None
) -> dict[str, dict[str, Any]]:
    """The mappings by name, checked against what the pipeline declares; with ``all_mapped_to``
    (a periodic deployment has no caller), every declared name must be mapped."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidInput(f"{field} must be a list of mappings (objects with {name_key}).")
    by_name: dict[str, dict[str, Any]] = {}
    for item in raw:
        name = item.get(name_key)
        if name not in declared:
            raise InvalidInput(
                f"{field}: {name_key} {name!r} is not declared by the pipeline; it declares "
                f"{', '.join(declared) or 'none'}."
            )
        if name in by_name:
            raise InvalidInput(f"{field}: {name!r} is mapped twice; map each one once.")
        by_name[name] = item
    missing = [name for name in declared if name not in by_name]
    if all_mapped_to and missing:
        raise InvalidInput(
            f"{field}: a periodic deployment has no caller, so every {name_key.split('_')[1]} must "
            f"be mapped (to {all_mapped_to}); unmapped: {', '.join(map(repr, missing))}."
        )
    return by_name


def normalize_inputs_mapping(specs: list[InputSpec], raw: Any, rule: str) -> list[dict[str, Any]]:
    """Check ``inputs_mapping`` against the pipeline's inputs for ``rule``; every input, mapped."""
    declared = {spec.name: spec for spec in specs}
    given = _items(
        raw,
        "inputs_mapping",
        "pipeline_input_name",
        declared,
        "a constant, an environment variable, a datastore_path or null" if rule == "periodic" else None,
    )
    mapping = []
    for spec in specs:
        item = given.get(spec.name)
        source: dict[str, Any]
        if item is None:  # from the caller, under its own name, with the pipeline's own rules
            source = {"endpoint_input_name": spec.name} if rule == "endpoint" else {}
            source.update(is_required=spec.is_required, default_value=spec.default_value)
        else:
            source = _input_source(spec, item, rule)
        mapping.append(
            {
                "pipeline_input_name": spec.name,
                "data_type": spec.data_type,
                **{k: v for k, v in source.items() if v is not None},
            }
        )
    _check_unique_endpoint_names(mapping, "inputs_mapping", "endpoint_input_name")
    return mapping


def _check_unique_endpoint_names(mapping: list[dict[str, Any]], field: str, key: str) -> None:
    seen: set[str] = set()
    for item in mapping:
        name = item.get(key)
        if name is not None:
            if name in seen:
                raise InvalidInput(f"{field}: two {field.split('_')[0]} use {key} {name!r}; give each its own.")
            seen.add(name)


def _input_source(spec: InputSpec, item: dict[str, Any], rule: str) -> dict[str, Any]:
    where = f"inputs_mapping[{spec.name!r}]"
    sources = _given(item, _INPUT_SOURCES)
    if len(sources) != 1:
        raise InvalidInput(
            f"{where} needs exactly one source: endpoint_input_name, constant_value, "
            f"environment_variable_name, datastore_path or is_null=True (got {', '.join(sources) or 'none'})."
        )
    source = sources[0]
    if source == "datastore_path":
        return {"datastore_path": _data_store_path(spec.data_type, item["datastore_path"], where)}
    if (
        item.get("is_required") is not None or item.get("default_value") is not None
    ) and source != "endpoint_input_name":
        raise InvalidInput(f"{where}: is_required and default_value only go with an endpoint_input_name.")
    if source == "endpoint_input_name":
        if rule != "endpoint":
            raise InvalidInput(
                f"{where}: only endpoint deployments have endpoint inputs; map {spec.name!r} to a "
                "constant_value, an environment_variable_name or is_null=True."
            )
        name = item["endpoint_input_name"]
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"{where}: endpoint_input_name {name!r} must be a valid identifier.")
        default = item.get("default_value", spec.default_value)
        if default is not None:
            _check_value(spec, default, f"{where}: default_value")
        is_required = item.get("is_required")
        if is_required is None:
            is_required = spec.is_required if "default_value" not in item else default is None
        return {"endpoint_input_name": name, "is_required": bool(is_required), "default_value": default}
    if source == "constant_value":
        _check_value(spec, item["constant_value"], f"{where}: constant_value")
        return {"constant_value": item["constant_value"]}
    if source == "environment_variable_name":
        if spec.data_type != "string":
            raise InvalidInput(
                f"{where}: an environment variable is a string; {spec.name!r} is a {spec.data_type}. "
                "Map a string input, or use a constant_value."
            )
        return {"environment_variable_name": check_variable_name(item["environment_variable_name"])}
    if item["is_null"] is not True:
        raise InvalidInput(f"{where}: is_null must be true.")
    return {"is_null": True}


def _data_store_path(data_type: str, path: Any, where: str) -> str:
    if data_type != "file":
        raise InvalidInput(
            f"{where}: a datastore_path maps a file input or output; this one is a {data_type}. "
            "Map it another way, or declare it as a file."
        )
    return object_path(path, f"{where}: datastore_path")


def _check_value(spec: InputSpec, value: Any, where: str) -> None:
    if spec.data_type == "file":
        raise InvalidInput(f"{where}: a file input cannot have a constant or default value; it comes with each call.")
    reason = type_error(spec.data_type, value)
    if reason:
        raise InvalidInput(f"{where} does not match the input's data_type: {reason}.")


def normalize_outputs_mapping(specs: list[OutputSpec], raw: Any, rule: str) -> list[dict[str, Any]]:
    """Check ``outputs_mapping`` against the pipeline's outputs for ``rule``; every output, mapped."""
    declared = {spec.name: spec for spec in specs}
    given = _items(
        raw,
        "outputs_mapping",
        "pipeline_output_name",
        declared,
        "a datastore_path or is_null=True" if rule == "periodic" else None,
    )
    mapping = []
    for spec in specs:
        item = given.get(spec.name)
        where = f"outputs_mapping[{spec.name!r}]"
        destination: dict[str, Any]
        if item is None:
            destination = {"endpoint_output_name": spec.name} if rule == "endpoint" else {}
        else:
            found = _given(item, _OUTPUT_DESTINATIONS)
            if len(found) != 1:
                raise InvalidInput(
                    f"{where} needs exactly one destination: endpoint_output_name, datastore_path or "
                    f"is_null=True (got {', '.join(found) or 'none'})."
                )
            if found[0] == "datastore_path":
                destination = {"datastore_path": _data_store_path(spec.data_type, item["datastore_path"], where)}
            elif found[0] == "is_null":
                if item["is_null"] is not True:
                    raise InvalidInput(f"{where}: is_null must be true.")
                destination = {"is_null": True}
            else:
                name = item["endpoint_output_name"]
                if rule != "endpoint":
                    raise InvalidInput(
                        f"{where}: only endpoint deployments have endpoint outputs; "
                        "use a datastore_path or is_null=True."
                    )
                if not isinstance(name, str) or not name.isidentifier():
                    raise InvalidInput(f"{where}: endpoint_output_name {name!r} must be a valid identifier.")
                destination = {"endpoint_output_name": name}
        mapping.append({"pipeline_output_name": spec.name, "data_type": spec.data_type, **destination})
    _check_unique_endpoint_names(mapping, "outputs_mapping", "endpoint_output_name")
    paths = [item["datastore_path"] for item in mapping if "datastore_path" in item]
    if len(paths) != len(set(paths)):
        raise InvalidInput("outputs_mapping: two outputs go to the same datastore_path; give each its own.")
    exposed = [item for item in mapping if "endpoint_output_name" in item]
    if any(item["data_type"] == "file" for item in exposed) and len(exposed) > 1:
        raise InvalidInput(
            "outputs_mapping: an endpoint answers a file output with the file itself "
            "(application/octet-stream), so it must be its only output; map the others to is_null=True."
        )
    return mapping


def with_constants(current: list[dict[str, Any]], specs: list[InputSpec], raw: Any) -> list[dict[str, Any]]:
    """``update_deployment(inputs_mapping=...)``: new values for constant mappings; any other change
    means a new deployment."""
    declared = {spec.name: spec for spec in specs}
    given = _items(raw, "inputs_mapping", "pipeline_input_name", declared)
    updated = []
    for item in current:
        change = given.get(item["pipeline_input_name"])
        if change is not None:
            if "constant_value" not in item or _given(change, _INPUT_SOURCES) != ["constant_value"]:
                raise InvalidInput(
                    f"inputs_mapping[{item['pipeline_input_name']!r}]: update_deployment can only "
                    "give constant mappings a new constant_value; to change a mapping's kind, "
                    "create a new deployment."
                )
            _check_value(
                declared[item["pipeline_input_name"]],
                change["constant_value"],
                f"inputs_mapping[{item['pipeline_input_name']!r}]: constant_value",
            )
            item = {**item, "constant_value": change["constant_value"]}
        updated.append(item)
    return updated


def mapping_type(item: dict[str, Any]) -> str:
    """How an input or output is mapped: endpoint, constant, environment_variable, is_null or run."""
    for key, kind in _MAPPING_TYPES.items():
        if key in item:
            return kind
    return "run"


def mapping_value(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pipeline_input_name", "pipeline_output_name", "data_type")}


def gather_inputs(
    mapping: list[dict[str, Any]], given: Any, environment: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The function's keyword arguments and the execution's input records, from what the caller
    sent (keyed by endpoint input name, or by input name for ``run``), constants and the
    environment variables. Raises InvalidInput, naming the input, before anything runs.

    An optional input that was not given and has no default is left out of the arguments, so
    the function's own Python default applies."""
    if not isinstance(given, dict):
        raise InvalidInput("inputs must be a JSON object of input name to value.")
    accepted = {
        item.get("endpoint_input_name", item["pipeline_input_name"])
        for item in mapping
        if mapping_type(item) in ("endpoint", "run")
    }
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise InvalidInput(
            f"Unknown input(s) {', '.join(map(repr, unknown))}: this accepts "
            f"{', '.join(sorted(accepted)) or 'no input'}."
        )
    values: dict[str, Any] = {}
    records = []
    for item in mapping:
        name, data_type, kind = item["pipeline_input_name"], item["data_type"], mapping_type(item)
        if kind in ("endpoint", "run"):
            sent_as = item.get("endpoint_input_name", name)
            value = given.get(sent_as)
            if isinstance(value, FormText):
                value = from_form(data_type, value, sent_as)
            if value is None:
                value = item.get("default_value")
            if value is None and item.get("is_required", True):
                raise InvalidInput(f"Input {sent_as!r} ({data_type}) is required; give it a value.")
            if value is not None:
                reason = type_error(data_type, value)
                if reason:
                    raise InvalidInput(f"Input {sent_as!r}: {reason}.")
        elif kind == "constant":
            value = item["constant_value"]
        elif kind == "datastore":  # read by the process that runs the execution, when it starts
            value = DataStoreFile(item["datastore_path"])
        elif kind == "environment_variable":
            value = environment.get(item["environment_variable_name"])
            if value is None:
                raise InvalidInput(
                    f"Input {name!r} comes from environment variable "
                    f"{item['environment_variable_name']!r}, which is not set; set it with "
                    "create_or_update_environment_variable()."
                )
        else:
            value = None
        if value is not None or kind == "is_null":
            values[name] = value
        # A variable's value may be a secret: the record names the variable, not its value.
        records.append(
            {
                "pipeline_input_name": name,
                "data_type": data_type,
                "mapping_type": kind,
                "mapping_value": mapping_value(item),
                "value": None if kind in ("environment_variable", "datastore") else _recorded(value),
            }
        )
    return values, records


def from_form(data_type: str, text: str, sent_as: str) -> Any:
    """A form field's text as a value of the input's type: JSON-encoded (as craft-ai-sdk sends
    fields beside files), or plain text for a string (``-F city=Paris``)."""
    if data_type == "file":
        raise InvalidInput(f"Input {sent_as!r}: a file is sent as a multipart/form-data file part, not as text.")
    try:
        value = json.loads(text)
    except ValueError:
        if data_type == "string":
            return str(text)
        if data_type == "boolean" and text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        raise InvalidInput(f"Input {sent_as!r}: {text[:60]!r} is not a {data_type}; send it JSON-encoded.") from None
    return str(text) if data_type == "string" and not isinstance(value, str) else value


def place_outputs(
    mapping: list[dict[str, Any]], outputs: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the caller gets (keyed by endpoint output name, or output name for ``run``) and the
    execution's output records, from the function's checked outputs. Null destinations drop the
    value; the data store's get the file (``to_data_store``), and the record describes it."""
    returned, records = {}, []
    for item in mapping:
        name, kind = item["pipeline_output_name"], mapping_type(item)
        value = None if kind == "is_null" else outputs.get(name)
        if kind not in ("is_null", "datastore"):
            returned[item.get("endpoint_output_name", name)] = value
        records.append(
            {
                "pipeline_output_name": name,
                "data_type": item["data_type"],
                "mapping_type": kind,
                "mapping_value": mapping_value(item),
                "value": _recorded(value),
            }
        )
    return returned, records


def kept_files(records: list[dict[str, Any]], outputs: dict[str, Any]) -> dict[str, FileValue]:
    """The file outputs to store with the execution (by pipeline output name): not the dropped
    ones, nor those that go to the data store."""
    return {
        record["pipeline_output_name"]: outputs[record["pipeline_output_name"]]
        for record in records
        if record["mapping_type"] not in ("is_null", "datastore")
        and isinstance(outputs.get(record["pipeline_output_name"]), FileValue)
    }


def to_data_store(mapping: list[dict[str, Any]], outputs: dict[str, Any]) -> dict[str, FileValue]:
    """The file outputs to write to the data store, by their path there."""
    return {
        item["datastore_path"]: outputs[item["pipeline_output_name"]]
        for item in mapping
        if _to_data_store(item) and isinstance(outputs.get(item["pipeline_output_name"]), FileValue)
    }


def writes_to_data_store(mapping: list[dict[str, Any]]) -> bool:
    """Whether any output of this (normalized) mapping goes to the data store."""
    return any(_to_data_store(item) for item in mapping)


def _to_data_store(item: dict[str, Any]) -> bool:
    return "datastore_path" in item


def _recorded(value: Any) -> Any:
    return value.describe() if isinstance(value, FileValue) else value


def _returned_name(record: dict[str, Any]) -> str:
    return record["mapping_value"].get("endpoint_output_name", record["pipeline_output_name"])


def returned_outputs(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What a caller gets back, from an execution's output records (see ``place_outputs``); a
    file is described there, and kept apart (see ``returned_files``)."""
    return {
        _returned_name(record): record.get("value")
        for record in records
        if record["mapping_type"] not in ("is_null", "datastore")
    }


def returned_files(records: list[dict[str, Any]]) -> dict[str, str]:
    """The file outputs a caller gets back: returned name -> pipeline output name."""
    return {
        _returned_name(record): record["pipeline_output_name"]
        for record in records
        if record["mapping_type"] not in ("is_null", "datastore")
        and record["data_type"] == "file"
        and record.get("value")
    }
