# hearth — build, run, test, install.
#   make            build/hearthd build/hearthctl build/hearth-relay build/hearth-web
#   make run        the daemon in the foreground on etc/hearth.yaml, state under ./var,
#                   and hearth-web beside it on http://127.0.0.1:8080/
#   make check      unit + end-to-end tests, plain and under ASan+UBSan; ingest's parser
#                   thread and the threaded cluster under ThreadSanitizer
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        Debian packages under build/deb (docs/PACKAGING.md)
#   make deb-check  builds, lints, installs, upgrades and purges them (root; changes this machine)

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
UNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
SYSUSERSDIR ?= $(shell pkg-config --variable=sysusersdir systemd 2>/dev/null || echo /usr/lib/sysusers.d)
TMPFILESDIR ?= $(shell pkg-config --variable=tmpfilesdir systemd 2>/dev/null || echo /usr/lib/tmpfiles.d)
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
VERSION := 0.1.0

PKGS    := libzmq yaml-0.1 lmdb libsystemd json-c libnats libzstd
CC      ?= cc
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Wvla -Walloca
# CPPFLAGS, CFLAGS and LDFLAGS come last so that a packager's flags win (dpkg-buildflags:
# hardening, and -ffile-prefix-map so that no build path ends up in the binaries).
CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) -Iinclude -D_GNU_SOURCE \
           -DHEARTH_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS)) $(SAN) \
           $(CPPFLAGS) $(CFLAGS)
LDLIBS_ALL := $(LDFLAGS) $(shell pkg-config --libs $(PKGS)) -lm $(SAN)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# The daemon allocates and frees millions of small objects per second under ingest;
# jemalloc takes ~20% less of its CPU than glibc's malloc (docs/PERFORMANCE.md).
# Sanitizer builds keep the sanitizer's allocator.
DAEMON_MALLOC := $(if $(SAN),,$(shell pkg-config --libs jemalloc))

