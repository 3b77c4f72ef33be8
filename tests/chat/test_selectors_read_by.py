"""readBy and readCount (protocol.md, Additions): at most 20 readers listed, all
counted, from the read watermarks, in one query whatever the room's size."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from chat import read_positions, selectors
from chat.models import Membership, Message, ReadReceipt, Room
from chat.schemas import READ_BY_MAX
from chat.selectors import ReadState
from tests.factories import RoomFactory, UserFactory, post

pytestmark = pytest.mark.django_db


def readers(room: Room, n: int, *, up_to: Message, prefix: str = "reader") -> list[User]:
    """n members of the room whose watermark is `up_to`, made in bulk."""
    users = User.objects.bulk_create([User(username=f"{prefix}{i}") for i in range(n)])
    if connection.vendor == "sqlite":  # bulk_create sets no primary keys there
        users = list(User.objects.filter(username__startswith=prefix).order_by("pk"))
    Membership.objects.bulk_create([Membership(room=room, user=u) for u in users])
    ReadReceipt.objects.bulk_create([ReadReceipt(room=room, user=u, last_read_message=up_to) for u in users])
    read_positions.rebuild([room.pk])  # bulk_create sends no signals
    return users


@pytest.fixture
def room() -> Room:
    return RoomFactory(id="busy")


def test_read_by_lists_the_author_and_the_lowest_reader_ids_and_read_count_counts_all(room):
    # given 30 users who have read the author's message
    author = UserFactory()
    message = post(room, author, "read by many")
    users = readers(room, 30, up_to=message)

    # when the message object is built
    [payload] = selectors.payloads([message])

    # then readBy is the author and the 19 lowest reader ids, readCount counts all 31
    assert payload["readBy"] == [str(author.pk)] + [str(u.pk) for u in sorted(users, key=lambda u: u.pk)[:19]]
    assert len(payload["readBy"]) == READ_BY_MAX == 20
    assert payload["readCount"] == 31


def test_read_count_follows_the_watermarks_and_counts_the_author_once(room):
    author, early, exact, late = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    first = post(room, author, "one")
    second = post(room, author, "two")
    third = post(room, author, "three")
    other_room = RoomFactory()
    elsewhere = post(other_room, author, "elsewhere")
    ReadReceipt.objects.create(room=room, user=author, last_read_message=third)  # the author's own watermark
    ReadReceipt.objects.create(room=room, user=early, last_read_message=first)
    ReadReceipt.objects.create(room=room, user=exact, last_read_message=second)
    ReadReceipt.objects.create(room=room, user=late, last_read_message=None)  # a receipt whose message is gone
    ReadReceipt.objects.create(room=other_room, user=late, last_read_message=elsewhere)

    read = selectors.read_by_for([first, second, third, elsewhere])

    assert read[first.pk] == ReadState(sorted_ids(author, early, exact), 3)
    assert read[second.pk] == ReadState(sorted_ids(author, exact), 2)
    assert read[third.pk] == ReadState([str(author.pk)], 1)
    assert read[elsewhere.pk] == ReadState(sorted_ids(author, late), 2)


def sorted_ids(author: User, *others: User) -> list[str]:
    return [str(author.pk)] + [str(pk) for pk in sorted(u.pk for u in others)]


@pytest.mark.parametrize("reader_count", [5, 500])
def test_a_page_of_messages_costs_three_queries_with_5_or_500_readers(room, reader_count, django_assert_num_queries):
    # given a page of 50 messages by two authors, the first 25 read by every
    # reader, the next 10 by the first three readers only
    author, other_author = UserFactory(), UserFactory()
    page = [post(room, author if i % 2 else other_author, f"m{i}") for i in range(50)]
    users = readers(room, reader_count, up_to=page[24])
    ReadReceipt.objects.filter(user__in=users[:3]).update(last_read_message=page[34])
    read_positions.rebuild([room.pk])

    # when the page's message objects are built, then three queries do it: the
    # watermarks grouped, the authors' own, the first readers
    with django_assert_num_queries(3):
        built = selectors.payloads(page)

    assert [m["readCount"] for m in built] == [1 + reader_count] * 25 + [1 + 3] * 10 + [1] * 15
    assert all(len(m["readBy"]) == min(1 + reader_count, READ_BY_MAX) for m in built[:25])
    assert all(m["readBy"][1:] == [str(u.pk) for u in users[:3]] for m in built[25:35])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN's plan shape is PostgreSQL's")
def test_postgresql_serves_the_readers_queries_from_the_receipt_indexes(room):
    # given a busy room among 600 quieter ones, one room's receipts a small
    # part of the table, as in any real database
    author = UserFactory()
    page = [post(room, author, f"m{i}") for i in range(20)]
    everyone = readers(room, 2000, up_to=page[10])
    quiet = Room.objects.bulk_create([Room(id=f"quiet-{i}", name=f"quiet {i}") for i in range(600)])
    firsts = Message.objects.bulk_create([Message(room=r, seq=1, author=author, text="hi") for r in quiet])
    ReadReceipt.objects.bulk_create(
        [
            ReadReceipt(room=r, user=u, last_read_message=m)
            for r, m in zip(quiet, firsts, strict=True)
            for u in everyone[:50]
        ],
        batch_size=5000,
    )
    read_positions.rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_readreceipt")
        cursor.execute("ANALYZE chat_readposition")

    # when PostgreSQL plans the statements of read_by_for
    def plan(sql: str, params: list[object]) -> str:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())

    buckets = plan(
        *selectors.union_all_statement(
            selectors.watermark_buckets_branch(), [[page[-1].pk, page[-1].pk, room.pk, page[0].pk]]
        )
    )
    firsts_plan = plan(
        *selectors.union_all_statement(
            selectors.first_readers_branch(), [[m.pk, room.pk, m.pk, author.pk] for m in (page[0], page[10])]
        )
    )

    # then no statement reads the receipts table through: the watermarks are a
    # range of the room's index, and each message's first readers a walk of an
    # index that stops at the limit
    assert "Index Cond: ((room_id)::text = 'busy'::text)" in buckets, buckets
    assert firsts_plan.count("->  Limit") == 2, firsts_plan
    assert firsts_plan.count("Index Scan") + firsts_plan.count("Index Only Scan") >= 2, firsts_plan
    assert "Seq Scan" not in buckets + firsts_plan
