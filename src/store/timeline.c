/*
 * Timelines: the durable append-only log plus derived indexes written in
 * sorted flushes (see include/hearth/timeline.h for the why).
 *
 * Keys:  log       seq(u64 BE)                         → event record
 *        timeline  customer 0x00 ts(i64 ordered) seq   → type
 *        customers customer                            → customer record
 *        ids       event id                            → seq
 * meta "indexed_seq": every log record up to it is reflected in the others.
 * Writing the pending derived state (the flush) is in flush.c.
 */
#include <errno.h>
#include <json-c/json.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/batch.h"
#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/json.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "timeline_impl.h"
#include "hearth/units.h"


size_t timeline_key(uint8_t *buf, const char *cust, size_t len, int64_t ts, uint64_t seq)
{
	memcpy(buf, cust, len);
	buf[len] = 0;
	be64_put(buf + len + 1, i64_to_ordered(ts));
	be64_put(buf + len + 9, seq);
	return len + 17;
}

/* Deadline index key: when (i64 ordered) then customer, so a tick reads a prefix. */
size_t timeline_deadline_key(uint8_t *buf, int64_t when, const char *cust, size_t len)
{
	be64_put(buf, i64_to_ordered(when));
	memcpy(buf + 8, cust, len);
	return 8 + len;
}

int pending_ev_cmp(const void *a, const void *b)
{
	const struct pending_ev *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

void timeline_dirty_free(struct dirty *d)
{
	if (!d)
		return;
	cust_free(d->c);
	free(d->ev);
	free(d);
}

static void pending_clear(struct timeline *tl)
{
	const struct strmap_slot *slot;

	for (size_t i = 0; strmap_next(&tl->dirty, &i, &slot);)
		timeline_dirty_free(slot->value);
	strmap_clear(&tl->dirty);
	strmap_clear(&tl->ids);
	tl->pending_events = 0;
	tl->new_customers = 0;
	tl->pending_since_ms = 0;
	tl->ntouched = 0;
}

struct cust *timeline_load(struct store *st, MDB_txn *txn, const char *id, size_t len, int *found,
			   struct herr *err)
{
	MDB_val val;
	int rc = store_get(txn, st, DB_CUSTOMERS, id, len, &val);
	struct cust *c;

	*found = rc == 0;
	if (rc == MDB_NOTFOUND) {
		c = cust_new(id, len);
		if (!c)
			herr_set(err, HERR_NOMEM, "out of memory");
		return c;
	}
	if (rc) {
		store_error(err, rc, "reading a customer");
		return NULL;
	}
	c = cust_decode(id, len, val.mv_data, val.mv_size);
	if (!c)
		herr_set(err, HERR_STORE_ERROR, "store, customer record of '%.*s' is damaged",
			 (int)len, id);
	return c;
}

/* The customer's pending entry, loaded from the store (or new) on first use. */
static struct dirty *dirty_get(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			       int create, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, id, len);
	int found;

	if (d)
		return d;
	if (!(d = calloc(1, sizeof(*d)))) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	d->c = timeline_load(tl->st, txn, id, len, &found, err);
	if (!d->c || (!found && !create)) {
		if (d->c)
			herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
		timeline_dirty_free(d);
		return NULL;
	}
	if (strmap_put(&tl->dirty, id, len, d) < 0) {
		timeline_dirty_free(d);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	d->is_new = !found;
	d->stored_deadline = d->c->deadline;
	d->stale_deadline = INT64_MAX;
	tl->new_customers += d->is_new;
	if (tl->dirty.count == 1)
		tl->pending_since_ms = mono_now_ms();
	return d;
}

static int touch(struct timeline *tl, struct dirty *d)
{
	if (d->mark == tl->mark)
		return 0;
	d->mark = tl->mark;
	if (tl->ntouched == tl->touched_cap) {
		size_t cap = tl->touched_cap ? tl->touched_cap * 2 : 64;
		struct cust **more = realloc(tl->touched, cap * sizeof(*more));
		if (!more)
			return -1;
		tl->touched = more;
		tl->touched_cap = cap;
	}
	tl->touched[tl->ntouched++] = d->c;
	return 0;
}

struct case_ctx {
	struct cust *c;
	const struct config *cfg;
};

static int case_event(const struct event *ev, void *vctx)
{
	struct case_ctx *ctx = vctx;
	return cust_apply_case_event(ctx->c, ev, ctx->cfg);
}

/* A case event came late: replay the customer's case events in time order. */
static int rebuild_cases(struct timeline *tl, MDB_txn *txn, struct cust *c, struct herr *err)
{
	const struct config *cfg = tl->cfg;
	const char *types[2 * 16];
	struct timeline_query q = { .customer = c->id, .customer_len = c->id_len,
				    .since = INT64_MIN, .until = INT64_MAX, .limit = SIZE_MAX,
				    .types = types };
	struct case_ctx ctx = { c, cfg };
	int more;

	for (size_t i = 0; i < cfg->ncases && q.ntypes + 2 <= sizeof(types) / sizeof(types[0]); i++) {
		types[q.ntypes++] = cfg->cases[i].open;
		types[q.ntypes++] = cfg->cases[i].close;
	}
	cust_cases_reset(c);
	return timeline_query(tl, txn, &q, case_event, &ctx, &more, err);
}

/* Folds a stored event into the in-memory side: state, time index, id index. */
static int apply_stored(struct timeline *tl, MDB_txn *txn, const struct event *ev, struct herr *err)
{
	struct dirty *d = dirty_get(tl, txn, ev->customer, ev->customer_len, 1, err);

	if (!d || touch(tl, d) < 0)
		return d ? herr_set(err, HERR_NOMEM, "out of memory") : -1;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 4;
		struct pending_ev *more = realloc(d->ev, cap * sizeof(*more));
		if (!more)
			return herr_set(err, HERR_NOMEM, "out of memory");
		d->ev = more;
		d->cap = cap;
	}
	struct pending_ev *p = &d->ev[d->n++];
	p->ts = ev->ts;
	p->seq = ev->seq;
	memcpy(p->type, ev->type, ev->type_len);
	p->type[ev->type_len] = '\0';
	int late = cust_case_event_is_late(d->c, ev, tl->cfg);
	if (cust_apply_ex(d->c, ev, tl->cfg, late) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory applying an event");
	if (late && rebuild_cases(tl, txn, d->c, err) < 0)
		return -1;
	if (ev->id && strmap_put(&tl->ids, ev->id, ev->id_len, (void *)(uintptr_t)ev->seq) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	tl->pending_events++;
	return 0;
}

/* Replays log records past indexed_seq: what a crash left unflushed. */
static int recover(struct timeline *tl, struct herr *err)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	uint8_t start[8];
	uint64_t indexed;
	int rc, ret = -1;

	if (store_read_begin(tl->st, &txn, err) < 0)
		return -1;
	indexed = store_meta_u64(txn, tl->st, "indexed_seq");
	tl->next_seq = indexed + 1;
	if ((rc = mdb_cursor_open(txn, store_dbi(tl->st, DB_LOG), &cur))) {
		store_error(err, rc, "recovery");
		goto out;
	}
	rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
	if (rc == 0 && key.mv_size == 8 && be64_get(key.mv_data) >= tl->next_seq)
		tl->next_seq = be64_get(key.mv_data) + 1;
	be64_put(start, indexed + 1);
	key.mv_data = start;
	key.mv_size = 8;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct event ev;
		if (key.mv_size != 8 || event_decode(val.mv_data, val.mv_size, &ev) < 0) {
			herr_set(err, HERR_STORE_ERROR, "store, damaged log record during recovery");
			goto out;
		}
		ev.seq = be64_get(key.mv_data);
		if (apply_stored(tl, txn, &ev, err) < 0)
			goto out;
		tl->stats.recovered_events++;
	}
	if (rc != MDB_NOTFOUND) {
		store_error(err, rc, "recovery");
		goto out;
	}
	ret = 0;
out:
	mdb_cursor_close(cur);
	store_read_end(txn);
	return ret;
}

