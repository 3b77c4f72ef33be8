"""REST's half of the error contract: ChatError and DRF's own errors become
`{"error", "code", "fields"?}` with the status protocol.md names."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.errors import ChatError, ErrorCode

_DRF_CODES = {
    status.HTTP_400_BAD_REQUEST: ErrorCode.INVALID,
    status.HTTP_401_UNAUTHORIZED: ErrorCode.AUTH_REQUIRED,
    status.HTTP_403_FORBIDDEN: ErrorCode.FORBIDDEN,
    status.HTTP_404_NOT_FOUND: ErrorCode.NOT_FOUND,
    status.HTTP_405_METHOD_NOT_ALLOWED: ErrorCode.INVALID,
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: ErrorCode.INVALID,
    status.HTTP_429_TOO_MANY_REQUESTS: ErrorCode.RATE_LIMITED,
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ChatError):
        body: dict[str, Any] = {"error": exc.message, "code": exc.code.value}
        if exc.fields:
            body["fields"] = exc.fields
        return Response(body, status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # Django logs it and answers 500 without a traceback (DEBUG off)
    code = _DRF_CODES.get(response.status_code, ErrorCode.INVALID)
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        code = ErrorCode.INVALID_TOKEN if isinstance(exc, exceptions.AuthenticationFailed) else ErrorCode.AUTH_REQUIRED
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # protocol.md: bad input, non-JSON included, is a 400.
        response.status_code = status.HTTP_400_BAD_REQUEST
        response.data = {"error": "The body must be JSON (Content-Type: application/json)", "code": code.value}
    elif isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = next(iter(fields.items()), None)
        message = f"{first[0]}: {_first_message(first[1])}" if first else "Invalid input"
        response.data = {"error": message, "code": code.value, "fields": fields}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"error": str(detail), "code": code.value}
    return response


def _first_message(detail: Any) -> str:
    """The first human message in a (possibly nested) DRF error detail."""
    while isinstance(detail, list | dict) and detail:
        detail = detail[0] if isinstance(detail, list) else next(iter(detail.values()))
    return str(detail) if detail else "invalid"
