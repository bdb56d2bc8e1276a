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


# Matched whole: a pattern ending in "$" used with re.match also accepts a trailing newline.
NEWLINE_OR_NUL = ["abc\n", "abc\r\n", "\nabc", "a\nb", "abc\x00", "\x00abc", "a\x00b"]


@pytest.mark.parametrize("name", NEWLINE_OR_NUL)
def test_names_refuse_newlines_and_nul(name):
    with pytest.raises(InvalidInput, match="pipeline_name"):
        validate_name("pipeline_name", name)
    with pytest.raises(InvalidInput, match="endpoint_url_path"):
        validate_name("endpoint_url_path", name)


@pytest.mark.parametrize("name", [n.upper() for n in NEWLINE_OR_NUL] + ["FOO\n", "MY_API_URL\n"])
def test_environment_variable_names_refuse_newlines_and_nul(name):
    from rayline.domain.environment import check_name, check_variables

    assert check_name("MY_API_URL") == "MY_API_URL"
    with pytest.raises(InvalidInput, match="is not valid"):
        check_name(name)
    with pytest.raises(InvalidInput, match="is not valid"):
        check_variables({name: "value"})


@pytest.mark.parametrize("name", ["a\n", "a\x00", "\na"])
def test_declared_input_and_output_names_refuse_newlines_and_nul(name):
    from rayline.domain.io_types import parse_input_specs, parse_output_specs

    with pytest.raises(InvalidInput, match="identifier"):
        parse_input_specs([{"name": name, "data_type": "string"}])
    with pytest.raises(InvalidInput, match="identifier"):
        parse_output_specs([{"name": name, "data_type": "string"}])


def test_access_tokens_end_with_the_sdk_token_they_were_issued_for():
    from rayline.domain.access_tokens import AccessTokens

    key = b"a-secret-key-of-the-platform-32b"
    token_a, token_b = hash_token("sdk-token-a-long-enough"), hash_token("sdk-token-b-long-enough")
    issued = AccessTokens(key, token_a, ttl_s=3600).issue()
    assert AccessTokens(key, token_a, ttl_s=3600).problem(issued) is None  # a restart keeps it valid
    problem = AccessTokens(key, token_b, ttl_s=3600).problem(issued)
    assert problem and "not issued by this platform" in problem
    assert AccessTokens(b"another-secret-key-entirely-32b!", token_a, ttl_s=3600).problem(issued)
    with pytest.raises(ValueError):
        AccessTokens(key, "", ttl_s=3600)


@pytest.mark.parametrize("ttl", ["86401", "100000", "0", "-1", "forever"])
def test_access_token_lifetime_is_above_zero_and_at_most_a_day(monkeypatch, ttl):
    import pydantic

    from rayline.config import Settings

    monkeypatch.setenv("RAYLINE_ACCESS_TOKEN_TTL_S", ttl)
    with pytest.raises(pydantic.ValidationError, match=r"RAYLINE_ACCESS_TOKEN_TTL_S must be .* at most 86400 \(24 h\)"):
        Settings()
    monkeypatch.setenv("RAYLINE_ACCESS_TOKEN_TTL_S", "86400")
    assert Settings().access_token_ttl_s == 86400
    monkeypatch.delenv("RAYLINE_ACCESS_TOKEN_TTL_S")
    assert Settings().access_token_ttl_s == 3600
