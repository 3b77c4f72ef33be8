"""message_send for sockets: the hot path, stored in batches, one SQL statement a batch.

services.message_send (the ORM, one transaction, ten round trips on one thread)
held about 50 messages a second per process (docs/benchmark.md). On this kind
of machine a round trip to PostgreSQL or Redis costs a few hundred
microseconds of CPU however little it carries, so the socket path on
PostgreSQL pays its round trips per batch of sends, not per send (group
commit), with the same rules and answers as message_send:

- Sends of every room queue up for one writer task per process. The writer
  takes everything queued (up to MAX_BATCH) and, for the whole batch: charges
  the rate limit with one Redis call (chat/ratelimit.py), stores the sends
  with STORE_BATCH (one statement, autocommit, from the event loop through
  chatsite/pg.py), answers every send, then broadcasts the new messages in
  seq order (the bus publishes what is emitted together as one message, see
  chat/sockets/manager.py). While a batch is in flight the next one gathers:
  under light load a batch is one send; under heavy load it grows and the cost
  per message falls, instead of a queue of round trips forming.
- STORE_BATCH checks what access.access_room_for_send and message_send check
  (room, ban, membership, mute, clientId resend, replyTo, an active author)
  for every send, with their refusals (chat/refusals.py) and their clock,
  then, per room, bumps `chat_room.last_seq` by the number accepted and
  inserts them with consecutive seqs. It locks the room rows in id order, so
  batches of several processes wait for each other and never deadlock; seqs
  keep neither holes nor twins. One writer per process stores batches one at
  a time and starts their broadcasts in order, so what it stores leaves the
  process in seq order (what the ORM service stores meanwhile into the same
  room may interleave: docs/realtime.md).
- A send charged by the rate limit that turns out to be refused or a resend is
  given back, so, as with message_send, only new messages count.

The rare cases go through services.message_send: the embedded default
(SQLite), every send when CHAT_SEND_PATH is "orm", rooms in slow mode, a send
over the rate limit (so access refusals and resends still win over
`rate_limited`, as there), and a batch that hit a clientId race (its sends are
then stored one by one).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from psycopg.errors import AdminShutdown, UniqueViolation

from chat import access, broadcast, refusals, services, typing_indicator
from chat.errors import ChatError
from chat.models import Message
from chat.ratelimit import RateDecision, rate_limit_hit_many_async, rate_limit_refund_many_async
from chat.schemas import MessagePayload, message_payload, user_ref
from chatsite import pg

logger = logging.getLogger(__name__)

# Sends stored by one statement at most. Texts are at most 5,000 characters,
# so a batch stays well under a megabyte.
MAX_BATCH = 100

# Every send of the batch is checked in the order message_send checks it; only
# those with status 'ok' get a seq. Column names are Django's (chat/models.py).
# `now` is the app's clock (timezone.now), as on the ORM path, for mutes and
# created_at alike: every time rule of the chat (slow mode, mutes, the edit
# window) compares against the app's clock, so the database's would put two
# clocks into one comparison. (One value per batch: its messages are stored
# at one instant; seq orders them.)
STORE_BATCH = """
WITH sends AS (
    SELECT * FROM unnest(
        %(room_ids)s::varchar[], %(author_ids)s::integer[], %(texts)s::text[],
        %(reply_to_ids)s::bigint[], %(client_ids)s::varchar[]
    ) WITH ORDINALITY AS s(room_id, author_id, text, reply_to_id, client_id, ord)
),
checked AS (
    SELECT
        s.ord,
        s.room_id,
        CASE
            WHEN room.id IS NULL THEN 'not_found'
            WHEN EXISTS (
                SELECT 1 FROM chat_roomban b WHERE b.room_id = s.room_id AND b.user_id = s.author_id
            ) THEN 'banned'
            WHEN NOT EXISTS (
                SELECT 1 FROM chat_membership m WHERE m.room_id = s.room_id AND m.user_id = s.author_id
            ) THEN CASE WHEN room.visibility = 'public' THEN 'not_member' ELSE 'private' END
            WHEN mute.until IS NOT NULL THEN 'muted'
            WHEN room.slow_mode_seconds > 0 THEN 'slow_mode'
            WHEN previous.id IS NOT NULL THEN 'resend'
            WHEN s.reply_to_id IS NOT NULL AND reply.id IS NULL THEN 'no_reply'
            -- Read by this statement, not trusted from the socket's handshake.
            WHEN author.is_active IS NOT TRUE THEN 'inactive'
            ELSE 'ok'
        END AS status,
        mute.until AS muted_until,
        previous.id AS previous_id,
        previous.room_id AS previous_room_id,
        previous.seq AS previous_seq,
        reply.author_id AS reply_author_id,
        reply_author.username AS reply_username,
        reply.text AS reply_text,
        reply.deleted_at AS reply_deleted_at
    FROM sends s
    -- A soft-deleted room (chat_room.deleted_at) is not_found, as Room.objects.
    LEFT JOIN chat_room room ON room.id = s.room_id AND room.deleted_at IS NULL
    LEFT JOIN LATERAL (
        SELECT max(mu.until) AS until FROM chat_roommute mu
        WHERE mu.room_id = s.room_id AND mu.user_id = s.author_id AND mu.until > %(now)s::timestamptz
    ) mute ON true
    LEFT JOIN chat_message previous
        ON s.client_id IS NOT NULL AND previous.author_id = s.author_id AND previous.client_id = s.client_id
    LEFT JOIN chat_message reply ON reply.id = s.reply_to_id AND reply.room_id = s.room_id
    LEFT JOIN auth_user reply_author ON reply_author.id = reply.author_id
    LEFT JOIN auth_user author ON author.id = s.author_id
),
fresh AS (
    SELECT
        ord,
        room_id,
        row_number() OVER (PARTITION BY room_id ORDER BY ord) AS n,
        count(*) OVER (PARTITION BY room_id) AS total
    FROM checked WHERE status = 'ok'
),
-- Row locks in id order: two processes' batches touching the same rooms wait
-- for each other instead of deadlocking. The UPDATE below only touches rows
-- locked here.
locked AS MATERIALIZED (
    SELECT id FROM chat_room WHERE id IN (SELECT room_id FROM fresh) AND deleted_at IS NULL ORDER BY id FOR UPDATE
),
bumped AS (
    UPDATE chat_room SET last_seq = chat_room.last_seq + counts.total
    FROM locked JOIN (SELECT DISTINCT room_id, total FROM fresh) counts ON counts.room_id = locked.id
    WHERE chat_room.id = locked.id
    RETURNING chat_room.id, chat_room.last_seq
),
numbered AS (
    SELECT fresh.ord, bumped.last_seq - fresh.total + fresh.n AS seq
    FROM fresh JOIN bumped ON bumped.id = fresh.room_id
),
inserted AS (
    INSERT INTO chat_message (room_id, seq, author_id, text, reply_to_id, client_id, created_at)
    SELECT s.room_id, numbered.seq, s.author_id, s.text, s.reply_to_id, s.client_id, %(now)s::timestamptz
    FROM numbered JOIN sends s USING (ord)
    ORDER BY numbered.ord
    RETURNING id, room_id, seq, created_at
)
SELECT
    -- 'ok' with nothing inserted: the room was deleted while the batch
    -- waited for its lock (the checks above saw it, the lock did not: FOR
    -- UPDATE checks deleted_at again on the row it waited for).
    CASE WHEN c.status = 'ok' AND i.id IS NULL THEN 'not_found' ELSE c.status END,
    c.muted_until, c.previous_id, c.previous_room_id, c.previous_seq,
    c.reply_author_id, c.reply_username, c.reply_text, c.reply_deleted_at,
    i.id, i.seq, i.created_at
