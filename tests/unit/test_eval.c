/*
 * eval.h and rules.h: every function of PROTOCOL.md §7.4 with exact values against
 * customers built event by event, null semantics, profile names, the
 * `next_change` deadline of each kind of moving term, window scans beyond the
 * state's 13 recent times, and the summary templates and rule values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"

#define DAY MS_PER_DAY
#define HOUR MS_PER_HOUR
#define T0 1800000000000LL      /* 2027-01-15T08:00:00Z */

static const char YAML[] =
	"events:\n"
	"  sets:\n"
	"    touch: [contact, call, visit, meeting, message]\n"
	"    big: [t1, t2, t3, t4, t5, t6, t7, t8, t9]\n"
	"  cases:\n"
	"    complaint: {open: complaint, close: complaint_resolved}\n"
	"    promise: {open: promise, close: promise_kept, due: due}\n"
	"rules:\n"
	"  - name: customer_cooling\n"
	"    when: 'tier in [\"B\", \"C\"] and since(touch) > 30d'\n"
	"    summary: \"{name} ({id}) has had no contact for {since(touch)}; {{literal}} {owner}\"\n"
	"  - name: plain\n"
	"    when: 'open(complaint) > 0'\n";

static struct config *cfg;

static int setup(void **state)
{
	char errors[1024];

	(void)state;
	cfg = config_load_string(YAML, strlen(YAML), "t.yaml", errors, sizeof(errors));
	if (!cfg)
		fprintf(stderr, "config: %s\n", errors);
	return cfg ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	config_free(cfg);
	return 0;
}

/* ---- building customers ---------------------------------------------------- */

static struct cust *mk(void)
{
	struct cust *c = cust_new("C1", 2);

	assert_non_null(c);
	return c;
}

static void add(struct cust *c, const char *type, int64_t ts, const char *ref, const char *attrs)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.ts = ts;
	ev.customer = c->id;
	ev.customer_len = c->id_len;
	ev.type = type;
	ev.type_len = strlen(type);
	ev.ref = ref;
	ev.ref_len = ref ? strlen(ref) : 0;
	ev.attrs_json = attrs;
	ev.attrs_len = attrs ? strlen(attrs) : 0;
	assert_int_equal(cust_apply(c, &ev, cfg), 0);
}

/* ---- evaluating -------------------------------------------------------------- */

struct res {
	enum vtype type;
	double num;
	int64_t ms;
	int b;
	char str[128];
	int64_t next;
	char error[160];
};

static struct expr *compile(const char *src)
{
	char msg[256];
	size_t pos;
	struct expr *e = expr_compile(src, cfg, msg, sizeof(msg), &pos);

	if (!e)
		fail_msg("'%s': %s at %zu", src, msg, pos);
	return e;
}

static struct res run(const char *src, const struct cust *c, int64_t now, eval_scan_fn scan, void *ctx)
{
	struct expr *e = compile(src);
	struct eval_env env;
	struct value v;
	struct res r;

	memset(&env, 0, sizeof(env));
	memset(&r, 0, sizeof(r));
	env.c = c;
	env.now = now;
	env.scan = scan;
	env.scan_ctx = ctx;
	r.next = 12345;
	assert_int_equal(expr_eval(e, &env, &v, &r.next), 0);
	assert_true(r.next == EVAL_NEVER || r.next > now);
	r.type = v.type;
	switch (v.type) {
	case TYPE_NUM: r.num = v.num; break;
	case TYPE_DUR: case TYPE_TIME: r.ms = v.ms; break;
	case TYPE_BOOL: r.b = v.b; break;
	case TYPE_STR: snprintf(r.str, sizeof(r.str), "%.*s", (int)v.str.len, v.str.s); break;
	default: break;
	}
	snprintf(r.error, sizeof(r.error), "%s", env.error);
	expr_free(e);
	return r;
}

static struct res at(const char *src, const struct cust *c, int64_t now)
{
	return run(src, c, now, NULL, NULL);
}

static void want_null(const char *src, const struct cust *c, int64_t now)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_NULL)
		fail_msg("'%s': want null, got %s", src, vtype_name(r.type));
}

static void want_dur(const char *src, const struct cust *c, int64_t now, int64_t ms)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_DUR || r.ms != ms)
		fail_msg("'%s': want duration %lld ms, got %s %lld", src, (long long)ms, vtype_name(r.type),
			 (long long)r.ms);
}

static void want_num(const char *src, const struct cust *c, int64_t now, double x)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_NUM || r.num != x)
		fail_msg("'%s': want number %g, got %s %g", src, x, vtype_name(r.type), r.num);
}

static void want_bool(const char *src, const struct cust *c, int64_t now, int b)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_BOOL || r.b != b)
		fail_msg("'%s': want %s, got %s %d (%s)", src, b ? "true" : "false", vtype_name(r.type), r.b,
			 r.error);
}

static void want_str(const char *src, const struct cust *c, int64_t now, const char *s)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_STR || strcmp(r.str, s) != 0)
		fail_msg("'%s': want \"%s\", got %s \"%s\"", src, s, vtype_name(r.type), r.str);
}

/* A condition's value and deadline at now: both exact. */
static void want_cond(const char *src, const struct cust *c, int64_t now, int b, int64_t next)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_BOOL || r.b != b)
		fail_msg("'%s' at T0%+.3fd: want %s, got %s %d", src, (double)(now - T0) / DAY,
			 b ? "true" : "false", vtype_name(r.type), r.b);
	if (r.next != next)
		fail_msg("'%s' at T0%+.3fd: want next_change T0%+.6fd, got T0%+.6fd (%lld vs %lld)", src,
			 (double)(now - T0) / DAY, next == EVAL_NEVER ? INFINITY : (double)(next - T0) / DAY,
			 r.next == EVAL_NEVER ? INFINITY : (double)(r.next - T0) / DAY, (long long)next,
			 (long long)r.next);
}

/*
 * For fractional slopes (days(), x / 30d) floating point may put the computed
 * crossing a hair early: the deadline is then `exact` or `exact - 1`, never
 * later, and the value holds until it.
 */
static void want_cond_near(const char *src, const struct cust *c, int64_t now, int b, int64_t exact)
{
	struct res r = at(src, c, now);

	if (r.type != TYPE_BOOL || r.b != b)
		fail_msg("'%s' at T0%+.3fd: want %s", src, (double)(now - T0) / DAY, b ? "true" : "false");
	if (r.next != exact && r.next != exact - 1)
		fail_msg("'%s' at T0%+.3fd: want next_change %lld (or 1 ms before), got %lld", src,
			 (double)(now - T0) / DAY, (long long)exact, (long long)r.next);
	if (r.next - 1 > now) {
		struct res before = at(src, c, r.next - 1);
		assert_int_equal(before.b, b);
	}
	struct res after = at(src, c, exact);
	if (after.b == b)
		fail_msg("'%s': the value should flip at %lld", src, (long long)exact);
}

/* ---- since, age --------------------------------------------------------------- */

