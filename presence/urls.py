"""REST routes of presence, mounted at /api/presence/."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
