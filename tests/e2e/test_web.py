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
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from hearthtest import (BUILD, REPO, SANITIZER_MARKERS, Config, Daemon, assert_ok, etc_priority,
                        etc_section, ev, free_port, hearthctl, lifecycle, require_binary, short_dir,
                        check_prometheus_text)

WEB = os.path.join(BUILD, "hearth-web")
EXAMPLES = os.path.join(REPO, "examples", "studio.jsonl")
EXAMPLES_AT = "2026-11-20T18:00:00+08:00"          # examples/expected.json "at"
DEADLINE = 30.0                                    # generous: ASan on a busy 2-core box
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

need_examples = pytest.mark.skipif(not os.path.exists(EXAMPLES), reason="examples/studio.jsonl missing")


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

    def __init__(self, directory, control, refresh="30s", extra_web="", ctx=None):
        require_binary(WEB)
        self.dir = directory
        self.port = free_port()
        self.ctx = ctx                  # an ssl.SSLContext when it serves HTTPS
        self.base = "%s://127.0.0.1:%d" % ("https" if ctx else "http", self.port)
        self.path = os.path.join(directory, "web.yaml")
        with open(self.path, "w") as f:
            f.write("web:\n  listen: \"127.0.0.1:1\"\n  refresh: %s\n%s"
                    "control:\n  path: %s\n  timeout: 5s\nlog:\n  level: debug\n"
                    % (refresh, extra_web, json.dumps(control)))
        self.proc = None
        self.log = os.path.join(directory, "hearth-web.log")

    def start(self, preexec_fn=None):
        with open(self.log, "wb") as f:
            # --listen overrides the file, as documented
            self.proc = subprocess.Popen([WEB, "-c", self.path, "--listen", "127.0.0.1:%d" % self.port],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f, preexec_fn=preexec_fn)
        wait_for("hearth-web answering",
                 lambda: self.alive() and http(self.base + "/api/", context=self.ctx)[0] == 200)
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


def http(url, method="GET", headers=None, data=None, timeout=10, context=None):
    """(status, headers, body bytes) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
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

def make_browser(lang="zh-CN", width=1280, height=900, args=()):
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
              "--window-size=%d,%d" % (width, height)) + tuple(args):
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
    mine = d.customer("A/1")
    assert mine["alerts"] and status == 200
    # (what a firing alert says is rendered at each answer: the test clock runs on)
    assert dict(body["customer"], alerts=lifecycle(body["customer"]["alerts"])) == \
        dict(mine, alerts=lifecycle(mine["alerts"]))
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


def test_nats_and_control_socket_are_exclusive(tmp_path):
    """hearth-web reaches hearthd one way: control.path (or --control), or nats (a cluster,
    tested against a real one in test_cluster.py). Both is an error with its place; neither
    means the server layout's control socket."""
    require_binary(WEB)

    def check(text, *args):
        f = tmp_path / "w.yaml"
        f.write_text(text)
        p = subprocess.run([WEB, "--check", "-c", str(f)] + list(args), capture_output=True, timeout=60)
        return p, p.stderr.decode(), str(f)

    nats = "nats:\n  url: [\"nats://127.0.0.1:4222\", \"nats://127.0.0.1:4223\"]\n  user: hearth\n  password: pw\n"
    p, err, f = check(nats)
    assert p.returncode == 0 and b"configuration OK" in p.stdout, err
    p, err, f = check("control:\n  path: /run/x.sock\n" + nats)
    assert p.returncode == 78 and "%s:4:3:" % f in err and "control.path (line 2, column 9)" in err, err
    p, err, f = check(nats, "--control", "/run/x.sock")
    assert p.returncode == 78 and "%s:2:3:" % f in err and "--control" in err, err
    p, err, f = check("web:\n  top: 5\n")
    assert p.returncode == 0, err
    p, err, f = check("web:\n  top: 5\n", "--control", "/run/x.sock")
    assert p.returncode == 0, err
    p, err, f = check("nats:\n  user: hearth\n  password: pw\n  creds: /x.creds\n  partitions: 0\n  colour: red\n")
    assert p.returncode == 78, err
    for where, what in (("2:3", "nats.url: required"), ("4:10", "not both"), ("5:15", "nats.partitions"),
                        ("6:3", "colour")):
        assert "%s:%s:" % (f, where) in err and what in err, (where, what, err)


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


