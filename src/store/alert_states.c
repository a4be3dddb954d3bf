/*
 * Alert states: DB_ALERTS (customer 0x00 rule → record) as of the last
 * apply, and the journal since (seq → u8 len | customer | u8 len | rule |
 * u8 gone | record), held in memory per customer so that a lookup costs a
 * hash probe. See hearth/alert_states.h.
 *
 * The journal is two tables used in turn. An apply in slices begins by
 * sending new entries to the other table; its slices write the states of
 * what the first table holds, in key order, each slice its own transaction;
 * its end drops the first table whole (LMDB frees its pages, no per-entry
 * delete) and records how far DB_ALERTS reflects the journal.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/strmap.h"
#include "store_impl.h"

#define FLUSHED_META "alerts_flushed"
#define FORGET_SLOTS 512                /* slots of the customers' map looked at per catch-up slice */

struct entry {
	char rule[HEARTH_NAME_MAX + 1];
	uint64_t seq;
	int gone;
	size_t len;
	uint8_t *rec;
};

struct cust_states {
	struct entry *e;
	size_t n, cap;
};

struct staged {
	char id[HEARTH_ID_MAX];
	size_t idlen;
	struct entry e;
};

/* An apply in slices: the customers the first table names, in key order. */
struct apply_job {
	int active;
	int table;                      /* the journal table it empties */
	uint64_t upto;                  /* the last seq in that table */
	char **ids;
	size_t *lens, n, next, slice_to;
};

struct alert_states {
	struct strmap custs;            /* customer id → struct cust_states */
	size_t entries;
	uint64_t flushed;               /* journal seqs up to this are in DB_ALERTS: entries up to it are stale */
	int forgetting;                 /* stale entries being let go of, a slice at a time ... */
	size_t forget_pos;              /* ... from here in the map */
	uint64_t last;                  /* the last journal seq in memory */
	int table;                      /* the journal table new entries go to: 0 or 1 */
	struct staged *stage;           /* put in the transaction under way */
	size_t nstage, stage_cap;
	int applying;                   /* the transaction under way ends an apply ... */
	uint64_t applied_upto;          /* ... up to this seq */
	struct apply_job job;
	uint64_t attempt;               /* the store_write try the stage belongs to */
	/* customer ids in key order, for walks; rebuilt when stale */
	const struct strmap_slot **order;
	size_t norder;
	int order_stale;
	struct write_watch *watch;
};

/* LMDB's order of keys: bytes, then the shorter first. */
static int key_at_most(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c < 0 || (c == 0 && alen <= blen);
}

void write_watch_note(struct write_watch *ww, const char *id, size_t len)
{
	if (!ww || !ww->ids || ww->lost || (ww->floor_len && key_at_most(id, len, ww->floor, ww->floor_len)))
		return;
	if (strmap_put(ww->ids, id, len, (void *)(uintptr_t)ww->gen) < 0)
		ww->lost = 1;
}

void alert_states_watch(struct alert_states *as, struct write_watch *ww)
{
	as->watch = ww;
}

struct alert_states *alert_states_new(void)
{
	struct alert_states *as = calloc(1, sizeof(*as));

	if (as) {
		strmap_init(&as->custs);
		as->order_stale = 1;
	}
	return as;
}

static void cust_states_free(struct cust_states *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		free(cs->e[i].rec);
	free(cs->e);
	free(cs);
}

static void forget_all(struct alert_states *as)
{
	const struct strmap_slot *slot;

	for (size_t i = 0; strmap_next(&as->custs, &i, &slot);)
		cust_states_free(slot->value);
	strmap_clear(&as->custs);
	strmap_init(&as->custs);
	as->entries = 0;
	as->order_stale = 1;
	as->forgetting = 0;
}

struct forget {
	struct alert_states *as;
	uint64_t seq;
};

/* Drops a customer's entries up to seq; keeps the customer while any is left. */
static int keep_newer(const struct strmap_slot *slot, void *ctx)
{
	const struct forget *f = ctx;
	struct cust_states *cs = slot->value;
	size_t n = 0;

	for (size_t j = 0; j < cs->n; j++) {
		if (cs->e[j].seq > f->seq) {
			cs->e[n++] = cs->e[j];
			continue;
		}
		free(cs->e[j].rec);
		f->as->entries--;
	}
	cs->n = n;
	if (n == 0)
		cust_states_free(cs);
	return n != 0;
}

