"""Writes. Each service runs in one transaction and broadcasts only after commit,
so no client ever sees what the database does not have."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from chat import broadcast, refusals
from chat.access import is_room_moderator, membership_of
from chat.errors import ChatError, ErrorCode
from chat.models import Membership, Message, ReadReceipt, Room, RoomBan, RoomMute, SiteBan
from chat.ratelimit import rate_limit_hit
from chat.selectors import message_get_by_client_id, read_by_for

# --- Rooms --------------------------------------------------------------------

logger = logging.getLogger(__name__)


# Ids the REST routes or the direct rooms need for themselves:
# `/api/rooms/direct/` is a route, and `dm-<id>-<id>` is how 1:1 rooms are named.
RESERVED_ROOM_IDS = frozenset({"direct"})
DIRECT_ROOM_PREFIX = "dm-"


def room_id_is_reserved(room_id: str) -> bool:
    return room_id in RESERVED_ROOM_IDS or room_id.startswith(DIRECT_ROOM_PREFIX)


def _room_id_from_name(name: str) -> str:
    """A free, valid room id derived from a room name (`Team Chat` -> `team-chat`,
    then `team-chat-2`, ...). The caller still relies on the primary key to
    settle a race for the same id."""
    base = slugify(name)[:56].strip("-_") or "room"
    if room_id_is_reserved(base):
        base = f"room-{base}"[:56].strip("-_")
    return _first_free_room_id(base)


def _first_free_room_id(base: str) -> str:
    """`base`, or `base-2`, `base-3`, ...: the first id no room holds. Deleted
    rooms keep their ids (their messages still point at them)."""
    taken = set(Room.all_objects.filter(pk__startswith=base).values_list("pk", flat=True))
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def room_create(
    *,
    creator: User,
    room_id: str | None,
    name: str,
    visibility: str = Room.Visibility.PUBLIC,
    topic: str = "",
    members: list[User] | None = None,
) -> Room:
    """Create a public or private room; the creator becomes its owner.

    `room_id` None derives a free id from the name. An explicit id that is
    taken, or reserved (see RESERVED_ROOM_IDS), is `invalid`.
    """
    if room_id is not None:
        if room_id_is_reserved(room_id):
            raise ChatError(ErrorCode.INVALID, f"The room id {room_id!r} is reserved", fields={"id": ["reserved"]})
        if Room.all_objects.filter(pk=room_id).exists():
            raise _room_id_taken(room_id)
    attempts = 3
    for attempt in range(attempts):
        new_id = room_id if room_id is not None else _room_id_from_name(name)
        try:
            with transaction.atomic():
                room = Room.objects.create(id=new_id, name=name, topic=topic, visibility=visibility, created_by=creator)
                Membership.objects.create(user=creator, room=room, role=Membership.Role.OWNER)
                others = {u.pk: u for u in members or [] if u.pk != creator.pk}
                Membership.objects.bulk_create([Membership(user=u, room=room) for u in others.values()])
                transaction.on_commit(functools.partial(broadcast.room_added, room=room, user_ids=list(others)))
                for member in others.values():
                    transaction.on_commit(
                        functools.partial(_co_membership_changed, user=member, room_id=room.pk, joined=True)
                    )
        except IntegrityError:
            # Another request took the id between the check and the insert; a
            # derived id is derived again, an explicit one is taken.
            if room_id is not None or attempt == attempts - 1:
                raise _room_id_taken(new_id) from None
            continue
        return room
    raise AssertionError("unreachable")


def _co_membership_changed(*, user: User, room_id: str, joined: bool) -> None:
    # Presence follows membership: who became (or stopped being) a co-member
    # hears of the other. Late import: presence builds on chat, not the reverse.
    from presence.services import presence_co_membership_changed

    try:
        presence_co_membership_changed(user=user, room_id=room_id, joined=joined)
    except Exception:
        logger.exception(
            "presence update after %s of user %s in %s failed", "join" if joined else "leave", user.pk, room_id
        )


def _room_id_taken(room_id: str) -> ChatError:
    return ChatError(ErrorCode.INVALID, f"A room with id {room_id!r} already exists", fields={"id": ["taken"]})


def _direct_room_id(a: User, b: User) -> tuple[str, str]:
    low, high = sorted([int(a.pk), int(b.pk)])
    return f"{DIRECT_ROOM_PREFIX}{low}-{high}", f"{low}:{high}"


def _free_direct_room_id(room_id: str) -> str:
    """`dm-<low>-<high>`, or `dm-<low>-<high>-<n>` when deleted 1:1 rooms of the
    pair hold the plain id (see room_delete)."""
    return _first_free_room_id(room_id)


def room_get_or_create_direct(*, user: User, other: User) -> tuple[Room, bool]:
    """The one 1:1 room of two users: created once, then always the same.

    After a moderator deleted it, the pair gets a fresh, empty room with a new
    id: what was deleted stays deleted (room_delete frees the pair's key)."""
    if user.pk == other.pk:
        raise ChatError(
            ErrorCode.INVALID, "A direct room needs another user", fields={"username": ["cannot be yourself"]}
        )
    room_id, direct_key = _direct_room_id(user, other)
    existing = Room.objects.filter(direct_key=direct_key).first()
    if existing is not None:
        return existing, False
    room_id = _free_direct_room_id(room_id)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                id=room_id,
                name=f"{user.get_username()} & {other.get_username()}",
                visibility=Room.Visibility.DIRECT,
                created_by=user,
                direct_key=direct_key,
            )
            Membership.objects.bulk_create(
                [
                    Membership(user=user, room=room, role=Membership.Role.OWNER),
                    Membership(user=other, room=room, role=Membership.Role.OWNER),
                ]
            )
            transaction.on_commit(functools.partial(broadcast.room_added, room=room, user_ids=[other.pk]))
            transaction.on_commit(functools.partial(_co_membership_changed, user=user, room_id=room.pk, joined=True))
    except IntegrityError:
        # Both users opened the chat at the same moment; the other insert won
        # (the same id and key: either constraint may be the one that fired).
        return Room.objects.get(direct_key=direct_key), False
    return room, True


