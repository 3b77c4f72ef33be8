"""Fixtures of the send-path tests (the batch writer and the ORM service)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat import broadcast, message_writer
from chat.models import Message
from chat.schemas import author_id_of, message_payload


@pytest.fixture
def broadcasted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The new messages broadcast, in order: by the writer, or by the ORM
    service it hands over to (always, on SQLite)."""
    sent: list[dict[str, Any]] = []

    def record(payloads: list[dict[str, Any]]) -> asyncio.Future[list[None]]:
        sent.extend(payloads)
        done: asyncio.Future[list[None]] = asyncio.get_running_loop().create_future()
        done.set_result([])
        return done

    def record_one(message: Message) -> None:
        sent.append(message_payload(message, [author_id_of(message)]))

    monkeypatch.setattr(broadcast, "messages_created", record)
    monkeypatch.setattr(broadcast, "message_created", record_one)
    return sent


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the writer stored (PostgreSQL only)."""
    sizes: list[int] = []
    real = message_writer._execute

    async def counted(batch: list[Any]) -> list[tuple[Any, ...]]:
        sizes.append(len(batch))
        return await real(batch)

    monkeypatch.setattr(message_writer, "_execute", counted)
    return sizes
