"""The eight default rules of etc/hearth.yaml, end to end (PROTOCOL.md §4, §6, §7).

Each test runs `hearthd --test-clock` on the shipped `events`-compatible test config
with the shipped `priority` and `rules` sections copied verbatim from etc/hearth.yaml,
subscribes to the PUB socket before sending anything, and moves the daemon's clock to
just before and just after each threshold.  "Nothing was published" is checked by
waiting for a heartbeat stamped after the moment in question (Subscriber.sync), never
by sleeping.  Events that end an alert are sent over the control socket or ZeroMQ and
the resolution must arrive without the clock moving (expect_soon: a generous deadline,
no speed asserted).
"""

import pytest

from hearthtest import (DAY, HOUR, MINUTE, T0_MS, assert_ok, etc_priority, etc_section, ev,
                        expect_alerts, expect_soon, rfc3339)

DEFAULT_RULES = etc_section("rules")
SLACK = 60 * 1000        # the test clock runs on with the wall clock; values may be that much later


def at(ms):
    return rfc3339(ms)


@pytest.fixture
def defaults(clock_daemon):
    """A daemon on the shipped rules and priority, clock at T0, and a live subscriber."""
    d = clock_daemon(rules_yaml=DEFAULT_RULES, priority=etc_priority())
    return d, d.subscribe()


def near(value, expected, slack=SLACK):
    return value is not None and expected <= value <= expected + slack


def test_default_rules_are_loaded(defaults):
    d, _ = defaults
    names = [r["name"] for r in assert_ok(d.ctl({"cmd": "rules"}))["rules"]]
    assert names == ["customer_cooling", "followup_below_cadence", "cadence_slowing",
                     "complaint_unresolved", "promise_overdue", "upsell_window",
                     "signed_needs_care", "new_customer_wobble"]


def test_customer_cooling(defaults):
    d, sub = defaults
    d.ingest_ctl([
        ev("C1", at(T0_MS), "profile", attrs={"name": "Lin Wei", "tier": "B", "owner": "zhang"}),
        ev("C1", at(T0_MS), "call"),
        # tier C and never touched: counts once 30 days old
        ev("C2", at(T0_MS), "profile", attrs={"name": "Wang Fang", "tier": "C", "owner": "li"}),
        # tier A is never "cooling"
        ev("C3", at(T0_MS), "profile", attrs={"name": "Zhao Lei", "tier": "A"}),
    ])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 30 * DAY - MINUTE))
    expect_alerts(sub, d)
    assert d.alerts() == []

    d.clock_set(at(T0_MS + 30 * DAY + MINUTE))
    got = expect_alerts(sub, d, ("firing", "customer_cooling", "C1"),
                        ("firing", "customer_cooling", "C2"))
    b = got[("firing", "customer_cooling", "C1")]
    a = b["alert"]
    assert a["severity"] == "warning" and a["state"] == "firing"
    assert "Lin Wei" in a["summary"] and "C1" in a["summary"] and "tier B" in a["summary"], a
    assert near(a["values"]["since(touch)"], 30 * DAY + MINUTE), a["values"]
    assert a["values"]["tier"] == "B"
    assert a["labels"] == {"team": "sales"}
    assert b["customer"] == {"id": "C1", "name": "Lin Wei", "owner": "zhang", "tier": "B"}
    a2 = got[("firing", "customer_cooling", "C2")]["alert"]
    assert "Wang Fang" in a2["summary"], a2
    assert a2["values"]["since(touch)"] is None, a2["values"]
    assert near(a2["values"]["age()"], 30 * DAY + MINUTE), a2["values"]
    firing = {(x["rule"], x["customer"]) for x in d.alerts()}
    assert firing == {("customer_cooling", "C1"), ("customer_cooling", "C2")}
    assert d.status()["firing"] == 2

    # a touch ends it at once
    d.ingest_ctl([ev("C1", at(T0_MS + 30 * DAY + MINUTE), "call")])
    b = expect_soon(sub, "resolved", "customer_cooling", "C1")
    assert b["alert"]["state"] == "resolved"
    # so does leaving tiers B/C
    d.ingest_ctl([ev("C2", at(T0_MS + 30 * DAY + MINUTE), "profile", attrs={"tier": "A"})])
    expect_soon(sub, "resolved", "customer_cooling", "C2")
    expect_alerts(sub, d)
    assert d.alerts() == []
    assert d.status()["firing"] == 0