FROM checked c
LEFT JOIN numbered USING (ord)
LEFT JOIN inserted i ON i.room_id = c.room_id AND i.seq = numbered.seq
ORDER BY c.ord
"""

# Batches being fanned out at once, at most (see _broadcast).
MAX_BROADCASTS_IN_FLIGHT = 8

# What the writer answers a send that STORE_BATCH did not settle, for
# message_send to take through the ORM service.
_SLOW_MODE = "slow_mode"
_OVER_LIMIT = "over_limit"


@dataclass
class _Send:
    sender: User
    room_id: str
    text: str
    reply_to_id: int | None
    client_id: str | None
    typing_key: str
    # The rate limit's charge, until it is given back.
    decision: RateDecision | None = None
    # Whether the sender's typing indicator was up (True when unknown).
    watched_exists: bool = True
    answer: asyncio.Future[services.SendResult | str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Writer:
    """The sends waiting for this process's writer task, and the task."""

    def __init__(self) -> None:
        self.queue: list[_Send] = []
        self.task: asyncio.Task[None] | None = None
        self.broadcasts: collections.deque[asyncio.Future[list[None]]] = collections.deque()


# One writer per event loop (tests and async_to_sync run loops of their own).
_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = weakref.WeakKeyDictionary()


async def message_send(
    *, sender: User, room_id: str, text: str, reply_to_id: int | None, client_id: str | None, sid: str
) -> services.SendResult:
    """Store a socket send exactly once; its broadcast follows the commit. A
    send also clears the sender's typing indicator in the room.

    Preconditions: the text is clean and the ids parsed (chat/schemas.py).
    Raises ChatError for every refusal services.message_send would make.
    """
    if not pg.available() or settings.CHAT_SEND_PATH == "orm":
        return await _send_with_orm(sender, room_id, text, reply_to_id, client_id, sid)
    send = _Send(sender, room_id, text, reply_to_id, client_id, typing_indicator.typing_key(room_id, str(sender.pk)))
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer()
    writer.queue.append(send)
    if writer.task is None or writer.task.done():
        writer.task = loop.create_task(_work(writer))
    try:
        answer = await send.answer
    except Exception:
        # The statement failed (refusals were given back by the writer). A
        # cancelled send keeps its charge: the writer may still store it.
        await _refund([send])
        raise
    if answer == _OVER_LIMIT:
        # Through the ORM service, which checks access, resends and replies
        # before the limit: a banned user hears `banned`, a resend gets its
        # message back, whatever the quota says.
        return await _send_with_orm(sender, room_id, text, reply_to_id, client_id, sid)
    if not isinstance(answer, services.SendResult):
        # Slow mode: the ORM service checks it under the room lock, and
        # charges the rate limit itself (the writer gave this charge back).
        return await _send_with_orm(sender, room_id, text, reply_to_id, client_id, sid)
    if send.watched_exists:
        await _typing_cleared(sender, room_id, sid)
    return answer