/* Forgets the entries DB_ALERTS now reflects: those up to seq. In place: no key is copied. */
static void forget_upto(struct alert_states *as, uint64_t seq)
{
	struct forget f = { as, seq };

	if (as->last <= seq) {
		forget_all(as);
		return;
	}
	strmap_filter(&as->custs, keep_newer, &f);
	as->order_stale = 1;
}

static enum store_db journal_table(int table)
{
	return table ? DB_ALERT_LOG2 : DB_ALERT_LOG;
}

static void apply_job_free(struct apply_job *job)
{
	for (size_t i = 0; i < job->n; i++)
		free(job->ids[i]);
	free(job->ids);
	free(job->lens);
	memset(job, 0, sizeof(*job));
}

void alert_states_discard(struct alert_states *as)
{
	for (size_t i = 0; i < as->nstage; i++)
		free(as->stage[i].e.rec);
	as->nstage = 0;
	as->applying = 0;
}

void alert_states_free(struct alert_states *as)
{
	if (!as)
		return;
	alert_states_discard(as);
	forget_all(as);
	strmap_clear(&as->custs);
	apply_job_free(&as->job);
	free(as->stage);
	free(as->order);
	free(as);
}

size_t alert_states_pending(const struct alert_states *as)
{
	return as->entries;
}

/* Takes e (its record included); -1 out of memory (e is freed). */
static int remember(struct alert_states *as, const char *id, size_t idlen, struct entry *e)
{
	struct cust_states *cs = strmap_get(&as->custs, id, idlen);

	if (!cs) {
		if (!(cs = calloc(1, sizeof(*cs))) || strmap_put(&as->custs, id, idlen, cs) < 0) {
			free(cs);
			goto nomem;
		}
		as->order_stale = 1;
	}
	for (size_t i = 0; i < cs->n; i++) {
		if (strcmp(cs->e[i].rule, e->rule) != 0)
			continue;
		/* a reader reads the two tables one after the other: the newer entry wins */
		if (e->seq < cs->e[i].seq) {
			free(e->rec);
			goto out;
		}
		free(cs->e[i].rec);
		cs->e[i] = *e;
		goto out;
	}
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 4;
		struct entry *more = realloc(cs->e, cap * sizeof(*more));
		if (!more)
			goto nomem;
		cs->e = more;
		cs->cap = cap;
	}
	cs->e[cs->n++] = *e;
	as->entries++;
out:
	return 0;
nomem:
	free(e->rec);
	return -1;
}

/* ---- the journal's records ------------------------------------------------- */

static void journal_record(struct wbuf *b, const char *id, size_t idlen, const struct entry *e)
{
	wbuf_str8(b, id, idlen);
	wbuf_str8(b, e->rule, strlen(e->rule));
	wbuf_u8(b, (uint8_t)e->gone);
	if (!e->gone)
		wbuf_put(b, e->rec, e->len);
}

static int journal_parse(const MDB_val *val, const char **id, size_t *idlen, struct entry *e)
{
	struct rbuf r;
	const char *rule;
	size_t rlen;

	rbuf_init(&r, val->mv_data, val->mv_size);
	*id = rbuf_str8(&r, idlen);
	rule = rbuf_str8(&r, &rlen);
	e->gone = rbuf_u8(&r);
	if (r.failed || !*id || *idlen == 0 || *idlen > HEARTH_ID_MAX || !rule || rlen == 0 ||
	    rlen > HEARTH_NAME_MAX)
		return -1;
	memcpy(e->rule, rule, rlen);
	e->rule[rlen] = '\0';
	e->len = e->gone ? 0 : (size_t)(r.end - r.p);
	e->rec = NULL;
	if (e->len && !(e->rec = malloc(e->len)))
		return -1;
	if (e->len)
		memcpy(e->rec, rbuf_bytes(&r, e->len), e->len);
	return 0;
}

/* ---- the writer ------------------------------------------------------------ */

static void apply_entry(struct wtxn *w, const char *id, size_t idlen, const struct entry *e);