# src/ by stage: ingest, store, engine, publish, control, and common (what they and the
# other programs share); the daemon itself (hearthd.c, server.c) at the top
LIB_SRCS   := $(filter-out src/hearthd.c,$(wildcard src/*.c src/*/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PROGRAMS   := $(BUILD)/hearthd $(BUILD)/hearthctl $(BUILD)/hearth-relay $(BUILD)/hearth-web

MANPAGES   := $(patsubst man/%.scd,$(BUILD)/man/%,$(wildcard man/*.scd))
MANDIR  ?= $(PREFIX)/share/man

.PHONY: all run check unit unit-bins e2e asan tsan deps install clean man stress fuzz fuzz-quick fuzz-build deb deb-check
all: $(PROGRAMS)

man: $(MANPAGES)

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

$(BUILD)/%.o: %.c $(wildcard include/hearth/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libhearth.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/hearthd: $(BUILD)/src/hearthd.o $(BUILD)/libhearth.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) $(DAEMON_MALLOC)

CTL_OBJS   := $(addprefix $(BUILD)/tools/,hearthctl.o ctl_import.o ctl_source.o ctl_reader.o ctl_csv.o \
              ctl_table.o ctl_print.o ctl_watch.o ctl_backup.o ctl_backtest.o ctl_nats.o)
$(CTL_OBJS): tools/ctl.h

$(BUILD)/hearthctl: $(CTL_OBJS) $(BUILD)/libhearth.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

RELAY_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard relay/*.c))
$(RELAY_OBJS): $(wildcard relay/*.h)
$(RELAY_OBJS): CFLAGS_ALL += $(shell pkg-config --cflags libcurl libcrypto)

$(BUILD)/hearth-relay: $(RELAY_OBJS) $(BUILD)/libhearth.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs libcurl libcrypto)

# the relay's unit test links its objects (all but main)
$(BUILD)/tests/test_relay: tests/unit/test_relay.c $(filter-out %/main.o,$(RELAY_OBJS)) $(BUILD)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs libcurl libcrypto cmocka)

# hearthctl's table code (widths, times) is tested on its own object
$(BUILD)/tests/test_ctl: tests/unit/test_ctl.c $(BUILD)/tools/ctl_table.o $(BUILD)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libhearth.a $(LDLIBS_ALL) $(shell pkg-config --libs cmocka)

# ---- hearth-web (issue 15): web → build/hearth-web ------------------------
# The page's static files are embedded (web/assets.c, .incbin): assets.o
# is rebuilt when one changes.
WEB_OBJS   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard web/*.c))
$(WEB_OBJS): web/web.h
$(WEB_OBJS): CFLAGS_ALL += $(shell pkg-config --cflags libmicrohttpd libcrypt)
$(BUILD)/web/assets.o: $(wildcard web/static/*)

$(BUILD)/hearth-web: $(WEB_OBJS) $(BUILD)/libhearth.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs libmicrohttpd libcrypt)

# `make install` installs the web too (the Debian packaging splits it into hearth-web)
.PHONY: install-web
install: install-web
install-web: all man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/hearth $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(BUILD)/hearth-web $(DESTDIR)$(SBINDIR)/hearth-web
	sed -e 's#@SBINDIR@#$(SBINDIR)#g; s#@SYSCONFDIR@#$(SYSCONFDIR)#g' systemd/hearth-web.service.in \
		> $(DESTDIR)$(UNITDIR)/hearth-web.service
	install -m 0644 systemd/hearth-web.socket $(DESTDIR)$(UNITDIR)/hearth-web.socket
	install -m 0644 systemd/hearth-web.sysusers $(DESTDIR)$(SYSUSERSDIR)/hearth-web.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/hearth/web.yaml ] || \
		sed -e 's#\./var/run/#/run/hearth/#g' etc/web.yaml > $(DESTDIR)$(SYSCONFDIR)/hearth/web.yaml

# the web's end-to-end tests alone (headless Chromium, Prometheus): `make e2e` runs them too
.PHONY: web-check
web-check: all
	HEARTH_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e/test_web.py

deps:
	@tools/deps.sh

run: deps all
	@mkdir -p var/lib var/run
	@# hearth-web beside the daemon (http://127.0.0.1:8080/, etc/web.yaml); it stops with it
	@$(BUILD)/hearth-web -c etc/web.yaml & web=$$!; trap 'kill $$web 2>/dev/null' EXIT INT TERM; \
		$(BUILD)/hearthd -c etc/hearth.yaml

unit-bins: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@set -e; for t in $(filter-out $(UNIT_SKIP),$(UNIT_BINS)); do echo "== $$t"; $$t; done

e2e: all
	HEARTH_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e $(E2E_SKIP)

# libFuzzer targets (clang): the event parser, the config loader and rule compiler, the
# rule language. `make check` runs each briefly; `make fuzz` runs them long.
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 10

fuzz-build:
	$(MAKE) -j$(JOBS) CC=clang BUILD=$(FUZZ_DIR) SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" OPT="-O1 -g" \
		$(FUZZ_DIR)/libhearth.a $(FUZZ_TARGETS)

# the relay's loader lives in relay: link its objects (all but main)
$(FUZZ_DIR)/fuzz_relay_config: tests/fuzz/fuzz_relay_config.c $(filter-out %/main.o,$(RELAY_OBJS)) $(FUZZ_DIR)/libhearth.a
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs libcurl libcrypto) -fsanitize=fuzzer

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libhearth.a
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libhearth.a $(LDLIBS_ALL) -fsanitize=fuzzer

# each target starts from its seed corpus (copied: the repository's stays as it is)
fuzz-quick: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do n=$${t##*/fuzz_}; w=$(FUZZ_DIR)/corpus-$$n; \
		rm -rf $$w; mkdir -p $$w; cp tests/fuzz/corpus/$$n/* $$w/; \
		for r in tests/fuzz/regress/$$n-*; do [ -e "$$r" ] || continue; \
			$$t "$$r" >/dev/null 2>&1 || { echo "fuzz $$n: regression $$r fails again"; exit 1; }; done; \
		echo "== fuzz $$n for $(FUZZ_SECONDS)s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/crash-$$n- $$w 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss|#.*DONE|==.*ERROR|SUMMARY)" || true; \
		if ls $(FUZZ_DIR)/crash-$$n-* >/dev/null 2>&1; then echo "fuzz $$n: crash kept in $(FUZZ_DIR)"; exit 1; fi; \
	done

fuzz:
	$(MAKE) fuzz-quick FUZZ_SECONDS=600

# longer fault runs than `make check` affords: 200 kill -9 trials, and 20 of a cluster shard
stress: all
	HEARTH_BUILD=$(BUILD) HEARTH_KILL9_TRIALS=200 $(PYTHON) -m pytest -q -s -p no:cacheprovider \
		tests/e2e/test_durability.py -k kill9
	HEARTH_BUILD=$(BUILD) HEARTH_CLUSTER_TRIALS=20 $(PYTHON) -m pytest -q -s -p no:cacheprovider \
		tests/e2e/test_cluster.py -k kill9

# hearthd's threads under ThreadSanitizer (jemalloc is not linked into sanitizer builds):
# the ingest parser thread and its handoff to the loop (src/ingest/ingest.c), the control
# thread and its queue (src/control/control.c, relay.c), the re-evaluation workers
# (src/engine/reeval_worker.c, with the reload tests) with the tests
# that drive ingest, clock, reloads and CURVE (~40 s), and the cluster threads
# (src/cluster/fetch.c, alerts_stream.c, requests.c, meeting the loop in handoff.c) with
# the cluster tests. tests/tsan.supp silences only the uninstrumented libzmq, libnats
# and libsodium.
TSAN_E2E := tests/e2e/test_ingest.py tests/e2e/test_durability.py tests/e2e/test_read_your_writes.py \
            tests/e2e/test_queries.py tests/e2e/test_rule_lifecycle.py tests/e2e/test_ingest_workers.py \
            tests/e2e/test_history_load.py tests/e2e/test_control.py tests/e2e/test_curve.py \
            tests/e2e/test_cluster.py
# The unit tests too, but for the incremental-vs-brute-force scenarios: one thread, 170 s
# under TSan, run by the plain and ASan builds.
tsan:
	$(MAKE) -j$(JOBS) BUILD=build/tsan SAN="-fsanitize=thread" OPT="-O1 -g" all unit-bins
	$(MAKE) BUILD=build/tsan SAN="-fsanitize=thread" OPT="-O1 -g" unit \
		UNIT_SKIP=build/tsan/tests/test_incremental
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp" HEARTH_BUILD=build/tsan \
		$(PYTHON) -m pytest -q -p no:cacheprovider $(TSAN_E2E)

asan:
	$(MAKE) BUILD=build/asan SAN="$(SANFLAGS)" OPT="-O1 -g" all

# The cluster tests (a real 3-node NATS cluster each, ~85 s) run under ASan and TSan,
# not a third time in the plain build: the CI budget is 15 minutes.
# Builds use every core (JOBS); the tests after them run one at a time.
check: deps
	$(MAKE) -j$(JOBS) all unit-bins
	$(MAKE) unit
	$(MAKE) e2e E2E_SKIP=--ignore=tests/e2e/test_cluster.py
	$(MAKE) -j$(JOBS) BUILD=build/asan SAN="$(SANFLAGS)" OPT="-O1 -g" all unit-bins
	$(MAKE) BUILD=build/asan SAN="$(SANFLAGS)" OPT="-O1 -g" unit e2e
	$(MAKE) tsan
	$(MAKE) fuzz-quick
	$(MAKE) bench-quick

install: all man
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	for m in $(MANPAGES); do s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/hearth
	install -m 0755 $(BUILD)/hearthd $(DESTDIR)$(SBINDIR)/hearthd
	install -m 0755 $(BUILD)/hearth-relay $(DESTDIR)$(SBINDIR)/hearth-relay
	install -m 0755 $(BUILD)/hearthctl $(DESTDIR)$(BINDIR)/hearthctl
	[ -e $(DESTDIR)$(SYSCONFDIR)/hearth/hearth.yaml ] || \
		sed -e 's#\./var/lib#/var/lib/hearth#; s#ipc://\./var/run/#ipc:///run/hearth/#g; s#\./var/run/#/run/hearth/#' \
		etc/hearth.yaml > $(DESTDIR)$(SYSCONFDIR)/hearth/hearth.yaml
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	sed -e 's#@SBINDIR@#$(SBINDIR)#g; s#@SYSCONFDIR@#$(SYSCONFDIR)#g' systemd/hearthd.service.in \
		> $(DESTDIR)$(UNITDIR)/hearthd.service
	install -m 0644 systemd/hearthd.socket $(DESTDIR)$(UNITDIR)/hearthd.socket
	sed -e 's#@SBINDIR@#$(SBINDIR)#g; s#@SYSCONFDIR@#$(SYSCONFDIR)#g' systemd/hearth-relay.service.in \
		> $(DESTDIR)$(UNITDIR)/hearth-relay.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/hearth/relay.yaml ] || \
		sed -e 's#\./var/lib/relay#/var/lib/hearth-relay#; s#ipc://\./var/run/#ipc:///run/hearth/#g; s#\./var/run/#/run/hearth/#' \
		etc/relay.yaml > $(DESTDIR)$(SYSCONFDIR)/hearth/relay.yaml
	install -m 0644 systemd/hearth.sysusers $(DESTDIR)$(SYSUSERSDIR)/hearth.conf
	install -m 0644 systemd/hearth.tmpfiles $(DESTDIR)$(TMPFILESDIR)/hearth.conf

clean:
	rm -rf build

# ---- Debian packages (issue 18; docs/PACKAGING.md) ----------------------------
#   make deb        hearth_*.deb and hearth-relay_*.deb in build/deb, lintian-checked
#   make deb-check  tests/e2e/test_deb.py: builds twice, lintian, reproducibility, dpkg
#                   install/upgrade/remove/purge on this machine (root), and the service
#                   under systemd in a Debian 12 container (systemd-nspawn). A few minutes,
#                   so not part of `make check`; .ci/run runs it after.
deb:
	@tools/deps.sh deb
	tools/deb.sh build/deb

deb-check:
	@tools/deps.sh deb
	HEARTH_DEB_CHECK=1 $(PYTHON) -m pytest -q -s -rs -p no:cacheprovider tests/e2e/test_deb.py

# ---- benchmarks (issue 6): tools/bench → build/hearth-bench -------------------
#   make bench        full sizes, 3 runs where feasible (several minutes)
#   make bench-quick  small sizes, one run: proves the bench works; never fails on timing
#   make bench-plot   docs/perf-scaling.svg from the last run's growth data (gnuplot)
BENCH_SRCS := $(wildcard tools/bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
$(BENCH_OBJS): tools/bench/bench.h
$(BENCH_OBJS): CFLAGS_ALL += $(shell pkg-config --cflags sqlite3)

$(BUILD)/hearth-bench: $(BENCH_OBJS) $(BUILD)/libhearth.a
	$(CC) -o $@ $^ $(LDLIBS_ALL) $(shell pkg-config --libs sqlite3) -lpthread

.PHONY: bench bench-quick
bench: $(BUILD)/hearthd $(BUILD)/hearthctl $(BUILD)/hearth-bench
	$(BUILD)/hearth-bench --build $(BUILD) --rules etc/hearth.yaml

bench-quick: $(BUILD)/hearthd $(BUILD)/hearthctl $(BUILD)/hearth-bench
	$(BUILD)/hearth-bench --quick --build $(BUILD) --rules etc/hearth.yaml

# hearth-bench writes $(BUILD)/bench-scaling.dat after every run that measured a store
.PHONY: bench-plot
bench-plot:
	tools/bench/plot.sh $(BUILD)/bench-scaling.dat docs/perf-scaling.svg
