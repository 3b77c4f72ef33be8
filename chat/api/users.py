"""The user directory the chat page uses to start 1:1 chats, mounted at /api/users/.

`GET /api/users/?search=al` answers `[{userId, username}]`: active users whose
username contains the search (prefix matches first), at most 20. `?id=7&id=9`
looks users up by id instead; the page uses it to name the readers of a
receipt it has only ids for.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.schemas import MAX_ID_DIGITS, UserRef

DIRECTORY_LIMIT = 20
MAX_SEARCH_LENGTH = 150  # Django's username max_length: longer can match nobody


def user_search(*, search: str, limit: int = DIRECTORY_LIMIT) -> QuerySet[Any]:
    """Active users whose username contains `search`, prefix matches first."""
    users = get_user_model().objects.filter(is_active=True)
    if search:
        users = users.filter(username__icontains=search).annotate(
            rank=Case(When(username__istartswith=search, then=Value(0)), default=Value(1), output_field=IntegerField())
        )
        users = users.order_by("rank", "username")
    else:
        users = users.order_by("username")
    return users.only("pk", "username")[:limit]


def user_list_by_ids(*, ids: list[int]) -> QuerySet[Any]:
    return get_user_model().objects.filter(is_active=True, pk__in=ids).only("pk", "username").order_by("username")


class UserDirectoryView(APIView):
    """Signed-in users only (the default permission class)."""

    # Declared, so the schema (and `check --deploy`, which builds it) has no guess to warn about.
    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="part of a username"),
            OpenApiParameter("id", int, many=True, description="user ids, instead of a search"),
        ],
        responses=inline_serializer(
            "UserRef", {"userId": serializers.CharField(), "username": serializers.CharField()}, many=True
        ),
    )
    def get(self, request: Request) -> Response:
        raw_ids = request.query_params.getlist("id")
        if raw_ids:
            ids = [int(i) for i in raw_ids if i.isascii() and i.isdigit() and len(i) <= MAX_ID_DIGITS]
            users = user_list_by_ids(ids=ids[:DIRECTORY_LIMIT])
        else:
            search = request.query_params.get("search", "").strip()[:MAX_SEARCH_LENGTH]
            users = user_search(search=search)
        body: list[UserRef] = [{"userId": str(u.pk), "username": u.get_username()} for u in users]
        return Response(body)


urlpatterns: list[URLPattern] = [
    path("", UserDirectoryView.as_view(), name="user-directory"),
]
