"""GET/POST /api/rooms/{roomId}/messages/ and PATCH/DELETE .../messages/{messageId}/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import read_positions
from chat.models import Membership, Message, ReadReceipt, Room, RoomBan, RoomMute
from tests.chat.api.helpers import assert_error, db_state
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


def url(room_id, message_id=None):
    base = f"/api/rooms/{room_id}/messages/"
    return base if message_id is None else f"{base}{message_id}/"


# --- GET ------------------------------------------------------------------------

READ_MATRIX = {
    # persona: (public room, private room)
    "owner": (200, 200),
    "member": (200, 200),
    "outsider": (200, 403),  # public rooms can be read (and joined) by anyone signed in
    "anonymous": (401, 401),
    "staff": (200, 403),
}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(READ_MATRIX))
def test_read_permission_matrix(world, client_of, persona, visibility):
    expected = READ_MATRIX[persona][0 if visibility == "public" else 1]
    answer = client_of(persona).get(url(world.room(visibility).pk))
    assert answer.status_code == expected
    if expected == 200:
        assert [m["text"] for m in answer.json()["messages"]] == [f"{visibility} hello"]
    elif expected == 403:
        body = assert_error(answer, 403, "forbidden")
        assert "hello" not in str(body)


def test_read_unknown_room_is_404_for_a_signed_in_user_and_401_for_anonymous(world, client_of):
    assert_error(client_of("outsider").get(url("no-such-room")), 404, "not_found")
    assert_error(client_of("anonymous").get(url("no-such-room")), 401, "auth_required")


def test_read_banned_user_is_refused(world, api_as):
    RoomBan.objects.create(room=world.public, user=world.outsider)
    assert_error(api_as(world.outsider).get(url("public-room")), 403, "banned")


@pytest.fixture
def thread(db):
    """A public room with messages 1..7 (by seq), bob's read watermark at the 3rd."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    room = RoomFactory(id="thread")
    add_member(room, alice)
    add_member(room, bob)
    messages = [post(room, alice if n % 2 else bob, f"m{n}") for n in range(1, 8)]
    ReadReceipt.objects.create(user=bob, room=room, last_read_message=messages[2])
    return alice, bob, room, messages


def texts(answer):
    return [m["text"] for m in answer.json()["messages"]]


def test_page_is_the_newest_oldest_first_with_has_more(thread, api_as):
    alice, _, _, _ = thread
    answer = api_as(alice).get(url("thread"), {"limit": 3})
    assert answer.status_code == 200
    assert texts(answer) == ["m5", "m6", "m7"]
    assert answer.json()["hasMore"] is True


def test_before_walks_back_exactly(thread, api_as):
    alice, _, _, messages = thread
    answer = api_as(alice).get(url("thread"), {"before": str(messages[4].pk), "limit": 3})
    assert texts(answer) == ["m2", "m3", "m4"]
    assert answer.json()["hasMore"] is True
    answer = api_as(alice).get(url("thread"), {"before": str(messages[1].pk), "limit": 3})
    assert texts(answer) == ["m1"]
    assert answer.json()["hasMore"] is False


def test_after_walks_forward_exactly(thread, api_as):
    alice, _, _, messages = thread
    answer = api_as(alice).get(url("thread"), {"after": str(messages[1].pk), "limit": 2})
    assert texts(answer) == ["m3", "m4"]
    assert answer.json()["hasMore"] is True
    answer = api_as(alice).get(url("thread"), {"after": str(messages[4].pk)})
    assert texts(answer) == ["m6", "m7"]
    assert answer.json()["hasMore"] is False


def test_before_and_after_together_give_the_window_between(thread, api_as):
    alice, _, _, messages = thread
    answer = api_as(alice).get(url("thread"), {"after": messages[1].pk, "before": messages[5].pk})
    assert texts(answer) == ["m3", "m4", "m5"]


def test_default_limit_is_50_and_larger_limits_are_served_as_200(db, api_as):
    user = UserFactory()
    room = RoomFactory(id="busy")
    for n in range(205):
        post(room, user, f"m{n}")
    client = api_as(user)

    default = client.get(url("busy")).json()
    assert len(default["messages"]) == 50
    assert default["messages"][-1]["text"] == "m204"
    assert default["hasMore"] is True

    capped = client.get(url("busy"), {"limit": 1000}).json()
    assert len(capped["messages"]) == 200
    assert capped["messages"][0]["text"] == "m5"
    assert capped["hasMore"] is True


