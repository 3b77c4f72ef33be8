"""REST reads of presence: `GET /api/presence/` (and a staff-only cost counter)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ChatError, ErrorCode
from presence import metrics, selectors

_PresenceRows = inline_serializer(
    "PresenceRow",
    {
        "userId": serializers.CharField(),
        "username": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["online", "away", "offline"]),
        "lastSeen": serializers.DateTimeField(allow_null=True, help_text="When the user last went offline."),
    },
    many=True,
)


TRUNCATED_HEADER = "X-Presence-Truncated"


class PresenceListView(APIView):
    """The online users who share a room with the caller, with status and last
    seen; `?include=offline` lists the offline co-members too, after the
    online ones, the most recently seen first. At most PRESENCE_LIST_MAX rows;
    when more matched, the answer says so in a header (the body stays a list)."""

    @extend_schema(
        responses=_PresenceRows,
        parameters=[
            OpenApiParameter("include", str, enum=["offline"], description="`offline`: list them too"),
            OpenApiParameter(
                TRUNCATED_HEADER,
                str,
                OpenApiParameter.HEADER,
                response=[200],
                enum=["true"],
                description="present when more co-members matched than the list holds (PRESENCE_LIST_MAX)",
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        include = request.query_params.get("include")
        if include not in (None, "offline"):
            # As the schema says: an unknown value is a mistake, not "online only".
            message = "the only value is `offline`"
            raise ChatError(ErrorCode.INVALID, f"include: {message}", fields={"include": [message]})
        listed = selectors.presence_list_for_user(user=request.user, include_offline=include == "offline")  # type: ignore[arg-type]
        response = Response(listed.rows)
        if listed.truncated:
            response[TRUNCATED_HEADER] = "true"
        return response


class PresenceMetricsView(APIView):
    """This process's presence cost counters (presence/metrics.py), for the bench."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=inline_serializer("PresenceMetrics", {"counters": serializers.DictField()}))
    def get(self, request: Request) -> Response:
        return Response({"counters": metrics.snapshot()})
