/*
 * What validating an event needs of the writer's state: its clock (moved by
 * clock.set under --test-clock) and events.max_future (reloadable). The writer
 * publishes both; the threads that parse events (ingest's parser, the cluster's
 * fetchers) read them without a lock. The writer publishes before it answers the
 * command that changed either, so a request sent after that answer is judged by
 * the new values.
 */
#ifndef HEARTH_INGEST_CLOCK_H
#define HEARTH_INGEST_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

struct ingest_clock {
	atomic_int_fast64_t offset_ms;          /* added to the wall clock */
	atomic_int_fast64_t max_future_ms;
};

void ingest_clock_publish(struct ingest_clock *c, int64_t offset_ms, int64_t max_future_ms);
int64_t ingest_clock_now(const struct ingest_clock *c);
int64_t ingest_clock_max_future(const struct ingest_clock *c);

#endif