def test_message_objects_carry_the_protocol_fields_and_read_by(thread, api_as):
    alice, bob, _, messages = thread
    [first] = api_as(alice).get(url("thread"), {"after": messages[0].pk, "limit": 1}).json()["messages"]
    # m2 is bob's; alice has no receipt, so only bob (the author) has read it
    assert first == {
        "id": str(messages[1].pk),
        "roomId": "thread",
        "seq": 2,
        "userId": str(bob.pk),
        "username": "bob",
        "text": "m2",
        "replyTo": None,
        "reply": None,
        "clientId": None,
        "attachment": None,
        "timestamp": messages[1].created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "editedAt": None,
        "deletedAt": None,
        "readBy": [str(bob.pk)],
        "readCount": 1,
    }
    [third] = api_as(alice).get(url("thread"), {"after": messages[1].pk, "limit": 1}).json()["messages"]
    assert third["readBy"] == [str(alice.pk), str(bob.pk)]  # alice wrote it, bob's watermark covers it
    assert third["readCount"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "abc"}, "before"),
        ({"before": "-1"}, "before"),
        ({"after": "1e3"}, "after"),
        ({"after": "9" * 30}, "after"),
    ],
)
def test_bad_query_is_400(world, api_as, params, field):
    assert_error(api_as(world.member).get(url("public-room"), params), 400, "invalid", field=field)


# --- POST -----------------------------------------------------------------------

SEND_MATRIX = {
    # persona: (public room, private room). Sending needs membership, even for staff.
    "owner": (201, 201),
    "member": (201, 201),
    "outsider": (403, 403),
    "anonymous": (401, 401),
    "staff": (403, 403),
}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(SEND_MATRIX))
def test_send_permission_matrix(world, client_of, broadcasts, persona, visibility):
    room = world.room(visibility)
    expected = SEND_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).post(url(room.pk), {"text": "hi there"}, format="json")

    assert answer.status_code == expected, answer.content
    if expected == 201:
        assert Message.objects.filter(room=room).count() == 2
    else:
        assert db_state() == before
        assert broadcasts.sent == []


