/*
 * Alert states, and where their changes go. A change is durable in the group
 * commit that causes it, but as an append to a journal (DB_ALERT_LOG, log seq
 * order), not as a rewrite of the customer's page in DB_ALERTS: that rewrite,
 * at random keys in every group, was half of all bytes hearthd wrote. The
 * flush folds the journal into DB_ALERTS once, sorted, and empties it.
 *
 * What a thread reads is DB_ALERTS overlaid with the journal's latest entry
 * per (customer, rule), both from the same read transaction: the writer knows
 * its own entries; any other thread brings its copy up to its transaction
 * with alert_states_sync. Records are alert_encode's (hearth/alert.h).
 */
#ifndef HEARTH_ALERT_STATES_H
#define HEARTH_ALERT_STATES_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/limits.h"
#include "hearth/store.h"

struct alert_states;
struct strmap;

/*
 * Customers whose stored state is written while it is on, each with the
 * generation it was last written in: a re-evaluation's workers read a
 * snapshot, and what was written after it must be evaluated again by the
 * writer (timeline_watch_begin). lost: a note failed (out of memory), so
 * every customer counts as written.
 */
struct write_watch {
	struct strmap *ids;             /* NULL: off */
	uint64_t gen;                   /* stamped on each note; rises at each watch_begin */
	int lost;
	/*
	 * Customers up to this id (LMDB's key order) are not noted: no window
	 * out or to come reads them again, and a re-evaluation's own writes
	 * are all of them but the few a window boundary shares.
	 */
	char floor[HEARTH_ID_MAX];
	size_t floor_len;
};
void write_watch_note(struct write_watch *ww, const char *id, size_t len);
/* The watch alert state puts note their customers in (NULL: none). */
void alert_states_watch(struct alert_states *as, struct write_watch *ww);

struct alert_states *alert_states_new(void);
void alert_states_free(struct alert_states *as);

/* A reader's copy brought up to txn's snapshot: journal entries it has not seen, flushes since. */
int alert_states_sync(struct alert_states *as, struct store *st, MDB_txn *txn, struct herr *err);
/*
 * The same, up to max journal entries at a time: 1 while more are left (entries
 * to read, or stale ones a flush wrote still to let go of, a slice per call),
 * 0 once none is, -1 on error.
 */
int alert_states_catch_up(struct alert_states *as, struct store *st, MDB_txn *txn, size_t max,
			  struct herr *err);
/*
 * Only customer id brought up to txn's snapshot (its journal entries the copy
 * has not seen found by a walk that parses no one else's), for a read of it alone.
 */
int alert_states_sync_customer(struct alert_states *as, struct store *st, MDB_txn *txn, const char *id,
			       size_t len, struct herr *err);

/* The customer's states, in rule order. */
typedef void (*alert_state_fn)(const char *rule, const void *rec, size_t len, void *ctx);
void alert_states_customer(struct alert_states *as, struct store *st, MDB_txn *txn, const char *id,
			   size_t len, alert_state_fn fn, void *ctx);

/*
 * The same for one customer after another from one read transaction, through
 * a cursor that stays where the last customer's states ended: in key order,
 * a customer costs no seek (most have no stored states at all). Any order
 * reads right. Close it before its transaction ends.
 */
struct alert_cursor;
struct alert_cursor *alert_cursor_open(struct store *st, MDB_txn *txn, struct herr *err);
void alert_cursor_close(struct alert_cursor *ac);
void alert_states_customer_at(struct alert_states *as, struct alert_cursor *ac, const char *id, size_t len,
			      alert_state_fn fn, void *ctx);
/*
 * Cache hints for a loop that knows its next customers: the journal's slot
 * of a customer some lookups ahead, then its entry a few ahead.
 */
void alert_states_prefetch(const struct alert_states *as, const char *id, size_t len);
void alert_states_prefetch_entry(const struct alert_states *as, const char *id, size_t len);
/* Every state in (customer, rule) order, from customer `from` on (NULL: the first); fn != 0 stops. */
typedef int (*alert_walk_fn)(const char *id, size_t idlen, const char *rule, const void *rec,
			     size_t len, void *ctx);
int alert_states_walk(struct alert_states *as, struct store *st, MDB_txn *txn, const char *from,
		      size_t flen, alert_walk_fn fn, void *ctx, struct herr *err);

/*
 * The writer's side. A put journals the state in w (rec NULL: the state is
 * gone); it counts in as once alert_states_commit says w committed.
 */
void alert_states_put(struct alert_states *as, struct wtxn *w, const char *id, size_t len,
		      const char *rule, const void *rec, size_t rlen);
/*
 * The same written into DB_ALERTS at once, unless the journal has the key:
 * for evaluations of many customers in key order (re-evaluation, ticks), whose
 * writes go page after page anyway and would otherwise be written twice.
 */
void alert_states_put_in_place(struct alert_states *as, struct wtxn *w, const char *id, size_t len,
			       const char *rule, const void *rec, size_t rlen);
void alert_states_commit(struct alert_states *as);
void alert_states_discard(struct alert_states *as);
/* Writes every journaled state into DB_ALERTS and empties the journal, in w (then commit or discard). */
void alert_states_apply(struct alert_states *as, struct wtxn *w);
/*
 * The same in slices, each a transaction of its own, so that the writer keeps
 * serving: begin takes the journal so far (later entries wait for the next
 * apply); each slice writes up to max states in key order; end, in the last
 * transaction, empties what was applied. -1: out of memory.
 */
int alert_states_apply_begin(struct alert_states *as);
int alert_states_apply_more(const struct alert_states *as);
void alert_states_apply_slice(struct alert_states *as, struct wtxn *w, size_t max);
void alert_states_apply_end(struct alert_states *as, struct wtxn *w);
/* Journal entries not applied yet. */
size_t alert_states_pending(const struct alert_states *as);
/* At start: what the journal holds (a previous run's) read, and applied unless the store is read-only. */
int alert_states_recover(struct alert_states *as, struct store *st, struct herr *err);

#endif
