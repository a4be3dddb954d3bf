"""Readers beside ingest (issue 14's correctness checks, kept for the core's reader
threads to come): while a producer's batches are acknowledged over ZeroMQ and the
daemon flushes derived state in between, every `customer` and `timeline` answer shows
at least what was acknowledged before the query was sent, and never half a batch."""

import contextlib
import json
import os
import re
import socket
import threading
import time

import zmq

from hearthtest import CtlConn, T0_MS, assert_ok, ev, rfc3339, rule_yaml, rules_yaml

CUSTOMERS = 10
BATCHES = 400              # per run: each batch is one call and one profile change
FLUSH_EVERY = 100          # batches; then the producer waits for a flush of derived state
T0 = 1_700_000_000_000     # 2023-11-14: in the past of any clock this runs on


def batch(cid, k):
    ts = rfc3339(T0 + k * 1000)
    return [ev(cid, ts, "call", id="%s-c-%d" % (cid, k)),
            ev(cid, ts, "profile", id="%s-p-%d" % (cid, k), attrs={"k": k})]


def test_queries_beside_ingest_read_their_writes_and_see_whole_batches(daemon):
    acked = {"R%d" % i: 0 for i in range(CUSTOMERS)}
    lock = threading.Lock()
    done = threading.Event()
    problems = []

    def produce():
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(daemon.cfg.ingest_ep)
        try:
            for n in range(BATCHES):
                cid = "R%d" % (n % CUSTOMERS)
                k = n // CUSTOMERS + 1
                s.send(json.dumps(batch(cid, k)).encode())
                if not s.poll(60000):
                    problems.append("no ingest reply in 60 s")
                    return
                rep = json.loads(s.recv())
                if rep.get("accepted") != 2:
                    problems.append("ingest: %r" % rep)
                    return
                with lock:
                    acked[cid] = k
                if (n + 1) % FLUSH_EVERY == 0 and not wait_for_flush(flushes()):
                    problems.append("no flush within 30 s")
                    return
        finally:
            s.close()
            done.set()

    def flushes():
        text = assert_ok(daemon.ctl({"cmd": "metrics"}))["text"]
        return int(float(re.search(r"^hearth_store_flushes_total (\S+)$", text, re.M).group(1)))

    def wait_for_flush(before):
        """Ingest idle: pending state is written within a second (the flush's age)."""
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if flushes() > before:
                return True
            time.sleep(0.02)
        return False

    start_flushes = flushes()
    t = threading.Thread(target=produce)
    t.start()
    checked = 0
    with CtlConn(daemon.cfg.control) as c:
        end = time.monotonic() + 300
        while not done.is_set() and time.monotonic() < end:
            for cid in list(acked):
                with lock:
                    floor = acked[cid]
                ans = c.request({"cmd": "customer", "id": cid})
                if floor == 0 and not ans.get("ok"):
                    continue                                # not stored yet: fine
                cust = assert_ok(ans)["customer"]
                k = cust["profile"].get("k", 0)
                # read-your-writes: everything acknowledged before the query is there
                assert k >= floor, (cid, k, floor)
                # no torn answer: a batch's two events come together, consistently
                assert cust["events"] == 2 * k, (cid, cust)
                assert cust["last_seen"] == rfc3339(T0 + k * 1000), (cid, cust)
                tl = assert_ok(c.request({"cmd": "timeline", "id": cid, "limit": 10000}))["events"]
                assert len(tl) >= 2 * k and len(tl) % 2 == 0, (cid, len(tl), k)
                checked += 1
    t.join(60)
    assert not problems, problems
    assert done.is_set(), "the producer did not finish"
    assert checked > CUSTOMERS
    stored = daemon.status()["events"]
    assert stored == 2 * BATCHES
    # the queries ran across writes of derived state, not only before the first
    assert flushes() >= start_flushes + BATCHES // FLUSH_EVERY


IMPORT_CUSTOMERS = 40
IMPORT_REQUESTS = 100      # of 400 events each, 100 for each of 4 customers: 40 000 events
PER_CUSTOMER = 100