async def _send_with_orm(
    sender: User, room_id: str, text: str, reply_to_id: int | None, client_id: str | None, sid: str
) -> services.SendResult:
    result = await _message_send_with_orm(sender, room_id, text, reply_to_id, client_id)
    # Unconditionally: the user may have been typing on another socket or
    # process, and the indicator lives in Redis, not in a session.
    await _typing_cleared(sender, room_id, sid)
    return result


@database_sync_to_async
def _message_send_with_orm(
    sender: User, room_id: str, text: str, reply_to_id: int | None, client_id: str | None
) -> services.SendResult:
    room = access.access_room_for_send(sender, room_id)
    return services.message_send(sender=sender, room=room, text=text, reply_to_id=reply_to_id, client_id=client_id)


async def _typing_cleared(sender: User, room_id: str, sid: str) -> None:
    # Best effort: the message is committed, so its ack must say ok whatever
    # Redis does.
    try:
        await typing_indicator.typing_stopped(user=user_ref(sender), room_id=room_id)
    except Exception:
        logger.warning("clearing the typing of user %s in %s after a send failed", sender.pk, room_id, exc_info=True)


async def _refund(sends: list[_Send]) -> None:
    """Give back the rate-limit entries of these sends (once each)."""
    charges = [(send, send.decision) for send in sends if send.decision is not None and send.decision.entry]
    if not charges:
        return
    try:
        await rate_limit_refund_many_async([(int(send.sender.pk), decision) for send, decision in charges])
    except Exception:
        # A refund that fails costs each user one slot of quota for one window.
        logger.warning("giving back the rate limit of %d sends failed", len(charges), exc_info=True)
    for send, _ in charges:
        send.decision = None


# --- The writer ------------------------------------------------------------------


