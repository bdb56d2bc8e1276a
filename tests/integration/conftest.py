"""One real platform per test session: `rayline up` as a user runs it (local Ray, Serve, SQLite,
HTTP on 127.0.0.1), driven over real HTTP by the SDK."""

from __future__ import annotations

import textwrap
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rayline.local_platform import LocalPlatform


class Platform(LocalPlatform):
    def restart(self) -> None:
        left = self.stop()
        assert left == [], f"processes left after stopping: {left}"
        self.start()


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    instance = Platform(
        tmp_path_factory.mktemp("rayline-home"),
        extra_env={
            "RAYLINE_MAX_UPLOAD_BYTES": "2000000",
            "RAYLINE_MAX_FILE_BYTES": "1000000",
            "RAYLINE_MAX_DATA_STORE_OBJECT_BYTES": "3000000",
            "RAYLINE_RESOURCE_METRICS_INTERVAL_S": "1",  # tests/integration/test_resource_metrics.py
        },
    )
    instance.start()
    yield instance
    left = instance.stop()
    assert left == [], f"processes left after stopping: {left}"


@pytest.fixture
def sdk(platform):
    with platform.sdk() as client:
        yield client


@pytest.fixture
def api(platform):
    """A plain HTTP client with the SDK token, for what the SDK does not send."""
    with httpx.Client(
        base_url=f"{platform.url}/api/v1", headers={"Authorization": f"Bearer {platform.token}"}, timeout=120
    ) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def folder_pipeline(platform, folder: Path, prefix: str, files: dict[str, str], function: str, inputs, outputs):
    """A pipeline of ``files`` (``main.py``'s ``function``), created for the block under a unique
    name and deleted after it, with its deployments."""
    name = unique(prefix)
    with platform.sdk() as sdk:
        sdk.create_pipeline(
            name,
            "main.py",
            function,
            container_config={"local_folder": str(write_folder(folder, files))},
            inputs=inputs,
            outputs=outputs,
        )
        yield name
        sdk.delete_pipeline(name, force_deployments_deletion=True)


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root
