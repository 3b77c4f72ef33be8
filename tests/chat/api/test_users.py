"""GET /api/users/: the directory the chat page searches to start a 1:1 chat."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_search_finds_active_users_prefix_matches_first(api_as, user):
    # given users whose names contain "ann", one of them inactive
    joanna = UserFactory(username="joanna")
    anna = UserFactory(username="anna")
    UserFactory(username="annette", is_active=False)
    UserFactory(username="bob")

    # when searching
    answer = api_as(user).get("/api/users/", {"search": "ANN"})

    # then the active matches come, prefix first, as {userId, username}
    assert answer.status_code == 200
    assert answer.json() == [
        {"userId": str(anna.pk), "username": "anna"},
        {"userId": str(joanna.pk), "username": "joanna"},
    ]


def test_without_search_lists_at_most_twenty(api_as, user):
    UserFactory.create_batch(25)

    answer = api_as(user).get("/api/users/")

    assert answer.status_code == 200
    assert len(answer.json()) == 20
    assert all(set(row) == {"userId", "username"} for row in answer.json())


def test_lookup_by_ids(api_as, user):
    a, b = UserFactory(), UserFactory()
    gone = UserFactory(is_active=False)

    answer = api_as(user).get(f"/api/users/?id={a.pk}&id={b.pk}&id={gone.pk}&id=x")

    assert answer.status_code == 200
    assert {row["userId"] for row in answer.json()} == {str(a.pk), str(b.pk)}


def test_session_authentication_works(api, user: User):
    api.force_login(user)

    assert api.get("/api/users/", {"search": user.username}).json()[0]["username"] == user.username


def test_anonymous_is_refused(api):
    answer = api.get("/api/users/", {"search": "a"})

    assert answer.status_code == 401
    assert answer.json()["code"] == "auth_required"


def test_search_query_count_is_fixed(api_as, user, django_assert_num_queries):
    UserFactory.create_batch(5)
    client = api_as(user)

    # one query for the requesting user (JWT), one for the directory
    with django_assert_num_queries(2):
        client.get("/api/users/", {"search": "user"})
