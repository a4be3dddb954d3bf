/*
 * The JSON API under /api/ (docs/WEB.md).
 *
 * Two kinds of routes:
 *  - one read-only control command each (/api/status, /api/alerts?state=…,
 *    /api/customer/<id>, …): query arguments become the command's arguments,
 *    and hearthd's answer is passed on as it came, so the API means what
 *    PROTOCOL.md §5 says;
 *  - views (/api/view/…): what one page shows, gathered from several commands
 *    pipelined on one connection (a round trip or three instead of dozens).
 *
 * Only the commands in `routes` and the views are reachable by GET. With
 * web.readonly false, three writes are reachable by POST (http.c has checked the
 * login, the origin and the body's type first): ack, silence.add and
 * silence.remove, each with `by` set to the logged-in user, never to anything the
 * body says. forget, reload, ingest, load.end, replay and clock.* have no route
 * at all, so nothing the web receives can make hearthd do them.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/units.h"
#include "web.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

enum akind { A_STR, A_INT, A_BOOL, A_LIST, A_TIME };

struct arg_spec {
	const char *key;
	enum akind kind;
};

struct route {
	const char *name;               /* /api/<name>[/…] */
	const char *cmd;
	const char *path_keys[2];       /* arguments taken from the path, in order */
	struct arg_spec args[8];
};

static const struct route routes[] = {
	{ "status", "status", { 0 }, { { 0 } } },
	{ "metrics", "metrics", { 0 }, { { 0 } } },
	{ "rules", "rules", { 0 }, { { 0 } } },
	{ "silences", "silence.list", { 0 }, { { 0 } } },
	{ "alerts", "alerts", { 0 },
	  { { "state", A_STR }, { "rule", A_STR }, { "customer", A_STR }, { "owner", A_STR },
	    { "limit", A_INT }, { 0 } } },
	{ "top", "top", { 0 }, { { "n", A_INT }, { "where", A_STR }, { 0 } } },
	{ "customers", "customers", { 0 },
	  { { "where", A_STR }, { "order", A_STR }, { "desc", A_BOOL }, { "limit", A_INT },
	    { "cursor", A_STR }, { 0 } } },
	{ "customer", "customer", { "id" }, { { 0 } } },
	{ "timeline", "timeline", { "id" },
	  { { "since", A_TIME }, { "until", A_TIME }, { "types", A_LIST }, { "desc", A_BOOL },
	    { "limit", A_INT }, { "cursor", A_STR }, { 0 } } },
	{ "explain", "explain", { "rule", "customer" }, { { "at", A_TIME }, { 0 } } },
	{ "eval", "eval", { 0 }, { { "expr", A_STR }, { "customer", A_STR }, { "at", A_TIME }, { 0 } } },
	/* read-only: a replay of the stored history, answered when done (PROTOCOL.md §5.22) */
	{ "backtest", "backtest", { "rule" }, { { "from", A_TIME }, { "to", A_TIME }, { 0 } } },
};

void web_reply_clear(struct web_reply *r)
{
	free(r->body);
	free(r->disposition);
	memset(r, 0, sizeof(*r));
}

static void reply_text(struct web_reply *out, int status, const char *type, const char *text, size_t len)
{
	web_reply_clear(out);
	out->status = status;
	out->type = type;
	out->body = malloc(len + 1);
	if (!out->body) {
		out->status = 500;
		out->len = 0;
		return;
	}
	memcpy(out->body, text, len);
	out->body[len] = '\0';
	out->len = len;
}

static void reply_json(struct web_reply *out, int status, struct json_object *o)
{
	size_t len;
	const char *text = json_object_to_json_string_length(o, JSON_FLAGS, &len);

	if (!text) {
		reply_text(out, 500, "application/json", "{\"ok\":false}", 12);
		return;
	}
	reply_text(out, status, "application/json", text, len);
}

