"""The Debian packages (issue #18; docs/PACKAGING.md).

Two static checks run everywhere: debian/control's Build-Depends name the package behind
every library the build uses, and debian/changelog agrees with the Makefile's VERSION.

The rest builds the packages twice (the second time from a copy of the tree, elsewhere,
one changelog entry later), runs lintian, compares the builds, installs the packages on
this machine with dpkg, upgrades, removes and purges them, and boots a Debian 12
container under systemd-nspawn to see the service start under real systemd after
`apt install`. That takes minutes and changes the machine (root; hearth must not already
be installed), so it runs only from `make deb-check` (HEARTH_DEB_CHECK=1), and restores
the machine when done: everything the packages made is purged, and the system user the
test caused to exist is deleted.
"""

import email.utils
import gzip
import hashlib
import io
import os
import pwd
import re
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from hearthtest import REPO, Config, assert_ok, ctl_at, short_dir

DEB_CHECK = os.environ.get("HEARTH_DEB_CHECK") == "1"
deb_check = pytest.mark.skipif(
    not DEB_CHECK, reason="builds and installs the Debian packages on this machine: "
                          "`make deb-check` runs it (HEARTH_DEB_CHECK=1)")

PACKAGES = ("hearth", "hearth-relay", "hearth-web")
# Everything the packages may leave on a machine after a purge, by Debian's convention.
KEPT_AFTER_PURGE = "the system user and group hearth"
DEADLINE = 15.0
# pkg-config modules the Makefile names that no package is built from
NOT_PACKAGED = {"sqlite3": "only hearth-bench uses it"}


