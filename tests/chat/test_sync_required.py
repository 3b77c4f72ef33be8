"""broadcast.sync_required in-process: who is told what after the bus recovered.

(The wire, with a real Redis outage between two processes, is in
tests/chat/sockets/test_bus_recovery.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat import broadcast, selectors
from chat.models import Room

pytestmark = pytest.mark.django_db(transaction=True)


class _Manager:
    """What sync_required uses of the manager: its rooms, and emit."""

    def __init__(self, rooms: dict[str, dict[str, Any]]) -> None:
        self.rooms = rooms
        self.emitted: list[tuple[str, Any, dict[str, Any]]] = []

    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        self.emitted.append((event, data, kwargs))


async def test_every_socket_in_a_room_hears_each_of_its_rooms_last_seq():
    # given two rooms with messages, and sockets joined to one or both
    await sync_to_async(Room.objects.create)(id="s-one", name="one", last_seq=7)
    await sync_to_async(Room.objects.create)(id="s-two", name="two", last_seq=3)
    manager = _Manager(
        {
            "/chat": {
                "room:s-one": {"sid-both": "e1", "sid-one": "e2"},
                "room:s-two": {"sid-both": "e1"},
                "room:s-gone": {"sid-one": "e2"},  # a room deleted meanwhile
                "user:1": {"sid-both": "e1", "sid-user-only": "e3"},  # not a room
                None: {"sid-both": "e1", "sid-one": "e2", "sid-user-only": "e3"},
            },
            "/support": {"room:s-two": {"sid-elsewhere": "e4"}},
        }
    )

    # when the bus recovered
    await broadcast.sync_required(manager)  # type: ignore[arg-type]

    # then each socket in a room got one sync:required with its rooms, on this process only
    by_sid = {kwargs["to"]: (event, data, kwargs) for event, data, kwargs in manager.emitted}
    assert sorted(by_sid) == ["sid-both", "sid-one"]
    assert by_sid["sid-both"][:2] == (
        "sync:required",
        {"rooms": [{"roomId": "s-one", "lastSeq": 7}, {"roomId": "s-two", "lastSeq": 3}]},
    )
    assert by_sid["sid-one"][1] == {"rooms": [{"roomId": "s-one", "lastSeq": 7}]}
    assert all(kwargs["namespace"] == "/chat" and kwargs["ignore_queue"] for _, _, kwargs in manager.emitted)


async def test_nobody_in_a_room_means_nothing_to_do():
    manager = _Manager({"/chat": {"user:1": {"sid": "e"}}})
    await broadcast.sync_required(manager)  # type: ignore[arg-type]
    assert manager.emitted == []


def test_the_last_seqs_of_every_room_are_one_query(django_assert_num_queries):
    for n in range(5):
        Room.objects.create(id=f"q-{n}", name=str(n), last_seq=n)
    with django_assert_num_queries(1):
        seqs = selectors.room_last_seqs(room_ids=[f"q-{n}" for n in range(5)] + ["q-unknown"])
    assert seqs == {f"q-{n}": n for n in range(5)}
