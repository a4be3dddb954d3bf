"""eval, explain, top and customers where/order on small hand-made data sets with
known answers (PROTOCOL.md §5.17, §7): windows, sums, the median gap, days(), min/max, `in` and
`not in`, null semantics, and evaluation at a past time."""

import pytest

from hearthtest import (DAY, HOUR, MINUTE, SECOND, T0_MS, assert_error, assert_ok, etc_priority,
                        expect_alerts, expect_soon,
                        ev, parse_time, rfc3339, rule_yaml, rules_yaml)

SLACK = 60 * SECOND     # the test clock keeps running with the wall clock


def at(ms):
    return rfc3339(ms)


WARM = rule_yaml("warm", 'count(call, 7d) >= 2 and sum(purchase, "amount", 30d) > 300 and tier in ["C"]',
                 summary="{name} made {count(call, 7d)} calls and spent {sum(purchase, \"amount\", 30d)}")


@pytest.fixture
def eve(clock_daemon):
    """E1 "Eve": tier B, then C from T0-7d; calls at -1d, -3d, -10d; a visit at -20d;
    purchases of 999 (-40d), 250.5 (-20d), 100 (-5d).  E2 "Bob": a profile only."""
    d = clock_daemon(rules_yaml(WARM))
    d.ingest_ctl([
        ev("E1", at(T0_MS - 60 * DAY), "profile",
           attrs={"name": "Eve", "tier": "B", "owner": "zhang", "value": 120000}),
        ev("E1", at(T0_MS - 7 * DAY), "profile", attrs={"tier": "C"}),
        ev("E1", at(T0_MS - 1 * DAY), "call"),
        ev("E1", at(T0_MS - 3 * DAY), "call"),
        ev("E1", at(T0_MS - 10 * DAY), "call"),
        ev("E1", at(T0_MS - 20 * DAY), "visit"),
        ev("E1", at(T0_MS - 40 * DAY), "purchase", attrs={"amount": 999}),
        ev("E1", at(T0_MS - 20 * DAY), "purchase", attrs={"amount": 250.5}),
        ev("E1", at(T0_MS - 5 * DAY), "purchase", attrs={"amount": 100, "note": "x"}),
        ev("E2", at(T0_MS - 2 * DAY), "profile", attrs={"name": "Bob", "tier": "A", "value": 0}),
    ])
    return d


def ev_value(d, expr, customer="E1", **kw):
    ans = assert_ok(d.ctl(dict({"cmd": "eval", "expr": expr, "customer": customer}, **kw)))
    return ans


EXACT = [
    ("count(call, 7d)", 2, "number"),
    ("count(call, 11d)", 3, "number"),
    ("count(touch, 30d)", 4, "number"),
    ("count(purchase, 3650d)", 3, "number"),
    ('sum(purchase, "amount", 30d)', 350.5, "number"),
    ('sum(purchase, "amount", 365d)', 1349.5, "number"),
    ('sum(purchase, "note", 365d)', 0, "number"),          # not numeric: not summed
    ("gap(purchase)", 17 * DAY + 12 * HOUR, "duration"),   # gaps 20d, 15d
    ("gap(call)", 4 * DAY + 12 * HOUR, "duration"),        # gaps 7d, 2d
    ("gap(visit)", None, "null"),                          # fewer than 2 events
    ("tier", "C", "string"),
    ("name", "Eve", "string"),
    ("id", "E1", "string"),
    ("value / 10000", 12, "number"),
    ('tier in ["B", "C"]', True, "bool"),
    ('tier not in ["B", "C"]', False, "bool"),
    ('tier in ["A"]', False, "bool"),
    ('tier not in ["A"]', True, "bool"),
    ("min(count(call, 7d), 1)", 1, "number"),
    ("max(count(call, 7d), 5)", 5, "number"),
    ("abs(-3)", 3, "number"),
    ("abs(-2d)", 2 * DAY, "duration"),
    ("1d12h == 36h", True, "bool"),
    ("2w == 14d", True, "bool"),
    ("90s + 15m", 990 * SECOND, "duration"),
    ("30d / 1d", 30, "number"),
    ("3 * 1h", 3 * HOUR, "duration"),
    ("open(complaint)", 0, "number"),
    ("oldest(complaint)", None, "null"),
    ("overdue(promise)", 0, "number"),
    # null semantics
    ("since(meeting)", None, "null"),
    ("since(meeting) > 1d", False, "bool"),
    ("since(meeting) < 1d", False, "bool"),
    ("since(meeting) == null", True, "bool"),
    ("since(meeting) != null", False, "bool"),
    ("since(meeting) + 1d", None, "null"),
    ("not (since(meeting) > 1d)", True, "bool"),
    ('since(meeting) > 1d or tier == "C"', True, "bool"),
    ('since(meeting) > 1d and tier == "C"', False, "bool"),
    ("stage", None, "null"),                               # a profile key never set
    ("stage == null", True, "bool"),
    ('stage in ["x"]', False, "bool"),
    ('stage not in ["x"]', False, "bool"),
    ("stage > 3", False, "bool"),
]


