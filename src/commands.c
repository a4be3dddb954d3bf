/*
 * Control commands (SPEC §5). Each handler reads its arguments with the arg_*
 * helpers, which name the argument in every error, and adds its answer fields
 * to `ans`. The table at the bottom is the single list of commands.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/commands.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
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
	json_object_object_add(ans, "firing", json_object_new_int64(0));
	json_object_object_add(ans, "seq", json_object_new_int64(0));
	json_object_object_add(ans, "last_tick", NULL);
	json_object_object_add(ans, "tick_ms", json_object_new_int64(0));
	json_object_object_add(ans, "now", time_or_null(server_now(srv)));
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
	struct json_object *events = arg(req, "events"), *reply, *v;
	struct batch *b;
	int rc = -1;

	if (!events || !json_object_is_type(events, json_type_array))
		return herr_set(err, HERR_BAD_REQUEST, "events: required, an array of events");
	if (!(b = batch_new()))
		return herr_set(err, HERR_NOMEM, "out of memory");
	batch_take_array(b, events, server_now(srv), srv->cfg->max_future_ms);
	srv->counters.ingest_rejected += b->nrejects;
	if (b->fail.code == HERR_OK && b->nevents > 0)
		timeline_append(srv->tl, &b, 1);
	if (b->fail.code != HERR_OK) {
		*err = b->fail;
		goto out;
	}
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
	mdb_txn_abort(txn);
	if (!c)
		return -1;
	o = cust_to_json(c);
	if (owned)
		cust_free(c);
	if (!o)
		return herr_set(err, HERR_NOMEM, "out of memory");
	json_object_object_add(o, "alerts", json_object_new_array());
	json_object_object_add(o, "score", NULL);
	json_object_object_add(ans, "customer", o);
	return 0;
}

static int add_row(const struct cust *c, void *ctx)
{
	struct json_object *row = cust_row_json(c);
	return row ? json_object_array_add(ctx, row) : -1;
}

static int cmd_customers(struct server *srv, struct json_object *req, struct json_object *ans,
			 struct herr *err)
{
	const char *cursor;
	size_t limit, cursor_len;
	struct json_object *list;
	int more;

	if (arg(req, "where") || arg(req, "order"))
		return herr_set(err, HERR_BAD_REQUEST,
				"'where' and 'order' need the rule language, which this build lacks");
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

	if (arg_id(req, "id", &id, &len, err) < 0 || timeline_forget(srv->tl, id, len, &removed, err) < 0)
		return -1;
	json_object_object_add(ans, "events", json_object_new_int64((int64_t)removed));
	return 0;
}

static int cmd_reload(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	char msg[4096];

	(void)req, (void)ans;
	if (server_reload(srv, msg, sizeof(msg)) < 0)
		return herr_set(err, HERR_CONFIG_ERROR, "%s", msg);
	return 0;
}

static int cmd_help(struct server *srv, struct json_object *req, struct json_object *ans,
		    struct herr *err);

const struct command command_table[] = {
	{ "ping", cmd_ping, 0, "answers pong: is the daemon there" },
	{ "status", cmd_status, 0, "version, uptime, counts, store size" },
	{ "metrics", cmd_metrics, 0, "Prometheus text exposition" },
	{ "ingest", cmd_ingest, CMD_CHANGES_STATE, "store events: {events: [...]}" },
	{ "customer", cmd_customer, 0, "one customer's profile and summary: {id}" },
	{ "customers", cmd_customers, 0, "list customers: {limit?, cursor?}" },
	{ "timeline", cmd_timeline, 0, "a customer's events: {id, since?, until?, types?, desc?, limit?, cursor?}" },
	{ "forget", cmd_forget, CMD_CHANGES_STATE, "remove every trace of a customer: {id}" },
	{ "reload", cmd_reload, CMD_CHANGES_STATE, "re-read the configuration" },
	{ "help", cmd_help, 0, "the commands this daemon knows" },
	{ NULL, NULL, 0, NULL },
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
