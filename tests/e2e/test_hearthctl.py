"""hearthctl (PROTOCOL.md §8.3), run as an operator would: exit codes 0 ok, 1 the daemon said
no, 2 usage, 3 cannot reach the daemon; --json prints the raw answer."""

import json
import os

import pytest

from hearthtest import BASE_MS, HOUR, REPO, check_no_sanitizer, ev, hearthctl, rfc3339


def run(d, *args, json_out=False, expect=0):
    p = hearthctl(list(args), sock=d.cfg.control, json_out=json_out)
    check_no_sanitizer(p)
    assert p.returncode == expect, (args, p.returncode, p.stdout.decode(), p.stderr.decode())
    return p


def run_json(d, *args, expect=0):
    p = run(d, *args, json_out=True, expect=expect)
    try:
        return json.loads(p.stdout)
    except ValueError:
        pytest.fail("hearthctl --json %s printed no single JSON value: %r" % (args, p.stdout[:500]))


def seed(d):
    events = [ev("CTL-1", BASE_MS + i * HOUR, t, id="ctl-%d" % i)
              for i, t in enumerate(["call", "visit", "call", "message", "meeting"])]
    events.append(ev("CTL-1", BASE_MS - HOUR, "profile", id="ctl-p",
                     attrs={"name": "Lin Wei", "tier": "B"}))
    assert d.ingest_ok(events)["accepted"] == 6
    return events


def test_ctl_ping(daemon):
    p = run(daemon, "ping")
    assert p.stdout.strip(), "ping prints something"
    a = run_json(daemon, "ping")
    assert a.get("pong") is True, a


def test_ctl_status(daemon):
    seed(daemon)
    p = run(daemon, "status")
    assert p.stdout.strip(), "human-readable status is empty"
    st = run_json(daemon, "status")
    assert st.get("ok", True) is True
    assert st["customers"] == 1 and st["events"] == 6, st


def test_ctl_customer(daemon):
    seed(daemon)
    p = run(daemon, "customer", "CTL-1")
    assert b"CTL-1" in p.stdout and b"Lin Wei" in p.stdout, p.stdout
    c = run_json(daemon, "customer", "CTL-1")
    assert c["customer"]["id"] == "CTL-1" and c["customer"]["events"] == 6, c
    run(daemon, "customer", "no-such-customer", expect=1)
    run(daemon, "customer", "no-such-customer", json_out=True, expect=1)


def test_ctl_timeline_limit_desc(daemon):
    seed(daemon)
    p = run(daemon, "timeline", "CTL-1")
    assert b"meeting" in p.stdout and b"visit" in p.stdout, p.stdout
    a = run_json(daemon, "timeline", "CTL-1", "--limit", "2", "--desc")
    assert [e["id"] for e in a["events"]] == ["ctl-4", "ctl-3"], a
    assert a["events"][0]["ts"] == rfc3339(BASE_MS + 4 * HOUR)
    a = run_json(daemon, "timeline", "CTL-1", "--limit", "3")
    assert [e["id"] for e in a["events"]] == ["ctl-p", "ctl-0", "ctl-1"], a


def test_ctl_forget(daemon):
    seed(daemon)
    run(daemon, "forget", "CTL-1")
    run(daemon, "customer", "CTL-1", expect=1)
    run(daemon, "forget", "CTL-1", expect=1)      # Assumption: not_found the second time
    assert daemon.status()["events"] == 0


@pytest.mark.parametrize("args", [
    [],
    ["no-such-subcommand"],
    ["customer"],
    ["timeline"],
    ["timeline", "X", "--limit", "many"],
    ["--no-such-option", "ping"],
], ids=["nothing", "unknown_subcommand", "customer_no_id", "timeline_no_id",
        "limit_not_number", "unknown_option"])
def test_ctl_usage_errors_exit_2(daemon, args):
    p = hearthctl(args, sock=daemon.cfg.control)
    check_no_sanitizer(p)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "a usage error says what is wrong on stderr"


def test_ctl_cannot_reach_exit_3(tmp_path):
    p = hearthctl(["ping"], sock=str(tmp_path / "nothing-here.sock"))
    check_no_sanitizer(p)
    assert p.returncode == 3, (p.returncode, p.stderr)
    # A path that exists but is not a listening socket.
    f = tmp_path / "plain-file"
    f.write_text("x")
    p = hearthctl(["status"], sock=str(f))
    assert p.returncode == 3, (p.returncode, p.stderr)


# -- import -----------------------------------------------------------------------------

def _write_import_files(d):
    jl = os.path.join(d, "in.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps(ev("IMP-1", "2024-03-01T10:00:00+08:00", "call", id="imp-1",
                              attrs={"channel": "phone"})) + "\n")
        f.write("\n")
        f.write(json.dumps(ev("IMP-1", BASE_MS + HOUR, "complaint", id="imp-2", ref="T-9")) + "\n")
    arr = os.path.join(d, "in.json")
    with open(arr, "w") as f:
        json.dump([ev("IMP-2", BASE_MS + i, "visit", id="imp-a%d" % i) for i in range(3)], f, indent=2)
    csv = os.path.join(d, "in.csv")
    with open(csv, "w") as f:
        f.write("customer,ts,type,id,ref,channel,amount\n")
        f.write("IMP-3,2024-03-01T10:00:00+08:00,call,imp-c1,R-1,phone,129.5\n")
        f.write("IMP-3,%d,visit,imp-c2,R-2,store,7\n" % (BASE_MS + HOUR))
        f.write('"IMP-3",2024-03-01T04:00:00Z,message,imp-c3,R-3,"email, web","3"\n')
    return jl, arr, csv


