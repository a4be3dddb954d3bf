"""reload.dry_run and `hearthctl reload --dry-run` (PROTOCOL.md §5.20): what a changed
configuration would fire, resolve or change right now, without applying it; then the
real reload does what the dry run said."""

import json
import subprocess

from hearthtest import (DAY, FIXTURE_018FA58, HEARTHD, T0_MS, Config, assert_error, assert_ok, ev,
                        expect_alerts, hearthctl, load_fixture_store, rfc3339, rule_yaml, rules_yaml)


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


def check_against(cfg_path, store, *extra):
    return subprocess.run([HEARTHD, "--check", "-c", cfg_path, "--against", store] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


def answer(p):
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def comparable(ans):
    return (sorted((a["rule"], a["customer"], a["kind"]) for a in ans["alerts"]),
            sorted((r["rule"], r["status"], r["fire"], r["resolve"], r["change"], r["pending"])
                   for r in ans["rules"]),
            ans["customers"])


def test_check_against_a_store_says_what_the_daemon_would(clock_daemon, tmp_path):
    """`hearthd --check -c FILE --against STORE` judges a changed configuration over a store,
    read-only, while the daemon runs on it and after it stopped, exactly as reload.dry_run
    in that daemon does."""
    d = clock_daemon(rules_yaml(COMPLAINED, COLD))
    sub = d.subscribe()
    d.ingest_ctl([ev("X1", rfc3339(T0_MS - DAY), "complaint", ref="c"),
                  ev("X2", rfc3339(T0_MS - 40 * DAY), "call"),
                  ev("X3", rfc3339(T0_MS - 10 * DAY), "call")])
    expect_alerts(sub, d, ("firing", "complained", "X1"), ("firing", "cold", "X2"))
    # acknowledged, not flushed yet (at most): the check folds the log's tail itself
    d.ingest_ctl([ev("X4", rfc3339(T0_MS - 6 * DAY), "call")])
    new_rules = rules_yaml(rule_yaml("cold", "since(touch) > 5d"),
                           rule_yaml("lingers", "open(complaint) > 0", for_="1d"))
    other = Config(str(tmp_path / "next"), rules_yaml=new_rules)
    before = state(d)
    running = check_against(other.path, d.cfg.store, "--at", rfc3339(T0_MS), "--json")
    offline = answer(running)
    assert comparable(offline) == (
        [("cold", "X2", "change"), ("cold", "X3", "fire"), ("cold", "X4", "fire"),
         ("complained", "X1", "resolve"), ("lingers", "X1", "pending")],
        [("cold", "changed", 2, 0, 1, 0), ("complained", "removed", 0, 1, 0, 0),
         ("lingers", "new", 0, 0, 0, 1)],
        4)
    assert state(d) == before                       # the daemon saw nothing of it
    # the daemon's own dry run of the same file says the same
    rewrite(d, new_rules)
    assert comparable(assert_ok(d.ctl({"cmd": "reload.dry_run"}))) == comparable(offline)
    # readable form, for people
    p = check_against(other.path, d.cfg.store, "--at", rfc3339(T0_MS))
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "would fire 2, resolve 1, change 1 and start 1 pending alert(s) over 4 customer(s)" in text
    assert "complained" in text and "removed" in text
    # stopped, the store answers the same
    d.stop()
    assert comparable(answer(check_against(other.path, d.cfg.store, "--at", rfc3339(T0_MS), "--json"))) \
        == comparable(offline)
    # an unchanged configuration changes nothing
    same = Config(str(tmp_path / "same"), rules_yaml=rules_yaml(COMPLAINED, COLD))
    ans = answer(check_against(same.path, d.cfg.store, "--at", rfc3339(T0_MS), "--json"))
    assert (ans["fire"], ans["resolve"], ans["change"], ans["pending"]) == (0, 0, 0, 0), ans
    assert {r["rule"]: r["status"] for r in ans["rules"]} == {"complained": "same", "cold": "same"}
    # a reload records the rules it applied: the old file is now the change
    rewrite(d, rules_yaml(COMPLAINED, COLD))
    d.start()
    rewrite(d, new_rules)
    assert_ok(d.ctl({"cmd": "reload"}))
    ans = answer(check_against(same.path, d.cfg.store, "--at", rfc3339(T0_MS), "--json"))
    assert {r["rule"]: r["status"] for r in ans["rules"]} == \
        {"complained": "new", "cold": "changed", "lingers": "removed"}


def test_check_against_refuses_what_it_cannot_judge(tmp_path):
    cfg = Config(str(tmp_path / "c"), rules_yaml=rules_yaml(COLD))
    p = check_against(cfg.path, str(tmp_path / "nowhere"))
    assert p.returncode == 1 and b"is not a directory" in p.stderr, p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = check_against(cfg.path, str(empty))
    assert p.returncode == 1 and b"cannot open" in p.stderr, p.stderr
    # a store an older hearthd wrote: it does not record its rules
    old = tmp_path / "old"
    load_fixture_store(FIXTURE_018FA58 + ".dump", str(old))
    p = check_against(cfg.path, str(old))
    assert p.returncode == 1 and b"start this hearthd on it once" in p.stderr, p.stderr
    # options that only make sense together
    for args in (["--against", str(old)], ["--check", "--json"], ["--check", "--at", "2031-01-01T00:00:00Z"]):
        p = subprocess.run([HEARTHD, "-c", cfg.path] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
    p = subprocess.run([HEARTHD, "-c", cfg.path, "--check", "--against", str(old), "--at", "friday"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 2 and b"RFC 3339" in p.stderr
    # a broken configuration is refused first, with its place
    bad = Config(str(tmp_path / "bad"), rules_yaml=rules_yaml(rule_yaml("cold", "since(touch) >")))
    p = check_against(bad.path, str(old))
    assert p.returncode == 78 and b"hearth.yaml:" in p.stderr, p.stderr