/* A store_write tried again starts from nothing: so does its stage. */
static void stage_for(struct alert_states *as, const struct wtxn *w)
{
	if (as->attempt != w->attempt) {
		alert_states_discard(as);
		as->attempt = w->attempt;
	}
}

/* Has the journal a state of (id, rule)? Then only a newer entry may replace it. */
static int journaled(const struct alert_states *as, const char *id, size_t len, const char *rule)
{
	const struct cust_states *cs = strmap_get(&as->custs, id, len);

	for (size_t i = 0; cs && i < cs->n; i++)
		if (strcmp(cs->e[i].rule, rule) == 0)
			return 1;
	return 0;
}

void alert_states_put_in_place(struct alert_states *as, struct wtxn *w, const char *id, size_t len,
			       const char *rule, const void *rec, size_t rlen)
{
	struct entry e = { .gone = rec == NULL, .len = rlen, .rec = (uint8_t *)rec };
	size_t rule_len = strlen(rule);

	write_watch_note(as->watch, id, len);
	if (len == 0 || len > HEARTH_ID_MAX || rule_len > HEARTH_NAME_MAX) {
		wtxn_fail(w, EINVAL, "alert states");
		return;
	}
	if (journaled(as, id, len, rule)) {
		alert_states_put(as, w, id, len, rule, rec, rlen);
		return;
	}
	memcpy(e.rule, rule, rule_len + 1);
	apply_entry(w, id, len, &e);
}

void alert_states_put(struct alert_states *as, struct wtxn *w, const char *id, size_t len,
		      const char *rule, const void *rec, size_t rlen)
{
	struct staged *s;
	uint8_t key[8];
	struct wbuf b;

	if (w->rc)
		return;
	write_watch_note(as->watch, id, len);
	stage_for(as, w);
	if (len == 0 || len > HEARTH_ID_MAX || strlen(rule) > HEARTH_NAME_MAX) {
		wtxn_fail(w, EINVAL, "alert journal");
		return;
	}
	if (as->nstage == as->stage_cap) {
		size_t cap = as->stage_cap ? as->stage_cap * 2 : 64;
		struct staged *more = realloc(as->stage, cap * sizeof(*more));
		if (!more) {
			wtxn_fail(w, ENOMEM, "alert journal");
			return;
		}
		as->stage = more;
		as->stage_cap = cap;
	}
	s = &as->stage[as->nstage];
	memset(s, 0, sizeof(*s));
	memcpy(s->id, id, len);
	s->idlen = len;
	snprintf(s->e.rule, sizeof(s->e.rule), "%s", rule);
	s->e.seq = as->last + 1 + as->nstage;
	s->e.gone = rec == NULL;
	if (rec && !(s->e.rec = malloc(rlen ? rlen : 1))) {
		wtxn_fail(w, ENOMEM, "alert journal");
		return;
	}
	if (rec) {
		memcpy(s->e.rec, rec, rlen);
		s->e.len = rlen;
	}
	as->nstage++;
	wbuf_init(&b);
	journal_record(&b, id, len, &s->e);
	be64_put(key, s->e.seq);
	if (b.failed)
		wtxn_fail(w, ENOMEM, "alert journal");
	else
		wtxn_put(w, journal_table(as->table), key, 8, b.data, b.len, MDB_APPEND);
	wbuf_free(&b);
}

static void apply_entry(struct wtxn *w, const char *id, size_t idlen, const struct entry *e)
{
	uint8_t key[STORE_ALERT_KEY_MAX];
	size_t klen = store_alert_key(key, id, idlen, e->rule);

	if (e->gone)
		wtxn_del(w, DB_ALERTS, key, klen);
	else
		wtxn_put(w, DB_ALERTS, key, klen, e->rec, e->len, 0);
}

static int sort_customers(struct alert_states *as);

