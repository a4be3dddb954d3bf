/*
 * One customer's rules stepped at a moment: each rule's condition evaluated
 * and its alert moved through its lifecycle (alert.c). Pure over its inputs,
 * so the writer (commit.c) and the re-evaluation workers (reeval_worker.c)
 * share it; what changed goes to a sink, which decides what it means.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"
#include "engine_impl.h"

#define ONSET_STEPS 8

/*
 * When the rule's condition began to hold, as far as the customer's state
 * since their last event tells: between events a condition changes only with
 * time, at the moments expr_eval reports, so walking those from the last
 * event finds the exact moment a time-driven condition (30 days after the
 * last touch) became true. A condition already true at the last event gets
 * that event's time: it may have held earlier still. `now` if not found.
 */
static int64_t condition_onset(const struct step_env *se, const struct cust *c, const struct rule *r,
			       int64_t now)
{
	int64_t t = c->last_seen;

	if (t == TIME_NONE || t > now)
		return now;
	for (int step = 0; step < ONSET_STEPS; step++) {
		struct eval_env env;
		struct value v;
		int64_t next = EVAL_NEVER;
		se->env(se->ctx, c, t, &env);
		if (expr_eval(r->when, &env, &v, &next) == 0 && value_truthy(&v))
			return t;
		if (next == EVAL_NEVER || next <= t || next > now)
			break;
		t = next;
	}
	return now;
}

void engine_render_alert(const struct rule *r, struct eval_env *env, struct alert *a)
{
	struct wbuf values;

	wbuf_init(&values);
	rule_values_text(r, env, &values);
	wbuf_u8(&values, 0);
	tmpl_render(&r->summary, env, a->summary, sizeof(a->summary));
	a->values_at = env->now;
	free(a->values_json);
	a->values_json = NULL;
	if (!values.failed) {
		/* the buffer becomes the alert's: no copy */
		a->values_json = (char *)values.data;
		wbuf_init(&values);
	}
	wbuf_free(&values);
}

/* The memo holds for this ruleset at this moment: what it proves quiet can be skipped. */
static int memo_holds(const struct cust *m, uint64_t gen, size_t nrules, int64_t now)
{
	return m && m->quiet_gen == gen && m->nquiet == nrules && now >= m->quiet_at;
}

/* A memo with room for every rule, or NULL (out of memory: nothing remembered). */
static struct cust *memo_sized(struct cust *m, size_t nrules)
{
	if (!m || m->nquiet == nrules)
		return m;
	int64_t *quiet = realloc(m->quiet_until, (nrules ? nrules : 1) * sizeof(*quiet));
	if (!quiet) {
		m->quiet_gen = 0;
		return NULL;
	}
	m->quiet_until = quiet;
	m->nquiet = nrules;
	return m;
}

static struct alert_head head_of(size_t rule, const struct alert *a)
{
	return (struct alert_head){ .rule = (uint32_t)rule, .state = (uint8_t)a->state, .acked = (uint8_t)!!a->acked,
				    .at = a->state == ALERT_PENDING ? a->since : a->last_notified };
}

static int is_active(enum alert_state s)
{
	return s == ALERT_PENDING || s == ALERT_FIRING;
}

/*
 * The alerts as the memo knows them: its heads, every other rule's inactive
 * (resolved ones too: a step that changes nothing treats both alike). Only
 * what such a step reads is set: one that changes an alert loads them whole.
 */
static void alerts_from_heads(const struct cust *m, struct alert *alerts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		alerts[i].state = ALERT_INACTIVE;
		alerts[i].since = alerts[i].last_notified = 0;
		alerts[i].acked = 0;
	}
	for (size_t k = 0; k < m->nheads; k++) {
		const struct alert_head *h = &m->heads[k];
		if (h->rule >= n)
			continue;
		struct alert *a = &alerts[h->rule];
		a->state = (enum alert_state)h->state;
		a->acked = h->acked;
		if (a->state == ALERT_PENDING)
			a->since = h->at;
		else
			a->last_notified = h->at;
	}
}

