"""chat.access: the checks on the send path cost one query, and still say why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.access import access_room, access_room_for_send
from chat.errors import ChatError, ErrorCode
from chat.models import Room, RoomBan, RoomMute
from tests.factories import RoomFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_the_send_check_is_one_query(django_assert_num_queries):
    room, user = RoomFactory(visibility=Room.Visibility.PRIVATE), UserFactory()
    add_member(room, user)
    with django_assert_num_queries(1):
        assert access_room_for_send(user, room.pk) == room


@pytest.mark.parametrize(
    ("standing", "code"),
    [
        ("outsider", ErrorCode.FORBIDDEN),
        ("banned", ErrorCode.BANNED),
        ("muted", ErrorCode.MUTED),
        ("expired mute", None),
    ],
)
def test_each_standing_gets_its_own_answer(standing, code):
    room, user = RoomFactory(), UserFactory()
    if standing != "outsider":
        add_member(room, user)
    if standing == "banned":
        RoomBan.objects.create(room=room, user=user)
    if standing in ("muted", "expired mute"):
        until = timezone.now() + (timedelta(hours=1) if standing == "muted" else -timedelta(minutes=1))
        RoomMute.objects.create(room=room, user=user, until=until)
    if code is None:
        assert access_room_for_send(user, room.pk) == room
        return
    with pytest.raises(ChatError) as refusal:
        access_room_for_send(user, room.pk)
    assert refusal.value.code == code


def test_unknown_rooms_are_not_found_and_private_ones_forbidden():
    user = UserFactory()
    with pytest.raises(ChatError) as unknown:
        access_room(user, "nope")
    assert unknown.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(ChatError) as private:
        access_room(user, RoomFactory(visibility=Room.Visibility.PRIVATE).pk)
    assert private.value.code == ErrorCode.FORBIDDEN
