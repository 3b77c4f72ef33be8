"""One error type for every rule the chat enforces, with the codes of protocol.md."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    AUTH_REQUIRED = "auth_required"
    INVALID_TOKEN = "invalid_token"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"
    MUTED = "muted"
    BANNED = "banned"
    INTERNAL_ERROR = "internal_error"


# What each code becomes over HTTP; the socket transport sends the code itself.
HTTP_STATUS = {
    ErrorCode.AUTH_REQUIRED: 401,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID: 400,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.MUTED: 403,
    ErrorCode.BANNED: 403,
    ErrorCode.INTERNAL_ERROR: 500,
}


class ChatError(Exception):
    """A request broke a rule. `message` is safe to show to the user."""

    def __init__(self, code: ErrorCode, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def as_ack(self) -> dict[str, str]:
        return {"status": "error", "error": self.message, "code": self.code.value}

    def __repr__(self) -> str:
        return f"ChatError({self.code.value!r}, {self.message!r})"