def test_send_stores_trims_answers_201_and_broadcasts_after_commit(
    world, api_as, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer = api_as(world.owner).post(
            url("public-room"),
            {"text": "  hello all  ", "replyTo": str(world.public_message.pk), "clientId": "c-1"},
            format="json",
        )
        # nothing is broadcast before the transaction commits
        assert broadcasts.sent == []
    assert len(callbacks) == 1

    assert answer.status_code == 201
    body = answer.json()
    stored = Message.objects.get(pk=int(body["id"]))
    assert (stored.text, stored.seq, stored.client_id, stored.reply_to_id) == (
        "hello all",
        2,
        "c-1",
        world.public_message.pk,
    )
    assert body["text"] == "hello all"
    assert body["seq"] == 2
    assert body["userId"] == str(world.owner.pk)
    assert body["replyTo"] == str(world.public_message.pk)
    assert body["reply"]["text"] == "public hello"
    assert body["readBy"] == [str(world.owner.pk)]
    [sent] = broadcasts.sent
    assert (sent.event, sent.to, sent.data["id"]) == ("chat:message", "room:public-room", body["id"])


def test_resend_with_the_same_client_id_returns_the_first_message(
    world, api_as, broadcasts, django_capture_on_commit_callbacks
):
    client = api_as(world.member)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url("public-room"), {"text": "once", "clientId": "abc"}, format="json")
        again = client.post(url("public-room"), {"text": "once", "clientId": "abc"}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Message.objects.filter(client_id="abc").count() == 1
    assert len(broadcasts.of("chat:message")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": None}, "text"),
        ({"text": ""}, "text"),
        ({"text": " \n\t "}, "text"),
        ({"text": 42}, "text"),
        ({"text": ["hi"]}, "text"),
        ({"text": {"a": 1}}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({"text": "hi", "replyTo": "abc"}, "replyTo"),
        ({"text": "hi", "replyTo": True}, "replyTo"),
        ({"text": "hi", "replyTo": 0}, "replyTo"),
        ({"text": "hi", "clientId": 7}, "clientId"),
        ({"text": "hi", "clientId": ""}, "clientId"),
        ({"text": "hi", "clientId": "c" * 65}, "clientId"),
    ],
)
def test_send_bad_input_is_400_and_changes_nothing(world, api_as, broadcasts, body, field):
    before = db_state()
    assert_error(api_as(world.member).post(url("public-room"), body, format="json"), 400, "invalid", field=field)
    assert db_state() == before
    assert broadcasts.sent == []


def test_send_accepts_5000_characters_after_trimming(world, api_as):
    answer = api_as(world.member).post(url("public-room"), {"text": "  " + "x" * 5000 + "  "}, format="json")
    assert answer.status_code == 201
    assert len(answer.json()["text"]) == 5000


def test_send_non_json_body_is_400(world, api_as):
    before = db_state()
    client = api_as(world.member)
    assert_error(client.generic("POST", url("public-room"), "{text:", content_type="application/json"), 400, "invalid")
    assert_error(client.generic("POST", url("public-room"), "text=hi", content_type="text/plain"), 400, "invalid")
    assert db_state() == before


def test_send_reply_to_a_message_of_another_room_is_404(world, api_as):
    before = db_state()
    answer = api_as(world.member).post(
        url("public-room"), {"text": "hi", "replyTo": str(world.private_message.pk)}, format="json"
    )
    assert_error(answer, 404, "not_found")
    assert db_state() == before


def test_send_to_unknown_room_is_404(world, api_as):
    assert_error(api_as(world.member).post(url("nowhere"), {"text": "hi"}, format="json"), 404, "not_found")


def test_send_while_muted_is_403_muted(world, api_as):
    RoomMute.objects.create(room=world.public, user=world.member, until=timezone.now() + timedelta(minutes=5))
    before = db_state()
    body = assert_error(api_as(world.member).post(url("public-room"), {"text": "hi"}, format="json"), 403, "muted")
    assert "muted" in body["error"]
    assert db_state() == before


def test_an_expired_mute_no_longer_applies(world, api_as):
    RoomMute.objects.create(room=world.public, user=world.member, until=timezone.now() - timedelta(seconds=1))
    assert api_as(world.member).post(url("public-room"), {"text": "hi"}, format="json").status_code == 201


def test_send_while_banned_is_403_banned(world, api_as):
    RoomBan.objects.create(room=world.public, user=world.outsider)
    add_member(world.public, world.outsider)
    assert_error(api_as(world.outsider).post(url("public-room"), {"text": "hi"}, format="json"), 403, "banned")


def test_send_too_fast_is_429_rate_limited(world, api_as, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 2
    user = UserFactory()  # a fresh user id: a fresh rate-limit bucket
    add_member(world.public, user)
    client = api_as(user)
    statuses = [client.post(url("public-room"), {"text": f"m{n}"}, format="json").status_code for n in range(2)]
    assert statuses == [201, 201]

    before = db_state()
    body = assert_error(client.post(url("public-room"), {"text": "m3"}, format="json"), 429, "rate_limited")
    assert "too fast" in body["error"]
    assert db_state() == before


def test_slow_mode_limits_members_but_not_moderators(world, api_as):
    Room.objects.filter(pk="public-room").update(slow_mode_seconds=60)
    newcomer = UserFactory()  # the world's member posted a moment ago: already slowed
    add_member(world.public, newcomer)
    member, owner = api_as(newcomer), api_as(world.owner)
    assert member.post(url("public-room"), {"text": "one"}, format="json").status_code == 201
    assert_error(member.post(url("public-room"), {"text": "two"}, format="json"), 429, "rate_limited")
    assert owner.post(url("public-room"), {"text": "one"}, format="json").status_code == 201
    assert owner.post(url("public-room"), {"text": "two"}, format="json").status_code == 201


# --- PATCH (edit) -------------------------------------------------------------------

EDIT_MATRIX = {
    # persona: (public room, private room). Only the author (the member) edits.
    "owner": (403, 403),
    "member": (200, 200),
    "outsider": (403, 403),
    "anonymous": (401, 401),
    "staff": (403, 403),
}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(EDIT_MATRIX))
def test_edit_permission_matrix(world, client_of, broadcasts, persona, visibility):
    message = world.message(visibility)
    expected = EDIT_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).patch(url(message.room_id, message.pk), {"text": "edited"}, format="json")

    assert answer.status_code == expected, answer.content
    message.refresh_from_db()
    if expected == 200:
        assert answer.json()["text"] == "edited"
        assert answer.json()["editedAt"] is not None
        assert message.text == "edited"
    else:
        assert db_state() == before


def test_edit_broadcasts_message_updated_after_commit(world, api_as, broadcasts, django_capture_on_commit_callbacks):
    message = world.public_message
    with django_capture_on_commit_callbacks(execute=True):
        api_as(world.member).patch(url("public-room", message.pk), {"text": " new text "}, format="json")
    [sent] = broadcasts.of("chat:message-updated")
    assert sent.to == "room:public-room"
    assert (sent.data["id"], sent.data["text"]) == (str(message.pk), "new text")


