"""Reads. Each returns what a transport needs in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Membership, Message, ReadReceipt, Room, RoomBan
from chat.schemas import READ_BY_MAX, ROOM_ID, ROOMS_PAGE_DEFAULT, MessagePayload, message_payload


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


@dataclass(frozen=True)
class RoomCursor:
    """Where a page of `GET /api/rooms/` ends: the user's rooms come first, then
    the public rooms they are not in, each part by id."""

    member: bool  # the page ended in the user's own rooms
    after: str  # the last room id of the page

    def encode(self) -> str:
        return f"{'m' if self.member else 'p'}:{self.after}"

    @classmethod
    def decode(cls, value: str) -> RoomCursor | None:
        part, _, after = value.partition(":")
        if part not in ("m", "p") or not ROOM_ID.match(after):
            return None
        return cls(member=part == "m", after=after)


def room_list_for_user(
    user: User, *, cursor: RoomCursor | None = None, limit: int = ROOMS_PAGE_DEFAULT
) -> tuple[list[RoomSummary], RoomCursor | None]:
    """A page of the rooms the user can see, and where the next page starts
    (None: this was the last). The user's own rooms come first, with unread
    counts, then the public rooms they are not in (unreadCount 0).

    A fixed number of queries, each bounded by `limit`: the unread counts are
    computed for the user's rooms on this page only, and the public rooms are
    read from the primary key's order, so neither grows with the number of
    public rooms.
    """
    banned_from = RoomBan.objects.filter(user=user).values("room_id")
    last_id = Message.objects.filter(room=OuterRef("pk")).order_by("-id").values("id")[:1]
    rooms: list[Any] = []  # Rooms with the annotations below
    if cursor is None or cursor.member:
        watermark = ReadReceipt.objects.filter(room=OuterRef("pk"), user=user).values("last_read_message_id")[:1]
        unread = (
            Message.objects.filter(room=OuterRef("pk"), id__gt=OuterRef("watermark"), deleted_at__isnull=True)
            .exclude(author=user)
            .order_by()
            .values("room")
            .annotate(n=Count("pk"))
            .values("n")
        )
        mine = Room.objects.filter(memberships__user=user).exclude(pk__in=banned_from)
        if cursor is not None:
            mine = mine.filter(pk__gt=cursor.after)
        rooms = list(
            mine.annotate(
                watermark=Coalesce(Subquery(watermark, output_field=IntegerField()), Value(0)),
                last_message_id=Subquery(last_id),
                unread=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
                is_member=Value(True),
            ).order_by("id")[: limit + 1]
        )
    if len(rooms) <= limit:
        others = (
            Room.objects.filter(visibility=Room.Visibility.PUBLIC)
            .exclude(Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)))
            .exclude(pk__in=banned_from)
        )
        if cursor is not None and not cursor.member:
            others = others.filter(pk__gt=cursor.after)
        rooms += others.annotate(last_message_id=Subquery(last_id), unread=Value(0), is_member=Value(False)).order_by(
            "id"
        )[: limit + 1 - len(rooms)]
    page = rooms[:limit]
    next_cursor = RoomCursor(member=page[-1].is_member, after=page[-1].pk) if len(rooms) > limit else None
    return _room_summaries(page), next_cursor


def _room_summaries(rooms: list[Any]) -> list[RoomSummary]:
    """`rooms` carry the annotations of room_list_for_user."""
    last_messages = {
        m.pk: m for m in _messages().filter(pk__in=[r.last_message_id for r in rooms if r.last_message_id])
    }
    read = read_by_for(last_messages.values())
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
                "unreadCount": room.unread,
                "lastMessage": message_payload(last, read[last.pk].ids, read_count=read[last.pk].count)
                if last
                else None,
            }
        )
    return summaries


def direct_room_exists(*, user: User, other: User) -> bool:
    """Whether the two users already have their 1:1 room."""
    return (
        Room.objects.filter(visibility=Room.Visibility.DIRECT, memberships__user=user)
        .filter(memberships__user=other)
        .exists()
    )


@dataclass(frozen=True)
class ReadState:
    """Who has read a message: at most READ_BY_MAX ids, and how many in all."""

    ids: list[str]
    count: int


# For each message: how many users other than the author have a watermark at or
# past it, and the lowest READ_BY_MAX - 1 of their ids. One statement for the
# whole page; per message, both subqueries are range scans of the
# receipt_room_read_user index (room, last_read_message, user), index-only on
# PostgreSQL, and the second returns at most READ_BY_MAX - 1 rows. The ids come
# back as one comma-separated string per message (sorted in Python).
_READERS_SQL = """
SELECT m.id,
  (SELECT COUNT(*) FROM {receipt} r
    WHERE r.room_id = m.room_id AND r.last_read_message_id >= m.id AND r.user_id <> m.author_id),
  (SELECT {aggregate} FROM (
     SELECT r.user_id FROM {receipt} r
      WHERE r.room_id = m.room_id AND r.last_read_message_id >= m.id AND r.user_id <> m.author_id
      ORDER BY r.user_id LIMIT {limit}) u)
FROM {message} m WHERE m.id IN ({ids})
"""
_ID_LIST_AGGREGATE = {
    "postgresql": "string_agg(CAST(u.user_id AS text), ',')",
    "sqlite": "group_concat(u.user_id, ',')",
}


def readers_statement(message_ids: list[int]) -> tuple[str, list[int]]:
    """The SQL of read_by_for and its parameters (tests EXPLAIN it)."""
    sql = _READERS_SQL.format(
        receipt=ReadReceipt._meta.db_table,
        message=Message._meta.db_table,
        aggregate=_ID_LIST_AGGREGATE[connection.vendor],
        limit=READ_BY_MAX - 1,
        ids=", ".join(["%s"] * len(message_ids)),
    )
    return sql, message_ids


def read_by_for(messages: Iterable[Message]) -> dict[int, ReadState]:
    """Who has read each message, from the rooms' read watermarks: one query,
    whatever the number of readers. The author has read their own message and
    comes first; the other readers follow by ascending user id, so the list
    only grows while people read (watermarks never move back) and is the same
    on every request."""
    messages = list(messages)
    if not messages:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(*readers_statement([m.pk for m in messages]))
        readers = {pk: (count, ids) for pk, count, ids in cursor.fetchall()}
    states = {}
    for m in messages:
        count, ids = readers.get(m.pk, (0, None))
        others = sorted(int(i) for i in ids.split(",")) if ids else []
        states[m.pk] = ReadState([str(m.author_id)] + [str(i) for i in others], 1 + count)
    return states


def payloads(messages: Sequence[Message]) -> list[MessagePayload]:
    read = read_by_for(messages)
    return [message_payload(m, read[m.pk].ids, read_count=read[m.pk].count) for m in messages]


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
