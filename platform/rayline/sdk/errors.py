"""The SDK's one exception class, built from the platform's JSON error body."""

from __future__ import annotations

from typing import Any


class SdkException(Exception):
    """Raised when the platform answers with an error, or when a wait fails.

    ``name`` tells failures apart without separate classes (``"NotFound"``,
    ``"CreationFailedException"``, ``"TimeoutException"``...), as in craft-ai-sdk.
    """

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        name: str | None = None,
        request_id: str | None = None,
        additional_data: Any = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.name = name
        self.request_id = request_id
        self.additional_data = additional_data
        super().__init__(message)

    def __str__(self) -> str:
        prefix = f"[{self.name}] " if self.name else (f"[{self.status_code}] " if self.status_code else "")
        text = prefix + self.message
        if self.additional_data:
            text += f"\nAdditional data: {self.additional_data}"
        return text

    def __repr__(self) -> str:
        return f"SdkException(message={self.message!r}, status_code={self.status_code!r}, name={self.name!r})"