def room_join(*, user: User, room: Room) -> Membership:
    """Make the user a member (access was checked: public room, or already a member)."""
    membership = membership_of(user, room)
    if membership is not None:
        return membership
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, room=room)
            transaction.on_commit(lambda: broadcast.user_joined_room(user=user, room_id=room.pk))
            transaction.on_commit(functools.partial(_co_membership_changed, user=user, room_id=room.pk, joined=True))
    except IntegrityError:
        # Two tabs joined at once; one membership is enough.
        return Membership.objects.get(user=user, room=room)
    return membership


def room_leave(*, user: User, room: Room) -> None:
    """A socket of the user stopped following a room's live events (it was in
    the room). Membership stays: leaving a socket room is not quitting the room."""
    broadcast.user_left_room(user=user, room_id=room.pk)


def room_update(
    *,
    room: Room,
    name: str | None = None,
    topic: str | None = None,
    slow_mode_seconds: int | None = None,
) -> Room:
    fields = []
    if name is not None:
        room.name = name
        fields.append("name")
    if topic is not None:
        room.topic = topic
        fields.append("topic")
    if slow_mode_seconds is not None:
        room.slow_mode_seconds = slow_mode_seconds
        fields.append("slow_mode_seconds")
    if fields:
        with transaction.atomic():
            room.save(update_fields=fields)
            transaction.on_commit(lambda: broadcast.room_updated(room))
    return room


# Past this many members, deleting or restoring a room skips the presence
# update of its members: one query per member, and up to two emits per pair
# of online members that share no other room (quadratic; a pair may hear it
# twice, once from each side's update). Their co-member lists then correct
# themselves on the next presence:list, at their next connect.
ROOM_DELETE_PRESENCE_MAX_MEMBERS = 50


