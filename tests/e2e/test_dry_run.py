"""reload.dry_run and `hearthctl reload --dry-run` (PROTOCOL.md §5.20): what a changed
configuration would fire, resolve or change right now, without applying it; then the
real reload does what the dry run said."""

from hearthtest import (DAY, T0_MS, Config, assert_error, assert_ok, ev, expect_alerts, hearthctl,
                        rfc3339, rule_yaml, rules_yaml)

COMPLAINED = rule_yaml("complained", "open(complaint) > 0")
COLD = rule_yaml("cold", "since(touch) > 30d")


def rewrite(d, rules):
    cfg = Config(d.cfg.dir, rules_yaml=rules, heartbeat="100ms", interval="1h")
    assert cfg.path == d.cfg.path


def state(d):
    return (sorted((a["rule"], a["customer"], a["summary"]) for a in d.alerts(state="all")),
            d.status()["seq"], [r["name"] for r in assert_ok(d.ctl({"cmd": "rules"}))["rules"]])


def test_dry_run_says_what_a_reload_would_do_and_does_nothing(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED, COLD))
    sub = d.subscribe()
    d.ingest_ctl([ev("X1", rfc3339(T0_MS - DAY), "complaint", ref="c"),
                  ev("X2", rfc3339(T0_MS - 40 * DAY), "call"),
                  ev("X3", rfc3339(T0_MS - 10 * DAY), "call")])
    expect_alerts(sub, d, ("firing", "complained", "X1"), ("firing", "cold", "X2"))
    before = state(d)
    # complained goes, cold comes sooner, a new rule waits a day
    rewrite(d, rules_yaml(rule_yaml("cold", "since(touch) > 5d"),
                          rule_yaml("lingers", "open(complaint) > 0", for_="1d")))
    ans = assert_ok(d.ctl({"cmd": "reload.dry_run"}))
    got = sorted((a["rule"], a["customer"], a["kind"]) for a in ans["alerts"])
    assert got == [("cold", "X2", "change"), ("cold", "X3", "fire"), ("complained", "X1", "resolve"),
                   ("lingers", "X1", "pending")]
    assert (ans["fire"], ans["resolve"], ans["change"], ans["pending"]) == (1, 1, 1, 1)
    status = {r["rule"]: r["status"] for r in ans["rules"]}
    assert status == {"cold": "changed", "lingers": "new", "complained": "removed"}
    assert ans["customers"] == 3
    assert state(d) == before                       # nothing applied, nothing published
    expect_alerts(sub, d)
    # hearthctl reload --dry-run asks the same and never reloads
    p = hearthctl(["reload", "--dry-run"], sock=d.cfg.control)
    assert p.returncode == 0, p.stderr
    assert "would fire 1, resolve 1, change 1" in p.stdout.decode()
    assert state(d) == before
    # the real reload does what the dry run said
    assert_ok(d.ctl({"cmd": "reload"}))
    expect_alerts(sub, d, ("firing", "cold", "X3"), ("resolved", "complained", "X1"))


def test_dry_run_of_a_broken_config_names_the_place(clock_daemon):
    d = clock_daemon(rules_yaml(COMPLAINED))
    rewrite(d, rules_yaml(rule_yaml("cold", "since(touch) >")))
    ans = d.ctl({"cmd": "reload.dry_run"})
    assert_error(ans, "config_error")
    assert "hearth.yaml:" in ans["error"]["message"], ans
    assert [r["name"] for r in assert_ok(d.ctl({"cmd": "rules"}))["rules"]] == ["complained"]
