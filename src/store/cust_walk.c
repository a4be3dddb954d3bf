/* Walking every customer in steps; see include/hearth/cust_walk.h. */
#include <string.h>

#include "hearth/cust_walk.h"
#include "hearth/server.h"
#include "hearth/store.h"

int cust_walk_init(struct cust_walk *w, struct server *srv, struct herr *err)
{
	memset(w, 0, sizeof(*w));
	w->srv = srv;
	strmap_init(&w->fresh_set);
	if (timeline_pending_new(srv->tl, &w->fresh) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i < w->fresh.n; i++)
		if (strmap_put(&w->fresh_set, w->fresh.ids[i], w->fresh.lens[i], w) < 0)
			return herr_set(err, HERR_NOMEM, "out of memory");
	return 0;
}

void cust_walk_free(struct cust_walk *w)
{
	id_list_free(&w->fresh);
	strmap_clear(&w->fresh_set);
}

static int fresh_step(struct cust_walk *w, MDB_txn *txn, size_t n, cust_walk_fn fn, void *ctx,
		      struct herr *err)
{
	for (size_t done = 0; w->next_fresh < w->fresh.n && done < n; w->next_fresh++, done++)
		if (fn(ctx, txn, w->fresh.ids[w->next_fresh], w->fresh.lens[w->next_fresh], err) < 0)
			return -1;
	return 1;
}

static int stored_step(struct cust_walk *w, MDB_txn *txn, size_t n, cust_walk_fn fn, void *ctx,
		       struct herr *err)
{
	struct store *st = w->srv->st;
	MDB_cursor *cur;
	MDB_val key = { w->after_len, w->after }, val;
	size_t done = 0;
	int rc, ret = -1;

	if ((rc = mdb_cursor_open(txn, store_dbi(st, DB_CUSTOMERS), &cur)))
		return store_error(err, rc, "walking the customers");
	rc = w->started ? mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE)
			: mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	if (rc == 0 && w->started && key.mv_size == w->after_len &&
	    memcmp(key.mv_data, w->after, key.mv_size) == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	w->started = 1;
	for (; rc == 0 && done < n; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT), done++) {
		if (key.mv_size > HEARTH_ID_MAX)
			continue;
		memcpy(w->after, key.mv_data, key.mv_size);
		w->after_len = key.mv_size;
		if (!strmap_get(&w->fresh_set, w->after, w->after_len) &&
		    fn(ctx, txn, w->after, w->after_len, err) < 0)
			goto out;
	}
	ret = rc == 0;
out:
	mdb_cursor_close(cur);
	return ret;
}

int cust_walk_step(struct cust_walk *w, size_t n, cust_walk_fn fn, void *ctx, struct herr *err)
{
	MDB_txn *txn;
	int rc;

	if (store_read_begin(w->srv->st, &txn, err) < 0)
		return -1;
	rc = w->next_fresh < w->fresh.n ? fresh_step(w, txn, n, fn, ctx, err)
					: stored_step(w, txn, n, fn, ctx, err);
	store_read_end(txn);
	return rc;
}
