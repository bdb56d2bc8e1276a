"""``/data-store/...``: Craft AI's data store, as craft-ai-sdk 0.74.7 speaks it.

``router`` (SDK token) hands out signed URLs and manages objects; the bytes go to those URLs.
``signed_router`` (no token: the signature is the credential) serves the folder backend's signed
URLs, and answers errors as S3 does (XML ``<Error><Code/><Message/></Error>``), which is what
craft-ai-sdk parses from the URLs it was given.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.http_errors import status_of
from rayline.errors import InvalidInput, NotFound, RaylineError
from rayline.store.data_store_folder import SIGNED_PREFIX, FolderStorage

router = APIRouter(tags=["data store"])
signed_router = APIRouter(tags=["data store"], include_in_schema=False)


def _base_url(request: Request) -> str:
    # The platform's URL as this caller reached it: where the folder backend's signed URLs point.
    return str(request.base_url).rstrip("/")


async def _fields(request: Request) -> dict[str, Any]:
    """A JSON object, or a form (craft-ai-sdk sends the download and delete requests as forms)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise InvalidInput("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidInput('The request body must be a JSON object, e.g. {"path_to_object": "folder/file.csv"}.')
        return body
    form = await request.form(max_files=0, max_fields=32)
    return {key: value for key, value in form.items() if isinstance(value, str)}


@router.get("/data-store/upload", responses=error_responses(400))
def upload_url(request: Request, path_to_object: str = "", context: AppContext = Depends(get_context)):
    """``{signed_url, fields}``: POST the fields and ``file`` (multipart) to ``signed_url``."""
    return context.data_store.upload_target(path_to_object, _base_url(request))


@router.post("/data-store/upload/multipart", responses=error_responses(400))
async def start_multipart_upload(request: Request, context: AppContext = Depends(get_context)):
    body = await _fields(request)
    return await run_in_threadpool(context.data_store.start_multipart, body.get("path_to_object"))


@router.post("/data-store/upload/multipart/part", responses=error_responses(400, 404, 413))
async def multipart_part_url(request: Request, context: AppContext = Depends(get_context)):
    """``{signed_url, headers}`` for one part: PUT its bytes there (the answer's ETag is its ``metadata``)."""
    body = await _fields(request)
    return await run_in_threadpool(context.data_store.part_target, body, _base_url(request))


@router.post("/data-store/upload/multipart/end", responses=error_responses(400, 404, 409, 413))
async def end_multipart_upload(request: Request, context: AppContext = Depends(get_context)):
    body = await _fields(request)
    await run_in_threadpool(context.data_store.end_multipart, body)
    return {"path": body["path_to_object"]}


@router.post("/data-store/download", responses=error_responses(400, 404))
async def download_url(request: Request, context: AppContext = Depends(get_context)):
    """``{signed_url}``: GET it for the object's bytes."""
    body = await _fields(request)
    url = await run_in_threadpool(context.data_store.download_url, body.get("path_to_object"), _base_url(request))
    return {"signed_url": url}


@router.post("/data-store/information", responses=error_responses(400, 404))
async def object_information(request: Request, context: AppContext = Depends(get_context)):
    body = await _fields(request)
    return await run_in_threadpool(context.data_store.information, body.get("path_to_object"))


@router.get("/data-store/list", responses=error_responses(400))
def list_objects(
    folder_path: str | None = None, continuation_token: str | None = None, context: AppContext = Depends(get_context)
):
    """One page of objects (``items``), and ``continuation_token`` while there are more."""
    return context.data_store.list(folder_path, continuation_token)


@router.delete("/data-store/delete", responses=error_responses(400, 404))
async def delete_object(request: Request, context: AppContext = Depends(get_context)):
    body = await _fields(request)
    return await run_in_threadpool(context.data_store.delete, body.get("path_to_object"))


# --- the folder backend's signed URLs ---------------------------------------------------------


def _s3_error(error: RaylineError) -> Response:
    code = {"InvalidInput": "InvalidArgument", "PayloadTooLarge": "EntityTooLarge", "NotFound": "NoSuchKey"}
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
        f"{escape(code.get(error.name, error.name))}</Code><Message>{escape(error.message)}</Message></Error>"
    )
    return Response(body, status_code=status_of(error), media_type="application/xml")


def _folder(context: AppContext) -> FolderStorage:
    storage = context.data_store.storage
    if not isinstance(storage, FolderStorage):
        raise NotFound("This platform keeps its data store in S3: use the URLs it answers, which point there.")
    return storage


_SIGNED = SIGNED_PREFIX.removeprefix("/api/v1")  # the routers are mounted under /api/v1


@signed_router.post(f"{_SIGNED}/upload")
async def signed_upload(request: Request, signature: str = "", context: AppContext = Depends(get_context)) -> Response:
    try:
        storage = _folder(context)
        claims = storage.upload_grant(signature)  # before the body is read: no grant, nothing read
        async with request.form(max_files=1, max_fields=16) as form:
            key, file = form.get("key"), form.get("file")
            if not isinstance(key, str) or isinstance(file, str) or file is None:
                raise InvalidInput("POST the fields the platform answered (key) and the object as 'file'.")
            await run_in_threadpool(storage.receive_upload, claims, key, file.file)
    except RaylineError as error:
        return _s3_error(error)
    return Response(status_code=204)


@signed_router.put(f"{_SIGNED}/part")
async def signed_part(request: Request, signature: str = "", context: AppContext = Depends(get_context)) -> Response:
    try:
        incoming, target = _folder(context).part_writer(signature)
        try:
            async for chunk in request.stream():
                incoming.write(chunk)
        except BaseException:
            incoming.abort()
            raise
        etag = await run_in_threadpool(FolderStorage.commit_part, incoming, target)
    except RaylineError as error:
        return _s3_error(error)
    return Response(status_code=200, headers={"ETag": etag})


@signed_router.get(f"{_SIGNED}/object")
def signed_object(signature: str = "", context: AppContext = Depends(get_context)) -> Response:
    try:
        path, file = _folder(context).object_file(signature)
    except RaylineError as error:
        return _s3_error(error)
    return FileResponse(file, filename=path.rsplit("/", 1)[-1], media_type="application/octet-stream")
