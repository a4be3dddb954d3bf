"""Cluster mode on NATS JetStream (PROTOCOL.md §9, docs/SCALING.md): a real 3-node
nats-server cluster on loopback and two hearthd shards, s0 owning the even and s1
the odd partitions of 16.

What is proved: every event lands on exactly one shard, its owner, and the totals
match what was published; a kill -9 of a shard mid-ingest and its restart lose and
duplicate nothing (events without ids included: the watermark, not the id index,
makes applying exactly-once); a kill -9 of the stream leader mid-ingest loses
nothing while producers publish again with the same Nats-Msg-Id; the alerts stream
has one gapless sequence and each shard's notifications in it once, in seq order,
across a kill -9; a query for any customer is answered by its owner through one
entry point, and status and top are merged from every shard.

Skipped when nats-server is not installed (tools/deps.sh installs it)."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from hearthtest import (BASE_MS, HEARTHCTL, HEARTHD, check_no_sanitizer, ctl_at, require_binary,
                        rule_yaml, rules_yaml)
from natstest import (DEADLINE, PARTITIONS, PASSWORD, USER, NatsClient, NatsCluster,
                      partition_of, require_nats)

EVENTS_STREAM = "HEARTH_EVENTS"
ALERTS_STREAM = "HEARTH_ALERTS"
KILL9_TRIALS = int(os.environ.get("HEARTH_CLUSTER_TRIALS", "1"))


@pytest.fixture(scope="module")
def nats_cluster():
    require_nats()
    d = tempfile.mkdtemp(prefix="hn", dir="/tmp")
    c = NatsCluster(d).start()
    yield c
    c.stop()
    shutil.rmtree(d, ignore_errors=True)


class Deployment:
    """Two shards on a fresh pair of streams, seen from outside."""

    def __init__(self, nats, make_daemon, new_config, rules=None, priority=None):
        self.nats = nats
        self.nc = NatsClient(nats.urls)
        for s in (EVENTS_STREAM, ALERTS_STREAM):
            self.delete_stream(s)
        self.shards = []
        for name, owns in (("s0", range(0, PARTITIONS, 2)), ("s1", range(1, PARTITIONS, 2))):
            cfg = new_config(rules_yaml=rules, priority=priority, extra_yaml=self.cluster_yaml(name, owns))
            self.shards.append(make_daemon(cfg))
        self.nc.wait_stream(EVENTS_STREAM)
        self.nc.wait_stream(ALERTS_STREAM)

    def delete_stream(self, name, deadline=DEADLINE):
        """A fresh stream for each test (the previous test may have just restarted a server)."""
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            try:
                last = self.nc.js_api("STREAM.DELETE." + name, timeout=5)
                if last.get("success") or (last.get("error") or {}).get("err_code") == 10059:
                    return
            except OSError as e:
                last = e
            time.sleep(0.2)
        pytest.fail("cannot delete stream %s: %r" % (name, last))

    def cluster_yaml(self, name, owns):
        return ("cluster:\n"
                "  servers: [%s]\n"
                "  user: %s\n"
                "  password: \"%s\"\n"
                "  shard: %s\n"
                "  partitions: %d\n"
                "  owns: [%s]\n") % (", ".join('"%s"' % u for u in self.nats.urls), USER, PASSWORD,
                                     name, PARTITIONS, ", ".join(str(p) for p in owns))

    def owner(self, customer):
        return self.shards[partition_of(customer) % 2]

    def status(self):
        return [ctl_at(s.cfg.control, {"cmd": "status"}) for s in self.shards]

    def events(self):
        return sum(a["events"] for a in self.status())

    def caught_up(self):
        """Every partition's consumer has handed out and seen acked all it has."""
        for p in range(PARTITIONS):
            info = self.nc.js_api("CONSUMER.INFO.%s.hearth_p%d" % (EVENTS_STREAM, p))
            if "num_pending" not in info or info["num_pending"] or info["num_ack_pending"]:
                return False
        return True

    def wait_total(self, n, deadline=DEADLINE):
        """The shards hold n events once they have applied everything in the stream:
        fewer is a loss, more a duplicate."""
        end = time.monotonic() + deadline
        total = None
        while time.monotonic() < end:
            total = self.events()
            if total >= n and self.caught_up():
                total = self.events()
                break
            time.sleep(0.1)
        assert total == n, "the shards hold %s events, %d were published" % (total, n)

    def hearthctl(self, args, timeout=120):
        require_binary(HEARTHCTL)
        env = dict(os.environ, HEARTH_NATS_USER=USER, HEARTH_NATS_PASSWORD=PASSWORD)
        env.pop("HEARTH_NATS", None)
        return subprocess.run([HEARTHCTL, "--nats", ",".join(self.nats.urls)] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env)

    def close(self):
        self.nc.close()


