"""hearthd under systemd, from the outside (issue: run as a real systemd service).

A datagram socket stands in for systemd's NOTIFY_SOCKET; systemd-socket-activate
hands over the control socket; `make install` into a scratch root is checked with
systemd-analyze verify and security."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from hearthtest import HEARTHD, REPO as ROOT, Config, assert_ok, ctl_at, short_dir

DEADLINE = 30.0        # generous: a busy machine; deadlines never measure speed


class NotifyListener:
    """Collects sd_notify datagrams the way systemd's NOTIFY_SOCKET does."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.arrived = []               # time.monotonic() when each message was received
        self.last_arrived = None        # ... of the one wait_for returned last

    def wait_for(self, key, deadline=DEADLINE):
        """Returns the first message, not seen before, holding key."""
        end = time.monotonic() + deadline
        for i, m in enumerate(self.messages):
            if key in m and not getattr(self, "_taken", set()).__contains__(i):
                self._mark(i)
                return m
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(data)
            self.arrived.append(time.monotonic())
            if key in data:
                self._mark(len(self.messages) - 1)
                return data
        raise AssertionError("no %r notification within %ss; got %r" % (key, deadline, self.messages))

    def _mark(self, i):
        taken = getattr(self, "_taken", set())
        taken.add(i)
        self._taken = taken
        self.last_arrived = self.arrived[i]

    def close(self):
        self.sock.close()


def start_daemon(cfg, env_extra, args=()):
    env = dict(os.environ)
    env.update(env_extra)
    log = open(os.path.join(cfg.dir, "hearthd.log"), "wb")
    proc = subprocess.Popen([HEARTHD, "-c", cfg.path] + list(args), env=env, stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL, cwd=cfg.dir)
    return proc, log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE) == 0


def test_notify_ready_status_watchdog_reload_stopping(tmp_path):
    d = short_dir(tmp_path)[0]
    cfg = Config(d)
    listener = NotifyListener(os.path.join(d, "notify.sock"))
    # 300 ms watchdog: hearthd must ping every 150 ms from its loop
    proc, log = start_daemon(cfg, {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "300000"})
    try:
        listener.wait_for("READY=1")
        # READY means every socket is bound: the control socket answers at once
        assert_ok(ctl_at(cfg.control, {"cmd": "ping"}))
        listener.wait_for("STATUS=")
        # pings keep coming, at a sub-second cadence: a busy machine may stretch single
        # gaps, so wait (with a deadline) for two pings under 1s apart, which a daemon
        # pinging every few seconds (systemd would kill it) never shows
        ping = []
        end = time.monotonic() + DEADLINE
        while len(ping) < 4 or min(b - a for a, b in zip(ping, ping[1:])) >= 1.0:
            assert time.monotonic() < end, "no two WATCHDOG=1 under 1s apart: %r" % (
                [round(b - a, 3) for a, b in zip(ping, ping[1:])],)
            listener.wait_for("WATCHDOG=1")
            ping.append(listener.last_arrived)
        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1")
        assert "MONOTONIC_USEC=" in reloading
        listener.wait_for("READY=1")
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1")
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
        log.close()


def test_without_watchdog_no_pings(tmp_path):
    d = short_dir(tmp_path)[0]
    cfg = Config(d)
    listener = NotifyListener(os.path.join(d, "notify.sock"))
    proc, log = start_daemon(cfg, {"NOTIFY_SOCKET": listener.path})
    try:
        listener.wait_for("READY=1")
        with pytest.raises(AssertionError):
            listener.wait_for("WATCHDOG=1", deadline=0.5)
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
        log.close()


