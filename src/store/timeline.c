/*
 * Timelines: the durable append-only log plus derived indexes written in
 * sorted flushes (see include/hearth/timeline.h for the why).
 *
 * Keys:  log       seq(u64 BE)                         → event record
 *        time_index customer 0x00 ts seq → chunk of entries (tindex.c)
 *        customers customer                            → customer record
 *        ids       event id                            → ()
 * meta "indexed_seq": every log record up to it is reflected in the others.
 * Beside this file: the pending state's types and helpers (pending.h,
 * pending.c), writing it (the flush, flush.c), reading timelines
 * (timeline_read.c) and the customer listing (customers.c), the readers'
 * notes and the thread that encodes an append's beside its commit (notes.c),
 * forgetting a customer (forget.c).
 */
#include <errno.h>
#include <json-c/json.h>
#include <lmdb.h>
#include <stddef.h>
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
#include "pending.h"
#include "hearth/units.h"


static void pending_clear(struct timeline *tl)
{
	const struct strmap_slot *slot;

	for (size_t i = 0; strmap_next(&tl->dirty, &i, &slot);)
		timeline_dirty_free(slot->value);
	strmap_clear(&tl->dirty);
	timeline_clean_drop(tl);
	idset_free(&tl->ids);
	idset_free(&tl->spare_ids);
	tl->pending_events = 0;
	tl->new_customers = 0;
	tl->pending_since_ms = 0;
	tl->ntouched = 0;
}

/* The customer's pending entry, loaded from the store (or new) on first use. */
/* hash: strmap_hash of id, which the fold computes once per event */
static struct dirty *dirty_get_hashed(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
				      uint64_t hash, int create, struct herr *err)
{
	struct dirty *d = strmap_get_hashed(&tl->dirty, id, len, hash);
	int found;

	if (d)
		return d;
	if (!(d = calloc(1, sizeof(*d)))) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	found = 1;
	if ((d->c = timeline_clean_take(tl, id, len, hash))) {
		tl->stats.customers_kept++;
	} else {
		tl->stats.customers_read++;
		d->c = timeline_load(tl->st, txn, id, len, &found, err);
	}
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

static struct dirty *dirty_get(struct timeline *tl, MDB_txn *txn, const char *id, size_t len, int create,
			       struct herr *err)
{
	return dirty_get_hashed(tl, txn, id, len, strmap_hash(id, len), create, err);
}

static int touch(struct timeline *tl, struct dirty *d)
{
	if (d->mark == tl->mark)
		return 0;
	if (tl->ntouched == tl->touched_cap) {
		size_t cap = tl->touched_cap ? tl->touched_cap * 2 : 64;
		struct cust **more = realloc(tl->touched, cap * sizeof(*more));
		if (!more)
			return -1;
		tl->touched = more;
		struct dirty **more_dirty = realloc(tl->touched_dirty, cap * sizeof(*more_dirty));
		if (!more_dirty)
			return -1;
		tl->touched_dirty = more_dirty;
		tl->touched_cap = cap;
	}
	d->mark = tl->mark;
	d->touched_at = tl->ntouched;
	tl->touched_dirty[tl->ntouched] = d;
	tl->touched[tl->ntouched++] = d->c;
	return 0;
}

/* A case event came late: replay the customer's case events in time order. */
static int rebuild_cases(struct timeline *tl, MDB_txn *txn, struct dirty *d, struct herr *err)
{
	if (d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), pending_ev_cmp);
	return timeline_replay_cases(tl->st, txn, tl->cfg, d->c, d->ev, d->n, err);
}

