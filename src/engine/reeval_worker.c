/*
 * The re-evaluation workers (reeval_worker.h). Each worker thread waits for
 * its batch, evaluates the chunks of the window it claims (or of the list it
 * takes) on its own read transaction (the store and the alert journal as of
 * that snapshot, no pending state) and hands the batch back; the last one done
 * wakes the writer's loop through an eventfd. A batch belongs to one side at a
 * time; besides it only the claims and the list's next index are shared.
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/alert_states.h"
#include "hearth/body_codec.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/log.h"
#include "hearth/notification.h"
#include "hearth/loop.h"
#include "hearth/overlay.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/thread.h"
#include "hearth/timeline.h"
#include "engine_impl.h"
#include "reeval_worker.h"

#define REEVAL_NICE 10           /* the workers' priority: below queries and ingest */
#define LIST_CHUNK  32           /* customers of a list a worker takes at once */
#define WINDOW_CHUNK 256         /* customers of a window a worker claims at once */

struct reeval_worker {
	struct reeval_pool *pool;
	size_t part;
	pthread_t thread;
	int started;
	/*
	 * Two, used in turn: the writer applies one window's results while the
	 * workers fill the other with the next window's.
	 */
	struct reeval_batch batch[2];
	struct reeval_batch *cur;       /* set under the pool's lock at each start */
	int has_work;                   /* under the pool's lock: *cur is the worker's */
	/* the worker's own, from start to join */
	struct alert_states *as;        /* its copy of the journal, synced to each snapshot */
	struct overlay *ov;             /* empty: window scans read the store alone */
	struct json_tokener *tok;
	struct body_codec *codec;       /* packs notification bodies for the outbox */
	struct cust *read;              /* the stored customer in hand, decoded into the last one's room */
	struct alert *alerts;           /* one customer's, by rule index */
	size_t nalerts;
	uint64_t alerts_rs;             /* the ruleset (its id) alerts are sized and named for */
	int held;                       /* the customer in hand is the writer's: its pending events are too */
	int needs_writer;               /* ... and a rule read the timeline: the writer evaluates it */
};

struct reeval_pool {
	struct store *st;
	struct loop *loop;
	void (*ready)(void *ctx);
	void *ctx;
	int efd;
	pthread_mutex_t lock;
	pthread_cond_t work;
	int stop;
	size_t out;                     /* workers still on the window */
	int fill;                       /* the batches the last window went to: 0 or 1 */
	int waited;                     /* the writer waits: no ready() for this one */
	struct reeval_worker *w;
	size_t n;
	/*
	 * The writer's own place among the workers, with no thread: at the end of
	 * a fold it takes lent chunks too instead of sleeping until the workers
	 * are done (reeval_pool_lend_end). Its batch comes after theirs.
	 */
	struct reeval_worker seat;
	int seat_ready;                 /* set up: reeval_pool_free frees what it has */
	/* a list to evaluate: written by the writer before submit, read by the workers until done */
	char *list_ids;
	size_t *list_off, *list_len, nlist, list_ids_cap, list_cap;
	atomic_size_t list_next;        /* the next customer of it no worker has taken */
	/*
	 * Or the writer's customers, lent one by one as its fold finishes each
	 * (reeval_pool_lend): held[0..held_n) are the workers' to take, with the
	 * writer's alert journal, read as of its last commit. A worker that has
	 * caught up waits on `more`; the writer signals it at each full chunk and
	 * when it lends no more.
	 */
	int lending;
	struct cust **held;
	size_t *held_index, held_cap, held_most;
	struct alert_states *held_as;
	atomic_size_t held_n;
	atomic_int held_closed;
	atomic_int held_waiting;
	pthread_cond_t more;
	/*
	 * A window is taken in chunks, key ranges each worker claims when it is
	 * free (a worker the writer holds back leaves more to the other, and both
	 * end together): the claimer finds the chunk's last key in its snapshot,
	 * and the next chunk begins after it whatever the other's snapshot holds.
	 */
	pthread_mutex_t claim_lock;
	char claim_after[HEARTH_ID_MAX];        /* the last key claimed (len 0: none, from the first) */
	size_t claim_after_len;
	size_t claimed, claim_limit;    /* customers claimed of the window's limit */
	int claim_end;                  /* a claim reached the table's end */
};

