/*
 * The customers of history loads whose evaluation waits for the load's end
 * (PROTOCOL.md, "History loads"): a set in memory, kept durable in the
 * deferred table with the ingest group that deferred them. Ticks and
 * re-evaluations pass them by; load_end.c evaluates them when the load ends.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "hearth/eval.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"

static int load_deferred(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
	struct engine *eng = ctx;

	(void)val;
	(void)vlen;
	/* the value only marks presence: strmap_get answers NULL for absent */
	if (strmap_put(&eng->deferred, key, klen, eng) < 0)
		eng->stats.errors++;
	return 0;
}

int engine_load_open(struct engine *eng, struct herr *err)
{
	strmap_init(&eng->deferred);
	return store_each(eng->st, DB_DEFERRED, load_deferred, eng, err);
}

void engine_load_close(struct engine *eng)
{
	strmap_clear(&eng->deferred);
	free(eng->newly_deferred);
}

int engine_defer(struct engine *eng, struct cust *c)
{
	if (strmap_get(&eng->deferred, c->id, c->id_len))
		return 0; /* already stored as deferred */
	if (strmap_put(&eng->deferred, c->id, c->id_len, eng) < 0)
		return -1;
	if (eng->nnewly_deferred == eng->newly_deferred_cap) {
		size_t cap = eng->newly_deferred_cap ? eng->newly_deferred_cap * 2 : 256;
		struct cust **more = realloc(eng->newly_deferred, cap * sizeof(*more));
		if (!more) {
			strmap_del(&eng->deferred, c->id, c->id_len);
			return -1;
		}
		eng->newly_deferred = more;
		eng->newly_deferred_cap = cap;
	}
	eng->newly_deferred[eng->nnewly_deferred++] = c;
	return 0;
}

void engine_load_write(struct engine *eng, struct wtxn *w)
{
	for (size_t i = 0; i < eng->nnewly_deferred; i++) {
		const struct cust *c = eng->newly_deferred[i];
		wtxn_put(w, DB_DEFERRED, c->id, c->id_len, "", 0, 0);
	}
	for (size_t i = 0; i < eng->nundefer; i++)
		wtxn_del(w, DB_DEFERRED, eng->due[i]->id, eng->due[i]->id_len);
}

int engine_load_group_end(struct engine *eng, int committed)
{
	int batch = eng->load_deferred_group && committed;

	if (!committed)
		for (size_t i = 0; i < eng->nnewly_deferred; i++)
			strmap_del(&eng->deferred, eng->newly_deferred[i]->id, eng->newly_deferred[i]->id_len);
	eng->nnewly_deferred = 0;
	eng->load_deferred_group = 0;
	return batch;
}

size_t engine_drop_deferred(struct engine *eng, struct cust **custs, size_t n)
{
	size_t kept = 0;

	if (!eng->deferred.count)
		return n;
	for (size_t i = 0; i < n; i++) {
		struct cust *c = custs[i];
		if (strmap_get(&eng->deferred, c->id, c->id_len)) {
			/* out of the due index until the load's end evaluates it */
			c->deadline = EVAL_NEVER;
			timeline_deadline_set(eng->tl, c);
			continue;
		}
		custs[kept++] = c;
	}
	return kept;
}
