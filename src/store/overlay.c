/*
 * The reader's overlay of pending derived state (see include/hearth/overlay.h).
 * Notes are built by the writer (timeline.c, flush.c) and folded in here by
 * the reader; reads merge the overlay with the store through the same code
 * the writer's own reads use (timeline_merge, pending.h).
 *
 * An ingest group's note names thousands of customers: folded in one go it
 * held a query that came in meanwhile for milliseconds. So notes are queued
 * as they come and folded in a slice at a time between requests; a read of
 * one customer first folds in that
 * customer's part of every queued note, in order (each customer's parts are
 * independent of the others'), and a listing folds in all of them.
 */
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/log.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "pending.h"
#include "store_impl.h"

/* Offsets into the note's text: the writer appends, nothing is allocated per customer. */
struct note_cust {
	size_t id_off, len;
	uint64_t hash;                  /* the id's strmap_hash, computed where the note is made */
	size_t rec_off, rec_len;        /* rec_len 0: no record (FLUSHED, FORGET) */
	size_t ev_off, ev_n;            /* its time-index entries: evs[ev_off, ev_off + ev_n) */
};

struct overlay_note {
	enum overlay_kind kind;
	uint64_t gen;
	struct note_cust *custs;
	size_t ncusts, custs_cap;
	struct wbuf ids;                /* the customers' ids, one after another */
	struct wbuf recs;               /* their records, one after another */
	size_t recs_named;              /* the end of the last record a customer took */
	struct pending_ev *evs;
	size_t nevs, evs_cap;
	/* the reader's, once queued */
	struct overlay_note *next;
	size_t folded;                  /* customers [0, folded) are folded in */
	unsigned char *done;            /* customers past folded already folded in by a read (or NULL) */
};

/*
 * One customer as the reader knows it from notes: its events since the
 * store's record, which a read folds over that record as the writer did
 * (the writer's fold, cust_apply_ex), and a record sent whole when the
 * writer changed it without events (a start, cases rebuilt after a reload).
 */
struct entry {
	uint64_t gen;                   /* of the last update folded in */
	void *rec;                      /* a record sent whole, as the store encodes it, or NULL */
	size_t rec_len;
	uint64_t rec_gen;               /* the note it came in */
	struct pending_ev *ev;          /* time-index entries not known to be stored */
	size_t n, cap;
	int sorted;
};

struct overlay {
	struct strmap custs;            /* id → struct entry */
	struct overlay_note *head, *tail; /* queued notes, oldest first */
};

/* ---- notes ----------------------------------------------------------------------- */

struct overlay_note *overlay_note_new(enum overlay_kind kind, uint64_t gen)
{
	struct overlay_note *n = calloc(1, sizeof(*n));

	if (n) {
		n->kind = kind;
		n->gen = gen;
		wbuf_init(&n->ids);
		wbuf_init(&n->recs);
	}
	return n;
}

void overlay_note_free(struct overlay_note *n)
{
	if (!n)
		return;
	wbuf_free(&n->ids);
	wbuf_free(&n->recs);
	free(n->custs);
	free(n->evs);
	free(n->done);
	free(n);
}

struct wbuf *overlay_note_records(struct overlay_note *n)
{
	return &n->recs;
}

ssize_t overlay_note_cust(struct overlay_note *n, const char *id, size_t len, int with_record)
{
	struct note_cust nc = { .id_off = n->ids.len, .len = len, .hash = strmap_hash(id, len), .ev_off = n->nevs };

	if (with_record) {
		nc.rec_off = n->recs_named;
		nc.rec_len = n->recs.len - n->recs_named;
		n->recs_named = n->recs.len;
	}
	wbuf_put(&n->ids, id, len);
	if (n->ids.failed || n->recs.failed || (with_record && nc.rec_len == 0) ||
	    array_reserve((void **)&n->custs, &n->custs_cap, n->ncusts + 1, sizeof(*n->custs)) < 0)
		return -1;
	n->custs[n->ncusts] = nc;
	return (ssize_t)n->ncusts++;
}

static const char *note_id(const struct overlay_note *n, const struct note_cust *nc)
{
	return (const char *)n->ids.data + nc->id_off;
}

