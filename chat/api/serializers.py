"""REST's edge: input serializers check every field once (types, lengths, ids),
so views and services trust what they get; output serializers only document
the wire shapes of protocol.md for the OpenAPI schema (the views answer with
the TypedDict payloads the selectors build).

Field names are the wire's camelCase, so a field error names what the client sent.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from chat.errors import ChatError, ErrorCode
from chat.models import Room, room_id_validator
from chat.schemas import (
    MAX_CLIENT_ID_LENGTH,
    MAX_ID_DIGITS,
    MAX_TEXT_LENGTH,
    READ_BY_MAX,
    ROOMS_PAGE_DEFAULT,
    ROOMS_PAGE_MAX,
    clean_text,
    parse_message_id,
)
from chat.selectors import RoomCursor

MAX_NAME_LENGTH = 100
MAX_TOPIC_LENGTH = 250
MAX_REASON_LENGTH = 250
MAX_USERNAME_LENGTH = 150
MAX_MEMBERS_ON_CREATE = 100
# Six hours, as long as Discord's longest slow mode; past that a
# room wants a mute, not a slow mode.
MAX_SLOW_MODE_SECONDS = 6 * 60 * 60


# --- fields -------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: DRF's CharField would turn 42 into "42"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: DRF's IntegerField would also take "5", 5.0 and true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class MessageTextField(StrictCharField):
    """Message text by the same rule as the socket path (schemas.clean_text)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_TEXT_LENGTH)
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data is serializers.empty or data is None:
            return super().run_validation(data)
        try:
            return clean_text(data)
        except ChatError as error:
            raise serializers.ValidationError(error.message) from None


# What parse_message_id takes as a string: a positive bigint's digits (the
# schema used to promise any string, and schemathesis sent "µ").
@extend_schema_field({"type": "string", "pattern": "^0*[1-9][0-9]*$", "maxLength": MAX_ID_DIGITS})
class MessageIdField(serializers.Field):
    """A message id: a string of digits on the wire (integers are accepted)."""

    def to_internal_value(self, data: Any) -> int:
        try:
            return parse_message_id(data, self.field_name or "id")
        except ChatError as error:
            raise serializers.ValidationError(error.message) from None

    def to_representation(self, value: Any) -> str:
        return str(value)


def username_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(max_length=MAX_USERNAME_LENGTH, **kwargs)


def reason_field() -> StrictCharField:
    return StrictCharField(max_length=MAX_REASON_LENGTH, required=False, allow_blank=True, default="")


# --- input --------------------------------------------------------------------


@extend_schema_serializer(component_name="RoomCreate")
class RoomCreateIn(serializers.Serializer):
    name = StrictCharField(max_length=MAX_NAME_LENGTH)
    id = StrictCharField(
        required=False,
        max_length=64,
        validators=[room_id_validator],
        help_text="Derived from the name when absent (`Team chat` -> `team-chat`, then `team-chat-2`).",
    )
    visibility = serializers.ChoiceField(choices=[Room.Visibility.PUBLIC, Room.Visibility.PRIVATE])
    members = serializers.ListField(
        child=username_field(), required=False, max_length=MAX_MEMBERS_ON_CREATE, help_text="usernames"
    )


@extend_schema_serializer(component_name="DirectRoom")
class DirectRoomIn(serializers.Serializer):
    username = username_field()


@extend_schema_serializer(component_name="RoomUpdate")
class RoomUpdateIn(serializers.Serializer):
    name = StrictCharField(max_length=MAX_NAME_LENGTH, required=False)
    topic = StrictCharField(max_length=MAX_TOPIC_LENGTH, required=False, allow_blank=True)
    slowModeSeconds = StrictIntegerField(min_value=0, max_value=MAX_SLOW_MODE_SECONDS, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give at least one of name, topic, slowModeSeconds.")
        return attrs


ROOM_CURSOR_PATTERN = r"^[mp]:[a-z0-9][a-z0-9_-]{0,63}$"


class RoomListQuery(serializers.Serializer):
    cursor = StrictCharField(
        required=False,
        max_length=80,
        # The shape of RoomCursor.encode, so the document says which strings can be cursors.
        validators=[RegexValidator(ROOM_CURSOR_PATTERN, "not a cursor this server gave")],
        help_text='where the page starts: copy it from the previous answer\'s `Link: <...>; rel="next"` header',
    )
    limit = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text=f"default {ROOMS_PAGE_DEFAULT}; values above {ROOMS_PAGE_MAX} are served as {ROOMS_PAGE_MAX}",
    )

    def validate_cursor(self, value: str) -> RoomCursor:
        cursor = RoomCursor.decode(value)
        if cursor is None:
            raise serializers.ValidationError("not a cursor this server gave")
        return cursor


class MessageListQuery(serializers.Serializer):
    before = MessageIdField(required=False, help_text="only messages older than this id")
    after = MessageIdField(required=False, help_text="only messages newer than this id (the page starts right after)")
    limit = serializers.IntegerField(
        min_value=1, required=False, help_text="default 50; values above 200 are served as 200"
    )


