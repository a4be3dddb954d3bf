/*
 * The LMDB environment: named databases, transactions that remember their
 * first failure (Knot's journal idiom), map growth on MDB_MAP_FULL up to the
 * configured maximum, and the one place where MDB_* codes become hearth codes.
 */
#ifndef HEARTH_STORE_H
#define HEARTH_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/limits.h"

/*
 * 2: the alert journal (alertlog, alertlog1); 3: the time index in chunks
 * (time_index, replacing timeline); 4: type names as numbers (types).
 * Older stores are upgraded on open.
 */
#define STORE_SCHEMA_VERSION 4

/* A transaction, opaque outside the store: only src/store sees LMDB (store_impl.h). */
typedef struct MDB_txn MDB_txn;
typedef struct MDB_cursor MDB_cursor;

enum store_db {
	DB_META,        /* "schema" u32, "indexed_seq" u64, ... */
	DB_LOG,         /* seq u64 → event record: the durable append-only log */
	DB_TIMELINE,    /* customer 0x00 ts seq → chunk of events: per-customer time order (tindex.c) */
	DB_CUSTOMERS,   /* customer → customer record (profile + summary) */
	DB_IDS,         /* event id → (): idempotency (schema 2 stored the seq) */
	DB_ALERTS,      /* customer 0x00 rule → alert state, as of the last apply (hearth/alert_states.h) */
	DB_OUTBOX,      /* notification seq u64 → body */
	DB_DEADLINES,   /* when 0x00 customer → (): who is due when */
	DB_SILENCES,    /* silence id → silence */
	DB_DEFERRED,    /* customer → (): stored by a history load, evaluated when it ends */
	DB_ALERT_LOG,   /* seq u64 → alert state change since the last apply (hearth/alert_states.h) */
	DB_ALERT_LOG2,  /* the same: the two are used in turn */
	DB_TYPES,       /* number u16 → event type name: names in records as small numbers (type_names.c) */
	DB__COUNT
};

struct store;
struct type_names;

struct store *store_open(const char *path, uint64_t map_size, uint64_t max_size,
			 struct herr *err);
/* Read-only, without the one-hearthd lock: for looking at a store in use (--check --against). */
struct store *store_open_readonly(const char *path, struct herr *err);
int store_is_read_only(const struct store *st);
/* The store's type numbers, for decoding its customer records (hearth/state.h). */
struct type_names *store_type_names(struct store *st);
void store_close(struct store *st);
const char *store_path(const struct store *st);
uint64_t store_map_size(const struct store *st);
/* Bytes in use (last page number × page size). */
uint64_t store_used(struct store *st);
/* Entries in a database, as of a fresh read transaction. */
uint64_t store_count(struct store *st, enum store_db db);

/* One table's size as of a read transaction: what `status` shows ops (PROTOCOL.md §5.7). */
struct store_table {
	const char *name;
	uint64_t entries;
	uint64_t bytes;                 /* its pages (branch, leaf, overflow) times the page size */
};
int store_tables(MDB_txn *txn, struct store *st, struct store_table out[DB__COUNT], struct herr *err);
/* How many times the map grew since open. */
unsigned store_growths(const struct store *st);

/* A write transaction that latches its first failure: later puts do nothing. */
struct wtxn {
	struct store *st;
	MDB_txn *txn;
	int rc;                 /* first MDB error, 0 if none */
	const char *what;       /* the operation that failed */
	uint64_t attempt;       /* differs on each try of store_write: what was staged for a failed try goes */
	/*
	 * One cursor per table, kept for the transaction (LMDB closes them with
	 * it): a put next to the last one lands on the page the cursor is on,
	 * without descending from the root, and appends skip to the last page.
	 */
	MDB_cursor *cur[DB__COUNT];
};

/* flags: LMDB's put flags, 0 outside the store (which appends with wtxn_append_seq). */
void wtxn_put(struct wtxn *w, enum store_db db, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags);
void wtxn_del(struct wtxn *w, enum store_db db, const void *key, size_t klen);
/*
 * Reads inside the write transaction (*val lasts until its next write);
 * 0 found, 1 not found, -1 latched error.
 */
int wtxn_get(struct wtxn *w, enum store_db db, const void *key, size_t klen, const void **val,
	     size_t *vlen);
void wtxn_fail(struct wtxn *w, int rc, const char *what);

/*
 * Runs fn inside a write transaction and commits it. When the map is full the
 * transaction is aborted, the map grows (up to max_size) and fn runs again from
 * the start, so fn must derive everything it writes from its arguments.
 * Nothing is written unless the commit succeeds. Returns 0 or -1 with err set
 * (HERR_STORE_FULL, HERR_STORE_ERROR, or what fn set).
 */
