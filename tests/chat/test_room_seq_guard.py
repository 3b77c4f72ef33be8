"""A stale Room object saved after messages were sent must not rewind the seq counter."""

from __future__ import annotations

import pytest

from chat.models import Room
from tests.factories import RoomFactory, UserFactory, post


@pytest.mark.django_db
def test_saving_a_stale_room_keeps_last_seq():
    room = RoomFactory()
    stale = Room.objects.get(pk=room.pk)
    post(room, UserFactory())
    post(room, UserFactory())

    stale.topic = "new topic"
    stale.save()

    room.refresh_from_db()
    assert room.last_seq == 2
    assert room.topic == "new topic"
    third = post(room, UserFactory())
    assert third.seq == 3


@pytest.mark.django_db
def test_unknown_api_path_answers_json_404(client):
    answer = client.get("/api/nothing/here/")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
