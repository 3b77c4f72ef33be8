"""chat.services: rooms (create, direct, update, join)."""

from __future__ import annotations

import pytest

from chat import services
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, Room
from tests.factories import RoomFactory, UserFactory, post

pytestmark = pytest.mark.django_db


def test_room_create_makes_the_creator_owner_and_others_members():
    creator, bob = UserFactory(), UserFactory()
    room = services.room_create(
        creator=creator, room_id="team", name="Team", visibility="private", members=[bob, bob, creator]
    )
    assert (room.pk, room.visibility, room.created_by) == ("team", "private", creator)
    roles = dict(Membership.objects.filter(room=room).values_list("user_id", "role"))
    assert roles == {creator.pk: "owner", bob.pk: "member"}


def test_room_create_derives_ids_that_do_not_collide():
    creator = UserFactory()
    RoomFactory(id="general")
    RoomFactory(id="general-2")
    room = services.room_create(creator=creator, room_id=None, name="General")
    assert room.pk == "general-3"


def test_room_create_derived_id_is_cut_to_fit():
    room = services.room_create(creator=UserFactory(), room_id=None, name="a" * 100)
    assert room.pk == "a" * 56
    again = services.room_create(creator=UserFactory(), room_id=None, name="a" * 100)
    assert again.pk == "a" * 56 + "-2"


@pytest.mark.parametrize(("room_id", "reason"), [("general", "taken"), ("direct", "reserved"), ("dm-1-2", "reserved")])
def test_room_create_refuses_taken_and_reserved_ids_and_writes_nothing(room_id, reason):
    RoomFactory(id="general")
    rooms, memberships = Room.objects.count(), Membership.objects.count()
    with pytest.raises(ChatError) as error:
        services.room_create(creator=UserFactory(), room_id=room_id, name="X")
    assert error.value.code == ErrorCode.INVALID
    assert error.value.fields == {"id": [reason]}
    assert (Room.objects.count(), Membership.objects.count()) == (rooms, memberships)


def test_direct_room_is_created_once_whoever_asks():
    alice, bob = UserFactory(), UserFactory()
    room, created = services.room_get_or_create_direct(user=alice, other=bob)
    same, created_again = services.room_get_or_create_direct(user=bob, other=alice)
    assert created is True
    assert created_again is False
    assert same.pk == room.pk
    low, high = sorted([alice.pk, bob.pk])
    assert room.pk == f"dm-{low}-{high}"
    assert room.visibility == Room.Visibility.DIRECT
    assert Room.objects.filter(visibility="direct").count() == 1
    assert set(Membership.objects.filter(room=room).values_list("user_id", flat=True)) == {alice.pk, bob.pk}


def test_direct_room_with_yourself_is_refused():
    alice = UserFactory()
    with pytest.raises(ChatError) as error:
        services.room_get_or_create_direct(user=alice, other=alice)
    assert error.value.code == ErrorCode.INVALID
    assert not Room.objects.exists()


def test_room_update_writes_only_its_fields(broadcasts, django_capture_on_commit_callbacks):
    # given a room object loaded before two messages were sent (its last_seq is stale)
    room = RoomFactory(id="stale")
    stale = Room.objects.get(pk="stale")
    author = UserFactory()
    post(room, author)
    post(room, author)

    with django_capture_on_commit_callbacks(execute=True):
        services.room_update(room=stale, topic="new topic")

    # then the topic changed and the seq counter did not move back
    fresh = Room.objects.get(pk="stale")
    assert fresh.topic == "new topic"
    assert fresh.last_seq == 2
    [sent] = broadcasts.of("room:updated")
    assert sent.data["topic"] == "new topic"


def test_room_update_without_changes_does_not_broadcast(broadcasts, django_capture_on_commit_callbacks):
    room = RoomFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.room_update(room=room)
    assert callbacks == []
    assert broadcasts.sent == []


def test_room_join_is_idempotent_and_announced_once(broadcasts, django_capture_on_commit_callbacks):
    room, user = RoomFactory(), UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.room_join(user=user, room=room)
        second = services.room_join(user=user, room=room)
    assert first.pk == second.pk
    assert Membership.objects.filter(room=room, user=user).count() == 1
    [joined] = broadcasts.of("room:user-joined")
    assert joined.skip_user == user.pk  # to the others in the room
