/*
 * Control commands (PROTOCOL.md §5). Each handler reads its arguments with the arg_*
 * helpers, which name the argument in every error, and adds its answer fields
 * to `ans`. The table at the bottom is the single list of commands.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/backtest.h"
#include "hearth/batch.h"
#include "hearth/dry_run.h"
#include "hearth/codec.h"
#include "hearth/commands.h"
#include "hearth/alert.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/eval.h"
#include "hearth/expr.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/event.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
#include "hearth/notify.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

/* ---- arguments ------------------------------------------------------------- */

static struct json_object *arg(struct json_object *req, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, name, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

static int arg_string(struct json_object *req, const char *name, int required, const char **s,
		      size_t *len, struct herr *err)
{
	struct json_object *v = arg(req, name);

	*s = NULL;
	*len = 0;
	if (!v)
		return required ? herr_set(err, HERR_BAD_REQUEST, "%s: required", name) : 0;
	if (!json_object_is_type(v, json_type_string))
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be a string", name);
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return 0;
}

static int arg_id(struct json_object *req, const char *name, const char **s, size_t *len,
		  struct herr *err)
{
	if (arg_string(req, name, 1, s, len, err) < 0)
		return -1;
	if (!id_is_valid(*s, *len))
		return herr_set(err, HERR_BAD_REQUEST,
				"%s: must be 1 to %d bytes without control characters", name,
				HEARTH_ID_MAX);
	return 0;
}

static int arg_limit(struct json_object *req, size_t def, size_t *out, struct herr *err)
{
	struct json_object *v = arg(req, "limit");

	*out = def;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
	    json_object_get_int64(v) > HEARTH_LIST_MAX)
		return herr_set(err, HERR_BAD_REQUEST, "limit: must be an integer from 1 to %d",
				HEARTH_LIST_MAX);
	*out = (size_t)json_object_get_int64(v);
	return 0;
}

static int arg_bool(struct json_object *req, const char *name, int *out, struct herr *err)
{
	struct json_object *v = arg(req, name);

	*out = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be true or false", name);
	*out = json_object_get_boolean(v);
	return 0;
}

static int arg_time(struct json_object *req, const char *name, int64_t *out, struct herr *err)
{
	struct json_object *v = arg(req, name);

	if (!v)
		return 0;
	if (time_from_json(v, out) < 0)
		return herr_set(err, HERR_BAD_REQUEST,
				"%s: must be RFC 3339 text or integer unix milliseconds", name);
	return 0;
}

static struct json_object *time_or_null(int64_t ms)
{
	char buf[TIME_BUF];
	return ms == TIME_NONE ? NULL : json_object_new_string(time_format(ms, buf, sizeof(buf)));
}

/* The config's priority for a customer now; null without a priority. */
static struct json_object *score_json(struct server *srv, MDB_txn *txn, const struct cust *c)
{
	const struct ruleset *rs = engine_rules(srv->engine);
	struct eval_env env;
	struct value v;

	if (!rs->priority)
		return NULL;
	engine_env(srv->engine, txn, c, server_now(srv), &env);
	if (expr_eval(rs->priority, &env, &v, NULL) < 0)
		return NULL;
	return value_to_json(&v);
}

/* Compiles an expression given in a request; bad_expr names the column. */
static struct expr *arg_expr(struct server *srv, struct json_object *req, const char *name,
			     int required, struct herr *err)
{
	const char *src;
	size_t len, pos;
	char msg[200];
	struct expr *e;

	if (arg_string(req, name, required, &src, &len, err) < 0 || !src)
		return NULL;
	e = expr_compile(src, srv->cfg, msg, sizeof(msg), &pos);
	if (!e)
		herr_set(err, HERR_BAD_EXPR, "%s: column %zu: %s", name, pos + 1, msg);
	return e;
}

/* ---- commands -------------------------------------------------------------- */

static int cmd_ping(struct server *srv, struct json_object *req, struct json_object *ans,
		    struct herr *err)
{
	(void)srv, (void)req, (void)err;
	json_object_object_add(ans, "pong", json_object_new_boolean(1));
	return 0;
}

