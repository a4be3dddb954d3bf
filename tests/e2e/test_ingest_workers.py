"""An ingest group's customers evaluated by the workers (PROTOCOL.md §5.10, status
`ingest_evaluated_by_workers`), and by the writer beside them once its fold is done
(`ingest_evaluated_beside_workers`), raise what the writer alone raises.

The same recorded scenario (the backtest's: customers of every tier calling, buying,
complaining, promising over 100 days) goes into two `hearthd --test-clock` with the
clock at its end: into one as a single frame, whose group of 150 customers the workers
evaluate, into the other one customer per frame, groups the writer evaluates alone.
Every notification (rule, customer, kind, moment, what it says) and every alert must
be the same, then again after the clock has moved on a week (the deadlines and memos
the workers left, proven by the ticks that follow), after a second wave of calls and
complaints onto the stored alert states, and two weeks after that. The test
clock runs on from where it is set (each frame is sent right after setting it), so
moments are compared to the minute and durations to the hour.
"""

import json
import re

import pytest

from hearthtest import DAY, HOUR, MINUTE, T0_MS, Config, Daemon, assert_ok, etc_priority, ev, rfc3339, short_dir
from test_backtest import RULES, SPAN_DAYS, scenario

CUSTOMERS = 150


def start(tmp_path_factory, name):
    directory, _ = short_dir(tmp_path_factory.mktemp(name))
    d = Daemon(Config(directory, rules_yaml=RULES, priority=etc_priority(), heartbeat="100ms",
                      interval="1h", retain="400d"), ["--test-clock"])
    return d.start()


def skeleton(value, key=None):
    """What a notification or alert says, without what the running clock moves by some ms:
    moments to the minute, durations to the hour, the figures in summaries."""
    if isinstance(value, dict):
        return {k: skeleton(v, k) for k, v in value.items() if k != "seq"}
    if isinstance(value, str) and key == "summary":
        return re.sub(r"\d+", "#", value)
    if isinstance(value, str):
        return re.sub(r"(\d{4}-\d\d-\d\dT\d\d:\d\d):\d\d\.\d{3}Z", r"\1", value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) >= 1000:
        return round(value / HOUR)
    return value


def said(items):
    return sorted(json.dumps(skeleton(x), sort_keys=True, ensure_ascii=False) for x in items)


def notifications(d):
    out, after = [], 0
    while True:
        page = assert_ok(d.ctl({"cmd": "replay", "after": after, "limit": 10000}))["notifications"]
        if not page:
            return said(out)
        out += page
        after = page[-1]["seq"]


def alerts(d):
    return said(d.alerts(state="all", limit=10000))


def by_customer(events):
    frames = {}
    for e in events:
        frames.setdefault(e["customer"], []).append(e)
    return list(frames.values())


@pytest.fixture
def pair(tmp_path_factory):
    daemons = [start(tmp_path_factory, "workers"), start(tmp_path_factory, "writer")]
    yield daemons
    problems = [p for p in (d.teardown() for d in daemons) if p]
    if problems:
        pytest.fail("; ".join(problems))


def ingest_both(pair, events, at):
    """All in one frame into the first daemon, one customer per frame into the second."""
    workers, writer = pair
    workers.clock_set(rfc3339(at))
    workers.ingest_ok(events)
    for frame in by_customer(events):
        writer.clock_set(rfc3339(at))
        writer.ingest_ok(frame)


def move_on(pair, start, days):
    """Ticks every 6 hours and a minute, from half an hour past: no tick falls a whole
    number of hours after the ingest or after another tick. What a tick or an ingest
    schedules (a repeat a day on, a `for` two days on) is due a few ms after that
    moment, as the test clock ran on from it; a tick at that very minute would find it
    due in one daemon and not yet in the other."""
    for k in range(1, days * 4 + 1):
        for d in pair:
            d.clock_set(rfc3339(start + k * (6 * HOUR + MINUTE) + HOUR // 2))


def lent(d):
    """Customers of ingest groups evaluated by the workers or beside them."""
    s = d.status()
    return s["ingest_evaluated_by_workers"] + s["ingest_evaluated_beside_workers"]


def wave(at, tag):
    """A call or a complaint from every customer, a second apart, the last at `at`."""
    out = [ev("B%02d" % n, at - n * 1000, "complaint" if n % 3 == 0 else "call", id="%s-%d" % (tag, n),
              ref=tag if n % 3 == 0 else None) for n in range(CUSTOMERS)]
    for e in out:
        e["ts"] = rfc3339(e["ts"])
    return out


def same(pair):
    workers, writer = pair
    raised = notifications(writer)
    assert notifications(workers) == raised
    assert alerts(workers) == alerts(writer)
    return len(raised)


def test_a_group_the_workers_evaluate_raises_what_the_writer_alone_raises(pair):
    workers, writer = pair
    end = T0_MS + SPAN_DAYS * DAY
    ingest_both(pair, scenario(seed=11, customers=CUSTOMERS), end)
    # the one group went to the workers (customers whose rules read the timeline aside)
    assert lent(workers) >= CUSTOMERS // 2
    assert lent(writer) == 0
    raised = same(pair)
    assert raised > 20, "the scenario raises alerts as soon as it is ingested"

    move_on(pair, end, 7)
    assert same(pair) > raised, "time alone raises more"

    # a second wave onto stored alert states: calls settle some, complaints open others
    later = end + 7 * DAY + HOUR
    before = lent(workers)
    ingest_both(pair, wave(later, "w"), later)
    assert lent(workers) >= before + CUSTOMERS // 2
    raised = same(pair)
    assert raised > 0
    assert any('"resolved"' in n for n in notifications(writer))

    move_on(pair, later, 14)
    assert same(pair) > raised


def test_what_the_writer_evaluates_beside_the_workers_is_what_it_raises_alone(pair):
    """Once its fold is done, the writer takes lent customers the workers have not taken
    yet rather than wait for them. Which ones it gets depends on timing: waves go in
    until it has taken some (on two cores, the first group), then everything raised
    must be the same as the writer alone raised. Workers that keep up with every fold
    (many idle cores) leave it nothing: the test says so and skips."""
    workers, writer = pair
    at = T0_MS + SPAN_DAYS * DAY
    ingest_both(pair, scenario(seed=5, customers=CUSTOMERS), at)
    for k in range(40):
        if workers.status()["ingest_evaluated_beside_workers"] > 0:
            break
        at += HOUR
        ingest_both(pair, wave(at, "s%d" % k), at)
    if workers.status()["ingest_evaluated_beside_workers"] == 0:
        pytest.skip("the workers kept up with 40 folds: the writer never had a share to take")
    assert writer.status()["ingest_evaluated_beside_workers"] == 0
    assert same(pair) > 20
    move_on(pair, at, 3)
    same(pair)
