"""Real Socket.IO clients for tests, recording every event they receive."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any

import socketio

NAMESPACE = "/chat"
RECORDED = (
    "chat:message",
    "chat:typing",
    "chat:read",
    "chat:message-updated",
    "chat:message-deleted",
    "room:history",
    "room:user-joined",
    "room:user-left",
    "room:updated",
    "room:banned",
    "room:removed",
    "room:deleted",
    "room:added",
    "presence:list",
    "presence:online",
    "presence:offline",
    "presence:status",
    "sync:required",
)


class ChatClient:
    """An AsyncClient on /chat that keeps what arrives, per event, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        # The python client waits for an open long-poll (up to ping_interval +
        # ping_timeout) when it disconnects, e.g. after a refused namespace;
        # tests do not need the goodbye, so it aborts instead.
        eio_disconnect = self.sio.eio.disconnect
        self.sio.eio.disconnect = lambda abort=True, reason=None: eio_disconnect(abort=True, reason=reason)  # type: ignore[method-assign]
        self.events: dict[str, list[Any]] = collections.defaultdict(list)
        self._changed = asyncio.Event()
        for name in RECORDED:
            self.sio.on(name, self._recorder(name), namespace=NAMESPACE)
        self.sio.on("disconnect", self._recorder("disconnect"), namespace=NAMESPACE)
        self.sio.on("connect_error", self._recorder("connect_error"), namespace=NAMESPACE)

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events[name].append(args[0] if len(args) == 1 else args)
            self._changed.set()

        return record

    async def connect(
        self, url: str, *, token: str | None = None, auth: Any = None, transport: str = "websocket", **kwargs: Any
    ) -> ChatClient:
        if auth is None and token is not None:
            auth = {"token": token}
        transports = ["websocket"] if transport == "websocket" else ["polling"]
        await self.sio.connect(url, auth=auth, namespaces=[NAMESPACE], transports=transports, wait_timeout=10, **kwargs)
        return self

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data, namespace=NAMESPACE)

    async def wait_for(self, event: str, predicate: Callable[[Any], bool] = lambda _: True, timeout: float = 5) -> Any:
        """The first recorded `event` matching `predicate`, waiting up to `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for item in self.events[event]:
                if predicate(item):
                    return item
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {event} matching within {timeout}s; got {self.events[event]!r}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def assert_no(self, event: str, predicate: Callable[[Any], bool] = lambda _: True, wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        matching = [item for item in self.events[event] if predicate(item)]
        assert not matching, f"unexpected {event}: {matching!r}"

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected) and NAMESPACE in self.sio.namespaces

    async def disconnect(self) -> None:
        """Disconnect without waiting for an open long-poll to time out (the
        python client otherwise waits up to ping_interval + ping_timeout)."""
        if not self.sio.connected:
            return
        if self.sio.transport() == "polling":
            for namespace in list(self.sio.namespaces):
                await self.sio._send_packet(self.sio.packet_class(1, namespace=namespace))  # DISCONNECT
            await self.sio.eio.disconnect(abort=True)
            self.sio.connected = False
        else:
            await self.sio.disconnect()
