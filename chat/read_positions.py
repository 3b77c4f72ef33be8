"""The ReadPosition histogram: how many read watermarks of a room stand at each
message, so readCount costs one row per distinct position, not one per reader.

Kept exact by signals on ReadReceipt (chat/signals.py): every save that moves a
watermark (services.receipt_mark_read, inside its transaction after the
receipt's select_for_update) and every delete (a user's or a room's cascade).
QuerySet.update() and bulk_create() send no signals: follow them with rebuild().
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Count, F

from chat.models import ReadPosition, ReadReceipt


def enter(*, room_id: str, message_id: int) -> None:
    """One more watermark at this message: one upsert, race-safe on PostgreSQL
    and SQLite (a concurrent first reader turns into an increment)."""
    table = ReadPosition._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (room_id, message_id, readers) VALUES (%s, %s, 1)"  # noqa: S608
            f" ON CONFLICT (room_id, message_id) DO UPDATE SET readers = {table}.readers + 1",
            [room_id, message_id],
        )


def leave(*, room_id: str, message_id: int) -> None:
    """One watermark fewer at this message; the row goes at zero. The UPDATE
    holds the row until commit, so the DELETE sees only our own decrement."""
    rows = ReadPosition.objects.filter(room_id=room_id, message_id=message_id)
    if rows.update(readers=F("readers") - 1):
        rows.filter(readers=0).delete()


def move(*, room_id: str, old: int | None, new: int | None) -> None:
    """A watermark moved (None: none). Forward moves lock the lower row first,
    so concurrent readers take the rows in one order."""
    if old == new:
        return
    if old is not None:
        leave(room_id=room_id, message_id=old)
    if new is not None:
        enter(room_id=room_id, message_id=new)


def recount(room_ids: Iterable[str] | None = None) -> dict[tuple[str, int], int]:
    """What the histogram should hold, counted from the receipts."""
    receipts = ReadReceipt.objects.filter(last_read_message__isnull=False)
    if room_ids is not None:
        receipts = receipts.filter(room_id__in=list(room_ids))
    rows = receipts.values_list("room_id", "last_read_message_id").annotate(n=Count("id")).order_by()
    return {(room_id, message_id): n for room_id, message_id, n in rows}


def rebuild(room_ids: Iterable[str] | None = None) -> None:
    """Recount the histogram of these rooms (all when None) from the receipts."""
    room_ids = None if room_ids is None else list(room_ids)
    with transaction.atomic():
        stale = ReadPosition.objects.all() if room_ids is None else ReadPosition.objects.filter(room_id__in=room_ids)
        stale.delete()
        ReadPosition.objects.bulk_create(
            [ReadPosition(room_id=r, message_id=m, readers=n) for (r, m), n in recount(room_ids).items()],
            batch_size=1000,
        )
