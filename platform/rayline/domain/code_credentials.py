"""The credentials user code calls the platform's API with, from inside an execution.

An execution's code may record its metrics and use the data store, and nothing else: it never
gets the SDK token. What it gets depends on where it runs:

- an elastic execution runs alone in its process: ``execution:<id>:<expires>:<mac>``, valid for
  that execution only, while it runs and until ``expires`` (the same credential streams its logs);
- a warm pod runs every execution of its deployment in one process, with one environment:
  ``code:<deployment>:<created>:<mac>``, valid for the executions of that deployment (the one
  created at ``created``, epoch ms: not a later one of the same name) while they run (each call
  names its execution, which is checked to be one of them and not ended).

Both are HMACs under a key derived from the platform's secret key, which only the control plane
holds. ``code_environment`` is how the code finds the API: the variables both clients read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rayline.errors import Unauthorized

EXECUTION_PREFIX = "execution:"
DEPLOYMENT_PREFIX = "code:"


@dataclass(frozen=True)
class CodeScope:
    """What a user-code credential allows: one execution's, or one deployment's executions'."""

    execution_id: str | None = None
    deployment_name: str | None = None
    deployment_created_ms: int | None = None  # which deployment of that name (epoch milliseconds)
    expires_at: int | None = None  # seconds since the epoch; None: while the executions run

    @property
    def subject(self) -> str:
        """How an access token issued for this scope names it (``sub``)."""
        if self.execution_id is not None:
            return EXECUTION_PREFIX + self.execution_id
        return f"{DEPLOYMENT_PREFIX}{self.deployment_name}:{self.deployment_created_ms}"

    def covers(self, execution_id: str) -> bool:
        """Whether ``execution_id`` may be this scope's (a deployment's ids are ``<name>-<n>``;
        the caller still checks the record, where there is one, says so)."""
        if self.execution_id is not None:
            return execution_id == self.execution_id
        return bool(re.fullmatch(re.escape(str(self.deployment_name)) + r"-[0-9]+", execution_id))

    @staticmethod
    def of_subject(subject: str, expires_at: int | None) -> CodeScope | None:
        if subject.startswith(EXECUTION_PREFIX):
            return CodeScope(execution_id=subject[len(EXECUTION_PREFIX) :], expires_at=expires_at)
        if subject.startswith(DEPLOYMENT_PREFIX):
            name, _, created = subject[len(DEPLOYMENT_PREFIX) :].rpartition(":")
            if name and created.isdigit():
                return CodeScope(deployment_name=name, deployment_created_ms=int(created), expires_at=expires_at)
        return None


def epoch_ms(moment: datetime) -> int:
    """A deployment's creation time as its credential names it (naive datetimes are UTC)."""
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def is_code_credential(token: str) -> bool:
    return token.startswith((EXECUTION_PREFIX, DEPLOYMENT_PREFIX))


class CodeCredentials:
    def __init__(self, secret_key: bytes) -> None:
        # The key pods' and workers' credentials have always used: credentials issued before a
        # restart stay valid.
        self._key = hmac.new(secret_key, b"rayline pod and execution credentials", hashlib.sha256).digest()

    def mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def for_execution(self, execution_id: str, ttl_s: float) -> str:
        expires = int(time.time() + ttl_s) + 1
        return f"{EXECUTION_PREFIX}{execution_id}:{expires}:{self.mac(f'{EXECUTION_PREFIX}{execution_id}:{expires}')}"

    def for_deployment(self, deployment_name: str, created_at: datetime) -> str:
        message = f"{DEPLOYMENT_PREFIX}{deployment_name}:{epoch_ms(created_at)}"
        return f"{message}:{self.mac(message)}"

    def check_execution(self, credential: object, execution_id: str) -> None:
        """Refuse a credential that is not ``execution_id``'s, or has expired."""
        scope = self.scope_of(credential) if isinstance(credential, str) else None
        if scope is None or scope.execution_id != execution_id:
            raise Unauthorized(f"This credential does not belong to execution {execution_id!r}.")

    def scope_of(self, credential: str) -> CodeScope:
        """The scope of a user-code credential; Unauthorized if it is altered or expired."""
        if credential.startswith(EXECUTION_PREFIX):
            rest = credential[len(EXECUTION_PREFIX) :]
            execution_id, expires, mac = (rest.rsplit(":", 2) + ["", ""])[:3]
            expected = self.mac(f"{EXECUTION_PREFIX}{execution_id}:{expires}")
            if not execution_id or not expires.isdigit() or not hmac.compare_digest(mac.encode(), expected.encode()):
                raise Unauthorized("This execution credential was not issued by this platform (or was altered).")
            if int(expires) < time.time():
                raise Unauthorized(f"The credential of execution {execution_id!r} has expired.")
            return CodeScope(execution_id=execution_id, expires_at=int(expires))
        if credential.startswith(DEPLOYMENT_PREFIX):
            message, _, mac = credential.rpartition(":")
            name, _, created = message[len(DEPLOYMENT_PREFIX) :].rpartition(":")
            if not name or not created.isdigit() or not hmac.compare_digest(mac.encode(), self.mac(message).encode()):
                raise Unauthorized("This pod credential was not issued by this platform (or was altered).")
            return CodeScope(deployment_name=name, deployment_created_ms=int(created))
        raise Unauthorized("Not a credential of user code.")


def code_environment(environment_url: str, credential: str, execution_id: str | None = None) -> dict[str, str]:
    """The variables that let both clients, created with no arguments inside an execution, reach
    the platform with the execution's credential (``RaylineSdk()``, ``CraftAiSdk()``); with the
    execution's id where the process runs only that one (a warm pod's executions read theirs from
    the context of each call)."""
    environment = {
        "RAYLINE_ENVIRONMENT_URL": environment_url,
        "RAYLINE_SDK_TOKEN": credential,
        "CRAFT_AI_ENVIRONMENT_URL": environment_url,
        "CRAFT_AI_CONTROL_URL": environment_url,  # where craft-ai-sdk gets its access tokens
        "CRAFT_AI_SDK_TOKEN": credential,
    }
    if execution_id is not None:
        environment["RAYLINE_EXECUTION_ID"] = execution_id
        environment["CRAFT_AI_EXECUTION_ID"] = execution_id
    return environment
