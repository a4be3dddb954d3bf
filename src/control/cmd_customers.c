/*
 * Commands about customers and their events (PROTOCOL.md §5.8-5.12, §5.18): ingest and
 * the end of a history load, one customer, lists ranked by expressions, top, the
 * timeline and forget.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/batch.h"
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

int cmd_ingest(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	struct json_object *events = arg(req, "events"), *load = arg(req, "load"), *reply, *v;
	struct batch *b;
	int rc = -1, defer = 0, end = 0;

	if (!events || !json_object_is_type(events, json_type_array))
		return herr_set(err, HERR_BAD_REQUEST, "events: required, an array of events");
	if (load && json_object_is_type(load, json_type_string) && strcmp(json_object_get_string(load), "end") == 0)
		defer = end = 1;
	else if (load && json_object_is_type(load, json_type_boolean))
		defer = json_object_get_boolean(load);
	else if (load)
		return herr_set(err, HERR_BAD_REQUEST, "load: must be true, false or \"end\"");
	if (!(b = batch_new()))
		return herr_set(err, HERR_NOMEM, "out of memory");
	b->defer = (uint8_t)defer;
	batch_take_array(b, events, server_now(srv), srv->cfg->max_future_ms);
	srv->counters.ingest_rejected += b->nrejects;
	if (b->fail.code == HERR_OK && b->nevents > 0)
		group_commit(&srv->gc, &b, 1);
	if (b->fail.code != HERR_OK) {
		*err = b->fail;
		goto out;
	}
	if (end)
		engine_load_end(srv->engine);
	reply = batch_reply(b);
	json_object_object_foreach(reply, key, val) {
		if (strcmp(key, "ok") != 0)
			json_object_object_add(ans, key, json_object_get(val));
	}
	(void)v;
	json_object_put(reply);
	rc = 0;
out:
	batch_free(b);
	return rc;
}

/* The end of a history load: its deferred customers are evaluated in slices from now. */
int cmd_load_end(struct server *srv, struct json_object *req, struct json_object *ans,
			struct herr *err)
{
	struct engine_stats s;

	(void)req;
	(void)err;
	engine_load_end(srv->engine);
	engine_get_stats(srv->engine, &s);
	json_object_object_add(ans, "deferred", json_object_new_int64((int64_t)s.deferred));
	return 0;
}

int cmd_customer(struct reader *rd, struct json_object *req, struct json_object *ans,
		 struct herr *err)
{
	const char *id;
	size_t len;
	MDB_txn *txn;
	struct cust *c;
	struct json_object *o;
	int owned;

	if (arg_id(req, "id", &id, &len, err) < 0 || reader_begin_customer(rd, &txn, id, len, err) < 0)
		return -1;
	c = reader_customer(rd, txn, id, len, &owned, err);
	if (!c) {
		reader_end(rd, txn);
		return -1;
	}
	o = cust_to_json(c);
	if (o) {
		struct json_object *alerts = engine_alerts_of(rd->as, rd->st, rd->rs, txn, id, len);
		reader_firing_now(rd, txn, alerts, c);
		json_object_object_add(o, "alerts", alerts);
		json_object_object_add(o, "score", reader_score(rd, txn, c));
	}
	reader_end(rd, txn);
	if (owned)
		cust_free(c);
	if (!o)
		return herr_set(err, HERR_NOMEM, "out of memory");
	json_object_object_add(ans, "customer", o);
	return 0;
}

static int add_row(const struct cust *c, void *ctx)
{
	struct json_object *row = cust_row_json(c);
	return row ? json_object_array_add(ctx, row) : -1;
}

/* One customer found by a where/order/top scan: its sort value and row. */
struct ranked {
	struct value key;               /* numbers, durations, strings (copied) */
	char *key_text;
	char *id;
	struct json_object *row;
};

struct rank_scan {
	struct reader *rd;
	MDB_txn *txn;
	struct expr *where, *order;
	int64_t now;
	struct ranked *items;
	size_t n, cap;
	int failed;
};