@pytest.fixture
def deployment(nats_cluster, make_daemon, new_config):
    made = []

    def make(**kw):
        d = Deployment(nats_cluster, make_daemon, new_config, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def event(customer, i, type_="contact", with_id=True, **kw):
    e = {"customer": customer, "ts": BASE_MS + i * 1000, "type": type_}
    if with_id:
        e["id"] = "%s-%d" % (customer, i)
    e.update(kw)
    return e


def write_jsonl(path, events):
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def customers_of(shard):
    ans = ctl_at(shard.cfg.control, {"cmd": "customers", "limit": 10000})
    assert ans["ok"], ans
    return {c["id"] for c in ans["customers"]}


def test_events_land_once_on_their_owner(deployment):
    dep = deployment()
    watcher = NatsClient(dep.nats.urls)
    rejects = watcher.subscribe("hearth.rejects.>")
    watcher.flush()
    ids = ["C%04d" % i for i in range(60)]
    published = 0
    # one event per message on the mapped subject, with and without event ids
    for i in range(240):
        c = ids[i % len(ids)]
        ack = dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, i, with_id=i % 2 == 0)),
                                msg_id="single-%d" % i)
        assert ack["stream"] == EVENTS_STREAM
        published += 1
    # the same event id again in another message: stored once (PROTOCOL.md §2.3)
    dep.nc.js_publish("hearth.in.C0000", json.dumps(event("C0000", 0)), msg_id="again-0")
    # one bad event, and one sent around the mapping to a partition that does not own it
    dep.nc.js_publish("hearth.in.C0001", json.dumps({"customer": "C0001", "ts": "soon", "type": "x"}),
                      msg_id="bad-0")
    stray = "C0002"
    wrong = (partition_of(stray) + 1) % PARTITIONS
    dep.nc.js_publish("hearth.ev.%d.batch" % wrong, json.dumps([event(stray, 999)]), msg_id="stray-0")
    dep.wait_total(published)

    held = [customers_of(s) for s in dep.shards]
    assert not (held[0] & held[1]), "a customer on both shards"
    assert held[0] | held[1] == set(ids)
    for c in ids:
        assert c in held[partition_of(c) % 2], c
        tl = ctl_at(dep.owner(c).cfg.control, {"cmd": "timeline", "id": c, "limit": 1000})
        assert len(tl["events"]) == 4, (c, tl)      # 240 events over 60 customers

    # both rejections were reported, with the message they came in
    seen = {}
    for _ in range(2):
        m = watcher.next_msg(rejects, timeout=30)
        r = json.loads(m["data"])
        seen[r["msg_id"]] = r
        assert m["subject"] == "hearth.rejects.%d" % r["partition"]
    assert seen["bad-0"]["rejected"][0]["code"] in ("bad_field", "bad_json"), seen
    assert seen["stray-0"]["rejected"][0]["code"] == "bad_field"
    assert "partition %d" % partition_of(stray) in seen["stray-0"]["rejected"][0]["message"]
    metrics = [ctl_at(s.cfg.control, {"cmd": "metrics"})["text"] for s in dep.shards]
    rejected = sum(float(line.split()[-1]) for t in metrics for line in t.splitlines()
                   if line.startswith("hearth_cluster_events_rejected_total"))
    assert rejected == 2

    # any customer, one entry point: the request on its partition's subject reaches its owner
    for c in ids[:10]:
        m = dep.nc.request("hearth.ctl.p.%d" % partition_of(c), json.dumps({"cmd": "customer", "id": c}))
        ans = json.loads(m["data"])
        assert ans["ok"] and ans["customer"]["id"] == c and ans["shard"] == "s%d" % (partition_of(c) % 2)
    # state changes are refused over NATS (admins use the control socket)
    m = dep.nc.request("hearth.ctl.p.%d" % partition_of("C0003"), json.dumps({"cmd": "forget", "id": "C0003"}))
    assert json.loads(m["data"])["error"]["code"] == "forbidden"
    watcher.close()