struct timeline *timeline_open(struct store *st, const struct config *cfg, struct herr *err)
{
	struct timeline *tl = calloc(1, sizeof(*tl));

	if (!tl) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	tl->st = st;
	tl->cfg = cfg;
	strmap_init(&tl->dirty);
	strmap_init(&tl->restated);
	strmap_init(&tl->watch_ids);
	strmap_init(&tl->ids);
	wbuf_init(&tl->rec);
	tl->pending_min_deadline = INT64_MIN;
	if (!(tl->alerts = alert_states_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		timeline_close(tl);
		return NULL;
	}
	if (alert_states_recover(tl->alerts, st, err) < 0 || recover(tl, err) < 0) {
		timeline_close(tl);
		return NULL;
	}
	/* A full store must still start: what is recovered stays in memory until it fits. */
	if (!store_is_read_only(st) && timeline_flush(tl, 1, err) < 0) {
		if (err->code != HERR_STORE_FULL) {
			timeline_close(tl);
			return NULL;
		}
		log_warning("store, cannot write recovered state (%s); keeping it in memory", err->msg);
		herr_clear(err);
	}
	if (tl->stats.recovered_events)
		log_info("store, recovered %llu event(s) from the log",
			 (unsigned long long)tl->stats.recovered_events);
	return tl;
}

void timeline_close(struct timeline *tl)
{
	struct herr err;

	if (!tl)
		return;
	if (tl->dirty.count && !store_is_read_only(tl->st) && timeline_flush(tl, 1, &err) < 0)
		log_warning("store, final flush failed (%s); the log still holds everything",
			    err.msg);
	pending_clear(tl);
	timeline_watch_end(tl);
	flush_job_free(&tl->job);
	alert_states_free(tl->alerts);
	wbuf_free(&tl->rec);
	strmap_clear(&tl->restated);
	free(tl->touched);
	free(tl);
}

struct alert_states *timeline_alert_states(struct timeline *tl)
{
	return tl->alerts;
}

void timeline_set_config(struct timeline *tl, const struct config *cfg)
{
	tl->cfg = cfg;
}

struct store *timeline_store(struct timeline *tl)
{
	return tl->st;
}

static void publish_append(struct timeline *tl, struct batch **batches, size_t n);
static void publish_forget(struct timeline *tl, const char *id, size_t len);

/* ---- append ---------------------------------------------------------------- */

static int is_duplicate(struct strmap *group, struct timeline *tl, struct wtxn *w, const struct event *ev)
{
	const void *val;
	size_t vlen;

	if (strmap_get(group, ev->id, ev->id_len) || strmap_get(&tl->ids, ev->id, ev->id_len))
		return 1;
	return wtxn_get(w, DB_IDS, ev->id, ev->id_len, &val, &vlen) == 0;
}

static int put_record(struct timeline *tl, struct wtxn *w, const struct event *ev, struct herr *err)
{
	wbuf_reset(&tl->rec);
	if (event_encode(ev, &tl->rec, err) < 0)
		return -1;
	wtxn_append_seq(w, DB_LOG, ev->seq, tl->rec.data, tl->rec.len);
	return 0;
}

/* Sorts out duplicates, gives the rest their log seqs and puts their records. */
static int put_records(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
		       struct herr *err)
{
	struct strmap group;            /* ids taken by this group so far */
	uint64_t seq = tl->next_seq;
	int rc = -1;