/* ---- one customer ------------------------------------------------------------- */

struct walk_ctx {
	struct reeval_worker *w;
	MDB_txn *txn;
	struct alert_cursor *ac;        /* DB_ALERTS as of txn, read in the window's key order */
	struct engine_scan scan;
	struct cust *c;                 /* the customer in hand */
	size_t cust;                    /* its index in the batch */
};

static int query_store(void *qctx, MDB_txn *txn, const struct timeline_query *q,
		       int (*fn)(const struct event *ev, void *ctx), void *ctx, int *more, struct herr *err)
{
	struct reeval_worker *w = qctx;

	if (w->held) {
		w->needs_writer = 1;
		return herr_set(err, HERR_STORE_ERROR, "the writer's pending events");
	}
	return overlay_query(w->ov, w->pool->st, txn, q, fn, ctx, more, err);
}

static void worker_env(void *vctx, const struct cust *c, int64_t now, struct eval_env *env)
{
	struct walk_ctx *ctx = vctx;
	engine_scan_env(&ctx->scan, c, now, env);
}

static void worker_failed(void *vctx, size_t rule, const char *error)
{
	struct walk_ctx *ctx = vctx;
	struct reeval_batch *b = ctx->w->cur;

	if (ctx->w->needs_writer)
		return; /* not an error: the writer evaluates it with its pending events */
	b->error_rule = (ssize_t)rule;
	snprintf(b->rule_error, sizeof(b->rule_error), "%.*s: %s", (int)ctx->c->id_len, ctx->c->id, error);
}

static void worker_changed(void *vctx, size_t rule, struct alert *a, enum alert_state before,
			   int64_t since_before, enum notify_kind kind)
{
	struct walk_ctx *ctx = vctx;
	struct reeval_batch *b = ctx->w->cur;

	if (array_reserve((void **)&b->changes, &b->changes_cap, b->nchanges + 1, sizeof(*b->changes)) < 0) {
		b->failed = 1;
		snprintf(b->error, sizeof(b->error), "out of memory");
		return;
	}
	struct reeval_change *ch = &b->changes[b->nchanges++];
	*ch = (struct reeval_change){ .rule = rule, .a = *a, .before = before, .since_before = since_before,
				      .kind = kind };
	a->values_json = NULL;
	if (kind != NOTIFY_NONE) {
		/* built here, beside the evaluation, not on the writer: it numbers them only */
		ch->rest_off = b->rests.len;
		notification_body_rest(&ch->a, ctx->c, b->rs->rules[rule].cfg, kind, b->now, &b->rests);
		ch->rest_len = b->rests.len - ch->rest_off;
		if (b->rests.failed)
			ch->rest_len = 0;
		ch->packed_off = b->packed.len;
		if (ch->rest_len && body_codec_pack_rest(ctx->w->codec, (const char *)b->rests.data + ch->rest_off,
							 ch->rest_len, &b->packed) == 0 && !b->packed.failed)
			ch->packed_len = b->packed.len - ch->packed_off;
	}
	b->custs[ctx->cust].nchanges++;
}

static void load_alert(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct reeval_worker *w = vctx;
	ssize_t idx = ruleset_index(w->cur->rs, rule);

	if (idx >= 0 && alert_decode(rec, len, &w->alerts[idx]) < 0)
		alert_clear(&w->alerts[idx]); /* damaged: the writer's evaluation says so in its log */
}

/* Every alert inactive (the rule names stay: size_alerts set them). */
static void reset_alerts(struct reeval_worker *w)
{
	for (size_t i = 0; i < w->nalerts; i++)
		alert_reset(&w->alerts[i]);
}

static int size_alerts(struct reeval_worker *w, const struct ruleset *rs)
{
	if (w->alerts_rs == rs->id)
		return 0;
	reset_alerts(w);
	free(w->alerts);
	w->nalerts = 0;
	w->alerts_rs = 0;
	if (!(w->alerts = calloc(rs->n ? rs->n : 1, sizeof(*w->alerts))))
		return -1;
	w->nalerts = rs->n;
	w->alerts_rs = rs->id;
	for (size_t i = 0; i < rs->n; i++) {
		w->alerts[i].state = ALERT_INACTIVE;
		snprintf(w->alerts[i].rule, sizeof(w->alerts[i].rule), "%s", rs->rules[i].cfg->name);
	}
	return 0;
}