int overlay_note_event(struct overlay_note *n, size_t ci, int64_t ts, uint64_t seq,
		       const char *type, size_t type_len)
{
	struct pending_ev *e;

	/* a customer's entries follow it: its part of the note is one stretch */
	if (ci + 1 != n->ncusts || array_reserve((void **)&n->evs, &n->evs_cap, n->nevs + 1, sizeof(*n->evs)) < 0)
		return -1;
	e = &n->evs[n->nevs++];
	e->ts = ts;
	e->seq = seq;
	if (type_len > HEARTH_NAME_MAX)
		type_len = HEARTH_NAME_MAX;
	memcpy(e->type, type, type_len);
	e->type[type_len] = '\0';
	e->type_len = (uint8_t)type_len;
	n->custs[ci].ev_n++;
	return 0;
}

size_t overlay_note_count(const struct overlay_note *n)
{
	return n->ncusts;
}

/* ---- the overlay ----------------------------------------------------------------- */

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	free(e->rec);
	free(e->ev);
	free(e);
}

struct overlay *overlay_new(void)
{
	struct overlay *ov = calloc(1, sizeof(*ov));

	if (ov)
		strmap_init(&ov->custs);
	return ov;
}

static void overlay_clear(struct overlay *ov)
{
	const struct strmap_slot *slot;

	for (size_t i = 0; strmap_next(&ov->custs, &i, &slot);)
		entry_free(slot->value);
	strmap_clear(&ov->custs);
}

static void drop_queue(struct overlay *ov)
{
	while (ov->head) {
		struct overlay_note *n = ov->head;
		ov->head = n->next;
		overlay_note_free(n);
	}
	ov->tail = NULL;
}

void overlay_free(struct overlay *ov)
{
	if (!ov)
		return;
	overlay_clear(ov);
	drop_queue(ov);
	free(ov);
}

size_t overlay_count(const struct overlay *ov)
{
	return ov->custs.count;
}

void overlay_queue(struct overlay *ov, struct overlay_note *n)
{
	n->next = NULL;
	n->folded = 0;
	if (ov->tail)
		ov->tail->next = n;
	else
		ov->head = n;
	ov->tail = n;
}

/* The customer's entry, made in the same probe if it has none. */
static struct entry *entry_get(struct overlay *ov, const char *id, size_t len, uint64_t hash)
{
	void **ref = strmap_ref_hashed(&ov->custs, id, len, hash);

	if (!ref)
		return NULL;
	if (!*ref && !(*ref = calloc(1, sizeof(struct entry)))) {
		strmap_del_hashed(&ov->custs, id, len, hash);
		return NULL;
	}
	return *ref;
}

/* An update's record, if it has one, replaces the one held (it is newer); its entries add to them. */
static int fold_update(struct overlay *ov, const struct overlay_note *n, const struct note_cust *nc)
{
	struct entry *e = entry_get(ov, note_id(n, nc), nc->len, nc->hash);

	if (!e || array_reserve((void **)&e->ev, &e->cap, e->n + nc->ev_n, sizeof(*e->ev)) < 0)
		return -1;
	if (nc->rec_len) {
		void *rec = malloc(nc->rec_len);
		if (!rec)
			return -1;
		memcpy(rec, n->recs.data + nc->rec_off, nc->rec_len);
		free(e->rec);
		e->rec = rec;
		e->rec_len = nc->rec_len;
		e->rec_gen = n->gen;
	}
	e->gen = n->gen;
	if (nc->ev_n) {
		memcpy(e->ev + e->n, n->evs + nc->ev_off, nc->ev_n * sizeof(*e->ev));
		e->n += nc->ev_n;
		e->sorted = 0;
	}
	return 0;
}

static void fold_drop(struct overlay *ov, const struct overlay_note *n, const struct note_cust *nc)
{
	const char *id = note_id(n, nc);
	struct entry *e = strmap_get_hashed(&ov->custs, id, nc->len, nc->hash);

	if (!e)
		return;
	/* an update newer than what the flush wrote keeps its entry; a record it sent whole is stored now */
	if (n->kind == OVERLAY_FORGET || e->gen <= n->gen) {
		entry_free(strmap_del_hashed(&ov->custs, id, nc->len, nc->hash));
	} else if (e->rec && e->rec_gen <= n->gen) {
		free(e->rec);
		e->rec = NULL;
		e->rec_len = 0;
	}
}