def test_followup_below_cadence(defaults):
    d, sub = defaults
    d.ingest_ctl([ev("F1", at(T0_MS), "profile", attrs={"name": "Chen Jing", "tier": "C"}),
                  ev("F1", at(T0_MS), "call")])
    # one touch in 30 days for a tier C customer: at once
    b = expect_soon(sub, "firing", "followup_below_cadence", "F1")
    assert b["alert"]["severity"] == "info"
    assert "Chen Jing" in b["alert"]["summary"] and "1 time(s)" in b["alert"]["summary"], b
    assert b["alert"]["values"]["count(touch, 30d)"] == 1
    # the second touch makes two a month
    d.clock_set(at(T0_MS + DAY))
    d.ingest_ctl([ev("F1", at(T0_MS + DAY), "visit")])
    expect_soon(sub, "resolved", "followup_below_cadence", "F1")
    expect_alerts(sub, d)
    # the first touch leaves the 30-day window at T0+30d
    d.clock_set(at(T0_MS + 30 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 30 * DAY + MINUTE))
    b = expect_alerts(sub, d, ("firing", "followup_below_cadence", "F1"))
    assert b[("firing", "followup_below_cadence", "F1")]["alert"]["values"]["count(touch, 30d)"] == 1
    # repeat 0s: nothing more while it fires
    d.clock_set(at(T0_MS + 31 * DAY - MINUTE))
    expect_alerts(sub, d)
    # the last touch is 30 days old: customer_cooling takes over, so one neglect is one alert
    d.clock_set(at(T0_MS + 31 * DAY + MINUTE))
    expect_alerts(sub, d, ("resolved", "followup_below_cadence", "F1"),
                  ("firing", "customer_cooling", "F1"))


def test_cadence_slowing(defaults):
    d, sub = defaults
    d.clock_set(at(T0_MS + 21 * DAY))
    # gaps 2d, 4d, 15d: the median is 4d (the mean would be 7d), so 2 * gap = 8d
    d.ingest_ctl([ev("K1", at(T0_MS - 30 * DAY), "profile", attrs={"name": "Zhou Min"})] +
                 [ev("K1", at(T0_MS + k * DAY), "purchase", attrs={"amount": 100})
                  for k in (0, 2, 6, 21)])
    expect_alerts(sub, d)
    assert assert_ok(d.ctl({"cmd": "eval", "expr": "gap(purchase)", "customer": "K1"}))["value"] == 4 * DAY
    d.clock_set(at(T0_MS + 29 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 29 * DAY + MINUTE))
    b = expect_alerts(sub, d, ("firing", "cadence_slowing", "K1"))[("firing", "cadence_slowing", "K1")]
    v = b["alert"]["values"]
    assert v["gap(purchase)"] == 4 * DAY and v["count(purchase, 365d)"] == 4, v
    assert near(v["since(purchase)"], 8 * DAY + MINUTE), v
    assert "Zhou Min" in b["alert"]["summary"] and "4d" in b["alert"]["summary"], b
    # a new purchase ends it
    d.ingest_ctl([ev("K1", at(T0_MS + 29 * DAY + MINUTE), "purchase", attrs={"amount": 80})])
    expect_soon(sub, "resolved", "cadence_slowing", "K1")
    expect_alerts(sub, d)


def test_complaint_unresolved(defaults):
    d, sub = defaults
    d.ingest_ctl([ev("Q1", at(T0_MS - 90 * DAY), "profile", attrs={"name": "Sun Li", "owner": "wu"}),
                  ev("Q1", at(T0_MS), "complaint", ref="T-77", attrs={"channel": "phone"})])
    d.clock_set(at(T0_MS + DAY))
    d.ingest_ctl([ev("Q1", at(T0_MS + DAY), "complaint", ref="T-78")])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 48 * HOUR - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 48 * HOUR + MINUTE))
    b = expect_alerts(sub, d, ("firing", "complaint_unresolved", "Q1"))[
        ("firing", "complaint_unresolved", "Q1")]
    assert b["alert"]["severity"] == "critical"
    assert "Sun Li" in b["alert"]["summary"] and "2 open complaint(s)" in b["alert"]["summary"], b
    assert near(b["alert"]["values"]["oldest(complaint)"], 48 * HOUR + MINUTE), b["alert"]["values"]
    assert b["alert"]["labels"] == {"team": "service"}
    # resolving the oldest leaves a one-day-old one: resolved at once
    d.ingest_ctl([ev("Q1", at(T0_MS + 48 * HOUR + MINUTE), "complaint_resolved", ref="T-77")])
    expect_soon(sub, "resolved", "complaint_unresolved", "Q1")
    # the younger one turns 48h old at T0+72h
    d.clock_set(at(T0_MS + 72 * HOUR - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 72 * HOUR + MINUTE))
    expect_alerts(sub, d, ("firing", "complaint_unresolved", "Q1"))
    # a close without ref closes the oldest open one
    d.ingest_ctl([ev("Q1", at(T0_MS + 72 * HOUR + MINUTE), "complaint_resolved")])
    expect_soon(sub, "resolved", "complaint_unresolved", "Q1")
    expect_alerts(sub, d)
    assert assert_ok(d.ctl({"cmd": "eval", "expr": "open(complaint)", "customer": "Q1"}))["value"] == 0


