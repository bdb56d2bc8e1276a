"""The FastAPI application of the control plane."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from rayline import __version__
from rayline.api.auth import require_sdk_token
from rayline.api.context import AppContext
from rayline.api.errors import install_error_handlers
from rayline.api.routes import (auth, deployments, endpoints, environment_variables, executions, health, packages,
                                pipelines, unsupported)

API_PREFIX = "/api/v1"


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(title="Rayline", version=__version__, docs_url=f"{API_PREFIX}/docs",
                  openapi_url=f"{API_PREFIX}/openapi.json", redoc_url=None)
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(unsupported.router, prefix=API_PREFIX)
    app.include_router(packages.router, prefix=API_PREFIX)  # its own token check
    protected = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_sdk_token)])
    protected.include_router(pipelines.router)
    protected.include_router(executions.router)
    protected.include_router(deployments.router)
    protected.include_router(environment_variables.router)
    app.include_router(protected)
    app.include_router(endpoints.router)  # endpoint-token routes, outside /api/v1
    return app