async def _work(writer: _Writer) -> None:
    while writer.queue:
        batch, writer.queue = writer.queue[:MAX_BATCH], writer.queue[MAX_BATCH:]
        created: list[MessagePayload] = []
        try:
            await _admit_and_store(batch, created)
        except Exception as error:
            for send in batch:
                _settle(send, error)
        # Even after a failure: what was stored is announced.
        if created:
            try:
                await _broadcast(writer, created)
            except Exception:
                # The writer goes on: the sends queued behind must be answered.
                logger.exception("starting the broadcast of %d new messages failed", len(created))
    # No await between the last look at the queue and here: a send queued
    # later finds no writer and starts a new one.
    if _writers.get(asyncio.get_running_loop()) is writer:
        del _writers[asyncio.get_running_loop()]


def _settle(send: _Send, outcome: services.SendResult | str | BaseException) -> None:
    """Answer a send, unless its sender stopped waiting (cancelled)."""
    if send.answer.done():
        return
    if isinstance(outcome, BaseException):
        send.answer.set_exception(outcome)
    else:
        send.answer.set_result(outcome)


async def _broadcast(writer: _Writer, created: list[MessagePayload]) -> None:
    """Start the broadcast of a batch and go on to the next batch meanwhile.

    Fanning a batch out to every socket of its rooms takes longer than storing
    the next one; waiting for it would make every send wait for the broadcasts
    of the batch before. Order still holds: messages_created starts one task
    per emit, and an emit reaches every local socket and the bus in its first
    step; sleep(0) lets those first steps run before the writer goes on, so
    before the next batch's broadcast starts. At most
    MAX_BROADCASTS_IN_FLIGHT batches are being fanned out; past that the
    writer waits, so a process that cannot keep up slows its acks instead of
    piling up work.
    """
    fan_out = broadcast.messages_created(created)
    fan_out.add_done_callback(_broadcast_done)
    writer.broadcasts.append(fan_out)
    await asyncio.sleep(0)
    while len(writer.broadcasts) > MAX_BROADCASTS_IN_FLIGHT:
        await asyncio.wait([writer.broadcasts.popleft()])
    while writer.broadcasts and writer.broadcasts[0].done():
        writer.broadcasts.popleft()


def _broadcast_done(fan_out: asyncio.Future[list[None]]) -> None:
    if not fan_out.cancelled() and fan_out.exception() is not None:
        # Stored and acknowledged: clients see the gap through seq and fetch
        # it; a failed broadcast must not undo the ack.
        logger.error("broadcast of new messages failed", exc_info=fan_out.exception())


async def _admit_and_store(batch: list[_Send], created: list[MessagePayload]) -> None:
    """Charge the rate limit for the batch, store what it admits and answer
    every send; add the new messages' payloads to `created`, in seq order per
    room, as they are stored."""
    decisions = await rate_limit_hit_many_async(
        user_ids=[int(send.sender.pk) for send in batch], watch=[send.typing_key for send in batch]
    )
    admitted = []
    for send, decision in zip(batch, decisions, strict=True):
        send.watched_exists = decision.watched_exists
        if decision.allowed:
            send.decision = decision
            admitted.append(send)
        else:
            _settle(send, _OVER_LIMIT)
    if admitted:
        await _store(admitted, created)


async def _store(batch: list[_Send], created: list[MessagePayload]) -> None:
    try:
        rows = await _execute(batch)
    except UniqueViolation:
        # A clientId twice in this batch, or raced in from another socket or
        # process: store the sends one by one, so each sees the one before.
        if len(batch) > 1:
            for send in batch:
                await _store([send], created)
            return
        rows = await _execute(batch)
    # The statement committed. From here on nothing may keep a stored message
    # from its broadcast: each row is read on its own, and a new message's
    # payload joins `created` at once, before the refunds and the answers
    # (whatever fails there, _work broadcasts `created`).
    outcomes: list[services.SendResult | ChatError | str | Exception] = []
    for send, row in zip(batch, rows, strict=True):
        try:
            outcome: services.SendResult | ChatError | str | Exception = _outcome(send, row)
            if isinstance(outcome, services.SendResult) and outcome.created:
                created.append(message_payload(outcome.message, [str(send.sender.pk)]))
        except Exception as error:
            # Stored or not, this send's answer is an error; if it was stored,
            # the room's clients see the hole in seq at the room's next message.
            logger.exception("reading the stored send of user %s to %s failed", send.sender.pk, send.room_id)
            outcome = error
        outcomes.append(outcome)
    # Give back the quota of whatever is not a new message before answering,
    # so a sender's next attempt (over the limit, through the ORM) sees it.
    not_new = [
        send
        for send, outcome in zip(batch, outcomes, strict=True)
        if not (isinstance(outcome, services.SendResult) and outcome.created)
    ]
    try:
        await _refund(not_new)
    finally:
        for send, outcome in zip(batch, outcomes, strict=True):
            _settle(send, outcome)


