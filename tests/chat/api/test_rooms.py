"""GET/POST /api/rooms/, POST /api/rooms/direct/ and PATCH /api/rooms/{roomId}/."""

from __future__ import annotations

import pytest

from chat.models import Membership, ReadReceipt, Room, RoomBan
from tests.chat.api.helpers import assert_error, db_state
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


# --- GET /api/rooms/ ------------------------------------------------------------


def test_list_shows_public_rooms_and_own_private_rooms_with_unread_and_last_message(world, client_of):
    # given the owner has read nothing and the member posted one message in each room
    # when the owner lists rooms
    answer = client_of("owner").get("/api/rooms/")

    # then both rooms come, ordered by id, with the member's message unread
    assert answer.status_code == 200
    rooms = {r["id"]: r for r in answer.json()}
    assert set(rooms) == {"public-room", "private-room"}
    assert rooms["private-room"]["visibility"] == "private"
    assert rooms["public-room"]["unreadCount"] == 1
    last = rooms["public-room"]["lastMessage"]
    assert last["id"] == str(world.public_message.pk)
    assert last["text"] == "public hello"
    assert last["userId"] == str(world.member.pk)
    assert last["readBy"] == [str(world.member.pk)]


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", {"public-room", "private-room"}),
        ("member", {"public-room", "private-room"}),
        ("outsider", {"public-room"}),
        ("staff", {"public-room"}),
    ],
)
def test_list_never_shows_private_rooms_of_others(world, client_of, persona, expected):
    answer = client_of(persona).get("/api/rooms/")
    assert answer.status_code == 200
    assert {r["id"] for r in answer.json()} == expected


def test_list_anonymous_is_401(world, client_of):
    assert_error(client_of("anonymous").get("/api/rooms/"), 401, "auth_required")


def test_list_counts_only_unread_messages_of_others_and_skips_deleted(world, api_as):
    # given three more messages: one by the owner, one deleted, one plain
    post(world.public, world.owner, "mine")
    post(world.public, world.member, "gone", deleted_at=world.public_message.created_at)
    post(world.public, world.member, "new")
    # and the owner has read up to the first message
    ReadReceipt.objects.create(user=world.owner, room=world.public, last_read_message=world.public_message)

    rooms = {r["id"]: r for r in api_as(world.owner).get("/api/rooms/").json()}

    assert rooms["public-room"]["unreadCount"] == 1
    assert rooms["public-room"]["lastMessage"]["text"] == "new"


def test_list_marks_public_rooms_never_joined_and_counts_nothing_unread_there(world, api_as):
    # given the outsider never joined the public room, which has a message
    rooms = {r["id"]: r for r in api_as(world.outsider).get("/api/rooms/").json()}
    # then it is listed as not a member, with nothing unread
    assert rooms["public-room"]["isMember"] is False
    assert rooms["public-room"]["unreadCount"] == 0
    # while a member sees it as theirs
    mine = {r["id"]: r for r in api_as(world.owner).get("/api/rooms/").json()}
    assert mine["public-room"]["isMember"] is True


def test_list_hides_rooms_the_user_is_banned_from(world, api_as):
    RoomBan.objects.create(room=world.public, user=world.outsider)
    assert api_as(world.outsider).get("/api/rooms/").json() == []


def test_list_of_a_room_without_messages_has_no_last_message(db, api_as):
    user = UserFactory()
    room = RoomFactory(id="empty")
    answer = api_as(user).get("/api/rooms/").json()
    assert answer == [
        {
            "id": room.pk,
            "name": room.name,
            "topic": "",
            "visibility": "public",
            "isMember": False,
            "unreadCount": 0,
            "lastMessage": None,
        }
    ]


def _rooms_with_messages(user, count):
    other = UserFactory()
    for n in range(count):
        room = RoomFactory(id=f"q-{n:02d}", visibility=Room.Visibility.PRIVATE if n % 2 else Room.Visibility.PUBLIC)
        add_member(room, user)
        first = post(room, other, "one")
        post(room, other, "two", reply_to=first)
        ReadReceipt.objects.create(user=other, room=room, last_read_message=first)


