#!/bin/sh
# Installs the Debian packages hearth needs to build, run and test.
# As root it uses apt-get; otherwise it prints the exact command and fails,
# so `make run` / `make check` never half-build on a machine that lacks them.
#   tools/deps.sh       building, running, testing
#   tools/deps.sh deb   that, and building and checking the Debian packages (make deb, deb-check)
set -eu

PACKAGES="gcc make pkg-config libc6-dev
libzmq3-dev libyaml-dev liblmdb-dev lmdb-utils libsystemd-dev libjson-c-dev
libcurl4-openssl-dev libssl-dev libsqlite3-dev libjemalloc-dev libzstd-dev
libcmocka-dev python3 python3-zmq python3-pytest systemd scdoc man-db clang libclang-rt-14-dev
openssl prometheus-alertmanager gnuplot-nox
libmicrohttpd-dev libcrypt-dev chromium chromium-driver python3-selenium fonts-wqy-microhei prometheus
nats-server libnats-dev"

# The packages' own build dependencies are in debian/control (apt-get build-dep ./);
# these are the tools around them. systemd-container and debootstrap boot a Debian 12
# container for deb-check's test under real systemd.
if [ "${1:-}" = deb ]; then
	PACKAGES="$PACKAGES
debhelper dpkg-dev devscripts fakeroot lintian systemd-container debootstrap"
fi

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	exit 0
fi
echo "deps: missing Debian packages; install them with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
