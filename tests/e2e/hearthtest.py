"""Helpers for hearth's end-to-end tests.

Everything here talks to the real binaries from the outside, the way a producer
(ZeroMQ REQ/DEALER), an ops tool (the control socket) or an operator (hearthctl,
hearthd --check) would.  Nothing sleeps to wait for something: every wait is on the
thing itself (a reply, a socket that answers) with a deadline.

Shared by conftest.py and the test modules (pytest puts this directory on sys.path).
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest
import zmq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BUILD = os.environ.get("HEARTH_BUILD", "build")
BUILD = _BUILD if os.path.isabs(_BUILD) else os.path.join(REPO, _BUILD)
HEARTHD = os.path.join(BUILD, "hearthd")
HEARTHCTL = os.path.join(BUILD, "hearthctl")

# Deadlines (seconds) for things that must happen.  Generous, for the ASan+UBSan build on
# a busy 2-core box: a deadline only bounds how long a failing test waits, it never
# measures speed (no test asserts a speed; `make bench` measures them).
START_DEADLINE = 30.0
STOP_DEADLINE = 30.0
REPLY_DEADLINE = 30.0

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")

# A fixed instant well in the past (the daemon rejects ts more than max_future ahead).
BASE_MS = 1709258400000          # 2024-03-01T02:00:00.000Z
HOUR = 3600 * 1000
DAY = 24 * HOUR


def rfc3339(ms):
    """Unix ms -> the daemon's output form: RFC 3339 UTC with milliseconds."""
    secs, milli = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%03dZ" % milli


def now_ms():
    return int(time.time() * 1000)


def require_binary(path):
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (HEARTH_BUILD=%s); run `make` first" % (path, _BUILD))


# --------------------------------------------------------------------------------------
# Configuration (PROTOCOL.md §6)
# --------------------------------------------------------------------------------------

def free_ports(n):
    """n free loopback ports, all different: each socket stays bound until all are picked,
    or the kernel may hand out a port just closed again (two nats-server ports collided)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def short_dir(tmp_path):
    """A directory whose socket paths fit in sun_path (~107 bytes).

    Returns (dir, cleanup_needed)."""
    base = str(tmp_path)
    if len(base) + len("/control.sock") <= 90 and len("ipc://") + len(base) + len("/ingest.sock") <= 96:
        return base, False
    return tempfile.mkdtemp(prefix="h", dir="/tmp"), True


class Config:
    """A generated config file plus the paths in it.

    The YAML is written by hand (no YAML library outside the standard library), one
    key per line, so that tests can know the line and column of every value."""

    def __init__(self, directory, mode="0660", rules_yaml=None, priority=None,
                 max_future="1h", extra_yaml="", heartbeat="5s", retain="7d",
                 interval="60s", load_idle=None):
        self.dir = directory
        self.store = os.path.join(directory, "store")
        self.ingest_sock = os.path.join(directory, "ingest.sock")
        self.alerts_sock = os.path.join(directory, "alerts.sock")
        self.ingest_ep = "ipc://" + self.ingest_sock
        self.alerts_ep = "ipc://" + self.alerts_sock
        self.control = os.path.join(directory, "control.sock")
        self.mode = mode
        self.path = os.path.join(directory, "hearth.yaml")
        # Assumption: the operator (or systemd's StateDirectory=) creates store.path;
        # the daemon is not required to create missing parent directories.
        os.makedirs(self.store, exist_ok=True)
        rules = "rules: []\n" if rules_yaml is None else rules_yaml
        # Assumption: `priority` is an expression (rules come later), so it is left
        # out by default; `score` is then null.
        prio = "" if priority is None else "priority: %s\n" % json.dumps(priority)
        self.text = (
            "# hearth end-to-end test configuration (generated)\n"
            "store:\n"
            "  path: \"%(store)s\"\n"
            "  map_size: 64MiB\n"
            "  max_size: 1GiB\n"
            "ingest:\n"
            "  listen: [\"%(ingest)s\"]\n"
            "  max_future: %(max_future)s\n"
            "publish:\n"
            "  listen: [\"%(alerts)s\"]\n"
            "  heartbeat: %(heartbeat)s\n"
            "  retain: %(retain)s\n"
            "control:\n"
            "  path: \"%(control)s\"\n"
            "  mode: \"%(mode)s\"\n"
            "  admin_groups: []\n"
            "evaluation:\n"
            "  interval: %(interval)s\n"
            "%(load_idle)s"
            "log:\n"
            "  level: info\n"
            "events:\n"
            "  sets:\n"
            "    touch: [contact, call, visit, meeting, message]\n"
            "  cases:\n"
            "    complaint: {open: complaint, close: complaint_resolved}\n"
            "    promise: {open: promise, close: promise_kept, due: due}\n"
            "%(prio)s"
            "%(rules)s"
            "%(extra)s"
        ) % {"store": self.store, "ingest": self.ingest_ep, "alerts": self.alerts_ep,
             "control": self.control, "mode": mode, "max_future": max_future,
             "prio": prio, "rules": rules, "extra": extra_yaml,
             "heartbeat": heartbeat, "retain": retain, "interval": interval,
             "load_idle": "" if load_idle is None else "  load_idle: %s\n" % load_idle}
        self.write()

    def write(self, text=None):
        if text is not None:
            self.text = text
        with open(self.path, "w") as f:
            f.write(self.text)


# --------------------------------------------------------------------------------------
# Control socket (PROTOCOL.md §5)
# --------------------------------------------------------------------------------------

def unix_connect(path, timeout=REPLY_DEADLINE):
    """Connect as a plain blocking client would, but with a deadline.

    A non-blocking AF_UNIX connect fails at once with EAGAIN when the listen backlog is
    full, where a blocking client waits to be accepted; SO_SNDTIMEO bounds that wait."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    secs = int(timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                 struct.pack("ll", secs, int((timeout - secs) * 1e6)))
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    s.settimeout(timeout)
    return s