/* The batch's entry for customer id, at index of a list. NULL when out of memory. */
static struct reeval_cust *add_cust(struct walk_ctx *ctx, const char *id, size_t len, size_t index)
{
	struct reeval_batch *b = ctx->w->cur;

	if (array_reserve((void **)&b->custs, &b->custs_cap, b->ncusts + 1, sizeof(*b->custs)) < 0 ||
	    array_reserve((void **)&b->ids, &b->ids_cap, b->ids_len + len, 1) < 0)
		return NULL;
	struct reeval_cust *rc = &b->custs[b->ncusts];
	*rc = (struct reeval_cust){ .id_off = b->ids_len, .id_len = len, .index = index,
				    .first_change = b->nchanges };
	memcpy(b->ids + b->ids_len, id, len);
	b->ids_len += len;
	ctx->cust = b->ncusts++;
	return rc;
}

static void worker_load(void *vctx)
{
	struct walk_ctx *ctx = vctx;
	struct reeval_worker *w = ctx->w;

	reset_alerts(w);
	alert_states_customer_at(w->held ? w->pool->held_as : w->as, ctx->ac, ctx->c->id, ctx->c->id_len, load_alert,
				 w);
}

/* ctx->c's rules stepped into rc; memo: c itself when it is the writer's (held), else NULL. */
static void step_customer(struct walk_ctx *ctx, struct reeval_cust *rc, struct cust *memo)
{
	struct reeval_worker *w = ctx->w;
	struct reeval_batch *b = w->cur;
	const struct step_env se = { worker_env, worker_load, ctx, memo, memo ? b->gen : 0 };
	const struct step_sink sink = { worker_changed, worker_failed, ctx };

	rc->stored_deadline = ctx->c->deadline;
	rc->deadline = engine_step(b->rs, w->alerts, ctx->c, b->now, &se, &sink);
}

static int evaluate_customer(struct walk_ctx *ctx, const char *id, size_t len, const void *val, size_t vlen,
			     size_t index)
{
	struct reeval_worker *w = ctx->w;
	struct reeval_cust *rc = add_cust(ctx, id, len, index);

	if (!rc)
		return -1;
	/* a damaged record (or none): the writer's own evaluation reports it */
	if (!val || cust_decode_into(w->read, id, len, val, vlen, store_type_names(w->pool->st)) < 0) {
		rc->deadline = rc->stored_deadline = EVAL_NEVER;
		rc->nchanges = SIZE_MAX;
		return 0;
	}
	ctx->c = w->read;
	step_customer(ctx, rc, NULL); /* a copy read for this window: nothing to remember */
	ctx->c = NULL;
	return w->cur->failed ? -1 : 0;
}

/* Takes back the changes of the customer in hand: the writer evaluates it. */
static void give_back(struct reeval_batch *b, struct reeval_cust *rc)
{
	for (size_t i = rc->first_change; i < b->nchanges; i++)
		free(b->changes[i].a.values_json);
	b->nchanges = rc->first_change;
	rc->nchanges = SIZE_MAX;
}

/* One of the writer's customers: its memo is kept, unless the writer must evaluate it anyway. */
static int evaluate_held(struct walk_ctx *ctx, struct cust *c, size_t index)
{
	struct reeval_worker *w = ctx->w;
	struct reeval_cust *rc = add_cust(ctx, c->id, c->id_len, index);
	uint64_t changed = c->changed;

	if (!rc)
		return -1;
	ctx->c = c;
	w->needs_writer = 0;
	step_customer(ctx, rc, c);
	/* a change the worker could not keep (out of memory) must not be lost with the memo it moved */
	if (w->needs_writer || w->cur->failed) {
		give_back(w->cur, rc);
		c->changed = changed;
		c->quiet_gen = 0; /* what this step remembered is not the writer's: it starts afresh */
	}
	ctx->c = NULL;
	return w->cur->failed ? -1 : 0;
}

/* LMDB's order of keys: bytes, then the shorter first. */
static int key_after(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c > 0 || (c == 0 && alen > blen);
}

struct claim_scan {
	size_t n, max;
	char last[HEARTH_ID_MAX];
	size_t last_len;
};

