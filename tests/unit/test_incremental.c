/*
 * Incremental evaluation against brute force. A fixed-seed simulation of a
 * year of customers (touches, purchases, offers, complaints and resolutions by
 * ref or without, promises with due times, profile and tier changes) delivers
 * events in time order and, for some, late (backfill). At every simulated day
 * and right after every delivery, each rule is evaluated twice:
 *
 *   (a) against the state kept incrementally: cust_apply per delivered event,
 *       in delivery order, with the record round-tripped through
 *       cust_encode/cust_decode now and then as the daemon stores it;
 *   (b) against a fresh customer rebuilt from exactly the delivered events
 *       (all with ts <= now), applied in ts order.
 *
 * Value and next_change must agree. The deadline is then checked on (a): with
 * no new events the value is the same at every sampled moment in [now, d); a
 * condition that says EVAL_NEVER is the same at a random moment far ahead.
 * count/sum beyond the state's 13 recent times go through an eval_scan_fn
 * over the test's own list of delivered events.
 *
 * Scale: HEARTH_SIM_CUSTOMERS (default 2000, 300 under ASan) is shared out
 * between the scenarios below (1/5 in order, 1/2 with backfill, 1/5 with late
 * case events by ref, 1/10 (at least 80) with late case events without ref);
 * HEARTH_SIM_SEED changes the seed.
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

#include "../../src/store/type_names.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/state.h"
#include "hearth/units.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#define DEFAULT_CUSTOMERS 300
#else
#define DEFAULT_CUSTOMERS 2000
#endif

#define DAY MS_PER_DAY
#define HOUR MS_PER_HOUR
#define Y0 1767225600000LL              /* 2026-01-01T00:00:00Z */
#define YEAR (365 * DAY)
#define HORIZON (YEAR + 25 * DAY)       /* late deliveries still arrive after the year */

static const char YAML[] =
	"events:\n"
	"  sets:\n"
	"    touch: [contact, call, visit, meeting, message]\n"
	"  cases:\n"
	"    complaint: {open: complaint, close: complaint_resolved}\n"
	"    promise: {open: promise, close: promise_kept, due: due}\n";

/* The default rules of etc/hearth.yaml, then hand-picked combinations. */
static const char *const fixed_rules[] = {
	"tier in [\"B\", \"C\"] and (since(touch) > 30d or (since(touch) == null and age() > 30d))",
	"tier == \"C\" and count(touch, 30d) < 2 and since(touch) <= 30d",
	"count(purchase, 365d) >= 3 and since(purchase) > 2 * gap(purchase)",
	"oldest(complaint) > 48h",
	"overdue(promise) > 0",
	"count(purchase, 3650d) == 1 and since(purchase) >= 7d and since(purchase) <= 30d and "
	"(since(offer) == null or since(offer) > since(purchase)) and open(complaint) == 0",
	"tier == \"D\" and (since(touch) > 90d or (since(touch) == null and age() > 90d))",
	"age() < 60d and count(complaint, 14d) > 0",
	/* the default priority: a number */
	"value / 10000 * min(since(touch) / 30d, 3) + 20 * open(complaint) + 30 * overdue(promise)",
	"value / 10000 * min(since(touch) / 30d, 3) + 20 * open(complaint) + 30 * overdue(promise) > 10",
	"count(call, 7d) >= 2",
	"min(since(call), since(visit)) > 10d",
	"max(since(meeting), oldest(complaint)) <= 20d or open(promise) >= 2",
	"days(since(touch)) >= 45 and not (tier in [\"A\"])",
	"tier not in [\"A\", \"B\"] or stage == \"won\"",
	"sum(purchase, \"amount\", 90d) > 500",
	"abs(since(purchase) - 30d) < 2d",
	"gap(touch) * 2 < since(touch)",
	"age() >= 100d and overdue(promise) == 0 and open(complaint) != 1",
	"since(touch) == 7d or since(purchase) in [1d, 2d, 3d]",
	"count(touch, 30d) + count(purchase, 30d) >= 3 and since(message) != null",
	"oldest(promise) >= 5d and overdue(promise) < open(promise)",
	"since(touch) - since(purchase) > 10d",
	"now - since(touch) > now - 20d",
	"value != null and value >= 100000 and since(touch) < 14d",
	"count(purchase, 3650d) > 13",
	"count(touch, 60d)",
	"gap(purchase)",
	"oldest(complaint)",
};

#define GENERATED_RULES 14

/* ---- random numbers ----------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int64_t rnd_range(int64_t lo, int64_t hi) /* [lo, hi) */
{
	return hi <= lo ? lo : lo + (int64_t)(rnd() % (uint64_t)(hi - lo));
}

static int chance(double p)
{
	return (double)(rnd() >> 11) * 0x1.0p-53 < p;
}

static const char *pick(const char *const *v, size_t n)
{
	return v[rnd() % n];
}