static void test_since(void **state)
{
	struct cust *c = mk();

	(void)state;
	want_null("since(touch)", c, T0);
	want_null("since(call)", c, T0);
	add(c, "contact", T0, NULL, NULL);
	add(c, "call", T0 + 5 * DAY, NULL, NULL);
	add(c, "visit", T0 + 2 * DAY, NULL, NULL);    /* out of order: still not the latest */
	add(c, "purchase", T0 + 9 * DAY, NULL, NULL); /* not a touch */
	want_dur("since(touch)", c, T0 + 10 * DAY, 5 * DAY);
	want_dur("since(call)", c, T0 + 10 * DAY, 5 * DAY);
	want_dur("since(visit)", c, T0 + 10 * DAY, 8 * DAY);
	want_dur("since(contact)", c, T0 + 10 * DAY + 1, 10 * DAY + 1);
	want_dur("since('purchase')", c, T0 + 10 * DAY, DAY);
	want_null("since(meeting)", c, T0 + 10 * DAY);
	want_dur("since(touch)", c, T0 + 5 * DAY, 0);
	add(c, "message", T0 + 7 * DAY, NULL, NULL);
	want_dur("since(touch)", c, T0 + 10 * DAY, 3 * DAY);
	cust_free(c);
}

static void test_age(void **state)
{
	struct cust *c = mk();

	(void)state;
	want_null("age()", c, T0);
	add(c, "call", T0 + 3 * DAY, NULL, NULL);
	want_dur("age()", c, T0 + 10 * DAY, 7 * DAY);
	add(c, "purchase", T0 + 20 * DAY, NULL, NULL);
	want_dur("age()", c, T0 + 30 * DAY, 27 * DAY);
	add(c, "profile", T0, NULL, "{\"tier\":\"A\"}"); /* backfilled: the customer is older */
	want_dur("age()", c, T0 + 30 * DAY, 30 * DAY);
	cust_free(c);
}

/* ---- count, sum and the window scan ---------------------------------------- */

static void test_count(void **state)
{
	struct cust *c = mk();

	(void)state;
	want_num("count(call, 7d)", c, T0, 0);
	add(c, "call", T0 + 1 * DAY, NULL, NULL);
	add(c, "call", T0 + 3 * DAY, NULL, NULL);
	add(c, "call", T0 + 2 * DAY, NULL, NULL);
	add(c, "call", T0 + 10 * DAY, NULL, NULL);
	add(c, "visit", T0 + 9 * DAY, NULL, NULL);
	add(c, "purchase", T0 + 9 * DAY, NULL, NULL);
	/* window (now - 7d, now] */
	want_num("count(call, 7d)", c, T0 + 11 * DAY, 1);
	want_num("count(call, 7d)", c, T0 + 8 * DAY, 2);     /* T0+1d is on the open edge */
	want_num("count(call, 7d)", c, T0 + 8 * DAY - 1, 3);
	want_num("count(call, 7d)", c, T0 + 3 * DAY, 3);     /* ts == now counts */
	want_num("count(call, 7d)", c, T0 + 3 * DAY - 1, 2); /* events after now do not */
	want_num("count(touch, 30d)", c, T0 + 11 * DAY, 5);  /* a set: the union of its types */
	want_num("count(touch, 2d)", c, T0 + 11 * DAY, 1);      /* the visit at T0+9d is on the edge */
	want_num("count(touch, 2d + 1ms)", c, T0 + 11 * DAY, 2);
	want_num("count(touch, 1d + 12h)", c, T0 + 11 * DAY, 1);
	want_num("count(meeting, 30d)", c, T0 + 11 * DAY, 0);
	want_num("count(call, 0s)", c, T0 + 10 * DAY, 0);
	want_num("count(touch, 30d) + count(purchase, 30d)", c, T0 + 11 * DAY, 6);
	cust_free(c);
}

struct tev {
	const char *type;
	int64_t ts;
	double amount;
	int has_amount;
};

struct scan_log {
	const struct tev *evs;
	size_t n;
	int calls;
	int fail;
	int64_t from, to;
	size_t ntypes;
	char attr[40];
	char first_type[40];
};

/* The test's own timeline: counts/sums events of types with from < ts <= to. */
static int list_scan(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
		     const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct scan_log *log = vctx;

	(void)c;
	log->calls++;
	log->from = from;
	log->to = to;
	log->ntypes = ntypes;
	snprintf(log->attr, sizeof(log->attr), "%s", attr ? attr : "");
	snprintf(log->first_type, sizeof(log->first_type), "%s", ntypes ? types[0] : "");
	if (log->fail)
		return -1;
	*total = 0;
	*oldest = EVAL_NEVER;
	for (size_t i = 0; i < log->n; i++) {
		const struct tev *e = &log->evs[i];
		int match = 0;
		for (size_t j = 0; j < ntypes; j++)
			match |= strcmp(types[j], e->type) == 0;
		if (!match || e->ts <= from || e->ts > to)
			continue;
		if (e->ts < *oldest)
			*oldest = e->ts;
		if (!attr)
			*total += 1;
		else if (e->has_amount && strcmp(attr, "amount") == 0)
			*total += e->amount;
	}
	return 0;
}

static void test_count_beyond_recent(void **state)
{
	struct cust *c = mk();
	struct tev evs[40];
	struct scan_log log = { .evs = evs };
	struct res r;

	(void)state;
	/* 20 daily calls, T0+1d .. T0+20d: the state keeps the newest 13 (T0+8d ..) */
	for (int i = 1; i <= 20; i++) {
		evs[log.n++] = (struct tev){ "call", T0 + i * DAY, 0, 0 };
		add(c, "call", T0 + i * DAY, NULL, NULL);
	}
	assert_int_equal(cust_type(c, "call")->nrecent, STATE_RECENT);
	assert_int_equal(cust_type(c, "call")->count, 20);

	/* inside what the state holds: answered without the timeline */
	r = run("count(call, 5d)", c, T0 + 20 * DAY, list_scan, &log);
	assert_int_equal(r.type, TYPE_NUM);
	assert_true(r.num == 5);
	assert_int_equal(log.calls, 0);
	r = run("count(call, 12d)", c, T0 + 20 * DAY, list_scan, &log);
	assert_true(r.num == 12); /* (T0+8d, T0+20d]: the oldest kept time is on the edge */
	assert_int_equal(log.calls, 0);
	/* one more day and a call the state no longer holds may be inside: ask the timeline */
	r = run("count(call, 13d)", c, T0 + 20 * DAY, list_scan, &log);
	assert_true(r.num == 13);
	assert_int_equal(log.calls, 1);
	log.calls = 0;

	/* beyond: without a scan the window is null with a runtime error */
	r = at("count(call, 30d)", c, T0 + 20 * DAY);
	assert_int_equal(r.type, TYPE_NULL);
	assert_string_equal(r.error, "window not answerable without the timeline: call");
	r = at("count(call, 30d) > 3", c, T0 + 20 * DAY);
	assert_int_equal(r.type, TYPE_BOOL);
	assert_false(r.b);

	/* with the scan: its answer, and the deadline from its oldest event */
	r = run("count(call, 30d)", c, T0 + 20 * DAY, list_scan, &log);
	assert_int_equal(log.calls, 1);
	assert_int_equal(r.type, TYPE_NUM);
	assert_true(r.num == 20);
	assert_true(log.from == T0 - 10 * DAY && log.to == T0 + 20 * DAY);
	assert_string_equal(log.attr, "");
	assert_string_equal(log.first_type, "call");
	cust_free(c);
}

