/*
 * Control commands (PROTOCOL.md §5): the table every request is dispatched from, and
 * the commands about the daemon itself (ping, status, metrics, the test clock, help).
 * The others live by concern in cmd_customers.c, cmd_rules.c and cmd_alerts.c, and
 * the argument readers they share in args.c.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/batch.h"
#include "hearth/board.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/group_commit.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
#include "hearth/notify.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

/* ---- commands -------------------------------------------------------------- */

static int cmd_ping(struct reader *rd, struct json_object *req, struct json_object *ans,
		    struct herr *err)
{
	(void)rd, (void)req, (void)err;
	json_object_object_add(ans, "pong", json_object_new_boolean(1));
	return 0;
}

/* What each table takes, as of a read transaction of this thread's own. */
static int add_tables(struct reader *rd, struct json_object *store, struct herr *err)
{
	struct store_table t[DB__COUNT];
	struct json_object *tables;
	MDB_txn *txn;
	int rc;

	/* not reader_begin: status is polled, and catching up the alert states is no part of it */
	if (reader_begin_store(rd, &txn, err) < 0)
		return -1;
	rc = store_tables(txn, rd->st, t, err);
	reader_end(rd, txn);
	if (rc < 0)
		return -1;
	tables = json_object_new_object();
	json_object_object_add(store, "tables", tables);
	for (int db = 0; db < DB__COUNT; db++) {
		struct json_object *one = json_object_new_object();
		json_object_object_add(one, "entries", json_object_new_int64((int64_t)t[db].entries));
		json_object_object_add(one, "bytes", json_object_new_int64((int64_t)t[db].bytes));
		json_object_object_add(tables, t[db].name, one);
	}
	return 0;
}

/* Counts as the writer last posted them (a loop turn old at most, PROTOCOL.md §5.6). */
static int cmd_status(struct reader *rd, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	struct json_object *store = json_object_new_object();
	struct board_status s;

	(void)req, (void)err;
	reader_status(rd, &s);
	json_object_object_add(ans, "version", json_object_new_string(HEARTH_VERSION));
	json_object_object_add(ans, "uptime_ms", json_object_new_int64(mono_now_ms() - rd->started_mono_ms));
	json_object_object_add(ans, "customers", json_object_new_int64((int64_t)s.customers));
	json_object_object_add(ans, "events", json_object_new_int64((int64_t)s.events));
	json_object_object_add(ans, "firing", json_object_new_int64((int64_t)s.firing));
	json_object_object_add(ans, "pending", json_object_new_int64((int64_t)s.pending));
	json_object_object_add(ans, "seq", json_object_new_int64((int64_t)s.seq));
	json_object_object_add(ans, "last_tick", time_or_null(s.last_tick));
	json_object_object_add(ans, "tick_ms", json_object_new_int64(s.tick_ms));
	json_object_object_add(ans, "reevaluating", json_object_new_boolean(s.reevaluating));
	json_object_object_add(ans, "reeval_workers", json_object_new_int64((int64_t)s.reeval_workers));
	json_object_object_add(ans, "reevaluated_by_workers", json_object_new_int64((int64_t)s.reeval_by_workers));
	json_object_object_add(ans, "ingest_evaluated_by_workers", json_object_new_int64((int64_t)s.ingest_by_workers));
	json_object_object_add(ans, "ingest_evaluated_beside_workers", json_object_new_int64((int64_t)s.ingest_by_seat));
	json_object_object_add(ans, "deferred", json_object_new_int64((int64_t)s.deferred));
	json_object_object_add(ans, "load_ending", json_object_new_boolean(s.load_ending));
	json_object_object_add(ans, "now", time_or_null(time_now_ms() + s.clock_offset_ms));
	struct json_object *publish = json_object_new_array();
	for (size_t i = 0; i < rd->cfg->npublish_listen; i++)
		json_object_array_add(publish, json_object_new_string(rd->cfg->publish_listen[i]));
	json_object_object_add(ans, "publish", publish);
	json_object_object_add(store, "path", json_object_new_string(store_path(rd->st)));
	json_object_object_add(store, "map_size", json_object_new_int64((int64_t)s.map_size));
	json_object_object_add(store, "used", json_object_new_int64((int64_t)s.used));
	json_object_object_add(ans, "store", store);
	return add_tables(rd, store, err);
}

/* The writer's counters as last posted (a loop turn old at most), the control thread's own. */
static int cmd_metrics(struct reader *rd, struct json_object *req, struct json_object *ans,
		       struct herr *err)
{
	struct wbuf out;

	(void)req;
	wbuf_init(&out);
	reader_metrics(rd, &out);
	if (out.failed) {
		wbuf_free(&out);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	json_object_object_add(ans, "text", json_object_new_string_len((const char *)out.data, (int)out.len));
	wbuf_free(&out);
	return 0;
}


static int clock_move(struct server *srv, int64_t to, struct json_object *ans, struct herr *err)
{
	if (!srv->test_clock)
		return herr_set(err, HERR_FORBIDDEN, "the clock moves only under hearthd --test-clock");
	srv->clock_offset_ms += to - server_now(srv);
	server_publish_clock(srv);      /* before the answer: a request sent after it sees the new clock */
	size_t n = engine_tick(srv->engine);
	json_object_object_add(ans, "now", time_or_null(server_now(srv)));
	json_object_object_add(ans, "evaluated", json_object_new_int64((int64_t)n));
	json_object_object_add(ans, "seq", json_object_new_int64((int64_t)engine_seq(srv->engine)));
	return 0;
}

static int cmd_clock_set(struct server *srv, struct json_object *req, struct json_object *ans,
			 struct herr *err)
{
	int64_t at = TIME_NONE;

