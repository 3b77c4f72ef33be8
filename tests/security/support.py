"""Helpers of the break-in tests: a Socket.IO client driven from sync code (for
hypothesis, whose tests are sync), raw packets, and the server's log."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.support.clients import NAMESPACE, ChatClient
from tests.support.server import ServerProcess

T = TypeVar("T")

# The codes of protocol.md. `internal_error` is not among them on purpose: bad
# input must get a clear error, never "something went wrong on our side".
CONTRACT_CODES = frozenset(
    {"auth_required", "invalid_token", "forbidden", "not_found", "invalid", "rate_limited", "muted", "banned"}
)


class LoopThread:
    """An event loop in a thread of its own, so sync code can await clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="client-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def raw_call(client: ChatClient, packet_body: str, timeout: float = 10) -> Any:
    """Send `packet_body` (the JSON array of an EVENT, written by hand so that it
    can be what python's json would refuse to write: 10,000 levels deep, NaN)
    with an ack id, and return the ack's first argument."""
    answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_ack(*args: Any) -> None:
        if not answered.done():
            answered.set_result(args[0] if args else None)

    ack_id = client.sio._generate_ack_id(NAMESPACE, on_ack)
    await client.sio.eio.send(f"2{NAMESPACE},{ack_id}{packet_body}")
    return await asyncio.wait_for(answered, timeout)


async def raw_emit(client: ChatClient, packet_body: str) -> None:
    await client.sio.eio.send(f"2{NAMESPACE},{packet_body}")


class ServerLog:
    """What a server process wrote to its log since this object was made."""

    def __init__(self, server: ServerProcess) -> None:
        self.path = server.log_path
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new_text(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def assert_clean(self) -> None:
        text = self.new_text()
        for marker in ("Traceback", "ERROR", "Exception in ASGI application"):
            assert marker not in text, f"the server logged {marker!r}:\n{text[-4000:]}"


def check_ack(ack: Any) -> None:
    """An ack of protocol.md: ok, or an error with a contract code and a text."""
    assert isinstance(ack, dict), f"not an ack object: {ack!r}"
    if ack.get("status") == "ok":
        return
    assert ack.get("status") == "error", f"neither ok nor error: {ack!r}"
    assert ack.get("code") in CONTRACT_CODES, f"code outside protocol.md: {ack!r}"
    assert isinstance(ack.get("error"), str) and ack["error"], f"error without a text: {ack!r}"
    assert "Traceback" not in ack["error"], f"a traceback reached the client: {ack!r}"