#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

/* ---- generated rules ---------------------------------------------------------------- */

static void gen_atom(char *buf, size_t size)
{
	static const char *const dur_terms[] = {
		"since(touch)", "since(call)", "since(visit)", "since(purchase)", "since(complaint)",
		"age()", "oldest(complaint)", "oldest(promise)", "gap(purchase)", "gap(touch)",
		"min(since(call), since(visit))", "max(since(meeting), oldest(complaint))",
		"abs(since(purchase) - 30d)", "since(touch) - since(purchase)", "2 * since(message)",
		"since(contact) / 2", "-since(visit)", "min(since(touch), 20d)", "max(oldest(promise), 3d)",
	};
	static const char *const durs[] = { "0s", "12h", "1d", "2d", "3d", "7d", "10d", "14d", "30d",
					    "45d", "60d", "90d", "1d12h", "-5d" };
	static const char *const num_terms[] = {
		"count(touch, 7d)", "count(call, 30d)", "count(purchase, 365d)", "count(purchase, 3650d)",
		"open(complaint)", "open(promise)", "overdue(promise)", "days(since(touch))",
		"sum(purchase, \"amount\", 90d)", "value / 10000", "count(complaint, 14d) + open(complaint)",
		"days(age()) / 7", "abs(days(since(call)) - 20)", "count(touch, 3650d)",
	};
	static const char *const nums[] = { "0", "1", "2", "3", "5", "10", "12.5", "100", "500" };
	static const char *const ops[] = { "==", "!=", "<", "<=", ">", ">=" };
	static const char *const bools[] = {
		"tier in [\"B\", \"C\"]", "tier not in [\"A\"]", "tier == \"D\"", "stage == null",
		"value != null", "vip == true", "since(offer) == null", "owner == 'li'",
	};

	switch (rnd() % 5) {
	case 0:
	case 1:
		snprintf(buf, size, "%s %s %s", PICK(dur_terms), PICK(ops), PICK(durs));
		break;
	case 2:
		snprintf(buf, size, "%s %s %s", PICK(num_terms), PICK(ops), PICK(nums));
		break;
	case 3:
		snprintf(buf, size, "%s %s %s", PICK(dur_terms), PICK(ops), PICK(dur_terms));
		break;
	default:
		snprintf(buf, size, "%s", PICK(bools));
		break;
	}
}

static char *gen_rule(void)
{
	char a[160], b[160], c[160], *out = malloc(600);
	const char *j1 = chance(0.5) ? "and" : "or", *j2 = chance(0.5) ? "and" : "or";

	assert_non_null(out);
	gen_atom(a, sizeof(a));
	gen_atom(b, sizeof(b));
	gen_atom(c, sizeof(c));
	switch (rnd() % 4) {
	case 0:
		snprintf(out, 600, "%s%s", chance(0.3) ? "not " : "", a);
		break;
	case 1:
		snprintf(out, 600, "%s %s %s", a, j1, b);
		break;
	case 2:
		snprintf(out, 600, "(%s %s %s) %s %s%s", a, j1, b, j2, chance(0.5) ? "not " : "", c);
		break;
	default:
		snprintf(out, 600, "%s %s not (%s %s %s)", a, j1, b, j2, c);
		break;
	}
	return out;
}

/* ---- simulated customers ------------------------------------------------------------- */

enum ev_class { EC_PLAIN, EC_CASE };

struct sim_ev {
	int64_t ts, delivered;
	uint64_t seq;
	const char *type;
	enum ev_class cls;
	char ref[16];                  /* "P" and any int: gcc -O1 cannot bound k */
	char attrs[200];
	struct json_object *parsed;     /* for the brute-force rebuilds */
};

struct sim {
	struct sim_ev *ev;
	size_t n, cap;
	char id[16];
};

static struct sim_ev *sim_add(struct sim *s, const char *type, int64_t ts, enum ev_class cls)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->ev = realloc(s->ev, s->cap * sizeof(*s->ev));
		assert_non_null(s->ev);
	}
	struct sim_ev *e = &s->ev[s->n++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->ts = ts;
	e->cls = cls;
	return e;
}

static int by_ts(const void *a, const void *b)
{
	const struct sim_ev *x = a, *y = b;
	return (x->ts > y->ts) - (x->ts < y->ts);
}

static int by_delivery(const void *a, const void *b)
{
	const struct sim_ev *x = a, *y = b;
	if (x->delivered != y->delivered)
		return (x->delivered > y->delivered) - (x->delivered < y->delivered);
	return (x->ts > y->ts) - (x->ts < y->ts);
}

struct sim_opts {
	double backfill;                /* share of events delivered late */
	int backfill_cases;             /* may case events (open/close) be late too */
	double noref;                   /* share of complaint resolutions without a ref */
	double reuse;                   /* share of complaints reusing an earlier complaint's ref */
};