static int rank_collect(const struct cust *c, void *vctx)
{
	struct rank_scan *ctx = vctx;
	struct engine_scan scan;
	struct eval_env env;
	struct value v;

	if (ctx->where) {
		reader_env(ctx->rd, ctx->txn, &scan, c, ctx->now, &env);
		if (expr_eval(ctx->where, &env, &v, NULL) < 0 || !value_truthy(&v))
			return 0;
	}
	if (ctx->n == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 256;
		struct ranked *more = realloc(ctx->items, cap * sizeof(*more));
		if (!more)
			return -1;
		ctx->items = more;
		ctx->cap = cap;
	}
	struct ranked *r = &ctx->items[ctx->n];
	memset(r, 0, sizeof(*r));
	r->key.type = TYPE_NULL;
	if (ctx->order) {
		reader_env(ctx->rd, ctx->txn, &scan, c, ctx->now, &env);
		if (expr_eval(ctx->order, &env, &v, NULL) == 0)
			r->key = v;
		if (v.type == TYPE_STR) {
			r->key_text = strndup(v.str.s, v.str.len);
			r->key.str.s = r->key_text;
		}
	}
	r->id = strndup(c->id, c->id_len);
	r->row = cust_row_json(c);
	if (!r->id || !r->row) {
		free(r->id);
		free(r->key_text);
		json_object_put(r->row);
		return -1;
	}
	if (ctx->order)
		json_object_object_add(r->row, "order", value_to_json(&r->key));
	ctx->n++;
	return 0;
}

static double key_number(const struct value *v)
{
	return v->type == TYPE_NUM ? v->num : (double)v->ms;
}

