/*
 * The reader's view of the writer's pending derived state (issue 14).
 *
 * The writer keeps customers changed since the last flush in memory
 * (timeline.h) and writes them to the store lazily, so a reader on its own
 * LMDB transaction would miss what was acknowledged but not flushed yet. The
 * writer therefore sends the reader notes, over a queue, before the replies
 * of the commit they describe go out: for each customer a commit touched its
 * new time-index entries (log seq, time, type); a record sent whole only where
 * the writer changed one without events (at a start, cases rebuilt after a
 * reload); after each flush slice, the customers it wrote and the generation
 * they are written up to. The reader folds the notes into its overlay; a read
 * of a customer takes the store's record (or the newer one sent whole) and
 * folds the log records of its newer events over it with the writer's fold
 * code, so that encoding records stays off the ingest path. The overlay folds
 * notes for a customer when a read needs it and the rest in slices
 * (overlay.c). It mirrors the writer's pending set, which the flush bounds.
 *
 * A note belongs to one thread at a time: built by the writer, queued, folded
 * in and freed by the reader.
 */
#ifndef HEARTH_OVERLAY_H
#define HEARTH_OVERLAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hearth/err.h"
#include "hearth/timeline.h"

struct config;
struct cust;
struct overlay;
struct overlay_note;
struct store;

enum overlay_kind {
	OVERLAY_UPDATE,                 /* customers' records and new time-index entries */
	OVERLAY_FLUSHED,                /* these customers are in the store up to gen */
	OVERLAY_FORGET,                 /* these customers are gone */
};

/* ---- the writer: building notes ---------------------------------------------- */

struct overlay_note *overlay_note_new(enum overlay_kind kind, uint64_t gen);
void overlay_note_free(struct overlay_note *n);
/*
 * Where an UPDATE's customer record is encoded, in place: the writer appends
 * it here just before overlay_note_cust names its customer (no copy of it is
 * made on the writer's side; the reader takes its own).
 */
struct wbuf *overlay_note_records(struct overlay_note *n);
/*
 * Adds a customer; with_record: its record is what was appended to
 * overlay_note_records since the last customer (none for FLUSHED and FORGET).
 * Its index, or -1 out of memory.
 */
ssize_t overlay_note_cust(struct overlay_note *n, const char *id, size_t len, int with_record);
/* Adds a time-index entry of customer index ci, the last one added; -1 out of memory (or another ci). */
int overlay_note_event(struct overlay_note *n, size_t ci, int64_t ts, uint64_t seq,
		       const char *type, size_t type_len);
size_t overlay_note_count(const struct overlay_note *n);

/* ---- the reader ------------------------------------------------------------------ */

struct overlay *overlay_new(void);
void overlay_free(struct overlay *ov);
/*
 * Takes the note, queued: reads of a customer fold that customer's part in
 * first, a listing all of it, overlay_fold the rest when the reader is free.
 */
void overlay_queue(struct overlay *ov, struct overlay_note *n);
/*
 * Folds in up to max customers' parts of the queued notes, oldest first, and
 * frees the notes done: 1 while more are queued, 0 once none is, -1 out of
 * memory (the overlay is then cleared of its customers and its notes, logged).
 */
int overlay_fold(struct overlay *ov, size_t max);
/* Customers held (pending at the writer as far as the reader knows). */
size_t overlay_count(const struct overlay *ov);
/*
 * The customer as of the last note queued and the store as of txn: owned,
 * or NULL with err HERR_NOT_FOUND when there is no such customer. cfg: the
 * configuration the writer folds with (its cases), or NULL for none.
 */
struct cust *overlay_customer(struct overlay *ov, struct store *st, MDB_txn *txn, const struct config *cfg,
			      const char *id, size_t len, struct herr *err);
/* timeline_query over the store as of txn and the overlay's entries (hearth/timeline.h). */
int overlay_query(struct overlay *ov, struct store *st, MDB_txn *txn, const struct timeline_query *q,
		  timeline_event_fn fn, void *ctx, int *more, struct herr *err);
/*
 * timeline_customers over the store as of txn and the overlay: customers
 * after `after` (NULL: from the first) in id order, at most limit.
 */
int overlay_customers(struct overlay *ov, struct store *st, MDB_txn *txn, const struct config *cfg,
		      const char *after, size_t after_len, size_t limit, timeline_cust_fn fn, void *ctx,
		      int *more, struct herr *err);

#endif
