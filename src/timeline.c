/*
 * Timelines: the durable append-only log plus derived indexes written in
 * sorted flushes (see include/hearth/timeline.h for the why).
 *
 * Keys:  log       seq(u64 BE)                         → event record
 *        timeline  customer 0x00 ts(i64 ordered) seq   → type
 *        customers customer                            → customer record
 *        ids       event id                            → seq
 * meta "indexed_seq": every log record up to it is reflected in the others.
 */
#include <errno.h>
#include <json-c/json.h>
#include <lmdb.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/state.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

/*
 * When pending derived state is written: whichever comes first. A flush
 * rewrites pages spread over the whole store, so under steady ingest size
 * decides (many events per page written); a quiet store is written within a
 * second, so that little is left for recovery to replay.
 */
#define FLUSH_MAX_EVENTS    200000
#define FLUSH_MAX_CUSTOMERS 50000
#define FLUSH_MAX_AGE_MS    1000
#define FLUSH_MAX_AGE_BUSY_MS 10000
#define BUSY_GAP_MS         250     /* appends closer than this: ingest is busy */
/* Past twice the flush sizes ingest waits, so memory stays bounded when producers outrun the store. */
#define BACKLOG_FACTOR      2
#define TRIM_INTERVAL_MS    10000
/* A flush is written in slices, each its own transaction, so the loop keeps serving. */
#define FLUSH_SLICE_CUSTOMERS 1000
#define FLUSH_SLICE_BUDGET_US 5000  /* a slice also stops after this much work */
#define FLUSH_SLICE_IDS       5000

#define TL_KEY_MAX (HEARTH_ID_MAX + 1 + 16)

struct pending_ev {
	int64_t ts;
	uint64_t seq;
	char type[HEARTH_NAME_MAX + 1];
};

struct dirty {
	struct cust *c;
	struct pending_ev *ev;
	size_t n, cap;
	int is_new;
	int64_t stored_deadline;        /* the deadline key in DB_DEADLINES */
	int changed;                    /* state rewritten without a new event */
	uint64_t mark;                  /* generation of the last touched/due listing */
};

struct id_entry {
	char *id;
	size_t len;
	uint64_t seq;
};

/* A flush under way: what was pending when it began, written slice by slice. */
struct flush_job {
	int active;
	uint64_t upto_seq;              /* indexed_seq once every slice is written */
	char **custs;                   /* sorted customer ids (copies) */
	size_t *lens, ncusts, next_cust;
	struct id_entry *ids;           /* sorted */
	size_t nids, next_id;
	int64_t started_us;
	size_t events;
};

struct timeline {
	struct store *st;
	const struct config *cfg;
	struct strmap dirty;            /* customer id → struct dirty */
	struct strmap ids;              /* event id not yet in DB_IDS → seq */
	uint64_t next_seq;
	size_t pending_events, new_customers;
	int64_t pending_since_ms;       /* monotonic time of the oldest pending change */
	int64_t last_append_ms;
	int64_t trimmed_ms;             /* when the heap was last given back */
	/*
	 * No pending customer's deadline is earlier than this (INT64_MIN: unknown),
	 * so a tick need not walk them all; evaluation lowers it as it sets deadlines.
	 */
	int64_t pending_min_deadline;
	struct wbuf rec;
	struct cust **touched;          /* customers changed by the last append */
	size_t ntouched, touched_cap;
	uint64_t mark;
	struct flush_job job;
	struct timeline_stats stats;
};

static void job_free(struct flush_job *job);

static size_t tl_key(uint8_t *buf, const char *cust, size_t len, int64_t ts, uint64_t seq)
{
	memcpy(buf, cust, len);
	buf[len] = 0;
	be64_put(buf + len + 1, i64_to_ordered(ts));
	be64_put(buf + len + 9, seq);
	return len + 17;
}

/* Deadline index key: when (i64 ordered) then customer, so a tick reads a prefix. */
static size_t deadline_key(uint8_t *buf, int64_t when, const char *cust, size_t len)
{
	be64_put(buf, i64_to_ordered(when));
	memcpy(buf + 8, cust, len);
	return 8 + len;
}

