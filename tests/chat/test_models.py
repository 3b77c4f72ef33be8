"""The database's own guarantees, which the services rely on under races."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from chat.models import Membership, Message, Room
from tests.chat.services.conftest import _fast_password_hashing
from tests.factories import RoomFactory, UserFactory, add_member, post

__all__ = ["_fast_password_hashing"]

pytestmark = pytest.mark.django_db


def raises_integrity_error(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_one_membership_per_user_and_room():
    room, user = RoomFactory(), UserFactory()
    add_member(room, user)
    raises_integrity_error(lambda: add_member(room, user))


def test_seq_is_unique_per_room():
    room, user = RoomFactory(), UserFactory()
    message = post(room, user)
    raises_integrity_error(lambda: Message.objects.create(room=room, author=user, text="twin", seq=message.seq))
    # the same seq in another room is fine
    assert Message.objects.create(room=RoomFactory(), author=user, text="ok", seq=message.seq).pk


def test_client_id_is_unique_per_author_but_null_repeats():
    room, alice, bob = RoomFactory(), UserFactory(), UserFactory()
    post(room, alice, client_id="c-1")
    post(room, bob, client_id="c-1")
    post(room, alice)
    post(room, alice)
    raises_integrity_error(lambda: post(room, alice, client_id="c-1"))
    assert Message.objects.filter(client_id__isnull=True).count() == 2


def test_one_direct_room_per_pair():
    Room.objects.create(id="dm-1-2", name="a & b", visibility="direct", direct_key="1:2")
    raises_integrity_error(
        lambda: Room.objects.create(id="dm-other", name="b & a", visibility="direct", direct_key="1:2")
    )
    # rooms that are not direct have no key, and NULLs do not collide
    RoomFactory()
    RoomFactory()


@pytest.mark.parametrize("room_id", ["General", "-general", "has space", "x" * 65, ""])
def test_room_ids_are_validated(room_id):
    with pytest.raises(ValidationError):
        Room(id=room_id, name="x").full_clean()


def test_message_ids_grow_with_seq_inside_a_room():
    room, user = RoomFactory(), UserFactory()
    messages = [post(room, user, str(n)) for n in range(5)]
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert [m.pk for m in messages] == sorted(m.pk for m in messages)


def test_a_room_with_messages_cannot_be_hard_deleted():
    # Rooms are soft-deleted (services.room_delete); a hard delete that would
    # take the messages along is refused.
    room, user = RoomFactory(), UserFactory()
    add_member(room, user, Membership.Role.OWNER)
    post(room, user)
    with pytest.raises(ProtectedError):
        room.delete()
    assert Message.objects.filter(room=room).count() == 1


def test_deleting_a_user_keeps_their_messages_without_an_author():
    room, user, other = RoomFactory(), UserFactory(), UserFactory()
    add_member(room, user)
    first = post(room, user, "mine")
    reply = post(room, other, "yours", reply_to=first)
    user.delete()
    first.refresh_from_db()
    reply.refresh_from_db()
    assert first.author_id is None
    assert first.text == "mine"
    assert reply.reply_to_id == first.pk
    assert not Membership.objects.filter(room=room).exists()


def test_deleted_rooms_are_hidden_from_the_default_manager():
    room = RoomFactory()
    Room.all_objects.filter(pk=room.pk).update(deleted_at=timezone.now())
    assert not Room.objects.filter(pk=room.pk).exists()
    assert Room.all_objects.filter(pk=room.pk).exists()


def test_a_stale_save_does_not_bring_a_deleted_room_back():
    room = RoomFactory()
    Room.all_objects.filter(pk=room.pk).update(deleted_at=timezone.now())
    room.name = "renamed"
    room.save()
    assert Room.all_objects.get(pk=room.pk).deleted_at is not None
