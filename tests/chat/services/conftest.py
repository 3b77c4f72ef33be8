"""Fixtures for calling services and views in-process: broadcasts are recorded
instead of emitted, so a test can assert who would have been told what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chat import broadcast


@dataclass
class Sent:
    event: str
    data: Any
    to: str
    skip_user: Any = None  # "others in the room": none of this user's sockets


@dataclass
class BroadcastRecorder:
    sent: list[Sent] = field(default_factory=list)

    def events(self) -> list[str]:
        return [s.event for s in self.sent]

    def of(self, event: str) -> list[Sent]:
        return [s for s in self.sent if s.event == event]


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> BroadcastRecorder:
    """Record every broadcast. Services broadcast in on_commit callbacks, which
    a `db` test runs only inside `django_capture_on_commit_callbacks(execute=True)`."""
    recorder = BroadcastRecorder()

    def emit(
        event: str, data: Any, *, to: str, skip_sid: str | None = None, skip_user: int | str | None = None
    ) -> None:
        recorder.sent.append(Sent(event, data, to, skip_user))

    def removed(*, user: Any, room_id: str, banned: bool) -> None:
        event = "room:banned" if banned else "room:removed"
        recorder.sent.append(Sent(event, {"roomId": room_id}, broadcast.user_audience(user.pk)))

    def closed(*, user_id: int) -> None:
        recorder.sent.append(Sent("sockets:closed", None, broadcast.user_audience(user_id)))

    def room_deleted(*, room_id: str, user_ids: list[int]) -> None:
        # The real one moves the room's sockets out, then emits room:deleted
        # to each member (tests/chat/sockets/test_room_delete.py).
        recorder.sent.append(Sent("room:closed", None, broadcast.room_audience(room_id)))
        for user_id in user_ids:
            recorder.sent.append(Sent("room:deleted", {"roomId": room_id}, broadcast.user_audience(user_id)))

    monkeypatch.setattr(broadcast, "_emit_from_sync", emit)
    monkeypatch.setattr(broadcast, "room_deleted", room_deleted)
    monkeypatch.setattr(broadcast, "user_removed_from_room", removed)
    monkeypatch.setattr(broadcast, "user_sockets_closed", closed)
    return recorder


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Factories set a password for every user; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