static void test_count_beyond_recent_deadline(void **state)
{
	struct cust *c = mk();
	struct tev evs[40];
	struct scan_log log = { .evs = evs };
	struct res r;

	(void)state;
	for (int i = 1; i <= 20; i++) {
		evs[log.n++] = (struct tev){ "call", T0 + i * DAY, 0, 0 };
		add(c, "call", T0 + i * DAY, NULL, NULL);
	}
	/* window (T0+5.5d, T0+20d]: T0+6d .. T0+20d = 15 calls; T0+6d leaves at T0+20.5d */
	r = run("count(call, 14d + 12h) >= 15", c, T0 + 20 * DAY, list_scan, &log);
	assert_true(r.type == TYPE_BOOL && r.b);
	assert_true(r.next == T0 + 20 * DAY + 12 * HOUR);
	assert_true(log.calls > 0);
	r = run("count(call, 14d + 12h) >= 15", c, T0 + 20 * DAY + 12 * HOUR, list_scan, &log);
	assert_true(r.type == TYPE_BOOL && !r.b);
	r = run("count(call, 14d + 12h) >= 15", c, T0 + 20 * DAY + 12 * HOUR - 1, list_scan, &log);
	assert_true(r.type == TYPE_BOOL && r.b);
	/* a failing scan: null and an error, never a guess */
	log.fail = 1;
	r = run("count(call, 30d)", c, T0 + 20 * DAY, list_scan, &log);
	assert_int_equal(r.type, TYPE_NULL);
	assert_string_equal(r.error, "reading the timeline failed: call");
	cust_free(c);
}

static void test_sum(void **state)
{
	struct cust *c = mk();
	struct tev evs[8];
	struct scan_log log = { .evs = evs };
	struct res r;

	(void)state;
	evs[log.n++] = (struct tev){ "purchase", T0 + 1 * DAY, 100, 1 };
	evs[log.n++] = (struct tev){ "purchase", T0 + 5 * DAY, 250.5, 1 };
	evs[log.n++] = (struct tev){ "purchase", T0 + 6 * DAY, 0, 0 };
	evs[log.n++] = (struct tev){ "refund", T0 + 6 * DAY, 70, 1 };
	add(c, "purchase", T0 + 1 * DAY, NULL, "{\"amount\":100}");
	add(c, "purchase", T0 + 5 * DAY, NULL, "{\"amount\":250.5}");
	add(c, "purchase", T0 + 6 * DAY, NULL, NULL);
	add(c, "refund", T0 + 6 * DAY, NULL, "{\"amount\":70}");

	/* sum always reads the timeline: without it, null */
	r = at("sum(purchase, \"amount\", 30d)", c, T0 + 10 * DAY);
	assert_int_equal(r.type, TYPE_NULL);
	assert_string_equal(r.error, "window not answerable without the timeline: purchase");

	r = run("sum(purchase, \"amount\", 30d)", c, T0 + 10 * DAY, list_scan, &log);
	assert_int_equal(r.type, TYPE_NUM);
	assert_true(r.num == 350.5);
	assert_int_equal(log.calls, 1);
	assert_string_equal(log.attr, "amount");
	assert_true(log.from == T0 - 20 * DAY && log.to == T0 + 10 * DAY);
	r = run("sum(purchase, \"amount\", 7d)", c, T0 + 10 * DAY, list_scan, &log);
	assert_true(r.num == 250.5);
	/* the deadline: when the oldest summed event leaves the window */
	r = run("sum(purchase, \"amount\", 7d) > 200", c, T0 + 10 * DAY, list_scan, &log);
	assert_true(r.type == TYPE_BOOL && r.b);
	assert_true(r.next == T0 + 12 * DAY);
	r = run("sum(purchase, \"amount\", 7d) > 200", c, T0 + 12 * DAY, list_scan, &log);
	assert_true(r.type == TYPE_BOOL && !r.b);
	r = run("sum(purchase, 'amount', 30d) + sum(refund, 'amount', 30d)", c, T0 + 10 * DAY, list_scan,
		&log);
	assert_true(r.num == 420.5);
	cust_free(c);
}

/* A set of nine types: more than the evaluator unions on its stack. */
static void test_count_many_types(void **state)
{
	static const char *const types[] = { "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9" };
	struct cust *c = mk();
	struct tev evs[9 * 13];
	struct scan_log log = { .evs = evs };
	struct res r;

	(void)state;
	for (int t = 0; t < 9; t++)
		for (int i = 0; i < 13; i++) {
			int64_t ts = T0 + (t * 13 + i) * HOUR;
			evs[log.n++] = (struct tev){ types[t], ts, 0, 0 };
			add(c, types[t], ts, NULL, NULL);
		}
	r = run("count(big, 30d)", c, T0 + 10 * DAY, list_scan, &log);
	assert_int_equal(r.type, TYPE_NUM);
	assert_true(r.num == 117);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.ntypes, 9);
	/* without a scan: null (and no write past the evaluator's buffer) */
	r = at("count(big, 30d)", c, T0 + 10 * DAY);
	assert_true(r.type == TYPE_NULL || (r.type == TYPE_NUM && r.num == 117));
	r = at("gap(big)", c, T0 + 10 * DAY);
	assert_int_equal(r.type, TYPE_NULL);
	cust_free(c);
}

/* ---- gap ------------------------------------------------------------------------ */

static void test_gap(void **state)
{
	struct cust *c = mk();
	int64_t t;

	(void)state;
	want_null("gap(purchase)", c, T0);
	add(c, "purchase", T0, NULL, NULL);
	want_null("gap(purchase)", c, T0 + DAY); /* fewer than 2 events */
	add(c, "purchase", T0 + 3 * DAY, NULL, NULL);
	want_dur("gap(purchase)", c, T0 + 10 * DAY, 3 * DAY);
	add(c, "purchase", T0 + 4 * DAY, NULL, NULL);
	/* gaps 3d, 1d: even → the mean of the two middle ones */
	want_dur("gap(purchase)", c, T0 + 10 * DAY, 2 * DAY);
	add(c, "purchase", T0 + 10 * DAY, NULL, NULL);
	/* gaps 3d 1d 6d → median 3d */
	want_dur("gap(purchase)", c, T0 + 10 * DAY, 3 * DAY);
	add(c, "purchase", T0 + 11 * DAY + 12 * HOUR, NULL, NULL);
	/* gaps 1d 1.5d 3d 6d → (1.5d + 3d) / 2 */
	want_dur("gap(purchase)", c, T0 + 20 * DAY, 2 * DAY + 6 * HOUR);
	add(c, "purchase", T0 + 11 * DAY + 12 * HOUR + 1, NULL, NULL);
	/* gaps 1ms 1d 1.5d 3d 6d → 1.5d */
	want_dur("gap(purchase)", c, T0 + 20 * DAY, DAY + 12 * HOUR);
	cust_free(c);

	/* an odd sum of the middle pair: integer ms, rounded down */
	c = mk();
	add(c, "purchase", T0, NULL, NULL);
	add(c, "purchase", T0 + 1, NULL, NULL);
	add(c, "purchase", T0 + 3, NULL, NULL);
	want_dur("gap(purchase)", c, T0 + DAY, 1);
	cust_free(c);

	/* only the last 12 gaps count: 8 huge ones then gaps 1d..12d, delivered backwards */
	c = mk();
	int64_t times[21];
	t = T0;
	for (int i = 0; i < 8; i++, t += 100 * DAY)
		times[i] = t;
	for (int i = 8, g = 1; i < 21; i++, g++) {
		times[i] = t;
		t += g * DAY;
	}
	for (int i = 20; i >= 0; i--)
		add(c, "purchase", times[i], NULL, NULL);
	/* the newest 13 times are times[8..20]: gaps 1d..12d → (6d + 7d) / 2 */
	want_dur("gap(purchase)", c, times[20] + DAY, 6 * DAY + 12 * HOUR);
	cust_free(c);

	/* over a set: the union of its types */
	c = mk();
	add(c, "call", T0, NULL, NULL);
	add(c, "visit", T0 + 2 * DAY, NULL, NULL);
	add(c, "call", T0 + 3 * DAY, NULL, NULL);
	add(c, "message", T0 + 7 * DAY, NULL, NULL);
	/* gaps 2d 1d 4d → 2d */
	want_dur("gap(touch)", c, T0 + 8 * DAY, 2 * DAY);
	want_dur("gap(call)", c, T0 + 8 * DAY, 3 * DAY);
	/* gap does not move with time */
	want_cond("gap(touch) > 1d", c, T0 + 8 * DAY, 1, EVAL_NEVER);
	cust_free(c);
}

