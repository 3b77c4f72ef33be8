"""Last seen in the admin: read-only, because only presence writes it."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from chat.admin import CascadeDeleteOnlyMixin
from presence.models import LastSeen


@admin.register(LastSeen)
class LastSeenAdmin(CascadeDeleteOnlyMixin, admin.ModelAdmin):
    list_display = ["user", "at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    date_hierarchy = "at"
    ordering = ["-at"]
    readonly_fields = ["user", "at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LastSeen | None = None) -> bool:
        return False
