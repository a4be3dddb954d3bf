/* Backtests as control jobs; see include/hearth/backtest.h. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/codec.h"
#include "hearth/cust_walk.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/ingest_clock.h"
#include "hearth/expr.h"
#include "hearth/job.h"
#include "hearth/limits.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define STEP_CUSTOMERS 16               /* per slice step; the job runs steps for JOB_SLICE_US */
#define MAX_MOMENTS    1000000          /* per customer: a rule that moves every ms cannot spin */

struct delta {
	int64_t at;
	int change;                     /* +1 fired, -1 resolved */
};

/* What one rule did over the window, summed over customers. */
struct tally {
	uint64_t fired, resolved, repeats, firing_at_end;
	struct delta *deltas;
	size_t ndeltas, deltas_cap;
	int64_t *durations;             /* firing to resolution, ms */
	size_t ndurations, durations_cap;
	uint32_t *day_fired, *day_resolved;
	struct json_object *only;       /* compare: customers this rule fired for and the other not */
};

struct backtest {
	struct job job;                 /* first: the control socket sees only this */
	struct job_deps d;
	const struct config *cfg;       /* the expressions were compiled against it */
	const struct ruleset *running;  /* the engine's then: a reload replaces them and frees cfg */
	struct backtest_params p;
	struct tally tally[BACKTEST_RULES];
	int64_t first_day;
	size_t ndays;
	struct cust_walk walk;
	uint64_t customers;
	struct json_object *transitions;
	int truncated;
	/* one customer's events, copied out of the query: evaluation queries again */
	struct event *events;
	size_t nevents, events_cap;
	char *text;
	size_t text_len, text_cap;
};

/* ---- one customer's events ------------------------------------------------- */

/* Text is kept as offsets until the whole history is in: the buffer moves as it grows. */
static size_t keep_text(struct backtest *bt, const char *s, size_t len)
{
	if (!s)
		return SIZE_MAX;
	if (array_reserve((void **)&bt->text, &bt->text_cap, bt->text_len + len + 1, 1) < 0)
		return SIZE_MAX - 1;
	size_t at = bt->text_len;
	memcpy(bt->text + at, s, len);
	bt->text[at + len] = '\0';
	bt->text_len += len + 1;
	return at;
}

static int collect_event(const struct event *ev, void *ctx)
{
	struct backtest *bt = ctx;
	struct event *e;

	if (array_reserve((void **)&bt->events, &bt->events_cap, bt->nevents + 1, sizeof(*e)) < 0)
		return -1;
	e = &bt->events[bt->nevents++];
	*e = *ev;
	e->attrs = NULL;
	e->seq = 0; /* time order, not log order: fold every one in */
	e->customer = (const char *)keep_text(bt, ev->customer, ev->customer_len);
	e->type = (const char *)keep_text(bt, ev->type, ev->type_len);
	e->id = (const char *)keep_text(bt, ev->id, ev->id_len);
	e->ref = (const char *)keep_text(bt, ev->ref, ev->ref_len);
	e->attrs_json = (const char *)keep_text(bt, ev->attrs_json, ev->attrs_len);
	return e->type == (const char *)(SIZE_MAX - 1) ? -1 : 0;
}

static const char *text_at(const struct backtest *bt, const char *offset)
{
	size_t at = (size_t)offset;
	return at >= SIZE_MAX - 1 ? NULL : bt->text + at;
}

static int load_events(struct backtest *bt, MDB_txn *txn, const char *id, size_t len, struct herr *err)
{
	struct timeline_query q = {
		.customer = id, .customer_len = len, .since = INT64_MIN, .until = bt->p.to, .limit = SIZE_MAX,
	};
	int more;

	bt->nevents = bt->text_len = 0;
	if (timeline_query(bt->d.tl, txn, &q, collect_event, bt, &more, err) < 0)
		return -1;
	for (size_t i = 0; i < bt->nevents; i++) {
		struct event *e = &bt->events[i];
		e->customer = text_at(bt, e->customer);
		e->type = text_at(bt, e->type);
		e->id = text_at(bt, e->id);
		e->ref = text_at(bt, e->ref);
		e->attrs_json = text_at(bt, e->attrs_json);
	}
	return 0;
}

/* ---- replay ---------------------------------------------------------------- */

static int tally_delta(struct tally *t, int64_t at, int change)
{
	if (array_reserve((void **)&t->deltas, &t->deltas_cap, t->ndeltas + 1, sizeof(*t->deltas)) < 0)
		return -1;
	t->deltas[t->ndeltas++] = (struct delta){ at, change };
	return 0;
}

static size_t day_index(const struct backtest *bt, int64_t at)
{
	int64_t day = at / MS_PER_DAY - (at < 0 && at % MS_PER_DAY);
	size_t i = (size_t)(day - bt->first_day);
	return i < bt->ndays ? i : bt->ndays - 1;
}