def test_eval_exact(eve):
    wrong = []
    for expr, value, typ in EXACT:
        ans = ev_value(eve, expr)
        if ans["value"] != value or ans["type"] != typ:
            wrong.append((expr, (value, typ), (ans["value"], ans["type"])))
    assert wrong == [], "expr, expected (value, type), got:\n" + "\n".join(map(repr, wrong))


APPROX = [
    ("since(call)", 1 * DAY),
    ("since(visit)", 20 * DAY),
    ("since(touch)", 1 * DAY),
    ("age()", 60 * DAY),
    ("min(since(call), since(visit))", 1 * DAY),
    ("max(since(call), since(visit))", 20 * DAY),
]


def test_eval_moving_values(eve):
    for expr, expected in APPROX:
        ans = ev_value(eve, expr)
        assert ans["type"] == "duration" and expected <= ans["value"] <= expected + SLACK, (expr, ans)
    ans = ev_value(eve, "days(since(call))")
    assert ans["type"] == "number" and 1.0 <= ans["value"] <= 1.0 + SLACK / DAY, ans
    ans = ev_value(eve, "now")
    assert ans["type"] == "time" and T0_MS <= parse_time(ans["value"]) <= T0_MS + SLACK, ans
    # changes_at: when the value can next change without new events
    ans = ev_value(eve, "since(call) > 2d")
    assert ans["value"] is False and parse_time(ans["changes_at"]) == T0_MS + DAY + 1, ans
    ans = ev_value(eve, "count(call, 7d)")
    assert parse_time(ans["changes_at"]) == T0_MS + 4 * DAY, ans    # the -3d call leaves
    assert ev_value(eve, 'tier == "C"')["changes_at"] is None


def test_eval_at_a_past_time(eve):
    past = T0_MS - 6 * DAY
    ans = ev_value(eve, "count(call, 7d)", at=at(past))
    assert ans["value"] == 1 and parse_time(ans["at"]) == past, ans     # only the -10d call
    assert ev_value(eve, 'sum(purchase, "amount", 30d)', at=at(past))["value"] == 250.5
    assert ev_value(eve, "since(call)", at=at(past))["value"] == 4 * DAY
    assert ev_value(eve, "tier", at=at(past))["value"] == "C"
    assert ev_value(eve, "tier", at=at(T0_MS - 8 * DAY))["value"] == "B"     # tier history
    assert ev_value(eve, "gap(purchase)", at=at(past))["value"] == 20 * DAY
    assert ev_value(eve, "age()", at=at(past))["value"] == 54 * DAY
    assert ev_value(eve, "since(visit)", at=at(T0_MS - 30 * DAY))["value"] is None
    # and the present is unchanged by it
    assert ev_value(eve, "count(call, 7d)")["value"] == 2


BAD = ["since(touch) > 30", "count(call)", "foo(1)", "open(nosuch)", 'tier ==',
       "since(Call)", 'count(call, "7d")', "tier in", "1d + 1", "(1", ""]


def test_eval_bad_expressions(eve):
    wrong = []
    for expr in BAD:
        ans = eve.ctl({"cmd": "eval", "expr": expr, "customer": "E1"})
        if ans.get("ok") is not False or ans["error"]["code"] != "bad_expr":
            wrong.append((expr, ans))
        else:
            assert ans["error"]["message"], ans
    assert wrong == [], wrong


