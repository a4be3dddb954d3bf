"""A store written by an earlier hearthd opens and is upgraded in place (issue 14).

tests/fixtures/store-018fa58.dump (an mdb_dump of it) was written by hearthd at commit 018fa58 (alert records of
version 1, no table of deferred history-load customers), from 40 customers of the example
data with the shipped rules, one alert acked and one silence; the JSON beside it is what
that daemon answered then. This hearthd must read all of it, keep the notification
sequence, and write the new forms from then on."""

import json

import time

from hearthtest import (FIXTURE_018FA58 as FIXTURE, Config, Daemon, assert_ok, etc_priority,
                        etc_section, ev, load_fixture_store, parse_time, rfc3339)


def test_a_store_of_the_previous_version_opens_and_upgrades(workdir):
    expect = json.load(open(FIXTURE + ".json"))
    cfg = Config(workdir, rules_yaml=etc_section("rules"), priority=etc_priority(),
                 heartbeat="100ms", interval="1h", retain="3650d")
    load_fixture_store(FIXTURE + ".dump", cfg.store)
    d = Daemon(cfg, ["--test-clock"])
    try:
        d.start()
        s = d.status()
        assert (s["customers"], s["events"]) == (expect["status"]["customers"], expect["status"]["events"])
        # (the start re-evaluates everyone at today's clock: more may have fired since)
        assert s["seq"] >= expect["status"]["seq"]
        # the outbox reads back byte for byte
        old = assert_ok(d.ctl({"cmd": "replay", "after": 0, "limit": 10000}))["notifications"]
        assert old[:len(expect["replay"])] == expect["replay"]
        assert [n["seq"] for n in old] == list(range(1, len(old) + 1))
        # version-1 alert records load: what still fires kept its moment and its ack
        recorded = {(a["rule"], a["customer"]): a for a in expect["alerts"]}
        now = {(a["rule"], a["customer"]): a for a in d.alerts(state="all", limit=10000)}
        kept = [k for k in recorded if k in now and now[k]["state"] == recorded[k]["state"] == "firing"]
        assert kept, (recorded, now)
        for k in kept:
            assert now[k]["since"] == recorded[k]["since"] and now[k]["acked"] == recorded[k]["acked"], k
        assert any(recorded[k]["acked"] for k in kept)
        assert len(assert_ok(d.ctl({"cmd": "silence.list"}))["silences"]) == expect["silences"]
        # the time index, one key per event then, reads back whole in time order, either way
        custs = assert_ok(d.ctl({"cmd": "customers", "limit": 10000}))["customers"]
        assert len(custs) == s["customers"]
        total = 0
        for c in custs:
            evs = d.timeline_all(c["id"])
            assert len(evs) == d.customer(c["id"])["events"] > 0, c["id"]
            assert [(e["ts"], e["seq"]) for e in evs] == sorted((e["ts"], e["seq"]) for e in evs)
            assert d.timeline_all(c["id"], desc=True) == evs[::-1]
            total += len(evs)
        assert total == s["events"]
        gone = custs[0]["id"]
        removed = assert_ok(d.ctl({"cmd": "forget", "id": gone}))["events"]
        assert removed == custs[0]["events"] > 0, custs[0]
        assert d.status()["events"] == s["events"] - removed
        assert assert_ok(d.ctl({"cmd": "timeline", "id": gone}))["events"] == []
        # new forms from here on: a history load (its table did not exist) and fresh alerts
        d.clock_set(rfc3339(parse_time(s["now"]) + 1000))
        seq = d.status()["seq"]
        at = rfc3339(parse_time(d.status()["now"]) - 3 * 24 * 3600 * 1000)
        assert_ok(d.ctl({"cmd": "ingest", "load": "end",
                         "events": [ev("MIGRATED", at, "complaint", id="m-1", ref="m")]}))
        end = time.monotonic() + 30
        while d.status()["deferred"] and time.monotonic() < end:
            time.sleep(0.02)
        mine = [a for a in d.alerts(customer="MIGRATED")]
        assert {a["rule"] for a in mine} == {"complaint_unresolved", "new_customer_wobble"}
        assert "values_at" in mine[0] and "active_since" in mine[0]
        new = assert_ok(d.ctl({"cmd": "replay", "after": seq, "limit": 10000}))["notifications"]
        assert [n["seq"] for n in new] == list(range(seq + 1, seq + 1 + len(new))) and new
        d.restart()
        assert d.status()["seq"] == new[-1]["seq"]
    finally:
        problem = d.teardown()
    assert not problem, problem