	strmap_init(&group);
	for (size_t i = 0; i < n; i++) {
		struct batch *b = batches[i];
		if (b->fail.code != HERR_OK)
			continue;
		b->accepted = b->duplicates = 0;
		for (size_t j = 0; j < b->nevents; j++) {
			struct batch_event *be = &b->events[j];
			if (be->ev.id && is_duplicate(&group, tl, w, &be->ev)) {
				be->status = BATCH_DUPLICATE;
				b->duplicates++;
				continue;
			}
			if (be->ev.id && strmap_put(&group, be->ev.id, be->ev.id_len, be) < 0) {
				herr_set(err, HERR_NOMEM, "out of memory");
				goto out;
			}
			be->ev.seq = seq++;
			if (put_record(tl, w, &be->ev, err) < 0)
				goto out;
			be->status = BATCH_ACCEPTED;
			b->accepted++;
		}
	}
	rc = w->rc ? -1 : 0;
out:
	strmap_clear(&group);
	return rc;
}

/* The same records again: the transaction is retried after the map grew. */
static int reput_records(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
			 struct herr *err)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; batches[i]->fail.code == HERR_OK && j < batches[i]->nevents; j++)
			if (batches[i]->events[j].status == BATCH_ACCEPTED &&
			    put_record(tl, w, &batches[i]->events[j].ev, err) < 0)
				return -1;
	return w->rc ? -1 : 0;
}

/*
 * Folds the accepted events into pending state. A fold that fails (out of
 * memory) is logged: the log has the events and the next start rebuilds them.
 */
static void fold(struct timeline *tl, MDB_txn *txn, struct batch **batches, size_t n)
{
	struct herr err = { 0 };

	tl->ntouched = 0;
	tl->mark++;
	for (size_t i = 0; i < n; i++) {
		struct batch *b = batches[i];
		for (size_t j = 0; b->fail.code == HERR_OK && j < b->nevents; j++) {
			struct event *ev = &b->events[j].ev;
			if (b->events[j].status != BATCH_ACCEPTED)
				continue;
			if (ev->seq >= tl->next_seq)
				tl->next_seq = ev->seq + 1;
			if (apply_stored(tl, txn, ev, &err) < 0)
				log_error("store, indexing event %llu failed (%s)", (unsigned long long)ev->seq,
					  err.msg);
		}
	}
}

int timeline_append_in(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
		       int *folded, struct herr *err)
{
	if (*folded)
		return reput_records(tl, w, batches, n, err);
	if (put_records(tl, w, batches, n, err) < 0)
		return -1;
	fold(tl, w->txn, batches, n);
	*folded = 1;
	return 0;
}

/*
 * A commit failed after its events were folded in: pending state holds events
 * the log does not. Rebuilt as at a start, from the log past indexed_seq; the
 * rebuilt customers' deadlines may be stale, so each is due at the next tick.
 */
static void rollback(struct timeline *tl)
{
	const struct strmap_slot *slot;
	struct herr err = { 0 };

	flush_job_free(&tl->job);
	pending_clear(tl);
	if (recover(tl, &err) < 0) {
		log_error("store, rebuilding pending state after a failed commit failed (%s); "
			  "restart hearthd to rebuild it from the log", err.msg);
		return;
	}
	for (size_t i = 0; strmap_next(&tl->dirty, &i, &slot);)
		((struct dirty *)slot->value)->c->deadline = INT64_MIN;
	tl->pending_min_deadline = INT64_MIN;
	log_warning("store, a commit failed after its events were indexed: pending state rebuilt "
		    "from the log (%zu customers, evaluated at the next tick)", tl->dirty.count);
}

void timeline_append_end(struct timeline *tl, struct batch **batches, size_t n, int folded,
			 const struct herr *err)
{
	if (err) {
		tl->stats.commit_failures++;
		for (size_t i = 0; i < n; i++)
			if (batches[i]->fail.code == HERR_OK)
				batches[i]->fail = *err;
		if (folded)
			rollback(tl);
		return;
	}
	tl->stats.commits++;
	tl->last_append_ms = mono_now_ms();
	for (size_t i = 0; i < n; i++) {
		tl->stats.events_accepted += batches[i]->accepted;
		tl->stats.events_duplicate += batches[i]->duplicates;
	}
	if (tl->sink && tl->ntouched)
		publish_append(tl, batches, n);
}

struct append_ctx {
	struct timeline *tl;
	struct batch **batches;
	size_t n;
	int folded;
};

