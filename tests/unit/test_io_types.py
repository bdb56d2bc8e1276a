import pytest

from rayline.domain.forms import declarations, unflatten
from rayline.domain.io_types import InputSpec, OutputSpec, check_outputs, parse_input_specs, parse_output_specs
from rayline.domain.mappings import gather_inputs, normalize_inputs_mapping
from rayline.errors import InvalidInput


def specs():
    return parse_input_specs([
        {"name": "text", "data_type": "string"},
        {"name": "count", "data_type": "number", "default_value": 2},
        {"name": "flag", "data_type": "boolean", "is_required": False},
        {"name": "items", "data_type": "array", "is_required": False},
        {"name": "config", "data_type": "json", "is_required": False},
    ])


def resolve_inputs(specs, given):
    """The values a run_pipeline execution receives (its inputs, no mapping)."""
    return gather_inputs(normalize_inputs_mapping(specs, None, "run"), given, {})[0]


def test_an_input_is_required_unless_optional_or_defaulted():
    by_name = {spec.name: spec for spec in specs()}
    assert by_name["text"].is_required
    assert not by_name["count"].is_required
    assert not by_name["flag"].is_required


def test_resolve_inputs_applies_defaults_and_keeps_given_values():
    assert resolve_inputs(specs(), {"text": "hi", "items": [1], "config": {"a": None}}) == {
        "text": "hi", "count": 2, "items": [1], "config": {"a": None}}


@pytest.mark.parametrize("given, fragment", [
    ({}, "'text' (string) is required"),
    ({"text": 3}, "'text': expected a string, got int"),
    ({"text": "x", "count": "3"}, "'count': expected a number, got str"),
    ({"text": "x", "count": True}, "'count': expected a number, got bool"),
    ({"text": "x", "count": float("nan")}, "'count': expected a number"),
    ({"text": "x", "flag": "yes"}, "'flag': expected a boolean"),
    ({"text": "x", "items": {"a": 1}}, "'items': expected a array"),
    ({"text": "x", "config": {1, 2}}, "'config': expected a json"),
    ({"text": "x", "nope": 1}, "Unknown input(s) 'nope'"),
])
def test_bad_inputs_name_the_input(given, fragment):
    with pytest.raises(InvalidInput) as info:
        resolve_inputs(specs(), given)
    assert fragment in info.value.message


@pytest.mark.parametrize("raw, fragment", [
    ([{"name": "x", "data_type": "str"}], "data_type must be one of"),
    ([{"name": "not valid", "data_type": "string"}], "valid Python identifier"),
    ([{"name": "x", "data_type": "string"}, {"name": "x", "data_type": "number"}], "declared twice"),
    ([{"name": "x", "data_type": "number", "default_value": "3"}], "default_value does not match"),
    ([{"name": "f", "data_type": "file", "default_value": "a"}], "cannot have a default_value"),
])
def test_bad_declarations_are_refused(raw, fragment):
    with pytest.raises(InvalidInput) as info:
        parse_input_specs(raw)
    assert fragment in info.value.message


def test_outputs_are_checked_against_declarations():
    outputs = parse_output_specs([{"name": "y", "data_type": "number"}, {"name": "z", "data_type": "string"}])
    assert check_outputs(outputs, {"y": 1}) == {"y": 1, "z": None}
    assert check_outputs([], None) == {}
    with pytest.raises(ValueError, match="must return a dict"):
        check_outputs(outputs, 3)
    with pytest.raises(ValueError, match="undeclared output"):
        check_outputs(outputs, {"w": 1})
    with pytest.raises(ValueError, match="'y': expected a number"):
        check_outputs(outputs, {"y": "1"})


def test_nested_form_fields_unflatten_like_craft_ai_sdk_sends_them():
    fields = [("pipeline_name", "p"), ("container_config[requirements_path]", "req.txt"),
              ("inputs[0][name]", "a"), ("inputs[0][data_type]", "number"), ("inputs[0][default_value]", "2.5"),
              ("inputs[1][name]", "b"), ("inputs[1][data_type]", "boolean"), ("inputs[1][is_required]", "False"),
              ("inputs[1][default_value]", "True")]
    data = unflatten(fields)
    assert data["container_config"] == {"requirements_path": "req.txt"}
    parsed = parse_input_specs(declarations("inputs", data["inputs"]))
    assert parsed == [InputSpec(name="a", data_type="number", is_required=False, default_value=2.5),
                      InputSpec(name="b", data_type="boolean", is_required=False, default_value=True)]
    assert OutputSpec(name="y", data_type="json").data_type == "json"


def test_malformed_form_fields_are_refused():
    with pytest.raises(InvalidInput):
        unflatten([("inputs[0", "x")])
    with pytest.raises(InvalidInput):
        declarations("inputs", [{"name": "a", "data_type": "boolean", "default_value": "maybe"}])


@pytest.mark.parametrize("data_type, default", [
    ("array", [1, 2]), ("array", []), ("json", {"0": "x", "k": [1]}), ("json", "text"), ("number", 2.5),
    ("boolean", False), ("string", "3"), ("string", ""),
])
def test_defaults_round_trip_from_the_sdk_form_to_the_declaration(data_type, default):
    from rayline import Input
    from rayline.sdk.client import _encoded_default, _flatten_form

    fields = _flatten_form([_encoded_default(Input("x", data_type, default_value=default).to_dict())], "inputs")
    parsed = parse_input_specs(declarations("inputs", unflatten(fields)["inputs"]))
    assert parsed[0].default_value == default and type(parsed[0].default_value) is type(default)
    assert parsed[0].is_required is False