def import_batch(n):
    """Request n: 100 events for each of 4 customers, ids that say where they belong."""
    events = []
    for j in range(4):
        cid = "I%d" % ((n * 4 + j) % IMPORT_CUSTOMERS)
        for k in range(PER_CUSTOMER):
            ts = rfc3339(T0 + (n * PER_CUSTOMER + k) * 1000)
            events.append(ev(cid, ts, "call", id="%s-%d-%d" % (cid, n, k)))
    return events


def test_queries_during_a_large_import_see_every_acknowledged_event_whole(daemon):
    """A producer streams 40 000 events; a second client asks about the customers of
    the batch just acknowledged. Every answer holds all their acknowledged events, and
    customer/timeline/customer brackets each other: no half-applied state is shown."""
    acked = {}                  # customer -> events acknowledged
    latest = []                 # customers of the last acknowledged batch
    lock = threading.Lock()
    done = threading.Event()
    problems = []

    def produce():
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(daemon.cfg.ingest_ep)
        try:
            for n in range(IMPORT_REQUESTS):
                batch_events = import_batch(n)
                s.send(json.dumps(batch_events).encode())
                if not s.poll(60000):
                    problems.append("no ingest reply in 60 s")
                    return
                rep = json.loads(s.recv())
                if rep.get("accepted") != len(batch_events):
                    problems.append("ingest: %r" % rep)
                    return
                with lock:
                    cids = sorted({e["customer"] for e in batch_events})
                    for cid in cids:
                        acked[cid] = acked.get(cid, 0) + PER_CUSTOMER
                    latest[:] = cids
        finally:
            s.close()
            done.set()

    t = threading.Thread(target=produce)
    t.start()
    checked = 0
    with CtlConn(daemon.cfg.control) as c:
        end = time.monotonic() + 300
        while not done.is_set() and time.monotonic() < end:
            with lock:
                floors = {cid: acked[cid] for cid in latest}
            for cid, floor in floors.items():
                before = assert_ok(c.request({"cmd": "customer", "id": cid}))["customer"]["events"]
                tl = assert_ok(c.request({"cmd": "timeline", "id": cid, "limit": 10000}))["events"]
                after = assert_ok(c.request({"cmd": "customer", "id": cid}))["customer"]["events"]
                # read-your-writes: what was acknowledged before the queries is there
                assert before >= floor, (cid, before, floor)
                # whole batches only, and the timeline between the two counts around it
                assert before % PER_CUSTOMER == 0 and after % PER_CUSTOMER == 0, (cid, before, after)
                assert before <= len(tl) <= after, (cid, before, len(tl), after)
                assert len({e["id"] for e in tl}) == len(tl), cid   # no event twice
                checked += 1
    t.join(60)
    assert not problems, problems
    assert done.is_set(), "the producer did not finish"
    assert checked > 0
    # at the end every customer shows all of its events, in the timeline too
    for cid, n in acked.items():
        assert daemon.customer(cid)["events"] == n
        assert len(assert_ok(daemon.ctl({"cmd": "timeline", "id": cid, "limit": 10000}))["events"]) == n
    assert daemon.status()["events"] == IMPORT_REQUESTS * 4 * PER_CUSTOMER


def test_readers_answer_while_the_writer_is_held(daemon):
    """The writer is held inside one request: a `reload` whose configuration file is a
    FIFO nobody writes yet blocks it in open(2). Meanwhile `ping`, `status`, `customer`
    and `timeline` on another connection are answered, by the control thread, and see
    what was acknowledged before; `load.end` (a writer command) is not answered until
    the writer is let go."""
    assert_ok(daemon.ctl({"cmd": "ingest", "events": [
        ev("W1", rfc3339(T0), "call", id="w1-1"), ev("W1", rfc3339(T0 + 1000), "visit", id="w1-2")]}))
    text = open(daemon.cfg.path).read()
    os.rename(daemon.cfg.path, daemon.cfg.path + ".real")
    os.mkfifo(daemon.cfg.path)
    held = CtlConn(daemon.cfg.control)
    other = CtlConn(daemon.cfg.control)
    try:
        held.send({"cmd": "reload"})
        # the writer takes the reload: its load.end then waits behind it
        other.send({"cmd": "load.end"})
        with CtlConn(daemon.cfg.control) as c:
            assert assert_ok(c.request({"cmd": "ping"}))["pong"] is True
            assert assert_ok(c.request({"cmd": "status"}))["events"] == 2
            assert assert_ok(c.request({"cmd": "customer", "id": "W1"}))["customer"]["events"] == 2
            tl = assert_ok(c.request({"cmd": "timeline", "id": "W1"}))["events"]
            assert [e["id"] for e in tl] == ["w1-1", "w1-2"]
        # nothing came back on the writer's side yet: it is still held in open(2)
        timeout = held.sock.gettimeout()
        held.sock.setblocking(False)
        try:
            got = held.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            got = None
        held.sock.settimeout(timeout)
        assert got is None and held.buf == b"", "the reload was answered while the writer was held"
        with open(daemon.cfg.path, "w") as f:      # lets the writer go
            f.write(text)
        assert_ok(held.recv())
        assert assert_ok(other.recv())["deferred"] == 0
    finally:
        held.close()
        other.close()
        os.unlink(daemon.cfg.path)
        os.rename(daemon.cfg.path + ".real", daemon.cfg.path)


