/*
 * The evaluation engine: runs the rules over customers whose state or clock
 * moved (after an ingest commit, at a tick, or everyone after a reload, in
 * slices), steps each alert's lifecycle, writes state changes and their
 * notifications in one transaction, then publishes them.
 */
#ifndef HEARTH_ENGINE_H
#define HEARTH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/store.h"

struct config;
struct cust;
struct ingest_clock;
struct json_object;
struct loop;
struct outbox;
struct store;
struct ruleset;
struct timeline;
struct engine;
struct eval_env;

struct engine_stats {
	uint64_t evaluations, notifications, silenced, ticks, errors;
	int64_t last_tick;              /* wall time of the last tick (TIME_NONE before) */
	int64_t tick_us;                /* duration of the last tick */
	uint64_t tick_customers;        /* customers the last tick evaluated */
	uint64_t firing, pending;
	uint64_t flapping;              /* resolved within evaluation.flap_window of firing */
	uint64_t deferred;              /* customers of a history load not evaluated yet */
	int reevaluating, load_ending;
	uint64_t reeval_workers;        /* threads evaluating re-evaluation windows (0: the writer alone) */
	uint64_t reeval_by_workers;     /* customers whose re-evaluation the workers' answer settled */
	uint64_t ingest_by_workers;     /* customers of ingest groups the workers evaluated */
	uint64_t ingest_by_seat;        /* ... the writer evaluated beside them, at the end of its fold */
};

/*
 * Takes rs (compiled from cfg); writes its changes to st with their
 * notifications in ob, then publishes them there. Times are read off clock.
 */
struct engine *engine_open(const struct config *cfg, struct store *st, struct timeline *tl,
			   struct outbox *ob, struct loop *loop, const struct ingest_clock *clock,
			   struct ruleset *rs, struct herr *err);
/* An engine that only evaluates for others (dry runs against a store): never writes. */
struct engine *engine_open_reader(struct timeline *tl, struct herr *err);
void engine_close(struct engine *eng);
/* After a reload: takes ownership of rs; starts a re-evaluation of everyone in slices. */
void engine_set_rules(struct engine *eng, const struct config *cfg, struct ruleset *rs);
const struct ruleset *engine_rules(const struct engine *eng);

/*
 * Inside the group commit's transaction (src/ingest/group_commit.c): evaluates the
 * customers the group's events touched, reading through txn, and writes their
 * alert changes and notifications into w (again, if the transaction is
 * retried). engine_ingest_end publishes them once committed, or drops them.
 */
struct strmap;
/*
 * The fold of a group without load events begins (`events` accepted events,
 * about `customers` customers, as many or fewer): when it returns nonzero,
 * the workers take each customer handed to engine_ingest_folded (as the
 * writer holds it, all its events of the group folded, index its place among
 * the touched customers) while the fold goes on.
 */
int engine_ingest_fold_begin(struct engine *eng, size_t events, size_t customers);
void engine_ingest_folded(struct engine *eng, struct cust *c, size_t index);
/* live: the customers of the group's live events; NULL when the group has no load events. */
void engine_ingest_evaluate(struct engine *eng, MDB_txn *txn, const struct strmap *live);
int engine_ingest_write(struct engine *eng, struct wtxn *w, struct herr *err);
void engine_ingest_end(struct engine *eng, int committed);
/* Evaluates everyone due now (the engine's clock); returns customers evaluated. */
size_t engine_tick(struct engine *eng);
/* A history load ended: evaluate its deferred customers, a slice per loop turn. */
void engine_load_end(struct engine *eng);
/* Starts (or restarts) evaluating every customer, a slice per loop turn. */
void engine_reevaluate_all(struct engine *eng);

/* For `eval`, `explain`, `top`: an environment for one customer at `now`. */
void engine_env(struct engine *eng, MDB_txn *txn, const struct cust *c, int64_t now,
		struct eval_env *env);
/* The alerts of one customer (answer form) as of txn and as, severities from rs. */
struct alert_states;
struct json_object *engine_alerts_of(struct alert_states *as, struct store *st, const struct ruleset *rs,
				     MDB_txn *txn, const char *id, size_t len);

/*
 * An environment whose window scans go through query (the writer's timeline
 * or a reader's overlay, hearth/overlay.h) rather than the engine's own.
 */
struct timeline_query;
struct event;
struct json_tokener;
typedef int (*engine_query_fn)(void *qctx, MDB_txn *txn, const struct timeline_query *q,
			       int (*fn)(const struct event *ev, void *ctx), void *ctx, int *more,
			       struct herr *err);
struct engine_scan {
	engine_query_fn query;
	void *qctx;
	MDB_txn *txn;
	struct json_tokener *tok;       /* for attribute sums */
};
void engine_scan_env(struct engine_scan *s, const struct cust *c, int64_t now, struct eval_env *env);
/*
 * `alerts` over the store as of txn, severities from rs; the owner filter
 * loads customers through cust (the writer's timeline or a reader's overlay):
 * owned says whether the caller frees what it returns.
 */
typedef struct cust *(*engine_cust_fn)(void *cctx, MDB_txn *txn, const char *id, size_t len,
				       int *owned, struct herr *err);
int engine_alerts_list(struct alert_states *as, struct store *st, const struct ruleset *rs, MDB_txn *txn,
		       engine_cust_fn cust, void *cctx, struct json_object *req, struct json_object *ans,
		       struct herr *err);
int engine_ack(struct engine *eng, const char *rule, const char *customer, size_t clen,
	       const char *by, struct herr *err);
int engine_silence_add(struct engine *eng, struct json_object *req, struct json_object *ans,
		       struct herr *err);
/* The silences as kept (for the board) and the count of changes so far. */
struct silence;
void engine_silences(const struct engine *eng, const struct silence **s, size_t *n, uint64_t *gen);
/* The count of changes to the rules' last errors (a reload, an evaluation error). */
uint64_t engine_errors_gen(const struct engine *eng);
int engine_silence_remove(struct engine *eng, uint64_t id, struct herr *err);
/* Removes a customer's alert state, publishing `resolved` for firing alerts. */
int engine_forget(struct engine *eng, const char *id, size_t len, struct herr *err);
uint64_t engine_seq(const struct engine *eng);
void engine_get_stats(const struct engine *eng, struct engine_stats *out);

#endif
