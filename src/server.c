/*
 * What the whole daemon shares: its clock and configuration reloads. A reload
 * swaps in the new configuration only when all of it loads; sockets and the
 * store keep running, and settings that need a restart say so in the log.
 */
#include <stdio.h>
#include <string.h>

#include "hearth/board.h"
#include "hearth/cluster.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/curve.h"
#include "hearth/engine.h"
#include "hearth/rules.h"
#include "hearth/store.h"
#include "hearth/log.h"
#include "hearth/metrics.h"
#include "hearth/outbox.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

int64_t server_now(const struct server *srv)
{
	return time_now_ms() + srv->clock_offset_ms;
}

void server_publish_clock(struct server *srv)
{
	ingest_clock_publish(&srv->ingest_clock, srv->clock_offset_ms, srv->cfg->max_future_ms);
}

void server_status_fill(struct server *srv, struct board_status *out)
{
	struct engine_stats es = { .last_tick = TIME_NONE };

	if (srv->engine)
		engine_get_stats(srv->engine, &es);
	*out = (struct board_status){
		.customers = timeline_customer_count(srv->tl),
		.events = timeline_event_count(srv->tl),
		.firing = es.firing, .pending = es.pending, .deferred = es.deferred,
		.seq = srv->engine ? engine_seq(srv->engine) : 0,
		.last_tick = es.last_tick, .tick_ms = es.tick_us / 1000,
		.reevaluating = es.reevaluating, .load_ending = es.load_ending,
		.clock_offset_ms = srv->clock_offset_ms,
		.map_size = store_map_size(srv->st), .used = store_used(srv->st),
	};
}

/* The cluster's part is text rendered here: its counters are the writer's alone. */
static void post_metrics(struct server *srv)
{
	struct metrics_writer m;
	struct wbuf extra;

	wbuf_init(&extra);
	metrics_fill(srv, &m);
	cluster_metrics(srv->cluster, &extra);
	if (extra.failed || board_put_metrics(srv->board, &m, extra.data, extra.len) < 0)
		log_error("metrics, out of memory: the cluster's metrics are left out");
	wbuf_free(&extra);
}

/* Copies only after a change: an evaluation error, a reload, a silence added or removed. */
static void post_engine_state(struct server *srv)
{
	const struct silence *sl;
	size_t n;
	uint64_t gen = engine_errors_gen(srv->engine);

	if (gen != srv->posted_errors_gen && board_put_rule_errors(srv->board, engine_rules(srv->engine)) == 0)
		srv->posted_errors_gen = gen;
	engine_silences(srv->engine, &sl, &n, &gen);
	if (gen != srv->posted_silences_gen && board_put_silences(srv->board, sl, n) == 0)
		srv->posted_silences_gen = gen;
}

void server_post_status(struct server *srv)
{
	struct board_status s;

	if (!srv->board)
		return;
	server_status_fill(srv, &s);
	board_put_status(srv->board, &s);
	post_metrics(srv);
	if (srv->engine)
		post_engine_state(srv);
}

static int lists_differ(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 1;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 1;
	return 0;
}

static void warn_restart_needed(const struct config *old, const struct config *cfg)
{
	if (strcmp(old->store_path, cfg->store_path) != 0)
		log_warning("reload, store.path changed: takes effect at the next start");
	if (lists_differ(old->ingest_listen, old->ningest_listen, cfg->ingest_listen, cfg->ningest_listen))
		log_warning("reload, ingest.listen changed: takes effect at the next start");
	if (lists_differ(old->publish_listen, old->npublish_listen, cfg->publish_listen, cfg->npublish_listen))
		log_warning("reload, publish.listen changed: takes effect at the next start");
	if (strcmp(old->control_path, cfg->control_path) != 0 || old->control_mode != cfg->control_mode)
		log_warning("reload, control.path or mode changed: takes effect at the next start");
}

struct config *server_load_config(const char *path, struct ruleset **rs, char *errors,
				  size_t size)
{
	struct config *cfg = config_load(path, errors, size);

	if (!cfg)
		return NULL;
	*rs = ruleset_compile(cfg, errors, size);
	if (!*rs) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

int server_reload(struct server *srv, char *msg, size_t size)
{
	struct config *cfg, *old = srv->cfg;
	struct ruleset *rs;

	srv->counters.reloads++;
	cfg = server_load_config(srv->config_path, &rs, msg, size);
	if (!cfg) {
		srv->counters.reload_failures++;
		size_t len = strlen(msg);
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		log_error("reload, configuration refused; keeping the running one:\n%s", msg);
		return -1;
	}
	warn_restart_needed(old, cfg);
	srv->cfg = cfg;
	log_set_level(cfg->log_level);
	timeline_set_config(srv->tl, cfg);
	server_publish_clock(srv);      /* max_future */
	if (srv->outbox)
		outbox_set_config(srv->outbox, cfg);
	if (srv->engine)
		engine_set_rules(srv->engine, cfg, rs); /* frees the rules that pointed into old */
	else
		ruleset_free(rs);
	if (srv->control)
		control_reload(srv->control);
	if (srv->zap)
		zap_reload(srv->zap);
	config_free(old);
	log_info("reload, configuration '%s' loaded", srv->config_path);
	return 0;
}
