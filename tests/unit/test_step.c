/*
 * One customer's rules stepped with the writer's memo (src/engine/step.c)
 * against the same customer stepped without one. The memo lets a step skip
 * rules it proves quiet and, when nothing changes, the reading of the stored
 * alert states: it keeps what a step needs of the pending and firing ones.
 * Whatever it skips, the changes must be the ones a step that reads
 * everything makes.
 *
 * Two copies of a customer get the same events and are stepped at the same
 * moments over a simulated half year: copy A with a memo, over store A; copy
 * B without, over store B. A "store" here is an array of alerts a step's
 * changes are written to, as the commit writes them. Now and then a firing
 * alert is acknowledged in both stores outside any step (as `ack` does), and
 * A's memo generation moves on, as the engine's does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"
#include "../../src/engine/engine_impl.h"

#define T0    1767225600000LL    /* 2026-01-01T00:00:00Z */
#define STEPS 4000
#define RULES_MAX 8

static const char YAML[] =
	"rules:\n"
	"  - name: quiet\n"
	"    when: 'since(call) > 3d'\n"
	"    for: 0s\n"
	"    repeat: 1d\n"
	"    severity: warning\n"
	"    summary: \"{id} quiet\"\n"
	"  - name: busy\n"
	"    when: 'count(call, 2d) >= 2'\n"
	"    for: 6h\n"
	"    severity: info\n"
	"    summary: \"{id} busy\"\n"
	"  - name: bought_then_silent\n"
	"    when: 'count(purchase, 30d) >= 1 and since(call) > 1d'\n"
	"    for: 1h\n"
	"    repeat: 12h\n"
	"    severity: info\n"
	"    summary: \"{id} bought, no call\"\n"
	"  - name: lapsed\n"
	"    when: 'since(purchase) > 5d'\n"
	"    for: 0s\n"
	"    severity: info\n"
	"    summary: \"{id} lapsed\"\n";

struct copy {
	struct cust *c;
	struct alert stored[RULES_MAX];  /* what the store holds */
	struct alert alerts[RULES_MAX];  /* the step's working states */
	size_t nrules;
	size_t loads;
	/* the changes of the last step, as the sink saw them */
	struct {
		size_t rule;
		enum notify_kind kind;
		enum alert_state state;
		int64_t since, last_notified;
		int acked;
	} changes[RULES_MAX];
	size_t nchanges;
};

static void copy_env(void *ctx, const struct cust *c, int64_t now, struct eval_env *env)
{
	(void)ctx;
	memset(env, 0, sizeof(*env));
	env->c = c;
	env->now = now;
}

static void copy_load(void *ctx)
{
	struct copy *k = ctx;

	k->loads++;
	for (size_t i = 0; i < k->nrules; i++) {
		free(k->alerts[i].values_json);
		k->alerts[i] = k->stored[i];
		k->alerts[i].values_json = NULL;
	}
}

static void copy_changed(void *ctx, size_t rule, struct alert *a, enum alert_state before, int64_t since_before,
			 enum notify_kind kind)
{
	struct copy *k = ctx;

	(void)before;
	(void)since_before;
	assert_true(k->nchanges < RULES_MAX);
	k->changes[k->nchanges].rule = rule;
	k->changes[k->nchanges].kind = kind;
	k->changes[k->nchanges].state = a->state;
	k->changes[k->nchanges].since = a->since;
	k->changes[k->nchanges].last_notified = a->last_notified;
	k->changes[k->nchanges].acked = a->acked;
	k->nchanges++;
	/* committed as the engine commits: the state goes to the store */
	k->stored[rule] = *a;
	k->stored[rule].values_json = NULL;
}

static void copy_failed(void *ctx, size_t rule, const char *error)
{
	(void)ctx;
	fail_msg("rule %zu failed: %s", rule, error);
}

struct fx {
	struct config *cfg;
	struct ruleset *rs;
	struct copy a, b;
	uint64_t gen;
};

static void copy_init(struct copy *k, const struct ruleset *rs)
{
	memset(k, 0, sizeof(*k));
	k->c = cust_new("C1", 2);
	assert_non_null(k->c);
	k->nrules = rs->n;
	for (size_t i = 0; i < rs->n; i++) {
		snprintf(k->stored[i].rule, sizeof(k->stored[i].rule), "%s", rs->rules[i].cfg->name);
		k->alerts[i] = k->stored[i];
	}
}

static void copy_free(struct copy *k)
{
	for (size_t i = 0; i < k->nrules; i++)
		free(k->alerts[i].values_json);
	cust_free(k->c);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char errors[2048];

	if (!f)
		return -1;
	f->cfg = config_load_string(YAML, strlen(YAML), "t.yaml", errors, sizeof(errors));
	if (!f->cfg)
		fail_msg("config: %s", errors);
	f->rs = ruleset_compile(f->cfg, errors, sizeof(errors));
	if (!f->rs)
		fail_msg("rules: %s", errors);
	assert_true(f->rs->n <= RULES_MAX);
	copy_init(&f->a, f->rs);
	copy_init(&f->b, f->rs);
	f->gen = 1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	copy_free(&f->a);
	copy_free(&f->b);
	ruleset_free(f->rs);
	config_free(f->cfg);
	free(f);
	return 0;
}

static void give(struct fx *f, const char *type, int64_t ts)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.ts = ts;
	ev.customer = "C1";
	ev.customer_len = 2;
	ev.type = type;
	ev.type_len = strlen(type);
	assert_int_equal(cust_apply(f->a.c, &ev, f->cfg), 0);
	assert_int_equal(cust_apply(f->b.c, &ev, f->cfg), 0);
}

