/*
 * Metrics: counters are kept where the work happens (ingest, timeline, control)
 * and only read here, so the hot paths pay an increment, never a format.
 */
#include <stdio.h>
#include <string.h>

#include "hearth/board.h"
#include "hearth/cluster.h"
#include "hearth/codec.h"
#include "hearth/control.h"
#include "hearth/engine.h"
#include "hearth/exposition.h"
#include "hearth/outbox.h"
#include "hearth/ingest.h"
#include "hearth/metrics.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

static void one(struct wbuf *out, const char *name, const char *type, const char *help, double v)
{
	metric_family(out, name, type, help);
	metric_value(out, name, NULL, v);
}

void metrics_fill(struct server *srv, struct metrics_writer *out)
{
	memset(out, 0, sizeof(*out));
	timeline_get_stats(srv->tl, &out->ts);
	if (srv->ingest)
		ingest_get_stats(srv->ingest, &out->is);
	if (srv->engine) {
		engine_get_stats(srv->engine, &out->es);
		outbox_get_stats(srv->outbox, &out->os);
		out->seq = engine_seq(srv->engine);
	}
	out->counters = srv->counters;
	out->map_size = store_map_size(srv->st);
	out->used = store_used(srv->st);
	out->growths = store_growths(srv->st);
	out->customers = timeline_customer_count(srv->tl);
	out->events = timeline_event_count(srv->tl);
}

static void format_ingest(const struct metrics_writer *m, struct wbuf *out)
{
	one(out, "hearth_ingest_requests_total", "counter", "Ingest requests received over ZeroMQ.",
	    (double)m->is.requests);
	one(out, "hearth_ingest_groups_total", "counter",
	    "Groups of ingest requests committed together.", (double)m->is.groups);
	metric_family(out, "hearth_ingest_events_total", "counter",
		      "Events by outcome, over every door (ZeroMQ and control).");
	metric_value(out, "hearth_ingest_events_total", "result=\"accepted\"", (double)m->ts.events_accepted);
	metric_value(out, "hearth_ingest_events_total", "result=\"duplicate\"", (double)m->ts.events_duplicate);
	metric_value(out, "hearth_ingest_events_total", "result=\"rejected\"",
		     (double)(m->is.events_rejected + m->counters.ingest_rejected));
	metric_family(out, "hearth_ingest_id_checks_total", "counter",
		      "New event ids checked for duplicates: by the id filter alone, or read in the id index.");
	metric_value(out, "hearth_ingest_id_checks_total", "by=\"filter\"", (double)m->ts.id_checks_filtered);
	metric_value(out, "hearth_ingest_id_checks_total", "by=\"index\"", (double)m->ts.id_checks_read);
	one(out, "hearth_ingest_too_large_total", "counter", "Ingest requests refused as too large.",
	    (double)m->is.too_large);
	one(out, "hearth_ingest_pauses_total", "counter",
	    "Times ingest stopped reading until pending derived state was written.", (double)m->is.pauses);
}

static void format_store(const struct metrics_writer *m, struct wbuf *out)
{
	one(out, "hearth_store_commits_total", "counter", "Durable ingest commits.", (double)m->ts.commits);
	one(out, "hearth_store_commit_failures_total", "counter",
	    "Ingest commits that failed (store full or store error).", (double)m->ts.commit_failures);
	one(out, "hearth_store_flushes_total", "counter", "Flushes of derived state to the store.",
	    (double)m->ts.flushes);
	metric_family(out, "hearth_store_customer_loads_total", "counter",
		      "Customers the writer loaded for ingest, ticks and re-evaluation: read from the store (or new), or kept in memory by a flush.");
	metric_value(out, "hearth_store_customer_loads_total", "from=\"store\"", (double)m->ts.customers_read);
	metric_value(out, "hearth_store_customer_loads_total", "from=\"memory\"", (double)m->ts.customers_kept);
	one(out, "hearth_store_flush_seconds_total", "counter", "Time spent flushing derived state.",
	    (double)m->ts.flush_us_total / 1e6);
	one(out, "hearth_store_pending_events", "gauge", "Stored events not yet flushed to the indexes.",
	    (double)m->ts.pending_events);
	one(out, "hearth_store_map_size_bytes", "gauge", "Current LMDB map size.", (double)m->map_size);
	one(out, "hearth_store_used_bytes", "gauge", "Bytes of the LMDB map in use.", (double)m->used);
	one(out, "hearth_store_map_growths_total", "counter", "Times the LMDB map grew.", (double)m->growths);
	one(out, "hearth_customers", "gauge", "Customers in the store.", (double)m->customers);
	one(out, "hearth_events", "gauge", "Events in the store.", (double)m->events);
}

