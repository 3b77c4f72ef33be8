"""Who may do what. Every permission-checked fetch is `access_<entity>`.

Private and direct rooms answer `forbidden` to non-members on every path, so
their existence is the only thing an outsider learns; unknown ids `not_found`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from chat import refusals
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, Message, Room, RoomBan, RoomMute

AnyUser = User | AnonymousUser

MODERATOR_ROLES = (Membership.Role.OWNER, Membership.Role.MODERATOR)

# The words of the refusals live in chat/refusals.py, shared with
# chat/message_writer.py, which checks the same rules in SQL.
BANNED_MESSAGE = refusals.BANNED_MESSAGE
PRIVATE_MESSAGE = refusals.PRIVATE_MESSAGE
NOT_MEMBER_MESSAGE = refusals.NOT_MEMBER_MESSAGE
NOT_MEMBER_READ_MESSAGE = refusals.NOT_MEMBER_READ_MESSAGE


def _room(room_id: str, user: AnyUser) -> Room:
    """The room, annotated with the user's standing in it (member, banned,
    muted until): one query for every check below, as sending is the hot path."""
    rooms = Room.objects.filter(pk=room_id)
    if isinstance(user, User):
        active_mutes = RoomMute.objects.filter(room=OuterRef("pk"), user=user, until__gt=timezone.now())
        rooms = rooms.annotate(
            viewer_is_member=Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)),
            viewer_is_banned=Exists(RoomBan.objects.filter(room=OuterRef("pk"), user=user)),
            viewer_muted_until=Subquery(active_mutes.order_by("-until").values("until")[:1]),
        )
    room = rooms.first()
    if room is None:
        raise refusals.room_not_found(room_id)
    return room


def _standing(room: Room, name: str) -> Any:
    return getattr(room, f"viewer_{name}", None)


def membership_of(user: AnyUser, room: Room) -> Membership | None:
    if not isinstance(user, User):
        return None
    return Membership.objects.filter(user=user, room=room).first()


def is_room_moderator(user: AnyUser, room: Room, membership: Membership | None = None) -> bool:
    """Room owners and moderators, and site staff, moderate a room."""
    if not user.is_authenticated:
        return False
    if getattr(user, "is_staff", False):
        return True
    membership = membership if membership is not None else membership_of(user, room)
    return membership is not None and membership.role in MODERATOR_ROLES


def access_room(user: AnyUser, room_id: str) -> Room:
    """A room the user may read: public rooms, or private/direct rooms they belong to."""
    room = _room(room_id, user)
    # The ban first: a ban also ends the membership, so a banned user of a
    # private room would otherwise hear `forbidden`, not why.
    if _standing(room, "is_banned"):
        raise refusals.banned()
    if room.visibility != Room.Visibility.PUBLIC and not _standing(room, "is_member"):
        raise refusals.private_room()
    return room


def access_room_for_join(user: AnyUser, room_id: str) -> Room:
    """As access_room; joining a public room makes the user a member (see room_join)."""
    return access_room(user, room_id)


def access_room_for_send(user: User, room_id: str) -> Room:
    """A room the user is a member of and may currently write to."""
    room = access_room(user, room_id)
    if not _standing(room, "is_member"):
        raise refusals.not_a_member()
    muted_until = _standing(room, "muted_until")
    if muted_until is not None:
        raise muted_error(muted_until)
    return room


def access_room_for_read(user: AnyUser, room_id: str) -> Room:
    """A room the user is a member of, to move their read watermark: a receipt
    goes to the whole room, so a visitor of a public room may not send one."""
    room = access_room(user, room_id)
    if not _standing(room, "is_member"):
        raise ChatError(ErrorCode.FORBIDDEN, NOT_MEMBER_READ_MESSAGE)
    return room


def muted_error(until: datetime) -> ChatError:
    return refusals.muted(until)


def access_room_for_moderation(user: AnyUser, room_id: str) -> Room:
    room = access_room(user, room_id)
    if not is_room_moderator(user, room):
        raise ChatError(ErrorCode.FORBIDDEN, "Only the room's owners and moderators may do this")
    return room


def access_message(user: AnyUser, room: Room, message_id: int) -> Message:
    """A message of a room the caller has already been given access to."""
    try:
        return Message.objects.select_related("author", "reply_to__author").get(pk=message_id, room=room)
    except Message.DoesNotExist:
        raise ChatError(ErrorCode.NOT_FOUND, f"Message {message_id} does not exist in this room") from None


def access_site_moderation(user: AnyUser) -> User:
    """Site moderators are staff accounts."""
    if not isinstance(user, User) or not user.is_staff:
        raise ChatError(ErrorCode.FORBIDDEN, "Only site moderators may do this")
    return user


def access_user(username: str, *, field: str = "username", include_inactive: bool = False) -> User:
    """The user a request names. Deactivated (site-banned) accounts are unknown
    unless `include_inactive`: nobody starts a chat with them."""
    users = User.objects.filter(username=username)
    if not include_inactive:
        users = users.filter(is_active=True)
    user = users.first()
    if user is None:
        raise ChatError(ErrorCode.NOT_FOUND, f"User {username!r} does not exist", fields={field: ["unknown user"]})
    return user


def access_users(usernames: list[str], *, field: str = "members") -> list[User]:
    """Every named active user, in one query; any unknown name is `invalid`."""
    found = {u.username: u for u in User.objects.filter(username__in=set(usernames), is_active=True)}
    missing = sorted(set(usernames) - found.keys())
    if missing:
        raise ChatError(
            ErrorCode.INVALID,
            f"Unknown users: {', '.join(missing)}",
            fields={field: [f"unknown user {name!r}" for name in missing]},
        )
    return [found[name] for name in dict.fromkeys(usernames)]
