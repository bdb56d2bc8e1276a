"""Settings of the platform, from ``RAYLINE_*`` environment variables.

Built once at start-up (``Settings()``), never at import, and handed to each component.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from rayline.domain.resource_metrics import MAX_WINDOW_S
from rayline.domain.tokens import MIN_CHOSEN_TOKEN_LENGTH

MAX_ACCESS_TOKEN_TTL_S = 24 * 3600

PACKAGE_URL_BASE_SHAPE = (
    "RAYLINE_PACKAGE_URL_BASE must be the control plane's URL as Ray's nodes reach it: http:// or "
    "https://, a host, then an optional port and path; no user, password, query or fragment "
    "(e.g. http://rayline-head-svc:8000)."
)


class Settings(BaseSettings):
    # Errors must not echo what was given: a token that is too short is still a token.
    model_config = SettingsConfigDict(env_prefix="RAYLINE_", extra="ignore", hide_input_in_errors=True)

    home: Path = Field(Path("~/.rayline"), description="Where state lives: database, packages, token.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    sdk_token: SecretStr | None = Field(None, description="Fixed SDK token; generated once if unset.")
    num_cpus: int | None = Field(None, description="CPUs the local Ray head offers; default all.")
    ha_proxy: bool = Field(True, description="Serve's HAProxy ingress (about 8x lower latency).")
    max_upload_bytes: int = Field(50 * 1024**2, description="Largest pipeline archive accepted.")
    max_unpacked_bytes: int = Field(500 * 1024**2, description="Largest total size once unpacked.")
    max_archive_members: int = 20_000
    max_file_bytes: int = Field(
        20 * 1024**2, description="Largest file input (one multipart part) or file output of an execution."
    )
    file_retention_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="How long the file inputs and outputs of an execution are kept after it ends (its record stays).",
    )
    resource_metrics_interval_s: float = Field(
        15.0,
        ge=0.5,
        description="How often the control plane samples what each Ray node uses (CPU, RAM, disk, "
        "network, GPUs) from the node's metrics agent, for GET /api/v1/resource-metrics.",
    )
    resource_metrics_retention_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="How long resource samples are kept in SQL (older ones are deleted as new ones "
        "come): at least twice RAYLINE_RESOURCE_METRICS_INTERVAL_S, at most 31 days (the widest "
        "window a query may ask for).",
    )
    data_store_url: str | None = Field(
        None,
        description="Where the data store keeps objects: unset, a folder under home; s3://bucket/prefix "
        "for S3 (endpoint, keys and region from the usual AWS_* variables).",
    )
    max_data_store_object_bytes: int = Field(5 * 1024**3, gt=0, description="Largest object of the data store.")
    data_store_url_ttl_s: float = Field(
        900.0, gt=0, le=7 * 24 * 3600, description="How long a signed data store URL (upload, part, download) is valid."
    )
    wait_hold_s: float = Field(5.0, description="How long a wait_for_completion request is held.")
    max_pods_per_deployment: int = Field(
        16, ge=1, description="The highest max_pods a low-latency deployment may ask for (more pods, more Ray workers)."
    )
    user_code_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources that every process running user code asks for (warm "
        'pods, elastic executions), as JSON (e.g. {"rayline-user-code": '
        "0.01}): they then run only on the nodes started with them (`ray start --resources`), "
        "e.g. to keep user code off the head node, where the control plane and its secrets are.",
    )
    reply_after_commit: Literal["auto", "always"] = Field(
        "auto",
        description="When a warm pod answers a call: 'auto', as soon as it is journaled on the "
        "control plane's node (the journal outlives the pod there) and once committed elsewhere "
        "(a node's journal dies with the node); 'always', once committed everywhere.",
    )
    endpoint_wait_s: float = Field(60.0, description="How long an endpoint call waits before redirecting.")
    package_url_base: str | None = Field(
        None,
        description="On a multi-node cluster, the URL of the control plane "
        "as nodes reach it (e.g. http://rayline-head-svc:8000): pipeline packages "
        "are then kept in SQL and downloaded by every node from "
        "<base>/api/v1/packages/. Unset: a file on this machine.",
    )
    package_token: SecretStr | None = Field(
        None,
        description="A token that may only download packages: give it to "
        "Ray's nodes as RAY_RUNTIME_ENV_BEARER_TOKEN (user code can read "
        "their environment, so not the SDK token).",
    )
    access_token_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=MAX_ACCESS_TOKEN_TTL_S,
        description="Lifetime of the access "
        "tokens /auth/refresh issues (craft-ai-sdk refreshes them before they expire); "
        "at most 24 h: an access token cannot be revoked before it expires, except by "
        "changing the SDK token or the secret key.",
    )

    console_session_ttl_s: float = Field(
        8 * 3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="How long a sign-in to the web console at / lasts (at most 7 days); a new SDK "
        "token ends every session.",
    )

    @field_validator("access_token_ttl_s", mode="wrap")
    @classmethod
    def _access_token_ttl_is_bounded(cls, value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(
                f"RAYLINE_ACCESS_TOKEN_TTL_S must be a number of seconds above 0 and at most "
                f"{MAX_ACCESS_TOKEN_TTL_S} (24 h)."
            ) from None

    @field_validator("user_code_resources")
    @classmethod
    def _user_code_resources_are_custom(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in ("CPU", "GPU", "memory", "object_store_memory") or not name:
                raise ValueError(
                    f"RAYLINE_USER_CODE_RESOURCES cannot name {name!r}: give custom resources only "
                    "(a deployment's ram_request and gpu_request ask for memory and GPUs)."
                )
            if not amount > 0:
                raise ValueError(f"RAYLINE_USER_CODE_RESOURCES[{name!r}] must be above 0 (a share of the resource).")
        return value

    @field_validator("data_store_url")
    @classmethod
    def _data_store_url_is_s3(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from rayline.store.data_store_s3 import parse_s3_url

        parse_s3_url(value.strip())  # its ValueError names the variable and the shape
        return value.strip()

    @field_validator("package_url_base")
    @classmethod
    def _package_url_base_is_an_http_url(cls, value: str | None) -> str | None:
        # Nodes download `<base>/api/v1/packages/<sha256>.zip`: anything after the path would
        # break that URL, and a password in it would be kept in Ray's GCS with every runtime_env.
        if value is None or not value.strip():
            return None
        url = value.strip()
        parts = urlsplit(url)
        try:
            _ = parts.port  # raises on a port that is not a number from 0 to 65535
        except ValueError:
            raise ValueError(PACKAGE_URL_BASE_SHAPE) from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or "?" in url
            or "#" in url
            or any(character.isspace() for character in url)
        ):
            raise ValueError(PACKAGE_URL_BASE_SHAPE)
        return url.rstrip("/")

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'rayline.db'}"

    @property
    def packages_dir(self) -> Path:
        return self.home_dir / "packages"

    @property
    def token_path(self) -> Path:
        return self.home_dir / "sdk-token"

    @model_validator(mode="after")
    def _resource_metrics_retention_is_bounded(self) -> Settings:
        # Past the widest window nothing could ask for them, and the table only grows; under two
        # intervals, no two samples of a node would be kept at once to make a network rate.
        interval, retention = self.resource_metrics_interval_s, self.resource_metrics_retention_s
        if not 2 * interval <= retention <= MAX_WINDOW_S:
            raise ValueError(
                f"RAYLINE_RESOURCE_METRICS_RETENTION_S ({retention:.15g} s) must be at least twice "
                f"RAYLINE_RESOURCE_METRICS_INTERVAL_S ({interval:.15g} s) and at most {MAX_WINDOW_S} "
                f"({MAX_WINDOW_S // 86400} days, the widest window a query may ask for)."
            )
        return self

    @model_validator(mode="after")
    def _package_downloads_need_their_token(self) -> Settings:
        # Without it, nodes could only download with the SDK token, which user code would then see.
        if self.package_url_base and self.package_token is None:
            raise ValueError(
                f"RAYLINE_PACKAGE_URL_BASE needs RAYLINE_PACKAGE_TOKEN ({MIN_CHOSEN_TOKEN_LENGTH}+ "
                "characters), given to Ray's nodes as RAY_RUNTIME_ENV_BEARER_TOKEN."
            )
        if (
            self.package_token is not None
            and len(self.package_token.get_secret_value().strip()) < MIN_CHOSEN_TOKEN_LENGTH
        ):
            raise ValueError(f"RAYLINE_PACKAGE_TOKEN must be at least {MIN_CHOSEN_TOKEN_LENGTH} characters long.")
        return self

    @property
    def secret_key_path(self) -> Path:
        return self.home_dir / "secret-key"

    @property
    def environment_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def user_code_url(self) -> str:
        """The API's URL as the processes running user code reach it (their SDK clients)."""
        return self.package_url_base or self.environment_url

    @property
    def platform_secrets_path(self) -> Path:
        return self.home_dir / "platform-secrets.json"

    def for_cluster(self) -> Settings:
        """A copy safe to ship to Ray processes, whose arguments Ray keeps in its GCS where any
        code in the cluster can read them: without the SDK token, the package token or the
        database URL. The control plane reads those from ``platform_secrets_path`` instead."""
        return self.model_copy(update={"sdk_token": None, "package_token": None, "database_url": None})

    def secrets(self) -> dict[str, str]:
        """What ``for_cluster`` leaves out and the control plane needs, for ``platform_secrets_path``."""
        values = {
            "database_url": self.database_url,
            "package_token": self.package_token.get_secret_value() if self.package_token else None,
        }
        return {key: value for key, value in values.items() if value is not None}

    def with_secrets(self, values: dict[str, str]) -> Settings:
        update: dict[str, object] = {"database_url": values.get("database_url")}
        if values.get("package_token"):
            update["package_token"] = SecretStr(values["package_token"])
        return self.model_copy(update=update)


def describe_settings_error(error: ValidationError | SettingsError) -> list[str]:
    """One line per problem of a ``Settings()`` that failed, naming its ``RAYLINE_*`` variable and
    what it should be; never the value given (``hide_input_in_errors``: it may be a token)."""
    if isinstance(error, SettingsError):  # a JSON setting that does not parse, before validation
        field = re.search(r'field "(\w+)"', str(error))
        variable = f"RAYLINE_{field.group(1).upper()}" if field else "a RAYLINE_* variable"
        return [f"{variable} is invalid: it must be JSON ({error.__cause__ or error})."]
    lines = []
    for problem in error.errors(include_url=False, include_context=False, include_input=False):
        message = " ".join(str(problem["msg"]).removeprefix("Value error, ").split())
        if problem["loc"]:  # a field's own check; the model's name their variables themselves
            variable = f"RAYLINE_{str(problem['loc'][0]).upper()}"
            if variable not in message:
                message = f"{variable} is invalid: {message[:1].lower()}{message[1:]}"
        lines.append(message if message.endswith(".") else message + ".")
    return lines
