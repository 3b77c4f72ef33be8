"""The sliding-window rate limit (chat/ratelimit.py), on real Redis when
REDIS_URL is set and on fakeredis otherwise (same Lua script)."""

from __future__ import annotations

import itertools
import time

import pytest
from django.test import override_settings

from chat import ratelimit
from chatsite.redis import async_redis, sync_redis

_users = itertools.count(10_000_000)


@pytest.fixture
def user_id() -> int:
    # Ids no database row has: the keys are fresh in a shared Redis.
    return next(_users) + time.time_ns() % 1_000_000 * 100


@override_settings(CHAT_RATE_LIMIT_MESSAGES=3, CHAT_RATE_LIMIT_WINDOW=10)
def test_admits_up_to_the_limit_then_refuses_with_a_retry_time(user_id):
    decisions = [ratelimit.rate_limit_hit(user_id=user_id) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert 9 < decisions[3].retry_after_seconds <= 10


@override_settings(CHAT_RATE_LIMIT_MESSAGES=2, CHAT_RATE_LIMIT_WINDOW=1)
def test_the_window_slides(user_id):
    assert ratelimit.rate_limit_hit(user_id=user_id).allowed
    time.sleep(0.5)
    assert ratelimit.rate_limit_hit(user_id=user_id).allowed
    assert not ratelimit.rate_limit_hit(user_id=user_id).allowed
    time.sleep(0.6)  # the first send left the window, the second has not
    assert ratelimit.rate_limit_hit(user_id=user_id).allowed
    assert not ratelimit.rate_limit_hit(user_id=user_id).allowed


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1, CHAT_RATE_LIMIT_WINDOW=10, CHAT_RATE_LIMIT_JOINS=2)
def test_users_and_buckets_are_counted_apart(user_id):
    assert ratelimit.rate_limit_hit(user_id=user_id).allowed
    assert ratelimit.rate_limit_hit(user_id=user_id + 1).allowed
    assert ratelimit.rate_limit_hit(user_id=user_id, bucket="joins").allowed
    assert not ratelimit.rate_limit_hit(user_id=user_id).allowed
    # each bucket has its own limit
    assert ratelimit.rate_limit_hit(user_id=user_id, bucket="joins").allowed
    assert not ratelimit.rate_limit_hit(user_id=user_id, bucket="joins").allowed


@override_settings(CHAT_RATE_LIMIT_TYPING=2, CHAT_RATE_LIMIT_EVENT_WINDOW=1)
async def test_an_event_bucket_has_its_own_window(user_id):
    assert (await ratelimit.rate_limit_hit_async(user_id=user_id, bucket="typing")).allowed
    assert (await ratelimit.rate_limit_hit_async(user_id=user_id, bucket="typing")).allowed
    refused = await ratelimit.rate_limit_hit_async(user_id=user_id, bucket="typing")
    assert not refused.allowed and 0 < refused.retry_after_seconds <= 1


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1, CHAT_RATE_LIMIT_WINDOW=10)
def test_refusals_are_not_recorded_and_the_key_expires(user_id):
    ratelimit.rate_limit_hit(user_id=user_id)
    for _ in range(5):
        ratelimit.rate_limit_hit(user_id=user_id)
    key = f"{ratelimit.key('rate', 'messages', user_id)}"
    assert sync_redis().zcard(key) == 1
    assert 0 < sync_redis().pttl(key) <= 10_000


def test_an_unreachable_redis_fails_open(user_id, monkeypatch, caplog):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(ratelimit, "sync_redis", lambda: unreachable)
    assert ratelimit.rate_limit_hit(user_id=user_id).allowed
    assert "rate limit unavailable" in caplog.text


@override_settings(CHAT_RATE_LIMIT_MESSAGES=2, CHAT_RATE_LIMIT_WINDOW=10)
async def test_a_batch_is_admitted_in_order_in_one_call(user_id):
    # given a watched key that exists and one that does not
    typing = ratelimit.key("test-watch", user_id)
    await async_redis().set(typing, "1", ex=10)

    # when three attempts of one user and one of another arrive in one batch
    decisions = await ratelimit.rate_limit_hit_many_async(
        user_ids=[user_id, user_id, user_id + 1, user_id],
        watch=[typing, typing, ratelimit.key("test-watch", "none"), typing],
    )

    # then the user's attempts count against each other in order, the other
    # user's apart, and each decision says whether its watched key exists
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.watched_exists for d in decisions] == [True, True, False, True]
    assert decisions[0].entry and decisions[1].entry and decisions[3].entry is None
    assert 9 < decisions[3].retry_after_seconds <= 10


@override_settings(CHAT_RATE_LIMIT_MESSAGES=1, CHAT_RATE_LIMIT_WINDOW=10)
async def test_a_refund_gives_the_attempt_back(user_id):
    (first,) = await ratelimit.rate_limit_hit_many_async(user_ids=[user_id])
    (second,) = await ratelimit.rate_limit_hit_many_async(user_ids=[user_id])
    assert first.allowed and not second.allowed

    # (the second recorded nothing: giving it back is a no-op)
    await ratelimit.rate_limit_refund_many_async([(user_id, first), (user_id, second)])

    (third,) = await ratelimit.rate_limit_hit_many_async(user_ids=[user_id])
    assert third.allowed
