"""The data store in S3 (``RAYLINE_DATA_STORE_URL=s3://bucket/prefix``), for
``rayline.services.data_store``: signed URLs are S3's own presigned URLs, so the bytes go between
the caller and S3, never through the control plane.

The endpoint, keys and region come from the usual AWS variables of the control plane's process
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
or any other source boto3 reads); processes that run user code never get them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rayline.domain.data_store import ObjectInformation, too_large
from rayline.errors import InvalidInput

S3_URL_SHAPE = "RAYLINE_DATA_STORE_URL must be s3://<bucket> or s3://<bucket>/<prefix> (e.g. s3://my-bucket/rayline)."


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of ``s3://bucket/prefix``; the prefix ends with '/' when given."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(S3_URL_SHAPE)
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Storage:
    def __init__(self, url: str, client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self._bucket, self._prefix = parse_s3_url(url)
        # Signature v4 everywhere: presigned URLs of other versions are refused by many regions.
        self._s3 = client or boto3.client("s3", config=Config(signature_version="s3v4"))

    def _key(self, path: str) -> str:
        return self._prefix + path

    @staticmethod
    def _error(error: Exception, field: str) -> str | None:
        """``Code`` or ``Message`` of what S3 answered (a botocore ClientError)."""
        return getattr(error, "response", {}).get("Error", {}).get(field)

    def _missing(self, error: Exception) -> bool:
        return self._error(error, "Code") in ("404", "NoSuchKey", "NotFound")

    def upload_target(self, path: str, max_bytes: int, ttl_s: float, base_url: str) -> dict[str, Any]:
        post = self._s3.generate_presigned_post(
            self._bucket,
            self._key(path),
            Conditions=[["content-length-range", 0, max_bytes]],
            ExpiresIn=int(ttl_s),
        )
        return {"signed_url": post["url"], "fields": post["fields"]}

    def start_multipart(self, path: str, max_bytes: int) -> dict[str, Any]:
        created = self._s3.create_multipart_upload(Bucket=self._bucket, Key=self._key(path))
        return {"upload_id": created["UploadId"]}

    def part_target(
        self, path: str, upload: dict[str, Any], part_number: int, ttl_s: float, base_url: str
    ) -> dict[str, Any]:
        upload_id = upload.get("upload_id")
        if not isinstance(upload_id, str):
            raise InvalidInput(
                "multipart_upload_configuration must be what POST /data-store/upload/multipart answered."
            )
        url = self._s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": self._bucket, "Key": self._key(path), "UploadId": upload_id, "PartNumber": part_number},
            ExpiresIn=int(ttl_s),
        )
        return {"signed_url": url, "headers": {}}

    def end_multipart(
        self, path: str, upload: dict[str, Any], parts: list[tuple[int, str | None]], max_bytes: int
    ) -> None:
        from botocore.exceptions import ClientError

        if any(etag is None for _, etag in parts):
            raise InvalidInput("Each of parts needs 'metadata': the ETag S3 answered to its PUT.")
        upload_id = upload["upload_id"]
        try:
            listed = self._s3.list_parts(Bucket=self._bucket, Key=self._key(path), UploadId=upload_id, MaxParts=10_000)
        except ClientError as error:
            raise InvalidInput(f"No such multipart upload: {self._error(error, 'Message')}") from None
        size = sum(part["Size"] for part in listed.get("Parts", []))
        if size > max_bytes:  # S3's part URLs cannot bound a part: refused before it replaces anything
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key(path), UploadId=upload_id)
            raise too_large(size, max_bytes)
        try:
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key(path),
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
            )
        except ClientError as error:
            raise InvalidInput(f"S3 refused to join the parts: {self._error(error, 'Message')}") from None

    def download_url(self, path: str, ttl_s: float, base_url: str) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": self._key(path)}, ExpiresIn=int(ttl_s)
        )

    def information(self, path: str) -> ObjectInformation | None:
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=self._key(path))
        except ClientError as error:
            if self._missing(error):
                return None
            raise
        return {"path": path, "last_modified": head["LastModified"].isoformat(), "size": head["ContentLength"]}

    def list(
        self, prefix: str, continuation_token: str | None, limit: int
    ) -> tuple[list[ObjectInformation], str | None]:
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix + prefix, "MaxKeys": limit}
        if continuation_token:
            arguments["ContinuationToken"] = continuation_token
        from botocore.exceptions import ClientError

        try:
            page = self._s3.list_objects_v2(**arguments)
        except ClientError as error:
            if continuation_token and self._error(error, "Code") == "InvalidArgument":
                raise InvalidInput(
                    "continuation_token is not one a listing of this folder gave; list from the start "
                    "(without continuation_token) and pass the one each page answers."
                ) from None
            raise
        items: list[ObjectInformation] = [
            {
                "path": item["Key"][len(self._prefix) :],
                "last_modified": item["LastModified"].isoformat(),
                "size": item["Size"],
            }
            for item in page.get("Contents", [])
        ]
        return items, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    def delete(self, path: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=self._key(path))