def test_hearthctl_import_and_one_entry_point(deployment, tmp_path):
    dep = deployment(priority="count(contact, 36500d)")
    # customer k has k+1 events: distinct scores, so the true top is known
    events = [event("K%03d" % k, k * 1000 + j) for k in range(80) for j in range(k + 1)]
    path = str(tmp_path / "history.jsonl")
    write_jsonl(path, events)
    r = dep.hearthctl(["--json", "import", path])
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["published"] == len(events) and out["rejected"] == 0
    dep.wait_total(len(events))

    # one customer: its owner answers, whichever shard that is
    for k in (0, 1, 7, 42, 79):
        c = "K%03d" % k
        r = dep.hearthctl(["--json", "customer", c])
        assert r.returncode == 0, r.stderr.decode()
        ans = json.loads(r.stdout)
        assert ans["customer"]["events"] == k + 1
        assert ans["shard"] == "s%d" % (partition_of(c) % 2)
    r = dep.hearthctl(["customer", "NOBODY"])
    assert r.returncode == 1 and b"not_found" in r.stderr

    # deployment-wide: counts added over every shard
    r = dep.hearthctl(["--json", "status"])
    assert r.returncode == 0, r.stderr.decode()
    st = json.loads(r.stdout)
    assert st["complete"] is True
    assert st["customers"] == 80 and st["events"] == len(events)
    assert sorted(s["shard"] for s in st["shards"]) == ["s0", "s1"]

    # a merged top is the true top: K079, K078, ...
    r = dep.hearthctl(["--json", "top", "--n", "5"])
    assert r.returncode == 0, r.stderr.decode()
    top = [row["id"] for row in json.loads(r.stdout)["customers"]]
    assert top == ["K%03d" % k for k in (79, 78, 77, 76, 75)]


def test_import_is_one_quiet_load_on_every_shard(deployment, tmp_path):
    """import --nats sends a history load (PROTOCOL.md §3.6) and its end on every partition:
    each shard evaluates the deferred customers once, against their whole history, and
    the import returns when that is done. A complaint resolved later in the file never
    fires; one left open fires once."""
    dep = deployment(rules=rules_yaml(rule_yaml("complaint_open", "open(complaint) > 0")))
    events, still_open = [], []
    for k in range(40):
        c = "Q%03d" % k
        events.append(event(c, 2 * k, "complaint", ref="R%d" % k))
        if k % 2:
            still_open.append(c)
        else:
            events.append(event(c, 2 * k + 1, "complaint_resolved", ref="R%d" % k))
    path = str(tmp_path / "history.jsonl")
    write_jsonl(path, events)
    r = dep.hearthctl(["--json", "import", path])
    assert r.returncode == 0, r.stderr.decode()
    # returned: both shards applied the load and its end, and evaluated what it deferred
    for a in dep.status():
        assert a["deferred"] == 0 and a["load_ending"] is False, a
    assert dep.events() == len(events)
    assert sum(a["seq"] for a in dep.status()) == len(still_open)
    r = dep.hearthctl(["--json", "watch", "--after", "0", "--count", str(len(still_open))], timeout=90)
    assert r.returncode == 0, r.stderr.decode()
    got = [json.loads(line)["body"] for line in r.stdout.decode().splitlines()]
    assert sorted(b["alert"]["customer"] for b in got) == still_open
    assert {b["kind"] for b in got} == {"firing"}
    assert {json.loads(line)["shard"] for line in r.stdout.decode().splitlines()} == {"s0", "s1"}
    # the firing alerts of the deployment, asked once
    r = dep.hearthctl(["--json", "alerts"])
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(a["customer"] for a in json.loads(r.stdout)["alerts"]) == still_open