def test_edit_after_the_window_is_403(world, api_as, settings):
    settings.CHAT_EDIT_WINDOW_SECONDS = 60
    Message.objects.filter(pk=world.public_message.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    before = db_state()
    answer = api_as(world.member).patch(url("public-room", world.public_message.pk), {"text": "late"}, format="json")
    body = assert_error(answer, 403, "forbidden")
    assert "edit window" in body["error"]
    assert db_state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "text"), ({"text": ""}, "text"), ({"text": 5}, "text"), ({"text": "y" * 5001}, "text")],
)
def test_edit_bad_input_is_400(world, api_as, body, field):
    before = db_state()
    answer = api_as(world.member).patch(url("public-room", world.public_message.pk), body, format="json")
    assert_error(answer, 400, "invalid", field=field)
    assert db_state() == before


@pytest.mark.parametrize("message_id", ["999999999", "abc", "0", "-1", "9" * 40])
def test_edit_or_delete_unknown_message_is_404(world, api_as, message_id):
    client = api_as(world.member)
    assert_error(client.patch(url("public-room", message_id), {"text": "x"}, format="json"), 404, "not_found")
    assert_error(client.delete(url("public-room", message_id)), 404, "not_found")


def test_a_message_is_not_found_through_another_room(world, api_as):
    # the member may see both rooms, but the private message is not in the public room
    before = db_state()
    answer = api_as(world.member).delete(url("public-room", world.private_message.pk))
    assert_error(answer, 404, "not_found")
    assert db_state() == before


def test_a_deleted_message_cannot_be_edited(world, api_as):
    client = api_as(world.member)
    assert client.delete(url("public-room", world.public_message.pk)).status_code == 204
    assert_error(
        client.patch(url("public-room", world.public_message.pk), {"text": "x"}, format="json"), 404, "not_found"
    )


# --- DELETE -----------------------------------------------------------------------

DELETE_MATRIX = {
    # persona: (public room, private room). The author (member) or a moderator.
    "owner": (204, 204),
    "member": (204, 204),
    "outsider": (403, 403),
    "anonymous": (401, 401),
    "staff": (204, 403),  # staff moderate what they can see
}


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("persona", list(DELETE_MATRIX))
def test_delete_permission_matrix(world, client_of, broadcasts, persona, visibility):
    message = world.message(visibility)
    expected = DELETE_MATRIX[persona][0 if visibility == "public" else 1]
    before = db_state()

    answer = client_of(persona).delete(url(message.room_id, message.pk))

    assert answer.status_code == expected, answer.content
    message.refresh_from_db()
    if expected == 204:
        assert message.deleted_at is not None
        assert Message.objects.filter(pk=message.pk).exists()  # soft: the seq keeps no hole
    else:
        assert db_state() == before


def test_delete_broadcasts_and_hides_the_text(world, api_as, broadcasts, django_capture_on_commit_callbacks):
    message = world.public_message
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(world.owner).delete(url("public-room", message.pk)).status_code == 204
    [sent] = broadcasts.of("chat:message-deleted")
    assert sent.data == {"roomId": "public-room", "messageId": str(message.pk)}
    [listed] = api_as(world.member).get(url("public-room")).json()["messages"]
    assert listed["text"] == ""
    assert listed["deletedAt"] is not None


def test_delete_twice_is_idempotent(world, api_as, broadcasts, django_capture_on_commit_callbacks):
    client = api_as(world.member)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(url("public-room", world.public_message.pk)).status_code == 204
        assert client.delete(url("public-room", world.public_message.pk)).status_code == 204
    assert len(broadcasts.of("chat:message-deleted")) == 1


def test_a_moderator_role_deletes_others_messages(world, api_as):
    moderator = UserFactory()
    add_member(world.private, moderator, Membership.Role.MODERATOR)
    assert api_as(moderator).delete(url("private-room", world.private_message.pk)).status_code == 204


def test_edit_broadcasts_read_count_and_at_most_20_readers(
    world, api_as, broadcasts, django_capture_on_commit_callbacks
):
    # given 25 members have read the member's message
    message = world.public_message
    readers = [UserFactory() for _ in range(25)]
    ReadReceipt.objects.bulk_create(
        [ReadReceipt(user=u, room=world.public, last_read_message=message) for u in readers]
    )
    read_positions.rebuild([world.public.pk])  # bulk_create sends no signals

    # when the author edits it
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_as(world.member).patch(url("public-room", message.pk), {"text": "edited"}, format="json")

    # then the answer and chat:message-updated count all 26 readers and list 20
    [sent] = broadcasts.of("chat:message-updated")
    for payload in (answer.json(), sent.data):
        assert payload["readCount"] == 26
        assert payload["readBy"] == [str(world.member.pk)] + [str(u.pk) for u in readers[:19]]
