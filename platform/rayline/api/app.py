"""The FastAPI application of the control plane."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from rayline import __version__
from rayline.api.auth import require_sdk_token, sdk_token_gate
from rayline.api.context import AppContext
from rayline.api.errors import UnexpectedErrors, install_error_handlers
from rayline.api.limits import RequestGuard, body_limits
from rayline.api.routes import (auth, deployments, endpoints, environment_variables, executions, health, packages,
                                pipelines, unsupported)

API_PREFIX = "/api/v1"
# The /api/v1 routes open without the SDK token: health, auth/refresh (it takes the SDK token in
# its body), the 501s (craft-ai-sdk calls environment-info without a token), and packages (its own
# token check).
OPEN_ROUTERS = (health.router, auth.router, unsupported.router, packages.router)


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(title="Rayline", version=__version__, docs_url=f"{API_PREFIX}/docs",
                  openapi_url=f"{API_PREFIX}/openapi.json", redoc_url=None)
    app.state.context = context
    install_error_handlers(app)
    for router in OPEN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    protected = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_sdk_token)])
    protected.include_router(pipelines.router)
    protected.include_router(executions.router)
    protected.include_router(deployments.router)
    protected.include_router(environment_variables.router)
    app.include_router(protected)
    app.include_router(endpoints.router)  # endpoint-token routes, outside /api/v1
    # Body limits and the SDK token, before any body is read (see rayline.api.limits); outside
    # them, the answer to unexpected errors. The last one added is the outermost.
    # (HEAD with every GET: a monitor's `HEAD /api/v1/health` needs no token either.)
    open_routes = [(route.methods | ({"HEAD"} if "GET" in route.methods else set()), API_PREFIX + route.path)
                   for router in OPEN_ROUTERS for route in router.routes]
    open_routes += [({"GET", "HEAD"}, app.docs_url), ({"GET", "HEAD"}, app.openapi_url)]
    app.add_middleware(RequestGuard, limit_for=body_limits(context.settings, API_PREFIX),
                       refusal=sdk_token_gate(context, API_PREFIX, open_routes))
    app.add_middleware(UnexpectedErrors)
    return app
