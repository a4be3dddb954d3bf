/*
 * The reader's overlay of pending derived state (see include/hearth/overlay.h).
 * Notes are built by the writer (timeline.c, flush.c) and folded in here by
 * the reader; reads merge the overlay with the store through the same code
 * the writer's own reads use (timeline_merge, pending.h).
 */
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "pending.h"

/* Offsets into the note's text: the writer appends, nothing is allocated per customer. */
struct note_cust {
	size_t id_off, len;
	size_t rec_off, rec_len;        /* rec_len 0: no record (FLUSHED, FORGET) */
};

struct note_ev {
	size_t ci;
	struct pending_ev ev;
};

struct overlay_note {
	enum overlay_kind kind;
	uint64_t gen;
	struct note_cust *custs;
	size_t ncusts, custs_cap;
	struct wbuf ids;                /* the customers' ids, one after another */
	struct wbuf recs;               /* their records, one after another */
	size_t recs_named;              /* the end of the last record a customer took */
	struct note_ev *evs;
	size_t nevs, evs_cap;
};

/* One customer as the reader knows it from notes. */
struct entry {
	uint64_t gen;                   /* of the last update folded in */
	void *rec;                      /* the record, as the store encodes it */
	size_t rec_len;
	struct pending_ev *ev;          /* time-index entries not known to be stored */
	size_t n, cap;
	int sorted;
};

struct overlay {
	struct strmap custs;            /* id → struct entry */
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
	free(n);
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *more = realloc(*p, c * size);
	if (!more)
		return -1;
	*p = more;
	*cap = c;
	return 0;
}

struct wbuf *overlay_note_records(struct overlay_note *n)
{
	return &n->recs;
}

