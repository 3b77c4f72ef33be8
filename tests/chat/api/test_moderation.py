"""POST /api/rooms/{roomId}/mutes/, .../bans/ and /api/moderation/site-bans/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Membership, RoomBan, RoomMute, SiteBan
from tests.chat.api.helpers import assert_error, db_state
from tests.conftest import token_for
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

ROOM_MODERATION_MATRIX = {
    # persona: (public room, private room)
    "owner": (201, 201),
    "member": (403, 403),
    "outsider": (403, 403),
    "anonymous": (401, 401),
    "staff": (201, 403),  # staff moderate the rooms they can see
}


def in_a_while(minutes=10):
    return (timezone.now() + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def target(world):
    """A plain member of both rooms, to be muted or banned."""
    user = UserFactory(username="target")
    add_member(world.public, user)
    add_member(world.private, user)
    return user


# --- mutes ------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(ROOM_MODERATION_MATRIX))
def test_mute_permission_matrix(world, client_of, target, persona, visibility):
    room = world.room(visibility)
    expected = ROOM_MODERATION_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).post(
        f"/api/rooms/{room.pk}/mutes/", {"username": "target", "until": in_a_while(), "reason": "spam"}, format="json"
    )

    assert answer.status_code == expected, answer.content
    if expected == 201:
        mute = RoomMute.objects.get(room=room, user=target)
        assert answer.json() == {
            "roomId": room.pk,
            "userId": str(target.pk),
            "username": "target",
            "until": mute.until.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reason": "spam",
        }
        assert mute.created_by == world.user(persona)
    else:
        assert db_state() == before


def test_a_muted_user_cannot_send_until_the_mute_ends(world, api_as, target):
    api_as(world.owner).post(
        "/api/rooms/public-room/mutes/", {"username": "target", "until": in_a_while()}, format="json"
    )
    answer = api_as(target).post("/api/rooms/public-room/messages/", {"text": "let me speak"}, format="json")
    assert_error(answer, 403, "muted")
    # the mute is per room
    assert api_as(target).post("/api/rooms/private-room/messages/", {"text": "hi"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"until": "in-a-while"}, 400, "invalid", "username"),
        ({"username": "target"}, 400, "invalid", "until"),
        ({"username": "target", "until": "tomorrow"}, 400, "invalid", "until"),
        ({"username": "target", "until": 1893456000}, 400, "invalid", "until"),
        ({"username": "target", "until": "2001-01-01T00:00:00Z"}, 400, "invalid", "until"),
        ({"username": "target", "until": "in-a-while", "reason": "x" * 251}, 400, "invalid", "reason"),
        ({"username": 3, "until": "in-a-while"}, 400, "invalid", "username"),
        ({"username": "ghost", "until": "in-a-while"}, 404, "not_found", "username"),
        ({"username": "member", "until": "in-a-while"}, 201, None, None),
        ({"username": "owner", "until": "in-a-while"}, 403, "forbidden", "username"),
    ],
)
def test_mute_bad_input(world, api_as, target, body, status, code, field):
    moderator = UserFactory()
    add_member(world.public, moderator, Membership.Role.MODERATOR)
    body = {k: (in_a_while() if v == "in-a-while" else v) for k, v in body.items()}
    before = db_state()

    answer = api_as(moderator).post("/api/rooms/public-room/mutes/", body, format="json")

    if code is None:
        assert answer.status_code == status
        return
    assert_error(answer, status, code, field=field)
    assert db_state() == before


def test_mute_in_unknown_room_is_404(world, api_as, target):
    answer = api_as(world.staff).post(
        "/api/rooms/nope/mutes/", {"username": "target", "until": in_a_while()}, format="json"
    )
    assert_error(answer, 404, "not_found")


# --- bans ---------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(ROOM_MODERATION_MATRIX))
def test_ban_permission_matrix(world, client_of, target, broadcasts, persona, visibility):
    room = world.room(visibility)
    expected = ROOM_MODERATION_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).post(f"/api/rooms/{room.pk}/bans/", {"username": "target"}, format="json")

    assert answer.status_code == expected, answer.content
    if expected == 201:
        assert answer.json() == {"roomId": room.pk, "userId": str(target.pk), "username": "target", "reason": ""}
        assert RoomBan.objects.filter(room=room, user=target).exists()
        assert not Membership.objects.filter(room=room, user=target).exists()
    else:
        assert db_state() == before


def test_a_banned_user_is_removed_live_and_locked_out(
    world, api_as, target, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_as(world.owner).post(
            "/api/rooms/public-room/bans/", {"username": "target", "reason": "abuse"}, format="json"
        )
    assert answer.status_code == 201
    [sent] = broadcasts.of("room:banned")
    assert sent.to == f"user:{target.pk}"

    client = api_as(target)
    assert "public-room" not in {r["id"] for r in client.get("/api/rooms/").json()}
    assert_error(client.get("/api/rooms/public-room/messages/"), 403, "banned")
    assert_error(client.post("/api/rooms/public-room/messages/", {"text": "back"}, format="json"), 403, "banned")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"username": None}, 400, "invalid"),
        ({"username": "ghost"}, 404, "not_found"),
        ({"username": "owner"}, 403, "forbidden"),
        ({"username": "staff"}, 403, "forbidden"),
    ],
)
def test_ban_bad_input_changes_nothing(world, api_as, target, body, status, code):
    moderator = UserFactory()
    add_member(world.public, moderator, Membership.Role.MODERATOR)
    before = db_state()
    assert_error(api_as(moderator).post("/api/rooms/public-room/bans/", body, format="json"), status, code)
    assert db_state() == before


# --- site bans ---------------------------------------------------------------------

SITE_BAN_MATRIX = {"owner": 403, "member": 403, "outsider": 403, "anonymous": 401, "staff": 201}


@pytest.mark.parametrize("persona", list(SITE_BAN_MATRIX))
def test_site_ban_permission_matrix(world, client_of, target, broadcasts, persona):
    before = db_state()
    answer = client_of(persona).post(
        "/api/moderation/site-bans/", {"username": "target", "reason": "spam"}, format="json"
    )
    assert answer.status_code == SITE_BAN_MATRIX[persona], answer.content
    target.refresh_from_db()
    if answer.status_code == 201:
        assert answer.json() == {"userId": str(target.pk), "username": "target", "reason": "spam"}
        assert not target.is_active
        assert SiteBan.objects.get(user=target).created_by == world.staff
    else:
        assert target.is_active
        assert db_state() == before


def test_a_site_banned_users_token_is_refused_and_sockets_closed(
    world, api, target, api_as, broadcasts, django_capture_on_commit_callbacks
):
    token = token_for(target)
    with django_capture_on_commit_callbacks(execute=True):
        api_as(world.staff).post("/api/moderation/site-bans/", {"username": "target"}, format="json")
    assert [s.to for s in broadcasts.of("sockets:closed")] == [f"user:{target.pk}"]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_error(api.get("/api/rooms/"), 401, "invalid_token")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"username": ["target"]}, 400, "invalid"),
        ({"username": "ghost"}, 404, "not_found"),
        ({"username": "staff"}, 400, "invalid"),  # yourself
        ({"username": "other-staff"}, 403, "forbidden"),
    ],
)
def test_site_ban_bad_input_changes_nothing(world, api_as, target, body, status, code):
    UserFactory(username="other-staff", is_staff=True)
    before = db_state()
    assert_error(api_as(world.staff).post("/api/moderation/site-bans/", body, format="json"), status, code)
    assert db_state() == before
