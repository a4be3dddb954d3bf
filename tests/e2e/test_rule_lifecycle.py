"""Rules over a daemon's life (PROTOCOL.md §5.20 reload, §6, §8.1): reload and SIGHUP with a new
rule, a removed or changed rule, broken configs that name file:line:col and keep the
old rules running, `hearthd --check` exit 78, summary templates, runtime errors in
`rules`, events from the near future, and silences/acks kept across a restart."""

import os
import signal
import subprocess

import pytest

from hearthtest import (DAY, HEARTHD, HOUR, MINUTE, T0_MS, assert_error, assert_ok, wait_for,
                        check_no_sanitizer, ev, expect_alerts, expect_soon, lifecycle, now_ms, parse_time,
                        rfc3339, rule_yaml, rules_yaml, Config)

COMPLAINED = rule_yaml("complained", "open(complaint) > 0", summary="{id} complained")
PROMISED = rule_yaml("promised", "open(promise) > 0", severity="info", summary="{id} promised")


def at(ms):
    return rfc3339(ms)


def rewrite(d, rules, **kw):
    """Rewrite the daemon's config file in place with other rules (same paths)."""
    kw.setdefault("heartbeat", "100ms")
    kw.setdefault("interval", "1h")
    cfg = Config(d.cfg.dir, rules_yaml=rules, **kw)
    assert cfg.path == d.cfg.path
    return cfg


def rule_names(d):
    return [r["name"] for r in assert_ok(d.ctl({"cmd": "rules"}))["rules"]]


def test_reload_adds_a_rule_that_fires(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    d.ingest_ctl([ev("N1", at(T0_MS), "complaint", ref="c")])
    expect_soon(sub, "firing", "complained", "N1")
    rewrite(d, rules_yaml(COMPLAINED, PROMISED))
    assert_ok(d.ctl({"cmd": "reload"}))
    assert rule_names(d) == ["complained", "promised"]
    r = assert_ok(d.ctl({"cmd": "rules"}))["rules"][1]
    assert r["severity"] == "info" and r["when"] == "open(promise) > 0", r
    d.ingest_ctl([ev("N2", at(T0_MS), "promise", ref="p")])
    b = expect_soon(sub, "firing", "promised", "N2")
    assert b["alert"]["summary"] == "N2 promised"
    assert b["alert"]["severity"] == "info"
    # the alert that was firing before the reload keeps firing, and is not notified again
    expect_alerts(sub, d)
    assert sorted((a["rule"], a["customer"]) for a in d.alerts()) == [
        ("complained", "N1"), ("promised", "N2")]
    d.ingest_ctl([ev("N1", at(T0_MS), "complaint_resolved", ref="c")])
    expect_soon(sub, "resolved", "complained", "N1")


def test_reload_new_rule_applies_to_existing_customers(clock_daemon):
    """A rule added by reload holds for customers already in the store: the
    re-evaluation after the reload fires it for them, without waiting for their next
    event.  (The customers here were ingested just before the reload.)"""
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    d.ingest_ctl([ev("E%d" % i, at(T0_MS), "promise", ref="p") for i in range(3)])
    expect_alerts(sub, d)
    # one rule for another (the same number of rules)
    rewrite(d, rules_yaml(PROMISED))
    assert_ok(d.ctl({"cmd": "reload"}))
    got = set()
    for _ in range(3):
        topic, body = sub.next_alert()
        got.add((body["kind"], body["alert"]["rule"], body["alert"]["customer"]))
    assert got == {("firing", "promised", "E%d" % i) for i in range(3)}
    assert len(d.alerts(rule="promised")) == 3


def test_reload_with_unchanged_rules_publishes_nothing(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED, PROMISED))
    sub = d.subscribe()
    d.ingest_ctl([ev("U1", at(T0_MS), "complaint", ref="c")])
    expect_soon(sub, "firing", "complained", "U1")
    before = d.alerts()
    seq = d.status()["seq"]
    assert_ok(d.ctl({"cmd": "reload"}))
    d.clock_advance("1m")
    expect_alerts(sub, d)
    assert lifecycle(d.alerts()) == lifecycle(before) and d.status()["seq"] == seq


