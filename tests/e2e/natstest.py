"""Helpers for the cluster-mode tests (docs/SCALING.md, PROTOCOL.md §9): a real
3-node nats-server JetStream cluster on loopback (free ports, temporary stores,
users and passwords), and a small NATS client speaking the text protocol, so
that the tests need nothing beyond the standard library to publish to the
mapped ingest subject, ask JetStream's API and watch subjects.

Nothing sleeps to wait for something: each wait polls the thing itself with a
deadline."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from hearthtest import free_ports

NATS_SERVER = shutil.which("nats-server")
USER = "hearth"
PASSWORD = "hearth-test-pw"
PARTITIONS = 16
DEADLINE = 60.0


def require_nats():
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (tools/deps.sh installs it)")


def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def partition_of(customer, n=PARTITIONS):
    return fnv1a32(customer) % n


class NatsNode:
    def __init__(self, directory, name, ports, routes):
        self.name = name
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.cluster_port, self.http_port = ports
        self.url = "nats://127.0.0.1:%d" % self.port
        self.conf = os.path.join(self.dir, "nats.conf")
        self.log = os.path.join(self.dir, "nats.log")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write("""
server_name: %(name)s
listen: 127.0.0.1:%(port)d
http: 127.0.0.1:%(http)d
jetstream {
  store_dir: "%(store)s"
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: hearthtest
  listen: 127.0.0.1:%(cport)d
  routes: [%(routes)s]
}
accounts {
  HEARTH {
    jetstream: enabled
    users: [ {user: %(user)s, password: "%(pw)s"} ]
    mappings: {
      "hearth.in.*": "hearth.ev.{{partition(%(parts)d,1)}}.{{wildcard(1)}}"
    }
  }
  SYS { users: [ {user: sys, password: "%(pw)s-sys"} ] }
}
system_account: SYS
""" % {"name": name, "port": self.port, "http": self.http_port, "store": os.path.join(self.dir, "js"),
       "cport": self.cluster_port, "routes": ", ".join("nats-route://127.0.0.1:%d" % r for r in routes),
       "user": USER, "pw": PASSWORD, "parts": PARTITIONS})

    def start(self):
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=f)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def http(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path), timeout=5) as r:
            return json.loads(r.read().decode())


class NatsCluster:
    """Three JetStream servers routed to each other on loopback."""

    def __init__(self, directory, size=3):
        require_nats()
        flat = free_ports(3 * size)
        ports = [tuple(flat[3 * i:3 * i + 3]) for i in range(size)]
        self.nodes = []
        for i in range(size):
            routes = [ports[j][1] for j in range(size) if j != i]
            self.nodes.append(NatsNode(directory, "n%d" % (i + 1), ports[i], routes))

    @property
    def urls(self):
        return [n.url for n in self.nodes]

    def start(self):
        try:
            for n in self.nodes:
                n.start()
            self.wait_ready()
        except BaseException:
            self.stop()          # a cluster that never came up leaves no server behind
            raise
        return self

    def wait_ready(self, deadline=DEADLINE):
        """Every running node sees a JetStream meta leader."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            ok = True
            for n in self.nodes:
                if n.proc is None:
                    continue
                try:
                    jsz = n.http("/jsz")
                    if not (jsz.get("meta_cluster") or {}).get("leader"):
                        ok = False
                except OSError:
                    ok = False
            if ok:
                return
            time.sleep(0.1)
        pytest.fail("the NATS cluster has no JetStream leader after %.0fs" % deadline)

    def stream_leader(self, stream):
        """The node leading the stream (its Raft group), or None."""
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                jsz = n.http("/jsz?streams=true&accounts=true")
            except OSError:
                continue
            for acc in jsz.get("account_details") or []:
                for s in acc.get("stream_detail") or []:
                    if s.get("name") == stream and (s.get("cluster") or {}).get("leader"):
                        leader = s["cluster"]["leader"]
                        for m in self.nodes:
                            if m.name == leader:
                                return m
        return None

    def stop(self):
        for n in self.nodes:
            n.stop()


# --------------------------------------------------------------------------------------
# A small client of the NATS text protocol (CONNECT, PUB/HPUB, SUB, MSG/HMSG, PING)
# --------------------------------------------------------------------------------------

