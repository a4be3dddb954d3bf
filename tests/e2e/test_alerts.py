"""Alert lifecycle over the PUB socket and the control commands that steer it
(PROTOCOL.md §4, §5): `for` and pending, `repeat` and `ack`, silences, seq across restarts,
`replay` and its pruning, `forget`, and ingest-to-alert latency.

Custom rules on cases keep the conditions independent of the clock where a test is
about something else (restart, latency)."""

import json
import statistics
import time

import pytest
import zmq

from hearthtest import (DAY, HOUR, MINUTE, T0_MS, assert_error, assert_ok, check_body,
                        check_ingest_reply, ev,
                        expect_alerts, expect_soon, lifecycle, now_ms, parse_time, rfc3339, rule_yaml,
                        rules_yaml, zmq_recv, Subscriber)

OPEN_COMPLAINT = "open(complaint) > 0"
OPEN_PROMISE = "open(promise) > 0"


def at(ms):
    return rfc3339(ms)


def complaint(cid, ms, ref="c"):
    return ev(cid, at(ms), "complaint", ref=ref)


def resolve(cid, ms, ref="c"):
    return ev(cid, at(ms), "complaint_resolved", ref=ref)


def rule_states(d, name):
    for r in assert_ok(d.ctl({"cmd": "rules"}))["rules"]:
        if r["name"] == name:
            return r
    pytest.fail("no rule %s" % name)


# --------------------------------------------------------------------------------------
# for: pending before firing
# --------------------------------------------------------------------------------------

def test_for_goes_pending_then_fires(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("slow_burn", OPEN_COMPLAINT, for_="1h",
                                          summary="{id} has {open(complaint)} open")))
    sub = d.subscribe()
    assert rule_states(d, "slow_burn")["for"] == HOUR
    d.ingest_ctl([complaint("A1", T0_MS)])
    expect_alerts(sub, d)                                   # pending publishes nothing
    pend = d.alerts(state="pending")
    assert [(a["rule"], a["customer"], a["state"]) for a in pend] == [("slow_burn", "A1", "pending")]
    assert d.alerts() == []                                 # not firing
    assert d.status()["pending"] == 1 and d.status()["firing"] == 0
    assert rule_states(d, "slow_burn")["pending"] == 1
    seq = d.status()["seq"]

    d.clock_set(at(T0_MS + HOUR - MINUTE))
    expect_alerts(sub, d)
    assert len(d.alerts(state="pending")) == 1
    d.clock_set(at(T0_MS + HOUR + MINUTE))
    b = expect_alerts(sub, d, ("firing", "slow_burn", "A1"))[("firing", "slow_burn", "A1")]
    assert b["seq"] == seq + 1
    assert parse_time(b["alert"]["since"]) >= T0_MS + HOUR
    assert d.alerts(state="pending") == []
    assert [(a["rule"], a["customer"]) for a in d.alerts()] == [("slow_burn", "A1")]
    assert d.status()["pending"] == 0 and d.status()["firing"] == 1
    r = rule_states(d, "slow_burn")
    assert r["firing"] == 1 and r["pending"] == 0


def test_for_condition_that_stops_early_never_notifies(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("slow_burn", OPEN_COMPLAINT, for_="1h")))
    sub = d.subscribe()
    seq = d.status()["seq"]
    d.ingest_ctl([complaint("A2", T0_MS)])
    assert len(d.alerts(state="pending")) == 1
    d.clock_set(at(T0_MS + 30 * MINUTE))
    d.ingest_ctl([resolve("A2", T0_MS + 30 * MINUTE)])
    assert d.alerts(state="pending") == []
    d.clock_set(at(T0_MS + 2 * HOUR))
    expect_alerts(sub, d)
    assert d.alerts(state="all") == []
    assert d.status()["seq"] == seq
    # and again: a new pending period starts from scratch, not from the first one
    d.ingest_ctl([complaint("A2", T0_MS + 2 * HOUR, ref="c2")])
    d.clock_set(at(T0_MS + 2 * HOUR + 59 * MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 3 * HOUR + MINUTE))
    expect_alerts(sub, d, ("firing", "slow_burn", "A2"))


