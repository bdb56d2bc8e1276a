"""Input sources and output destinations: checked at creation, applied at each execution."""

import pytest

from rayline.domain.io_types import parse_input_specs, parse_output_specs
from rayline.domain.mappings import (
    from_form,
    gather_inputs,
    normalize_inputs_mapping,
    normalize_outputs_mapping,
    place_outputs,
    returned_outputs,
    with_constants,
)
from rayline.errors import InvalidInput

INPUTS = parse_input_specs(
    [
        {"name": "text", "data_type": "string"},
        {"name": "count", "data_type": "number", "default_value": 2},
        {"name": "flag", "data_type": "boolean", "is_required": False},
    ]
)
OUTPUTS = parse_output_specs([{"name": "y", "data_type": "number"}, {"name": "debug", "data_type": "json"}])


def test_endpoint_inputs_are_exposed_under_their_own_names_unless_mapped():
    mapping = normalize_inputs_mapping(
        INPUTS,
        [
            {"pipeline_input_name": "text", "endpoint_input_name": "message"},
            {"pipeline_input_name": "flag", "constant_value": True},
        ],
        "endpoint",
    )
    assert mapping == [
        {"pipeline_input_name": "text", "data_type": "string", "endpoint_input_name": "message", "is_required": True},
        {
            "pipeline_input_name": "count",
            "data_type": "number",
            "endpoint_input_name": "count",
            "is_required": False,
            "default_value": 2,
        },
        {"pipeline_input_name": "flag", "data_type": "boolean", "constant_value": True},
    ]
    values, records = gather_inputs(mapping, {"message": "hi"}, {})
    assert values == {"text": "hi", "count": 2, "flag": True}
    assert [(r["mapping_type"], r["value"]) for r in records] == [
        ("endpoint", "hi"),
        ("endpoint", 2),
        ("constant", True),
    ]
    with pytest.raises(InvalidInput, match="Unknown input.*'text'.*accepts count, message"):
        gather_inputs(mapping, {"text": "hi"}, {})  # renamed: only its endpoint name is accepted
    with pytest.raises(InvalidInput, match="'message' \\(string\\) is required"):
        gather_inputs(mapping, {}, {})
    with pytest.raises(InvalidInput, match="'count': expected a number"):
        gather_inputs(mapping, {"message": "hi", "count": "3"}, {})


def test_environment_variables_and_null_feed_inputs():
    mapping = normalize_inputs_mapping(
        INPUTS,
        [
            {"pipeline_input_name": "text", "environment_variable_name": "GREETING"},
            {"pipeline_input_name": "count", "is_null": True},
            {"pipeline_input_name": "flag", "constant_value": False},
        ],
        "periodic",
    )
    values, records = gather_inputs(mapping, {}, {"GREETING": "hello"})
    assert values == {"text": "hello", "count": None, "flag": False}
    assert records[0]["mapping_type"] == "environment_variable"
    assert records[0]["mapping_value"] == {"environment_variable_name": "GREETING"}
    assert records[0]["value"] is None  # it may be a secret: the record names the variable only
    assert records[1]["mapping_type"] == "is_null"
    with pytest.raises(InvalidInput, match="'GREETING', which is not set"):
        gather_inputs(mapping, {}, {})


