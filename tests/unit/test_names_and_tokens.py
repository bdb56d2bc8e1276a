import pytest

from rayline.domain.names import validate_name
from rayline.domain.tokens import generate_token, hash_token, token_matches
from rayline.errors import InvalidInput


@pytest.mark.parametrize("name", ["a", "my-pipeline", "p1", "0-x-9", "a" * 63])
def test_valid_names(name):
    assert validate_name("pipeline_name", name) == name


@pytest.mark.parametrize("name", ["", "My-Pipeline", "-x", "x-", "a_b", "a b", "a" * 64, "é", "../x", None, 3])
def test_invalid_names_say_the_field_and_the_rule(name):
    with pytest.raises(InvalidInput) as info:
        validate_name("pipeline_name", name)
    assert "pipeline_name" in info.value.message
    assert "lowercase" in info.value.message


def test_tokens_are_random_and_stored_only_as_hashes():
    first, second = generate_token(), generate_token()
    assert first != second and len(first) >= 40
    stored = hash_token(first)
    assert first not in stored
    assert token_matches(first, stored)
    assert not token_matches(second, stored)
    assert not token_matches("", stored)
    assert not token_matches(None, stored)
    assert not token_matches(first, None)
