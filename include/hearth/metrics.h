/* Prometheus text exposition of the daemon's counters (PROTOCOL.md §5.7 `metrics`). */
#ifndef HEARTH_METRICS_H
#define HEARTH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/engine.h"
#include "hearth/ingest.h"
#include "hearth/outbox.h"
#include "hearth/server.h"
#include "hearth/timeline.h"

struct board_control;
struct server;
struct wbuf;

/* The writer's counters, read on the writer and posted to the board for the control thread. */
struct metrics_writer {
	struct timeline_stats ts;
	struct ingest_stats is;
	struct engine_stats es;
	struct outbox_stats os;
	struct server_counters counters;
	uint64_t map_size, used, growths, customers, events, seq;
};

void metrics_fill(struct server *srv, struct metrics_writer *out);
/* Every metric but the cluster's: the writer's counters and the control thread's (bc). */
void metrics_format(const struct metrics_writer *m, const struct board_control *bc, int64_t uptime_ms,
		    struct wbuf *out);
/* Renders every metric of the daemon into out, on the writer. */
void metrics_render(struct server *srv, struct wbuf *out);

#endif
