"""Declaring a pipeline's inputs and outputs, and where a deployment takes and puts them.

The classes mirror craft-ai-sdk's, so code written for that platform runs unchanged. Arguments
are checked when the object is built, so a typo fails in the notebook cell that made it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class INPUT_OUTPUT_TYPES(StrEnum):
    """The six data types an input or an output can have (a member is its value as a string)."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    JSON = "json"
    ARRAY = "array"
    FILE = "file"


_TYPES = [t.value for t in INPUT_OUTPUT_TYPES]


def _data_type(owner: str, name: str, data_type: Any) -> str:
    value = data_type.value if isinstance(data_type, INPUT_OUTPUT_TYPES) else data_type
    if value not in _TYPES:
        raise ValueError(f"{owner} {name!r}: data_type must be one of {', '.join(_TYPES)}, not {data_type!r}.")
    return value


def _name(owner: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"{owner} name {name!r} must be a valid Python identifier: the function receives "
            "inputs as keyword arguments and returns outputs as dict keys."
        )
    return name


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class Input:
    """A pipeline input: a keyword argument of the pipeline function.

    An input is required unless ``is_required=False`` or it has a ``default_value``.
    """

    def __init__(self, name, data_type, description=None, is_required=None, default_value=None):
        self.name = _name("Input", name)
        self.data_type = _data_type("Input", name, data_type)
        self.description = description
        self.is_required = is_required
        self.default_value = default_value

    def to_dict(self) -> dict[str, Any]:
        return _without_none(
            {
                "name": self.name,
                "data_type": self.data_type,
                "description": self.description,
                "is_required": self.is_required,
                "default_value": self.default_value,
            }
        )

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.to_dict().items() if k not in ("name", "data_type"))
        return f"Input({self.name!r}, {self.data_type!r}{extra})"


class Output:
    """A pipeline output: a key of the dict the pipeline function returns."""

    def __init__(self, name, data_type, description=None):
        self.name = _name("Output", name)
        self.data_type = _data_type("Output", name, data_type)
        self.description = description

    def to_dict(self) -> dict[str, Any]:
        return _without_none({"name": self.name, "data_type": self.data_type, "description": self.description})

    def __repr__(self) -> str:
        return f"Output({self.name!r}, {self.data_type!r})"


class InputSource:
    """Where a deployment (or a run) takes one pipeline input from: exactly one source."""

    _SOURCES = ("endpoint_input_name", "environment_variable_name", "constant_value", "is_null", "datastore_path")

    def __init__(
        self,
        pipeline_input_name=None,
        endpoint_input_name=None,
        environment_variable_name=None,
        is_required=None,
        default_value=None,
        constant_value=None,
        is_null=None,
        datastore_path=None,
    ):
        if not pipeline_input_name:
            raise ValueError("InputSource needs pipeline_input_name, the input it maps.")
        self.pipeline_input_name = pipeline_input_name
        self.endpoint_input_name = endpoint_input_name
        self.environment_variable_name = environment_variable_name
        self.is_required = is_required
        self.default_value = default_value
        self.constant_value = constant_value
        self.is_null = is_null
        self.datastore_path = datastore_path
        given = [s for s in self._SOURCES if getattr(self, s) is not None]
        if len(given) > 1:
            raise ValueError(
                f"InputSource {pipeline_input_name!r} has several sources ({', '.join(given)}); give exactly one."
            )
        if (is_required is not None or default_value is not None) and given and given != ["endpoint_input_name"]:
            raise ValueError(
                f"InputSource {pipeline_input_name!r}: is_required and default_value only go with an endpoint input."
            )

    def to_dict(self) -> dict[str, Any]:
        return _without_none(
            {
                "pipeline_input_name": self.pipeline_input_name,
                "endpoint_input_name": self.endpoint_input_name,
                "environment_variable_name": self.environment_variable_name,
                "is_required": self.is_required,
                "default_value": self.default_value,
                "constant_value": self.constant_value,
                "is_null": self.is_null,
                "datastore_path": self.datastore_path,
            }
        )

    def __repr__(self) -> str:
        return "InputSource(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


class OutputDestination:
    """Where a deployment (or a run) puts one pipeline output."""

    def __init__(self, pipeline_output_name=None, endpoint_output_name=None, is_null=None, datastore_path=None):
        if not pipeline_output_name:
            raise ValueError("OutputDestination needs pipeline_output_name, the output it maps.")
        given = [
            n
            for n, v in (
                ("endpoint_output_name", endpoint_output_name),
                ("is_null", is_null),
                ("datastore_path", datastore_path),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"OutputDestination {pipeline_output_name!r} has several destinations ({', '.join(given)}); give one."
            )
        self.pipeline_output_name = pipeline_output_name
        self.endpoint_output_name = endpoint_output_name
        self.is_null = is_null
        self.datastore_path = datastore_path

    def to_dict(self) -> dict[str, Any]:
        return _without_none(
            {
                "pipeline_output_name": self.pipeline_output_name,
                "endpoint_output_name": self.endpoint_output_name,
                "is_null": self.is_null,
                "datastore_path": self.datastore_path,
            }
        )

    def __repr__(self) -> str:
        return "OutputDestination(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"