@contextlib.contextmanager
def writer_held(daemon):
    """Holds the writer inside a `reload` (its configuration file a FIFO nobody writes
    yet: open(2) blocks) for the body, then checks that the reload had not been answered
    meanwhile and lets the writer go. A forwarded request sent before the body
    (`load.end`) is answered only after."""
    text = open(daemon.cfg.path).read()
    os.rename(daemon.cfg.path, daemon.cfg.path + ".real")
    os.mkfifo(daemon.cfg.path)
    held = CtlConn(daemon.cfg.control)
    other = CtlConn(daemon.cfg.control)
    released = False
    try:
        held.send({"cmd": "reload"})
        other.send({"cmd": "load.end"})
        yield
        timeout = held.sock.gettimeout()
        held.sock.setblocking(False)
        try:
            got = held.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            got = None
        held.sock.settimeout(timeout)
        assert got is None and held.buf == b"", "the reload was answered while the writer was held"
        with open(daemon.cfg.path, "w") as f:      # lets the writer go
            f.write(text)
        released = True
        assert_ok(held.recv())
        assert_ok(other.recv())
    finally:
        if not released:                            # a failed check: still let it go
            try:
                fd = os.open(daemon.cfg.path, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, text.encode())
                os.close(fd)
            except OSError:
                pass
        held.close()
        other.close()
        os.unlink(daemon.cfg.path)
        os.rename(daemon.cfg.path + ".real", daemon.cfg.path)


def test_listings_alerts_and_replay_answer_while_the_writer_is_held(clock_daemon):
    """`alerts`, `replay`, `customers` (plain and ranked), `top` and `help` are answered
    by the control thread while the writer is held, and see what was acknowledged
    before: alerts fired by the ingest, its notifications, and customers that are only
    pending (not flushed yet: the overlay), merged in id order with the stored ones."""
    d = clock_daemon(rules_yaml(rule_yaml("open_now", "open(complaint) > 0")),
                     priority="open(complaint)")
    at = lambda ms: rfc3339(ms)
    # Z5 stored: `forget` flushes what is pending first (here it finds nobody to forget)
    assert_ok(d.ctl({"cmd": "ingest", "events": [ev("Z5", at(T0_MS), "call", id="z5-1")]}))
    assert d.ctl({"cmd": "forget", "id": "nobody"})["error"]["code"] == "not_found"
    seq0 = d.status()["seq"]
    # then acknowledged just before the queries, ids out of order
    assert_ok(d.ctl({"cmd": "ingest", "events": [
        ev("Z2", at(T0_MS + 1000), "complaint", ref="c"),
        ev("Z1", at(T0_MS + 2000), "complaint", ref="c"),
        ev("Z3", at(T0_MS + 3000), "call", id="z3-1")]}))
    seq = d.status()["seq"]
    assert seq == seq0 + 2
    with writer_held(d), CtlConn(d.cfg.control) as c:
        firing = assert_ok(c.request({"cmd": "alerts"}))["alerts"]
        assert sorted((a["rule"], a["customer"]) for a in firing) == [
            ("open_now", "Z1"), ("open_now", "Z2")]
        rep = assert_ok(c.request({"cmd": "replay", "after": seq0}))
        assert rep["last_seq"] == seq
        assert sorted(n["customer"]["id"] for n in rep["notifications"]) == ["Z1", "Z2"]
        ids = [r["id"] for r in assert_ok(c.request({"cmd": "customers"}))["customers"]]
        assert ids == ["Z1", "Z2", "Z3", "Z5"]
        page = assert_ok(c.request({"cmd": "customers", "limit": 2}))
        assert [r["id"] for r in page["customers"]] == ["Z1", "Z2"]
        page = assert_ok(c.request({"cmd": "customers", "limit": 2, "cursor": page["cursor"]}))
        assert [r["id"] for r in page["customers"]] == ["Z3", "Z5"] and "cursor" not in page
        ranked = assert_ok(c.request({"cmd": "customers", "where": "open(complaint) > 0",
                                      "order": "events"}))["customers"]
        assert [r["id"] for r in ranked] == ["Z1", "Z2"]
        top = assert_ok(c.request({"cmd": "top", "n": 2}))["customers"]
        assert sorted((r["id"], r["score"]) for r in top) == [("Z1", 1), ("Z2", 1)]
        names = {h["cmd"] for h in assert_ok(c.request({"cmd": "help"}))["commands"]}
        assert {"alerts", "replay", "customers", "top"} <= names


