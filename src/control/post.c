/*
 * What the writer posts to the board (hearth/board.h) for the control thread's
 * readers: its status and counters, and the rules' errors and the silences
 * when they changed.
 */
#include "hearth/board.h"
#include "hearth/cluster.h"
#include "hearth/codec.h"
#include "hearth/control.h"
#include "hearth/engine.h"
#include "hearth/log.h"
#include "hearth/metrics.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

void control_status_fill(struct server *srv, struct board_status *out)
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
		.reeval_workers = es.reeval_workers, .reeval_by_workers = es.reeval_by_workers,
		.ingest_by_workers = es.ingest_by_workers, .ingest_by_seat = es.ingest_by_seat,
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

void control_post_status(struct server *srv)
{
	struct board_status s;

	if (!srv->board)
		return;
	control_status_fill(srv, &s);
	board_put_status(srv->board, &s);
	post_metrics(srv);
	if (srv->engine)
		post_engine_state(srv);
}