void alert_states_apply(struct alert_states *as, struct wtxn *w)
{
	uint64_t upto;
	int rc;

	if (w->rc)
		return;
	stage_for(as, w);
	upto = as->last + as->nstage;
	if (upto == as->flushed)
		return;
	/* sorted, so that the writes go page after page */
	if (sort_customers(as) < 0) {
		wtxn_fail(w, ENOMEM, "applying alert states");
		return;
	}
	for (size_t i = 0; i < as->norder; i++) {
		const struct cust_states *cs = as->order[i]->value;
		for (size_t j = 0; j < cs->n; j++)
			apply_entry(w, as->order[i]->key, as->order[i]->len, &cs->e[j]);
	}
	for (size_t i = 0; i < as->nstage; i++)
		apply_entry(w, as->stage[i].id, as->stage[i].idlen, &as->stage[i].e);
	if (w->rc)
		return;
	/* everything journaled is now in DB_ALERTS: the journal goes whole, pages and all */
	if ((rc = mdb_drop(w->txn, store_dbi(w->st, DB_ALERT_LOG), 0)) ||
	    (rc = mdb_drop(w->txn, store_dbi(w->st, DB_ALERT_LOG2), 0))) {
		wtxn_fail(w, rc, "emptying the alert journal");
		return;
	}
	wtxn_meta_u64(w, FLUSHED_META, upto);
	as->applying = 1;
	as->applied_upto = upto;
}

/* ---- an apply in slices ------------------------------------------------------ */

int alert_states_apply_begin(struct alert_states *as)
{
	struct apply_job *job = &as->job;

	if (job->active || as->last == as->flushed)
		return 0;
	if (sort_customers(as) < 0)
		return -1;
	job->ids = calloc(as->norder + 1, sizeof(*job->ids));
	job->lens = calloc(as->norder + 1, sizeof(*job->lens));
	if (!job->ids || !job->lens)
		goto nomem;
	/* copies: the map's slots move as it grows */
	for (size_t i = 0; i < as->norder; i++, job->n++) {
		if (!(job->ids[i] = malloc(as->order[i]->len)))
			goto nomem;
		memcpy(job->ids[i], as->order[i]->key, as->order[i]->len);
		job->lens[i] = as->order[i]->len;
	}
	job->active = 1;
	job->table = as->table;
	job->upto = as->last;
	as->table ^= 1; /* empty since the last apply ended */
	return 0;
nomem:
	apply_job_free(job);
	return -1;
}

int alert_states_apply_more(const struct alert_states *as)
{
	return as->job.active && as->job.next < as->job.n;
}

void alert_states_apply_slice(struct alert_states *as, struct wtxn *w, size_t max)
{
	struct apply_job *job = &as->job;
	size_t written = 0, i;

	if (w->rc)
		return;
	stage_for(as, w);
	/* each customer's newest state: it may have changed since the apply began */
	for (i = job->next; i < job->n && written < max; i++) {
		const struct cust_states *cs = strmap_get(&as->custs, job->ids[i], job->lens[i]);
		for (size_t j = 0; cs && j < cs->n; j++, written++)
			apply_entry(w, job->ids[i], job->lens[i], &cs->e[j]);
	}
	job->slice_to = i;
}

void alert_states_apply_end(struct alert_states *as, struct wtxn *w)
{
	struct apply_job *job = &as->job;
	int rc;

	if (w->rc || !job->active)
		return;
	stage_for(as, w);
	/* every entry of that table is in DB_ALERTS, in its state then or a newer one */
	if ((rc = mdb_drop(w->txn, store_dbi(w->st, journal_table(job->table)), 0))) {
		wtxn_fail(w, rc, "emptying the alert journal");
		return;
	}
	wtxn_meta_u64(w, FLUSHED_META, job->upto);
	as->applying = 1;
	as->applied_upto = job->upto;
}

void alert_states_commit(struct alert_states *as)
{
	if (as->job.active)
		as->job.next = as->job.slice_to > as->job.next ? as->job.slice_to : as->job.next;
	if (as->applying) {
		/* newer entries stay: DB_ALERTS may hold an older state of theirs */
		forget_upto(as, as->applied_upto);
		if (as->flushed < as->applied_upto)
			as->flushed = as->applied_upto;
		if (as->last < as->applied_upto)
			as->last = as->applied_upto;
		if (!as->job.active || as->job.upto <= as->applied_upto)
			apply_job_free(&as->job);
		if (as->last == as->applied_upto)
			as->table = 0; /* both tables are empty */
	}
	for (size_t i = 0; i < as->nstage; i++) {
		struct staged *s = &as->stage[i];
		if (s->e.seq > as->flushed) {
			if (remember(as, s->id, s->idlen, &s->e) == 0 && s->e.seq > as->last)
				as->last = s->e.seq;
		} else
			free(s->e.rec);
		s->e.rec = NULL;
	}
	as->nstage = 0;
	as->applying = 0;
}