# --------------------------------------------------------------------------------------
# repeat and ack
# --------------------------------------------------------------------------------------

def test_repeat_ack_and_refire(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("nagging", OPEN_COMPLAINT, repeat="1d", severity="critical")))
    sub = d.subscribe()
    d.ingest_ctl([complaint("R1", T0_MS)])
    first = expect_soon(sub, "firing", "nagging", "R1")
    d.clock_set(at(T0_MS + DAY - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + DAY + MINUTE))
    b = expect_alerts(sub, d, ("repeat", "nagging", "R1"))[("repeat", "nagging", "R1")]
    assert b["alert"]["state"] == "firing"
    assert b["alert"]["since"] == first["alert"]["since"]   # the same alert, still firing
    assert b["seq"] == first["seq"] + 1
    d.clock_advance("1d")
    expect_alerts(sub, d, ("repeat", "nagging", "R1"))

    # ack: no more repeats, state unchanged
    assert_ok(d.ctl({"cmd": "ack", "rule": "nagging", "customer": "R1", "by": "zhang"}))
    [a] = d.alerts()
    assert a["acked"] is True and a["state"] == "firing", a
    d.clock_advance("1d1h")
    expect_alerts(sub, d)
    d.clock_advance("3d")
    expect_alerts(sub, d)

    # ack of something not firing
    assert_error(d.ctl({"cmd": "ack", "rule": "nagging", "customer": "nobody"}), "not_found")
    assert_error(d.ctl({"cmd": "ack", "rule": "no_such_rule", "customer": "R1"}), "not_found")

    # resolve, fire again: repeats start again and the ack is gone
    now = parse_time(d.status()["now"])
    d.ingest_ctl([resolve("R1", now)])
    expect_soon(sub, "resolved", "nagging", "R1")
    assert_error(d.ctl({"cmd": "ack", "rule": "nagging", "customer": "R1"}), "not_found")
    d.ingest_ctl([complaint("R1", now, ref="c2")])
    expect_soon(sub, "firing", "nagging", "R1")
    [a] = d.alerts()
    assert a["acked"] is False, a
    d.clock_advance("1d")
    expect_alerts(sub, d, ("repeat", "nagging", "R1"))


def test_no_repeat_when_repeat_is_zero(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("once", OPEN_COMPLAINT, repeat="0s")))
    sub = d.subscribe()
    d.ingest_ctl([complaint("R2", T0_MS)])
    expect_soon(sub, "firing", "once", "R2")
    d.clock_advance("30d")
    expect_alerts(sub, d)
    assert len(d.alerts()) == 1


# --------------------------------------------------------------------------------------
# silences
# --------------------------------------------------------------------------------------

SILENCE_RULES = rules_yaml(rule_yaml("complained", OPEN_COMPLAINT),
                           rule_yaml("promised", OPEN_PROMISE, severity="info"))


def profile(cid, owner, ms=T0_MS - DAY):
    return ev(cid, at(ms), "profile", attrs={"name": "N" + cid, "owner": owner})


def test_silence_by_rule(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    sub = d.subscribe()
    d.ingest_ctl([profile("S1", "zhang")])
    sid = assert_ok(d.ctl({"cmd": "silence.add", "rule": "complained", "for": "1h",
                           "by": "ops", "comment": "migration"}))["id"]
    [s] = assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]
    assert s["id"] == sid and s["rule"] == "complained", s
    assert parse_time(s["until"]) >= T0_MS + HOUR
    seq = d.status()["seq"]

    d.ingest_ctl([complaint("S1", T0_MS)])
    expect_alerts(sub, d)
    assert [(a["rule"], a["customer"], a["state"]) for a in d.alerts()] == [("complained", "S1", "firing")]
    assert d.status()["firing"] == 1
    assert d.status()["seq"] == seq
    # another rule of the same customer is not silenced
    d.ingest_ctl([ev("S1", at(T0_MS), "promise", ref="p")])
    b = expect_soon(sub, "firing", "promised", "S1")
    assert b["seq"] == seq + 1                          # the silenced one took no seq
    expect_alerts(sub, d)

    # the silence ends; the next notification of the silenced alert is published
    d.clock_set(at(T0_MS + HOUR + MINUTE))
    expect_alerts(sub, d)
    assert assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == []
    d.ingest_ctl([resolve("S1", T0_MS + HOUR + MINUTE)])
    b = expect_soon(sub, "resolved", "complained", "S1")
    assert b["seq"] == seq + 2
    hb = sub.wait_live(d)
    assert hb["seq"] == seq + 2