static int append_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct append_ctx *ctx = vctx;
	return timeline_append_in(ctx->tl, w, ctx->batches, ctx->n, &ctx->folded, err);
}

int timeline_append(struct timeline *tl, struct batch **batches, size_t n)
{
	struct append_ctx ctx = { .tl = tl, .batches = batches, .n = n };
	struct herr err = { 0 };
	int rc = store_write(tl->st, append_fn, &ctx, &err);

	timeline_append_end(tl, batches, n, ctx.folded, rc < 0 ? &err : NULL);
	return rc;
}

/* ---- the reader's notes ---------------------------------------------------- */

static void send_note(struct timeline *tl, struct overlay_note *n)
{
	if (!n) {
		log_error("store, out of memory telling the readers about pending state");
		return;
	}
	tl->sink(n, tl->sink_ctx);
}

/* One pending customer's copy into n; its entries too when all_events, else those of the batches. */
static ssize_t note_customer(struct timeline *tl, struct overlay_note *n, const struct dirty *d,
			     int all_events)
{
	ssize_t ci;

	wbuf_reset(&tl->rec);
	if (cust_encode(d->c, &tl->rec) < 0 || tl->rec.failed)
		return -1;
	ci = overlay_note_cust(n, d->c->id, d->c->id_len, tl->rec.data, tl->rec.len);
	for (size_t j = 0; all_events && ci >= 0 && j < d->n; j++)
		if (overlay_note_event(n, (size_t)ci, d->ev[j].ts, d->ev[j].seq, d->ev[j].type,
				       strlen(d->ev[j].type)) < 0)
			return -1;
	return ci;
}

/* What the append changed: the touched customers and the batches' accepted events. */
static void publish_append(struct timeline *tl, struct batch **batches, size_t n)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	struct strmap index;                 /* customer id → index in the note, plus one */

	strmap_init(&index);
	for (size_t i = 0; note && i < tl->ntouched; i++) {
		const struct cust *c = tl->touched[i];
		struct dirty *d = strmap_get(&tl->dirty, c->id, c->id_len);
		ssize_t ci = d ? note_customer(tl, note, d, 0) : -1;
		if (ci < 0 || strmap_put(&index, c->id, c->id_len, (void *)(uintptr_t)(ci + 1)) < 0)
			goto nomem;
	}
	for (size_t i = 0; note && i < n; i++)
		for (size_t j = 0; batches[i]->fail.code == HERR_OK && j < batches[i]->nevents; j++) {
			const struct batch_event *be = &batches[i]->events[j];
			uintptr_t ci;
			if (be->status != BATCH_ACCEPTED)
				continue;
			ci = (uintptr_t)strmap_get(&index, be->ev.customer, be->ev.customer_len);
			if (!ci || overlay_note_event(note, ci - 1, be->ev.ts, be->ev.seq, be->ev.type,
						      be->ev.type_len) < 0)
				goto nomem;
		}
	strmap_clear(&index);
	send_note(tl, note);
	return;
nomem:
	strmap_clear(&index);
	overlay_note_free(note);
	send_note(tl, NULL);
}

void timeline_publish_flushed(struct timeline *tl, size_t from, size_t to)
{
	struct overlay_note *note;

	if (!tl->sink || from == to)
		return;
	note = overlay_note_new(OVERLAY_FLUSHED, tl->gen);
	for (size_t i = from; note && i < to; i++)
		if (overlay_note_cust(note, tl->job.custs[i], tl->job.lens[i], NULL, 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

static void publish_forget(struct timeline *tl, const char *id, size_t len)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_FORGET, tl->gen);

	if (note && overlay_note_cust(note, id, len, NULL, 0) < 0) {
		overlay_note_free(note);
		note = NULL;
	}
	send_note(tl, note);
}

/*
 * Only customers still pending: one flushed meanwhile is in the store as
 * changed, and its FLUSHED note has gone out; an UPDATE after it would leave
 * the reader an entry no later note drops.
 */
void timeline_publish_restated(struct timeline *tl)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	if (!tl->sink || tl->restated.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->restated, &i, &slot);) {
		struct dirty *d = strmap_get(&tl->dirty, slot->key, slot->len);
		if (d && note_customer(tl, note, d, 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	}
	strmap_clear(&tl->restated);
	send_note(tl, note);
}

void timeline_set_sink(struct timeline *tl, timeline_sink_fn fn, void *ctx)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	tl->sink = fn;
	tl->sink_ctx = ctx;
	if (!fn || tl->dirty.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->dirty, &i, &slot);)
		if (note_customer(tl, note, slot->value, 1) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

/* ---- reads ----------------------------------------------------------------- */

struct cust *timeline_customer(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			       int *owned, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, id, len);
	struct cust *c;
	int found;

	if (d) {
		*owned = 0;
		return d->c;
	}
	*owned = 1;
	c = timeline_load(tl->st, txn, id, len, &found, err);
	if (c && !found) {
		cust_free(c);
		herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
		return NULL;
	}
	return c;
}

struct tpos {
	int64_t ts;
	uint64_t seq;
};

static int tpos_cmp(struct tpos a, struct tpos b)
{
	if (a.ts != b.ts)
		return a.ts < b.ts ? -1 : 1;
	return (a.seq > b.seq) - (a.seq < b.seq);
}

