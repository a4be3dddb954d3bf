/*
 * Re-evaluation of every customer, after a reload or a start (the rules may
 * have changed while hearthd was stopped): the workers (reeval_worker.c)
 * evaluate windows of stored customers on their own read transactions while
 * the writer applies and commits the window before; without workers, the
 * writer walks REEVAL_SLICE customers per loop turn itself. When
 * events.cases changed, the case state of every customer is rebuilt with it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_impl.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/heap.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "reeval_worker.h"

#define REEVAL_SLICE    1000    /* customers the writer walks per loop turn without workers */
#define REEVAL_WINDOW   8192    /* customers the workers walk per window */
#define REEVAL_WORKERS_MAX 8

_Static_assert(REEVAL_SLICE <= DUE_MAX && REEVAL_WINDOW <= DUE_MAX, "a slice or window is held in eng->due");

static void continue_reeval(struct loop *loop, void *ctx);

static void schedule_reeval(struct engine *eng)
{
	if (!eng->reeval_timer)
		eng->reeval_timer = loop_timer_add(eng->loop, 0, continue_reeval, eng);
}

static int put_cases_sig(struct wtxn *w, void *ctx, struct herr *err)
{
	(void)err;
	/* the rebuilt states are flushed first (engine_reevaluate_all's caller flushes
	 * again before this returns), so a crash before this line only redoes the rebuild */
	wtxn_meta_u64(w, "cases_sig", *(uint64_t *)ctx);
	return w->rc ? -1 : 0;
}

static void record_cases_sig(struct engine *eng)
{
	struct herr err;

	if (timeline_flush(eng->tl, 1, &err) < 0 ||
	    store_write(eng->st, put_cases_sig, &eng->cases_sig, &err) < 0)
		log_warning("rules, cannot record the rebuilt cases (%s); they will be rebuilt again", err.msg);
}

/* events.cases differs from what the stored case state was built with? */
void engine_check_cases(struct engine *eng)
{
	MDB_txn *txn;
	struct herr err;
	uint64_t sig = config_cases_signature(eng->cfg), stored;

	if (store_read_begin(eng->st, &txn, &err) < 0)
		return;
	stored = store_meta_u64(txn, eng->st, "cases_sig");
	store_read_end(txn);
	/* a store without a signature has state built by this config's cases, unless it has customers */
	if (stored == sig || (stored == 0 && timeline_customer_count(eng->tl) == 0)) {
		if (stored == 0) {
			eng->cases_sig = sig;
			store_write(eng->st, put_cases_sig, &eng->cases_sig, &err);
		}
		return;
	}
	eng->cases_sig = sig;
	eng->rebuild_cases = 1;
	log_info("rules, events.cases changed: case state of every customer is rebuilt");
}

/* Holds a customer for this re-evaluation (rebuilding its cases if asked). */
static void reeval_hold(struct engine *eng, MDB_txn *txn, const char *id, size_t len, size_t *n)
{
	struct herr err;
	struct cust *c = timeline_hold(eng->tl, txn, id, len, &err);

	if (c && eng->rebuild_cases && timeline_rebuild_cases(eng->tl, txn, c, &err) < 0)
		log_error("rules, rebuilding cases of '%.*s' failed (%s)", (int)c->id_len, c->id, err.msg);
	if (c)
		eng->due[(*n)++] = c;
}

struct reeval_walk {
	struct engine *eng;
	MDB_txn *txn;
	size_t *n;
};

static int reeval_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct reeval_walk *ctx = vctx;
	struct engine *eng = ctx->eng;

	(void)val;
	(void)vlen;
	if (*ctx->n >= REEVAL_SLICE)
		return 1;
	reeval_hold(eng, ctx->txn, key, klen, ctx->n);
	memcpy(eng->reeval_after, key, klen);
	eng->reeval_after_len = klen;
	return 0;
}

