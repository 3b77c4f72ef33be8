"""Socket.IO packets a hostile client writes by hand, answered instead of crashing.

python-socketio trusts the packet layer: JSON nested past Python's recursion
limit, a broken packet or a stray binary attachment raises out of its message
handler (a traceback in the log per packet, no answer), and an EVENT packet
named `connect` or `disconnect` runs those handlers with the client's
arguments (a forged `disconnect` signed a connected user out of presence).
Found by tests/security/test_fuzz_sockets.py.

Here an event packet whose JSON cannot be read, or nests deeper than any event
of protocol.md, becomes an `invalid` ack; so does an event named after a
reserved or unknown event; any other malformed packet is dropped with one
warning line. Everything else goes through untouched.

This leans on python-socketio's private `_handle_*` methods, as pinned in
requirements.txt; the fuzz test fails if an upgrade changes them.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet

from chat.errors import ChatError, ErrorCode

logger = logging.getLogger(__name__)

# protocol.md's payloads are two levels deep; nothing legitimate comes close.
MAX_DEPTH = 32
# The event an unreadable EVENT packet turns into. A client that sends this
# name itself gets the same `invalid` ack: nothing handles it.
UNREADABLE = "\x00unreadable"


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so that measuring the depth cannot itself recurse too deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


class GuardedPacket(packet.Packet):
    packet_type: int
    data: Any

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, RecursionError) as error:
            # The header (type, namespace, ack id) is read before the JSON, so
            # an unreadable event can still be answered.
            if self.packet_type not in (packet.EVENT, packet.BINARY_EVENT):
                raise
            reason = "the payload is not valid JSON" if isinstance(error, ValueError) else "the payload nests too deep"
            self.packet_type, self.data = packet.EVENT, [UNREADABLE, reason]
            return 0
        if self.packet_type in (packet.EVENT, packet.BINARY_EVENT) and _depth_exceeds(self.data, MAX_DEPTH):
            self.packet_type, self.data = packet.EVENT, [UNREADABLE, "the payload nests too deep"]
            return 0
        return attachments


class GuardedServer(socketio.AsyncServer):
    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError, TypeError, KeyError, IndexError) as error:
            # A packet no client library writes (unknown type, stray binary,
            # CONNECT_ERROR from a client): drop it, with one line, no traceback.
            logger.warning("dropped a malformed Socket.IO packet from %s: %s", eio_sid, error)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        event = data[0] if isinstance(data, list) and data else None
        if (
            not isinstance(event, str)
            or event in self.reserved_events
            or not ({event, "*"} & self.handlers.get(namespace, {}).keys())
        ):
            reason = data[1] if event == UNREADABLE and len(data) > 1 else "unknown event"
            await self._refuse(eio_sid, namespace, id, f"Refused: {reason}")
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _refuse(self, eio_sid: str, namespace: str, id: int | None, message: str) -> None:
        if id is None or not self.manager.is_connected(self.manager.sid_from_eio_sid(eio_sid, namespace), namespace):
            return
        ack = ChatError(ErrorCode.INVALID, message).as_ack()
        await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[ack]))
