"""``/environment-variables``: platform-wide variables set in every execution's ``os.environ``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from rayline.api.context import AppContext, get_context

router = APIRouter(tags=["environment variables"])


@router.put("/environment-variables")
def put_environment_variables(body: dict[str, Any] = Body(...), context: AppContext = Depends(get_context)):
    """Create or replace variables: ``{"environment_variables": {"NAME": "value"}}``."""
    return {"environment_variables": context.environment.put(body.get("environment_variables"))}


@router.get("/environment-variables")
def list_environment_variables(context: AppContext = Depends(get_context)) -> list[dict[str, str]]:
    return context.environment.list()


@router.delete("/environment-variables/{name}")
def delete_environment_variable(name: str, context: AppContext = Depends(get_context)) -> dict[str, str]:
    context.environment.delete(name)
    return {"name": name}
