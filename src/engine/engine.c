/*
 * Rule evaluation and alert publishing (see include/hearth/engine.h).
 *
 * Work is bounded per loop turn: a tick evaluates at most TICK_SLICE due
 * customers and a full re-evaluation REEVAL_SLICE customers, then yields to
 * the loop through a zero-delay timer, so sockets keep being served.
 * Silences, acks and the alert queries are in steering.c.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hearth/alert.h"
#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "engine_impl.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/ingest_clock.h"
#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/notification.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/timeline.h"
#include "hearth/units.h"
#include "reeval_worker.h"

#define TICK_SLICE      20000
#define REEVAL_SLICE    1000
#define REEVAL_WINDOW   8192    /* customers the workers walk per window (<= TICK_SLICE) */
#define REEVAL_WORKERS_MAX 8
#define TICK_WORKERS_MIN 256    /* fewer due customers are evaluated by the writer at once */
#define PRUNE_SLICE     10000
#define RETRY_MS        5000

/* ---- window scans ---------------------------------------------------------- */

struct scan_ctx {
	struct json_tokener *tok;
	const char *attr;
	double total;
	int64_t oldest;
};

static int scan_event(const struct event *ev, void *vctx)
{
	struct scan_ctx *ctx = vctx;

	if (ev->ts < ctx->oldest)
		ctx->oldest = ev->ts;
	if (!ctx->attr) {
		ctx->total++;
		return 0;
	}
	if (!ev->attrs_json)
		return 0;
	struct json_object *attrs = json_parse_whole(ctx->tok, ev->attrs_json, ev->attrs_len, NULL), *v;
	if (attrs && json_object_object_get_ex(attrs, ctx->attr, &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		ctx->total += json_object_get_double(v);
	json_object_put(attrs);
	return 0;
}

static int scan_window(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
		       const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct engine *eng = vctx;
	struct scan_ctx ctx = { .tok = eng->tok, .attr = attr, .oldest = EVAL_NEVER };
	struct timeline_query q = {
		.customer = c->id, .customer_len = c->id_len, .since = from + 1, .until = to,
		.types = types, .ntypes = ntypes, .limit = SIZE_MAX,
	};
	struct herr err;
	int more;

	if (!eng->txn || timeline_query(eng->tl, eng->txn, &q, scan_event, &ctx, &more, &err) < 0)
		return -1;
	*total = ctx.total;
	*oldest = ctx.oldest;
	return 0;
}

static int scan_window_over(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
			    const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct engine_scan *s = vctx;
	struct scan_ctx ctx = { .tok = s->tok, .attr = attr, .oldest = EVAL_NEVER };
	struct timeline_query q = {
		.customer = c->id, .customer_len = c->id_len, .since = from + 1, .until = to,
		.types = types, .ntypes = ntypes, .limit = SIZE_MAX,
	};
	struct herr err;
	int more;

	if (!s->txn || s->query(s->qctx, s->txn, &q, scan_event, &ctx, &more, &err) < 0)
		return -1;
	*total = ctx.total;
	*oldest = ctx.oldest;
	return 0;
}

void engine_scan_env(struct engine_scan *s, const struct cust *c, int64_t now, struct eval_env *env)
{
	memset(env, 0, sizeof(*env));
	env->c = c;
	env->now = now;
	env->scan = scan_window_over;
	env->scan_ctx = s;
}

void engine_env(struct engine *eng, MDB_txn *txn, const struct cust *c, int64_t now,
		struct eval_env *env)
{
	memset(env, 0, sizeof(*env));
	env->c = c;
	env->now = now;
	env->scan = scan_window;
	env->scan_ctx = eng;
	eng->txn = txn;
}
/* ---- evaluation ------------------------------------------------------------ */

struct load_ctx {
	struct engine *eng;
	const struct cust *c;
};

static void load_alert(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct load_ctx *ctx = vctx;
	ssize_t idx = ruleset_index(ctx->eng->rs, rule);

	if (idx >= 0 && alert_decode(rec, len, &ctx->eng->alerts[idx]) < 0)
		log_warning("alerts, damaged state of rule '%s' for '%.*s'; starting afresh", rule,
			    (int)ctx->c->id_len, ctx->c->id);
}

void engine_load_alerts(struct engine *eng, MDB_txn *txn, const struct cust *c)
{
	struct load_ctx ctx = { eng, c };

	for (size_t i = 0; i < eng->rs->n; i++) {
		struct alert *a = &eng->alerts[i];
		free(a->values_json);
		a->values_json = NULL;
		a->state = ALERT_INACTIVE;
		a->since = a->last_notified = a->resolved_at = a->active_since = a->values_at = 0;
		a->acked = 0;
		a->acked_by[0] = a->summary[0] = '\0';
	}
	alert_states_customer(timeline_alert_states(eng->tl), eng->st, txn, c->id, c->id_len,
			      load_alert, &ctx);
}

struct change *engine_push_change(struct engine *eng)
{
	if (eng->nchanges == eng->changes_cap) {
		size_t cap = eng->changes_cap ? eng->changes_cap * 2 : 64;
		struct change *more = realloc(eng->changes, cap * sizeof(*more));
		if (!more)
			return NULL;
		eng->changes = more;
		eng->changes_cap = cap;
	}
	struct change *ch = &eng->changes[eng->nchanges++];
	memset(ch, 0, sizeof(*ch));
	return ch;
}

struct writer_step {
	struct engine *eng;
	struct cust *c;
	int64_t now;
};

static void writer_env(void *ctx, const struct cust *c, int64_t now, struct eval_env *env)
{
	struct engine *eng = ((struct writer_step *)ctx)->eng;
	engine_env(eng, eng->txn, c, now, env);
}

static void writer_failed(void *ctx, size_t rule, const char *error)
{
	struct writer_step *ws = ctx;
	struct rule *r = &ws->eng->rs->rules[rule];

	snprintf(r->last_error, sizeof(r->last_error), "%.*s: %s", (int)ws->c->id_len, ws->c->id, error);
	ws->eng->errors_gen++;
}

struct change *engine_take_change(struct engine *eng, struct cust *c, size_t rule, struct alert *a,
				  enum alert_state before, int64_t since_before, enum notify_kind kind,
				  int64_t now)
{
	const struct rule *r = &eng->rs->rules[rule];
	struct change *ch;

	if (kind == NOTIFY_RESOLVED && now - since_before < eng->cfg->flap_window_ms)
		eng->stats.flapping++;
	if (!(ch = engine_push_change(eng))) {
		eng->stats.errors++;
		return NULL;
	}
	ch->c = c;
	ch->rule = rule;
	ch->a = *a;
	a->values_json = NULL; /* moved into the change */
	ch->before = before;
	ch->kind = kind;
	ch->silenced = kind != NOTIFY_NONE && engine_silenced(eng, r->cfg->name, c, now);
	return ch;
}

static void writer_changed(void *ctx, size_t rule, struct alert *a, enum alert_state before,
			   int64_t since_before, enum notify_kind kind)
{
	struct writer_step *ws = ctx;
	engine_take_change(ws->eng, ws->c, rule, a, before, since_before, kind, ws->now);
}

static void evaluate_one(struct engine *eng, MDB_txn *txn, struct cust *c, int64_t now)
{
	struct writer_step ws = { eng, c, now };
	const struct step_env se = { writer_env, &ws };
	const struct step_sink sink = { writer_changed, writer_failed, &ws };

	engine_load_alerts(eng, txn, c);
	eng->txn = txn;
	c->deadline = engine_step(eng->rs, eng->alerts, c, now, &se, &sink);
	eng->stats.evaluations++;
	timeline_deadline_set(eng->tl, c);
}

/* Puts the changes and their notifications into w; *seq: the last notification's. */
static int put_changes(struct engine *eng, struct wtxn *w, int64_t now, uint64_t *seq, int in_place,
		       struct herr *err)
{
	struct alert_states *as = timeline_alert_states(eng->tl);
	struct wbuf rec, body;
	int rc = 0;

	*seq = outbox_last_seq(eng->ob);
	wbuf_init(&rec);
	wbuf_init(&body);
	for (size_t i = 0; i < eng->nchanges && !w->rc; i++) {
		struct change *ch = &eng->changes[i];
		free(ch->body);
		ch->body = NULL;
		if (ch->a.state == ALERT_INACTIVE || ch->drop) {
			(in_place ? alert_states_put_in_place : alert_states_put)(as, w, ch->c->id, ch->c->id_len,
										  ch->a.rule, NULL, 0);
		} else {
			wbuf_reset(&rec);
			alert_encode(&ch->a, &rec);
			(in_place ? alert_states_put_in_place : alert_states_put)(as, w, ch->c->id, ch->c->id_len,
										  ch->a.rule, rec.data, rec.len);
		}
		if (ch->kind == NOTIFY_NONE || ch->silenced)
			continue;
		ch->seq = ++*seq;
		wbuf_reset(&body);
		if (ch->rest)
			notification_body_join(ch->seq, ch->rest, ch->rest_len, &body);
		else
			notification_body(&ch->a, ch->c, eng->rs->rules[ch->rule].cfg, ch->kind, ch->seq, now,
					  &body);
		if (body.failed || !(ch->body = strndup((const char *)body.data, body.len))) {
			rc = herr_set(err, HERR_NOMEM, "out of memory");
			goto out;
		}
		if (ch->rest && ch->packed_len)
			outbox_put_packed(eng->ob, w, *seq, now, ch->packed, ch->packed_len);
		else
			outbox_put(eng->ob, w, *seq, now, ch->body, body.len);
	}
	if (*seq != outbox_last_seq(eng->ob))
		outbox_put_last_seq(w, *seq);
	rc = w->rc ? -1 : 0;
out:
	wbuf_free(&rec);
	wbuf_free(&body);
	return rc;
}

struct write_ctx {
	struct engine *eng;
	int64_t now;
	uint64_t seq;
	enum change_writes how;
};

static int write_changes(struct wtxn *w, void *vctx, struct herr *err)
{
	struct write_ctx *ctx = vctx;
	engine_load_write(ctx->eng, w);
	return put_changes(ctx->eng, w, ctx->now, &ctx->seq, ctx->how == WRITES_IN_KEY_ORDER, err);
}

static void count_state(struct engine *eng, enum alert_state s, int delta)
{
	if (s == ALERT_FIRING)
		eng->stats.firing += (uint64_t)delta;
	else if (s == ALERT_PENDING)
		eng->stats.pending += (uint64_t)delta;
}

/* The changes are durable, up to notification seq: count and publish them. */
static void publish_changes(struct engine *eng, uint64_t seq)
{
	outbox_committed(eng->ob, seq);
	for (size_t i = 0; i < eng->nchanges; i++) {
		struct change *ch = &eng->changes[i];
		const struct rule *r = &eng->rs->rules[ch->rule];
		count_state(eng, ch->before, -1);
		count_state(eng, ch->a.state, +1);
		if (ch->silenced)
			eng->stats.silenced++;
		if (!ch->body)
			continue;
		snprintf(ch->topic, sizeof(ch->topic), "alert.%s.%s", severity_name(r->cfg->severity),
			 r->cfg->name);
		outbox_publish(eng->ob, ch->topic, ch->body, strlen(ch->body));
		eng->stats.notifications++;
		char customer[HEARTH_ID_MAX + 1];
		snprintf(customer, sizeof(customer), "%.*s", (int)ch->c->id_len, ch->c->id);
		struct log_fields f = { .rule = r->cfg->name, .customer = customer, .seq = ch->seq };
		log_with(LOG_LEVEL_INFO, &f, "alert, %s %s for '%s': %s", notify_kind_name(ch->kind),
			 r->cfg->name, customer, ch->a.summary);
	}
}

static void free_changes(struct engine *eng)
{
	for (size_t i = 0; i < eng->nchanges; i++) {
		free(eng->changes[i].body);
		free(eng->changes[i].a.values_json);
	}
	eng->nchanges = 0;
}

void engine_commit_changes(struct engine *eng, int64_t now, enum change_writes how)
{
	struct write_ctx ctx = { .eng = eng, .now = now, .how = how };
	struct herr err;

	if (eng->nchanges == 0 && eng->nundefer == 0)
		return;
	if (store_write(eng->st, write_changes, &ctx, &err) < 0) {
		alert_states_discard(timeline_alert_states(eng->tl));
		log_error("alerts, saving %zu change(s) failed (%s); retrying in %d ms", eng->nchanges,
			  err.msg, RETRY_MS);
		eng->stats.errors++;
		/* (a re-evaluation's stand-ins, apply_customer, only lose a refresh until the next one) */
		for (size_t i = 0; i < eng->nchanges; i++) {
			eng->changes[i].c->deadline = now + RETRY_MS;
			timeline_deadline_set(eng->tl, eng->changes[i].c);
		}
	} else {
		alert_states_commit(timeline_alert_states(eng->tl));
		publish_changes(eng, ctx.seq);
	}
	free_changes(eng);
}

static void evaluate_each(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++)
		evaluate_one(eng, txn, custs[i], now);
	eng->txn = NULL;
}

void engine_evaluate_and_commit(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n,
				int64_t now, enum change_writes how)
{
	evaluate_each(eng, txn, custs, n, now);
	store_read_end(txn); /* the map may grow in the write: no reader may be open */
	engine_commit_changes(eng, now, how);
	for (size_t i = 0; i < n; i++)
		timeline_release(eng->tl, custs[i]);
}

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
		evaluate_one(eng, txn, c, eng->ingest_now);
	}
	eng->txn = NULL;
}