@pytest.mark.parametrize("rooms", [1, 20])
def test_list_does_a_fixed_number_of_queries(db, api_as, django_assert_num_queries, rooms):
    # given a user in N rooms, each with messages, a reply and a read receipt
    user = UserFactory()
    _rooms_with_messages(user, rooms)
    client = api_as(user)

    # then listing costs the same number of queries for 1 room and for 20: the
    # token's user, the user's rooms with counts, the other public rooms, the
    # last messages, their readers (watermarks, the authors' own)
    with django_assert_num_queries(6):
        answer = client.get("/api/rooms/")
    assert len(answer.json()) == rooms
    assert all(r["unreadCount"] == 2 and r["lastMessage"]["reply"]["text"] == "one" for r in answer.json())


# --- POST /api/rooms/ -----------------------------------------------------------


def test_create_room_makes_the_creator_owner_and_adds_members(db, api_as):
    creator, bob, carol = UserFactory(), UserFactory(username="bob"), UserFactory(username="carol")

    answer = api_as(creator).post(
        "/api/rooms/",
        {"name": "Team chat", "id": "team", "visibility": "private", "members": ["bob", "carol", "bob"]},
        format="json",
    )

    assert answer.status_code == 201
    assert answer.json() == {"id": "team", "name": "Team chat", "visibility": "private"}
    roles = dict(Membership.objects.filter(room_id="team").values_list("user_id", "role"))
    assert roles == {creator.pk: "owner", bob.pk: "member", carol.pk: "member"}
    # and the new private room is visible to its members only
    assert "team" in {r["id"] for r in api_as(bob).get("/api/rooms/").json()}
    assert "team" not in {r["id"] for r in api_as(UserFactory()).get("/api/rooms/").json()}


def test_create_room_without_id_derives_a_unique_one_from_the_name(db, api_as):
    client = api_as(UserFactory())
    ids = [
        client.post("/api/rooms/", {"name": "Team Chat!", "visibility": "public"}, format="json").json()["id"]
        for _ in range(3)
    ]
    assert ids == ["team-chat", "team-chat-2", "team-chat-3"]
    assert Room.objects.filter(pk__in=ids).count() == 3


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Ünïcode ☃", "unicode"), ("☃☃", "room"), ("Direct", "room-direct"), ("DM 1 2", "room-dm-1-2")],
)
def test_derived_ids_are_valid_and_never_reserved(db, api_as, name, expected):
    answer = api_as(UserFactory()).post("/api/rooms/", {"name": name, "visibility": "public"}, format="json")
    assert answer.status_code == 201
    assert answer.json()["id"] == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"visibility": "public"}, "name"),
        ({"name": "", "visibility": "public"}, "name"),
        ({"name": "   ", "visibility": "public"}, "name"),
        ({"name": 42, "visibility": "public"}, "name"),
        ({"name": "x" * 101, "visibility": "public"}, "name"),
        ({"name": "Room"}, "visibility"),
        ({"name": "Room", "visibility": "direct"}, "visibility"),
        ({"name": "Room", "visibility": "secret"}, "visibility"),
        ({"name": "Room", "visibility": "public", "id": "Has Spaces"}, "id"),
        ({"name": "Room", "visibility": "public", "id": 7}, "id"),
        ({"name": "Room", "visibility": "public", "id": "x" * 65}, "id"),
        ({"name": "Room", "visibility": "public", "id": "direct"}, "id"),
        ({"name": "Room", "visibility": "public", "id": "dm-1-2"}, "id"),
        ({"name": "Room", "visibility": "public", "id": "public-room"}, "id"),
        ({"name": "Room", "visibility": "public", "members": "bob"}, "members"),
        ({"name": "Room", "visibility": "public", "members": [1]}, "members"),
        ({"name": "Room", "visibility": "public", "members": ["nobody-by-this-name"]}, "members"),
    ],
)
def test_create_room_bad_input_is_400_and_changes_nothing(world, api_as, body, field):
    before = db_state()
    answer = api_as(world.outsider).post("/api/rooms/", body, format="json")
    assert_error(answer, 400, "invalid", field=field)
    assert db_state() == before


