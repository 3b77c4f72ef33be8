"""The user directory the chat page uses to start 1:1 chats, mounted at /api/users/."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
