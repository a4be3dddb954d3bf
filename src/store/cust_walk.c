/* Walking every customer in steps; see include/hearth/cust_walk.h. */
#include <string.h>

#include "hearth/cust_walk.h"
#include "hearth/store.h"

int cust_walk_init(struct cust_walk *w, struct store *st, struct timeline *tl, struct herr *err)
{
	memset(w, 0, sizeof(*w));
	w->st = st;
	strmap_init(&w->fresh_set);
	if (timeline_pending_new(tl, &w->fresh) < 0)
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

struct stored_step {
	struct cust_walk *w;
	MDB_txn *txn;
	size_t n, done;
	cust_walk_fn fn;
	void *ctx;
	struct herr *err;
	int failed;
};

static int stored_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct stored_step *s = vctx;
	struct cust_walk *w = s->w;

	(void)val;
	(void)vlen;
	if (s->done++ >= s->n)
		return 1;
	if (klen > HEARTH_ID_MAX)
		return 0;
	memcpy(w->after, key, klen);
	w->after_len = klen;
	s->failed = !strmap_get(&w->fresh_set, w->after, w->after_len) &&
		    s->fn(s->ctx, s->txn, w->after, w->after_len, s->err) < 0;
	return s->failed;
}

static int stored_step(struct cust_walk *w, MDB_txn *txn, size_t n, cust_walk_fn fn, void *ctx,
		       struct herr *err)
{
	struct stored_step s = { w, txn, n, 0, fn, ctx, err, 0 };
	int rc = store_walk(txn, w->st, DB_CUSTOMERS, w->after, w->started ? w->after_len : 0,
			    NULL, 0, stored_one, &s, err);

	w->started = 1;
	return s.failed ? -1 : rc;
}

int cust_walk_step(struct cust_walk *w, size_t n, cust_walk_fn fn, void *ctx, struct herr *err)
{
	MDB_txn *txn;
	int rc;

	if (store_read_begin(w->st, &txn, err) < 0)
		return -1;
	rc = w->next_fresh < w->fresh.n ? fresh_step(w, txn, n, fn, ctx, err)
					: stored_step(w, txn, n, fn, ctx, err);
	store_read_end(txn);
	return rc;
}
