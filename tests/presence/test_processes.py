"""Presence across server processes sharing one Redis: tabs on two processes,
and a process killed with SIGKILL (no cleanup runs)."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async

from presence.models import LastSeen
from tests.conftest import token_for
from tests.presence.conftest import GRACE, about, ids, make_world

pytestmark = pytest.mark.redis


async def test_tabs_on_two_processes_are_one_user(presence_server_factory, clients):
    # given two processes, and bob watching on B
    users = await make_world({"room": ["alice", "bob", "dave"]})
    alice, bob, dave = users["alice"], users["bob"], users["dave"]
    server_a, server_b = presence_server_factory("presence-a"), presence_server_factory("presence-b")
    b = await clients().connect(server_b.url, token=token_for(bob))

    # when alice opens a tab on each process
    tab_a = await clients().connect(server_a.url, token=token_for(alice))
    tab_b = await clients().connect(server_b.url, token=token_for(alice))

    # then bob hears one online, and a newcomer on A lists her once
    await b.wait_for("presence:online", about(alice))
    d = await clients().connect(server_a.url, token=token_for(dave))
    assert ids(await d.wait_for("presence:list")) == [str(alice.pk), str(bob.pk)]
    assert ids(await tab_b.wait_for("presence:list")) == [str(bob.pk)]

    # when the tab on A closes, she stays online past the grace period
    await tab_a.disconnect()
    await b.assert_no("presence:offline", about(alice), wait=GRACE + 1.5)
    await d.assert_no("presence:offline", about(alice), wait=0)

    # when the tab on B closes, both processes' users hear she is offline
    await tab_b.disconnect()
    await b.wait_for("presence:offline", about(alice), timeout=GRACE + 3)
    await d.wait_for("presence:offline", about(alice), timeout=2)
    assert len([ev for ev in b.events["presence:online"] if about(alice)(ev)]) == 1


async def test_users_of_a_killed_process_go_offline_and_come_back(presence_server_factory, clients):
    # given alice on A only, carol on A and B, bob watching on B
    users = await make_world({"room": ["alice", "bob", "carol"]})
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    server_a, server_b = presence_server_factory("presence-a"), presence_server_factory("presence-b")
    b = await clients().connect(server_b.url, token=token_for(bob))
    await clients().connect(server_a.url, token=token_for(alice))
    await clients().connect(server_a.url, token=token_for(carol))
    await clients().connect(server_b.url, token=token_for(carol))
    await b.wait_for("presence:online", about(alice))
    await b.wait_for("presence:online", about(carol))

    # when A dies without cleaning up
    killed_at = time.monotonic()
    server_a.kill()

    # then alice goes offline for bob within 30 s (about 4 s with a 3 s lease)
    await b.wait_for("presence:offline", about(alice), timeout=30)
    took = time.monotonic() - killed_at
    assert took < 30, took
    # carol still has a tab on B: she never goes offline
    await b.assert_no("presence:offline", about(carol), wait=1.5)
    # alice's last seen is around A's last heartbeat, before the kill
    seen = await sync_to_async(LastSeen.objects.get)(user=alice)
    assert seen.at.timestamp() <= time.time() - took + 0.5

    # when alice reconnects, to B, she is online again
    a2 = await clients().connect(server_b.url, token=token_for(alice))
    await b.wait_for("presence:online", lambda ev: about(alice)(ev) and len(b.events["presence:online"]) >= 3)
    assert [e["username"] for e in await a2.wait_for("presence:list")] == ["bob", "carol"]
