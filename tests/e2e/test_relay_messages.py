"""hearth-relay's messages as people read them, and hold_firing (issue #19), end to end:
the example data of a Hangzhou studio through the default rules, posted by the
relay's defaults to DingTalk and Feishu stand-ins (Chinese, local times, readable
durations); flaps dropped by a hold window, also across a restart; and hearthctl's
tables lined up by display width with Chinese names.

The helpers (HTTP stand-ins, the relay runner) are test_relay.py's."""

import calendar
import json
import os
import re
import subprocess
import time
import unicodedata

import pytest

from hearthtest import (HEARTHCTL, REPO, T0_MS, etc_priority, etc_section, hearthctl, parse_time,
                        rfc3339)
from test_relay import (RELAY, Relay, complaint, hooks, outbox, profile,  # noqa: F401
                        relay_env, require_binary, resolve, target_yaml)

STUDIO = os.path.join(REPO, "examples", "studio.jsonl")
need_studio = pytest.mark.skipif(not os.path.exists(STUDIO), reason="examples/studio.jsonl not present")
need_shanghai = pytest.mark.skipif(not os.path.exists("/usr/share/zoneinfo/Asia/Shanghai"),
                                   reason="no tzdata (Asia/Shanghai)")

# The instant the example data is planted for (examples/README.md): 2026-11-20T18:00+08:00
END_MS = calendar.timegm((2026, 11, 20, 10, 0, 0)) * 1000
DAY = 86400 * 1000
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
CJK = re.compile(r"[\u4e00-\u9fff]")


def duration_text(ms):
    """hearthd's duration_format (src/common/units.c): the two most significant of d h m s."""
    if ms < 1000:
        return "%dms" % ms
    out, shown = [], 0
    for name, unit in (("d", DAY), ("h", 3600000), ("m", 60000), ("s", 1000)):
        n, ms = divmod(ms, unit)
        if n == 0 and shown == 0:
            continue
        if n:
            out.append("%d%s" % (n, name))
        shown += 1
        if shown == 2:
            break
    return " ".join(out)


