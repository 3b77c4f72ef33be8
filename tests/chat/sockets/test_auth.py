"""The /chat handshake: JWT or the same-origin session cookie, and the refusals
of protocol.md."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import jwt
import pytest
import socketio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from tests.chat.sockets.conftest import TRANSPORTS, joined, make_room, make_users
from tests.conftest import token_for

AUTH_REQUIRED = {"message": "Authentication required"}
INVALID_TOKEN = {"message": "Invalid token"}


async def refused(client, url, *, transport="websocket", **kwargs):
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, transport=transport, **kwargs)
    assert not client.connected
    return client.events["connect_error"]


@sync_to_async
def session_cookie(user: User) -> str:
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


@sync_to_async
def deactivate(user: User) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


def expired_token(user: User) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=2))
    return str(token)


def forged_token(user: User) -> str:
    claims = jwt.decode(token_for(user), options={"verify_signature": False})
    return jwt.encode(claims, "not-the-server-secret-key-but-long-enough-for-hs256", algorithm="HS256")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_valid_token_connects_and_works(server, clients, transport):
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    client = await clients().connect(server.url, token=token_for(alice), transport=transport)
    assert client.connected
    await joined(client, room)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_credentials_is_authentication_required(server, clients, transport):
    assert await refused(clients(), server.url, transport=transport) == [AUTH_REQUIRED]
    assert await refused(clients(), server.url, transport=transport, auth={}) == [AUTH_REQUIRED]
    assert await refused(clients(), server.url, transport=transport, auth={"token": None}) == [AUTH_REQUIRED]


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda user: "not-a-jwt", id="garbage"),
        pytest.param(lambda user: "", id="empty"),
        pytest.param(lambda user: 12345, id="not-a-string"),
        pytest.param(expired_token, id="expired"),
        pytest.param(forged_token, id="forged"),
        pytest.param(lambda user: token_for(user)[:-4] + "AAAA", id="bad-signature"),
    ],
)
async def test_a_bad_token_is_invalid_token(server, clients, make_token):
    (alice,) = await make_users(1)
    assert await refused(clients(), server.url, auth={"token": make_token(alice)}) == [INVALID_TOKEN]


async def test_a_deactivated_users_token_is_refused(server, clients):
    (alice,) = await make_users(1)
    token = token_for(alice)
    await deactivate(alice)
    assert await refused(clients(), server.url, token=token) == [INVALID_TOKEN]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_session_cookie_of_the_same_origin_page_connects(server, clients, transport):
    # given a user logged in to the site (the server-rendered page)
    (alice,) = await make_users(1)
    room = await make_room(members=[alice])
    headers = {"Cookie": await session_cookie(alice), "Origin": server.url}
    # when the page opens /chat with its cookie and no token
    client = await clients().connect(server.url, transport=transport, headers=headers)
    # then the socket is alice's
    ack = await joined(client, room)
    assert ack["roomId"] == room.pk


async def test_a_session_of_a_deactivated_user_is_authentication_required(server, clients):
    (alice,) = await make_users(1)
    cookie = await session_cookie(alice)
    await deactivate(alice)
    assert await refused(clients(), server.url, headers={"Cookie": cookie}) == [AUTH_REQUIRED]
    assert await refused(clients(), server.url, headers={"Cookie": "sessionid=forged"}) == [AUTH_REQUIRED]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cross_origin_handshake_with_the_session_cookie_is_refused(server, clients, transport):
    # given alice's session cookie, carried by a page of another origin
    # (cross-site WebSocket hijacking: browsers do not apply CORS to WebSocket)
    (alice,) = await make_users(1)
    headers = {"Cookie": await session_cookie(alice), "Origin": "http://evil.example"}
    # then engine.io refuses the handshake itself: no Socket.IO session at all
    async with aiohttp.ClientSession() as http:
        if transport == "websocket":
            with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
                await http.ws_connect(f"{server.url}/socket.io/?EIO=4&transport=websocket", headers=headers)
            assert refusal.value.status in (400, 403)  # uvicorn turns a refused ASGI WebSocket into 403
        else:
            async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling", headers=headers) as answer:
                assert answer.status == 400
                assert "not an accepted origin" in await answer.text()
    # and so a Socket.IO client never gets to /chat (python-engineio's polling
    # client sometimes reports the 400 as aiohttp's "Connection closed.")
    client = clients()
    with pytest.raises((socketio.exceptions.ConnectionError, RuntimeError)):
        await client.connect(server.url, transport=transport, headers=headers)
    assert not client.connected


async def test_an_allowed_cors_origin_cannot_use_the_session_cookie(server_factory, clients):
    # given a server that lets a widget site connect (CORS_ALLOWED_ORIGINS)
    widget_site = "http://widget.example"
    other = server_factory(name="cors", CORS_ALLOWED_ORIGINS=widget_site)
    (alice,) = await make_users(1)
    cookie = await session_cookie(alice)
    # when that site's page opens /chat with alice's cookie
    errors = await refused(clients(), other.url, headers={"Cookie": cookie, "Origin": widget_site})
    # then the handshake gets through engine.io but the cookie does not count
    assert errors == [AUTH_REQUIRED]
    # and a token from that site still works, as does the server's own page
    assert (await clients().connect(other.url, token=token_for(alice), headers={"Origin": widget_site})).connected
    assert (await clients().connect(other.url, headers={"Cookie": cookie, "Origin": other.url})).connected
