"""``/packages/<sha256>.zip``: pipeline packages for the Ray nodes that run them.

On a multi-node cluster (``RAYLINE_PACKAGE_URL_BASE``), Ray downloads each pipeline's package
over HTTP, sending ``RAY_RUNTIME_ENV_BEARER_TOKEN`` (blanked in the processes that run user
code). It should be ``RAYLINE_PACKAGE_TOKEN``, which opens this route only; the SDK token (or an
access token) is accepted too.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from rayline.api.auth import SDK_TOKEN_SCHEME, require_sdk_token
from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.domain.tokens import bearer_of, hash_token, token_matches

router = APIRouter(tags=["packages"])


def _package_reader(request: Request, context: AppContext = Depends(get_context)) -> None:
    package_token = context.settings.package_token
    if package_token is not None and token_matches(
        bearer_of(request.headers.get("authorization"), "Bearer"), hash_token(package_token.get_secret_value())
    ):
        return
    require_sdk_token(request, context)


@router.get(
    "/packages/{filename}",
    dependencies=[Depends(_package_reader), Depends(SDK_TOKEN_SCHEME)],
    response_model=None,
    responses={
        200: {
            "description": "The package (a zip).",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(401, 404, s401="Neither RAYLINE_PACKAGE_TOKEN nor the SDK token."),
    },
)
def get_package(filename: str, context: AppContext = Depends(get_context)) -> Response:
    return Response(context.pipelines.package(filename), media_type="application/zip")
