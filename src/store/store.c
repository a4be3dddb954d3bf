/*
 * One LMDB environment under store.path. Write transactions go through
 * store_write(), which grows the map on MDB_MAP_FULL and re-runs the caller's
 * writes, so a full map never leaves a partial batch behind.
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
#include "tindex.h"
#include "type_names.h"

static const char *const db_names[DB__COUNT] = {
	[DB_META] = "meta", [DB_LOG] = "log", [DB_TIMELINE] = "time_index",
	[DB_CUSTOMERS] = "customers", [DB_IDS] = "ids", [DB_ALERTS] = "alerts",
	[DB_OUTBOX] = "outbox", [DB_DEADLINES] = "deadlines", [DB_SILENCES] = "silences",
	[DB_DEFERRED] = "deferred", [DB_ALERT_LOG] = "alertlog", [DB_ALERT_LOG2] = "alertlog1", [DB_TYPES] = "types",
};

struct store {
	/*
	 * Growing the map remaps it: no transaction of another thread may be open
	 * then (mdb_env_set_mapsize). Other threads' reads hold this shared, a growth
	 * holds it exclusively; the writer's own transactions need not take it.
	 */
	pthread_rwlock_t grow_lock;
	MDB_env *env;
	MDB_dbi dbi[DB__COUNT];
	uint64_t attempts;              /* store_write tries, for wtxn.attempt */
	char *path;
	int lock_fd;                    /* flock'd: one hearthd per store */
	uint64_t map_size, max_size;
	unsigned growths;
	int read_only;                  /* store_open_readonly: never written, not locked */
	struct type_names *types;       /* DB_TYPES in memory, for every thread's decoding */
};

int store_error(struct herr *err, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return herr_set(err, HERR_STORE_FULL, "store is full (%s)", what);
	if (rc == ENOSPC || rc == EDQUOT)
		return herr_set(err, HERR_STORE_FULL, "no space left for the store (%s)", what);
	return herr_set(err, HERR_STORE_ERROR, "store, %s failed (%s)", what, mdb_strerror(rc));
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* LMDB lets many processes share a store; hearth's derived state does not. */
static int store_lock(struct store *st, struct herr *err)
{
	char path[4096], pid[32];
	int n;

	snprintf(path, sizeof(path), "%s/hearthd.lock", st->path);
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (st->lock_fd < 0)
		return herr_set(err, HERR_STORE_ERROR, "store, cannot open '%s' (%s)", path,
				strerror(errno));
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(st->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		return herr_set(err, HERR_STORE_ERROR,
				"store at %s is in use by another hearthd (pid %s)", st->path,
				pid[0] ? pid : "?");
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(st->lock_fd, 0) < 0 || pwrite(st->lock_fd, pid, (size_t)n, 0) != n)
		return herr_set(err, HERR_STORE_ERROR, "store, cannot write '%s' (%s)", path,
				strerror(errno));
	return 0;
}

/* Schema 2 kept one key per event in "timeline": rewritten as chunks in "time_index". */
static int upgrade_time_index(struct store *st, MDB_txn *txn, struct herr *err)
{
	struct wtxn w = { .st = st, .txn = txn };
	MDB_dbi old;
	int rc = mdb_dbi_open(txn, "timeline", 0, &old);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return store_error(err, rc, "upgrading the time index");
	if (tindex_upgrade(&w, old, err) < 0)
		return -1;
	type_names_put_new(st->types, &w);
	if (w.rc)
		return store_error(err, w.rc, "upgrading the time index");
	rc = mdb_drop(txn, old, 1);
	return rc ? store_error(err, rc, "upgrading the time index") : 0;
}

static int store_check_schema(struct store *st, MDB_txn *txn, struct herr *err)
{
	MDB_val key = { 6, (void *)"schema" }, val;
	uint8_t buf[4];
	int rc = mdb_get(txn, st->dbi[DB_META], &key, &val);

	if (rc == MDB_NOTFOUND && st->read_only)
		return herr_set(err, HERR_STORE_ERROR, "'%s' is not a hearth store (no schema record)",
				st->path);
	if (rc == MDB_NOTFOUND) {
		buf[0] = buf[1] = buf[2] = 0;
		buf[3] = STORE_SCHEMA_VERSION;
		val.mv_data = buf;
		val.mv_size = 4;
		rc = mdb_put(txn, st->dbi[DB_META], &key, &val, 0);
		return rc ? store_error(err, rc, "writing the schema version") : 0;
	}
	if (rc)
		return store_error(err, rc, "reading the schema version");
	if (val.mv_size != 4)
		return herr_set(err, HERR_STORE_ERROR, "store at %s has a damaged schema record",
				st->path);
	struct rbuf r;
	rbuf_init(&r, val.mv_data, val.mv_size);
	uint32_t version = rbuf_u32(&r);
	if (version > STORE_SCHEMA_VERSION)
		return herr_set(err, HERR_STORE_ERROR,
				"store at %s has schema version %u, newer than this hearthd "
				"understands (%u): run a newer hearthd or restore a backup",
				st->path, version, STORE_SCHEMA_VERSION);
	if (version < STORE_SCHEMA_VERSION && !st->read_only) {
		if (version < 3 && upgrade_time_index(st, txn, err) < 0)
			return -1;
		/* the tables this version added were created above: an older hearthd must not open it now */
		buf[0] = buf[1] = buf[2] = 0;
		buf[3] = STORE_SCHEMA_VERSION;
		val.mv_data = buf;
		val.mv_size = 4;
		rc = mdb_put(txn, st->dbi[DB_META], &key, &val, 0);
		return rc ? store_error(err, rc, "writing the schema version") : 0;
	}
	return 0;
}

static int store_open_dbs(struct store *st, struct herr *err)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);

	if (rc)
		return store_error(err, rc, "opening databases");
	for (int i = 0; i < DB__COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], st->read_only ? 0 : MDB_CREATE, &st->dbi[i]);
		if (rc == MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return herr_set(err, HERR_STORE_ERROR, "store at %s has no table '%s': it is not a "
					"hearth store, or an older hearthd wrote it (start this hearthd on it "
					"once to upgrade it)", st->path, db_names[i]);
		}
		if (rc) {
			mdb_txn_abort(txn);
			return store_error(err, rc, db_names[i]);
		}
	}
	if (type_names_load(st->types, txn, st->dbi[DB_TYPES], err) < 0 ||
	    store_check_schema(st, txn, err) < 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return store_error(err, rc, "opening databases");
	type_names_committed(st->types);
	return 0;
}