def publish_batches(nc, batches, state):
    """A producer: each batch one message with its own Nats-Msg-Id, published again
    with the same id until a PubAck comes."""
    for n, (partition, events) in enumerate(batches):
        nc.js_publish("hearth.ev.%d.batch" % partition, json.dumps(events), msg_id="b-%d" % n,
                      deadline=DEADLINE)
        state["sent"] = n + 1


def make_batches(n_customers, per_batch, n_batches, tag):
    """Events without ids: a duplicate would be stored twice and counted."""
    by_part = {}
    for k in range(n_customers):
        by_part.setdefault(partition_of("%s%04d" % (tag, k)), []).append("%s%04d" % (tag, k))
    parts = sorted(by_part)
    out = []
    for b in range(n_batches):
        p = parts[b % len(parts)]
        custs = by_part[p]
        out.append((p, [event(custs[(b + i) % len(custs)], b * per_batch + i, with_id=False)
                        for i in range(per_batch)]))
    return out


@pytest.mark.parametrize("trial", range(KILL9_TRIALS))
def test_shard_kill9_mid_ingest_loses_and_duplicates_nothing(deployment, trial):
    dep = deployment()
    batches = make_batches(200, 50, 160, "S")
    total = sum(len(ev) for _, ev in batches)
    state = {"sent": 0}
    producer = threading.Thread(target=publish_batches, args=(NatsClient(dep.nats.urls), batches, state))
    producer.start()
    victim = dep.shards[0]
    # kill -9 once s0 has applied part of what came: mid-ingest
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and ctl_at(victim.cfg.control, {"cmd": "status"})["events"] == 0:
        time.sleep(0.02)
    victim.kill9()
    time.sleep(0.2)              # the producer goes on while the shard is down
    victim.start()
    producer.join(DEADLINE * 2)
    assert not producer.is_alive() and state["sent"] == len(batches)
    dep.wait_total(total)
    assert "consuming hearth.ev." in victim.stderr()


def test_full_store_stops_its_partitions_and_skips_nothing(deployment):
    """A shard whose store is full applies nothing, acks nothing and moves no watermark:
    restarted with room, it applies every event the stream holds for it, once."""
    dep = deployment()
    victim = dep.shards[0]
    victim.stop()
    victim.cfg.write(victim.cfg.text.replace("  map_size: 64MiB\n  max_size: 1GiB\n",
                                             "  map_size: 1MiB\n  max_size: 1MiB\n"))
    victim.start()
    batches = make_batches(400, 50, 200, "M")
    for _, evs in batches:           # 10,000 events of ~1 KiB: more than 1 MiB for each shard
        for e in evs:
            e["attrs"] = {"note": "x" * 1000}
    total = sum(len(ev) for _, ev in batches)
    publish_batches(dep.nc, batches, {"sent": 0})
    end = time.monotonic() + DEADLINE
    while "fetched again" not in victim.stderr() and time.monotonic() < end:
        time.sleep(0.1)
    assert "fetched again" in victim.stderr(), victim.stderr()
    victim.stop()
    victim.cfg.write(victim.cfg.text.replace("  map_size: 1MiB\n  max_size: 1MiB\n",
                                             "  map_size: 64MiB\n  max_size: 1GiB\n"))
    victim.start()
    dep.wait_total(total)


def test_stream_leader_kill9_loses_nothing(deployment, nats_cluster):
    dep = deployment()
    batches = make_batches(200, 50, 120, "L")
    total = sum(len(ev) for _, ev in batches)
    state = {"sent": 0}
    producer = threading.Thread(target=publish_batches, args=(NatsClient(dep.nats.urls), batches, state))
    producer.start()
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and state["sent"] < 20:
        time.sleep(0.02)
    leader = nats_cluster.stream_leader(EVENTS_STREAM)
    assert leader is not None
    leader.kill9()
    try:
        producer.join(DEADLINE * 2)
        assert not producer.is_alive() and state["sent"] == len(batches)
        dep.wait_total(total)
    finally:
        leader.start()           # whole again for the module's other tests
        nats_cluster.wait_ready()