/* ---- cases ------------------------------------------------------------------------ */

static void test_cases(void **state)
{
	struct cust *c = mk();

	(void)state;
	want_num("open(complaint)", c, T0, 0);
	want_null("oldest(complaint)", c, T0);
	want_num("overdue(promise)", c, T0, 0);
	add(c, "complaint", T0, "A", NULL);
	add(c, "complaint", T0 + DAY, "B", NULL);
	add(c, "complaint", T0 + 2 * DAY, "C", NULL);
	want_num("open(complaint)", c, T0 + 3 * DAY, 3);
	want_dur("oldest(complaint)", c, T0 + 3 * DAY, 3 * DAY);
	add(c, "complaint_resolved", T0 + 3 * DAY, "A", NULL);
	want_num("open(complaint)", c, T0 + 4 * DAY, 2);
	want_dur("oldest(complaint)", c, T0 + 4 * DAY, 3 * DAY); /* B, opened T0+1d */
	add(c, "complaint_resolved", T0 + 4 * DAY, "nope", NULL); /* closes nothing */
	want_num("open(complaint)", c, T0 + 4 * DAY, 2);
	add(c, "complaint_resolved", T0 + 4 * DAY, NULL, NULL); /* no ref: the oldest (B) */
	want_num("open(complaint)", c, T0 + 5 * DAY, 1);
	want_dur("oldest(complaint)", c, T0 + 5 * DAY, 3 * DAY); /* C */
	want_num("open(promise)", c, T0 + 5 * DAY, 0);
	add(c, "complaint_resolved", T0 + 6 * DAY, "C", NULL);
	want_num("open(complaint)", c, T0 + 7 * DAY, 0);
	want_null("oldest(complaint)", c, T0 + 7 * DAY);
	cust_free(c);
}

static void test_overdue(void **state)
{
	struct cust *c = mk();
	char attrs[128], due[TIME_BUF];

	(void)state;
	/* due as RFC 3339 text, as integer ms, and no due at all */
	snprintf(attrs, sizeof(attrs), "{\"due\":\"%s\"}", time_format(T0 + 3 * DAY, due, sizeof(due)));
	add(c, "promise", T0, "P1", attrs);
	snprintf(attrs, sizeof(attrs), "{\"due\":%lld,\"what\":\"call back\"}", (long long)(T0 + 10 * DAY));
	add(c, "promise", T0 + DAY, "P2", attrs);
	add(c, "promise", T0 + 2 * DAY, "P3", NULL);
	add(c, "promise", T0 + 2 * DAY, "P4", "{\"due\":\"not a time\"}");
	want_num("open(promise)", c, T0 + 2 * DAY, 4);
	want_num("overdue(promise)", c, T0 + 2 * DAY, 0);
	want_num("overdue(promise)", c, T0 + 3 * DAY, 0);      /* due == now: not yet past */
	want_num("overdue(promise)", c, T0 + 3 * DAY + 1, 1);
	want_num("overdue(promise)", c, T0 + 20 * DAY, 2);
	want_dur("oldest(promise)", c, T0 + 20 * DAY, 20 * DAY);
	/* the deadline: each due time + 1 ms */
	want_cond("overdue(promise) > 0", c, T0 + 2 * DAY, 0, T0 + 3 * DAY + 1);
	want_cond("overdue(promise) > 0", c, T0 + 3 * DAY, 0, T0 + 3 * DAY + 1);
	/* (the count moves again when the next due passes; the condition may be re-checked then) */
	want_cond("overdue(promise) > 0", c, T0 + 3 * DAY + 1, 1, T0 + 10 * DAY + 1);
	want_cond("overdue(promise) > 0", c, T0 + 10 * DAY + 1, 1, EVAL_NEVER);
	want_cond("overdue(promise) >= 2", c, T0 + 3 * DAY + 1, 0, T0 + 10 * DAY + 1);
	want_cond("overdue(promise) >= 2", c, T0 + 10 * DAY + 1, 1, EVAL_NEVER);
	add(c, "promise_kept", T0 + 4 * DAY, "P1", NULL);
	want_num("overdue(promise)", c, T0 + 20 * DAY, 1);
	want_cond("overdue(promise) > 0", c, T0 + 4 * DAY, 0, T0 + 10 * DAY + 1);
	cust_free(c);
}

/* ---- min, max, abs, days ---------------------------------------------------------- */

static void test_min_max_abs_days(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0, NULL, NULL);
	add(c, "visit", T0 + 4 * DAY, NULL, NULL);
	want_dur("min(since(call), since(visit))", c, T0 + 5 * DAY, DAY);
	want_dur("max(since(call), since(visit))", c, T0 + 5 * DAY, 5 * DAY);
	want_dur("min(since(call), 2d)", c, T0 + 5 * DAY, 2 * DAY);
	want_num("min(3, 2)", c, T0, 2);
	want_num("max(3, 2)", c, T0, 3);
	want_num("max(-1, -2)", c, T0, -1);
	want_null("min(since(meeting), 1d)", c, T0 + 5 * DAY);
	want_null("max(1d, since(meeting))", c, T0 + 5 * DAY);
	want_num("abs(-2.5)", c, T0, 2.5);
	want_num("abs(2.5)", c, T0, 2.5);
	want_dur("abs(since(call) - 30d)", c, T0 + 5 * DAY, 25 * DAY);
	want_dur("abs(since(call) - 30d)", c, T0 + 35 * DAY, 5 * DAY);
	want_dur("abs(-1d)", c, T0, DAY);
	want_null("abs(since(meeting))", c, T0);
	want_num("days(36h)", c, T0, 1.5);
	want_num("days(since(call))", c, T0 + 5 * DAY, 5);
	want_num("days(-2d)", c, T0, -2);
	want_null("days(since(meeting))", c, T0);
	want_num("since(call) / 1d", c, T0 + 5 * DAY + 12 * HOUR, 5.5);
	want_dur("since(call) / 2", c, T0 + 5 * DAY, 2 * DAY + 12 * HOUR);
	want_dur("2 * since(call)", c, T0 + 5 * DAY, 10 * DAY);
	cust_free(c);
}

static void test_names_and_arith(void **state)
{
	struct cust *c = mk();
	struct res r;

	(void)state;
	add(c, "call", T0, NULL, NULL);
	want_str("id", c, T0, "C1");
	r = at("now", c, T0 + 5);
	assert_int_equal(r.type, TYPE_TIME);
	assert_true(r.ms == T0 + 5);
	r = at("now + 1d", c, T0);
	assert_true(r.type == TYPE_TIME && r.ms == T0 + DAY);
	r = at("1d + now", c, T0);
	assert_true(r.type == TYPE_TIME && r.ms == T0 + DAY);
	r = at("now - 1h", c, T0);
	assert_true(r.type == TYPE_TIME && r.ms == T0 - HOUR);
	want_dur("(now + 2d) - now", c, T0, 2 * DAY);
	want_num("7 / 2", c, T0, 3.5);
	want_num("1d / 1h", c, T0, 24);
	want_dur("1d / 3", c, T0, 28800000);
	want_dur("1d - 2d", c, T0, -DAY);
	/* division by zero: null with a runtime error */
	r = at("1 / (2 - 2)", c, T0);
	assert_int_equal(r.type, TYPE_NULL);
	assert_string_equal(r.error, "division by zero");
	want_null("1d / 0", c, T0);
	cust_free(c);
}