static void step(struct fx *f, struct copy *k, int with_memo, int64_t now)
{
	const struct step_env se = { copy_env, copy_load, k, with_memo ? k->c : NULL, with_memo ? f->gen : 0 };
	const struct step_sink sink = { copy_changed, copy_failed, k };

	k->nchanges = 0;
	engine_step(f->rs, k->alerts, k->c, now, &se, &sink);
}

static void assert_same_changes(const struct copy *a, const struct copy *b, int64_t now)
{
	if (a->nchanges != b->nchanges)
		fail_msg("at +%lld ms: %zu change(s) with the memo, %zu without", (long long)(now - T0), a->nchanges,
			 b->nchanges);
	for (size_t i = 0; i < a->nchanges; i++) {
		assert_int_equal(a->changes[i].rule, b->changes[i].rule);
		assert_int_equal(a->changes[i].kind, b->changes[i].kind);
		assert_int_equal(a->changes[i].state, b->changes[i].state);
		assert_int_equal(a->changes[i].since, b->changes[i].since);
		assert_int_equal(a->changes[i].last_notified, b->changes[i].last_notified);
		assert_int_equal(a->changes[i].acked, b->changes[i].acked);
	}
}

/* A firing alert acknowledged in both stores, outside any step; the rule, or -1 if none fires. */
static int ack_one(struct fx *f, unsigned pick)
{
	for (size_t j = 0; j < f->rs->n; j++) {
		size_t i = (pick + j) % f->rs->n;
		if (f->a.stored[i].state != ALERT_FIRING || f->a.stored[i].acked)
			continue;
		f->a.stored[i].acked = f->b.stored[i].acked = 1;
		return (int)i;
	}
	return -1;
}

static void test_memo_steps_change_what_full_steps_change(void **state)
{
	struct fx *f = *state;
	unsigned rnd = 12345;
	int64_t now = T0;
	size_t quiet_steps = 0, quiet_loads = 0, changes = 0, acks = 0;

	give(f, "call", now);
	for (int s = 0; s < STEPS; s++) {
		rnd = rnd * 1103515245u + 12345u;
		now += (int64_t)((rnd >> 8) % (30 * 60)) * MS_PER_MINUTE; /* up to 30 h */
		unsigned what = (rnd >> 20) % 16;
		if (what < 4)
			give(f, "call", now);
		else if (what == 4)
			give(f, "purchase", now);
		else if (what == 5 && ack_one(f, rnd >> 24) >= 0) {
			f->gen++; /* as engine_ack does: the memo's pending and firing states may be wrong now */
			acks++;
		}
		size_t loads = f->a.loads;
		int memo_held = f->a.c->quiet_gen == f->gen;
		step(f, &f->a, 1, now);
		step(f, &f->b, 0, now);
		assert_same_changes(&f->a, &f->b, now);
		changes += f->a.nchanges;
		if (memo_held && f->a.nchanges == 0) {
			quiet_steps++;
			quiet_loads += f->a.loads - loads;
		}
		for (size_t i = 0; i < f->rs->n; i++) {
			assert_int_equal(f->a.stored[i].state, f->b.stored[i].state);
			assert_int_equal(f->a.stored[i].since, f->b.stored[i].since);
		}
	}
	/* the walk went through every kind of step, or it proves little */
	assert_true(changes > 100);
	assert_true(acks > 10);
	assert_true(quiet_steps > 100);
	/* a step under a memo that held and changed nothing did not read the store */
	assert_int_equal(quiet_loads, 0);
	/* the step without a memo reads the store every time */
	assert_int_equal(f->b.loads, STEPS);
}

/*
 * A change made outside the customer's own steps is told to its memo
 * (engine_memo_alert, as the commit does for every change it writes): the
 * next step needs no new generation to see it.
 */
static void test_changes_told_to_the_memo(void **state)
{
	struct fx *f = *state;
	int64_t now = T0;

	give(f, "call", now);
	now += 4 * MS_PER_DAY; /* quiet fires */
	step(f, &f->a, 1, now);
	assert_int_equal(f->a.nchanges, 1);
	assert_int_equal(f->a.stored[0].state, ALERT_FIRING);
	assert_int_equal(f->a.c->nheads, 1);

	/* the store loses the firing alert outside a step (forgotten, say) and the memo is told */
	alert_reset(&f->a.stored[0]);
	engine_memo_alert(f->a.c, 0, &f->a.stored[0]);
	assert_int_equal(f->a.c->nheads, 0);
	size_t loads = f->a.loads;
	now += MS_PER_HOUR;
	step(f, &f->a, 1, now);
	/* the condition holds and the alert is inactive: it fires again, from the stored state */
	assert_int_equal(f->a.nchanges, 1);
	assert_int_equal(f->a.changes[0].kind, NOTIFY_FIRING);
	assert_int_equal(f->a.loads, loads + 1);
	assert_int_equal(f->a.c->nheads, 1);
	assert_int_equal(f->a.c->heads[0].state, ALERT_FIRING);
	assert_int_equal(f->a.c->heads[0].at, now);

	/* resolved: nothing is pending or firing, and a step that changes nothing reads nothing */
	give(f, "call", now);
	step(f, &f->a, 1, now + MS_PER_MINUTE);
	assert_int_equal(f->a.nchanges, 1);
	assert_int_equal(f->a.changes[0].kind, NOTIFY_RESOLVED);
	assert_int_equal(f->a.c->nheads, 0);
	loads = f->a.loads;
	step(f, &f->a, 1, now + 2 * MS_PER_MINUTE);
	assert_int_equal(f->a.nchanges, 0);
	assert_int_equal(f->a.loads, loads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memo_steps_change_what_full_steps_change, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_changes_told_to_the_memo, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