/* A cursor over the stored part of one customer's time index. */
struct stored_iter {
	MDB_cursor *cur;
	const char *cust;
	size_t len;
	int desc, valid;
	struct tpos pos;
	char type[HEARTH_NAME_MAX + 1];
};

static void stored_load(struct stored_iter *it, int rc, MDB_val *key, MDB_val *val)
{
	it->valid = rc == 0 && key->mv_size == it->len + 17 &&
		    memcmp(key->mv_data, it->cust, it->len) == 0 &&
		    ((const uint8_t *)key->mv_data)[it->len] == 0;
	if (!it->valid)
		return;
	it->pos.ts = ordered_to_i64(be64_get((const uint8_t *)key->mv_data + it->len + 1));
	it->pos.seq = be64_get((const uint8_t *)key->mv_data + it->len + 9);
	size_t tlen = val->mv_size < HEARTH_NAME_MAX ? val->mv_size : HEARTH_NAME_MAX;
	memcpy(it->type, val->mv_data, tlen);
	it->type[tlen] = '\0';
}

static void stored_seek(struct stored_iter *it, struct tpos from)
{
	uint8_t buf[TL_KEY_MAX];
	MDB_val key = { timeline_key(buf, it->cust, it->len, from.ts, from.seq), buf }, val;
	int rc = mdb_cursor_get(it->cur, &key, &val, MDB_SET_RANGE);

	if (it->desc) {
		if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(it->cur, &key, &val, MDB_LAST);
		else if (rc == 0 && !(key.mv_size == 17 + it->len &&
				      memcmp(key.mv_data, buf, key.mv_size) == 0))
			rc = mdb_cursor_get(it->cur, &key, &val, MDB_PREV);
	}
	stored_load(it, rc, &key, &val);
}

static void stored_step(struct stored_iter *it)
{
	MDB_val key, val;
	int rc = mdb_cursor_get(it->cur, &key, &val, it->desc ? MDB_PREV : MDB_NEXT);
	stored_load(it, rc, &key, &val);
}

static int type_wanted(const struct timeline_query *q, const char *type)
{
	if (!q->types)
		return 1;
	for (size_t i = 0; i < q->ntypes; i++)
		if (strcmp(q->types[i], type) == 0)
			return 1;
	return 0;
}

static int emit_event(struct store *st, MDB_txn *txn, uint64_t seq, timeline_event_fn fn,
		      void *ctx, struct herr *err)
{
	uint8_t key[8];
	MDB_val val;
	struct event ev;
	int rc;

	be64_put(key, seq);
	rc = store_get(txn, st, DB_LOG, key, 8, &val);
	if (rc)
		return store_error(err, rc, "reading the log");
	if (event_decode(val.mv_data, val.mv_size, &ev) < 0)
		return herr_set(err, HERR_STORE_ERROR, "store, damaged log record %llu",
				(unsigned long long)seq);
	ev.seq = seq;
	return fn(&ev, ctx);
}

int timeline_query(struct timeline *tl, MDB_txn *txn, const struct timeline_query *q,
		   timeline_event_fn fn, void *ctx, int *more, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, q->customer, q->customer_len);

	if (d && d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), pending_ev_cmp);
	return timeline_merge(tl->st, txn, q, d ? d->ev : NULL, d ? d->n : 0, fn, ctx, more, err);
}

/*
 * The stored time index and the pending entries pev (sorted), walked together.
 * An entry in both (a flush committed between the reader's note and its
 * transaction) is taken once, from the store.
 */
int timeline_merge(struct store *st, MDB_txn *txn, const struct timeline_query *q,
		   const struct pending_ev *pev, size_t pn, timeline_event_fn fn, void *ctx, int *more,
		   struct herr *err)
{
	struct stored_iter it = { .cust = q->customer, .len = q->customer_len, .desc = q->desc };
	struct tpos lo = { q->since, 0 }, hi = { q->until, UINT64_MAX };
	size_t pi = 0, emitted = 0;
	int rc;

	*more = 0;
	if (q->has_after) {
		struct tpos after = { q->after_ts, q->after_seq };
		if (!q->desc && tpos_cmp(after, lo) >= 0) {
			lo = after;
			if (++lo.seq == 0)
				lo.ts++;
		} else if (q->desc && tpos_cmp(after, hi) <= 0) {
			hi = after;
			if (hi.seq-- == 0)
				hi.ts--;
		}
	}
	if ((rc = mdb_cursor_open(txn, store_dbi(st, DB_TIMELINE), &it.cur)))
		return store_error(err, rc, "reading a timeline");
	stored_seek(&it, q->desc ? hi : lo);
	/* pending events walk the same direction; pi counts from the walk's start */
	for (;;) {
		const struct pending_ev *p = NULL;
		struct tpos ppos = { 0, 0 };
		while (pi < pn) {
			p = &pev[q->desc ? pn - 1 - pi : pi];
			ppos = (struct tpos){ p->ts, p->seq };
			if ((q->desc ? tpos_cmp(ppos, hi) > 0 : tpos_cmp(ppos, lo) < 0)) {
				pi++;
				p = NULL;
				continue;
			}
			break;
		}
		if (p && (q->desc ? tpos_cmp(ppos, lo) < 0 : tpos_cmp(ppos, hi) > 0))
			p = NULL;
		if (it.valid && (q->desc ? tpos_cmp(it.pos, lo) < 0 : tpos_cmp(it.pos, hi) > 0))
			it.valid = 0;
		if (!p && !it.valid)
			break;
		if (p && it.valid && tpos_cmp(it.pos, ppos) == 0) {
			pi++;
			continue;
		}
		int take_stored = it.valid &&
				  (!p || (q->desc ? tpos_cmp(it.pos, ppos) > 0 : tpos_cmp(it.pos, ppos) < 0));
		const char *type = take_stored ? it.type : p->type;
		uint64_t seq = take_stored ? it.pos.seq : p->seq;
		if (type_wanted(q, type)) {
			if (emitted == q->limit) {
				*more = 1;
				break;
			}
			if (emit_event(st, txn, seq, fn, ctx, err) < 0) {
				mdb_cursor_close(it.cur);
				return -1;
			}
			emitted++;
		}
		if (take_stored)
			stored_step(&it);
		else
			pi++;
	}
	mdb_cursor_close(it.cur);
	return 0;
}

