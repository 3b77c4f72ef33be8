"""Reads. Each returns what a transport needs in a fixed number of queries."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Membership, Message, ReadPosition, ReadReceipt, Room, RoomBan
from chat.schemas import READ_BY_MAX, ROOM_ID, ROOMS_PAGE_DEFAULT, MessagePayload, author_id_of, message_payload


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


# Compound SELECTs per statement: SQLite refuses more than 500 terms.
_BRANCHES_PER_STATEMENT = 250


def union_all_statement(branch: str, params: list[list[Any]]) -> tuple[str, list[Any]]:
    """`branch` once per parameter list, UNION ALL-ed into one statement."""
    # Only our own SQL and numbers are interpolated; every value is a parameter.
    sql = " UNION ALL ".join(f"SELECT * FROM ({branch}) AS b{i}" for i in range(len(params)))  # noqa: S608
    return sql, [value for values in params for value in values]


def _union_all(branch: str, params: list[list[Any]]) -> list[tuple[Any, ...]]:
    """Rows of union_all_statement, in as few statements as SQLite allows (one
    for any page the API serves but a 500-message history)."""
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(params), _BRANCHES_PER_STATEMENT):
            cursor.execute(*union_all_statement(branch, params[start : start + _BRANCHES_PER_STATEMENT]))
            rows += cursor.fetchall()
    return rows


def watermark_buckets_branch() -> str:
    """Per room (params: last, last, room, first): how many watermarks lie at or
    past the page's first message, grouped by watermark, those past its last
    message in one group. Read from the ReadPosition histogram (one row per
    distinct watermark position, chat/read_positions.py): a range of its
    unique (room, message) index that reads at most one row per message from
    the page's first to the room's newest, whatever the number of readers."""
    return (
        "SELECT p.room_id, CASE WHEN p.message_id > %s THEN %s ELSE p.message_id END, SUM(p.readers)"  # noqa: S608
        f" FROM {ReadPosition._meta.db_table} p WHERE p.room_id = %s AND p.message_id >= %s GROUP BY 1, 2"
    )


def first_readers_branch() -> str:
    """Per message (params: message, room, message, author): the lowest user
    ids among its readers, the author excluded. The values are bound
    client-side, so PostgreSQL plans each branch with the watermarks'
    statistics: a message few have read is a short range of
    receipt_room_read_user (then sorted), a message most have read a short
    walk of receipt_room_user_read in user order that stops at the limit."""
    return (
        f"SELECT %s, r.user_id FROM {ReadReceipt._meta.db_table} r"  # noqa: S608
        " WHERE r.room_id = %s AND r.last_read_message_id >= %s AND r.user_id <> %s"
        f" ORDER BY r.user_id LIMIT {READ_BY_MAX - 1}"
    )


def _author_or_nobody(message: Message) -> int:
    # A deleted author is NULL, and `user_id <> NULL` would exclude every reader.
    return message.author_id if message.author_id is not None else 0


def read_by_for(messages: Iterable[Message]) -> dict[int, ReadState]:
    """Who has read each message, from the rooms' read watermarks, in at most
    three queries whatever the number of readers (two when nobody but the
    authors has read any; more only past 250 rooms or stand-ins, see
    _BRANCHES_PER_STATEMENT).

    The author has read their own message and comes first; the other readers
    follow by ascending user id, so the list only grows while people read
    (watermarks never move back) and is the same on every request. The count
    is of every watermark at or past the message, the author counted once.

    Work per page: the count from the ReadPosition histogram, one row per
    distinct watermark position at or past the page's first message (bounded
    by the messages from the page to the room's newest, not by the members);
    the authors' own watermarks; and at most READ_BY_MAX - 1 ids per distinct
    set of readers (watermarks are nested, so messages with as many readers
    have the same ones: a page everyone has read asks once per author).
    """
    messages = list(messages)
    if not messages:
        return {}
    spans: dict[str, tuple[int, int]] = {}
    for m in messages:
        first, last = spans.get(m.room_id, (m.pk, m.pk))
        spans[m.room_id] = (min(first, m.pk), max(last, m.pk))
    buckets: dict[str, list[tuple[int, int]]] = {room_id: [] for room_id in spans}
    for room_id, upto, n in _union_all(
        watermark_buckets_branch(), [[last, last, r, first] for r, (first, last) in spans.items()]
    ):
        buckets[room_id].append((upto, int(n)))
    pairs = {(m.room_id, m.author_id) for m in messages if m.author_id is not None}
    own: dict[tuple[str, int | None], int] = {
        (room_id, user_id): upto
        for room_id, user_id, upto in ReadReceipt.objects.filter(
            functools.reduce(operator.or_, (Q(room_id=r, user_id=u) for r, u in pairs), Q(pk__in=[]))
        ).values_list("room_id", "user_id", "last_read_message_id")
    }

    others: dict[int, int] = {}
    for m in messages:
        at_or_past = sum(n for upto, n in buckets[m.room_id] if upto >= m.pk)
        author_mark = own.get((m.room_id, m.author_id))
        others[m.pk] = at_or_past - (1 if author_mark is not None and author_mark >= m.pk else 0)

    # One message stands for every message with the same readers.
    stand_in: dict[tuple[str, int, int | None], Message] = {}
    for m in messages:
        if others[m.pk]:
            stand_in.setdefault((m.room_id, others[m.pk], m.author_id), m)
    firsts: dict[int, list[int]] = {m.pk: [] for m in stand_in.values()}
    if stand_in:
        for pk, user_id in _union_all(
            first_readers_branch(), [[m.pk, m.room_id, m.pk, _author_or_nobody(m)] for m in stand_in.values()]
        ):
            firsts[pk].append(user_id)

    states = {}
    for m in messages:
        ids: list[int] = []
        if others[m.pk]:
            ids = sorted(firsts[stand_in[(m.room_id, others[m.pk], m.author_id)].pk])
        states[m.pk] = ReadState([author_id_of(m)] + [str(i) for i in ids], 1 + others[m.pk])
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


def room_last_seqs(*, room_ids: Iterable[str]) -> dict[str, int]:
    """The last seq of each of these rooms (unknown ids are left out), in one query."""
    return dict(Room.objects.filter(pk__in=list(room_ids)).values_list("pk", "last_seq"))