def test_silence_by_customer_until(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    sub = d.subscribe()
    d.ingest_ctl([profile("S2", "zhang"), profile("S3", "zhang")])
    assert_ok(d.ctl({"cmd": "silence.add", "customer": "S2", "until": at(T0_MS + 2 * HOUR)}))
    seq = d.status()["seq"]
    d.ingest_ctl([complaint("S2", T0_MS), ev("S2", at(T0_MS), "promise", ref="p"),
                  complaint("S3", T0_MS)])
    expect_alerts(sub, d, ("firing", "complained", "S3"))
    assert d.status()["seq"] == seq + 1
    assert sorted((a["rule"], a["customer"]) for a in d.alerts()) == [
        ("complained", "S2"), ("complained", "S3"), ("promised", "S2")]
    # resolving while silenced publishes nothing either
    d.ingest_ctl([ev("S2", at(T0_MS), "promise_kept", ref="p")])
    expect_alerts(sub, d)
    assert d.status()["seq"] == seq + 1
    # 1h59m: still silenced; 2h01m: the silence is over
    d.clock_set(at(T0_MS + 2 * HOUR - MINUTE))
    assert len(assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]) == 1
    d.clock_set(at(T0_MS + 2 * HOUR + MINUTE))
    assert assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == []
    d.ingest_ctl([resolve("S2", T0_MS + 2 * HOUR)])
    b = expect_soon(sub, "resolved", "complained", "S2")
    assert b["seq"] == seq + 2
    expect_alerts(sub, d)


def test_silence_by_owner(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    sub = d.subscribe()
    d.ingest_ctl([profile("S4", "li"), profile("S5", "zhang"), profile("S6", "li")])
    assert_ok(d.ctl({"cmd": "silence.add", "owner": "li", "for": "1d"}))
    d.ingest_ctl([complaint(c, T0_MS) for c in ("S4", "S5", "S6")])
    expect_alerts(sub, d, ("firing", "complained", "S5"))
    assert len(d.alerts()) == 3
    assert sorted(a["customer"] for a in d.alerts(owner="li")) == ["S4", "S6"]
    # the owner changes: the silence no longer matches S6
    d.ingest_ctl([ev("S6", at(T0_MS), "profile", attrs={"owner": "zhang"}),
                  resolve("S6", T0_MS)])
    expect_soon(sub, "resolved", "complained", "S6")
    expect_alerts(sub, d)


def test_silence_remove(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    sub = d.subscribe()
    sid = assert_ok(d.ctl({"cmd": "silence.add", "customer": "S7", "for": "1d"}))["id"]
    sid2 = assert_ok(d.ctl({"cmd": "silence.add", "rule": "promised", "for": "1d"}))["id"]
    assert sid != sid2
    assert sorted(s["id"] for s in assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]) == sorted([sid, sid2])
    d.ingest_ctl([complaint("S7", T0_MS)])
    expect_alerts(sub, d)
    assert_ok(d.ctl({"cmd": "silence.remove", "id": sid}))
    assert [s["id"] for s in assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]] == [sid2]
    assert_error(d.ctl({"cmd": "silence.remove", "id": sid}), "not_found")
    d.ingest_ctl([resolve("S7", T0_MS)])
    expect_soon(sub, "resolved", "complained", "S7")
    d.ingest_ctl([complaint("S8", T0_MS)])
    expect_soon(sub, "firing", "complained", "S8")
    expect_alerts(sub, d)


