"""The REST tests run in-process on pytest-django's database, with real JWTs
(`api_as`) and broadcasts recorded (`broadcasts`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from chat.models import Membership, Message, Room
from tests.chat.services.conftest import _fast_password_hashing, broadcasts
from tests.factories import RoomFactory, UserFactory, add_member, post

__all__ = ["_fast_password_hashing", "broadcasts"]

PERSONAS = ["owner", "member", "outsider", "anonymous", "staff"]


@dataclass
class World:
    """Two rooms, public and private, each with an owner and a member who has
    posted; an outsider and a staff account belong to neither."""

    owner: User
    member: User
    outsider: User
    staff: User
    public: Room
    private: Room
    public_message: Message
    private_message: Message

    def user(self, persona: str) -> User | None:
        return None if persona == "anonymous" else getattr(self, persona)

    def room(self, visibility: str) -> Room:
        return self.public if visibility == "public" else self.private

    def message(self, visibility: str) -> Message:
        return self.public_message if visibility == "public" else self.private_message


@pytest.fixture
def world(db: None) -> World:
    owner, member = UserFactory(username="owner"), UserFactory(username="member")
    outsider = UserFactory(username="outsider")
    staff = UserFactory(username="staff", is_staff=True)
    rooms = {}
    for visibility in ("public", "private"):
        room = RoomFactory(id=f"{visibility}-room", visibility=visibility, created_by=owner)
        add_member(room, owner, Membership.Role.OWNER)
        add_member(room, member)
        rooms[visibility] = room
    return World(
        owner=owner,
        member=member,
        outsider=outsider,
        staff=staff,
        public=rooms["public"],
        private=rooms["private"],
        public_message=post(rooms["public"], member, "public hello"),
        private_message=post(rooms["private"], member, "private hello"),
    )


@pytest.fixture
def client_of(world: World, api_as: Callable[[User | None], APIClient]) -> Callable[[str], APIClient]:
    """An API client for a persona of `world` (a real JWT; none for anonymous)."""
    return lambda persona: api_as(world.user(persona))
