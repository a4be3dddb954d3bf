"""hearth-web (issue 15, docs/WEB.md): the page, from the outside.

A real hearthd on the shipped rules with the example data loaded at its end
(examples/expected.json "at"), a real hearth-web in front of it, and Debian's
headless Chromium driven by Selenium (python3-selenium, run with /usr/bin/python3).
The page must agree with the control commands it shows (`top`, `customer`,
`explain`, `timeline`), keep its filters in the URL, fit a 390 px phone, show user
data as text, refuse writes, and say so when hearthd is gone. /metrics is scraped
by a real Prometheus when one is installed.

Nothing here asserts on speed: test_api_latency prints the /api/ p50 and p99
(run with -s to see it). HEARTH_WEB_SHOTS=DIR also saves a screenshot of every
page into DIR (docs/web holds the ones kept in the repository).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from hearthtest import (BUILD, REPO, SANITIZER_MARKERS, Config, Daemon, assert_ok, etc_priority,
                        etc_section, ev, hearthctl, require_binary, short_dir, check_prometheus_text)

WEB = os.path.join(BUILD, "hearth-web")
EXAMPLES = os.path.join(REPO, "examples", "studio.jsonl")
EXAMPLES_AT = "2026-11-20T18:00:00+08:00"          # examples/expected.json "at"
DEADLINE = 30.0                                    # generous: ASan on a busy 2-core box
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

need_examples = pytest.mark.skipif(not os.path.exists(EXAMPLES), reason="examples/studio.jsonl missing")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, fn, deadline=DEADLINE):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            value = fn()
        except (OSError, ValueError) as e:
            value, last = None, e
        if value:
            return value
        time.sleep(0.05)     # polling a condition, bounded by the deadline
    pytest.fail("%s: not within %.0fs (last: %r)" % (what, deadline, last))


class Web:
    """A real hearth-web on a config of its own, observed from the outside."""

    def __init__(self, directory, control, refresh="30s", extra_web=""):
        require_binary(WEB)
        self.dir = directory
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.path = os.path.join(directory, "web.yaml")
        with open(self.path, "w") as f:
            f.write("web:\n  listen: \"127.0.0.1:1\"\n  refresh: %s\n%s"
                    "control:\n  path: %s\n  timeout: 5s\nlog:\n  level: debug\n"
                    % (refresh, extra_web, json.dumps(control)))
        self.proc = None
        self.log = os.path.join(directory, "hearth-web.log")

    def start(self):
        with open(self.log, "wb") as f:
            # --listen overrides the file, as documented
            self.proc = subprocess.Popen([WEB, "-c", self.path, "--listen", "127.0.0.1:%d" % self.port],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        wait_for("hearth-web answering", lambda: self.alive() and http(self.base + "/api/")[0] == 200)
        return self

    def alive(self):
        if self.proc.poll() is not None:
            pytest.fail("hearth-web exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
        return True

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_log(self):
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            assert m not in text, "sanitizer report in hearth-web's log:\n" + text[-6000:]

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("hearth-web did not stop on SIGTERM:\n" + self.log_text()[-4000:])
        self.check_log()
        assert rc == 0, "hearth-web exited %s:\n%s" % (rc, self.log_text()[-4000:])


def http(url, method="GET", headers=None, data=None, timeout=10):
    """(status, headers, body bytes) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(web, path):
    status, _, body = http(web.base + path)
    return status, json.loads(body)


def shipped_daemon(directory):
    cfg = Config(directory, rules_yaml=etc_section("rules"), priority=etc_priority())
    return Daemon(cfg, args=["--test-clock"])


def load_examples(d):
    d.clock_set(EXAMPLES_AT)
    p = hearthctl(["import", EXAMPLES], sock=d.cfg.control, timeout=300)
    assert p.returncode == 0, p.stderr.decode()


# --------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------

def make_browser(lang="zh-CN", width=1280, height=900):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (run with /usr/bin/python3)")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromium-driver are not installed (tools/deps.sh)")
    profile = tempfile.mkdtemp(prefix="hearth-chromium-")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    # the network is closed: nothing that phones home, a new empty profile
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--lang=" + lang,
              "--window-size=%d,%d" % (width, height)):
        o.add_argument(a)
    o.add_experimental_option("prefs", {"intl.accept_languages": lang})
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # local times as the studio sees them (the data is from Hangzhou); the tests read none
    service = Service(CHROMEDRIVER, env=dict(os.environ, TZ="Asia/Shanghai"))
    driver = webdriver.Chrome(service=service, options=o)
    driver.set_page_load_timeout(DEADLINE)
    driver.hearth_profile = profile
    return driver