def test_silence_errors(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    assert_error(d.ctl({"cmd": "silence.add", "rule": "complained"}), "bad_request")
    assert_error(d.ctl({"cmd": "silence.add", "rule": "complained", "for": "soon"}), "bad_request")
    assert_error(d.ctl({"cmd": "silence.add", "rule": "complained", "until": at(T0_MS - HOUR)}),
                 "bad_request")
    assert_error(d.ctl({"cmd": "silence.add", "rule": "nope", "for": "1h"}), "not_found")


# --------------------------------------------------------------------------------------
# seq, heartbeat and restarts
# --------------------------------------------------------------------------------------

def test_seq_rises_by_one_and_survives_restart(clock_daemon):
    rules = rules_yaml(rule_yaml("complained", OPEN_COMPLAINT),
                       # moved by the wall clock only: fires from history at ingest
                       rule_yaml("quiet_month", "since(call) > 30d", repeat="0s"))
    d = clock_daemon(rules, at=None)                       # the wall clock: restarts keep it
    sub = d.subscribe()
    assert d.status()["seq"] == 0
    assert sub.last_hb["seq"] == 0
    t = now_ms()
    d.ingest_ctl([complaint("Q%d" % i, t - HOUR) for i in range(5)] +
                 [ev("M%d" % i, at(t - 40 * DAY), "call") for i in range(3)])
    d.ingest_ctl([resolve("Q0", t - HOUR)])
    got = expect_alerts(sub, d, *([("firing", "complained", "Q%d" % i) for i in range(5)] +
                                  [("firing", "quiet_month", "M%d" % i) for i in range(3)] +
                                  [("resolved", "complained", "Q0")]))
    seqs = sorted(b["seq"] for b in got.values())
    assert seqs == list(range(1, 10)), seqs
    assert sub.received[-1][1]["alert"]["customer"] == "Q0"   # in order: the resolve last
    assert [b["seq"] for _, b in sub.received] == seqs
    assert d.status()["seq"] == 9
    assert sub.wait_live(d)["seq"] == 9
    before = d.status()
    assert before["firing"] == 7
    firing_before = sorted((a["rule"], a["customer"], a["since"]) for a in d.alerts())
    sub.close()

    d.restart()
    sub = d.subscribe()
    hb = sub.wait_live(d)
    assert hb["seq"] == 9
    after = d.status()
    assert after["seq"] == 9 and after["firing"] == 7, after
    assert sorted((a["rule"], a["customer"], a["since"]) for a in d.alerts()) == firing_before
    expect_alerts(sub, d)                                  # nothing re-fires
    assert assert_ok(d.ctl({"cmd": "replay", "after": 0}))["last_seq"] == 9

    d.ingest_ctl([resolve("Q1", t - HOUR), ev("M0", at(now_ms()), "call")])
    got = expect_alerts(sub, d, ("resolved", "complained", "Q1"), ("resolved", "quiet_month", "M0"))
    assert sorted(b["seq"] for b in got.values()) == [10, 11]
    assert d.status()["firing"] == 5


def test_heartbeat_carries_last_seq(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT)), heartbeat="50ms")
    sub = d.subscribe()
    assert sub.last_hb["seq"] == 0
    for i in range(3):
        d.ingest_ctl([complaint("H%d" % i, T0_MS)])
    expect_alerts(sub, d, *[("firing", "complained", "H%d" % i) for i in range(3)])
    assert sub.last_hb["seq"] == 3
    # publish.heartbeat: 50ms.  By the daemon's own stamps, heartbeats never come closer
    # than that (a busy machine only stretches the gaps), and they do come at that cadence
    # rather than the default 5s: wait (with a deadline) for one gap under a second,
    # which a 5s heartbeat never shows however fast or slow the machine is.
    ts = [parse_time(sub.wait_live(d)["ts"])]
    end = time.monotonic() + 30
    while True:
        ts.append(parse_time(sub.wait_live(d)["ts"]))
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert min(gaps) >= 40, gaps                # 50ms, less ms rounding
        if len(gaps) >= 5 and min(gaps) < 1000:
            break
        assert time.monotonic() < end, "no two heartbeats under 1s apart: %r" % gaps
    assert sub.last_hb["seq"] == d.status()["seq"] == 3


