"""File inputs read from the data store and file outputs written to it (``datastore_path``
mappings), by the process that runs the execution.

It does so as the execution's code would, with the URL and credential its code is given
(``code_environment``, ``rayline.domain.code_credentials``; passed here, never read back from
``os.environ``, which the code may change), over the data store's signed URLs: with an S3 data
store, the bytes go between the execution and S3, never through the control plane.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

import httpx

from rayline.domain.files import DataStoreFile, FileValue
from rayline.errors import InvalidInput


def _client(access: dict[str, str]) -> Any:
    from rayline.sdk.client import RaylineSdk

    if not access.get("RAYLINE_SDK_TOKEN"):
        raise InvalidInput("This execution has no credential to reach the data store with (datastore_path).")
    return RaylineSdk(
        sdk_token=access["RAYLINE_SDK_TOKEN"], environment_url=access["RAYLINE_ENVIRONMENT_URL"], http_timeout_s=300.0
    )


def _download(client: Any, path: str, limit: int) -> bytes:
    """The object's bytes, ``limit`` at most: refused from its announced size before any byte is
    read, or once more than ``limit`` came (a length the server did not announce). Asking for the
    URL is the existence check (a 404 naming the object)."""
    url = client._request("POST", "/data-store/download", json={"path_to_object": path})["signed_url"]
    too_large = f"a file input is at most {limit} bytes (RAYLINE_MAX_FILE_BYTES)"
    data = bytearray()
    with httpx.stream("GET", url, timeout=300.0) as response:
        if response.status_code >= 400:
            raise RuntimeError(f"the data store answered {response.status_code}")
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            raise InvalidInput(f"it is {announced} bytes; {too_large}")
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise InvalidInput(f"it is more than {limit} bytes; {too_large}")
    return bytes(data)


def fetch_inputs(values: dict[str, Any], max_file_bytes: int, access: dict[str, str]) -> dict[str, Any]:
    """``values`` with each data store input replaced by the object's bytes (a FileValue named as
    the object), or InvalidInput naming the input and the path when it cannot be read."""
    wanted = {name: value for name, value in values.items() if isinstance(value, DataStoreFile)}
    if not wanted:
        return values
    fetched = dict(values)
    with _client(access) as client:
        for name, source in wanted.items():
            try:
                data = _download(client, source.path, max_file_bytes)
            except Exception as error:  # the user's to fix (a missing object, one too large): Failed
                reason = error.message if isinstance(error, InvalidInput) else str(error)
                raise InvalidInput(
                    f"Input {name!r} comes from the data store at {source.path!r}, which cannot be read: {reason}"
                ) from None
            fetched[name] = FileValue(posixpath.basename(source.path), data)
    return fetched


def store_outputs(to_data_store: dict[str, FileValue], access: dict[str, str]) -> None:
    """Write each file output mapped to the data store at its path (replacing what was there)."""
    if not to_data_store:
        return
    with _client(access) as client:
        for path, value in to_data_store.items():
            client.upload_data_store_object(io.BytesIO(value.data), path)