/* The memo's heads from alerts as they are now; -1 when out of memory. */
static int heads_from_alerts(struct cust *m, const struct alert *alerts, size_t n)
{
	m->nheads = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_active(alerts[i].state))
			continue;
		if (array_reserve((void **)&m->heads, &m->heads_cap, m->nheads + 1, sizeof(*m->heads)) < 0)
			return -1;
		m->heads[m->nheads++] = head_of(i, &alerts[i]);
	}
	return 0;
}

void engine_memo_alert(struct cust *c, size_t rule, const struct alert *a)
{
	int active = is_active(a->state);
	size_t k = 0;

	while (k < c->nheads && c->heads[k].rule != rule)
		k++;
	if (k < c->nheads) {
		c->heads[k] = active ? head_of(rule, a) : c->heads[--c->nheads];
		return;
	}
	if (!active)
		return;
	if (array_reserve((void **)&c->heads, &c->heads_cap, c->nheads + 1, sizeof(*c->heads)) < 0) {
		c->quiet_gen = 0;
		return;
	}
	c->heads[c->nheads++] = head_of(rule, a);
}

/*
 * A rule whose alert is inactive or resolved stays so while its condition
 * does not hold: when the memo says it did not and cannot before quiet_until,
 * and no fold since touched what it reads, evaluating it would change nothing
 * but this (its next change is the deadline it gave).
 */
static int proven_quiet(const struct cust *m, const struct rule *r, size_t i, const struct alert *a,
			int64_t now)
{
	return (a->state == ALERT_INACTIVE || a->state == ALERT_RESOLVED) && !(r->when->deps & m->changed) &&
	       now < m->quiet_until[i];
}

int64_t engine_step(const struct ruleset *rs, struct alert *alerts, const struct cust *c, int64_t now,
		    const struct step_env *se, const struct step_sink *sink)
{
	int64_t deadline = EVAL_NEVER;
	int skip = memo_holds(se->memo, se->gen, rs->n, now);
	struct cust *memo = memo_sized(se->memo, rs->n);
	/* the stored states are read only for a change: most steps of a held customer change nothing */
	int loaded = !skip;

	if (loaded)
		se->load(se->ctx);
	else
		alerts_from_heads(memo, alerts, rs->n);

	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		struct alert *a = &alerts[i];
		struct eval_env env;
		struct value v;
		int64_t next_change = EVAL_NEVER, wake;

		if (!r->when)
			continue;
		if (skip && proven_quiet(memo, r, i, a, now)) {
			if (memo->quiet_until[i] < deadline)
				deadline = memo->quiet_until[i];
			continue;
		}
		se->env(se->ctx, c, now, &env);
		if (expr_eval(r->when, &env, &v, &next_change) < 0)
			v.type = TYPE_NULL;
		if (env.error[0])
			sink->failed(sink->ctx, i, env.error);
		if (memo)
			memo->quiet_until[i] = value_truthy(&v) || env.error[0] ? TIME_NONE : next_change;
		enum alert_state before = a->state;
		int64_t since_before = a->since;
		enum notify_kind kind = alert_step(a, value_truthy(&v), now, r->cfg->for_ms,
						   r->cfg->repeat_ms, &wake);
		if (!loaded && (kind != NOTIFY_NONE || a->state != before || a->since != since_before)) {
			/* a change is made to the whole stored alert, not to what the memo keeps of it */
			se->load(se->ctx);
			loaded = 1;
			before = a->state;
			since_before = a->since;
			kind = alert_step(a, value_truthy(&v), now, r->cfg->for_ms, r->cfg->repeat_ms, &wake);
		}
		if (next_change < deadline)
			deadline = next_change;
		if (wake < deadline)
			deadline = wake;
		/*
		 * What a firing alert says now is rendered by the readers that show it
		 * (control/firing_now.c): stored, it is what its last notification said.
		 */
		if (kind == NOTIFY_NONE && a->state == before && a->since == since_before)
			continue;
		if (kind != NOTIFY_NONE)
			engine_render_alert(r, &env, a);
		if (kind == NOTIFY_FIRING)
			a->active_since = condition_onset(se, c, r, now);
		sink->changed(sink->ctx, i, a, before, since_before, kind);
	}
	if (memo) {
		memo->changed = 0;
		memo->quiet_at = now;
		memo->quiet_gen = loaded && heads_from_alerts(memo, alerts, rs->n) < 0 ? 0 : se->gen;
	}
	return deadline;
}