def test_ctl_import_jsonl_array_and_csv(daemon, workdir):
    jl, arr, csv = _write_import_files(workdir)
    out = run_json(daemon, "import", jl, arr, csv)
    assert out == {"accepted": 8, "duplicates": 0, "rejected": 0, "errors": []}, out

    tl = {e["id"]: e for e in daemon.timeline_all("IMP-3")}
    assert set(tl) == {"imp-c1", "imp-c2", "imp-c3"}
    c1 = tl["imp-c1"]
    assert c1["ts"] == "2024-03-01T02:00:00.000Z" and c1["type"] == "call" and c1["ref"] == "R-1"
    # Assumption: CSV cells may stay strings or become numbers; either is fine.
    assert c1["attrs"]["channel"] == "phone" and c1["attrs"]["amount"] in (129.5, "129.5"), c1
    assert tl["imp-c2"]["ts"] == rfc3339(BASE_MS + HOUR)
    assert tl["imp-c3"]["attrs"]["channel"] == "email, web", tl["imp-c3"]
    assert daemon.customer("IMP-1")["open"]["complaint"][0]["ref"] == "T-9"
    assert daemon.customer("IMP-2")["events"] == 3

    # The same files again: all duplicates.  Human output works too.
    out = run_json(daemon, "import", jl, arr, csv)
    assert out == {"accepted": 0, "duplicates": 8, "rejected": 0, "errors": []}, out
    run(daemon, "import", jl)


def test_ctl_import_reports_errors_with_file_and_line(daemon, workdir):
    jl = os.path.join(workdir, "bad.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps(ev("IE-1", BASE_MS, "call", id="ie-1")) + "\n")
        f.write(json.dumps(ev("IE-1", BASE_MS + 1, "call", id="ie-2")) + "\n")
        f.write(json.dumps({"customer": "IE-1", "type": "call", "id": "ie-3"}) + "\n")   # line 3
        f.write(json.dumps(ev("IE-1", BASE_MS + 3, "call", id="ie-4")) + "\n")
    csv = os.path.join(workdir, "bad.csv")
    with open(csv, "w") as f:
        f.write("customer,ts,type,id\n")
        f.write("IE-2,%d,call,ie-c1\n" % BASE_MS)
        f.write("IE-2,whenever,call,ie-c2\n")                                              # line 3
    p = hearthctl(["import", jl, csv], sock=daemon.cfg.control, json_out=True)
    check_no_sanitizer(p)
    assert p.returncode in (0, 1), (p.returncode, p.stderr)
    out = json.loads(p.stdout)
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (4, 0, 2), out
    assert len(out["errors"]) == 2, out
    # Assumption: "line" is the 1-based line of the file (the CSV header is line 1).
    for path in (jl, csv):
        e = [e for e in out["errors"] if os.path.basename(e["file"]) == os.path.basename(path)]
        assert len(e) == 1, (path, out)
        e = e[0]
        assert e["file"] in (path, os.path.basename(path)), e
        assert e["line"] == 3, e
        assert e["code"] == "bad_field" and "ts" in e["message"], e
    assert daemon.customer("IE-1")["events"] == 3
    assert daemon.customer("IE-2")["events"] == 1


EXAMPLES = os.path.join(REPO, "examples")
STUDIO_JSONL = os.path.join(EXAMPLES, "studio.jsonl")
STUDIO_CSV = os.path.join(EXAMPLES, "studio.csv")
need_examples = pytest.mark.skipif(
    not (os.path.exists(STUDIO_JSONL) and os.path.exists(STUDIO_CSV)),
    reason="examples/studio.jsonl or examples/studio.csv not present")


def _expected_counts():
    try:
        with open(os.path.join(EXAMPLES, "expected.json")) as f:
            e = json.load(f)
        return e.get("events"), e.get("customers")
    except (OSError, ValueError):
        return None, None


# The example data ends 2026-11-20T12:25+08:00; with the real clock now later than that,
# no event is in the future, so no --test-clock is needed for importing alone.

@need_examples
def test_ctl_import_examples_then_csv_is_all_duplicates(daemon):
    n_lines = sum(1 for l in open(STUDIO_JSONL, encoding="utf-8") if l.strip())
    first = run_json(daemon, "import", STUDIO_JSONL)
    assert first == {"accepted": n_lines, "duplicates": 0, "rejected": 0, "errors": []}, \
        dict(first, errors=first.get("errors", [])[:3])
    second = run_json(daemon, "import", STUDIO_CSV)
    assert second == {"accepted": 0, "duplicates": n_lines, "rejected": 0, "errors": []}, \
        dict(second, errors=second.get("errors", [])[:3])
    st = daemon.status()
    events, customers = _expected_counts()
    assert st["events"] == (events or n_lines), st
    if customers:
        assert st["customers"] == customers, st


@need_examples
def test_ctl_import_examples_csv_gives_the_same_events_as_jsonl(daemon, make_daemon, new_config):
    """examples/README.md: a CSV import that reads number-looking cells as numbers yields
    exactly the events of the JSON lines file."""
    other = make_daemon(new_config())
    assert run_json(daemon, "import", STUDIO_JSONL)["rejected"] == 0
    assert run_json(other, "import", STUDIO_CSV)["rejected"] == 0
    ids = [c["id"] for c in daemon.ctl({"cmd": "customers", "limit": 10000})["customers"]]
    assert ids == [c["id"] for c in other.ctl({"cmd": "customers", "limit": 10000})["customers"]]
    for cid in ids:
        a = [{k: v for k, v in e.items() if k != "seq"} for e in daemon.timeline_all(cid)]
        b = [{k: v for k, v in e.items() if k != "seq"} for e in other.timeline_all(cid)]
        assert a == b, cid
        ca, cb = daemon.customer(cid), other.customer(cid)
        ca.pop("score", None)
        cb.pop("score", None)
        assert ca == cb, cid