static void reply_error(struct web_reply *out, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_error(struct web_reply *out, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", e);
	reply_json(out, status, o);
	json_object_put(o);
}

/* hearthd cannot be reached: the page shows its banner on 503. */
static void reply_unreachable(struct web_reply *out, const struct herr *err)
{
	reply_error(out, 503, "unreachable", "%s", err->msg);
}

static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *field_str(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int answer_ok(struct json_object *ans)
{
	struct json_object *v = field(ans, "ok");
	return v && json_object_get_boolean(v);
}

/* The HTTP status of a refusal by hearthd (PROTOCOL.md §5.3). */
static int error_status(struct json_object *ans)
{
	const char *code = field_str(field(ans, "error"), "code");

	if (!code)
		return 502;
	if (!strcmp(code, "not_found"))
		return 404;
	if (!strcmp(code, "bad_request") || !strcmp(code, "bad_expr") || !strcmp(code, "too_large"))
		return 400;
	if (!strcmp(code, "forbidden"))
		return 403;
	if (!strcmp(code, "config_error"))
		return 409;
	return 500;
}

/* hearthd's refusal, passed on as it came. */
static void reply_refusal(struct web_reply *out, struct json_object *ans)
{
	reply_json(out, error_status(ans), ans);
}

static struct json_object *req_new(const char *cmd)
{
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	return req;
}

static int parse_int(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!*text)
		return -1;
	v = strtoll(text, &end, 10);
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A query argument as the JSON value its command expects. */
static int add_arg(struct json_object *req, const struct arg_spec *a, const char *text, struct herr *err)
{
	long long n;

	switch (a->kind) {
	case A_STR:
		json_object_object_add(req, a->key, json_object_new_string(text));
		return 0;
	case A_INT:
		if (parse_int(text, -9007199254740991LL, 9007199254740991LL, &n) < 0)
			return herr_set(err, HERR_BAD_REQUEST, "%s: expected an integer", a->key);
		json_object_object_add(req, a->key, json_object_new_int64(n));
		return 0;
	case A_BOOL:
		if (strcmp(text, "true") && strcmp(text, "1") && strcmp(text, "false") && strcmp(text, "0"))
			return herr_set(err, HERR_BAD_REQUEST, "%s: expected true or false", a->key);
		json_object_object_add(req, a->key,
				       json_object_new_boolean(!strcmp(text, "true") || !strcmp(text, "1")));
		return 0;
	case A_TIME:
		/* unix ms as an integer, else RFC 3339 text (PROTOCOL.md §1.1) */
		if (parse_int(text, -9007199254740991LL, 9007199254740991LL, &n) == 0)
			json_object_object_add(req, a->key, json_object_new_int64(n));
		else
			json_object_object_add(req, a->key, json_object_new_string(text));
		return 0;
	case A_LIST: {
		struct json_object *list = json_object_new_array();
		const char *p = text;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (len)
				json_object_array_add(list, json_object_new_string_len(p, (int)len));
			p += len + (comma ? 1 : 0);
		}
		json_object_object_add(req, a->key, list);
		return 0;
	}
	}
	return herr_set(err, HERR_BAD_REQUEST, "%s: unknown argument kind", a->key);
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

/* -------------------------------------------------------------------------------- */
/* One command per route                                                              */

static void api_command(struct web_ctl *ctl, const struct route *r, const char *rest, web_arg_fn arg,
			void *actx, struct web_reply *out)
{
	struct json_object *req = req_new(r->cmd), *ans = NULL;
	struct herr err = { 0 };
	char *copy = NULL;

	/* path arguments: /api/customer/<id>, /api/explain/<rule>/<customer>; the last takes
	 * the rest of the path, since a customer id may hold '/' */
	if (r->path_keys[0]) {
		char *p;
		int nkeys = r->path_keys[1] ? 2 : 1;
		if (!rest || !*rest || !(copy = strdup(rest))) {
			reply_error(out, 404, "not_found", "expected /api/%s/%s%s", r->name, nkeys == 2 ? "RULE/" : "",
				    "ID");
			goto out;
		}
		p = copy;
		if (nkeys == 2) {
			char *slash = strchr(p, '/');
			if (!slash || !slash[1]) {
				reply_error(out, 404, "not_found", "expected /api/%s/RULE/ID", r->name);
				goto out;
			}
			*slash = '\0';
			json_object_object_add(req, r->path_keys[0], json_object_new_string(p));
			p = slash + 1;
		}
		json_object_object_add(req, r->path_keys[nkeys - 1], json_object_new_string(p));
	} else if (rest && *rest) {
		reply_error(out, 404, "not_found", "no route /api/%s/%s", r->name, rest);
		goto out;
	}
	for (const struct arg_spec *a = r->args; a->key; a++) {
		const char *v = nonempty(arg(actx, a->key));
		if (v && add_arg(req, a, v, &err) < 0) {
			reply_error(out, 400, "bad_request", "%s", err.msg);
			goto out;
		}
	}
	if (web_ctl_calls(ctl, &req, &ans, 1, &err) < 0) {
		reply_unreachable(out, &err);
		goto out;
	}
	reply_json(out, answer_ok(ans) ? 200 : error_status(ans), ans);
out:
	free(copy);
	json_object_put(req);
	json_object_put(ans);
}

/* -------------------------------------------------------------------------------- */
/* Views                                                                              */

/*
 * A view made of merged answers (hearth-web in front of a cluster) that lacked
 * some partitions says which: the page warns that their customers are left out.
 * A single command's answer says so itself (`complete`, `missing_partitions`).
 */
static void mark_partial(struct web_ctl *ctl, struct json_object *view)
{
	struct json_object *missing = web_ctl_take_missing(ctl);

	if (missing)
		json_object_object_add(view, "missing_partitions", missing);
}

/* Sends the n requests, answers into ans; frees the requests. -1 after a 503 reply. */
static int round_trip(struct web_ctl *ctl, struct json_object **reqs, struct json_object **ans, size_t n,
		      struct web_reply *out)
{
	struct herr err = { 0 };
	int rc = web_ctl_calls(ctl, reqs, ans, n, &err);

	for (size_t i = 0; i < n; i++) {
		json_object_put(reqs[i]);
		reqs[i] = NULL;
	}
	if (rc < 0)
		reply_unreachable(out, &err);
	return rc;
}

static void put_all(struct json_object **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_object_put(v[i]);
		v[i] = NULL;
	}
}

/* An expression string literal (PROTOCOL.md §7.2): backslash before " and \. */
static void expr_quote(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	if (size < 3)
		return;
	buf[o++] = '"';
	for (; *s && o + 4 < size; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
			continue;
		}
		buf[o++] = *s;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

static int severity_rank(const char *s)
{
	if (!s)
		return 0;
	if (!strcmp(s, "critical"))
		return 3;
	if (!strcmp(s, "warning"))
		return 2;
	return !strcmp(s, "info");
}

static void count_tier(struct json_object *tiers, const char *tier, const char *stage)
{
	struct json_object *t = field(tiers, tier), *v;

	if (!t) {
		t = json_object_new_object();
		json_object_object_add(t, "watched", json_object_new_int(0));
		json_object_object_add(t, "tracked", json_object_new_int(0));
		json_object_object_add(t, "act", json_object_new_int(0));
		json_object_object_add(tiers, tier, t);
	}
	v = field(t, stage);
	json_object_set_int(v, json_object_get_int(v) + 1);
}

static int matches(struct json_object *row, const char *key, const char *want)
{
	const char *have;

	if (!want)
		return 1;
	have = field_str(row, key);
	return have && !strcmp(have, want);
}

static void add_distinct(struct json_object *set, const char *value)
{
	if (value && !field(set, value))
		json_object_object_add(set, value, json_object_new_boolean(1));
}

static int cmp_str_items(const void *a, const void *b)
{
	return strcmp(json_object_get_string(*(struct json_object *const *)a),
		      json_object_get_string(*(struct json_object *const *)b));
}

static struct json_object *keys_of(struct json_object *set)
{
	struct json_object *list = json_object_new_array();

	json_object_object_foreach(set, k, v) {
		(void)v;
		json_object_array_add(list, json_object_new_string(k));
	}
	json_object_array_sort(list, cmp_str_items);
	return list;
}

/*
 * The Today list: `top` (filtered by owner and tier through its `where`; by rule
 * through the rule's firing alerts), each row joined with its worst firing alert
 * and the days since the last touch against the customer's own rhythm (eval of
 * since(touch) and gap(touch)), and the funnel: customers watched, tracked (with
 * a firing alert) and to act on, per tier.
 */
static struct json_object *today(struct web_ctl *ctl, const struct web_config *cfg, web_arg_fn arg,
				 void *actx, struct web_reply *out)
{
	const char *owner = nonempty(arg(actx, "owner")), *tier = nonempty(arg(actx, "tier"));
	const char *rule = nonempty(arg(actx, "rule")), *ntext = nonempty(arg(actx, "n"));
	struct json_object *reqs[2 * WEB_TOP_MAX] = { 0 }, *ans[2 * WEB_TOP_MAX] = { 0 };
	struct json_object *status = NULL, *rules = NULL, *alerts = NULL, *top = NULL, *listing = NULL;
	struct json_object *view = NULL, *worst = json_object_new_object(), *nalerts = json_object_new_object();
	struct json_object *rows = json_object_new_array(), *tiers = json_object_new_object();
	struct json_object *owners = json_object_new_object(), *tierset = json_object_new_object();
	struct json_object *tiermap = NULL, *list, *v;
	long long n = cfg->top, customers = 0;
	char where[1024] = "", q[512];
	size_t nr;
	int tracked = 0, watched = 0, complete = 0;

	if (ntext && parse_int(ntext, 1, WEB_TOP_MAX, &n) < 0) {
		reply_error(out, 400, "bad_request", "n: expected a count from 1 to %d", WEB_TOP_MAX);
		goto out;
	}
	/* round 1: status, rules, firing alerts (of the owner's customers when filtered) */
	reqs[0] = req_new("status");
	reqs[1] = req_new("rules");
	reqs[2] = req_new("alerts");
	json_object_object_add(reqs[2], "state", json_object_new_string("firing"));
	json_object_object_add(reqs[2], "limit", json_object_new_int(WEB_LIST_MAX));
	if (owner)
		json_object_object_add(reqs[2], "owner", json_object_new_string(owner));
	if (round_trip(ctl, reqs, ans, 3, out) < 0)
		goto out;
	status = ans[0], rules = ans[1], alerts = ans[2];
	memset(ans, 0, 3 * sizeof(*ans));
	for (int i = 0; i < 3; i++) {
		struct json_object *a = i == 0 ? status : i == 1 ? rules : alerts;
		if (!answer_ok(a)) {
			reply_refusal(out, a);
			goto out;
		}
	}
	customers = json_object_get_int64(field(status, "customers"));

	/* the worst firing alert per customer: critical first, then the longest firing */
	list = field(alerts, "alerts");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *a = json_object_array_get_idx(list, i), *w;
		const char *cid = field_str(a, "customer");
		if (!cid || (rule && !matches(a, "rule", rule)))
			continue;
		v = field(nalerts, cid);
		if (v) {
			json_object_set_int(v, json_object_get_int(v) + 1);
		} else {
			json_object_object_add(nalerts, cid, json_object_new_int(1));
		}
		w = field(worst, cid);
		if (!w || severity_rank(field_str(a, "severity")) > severity_rank(field_str(w, "severity")))
			json_object_object_add(worst, cid, json_object_get(a));
	}

	/* round 2: the ranking, and the customer listing for the funnel's tiers when it is
	 * small enough to take in one page */
	if (owner) {
		expr_quote(q, sizeof(q), owner);
		snprintf(where, sizeof(where), "owner == %s", q);
	}
	if (tier) {
		expr_quote(q, sizeof(q), tier);
		snprintf(where + strlen(where), sizeof(where) - strlen(where), "%stier == %s", *where ? " and " : "", q);
	}
	reqs[0] = req_new("top");
	/* a rule filter keeps the ranked customers that have its alert firing */
	json_object_object_add(reqs[0], "n", json_object_new_int64(rule ? WEB_LIST_MAX : n));
	if (*where)
		json_object_object_add(reqs[0], "where", json_object_new_string(where));
	nr = 1;
	if (customers <= WEB_LIST_MAX) {
		reqs[1] = req_new("customers");
		json_object_object_add(reqs[1], "limit", json_object_new_int(WEB_LIST_MAX));
		nr = 2;
	}
	if (round_trip(ctl, reqs, ans, nr, out) < 0)
		goto out;
	top = ans[0], listing = ans[1];
	ans[0] = ans[1] = NULL;
	if (!answer_ok(top)) {
		reply_refusal(out, top);
		goto out;
	}
	complete = listing && answer_ok(listing) && !field(listing, "cursor");

	/* the funnel per tier; the filters' choices (owners, tiers) from the same listing */
	if (complete) {
		tiermap = json_object_new_object();
		list = field(listing, "customers");
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *c = json_object_array_get_idx(list, i);
			const char *cid = field_str(c, "id"), *t = field_str(c, "tier");
			add_distinct(owners, field_str(c, "owner"));
			add_distinct(tierset, t);
			if (!cid || !matches(c, "owner", owner) || !matches(c, "tier", tier))
				continue;
			json_object_object_add(tiermap, cid, json_object_new_string(t ? t : "-"));
			watched++;
			count_tier(tiers, t ? t : "-", "watched");
		}
	}
	json_object_object_foreach(worst, wid, w) {
		(void)w;
		if (tiermap) {
			struct json_object *t = field(tiermap, wid);
			if (!t)
				continue;       /* another tier (or owner) than the filter's */
			count_tier(tiers, json_object_get_string(t), "tracked");
		}
		tracked++;
	}

	list = field(top, "customers");
	for (size_t i = 0; i < json_object_array_length(list) && (long long)json_object_array_length(rows) < n; i++) {
		struct json_object *c = json_object_array_get_idx(list, i), *row;
		const char *cid = field_str(c, "id");
		if (!cid || (rule && !field(worst, cid)))
			continue;
		row = json_object_get(c);
		json_object_object_add(row, "alert", json_object_get(field(worst, cid)));
		json_object_object_add(row, "alerts", json_object_new_int(json_object_get_int(field(nalerts, cid))));
		json_object_array_add(rows, row);
		count_tier(tiers, field_str(c, "tier") ? field_str(c, "tier") : "-", "act");
		if (!complete) {
			add_distinct(owners, field_str(c, "owner"));
			add_distinct(tierset, field_str(c, "tier"));
		}
	}

	/* round 3: days since the last touch, and the customer's own rhythm */
	nr = json_object_array_length(rows);
	for (size_t i = 0; i < nr; i++) {
		const char *cid = field_str(json_object_array_get_idx(rows, i), "id");
		for (int k = 0; k < 2; k++) {
			struct json_object *r = req_new("eval");
			json_object_object_add(r, "expr", json_object_new_string(k ? "gap(touch)" : "since(touch)"));
			json_object_object_add(r, "customer", json_object_new_string(cid));
			reqs[2 * i + (size_t)k] = r;
		}
	}
	if (nr && round_trip(ctl, reqs, ans, 2 * nr, out) < 0)
		goto out;
	for (size_t i = 0; i < nr; i++) {
		struct json_object *row = json_object_array_get_idx(rows, i);
		for (int k = 0; k < 2; k++) {
			struct json_object *a = ans[2 * i + (size_t)k];
			struct json_object *val = answer_ok(a) ? field(a, "value") : NULL;
			json_object_object_add(row, k ? "gap_touch" : "since_touch",
					       val && json_object_is_type(val, json_type_int) ? json_object_get(val) : NULL);
		}
	}
	put_all(ans, 2 * nr);

	view = json_object_new_object();
	json_object_object_add(view, "ok", json_object_new_boolean(1));
	json_object_object_add(view, "status", json_object_get(status));
	v = json_object_new_object();
	json_object_object_add(v, "watched", json_object_new_int64(complete ? watched : customers));
	json_object_object_add(v, "tracked", json_object_new_int(tracked));
	json_object_object_add(v, "act", json_object_new_int((int)json_object_array_length(rows)));
	json_object_object_add(v, "complete", json_object_new_boolean(complete));
	json_object_object_add(v, "tiers", json_object_get(tiers));
	json_object_object_add(view, "funnel", v);
	json_object_object_add(view, "rules", json_object_get(field(rules, "rules")));
	json_object_object_add(view, "owners", keys_of(owners));
	json_object_object_add(view, "tiers", keys_of(tierset));
	json_object_object_add(view, "rows", json_object_get(rows));
	v = json_object_new_object();
	if (owner)
		json_object_object_add(v, "owner", json_object_new_string(owner));
	if (tier)
		json_object_object_add(v, "tier", json_object_new_string(tier));
	if (rule)
		json_object_object_add(v, "rule", json_object_new_string(rule));
	json_object_object_add(v, "n", json_object_new_int64(n));
	json_object_object_add(view, "filters", v);
out:
	put_all(reqs, sizeof(reqs) / sizeof(*reqs));
	put_all(ans, sizeof(ans) / sizeof(*ans));
	json_object_put(status);
	json_object_put(rules);
	json_object_put(alerts);
	json_object_put(top);
	json_object_put(listing);
	json_object_put(worst);
	json_object_put(nalerts);
	json_object_put(rows);
	json_object_put(tiers);
	json_object_put(owners);
	json_object_put(tierset);
	json_object_put(tiermap);
	return view;
}