static int scan_key(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct claim_scan *cs = vctx;

	(void)val;
	(void)vlen;
	if (cs->n == cs->max)
		return 1;
	cs->n++;
	if (klen <= HEARTH_ID_MAX) {
		memcpy(cs->last, key, klen);
		cs->last_len = klen;
	}
	return 0;
}

/* The next chunk of the window into cs, from after `from` (copied out); -1 on error. */
static int claim_chunk(struct walk_ctx *ctx, char *from, size_t *from_len, struct claim_scan *cs,
		       struct herr *err)
{
	struct reeval_pool *pool = ctx->w->pool;
	int rc = 0;

	pthread_mutex_lock(&pool->claim_lock);
	if (!pool->claim_end && pool->claimed < pool->claim_limit) {
		*from_len = pool->claim_after_len;
		memcpy(from, pool->claim_after, *from_len);
		cs->max = pool->claim_limit - pool->claimed < WINDOW_CHUNK ? pool->claim_limit - pool->claimed
									   : WINDOW_CHUNK;
		rc = store_walk(ctx->txn, pool->st, DB_CUSTOMERS, from, *from_len, NULL, 0, scan_key, cs, err);
		if (rc >= 0) {
			pool->claimed += cs->n;
			pool->claim_end = cs->n < cs->max;
			if (cs->last_len) {
				memcpy(pool->claim_after, cs->last, cs->last_len);
				pool->claim_after_len = cs->last_len;
			}
		}
	}
	pthread_mutex_unlock(&pool->claim_lock);
	return rc < 0 ? -1 : 0;
}

struct chunk_walk {
	struct walk_ctx *ctx;
	const struct claim_scan *cs;
};

static int chunk_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct chunk_walk *cw = vctx;
	struct reeval_batch *b = cw->ctx->w->cur;

	if (key_after(key, klen, cw->cs->last, cw->cs->last_len))
		return 1;
	if (klen > HEARTH_ID_MAX)
		return 0;
	if (evaluate_customer(cw->ctx, key, klen, val, vlen, 0) < 0) {
		b->failed = 1;
		if (!b->error[0])
			snprintf(b->error, sizeof(b->error), "out of memory");
		return 1;
	}
	return 0;
}

/* Chunks of the window until none is left; then where it ended, as every worker saw it. */
static int evaluate_chunks(struct walk_ctx *ctx, struct herr *err)
{
	struct reeval_pool *pool = ctx->w->pool;
	struct reeval_batch *b = ctx->w->cur;
	char from[HEARTH_ID_MAX];
	size_t from_len = 0;

	for (;;) {
		struct claim_scan cs = { 0 };
		struct chunk_walk cw = { ctx, &cs };
		if (claim_chunk(ctx, from, &from_len, &cs, err) < 0)
			return -1;
		if (cs.n == 0)
			break;
		if (cs.last_len && store_walk(ctx->txn, pool->st, DB_CUSTOMERS, from, from_len, NULL, 0, chunk_one,
					      &cw, err) < 0)
			return -1;
		if (b->failed)
			return 0;
	}
	pthread_mutex_lock(&pool->claim_lock);
	memcpy(b->last, pool->claim_after, pool->claim_after_len);
	b->last_len = pool->claim_after_len;
	b->done = pool->claim_end;
	pthread_mutex_unlock(&pool->claim_lock);
	return 0;
}

/*
 * Waits until the lent customers [from, *to) are there, or the writer lends
 * no more (*to then cut to what it lent). 0: none of them left.
 */
static int lent_range(struct reeval_pool *pool, size_t from, size_t *to)
{
	size_t n;

	if (atomic_load(&pool->held_n) < *to && !atomic_load(&pool->held_closed)) {
		pthread_mutex_lock(&pool->lock);
		/* counted before the check: a writer lending meanwhile sees it and signals */
		atomic_fetch_add(&pool->held_waiting, 1);
		while (atomic_load(&pool->held_n) < *to && !atomic_load(&pool->held_closed))
			pthread_cond_wait(&pool->more, &pool->lock);
		atomic_fetch_sub(&pool->held_waiting, 1);
		pthread_mutex_unlock(&pool->lock);
	}
	n = atomic_load(&pool->held_n);
	if (*to > n)
		*to = n;
	return from < *to;
}

/*
 * The next customers of the chunk, asked for ahead: their memos, and the
 * journal entries of those whose memo will not spare them reading their
 * alert states (a large journal's lookup otherwise waits on memory).
 */
