"""The FastAPI application of the control plane."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from rayline import __version__, console
from rayline.api.auth import SDK_TOKEN_SCHEME, require_live_caller, require_sdk_token, sdk_token_gate
from rayline.api.context import AppContext
from rayline.api.errors import UnexpectedErrors, error_responses, install_error_handlers
from rayline.api.limits import RequestGuard, body_limits
from rayline.api.routes import (
    auth,
    data_store,
    deployments,
    endpoints,
    environment_variables,
    executions,
    health,
    metrics,
    packages,
    pipelines,
    resource_metrics,
    unsupported,
)

API_PREFIX = "/api/v1"
DOCS_URL, OPENAPI_URL = f"{API_PREFIX}/docs", f"{API_PREFIX}/openapi.json"
# The /api/v1 routes open without the SDK token: health, auth/refresh (it takes the SDK token in
# its body), the 501s (craft-ai-sdk calls environment-info without a token), and packages (its own
# token check), and the data store's signed URLs (the signature is their credential).
OPEN_ROUTERS = (health.router, auth.router, unsupported.router, packages.router, data_store.signed_router)
# The routes an execution's code may call with its credential, as well as the SDK token's holder.
CODE_ROUTERS = (data_store.router, metrics.record_router)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The document, less FastAPI's own 422 answers: a request that fails validation is a 400
    here (rayline.api.errors), which every route lists."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            routes=app.routes,
            description="Rayline's REST API (the craft-ai-sdk 0.74.7 wire contract). Every "
            "answer >= 400 is an ErrorPublic: {message, name, ...}.",
        )
        for path_item in document["paths"].values():
            for operation in path_item.values():
                operation["responses"].pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
    return app.openapi_schema


def _routes_of(routers: tuple[APIRouter, ...]) -> list[tuple[set[str], str]]:
    """(methods, path template) of each route, HEAD with every GET (a monitor's `HEAD /api/v1/health`)."""
    routes = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                methods = set(route.methods or ())
                routes.append((methods | ({"HEAD"} if "GET" in methods else set()), API_PREFIX + route.path))
    return routes


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(
        title="Rayline",
        version=__version__,
        docs_url=DOCS_URL,
        openapi_url=OPENAPI_URL,
        redoc_url=None,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.context = context
    install_error_handlers(app)
    unexpected = error_responses(500)  # any route may fail unexpectedly
    for router in OPEN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX, responses=unexpected)
    protected = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(require_sdk_token), Depends(SDK_TOKEN_SCHEME)],
        responses={**error_responses(401), **unexpected},
    )
    protected.include_router(pipelines.router)
    protected.include_router(executions.router)
    protected.include_router(deployments.router)
    protected.include_router(environment_variables.router)
    protected.include_router(resource_metrics.router)
    protected.include_router(metrics.router)
    app.include_router(protected)
    # The SDK token, or an execution's credential (the routes check what it may do).
    code = APIRouter(prefix=API_PREFIX, dependencies=[Depends(SDK_TOKEN_SCHEME)], responses=protected.responses)
    code.include_router(data_store.router, dependencies=[Depends(require_live_caller)])
    code.include_router(metrics.record_router)
    app.include_router(code)
    app.include_router(endpoints.router, responses=unexpected)  # endpoint-token routes, outside /api/v1
    console.install(app, context)  # the web console at /, outside /api/v1 (its own session)
    # Body limits and the SDK token, before any body is read (see rayline.api.limits); outside
    # them, the answer to unexpected errors. The last one added is the outermost.
    open_routes = [({"GET", "HEAD"}, DOCS_URL), ({"GET", "HEAD"}, OPENAPI_URL), *_routes_of(OPEN_ROUTERS)]
    app.add_middleware(
        RequestGuard,
        limit_for=body_limits(context.settings, API_PREFIX),
        refusal=sdk_token_gate(context, API_PREFIX, open_routes, _routes_of(CODE_ROUTERS)),
    )
    app.add_middleware(UnexpectedErrors)
    return app
