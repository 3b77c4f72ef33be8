"""The presence list is bounded (issue 9, point 4): at most PRESENCE_LIST_MAX
co-members in `presence:list` and `GET /api/presence/`, the online ones first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from presence.api import TRUNCATED_HEADER
from presence.models import LastSeen
from tests.conftest import token_for
from tests.presence.conftest import PRESENCE_ENV, about, ids, make_world, world


@pytest.mark.django_db
def test_the_presence_route_lists_at_most_the_cap_and_says_it_cut(api_as, settings):
    # given bob shares a room with five offline users, two of them seen lately
    settings.PRESENCE_LIST_MAX = 3
    users = world({"big": ["bob", *(f"member{i}" for i in range(5))]})
    now = timezone.now()
    LastSeen.objects.create(user=users["member4"], at=now - timedelta(hours=1))
    LastSeen.objects.create(user=users["member2"], at=now - timedelta(minutes=1))
    client = api_as(users["bob"])

    # when he asks for everyone
    answer = client.get("/api/presence/?include=offline")

    # then three come, the most recently seen first, and a header says more exist
    assert answer.status_code == 200
    assert [row["username"] for row in answer.json()] == ["member2", "member4", "member0"]
    assert answer.headers[TRUNCATED_HEADER] == "true"

    # and the online list (nobody is online) is empty and not cut
    online = client.get("/api/presence/")
    assert online.json() == []
    assert TRUNCATED_HEADER not in online.headers


async def test_presence_list_on_connect_holds_at_most_the_cap(server_factory, clients):
    # given a server that lists at most two co-members, and four online co-members of bob
    server = server_factory("capped", PRESENCE_LIST_MAX="2", **PRESENCE_ENV)
    users = await make_world({"big": ["bob", "carol", "dave", "erin", "frank"]})
    others = [
        await clients().connect(server.url, token=token_for(users[n])) for n in ("carol", "dave", "erin", "frank")
    ]

    # when bob connects
    bob = await clients().connect(server.url, token=token_for(users["bob"]))

    # then his list holds the first two by username
    assert ids(await bob.wait_for("presence:list")) == [str(users["carol"].pk), str(users["dave"].pk)]
    # while every co-member still hears that he came online
    for other in others:
        await other.wait_for("presence:online", about(users["bob"]), timeout=5)