/* A CSV cell (RFC 4180). A cell a spreadsheet would run as a formula is led by a
 * quote mark, so a customer's name can never become one. */
static void csv_cell(FILE *f, const char *s, int last)
{
	if (s && *s && strchr("=+-@\t\r", *s))
		fputc('\'', f);
	if (s && strpbrk(s, ",\"\r\n")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else if (s) {
		fputs(s, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

static void csv_days(FILE *f, struct json_object *ms)
{
	if (ms)
		fprintf(f, "%.1f,", (double)json_object_get_int64(ms) / (double)MS_PER_DAY);
	else
		fputc(',', f);
}

static void today_csv(struct json_object *view, struct web_reply *out)
{
	struct json_object *rows = field(view, "rows");
	char *buf = NULL, date[TIME_BUF] = "", name[96];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *now = field_str(field(view, "status"), "now");

	if (!f) {
		reply_error(out, 500, "no_memory", "out of memory");
		return;
	}
	/* a BOM, so that spreadsheets read the names (often Chinese) as UTF-8 */
	fputs("\xef\xbb\xbf", f);
	fputs("rank,id,name,owner,tier,score,alerts,rule,severity,summary,days_since_touch,rhythm_days\r\n", f);
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		struct json_object *r = json_object_array_get_idx(rows, i), *a = field(r, "alert");
		struct json_object *score = field(r, "score");
		fprintf(f, "%zu,", i + 1);
		csv_cell(f, field_str(r, "id"), 0);
		csv_cell(f, field_str(r, "name"), 0);
		csv_cell(f, field_str(r, "owner"), 0);
		csv_cell(f, field_str(r, "tier"), 0);
		if (score && !json_object_is_type(score, json_type_null))
			fprintf(f, "%.2f,", json_object_get_double(score));
		else
			fputc(',', f);
		fprintf(f, "%d,", json_object_get_int(field(r, "alerts")));
		csv_cell(f, field_str(a, "rule"), 0);
		csv_cell(f, field_str(a, "severity"), 0);
		csv_cell(f, field_str(a, "summary"), 0);
		csv_days(f, field(r, "since_touch"));
		if (field(r, "gap_touch"))
			fprintf(f, "%.1f\r\n", (double)json_object_get_int64(field(r, "gap_touch")) / (double)MS_PER_DAY);
		else
			fputs("\r\n", f);
	}
	if (fclose(f) != 0) {
		free(buf);
		reply_error(out, 500, "no_memory", "out of memory");
		return;
	}
	web_reply_clear(out);
	out->status = 200;
	out->type = "text/csv; charset=utf-8";
	out->body = buf;
	out->len = len;
	if (now)
		snprintf(date, sizeof(date), "%.10s", now);
	snprintf(name, sizeof(name), "attachment; filename=\"hearth-today-%s.csv\"", *date ? date : "now");
	out->disposition = strdup(name);
}

static int cmp_resolved_desc(const void *a, const void *b)
{
	const char *x = field_str(*(struct json_object *const *)a, "resolved_at");
	const char *y = field_str(*(struct json_object *const *)b, "resolved_at");
	return strcmp(y ? y : "", x ? x : "");
}

#define RESOLVED_SHOWN 200

/* Every alert record split by state, the silences in force and the rules. */
static struct json_object *alerts_view(struct web_ctl *ctl, struct web_reply *out)
{
	struct json_object *reqs[4], *ans[4] = { 0 }, *view = NULL, *list;
	struct json_object *firing = json_object_new_array(), *pending = json_object_new_array();
	struct json_object *resolved = json_object_new_array();

	reqs[0] = req_new("status");
	reqs[1] = req_new("alerts");
	json_object_object_add(reqs[1], "state", json_object_new_string("all"));
	json_object_object_add(reqs[1], "limit", json_object_new_int(WEB_LIST_MAX));
	reqs[2] = req_new("silence.list");
	reqs[3] = req_new("rules");
	if (round_trip(ctl, reqs, ans, 4, out) < 0)
		goto out;
	for (int i = 0; i < 4; i++)
		if (!answer_ok(ans[i])) {
			reply_refusal(out, ans[i]);
			goto out;
		}
	list = field(ans[1], "alerts");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *a = json_object_array_get_idx(list, i);
		const char *state = field_str(a, "state");
		struct json_object *to = !state ? NULL : !strcmp(state, "firing") ? firing
				       : !strcmp(state, "pending") ? pending : !strcmp(state, "resolved") ? resolved : NULL;
		if (to)
			json_object_array_add(to, json_object_get(a));
	}
	/* recently resolved: the newest first, the last RESOLVED_SHOWN */
	json_object_array_sort(resolved, cmp_resolved_desc);
	if (json_object_array_length(resolved) > RESOLVED_SHOWN)
		json_object_array_del_idx(resolved, RESOLVED_SHOWN, json_object_array_length(resolved) - RESOLVED_SHOWN);
	view = json_object_new_object();
	json_object_object_add(view, "ok", json_object_new_boolean(1));
	json_object_object_add(view, "status", json_object_get(ans[0]));
	json_object_object_add(view, "firing", json_object_get(firing));
	json_object_object_add(view, "pending", json_object_get(pending));
	json_object_object_add(view, "resolved", json_object_get(resolved));
	json_object_object_add(view, "silences", json_object_get(field(ans[2], "silences")));
	json_object_object_add(view, "rules", json_object_get(field(ans[3], "rules")));
out:
	put_all(ans, 4);
	json_object_put(firing);
	json_object_put(pending);
	json_object_put(resolved);
	return view;
}

#define EXPLAIN_MAX 64
#define ACTIVITY_MAX WEB_LIST_MAX

/*
 * One customer: profile, open cases, alerts with their explain terms, the first
 * page of the timeline (newest first; the next pages through /api/timeline) and
 * the activity chart's data: per event type, the times of the newest
 * ACTIVITY_MAX events in unix ms.
 */
static struct json_object *customer_view(struct web_ctl *ctl, const char *id, struct web_reply *out)
{
	struct json_object *reqs[EXPLAIN_MAX] = { 0 }, *ans[EXPLAIN_MAX] = { 0 }, *view = NULL;
	struct json_object *status = NULL, *cust = NULL, *page = NULL, *all = NULL;
	struct json_object *explain = json_object_new_object(), *activity = json_object_new_object();
	struct json_object *alerts, *events;
	size_t nr = 0;

	reqs[0] = req_new("status");
	reqs[1] = req_new("customer");
	json_object_object_add(reqs[1], "id", json_object_new_string(id));
	for (int k = 2; k < 4; k++) {
		reqs[k] = req_new("timeline");
		json_object_object_add(reqs[k], "id", json_object_new_string(id));
		json_object_object_add(reqs[k], "desc", json_object_new_boolean(1));
		json_object_object_add(reqs[k], "limit", json_object_new_int(k == 2 ? WEB_TIMELINE_PAGE : ACTIVITY_MAX));
	}
	if (round_trip(ctl, reqs, ans, 4, out) < 0)
		goto out;
	status = ans[0], cust = ans[1], page = ans[2], all = ans[3];
	memset(ans, 0, 4 * sizeof(*ans));
	if (!answer_ok(cust)) {
		reply_refusal(out, cust);
		goto out;
	}
	if (!answer_ok(status) || !answer_ok(page) || !answer_ok(all)) {
		reply_refusal(out, !answer_ok(status) ? status : !answer_ok(page) ? page : all);
		goto out;
	}
	/* every alert of the customer explained, each rule once */
	alerts = field(field(cust, "customer"), "alerts");
	for (size_t i = 0; i < json_object_array_length(alerts) && nr < EXPLAIN_MAX; i++) {
		const char *rule = field_str(json_object_array_get_idx(alerts, i), "rule");
		int seen = 0;
		for (size_t j = 0; j < nr && rule; j++)
			seen |= !strcmp(field_str(reqs[j], "rule"), rule);
		if (!rule || seen)
			continue;
		reqs[nr] = req_new("explain");
		json_object_object_add(reqs[nr], "rule", json_object_new_string(rule));
		json_object_object_add(reqs[nr], "customer", json_object_new_string(id));
		nr++;
	}
	if (nr) {
		char rules[EXPLAIN_MAX][64];
		for (size_t j = 0; j < nr; j++)
			snprintf(rules[j], sizeof(rules[j]), "%s", field_str(reqs[j], "rule"));
		if (round_trip(ctl, reqs, ans, nr, out) < 0)
			goto out;
		for (size_t j = 0; j < nr; j++)
			json_object_object_add(explain, rules[j], json_object_get(ans[j]));
	}
	events = field(all, "events");
	for (size_t i = 0; i < json_object_array_length(events); i++) {
		struct json_object *e = json_object_array_get_idx(events, i), *times;
		const char *type = field_str(e, "type"), *ts = field_str(e, "ts");
		int64_t ms;
		if (!type || !ts || time_parse_rfc3339(ts, strlen(ts), &ms) < 0)
			continue;
		if (!(times = field(activity, type))) {
			times = json_object_new_array();
			json_object_object_add(activity, type, times);
		}
		json_object_array_add(times, json_object_new_int64(ms));
	}
	view = json_object_new_object();
	json_object_object_add(view, "ok", json_object_new_boolean(1));
	json_object_object_add(view, "status", json_object_get(status));
	json_object_object_add(view, "customer", json_object_get(field(cust, "customer")));
	json_object_object_add(view, "explain", json_object_get(explain));
	json_object_object_add(view, "events", json_object_get(field(page, "events")));
	json_object_object_add(view, "cursor", json_object_get(field(page, "cursor")));
	json_object_object_add(view, "activity", json_object_get(activity));
	json_object_object_add(view, "activity_complete", json_object_new_boolean(!field(all, "cursor")));
out:
	put_all(reqs, EXPLAIN_MAX);
	put_all(ans, EXPLAIN_MAX);
	json_object_put(status);
	json_object_put(cust);
	json_object_put(page);
	json_object_put(all);
	json_object_put(explain);
	json_object_put(activity);
	return view;
}

/* -------------------------------------------------------------------------------- */
/* Silences: what one would match, and the writes                                     */

/*
 * The firing alerts a silence with these fields would match now: PROTOCOL.md §4.7
 * matches a silence to an alert when every field it gives is equal (rule name,
 * customer id, the customer's profile owner), and `alerts` filters by the same
 * three in the same way, so its answer is the preview. The page requires at least
 * one field, as the writes do: a silence of everything is not made from the web.
 */
static void silence_preview(struct web_ctl *ctl, web_arg_fn arg, void *actx, struct web_reply *out)
{
	static const char *const keys[] = { "rule", "customer", "owner" };
	struct json_object *req = req_new("alerts"), *ans = NULL, *o = NULL, *match = json_object_new_object();
	struct herr err = { 0 };
	size_t n;
	int given = 0;

	json_object_object_add(req, "state", json_object_new_string("firing"));
	json_object_object_add(req, "limit", json_object_new_int(WEB_LIST_MAX));
	for (size_t i = 0; i < 3; i++) {
		const char *v = nonempty(arg(actx, keys[i]));
		if (!v)
			continue;
		json_object_object_add(req, keys[i], json_object_new_string(v));
		json_object_object_add(match, keys[i], json_object_new_string(v));
		given++;
	}
	if (!given) {
		reply_error(out, 400, "bad_request", "give at least one of rule, customer and owner");
		goto out;
	}
	if (web_ctl_calls(ctl, &req, &ans, 1, &err) < 0) {
		reply_unreachable(out, &err);
		goto out;
	}
	if (!answer_ok(ans)) {
		reply_refusal(out, ans);
		goto out;
	}
	n = json_object_array_length(field(ans, "alerts"));
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "match", json_object_get(match));
	json_object_object_add(o, "count", json_object_new_int64((int64_t)n));
	json_object_object_add(o, "complete", json_object_new_boolean(n < WEB_LIST_MAX));
	json_object_object_add(o, "alerts", json_object_get(field(ans, "alerts")));
	mark_partial(ctl, o);
	reply_json(out, 200, o);
out:
	json_object_put(req);
	json_object_put(ans);
	json_object_put(match);
	json_object_put(o);
}

/* Text from a person, made safe for one log line: no control characters, bounded. */
static const char *loggable(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	if (!s)
		return "";
	for (; *s && o + 4 < size; s++)
		buf[o++] = (unsigned char)*s < ' ' || *s == 0x7f ? '?' : *s;
	if (*s)
		buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
	buf[o] = '\0';
	return buf;
}

/* The body's string field key: NULL when absent or null; -1 when of another type or too long. */
static int body_str(struct json_object *body, const char *key, size_t max, const char **out, struct herr *err)
{
	struct json_object *v = field(body, key);

	*out = NULL;
	if (!v || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return herr_set(err, HERR_BAD_REQUEST, "%s: expected a string", key);
	if ((size_t)json_object_get_string_len(v) > max)
		return herr_set(err, HERR_BAD_REQUEST, "%s: at most %zu bytes", key, max);
	if (json_object_get_string_len(v) > 0)
		*out = json_object_get_string(v);
	return 0;
}

/* Fields the body may carry; anything else is refused, `by` above all (it is the login). */
static int body_keys(struct json_object *body, const char *const *allowed, struct herr *err)
{
	json_object_object_foreach(body, k, v) {
		int known = 0;
		(void)v;
		for (size_t i = 0; allowed[i]; i++)
			known |= !strcmp(k, allowed[i]);
		if (!strcmp(k, "by"))
			return herr_set(err, HERR_BAD_REQUEST, "by: not taken from the body; it is the logged-in user");
		if (!known)
			return herr_set(err, HERR_BAD_REQUEST, "unknown field '%s'", k);
	}
	return 0;
}

/*
 * hearthd's answer to a write. `forbidden` means hearthd does not count
 * hearth-web's uid as an admin (PROTOCOL.md §5.4): say so in words a person can
 * act on, since the login itself succeeded.
 */
static int write_answer(struct web_ctl *ctl, struct json_object *req, const char *what, const char *user,
			struct web_reply *out)
{
	struct json_object *ans = NULL, *o;
	struct herr err = { 0 };
	const char *code;
	char w[160];
	int ok = 0;

	if (web_ctl_write(ctl, req, &ans, &err) < 0) {
		log_warning("web, %s's %s was not sent: %s", user, what, err.msg);
		reply_unreachable(out, &err);
		goto out;
	}
	if (!answer_ok(ans)) {
		code = field_str(field(ans, "error"), "code");
		log_warning("web, hearthd refused %s's %s: %s", user, what,
			    loggable(w, sizeof(w), field_str(field(ans, "error"), "message")));
		if (code && !strcmp(code, "forbidden"))
			reply_error(out, 403, "forbidden",
				    "hearthd refused the change: hearth-web's user is not one of its admins "
				    "(control.admin_groups, PROTOCOL.md 5.4); ask the operator");
		else
			reply_refusal(out, ans);
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "by", json_object_new_string(user));
	json_object_object_foreach(ans, k, v) {
		if (strcmp(k, "ok"))
			json_object_object_add(o, k, json_object_get(v));
	}
	reply_json(out, 200, o);
	json_object_put(o);
	ok = 1;
out:
	json_object_put(ans);
	return ok ? 0 : -1;
}

static void api_ack(struct web_ctl *ctl, const char *user, struct json_object *body, struct web_reply *out)
{
	static const char *const allowed[] = { "rule", "customer", "comment", NULL };
	const char *rule, *customer, *comment;
	struct json_object *req = NULL;
	struct herr err = { 0 };
	char b1[96], b2[96], b3[300];

	if (body_keys(body, allowed, &err) < 0 || body_str(body, "rule", 255, &rule, &err) < 0 ||
	    body_str(body, "customer", 255, &customer, &err) < 0 ||
	    body_str(body, "comment", WEB_COMMENT_MAX, &comment, &err) < 0) {
		reply_error(out, 400, "bad_request", "%s", err.msg);
		goto out;
	}
	if (!rule || !customer) {
		reply_error(out, 400, "bad_request", "ack: give rule and customer");
		goto out;
	}
	req = req_new("ack");
	json_object_object_add(req, "rule", json_object_new_string(rule));
	json_object_object_add(req, "customer", json_object_new_string(customer));
	json_object_object_add(req, "by", json_object_new_string(user));
	if (comment)
		json_object_object_add(req, "comment", json_object_new_string(comment));
	/* hearthd does not keep an ack's comment (PROTOCOL.md §5.14): the log does */
	if (write_answer(ctl, req, "ack", user, out) == 0)
		log_with(LOG_LEVEL_INFO, &(struct log_fields){ .rule = rule, .customer = customer },
			 "web, %s acked %s/%s: %s", user, loggable(b1, sizeof(b1), rule),
			 loggable(b2, sizeof(b2), customer), loggable(b3, sizeof(b3), comment));
out:
	json_object_put(req);
}

static void api_silence_add(struct web_ctl *ctl, const char *user, struct json_object *body,
			    struct web_reply *out)
{
	static const char *const allowed[] = { "rule", "customer", "owner", "for", "until", "comment", NULL };
	const char *rule, *customer, *owner, *dur, *comment;
	struct json_object *req = NULL, *until = field(body, "until");
	struct herr err = { 0 };
	char b1[96], b2[96], b3[96], b4[300];

	if (body_keys(body, allowed, &err) < 0 || body_str(body, "rule", 255, &rule, &err) < 0 ||
	    body_str(body, "customer", 255, &customer, &err) < 0 || body_str(body, "owner", 255, &owner, &err) < 0 ||
	    body_str(body, "for", 64, &dur, &err) < 0 || body_str(body, "comment", WEB_COMMENT_MAX, &comment, &err) < 0) {
		reply_error(out, 400, "bad_request", "%s", err.msg);
		goto out;
	}
	if (!rule && !customer && !owner) {
		reply_error(out, 400, "bad_request", "give at least one of rule, customer and owner: "
						     "a silence of every alert is not made from the web");
		goto out;
	}
	if (until && json_object_is_type(until, json_type_null))
		until = NULL;
	if (until && !json_object_is_type(until, json_type_string) && !json_object_is_type(until, json_type_int)) {
		reply_error(out, 400, "bad_request", "until: expected an RFC 3339 time or unix milliseconds");
		goto out;
	}
	if (!dur == !until) {
		reply_error(out, 400, "bad_request", "give either for (a duration such as 4h) or until (a time)");
		goto out;
	}
	if (!comment) {
		reply_error(out, 400, "bad_request", "comment: say why (it is shown with the silence)");
		goto out;
	}
	req = req_new("silence.add");
	if (rule)
		json_object_object_add(req, "rule", json_object_new_string(rule));
	if (customer)
		json_object_object_add(req, "customer", json_object_new_string(customer));
	if (owner)
		json_object_object_add(req, "owner", json_object_new_string(owner));
	if (dur)
		json_object_object_add(req, "for", json_object_new_string(dur));
	else
		json_object_object_add(req, "until", json_object_get(until));
	json_object_object_add(req, "by", json_object_new_string(user));
	json_object_object_add(req, "comment", json_object_new_string(comment));
	if (write_answer(ctl, req, "silence", user, out) == 0)
		log_with(LOG_LEVEL_INFO, &(struct log_fields){ .rule = rule, .customer = customer },
			 "web, %s added a silence (rule %s, customer %s, owner %s; %s): %s", user,
			 loggable(b1, sizeof(b1), rule ? rule : "any"), loggable(b2, sizeof(b2), customer ? customer : "any"),
			 loggable(b3, sizeof(b3), owner ? owner : "any"), dur ? dur : "until a time",
			 loggable(b4, sizeof(b4), comment));
out:
	json_object_put(req);
}

static void api_silence_remove(struct web_ctl *ctl, const char *user, long long id, struct json_object *body,
			       struct web_reply *out)
{
	static const char *const allowed[] = { "comment", NULL };
	const char *comment;
	struct json_object *req = NULL;
	struct herr err = { 0 };
	char b[300];

	if (body_keys(body, allowed, &err) < 0 || body_str(body, "comment", WEB_COMMENT_MAX, &comment, &err) < 0) {
		reply_error(out, 400, "bad_request", "%s", err.msg);
		goto out;
	}
	req = req_new("silence.remove");
	json_object_object_add(req, "id", json_object_new_int64(id));
	/* silence.remove keeps no `by`: who ended it, and why, is in the log */
	if (write_answer(ctl, req, "silence removal", user, out) == 0)
		log_info("web, %s removed silence %lld: %s", user, id, loggable(b, sizeof(b), comment));
out:
	json_object_put(req);
}

/* "silence/<id>/remove" → id; -1 for any other path. */
static long long remove_id(const char *path)
{
	long long id;
	char *end;

	if (strncmp(path, "silence/", 8) || path[8] < '0' || path[8] > '9')
		return -1;
	id = strtoll(path + 8, &end, 10);
	if (strcmp(end, "/remove") || id < 0 || id > 9007199254740991LL)
		return -1;
	return id;
}

int web_api_is_write(const char *path)
{
	return !strcmp(path, "ack") || !strcmp(path, "silence") || remove_id(path) >= 0;
}

void web_api_write(struct web_ctl *ctl, const char *path, const char *user, const char *text, size_t len,
		   struct web_reply *out)
{
	struct json_object *body = json_parse_once(text, len);
	long long id;

	if (!body || !json_object_is_type(body, json_type_object)) {
		reply_error(out, 400, "bad_request", "the body must be one JSON object");
		goto out;
	}
	if (!strcmp(path, "ack"))
		api_ack(ctl, user, body, out);
	else if (!strcmp(path, "silence"))
		api_silence_add(ctl, user, body, out);
	else if ((id = remove_id(path)) >= 0)
		api_silence_remove(ctl, user, id, body, out);
	else
		reply_error(out, 404, "not_found", "no write /api/%s", path);
out:
	json_object_put(body);
}

static void api_index(const struct web_config *cfg, const char *user, struct web_reply *out)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();

	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
		char buf[128];
		snprintf(buf, sizeof(buf), "/api/%s%s%s", routes[i].name,
			 routes[i].path_keys[1] ? "/RULE" : "", routes[i].path_keys[0] ? "/ID" : "");
		json_object_array_add(list, json_object_new_string(buf));
	}
	json_object_array_add(list, json_object_new_string("/api/view/today"));
	json_object_array_add(list, json_object_new_string("/api/view/today.csv"));
	json_object_array_add(list, json_object_new_string("/api/view/alerts"));
	json_object_array_add(list, json_object_new_string("/api/view/customer/ID"));
	json_object_array_add(list, json_object_new_string("/api/silence/preview"));
	if (!cfg->readonly) {
		json_object_array_add(list, json_object_new_string("/api/login"));
		json_object_array_add(list, json_object_new_string("POST /api/ack"));
		json_object_array_add(list, json_object_new_string("POST /api/silence"));
		json_object_array_add(list, json_object_new_string("POST /api/silence/ID/remove"));
	}
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "version", json_object_new_string(HEARTH_VERSION));
	json_object_object_add(o, "readonly", json_object_new_boolean(cfg->readonly));
	json_object_object_add(o, "writes", json_object_new_boolean(!cfg->readonly));
	/* who the browser's credentials name, when it sent any (the page greets them) */
	json_object_object_add(o, "user", user ? json_object_new_string(user) : NULL);
	json_object_object_add(o, "refresh_ms", json_object_new_int64(cfg->refresh_ms));
	json_object_object_add(o, "top", json_object_new_int(cfg->top));
	json_object_object_add(o, "routes", list);
	reply_json(out, 200, o);
	json_object_put(o);
}

