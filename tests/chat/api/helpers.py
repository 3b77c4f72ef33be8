"""Assertions shared by the REST tests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from chat.models import Membership, Message, ReadReceipt, Room, RoomBan, RoomMute, SiteBan


def db_state() -> dict[str, Any]:
    """Everything a refused request could have changed, to compare before/after."""
    return {
        "rooms": list(
            Room.objects.order_by("pk").values_list("pk", "name", "topic", "visibility", "slow_mode_seconds")
        ),
        "memberships": list(Membership.objects.order_by("pk").values_list("room_id", "user_id", "role")),
        "messages": list(
            Message.objects.order_by("pk").values_list("pk", "seq", "text", "reply_to_id", "edited_at", "deleted_at")
        ),
        "receipts": list(ReadReceipt.objects.order_by("pk").values_list("user_id", "room_id", "last_read_message_id")),
        "mutes": RoomMute.objects.count(),
        "bans": RoomBan.objects.count(),
        "site_bans": SiteBan.objects.count(),
        "active_users": list(User.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)),
    }


def assert_error(response: Any, status: int, code: str, *, field: str | None = None) -> dict[str, Any]:
    """The error shape of protocol.md: `{"error": <human text>, "code"}` (+ `fields` on 400)."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    assert "Traceback" not in body["error"]
    if field is not None:
        assert field in body["fields"], body
        assert body["fields"][field], body
    return dict(body)