static void generate(struct sim *s, int index, const struct sim_opts *o)
{
	static const char *const touch_types[] = { "contact", "call", "visit", "meeting", "message" };
	static const char *const tiers[] = { "A", "B", "C", "D" };
	static const char *const owners[] = { "zhang", "li", "wang" };
	static const int64_t rhythms[] = { 2 * DAY, 5 * DAY, 10 * DAY, 20 * DAY, 45 * DAY, 90 * DAY };
	int64_t start = Y0 + rnd_range(0, 300 * DAY), end = Y0 + YEAR, t;
	struct sim_ev *e;
	char due[TIME_BUF];

	s->n = 0;
	snprintf(s->id, sizeof(s->id), "C%05d", index);

	/* profile: the first event, then tier changes and edits */
	e = sim_add(s, "profile", start, EC_PLAIN);
	snprintf(e->attrs, sizeof(e->attrs), "{\"name\":\"Customer %d\",\"tier\":\"%s\",\"owner\":\"%s\"%s%s}",
		 index, PICK(tiers), PICK(owners),
		 chance(0.7) ? (chance(0.5) ? ",\"value\":150000" : ",\"value\":42000.5") : "",
		 chance(0.2) ? ",\"vip\":true" : "");
	for (int k = (int)rnd_range(0, 5); k > 0; k--) {
		e = sim_add(s, "profile", rnd_range(start + 1, end), EC_PLAIN);
		switch (rnd() % 4) {
		case 0: snprintf(e->attrs, sizeof(e->attrs), "{\"tier\":\"%s\"}", PICK(tiers)); break;
		case 1: snprintf(e->attrs, sizeof(e->attrs), "{\"tier\":\"%s\",\"stage\":\"won\"}", PICK(tiers)); break;
		case 2: snprintf(e->attrs, sizeof(e->attrs), "{\"value\":null,\"stage\":null}"); break;
		default:
			snprintf(e->attrs, sizeof(e->attrs), "{\"value\":%d,\"owner\":\"%s\",\"vip\":%s}",
				 (int)rnd_range(1000, 300000), PICK(owners), chance(0.5) ? "true" : "false");
			break;
		}
	}

	/* touches at the customer's own rhythm (some never touched) */
	if (chance(0.85)) {
		int64_t gap = rhythms[rnd() % 6];
		for (t = start + rnd_range(0, gap); t < end; t += rnd_range(gap / 5, gap * 9 / 5 + 1))
			sim_add(s, PICK(touch_types), t, EC_PLAIN);
	}

	/* purchases: none, one, a few, or a loyal buyer with more than 13 */
	int np = (int)(rnd() % 100);
	np = np < 35 ? 0 : np < 55 ? 1 : np < 80 ? (int)rnd_range(2, 6) : (int)rnd_range(14, 26);
	for (int k = 0; k < np; k++) {
		e = sim_add(s, "purchase", rnd_range(start, end), EC_PLAIN);
		if (chance(0.8))
			snprintf(e->attrs, sizeof(e->attrs), "{\"amount\":%d.%d}", (int)rnd_range(10, 900),
				 (int)rnd_range(0, 10));
	}
	for (int k = (int)rnd_range(0, 3); k > 0; k--)
		sim_add(s, "offer", rnd_range(start, end), EC_PLAIN);

	/* complaints, most resolved by ref, some without a ref, some never */
	for (int k = (int)rnd_range(0, 5) - 1; k >= 0; k--) {
		int64_t at = rnd_range(start, end);
		int ref = k < 3 && chance(o->reuse) ? k + 1 : k; /* a reopened ticket */
		e = sim_add(s, "complaint", at, EC_CASE);
		snprintf(e->ref, sizeof(e->ref), "K%d", ref);
		snprintf(e->attrs, sizeof(e->attrs), "{\"channel\":\"phone\"}");
		if (chance(0.7)) {
			e = sim_add(s, "complaint_resolved", at + rnd_range(HOUR, 10 * DAY), EC_CASE);
			if (!chance(o->noref))
				snprintf(e->ref, sizeof(e->ref), "K%d", ref);
		}
	}

	/* promises with a due time (RFC 3339 or unix ms), kept or not */
	for (int k = (int)rnd_range(0, 4) - 1; k >= 0; k--) {
		int64_t at = rnd_range(start, end), due_at = at + rnd_range(DAY, 20 * DAY);
		e = sim_add(s, "promise", at, EC_CASE);
		snprintf(e->ref, sizeof(e->ref), "P%d", k);
		if (chance(0.45))
			snprintf(e->attrs, sizeof(e->attrs), "{\"due\":\"%s\"}", time_format(due_at, due, sizeof(due)));
		else if (chance(0.9))
			snprintf(e->attrs, sizeof(e->attrs), "{\"due\":%lld}", (long long)due_at);
		if (chance(0.6)) {
			e = sim_add(s, "promise_kept", at + rnd_range(0, 30 * DAY), EC_CASE);
			snprintf(e->ref, sizeof(e->ref), "P%d", k);
		}
	}

	/* distinct times (ties would make the order of profile edits ambiguous) */
	qsort(s->ev, s->n, sizeof(*s->ev), by_ts);
	for (size_t i = 1; i < s->n; i++)
		if (s->ev[i].ts <= s->ev[i - 1].ts)
			s->ev[i].ts = s->ev[i - 1].ts + 1;

	/* delivery: at once, or late */
	for (size_t i = 0; i < s->n; i++) {
		struct sim_ev *x = &s->ev[i];
		x->delivered = x->ts;
		if ((x->cls == EC_PLAIN || o->backfill_cases) && chance(o->backfill))
			x->delivered = x->ts + rnd_range(MS_PER_MINUTE, 20 * DAY);
	}
	qsort(s->ev, s->n, sizeof(*s->ev), by_delivery);
	for (size_t i = 0; i < s->n; i++) {
		struct sim_ev *x = &s->ev[i];
		x->seq = i + 1;
		x->parsed = x->attrs[0] ? json_tokener_parse(x->attrs) : NULL;
		assert_true(!x->attrs[0] || x->parsed);
	}
}

