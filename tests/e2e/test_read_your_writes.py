"""Readers beside ingest (issue 14's correctness checks, kept for the core's reader
threads to come): while a producer's batches are acknowledged over ZeroMQ and the
daemon flushes derived state in between, every `customer` and `timeline` answer shows
at least what was acknowledged before the query was sent, and never half a batch."""

import json
import re
import threading
import time

import zmq

from hearthtest import CtlConn, assert_ok, ev, rfc3339

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
