"""The Redis registry's transitions, run in this process on the test's Redis
(fakeredis without REDIS_URL): exactly-once offline, leases, and cost."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from asgiref.sync import sync_to_async

from presence import metrics, registry, services
from tests.presence.conftest import world

LEASE_MS = 60_000


@pytest.fixture(autouse=True)
async def _fresh_process(monkeypatch, settings):
    """Each test is a new process to the registry, with no tabs and no timers
    left, under a Redis prefix of its own: the session's server processes sweep
    every second and must not race these tests for their leases."""
    settings.CHAT_REDIS_PREFIX = f"{settings.CHAT_REDIS_PREFIX}-{_uid()}"
    monkeypatch.setattr(services, "_process_id", (os.getpid(), _uid()))
    monkeypatch.setattr(services, "_tabs", {})
    yield
    # Grace timers started by the services called here belong to this test's loop.
    for task in list(services._tasks):
        task.cancel()


def _uid() -> str:
    # Ids no real user has, so the session's server processes never see them.
    return f"t{uuid.uuid4().hex[:10]}"


async def test_only_one_of_racing_finalizers_takes_a_user_offline():
    # given a user whose last tab closed with no grace
    user, process = _uid(), _uid()
    await registry.process_heartbeat(process_id=process, lease_ms=LEASE_MS)
    transition, _ = await registry.tab_open(
        user_id=user, process_id=process, sid="s1", status=registry.ONLINE, lease_ms=LEASE_MS
    )
    assert transition.change == "online"
    assert (await registry.tab_close(user_id=user, process_id=process, sid="s1", grace_ms=0)).change == "pending"

    # when every process's timer and sweeper finalizes at once
    results = await asyncio.gather(
        *(registry.users_finalize(user_id=user) for _ in range(5)), *(registry.users_finalize() for _ in range(5))
    )

    # then exactly one of them reports the offline
    reported = [uid for result in results for uid, _ms in result if uid == user]
    assert reported == [user]
    assert await registry.statuses([user]) == {}


async def test_a_reopen_inside_the_grace_cancels_the_offline():
    user, process = _uid(), _uid()
    await registry.process_heartbeat(process_id=process, lease_ms=LEASE_MS)
    await registry.tab_open(user_id=user, process_id=process, sid="s1", status=registry.ONLINE, lease_ms=LEASE_MS)
    await registry.tab_close(user_id=user, process_id=process, sid="s1", grace_ms=0)

    transition, _ = await registry.tab_open(
        user_id=user, process_id=process, sid="s2", status=registry.ONLINE, lease_ms=LEASE_MS
    )

    assert transition.change == ""
    assert await registry.users_finalize(user_id=user) == []
    assert await registry.statuses([user]) == {user: "online"}


async def test_sweep_drops_the_tabs_of_an_expired_process():
    # given alice only on a process about to expire, and carol active there but
    # idle on a live process
    alice, carol, dying, live = _uid(), _uid(), _uid(), _uid()
    await registry.process_heartbeat(process_id=dying, lease_ms=50)
    await registry.process_heartbeat(process_id=live, lease_ms=LEASE_MS)
    for user in (alice, carol):
        await registry.tab_open(user_id=user, process_id=dying, sid="s", status=registry.ONLINE, lease_ms=50)
    await registry.tab_open(user_id=carol, process_id=live, sid="s", status=registry.AWAY, lease_ms=LEASE_MS)
    assert await registry.statuses([alice, carol]) == {alice: "online", carol: "online"}

    # when its lease runs out and a sweeper runs
    await asyncio.sleep(0.1)
    changes = await registry.processes_sweep()
    offline = await registry.users_finalize()

    # then alice is offline at once (the lease was her grace), carol shows away
    assert (carol, "away") in changes
    assert alice in [uid for uid, _ms in offline]
    assert carol not in [uid for uid, _ms in offline]
    assert await registry.statuses([alice, carol]) == {carol: "away"}


async def test_a_process_swept_while_alive_learns_it_on_its_next_beat():
    process = _uid()
    assert not await registry.process_heartbeat(process_id=process, lease_ms=50)  # first beat: no lease yet
    assert await registry.process_heartbeat(process_id=process, lease_ms=50)
    await asyncio.sleep(0.1)
    await registry.processes_sweep()
    assert not await registry.process_heartbeat(process_id=process, lease_ms=LEASE_MS)


@pytest.mark.parametrize("rooms", [1, 8])
async def test_connect_and_disconnect_cost_does_not_grow_with_rooms(transactional_db, rooms):
    # given bob in `rooms` rooms with alice and one more member each, alice online
    names = {f"cost-{i}": ["alice", "bob", f"member{i}"] for i in range(rooms)}
    users = await sync_to_async(world)(names)
    alice, bob = users["alice"], users["bob"]
    await registry.process_heartbeat(process_id=services.process_id(), lease_ms=LEASE_MS)
    alice_ref = {"userId": str(alice.pk), "username": "alice"}
    await services.presence_connect(sid=_uid(), user=alice_ref)

    # when bob connects and disconnects
    metrics.reset()
    with metrics.phase("connect"):
        listed = await services.presence_connect(sid="bob-tab", user={"userId": str(bob.pk), "username": "bob"})
    with metrics.phase("disconnect"):
        await services.presence_disconnect(sid="bob-tab", user={"userId": str(bob.pk), "username": "bob"})
    counts = metrics.snapshot()

    # then his list has alice once, and the cost is the same for 1 or 8 rooms:
    # one registry script, one HMGET, one query, one emit (to alice's audience)
    assert [entry["username"] for entry in listed] == ["alice"]
    assert counts["connect.redis_commands"] == 2
    assert counts["connect.sql_queries"] == 1
    assert counts["connect.emits"] == 1
    assert counts["connect.audiences"] == 1
    assert counts["connect.events.online"] == 1
    assert counts["disconnect.redis_commands"] == 1
    assert "disconnect.emits" not in counts


async def test_reconcile_puts_the_registry_right_after_failed_writes(transactional_db):
    # given this process's registry holds a tab that closed here while Redis was
    # unreachable, and lacks a live tab whose open failed
    pid = services.process_id()
    gone, kept = (str(10**12 + int(uuid.uuid4().int % 10**9)) for _ in range(2))
    await registry.process_heartbeat(process_id=pid, lease_ms=LEASE_MS)
    await registry.tab_open(user_id=gone, process_id=pid, sid="gone-sid", status=registry.ONLINE, lease_ms=LEASE_MS)
    services._tabs["kept-sid"] = services._Tab(user={"userId": kept, "username": "kept"}, status=registry.AWAY)

    # when the next beat reconciles
    await services._reconcile()

    # then the registry holds exactly the live tab, and the closed one is pending offline
    assert await registry.process_tabs(process_id=pid) == [(kept, "kept-sid")]
    assert await registry.statuses([gone, kept]) == {gone: "online", kept: "away"}
    await asyncio.sleep(0.01)
    assert await registry.users_finalize(user_id=gone) == []  # not before the grace