class CtlConn:
    """One connection to the control socket: lines out, lines in."""

    def __init__(self, path, timeout=REPLY_DEADLINE):
        self.sock = unix_connect(path, timeout)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv_line(self, timeout=REPLY_DEADLINE):
        """The next line, or None at EOF.  Raises socket.timeout after the deadline."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no answer line within %.1fs" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=REPLY_DEADLINE):
        line = self.recv_line(timeout)
        assert line is not None, "control connection closed without an answer"
        try:
            return json.loads(line)
        except ValueError:
            pytest.fail("control answer is not JSON: %r" % line[:200])

    def request(self, obj, timeout=REPLY_DEADLINE):
        self.send(obj)
        return self.recv(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ctl_at(path, obj, timeout=REPLY_DEADLINE):
    with CtlConn(path, timeout) as c:
        return c.request(obj, timeout)


def assert_error(answer, code):
    assert answer.get("ok") is False, answer
    err = answer.get("error")
    assert isinstance(err, dict), answer
    assert err.get("code") == code, answer
    assert isinstance(err.get("message"), str) and err["message"], answer


def assert_ok(answer):
    assert answer.get("ok") is True, answer
    return answer


# --------------------------------------------------------------------------------------
# ZeroMQ ingest (PROTOCOL.md §3)
# --------------------------------------------------------------------------------------

def encode_frame(frame):
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, str):
        return frame.encode()
    return json.dumps(frame).encode()


def zmq_recv(sock, timeout=REPLY_DEADLINE):
    """The next multipart message, or None after the deadline."""
    if sock.poll(int(timeout * 1000), zmq.POLLIN):
        return sock.recv_multipart()
    return None


def dealer_send(sock, frame):
    sock.send_multipart([b"", encode_frame(frame)])


def dealer_recv(sock, timeout=REPLY_DEADLINE):
    msg = zmq_recv(sock, timeout)
    assert msg is not None, "no ingest reply within %.1fs" % timeout
    assert len(msg) == 2 and msg[0] == b"", "DEALER reply must be [empty, reply]: %r" % msg[:3]
    return json.loads(msg[1])


def check_ingest_reply(rep):
    """Shape of a successful ingest reply."""
    assert rep.get("ok") is True, rep
    assert isinstance(rep.get("accepted"), int), rep
    assert isinstance(rep.get("duplicates"), int), rep
    assert isinstance(rep.get("rejected"), list), rep
    for r in rep["rejected"]:
        assert isinstance(r.get("index"), int), rep
        assert isinstance(r.get("code"), str), rep
        assert isinstance(r.get("message"), str), rep
    return rep


# --------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------

class Daemon:
    """A real hearthd, started from a Config, observed from the outside."""

    def __init__(self, config, args=(), stack_limit=None):
        require_binary(HEARTHD)
        self.cfg = config
        self.args = list(args)
        self.stack_limit = stack_limit     # bytes of RLIMIT_STACK, e.g. to prove no deep recursion
        self.proc = None
        self.runs = 0
        self.logs = []
        self.problems = []
        self.ctx = zmq.Context()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        assert self.proc is None, "already running"
        self.runs += 1
        log = os.path.join(self.cfg.dir, "hearthd.%d.log" % self.runs)
        self.logs.append(log)
        self.log = log
        with open(log, "wb") as f:
            self.proc = subprocess.Popen([HEARTHD, "-c", self.cfg.path] + self.args,
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         cwd=self.cfg.dir, preexec_fn=self._limits)
        self.wait_ready()
        return self

    def _limits(self):
        if self.stack_limit is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_STACK, (self.stack_limit, self.stack_limit))

    def wait_ready(self, deadline=START_DEADLINE):
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                pytest.fail("hearthd exited with %s while starting:\n%s" % (rc, self.stderr()))
            try:
                ans = ctl_at(self.cfg.control, {"cmd": "ping"}, timeout=1.0)
                if ans.get("ok") is True:
                    return
                last = ans
            except (OSError, socket.timeout) as e:
                last = e
            time.sleep(0.01)  # polling for "socket appears", with the deadline above
        self.kill9()
        pytest.fail("hearthd did not answer ping within %.0fs (last: %r):\n%s"
                    % (deadline, last, self.stderr()))

    def stderr(self, all_runs=False):
        out = []
        for p in (self.logs if all_runs else self.logs[-1:]):
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def _check_log(self):
        text = self.stderr()
        for m in SANITIZER_MARKERS:
            if m in text:
                self.problems.append("sanitizer report in hearthd log:\n" + text[-8000:])
                return

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), "hearthd died:\n%s" % self.stderr()

    def stop(self, sig=signal.SIGTERM):
        """Clean stop; asserts exit status 0 and no sanitizer report."""
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._check_log()
            pytest.fail("hearthd did not stop within %.0fs of %s:\n%s"
                        % (STOP_DEADLINE, signal.Signals(sig).name, self.stderr()))
        self._check_log()
        assert not self.problems, self.problems[0]
        assert rc == 0, "hearthd exited with %s after %s:\n%s" % (
            rc, signal.Signals(sig).name, self.stderr())

    def kill9(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._check_log()

    def restart(self):
        self.stop()
        return self.start()

    def teardown(self):
        """Called by the fixture: stop if running, then report any problem seen."""
        msg = None
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.terminate()
                try:
                    rc = proc.wait(STOP_DEADLINE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    rc = "timeout"
            else:
                rc = proc.returncode
            self._check_log()
            if rc != 0:
                msg = "hearthd exited with %s at teardown:\n%s" % (rc, self.stderr())
        self.ctx.destroy(linger=0)
        if self.problems:
            msg = self.problems[0]
        return msg

    # -- control -----------------------------------------------------------------------
    def conn(self, timeout=REPLY_DEADLINE):
        return CtlConn(self.cfg.control, timeout)

    def ctl(self, obj, timeout=REPLY_DEADLINE):
        try:
            return ctl_at(self.cfg.control, obj, timeout)
        except (OSError, socket.timeout):
            self.assert_alive()
            raise

    def status(self):
        return assert_ok(self.ctl({"cmd": "status"}))

    def customer(self, cid):
        return assert_ok(self.ctl({"cmd": "customer", "id": cid}))["customer"]

    def timeline_all(self, cid, **args):
        """Every event of a customer, following cursors."""
        out = []
        req = dict({"cmd": "timeline", "id": cid, "limit": 10000}, **args)
        for _ in range(1000):
            ans = assert_ok(self.ctl(req))
            out.extend(ans["events"])
            if not ans.get("cursor"):
                return out
            req["cursor"] = ans["cursor"]
        pytest.fail("timeline cursor never ended")

    # -- ingest ------------------------------------------------------------------------
    def zsock(self, sock_type=zmq.REQ):
        s = self.ctx.socket(sock_type)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.cfg.ingest_ep)
        return s

    def ingest(self, frame, sock_type=zmq.REQ, timeout=REPLY_DEADLINE):
        """Send one frame, return the parsed reply."""
        s = self.zsock(sock_type)
        try:
            if sock_type == zmq.DEALER:
                dealer_send(s, frame)
                return dealer_recv(s, timeout)
            s.send(encode_frame(frame))
            msg = zmq_recv(s, timeout)
            if msg is None:
                self.assert_alive()
                pytest.fail("no ingest reply within %.1fs" % timeout)
            assert len(msg) == 1, msg[:3]
            return json.loads(msg[0])
        finally:
            s.close(0)

    def ingest_ok(self, frame, **kw):
        return check_ingest_reply(self.ingest(frame, **kw))

    # -- test clock, control ingest, subscribers (rules and alerts) -------------------
    def clock_set(self, at):
        """clock.set (needs --test-clock): answers after the tick's notifications are out."""
        return assert_ok(self.ctl({"cmd": "clock.set", "at": at}))

    def clock_advance(self, by):
        return assert_ok(self.ctl({"cmd": "clock.advance", "by": by}))

    def ingest_ctl(self, events):
        """Ingest over the control socket; every event must be accepted."""
        rep = assert_ok(self.ctl({"cmd": "ingest", "events": list(events)}))
        assert rep.get("rejected") == [], rep
        return rep

    def subscribe(self, prefixes=(b"",), live=True):
        """A SUB socket on the alert PUB endpoint; waits for a heartbeat (slow joiner)."""
        sub = Subscriber(self.ctx, self.cfg.alerts_ep, prefixes)
        if live:
            sub.wait_live(self)
        return sub

    def alerts(self, **args):
        return assert_ok(self.ctl(dict({"cmd": "alerts"}, **args)))["alerts"]


