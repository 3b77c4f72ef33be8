"""The JWT authentication of every REST route. Its own module: DRF imports it
while rest_framework.views is still loading, so it must not import views."""

from __future__ import annotations

from typing import Any

from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.tokens import Token

from chat import accounts


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's, refusing access tokens issued before the user's last logout,
    password change or deactivation (chat.accounts)."""

    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        if accounts.access_token_revoked(user_id=int(user.pk), issued_at=validated_token.get("iat")):
            raise InvalidToken("Token has been revoked: sign in again or refresh it")
        return user
