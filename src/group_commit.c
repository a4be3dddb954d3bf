/* One transaction per ingest group; see include/hearth/group_commit.h. */
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/timeline.h"

struct group {
	struct server *srv;
	struct batch **batches;
	size_t n;
	int folded;                     /* events are in pending state, rules evaluated */
};

/*
 * Run once per attempt: store_write retries after growing the map, and then
 * the records and changes are put again but nothing is folded or evaluated twice.
 */
static int group_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct group *g = vctx;
	int folded = g->folded;

	if (timeline_append_in(g->srv->tl, w, g->batches, g->n, &g->folded, err) < 0)
		return -1;
	if (!folded)
		engine_ingest_evaluate(g->srv->engine, w->txn);
	return engine_ingest_write(g->srv->engine, w, err);
}

int group_commit(struct server *srv, struct batch **batches, size_t n)
{
	struct group g = { .srv = srv, .batches = batches, .n = n };
	struct herr err = { 0 };
	int rc = store_write(srv->st, group_fn, &g, &err);

	/* the engine's changes point at pending customers: dropped before any rollback */
	engine_ingest_end(srv->engine, rc == 0);
	timeline_append_end(srv->tl, batches, n, g.folded, rc < 0 ? &err : NULL);
	return rc;
}
