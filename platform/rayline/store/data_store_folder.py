"""The data store in a folder of the control plane's node (``RAYLINE_HOME/data-store``), the
default backend (``rayline.services.data_store``).

Objects are files under ``objects/``, at their path. Uploads are written to ``tmp/`` and moved
into place once complete (a reader never sees half an object; a failed upload leaves nothing);
the parts of a multipart upload wait under ``uploads/<id>/`` until its end joins them. Signed
URLs point to the control plane's ``/api/v1/data-store/signed/...`` routes, which call
``receive_upload``, ``part_writer`` and ``object_file`` here.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from rayline.domain.data_store import ObjectInformation
from rayline.domain.signed_urls import UrlSigner
from rayline.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge

SIGNED_PREFIX = "/api/v1/data-store/signed"
_COPY_CHUNK = 1024 * 1024


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(_COPY_CHUNK):
        yield chunk


class BoundedFile:
    """A file being received into ``tmp/``: at most ``max_bytes``, its MD5 kept (the part's ETag),
    moved to its place by ``commit``, removed by ``abort``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        fd, name = tempfile.mkstemp(dir=folder, prefix="incoming-")
        self.path, self._file, self._max = Path(name), os.fdopen(fd, "wb"), max_bytes
        self.size, self._md5 = 0, hashlib.md5(usedforsecurity=False)

    def fill(self, chunks) -> None:
        """Write every chunk (an iterable of bytes); nothing is left behind if it fails."""
        try:
            for chunk in chunks:
                self.write(chunk)
        except BaseException:
            self.abort()
            raise

    def write(self, chunk: bytes) -> None:
        """One chunk more; past ``max_bytes``, PayloadTooLarge (the caller aborts, as on any failure)."""
        self.size += len(chunk)
        if self.size > self._max:
            raise PayloadTooLarge(
                f"The object is over {self._max} bytes, the most the data store takes "
                "(RAYLINE_MAX_DATA_STORE_OBJECT_BYTES); nothing was stored."
            )
        self._file.write(chunk)
        self._md5.update(chunk)

    @property
    def etag(self) -> str:
        return f'"{self._md5.hexdigest()}"'

    def commit(self, target: Path, create_folders: bool = True) -> None:
        """Move the file to ``target`` (its folders made when ``create_folders``), or remove it."""
        self._file.close()
        try:
            for attempt in (1, 2):
                try:
                    if create_folders:
                        target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_dir():
                        raise IsADirectoryError(target)
                    os.replace(self.path, target)
                    return
                except FileNotFoundError:  # a delete removed a folder left empty meanwhile: once more
                    if attempt == 2 or not create_folders:
                        raise
        except (NotADirectoryError, IsADirectoryError, FileExistsError):
            self.abort()
            raise Conflict(
                "This path and another object's clash: one of them would be a folder of the other "
                "(e.g. 'a' and 'a/b'). Choose another path, or delete the other object first."
            ) from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


# What a client left behind (a multipart upload it never ended, an upload cut off mid-body) is
# removed once nothing touched it for this long; looked for at most every SWEEP_EVERY_S.
ABANDONED_AFTER_S = 24 * 3600.0
SWEEP_EVERY_S = 600.0


class FolderStorage:
    def __init__(self, root: Path, signer: UrlSigner, clock: Callable[[], float] = time.time) -> None:
        self._objects, self._uploads, self._tmp = root / "objects", root / "uploads", root / "tmp"
        for folder in (self._objects, self._uploads, self._tmp):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._signer = signer
        self._clock = clock
        self._swept_at = 0.0

    def sweep(self, force: bool = False) -> int:
        """Remove the uploads nothing touched for ABANDONED_AFTER_S (multipart uploads never
        ended, files of bodies that never finished arriving); how many. Called as uploads start,
        so a store that is used is kept clean, at most every SWEEP_EVERY_S."""
        now = self._clock()
        if not force and now - self._swept_at < SWEEP_EVERY_S:
            return 0
        self._swept_at = now
        cutoff, removed = now - ABANDONED_AFTER_S, 0
        for entry in [*self._uploads.iterdir(), *self._tmp.iterdir()]:
            try:
                touched = (
                    max([entry.stat().st_mtime] + [f.stat().st_mtime for f in entry.iterdir()])
                    if entry.is_dir()
                    else entry.stat().st_mtime
                )
            except FileNotFoundError:  # ended or removed meanwhile
                continue
            if touched < cutoff:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def _file(self, path: str) -> Path:
        return self._objects.joinpath(*path.split("/"))

    def _url(self, base_url: str, route: str, signature: str) -> str:
        return f"{base_url.rstrip('/')}{SIGNED_PREFIX}/{route}?{urlencode({'signature': signature})}"

    # --- signed URLs ---------------------------------------------------------------------------

    def upload_target(self, path: str, max_bytes: int, ttl_s: float, base_url: str) -> dict[str, Any]:
        self.sweep()
        # The grant is in the URL, not in the form, so that it is checked before the body is read.
        signature = self._signer.sign("upload", path, ttl_s, max=max_bytes)
        return {"signed_url": self._url(base_url, "upload", signature), "fields": {"key": path}}

    def start_multipart(self, path: str, max_bytes: int) -> dict[str, Any]:
        self.sweep()
        upload_id = secrets.token_hex(16)
        folder = self._uploads / upload_id
        folder.mkdir(mode=0o700)
        (folder / "upload.json").write_text(json.dumps({"path": path, "max": max_bytes}))
        return {"upload_id": upload_id}

    def _upload_folder(self, path: str, upload: dict[str, Any]) -> tuple[Path, int]:
        upload_id = upload.get("upload_id")
        folder = self._uploads / upload_id if isinstance(upload_id, str) and upload_id.isalnum() else None
        if folder is None or not (folder / "upload.json").exists():
            raise NotFound("No such multipart upload: start one with POST /data-store/upload/multipart.")
        meta = json.loads((folder / "upload.json").read_text())
        if meta["path"] != path:
            raise InvalidInput(f"This multipart upload is for {meta['path']!r}, not {path!r}.")
        return folder, meta["max"]

    def part_target(
        self, path: str, upload: dict[str, Any], part_number: int, ttl_s: float, base_url: str
    ) -> dict[str, Any]:
        self._upload_folder(path, upload)
        signature = self._signer.sign("part", path, ttl_s, upload=upload["upload_id"], part=part_number)
        return {"signed_url": self._url(base_url, "part", signature), "headers": {}}

    def end_multipart(
        self, path: str, upload: dict[str, Any], parts: list[tuple[int, str | None]], max_bytes: int
    ) -> None:
        folder, started_with = self._upload_folder(path, upload)
        # Claimed first: a part that arrives from now on finds no upload, and a second end neither.
        claimed = folder.with_name(f"{folder.name}.ending")
        try:
            folder.rename(claimed)
        except FileNotFoundError:
            raise NotFound("This multipart upload has just ended (or is ending).") from None
        incoming = BoundedFile(self._tmp, min(max_bytes, started_with))
        try:
            for number, etag in parts:
                part = claimed / f"{number}.part"
                if not part.exists():
                    raise InvalidInput(
                        f"Part {number} of this upload was never uploaded: PUT it to its signed URL first."
                    )
                if etag is not None and etag != (claimed / f"{number}.etag").read_text():
                    raise InvalidInput(f"Part {number}'s ETag is not the one its upload answered; upload it again.")
                with part.open("rb") as source:
                    incoming.fill(_chunks(source))
            incoming.commit(self._file(path))
        except InvalidInput:
            incoming.abort()
            claimed.rename(folder)  # its parts may be uploaded again, and the end asked again
            raise
        except BaseException:
            incoming.abort()
            shutil.rmtree(claimed, ignore_errors=True)
            raise
        shutil.rmtree(claimed, ignore_errors=True)

    def download_url(self, path: str, ttl_s: float, base_url: str) -> str:
        return self._url(base_url, "object", self._signer.sign("download", path, ttl_s))

    # --- what the signed routes do -------------------------------------------------------------

    def upload_grant(self, signature: str) -> dict[str, Any]:
        """The claims of an upload URL, checked before its body is read."""
        return self._signer.check(signature, "upload")

    def receive_upload(self, claims: dict[str, Any], key: str, source: BinaryIO) -> None:
        if key != claims["path"]:
            raise Forbidden(f"This upload URL is for {claims['path']!r}, not for the key {key!r}.")
        incoming = BoundedFile(self._tmp, int(claims.get("max", 0)))
        incoming.fill(_chunks(source))
        incoming.commit(self._file(claims["path"]))

    def part_writer(self, signature: str) -> tuple[BoundedFile, Path]:
        """Where a part's bytes go, and the file it becomes once complete (``commit``)."""
        claims = self._signer.check(signature, "part")
        folder, max_bytes = self._upload_folder(claims["path"], {"upload_id": claims.get("upload")})
        return BoundedFile(self._tmp, max_bytes), folder / f"{int(claims['part'])}.part"

    @staticmethod
    def commit_part(incoming: BoundedFile, target: Path) -> str:
        """The part in its upload's folder, its ETag written first (an end that sees the part sees
        its ETag); an upload that ended meanwhile is not made again."""
        try:
            target.with_suffix(".etag").write_text(incoming.etag)
            incoming.commit(target, create_folders=False)
        except FileNotFoundError:
            incoming.abort()
            raise NotFound("This multipart upload has ended (or was never started); start a new one.") from None
        return incoming.etag

    def object_file(self, signature: str) -> tuple[str, Path]:
        claims = self._signer.check(signature, "download")
        file = self._file(claims["path"])
        if not file.is_file():
            raise NotFound(f"No object {claims['path']!r} in the data store.")
        return claims["path"], file

    # --- objects -------------------------------------------------------------------------------

    def information(self, path: str) -> ObjectInformation | None:
        file = self._file(path)
        try:
            found = file.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _information(path, found) if stat.S_ISREG(found.st_mode) else None

    def list(
        self, prefix: str, continuation_token: str | None, limit: int
    ) -> tuple[list[ObjectInformation], str | None]:
        start = self._objects.joinpath(*prefix.rstrip("/").split("/")) if prefix else self._objects
        paths = []
        for folder, _, files in os.walk(start):
            relative = Path(folder).relative_to(self._objects).as_posix()
            for name in files:
                path = name if relative == "." else f"{relative}/{name}"
                if continuation_token is None or path > continuation_token:
                    paths.append(path)
        paths.sort()
        page = paths[:limit]
        items = [info for path in page if (info := self.information(path)) is not None]
        return items, (page[-1] if len(paths) > limit else None)

    def delete(self, path: str) -> None:
        file = self._file(path)
        file.unlink(missing_ok=True)
        for parent in file.parents:  # folders left empty go too, as S3 has no folders
            if parent == self._objects:
                break
            try:
                parent.rmdir()
            except OSError:
                break


def _information(path: str, found: os.stat_result) -> ObjectInformation:
    modified = datetime.fromtimestamp(found.st_mtime, UTC).isoformat()
    return {"path": path, "last_modified": modified, "size": found.st_size}