static void dirty_free(struct dirty *d)
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
		dirty_free(slot->value);
	strmap_clear(&tl->dirty);
	strmap_clear(&tl->ids);
	tl->pending_events = 0;
	tl->new_customers = 0;
	tl->pending_since_ms = 0;
	tl->ntouched = 0;
}

/* The customer's state from the store, or a new one; NULL on failure. */
static struct cust *cust_load(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			      int *found, struct herr *err)
{
	MDB_val val;
	int rc = store_get(txn, tl->st, DB_CUSTOMERS, id, len, &val);
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
	d->c = cust_load(tl, txn, id, len, &found, err);
	if (!d->c || (!found && !create)) {
		if (d->c)
			herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
		dirty_free(d);
		return NULL;
	}
	if (strmap_put(&tl->dirty, id, len, d) < 0) {
		dirty_free(d);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	d->is_new = !found;
	d->stored_deadline = d->c->deadline;
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
	mdb_txn_abort(txn);
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
	strmap_init(&tl->ids);
	wbuf_init(&tl->rec);
	tl->pending_min_deadline = INT64_MIN;
	if (recover(tl, err) < 0) {
		timeline_close(tl);
		return NULL;
	}
	/* A full store must still start: what is recovered stays in memory until it fits. */
	if (timeline_flush(tl, 1, err) < 0) {
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
	if (tl->dirty.count && timeline_flush(tl, 1, &err) < 0)
		log_warning("store, final flush failed (%s); the log still holds everything",
			    err.msg);
	pending_clear(tl);
	job_free(&tl->job);
	wbuf_free(&tl->rec);
	free(tl->touched);
	free(tl);
}

void timeline_set_config(struct timeline *tl, const struct config *cfg)
{
	tl->cfg = cfg;
}

struct store *timeline_store(struct timeline *tl)
{
	return tl->st;
}

/* ---- append ---------------------------------------------------------------- */

struct append_ctx {
	struct timeline *tl;
	struct batch **batches;
	size_t n;
	struct strmap group;            /* ids taken by this group so far */
	uint64_t seq;
};

static int is_duplicate(struct append_ctx *ctx, struct wtxn *w, const struct event *ev)
{
	MDB_val val;

	if (strmap_get(&ctx->group, ev->id, ev->id_len) || strmap_get(&ctx->tl->ids, ev->id, ev->id_len))
		return 1;
	return wtxn_get(w, DB_IDS, ev->id, ev->id_len, &val) == 0;
}

static int append_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct append_ctx *ctx = vctx;
	struct timeline *tl = ctx->tl;
	uint8_t key[8];

	strmap_clear(&ctx->group);
	ctx->seq = tl->next_seq;
	for (size_t i = 0; i < ctx->n; i++) {
		struct batch *b = ctx->batches[i];
		if (b->fail.code != HERR_OK)
			continue;
		b->accepted = b->duplicates = 0;
		for (size_t j = 0; j < b->nevents; j++) {
			struct batch_event *be = &b->events[j];
			if (be->ev.id && is_duplicate(ctx, w, &be->ev)) {
				be->status = BATCH_DUPLICATE;
				b->duplicates++;
				continue;
			}
			if (be->ev.id && strmap_put(&ctx->group, be->ev.id, be->ev.id_len, be) < 0)
				return herr_set(err, HERR_NOMEM, "out of memory");
			be->ev.seq = ctx->seq++;
			wbuf_reset(&tl->rec);
			if (event_encode(&be->ev, &tl->rec, err) < 0)
				return -1;
			be64_put(key, be->ev.seq);
			wtxn_put(w, DB_LOG, key, 8, tl->rec.data, tl->rec.len, MDB_APPEND);
			be->status = BATCH_ACCEPTED;
			b->accepted++;
		}
	}
	return w->rc ? -1 : 0;
}

int timeline_append(struct timeline *tl, struct batch **batches, size_t n)
{
	struct append_ctx ctx = { .tl = tl, .batches = batches, .n = n };
	struct herr err = { 0 };
	MDB_txn *txn = NULL;
	int rc;

	strmap_init(&ctx.group);
	rc = store_write(tl->st, append_fn, &ctx, &err);
	strmap_clear(&ctx.group);
	if (rc < 0) {
		tl->stats.commit_failures++;
		for (size_t i = 0; i < n; i++)
			if (batches[i]->fail.code == HERR_OK)
				batches[i]->fail = err;
		return -1;
	}
	tl->stats.commits++;
	tl->last_append_ms = mono_now_ms();
	tl->next_seq = ctx.seq;
	tl->ntouched = 0;
	tl->mark++;
	/*
	 * The events are durable from here on. If folding them into memory fails,
	 * the log still has them and the next start rebuilds what is missing.
	 */
	if (store_read_begin(tl->st, &txn, &err) < 0) {
		log_error("store, cannot index committed events (%s)", err.msg);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct batch *b = batches[i];
		if (b->fail.code != HERR_OK)
			continue;
		tl->stats.events_accepted += b->accepted;
		tl->stats.events_duplicate += b->duplicates;
		for (size_t j = 0; j < b->nevents; j++)
			if (b->events[j].status == BATCH_ACCEPTED &&
			    apply_stored(tl, txn, &b->events[j].ev, &err) < 0)
				log_error("store, indexing event %llu failed (%s)",
					  (unsigned long long)b->events[j].ev.seq, err.msg);
	}
	mdb_txn_abort(txn);
	return 0;
}

/* ---- flush ----------------------------------------------------------------- */

struct flush_ctx {
	struct timeline *tl;
	size_t cust_from, cust_to;      /* the slice of job.custs */
	size_t id_from, id_to;          /* the slice of job.ids */
	int last;                       /* the final slice writes indexed_seq */
};

static int slot_cmp(const void *a, const void *b)
{
	const struct strmap_slot *x = *(const struct strmap_slot *const *)a;
	const struct strmap_slot *y = *(const struct strmap_slot *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int pending_cmp(const void *a, const void *b)
{
	const struct pending_ev *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static void flush_customer(struct wtxn *w, struct timeline *tl, const struct dirty *d)
{
	uint8_t key[TL_KEY_MAX];

	if (d->n == 0 && !d->is_new && !d->changed && d->c->deadline == d->stored_deadline)
		return; /* held for evaluation, nothing changed */
	wbuf_reset(&tl->rec);
	if (cust_encode(d->c, &tl->rec) < 0) {
		wtxn_fail(w, ENOMEM, "encoding a customer");
		return;
	}
	wtxn_put(w, DB_CUSTOMERS, d->c->id, d->c->id_len, tl->rec.data, tl->rec.len, 0);
	if (d->c->deadline != d->stored_deadline) {
		size_t klen;
		if (d->stored_deadline != INT64_MAX) {
			klen = deadline_key(key, d->stored_deadline, d->c->id, d->c->id_len);
			wtxn_del(w, DB_DEADLINES, key, klen);
		}
		if (d->c->deadline != INT64_MAX) {
			klen = deadline_key(key, d->c->deadline, d->c->id, d->c->id_len);
			wtxn_put(w, DB_DEADLINES, key, klen, "", 0, 0);
		}
	}
	for (size_t j = 0; j < d->n; j++) {
		size_t klen = tl_key(key, d->c->id, d->c->id_len, d->ev[j].ts, d->ev[j].seq);
		wtxn_put(w, DB_TIMELINE, key, klen, d->ev[j].type, strlen(d->ev[j].type), 0);
	}
}

static int flush_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct flush_ctx *ctx = vctx;
	struct timeline *tl = ctx->tl;
	struct flush_job *job = &tl->job;
	uint8_t seq[8];
	int64_t until = mono_now_us() + FLUSH_SLICE_BUDGET_US;

	(void)err;
	for (size_t i = ctx->cust_from; i < ctx->cust_to; i++) {
		/* customers with many events make a slow slice: the rest waits for the next one */
		if ((i - ctx->cust_from) % 64 == 63 && mono_now_us() > until) {
			ctx->cust_to = i;
			ctx->id_to = ctx->id_from;
			ctx->last = 0;
			break;
		}
		const struct dirty *d = strmap_get(&tl->dirty, job->custs[i], job->lens[i]);
		if (d)
			flush_customer(w, tl, d);
	}
	for (size_t i = ctx->id_from; i < ctx->id_to; i++) {
		be64_put(seq, job->ids[i].seq);
		wtxn_put(w, DB_IDS, job->ids[i].id, job->ids[i].len, seq, 8, 0);
	}
	if (ctx->last)
		wtxn_meta_u64(w, "indexed_seq", job->upto_seq);
	return w->rc ? -1 : 0;
}

static int str_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static int id_entry_cmp(const void *a, const void *b)
{
	const struct id_entry *x = a, *y = b;
	return str_cmp(x->id, x->len, y->id, y->len);
}

static void job_free(struct flush_job *job)
{
	for (size_t i = 0; i < job->ncusts; i++)
		free(job->custs[i]);
	for (size_t i = 0; i < job->nids; i++)
		free(job->ids[i].id);
	free(job->custs);
	free(job->lens);
	free(job->ids);
	memset(job, 0, sizeof(*job));
}

static const struct strmap_slot **sorted_slots(const struct strmap *m)
{
	const struct strmap_slot **list = malloc((m->count ? m->count : 1) * sizeof(*list));
	const struct strmap_slot *slot;
	size_t n = 0;

	if (!list)
		return NULL;
	for (size_t i = 0; strmap_next(m, &i, &slot);)
		list[n++] = slot;
	qsort(list, n, sizeof(*list), slot_cmp);
	return list;
}

/* Takes the list of what is pending now; later changes wait for the next flush. */
static int flush_begin(struct timeline *tl, struct herr *err)
{
	struct flush_job *job = &tl->job;
	const struct strmap_slot **slots, *slot;
	size_t n = 0;

	memset(job, 0, sizeof(*job));
	slots = sorted_slots(&tl->dirty);
	job->custs = calloc(tl->dirty.count + 1, sizeof(*job->custs));
	job->lens = calloc(tl->dirty.count + 1, sizeof(*job->lens));
	job->ids = calloc(tl->ids.count + 1, sizeof(*job->ids));
	if (!slots || !job->custs || !job->lens || !job->ids)
		goto nomem;
	for (size_t i = 0; i < tl->dirty.count; i++) {
		struct dirty *d = slots[i]->value;
		if (d->n)
			qsort(d->ev, d->n, sizeof(*d->ev), pending_cmp);
		job->events += d->n;
		if (!(job->custs[i] = malloc(slots[i]->len)))
			goto nomem;
		memcpy(job->custs[i], slots[i]->key, slots[i]->len);
		job->lens[i] = slots[i]->len;
		job->ncusts++;
	}
	for (size_t i = 0; strmap_next(&tl->ids, &i, &slot); n++) {
		if (!(job->ids[n].id = malloc(slot->len)))
			goto nomem;
		memcpy(job->ids[n].id, slot->key, slot->len);
		job->ids[n].len = slot->len;
		job->ids[n].seq = (uint64_t)(uintptr_t)slot->value;
		job->nids++;
	}
	qsort(job->ids, job->nids, sizeof(*job->ids), id_entry_cmp);
	free(slots);
	job->upto_seq = tl->next_seq - 1;
	job->started_us = mono_now_us();
	job->active = 1;
	return 0;
nomem:
	free(slots);
	job_free(job);
	return herr_set(err, HERR_NOMEM, "out of memory");
}

/* Writes the next slice; what it wrote leaves memory. */
static int flush_slice(struct timeline *tl, struct herr *err)
{
	struct flush_job *job = &tl->job;
	struct flush_ctx ctx = { .tl = tl, .cust_from = job->next_cust, .id_from = job->next_id };

	ctx.cust_to = ctx.cust_from + FLUSH_SLICE_CUSTOMERS < job->ncusts ? ctx.cust_from + FLUSH_SLICE_CUSTOMERS
									 : job->ncusts;
	ctx.id_to = ctx.id_from;
	if (ctx.cust_to == job->ncusts)
		ctx.id_to = ctx.id_from + FLUSH_SLICE_IDS < job->nids ? ctx.id_from + FLUSH_SLICE_IDS : job->nids;
	ctx.last = ctx.cust_to == job->ncusts && ctx.id_to == job->nids;
	if (store_write(tl->st, flush_fn, &ctx, err) < 0)
		return -1;
	for (size_t i = ctx.cust_from; i < ctx.cust_to; i++) {
		struct dirty *d = strmap_del(&tl->dirty, job->custs[i], job->lens[i]);
		if (!d)
			continue;
		tl->pending_events -= d->n;
		tl->new_customers -= (size_t)d->is_new;
		dirty_free(d);
	}
	for (size_t i = ctx.id_from; i < ctx.id_to; i++)
		if ((uint64_t)(uintptr_t)strmap_get(&tl->ids, job->ids[i].id, job->ids[i].len) == job->ids[i].seq)
			strmap_del(&tl->ids, job->ids[i].id, job->ids[i].len);
	job->next_cust = ctx.cust_to;
	job->next_id = ctx.id_to;
	if (ctx.last) {
		tl->stats.flushes++;
		tl->stats.flush_events += job->events;
		tl->stats.flush_us_total += (uint64_t)(mono_now_us() - job->started_us);
		job_free(job);
		tl->pending_since_ms = tl->dirty.count ? mono_now_ms() : 0;
		/*
		 * A burst's pending state is gone: give its memory back rather than
		 * keep the peak. Not after every flush: trimming costs page faults later.
		 */
		if (tl->dirty.count == 0 && mono_now_ms() - tl->trimmed_ms >= TRIM_INTERVAL_MS) {
			malloc_trim(0);
			tl->trimmed_ms = mono_now_ms();
		}
	}
	return 0;
}

int64_t timeline_flush_due_in(const struct timeline *tl)
{
	if (tl->job.active)
		return 0;
	if (tl->dirty.count == 0 && tl->ids.count == 0)
		return -1;
	if (tl->pending_events >= FLUSH_MAX_EVENTS || tl->dirty.count >= FLUSH_MAX_CUSTOMERS)
		return 0;
	int64_t now = mono_now_ms();
	int busy = now - tl->last_append_ms < BUSY_GAP_MS;
	int64_t due = tl->pending_since_ms + (busy ? FLUSH_MAX_AGE_BUSY_MS : FLUSH_MAX_AGE_MS) - now;
	if (due <= 0)
		return 0;
	/* wake up when ingest may have gone quiet: the shorter age then applies */
	return busy && due > BUSY_GAP_MS ? BUSY_GAP_MS : due;
}

int timeline_backlogged(const struct timeline *tl)
{
	return tl->dirty.count >= BACKLOG_FACTOR * FLUSH_MAX_CUSTOMERS ||
	       tl->pending_events >= BACKLOG_FACTOR * FLUSH_MAX_EVENTS;
}

int timeline_flush(struct timeline *tl, int force, struct herr *err)
{
	do {
		if (!tl->job.active) {
			if (tl->dirty.count == 0 && tl->ids.count == 0)
				return 0;
			if (!force && timeline_flush_due_in(tl) > 0)
				return 0;
			if (flush_begin(tl, err) < 0)
				return -1;
		}
		if (flush_slice(tl, err) < 0)
			return -1;
		/* a forced flush goes on until nothing is pending, arrivals included */
	} while (force);
	return 0;
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
	c = cust_load(tl, txn, id, len, &found, err);
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
	MDB_val key = { tl_key(buf, it->cust, it->len, from.ts, from.seq), buf }, val;
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

static int emit_event(struct timeline *tl, MDB_txn *txn, uint64_t seq, timeline_event_fn fn,
		      void *ctx, struct herr *err)
{
	uint8_t key[8];
	MDB_val val;
	struct event ev;
	int rc;

	be64_put(key, seq);
	rc = store_get(txn, tl->st, DB_LOG, key, 8, &val);
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
	struct stored_iter it = { .cust = q->customer, .len = q->customer_len, .desc = q->desc };
	struct tpos lo = { q->since, 0 }, hi = { q->until, UINT64_MAX };
	size_t pi = 0, pn = d ? d->n : 0, emitted = 0;
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
	if (d && d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), pending_cmp);
	if ((rc = mdb_cursor_open(txn, store_dbi(tl->st, DB_TIMELINE), &it.cur)))
		return store_error(err, rc, "reading a timeline");
	stored_seek(&it, q->desc ? hi : lo);
	/* pending events walk the same direction; pi counts from the walk's start */
	for (;;) {
		const struct pending_ev *p = NULL;
		struct tpos ppos = { 0, 0 };
		while (pi < pn) {
			p = &d->ev[q->desc ? pn - 1 - pi : pi];
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
		int take_stored = it.valid &&
				  (!p || (q->desc ? tpos_cmp(it.pos, ppos) > 0 : tpos_cmp(it.pos, ppos) < 0));
		const char *type = take_stored ? it.type : p->type;
		uint64_t seq = take_stored ? it.pos.seq : p->seq;
		if (type_wanted(q, type)) {
			if (emitted == q->limit) {
				*more = 1;
				break;
			}
			if (emit_event(tl, txn, seq, fn, ctx, err) < 0) {
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
	mdb_txn_abort(txn);
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
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_OUTBOX), &cur))) {
		wtxn_fail(w, rc, "forget");
		return;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct json_object *body, *customer, *id;
		if (val.mv_size <= 8)
			continue;
		body = json_tokener_parse(strndupa((const char *)val.mv_data + 8, val.mv_size - 8));
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
}

/* Alert states are keyed customer 0x00 rule: delete that whole prefix. */
static void forget_related(struct wtxn *w, struct forget_ctx *ctx)
{
	uint8_t prefix[TL_KEY_MAX];
	MDB_cursor *cur;
	MDB_val key = { ctx->len + 1, prefix }, val;
	int rc;

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
		if (wtxn_get(w, DB_LOG, seqkey, 8, &val) == 0 &&
		    event_decode(val.mv_data, val.mv_size, &ev) == 0 && ev.id) {
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
	ctx->found = wtxn_get(w, DB_CUSTOMERS, ctx->id, ctx->len, &val) == 0;
	if (ctx->found) {
		struct cust *c = cust_decode(ctx->id, ctx->len, val.mv_data, val.mv_size);
		if (c && c->deadline != INT64_MAX) {
			size_t dlen = deadline_key(prefix, c->deadline, ctx->id, ctx->len);
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
	if (timeline_flush(tl, 1, err) < 0 || store_write(tl->st, forget_fn, &ctx, err) < 0)
		return -1;
	if (!ctx.found && ctx.removed == 0)
		return herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
	*removed = ctx.removed;
	return 0;
}

/* ---- evaluation support ---------------------------------------------------- */

struct cust *timeline_hold(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			   struct herr *err)
{
	struct dirty *d = dirty_get(tl, txn, id, len, 0, err);
	return d ? d->c : NULL;
}

int timeline_rebuild_cases(struct timeline *tl, MDB_txn *txn, struct cust *c, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, c->id, c->id_len);

	if (!d || d->c != c)
		return herr_set(err, HERR_STORE_ERROR, "rebuilding cases of a customer not held");
	d->changed = 1;
	return rebuild_cases(tl, txn, c, err);
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
		if (key.mv_size <= 8 || ordered_to_i64(be64_get(key.mv_data)) > now)
			break;
		struct dirty *d = dirty_get(tl, txn, (const char *)key.mv_data + 8, key.mv_size - 8, 0, err);
		if (d)
			add_due(tl, d, out, &n);
	}
	mdb_cursor_close(cur);
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
