/*
 * The operator's side of the engine (PROTOCOL.md §5.12-§5.15): acks, alert
 * listings, and forget with its alerts. Silences are in silences.c.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "engine_impl.h"
#include "hearth/event.h"
#include "hearth/ingest_clock.h"
#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

const char *engine_rule_severity(const struct engine *eng, const char *rule)
{
	const struct rule *r = ruleset_find(eng->rs, rule);
	return r ? severity_name(r->cfg->severity) : "unknown";
}

static const char *rule_severity(const struct ruleset *rs, const char *rule)
{
	const struct rule *r = rs ? ruleset_find(rs, rule) : NULL;
	return r ? severity_name(r->cfg->severity) : "unknown";
}

struct alerts_of_ctx {
	const struct ruleset *rs;
	const char *id;
	size_t len;
	struct json_object *list;
};

static void add_alert_of(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct alerts_of_ctx *ctx = vctx;
	struct alert a = { 0 };

	if (alert_decode(rec, len, &a) == 0) {
		snprintf(a.rule, sizeof(a.rule), "%s", rule);
		json_object_array_add(ctx->list, alert_to_json(&a, ctx->id, ctx->len,
								 rule_severity(ctx->rs, a.rule)));
	}
	alert_clear(&a);
}

struct json_object *engine_alerts_of(struct alert_states *as, struct store *st, const struct ruleset *rs,
				     MDB_txn *txn, const char *id, size_t len)
{
	struct alerts_of_ctx ctx = { rs, id, len, json_object_new_array() };

	alert_states_customer(as, st, txn, id, len, add_alert_of, &ctx);
	return ctx.list;
}

static int want_string(struct json_object *req, const char *key, const char **out, struct herr *err)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(req, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be a string", key);
	*out = json_object_get_string(v);
	return 0;
}

static int alerts_args(struct json_object *req, const char **state_s, const char **rule,
		       const char **customer, const char **owner, size_t *limit, struct herr *err)
{
	struct json_object *v;

	if (want_string(req, "state", state_s, err) < 0 || want_string(req, "rule", rule, err) < 0 ||
	    want_string(req, "customer", customer, err) < 0 || want_string(req, "owner", owner, err) < 0)
		return -1;
	if (json_object_object_get_ex(req, "limit", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
		    json_object_get_int64(v) > HEARTH_LIST_MAX)
			return herr_set(err, HERR_BAD_REQUEST, "limit: must be an integer from 1 to %d",
					HEARTH_LIST_MAX);
		*limit = (size_t)json_object_get_int64(v);
	}
	return 0;
}

static int owner_matches(engine_cust_fn cust, void *cctx, MDB_txn *txn, const char *id, size_t len,
			 const char *owner)
{
	struct herr e2;
	int owned = 0;
	struct cust *c = cust(cctx, txn, id, len, &owned, &e2);
	const char *o = c ? cust_profile_string(c, "owner") : NULL;
	int match = o && strcmp(o, owner) == 0;

	if (c && owned)
		cust_free(c);
	return match;
}

struct list_ctx {
	const struct ruleset *rs;
	engine_cust_fn cust;
	void *cctx;
	MDB_txn *txn;
	const char *rule, *customer, *owner;
	int state, all;
	size_t limit, n;
	struct json_object *list;
};

static int list_alert(const char *id, size_t idlen, const char *rule, const void *rec, size_t len,
		      void *vctx)
{
	struct list_ctx *ctx = vctx;
	struct alert a = { 0 };

	if (ctx->customer && (idlen != strlen(ctx->customer) || memcmp(id, ctx->customer, idlen) != 0))
		return 1;
	if (alert_decode(rec, len, &a) < 0)
		goto next;
	snprintf(a.rule, sizeof(a.rule), "%s", rule);
	if ((!ctx->all && (int)a.state != ctx->state) || (ctx->rule && strcmp(ctx->rule, a.rule) != 0))
		goto next;
	if (ctx->owner && !owner_matches(ctx->cust, ctx->cctx, ctx->txn, id, idlen, ctx->owner))
		goto next;
	json_object_array_add(ctx->list, alert_to_json(&a, id, idlen, rule_severity(ctx->rs, a.rule)));
	ctx->n++;
next:
	alert_clear(&a);
	return ctx->n >= ctx->limit;
}

int engine_alerts_list(struct alert_states *as, struct store *st, const struct ruleset *rs, MDB_txn *txn,
		       engine_cust_fn cust, void *cctx, struct json_object *req, struct json_object *ans,
		       struct herr *err)
{
	struct list_ctx ctx = { .rs = rs, .cust = cust, .cctx = cctx, .txn = txn, .state = ALERT_FIRING,
				.limit = 1000 };
	const char *state_s;
	int rc;

	if (alerts_args(req, &state_s, &ctx.rule, &ctx.customer, &ctx.owner, &ctx.limit, err) < 0)
		return -1;
	if (state_s) {
		ctx.all = strcmp(state_s, "all") == 0;
		ctx.state = alert_state_parse(state_s);
		if (!ctx.all && (ctx.state < ALERT_PENDING))
			return herr_set(err, HERR_BAD_REQUEST,
					"state: one of firing, pending, resolved, all");
	}
	if (ctx.limit == 0 || (ctx.customer && strlen(ctx.customer) > HEARTH_ID_MAX)) {
		json_object_object_add(ans, "alerts", json_object_new_array());
		return 0;
	}
	ctx.list = json_object_new_array();
	/* alert keys are customer 0x00 rule: a customer filter starts the walk there */
	rc = alert_states_walk(as, st, txn, ctx.customer, ctx.customer ? strlen(ctx.customer) : 0,
			       list_alert, &ctx, err);
	if (rc < 0) {
		json_object_put(ctx.list);
		return -1;
	}
	json_object_object_add(ans, "alerts", ctx.list);
	return 0;
}

