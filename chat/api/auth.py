"""Tokens and sign-out: POST /api/auth/token/ (throttled) and POST /api/auth/logout/.
The JWT authentication of the other routes is chat/api/authentication.py."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import views
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from chat import accounts
from chat.api.serializers import ErrorOut


class JWTScheme(SimpleJWTScheme):
    """Documents chat.api.authentication.JWTAuthentication as simplejwt's bearer scheme."""

    target_class = "chat.api.authentication.JWTAuthentication"


class TokenObtainPairView(views.TokenObtainPairView):
    """simplejwt's, answering 429 once django-axes locks the username or the
    client address out (the count happens inside authenticate())."""

    @extend_schema(responses={200: views.TokenObtainPairView.serializer_class, 401: ErrorOut, 429: ErrorOut})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        # axes flags the DRF request it was handed through authenticate(); its
        # middleware only sees Django's request, so the view answers here.
        if not getattr(self.request, "axes_locked_out", False):
            return super().handle_exception(exc)
        response = super().handle_exception(exceptions.Throttled(detail=accounts.lockout_message()))
        response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
        return response


class TokenRefreshView(views.TokenRefreshView):
    """simplejwt's, answering a revoked or expired refresh token 401 as protocol.md
    says (DRF turns a 401 into 403 for a view without authenticators)."""

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class LogoutIn(serializers.Serializer[Any]):
    refresh = serializers.CharField()


class LogoutView(APIView):
    """The refresh token is the credential: no access token needed (it may have
    expired already), and an invalid one in the header is ignored."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # a refused refresh token is a 401, not a 403

    @extend_schema(
        request=LogoutIn,
        responses={204: None, 400: ErrorOut, 401: ErrorOut},
        summary="Sign out: revoke the refresh token and close the user's sockets",
        description="The refresh token is blacklisted (a later refresh gets 401), the user's access tokens "
        "issued before this second are refused, and every open socket of the user is closed on every process.",
    )
    def post(self, request: Request) -> Response:
        body = LogoutIn(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(body.validated_data["refresh"])
        except TokenError as exc:  # bad signature, expired, already revoked, not a refresh token
            raise InvalidToken(str(exc)) from None
        accounts.logout(refresh=refresh)
        return Response(status=status.HTTP_204_NO_CONTENT)
