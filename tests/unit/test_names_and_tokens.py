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


def test_package_downloads_need_a_token_of_their_own_and_errors_do_not_echo_it(monkeypatch):
    import pydantic

    from rayline.config import Settings

    monkeypatch.setenv("RAYLINE_PACKAGE_URL_BASE", "http://rayline-serve:8000")
    with pytest.raises(pydantic.ValidationError, match="needs RAYLINE_PACKAGE_TOKEN"):
        Settings()
    monkeypatch.setenv("RAYLINE_PACKAGE_TOKEN", "short-secret")
    with pytest.raises(pydantic.ValidationError, match="at least 16") as info:
        Settings()
    assert "short-secret" not in str(info.value)
    monkeypatch.setenv("RAYLINE_PACKAGE_TOKEN", "a-package-token-long-enough")
    assert Settings().package_token.get_secret_value() == "a-package-token-long-enough"