/*
 * Half a note would show a customer without some acknowledged events: better
 * none (the store's older state, and this error) than a wrong one.
 */
static int fold_failed(struct overlay *ov)
{
	log_error("store, out of memory following the writer: queries may miss pending state until "
		  "it is flushed");
	overlay_clear(ov);
	drop_queue(ov);
	return -1;
}

static int fold_one(struct overlay *ov, const struct overlay_note *n, size_t i)
{
	if (n->kind != OVERLAY_UPDATE) {
		fold_drop(ov, n, &n->custs[i]);
		return 0;
	}
	return fold_update(ov, n, &n->custs[i]);
}

/*
 * The overlay's slots for the note's next customers, asked for ahead: each
 * probe of a large overlay otherwise waits on memory (41% of the folding).
 */
#define FOLD_AHEAD 4
static void prefetch_note(const struct overlay *ov, const struct overlay_note *n, size_t i)
{
	if (i + FOLD_AHEAD < n->ncusts)
		strmap_prefetch(&ov->custs, n->custs[i + FOLD_AHEAD].hash);
	if (i + FOLD_AHEAD / 2 < n->ncusts)
		strmap_prefetch_entry(&ov->custs, n->custs[i + FOLD_AHEAD / 2].hash);
}

int overlay_fold(struct overlay *ov, size_t max)
{
	for (size_t done = 0; ov->head && done < max; done++) {
		struct overlay_note *n = ov->head;
		if (n->folded < n->ncusts) {
			size_t i = n->folded++;
			prefetch_note(ov, n, i);
			if (!(n->done && n->done[i]) && fold_one(ov, n, i) < 0)
				return fold_failed(ov);
		}
		if (n->folded == n->ncusts) {
			if (n->kind != OVERLAY_UPDATE)
				strmap_shrink(&ov->custs); /* the writer's burst is flushed: its size goes too */
			ov->head = n->next;
			if (!ov->head)
				ov->tail = NULL;
			overlay_note_free(n);
		}
	}
	return ov->head != NULL;
}

/* One customer's part of every queued note, folded in now, in order; the rest waits. */
static int fold_customer(struct overlay *ov, const char *id, size_t len)
{
	for (struct overlay_note *n = ov->head; n; n = n->next)
		for (size_t i = n->folded; i < n->ncusts; i++) {
			const struct note_cust *nc = &n->custs[i];
			if (nc->len != len || memcmp(note_id(n, nc), id, len) != 0 || (n->done && n->done[i]))
				continue;
			if (!n->done && !(n->done = calloc(n->ncusts, 1)))
				return fold_failed(ov);
			if (fold_one(ov, n, i) < 0)
				return fold_failed(ov);
			n->done[i] = 1;
		}
	return 0;
}

/* The entry's time-index entries in time order, as timeline_merge reads them. */
static const struct pending_ev *entry_sorted(struct entry *e)
{
	if (!e->sorted && e->n) {
		qsort(e->ev, e->n, sizeof(*e->ev), pending_ev_cmp);
		e->sorted = 1;
	}
	return e->ev;
}

struct fold_ctx {
	struct cust *c;
	const struct config *cfg;
	int late;                       /* a case event came late: cases are replayed at the end */
};

static int fold_event(const struct event *ev, void *vctx)
{
	struct fold_ctx *f = vctx;
	int late = cust_case_event_is_late(f->c, ev, f->cfg);

	f->late |= late;
	return cust_apply_ex(f->c, ev, f->cfg, late) < 0 ? -1 : 0;
}

static int seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/*
 * 1: the log no longer holds seq in this snapshot. Only a forget removes log
 * records, and the reader's snapshot can see one committed before its note
 * reaches the reader.
 */
static int log_gone(struct store *st, MDB_txn *txn, uint64_t seq)
{
	uint8_t key[8];
	MDB_val val;

	be64_put(key, seq);
	return store_get(txn, st, DB_LOG, key, 8, &val) == MDB_NOTFOUND;
}