/* ---- null semantics ----------------------------------------------------------- */

static void test_null_semantics(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0, NULL, NULL);
	/* arithmetic with null is null */
	want_null("since(purchase) + 1d", c, T0 + DAY);
	want_null("1d - since(purchase)", c, T0 + DAY);
	want_null("2 * since(purchase)", c, T0 + DAY);
	want_null("since(purchase) / 1d", c, T0 + DAY);
	want_null("-since(purchase)", c, T0 + DAY);
	want_null("value * 2", c, T0 + DAY);
	want_null("null + 1", c, T0 + DAY);
	want_null("days(null)", c, T0);
	/* a comparison with null is false ... */
	want_bool("since(purchase) > 1d", c, T0 + DAY, 0);
	want_bool("since(purchase) < 1d", c, T0 + DAY, 0);
	want_bool("since(purchase) >= 0s", c, T0 + DAY, 0);
	want_bool("since(purchase) <= 100d", c, T0 + DAY, 0);
	want_bool("value > 1", c, T0, 0);
	want_bool("value < 1", c, T0, 0);
	want_bool("tier == \"A\"", c, T0, 0);
	want_bool("tier != \"A\"", c, T0, 0);
	want_bool("since(purchase) == since(meeting)", c, T0, 0);
	want_bool("since(purchase) != 1d", c, T0, 0);
	/* ... except == null and != null */
	want_bool("since(purchase) == null", c, T0 + DAY, 1);
	want_bool("since(purchase) != null", c, T0 + DAY, 0);
	want_bool("since(call) == null", c, T0 + DAY, 0);
	want_bool("since(call) != null", c, T0 + DAY, 1);
	want_bool("null == since(call)", c, T0 + DAY, 0);
	want_bool("null == null", c, T0, 1);
	want_bool("null != null", c, T0, 0);
	want_bool("tier == null", c, T0, 1);
	want_bool("tier != null", c, T0, 0);
	/* and / or / not treat null as false */
	want_bool("null and true", c, T0, 0);
	want_bool("null or true", c, T0, 1);
	want_bool("null or false", c, T0, 0);
	want_bool("not null", c, T0, 1);
	want_bool("not tier", c, T0, 1);
	want_bool("tier or since(purchase) > 1d", c, T0, 0);
	want_bool("not (since(purchase) > 1d)", c, T0, 1);
	/* in / not in with null: both false */
	want_bool("tier in [\"A\", \"B\"]", c, T0, 0);
	want_bool("tier not in [\"A\", \"B\"]", c, T0, 0);
	want_bool("null in [null]", c, T0, 0);
	want_bool("null not in [1]", c, T0, 0);
	want_bool("since(purchase) in [1d]", c, T0, 0);
	want_bool("1 in [null, 1]", c, T0, 1);
	want_bool("1 not in [null]", c, T0, 1);
	cust_free(c);
}

/* ---- profile --------------------------------------------------------------------- */

static void test_profile(void **state)
{
	struct cust *c = mk();
	struct res r;

	(void)state;
	add(c, "profile", T0, NULL,
	    "{\"name\":\"Ann\",\"tier\":\"B\",\"value\":120000,\"score\":1.5,\"vip\":true,\"note\":null}");
	want_str("name", c, T0, "Ann");
	want_str("tier", c, T0, "B");
	want_num("value", c, T0, 120000);
	want_num("score", c, T0, 1.5);
	want_bool("vip", c, T0, 1);
	want_null("note", c, T0);
	want_null("stage", c, T0);
	want_bool("tier in [\"B\", \"C\"]", c, T0, 1);
	want_bool("tier not in [\"B\", \"C\"]", c, T0, 0);
	want_bool("value / 10000 > 11.5", c, T0, 1);
	want_bool("vip == true and tier == 'B'", c, T0, 1);
	want_bool("vip", c, T0, 1);
	/* later events change keys; a null deletes one */
	add(c, "profile", T0 + DAY, NULL, "{\"tier\":\"C\",\"vip\":false,\"value\":null}");
	want_str("tier", c, T0 + DAY, "C");
	want_bool("vip", c, T0 + DAY, 0);
	want_null("value", c, T0 + DAY);
	want_str("name", c, T0 + DAY, "Ann");
	/* a backfilled older event does not overwrite a newer value */
	add(c, "profile", T0 + 12 * HOUR, NULL, "{\"tier\":\"A\",\"owner\":\"bob\"}");
	want_str("tier", c, T0 + DAY, "C");
	want_str("owner", c, T0 + DAY, "bob");
	/* a profile value of the wrong type: null, with a runtime error */
	r = at("name * 2", c, T0);
	assert_int_equal(r.type, TYPE_NULL);
	assert_string_not_equal(r.error, "");
	want_bool("name > 1", c, T0, 0);
	cust_free(c);
}

/* ---- deadlines ------------------------------------------------------------------ */

static void test_deadline_since(void **state)
{
	struct cust *c = mk();
	const int64_t T = T0 + 123456; /* not on a day boundary */

	(void)state;
	add(c, "call", T, NULL, NULL);
	want_cond("since(touch) > 30d", c, T + DAY, 0, T + 30 * DAY + 1);
	want_cond("since(touch) > 30d", c, T + 30 * DAY - 1, 0, T + 30 * DAY + 1);
	want_cond("since(touch) > 30d", c, T + 30 * DAY, 0, T + 30 * DAY + 1);
	want_cond("since(touch) > 30d", c, T + 30 * DAY + 1, 1, EVAL_NEVER);
	want_cond("since(touch) > 30d", c, T + 300 * DAY, 1, EVAL_NEVER);
	/* >= flips one ms earlier, at the exact crossing */
	want_cond("since(touch) >= 30d", c, T + DAY, 0, T + 30 * DAY);
	want_cond("since(touch) >= 30d", c, T + 30 * DAY, 1, EVAL_NEVER);
	/* < and <= from below */
	want_cond("since(touch) < 30d", c, T + DAY, 1, T + 30 * DAY);
	want_cond("since(touch) < 30d", c, T + 30 * DAY, 0, EVAL_NEVER);
	want_cond("since(touch) <= 30d", c, T + DAY, 1, T + 30 * DAY + 1);
	want_cond("since(touch) <= 30d", c, T + 30 * DAY + 1, 0, EVAL_NEVER);
	/* the constant on the left: the moving side decreases */
	want_cond("30d > since(touch)", c, T + DAY, 1, T + 30 * DAY);
	want_cond("30d >= since(touch)", c, T + DAY, 1, T + 30 * DAY + 1);
	want_cond("30d < since(touch)", c, T + DAY, 0, T + 30 * DAY + 1);
	want_cond("30d <= since(touch)", c, T + DAY, 0, T + 30 * DAY);
	/* equality holds for exactly one ms */
	want_cond("since(touch) == 7d", c, T + DAY, 0, T + 7 * DAY);
	want_cond("since(touch) == 7d", c, T + 7 * DAY, 1, T + 7 * DAY + 1);
	want_cond("since(touch) == 7d", c, T + 7 * DAY + 1, 0, EVAL_NEVER);
	want_cond("since(touch) != 7d", c, T + DAY, 1, T + 7 * DAY);
	/* a new touch moves it */
	add(c, "visit", T + 10 * DAY, NULL, NULL);
	want_cond("since(touch) > 30d", c, T + 11 * DAY, 0, T + 40 * DAY + 1);
	/* a touch after now (not yet happened) makes since negative; still exact */
	want_cond("since(touch) > 30d", c, T + 5 * DAY, 0, T + 40 * DAY + 1);
	cust_free(c);
}

