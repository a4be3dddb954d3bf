"""Fixtures for hearth's end-to-end tests: a config in a temporary directory and a
real hearthd started on it (see hearthtest.py for the helpers)."""

import os
import shutil
import tempfile

import pytest

from hearthtest import Config, Daemon, short_dir


@pytest.fixture
def workdir(tmp_path):
    d, cleanup = short_dir(tmp_path)
    yield d
    if cleanup:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def config(workdir):
    """The standard test config (PROTOCOL.md §6) in the test's own directory."""
    return Config(workdir)


@pytest.fixture
def new_config():
    """Factory: new_config(world_readable=False, **Config kwargs) -> Config in a new short
    directory of its own (for a second daemon, or one other uids must reach).  The
    directories are removed after every daemon of make_daemon has stopped."""
    dirs = []

    def make(world_readable=False, **kw):
        d = tempfile.mkdtemp(prefix="h", dir="/tmp")
        dirs.append(d)
        if world_readable:
            os.chmod(d, 0o755)     # pytest's and mkdtemp's directories are 0700
        return Config(d, **kw)

    yield make
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_daemon(config, new_config):
    """Factory: make_daemon(cfg=None, args=(), start=True) -> Daemon.

    Every daemon made here is stopped at teardown; a non-zero exit or a sanitizer
    report fails the test."""
    made = []

    def make(cfg=None, args=(), start=True, **kw):
        d = Daemon(cfg or config, args, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    problems = [m for m in (d.teardown() for d in made) if m]
    if problems:
        pytest.fail(problems[0])


@pytest.fixture
def daemon(make_daemon):
    """A fresh daemon on an empty store."""
    return make_daemon()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """One daemon for a whole module, for tests that keep to their own customer ids
    and do not depend on global counts."""
    d, cleanup = short_dir(tmp_path_factory.mktemp("shared"))
    daemon = Daemon(Config(d))
    daemon.start()
    yield daemon
    msg = daemon.teardown()
    if cleanup:
        shutil.rmtree(d, ignore_errors=True)
    if msg:
        pytest.fail(msg)


@pytest.fixture
def clock_daemon(workdir, make_daemon):
    """Factory for the rule and alert tests: clock_daemon(rules_yaml=None, priority=None,
    at=T0_MS, **Config kwargs) -> a started `hearthd --test-clock` whose clock is set to
    `at`, with a 100ms heartbeat and a long evaluation.interval (so ticks happen only
    when a test moves the clock)."""
    from hearthtest import T0_MS, rfc3339

    def make(rules_yaml=None, priority=None, at=T0_MS, stack_limit=None, **kw):
        kw.setdefault("heartbeat", "100ms")
        kw.setdefault("interval", "1h")
        cfg = Config(workdir, rules_yaml=rules_yaml, priority=priority, **kw)
        d = make_daemon(cfg, args=["--test-clock"], stack_limit=stack_limit)
        if at is not None:
            d.clock_set(rfc3339(at))
        return d

    return make