/*
 * Lets go of the entry's events a forget removed: a seq is never logged again.
 * A forget takes every event the customer had, older than any it has since:
 * while the entry's oldest is in the log, all are.
 */
static void drop_forgotten(struct entry *e, struct store *st, MDB_txn *txn)
{
	size_t kept = 0, oldest = 0;

	for (size_t i = 1; i < e->n; i++)
		if (e->ev[i].seq < e->ev[oldest].seq)
			oldest = i;
	if (!e->n || !log_gone(st, txn, e->ev[oldest].seq))
		return;
	for (size_t i = 0; i < e->n; i++)
		if (!log_gone(st, txn, e->ev[i].seq))
			e->ev[kept++] = e->ev[i];
	e->n = kept;
}

/*
 * The entry's events c has not folded in, read from the log and folded in
 * log order, as the writer folded them. Where a case event came late the
 * writer replayed the cases then; the cases replayed once at the end are the
 * same (events after it apply to the newest cases either way). Events a
 * forget took are skipped, and dropped from the entry.
 */
static int fold_pending(struct entry *e, struct store *st, MDB_txn *txn, const struct config *cfg,
			struct cust *c, struct herr *err)
{
	struct fold_ctx f = { c, cfg, 0 };
	uint64_t *seqs = malloc((e->n ? e->n : 1) * sizeof(*seqs));
	size_t n = 0;
	int ret = -1, forgotten = 0;

	if (!seqs)
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i < e->n; i++)
		if (e->ev[i].seq > c->applied_seq)
			seqs[n++] = e->ev[i].seq;
	/* in log order: queries sort the entries by time */
	qsort(seqs, n, sizeof(*seqs), seq_cmp);
	for (size_t i = 0; i < n; i++)
		if (timeline_log_event(st, txn, seqs[i], fold_event, &f, err) != 0) {
			if (err->code == HERR_STORE_ERROR && log_gone(st, txn, seqs[i])) {
				*err = (struct herr){ 0 };
				forgotten = 1;
				continue;
			}
			if (!err->code)
				herr_set(err, HERR_NOMEM, "out of memory folding an event");
			goto out;
		}
	if (forgotten)
		drop_forgotten(e, st, txn);
	if (f.late && timeline_replay_cases(st, txn, cfg, c, entry_sorted(e), e->n, err) < 0)
		goto out;
	ret = 0;
out:
	free(seqs);
	return ret;
}

/* A record sent whole for a customer the store no longer has: 1 if a forget took it since. */
static int sent_forgotten(const struct cust *sent, struct store *st, MDB_txn *txn)
{
	return sent->applied_seq && log_gone(st, txn, sent->applied_seq);
}

/*
 * The held customer: the newer of the store's record (stored, found; a new
 * customer if not found) and one the writer sent whole, its newer events
 * folded over it. NULL with HERR_NOT_FOUND when a forget the notes have not
 * told yet took all the reader held. Consumes stored.
 */
static struct cust *held_customer(struct entry *e, struct store *st, MDB_txn *txn, const struct config *cfg,
				  struct cust *stored, int found, struct herr *err)
{
	struct cust *c = stored;

	if (e->rec) {
		struct cust *sent = cust_decode(c->id, c->id_len, e->rec, e->rec_len, store_type_names(st));
		if (!sent) {
			cust_free(c);
			herr_set(err, HERR_NOMEM, "out of memory");
			return NULL;
		}
		if (!found && sent_forgotten(sent, st, txn)) {
			free(e->rec);
			e->rec = NULL;
			cust_free(sent);
		} else if (sent->applied_seq >= c->applied_seq) {
			/* a flush may have written it since, and more events with it */
			cust_free(c);
			c = sent;
		} else {
			cust_free(sent);
		}
	}
	if (fold_pending(e, st, txn, cfg, c, err) < 0) {
		cust_free(c);
		return NULL;
	}
	if (!found && !e->rec && !e->n) {
		herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)c->id_len, c->id);
		cust_free(c);
		return NULL;
	}
	return c;
}