int engine_ingest_write(struct engine *eng, struct wtxn *w, struct herr *err)
{
	engine_load_write(eng, w);
	/* what ingest changes goes to the journal: a few customers at random keys per group */
	return eng->nchanges ? put_changes(eng, w, eng->ingest_now, &eng->ingest_seq, 0, err) : 0;
}

void engine_ingest_end(struct engine *eng, int committed)
{
	if (committed)
		alert_states_commit(timeline_alert_states(eng->tl));
	else
		alert_states_discard(timeline_alert_states(eng->tl));
	if (committed && eng->nchanges)
		publish_changes(eng, eng->ingest_seq);
	free_changes(eng);
	engine_load_group_end(eng, committed);
}

/* ---- tick and re-evaluation ------------------------------------------------ */

static void continue_slices(struct loop *loop, void *ctx);

static void apply_worker_result(struct engine *eng, struct cust *c, const struct reeval_batch *b,
				const struct reeval_cust *rc);

/*
 * The due customers evaluated by the workers while the writer waits (a tick
 * holds the loop either way; this way for half as long): the writer writes
 * nothing meanwhile, so their snapshot is its own, and only a customer whose
 * state in memory differs from the store's is evaluated here. 0: not done so.
 */
static int tick_by_workers(struct engine *eng, MDB_txn *txn, size_t n, int64_t now)
{
	const char **ids;
	size_t *lens;
	int rc = 0;

	if (!eng->pool || eng->window_out || n < TICK_WORKERS_MIN)
		return 0;
	ids = malloc(n * sizeof(*ids));
	lens = malloc(n * sizeof(*lens));
	if (!ids || !lens)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ids[i] = eng->due[i]->id;
		lens[i] = eng->due[i]->id_len;
	}
	if (reeval_pool_submit_list(eng->pool, eng->rs, now, ids, lens, n) < 0)
		goto out;
	reeval_pool_wait(eng->pool);
	for (size_t w = 0; w < reeval_pool_size(eng->pool); w++) {
		struct reeval_batch *b = reeval_pool_batch(eng->pool, w);
		for (size_t k = 0; k < b->ncusts; k++) {
			const struct reeval_cust *r = &b->custs[k];
			struct cust *c = eng->due[r->index];
			if (b->failed || r->nchanges == SIZE_MAX || timeline_pending(eng->tl, c->id, c->id_len))
				evaluate_one(eng, txn, c, now);
			else
				apply_worker_result(eng, c, b, r);
		}
		if (b->failed)
			log_error("tick, a worker failed (%s); the writer evaluated its share", b->error);
	}
	eng->txn = NULL;
	store_read_end(txn); /* the map may grow in the write: no reader may be open */
	engine_commit_changes(eng, now, WRITES_SCATTERED);
	for (size_t i = 0; i < n; i++)
		timeline_release(eng->tl, eng->due[i]);
	for (size_t w = 0; w < reeval_pool_size(eng->pool); w++)
		reeval_batch_reset(reeval_pool_batch(eng->pool, w));
	rc = 1;
