/*
 * The LMDB handles behind hearth/store.h, for the store's own files: other
 * modules see a transaction only as an opaque MDB_txn.
 */
#ifndef HEARTH_STORE_IMPL_H
#define HEARTH_STORE_IMPL_H

#include <lmdb.h>
#include <stddef.h>

#include "hearth/store.h"

MDB_dbi store_dbi(struct store *st, enum store_db db);
/* 0 found, else an MDB code (MDB_NOTFOUND when absent). */
int store_get(MDB_txn *txn, struct store *st, enum store_db db, const void *key, size_t klen,
	      MDB_val *val);

#endif