static void sim_release(struct sim *s)
{
	for (size_t i = 0; i < s->n; i++)
		json_object_put(s->ev[i].parsed);
	s->n = 0;
}

/* ---- applying and evaluating ------------------------------------------------------------ */

static struct config *cfg;

static void make_event(struct event *out, const struct sim *s, const struct sim_ev *x, int parsed,
		       uint64_t seq);

static void apply(struct cust *c, const struct sim *s, const struct sim_ev *x, int parsed, uint64_t seq)
{
	struct event ev;

	make_event(&ev, s, x, parsed, seq);
	assert_int_equal(cust_apply(c, &ev, cfg), 0);
}

static void make_event(struct event *out, const struct sim *s, const struct sim_ev *x, int parsed,
		       uint64_t seq)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.ts = x->ts;
	ev.seq = seq;
	ev.customer = s->id;
	ev.customer_len = strlen(s->id);
	ev.type = x->type;
	ev.type_len = strlen(x->type);
	if (x->ref[0]) {
		ev.ref = x->ref;
		ev.ref_len = strlen(x->ref);
	}
	if (x->attrs[0]) {
		ev.attrs_json = x->attrs;
		ev.attrs_len = strlen(x->attrs);
		ev.attrs = parsed ? x->parsed : NULL;
	}
	*out = ev;
}

/* What has been delivered so far, in ts order: the brute force's input and the scan's. */
struct seen {
	const struct sim_ev **ev;
	size_t n;
	uint64_t scans;
};

/*
 * What the daemon does (src/store/timeline.c apply_stored): a case event older than
 * the newest case event seen is folded in without its case effect, and the
 * cases are rebuilt from the timeline (here: `seen`, already holding x) in time order.
 */
static void daemon_apply(struct cust *c, const struct sim *s, const struct sim_ev *x, uint64_t seq,
			 const struct seen *seen)
{
	struct event ev;

	make_event(&ev, s, x, 0, seq);
	if (!cust_case_event_is_late(c, &ev, cfg)) {
		assert_int_equal(cust_apply(c, &ev, cfg), 0);
		return;
	}
	assert_int_equal(cust_apply_ex(c, &ev, cfg, 1), 0);
	cust_cases_reset(c);
	for (size_t i = 0; i < seen->n; i++) {
		struct event old;
		make_event(&old, s, seen->ev[i], 0, 0);
		assert_int_equal(cust_apply_case_event(c, &old, cfg), 0);
	}
}