/* The control thread's (bc) and those answered on the writer (the cluster's). */
static void format_control(const struct metrics_writer *m, const struct board_control *bc, struct wbuf *out)
{
	one(out, "hearth_control_connections", "gauge", "Open control connections.",
	    (double)bc->connections);
	one(out, "hearth_control_requests_total", "counter", "Control requests answered.",
	    (double)(bc->requests + m->counters.control_requests));
	one(out, "hearth_control_errors_total", "counter", "Control requests answered with an error.",
	    (double)(bc->errors + m->counters.control_errors));
	one(out, "hearth_control_forbidden_total", "counter",
	    "State-changing control requests refused to non-admins.",
	    (double)(bc->forbidden + m->counters.control_forbidden));
}

static void format_engine(const struct metrics_writer *m, struct wbuf *out)
{
	const struct engine_stats *es = &m->es;

	one(out, "hearth_evaluations_total", "counter", "Customers evaluated against the rules.",
	    (double)es->evaluations);
	one(out, "hearth_ticks_total", "counter", "Evaluation ticks.", (double)es->ticks);
	one(out, "hearth_tick_seconds", "gauge", "Duration of the last tick.", (double)es->tick_us / 1e6);
	one(out, "hearth_tick_customers", "gauge", "Customers the last tick evaluated.",
	    (double)es->tick_customers);
	metric_family(out, "hearth_alerts", "gauge", "Alerts by state.");
	metric_value(out, "hearth_alerts", "state=\"firing\"", (double)es->firing);
	metric_value(out, "hearth_alerts", "state=\"pending\"", (double)es->pending);
	one(out, "hearth_notifications_total", "counter", "Notifications written to the outbox and published.",
	    (double)es->notifications);
	one(out, "hearth_alerts_flapping_total", "counter",
	    "Alerts resolved within evaluation.flap_window of firing.", (double)es->flapping);
	one(out, "hearth_load_deferred_customers", "gauge",
	    "Customers of a history load waiting for its end to be evaluated.", (double)es->deferred);
	one(out, "hearth_notifications_silenced_total", "counter", "Notifications held back by silences.",
	    (double)es->silenced);
	one(out, "hearth_evaluation_errors_total", "counter", "Alert changes that could not be saved.",
	    (double)es->errors);
	one(out, "hearth_outbox_seq", "gauge", "The last notification's sequence number.", (double)m->seq);
	one(out, "hearth_outbox_pruned_total", "counter", "Notifications pruned past publish.retain.",
	    (double)m->os.pruned);
	one(out, "hearth_heartbeats_total", "counter", "Heartbeats published.", (double)m->os.heartbeats);
	one(out, "hearth_reloads_total", "counter", "Configuration reloads attempted.",
	    (double)m->counters.reloads);
	one(out, "hearth_reload_failures_total", "counter", "Reloads refused for configuration errors.",
	    (double)m->counters.reload_failures);
}

void metrics_format(const struct metrics_writer *m, const struct board_control *bc, int64_t uptime_ms,
		    struct wbuf *out)
{
	one(out, "hearth_uptime_seconds", "gauge", "Seconds since the daemon started.",
	    (double)uptime_ms / 1000.0);
	format_ingest(m, out);
	format_store(m, out);
	format_control(m, bc, out);
	format_engine(m, out);
}

void metrics_render(struct server *srv, struct wbuf *out)
{
	struct metrics_writer m;
	struct board_control bc = { 0 };

	metrics_fill(srv, &m);
	if (srv->board)
		board_get_control(srv->board, &bc);
	metrics_format(&m, &bc, mono_now_ms() - srv->started_mono_ms, out);
	cluster_metrics(srv->cluster, out);     /* cluster mode only */
}
