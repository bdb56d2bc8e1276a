"""The data store: files that pipelines and notebooks share, by path (Craft AI's data store).

Bytes never pass through the SDK's token-authenticated calls: the platform answers with signed,
expiring URLs for one object (a presigned POST to upload, presigned PUTs for the parts of a
multipart upload, a presigned GET to download), as craft-ai-sdk expects. Where the bytes go is a
backend chosen by ``RAYLINE_DATA_STORE_URL``: by default a folder under ``RAYLINE_HOME``, whose
signed URLs point to the control plane's own routes (``rayline.store.data_store_folder``); with
``s3://bucket/prefix``, S3 itself (``rayline.store.data_store_s3``). Paths and sizes are checked
here, once, for both.
"""

from __future__ import annotations

from typing import Any, Protocol

from rayline.domain.data_store import ObjectInformation, folder_prefix, object_path, too_large
from rayline.errors import InvalidInput, NotFound

# Objects per page of list_data_store_objects (the client follows continuation_token).
LIST_PAGE = 1000


class ObjectStorage(Protocol):
    """Where the bytes are. ``base_url`` is the platform's URL as the caller reached it (the
    folder backend's signed URLs point there); ``max_bytes`` bounds what an upload may write."""

    def upload_target(self, path: str, max_bytes: int, ttl_s: float, base_url: str) -> dict[str, Any]: ...
    def start_multipart(self, path: str, max_bytes: int) -> dict[str, Any]: ...
    def part_target(
        self, path: str, upload: dict[str, Any], part_number: int, ttl_s: float, base_url: str
    ) -> dict[str, Any]: ...
    def end_multipart(
        self, path: str, upload: dict[str, Any], parts: list[tuple[int, str | None]], max_bytes: int
    ) -> None: ...
    def download_url(self, path: str, ttl_s: float, base_url: str) -> str: ...
    def information(self, path: str) -> ObjectInformation | None: ...
    def list(
        self, prefix: str, continuation_token: str | None, limit: int
    ) -> tuple[list[ObjectInformation], str | None]: ...
    def delete(self, path: str) -> None: ...


class DataStoreService:
    def __init__(self, storage: ObjectStorage, max_object_bytes: int, url_ttl_s: float) -> None:
        self.storage = storage
        self.max_object_bytes = max_object_bytes
        self._ttl_s = url_ttl_s

    def upload_target(self, path: Any, base_url: str) -> dict[str, Any]:
        """``{signed_url, fields}``: a multipart POST of the fields and ``file`` stores the object."""
        return self.storage.upload_target(object_path(path), self.max_object_bytes, self._ttl_s, base_url)

    def start_multipart(self, path: Any) -> dict[str, Any]:
        return self.storage.start_multipart(object_path(path), self.max_object_bytes)

    def part_target(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        """``{signed_url, headers}`` for one part: a PUT of its bytes stores it."""
        path = object_path(body.get("path_to_object"))
        upload = _upload_of(body)
        number = body.get("part_number")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10_000:
            raise InvalidInput("part_number must be an integer from 1 to 10000.")
        chunk_size = body.get("chunk_size")
        if isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0:
            # Parts before this one are chunk_size each: refuse the part that would go past the limit.
            given = body.get("size")
            size = (
                given if isinstance(given, int) and not isinstance(given, bool) and given >= 0 else number * chunk_size
            )
            if size > self.max_object_bytes:
                raise too_large(size, self.max_object_bytes)
        return self.storage.part_target(path, upload, number, self._ttl_s, base_url)

    def end_multipart(self, body: dict[str, Any]) -> None:
        path = object_path(body.get("path_to_object"))
        upload = _upload_of(body)
        parts = body.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidInput("parts must be the list of uploaded parts: [{'number': 1, 'metadata': '<ETag>'}, ...].")
        numbered: list[tuple[int, str | None]] = []
        for part in parts:
            number = part.get("number") if isinstance(part, dict) else None
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise InvalidInput("Each of parts needs 'number', an integer from 1 (and 'metadata', its ETag).")
            etag = part.get("metadata")
            numbered.append((number, etag if isinstance(etag, str) else None))
        numbers = [number for number, _ in numbered]
        if numbers != list(range(1, len(numbers) + 1)):
            raise InvalidInput(f"parts must be numbered 1, 2, 3... in order, each once; got {numbers}.")
        self.storage.end_multipart(path, upload, numbered, self.max_object_bytes)

    def download_url(self, path: Any, base_url: str) -> str:
        checked = object_path(path)
        self.information(checked)  # 404 for an object that is not there, not a URL that fails later
        return self.storage.download_url(checked, self._ttl_s, base_url)

    def information(self, path: Any) -> ObjectInformation:
        checked = object_path(path)
        found = self.storage.information(checked)
        if found is None:
            raise NotFound(f"No object {checked!r} in the data store; list_data_store_objects() shows what is there.")
        return found

    def list(self, folder_path: Any, continuation_token: str | None) -> dict[str, Any]:
        items, token = self.storage.list(folder_prefix(folder_path), continuation_token or None, LIST_PAGE)
        page: dict[str, Any] = {"items": items}
        if token is not None:
            page["continuation_token"] = token
        return page

    def delete(self, path: Any) -> dict[str, str]:
        checked = object_path(path)
        self.information(checked)
        self.storage.delete(checked)
        return {"path": checked}


def _upload_of(body: dict[str, Any]) -> dict[str, Any]:
    upload = body.get("multipart_upload_configuration")
    if not isinstance(upload, dict) or not isinstance(upload.get("upload_id"), str) or not upload["upload_id"]:
        raise InvalidInput(
            "multipart_upload_configuration must be what POST /data-store/upload/multipart answered "
            "(with its upload_id)."
        )
    return upload
