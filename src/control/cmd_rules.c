/*
 * Commands about rules (PROTOCOL.md §5.16, §5.17, §5.20, §5.22): their counts, an
 * expression or a rule for one customer now or at a past time, reload and its dry
 * run, and backtests.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert_states.h"
#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/group_commit.h"
#include "hearth/job.h"
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

int cmd_reload(struct server *srv, struct json_object *req, struct json_object *ans,
		      struct herr *err)
{
	char msg[4096];

	(void)req, (void)ans;
	notify_reloading();
	int rc = server_reload(srv, msg, sizeof(msg));
	if (rc == 0 && srv->control)
		control_reload(srv->control);
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
static struct cust *cust_at(struct reader *rd, MDB_txn *txn, const char *id, size_t len,
			    int64_t at, struct herr *err)
{
	struct timeline_query q = { .customer = id, .customer_len = len, .since = INT64_MIN,
				    .until = at, .limit = SIZE_MAX };
	struct rebuild_ctx ctx = { cust_new(id, len), rd->cfg };
	int more;

	if (!ctx.c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	if (reader_query(rd, txn, &q, rebuild_event, &ctx, &more, err) < 0) {
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

/*
 * The customer as kept; while the case state is rebuilt after a reload changed
 * events.cases (the store's signature is not this config's yet), rebuilt here
 * from the timeline: the writer may not have reached this customer.
 */
static struct cust *cust_now(struct reader *rd, MDB_txn *txn, const char *id, size_t len, int *owned,
			     struct herr *err)
{
	struct cust *c = reader_customer(rd, txn, id, len, owned, err);

	if (!c || store_meta_u64(txn, rd->st, "cases_sig") == config_cases_signature(rd->cfg))
		return c;
	if (*owned)
		cust_free(c);
	*owned = 1;
	return cust_at(rd, txn, id, len, INT64_MAX, err);
}

/* The customer now (state as kept) or at a past time (rebuilt from the timeline). */
static struct cust *cust_for_eval(struct reader *rd, MDB_txn *txn, struct json_object *req,
				  const char *id_arg, int64_t *at, int *owned, struct herr *err)
{
	const char *id;
	size_t len;

	*at = reader_now(rd);
	if (arg_id(req, id_arg, &id, &len, err) < 0)
		return NULL;
	if (arg(req, "at")) {
		if (arg_time(req, "at", at, err) < 0)
			return NULL;
		*owned = 1;
		return cust_at(rd, txn, id, len, *at, err);
	}
	return cust_now(rd, txn, id, len, owned, err);
}

/* When the value changes next, and any warning of the evaluation. */
static void add_eval_tail(struct json_object *ans, const struct eval_env *env, int64_t at, int64_t next)
{
	json_object_object_add(ans, "at", time_or_null(at));
	json_object_object_add(ans, "changes_at", time_or_null(next == EVAL_NEVER ? TIME_NONE : next));
	if (env->error[0])
		json_object_object_add(ans, "warning", json_object_new_string(env->error));
}

int cmd_eval(struct reader *rd, struct json_object *req, struct json_object *ans,
	     struct herr *err)
{
	struct expr *e = arg_expr(rd->cfg, req, "expr", 1, err);
	struct cust *c = NULL;
	MDB_txn *txn = NULL;
	struct engine_scan scan;
	struct eval_env env;
	struct value v;
	int64_t at, next;
	int owned = 0, rc = -1;

	if (!e || reader_begin_store(rd, &txn, err) < 0)
		goto out;
	if (!(c = cust_for_eval(rd, txn, req, "customer", &at, &owned, err)))
		goto out;
	reader_env(rd, txn, &scan, c, at, &env);
	if (expr_eval(e, &env, &v, &next) < 0) {
		herr_set(err, HERR_BAD_EXPR, "evaluation failed");
		goto out;
	}
	json_object_object_add(ans, "value", value_to_json(&v));
	json_object_object_add(ans, "type", json_object_new_string(vtype_name(v.type)));
	add_eval_tail(ans, &env, at, next);
	rc = 0;
out:
	if (owned)
		cust_free(c);
	reader_end(rd, txn);
	expr_free(e);
	return rc;
}

/* The rule from the reader's own rules (its snapshot, or the writer's on the writer). */
int cmd_explain(struct reader *rd, struct json_object *req, struct json_object *ans,
		struct herr *err)
{
	const struct rule *r;
	const char *name;
	size_t len;
	struct cust *c = NULL;
	MDB_txn *txn = NULL;
	struct engine_scan scan;
	struct eval_env env;
	struct value v;
	int64_t at, next;
	int owned = 0, rc = -1;
	char summary[512];

	if (arg_string(req, "rule", 1, &name, &len, err) < 0)
		return -1;
	if (!(r = ruleset_find(rd->rs, name)))
		return herr_set(err, HERR_NOT_FOUND, "no rule '%.40s'", name);
	if (reader_begin_store(rd, &txn, err) < 0)
		return -1;
	if (!(c = cust_for_eval(rd, txn, req, "customer", &at, &owned, err)))
		goto out;
	reader_env(rd, txn, &scan, c, at, &env);
	if (expr_eval(r->when, &env, &v, &next) < 0)
		v.type = TYPE_NULL;
	json_object_object_add(ans, "rule", json_object_new_string(r->cfg->name));
	json_object_object_add(ans, "when", json_object_new_string(r->cfg->when));
	json_object_object_add(ans, "value", value_to_json(&v));
	json_object_object_add(ans, "terms", rule_values(r, &env));
	tmpl_render(&r->summary, &env, summary, sizeof(summary));
	json_object_object_add(ans, "summary", json_object_new_string(summary));
	add_eval_tail(ans, &env, at, next);
	rc = 0;
out:
	if (owned)
		cust_free(c);
	reader_end(rd, txn);
	return rc;
}

