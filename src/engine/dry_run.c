/*
 * `reload.dry_run` (PROTOCOL.md §5.20): which alerts a changed configuration
 * would fire, resolve or change right now, without applying it. The file is
 * loaded and compiled exactly as a reload would; every customer is then
 * evaluated under the new rules at this moment and each alert's stored state
 * stepped, on a copy, by the lifecycle the engine uses. A control job: a few
 * customers per slice.
 *
 * `hearthd --check -c FILE --against STORE` runs the same walk to its end
 * outside any daemon, on a store opened read-only; what "the running rules" are
 * then comes from the digests the daemon records in the store (rules.h).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/alert_states.h"
#include "hearth/config.h"
#include "hearth/cust_walk.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "engine_impl.h"
#include "hearth/eval.h"
#include "hearth/ingest_clock.h"
#include "hearth/job.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/units.h"

#define STEP_CUSTOMERS 32

enum rule_status { RULE_SAME, RULE_NEW, RULE_CHANGED, RULE_REMOVED };
static const char *const status_names[] = { "same", "new", "changed", "removed" };

/* A rule of either configuration and what the new one would do to its alerts. */
struct rule_outcome {
	const char *name;
	enum rule_status status;
	ssize_t now_index, next_index;  /* in the running and the new rules; -1 absent */
	uint64_t fire, resolve, change, pending;
};

struct dry_run {
	struct job job;
	struct job_deps d;
	const struct ruleset *running;  /* the engine's: a reload meanwhile makes the comparison moot */
	struct config *next_cfg;
	struct ruleset *next;
	struct rule_digests now;        /* the running rules */
	struct rule_outcome *rules;
	struct alert *stored;           /* one customer's stored state, by outcome */
	size_t nrules;
	int64_t at;                     /* TIME_NONE: the daemon's now at each customer */
	struct cust_walk walk;
	uint64_t customers;
	struct json_object *alerts;
	int truncated;
};

/* The union of both rule lists: the new ones in order, then those the new file drops. */
static int list_rules(struct dry_run *dr, struct herr *err)
{
	const struct rule_digests *now = &dr->now;

	dr->rules = calloc(now->n + dr->next->n + 1, sizeof(*dr->rules));
	dr->stored = calloc(now->n + dr->next->n + 1, sizeof(*dr->stored));
	if (!dr->rules || !dr->stored)
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i < dr->next->n; i++) {
		const struct rule *r = &dr->next->rules[i];
		struct rule_outcome *o = &dr->rules[dr->nrules++];
		o->name = r->cfg->name;
		o->next_index = (ssize_t)i;
		o->now_index = rule_digests_index(now, r->cfg->name);
		o->status = o->now_index < 0 ? RULE_NEW
			    : now->v[o->now_index].digest != rule_digest(r->cfg) ? RULE_CHANGED : RULE_SAME;
	}
	for (size_t i = 0; i < now->n; i++) {
		if (ruleset_index(dr->next, now->v[i].name) >= 0)
			continue;
		struct rule_outcome *o = &dr->rules[dr->nrules++];
		o->name = now->v[i].name;
		o->status = RULE_REMOVED;
		o->now_index = (ssize_t)i;
		o->next_index = -1;
	}
	return 0;
}

static int note(struct dry_run *dr, const struct rule_outcome *o, const struct cust *c, const char *kind)
{
	struct json_object *a;

	if (json_object_array_length(dr->alerts) >= HEARTH_LIST_MAX) {
		dr->truncated = 1;
		return 0;
	}
	a = json_object_new_object();
	json_object_object_add(a, "rule", json_object_new_string(o->name));
	json_object_object_add(a, "customer", json_object_new_string_len(c->id, (int)c->id_len));
	json_object_object_add(a, "kind", json_object_new_string(kind));
	return json_object_array_add(dr->alerts, a);
}