int timeline_customers(struct timeline *tl, const char *after, size_t after_len, size_t limit,
		       timeline_cust_fn fn, void *ctx, int *more, struct herr *err)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key = { after_len, (void *)after }, val;
	size_t emitted = 0;
	int rc, ret = -1;

	*more = 0;
	/* A listing walks the stored customers, so what is pending goes there first. */
	if (timeline_flush(tl, 1, err) < 0 || store_read_begin(tl->st, &txn, err) < 0)
		return -1;
	if ((rc = mdb_cursor_open(txn, store_dbi(tl->st, DB_CUSTOMERS), &cur))) {
		store_error(err, rc, "listing customers");
		goto out;
	}
	rc = after ? mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE)
		   : mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	if (rc == 0 && after && key.mv_size == after_len && memcmp(key.mv_data, after, after_len) == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (emitted == limit) {
			*more = 1;
			break;
		}
		struct cust *c = cust_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size);
		if (!c) {
			herr_set(err, HERR_STORE_ERROR, "store, damaged customer record");
			goto out;
		}
		rc = fn(c, ctx);
		cust_free(c);
		if (rc < 0)
			goto out;
		emitted++;
	}
	ret = 0;
out:
	mdb_cursor_close(cur);
	store_read_end(txn);
	return ret;
}

/* ---- forget ---------------------------------------------------------------- */

struct forget_ctx {
	struct timeline *tl;
	const char *id;
	size_t len;
	uint64_t removed;
	int found;
};

/* Notifications about the customer: their bodies name them as "customer":{"id": ...}. */
static void forget_notifications(struct wtxn *w, struct forget_ctx *ctx)
{
	struct json_tokener *tok = json_tokener_new();
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if (!tok) {
		wtxn_fail(w, ENOMEM, "forget");
		return;
	}
	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_OUTBOX), &cur))) {
		wtxn_fail(w, rc, "forget");
		json_tokener_free(tok);
		return;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct json_object *body, *customer, *id;
		if (val.mv_size <= 8)
			continue;
		body = json_parse_whole(tok, (const char *)val.mv_data + 8, val.mv_size - 8, NULL);
		int match = body && json_object_object_get_ex(body, "customer", &customer) &&
			    json_object_object_get_ex(customer, "id", &id) &&
			    (size_t)json_object_get_string_len(id) == ctx->len &&
			    memcmp(json_object_get_string(id), ctx->id, ctx->len) == 0;
		json_object_put(body);
		if (match && (rc = mdb_cursor_del(cur, 0))) {
			wtxn_fail(w, rc, "forget");
			break;
		}
	}
	mdb_cursor_close(cur);
	json_tokener_free(tok);
}

/* Alert states are keyed customer 0x00 rule: delete that whole prefix. */
static void forget_related(struct wtxn *w, struct forget_ctx *ctx)
{
	uint8_t prefix[TL_KEY_MAX];
	MDB_cursor *cur;
	MDB_val key = { ctx->len + 1, prefix }, val;
	int rc;

	wtxn_del(w, DB_DEFERRED, ctx->id, ctx->len);
	/* the customer's journaled states go to DB_ALERTS first, to be deleted there with the rest */
	alert_states_apply(ctx->tl->alerts, w);
	memcpy(prefix, ctx->id, ctx->len);
	prefix[ctx->len] = 0;
	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_ALERTS), &cur))) {
		wtxn_fail(w, rc, "forget");
		return;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     rc == 0 && key.mv_size > ctx->len && memcmp(key.mv_data, prefix, ctx->len + 1) == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
		if ((rc = mdb_cursor_del(cur, 0))) {
			wtxn_fail(w, rc, "forget");
			break;
		}
	mdb_cursor_close(cur);
}