def test_reload_removing_a_rule_drops_its_alerts(clock_daemon):
    """After a reload that removes a rule, its alerts are no longer counted or listed as
    firing: nothing could ever resolve or acknowledge them."""
    d = clock_daemon(rules_yaml(COMPLAINED, PROMISED))
    sub = d.subscribe()
    d.ingest_ctl([ev("D1", at(T0_MS), "complaint", ref="c"), ev("D1", at(T0_MS), "promise", ref="p")])
    expect_alerts(sub, d, ("firing", "complained", "D1"), ("firing", "promised", "D1"))
    assert d.status()["firing"] == 2
    rewrite(d, rules_yaml(PROMISED))
    assert_ok(d.ctl({"cmd": "reload"}))
    assert rule_names(d) == ["promised"]
    # whatever the re-evaluation publishes, it is never a new firing
    d.clock_advance("1m")
    for _, b in sub.sync(d):
        assert (b["kind"], b["alert"]["rule"]) == ("resolved", "complained"), b
    listed = [(a["rule"], a["customer"], a["severity"]) for a in d.alerts()]
    assert listed == [("promised", "D1", "info")], listed
    st = d.status()
    rules = assert_ok(d.ctl({"cmd": "rules"}))["rules"]
    assert st["firing"] == sum(r["firing"] for r in rules) == 1, (st, rules)


def test_reload_changed_rule_resolves(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED), at=None)
    sub = d.subscribe()
    t = now_ms()
    d.ingest_ctl([ev("V1", at(t), "complaint", ref="c")])
    expect_soon(sub, "firing", "complained", "V1")
    d.restart()                         # the store is flushed; the wall clock goes on
    sub = d.subscribe()
    rewrite(d, rules_yaml(rule_yaml("complained", "open(complaint) > 1")))
    assert_ok(d.ctl({"cmd": "reload"}))
    expect_soon(sub, "resolved", "complained", "V1")
    assert d.alerts() == []
    # status counts are as of the daemon's last loop turn (PROTOCOL.md §5.7): the
    # notification can reach a subscriber before the turn that published it has ended
    wait_for(lambda: d.status()["firing"] == 0, "status.firing after the resolution")


# (name, when, needle in the when text where the error is, exact column?)
BROKEN = [
    ("duration_vs_number", "since(touch) > 30", "since(touch) > 30", False),
    ("unknown_function", "frobnicate(touch) > 1", "frobnicate", True),
    ("unknown_case", "open(refund) > 0", "refund", True),
]


def locate(text, needle):
    assert text.count(needle) == 1, needle
    i = text.index(needle)
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