/* What the new rule does to one customer's alert, stepped on a copy of its state. */
static int outcome(struct dry_run *dr, struct rule_outcome *o, MDB_txn *txn, struct cust *c,
		   const struct alert *stored, int64_t now)
{
	struct alert a = { .state = ALERT_INACTIVE };
	int64_t wake;
	int holds = 0;

	if (stored) {
		a = *stored;
		a.values_json = NULL;
	}
	if (o->next_index >= 0) {
		const struct rule *r = &dr->next->rules[o->next_index];
		struct eval_env env;
		struct value v;
		engine_env(dr->d.engine, txn, c, now, &env);
		holds = expr_eval(r->when, &env, &v, NULL) == 0 && value_truthy(&v);
		enum alert_state before = a.state;
		enum notify_kind kind = alert_step(&a, holds, now, r->cfg->for_ms, r->cfg->repeat_ms, &wake);
		if (kind == NOTIFY_FIRING)
			return o->fire++, note(dr, o, c, "fire");
		if (kind == NOTIFY_RESOLVED)
			return o->resolve++, note(dr, o, c, "resolve");
		if (a.state == ALERT_PENDING && before != ALERT_PENDING)
			return o->pending++, note(dr, o, c, "pending");
		if (a.state == ALERT_FIRING && o->status == RULE_CHANGED)
			return o->change++, note(dr, o, c, "change");
		return 0;
	}
	/* a removed rule's firing alerts resolve */
	if (a.state == ALERT_FIRING)
		return o->resolve++, note(dr, o, c, "resolve");
	return 0;
}

static void take_stored(const char *rule, const void *rec, size_t len, void *ctx)
{
	struct dry_run *dr = ctx;

	for (size_t i = 0; i < dr->nrules; i++) {
		if (dr->rules[i].now_index < 0 || strcmp(dr->rules[i].name, rule) != 0)
			continue;
		if (alert_decode(rec, len, &dr->stored[i]) < 0)
			alert_clear(&dr->stored[i]);
		return;
	}
}

static int dry_run_customer(void *ctx, MDB_txn *txn, const char *id, size_t len, struct herr *err)
{
	struct dry_run *dr = ctx;
	int64_t now = dr->at != TIME_NONE ? dr->at : ingest_clock_now(dr->d.clock);
	int owned = 0, rc = 0;
	struct cust *c = timeline_customer(dr->d.tl, txn, id, len, &owned, err);

	if (!c)
		return err->code == HERR_NOT_FOUND ? 0 : -1;
	for (size_t i = 0; i < dr->nrules; i++)
		alert_clear(&dr->stored[i]);
	alert_states_customer(timeline_alert_states(dr->d.tl), dr->d.st, txn, id, len, take_stored, dr);
	for (size_t i = 0; i < dr->nrules && rc == 0; i++) {
		struct rule_outcome *o = &dr->rules[i];
		rc = outcome(dr, o, txn, c, o->now_index >= 0 ? &dr->stored[i] : NULL, now);
	}
	dr->d.engine->txn = NULL;
	dr->customers++;
	if (owned)
		cust_free(c);
	return rc < 0 ? herr_set(err, HERR_NOMEM, "out of memory") : 0;
}

static void put_answer(struct dry_run *dr, struct json_object *ans)
{
	struct json_object *rules = json_object_new_array();
	uint64_t fire = 0, resolve = 0, change = 0, pending = 0;

	for (size_t i = 0; i < dr->nrules; i++) {
		const struct rule_outcome *o = &dr->rules[i];
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "rule", json_object_new_string(o->name));
		json_object_object_add(r, "status", json_object_new_string(status_names[o->status]));
		json_object_object_add(r, "fire", json_object_new_int64((int64_t)o->fire));
		json_object_object_add(r, "resolve", json_object_new_int64((int64_t)o->resolve));
		json_object_object_add(r, "change", json_object_new_int64((int64_t)o->change));
		json_object_object_add(r, "pending", json_object_new_int64((int64_t)o->pending));
		json_object_array_add(rules, r);
		fire += o->fire, resolve += o->resolve, change += o->change, pending += o->pending;
	}
	json_object_object_add(ans, "customers", json_object_new_int64((int64_t)dr->customers));
	json_object_object_add(ans, "fire", json_object_new_int64((int64_t)fire));
	json_object_object_add(ans, "resolve", json_object_new_int64((int64_t)resolve));
	json_object_object_add(ans, "change", json_object_new_int64((int64_t)change));
	json_object_object_add(ans, "pending", json_object_new_int64((int64_t)pending));
	json_object_object_add(ans, "rules", rules);
	json_object_object_add(ans, "alerts", json_object_get(dr->alerts));
	json_object_object_add(ans, "truncated", json_object_new_boolean(dr->truncated));
}

