/*
 * Workers that evaluate stored customers for a full re-evaluation, each on a
 * read transaction of its own, so that the second core does the reading and
 * the rule stepping while the writer only applies what changed.
 *
 * The writer hands the pool one window of the customers table at a time
 * (reeval_pool_submit): every worker walks the same window and evaluates its
 * share (by a hash of the id). A worker sees the store as of its snapshot,
 * not what is only in the writer's memory: the writer evaluates again itself
 * any customer pending in its memory or written since it submitted the window
 * (reeval.c, on_window). A window's batches are the workers' from submit
 * until ready(); then the writer's until the submit after next: each worker
 * has two and the windows use them in turn, so the writer applies one
 * window's results while the workers evaluate the next.
 *
 * A tick hands the pool a list of due customers instead and waits for it
 * (reeval_pool_submit_list, reeval_pool_wait); the workers take it in chunks
 * as they get to them, and also write the notification bodies but their seq,
 * which the writer assigns.
 *
 * An ingest group lends the pool its customers as the writer holds them,
 * each as soon as the writer has folded the last of its events in the group
 * (reeval_pool_lend_begin, _lend, _lend_end), so that the workers evaluate
 * while the writer folds the rest: a worker evaluates each one it takes as
 * the writer would, keeping its memo, with the alert states as of the last
 * commit (the group has written none yet: the writer's journal, which the
 * fold does not change, and the store on the worker's snapshot). A rule that
 * reads the timeline cannot be answered there (the pending events are the
 * writer's): that customer comes back unevaluated and the writer does it.
 */
#ifndef HEARTH_REEVAL_WORKER_H
#define HEARTH_REEVAL_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include <sys/types.h>

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/limits.h"

struct alert_states;
struct cust;
struct loop;
struct ruleset;
struct store;

/* One alert a worker stepped to a new state. */
struct reeval_change {
	size_t rule;
	struct alert a;                 /* values_json owned here until taken */
	enum alert_state before;
	int64_t since_before;
	enum notify_kind kind;
	size_t rest_off, rest_len;      /* a notification's body after its seq, in the batch's rests */
	size_t packed_off, packed_len;  /* the same as the outbox stores it (body_codec_pack_rest) */
};

/* One customer of the window (or list) a worker evaluated. */
struct reeval_cust {
	size_t id_off, id_len;          /* in the batch's ids */
	size_t index;                   /* a list's: the customer's place in it */
	int64_t deadline, stored_deadline;
	size_t first_change, nchanges;  /* in the batch's changes */
};

struct reeval_batch {
	const struct ruleset *rs;
	int64_t now;
	int list;                       /* evaluate the pool's list, not a window */
	uint64_t gen;                   /* held customers': the rules' generation their memos are of */
	/* what the worker found */
	char *ids;
	size_t ids_len, ids_cap;
	struct reeval_cust *custs;
	size_t ncusts, custs_cap;
	struct reeval_change *changes;
	size_t nchanges, changes_cap;
	struct wbuf rests;              /* notification_body_rest of changes that notify */
	struct wbuf packed;             /* those compressed, off the writer */
	char last[HEARTH_ID_MAX];       /* the window's last customer (every worker's) */
	size_t last_len;
	int done;                       /* the window reached the table's end */
	int failed;
	char error[256];
	ssize_t error_rule;             /* a rule's run-time error, -1 none */
	char rule_error[200];
};

struct reeval_pool;

/* n workers reading st; ready() runs on loop when a submitted window is all evaluated. */
struct reeval_pool *reeval_pool_new(struct store *st, size_t n, struct loop *loop,
				    void (*ready)(void *ctx), void *ctx, struct herr *err);
void reeval_pool_free(struct reeval_pool *pool);
/*
 * Starts a window: up to limit customers after `after` (after_len 0: from the
 * first), which the workers take in chunks. 0, or -1 when a window is still
 * out (or the pool has no worker).
 */
int reeval_pool_submit(struct reeval_pool *pool, const struct ruleset *rs, int64_t now, const char *after,
		       size_t after_len, size_t limit);
/*
 * Starts the evaluation of a list of customers instead (ids copied; a tick's
 * due customers), results carrying their index in it; the same -1. A customer
 * not in the store comes back with nchanges SIZE_MAX, for the writer.
 */
int reeval_pool_submit_list(struct reeval_pool *pool, const struct ruleset *rs, int64_t now,
			    const char *const *ids, const size_t *lens, size_t n);
/*
 * Starts the evaluation of up to `most` customers the writer will lend as it
 * holds them (reeval_pool_lend), at now with their memos (of ruleset
 * generation gen), reading the alert journal as. 0, or -1 when the pool is
 * busy, has no worker or no memory.
 */
int reeval_pool_lend_begin(struct reeval_pool *pool, const struct ruleset *rs, int64_t now, uint64_t gen,
			   struct alert_states *as, size_t most);
/*
 * Lends c, whose result carries index: the writer changes nothing of it until
 * reeval_pool_lend_end, nor the alert journal. One past `most` is not lent.
 */
void reeval_pool_lend(struct reeval_pool *pool, struct cust *c, size_t index);
/*
 * No more to lend: the writer takes what the workers have not yet taken, in
 * chunks as they do, reading DB_ALERTS in txn (its own, before the group
 * writes anything there), then waits for them. Its results are in batch
 * reeval_pool_size(), after the workers'. A lent customer whose result says
 * nchanges == SIZE_MAX, or one no batch names (a batch failed or it was not
 * lent), is the writer's to evaluate.
 */
void reeval_pool_lend_end(struct reeval_pool *pool, MDB_txn *txn);
/* Waits until the workers are done; their batches are then the writer's, ready() is not called. */
void reeval_pool_wait(struct reeval_pool *pool);
int reeval_pool_busy(const struct reeval_pool *pool);
/* Worker i's batch of the last window submitted, once ready() ran (or after drain). */
size_t reeval_pool_size(const struct reeval_pool *pool);
/* The batches of a lending: the workers' and the writer's seat's (the last). */
size_t reeval_pool_lent_size(const struct reeval_pool *pool);
struct reeval_batch *reeval_pool_batch(struct reeval_pool *pool, size_t i);
/* Waits for a window out (the rules it reads are about to go), and forgets its results. */
void reeval_pool_drain(struct reeval_pool *pool);
/* Frees what the batches hold (values_json of changes not taken). */
void reeval_batch_reset(struct reeval_batch *b);

#endif