static void test_deadline_count(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0 + 1 * DAY, NULL, NULL);
	add(c, "call", T0 + 3 * DAY, NULL, NULL);
	add(c, "call", T0 + 4 * DAY, NULL, NULL);
	/* at T0+5d: calls at 1d, 3d, 4d in (T0-2d, T0+5d]: 3; the oldest leaves at T0+8d */
	want_cond("count(call, 7d) >= 2", c, T0 + 5 * DAY, 1, T0 + 8 * DAY);
	/* at T0+8d: 3d, 4d: still 2 — the next change is 3d leaving */
	want_cond("count(call, 7d) >= 2", c, T0 + 8 * DAY, 1, T0 + 10 * DAY);
	want_cond("count(call, 7d) >= 2", c, T0 + 10 * DAY - 1, 1, T0 + 10 * DAY);
	want_cond("count(call, 7d) >= 2", c, T0 + 10 * DAY, 0, T0 + 11 * DAY);
	want_cond("count(call, 7d) >= 2", c, T0 + 11 * DAY, 0, EVAL_NEVER);
	/* an event later than now enters the window at its own time */
	want_cond("count(call, 7d) >= 3", c, T0 + 3 * DAY, 0, T0 + 4 * DAY);
	want_cond("count(call, 7d) >= 3", c, T0 + 4 * DAY, 1, T0 + 8 * DAY);
	want_cond("count(touch, 30d) == 0", c, T0, 1, T0 + DAY);
	cust_free(c);
}

static void test_deadline_age_oldest(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0, NULL, NULL);
	want_cond("age() < 60d", c, T0 + DAY, 1, T0 + 60 * DAY);
	want_cond("age() < 60d", c, T0 + 60 * DAY - 1, 1, T0 + 60 * DAY);
	want_cond("age() < 60d", c, T0 + 60 * DAY, 0, EVAL_NEVER);
	want_cond("age() > 60d", c, T0 + DAY, 0, T0 + 60 * DAY + 1);
	add(c, "complaint", T0 + 2 * DAY, "X", NULL);
	want_cond("oldest(complaint) > 48h", c, T0 + 2 * DAY, 0, T0 + 4 * DAY + 1);
	want_cond("oldest(complaint) > 48h", c, T0 + 4 * DAY + 1, 1, EVAL_NEVER);
	want_cond("oldest(complaint) > 48h", c, T0 + DAY, 0, T0 + 4 * DAY + 1);
	cust_free(c);
}

static void test_deadline_min_max_abs(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0, NULL, NULL);
	add(c, "visit", T0 + 4 * DAY, NULL, NULL);
	/* min is since(visit): crosses 10d at T0+14d */
	want_cond("min(since(call), since(visit)) > 10d", c, T0 + 5 * DAY, 0, T0 + 14 * DAY + 1);
	want_cond("min(since(call), since(visit)) > 10d", c, T0 + 14 * DAY, 0, T0 + 14 * DAY + 1);
	want_cond("min(since(call), since(visit)) > 10d", c, T0 + 14 * DAY + 1, 1, EVAL_NEVER);
	want_cond("max(since(call), since(visit)) > 10d", c, T0 + 5 * DAY, 0, T0 + 10 * DAY + 1);
	/* min of a moving and a fixed value: the min switches sides */
	want_cond("min(since(call), 5d) >= 5d", c, T0 + DAY, 0, T0 + 5 * DAY);
	want_cond("min(since(call), 5d) >= 5d", c, T0 + 5 * DAY, 1, T0 + 5 * DAY + 1);
	want_cond("min(since(call), 5d) >= 5d", c, T0 + 9 * DAY, 1, EVAL_NEVER);
	/* abs: distance from 30d; < 2d between T0+28d and T0+32d exclusive */
	want_cond("abs(since(call) - 30d) < 2d", c, T0 + 20 * DAY, 0, T0 + 28 * DAY + 1);
	want_cond("abs(since(call) - 30d) < 2d", c, T0 + 28 * DAY, 0, T0 + 28 * DAY + 1);
	{
		struct res r = at("abs(since(call) - 30d) < 2d", c, T0 + 28 * DAY + 1);
		assert_true(r.type == TYPE_BOOL && r.b);
		assert_true(r.next > T0 + 28 * DAY + 1 && r.next <= T0 + 32 * DAY);
	}
	want_cond("abs(since(call) - 30d) < 2d", c, T0 + 31 * DAY, 1, T0 + 32 * DAY);
	want_cond("abs(since(call) - 30d) < 2d", c, T0 + 32 * DAY, 0, EVAL_NEVER);
	/* days(): exact even with a fractional slope */
	/* days(): a fractional slope; the deadline may come 1 ms early, never late */
	want_cond_near("days(since(call)) > 2", c, T0 + DAY, 0, T0 + 2 * DAY + 1);
	want_cond_near("days(since(call)) > 2", c, T0 + 2 * DAY, 0, T0 + 2 * DAY + 1);
	want_cond("days(since(call)) > 2", c, T0 + 2 * DAY + 1, 1, EVAL_NEVER);
	want_cond_near("days(since(call)) >= 2", c, T0 + DAY, 0, T0 + 2 * DAY);
	want_cond("days(since(call)) >= 2", c, T0 + 2 * DAY, 1, EVAL_NEVER);
	want_cond_near("since(call) / 30d > 1.5", c, T0 + DAY, 0, T0 + 45 * DAY + 1);
	want_cond_near("since(call) / 30d < 0.5", c, T0 + DAY, 1, T0 + 15 * DAY);
	cust_free(c);
}

static void test_deadline_logic(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "profile", T0, NULL, "{\"tier\":\"B\"}");
	add(c, "call", T0, NULL, NULL);
	add(c, "complaint", T0 + DAY, "X", NULL);
	/* and: true until the first operand flips; false while any false operand stays false */
	want_cond("tier in [\"B\", \"C\"] and since(touch) > 30d", c, T0 + DAY, 0, T0 + 30 * DAY + 1);
	want_cond("tier in [\"A\"] and since(touch) > 30d", c, T0 + DAY, 0, EVAL_NEVER);
	want_cond("since(touch) < 10d and oldest(complaint) < 5d", c, T0 + 2 * DAY, 1, T0 + 6 * DAY);
	want_cond("since(touch) > 10d and oldest(complaint) > 20d", c, T0 + 2 * DAY, 0, T0 + 21 * DAY + 1);
	/* or: false until the first operand flips; true while any true operand stays true */
	want_cond("since(touch) > 10d or oldest(complaint) > 5d", c, T0 + 2 * DAY, 0, T0 + 6 * DAY + 1);
	want_cond("since(touch) < 10d or oldest(complaint) < 20d", c, T0 + 2 * DAY, 1, T0 + 21 * DAY);
	want_cond("not since(touch) > 30d", c, T0 + DAY, 1, T0 + 30 * DAY + 1);
	/* constant expressions never change */
	want_cond("1 + 1 == 2", c, T0, 1, EVAL_NEVER);
	want_cond("tier == \"B\"", c, T0, 1, EVAL_NEVER);
	want_cond("open(complaint) > 0", c, T0 + 2 * DAY, 1, EVAL_NEVER);
	want_cond("since(purchase) > 1d", c, T0, 0, EVAL_NEVER);
	want_cond("now == now", c, T0, 1, EVAL_NEVER);
	want_cond("now - since(touch) < now", c, T0 + DAY, 1, EVAL_NEVER);
	/* the default priority: value-weighted coldness, linear in time */
	add(c, "profile", T0 + 1, NULL, "{\"value\":300000}");
	/* 30 * min(since/30d, 3) + 20 > 35 → since > 15d; then min's cap at 90d */
	want_cond_near("value / 10000 * min(since(touch) / 30d, 3) + 20 * open(complaint) > 35", c,
		       T0 + DAY, 0, T0 + 15 * DAY + 1);
	{
		struct res r = at("value / 10000 * min(since(touch) / 30d, 3) + 20 * open(complaint) > 35", c,
				  T0 + 15 * DAY + 1);
		assert_true(r.type == TYPE_BOOL && r.b);
		assert_true(r.next == T0 + 90 * DAY || r.next == T0 + 90 * DAY + 1);
	}
	cust_free(c);
}

