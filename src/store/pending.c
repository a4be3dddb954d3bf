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
