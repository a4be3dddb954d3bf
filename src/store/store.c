/*
 * Transactions on the LMDB environment (store_open.c opens it). Write
 * transactions go through store_write(), which grows the map on
 * MDB_MAP_FULL and re-runs the caller's writes, so a full map never leaves a
 * partial batch behind.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hearth/codec.h"
#include "hearth/log.h"
#include "hearth/store.h"
#include "store_impl.h"

const char *const store_db_names[DB__COUNT] = {
	[DB_META] = "meta", [DB_LOG] = "log", [DB_TIMELINE] = "time_index",
	[DB_CUSTOMERS] = "customers", [DB_IDS] = "ids", [DB_ALERTS] = "alerts",
	[DB_OUTBOX] = "outbox", [DB_DEADLINES] = "deadlines", [DB_SILENCES] = "silences",
	[DB_DEFERRED] = "deferred", [DB_ALERT_LOG] = "alertlog", [DB_ALERT_LOG2] = "alertlog1", [DB_TYPES] = "types",
};

int store_error(struct herr *err, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return herr_set(err, HERR_STORE_FULL, "store is full (%s)", what);
	if (rc == ENOSPC || rc == EDQUOT)
		return herr_set(err, HERR_STORE_FULL, "no space left for the store (%s)", what);
	return herr_set(err, HERR_STORE_ERROR, "store, %s failed (%s)", what, mdb_strerror(rc));
}

MDB_dbi store_dbi(struct store *st, enum store_db db) { return st->dbi[db]; }
const char *store_path(const struct store *st) { return st->path; }
struct type_names *store_type_names(struct store *st) { return st->types; }
uint64_t store_map_size(const struct store *st) { return st->map_size; }
unsigned store_growths(const struct store *st) { return st->growths; }

void wtxn_fail(struct wtxn *w, int rc, const char *what)
{
	if (w->rc == 0) {
		w->rc = rc;
		w->what = what;
	}
}

void wtxn_put(struct wtxn *w, enum store_db db, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc;

	if (w->rc)
		return;
	if (!w->cur[db] && (rc = mdb_cursor_open(w->txn, w->st->dbi[db], &w->cur[db]))) {
		wtxn_fail(w, rc, store_db_names[db]);
		return;
	}
	rc = mdb_cursor_put(w->cur[db], &k, &v, flags);
	if (rc)
		wtxn_fail(w, rc, store_db_names[db]);
}

void wtxn_del(struct wtxn *w, enum store_db db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc;

	if (w->rc)
		return;
	rc = mdb_del(w->txn, w->st->dbi[db], &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, store_db_names[db]);
}

int wtxn_get(struct wtxn *w, enum store_db db, const void *key, size_t klen, const void **val,
	     size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (w->rc)
		return -1;
	rc = mdb_get(w->txn, w->st->dbi[db], &k, &v);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc) {
		wtxn_fail(w, rc, store_db_names[db]);
		return -1;
	}
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

static int store_grow(struct store *st)
{
	uint64_t next = st->map_size * 2;
	int rc;

	if (st->map_size >= st->max_size)
		return -1;
	if (next > st->max_size)
		next = st->max_size;
	pthread_rwlock_wrlock(&st->grow_lock);
	rc = mdb_env_set_mapsize(st->env, next);
	pthread_rwlock_unlock(&st->grow_lock);
	if (rc) {
		log_error("store, growing the map to %llu bytes failed (%s)",
			  (unsigned long long)next, mdb_strerror(rc));
		return -1;
	}
	log_info("store, map grew from %llu to %llu bytes", (unsigned long long)st->map_size,
		 (unsigned long long)next);
	st->map_size = next;
	st->growths++;
	return 0;
}

int store_write(struct store *st, store_write_fn fn, void *ctx, struct herr *err)
{
	if (st->read_only)
		return herr_set(err, HERR_STORE_ERROR, "store at %s is open read-only", st->path);
	for (;;) {
		struct wtxn w = { .st = st, .attempt = ++st->attempts };
		int rc = mdb_txn_begin(st->env, NULL, 0, &w.txn);

		if (rc)
			return store_error(err, rc, "beginning a write");
		if (fn(&w, ctx, err) < 0 && w.rc == 0) {
			mdb_txn_abort(w.txn);
			return -1;
		}
		if (w.rc == 0) {
			rc = mdb_txn_commit(w.txn);
			if (rc == 0)
				return 0;
			wtxn_fail(&w, rc, "commit");
		} else {
			mdb_txn_abort(w.txn);
		}
		if (w.rc == MDB_MAP_FULL && store_grow(st) == 0)
			continue;
		if (w.rc == MDB_MAP_FULL)
			return herr_set(err, HERR_STORE_FULL,
					"store is full: max_size %llu bytes reached",
					(unsigned long long)st->max_size);
		return store_error(err, w.rc, w.what);
	}
}

int store_read_begin(struct store *st, MDB_txn **txn, struct herr *err)
{
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
	return rc ? store_error(err, rc, "beginning a read") : 0;
}

void store_read_end(MDB_txn *txn)
{
	mdb_txn_abort(txn);
}

int store_shared_begin(struct store *st, MDB_txn **txn, struct herr *err)
{
	pthread_rwlock_rdlock(&st->grow_lock);
	if (store_read_begin(st, txn, err) < 0) {
		pthread_rwlock_unlock(&st->grow_lock);
		return -1;
	}
	return 0;
}

void store_shared_end(struct store *st, MDB_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->grow_lock);
}

/*
 * The cursor loop of every walk: from the first key after `after` (or, without it,
 * at prefix, or the first key), while keys begin with prefix. *stopped when fn
 * stopped it; del deletes each record fn let pass. 0 or MDB_NOTFOUND at the end.
 */
