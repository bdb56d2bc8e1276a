"""An execution over HTTP: its inputs read from a request, its outputs written to a response.

Used by the control plane and by warm replicas, which serve their endpoint themselves: only
Starlette here. Inputs come as a JSON object, or as ``multipart/form-data`` when files are sent
(one part per file input; other fields JSON-encoded, as craft-ai-sdk sends them, or plain text;
a urlencoded form is read the same way).
A file output is answered as the file itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rayline.domain.files import FileValue, check_size
from rayline.errors import InvalidInput

EXECUTION_ID_HEADER = "X-Rayline-Execution-Id"


async def read_inputs(request: Request, max_file_bytes: int) -> dict[str, Any]:
    """Raises InvalidInput (400) or PayloadTooLarge (413) before anything is recorded."""
    if request.headers.get("content-type", "").startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit():
            check_size("the multipart body", int(declared), max_file_bytes)
        given: dict[str, Any] = {}
        async with request.form(max_files=100, max_fields=1000) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    check_size(name, len(data), max_file_bytes)
                    given[name] = FileValue(value.filename or name, data)
                else:
                    try:
                        given[name] = json.loads(value)
                    except ValueError:
                        given[name] = value
        return given
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise InvalidInput(f"The body must be a JSON object of inputs ({error}), or multipart/form-data "
                           "when sending files.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object of input name to value.")
    return body


def output_response(execution_id: str, output: dict[str, Any]) -> Response:
    """``{"execution_id", "output"}``, or the file itself when the endpoint's output is a file."""
    for value in output.values():
        if isinstance(value, FileValue):
            return file_response(execution_id, value)
    return JSONResponse({"execution_id": execution_id, "output": output})


def file_response(execution_id: str, value: FileValue) -> Response:
    safe_name = re.sub(r"[^\w.\- ]", "_", value.filename) or "output"  # a header value: no quotes, no newlines
    return Response(value.data, media_type="application/octet-stream",
                    headers={EXECUTION_ID_HEADER: execution_id,
                             "Content-Disposition": f'attachment; filename="{safe_name}"'})