struct ack_ctx {
	struct alert_states *as;
	const char *rule, *customer;
	size_t clen;
	const char *by;
	int found;
	struct alert a;
};

static void take_alert(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct ack_ctx *ctx = vctx;

	if (strcmp(rule, ctx->rule) == 0 && alert_decode(rec, len, &ctx->a) == 0)
		ctx->found = ctx->a.state == ALERT_FIRING;
}

static int ack_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct ack_ctx *ctx = vctx;
	struct wbuf rec;

	ctx->found = 0;
	alert_clear(&ctx->a);
	alert_states_customer(ctx->as, w->st, w->txn, ctx->customer, ctx->clen, take_alert, ctx);
	if (!ctx->found)
		return 0;
	ctx->a.acked = 1;
	snprintf(ctx->a.acked_by, sizeof(ctx->a.acked_by), "%s", ctx->by ? ctx->by : "");
	wbuf_init(&rec);
	if (alert_encode(&ctx->a, &rec) < 0) {
		wbuf_free(&rec);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	alert_states_put(ctx->as, w, ctx->customer, ctx->clen, ctx->rule, rec.data, rec.len);
	wbuf_free(&rec);
	return w->rc ? -1 : 0;
}

int engine_ack(struct engine *eng, const char *rule, const char *customer, size_t clen,
	       const char *by, struct herr *err)
{
	struct ack_ctx ctx = { .as = timeline_alert_states(eng->tl), .rule = rule,
			       .customer = customer, .clen = clen, .by = by };
	int rc;

	if (!ruleset_find(eng->rs, rule))
		return herr_set(err, HERR_NOT_FOUND, "no rule '%s'", rule);
	if (clen > HEARTH_ID_MAX)
		return herr_set(err, HERR_BAD_REQUEST, "customer: too long");
	rc = store_write(eng->st, ack_fn, &ctx, err);
	engine_memos_stale(eng); /* an acknowledged alert stops repeating: its customer's memo says otherwise */
	alert_clear(&ctx.a);
	if (rc < 0) {
		alert_states_discard(ctx.as);
		return -1;
	}
	alert_states_commit(ctx.as);
	if (!ctx.found)
		return herr_set(err, HERR_NOT_FOUND, "no firing alert '%s' for '%.*s'", rule, (int)clen, customer);
	log_info("alert, %s for '%.*s' acknowledged by '%s'", rule, (int)clen, customer, by ? by : "?");
	return 0;
}

int engine_forget(struct engine *eng, const char *id, size_t len, struct herr *err)
{
	MDB_txn *txn;
	struct cust *c;
	int64_t now = ingest_clock_now(eng->clock);

	strmap_del(&eng->deferred, id, len);
	if (store_read_begin(eng->st, &txn, err) < 0)
		return -1;
	c = timeline_hold(eng->tl, txn, id, len, err);
	if (!c) {
		store_read_end(txn);
		return err->code == HERR_NOT_FOUND ? 0 : -1;
	}
	/* resolve what fires, then drop every state record of the customer */
	engine_load_alerts(eng, txn, c);
	for (size_t i = 0; i < eng->rs->n; i++) {
		struct alert *a = &eng->alerts[i];
		int64_t wake;
		if (a->state == ALERT_INACTIVE)
			continue;
		enum alert_state before = a->state;
		enum notify_kind kind = alert_step(a, 0, now, 0, 0, &wake);
		struct change *ch = engine_push_change(eng);
		if (!ch)
			continue;
		ch->c = c;
		ch->rule = i;
		ch->a = *a;
		a->values_json = NULL;
		ch->a.state = kind == NOTIFY_RESOLVED ? ALERT_RESOLVED : ALERT_INACTIVE;
		ch->before = before;
		ch->kind = kind;
		if (kind == NOTIFY_RESOLVED)
			engine_render_resolution(eng, txn, c, i, now, &ch->a);
	}
	eng->txn = NULL;
	store_read_end(txn);
	engine_commit_changes(eng, now, WRITES_SCATTERED);
	engine_memos_stale(eng); /* the customer's states are deleted next, outside any step */
	return 0;
}