/* Nulls last; numbers and durations by value, strings by bytes; then by id. */
static int ranked_cmp(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	int an = a->key.type == TYPE_NULL, bn = b->key.type == TYPE_NULL;

	if (an != bn)
		return an - bn;
	if (!an && a->key.type == TYPE_STR && b->key.type == TYPE_STR) {
		int c = strcmp(a->key.str.s, b->key.str.s);
		if (c)
			return c;
	} else if (!an && a->key.type != TYPE_STR && b->key.type != TYPE_STR) {
		double x = key_number(&a->key), y = key_number(&b->key);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return strcmp(a->id, b->id);
}

static int ranked_cmp_desc(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	int an = a->key.type == TYPE_NULL, bn = b->key.type == TYPE_NULL;

	if (an != bn)
		return an - bn; /* nulls last either way */
	int c = ranked_cmp(pb, pa);
	return c;
}

static void rank_free(struct rank_scan *ctx)
{
	struct reader *rd = ctx->rd;

	for (size_t i = 0; i < ctx->n; i++) {
		free(ctx->items[i].id);
		free(ctx->items[i].key_text);
		json_object_put(ctx->items[i].row);
	}
	free(ctx->items);
	expr_free(ctx->where);
	expr_free(ctx->order);
	if (rd)
		reader_end(rd, ctx->txn);
}

/* Runs where/order over every customer, sorted; the caller pages or cuts. */
static int rank_scan(struct reader *rd, struct rank_scan *ctx, int desc, struct herr *err)
{
	int more;

	ctx->rd = rd;
	ctx->now = reader_now(rd);
	if (reader_settle(rd, err) < 0 || reader_begin(rd, &ctx->txn, err) < 0)
		return -1;
	if (reader_customers(rd, ctx->txn, NULL, 0, SIZE_MAX, rank_collect, ctx, &more, err) < 0)
		return -1;
	if (ctx->n)
		qsort(ctx->items, ctx->n, sizeof(*ctx->items), desc ? ranked_cmp_desc : ranked_cmp);
	return 0;
}

int cmd_customers_ranked(struct reader *rd, struct json_object *req, struct json_object *ans,
				struct herr *err)
{
	struct rank_scan ctx = { 0 };
	const char *cursor;
	size_t limit, cursor_len, offset = 0;
	int desc, rc = -1;

	if (arg_limit(req, HEARTH_LIST_DEFAULT, &limit, err) < 0 || arg_bool(req, "desc", &desc, err) < 0 ||
	    arg_string(req, "cursor", 0, &cursor, &cursor_len, err) < 0)
		return -1;
	if (cursor && sscanf(cursor, "@%zu", &offset) != 1)
		return herr_set(err, HERR_BAD_REQUEST, "cursor: not one this daemon handed out");
	ctx.where = arg_expr(rd->cfg, req, "where", 0, err);
	if (!ctx.where && err->code == HERR_BAD_EXPR)
		goto out;
	ctx.order = arg_expr(rd->cfg, req, "order", 0, err);
	if (!ctx.order && err->code == HERR_BAD_EXPR)
		goto out;
	if (rank_scan(rd, &ctx, desc, err) < 0)
		goto out;
	struct json_object *list = json_object_new_array();
	for (size_t i = offset; i < ctx.n && i < offset + limit; i++)
		json_object_array_add(list, json_object_get(ctx.items[i].row));
	json_object_object_add(ans, "customers", list);
	if (offset + limit < ctx.n) {
		char buf[32];
		snprintf(buf, sizeof(buf), "@%zu", offset + limit);
		json_object_object_add(ans, "cursor", json_object_new_string(buf));
	}
	rc = 0;
out:
	rank_free(&ctx);
	return rc;
}

int cmd_customers(struct reader *rd, struct json_object *req, struct json_object *ans,
		  struct herr *err)
{
	const char *cursor;
	size_t limit, cursor_len;
	struct json_object *list;
	MDB_txn *txn = NULL;
	int more, rc;

	if (arg(req, "where") || arg(req, "order"))
		return cmd_customers_ranked(rd, req, ans, err);
	if (arg_limit(req, HEARTH_LIST_DEFAULT, &limit, err) < 0 ||
	    arg_string(req, "cursor", 0, &cursor, &cursor_len, err) < 0 ||
	    reader_settle(rd, err) < 0 || reader_begin(rd, &txn, err) < 0)
		return -1;
	list = json_object_new_array();
	rc = reader_customers(rd, txn, cursor, cursor_len, limit, add_row, list, &more, err);
	reader_end(rd, txn);
	if (rc < 0) {
		json_object_put(list);
		return -1;
	}
	json_object_object_add(ans, "customers", list);
	if (more) {
		struct json_object *last = json_object_array_get_idx(list, json_object_array_length(list) - 1);
		struct json_object *id;
		json_object_object_get_ex(last, "id", &id);
		json_object_object_add(ans, "cursor", json_object_get(id));
	}
	return 0;
}

int cmd_top(struct reader *rd, struct json_object *req, struct json_object *ans,
	    struct herr *err)
{
	const struct ruleset *rs = rd->rs;
	struct rank_scan ctx = { 0 };
	struct json_object *v, *list;
	size_t n = HEARTH_TOP_DEFAULT;
	int rc = -1;

	if (!rs->priority)
		return herr_set(err, HERR_CONFIG_ERROR, "the configuration has no 'priority' to rank by");
	if ((v = arg(req, "n"))) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
		    json_object_get_int64(v) > HEARTH_LIST_MAX)
			return herr_set(err, HERR_BAD_REQUEST, "n: must be an integer from 1 to %d",
					HEARTH_LIST_MAX);
		n = (size_t)json_object_get_int64(v);
	}
	ctx.where = arg_expr(rd->cfg, req, "where", 0, err);
	if (!ctx.where && err->code == HERR_BAD_EXPR)
		return -1;
	/* borrowed for the scan; released before rank_free */
	ctx.order = rs->priority;
	rc = rank_scan(rd, &ctx, 1, err);
	ctx.order = NULL;
	if (rc == 0) {
		list = json_object_new_array();
		for (size_t i = 0; i < ctx.n && i < n; i++) {
			struct json_object *row = json_object_get(ctx.items[i].row);
			json_object_object_add(row, "score", value_to_json(&ctx.items[i].key));
			json_object_object_del(row, "order");
			json_object_array_add(list, row);
		}
		json_object_object_add(ans, "customers", list);
	}
	rank_free(&ctx);
	return rc;
}