def shanghai(ms):
    """Unix ms as the relay shows it in Asia/Shanghai (no daylight time since 1991)."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms // 1000 + 8 * 3600)) + " CST"


def studio_daemon(clock_daemon):
    """hearthd --test-clock at the end of the example data, on etc/hearth.yaml's rules,
    with examples/studio.jsonl imported through hearthctl."""
    d = clock_daemon(etc_section("rules"), priority=etc_priority(), at=END_MS)
    p = hearthctl(["import", STUDIO], sock=d.cfg.control, json_out=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rejected"] == 0
    return d


@need_studio
@need_shanghai
def test_dingtalk_and_feishu_defaults_read_in_chinese_and_local_time(clock_daemon, workdir, hooks):
    """The studio's alerts a week after the data ends, as the relay's defaults post them:
    Chinese words, times in Asia/Shanghai (DingTalk from `timezone:`, Feishu from $TZ),
    durations as the daemon writes them, and a template value that is a duration read as one."""
    d = studio_daemon(clock_daemon)
    firing = {(a["rule"], a["customer"]): a for a in d.alerts(limit=1000)}
    assert sum(1 for r, _ in firing if r == "customer_cooling") == 21     # examples/README.md
    ding = hooks(ok_body=b'{"errcode":0,"errmsg":"ok"}')
    feishu = hooks(ok_body=b'{"code":0,"msg":"success"}')
    slack = hooks()
    match = "    match: {rule: [customer_cooling, complaint_unresolved]}\n"
    r = Relay(d, workdir, [
        target_yaml("ding", "dingtalk", ding.url) + match + "    timezone: Asia/Shanghai\n",
        target_yaml("fei", "feishu", feishu.url) + match,
        target_yaml("values", "slack", slack.url, kinds=["repeat"],
                    template="{alert.customer} {alert.values.since(touch)} | "
                             "{alert.values.since(touch)|raw} | {alert.since}")
        + "    match: {rule: customer_cooling}\n",
    ])
    try:
        r.start(env={"TZ": "Asia/Shanghai"})
        # a week on: cooling alerts repeat (repeat: 7d), complaints that passed 48h fire
        before = d.status()["seq"]
        d.clock_set(rfc3339(END_MS + 7 * DAY + 60000))
        mine = [b for b in outbox(d, before).values()
                if b["alert"]["rule"] in ("customer_cooling", "complaint_unresolved")]
        repeats = [b for b in mine if b["kind"] == "repeat" and b["alert"]["rule"] == "customer_cooling"]
        fired = [b for b in mine if b["kind"] == "firing"]
        assert len(repeats) >= 10 and fired, [(b["kind"], b["alert"]["rule"]) for b in mine]
        got_ding = ding.wait(len(mine))
        got_fei = feishu.wait(len(mine))
        got_values = slack.wait(len(repeats))

        for q in got_ding:
            j = q["json"]
            assert j["msgtype"] == "markdown", j
            title, text = j["markdown"]["title"], j["markdown"]["text"]
            assert title.startswith(("触发：", "仍在触发：")), title
            assert "负责人" in text and "规则" in text and "序号" in text, text
            assert not ISO_TIME.search(text), text          # no 2026-11-27T10:01 anywhere
        for q in got_fei:
            j = q["json"]
            assert j["msg_type"] == "text" and not ISO_TIME.search(j["content"]["text"]), j

        # one repeat of customer_cooling, checked whole against what hearthd published
        b = sorted(repeats, key=lambda x: x["seq"])[0]
        a, c = b["alert"], b["customer"]
        # it fired at the import, but began 30 days after the last touch (active_since)
        assert shanghai(parse_time(a["since"])) == "2026-11-20 18:00 CST"
        began = parse_time(a["active_since"])
        assert began < parse_time(a["since"])
        since = shanghai(began)
        assert a["summary"].endswith("has had no contact for %s" % duration_text(a["values"]["since(touch)"]))
        week = duration_text(parse_time(b["ts"]) - began)
        text = [q["json"]["content"]["text"] for q in got_fei if "序号 %d" % b["seq"] in q["json"]["content"]["text"]]
        assert text == ["🟠 仍在触发：客户降温（警告）\n"
                        "%s（%s）· 负责人 %s\n"
                        "%s\n"
                        "开始于 %s，已持续 %s · 规则 customer_cooling · 序号 %d"
                        % (c["name"], a["customer"], c["owner"], a["summary"], since, week, b["seq"])], text
        md = [q["json"]["markdown"] for q in got_ding if "序号 %d" % b["seq"] in q["json"]["markdown"]["text"]]
        assert md == [{"title": "仍在触发：客户降温",
                       "text": "### 🟠 仍在触发：客户降温\n\n"
                               "**%s**（%s）· 负责人 %s · 警告\n\n%s\n\n"
                               "开始于 %s，已持续 %s · 规则 customer_cooling · 序号 %d"
                               % (c["name"], a["customer"], c["owner"], a["summary"], since, week, b["seq"])}], md
        assert any(CJK.search(q["json"]["content"]["text"].split("\n")[1]) for q in got_fei)

        # a complaint that passed 48h during the week: fired now, in local time
        f = [x for x in fired if x["alert"]["rule"] == "complaint_unresolved"]
        if f:
            f = f[0]
            text = [q["json"]["content"]["text"] for q in got_fei
                    if "序号 %d" % f["seq"] in q["json"]["content"]["text"]][0]
            assert text.startswith("🔴 触发：投诉未解决（严重）\n"), text
            # it fired at the tick, but has held since 48 h after the complaint opened (the
            # test clock runs on from where clock.set put it: the tick may come a few ms later)
            assert 0 <= parse_time(f["alert"]["since"]) - (END_MS + 7 * DAY + 60000) < 60000
            assert parse_time(f["alert"]["active_since"]) < parse_time(f["alert"]["since"])
            assert text.endswith("开始于 %s · 规则 complaint_unresolved · 序号 %d"
                                 % (shanghai(parse_time(f["alert"]["active_since"])), f["seq"])), text

        # {alert.values.since(touch)}: a duration, as the summary has it; |raw keeps the ms
        lines = sorted(q["json"]["text"] for q in got_values)
        want = sorted("%s %s | %d | %s" % (x["alert"]["customer"], duration_text(x["alert"]["values"]["since(touch)"]),
                                          x["alert"]["values"]["since(touch)"],
                                          shanghai(parse_time(x["alert"]["since"])))
                      for x in repeats)
        assert lines == want
        r.stop()
    finally:
        r.teardown()


def test_template_duration_value_and_zone_config(relay_env, hooks):
    """A template naming a rule value that is a duration prints it as one (not
    5427184548), its time as a local time in the target's zone, and {…|raw} as published."""
    h = hooks()
    d, r = relay_env([target_yaml("t", "slack", h.url, timezone="Asia/Kolkata" if os.path.exists(
        "/usr/share/zoneinfo/Asia/Kolkata") else "IST-5:30",
        template="{alert.values.open(complaint)} {alert.since} {alert.since|raw} {ts|time} {status}")],
        extra="timezone: UTC\n")
    d.ingest_ctl([profile("Z1", "Zhou", "li"), complaint("Z1")])
    got = h.wait(1)[0]["json"]["text"]
    body = [b for b in outbox(d).values() if b["alert"]["customer"] == "Z1"][0]
    ist = time.strftime("%Y-%m-%d %H:%M", time.gmtime(T0_MS // 1000 + 5 * 3600 + 1800)) + " IST"
    assert got == "1 %s %s %s FIRING" % (ist, body["alert"]["since"], ist), got
    r.stop()


def test_timezone_and_locale_errors_name_the_place(tmp_path):
    require_binary(RELAY)
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  publish: \"ipc:///tmp/a\"\n  control: /tmp/c\nstate: /tmp/s\n"
                   "timezone: Asia/Shangai\n"
                   "targets:\n"
                   "  - name: a\n    type: dingtalk\n    url: \"http://x/\"\n"
                   "    locale: cn\n    hold_firing: a while\n    timezone: \"+08:00\"\n")
    p = subprocess.run([RELAY, "--check", "-c", str(bad)], capture_output=True, timeout=10)
    assert p.returncode == 78, p
    err = p.stderr.decode()
    assert "%s:5:11: timezone: unknown time zone 'Asia/Shangai'" % bad in err, err
    assert "%s:10:13: locale: expected en or zh" % bad in err, err
    assert "%s:11:18: hold_firing: expected a duration" % bad in err, err
    assert "%s:12:15: timezone: unknown time zone '+08:00'" % bad in err, err
    good = tmp_path / "good.yaml"
    good.write_text("source:\n  publish: \"ipc:///tmp/a\"\n  control: /tmp/c\nstate: /tmp/s\n"
                    "timezone: UTC\nlocale: en\nrule_labels: {zh: {customer_cooling: 客户降温}}\n"
                    "targets:\n" + target_yaml("a", "feishu", "http://x/", locale="zh",
                                               timezone="CST-8", hold_firing="5m"))
    p = subprocess.run([RELAY, "--check", "-c", str(good)], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"configuration OK" in p.stdout, p


# --------------------------------------------------------------------------------------
# hold_firing
# --------------------------------------------------------------------------------------

def customers_of(requests, kind=None):
    return [(q["json"]["kind"], q["json"]["alert"]["customer"]) for q in requests
            if kind is None or q["json"]["kind"] == kind]


def test_hold_firing_drops_a_flap_and_posts_what_stays(relay_env, hooks):
    """A firing resolved within hold_firing is posted neither way; one that stays firing
    is posted once the window has passed; one that resolved later by hearthd's clock
    (a relay catching up) is posted with its resolution; other notifications do not
    wait behind a held firing; a target that takes only firings is spared the flap too."""
    held, only_firing, plain = hooks(), hooks(), hooks()
    d, r = relay_env([target_yaml("held", "webhook", held.url, hold_firing="3s"),
                      target_yaml("held-firing", "webhook", only_firing.url, hold_firing="3s",
                                  kinds=["firing"]),
                      target_yaml("plain", "webhook", plain.url)])
    start = time.monotonic()
    d.ingest_ctl([profile("K1", "Kai", "li"), profile("K2", "Kim", "li"), profile("K3", "Ken", "li")])
    d.ingest_ctl([complaint("K1"), complaint("K2")])
    d.ingest_ctl([resolve("K1")])                       # a flap: resolved at once
    plain.wait(3)
    # K3 fires and, 10 minutes later by hearthd's clock, resolves: not a flap
    d.ingest_ctl([complaint("K3")])
    plain.wait(4)
    d.clock_set(rfc3339(T0_MS + 10 * 60 * 1000))
    d.ingest_ctl([resolve("K3", ms=T0_MS + 10 * 60 * 1000)])
    plain.wait(5)
    got = held.wait(3)
    assert customers_of(got) == [("firing", "K3"), ("resolved", "K3"), ("firing", "K2")], customers_of(got)
    # K2's firing waited for the window; K3's went out with its resolution, before K2's
    assert got[2]["t"] - start >= 3.0
    assert only_firing.wait(2) and customers_of(only_firing.ok()) == [("firing", "K3"), ("firing", "K2")]
    assert customers_of(plain.ok()) == [("firing", "K1"), ("firing", "K2"), ("resolved", "K1"),
                                        ("firing", "K3"), ("resolved", "K3")]
    r.wait_log("dropped complaint_open for K1", count=2)
    r.stop()
    assert len(held.requests) == 3 and len(only_firing.requests) == 2
    assert "target 'held': 3 delivered, 0 skipped, 0 retried, 1 flaps dropped" in r.log_text()


def test_hold_firing_survives_a_restart(relay_env, hooks):
    """A held firing is in the state file when the relay stops; after the restart it is
    read again from hearthd's replay: posted when its window ends, or dropped with its
    resolution that came while the relay was down. Nothing that went out is posted twice."""
    h = hooks()
    d, r = relay_env([target_yaml("h", "webhook", h.url, hold_firing="3s")])
    d.ingest_ctl([complaint("R0")])
    h.wait(1)                                           # R0 fired and went out
    d.ingest_ctl([complaint("R1"), complaint("R2")])    # held
    d.ingest_ctl([resolve("R0")])                       # passes them
    h.wait(2)
    r.stop()
    box = outbox(d)
    seq = {(b["kind"], b["alert"]["customer"]): s for s, b in box.items()}
    state = open(os.path.join(r.state, "h.seq")).read()
    assert state == "%d\nheld %d %d\n" % (seq[("resolved", "R0")], seq[("firing", "R1")],
                                          seq[("firing", "R2")]), state
    d.ingest_ctl([resolve("R2")])                       # while the relay is down
    r.start()
    got = h.wait(3)
    assert customers_of(got) == [("firing", "R0"), ("resolved", "R0"), ("firing", "R1")]
    r.wait_log("dropped complaint_open for R2")
    r.stop()
    assert len(h.requests) == 3
    assert open(os.path.join(r.state, "h.seq")).read() == "%d\n" % max(outbox(d))


# --------------------------------------------------------------------------------------
# hearthctl
# --------------------------------------------------------------------------------------

def display_width(s):
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in s)


def column_starts(line):
    """Display columns where each cell of a table line starts (cells are 2+ spaces apart)."""
    out = []
    for m in re.finditer(r"\S+(?: \S+)*", line):
        out.append(display_width(line[:m.start()]))
    return out


@need_studio
def test_hearthctl_top_and_customers_line_up_with_chinese_names(clock_daemon):
    d = studio_daemon(clock_daemon)
    for args in (["top", "--n", "40"], ["customers", "--limit", "300"]):
        p = hearthctl(args, sock=d.cfg.control)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.decode("utf-8").rstrip("\n").split("\n")
        assert len(lines) > 10 and lines[0].startswith("ID ")
        assert any(CJK.search(l) for l in lines[1:]), lines[:5]
        header = column_starts(lines[0])
        for l in lines[1:]:
            cells = column_starts(l)
            # NAME (column 2) and OWNER (3) start where their headers do, whatever the name
            assert cells[1] == header[1] and cells[2] == header[2], (l, cells, header)
        # the name column is as wide as the widest name plus the gap
        names = [re.split(r"\s{2,}", l)[1] for l in lines[1:]]
        assert header[2] - header[1] == max(display_width(n) for n in names + ["NAME"]) + 2


@need_studio
def test_hearthctl_tz_option_moves_the_times_it_prints(clock_daemon):
    d = studio_daemon(clock_daemon)
    out = {}
    for tz in ("UTC", "Asia/Shanghai" if os.path.exists("/usr/share/zoneinfo/Asia/Shanghai") else "CST-8"):
        p = hearthctl(["--tz", tz, "customer", "C1272"], sock=d.cfg.control)
        assert p.returncode == 0, p.stderr
        m = re.search(r"^last seen:\s+(\d{4}-\d\d-\d\d \d\d:\d\d)", p.stdout.decode(), re.M)
        assert m, p.stdout
        out[tz] = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d %H:%M"))
    utc, local = out.values()
    assert local - utc == 8 * 3600
    p = hearthctl(["--tz", "Asia/Hangzhou", "status"], sock=d.cfg.control)
    assert p.returncode == 2 and b"unknown time zone 'Asia/Hangzhou'" in p.stderr
    # $TZ is the default
    env = dict(os.environ, TZ="UTC")
    p = subprocess.run([HEARTHCTL, "-s", d.cfg.control, "customer", "C1272"], capture_output=True,
                       timeout=30, env=env)
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(out["UTC"])) in p.stdout.decode()


