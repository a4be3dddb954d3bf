/*
 * hearthd: options, configuration, store, sockets, loop, orderly teardown.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <json-c/json.h>
#include <zmq.h>

#include "hearth/cluster.h"
#include "hearth/board.h"
#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/curve.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "hearth/limits.h"
#include "hearth/rules.h"
#include "hearth/ingest.h"
#include "hearth/job.h"
#include "hearth/log.h"
#include "hearth/thread.h"
#include "hearth/loop.h"
#include "hearth/notify.h"
#include "hearth/outbox.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define EXIT_USAGE  2
#define EXIT_CONFIG 78

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hearthd [-c FILE] [--check [--against STORE [--at TIME] [--json]]] [--test-clock] [--version]\n"
		"  -c, --config FILE  configuration (default /etc/hearth/hearth.yaml)\n"
		"      --check        validate the configuration and exit\n"
		"      --against STORE  and say which alerts it would fire, resolve or change\n"
		"                     now in that store (read-only; hearthd may be running on it)\n"
		"      --at TIME      judge at this RFC 3339 time instead of now\n"
		"      --json         print that answer as JSON\n"
		"      --test-clock   allow clock.set / clock.advance (tests only)\n"
		"      --restore FILE replace the configured store by a backup and exit\n"
		"      --version      print the version and exit\n");
}

static void on_signal(struct loop *loop, short revents, void *ctx)
{
	struct server *srv = ctx;
	struct signalfd_siginfo si;
	char msg[4096];

	(void)revents;
	while (read(srv->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("hearthd, SIGHUP: reloading the configuration");
			notify_reloading();
			if (server_reload(srv, msg, sizeof(msg)) == 0)
				control_reload(srv->control);
			notify_ready();
		} else {
			log_info("hearthd, %s: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			notify_stopping();
			loop_stop(loop);
		}
	}
}

static int signals_open(struct server *srv)
{
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	srv->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->signal_fd < 0)
		return -1;
	return loop_watch(srv->loop, NULL, srv->signal_fd, ZMQ_POLLIN, on_signal, srv);
}

/* Before each poll: write derived state when due and wake up for the next one. */
static int64_t before_poll(struct loop *loop, void *ctx)
{
	struct server *srv = ctx;
	struct herr err;
	int filling;

	(void)loop;
	filling = timeline_fill_id_filter(srv->tl);
	timeline_publish_restated(srv->tl);     /* before the flush can take them */
	if (timeline_flush(srv->tl, 0, &err) < 0)
		log_error("store, flush failed (%s); will retry", err.msg);
	control_post_status(srv);        /* for `status` on the control thread */
	ingest_pause(srv->ingest, timeline_backlogged(srv->tl));
	cluster_pause(srv->cluster, timeline_backlogged(srv->tl));
	return filling ? 0 : timeline_flush_due_in(srv->tl);
}

/* The watchdog is fed from the loop itself: a loop that stops turning stops feeding it. */
static void feed_watchdog(struct loop *loop, void *ctx)
{
	struct server *srv = ctx;
	struct engine_stats es;

	notify_watchdog();
	engine_get_stats(srv->engine, &es);
	notify_status("%llu customers, %llu firing, seq %llu",
		      (unsigned long long)timeline_customer_count(srv->tl),
		      (unsigned long long)es.firing, (unsigned long long)engine_seq(srv->engine));
	loop_timer_add(loop, notify_watchdog_interval_ms(), feed_watchdog, srv);
}

/* The cluster's control requests: answered here as on the socket, by a peer that is no admin. */
static struct json_object *answer_cluster(void *ctx, struct json_tokener *tok, const char *line, size_t len)
{
	static const struct control_peer peer = { .uid = (unsigned)-1, .pid = 0, .admin = 0 };

	return control_answer(ctx, tok, line, len, &peer, NULL);
}

static void post_status(void *ctx)
{
	control_post_status(ctx);
}

