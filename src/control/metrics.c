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
#include "hearth/outbox.h"
#include "hearth/ingest.h"
#include "hearth/metrics.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

void metric_family(struct wbuf *out, const char *name, const char *type, const char *help)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	wbuf_put(out, line, (size_t)n);
}

void metric_value(struct wbuf *out, const char *name, const char *labels, double value)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s%s%s%s %.17g\n", name, labels ? "{" : "",
			 labels ? labels : "", labels ? "}" : "", value);
	wbuf_put(out, line, (size_t)n);
}

static void one(struct wbuf *out, const char *name, const char *type, const char *help, double v)
{
	metric_family(out, name, type, help);
	metric_value(out, name, NULL, v);
}

void metrics_render(struct server *srv, struct wbuf *out)
{
	struct timeline_stats ts;
	struct ingest_stats is = { 0 };

	timeline_get_stats(srv->tl, &ts);
	if (srv->ingest)
		ingest_get_stats(srv->ingest, &is);
	one(out, "hearth_uptime_seconds", "gauge", "Seconds since the daemon started.",
	    (double)(mono_now_ms() - srv->started_mono_ms) / 1000.0);
	one(out, "hearth_ingest_requests_total", "counter", "Ingest requests received over ZeroMQ.",
	    (double)is.requests);
	one(out, "hearth_ingest_groups_total", "counter",
	    "Groups of ingest requests committed together.", (double)is.groups);
	metric_family(out, "hearth_ingest_events_total", "counter",
		      "Events by outcome, over every door (ZeroMQ and control).");
	metric_value(out, "hearth_ingest_events_total", "result=\"accepted\"", (double)ts.events_accepted);
	metric_value(out, "hearth_ingest_events_total", "result=\"duplicate\"", (double)ts.events_duplicate);
	metric_value(out, "hearth_ingest_events_total", "result=\"rejected\"",
		     (double)(is.events_rejected + srv->counters.ingest_rejected));
	one(out, "hearth_ingest_too_large_total", "counter", "Ingest requests refused as too large.",
	    (double)is.too_large);
	one(out, "hearth_ingest_pauses_total", "counter",
	    "Times ingest stopped reading until pending derived state was written.", (double)is.pauses);
	one(out, "hearth_store_commits_total", "counter", "Durable ingest commits.", (double)ts.commits);
	one(out, "hearth_store_commit_failures_total", "counter",
	    "Ingest commits that failed (store full or store error).", (double)ts.commit_failures);
	one(out, "hearth_store_flushes_total", "counter", "Flushes of derived state to the store.",
	    (double)ts.flushes);
	one(out, "hearth_store_flush_seconds_total", "counter", "Time spent flushing derived state.",
	    (double)ts.flush_us_total / 1e6);
	one(out, "hearth_store_pending_events", "gauge", "Stored events not yet flushed to the indexes.",
	    (double)ts.pending_events);
	one(out, "hearth_store_map_size_bytes", "gauge", "Current LMDB map size.",
	    (double)store_map_size(srv->st));
	one(out, "hearth_store_used_bytes", "gauge", "Bytes of the LMDB map in use.",
	    (double)store_used(srv->st));
	one(out, "hearth_store_map_growths_total", "counter", "Times the LMDB map grew.",
	    (double)store_growths(srv->st));
	one(out, "hearth_customers", "gauge", "Customers in the store.",
	    (double)timeline_customer_count(srv->tl));
	one(out, "hearth_events", "gauge", "Events in the store.", (double)timeline_event_count(srv->tl));
	/* the control thread's (posted on the board) and those answered on the writer (cluster) */
	struct board_control bc = { 0 };
	if (srv->board)
		board_get_control(srv->board, &bc);
	one(out, "hearth_control_connections", "gauge", "Open control connections.",
	    (double)bc.connections);
	one(out, "hearth_control_requests_total", "counter", "Control requests answered.",
	    (double)(bc.requests + srv->counters.control_requests));
	one(out, "hearth_control_errors_total", "counter", "Control requests answered with an error.",
	    (double)(bc.errors + srv->counters.control_errors));
	one(out, "hearth_control_forbidden_total", "counter",
	    "State-changing control requests refused to non-admins.",
	    (double)(bc.forbidden + srv->counters.control_forbidden));
	struct engine_stats es;
	struct outbox_stats os;
	engine_get_stats(srv->engine, &es);
	outbox_get_stats(engine_outbox(srv->engine), &os);
	one(out, "hearth_evaluations_total", "counter", "Customers evaluated against the rules.",
	    (double)es.evaluations);
	one(out, "hearth_ticks_total", "counter", "Evaluation ticks.", (double)es.ticks);
	one(out, "hearth_tick_seconds", "gauge", "Duration of the last tick.", (double)es.tick_us / 1e6);
	one(out, "hearth_tick_customers", "gauge", "Customers the last tick evaluated.",
	    (double)es.tick_customers);
	metric_family(out, "hearth_alerts", "gauge", "Alerts by state.");
	metric_value(out, "hearth_alerts", "state=\"firing\"", (double)es.firing);
	metric_value(out, "hearth_alerts", "state=\"pending\"", (double)es.pending);
	one(out, "hearth_notifications_total", "counter", "Notifications written to the outbox and published.",
	    (double)es.notifications);
	one(out, "hearth_alerts_flapping_total", "counter",
	    "Alerts resolved within evaluation.flap_window of firing.", (double)es.flapping);
	one(out, "hearth_load_deferred_customers", "gauge",
	    "Customers of a history load waiting for its end to be evaluated.", (double)es.deferred);
	one(out, "hearth_notifications_silenced_total", "counter", "Notifications held back by silences.",
	    (double)es.silenced);
	one(out, "hearth_evaluation_errors_total", "counter", "Alert changes that could not be saved.",
	    (double)es.errors);
	one(out, "hearth_outbox_seq", "gauge", "The last notification's sequence number.",
	    (double)engine_seq(srv->engine));
	one(out, "hearth_outbox_pruned_total", "counter", "Notifications pruned past publish.retain.",
	    (double)os.pruned);
	one(out, "hearth_heartbeats_total", "counter", "Heartbeats published.", (double)os.heartbeats);
	one(out, "hearth_reloads_total", "counter", "Configuration reloads attempted.",
	    (double)srv->counters.reloads);
	one(out, "hearth_reload_failures_total", "counter", "Reloads refused for configuration errors.",
	    (double)srv->counters.reload_failures);
	cluster_metrics(srv->cluster, out);     /* cluster mode only */
}
