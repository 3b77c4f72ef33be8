"""Presence over the wire, one server process: list, online/offline, tabs, the
grace period, away/active, scoping. Runs on both backends (fakeredis in the
server without REDIS_URL, the real Redis with it)."""

from __future__ import annotations

import asyncio

from tests.conftest import token_for
from tests.presence.conftest import GRACE, about, get_presence, ids, make_world


async def test_list_and_events_reach_only_co_members(presence_server, clients):
    # given alice shares "one" with bob and "one" and "two" with dave; carol and
    # erin share a room with each other but none with alice
    users = await make_world({"one": ["alice", "bob", "dave"], "two": ["alice", "dave"], "three": ["carol", "erin"]})
    alice, bob, carol, dave, erin = (users[n] for n in ("alice", "bob", "carol", "dave", "erin"))
    url = presence_server.url
    b = await clients().connect(url, token=token_for(bob))
    c = await clients().connect(url, token=token_for(carol))

    # when alice connects
    a = await clients().connect(url, token=token_for(alice))

    # then her list holds the online co-members only, with their status
    assert (await a.wait_for("presence:list")) == [{"userId": str(bob.pk), "username": "bob", "status": "online"}]
    assert (await b.wait_for("presence:online", about(alice))) == {"userId": str(alice.pk), "username": "alice"}

    # when dave, who shares two rooms with alice, connects
    d = await clients().connect(url, token=token_for(dave))

    # then he lists alice and bob once each, and alice hears of him once
    assert ids(await d.wait_for("presence:list")) == [str(alice.pk), str(bob.pk)]
    await a.wait_for("presence:online", about(dave))

    # when erin (carol's only co-member) connects, her list has carol, not alice
    e = await clients().connect(url, token=token_for(erin))
    assert ids(await e.wait_for("presence:list")) == [str(carol.pk)]

    # when alice leaves for longer than the grace period
    await a.disconnect()

    # then her co-members hear it, and carol and erin hear nothing of her, ever
    await b.wait_for("presence:offline", about(alice), timeout=GRACE + 3)
    await d.wait_for("presence:offline", about(alice), timeout=1)
    assert len([ev for ev in a.events["presence:online"] if about(dave)(ev)]) == 1
    for outsider in (c, e):
        for event in ("presence:online", "presence:offline", "presence:status"):
            await outsider.assert_no(event, about(alice), wait=0)
    await c.assert_no("presence:online", about(dave), wait=0)


async def test_offline_only_after_the_last_tab_closes(presence_server, clients):
    # given alice with two tabs, watched by bob
    users = await make_world({"room": ["alice", "bob"]})
    alice, bob = users["alice"], users["bob"]
    b = await clients().connect(presence_server.url, token=token_for(bob))
    tab1 = await clients().connect(presence_server.url, token=token_for(alice))
    tab2 = await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", about(alice))
    assert ids(await tab2.wait_for("presence:list")) == [str(bob.pk)]

    # when one tab closes, and the grace period passes
    await tab1.disconnect()
    await b.assert_no("presence:offline", about(alice), wait=GRACE + 1.5)

    # then alice is still online; when the other closes, she goes offline
    await tab2.disconnect()
    await b.wait_for("presence:offline", about(alice), timeout=GRACE + 3)
    assert len([ev for ev in b.events["presence:online"] if about(alice)(ev)]) == 1


async def test_a_reconnect_within_the_grace_period_is_silent(presence_server, clients):
    # given alice online, watched by bob
    users = await make_world({"room": ["alice", "bob"]})
    alice, bob = users["alice"], users["bob"]
    b = await clients().connect(presence_server.url, token=token_for(bob))
    a = await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", about(alice))

    # when her page reloads: the socket drops and a new one connects quickly
    await a.disconnect()
    await asyncio.sleep(0.3)
    a2 = await clients().connect(presence_server.url, token=token_for(alice))

    # then bob hears neither offline nor a second online, even after the grace
    assert ids(await a2.wait_for("presence:list")) == [str(bob.pk)]
    await b.assert_no("presence:offline", about(alice), wait=GRACE + 1.5)
    assert len([ev for ev in b.events["presence:online"] if about(alice)(ev)]) == 1


async def test_away_longer_than_the_grace_period_goes_offline_then_online(presence_server, clients):
    # given alice online, watched by bob
    users = await make_world({"room": ["alice", "bob"]})
    alice, bob = users["alice"], users["bob"]
    b = await clients().connect(presence_server.url, token=token_for(bob))
    a = await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", about(alice))

    # when she disconnects: nothing during the grace period, then offline
    await a.disconnect()
    await b.assert_no("presence:offline", about(alice), wait=GRACE - 1)
    await b.wait_for("presence:offline", about(alice), timeout=3)

    # and when she comes back, online again
    await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", lambda ev: about(alice)(ev) and len(b.events["presence:online"]) >= 2)
    assert [ev["userId"] for ev in b.events["presence:online"]] == [str(alice.pk), str(alice.pk)]


async def test_away_only_when_every_tab_is_idle(presence_server, clients):
    # given alice with two tabs, watched by bob
    users = await make_world({"room": ["alice", "bob"]})
    alice, bob = users["alice"], users["bob"]
    b = await clients().connect(presence_server.url, token=token_for(bob))
    tab1 = await clients().connect(presence_server.url, token=token_for(alice))
    tab2 = await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", about(alice))

    # when one tab goes idle, alice still shows online and bob hears nothing
    assert await tab1.call("presence:away") == {"status": "ok", "presence": "online"}
    await b.assert_no("presence:status", about(alice), wait=0.5)

    # when the other goes idle too, she is away for bob, his new tabs and the API
    assert await tab2.call("presence:away") == {"status": "ok", "presence": "away"}
    assert await b.wait_for("presence:status", about(alice)) == {"userId": str(alice.pk), "status": "away"}
    b2 = await clients().connect(presence_server.url, token=token_for(bob))
    assert await b2.wait_for("presence:list") == [{"userId": str(alice.pk), "username": "alice", "status": "away"}]
    status, rows = await get_presence(presence_server, bob)
    assert status == 200
    assert [(row["username"], row["status"]) for row in rows] == [("alice", "away")]

    # when a tab is active again, she is online
    assert await tab1.call("presence:active") == {"status": "ok", "presence": "online"}
    await b.wait_for("presence:status", lambda ev: about(alice)(ev) and ev["status"] == "online")

    # and when that active tab closes, the idle one left makes her away again
    await tab1.disconnect()
    await b.wait_for("presence:status", lambda _ev: len(b.events["presence:status"]) == 3)
    assert [ev["status"] for ev in b.events["presence:status"]] == ["away", "online", "away"]
    await b.assert_no("presence:offline", about(alice), wait=0)
