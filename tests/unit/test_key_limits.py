"""The pure part of per-key limits (zengate/keylimits.py): the sliding minute, the UTC day, the
waits a refusal names, the allow-list and the admin fields' validation."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from zengate.keylimits import Counts, KeyPolicy, LimitError, Windows, parse_fields, refusal

MIDNIGHT = dt.datetime(2026, 12, 6, tzinfo=dt.UTC).timestamp()


def at(hours=0, minutes=0, seconds=0.0) -> Windows:
    return Windows.at(MIDNIGHT + hours * 3600 + minutes * 60 + seconds)


def test_windows_name_the_minute_and_the_utc_day():
    w = at(13, 7, 15)
    assert w.day == "2026-12-06" and w.into_minute == 15 and w.to_day_end == 10 * 3600 + 52 * 60 + 45
    assert w.minute == int((MIDNIGHT + 13 * 3600 + 7 * 60) // 60)
    assert at(23, 59, 59.5).day == "2026-12-06" and at(24).day == "2026-12-07"


def test_rpm_counts_this_minute_and_the_part_of_the_last_one_still_inside_the_window():
    policy = KeyPolicy(1, "family", rpm=10)
    w = at(1, 0, 15)  # a quarter into the minute: three quarters of the previous one count
    assert refusal(policy, Counts(minute=0, previous_minute=11), w) is None  # 8.25 + this one <= 10
    refused = refusal(policy, Counts(minute=1, previous_minute=11), w)  # 8.25 + 1 + this one > 10
    assert refused is not None and refused.limit == "rpm"
    # one more fits when 11 * (1 - t/60) + 2 <= 10: t >= 16.36 s, 1.36 s from now
    assert refused.retry_after == 2
    assert refused.message == "API key 'family' reached its limit of 10 requests per minute; retry in 2 s"


def test_a_burst_across_a_minutes_edge_cannot_pass_the_limit_twice():
    policy = KeyPolicy(1, "k", rpm=10)
    assert refusal(policy, Counts(minute=0, previous_minute=10), at(0, 5, 1)) is not None
    # a full minute later the previous burst is out of the window
    assert refusal(policy, Counts(minute=0, previous_minute=10), at(0, 5, 59.9)) is None


def test_a_full_minute_waits_for_the_next_one_and_its_fading():
    policy = KeyPolicy(1, "k", rpm=10)
    refused = refusal(policy, Counts(minute=10, previous_minute=0), at(0, 5, 40))
    assert refused.retry_after == 26  # 20 s to the next minute, then 10 * (1 - t/60) + 1 <= 10: 6 s
    refused = refusal(policy, Counts(minute=20, previous_minute=0), at(0, 5, 40))
    assert refused.retry_after == 53  # and 20 * (1 - t/60) + 1 <= 10 takes 33 s
    assert refusal(KeyPolicy(1, "k", rpm=1), Counts(), at(0, 5, 40)) is None  # a fresh key's first request
    assert "limit of 1 request per minute" in refusal(KeyPolicy(1, "k", rpm=1), Counts(1), at(0, 5, 40)).message


def test_daily_limits_name_the_reset_at_utc_midnight():
    policy = KeyPolicy(1, "", rpm=None, requests_per_day=100, tokens_per_day=5000)
    w = at(21, 30)
    refused = refusal(policy, Counts(day_requests=100), w)
    assert refused.limit == "requests_per_day" and refused.retry_after == 9000
    assert refused.message.endswith("limit of 100 requests per day; it resets at 00:00 UTC, in 2 h 30 min")
    refused = refusal(policy, Counts(day_requests=99, day_tokens=5001), w)
    assert refused.limit == "tokens_per_day" and "5001 used" in refused.message
    assert refusal(policy, Counts(day_requests=99, day_tokens=4999), w) is None


def test_a_key_without_limits_is_never_refused_nor_counted():
    policy = KeyPolicy(3, "free")
    assert not policy.counted
    assert refusal(policy, Counts(10**6, 10**6, 10**9, 10**12), at(12)) is None


def test_the_allow_list_takes_names_and_patterns():
    policy = KeyPolicy(1, "k", models=("big-pickle", "gpt-5*"))
    assert policy.allows("big-pickle") and policy.allows("gpt-5-nano") and policy.allows("gpt-5")
    assert not policy.allows("big-pickle-2") and not policy.allows("claude-sonnet-4-5") and not policy.allows("GPT-5")
    assert KeyPolicy(1, "k").allows("anything at all")


def test_the_policy_of_a_row():
    row = SimpleNamespace(id=7, name="", prefix="sk-zen-abcdef", rpm=0, requests_per_day=50, tokens_per_day=None,
                          models=json.dumps(["a", "b"]), expires_at=dt.datetime(2027, 1, 1))
    policy = KeyPolicy.of(row)
    assert policy.label == "sk-zen-abcdef…" and policy.rpm is None and policy.requests_per_day == 50
    assert policy.models == ("a", "b") and policy.counted
    assert policy.expired(dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp())
    assert not policy.expired(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp())


def test_admin_fields_are_stored_as_columns():
    fields = parse_fields({"rpm": 5, "requests_per_day": None, "models": [" big-pickle ", "gpt-*", "big-pickle"],
                           "expires_at": "2027-01-31T23:00:00+01:00", "note": "for Ana", "other": 1})
    assert fields == {"rpm": 5, "requests_per_day": None, "models": json.dumps(["big-pickle", "gpt-*"]),
                      "expires_at": dt.datetime(2027, 1, 31, 22, 0), "note": "for Ana"}
    assert parse_fields({"models": []}) == {"models": None} and parse_fields({"note": None}) == {"note": ""}
    assert parse_fields({"expires_at": "2027-01-31"}) == {"expires_at": dt.datetime(2027, 1, 31)}


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"rpm": 0}, "rpm", "whole number of requests per minute from 1"),
    ({"rpm": True}, "rpm", "whole number"),
    ({"rpm": 2.5}, "rpm", "whole number"),
    ({"requests_per_day": "100"}, "requests_per_day", "requests per day"),
    ({"tokens_per_day": 10**16}, "tokens_per_day", "tokens per day from 1 to"),
    ({"models": "big-pickle"}, "models", "must be a list"),
    ({"models": ["ok", ""]}, "models", "each entry"),
    ({"models": ["x\x00"]}, "models", "without NUL"),
    ({"models": ["m"] * 101}, "models", "at most 100"),
    ({"expires_at": "next tuesday"}, "expires_at", "not an ISO 8601"),
    ({"expires_at": 1767225600}, "expires_at", "must be an ISO 8601"),
    ({"expires_at": "1999-12-31T00:00:00"}, "expires_at", "between the years"),
    ({"note": 5}, "note", "must be a string"),
    ({"note": "x" * 2001}, "note", "at most 2000"),
])
def test_bad_admin_fields_are_named(body, param, says):
    with pytest.raises(LimitError) as caught:
        parse_fields(body)
    assert caught.value.param == param and says in str(caught.value)
