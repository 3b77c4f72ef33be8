"""REST routes of presence, mounted at /api/presence/."""

from __future__ import annotations

from django.urls import URLPattern, path

from presence.api import PresenceListView, PresenceMetricsView

urlpatterns: list[URLPattern] = [
    path("", PresenceListView.as_view(), name="presence-list"),
    path("metrics/", PresenceMetricsView.as_view(), name="presence-metrics"),
]