# --------------------------------------------------------------------------------------
# hearthctl
# --------------------------------------------------------------------------------------

def hearthctl(args, sock=None, json_out=False, timeout=30, **kw):
    require_binary(HEARTHCTL)
    cmd = [HEARTHCTL]
    if sock is not None:
        cmd += ["-s", sock]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, **kw)


def check_no_sanitizer(proc):
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else (proc.stderr or "")
    for m in SANITIZER_MARKERS:
        assert m not in err, err


# --------------------------------------------------------------------------------------
# Prometheus text exposition
# --------------------------------------------------------------------------------------

_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE_RE = re.compile(
    r"^(%s)(\{(?:%s(?:,%s)*,?)?\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$" % (_METRIC_NAME, _LABEL, _LABEL))
_VALUE_RE = re.compile(r"^(?:[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|[-+]?Inf|NaN)$")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def check_prometheus_text(text):
    """Validate a text exposition: promtool if available, else our own checks.

    Returns the set of metric family names."""
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        # Strict: promtool's lint findings (e.g. a counter without _total) fail too.
        assert p.returncode == 0, (p.stdout + p.stderr).decode()
    helps, types, samples = {}, {}, []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                assert re.match("^%s$" % _METRIC_NAME, parts[2]), "line %d: %r" % (n, line)
                if parts[1] == "HELP":
                    assert parts[2] not in helps, "line %d: second HELP for %s" % (n, parts[2])
                    helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                else:
                    assert len(parts) == 4 and parts[3].strip() in _TYPES, "line %d: %r" % (n, line)
                    assert parts[2] not in types, "line %d: second TYPE for %s" % (n, parts[2])
                    types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE_RE.match(line)
        assert m, "line %d is not `name{labels} value`: %r" % (n, line)
        assert _VALUE_RE.match(m.group(3)), "line %d: bad value %r" % (n, line)
        samples.append((n, m.group(1)))
    assert samples, "no samples in metrics text"
    families = set()
    for n, name in samples:
        fam = name
        if fam not in types:
            for suf in ("_bucket", "_sum", "_count", "_total", "_created", "_info"):
                if name.endswith(suf) and name[: -len(suf)] in types:
                    fam = name[: -len(suf)]
                    break
        assert fam in types, "line %d: sample %s has no # TYPE" % (n, name)
        assert fam in helps, "line %d: sample %s has no # HELP" % (n, name)
        families.add(fam)
    return families