/* Collects the customer's time-index keys, then deletes what each points at. */
static int forget_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct forget_ctx *ctx = vctx;
	size_t klen = ctx->len + 17;
	uint8_t prefix[TL_KEY_MAX];
	struct wbuf keys;
	MDB_cursor *cur;
	MDB_val key = { ctx->len + 1, prefix }, val;
	const void *rec;
	size_t rlen;
	int rc;

	ctx->removed = 0;
	wbuf_init(&keys);
	memcpy(prefix, ctx->id, ctx->len);
	prefix[ctx->len] = 0;
	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_TIMELINE), &cur))) {
		wtxn_fail(w, rc, "forget");
		return -1;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     rc == 0 && key.mv_size == klen && memcmp(key.mv_data, prefix, ctx->len + 1) == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
		wbuf_put(&keys, key.mv_data, klen);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, "forget");
	if (keys.failed) {
		wbuf_free(&keys);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	for (size_t off = 0; off < keys.len && !w->rc; off += klen) {
		const uint8_t *seqkey = keys.data + off + ctx->len + 9;
		struct event ev;
		if (wtxn_get(w, DB_LOG, seqkey, 8, &rec, &rlen) == 0 &&
		    event_decode(rec, rlen, &ev) == 0 && ev.id) {
			char id[HEARTH_ID_MAX];
			size_t id_len = ev.id_len;
			memcpy(id, ev.id, id_len); /* the page may change under the delete */
			wtxn_del(w, DB_IDS, id, id_len);
		}
		wtxn_del(w, DB_LOG, seqkey, 8);
		wtxn_del(w, DB_TIMELINE, keys.data + off, klen);
		ctx->removed++;
	}
	wbuf_free(&keys);
	forget_related(w, ctx);
	forget_notifications(w, ctx);
	ctx->found = wtxn_get(w, DB_CUSTOMERS, ctx->id, ctx->len, &rec, &rlen) == 0;
	if (ctx->found) {
		struct cust *c = cust_decode(ctx->id, ctx->len, rec, rlen);
		if (c && c->deadline != INT64_MAX) {
			size_t dlen = timeline_deadline_key(prefix, c->deadline, ctx->id, ctx->len);
			wtxn_del(w, DB_DEADLINES, prefix, dlen);
		}
		cust_free(c);
	}
	wtxn_del(w, DB_CUSTOMERS, ctx->id, ctx->len);
	return w->rc ? -1 : 0;
}

int timeline_forget(struct timeline *tl, const char *id, size_t len, uint64_t *removed,
		    struct herr *err)
{
	struct forget_ctx ctx = { .tl = tl, .id = id, .len = len };

	if (len > HEARTH_ID_MAX)
		return herr_set(err, HERR_BAD_REQUEST, "id: longer than %d bytes", HEARTH_ID_MAX);
	write_watch_note(&tl->watch, id, len);
	if (timeline_flush(tl, 1, err) < 0)
		return -1;
	if (store_write(tl->st, forget_fn, &ctx, err) < 0) {
		alert_states_discard(tl->alerts);
		return -1;
	}
	alert_states_commit(tl->alerts);
	if (tl->sink)
		publish_forget(tl, id, len);
	if (!ctx.found && ctx.removed == 0)
		return herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
	*removed = ctx.removed;
	return 0;
}

/* ---- evaluation support ---------------------------------------------------- */

/* Held, but just as stored: what the flush would skip (flush_customer). */
static int same_as_stored(const struct dirty *d)
{
	return !d->n && !d->is_new && !d->changed && d->c->deadline == d->stored_deadline &&
	       d->stale_deadline == INT64_MAX;
}

uint64_t timeline_watch_begin(struct timeline *tl)
{
	if (!tl->watch.ids) {
		strmap_init(&tl->watch_ids);
		tl->watch.ids = &tl->watch_ids;
		alert_states_watch(tl->alerts, &tl->watch);
	}
	return ++tl->watch.gen;
}

static int written_since(const struct strmap_slot *slot, void *ctx)
{
	return (uintptr_t)slot->value >= *(const uint64_t *)ctx;
}

/* In place: a new table for every window would be fresh pages, each a fault, every time. */
void timeline_watch_forget_before(struct timeline *tl, uint64_t gen)
{
	if (tl->watch.ids)
		strmap_filter(&tl->watch_ids, written_since, &gen);
}

void timeline_watch_end(struct timeline *tl)
{
	if (tl->watch.ids)
		strmap_clear(&tl->watch_ids);
	tl->watch.ids = NULL;
	tl->watch.lost = 0;
	alert_states_watch(tl->alerts, NULL);
}

int timeline_written_since(const struct timeline *tl, uint64_t gen, const char *id, size_t len)
{
	return tl->watch.lost || (uintptr_t)strmap_get(&tl->watch_ids, id, len) >= gen;
}

int timeline_pending(const struct timeline *tl, const char *id, size_t len)
{
	const struct dirty *d = strmap_get(&tl->dirty, id, len);
	return d && !same_as_stored(d);
}

struct cust *timeline_hold(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			   struct herr *err)
{
	struct dirty *d = dirty_get(tl, txn, id, len, 0, err);
	return d ? d->c : NULL;
}

void timeline_release(struct timeline *tl, struct cust *c)
{
	struct dirty *d = strmap_get(&tl->dirty, c->id, c->id_len);

	/* what the flush would skip need not stay in memory until then */
	if (!d || d->c != c || !same_as_stored(d))
		return;
	strmap_del(&tl->dirty, c->id, c->id_len);
	timeline_dirty_free(d);
	if (tl->dirty.count == 0)
		tl->pending_since_ms = 0;
}