def sh(cmd, timeout=900, check=True, **kw):
    """Runs cmd, stdout and stderr together; a failure shows the command and its output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (" ".join(map(str, cmd)), p.returncode,
                                                     p.stdout[-6000:]))
    return p


def changelog_version(path):
    first = open(path).readline()
    m = re.match(r"^hearth \(([^)]+)\)", first)
    assert m, "%s: first line is not 'hearth (VERSION) …': %r" % (path, first)
    return m.group(1)


def makefile_version():
    m = re.search(r"^VERSION := *(\S+)", open(os.path.join(REPO, "Makefile")).read(), re.M)
    assert m, "no VERSION := in the Makefile"
    return m.group(1)


# --------------------------------------------------------------------------------------
# Static checks (every run of tests/e2e)
# --------------------------------------------------------------------------------------

def build_depends():
    text = open(os.path.join(REPO, "debian/control")).read()
    text = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
    m = re.search(r"^Build-Depends:(.*?)^(?=\S)", text, re.M | re.S)
    assert m, "debian/control has no Build-Depends"
    names = set()
    for item in m.group(1).split(","):
        item = re.sub(r"[(<\[].*", "", item).strip()
        if item:
            names.add(item.split(":")[0])
    return names


def test_build_depends_name_every_library_the_build_uses():
    if shutil.which("pkg-config") is None or shutil.which("dpkg") is None:
        pytest.skip("needs pkg-config and dpkg")
    make = open(os.path.join(REPO, "Makefile")).read()
    modules = set(re.search(r"^PKGS *:= *(.*)$", make, re.M).group(1).split())
    for m in re.finditer(r"pkg-config --(?:libs|cflags) ([^)]*)\)", make):
        modules.update(w for w in m.group(1).split() if not w.startswith("$"))
    modules -= set(NOT_PACKAGED)
    deps = build_depends()
    missing = []
    for mod in sorted(modules):
        d = sh(["pkg-config", "--variable=pcfiledir", mod], check=False).stdout.strip()
        pc = os.path.join(d, mod + ".pc")
        if not d or not os.path.exists(pc):
            pytest.skip("pkg-config module %s is not installed here (tools/deps.sh)" % mod)
        owner = sh(["dpkg", "-S", pc]).stdout.split(":")[0]
        if owner not in deps:
            missing.append("%s (pkg-config %s)" % (owner, mod))
    scdoc = shutil.which("scdoc")
    if scdoc and "scdoc" not in deps:
        missing.append("scdoc (man pages)")
    assert not missing, "debian/control's Build-Depends lack: " + ", ".join(missing)


def test_changelog_agrees_with_makefile():
    version = changelog_version(os.path.join(REPO, "debian/changelog"))
    upstream = makefile_version()
    assert re.match(re.escape(upstream) + r"([~+].*)?$", version), \
        "debian/changelog is at %s, the Makefile's VERSION is %s" % (version, upstream)


# --------------------------------------------------------------------------------------
# Two builds
# --------------------------------------------------------------------------------------

def copy_tree(dst):
    """The checkout as tools/deb.sh sees it, without build output and VCS, its files
    dated now as in a fresh clone (copy, not copy2: file times older than the changelog
    are kept, newer ones become its date)."""
    ignore = shutil.ignore_patterns(".git", "build", "var", "__pycache__", ".pytest_cache")
    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True, copy_function=shutil.copy)


def add_changelog_entry(tree, version, when):
    path = os.path.join(tree, "debian/changelog")
    old = open(path).read()
    maint = re.search(r"^ -- (.*?>)", old, re.M).group(1)
    entry = ("hearth (%s) bookworm; urgency=medium\n\n"
             "  * A later build, for the upgrade test.\n\n"
             " -- %s  %s\n\n" % (version, maint, email.utils.formatdate(when)))
    with open(path, "w") as f:
        f.write(entry + old)


def changelog_epoch(tree):
    out = sh(["dpkg-parsechangelog", "-l", os.path.join(tree, "debian/changelog"),
              "-S", "Timestamp"]).stdout
    return int(out.strip())


class Build:
    def __init__(self, out, version, epoch, tree):
        self.out, self.version, self.epoch, self.tree = out, version, epoch, tree

    def deb(self, name):
        arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
        path = os.path.join(self.out, "%s_%s_%s.deb" % (name, self.version, arch))
        assert os.path.exists(path), "%s was not built: %s" % (path, os.listdir(self.out))
        return path

    def debs(self):
        return [self.deb(p) for p in PACKAGES]

    def changes(self):
        return [os.path.join(self.out, f) for f in os.listdir(self.out) if f.endswith(".changes")][0]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    missing = [t for t in ("dpkg-buildpackage", "dh", "lintian") if shutil.which(t) is None]
    if missing:
        pytest.skip("%s not installed: `tools/deps.sh deb`" % ", ".join(missing))
    base = str(tmp_path_factory.mktemp("deb"))
    version = changelog_version(os.path.join(REPO, "debian/changelog"))
    started = time.monotonic()
    a = Build(os.path.join(base, "a"), version, changelog_epoch(REPO), REPO)
    sh([os.path.join(REPO, "tools/deb.sh"), "--no-lint", a.out])
    print("\ndeb: first build %.0fs" % (time.monotonic() - started))
    # the second: another directory, another date, another version; nothing else differs
    tree = os.path.join(base, "elsewhere", "hearth")
    copy_tree(tree)
    # later than the first, and past: dpkg-deb clamps file times to the changelog's date
    # (SOURCE_DATE_EPOCH), which only shows on files newer than it
    when = max(a.epoch + 1, min(a.epoch + 86400, int(time.time()) - 60))
    add_changelog_entry(tree, version + "+upgrade1", when)
    b = Build(os.path.join(base, "b"), version + "+upgrade1", when, tree)
    t = time.monotonic()
    sh([os.path.join(tree, "tools/deb.sh"), "--no-lint", b.out])
    print("deb: second build %.0fs" % (time.monotonic() - t))
    return a, b


@deb_check
def test_lintian_reports_no_error_and_only_documented_tags(builds):
    a, _ = builds
    t = time.monotonic()
    out = sh(["lintian", "--display-info", "--pedantic", a.changes()], check=False)
    print("deb: lintian %.0fs\n%s" % (time.monotonic() - t, out.stdout))
    tags = re.findall(r"^([EWIPX]): \S+: (\S+)", out.stdout, re.M)
    errors = [t for k, t in tags if k == "E"]
    assert not errors, out.stdout
    assert out.returncode == 0, out.stdout
    documented = open(os.path.join(REPO, "docs/PACKAGING.md")).read()
    undocumented = sorted({t for k, t in tags if t not in documented})
    assert not undocumented, "lintian tags not explained in docs/PACKAGING.md: %s" % undocumented


def deb_data(path):
    """name -> (type, mode, owner, linkname, sha256, mtime) of the data part of a .deb."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], capture_output=True, check=True).stdout
    members = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            members[m.name] = (m.type, m.mode, (m.uname, m.gname), m.linkname,
                               hashlib.sha256(data).hexdigest(), m.mtime, data)
    return members