void web_api(struct web_ctl *ctl, const struct web_config *cfg, const char *path, web_arg_fn arg,
	     void *actx, const char *user, struct web_reply *out)
{
	struct json_object *view = NULL;

	json_object_put(web_ctl_take_missing(ctl));     /* what earlier requests missed is theirs */
	/* path is what follows /api/ */
	if (!*path || !strcmp(path, "/")) {
		api_index(cfg, user, out);
		return;
	}
	if (!strcmp(path, "silence/preview")) {
		silence_preview(ctl, arg, actx, out);
		return;
	}
	if (!strcmp(path, "view/today") || !strcmp(path, "view/today.csv")) {
		if ((view = today(ctl, cfg, arg, actx, out))) {
			mark_partial(ctl, view);
			if (!strcmp(path, "view/today.csv"))
				today_csv(view, out);
			else
				reply_json(out, 200, view);
		}
	} else if (!strcmp(path, "view/alerts")) {
		if ((view = alerts_view(ctl, out))) {
			mark_partial(ctl, view);
			reply_json(out, 200, view);
		}
	} else if (!strncmp(path, "view/customer/", 14) && path[14]) {
		if ((view = customer_view(ctl, path + 14, out))) {
			mark_partial(ctl, view);
			reply_json(out, 200, view);
		}
	} else {
		for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
			size_t len = strlen(routes[i].name);
			if (!strncmp(path, routes[i].name, len) && (path[len] == '\0' || path[len] == '/')) {
				api_command(ctl, &routes[i], path[len] ? path + len + 1 : NULL, arg, actx, out);
				return;
			}
		}
		reply_error(out, 404, "not_found", "no route /api/%s (GET /api/ lists them)", path);
	}
	json_object_put(view);
}

