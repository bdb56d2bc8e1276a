"""What craft-ai-sdk can call and Rayline does not offer: a 501 that says so, never a 404.

Answered without a token, as the client itself calls ``environment-info`` without one.
"""

from __future__ import annotations

from fastapi import APIRouter

from rayline.errors import NotImplementedYet

router = APIRouter(tags=["not supported"])

# (methods, path, the feature), from craft-ai-sdk 0.74.7.
UNSUPPORTED = [
    (["GET"], "/users/me", "user accounts (Rayline has one SDK token per platform)"),
    (["GET"], "/users/{user_id}", "user accounts (Rayline has one SDK token per platform)"),
    (["GET"], "/environment-info", "vector databases"),
    (["GET"], "/environments/{environment_id}/vector-database", "vector databases"),
    (["POST"], "/pipelines/{pipeline_name}/logs", "pipeline build logs (pipelines are not built: read execution logs)"),
    (["GET"], "/pipelines/{pipeline_name}/download", "downloading a pipeline's folder"),
    (["GET"], "/pipeline-templates", "pipeline templates"),
    (["GET"], "/pipeline-templates/{template_name}", "pipeline templates"),
]


def _refusal(feature: str):
    def not_supported() -> None:
        raise NotImplementedYet(f"Rayline does not support {feature}.")

    return not_supported


for methods, path, feature in UNSUPPORTED:
    router.add_api_route(path, _refusal(feature), methods=methods, status_code=501, include_in_schema=False)
