"""Presence writes: tabs come and go, users come online, go away, go offline.

The state lives in the Redis registry (presence/registry.py), whose Lua scripts
decide every transition atomically; this module runs them, announces what
changed (through presence/broadcast.py) and stores last-seen times.

Unlike chat/services.py these are async: a connect or disconnect is a couple of
Redis round trips, and a worker thread per socket event would cost more than
the work. The database is reached only through `database_sync_to_async`
(selectors and `last_seen_record`).

Lifecycle, per user:
- first tab opens anywhere: online, announced once (`presence:online`);
- more tabs, on any process: nothing;
- last tab closes: pending for PRESENCE_GRACE_SECONDS; a tab opening meanwhile
  (a reload, a short drop) cancels it and nobody hears anything;
- grace over with no tab: offline, announced once (`presence:offline`), LastSeen
  stored. The process that saw the close runs a timer; the sweeper of every
  process backs it up, so a crash during the grace still ends in offline;
- tabs say `presence:away`/`presence:active`; the user shows "away" when every
  tab is idle, and co-members get `presence:status` when that flips.

Crash recovery: each process renews a lease every PRESENCE_HEARTBEAT_SECONDS;
a lease lasts PRESENCE_EXPIRY_SECONDS. Every process sweeps on each beat: the
tabs of a process whose lease ran out are dropped and their users go offline
(if they have no tab elsewhere). Worst case after a SIGKILL: EXPIRY + HEARTBEAT
(15 + 5 s by default) until offline, within the 30 s promised.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError

from chat import broadcast as chat_broadcast
from chat.schemas import UserRef
from presence import broadcast, metrics, registry, selectors
from presence.models import LastSeen
from presence.registry import AWAY, ONLINE, Status, Transition
from presence.schemas import PresenceEntry

logger = logging.getLogger(__name__)


@dataclass
class _Tab:
    user: UserRef
    status: Status


# This process's live /chat sockets: what Redis must hold for this process.
_tabs: dict[str, _Tab] = {}
# A registry write failed (Redis unreachable): the next beat reconciles, so a
# socket that closed meanwhile does not stay online for as long as we live.
_dirty = False
# Grace timers and the maintenance loop: kept referenced so they are not collected.
_tasks: set[asyncio.Task[None]] = set()
_start: asyncio.Task[None] | None = None
_process_id: tuple[int, str] | None = None


def process_id() -> str:
    """This process's name in Redis; recomputed after a fork."""
    global _process_id
    if _process_id is None or _process_id[0] != os.getpid():
        _process_id = (os.getpid(), f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return _process_id[1]


def _lease_ms() -> int:
    return int(settings.PRESENCE_EXPIRY_SECONDS * 1000)


def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_task_done)
    return task


