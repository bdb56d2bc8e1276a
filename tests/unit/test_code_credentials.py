"""The credentials of user code: what each allows, and what it is refused."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from rayline.domain.access_tokens import AccessTokens
from rayline.domain.code_credentials import (
    CodeCredentials,
    CodeScope,
    code_environment,
    epoch_ms,
    is_code_credential,
)
from rayline.domain.metrics import check_metric_name, check_metric_value, check_metric_values, one_filter
from rayline.errors import InvalidInput, Unauthorized

KEY = b"a-secret-key-of-the-platform-32b"


def test_an_execution_credential_is_that_execution_s_until_it_expires():
    credentials = CodeCredentials(KEY)
    credential = credentials.for_execution("report-7", ttl_s=60)
    scope = credentials.scope_of(credential)
    assert scope.execution_id == "report-7" and scope.covers("report-7") and not scope.covers("report-70")
    credentials.check_execution(credential, "report-7")
    with pytest.raises(Unauthorized):
        credentials.check_execution(credential, "report-8")
    with pytest.raises(Unauthorized, match="expired"):
        credentials.scope_of(credentials.for_execution("report-7", ttl_s=-10))
    with pytest.raises(Unauthorized, match="not issued by this platform"):
        credentials.scope_of(credential.replace("report-7", "report-8"))
    with pytest.raises(Unauthorized, match="not issued by this platform"):
        CodeCredentials(b"another-key-entirely-of-32-bytes").scope_of(credential)


CREATED = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_a_deployment_credential_covers_its_executions_only():
    credentials = CodeCredentials(KEY)
    credential = credentials.for_deployment("shop", CREATED)
    scope = credentials.scope_of(credential)
    assert scope == CodeScope(deployment_name="shop", deployment_created_ms=epoch_ms(CREATED))
    assert epoch_ms(CREATED.replace(tzinfo=None)) == epoch_ms(CREATED)  # as SQLite gives it back
    assert scope.covers("shop-12") and not scope.covers("shop-eu-12") and not scope.covers("shop-")
    assert not scope.covers("shopping-3")
    mac = credential.rsplit(":", 1)[1]
    for forged in (f"code:shop-eu:{epoch_ms(CREATED)}:{mac}", f"code:shop:{epoch_ms(CREATED) + 1}:{mac}"):
        with pytest.raises(Unauthorized):
            credentials.scope_of(forged)  # another deployment, or a later one of the same name
    assert CodeScope.of_subject(scope.subject, None) == scope
    assert is_code_credential(credential) and not is_code_credential("a-plain-sdk-token")


def test_an_access_token_keeps_the_scope_and_expiry_of_the_credential_it_was_exchanged_for():
    tokens = AccessTokens(KEY, "sdk-token-hash", ttl_s=3600)
    scope = CodeCredentials(KEY).scope_of(CodeCredentials(KEY).for_execution("report-7", ttl_s=60))
    subject, expires = tokens.read(tokens.issue(scope.subject, scope.expires_at))
    assert CodeScope.of_subject(subject, expires) == scope and expires == scope.expires_at
    assert tokens.read(tokens.issue())[0] == "sdk"


def test_code_environment_speaks_to_both_clients():
    environment = code_environment("http://127.0.0.1:8000", "execution:x-1:1:ab", "x-1")
    assert environment["CRAFT_AI_SDK_TOKEN"] == environment["RAYLINE_SDK_TOKEN"] == "execution:x-1:1:ab"
    assert environment["CRAFT_AI_CONTROL_URL"] == environment["CRAFT_AI_ENVIRONMENT_URL"] == "http://127.0.0.1:8000"
    assert environment["CRAFT_AI_EXECUTION_ID"] == "x-1"
    assert "CRAFT_AI_EXECUTION_ID" not in code_environment("http://h", "code:d:ab")  # a pod's: per call


@pytest.mark.parametrize("name", ["", "a b", "-x", ".x", "x/y", "a" * 129, 3, None])
def test_bad_metric_names_are_refused(name):
    with pytest.raises(InvalidInput, match="not a valid metric name"):
        check_metric_name(name)


def test_metric_values_are_finite_numbers():
    assert check_metric_value(3) == 3.0 and check_metric_values(0.5) == [0.5]
    for bad in (math.nan, math.inf, -math.inf, True, "1", None, [1], 10**400):
        with pytest.raises(InvalidInput):
            check_metric_value(bad)
    with pytest.raises(InvalidInput, match=r"values\[1\]"):
        check_metric_values([1, math.nan])
    with pytest.raises(InvalidInput, match="at least one"):
        check_metric_values([])
    assert one_filter(None, "d", None) == {"deployment_name": "d"}
    with pytest.raises(InvalidInput, match="deployment_name, pipeline_name"):
        one_filter("p", "d", None)