def test_complaint_closed_before_its_open_arrives(defaults):
    """Backfill out of order (PROTOCOL.md §2.3): the resolution arrives before the complaint it
    resolves.  The case is closed; nothing ever fires."""
    d, sub = defaults
    d.ingest_ctl([ev("Q2", at(T0_MS - 90 * DAY), "profile", attrs={"name": "Late"})])
    d.ingest_ctl([ev("Q2", at(T0_MS - HOUR), "complaint_resolved", ref="T-9")])
    d.ingest_ctl([ev("Q2", at(T0_MS - 2 * HOUR), "complaint", ref="T-9")])
    # and within one batch
    d.ingest_ctl([ev("Q3", at(T0_MS - 90 * DAY), "profile", attrs={"name": "Later"}),
                  ev("Q3", at(T0_MS - HOUR), "complaint_resolved", ref="T-10"),
                  ev("Q3", at(T0_MS - 2 * HOUR), "complaint", ref="T-10")])
    for cid in ("Q2", "Q3"):
        assert assert_ok(d.ctl({"cmd": "eval", "expr": "open(complaint)", "customer": cid}))["value"] == 0
    d.clock_set(at(T0_MS + 3 * DAY))
    expect_alerts(sub, d)


def test_promise_overdue(defaults):
    d, sub = defaults
    d.ingest_ctl([
        ev("P1", at(T0_MS - 90 * DAY), "profile", attrs={"name": "Li Na", "owner": "zhang"}),
        # due T0+3d, written with an offset
        ev("P1", at(T0_MS), "promise", ref="P-1", attrs={"due": "2031-01-09T17:00:00+08:00"}),
        # no due: never overdue
        ev("P1", at(T0_MS), "promise", ref="P-2"),
    ])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 3 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 3 * DAY + MINUTE))
    b = expect_alerts(sub, d, ("firing", "promise_overdue", "P1"))[("firing", "promise_overdue", "P1")]
    assert b["alert"]["severity"] == "critical"
    assert b["alert"]["summary"] == "Li Na (P1) has 1 promise(s) past due (owner zhang)", b
    assert b["alert"]["values"]["overdue(promise)"] == 1
    d.ingest_ctl([ev("P1", at(T0_MS + 3 * DAY + MINUTE), "promise_kept", ref="P-1")])
    expect_soon(sub, "resolved", "promise_overdue", "P1")
    d.clock_set(at(T0_MS + 30 * DAY))
    expect_alerts(sub, d)
    assert assert_ok(d.ctl({"cmd": "eval", "expr": "open(promise)", "customer": "P1"}))["value"] == 1


def test_upsell_window(defaults):
    d, sub = defaults
    d.ingest_ctl([ev(c, at(T0_MS - 90 * DAY), "profile", attrs={"name": "Buyer " + c}) for c in ("U1", "U2")] +
                 [ev(c, at(T0_MS), "purchase", attrs={"amount": 5000}) for c in ("U1", "U2")])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 7 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 7 * DAY + MINUTE))
    got = expect_alerts(sub, d, ("firing", "upsell_window", "U1"), ("firing", "upsell_window", "U2"))
    a = got[("firing", "upsell_window", "U1")]["alert"]
    assert a["severity"] == "info" and "Buyer U1" in a["summary"], a
    assert a["values"]["since(offer)"] is None and a["values"]["count(purchase, 3650d)"] == 1, a
    # an offer ends it for U1
    d.ingest_ctl([ev("U1", at(T0_MS + 7 * DAY + MINUTE), "offer")])
    expect_soon(sub, "resolved", "upsell_window", "U1")
    # the window closes 30 days after the purchase for U2
    d.clock_set(at(T0_MS + 30 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 30 * DAY + MINUTE))
    expect_alerts(sub, d, ("resolved", "upsell_window", "U2"))


def test_signed_needs_care(defaults):
    d, sub = defaults
    d.ingest_ctl([ev("S1", at(T0_MS), "profile", attrs={"name": "Signed One", "tier": "D"}),
                  ev("S1", at(T0_MS), "visit"),
                  ev("S2", at(T0_MS), "profile", attrs={"name": "Signed Two", "tier": "D"})])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 90 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 90 * DAY + MINUTE))
    got = expect_alerts(sub, d, ("firing", "signed_needs_care", "S1"),
                        ("firing", "signed_needs_care", "S2"))
    a = got[("firing", "signed_needs_care", "S1")]["alert"]
    assert "Signed One" in a["summary"] and near(a["values"]["since(touch)"], 90 * DAY + MINUTE), a
    d.ingest_ctl([ev("S1", at(T0_MS + 90 * DAY + MINUTE), "meeting")])
    expect_soon(sub, "resolved", "signed_needs_care", "S1")
    d.ingest_ctl([ev("S2", at(T0_MS + 90 * DAY + MINUTE), "message")])
    expect_soon(sub, "resolved", "signed_needs_care", "S2")
    expect_alerts(sub, d)