/* The walk over stored customers; returns 1 once it has passed the last. */
static int reeval_walk(struct engine *eng, MDB_txn *txn, size_t *n)
{
	struct reeval_walk ctx = { eng, txn, n };
	struct herr err;
	int rc = store_walk(txn, eng->st, DB_CUSTOMERS, eng->reeval_after,
			    eng->reeval_started ? eng->reeval_after_len : 0, NULL, 0, reeval_one, &ctx, &err);

	eng->reeval_started = 1;
	return rc != 1;
}
/* One customer of a window: nothing to do, the workers' answer, or the writer's own evaluation. */
static void apply_customer(struct engine *eng, MDB_txn *txn, const struct reeval_batch *b,
			   const struct reeval_cust *rc, uint64_t gen, size_t *n)
{
	const char *id = b->ids + rc->id_off;
	/* the workers read the store: a customer newer in memory, or written since, is evaluated here */
	int stale = timeline_pending(eng->tl, id, rc->id_len) ||
		    timeline_written_since(eng->tl, gen, id, rc->id_len) || rc->nchanges == SIZE_MAX ||
		    strmap_get(&eng->deferred, id, rc->id_len);
	struct herr err;
	struct cust *c;

	if (!stale && rc->nchanges == 0 && rc->deadline == rc->stored_deadline) {
		eng->stats.evaluations++;
		eng->stats.reeval_by_workers++;
		return;
	}
	if (!(c = timeline_hold(eng->tl, txn, id, rc->id_len, &err)))
		return;
	eng->due[(*n)++] = c;
	if (!stale) {
		engine_apply_worker_result(eng, c, b, rc);
		eng->stats.reeval_by_workers++;
	} else if (engine_drop_deferred(eng, &c, 1) == 1) {
		engine_evaluate_one(eng, txn, c, b->now);
	}
}

/* LMDB's order of keys: bytes, then the shorter first. */
static int key_less(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c < 0 || (c == 0 && alen < blen);
}

/*
 * Where the next window starts: after its last claimed customer, which every
 * worker reports (customers their snapshots lack were added meanwhile, and
 * ingest evaluated them under these rules already).
 */
static int window_end(struct engine *eng, struct reeval_batch *const *batches, size_t nb)
{
	const struct reeval_batch *low = NULL;
	int done = 1;

	for (size_t i = 0; i < nb; i++) {
		const struct reeval_batch *b = batches[i];
		done &= b->done;
		if (b->last_len && (!low || key_less(b->last, b->last_len, low->last, low->last_len)))
			low = b;
	}
	if (low) {
		memcpy(eng->reeval_after, low->last, low->last_len);
		eng->reeval_after_len = low->last_len;
		eng->reeval_started = 1;
	}
	return done;
}

static void reeval_finish(struct engine *eng);

static int submit_window(struct engine *eng, int64_t now);

/*
 * The workers are done with a window: the next one goes out first, so that
 * they evaluate it while this one's changes are applied and committed here.
 */
static void on_window(void *ctx)
{
	struct engine *eng = ctx;
	size_t nb = reeval_pool_size(eng->pool), n = 0;
	struct reeval_batch *batches[REEVAL_WORKERS_MAX] = { 0 };
	uint64_t gen = eng->window_gen;
	MDB_txn *txn;
	struct herr err;
	int failed = 0, done;

	if (!eng->window_out || nb == 0 || nb > REEVAL_WORKERS_MAX)
		return;
	eng->window_out = 0;
	for (size_t i = 0; i < nb; i++) {
		batches[i] = reeval_pool_batch(eng->pool, i);
		if (batches[i]->failed) {
			log_error("rules, a re-evaluation worker failed (%s); the writer goes on alone",
				  batches[i]->error);
			failed = 1;
		}
	}
	if (failed || store_read_begin(eng->st, &txn, &err) < 0) {
		/* the window is done again the old way, from where it began */
		reeval_pool_free(eng->pool);
		eng->pool = NULL;
		timeline_watch_end(eng->tl);
		schedule_reeval(eng);
		return;
	}
	int64_t now = batches[0]->now;
	done = window_end(eng, batches, nb);
	if (!done && !timeline_backlogged(eng->tl))
		submit_window(eng, ingest_clock_now(eng->clock));
	for (size_t i = 0; i < nb; i++) {
		struct reeval_batch *b = batches[i];
		for (size_t k = 0; k < b->ncusts; k++)
			apply_customer(eng, txn, b, &b->custs[k], gen, &n);
		if (b->error_rule >= 0 && (size_t)b->error_rule < eng->rs->n) {
			struct rule *r = &eng->rs->rules[b->error_rule];
			snprintf(r->last_error, sizeof(r->last_error), "%s", b->rule_error);
			eng->errors_gen++;
		}
	}
	eng->txn = NULL;
	store_read_end(txn);
	engine_commit_changes(eng, now, WRITES_IN_KEY_ORDER);
	for (size_t i = 0; i < n; i++)
		timeline_release(eng->tl, eng->due[i]);
	for (size_t i = 0; i < nb; i++)
		reeval_batch_reset(batches[i]);
	if (eng->window_out) {
		timeline_watch_forget_before(eng->tl, eng->window_gen);
		return;
	}
	timeline_watch_end(eng->tl);
	if (done)
		reeval_finish(eng);
	else
		schedule_reeval(eng);
}

