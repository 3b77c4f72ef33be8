"""The REST transport of protocol.md: parse, check access, call one service or
selector, answer. Rule breaks are ChatErrors, turned into `{"error", "code",
"fields"?}` by chat.api.errors; authentication (JWT, or the page's session) and
the 401 come from DRF before any handler runs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from chat import access, selectors, services
from chat.api.serializers import (
    BanCreateIn,
    BanOut,
    BanPayload,
    DirectRoomIn,
    ErrorOut,
    MessageEditIn,
    MessageListQuery,
    MessageOut,
    MessagePageOut,
    MessageSendIn,
    MuteCreateIn,
    MuteOut,
    MutePayload,
    RoomCreateIn,
    RoomDetailOut,
    RoomDetailPayload,
    RoomListQuery,
    RoomOut,
    RoomPayload,
    RoomSummaryOut,
    RoomUpdateIn,
    SiteBanOut,
    SiteBanPayload,
)
from chat.errors import ChatError, ErrorCode
from chat.models import Room
from chat.schemas import PAGE_DEFAULT, PAGE_MAX, ROOMS_PAGE_DEFAULT, ROOMS_PAGE_MAX, iso, parse_message_id

ROOM_ID = OpenApiParameter("room_id", str, OpenApiParameter.PATH, description="the room's id, e.g. `general`")
MESSAGE_ID = OpenApiParameter("message_id", str, OpenApiParameter.PATH, description="the message's id")


def _errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorOut) for code in (401, *statuses)}


def _user(request: Request) -> User:
    """The signed-in user; IsAuthenticated (the default permission) ran before."""
    user = request.user
    if not isinstance(user, User):
        raise ChatError(ErrorCode.AUTH_REQUIRED, "Authentication required")
    return user


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _message_id(value: str) -> int:
    """A message id from the path: one that cannot exist is simply not found."""
    try:
        return parse_message_id(value)
    except ChatError:
        raise ChatError(ErrorCode.NOT_FOUND, f"Message {value!r} does not exist in this room") from None


def _room_payload(room: Room) -> RoomPayload:
    return {"id": room.pk, "name": room.name, "visibility": room.visibility}


def _room_detail_payload(room: Room) -> RoomDetailPayload:
    return {**_room_payload(room), "topic": room.topic, "slowModeSeconds": room.slow_mode_seconds}


class ChatAPIView(APIView):
    # JSON only: a form-encoded body is bad input, not another way in.
    parser_classes = [JSONParser]


class RoomCreateThrottle(UserRateThrottle):
    """Rooms a user may create, per user, counted in Django's cache (Redis with
    REDIS_URL, so every process shares it): REST_FRAMEWORK's
    DEFAULT_THROTTLE_RATES["room_create"], from CHAT_ROOM_CREATE_RATE."""

    scope = "room_create"


def _throttle_room_creation(view: APIView, request: Request) -> None:
    """Charge one room creation, or refuse it with 429 `rate_limited`.

    Called by the views after the input is checked (bad input costs no quota)
    and only when a room is about to be created (reopening an existing 1:1
    room is free)."""
    throttle = RoomCreateThrottle()
    if not throttle.allow_request(request, view):
        raise exceptions.Throttled(wait=throttle.wait(), detail="You are creating rooms too fast.")


# --- rooms --------------------------------------------------------------------


NEXT_PAGE = OpenApiParameter(
    "Link",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description='`<url>; rel="next"` when more rooms remain: the same request with a `cursor`',
)


class RoomListView(ChatAPIView):
    @extend_schema(
        summary="A page of the rooms the user can see: their own first, then the other public rooms",
        description=(
            f"At most `limit` rooms (default {ROOMS_PAGE_DEFAULT}, at most {ROOMS_PAGE_MAX}); when more "
            'remain, a `Link: <url>; rel="next"` header gives the next page.'
        ),
        parameters=[RoomListQuery, NEXT_PAGE],
        responses={200: RoomSummaryOut(many=True), **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(RoomListQuery, request.query_params)
        limit = min(query.get("limit", ROOMS_PAGE_DEFAULT), ROOMS_PAGE_MAX)
        rooms, next_cursor = selectors.room_list_for_user(_user(request), cursor=query.get("cursor"), limit=limit)
        response = Response(rooms)
        if next_cursor is not None:
            params = urlencode({"cursor": next_cursor.encode(), "limit": limit})
            response["Link"] = f'<{request.path}?{params}>; rel="next"'
        return response

    @extend_schema(
        summary="Create a public or private room; the creator becomes its owner",
        request=RoomCreateIn,
        responses={201: RoomOut, **_errors(400, 429)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(RoomCreateIn, request.data)
        members = access.access_users(data["members"]) if data.get("members") else []
        _throttle_room_creation(self, request)
        room = services.room_create(
            creator=_user(request),
            room_id=data.get("id"),
            name=data["name"],
            visibility=data["visibility"],
            members=members,
        )
        return Response(_room_payload(room), status=status.HTTP_201_CREATED)


class DirectRoomView(ChatAPIView):
    @extend_schema(
        summary="The one 1:1 room of the user and another (201 when created, 200 after)",
        request=DirectRoomIn,
        responses={201: RoomOut, 200: RoomOut, **_errors(400, 404, 429)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(DirectRoomIn, request.data)
        user = _user(request)
        other = access.access_user(data["username"])
        if other.pk != user.pk and not selectors.direct_room_exists(user=user, other=other):
            _throttle_room_creation(self, request)
        room, created = services.room_get_or_create_direct(user=user, other=other)
        return Response(_room_payload(room), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RoomDetailView(ChatAPIView):
    @extend_schema(
        summary="One room the user can see",
        parameters=[ROOM_ID],
        responses={200: RoomDetailOut, **_errors(403, 404)},
    )
    def get(self, request: Request, room_id: str) -> Response:
        return Response(_room_detail_payload(access.access_room(_user(request), room_id)))

    @extend_schema(
        summary="Rename a room, set its topic or slow mode (owners and moderators)",
        parameters=[ROOM_ID],
        request=RoomUpdateIn,
        responses={200: RoomDetailOut, **_errors(400, 403, 404)},
    )
    def patch(self, request: Request, room_id: str) -> Response:
        data = _valid(RoomUpdateIn, request.data)
        room = access.access_room_for_moderation(_user(request), room_id)
        room = services.room_update(
            room=room, name=data.get("name"), topic=data.get("topic"), slow_mode_seconds=data.get("slowModeSeconds")
        )
        return Response(_room_detail_payload(room))


# --- messages -----------------------------------------------------------------


class RoomMessagesView(ChatAPIView):
    @extend_schema(
        summary="A page of a room's messages, oldest first",
        parameters=[ROOM_ID, MessageListQuery],
        responses={200: MessagePageOut, **_errors(400, 403, 404)},
    )
    def get(self, request: Request, room_id: str) -> Response:
        query = _valid(MessageListQuery, request.query_params)
        room = access.access_room(_user(request), room_id)
        messages, has_more = selectors.message_list_for_room(
            room=room,
            before=query.get("before"),
            after=query.get("after"),
            limit=min(query.get("limit", PAGE_DEFAULT), PAGE_MAX),
        )
        return Response({"messages": selectors.payloads(messages), "hasMore": has_more})

    @extend_schema(
        summary="Post a message (members only); broadcast like a socket send",
        parameters=[ROOM_ID],
        request=MessageSendIn,
        responses={
            201: MessageOut,
            200: OpenApiResponse(MessageOut, description="a resend of a stored clientId: the first message"),
            **_errors(400, 403, 404, 429),
        },
    )
    def post(self, request: Request, room_id: str) -> Response:
        data = _valid(MessageSendIn, request.data)
        user = _user(request)
        room = access.access_room_for_send(user, room_id)
        result = services.message_send(
            sender=user, room=room, text=data["text"], reply_to_id=data.get("replyTo"), client_id=data.get("clientId")
        )
        [payload] = selectors.payloads([result.message])
        return Response(payload, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class MessageDetailView(ChatAPIView):
    @extend_schema(
        summary="Edit a message (its author, inside the edit window)",
        parameters=[ROOM_ID, MESSAGE_ID],
        request=MessageEditIn,
        responses={200: MessageOut, **_errors(400, 403, 404)},
    )
    def patch(self, request: Request, room_id: str, message_id: str) -> Response:
        data = _valid(MessageEditIn, request.data)
        user = _user(request)
        room = access.access_room(user, room_id)
        message = access.access_message(user, room, _message_id(message_id))
        message = services.message_edit(editor=user, message=message, text=data["text"])
        [payload] = selectors.payloads([message])
        return Response(payload)

    @extend_schema(
        summary="Delete a message (its author or a moderator)",
        parameters=[ROOM_ID, MESSAGE_ID],
        responses={204: None, **_errors(403, 404)},
    )
    def delete(self, request: Request, room_id: str, message_id: str) -> Response:
        user = _user(request)
        room = access.access_room(user, room_id)
        message = access.access_message(user, room, _message_id(message_id))
        services.message_delete(actor=user, message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- moderation ---------------------------------------------------------------


class RoomMutesView(ChatAPIView):
    @extend_schema(
        summary="Mute a user in a room until a time (owners and moderators)",
        parameters=[ROOM_ID],
        request=MuteCreateIn,
        responses={201: MuteOut, **_errors(400, 403, 404)},
    )
    def post(self, request: Request, room_id: str) -> Response:
        data = _valid(MuteCreateIn, request.data)
        moderator = _user(request)
        room = access.access_room_for_moderation(moderator, room_id)
        target = access.access_user(data["username"])
        mute = services.mute_create(
            moderator=moderator, room=room, user=target, until=data["until"], reason=data["reason"]
        )
        payload: MutePayload = {
            "roomId": room.pk,
            "userId": str(target.pk),
            "username": target.username,
            "until": iso(mute.until) or "",
            "reason": mute.reason,
        }
        return Response(payload, status=status.HTTP_201_CREATED)


class RoomBansView(ChatAPIView):
    @extend_schema(
        summary="Ban a user from a room: removed at once, cannot rejoin (owners and moderators)",
        parameters=[ROOM_ID],
        request=BanCreateIn,
        responses={201: BanOut, **_errors(400, 403, 404)},
    )
    def post(self, request: Request, room_id: str) -> Response:
        data = _valid(BanCreateIn, request.data)
        moderator = _user(request)
        room = access.access_room_for_moderation(moderator, room_id)
        target = access.access_user(data["username"])
        ban = services.ban_create(moderator=moderator, room=room, user=target, reason=data["reason"])
        payload: BanPayload = {
            "roomId": room.pk,
            "userId": str(target.pk),
            "username": target.username,
            "reason": ban.reason,
        }
        return Response(payload, status=status.HTTP_201_CREATED)


class SiteBansView(ChatAPIView):
    @extend_schema(
        summary="Ban a user site-wide: every socket closed, tokens refused (site moderators: staff)",
        request=BanCreateIn,
        responses={201: SiteBanOut, **_errors(400, 403, 404)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(BanCreateIn, request.data)
        moderator = access.access_site_moderation(_user(request))
        target = access.access_user(data["username"], include_inactive=True)
        ban = services.site_ban_create(moderator=moderator, user=target, reason=data["reason"])
        payload: SiteBanPayload = {"userId": str(target.pk), "username": target.username, "reason": ban.reason}
        return Response(payload, status=status.HTTP_201_CREATED)
