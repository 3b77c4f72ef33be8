"""The refusals of a send, code and words, in one place.

A send is checked on two paths: the ORM (access.access_room_for_send, then
services.message_send) and the batch statement of chat/message_writer.py,
which checks the same rules in SQL and only reports which one failed. Both
build their answer here, so they cannot say different things;
tests/chat/test_send_paths.py runs one table of cases through both.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chat.errors import ChatError, ErrorCode

BANNED_MESSAGE = "You are banned from this room"
PRIVATE_MESSAGE = "This room is private"
NOT_MEMBER_MESSAGE = "Join the room before sending to it"
NOT_MEMBER_READ_MESSAGE = "Join the room before marking it read"
NO_REPLY_MESSAGE = "replyTo does not name a message of this room"
INACTIVE_MESSAGE = "This account is deactivated"
CLIENT_ID_ELSEWHERE_MESSAGE = "clientId was already used for a message in another room"


def room_not_found(room_id: str) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"Room {room_id!r} does not exist")


def banned() -> ChatError:
    return ChatError(ErrorCode.BANNED, BANNED_MESSAGE)


def private_room() -> ChatError:
    return ChatError(ErrorCode.FORBIDDEN, PRIVATE_MESSAGE)


def not_a_member() -> ChatError:
    return ChatError(ErrorCode.FORBIDDEN, NOT_MEMBER_MESSAGE)


def muted(until: datetime) -> ChatError:
    return ChatError(ErrorCode.MUTED, f"You are muted in this room until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC")


def no_reply() -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, NO_REPLY_MESSAGE)


def inactive_author() -> ChatError:
    # A socket outlives the check at its handshake: an account deactivated
    # since (a site ban, the admin) must not write through it.
    return ChatError(ErrorCode.FORBIDDEN, INACTIVE_MESSAGE)


def client_id_used_elsewhere() -> ChatError:
    return ChatError(
        ErrorCode.INVALID, CLIENT_ID_ELSEWHERE_MESSAGE, fields={"clientId": ["already used in another room"]}
    )


def rate_limited(retry_after_seconds: float) -> ChatError:
    return ChatError(ErrorCode.RATE_LIMITED, f"You are sending too fast: try again in {retry_after_seconds:.1f} s")


def slow_mode(wait_seconds: float) -> ChatError:
    return ChatError(ErrorCode.RATE_LIMITED, f"Slow mode is on: you can send again in {max(wait_seconds, 0):.0f} s")
