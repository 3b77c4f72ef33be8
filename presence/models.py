"""What presence keeps in the database: only when each user was last seen.

Who is online right now lives in Redis (see presence/services.py), because it
changes on every connect and must expire by itself when a process dies.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LastSeen(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="last_seen"
    )
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user} last seen {self.at:%Y-%m-%d %H:%M}"
