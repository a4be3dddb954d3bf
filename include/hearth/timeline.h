/*
 * Customer timelines on top of the store. Durability comes from the
 * append-only log: an ingest commits only log records (MDB_APPEND at the right
 * edge, the cheapest durable write LMDB has). Everything derived from them —
 * the per-customer time index, customer state, the event-id index — is kept in
 * memory and written sorted in larger flushes; after a crash it is rebuilt
 * from the log past `indexed_seq`. Readers see the union of both.
 */
#ifndef HEARTH_TIMELINE_H
#define HEARTH_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/store.h"

struct batch;
struct config;
struct cust;
struct event;
struct json_object;
struct timeline;

struct timeline_stats {
	uint64_t events_accepted, events_duplicate;
	uint64_t commits, commit_failures;
	uint64_t flushes, flush_us_total, flush_events;
	uint64_t recovered_events;
	/* new ids the id filter knew were not stored, and ids looked up in the id index */
	uint64_t id_checks_filtered, id_checks_read;
	/* customers a fold read from the store (or found new there), and took from those a flush kept */
	uint64_t customers_read, customers_kept;
	size_t dirty_customers, pending_events;
};

/* Opens on an open store and replays the log past the last flush. */
struct timeline *timeline_open(struct store *st, const struct config *cfg, struct herr *err);
/* Flushes what is pending (best effort) and frees. */
void timeline_close(struct timeline *tl);
/* The writer's alert states (hearth/alert_states.h), applied with the flush. */
struct alert_states *timeline_alert_states(struct timeline *tl);
void timeline_set_config(struct timeline *tl, const struct config *cfg);

/*
 * Stores the candidate events of n batches in one durable transaction (group
 * commit). Duplicates by id are counted, not stored. On a store failure every
 * batch gets b->fail set and nothing is stored. Returns 0 or -1.
 */
int timeline_append(struct timeline *tl, struct batch **batches, size_t n);
/*
 * Who wants each customer of an append as soon as all its events in it are
 * folded (the engine lends them to its workers): begin() is told how many
 * events the fold takes and about how many customers (as many or fewer), and
 * says whether to go on with done(), which then gets every touched customer
 * once, with its place among them.
 */
struct fold_watch {
	int (*begin)(void *ctx, size_t events, size_t customers);
	void (*done)(void *ctx, struct cust *c, size_t touched);
	void *ctx;
};

/*
 * The same in the caller's transaction (src/ingest/group_commit.c adds the alerts
 * the events change): puts the log records and folds the events into pending
 * state, which sets *folded; a retry of the transaction (the map grew) only
 * puts the records again. timeline_append_end follows the commit, with err
 * when it failed: pending state is then rebuilt from the log. watch: NULL or
 * as above.
 */
int timeline_append_in(struct timeline *tl, struct wtxn *w, struct batch **batches, size_t n,
		       int *folded, const struct fold_watch *watch, struct herr *err);
void timeline_append_end(struct timeline *tl, struct batch **batches, size_t n, int folded,
			 const struct herr *err);
/*
 * The caller of timeline_append_in has evaluated the touched customers and
 * changes none of them until timeline_append_end: the readers' note of the
 * append is encoded meanwhile, on another thread, beside the commit.
 */
void timeline_append_evaluated(struct timeline *tl);

/* Writes pending derived state if it is due (by size or age) or forced. */
int timeline_flush(struct timeline *tl, int force, struct herr *err);
/* Milliseconds until the next flush is due, -1 if nothing is pending. */
int64_t timeline_flush_due_in(const struct timeline *tl);
/* More is pending than memory should hold: ingest and re-evaluation wait for the flush. */
int timeline_backlogged(const struct timeline *tl);
/* Customer ids, owned. */
struct id_list {
	char **ids;
	size_t *lens;
	size_t n;
};

void id_list_free(struct id_list *l);
/* The pending customers not stored yet (a walk of the store misses them). */
int timeline_pending_new(struct timeline *tl, struct id_list *out);
/* Evaluation gave a pending customer a new deadline: ticks must look at it. */
void timeline_deadline_set(struct timeline *tl, const struct cust *c);

/*
 * The customer's current state: the pending copy if changed since the last
 * flush (borrowed: *owned = 0) or read from the store (*owned = 1).
 * NULL with err HERR_NOT_FOUND if there is no such customer.
 */
struct cust *timeline_customer(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			       int *owned, struct herr *err);

struct timeline_query {
	const char *customer;
	size_t customer_len;
	int64_t since, until;           /* inclusive bounds */
	const char *const *types;       /* NULL: all */
	size_t ntypes;
	int desc;
	size_t limit;
	int has_after;                  /* continue after (after_ts, after_seq) */
	int64_t after_ts;
	uint64_t after_seq;
};

