/*
 * What the engine's files share: evaluation and publishing (engine.c), and
 * the operator's side, silences, acks, alert listings and forget (steering.c),
 * and history loads whose evaluation waits for their end (load.c).
 * Not for use outside them.
 */
#ifndef HEARTH_ENGINE_IMPL_H
#define HEARTH_ENGINE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/alert.h"
#include "hearth/engine.h"
#include "hearth/limits.h"
#include "hearth/silence.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"

struct config;
struct cust;
struct ingest_clock;
struct loop;
struct store;


struct change {
	struct cust *c;
	size_t rule;
	struct alert a;
	enum alert_state before;
	enum notify_kind kind;
	int silenced;
	char *body;                     /* the notification, built in the write */
	const void *rest;               /* its part after the seq, if a worker built it (NULL: none) */
	size_t rest_len;
	const void *packed;             /* that part as the outbox stores it, if the worker packed it */
	size_t packed_len;
	uint64_t seq;
	int drop;                       /* delete the record: its rule is gone */
	char topic[96];
};

struct engine {
	const struct config *cfg;       /* the one rs was compiled from */
	struct store *st;
	struct timeline *tl;
	struct loop *loop;
	const struct ingest_clock *clock;
	struct ruleset *rs;
	struct outbox *ob;              /* the daemon's: written with the changes, published after */
	struct alert *alerts;           /* one customer's alerts, by rule index */
	struct change *changes;
	size_t nchanges, changes_cap;
	struct json_tokener *tok;       /* reused: attrs in window scans, stored silences */
	struct silence *silences;
	size_t nsilences;
	uint64_t next_silence_id;
	uint64_t silences_gen;          /* bumped at each change: re-posted to the board */
	uint64_t errors_gen;            /* bumped when a rule's last_error is set or the rules change */
	MDB_txn *txn;                   /* the read transaction of the evaluation in hand */
	int64_t ingest_now;             /* the group commit's evaluation time */
	uint64_t ingest_seq;            /* and its last notification */
	struct cust **due;
	int tick_timer;
	int slice_timer;                /* a continuation of a tick or re-evaluation */
	int tick_more;                  /* the last tick slice was full: more may be due */
	int reeval;                     /* a full re-evaluation is under way */
	char reeval_after[HEARTH_ID_MAX + 1];
	size_t reeval_after_len;
	int reeval_started;
	struct id_list reeval_fresh;    /* new customers pending when it began: evaluated first */
	size_t reeval_next_fresh;
	struct reeval_pool *pool;       /* workers evaluating windows of stored customers; NULL: none */
	int window_out;                 /* a window is with the workers */
	uint64_t window_gen;            /* its generation of the timeline's write watch */
	struct cust **standins;         /* the window's customers known by id alone (apply_customer) */
	size_t nstandins, standins_cap;
	int rebuild_cases;              /* this re-evaluation also rebuilds case state */
	uint64_t cases_sig;             /* of the config the rebuild is for */
	struct engine_stats stats;
	/* history loads (load.c) */
	struct strmap deferred;         /* customer → NULL: stored by a load, not evaluated since */
	struct cust **newly_deferred;   /* by the ingest group in hand: written with it */
	size_t nnewly_deferred, newly_deferred_cap;
	int load_deferred_group;        /* the ingest group in hand has load events */
	int64_t load_last_us;           /* monotonic time of the last load batch */
	int load_timer;
	int undeferring;                /* the load ended: deferred customers are evaluated in slices */
	char undefer_after[HEARTH_ID_MAX + 1];
	size_t undefer_after_len;
	size_t nundefer;                /* eng->due[0..nundefer) leave the deferred table with the changes */
	uint64_t undeferred_total;
};

/* step.c */
struct eval_env;
struct ruleset;
/* How a stepper builds an expression's environment for c at now (window scans included). */
struct step_env {
	void (*env)(void *ctx, const struct cust *c, int64_t now, struct eval_env *env);
	void *ctx;
};
struct step_sink {
	/* rule's alert changed to *a (whose values_json the sink may take, leaving NULL) */
	void (*changed)(void *ctx, size_t rule, struct alert *a, enum alert_state before,
			int64_t since_before, enum notify_kind kind);
	/* rule's condition failed at run time (a window the timeline could not read, ...) */
	void (*failed)(void *ctx, size_t rule, const char *error);
	void *ctx;
};
/* Steps each rule's alert (alerts[i]: the stored state, changed in place) for c at now; the next deadline. */
int64_t engine_step(const struct ruleset *rs, struct alert *alerts, const struct cust *c, int64_t now,
		    const struct step_env *se, const struct step_sink *sink);

/* engine.c */
/* A fresh entry in the changes the next engine_commit_changes writes; NULL when out of memory. */
struct change *engine_push_change(struct engine *eng);
/* A change of c's alert for the next commit (a's values_json moved into it), silenced as the silences say. */
struct change *engine_take_change(struct engine *eng, struct cust *c, size_t rule, struct alert *a,
				  enum alert_state before, int64_t since_before, enum notify_kind kind,
				  int64_t now);
/*
 * How a commit writes alert states: customers walked in key order (a
 * re-evaluation, a load's end, dropped rules) write page after page in
 * place; customers spread over the key space (a tick's due customers, one
 * forgotten) append to the journal, applied sorted with the next flush
 * (hearth/alert_states.h), instead of a page each.
 */
enum change_writes { WRITES_IN_KEY_ORDER, WRITES_SCATTERED };
/* Writes the pending changes in one transaction, then publishes their notifications. */
void engine_commit_changes(struct engine *eng, int64_t now, enum change_writes how);
/* Fills eng->alerts with customer c's stored alert states. */
void engine_load_alerts(struct engine *eng, MDB_txn *txn, const struct cust *c);
/* Evaluates custs[0..n) at now, then writes and publishes what changed. */
void engine_evaluate_and_commit(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n,
				int64_t now, enum change_writes how);
/* Asks for a slice of tick, re-evaluation or load-end work on a later loop turn. */
void engine_schedule_slice(struct engine *eng);

/* load.c */
int engine_load_open(struct engine *eng, struct herr *err);
void engine_load_close(struct engine *eng);
/* Inside the group commit: defers c (touched only by load events); -1 (out of memory): evaluate it. */
int engine_defer(struct engine *eng, struct cust *c);
/* Puts the group's newly deferred customers, and the slice's undeferred ones, into w. */
void engine_load_write(struct engine *eng, struct wtxn *w);
void engine_load_group_end(struct engine *eng, int committed);
/* Removes deferred customers from custs (ticks and re-evaluation wait for the load's end). */
size_t engine_drop_deferred(struct engine *eng, struct cust **custs, size_t n);
/* One slice of the evaluation at a load's end; 1 while more remain. */
int engine_undefer_slice(struct engine *eng, int64_t now);

/* steering.c */
int engine_load_silences(struct engine *eng, struct herr *err);
/* Does an active silence cover this rule and customer now? */
int engine_silenced(struct engine *eng, const char *rule, const struct cust *c, int64_t now);
const char *engine_rule_severity(const struct engine *eng, const char *rule);

#endif
