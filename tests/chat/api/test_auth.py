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


# --- Password guessing (django-axes) ------------------------------------------------

LOCKOUT = "Too many failed sign-in attempts. Try again in 15 minutes."


def obtain(username, password, address="198.51.100.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_token_obtain_locks_a_username_after_repeated_failures(db, settings):
    UserFactory(username="alice")
    UserFactory(username="bob")
    # given four failures for alice, each from a different address
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert_error(obtain("alice", "wrong", f"198.51.100.{n + 10}"), 401, "invalid_token")
    # when the fifth fails, it is the one that locks
    locked = obtain("alice", "wrong", "198.51.100.20")
    assert_error(locked, 429, "rate_limited")
    assert locked.json()["error"] == LOCKOUT
    assert locked.headers["Retry-After"] == str(15 * 60)
    # then alice's correct password is refused too, from any address
    assert_error(obtain("alice", PASSWORD, "203.0.113.7"), 429, "rate_limited")
    # and bob, from another address, signs in as usual
    assert obtain("bob", PASSWORD, "203.0.113.8").status_code == 200


def test_token_obtain_locks_an_address_that_sprays_usernames(db, settings):
    UserFactory(username="alice")
    # given failures for five different usernames from one address
    for n in range(settings.AXES_FAILURE_LIMIT):
        obtain(f"guess{n}", "wrong", "198.51.100.66")
    # then that address gets 429 even with alice's correct password
    assert_error(obtain("alice", PASSWORD, "198.51.100.66"), 429, "rate_limited")
    # while alice from her own address is unaffected
    assert obtain("alice", PASSWORD, "203.0.113.9").status_code == 200


def test_the_lock_lifts_after_the_cool_off(db, settings):
    from axes.models import AccessAttempt
    from django.utils import timezone

    UserFactory(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        obtain("alice", "wrong")
    assert obtain("alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert obtain("alice", PASSWORD).status_code == 200


# --- POST /api/auth/logout/ -----------------------------------------------------------


def tokens(username="alice"):
    answer = obtain(username, PASSWORD)
    assert answer.status_code == 200, answer.json()
    return answer.json()


def issued_earlier(token: str, seconds: int = 5) -> str:
    """The same access token as if it had been issued `seconds` ago."""
    from django.utils import timezone

    access = AccessToken(token)
    access.set_iat(at_time=timezone.now() - timedelta(seconds=seconds))
    return str(access)


def test_logout_revokes_the_refresh_token_and_earlier_access_tokens(db, django_capture_on_commit_callbacks):
    UserFactory(username="alice")
    pair = tokens()
    old_access = issued_earlier(pair["access"])
    with django_capture_on_commit_callbacks(execute=True):
        answer = APIClient().post("/api/auth/logout/", {"refresh": pair["refresh"]}, format="json")
    assert answer.status_code == 204 and answer.content == b""
    # the refresh token is dead, and so is an access token issued before
    assert_error(
        APIClient().post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"), 401, "invalid_token"
    )
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {old_access}")
    assert_error(client.get("/api/rooms/"), 401, "invalid_token")
    # logging out again with it is refused the same way
    assert_error(
        APIClient().post("/api/auth/logout/", {"refresh": pair["refresh"]}, format="json"), 401, "invalid_token"
    )
    # signing in again works at once
    fresh = tokens()
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {fresh['access']}").get("/api/rooms/").status_code == 200


def test_logout_revokes_only_its_own_refresh_token(db, django_capture_on_commit_callbacks):
    UserFactory(username="alice")
    phone, laptop = tokens(), tokens()
    with django_capture_on_commit_callbacks(execute=True):
        assert APIClient().post("/api/auth/logout/", {"refresh": phone["refresh"]}, format="json").status_code == 204
    refreshed = APIClient().post("/api/auth/token/refresh/", {"refresh": laptop["refresh"]}, format="json")
    assert refreshed.status_code == 200


def test_logout_closes_the_users_sockets(db, broadcasts_closed, django_capture_on_commit_callbacks):
    alice = UserFactory(username="alice")
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post("/api/auth/logout/", {"refresh": tokens()["refresh"]}, format="json")
    assert broadcasts_closed == [alice.pk]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"refresh": ""}, 400, "invalid"),
        ({"refresh": "garbage"}, 401, "invalid_token"),
        ({"refresh": "{access}"}, 401, "invalid_token"),  # an access token is no refresh token
        ({"refresh": "{expired}"}, 401, "invalid_token"),
    ],
)
def test_logout_refusals_change_nothing(db, broadcasts_closed, body, status, code):
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    alice = UserFactory(username="alice")
    expired = RefreshToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    filled = {k: v.format(access=tokens()["access"], expired=str(expired)) for k, v in body.items()}
    assert_error(APIClient().post("/api/auth/logout/", filled, format="json"), status, code)
    assert BlacklistedToken.objects.count() == 0
    assert broadcasts_closed == []


def test_logout_needs_no_access_token_and_ignores_a_bad_one(db):
    UserFactory(username="alice")
    client = APIClient(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert client.post("/api/auth/logout/", {"refresh": tokens()["refresh"]}, format="json").status_code == 204


@pytest.fixture
def broadcasts_closed(monkeypatch):
    from chat import broadcast

    closed: list[int] = []
    monkeypatch.setattr(broadcast, "user_sockets_closed", lambda *, user_id: closed.append(user_id))
    return closed
