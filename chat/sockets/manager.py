"""A python-socketio client manager whose pub/sub transport is the Channels layer.

python-socketio's AsyncPubSubManager handles an emit for this process's sockets
and publishes it for the others; this subclass publishes on a Channels group and
listens on it, so the bus is channels_redis's pub/sub layer with REDIS_URL and
the in-memory layer without. Sync code (REST views, the admin) reaches the same
bus through chat/broadcast.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from channels.layers import get_channel_layer
from socketio.async_manager import AsyncManager
from socketio.async_pubsub_manager import AsyncPubSubManager

logger = logging.getLogger(__name__)

# Extra manager methods: act on every socket of an audience (a Socket.IO room)
# wherever it is connected, e.g. all sockets of a banned user.
_AUDIENCE_METHODS = ("move_audience", "disconnect_audience")


class ChannelLayerManager(AsyncPubSubManager):
    name = "channels"

    def __init__(self, group: str = "socketio", logger: logging.Logger | None = None) -> None:
        super().__init__(channel=group, logger=logger)
        self.listen_failures = 0  # how often the bus broke and was rebuilt

    async def _publish(self, data: dict[str, Any]) -> None:
        layer = get_channel_layer()
        await layer.group_send(self.channel, {"type": "socketio.message", "data": data})

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        # python-socketio stops listening for good when this generator ends, so
        # it never does: any failure is counted, logged, and the subscription
        # rebuilt with a capped backoff.
        backoff = 0.5
        while True:
            layer = get_channel_layer()
            try:
                channel = await layer.new_channel(prefix="socketio.")
                await layer.group_add(self.channel, channel)
                backoff = 0.5
                while True:
                    message = await layer.receive(channel)
                    data = message.get("data") if isinstance(message, dict) else None
                    if not isinstance(data, dict):
                        continue
                    if data.get("method") in _AUDIENCE_METHODS:
                        if data.get("host_id") != self.host_id:
                            await self._handle_audience(data)
                        continue
                    yield data
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listen_failures += 1
                logger.exception(
                    "socket.io bus listener failed (%d so far); resubscribing in %.1f s", self.listen_failures, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    # --- audience operations --------------------------------------------------

    async def move_audience(self, audience: str, namespace: str, *, leave: str) -> None:
        """Every socket in `audience` leaves the room `leave`, on every process."""
        message = {"method": "move_audience", "audience": audience, "namespace": namespace, "leave": leave}
        await self._handle_audience(message)
        await self._publish({**message, "host_id": self.host_id})

    async def disconnect_audience(self, audience: str, namespace: str) -> None:
        """Disconnect every socket in `audience`, on every process."""
        message = {"method": "disconnect_audience", "audience": audience, "namespace": namespace}
        await self._handle_audience(message)
        await self._publish({**message, "host_id": self.host_id})

    async def _handle_audience(self, message: dict[str, Any]) -> None:
        namespace = message.get("namespace") or "/"
        sids = [sid for sid, _eio_sid in self.get_participants(namespace, message.get("audience"))]
        for sid in sids:
            if message["method"] == "move_audience":
                await AsyncManager.leave_room(self, sid, namespace, message.get("leave"))
            elif self.server is not None:
                await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