static int seen_scan(void *vctx, const struct cust *c, const char *const *types, size_t ntypes,
		     const char *attr, int64_t from, int64_t to, double *total, int64_t *oldest)
{
	struct seen *seen = vctx;

	(void)c;
	seen->scans++;
	*total = 0;
	*oldest = EVAL_NEVER;
	for (size_t i = 0; i < seen->n; i++) {
		const struct sim_ev *x = seen->ev[i];
		int match = 0;
		if (x->ts <= from || x->ts > to)
			continue;
		for (size_t j = 0; j < ntypes && !match; j++)
			match = strcmp(types[j], x->type) == 0;
		if (!match)
			continue;
		if (x->ts < *oldest)
			*oldest = x->ts;
		if (!attr) {
			*total += 1;
		} else {
			struct json_object *v;
			if (x->parsed && json_object_object_get_ex(x->parsed, attr, &v) &&
			    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
				*total += json_object_get_double(v);
		}
	}
	return 0;
}

static void seen_insert(struct seen *seen, const struct sim_ev *x)
{
	size_t i = seen->n++;

	while (i > 0 && seen->ev[i - 1]->ts > x->ts) {
		seen->ev[i] = seen->ev[i - 1];
		i--;
	}
	seen->ev[i] = x;
}

struct rule {
	char *src;
	struct expr *e;
	uint64_t mismatches, deadline_violations, true_count, memo_violations;
};

struct stats {
	uint64_t customers, events, late, deliveries, samples, comparisons, deadline_checks,
		never_checks, flips_at_deadline, mismatches, deadline_violations, roundtrips, scans,
		memo_checks, memo_violations;
	int printed;
};

static struct rule *rules;
static size_t nrules;

struct outcome {
	struct value v;
	int64_t next;
	char str[160];  /* a copy of a string value: it borrows from the customer */
};

static void eval_at(const struct rule *r, const struct cust *c, int64_t now, struct seen *seen,
		    struct outcome *out)
{
	struct eval_env env;

	memset(&env, 0, sizeof(env));
	env.c = c;
	env.now = now;
	env.scan = seen_scan;
	env.scan_ctx = seen;
	out->next = 0;
	assert_int_equal(expr_eval(r->e, &env, &out->v, &out->next), 0);
	if (out->v.type == TYPE_STR) {
		snprintf(out->str, sizeof(out->str), "%.*s", (int)out->v.str.len, out->v.str.s);
		out->v.str.s = out->str;
	}
}

static int same(const struct value *a, const struct value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TYPE_BOOL: return !a->b == !b->b;
	case TYPE_NUM: return a->num == b->num || (isnan(a->num) && isnan(b->num));
	case TYPE_DUR:
	case TYPE_TIME: return a->ms == b->ms;
	case TYPE_STR: return a->str.len == b->str.len && memcmp(a->str.s, b->str.s, a->str.len) == 0;
	default: return 1;
	}
}

static const char *show(const struct value *v, char *buf, size_t size)
{
	char tmp[96];

	value_format(v, tmp, sizeof(tmp));
	snprintf(buf, size, "%s %s", vtype_name(v->type), tmp);
	return buf;
}

static void show_history(const struct sim *s, int64_t now)
{
	char a[TIME_BUF], b[TIME_BUF];

	for (size_t i = 0; i < s->n; i++) {
		const struct sim_ev *x = &s->ev[i];
		if (x->delivered > now)
			break;
		fprintf(stderr, "      delivered %s ts %s %-18s ref=%-4s %s\n", time_format(x->delivered, a, sizeof(a)),
			time_format(x->ts, b, sizeof(b)), x->type, x->ref, x->attrs);
	}
}

static void report(struct stats *st, const struct sim *s, const struct rule *r, int64_t now,
		   const char *what, const struct outcome *x, const struct outcome *y)
{
	char t[TIME_BUF], v1[128], v2[128];

	if (st->printed++ >= 6)
		return;
	fprintf(stderr, "  %s: customer %s rule '%s' at %s:\n    %s, next %lld\n    %s, next %lld\n", what,
		s->id, r->src, time_format(now, t, sizeof(t)), show(&x->v, v1, sizeof(v1)), (long long)x->next,
		show(&y->v, v2, sizeof(v2)), (long long)y->next);
	if (st->printed <= 2)
		show_history(s, now);
}

static struct cust *rebuild(const struct sim *s, const struct seen *seen)
{
	struct cust *c = cust_new(s->id, strlen(s->id));

	assert_non_null(c);
	for (size_t i = 0; i < seen->n; i++)
		apply(c, s, seen->ev[i], 1, 0);
	return c;
}

/* The daemon stores the state after each batch and reads it back. */
static struct cust *roundtrip(struct cust *c)
{
	struct wbuf w;
	struct cust *d;

	static struct type_names *types; /* as the store's: numbers handed out on first use */

	if (!types)
		assert_non_null(types = type_names_new());
	wbuf_init(&w);
	assert_int_equal(cust_encode(c, types, &w), 0);
	d = cust_decode(c->id, c->id_len, w.data, w.len, types);
	assert_non_null(d);
	wbuf_free(&w);
	cust_free(c);
	return d;
}

/* Deadline: the same value at sampled moments in [now, d); EVAL_NEVER: far ahead too. */
static void check_deadline(struct stats *st, const struct sim *s, struct rule *r, const struct cust *c,
			   int64_t now, struct seen *seen, const struct outcome *o)
{
	int64_t probes[4];
	int n = 0;
	struct outcome p;

	if (o->next == EVAL_NEVER) {
		if (rnd() & 1)
			return;
		probes[n++] = now + rnd_range(1, 400 * DAY);
		st->never_checks++;
	} else {
		assert_true(o->next > now);
		if (o->next - 1 > now)
			probes[n++] = o->next - 1;
		if (o->next - now > 2 && (rnd() & 1))
			probes[n++] = now + rnd_range(1, o->next - now - 1);
	}
	for (int i = 0; i < n; i++) {
		eval_at(r, c, probes[i], seen, &p);
		st->deadline_checks++;
		if (!same(&o->v, &p.v)) {
			st->deadline_violations++;
			r->deadline_violations++;
			report(st, s, r, now, "deadline: value changed before next_change", o, &p);
			return;
		}
	}
	if (o->next != EVAL_NEVER && (rnd() & 7) == 0) {
		eval_at(r, c, o->next, seen, &p);
		st->flips_at_deadline += !same(&o->v, &p.v);
	}
}

