/*
 * What the command files share (src/control/commands.c and src/cmd_*.c), not for use elsewhere:
 * the argument readers of args.c and the handlers the command table names.
 */
#ifndef HEARTH_COMMANDS_IMPL_H
#define HEARTH_COMMANDS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/commands.h"
#include "hearth/err.h"
#include "hearth/store.h"

struct cust;
struct expr;
struct job;
struct json_object;
struct server;

/* args.c: each names the argument in its error */
struct json_object *arg(struct json_object *req, const char *name);
int arg_string(struct json_object *req, const char *name, int required, const char **s, size_t *len,
	       struct herr *err);
int arg_id(struct json_object *req, const char *name, const char **s, size_t *len, struct herr *err);
int arg_limit(struct json_object *req, size_t def, size_t *out, struct herr *err);
int arg_bool(struct json_object *req, const char *name, int *out, struct herr *err);
int arg_time(struct json_object *req, const char *name, int64_t *out, struct herr *err);
int arg_duration(struct json_object *req, const char *name, int64_t *out, struct herr *err);
/* Compiles an expression given in a request; bad_expr names the column. */
struct config;
struct expr *arg_expr(const struct config *cfg, struct json_object *req, const char *name, int required,
		      struct herr *err);
struct json_object *time_or_null(int64_t ms);

/* reader.c: what reader commands read through (struct reader) */
struct board_status;
struct event;
struct timeline_query;
void reader_status(struct reader *rd, struct board_status *out);
int64_t reader_now(struct reader *rd);
int reader_begin(struct reader *rd, MDB_txn **txn, struct herr *err);
/* The same for a read of customer id alone: only its alert states are brought up to date. */
int reader_begin_customer(struct reader *rd, MDB_txn **txn, const char *id, size_t len, struct herr *err);
/* A read transaction of the store alone, without the alert states' catching up: for reads that show none. */
int reader_begin_store(struct reader *rd, MDB_txn **txn, struct herr *err);
void reader_end(struct reader *rd, MDB_txn *txn);
/*
 * The firing alerts of an answer's list (alert_to_json's objects) say what
 * their rule renders now for their customer (known: one already read, or NULL).
 */
void reader_firing_now(struct reader *rd, MDB_txn *txn, struct json_object *alerts, const struct cust *known);
struct cust *reader_customer(struct reader *rd, MDB_txn *txn, const char *id, size_t len, int *owned,
			     struct herr *err);
int reader_query(struct reader *rd, MDB_txn *txn, const struct timeline_query *q,
		 int (*fn)(const struct event *ev, void *ctx), void *ctx, int *more, struct herr *err);
/* Customers after `after` in id order, with what is pending (timeline_customers). */
int reader_customers(struct reader *rd, MDB_txn *txn, const char *after, size_t after_len,
		     size_t limit, int (*fn)(const struct cust *c, void *ctx), void *ctx, int *more,
		     struct herr *err);
/* Before a read transaction that walks every customer: on the writer, pending state is flushed. */
int reader_settle(struct reader *rd, struct herr *err);
/* An environment for expressions about c whose window scans read the reader's view (scan: its storage). */
struct engine_scan;
struct eval_env;
void reader_env(struct reader *rd, MDB_txn *txn, struct engine_scan *scan, const struct cust *c,
		int64_t now, struct eval_env *env);
/* A rule's last error (the writer's, posted to the board off it): 1 and out set, or 0. */
struct rule;
int reader_rule_error(struct reader *rd, const struct rule *r, char *out, size_t size);
/* The silences as the writer keeps them: *owned says whether the caller frees *s. */
struct silence;
int reader_silences(struct reader *rd, struct silence **s, size_t *n, int *owned, struct herr *err);
/* The text of `metrics`: the writer's counters (posted off it) and the control thread's. */
struct wbuf;
void reader_metrics(struct reader *rd, struct wbuf *out);
/* The config's priority for a customer now; NULL without a priority. */
struct json_object *reader_score(struct reader *rd, MDB_txn *txn, const struct cust *c);

/* cmd_customers.c, cmd_rules.c, cmd_alerts.c: the handlers (command_fn, command_job_fn, command_read_fn) */
int cmd_ingest(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_load_end(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_customer(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_customers_ranked(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_customers(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_top(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_timeline(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_forget(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_reload(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_eval(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_explain(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_rules(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
struct job *cmd_reload_dry_run(struct server *srv, struct json_object *req, struct herr *err);
struct job *cmd_backtest(struct server *srv, struct json_object *req, struct herr *err);
int cmd_alerts(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_ack(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_silence_add(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_silence_list(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_silence_remove(struct server *srv, struct json_object *req, struct json_object *ans, struct herr *err);
int cmd_replay(struct reader *rd, struct json_object *req, struct json_object *ans, struct herr *err);

#endif
