"""Backtest (PROTOCOL.md §5.22): the same evaluation as the live engine.

A recorded scenario (customers of every tier calling, buying, complaining, promising,
over 100 days) is played live into `hearthd --test-clock`: the clock is set to each
event's time before the event is ingested, and moved an hour at a time in between, so
that ticks run. Then `backtest` replays the stored history for every default rule (and
one with `for`), and every transition the live engine notified must be there, in the
same order, at the same moment or, for what time alone moves, at most one tick step
(per earlier transition of that alert, as repeats count from the live firing) earlier.
"""

import random

import pytest

from hearthtest import (DAY, HOUR, T0_MS, assert_error, assert_ok, etc_priority, etc_section, ev,
                        hearthctl, parse_time, rfc3339, rule_yaml)

RULES = etc_section("rules") + rule_yaml("complaint_lingers", "open(complaint) > 0", for_="2d",
                                         repeat="1d")
SPAN_DAYS = 100
STEP = HOUR


def scenario(seed=7, customers=16):
    rnd = random.Random(seed)
    out = []

    def at(day_lo, day_hi):
        return T0_MS + rnd.randrange(int(day_lo * DAY), int(day_hi * DAY))

    for n in range(customers):
        cid = "B%02d" % n
        tier = "ABCD"[n % 4]
        out.append(ev(cid, at(0.01, 0.5), "profile", id="p-" + cid,
                      attrs={"name": "客户%d" % n, "tier": tier, "owner": "o%d" % (n % 3),
                             "value": 10000 * (n + 1)}))
        for k in range(rnd.randrange(0, 6)):
            out.append(ev(cid, at(0.5, SPAN_DAYS), rnd.choice(["call", "visit", "message"]),
                          id="t-%s-%d" % (cid, k)))
        buys = sorted(at(1, SPAN_DAYS) for _ in range(rnd.choice([0, 1, 1, 3, 4])))
        for k, ts in enumerate(buys):
            out.append(ev(cid, ts, "purchase", id="b-%s-%d" % (cid, k)))
        if rnd.random() < 0.3 and buys:
            out.append(ev(cid, buys[0] + rnd.randrange(DAY, 20 * DAY), "offer", id="o-" + cid))
        for k in range(rnd.randrange(0, 3)):
            opened = at(1, SPAN_DAYS - 5)
            ref = "c%d" % k
            out.append(ev(cid, opened, "complaint", id="c-%s-%d" % (cid, k), ref=ref))
            if rnd.random() < 0.7:
                out.append(ev(cid, opened + rnd.randrange(HOUR, 6 * DAY), "complaint_resolved",
                              id="cr-%s-%d" % (cid, k), ref=ref))
        if rnd.random() < 0.5:
            made = at(1, SPAN_DAYS - 10)
            due = made + rnd.randrange(DAY, 5 * DAY)
            out.append(ev(cid, made, "promise", id="pr-" + cid, ref="p",
                          attrs={"due": rfc3339(due)}))
            if rnd.random() < 0.5:
                out.append(ev(cid, due + rnd.randrange(-DAY, 3 * DAY), "promise_kept",
                              id="pk-" + cid, ref="p"))
    # a signed customer nobody has called since day 2: cared for by day 92
    out.append(ev("BD", T0_MS + DAY // 3, "profile", id="p-BD", attrs={"name": "签约客户", "tier": "D"}))
    out.append(ev("BD", T0_MS + 2 * DAY + 12345, "call", id="t-BD"))
    out = [e for e in out if e["ts"] < T0_MS + SPAN_DAYS * DAY]
    out.sort(key=lambda e: e["ts"])
    for e in out:
        e["ts"] = rfc3339(e["ts"])
    return out


def play_live(d, events):
    """Each event at its own moment, the clock moved an hour at a time in between."""
    i, t = 0, T0_MS
    end = T0_MS + SPAN_DAYS * DAY
    while t < end:
        t += STEP
        while i < len(events) and parse_time(events[i]["ts"]) <= t:
            d.clock_set(events[i]["ts"])
            d.ingest_ctl([events[i]])
            i += 1
        d.clock_set(rfc3339(t))
    assert i == len(events)
    return end


def live_transitions(d):
    out, after = {}, 0
    while True:
        page = assert_ok(d.ctl({"cmd": "replay", "after": after, "limit": 10000}))["notifications"]
        if not page:
            return out
        for n in page:
            key = (n["alert"]["rule"], n["alert"]["customer"])
            out.setdefault(key, []).append((n["kind"], parse_time(n["ts"])))
        after = page[-1]["seq"]


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    from hearthtest import Config, Daemon, short_dir
    directory, _ = short_dir(tmp_path_factory.mktemp("backtest"))
    d = Daemon(Config(directory, rules_yaml=RULES, priority=etc_priority(), heartbeat="100ms",
                      interval="1h", retain="400d"), ["--test-clock"])
    d.start()
    d.clock_set(rfc3339(T0_MS))
    events = scenario()
    end = play_live(d, events)
    yield d, end, live_transitions(d)
    problem = d.teardown()
    if problem:
        pytest.fail(problem)


def backtest(d, **args):
    return assert_ok(d.ctl(dict({"cmd": "backtest"}, **args), timeout=120))


RULE_NAMES = ["customer_cooling", "followup_below_cadence", "cadence_slowing", "complaint_unresolved",
              "promise_overdue", "upsell_window", "signed_needs_care", "new_customer_wobble",
              "complaint_lingers"]


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_backtest_matches_the_live_engine(played, rule):
    d, end, live = played
    ans = backtest(d, rule=rule, **{"from": rfc3339(T0_MS), "to": rfc3339(end), "detail": True})
    assert ans["truncated"] is False
    bt = {}
    for tr in ans["transitions"]:
        bt.setdefault((rule, tr["customer"]), []).append((tr["kind"], parse_time(tr["at"])))
    mine = {k: v for k, v in live.items() if k[0] == rule}
    assert sorted(bt) == sorted(mine), (rule, sorted(bt), sorted(mine))
    for key, seq in mine.items():
        assert [k for k, _ in bt[key]] == [k for k, _ in seq], (key, bt[key], seq)
        for n, ((_, at), (_, live_at)) in enumerate(zip(bt[key], seq)):
            # live: at the event (plus the ms the test clock ran on) or at the tick after
            assert at - 1000 <= live_at <= at + (n + 1) * STEP + 5000, (key, n, bt[key], seq)
    kinds = [k for seq in mine.values() for k, _ in seq]
    assert ans["fired"] == kinds.count("firing")
    assert ans["resolved"] == kinds.count("resolved")
    assert ans["repeats"] == kinds.count("repeat")
    assert sum(day["fired"] for day in ans["per_day"]) == ans["fired"]
    firing_now = [a for a in d.alerts(rule=rule, limit=10000)]
    assert ans["firing_at_end"] == len(firing_now)


def test_the_scenario_exercises_every_rule(played):
    _, _, live = played
    fired = {rule for (rule, _), seq in live.items() if any(k == "firing" for k, _ in seq)}
    assert fired == set(RULE_NAMES), fired


def test_backtest_of_a_new_when_compare_and_where(played):
    d, end, live = played
    window = {"from": rfc3339(T0_MS + 30 * DAY), "to": rfc3339(end)}
    ans = backtest(d, when="oldest(complaint) > 24h", repeat="1d", compare="complaint_unresolved",
                   **window)
    # a complaint older than 24 h fires for everyone older than 48 h, and earlier
    assert ans["compare"]["rule"] == "complaint_unresolved"
    assert ans["fired"] >= ans["compare"]["fired"]
    assert ans["compare"]["only_this"] == []
    # restricted to one owner's customers
    owner = backtest(d, rule="complaint_unresolved", where='owner == "o1"', **window)
    assert owner["fired"] <= ans["compare"]["fired"]
    assert owner["customers"] < ans["customers"]
    assert ans["not_replayed"] == "silences and acks"


def test_backtest_errors_name_the_field(played):
    d, _, _ = played
    assert_error(d.ctl({"cmd": "backtest", "rule": "nope"}), "not_found")
    assert_error(d.ctl({"cmd": "backtest"}), "bad_request")
    assert_error(d.ctl({"cmd": "backtest", "when": "since(touch) >"}), "bad_expr")
    assert_error(d.ctl({"cmd": "backtest", "rule": "customer_cooling", "when": "true"}), "bad_request")
    assert_error(d.ctl({"cmd": "backtest", "rule": "customer_cooling",
                        "from": "2031-02-01T00:00:00Z", "to": "2031-01-01T00:00:00Z"}), "bad_request")
    assert_error(d.ctl({"cmd": "backtest", "when": "open(complaint) > 0", "for": "soon"}), "bad_request")
    # the daemon answers other peers while a backtest is under way, and keeps serving after
    assert assert_ok(d.ctl({"cmd": "ping"}))


def test_hearthctl_backtest_prints_and_draws(played, tmp_path):
    d, end, _ = played
    svg = tmp_path / "chart.svg"
    p = hearthctl(["backtest", "complaint_unresolved", "--from", rfc3339(T0_MS), "--to", rfc3339(end),
                   "--svg", str(svg)], sock=d.cfg.control)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "complaint_unresolved" in out and "fired" in out and "per week" in out
    text = svg.read_text()
    assert text.startswith("<svg") and "<rect" in text and "fired</title>" in text
    p = hearthctl(["backtest"], sock=d.cfg.control)
    assert p.returncode == 2



def test_answers_stay_in_order_around_a_backtest(played):
    d, end, _ = played
    with d.conn() as c:
        c.send({"cmd": "backtest", "rule": "promise_overdue", "from": rfc3339(T0_MS), "to": rfc3339(end)})
        c.send({"cmd": "ping"})
        first, second = c.recv(timeout=120), c.recv(timeout=120)
    assert first["ok"] is True and "fired" in first, first
    assert second == {"ok": True, "pong": True}
    # a peer that goes away mid-backtest costs nothing
    c = d.conn()
    c.send({"cmd": "backtest", "rule": "customer_cooling", "from": rfc3339(T0_MS), "to": rfc3339(end)})
    c.close()
    assert assert_ok(d.ctl({"cmd": "ping"}))


def test_zz_events_not_yet_flushed_are_replayed(played):
    """Runs last: it adds a customer to the played store."""
    d, end, _ = played
    window = {"from": rfc3339(end - 10 * DAY), "to": rfc3339(end)}
    before = backtest(d, rule="complaint_unresolved", **window)
    d.ingest_ctl([ev("FRESH", rfc3339(end - 3 * DAY), "complaint", id="c-FRESH", ref="x")])
    after = backtest(d, rule="complaint_unresolved", detail=True, **window)
    assert after["customers"] == before["customers"] + 1
    assert after["fired"] == before["fired"] + 1
    mine = [t for t in after["transitions"] if t["customer"] == "FRESH"]
    assert mine[0]["kind"] == "firing" and parse_time(mine[0]["at"]) == end - 3 * DAY + 48 * HOUR + 1
