"""GET /api/presence/ and last seen: stored when a user goes offline, listed for
co-members only, visible in the admin."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from presence.models import LastSeen
from tests.conftest import token_for
from tests.factories import UserFactory
from tests.presence.conftest import GRACE, about, get_presence, make_world, world


async def test_last_seen_is_stored_on_offline_and_listed_with_status(presence_server, clients):
    # given alice and dave share a room with bob; carol shares none with him
    users = await make_world({"one": ["alice", "bob"], "two": ["bob", "dave"], "three": ["carol", "alice"]})
    alice, bob, carol, dave = (users[n] for n in ("alice", "bob", "carol", "dave"))
    b = await clients().connect(presence_server.url, token=token_for(bob))
    await clients().connect(presence_server.url, token=token_for(dave))
    await clients().connect(presence_server.url, token=token_for(carol))
    a = await clients().connect(presence_server.url, token=token_for(alice))
    await b.wait_for("presence:online", about(alice))

    # when alice leaves and the grace period ends
    left_at = timezone.now()
    await a.disconnect()
    await b.wait_for("presence:offline", about(alice), timeout=GRACE + 3)

    # then the time she left is stored (not the time the grace ended)...
    seen = await sync_to_async(LastSeen.objects.get)(user=alice)
    assert abs((seen.at - left_at).total_seconds()) < 1

    # ...and bob's presence lists his online co-members, as the protocol says...
    status, rows = await get_presence(presence_server, bob)
    assert status == 200
    assert rows == [{"userId": str(dave.pk), "username": "dave", "status": "online", "lastSeen": None}]
    # ...and, asked for, the offline ones too, after the online ones, with when
    # they were last seen
    status, rows = await get_presence(presence_server, bob, "?include=offline")
    assert status == 200
    assert rows == [
        {"userId": str(dave.pk), "username": "dave", "status": "online", "lastSeen": None},
        {
            "userId": str(alice.pk),
            "username": "alice",
            "status": "offline",
            "lastSeen": seen.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    ]


@pytest.mark.django_db
def test_presence_api_needs_a_user_and_takes_a_session_or_a_token(api, api_as):
    # given bob and alice sharing a room, alice seen yesterday
    users = world({"room": ["alice", "bob"]})
    yesterday = timezone.now() - dt.timedelta(days=1)
    LastSeen.objects.create(user=users["alice"], at=yesterday)

    # then anonymous callers are refused
    answer = api.get("/api/presence/")
    assert answer.status_code == 401
    assert answer.json()["code"] == "auth_required"

    # and a token or a session both work; alice is offline, so listed only on request
    assert api_as(users["bob"]).get("/api/presence/").json() == []
    by_token = api_as(users["bob"]).get("/api/presence/?include=offline")
    api.force_login(users["bob"])
    by_session = api.get("/api/presence/?include=offline")
    for answer in (by_token, by_session):
        assert answer.status_code == 200
        [row] = answer.json()
        assert row["username"] == "alice"
        assert row["lastSeen"] is not None
        assert row["status"] in {"offline", "online", "away"}


@pytest.mark.django_db
def test_presence_list_is_one_query(django_assert_num_queries):
    from presence.selectors import presence_list_for_user

    users = world({f"room-{i}": ["bob", f"member{i}", "shared"] for i in range(5)})
    with django_assert_num_queries(1):
        rows, truncated = presence_list_for_user(user=users["bob"], include_offline=True)
    assert not truncated
    assert [row["username"] for row in rows] == [*(f"member{i}" for i in range(5)), "shared"]


@pytest.mark.django_db
def test_admin_shows_last_seen_read_only(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    LastSeen.objects.create(user=UserFactory(username="alice"), at=timezone.now())
    client.force_login(admin)

    changelist = client.get("/admin/presence/lastseen/")
    assert changelist.status_code == 200
    assert "alice" in changelist.content.decode()
    assert client.get("/admin/presence/lastseen/add/").status_code == 403


@pytest.mark.django_db
def test_metrics_are_for_staff_only(api_as):
    assert api_as(UserFactory()).get("/api/presence/metrics/").status_code == 403
    staff = UserFactory(is_staff=True)
    answer = api_as(staff).get("/api/presence/metrics/")
    assert answer.status_code == 200
    assert isinstance(answer.json()["counters"], dict)
