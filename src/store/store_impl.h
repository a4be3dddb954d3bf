/*
 * The LMDB handles behind hearth/store.h, for the store's own files: other
 * modules see a transaction only as an opaque MDB_txn.
 */
#ifndef HEARTH_STORE_IMPL_H
#define HEARTH_STORE_IMPL_H

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>

#include "hearth/store.h"

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

/* store_open.c: the directory made (with its parents), and its lock file taken: one hearthd per store */
int store_mkdir_p(const char *path);
int store_lock(struct store *st, struct herr *err);
/* store.c */
extern const char *const store_db_names[DB__COUNT];
MDB_dbi store_dbi(struct store *st, enum store_db db);
/* 0 found, else an MDB code (MDB_NOTFOUND when absent). */
int store_get(MDB_txn *txn, struct store *st, enum store_db db, const void *key, size_t klen,
	      MDB_val *val);

#endif
