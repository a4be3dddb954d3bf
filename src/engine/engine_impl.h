/*
 * What the engine's files share (engine.c names each and its concern).
 * Not for use outside them.
 */
#ifndef HEARTH_ENGINE_IMPL_H
#define HEARTH_ENGINE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/engine.h"
#include "hearth/limits.h"
#include "hearth/silence.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"

struct config;
struct cust;
struct ingest_clock;
struct loop;
struct reeval_batch;
struct reeval_cust;
struct store;

/* The most customers eng->due holds: one slice of a tick, a re-evaluation or a load's end. */
#define DUE_MAX         20000

struct change {
	struct cust *c;
	size_t rule;
	struct alert a;
	enum alert_state before;
	enum notify_kind kind;
	int silenced;
	size_t body_off, body_len;      /* the notification in engine.bodies, built in the write (0: none) */
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
	/*
	 * What customers' memos hold (step.c) is true of this generation: a new
	 * ruleset, or alert states changed or lost outside the memos' steps
	 * (steering, forget, a failed commit), start a new one.
	 */
	uint64_t memo_gen;
	struct outbox *ob;              /* the daemon's: written with the changes, published after */
	struct alert *alerts;           /* one customer's alerts, by rule index */
	struct change *changes;
	size_t nchanges, changes_cap;
	struct wbuf bodies;             /* the changes' notifications, one after another */
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
	struct due_ref *due_refs;        /* a tick's due customers, named before they are held */
	int tick_timer;
	int tick_more_timer;            /* the tick's next slice: its last was full */
	int reeval_timer;               /* the re-evaluation's next slice */
	int reeval;                     /* a full re-evaluation is under way */
	char reeval_after[HEARTH_ID_MAX + 1];
	size_t reeval_after_len;
	int reeval_started;
	struct id_list reeval_fresh;    /* new customers pending when it began: evaluated first */
	size_t reeval_next_fresh;
	struct reeval_pool *pool;       /* workers evaluating windows of stored customers; NULL: none */
	int window_out;                 /* a window is with the workers */
	int ingest_workers;             /* the ingest group in hand took changes from their batches */
	int lending;                    /* the group's customers are lent to the workers as folded */
	const struct reeval_batch **lent_by;    /* where each touched customer's result is, when back */
	const struct reeval_cust **lent_res;
	size_t lent_cap;
	uint64_t window_gen;            /* its generation of the timeline's write watch */
	int rebuild_cases;              /* this re-evaluation also rebuilds case state */
	uint64_t cases_sig;             /* of the config the rebuild is for */
	struct engine_stats stats;
	/* history loads (defer.c, load_end.c) */
	struct strmap deferred;         /* customer → NULL: stored by a load, not evaluated since */
	struct cust **newly_deferred;   /* by the ingest group in hand: written with it */
	size_t nnewly_deferred, newly_deferred_cap;
	int load_deferred_group;        /* the ingest group in hand has load events */
	int64_t load_last_us;           /* monotonic time of the last load batch */
	int load_timer;
	int undefer_timer;              /* the load end's next slice */
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
	/* Fills the step's alerts with the customer's stored states (inactive where none is stored). */
	void (*load)(void *ctx);
	void *ctx;
	/*
	 * The writer's: the customer it holds, whose memo (state.h) lets rules be
	 * skipped that it proves unchanged, and the stored states go unread when
	 * nothing changes, under memo generation gen (engine.memo_gen); the memo is
	 * brought up to date. NULL: every rule is evaluated.
	 */
	struct cust *memo;
	uint64_t gen;
};
struct step_sink {
	/* rule's alert changed to *a (whose values_json the sink may take, leaving NULL) */
	void (*changed)(void *ctx, size_t rule, struct alert *a, enum alert_state before,
			int64_t since_before, enum notify_kind kind);
	/* rule's condition failed at run time (a window the timeline could not read, ...) */
	void (*failed)(void *ctx, size_t rule, const char *error);
	void *ctx;
};
struct rule;
/* The summary and values rule r shows in env, put in a: what a notification of it says. */
void engine_render_alert(const struct rule *r, struct eval_env *env, struct alert *a);
/*
 * The same for a resolution made without an evaluation (forget, a removed
 * rule: eng->rs's rule): the stored text is the last notification's, the
 * resolution says what holds at now.
 */
void engine_render_resolution(struct engine *eng, MDB_txn *txn, const struct cust *c, size_t rule, int64_t now,
			      struct alert *a);
/*
 * A change of c's alert for rule (an inactive one: its state is deleted),
 * about to be stored, told to c's memo: it may not come from c's own step.
 */
void engine_memo_alert(struct cust *c, size_t rule, const struct alert *a);
/*
 * Steps each rule's alert for c at now (alerts: filled by se->load, or from the
 * memo, then changed in place); the next deadline.
 */