out:
	free(ids);
	free(lens);
	return rc;
}

static size_t tick_slice(struct engine *eng, int64_t now)
{
	MDB_txn *txn;
	struct herr err;
	size_t n;

	if (store_read_begin(eng->st, &txn, &err) < 0) {
		log_error("tick, cannot read the store (%s)", err.msg);
		return 0;
	}
	n = timeline_due(eng->tl, txn, now, eng->due, TICK_SLICE, &err);
	eng->tick_more = n == TICK_SLICE;
	n = engine_drop_deferred(eng, eng->due, n);
	if (!tick_by_workers(eng, txn, n, now))
		engine_evaluate_and_commit(eng, txn, eng->due, n, now, WRITES_SCATTERED);
	return n;
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
static void check_cases(struct engine *eng)
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

/* ---- re-evaluation by the workers ------------------------------------------ */

/* A customer the workers saw as the store had it: c is held, its changes go to the next commit. */
static void apply_worker_result(struct engine *eng, struct cust *c, const struct reeval_batch *b,
				const struct reeval_cust *rc)
{
	for (size_t i = 0; i < rc->nchanges; i++) {
		struct reeval_change *ch = &b->changes[rc->first_change + i];
		struct change *taken = engine_take_change(eng, c, ch->rule, &ch->a, ch->before, ch->since_before,
							  ch->kind, b->now);
		/* the batch outlives the commit: its rests are reset with it */
		if (taken && ch->rest_len) {
			taken->rest = b->rests.data + ch->rest_off;
			taken->rest_len = ch->rest_len;
			taken->packed = ch->packed_len ? b->packed.data + ch->packed_off : NULL;
			taken->packed_len = ch->packed_len;
		}
	}
	c->deadline = rc->deadline;
	timeline_deadline_set(eng->tl, c);
	eng->stats.evaluations++;
}

/* Only refreshed what firing alerts say (§4.1): no notification, no new deadline. */
static int refresh_only(const struct reeval_batch *b, const struct reeval_cust *rc)
{
	if (rc->deadline != rc->stored_deadline)
		return 0;
	for (size_t i = 0; i < rc->nchanges; i++)
		if (b->changes[rc->first_change + i].kind != NOTIFY_NONE)
			return 0;
	return 1;
}

/*
 * A customer by id alone, for changes that need no more of them: loading and
 * holding the record, for the many firing alerts a re-evaluation refreshes,
 * was most of the writer's share of it.
 */
static struct cust *standin(struct engine *eng, const char *id, size_t len)
{
	struct cust *c;

	if (eng->nstandins == eng->standins_cap) {
		size_t cap = eng->standins_cap ? eng->standins_cap * 2 : 256;
		struct cust **more = realloc(eng->standins, cap * sizeof(*more));
		if (!more)
			return NULL;
		eng->standins = more;
		eng->standins_cap = cap;
	}
	if ((c = cust_new(id, len)))
		eng->standins[eng->nstandins++] = c;
	return c;
}

static void free_standins(struct engine *eng)
{
	for (size_t i = 0; i < eng->nstandins; i++)
		cust_free(eng->standins[i]);
	eng->nstandins = 0;
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
	if (!stale && refresh_only(b, rc) && (c = standin(eng, id, rc->id_len))) {
		apply_worker_result(eng, c, b, rc);
		eng->stats.reeval_by_workers++;
		return;
	}
	if (!(c = timeline_hold(eng->tl, txn, id, rc->id_len, &err)))
		return;
	eng->due[(*n)++] = c;
	if (!stale) {
		apply_worker_result(eng, c, b, rc);
		eng->stats.reeval_by_workers++;
	} else if (engine_drop_deferred(eng, &c, 1) == 1) {
		evaluate_one(eng, txn, c, b->now);
	}
}

/* LMDB's order of keys: bytes, then the shorter first. */
static int key_less(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c < 0 || (c == 0 && alen < blen);
}

/*
 * Where the next window starts: after the smallest last customer any worker
 * saw (their snapshots may differ by customers added meanwhile, whom ingest
 * evaluated under these rules already; one seen twice is only evaluated twice).
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
		engine_schedule_slice(eng);
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
	free_standins(eng);
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
		engine_schedule_slice(eng);
}

/* Hands the workers the next window; 0 if they took it. */
static int submit_window(struct engine *eng, int64_t now)
{
	uint64_t gen;

	if (!eng->pool || eng->rebuild_cases || eng->window_out)
		return -1;
	gen = timeline_watch_begin(eng->tl);
	if (reeval_pool_submit(eng->pool, eng->rs, now, eng->reeval_after,
			       eng->reeval_started ? eng->reeval_after_len : 0, REEVAL_WINDOW) < 0)
		return -1; /* the watch stays on: the caller's window, if any, ends it */
	eng->window_out = 1;
	eng->window_gen = gen;
	return 0;
}

/* A window out is waited for and forgotten: the rules it reads are about to go. */
static void drop_window(struct engine *eng)
{
	if (!eng->window_out)
		return;
	reeval_pool_drain(eng->pool);
	timeline_watch_end(eng->tl);
	eng->window_out = 0;
}

static void start_pool(struct engine *eng)
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

void engine_schedule_slice(struct engine *eng)
{
	if (!eng->slice_timer)
		eng->slice_timer = loop_timer_add(eng->loop, 0, continue_slices, eng);
}

static void continue_slices(struct loop *loop, void *ctx)
{
	struct engine *eng = ctx;
	int64_t now = ingest_clock_now(eng->clock);

	(void)loop;
	eng->slice_timer = 0;
	/* every customer evaluated is held until written: let the flush catch up first */
	if (timeline_backlogged(eng->tl)) {
		engine_schedule_slice(eng);
		return;
	}
	if (eng->tick_more && tick_slice(eng, now) == TICK_SLICE)
		engine_schedule_slice(eng);
	else if (eng->undeferring) {
		if (engine_undefer_slice(eng, now))
			engine_schedule_slice(eng);
	} else if (eng->reeval && !eng->window_out) {
		reeval_slice(eng, now);
		/* a window with the workers continues in on_window */
		if (eng->reeval && !eng->window_out)
			engine_schedule_slice(eng);
	}
}

size_t engine_tick(struct engine *eng)
{
	int64_t now = ingest_clock_now(eng->clock), started = mono_now_us();
	struct herr err;
	size_t n = tick_slice(eng, now);

	if (n == TICK_SLICE)
		engine_schedule_slice(eng);
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

	engine_tick(eng);
	eng->tick_timer = loop_timer_add(loop, eng->cfg->eval_interval_ms, on_tick, eng);
}

void engine_reevaluate_all(struct engine *eng)
{
	/*
	 * The walk reads stored customers; the new ones still pending are listed
	 * now rather than flushed first, which would hold the loop.
	 */
	drop_window(eng);
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
	engine_schedule_slice(eng);
}

/* ---- lifetime -------------------------------------------------------------- */

static void drop_removed_rules(struct engine *eng, const struct ruleset *next);

/* fn over every alert state the writer knows, in one read transaction (given to fn's ctx as needed). */
static int walk_alerts(struct engine *eng, MDB_txn **txn, alert_walk_fn fn, void *ctx, struct herr *err)
{
	int rc;

	if (store_read_begin(eng->st, txn, err) < 0)
		return -1;
	rc = alert_states_walk(timeline_alert_states(eng->tl), eng->st, *txn, NULL, 0, fn, ctx,
			       err);
	store_read_end(*txn);
	*txn = NULL;
	return rc;
}

static int count_alert(const char *id, size_t idlen, const char *rule, const void *rec, size_t len,
		       void *ctx)
{
	(void)id;
	(void)idlen;
	(void)rule;
	if (len > 1)
		count_state(ctx, (enum alert_state)((const uint8_t *)rec)[1], +1);
	return 0;
}

static int count_alerts(struct engine *eng, struct herr *err)
{
	MDB_txn *txn;
	return walk_alerts(eng, &txn, count_alert, eng, err);
}

/* One alert slot per rule, named once: evaluation only resets their state. */
static int size_rules(struct engine *eng)
{
	struct alert *alerts = calloc(eng->rs->n ? eng->rs->n : 1, sizeof(*alerts));

	if (!alerts)
		return -1;
	free(eng->alerts);
	eng->alerts = alerts;
	for (size_t i = 0; i < eng->rs->n; i++)
		snprintf(alerts[i].rule, sizeof(alerts[i].rule), "%s", eng->rs->rules[i].cfg->name);
	return 0;
}

static int put_rules_record(struct wtxn *w, void *ctx, struct herr *err)
{
	const struct wbuf *b = ctx;

	(void)err;
	wtxn_meta_put(w, "rules", b->data, b->len);
	return 0;
}

/* The running rules' digests in the store: what `hearthd --check --against` compares with. */
static void record_rules(struct engine *eng)
{
	struct rule_digests d = { 0 };
	struct wbuf b;
	struct herr err = { 0 };

	wbuf_init(&b);
	if (rule_digests_of(eng->rs, &d) < 0)
		herr_set(&err, HERR_NOMEM, "out of memory");
	else
		rule_digests_encode(&d, &b);
	if (err.code == HERR_OK && b.failed)
		herr_set(&err, HERR_NOMEM, "out of memory");
	if (err.code != HERR_OK || store_write(eng->st, put_rules_record, &b, &err) < 0)
		log_warning("rules, cannot record the running rules in the store (%s)", err.msg);
	rule_digests_free(&d);
	wbuf_free(&b);
}

/* Evaluates for others (window scans of engine_env) and never writes: no rules, outbox or timers. */
struct engine *engine_open_reader(struct timeline *tl, struct herr *err)
{
	struct engine *eng = calloc(1, sizeof(*eng));

	if (!eng || !(eng->tok = json_tokener_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		engine_close(eng);
		return NULL;
	}
	eng->tl = tl;
	eng->stats.last_tick = TIME_NONE;
	return eng;
}

struct engine *engine_open(const struct config *cfg, struct store *st, struct timeline *tl,
			   struct outbox *ob, struct loop *loop, const struct ingest_clock *clock,
			   struct ruleset *rs, struct herr *err)
{
	struct engine *eng = calloc(1, sizeof(*eng));

	if (!eng) {
		herr_set(err, HERR_NOMEM, "out of memory");
		ruleset_free(rs);
		return NULL;
	}
	eng->cfg = cfg;
	eng->st = st;
	eng->tl = tl;
	eng->ob = ob;
	eng->loop = loop;
	eng->clock = clock;
	eng->rs = rs;
	eng->stats.last_tick = TIME_NONE;
	eng->errors_gen = eng->silences_gen = 1;        /* the board's first post differs (0) */
	eng->due = calloc(TICK_SLICE > REEVAL_SLICE ? TICK_SLICE : REEVAL_SLICE, sizeof(*eng->due));
	eng->tok = json_tokener_new();
	if (!eng->due || !eng->tok || size_rules(eng) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	if (engine_load_silences(eng, err) < 0 || count_alerts(eng, err) < 0 ||
	    engine_load_open(eng, err) < 0)
		goto fail;
	start_pool(eng);
	eng->tick_timer = loop_timer_add(loop, cfg->eval_interval_ms, on_tick, eng);
	drop_removed_rules(eng, NULL);
	record_rules(eng);
	check_cases(eng);
	/* the rules may have changed while we were stopped, and a crash may have left work */
	engine_reevaluate_all(eng);
	return eng;
fail:
	engine_close(eng);
	return NULL;
}

void engine_close(struct engine *eng)
{
	if (!eng)
		return;
	if (eng->pool) {
		drop_window(eng);
		reeval_pool_free(eng->pool);
	}
	for (size_t i = 0; eng->alerts && eng->rs && i < eng->rs->n; i++)
		alert_clear(&eng->alerts[i]);
	free(eng->alerts);
	free(eng->changes);
	free_standins(eng);
	free(eng->standins);
	free(eng->silences);
	free(eng->due);
	if (eng->tok)
		json_tokener_free(eng->tok);
	id_list_free(&eng->reeval_fresh);
	engine_load_close(eng);
	ruleset_free(eng->rs);
	free(eng);
}

/*
 * Alerts of rules that `next` no longer has: firing ones resolve (notified with
 * the old rule's severity and labels), and every record of them goes. With
 * next == NULL (at start), records of rules unknown to the running config are
 * only deleted: nothing is known to publish them with.
 */
struct drop_ctx {
	struct engine *eng;
	const struct ruleset *next;
	int64_t now;
	MDB_txn *txn;
};

static int drop_alert(const char *k, size_t idlen, const char *rule, const void *rec, size_t len,
		      void *vctx)
{
	struct drop_ctx *ctx = vctx;
	struct engine *eng = ctx->eng;
	struct herr err;
	int64_t wake;

	ssize_t old = ruleset_index(eng->rs, rule);
	if ((ctx->next && ruleset_index(ctx->next, rule) >= 0) || (!ctx->next && old >= 0))
		return 0;
	struct cust *c = timeline_hold(eng->tl, ctx->txn, k, idlen, &err);
	struct change *ch = c ? engine_push_change(eng) : NULL;
	if (!ch)
		return 0;
	ch->c = c;
	ch->drop = 1;
	snprintf(ch->a.rule, sizeof(ch->a.rule), "%s", rule);
	if (alert_decode(rec, len, &ch->a) < 0 || old < 0) {
		/* no rule config to notify with: the record just goes */
		ch->rule = 0;
		ch->before = ch->a.state;
		ch->a.state = ALERT_INACTIVE;
		return 0;
	}
	ch->rule = (size_t)old;
	ch->before = ch->a.state;
	ch->kind = alert_step(&ch->a, 0, ctx->now, 0, 0, &wake);
	ch->silenced = ch->kind != NOTIFY_NONE && engine_silenced(eng, rule, c, ctx->now);
	return 0;
}

static void drop_removed_rules(struct engine *eng, const struct ruleset *next)
{
	struct drop_ctx ctx = { eng, next, ingest_clock_now(eng->clock), NULL };
	struct herr err;

	if (walk_alerts(eng, &ctx.txn, drop_alert, &ctx, &err) < 0)
		log_error("rules, cannot read alert states to drop those of removed rules (%s)", err.msg);
	if (eng->nchanges)
		log_info("rules, %zu alert(s) of removed rules resolved or dropped", eng->nchanges);
	engine_commit_changes(eng, ctx.now, WRITES_IN_KEY_ORDER);
}

/* Was a rule of the running set left out of the next? */
static int rules_removed(const struct ruleset *now, const struct ruleset *next)
{
	for (size_t i = 0; i < now->n; i++)
		if (ruleset_index(next, now->rules[i].cfg->name) < 0)
			return 1;
	return 0;
}

void engine_set_rules(struct engine *eng, const struct config *cfg, struct ruleset *rs)
{
	drop_window(eng);
	eng->cfg = cfg;
	/* while the old rules can still describe them; a walk of every alert, so only when needed */
	if (rules_removed(eng->rs, rs))
		drop_removed_rules(eng, rs);
	for (size_t i = 0; i < eng->rs->n; i++)
		alert_clear(&eng->alerts[i]);
	ruleset_free(eng->rs);
	eng->rs = rs;
	eng->errors_gen++;
	if (size_rules(eng) < 0)
		log_error("rules, out of memory sizing the rule table");
	record_rules(eng);
	check_cases(eng);
	engine_reevaluate_all(eng);
}

const struct ruleset *engine_rules(const struct engine *eng)
{
	return eng->rs;
}

uint64_t engine_errors_gen(const struct engine *eng)
{
	return eng->errors_gen;
}

uint64_t engine_seq(const struct engine *eng)
{
	return outbox_last_seq(eng->ob);
}

void engine_get_stats(const struct engine *eng, struct engine_stats *out)
{
	*out = eng->stats;
	out->reevaluating = eng->reeval;
	out->reeval_workers = eng->pool ? reeval_pool_size(eng->pool) : 0;
	out->deferred = eng->deferred.count;
	out->load_ending = eng->undeferring;
}