static int note_transition(struct backtest *bt, size_t r, const struct cust *c, enum notify_kind kind,
			   int64_t at, struct eval_env *env)
{
	struct json_object *o;
	struct rule rule = { .when = bt->p.rules[r].when };
	char buf[TIME_BUF];

	if (json_object_array_length(bt->transitions) >= HEARTH_LIST_MAX) {
		bt->truncated = 1;
		return 0;
	}
	o = json_object_new_object();
	json_object_object_add(o, "customer", json_object_new_string_len(c->id, (int)c->id_len));
	if (bt->p.nrules > 1)
		json_object_object_add(o, "rule", json_object_new_string(bt->p.rules[r].name));
	json_object_object_add(o, "kind", json_object_new_string(notify_kind_name(kind)));
	json_object_object_add(o, "at", json_object_new_string(time_format(at, buf, sizeof(buf))));
	json_object_object_add(o, "values", rule_terms_init(&rule) == 0 ? rule_values(&rule, env) : NULL);
	rule_terms_free(&rule);
	return json_object_array_add(bt->transitions, o);
}

/* One rule at one moment, as the live engine steps it; *next: when it can move by time. */
static int step_rule(struct backtest *bt, size_t r, MDB_txn *txn, struct cust *c, struct alert *a,
		     int64_t at, int counted, int64_t *next, int *fired)
{
	const struct backtest_rule *rule = &bt->p.rules[r];
	struct tally *t = &bt->tally[r];
	struct eval_env env;
	struct value v;
	int64_t changes = EVAL_NEVER, wake, fired_at = a->since;
	enum notify_kind kind;

	engine_env(bt->d.engine, txn, c, at, &env);
	if (expr_eval(rule->when, &env, &v, &changes) < 0)
		v.type = TYPE_NULL;
	kind = alert_step(a, value_truthy(&v), at, rule->for_ms, rule->repeat_ms, &wake);
	*next = changes < wake ? changes : wake;
	if (*next <= at)
		*next = at + 1;
	if (!counted)
		return 0; /* before the window: the state it opens with */
	switch (kind) {
	case NOTIFY_FIRING:
		t->fired++;
		t->day_fired[day_index(bt, at)]++;
		*fired = 1;
		if (tally_delta(t, at, +1) < 0)
			return -1;
		break;
	case NOTIFY_RESOLVED:
		t->resolved++;
		t->day_resolved[day_index(bt, at)]++;
		if (tally_delta(t, at, -1) < 0 ||
		    array_reserve((void **)&t->durations, &t->durations_cap, t->ndurations + 1, sizeof(int64_t)) < 0)
			return -1;
		t->durations[t->ndurations++] = at - fired_at;
		break;
	case NOTIFY_REPEAT:
		t->repeats++;
		break;
	default:
		return 0;
	}
	return bt->p.detail ? note_transition(bt, r, c, kind, at, &env) : 0;
}

static int step_rules(struct backtest *bt, MDB_txn *txn, struct cust *c, struct alert *alerts,
		      int64_t at, int counted, int64_t *next, int *fired)
{
	for (int r = 0; r < bt->p.nrules; r++)
		if (step_rule(bt, (size_t)r, txn, c, &alerts[r], at, counted, &next[r], &fired[r]) < 0)
			return -1;
	return 0;
}

static int note_only(struct backtest *bt, const struct cust *c, const int *fired)
{
	for (int r = 0; r < bt->p.nrules && bt->p.nrules > 1; r++) {
		struct tally *t = &bt->tally[r];
		if (!fired[r] || fired[1 - r] || json_object_array_length(t->only) >= HEARTH_LIST_MAX)
			continue;
		if (json_object_array_add(t->only, json_object_new_string_len(c->id, (int)c->id_len)) < 0)
			return -1;
	}
	return 0;
}

/* Alerts already firing when the window opens count towards the peak, not as fired. */
static int open_window(struct backtest *bt, const struct alert *alerts)
{
	for (int r = 0; r < bt->p.nrules; r++)
		if (alerts[r].state == ALERT_FIRING && tally_delta(&bt->tally[r], bt->p.from, +1) < 0)
			return -1;
	return 0;
}

/*
 * The customer's whole history up to the window's end, folded event by event,
 * the rules stepped at each event and at each moment a rule said it could
 * move, as the live engine would have: from the first event, so that the
 * window opens with the state (pending since, fired at, last repeat) the live
 * engine had then. Only what happens inside the window is counted.
 */