def room_delete(*, room: Room) -> bool:
    """Soft delete a room: it answers `not_found` on every path from the commit
    on, its messages stay. Returns False if it was already deleted.

    After the commit, every socket in the room leaves it on every process, then
    each member hears `room:deleted`. Marking first and moving after is the
    order that leaves no gap: a join checked before the commit but entering
    after the move is caught by the join's own check after entering (it sees
    the room gone), and a batch waiting for the room's row lock sees the
    deletion when it gets the lock (chat/message_writer.py).

    A 1:1 room gives up its `direct_key`, so the pair gets a fresh room if they
    open a chat again (room_get_or_create_direct) instead of the deleted one.
    """
    with transaction.atomic():
        # The row lock orders this with the sends: one that holds it commits
        # first (stored, in a room deleted a moment later), one that waits
        # for it then finds the room deleted (not_found).
        row = Room.all_objects.select_for_update().filter(pk=room.pk).values_list("pk", "deleted_at").first()
        if row is None or row[1] is not None:
            return False
        now = timezone.now()
        Room.all_objects.filter(pk=room.pk).update(deleted_at=now, direct_key=None)
        member_ids = [int(pk) for pk in Membership.objects.filter(room_id=room.pk).values_list("user_id", flat=True)]
        transaction.on_commit(functools.partial(broadcast.room_deleted, room_id=room.pk, user_ids=member_ids))
        transaction.on_commit(functools.partial(_co_members_changed, room_id=room.pk, joined=False))
    room.deleted_at = now
    room.direct_key = None
    return True


def room_restore(*, room: Room) -> bool:
    """Undo room_delete for a public or private room; members find it in their
    room lists again (`room:added`). Returns False if it was not deleted.

    A 1:1 room is not restored: the pair may have a fresh room by now, and a
    pair has one room."""
    if room.visibility == Room.Visibility.DIRECT:
        raise ChatError(ErrorCode.INVALID, "A deleted 1:1 room cannot be restored")
    with transaction.atomic():
        restored = Room.all_objects.filter(pk=room.pk, deleted_at__isnull=False).update(deleted_at=None)
        if not restored:
            return False
        member_ids = [int(pk) for pk in Membership.objects.filter(room_id=room.pk).values_list("user_id", flat=True)]
        transaction.on_commit(functools.partial(broadcast.room_added, room=room, user_ids=member_ids))
        transaction.on_commit(functools.partial(_co_members_changed, room_id=room.pk, joined=True))
    room.deleted_at = None
    return True


def _co_members_changed(*, room_id: str, joined: bool) -> None:
    members = list(User.objects.filter(memberships__room_id=room_id)[: ROOM_DELETE_PRESENCE_MAX_MEMBERS + 1])
    if len(members) > ROOM_DELETE_PRESENCE_MAX_MEMBERS:
        return
    for member in members:
        _co_membership_changed(user=member, room_id=room_id, joined=joined)


# --- Messages -----------------------------------------------------------------


NO_REPLY_MESSAGE = refusals.NO_REPLY_MESSAGE


class SendResult(NamedTuple):
    message: Message
    created: bool  # False: a resend of a clientId already stored