/*
 * The writer's memo (state.h, engine/step.c) kept on inc as the writer keeps
 * it: a condition that did not hold, with nothing its terms read folded in
 * since (expr deps against the folds' changed bits), is skipped until its
 * next change, and what the memo said of it stays. Checked: it still does
 * not hold. A round trip through the record starts a memo afresh, as a
 * customer the writer reads from the store does.
 */
static void check_memo(struct stats *st, const struct sim *s, struct rule *r, size_t i, struct cust *inc,
		       int64_t now, const struct outcome *a)
{
	if (inc->quiet_gen && !(r->e->deps & inc->changed) && now >= inc->quiet_at && now < inc->quiet_until[i]) {
		st->memo_checks++;
		if (value_truthy(&a->v)) {
			struct outcome was = { .v = { .type = TYPE_BOOL }, .next = inc->quiet_until[i] };
			st->memo_violations++;
			r->memo_violations++;
			report(st, s, r, now, "memo: a skipped condition holds", a, &was);
		}
		return;
	}
	inc->quiet_until[i] = value_truthy(&a->v) ? TIME_NONE : a->next;
}

static void compare_at(struct stats *st, const struct sim *s, struct cust *inc, int64_t now,
		       struct seen *seen)
{
	struct cust *brute = rebuild(s, seen);

	st->samples++;
	if (!inc->quiet_gen) {
		free(inc->quiet_until);
		assert_non_null(inc->quiet_until = calloc(nrules, sizeof(*inc->quiet_until)));
		inc->nquiet = nrules;
	}
	for (size_t i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		struct outcome a, b;
		eval_at(r, inc, now, seen, &a);
		check_memo(st, s, r, i, inc, now, &a);
		eval_at(r, brute, now, seen, &b);
		st->comparisons++;
		if (!same(&a.v, &b.v) || a.next != b.next) {
			st->mismatches++;
			r->mismatches++;
			report(st, s, r, now, "incremental != brute force", &a, &b);
			continue;
		}
		r->true_count += value_truthy(&a.v);
		check_deadline(st, s, r, inc, now, seen, &a);
	}
	inc->changed = 0;
	inc->quiet_at = now;
	inc->quiet_gen = 1;
	cust_free(brute);
}

static void simulate_customer(struct stats *st, struct sim *s)
{
	struct seen seen = { .ev = calloc(s->n ? s->n : 1, sizeof(*seen.ev)) };
	struct cust *inc = cust_new(s->id, strlen(s->id));
	int64_t offset = rnd_range(0, DAY), day = Y0 + offset;
	size_t next = 0;

	assert_non_null(seen.ev);
	assert_non_null(inc);
	st->customers++;
	st->events += s->n;
	for (size_t i = 0; i < s->n; i++)
		st->late += s->ev[i].delivered != s->ev[i].ts;
	for (;;) {
		/* the next step: the day's tick or a delivery, whichever comes first */
		int64_t due = next < s->n ? s->ev[next].delivered : EVAL_NEVER, now;
		int delivered = 0;
		if (day < Y0 + HORIZON && day <= due)
			now = day;
		else if (due != EVAL_NEVER)
			now = due;
		else
			break;
		while (next < s->n && s->ev[next].delivered <= now) {
			seen_insert(&seen, &s->ev[next]);
			daemon_apply(inc, s, &s->ev[next], s->ev[next].seq, &seen);
			next++;
			delivered++;
		}
		if (delivered) {
			st->deliveries++;
			if ((rnd() & 3) == 0) {
				inc = roundtrip(inc);
				st->roundtrips++;
				/* a replayed record older than applied_seq changes nothing */
				apply(inc, s, &s->ev[next - 1], 0, s->ev[next - 1].seq);
			}
		}
		if (now == day)
			day += DAY;
		if (seen.n)
			compare_at(st, s, inc, now, &seen);
	}
	assert_int_equal(inc->events, s->n);
	st->scans += seen.scans;
	cust_free(inc);
	free(seen.ev);
}

static int sim_customers(void)
{
	const char *env = getenv("HEARTH_SIM_CUSTOMERS");
	int n = env ? atoi(env) : DEFAULT_CUSTOMERS;
	return n > 0 ? n : DEFAULT_CUSTOMERS;
}

static uint64_t sim_seed(void)
{
	const char *env = getenv("HEARTH_SIM_SEED");
	return env ? strtoull(env, NULL, 0) : 20261120;
}

