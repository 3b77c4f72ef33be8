"""chat.services: nothing stored goes missing. Rooms are soft-deleted and then
`not_found` everywhere; a deleted user's messages stay, with a placeholder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import access, selectors, services
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, Message, Room
from chat.schemas import DELETED_USER_ID, DELETED_USER_NAME
from presence import selectors as presence_selectors
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


def _deleted_room(broadcasts, capture, *, visibility: str = Room.Visibility.PUBLIC):
    owner, member = UserFactory(), UserFactory()
    room = RoomFactory(id="doomed", visibility=visibility)
    add_member(room, owner, Membership.Role.OWNER)
    add_member(room, member)
    post(room, member, "kept")
    with capture(execute=True):
        assert services.room_delete(room=room) is True
    return room, owner, member


def test_room_delete_keeps_the_messages_and_tells_every_member(broadcasts, django_capture_on_commit_callbacks):
    room, owner, member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)

    assert Room.all_objects.get(pk=room.pk).deleted_at is not None
    assert list(Message.objects.filter(room_id=room.pk).values_list("text", flat=True)) == ["kept"]
    # the sockets leave first, then each member is told
    assert broadcasts.events()[0] == "room:closed"
    assert sorted(s.to for s in broadcasts.of("room:deleted")) == sorted([f"user:{owner.pk}", f"user:{member.pk}"])


def test_room_delete_twice_does_nothing_the_second_time(broadcasts, django_capture_on_commit_callbacks):
    room, _owner, _member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)
    broadcasts.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.room_delete(room=room) is False
    assert broadcasts.sent == []


@pytest.mark.parametrize(
    "check",
    [
        access.access_room,
        access.access_room_for_join,
        access.access_room_for_send,
        access.access_room_for_moderation,
    ],
    ids=lambda f: f.__name__,
)
def test_a_deleted_room_is_not_found_by_every_access_check(broadcasts, django_capture_on_commit_callbacks, check):
    room, owner, _member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)
    with pytest.raises(ChatError) as refused:
        check(owner, room.pk)
    assert refused.value.code == ErrorCode.NOT_FOUND


def test_a_deleted_room_leaves_the_room_list_and_presence(broadcasts, django_capture_on_commit_callbacks):
    room, owner, member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)
    assert room.pk not in [r["id"] for r in selectors.room_list_for_user(owner)[0]]
    assert presence_selectors.co_member_refs(user_id=owner.pk) == []
    # and a deleted room shared besides another is no longer "shared elsewhere"
    still = RoomFactory(id="still")
    add_member(still, owner)
    add_member(still, member)
    assert [r["userId"] for r in presence_selectors.co_members_changed_by(user_id=member.pk, room_id=still.pk)] == [
        str(owner.pk)
    ]


def test_a_send_that_passed_the_check_before_the_delete_is_not_found(broadcasts, django_capture_on_commit_callbacks):
    # the ORM path: the access check ran, then the room went before the lock
    owner, room = UserFactory(), RoomFactory(id="race")
    add_member(room, owner)
    checked = access.access_room_for_send(owner, room.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=Room.objects.get(pk=room.pk))
    with pytest.raises(ChatError) as refused:
        services.message_send(sender=owner, room=checked, text="too late")
    assert refused.value.code == ErrorCode.NOT_FOUND
    assert not Message.objects.filter(room_id=room.pk).exists()


def test_a_deleted_rooms_id_stays_taken(broadcasts, django_capture_on_commit_callbacks):
    room, owner, _member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)
    with pytest.raises(ChatError) as refused:
        services.room_create(creator=owner, room_id=room.pk, name="Again")
    assert refused.value.fields == {"id": ["taken"]}
    assert services.room_create(creator=owner, room_id=None, name="Doomed").pk == "doomed-2"


def test_a_deleted_direct_room_gives_the_pair_a_fresh_room(broadcasts, django_capture_on_commit_callbacks):
    alice, bob = UserFactory(), UserFactory()
    first, _ = services.room_get_or_create_direct(user=alice, other=bob)
    post(first, alice, "before")
    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=first)

    again, created = services.room_get_or_create_direct(user=bob, other=alice)
    assert created
    assert again.pk == f"{first.pk}-2"
    assert not Message.objects.filter(room=again).exists()
    assert services.room_get_or_create_direct(user=alice, other=bob) == (again, False)
    assert Message.objects.filter(room_id=first.pk).count() == 1
    with pytest.raises(ChatError):
        services.room_restore(room=Room.all_objects.get(pk=first.pk))


def test_room_restore_brings_a_room_back_with_its_members(broadcasts, django_capture_on_commit_callbacks):
    room, owner, member = _deleted_room(broadcasts, django_capture_on_commit_callbacks)
    broadcasts.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.room_restore(room=Room.all_objects.get(pk=room.pk)) is True
    assert access.access_room(member, room.pk) == room
    assert sorted(s.to for s in broadcasts.of("room:added")) == sorted([f"user:{owner.pk}", f"user:{member.pk}"])


def test_a_deleted_users_messages_stay_with_a_placeholder_author():
    # given alice's message, bob's reply to it, and alice's read watermark
    room, alice, bob = RoomFactory(), UserFactory(), UserFactory()
    add_member(room, alice)
    add_member(room, bob)
    original = post(room, alice, "from alice")
    reply = post(room, bob, "to alice", reply_to=original)

    # when her account is deleted
    alice.delete()

    # then both messages stay, hers with the placeholder author
    page, _ = selectors.message_list_for_room(room=room)
    first, second = selectors.payloads(page)
    assert (first["userId"], first["username"], first["text"]) == (DELETED_USER_ID, DELETED_USER_NAME, "from alice")
    assert first["readBy"][0] == DELETED_USER_ID
    assert second["reply"] == {
        "id": str(original.pk),
        "userId": DELETED_USER_ID,
        "username": DELETED_USER_NAME,
        "text": "from alice",
    }
    assert second["userId"] == str(bob.pk)
    assert [m.pk for m in page] == [original.pk, reply.pk]
    # and moderators can still delete it; nobody can edit it
    with pytest.raises(ChatError):
        services.message_edit(editor=bob, message=Message.objects.get(pk=original.pk), text="x")
    summary = next(r for r in selectors.room_list_for_user(bob)[0] if r["id"] == room.pk)
    assert summary["lastMessage"] is not None and summary["lastMessage"]["id"] == str(reply.pk)


def test_mutes_and_bans_of_a_deleted_user_go_with_them():
    room, user, moderator = RoomFactory(), UserFactory(), UserFactory()
    services.mute_create(moderator=moderator, room=room, user=user, until=timezone.now() + timedelta(hours=1))
    services.ban_create(moderator=moderator, room=room, user=user)
    user.delete()
    assert not room.mutes.exists() and not room.bans.exists()
