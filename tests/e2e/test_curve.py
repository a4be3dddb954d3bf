"""ZeroMQ CURVE on the ingest and publish sockets (docs/SECURITY.md): only clients whose
public key is in authorized_keys connect; plain TCP beyond loopback is refused unless
the config says insecure: true."""

import json
import os
import subprocess
import time

import pytest
import zmq

from hearthtest import HEARTHCTL, HEARTHD, assert_ok, ctl_at, free_ports

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


def keygen(path):
    out = subprocess.run([HEARTHCTL, "--json", "keygen", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["public"]


def read_key(path, which):
    for line in open(path):
        if line.startswith(which + "="):
            return line.strip().split("=", 1)[1].encode()
    raise AssertionError("no %s key in %s" % (which, path))


def curve_config(new_config, with_curve=True, host="127.0.0.1", insecure=False):
    cfg = new_config(heartbeat="200ms")
    keys = os.path.join(cfg.dir, "keys")
    auth = os.path.join(cfg.dir, "authorized")
    os.makedirs(keys)
    os.makedirs(auth)
    server_pub = keygen(os.path.join(keys, "server"))
    keygen(os.path.join(auth, "producer"))          # .key stays beside, only .pub matters
    os.rename(os.path.join(auth, "producer.key"), os.path.join(keys, "producer.key"))
    ingest_port, publish_port = free_ports(2)
    cfg.ingest_tcp = "tcp://%s:%d" % (host, ingest_port)
    cfg.publish_tcp = "tcp://%s:%d" % (host, publish_port)
    text = cfg.text.replace(cfg.ingest_ep, cfg.ingest_tcp).replace(cfg.alerts_ep, cfg.publish_tcp)
    if with_curve:
        text += ("curve:\n  secret_key_file: %s\n  public_key_file: %s\n  authorized_keys: %s\n"
                 % (os.path.join(keys, "server.key"), os.path.join(keys, "server.pub"), auth))
    if insecure:
        text += "insecure: true\n"
    cfg.write(text)
    cfg.server_pub = server_pub.encode()
    cfg.keys = keys
    return cfg


def curve_socket(ctx, kind, cfg, keyfile):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_serverkey = cfg.server_pub
    s.curve_publickey = read_key(keyfile, "public")
    s.curve_secretkey = read_key(keyfile, "secret")
    return s


def test_authorized_producer_ingests_others_are_refused(make_daemon, new_config):
    cfg = curve_config(new_config)
    d = make_daemon(cfg)
    ctx = zmq.Context()
    try:
        good = curve_socket(ctx, zmq.REQ, cfg, os.path.join(cfg.keys, "producer.key"))
        good.connect(cfg.ingest_tcp)
        good.send(b'{"customer":"CV1","ts":1700000000000,"type":"call"}')
        assert good.poll(30000), "an authorized producer got no reply"
        assert json.loads(good.recv())["accepted"] == 1
        # a key pair that is not in authorized_keys
        keygen(os.path.join(cfg.keys, "stranger"))
        bad = curve_socket(ctx, zmq.REQ, cfg, os.path.join(cfg.keys, "stranger.key"))
        bad.connect(cfg.ingest_tcp)
        bad.send(b'{"customer":"CV2","ts":1700000000000,"type":"call"}')
        assert not bad.poll(1000), "an unknown key was admitted"
        # and a plain client without CURVE at all
        plain = ctx.socket(zmq.REQ)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(cfg.ingest_tcp)
        plain.send(b'{"customer":"CV3","ts":1700000000000,"type":"call"}')
        assert not plain.poll(1000), "a plain client was admitted"
        assert d.status()["customers"] == 1
        # the refusal is logged when the daemon answers the handshake's ZAP request:
        # poll the log, with a generous deadline
        end = time.monotonic() + 30
        while "refused a client" not in d.stderr():
            assert time.monotonic() < end, "no refusal logged:\n" + d.stderr()[-4000:]
            time.sleep(0.02)
    finally:
        ctx.destroy(linger=0)


def test_authorized_subscriber_receives_alerts(make_daemon, new_config):
    cfg = curve_config(new_config)
    d = make_daemon(cfg)
    ctx = zmq.Context()
    try:
        sub = curve_socket(ctx, zmq.SUB, cfg, os.path.join(cfg.keys, "producer.key"))
        sub.setsockopt(zmq.SUBSCRIBE, b"hb")
        sub.connect(cfg.publish_tcp)
        # the heartbeat (every 200ms here) proves the encrypted subscription works
        assert sub.poll(30000), "no heartbeat over CURVE"
        topic, body = sub.recv_multipart()
        assert topic == b"hb" and "seq" in json.loads(body)
    finally:
        ctx.destroy(linger=0)


def test_plain_tcp_beyond_loopback_is_refused(new_config):
    cfg = curve_config(new_config, with_curve=False, host="0.0.0.0")
    out = subprocess.run([HEARTHD, "--check", "-c", cfg.path], capture_output=True, text=True)
    assert out.returncode == 78
    assert "reachable from other hosts" in out.stderr
    # the position of the offending endpoint is named
    line = [i + 1 for i, l in enumerate(open(cfg.path)) if cfg.ingest_tcp in l][0]
    assert "%s:%d:" % (cfg.path, line) in out.stderr
    cfg2 = curve_config(new_config, with_curve=False, host="0.0.0.0", insecure=True)
    out = subprocess.run([HEARTHD, "--check", "-c", cfg2.path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # loopback needs no curve
    cfg3 = curve_config(new_config, with_curve=False, host="127.0.0.1")
    out = subprocess.run([HEARTHD, "--check", "-c", cfg3.path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_keygen_files(tmp_path):
    pub = keygen(str(tmp_path / "k"))
    assert len(pub) == 40
    assert oct(os.stat(str(tmp_path / "k.key")).st_mode & 0o777) == "0o600"
    assert read_key(str(tmp_path / "k.pub"), "public").decode() == pub
    # never overwrites an existing key
    out = subprocess.run([HEARTHCTL, "keygen", str(tmp_path / "k")], capture_output=True, text=True)
    assert out.returncode == 1