struct timeline_answer {
	struct json_object *events;
	int64_t last_ts;
	uint64_t last_seq;
};

static int add_event(const struct event *ev, void *vctx)
{
	struct timeline_answer *ctx = vctx;
	struct json_object *o = event_to_json(ev);

	if (!o)
		return -1;
	ctx->last_ts = ev->ts;
	ctx->last_seq = ev->seq;
	return json_object_array_add(ctx->events, o);
}

static int parse_timeline_cursor(const char *s, struct timeline_query *q)
{
	long long ts;
	unsigned long long seq;
	int used = 0;

	if (sscanf(s, "%lld:%llu%n", &ts, &seq, &used) != 2 || s[used] != '\0')
		return -1;
	q->has_after = 1;
	q->after_ts = ts;
	q->after_seq = seq;
	return 0;
}

static int timeline_types(struct json_object *req, struct timeline_query *q, const char ***types,
			  struct herr *err)
{
	struct json_object *v = arg(req, "types");

	*types = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return herr_set(err, HERR_BAD_REQUEST, "types: must be a list of event types");
	size_t n = json_object_array_length(v);
	*types = calloc(n ? n : 1, sizeof(char *));
	if (!*types)
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(v, i);
		if (!json_object_is_type(t, json_type_string))
			return herr_set(err, HERR_BAD_REQUEST, "types: must be a list of event types");
		(*types)[i] = json_object_get_string(t);
	}
	q->types = *types;
	q->ntypes = n;
	return 0;
}

int cmd_timeline(struct reader *rd, struct json_object *req, struct json_object *ans,
		 struct herr *err)
{
	struct timeline_query q = { .since = INT64_MIN, .until = INT64_MAX };
	struct timeline_answer ctx = { 0 };
	const char **types = NULL, *cursor;
	size_t cursor_len;
	MDB_txn *txn = NULL;
	int more = 0, rc = -1;

	if (arg_id(req, "id", &q.customer, &q.customer_len, err) < 0 ||
	    arg_time(req, "since", &q.since, err) < 0 || arg_time(req, "until", &q.until, err) < 0 ||
	    arg_bool(req, "desc", &q.desc, err) < 0 || arg_limit(req, HEARTH_LIST_DEFAULT, &q.limit, err) < 0 ||
	    arg_string(req, "cursor", 0, &cursor, &cursor_len, err) < 0 ||
	    timeline_types(req, &q, &types, err) < 0)
		goto out;
	if (cursor && parse_timeline_cursor(cursor, &q) < 0) {
		herr_set(err, HERR_BAD_REQUEST, "cursor: not one this daemon handed out");
		goto out;
	}
	if (reader_begin_store(rd, &txn, err) < 0)
		goto out;
	ctx.events = json_object_new_array();
	if (reader_query(rd, txn, &q, add_event, &ctx, &more, err) < 0) {
		json_object_put(ctx.events);
		goto out;
	}
	json_object_object_add(ans, "events", ctx.events);
	if (more) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%lld:%llu", (long long)ctx.last_ts,
			 (unsigned long long)ctx.last_seq);
		json_object_object_add(ans, "cursor", json_object_new_string(buf));
	}
	rc = 0;
out:
	reader_end(rd, txn);
	free(types);
	return rc;
}

int cmd_forget(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	const char *id;
	size_t len;
	uint64_t removed;

	if (arg_id(req, "id", &id, &len, err) < 0 || engine_forget(srv->engine, id, len, err) < 0 ||
	    timeline_forget(srv->tl, id, len, &removed, err) < 0)
		return -1;
	json_object_object_add(ans, "events", json_object_new_int64((int64_t)removed));
	return 0;
}
