"""Presence follows membership: joining a room with someone online, or being
removed from the last room shared with them, is announced both ways at once,
without anyone reconnecting."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat.models import Membership, Room
from tests.chat.sockets.conftest import rest
from tests.conftest import token_for
from tests.presence.conftest import about, make_world


async def test_joining_a_room_with_online_people_makes_them_see_each_other(presence_server, clients):
    # given alice online in a public room, and carol online with no shared room
    users = await make_world({"lobby": ["alice"], "elsewhere": ["carol"], "third": ["bob", "alice"]})
    alice, carol, bob = users["alice"], users["carol"], users["bob"]
    a = await clients().connect(presence_server.url, token=token_for(alice))
    c = await clients().connect(presence_server.url, token=token_for(carol))
    assert await c.wait_for("presence:list") == []
    await a.assert_no("presence:online", about(carol), wait=0.2)

    # when carol joins the lobby
    assert (await c.call("room:join", "lobby"))["status"] == "ok"

    # then each hears the other come online, and bob (offline, no shared room) is not involved
    assert await c.wait_for("presence:online", about(alice)) == {"userId": str(alice.pk), "username": "alice"}
    assert await a.wait_for("presence:online", about(carol)) == {"userId": str(carol.pk), "username": "carol"}
    await c.assert_no("presence:online", about(bob), wait=0.2)

    # and joining again announces nothing new
    before = len(a.events["presence:online"])
    assert (await c.call("room:join", "lobby"))["status"] == "ok"
    await a.assert_no("presence:online", lambda _: len(a.events["presence:online"]) > before, wait=0.3)


async def test_losing_the_last_shared_room_reads_as_offline_both_ways(presence_server, clients):
    # given alice and carol share only the lobby, both online
    users = await make_world({"lobby": ["alice", "carol"]})
    alice, carol = users["alice"], users["carol"]
    a = await clients().connect(presence_server.url, token=token_for(alice))
    c = await clients().connect(presence_server.url, token=token_for(carol))
    await a.wait_for("presence:online", about(carol))

    # when alice, a moderator there, bans carol from the lobby through the API
    await sync_to_async(Membership.objects.filter(user=alice, room_id="lobby").update)(role="moderator")
    status, _ = await rest(presence_server, alice, "POST", "/api/rooms/lobby/bans/", {"username": "carol"})
    assert status == 201

    # then they stop seeing each other at once
    await a.wait_for("presence:offline", about(carol))
    await c.wait_for("presence:offline", about(alice))


@pytest.mark.django_db
def test_a_join_with_nobody_new_online_costs_one_query(django_assert_num_queries):
    from presence.services import presence_co_membership_changed
    from tests.presence.conftest import world

    users = world({"lobby": ["alice", "bob"]})
    with django_assert_num_queries(1):
        presence_co_membership_changed(user=users["alice"], room_id="lobby", joined=True)


async def test_a_deleted_room_shared_last_reads_as_offline_both_ways(presence_server_factory, clients):
    from tests.chat.sockets.test_room_delete import admin_delete_room, make_superuser

    # (a process of its own for the admin: see admin_post)
    presence_server = await asyncio.to_thread(presence_server_factory, "presence-delete")

    # given alice and carol share only the lobby, both online
    users = await make_world({"lobby": ["alice", "carol"]})
    alice, carol = users["alice"], users["carol"]
    a = await clients().connect(presence_server.url, token=token_for(alice))
    c = await clients().connect(presence_server.url, token=token_for(carol))
    await a.wait_for("presence:online", about(carol))

    # when an admin deletes the lobby
    lobby = await sync_to_async(Room.objects.get)(pk="lobby")
    await admin_delete_room(presence_server, await make_superuser(), lobby)

    # then they stop seeing each other at once, and a new socket lists nobody
    await a.wait_for("presence:offline", about(carol))
    await c.wait_for("presence:offline", about(alice))
    again = await clients().connect(presence_server.url, token=token_for(alice))
    assert await again.wait_for("presence:list") == []
