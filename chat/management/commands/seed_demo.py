"""Demo data for `make run`: only when the database has no users yet.

The generated passwords are kept in `.demo-passwords` (git-ignored) so every
later `make run` can print them again.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat.models import Membership, Room


class Command(BaseCommand):
    help = "Create the room `general`, users alice and bob and an admin, and print their passwords."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        saved = Path(settings.BASE_DIR) / ".demo-passwords"
        if User.objects.exists():
            if saved.exists():
                self._print(json.loads(saved.read_text()))
            else:
                self.stdout.write("Demo data: the database already has users; nothing seeded.")
            return
        passwords = {name: secrets.token_urlsafe(9) for name in ("alice", "bob", "admin")}
        admin = User.objects.create_superuser("admin", "admin@example.com", passwords["admin"])
        alice = User.objects.create_user("alice", "alice@example.com", passwords["alice"])
        bob = User.objects.create_user("bob", "bob@example.com", passwords["bob"])
        general = Room.objects.create(id="general", name="General", topic="Say hello", created_by=admin)
        Membership.objects.bulk_create(
            [
                Membership(user=admin, room=general, role=Membership.Role.OWNER),
                Membership(user=alice, room=general),
                Membership(user=bob, room=general),
            ]
        )
        saved.write_text(json.dumps(passwords))
        saved.chmod(0o600)
        self._print(passwords)

    def _print(self, passwords: dict[str, str]) -> None:
        self.stdout.write(self.style.SUCCESS("Demo users (room `general`); sign in at /login/ or /admin/ with:"))
        for name, password in passwords.items():
            self.stdout.write(f"  {name:<6} {password}")
