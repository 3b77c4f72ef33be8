"""The moderators' admin: pages render, actions go through the services, and
list pages cost the same number of queries however many rows they show."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat import services
from chat.models import Membership, Message, ReadReceipt, Room, RoomBan, RoomMute, SiteBan
from presence.models import LastSeen
from tests.chat.services.conftest import _fast_password_hashing, broadcasts
from tests.factories import RoomFactory, UserFactory, add_member, post

__all__ = ["_fast_password_hashing", "broadcasts"]

pytestmark = pytest.mark.django_db

MODELS = [Room, Membership, Message, ReadReceipt, RoomMute, RoomBan, SiteBan]


def changelist(model):
    return reverse(f"admin:chat_{model._meta.model_name}_changelist")


def populate(rows):
    """`rows` rooms, each with a member, a message, a receipt, a mute and a ban."""
    owner = UserFactory()
    for n in range(rows):
        room = RoomFactory(id=f"adm-{n:03d}", created_by=owner)
        member, muted, banned = UserFactory(), UserFactory(), UserFactory()
        add_member(room, member)
        message = post(room, member, f"message {n}")
        post(room, member, f"reply {n}", reply_to=message)
        ReadReceipt.objects.create(user=owner, room=room, last_read_message=message)
        RoomMute.objects.create(room=room, user=muted, until=timezone.now() + timedelta(hours=1), created_by=owner)
        RoomBan.objects.create(room=room, user=banned, created_by=owner)
        SiteBan.objects.create(user=UserFactory(is_active=False), created_by=owner)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelists_render_for_a_superuser(admin_client, model):
    populate(2)
    answer = admin_client.get(changelist(model))
    assert answer.status_code == 200
    assert answer.context["cl"].result_count == model.objects.count()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelists_do_not_query_per_row(admin_client, model):
    # given a few rows, count the queries of the page
    populate(2)
    admin_client.get(changelist(model))  # warm the caches (content types, permissions)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(changelist(model)).status_code == 200

    # then twelve times the rows cost no more queries
    populate_more = 22
    for n in range(2, populate_more):
        _more(n)
    with CaptureQueriesContext(connection) as many:
        answer = admin_client.get(changelist(model))
    assert answer.context["cl"].result_count >= 10
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def _more(n):
    owner = UserFactory()
    room = RoomFactory(id=f"more-{n:03d}", created_by=owner)
    member = UserFactory()
    add_member(room, member)
    message = post(room, member, f"more {n}")
    post(room, member, f"more reply {n}", reply_to=message)
    ReadReceipt.objects.create(user=owner, room=room, last_read_message=message)
    RoomMute.objects.create(room=room, user=member, until=timezone.now() + timedelta(hours=1), created_by=owner)
    RoomBan.objects.create(room=room, user=UserFactory(), created_by=owner)
    SiteBan.objects.create(user=UserFactory(is_active=False), created_by=owner)


def test_message_changelist_stays_within_a_small_query_budget(admin_client, django_assert_max_num_queries):
    populate(30)
    # session, user, the page, the room and author filters, the date hierarchy
    with django_assert_max_num_queries(12):
        assert admin_client.get(changelist(Message)).status_code == 200


def test_room_change_page_shows_memberships_mutes_and_bans_in_constant_queries(admin_client):
    room = RoomFactory(id="busy")
    add_member(room, UserFactory(username="first-member"))
    url = reverse("admin:chat_room_change", args=["busy"])
    admin_client.get(url)  # warm the caches (content types, permissions)
    with CaptureQueriesContext(connection) as few:
        answer = admin_client.get(url)
    assert answer.status_code == 200
    assert "first-member" in answer.content.decode()

    for _ in range(20):
        add_member(room, UserFactory())
    RoomBan.objects.create(room=room, user=UserFactory(username="the-banned"))
    RoomMute.objects.create(
        room=room, user=UserFactory(username="the-muted"), until=timezone.now() + timedelta(hours=1)
    )
    with CaptureQueriesContext(connection) as many:
        answer = admin_client.get(url)
    html = answer.content.decode()
    assert "the-banned" in html
    assert "the-muted" in html
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


@pytest.mark.parametrize("model", [Room, Membership, RoomMute, RoomBan, SiteBan], ids=lambda m: m.__name__)
def test_add_pages_render(admin_client, model):
    assert admin_client.get(reverse(f"admin:chat_{model._meta.model_name}_add")).status_code == 200


def test_messages_cannot_be_added_or_bulk_hard_deleted(admin_client):
    room, user = RoomFactory(), UserFactory()
    message = post(room, user, "keep the seq whole")
    assert admin_client.get(reverse("admin:chat_message_add")).status_code == 403
    answer = admin_client.get(changelist(Message))
    assert "delete_selected" not in answer.content.decode()
    assert "soft_delete" in answer.content.decode()
    assert admin_client.get(reverse("admin:chat_message_change", args=[message.pk])).status_code == 200


def test_soft_delete_action_goes_through_the_service_and_is_broadcast(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    room, user = RoomFactory(id="live"), UserFactory()
    doomed = [post(room, user, "spam 1"), post(room, user, "spam 2")]
    kept = post(room, user, "fine")

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            changelist(Message),
            {"action": "soft_delete", "_selected_action": [m.pk for m in doomed]},
            follow=True,
        )

    assert answer.status_code == 200
    assert "2 message(s) deleted" in answer.content.decode()
    assert Message.objects.filter(deleted_at__isnull=False).count() == 2
    assert Message.objects.count() == 3  # soft: rows stay
    kept.refresh_from_db()
    assert kept.deleted_at is None
    assert sorted(s.data["messageId"] for s in broadcasts.of("chat:message-deleted")) == sorted(
        str(m.pk) for m in doomed
    )


def test_read_receipts_are_read_only(admin_client):
    room, user = RoomFactory(), UserFactory()
    message = post(room, user)
    receipt = ReadReceipt.objects.create(user=user, room=room, last_read_message=message)
    url = reverse("admin:chat_readreceipt_change", args=[receipt.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"last_read_message": ""}).status_code == 403
    assert admin_client.get(reverse("admin:chat_readreceipt_add")).status_code == 403
    receipt.refresh_from_db()
    assert receipt.last_read_message_id == message.pk


def test_a_ban_added_in_the_admin_removes_the_member_live(
    admin_client, admin_user, broadcasts, django_capture_on_commit_callbacks
):
    room, user = RoomFactory(id="banroom"), UserFactory()
    add_member(room, user)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            reverse("admin:chat_roomban_add"), {"room": "banroom", "user": user.pk, "reason": "abuse"}, follow=True
        )
    assert answer.status_code == 200
    ban = RoomBan.objects.get(room=room, user=user)
    assert (ban.reason, ban.created_by) == ("abuse", admin_user)
    assert not Membership.objects.filter(room=room, user=user).exists()
    assert [s.to for s in broadcasts.of("room:banned")] == [f"user:{user.pk}"]


def test_a_ban_the_service_refuses_writes_nothing_and_says_why(admin_client):
    room, moderator = RoomFactory(id="modroom"), UserFactory()
    add_member(room, moderator, Membership.Role.MODERATOR)
    answer = admin_client.post(
        reverse("admin:chat_roomban_add"), {"room": "modroom", "user": moderator.pk, "reason": ""}, follow=True
    )
    assert answer.status_code == 200
    assert "cannot be muted or banned" in answer.content.decode()
    assert not RoomBan.objects.exists()
    assert Membership.objects.filter(room=room, user=moderator).exists()


def test_a_site_ban_added_in_the_admin_deactivates_the_user(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:chat_siteban_add"), {"user": user.pk, "reason": "spam"}, follow=True)
    user.refresh_from_db()
    assert not user.is_active
    assert SiteBan.objects.filter(user=user).count() == 1
    assert [s.to for s in broadcasts.of("sockets:closed")] == [f"user:{user.pk}"]


def test_room_change_does_not_write_back_a_stale_seq_counter(admin_client):
    # given a room whose counter moved after the admin's form was built
    room = RoomFactory(id="counter")
    url = reverse("admin:chat_room_change", args=["counter"])
    form = admin_client.get(url).context["adminform"].form
    post(room, UserFactory())
    data = {name: form.initial.get(name) or "" for name in form.fields}
    data.update({"name": "Renamed", "visibility": "public", "slow_mode_seconds": 0})
    for prefix in ("memberships", "mutes", "bans"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})

    answer = admin_client.post(url, data)

    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    room.refresh_from_db()
    assert (room.name, room.last_seq) == ("Renamed", 1)


def test_rooms_added_in_the_admin_cannot_take_reserved_ids(admin_client):
    data = {"id": "dm-1-2", "name": "Sneaky", "topic": "", "visibility": "public", "slow_mode_seconds": 0}
    for prefix in ("memberships", "mutes", "bans"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    answer = admin_client.post(reverse("admin:chat_room_add"), data)
    assert answer.status_code == 200
    assert "reserved" in str(answer.context["adminform"].form.errors["id"])
    assert not Room.objects.filter(pk="dm-1-2").exists()

    data["id"] = "fine"
    assert admin_client.post(reverse("admin:chat_room_add"), data).status_code == 302
    assert Room.objects.get(pk="fine").name == "Sneaky"


def _room_change_data(admin_client, room_id, **changes):
    form = admin_client.get(reverse("admin:chat_room_change", args=[room_id])).context["adminform"].form
    data = {name: form.initial.get(name) or "" for name in form.fields}
    data.update(changes)
    for prefix in ("memberships", "mutes", "bans"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return data


def test_removing_a_member_in_the_room_page_takes_them_out_live(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    # given a private room with a member
    room, user = RoomFactory(id="secret", visibility=Room.Visibility.PRIVATE), UserFactory()
    membership = add_member(room, user)
    data = _room_change_data(admin_client, "secret", slow_mode_seconds=0)
    data.update(
        {
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 1,
            "memberships-0-id": membership.pk,
            "memberships-0-room": "secret",
            "memberships-0-role": "member",
            "memberships-0-DELETE": "on",
        }
    )
    # when a moderator deletes the membership row in the inline
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(reverse("admin:chat_room_change", args=["secret"]), data)
    # then the membership is gone and the user's sockets are told and moved out
    assert answer.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert [s.to for s in broadcasts.of("room:removed")] == [f"user:{user.pk}"]


def test_deleting_a_membership_in_its_own_admin_goes_through_the_service(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    room, user = RoomFactory(id="priv2", visibility=Room.Visibility.PRIVATE), UserFactory()
    membership = add_member(room, user)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:chat_membership_delete", args=[membership.pk]), {"post": "yes"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert [s.to for s in broadcasts.of("room:removed")] == [f"user:{user.pk}"]


def test_renaming_a_room_in_the_admin_is_broadcast(admin_client, broadcasts, django_capture_on_commit_callbacks):
    RoomFactory(id="named")
    data = _room_change_data(admin_client, "named", name="New name", slow_mode_seconds=0)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(reverse("admin:chat_room_change", args=["named"]), data).status_code == 302
    [updated] = broadcasts.of("room:updated")
    assert updated.data["name"] == "New name"


def test_visibility_is_fixed_once_a_room_exists_and_direct_is_never_offered(admin_client):
    RoomFactory(id="shut", visibility=Room.Visibility.PRIVATE)
    data = _room_change_data(admin_client, "shut", visibility="public", slow_mode_seconds=0)
    admin_client.post(reverse("admin:chat_room_change", args=["shut"]), data)
    assert Room.objects.get(pk="shut").visibility == "private"
    add_form = admin_client.get(reverse("admin:chat_room_add")).context["adminform"].form
    assert "direct" not in [value for value, _ in add_form.fields["visibility"].choices]


# --- no hard deletes (issue 9.7) ---------------------------------------------------


def test_a_message_has_no_delete_page_in_the_admin(admin_client):
    room, user = RoomFactory(), UserFactory()
    message = post(room, user, "keep the seq whole")
    url = reverse("admin:chat_message_delete", args=[message.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist_page = admin_client.get(changelist(Message))
    assert list(changelist_page.context["action_form"].fields["action"].choices)[1:] == [
        ("soft_delete", "Soft delete the selected messages (clients are told at once)")
    ]
    # the action list cannot be bypassed by posting the action's name
    admin_client.post(
        changelist(Message), {"action": "delete_selected", "_selected_action": [message.pk], "post": "yes"}
    )
    assert Message.objects.filter(pk=message.pk).exists()


def _room_with_history():
    room, owner, member = RoomFactory(id="history"), UserFactory(), UserFactory()
    add_member(room, owner, Membership.Role.OWNER)
    add_member(room, member)
    first = post(room, member, "first")
    post(room, owner, "second", reply_to=first)
    ReadReceipt.objects.create(user=owner, room=room, last_read_message=first)
    return room, owner, member


def test_deleting_a_room_in_the_admin_is_a_soft_delete(admin_client, broadcasts, django_capture_on_commit_callbacks):
    room, owner, member = _room_with_history()
    url = reverse("admin:chat_room_delete", args=[room.pk])

    # the confirmation lists the room only, and the admin may confirm
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"] and not confirm.context["protected"]
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url, {"post": "yes"}).status_code == 302

    # the room is gone for every path, its messages and members stay
    assert not Room.objects.filter(pk=room.pk).exists()
    assert Room.all_objects.get(pk=room.pk).deleted_at is not None
    assert Message.objects.filter(room_id=room.pk).count() == 2
    assert broadcasts.events()[0] == "room:closed"
    assert sorted(s.to for s in broadcasts.of("room:deleted")) == sorted([f"user:{owner.pk}", f"user:{member.pk}"])


def test_the_rooms_delete_action_is_a_soft_delete_and_deleted_rooms_can_be_found_and_restored(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    room, _owner, _member = _room_with_history()
    kept = RoomFactory(id="kept")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(changelist(Room), {"action": "delete_selected", "_selected_action": [room.pk], "post": "yes"})
    assert Message.objects.filter(room_id=room.pk).count() == 2
    assert list(Room.objects.values_list("pk", flat=True)) == [kept.pk]

    # the changelist shows deleted rooms, and filters them
    listed = admin_client.get(changelist(Room), {"deleted_at__isnull": "False"})
    assert [r.pk for r in listed.context["cl"].result_list] == [room.pk]
    assert admin_client.get(reverse("admin:chat_room_change", args=[room.pk])).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(changelist(Room), {"action": "restore", "_selected_action": [room.pk]})
    assert Room.objects.filter(pk=room.pk).exists()


def test_deleting_a_user_in_the_admin_keeps_their_messages(admin_client):
    # given a user with messages, a reply to them, a read watermark and a last-seen time
    room, _owner, member = _room_with_history()
    ReadReceipt.objects.create(user=member, room=room, last_read_message=Message.objects.get(room=room, seq=2))
    LastSeen.objects.create(user=member, at=timezone.now())
    url = reverse("admin:auth_user_delete", args=[member.pk])

    # the confirmation is allowed (receipts and last-seen rows go with the user)
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"], confirm.context["perms_lacking"]
    assert admin_client.post(url, {"post": "yes"}).status_code == 302

    # then the user is gone and their message stays, without an author
    assert not User.objects.filter(pk=member.pk).exists()
    first = Message.objects.get(room=room, seq=1)
    assert (first.author_id, first.text) == (None, "first")
    assert Message.objects.get(room=room, seq=2).reply_to_id == first.pk
    assert not Membership.objects.filter(user_id=member.pk).exists()
    changelist_page = admin_client.get(changelist(Message))
    assert "Deleted user" in changelist_page.content.decode()


def test_read_receipts_have_no_delete_page_of_their_own(admin_client):
    room, user = RoomFactory(), UserFactory()
    receipt = ReadReceipt.objects.create(user=user, room=room, last_read_message=post(room, user))
    assert admin_client.get(reverse("admin:chat_readreceipt_delete", args=[receipt.pk])).status_code == 403
    assert "delete_selected" not in admin_client.get(changelist(ReadReceipt)).content.decode()
    assert ReadReceipt.objects.filter(pk=receipt.pk).exists()


def test_a_room_added_in_the_admin_cannot_take_a_deleted_rooms_id(
    admin_client, broadcasts, django_capture_on_commit_callbacks
):
    # given a deleted room with history
    room, _owner, _member = _room_with_history()
    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=room)

    # when an admin adds a room with its id, the form refuses
    data = {"id": room.pk, "name": "Impostor", "topic": "", "visibility": "public", "slow_mode_seconds": 0}
    for prefix in ("memberships", "mutes", "bans"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    answer = admin_client.post(reverse("admin:chat_room_add"), data)
    assert answer.status_code == 200
    assert "deleted room" in str(answer.context["adminform"].form.errors["id"])

    # and the deleted room is untouched (still deleted, its seq counter kept)
    kept = Room.all_objects.get(pk=room.pk)
    assert (kept.name, kept.last_seq, kept.deleted_at is not None) == (room.name, 2, True)