/* ---- readers ---------------------------------------------------------------- */

/*
 * The journal's two tables as one stream in seq order, from a seq on: each
 * holds a run of seqs, one run after the other, so the stream takes the
 * smaller of the two keys in hand.
 */
struct journal_walk {
	MDB_cursor *cur[2];
	MDB_val key[2], val[2];
	int rc[2];
};

static int journal_open(struct journal_walk *jw, struct store *st, MDB_txn *txn, uint64_t from)
{
	static const enum store_db dbs[2] = { DB_ALERT_LOG, DB_ALERT_LOG2 };
	uint8_t start[8];
	int rc;

	memset(jw, 0, sizeof(*jw));
	be64_put(start, from);
	for (int t = 0; t < 2; t++) {
		if ((rc = mdb_cursor_open(txn, store_dbi(st, dbs[t]), &jw->cur[t])))
			return rc;
		jw->key[t] = (MDB_val){ 8, start };
		jw->rc[t] = mdb_cursor_get(jw->cur[t], &jw->key[t], &jw->val[t], MDB_SET_RANGE);
		if (jw->rc[t] && jw->rc[t] != MDB_NOTFOUND)
			return jw->rc[t];
	}
	return 0;
}

static void journal_close(struct journal_walk *jw)
{
	for (int t = 0; t < 2; t++)
		if (jw->cur[t])
			mdb_cursor_close(jw->cur[t]);
}

/* The next entry: its seq and value; MDB_NOTFOUND past the end. */
static int journal_next(struct journal_walk *jw, uint64_t *seq, MDB_val *val)
{
	for (;;) {
		int t = jw->rc[0] ? 1 : jw->rc[1] ? 0 :
			memcmp(jw->key[0].mv_data, jw->key[1].mv_data, 8) <= 0 ? 0 : 1;
		if (jw->rc[t])
			return jw->rc[t];
		int ok = jw->key[t].mv_size == 8;
		if (ok) {
			*seq = be64_get(jw->key[t].mv_data);
			*val = jw->val[t];
		}
		jw->rc[t] = mdb_cursor_get(jw->cur[t], &jw->key[t], &jw->val[t], MDB_NEXT);
		if (jw->rc[t] && jw->rc[t] != MDB_NOTFOUND)
			return jw->rc[t];
		if (ok)
			return 0;
	}
}

/*
 * Journal entries past `from`: up to max of them into memory, or with one_id
 * only that customer's (all of them, as->last left where it is: an entry
 * read out of turn is read again later, and the newer seq wins either way).
 */
