/*
 * What an evaluation reads besides the customer: window scans of their
 * timeline (for the writer, and for workers and readers over their own
 * transactions) and the stored states of their alerts.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "hearth/alert_states.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/timeline.h"

struct scan_ctx {
	struct json_tokener *tok;
	const char *attr;
	double total;
	int64_t oldest;
};

static int scan_event(const struct event *ev, void *vctx)
{
	struct scan_ctx *ctx = vctx;

	if (ev->ts < ctx->oldest)
		ctx->oldest = ev->ts;
	if (!ctx->attr) {
		ctx->total++;
		return 0;
	}
	if (!ev->attrs_json)
		return 0;
	struct json_object *attrs = json_parse_whole(ctx->tok, ev->attrs_json, ev->attrs_len, NULL), *v;
	if (attrs && json_object_object_get_ex(attrs, ctx->attr, &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		ctx->total += json_object_get_double(v);
	json_object_put(attrs);
	return 0;
}

static int scan_window_over(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
			    const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct engine_scan *s = vctx;
	struct scan_ctx ctx = { .tok = s->tok, .attr = attr, .oldest = EVAL_NEVER };
	struct timeline_query q = {
		.customer = c->id, .customer_len = c->id_len, .since = from + 1, .until = to,
		.types = types, .ntypes = ntypes, .limit = SIZE_MAX,
	};
	struct herr err;
	int more;

	if (!s->txn || s->query(s->qctx, s->txn, &q, scan_event, &ctx, &more, &err) < 0)
		return -1;
	*total = ctx.total;
	*oldest = ctx.oldest;
	return 0;
}

/* The writer's scans: its timeline, pending events included, on the evaluation's transaction. */
static int writer_query(void *qctx, MDB_txn *txn, const struct timeline_query *q,
			int (*fn)(const struct event *ev, void *ctx), void *ctx, int *more, struct herr *err)
{
	return timeline_query(qctx, txn, q, fn, ctx, more, err);
}

static int scan_window(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
		       const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct engine *eng = vctx;
	struct engine_scan s = { writer_query, eng->tl, eng->txn, eng->tok };

	return scan_window_over(&s, c, types, ntypes, attr, from, to, total, oldest);
}

void engine_scan_env(struct engine_scan *s, const struct cust *c, int64_t now, struct eval_env *env)
{
	memset(env, 0, sizeof(*env));
	env->c = c;
	env->now = now;
	env->scan = scan_window_over;
	env->scan_ctx = s;
}

void engine_env(struct engine *eng, MDB_txn *txn, const struct cust *c, int64_t now,
		struct eval_env *env)
{
	memset(env, 0, sizeof(*env));
	env->c = c;
	env->now = now;
	env->scan = scan_window;
	env->scan_ctx = eng;
	eng->txn = txn;
}

void engine_render_resolution(struct engine *eng, MDB_txn *txn, const struct cust *c, size_t rule, int64_t now,
			      struct alert *a)
{
	struct eval_env env;

	engine_env(eng, txn, c, now, &env);
	engine_render_alert(&eng->rs->rules[rule], &env, a);
}

struct load_ctx {
	struct engine *eng;
	const struct cust *c;
};

static void load_alert(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct load_ctx *ctx = vctx;
	ssize_t idx = ruleset_index(ctx->eng->rs, rule);

	if (idx >= 0 && alert_decode(rec, len, &ctx->eng->alerts[idx]) < 0)
		log_warning("alerts, damaged state of rule '%s' for '%.*s'; starting afresh", rule,
			    (int)ctx->c->id_len, ctx->c->id);
}

void engine_load_alerts(struct engine *eng, MDB_txn *txn, const struct cust *c)
{
	struct load_ctx ctx = { eng, c };

	for (size_t i = 0; i < eng->rs->n; i++)
		alert_reset(&eng->alerts[i]);
	alert_states_customer(timeline_alert_states(eng->tl), eng->st, txn, c->id, c->id_len,
			      load_alert, &ctx);
}
