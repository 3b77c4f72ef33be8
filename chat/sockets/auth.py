"""Who is on the other end of a socket: a JWT in the handshake's `auth`, or the
Django session cookie of the same-origin page."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from chat.accounts import access_token_revoked
from chat.errors import ChatError, ErrorCode

logger = logging.getLogger(__name__)

AUTH_REQUIRED_MESSAGE = "Authentication required"
INVALID_TOKEN_MESSAGE = "Invalid token"


def _user_from_token(token: str) -> User:
    try:
        access = AccessToken(token)  # type: ignore[arg-type]
        user_id = access[jwt_settings.USER_ID_CLAIM]
    except (TokenError, KeyError):
        raise ChatError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN_MESSAGE) from None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise ChatError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN_MESSAGE)
    # A socket closed by a logout or a password change must not come straight
    # back with the access token it had (chat.accounts).
    if access_token_revoked(user_id=int(user.pk), issued_at=access.get("iat")):
        raise ChatError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN_MESSAGE)
    return user


def _user_from_session(cookie_header: str) -> User | None:
    cookies = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except Exception:
        return None
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return None
    from importlib import import_module

    engine = import_module(settings.SESSION_ENGINE)
    request = HttpRequest()
    request.session = engine.SessionStore(morsel.value)
    user = get_user(request)  # checks the session hash, so a changed password logs out
    if not user.is_authenticated or not user.is_active:
        return None
    return user


def own_origin(environ: dict[str, Any]) -> str | None:
    """The origin of this server as the handshake addressed it (behind a proxy:
    as the proxy says), e.g. `https://chat.example.com`."""
    host = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST")
    if not host:
        return None
    scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme") or "http"
    return f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}"


def _same_origin(environ: dict[str, Any]) -> bool:
    # No Origin: not a browser (browsers always send it on WebSocket and CORS
    # requests), so not a page another site could use to ride the cookie.
    origin = environ.get("HTTP_ORIGIN")
    return not origin or origin == own_origin(environ)


def authenticate_socket(environ: dict[str, Any], auth: Any) -> User:
    """The user of a connecting socket, or ChatError with the contract's message.

    Sync: call through database_sync_to_async.
    """
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is not None:
        if not isinstance(token, str) or not token:
            raise ChatError(ErrorCode.INVALID_TOKEN, INVALID_TOKEN_MESSAGE)
        return _user_from_token(token)
    cookie_header = environ.get("HTTP_COOKIE", "")
    # The session cookie speaks for the user only on the server's own pages:
    # a site in CORS_ALLOWED_ORIGINS (a support widget's host) may open a
    # socket, but not as the visitor's chat account (cross-site WebSocket
    # hijacking; SameSite=Lax does not stop it between sibling subdomains).
    if cookie_header and _same_origin(environ):
        user = _user_from_session(cookie_header)
        if user is not None:
            return user
    raise ChatError(ErrorCode.AUTH_REQUIRED, AUTH_REQUIRED_MESSAGE)