ssize_t overlay_note_cust(struct overlay_note *n, const char *id, size_t len, int with_record)
{
	struct note_cust nc = { .id_off = n->ids.len, .len = len };

	if (with_record) {
		nc.rec_off = n->recs_named;
		nc.rec_len = n->recs.len - n->recs_named;
		n->recs_named = n->recs.len;
	}
	wbuf_put(&n->ids, id, len);
	if (n->ids.failed || n->recs.failed || (with_record && nc.rec_len == 0) ||
	    grow((void **)&n->custs, &n->custs_cap, n->ncusts, sizeof(*n->custs)) < 0)
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
	struct note_ev *e;

	if (ci >= n->ncusts || grow((void **)&n->evs, &n->evs_cap, n->nevs, sizeof(*n->evs)) < 0)
		return -1;
	e = &n->evs[n->nevs++];
	e->ci = ci;
	e->ev.ts = ts;
	e->ev.seq = seq;
	if (type_len > HEARTH_NAME_MAX)
		type_len = HEARTH_NAME_MAX;
	memcpy(e->ev.type, type, type_len);
	e->ev.type[type_len] = '\0';
	e->ev.type_len = (uint8_t)type_len;
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

void overlay_free(struct overlay *ov)
{
	if (!ov)
		return;
	overlay_clear(ov);
	free(ov);
}

size_t overlay_count(const struct overlay *ov)
{
	return ov->custs.count;
}

/* The customer's entry, made in the same probe if it has none. */
static struct entry *entry_get(struct overlay *ov, const char *id, size_t len)
{
	void **ref = strmap_ref(&ov->custs, id, len);

	if (!ref)
		return NULL;
	if (!*ref && !(*ref = calloc(1, sizeof(struct entry)))) {
		strmap_del(&ov->custs, id, len);
		return NULL;
	}
	return *ref;
}

/* The record replaces the one held (it is newer), the entries add to them. */
static int apply_update(struct overlay *ov, struct overlay_note *n)
{
	struct entry **map = calloc(n->ncusts ? n->ncusts : 1, sizeof(*map));

	if (!map)
		return -1;
	for (size_t i = 0; i < n->ncusts; i++) {
		struct note_cust *nc = &n->custs[i];
		struct entry *e = entry_get(ov, note_id(n, nc), nc->len);
		void *rec = malloc(nc->rec_len ? nc->rec_len : 1);
		if (!e || !rec) {
			free(rec);
			goto fail;
		}
		memcpy(rec, n->recs.data + nc->rec_off, nc->rec_len);
		free(e->rec);
		e->rec = rec;
		e->rec_len = nc->rec_len;
		e->gen = n->gen;
		map[i] = e;
	}
	for (size_t i = 0; i < n->nevs; i++) {
		struct entry *e = map[n->evs[i].ci];
		if (grow((void **)&e->ev, &e->cap, e->n, sizeof(*e->ev)) < 0)
			goto fail;
		e->ev[e->n++] = n->evs[i].ev;
		e->sorted = 0;
	}
	free(map);
	return 0;
fail:
	free(map);
	return -1;
}

static void apply_drop(struct overlay *ov, const struct overlay_note *n)
{
	for (size_t i = 0; i < n->ncusts; i++) {
		const char *id = note_id(n, &n->custs[i]);
		struct entry *e = strmap_get(&ov->custs, id, n->custs[i].len);
		/* an update newer than what the flush wrote keeps its entry */
		if (e && (n->kind == OVERLAY_FORGET || e->gen <= n->gen))
			entry_free(strmap_del(&ov->custs, id, n->custs[i].len));
	}
	strmap_shrink(&ov->custs); /* the writer's burst is flushed: its size goes too */
}

int overlay_apply(struct overlay *ov, struct overlay_note *n)
{
	int rc = 0;

	if (n->kind == OVERLAY_UPDATE)
		rc = apply_update(ov, n);
	else
		apply_drop(ov, n);
	/*
	 * Half an update would show a customer without some acknowledged events:
	 * better none (the store's older state and a logged error) than a wrong one.
	 */
	if (rc < 0)
		overlay_clear(ov);
	overlay_note_free(n);
	return rc;
}

struct cust *overlay_customer(struct overlay *ov, struct store *st, MDB_txn *txn, const char *id,
			      size_t len, struct herr *err)
{
	struct entry *e = strmap_get(&ov->custs, id, len);
	struct cust *c;
	int found;

	if (e) {
		c = cust_decode(id, len, e->rec, e->rec_len, store_type_names(st));
		if (!c)
			herr_set(err, HERR_NOMEM, "out of memory");
		return c;
	}
	c = timeline_load(st, txn, id, len, &found, err);
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
	struct entry *e = strmap_get(&ov->custs, q->customer, q->customer_len);

	if (e && !e->sorted && e->n) {
		qsort(e->ev, e->n, sizeof(*e->ev), pending_ev_cmp);
		e->sorted = 1;
	}
	return timeline_merge(st, txn, q, e ? e->ev : NULL, e ? e->n : 0, fn, ctx, more, err);
}

/* ---- listing ---------------------------------------------------------------------- */

/* LMDB's default order of keys: bytes, then the shorter first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int slot_cmp(const void *pa, const void *pb)
{
	const struct strmap_slot *a = *(const struct strmap_slot *const *)pa;
	const struct strmap_slot *b = *(const struct strmap_slot *const *)pb;

	return key_cmp(a->key, a->len, b->key, b->len);
}

/* The overlay's customers after `after`, in key order: a list the caller frees. */
static const struct strmap_slot **held_after(struct overlay *ov, const char *after, size_t after_len,
					     size_t *n)
{
	const struct strmap_slot **list = calloc(ov->custs.count ? ov->custs.count : 1, sizeof(*list));
	const struct strmap_slot *slot;

	*n = 0;
	if (!list)
		return NULL;
	for (size_t i = 0; strmap_next(&ov->custs, &i, &slot);)
		if (!after || key_cmp(slot->key, slot->len, after, after_len) > 0)
			list[(*n)++] = slot;
	qsort(list, *n, sizeof(*list), slot_cmp);
	return list;
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
int overlay_customers(struct overlay *ov, struct store *st, MDB_txn *txn, const char *after,
		      size_t after_len, size_t limit, timeline_cust_fn fn, void *ctx, int *more,
		      struct herr *err)
{
	const struct strmap_slot **held;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t nheld, hi = 0, emitted = 0;
	int rc, ret = -1;

	*more = 0;
	if (!(held = held_after(ov, after, after_len, &nheld)))
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
		const struct entry *e = c >= 0 ? held[hi]->value : NULL;
		struct cust *cu;
		if (emitted == limit) {
			*more = 1;
			break;
		}
		cu = e ? cust_decode(held[hi]->key, held[hi]->len, e->rec, e->rec_len, store_type_names(st))
		       : cust_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size, store_type_names(st));
		if (!cu) {
			herr_set(err, HERR_STORE_ERROR, "store, damaged customer record");
			goto out;
		}
		int frc = fn(cu, ctx);
		cust_free(cu);
		if (frc < 0)
			goto out;
		emitted++;
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
