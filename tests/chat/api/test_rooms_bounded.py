"""Bounded work per request on the room routes (issue 9, point 4): the room
list is one page at a time, and room creation is throttled per user."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from chat.api.views import RoomCreateThrottle
from chat.models import Membership, Message, Room
from chat.schemas import ROOMS_PAGE_DEFAULT, ROOMS_PAGE_MAX
from tests.chat.api.helpers import assert_error, db_state
from tests.conftest import token_for
from tests.factories import RoomFactory, UserFactory, add_member, post

pytestmark = pytest.mark.django_db


def public_rooms(count: int, *, author: User | None = None, prefix: str = "pub") -> list[Room]:
    """`count` public rooms made in bulk, each with one message when `author` is given."""
    rooms = Room.objects.bulk_create([Room(id=f"{prefix}-{n:04d}", name=f"{prefix} {n}") for n in range(count)])
    if author is not None:
        Message.objects.bulk_create([Message(room=r, seq=1, author=author, text="hi") for r in rooms])
        Room.objects.filter(pk__in=[r.pk for r in rooms]).update(last_seq=1)
    return rooms


def next_link(answer: Any) -> str | None:
    link = answer.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


# --- GET /api/rooms/ ------------------------------------------------------------


def test_list_is_bounded_by_default_and_links_to_the_rest(api_as):
    # given more public rooms than one page holds
    public_rooms(ROOMS_PAGE_DEFAULT + 20)

    # when a user lists rooms without asking for a size
    answer = api_as(UserFactory()).get("/api/rooms/")

    # then one page comes, still a plain list, and a link says where the rest is
    assert answer.status_code == 200
    assert isinstance(answer.json(), list) and len(answer.json()) == ROOMS_PAGE_DEFAULT
    assert next_link(answer) is not None


def test_pages_list_the_users_rooms_first_then_the_others_each_once(api_as):
    # given a user in a private and a public room, and five public rooms they are not in
    user, other = UserFactory(), UserFactory()
    for room_id, visibility in (("zz-mine", "private"), ("aa-mine", "public")):
        add_member(RoomFactory(id=room_id, visibility=visibility), user)
    public_rooms(5, author=other)
    client = api_as(user)

    # when they walk the list two rooms at a time, following the links
    pages, url = [], "/api/rooms/?limit=2"
    while url is not None:
        answer = client.get(url)
        assert answer.status_code == 200
        pages.append([(r["id"], r["isMember"]) for r in answer.json()])
        url = next_link(answer)

    # then their own rooms come first, then the others by id, each exactly once
    assert pages == [
        [("aa-mine", True), ("zz-mine", True)],
        [("pub-0000", False), ("pub-0001", False)],
        [("pub-0002", False), ("pub-0003", False)],
        [("pub-0004", False)],
    ]


@pytest.mark.parametrize("others", [1, 300])
def test_list_costs_the_same_whatever_the_number_of_public_rooms_the_user_is_not_in(
    api_as, django_assert_num_queries, others
):
    # given a user with unread messages in two rooms, and many public rooms with
    # messages they never joined
    user, other = UserFactory(), UserFactory()
    for room_id in ("mine-1", "mine-2"):
        room = RoomFactory(id=room_id)
        add_member(room, user)
        post(room, other, "unread")
    public_rooms(others, author=other)
    client = api_as(user)

    # then a page of 10 costs six queries either way (see test_rooms), and counts
    # unread only in their rooms
    with django_assert_num_queries(6):
        answer = client.get("/api/rooms/?limit=10")
    rooms = answer.json()
    assert len(rooms) == min(10, 2 + others)
    assert [r["unreadCount"] for r in rooms] == [1, 1] + [0] * (len(rooms) - 2)


def test_a_large_limit_is_served_as_the_maximum(api_as):
    public_rooms(ROOMS_PAGE_MAX + 1)
    answer = api_as(UserFactory()).get(f"/api/rooms/?limit={ROOMS_PAGE_MAX * 10}")
    assert len(answer.json()) == ROOMS_PAGE_MAX
    assert f"limit={ROOMS_PAGE_MAX}" in next_link(answer)


@pytest.mark.parametrize(
    ("query", "field"),
    [("cursor=x:general", "cursor"), ("cursor=m:", "cursor"), ("cursor=p:NOT_AN_ID", "cursor"), ("limit=0", "limit")],
)
def test_a_bad_page_request_is_400(api_as, query, field):
    assert_error(api_as(UserFactory()).get(f"/api/rooms/?{query}"), 400, "invalid", field=field)


# --- room creation is throttled ------------------------------------------------


@pytest.fixture
def two_rooms_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    # DRF reads the rates once, at import: the test sets them on the class.
    monkeypatch.setattr(RoomCreateThrottle, "THROTTLE_RATES", {"room_create": "2/hour"})


def test_the_creation_rate_is_the_setting():
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["room_create"] == settings.CHAT_ROOM_CREATE_RATE
    assert RoomCreateThrottle().get_rate() == settings.CHAT_ROOM_CREATE_RATE == "30/hour"


def test_room_creation_past_the_rate_is_429_and_creates_nothing(api_as, two_rooms_an_hour):
    # given a user who created two rooms this hour
    client = api_as(UserFactory())
    for n in range(2):
        assert (
            client.post("/api/rooms/", {"name": f"Room {n}", "visibility": "public"}, format="json").status_code == 201
        )
    before = db_state()

    # when they create a third
    answer = client.post("/api/rooms/", {"name": "One too many", "visibility": "public"}, format="json")

    # then it is refused as rate_limited, says when to retry, and changes nothing
    body = assert_error(answer, 429, "rate_limited")
    assert "too fast" in body["error"]
    assert int(answer.headers["Retry-After"]) > 0
    assert db_state() == before
    # while another user may still create rooms
    created = api_as(UserFactory()).post("/api/rooms/", {"name": "Theirs", "visibility": "private"}, format="json")
    assert created.status_code == 201


def test_bad_input_costs_no_creation_quota(api_as, two_rooms_an_hour):
    client = api_as(UserFactory())
    for _ in range(3):
        assert_error(client.post("/api/rooms/", {"name": "", "visibility": "public"}, format="json"), 400, "invalid")
    for n in range(2):
        assert (
            client.post("/api/rooms/", {"name": f"Room {n}", "visibility": "public"}, format="json").status_code == 201
        )
    # the quota counted the two rooms, and only them
    answer = client.post("/api/rooms/", {"name": "Room 3", "visibility": "public"}, format="json")
    assert_error(answer, 429, "rate_limited")


def test_only_new_direct_rooms_count_against_the_rate(api_as, two_rooms_an_hour):
    # given a user who opened 1:1 rooms with two people
    user = UserFactory()
    people = [UserFactory(username=name) for name in ("bob", "carol", "dave")]
    client = api_as(user)
    for person in people[:2]:
        assert client.post("/api/rooms/direct/", {"username": person.username}, format="json").status_code == 201

    # then reopening them is free, as often as they like
    for _ in range(5):
        assert client.post("/api/rooms/direct/", {"username": "bob"}, format="json").status_code == 200

    # and a third new one is refused, and not created
    assert_error(client.post("/api/rooms/direct/", {"username": "dave"}, format="json"), 429, "rate_limited")
    assert not Membership.objects.filter(user=people[2]).exists()
    # as is a new public room: one quota for both routes
    answer = client.post("/api/rooms/", {"name": "Another", "visibility": "public"}, format="json")
    assert_error(answer, 429, "rate_limited")


def _create(server_url: str, user: User, name: str) -> int:
    request = urllib.request.Request(
        f"{server_url}/api/rooms/",
        data=json.dumps({"name": name, "visibility": "public"}).encode(),
        headers={"Authorization": f"Bearer {token_for(user)}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.redis
def test_the_creation_rate_is_shared_by_every_process(server_factory):
    # given two server processes sharing Redis, each allowing 2 rooms an hour
    first = server_factory("first", CHAT_ROOM_CREATE_RATE="2/hour")
    second = server_factory("second", CHAT_ROOM_CREATE_RATE="2/hour")
    user = UserFactory()

    # when the user creates rooms through one process, then the other
    statuses = [_create(first.url, user, "one"), _create(second.url, user, "two")]
    statuses += [_create(first.url, user, "three"), _create(second.url, user, "four")]

    # then the third and fourth are refused, whichever process takes them
    assert statuses == [201, 201, 429, 429]
