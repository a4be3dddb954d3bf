/*
 * Changes of alert states and how they land: each evaluation's changes are
 * collected, written with their notifications in one transaction, and
 * published once that transaction is durable (PROTOCOL.md, alerts).
 * Ticks, re-evaluations, loads, reloads and steering commit through here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "hearth/alert.h"
#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/log.h"
#include "hearth/notification.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/timeline.h"
#include "reeval_worker.h"

#define RETRY_MS 5000

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
	MDB_txn *txn;
	struct cust *c;
	int64_t now;
	int lost;                       /* a change could not be kept: the memo must not say it was made */
};

static void writer_load(void *ctx)
{
	struct writer_step *ws = ctx;
	engine_load_alerts(ws->eng, ws->txn, ws->c);
}

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
	if (!engine_take_change(ws->eng, ws->c, rule, a, before, since_before, kind, ws->now))
		ws->lost = 1;
}

void engine_evaluate_one(struct engine *eng, MDB_txn *txn, struct cust *c, int64_t now)
{
	struct writer_step ws = { .eng = eng, .txn = txn, .c = c, .now = now };
	const struct step_env se = { writer_env, writer_load, &ws, c, eng->memo_gen };
	const struct step_sink sink = { writer_changed, writer_failed, &ws };

	eng->txn = txn;
	c->deadline = engine_step(eng->rs, eng->alerts, c, now, &se, &sink);
	if (ws.lost)
		c->quiet_gen = 0;
	eng->stats.evaluations++;
	timeline_deadline_set(eng->tl, c);
}

/* Puts the changes and their notifications into w; *seq: the last notification's. */
#define BODIES_KEPT (4u << 20)

int engine_put_changes(struct engine *eng, struct wtxn *w, int64_t now, uint64_t *seq, int in_place,
		       struct herr *err)
{
	struct alert_states *as = timeline_alert_states(eng->tl);
	struct wbuf *bodies = &eng->bodies;
	struct wbuf rec;
	int rc = 0;

	*seq = outbox_last_seq(eng->ob);
	wbuf_init(&rec);
	wbuf_reset(bodies); /* a retry after the map grew builds them again */
	for (size_t i = 0; i < eng->nchanges && !w->rc; i++) {
		struct change *ch = &eng->changes[i];
		ch->body_len = 0;
		if (ch->drop)
			engine_memos_stale(eng); /* a rule's record gone with its rule: ch->rule may not name it */
		else
			engine_memo_alert(ch->c, ch->rule, &ch->a);
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
		ch->body_off = bodies->len;
		if (ch->rest)
			notification_body_join(ch->seq, ch->rest, ch->rest_len, bodies);
		else
			notification_body(&ch->a, ch->c, eng->rs->rules[ch->rule].cfg, ch->kind, ch->seq, now,
					  bodies);
		if (bodies->failed) {
			rc = herr_set(err, HERR_NOMEM, "out of memory");
			goto out;
		}
		ch->body_len = bodies->len - ch->body_off;
		if (ch->rest && ch->packed_len)
			outbox_put_packed(eng->ob, w, *seq, now, ch->packed, ch->packed_len);
		else
			outbox_put(eng->ob, w, *seq, now, (const char *)bodies->data + ch->body_off, ch->body_len);
	}
	if (*seq != outbox_last_seq(eng->ob))
		outbox_put_last_seq(w, *seq);
	rc = w->rc ? -1 : 0;
out:
	wbuf_free(&rec);
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
	return engine_put_changes(ctx->eng, w, ctx->now, &ctx->seq, ctx->how == WRITES_IN_KEY_ORDER, err);
}

void engine_count_state(struct engine *eng, enum alert_state s, int delta)
{
	if (s == ALERT_FIRING)
		eng->stats.firing += (uint64_t)delta;
	else if (s == ALERT_PENDING)
		eng->stats.pending += (uint64_t)delta;
}

/* The changes are durable, up to notification seq: count and publish them. */
void engine_publish_changes(struct engine *eng, uint64_t seq)
{
	outbox_committed(eng->ob, seq);
	for (size_t i = 0; i < eng->nchanges; i++) {
		struct change *ch = &eng->changes[i];
		const struct rule *r = &eng->rs->rules[ch->rule];
		engine_count_state(eng, ch->before, -1);
		engine_count_state(eng, ch->a.state, +1);
		if (ch->silenced)
			eng->stats.silenced++;
		if (!ch->body_len)
			continue;
		snprintf(ch->topic, sizeof(ch->topic), "alert.%s.%s", severity_name(r->cfg->severity),
			 r->cfg->name);
		outbox_publish(eng->ob, ch->topic, (const char *)eng->bodies.data + ch->body_off, ch->body_len);
		eng->stats.notifications++;
		char customer[HEARTH_ID_MAX + 1];
		snprintf(customer, sizeof(customer), "%.*s", (int)ch->c->id_len, ch->c->id);
		struct log_fields f = { .rule = r->cfg->name, .customer = customer, .seq = ch->seq };
		log_with(LOG_LEVEL_INFO, &f, "alert, %s %s for '%s': %s", notify_kind_name(ch->kind),
			 r->cfg->name, customer, ch->a.summary);
	}
}

void engine_free_changes(struct engine *eng)
{
	for (size_t i = 0; i < eng->nchanges; i++)
		free(eng->changes[i].a.values_json);
	/* an ingest group's bodies are reused; a large tick's or re-evaluation's are given back */
	if (eng->bodies.cap > BODIES_KEPT)
		wbuf_free(&eng->bodies);
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
		engine_memos_stale(eng); /* they were told of changes now lost */
		log_error("alerts, saving %zu change(s) failed (%s); retrying in %d ms", eng->nchanges,
			  err.msg, RETRY_MS);
		eng->stats.errors++;
		for (size_t i = 0; i < eng->nchanges; i++) {
			eng->changes[i].c->deadline = now + RETRY_MS;
			timeline_deadline_set(eng->tl, eng->changes[i].c);
		}
	} else {
		alert_states_commit(timeline_alert_states(eng->tl));
		engine_publish_changes(eng, ctx.seq);
	}
	engine_free_changes(eng);
}

static void evaluate_each(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++)
		engine_evaluate_one(eng, txn, custs[i], now);
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

/* A customer the workers saw as the store had it: c is held, its changes go to the next commit. */
void engine_apply_worker_result(struct engine *eng, struct cust *c, const struct reeval_batch *b,
				 const struct reeval_cust *rc)
{
	for (size_t i = 0; i < rc->nchanges; i++) {
		struct reeval_change *ch = &b->changes[rc->first_change + i];
		struct change *taken = engine_take_change(eng, c, ch->rule, &ch->a, ch->before, ch->since_before,
							  ch->kind, b->now);
		if (!taken)
			c->quiet_gen = 0; /* its memo may have been told of it by the worker's step */
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