# --------------------------------------------------------------------------------------
# Event builders
# --------------------------------------------------------------------------------------

FIXTURE_018FA58 = os.path.join(REPO, "tests", "fixtures", "store-018fa58")


def load_fixture_store(dump, dest):
    """Writes the LMDB store of a fixture (an mdb_dump text file) into directory dest."""
    os.makedirs(dest, exist_ok=True)
    p = subprocess.run(["mdb_load", "-f", dump, dest], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    # mdb_load 0.9.24 warns about the dump's db_pagesize lines, which it does not need
    assert p.returncode == 0, p.stderr.decode(errors="replace")


def wait_for(pred, what, deadline=30.0):
    """Poll (the daemon, over its control socket) until pred() holds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    pytest.fail("not within %.0fs: %s" % (deadline, what))


def ev(customer, ts, type_, id=None, ref=None, attrs=None):
    e = {"customer": customer, "ts": ts, "type": type_}
    if id is not None:
        e["id"] = id
    if ref is not None:
        e["ref"] = ref
    if attrs is not None:
        e["attrs"] = attrs
    return e


def jsonl(events):
    return "\n".join(json.dumps(e) for e in events).encode()


def run_as_nobody_client(sock_path, requests, timeout=30):
    """Send each request over its own connection as uid/gid 65534; return the answers.

    A connection that cannot be made yields {"connect_error": errno-name}."""
    script = r"""
import json, socket, sys, errno
path, reqs = sys.argv[1], json.loads(sys.argv[2])
out = []
for r in reqs:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(path)
    except OSError as e:
        out.append({"connect_error": errno.errorcode.get(e.errno, str(e.errno))})
        continue
    s.sendall(json.dumps(r).encode() + b"\n")
    buf = b""
    while b"\n" not in buf:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    s.close()
    out.append(json.loads(buf.split(b"\n", 1)[0]) if buf else {"eof": True})
print(json.dumps(out))
"""

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    p = subprocess.run(["/usr/bin/python3", "-c", script, sock_path, json.dumps(requests)],
                       capture_output=True, timeout=timeout, preexec_fn=drop, cwd="/")
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


# --------------------------------------------------------------------------------------
# Rules and alerts (PROTOCOL.md §4, §6, §7)
# --------------------------------------------------------------------------------------

MINUTE = 60 * 1000
SECOND = 1000
# A test-clock origin ahead of the wall clock, so that moving the daemon's clock there
# (and later) only ever moves it forward: a heartbeat's ts then orders it after every
# control answer with an earlier `now` (see Subscriber.sync).
T0_MS = 1925456400000            # 2031-01-06T09:00:00.000Z
ETC_CONFIG = os.path.join(REPO, "etc", "hearth.yaml")


def parse_time(text):
    """The daemon's output time form (RFC 3339 UTC with milliseconds) -> unix ms."""
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$", text)
    assert m, "not an RFC 3339 UTC time: %r" % (text,)
    import calendar
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    frac = (m.group(7) or "0")[:3].ljust(3, "0")
    return secs * 1000 + int(frac)


def etc_section(key, path=ETC_CONFIG):
    """The text of a top-level section of etc/hearth.yaml (from `key:` up to the next
    top-level key), comments included, so line-for-line the shipped rules."""
    with open(path) as f:
        lines = f.read().split("\n")
    out, inside = [], False
    for line in lines:
        if re.match(r"^[a-z_]+:", line):
            inside = line.startswith(key + ":")
        if inside:
            out.append(line)
    assert out, "no %s: in %s" % (key, path)
    return "\n".join(out).rstrip("\n") + "\n"


def etc_priority(path=ETC_CONFIG):
    """The `priority` expression of etc/hearth.yaml."""
    m = re.search(r'^priority:\s*"(.*)"\s*$', open(path).read(), re.M)
    assert m, "no priority in %s" % path
    return m.group(1)


def rule_yaml(name, when, for_="0s", severity="warning", repeat="0s", summary=None,
              labels=None):
    """One rule as a YAML list item (to join under `rules:`)."""
    out = ["  - name: %s" % name, "    when: %s" % json.dumps(when),
           "    for: %s" % for_, "    severity: %s" % severity, "    repeat: %s" % repeat]
    if summary is not None:
        out.append("    summary: %s" % json.dumps(summary))
    if labels:
        out.append("    labels: {%s}" % ", ".join("%s: %s" % (k, json.dumps(v))
                                                 for k, v in labels.items()))
    return "\n".join(out) + "\n"


def rules_yaml(*rules):
    return "rules:\n" + "".join(rules)


class Subscriber:
    """A ZeroMQ SUB on hearthd's PUB socket (PROTOCOL.md §4.3).

    Messages are kept in arrival order: `hb` heartbeats update `last_hb`, every other
    message is queued as (topic, body) for next_alert().  sync() is the way to know
    that nothing more is coming: every message published before a heartbeat arrives
    before it, so once a heartbeat generated after a given daemon instant has arrived,
    everything published up to that instant has been received."""

    def __init__(self, ctx, endpoint, prefixes=(b"",)):
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        prefixes = [p if isinstance(p, bytes) else p.encode() for p in prefixes]
        if not any(b"hb".startswith(p) for p in prefixes):
            prefixes.append(b"hb")
        for p in prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p)
        self.queue = []
        self.received = []              # every alert message, in order
        self.last_hb = None

    def close(self):
        self.sock.close(0)

    def _recv(self, timeout):
        """Receive one message into the queue / heartbeat; False after the deadline."""
        msg = zmq_recv(self.sock, timeout)
        if msg is None:
            return False
        assert len(msg) == 2, "PUB message must be [topic, body]: %r" % (msg[:3],)
        topic = msg[0].decode()
        body = problem = None
        try:
            body = json.loads(msg[1].decode("utf-8"))
        except ValueError as e:
            problem = str(e)
        if problem is not None:
            pytest.fail("PUB body on %r is not UTF-8 JSON (%s): ...%r" % (topic, problem, msg[1][-120:]))
        if topic == "hb":
            assert set(body) >= {"seq", "ts"}, body
            self.last_hb = body
            self.last_hb_mono = time.monotonic()
        else:
            self.queue.append((topic, body))
            self.received.append((topic, body))
        return True

    def wait_live(self, daemon=None, timeout=START_DEADLINE):
        """Wait for a heartbeat: the subscription is then live (slow joiner)."""
        end = time.monotonic() + timeout
        self.last_hb = None
        while self.last_hb is None:
            left = end - time.monotonic()
            if left <= 0:
                if daemon is not None:
                    daemon.assert_alive()
                pytest.fail("no heartbeat within %.1fs (is publish.heartbeat short?)" % timeout)
            self._recv(left)
        return self.last_hb

    def next_alert(self, timeout=REPLY_DEADLINE):
        """The next alert message (topic, body); fails after the deadline."""
        end = time.monotonic() + timeout
        while not self.queue:
            left = end - time.monotonic()
            if left <= 0:
                pytest.fail("no alert message within %.1fs" % timeout)
            self._recv(left)
        return self.queue.pop(0)

    def sync(self, daemon, timeout=REPLY_DEADLINE):
        """Every alert message published up to now (by the daemon's clock), in order,
        taken from the queue.  Waits for a heartbeat stamped after now."""
        now = parse_time(daemon.status()["now"])
        end = time.monotonic() + timeout
        while True:
            if self.last_hb is not None and parse_time(self.last_hb["ts"]) > now:
                break
            left = end - time.monotonic()
            if left <= 0:
                daemon.assert_alive()
                pytest.fail("no heartbeat after %s within %.1fs" % (rfc3339(now), timeout))
            self._recv(left)
        out, self.queue = self.queue, []
        return out

    def quiet(self, daemon):
        """Assert that nothing was published since the last look."""
        got = self.sync(daemon)
        assert got == [], "unexpected notifications: %r" % (got,)