def close_browser(driver):
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.hearth_profile, ignore_errors=True)


def wait_js(driver, script, what, deadline=DEADLINE):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, deadline, poll_frequency=0.05).until(lambda d: d.execute_script(script))
    except Exception:
        pytest.fail("%s: not within %.0fs (console: %r)" % (what, deadline, console(driver)))


def console(driver):
    try:
        return [e["message"] for e in driver.get_log("browser")]
    except Exception:
        return []


def open_page(driver, url, ready="return document.body.dataset.loaded", what=None):
    driver.get(url)
    wait_js(driver, ready, what or ("page %s drawn" % url))


def loaded_after(driver, mark):
    """A script that holds once the page has drawn data fetched after `mark`."""
    return "return Number(document.body.dataset.loaded || 0) > %d" % mark


def texts(driver, css):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)", css)


def attrs(driver, css, name):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]))",
        css, name)


def no_console_errors(driver):
    errors = [m for m in console(driver) if "SEVERE" in m or "Refused" in m or "Content Security" in m]
    # the favicon and anything else the page loads come from this server: no CSP refusals
    assert not [m for m in errors if "Content Security" in m or "Refused" in m], errors


# --------------------------------------------------------------------------------------
# Fixtures: one daemon with the example data, one hearth-web, one browser per module
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    if not os.path.exists(EXAMPLES):
        pytest.skip("examples/studio.jsonl missing")
    d_dir, cleanup = short_dir(tmp_path_factory.mktemp("web"))
    d = shipped_daemon(d_dir)
    d.start()
    web = None
    try:
        load_examples(d)
        web = Web(d_dir, d.cfg.control).start()
        yield d, web
    finally:
        if web is not None:
            web.stop()
        msg = d.teardown()
        if cleanup:
            shutil.rmtree(d_dir, ignore_errors=True)
        if msg:
            pytest.fail(msg)


@pytest.fixture(scope="module")
def browser():
    driver = make_browser()
    yield driver
    close_browser(driver)


@pytest.fixture
def fresh(workdir):
    """fresh() -> (daemon, web) of the test's own, the shipped rules, clock at the data's end."""
    made = []

    def make(refresh="30s"):
        d = shipped_daemon(workdir)
        d.start()
        d.clock_set(EXAMPLES_AT)
        web = Web(workdir, d.cfg.control, refresh=refresh)
        made.append((d, web))
        web.start()
        return d, web

    yield make
    problems = []
    for d, web in made:
        web.stop()
        msg = d.teardown()
        if msg:
            problems.append(msg)
    if problems:
        pytest.fail(problems[0])


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------

@need_examples
def test_today_matches_top(studio, browser):
    d, web = studio
    top = assert_ok(d.ctl({"cmd": "top", "n": 16}))["customers"]
    status = d.status()
    open_page(browser, web.base + "/")
    assert attrs(browser, "#today tbody tr", "data-id") == [c["id"] for c in top]
    names = texts(browser, "#today tbody tr .cust .name")
    assert names == [c.get("name") for c in top]
    scores = [float(s.replace(",", "")) for s in texts(browser, "#today tbody tr td.score")]
    assert scores == [round(c["score"], 1) for c in top]
    assert texts(browser, "#n-watched")[0].replace(",", "") == str(status["customers"])
    firing = {a["customer"] for a in d.alerts(limit=10000)}
    assert texts(browser, "#n-tracked")[0] == str(len(firing))
    assert texts(browser, "#n-act")[0] == "16"
    # each row links its customer and, when one fires, its worst alert
    hrefs = attrs(browser, "#today tbody tr td:nth-child(2) a", "href")
    assert hrefs == ["/c/" + urllib.parse.quote(c["id"], safe="") for c in top]
    # the example list as examples/README.md gives it
    expected = json.load(open(os.path.join(REPO, "examples", "expected.json")))
    assert [c["id"] for c in top] == [r["customer"] for r in expected["top"]]
    # Chinese labels for a browser that asks for Chinese
    assert texts(browser, "#nav a")[0] == "今日"
    no_console_errors(browser)