int timeline_rebuild_cases(struct timeline *tl, MDB_txn *txn, struct cust *c, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, c->id, c->id_len);

	if (!d || d->c != c)
		return herr_set(err, HERR_STORE_ERROR, "rebuilding cases of a customer not held");
	d->changed = 1;
	if (rebuild_cases(tl, txn, c, err) < 0)
		return -1;
	/* its open cases are shown by `customer`: the reader must not keep the older copy */
	if (tl->sink && strmap_put(&tl->restated, c->id, c->id_len, d) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	return 0;
}

int timeline_pending_new(struct timeline *tl, struct id_list *out)
{
	const struct strmap_slot *slot;

	memset(out, 0, sizeof(*out));
	if (!tl->new_customers)
		return 0;
	out->ids = calloc(tl->new_customers, sizeof(*out->ids));
	out->lens = calloc(tl->new_customers, sizeof(*out->lens));
	if (!out->ids || !out->lens)
		goto nomem;
	for (size_t i = 0; out->n < tl->new_customers && strmap_next(&tl->dirty, &i, &slot);) {
		if (!((struct dirty *)slot->value)->is_new)
			continue;
		if (!(out->ids[out->n] = malloc(slot->len)))
			goto nomem;
		memcpy(out->ids[out->n], slot->key, slot->len);
		out->lens[out->n++] = slot->len;
	}
	return 0;
nomem:
	id_list_free(out);
	return -1;
}

void id_list_free(struct id_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
	free(l->lens);
	memset(l, 0, sizeof(*l));
}

/*
 * No note for the reader here: a deadline is the writer's schedule alone. No
 * reader command shows it (cust_to_json, cust_row_json) and no expression reads
 * it (eval.c), so the reader's older copy cannot show it stale; the tick that
 * acts on it changes alerts, which are in the store before its answers.
 */
void timeline_deadline_set(struct timeline *tl, const struct cust *c)
{
	if (c->deadline < tl->pending_min_deadline)
		tl->pending_min_deadline = c->deadline;
}

size_t timeline_touched(struct timeline *tl, struct cust ***list)
{
	*list = tl->touched;
	return tl->ntouched;
}

static int add_due(struct timeline *tl, struct dirty *d, struct cust **out, size_t *n)
{
	if (d->mark == tl->mark)
		return 0;
	d->mark = tl->mark;
	out[(*n)++] = d->c;
	return 1;
}

/* Customers a flush under way wrote, whose new deadline key is not written yet. */
static void due_moving(struct timeline *tl, MDB_txn *txn, int64_t now, struct cust **out, size_t *n,
		       size_t max, struct herr *err)
{
	const struct flush_job *job = &tl->job;

	if (!job->active)
		return;
	for (size_t i = job->next_move; i < job->nmoves && *n < max; i++) {
		const struct deadline_move *m = &job->moves[i];
		if (!m->put || m->when > now)
			continue;
		struct dirty *d = dirty_get(tl, txn, job->custs[m->cust], job->lens[m->cust], 0, err);
		if (d)
			add_due(tl, d, out, n);
	}
}

size_t timeline_due(struct timeline *tl, MDB_txn *txn, int64_t now, struct cust **out, size_t max,
		    struct herr *err)
{
	const struct strmap_slot *slot;
	MDB_cursor *cur;
	MDB_val key, val;
	size_t n = 0;
	int rc;

	tl->mark++;
	/*
	 * Pending customers know their current deadline; their stored key may be
	 * stale. Walked only when one of them may be due: then every one not due
	 * is marked, so that a stale stored key does not list it.
	 */
	if (now >= tl->pending_min_deadline) {
		int64_t next = INT64_MAX;
		for (size_t i = 0; n < max && strmap_next(&tl->dirty, &i, &slot);) {
			struct dirty *d = slot->value;
			if (d->c->deadline <= now) {
				add_due(tl, d, out, &n);
			} else {
				d->mark = tl->mark;
				next = d->c->deadline < next ? d->c->deadline : next;
			}
		}
		/* a full slice stopped early: what it did not walk is unknown */
		tl->pending_min_deadline = n < max ? next : INT64_MIN;
	}
	if ((rc = mdb_cursor_open(txn, store_dbi(tl->st, DB_DEADLINES), &cur))) {
		store_error(err, rc, "reading deadlines");
		return n;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		int64_t when;
		if (key.mv_size <= 8 || (when = ordered_to_i64(be64_get(key.mv_data))) > now)
			break;
		struct dirty *d = dirty_get(tl, txn, (const char *)key.mv_data + 8, key.mv_size - 8, 0, err);
		if (!d)
			continue;
		/* a key the customer no longer has (a crash between a flush's slices left it): it goes */
		if (when != d->stored_deadline && when != d->c->deadline)
			d->stale_deadline = when;
		add_due(tl, d, out, &n);
	}
	mdb_cursor_close(cur);
	due_moving(tl, txn, now, out, &n, max, err);
	return n;
}

/* ---- counts ---------------------------------------------------------------- */

uint64_t timeline_customer_count(struct timeline *tl)
{
	return store_count(tl->st, DB_CUSTOMERS) + tl->new_customers;
}

uint64_t timeline_event_count(struct timeline *tl)
{
	return store_count(tl->st, DB_LOG);
}

void timeline_get_stats(const struct timeline *tl, struct timeline_stats *out)
{
	*out = tl->stats;
	out->dirty_customers = tl->dirty.count;
	out->pending_events = tl->pending_events;
}