def test_eval_errors(eve):
    assert_error(eve.ctl({"cmd": "eval", "expr": "1", "customer": "nobody"}), "not_found")
    assert_error(eve.ctl({"cmd": "eval", "expr": "1"}), "bad_request")
    assert_error(eve.ctl({"cmd": "eval", "customer": "E1"}), "bad_request")


def test_explain(eve):
    ans = assert_ok(eve.ctl({"cmd": "explain", "rule": "warm", "customer": "E1"}))
    assert ans["value"] is True, ans
    assert ans["terms"] == {"count(call, 7d)": 2, 'sum(purchase, "amount", 30d)': 350.5,
                            "tier": "C"}, ans
    assert ans["summary"] == "Eve made 2 calls and spent 350.50", ans
    assert parse_time(ans["changes_at"]) == T0_MS + 4 * DAY, ans
    ans = assert_ok(eve.ctl({"cmd": "explain", "rule": "warm", "customer": "E2"}))
    assert ans["value"] is False
    assert ans["terms"] == {"count(call, 7d)": 0, 'sum(purchase, "amount", 30d)': 0, "tier": "A"}, ans
    # as of a past time
    ans = assert_ok(eve.ctl({"cmd": "explain", "rule": "warm", "customer": "E1",
                             "at": at(T0_MS - 6 * DAY)}))
    assert ans["value"] is False and ans["terms"]["count(call, 7d)"] == 1, ans
    assert_error(eve.ctl({"cmd": "explain", "rule": "nope", "customer": "E1"}), "not_found")
    assert_error(eve.ctl({"cmd": "explain", "rule": "warm", "customer": "nobody"}), "not_found")
    # the rule fired for E1 at ingest, with the same values
    [a] = eve.alerts(rule="warm")
    assert a["customer"] == "E1" and a["values"]["count(call, 7d)"] == 2, a


# --------------------------------------------------------------------------------------
# top and customers
# --------------------------------------------------------------------------------------

@pytest.fixture
def ranked(clock_daemon):
    """The shipped priority:
    value / 10000 * min(since(touch) / 30d, 3) + 20 * open(complaint) + 30 * overdue(promise)

      P1  value 100000, touched 30d ago                       10
      P2  value  50000, touched 120d ago (capped at 3)        15
      P3  value  20000, touched 15d ago, an open complaint    21
      P4  value  10000, touched now, an overdue promise       30
      P5  no value                                            null
      P6  value 300000, never touched                         null"""
    d = clock_daemon(priority=etc_priority())
    prof = [("P1", 100000, "C", 30), ("P2", 50000, "B", 120), ("P3", 20000, "C", 15),
            ("P4", 10000, "A", 0), ("P5", None, "C", 3), ("P6", 300000, "B", None)]
    events = []
    for cid, value, tier, touched in prof:
        attrs = {"name": "Name " + cid, "tier": tier}
        if value is not None:
            attrs["value"] = value
        events.append(ev(cid, at(T0_MS - 200 * DAY), "profile", attrs=attrs))
        if touched is not None:
            events.append(ev(cid, at(T0_MS - touched * DAY), "call"))
    events.append(ev("P3", at(T0_MS - 1 * DAY), "complaint", ref="k"))
    events.append(ev("P4", at(T0_MS - 2 * DAY), "promise", ref="p", attrs={"due": at(T0_MS - HOUR)}))
    d.ingest_ctl(events)
    return d


def test_top(ranked):
    top = assert_ok(ranked.ctl({"cmd": "top", "n": 3}))["customers"]
    assert [c["id"] for c in top] == ["P4", "P3", "P2"], top
    for c, score in zip(top, (30, 21, 15)):
        assert score <= c["score"] <= score + 0.01, top
    every = assert_ok(ranked.ctl({"cmd": "top"}))["customers"]
    scored = [c["id"] for c in every if c.get("score") is not None]
    assert scored == ["P4", "P3", "P2", "P1"], every
    assert 10 <= every[3]["score"] <= 10.01
    # customers without a score, if listed at all, come after every scored one
    assert [c["id"] for c in every][:4] == scored
    assert all(c.get("score") is None for c in every[4:]), every
    top = assert_ok(ranked.ctl({"cmd": "top", "where": 'tier == "C"'}))["customers"]
    assert [c["id"] for c in top if c.get("score") is not None] == ["P3", "P1"], top
    assert 21 <= ranked.customer("P3")["score"] <= 21.01
    assert ranked.customer("P5")["score"] is None
    assert_error(ranked.ctl({"cmd": "top", "where": "since(touch) > 3"}), "bad_expr")


