"""readBy and readCount (protocol.md, Additions): at most 20 readers listed, all
counted, from the read watermarks, in one query whatever the room's size."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from chat import selectors
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
def test_a_page_of_messages_costs_one_query_with_5_or_500_readers(room, reader_count, django_assert_num_queries):
    # given a page of 50 messages, the first 25 read by every reader
    author = UserFactory()
    page = [post(room, author, f"m{i}") for i in range(50)]
    readers(room, reader_count, up_to=page[24])

    # when the page's message objects are built, then one query does it
    with django_assert_num_queries(1):
        built = selectors.payloads(page)

    assert [m["readCount"] for m in built] == [1 + reader_count] * 25 + [1] * 25
    assert all(len(m["readBy"]) == min(1 + reader_count, READ_BY_MAX) for m in built[:25])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN's plan shape is PostgreSQL's")
def test_postgresql_serves_the_readers_query_from_the_receipt_index(room):
    # given a busy room among 300 quieter ones, enough receipts that a scan of
    # the table would be the costly choice
    author = UserFactory()
    page = [post(room, author, f"m{i}") for i in range(20)]
    everyone = readers(room, 2000, up_to=page[10])
    quiet = Room.objects.bulk_create([Room(id=f"quiet-{i}", name=f"quiet {i}") for i in range(300)])
    firsts = Message.objects.bulk_create([Message(room=r, seq=1, author=author, text="hi") for r in quiet])
    ReadReceipt.objects.bulk_create(
        [
            ReadReceipt(room=r, user=u, last_read_message=m)
            for r, m in zip(quiet, firsts, strict=True)
            for u in everyone[:10]
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_readreceipt")
        cursor.execute("ANALYZE chat_message")

    # when PostgreSQL plans the statement of read_by_for
    sql, params = selectors.readers_statement([m.pk for m in page])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # then both subqueries read the (room, last_read_message, user) index only
    assert plan.count("Index Only Scan using receipt_room_read_user") == 2, plan
    assert "Seq Scan on chat_readreceipt" not in plan, plan