def test_alerts_stream_one_sequence_no_gap(deployment):
    rules = rules_yaml(rule_yaml("complaint_open", "open(complaint) > 0"))
    dep = deployment(rules=rules)
    custs = ["A%03d" % k for k in range(30)]
    half = len(custs) // 2
    for k, c in enumerate(custs[:half]):
        dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, k, "complaint")), msg_id="a-%d" % k)
    # a shard killed while it has notifications to drain republishes none of them twice
    dep.shards[1].kill9()
    for k, c in enumerate(custs[half:], half):
        dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, k, "complaint")), msg_id="a-%d" % k)
    dep.shards[1].start()
    dep.wait_total(len(custs))

    r = dep.hearthctl(["--json", "watch", "--after", "0", "--count", str(len(custs))], timeout=90)
    assert r.returncode == 0, r.stderr.decode()
    got = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [g["stream_seq"] for g in got] == list(range(1, len(custs) + 1)), "a gap in the alerts stream"
    assert sorted(g["body"]["alert"]["customer"] for g in got) == custs
    for shard in ("s0", "s1"):
        seqs = [g["shard_seq"] for g in got if g["shard"] == shard]
        assert seqs == list(range(1, len(seqs) + 1)), (shard, seqs)
        for g in got:
            if g["shard"] == shard:
                assert g["body"]["seq"] == g["shard_seq"]
    # nothing more: the stream holds exactly one message per notification
    info = dep.nc.js_api("STREAM.INFO." + ALERTS_STREAM)
    assert info["state"]["messages"] == len(custs)


CLUSTER_OK = ("cluster:\n"
              "  servers: [\"nats://127.0.0.1:4222\"]\n"
              "  user: hearth\n"
              "  password: \"pw\"\n"
              "  shard: s0\n"
              "  partitions: 8\n"
              "  owns: [0, 1, 2, 3]\n")


@pytest.mark.parametrize("old,new,needle", [
    ("  owns: [0, 1, 2, 3]\n", "  owns: [0, 1, 9]\n", "9]"),
    ("  owns: [0, 1, 2, 3]\n", "  owns: [0, 1, 1]\n", "1]"),
    ("  shard: s0\n", "  shard: \"Shard 0\"\n", "\"Shard 0\""),
    ("  partitions: 8\n", "  partitions: zero\n", "zero"),
    ("  user: hearth\n  password: \"pw\"\n", "", "servers:"),     # a section's errors: its first key
    ("  shard: s0\n", "  shard: s0\n  replica: 3\n", "replica:"),
])
def test_cluster_config_errors_name_their_place(new_config, old, new, needle):
    """`cluster:` is checked like every section: each mistake as file:line:col (no NATS needed)."""
    from test_config import assert_config_error_at, hearthd
    cfg = new_config(extra_yaml=CLUSTER_OK)
    p = hearthd("--check", "-c", cfg.path)
    assert p.returncode == 0, p.stderr.decode()
    cfg.write(cfg.text.replace(old, new))
    assert_config_error_at(cfg, needle)


def test_shard_starts_and_stops_without_nats(make_daemon, new_config):
    """No NATS server reachable: the shard serves its control socket, retries in the
    background and stops promptly (no NATS needed for this test)."""
    from hearthtest import free_port
    cfg = new_config(extra_yaml=CLUSTER_OK.replace("4222", str(free_port())))
    d = make_daemon(cfg)
    assert ctl_at(cfg.control, {"cmd": "ping"})["ok"]
    d.stop()                               # within the harness's stop deadline, exit 0
    assert "no NATS server reachable yet" in d.stderr()


