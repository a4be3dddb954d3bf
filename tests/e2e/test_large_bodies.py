"""Read commands over many large stored notifications: answered in full, with the
daemon's stack limited to 512 KiB so that any per-notification stack allocation
would overflow it (issue 13: `replay` with a large limit killed the daemon)."""

from hearthtest import T0_MS, assert_ok, ev, rule_yaml, rules_yaml

STACK_LIMIT = 512 * 1024
CUSTOMERS = 1000            # ~2.4 KB per notification: ~2.4 MB of bodies in one answer
LONG_NAME = "名" * 700       # 2.1 KB of UTF-8, as a real export's long company name can be


def load(d):
    for start in range(0, CUSTOMERS, 100):
        events = []
        for i in range(start, start + 100):
            cid = "L%04d" % i
            events.append(ev(cid, T0_MS - 1000, "profile", id="p-" + cid, attrs={"name": LONG_NAME, "tier": "B"}))
            events.append(ev(cid, T0_MS, "complaint", ref="c"))
        d.ingest_ctl(events)


def test_replay_and_forget_over_large_bodies_with_a_small_stack(clock_daemon):
    d = clock_daemon(rules_yaml(rule_yaml("complained", "open(complaint) > 0")),
                     stack_limit=STACK_LIMIT)
    load(d)
    ans = assert_ok(d.ctl({"cmd": "replay", "after": 0, "limit": 10000}, timeout=60))
    notes = ans["notifications"]
    assert [n["seq"] for n in notes] == list(range(1, CUSTOMERS + 1))
    assert {n["alert"]["customer"] for n in notes} == {"L%04d" % i for i in range(CUSTOMERS)}
    bad = [n for n in notes if n["customer"].get("name") != LONG_NAME]
    assert not bad, (len(bad), str(bad[0])[:300])
    d.assert_alive()

    # forget walks every stored notification too
    assert_ok(d.ctl({"cmd": "forget", "id": "L0500"}, timeout=60))
    notes = assert_ok(d.ctl({"cmd": "replay", "after": 0, "limit": 10000}, timeout=60))["notifications"]
    customers = [n["alert"]["customer"] for n in notes]
    assert "L0500" not in customers and len(customers) == CUSTOMERS - 1
    assert all(n["customer"]["name"] == LONG_NAME for n in notes if n["alert"]["customer"] != "L0500")
    d.assert_alive()
    assert assert_ok(d.ctl({"cmd": "ping"}))
