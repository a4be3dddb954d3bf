/*
 * One LMDB environment under store.path: opened (created, locked for one
 * hearthd, its schema checked and upgraded), closed, and measured.
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


int store_mkdir_p(const char *path)
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
int store_lock(struct store *st, struct herr *err)
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

static int put_schema_version(struct store *st, MDB_txn *txn, struct herr *err)
{
	uint8_t buf[4] = { 0, 0, 0, STORE_SCHEMA_VERSION };
	MDB_val key = { 6, (void *)"schema" }, val = { sizeof(buf), buf };
	int rc = mdb_put(txn, st->dbi[DB_META], &key, &val, 0);

	return rc ? store_error(err, rc, "writing the schema version") : 0;
}

static int store_check_schema(struct store *st, MDB_txn *txn, struct herr *err)
{
	MDB_val key = { 6, (void *)"schema" }, val;
	int rc = mdb_get(txn, st->dbi[DB_META], &key, &val);

	if (rc == MDB_NOTFOUND && st->read_only)
		return herr_set(err, HERR_STORE_ERROR, "'%s' is not a hearth store (no schema record)",
				st->path);
	if (rc == MDB_NOTFOUND) {
		return put_schema_version(st, txn, err);
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
		return put_schema_version(st, txn, err);
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
		rc = mdb_dbi_open(txn, store_db_names[i], st->read_only ? 0 : MDB_CREATE, &st->dbi[i]);
		if (rc == MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return herr_set(err, HERR_STORE_ERROR, "store at %s has no table '%s': it is not a "
					"hearth store, or an older hearthd wrote it (start this hearthd on it "
					"once to upgrade it)", st->path, store_db_names[i]);
		}
		if (rc) {
			mdb_txn_abort(txn);
			return store_error(err, rc, store_db_names[i]);
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
	if (store_mkdir_p(path) < 0) {
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
			.name = store_db_names[db], .entries = stat.ms_entries,
			.bytes = (uint64_t)(stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages) *
				 stat.ms_psize,
		};
	}
	return 0;
}
