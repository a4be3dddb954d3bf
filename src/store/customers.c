/*
 * The customer listing (`customers`): it walks the stored customers in id
 * order, so what is pending is flushed there first.
 */
#include <lmdb.h>
#include <string.h>

#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "pending.h"

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
		struct cust *c = cust_decode(key.mv_data, key.mv_size, val.mv_data, val.mv_size,
					     store_type_names(tl->st));
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