@need_examples
def test_english_when_asked(studio, browser):
    _, web = studio
    open_page(browser, web.base + "/?lang=en")
    assert texts(browser, "#nav a") == ["Today", "Alerts", "Rules", "Status"]
    assert browser.execute_script("return document.documentElement.lang") == "en"


@need_examples
def test_customer_page_shows_explain_terms_and_timeline(studio, browser):
    d, web = studio
    cid = "C1044"            # two alerts firing (examples/expected.json)
    cust = d.customer(cid)
    open_page(browser, web.base + "/c/" + cid)
    assert texts(browser, "#customer-name")[0].startswith(cust["profile"]["name"])
    rules = [a["rule"] for a in cust["alerts"]]
    assert sorted(attrs(browser, "#alerts .alert-card", "data-rule")) == sorted(rules)
    for rule in rules:
        ex = assert_ok(d.ctl({"cmd": "explain", "rule": rule, "customer": cid}))
        shown = attrs(browser, "#alert-%s tr[data-term]" % rule, "data-term")
        assert shown == list(ex["terms"]), (rule, shown, ex["terms"])
        assert ex["when"] in texts(browser, "#alert-%s code.when" % rule)[0]
    # open promise with its due date, coloured by it
    promise = cust["open"]["promise"][0]
    assert attrs(browser, "#cases .case", "data-ref") == [promise["ref"]]
    assert "red" in attrs(browser, "#cases .case", "class")[0]     # overdue (expected.json)
    # the timeline, newest first
    tl = assert_ok(d.ctl({"cmd": "timeline", "id": cid, "desc": True, "limit": 50}))["events"]
    assert [int(s) for s in attrs(browser, "#timeline tbody tr", "data-seq")] == [e["seq"] for e in tl]
    # the activity chart has a legend entry per event type with its count
    legend = dict(zip(attrs(browser, "#activity .legend span", "data-type"),
                      texts(browser, "#activity .legend span")))
    types = {}
    for e in d.timeline_all(cid):
        types[e["type"]] = types.get(e["type"], 0) + 1
    assert legend == {k: "%s %d" % (k, n) for k, n in types.items()}
    no_console_errors(browser)


def test_timeline_pages(fresh, browser):
    d, web = fresh()
    cid = "P/1"
    base = 1790000000000            # 2026-09-21, before the clock
    d.ingest_ctl([ev(cid, base + i * 3600000, "call", id="p-%d" % i, attrs={"n": i}) for i in range(120)])
    every = d.timeline_all(cid, desc=True)
    assert len(every) == 120
    open_page(browser, web.base + "/c/" + urllib.parse.quote(cid, safe=""))
    seqs = lambda: [int(s) for s in attrs(browser, "#timeline tbody tr", "data-seq")]
    assert seqs() == [e["seq"] for e in every[:50]]
    for page, rows in ((2, every[50:100]), (3, every[100:])):
        browser.find_element("id", "older").click()
        wait_js(browser, "return document.getElementById('page-no').textContent.includes('%d')" % page,
                "page %d" % page)
        assert seqs() == [e["seq"] for e in rows]
    assert not browser.find_element("id", "older").is_enabled()
    browser.find_element("id", "newer").click()
    wait_js(browser, "return document.getElementById('page-no').textContent.includes('2')", "back to page 2")
    assert seqs() == [e["seq"] for e in every[50:100]]