@pytest.mark.parametrize("name,when,needle,exact", BROKEN, ids=[b[0] for b in BROKEN])
def test_reload_broken_config_keeps_old_rules(clock_daemon, name, when, needle, exact):
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    cfg = rewrite(d, rules_yaml(COMPLAINED, PROMISED, rule_yaml("broken", when)))
    line, col = locate(cfg.text, needle)
    ans = d.ctl({"cmd": "reload"})
    assert_error(ans, "config_error")
    msg = ans["error"]["message"]
    prefix = "%s:%d:" % (cfg.path, line)
    assert prefix in msg, (prefix, msg)
    got_col = int(msg.split(prefix, 1)[1].split(":", 1)[0])
    if exact:
        assert got_col == col, (col, msg)
    else:
        assert col <= got_col < col + len(needle), (col, msg)
    # the old rules keep working; none of the new file was taken
    assert rule_names(d) == ["complained"]
    d.ingest_ctl([ev("B1", at(T0_MS), "complaint", ref="c"), ev("B1", at(T0_MS), "promise", ref="p")])
    expect_soon(sub, "firing", "complained", "B1")
    expect_alerts(sub, d)
    # SIGHUP with the same file: refused too, and the daemon lives on
    d.proc.send_signal(signal.SIGHUP)
    assert rule_names(d) == ["complained"]
    d.assert_alive()
    # --check: exit 78 and the same position
    p = subprocess.run([HEARTHD, "--check", "-c", cfg.path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    check_no_sanitizer(p)
    assert p.returncode == 78, p
    assert ("%s%d:" % (prefix, got_col)).encode() in p.stderr, p.stderr
    # and a fixed file loads (as many rules as before)
    rewrite(d, rules_yaml(PROMISED))
    assert_ok(d.ctl({"cmd": "reload"}))
    assert rule_names(d) == ["promised"]


def test_sighup_reloads(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    rewrite(d, rules_yaml(COMPLAINED, PROMISED))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: rule_names(d) == ["complained", "promised"], "SIGHUP loaded the new rules")
    d.ingest_ctl([ev("H1", at(T0_MS), "promise", ref="p")])
    expect_soon(sub, "firing", "promised", "H1")


def test_summary_templates(clock_daemon):
    rules = rules_yaml(
        rule_yaml("templated", "overdue(promise) > 0",
                  summary="{{{name}}} owes {overdue(promise)} to {owner}; quiet for {since(touch)}; "
                          "tier {tier}, stage {stage}; due by {now}"),
        rule_yaml("plain", "open(complaint) > 0", summary="}}{id}{{"))
    d = clock_daemon(rules)
    sub = d.subscribe()
    d.ingest_ctl([ev("T1", at(T0_MS - 3 * DAY), "profile",
                     attrs={"name": "林伟", "owner": "张", "tier": "C"}),
                  ev("T1", at(T0_MS - 3 * DAY), "call"),
                  ev("T1", at(T0_MS - 2 * DAY), "promise", ref="p", attrs={"due": at(T0_MS - DAY)}),
                  ev("T1", at(T0_MS), "complaint")])
    got = expect_alerts(sub, d, ("firing", "templated", "T1"), ("firing", "plain", "T1"))
    s = got[("firing", "templated", "T1")]["alert"]["summary"]
    assert s.startswith("{林伟} owes 1 to 张; quiet for 3d; tier C, stage "), s
    assert "due by 2031-01-06T09:00:" in s, s
    assert got[("firing", "templated", "T1")]["customer"]["name"] == "林伟"
    assert got[("firing", "plain", "T1")]["alert"]["summary"] == "}T1{"
    # the same text in `alerts` and in `explain`, each rendered as it answers ({now})
    [a] = d.alerts(rule="templated")
    assert a["summary"].split("due by")[0] == s.split("due by")[0]
    assert a["summary"].endswith("due by %s" % a["values_at"]), a
    ex = assert_ok(d.ctl({"cmd": "explain", "rule": "templated", "customer": "T1"}))
    assert ex["summary"].split("due by")[0] == s.split("due by")[0]


def test_default_summary(clock_daemon):
    """etc/hearth.yaml documents the default summary as "<name> for <customer id>"."""
    d = clock_daemon(rules_yaml(rule_yaml("plain", "open(complaint) > 0")))
    sub = d.subscribe()
    d.ingest_ctl([ev("T2", at(T0_MS), "complaint")])
    b = expect_soon(sub, "firing", "plain", "T2")
    assert b["alert"]["summary"] == "plain for T2", b["alert"]


def test_runtime_error_shows_in_rules(clock_daemon):
    rules = rules_yaml(rule_yaml("per_call", "value / count(call, 30d) > 1000"), COMPLAINED)
    d = clock_daemon(rules)
    sub = d.subscribe()
    d.ingest_ctl([ev("Z1", at(T0_MS), "profile", attrs={"value": 5000}),
                  ev("Z2", at(T0_MS), "profile", attrs={"value": 5000}),
                  ev("Z2", at(T0_MS), "call"),
                  ev("Z1", at(T0_MS), "complaint")])
    # Z1: division by zero, null, false; Z2: 5000 > 1000 fires; the other rule goes on
    expect_alerts(sub, d, ("firing", "per_call", "Z2"), ("firing", "complained", "Z1"))
    r = assert_ok(d.ctl({"cmd": "rules"}))["rules"][0]
    assert r["name"] == "per_call" and r["last_error"] and "Z1" in r["last_error"], r


def test_events_from_the_near_future_count_when_their_time_comes(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("two_calls", "count(call, 1d) >= 2")))
    sub = d.subscribe()
    # max_future is 1h: a call booked for 30 minutes from now is accepted
    d.ingest_ctl([ev("F1", at(T0_MS), "call"), ev("F1", at(T0_MS + 30 * MINUTE), "call")])
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 29 * MINUTE))
    expect_alerts(sub, d)
    d.clock_set(at(T0_MS + 31 * MINUTE))
    expect_alerts(sub, d, ("firing", "two_calls", "F1"))
    # the first call leaves the window a day after it
    d.clock_set(at(T0_MS + DAY + MINUTE))
    expect_alerts(sub, d, ("resolved", "two_calls", "F1"))


