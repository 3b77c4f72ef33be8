"""How uvicorn is started (chatsite/serve.py): WebSocket messages bounded like
engine.io's, forwarded headers believed only from trusted proxies."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.sockets.server import MAX_FRAME_BYTES
from chatsite.serve import WS_MAX_BYTES, uvicorn_command
from tests.conftest import token_for
from tests.factories import UserFactory


def test_uvicorns_websocket_limit_is_engine_ios():
    assert WS_MAX_BYTES == MAX_FRAME_BYTES
    command = uvicorn_command(host="127.0.0.1", port=8000, trusted_proxies=[])
    assert command[command.index("--ws-max-size") + 1] == str(MAX_FRAME_BYTES)


def test_forwarded_headers_are_believed_only_from_configured_proxies():
    untrusted = uvicorn_command(host="127.0.0.1", port=8000, trusted_proxies=[])
    assert "--no-proxy-headers" in untrusted and "--forwarded-allow-ips" not in untrusted
    trusted = uvicorn_command(host="127.0.0.1", port=8000, trusted_proxies=["10.0.0.5", "10.0.0.6"])
    assert trusted[trusted.index("--forwarded-allow-ips") + 1] == "10.0.0.5,10.0.0.6"


async def _chat_socket(server, token):
    """A raw engine.io WebSocket joined to /chat, past the handshake."""
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = await connect(url, max_size=None, compression=None)
    assert (await ws.recv()).startswith("0")  # engine.io open
    await ws.send("40/chat," + json.dumps({"token": token}))
    await _next_packet(ws, "40/chat,")
    return ws


async def _next_packet(ws, prefix, timeout=10):
    """The next packet starting with `prefix`; pings are answered as a client must."""
    async with asyncio.timeout(timeout):
        while True:
            packet = await ws.recv()
            if packet == "2":
                await ws.send("3")
            elif packet.startswith(prefix):
                return packet


async def test_a_websocket_message_over_the_limit_closes_the_connection(server):
    user = await asyncio.to_thread(UserFactory)
    ws = await _chat_socket(server, token_for(user))
    # a 2 MB Socket.IO event in one frame
    await ws.send('42/chat,1["chat:message",{"roomId":"r","text":"' + "x" * 2_000_000 + '"}]')
    with pytest.raises(ConnectionClosed) as closed:
        await _next_packet(ws, "43/chat,1")
    # refused by uvicorn before engine.io buffers it: 1009 "message too big"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_large_message_under_the_limit_is_answered_as_before(server):
    user = await asyncio.to_thread(UserFactory)
    ws = await _chat_socket(server, token_for(user))
    await ws.send('42/chat,1["chat:message",{"roomId":"r","text":"' + "x" * 900_000 + '"}]')
    ack = await _next_packet(ws, "43/chat,1")
    answer = json.loads(ack.removeprefix("43/chat,1"))[0]
    assert answer["status"] == "error" and answer["code"] == "invalid"
    await ws.close()