@need_examples
def test_filters_are_kept_in_the_url_and_survive_a_reload(studio, browser):
    from selenium.webdriver.support.ui import Select
    d, web = studio
    open_page(browser, web.base + "/")
    mark = int(browser.execute_script("return document.body.dataset.loaded"))
    Select(browser.find_element("id", "f-owner")).select_by_value("zhang")
    wait_js(browser, loaded_after(browser, mark), "the list filtered by owner")
    assert "owner=zhang" in browser.current_url
    want = assert_ok(d.ctl({"cmd": "top", "n": 16, "where": 'owner == "zhang"'}))["customers"]
    assert attrs(browser, "#today tbody tr", "data-id") == [c["id"] for c in want]
    mark = int(browser.execute_script("return document.body.dataset.loaded"))
    Select(browser.find_element("id", "f-rule")).select_by_value("customer_cooling")
    wait_js(browser, loaded_after(browser, mark), "the list filtered by rule")
    assert "rule=customer_cooling" in browser.current_url and "owner=zhang" in browser.current_url
    cooling = {a["customer"] for a in d.alerts(rule="customer_cooling", owner="zhang", limit=10000)}
    ranked = assert_ok(d.ctl({"cmd": "top", "n": 10000, "where": 'owner == "zhang"'}))["customers"]
    want = [c["id"] for c in ranked if c["id"] in cooling][:16]
    shown = attrs(browser, "#today tbody tr", "data-id")
    assert shown == want
    # the CSV link carries the same filters
    csv_href = attrs(browser, "#csv", "href")[0]
    assert "owner=zhang" in csv_href and "rule=customer_cooling" in csv_href
    url = browser.current_url
    browser.refresh()
    wait_js(browser, "return document.body.dataset.loaded", "reloaded")
    assert browser.current_url == url
    assert browser.execute_script("return document.getElementById('f-owner').value") == "zhang"
    assert browser.execute_script("return document.getElementById('f-rule').value") == "customer_cooling"
    assert attrs(browser, "#today tbody tr", "data-id") == shown
    # a bookmark opened anew
    open_page(browser, web.base + "/?tier=C")
    want = assert_ok(d.ctl({"cmd": "top", "n": 16, "where": 'tier == "C"'}))["customers"]
    assert attrs(browser, "#today tbody tr", "data-id") == [c["id"] for c in want]


@need_examples
def test_csv_download(studio):
    d, web = studio
    status, headers, body = http(web.base + "/api/view/today.csv?owner=zhang")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    text = body.decode("utf-8")
    assert text.startswith("\ufeffrank,id,name,owner,tier,score")
    lines = text[1:].strip("\r\n").split("\r\n")
    want = assert_ok(d.ctl({"cmd": "top", "n": 16, "where": 'owner == "zhang"'}))["customers"]
    assert [l.split(",")[1] for l in lines[1:]] == [c["id"] for c in want]


@need_examples
def test_alerts_page_groups_by_rule_critical_first_and_deep_links(studio, browser):
    d, web = studio
    firing = d.alerts(limit=10000)
    open_page(browser, web.base + "/alerts")
    groups = attrs(browser, "#tab-firing section.group", "id")
    by_rule = {}
    for a in firing:
        by_rule.setdefault(a["rule"], []).append(a)
    assert sorted(groups) == sorted("rule-" + r for r in by_rule)
    sev = [by_rule[g[5:]][0]["severity"] for g in groups]
    rank = {"critical": 3, "warning": 2, "info": 1}
    assert [rank[s] for s in sev] == sorted((rank[s] for s in sev), reverse=True)
    for rule, alerts in by_rule.items():
        rows = attrs(browser, "#rule-%s tbody tr" % rule, "id")
        assert sorted(rows) == sorted("%s/%s" % (rule, a["customer"]) for a in alerts)
    # a deep link marks its alert
    a = firing[0]
    open_page(browser, web.base + "/alerts#%s/%s" % (a["rule"], urllib.parse.quote(a["customer"], safe="")))
    marked = attrs(browser, "tr.target", "id")
    assert marked == ["%s/%s" % (a["rule"], a["customer"])]
    # the other tabs
    for tab in ("pending", "acked", "silenced", "resolved"):
        open_page(browser, web.base + "/alerts?tab=" + tab)
        assert attrs(browser, "#tabs a.on", "data-tab") == [tab]
        assert browser.execute_script("return !!document.getElementById('tab-%s')" % tab)


@need_examples
def test_rules_and_status_pages(studio, browser):
    d, web = studio
    rules = assert_ok(d.ctl({"cmd": "rules"}))["rules"]
    open_page(browser, web.base + "/rules")
    assert attrs(browser, "#rules tbody tr", "data-rule") == [r["name"] for r in rules]
    firing = texts(browser, "#rules tbody tr td:nth-child(6)")
    assert [int(x) for x in firing] == [r["firing"] for r in rules]
    open_page(browser, web.base + "/status")
    status = d.status()
    shown = dict(zip(attrs(browser, "#status dd", "data-key"), texts(browser, "#status dd")))
    assert shown["st.version"] == status["version"]
    assert shown["st.customers"].replace(",", "") == str(status["customers"])
    assert attrs(browser, "#metrics-link", "href") == ["/metrics"]


