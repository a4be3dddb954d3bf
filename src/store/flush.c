/*
 * The flush: pending derived state (customer records, the time index, the id
 * and deadline indexes) written sorted, in slices that are transactions of
 * their own, so that the loop keeps serving. indexed_seq moves with the last
 * slice; recovery replays the log past it (timeline.c).
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/heap.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "hearth/thread.h"
#include "hearth/timeline.h"
#include "pending.h"
#include "type_names.h"
#include "hearth/units.h"

/*
 * When pending derived state is written: whichever comes first. A flush
 * rewrites pages spread over the whole store, so under steady ingest size
 * decides (many events per page written: doubling these from 200k/50k took
 * the bytes written per event from 1,249 to 748, for twice the memory of
 * pending customers at the peak); a quiet store is written within a second,
 * so that little is left for recovery to replay.
 */
#define FLUSH_MAX_EVENTS    400000
#define FLUSH_MAX_CUSTOMERS 100000
#define FLUSH_MAX_ALERTS    100000  /* journaled alert states, kept in memory until applied */
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
#define FLUSH_SLICE_ALERTS    3000  /* alert states, written in key order (alert_states.h) */
#define FLUSH_SLICE_DEADLINES 20000 /* deadline keys, sorted: a slice covers one stretch of the index */
/*
 * Sorting a million ids took the writer ~0.2 s in one go at the start of a
 * flush; past this many, a thread of their own sorts them while the
 * customers are written (they are written last). Fewer are sorted when needed.
 */
#define SORT_APART_IDS 16384
/* at the writer's priority: the writer waits for it if it is not done when the ids come */
#define ID_SORTER_NICE 0
/* How many customers ahead a slice asks for their pending entry: slot first, then key and value. */
#define CUST_AHEAD 8

struct flush_ctx {
	struct timeline *tl;
	size_t cust_from, cust_to;      /* the slice of job.custs */
	size_t id_from, id_to;          /* the slice of job.ids */
	size_t move_from, move_to;      /* the slice of job.moves */
	size_t moves_before;            /* job.nmoves when the slice began: a retry starts there */
	int last;                       /* the final slice writes indexed_seq */
};

static int move_deadline(struct flush_job *job, int64_t when, size_t cust, int put)
{
	if (job->nmoves == job->moves_cap) {
		size_t cap = job->moves_cap ? job->moves_cap * 2 : 1024;
		struct deadline_move *more = realloc(job->moves, cap * sizeof(*more));
		if (!more)
			return -1;
		job->moves = more;
		job->moves_cap = cap;
	}
	job->moves[job->nmoves++] = (struct deadline_move){ when, cust, put };
	return 0;
}

/*
 * A customer's deadline keys move with the flush's other deadlines, later and
 * sorted: keyed by time, they would dirty pages all over the index in every slice.
 */
static void flush_deadline(struct wtxn *w, struct flush_job *job, const struct dirty *d, size_t cust)
{
	int rc = 0;

	if (d->stale_deadline != INT64_MAX && d->stale_deadline != d->c->deadline)
		rc |= move_deadline(job, d->stale_deadline, cust, 0);
	if (d->c->deadline != d->stored_deadline && d->stored_deadline != INT64_MAX)
		rc |= move_deadline(job, d->stored_deadline, cust, 0);
	/* beside a key a crash left, the customer's own may be missing */
	if ((d->c->deadline != d->stored_deadline || d->stale_deadline != INT64_MAX) && d->c->deadline != INT64_MAX)
		rc |= move_deadline(job, d->c->deadline, cust, 1);
	if (rc)
		wtxn_fail(w, ENOMEM, "deadlines");
}

static void flush_time_index(struct wtxn *w, struct timeline *tl, const struct dirty *d)
{
	if (d->n > tl->adding_cap) {
		struct tindex_entry *grown = realloc(tl->adding, d->n * 2 * sizeof(*grown));
		if (!grown) {
			wtxn_fail(w, ENOMEM, "the time index");
			return;
		}
		tl->adding = grown;
		tl->adding_cap = d->n * 2;
	}
	qsort(d->ev, d->n, sizeof(*d->ev), pending_ev_cmp);
	for (size_t j = 0; j < d->n; j++)
		tl->adding[j] = (struct tindex_entry){ d->ev[j].ts, d->ev[j].seq, d->ev[j].type,
						       d->ev[j].type_len };
	tindex_add(w, d->c->id, d->c->id_len, tl->adding, d->n, &tl->tindex);
}