static int cmd_status(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	struct json_object *store = json_object_new_object();

	(void)req, (void)err;
	json_object_object_add(ans, "version", json_object_new_string(HEARTH_VERSION));
	json_object_object_add(ans, "uptime_ms", json_object_new_int64(mono_now_ms() - srv->started_mono_ms));
	json_object_object_add(ans, "customers", json_object_new_int64((int64_t)timeline_customer_count(srv->tl)));
	json_object_object_add(ans, "events", json_object_new_int64((int64_t)timeline_event_count(srv->tl)));
	struct engine_stats es;
	engine_get_stats(srv->engine, &es);
	json_object_object_add(ans, "firing", json_object_new_int64((int64_t)es.firing));
	json_object_object_add(ans, "pending", json_object_new_int64((int64_t)es.pending));
	json_object_object_add(ans, "seq", json_object_new_int64((int64_t)engine_seq(srv->engine)));
	json_object_object_add(ans, "last_tick", time_or_null(es.last_tick));
	json_object_object_add(ans, "tick_ms", json_object_new_int64(es.tick_us / 1000));
	json_object_object_add(ans, "reevaluating", json_object_new_boolean(es.reevaluating));
	json_object_object_add(ans, "deferred", json_object_new_int64((int64_t)es.deferred));
	json_object_object_add(ans, "load_ending", json_object_new_boolean(es.load_ending));
	json_object_object_add(ans, "now", time_or_null(server_now(srv)));
	struct json_object *publish = json_object_new_array();
	for (size_t i = 0; i < srv->cfg->npublish_listen; i++)
		json_object_array_add(publish, json_object_new_string(srv->cfg->publish_listen[i]));
	json_object_object_add(ans, "publish", publish);
	json_object_object_add(store, "path", json_object_new_string(store_path(srv->st)));
	json_object_object_add(store, "map_size", json_object_new_int64((int64_t)store_map_size(srv->st)));
	json_object_object_add(store, "used", json_object_new_int64((int64_t)store_used(srv->st)));
	json_object_object_add(ans, "store", store);
	return 0;
}

static int cmd_metrics(struct server *srv, struct json_object *req, struct json_object *ans,
		       struct herr *err)
{
	struct wbuf out;

