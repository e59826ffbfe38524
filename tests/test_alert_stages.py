"""The alerting chain (`monitor.alerting.stages`) on plain values: no database, no HTTP.

The repository loads a `Snapshot` and `Facts`; these tests hand them in directly and check
the `Plan` the stages return, which is everything a tick would write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.alerting import stages
from monitor.alerting.grouping import GroupTiming
from monitor.alerting.matchers import Silence, parse_matcher
from monitor.alerting.routing import Router
from monitor.alerting.stages import Facts, Policy, Snapshot
from monitor.config import Route
from monitor.detect.signals import Key, Signal

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TSLA = Key("entity", "TSLA")
MOVES = Key("topic", "Stock Movement")
NUMBERS = {"window_negative": 30, "window_total": 40, "baseline_share": 0.2, "share": 0.75, "p_value": 1e-9}


def spike(key: Key, topic: str | None = None) -> Signal:
    return Signal(key, T0, T0 - timedelta(minutes=15), True, False, dict(NUMBERS), topic=topic)


def policy(**kw: object) -> Policy:
    base = {
        "router": Router((), ("desk", "ops")),
        "timing": GroupTiming(group_wait=timedelta(0)),
        "channel_types": {"desk": "webhook", "ops": "slack"},
        "dashboard_url": "http://dash.example",
    }
    return Policy(**{**base, **kw})  # type: ignore[arg-type]


EMPTY = Snapshot(latest={}, alerts={}, groups={}, silences=[])


def run(snapshot: Snapshot, signals: list[Signal], pol: Policy, facts: Facts | None = None, notify: bool = True):
    changes = stages.lifecycle(snapshot, signals, pol)
    return stages.needs(snapshot, changes, pol), stages.plan(snapshot, changes, facts or Facts(), pol, T0, notify)


def test_a_new_surge_plans_alert_rows_group_state_and_one_message_per_channel():
    needs, plan = run(EMPTY, [spike(TSLA, "Stock Movement")], policy())
    assert [c.kind for c in plan.changes] == ["fired"]
    assert [a.key for a in plan.alerts] == [TSLA] and plan.alerts[0].state == "firing"
    assert needs.firing == tuple(plan.alerts) and needs.evidence_count == 5
    assert sorted(o.channel for o in plan.notifications) == ["desk", "ops"]
    assert all(o.status == "pending" and o.kind == "firing" for o in plan.notifications)
    assert len(plan.groups) == 2  # one group per channel, to be upserted
    slack = next(o for o in plan.notifications if o.channel == "ops")
    hook = next(o for o in plan.notifications if o.channel == "desk")
    assert slack.payload["body"]["blocks"][0]["type"] == "header"  # rendered for each channel's type
    assert hook.payload["body"]["version"] == "1" and "TSLA" in hook.payload["body"]["title"]
    assert slack.payload["message"]["alerts"][0]["dashboard_url"].startswith("http://dash.example/Alerts?alert=")


def test_without_channels_only_the_alerts_are_planned_and_no_facts_are_needed():
    pol = policy(channel_types={}, router=Router((), ()))
    needs, plan = run(EMPTY, [spike(TSLA, "Stock Movement")], pol)
    assert [a.state for a in plan.alerts] == ["firing"]
    assert plan.notifications == [] and plan.groups == {}
    assert needs.firing == () and needs.evidence_count == 0 and not needs.company_documents


def test_notify_off_plans_suppressed_rows():
    _, plan = run(EMPTY, [spike(TSLA, "Stock Movement")], policy(), notify=False)
    assert plan.notifications and all(o.status == "suppressed" for o in plan.notifications)


def test_evidence_from_the_facts_goes_into_the_message():
    doc = {"id": "d1", "source": "wire", "published_at": None, "headline": "TSLA recalls", "url": None}
    changes = stages.lifecycle(EMPTY, [spike(TSLA, "Stock Movement")], policy())
    alert_id = changes[0].alert.id
    plan = stages.plan(EMPTY, changes, Facts(evidence={alert_id: [doc]}), policy(), T0)
    assert {tuple(o.payload["message"]["alerts"][0]["evidence"][0].items()) for o in plan.notifications} == {
        tuple(doc.items())
    }


def test_a_company_alert_without_a_topic_takes_the_dominant_topic_from_the_facts():
    needs, _ = run(EMPTY, [spike(TSLA)], policy())
    assert [a.key for a in needs.topic_for] == [TSLA]
    changes = stages.lifecycle(EMPTY, [spike(TSLA)], policy())
    plan = stages.plan(EMPTY, changes, Facts(topics={changes[0].alert.id: "Legal | Regulation"}), policy(), T0)
    assert plan.alerts[0].topic == "Legal | Regulation"


def test_a_topic_echo_of_a_firing_company_is_muted_with_an_audit_row():
    pol = policy(inhibit_topic_by_entity=True, inhibit_topic_share=0.5)
    needs, _ = run(EMPTY, [spike(TSLA, "Stock Movement"), spike(MOVES)], pol)
    assert needs.company_documents and {a.key for a in needs.firing} == {TSLA, MOVES}
    changes = stages.lifecycle(EMPTY, [spike(TSLA, "Stock Movement"), spike(MOVES)], pol)
    # the topic window's documents that name TSLA carry all of its excess negatives
    facts = Facts(company_documents={"Stock Movement": (32, 28, ["TSLA"])})
    plan = stages.plan(EMPTY, changes, facts, pol, T0)
    sent = [o for o in plan.notifications if o.status == "pending"]
    audit = [o for o in plan.notifications if o.status == "silenced"]
    assert {a["key"]["value"] for o in sent for a in o.payload["message"]["alerts"]} == {"TSLA"}
    assert {o.payload["message"]["reasons"][0] for o in audit} == {"inhibited:entity=TSLA"}
    # without the documents, the topic alert pages too
    plan = stages.plan(EMPTY, changes, Facts(), pol, T0)
    assert {a["key"]["value"] for o in plan.notifications for a in o.payload["message"]["alerts"]} == {
        "TSLA",
        "Stock Movement",
    }


def test_silences_and_routes_are_applied_in_the_chain():
    silence = Silence("s1", (parse_matcher("key_value=TSLA"),), T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    snapshot = Snapshot(latest={}, alerts={}, groups={}, silences=[silence])
    pol = policy(router=Router((Route(channels=["ops"], key_kind="topic"),), ("desk", "ops")))  # type: ignore[call-arg]
    _, plan = run(snapshot, [spike(TSLA, "Stock Movement"), spike(MOVES)], pol)
    pending = [o for o in plan.notifications if o.status == "pending"]
    assert [(o.channel, o.payload["message"]["alerts"][0]["key"]["value"]) for o in pending] == [
        ("ops", "Stock Movement")
    ]
    # TSLA is silenced; the topic route sends it nowhere, so it has no routed channel to audit
    assert [o for o in plan.notifications if o.status == "silenced"] == []


def test_the_same_tick_planned_again_on_its_own_result_says_nothing_new():
    pol = policy()
    changes = stages.lifecycle(EMPTY, [spike(TSLA, "Stock Movement")], pol)
    first = stages.plan(EMPTY, changes, Facts(), pol, T0)
    after = Snapshot(
        latest={a.fingerprint: a for a in first.alerts},
        alerts={a.id: a for a in first.alerts},
        groups=first.groups,
        silences=[],
    )
    again = stages.lifecycle(after, [spike(TSLA, "Stock Movement")], pol)
    assert again == []
    second = stages.plan(after, again, Facts(), pol, T0)
    assert second.notifications == [] and second.groups == {}
