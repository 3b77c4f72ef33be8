"""chat.services: mutes, room bans, site bans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, RoomBan, RoomMute, SiteBan
from tests.factories import RoomFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def room():
    return RoomFactory(id="room")


@pytest.fixture
def owner(room):
    user = UserFactory()
    add_member(room, user, Membership.Role.OWNER)
    return user


def test_mute_records_until_and_refuses_the_past(room, owner):
    user = UserFactory()
    until = timezone.now() + timedelta(hours=1)
    mute = services.mute_create(moderator=owner, room=room, user=user, until=until, reason="spam")
    assert (mute.user, mute.until, mute.reason, mute.created_by) == (user, until, "spam", owner)

    with pytest.raises(ChatError) as error:
        services.mute_create(moderator=owner, room=room, user=user, until=timezone.now() - timedelta(seconds=1))
    assert error.value.code == ErrorCode.INVALID
    assert RoomMute.objects.count() == 1


@pytest.mark.parametrize("role", [Membership.Role.OWNER, Membership.Role.MODERATOR])
def test_moderators_cannot_mute_or_ban_each_other(room, owner, role):
    other = UserFactory()
    add_member(room, other, role)
    for attempt in (
        lambda: services.mute_create(moderator=owner, room=room, user=other, until=timezone.now() + timedelta(hours=1)),
        lambda: services.ban_create(moderator=owner, room=room, user=other),
    ):
        with pytest.raises(ChatError) as error:
            attempt()
        assert error.value.code == ErrorCode.FORBIDDEN
    assert not RoomMute.objects.exists()
    assert not RoomBan.objects.exists()
    assert Membership.objects.filter(room=room, user=other).exists()


def test_ban_removes_the_membership_and_is_idempotent(room, owner, broadcasts, django_capture_on_commit_callbacks):
    user = UserFactory()
    add_member(room, user)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.ban_create(moderator=owner, room=room, user=user, reason="abuse")
    again = services.ban_create(moderator=owner, room=room, user=user, reason="again")

    assert first.pk == again.pk
    assert again.reason == "abuse"
    assert not Membership.objects.filter(room=room, user=user).exists()
    assert [s.to for s in broadcasts.of("room:banned")] == [f"user:{user.pk}"]


def test_site_ban_deactivates_and_closes_sockets(broadcasts, django_capture_on_commit_callbacks):
    staff, user = UserFactory(is_staff=True), UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        ban = services.site_ban_create(moderator=staff, user=user, reason="spam")
    user.refresh_from_db()
    assert not user.is_active
    assert (ban.user, ban.created_by, ban.reason) == (user, staff, "spam")
    assert [s.to for s in broadcasts.of("sockets:closed")] == [f"user:{user.pk}"]


@pytest.mark.parametrize(("target", "code"), [("self", ErrorCode.INVALID), ("staff", ErrorCode.FORBIDDEN)])
def test_site_ban_refuses_yourself_and_staff(target, code):
    staff = UserFactory(is_staff=True)
    user = staff if target == "self" else UserFactory(is_staff=True)
    with pytest.raises(ChatError) as error:
        services.site_ban_create(moderator=staff, user=user)
    assert error.value.code == code
    user.refresh_from_db()
    assert user.is_active
    assert not SiteBan.objects.exists()