@need_examples
def test_rules_page_draws_a_rules_backtest(studio, browser):
    d, web = studio
    want = assert_ok(d.ctl({"cmd": "backtest", "rule": "customer_cooling"}, timeout=60))
    open_page(browser, web.base + "/rules")
    browser.find_element("css selector", 'button.bt[data-rule="customer_cooling"]').click()
    wait_for("the backtest chart", lambda: browser.find_elements(
        "css selector", '#backtest section[data-rule="customer_cooling"] svg'))
    text = browser.find_element("css selector", "#backtest section").text
    assert str(want["fired"]) in text and str(want["peak_firing"]) in text, (text, want)
    bars = browser.find_elements("css selector", "#backtest svg rect")
    assert len(bars) == sum(1 for day in want["per_day"] if day["fired"])
    if os.environ.get("HEARTH_WEB_SHOTS"):
        browser.execute_script("document.getElementById('backtest').scrollIntoView()")
        browser.save_screenshot(os.path.join(os.environ["HEARTH_WEB_SHOTS"], "rules-backtest.png"))


@need_examples
def test_phone_layout_has_no_horizontal_scroll(studio):
    _, web = studio
    driver = make_browser(width=390, height=844)
    try:
        # a phone's viewport, whatever the window manager of a headless browser says
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
        for path in ("/", "/alerts", "/c/C1044", "/c/C1165", "/rules", "/status"):
            open_page(driver, web.base + path)
            widths = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, innerWidth]")
            assert widths[0] <= widths[1] and widths[1] <= 390, (path, widths)
            if path == "/":
                # rows are cards: the table head is hidden, each cell names its column
                assert driver.execute_script(
                    "return getComputedStyle(document.querySelector('#today thead')).display") == "none"
    finally:
        close_browser(driver)


def test_hostile_names_show_as_text(fresh, browser):
    d, web = fresh()
    hostile = "<img src=x onerror=alert(1)>"
    odd_id = 'X"<b>1</b>/&?#'
    t0 = "2026-08-01T10:00:00+08:00"
    d.ingest_ctl([
        ev(odd_id, t0, "profile", attrs={"name": hostile, "owner": "<script>alert(2)</script>",
                                         "tier": "B", "value": 9000000, "note": "<svg onload=alert(3)>"}),
        ev(odd_id, "2026-08-02T10:00:00+08:00", "call", attrs={"channel": "<i>phone</i>"}),
        ev(odd_id, "2026-11-10T10:00:00+08:00", "complaint", ref="<u>T</u>"),
    ])
    open_page(browser, web.base + "/")
    assert attrs(browser, "#today tbody tr", "data-id")[0] == odd_id
    assert texts(browser, "#today tbody tr .cust .name")[0] == hostile
    # nothing the data held became an element, and no script ran
    assert browser.execute_script("return document.querySelectorAll('#main img, #main script, #main svg b, #main b, #main u, #main i').length") == 0
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    browser.find_element("css selector", "#today tbody tr .cust").click()
    wait_js(browser, "return document.getElementById('customer-name')", "the customer page")
    wait_js(browser, "return document.body.dataset.loaded", "the customer page drawn")
    assert texts(browser, "#customer-name")[0].startswith(hostile)
    assert hostile in texts(browser, "#alerts .summary")[0] or odd_id in browser.current_url
    assert browser.execute_script("return document.querySelectorAll('#main img, #main script, #main b, #main u, #main i').length") == 0
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert "<u>T</u>" in texts(browser, "#timeline")[0]


