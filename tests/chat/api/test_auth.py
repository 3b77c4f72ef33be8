"""Tokens (POST /api/auth/token/, .../refresh/) and what every endpoint does
without a valid one: 401 before anything else, and nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.chat.api.helpers import assert_error, db_state
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

# Every route of the REST API that needs a signed-in user, with a body that
# would succeed for the world's owner.
PROTECTED = [
    ("get", "/api/rooms/", None),
    ("post", "/api/rooms/", {"name": "New", "visibility": "public"}),
    ("post", "/api/rooms/direct/", {"username": "member"}),
    ("patch", "/api/rooms/public-room/", {"name": "Renamed"}),
    ("get", "/api/rooms/public-room/messages/", None),
    ("post", "/api/rooms/public-room/messages/", {"text": "hi"}),
    ("patch", "/api/rooms/public-room/messages/{message}/", {"text": "edited"}),
    ("delete", "/api/rooms/public-room/messages/{message}/", None),
    ("post", "/api/rooms/public-room/mutes/", {"username": "member", "until": "2099-01-01T00:00:00Z"}),
    ("post", "/api/rooms/public-room/bans/", {"username": "member"}),
    ("post", "/api/moderation/site-bans/", {"username": "member"}),
]


def forged_token(user):
    token = AccessToken.for_user(user)
    header, payload, _signature = str(token).split(".")
    return f"{header}.{payload}.c2lnbmVkIGJ5IHNvbWVvbmUgZWxzZQ"


def expired_token(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


def other_key_token(user):
    import jwt

    return jwt.encode(
        {"token_type": "access", "user_id": str(user.pk), "exp": 4102444800},
        "a-key-that-is-not-the-servers-but-long-enough",
        "HS256",
    )


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        (None, "auth_required"),
        ("Bearer", "invalid_token"),
        ("Bearer not-a-jwt", "invalid_token"),
        ("Bearer {forged}", "invalid_token"),
        ("Bearer {expired}", "invalid_token"),
        ("Bearer {other_key}", "invalid_token"),
        ("Bearer {refresh}", "invalid_token"),  # a refresh token is no access token
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_endpoint_refuses_missing_or_bad_tokens_and_changes_nothing(
    world, broadcasts, credentials, code, method, path, body
):
    client = APIClient()
    if credentials is not None:
        owner = world.owner
        client.credentials(
            HTTP_AUTHORIZATION=credentials.format(
                forged=forged_token(owner),
                expired=expired_token(owner),
                other_key=other_key_token(owner),
                refresh=str(RefreshToken.for_user(owner)),
            )
        )
    before = db_state()

    answer = getattr(client, method)(path.format(message=world.public_message.pk), body, format="json")

    assert_error(answer, 401, code)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert db_state() == before
    assert broadcasts.sent == []


def test_token_obtain_and_refresh_give_working_tokens(db, api):
    user = UserFactory(username="alice")
    answer = api.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert answer.status_code == 200
    tokens = answer.json()
    assert set(tokens) == {"access", "refresh"}

    refreshed = api.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert api.get("/api/rooms/").status_code == 200
    assert AccessToken(refreshed.json()["access"])["user_id"] == str(user.pk)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "alice", "password": "wrong"}, 401, "invalid_token"),
        ({"username": "nobody", "password": PASSWORD}, 401, "invalid_token"),
        ({"username": "alice"}, 400, "invalid"),
        ({}, 400, "invalid"),
    ],
)
def test_token_obtain_refusals(db, api, body, status, code):
    UserFactory(username="alice")
    assert_error(api.post("/api/auth/token/", body, format="json"), status, code)


def test_token_obtain_refuses_a_deactivated_account(db, api):
    UserFactory(username="banned", is_active=False)
    answer = api.post("/api/auth/token/", {"username": "banned", "password": PASSWORD}, format="json")
    assert_error(answer, 401, "invalid_token")


@pytest.mark.parametrize("refresh", ["", "garbage", "{access}"])
def test_token_refresh_refusals(db, api, refresh):
    access = str(AccessToken.for_user(UserFactory()))
    answer = api.post("/api/auth/token/refresh/", {"refresh": refresh.format(access=access)}, format="json")
    assert answer.status_code in (400, 401)
    assert answer.json()["code"] in ("invalid", "invalid_token")


def test_unknown_method_is_405_with_the_error_shape(world, api_as):
    assert_error(api_as(world.owner).put("/api/rooms/public-room/", {}, format="json"), 405, "invalid")