static int replay_customer(struct backtest *bt, MDB_txn *txn, const char *id, size_t len,
			   struct herr *err)
{
	const struct config *cfg = bt->cfg;
	struct alert alerts[BACKTEST_RULES];
	int64_t next[BACKTEST_RULES] = { EVAL_NEVER, EVAL_NEVER };
	int fired[BACKTEST_RULES] = { 0, 0 };
	struct cust *c;
	size_t i = 0;
	int rc = -1, in_window = 0;

	if (load_events(bt, txn, id, len, err) < 0)
		return -1;
	if (!(c = cust_new(id, len)))
		return herr_set(err, HERR_NOMEM, "out of memory");
	memset(alerts, 0, sizeof(alerts));
	for (size_t moments = 0; moments < MAX_MOMENTS; moments++) {
		int64_t at = i < bt->nevents ? bt->events[i].ts : EVAL_NEVER;
		for (int r = 0; r < bt->p.nrules; r++)
			if (next[r] < at)
				at = next[r];
		if (at == EVAL_NEVER || at > bt->p.to)
			break;
		if (!in_window && at >= bt->p.from) {
			in_window = 1;
			if (open_window(bt, alerts) < 0)
				goto nomem;
		}
		for (; i < bt->nevents && bt->events[i].ts == at; i++)
			cust_apply(c, &bt->events[i], cfg);
		if (step_rules(bt, txn, c, alerts, at, in_window, next, fired) < 0)
			goto nomem;
	}
	if (!in_window && open_window(bt, alerts) < 0)
		goto nomem;
	for (int r = 0; r < bt->p.nrules; r++)
		bt->tally[r].firing_at_end += alerts[r].state == ALERT_FIRING;
	if (note_only(bt, c, fired) < 0)
		goto nomem;
	bt->customers++;
	rc = 0;
	goto out;
nomem:
	herr_set(err, HERR_NOMEM, "out of memory");
out:
	for (int r = 0; r < bt->p.nrules; r++)
		alert_clear(&alerts[r]);
	cust_free(c);
	return rc;
}

/* ---- the walk over customers ------------------------------------------------ */

/* `where` holds for the customer as they are now (as `customers --where` reads it)? */
static int wanted(struct backtest *bt, MDB_txn *txn, const char *id, size_t len)
{
	struct cust *c;
	struct eval_env env;
	struct value v;
	struct herr err;
	int yes, owned = 0;

	if (!bt->p.where)
		return 1;
	if (!(c = timeline_customer(bt->d.tl, txn, id, len, &owned, &err)))
		return 0;
	engine_env(bt->d.engine, txn, c, ingest_clock_now(bt->d.clock), &env);
	yes = expr_eval(bt->p.where, &env, &v, NULL) == 0 && value_truthy(&v);
	if (owned)
		cust_free(c);
	return yes;
}

static int take(void *ctx, MDB_txn *txn, const char *id, size_t len, struct herr *err)
{
	struct backtest *bt = ctx;
	return wanted(bt, txn, id, len) ? replay_customer(bt, txn, id, len, err) : 0;
}

/* ---- the answer -------------------------------------------------------------- */

static int by_time(const void *a, const void *b)
{
	const struct delta *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->change - y->change; /* a resolution before a firing at the same instant */
}

