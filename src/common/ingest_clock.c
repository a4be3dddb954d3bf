/* The writer's clock and max_future for parsing threads; see include/hearth/ingest_clock.h. */
#include "hearth/ingest_clock.h"
#include "hearth/units.h"

void ingest_clock_publish(struct ingest_clock *c, int64_t offset_ms, int64_t max_future_ms)
{
	atomic_store(&c->offset_ms, offset_ms);
	atomic_store(&c->max_future_ms, max_future_ms);
}

int64_t ingest_clock_now(const struct ingest_clock *c)
{
	return time_now_ms() + atomic_load(&c->offset_ms);
}

int64_t ingest_clock_max_future(const struct ingest_clock *c)
{
	return atomic_load(&c->max_future_ms);
}