struct rule_counts {
	const struct ruleset *rs;
	uint64_t *firing, *pending;
};

static int count_state(const char *id, size_t idlen, const char *rule, const void *rec, size_t len,
		       void *vctx)
{
	struct rule_counts *ctx = vctx;
	ssize_t i = ruleset_index(ctx->rs, rule);
	uint8_t state = len >= 2 ? ((const uint8_t *)rec)[1] : 0;

	(void)id;
	(void)idlen;
	if (i >= 0 && state == ALERT_FIRING)
		ctx->firing[i]++;
	else if (i >= 0 && state == ALERT_PENDING)
		ctx->pending[i]++;
	return 0;
}

/* Alert states by rule, as committed: the reader's transaction sees what was answered before. */
static void count_rule_states(struct reader *rd, MDB_txn *txn, uint64_t *firing, uint64_t *pending)
{
	struct rule_counts ctx = { rd->rs, firing, pending };
	struct herr err;

	alert_states_walk(rd->as, rd->st, txn, NULL, 0, count_state, &ctx, &err);
}

static struct json_object *rule_row(struct reader *rd, const struct rule *r, uint64_t firing, uint64_t pending)
{
	struct json_object *o = json_object_new_object();
	char last_error[sizeof(r->last_error)];

	json_object_object_add(o, "name", json_object_new_string(r->cfg->name));
	json_object_object_add(o, "severity", json_object_new_string(severity_name(r->cfg->severity)));
	json_object_object_add(o, "when", json_object_new_string(r->cfg->when));
	json_object_object_add(o, "for", json_object_new_int64(r->cfg->for_ms));
	json_object_object_add(o, "repeat", json_object_new_int64(r->cfg->repeat_ms));
	json_object_object_add(o, "firing", json_object_new_int64((int64_t)firing));
	json_object_object_add(o, "pending", json_object_new_int64((int64_t)pending));
	json_object_object_add(o, "last_error", reader_rule_error(rd, r, last_error, sizeof(last_error))
				? json_object_new_string(last_error) : NULL);
	return o;
}

int cmd_rules(struct reader *rd, struct json_object *req, struct json_object *ans,
	      struct herr *err)
{
	const struct ruleset *rs = rd->rs;
	uint64_t *firing = calloc(rs->n + 1, sizeof(uint64_t)), *pending = calloc(rs->n + 1, sizeof(uint64_t));
	struct json_object *list;
	MDB_txn *txn = NULL;
	int rc = -1;

	(void)req;
	if (!firing || !pending) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto out;
	}
	if (reader_begin(rd, &txn, err) < 0) {
		herr_set(err, HERR_STORE_ERROR, "cannot count alert states");
		goto out;
	}
	count_rule_states(rd, txn, firing, pending);
	list = json_object_new_array();
	for (size_t i = 0; i < rs->n; i++)
		json_object_array_add(list, rule_row(rd, &rs->rules[i], firing[i], pending[i]));
	json_object_object_add(ans, "rules", list);
	rc = 0;
out:
	reader_end(rd, txn);
	free(firing);
	free(pending);
	return rc;
}


/* ---- backtest ------------------------------------------------------------------ */

#define BACKTEST_DEFAULT_SPAN (90 * MS_PER_DAY)
#define BACKTEST_MAX_SPAN     (3660 * MS_PER_DAY)


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

/* What a job over every stored customer reads: the writer's own. */
static struct job_deps job_deps_of(struct server *srv)
{
	return (struct job_deps){ srv->st, srv->tl, srv->engine, &srv->ingest_clock };
}

struct job *cmd_reload_dry_run(struct server *srv, struct json_object *req, struct herr *err)
{
	struct job_deps d = job_deps_of(srv);
	struct ruleset *next;
	struct config *next_cfg;
	char msg[4096];

	(void)req;
	if (!(next_cfg = server_load_config(srv->config_path, &next, msg, sizeof(msg)))) {
		size_t n = strlen(msg);
		while (n > 0 && msg[n - 1] == '\n')
			msg[--n] = '\0';
		herr_set(err, HERR_CONFIG_ERROR, "%s", msg);
		return NULL;
	}
	return dry_run_job_new(&d, next_cfg, next, err);
}

struct job *cmd_backtest(struct server *srv, struct json_object *req, struct herr *err)
{
	struct job_deps d = job_deps_of(srv);
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
		if (!(first->when = arg_expr(srv->cfg, req, "when", 1, err)) ||
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
	if (arg(req, "where") && !(p.where = arg_expr(srv->cfg, req, "where", 0, err)))
		goto fail;
	return backtest_job_new(&d, srv->cfg, &p, err);
fail:
	for (int r = 0; r < BACKTEST_RULES; r++)
		expr_free(p.rules[r].when);
	expr_free(p.where);
	return NULL;
}
