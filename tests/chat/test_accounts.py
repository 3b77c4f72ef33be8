"""The login throttle on the two sign-in pages (the page's and the admin's),
and which account changes end a user's sessions (chat/accounts.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from chat import accounts
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOCKOUT = "Too many failed sign-in attempts. Try again in 15 minutes."
SURFACES = [
    pytest.param("/login/", {}, id="login page"),
    pytest.param("/admin/login/", {"next": "/admin/"}, id="admin login"),
]


def sign_in(path, extra, username, password, address):
    browser = Client(REMOTE_ADDR=address)
    return browser.post(path, {"username": username, "password": password, **extra})


@pytest.mark.parametrize(("path", "extra"), SURFACES)
def test_a_sign_in_page_locks_a_username_after_repeated_failures(settings, path, extra):
    UserFactory(username="alice", is_staff=True)
    UserFactory(username="bob", is_staff=True)
    # given failures for alice below the limit: the form answers as usual
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(path, extra, "alice", "wrong", f"198.51.100.{n + 10}").status_code == 200
    # when one more fails, the page says why, with 429
    locked = sign_in(path, extra, "alice", "wrong", "198.51.100.30")
    assert locked.status_code == 429
    assert LOCKOUT in locked.content.decode()
    assert locked["Retry-After"] == str(15 * 60)
    # then alice's correct password is refused too
    again = sign_in(path, extra, "alice", PASSWORD, "203.0.113.7")
    assert again.status_code == 429 and "_auth_user_id" not in again.client.session
    # and bob from another address signs in
    bob = sign_in(path, extra, "bob", PASSWORD, "203.0.113.8")
    assert bob.status_code == 302 and bob.client.session["_auth_user_id"] == str(User.objects.get(username="bob").pk)


@pytest.mark.parametrize(("path", "extra"), SURFACES)
def test_a_sign_in_page_locks_an_address_that_sprays_usernames(settings, path, extra):
    UserFactory(username="alice", is_staff=True)
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(path, extra, f"guess{n}", "wrong", "198.51.100.66")
    assert sign_in(path, extra, "alice", PASSWORD, "198.51.100.66").status_code == 429
    assert sign_in(path, extra, "alice", PASSWORD, "203.0.113.9").status_code == 302


def test_the_lockout_page_passes_the_content_security_policy(settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked = sign_in("/login/", {}, "alice", "wrong", "198.51.100.1")
    assert locked.status_code == 429
    assert "script-src 'self'" in locked["Content-Security-Policy"]


# --- What ends a user's sessions ---------------------------------------------------


@pytest.fixture
def ended(monkeypatch):
    """User ids whose sessions were ended (sockets closed), in order."""
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        accounts, "_sessions_ended", lambda user_id, *, revoke_tokens: calls.append((user_id, revoke_tokens))
    )
    return calls


def test_a_password_change_ends_sessions_and_revokes_refresh_tokens(ended, django_capture_on_commit_callbacks):
    alice = UserFactory()
    refresh = RefreshToken.for_user(alice)
    with django_capture_on_commit_callbacks(execute=True):
        alice.set_password("a new and different passphrase")
        alice.save()
    assert ended == [(alice.pk, True)]
    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()


def test_a_deactivation_ends_sessions(ended, django_capture_on_commit_callbacks):
    alice = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = False
        alice.save(update_fields=["is_active"])
    assert ended == [(alice.pk, True)]


def test_a_deletion_ends_sessions(ended, django_capture_on_commit_callbacks):
    alice = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.get(pk=alice.pk).delete()
    assert ended == [(alice.pk, False)]


def test_a_session_logout_ends_sessions(ended, django_capture_on_commit_callbacks):
    alice = UserFactory()
    browser = Client()
    browser.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post("/logout/").status_code == 302
    assert ended == [(alice.pk, True)]


def test_ordinary_saves_end_nothing(ended, django_capture_on_commit_callbacks, django_assert_num_queries):
    with django_capture_on_commit_callbacks(execute=True):
        alice = UserFactory()  # the factory sets the first password in a second save
        alice.first_name = "Alice"
        alice.save()
        alice.is_active = True
        alice.save()
        # a sign-in saves last_login only: not even the query that compares
        with django_assert_num_queries(1):
            alice.save(update_fields=["last_login"])
        # check_password re-hashing with new hasher settings is the same password
        alice.set_password(PASSWORD)
        alice._password = None
        alice.save(update_fields=["password"])
    assert ended == []


def test_access_tokens_are_refused_when_issued_before_a_revocation():
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import AccessToken

    alice = UserFactory()
    before = AccessToken.for_user(alice)
    before.set_iat(at_time=timezone.now() - timedelta(seconds=5))
    accounts.access_tokens_revoke(user_id=alice.pk)
    after = AccessToken.for_user(alice)
    assert accounts.access_token_revoked(user_id=alice.pk, issued_at=before["iat"])
    assert not accounts.access_token_revoked(user_id=alice.pk, issued_at=after["iat"])
    assert not accounts.access_token_revoked(user_id=UserFactory().pk, issued_at=before["iat"])


async def test_the_login_page_locks_out_on_a_real_server_too(server, settings):
    """Through uvicorn (Django's async middleware path, not the test client's)."""
    import re

    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:

        async def attempt(password: str) -> tuple[int, str]:
            async with session.get(f"{server.url}/login/") as page:
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await page.text()).group(1)
            form = {"username": "nobody-here", "password": password, "csrfmiddlewaretoken": token}
            async with session.post(f"{server.url}/login/", data=form, allow_redirects=False) as answer:
                return answer.status, await answer.text()

        statuses = [await attempt("wrong") for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert [status for status, _ in statuses] == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert LOCKOUT in statuses[-1][1]