static void run_scenario(const char *name, int customers, const struct sim_opts *o, uint64_t salt)
{
	struct stats st;
	struct sim s = { 0 };

	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < nrules; i++)
		rules[i].mismatches = rules[i].deadline_violations = rules[i].true_count =
			rules[i].memo_violations = 0;
	for (int i = 0; i < customers; i++) {
		rng_state = sim_seed() ^ (salt * 0x100000001B3ULL) ^ ((uint64_t)i << 20);
		generate(&s, i, o);
		simulate_customer(&st, &s);
		sim_release(&s);
	}
	free(s.ev);
	printf("[ SIM      ] %s: %llu customers, %llu events (%llu late), %llu deliveries, %llu steps\n", name,
	       (unsigned long long)st.customers, (unsigned long long)st.events, (unsigned long long)st.late,
	       (unsigned long long)st.deliveries, (unsigned long long)st.samples);
	printf("[ SIM      ] %s: %llu comparisons incremental vs brute force over %zu rules, "
	       "%llu deadline probes (%llu of EVAL_NEVER), %llu flips seen at a deadline, "
	       "%llu window scans, %llu state round trips\n", name,
	       (unsigned long long)st.comparisons, nrules, (unsigned long long)st.deadline_checks,
	       (unsigned long long)st.never_checks, (unsigned long long)st.flips_at_deadline,
	       (unsigned long long)st.scans, (unsigned long long)st.roundtrips);
	printf("[ SIM      ] %s: %llu conditions the writer's memo would skip, checked\n", name,
	       (unsigned long long)st.memo_checks);
	if (st.mismatches || st.deadline_violations || st.memo_violations) {
		for (size_t i = 0; i < nrules; i++)
			if (rules[i].mismatches || rules[i].deadline_violations || rules[i].memo_violations)
				printf("[ SIM      ]   %llu mismatches, %llu deadline violations, "
				       "%llu wrongly skipped: %s\n",
				       (unsigned long long)rules[i].mismatches,
				       (unsigned long long)rules[i].deadline_violations,
				       (unsigned long long)rules[i].memo_violations, rules[i].src);
		fail_msg("%s: %llu mismatches, %llu deadline violations, %llu wrongly skipped", name,
			 (unsigned long long)st.mismatches, (unsigned long long)st.deadline_violations,
			 (unsigned long long)st.memo_violations);
	}
	/* every kind of step happened and the scan was used */
	assert_true(st.comparisons > 0);
	assert_true(st.memo_checks > 0);
	assert_true(st.scans > 0);
	assert_true(st.flips_at_deadline > 0);
	for (size_t i = 0; i < 8; i++)
		if (rules[i].true_count == 0)
			fail_msg("%s: default rule %zu was never true: the simulation misses it", name, i + 1);
}

/* ---- tests ------------------------------------------------------------------------------- */