static int walk_cursor(MDB_cursor *cur, const void *after, size_t alen, const void *prefix,
		       size_t plen, store_walk_fn fn, void *ctx, int del, int *stopped)
{
	MDB_val key = { alen ? alen : plen, (void *)(alen ? after : prefix) }, val;
	int rc = mdb_cursor_get(cur, &key, &val, key.mv_size ? MDB_SET_RANGE : MDB_FIRST);

	if (rc == 0 && alen && key.mv_size == alen && memcmp(key.mv_data, after, alen) == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (plen && (key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0))
			return MDB_NOTFOUND;
		if ((*stopped = fn(key.mv_data, key.mv_size, val.mv_data, val.mv_size, ctx) != 0))
			return 0;
		/* the cursor then stands on the next record, which MDB_NEXT returns */
		if (del && (rc = mdb_cursor_del(cur, 0)))
			return rc;
	}
	return rc;
}

int store_walk(MDB_txn *txn, struct store *st, enum store_db db, const void *after, size_t alen,
	       const void *prefix, size_t plen, store_walk_fn fn, void *ctx, struct herr *err)
{
	MDB_cursor *cur;
	int stopped = 0, rc = mdb_cursor_open(txn, st->dbi[db], &cur);

	if (rc)
		return store_error(err, rc, store_db_names[db]);
	rc = walk_cursor(cur, after, alen, prefix, plen, fn, ctx, 0, &stopped);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return store_error(err, rc, store_db_names[db]);
	return stopped;
}

void wtxn_walk_del(struct wtxn *w, enum store_db db, store_walk_fn fn, void *ctx)
{
	MDB_cursor *cur;
	int stopped = 0, rc;

	if (w->rc)
		return;
	if ((rc = mdb_cursor_open(w->txn, w->st->dbi[db], &cur))) {
		wtxn_fail(w, rc, store_db_names[db]);
		return;
	}
	rc = walk_cursor(cur, NULL, 0, NULL, 0, fn, ctx, 1, &stopped);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, store_db_names[db]);
}

int store_each(struct store *st, enum store_db db, store_walk_fn fn, void *ctx, struct herr *err)
{
	MDB_txn *txn;
	int rc;

	if (store_read_begin(st, &txn, err) < 0)
		return -1;
	rc = store_walk(txn, st, db, NULL, 0, NULL, 0, fn, ctx, err);
	store_read_end(txn);
	return rc < 0 ? -1 : 0;
}

int store_get(MDB_txn *txn, struct store *st, enum store_db db, const void *key, size_t klen,
	      MDB_val *val)
{
	MDB_val k = { klen, (void *)key };
	return mdb_get(txn, st->dbi[db], &k, val);
}

uint64_t store_meta_u64(MDB_txn *txn, struct store *st, const char *name)
{
	MDB_val val;

	if (store_get(txn, st, DB_META, name, strlen(name), &val) || val.mv_size != 8)
		return 0;
	return be64_get(val.mv_data);
}

int store_lookup(MDB_txn *txn, struct store *st, enum store_db db, const void *key, size_t klen,
		 const void **val, size_t *vlen, struct herr *err)
{
	MDB_val v;
	int rc = store_get(txn, st, db, key, klen, &v);

	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return store_error(err, rc, store_db_names[db]);
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

int store_meta_get(MDB_txn *txn, struct store *st, const char *name, const void **val, size_t *vlen,
		   struct herr *err)
{
	return store_lookup(txn, st, DB_META, name, strlen(name), val, vlen, err);
}

void wtxn_meta_put(struct wtxn *w, const char *name, const void *data, size_t len)
{
	wtxn_put(w, DB_META, name, strlen(name), data, len, 0);
}

void wtxn_meta_u64(struct wtxn *w, const char *name, uint64_t value)
{
	uint8_t buf[8];

	be64_put(buf, value);
	wtxn_put(w, DB_META, name, strlen(name), buf, 8, 0);
}