# --------------------------------------------------------------------------------------
# Writes (v2, web.readonly: false): ack and silences over HTTPS for logged-in users
# --------------------------------------------------------------------------------------

WRITER, WRITER_PASSWORD = "zhang", "s3cret-张"
WRITE_AT = EXAMPLES_AT


def self_signed(directory):
    """(cert, key) for 127.0.0.1 and localhost, made by openssl; skips without it."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, crt = os.path.join(directory, "web.key"), os.path.join(directory, "web.crt")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        pytest.skip("openssl cannot make a test certificate: %s" % p.stderr[-300:])
    return crt, key


def password_hash(password, method="sha-512"):
    """A crypt(3) hash as `mkpasswd -m sha-512` (or `-m yescrypt`) makes it (docs/WEB.md)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            crypt = None
    if crypt is not None:
        if method == "yescrypt":
            # Python's crypt has no yescrypt salt maker: libcrypt's own, through ctypes
            import ctypes
            lib = ctypes.CDLL("libcrypt.so.1")
            lib.crypt_gensalt_rn.restype = ctypes.c_char_p
            buf = ctypes.create_string_buffer(256)
            setting = lib.crypt_gensalt_rn(b"$y$", 0, None, 0, buf, len(buf))
            assert setting, "libcrypt cannot make a yescrypt setting"
            return crypt.crypt(password, setting.decode())
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    if shutil.which("mkpasswd"):
        return subprocess.run(["mkpasswd", "-m", method, "--stdin"], input=password.encode(),
                              capture_output=True, check=True, timeout=30).stdout.decode().strip()
    pytest.skip("neither Python's crypt module nor mkpasswd (Debian's whois) is available")


def write_users(path, users, yescrypt=()):
    with open(path, "w") as f:
        f.write("# name:hash (mkpasswd -m yescrypt)\n")
        for name, password in users.items():
            f.write("%s:%s\n" % (name, password_hash(password, "yescrypt" if name in yescrypt else "sha-512")))
    os.chmod(path, 0o640)


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def tls_context(crt):
    import ssl
    return ssl.create_default_context(cafile=crt)


def write_web(directory, control, users=None):
    """A hearth-web with writes on: TLS, a users file (zhang by default)."""
    crt, key = self_signed(directory)
    users_path = os.path.join(directory, "web-users")
    write_users(users_path, users or {WRITER: WRITER_PASSWORD})
    extra = ("  readonly: false\n  users: %s\n  tls: {cert: %s, key: %s}\n"
             % (json.dumps(users_path), json.dumps(crt), json.dumps(key)))
    web = Web(directory, control, extra_web=extra, ctx=tls_context(crt))
    web.users, web.crt, web.key = users_path, crt, key
    return web


def writes_data():
    """Customers the shipped rules alert on at WRITE_AT: customer_cooling for W1..W6
    (owners li and wang), complaint_unresolved for X1."""
    out = []
    for i, (owner, tier) in enumerate([("li", "C")] * 4 + [("wang", "B")] * 2, 1):
        cid = "W%d" % i
        out += [ev(cid, "2026-08-01T10:00:00+08:00", "profile", attrs={"name": "客户%d" % i, "owner": owner,
                                                                         "tier": tier, "value": 1000 * i}),
                ev(cid, "2026-09-01T10:00:00+08:00", "call")]
    out += [ev("X1", "2026-08-01T10:00:00+08:00", "profile", attrs={"name": "X", "owner": "wang", "tier": "A"}),
            ev("X1", "2026-11-10T10:00:00+08:00", "complaint", ref="T-1")]
    return out


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """(daemon, web, headers): hearthd with writes_data(), hearth-web with writes on,
    and the headers of a request the page would make (login, origin, JSON)."""
    d_dir, cleanup = short_dir(tmp_path_factory.mktemp("webw"))
    d = shipped_daemon(d_dir)
    d.start()
    web = None
    try:
        d.clock_set(WRITE_AT)
        d.ingest_ctl(writes_data())
        web = write_web(d_dir, d.cfg.control).start()
        headers = {"Authorization": basic(WRITER, WRITER_PASSWORD), "Origin": web.base,
                   "Content-Type": "application/json"}
        yield d, web, headers
    finally:
        if web is not None:
            web.stop()
        msg = d.teardown()
        if cleanup:
            shutil.rmtree(d_dir, ignore_errors=True)
        if msg:
            pytest.fail(msg)