def test_create_room_with_a_taken_id_says_so(world, api_as):
    body = assert_error(
        api_as(world.outsider).post(
            "/api/rooms/", {"name": "Mine", "id": "public-room", "visibility": "public"}, format="json"
        ),
        400,
        "invalid",
        field="id",
    )
    assert "already exists" in body["error"]
    assert Room.objects.get(pk="public-room").name != "Mine"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"name": "Room", "visibility": ', "application/json"),
        ("name=Room&visibility=public", "application/x-www-form-urlencoded"),
        ("Room", "text/plain"),
        ('["name", "visibility"]', "application/json"),
        ("null", "application/json"),
    ],
)
def test_create_room_non_json_or_non_object_body_is_400(world, api_as, content, content_type):
    before = db_state()
    answer = api_as(world.outsider).generic("POST", "/api/rooms/", content, content_type=content_type)
    assert_error(answer, 400, "invalid")
    assert db_state() == before


def test_create_room_anonymous_is_401_and_creates_nothing(world, client_of):
    before = db_state()
    answer = client_of("anonymous").post("/api/rooms/", {"name": "Room", "visibility": "public"}, format="json")
    assert_error(answer, 401, "auth_required")
    assert db_state() == before


# --- POST /api/rooms/direct/ --------------------------------------------------------


def test_direct_room_is_created_once_and_found_again_from_either_side(db, api_as):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")

    first = api_as(alice).post("/api/rooms/direct/", {"username": "bob"}, format="json")
    again = api_as(alice).post("/api/rooms/direct/", {"username": "bob"}, format="json")
    other_side = api_as(bob).post("/api/rooms/direct/", {"username": "alice"}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert other_side.status_code == 200
    assert first.json()["id"] == again.json()["id"] == other_side.json()["id"]
    assert first.json()["visibility"] == "direct"
    room = Room.objects.get(pk=first.json()["id"])
    assert set(room.memberships.values_list("user_id", flat=True)) == {alice.pk, bob.pk}
    assert Room.objects.filter(visibility="direct").count() == 1


def test_direct_room_is_invisible_to_third_users(db, api_as):
    alice, bob, eve = UserFactory(username="alice"), UserFactory(username="bob"), UserFactory()
    room_id = api_as(alice).post("/api/rooms/direct/", {"username": "bob"}, format="json").json()["id"]
    post(Room.objects.get(pk=room_id), bob, "secret")

    assert room_id not in {r["id"] for r in api_as(eve).get("/api/rooms/").json()}
    assert_error(api_as(eve).get(f"/api/rooms/{room_id}/messages/"), 403, "forbidden")
    assert_error(api_as(eve).post(f"/api/rooms/{room_id}/messages/", {"text": "hi"}, format="json"), 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"username": 5}, 400, "invalid"),
        ({"username": ["bob"]}, 400, "invalid"),
        ({"username": "outsider"}, 400, "invalid"),  # yourself
        ({"username": "ghost"}, 404, "not_found"),
        ({"username": "inactive"}, 404, "not_found"),
    ],
)
def test_direct_room_bad_input(world, api_as, body, status, code):
    UserFactory(username="inactive", is_active=False)
    before = db_state()
    assert_error(api_as(world.outsider).post("/api/rooms/direct/", body, format="json"), status, code, field="username")
    assert db_state() == before


# --- PATCH /api/rooms/{roomId}/ -----------------------------------------------------

PATCH_ROOM_MATRIX = {
    # persona: (public room, private room)
    "owner": (200, 200),
    "member": (403, 403),
    "outsider": (403, 403),
    "anonymous": (401, 401),
    # site staff moderate the rooms they can see; private rooms stay private
    "staff": (200, 403),
}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(PATCH_ROOM_MATRIX))
def test_patch_room_permission_matrix(world, client_of, broadcasts, persona, visibility):
    room = world.room(visibility)
    expected = PATCH_ROOM_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).patch(
        f"/api/rooms/{room.pk}/", {"name": "Renamed", "topic": "New topic", "slowModeSeconds": 30}, format="json"
    )

    assert answer.status_code == expected, answer.content
    room.refresh_from_db()
    if expected == 200:
        assert answer.json() == {
            "id": room.pk,
            "name": "Renamed",
            "visibility": visibility,
            "topic": "New topic",
            "slowModeSeconds": 30,
        }
        assert (room.name, room.topic, room.slow_mode_seconds) == ("Renamed", "New topic", 30)
    else:
        assert db_state() == before