int64_t engine_step(const struct ruleset *rs, struct alert *alerts, const struct cust *c, int64_t now,
		    const struct step_env *se, const struct step_sink *sink);

/* env.c */
/* Fills eng->alerts with customer c's stored alert states. */
void engine_load_alerts(struct engine *eng, MDB_txn *txn, const struct cust *c);

/* commit.c */
/* What every customer's memo holds is no longer to be trusted (engine.memo_gen). */
static inline void engine_memos_stale(struct engine *eng)
{
	eng->memo_gen++;
}
/* A fresh entry in the changes the next engine_commit_changes writes; NULL when out of memory. */
struct change *engine_push_change(struct engine *eng);
/* A change of c's alert for the next commit (a's values_json moved into it), silenced as the silences say. */
struct change *engine_take_change(struct engine *eng, struct cust *c, size_t rule, struct alert *a,
				  enum alert_state before, int64_t since_before, enum notify_kind kind,
				  int64_t now);
/* Evaluates c at now on txn: its changes go to the next commit, its deadline to the timeline. */
void engine_evaluate_one(struct engine *eng, MDB_txn *txn, struct cust *c, int64_t now);
/* A customer the workers evaluated as the store had it: c is held, its changes go to the next commit. */
void engine_apply_worker_result(struct engine *eng, struct cust *c, const struct reeval_batch *b,
				const struct reeval_cust *rc);
/*
 * How a commit writes alert states: customers walked in key order (a
 * re-evaluation, a load's end, dropped rules) write page after page in
 * place; customers spread over the key space (a tick's due customers, one
 * forgotten) append to the journal, applied sorted with the next flush
 * (hearth/alert_states.h), instead of a page each.
 */
enum change_writes { WRITES_IN_KEY_ORDER, WRITES_SCATTERED };
/* Puts the changes and their notifications into w; *seq: the last notification's. */
int engine_put_changes(struct engine *eng, struct wtxn *w, int64_t now, uint64_t *seq, int in_place,
		       struct herr *err);
/* The changes are durable, up to notification seq: count and publish them. */
void engine_publish_changes(struct engine *eng, uint64_t seq);
void engine_free_changes(struct engine *eng);
/* Writes the pending changes in one transaction, then publishes their notifications. */
void engine_commit_changes(struct engine *eng, int64_t now, enum change_writes how);
/* Evaluates custs[0..n) at now, then writes and publishes what changed. */
void engine_evaluate_and_commit(struct engine *eng, MDB_txn *txn, struct cust **custs, size_t n,
				int64_t now, enum change_writes how);
/* Counts an alert in or out of the firing and pending figures. */
void engine_count_state(struct engine *eng, enum alert_state s, int delta);

/* tick.c */
/* Arms the next tick, evaluation.interval from now. */
void engine_tick_start(struct engine *eng);

/* reeval.c */
void engine_reeval_open(struct engine *eng);
void engine_reeval_close(struct engine *eng);
/* A window out with the workers is waited for and forgotten: the rules it reads are about to go. */
void engine_drop_window(struct engine *eng);
/* Has events.cases changed since the stored case state was built? Then the next re-evaluation rebuilds it. */
void engine_check_cases(struct engine *eng);

/* reload.c */
int engine_size_rules(struct engine *eng);
int engine_count_alerts(struct engine *eng, struct herr *err);
void engine_record_rules(struct engine *eng);
void engine_drop_removed_rules(struct engine *eng, const struct ruleset *next);

/* defer.c */
int engine_load_open(struct engine *eng, struct herr *err);
void engine_load_close(struct engine *eng);
/* Inside the group commit: defers c (touched only by load events); -1 (out of memory): evaluate it. */
int engine_defer(struct engine *eng, struct cust *c);
/* Puts the group's newly deferred customers, and the slice's undeferred ones, into w. */
void engine_load_write(struct engine *eng, struct wtxn *w);
/* The ingest group is over; 1 if it committed load events. */
int engine_load_group_end(struct engine *eng, int committed);
/* Removes deferred customers from custs (ticks and re-evaluation wait for the load's end). */
size_t engine_drop_deferred(struct engine *eng, struct cust **custs, size_t n);

/* load_end.c */
/* At the start: a load cut short by a stop ends when its client stays away for load_idle. */
void engine_load_resume(struct engine *eng);
/* A load batch was committed: the load ends when none comes for load_idle. */
void engine_load_batch_done(struct engine *eng);

/* silences.c */
int engine_load_silences(struct engine *eng, struct herr *err);
/* Does an active silence cover this rule and customer now? */
int engine_silenced(struct engine *eng, const char *rule, const struct cust *c, int64_t now);

/* steering.c */
const char *engine_rule_severity(const struct engine *eng, const char *rule);

#endif