# --------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------

def test_replay_fills_a_gap_exactly(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT, repeat="1d"),
                                rule_yaml("promised", OPEN_PROMISE, severity="info")))
    ref = d.subscribe()                     # connected throughout
    gappy = d.subscribe()
    d.ingest_ctl([complaint("G1", T0_MS)])
    b = expect_soon(gappy, "firing", "complained", "G1")
    last_seen = b["seq"]
    gappy.close()

    d.ingest_ctl([complaint("G2", T0_MS), ev("G1", at(T0_MS), "promise", ref="p")])
    d.ingest_ctl([resolve("G2", T0_MS)])
    d.clock_advance("1d")                   # a repeat for G1
    d.ingest_ctl([complaint("G3", T0_MS + DAY)])
    seen = [b for _, b in ref.sync(d)]
    assert [b["seq"] for b in seen] == list(range(1, 7)), [b["seq"] for b in seen]

    gappy = d.subscribe()
    hb = gappy.wait_live(d)
    assert hb["seq"] == 6 > last_seen       # the heartbeat shows the gap
    ans = assert_ok(d.ctl({"cmd": "replay", "after": last_seen}))
    assert ans["last_seq"] == 6
    assert ans["notifications"] == seen[1:]  # exactly the missed bodies, in order, identical
    kinds = [(n["kind"], n["alert"]["rule"], n["alert"]["customer"]) for n in ans["notifications"]]
    assert sorted(kinds[:2]) == [("firing", "complained", "G2"), ("firing", "promised", "G1")]
    assert kinds[2:] == [("resolved", "complained", "G2"), ("repeat", "complained", "G1"),
                         ("firing", "complained", "G3")]
    # paging
    page = assert_ok(d.ctl({"cmd": "replay", "after": 0, "limit": 2}))["notifications"]
    assert page == seen[:2]
    assert assert_ok(d.ctl({"cmd": "replay", "after": 6}))["notifications"] == []
    # what the PUB socket carried after the reconnect is not in the replay, and vice versa
    d.ingest_ctl([resolve("G3", T0_MS + DAY)])
    b = expect_soon(gappy, "resolved", "complained", "G3")
    assert b["seq"] == 7
    assert assert_ok(d.ctl({"cmd": "replay", "after": 6}))["notifications"] == [b]


def test_replay_gone_after_retain(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT)), retain="1d")
    sub = d.subscribe()
    d.ingest_ctl([complaint("P%d" % i, T0_MS) for i in range(3)])
    expect_alerts(sub, d, *[("firing", "complained", "P%d" % i) for i in range(3)])
    assert len(assert_ok(d.ctl({"cmd": "replay", "after": 0}))["notifications"]) == 3
    d.clock_advance("12h")
    assert len(assert_ok(d.ctl({"cmd": "replay", "after": 0}))["notifications"]) == 3
    d.clock_advance("2d")                   # and the tick prunes
    d.clock_advance("1m")
    assert_error(d.ctl({"cmd": "replay", "after": 0}), "gone")
    assert_error(d.ctl({"cmd": "replay", "after": 1}), "gone")
    # nothing after seq 3 to miss: an empty answer, not gone
    ans = assert_ok(d.ctl({"cmd": "replay", "after": 3}))
    assert ans["notifications"] == [] and ans["last_seq"] == 3
    # new notifications continue the seq and are replayable
    now = parse_time(d.status()["now"])
    d.ingest_ctl([resolve("P0", now)])
    b = expect_soon(sub, "resolved", "complained", "P0")
    assert b["seq"] == 4
    assert assert_ok(d.ctl({"cmd": "replay", "after": 3}))["notifications"] == [b]
    assert_error(d.ctl({"cmd": "replay", "after": 2}), "gone")


# --------------------------------------------------------------------------------------
# forget
# --------------------------------------------------------------------------------------