def test_silences_and_acks_survive_restart(clock_daemon):
    rules = rules_yaml(rule_yaml("complained", "open(complaint) > 0", repeat="1d"), PROMISED)
    d = clock_daemon(rules)
    sub = d.subscribe()
    d.ingest_ctl([ev("K1", at(T0_MS), "complaint", ref="c")])
    expect_soon(sub, "firing", "complained", "K1")
    assert_ok(d.ctl({"cmd": "ack", "rule": "complained", "customer": "K1", "by": "li"}))
    sid = assert_ok(d.ctl({"cmd": "silence.add", "rule": "promised", "until": at(T0_MS + 10 * DAY),
                           "comment": "quarter end"}))["id"]
    sub.close()
    d.restart()
    sub = d.subscribe()
    d.clock_set(at(T0_MS + 2 * DAY))        # the test clock starts from the wall clock again
    [s] = assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]
    assert s["id"] == sid and s["comment"] == "quarter end", s
    [a] = d.alerts()
    assert a["acked"] is True and a["state"] == "firing", a
    d.ingest_ctl([ev("K1", at(T0_MS + 2 * DAY), "promise", ref="p")])
    d.clock_advance("2d")
    expect_alerts(sub, d)                   # acked: no repeat; silenced: no firing
    assert sorted(a["rule"] for a in d.alerts()) == ["complained", "promised"]
    # a new silence does not reuse the id of the old one
    sid2 = assert_ok(d.ctl({"cmd": "silence.add", "customer": "K9", "for": "1h"}))["id"]
    assert sid2 != sid


def test_reload_new_case_counts_history(clock_daemon):
    """A case added to events.cases by reload applies to the timeline already stored:
    open(C) now agrees with open(C) evaluated `at` a moment ago (rebuilt from the
    timeline), and a rule on it fires for customers whose case is open in history."""
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    d.ingest_ctl([ev("RF1", at(T0_MS - DAY), "refund_requested", ref="r1"),
                  ev("RF2", at(T0_MS - DAY), "refund_requested", ref="r2"),
                  ev("RF2", at(T0_MS - HOUR), "refunded", ref="r2")])
    cfg = rewrite(d, rules_yaml(rule_yaml("refund_open", "open(refund) > 0")))
    case_line = "    promise: {open: promise, close: promise_kept, due: due}\n"
    assert cfg.text.count(case_line) == 1
    cfg.write(cfg.text.replace(case_line, case_line + "    refund: {open: refund_requested, close: refunded}\n"))
    assert_ok(d.ctl({"cmd": "reload"}))
    then = at(parse_time(d.status()["now"]))
    for cid, want in (("RF1", 1), ("RF2", 0)):
        past = assert_ok(d.ctl({"cmd": "eval", "expr": "open(refund)", "customer": cid, "at": then}))
        live = assert_ok(d.ctl({"cmd": "eval", "expr": "open(refund)", "customer": cid}))
        assert (past["value"], live["value"]) == (want, want), (cid, past, live)
    expect_soon(sub, "firing", "refund_open", "RF1")


def pending_events(d):
    text = assert_ok(d.ctl({"cmd": "metrics"}))["text"]
    for line in text.splitlines():
        if line.startswith("hearth_store_pending_events "):
            return float(line.split()[1])
    pytest.fail("no hearth_store_pending_events in metrics")


def test_reload_reaches_customers_not_stored_yet(clock_daemon):
    """A re-evaluation walks the stored customers; those whose state is still pending
    in memory when the reload comes (not flushed yet) are listed first, so the new rule
    reaches them as well."""
    d = clock_daemon(rules_yaml(COMPLAINED))
    sub = d.subscribe()
    n = 300
    d.ingest_ctl([ev("F%03d" % i, at(T0_MS), "promise", ref="p") for i in range(n)])
    rewrite(d, rules_yaml(PROMISED))
    pending = pending_events(d)
    assert_ok(d.ctl({"cmd": "reload"}))
    got = set()
    while len(got) < n:
        topic, body = sub.next_alert()
        got.add((body["kind"], body["alert"]["rule"], body["alert"]["customer"]))
    assert got == {("firing", "promised", "F%03d" % i) for i in range(n)}
    assert len(d.alerts(rule="promised")) == n
    # the case this test is for: they were not in the store when the reload came
    assert pending > 0, "the flush came first; nothing pending was re-evaluated"


