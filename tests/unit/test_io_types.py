import pytest

from rayline.domain.files import FileValue, materialize
from rayline.domain.io_types import check_outputs, parse_input_specs, parse_output_specs
from rayline.domain.mappings import gather_inputs, normalize_inputs_mapping
from rayline.errors import InvalidInput

LIMIT = 1024


def specs():
    return parse_input_specs(
        [
            {"name": "text", "data_type": "string"},
            {"name": "count", "data_type": "number", "default_value": 2},
            {"name": "flag", "data_type": "boolean", "is_required": False},
            {"name": "items", "data_type": "array", "is_required": False},
            {"name": "config", "data_type": "json", "is_required": False},
        ]
    )


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
        "text": "hi",
        "count": 2,
        "items": [1],
        "config": {"a": None},
    }


@pytest.mark.parametrize(
    "given, fragment",
    [
        ({}, "'text' (string) is required"),
        ({"text": 3}, "'text': expected a string, got int"),
        ({"text": "x", "count": "3"}, "'count': expected a number, got str"),
        ({"text": "x", "count": True}, "'count': expected a number, got bool"),
        ({"text": "x", "count": float("nan")}, "'count': expected a number"),
        ({"text": "x", "flag": "yes"}, "'flag': expected a boolean"),
        ({"text": "x", "items": {"a": 1}}, "'items': expected a array"),
        ({"text": "x", "config": {1, 2}}, "'config': expected a json"),
        ({"text": "x", "nope": 1}, "Unknown input(s) 'nope'"),
    ],
)
def test_bad_inputs_name_the_input(given, fragment):
    with pytest.raises(InvalidInput) as info:
        resolve_inputs(specs(), given)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ([{"name": "x", "data_type": "str"}], "data_type must be one of"),
        ([{"name": "not valid", "data_type": "string"}], "valid Python identifier"),
        ([{"name": "x", "data_type": "string"}, {"name": "x", "data_type": "number"}], "declared twice"),
        ([{"name": "x", "data_type": "number", "default_value": "3"}], "default_value does not match"),
        ([{"name": "f", "data_type": "file", "default_value": "a"}], "cannot have a default_value"),
    ],
)
def test_bad_declarations_are_refused(raw, fragment):
    with pytest.raises(InvalidInput) as info:
        parse_input_specs(raw)
    assert fragment in info.value.message


def test_outputs_are_checked_against_declarations():
    outputs = parse_output_specs([{"name": "y", "data_type": "number"}, {"name": "z", "data_type": "string"}])
    assert check_outputs(outputs, {"y": 1}, LIMIT) == {"y": 1, "z": None}
    assert check_outputs([], None, LIMIT) == {}
    with pytest.raises(ValueError, match="must return a dict"):
        check_outputs(outputs, 3, LIMIT)
    with pytest.raises(ValueError, match="undeclared output"):
        check_outputs(outputs, {"w": 1}, LIMIT)
    with pytest.raises(ValueError, match="'y': expected a number"):
        check_outputs(outputs, {"y": "1"}, LIMIT)
    arrays = parse_output_specs([{"name": "items", "data_type": "array"}])
    with pytest.raises(ValueError, match="must be JSON values"):  # an array may hold what JSON cannot
        check_outputs(arrays, {"items": [object()]}, LIMIT)


def test_file_outputs_are_read_from_a_path_or_bytes_within_the_limit(tmp_path):
    specs = parse_output_specs([{"name": "report", "data_type": "file"}])
    (tmp_path / "report.csv").write_text("a,b\n")
    assert check_outputs(specs, {"report": tmp_path / "report.csv"}, LIMIT) == {
        "report": FileValue("report.csv", b"a,b\n")
    }
    assert check_outputs(specs, {"report": b"raw"}, LIMIT) == {"report": FileValue("report", b"raw")}
    with pytest.raises(ValueError, match="is not a file"):
        check_outputs(specs, {"report": str(tmp_path / "missing.csv")}, LIMIT)
    with pytest.raises(ValueError, match="return the path of a file you wrote, or bytes"):
        check_outputs(specs, {"report": 3}, LIMIT)
    with pytest.raises(ValueError, match="the limit is 2 bytes"):
        check_outputs(specs, {"report": b"raw"}, 2)


def test_file_inputs_become_paths_that_the_client_cannot_choose(tmp_path):
    placed = materialize(
        {
            "doc": FileValue("../../etc/passwd", b"x"),
            "n": 1,
            "dots": FileValue("..", b"y"),
            "win": FileValue("C:\\temp\\a.txt", b"z"),
        },
        tmp_path,
    )
    assert placed["n"] == 1 and placed["doc"] == str(tmp_path / "doc" / "passwd")
    assert (tmp_path / "doc" / "passwd").read_bytes() == b"x"
    assert placed["dots"] == str(tmp_path / "dots" / "dots")  # no name of its own: the input's
    assert placed["win"] == str(tmp_path / "win" / "a.txt")