def test_forget_resolves_firing_alerts(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT),
                                rule_yaml("slow", OPEN_PROMISE, for_="1d")))
    sub = d.subscribe()
    d.ingest_ctl([ev("X1", at(T0_MS - DAY), "profile", attrs={"name": "Gone Soon", "owner": "li"}),
                  complaint("X1", T0_MS), ev("X1", at(T0_MS), "promise", ref="p"),
                  complaint("X2", T0_MS)])
    expect_alerts(sub, d, ("firing", "complained", "X1"), ("firing", "complained", "X2"))
    assert len(d.alerts(state="pending")) == 1
    assert d.status()["firing"] == 2 and d.status()["pending"] == 1
    assert assert_ok(d.ctl({"cmd": "forget", "id": "X1"}))["events"] == 3
    b = expect_soon(sub, "resolved", "complained", "X1")
    assert b["customer"]["id"] == "X1"
    expect_alerts(sub, d)
    assert [a["customer"] for a in d.alerts()] == ["X2"]
    assert d.alerts(customer="X1", state="all") == []
    assert d.alerts(state="pending") == []
    st = d.status()
    assert st["firing"] == 1 and st["pending"] == 0, st
    assert rule_states(d, "complained")["firing"] == 1
    # the pending one never fires
    d.clock_advance("2d")
    expect_alerts(sub, d)
    # a new customer of the same id starts afresh
    now = parse_time(d.status()["now"])
    d.ingest_ctl([complaint("X1", now)])
    expect_soon(sub, "firing", "complained", "X1")


# --------------------------------------------------------------------------------------
# latency
# --------------------------------------------------------------------------------------

def test_ingest_to_alert_latency(clock_daemon):
    """200 ingests over ZeroMQ, each starting or ending an alert: each one's notification
    comes, in order, without the clock moving.  The time from sending the event to the
    subscriber receiving its notification is printed (-s), not asserted: it depends on the
    machine (`make bench` measures speeds)."""
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT)), heartbeat="1s")
    sub = d.subscribe()
    req = d.zsock(zmq.REQ)
    lat = []
    try:
        for i in range(200):
            firing = i % 2 == 0
            e = (complaint if firing else resolve)("L", T0_MS + i, ref="c%d" % (i // 2))
            t0 = time.perf_counter()
            req.send_json(e)
            topic, body = sub.next_alert()
            lat.append(time.perf_counter() - t0)
            check_body(topic, body, "firing" if firing else "resolved", "complained", "L")
            assert body["seq"] == i + 1
            rep = zmq_recv(req)
            assert rep is not None, "no ingest reply"
            check_ingest_reply(json.loads(rep[0]))
    finally:
        req.close(0)
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99) - 1]
    print("\ningest-to-alert latency over %d notifications: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
          % (len(lat), p50 * 1e3, p99 * 1e3, lat[-1] * 1e3))
    assert d.status()["seq"] == 200


# --------------------------------------------------------------------------------------
# more of the same, at the edges
# --------------------------------------------------------------------------------------

def test_topic_prefix_filter(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("loud", OPEN_COMPLAINT, severity="critical"),
                                rule_yaml("soft", OPEN_PROMISE, severity="info")))
    crit = d.subscribe(prefixes=(b"alert.critical.",))
    soft = d.subscribe(prefixes=(b"alert.info.soft",))
    d.ingest_ctl([complaint("T1", T0_MS), ev("T1", at(T0_MS), "promise", ref="p"), complaint("T2", T0_MS)])
    got = expect_alerts(crit, d, ("firing", "loud", "T1"), ("firing", "loud", "T2"))
    assert all(b["alert"]["severity"] == "critical" for b in got.values())
    expect_alerts(soft, d, ("firing", "soft", "T1"))


