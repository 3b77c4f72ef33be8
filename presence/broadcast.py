"""Presence fan-out: the only presence module that emits.

It uses the one Socket.IO server and its client manager, like chat/broadcast.py,
so an event reaches every process through the Channels layer.

The audience is each online co-member's `user:<id>` (every socket of that
user, on any process), all named in ONE emit: python-socketio's `to=[...]`
takes a list and delivers once per socket even when audiences overlap. Cost of
one presence change for a user in k rooms whose rooms hold c distinct
co-members, m of them online:

- SQL: one query returning the c co-members (presence/selectors.py);
- Redis: one HMGET of c fields to keep the m online ones, and one PUBLISH
  carrying m audience names; every process receives that one message and
  looks the m names up in its own socket table;
- sockets: one frame per socket of the m users.

Nothing grows with the number of users online site-wide. `room:<id>` audiences
were the alternative (k names, no co-member query) but they hold only sockets
that joined the room in this session, so a co-member who has not opened the
room would miss the change while `presence:list` (membership-based) said the
opposite. Membership decides, for the list, the events and `GET /api/presence/`
alike; the price is the co-member query and a payload that grows with m.
"""

from __future__ import annotations

from typing import Any

from chat.broadcast import user_audience
from chat.schemas import UserRef
from chat.sockets.server import CHAT_NAMESPACE, sio
from presence import metrics
from presence.schemas import PresenceEntry, StatusPayload


async def _emit(event: str, data: Any, *, recipients: list[str]) -> None:
    if not recipients:
        return
    metrics.count(metrics.EMITS)
    metrics.count(metrics.AUDIENCES, len(recipients))
    await sio.emit(event, data, to=[user_audience(uid) for uid in recipients], namespace=CHAT_NAMESPACE)


async def presence_list_sent(*, sid: str, entries: list[PresenceEntry]) -> None:
    """To the connecting socket only. It is on this process, so nothing is published."""
    metrics.count(f"{metrics.EVENTS}.list")
    await sio.emit("presence:list", entries, to=sid, namespace=CHAT_NAMESPACE, ignore_queue=True)


async def user_came_online(*, user: UserRef, recipients: list[str]) -> None:
    metrics.count(f"{metrics.EVENTS}.online")
    await _emit("presence:online", user, recipients=recipients)


async def user_went_offline(*, user: UserRef, recipients: list[str]) -> None:
    metrics.count(f"{metrics.EVENTS}.offline")
    await _emit("presence:offline", user, recipients=recipients)


async def user_status_changed(*, user_id: str, status: str, recipients: list[str]) -> None:
    metrics.count(f"{metrics.EVENTS}.status")
    payload: StatusPayload = {"userId": user_id, "status": status}
    await _emit("presence:status", payload, recipients=recipients)


async def co_membership_changed(
    *, user: UserRef, user_status: str | None, others: list[PresenceEntry], joined: bool
) -> None:
    """A join made `others` (online) co-members of `user`, or a removal made them
    strangers: each side hears of the other as if they had come online or gone
    offline, so presence lists follow membership without a reconnect."""
    event = "presence:online" if joined else "presence:offline"
    for other in others:
        ref: UserRef = {"userId": other["userId"], "username": other["username"]}
        await _emit(event, ref, recipients=[user["userId"]])
        if joined and other["status"] != "online":
            await user_status_changed(user_id=other["userId"], status=other["status"], recipients=[user["userId"]])
    if user_status is None:  # the user is offline: nobody needs to hear of them
        return
    recipients = [other["userId"] for other in others]
    await _emit(event, user, recipients=recipients)
    if joined and user_status != "online":
        await user_status_changed(user_id=user["userId"], status=user_status, recipients=recipients)
