"""Accounts and sessions: what ends a user's sessions, and the login throttle's hooks.

A user's open sockets are closed on every process, and the access tokens
issued to them so far are refused, when the user
- logs out (POST /api/auth/logout/, the page's or the admin's sign-out),
- changes their password,
- is deactivated (is_active turned off) or deleted.
A site ban does the same in `services.site_ban_create` (a queryset update,
which sends no signal). Password changes and deactivations also revoke every
refresh token of the user; a logout revokes the one it was given.

Receivers are connected in `ChatConfig.ready()`. They watch `User.save()` and
`delete()`; a queryset `update()` bypasses them, like every signal.

Access tokens are stateless, so "refused" needs a record: the second of the
user's last revocation, in Redis (shared by every process), kept as long as an
access token lives. A token is refused when it was issued in an earlier second
(`iat`, whole seconds); a token issued in the same second as the revocation,
before or after it, is still accepted, so that logging in again right after a
logout works. Without REDIS_URL the record lives in the one server process.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from chat.errors import ErrorCode
from chatsite.redis import key, sync_redis

logger = logging.getLogger(__name__)


# --- Access tokens refused after a revocation ----------------------------------


def _revoked_key(user_id: int) -> str:
    return key("tokens-revoked-before", user_id)


def access_tokens_revoke(*, user_id: int) -> None:
    """Refuse, from now on, the user's access tokens issued before this second."""
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
    try:
        # Past an access token's lifetime every token older than the record
        # has expired by itself: the record can go.
        sync_redis().set(_revoked_key(user_id), int(time.time()), ex=math.ceil(lifetime) + 60)
    except RedisError:
        # Sockets are still closed and refresh tokens revoked; only the
        # short-lived access tokens stay usable until they expire.
        logger.warning("could not record the token revocation of user %s", user_id, exc_info=True)


def access_token_revoked(*, user_id: int, issued_at: Any) -> bool:
    """Whether a token of the user issued at `issued_at` (its `iat`) was revoked since.

    Sync (a Redis round trip). An unreachable Redis revokes nothing: refusing
    every token while Redis is down would sign everybody out.
    """
    try:
        revoked_before = sync_redis().get(_revoked_key(user_id))
    except RedisError:
        logger.warning("could not read the token revocation of user %s", user_id, exc_info=True)
        return False
    if revoked_before is None:
        return False
    if not isinstance(issued_at, int | float):
        return True  # no `iat`: cannot prove it is newer
    return int(issued_at) < int(revoked_before)


def refresh_tokens_revoke_all(*, user_id: int) -> None:
    """Blacklist every unexpired refresh token of the user (one INSERT)."""
    outstanding = OutstandingToken.objects.filter(
        user_id=user_id, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


def _sessions_ended(user_id: int, *, revoke_tokens: bool) -> None:
    """After commit: refuse the old access tokens, then close the sockets (in
    that order, so a socket that reconnects at once is refused)."""
    from chat import broadcast  # broadcast imports the socket server, which imports this module

    if revoke_tokens:
        access_tokens_revoke(user_id=user_id)
    broadcast.user_sockets_closed(user_id=user_id)


def sessions_end_on_commit(*, user_id: int, revoke_tokens: bool = True) -> None:
    transaction.on_commit(lambda: _sessions_ended(user_id, revoke_tokens=revoke_tokens))


def logout(*, refresh: RefreshToken) -> None:
    """POST /api/auth/logout/: revoke this refresh token, the user's access
    tokens so far, and close every socket of the user on every process.

    Precondition: `refresh` is verified (signature, expiry, not blacklisted).
    """
    from rest_framework_simplejwt.settings import api_settings as jwt_settings

    user_id = int(refresh[jwt_settings.USER_ID_CLAIM])
    with transaction.atomic():
        refresh.blacklist()
        sessions_end_on_commit(user_id=user_id)


# --- Signal receivers ------------------------------------------------------------

_WATCHED_FIELDS = frozenset({"password", "is_active"})


def user_pre_save(sender: type[User], instance: User, raw: bool = False, **kwargs: Any) -> None:
    """Remember the stored password hash and is_active, to compare after the save."""
    update_fields = kwargs.get("update_fields")
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not _WATCHED_FIELDS.intersection(update_fields):
        return  # e.g. last_login on every sign-in: no extra query
    instance._chat_account_before = (  # type: ignore[attr-defined]
        User.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


def user_post_save(sender: type[User], instance: User, created: bool, raw: bool = False, **kwargs: Any) -> None:
    before = instance.__dict__.pop("_chat_account_before", None)
    if created or raw or before is None:
        return
    old_password, was_active = before
    update_fields = kwargs.get("update_fields")
    # check_password() re-hashes a correct password whose hasher settings
    # changed and saves only the password without marking it set
    # (`_password` None): the same password, not a change.
    hash_upgrade = update_fields is not None and set(update_fields) == {"password"} and instance._password is None  # type: ignore[attr-defined]
    # Setting the first password of a row created without one (the empty
    # string: the factories, a form that saves twice) ends nothing.
    password_changed = bool(old_password) and instance.password != old_password and not hash_upgrade
    deactivated = was_active and not instance.is_active
    if password_changed or deactivated:
        refresh_tokens_revoke_all(user_id=int(instance.pk))
        sessions_end_on_commit(user_id=int(instance.pk))


def user_post_delete(sender: type[User], instance: User, **kwargs: Any) -> None:
    # Tokens of a deleted user are refused anyway (no such user).
    sessions_end_on_commit(user_id=int(instance.pk), revoke_tokens=False)


def user_logged_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    """The page's or the admin's sign-out (Django's session logout)."""
    if user is not None and user.pk is not None:
        sessions_end_on_commit(user_id=int(user.pk))


def connect_signals() -> None:
    from django.contrib.auth import signals as auth_signals
    from django.db.models import signals

    signals.pre_save.connect(user_pre_save, sender=User, dispatch_uid="chat.accounts.pre_save")
    signals.post_save.connect(user_post_save, sender=User, dispatch_uid="chat.accounts.post_save")
    signals.post_delete.connect(user_post_delete, sender=User, dispatch_uid="chat.accounts.post_delete")
    auth_signals.user_logged_out.connect(user_logged_out, dispatch_uid="chat.accounts.user_logged_out")


# --- The login throttle (django-axes) ----------------------------------------------


def client_address(request: HttpRequest) -> str | None:
    """The address a failed sign-in is counted against: the peer as the ASGI
    server gives it. uvicorn has already replaced it with X-Forwarded-For's
    when the connection came from a trusted proxy (TRUSTED_PROXY_IPS), and
    only then: a header a client sends is never read here."""
    return request.META.get("REMOTE_ADDR")


def lockout_minutes() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_message() -> str:
    minutes = lockout_minutes()
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-in attempts. Try again in {minutes} {unit}."


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """What a locked-out sign-in gets: 429 with the message, as a page for the
    login forms and as the API's error shape under /api/. (axes passes the
    original response and the credentials, positionally or not; neither is used.)"""
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": lockout_message(), "code": ErrorCode.RATE_LIMITED.value}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)
    response["Retry-After"] = retry_after
    return response