def test_many_alerts_in_one_tick(clock_daemon):
    n = 300
    d = clock_daemon(rules_yaml(rule_yaml("cold", "since(call) > 7d")))
    sub = d.subscribe()
    d.ingest_ctl([ev("M%03d" % i, at(T0_MS - i * MINUTE), "call") for i in range(n)])
    expect_alerts(sub, d)
    ans = d.clock_set(at(T0_MS + 7 * DAY + 6 * HOUR))
    assert ans["seq"] == n and ans["evaluated"] >= n, ans
    got = expect_alerts(sub, d, *[("firing", "cold", "M%03d" % i) for i in range(n)])
    assert sorted(b["seq"] for b in got.values()) == list(range(1, n + 1))
    assert [b["seq"] for _, b in sub.received] == list(range(1, n + 1))
    assert d.status()["firing"] == n
    st = d.status()
    assert parse_time(st["last_tick"]) >= T0_MS + 7 * DAY + 6 * HOUR and st["tick_ms"] >= 0, st
    assert len(d.alerts(limit=10)) == 10
    page = assert_ok(d.ctl({"cmd": "replay", "after": 0, "limit": 1000}))["notifications"]
    assert [b["seq"] for b in page] == list(range(1, n + 1))
    # the subscriber and the outbox agree, body for body
    assert [b for _, b in sub.received] == page


def test_a_tick_evaluates_only_the_customers_due(clock_daemon):
    """A customer a tick evaluated is due next at its new deadline, not at the key the
    store still holds until its next flush: a tick that comes by in between leaves it
    (and its firing alert) alone."""
    d = clock_daemon(rules_yaml(rule_yaml("nagging", OPEN_COMPLAINT, repeat="1d")))
    d.ingest_ctl([complaint("R1", T0_MS)])
    d.restart()         # the store holds R1 due at T0 + 1d
    sub = d.subscribe()
    assert d.clock_set(at(T0_MS + DAY + MINUTE))["evaluated"] == 1
    expect_alerts(sub, d, ("repeat", "nagging", "R1"))
    [a] = d.alerts()
    for later in (2 * MINUTE, 3 * MINUTE):
        assert d.clock_set(at(T0_MS + DAY + later))["evaluated"] == 0
    d.restart()         # and once the store has caught up
    sub = d.subscribe()
    assert d.clock_set(at(T0_MS + DAY + 4 * MINUTE))["evaluated"] == 0
    assert lifecycle(d.alerts()) == lifecycle([a])
    expect_alerts(sub, d)
    assert d.clock_set(at(T0_MS + 2 * DAY + 2 * MINUTE))["evaluated"] == 1
    expect_alerts(sub, d, ("repeat", "nagging", "R1"))


def test_pending_survives_restart(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("slow_burn", OPEN_COMPLAINT, for_="1h")))
    d.ingest_ctl([complaint("A3", T0_MS)])
    [p] = d.alerts(state="pending")
    d.restart()
    sub = d.subscribe()
    assert d.alerts(state="pending") == [p]
    assert d.status()["pending"] == 1
    d.clock_set(at(T0_MS + 59 * MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + HOUR + MINUTE))
    expect_alerts(sub, d, ("firing", "slow_burn", "A3"))


def test_silence_matches_all_of_its_fields(clock_daemon):
    d = clock_daemon(SILENCE_RULES)
    sub = d.subscribe()
    assert_ok(d.ctl({"cmd": "silence.add", "rule": "complained", "customer": "S9", "for": "1d"}))
    d.ingest_ctl([complaint("S9", T0_MS), ev("S9", at(T0_MS), "promise", ref="p"),
                  complaint("S10", T0_MS)])
    expect_alerts(sub, d, ("firing", "promised", "S9"), ("firing", "complained", "S10"))
    assert len(d.alerts()) == 3


def test_silence_suppresses_repeats_until_it_ends(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("nagging", OPEN_COMPLAINT, repeat="1d")))
    sub = d.subscribe()
    d.ingest_ctl([complaint("R3", T0_MS)])
    expect_soon(sub, "firing", "nagging", "R3")
    assert_ok(d.ctl({"cmd": "silence.add", "customer": "R3", "until": at(T0_MS + 3 * DAY)}))
    seq = d.status()["seq"]
    d.clock_set(at(T0_MS + DAY + MINUTE))
    d.clock_set(at(T0_MS + 2 * DAY + 2 * MINUTE))
    expect_alerts(sub, d)
    assert d.status()["seq"] == seq
    d.clock_set(at(T0_MS + 3 * DAY + 3 * MINUTE))
    b = expect_alerts(sub, d, ("repeat", "nagging", "R3"))[("repeat", "nagging", "R3")]
    assert b["seq"] == seq + 1