struct cust *overlay_customer(struct overlay *ov, struct store *st, MDB_txn *txn, const struct config *cfg,
			      const char *id, size_t len, struct herr *err)
{
	struct entry *e;
	struct cust *c;
	int found;

	if (fold_customer(ov, id, len) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	e = strmap_get(&ov->custs, id, len);
	c = timeline_load(st, txn, id, len, &found, err);
	if (c && e)
		return held_customer(e, st, txn, cfg, c, found, err);
	if (c && !found) {
		cust_free(c);
		herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
		return NULL;
	}
	return c;
}

int overlay_query(struct overlay *ov, struct store *st, MDB_txn *txn, const struct timeline_query *q,
		  timeline_event_fn fn, void *ctx, int *more, struct herr *err)
{
	struct entry *e;

	if (fold_customer(ov, q->customer, q->customer_len) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	e = strmap_get(&ov->custs, q->customer, q->customer_len);
	if (e)
		drop_forgotten(e, st, txn);
	return timeline_merge(st, txn, q, e ? entry_sorted(e) : NULL, e ? e->n : 0, fn, ctx, more, err);
}

/* ---- listing ---------------------------------------------------------------------- */

/* LMDB's default order of keys: bytes, then the shorter first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int stored_first(MDB_cursor *cur, const char *after, size_t after_len, MDB_val *key, MDB_val *val)
{
	int rc;

	*key = (MDB_val){ after_len, (void *)after };
	rc = after ? mdb_cursor_get(cur, key, val, MDB_SET_RANGE) : mdb_cursor_get(cur, key, val, MDB_FIRST);
	if (rc == 0 && after && key->mv_size == after_len && memcmp(key->mv_data, after, after_len) == 0)
		rc = mdb_cursor_get(cur, key, val, MDB_NEXT);
	return rc;
}

/*
 * The stored customers merged with the held ones, in id order: a held copy
 * replaces the stored record (it is newer), one not stored yet comes in its place.
 */
int overlay_customers(struct overlay *ov, struct store *st, MDB_txn *txn, const struct config *cfg,
		      const char *after, size_t after_len, size_t limit, timeline_cust_fn fn, void *ctx,
		      int *more, struct herr *err)
{
	const struct strmap_slot **held;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t nheld, hi = 0, emitted = 0;
	int rc, ret = -1;

	*more = 0;
	if (overlay_fold(ov, SIZE_MAX) < 0 || !(held = strmap_sorted(&ov->custs, after, after_len, &nheld)))
		return herr_set(err, HERR_NOMEM, "out of memory");
	if ((rc = mdb_cursor_open(txn, store_dbi(st, DB_CUSTOMERS), &cur))) {
		store_error(err, rc, "listing customers");
		goto out;
	}
	rc = stored_first(cur, after, after_len, &key, &val);
	while (rc == 0 || hi < nheld) {
		/* <0: the stored one first, 0: the held copy of it, >0: a held one first */
		int c = rc != 0 ? 1 : hi == nheld ? -1 :
			key_cmp(key.mv_data, key.mv_size, held[hi]->key, held[hi]->len);
		struct entry *e = c >= 0 ? held[hi]->value : NULL;
		struct cust *cu;
		if (emitted == limit) {
			*more = 1;
			break;
		}
		cu = c <= 0 ? cust_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size, store_type_names(st))
			    : cust_new(held[hi]->key, held[hi]->len);
		if (!cu) {
			if (c <= 0)
				herr_set(err, HERR_STORE_ERROR, "store, damaged customer record");
			else
				herr_set(err, HERR_NOMEM, "out of memory");
			goto out;
		}
		if (e && !(cu = held_customer(e, st, txn, cfg, cu, c <= 0, err)) && err->code != HERR_NOT_FOUND)
			goto out;
		if (cu) {
			int frc = fn(cu, ctx);
			cust_free(cu);
			if (frc < 0)
				goto out;
			emitted++;
		} else {
			*err = (struct herr){ 0 };
		}
		if (c >= 0)
			hi++;
		if (c <= 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	ret = 0;
out:
	mdb_cursor_close(cur);
	free(held);
	return ret;
}
