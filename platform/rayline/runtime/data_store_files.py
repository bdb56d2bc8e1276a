"""File inputs read from the data store and file outputs written to it (``datastore_path``
mappings), by the process that runs the execution.

It does so as the execution's code would, with the credential its code gets (the URL and token
in its environment, ``rayline.domain.code_credentials``) and over the data store's signed URLs:
with an S3 data store, the bytes go between the execution and S3, never through the control plane.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

from rayline.domain.files import DataStoreFile, FileValue
from rayline.errors import InvalidInput


def _client() -> Any:
    from rayline.sdk.client import RaylineSdk

    return RaylineSdk(http_timeout_s=300.0)  # RAYLINE_ENVIRONMENT_URL and RAYLINE_SDK_TOKEN


def fetch_inputs(values: dict[str, Any], max_file_bytes: int) -> dict[str, Any]:
    """``values`` with each data store input replaced by the object's bytes (a FileValue named as
    the object), or InvalidInput naming the input when it is missing or too large."""
    wanted = {name: value for name, value in values.items() if isinstance(value, DataStoreFile)}
    if not wanted:
        return values
    fetched = dict(values)
    with _client() as client:
        for name, source in wanted.items():
            try:
                size = int(client.get_data_store_object_information(source.path)["size"])
            except Exception as error:
                raise InvalidInput(
                    f"Input {name!r} comes from the data store at {source.path!r}, which cannot be read: {error}"
                ) from None
            if size > max_file_bytes:
                raise InvalidInput(
                    f"Input {name!r}: the data store object {source.path!r} is {size} bytes; a file input is "
                    f"at most {max_file_bytes} bytes (RAYLINE_MAX_FILE_BYTES)."
                )
            buffer = io.BytesIO()
            client.download_data_store_object(source.path, buffer)
            fetched[name] = FileValue(posixpath.basename(source.path), buffer.getvalue())
    return fetched


def store_outputs(to_data_store: dict[str, FileValue]) -> None:
    """Write each file output mapped to the data store at its path (replacing what was there)."""
    if not to_data_store:
        return
    with _client() as client:
        for path, value in to_data_store.items():
            client.upload_data_store_object(io.BytesIO(value.data), path)