def test_socket_activation_control(tmp_path):
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate is not installed")
    d = short_dir(tmp_path)[0]
    cfg = Config(d)
    passed = os.path.join(d, "activated.sock")
    log = open(os.path.join(d, "hearthd.log"), "wb")
    proc = subprocess.Popen([activate, "-l", passed, "--fdname=control", HEARTHD, "-c", cfg.path],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=d)
    try:
        # the socket file appears at bind(), a moment before systemd-socket-activate
        # listens on it: until then a connect is refused, so try until one is taken
        end = time.monotonic() + DEADLINE
        while True:
            try:
                # the first connection starts hearthd, which answers on the passed socket
                ans = ctl_at(passed, {"cmd": "ping"})
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)
        assert_ok(ans)
        # and it did not bind control.path of its config
        assert not os.path.exists(cfg.control)
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def install_root(tmp_path):
    root = str(tmp_path / "root")
    subprocess.run(["make", "-s", "install", "DESTDIR=" + root, "PREFIX=/usr"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    return root


def unit_dir(root):
    for cand in ("lib/systemd/system", "usr/lib/systemd/system"):
        if os.path.exists(os.path.join(root, cand, "hearthd.service")):
            return os.path.join(root, cand)
    raise AssertionError("hearthd.service was not installed")


def test_install_layout(tmp_path):
    root = install_root(tmp_path)
    units = unit_dir(root)
    for f in ("usr/sbin/hearthd", "usr/bin/hearthctl", "usr/sbin/hearth-relay",
              "etc/hearth/hearth.yaml", "usr/share/man/man8/hearthd.8",
              "usr/share/man/man1/hearthctl.1", "usr/share/man/man5/hearth.yaml.5",
              "usr/share/man/man8/hearth-relay.8"):
        assert os.path.exists(os.path.join(root, f)), f
    assert os.path.exists(os.path.join(units, "hearthd.socket"))
    service = open(os.path.join(units, "hearthd.service")).read()
    assert "ExecStart=/usr/sbin/hearthd -c /etc/hearth/hearth.yaml" in service
    # the installed config uses the server layout and is valid
    installed = open(os.path.join(root, "etc/hearth/hearth.yaml")).read()
    assert "/var/lib/hearth" in installed and "/run/hearth/control.sock" in installed
    # an existing config is never overwritten
    with open(os.path.join(root, "etc/hearth/hearth.yaml"), "a") as f:
        f.write("# operator's edit\n")
    install_root(tmp_path)
    assert "# operator's edit" in open(os.path.join(root, "etc/hearth/hearth.yaml")).read()
    if shutil.which("man"):
        out = subprocess.run(["man", "-l", os.path.join(root, "usr/share/man/man8/hearthd.8")],
                             capture_output=True, text=True, env=dict(os.environ, MANPAGER="cat",
                                                                      PAGER="cat"))
        assert out.returncode == 0 and "hearthd" in out.stdout


def test_units_verify_and_security(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    root = install_root(tmp_path)
    units = unit_dir(root)
    # verify resolves dependencies and commands inside the root: give it the OS part
    # of a root (the standard targets and kill) that a real system has
    for unit in os.listdir("/lib/systemd/system"):
        if unit.endswith(".target"):
            dst = os.path.join(units, unit)
            if not os.path.exists(dst):
                shutil.copy(os.path.join("/lib/systemd/system", unit), dst)
    for tool in ("/usr/bin/kill",):
        os.makedirs(os.path.dirname(root + tool), exist_ok=True)
        shutil.copy(tool, root + tool)
    out = subprocess.run([analyze, "verify", "--man=no", "--root=" + root,
                          os.path.join(units, "hearthd.service"), os.path.join(units, "hearthd.socket")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([analyze, "security", "--offline=true", "--root=" + root, "hearthd.service"],
                         capture_output=True, text=True)
    line = [l for l in out.stdout.splitlines() if "Overall exposure level" in l]
    assert line, out.stdout + out.stderr
    score = float(line[0].split(":")[1].split()[0])
    print("systemd-analyze security exposure: %.1f" % score)
    assert score <= 2.0, line[0]


JOURNAL_SOCKET = "/run/systemd/journal/socket"


def test_journal_fields(tmp_path):
    """Under systemd, log lines go to the journal with PRIORITY and RULE/CUSTOMER/SEQ fields.

    A datagram socket at the journal's path stands in for journald (root only, and only
    where no journald runs)."""
    if os.geteuid() != 0 or os.path.exists(JOURNAL_SOCKET):
        pytest.skip("needs root and no running journald")
    os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(JOURNAL_SOCKET)
    d = short_dir(tmp_path)[0]
    rules = ("rules:\n"
             "  - name: complaint_open\n"
             "    when: 'open(complaint) > 0'\n"
             "    severity: critical\n")
    cfg = Config(d, rules_yaml=rules)
    log = open(os.path.join(d, "stderr.log"), "wb")
    st = os.fstat(log.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    proc = subprocess.Popen([HEARTHD, "-c", cfg.path], env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, cwd=d)
    try:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                assert_ok(ctl_at(cfg.control, {"cmd": "ping"}))
                break
            except (OSError, AssertionError):
                time.sleep(0.02)
        now = int(time.time() * 1000)
        assert_ok(ctl_at(cfg.control, {"cmd": "ingest", "events": [
            {"customer": "J1", "ts": now, "type": "complaint", "ref": "T-1"}]}))
        entries = []
        journal.settimeout(DEADLINE)
        while not any("RULE=complaint_open" in e for e in entries):
            entries.append(journal.recv(65536).decode(errors="replace"))
        entry = [e for e in entries if "RULE=complaint_open" in e][0]
        fields = dict(line.split("=", 1) for line in entry.splitlines() if "=" in line)
        assert fields["CUSTOMER"] == "J1"
        assert fields["SEQ"] == "1"
        assert fields["PRIORITY"] == "6"
        assert fields["SYSLOG_IDENTIFIER"] == "hearthd"
        # nothing went to stderr in journal mode
        stop(proc)
        assert b"alert," not in open(os.path.join(d, "stderr.log"), "rb").read()
    finally:
        if proc.poll() is None:
            proc.kill()
        journal.close()
        os.unlink(JOURNAL_SOCKET)
        log.close()


def test_socket_activation_ingest_and_publish(tmp_path):
    """ZeroMQ adopts systemd's descriptors for the first ingest and publish endpoints."""
    import zmq
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate is not installed")
    d = short_dir(tmp_path)[0]
    cfg = Config(d)
    passed = os.path.join(d, "activated.sock")
    log = open(os.path.join(d, "hearthd.log"), "wb")
    proc = subprocess.Popen([activate, "-l", passed, "-l", cfg.ingest_sock, "-l", cfg.alerts_sock,
                             "--fdname=control:ingest:publish", HEARTHD, "-c", cfg.path],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=d)
    ctx = zmq.Context()
    try:
        end = time.monotonic() + DEADLINE
        while not os.path.exists(cfg.ingest_sock) and time.monotonic() < end:
            time.sleep(0.01)
        inode = os.stat(cfg.ingest_sock).st_ino
        assert_ok(ctl_at(passed, {"cmd": "ping"}))
        # a rebind would have replaced the socket file; the adopted one is the same file
        assert os.stat(cfg.ingest_sock).st_ino == inode
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(cfg.ingest_ep)
        req.send(b'{"customer":"A1","ts":1700000000000,"type":"call"}')
        assert req.poll(int(DEADLINE * 1000)), "no ingest reply over the passed descriptor"
        assert b'"accepted":1' in req.recv()
        req.close()
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctx.term()
        log.close()