#define CUST_AHEAD    8
#define JOURNAL_AHEAD 4
static int reads_states(const struct cust *c, uint64_t gen)
{
	return c->quiet_gen != gen;
}

static void prefetch_lent(struct walk_ctx *ctx, size_t i, size_t to)
{
	struct reeval_pool *pool = ctx->w->pool;
	const struct alert_states *as = ctx->w->held ? pool->held_as : ctx->w->as;
	uint64_t gen = ctx->w->cur->gen;
	const struct cust *c;

	if (i + CUST_AHEAD < to) {
		c = pool->held[i + CUST_AHEAD];
		__builtin_prefetch(c);
		__builtin_prefetch(&c->quiet_gen);
	}
	if (i + JOURNAL_AHEAD < to && reads_states(c = pool->held[i + JOURNAL_AHEAD], gen))
		alert_states_prefetch(as, c->id, c->id_len);
	if (i + JOURNAL_AHEAD / 2 < to && reads_states(c = pool->held[i + JOURNAL_AHEAD / 2], gen))
		alert_states_prefetch_entry(as, c->id, c->id_len);
}

/* The customers the writer lends, in chunks taken as they come. */
static int evaluate_lent(struct walk_ctx *ctx)
{
	struct reeval_pool *pool = ctx->w->pool;

	for (;;) {
		size_t from = atomic_fetch_add(&pool->list_next, LIST_CHUNK), to = from + LIST_CHUNK;
		if (!lent_range(pool, from, &to))
			return 0;
		for (size_t i = from; i < to; i++) {
			prefetch_lent(ctx, i, to);
			if (evaluate_held(ctx, pool->held[i], pool->held_index[i]) < 0)
				return -1;
		}
	}
}

/*
 * The pool's list, looked up one by one, in chunks taken as the worker gets
 * to them: a worker the writer holds back (it loads the same customers
 * meanwhile) leaves more to the other, and both end together.
 */
static int evaluate_list(struct walk_ctx *ctx, struct herr *err)
{
	struct reeval_pool *pool = ctx->w->pool;
	size_t from;

	if (pool->lending)
		return evaluate_lent(ctx);
	while ((from = atomic_fetch_add(&pool->list_next, LIST_CHUNK)) < pool->nlist) {
		size_t to = from + LIST_CHUNK < pool->nlist ? from + LIST_CHUNK : pool->nlist;
		for (size_t i = from; i < to; i++) {
			const char *id = pool->list_ids + pool->list_off[i];
			size_t len = pool->list_len[i], vlen = 0;
			const void *val = NULL;
			int rc = store_lookup(ctx->txn, pool->st, DB_CUSTOMERS, id, len, &val, &vlen, err);
			if (rc < 0 || evaluate_customer(ctx, id, len, rc == 0 ? val : NULL, vlen, i) < 0)
				return -1;
		}
	}
	return 0;
}

static void evaluate_window(struct reeval_worker *w)
{
	struct reeval_batch *b = w->cur;
	struct walk_ctx ctx = { .w = w };
	struct herr err = { 0 };
	int rc;

	if (size_alerts(w, b->rs) < 0) {
		b->failed = 1;
		snprintf(b->error, sizeof(b->error), "out of memory");
		return;
	}
	w->held = w->pool->lending;
	/* a lent customer's alert states are in the writer's journal, which waits: no copy to sync */
	if (store_shared_begin(w->pool->st, &ctx.txn, &err) < 0 ||
	    (!w->held && alert_states_sync(w->as, w->pool->st, ctx.txn, &err) < 0) ||
	    !(ctx.ac = alert_cursor_open(w->pool->st, ctx.txn, &err))) {
		b->failed = 1;
		snprintf(b->error, sizeof(b->error), "%s", err.msg);
		store_shared_end(w->pool->st, ctx.txn);
		return;
	}
	ctx.scan = (struct engine_scan){ .query = query_store, .qctx = w, .txn = ctx.txn, .tok = w->tok };
	rc = b->list ? evaluate_list(&ctx, &err) : evaluate_chunks(&ctx, &err);
	if (rc < 0) {
		b->failed = 1;
		if (!b->error[0])
			snprintf(b->error, sizeof(b->error), "%s", err.msg[0] ? err.msg : "out of memory");
	}
	alert_cursor_close(ctx.ac);
	store_shared_end(w->pool->st, ctx.txn);
}