	(void)req;
	wbuf_init(&out);
	metrics_render(srv, &out);
	if (out.failed) {
		wbuf_free(&out);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	json_object_object_add(ans, "text", json_object_new_string_len((const char *)out.data, (int)out.len));
	wbuf_free(&out);
	return 0;
}

static int cmd_ingest(struct server *srv, struct json_object *req, struct json_object *ans,
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
		group_commit(srv, &b, 1);
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
static int cmd_load_end(struct server *srv, struct json_object *req, struct json_object *ans,
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

static int cmd_customer(struct server *srv, struct json_object *req, struct json_object *ans,
			struct herr *err)
{
	const char *id;
	size_t len;
	MDB_txn *txn;
	struct cust *c;
	struct json_object *o;
	int owned;

	if (arg_id(req, "id", &id, &len, err) < 0 || store_read_begin(srv->st, &txn, err) < 0)
		return -1;
	c = timeline_customer(srv->tl, txn, id, len, &owned, err);
	if (!c) {
		mdb_txn_abort(txn);
		return -1;
	}
	o = cust_to_json(c);
	if (o) {
		json_object_object_add(o, "alerts", engine_customer_alerts(srv->engine, txn, id, len));
		json_object_object_add(o, "score", score_json(srv, txn, c));
	}
	mdb_txn_abort(txn);
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
	struct server *srv;
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
	struct eval_env env;
	struct value v;

	if (ctx->where) {
		engine_env(ctx->srv->engine, ctx->txn, c, ctx->now, &env);
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
		engine_env(ctx->srv->engine, ctx->txn, c, ctx->now, &env);
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
	for (size_t i = 0; i < ctx->n; i++) {
		free(ctx->items[i].id);
		free(ctx->items[i].key_text);
		json_object_put(ctx->items[i].row);
	}
	free(ctx->items);
	expr_free(ctx->where);
	expr_free(ctx->order);
	if (ctx->txn)
		mdb_txn_abort(ctx->txn);
}

/* Runs where/order over every customer, sorted; the caller pages or cuts. */
static int rank_scan(struct server *srv, struct rank_scan *ctx, int desc, struct herr *err)
{
	int more;

	ctx->srv = srv;
	ctx->now = server_now(srv);
	if (store_read_begin(srv->st, &ctx->txn, err) < 0)
		return -1;
	if (timeline_customers(srv->tl, NULL, 0, SIZE_MAX, rank_collect, ctx, &more, err) < 0)
		return -1;
	if (ctx->n)
		qsort(ctx->items, ctx->n, sizeof(*ctx->items), desc ? ranked_cmp_desc : ranked_cmp);
	return 0;
}

static int cmd_customers_ranked(struct server *srv, struct json_object *req, struct json_object *ans,
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
	ctx.where = arg_expr(srv, req, "where", 0, err);
	if (!ctx.where && err->code == HERR_BAD_EXPR)
		goto out;
	ctx.order = arg_expr(srv, req, "order", 0, err);
	if (!ctx.order && err->code == HERR_BAD_EXPR)
		goto out;
	if (rank_scan(srv, &ctx, desc, err) < 0)
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

static int cmd_customers(struct server *srv, struct json_object *req, struct json_object *ans,
			 struct herr *err)
{
	const char *cursor;
	size_t limit, cursor_len;
	struct json_object *list;
	int more;

	if (arg(req, "where") || arg(req, "order"))
		return cmd_customers_ranked(srv, req, ans, err);
	if (arg_limit(req, HEARTH_LIST_DEFAULT, &limit, err) < 0 ||
	    arg_string(req, "cursor", 0, &cursor, &cursor_len, err) < 0)
		return -1;
	list = json_object_new_array();
	if (timeline_customers(srv->tl, cursor, cursor_len, limit, add_row, list, &more, err) < 0) {
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

static int cmd_top(struct server *srv, struct json_object *req, struct json_object *ans,
		   struct herr *err)
{
	const struct ruleset *rs = engine_rules(srv->engine);
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
	ctx.where = arg_expr(srv, req, "where", 0, err);
	if (!ctx.where && err->code == HERR_BAD_EXPR)
		return -1;
	/* borrowed for the scan; released before rank_free */
	ctx.order = rs->priority;
	rc = rank_scan(srv, &ctx, 1, err);
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

static int cmd_timeline(struct server *srv, struct json_object *req, struct json_object *ans,
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
	if (store_read_begin(srv->st, &txn, err) < 0)
		goto out;
	ctx.events = json_object_new_array();
	if (timeline_query(srv->tl, txn, &q, add_event, &ctx, &more, err) < 0) {
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
	if (txn)
		mdb_txn_abort(txn);
	free(types);
	return rc;
}

static int cmd_forget(struct server *srv, struct json_object *req, struct json_object *ans,
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

static int cmd_reload(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	char msg[4096];

	(void)req, (void)ans;
	notify_reloading();
	int rc = server_reload(srv, msg, sizeof(msg));
	notify_ready();
	if (rc < 0)
		return herr_set(err, HERR_CONFIG_ERROR, "%s", msg);
	return 0;
}

/* ---- rules and alerts ------------------------------------------------------ */

struct rebuild_ctx {
	struct cust *c;
	const struct config *cfg;
};

static int rebuild_event(const struct event *ev, void *vctx)
{
	struct rebuild_ctx *ctx = vctx;
	struct event copy = *ev;

	copy.seq = 0; /* time order, not log order: fold every one in */
	return cust_apply(ctx->c, &copy, ctx->cfg);
}

/* The customer as their timeline stood at `at` (for eval/explain of the past). */
static struct cust *cust_at(struct server *srv, MDB_txn *txn, const char *id, size_t len,
			    int64_t at, struct herr *err)
{
	struct timeline_query q = { .customer = id, .customer_len = len, .since = INT64_MIN,
				    .until = at, .limit = SIZE_MAX };
	struct rebuild_ctx ctx = { cust_new(id, len), srv->cfg };
	int more;

	if (!ctx.c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	if (timeline_query(srv->tl, txn, &q, rebuild_event, &ctx, &more, err) < 0) {
		cust_free(ctx.c);
		return NULL;
	}
	if (ctx.c->events == 0) {
		cust_free(ctx.c);
		herr_set(err, HERR_NOT_FOUND, "customer '%.*s' has no events at that time", (int)len, id);
		return NULL;
	}
	return ctx.c;
}

/* The customer now (state as kept) or at a past time (rebuilt from the timeline). */
static struct cust *cust_for_eval(struct server *srv, MDB_txn *txn, struct json_object *req,
				  const char *id_arg, int64_t *at, int *owned, struct herr *err)
{
	const char *id;
	size_t len;

	*at = server_now(srv);
	if (arg_id(req, id_arg, &id, &len, err) < 0)
		return NULL;
	if (arg(req, "at")) {
		if (arg_time(req, "at", at, err) < 0)
			return NULL;
		*owned = 1;
		return cust_at(srv, txn, id, len, *at, err);
	}
	return timeline_customer(srv->tl, txn, id, len, owned, err);
}

static int cmd_eval(struct server *srv, struct json_object *req, struct json_object *ans,
		    struct herr *err)
{
	struct expr *e = arg_expr(srv, req, "expr", 1, err);
	struct cust *c = NULL;
	MDB_txn *txn = NULL;
	struct eval_env env;
	struct value v;
	int64_t at, next;
	int owned = 0, rc = -1;

	if (!e || store_read_begin(srv->st, &txn, err) < 0)
		goto out;
	if (!(c = cust_for_eval(srv, txn, req, "customer", &at, &owned, err)))
		goto out;
	engine_env(srv->engine, txn, c, at, &env);
	if (expr_eval(e, &env, &v, &next) < 0) {
		herr_set(err, HERR_BAD_EXPR, "evaluation failed");
		goto out;
	}
	json_object_object_add(ans, "value", value_to_json(&v));
	json_object_object_add(ans, "type", json_object_new_string(vtype_name(v.type)));
	json_object_object_add(ans, "at", time_or_null(at));
	json_object_object_add(ans, "changes_at", time_or_null(next == EVAL_NEVER ? TIME_NONE : next));
	if (env.error[0])
		json_object_object_add(ans, "warning", json_object_new_string(env.error));
	rc = 0;
out:
	if (owned)
		cust_free(c);
	if (txn)
		mdb_txn_abort(txn);
	expr_free(e);
	return rc;
}

static int cmd_explain(struct server *srv, struct json_object *req, struct json_object *ans,
		       struct herr *err)
{
	const struct ruleset *rs = engine_rules(srv->engine);
	const struct rule *r;
	const char *name;
	size_t len;
	struct cust *c = NULL;
	MDB_txn *txn = NULL;
	struct eval_env env;
	struct value v;
	int64_t at, next;
	int owned = 0, rc = -1;
	char summary[512];

	if (arg_string(req, "rule", 1, &name, &len, err) < 0)
		return -1;
	if (!(r = ruleset_find(rs, name)))
		return herr_set(err, HERR_NOT_FOUND, "no rule '%.40s'", name);
	if (store_read_begin(srv->st, &txn, err) < 0)
		return -1;
	if (!(c = cust_for_eval(srv, txn, req, "customer", &at, &owned, err)))
		goto out;
	engine_env(srv->engine, txn, c, at, &env);
	if (expr_eval(r->when, &env, &v, &next) < 0)
		v.type = TYPE_NULL;
	json_object_object_add(ans, "rule", json_object_new_string(r->cfg->name));
	json_object_object_add(ans, "when", json_object_new_string(r->cfg->when));
	json_object_object_add(ans, "value", value_to_json(&v));
	json_object_object_add(ans, "terms", rule_values(r, &env));
	tmpl_render(&r->summary, &env, summary, sizeof(summary));
	json_object_object_add(ans, "summary", json_object_new_string(summary));
	json_object_object_add(ans, "at", time_or_null(at));
	json_object_object_add(ans, "changes_at", time_or_null(next == EVAL_NEVER ? TIME_NONE : next));
	if (env.error[0])
		json_object_object_add(ans, "warning", json_object_new_string(env.error));
	rc = 0;
out:
	if (owned)
		cust_free(c);
	mdb_txn_abort(txn);
	return rc;
}

static int count_rule_states(struct server *srv, uint64_t *firing, uint64_t *pending)
{
	const struct ruleset *rs = engine_rules(srv->engine);
	struct store *st = srv->st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, val;
	struct herr err;
	int rc;

	if (store_read_begin(st, &txn, &err) < 0)
		return -1;
	if (mdb_cursor_open(txn, store_dbi(st, DB_ALERTS), &cur) == 0) {
		for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			const char *zero = memchr(key.mv_data, 0, key.mv_size);
			char rule[HEARTH_NAME_MAX + 1];
			if (!zero || val.mv_size < 2)
				continue;
			size_t rlen = key.mv_size - (size_t)(zero + 1 - (const char *)key.mv_data);
			if (rlen > HEARTH_NAME_MAX)
				continue;
			memcpy(rule, zero + 1, rlen);
			rule[rlen] = '\0';
			ssize_t i = ruleset_index(rs, rule);
			uint8_t state = ((const uint8_t *)val.mv_data)[1];
			if (i >= 0 && state == ALERT_FIRING)
				firing[i]++;
			else if (i >= 0 && state == ALERT_PENDING)
				pending[i]++;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return 0;
}

static int cmd_rules(struct server *srv, struct json_object *req, struct json_object *ans,
		     struct herr *err)
{
	const struct ruleset *rs = engine_rules(srv->engine);
	uint64_t *firing = calloc(rs->n + 1, sizeof(uint64_t)), *pending = calloc(rs->n + 1, sizeof(uint64_t));
	struct json_object *list = json_object_new_array();

	(void)req;
	if (!firing || !pending || count_rule_states(srv, firing, pending) < 0) {
		free(firing);
		free(pending);
		json_object_put(list);
		return herr_set(err, HERR_STORE_ERROR, "cannot count alert states");
	}
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(r->cfg->name));
		json_object_object_add(o, "severity", json_object_new_string(severity_name(r->cfg->severity)));
		json_object_object_add(o, "when", json_object_new_string(r->cfg->when));
		json_object_object_add(o, "for", json_object_new_int64(r->cfg->for_ms));
		json_object_object_add(o, "repeat", json_object_new_int64(r->cfg->repeat_ms));
		json_object_object_add(o, "firing", json_object_new_int64((int64_t)firing[i]));
		json_object_object_add(o, "pending", json_object_new_int64((int64_t)pending[i]));
		json_object_object_add(o, "last_error", r->last_error[0] ? json_object_new_string(r->last_error) : NULL);
		json_object_array_add(list, o);
	}
	json_object_object_add(ans, "rules", list);
	free(firing);
	free(pending);
	return 0;
}

static int cmd_alerts(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	return engine_alerts(srv->engine, req, ans, err);
}

static int cmd_ack(struct server *srv, struct json_object *req, struct json_object *ans,
		   struct herr *err)
{
	const char *rule, *customer, *by;
	size_t rlen, clen, blen;

	(void)ans;
	if (arg_string(req, "rule", 1, &rule, &rlen, err) < 0 ||
	    arg_id(req, "customer", &customer, &clen, err) < 0 ||
	    arg_string(req, "by", 0, &by, &blen, err) < 0)
		return -1;
	return engine_ack(srv->engine, rule, customer, clen, by, err);
}

static int cmd_silence_add(struct server *srv, struct json_object *req, struct json_object *ans,
			   struct herr *err)
{
	return engine_silence_add(srv->engine, req, ans, err);
}

static int cmd_silence_list(struct server *srv, struct json_object *req, struct json_object *ans,
			    struct herr *err)
{
	(void)req;
	return engine_silence_list(srv->engine, ans, err);
}

static int cmd_silence_remove(struct server *srv, struct json_object *req, struct json_object *ans,
			      struct herr *err)
{
	struct json_object *v = arg(req, "id");

	(void)ans;
	if (!v || !json_object_is_type(v, json_type_int))
		return herr_set(err, HERR_BAD_REQUEST, "id: required, the silence's number");
	return engine_silence_remove(srv->engine, (uint64_t)json_object_get_int64(v), err);
}

static int cmd_replay(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	struct json_object *v = arg(req, "after"), *list;
	size_t limit = HEARTH_REPLAY_DEFAULT;

	if (!v || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return herr_set(err, HERR_BAD_REQUEST, "after: required, a seq (0 for the start)");
	if ((v = arg(req, "limit")) && arg_limit(req, limit, &limit, err) < 0)
		return -1;
	list = json_object_new_array();
	if (outbox_replay(engine_outbox(srv->engine), (uint64_t)json_object_get_int64(arg(req, "after")),
			  limit, list, err) < 0) {
		json_object_put(list);
		return -1;
	}
	json_object_object_add(ans, "notifications", list);
	json_object_object_add(ans, "last_seq", json_object_new_int64((int64_t)engine_seq(srv->engine)));
	return 0;
}

static int clock_move(struct server *srv, int64_t to, struct json_object *ans, struct herr *err)
{
	if (!srv->test_clock)
		return herr_set(err, HERR_FORBIDDEN, "the clock moves only under hearthd --test-clock");
	srv->clock_offset_ms += to - server_now(srv);
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

/* ---- backtest ------------------------------------------------------------------ */

#define BACKTEST_DEFAULT_SPAN (90 * MS_PER_DAY)
#define BACKTEST_MAX_SPAN     (3660 * MS_PER_DAY)

static int arg_duration(struct json_object *req, const char *name, int64_t *out, struct herr *err)
{
	const char *s;
	size_t len;

	if (arg_string(req, name, 0, &s, &len, err) < 0)
		return -1;
	if (s && duration_parse(s, len, out) < 0)
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be a duration such as 30d, 12h or 0s", name);
	return 0;
}

/* A configured rule, compiled afresh from its text: a reload cannot free it under the job. */
static int backtest_rule_named(struct server *srv, const char *field, const char *name,
			       struct backtest_rule *out, struct herr *err)
{
	const struct rule *r = ruleset_find(engine_rules(srv->engine), name);
	char msg[200];
	size_t pos;

	if (!r)
		return herr_set(err, HERR_NOT_FOUND, "%s: no rule '%.40s'", field, name);
	if (!(out->when = expr_compile(r->cfg->when, srv->cfg, msg, sizeof(msg), &pos)))
		return herr_set(err, HERR_BAD_EXPR, "%s: rule '%s': %s", field, name, msg);
	out->for_ms = r->cfg->for_ms;
	out->repeat_ms = r->cfg->repeat_ms;
	snprintf(out->name, sizeof(out->name), "%s", r->cfg->name);
	return 0;
}

static struct job *cmd_reload_dry_run(struct server *srv, struct json_object *req, struct herr *err)
{
	(void)req;
	return dry_run_job_new(srv, err);
}

static struct job *cmd_backtest(struct server *srv, struct json_object *req, struct herr *err)
{
	struct backtest_params p = { .nrules = 1 };
	struct backtest_rule *first = &p.rules[0];
	const char *name, *other;
	size_t len;

	if (arg_string(req, "rule", 0, &name, &len, err) < 0 ||
	    arg_string(req, "compare", 0, &other, &len, err) < 0)
		goto fail;
	if (name && arg(req, "when")) {
		herr_set(err, HERR_BAD_REQUEST, "when: give a rule or a when, not both");
		goto fail;
	}
	if (name) {
		if (backtest_rule_named(srv, "rule", name, first, err) < 0)
			goto fail;
	} else {
		if (!(first->when = arg_expr(srv, req, "when", 1, err)) ||
		    arg_duration(req, "for", &first->for_ms, err) < 0 ||
		    arg_duration(req, "repeat", &first->repeat_ms, err) < 0)
			goto fail;
		snprintf(first->name, sizeof(first->name), "when");
	}
	if (other && backtest_rule_named(srv, "compare", other, &p.rules[p.nrules++], err) < 0)
		goto fail;
	p.to = server_now(srv);
	if (arg_time(req, "to", &p.to, err) < 0)
		goto fail;
	p.from = p.to - BACKTEST_DEFAULT_SPAN;
	if (arg_time(req, "from", &p.from, err) < 0 || arg_bool(req, "detail", &p.detail, err) < 0)
		goto fail;
	if (p.from >= p.to || p.to - p.from > BACKTEST_MAX_SPAN) {
		herr_set(err, HERR_BAD_REQUEST, "from: must be before to, and at most 3660 days before it");
		goto fail;
	}
	if (arg(req, "where") && !(p.where = arg_expr(srv, req, "where", 0, err)))
		goto fail;
	return backtest_job_new(srv, &p, err);
fail:
	for (int r = 0; r < BACKTEST_RULES; r++)
		expr_free(p.rules[r].when);
	expr_free(p.where);
	return NULL;
}

static int cmd_help(struct server *srv, struct json_object *req, struct json_object *ans,
		    struct herr *err);

const struct command command_table[] = {
	{ "ping", cmd_ping, 0, "answers pong: is the daemon there", NULL },
	{ "status", cmd_status, 0, "version, uptime, counts, store size", NULL },
	{ "metrics", cmd_metrics, 0, "Prometheus text exposition", NULL },
	{ "ingest", cmd_ingest, CMD_CHANGES_STATE, "store events: {events: [...], load?: true|\"end\"}", NULL },
	{ "load.end", cmd_load_end, CMD_CHANGES_STATE, "a history load is complete: evaluate its customers", NULL },
	{ "customer", cmd_customer, 0, "one customer's profile and summary: {id}", NULL },
	{ "customers", cmd_customers, 0, "list customers: {limit?, cursor?}", NULL },
	{ "timeline", cmd_timeline, 0, "a customer's events: {id, since?, until?, types?, desc?, limit?, cursor?}", NULL },
	{ "forget", cmd_forget, CMD_CHANGES_STATE, "remove every trace of a customer: {id}", NULL },
	{ "alerts", cmd_alerts, 0, "alerts: {state? (firing|pending|resolved|all), rule?, customer?, owner?, limit?}", NULL },
	{ "ack", cmd_ack, CMD_CHANGES_STATE, "stop repeats of a firing alert: {rule, customer, by?, comment?}", NULL },
	{ "silence.add", cmd_silence_add, CMD_CHANGES_STATE, "mute matching alerts: {rule?, customer?, owner?, until | for, by?, comment?}", NULL },
	{ "silence.list", cmd_silence_list, 0, "active silences", NULL },
	{ "silence.remove", cmd_silence_remove, CMD_CHANGES_STATE, "end a silence: {id}", NULL },
	{ "rules", cmd_rules, 0, "each rule with its firing and pending counts and last error", NULL },
	{ "eval", cmd_eval, 0, "evaluate an expression for a customer: {expr, customer, at?}", NULL },
	{ "explain", cmd_explain, 0, "a rule's value and every term for a customer: {rule, customer, at?}", NULL },
	{ "top", cmd_top, 0, "customers ranked by the configured priority: {n?, where?}", NULL },
	{ "replay", cmd_replay, 0, "notifications after a seq from the outbox: {after, limit?}", NULL },
	{ "clock.set", cmd_clock_set, CMD_CHANGES_STATE, "--test-clock only: move the clock to {at} and tick", NULL },
	{ "clock.advance", cmd_clock_advance, CMD_CHANGES_STATE, "--test-clock only: move the clock {by} and tick", NULL },
	{ "reload", cmd_reload, CMD_CHANGES_STATE, "re-read the configuration", NULL },
	{ "reload.dry_run", NULL, CMD_CHANGES_STATE,
	  "what re-reading the configuration would fire, resolve or change now, without applying it", cmd_reload_dry_run },
	{ "help", cmd_help, 0, "the commands this daemon knows", NULL },
	{ "backtest", NULL, 0, "what a rule would have done over a window: "
	  "{rule | when, for?, repeat?, from?, to?, where?, detail?, compare?}", cmd_backtest },
	{ NULL, NULL, 0, NULL, NULL },
};

static int cmd_help(struct server *srv, struct json_object *req, struct json_object *ans,
		    struct herr *err)
{
	struct json_object *list = json_object_new_array();

	(void)srv, (void)req, (void)err;
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