def test_writes_and_foreign_hosts_are_refused(fresh):
    d, web = fresh()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = http(web.base + "/api/status", method=method, data=b'{"cmd":"forget"}')
        assert status == 405 and headers["Allow"] == "GET, HEAD", (method, status)
    status, _, _ = http(web.base + "/", method="POST", data=b"x=1")
    assert status == 405
    # commands that change state, and forget, reload, ingest, clock.*, have no route
    for path in ("/api/forget/C1", "/api/reload", "/api/ingest", "/api/clock.set", "/api/clock.advance",
                 "/api/ack", "/api/silence.add", "/api/replay"):
        status, body = api(web, path)
        assert status == 404 and body["ok"] is False, path
    # DNS rebinding: a Host that is not this server's
    status, _, _ = http(web.base + "/api/status", headers={"Host": "evil.example:%d" % web.port})
    assert status == 421
    for host in ("localhost:%d" % web.port, "127.0.0.1:%d" % web.port, "LOCALHOST"):
        assert http(web.base + "/api/status", headers={"Host": host})[0] == 200, host
    # the security headers on pages, scripts and answers
    for path in ("/", "/static/app.js", "/api/status", "/c/x", "/nowhere"):
        _, headers, _ = http(web.base + path)
        assert headers["Content-Security-Policy"].startswith("default-src 'self'"), path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
    # HEAD works as GET without a body
    status, headers, body = http(web.base + "/", method="HEAD")
    assert status == 200 and body == b""


def test_api_maps_onto_control_commands(fresh):
    d, web = fresh()
    d.ingest_ctl([ev("A/1", "2026-11-01T10:00:00+08:00", "profile", attrs={"name": "Ann", "tier": "C"}),
                  ev("A/1", "2026-11-02T10:00:00+08:00", "call")])
    status, body = api(web, "/api/customer/" + urllib.parse.quote("A/1", safe=""))
    assert status == 200 and body["customer"] == d.customer("A/1")
    status, body = api(web, "/api/timeline/A%2F1?desc=true&limit=1&types=call")
    want = assert_ok(d.ctl({"cmd": "timeline", "id": "A/1", "desc": True, "limit": 1, "types": ["call"]}))
    assert status == 200 and body == want
    status, body = api(web, "/api/customer/nobody")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = api(web, "/api/customers?where=" + urllib.parse.quote("tier =="))
    assert status == 400 and body["error"]["code"] == "bad_expr"
    status, body = api(web, "/api/timeline/A%2F1?limit=many")
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = api(web, "/api/explain/customer_cooling/A%2F1")
    assert status == 200 and body["rule"] == "customer_cooling"
    status, body = api(web, "/api/eval?expr=" + urllib.parse.quote("since(touch)") + "&customer=A%2F1")
    assert status == 200 and body["type"] == "duration"


def test_banner_when_hearthd_stops_and_back(fresh, browser):
    d, web = fresh(refresh="1s")
    d.ingest_ctl([ev("B1", "2026-11-01T10:00:00+08:00", "profile", attrs={"name": "Bo", "tier": "C", "value": 1000}),
                  ev("B1", "2026-11-02T10:00:00+08:00", "call")])
    open_page(browser, web.base + "/")
    assert not browser.find_element("id", "banner").is_displayed()
    d.stop()
    wait_js(browser, "return !document.getElementById('banner').hidden", "the banner")
    assert browser.find_element("id", "banner").is_displayed()
    assert "hearthd" in browser.find_element("id", "banner").text
    # the list shown before stays on the page
    assert attrs(browser, "#today tbody tr", "data-id") == ["B1"]
    status, body = api(web, "/api/status")
    assert status == 503 and body["error"]["code"] == "unreachable"
    d.start()
    wait_js(browser, "return document.getElementById('banner').hidden", "the banner gone")


# --------------------------------------------------------------------------------------
# /metrics and Prometheus
# --------------------------------------------------------------------------------------

