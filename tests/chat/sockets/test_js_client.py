"""The /chat contract as the official JavaScript client sees it.

`tests/support/js_client/contract.mjs` is a socket.io-client script written only
from docs/protocol.md (default transports, acks with emitWithAck), as a
third-party app would be. It plays the scenario against a real server process
and prints what it saw; this test sets up the data and checks the database
holds exactly what was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat.models import ReadReceipt, Room
from tests.chat.sockets.conftest import make_room, make_users, stored_messages
from tests.conftest import token_for
from tests.factories import post
from tests.support.redis import RedisServer
from tests.support.server import ROOT, ServerProcess

SCRIPT = ROOT / "tests" / "support" / "js_client" / "contract.mjs"
NODE = shutil.which("node")
SOCKET_IO_CLIENT = ROOT / "node_modules" / "socket.io-client" / "package.json"
# The script bounds every wait to 5 s and its whole run to 50 s.
TIMEOUT = 60


def _missing() -> str | None:
    if NODE is None:
        return "needs node on PATH to run the socket.io-client contract script"
    if not SOCKET_IO_CLIENT.exists():
        return f"needs {SOCKET_IO_CLIENT.relative_to(ROOT)}: run `npm ci` (or `make install`)"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


async def run_contract(server: ServerProcess, payload: dict[str, Any]) -> dict[str, Any]:
    """Run contract.mjs with `payload`; its report, or a failure showing what it and the server said."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT.relative_to(ROOT)),
        json.dumps(payload),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"contract.mjs did not finish within {TIMEOUT}s; server log:\n{server.log_tail()}")
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    assert process.returncode == 0, (
        f"contract.mjs exited {process.returncode}\nstderr: {stderr}\nstdout: {stdout}\n"
        f"server log ({server.log_path}):\n{server.log_tail()}"
    )
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["ok"] is True, report
    return report


@sync_to_async
def read_watermark(user: User, room: Room) -> str | None:
    receipt = ReadReceipt.objects.filter(user=user, room=room).first()
    return None if receipt is None or receipt.last_read_message_id is None else str(receipt.last_read_message_id)


async def test_the_official_js_client_gets_what_protocol_md_promises(server):
    # given alice and bob in a room that already holds one message
    alice, bob = await make_users(2)
    room = await make_room(members=[alice, bob])
    before = await sync_to_async(post)(room, alice, "before")

    # when socket.io-client plays the documented scenario as alice (A) and bob (B)
    report = await run_contract(
        server,
        {
            "url": server.url,
            "roomId": room.pk,
            "a": {"token": token_for(alice), "userId": str(alice.pk), "username": alice.username},
            "b": {"token": token_for(bob), "userId": str(bob.pk), "username": bob.username},
        },
    )

    # then it connected by polling and upgraded, and bad handshakes were refused as documented
    assert report["transports"] == {"a": ["polling", "websocket"], "b": ["polling", "websocket"]}
    assert report["rejoin"]["transports"] == ["polling", "websocket"]
    assert report["refusals"] == {"noCredentials": "Authentication required", "badToken": "Invalid token"}
    # and joining gave the stored history
    assert report["history"]["ids"] == [str(before.pk)] and report["history"]["texts"] == ["before"]
    # and malformed sends were all refused `invalid`
    assert [ack["code"] for ack in report["invalid"]] == ["invalid"] * 5
    # and the database holds exactly the two acked messages: the resend and the
    # malformed payloads stored nothing
    sent, missed = report["sent"], report["missed"]
    stored = await stored_messages(room)
    assert [(str(m.pk), m.seq, m.author_id, m.text, m.client_id) for m in stored] == [
        (str(before.pk), 1, alice.pk, "before", None),
        (sent["messageId"], 2, alice.pk, "Hello from socket.io-client", sent["clientId"]),
        (missed["messageId"], 3, bob.pk, "You missed this", missed["clientId"]),
    ]
    assert report["rejoin"]["messages"] == [missed["messageId"]]
    # and bob's read watermark is alice's message
    assert await read_watermark(bob, room) == sent["messageId"]


@pytest.mark.redis
@pytest.mark.skipif(not RedisServer.available(), reason="needs redis-server on PATH")
async def test_the_official_js_client_repairs_on_sync_required(server_factory, clients):
    # given two processes sharing a private Redis; socket.io-client joined on A
    redis = RedisServer().start()
    process = None
    try:
        a_server = server_factory(name="js-sync-a", REDIS_URL=redis.url)
        b_server = server_factory(name="js-sync-b", REDIS_URL=redis.url)
        alice, bob = await make_users(2)
        room = await make_room(members=[alice, bob])
        before = await sync_to_async(post)(room, bob, "before")
        b = await clients().connect(b_server.url, token=token_for(bob))
        ack = await b.call("room:join", room.pk)
        assert ack["status"] == "ok", ack
        assert NODE is not None
        payload = {
            "scenario": "sync-required",
            "url": a_server.url,
            "roomId": room.pk,
            "a": {"token": token_for(alice), "userId": str(alice.pk), "username": alice.username},
        }
        process = await asyncio.create_subprocess_exec(
            NODE,
            str(SCRIPT.relative_to(ROOT)),
            json.dumps(payload),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        assert line.strip() == b"READY", line

        # when Redis goes away, bob's message is stored on B while the bus
        # cannot carry it to A, and Redis comes back
        redis.stop()
        await asyncio.sleep(1.5)
        sent = await b.call("chat:message", {"roomId": room.pk, "text": "sent into the outage"}, timeout=10)
        assert sent["status"] == "ok", sent
        await asyncio.sleep(1.5)
        redis.start()

        # then the script was told to sync and fetched exactly the missed message
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        assert process.returncode == 0, f"stderr: {stderr}\nstdout: {stdout}\nA's log:\n{a_server.log_tail()}"
        report = json.loads(stdout.strip().splitlines()[-1])
        assert report["lastSeen"] == {"id": str(before.pk), "seq": 1}
        assert report["sync"]["rooms"] == [{"roomId": room.pk, "lastSeq": sent["seq"]}]
        assert report["sync"]["heardLive"] == []
        assert report["repaired"] == [{"id": sent["messageId"], "seq": 2, "text": "sent into the outage"}]
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        redis.stop()
