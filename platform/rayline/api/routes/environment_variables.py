"""``/environment-variables``: platform-wide variables set in every execution's ``os.environ``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from rayline.api.context import AppContext, get_context
from rayline.api.errors import error_responses
from rayline.api.schemas import (
    VARIABLE_NAME_SCHEMA,
    EnvironmentVariableDeleted,
    EnvironmentVariablePublic,
    EnvironmentVariablesPut,
    EnvironmentVariablesSet,
)

router = APIRouter(tags=["environment variables"])


# The service checks the names and values (and answers the set names): described, not re-checked.
@router.put(
    "/environment-variables",
    response_model=None,
    responses={200: {"model": EnvironmentVariablesSet}, **error_responses(400, 413, 415)},
)
def put_environment_variables(body: EnvironmentVariablesPut, context: AppContext = Depends(get_context)):
    """Create or replace variables: ``{"environment_variables": {"NAME": "value"}}``."""
    return {"environment_variables": context.environment.put(body.environment_variables)}


@router.get("/environment-variables", response_model=list[EnvironmentVariablePublic])
def list_environment_variables(context: AppContext = Depends(get_context)) -> list[dict[str, str]]:
    return context.environment.list()


@router.delete(
    "/environment-variables/{name}",
    response_model=EnvironmentVariableDeleted,
    responses=error_responses(400, 404, s400="Not a valid variable name."),
)
def delete_environment_variable(
    name: Annotated[str, Path(json_schema_extra=VARIABLE_NAME_SCHEMA)], context: AppContext = Depends(get_context)
) -> dict[str, str]:
    context.environment.delete(name)
    return {"name": name}