/*
 * `and` stops at an operand false until the next event, `or` at one true until
 * then (PROTOCOL.md §7.3): the rest is not evaluated, so its mismatch is not
 * reported; an operand that decides only for a while lets the rest run.
 */
static void test_logic_stops_at_a_decided_operand(void **state)
{
	struct cust *c = mk();
	struct res r;

	(void)state;
	add(c, "profile", T0, NULL, "{\"tier\":\"B\"}");
	add(c, "call", T0, NULL, NULL);
	r = at("tier == \"C\" and tier * 2 > 1", c, T0 + DAY);
	assert_true(r.type == TYPE_BOOL && !r.b && r.next == EVAL_NEVER);
	assert_string_equal(r.error, "");
	r = at("tier == \"B\" or tier * 2 > 1", c, T0 + DAY);
	assert_true(r.type == TYPE_BOOL && r.b && r.next == EVAL_NEVER);
	assert_string_equal(r.error, "");
	/* not decided: the mismatch after it is found */
	r = at("tier == \"B\" and tier * 2 > 1", c, T0 + DAY);
	assert_true(r.type == TYPE_BOOL && !r.b);
	assert_string_not_equal(r.error, "");
	/* false only until T0+30d: the rest is evaluated (its null comparison is false for good) */
	r = at("since(touch) > 30d and tier * 2 > 1", c, T0 + DAY);
	assert_true(r.type == TYPE_BOOL && !r.b && r.next == EVAL_NEVER);
	assert_string_not_equal(r.error, "");
	want_cond("tier == \"C\" and since(touch) > 30d", c, T0 + DAY, 0, EVAL_NEVER);
	want_cond("since(touch) > 30d and tier == \"C\"", c, T0 + DAY, 0, EVAL_NEVER);
	want_cond("tier == \"B\" or since(touch) > 30d", c, T0 + DAY, 1, EVAL_NEVER);
	cust_free(c);
}

/* A value that is not a condition: moving values change at the next ms, windows at their edge. */
static void test_deadline_values(void **state)
{
	struct cust *c = mk();
	struct res r;

	(void)state;
	add(c, "call", T0, NULL, NULL);
	add(c, "profile", T0, NULL, "{\"tier\":\"B\",\"value\":3}");
	r = at("since(call)", c, T0 + DAY);
	assert_true(r.type == TYPE_DUR && r.next == T0 + DAY + 1);
	r = at("days(age())", c, T0 + DAY);
	assert_true(r.type == TYPE_NUM && r.next == T0 + DAY + 1);
	r = at("now", c, T0 + DAY);
	assert_true(r.type == TYPE_TIME && r.next == T0 + DAY + 1);
	r = at("since(call) - age()", c, T0 + DAY); /* moves, but not with time */
	assert_true(r.type == TYPE_DUR && r.ms == 0 && r.next == EVAL_NEVER);
	r = at("count(call, 7d)", c, T0 + DAY);
	assert_true(r.type == TYPE_NUM && r.num == 1 && r.next == T0 + 7 * DAY);
	r = at("value * 2", c, T0 + DAY);
	assert_true(r.type == TYPE_NUM && r.num == 6 && r.next == EVAL_NEVER);
	r = at("tier", c, T0 + DAY);
	assert_true(r.type == TYPE_STR && r.next == EVAL_NEVER);
	r = at("since(visit)", c, T0 + DAY);
	assert_true(r.type == TYPE_NULL && r.next == EVAL_NEVER);
	cust_free(c);
}

/* `in` with a moving value: membership changes at the exact ms. */
static void test_deadline_in(void **state)
{
	struct cust *c = mk();

	(void)state;
	add(c, "call", T0, NULL, NULL);
	want_cond("since(call) in [3d, 5d]", c, T0 + DAY, 0, T0 + 3 * DAY);
	want_cond("since(call) in [3d, 5d]", c, T0 + 3 * DAY, 1, T0 + 3 * DAY + 1);
	want_cond("since(call) in [3d, 5d]", c, T0 + 3 * DAY + 1, 0, T0 + 5 * DAY);
	want_cond("since(call) not in [3d]", c, T0 + DAY, 1, T0 + 3 * DAY);
	want_cond("since(call) in [1d]", c, T0 + 2 * DAY, 0, EVAL_NEVER);
	cust_free(c);
}

/* A quotient whose divisor passes zero: null for exactly that ms. */
static void test_deadline_division_by_moving_zero(void **state)
{
	struct cust *c = mk();
	struct res r;

	(void)state;
	add(c, "call", T0, NULL, NULL);
	r = at("1d / (since(call) - 5d) == null", c, T0 + 5 * DAY);
	assert_true(r.type == TYPE_BOOL && r.b);
	assert_true(r.next == T0 + 5 * DAY + 1);
	r = at("1d / (since(call) - 5d) == null", c, T0 + 5 * DAY + 1);
	assert_true(r.type == TYPE_BOOL && !r.b);
	cust_free(c);
}

/* ---- rules: templates and values -------------------------------------------------- */

static void test_rules_templates(void **state)
{
	char errors[1024];
	struct ruleset *rs = ruleset_compile(cfg, errors, sizeof(errors));
	struct cust *c = mk();
	struct eval_env env;
	char buf[512];

	(void)state;
	if (!rs)
		fail_msg("%s", errors);
	assert_int_equal(rs->n, 2);
	assert_null(rs->priority);
	assert_ptr_equal(ruleset_find(rs, "plain"), &rs->rules[1]);
	assert_int_equal(ruleset_index(rs, "customer_cooling"), 0);
	assert_int_equal(ruleset_index(rs, "nope"), -1);
	add(c, "profile", T0, NULL, "{\"name\":\"Ann\",\"tier\":\"B\"}");
	add(c, "call", T0, NULL, NULL);
	memset(&env, 0, sizeof(env));
	env.c = c;
	env.now = T0 + 31 * DAY + 2 * HOUR;
	tmpl_render(&rs->rules[0].summary, &env, buf, sizeof(buf));
	assert_string_equal(buf, "Ann (C1) has had no contact for 31d 2h; {literal} -");
	tmpl_render(&rs->rules[1].summary, &env, buf, sizeof(buf)); /* the default: "<rule> for <id>" */
	assert_string_equal(buf, "plain for C1");
	/* truncation keeps the buffer terminated */
	tmpl_render(&rs->rules[0].summary, &env, buf, 8);
	assert_string_equal(buf, "Ann (C1");

	struct json_object *vals = rule_values(&rs->rules[0], &env), *v;
	assert_non_null(vals);
	assert_true(json_object_object_get_ex(vals, "tier", &v));
	assert_string_equal(json_object_get_string(v), "B");
	assert_true(json_object_object_get_ex(vals, "since(touch)", &v));
	assert_int_equal(json_object_get_int64(v), 31 * DAY + 2 * HOUR);
	assert_int_equal(json_object_object_length(vals), 2);
	json_object_put(vals);
	ruleset_free(rs);
	cust_free(c);
}