def test_messages_link_to_the_page_when_web_url_is_set(relay_env, hooks):
    """With `web_url`, each default message ends with the alert's page on hearth-web
    (docs/WEB.md: /alerts#<rule>/<customer>, ids percent-encoded); {customer_link}
    gives the customer's page; a target without it has no link."""
    ding = hooks(ok_body=b'{"errcode":0,"errmsg":"ok"}')
    own = hooks()
    plain = hooks()
    d, r = relay_env([
        target_yaml("ding", "dingtalk", ding.url),
        target_yaml("own", "slack", own.url, web_url="https://crm.example/hearth/",
                    template="{customer_link}"),
        target_yaml("plain", "slack", plain.url, web_url="https://other.example"),
    ], extra="web_url: https://hearth.example\n")
    d.ingest_ctl([profile("W 1/é", "Wu", "li"), complaint("W 1/é")])
    text = ding.wait(1)[0]["json"]["markdown"]["text"]
    assert text.endswith("\nhttps://hearth.example/alerts#complaint_open/W%201%2F%C3%A9"), text
    assert own.wait(1)[0]["json"]["text"] == "https://crm.example/hearth/c/W%201%2F%C3%A9"
    assert plain.wait(1)[0]["json"]["text"].endswith("\nhttps://other.example/alerts#complaint_open/W%201%2F%C3%A9")
    r.stop()
