/*
 * History loads (PROTOCOL.md, "History loads"). An export is sent oldest
 * first, so evaluating each customer as its events arrive judges early events
 * against today: everyone looks cold until their later events come, and the
 * chat gets an alert and its resolution for each. Events of a load are stored
 * as any others, but their customers are only marked deferred, durably, in
 * the same transaction; when the load ends (or stops sending for
 * evaluation.load_idle, or the daemon restarts in the middle of one) each
 * deferred customer is evaluated once against the whole timeline, in slices.
 * Ticks and re-evaluations pass deferred customers by (defer.c); a live
 * event for one is evaluated as usual.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define UNDEFER_SLICE 1000

_Static_assert(UNDEFER_SLICE <= DUE_MAX, "a slice is held in eng->due");

static void on_load_idle(struct loop *loop, void *ctx);
static void continue_undefer(struct loop *loop, void *ctx);

static void arm_idle_timer(struct engine *eng, int64_t after_ms)
{
	if (!eng->load_timer)
		eng->load_timer = loop_timer_add(eng->loop, after_ms, on_load_idle, eng);
}

void engine_load_resume(struct engine *eng)
{
	if (!eng->deferred.count)
		return;
	/* a load was cut short by a stop: its client gets load_idle to come back */
	log_info("load, %zu customer(s) of an unfinished history load wait for its end "
		 "(at most %lld ms)", eng->deferred.count, (long long)eng->cfg->load_idle_ms);
	eng->load_last_us = mono_now_us();
	arm_idle_timer(eng, eng->cfg->load_idle_ms);
}

void engine_load_batch_done(struct engine *eng)
{
	eng->load_last_us = mono_now_us();
	if (!eng->undeferring)
		arm_idle_timer(eng, eng->cfg->load_idle_ms);
}

static void schedule_undefer(struct engine *eng)
{
	if (!eng->undefer_timer)
		eng->undefer_timer = loop_timer_add(eng->loop, 0, continue_undefer, eng);
}

void engine_load_end(struct engine *eng)
{
	if (eng->undeferring || !eng->deferred.count)
		return;
	eng->undeferring = 1;
	eng->undefer_after_len = 0;
	schedule_undefer(eng);
}

struct undefer_walk {
	struct engine *eng;
	MDB_txn *txn;
	size_t n;
};

static int undefer_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct undefer_walk *ctx = vctx;
	struct engine *eng = ctx->eng;
	struct herr err;

	(void)val;
	(void)vlen;
	if (ctx->n >= UNDEFER_SLICE)
		return 1;
	if (klen > HEARTH_ID_MAX)
		return 0;
	memcpy(eng->undefer_after, key, klen);
	eng->undefer_after_len = klen;
	strmap_del(&eng->deferred, key, klen);
	struct cust *c = timeline_hold(eng->tl, ctx->txn, key, klen, &err);
	if (c)
		eng->due[ctx->n++] = c;
	else if (err.code != HERR_NOT_FOUND)
		log_error("load, cannot read '%.*s' (%s)", (int)klen, (const char *)key, err.msg);
	return 0;
}

/* The next deferred customers after the walk's position, held for evaluation. */
static size_t undefer_walk(struct engine *eng, MDB_txn *txn, int *done)
{
	struct undefer_walk ctx = { eng, txn, 0 };
	struct herr err;

	*done = store_walk(txn, eng->st, DB_DEFERRED, eng->undefer_after, eng->undefer_after_len,
			   NULL, 0, undefer_one, &ctx, &err) != 1;
	return ctx.n;
}

static int undefer_slice(struct engine *eng, int64_t now)
{
	MDB_txn *txn;
	struct herr err;
	size_t n;
	int done;

	if (store_read_begin(eng->st, &txn, &err) < 0) {
		log_error("load, cannot read the store (%s)", err.msg);
		return 1;
	}
	n = undefer_walk(eng, txn, &done);
	strmap_shrink(&eng->deferred);
	eng->nundefer = n;
	engine_evaluate_and_commit(eng, txn, eng->due, n, now, WRITES_IN_KEY_ORDER);
	eng->nundefer = 0;
	eng->undeferred_total += n;
	if (!done)
		return 1;
	eng->undeferring = 0;
	log_info("load, evaluated %llu customer(s) of the history load",
		 (unsigned long long)eng->undeferred_total);
	eng->undeferred_total = 0;
	/* deferred while the walk ran, behind its position: their load goes on */
	if (eng->deferred.count)
		arm_idle_timer(eng, eng->cfg->load_idle_ms);
	return 0;
}

static void continue_undefer(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;

	(void)loop;
	eng->undefer_timer = 0;
	if (!eng->undeferring)
		return;
	/* every customer evaluated is held until written: let the flush catch up first */
	if (timeline_backlogged(eng->tl) || undefer_slice(eng, ingest_clock_now(eng->clock)))
		schedule_undefer(eng);
}

static void on_load_idle(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;
	int64_t idle_ms = (mono_now_us() - eng->load_last_us) / 1000;

	(void)loop;
	eng->load_timer = 0;
	if (eng->undeferring || !eng->deferred.count)
		return;
	if (idle_ms < eng->cfg->load_idle_ms) {
		arm_idle_timer(eng, eng->cfg->load_idle_ms - idle_ms);
		return;
	}
	log_warning("load, no load batch and no end for %lld ms: evaluating its %zu customer(s)",
		    (long long)idle_ms, eng->deferred.count);
	engine_load_end(eng);
}