def test_new_customer_wobble(defaults):
    d, sub = defaults
    # W2 has been a customer for 50 days and complains now
    d.ingest_ctl([ev("W2", at(T0_MS - 50 * DAY), "profile", attrs={"name": "Old Hand"}),
                  ev("W2", at(T0_MS), "complaint", ref="w2")])
    expect_soon(sub, "firing", "new_customer_wobble", "W2")
    # W1 is new and complains on day 1
    d.ingest_ctl([ev("W1", at(T0_MS), "profile", attrs={"name": "New Face"})])
    d.clock_set(at(T0_MS + DAY))
    d.ingest_ctl([ev("W1", at(T0_MS + DAY), "complaint", ref="w1")])
    b = expect_soon(sub, "firing", "new_customer_wobble", "W1")
    assert near(b["alert"]["values"]["age()"], DAY) and b["alert"]["values"]["count(complaint, 14d)"] == 1, b
    assert "New Face" in b["alert"]["summary"], b
    # both complaints resolved within 48h: complaint_unresolved never fires; the wobble stays
    d.clock_set(at(T0_MS + 2 * DAY))
    d.ingest_ctl([ev("W1", at(T0_MS + 2 * DAY), "complaint_resolved", ref="w1"),
                  ev("W2", at(T0_MS + 2 * DAY), "complaint_resolved", ref="w2")])
    expect_alerts(sub, d)
    # repeat: 3d
    d.clock_set(at(T0_MS + 10 * DAY - MINUTE))
    expect_alerts(sub, d, ("repeat", "new_customer_wobble", "W1"), ("repeat", "new_customer_wobble", "W2"))
    # W2 turns 60 days old
    d.clock_set(at(T0_MS + 10 * DAY + MINUTE))
    expect_alerts(sub, d, ("resolved", "new_customer_wobble", "W2"))
    d.clock_set(at(T0_MS + 15 * DAY - MINUTE))
    expect_alerts(sub, d, ("repeat", "new_customer_wobble", "W1"))
    # W1's complaint leaves the 14-day window
    d.clock_set(at(T0_MS + 15 * DAY + MINUTE))
    expect_alerts(sub, d, ("resolved", "new_customer_wobble", "W1"))
    assert d.alerts() == []


def test_backfill_changes_alerts_at_once(defaults):
    """History sent late (PROTOCOL.md §2.3) re-evaluates the customer at once: an old visit makes
    a "new" customer 100 days old, so the wobble ends; a late, older touch does not move
    since(touch) back."""
    d, sub = defaults
    d.ingest_ctl([ev("B1", at(T0_MS), "profile", attrs={"name": "Back Filled"}),
                  ev("B1", at(T0_MS), "complaint", ref="b", id="crm-1"),
                  ev("B1", at(T0_MS), "complaint", ref="b", id="crm-1")])   # a duplicate
    expect_soon(sub, "firing", "new_customer_wobble", "B1")
    assert assert_ok(d.ctl({"cmd": "eval", "expr": "open(complaint)", "customer": "B1"}))["value"] == 1
    d.ingest_ctl([ev("B1", at(T0_MS - 100 * DAY), "visit")])
    expect_soon(sub, "resolved", "new_customer_wobble", "B1")
    d.ingest_ctl([ev("B1", at(T0_MS), "complaint_resolved", ref="b"),
                  ev("B1", at(T0_MS - DAY), "call")])
    expect_alerts(sub, d)
    ans = assert_ok(d.ctl({"cmd": "eval", "expr": "since(touch)", "customer": "B1"}))
    assert DAY <= ans["value"] <= DAY + SLACK, ans
    d.ingest_ctl([ev("B1", at(T0_MS - 50 * DAY), "call")])
    ans = assert_ok(d.ctl({"cmd": "eval", "expr": "since(touch)", "customer": "B1"}))
    assert DAY <= ans["value"] <= DAY + SLACK, ans
    # cooling counts from the newest touch
    d.ingest_ctl([ev("B1", at(T0_MS), "profile", attrs={"tier": "B"})])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 29 * DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 29 * DAY + MINUTE))
    expect_alerts(sub, d, ("firing", "customer_cooling", "B1"))