def test_reevaluation_workers_yield_to_events_meanwhile(clock_daemon):
    """After a reload, worker threads evaluate the stored customers on a read snapshot
    (status.reeval_workers); the daemon applies what they found only for customers
    nothing touched since. A complaint resolved while the re-evaluation runs never ends
    up firing, and every customer whose complaint stays open fires. 20,000 customers
    are several windows: the workers evaluate the next one while the daemon applies
    the last, so a customer can be written after a window was handed out."""
    n = 20000
    d = clock_daemon(rules_yaml(PROMISED))
    assert d.status()["reeval_workers"] >= 1
    ids = ["W%05d" % i for i in range(n)]
    owner = {c: "o%d" % (i % 2) for i, c in enumerate(ids)}
    for k in range(0, n, 1000):
        d.ingest_ctl([e for c in ids[k:k + 1000]
                      for e in (ev(c, at(T0_MS), "profile", attrs={"owner": owner[c]}),
                                ev(c, at(T0_MS), "complaint", ref="c"))])
    # stored, so that the workers (who read the store) have them to evaluate
    wait_for(lambda: pending_events(d) == 0 and not d.status()["reevaluating"], "a quiet store")
    before = d.status()["reevaluated_by_workers"]
    rewrite(d, rules_yaml(PROMISED, COMPLAINED))
    assert_ok(d.ctl({"cmd": "reload"}))
    resolved = ids[::3]
    for k in range(0, len(resolved), 40):
        d.ingest_ctl([ev(c, at(T0_MS), "complaint_resolved", ref="c") for c in resolved[k:k + 40]])
    wait_for(lambda: not d.status()["reevaluating"], "the re-evaluation's end", deadline=120)
    firing = set()
    for o in ("o0", "o1"):
        firing |= {a["customer"] for a in d.alerts(rule="complained", owner=o, state="firing",
                                                    limit=10000)}
    assert firing == set(ids) - set(resolved)
    assert d.status()["reevaluated_by_workers"] > before


def test_firing_alerts_say_what_holds_when_read(clock_daemon):
    """A firing alert keeps telling the truth (PROTOCOL.md §4.1): `alerts` and `customer`
    render its summary and values as they answer, with no evaluation and no
    notification, and after a re-evaluation (by the workers) that changed nothing else
    just the same. 600 customers went quiet at day 31 and their alerts fired then; at
    day 45 nothing is due for them."""
    quiet = rule_yaml("quiet", "since(call) > 30d", summary="{id} quiet for {since(call)}")
    d = clock_daemon(rules_yaml(quiet))
    sub = d.subscribe()
    ids = ["R%03d" % i for i in range(600)]
    d.ingest_ctl([ev(c, at(T0_MS), "call") for c in ids])
    d.clock_set(at(T0_MS + 31 * DAY))
    fired = d.alerts(rule="quiet", limit=10000)
    assert {a["customer"] for a in fired} == set(ids)
    assert {a["summary"] for a in fired} == {"%s quiet for 31d" % c for c in ids}
    published = len(sub.sync(d))
    wait_for(lambda: pending_events(d) == 0 and not d.status()["reevaluating"], "a quiet store")
    assert d.clock_set(at(T0_MS + 45 * DAY))["evaluated"] == 0

    def says_day_45(alerts):
        assert {a["customer"] for a in alerts} == set(ids)
        for a in alerts:
            assert a["summary"] == "%s quiet for 45d" % a["customer"], a
            # (the test clock runs on from where it was set)
            assert T0_MS + 45 * DAY <= parse_time(a["values_at"]) < T0_MS + 45 * DAY + HOUR, a
            assert a["values"] == {"since(call)": parse_time(a["values_at"]) - T0_MS}, a
            assert a["state"] == "firing" and a["since"] == at(T0_MS + 31 * DAY), a
        assert lifecycle(alerts) == lifecycle(fired)

    says_day_45(d.alerts(rule="quiet", limit=10000))
    assert d.customer("R007")["alerts"][0]["summary"] == "R007 quiet for 45d"
    before = d.status()["reevaluated_by_workers"]
    assert_ok(d.ctl({"cmd": "reload"}))
    wait_for(lambda: not d.status()["reevaluating"], "the re-evaluation's end", deadline=120)
    assert d.status()["reevaluated_by_workers"] >= before + len(ids)
    says_day_45(d.alerts(rule="quiet", limit=10000))
    # nothing raised again
    assert len(sub.sync(d)) == 0 and published == len(ids)


