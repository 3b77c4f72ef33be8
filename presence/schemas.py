"""The presence shapes that cross the wire (protocol.md, docs/presence.md)."""

from __future__ import annotations

from typing import TypedDict


class PresenceEntry(TypedDict):
    """An item of `presence:list`: an online co-member and the status they show."""

    userId: str
    username: str
    status: str  # "online" | "away"


class PresenceRow(TypedDict):
    """An item of `GET /api/presence/`."""

    userId: str
    username: str
    status: str  # "online" | "away" | "offline"
    lastSeen: str | None  # when the user last went offline; null if never seen leaving


class StatusPayload(TypedDict):
    """`presence:status`."""

    userId: str
    status: str  # "online" | "away"
