"""The shapes that cross the wire, and the one place socket payloads are checked.

Parsers turn untrusted client payloads into small typed values or raise
ChatError(INVALID); everything behind them (access, services) trusts its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from django.contrib.auth.models import User

from chat.errors import ChatError, ErrorCode
from chat.models import ROOM_ID_PATTERN, Message

MAX_TEXT_LENGTH = 5000
MAX_CLIENT_ID_LENGTH = 64
HISTORY_ON_JOIN = 50
HISTORY_SINCE_MAX = 500
PAGE_DEFAULT = 50
PAGE_MAX = 200
# `readBy` lists at most this many readers (the author first, then the lowest
# user ids); `readCount` says how many there are in all (protocol.md, Additions).
READ_BY_MAX = 20
# `GET /api/rooms/` answers at most this many rooms per request (`?limit=`),
# and a `Link: <...>; rel="next"` header when more remain.
ROOMS_PAGE_DEFAULT = 100
ROOMS_PAGE_MAX = 200
MAX_ID_DIGITS = 18  # ids are bigints: anything longer cannot exist

ROOM_ID = re.compile(ROOM_ID_PATTERN)

# The author of a message whose account was deleted: the message stays, with
# `userId: ""` (still a string, and no user has it) and this name.
DELETED_USER_ID = ""
DELETED_USER_NAME = "Deleted user"


class ReplyPreview(TypedDict):
    id: str
    userId: str
    username: str
    text: str


class MessagePayload(TypedDict):
    id: str
    roomId: str
    seq: int
    userId: str
    username: str
    text: str
    replyTo: str | None
    reply: ReplyPreview | None
    clientId: str | None
    attachment: None
    timestamp: str
    editedAt: str | None
    deletedAt: str | None
    readBy: list[str]
    readCount: int


class UserRef(TypedDict):
    userId: str
    username: str


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds and a Z, as protocol.md writes times."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _invalid(message: str) -> ChatError:
    return ChatError(ErrorCode.INVALID, message)


def _storable(value: str) -> bool:
    """PostgreSQL text holds neither NUL nor lone UTF-16 surrogates (which JSON
    can carry as "\\ud800"); refused here, they would fail the INSERT."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: Any, *, required: bool = True) -> str:
    """Trimmed message text of 1..5000 characters."""
    if not isinstance(value, str):
        raise _invalid("text must be a string")
    if not _storable(value):
        raise _invalid("text contains characters that cannot be stored")
    text = value.strip()
    if required and not text:
        raise _invalid("text must not be empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise _invalid(f"text must be at most {MAX_TEXT_LENGTH} characters")
    return text


def parse_room_id(value: Any, field: str = "roomId") -> str:
    if not isinstance(value, str) or not ROOM_ID.match(value):
        raise _invalid(f"{field} must be a room id string")
    return value


def parse_message_id(value: Any, field: str = "messageId") -> int:
    """Message ids travel as strings; plain integers are accepted too."""
    if isinstance(value, bool):
        raise _invalid(f"{field} must be a message id string")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        number = int(value)
    else:
        raise _invalid(f"{field} must be a message id string")
    if number <= 0 or number >= 2**63:
        raise _invalid(f"{field} must be a message id string")
    return number


def parse_client_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_ID_LENGTH or not _storable(value):
        raise _invalid(f"clientId must be a string of 1..{MAX_CLIENT_ID_LENGTH} characters")
    return value


def _require_dict(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _invalid(f"{what} expects an object")
    return payload


@dataclass(frozen=True)
class JoinRequest:
    room_id: str
    since: int | None


@dataclass(frozen=True)
class SendRequest:
    room_id: str
    text: str
    reply_to: int | None
    client_id: str | None


@dataclass(frozen=True)
class TypingRequest:
    room_id: str
    is_typing: bool


@dataclass(frozen=True)
class ReadRequest:
    room_id: str
    message_id: int


def parse_join(payload: Any) -> JoinRequest:
    if isinstance(payload, str):
        return JoinRequest(room_id=parse_room_id(payload), since=None)
    data = _require_dict(payload, "room:join")
    since = data.get("since")
    return JoinRequest(
        room_id=parse_room_id(data.get("roomId")),
        since=None if since is None else parse_message_id(since, "since"),
    )


def parse_leave(payload: Any) -> str:
    if isinstance(payload, dict):
        return parse_room_id(payload.get("roomId"))
    return parse_room_id(payload)


def parse_send(payload: Any) -> SendRequest:
    data = _require_dict(payload, "chat:message")
    if data.get("attachmentId") is not None:
        raise ChatError(ErrorCode.NOT_FOUND, "attachmentId does not name an uploaded attachment")
    reply_to = data.get("replyTo")
    return SendRequest(
        room_id=parse_room_id(data.get("roomId")),
        text=clean_text(data.get("text")),
        reply_to=None if reply_to is None else parse_message_id(reply_to, "replyTo"),
        client_id=parse_client_id(data.get("clientId")),
    )


def parse_typing(payload: Any) -> TypingRequest:
    data = _require_dict(payload, "chat:typing")
    is_typing = data.get("isTyping")
    if not isinstance(is_typing, bool):
        raise _invalid("isTyping must be true or false")
    return TypingRequest(room_id=parse_room_id(data.get("roomId")), is_typing=is_typing)


def parse_read(payload: Any) -> ReadRequest:
    data = _require_dict(payload, "chat:read")
    return ReadRequest(
        room_id=parse_room_id(data.get("roomId")),
        message_id=parse_message_id(data.get("messageId")),
    )


def author_id_of(message: Message) -> str:
    """The message's `userId`: DELETED_USER_ID once the author's account is gone."""
    return DELETED_USER_ID if message.author_id is None else str(message.author_id)


def _author_name(message: Message) -> str:
    return DELETED_USER_NAME if message.author_id is None or message.author is None else message.author.username


def message_payload(message: Message, read_by: list[str], *, read_count: int | None = None) -> MessagePayload:
    """The message object of protocol.md. `message.author` (and `reply_to.author`
    when replying) should be select_related by the caller.

    `read_by`: at most READ_BY_MAX reader ids, the author first; `read_count`:
    how many readers in all, by default len(read_by), which is right when
    `read_by` is complete (a new message: read by its author only)."""
    deleted = message.deleted_at is not None
    reply = message.reply_to if message.reply_to_id is not None else None
    return {
        "id": str(message.pk),
        "roomId": message.room_id,
        "seq": message.seq,
        "userId": author_id_of(message),
        "username": _author_name(message),
        "text": "" if deleted else message.text,
        "replyTo": None if message.reply_to_id is None else str(message.reply_to_id),
        "reply": None
        if reply is None
        else {
            "id": str(reply.pk),
            "userId": author_id_of(reply),
            "username": _author_name(reply),
            "text": "" if reply.deleted_at else reply.text[:200],
        },
        "clientId": message.client_id,
        "attachment": None,
        "timestamp": iso(message.created_at) or "",
        "editedAt": iso(message.edited_at),
        "deletedAt": iso(message.deleted_at),
        "readBy": read_by,
        "readCount": len(read_by) if read_count is None else read_count,
    }


def user_ref(user: User) -> UserRef:
    return {"userId": str(user.pk), "username": user.get_username()}