static void flush_customer(struct wtxn *w, struct timeline *tl, const struct dirty *d, size_t cust)
{
	if (d->n == 0 && !d->is_new && !d->changed && d->c->deadline == d->stored_deadline &&
	    d->stale_deadline == INT64_MAX)
		return; /* held for evaluation, nothing changed */
	wbuf_reset(&tl->rec);
	if (cust_encode(d->c, store_type_names(tl->st), &tl->rec) < 0) {
		wtxn_fail(w, ENOMEM, "encoding a customer");
		return;
	}
	wtxn_put(w, DB_CUSTOMERS, d->c->id, d->c->id_len, tl->rec.data, tl->rec.len, 0);
	flush_deadline(w, &tl->job, d, cust);
	if (d->n)
		flush_time_index(w, tl, d);
}

static int flush_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct flush_ctx *ctx = vctx;
	struct timeline *tl = ctx->tl;
	struct flush_job *job = &tl->job;
	int64_t until = mono_now_us() + FLUSH_SLICE_BUDGET_US;

	(void)err;
	job->nmoves = ctx->moves_before;
	for (size_t i = ctx->cust_from; i < ctx->cust_to; i++) {
		/* customers with many events make a slow slice: the rest waits for the next one */
		if ((i - ctx->cust_from) % 64 == 63 && mono_now_us() > until) {
			ctx->cust_to = i;
			ctx->id_to = ctx->id_from;
			ctx->move_to = ctx->move_from;
			ctx->last = 0;
			break;
		}
		if (i + CUST_AHEAD < ctx->cust_to)
			strmap_prefetch(&tl->dirty, job->hashes[i + CUST_AHEAD]);
		if (i + CUST_AHEAD / 2 < ctx->cust_to)
			strmap_prefetch_entry(&tl->dirty, job->hashes[i + CUST_AHEAD / 2]);
		const struct dirty *d = strmap_get_hashed(&tl->dirty, job->custs[i], job->lens[i], job->hashes[i]);
		if (d)
			flush_customer(w, tl, d, i);
	}
	for (size_t i = ctx->move_from; i < ctx->move_to; i++) {
		const struct deadline_move *m = &job->moves[i];
		uint8_t key[TL_KEY_MAX];
		size_t klen = timeline_deadline_key(key, m->when, job->custs[m->cust], job->lens[m->cust]);
		if (m->put)
			wtxn_put(w, DB_DEADLINES, key, klen, "", 0, 0);
		else
			wtxn_del(w, DB_DEADLINES, key, klen);
	}
	/* the key is all a duplicate check needs: no value, 8 bytes less per event (schema 2 wrote the seq) */
	for (size_t i = ctx->id_from; i < ctx->id_to; i++) {
		const char *id = idset_key_bytes(&job->ids, &job->id_order[i]);
		wtxn_put(w, DB_IDS, id, job->id_order[i].len, "", 0, 0);
		/* before the commit: a retry adds it again, a failure leaves a harmless "maybe" */
		idfilter_add(tl->id_filter, id, job->id_order[i].len);
	}
	if (ctx->last) {
		wtxn_meta_u64(w, "indexed_seq", job->upto_seq);
		alert_states_apply_end(tl->alerts, w);
	}
	/* the numbers of types the slice's records name first, in the same transaction */
	type_names_put_new(store_type_names(tl->st), w);
	return w->rc ? -1 : 0;
}

static int str_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static void *id_sorter_main(void *arg)
{
	struct flush_job *job = arg;

	thread_setup("hearth-idsort", ID_SORTER_NICE, "store, the flush's id sorter");
	job->id_order = idset_sorted(&job->ids);
	return NULL;
}