/* Calls fn for each matching event in order; sets *more when events remain. */
typedef int (*timeline_event_fn)(const struct event *ev, void *ctx);
int timeline_query(struct timeline *tl, MDB_txn *txn, const struct timeline_query *q,
		   timeline_event_fn fn, void *ctx, int *more, struct herr *err);

/* Lists customers in id order starting after `after` (NULL: from the start). */
typedef int (*timeline_cust_fn)(const struct cust *c, void *ctx);
int timeline_customers(struct timeline *tl, const char *after, size_t after_len, size_t limit,
		       timeline_cust_fn fn, void *ctx, int *more, struct herr *err);

/* Removes every trace of a customer; *removed counts their events. */
int timeline_forget(struct timeline *tl, const char *id, size_t len, uint64_t *removed,
		    struct herr *err);

/*
 * Evaluation support. Customers returned here are held in the pending set
 * until the next flush, so a changed `deadline` is written with them; the
 * pointers stay valid until then.
 */
struct cust *timeline_hold(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			   struct herr *err);
/*
 * Lets go of a held customer the evaluation left as stored (same deadline, no
 * pending event): a tick or re-evaluation of many would otherwise keep them all
 * in memory until a flush that writes nothing of them. c is freed if so.
 */
void timeline_release(struct timeline *tl, struct cust *c);
/*
 * For evaluations done elsewhere on a snapshot (a re-evaluation's workers):
 * from watch_begin on, customers whose stored record or alert states are
 * written are noted, but those up to floor (LMDB's key order; floor_len 0:
 * none), which no window out reads. Each begin starts a generation (the
 * windows out at once each have theirs) and returns it; written_since says
 * whether a customer was written since that generation began (or a note
 * failed). forget_before lets go of notes older than a generation, end of all
 * of them. A pending customer
 * is one whose state in memory differs from the store's (held for an
 * evaluation and left as loaded is not).
 */
uint64_t timeline_watch_begin(struct timeline *tl, const char *floor, size_t floor_len);
void timeline_watch_forget_before(struct timeline *tl, uint64_t gen);
void timeline_watch_end(struct timeline *tl);
int timeline_written_since(const struct timeline *tl, uint64_t gen, const char *id, size_t len);
int timeline_pending(const struct timeline *tl, const char *id, size_t len);
/* Rebuilds a held customer's cases from their timeline (events.cases changed). */
int timeline_rebuild_cases(struct timeline *tl, MDB_txn *txn, struct cust *c, struct herr *err);
/* The customers the last timeline_append changed. */
size_t timeline_touched(struct timeline *tl, struct cust ***list);
/* Up to max customers whose deadline is at or before now, held. */
size_t timeline_due(struct timeline *tl, MDB_txn *txn, int64_t now, struct cust **out, size_t max,
		    struct herr *err);
/*
 * The same in two steps, so that the ids can go to other threads before the
 * customers are loaded: timeline_due_list names them (what it points to lives
 * as long as txn and no write), timeline_hold_due holds each one, NULL for one
 * gone, already listed or not due after all (a key a crash or a flush under way
 * left beside the customer's own: its record says when it is due).
 */
struct due_ref {
	const char *id;
	size_t len;
	int64_t when;                   /* the stored deadline key's moment */
	int stored_key;                 /* from the deadline index (else moving in a flush) */
	struct cust *c;                 /* in memory already (pending): held as it is */
};
size_t timeline_due_list(struct timeline *tl, MDB_txn *txn, int64_t now, struct due_ref *out, size_t max,
			 struct herr *err);
struct cust *timeline_hold_due(struct timeline *tl, MDB_txn *txn, const struct due_ref *r, int64_t now,
			       struct herr *err);

/*
 * The reader's notes (hearth/overlay.h): from now on every successful append,
 * flush slice and forget sends one to fn, which takes it; what is pending now
 * is sent at once. fn runs on the writer, before the append's replies go out.
 */
struct overlay_note;
typedef void (*timeline_sink_fn)(struct overlay_note *note, void *ctx);
void timeline_set_sink(struct timeline *tl, timeline_sink_fn fn, void *ctx);
/*
 * Sends the reader the pending customers changed since the last call without
 * an append (timeline_rebuild_cases): called before each poll and before the
 * answer of a control command, so a reader is at most a loop turn behind.
 */
void timeline_publish_restated(struct timeline *tl);

uint64_t timeline_customer_count(struct timeline *tl);
uint64_t timeline_event_count(struct timeline *tl);
void timeline_get_stats(const struct timeline *tl, struct timeline_stats *out);
/*
 * Reads the next slice of the id index into the filter that spares ingest a
 * read of it for each new id (the writer's loop, until it returns 0). 1: more to read.
 */
int timeline_fill_id_filter(struct timeline *tl);
struct store *timeline_store(struct timeline *tl);

#endif
