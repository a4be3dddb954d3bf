/* One transaction per ingest group; see include/hearth/group_commit.h. */
#include "hearth/batch.h"
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"

struct group {
	const struct group_committer *gc;
	struct batch **batches;
	size_t n;
	int folded;                     /* events are in pending state, rules evaluated */
	const struct strmap *live;      /* with load events in the group: customers of live ones */
	const struct group_mark *marks; /* cluster mode: watermarks written with the group */
	size_t nmarks;
};

static int fold_begin(void *ctx, size_t events, size_t customers)
{
	struct group *g = ctx;
	return engine_ingest_fold_begin(g->gc->engine, events, customers);
}

static void folded_one(void *ctx, struct cust *c, size_t index)
{
	struct group *g = ctx;
	engine_ingest_folded(g->gc->engine, c, index);
}

/*
 * Run once per attempt: store_write retries after growing the map, and then
 * the records and changes are put again but nothing is folded or evaluated twice.
 */
static int group_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct group *g = vctx;
	int folded = g->folded;
	const struct fold_watch watch = { fold_begin, folded_one, g };

	/* a group with load events defers some customers: the writer sorts them out after the fold */
	if (timeline_append_in(g->gc->tl, w, g->batches, g->n, &g->folded, g->live ? NULL : &watch, err) < 0)
		return -1;
	if (!folded) {
		engine_ingest_evaluate(g->gc->engine, w->txn, g->live);
		timeline_append_evaluated(g->gc->tl);
	}
	for (size_t i = 0; i < g->nmarks; i++)
		wtxn_meta_u64(w, g->marks[i].name, g->marks[i].value);
	return engine_ingest_write(g->gc->engine, w, err);
}

/*
 * When some batches of the group belong to a history load, the customers that
 * live batches touch are evaluated as usual and the others deferred. NULL
 * *live: no load batch, everyone is live. -1 when out of memory.
 */
static int live_customers(struct batch **batches, size_t n, struct strmap *live, int *loading)
{
	*loading = 0;
	for (size_t i = 0; i < n; i++)
		*loading |= batches[i]->defer;
	if (!*loading)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (batches[i]->defer)
			continue;
		for (size_t j = 0; j < batches[i]->nevents; j++) {
			const struct event *ev = &batches[i]->events[j].ev;
			if (strmap_put(live, ev->customer, ev->customer_len, live) < 0)
				return -1;
		}
	}
	return 0;
}

int group_commit(const struct group_committer *gc, struct batch **batches, size_t n)
{
	return group_commit_marked(gc, batches, n, NULL, 0);
}

int group_commit_marked(const struct group_committer *gc, struct batch **batches, size_t n,
			const struct group_mark *marks, size_t nmarks)
{
	struct group g = { .gc = gc, .batches = batches, .n = n, .marks = marks, .nmarks = nmarks };
	struct herr err = { 0 };
	struct strmap live;
	int loading, rc;

	strmap_init(&live);
	/* out of memory: evaluate everyone now rather than lose the distinction silently */
	if (live_customers(batches, n, &live, &loading) == 0 && loading)
		g.live = &live;
	rc = store_write(gc->st, group_fn, &g, &err);
	/* the engine's changes point at pending customers: dropped before any rollback */
	engine_ingest_end(gc->engine, rc == 0);
	timeline_append_end(gc->tl, batches, n, g.folded, rc < 0 ? &err : NULL);
	if (gc->committed)
		gc->committed(gc->ctx);
	strmap_clear(&live);
	return rc;
}
