"""Keeps the ReadPosition histogram (chat/read_positions.py) exact whenever a
read receipt is saved or deleted."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_init, post_save

from chat import read_positions
from chat.models import ReadReceipt


def _receipt_loaded(sender: type[ReadReceipt], instance: ReadReceipt, **kwargs: Any) -> None:
    # The watermark as loaded, to know which position a save or delete leaves
    # (a new receipt's "created" tells the save it left none).
    if "last_read_message_id" in instance.__dict__:  # not deferred
        instance._stored_watermark = instance.last_read_message_id  # type: ignore[attr-defined]


def _receipt_saved(sender: type[ReadReceipt], instance: ReadReceipt, created: bool, **kwargs: Any) -> None:
    old = None if created else getattr(instance, "_stored_watermark", None)
    read_positions.move(room_id=instance.room_id, old=old, new=instance.last_read_message_id)
    instance._stored_watermark = instance.last_read_message_id  # type: ignore[attr-defined]


def _receipt_deleted(sender: type[ReadReceipt], instance: ReadReceipt, **kwargs: Any) -> None:
    # Sent for cascades too (a user's or a room's deletion) and for queryset
    # deletes: a receiver turns Django's fast delete into per-row signals.
    old = getattr(instance, "_stored_watermark", instance.__dict__.get("last_read_message_id"))
    read_positions.move(room_id=instance.room_id, old=old, new=None)


def connect_signals() -> None:
    uid = "chat.read_positions.receipt_"
    post_init.connect(_receipt_loaded, sender=ReadReceipt, dispatch_uid=uid + "loaded")
    post_save.connect(_receipt_saved, sender=ReadReceipt, dispatch_uid=uid + "saved")
    post_delete.connect(_receipt_deleted, sender=ReadReceipt, dispatch_uid=uid + "deleted")