static int read_journal(struct alert_states *as, struct store *st, MDB_txn *txn, uint64_t from, size_t max,
			const char *one_id, size_t one_len, int *more)
{
	struct journal_walk jw;
	MDB_val val;
	uint64_t seq;
	size_t n = 0;
	int rc = journal_open(&jw, st, txn, from);

	*more = 0;
	while (rc == 0 && (rc = journal_next(&jw, &seq, &val)) == 0) {
		struct entry e = { .seq = seq };
		const char *id;
		size_t idlen;
		if (n == max) {
			*more = 1;
			break;
		}
		n++;
		/* the id leads the value: others' entries are passed over unparsed */
		if (one_id && (val.mv_size < 1 + one_len || ((const uint8_t *)val.mv_data)[0] != one_len ||
			       memcmp((const uint8_t *)val.mv_data + 1, one_id, one_len) != 0))
			continue;
		if (journal_parse(&val, &id, &idlen, &e) < 0) {
			free(e.rec); /* damaged: DB_ALERTS keeps the older state */
		} else if (remember(as, id, idlen, &e) < 0) {
			rc = ENOMEM;
			break;
		}
		if (!one_id && seq > as->last)
			as->last = seq;
	}
	journal_close(&jw);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Flushes since the last read: the journal was applied up to there, what is
 * left of it is newer. The entries up to it are stale from now on (lookups
 * pass them over) and are let go of in slices (forget_some): all at once, a
 * filter of the whole map, took 5.4 ms of a `customer` read at 57,064 customers.
 */
static void catch_up_flushed(struct alert_states *as, struct store *st, MDB_txn *txn)
{
	uint64_t flushed = store_meta_u64(txn, st, FLUSHED_META);

	if (flushed > as->flushed) {
		as->flushed = flushed;
		if (as->last < flushed)
			as->last = flushed;
		as->forgetting = as->custs.count != 0;
		as->forget_pos = 0;
	}
}

/* Up to slots slots' stale entries let go of: 1 while some may be left. */
static int forget_some(struct alert_states *as, size_t slots)
{
	struct forget f = { as, as->flushed };

	if (!as->forgetting)
		return 0;
	as->forgetting = strmap_filter_some(&as->custs, keep_newer, &f, &as->forget_pos, slots);
	as->order_stale = 1;
	if (!as->forgetting)
		strmap_shrink(&as->custs);
	return as->forgetting;
}

int alert_states_catch_up(struct alert_states *as, struct store *st, MDB_txn *txn, size_t max,
			  struct herr *err)
{
	int rc, more;

	catch_up_flushed(as, st, txn);
	if ((rc = read_journal(as, st, txn, as->last + 1, max, NULL, 0, &more)))
		return store_error(err, rc, "reading the alert journal");
	return forget_some(as, max == SIZE_MAX ? SIZE_MAX : FORGET_SLOTS) || more;
}

int alert_states_sync(struct alert_states *as, struct store *st, MDB_txn *txn, struct herr *err)
{
	return alert_states_catch_up(as, st, txn, SIZE_MAX, err) < 0 ? -1 : 0;
}

int alert_states_sync_customer(struct alert_states *as, struct store *st, MDB_txn *txn, const char *id,
			       size_t len, struct herr *err)
{
	int rc, more;

	catch_up_flushed(as, st, txn);
	if ((rc = read_journal(as, st, txn, as->last + 1, SIZE_MAX, id, len, &more)))
		return store_error(err, rc, "reading the alert journal");
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->rule, ((const struct entry *)b)->rule);
}

/*
 * A cursor over DB_ALERTS for reads of one customer after another. It knows
 * where it stopped: at the first key past the last customer's states (or at
 * the end), with no key between that customer's prefix and it. The next
 * customer in key order then needs no seek from the root: its states are at
 * the cursor, a few steps on, or not there at all; most customers of a walk
 * have none.
 */
#define ALERT_CURSOR_STEPS 8

struct alert_cursor {
	MDB_cursor *cur;
	int positioned;                 /* the cursor is where `last` says */
	int at_end;                     /* ... and there is no key after it */
	uint8_t last[HEARTH_ID_MAX + 1];        /* the last customer read, 0x00: its prefix */
	size_t last_len;
};

struct alert_cursor *alert_cursor_open(struct store *st, MDB_txn *txn, struct herr *err)
{
	struct alert_cursor *ac = calloc(1, sizeof(*ac));
	int rc;

	if (!ac) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	if ((rc = mdb_cursor_open(txn, store_dbi(st, DB_ALERTS), &ac->cur))) {
		store_error(err, rc, "reading alert states");
		free(ac);
		return NULL;
	}
	return ac;
}