static int setup(void **state)
{
	char errors[1024], msg[256];
	size_t pos;

	(void)state;
	cfg = config_load_string(YAML, strlen(YAML), "t.yaml", errors, sizeof(errors));
	if (!cfg) {
		fprintf(stderr, "config: %s\n", errors);
		return -1;
	}
	nrules = sizeof(fixed_rules) / sizeof(fixed_rules[0]) + GENERATED_RULES;
	rules = calloc(nrules, sizeof(*rules));
	rng_state = sim_seed();
	for (size_t i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		size_t nf = sizeof(fixed_rules) / sizeof(fixed_rules[0]);
		r->src = i < nf ? strdup(fixed_rules[i]) : gen_rule();
		r->e = expr_compile(r->src, cfg, msg, sizeof(msg), &pos);
		if (!r->e) {
			fprintf(stderr, "rule '%s': %s at %zu\n", r->src, msg, pos);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < nrules; i++) {
		expr_free(rules[i].e);
		free(rules[i].src);
	}
	free(rules);
	config_free(cfg);
	return 0;
}

/* Every event delivered at its own time. */
static void test_in_time_order(void **state)
{
	struct sim_opts o = { .backfill = 0, .noref = 0.2, .reuse = 0.15 };

	(void)state;
	run_scenario("in order", sim_customers() / 5 + 1, &o, 1);
}

/* A sixth of touches, purchases, offers and profile edits arrive late (by up to 20 days). */
static void test_backfill(void **state)
{
	struct sim_opts o = { .backfill = 0.16, .noref = 0.2, .reuse = 0.15 };

	(void)state;
	run_scenario("backfill", sim_customers() / 2 + 1, &o, 2);
}

/* Late case events too (every close names its case): a resolution may arrive before its complaint. */
static void test_backfill_cases(void **state)
{
	struct sim_opts o = { .backfill = 0.16, .backfill_cases = 1 };

	(void)state;
	run_scenario("backfill, cases by ref", sim_customers() / 5 + 1, &o, 3);
}

/* Late case events with resolutions that name no case, and reused refs. */
static void test_backfill_cases_noref(void **state)
{
	struct sim_opts o = { .backfill = 0.16, .backfill_cases = 1, .noref = 0.2, .reuse = 0.15 };
	int n = sim_customers() / 10 + 1;

	(void)state;
	run_scenario("backfill, cases without ref", n < 80 ? 80 : n, &o, 4);
}

struct mini {
	struct sim s;
	struct seen seen;
	const struct sim_ev *order[8];
};

/* Events given in delivery order: returns the incremental state; m->seen is the ts order. */
static struct cust *mini_apply(struct mini *m)
{
	struct cust *c = cust_new(m->s.id, strlen(m->s.id));

	assert_non_null(c);
	m->seen = (struct seen){ .ev = m->order, .n = 0 };
	for (size_t i = 0; i < m->s.n; i++) {
		seen_insert(&m->seen, &m->s.ev[i]);
		daemon_apply(c, &m->s, &m->s.ev[i], i + 1, &m->seen);
	}
	return c;
}

static struct sim_ev *mini_add(struct mini *m, const char *type, int64_t ts, const char *ref)
{
	struct sim_ev *e = sim_add(&m->s, type, ts, EC_CASE);

	snprintf(e->ref, sizeof(e->ref), "%s", ref ? ref : "");
	e->delivered = ts;
	return e;
}

/* Both ways must answer the same for these expressions at `now`. */
static void mini_check(struct mini *m, int64_t now, const char *const *srcs, size_t n)
{
	struct cust *inc = mini_apply(m), *brute = rebuild(&m->s, &m->seen);
	char msg[256], v1[128], v2[128], failure[512] = "";
	size_t pos;

	for (size_t i = 0; i < n && !failure[0]; i++) {
		struct rule r = { .src = (char *)srcs[i] };
		struct outcome a, b;
		r.e = expr_compile(srcs[i], cfg, msg, sizeof(msg), &pos);
		assert_non_null(r.e);
		eval_at(&r, inc, now, &m->seen, &a);
		eval_at(&r, brute, now, &m->seen, &b);
		expr_free(r.e);
		if (!same(&a.v, &b.v))
			snprintf(failure, sizeof(failure), "'%s': delivered out of order %s, in time order %s",
				 srcs[i], show(&a.v, v1, sizeof(v1)), show(&b.v, v2, sizeof(v2)));
	}
	cust_free(inc);
	cust_free(brute);
	free(m->s.ev);
	if (failure[0])
		fail_msg("%s", failure);
}

/* A resolution delivered before its complaint (by ref): the complaint never opens. */
static void test_case_closed_before_opened(void **state)
{
	static const char *const exprs[] = { "open(complaint)", "oldest(complaint)", "open(promise)",
					     "overdue(promise)" };
	struct mini m = { .s = { .id = "C1" } };

	(void)state;
	mini_add(&m, "complaint_resolved", Y0 + HOUR, "K1");
	mini_add(&m, "promise_kept", Y0 + 2 * HOUR, "P1");
	mini_add(&m, "complaint", Y0, "K1");
	mini_add(&m, "promise", Y0 + HOUR, "P1");
	mini_check(&m, Y0 + 30 * DAY, exprs, 4);
}

/*
 * A resolution without a ref closes the oldest complaint open at its time; a
 * complaint older than it that arrives later was open then, so it is closed.
 */
static void test_case_noref_close_then_backfilled_open(void **state)
{
	static const char *const exprs[] = { "open(complaint)", "oldest(complaint)" };
	struct mini m = { .s = { .id = "C1" } };

	(void)state;
	mini_add(&m, "complaint_resolved", Y0 + HOUR, NULL); /* delivered first */
	mini_add(&m, "complaint", Y0, "K1");                 /* backfilled: before the resolution */
	mini_check(&m, Y0 + DAY, exprs, 2);
}

/* Two complaints with one ref, both open, then a close by that ref: the oldest closes. */
static void test_case_duplicate_ref(void **state)
{
	static const char *const exprs[] = { "open(complaint)", "oldest(complaint)" };
	struct mini m = { .s = { .id = "C1" } };

	(void)state;
	mini_add(&m, "complaint", Y0 + HOUR, "K1");
	mini_add(&m, "complaint_resolved", Y0 + 2 * HOUR, "K1");
	mini_add(&m, "complaint", Y0, "K1"); /* backfilled: the older of the two */
	mini_check(&m, Y0 + DAY, exprs, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_time_order),
		cmocka_unit_test(test_backfill),
		cmocka_unit_test(test_backfill_cases),
		cmocka_unit_test(test_backfill_cases_noref),
		cmocka_unit_test(test_case_closed_before_opened),
		cmocka_unit_test(test_case_noref_close_then_backfilled_open),
		cmocka_unit_test(test_case_duplicate_ref),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