	if (arg_time(req, "at", &at, err) < 0)
		return -1;
	if (at == TIME_NONE)
		return herr_set(err, HERR_BAD_REQUEST, "at: required, a time");
	return clock_move(srv, at, ans, err);
}

static int cmd_clock_advance(struct server *srv, struct json_object *req, struct json_object *ans,
			     struct herr *err)
{
	const char *by;
	size_t len;
	int64_t ms;

	if (arg_string(req, "by", 1, &by, &len, err) < 0)
		return -1;
	if (duration_parse(by, len, &ms) < 0)
		return herr_set(err, HERR_BAD_REQUEST, "by: must be a duration such as 90s or 3d");
	return clock_move(srv, server_now(srv) + ms, ans, err);
}


static int cmd_help(struct reader *rd, struct json_object *req, struct json_object *ans,
		    struct herr *err);

const struct command command_table[] = {
	{ "ping", NULL, CMD_READER, "answers pong: is the daemon there", NULL, cmd_ping },
	{ "status", NULL, CMD_READER, "version, uptime, counts, store size", NULL, cmd_status },
	{ "metrics", NULL, CMD_READER, "Prometheus text exposition", NULL, cmd_metrics },
	{ "ingest", cmd_ingest, CMD_CHANGES_STATE, "store events: {events: [...], load?: true|\"end\"}", NULL, NULL },
	{ "load.end", cmd_load_end, CMD_CHANGES_STATE, "a history load is complete: evaluate its customers", NULL, NULL },
	{ "customer", NULL, CMD_READER, "one customer's profile and summary: {id}", NULL, cmd_customer },
	{ "customers", NULL, CMD_READER, "list customers: {limit?, cursor?}", NULL, cmd_customers },
	{ "timeline", NULL, CMD_READER, "a customer's events: {id, since?, until?, types?, desc?, limit?, cursor?}", NULL, cmd_timeline },
	{ "forget", cmd_forget, CMD_CHANGES_STATE, "remove every trace of a customer: {id}", NULL, NULL },
	{ "alerts", NULL, CMD_READER, "alerts: {state? (firing|pending|resolved|all), rule?, customer?, owner?, limit?}", NULL, cmd_alerts },
	{ "ack", cmd_ack, CMD_CHANGES_STATE, "stop repeats of a firing alert: {rule, customer, by?, comment?}", NULL, NULL },
	{ "silence.add", cmd_silence_add, CMD_CHANGES_STATE, "mute matching alerts: {rule?, customer?, owner?, until | for, by?, comment?}", NULL, NULL },
	{ "silence.list", NULL, CMD_READER, "active silences", NULL, cmd_silence_list },
	{ "silence.remove", cmd_silence_remove, CMD_CHANGES_STATE, "end a silence: {id}", NULL, NULL },
	{ "rules", NULL, CMD_READER, "each rule with its firing and pending counts and last error", NULL, cmd_rules },
	{ "eval", NULL, CMD_READER, "evaluate an expression for a customer: {expr, customer, at?}", NULL, cmd_eval },
	{ "explain", NULL, CMD_READER, "a rule's value and every term for a customer: {rule, customer, at?}", NULL, cmd_explain },
	{ "top", NULL, CMD_READER, "customers ranked by the configured priority: {n?, where?}", NULL, cmd_top },
	{ "replay", NULL, CMD_READER, "notifications after a seq from the outbox: {after, limit?}", NULL, cmd_replay },
	{ "clock.set", cmd_clock_set, CMD_CHANGES_STATE, "--test-clock only: move the clock to {at} and tick", NULL, NULL },
	{ "clock.advance", cmd_clock_advance, CMD_CHANGES_STATE, "--test-clock only: move the clock {by} and tick", NULL, NULL },
	{ "reload", cmd_reload, CMD_CHANGES_STATE, "re-read the configuration", NULL, NULL },
	{ "reload.dry_run", NULL, CMD_CHANGES_STATE,
	  "what re-reading the configuration would fire, resolve or change now, without applying it", cmd_reload_dry_run, NULL },
	{ "help", NULL, CMD_READER, "the commands this daemon knows", NULL, cmd_help },
	{ "backtest", NULL, 0, "what a rule would have done over a window: "
	  "{rule | when, for?, repeat?, from?, to?, where?, detail?, compare?}", cmd_backtest, NULL },
	{ NULL, NULL, 0, NULL, NULL, NULL },
};

static int cmd_help(struct reader *rd, struct json_object *req, struct json_object *ans,
		    struct herr *err)
{
	struct json_object *list = json_object_new_array();

	(void)rd, (void)req, (void)err;
	for (const struct command *c = command_table; c->name; c++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "cmd", json_object_new_string(c->name));
		json_object_object_add(o, "changes_state", json_object_new_boolean(c->flags & CMD_CHANGES_STATE));
		json_object_object_add(o, "help", json_object_new_string(c->help));
		json_object_array_add(list, o);
	}
	json_object_object_add(ans, "commands", list);
	return 0;
}

const struct command *command_find(const char *name)
{
	for (const struct command *c = command_table; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}