def test_relay_follows_the_alerts_stream(deployment, tmp_path):
    """hearth-relay with source.nats delivers every notification of every shard once,
    in the stream's order, across a restart of the relay (PROTOCOL.md §9.5)."""
    from test_relay import RELAY, Hook, target_yaml
    require_binary(RELAY)
    dep = deployment(rules=rules_yaml(rule_yaml("complaint_open", "open(complaint) > 0")))
    hook = Hook()
    conf = str(tmp_path / "relay.yaml")
    with open(conf, "w") as f:
        f.write("source:\n  nats: %s\n  user: %s\n  password: %s\nstate: %s\nlog: {level: debug}\n"
                "targets:\n%s" % (json.dumps(",".join(dep.nats.urls)), USER, json.dumps(PASSWORD),
                                  json.dumps(str(tmp_path / "state")),
                                  target_yaml("raw", "webhook", hook.url)))
    runs = []

    def start():
        log = str(tmp_path / ("relay.%d.log" % len(runs)))
        runs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen([RELAY, "-c", conf], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        end = time.monotonic() + DEADLINE
        while "source, following stream" not in open(log).read():
            assert proc.poll() is None and time.monotonic() < end, open(log).read()
            time.sleep(0.05)
        return proc

    def stop(proc):
        proc.terminate()
        assert proc.wait(DEADLINE) == 0, open(runs[-1]).read()

    def complaints(first, n):
        for k in range(first, first + n):
            c = "R%03d" % k
            dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, k, "complaint", ref="r")),
                              msg_id="relay-%d" % k)

    try:
        proc = start()
        complaints(0, 6)
        hook.wait(6)
        stop(proc)
        complaints(6, 6)             # while the relay is down
        dep.wait_total(12)
        proc = start()
        hook.wait(12)
        stop(proc)
    finally:
        hook.close()
    bodies = [g["json"] for g in hook.ok()]
    assert [b["seq"] for b in bodies] == list(range(1, 13)), "each stream seq once, in order"
    assert sorted(b["alert"]["customer"] for b in bodies) == ["R%03d" % k for k in range(12)]
    assert {b["shard"] for b in bodies} == {"s0", "s1"}
    for shard in ("s0", "s1"):
        own = [b["shard_seq"] for b in bodies if b["shard"] == shard]
        assert own == list(range(1, len(own) + 1)), (shard, own)
    for log in runs:
        text = open(log).read()
        for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
            assert m not in text, text[-4000:]