static struct store *store_alloc(const char *path, struct herr *err)
{
	struct store *st = calloc(1, sizeof(*st));

	if (!st || !(st->path = strdup(path)) || !(st->types = type_names_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		if (st)
			free(st->path);
		free(st);
		return NULL;
	}
	st->lock_fd = -1;
	pthread_rwlock_init(&st->grow_lock, NULL);
	return st;
}

/* map_size 0 keeps the file's. */
static int env_open(struct store *st, uint64_t map_size, unsigned flags, struct herr *err)
{
	int rc;

	if ((rc = mdb_env_create(&st->env)) || (rc = mdb_env_set_maxdbs(st->env, 16)) ||
	    (map_size && (rc = mdb_env_set_mapsize(st->env, map_size))) ||
	    (rc = mdb_env_set_maxreaders(st->env, 126)))
		return store_error(err, rc, "creating the environment");
	/* MDB_NOTLS: read transactions are not tied to threads (backup runs in one). */
	if ((rc = mdb_env_open(st->env, st->path, MDB_NOTLS | flags, 0640)))
		return herr_set(err, HERR_STORE_ERROR, "store, cannot open '%s'%s (%s)", st->path,
				flags & MDB_RDONLY ? " read-only" : "", mdb_strerror(rc));
	return 0;
}

struct store *store_open(const char *path, uint64_t map_size, uint64_t max_size,
			 struct herr *err)
{
	struct store *st = store_alloc(path, err);
	MDB_envinfo info;
	int dead = 0;

	if (!st)
		return NULL;
	st->max_size = max_size;
	if (mkdir_p(path) < 0) {
		herr_set(err, HERR_STORE_ERROR, "store, cannot create directory '%s' (%s)", path,
			 strerror(errno));
		goto fail;
	}
	if (store_lock(st, err) < 0 || env_open(st, map_size, 0, err) < 0)
		goto fail;
	mdb_reader_check(st->env, &dead);
	if (dead > 0)
		log_info("store, cleared %d stale reader slot(s)", dead);
	mdb_env_info(st->env, &info);
	st->map_size = info.me_mapsize; /* an existing larger file keeps its size */
	if (store_open_dbs(st, err) < 0)
		goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

/*
 * For looking at a store another hearthd may be running on: LMDB's readers never
 * wait for its writer, nor it for them, so no lock is taken and nothing is written
 * (what a running hearthd has not flushed yet is folded from the log in memory).
 */
struct store *store_open_readonly(const char *path, struct herr *err)
{
	struct store *st = store_alloc(path, err);
	struct stat sb;

	if (!st)
		return NULL;
	st->read_only = 1;
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		herr_set(err, HERR_STORE_ERROR, "store, '%s' is not a directory (%s)", path,
			 errno ? strerror(errno) : "a file");
		goto fail;
	}
	if (env_open(st, 0, MDB_RDONLY, err) < 0 || store_open_dbs(st, err) < 0)
		goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

int store_is_read_only(const struct store *st)
{
	return st->read_only;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	free(st->path);
	type_names_free(st->types);
	pthread_rwlock_destroy(&st->grow_lock);
	free(st);
}

MDB_dbi store_dbi(struct store *st, enum store_db db) { return st->dbi[db]; }
const char *store_path(const struct store *st) { return st->path; }
struct type_names *store_type_names(struct store *st) { return st->types; }
uint64_t store_map_size(const struct store *st) { return st->map_size; }
unsigned store_growths(const struct store *st) { return st->growths; }

uint64_t store_used(struct store *st)
{
	MDB_envinfo info;
	MDB_stat stat;

	if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &stat))
		return 0;
	return (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
}

uint64_t store_count(struct store *st, enum store_db db)
{
	MDB_txn *txn;
	MDB_stat stat;
	uint64_t n = 0;

	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn))
		return 0;
	if (mdb_stat(txn, st->dbi[db], &stat) == 0)
		n = stat.ms_entries;
	mdb_txn_abort(txn);
	return n;
}