def message_send(
    *,
    sender: User,
    room: Room,
    text: str,
    reply_to_id: int | None = None,
    client_id: str | None = None,
) -> SendResult:
    """Store a message exactly once and broadcast it after commit.

    Preconditions: `text` is clean (schemas.clean_text) and the sender may write
    to `room` (access.access_room_for_send). A resend with a stored clientId
    returns the stored message without counting against the rate limit.

    The rules, their order and their refusals (chat/refusals.py) are those of
    chat/message_writer.py's STORE_BATCH; tests/chat/test_send_paths.py holds
    the two to one table. `created_at` is the app's clock (timezone.now), as
    there.
    """
    if client_id is not None:
        existing = message_get_by_client_id(author=sender, client_id=client_id)
        if existing is not None:
            return resend_of(existing, room_id=room.pk)

    reply_to = None
    if reply_to_id is not None:
        reply_to = Message.objects.select_related("author").filter(pk=reply_to_id, room=room).first()
        if reply_to is None:
            raise refusals.no_reply()

    # Charged after the cheap refusals, so a send refused for bad input costs
    # no quota; slow mode is checked under the lock below.
    decision = rate_limit_hit(user_id=int(sender.pk))
    if not decision.allowed:
        raise refusals.rate_limited(decision.retry_after_seconds)

    try:
        with transaction.atomic():
            # The room row lock orders senders: seq and id are assigned and
            # committed in the same order, so neither has holes nor twins.
            locked = Room.objects.select_for_update().only("last_seq", "slow_mode_seconds").filter(pk=room.pk).first()
            if locked is None:
                # Deleted since the access check (the lock waited for room_delete).
                raise ChatError(ErrorCode.NOT_FOUND, f"Room {room.pk!r} does not exist")
            if locked.slow_mode_seconds:
                _check_slow_mode(sender=sender, room=locked)
            # Last, and read now rather than trusted from `sender`: a socket's
            # user was loaded at its handshake, and the account may have been
            # deactivated since. STORE_BATCH checks it at the same point.
            if not User.objects.filter(pk=sender.pk, is_active=True).exists():
                raise refusals.inactive_author()
            locked.last_seq += 1
            locked.save(update_fields=["last_seq"])
            message = Message.objects.create(
                room=room,
                seq=locked.last_seq,
                author=sender,
                text=text,
                reply_to=reply_to,
                client_id=client_id,
            )
            transaction.on_commit(lambda: broadcast.message_created(message))
    except IntegrityError:
        # The same clientId raced in from another socket or process.
        if client_id is None:
            raise
        existing = message_get_by_client_id(author=sender, client_id=client_id)
        if existing is None:
            raise
        return resend_of(existing, room_id=room.pk)
    message.author = sender
    message.reply_to = reply_to
    return SendResult(message, True)


def resend_of(existing: Message, *, room_id: str) -> SendResult:
    """A clientId names one message: a resend into its room gets it back; the
    same clientId in another room is a client bug, refused rather than
    acknowledged with a message that room never had."""
    if existing.room_id != room_id:
        raise refusals.client_id_used_elsewhere()
    return SendResult(existing, False)


def _check_slow_mode(*, sender: User, room: Room) -> None:
    if is_room_moderator(sender, room):
        return
    since = timezone.now() - timedelta(seconds=room.slow_mode_seconds)
    last = Message.objects.filter(room=room, author=sender, created_at__gt=since).order_by("-id").first()
    if last is not None:
        wait = (last.created_at + timedelta(seconds=room.slow_mode_seconds) - timezone.now()).total_seconds()
        raise refusals.slow_mode(wait)


def message_edit(*, editor: User, message: Message, text: str) -> Message:
    """The author may edit inside the edit window (CHAT_EDIT_WINDOW_SECONDS)."""
    if message.author_id != editor.pk:
        raise ChatError(ErrorCode.FORBIDDEN, "Only the author can edit a message")
    if message.deleted_at is not None:
        raise ChatError(ErrorCode.NOT_FOUND, "This message was deleted")
    window = timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS)
    if timezone.now() - message.created_at > window:
        raise ChatError(ErrorCode.FORBIDDEN, "The edit window of this message has passed")
    with transaction.atomic():
        message.text = text
        message.edited_at = timezone.now()
        message.save(update_fields=["text", "edited_at"])
        read = read_by_for([message])[message.pk]
        transaction.on_commit(lambda: broadcast.message_updated(message, read.ids, read_count=read.count))
    return message


def message_delete(*, actor: User, message: Message) -> None:
    """Soft delete by the author or a moderator. The row stays so `seq` keeps no holes."""
    if message.author_id != actor.pk and not is_room_moderator(actor, message.room):
        raise ChatError(ErrorCode.FORBIDDEN, "Only the author or a moderator can delete a message")
    if message.deleted_at is not None:
        return
    messages_soft_delete(messages=[message])


def messages_soft_delete(*, messages: list[Message]) -> int:
    """Soft delete many messages (the admin's action) and tell each room."""
    now = timezone.now()
    alive = [m for m in messages if m.deleted_at is None]
    with transaction.atomic():
        Message.objects.filter(pk__in=[m.pk for m in alive]).update(deleted_at=now)
        for m in alive:
            m.deleted_at = now
            transaction.on_commit(functools.partial(broadcast.message_deleted, room_id=m.room_id, message_id=m.pk))
    return len(alive)