def test_rules_metrics_silences_eval_and_explain_answer_while_the_writer_is_held(clock_daemon):
    """`eval` and `explain` (the reader's own rules, window scans through its view of
    pending state), `rules` (alert counts from the store, last errors the writer posted),
    `metrics` (the writer's counters as posted after its last commit) and
    `silence.list` (the silences as posted when they changed) are answered by the control
    thread while the writer is held, and show what was acknowledged before."""
    d = clock_daemon(rules_yaml(rule_yaml("per_call", "value / count(call, 30d) > 1000"),
                                rule_yaml("open_now", "open(complaint) > 0")))
    at = lambda ms: rfc3339(ms)
    sid = assert_ok(d.ctl({"cmd": "silence.add", "rule": "open_now", "for": "1h",
                           "comment": "held"}))["id"]
    # acknowledged just before the queries: Y1 divides by zero (per_call's last error)
    assert_ok(d.ctl({"cmd": "ingest", "events": [
        ev("Y1", at(T0_MS - 5000), "profile", attrs={"value": 5000}),
        ev("Y1", at(T0_MS - 1000), "complaint", ref="c"),
        ev("Y2", at(T0_MS - 5000), "profile", attrs={"value": 5000}),
        ev("Y2", at(T0_MS - 2000), "call", id="y2-1")]}))
    with writer_held(d), CtlConn(d.cfg.control) as c:
        e = assert_ok(c.request({"cmd": "eval", "customer": "Y2", "expr": "count(call, 30d)"}))
        assert e["value"] == 1 and e["type"] == "number", e
        past = assert_ok(c.request({"cmd": "eval", "customer": "Y2", "expr": "count(call, 30d)",
                                    "at": at(T0_MS - 3000)}))
        assert past["value"] == 0, past
        x = assert_ok(c.request({"cmd": "explain", "rule": "open_now", "customer": "Y1"}))
        assert x["rule"] == "open_now" and x["value"] is True, x
        x = assert_ok(c.request({"cmd": "explain", "rule": "per_call", "customer": "Y2"}))
        assert x["value"] is True and x["terms"], x
        assert c.request({"cmd": "explain", "rule": "nope", "customer": "Y2"})["error"]["code"] == "not_found"
        rules = {r["name"]: r for r in assert_ok(c.request({"cmd": "rules"}))["rules"]}
        assert (rules["open_now"]["firing"], rules["per_call"]["firing"]) == (1, 1), rules
        assert rules["per_call"]["last_error"] and "Y1" in rules["per_call"]["last_error"], rules
        assert rules["open_now"]["last_error"] is None, rules
        text = assert_ok(c.request({"cmd": "metrics"}))["text"]
        accepted = re.search(r'^hearth_ingest_events_total\{result="accepted"\} (\S+)$', text, re.M)
        assert accepted and float(accepted.group(1)) == 4, text
        assert "hearth_control_requests_total" in text
        sil = assert_ok(c.request({"cmd": "silence.list"}))["silences"]
        assert [(s["id"], s.get("rule"), s.get("comment")) for s in sil] == [(sid, "open_now", "held")]