typedef int (*store_write_fn)(struct wtxn *w, void *ctx, struct herr *err);
int store_write(struct store *st, store_write_fn fn, void *ctx, struct herr *err);

/* Read transactions are cheap in LMDB; callers end them when done. */
int store_read_begin(struct store *st, MDB_txn **txn, struct herr *err);
void store_read_end(MDB_txn *txn);
/*
 * A read transaction for a thread other than the writer's: the map does not
 * grow under it. Ended by store_shared_end (not store_read_end).
 */
int store_shared_begin(struct store *st, MDB_txn **txn, struct herr *err);
void store_shared_end(struct store *st, MDB_txn *txn);
/* A record of a walk, whose data is valid only during the call; non-zero stops the walk. */
typedef int (*store_walk_fn)(const void *key, size_t klen, const void *val, size_t vlen, void *ctx);
/*
 * Calls fn on records of db in key order, in txn (a read's, or a write's w->txn): from
 * the first key after `after` (alen 0: from the first key, or from prefix), as long as
 * keys begin with prefix (plen 0: all). 1 when fn stopped the walk, 0 past its last
 * record, -1 with err set.
 */
int store_walk(MDB_txn *txn, struct store *st, enum store_db db, const void *after, size_t alen,
	       const void *prefix, size_t plen, store_walk_fn fn, void *ctx, struct herr *err);
/* Deletes db's records from the first on, each once fn has seen it, until fn stops the walk. */
void wtxn_walk_del(struct wtxn *w, enum store_db db, store_walk_fn fn, void *ctx);
/* store_walk over all of db, in a read transaction of its own; 0 or -1 with err set. */
int store_each(struct store *st, enum store_db db, store_walk_fn fn, void *ctx, struct herr *err);

/*
 * Key layouts (keys.c): other modules name their records by customer, rule or
 * seq, and the store builds and parses the keys.
 */
#define STORE_ALERT_KEY_MAX (HEARTH_ID_MAX + 1 + HEARTH_NAME_MAX)
size_t store_alert_key(uint8_t *buf, const char *customer, size_t clen, const char *rule);

/* Tables in seq order (log, outbox, silences): keyed by a u64. */
#define STORE_SEQ_KEY 8
size_t store_seq_key(uint8_t *buf, uint64_t seq);
/* Puts val at seq, above every seq db holds. */
void wtxn_append_seq(struct wtxn *w, enum store_db db, uint64_t seq, const void *val, size_t vlen);
typedef int (*store_seq_fn)(uint64_t seq, const void *val, size_t vlen, void *ctx);
/* The records of db with a seq above after, in order, as store_walk. */
int store_seq_walk(MDB_txn *txn, struct store *st, enum store_db db, uint64_t after,
		   store_seq_fn fn, void *ctx, struct herr *err);
/* db's first record (val and vlen may be NULL): 0, 1 when db is empty, -1 with err set. */
int store_seq_first(MDB_txn *txn, struct store *st, enum store_db db, uint64_t *seq,
		    const void **val, size_t *vlen, struct herr *err);

/* Meta values (u64, big-endian) read inside any transaction. */
uint64_t store_meta_u64(MDB_txn *txn, struct store *st, const char *name);
void wtxn_meta_u64(struct wtxn *w, const char *name, uint64_t value);
/* db's record at key, as bytes valid as long as txn: 0 found, 1 not found, -1 with err set. */
int store_lookup(MDB_txn *txn, struct store *st, enum store_db db, const void *key, size_t klen,
		 const void **val, size_t *vlen, struct herr *err);
/* Other meta values, as store_lookup. */
int store_meta_get(MDB_txn *txn, struct store *st, const char *name, const void **val, size_t *vlen,
		   struct herr *err);
void wtxn_meta_put(struct wtxn *w, const char *name, const void *data, size_t len);

/* Maps an MDB error to hearth's code and message. */
int store_error(struct herr *err, int rc, const char *what);

/* Replaces the store at path by a backup file; refuses while a hearthd holds it. */
int store_restore(const char *path, const char *file, struct herr *err);

/* Copies a compacted snapshot of the live store into the directory or file path. */
int store_backup(struct store *st, const char *path, struct herr *err);
/* Writes a compacted snapshot of the store at path, read-only and unlocked, to fd. */
int store_copy_fd(const char *path, int fd, struct herr *err);

#endif