@pytest.mark.parametrize(
    "raw, rule, fragment",
    [
        ([{"pipeline_input_name": "text", "constant_value": "x"}], "periodic", "unmapped: 'count', 'flag'"),
        ([{"pipeline_input_name": "nope", "constant_value": 1}], "endpoint", "not declared by the pipeline"),
        ([{"pipeline_input_name": "count", "constant_value": "3"}], "endpoint", "does not match the input's data_type"),
        ([{"pipeline_input_name": "text", "constant_value": "a", "is_null": True}], "endpoint", "exactly one source"),
        ([{"pipeline_input_name": "text"}], "endpoint", "exactly one source"),
        ([{"pipeline_input_name": "text", "datastore_path": "a/b"}], "endpoint", "maps a file input"),
        ([{"pipeline_input_name": "text", "endpoint_input_name": "x"}], "run", "only endpoint deployments"),
        (
            [{"pipeline_input_name": "count", "environment_variable_name": "N"}],
            "endpoint",
            "an environment variable is a string",
        ),
        ([{"pipeline_input_name": "text", "environment_variable_name": "lower"}], "endpoint", "not valid"),
        (
            [{"pipeline_input_name": "text", "constant_value": "a", "is_required": True}],
            "endpoint",
            "only go with an endpoint",
        ),
        (
            [{"pipeline_input_name": "text", "endpoint_input_name": "count"}],
            "endpoint",
            "two inputs use endpoint_input_name",
        ),
        (
            [{"pipeline_input_name": "text", "constant_value": "a"}, {"pipeline_input_name": "text", "is_null": True}],
            "endpoint",
            "mapped twice",
        ),
        ("text", "endpoint", "must be a list"),
    ],
)
def test_bad_inputs_mappings_are_400s_that_say_why(raw, rule, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        normalize_inputs_mapping(INPUTS, raw, rule)


def test_outputs_are_renamed_or_dropped():
    mapping = normalize_outputs_mapping(
        OUTPUTS,
        [
            {"pipeline_output_name": "y", "endpoint_output_name": "result"},
            {"pipeline_output_name": "debug", "is_null": True},
        ],
        "endpoint",
    )
    returned, records = place_outputs(mapping, {"y": 3, "debug": {"a": 1}})
    assert returned == {"result": 3}
    assert [(r["mapping_type"], r["value"]) for r in records] == [("endpoint", 3), ("is_null", None)]
    assert returned_outputs(records) == {"result": 3}
    run = normalize_outputs_mapping(OUTPUTS, None, "run")
    assert returned_outputs(place_outputs(run, {"y": 3, "debug": None})[1]) == {"y": 3, "debug": None}
    with pytest.raises(InvalidInput, match="every output must be mapped"):
        normalize_outputs_mapping(OUTPUTS, [{"pipeline_output_name": "y", "is_null": True}], "periodic")
    with pytest.raises(InvalidInput, match="two outputs use endpoint_output_name 'r'"):
        normalize_outputs_mapping(
            OUTPUTS,
            [
                {"pipeline_output_name": "y", "endpoint_output_name": "r"},
                {"pipeline_output_name": "debug", "endpoint_output_name": "r"},
            ],
            "endpoint",
        )
    with pytest.raises(InvalidInput, match="only endpoint deployments have endpoint outputs"):
        normalize_outputs_mapping(OUTPUTS, [{"pipeline_output_name": "y", "endpoint_output_name": "r"}], "run")


@pytest.mark.parametrize(
    "data_type, text, expected",
    [
        ("string", '"quoted"', "quoted"),
        ("string", "Paris", "Paris"),
        ("string", "12345", "12345"),
        ("number", "3.5", 3.5),
        ("boolean", "True", True),
        ("boolean", "false", False),
        ("json", '{"a": 1}', {"a": 1}),
        ("array", "[1, 2]", [1, 2]),
    ],
)
def test_form_fields_are_read_by_the_type_of_their_input(data_type, text, expected):
    assert from_form(data_type, text, "x") == expected


def test_a_form_field_that_does_not_match_its_type_is_a_400():
    with pytest.raises(InvalidInput, match="'x': 'three' is not a number; send it JSON-encoded"):
        from_form("number", "three", "x")
    with pytest.raises(InvalidInput, match="file part"):
        from_form("file", "hello", "x")


def test_only_constant_values_can_be_updated():
    mapping = normalize_inputs_mapping(INPUTS, [{"pipeline_input_name": "count", "constant_value": 1}], "endpoint")
    updated = with_constants(mapping, INPUTS, [{"pipeline_input_name": "count", "constant_value": 5}])
    assert updated[1]["constant_value"] == 5 and mapping[1]["constant_value"] == 1
    with pytest.raises(InvalidInput, match="does not match"):
        with_constants(mapping, INPUTS, [{"pipeline_input_name": "count", "constant_value": "5"}])
    with pytest.raises(InvalidInput, match="only give constant mappings a new constant_value"):
        with_constants(mapping, INPUTS, [{"pipeline_input_name": "text", "constant_value": "x"}])


def test_environment_variables_are_checked_and_a_deleted_one_gets_its_original_value_back():
    from rayline.domain.environment import apply, check_variables

    for bad in ({"PATH": "/x"}, {"CUDA_VISIBLE_DEVICES": "0"}, {"PYTHONPATH": "/x"}, {"OK_NAME": "a\x00b"}):
        with pytest.raises(InvalidInput):
            check_variables(bad)
    environ, originals = {"LANG": "C"}, {}
    apply({"LANG": "fr", "MODE": "blue"}, {}, environ, originals)
    assert environ == {"LANG": "fr", "MODE": "blue"}
    apply({"MODE": "green"}, {"LANG": "fr", "MODE": "blue"}, environ, originals)
    assert environ == {"LANG": "C", "MODE": "green"}  # the process's own LANG is back
    apply({}, {"MODE": "green"}, environ, originals)
    assert environ == {"LANG": "C"}


def test_form_keys_become_lists_only_for_exactly_0_to_n_minus_1():
    from rayline.domain.forms import unflatten

    assert unflatten([("a[0]", "x"), ("a[1]", "y")]) == {"a": ["x", "y"]}
    # Found by fuzzing: "00" and other digits int() reads ("²") were a KeyError/ValueError, a 500.
    assert unflatten([("inputs[00]", "x")]) == {"inputs": {"00": "x"}}
    assert unflatten([("a[²]", "x")]) == {"a": {"²": "x"}}
    assert unflatten([("a[1]", "x")]) == {"a": {"1": "x"}}


FILE_INPUTS = parse_input_specs([{"name": "source", "data_type": "file"}])
FILE_OUTPUTS = parse_output_specs([{"name": "report", "data_type": "file"}, {"name": "n", "data_type": "number"}])


def test_a_data_store_file_input_is_read_when_the_execution_starts_and_its_output_written_there():
    from rayline.domain.files import DataStoreFile, FileValue
    from rayline.domain.mappings import kept_files, returned_files, to_data_store

    inputs = normalize_inputs_mapping(
        FILE_INPUTS, [{"pipeline_input_name": "source", "datastore_path": "in/a.csv"}], "periodic"
    )
    values, records = gather_inputs(inputs, {}, {})
    assert values == {"source": DataStoreFile("in/a.csv")}
    assert records[0]["mapping_type"] == "datastore" and records[0]["mapping_value"] == {"datastore_path": "in/a.csv"}
    outputs = normalize_outputs_mapping(
        FILE_OUTPUTS,
        [
            {"pipeline_output_name": "report", "datastore_path": "out/r.csv"},
            {"pipeline_output_name": "n", "is_null": True},
        ],
        "periodic",
    )
    produced = {"report": FileValue("r.csv", b"a,b"), "n": 1}
    returned, records = place_outputs(outputs, produced)
    assert returned == {} and records[0]["value"] == {"filename": "r.csv", "size": 3}
    assert to_data_store(outputs, produced) == {"out/r.csv": produced["report"]}
    assert kept_files(records, produced) == {} and returned_files(records) == {}


@pytest.mark.parametrize(
    ("path", "fragment"), [("../x", "datastore_path"), ("/x", "datastore_path"), ("a\x00b", "control"), (3, "required")]
)
def test_a_bad_datastore_path_is_refused_naming_the_mapping(path, fragment):
    with pytest.raises(InvalidInput, match=fragment) as info:
        normalize_inputs_mapping(FILE_INPUTS, [{"pipeline_input_name": "source", "datastore_path": path}], "endpoint")
    assert "inputs_mapping['source']" in info.value.message


def test_two_outputs_cannot_go_to_the_same_data_store_path():
    outputs = parse_output_specs([{"name": "a", "data_type": "file"}, {"name": "b", "data_type": "file"}])
    mapping = [{"pipeline_output_name": name, "datastore_path": "out/same.csv"} for name in ("a", "b")]
    with pytest.raises(InvalidInput, match="same datastore_path"):
        normalize_outputs_mapping(outputs, mapping, "endpoint")