def test_tick_workers_see_events_not_yet_stored(clock_daemon):
    """A tick with many customers due hands their evaluation to the worker threads,
    which read the store; a customer whose newer events are still only in the daemon's
    memory is evaluated by the daemon itself. 1,000 customers are due for `quiet`; the
    300 who complained on day 20 (just before the tick, not flushed yet) keep their
    `complained` alert through the tick. The workers also pack the notification bodies
    for the outbox before the daemon numbers them: `replay` gives back every one exactly
    as the subscriber got it."""
    quiet = rule_yaml("quiet", "since(call) > 30d", summary="{id} quiet")
    complained = rule_yaml("complained", "count(complaint, 365d) > 0", summary="{id} complained")
    d = clock_daemon(rules_yaml(quiet, complained), retain="365d")
    sub = d.subscribe()
    ids = ["Q%04d" % i for i in range(1000)]
    for k in range(0, len(ids), 500):
        d.ingest_ctl([ev(c, at(T0_MS), "call") for c in ids[k:k + 500]])
    wait_for(lambda: pending_events(d) == 0, "the calls stored")
    unhappy = ids[::10] + ids[1::10] + ids[2::10]
    d.clock_set(at(T0_MS + 20 * DAY))
    d.ingest_ctl([ev(c, at(T0_MS + 20 * DAY), "complaint") for c in unhappy])
    d.clock_set(at(T0_MS + 31 * DAY))
    assert {a["customer"] for a in d.alerts(rule="quiet", limit=10000)} == set(ids)
    assert {a["customer"] for a in d.alerts(rule="complained", limit=10000)} == set(unhappy)
    published = [b for _, b in sub.sync(d)]
    replayed = []
    while len(replayed) < len(published):
        page = assert_ok(d.ctl({"cmd": "replay", "after": len(replayed), "limit": 500}))
        assert page["notifications"], "replay ended at %d of %d" % (len(replayed), len(published))
        replayed += page["notifications"]
    assert replayed == published
    assert {b["alert"]["customer"] for b in published if b["alert"]["rule"] == "quiet"} == set(ids)



def test_reevaluation_workers_are_named(clock_daemon):
    """The worker threads are named hearth-reeval, one per status.reeval_workers, so that
    top -H and ps -L show ops which threads a re-evaluation keeps busy; the parser, the
    control thread and the readers' notes encoder are named too, once each."""
    d = clock_daemon(rules_yaml(COMPLAINED))
    pid = d.proc.pid
    n = d.status()["reeval_workers"]
    assert n >= 1
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            names.append(f.read().strip())
    assert names.count("hearth-reeval") == n, names
    for name in ("hearth-parser", "hearth-control", "hearth-notes"):
        assert names.count(name) == 1, names


def test_resolutions_without_an_evaluation_say_what_holds_then(clock_daemon):
    """A firing alert's stored text is its last notification's (§4.1); the `resolved` that
    a forget or a removed rule makes says what held when it was made, not that text."""
    quiet = rule_yaml("quiet", "since(call) > 30d", summary="{id} quiet for {since(call)}")
    d = clock_daemon(rules_yaml(quiet, COMPLAINED))
    sub = d.subscribe()
    d.ingest_ctl([ev("Q1", at(T0_MS), "call"), ev("Q2", at(T0_MS), "call")])
    d.clock_set(at(T0_MS + 31 * DAY))
    got = expect_alerts(sub, d, ("firing", "quiet", "Q1"), ("firing", "quiet", "Q2"))
    assert got[("firing", "quiet", "Q1")]["alert"]["summary"] == "Q1 quiet for 31d"
    assert d.clock_set(at(T0_MS + 45 * DAY))["evaluated"] == 0
    assert_ok(d.ctl({"cmd": "forget", "id": "Q1"}))
    b = expect_soon(sub, "resolved", "quiet", "Q1")
    assert b["alert"]["summary"] == "Q1 quiet for 45d", b
    rewrite(d, rules_yaml(COMPLAINED))
    assert_ok(d.ctl({"cmd": "reload"}))
    b = expect_soon(sub, "resolved", "quiet", "Q2")
    assert b["alert"]["summary"] == "Q2 quiet for 45d", b
    assert b["alert"]["values"]["since(call)"] >= 45 * DAY, b