/* ---- the threads --------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct reeval_worker *w = arg;
	struct reeval_pool *pool = w->pool;
	uint64_t one = 1;

	/*
	 * One worker per core keeps every core busy: at the default priority a
	 * query's reader thread, or ingest's writer, would wait for a time slice
	 * behind them (ping up to 9 ms during a re-evaluation). Lower, they get
	 * only what the others leave. Linux's nice is per thread.
	 */
	thread_setup("hearth-reeval", REEVAL_NICE, "rules, a re-evaluation worker");

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (!w->has_work && !pool->stop)
			pthread_cond_wait(&pool->work, &pool->lock);
		if (pool->stop)
			break;
		pthread_mutex_unlock(&pool->lock);
		evaluate_window(w);
		pthread_mutex_lock(&pool->lock);
		w->has_work = 0;
		if (--pool->out == 0 && !pool->waited && write(pool->efd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			log_error("rules, cannot wake the writer (%s)", strerror(errno));
		pthread_cond_broadcast(&pool->work);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void on_wake(struct loop *loop, short revents, void *ctx)
{
	struct reeval_pool *pool = ctx;
	uint64_t n;

	(void)loop;
	(void)revents;
	if (read(pool->efd, &n, sizeof(n)) < 0)
		return;
	if (!reeval_pool_busy(pool))
		pool->ready(pool->ctx);
}

int reeval_pool_busy(const struct reeval_pool *pool)
{
	struct reeval_pool *p = (struct reeval_pool *)pool;
	size_t out;

	pthread_mutex_lock(&p->lock);
	out = p->out;
	pthread_mutex_unlock(&p->lock);
	return out != 0;
}

void reeval_batch_reset(struct reeval_batch *b)
{
	for (size_t i = 0; i < b->nchanges; i++)
		free(b->changes[i].a.values_json);
	b->nchanges = b->ncusts = b->ids_len = b->last_len = 0;
	wbuf_reset(&b->rests);
	wbuf_reset(&b->packed);
	b->done = b->failed = 0;
	b->error[0] = b->rule_error[0] = '\0';
	b->error_rule = -1;
}

static void start(struct reeval_pool *pool, int waited)
{
	pthread_mutex_lock(&pool->lock);
	pool->waited = waited;
	pool->out = pool->n;
	for (size_t i = 0; i < pool->n; i++) {
		pool->w[i].cur = &pool->w[i].batch[pool->fill];
		pool->w[i].has_work = 1;
	}
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
}

/* The next window goes to the other batches: the last window's stay the writer's meanwhile. */
static void prepare(struct reeval_pool *pool, const struct ruleset *rs, int64_t now, int list)
{
	pool->fill = !pool->fill;
	for (size_t i = 0; i < reeval_pool_lent_size(pool); i++) {
		struct reeval_batch *b = reeval_pool_batch(pool, i);
		reeval_batch_reset(b);
		b->rs = rs;
		b->now = now;
		b->list = list;
	}
	pool->seat.cur = &pool->seat.batch[pool->fill];
}

int reeval_pool_submit(struct reeval_pool *pool, const struct ruleset *rs, int64_t now, const char *after,
		       size_t after_len, size_t limit)
{
	if (!pool->n || reeval_pool_busy(pool) || after_len > HEARTH_ID_MAX)
		return -1;
	pool->lending = 0;
	prepare(pool, rs, now, 0);
	/* the workers take it from here under the claim lock, after start's */
	memcpy(pool->claim_after, after, after_len);
	pool->claim_after_len = after_len;
	pool->claimed = 0;
	pool->claim_limit = limit;
	pool->claim_end = 0;
	start(pool, 0);
	return 0;
}

int reeval_pool_submit_list(struct reeval_pool *pool, const struct ruleset *rs, int64_t now,
			    const char *const *ids, const size_t *lens, size_t n)
{
	size_t bytes = 0;

	if (!pool->n || reeval_pool_busy(pool))
		return -1;
	for (size_t i = 0; i < n; i++)
		bytes += lens[i];
	if (array_reserve((void **)&pool->list_ids, &pool->list_ids_cap, bytes + 1, 1) < 0 ||
	    array_reserve((void **)&pool->list_off, &pool->list_cap, n + 1, sizeof(*pool->list_off)) < 0 ||
	    !(pool->list_len = realloc(pool->list_len, pool->list_cap * sizeof(*pool->list_len))))
		return -1;
	bytes = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(pool->list_ids + bytes, ids[i], lens[i]);
		pool->list_off[i] = bytes;
		pool->list_len[i] = lens[i];
		bytes += lens[i];
	}
	pool->nlist = n;
	pool->lending = 0;
	atomic_store(&pool->list_next, 0);
	prepare(pool, rs, now, 1);
	start(pool, 1);
	return 0;
}

int reeval_pool_lend_begin(struct reeval_pool *pool, const struct ruleset *rs, int64_t now, uint64_t gen,
			   struct alert_states *as, size_t most)
{
	if (!pool->n || reeval_pool_busy(pool))
		return -1;
	if (most > pool->held_cap) {
		struct cust **held = realloc(pool->held, most * sizeof(*held));
		if (!held)
			return -1;
		pool->held = held;
		size_t *index = realloc(pool->held_index, most * sizeof(*index));
		if (!index)
			return -1;
		pool->held_index = index;
		pool->held_cap = most;
	}
	pool->lending = 1;
	pool->held_most = most;
	pool->held_as = as;
	atomic_store(&pool->held_n, 0);
	atomic_store(&pool->held_closed, 0);
	atomic_store(&pool->list_next, 0);
	prepare(pool, rs, now, 1);
	for (size_t i = 0; i < reeval_pool_lent_size(pool); i++)
		reeval_pool_batch(pool, i)->gen = gen;
	start(pool, 1);
	return 0;
}

static void wake_lent(struct reeval_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pthread_cond_broadcast(&pool->more);
	pthread_mutex_unlock(&pool->lock);
}

void reeval_pool_lend(struct reeval_pool *pool, struct cust *c, size_t index)
{
	size_t k = atomic_load_explicit(&pool->held_n, memory_order_relaxed);

	if (k == pool->held_most)
		return; /* more than the writer said: it evaluates this one itself */
	pool->held[k] = c;
	pool->held_index[k] = index;
	atomic_store(&pool->held_n, k + 1);
	/* a waiting worker waits for a whole chunk: the only counts worth a wake-up */
	if ((k + 1) % LIST_CHUNK == 0 && atomic_load(&pool->held_waiting))
		wake_lent(pool);
}

/*
 * The writer in its seat: lent chunks evaluated as the workers do, on its
 * own transaction (DB_ALERTS is as of the last commit until the group writes
 * its changes, after this). Its results wait in its batch like theirs: the
 * alert journal the workers read stays untouched until all are done.
 */
static void evaluate_seated(struct reeval_pool *pool, MDB_txn *txn)
{
	struct reeval_worker *w = &pool->seat;
	struct walk_ctx ctx = { .w = w, .txn = txn };
	struct herr err = { 0 };

	/* nothing taken yet: what the seat cannot do, the workers do */
	if (!pool->seat_ready || !txn || size_alerts(w, w->cur->rs) < 0 ||
	    !(ctx.ac = alert_cursor_open(pool->st, txn, &err))) {
		log_debug("rules, the writer leaves the rest to the workers (%s)", err.msg[0] ? err.msg : "no memory");
		return;
	}
	w->held = 1;
	ctx.scan = (struct engine_scan){ .query = query_store, .qctx = w, .txn = txn, .tok = w->tok };
	if (evaluate_lent(&ctx) < 0 && !w->cur->failed) {
		w->cur->failed = 1;
		snprintf(w->cur->error, sizeof(w->cur->error), "out of memory");
	}
	alert_cursor_close(ctx.ac);
}

void reeval_pool_lend_end(struct reeval_pool *pool, MDB_txn *txn)
{
	atomic_store(&pool->held_closed, 1);
	wake_lent(pool);
	evaluate_seated(pool, txn);
	reeval_pool_wait(pool);
	pool->lending = 0;
}

void reeval_pool_wait(struct reeval_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	while (pool->out)
		pthread_cond_wait(&pool->work, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
}

size_t reeval_pool_size(const struct reeval_pool *pool)
{
	return pool->n;
}

size_t reeval_pool_lent_size(const struct reeval_pool *pool)
{
	return pool->n + 1;
}

struct reeval_batch *reeval_pool_batch(struct reeval_pool *pool, size_t i)
{
	return i < pool->n ? &pool->w[i].batch[pool->fill] : &pool->seat.batch[pool->fill];
}

void reeval_pool_drain(struct reeval_pool *pool)
{
	uint64_t wakes;

	pthread_mutex_lock(&pool->lock);
	while (pool->out)
		pthread_cond_wait(&pool->work, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
	if (read(pool->efd, &wakes, sizeof(wakes)) < 0 && errno != EAGAIN)
		log_warning("rules, reading the workers' wake-up failed (%s)", strerror(errno));
	for (size_t i = 0; i < pool->n; i++)
		reeval_batch_reset(&pool->w[i].batch[pool->fill]);
}

/* What a worker (or the writer's seat) owns; -1 out of memory, worker_free then frees what it got. */
static int worker_init(struct reeval_pool *pool, struct reeval_worker *w, size_t part)
{
	w->pool = pool;
	w->part = part;
	for (int k = 0; k < 2; k++) {
		w->batch[k].error_rule = -1;
		wbuf_init(&w->batch[k].rests);
		wbuf_init(&w->batch[k].packed);
	}
	w->cur = &w->batch[0];
	if (!(w->as = alert_states_new()) || !(w->ov = overlay_new()) || !(w->tok = json_tokener_new()) ||
	    !(w->codec = body_codec_new()) || !(w->read = cust_new("", 0)))
		return -1;
	return 0;
}

static void worker_free(struct reeval_worker *w)
{
	for (int k = 0; k < 2; k++) {
		reeval_batch_reset(&w->batch[k]);
		free(w->batch[k].ids);
		free(w->batch[k].custs);
		free(w->batch[k].changes);
		wbuf_free(&w->batch[k].rests);
		wbuf_free(&w->batch[k].packed);
	}
	body_codec_free(w->codec);
	cust_free(w->read);
	reset_alerts(w);
	free(w->alerts);
	alert_states_free(w->as);
	overlay_free(w->ov);
	if (w->tok)
		json_tokener_free(w->tok);
}

struct reeval_pool *reeval_pool_new(struct store *st, size_t n, struct loop *loop,
				    void (*ready)(void *ctx), void *ctx, struct herr *err)
{
	struct reeval_pool *pool = calloc(1, sizeof(*pool));

	if (!pool || !(pool->w = calloc(n ? n : 1, sizeof(*pool->w)))) {
		free(pool);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	pool->st = st;
	pool->loop = loop;
	pool->ready = ready;
	pool->ctx = ctx;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_mutex_init(&pool->claim_lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	pthread_cond_init(&pool->more, NULL);
	pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->efd < 0 || loop_watch(loop, NULL, pool->efd, ZMQ_POLLIN, on_wake, pool) < 0) {
		herr_set(err, HERR_IO, "rules, cannot set up the workers' wake-up (%s)", strerror(errno));
		goto fail;
	}
	pool->seat_ready = 1;
	if (worker_init(pool, &pool->seat, n) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct reeval_worker *w = &pool->w[i];
		pool->n++; /* from here on reeval_pool_free frees what it has */
		if (worker_init(pool, w, i) < 0) {
			herr_set(err, HERR_NOMEM, "out of memory");
			goto fail;
		}
		if (pthread_create(&w->thread, NULL, worker_main, w)) {
			herr_set(err, HERR_IO, "rules, cannot start a re-evaluation worker");
			goto fail;
		}
		w->started = 1;
	}
	return pool;
fail:
	reeval_pool_free(pool);
	return NULL;
}

void reeval_pool_free(struct reeval_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (size_t i = 0; i < pool->n; i++) {
		struct reeval_worker *w = &pool->w[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		worker_free(w);
	}
	if (pool->seat_ready)
		worker_free(&pool->seat);
	if (pool->efd >= 0) {
		loop_unwatch(pool->loop, NULL, pool->efd);
		close(pool->efd);
	}
	pthread_cond_destroy(&pool->work);
	pthread_cond_destroy(&pool->more);
	pthread_mutex_destroy(&pool->lock);
	pthread_mutex_destroy(&pool->claim_lock);
	free(pool->list_ids);
	free(pool->list_off);
	free(pool->list_len);
	free(pool->held);
	free(pool->held_index);
	free(pool->w);
	free(pool);
}