static int server_start(struct server *srv, struct ruleset *rs, struct herr *err)
{
	srv->started_mono_ms = mono_now_ms();
	server_publish_clock(srv);
	srv->loop = loop_new();
	srv->zctx = zmq_ctx_new();
	if (!srv->loop || !srv->zctx || signals_open(srv) < 0) {
		ruleset_free(rs);
		return herr_set(err, HERR_IO, "hearthd, cannot set up the loop (%s)", strerror(errno));
	}
	srv->st = store_open(srv->cfg->store_path, srv->cfg->map_size, srv->cfg->max_size, err);
	if (!srv->st) {
		ruleset_free(rs);
		return -1;
	}
	srv->tl = timeline_open(srv->st, srv->cfg, err);
	if (!srv->tl) {
		ruleset_free(rs);
		return -1;
	}
	herr_clear(err);
	srv->zap = zap_open(srv->cfg, srv->zctx, srv->loop, err); /* before any CURVE socket takes a handshake */
	if (!srv->zap && err->code != HERR_OK) {
		ruleset_free(rs);
		return -1;
	}
	srv->outbox = outbox_open(srv->cfg, srv->st, srv->loop, srv->zctx, &srv->ingest_clock, err);
	if (!srv->outbox) {
		ruleset_free(rs);
		return -1;
	}
	srv->engine = engine_open(srv->cfg, srv->st, srv->tl, srv->outbox, srv->loop, &srv->ingest_clock,
				  rs, err); /* takes rs */
	if (!srv->engine)
		return -1;
	srv->gc = (struct group_committer){ srv->st, srv->tl, srv->engine, post_status, srv };
	srv->ingest = ingest_open(srv->cfg, srv->zctx, srv->loop, &srv->ingest_clock, &srv->gc, srv->engine,
				  err);
	if (!srv->ingest)
		return -1;
	srv->board = board_new();
	if (!srv->board)
		return herr_set(err, HERR_NOMEM, "out of memory");
	control_post_status(srv);
	srv->control = control_open(srv, notify_listen_fd("control"), err);
	if (!srv->control)
		return -1;
	/* cluster mode: last, once everything it hands work to is there */
	if (srv->cfg->cluster) {
		struct cluster_config *cc = srv->cfg->cluster;
		srv->cfg->cluster = NULL;       /* the cluster's now: a reload keeps it as started */
		srv->cluster = cluster_open(cc, srv->cfg->retain_ms, &srv->gc, srv->outbox, srv->loop,
					    &srv->ingest_clock, answer_cluster, srv, err);
		if (!srv->cluster)
			return -1;
	}
	loop_set_prepare(srv->loop, before_poll, srv);
	if (notify_watchdog_interval_ms() > 0)
		loop_timer_add(srv->loop, notify_watchdog_interval_ms(), feed_watchdog, srv);
	return 0;
}

static void server_stop(struct server *srv)
{
	cluster_close(srv->cluster);    /* first: its threads wait on the loop's work */
	srv->cluster = NULL;
	control_close(srv->control);
	srv->control = NULL;
	board_free(srv->board);
	srv->board = NULL;
	ingest_close(srv->ingest);
	engine_close(srv->engine);
	outbox_close(srv->outbox);
	zap_close(srv->zap);
	timeline_close(srv->tl);
	store_close(srv->st);
	if (srv->signal_fd > 0)
		close(srv->signal_fd);
	if (srv->zctx)
		zmq_ctx_term(srv->zctx);
	loop_free(srv->loop);
	config_free(srv->cfg);
}

static void print_against(struct json_object *ans, const char *store, int64_t at)
{
	struct json_object *rules, *alerts, *v;
	char when[TIME_BUF];

	time_format(at, when, sizeof(when));
	printf("applied to %s at %s, it would fire %s, resolve %s, change %s and start %s pending "
	       "alert(s) over %s customer(s)\n", store, when,
	       json_object_get_string(json_object_object_get(ans, "fire")),
	       json_object_get_string(json_object_object_get(ans, "resolve")),
	       json_object_get_string(json_object_object_get(ans, "change")),
	       json_object_get_string(json_object_object_get(ans, "pending")),
	       json_object_get_string(json_object_object_get(ans, "customers")));
	printf("%-32s %-8s %8s %8s %8s %8s\n", "RULE", "STATUS", "FIRE", "RESOLVE", "CHANGE", "PENDING");
	rules = json_object_object_get(ans, "rules");
	for (size_t i = 0; i < json_object_array_length(rules); i++) {
		v = json_object_array_get_idx(rules, i);
		printf("%-32s %-8s %8s %8s %8s %8s\n",
		       json_object_get_string(json_object_object_get(v, "rule")),
		       json_object_get_string(json_object_object_get(v, "status")),
		       json_object_get_string(json_object_object_get(v, "fire")),
		       json_object_get_string(json_object_object_get(v, "resolve")),
		       json_object_get_string(json_object_object_get(v, "change")),
		       json_object_get_string(json_object_object_get(v, "pending")));
	}
	alerts = json_object_object_get(ans, "alerts");
	if (json_object_array_length(alerts) > 0)
		printf("\n%-32s %-8s %s\n", "RULE", "WOULD", "CUSTOMER");
	for (size_t i = 0; i < json_object_array_length(alerts); i++) {
		v = json_object_array_get_idx(alerts, i);
		printf("%-32s %-8s %s\n", json_object_get_string(json_object_object_get(v, "rule")),
		       json_object_get_string(json_object_object_get(v, "kind")),
		       json_object_get_string(json_object_object_get(v, "customer")));
	}
	if (json_object_get_boolean(json_object_object_get(ans, "truncated")))
		printf("(the list stops at %d alerts; the counts are complete)\n", HEARTH_LIST_MAX);
}