static int dry_run_step(struct job *job, struct json_object *ans, struct herr *err)
{
	struct dry_run *dr = (struct dry_run *)job;
	int more;

	if (dr->running && engine_rules(dr->d.engine) != dr->running)
		return herr_set(err, HERR_GONE, "the configuration was reloaded meanwhile; run the dry run again");
	if ((more = cust_walk_step(&dr->walk, STEP_CUSTOMERS, dry_run_customer, dr, err)) != 0)
		return more;
	put_answer(dr, ans);
	return 0;
}

static void dry_run_free(struct job *job)
{
	struct dry_run *dr = (struct dry_run *)job;

	cust_walk_free(&dr->walk);
	json_object_put(dr->alerts);
	for (size_t i = 0; dr->stored && i < dr->nrules; i++)
		alert_clear(&dr->stored[i]);
	free(dr->stored);
	free(dr->rules);
	rule_digests_free(&dr->now);
	ruleset_free(dr->next);
	config_free(dr->next_cfg);
	free(dr);
}

/* Takes next_cfg and next (also on failure) and the running rules' digests in now. */
static struct dry_run *dry_run_new(const struct job_deps *d, struct config *next_cfg,
				   struct ruleset *next, struct rule_digests *now, struct herr *err)
{
	struct dry_run *dr = calloc(1, sizeof(*dr));

	if (!dr) {
		herr_set(err, HERR_NOMEM, "out of memory");
		ruleset_free(next);
		config_free(next_cfg);
		rule_digests_free(now);
		return NULL;
	}
	dr->job.step = dry_run_step;
	dr->job.free = dry_run_free;
	dr->d = *d;
	dr->next_cfg = next_cfg;
	dr->next = next;
	dr->now = *now;
	dr->at = TIME_NONE;
	if (list_rules(dr, err) < 0 || cust_walk_init(&dr->walk, d->st, d->tl, err) < 0)
		goto fail;
	if (!(dr->alerts = json_object_new_array())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	return dr;
fail:
	dry_run_free(&dr->job);
	return NULL;
}

struct job *dry_run_job_new(const struct job_deps *d, struct config *next_cfg, struct ruleset *next,
			    struct herr *err)
{
	struct rule_digests now = { 0 };
	struct dry_run *dr;

	if (rule_digests_of(engine_rules(d->engine), &now) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		ruleset_free(next);
		config_free(next_cfg);
		return NULL;
	}
	if (!(dr = dry_run_new(d, next_cfg, next, &now, err)))
		return NULL;
	dr->running = engine_rules(d->engine);
	return &dr->job;
}

static int stored_rules(struct store *st, struct rule_digests *now, struct herr *err)
{
	MDB_txn *txn;
	const void *val;
	size_t vlen;
	int rc;

	if (store_read_begin(st, &txn, err) < 0)
		return -1;
	rc = store_meta_get(txn, st, "rules", &val, &vlen, err);
	if (rc == 0 && rule_digests_decode(val, vlen, now) < 0)
		herr_set(err, HERR_STORE_ERROR, "store at %s: its record of the running rules is damaged",
			 store_path(st));
	else if (rc == 1)
		herr_set(err, HERR_STORE_ERROR, "store at %s does not record which rules run on it "
			 "(an older hearthd wrote it): start this hearthd on it once", store_path(st));
	store_read_end(txn);
	return err->code == HERR_OK ? 0 : -1;
}

int dry_run_against(const struct job_deps *d, struct config *next_cfg, struct ruleset *next, int64_t at,
		    struct json_object *ans, struct herr *err)
{
	struct rule_digests now = { 0 };
	struct dry_run *dr;
	int rc;

	if (stored_rules(d->st, &now, err) < 0) {
		ruleset_free(next);
		config_free(next_cfg);
		return -1;
	}
	if (!(dr = dry_run_new(d, next_cfg, next, &now, err)))
		return -1;
	dr->at = at;
	while ((rc = dry_run_step(&dr->job, ans, err)) > 0)
		;
	dry_run_free(&dr->job);
	return rc;
}