def post(web, path, body, headers, raw=None):
    status, h, data = http(web.base + path, method="POST", headers=headers, context=web.ctx,
                           data=raw if raw is not None else json.dumps(body).encode())
    try:
        return status, h, json.loads(data)
    except ValueError:
        return status, h, data


def tls_browser_for(web, user=WRITER, password=WRITER_PASSWORD, lang="en-US"):
    """Chromium that accepts the test certificate and logs in as the users file's user
    (the Authorization header on every request, as a browser sends it once it has asked)."""
    driver = make_browser(lang=lang, args=("--ignore-certificate-errors",))
    if user:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                               {"headers": {"Authorization": basic(user, password)}})
    return driver


@pytest.fixture(scope="module")
def tls_browser(writer):
    driver = tls_browser_for(writer[1])
    yield driver
    close_browser(driver)


def test_write_config_needs_tls_and_users(tmp_path):
    require_binary(WEB)
    crt, key = self_signed(str(tmp_path))
    users = str(tmp_path / "users")
    write_users(users, {WRITER: WRITER_PASSWORD})
    cases = [
        ("", "web.tls (cert and key) and web.users"),
        ("  users: %s\n" % json.dumps(users), "web.tls (cert and key)"),
        ("  tls: {cert: %s, key: %s}\n" % (json.dumps(crt), json.dumps(key)), "web.users"),
    ]
    for extra, names in cases:
        bad = tmp_path / "w.yaml"
        bad.write_text("web:\n  listen: \"127.0.0.1:8443\"\n  readonly: false\n" + extra +
                       "control:\n  path: /run/hearth/control.sock\n")
        p = subprocess.run([WEB, "--check", "-c", str(bad)], capture_output=True, timeout=10)
        err = p.stderr.decode()
        assert p.returncode == 78, (extra, p)
        assert "%s:3:13: web.readonly: false needs %s" % (bad, names) in err, (extra, err)
    good = tmp_path / "ok.yaml"
    good.write_text("web:\n  readonly: false\n  users: %s\n  tls: {cert: %s, key: %s}\n"
                    "control:\n  path: /run/hearth/control.sock\n"
                    % (json.dumps(users), json.dumps(crt), json.dumps(key)))
    p = subprocess.run([WEB, "--check", "-c", str(good)], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"configuration OK" in p.stdout, p
    # the users file's own errors, by line and column
    with open(users, "a") as f:
        f.write("li\n")                                  # line 3: no hash
        f.write("wang:$1$abc$0123456789abcdef012345\n")  # line 4: MD5
        f.write("%s:%s\n" % (WRITER, password_hash("x")))  # line 5: twice
        f.write("bad name:%s\n" % password_hash("x"))   # line 6: a space
    p = subprocess.run([WEB, "--check", "-c", str(good)], capture_output=True, timeout=10)
    err = p.stderr.decode()
    assert p.returncode == 78, p
    for where, what in (("3:1", "name:hash"), ("4:6", "yescrypt"), ("5:1", "twice"), ("6:1", "no space")):
        assert "%s:%s: " % (users, where) in err and what in err, (where, what, err)


def test_writes_need_login_origin_and_json(writer):
    d, web, ok_headers = writer
    ack = {"rule": "customer_cooling", "customer": "W6", "comment": "called back"}

    def without(key, **more):
        h = {k: v for k, v in ok_headers.items() if k != key}
        h.update(more)
        return h

    # no login: 401 with the Basic challenge that makes a browser ask
    status, headers, body = post(web, "/api/ack", ack, without("Authorization"))
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"] == 'Basic realm="hearth"'
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    # a wrong password, an unknown user
    for user, password in ((WRITER, "wrong-password-1"), ("nobody", WRITER_PASSWORD)):
        status, headers, body = post(web, "/api/ack", ack, without("Authorization", Authorization=basic(user, password)))
        assert status == 401 and "WWW-Authenticate" in headers, (user, status, body)
    log = web.log_text()
    assert "login refused for 'zhang' from 127.0.0.1" in log and "login refused for 'nobody'" in log
    assert "wrong-password-1" not in log and WRITER_PASSWORD not in log
    # another site's page (the browser sends its Origin), or no origin at all
    status, _, body = post(web, "/api/ack", ack, without("Origin", Origin="https://evil.example"))
    assert status == 403 and body["error"]["code"] == "cross_origin"
    status, _, body = post(web, "/api/ack", ack, without("Origin"))
    assert status == 403 and body["error"]["code"] == "cross_origin"
    status, _, body = post(web, "/api/ack", ack, without("Origin", Referer="https://evil.example/alerts"))
    assert status == 403
    status, _, body = post(web, "/api/ack", ack, without("Origin", Origin=web.base.replace("https", "http")))
    assert status == 403
    # a Host this server does not answer to, even from "its own" origin
    evil = "evil.example:%d" % web.port
    status, _, body = post(web, "/api/ack", ack, without("Origin", Origin="https://" + evil, Host=evil))
    assert status == 403 and body["error"]["code"] == "cross_origin"
    # JSON only (a form post cannot be made into one without CORS), bounded
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _, body = post(web, "/api/ack", ack, without("Content-Type", **{"Content-Type": ctype}))
        assert status == 415 and body["error"]["code"] == "unsupported_media_type", ctype
    status, _, body = post(web, "/api/ack", None, ok_headers, raw=b'{"comment":"' + b"x" * 20000 + b'"}')
    assert status == 413
    # the body never says who: `by` is the login
    status, _, body = post(web, "/api/ack", dict(ack, by="boss"), ok_headers)
    assert status == 400 and "by" in body["error"]["message"]
    for bad in (b"not json", b"[1]", b'{"rule": 1, "customer": "W6"}', b'{"rule": "customer_cooling"}',
                b'{"rule": "customer_cooling", "customer": "W6", "colour": "red"}'):
        status, _, body = post(web, "/api/ack", None, ok_headers, raw=bad)
        assert status == 400 and body["error"]["code"] == "bad_request", bad
    # a silence must say what it matches, for how long and why
    for bad in ({"for": "1h", "comment": "x"}, {"rule": "customer_cooling", "comment": "x"},
                {"rule": "customer_cooling", "for": "1h"},
                {"rule": "customer_cooling", "for": "1h", "until": "2027-01-01T00:00:00Z", "comment": "x"}):
        status, _, body = post(web, "/api/silence", bad, ok_headers)
        assert status == 400, (bad, body)
    # methods: GET of a write route, PUT anywhere
    status, headers, _ = http(web.base + "/api/ack", context=web.ctx)
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = http(web.base + "/api/ack", method="PUT", headers=ok_headers, data=b"{}", context=web.ctx)
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = http(web.base + "/api/status", method="POST", headers=ok_headers, data=b"{}",
                              context=web.ctx)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    # nothing of it reached hearthd
    assert not [a for a in d.alerts(limit=10000) if a["acked"]]
    assert assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == []


def test_forget_reload_ingest_clock_are_never_reachable(writer):
    d, web, headers = writer
    before = d.status()
    for path in ("/api/forget", "/api/forget/W1", "/api/reload", "/api/ingest", "/api/load.end",
                 "/api/clock.set", "/api/clock.advance", "/api/replay", "/api/silence.add", "/api/silence/1",
                 "/api/ack/customer_cooling/W1", "/api/cmd"):
        status, _, _ = http(web.base + path, context=web.ctx)
        assert status in (404, 405), (path, status)
        for body in ({"cmd": "forget", "id": "W1"}, {"id": "W1", "at": "2030-01-01T00:00:00Z", "events": []}):
            status, _, _ = post(web, path, body, headers)
            assert status in (404, 405), (path, status)
    after = d.status()
    assert (after["customers"], after["events"]) == (before["customers"], before["events"])
    assert after["now"][:10] == before["now"][:10] == "2026-11-20"          # the test clock was not set
    assert d.customer("W1")["id"] == "W1"


def test_preview_is_what_alerts_matches(writer):
    d, web, _ = writer
    for q, want in (({"rule": "customer_cooling", "owner": "li"}, {"rule": "customer_cooling", "owner": "li"}),
                    ({"customer": "X1"}, {"customer": "X1"}),
                    ({"owner": "wang"}, {"owner": "wang"})):
        status, _, body = http(web.base + "/api/silence/preview?" + urllib.parse.urlencode(q), context=web.ctx)
        body = json.loads(body)
        expected = d.alerts(limit=10000, **want)
        assert status == 200 and body["count"] == len(expected) > 0, (q, body)
        assert sorted((a["rule"], a["customer"]) for a in body["alerts"]) == \
            sorted((a["rule"], a["customer"]) for a in expected)
    status, _, body = http(web.base + "/api/silence/preview", context=web.ctx)
    assert status == 400


def test_ack_and_silence_from_the_page(writer, tls_browser):
    d, web, _ = writer
    b = tls_browser
    open_page(b, web.base + "/alerts")
    assert texts(b, "#who-name") == ["logged in as %s" % WRITER]
    # Ack: the button of one firing alert, a comment, Confirm
    b.find_element("css selector", 'button.ack[data-rule="customer_cooling"][data-customer="W1"]').click()
    wait_js(b, "return document.getElementById('write').open", "the ack dialog")
    b.find_element("id", "w-comment").send_keys("called, will visit Monday")
    b.find_element("id", "w-confirm").click()
    wait_for("hearthd records the ack", lambda: [a for a in d.alerts(customer="W1") if a["acked"]])
    acked = [a for a in d.alerts(customer="W1") if a["rule"] == "customer_cooling"][0]
    assert acked["acked_by"] == WRITER
    wait_js(b, "return !document.getElementById('write').open", "the dialog closed")
    wait_js(b, "return !document.querySelector('button.ack[data-customer=\"W1\"]')", "the Ack button gone")
    # hearthd keeps no ack comment (PROTOCOL.md §5.14): hearth-web's log does
    wait_for("the ack in hearth-web's log", lambda: "acked customer_cooling/W1: called, will visit Monday" in web.log_text())
    # Silence: what it matches and how many fire now, before Confirm
    expected = d.alerts(rule="customer_cooling", owner="li", limit=10000)
    b.find_element("id", "new-silence").click()
    wait_js(b, "return document.getElementById('write').open", "the silence dialog")
    b.find_element("id", "w-rule").send_keys("customer_cooling")
    b.find_element("id", "w-owner").send_keys("li")
    wait_js(b, "const c = document.getElementById('w-count'); return c && c.dataset.count === '%d' && "
               "!document.getElementById('w-confirm').disabled" % len(expected), "the preview's count")
    assert sorted(attrs(b, "#w-preview li[data-customer]", "data-customer")) == \
        sorted(a["customer"] for a in expected)
    from selenium.webdriver.support.ui import Select
    Select(b.find_element("id", "w-for")).select_by_value("4h")
    b.find_element("id", "w-comment").send_keys("<b>campaign</b> week")
    b.find_element("id", "w-confirm").click()
    silences = wait_for("hearthd holds the silence", lambda: assert_ok(d.ctl({"cmd": "silence.list"}))["silences"])
    assert len(silences) == 1
    s = silences[0]
    assert (s["rule"], s["owner"], s["by"], s["comment"]) == ("customer_cooling", "li", WRITER, "<b>campaign</b> week")
    assert "customer" not in s or s["customer"] is None
    until = parse_rfc3339_ms(s["until"]) - parse_rfc3339_ms(d.status()["now"])
    assert 4 * 3600000 - 60000 <= until <= 4 * 3600000
    # shown as text in the Silenced tab, and removed from there
    open_page(b, web.base + "/alerts?tab=silenced")
    assert "<b>campaign</b> week" in texts(b, "#silence-%d" % s["id"])[0]
    assert b.execute_script("return document.querySelectorAll('#main b').length") == 0
    b.find_element("css selector", 'button.unsilence[data-id="%d"]' % s["id"]).click()
    wait_js(b, "return document.getElementById('write').open", "the remove dialog")
    b.find_element("id", "w-confirm").click()
    wait_for("the silence removed", lambda: assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == [])
    wait_for("the removal in hearth-web's log", lambda: "%s removed silence %d" % (WRITER, s["id"]) in web.log_text())
    no_console_errors(b)


def test_ack_from_the_customer_page(writer, tls_browser):
    d, web, _ = writer
    b = tls_browser
    open_page(b, web.base + "/c/W2")
    b.find_element("css selector", '#alerts button.ack[data-rule="customer_cooling"]').click()
    wait_js(b, "return document.getElementById('write').open", "the ack dialog")
    b.find_element("id", "w-confirm").click()
    wait_for("hearthd records the ack", lambda: [a for a in d.alerts(customer="W2") if a["acked"]])
    assert [a["acked_by"] for a in d.alerts(customer="W2") if a["rule"] == "customer_cooling"] == [WRITER]
    # the page draws itself again: acked by whom, and no Ack button any more
    wait_js(b, "return !document.querySelector('#alerts button.ack[data-rule=\"customer_cooling\"]')",
            "the card redrawn")
    assert "acked by %s" % WRITER in texts(b, "#alert-customer_cooling")[0]
    # Silence from the card: the form comes filled in with the alert's rule and customer
    b.find_element("css selector", '#alerts button.silence[data-rule="customer_cooling"]').click()
    wait_js(b, "return document.getElementById('write').open", "the silence dialog")
    assert b.find_element("id", "w-customer").get_attribute("value") == "W2"
    wait_js(b, "const c = document.getElementById('w-count'); return c && c.dataset.count === '1'", "preview")
    b.find_element("id", "w-cancel").click()
    assert assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == []


def parse_rfc3339_ms(text):
    import datetime
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run hearth-web as another uid")
def test_hearthd_stays_the_gate(new_config, make_daemon):
    """hearth-web's uid not among hearthd's admins: the login succeeds, hearthd says
    forbidden, and the page says why in words."""
    cfg = new_config(world_readable=True, mode="0666", rules_yaml=etc_section("rules"), priority=etc_priority())
    d = make_daemon(cfg, args=["--test-clock"])
    d.clock_set(WRITE_AT)
    d.ingest_ctl(writes_data())
    web = write_web(cfg.dir, cfg.control)
    for f in (web.users, web.key, web.path):
        os.chmod(f, 0o644)          # readable by nobody (a test directory, a test key)

    def nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    driver = None
    try:
        web.start(preexec_fn=nobody)
        headers = {"Authorization": basic(WRITER, WRITER_PASSWORD), "Origin": web.base,
                   "Content-Type": "application/json"}
        status, _, body = post(web, "/api/ack", {"rule": "customer_cooling", "customer": "W1"}, headers)
        assert status == 403 and body["error"]["code"] == "forbidden", body
        assert "control.admin_groups" in body["error"]["message"]
        status, _, body = post(web, "/api/silence", {"customer": "W1", "for": "1h", "comment": "x"}, headers)
        assert status == 403 and body["error"]["code"] == "forbidden", body
        assert "hearthd refused" in web.log_text()
        driver = tls_browser_for(web)
        open_page(driver, web.base + "/alerts")
        driver.find_element("css selector", 'button.ack[data-customer="W1"]').click()
        wait_js(driver, "return document.getElementById('write').open", "the ack dialog")
        driver.find_element("id", "w-confirm").click()
        wait_js(driver, "return !document.getElementById('w-error').hidden", "the refusal shown")
        assert "control.admin_groups" in driver.find_element("id", "w-error").text
        assert not [a for a in d.alerts(limit=10000) if a["acked"]]
        assert assert_ok(d.ctl({"cmd": "silence.list"}))["silences"] == []
    finally:
        if driver is not None:
            close_browser(driver)
        web.stop()


def test_users_reload_on_sighup_and_failures_are_limited(fresh, tmp_path):
    d, _ = fresh()
    web = write_web(str(tmp_path), d.cfg.control).start()
    try:
        def login(user, password):
            return http(web.base + "/api/login", headers={"Authorization": basic(user, password)},
                        context=web.ctx)[0]

        assert login(WRITER, WRITER_PASSWORD) == 200
        assert login("li", "pw-li") == 401
        # a new user, without a restart
        write_users(web.users, {WRITER: WRITER_PASSWORD, "li": "pw-li"}, yescrypt=("li",))
        assert "\nli:$y$" in open(web.users).read()
        web.proc.send_signal(signal.SIGHUP)
        wait_for("li can log in after SIGHUP", lambda: login("li", "pw-li") == 200)
        # a broken file keeps the users loaded before
        with open(web.users, "a") as f:
            f.write("broken line\n")
        web.proc.send_signal(signal.SIGHUP)
        wait_for("the broken file reported", lambda: "error(s); the users loaded before stay" in web.log_text())
        assert login("li", "pw-li") == 200
        # repeated failures from one address: refused without a check for a while
        codes = [login(WRITER, "guess-%d" % i) for i in range(12)]
        assert codes == [401] * 10 + [429] * 2, codes
        status, headers, body = http(web.base + "/api/login", context=web.ctx,
                                     headers={"Authorization": basic(WRITER, WRITER_PASSWORD)})
        assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited"
        assert 1 <= int(headers["Retry-After"]) <= 300
        status, _, text = http(web.base + "/metrics", context=web.ctx)
        assert status == 200
        failures = [l for l in text.decode().splitlines() if l.startswith("hearth_web_login_failures_total ")]
        assert failures and int(failures[0].split()[1]) >= 10
    finally:
        web.stop()


def test_readonly_refuses_write_routes(fresh):
    d, web = fresh()
    for path in ("/api/ack", "/api/silence", "/api/silence/1/remove"):
        status, headers, _ = http(web.base + path, method="POST", data=b'{"rule":"r","customer":"c"}',
                                  headers={"Content-Type": "application/json", "Origin": web.base})
        assert status == 405 and headers["Allow"] == "GET, HEAD", path
        assert api(web, path)[0] == 404, path
    status, body = api(web, "/api/")
    assert body["readonly"] is True and body["writes"] is False and body["user"] is None
    assert api(web, "/api/login")[0] == 404


def test_page_without_login_offers_it(writer):
    """No credentials yet: the bar offers Log in. (What follows a click, the browser's own
    name-and-password prompt, is not something headless Chromium shows.)"""
    d, web, _ = writer
    driver = tls_browser_for(web, user=None, lang="zh-CN")
    try:
        open_page(driver, web.base + "/alerts")
        assert texts(driver, "#login") == ["登录"]
        assert not driver.find_elements("id", "who-name")
        # the buttons are there: the browser asks for the login when one is used
        assert driver.find_elements("css selector", 'button.ack[data-customer="W3"]')
        # credentials in the URL, as some people type them: the page still works (its
        # fetches are made on location.origin, which has none)
        host = web.base.split("//", 1)[1]
        driver.get("https://%s:%s@%s/alerts" % (WRITER, urllib.parse.quote(WRITER_PASSWORD), host))
        wait_js(driver, "return document.body.dataset.loaded && document.querySelector('#tab-firing tr')",
                "the page opened with credentials in the URL")
        assert driver.execute_script("return document.getElementById('banner').hidden")
    finally:
        close_browser(driver)
