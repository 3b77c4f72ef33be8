"""chat.services: sending, editing and deleting messages, and read watermarks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat import services
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, Message, ReadReceipt
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def room():
    return RoomFactory(id="room")


@pytest.fixture
def alice(room):
    user = UserFactory(username="alice")
    add_member(room, user)
    return user


# --- message_send -------------------------------------------------------------------


def test_send_numbers_messages_without_holes_and_ids_grow(room, alice):
    sent = [services.message_send(sender=alice, room=room, text=f"m{n}").message for n in range(3)]
    assert [m.seq for m in sent] == [1, 2, 3]
    assert sent[0].pk < sent[1].pk < sent[2].pk
    room.refresh_from_db()
    assert room.last_seq == 3


def test_seq_is_per_room(room, alice):
    other = RoomFactory()
    services.message_send(sender=alice, room=room, text="a")
    assert services.message_send(sender=alice, room=other, text="b").message.seq == 1


def test_send_broadcasts_only_after_commit(room, alice, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = services.message_send(sender=alice, room=room, text="hello")
        assert broadcasts.sent == []  # still inside the request's transaction
    [sent] = broadcasts.sent
    assert (sent.event, sent.to) == ("chat:message", "room:room")
    assert sent.data["id"] == str(result.message.pk)
    assert sent.data["seq"] == 1


def test_a_rolled_back_send_is_never_broadcast(room, alice, broadcasts, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.message_send(sender=alice, room=room, text="doomed")
        raise RuntimeError("the caller's transaction fails")
    assert callbacks == []
    assert broadcasts.sent == []
    assert not Message.objects.exists()


def test_a_client_id_used_in_another_room_is_refused_not_acknowledged(room, alice):
    # given alice sent clientId c-9 into one room
    other = RoomFactory(id="other")
    add_member(other, alice)
    first = services.message_send(sender=alice, room=room, text="first", client_id="c-9").message
    # when the same clientId is sent into another room
    with pytest.raises(ChatError) as refusal:
        services.message_send(sender=alice, room=other, text="second", client_id="c-9")
    # then it is refused as invalid, and not answered with the first room's message
    assert refusal.value.code == ErrorCode.INVALID
    assert list(Message.objects.values_list("pk", flat=True)) == [first.pk]


def test_a_send_refused_for_a_bad_reply_costs_no_quota(room, alice, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1
    with pytest.raises(ChatError) as refusal:
        services.message_send(sender=alice, room=room, text="re", reply_to_id=999_999)
    assert refusal.value.code == ErrorCode.NOT_FOUND
    assert services.message_send(sender=alice, room=room, text="allowed").created


def test_client_id_makes_a_resend_return_the_first_message(
    room, alice, broadcasts, django_capture_on_commit_callbacks, settings
):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1
    with django_capture_on_commit_callbacks(execute=True):
        first = services.message_send(sender=alice, room=room, text="once", client_id="c-1")
        # a resend is answered from the database, not counted against the rate limit
        again = services.message_send(sender=alice, room=room, text="once", client_id="c-1")
    assert (first.created, again.created) == (True, False)
    assert again.message.pk == first.message.pk
    assert Message.objects.count() == 1
    assert len(broadcasts.sent) == 1


def test_the_same_client_id_from_two_users_is_two_messages(room, alice):
    bob = UserFactory()
    add_member(room, bob)
    a = services.message_send(sender=alice, room=room, text="hi", client_id="same")
    b = services.message_send(sender=bob, room=room, text="hi", client_id="same")
    assert a.message.pk != b.message.pk
    assert [a.message.seq, b.message.seq] == [1, 2]


def test_send_reply_must_be_in_the_same_room(room, alice):
    elsewhere = post(RoomFactory(), alice, "elsewhere")
    with pytest.raises(ChatError) as error:
        services.message_send(sender=alice, room=room, text="re", reply_to_id=elsewhere.pk)
    assert error.value.code == ErrorCode.NOT_FOUND
    room.refresh_from_db()
    assert room.last_seq == 0


def test_send_rate_limit(room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 2
    user = UserFactory()
    services.message_send(sender=user, room=room, text="1")
    services.message_send(sender=user, room=room, text="2")
    with pytest.raises(ChatError) as error:
        services.message_send(sender=user, room=room, text="3")
    assert error.value.code == ErrorCode.RATE_LIMITED
    assert Message.objects.count() == 2


def test_slow_mode(room, alice):
    room.slow_mode_seconds = 30
    room.save(update_fields=["slow_mode_seconds"])
    services.message_send(sender=alice, room=room, text="1")
    with pytest.raises(ChatError) as error:
        services.message_send(sender=alice, room=room, text="2")
    assert error.value.code == ErrorCode.RATE_LIMITED
    assert "Slow mode" in error.value.message


def test_an_author_deactivated_since_loading_is_refused_and_nothing_is_stored(room, alice):
    # `alice` is the user a socket loaded at its handshake; the account is
    # deactivated afterwards (a site ban, the admin)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    with pytest.raises(ChatError) as error:
        services.message_send(sender=alice, room=room, text="after the ban")
    assert (error.value.code, error.value.message) == (ErrorCode.FORBIDDEN, "This account is deactivated")
    assert not Message.objects.filter(room=room).exists()
    room.refresh_from_db()
    assert room.last_seq == 0


# --- message_edit / message_delete ---------------------------------------------------


def test_edit_by_the_author_sets_edited_at_and_broadcasts(room, alice, broadcasts, django_capture_on_commit_callbacks):
    message = post(room, alice, "typo")
    with django_capture_on_commit_callbacks(execute=True):
        edited = services.message_edit(editor=alice, message=message, text="fixed")
    message.refresh_from_db()
    assert (message.text, message.edited_at) == ("fixed", edited.edited_at)
    assert message.edited_at is not None
    [sent] = broadcasts.of("chat:message-updated")
    assert sent.data["text"] == "fixed"


def test_edit_by_someone_else_or_late_is_forbidden(room, alice, settings):
    message = post(room, alice, "mine")
    with pytest.raises(ChatError) as error:
        services.message_edit(editor=UserFactory(), message=message, text="theirs")
    assert error.value.code == ErrorCode.FORBIDDEN

    settings.CHAT_EDIT_WINDOW_SECONDS = 10
    message.created_at = timezone.now() - timedelta(seconds=11)
    with pytest.raises(ChatError) as error:
        services.message_edit(editor=alice, message=message, text="late")
    assert error.value.code == ErrorCode.FORBIDDEN
    message.refresh_from_db()
    assert message.text == "mine"


def test_delete_by_author_or_moderator_only(room, alice):
    message = post(room, alice, "x")
    with pytest.raises(ChatError) as error:
        services.message_delete(actor=UserFactory(), message=message)
    assert error.value.code == ErrorCode.FORBIDDEN

    moderator = UserFactory()
    add_member(room, moderator, Membership.Role.MODERATOR)
    services.message_delete(actor=moderator, message=message)
    message.refresh_from_db()
    assert message.deleted_at is not None


def test_soft_delete_keeps_rows_skips_deleted_ones_and_tells_each_room(
    room, alice, broadcasts, django_capture_on_commit_callbacks
):
    other_room = RoomFactory(id="other")
    messages = [post(room, alice, "a"), post(room, alice, "b"), post(other_room, alice, "c")]
    services.messages_soft_delete(messages=[messages[0]])
    messages[0].refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        count = services.messages_soft_delete(messages=messages)

    assert count == 2
    assert Message.objects.filter(deleted_at__isnull=False).count() == 3
    assert Message.objects.count() == 3
    assert sorted((s.to, s.data["messageId"]) for s in broadcasts.of("chat:message-deleted")) == sorted(
        [("room:room", str(messages[1].pk)), ("room:other", str(messages[2].pk))]
    )


# --- receipt_mark_read -----------------------------------------------------------------


def test_the_read_watermark_moves_forward_never_back(room, alice, broadcasts, django_capture_on_commit_callbacks):
    reader = UserFactory()
    first, second, third = (post(room, alice, t) for t in "abc")

    with django_capture_on_commit_callbacks(execute=True):
        services.receipt_mark_read(user=reader, room=room, message=second)
        services.receipt_mark_read(user=reader, room=room, message=first)  # older: ignored
        services.receipt_mark_read(user=reader, room=room, message=second)  # same: ignored

    receipt = ReadReceipt.objects.get(user=reader, room=room)
    assert receipt.last_read_message_id == second.pk
    assert [s.data["messageId"] for s in broadcasts.of("chat:read")] == [str(second.pk)]
    assert broadcasts.of("chat:read")[0].skip_user == reader.pk  # to the others in the room

    services.receipt_mark_read(user=reader, room=room, message=third)
    receipt.refresh_from_db()
    assert receipt.last_read_message_id == third.pk
    assert ReadReceipt.objects.filter(user=reader, room=room).count() == 1
