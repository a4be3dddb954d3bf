/*
 * History loads (PROTOCOL.md, "History loads"). An export is sent oldest
 * first, so evaluating each customer as its events arrive judges early events
 * against today: everyone looks cold until their later events come, and the
 * chat gets an alert and its resolution for each. Events of a load are stored
 * as any others, but their customers are only marked deferred, durably, in
 * the same transaction; when the load ends (or stops sending for
 * evaluation.load_idle, or the daemon restarts in the middle of one) each
 * deferred customer is evaluated once against the whole timeline, in slices.
 * Ticks and re-evaluations pass deferred customers by; a live event for one
 * is evaluated as usual.
 */
#include <stdlib.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/engine.h"
#include "engine_impl.h"
#include "hearth/eval.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define UNDEFER_SLICE 1000

static void on_load_idle(struct loop *loop, void *ctx);

static void arm_idle_timer(struct engine *eng, int64_t after_ms)
{
	if (!eng->load_timer)
		eng->load_timer = loop_timer_add(eng->loop, after_ms, on_load_idle, eng);
}

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
	if (store_each(eng->st, DB_DEFERRED, load_deferred, eng, err) < 0)
		return -1;
	if (eng->deferred.count) {
		/* a load was cut short by a stop: its client gets load_idle to come back */
		log_info("load, %zu customer(s) of an unfinished history load wait for its end "
			 "(at most %lld ms)", eng->deferred.count, (long long)eng->cfg->load_idle_ms);
		eng->load_last_us = mono_now_us();
		arm_idle_timer(eng, eng->cfg->load_idle_ms);
	}
	return 0;
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

void engine_load_group_end(struct engine *eng, int committed)
{
	if (!committed)
		for (size_t i = 0; i < eng->nnewly_deferred; i++)
			strmap_del(&eng->deferred, eng->newly_deferred[i]->id, eng->newly_deferred[i]->id_len);
	eng->nnewly_deferred = 0;
	if (eng->load_deferred_group && committed) {
		eng->load_last_us = mono_now_us();
		if (!eng->undeferring)
			arm_idle_timer(eng, eng->cfg->load_idle_ms);
	}
	eng->load_deferred_group = 0;
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

void engine_load_end(struct engine *eng)
{
	if (eng->undeferring || !eng->deferred.count)
		return;
	eng->undeferring = 1;
	eng->undefer_after_len = 0;
	engine_schedule_slice(eng);
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

int engine_undefer_slice(struct engine *eng, int64_t now)
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