/* Folds a stored event into the in-memory side: state and time index (its id is the caller's). */
static int apply_stored(struct timeline *tl, MDB_txn *txn, const struct event *ev, uint64_t hash,
			struct dirty **dp, struct herr *err)
{
	struct dirty *d = *dp = dirty_get_hashed(tl, txn, ev->customer, ev->customer_len, hash, 1, err);

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
	p->type_len = (uint8_t)ev->type_len;
	int late = cust_case_event_is_late(d->c, ev, tl->cfg);
	if (cust_apply_ex(d->c, ev, tl->cfg, late) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory applying an event");
	if (late && rebuild_cases(tl, txn, d, err) < 0)
		return -1;
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
		struct dirty *d;
		if (apply_stored(tl, txn, &ev, strmap_hash(ev.customer, ev.customer_len), &d, err) < 0)
			goto out;
		if (ev.id && idset_add(&tl->ids, ev.id, ev.id_len) < 0) {
			herr_set(err, HERR_NOMEM, "out of memory");
			goto out;
		}
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
	strmap_init(&tl->clean);
	strmap_init(&tl->clean_old);
	strmap_init(&tl->dying);
	strmap_init(&tl->restated);
	strmap_init(&tl->watch_ids);
	idset_init(&tl->ids);
	idset_init(&tl->spare_ids);
	wbuf_init(&tl->rec);
	tl->pending_min_deadline = INT64_MIN;
	if (!(tl->alerts = alert_states_new()) || !(tl->id_filter = idfilter_new())) {
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
	timeline_notes_end(tl);
	if (tl->dirty.count && !store_is_read_only(tl->st) && timeline_flush(tl, 1, &err) < 0)
		log_warning("store, final flush failed (%s); the log still holds everything",
			    err.msg);
	pending_clear(tl);
	timeline_watch_end(tl);
	flush_job_free(&tl->job);
	alert_states_free(tl->alerts);
	idfilter_free(tl->id_filter);
	wbuf_free(&tl->rec);
	tindex_scratch_free(&tl->tindex);
	free(tl->adding);
	strmap_clear(&tl->restated);
	free(tl->touched);
	free(tl->touched_dirty);
	free(tl->fold_left);
	free(tl->fold_ev);
	free(tl->fold_hash);
	free(tl->id_hash);
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


/* ---- the id filter ------------------------------------------------------- */

#define ID_FILTER_SLICE 16384   /* ids of the index read into the filter per turn of the writer's loop */

struct fill_ctx {
	struct timeline *tl;
	size_t left;
};

static int fill_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct fill_ctx *ctx = vctx;
	struct timeline *tl = ctx->tl;

	(void)val;
	(void)vlen;
	idfilter_add(tl->id_filter, key, klen);
	if (klen > sizeof(tl->id_filter_after))
		klen = sizeof(tl->id_filter_after); /* longer than LMDB keys are: the next slice reads it again */
	memcpy(tl->id_filter_after, key, klen);
	tl->id_filter_after_len = klen;
	return --ctx->left == 0;
}

int timeline_fill_id_filter(struct timeline *tl)
{
	struct fill_ctx ctx = { tl, ID_FILTER_SLICE };
	struct herr err = { 0 };
	MDB_txn *txn;
	int rc;

	if (store_is_read_only(tl->st) || idfilter_ready(tl->id_filter) || idfilter_gave_up(tl->id_filter) ||
	    tl->id_filter_failed)
		return 0;
	if (store_read_begin(tl->st, &txn, &err) < 0)
		goto failed;
	/* ids flushed meanwhile went into the filter as they were written, wherever the walk is */
	rc = store_walk(txn, tl->st, DB_IDS, tl->id_filter_after, tl->id_filter_after_len, NULL, 0, fill_one, &ctx,
			&err);
	store_read_end(txn);
	if (rc < 0)
		goto failed;
	if (rc == 0)
		idfilter_set_ready(tl->id_filter);
	return rc == 1;
failed:
	/* not retried every loop turn: ingest reads each new id in the index, as it would without */
	log_warning("store, reading the id index into its filter failed (%s); new ids are read in the index",
		    err.msg);
	tl->id_filter_failed = 1;
	return 0;
}

/* ---- append ---------------------------------------------------------------- */

/*
 * 1: ev's id is taken (pending, being flushed or stored), a duplicate; 0: it
 * was not, and is now pending, so that a later event of the same group is its
 * duplicate; -1: out of memory.
 */
static int take_id(struct timeline *tl, struct wtxn *w, const struct event *ev, uint64_t hash)
{
	const void *val;
	size_t vlen;
	int had = idset_add_hashed(&tl->ids, ev->id, ev->id_len, hash);

	if (had != 0)
		return had;
	if (tl->job.active && idset_has_hashed(&tl->job.ids, ev->id, ev->id_len, hash))
		goto taken;
	if (!idfilter_may_have_hashed(tl->id_filter, hash)) {
		tl->stats.id_checks_filtered++;
		return 0;
	}
	tl->stats.id_checks_read++;
	if (wtxn_get(w, DB_IDS, ev->id, ev->id_len, &val, &vlen) == 0)
		goto taken;
	return 0;
taken:
	idset_del(&tl->ids, ev->id, ev->id_len);
	return 1;
}

static int put_record(struct timeline *tl, struct wtxn *w, const struct event *ev, struct herr *err)
{
	wbuf_reset(&tl->rec);
	if (event_encode(ev, &tl->rec, err) < 0)
		return -1;
	wtxn_append_seq(w, DB_LOG, ev->seq, tl->rec.data, tl->rec.len);
	return 0;
}

/*
 * Takes back the ids put_records gave seqs from seq on: their records are not
 * in the log. An accepted event's id was not pending before (or it would be a
 * duplicate), so its group put it there.
 */
static void drop_ids_from(struct timeline *tl, struct batch **batches, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; batches[i]->fail.code == HERR_OK && j < batches[i]->nevents; j++) {
			const struct event *ev = &batches[i]->events[j].ev;
			if (batches[i]->events[j].status == BATCH_ACCEPTED && ev->id && ev->seq >= seq)
				idset_del(&tl->ids, ev->id, ev->id_len);
		}
}

/*
 * The append's arrays (hashed ids, the fold's list), room for every event of
 * its batches made before anything is stored: an append that cannot have them
 * fails whole, as one that cannot put its records does.
 */
static int reserve_append(struct timeline *tl, struct batch **batches, size_t n, struct herr *err)
{
	size_t events = 0;

	for (size_t i = 0; i < n; i++)
		events += batches[i]->fail.code == HERR_OK ? batches[i]->nevents : 0;
	if (array_reserve((void **)&tl->id_hash, &tl->id_hash_cap, events, sizeof(*tl->id_hash)) < 0 ||
	    array_reserve((void **)&tl->fold_ev, &tl->fold_ev_cap, events, sizeof(*tl->fold_ev)) < 0 ||
	    array_reserve((void **)&tl->fold_hash, &tl->fold_hash_cap, events, sizeof(*tl->fold_hash)) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	return 0;
}

/*
 * The hashes of the append's event ids, in order, for lookups in three tables
 * (pending ids, the flush's, the filter): each is asked for ID_AHEAD ids
 * before its lookup, so that the lookups do not wait on memory one by one.
 * Returns the number of ids.
 */
#define ID_AHEAD 8

static size_t hash_ids(struct timeline *tl, struct batch **batches, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; batches[i]->fail.code == HERR_OK && j < batches[i]->nevents; j++) {
			const struct event *ev = &batches[i]->events[j].ev;
			if (ev->id)
				tl->id_hash[k++] = strmap_hash(ev->id, ev->id_len);
		}
	return k;
}

static void prefetch_id(struct timeline *tl, uint64_t hash)
{
	idset_prefetch(&tl->ids, hash);
	if (tl->job.active)
		idset_prefetch(&tl->job.ids, hash);
	idfilter_prefetch(tl->id_filter, hash);
}

/*
 * Sorts out duplicates, gives the rest their log seqs and puts their records.
 * A failure takes the accepted ids back out of the pending ones.
 */
static int put_records(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
		       struct herr *err)
{
	uint64_t seq = tl->next_seq;
	size_t ids = hash_ids(tl, batches, n), k = 0;
	int rc = -1;