void alert_cursor_close(struct alert_cursor *ac)
{
	if (!ac)
		return;
	mdb_cursor_close(ac->cur);
	free(ac);
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/* The first key at or after prefix (len bytes) into key/val: 0, or MDB_NOTFOUND. */
static int cursor_seek(struct alert_cursor *ac, const uint8_t *prefix, size_t len, MDB_val *key, MDB_val *val)
{
	int rc;

	if (ac->positioned && key_cmp((const char *)ac->last, ac->last_len, (const char *)prefix, len) < 0) {
		if (ac->at_end)
			return MDB_NOTFOUND;
		rc = mdb_cursor_get(ac->cur, key, val, MDB_GET_CURRENT);
		for (int step = 0; rc == 0 && step < ALERT_CURSOR_STEPS; step++) {
			if (key_cmp(key->mv_data, key->mv_size, (const char *)prefix, len) >= 0)
				return 0;
			rc = mdb_cursor_get(ac->cur, key, val, MDB_NEXT);
		}
		if (rc == MDB_NOTFOUND)
			return rc;
	}
	key->mv_size = len;
	key->mv_data = (void *)prefix;
	return mdb_cursor_get(ac->cur, key, val, MDB_SET_RANGE);
}

/*
 * An entry DB_ALERTS does not reflect yet. A stale one (a reader's, kept
 * until forget_some gets to it) may be older than what DB_ALERTS holds now: a
 * state written in place after the writer let go of its own entry.
 */
static int fresh(const struct alert_states *as, const struct entry *e)
{
	return e->seq > as->flushed;
}

/* fn over the customer's merged states; stops when fn != 0, which it returns. */
static int merge_customer(struct alert_states *as, struct alert_cursor *ac, const char *id, size_t len,
			  alert_walk_fn fn, void *ctx)
{
	struct cust_states *cs = strmap_get(&as->custs, id, len);
	uint8_t prefix[HEARTH_ID_MAX + 1];
	MDB_val key, val;
	size_t j = 0;
	int rc, stop = 0;

	if (len > HEARTH_ID_MAX)
		return 0;
	if (cs && cs->n > 1)
		qsort(cs->e, cs->n, sizeof(*cs->e), entry_cmp);
	memcpy(prefix, id, len);
	prefix[len] = 0;
	for (rc = cursor_seek(ac, prefix, len + 1, &key, &val);
	     !stop && rc == 0 && key.mv_size > len + 1 && memcmp(key.mv_data, prefix, len + 1) == 0;
	     rc = mdb_cursor_get(ac->cur, &key, &val, MDB_NEXT)) {
		char rule[HEARTH_NAME_MAX + 1];
		size_t rlen = key.mv_size - len - 1;
		int c = 1;
		if (rlen > HEARTH_NAME_MAX)
			continue;
		memcpy(rule, (const char *)key.mv_data + len + 1, rlen);
		rule[rlen] = '\0';
		/* the journal's states of rules before this one, then this one's newer state */
		int newer = 0;
		for (; cs && j < cs->n && !stop && (c = strcmp(cs->e[j].rule, rule)) <= 0; j++) {
			if (!fresh(as, &cs->e[j]))
				continue;
			newer = c == 0;
			if (!cs->e[j].gone)
				stop = fn(id, len, cs->e[j].rule, cs->e[j].rec, cs->e[j].len, ctx);
		}
		if (!stop && !newer)
			stop = fn(id, len, rule, val.mv_data, val.mv_size, ctx);
	}
	/* stopped early, or failed: where the cursor is says nothing about the keys before it */
	ac->positioned = !stop && (rc == 0 || rc == MDB_NOTFOUND);
	ac->at_end = rc == MDB_NOTFOUND;
	memcpy(ac->last, prefix, len + 1);
	ac->last_len = len + 1;
	for (; cs && j < cs->n && !stop; j++)
		if (fresh(as, &cs->e[j]) && !cs->e[j].gone)
			stop = fn(id, len, cs->e[j].rule, cs->e[j].rec, cs->e[j].len, ctx);
	return stop;
}

struct customer_ctx {
	alert_state_fn fn;
	void *ctx;
};

static int customer_state(const char *id, size_t idlen, const char *rule, const void *rec, size_t len,
			  void *vctx)
{
	struct customer_ctx *c = vctx;

	(void)id;
	(void)idlen;
	c->fn(rule, rec, len, c->ctx);
	return 0;
}

void alert_states_customer_at(struct alert_states *as, struct alert_cursor *ac, const char *id, size_t len,
			      alert_state_fn fn, void *ctx)
{
	struct customer_ctx c = { fn, ctx };

	merge_customer(as, ac, id, len, customer_state, &c);
}

void alert_states_prefetch(const struct alert_states *as, const char *id, size_t len)
{
	strmap_prefetch(&as->custs, strmap_hash(id, len));
}

void alert_states_prefetch_entry(const struct alert_states *as, const char *id, size_t len)
{
	strmap_prefetch_entry(&as->custs, strmap_hash(id, len));
}

void alert_states_customer(struct alert_states *as, struct store *st, MDB_txn *txn, const char *id,
			   size_t len, alert_state_fn fn, void *ctx)
{
	struct herr err;
	struct alert_cursor *ac = alert_cursor_open(st, txn, &err);

	if (!ac)
		return;
	alert_states_customer_at(as, ac, id, len, fn, ctx);
	alert_cursor_close(ac);
}

static int sort_customers(struct alert_states *as)
{
	size_t n;

	if (!as->order_stale)
		return 0;
	const struct strmap_slot **order = strmap_sorted(&as->custs, NULL, 0, &n);
	if (!order)
		return -1;
	free(as->order);
	as->order = order;
	as->norder = n;
	as->order_stale = 0;
	return 0;
}

/* The first stored customer at or after (id, len), or after it when `past`; 0 found. */
static int stored_customer(MDB_cursor *cur, const char *id, size_t len, int past, char *out, size_t *olen)
{
	uint8_t seek[HEARTH_ID_MAX + 1];
	MDB_val key = { len + (past ? 1 : 0), seek }, val;
	const char *zero;
	int rc;

	memcpy(seek, id, len);
	if (past)
		seek[len] = 1; /* keys are customer 0x00 rule: 0x01 is past all of them */
	rc = len || past ? mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE)
			 : mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		zero = memchr(key.mv_data, 0, key.mv_size);
		if (zero && (size_t)(zero - (const char *)key.mv_data) <= HEARTH_ID_MAX) {
			*olen = (size_t)(zero - (const char *)key.mv_data);
			memcpy(out, key.mv_data, *olen);
			return 0;
		}
	}
	return rc;
}

