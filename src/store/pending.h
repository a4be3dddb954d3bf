/*
 * The timeline's pending state, what its files share (timeline.c names
 * each). Not for use outside them.
 */
#ifndef HEARTH_STORE_PENDING_H
#define HEARTH_STORE_PENDING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/limits.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "idfilter.h"
#include "idset.h"
#include "store_impl.h"
#include "tindex.h"

struct config;

#define TL_KEY_MAX (HEARTH_ID_MAX + 1 + 16)
#define TL_LMDB_KEY_MAX 511     /* LMDB's longest key (MDB_MAXKEYSIZE as Debian builds it) */

struct pending_ev {
	int64_t ts;
	uint64_t seq;
	char type[HEARTH_NAME_MAX + 1];
	uint8_t type_len;               /* kept: every note, flush and merge wants it */
};

struct dirty {
	struct cust *c;
	struct pending_ev *ev;
	size_t n, cap;
	int is_new;
	int64_t stored_deadline;        /* the deadline key in DB_DEADLINES */
	int64_t stale_deadline;         /* a key a tick found that is not the customer's: to delete */
	int changed;                    /* state rewritten without a new event */
	uint64_t mark;                  /* generation of the last touched/due listing */
	size_t touched_at;              /* its place in that listing */
	uint64_t lent_mark;             /* the append (its mark) that handed it to the fold's watch */
};

/* A deadline key to delete or put: written after the customers, sorted, not in their slices. */
struct deadline_move {
	int64_t when;
	size_t cust;                    /* index in flush_job.custs */
	int put;
};

/* A flush under way: what was pending when it began, written slice by slice. */
struct flush_job {
	int active;
	uint64_t upto_seq;              /* indexed_seq once every slice is written */
	char **custs;                   /* sorted customer ids (copies) */
	size_t *lens, ncusts, next_cust;
	uint64_t *hashes;               /* their strmap_hash: each is looked up twice, a few ahead */
	struct idset ids;               /* the event ids pending when it began */
	struct idset_key *id_order;     /* ids in key order (NULL until sorted) */
	/* a large flush's ids are sorted on a thread of their own while the customers are written */
	pthread_t id_sorter;
	int id_sorting;                 /* id_sorter runs: joined before id_order is read */
	size_t nids, next_id;
	struct deadline_move *moves;    /* sorted once the customers are written */
	size_t nmoves, moves_cap, next_move;
	int moves_sorted;
	int64_t started_us;
	size_t events;
};

struct timeline {
	struct store *st;
	const struct config *cfg;
	struct strmap dirty;            /* customer id → struct dirty */
	/*
	 * Customers a flush has written, as the writer held them (the record's
	 * state and the engine's memo): the next event of one takes it from here instead
	 * of reading and decoding that record again, most of a burst's loads.
	 * clean has the current flush's, clean_old the one before's; what no
	 * event took by the end of the next flush moves to dying, freed a stretch
	 * per loop turn (100,000 customers freed at once held the loop for tens
	 * of milliseconds). Once nothing is pending, all of them go the same
	 * way and then the heap is given back. At most CLEAN_MAX in clean and
	 * clean_old.
	 */
	struct strmap clean, clean_old, dying;  /* customer id → struct cust */
	size_t dying_pos;               /* where freeing dying goes on */
	int burst_ended;                /* a flush left nothing pending: give the heap back once the kept are gone */
	struct idset ids;               /* event ids not yet in DB_IDS nor in job.ids */
	struct idset spare_ids;         /* the last flush's ids emptied, its table kept for the next */
	/* the ids DB_IDS may hold; filled from it after opening, slice by slice (not when read-only) */
	struct idfilter *id_filter;
	char id_filter_after[TL_LMDB_KEY_MAX];  /* the last key filled in (len 0: none yet) */
	size_t id_filter_after_len;
	int id_filter_failed;           /* reading the index failed: every id is read there until a restart */
	uint64_t next_seq;
	size_t pending_events, new_customers;
	int64_t pending_since_ms;       /* monotonic time of the oldest pending change */
	int64_t last_append_ms;
	int64_t trimmed_ms;             /* when the heap was last given back */
	/*
	 * No pending customer's deadline is earlier than this (INT64_MIN: unknown),
	 * so a tick need not walk them all; evaluation lowers it as it sets deadlines.
	 */
	int64_t pending_min_deadline;
	struct wbuf rec;
	struct tindex_scratch tindex;   /* the flush's buffers for the time index */
	struct tindex_entry *adding;    /* a customer's pending events, as time index entries */
	size_t adding_cap;
	struct cust **touched;          /* customers changed by the last append */
	struct dirty **touched_dirty;   /* the same, as pending entries */
	size_t ntouched, touched_cap;
	uint32_t *fold_left;            /* events of the append still to fold, by a hash of their customer */
	size_t fold_left_cap;
	struct event **fold_ev;         /* the append's accepted events in order, and their customers' hashes */
	uint64_t *fold_hash;
	size_t fold_ev_cap, fold_hash_cap;
	uint64_t *id_hash;              /* the strmap_hash of each event id of the append, in order */
	size_t id_hash_cap;
	uint64_t append_from_seq;       /* the last append's first log seq */
	uint64_t mark;
	struct flush_job job;
	struct alert_states *alerts;    /* the writer's: the journal since the last apply */
	struct timeline_stats stats;
	timeline_sink_fn sink;          /* the reader's notes (hearth/overlay.h), NULL: none */
	void *sink_ctx;
	uint64_t gen;                   /* of the last note sent */
	struct note_encoder *encoder;   /* encodes an append's note while the writer commits (notes.c) */
	int encoding;                   /* it has one in hand: the touched customers are its */
	/*
	 * Pending customers whose record changed without an append (their cases
	 * rebuilt): the reader learns of them by timeline_publish_restated.
	 */
	struct strmap restated;
	/* customers written since timeline_watch_begin (flushes, forget, alert states) */
	struct write_watch watch;
	struct strmap watch_ids;
};

