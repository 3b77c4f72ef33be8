"""Reads. Each returns what a transport needs in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

from django.contrib.auth.models import User
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Membership, Message, ReadReceipt, Room, RoomBan
from chat.schemas import MessagePayload, author_id_of, message_payload


class RoomSummary(TypedDict):
    id: str
    name: str
    topic: str
    visibility: str
    isMember: bool
    unreadCount: int
    lastMessage: MessagePayload | None


def _messages() -> QuerySet[Message]:
    return Message.objects.select_related("author", "reply_to__author")


def rooms_visible_to(user: User) -> QuerySet[Room]:
    """Public rooms plus the private and direct rooms the user belongs to, less
    the rooms the user is banned from (access_room refuses those)."""
    member_of = Membership.objects.filter(user=user).values("room_id")
    banned_from = RoomBan.objects.filter(user=user).values("room_id")
    return Room.objects.filter(Q(visibility=Room.Visibility.PUBLIC) | Q(pk__in=member_of)).exclude(pk__in=banned_from)


def room_list_for_user(user: User) -> list[RoomSummary]:
    """Every visible room with membership, unread count and last message, in a
    fixed number of queries whatever the number of rooms."""
    watermark = ReadReceipt.objects.filter(room=OuterRef("pk"), user=user).values("last_read_message_id")[:1]
    last_id = Message.objects.filter(room=OuterRef("pk")).order_by("-id").values("id")[:1]
    rooms = list(
        rooms_visible_to(user)
        .annotate(
            watermark=Coalesce(Subquery(watermark, output_field=IntegerField()), Value(0)),
            last_message_id=Subquery(last_id),
            is_member=Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)),
        )
        .annotate(
            unread=Count(
                "messages",
                filter=Q(messages__id__gt=F("watermark"), messages__deleted_at__isnull=True)
                & ~Q(messages__author=user),
            )
        )
        .order_by("id")
    )
    last_messages = {
        m.pk: m for m in _messages().filter(pk__in=[r.last_message_id for r in rooms if r.last_message_id])
    }
    read_by = read_by_for(last_messages.values())
    summaries: list[RoomSummary] = []
    for room in rooms:
        last = last_messages.get(room.last_message_id) if room.last_message_id else None
        summaries.append(
            {
                "id": room.pk,
                "name": room.name,
                "topic": room.topic,
                "visibility": room.visibility,
                "isMember": room.is_member,
                # A public room the user never joined has nothing "unread" for them.
                "unreadCount": room.unread if room.is_member else 0,
                "lastMessage": message_payload(last, read_by[last.pk]) if last else None,
            }
        )
    return summaries


def read_by_for(messages: Iterable[Message]) -> dict[int, list[str]]:
    """Who has read each message, derived from the rooms' read watermarks (one query)."""
    messages = list(messages)
    room_ids = {m.room_id for m in messages}
    if not room_ids:
        return {}
    receipts = list(
        ReadReceipt.objects.filter(room_id__in=room_ids, last_read_message__isnull=False)
        .order_by("user_id")
        .values_list("room_id", "user_id", "last_read_message_id")
    )
    # The author has read their own message; everyone else by watermark. A
    # deleted author keeps the first place as "" (their userId), so readBy
    # still starts with the message's userId.
    return {
        m.pk: [author_id_of(m)]
        + [
            str(user_id)
            for room_id, user_id, upto in receipts
            if room_id == m.room_id and upto >= m.pk and user_id != m.author_id
        ]
        for m in messages
    }


def payloads(messages: Sequence[Message]) -> list[MessagePayload]:
    read_by = read_by_for(messages)
    return [message_payload(m, read_by[m.pk]) for m in messages]


def message_list_for_room(
    *, room: Room, before: int | None = None, after: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """A page of messages, oldest first, and whether more exist past the page.

    With `after`, the page starts right after that id and `hasMore` says newer
    ones remain; otherwise it ends right before `before` (or at the newest) and
    `hasMore` says older ones remain.
    """
    query = _messages().filter(room=room)
    if before is not None:
        query = query.filter(id__lt=before)
    if after is not None:
        query = query.filter(id__gt=after)
        rows = list(query.order_by("id")[: limit + 1])
        return rows[:limit], len(rows) > limit
    rows = list(query.order_by("-id")[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


def message_get_by_client_id(*, author: User, client_id: str) -> Message | None:
    return _messages().filter(author=author, client_id=client_id).first()


def room_last_seqs(*, room_ids: Iterable[str]) -> dict[str, int]:
    """The last seq of each of these rooms (unknown ids are left out), in one query."""
    return dict(Room.objects.filter(pk__in=list(room_ids)).values_list("pk", "last_seq"))
