/*
 * The evaluation of an ingest group (the writer's group commit): the
 * customers its events touched are evaluated after the fold, their changes
 * written in the group's own transaction, and published once it is durable.
 * Customers touched only by a history load are deferred instead (defer.c).
 * The workers of the re-evaluation pool evaluate a group's customers as the
 * writer's fold finishes each (reeval_worker.h); then the writer takes a
 * share of what they have not taken yet, as one of them, and waits for the
 * rest: the second core steps rules while the writer folds, and both do once
 * it is done (sleeping there instead left a core idle for a third of the wait).
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine_impl.h"
#include "hearth/alert_states.h"
#include "hearth/engine.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/timeline.h"
#include "reeval_worker.h"

/* Fewer customers in a group are evaluated by the writer: lending them costs more than it saves. */
#define INGEST_WORKERS_MIN 64

/* The workers' results, in the order of custs (that of the evaluation by the writer alone). */
static void apply_held(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n)
{
	const struct reeval_batch **by = eng->lent_by;
	const struct reeval_cust **res = eng->lent_res;

	for (size_t i = 0; i < n; i++)
		by[i] = NULL;
	for (size_t w = 0; w < reeval_pool_lent_size(eng->pool); w++) {
		const struct reeval_batch *b = reeval_pool_batch(eng->pool, w);
		if (b->error_rule >= 0 && (size_t)b->error_rule < eng->rs->n) {
			struct rule *r = &eng->rs->rules[b->error_rule];
			snprintf(r->last_error, sizeof(r->last_error), "%s", b->rule_error);
			eng->errors_gen++;
		}
		for (size_t k = 0; k < b->ncusts; k++)
			if (b->custs[k].nchanges != SIZE_MAX && b->custs[k].index < n) {
				by[b->custs[k].index] = b;
				res[b->custs[k].index] = &b->custs[k];
			}
		if (b->failed)
			log_error("ingest, %s failed (%s); the writer evaluated its share",
				  w < reeval_pool_size(eng->pool) ? "a worker" : "the writer's share beside the workers",
				  b->error);
	}
	const struct reeval_batch *seat = reeval_pool_batch(eng->pool, reeval_pool_size(eng->pool));
	for (size_t i = 0; i < n; i++)
		if (by[i]) {
			engine_apply_worker_result(eng, custs[i], by[i], res[i]);
			if (by[i] == seat)
				eng->stats.ingest_by_seat++;
			else
				eng->stats.ingest_by_workers++;
		} else {
			engine_evaluate_one(eng, txn, custs[i], eng->ingest_now);
		}
}

/* Room for a result per customer the group can touch, made before any is lent. */
static int reserve_results(struct engine *eng, size_t events)
{
	if (events <= eng->lent_cap)
		return 0;
	const struct reeval_batch **by = realloc(eng->lent_by, events * sizeof(*by));
	if (!by)
		return -1;
	eng->lent_by = by;
	const struct reeval_cust **res = realloc(eng->lent_res, events * sizeof(*res));
	if (!res)
		return -1;
	eng->lent_res = res;
	eng->lent_cap = events;
	return 0;
}

int engine_ingest_fold_begin(struct engine *eng, size_t events, size_t customers)
{
	if (!eng->pool || eng->window_out || customers < INGEST_WORKERS_MIN)
		return 0;
	eng->ingest_now = ingest_clock_now(eng->clock);
	if (reserve_results(eng, events) < 0 ||
	    reeval_pool_lend_begin(eng->pool, eng->rs, eng->ingest_now, eng->memo_gen,
				   timeline_alert_states(eng->tl), events) < 0)
		return 0;
	eng->lending = 1;
	return 1;
}

void engine_ingest_folded(struct engine *eng, struct cust *c, size_t index)
{
	if (eng->lending)
		reeval_pool_lend(eng->pool, c, index);
}

void engine_ingest_evaluate(struct engine *eng, MDB_txn *txn, const struct strmap *live)
{
	struct cust **custs;
	size_t n = timeline_touched(eng->tl, &custs);

	eng->load_deferred_group = live != NULL;
	if (eng->lending) {
		reeval_pool_lend_end(eng->pool, txn);
		eng->lending = 0;
		apply_held(eng, txn, custs, n);
		eng->ingest_workers = 1;
		eng->txn = NULL;
		return;
	}
	eng->ingest_now = ingest_clock_now(eng->clock);
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
	if (!committed)
		engine_memos_stale(eng); /* they were told of changes now lost */
	if (committed && eng->nchanges)
		engine_publish_changes(eng, eng->ingest_seq);
	engine_free_changes(eng);
	/* the changes taken from the workers pointed into their batches: now done with */
	for (size_t w = 0; eng->ingest_workers && w < reeval_pool_lent_size(eng->pool); w++)
		reeval_batch_reset(reeval_pool_batch(eng->pool, w));
	eng->ingest_workers = 0;
	if (engine_load_group_end(eng, committed))
		engine_load_batch_done(eng);
}