def build_packages(build):
    names = os.listdir(build.out)
    return sorted(n.split("_")[0] for n in names if n.endswith(".deb"))


@deb_check
def test_builds_are_reproducible(builds):
    """The second build, from another directory and one changelog entry later, gives the
    same files byte for byte (the changelog aside), every timestamp is its changelog's,
    and no file holds the path it was built in."""
    a, b = builds
    assert build_packages(a) == build_packages(b)
    assert {"hearth", "hearth-relay", "hearth-dbgsym", "hearth-relay-dbgsym"} <= set(build_packages(a))
    for pkg in build_packages(a):
        da, db = deb_data(a.deb(pkg)), deb_data(b.deb(pkg))
        assert sorted(da) == sorted(db), pkg
        for name in da:
            if name.endswith("/changelog.gz"):
                continue
            if "/share/man/" in name and name.endswith(".gz"):
                ta, tb = man_text(da[name][6], a.epoch), man_text(db[name][6], b.epoch)
                assert ta == tb, "%s: %s differs between the builds" % (pkg, name)
                assert da[name][:4] == db[name][:4], "%s: %s" % (pkg, name)
                continue
            assert da[name][:5] == db[name][:5], "%s: %s differs between the builds" % (pkg, name)
        for build, files in ((a, da), (b, db)):
            late = [n for n, m in files.items() if m[5] != build.epoch]
            if time.time() < build.epoch:
                late = [n for n, m in files.items() if m[5] > build.epoch]    # a clock behind
            assert not late, "%s %s: mtimes not the changelog's: %s" % (pkg, build.version, late[:5])
            for name, m in files.items():
                data = m[6]
                if name.endswith(".gz"):
                    data = gzip.decompress(data)
                for where in (build.out, build.tree):
                    assert where.encode() not in data, "%s: %s holds %s" % (pkg, name, where)


def man_text(gz, epoch):
    """A man page with its date taken out, once checked to be the changelog's."""
    text = gzip.decompress(gz).decode()
    day = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    th = re.search(r'^\.TH .* "(\d{4}-\d\d-\d\d)"$', text, re.M)
    assert th and th.group(1) == day, "man page dated %s, changelog %s" % (th and th.group(1), day)
    return text.replace(th.group(0), "")


# --------------------------------------------------------------------------------------
# Install, upgrade, remove, purge on this machine
# --------------------------------------------------------------------------------------

TRACE_ROOTS = ("/etc", "/lib", "/usr", "/var/lib", "/var/cache", "/var/log", "/run")


