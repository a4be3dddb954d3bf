/*
 * The evaluation of an ingest group (the writer's group commit): the
 * customers its events touched are evaluated after the fold, their changes
 * written in the group's own transaction, and published once it is durable.
 * Customers touched only by a history load are deferred instead (defer.c).
 */
#include "engine_impl.h"
#include "hearth/alert_states.h"
#include "hearth/engine.h"
#include "hearth/ingest_clock.h"
#include "hearth/state.h"
#include "hearth/timeline.h"

void engine_ingest_evaluate(struct engine *eng, MDB_txn *txn, const struct strmap *live)
{
	struct cust **custs;
	size_t n = timeline_touched(eng->tl, &custs);

	eng->ingest_now = ingest_clock_now(eng->clock);
	eng->load_deferred_group = live != NULL;
	for (size_t i = 0; i < n; i++) {
		struct cust *c = custs[i];
		if (live && !strmap_get(live, c->id, c->id_len) && engine_defer(eng, c) == 0)
			continue;
		engine_evaluate_one(eng, txn, c, eng->ingest_now);
	}
	eng->txn = NULL;
}

int engine_ingest_write(struct engine *eng, struct wtxn *w, struct herr *err)
{
	engine_load_write(eng, w);
	/* what ingest changes goes to the journal: a few customers at random keys per group */
	return eng->nchanges ? engine_put_changes(eng, w, eng->ingest_now, &eng->ingest_seq, 0, err) : 0;
}

void engine_ingest_end(struct engine *eng, int committed)
{
	if (committed)
		alert_states_commit(timeline_alert_states(eng->tl));
	else
		alert_states_discard(timeline_alert_states(eng->tl));
	if (committed && eng->nchanges)
		engine_publish_changes(eng, eng->ingest_seq);
	engine_free_changes(eng);
	if (engine_load_group_end(eng, committed))
		engine_load_batch_done(eng);
}