int store_tables(MDB_txn *txn, struct store *st, struct store_table out[DB__COUNT], struct herr *err)
{
	for (int db = 0; db < DB__COUNT; db++) {
		MDB_stat stat;
		int rc = mdb_stat(txn, st->dbi[db], &stat);
		if (rc)
			return store_error(err, rc, "reading a table's size");
		out[db] = (struct store_table){
			.name = db_names[db], .entries = stat.ms_entries,
			.bytes = (uint64_t)(stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages) *
				 stat.ms_psize,
		};
	}
	return 0;
}

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
	rc = mdb_put(w->txn, w->st->dbi[db], &k, &v, flags);
	if (rc)
		wtxn_fail(w, rc, db_names[db]);
}

void wtxn_del(struct wtxn *w, enum store_db db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc;

	if (w->rc)
		return;
	rc = mdb_del(w->txn, w->st->dbi[db], &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, db_names[db]);
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
		wtxn_fail(w, rc, db_names[db]);
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
		return store_error(err, rc, db_names[db]);
	rc = walk_cursor(cur, after, alen, prefix, plen, fn, ctx, 0, &stopped);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return store_error(err, rc, db_names[db]);
	return stopped;
}

void wtxn_walk_del(struct wtxn *w, enum store_db db, store_walk_fn fn, void *ctx)
{
	MDB_cursor *cur;
	int stopped = 0, rc;

	if (w->rc)
		return;
	if ((rc = mdb_cursor_open(w->txn, w->st->dbi[db], &cur))) {
		wtxn_fail(w, rc, db_names[db]);
		return;
	}
	rc = walk_cursor(cur, NULL, 0, NULL, 0, fn, ctx, 1, &stopped);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, db_names[db]);
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
		return store_error(err, rc, db_names[db]);
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

/* Checks that file is an LMDB store of a schema this hearthd reads. */
static int check_backup(const char *file, struct herr *err)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val key = { 6, (void *)"schema" }, val;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_dbi_open(txn, "meta", 0, &dbi)) ||
	    (rc = mdb_get(txn, dbi, &key, &val))) {
		herr_set(err, HERR_STORE_ERROR, "'%s' is not a hearth backup (%s)", file, mdb_strerror(rc));
		goto out;
	}
	struct rbuf r;
	rbuf_init(&r, val.mv_data, val.mv_size);
	if (val.mv_size != 4 || rbuf_u32(&r) > STORE_SCHEMA_VERSION) {
		herr_set(err, HERR_STORE_ERROR, "'%s' has a newer schema than this hearthd reads", file);
		rc = -1;
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return rc ? -1 : 0;
}

static int copy_file(const char *from, const char *to, struct herr *err)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	ssize_t n;

	if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
		herr_set(err, HERR_IO, "cannot copy '%s' to '%s' (%s)", from, to, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (n < 0 || fsync(out) < 0) {
		herr_set(err, HERR_IO, "copying '%s' failed (%s)", from, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

int store_restore(const char *path, const char *file, struct herr *err)
{
	struct store st = { .path = (char *)path, .lock_fd = -1 };
	char data[4096], tmp[4096], lock[4096];
	int rc = -1;

	if (check_backup(file, err) < 0)
		return -1;
	if (mkdir_p(path) < 0)
		return herr_set(err, HERR_STORE_ERROR, "store, cannot create directory '%s' (%s)", path,
				strerror(errno));
	/* the running daemon holds this lock: never restore under it */
	if (store_lock(&st, err) < 0)
		goto out;
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	snprintf(tmp, sizeof(tmp), "%s/data.mdb.restore", path);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
	if (copy_file(file, tmp, err) < 0)
		goto out;
	if (rename(tmp, data) < 0) {
		herr_set(err, HERR_IO, "cannot move the restored store into place (%s)", strerror(errno));
		goto out;
	}
	unlink(lock); /* reader slots of the old store mean nothing to the new one */
	rc = 0;
out:
	if (st.lock_fd >= 0)
		close(st.lock_fd);
	return rc;
}

int store_backup(struct store *st, const char *path, struct herr *err)
{
	int rc = mdb_env_copy2(st->env, path, MDB_CP_COMPACT);
	return rc ? store_error(err, rc, "backup") : 0;
}

/*
 * Another process's copy (hearthctl backup): LMDB lets it read beside the
 * running hearthd, whose writes never wait for the copy.
 */
int store_copy_fd(const char *path, int fd, struct herr *err)
{
	MDB_env *env = NULL;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0))) {
		herr_set(err, HERR_STORE_ERROR, "cannot open the store at %s (%s)", path,
			 mdb_strerror(rc));
		goto out;
	}
	if ((rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT)))
		herr_set(err, HERR_STORE_ERROR, "backup failed (%s)", mdb_strerror(rc));
out:
	if (env)
		mdb_env_close(env);
	return rc ? -1 : 0;
}