@extend_schema_serializer(component_name="MessageSend")
class MessageSendIn(serializers.Serializer):
    text = MessageTextField(help_text=f"trimmed, 1..{MAX_TEXT_LENGTH} characters")
    replyTo = MessageIdField(required=False, allow_null=True)
    clientId = StrictCharField(
        required=False,
        allow_null=True,
        min_length=1,
        max_length=MAX_CLIENT_ID_LENGTH,
        trim_whitespace=False,
        help_text="a resend with the same clientId returns the first message instead of storing another",
    )


@extend_schema_serializer(component_name="MessageEdit")
class MessageEditIn(serializers.Serializer):
    text = MessageTextField()


@extend_schema_serializer(component_name="MuteCreate")
class MuteCreateIn(serializers.Serializer):
    username = username_field()
    until = serializers.DateTimeField(help_text="ISO 8601; a time without an offset is UTC")
    reason = reason_field()


@extend_schema_serializer(component_name="BanCreate")
class BanCreateIn(serializers.Serializer):
    username = username_field()
    reason = reason_field()


# --- output (wire shapes) -----------------------------------------------------


class RoomPayload(TypedDict):
    id: str
    name: str
    visibility: str


class RoomDetailPayload(RoomPayload):
    topic: str
    slowModeSeconds: int


class MutePayload(TypedDict):
    roomId: str
    userId: str
    username: str
    until: str
    reason: str


class BanPayload(TypedDict):
    roomId: str
    userId: str
    username: str
    reason: str


class SiteBanPayload(TypedDict):
    userId: str
    username: str
    reason: str


@extend_schema_serializer(component_name="Error")
class ErrorOut(serializers.Serializer):
    """`{"error", "code", "fields"?}`. Declared in get_fields because a field
    named `fields` would shadow Serializer.fields."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "error": serializers.CharField(help_text="human text, safe to show"),
            "code": serializers.ChoiceField(choices=[code.value for code in ErrorCode]),
            "fields": serializers.DictField(
                required=False,
                # A list field's errors are keyed by index: {"members": {"1": ["Not a valid string."]}}.
                help_text="400: what is wrong with each field (a list of texts, or per item of a list field)",
            ),
        }


DELETED_AUTHOR_HELP = 'the author\'s id; "" once their account was deleted (username is then "Deleted user")'


@extend_schema_serializer(component_name="Reply")
class ReplyOut(serializers.Serializer):
    id = serializers.CharField()
    userId = serializers.CharField(help_text=DELETED_AUTHOR_HELP)
    username = serializers.CharField()
    text = serializers.CharField()


@extend_schema_serializer(component_name="Message")
class MessageOut(serializers.Serializer):
    id = serializers.CharField()
    roomId = serializers.CharField()
    seq = serializers.IntegerField(help_text="1, 2, 3, ... per room, without holes")
    userId = serializers.CharField(help_text=DELETED_AUTHOR_HELP)
    username = serializers.CharField()
    text = serializers.CharField(help_text="empty once deleted")
    replyTo = serializers.CharField(allow_null=True)
    reply = ReplyOut(allow_null=True)
    clientId = serializers.CharField(allow_null=True)
    attachment = serializers.JSONField(allow_null=True)
    timestamp = serializers.DateTimeField()
    editedAt = serializers.DateTimeField(allow_null=True)
    deletedAt = serializers.DateTimeField(allow_null=True)
    readBy = serializers.ListField(
        child=serializers.CharField(),
        max_length=READ_BY_MAX,
        help_text=f"user ids: the author, then the lowest ids of the other readers, at most {READ_BY_MAX} in all",
    )
    readCount = serializers.IntegerField(help_text="how many users have read up to this message, the author included")


@extend_schema_serializer(component_name="MessagePage")
class MessagePageOut(serializers.Serializer):
    messages = MessageOut(many=True, help_text="oldest first")
    hasMore = serializers.BooleanField()


@extend_schema_serializer(component_name="Room")
class RoomOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    # Not a ChoiceField: its enum would collide with RoomCreateIn's narrower one.
    visibility = serializers.CharField(help_text="public, private or direct")


@extend_schema_serializer(component_name="RoomDetail")
class RoomDetailOut(RoomOut):
    topic = serializers.CharField()
    slowModeSeconds = serializers.IntegerField()


@extend_schema_serializer(component_name="RoomSummary")
class RoomSummaryOut(RoomOut):
    topic = serializers.CharField()
    isMember = serializers.BooleanField()
    unreadCount = serializers.IntegerField()
    lastMessage = MessageOut(allow_null=True)


@extend_schema_serializer(component_name="Mute")
class MuteOut(serializers.Serializer):
    roomId = serializers.CharField()
    userId = serializers.CharField()
    username = serializers.CharField()
    until = serializers.DateTimeField()
    reason = serializers.CharField()


@extend_schema_serializer(component_name="Ban")
class BanOut(serializers.Serializer):
    roomId = serializers.CharField()
    userId = serializers.CharField()
    username = serializers.CharField()
    reason = serializers.CharField()


@extend_schema_serializer(component_name="SiteBan")
class SiteBanOut(serializers.Serializer):
    userId = serializers.CharField()
    username = serializers.CharField()
    reason = serializers.CharField()
