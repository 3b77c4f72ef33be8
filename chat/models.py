"""What the chat stores: rooms, who is in them, messages and read watermarks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

ROOM_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
room_id_validator = RegexValidator(
    ROOM_ID_PATTERN,
    "Room ids are 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
)


class LiveRoomManager(models.Manager["Room"]):
    """Rooms that are not deleted. It is `Room.objects`, the default manager,
    so every path that looks a room up (access, selectors, services, the REST
    routes, the batch writer's ORM fallback, model forms) cannot see a deleted
    room without asking for `Room.all_objects` by name: a new path that forgets
    about deletion still answers `not_found`."""

    def get_queryset(self) -> models.QuerySet[Room]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class AllRoomsManager(models.Manager["Room"]):
    """Every room, deleted ones too: for the admin, and for ids (a deleted
    room keeps its id, since its messages still point at it)."""


class Room(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DIRECT = "direct"

    # A short string id, because it is what clients see and type (`general`).
    id = models.CharField(primary_key=True, max_length=64, validators=[room_id_validator])
    name = models.CharField(max_length=100)
    topic = models.CharField(max_length=250, blank=True, default="")
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    slow_mode_seconds = models.PositiveIntegerField(default=0)
    # The seq of the newest message. Bumped under the room's row lock in the same
    # transaction that inserts the message, so seqs have neither holes nor twins.
    last_seq = models.BigIntegerField(default=0, editable=False)
    # "<smaller user id>:<larger user id>" for 1:1 rooms: the unique constraint
    # makes "one room per pair" hold even when both users click at once.
    direct_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    # Rooms are soft-deleted (services.room_delete): their messages stay, and
    # the room is `not_found` everywhere. Set only by room_delete/room_restore.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_rooms"
    )

    objects = LiveRoomManager()  # the default: what every path sees
    all_objects = AllRoomsManager()  # deleted rooms too: the admin, ids taken

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or self.id

    def save(self, *args: Any, **kwargs: Any) -> None:
        # `last_seq` is owned by message_send, which bumps it under the row
        # lock. A plain save() of a Room loaded earlier would write back a stale
        # counter and make the next sends collide, so saves of an existing room
        # leave it alone unless asked for by name. `deleted_at` likewise: a
        # stale copy saved after room_delete must not bring the room back.
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in ("last_seq", "deleted_at")
            ]
        super().save(*args, **kwargs)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MODERATOR = "moderator"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="membership_unique_user_room")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room_id} ({self.role})"


class Message(models.Model):
    # Auto-increment ids are allocated while the room row is locked, so inside a
    # room they grow in commit order: `after=<id>` never skips a late commit.
    id = models.BigAutoField(primary_key=True)
    # Messages are never hard-deleted (a hole in `seq` reads as a lost message):
    # rooms are soft-deleted, and a hard delete of a room that has messages is
    # refused (ProtectedError) rather than taking them along.
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="messages")
    seq = models.BigIntegerField()
    # NULL once the author's account is deleted: the messages stay, shown with
    # a placeholder author (schemas.message_payload).
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="chat_messages"
    )
    text = models.TextField(max_length=5000)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    # NULL, not "", for "no clientId": the unique constraint skips NULLs.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_unique_room_seq"),
            models.UniqueConstraint(
                fields=["author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_author_client_id",
            ),
        ]
        # (room, id) serves both "the last N of a room" (walked backwards) and
        # "the messages after id X".
        indexes = [models.Index(fields=["room", "id"], name="message_room_id")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.room_id}/{self.seq}"


class ReadReceipt(models.Model):
    """A read watermark: the user has read every message of the room up to this one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_receipts")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="read_receipts")
    last_read_message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="receipt_unique_user_room")]
        # "Who in this room has read up to message X" (selectors.read_by_for;
        # readCount comes from ReadPosition): the lowest reader ids of a
        # message few have read are a range of the first index, of a message
        # most have read a short walk of the second in user order.
        indexes = [
            models.Index(fields=["room", "last_read_message", "user"], name="receipt_room_read_user"),
            models.Index(fields=["room", "user", "last_read_message"], name="receipt_room_user_read"),
        ]

    def __str__(self) -> str:
        return f"{self.user} read {self.room_id} up to {self.last_read_message_id}"


class ReadPosition(models.Model):
    """How many of the room's read watermarks stand at this message: a
    histogram of ReadReceipt.last_read_message, kept exact by
    services.receipt_mark_read and by a post_delete signal on ReadReceipt
    (chat/signals.py). readCount of a message is the sum of the rows at or past
    it, so it costs one row per distinct watermark position, never one per
    reader. `message_id` is a plain number, not a foreign key: messages are
    only soft-deleted, and the row must not cost a join."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    message_id = models.BigIntegerField()
    readers = models.PositiveIntegerField(default=0)

    class Meta:
        # The unique constraint's index serves `room_id = %s AND message_id >= %s`.
        constraints = [models.UniqueConstraint(fields=["room", "message_id"], name="readposition_unique_room_message")]

    def __str__(self) -> str:
        return f"{self.readers} read {self.room_id} up to {self.message_id}"


class RoomMute(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    reason = models.CharField(max_length=250, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["room", "user", "until"], name="mute_room_user_until")]

    def __str__(self) -> str:
        return f"{self.user} muted in {self.room_id} until {self.until:%Y-%m-%d %H:%M}"


class RoomBan(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=250, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="ban_unique_room_user")]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room_id}"


class SiteBan(models.Model):
    """A record of a site-wide ban; the effect is the user's is_active turned off."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=250, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} banned site-wide"