/*
 * rule_values_text writes, byte for byte, what serializing rule_values with
 * json-c gives (stored alert values are compared as text): every kind of value,
 * null, a repeated term, escapes, fractions, over customers of varied histories.
 */
static void test_rule_values_text(void **state)
{
	static const char yaml[] =
		"events:\n"
		"  sets:\n"
		"    touch: [call, visit]\n"
		"  cases:\n"
		"    complaint: {open: complaint, close: complaint_resolved}\n"
		"rules:\n"
		"  - name: kinds\n"
		"    when: 'tier in [\"B\", \"C\"] and since(touch) > 30d or name == \"x\" or now > now"
		" or count(touch, 30d) / 3 > 0.5 or since(touch) > 2d or open(complaint) > 0"
		" or oldest(complaint) > 48h or days(age()) > 1.5 or score > 0.25'\n";
	static const char *const profiles[] = {
		"{\"name\":\"Ann\",\"tier\":\"B\",\"score\":0.3}",
		"{\"name\":\"A/B \\\"q\\\" \\\\ \\u00e9\\u0001\",\"tier\":\"C\",\"score\":3}",
		"{\"tier\":\"A\",\"score\":1e300}",
		NULL,
	};
	char errors[1024];
	struct config *c2 = config_load_string(yaml, strlen(yaml), "v.yaml", errors, sizeof(errors));
	struct ruleset *rs = c2 ? ruleset_compile(c2, errors, sizeof(errors)) : NULL;
	struct wbuf b;

	(void)state;
	if (!rs)
		fail_msg("%s", errors);
	wbuf_init(&b);
	for (size_t p = 0; p < 4; p++) {
		for (int k = 0; k < 6; k++) {
			struct cust *c = cust_new("C/1", 3);
			struct eval_env env;
			struct event ev;
			assert_non_null(c);
			if (profiles[p]) {
				memset(&ev, 0, sizeof(ev));
				ev.ts = T0;
				ev.customer = c->id;
				ev.customer_len = c->id_len;
				ev.type = "profile";
				ev.type_len = 7;
				ev.attrs_json = profiles[p];
				ev.attrs_len = strlen(profiles[p]);
				assert_int_equal(cust_apply(c, &ev, c2), 0);
			}
			for (int i = 0; i < k; i++) {
				memset(&ev, 0, sizeof(ev));
				ev.ts = T0 + i * 7 * DAY + 1;
				ev.customer = c->id;
				ev.customer_len = c->id_len;
				ev.type = i % 2 ? "call" : "complaint";
				ev.type_len = strlen(ev.type);
				ev.ref = "r";
				ev.ref_len = 1;
				assert_int_equal(cust_apply(c, &ev, c2), 0);
			}
			memset(&env, 0, sizeof(env));
			env.c = c;
			env.now = T0 + (int64_t)k * 11 * DAY + 7;
			struct json_object *vals = rule_values(&rs->rules[0], &env);
			const char *want = json_object_to_json_string_ext(vals, JSON_C_TO_STRING_PLAIN);
			wbuf_reset(&b);
			rule_values_text(&rs->rules[0], &env, &b);
			assert_false(b.failed);
			if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
				fail_msg("values differ:\n  text   %.*s\n  json-c %s", (int)b.len, (const char *)b.data,
					 want);
			json_object_put(vals);
			cust_free(c);
		}
	}
	wbuf_free(&b);
	ruleset_free(rs);
	config_free(c2);
}

static void test_rules_errors(void **state)
{
	static const char bad[] =
		"rules:\n"
		"  - name: r1\n"
		"    when: since(touch) > 30\n"
		"  - name: r2\n"
		"    when: 'open(ticket) > 0'\n"
		"    summary: \"x {since(touch) + 1} y\"\n"
		"  - name: r3\n"
		"    when: count(call, 7d)\n"
		"    summary: \"a } b\"\n"
		"  - name: r4\n"
		"    when: tier == 'A'\n"
		"    summary: \"{tier\"\n";
	char errors[2048];
	struct config *c2 = config_load_string(bad, strlen(bad), "bad.yaml", errors, sizeof(errors));
	struct ruleset *rs;

	(void)state;
	if (!c2)
		fail_msg("config: %s", errors);
	rs = ruleset_compile(c2, errors, sizeof(errors));
	assert_null(rs);
	assert_string_equal(errors,
			    "bad.yaml:3:24: rule 'r1': cannot compare duration > number\n"
			    "bad.yaml:5:17: rule 'r2': unknown case 'ticket' (events.cases defines the cases)\n"
			    "bad.yaml:6:31: rule 'r2' summary: cannot compute duration + number\n"
			    "bad.yaml:8:11: rule 'r3': 'when' must be a condition (true or false)\n"
			    "bad.yaml:9:17: rule 'r3' summary: a lone '}' (write '}}' for a brace)\n"
			    "bad.yaml:12:15: rule 'r4' summary: '{' without a closing '}'\n");
	config_free(c2);
}

static void test_value_format(void **state)
{
	struct value v;
	char buf[64];
	struct json_object *j;

	(void)state;
	v.type = TYPE_NUM;
	v.num = 3;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "3");
	v.num = 2.5;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "2.50");
	v.type = TYPE_DUR;
	v.ms = 31 * DAY + 2 * HOUR;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "31d 2h");
	j = value_to_json(&v);
	assert_int_equal(json_object_get_int64(j), 31 * DAY + 2 * HOUR);
	json_object_put(j);
	v.type = TYPE_TIME;
	v.ms = T0;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "2027-01-15T08:00:00.000Z");
	v.type = TYPE_NULL;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	assert_null(value_to_json(&v));
	v.type = TYPE_BOOL;
	v.b = 1;
	value_format(&v, buf, sizeof(buf));
	assert_string_equal(buf, "true");
	assert_true(value_truthy(&v));
	v.type = TYPE_NUM;
	v.num = 1;
	assert_false(value_truthy(&v)); /* only true is true */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_since),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_count_beyond_recent),
		cmocka_unit_test(test_count_beyond_recent_deadline),
		cmocka_unit_test(test_sum),
		cmocka_unit_test(test_count_many_types),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_overdue),
		cmocka_unit_test(test_min_max_abs_days),
		cmocka_unit_test(test_names_and_arith),
		cmocka_unit_test(test_null_semantics),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_deadline_since),
		cmocka_unit_test(test_logic_stops_at_a_decided_operand),
		cmocka_unit_test(test_deadline_count),
		cmocka_unit_test(test_deadline_age_oldest),
		cmocka_unit_test(test_deadline_min_max_abs),
		cmocka_unit_test(test_deadline_logic),
		cmocka_unit_test(test_deadline_values),
		cmocka_unit_test(test_deadline_in),
		cmocka_unit_test(test_deadline_division_by_moving_zero),
		cmocka_unit_test(test_rules_templates),
		cmocka_unit_test(test_rule_values_text),
		cmocka_unit_test(test_rules_errors),
		cmocka_unit_test(test_value_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