def ids(ans):
    return [c["id"] for c in ans["customers"]]


def test_customers_where_and_order(ranked):
    c = lambda **kw: assert_ok(ranked.ctl(dict({"cmd": "customers"}, **kw)))
    assert ids(c(where="value >= 20000", order="value", desc=True)) == ["P6", "P1", "P2", "P3"]
    assert ids(c(where="value >= 20000", order="value")) == ["P3", "P2", "P1", "P6"]
    assert ids(c(where="since(touch) > 20d", order="since(touch)")) == ["P1", "P2"]
    assert sorted(ids(c(where="value > 0"))) == ["P1", "P2", "P3", "P4", "P6"]      # null is false
    assert sorted(ids(c(where='tier not in ["A", "B"]'))) == ["P1", "P3", "P5"]
    assert sorted(ids(c(where="since(touch) == null"))) == ["P6"]
    assert ids(c(where="open(complaint) > 0 or overdue(promise) > 0", order="id")) == ["P3", "P4"]
    # nulls last, either way
    assert ids(c(order="value")) == ["P4", "P3", "P2", "P1", "P6", "P5"]
    assert ids(c(order="value", desc=True)) == ["P6", "P1", "P2", "P3", "P4", "P5"]
    # paging through a filtered, ordered list
    full = ids(c(where="value > 0", order="value", desc=True))
    got, cursor = [], None
    for _ in range(10):
        args = {"where": "value > 0", "order": "value", "desc": True, "limit": 2}
        if cursor:
            args["cursor"] = cursor
        ans = c(**args)
        got += ids(ans)
        cursor = ans.get("cursor")
        if not cursor:
            break
    assert got == full == ["P6", "P1", "P2", "P3", "P4"]
    assert_error(ranked.ctl({"cmd": "customers", "where": "value >"}), "bad_expr")
    assert_error(ranked.ctl({"cmd": "customers", "order": "nosuch(1)"}), "bad_expr")


def test_gap_uses_the_last_twelve_gaps(clock_daemon):
    """gap(): median over the last 12 gaps only.  8 old gaps of 10d, then 6 of 1d and 6
    of 3d: the last 12 give (1d + 3d) / 2 = 2d; all 20 would give 3d."""
    d = clock_daemon()
    times, t = [], T0_MS - 200 * DAY
    for g in [10] * 8 + [1, 3] * 6:
        times.append(t)
        t += g * DAY
    times.append(t)
    assert times[-1] <= T0_MS
    # sent newest first: the answer must not depend on arrival order
    d.ingest_ctl([ev("G1", at(x), "purchase") for x in reversed(times)])
    assert ev_value(d, "gap(purchase)", "G1")["value"] == 2 * DAY
    assert ev_value(d, "count(purchase, 3650d)", "G1")["value"] == 21


def test_windows_over_many_events(clock_daemon):
    """More events than a customer's state keeps times for: count() still exact, and a
    rule on it still resolves exactly when the oldest counted event leaves the window.
    Calls every 12h from T0 back to T0-24.5d (50 calls)."""
    d = clock_daemon(rules_yaml(rule_yaml("busy", "count(call, 10d) >= 20")))
    sub = d.subscribe()
    d.ingest_ctl([ev("W1", at(T0_MS - k * 12 * HOUR), "call", attrs={"minutes": k})
                  for k in range(50)])
    expect_soon(sub, "firing", "busy", "W1")
    assert ev_value(d, "count(call, 7d)", "W1")["value"] == 14
    assert ev_value(d, "count(call, 10d)", "W1")["value"] == 20
    assert ev_value(d, "count(call, 30d)", "W1")["value"] == 50
    assert ev_value(d, 'sum(call, "minutes", 7d)', "W1")["value"] == sum(range(14))
    assert ev_value(d, "gap(call)", "W1")["value"] == 12 * HOUR
    # the 20th newest call (T0-9.5d) leaves the 10-day window at T0+12h
    d.clock_set(at(T0_MS + 12 * HOUR - MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 12 * HOUR + MINUTE))
    expect_alerts(sub, d, ("resolved", "busy", "W1"))
    assert ev_value(d, "count(call, 10d)", "W1")["value"] == 19