# --- Read receipts ------------------------------------------------------------


def receipt_mark_read(*, user: User, room: Room, message: Message) -> ReadReceipt:
    """Move the user's watermark forward to `message` (never backwards)."""
    with transaction.atomic():
        receipt, _ = ReadReceipt.objects.select_for_update().get_or_create(user=user, room=room)
        if receipt.last_read_message_id is not None and receipt.last_read_message_id >= message.pk:
            return receipt
        receipt.last_read_message = message
        # The save moves the watermark in readCount's histogram too, in this
        # transaction (chat/signals.py, chat/read_positions.py).
        receipt.save(update_fields=["last_read_message", "updated_at"])
        transaction.on_commit(lambda: broadcast.receipt_updated(user=user, room_id=room.pk, message_id=message.pk))
    return receipt


# --- Moderation ---------------------------------------------------------------


def _check_moderation_target(*, room: Room, user: User) -> None:
    # Moderators cannot silence each other or the owner: a moderator's power
    # ends where another moderator's begins (owners change roles in the admin).
    if is_room_moderator(user, room):
        raise ChatError(
            ErrorCode.FORBIDDEN,
            "Owners, moderators and site staff cannot be muted or banned in a room",
            fields={"username": ["moderates this room"]},
        )


def mute_create(*, moderator: User, room: Room, user: User, until: datetime, reason: str = "") -> RoomMute:
    """Precondition: `moderator` moderates `room` (access.access_room_for_moderation)."""
    _check_moderation_target(room=room, user=user)
    if until <= timezone.now():
        raise ChatError(ErrorCode.INVALID, "until must be in the future", fields={"until": ["must be in the future"]})
    return RoomMute.objects.create(room=room, user=user, until=until, reason=reason, created_by=moderator)


def ban_create(*, moderator: User, room: Room, user: User, reason: str = "") -> RoomBan:
    """Remove the user from the room at once, on every process; they cannot rejoin.

    Precondition: `moderator` moderates `room` (access.access_room_for_moderation).
    """
    _check_moderation_target(room=room, user=user)
    with transaction.atomic():
        ban, _ = RoomBan.objects.get_or_create(
            room=room, user=user, defaults={"reason": reason, "created_by": moderator}
        )
        Membership.objects.filter(room=room, user=user).delete()
        transaction.on_commit(lambda: broadcast.user_removed_from_room(user=user, room_id=room.pk, banned=True))
        transaction.on_commit(functools.partial(_co_membership_changed, user=user, room_id=room.pk, joined=False))
    return ban


def membership_remove(*, room: Room, user: User) -> None:
    """Take a member out of a room (the admin's delete): their sockets stop
    receiving the room's events on every process. They may rejoin a public room."""
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(room=room, user=user).delete()
        if deleted:
            transaction.on_commit(lambda: broadcast.user_removed_from_room(user=user, room_id=room.pk, banned=False))
            transaction.on_commit(functools.partial(_co_membership_changed, user=user, room_id=room.pk, joined=False))


def site_ban_create(*, moderator: User, user: User, reason: str = "") -> SiteBan:
    """Deactivate the account: tokens and sessions stop working, and every socket
    of the user on every process is closed.

    Precondition: `moderator` is site staff. Staff accounts are not banned
    here: that is a superuser's decision, in the admin.
    """
    if user.pk == moderator.pk:
        raise ChatError(ErrorCode.INVALID, "You cannot ban yourself", fields={"username": ["cannot be yourself"]})
    if user.is_staff or user.is_superuser:
        raise ChatError(
            ErrorCode.FORBIDDEN, "Staff accounts cannot be banned through the API", fields={"username": ["is staff"]}
        )
    with transaction.atomic():
        ban = SiteBan.objects.create(user=user, reason=reason, created_by=moderator)
        User.objects.filter(pk=user.pk).update(is_active=False)
        transaction.on_commit(lambda: broadcast.user_sockets_closed(user_id=int(user.pk)))
    return ban
