"""Presence on the /chat namespace.

chat/sockets/handlers.py calls `socket_connected` after a socket is
authenticated and `socket_disconnected` when it goes; presence events of their
own (`presence:away`, `presence:active`) are registered here.
"""

from __future__ import annotations

from django.contrib.auth.models import User


async def socket_connected(*, sid: str, user: User) -> None:
    """A socket of `user` is up (this process). Sends `presence:list` to it."""


async def socket_disconnected(*, sid: str, user: User) -> None:
    """A socket of `user` is gone (this process)."""