def test_pending_customers_read_as_the_writer_folded_them(daemon):
    """A customer the writer holds, as the control thread shows it from the writer's
    notes, is the customer the writer then writes in the flush: profile fields set out
    of order, cases closed before they open, a case event older than the newest (the
    writer rebuilds the customer's cases then), a promise's due date, in one batch and
    over several."""
    def flushes():
        text = assert_ok(daemon.ctl({"cmd": "metrics"}))["text"]
        return int(float(re.search(r"^hearth_store_flushes_total (\S+)$", text, re.M).group(1)))

    def at(s):
        return rfc3339(T0 + s * 1000)

    def events(cid):
        return [
            [ev(cid, at(10), "profile", attrs={"tier": "B", "name": "Ada"}),
             ev(cid, at(5), "profile", attrs={"tier": "C", "owner": "li"})],
            [ev(cid, at(30), "complaint", ref="r2"), ev(cid, at(40), "complaint_resolved", ref="r2")],
            [ev(cid, at(25), "complaint", ref="r3")],                   # late: cases rebuilt
            [ev(cid, at(20), "complaint_resolved", ref="r1"), ev(cid, at(22), "complaint", ref="r1"),
             ev(cid, at(50), "promise", ref="p1", attrs={"due": at(3600)}),
             ev(cid, at(45), "promise_kept"), ev(cid, at(60), "call")],
            [ev(cid, at(55), "complaint"), ev(cid, at(1), "call")],
        ]

    for attempt in range(20):
        cid = "F%d" % attempt
        before = flushes()
        for req in events(cid):
            assert_ok(daemon.ctl({"cmd": "ingest", "events": req}))
        pending = assert_ok(daemon.ctl({"cmd": "customer", "id": cid}))["customer"]
        if flushes() == before:
            break
    else:
        raise AssertionError("a flush came between ingest and the query in 20 attempts")
    end = time.monotonic() + 30
    while flushes() == before and time.monotonic() < end:
        time.sleep(0.05)
    assert flushes() > before, "no flush within 30 s"
    stored = assert_ok(daemon.ctl({"cmd": "customer", "id": cid}))["customer"]
    assert pending == stored
    assert pending["events"] == 12
    assert pending["profile"]["tier"] == "B" and pending["profile"]["owner"] == "li"
    assert sorted(str(c["ref"]) for c in pending["open"]["complaint"]) == ["None", "r1", "r3"]
    assert pending["open"]["promise"][0]["due"] == at(3600)


def test_a_customers_alerts_read_their_writes_among_many_changes(clock_daemon):
    """`customer` shows the alert states its acknowledged events made, at once, though
    each ingest before it changed hundreds of others' (the control thread reads one
    customer's part of the alert journal for it, the rest between requests), and
    `alerts` then agrees with every customer's own answer."""
    d = clock_daemon(rules_yaml(rule_yaml("open_now", "open(complaint) > 0")))
    at = lambda k: rfc3339(T0_MS + k * 1000)

    def firing(c, cid):
        cust = assert_ok(c.request({"cmd": "customer", "id": cid}))["customer"]
        return [a["rule"] for a in cust["alerts"] if a["state"] == "firing"]

    with CtlConn(d.cfg.control) as c:
        for k in range(1, 21):
            crowd = [ev("K%d-%03d" % (k, i), at(k), "complaint", ref="c") for i in range(300)]
            events = crowd + [ev("T%d" % k, at(k), "complaint", ref="t")]
            if k > 1:       # the customer before has its complaint resolved
                events.append(ev("T%d" % (k - 1), at(k), "complaint_resolved", ref="t"))
            assert assert_ok(c.request({"cmd": "ingest", "events": events}))["accepted"] == len(events)
            assert firing(c, "T%d" % k) == ["open_now"], k
            if k > 1:
                assert firing(c, "T%d" % (k - 1)) == [], k
            assert firing(c, "K%d-%03d" % (k, 150)) == ["open_now"], k
        listed = assert_ok(c.request({"cmd": "alerts", "limit": 10000}))["alerts"]
        assert sorted(a["customer"] for a in listed if a["rule"] == "open_now") == sorted(
            ["K%d-%03d" % (k, i) for k in range(1, 21) for i in range(300)] + ["T20"])
        assert firing(c, "T19") == [] and firing(c, "T20") == ["open_now"]
