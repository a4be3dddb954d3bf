/*
 * Helpers of the timeline's pending state (pending.h): the deadline index
 * key, the order of pending events, and a customer loaded from the store.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "pending.h"

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

/* As many as a flush takes at most: a burst's working set, not the store. */
#define CLEAN_MAX 100000
/* Slots of dying freed per loop turn: about 2,000 customers, well under a millisecond. */
#define DYING_SLOTS 4096

void timeline_dirty_retire(struct timeline *tl, struct dirty *d)
{
	struct cust *c = d->c;

	/*
	 * Its memo (engine/step.c) stays good: a customer's alerts change only
	 * through the writer's held copy, and taking it back from here holds it.
	 */
	if (tl->clean.count + tl->clean_old.count < CLEAN_MAX) {
		if (strmap_put(&tl->clean, c->id, c->id_len, c) == 0)
			d->c = NULL;
	}
	timeline_dirty_free(d);
}

struct cust *timeline_clean_take(struct timeline *tl, const char *id, size_t len, uint64_t hash)
{
	struct cust *c = tl->clean.count ? strmap_del_hashed(&tl->clean, id, len, hash) : NULL;

	if (!c && tl->clean_old.count)
		c = strmap_del_hashed(&tl->clean_old, id, len, hash);
	return c;
}

static int free_kept(const struct strmap_slot *slot, void *ctx)
{
	(void)ctx;
	cust_free(slot->value);
	return 0;
}

static void clean_free(struct strmap *m)
{
	strmap_filter(m, free_kept, NULL);
	strmap_clear(m);
}

int timeline_clean_free_some(struct timeline *tl)
{
	if (!tl->dying.count)
		return 0;
	if (strmap_filter_some(&tl->dying, free_kept, NULL, &tl->dying_pos, DYING_SLOTS))
		return 1;
	strmap_clear(&tl->dying);
	tl->dying_pos = 0;
	return 0;
}

void timeline_clean_age(struct timeline *tl)
{
	clean_free(&tl->dying); /* what the last one left, seldom any: a flush takes many turns */
	tl->dying = tl->clean_old;
	tl->dying_pos = 0;
	tl->clean_old = tl->clean;
	strmap_init(&tl->clean);
}

int timeline_clean_wind_down(struct timeline *tl)
{
	if (timeline_clean_free_some(tl))
		return 1;
	if (tl->clean.count || tl->clean_old.count) {
		timeline_clean_age(tl);
		return 1;
	}
	strmap_clear(&tl->clean);
	strmap_clear(&tl->clean_old);
	return 0;
}

void timeline_clean_drop(struct timeline *tl)
{
	clean_free(&tl->clean);
	clean_free(&tl->clean_old);
	clean_free(&tl->dying);
	tl->dying_pos = 0;
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
	c = cust_decode(id, len, val.mv_data, val.mv_size, store_type_names(st));
	if (!c)
		herr_set(err, HERR_STORE_ERROR, "store, customer record of '%.*s' is damaged",
			 (int)len, id);
	return c;
}
