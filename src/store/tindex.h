/*
 * The time index: each customer's events in time order, packed in chunks
 * under the customer's own key range (tindex.c has the layout and the why).
 * For the store's files only: timelines read it, the flush and the upgrade
 * write it, forget takes a customer's entries out of it.
 */
#ifndef HEARTH_TINDEX_H
#define HEARTH_TINDEX_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/codec.h"
#include "hearth/store.h"

/* Entries per chunk, and its size: a chunk stays well inside one LMDB page. */
#define TINDEX_CHUNK_ENTRIES 128
#define TINDEX_CHUNK_BYTES   1024

struct tindex_entry {
	int64_t ts;
	uint64_t seq;
	const char *type;       /* not terminated; borrowed from the chunk, the type numbers or the caller */
	uint8_t type_len;
};

/* A chunk decoded: entries in time order, their types borrowed from the record. */
struct tindex_chunk {
	struct tindex_entry e[TINDEX_CHUNK_ENTRIES];
	size_t n;
};

/* The writer's buffers, kept between customers so that a flush does not allocate per customer. */
struct tindex_scratch {
	struct tindex_entry *merged;
	size_t cap;
	struct wbuf stored;     /* a copy of the chunk being merged: its page changes under the put */
	struct wbuf out;
	struct tindex_chunk chunk;
};

void tindex_scratch_free(struct tindex_scratch *s);

/*
 * Adds a customer's new entries (sorted by time, then seq) to the index:
 * each is merged into the chunk that covers its time, which is rewritten (and
 * split when full). An entry already stored is not added twice, so writing
 * the same entries again after a crash changes nothing.
 */
void tindex_add(struct wtxn *w, const char *cust, size_t len, const struct tindex_entry *add,
		size_t n, struct tindex_scratch *s);

/*
 * Deletes the customer's chunks, appending the seq (uint64_t, host order) of
 * each entry they held to seqs.
 */
void tindex_take(struct wtxn *w, const char *cust, size_t len, struct wbuf *seqs);

/* Rewrites a time index in the layout before chunks (one key per event) into DB_TIMELINE. */
int tindex_upgrade(struct wtxn *w, MDB_dbi old, struct herr *err);

/* Walks one customer's entries from a position, either way, on a read transaction. */
struct tindex_iter {
	MDB_cursor *cur;
	const struct type_names *types;
	const char *cust;
	size_t len;
	int desc;
	int damaged;            /* a chunk that does not decode: the walk stopped there */
	int valid;
	size_t at;
	struct tindex_chunk chunk;
};

int tindex_iter_open(struct tindex_iter *it, struct store *st, MDB_txn *txn, const char *cust,
		     size_t len, int desc, struct herr *err);
/* To the first entry at or after (ts, seq), or at or before it when walking backwards. */
void tindex_iter_seek(struct tindex_iter *it, int64_t ts, uint64_t seq);
void tindex_iter_step(struct tindex_iter *it);
/* The entry the walk is at, NULL past its end. */
static inline const struct tindex_entry *tindex_iter_entry(const struct tindex_iter *it)
{
	return it->valid ? &it->chunk.e[it->at] : NULL;
}
void tindex_iter_close(struct tindex_iter *it);

#endif