void web_metrics(struct web_ctl *ctl, const struct web_metrics_in *in, struct web_reply *out)
{
	struct json_object *req = req_new("metrics"), *ans = NULL;
	struct herr err = { 0 };
	const char *text;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (web_ctl_calls(ctl, &req, &ans, 1, &err) < 0) {
		/* Prometheus marks the target down (up == 0) on anything but 200 */
		reply_text(out, 503, "text/plain; charset=utf-8", err.msg, strlen(err.msg));
		goto out;
	}
	if (!answer_ok(ans) || !(text = field_str(ans, "text"))) {
		reply_text(out, 502, "text/plain; charset=utf-8", "hearthd refused metrics\n", 24);
		goto out;
	}
	if (!(f = open_memstream(&buf, &len))) {
		reply_text(out, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
		goto out;
	}
	fputs(text, f);
	if (len && text[strlen(text) - 1] != '\n')
		fputc('\n', f);
	fprintf(f, "# HELP hearth_web_requests_total HTTP requests answered by hearth-web.\n"
		   "# TYPE hearth_web_requests_total counter\n"
		   "hearth_web_requests_total %llu\n"
		   "# HELP hearth_web_refused_total HTTP requests refused (method, Host, login, origin, body).\n"
		   "# TYPE hearth_web_refused_total counter\n"
		   "hearth_web_refused_total %llu\n"
		   "# HELP hearth_web_control_failures_total Times hearthd could not be reached.\n"
		   "# TYPE hearth_web_control_failures_total counter\n"
		   "hearth_web_control_failures_total %llu\n"
		   "# HELP hearth_web_login_failures_total Logins refused (unknown user, wrong password).\n"
		   "# TYPE hearth_web_login_failures_total counter\n"
		   "hearth_web_login_failures_total %llu\n"
		   "# HELP hearth_web_writes_total Writes (ack, silence) hearthd accepted from the page.\n"
		   "# TYPE hearth_web_writes_total counter\n"
		   "hearth_web_writes_total %llu\n",
		(unsigned long long)in->requests, (unsigned long long)in->refused,
		(unsigned long long)web_ctl_failures(ctl), (unsigned long long)in->auth_failures,
		(unsigned long long)in->writes);
	if (fclose(f) != 0) {
		free(buf);
		reply_text(out, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
		goto out;
	}
	web_reply_clear(out);
	out->status = 200;
	out->type = "text/plain; version=0.0.4; charset=utf-8";
	out->body = buf;
	out->len = len;
out:
	json_object_put(req);
	json_object_put(ans);
}
