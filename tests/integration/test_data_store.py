"""The data store, through the published craft-ai-sdk 0.74.7 client and RaylineSdk: the folder
backend (signed URLs to the control plane's own routes) on the session's platform, and S3 against
a real S3-compatible server (moto's server mode) on a platform of its own."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import warnings
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

with warnings.catch_warnings():  # importing the client turns every DeprecationWarning on, for good
    from craft_ai_sdk import CraftAiSdk
    from craft_ai_sdk.exceptions import SdkException as CraftSdkException

from rayline.local_platform import LocalPlatform
from rayline.ports import free_port
from rayline.sdk.errors import SdkException
from tests.integration.conftest import unique

MAX_OBJECT_BYTES = 3_000_000  # the session platform's RAYLINE_MAX_DATA_STORE_OBJECT_BYTES


def small_parts(client, part_size: int = 256 * 1024):
    """Multipart from 1 MiB on, in parts of 256 KiB (instead of 100 MB and 9.5 MiB); S3 takes
    parts of 5 MiB at least."""
    client._MULTIPART_THRESHOLD, client._MULTIPART_PART_SIZE = max(1024 * 1024, part_size + 1), part_size
    return client


@pytest.fixture(scope="module")
def craft(platform):
    return small_parts(CraftAiSdk(sdk_token=platform.token, environment_url=platform.url, control_url=platform.url))


def round_trip(client, folder: str, tmp_path, large_bytes: int = 2_500_000) -> None:
    """What a notebook does with the data store, with either client."""
    small, large = os.urandom(5000), os.urandom(large_bytes)  # one part; several
    source = tmp_path / "large.bin"
    source.write_bytes(large)
    client.upload_data_store_object(io.BytesIO(small), f"{folder}/small.bin")
    client.upload_data_store_object(str(source), f"{folder}/deep/large.bin")

    target = tmp_path / "back.bin"
    client.download_data_store_object(f"{folder}/deep/large.bin", str(target))
    assert target.read_bytes() == large
    buffer = io.BytesIO()
    client.download_data_store_object(f"{folder}/small.bin", buffer)
    assert buffer.getvalue() == small

    listed = client.list_data_store_objects(folder)
    assert [item["path"] for item in listed] == [f"{folder}/deep/large.bin", f"{folder}/small.bin"]
    info = client.get_data_store_object_information(f"{folder}/small.bin")
    assert info["path"] == f"{folder}/small.bin" and info["last_modified"]

    assert client.delete_data_store_object(f"{folder}/small.bin") == {"path": f"{folder}/small.bin"}
    assert [item["path"] for item in client.list_data_store_objects(folder)] == [f"{folder}/deep/large.bin"]


def test_the_craft_client_round_trips_objects_through_the_folder_backend(craft, tmp_path):
    folder = unique("craft")
    round_trip(craft, folder, tmp_path)
    # The client shows sizes as text; its list converts them: the bytes came back whole above.
    assert craft.get_data_store_object_information(f"{folder}/deep/large.bin")["size"].endswith("MB")


def test_rayline_sdk_round_trips_objects_and_gives_sizes_in_bytes(sdk, tmp_path):
    folder = unique("rayline")
    small_parts(sdk)
    round_trip(sdk, folder, tmp_path)
    assert sdk.get_data_store_object_information(f"{folder}/deep/large.bin")["size"] == 2_500_000


def test_an_upload_replaces_the_object_and_a_failed_one_leaves_it_whole(sdk):
    path = f"{unique('replace')}/object.txt"
    sdk.upload_data_store_object(io.BytesIO(b"first"), path)
    sdk.upload_data_store_object(io.BytesIO(b"second"), path)
    with pytest.raises(SdkException) as refused:
        sdk.upload_data_store_object(io.BytesIO(os.urandom(MAX_OBJECT_BYTES + 1)), path)  # multipart, too big
    assert refused.value.status_code == 413 and "RAYLINE_MAX_DATA_STORE_OBJECT_BYTES" in str(refused.value)
    buffer = io.BytesIO()
    sdk.download_data_store_object(path, buffer)
    assert buffer.getvalue() == b"second"


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/etc/passwd", "a/../../b", "a//b", "a/./b", "nul\x00byte", "back\\slash", "x" * 1025, "y" * 256],
)
def test_bad_paths_are_refused_with_the_field_named_and_nothing_written(sdk, api, path):
    before = sdk.list_data_store_objects()
    with pytest.raises(SdkException) as refused:
        sdk.upload_data_store_object(io.BytesIO(b"data"), path)
    assert refused.value.status_code == 400 and "path_to_object" in str(refused.value)
    assert sdk.list_data_store_objects() == before
    answer = api.get("/data-store/list", params={"folder_path": "../.."})
    assert answer.status_code == 400 and "folder_path" in answer.json()["message"]


def test_an_unknown_object_is_a_404_that_names_it(sdk, craft):
    path = f"{unique('missing')}/nothing.csv"
    for call in (
        lambda: sdk.get_data_store_object_information(path),
        lambda: sdk.download_data_store_object(path, io.BytesIO()),
        lambda: sdk.delete_data_store_object(path),
    ):
        with pytest.raises(SdkException) as missing:
            call()
        assert missing.value.status_code == 404 and path in str(missing.value)
    with pytest.raises(CraftSdkException) as missing:
        craft.get_data_store_object_information(path)
    assert missing.value.status_code == 404


def test_signed_urls_need_no_token_but_an_altered_or_expired_one_is_refused(sdk, api, platform):
    path = f"{unique('signed')}/report.txt"
    sdk.upload_data_store_object(io.BytesIO(b"the report"), path)
    url = api.post("/data-store/download", json={"path_to_object": path}).json()["signed_url"]
    assert httpx.get(url).content == b"the report"  # no Authorization header

    signature = parse_qs(urlsplit(url).query)["signature"][0]
    altered = url.split("?")[0] + "?" + urlencode({"signature": signature[:-3] + "AAA"})
    answer = httpx.get(altered)
    assert answer.status_code == 403 and b"<Code>AccessDenied</Code>" in answer.content

    # A URL for one object opens no other: the signature holds the path, not the query.
    other = api.post("/data-store/download", json={"path_to_object": path})
    assert other.status_code == 200
    upload = api.get("/data-store/upload", params={"path_to_object": path}).json()
    hijack = httpx.post(
        upload["signed_url"], data={**upload["fields"], "key": f"{path}.evil"}, files={"file": ("f", b"evil")}
    )
    assert hijack.status_code == 403
    unsigned = httpx.post(upload["signed_url"].split("?")[0], data=upload["fields"], files={"file": ("f", b"x")})
    assert unsigned.status_code == 403  # refused before its body is read
    assert [item["path"] for item in sdk.list_data_store_objects(path.split("/")[0])] == [path]

    from rayline.domain.signed_urls import UrlSigner

    expired = UrlSigner((platform.home / "secret-key").read_bytes().strip()).sign("download", path, ttl_s=-10)
    answer = httpx.get(url.split("?")[0] + "?" + urlencode({"signature": expired}))
    assert answer.status_code == 403 and b"expired" in answer.content


def test_listing_pages_with_a_continuation_token(tmp_path):
    from rayline.domain.signed_urls import UrlSigner
    from rayline.store.data_store_folder import FolderStorage

    storage = FolderStorage(tmp_path / "store", UrlSigner(b"k" * 32))
    for name in ("a/1", "a/2", "a/3", "b/1"):
        (tmp_path / "store" / "objects" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "store" / "objects" / name).write_bytes(b"x")
    first, token = storage.list("a/", None, 2)
    second, last = storage.list("a/", token, 2)
    assert [i["path"] for i in first] == ["a/1", "a/2"] and [i["path"] for i in second] == ["a/3"] and last is None


def test_abandoned_uploads_are_swept_and_live_ones_kept(tmp_path):
    import os

    from rayline.domain.signed_urls import UrlSigner
    from rayline.store import data_store_folder
    from rayline.store.data_store_folder import FolderStorage

    now = [1_000_000.0]
    storage = FolderStorage(tmp_path / "store", UrlSigner(b"k" * 32), clock=lambda: now[0])
    old = storage.start_multipart("a/old.bin", 100)["upload_id"]
    live = storage.start_multipart("a/live.bin", 100)["upload_id"]
    cut_off = tmp_path / "store" / "tmp" / "cut-off-body"
    cut_off.write_bytes(b"half a body")
    long_ago = now[0] - data_store_folder.ABANDONED_AFTER_S - 60
    for stale in (tmp_path / "store" / "uploads" / old, tmp_path / "store" / "uploads" / old / "upload.json", cut_off):
        os.utime(stale, (long_ago, long_ago))
    # A part of the live upload arrived within the day: its folder stays, however old it began.
    os.utime(tmp_path / "store" / "uploads" / live, (long_ago, long_ago))
    assert storage.sweep() == 0  # swept at most every SWEEP_EVERY_S: the last one was just now
    now[0] += data_store_folder.SWEEP_EVERY_S
    assert storage.sweep() == 2
    assert sorted(p.name for p in (tmp_path / "store" / "uploads").iterdir()) == [live]
    assert not cut_off.exists()
    storage.part_target("a/live.bin", {"upload_id": live}, 1, 60, "http://x")  # still usable


# --- S3, through a real S3-compatible server ------------------------------------------------------


@pytest.fixture(scope="module")
def s3_platform(tmp_path_factory):
    import boto3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    aws = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "rayline-test",
        "AWS_SECRET_ACCESS_KEY": "rayline-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "moto's server did not start"
            time.sleep(0.2)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="rayline-test",
        aws_secret_access_key="rayline-test-secret",
    )
    s3.create_bucket(Bucket="rayline-bucket")
    instance = LocalPlatform(
        tmp_path_factory.mktemp("rayline-s3-home"),
        extra_env={**aws, "RAYLINE_DATA_STORE_URL": "s3://rayline-bucket/store"},
    )
    instance.start()
    try:
        yield instance, s3
    finally:
        left = instance.stop()
        server.terminate()
        server.wait(10)
        assert left == [], f"processes left after stopping: {left}"


def test_the_s3_backend_hands_out_s3_urls_and_keeps_objects_in_the_bucket(s3_platform, tmp_path):
    instance, s3 = s3_platform
    part = 5 * 1024 * 1024
    craft = CraftAiSdk(sdk_token=instance.token, environment_url=instance.url, control_url=instance.url)
    round_trip(small_parts(craft, part), "craft", tmp_path, 2 * part + 1000)
    with instance.sdk() as sdk:
        round_trip(small_parts(sdk, part), "rayline", tmp_path, 2 * part + 1000)
        url = sdk._request("POST", "/data-store/download", json={"path_to_object": "rayline/deep/large.bin"})
    assert url["signed_url"].startswith(s3.meta.endpoint_url)  # S3's own URL: bytes skip the control plane
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="rayline-bucket")["Contents"])
    assert keys == ["store/craft/deep/large.bin", "store/rayline/deep/large.bin"]  # under the prefix
    assert not (instance.home / "data-store").exists()  # no byte on the control plane's disk