/* Hands the workers the next window; 0 if they took it. */
static int submit_window(struct engine *eng, int64_t now)
{
	uint64_t gen;

	if (!eng->pool || eng->rebuild_cases || eng->window_out)
		return -1;
	gen = timeline_watch_begin(eng->tl, eng->reeval_after, eng->reeval_started ? eng->reeval_after_len : 0);
	if (reeval_pool_submit(eng->pool, eng->rs, now, eng->reeval_after,
			       eng->reeval_started ? eng->reeval_after_len : 0, REEVAL_WINDOW) < 0)
		return -1; /* the watch stays on: the caller's window, if any, ends it */
	eng->window_out = 1;
	eng->window_gen = gen;
	return 0;
}

/* A window out is waited for and forgotten: the rules it reads are about to go. */
void engine_drop_window(struct engine *eng)
{
	if (!eng->window_out)
		return;
	reeval_pool_drain(eng->pool);
	timeline_watch_end(eng->tl);
	eng->window_out = 0;
}

void engine_reeval_open(struct engine *eng)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = cpus < 1 ? 1 : cpus > REEVAL_WORKERS_MAX ? REEVAL_WORKERS_MAX : (size_t)cpus;
	struct herr err;

	if (!(eng->pool = reeval_pool_new(eng->st, n, eng->loop, on_window, eng, &err)))
		log_warning("rules, no re-evaluation workers (%s); the writer re-evaluates alone", err.msg);
}

static void reeval_finish(struct engine *eng)
{
	eng->reeval = 0;
	id_list_free(&eng->reeval_fresh);
	if (eng->rebuild_cases)
		record_cases_sig(eng);
	log_info("rules, re-evaluated every customer%s", eng->rebuild_cases ? " (cases rebuilt)" : "");
	eng->rebuild_cases = 0;
	/* its windows' results, as large as the store, are freed: a quiet daemon should not keep their pages */
	heap_release();
}

static size_t reeval_slice(struct engine *eng, int64_t now)
{
	struct id_list *fresh = &eng->reeval_fresh;
	MDB_txn *txn;
	struct herr err;
	size_t n = 0;
	int done = 0;

	if (store_read_begin(eng->st, &txn, &err) < 0)
		return 0;
	/* customers not stored when it began first (the walk cannot see them), then the store */
	for (; eng->reeval_next_fresh < fresh->n && n < REEVAL_SLICE; eng->reeval_next_fresh++)
		reeval_hold(eng, txn, fresh->ids[eng->reeval_next_fresh], fresh->lens[eng->reeval_next_fresh], &n);
	if (n == 0) {
		if (submit_window(eng, now) == 0) {
			store_read_end(txn);
			return 0;
		}
		timeline_watch_end(eng->tl); /* no window out: the writer walks this one itself */
	}
	if (n < REEVAL_SLICE)
		done = reeval_walk(eng, txn, &n);
	n = engine_drop_deferred(eng, eng->due, n);
	engine_evaluate_and_commit(eng, txn, eng->due, n, now, WRITES_IN_KEY_ORDER);
	if (done)
		reeval_finish(eng);
	return n;
}

static void continue_reeval(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;

	(void)loop;
	eng->reeval_timer = 0;
	if (!eng->reeval || eng->window_out)
		return; /* a window with the workers continues in on_window */
	/* every customer evaluated is held until written: let the flush catch up first */
	if (!timeline_backlogged(eng->tl))
		reeval_slice(eng, ingest_clock_now(eng->clock));
	if (eng->reeval && !eng->window_out)
		schedule_reeval(eng);
}

void engine_reevaluate_all(struct engine *eng)
{
	/*
	 * The walk reads stored customers; the new ones still pending are listed
	 * now rather than flushed first, which would hold the loop.
	 */
	engine_drop_window(eng);
	id_list_free(&eng->reeval_fresh);
	eng->reeval_next_fresh = 0;
	if (timeline_pending_new(eng->tl, &eng->reeval_fresh) < 0) {
		struct herr err;
		log_warning("rules, out of memory listing pending customers; flushing them instead");
		if (timeline_flush(eng->tl, 1, &err) < 0)
			log_warning("rules, flush before re-evaluating failed (%s)", err.msg);
	}
	eng->reeval = 1;
	eng->reeval_started = 0;
	eng->reeval_after_len = 0;
	schedule_reeval(eng);
}

void engine_reeval_close(struct engine *eng)
{
	if (eng->pool) {
		engine_drop_window(eng);
		reeval_pool_free(eng->pool);
		eng->pool = NULL;
	}
	id_list_free(&eng->reeval_fresh);
}