def check_body(topic, body, kind, rule, customer, severity=None):
    """Shape of a PROTOCOL.md §4.4 alert body, and that it is the one expected."""
    assert set(body) >= {"seq", "ts", "kind", "alert", "customer"}, body
    assert body["kind"] == kind, (topic, body)
    a = body["alert"]
    assert set(a) >= {"rule", "customer", "severity", "state", "since", "summary",
                      "labels", "values"}, body
    assert a["rule"] == rule and a["customer"] == customer, body
    assert topic == "alert.%s.%s" % (a["severity"], rule), (topic, body)
    if severity is not None:
        assert a["severity"] == severity, body
    assert a["state"] == ("resolved" if kind == "resolved" else "firing"), body
    assert isinstance(body["seq"], int) and body["seq"] >= 1, body
    parse_time(body["ts"])
    parse_time(a["since"])
    assert body["customer"]["id"] == customer, body
    return body


# What a firing alert says (summary, values, values_at) is rendered when it is read
# (PROTOCOL.md §4.1); the rest is the alert's stored lifecycle.
SAID_NOW = ("summary", "values", "values_at")


def lifecycle(alerts):
    """The alerts of an answer without what a firing alert says at the moment of reading."""
    return [{k: v for k, v in a.items() if a["state"] != "firing" or k not in SAID_NOW}
            for a in alerts]


def alert_key(body):
    return (body["kind"], body["alert"]["rule"], body["alert"]["customer"])


def expect_alerts(sub, daemon, *wanted):
    """Everything published up to now is exactly `wanted`, a set of (kind, rule,
    customer); returns {(kind, rule, customer): body}."""
    got = sub.sync(daemon)
    have = sorted(alert_key(b) for _, b in got)
    assert have == sorted(wanted), "published %r, expected %r:\n%s" % (
        have, sorted(wanted), json.dumps([b for _, b in got], indent=1)[:6000])
    out = {}
    for topic, body in got:
        check_body(topic, body, *alert_key(body))
        out[alert_key(body)] = body
    return out


def expect_soon(sub, kind, rule, customer, within=REPLY_DEADLINE):
    """The next alert message is (kind, rule, customer).

    With --test-clock nothing ticks unless a test moves the clock, so a message that
    arrives at all was published by what the test just did (an ingest, a reload); how
    soon is not asserted, the deadline is only there so that a missing one fails."""
    topic, body = sub.next_alert(within)
    return check_body(topic, body, kind, rule, customer)