async def _execute(batch: list[_Send]) -> list[tuple[Any, ...]]:
    params = {
        "room_ids": [send.room_id for send in batch],
        "author_ids": [int(send.sender.pk) for send in batch],
        "texts": [send.text for send in batch],
        "reply_to_ids": [send.reply_to_id for send in batch],
        "client_ids": [send.client_id for send in batch],
        "now": timezone.now(),
    }
    # The server may end a session (a restart, pg_terminate_backend) between
    # the pool's check and the statement. It then ran none of it: a session is
    # ended before its next statement or in the middle of it (rolled back),
    # never once it committed, since its answer is sent before it looks again.
    # So again, on another connection. Every pooled connection may have been
    # ended at once, and pg_terminate_backend returns before the backend says
    # goodbye, so the pool's check can pass each of them once: one try more
    # than the pool holds (a broken connection is discarded, never reused).
    for _ in range((await pg.pool()).max_size):
        try:
            return await _run(params)
        except AdminShutdown:
            params = {**params, "now": timezone.now()}
    return await _run(params)


async def _run(params: dict[str, Any]) -> list[tuple[Any, ...]]:
    async with pg.connection() as connection:
        cursor = await connection.execute(STORE_BATCH, params)
        return await cursor.fetchall()


def _outcome(send: _Send, row: tuple[Any, ...]) -> services.SendResult | ChatError | str:
    """What one row of STORE_BATCH means for its send: the stored message, a
    resend's message, the refusal message_send would raise, or 'slow_mode'."""
    (
        status,
        muted_until,
        previous_id,
        previous_room_id,
        previous_seq,
        reply_author_id,
        reply_username,
        reply_text,
        reply_deleted_at,
        message_id,
        seq,
        created_at,
    ) = row
    if status == "ok":
        message = _message(send, message_id, seq, created_at)
        if send.reply_to_id is not None:
            message.reply_to = Message(
                id=send.reply_to_id,
                room_id=send.room_id,
                author=User(id=reply_author_id, username=reply_username),
                text=reply_text,
                deleted_at=reply_deleted_at,
            )
        return services.SendResult(message, True)
    if status == "resend":
        previous = Message(id=previous_id, room_id=previous_room_id, seq=previous_seq, author=send.sender)
        try:
            return services.resend_of(previous, room_id=send.room_id)
        except ChatError as refusal:
            return refusal
    if status == "slow_mode":
        return _SLOW_MODE
    return _refusal(status, send.room_id, muted_until)


def _message(send: _Send, message_id: int, seq: int, created_at: datetime) -> Message:
    return Message(
        id=message_id,
        room_id=send.room_id,
        seq=seq,
        author=send.sender,
        text=send.text,
        reply_to_id=send.reply_to_id,
        client_id=send.client_id,
        created_at=created_at,
    )


def _refusal(status: str, room_id: str, muted_until: datetime | None) -> ChatError:
    # The refusals of access.access_room_for_send and message_send, from the
    # same module.
    if status == "not_found":
        return refusals.room_not_found(room_id)
    if status == "banned":
        return refusals.banned()
    if status == "private":
        return refusals.private_room()
    if status == "not_member":
        return refusals.not_a_member()
    if status == "muted" and muted_until is not None:
        return refusals.muted(muted_until)
    if status == "no_reply":
        return refusals.no_reply()
    if status == "inactive":
        return refusals.inactive_author()
    raise AssertionError(f"unknown status {status!r}")
