"""REST after a deletion: a deleted room is `not_found` on every route, and a
deleted user's messages come with the placeholder author."""

from __future__ import annotations

from typing import Any

import pytest

from chat import services
from chat.models import Membership, Message, Room
from tests.chat.api.helpers import assert_error
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


def _room_ids(body: Any) -> list[str]:
    rooms = body["results"] if isinstance(body, dict) else body
    return [room["id"] for room in rooms]


@pytest.fixture
def deleted(broadcasts, django_capture_on_commit_callbacks):
    """A private room with an owner (moderator) and a message, deleted."""
    owner, member = UserFactory(), UserFactory()
    room = RoomFactory(id="gone", visibility=Room.Visibility.PRIVATE)
    add_member(room, owner, Membership.Role.OWNER)
    add_member(room, member)
    message = post(room, member, "still stored")
    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=room)
    return owner, member, room, message


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/rooms/gone/", None),
        ("patch", "/api/rooms/gone/", {"name": "back"}),
        ("get", "/api/rooms/gone/messages/", None),
        ("post", "/api/rooms/gone/messages/", {"text": "hello?"}),
        ("patch", "/api/rooms/gone/messages/{message}/", {"text": "edited"}),
        ("delete", "/api/rooms/gone/messages/{message}/", None),
        ("post", "/api/rooms/gone/mutes/", {"username": "{member}", "until": "2099-01-01T00:00:00Z"}),
        ("post", "/api/rooms/gone/bans/", {"username": "{member}"}),
    ],
)
def test_every_route_of_a_deleted_room_is_not_found(deleted, api_as, method, path, body):
    owner, member, room, message = deleted
    names = {"message": message.pk, "member": member.username}
    if body is not None:
        body = {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
    answer = getattr(api_as(owner), method)(path.format(**names), body, format="json")
    assert_error(answer, 404, "not_found")
    # and nothing changed: the message is as it was, nothing was added
    assert list(Message.objects.filter(room_id=room.pk).values_list("text", "deleted_at")) == [("still stored", None)]


def test_a_deleted_room_leaves_the_room_list(deleted, api_as):
    owner, _member, room, _message = deleted
    RoomFactory(id="alive")
    answer = api_as(owner).get("/api/rooms/")
    assert answer.status_code == 200
    assert room.pk not in _room_ids(answer.json())
    assert "alive" in _room_ids(answer.json())


def test_a_deleted_direct_room_is_replaced_by_a_fresh_one(api_as, broadcasts, django_capture_on_commit_callbacks):
    alice, bob = UserFactory(), UserFactory()
    first = api_as(alice).post("/api/rooms/direct/", {"username": bob.username}, format="json").json()
    post(Room.objects.get(pk=first["id"]), alice, "before the delete")
    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=Room.objects.get(pk=first["id"]))

    again = api_as(bob).post("/api/rooms/direct/", {"username": alice.username}, format="json")
    assert again.status_code == 201, again.content
    assert again.json()["id"] == f"{first['id']}-2"
    assert api_as(alice).get(f"/api/rooms/{again.json()['id']}/messages/").json()["messages"] == []
    assert api_as(alice).get(f"/api/rooms/{first['id']}/messages/").status_code == 404


def test_a_deleted_users_messages_keep_their_place_with_a_placeholder(api_as):
    # given alice's message and bob's reply to it
    room, alice, bob = RoomFactory(id="kept"), UserFactory(), UserFactory()
    add_member(room, alice)
    add_member(room, bob)
    original = post(room, alice, "from alice")
    post(room, bob, "to alice", reply_to=original)

    # when alice's account is deleted
    alice.delete()

    # then bob still sees both, hers with the placeholder author
    answer = api_as(bob).get("/api/rooms/kept/messages/")
    assert answer.status_code == 200
    first, second = answer.json()["messages"]
    assert (first["userId"], first["username"], first["text"], first["seq"]) == ("", "Deleted user", "from alice", 1)
    assert first["readBy"][0] == ""
    assert (second["reply"]["userId"], second["reply"]["username"]) == ("", "Deleted user")
    # and a new reply to it works
    posted = api_as(bob).post(
        "/api/rooms/kept/messages/", {"text": "again", "replyTo": str(original.pk)}, format="json"
    )
    assert posted.status_code == 201, posted.content
    assert posted.json()["reply"]["username"] == "Deleted user"
