"""Account changes end the user's live sessions: a logout (REST or the page), a
password change, a deactivation or a deletion closes every socket of the user
on every process, and the token those sockets used is refused on reconnect.

Two server processes share Redis; each action is made in this test process (a
third process, as the admin or a management command would) or through the REST
API of one of the servers.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
import socketio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.chat.sockets.conftest import make_users
from tests.conftest import server_env
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

NEW_PASSWORD = "an entirely different passphrase"


@pytest.fixture(scope="module")
def pair(django_db_setup: None) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(env=server_env(), name="accounts-a").start()
    second = ServerProcess(env=server_env(), name="accounts-b").start()
    yield first, second
    first.stop()
    second.stop()


def earlier_token(user: User) -> str:
    """An access token issued a few seconds ago (revocation works in whole seconds)."""
    token = AccessToken.for_user(user)
    token.set_iat(at_time=timezone.now() - timedelta(seconds=5))
    return str(token)


def _post_json(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


async def rest_logout(user: User, servers) -> None:
    refresh = await sync_to_async(RefreshToken.for_user)(user)
    assert await asyncio.to_thread(_post_json, f"{servers[0].url}/api/auth/logout/", {"refresh": str(refresh)}) == 204


@sync_to_async
def page_logout(user: User, servers) -> None:
    browser = Client()
    browser.force_login(user)
    assert browser.post("/logout/").status_code == 302


@sync_to_async
def password_change(user: User, servers) -> None:
    user.set_password(NEW_PASSWORD)
    user.save()


@sync_to_async
def deactivation(user: User, servers) -> None:
    user.is_active = False
    user.save()


@sync_to_async
def deletion(user: User, servers) -> None:
    User.objects.get(pk=user.pk).delete()


@pytest.mark.parametrize("action", [rest_logout, page_logout, password_change, deactivation, deletion])
async def test_an_account_change_closes_the_users_sockets_on_every_process(pair, transactional_db, clients, action):
    # given alice with a socket on each process (WebSocket and long-polling), and bob
    a_server, b_server = pair
    alice, bob = await make_users(2)
    token = earlier_token(alice)
    on_a = await clients().connect(a_server.url, token=token)
    on_b = await clients().connect(b_server.url, token=token, transport="polling")
    bystander = await clients().connect(a_server.url, token=earlier_token(bob))

    # when the action is made
    await action(alice, pair)

    # then both of alice's sockets are closed at once; bob's stays
    await on_a.wait_for("disconnect", timeout=2)
    await on_b.wait_for("disconnect", timeout=2)
    assert bystander.connected
    # and the token they used cannot open a socket again, on either process
    for server in pair:
        again = clients()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await again.connect(server.url, token=token)
        assert again.events["connect_error"] == [{"message": "Invalid token"}]


async def test_a_token_issued_after_a_logout_connects(pair, transactional_db, clients):
    a_server, _ = pair
    (alice,) = await make_users(1)
    await rest_logout(alice, pair)
    fresh = await sync_to_async(lambda: str(RefreshToken.for_user(alice).access_token))()
    client = await clients().connect(a_server.url, token=fresh)
    assert client.connected