@need_examples
def test_metrics_are_prometheus_text(studio):
    d, web = studio
    status, headers, body = http(web.base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = check_prometheus_text(body.decode())
    assert {"hearth_customers", "hearth_events", "hearth_web_requests_total"} <= families


@need_examples
@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus is not installed (tools/deps.sh)")
def test_prometheus_scrapes_hearth_web(studio, tmp_path):
    d, web = studio
    port = free_port()
    pdir = tempfile.mkdtemp(prefix="prom")
    cfg = os.path.join(pdir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: hearth\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % web.port)
    log = open(os.path.join(pdir, "prometheus.log"), "wb")
    prom = subprocess.Popen([shutil.which("prometheus"), "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        def query(q):
            if prom.poll() is not None:
                pytest.fail("prometheus exited:\n" + open(os.path.join(pdir, "prometheus.log")).read()[-3000:])
            s, _, b = http("http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(q)))
            if s != 200:
                return None
            r = json.loads(b)["data"]["result"]
            return r[0]["value"][1] if r else None

        assert wait_for("prometheus sees hearth_customers", lambda: query("hearth_customers"), 60) == \
            str(d.status()["customers"])
        assert wait_for("the target up", lambda: query('up{job="hearth"}'), 60) == "1"
        assert wait_for("hearth-web's own series", lambda: query("hearth_web_requests_total"), 60)
    finally:
        prom.terminate()
        prom.wait(30)
        log.close()
        shutil.rmtree(pdir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Figures and pictures (printed and saved, never asserted)
# --------------------------------------------------------------------------------------

@need_examples
def test_api_latency(studio):
    """p50/p99 of the /api/ routes the pages use, over a kept-alive connection; -s prints it."""
    import http.client
    d, web = studio
    paths = ["/api/view/today", "/api/view/today?owner=zhang&rule=customer_cooling",
             "/api/view/alerts", "/api/view/customer/C1044", "/api/status", "/api/rules",
             "/api/timeline/C1044?desc=true&limit=50"]
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    report, every = [], []
    for path in paths:
        took = []
        for _ in range(200):
            t0 = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            took.append((time.perf_counter() - t0) * 1000)
            assert r.status == 200, (path, body[:200])
        took.sort()
        every += took
        report.append("%-52s p50 %6.2f ms  p99 %6.2f ms" % (path, took[len(took) // 2], took[int(len(took) * 0.99) - 1]))
    conn.close()
    every.sort()
    print("\n/api/ latency, %d requests each, %s build:\n  %s\n  all: p50 %.2f ms, p99 %.2f ms"
          % (200, os.path.basename(BUILD.rstrip("/")) or "build", "\n  ".join(report),
             every[len(every) // 2], every[int(len(every) * 0.99) - 1]))


@need_examples
@pytest.mark.skipif(not os.environ.get("HEARTH_WEB_SHOTS"), reason="HEARTH_WEB_SHOTS=DIR saves screenshots")
def test_screenshots(studio):
    """HEARTH_WEB_SHOTS=docs/web: a picture of every page, desktop and phone, light and dark."""
    _, web = studio
    out = os.environ["HEARTH_WEB_SHOTS"]
    out = out if os.path.isabs(out) else os.path.join(REPO, out)
    os.makedirs(out, exist_ok=True)
    pages = [("today", "/"), ("alerts", "/alerts"), ("customer", "/c/C1044"), ("rules", "/rules"),
             ("status", "/status")]
    for lang, suffix in (("zh-CN", ""), ("en-US", "-en")):
        driver = make_browser(lang=lang)
        try:
            for name, path in pages:
                open_page(driver, web.base + path)
                h = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1280, min(h + 120, 2400))
                driver.save_screenshot(os.path.join(out, "%s%s.png" % (name, suffix)))
                driver.set_window_size(1280, 900)
        finally:
            close_browser(driver)
    driver = make_browser(lang="zh-CN", width=390, height=844)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 1400, "deviceScaleFactor": 1, "mobile": True})
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        for name, path in (("today", "/"), ("customer", "/c/C1044")):
            open_page(driver, web.base + path)
            driver.save_screenshot(os.path.join(out, "%s-phone-dark.png" % name))
    finally:
        close_browser(driver)


# --------------------------------------------------------------------------------------
# The program: --check, config errors, install
# --------------------------------------------------------------------------------------

def test_check_and_config_errors(tmp_path):
    require_binary(WEB)
    p = subprocess.run([WEB, "--check", "-c", os.path.join(REPO, "etc", "web.yaml")], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"configuration OK" in p.stdout, p
    bad = tmp_path / "bad.yaml"
    bad.write_text("web:\n  listen: \"localhost\"\n  readonly: false\n  refresh: 2h\n  colour: red\n"
                   "  tls: {cert: /x}\ncontrol:\n  path: \"\"\nlogs: {}\n")
    p = subprocess.run([WEB, "--check", "-c", str(bad)], capture_output=True, timeout=10)
    err = p.stderr.decode()
    assert p.returncode == 78, p
    for where, what in (("2:11", "web.listen"), ("3:13", "read-only"), ("4:12", "web.refresh"),
                        ("5:3", "colour"), ("6:8", "both cert and key"), ("8:9", "control.path"),
                        ("9:1", "logs")):
        assert "%s:%s:" % (bad, where) in err and what in err, (where, what, err)
    p = subprocess.run([WEB, "--check", "-c", os.path.join(REPO, "etc", "web.yaml"), "--listen", "nope"],
                       capture_output=True, timeout=10)
    assert p.returncode == 2 and b"--listen" in p.stderr
    p = subprocess.run([WEB, "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith(b"hearth-web ")


def test_tls(tmp_path, fresh):
    """With web.tls the page is served over HTTPS (libmicrohttpd's GnuTLS)."""
    import ssl
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, crt = str(tmp_path / "web.key"), str(tmp_path / "web.crt")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        pytest.skip("openssl cannot make a test certificate: %s" % p.stderr[-300:])
    d, _ = fresh()
    web = Web(str(tmp_path), d.cfg.control, extra_web="  tls: {cert: %s, key: %s}\n" % (json.dumps(crt), json.dumps(key)))
    web.base = "https://127.0.0.1:%d" % web.port
    ctx = ssl.create_default_context(cafile=crt)
    with open(web.log, "wb") as f:
        web.proc = subprocess.Popen([WEB, "-c", web.path, "--listen", "127.0.0.1:%d" % web.port],
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        def get():
            with urllib.request.urlopen(web.base + "/api/status", context=ctx, timeout=5) as r:
                return r.status, json.loads(r.read())
        status, body = wait_for("HTTPS answers", lambda: web.alive() and get())
        assert status == 200 and body["ok"] is True
    finally:
        web.stop()


def test_install_units_and_config(tmp_path):
    require_binary(WEB)
    root = str(tmp_path / "root")
    subprocess.run(["make", "-s", "install", "DESTDIR=" + root, "PREFIX=/usr"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    installed = os.path.join(root, "etc/hearth/web.yaml")
    text = open(installed).read()
    assert "/run/hearth/control.sock" in text and "./var" not in text
    p = subprocess.run([os.path.join(root, "usr/sbin/hearth-web"), "--check", "-c", installed],
                       capture_output=True, timeout=10)
    assert p.returncode == 0, p
    units = [os.path.join(root, c) for c in ("lib/systemd/system", "usr/lib/systemd/system")
             if os.path.exists(os.path.join(root, c, "hearth-web.service"))]
    assert units, "hearth-web.service was not installed"
    service = open(os.path.join(units[0], "hearth-web.service")).read()
    assert "ExecStart=/usr/sbin/hearth-web -c /etc/hearth/web.yaml" in service
    assert os.path.exists(os.path.join(units[0], "hearth-web.socket"))
    assert os.path.exists(os.path.join(root, "usr/share/man/man8/hearth-web.8"))
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return
    for u in os.listdir("/lib/systemd/system"):
        if u.endswith(".target") and not os.path.exists(os.path.join(units[0], u)):
            shutil.copy(os.path.join("/lib/systemd/system", u), os.path.join(units[0], u))
    out = subprocess.run([analyze, "verify", "--man=no", "--root=" + root,
                          os.path.join(units[0], "hearth-web.service"), os.path.join(units[0], "hearth-web.socket")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([analyze, "security", "--offline=true", "--root=" + root, "hearth-web.service"],
                         capture_output=True, text=True, timeout=60)
    line = [l for l in out.stdout.splitlines() if "Overall exposure level" in l]
    assert line, out.stdout + out.stderr
    assert float(line[0].split(":")[1].split()[0]) <= 2.0, line[0]


def test_socket_activation(tmp_path, fresh):
    """systemd hands over the listening socket named `http` (hearth-web.socket)."""
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate is not installed")
    d, _ = fresh()
    web = Web(str(tmp_path), d.cfg.control)
    with open(web.log, "wb") as f:
        web.proc = subprocess.Popen([activate, "--fdname=http", "-l", "127.0.0.1:%d" % web.port,
                                     WEB, "-c", web.path], stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        # the config's listen (127.0.0.1:1) is not used: the passed socket is
        wait_for("hearth-web on the passed socket", lambda: web.alive() and http(web.base + "/api/status")[0] == 200)
        assert "the socket systemd passed" in web.log_text()
    finally:
        web.stop()
