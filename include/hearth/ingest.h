/*
 * ZeroMQ ingest (PROTOCOL.md §3): a ROUTER socket on every ingest.listen endpoint,
 * read by a parser thread of its own. Parsed requests that are ready together are
 * committed on the loop thread in one transaction (group commit) and each is
 * answered only after that commit. Everything here but the parser is called
 * from the loop thread.
 */
#ifndef HEARTH_INGEST_H
#define HEARTH_INGEST_H

#include "hearth/err.h"

struct config;
struct engine;
struct group_committer;
struct ingest;
struct ingest_clock;
struct loop;

/*
 * Binds ingest.listen; parsed requests are validated against clock and
 * committed through gc on loop, and a load's end is told to eng.
 */
struct ingest *ingest_open(const struct config *cfg, void *zctx, struct loop *loop,
			   const struct ingest_clock *clock, const struct group_committer *gc,
			   struct engine *eng, struct herr *err);
void ingest_close(struct ingest *in);

/* Stops (or resumes) reading requests; producers wait in ZeroMQ's queues meanwhile. */
void ingest_pause(struct ingest *in, int paused);

struct ingest_stats {
	unsigned long long requests, groups, events_rejected, too_large, pauses;
};
void ingest_get_stats(const struct ingest *in, struct ingest_stats *out);

#endif
