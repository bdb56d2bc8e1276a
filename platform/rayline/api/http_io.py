"""An execution over HTTP: its inputs read from a request, its outputs written to a response.

Used by the control plane and by warm replicas, which serve their endpoint themselves: only
Starlette here. Inputs come as a JSON object, or as ``multipart/form-data`` when files are sent
(one part per file input; other fields as text, which ``rayline.domain.mappings`` reads by the
input's type: JSON-encoded as craft-ai-sdk sends them, or plain). A urlencoded form is read the
same way. The whole body is bounded while it is read, so a client cannot make a pod hold more
(in the control plane, ``rayline.api.limits.RequestGuard`` applies the same bound earlier, before
the endpoint token is checked, and answers the 413 itself).
A file output is answered as the file itself.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rayline.domain.files import FileValue, FormText, size_problem
from rayline.errors import InvalidInput, PayloadTooLarge

EXECUTION_ID_HEADER = "X-Rayline-Execution-Id"
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    problem = size_problem("The request body", int(declared), limit) if declared.isdigit() else None
    chunks, size = [], 0
    if problem is None:
        async for chunk in request.stream():  # chunked uploads have no length to check first
            size += len(chunk)
            problem = size_problem("The request body", size, limit)
            if problem:
                break
            chunks.append(chunk)
    if problem:
        raise PayloadTooLarge(problem)
    return b"".join(chunks)


async def read_inputs(request: Request, max_body_bytes: int) -> dict[str, Any]:
    """Raises InvalidInput (400) or PayloadTooLarge (413) before anything is recorded."""
    body = await _bounded_body(request, max_body_bytes)
    if request.headers.get("content-type", "").startswith(_FORMS):

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        given: dict[str, Any] = {}
        try:
            async with Request(request.scope, replay).form(max_files=100, max_fields=1000) as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        given[name] = FileValue(value.filename or name, await value.read())
                    else:
                        given[name] = FormText(value)
        except MultiPartException as error:
            raise InvalidInput(f"The multipart/form-data body could not be read: {error}.") from None
        return given
    if not body.strip():
        return {}
    try:
        inputs = json.loads(body)
    except RecursionError:
        raise InvalidInput(
            "The body is nested too deeply to be read: send a JSON object of inputs nested at "
            "most a few hundred levels deep."
        ) from None
    except ValueError as error:
        raise InvalidInput(
            f"The body must be a JSON object of inputs ({error}), or multipart/form-data when sending files."
        ) from None
    if not isinstance(inputs, dict):
        raise InvalidInput("The body must be a JSON object of input name to value.")
    return inputs


def output_response(execution_id: str, output: dict[str, Any]) -> Response:
    """``{"execution_id", "output"}``, or the file itself when the endpoint's output is a file."""
    for value in output.values():
        if isinstance(value, FileValue):
            return file_response(execution_id, value)
    return JSONResponse({"execution_id": execution_id, "output": output})


def file_response(execution_id: str, value: FileValue) -> Response:
    # A header is Latin-1: an ASCII name for every client, the real one (RFC 6266) for the others.
    ascii_name = re.sub(r"[^\w.\- ]", "_", value.filename, flags=re.ASCII) or "output"
    return Response(
        value.data,
        media_type="application/octet-stream",
        headers={
            EXECUTION_ID_HEADER: execution_id,
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(value.filename)}",
        },
    )