/*
 * --check --against: the configuration's rules over a store, read-only, as
 * reload.dry_run would judge them in the daemon running on it (PROTOCOL.md §5.20).
 * Takes cfg and rs.
 */
static int check_against(struct config *cfg, struct ruleset *rs, const char *path, int64_t at,
			 int json)
{
	struct ingest_clock clock = { 0 };      /* the wall clock's */
	struct job_deps d = { .clock = &clock };
	struct json_object *ans = json_object_new_object();
	struct herr err = { 0 };
	int rc = 1;

	if (at == TIME_NONE)
		at = time_now_ms();
	/* folding the log's tail in memory is routine here, not news ("recovered N events") */
	log_set_level(LOG_LEVEL_WARNING);
	if (!ans || !(d.st = store_open_readonly(path, &err)) ||
	    !(d.tl = timeline_open(d.st, cfg, &err)) || !(d.engine = engine_open_reader(d.tl, &err))) {
		ruleset_free(rs);
		config_free(cfg);
		goto out;
	}
	if (dry_run_against(&d, cfg, rs, at, ans, &err) < 0)
		goto out;
	if (json)
		printf("%s\n", json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
	else
		print_against(ans, path, at);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "hearthd: %s\n", err.msg[0] ? err.msg : "out of memory");
	engine_close(d.engine);
	timeline_close(d.tl);
	store_close(d.st);
	json_object_put(ans);
	return rc;
}

/*
 * Read by jemalloc (linked into the daemon, see the Makefile) when it starts:
 * freed pages go back to the system from its own thread, not in the middle of
 * a loop turn (a purge inline took up to 13 ms under ingest).
 */
const char *malloc_conf = "background_thread:true";

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "against", required_argument, NULL, 'a' },
		{ "at", required_argument, NULL, 'A' },
		{ "json", no_argument, NULL, 'j' },
		{ "test-clock", no_argument, NULL, 't' },
		{ "restore", required_argument, NULL, 'r' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server srv = { .config_path = "/etc/hearth/hearth.yaml", .signal_fd = -1 };
	struct herr err = { 0 };
	struct ruleset *rs = NULL;
	char errors[8192];
	const char *restore = NULL, *against = NULL;
	int64_t at = TIME_NONE;
	int opt, check = 0, json = 0;

	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c': srv.config_path = optarg; break;
		case 'k': check = 1; break;
		case 'a': against = optarg; break;
		case 'A':
			if (time_parse_rfc3339(optarg, strlen(optarg), &at) < 0) {
				fprintf(stderr, "hearthd: --at: '%s' is not an RFC 3339 time\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = 1; break;
		case 't': srv.test_clock = 1; break;
		case 'r': restore = optarg; break;
		case 'V': printf("hearthd %s\n", HEARTH_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc || ((against || json || at != TIME_NONE) && !check) ||
	    ((json || at != TIME_NONE) && !against)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_init("hearthd", LOG_LEVEL_INFO);
	thread_use_c_locale(); /* the writer's own thread */
	srv.cfg = server_load_config(srv.config_path, &rs, errors, sizeof(errors));
	if (!srv.cfg) {
		fputs(errors, stderr);
		return EXIT_CONFIG;
	}
	if (restore) {
		int rc = store_restore(srv.cfg->store_path, restore, &err);
		if (rc < 0)
			log_error("restore, %s", err.msg);
		else
			log_info("restore, '%s' is now the store at '%s'", restore, srv.cfg->store_path);
		ruleset_free(rs);
		config_free(srv.cfg);
		return rc < 0 ? 1 : 0;
	}
	if (check && against) {
		fprintf(stderr, "%s: configuration OK\n", srv.config_path);
		return check_against(srv.cfg, rs, against, at, json);
	}
	if (check) {
		ruleset_free(rs);
		config_free(srv.cfg);
		printf("%s: configuration OK\n", srv.config_path);
		return 0;
	}
	log_set_level(srv.cfg->log_level);
	if (server_start(&srv, rs, &err) < 0) {
		log_error("%s", err.msg);
		server_stop(&srv);
		return 1;
	}
	log_info("hearthd %s, started: store '%s', %llu customers, %llu events", HEARTH_VERSION,
		 srv.cfg->store_path, (unsigned long long)timeline_customer_count(srv.tl),
		 (unsigned long long)timeline_event_count(srv.tl));
	notify_ready();
	notify_status("%llu customers, %llu events", (unsigned long long)timeline_customer_count(srv.tl),
		      (unsigned long long)timeline_event_count(srv.tl));
	/* 1 when the loop failed, or a part of the daemon could not go on (loop_fail) */
	int rc = loop_run(srv.loop) < 0;
	server_stop(&srv);
	log_info("hearthd, stopped");
	return rc;
}
