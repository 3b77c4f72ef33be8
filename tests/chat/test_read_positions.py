"""readCount's histogram (chat/read_positions.py): one ReadPosition row per
distinct watermark of a room, kept equal to the receipts on every path that
moves or deletes a watermark, so counting costs rows per position, not per
reader (issue 9, point 4)."""

from __future__ import annotations

import random
import re
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import read_positions, selectors, services
from chat.models import Membership, Message, ReadPosition, ReadReceipt, Room
from tests.factories import RoomFactory, UserFactory, add_member, post


def stored() -> dict[tuple[str, int], int]:
    return {(r, m): n for r, m, n in ReadPosition.objects.values_list("room_id", "message_id", "readers")}


# --- The histogram equals a recount after any mix of writes -------------------

STEP = st.one_of(
    st.tuples(st.just("read"), st.integers(0, 5), st.integers(0, 1), st.integers(0, 7)),
    st.tuples(st.just("delete-user"), st.integers(0, 5), st.just(0), st.just(0)),
    st.tuples(st.just("ban"), st.integers(0, 5), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("remove"), st.integers(0, 5), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("delete-receipts"), st.just(0), st.integers(0, 1), st.just(0)),
)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=30))
def test_the_histogram_equals_a_recount_after_reads_rereads_backward_reads_deletions_and_bans(steps):
    # given two rooms of eight messages each, six members in both
    moderator = UserFactory()
    rooms = [RoomFactory(created_by=moderator), RoomFactory(created_by=moderator)]
    users = [UserFactory() for _ in range(6)]
    messages = {}
    for room in rooms:
        add_member(room, moderator, Membership.Role.OWNER)
        for u in users:
            add_member(room, u)
        messages[room.pk] = [post(room, moderator, f"m{i}") for i in range(8)]

    # when they read forward, again, backward (ignored), and users are deleted,
    # banned, removed, and a room's receipts deleted
    for action, who, which_room, which_message in steps:
        user, room = users[who], rooms[which_room]
        if not User.objects.filter(pk=user.pk).exists():
            continue
        if action == "read":
            services.receipt_mark_read(user=user, room=room, message=messages[room.pk][which_message])
        elif action == "delete-user":
            user.delete()
        elif action == "ban":
            services.ban_create(moderator=moderator, room=room, user=user)
        elif action == "remove":
            services.membership_remove(room=room, user=user)
        else:
            ReadReceipt.objects.filter(room=room).delete()  # a queryset delete, one signal per row

        # then after every step the histogram is the receipts recounted
        assert stored() == read_positions.recount()
    assert all(n > 0 for n in stored().values())


@pytest.mark.django_db
def test_rebuild_restores_the_histogram_after_writes_that_send_no_signals():
    room, author = RoomFactory(), UserFactory()
    first, second = post(room, author, "one"), post(room, author, "two")
    users = [UserFactory() for _ in range(3)]
    ReadReceipt.objects.bulk_create([ReadReceipt(room=room, user=u, last_read_message=first) for u in users])
    ReadReceipt.objects.filter(user=users[0]).update(last_read_message=second)

    read_positions.rebuild([room.pk])

    assert stored() == {(room.pk, first.pk): 2, (room.pk, second.pk): 1} == read_positions.recount()


# --- The count's cost does not grow with the readers --------------------------


def caught_up_readers(room: Room, n: int, *, up_to: Message) -> None:
    for i in range(n):
        user = User.objects.create(username=f"{room.pk}-reader{i}")
        services.receipt_mark_read(user=user, room=room, message=up_to)


def bucket_statement(page: list[Message]) -> tuple[str, list[object]]:
    return selectors.union_all_statement(
        selectors.watermark_buckets_branch(), [[page[-1].pk, page[-1].pk, page[0].room_id, page[0].pk]]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("reader_count", [5, 500])
def test_the_count_reads_the_same_rows_with_5_or_500_caught_up_readers(reader_count, django_assert_num_queries):
    # given a page of 20 messages, 3 readers spread over it, and
    # `reader_count` readers caught up with the room's newest message
    room, author = RoomFactory(id="counted"), UserFactory()
    page = [post(room, author, f"m{i}") for i in range(20)]
    newest = post(room, author, "newest")
    for i, message in enumerate((page[0], page[5], page[12])):
        services.receipt_mark_read(user=UserFactory(username=f"spread{i}"), room=room, message=message)
    caught_up_readers(room, reader_count, up_to=newest)

    # when the count's statement runs over the page
    with connection.cursor() as cursor:
        cursor.execute(*bucket_statement(page))
        rows = cursor.fetchall()
    with django_assert_num_queries(3):
        built = selectors.payloads(page)

    # then it ranges over one row per watermark position at or past the page
    # (3 spread, 1 caught up), whatever the number of readers, and counts them all
    in_range = ReadPosition.objects.filter(room=room, message_id__gte=page[0].pk).count()
    assert in_range == 4
    assert sorted((upto, n) for _, upto, n in rows) == [
        (page[0].pk, 1),
        (page[5].pk, 1),
        (page[12].pk, 1),
        (page[-1].pk, reader_count),
    ]
    assert built[0]["readCount"] == 1 + 3 + reader_count
    assert built[13]["readCount"] == 1 + reader_count
    if connection.vendor == "postgresql":
        # the table scan under the grouping yields those 4 rows (EXPLAIN
        # ANALYZE's actual rows), not one per reader
        sql, params = bucket_statement(page)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        scanned = [int(n) for n in re.findall(r"Scan (?:using \S+ )?on chat_\w+ \w+ \(actual rows=(\d+)", plan)]
        assert scanned == [4], plan


# --- Concurrent reads lose no update (PostgreSQL) -----------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_reads_of_the_same_message_end_with_the_exact_count():
    # given 40 members, half of them already at an earlier message
    room, author = RoomFactory(), UserFactory()
    earlier, message = post(room, author, "earlier"), post(room, author, "read by all at once")
    users = [UserFactory() for _ in range(40)]
    for u in users[:20]:
        services.receipt_mark_read(user=u, room=room, message=earlier)

    # when all 40 read the same message at once, each on its own connection
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def read(user: User) -> None:
        try:
            barrier.wait(timeout=60)
            services.receipt_mark_read(user=user, room=room, message=message)
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read, args=(u,)) for u in random.sample(users, len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    # then no increment or decrement is lost
    assert errors == []
    assert stored() == {(room.pk, message.pk): 40} == read_positions.recount()
    assert selectors.read_by_for([message])[message.pk].count == 41


@pytest.mark.django_db
def test_migration_0004_backfills_the_histogram_from_the_receipts():
    # given receipts the histogram does not hold yet (as before the migration)
    from importlib import import_module

    from django.apps import apps

    room, author = RoomFactory(), UserFactory()
    first, second = post(room, author, "one"), post(room, author, "two")
    for message in (first, first, second):
        ReadReceipt.objects.create(room=room, user=UserFactory(), last_read_message=message)
    ReadReceipt.objects.create(room=room, user=UserFactory(), last_read_message=None)
    ReadPosition.objects.all().delete()

    # when the migration's backfill runs
    import_module("chat.migrations.0004_readposition").backfill(apps, None)

    # then it holds one row per position with its readers
    assert stored() == {(room.pk, first.pk): 2, (room.pk, second.pk): 1} == read_positions.recount()
