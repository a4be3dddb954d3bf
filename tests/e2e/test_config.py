"""hearthd's command line and configuration errors (PROTOCOL.md §6.1, §8.1): `--check`, exit codes
0/2/78, and errors that name file:line:column."""

import os
import re
import subprocess

import pytest

from hearthtest import HEARTHD, Config, check_no_sanitizer, require_binary

RULES_OK = (
    "rules:\n"
    "  - name: cooling\n"
    "    when: 'since(touch) > 30d'\n"
    "    severity: warning\n"
)


def hearthd(*args, timeout=60):
    require_binary(HEARTHD)
    p = subprocess.run([HEARTHD] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    check_no_sanitizer(p)
    return p


def locate(text, needle):
    """1-based (line, column) of the only occurrence of needle."""
    assert text.count(needle) == 1, needle
    i = text.index(needle)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return line, col


def mutate(cfg, old, new):
    assert cfg.text.count(old) == 1, old
    cfg.write(cfg.text.replace(old, new))


def error_places(cfg, stderr):
    """(line, col) of every `file:line:col: message` about cfg.path on stderr."""
    text = stderr.decode("utf-8", "replace")
    places = []
    for m in re.finditer(r"^(.*?):(\d+):(\d+): (.+)$", text, re.M):
        f = m.group(1).split()[-1] if m.group(1) else ""
        if os.path.realpath(f) == os.path.realpath(cfg.path):
            places.append((int(m.group(2)), int(m.group(3))))
    return places


def assert_config_error_at(cfg, needle):
    """hearthd --check exits 78 and names the line of `needle` (and a column on it)."""
    line, col = locate(cfg.text, needle)
    line_len = len(cfg.text.split("\n")[line - 1])
    p = hearthd("--check", "-c", cfg.path)
    assert p.returncode == 78, (p.returncode, p.stdout, p.stderr)
    places = error_places(cfg, p.stderr)
    assert places, "no `%s:line:col: message` on stderr:\n%s" % (cfg.path, p.stderr.decode())
    assert any(l == line and 1 <= c <= line_len + 1 for l, c in places), \
        "expected an error at %s:%d (col ~%d), got %r:\n%s" % (cfg.path, line, col, places,
                                                                p.stderr.decode())
    assert b"configuration OK" not in p.stdout + p.stderr
    return p


def test_check_good_config(config):
    p = hearthd("--check", "-c", config.path)
    assert p.returncode == 0, p.stderr.decode()
    assert b"configuration OK" in p.stdout + p.stderr
    # --check validates and exits: it binds nothing.
    assert not os.path.exists(config.control)


def test_check_good_config_with_rules(workdir):
    cfg = Config(workdir, rules_yaml=RULES_OK)
    p = hearthd("--check", "-c", cfg.path)
    assert p.returncode == 0, p.stderr.decode()
    assert b"configuration OK" in p.stdout + p.stderr


# (name, old text, new text, needle that marks the offending spot in the new text)
BAD = [
    ("unknown_nested_key", "  heartbeat: 5s\n", "  heartbeat: 5s\n  heartbeet: 5s\n", "heartbeet"),
    ("unknown_top_level_key", "log:\n", "colour: blue\nlog:\n", "colour"),
    ("bad_duration", "max_future: 1h", "max_future: 30x", "30x"),
    ("bad_duration_interval", "interval: 60s", "interval: 1d12", "1d12"),
    ("bad_size", "map_size: 64MiB", "map_size: 12XB", "12XB"),
    ("wrong_type_sequence_for_string", "  mode: \"0660\"\n", "  mode: [\"0660\"]\n", "[\"0660\"]"),
    ("wrong_type_mapping_for_list", "admin_groups: []", "admin_groups: {a: 1}", "{a: 1}"),
    ("wrong_type_scalar_for_section", "evaluation:\n  interval: 60s\n", "evaluation: often\n", "often"),
    ("bad_mode", "mode: \"0660\"", "mode: \"0999\"", "0999"),
    ("bad_event_type_name", "touch: [contact,", "touch: [Contact-Us,", "Contact-Us"),
]


@pytest.mark.parametrize("name,old,new,needle", BAD, ids=[b[0] for b in BAD])
def test_check_bad_config(config, name, old, new, needle):
    mutate(config, old, new)
    assert_config_error_at(config, needle)


def test_check_duplicate_rule_name(workdir):
    rules = (
        "rules:\n"
        "  - name: cooling\n"
        "    when: 'since(touch) > 30d'\n"
        "    severity: warning\n"
        "  - name: cooling # second\n"
        "    when: 'since(touch) > 60d'\n"
        "    severity: critical\n"
    )
    cfg = Config(workdir, rules_yaml=rules)
    assert_config_error_at(cfg, "- name: cooling # second")


def test_check_unknown_key_in_rule(workdir):
    cfg = Config(workdir, rules_yaml=RULES_OK + "    severty: critical\n")
    assert_config_error_at(cfg, "severty")


def test_check_yaml_syntax_error(config):
    mutate(config, "  retain: 7d\n", "  retain: [7d\n")
    p = hearthd("--check", "-c", config.path)
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert error_places(config, p.stderr), p.stderr.decode()


def test_check_reports_every_error(config):
    """Assumption (STYLE: collect every config error): all errors are reported, not just
    the first."""
    mutate(config, "max_future: 1h", "max_future: 30x")
    mutate(config, "log:\n", "colour: blue\nlog:\n")
    p = hearthd("--check", "-c", config.path)
    assert p.returncode == 78
    lines = {l for l, _ in error_places(config, p.stderr)}
    assert {locate(config.text, "30x")[0], locate(config.text, "colour")[0]} <= lines, \
        p.stderr.decode()


def test_daemon_refuses_to_start_on_bad_config(config):
    mutate(config, "max_future: 1h", "max_future: 30x")
    p = hearthd("-c", config.path)
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert error_places(config, p.stderr), p.stderr.decode()
    assert not os.path.exists(config.control)


def test_missing_config_file_is_config_error(workdir):
    # Assumption: a config file that cannot be read is a configuration error (78).
    p = hearthd("--check", "-c", os.path.join(workdir, "does-not-exist.yaml"))
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert b"does-not-exist.yaml" in p.stderr


def test_version(daemon):
    p = hearthd("--version")
    assert p.returncode == 0, p.stderr
    out = (p.stdout + p.stderr).decode()
    assert re.search(r"\d+\.\d+", out), out
    assert daemon.status()["version"] in out, (daemon.status()["version"], out)


@pytest.mark.parametrize("args", [["--no-such-option"], ["-x"], ["-c"],
                                  ["--check", "-c", "a.yaml", "extra-argument"]],
                         ids=["long", "short", "c_without_file", "extra_argument"])
def test_usage_errors_exit_2(args):
    p = hearthd(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.strip()