def test_store_keeps_its_partition_count(make_daemon, new_config):
    """Another cluster.partitions would move customers between partitions: a store
    filled with N refuses to start with another N (no NATS needed)."""
    from hearthtest import free_port
    cfg = new_config(extra_yaml=CLUSTER_OK.replace("4222", str(free_port())))
    d = make_daemon(cfg)
    d.stop()
    cfg.write(cfg.text.replace("  partitions: 8\n", "  partitions: 4\n"))
    p = subprocess.run([HEARTHD, "-c", cfg.path], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    check_no_sanitizer(p)
    assert p.returncode == 1, p.stderr.decode()
    assert b"cluster.partitions is 4 but this store was filled with 8 partitions" in p.stderr


# --------------------------------------------------------------------------------------
# hearth-web in front of the cluster (docs/WEB.md, `nats:`): the same entry point
# --------------------------------------------------------------------------------------

def web_for(dep, directory, timeout="2s"):
    """A real hearth-web whose web.yaml names the cluster instead of a control socket."""
    from test_web import Web
    web = Web(directory, "unused")
    with open(web.path, "w") as f:
        f.write("web:\n  listen: \"127.0.0.1:1\"\n"
                "nats:\n  url: [%s]\n  user: %s\n  password: \"%s\"\n  partitions: %d\n"
                "control:\n  timeout: %s\nlog:\n  level: debug\n"
                % (", ".join('"%s"' % u for u in dep.nats.urls), USER, PASSWORD, PARTITIONS, timeout))
    return web.start()


def web_get(web, path):
    """(status, JSON body). Generous: the answer must come, how fast is not asserted."""
    from test_web import http
    status, _, body = http(web.base + path, timeout=120)
    return status, json.loads(body)


def shard_page_sees_partial(web, missing):
    """The page, in Chromium when it is installed: the warning names the missing partitions."""
    try:
        from test_web import CHROMIUM, CHROMEDRIVER, close_browser, make_browser, open_page, wait_js
        import selenium  # noqa: F401
    except ImportError:
        return
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return
    driver = make_browser(lang="en-US")
    try:
        open_page(driver, web.base + "/")
        wait_js(driver, "return !document.getElementById('partial').hidden", "the partial-answer warning")
        text = driver.find_element("id", "partial").text
        assert "Partitions " + ", ".join(str(p) for p in missing) in text, text
        assert driver.find_element("id", "banner").get_attribute("hidden") is not None
    finally:
        close_browser(driver)


def test_web_through_nats(deployment, tmp_path):
    """hearth-web with `nats:` serves every shard's customers over HTTP: one customer's
    pages from its owner, lists and views merged from both shards; with a shard stopped
    the pages still answer, its customers' pages with the unreachable banner's 503, the
    others with a warning that names its partitions."""
    dep = deployment(rules=rules_yaml(rule_yaml("complaint_open", "open(complaint) > 0")),
                     priority="count(contact, 36500d)")
    names = ["W%03d" % i for i in range(200)]
    on = {0: [c for c in names if partition_of(c) % 2 == 0][:3], 1: [c for c in names if partition_of(c) % 2][:3]}
    custs = on[0] + on[1]
    complaining = [on[0][0], on[1][0]]
    published = 0
    for k, c in enumerate(custs):
        for j in range(k + 1):              # distinct counts: a known ranking
            dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, 10 * k + j)), msg_id="w-%s-%d" % (c, j))
            published += 1
        if c in complaining:
            dep.nc.js_publish("hearth.in." + c, json.dumps(event(c, 10 * k + 9, "complaint", ref="R" + c)),
                              msg_id="w-%s-complaint" % c)
            published += 1
    dep.wait_total(published)
    web = web_for(dep, str(tmp_path))
    try:
        # one customer: its owner answers, on either shard
        for k, c in enumerate(custs):
            status, body = web_get(web, "/api/customer/" + c)
            assert status == 200, body
            assert body["customer"]["id"] == c and body["shard"] == "s%d" % (partition_of(c) % 2)
            status, view = web_get(web, "/api/view/customer/" + c)
            assert status == 200, view
            assert view["customer"]["id"] == c and len(view["events"]) == view["customer"]["events"]
            assert "missing_partitions" not in view
        status, body = web_get(web, "/api/customer/NOBODY")
        assert status == 404 and body["error"]["code"] == "not_found"

        # deployment-wide: merged from both shards
        status, body = web_get(web, "/api/alerts?state=firing")
        assert status == 200 and body["complete"] is True, body
        assert sorted(a["customer"] for a in body["alerts"]) == sorted(complaining)
        status, body = web_get(web, "/api/customers")
        assert status == 200 and body["complete"] is True
        assert sorted(c["id"] for c in body["customers"]) == sorted(custs)
        status, body = web_get(web, "/api/status")
        assert body["customers"] == len(custs) and sorted(s["shard"] for s in body["shards"]) == ["s0", "s1"]
        status, view = web_get(web, "/api/view/today")
        assert status == 200 and "missing_partitions" not in view, view
        assert [r["id"] for r in view["rows"]] == list(reversed(custs))     # ranked by events
        assert view["funnel"]["watched"] == len(custs) and view["funnel"]["tracked"] == 2
        status, view = web_get(web, "/api/view/alerts")
        assert status == 200 and sorted(a["customer"] for a in view["firing"]) == sorted(complaining)
        status, body = web_get(web, "/api/rules")
        assert status == 200 and [r["name"] for r in body["rules"]][:1] == ["complaint_open"]

        # s1 stops: its partitions are missing, the page answers and says so
        dep.shards[1].stop()
        odd = list(range(1, PARTITIONS, 2))
        status, view = web_get(web, "/api/view/today")
        assert status == 200, view
        assert view["missing_partitions"] == odd
        assert [r["id"] for r in view["rows"]] == list(reversed(on[0]))
        status, body = web_get(web, "/api/alerts?state=firing")
        assert status == 200 and body["complete"] is False and body["missing_partitions"] == odd
        assert [a["customer"] for a in body["alerts"]] == [on[0][0]]
        status, view = web_get(web, "/api/view/alerts")
        assert status == 200 and view["missing_partitions"] == odd
        status, view = web_get(web, "/api/view/customer/" + on[0][1])
        assert status == 200 and view["customer"]["id"] == on[0][1]
        status, body = web_get(web, "/api/view/customer/" + on[1][1])
        assert status == 503 and body["error"]["code"] == "unreachable", body
        assert "partition %d" % partition_of(on[1][1]) in body["error"]["message"], body
        shard_page_sees_partial(web, odd)
        assert "control, partition" in web.log_text()
    finally:
        web.stop()