class NatsClient:
    def __init__(self, urls, user=USER, password=PASSWORD, timeout=10.0):
        self.urls = list(urls)
        self.auth = (user, password)
        self.timeout = timeout
        self.at = 0
        self.connect()

    def connect(self, deadline=DEADLINE):
        """To the first server of the list that answers, starting after the last one used
        (a killed server is skipped). Subscriptions do not survive: callers resubscribe."""
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            url = self.urls[self.at % len(self.urls)]
            self.at += 1
            host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=self.timeout)
                self.buf = b""
                self.sid = getattr(self, "sid", 0)
                self.inbox_n = getattr(self, "inbox_n", 0)
                self.pending = []
                self._line()                       # INFO
                self.sock.sendall(b"CONNECT " + json.dumps({
                    "verbose": False, "pedantic": False, "user": self.auth[0], "pass": self.auth[1],
                    "headers": True, "no_responders": True, "protocol": 1}).encode() + b"\r\nPING\r\n")
                while True:
                    line = self._line()
                    if line.startswith(b"-ERR"):
                        raise RuntimeError(line.decode())
                    if line == b"PONG":
                        return
            except OSError as e:
                last = e
                time.sleep(0.1)
        raise ConnectionError("no NATS server answered (last: %r)" % last)

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("NATS: nothing in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("NATS: connection closed")
        self.buf += data

    def _line(self, deadline=None):
        deadline = deadline or time.monotonic() + 10
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def subscribe(self, subject):
        self.sid += 1
        self.sock.sendall(("SUB %s %d\r\n" % (subject, self.sid)).encode())
        return self.sid

    def publish(self, subject, data, reply=None, headers=None):
        if isinstance(data, str):
            data = data.encode()
        if headers:
            hdr = b"NATS/1.0\r\n" + b"".join(
                ("%s: %s\r\n" % (k, v)).encode() for k, v in headers.items()) + b"\r\n"
            cmd = "HPUB %s %s%d %d\r\n" % (subject, reply + " " if reply else "", len(hdr),
                                           len(hdr) + len(data))
            self.sock.sendall(cmd.encode() + hdr + data + b"\r\n")
        else:
            cmd = "PUB %s %s%d\r\n" % (subject, reply + " " if reply else "", len(data))
            self.sock.sendall(cmd.encode() + data + b"\r\n")

    def flush(self):
        self.sock.sendall(b"PING\r\n")
        self.pending.extend(self._until_pong())

    def _until_pong(self, deadline=None):
        got = []
        deadline = deadline or time.monotonic() + 10
        while True:
            m = self._read_one(deadline)
            if m == "PONG":
                return got
            if m is not None:
                got.append(m)

    def _read_one(self, deadline):
        line = self._line(deadline)
        if line == b"PING":
            self.sock.sendall(b"PONG\r\n")
            return None
        if line == b"PONG":
            return "PONG"
        if line.startswith(b"-ERR"):
            raise RuntimeError(line.decode())
        if line.startswith(b"MSG "):
            parts = line.split()
            subject, sid = parts[1].decode(), int(parts[2])
            reply = parts[3].decode() if len(parts) == 5 else None
            data = self._bytes(int(parts[-1]), deadline)
            return {"subject": subject, "sid": sid, "reply": reply, "headers": {}, "data": data}
        if line.startswith(b"HMSG "):
            parts = line.split()
            subject, sid = parts[1].decode(), int(parts[2])
            reply = parts[3].decode() if len(parts) == 6 else None
            hlen, total = int(parts[-2]), int(parts[-1])
            raw = self._bytes(total, deadline)
            headers = {}
            head = raw[:hlen].decode().split("\r\n")
            status = head[0][len("NATS/1.0"):].strip()
            if status:
                headers["Status"] = status.split()[0]
            for h in head[1:]:
                if ":" in h:
                    k, v = h.split(":", 1)
                    headers[k.strip()] = v.strip()
            return {"subject": subject, "sid": sid, "reply": reply, "headers": headers,
                    "data": raw[hlen:]}
        return None                     # +OK, INFO

    def next_msg(self, sid=None, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.pending):
                if sid is None or m["sid"] == sid:
                    return self.pending.pop(i)
            m = self._read_one(deadline)
            if isinstance(m, dict):
                self.pending.append(m)

    def request(self, subject, data, headers=None, timeout=10.0):
        """One request and its reply. A connection that broke (its server was killed) is
        made again to another server, and the request sent again: callers only send
        requests that may be repeated (reads, or publishes with a Nats-Msg-Id)."""
        for attempt in range(3):
            try:
                return self._request(subject, data, headers, timeout)
            except socket.timeout:
                raise
            except OSError:
                if attempt == 2:
                    raise
                self.sock.close()
                self.connect()

    def _request(self, subject, data, headers, timeout):
        self.inbox_n += 1
        inbox = "_INBOX.hearthtest.%d.%d" % (os.getpid(), self.inbox_n)
        sid = self.subscribe(inbox)
        self.publish(subject, data, reply=inbox, headers=headers)
        try:
            return self.next_msg(sid, timeout)
        finally:
            self.sock.sendall(("UNSUB %d\r\n" % sid).encode())

    def js_api(self, what, body=None, timeout=10.0):
        m = self.request("$JS.API." + what, json.dumps(body or {}), timeout=timeout)
        return json.loads(m["data"] or b"{}")

    def wait_stream(self, name, deadline=DEADLINE):
        """The stream exists (the shards create it when they start)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                info = self.js_api("STREAM.INFO." + name, timeout=5)
                if "config" in info:
                    return info
            except socket.timeout:
                pass
            time.sleep(0.1)
        pytest.fail("stream %s did not appear within %.0fs" % (name, deadline))

    def js_publish(self, subject, data, msg_id=None, deadline=DEADLINE):
        """Publishes to a stream and returns the PubAck. Without one in time (no
        responders while a stream leader is elected, a timeout) it publishes again with
        the same Nats-Msg-Id, as a producer must: the stream keeps one copy."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            try:
                m = self.request(subject, data, headers=headers, timeout=2.0)
                if m["headers"].get("Status") != "503" and m["data"]:
                    ack = json.loads(m["data"])
                    if "seq" in ack:
                        return ack
                    last = ack
                else:
                    last = "no responders"
            except socket.timeout as e:
                last = e
            except OSError as e:                # the server went away: to another one
                last = e
                self.sock.close()
                self.connect(max(1.0, end - time.monotonic()))
            time.sleep(0.05)
        raise RuntimeError("no PubAck for %s within %.0fs (last: %r)" % (subject, deadline, last))
