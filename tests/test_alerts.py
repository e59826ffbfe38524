"""Pure alerting logic on plain values: lifecycle, ids, replays, grouping, repeat, routing,
silences, inhibition, redaction, back-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerting.grouping import GroupTiming, plan_groups
from monitor.alerting.inhibition import excess_negatives, mute_reasons, topics_explained_by_entities
from monitor.alerting.lifecycle import RULE, Alert, alert_id, evaluate, fingerprint
from monitor.alerting.matchers import Matcher, MatcherError, Silence, parse_matcher
from monitor.alerting.routing import route_channels
from monitor.config import Route
from monitor.detect.signals import Key, Signal
from monitor.redact import mask_url, redact, register_secrets

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AAPL = Key("entity", "AAPL")
EARN = Key("topic", "Earnings")


def sig(key: Key, minute: int, spiking: bool = False, calm: bool = False, **numbers) -> Signal:
    at = T0 + timedelta(minutes=minute)
    return Signal(key, at, at - timedelta(minutes=15), spiking, calm, numbers or {"share": 0.5}, topic="Earnings")


def latest_of(changes_latest):
    return changes_latest[1]


# --- lifecycle -------------------------------------------------------------------------


def test_fires_immediately_without_pending_and_resolves_on_calm():
    ch, cur = evaluate({}, [sig(AAPL, 0, spiking=True)])
    assert [c.kind for c in ch] == ["fired"]
    a = ch[0].alert
    assert a.state == "firing" and a.fired_at == T0 and a.started_at == T0
    assert a.id == alert_id(fingerprint(RULE, AAPL), T0)
    ch, cur = evaluate(cur, [sig(AAPL, 1, spiking=False, calm=False), sig(AAPL, 2, calm=True)])
    assert [c.kind for c in ch] == ["updated", "resolved"]
    assert ch[-1].alert.id == a.id and ch[-1].alert.resolved_at == T0 + timedelta(minutes=2)


def test_pending_must_hold_then_fires_with_the_same_id():
    ch, cur = evaluate({}, [sig(AAPL, 0, spiking=True)], pending_minutes=5)
    assert [c.kind for c in ch] == ["pending"]
    pid = ch[0].alert.id
    ch, cur = evaluate(cur, [sig(AAPL, 3, spiking=True)], pending_minutes=5)
    assert [c.kind for c in ch] == ["updated"] and ch[0].alert.state == "pending"
    ch, cur = evaluate(cur, [sig(AAPL, 5, spiking=True)], pending_minutes=5)
    assert [c.kind for c in ch] == ["fired"] and ch[0].alert.id == pid
    assert ch[0].alert.fired_at == T0 + timedelta(minutes=5)


def test_pending_that_does_not_hold_is_dropped():
    ch, cur = evaluate({}, [sig(AAPL, 0, spiking=True), sig(AAPL, 1, spiking=False)], pending_minutes=5)
    assert [c.kind for c in ch] == ["pending", "dropped"]
    assert cur[fingerprint(RULE, AAPL)].fired_at is None


def test_refiring_later_is_a_new_occurrence_with_a_new_id():
    ch1, cur = evaluate({}, [sig(AAPL, 0, spiking=True), sig(AAPL, 10, calm=True)])
    ch2, cur = evaluate(cur, [sig(AAPL, 30, spiking=True)])
    assert ch2[0].kind == "fired"
    assert ch2[0].alert.id != ch1[0].alert.id
    assert ch2[0].alert.id == alert_id(fingerprint(RULE, AAPL), T0 + timedelta(minutes=30))


def test_replayed_signals_change_nothing():
    stream = [sig(AAPL, 0, spiking=True), sig(AAPL, 1), sig(AAPL, 5, calm=True), sig(EARN, 2, spiking=True)]
    ch, cur = evaluate({}, stream)
    again, cur2 = evaluate(cur, stream)
    assert again == [] and cur2 == cur


def test_calm_without_alert_and_neither_state_do_nothing():
    assert evaluate({}, [sig(AAPL, 0, calm=True), sig(AAPL, 1)])[0] == []


def test_ids_stable_across_timezones_of_the_same_instant():
    from datetime import timezone

    fp = fingerprint(RULE, AAPL)
    assert alert_id(fp, T0) == alert_id(fp, T0.astimezone(timezone(timedelta(hours=8))))
    with pytest.raises(ValueError):
        alert_id(fp, T0.replace(tzinfo=None))


keys = st.sampled_from([AAPL, EARN, Key("entity", "MSFT")])
steps = st.lists(st.tuples(keys, st.integers(0, 60), st.sampled_from(["spike", "calm", "mid"])), max_size=40)


def _signals(spec):
    return [sig(k, m, spiking=s == "spike", calm=s == "calm") for k, m, s in spec]


@settings(max_examples=150, deadline=None)
@given(spec=steps, cut=st.integers(0, 40))
def test_property_any_replay_of_a_prefix_is_a_no_op(spec, cut):
    """Applying a stream, then re-applying any prefix of it (a crash + replay), then the
    rest, ends in the same alerts as applying it once."""
    sigs = _signals(spec)
    # one tick per distinct time, as the detector produces them
    once = {}
    for t in sorted({s.at for s in sigs}):
        _, once = evaluate(once, [s for s in sigs if s.at == t], pending_minutes=2)
    replayed = {}
    times = sorted({s.at for s in sigs})
    for t in times:
        _, replayed = evaluate(replayed, [s for s in sigs if s.at == t], pending_minutes=2)
    for t in times[: cut % (len(times) + 1)]:
        ch, replayed = evaluate(replayed, [s for s in sigs if s.at == t], pending_minutes=2)
        assert ch == []
    assert replayed == once


# --- grouping, repeat ----------------------------------------------------------------------


def firing(key: Key, minute: int = 0, **kw) -> Alert:
    t = T0 + timedelta(minutes=minute)
    fp = fingerprint(RULE, key)
    return Alert(alert_id(fp, t), fp, RULE, key, "firing", t, t, fired_at=t, **kw)


TIMING = GroupTiming(
    group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5), repeat_interval=timedelta(hours=1)
)


def test_group_waits_then_sends_once_then_repeats_after_repeat_interval():
    a = firing(AAPL)
    flushes, st1 = plan_groups({}, [("c", a)], T0, TIMING)
    assert flushes == []  # group_wait
    flushes, st2 = plan_groups(st1, [("c", a)], T0 + timedelta(seconds=30), TIMING)
    assert len(flushes) == 1 and flushes[0].kind == "firing" and flushes[0].seq == 1
    assert flushes[0].dedup_key.startswith(f"{a.id}:firing:")
    # unchanged: nothing until repeat_interval
    for m in (6, 30, 59):
        f, st2 = plan_groups(st2, [("c", a)], T0 + timedelta(minutes=m), TIMING)
        assert f == []
    f, st3 = plan_groups(st2, [("c", a)], T0 + timedelta(minutes=61), TIMING)
    assert len(f) == 1 and f[0].repeat and f[0].seq == 2
    assert f[0].dedup_key != flushes[0].dedup_key


def test_acknowledged_alerts_do_not_repeat():
    a = firing(AAPL)
    f, s = plan_groups({}, [("c", a)], T0, replace(TIMING, group_wait=timedelta(0)))
    acked = replace(a, acknowledged_by="ann", acknowledged_at=T0)
    f, s = plan_groups(s, [("c", acked)], T0 + timedelta(hours=5), TIMING)
    assert f == []


def test_resolved_is_sent_after_group_interval_and_group_goes_idle():
    t = replace(TIMING, group_wait=timedelta(0))
    a = firing(AAPL)
    _, s = plan_groups({}, [("c", a)], T0, t)
    done = replace(a, state="resolved", resolved_at=T0 + timedelta(minutes=1))
    f, s = plan_groups(s, [("c", done)], T0 + timedelta(minutes=1), t)
    assert f == []  # group_interval not over
    f, s = plan_groups(s, [("c", done)], T0 + timedelta(minutes=5), t)
    assert len(f) == 1 and f[0].kind == "resolved" and f[0].resolved == (done,) and f[0].seq == 2
    gs = next(iter(s.values()))
    assert gs.notified_firing == frozenset()
    # a later occurrence waits group_wait again and never reuses a dedup key
    b = firing(AAPL, minute=60)
    f2, s = plan_groups(s, [("c", b)], T0 + timedelta(minutes=60), TIMING)
    assert f2 == []
    f2, s = plan_groups(s, [("c", b)], T0 + timedelta(minutes=61), TIMING)
    assert len(f2) == 1 and f2[0].seq == 3


def test_send_resolved_off_forgets_quietly():
    t = replace(TIMING, group_wait=timedelta(0), send_resolved=False)
    a = firing(AAPL)
    _, s = plan_groups({}, [("c", a)], T0, t)
    done = replace(a, state="resolved")
    f, s = plan_groups(s, [("c", done)], T0 + timedelta(minutes=10), t)
    assert f == [] and next(iter(s.values())).notified_firing == frozenset()


def test_group_by_kind_puts_two_keys_in_one_message():
    t = replace(TIMING, group_by=("key_kind",), group_wait=timedelta(seconds=30))
    a, b = firing(AAPL), firing(Key("entity", "MSFT"), minute=0)
    f, s = plan_groups({}, [("c", a)], T0, t)
    f, s = plan_groups(s, [("c", a), ("c", b)], T0 + timedelta(seconds=30), t)
    assert len(f) == 1 and {x.id for x in f[0].firing} == {a.id, b.id}
    # per channel: the same alerts to two channels are two groups
    f, s = plan_groups({}, [("c", a), ("d", a)], T0 + timedelta(minutes=1), replace(t, group_wait=timedelta(0)))
    assert sorted(x.channel for x in f) == ["c", "d"]


# --- routing, silences, inhibition ----------------------------------------------------------


LABELS = {"rule": RULE, "key_kind": "entity", "key_value": "AAPL", "topic": "Earnings", "severity": "critical"}


def test_no_routes_means_every_channel():
    assert route_channels(LABELS, (), ["a", "b"]) == ["a", "b"]


def test_routes_match_kind_value_topic_severity_and_continue():
    routes = (
        Route(channels=("desk",), key_kind="entity", key_value=("AAPL", "MSFT")),
        Route(channels=("macro",), topic=("Macro",)),
        Route(channels=("pager",), severity=("critical",), **{"continue": False}),
        Route(channels=("never",)),
    )
    assert route_channels(LABELS, routes, ["desk", "macro", "pager", "never"]) == ["desk", "pager"]
    low = {**LABELS, "severity": "warning", "key_value": "TSLA"}
    assert route_channels(low, routes, []) == ["never"]
    assert route_channels({**low, "topic": "Macro"}, routes[:2], []) == ["macro"]
    assert route_channels(low, routes[:1], []) == []  # routes but no match: nowhere


@pytest.mark.parametrize(
    "text,hit",
    [
        ("key_value=AAPL", True),
        ("key_value!=AAPL", False),
        ("topic=~Earn.*", True),
        ("topic=~Earn", False),  # anchored like Alertmanager
        ("topic!~Mac.*", True),
        ("severity = critical", True),
        ("key_kind='entity'", True),
    ],
)
def test_matchers(text, hit):
    assert parse_matcher(text).matches(LABELS) is hit


@pytest.mark.parametrize("bad", ["nolabel", "colour=red", "topic=~(", ""])
def test_bad_matchers_say_why(bad):
    with pytest.raises(MatcherError):
        parse_matcher(bad)


def test_silence_window_and_inhibition():
    s = Silence("s1", (Matcher("key_value", "AAPL"),), T0, T0 + timedelta(hours=1))
    assert mute_reasons(LABELS, [s], T0) == ["silence:s1"]
    assert mute_reasons(LABELS, [s], T0 + timedelta(hours=1)) == []  # ended
    assert mute_reasons(LABELS, [s], T0 - timedelta(seconds=1)) == []  # not started
    empty = Silence("s2", (), T0, T0 + timedelta(hours=1))
    assert mute_reasons(LABELS, [empty], T0) == []
    assert mute_reasons(LABELS, [], T0, firing_topics={"Earnings"}) == []
    assert mute_reasons(LABELS, [], T0, firing_topics={"Earnings"}, inhibit_entity_by_topic=True) == [
        "inhibited:topic=Earnings"
    ]
    topic_labels = {**LABELS, "key_kind": "topic", "key_value": "Earnings"}
    assert mute_reasons(topic_labels, [], T0, firing_topics={"Earnings"}, inhibit_entity_by_topic=True) == []


def _window(neg: int, total: int, base: float) -> dict[str, float]:
    return {"window_negative": neg, "window_total": total, "shrunk_baseline": base, "baseline_share": 0.9}


def test_excess_negatives_uses_the_shrunk_baseline_and_tolerates_missing_numbers():
    assert excess_negatives(_window(30, 100, 0.1)) == pytest.approx(20.0)
    assert excess_negatives({"window_negative": 30, "window_total": 100, "baseline_share": 0.1}) == pytest.approx(20.0)
    assert excess_negatives(_window(5, 100, 0.1)) == 0.0  # below the baseline: no excess
    assert excess_negatives({"window_negative": 1, "window_total": 20}) == 0.0  # a calm signal's numbers
    assert excess_negatives({"window_negative": "x", "window_total": 1, "baseline_share": 0.1}) == 0.0


def test_topic_alert_explained_when_its_companies_documents_carry_the_excess():
    topic = {"key_kind": "topic", "key_value": "Earnings", "topic": "Earnings"}
    aapl = {"key_kind": "entity", "key_value": "AAPL", "topic": "Stock Movement"}
    aapl_alert = (aapl, _window(12, 20, 0.1))
    # topic excess 40 - 200*0.1 = 20. Without the 20 documents (12 negative) naming a firing
    # company: 28 - 180*0.1 = 10, so they carry exactly half of it. The company's alert being
    # filed under another topic does not matter: its documents in this topic do.
    firing = [(topic, _window(40, 200, 0.1)), aapl_alert]
    assert topics_explained_by_entities(firing, {"Earnings": (20, 12, ["AAPL"])}) == {"Earnings": ["AAPL"]}
    assert topics_explained_by_entities(firing, {"Earnings": (20, 12, ["AAPL"])}, share=0.6) == {}  # half < 60 %
    # companies listed as given (most negatives first)
    assert topics_explained_by_entities(firing, {"Earnings": (30, 25, ["MSFT", "AAPL"])}) == {
        "Earnings": ["MSFT", "AAPL"]
    }
    # mostly neutral company documents: taking them out barely moves the excess
    assert topics_explained_by_entities(firing, {"Earnings": (60, 8, ["AAPL"])}) == {}
    # no company documents, no negatives among them, no excess, no topic alert, odd numbers
    assert topics_explained_by_entities(firing, {}) == {}
    assert topics_explained_by_entities(firing, {"Earnings": (5, 0, [])}) == {}
    assert (
        topics_explained_by_entities([(topic, _window(10, 200, 0.1)), aapl_alert], {"Earnings": (20, 12, ["AAPL"])})
        == {}
    )
    assert topics_explained_by_entities([aapl_alert], {"Earnings": (20, 12, ["AAPL"])}) == {}
    assert topics_explained_by_entities([(topic, {"window_negative": "x"})], {"Earnings": (20, 12, ["AAPL"])}) == {}
    # more removed than the window holds (late documents): clamped, still explained
    assert topics_explained_by_entities(firing, {"Earnings": (250, 45, ["AAPL"])}) == {"Earnings": ["AAPL"]}

    assert mute_reasons(topic, [], T0, explained_topics={"Earnings": ["MSFT", "AAPL"]}) == [
        "inhibited:entity=MSFT,AAPL"
    ]
    assert mute_reasons(topic, [], T0, explained_topics={"Macro": ["XOM"]}) == []
    assert mute_reasons(aapl, [], T0, explained_topics={"Earnings": ["AAPL"]}) == []  # only topic alerts


# --- redaction, back-off ------------------------------------------------------------------


def test_redact_masks_registered_secrets_urls_and_credential_params():
    register_secrets(["https://oapi.dingtalk.com/robot/send?access_token=tok123456789"])
    msg = "POST https://hooks.slack.com/services/T1/B2/abcdefgh failed; token tok123456789; sign=abc%3D&x=1"
    out = redact(msg, ["abcdefgh"])
    assert "abcdefgh" not in out and "tok123456789" not in out and "abc%3D" not in out
    assert "https://hooks.slack.com/***" in out
    assert mask_url("https://open.feishu.cn/open-apis/bot/v2/hook/xyz") == "https://open.feishu.cn/***"


def test_backoff_grows_with_jitter_and_is_capped():
    from monitor.notify.sender import (
        BACKOFF_INITIAL_SECONDS,
        BACKOFF_JITTER_SECONDS,
        BACKOFF_MAX_SECONDS,
        backoff_seconds,
    )

    for attempt in range(1, 6):
        w = backoff_seconds(attempt)
        low = BACKOFF_INITIAL_SECONDS * 2 ** (attempt - 1)
        assert low <= w <= low + BACKOFF_JITTER_SECONDS
    assert backoff_seconds(40) == BACKOFF_MAX_SECONDS
    assert len({backoff_seconds(3) for _ in range(20)}) > 1  # jittered


events = st.lists(
    st.tuples(st.integers(0, 900), st.sampled_from(["AAPL", "MSFT", "TSLA"]), st.booleans()), min_size=1, max_size=30
)


@settings(max_examples=150, deadline=None)
@given(ev=events, send_resolved=st.booleans(), by_kind=st.booleans())
def test_property_grouping_never_repeats_a_key_and_tells_every_change_once(ev, send_resolved, by_kind):
    """Random firing/resolving over time on two channels: dedup keys are unique, a
    resolved message only follows a firing one, each resolution is told at most once, and
    once the clock moves on every still-firing alert has been notified."""
    t = GroupTiming(
        group_by=("key_kind",) if by_kind else ("key_kind", "key_value"),
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
        repeat_interval=timedelta(hours=1),
        send_resolved=send_resolved,
    )
    now = T0
    alerts: dict[str, Alert] = {}  # key -> latest occurrence
    states: dict = {}
    seen_keys, told_firing, told_resolved = set(), set(), []

    def step(now):
        nonlocal states
        notified = set().union(*(g.notified_firing for g in states.values())) if states else set()
        members = [(ch, a) for a in alerts.values() if a.state == "firing" or a.id in notified for ch in ("c1", "c2")]
        flushes, states = plan_groups(states, members, now, t)
        for f in flushes:
            assert f.dedup_key not in seen_keys
            seen_keys.add(f.dedup_key)
            told_firing.update((f.channel, a.id) for a in f.firing)
            for a in f.resolved:
                assert (f.channel, a.id) in told_firing
                told_resolved.append((f.channel, a.id))

    for dt, sym, fire in ev:
        now += timedelta(seconds=dt)
        a = alerts.get(sym)
        if fire and (a is None or a.state == "resolved"):
            alerts[sym] = firing(Key("entity", sym), minute=int((now - T0).total_seconds() // 60))
            alerts[sym] = replace(alerts[sym], started_at=now, fired_at=now, id=f"{sym}@{now.isoformat()}")
        elif not fire and a is not None and a.state == "firing":
            alerts[sym] = replace(a, state="resolved", resolved_at=now)
        step(now)
    for _ in range(3):  # let group waits and intervals pass
        now += timedelta(minutes=6)
        step(now)
    assert len(told_resolved) == len(set(told_resolved))
    if not send_resolved:
        assert told_resolved == []
    for a in alerts.values():
        if a.state == "firing":
            assert ("c1", a.id) in told_firing and ("c2", a.id) in told_firing
