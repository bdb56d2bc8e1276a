"""Data store throughput: a 200 MiB object uploaded and downloaded with RaylineSdk (multipart, as
from 100 MB on), on the folder backend and on S3 (moto's server, on 127.0.0.1), against a plain
`cp` of the same file in the same run (JSON out).

Usage: python benchmarks/data_store_throughput.py [--mib 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rayline.local_platform import LocalPlatform
from rayline.ports import free_port


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def measure(platform: LocalPlatform, source: Path, folder: Path, mib: int) -> dict:
    target = folder / "back.bin"
    with platform.sdk() as sdk:
        up = timed(lambda: sdk.upload_data_store_object(str(source), "bench/object.bin"))
        down = timed(lambda: sdk.download_data_store_object("bench/object.bin", str(target)))
        sdk.delete_data_store_object("bench/object.bin")
    assert target.stat().st_size == source.stat().st_size
    target.unlink()
    return {"upload_mib_per_s": round(mib / up, 1), "download_mib_per_s": round(mib / down, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args()
    result: dict = {"benchmark": "data_store_throughput", "object_mib": args.mib}
    with tempfile.TemporaryDirectory(prefix="rayline-bench-") as tmp:
        folder = Path(tmp)
        source = folder / "object.bin"
        with source.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1024 * 1024))
        copy = timed(lambda: shutil.copyfile(source, folder / "copy.bin"))
        (folder / "copy.bin").unlink()
        result["cp_mib_per_s"] = round(args.mib / copy, 1)

        platform = LocalPlatform(folder / "home")
        platform.start()
        try:
            result["folder_backend"] = measure(platform, source, folder, args.mib)
        finally:
            platform.stop()

        import boto3

        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        keys = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        try:
            for _ in range(150):
                try:
                    httpx.get(endpoint)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench-secret",
            )
            s3.create_bucket(Bucket="rayline-bench")
            platform = LocalPlatform(
                folder / "home-s3",
                extra_env={**keys, "AWS_ENDPOINT_URL": endpoint, "RAYLINE_DATA_STORE_URL": "s3://rayline-bench/store"},
            )
            platform.start()
            try:
                result["s3_backend_moto"] = measure(platform, source, folder, args.mib)
            finally:
                platform.stop()
        finally:
            server.terminate()
            server.wait(10)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