def traces():
    """Every path whose name says hearth, where a package puts things."""
    found = set()
    for top in TRACE_ROOTS:
        if os.path.islink(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                if "hearth" in n:
                    found.add(os.path.join(dirpath, n))
    return found


def dpkg_status(pkg):
    """'ii 0.1.0', 'rc 0.1.0' …, or 'gone' for a package dpkg has no files of."""
    p = sh(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", pkg], check=False)
    status = p.stdout.strip()
    return "gone" if p.returncode != 0 or status.startswith("un") else status


def wait_ping(sock, proc):
    end = time.monotonic() + DEADLINE
    while True:
        assert proc.poll() is None, "hearthd exited %s" % proc.returncode
        try:
            return assert_ok(ctl_at(sock, {"cmd": "ping"}))
        except (OSError, AssertionError):
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE) == 0, "hearthd exited %s on SIGTERM" % proc.returncode


def start_installed(args, log, **kw):
    return subprocess.Popen(["/usr/sbin/hearthd"] + args, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, **kw)


def as_service(log):
    """/usr/sbin/hearthd on /etc/hearth/hearth.yaml as user hearth, as the unit runs it."""
    return start_installed(["-c", "/etc/hearth/hearth.yaml"], log, cwd="/",
                           user="hearth", group="hearth", extra_groups=[])


def unit_path(name):
    for d in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise AssertionError("%s is in neither /lib/systemd/system nor /usr/lib/systemd/system" % name)


def conffiles(pkg):
    out = sh(["dpkg-query", "-W", "-f=${Conffiles}", pkg]).stdout
    return {l.split()[0] for l in out.splitlines() if l.strip()}


@pytest.fixture
def machine():
    """Root, and no hearth on this machine yet; restores it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("installs packages with dpkg: needs root")
    for pkg in PACKAGES:
        if dpkg_status(pkg) != "gone":
            pytest.skip("%s is already on this machine (%s): not touching it" % (pkg, dpkg_status(pkg)))
    for path in ("/etc/hearth", "/var/lib/hearth", "/var/lib/hearth-relay", "/run/hearth"):
        if os.path.exists(path):
            pytest.skip("%s exists (a `make install`?): the purge would delete it" % path)
    try:
        pwd.getpwnam("hearth")
        had_user = True
    except KeyError:
        had_user = False
    before = traces()
    yield before
    sh(["dpkg", "--purge"] + list(PACKAGES), check=False)
    if not had_user:
        sh(["userdel", "hearth"], check=False)
        sh(["groupdel", "hearth"], check=False)


@deb_check
def test_install_upgrade_remove_purge(builds, machine, tmp_path):
    a, b = builds
    before = machine
    started = time.monotonic()
    log = open(str(tmp_path / "hearthd.log"), "wb")

    # -- install
    out = sh(["dpkg", "-i"] + a.debs()).stdout
    for pkg in PACKAGES:
        assert dpkg_status(pkg) == "ii " + a.version, (pkg, dpkg_status(pkg), out)
    for path in ("/usr/sbin/hearthd", "/usr/bin/hearthctl", "/usr/sbin/hearth-relay", "/usr/sbin/hearth-web"):
        assert os.access(path, os.X_OK), path
    assert conffiles("hearth") == {"/etc/hearth/hearth.yaml"}
    assert conffiles("hearth-relay") == {"/etc/hearth/relay.yaml"}
    assert conffiles("hearth-web") == {"/etc/hearth/web.yaml"}
    sh(["/usr/sbin/hearth-web", "--check", "-c", "/etc/hearth/web.yaml"])
    for page in ("man8/hearthd.8.gz", "man1/hearthctl.1.gz", "man5/hearth.yaml.5.gz",
                 "man8/hearth-relay.8.gz", "man8/hearth-web.8.gz"):
        assert os.path.exists("/usr/share/man/" + page), page
    service = open(unit_path("hearthd.service")).read()
    assert "ExecStart=/usr/sbin/hearthd -c /etc/hearth/hearth.yaml" in service
    unit_path("hearthd.socket")
    assert "ExecStart=/usr/sbin/hearth-relay -c /etc/hearth/relay.yaml" in open(
        unit_path("hearth-relay.service")).read()
    # the user, and the directories systemd-tmpfiles made for it
    user = pwd.getpwnam("hearth")
    assert user.pw_dir == "/var/lib/hearth" and user.pw_shell.endswith("nologin"), user
    for d in ("/var/lib/hearth", "/run/hearth"):
        st = os.stat(d)
        assert (st.st_uid, st.st_mode & 0o7777) == (user.pw_uid, 0o750), (d, st)
    # the relay's config holds webhook tokens: root and group hearth only
    st = os.stat("/etc/hearth/relay.yaml")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.pw_gid, 0o640), st
    # hearthd and its socket enabled; the relay, whose targets are placeholders, not
    assert os.path.realpath("/etc/systemd/system/multi-user.target.wants/hearthd.service") == \
        os.path.realpath(unit_path("hearthd.service"))
    assert os.path.lexists("/etc/systemd/system/sockets.target.wants/hearthd.socket")
    assert not [p for p in traces() if p.endswith("wants/hearth-relay.service")]
    # the shipped configs are valid in the server layout; the relay reads its own as hearth
    sh(["/usr/sbin/hearthd", "--check", "-c", "/etc/hearth/hearth.yaml"])
    sh(["/usr/sbin/hearth-relay", "--check", "-c", "/etc/hearth/relay.yaml"],
       user="hearth", group="hearth", extra_groups=[])
    if shutil.which("man"):
        # where man finds it (-w: rendering would leave a page in man-db's cache)
        assert sh(["man", "-w", "hearthd"]).stdout.strip() == "/usr/share/man/man8/hearthd.8.gz"

    # -- the installed binaries: by hand on a scratch config, then as the service would
    d, cleanup = short_dir(tmp_path)
    cfg = Config(d)
    proc = start_installed(["-c", cfg.path], log, cwd=d)
    try:
        wait_ping(cfg.control, proc)
        assert sh(["/usr/bin/hearthctl", "-s", cfg.control, "ping"]).returncode == 0
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if cleanup:
            shutil.rmtree(d, ignore_errors=True)
    proc = as_service(log)
    try:
        wait_ping("/run/hearth/control.sock", proc)
        # hearthctl's default socket is the package's
        sh(["/usr/bin/hearthctl", "ping"])
        assert_ok(ctl_at("/run/hearth/control.sock", {"cmd": "ingest", "events": [
            {"customer": "DEB1", "ts": int(time.time() * 1000), "type": "call"}]}))
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()

    # -- upgrade over edited configs
    with open("/etc/hearth/hearth.yaml", "a") as f:
        f.write("# edited by test_deb\n")
    with open("/etc/hearth/relay.yaml", "a") as f:
        f.write("# edited by test_deb\n")
    out = sh(["dpkg", "-i"] + b.debs()).stdout
    for pkg in PACKAGES:
        assert dpkg_status(pkg) == "ii " + b.version, (pkg, dpkg_status(pkg), out)
    assert open("/etc/hearth/hearth.yaml").read().endswith("# edited by test_deb\n")
    assert open("/etc/hearth/relay.yaml").read().endswith("# edited by test_deb\n")
    assert not [p for p in os.listdir("/etc/hearth") if ".dpkg-" in p], os.listdir("/etc/hearth")
    st = os.stat("/etc/hearth/relay.yaml")
    assert (st.st_gid, st.st_mode & 0o777) == (user.pw_gid, 0o640), st
    proc = as_service(log)
    try:
        wait_ping("/run/hearth/control.sock", proc)
        got = assert_ok(ctl_at("/run/hearth/control.sock", {"cmd": "customer", "id": "DEB1"}))
        assert "DEB1" in str(got), got
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()

    # -- remove: programs go, data and configs stay, and the operator is told
    out = sh(["dpkg", "--remove", "hearth-web", "hearth-relay", "hearth"]).stdout
    print(out)
    assert "/var/lib/hearth (customer timelines, alerts) is kept" in out, out
    for pkg in PACKAGES:
        assert dpkg_status(pkg) == "rc " + b.version, (pkg, dpkg_status(pkg))
    assert not os.path.exists("/usr/sbin/hearthd")
    assert os.path.exists("/var/lib/hearth/data.mdb"), os.listdir("/var/lib/hearth")
    assert os.path.exists("/etc/hearth/hearth.yaml") and os.path.exists("/etc/hearth/relay.yaml")

    # -- purge: the data too, said so; nothing the packages made remains
    out = sh(["dpkg", "--purge", "hearth-web", "hearth-relay", "hearth"]).stdout
    print(out)
    assert "purge deletes /var/lib/hearth" in out, out
    for pkg in PACKAGES:
        assert dpkg_status(pkg) == "gone", (pkg, dpkg_status(pkg))
    left = sorted(traces() - before)
    assert not left, "left behind after purge: %s" % left
    assert "hearth" in [u.pw_name for u in pwd.getpwall()], "purge keeps " + KEPT_AFTER_PURGE
    log.close()
    print("deb: install, upgrade, remove, purge %.0fs" % (time.monotonic() - started))


# --------------------------------------------------------------------------------------
# Under real systemd: a Debian 12 container (systemd-nspawn)
# --------------------------------------------------------------------------------------

MIRROR = os.environ.get("HEARTH_DEBIAN_MIRROR", "http://deb.debian.org/debian")

PROBE = r"""#!/bin/sh
# Runs as a service in the booted container (test_deb.py); RESULT lines are its answers.
exec >/root/probe.log 2>&1
trap 'echo "PROBE end"; systemctl poweroff --no-block' EXIT
r() { echo "RESULT $1=$2"; }
yes_no() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
set -x
systemctl is-system-running --wait
r boot "$(systemctl is-system-running)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || { r install apt-get-update-failed; exit 1; }
apt-get install -y -q /root/debs/a/hearth_*.deb /root/debs/a/hearth-relay_*.deb /root/debs/a/hearth-web_*.deb || { r install failed; exit 1; }
r install ok
r enabled "$(systemctl is-enabled hearthd.service) $(systemctl is-enabled hearthd.socket)"
r active "$(systemctl is-active hearthd.service) $(systemctl is-active hearthd.socket)"
r ping "$(yes_no hearthctl ping)"
r user "$(systemctl show -p User --value hearthd.service)"
r relay "$(systemctl is-enabled hearth-relay.service) $(systemctl is-active hearth-relay.service)"
# dash has no /dev/tcp: bash (Essential in Debian) speaks the one HTTP request
web_status() { bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && printf "GET /api/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && head -n 1 <&3' | cut -d' ' -f2; }
r web "$(systemctl is-active hearth-web.socket) $(web_status)"
r exposure "$(systemd-analyze security hearthd.service | sed -n 's/.*Overall exposure level for hearthd.service: //p')"
hearthctl ingest --events "[{\"customer\":\"NSPAWN1\",\"ts\":$(date +%s)000,\"type\":\"call\"}]"
systemctl enable --now hearth-relay.service
r relay_started "$(systemctl is-active hearth-relay.service)"
pid=$(systemctl show -p MainPID --value hearthd.service)
relay_pid=$(systemctl show -p MainPID --value hearth-relay.service)
apt-get install -y -q /root/debs/b/hearth_*.deb /root/debs/b/hearth-relay_*.deb /root/debs/b/hearth-web_*.deb || { r upgrade failed; exit 1; }
r upgrade "$(dpkg-query -W -f='${Version}' hearth)"
r restarted "$(test "$(systemctl show -p MainPID --value hearthd.service)" != "$pid" && echo yes || echo no) $(test "$(systemctl show -p MainPID --value hearth-relay.service)" != "$relay_pid" && echo yes || echo no)"
r active_after_upgrade "$(systemctl is-active hearthd.service) $(systemctl is-active hearth-relay.service)"
r kept "$(yes_no hearthctl customer NSPAWN1)"
journalctl -b --no-pager -u hearthd.service -u hearth-relay.service -u hearth-web.service -u hearth-web.socket | tail -n 60
apt-get purge -y -q hearth-web hearth-relay hearth || { r purge failed; exit 1; }
r after_purge "$(systemctl is-active hearthd.service) $(systemctl is-active hearthd.socket) $(systemctl is-active hearth-relay.service)"
r left "$(find /etc /usr /var/lib /run -name '*hearth*' 2>/dev/null | tr '\n' ' ')"
"""

UNIT = """[Unit]
Description=package probe (test_deb.py)
After=multi-user.target
[Service]
Type=simple
ExecStart=/bin/sh /root/probe.sh
"""


def debootstrap_root():
    """A Debian 12 root with systemd, made once and kept (HEARTH_NSPAWN_ROOT to reuse
    one elsewhere)."""
    root = os.environ.get("HEARTH_NSPAWN_ROOT") or os.path.join(REPO, "build", "nspawn", "bookworm")
    if os.path.exists(os.path.join(root, "lib/systemd/systemd")):
        return root
    fresh = root + ".new"
    shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    t = time.monotonic()
    p = sh(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus",
            "bookworm", fresh, MIRROR], check=False)
    if p.returncode != 0:
        shutil.rmtree(fresh, ignore_errors=True)
        pytest.skip("debootstrap from %s failed (no Debian mirror?): %s" % (MIRROR, p.stdout[-500:]))
    print("deb: debootstrap %.0fs" % (time.monotonic() - t))
    os.rename(fresh, root)
    return root


@deb_check
def test_service_starts_under_systemd_in_a_debian12_container(builds, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (`tools/deps.sh deb`)" % tool)
    a, b = builds
    pristine = debootstrap_root()
    root = str(tmp_path / "root")
    started = time.monotonic()
    try:
        sh(["cp", "-a", pristine, root])
        for name, build in (("a", a), ("b", b)):
            d = os.path.join(root, "root/debs", name)
            os.makedirs(d)
            for deb in build.debs():
                shutil.copy(deb, d)
        with open(os.path.join(root, "root/probe.sh"), "w") as f:
            f.write(PROBE)
        with open(os.path.join(root, "etc/systemd/system/pkgprobe.service"), "w") as f:
            f.write(UNIT)
        os.symlink("/etc/systemd/system/pkgprobe.service",
                   os.path.join(root, "etc/systemd/system/multi-user.target.wants/pkgprobe.service"))
        cmd = ["systemd-nspawn", "-q", "-b", "-D", root, "--console=pipe"]
        if not os.path.isdir("/run/systemd/system"):
            # no systemd on this host to register the container with or make a scope
            cmd += ["--register=no", "--keep-unit"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            console = proc.communicate(timeout=600)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.terminate()     # nspawn shuts the container down
            console = proc.communicate(timeout=60)[0].decode(errors="replace")
        log_path = os.path.join(root, "root/probe.log")
        if not os.path.exists(log_path):
            pytest.fail("the container did not run the probe (nspawn exited %s):\n%s"
                        % (proc.returncode, console[-3000:]))
        log = open(log_path).read()
        print(log if os.environ.get("HEARTH_DEB_VERBOSE") else "")
        results = dict(re.findall(r"^RESULT (\w+)=(.*)$", log, re.M))
        print("deb: under systemd in a Debian 12 container: %s" % results)
        expect = {
            "boot": "running",
            "install": "ok",
            "enabled": "enabled enabled",
            "active": "active active",
            "ping": "yes",
            "user": "hearth",
            "relay": "disabled inactive",
            "web": "active 200",
            "relay_started": "active",
            "upgrade": b.version,
            "restarted": "yes yes",
            "active_after_upgrade": "active active",
            "kept": "yes",
            "after_purge": "inactive inactive inactive",
            "left": "",
        }
        wrong = {k: (results.get(k), v) for k, v in expect.items() if results.get(k, "").strip() != v}
        assert not wrong, "got, expected: %s\n%s" % (wrong, log[-6000:])
        exposure = float(results["exposure"].split()[0])
        assert exposure <= 2.0, results["exposure"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("deb: container %.0fs" % (time.monotonic() - started))