def test_patch_room_broadcasts_after_commit(world, api_as, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_as(world.owner).patch("/api/rooms/public-room/", {"topic": "Hi"}, format="json")
    [sent] = broadcasts.of("room:updated")
    assert sent.to == "room:public-room"
    assert sent.data["topic"] == "Hi"


def test_patch_room_changes_only_the_given_fields(world, api_as):
    Room.objects.filter(pk="public-room").update(topic="keep me")
    answer = api_as(world.owner).patch("/api/rooms/public-room/", {"slowModeSeconds": 0}, format="json")
    assert answer.status_code == 200
    world.public.refresh_from_db()
    assert world.public.topic == "keep me"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "non_field_errors"),
        ({"nmae": "typo"}, "non_field_errors"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"topic": 5}, "topic"),
        ({"topic": "x" * 251}, "topic"),
        ({"slowModeSeconds": -1}, "slowModeSeconds"),
        ({"slowModeSeconds": "10"}, "slowModeSeconds"),
        ({"slowModeSeconds": True}, "slowModeSeconds"),
        ({"slowModeSeconds": 1.5}, "slowModeSeconds"),
        ({"slowModeSeconds": 6 * 3600 + 1}, "slowModeSeconds"),
    ],
)
def test_patch_room_bad_input_is_400_and_changes_nothing(world, api_as, body, field):
    before = db_state()
    assert_error(api_as(world.owner).patch("/api/rooms/public-room/", body, format="json"), 400, "invalid", field=field)
    assert db_state() == before


def test_patch_unknown_room_is_404(world, api_as):
    assert_error(api_as(world.owner).patch("/api/rooms/nope/", {"name": "x"}, format="json"), 404, "not_found")


def test_moderator_role_may_patch(world, api_as):
    moderator = UserFactory()
    add_member(world.private, moderator, Membership.Role.MODERATOR)
    assert api_as(moderator).patch("/api/rooms/private-room/", {"name": "Mods"}, format="json").status_code == 200


# --- GET /api/rooms/{roomId}/ (an addition to protocol.md) ---------------------------

GET_ROOM_MATRIX = {"owner": (200, 200), "member": (200, 200), "outsider": (200, 403), "anonymous": (401, 401)}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(GET_ROOM_MATRIX))
def test_get_room_permission_matrix(world, client_of, persona, visibility):
    room = world.room(visibility)
    answer = client_of(persona).get(f"/api/rooms/{room.pk}/")
    assert answer.status_code == GET_ROOM_MATRIX[persona][0 if visibility == "public" else 1]
    if answer.status_code == 200:
        assert answer.json() == {
            "id": room.pk,
            "name": room.name,
            "visibility": visibility,
            "topic": "",
            "slowModeSeconds": 0,
        }


def test_get_unknown_room_is_404(world, api_as):
    assert_error(api_as(world.member).get("/api/rooms/nope/"), 404, "not_found")


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("owner", 201), ("member", 201), ("outsider", 201), ("anonymous", 401), ("staff", 201)],
)
def test_create_and_direct_permission_matrix(world, client_of, persona, expected):
    client = client_of(persona)
    created = client.post("/api/rooms/", {"name": f"{persona} room", "visibility": "private"}, format="json")
    target = "outsider" if persona != "outsider" else "member"
    direct = client.post("/api/rooms/direct/", {"username": target}, format="json")
    assert (created.status_code, direct.status_code) == (expected, expected)
    if expected == 201:
        owner = Membership.objects.get(room_id=created.json()["id"], role=Membership.Role.OWNER)
        assert owner.user == world.user(persona)