/* pending.c: the key of the deadline index, and a pending entry's end */
size_t timeline_deadline_key(uint8_t *buf, int64_t when, const char *cust, size_t len);
void timeline_dirty_free(struct dirty *d);
/* Frees a written customer's entry, its state kept in tl->clean while there is room. */
void timeline_dirty_retire(struct timeline *tl, struct dirty *d);
/* The customer's state from tl->clean, taken out of it; NULL if not there. */
struct cust *timeline_clean_take(struct timeline *tl, const char *id, size_t len, uint64_t hash);
/* At the end of a flush: clean_old's customers go to dying, clean's become clean_old. */
void timeline_clean_age(struct timeline *tl);
/* Frees a stretch of dying; 1 while some are left. */
int timeline_clean_free_some(struct timeline *tl);
/* With nothing pending: the next step of giving every kept customer back; 0 once done. */
int timeline_clean_wind_down(struct timeline *tl);
/* Frees every kept customer at once (rollback, close). */
void timeline_clean_drop(struct timeline *tl);
/* qsort order of pending events: time, then log seq. */
int pending_ev_cmp(const void *a, const void *b);
/* The customer's state from the store, or a new one (*found = 0); NULL on failure. */
struct cust *timeline_load(struct store *st, MDB_txn *txn, const char *id, size_t len, int *found,
			   struct herr *err);
/* timeline_read.c: timeline_query over the store and the sorted pending entries pev (also the overlay's). */
int timeline_merge(struct store *st, MDB_txn *txn, const struct timeline_query *q,
		   const struct pending_ev *pev, size_t pn, timeline_event_fn fn, void *ctx, int *more,
		   struct herr *err);
/* The log record of seq, decoded, to fn. */
int timeline_log_event(struct store *st, MDB_txn *txn, uint64_t seq, timeline_event_fn fn, void *ctx,
		       struct herr *err);
/* c's cases rebuilt from its case events in time order: the store's as of txn and pev (sorted). */
int timeline_replay_cases(struct store *st, MDB_txn *txn, const struct config *cfg, struct cust *c,
			  const struct pending_ev *pev, size_t pn, struct herr *err);
/* flush.c */
void flush_job_free(struct flush_job *job);

/* notes.c: overlay notes (hearth/overlay.h) to the sink, if one is set */
/* What the last append changed: the touched customers and their events from its first seq on. */
void timeline_publish_append(struct timeline *tl);
/* The last append's note is dropped (its commit failed): its customers are the writer's again. */
void timeline_append_note_drop(struct timeline *tl);
/* The encoder thread stops (timeline_close). */
void timeline_notes_end(struct timeline *tl);
void timeline_publish_flushed(struct timeline *tl, size_t from, size_t to);
/* A customer is gone (forget.c). */
void timeline_publish_forget(struct timeline *tl, const char *id, size_t len);

#endif
