"""factory_boy factories for the chat's models."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User

from chat.models import Membership, Message, Room

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    id = factory.Sequence(lambda n: f"room-{n}")
    name = factory.LazyAttribute(lambda r: r.id.replace("-", " ").title())
    visibility = Room.Visibility.PUBLIC
    created_by = factory.SubFactory(UserFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    room = factory.SubFactory(RoomFactory)
    role = Membership.Role.MEMBER


def add_member(room: Room, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    return Membership.objects.create(room=room, user=user, role=role)


def post(room: Room, author: User, text: str = "hello", **fields: object) -> Message:
    """Store a message the way the service does (seq under the room lock), without broadcasting."""
    from django.db import transaction

    with transaction.atomic():
        locked = Room.objects.select_for_update().get(pk=room.pk)
        locked.last_seq += 1
        locked.save(update_fields=["last_seq"])
        return Message.objects.create(room=room, author=author, text=text, seq=locked.last_seq, **fields)
