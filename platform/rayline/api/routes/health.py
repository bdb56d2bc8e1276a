from fastapi import APIRouter, Depends

from rayline.api.context import AppContext, get_context
from rayline.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
@router.head("/health", include_in_schema=False)  # a monitor's HEAD, without a token either
def health(context: AppContext = Depends(get_context)) -> dict[str, str]:
    """200 once the control plane serves requests and its database answers. No token needed."""
    context.db.ping()
    return {"status": "ok"}