	for (size_t a = 0; a < ID_AHEAD && a < ids; a++)
		prefetch_id(tl, tl->id_hash[a]);
	for (size_t i = 0; i < n; i++) {
		struct batch *b = batches[i];
		if (b->fail.code != HERR_OK)
			continue;
		b->accepted = b->duplicates = 0;
		for (size_t j = 0; j < b->nevents; j++) {
			struct batch_event *be = &b->events[j];
			int taken = 0;
			if (be->ev.id) {
				if (k + ID_AHEAD < ids)
					prefetch_id(tl, tl->id_hash[k + ID_AHEAD]);
				taken = take_id(tl, w, &be->ev, tl->id_hash[k++]);
			}
			be->status = BATCH_PENDING;
			if (taken < 0) {
				herr_set(err, HERR_NOMEM, "out of memory");
				goto out;
			}
			if (taken) {
				be->status = BATCH_DUPLICATE;
				b->duplicates++;
				continue;
			}
			be->ev.seq = seq++;
			be->status = BATCH_ACCEPTED;
			if (put_record(tl, w, &be->ev, err) < 0)
				goto out;
			b->accepted++;
		}
	}
	rc = w->rc ? -1 : 0;
out:
	if (rc < 0)
		drop_ids_from(tl, batches, n, tl->next_seq);
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

static size_t accepted_events(struct batch **batches, size_t n)
{
	size_t events = 0;

	for (size_t i = 0; i < n; i++)
		if (batches[i]->fail.code == HERR_OK)
			events += batches[i]->accepted;
	return events;
}

/*
 * How many events each customer has in the append, by a hash of its id: a
 * customer whose count falls to 0 has all of them folded (customers that
 * share a count wait for each other). Returns the mask, 0 when out of memory;
 * *customers: the counts used, as many as the customers or fewer.
 */
static size_t count_events(struct timeline *tl, size_t events, size_t *customers)
{
	size_t cap = 64;

	while (cap < 2 * events)
		cap *= 2;
	if (cap > tl->fold_left_cap) {
		uint32_t *left = realloc(tl->fold_left, cap * sizeof(*left));
		if (!left)
			return 0;
		tl->fold_left = left;
		tl->fold_left_cap = cap;
	}
	memset(tl->fold_left, 0, cap * sizeof(*tl->fold_left));
	for (size_t k = 0; k < events; k++)
		if (tl->fold_left[tl->fold_hash[k] & (cap - 1)]++ == 0)
			++*customers;
	return cap - 1;
}

/* The append's accepted events in order, with their customers' hashes (reserve_append made the room). */
static void list_events(struct timeline *tl, struct batch **batches, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; batches[i]->fail.code == HERR_OK && j < batches[i]->nevents; j++)
			if (batches[i]->events[j].status == BATCH_ACCEPTED) {
				struct event *ev = &batches[i]->events[j].ev;
				tl->fold_ev[k] = ev;
				tl->fold_hash[k++] = strmap_hash(ev->customer, ev->customer_len);
			}
}

/*
 * An event's fold waits on memory some ten times in a large store: the map's
 * slot, its key, the pending entry, its events' end, the customer's state, its
 * type stats. Each is asked for FOLD_AHEAD events before it is needed, the
 * next once the one before has had time to arrive.
 */
#define FOLD_AHEAD 8
#define FOLD_RING  (2 * FOLD_AHEAD)

static void prefetch_fold(struct timeline *tl, size_t k, size_t events, struct dirty **ring)
{
	const uint64_t *hash = tl->fold_hash;

	if (k + 3 * FOLD_AHEAD < events)
		strmap_prefetch(&tl->dirty, hash[k + 3 * FOLD_AHEAD]);
	if (k + 2 * FOLD_AHEAD < events)
		strmap_prefetch_entry(&tl->dirty, hash[k + 2 * FOLD_AHEAD]);
	if (k + FOLD_AHEAD < events) {
		const struct event *ev = tl->fold_ev[k + FOLD_AHEAD];
		struct dirty *d = strmap_get_hashed(&tl->dirty, ev->customer, ev->customer_len, hash[k + FOLD_AHEAD]);
		ring[(k + FOLD_AHEAD) % FOLD_RING] = d;
		if (d) {
			/* past the id: the fields a fold changes */
			for (size_t off = offsetof(struct cust, id_len); off < sizeof(struct cust); off += 64)
				__builtin_prefetch((const char *)d->c + off);
			if (d->ev)
				__builtin_prefetch(&d->ev[d->n < d->cap ? d->n : 0]);
		}
	}
	if (k + FOLD_AHEAD / 2 < events) {
		const struct dirty *d = ring[(k + FOLD_AHEAD / 2) % FOLD_RING];
		for (size_t i = 0; d && i < d->c->ntypes && i < 8; i++)
			__builtin_prefetch(&d->c->types[i].hash);
	}
}

static void hand_over(struct timeline *tl, const struct fold_watch *watch, struct dirty *d)
{
	if (d->lent_mark == tl->mark)
		return;
	d->lent_mark = tl->mark;
	watch->done(watch->ctx, d->c, d->touched_at);
}

/*
 * Folds the accepted events into pending state, handing each customer to
 * watch once the last of its events is in. A fold that fails (out of memory)
 * is logged: the log has the events and the next start rebuilds them.
 */
static void fold(struct timeline *tl, MDB_txn *txn, struct batch **batches, size_t n,
		 const struct fold_watch *watch)
{
	struct herr err = { 0 };
	struct dirty *ring[FOLD_RING] = { 0 };
	size_t mask = 0, events = accepted_events(batches, n);

	tl->ntouched = 0;
	tl->mark++;
	tl->append_from_seq = tl->next_seq;
	list_events(tl, batches, n);
	if (watch) {
		size_t customers = 0;
		if (!(mask = count_events(tl, events, &customers)))
			customers = events;
		if (!watch->begin(watch->ctx, events, customers)) {
			watch = NULL;
			mask = 0;
		}
	}
	for (size_t k = 0; k < events; k++) {
		struct event *ev = tl->fold_ev[k];
		struct dirty *d;
		prefetch_fold(tl, k, events, ring);
		if (ev->seq >= tl->next_seq)
			tl->next_seq = ev->seq + 1;
		if (apply_stored(tl, txn, ev, tl->fold_hash[k], &d, &err) < 0)
			log_error("store, indexing event %llu failed (%s)", (unsigned long long)ev->seq, err.msg);
		if (mask && --tl->fold_left[tl->fold_hash[k] & mask] == 0 && d && d->mark == tl->mark)
			hand_over(tl, watch, d);
	}
	/* those that shared a count with a later customer, or all when counting was out of memory */
	for (size_t i = 0; watch && i < tl->ntouched; i++)
		hand_over(tl, watch, tl->touched_dirty[i]);
}

int timeline_append_in(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
		       int *folded, const struct fold_watch *watch, struct herr *err)
{
	if (*folded)
		return reput_records(tl, w, batches, n, err);
	if (reserve_append(tl, batches, n, err) < 0 || put_records(tl, w, batches, n, err) < 0)
		return -1;
	fold(tl, w->txn, batches, n, watch);
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
		timeline_append_note_drop(tl);
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
		timeline_publish_append(tl);
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
	return timeline_append_in(ctx->tl, w, ctx->batches, ctx->n, &ctx->folded, NULL, err);
}

int timeline_append(struct timeline *tl, struct batch **batches, size_t n)
{
	struct append_ctx ctx = { .tl = tl, .batches = batches, .n = n };
	struct herr err = { 0 };
	int rc = store_write(tl->st, append_fn, &ctx, &err);

	timeline_append_end(tl, batches, n, ctx.folded, rc < 0 ? &err : NULL);
	return rc;
}

/* ---- evaluation support ---------------------------------------------------- */

/* Held, but just as stored: what the flush would skip (flush_customer). */
static int same_as_stored(const struct dirty *d)
{
	return !d->n && !d->is_new && !d->changed && d->c->deadline == d->stored_deadline &&
	       d->stale_deadline == INT64_MAX;
}

uint64_t timeline_watch_begin(struct timeline *tl, const char *floor, size_t floor_len)
{
	if (floor_len > sizeof(tl->watch.floor))
		floor_len = 0;
	memcpy(tl->watch.floor, floor, floor_len);
	tl->watch.floor_len = floor_len;
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
	tl->watch.floor_len = 0;
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
	if (rebuild_cases(tl, txn, d, err) < 0)
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

/*
 * A key the customer no longer has (a flush under way deletes it, or a crash
 * between a flush's slices left it, and maybe not the customer's own): it goes.
 */
static void drop_stale_key(struct dirty *d, int64_t when)
{
	if (when != d->stored_deadline && when != d->c->deadline)
		d->stale_deadline = when;
}

/* A customer in memory, listed once per listing. */
static int list_pending(struct timeline *tl, struct dirty *d, struct due_ref *out, size_t *n)
{
	if (d->mark == tl->mark)
		return 0;
	d->mark = tl->mark;
	out[(*n)++] = (struct due_ref){ .id = d->c->id, .len = d->c->id_len, .c = d->c };
	return 1;
}

/* Customers a flush under way wrote, whose new deadline key is not written yet. */
static void due_moving(struct timeline *tl, int64_t now, struct due_ref *out, size_t *n, size_t max)
{
	const struct flush_job *job = &tl->job;

	if (!job->active)
		return;
	for (size_t i = job->next_move; i < job->nmoves && *n < max; i++) {
		const struct deadline_move *m = &job->moves[i];
		if (!m->put || m->when > now)
			continue;
		struct dirty *d = strmap_get(&tl->dirty, job->custs[m->cust], job->lens[m->cust]);
		if (!d)
			out[(*n)++] = (struct due_ref){ .id = job->custs[m->cust], .len = job->lens[m->cust],
							.when = m->when };
		else if (d->c->deadline <= now)
			list_pending(tl, d, out, n); /* its deadline may have moved on again */
	}
}

size_t timeline_due_list(struct timeline *tl, MDB_txn *txn, int64_t now, struct due_ref *out, size_t max,
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
				list_pending(tl, d, out, &n);
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
		const char *id = (const char *)key.mv_data + 8;
		struct dirty *d = strmap_get(&tl->dirty, id, key.mv_size - 8);
		if (!d) {
			out[n++] = (struct due_ref){ .id = id, .len = key.mv_size - 8, .when = when, .stored_key = 1 };
			continue;
		}
		/* a key it no longer has (moved by the next flush): not due before its own */
		if (d->c->deadline <= now)
			list_pending(tl, d, out, &n);
		drop_stale_key(d, when);
	}
	mdb_cursor_close(cur);
	due_moving(tl, now, out, &n, max);
	return n;
}

struct cust *timeline_hold_due(struct timeline *tl, MDB_txn *txn, const struct due_ref *r, int64_t now,
			       struct herr *err)
{
	struct dirty *d;

	if (r->c)
		return r->c;
	if (!(d = dirty_get(tl, txn, r->id, r->len, 0, err)) || d->mark == tl->mark)
		return NULL;
	d->mark = tl->mark;
	if (r->stored_key)
		drop_stale_key(d, r->when);
	/* the record is the customer's schedule: a key a flush under way or a crash left does not make it due */
	if (d->c->deadline <= now)
		return d->c;
	timeline_release(tl, d->c);
	return NULL;
}

size_t timeline_due(struct timeline *tl, MDB_txn *txn, int64_t now, struct cust **out, size_t max,
		    struct herr *err)
{
	struct due_ref *refs = malloc((max ? max : 1) * sizeof(*refs));
	size_t n, held = 0;

	if (!refs) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return 0;
	}
	n = timeline_due_list(tl, txn, now, refs, max, err);
	for (size_t i = 0; i < n; i++) {
		struct cust *c = timeline_hold_due(tl, txn, &refs[i], now, err);
		if (c)
			out[held++] = c;
	}
	free(refs);
	return held;
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
