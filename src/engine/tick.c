/*
 * The tick: every evaluation.interval the customers whose deadline has passed
 * are evaluated, at most TICK_SLICE per loop turn (a zero-delay timer carries
 * on with the rest, so sockets keep being served), and the outbox is pruned.
 * Only due customers are read: the deadline index is the timeline's.
 */
#include <stdint.h>
#include <stdlib.h>

#include "engine_impl.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/outbox.h"
#include "hearth/state.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "hearth/units.h"
#include "reeval_worker.h"

#define TICK_SLICE      DUE_MAX
#define TICK_WORKERS_MIN 256    /* fewer due customers are evaluated by the writer at once */
#define PRUNE_SLICE     10000

/*
 * The due customers go to the workers as soon as they are named; the writer
 * loads and holds them meanwhile, then waits (a tick holds the loop either way;
 * this way for half as long). It writes nothing until they are done, so their
 * snapshot is its own, and only a customer whose state in memory differs from
 * the store's is evaluated here. A customer a history load deferred is held
 * but not evaluated (engine_drop_deferred). 0: not done so; *evaluated: how many were.
 */
static int tick_by_workers(struct engine *eng, MDB_txn *txn, size_t n, int64_t now, size_t *evaluated)
{
	struct due_ref *refs = eng->due_refs;
	const char **ids;
	size_t *lens, *sent, nsent = 0, held = 0;
	struct herr err;
	int rc = 0;

	if (!eng->pool || eng->window_out || n < TICK_WORKERS_MIN)
		return 0;
	ids = malloc(n * sizeof(*ids));
	lens = malloc(n * sizeof(*lens));
	sent = malloc(n * sizeof(*sent));
	if (!ids || !lens || !sent)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (eng->deferred.count && strmap_get(&eng->deferred, refs[i].id, refs[i].len))
			continue;
		ids[nsent] = refs[i].id;
		lens[nsent] = refs[i].len;
		sent[nsent++] = i;
	}
	if (reeval_pool_submit_list(eng->pool, eng->rs, now, ids, lens, nsent) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		eng->due[i] = timeline_hold_due(eng->tl, txn, &refs[i], now, &err);
	reeval_pool_wait(eng->pool);
	for (size_t w = 0; w < reeval_pool_size(eng->pool); w++) {
		struct reeval_batch *b = reeval_pool_batch(eng->pool, w);
		for (size_t k = 0; k < b->ncusts; k++) {
			const struct reeval_cust *r = &b->custs[k];
			struct cust *c = eng->due[sent[r->index]];
			if (!c)
				continue; /* gone, or named twice */
			if (b->failed || r->nchanges == SIZE_MAX || timeline_pending(eng->tl, c->id, c->id_len))
				engine_evaluate_one(eng, txn, c, now);
			else
				engine_apply_worker_result(eng, c, b, r);
		}
		if (b->failed)
			log_error("tick, a worker failed (%s); the writer evaluated its share", b->error);
	}
	for (size_t i = 0; i < n; i++)
		if (eng->due[i])
			eng->due[held++] = eng->due[i];
	*evaluated = engine_drop_deferred(eng, eng->due, held);
	eng->txn = NULL;
	store_read_end(txn); /* the map may grow in the write: no reader may be open */
	engine_commit_changes(eng, now, WRITES_SCATTERED);
	for (size_t i = 0; i < *evaluated; i++)
		timeline_release(eng->tl, eng->due[i]);
	for (size_t w = 0; w < reeval_pool_size(eng->pool); w++)
		reeval_batch_reset(reeval_pool_batch(eng->pool, w));
	rc = 1;
out:
	free(ids);
	free(lens);
	free(sent);
	return rc;
}

/* One slice of due customers, how many were evaluated; *more: it was full, more may be due. */
static size_t tick_slice(struct engine *eng, int64_t now, int *more)
{
	MDB_txn *txn;
	struct herr err;
	size_t n, held = 0;

	*more = 0;
	if (store_read_begin(eng->st, &txn, &err) < 0) {
		log_error("tick, cannot read the store (%s)", err.msg);
		return 0;
	}
	n = timeline_due_list(eng->tl, txn, now, eng->due_refs, TICK_SLICE, &err);
	*more = n == TICK_SLICE;
	if (tick_by_workers(eng, txn, n, now, &held))
		return held;
	for (size_t i = 0; i < n; i++) {
		struct cust *c = timeline_hold_due(eng->tl, txn, &eng->due_refs[i], now, &err);
		if (c)
			eng->due[held++] = c;
	}
	held = engine_drop_deferred(eng, eng->due, held);
	engine_evaluate_and_commit(eng, txn, eng->due, held, now, WRITES_SCATTERED);
	return held;
}

static void continue_tick(struct loop *loop, void *ctx);

static void schedule_tick_more(struct engine *eng)
{
	if (!eng->tick_more_timer)
		eng->tick_more_timer = loop_timer_add(eng->loop, 0, continue_tick, eng);
}

static void continue_tick(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;
	int more = 1;

	(void)loop;
	eng->tick_more_timer = 0;
	/* every customer evaluated is held until written: let the flush catch up first */
	if (!timeline_backlogged(eng->tl))
		tick_slice(eng, ingest_clock_now(eng->clock), &more);
	if (more)
		schedule_tick_more(eng);
}

size_t engine_tick(struct engine *eng)
{
	int64_t now = ingest_clock_now(eng->clock), started = mono_now_us();
	struct herr err;
	int more;
	size_t n = tick_slice(eng, now, &more);

	if (more)
		schedule_tick_more(eng);
	if (outbox_prune(eng->ob, now, PRUNE_SLICE, &err) < 0)
		log_warning("outbox, pruning failed (%s)", err.msg);
	eng->stats.ticks++;
	eng->stats.last_tick = now;
	eng->stats.tick_us = mono_now_us() - started;
	eng->stats.tick_customers = n;
	return n;
}

static void on_tick(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;

	(void)loop;
	engine_tick(eng);
	engine_tick_start(eng);
}

void engine_tick_start(struct engine *eng)
{
	eng->tick_timer = loop_timer_add(eng->loop, eng->cfg->eval_interval_ms, on_tick, eng);
}