static int by_value(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static uint64_t peak_firing(struct tally *t)
{
	int64_t now = 0, peak = 0;

	if (t->ndeltas)
		qsort(t->deltas, t->ndeltas, sizeof(*t->deltas), by_time);
	for (size_t i = 0; i < t->ndeltas; i++) {
		now += t->deltas[i].change;
		if (now > peak)
			peak = now;
	}
	return (uint64_t)peak;
}

static struct json_object *percentile(const int64_t *sorted, size_t n, double q)
{
	return n ? json_object_new_int64(sorted[(size_t)(q * (double)(n - 1) + 0.5)]) : json_object_new_null();
}

static void put_tally(struct backtest *bt, struct tally *t, struct json_object *o)
{
	struct json_object *days = json_object_new_array(), *ttr = json_object_new_object();
	char day[TIME_BUF];

	json_object_object_add(o, "fired", json_object_new_int64((int64_t)t->fired));
	json_object_object_add(o, "resolved", json_object_new_int64((int64_t)t->resolved));
	json_object_object_add(o, "repeats", json_object_new_int64((int64_t)t->repeats));
	json_object_object_add(o, "peak_firing", json_object_new_int64((int64_t)peak_firing(t)));
	json_object_object_add(o, "firing_at_end", json_object_new_int64((int64_t)t->firing_at_end));
	for (size_t i = 0; i < bt->ndays; i++) {
		struct json_object *d = json_object_new_object();
		time_format((bt->first_day + (int64_t)i) * MS_PER_DAY, day, sizeof(day));
		day[10] = '\0';
		json_object_object_add(d, "day", json_object_new_string(day));
		json_object_object_add(d, "fired", json_object_new_int64(t->day_fired[i]));
		json_object_object_add(d, "resolved", json_object_new_int64(t->day_resolved[i]));
		json_object_array_add(days, d);
	}
	json_object_object_add(o, "per_day", days);
	if (t->ndurations)
		qsort(t->durations, t->ndurations, sizeof(int64_t), by_value);
	json_object_object_add(ttr, "count", json_object_new_int64((int64_t)t->ndurations));
	json_object_object_add(ttr, "p50_ms", percentile(t->durations, t->ndurations, 0.5));
	json_object_object_add(ttr, "p90_ms", percentile(t->durations, t->ndurations, 0.9));
	json_object_object_add(o, "time_to_resolve", ttr);
}

static void put_answer(struct backtest *bt, struct json_object *ans)
{
	char buf[TIME_BUF];

	json_object_object_add(ans, "rule", json_object_new_string(bt->p.rules[0].name));
	json_object_object_add(ans, "from", json_object_new_string(time_format(bt->p.from, buf, sizeof(buf))));
	json_object_object_add(ans, "to", json_object_new_string(time_format(bt->p.to, buf, sizeof(buf))));
	json_object_object_add(ans, "customers", json_object_new_int64((int64_t)bt->customers));
	json_object_object_add(ans, "not_replayed", json_object_new_string("silences and acks"));
	put_tally(bt, &bt->tally[0], ans);
	if (bt->p.detail) {
		json_object_object_add(ans, "transitions", json_object_get(bt->transitions));
		json_object_object_add(ans, "truncated", json_object_new_boolean(bt->truncated));
	}
	if (bt->p.nrules > 1) {
		struct json_object *cmp = json_object_new_object();
		json_object_object_add(cmp, "rule", json_object_new_string(bt->p.rules[1].name));
		put_tally(bt, &bt->tally[1], cmp);
		json_object_object_add(ans, "only_this", json_object_get(bt->tally[0].only));
		json_object_object_add(cmp, "only_this", json_object_get(bt->tally[1].only));
		json_object_object_add(ans, "compare", cmp);
	}
}

/* ---- the job ----------------------------------------------------------------- */

static int backtest_step(struct job *job, struct json_object *ans, struct herr *err)
{
	struct backtest *bt = (struct backtest *)job;

	/* the expressions point into the configuration they were compiled with */
	if (engine_rules(bt->d.engine) != bt->running)
		return herr_set(err, HERR_GONE, "the configuration was reloaded during the backtest; run it again");
	int more = cust_walk_step(&bt->walk, STEP_CUSTOMERS, take, bt, err);

	if (more != 0)
		return more;
	put_answer(bt, ans);
	return 0;
}

static void params_free(struct backtest_params *p)
{
	for (int r = 0; r < BACKTEST_RULES; r++) {
		expr_free(p->rules[r].when);
		p->rules[r].when = NULL;
	}
	expr_free(p->where);
	p->where = NULL;
}

static void backtest_free(struct job *job)
{
	struct backtest *bt = (struct backtest *)job;

	params_free(&bt->p);
	for (int r = 0; r < BACKTEST_RULES; r++) {
		struct tally *t = &bt->tally[r];
		free(t->deltas);
		free(t->durations);
		free(t->day_fired);
		free(t->day_resolved);
		json_object_put(t->only);
	}
	json_object_put(bt->transitions);
	cust_walk_free(&bt->walk);
	free(bt->events);
	free(bt->text);
	free(bt);
}

struct job *backtest_job_new(const struct job_deps *d, const struct config *cfg,
			     struct backtest_params *p, struct herr *err)
{
	struct backtest *bt = calloc(1, sizeof(*bt));

	if (!bt) {
		params_free(p);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	bt->job.step = backtest_step;
	bt->job.free = backtest_free;
	bt->d = *d;
	bt->cfg = cfg;
	bt->running = engine_rules(d->engine);
	bt->p = *p;
	memset(p, 0, sizeof(*p));
	bt->first_day = bt->p.from / MS_PER_DAY;
	bt->ndays = (size_t)(bt->p.to / MS_PER_DAY - bt->first_day + 1);
	bt->transitions = json_object_new_array();
	for (int r = 0; r < bt->p.nrules; r++) {
		struct tally *t = &bt->tally[r];
		t->day_fired = calloc(bt->ndays, sizeof(*t->day_fired));
		t->day_resolved = calloc(bt->ndays, sizeof(*t->day_resolved));
		t->only = json_object_new_array();
		if (!t->day_fired || !t->day_resolved || !t->only)
			goto nomem;
	}
	if (!bt->transitions || cust_walk_init(&bt->walk, d->st, d->tl, err) < 0)
		goto nomem;
	return &bt->job;
nomem:
	backtest_free(&bt->job);
	herr_set(err, HERR_NOMEM, "out of memory");
	return NULL;
}
