"""Reads: who of a user's co-members is online, with what status, and when the
others were last seen.

Co-members come from the database (Membership: users who share a room), the
online state from the Redis registry (presence/registry.py). Each function
runs a fixed number of queries and Redis commands, whatever the room sizes.
"""

from __future__ import annotations

from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from chat.models import Membership
from chat.schemas import UserRef, iso
from presence import metrics, registry
from presence.schemas import PresenceEntry, PresenceRow

OFFLINE = "offline"


def _co_members(user_id: int | str) -> QuerySet[User]:
    # Deleted rooms (chat's soft delete) make nobody co-members.
    rooms = Membership.objects.filter(user_id=user_id, room__deleted_at__isnull=True).values("room_id")
    # A co-member of several shared rooms is one row.
    return User.objects.filter(memberships__room_id__in=rooms).exclude(pk=user_id).distinct().order_by("username")


def co_member_refs(*, user_id: int | str) -> list[UserRef]:
    """Everyone who shares at least one room with the user, each once. One query."""
    metrics.count(metrics.SQL_QUERIES)
    rows = _co_members(user_id).values_list("pk", "username")
    return [{"userId": str(pk), "username": name} for pk, name in rows]


def user_and_co_member_refs(*, user_id: int | str) -> tuple[UserRef | None, list[UserRef]]:
    """The user (None if deleted) and their co-members. One query."""
    metrics.count(metrics.SQL_QUERIES)
    rows = User.objects.filter(Q(pk=user_id) | Q(pk__in=_co_members(user_id).values("pk"))).values_list(
        "pk", "username"
    )
    me: UserRef | None = None
    others: list[UserRef] = []
    for pk, name in rows.order_by("username"):
        ref: UserRef = {"userId": str(pk), "username": name}
        if str(pk) == str(user_id):
            me = ref
        else:
            others.append(ref)
    return me, others


def co_members_changed_by(*, user_id: int | str, room_id: str) -> list[UserRef]:
    """Members of the room who share no other room with the user: the ones a
    join makes co-members, or a removal makes strangers. One query."""
    metrics.count(metrics.SQL_QUERIES)
    shared_elsewhere = Membership.objects.filter(
        room__memberships__user_id=user_id, room__deleted_at__isnull=True
    ).exclude(room_id=room_id)
    rows = (
        User.objects.filter(memberships__room_id=room_id)
        .exclude(pk=user_id)
        .exclude(pk__in=shared_elsewhere.values("user_id"))
        .values_list("pk", "username")
        .order_by("username")
    )
    return [{"userId": str(pk), "username": name} for pk, name in rows]


def online_among(refs: list[UserRef], statuses: dict[str, str]) -> list[PresenceEntry]:
    return [{**ref, "status": statuses[ref["userId"]]} for ref in refs if ref["userId"] in statuses]


async def online_co_members(*, user_id: int | str) -> list[PresenceEntry]:
    """The co-members who are online now, with their status. One query, one Redis command."""
    refs = await database_sync_to_async(co_member_refs)(user_id=user_id)
    return online_among(refs, await registry.statuses([ref["userId"] for ref in refs]))


async def user_status(*, user_id: int | str) -> str:
    """ "online", "away" or "offline"."""
    return (await registry.statuses([str(user_id)])).get(str(user_id), OFFLINE)


class PresenceList(NamedTuple):
    rows: list[PresenceRow]
    truncated: bool  # more co-members matched than PRESENCE_LIST_MAX


def presence_list_for_user(*, user: User, include_offline: bool = False) -> PresenceList:
    """Co-members with status and last seen (`GET /api/presence/`): the online
    (and away) ones by username, as protocol.md says; with `include_offline`,
    the offline ones after them, the most recently seen first. At most
    PRESENCE_LIST_MAX rows, the online ones before any offline one.
    One query, one Redis command."""
    metrics.count(metrics.SQL_QUERIES)
    rows = list(_co_members(user.pk).values_list("pk", "username", "last_seen__at"))
    statuses = registry.statuses_sync([str(pk) for pk, _name, _at in rows])
    listed: list[PresenceRow] = [
        {"userId": str(pk), "username": name, "status": statuses.get(str(pk), OFFLINE), "lastSeen": iso(at)}
        for pk, name, at in rows
    ]
    online = [row for row in listed if row["status"] != OFFLINE]
    if include_offline:
        offline = [row for row in listed if row["status"] == OFFLINE]
        # ISO times in UTC sort as text; never seen leaving (None) last.
        offline.sort(key=lambda row: row["lastSeen"] or "", reverse=True)
        online += offline
    cap = settings.PRESENCE_LIST_MAX
    return PresenceList(online[:cap], len(online) > cap)
