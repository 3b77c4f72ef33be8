"""Seed the bench database through the ORM and mint a JWT per user.

    python -m bench.seed PLAN.json OUT.json   (DJANGO_SETTINGS_MODULE and DATABASE_URL set)

PLAN: {"rooms": R, "per_room": C, "extra_users": N, "presence_rooms": [k, ...]}
OUT:  {"workload": [[token, roomId], ...]  (R*C users, each a member of one room),
       "extra": [token, ...]               (N users in no room: idle and connect phases),
       "presence": {"k": {"subject": token, "watchers": [token, ...], "rooms": [...]}}}

Passwords are unusable: the bench signs in with JWTs only. Memberships are
created here so `room:join` in the workload is a read, not a write.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def seed(plan: dict[str, Any]) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import transaction
    from rest_framework_simplejwt.tokens import AccessToken

    from chat.models import Membership, Room

    rooms, per_room = int(plan["rooms"]), int(plan["per_room"])
    extra = int(plan["extra_users"])
    ks = [int(k) for k in plan.get("presence_rooms", [])]

    def users(prefix: str, count: int) -> list[User]:
        return User.objects.bulk_create(
            [User(username=f"{prefix}{i}", password="!", email=f"{prefix}{i}@bench.invalid") for i in range(count)]
        )

    def token(user: User) -> str:
        return str(AccessToken.for_user(user))

    out: dict[str, Any] = {"workload": [], "extra": [], "presence": {}}
    with transaction.atomic():
        workload_users = users("load", rooms * per_room)
        room_objs = Room.objects.bulk_create(
            [Room(id=f"bench-{r}", name=f"Bench room {r}", visibility=Room.Visibility.PUBLIC) for r in range(rooms)]
        )
        memberships = []
        for i, user in enumerate(workload_users):
            room = room_objs[i // per_room]
            memberships.append(Membership(user=user, room=room))
            out["workload"].append([token(user), room.pk])
        Membership.objects.bulk_create(memberships)

        out["extra"] = [token(u) for u in users("idle", extra)]

        # Presence: a subject in k rooms, each room with one watcher of its own,
        # so the events a connect causes can be counted per room.
        for k in ks:
            subject = users(f"pres{k}-s", 1)[0]
            watchers = users(f"pres{k}-w", k)
            k_rooms = Room.objects.bulk_create(
                [Room(id=f"pres{k}-{j}", name=f"Presence {k}/{j}", visibility=Room.Visibility.PUBLIC) for j in range(k)]
            )
            Membership.objects.bulk_create(
                [Membership(user=subject, room=room) for room in k_rooms]
                + [Membership(user=w, room=room) for w, room in zip(watchers, k_rooms, strict=True)]
            )
            out["presence"][str(k)] = {
                "subject": token(subject),
                "watchers": [token(w) for w in watchers],
                "rooms": [room.pk for room in k_rooms],
            }
    return out


def main() -> None:
    import django

    django.setup()
    plan_path, out_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        plan = json.load(f)
    result = seed(plan)
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
