"""A store that cannot take more: store_full without partial writes, reads and alerts
keep working, the map grows when max_size allows, and a filesystem that fills up is
an error the daemon survives and recovers from once space returns."""

import json
import os
import subprocess

import pytest

from hearthtest import assert_ok

NOW_BASE = 1700000000000


def batch(tag, n, size=400):
    pad = "x" * size
    return [{"id": "%s-%d" % (tag, i), "customer": "F%d" % (i % 300), "ts": NOW_BASE + i,
             "type": "call", "attrs": {"note": pad}} for i in range(n)]


def fill_until_error(d, tag, limit=400):
    """Ingest batches until the store refuses one; returns (error, events before it)."""
    for k in range(limit):
        before = d.status()["events"]
        rep = d.ingest(json.dumps(batch("%s%d" % (tag, k), 200)).encode())
        if not rep.get("ok"):
            return rep["error"], before
    raise AssertionError("the store never filled up")


def with_sizes(cfg, map_size, max_size):
    cfg.write(cfg.text.replace("map_size: 64MiB", "map_size: %s" % map_size)
              .replace("max_size: 1GiB", "max_size: %s" % max_size))
    return cfg


def test_bounded_store_answers_store_full_and_keeps_serving(make_daemon, new_config):
    rules = ("rules:\n  - name: called\n    when: 'count(call, 3650d) > 0'\n")
    cfg = with_sizes(new_config(rules_yaml=rules), "1MiB", "1MiB")
    d = make_daemon(cfg)
    err, before = fill_until_error(d, "a")
    assert err["code"] == "store_full", err
    # nothing of the refused batch was written
    assert d.status()["events"] == before
    # reads and alerts keep working
    assert_ok(d.ctl({"cmd": "ping"}))
    assert d.customer("F1")["events"] >= 1
    assert any(a["rule"] == "called" for a in d.alerts())
    # and a full store restarts
    d.stop()
    d.start()
    assert d.status()["events"] == before


def test_map_grows_up_to_max_size(make_daemon, new_config):
    cfg = with_sizes(new_config(), "1MiB", "256MiB")
    d = make_daemon(cfg)
    for k in range(20):
        assert d.ingest(json.dumps(batch("g%d" % k, 200)).encode())["ok"]
    st = d.status()
    assert st["events"] == 4000
    assert st["store"]["map_size"] > 1 << 20
    assert "map grew" in d.stderr()


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = str(tmp_path / "fs")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", mnt])


def test_filesystem_full_is_survived(make_daemon, new_config, small_fs):
    cfg = with_sizes(new_config(), "1MiB", "256MiB")
    store = os.path.join(small_fs, "store")
    os.makedirs(store)
    cfg.write(cfg.text.replace(cfg.store, store))
    d = make_daemon(cfg)
    err, before = fill_until_error(d, "t")
    assert err["code"] in ("store_full", "store_error"), err
    assert d.status()["events"] == before
    assert_ok(d.ctl({"cmd": "ping"}))
    # space returns: ingest works again, and the store opens cleanly afterwards
    assert subprocess.run(["mount", "-o", "remount,size=256m", small_fs]).returncode == 0
    rep = d.ingest(json.dumps(batch("after", 50)).encode())
    assert rep["ok"] and rep["accepted"] == 50, rep
    d.stop()
    d.start()
    assert d.status()["events"] == before + 50