int alert_states_walk(struct alert_states *as, struct store *st, MDB_txn *txn, const char *from,
		      size_t flen, alert_walk_fn fn, void *ctx, struct herr *err)
{
	char next[HEARTH_ID_MAX];
	size_t nlen = 0, m = 0;
	struct alert_cursor *ac;
	int have, stop = 0;

	if (sort_customers(as) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	if (!(ac = alert_cursor_open(st, txn, err)))
		return -1;
	if (from && flen > HEARTH_ID_MAX)
		flen = HEARTH_ID_MAX;
	while (m < as->norder && from && key_cmp(as->order[m]->key, as->order[m]->len, from, flen) < 0)
		m++;
	have = stored_customer(ac->cur, from ? from : "", from ? flen : 0, 0, next, &nlen) == 0;
	while (!stop && (have || m < as->norder)) {
		const char *id;
		size_t len;
		int c = !have ? 1 : m == as->norder ? -1
			: key_cmp(next, nlen, as->order[m]->key, as->order[m]->len);
		if (c <= 0) {
			id = next;
			len = nlen;
			if (c == 0)
				m++;
		} else {
			id = as->order[m]->key;
			len = as->order[m]->len;
			m++;
		}
		char cur_id[HEARTH_ID_MAX];
		memcpy(cur_id, id, len);
		ac->positioned = 0; /* stored_customer moved it */
		stop = merge_customer(as, ac, cur_id, len, fn, ctx);
		if (c <= 0)
			have = stored_customer(ac->cur, cur_id, len, 1, next, &nlen) == 0;
	}
	alert_cursor_close(ac);
	return 0;
}

/* ---- start ------------------------------------------------------------------ */

static int recover_fn(struct wtxn *w, void *ctx, struct herr *err)
{
	(void)err;
	alert_states_apply(ctx, w);
	return w->rc ? -1 : 0;
}

int alert_states_recover(struct alert_states *as, struct store *st, struct herr *err)
{
	MDB_txn *txn;
	int rc;

	if (store_read_begin(st, &txn, err) < 0)
		return -1;
	rc = alert_states_sync(as, st, txn, err);
	store_read_end(txn);
	if (rc < 0 || store_is_read_only(st) || as->entries == 0)
		return rc;
	if (store_write(st, recover_fn, as, err) < 0) {
		alert_states_discard(as);
		if (err->code != HERR_STORE_FULL)
			return -1;
		/* A full store must still start: the journal stays, applied by a flush that fits. */
		log_warning("store, cannot apply the alert journal (%s); it is kept until there is room",
			    err->msg);
		herr_clear(err);
		return 0;
	}
	alert_states_commit(as);
	return 0;
}