def test_alert_states_in_alerts_and_customer(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("nagging", OPEN_COMPLAINT, repeat="1d")))
    sub = d.subscribe()
    d.ingest_ctl([ev("Y1", at(T0_MS), "profile", attrs={"name": "Yan", "owner": "qi"}), complaint("Y1", T0_MS)])
    expect_soon(sub, "firing", "nagging", "Y1")
    assert_ok(d.ctl({"cmd": "ack", "rule": "nagging", "customer": "Y1", "by": "qi"}))
    [a] = d.customer("Y1")["alerts"]
    assert a["rule"] == "nagging" and a["state"] == "firing" and a["acked"] is True, a
    assert a.get("acked_by") in (None, "qi"), a
    d.clock_set(at(T0_MS + HOUR))
    d.ingest_ctl([resolve("Y1", T0_MS + HOUR)])
    expect_soon(sub, "resolved", "nagging", "Y1")
    assert d.alerts() == []
    [r] = d.alerts(state="resolved")
    assert r["state"] == "resolved" and r["customer"] == "Y1" and r["acked"] is False, r
    assert parse_time(r["resolved_at"]) >= T0_MS + HOUR, r
    assert [x["state"] for x in d.alerts(state="all")] == ["resolved"]
    assert_error(d.ctl({"cmd": "alerts", "state": "sleeping"}), "bad_request")


def test_long_utf8_summary_stays_valid_utf8(clock_daemon):
    """A summary longer than the daemon keeps may be cut, but not inside a character:
    the PUB body and the control answer stay valid UTF-8 JSON (PROTOCOL.md §1.4: UTF-8 text is
    kept as is)."""
    d = clock_daemon(rules_yaml(rule_yaml("wordy", OPEN_COMPLAINT, summary="{name}")))
    sub = d.subscribe()
    name = "xy" + "林" * 400          # 1202 bytes
    d.ingest_ctl([ev("LU", at(T0_MS), "profile", attrs={"name": name}), complaint("LU", T0_MS)])
    b = expect_soon(sub, "firing", "wordy", "LU")
    s = b["alert"]["summary"]
    assert len(s) >= 100 and name.startswith(s), s
    assert b["customer"]["name"] == name
    [a] = d.alerts()
    assert name.startswith(a["summary"]), a


def test_every_publish_endpoint_gets_every_message(clock_daemon):
    import socket as _socket
    s = _socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT)), at=None)
    d.stop()
    ipc = '  listen: ["%s"]\n' % d.cfg.alerts_ep
    assert d.cfg.text.count(ipc) == 1
    d.cfg.write(d.cfg.text.replace(ipc, '  listen: ["%s", "tcp://127.0.0.1:%d"]\n' % (d.cfg.alerts_ep, port)))
    d.start()
    d.clock_set(at(T0_MS))
    a = d.subscribe()
    b = Subscriber(d.ctx, "tcp://127.0.0.1:%d" % port)
    b.wait_live(d)
    d.ingest_ctl([complaint("EP", T0_MS)])
    ga = expect_alerts(a, d, ("firing", "complained", "EP"))
    gb = expect_alerts(b, d, ("firing", "complained", "EP"))
    assert ga == gb


def test_kill9_keeps_seq_and_alert_state(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", OPEN_COMPLAINT)), at=None)
    sub = d.subscribe()
    t = now_ms()
    d.ingest_ctl([complaint("K%d" % i, t) for i in range(4)])
    expect_alerts(sub, d, *[("firing", "complained", "K%d" % i) for i in range(4)])
    bodies = assert_ok(d.ctl({"cmd": "replay", "after": 0}))["notifications"]
    sub.close()
    d.kill9()
    d.start()
    sub = d.subscribe()
    assert d.status()["seq"] == 4 and d.status()["firing"] == 4
    expect_alerts(sub, d)
    assert assert_ok(d.ctl({"cmd": "replay", "after": 0}))["notifications"] == bodies
    d.ingest_ctl([resolve("K0", t)])
    b = expect_soon(sub, "resolved", "complained", "K0")
    assert b["seq"] == 5
