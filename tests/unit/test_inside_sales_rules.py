"""The response SLA, the SQL criteria and round-robin, as pure rules."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from services.inside_sales.domain import RepTurn, SlaPolicy, is_late, next_rep

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def test_respond_by_follows_the_policy() -> None:
    assert SlaPolicy().respond_by(T0) == T0 + timedelta(hours=24)
    assert SlaPolicy(response_time=timedelta(hours=4)).respond_by(T0) == T0 + timedelta(hours=4)


def test_lateness_is_judged_in_event_time() -> None:
    due = T0 + timedelta(hours=24)
    assert not is_late(due, T0 + timedelta(hours=23), now=T0 + timedelta(days=60))
    assert is_late(due, T0 + timedelta(hours=25), now=T0 + timedelta(hours=25))
    assert is_late(due, None, now=due + timedelta(seconds=1))
    assert not is_late(due, None, now=due)


def test_default_sql_criteria_are_need_and_decision_maker() -> None:
    policy = SlaPolicy()
    assert policy.unmet({"need": "inspection", "decision_maker": "Mori"}) == []
    assert policy.unmet({"need": "  ", "decision_maker": None}) == ["need", "decision_maker"]
    assert policy.unmet({"need": "x"}) == ["decision_maker"]
    strict = SlaPolicy(sql_criteria=("need", "budget", "timeline"))
    assert strict.unmet({"need": "x", "budget": 0, "timeline": ""}) == ["timeline"]


def test_round_robin_deals_in_turn_and_fairly() -> None:
    turns = {"a": 0, "b": 0, "c": 0}
    dealt = []
    for turn in range(1, 31):
        rep = next_rep([RepTurn(r, t) for r, t in turns.items()])
        assert rep is not None
        turns[rep] = turn
        dealt.append(rep)
    assert dealt[:6] == ["a", "b", "c", "a", "b", "c"]
    assert Counter(dealt) == {"a": 10, "b": 10, "c": 10}
    turns["d"] = 0  # a new rep is next in line
    assert next_rep([RepTurn(r, t) for r, t in turns.items()]) == "d"
    assert next_rep([]) is None