def _task_done(task: asyncio.Task[None]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("presence task %s failed", task.get_coro(), exc_info=task.exception())


# --- start-up -------------------------------------------------------------------


async def presence_start() -> None:
    """Take a lease, sweep once, and start the maintenance loop; idempotent.

    Called from the first socket connect (the ASGI app runs without lifespan).
    The first sweep runs before the first `presence:list`, so a process that
    starts after a crash never lists the dead process's users as online."""
    global _start
    if _start is None or (_start.done() and (_start.cancelled() or _start.exception() is not None)):
        _start = asyncio.ensure_future(_start_once())
    await asyncio.shield(_start)


async def _start_once() -> None:
    with metrics.phase("heartbeat"):
        await registry.process_heartbeat(process_id=process_id(), lease_ms=_lease_ms())
    with metrics.phase("sweep"):
        await _sweep()
    _spawn(_maintain_forever())


async def _maintain_forever() -> None:
    while True:
        await asyncio.sleep(settings.PRESENCE_HEARTBEAT_SECONDS)
        try:
            with metrics.phase("heartbeat"):
                held = await registry.process_heartbeat(process_id=process_id(), lease_ms=_lease_ms())
                if not held:
                    logger.warning("presence lease of %s had run out; re-registering %d tabs", process_id(), len(_tabs))
                if not held or _dirty:
                    await _reconcile()
            with metrics.phase("sweep"):
                await _sweep()
        except Exception:
            # Redis away for a while: keep beating; once it is back the lease
            # check or the dirty flag puts the registry right.
            _mark_dirty()
            logger.exception("presence maintenance failed; retrying in %s s", settings.PRESENCE_HEARTBEAT_SECONDS)


async def _sweep() -> None:
    for user_id, status in await registry.processes_sweep():
        try:
            online = await selectors.online_co_members(user_id=user_id)
            recipients = [entry["userId"] for entry in online]
            await broadcast.user_status_changed(user_id=user_id, status=status, recipients=recipients)
        except Exception:
            logger.exception("announcing the status of user %s failed", user_id)
    await _went_offline(await registry.users_finalize())


def _mark_dirty() -> None:
    global _dirty
    _dirty = True


async def _reconcile() -> None:
    """Make the registry hold exactly this process's live tabs: re-open each
    (idempotent), close those Redis has and this process no longer does."""
    global _dirty
    _dirty = False
    try:
        for sid, tab in list(_tabs.items()):
            await _open(sid=sid, user=tab.user, status=tab.status)
        for user_id, sid in await registry.process_tabs(process_id=process_id()):
            if sid not in _tabs:
                await _close(sid=sid, user_id=user_id)
    except Exception:
        _mark_dirty()
        raise


# --- tabs -----------------------------------------------------------------------


async def presence_connect(*, sid: str, user: UserRef) -> list[PresenceEntry]:
    """Register a tab of `user` on this process; announce the user if they were
    offline. Returns the online co-members for `presence:list`: the first
    PRESENCE_LIST_MAX by username, so the list stays bounded in a huge room
    (every online co-member is still told that this user came online).

    The caller has put the socket in its `user:<id>` audience first: a co-member
    who registers concurrently either is in our list or sees us online and
    announces themselves to us, never neither (the registry is linearizable)."""
    _tabs[sid] = _Tab(user=user, status=ONLINE)
    transition = await _write_open(sid=sid, user=user, status=ONLINE)
    online = await selectors.online_co_members(user_id=user["userId"])
    await _announce(user, transition, recipients=[entry["userId"] for entry in online])
    return online[: settings.PRESENCE_LIST_MAX]


async def presence_disconnect(*, sid: str, user: UserRef) -> None:
    """A tab closed. Its user goes offline after the grace if it was the last one."""
    _tabs.pop(sid, None)
    await _close(sid=sid, user_id=user["userId"])


async def presence_set_status(*, sid: str, user: UserRef, status: Status) -> str:
    """The tab is idle (AWAY) or in use again (ONLINE). Returns what the user shows
    now: "online" while any of their tabs is active."""
    _tabs[sid] = _Tab(user=user, status=status)
    return await _open(sid=sid, user=user, status=status)


async def _write_open(*, sid: str, user: UserRef, status: Status) -> Transition:
    try:
        transition, registered = await registry.tab_open(
            user_id=user["userId"], process_id=process_id(), sid=sid, status=status, lease_ms=_lease_ms()
        )
    except Exception:
        _mark_dirty()
        raise
    if not registered:
        # Our lease was gone, so our other tabs were swept: put them back.
        _spawn(_reconcile())
    return transition


async def _open(*, sid: str, user: UserRef, status: Status) -> str:
    """Register the tab with `status`, announce what changed; the shown status."""
    transition = await _write_open(sid=sid, user=user, status=status)
    if transition.change:
        online = await selectors.online_co_members(user_id=user["userId"])
        await _announce(user, transition, recipients=[entry["userId"] for entry in online])
    return transition.status


async def _close(*, sid: str, user_id: str) -> None:
    grace = settings.PRESENCE_GRACE_SECONDS
    try:
        transition = await registry.tab_close(
            user_id=user_id, process_id=process_id(), sid=sid, grace_ms=int(grace * 1000)
        )
    except Exception:
        _mark_dirty()
        raise
    if transition.change == "pending":
        _spawn(_finalize_later(user_id=user_id, delay=grace))
    elif transition.change == "status":
        online = await selectors.online_co_members(user_id=user_id)
        recipients = [entry["userId"] for entry in online]
        await broadcast.user_status_changed(user_id=user_id, status=transition.status, recipients=recipients)


async def _announce(user: UserRef, transition: Transition, *, recipients: list[str]) -> None:
    if transition.change == "online":
        await broadcast.user_came_online(user=user, recipients=recipients)
        if transition.status == AWAY:
            await broadcast.user_status_changed(user_id=user["userId"], status=AWAY, recipients=recipients)
    elif transition.change == "status":
        await broadcast.user_status_changed(user_id=user["userId"], status=transition.status, recipients=recipients)


# --- offline ----------------------------------------------------------------------


async def _finalize_later(*, user_id: str, delay: float) -> None:
    with metrics.phase("grace"):
        # A little past the deadline Redis set, so the deadline has passed by
        # Redis's clock too; if not, the next sweep takes the user offline.
        await asyncio.sleep(delay + 0.05)
        try:
            users = await registry.users_finalize(user_id=user_id)
        except Exception:
            logger.exception("finalizing the offline of user %s failed; the sweeper will retry", user_id)
            return
        await _went_offline(users)


async def _went_offline(users: list[tuple[str, int]]) -> None:
    """Store last seen, then tell co-members: a client that fetches
    `GET /api/presence/` on `presence:offline` finds the new lastSeen."""
    if not users:
        return
    # The registry has already taken these users offline and will not report
    # them again, so a failure here is logged and the next user still gets told.
    try:
        await database_sync_to_async(last_seen_record)(
            seen={user_id: datetime.fromtimestamp(ms / 1000, tz=UTC) for user_id, ms in users}
        )
    except Exception:
        logger.exception("storing last seen of %s failed", [user_id for user_id, _ms in users])
    for user_id, _ms in users:
        try:
            me, others = await database_sync_to_async(selectors.user_and_co_member_refs)(user_id=user_id)
            if me is None:  # deleted meanwhile
                continue
            recipients = list(await registry.statuses([ref["userId"] for ref in others]))
            await broadcast.user_went_offline(user=me, recipients=recipients)
        except Exception:
            logger.exception("announcing the offline of user %s failed", user_id)


def last_seen_record(*, seen: dict[str, datetime]) -> None:
    """Store when each user was last connected. Users deleted meanwhile are skipped."""
    metrics.count(metrics.SQL_QUERIES, 2)
    existing = User.objects.filter(pk__in=[int(uid) for uid in seen]).values_list("pk", flat=True)
    rows = [LastSeen(user_id=pk, at=seen[str(pk)]) for pk in existing]
    try:
        LastSeen.objects.bulk_create(rows, update_conflicts=True, unique_fields=["user"], update_fields=["at"])
    except IntegrityError:  # a user deleted between the two queries
        logger.warning("last seen of %s not stored: a user was deleted meanwhile", sorted(seen))


def presence_co_membership_changed(*, user: User, room_id: str, joined: bool) -> None:
    """After a membership of `user` in `room_id` was created (joined) or removed
    (committed already): tell the user and the online members who became (or
    stopped being) co-members about each other. Sync; call from on_commit.
    One query and one Redis command; nothing at all when nobody changed."""
    changed = selectors.co_members_changed_by(user_id=user.pk, room_id=room_id)
    if not changed:
        return
    me: UserRef = {"userId": str(user.pk), "username": user.get_username()}
    statuses = registry.statuses_sync([me["userId"], *(ref["userId"] for ref in changed)])
    others = selectors.online_among(changed, statuses)
    if not others:
        return
    chat_broadcast.run_from_sync(
        f"presence of user {user.pk} after a membership change in {room_id}",
        functools.partial(
            broadcast.co_membership_changed,
            user=me,
            user_status=statuses.get(me["userId"]),
            others=others,
            joined=joined,
        ),
    )