/* Signals belong to the loop's signalfd: the sorter takes none of them. */
static void start_id_sorter(struct flush_job *job)
{
	sigset_t all, old;

	if (job->nids < SORT_APART_IDS)
		return;
	sigfillset(&all);
	if (pthread_sigmask(SIG_BLOCK, &all, &old) != 0)
		return;
	job->id_sorting = pthread_create(&job->id_sorter, NULL, id_sorter_main, job) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The job's ids in key order, sorted here if no sorter did; NULL when out of memory. */
static const struct idset_key *job_id_order(struct flush_job *job)
{
	if (job->id_sorting) {
		pthread_join(job->id_sorter, NULL);
		job->id_sorting = 0;
	}
	if (!job->id_order)
		job->id_order = idset_sorted(&job->ids);
	return job->id_order;
}

void flush_job_free(struct flush_job *job)
{
	if (job->id_sorting)
		pthread_join(job->id_sorter, NULL);
	for (size_t i = 0; i < job->ncusts; i++)
		free(job->custs[i]);
	idset_free(&job->ids);
	free(job->id_order);
	free(job->custs);
	free(job->lens);
	free(job->hashes);
	free(job->moves);
	memset(job, 0, sizeof(*job));
}

/* Takes the list of what is pending now; later changes wait for the next flush. */
static int flush_begin(struct timeline *tl, struct herr *err)
{
	struct flush_job *job = &tl->job;
	const struct strmap_slot **slots;
	size_t n;

	memset(job, 0, sizeof(*job));
	slots = strmap_sorted(&tl->dirty, NULL, 0, &n);
	job->custs = calloc(tl->dirty.count + 1, sizeof(*job->custs));
	job->lens = calloc(tl->dirty.count + 1, sizeof(*job->lens));
	job->hashes = calloc(tl->dirty.count + 1, sizeof(*job->hashes));
	if (!slots || !job->custs || !job->lens || !job->hashes)
		goto nomem;
	for (size_t i = 0; i < tl->dirty.count; i++) {
		const struct dirty *d = slots[i]->value;
		job->events += d->n;
		if (!(job->custs[i] = malloc(slots[i]->len)))
			goto nomem;
		memcpy(job->custs[i], slots[i]->key, slots[i]->len);
		job->lens[i] = slots[i]->len;
		job->hashes[i] = slots[i]->hash;
		job->ncusts++;
	}
	if (alert_states_apply_begin(tl->alerts) < 0)
		goto nomem;
	free(slots);
	/* the job takes the pending ids whole; arrivals go to the last job's emptied table */
	job->ids = tl->ids;
	job->nids = job->ids.count;
	tl->ids = tl->spare_ids;
	idset_init(&tl->spare_ids);
	/* the first flush of a burst has no emptied table: the next one is as large (best effort) */
	idset_reserve_empty(&tl->ids, job->ids.cap);
	job->upto_seq = tl->next_seq - 1;
	job->started_us = mono_now_us();
	job->active = 1;
	start_id_sorter(job);
	return 0;
nomem:
	free(slots);
	flush_job_free(job);
	return herr_set(err, HERR_NOMEM, "out of memory");
}

static int alerts_fn(struct wtxn *w, void *ctx, struct herr *err)
{
	(void)err;
	alert_states_apply_slice(ctx, w, FLUSH_SLICE_ALERTS);
	return w->rc ? -1 : 0;
}

/* After the customers, before the ids: the alert states journaled since the last flush. */
static int alerts_slice(struct timeline *tl, struct herr *err)
{
	if (store_write(tl->st, alerts_fn, tl->alerts, err) < 0) {
		alert_states_discard(tl->alerts);
		return -1;
	}
	alert_states_commit(tl->alerts);
	return 0;
}

static int move_cmp(const void *a, const void *b, void *vjob)
{
	const struct deadline_move *x = a, *y = b;
	const struct flush_job *job = vjob;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	int c = str_cmp(job->custs[x->cust], job->lens[x->cust], job->custs[y->cust], job->lens[y->cust]);
	return c ? c : x->put - y->put;
}

/* Writes the next slice; what it wrote leaves memory. */
static int flush_slice(struct timeline *tl, struct herr *err)
{
	struct flush_job *job = &tl->job;
	struct flush_ctx ctx = { .tl = tl, .cust_from = job->next_cust, .id_from = job->next_id,
				 .move_from = job->next_move, .move_to = job->next_move,
				 .moves_before = job->nmoves };

	if (job->next_cust == job->ncusts && alert_states_apply_more(tl->alerts))
		return alerts_slice(tl, err);
	if (job->next_cust == job->ncusts && !job->moves_sorted) {
		/* in key order: del before put, so that a key both left and taken stays */
		if (job->nmoves)
			qsort_r(job->moves, job->nmoves, sizeof(*job->moves), move_cmp, job);
		job->moves_sorted = 1;
	}
	if (job->next_cust == job->ncusts && job->next_move < job->nmoves)
		ctx.move_to = job->next_move + FLUSH_SLICE_DEADLINES < job->nmoves
				      ? job->next_move + FLUSH_SLICE_DEADLINES : job->nmoves;

	ctx.cust_to = ctx.cust_from + FLUSH_SLICE_CUSTOMERS < job->ncusts ? ctx.cust_from + FLUSH_SLICE_CUSTOMERS
									 : job->ncusts;
	ctx.id_to = ctx.id_from;
	/* the alert states go between the customers and the ids */
	/* one after the other: customers, alert states, deadlines, then the ids with the last */
	int ids_now = job->next_cust == job->ncusts && !alert_states_apply_more(tl->alerts) &&
		      ctx.move_to == job->nmoves;
	if (ids_now && !job_id_order(job))
		return herr_set(err, HERR_NOMEM, "out of memory");
	if (ids_now)
		ctx.id_to = ctx.id_from + FLUSH_SLICE_IDS < job->nids ? ctx.id_from + FLUSH_SLICE_IDS : job->nids;
	ctx.last = ids_now && ctx.id_to == job->nids;
	if (store_write(tl->st, flush_fn, &ctx, err) < 0) {
		alert_states_discard(tl->alerts);
		job->nmoves = ctx.moves_before;
		return -1;
	}
	alert_states_commit(tl->alerts);
	type_names_committed(store_type_names(tl->st));
	timeline_publish_flushed(tl, ctx.cust_from, ctx.cust_to);
	for (size_t i = ctx.cust_from; i < ctx.cust_to; i++) {
		write_watch_note(&tl->watch, job->custs[i], job->lens[i]);
		struct dirty *d = strmap_del_hashed(&tl->dirty, job->custs[i], job->lens[i], job->hashes[i]);
		if (!d)
			continue;
		tl->pending_events -= d->n;
		tl->new_customers -= (size_t)d->is_new;
		timeline_dirty_retire(tl, d);
	}
	job->next_cust = ctx.cust_to;
	job->next_id = ctx.id_to;
	job->next_move = ctx.move_to;
	if (ctx.last) {
		tl->stats.flushes++;
		tl->stats.flush_events += job->events;
		tl->stats.flush_us_total += (uint64_t)(mono_now_us() - job->started_us);
		timeline_clean_age(tl);
		idset_empty(&job->ids);
		tl->spare_ids = job->ids;
		idset_init(&job->ids);
		flush_job_free(job);
		/*
		 * Left large by a burst: given back once nothing came in during the
		 * flush. While ingest goes on they fill again, and a table shrunk now
		 * would be grown back by doubling, every page faulted in anew.
		 */
		if (tl->dirty.count == 0) {
			strmap_shrink(&tl->dirty);
			idset_free(&tl->spare_ids);
			if (tl->ids.count == 0)
				idset_free(&tl->ids);
			tl->burst_ended = 1;
		}
		tl->pending_since_ms = tl->dirty.count ? mono_now_ms() : 0;
	}
	return 0;
}

/*
 * Nothing pending: a burst's kept customers leave a stretch per turn, then its
 * memory goes back rather than stay at the peak. Not after every flush:
 * trimming costs page faults later.
 */
static void wind_down(struct timeline *tl)
{
	if (timeline_clean_wind_down(tl) || !tl->burst_ended)
		return;
	tl->burst_ended = 0;
	if (mono_now_ms() - tl->trimmed_ms >= TRIM_INTERVAL_MS) {
		heap_release();
		tl->trimmed_ms = mono_now_ms();
	}
}

static int nothing_pending(const struct timeline *tl)
{
	return tl->dirty.count == 0 && tl->ids.count == 0 && alert_states_pending(tl->alerts) == 0;
}

/* Kept customers still to give back (see wind_down): the loop turns on meanwhile. */
static int winding_down(const struct timeline *tl)
{
	return tl->dying.count || tl->clean.count || tl->clean_old.count || tl->burst_ended;
}

int64_t timeline_flush_due_in(const struct timeline *tl)
{
	if (tl->job.active || tl->dying.count)
		return 0;
	if (nothing_pending(tl))
		return winding_down(tl) ? 0 : -1;
	if (tl->pending_events >= FLUSH_MAX_EVENTS || tl->dirty.count >= FLUSH_MAX_CUSTOMERS ||
	    alert_states_pending(tl->alerts) >= FLUSH_MAX_ALERTS)
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
	timeline_clean_free_some(tl);
	do {
		if (!tl->job.active) {
			if (nothing_pending(tl)) {
				wind_down(tl);
				return 0;
			}
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
