"""A lean Socket.IO v5 client on the /chat namespace, WebSocket transport only.

The load generator has one core for up to tens of thousands of deliveries a
second, so it does not use python-socketio's client (several layers, a task and
a queue per packet): this is an asyncio Protocol that parses WebSocket frames
in `data_received` and hands each Engine.IO packet to a callback, with no
await per packet. It speaks just what the bench needs: the Engine.IO open and
ping/pong, a namespace connect with `auth`, events with acks, and received
events.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any, cast

NAMESPACE = "/chat"
_EVENT = "42" + NAMESPACE + ","
_ACK = "43" + NAMESPACE + ","
_CONNECTED = "40" + NAMESPACE + ","
_CONNECT_ERROR = "44" + NAMESPACE + ","


class ConnectError(Exception):
    pass


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame. The mask key is fixed at zero: the RFC asks for an
    unpredictable key to protect proxies on the path; here there is none, and
    the server unmasks either way, so its cost is measured all the same."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class SioClient(asyncio.Protocol):
    """One socket. `on_packet(client, text)` sees every Engine.IO packet that is
    not handled here (events, acks); it runs inside `data_received`."""

    def __init__(self, *, index: int, auth: dict[str, Any] | None, on_packet: Callable[[SioClient, str], None]) -> None:
        self.index = index
        self.auth = auth
        self.on_packet = on_packet
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._next_ack = 0
        # ack id -> (callback, sent-at ns); callbacks run inside data_received.
        self.pending: dict[int, tuple[Callable[[str, int], None], int]] = {}
        self.sid: str | None = None
        self.room: str | None = None

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but is one.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            del buffer[: end + 4]
            self._upgraded = True
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            b0 = buffer[pos]
            length = buffer[pos + 1] & 0x7F  # server frames are never masked
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            payload = bytes(buffer[start:end])
            pos = end
            opcode = b0 & 0x0F
            if not b0 & 0x80:  # a fragment: keep it until the final one
                self._fragments.append(payload)
                continue
            if opcode == 0 and self._fragments:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._fragments.clear()
                opcode = 1
            if opcode == 1:
                self._packet(payload.decode())
            elif opcode == 9:
                self._write(payload, opcode=10)
            elif opcode == 8:
                if self.transport is not None:
                    self.transport.close()
                return
        if pos:
            del buffer[:pos]

    # --- Engine.IO / Socket.IO ------------------------------------------------

    def _packet(self, text: str) -> None:
        kind = text[:1]
        if kind == "4":
            if text.startswith(_EVENT) or text.startswith(_ACK):
                if text[1] == "3":
                    self._ack(text)
                else:
                    self.on_packet(self, text)
            elif text.startswith(_CONNECTED):
                self.sid = json.loads(text[len(_CONNECTED) :]).get("sid")
                if not self.connected.done():
                    self.connected.set_result(self.sid or "")
            elif text.startswith(_CONNECT_ERROR):
                message = json.loads(text[len(_CONNECT_ERROR) :]).get("message", "refused")
                self._fail(message)
            elif text.startswith("41" + NAMESPACE):
                self._fail("disconnected by the server")
        elif kind == "2":
            self._write(b"3")
        elif kind == "0":
            auth = "" if self.auth is None else json.dumps(self.auth, separators=(",", ":"))
            self._write((_CONNECTED + auth).encode())
        elif kind == "1":
            self._fail("closed by the server")

    def _ack(self, text: str) -> None:
        start = len(_ACK)
        bracket = text.find("[", start)
        ack_id = int(text[start:bracket])
        entry = self.pending.pop(ack_id, None)
        if entry is not None:
            callback, sent_ns = entry
            callback(text[bracket:], sent_ns)

    def _fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectError(reason))
        if self.transport is not None:
            self.transport.close()

    def _write(self, payload: bytes, opcode: int = 1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(payload, opcode))

    # --- API --------------------------------------------------------------------

    def emit(self, event: str, data: Any, callback: Callable[[str, int], None] | None = None) -> None:
        """Send an event; `callback(ack_json_text, sent_ns)` runs when its ack arrives."""
        body = json.dumps([event, data], separators=(",", ":"))
        if callback is None:
            self._write((_EVENT + body).encode())
            return
        self._next_ack += 1
        self.pending[self._next_ack] = (callback, time.monotonic_ns())
        self._write(f"{_EVENT}{self._next_ack}{body}".encode())

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(text: str, _sent_ns: int) -> None:
            if not future.done():
                future.set_result(json.loads(text)[0])

        self.emit(event, data, done)
        return await asyncio.wait_for(future, timeout)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(("41" + NAMESPACE).encode())
            self._write(b"1")
            self._write(b"", opcode=8)
            self.transport.close()


async def connect(
    port: int,
    *,
    index: int = 0,
    auth: dict[str, Any] | None = None,
    on_packet: Callable[[SioClient, str], None] = lambda _c, _t: None,
    timeout: float = 30,
) -> SioClient:
    """A connected, authenticated socket on 127.0.0.1:port (only loopback, by design)."""
    loop = asyncio.get_running_loop()
    _transport, client = await loop.create_connection(
        lambda: SioClient(index=index, auth=auth, on_packet=on_packet), "127.0.0.1", port
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.connected), timeout)
    except BaseException:
        client.close()
        raise
    return client
