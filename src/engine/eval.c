/*
 * Expression evaluation. Every intermediate value carries, besides itself,
 * how it moves with time: `slope` (change per millisecond of `now`) and
 * `until` (the moment its piecewise-linear form stops holding, e.g. when an
 * event leaves a window). A comparison of two moving values knows when it
 * will flip, so the result's `until` is exactly the next moment the rule can
 * change without new events. Products of two moving values are not linear;
 * they are re-checked every NONLINEAR_STEP_MS instead.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/eval.h"
#include "hearth/state.h"
#include "hearth/units.h"

#define NONLINEAR_STEP_MS (60 * MS_PER_SECOND)

struct ev {
	struct value v;
	double slope;
	int64_t until;
};

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void set_null(struct ev *o)
{
	memset(o, 0, sizeof(*o));
	o->v.type = TYPE_NULL;
	o->until = EVAL_NEVER;
}

static void runtime_error(struct eval_env *env, const char *msg, const char *detail)
{
	if (!env->error[0])
		snprintf(env->error, sizeof(env->error), "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

static int is_moving_type(enum vtype t)
{
	return t == TYPE_NUM || t == TYPE_DUR || t == TYPE_TIME;
}

static double as_double(const struct value *v)
{
	return v->type == TYPE_NUM ? v->num : (double)v->ms;
}

static void set_number(struct ev *o, enum vtype t, double x)
{
	o->v.type = t;
	if (t == TYPE_NUM)
		o->v.num = x;
	else
		o->v.ms = (int64_t)llround(x);
}

/*
 * The first ms after now at which d + s * (t - now) reaches zero (touch) or has
 * passed it (!touch); EVAL_NEVER if it moves away from zero or not at all.
 * Integer d and s (durations, times and counts with slopes 0 or ±1) are
 * answered exactly; fractional slopes (days(), x / 30d) go through floating
 * point and may answer up to 1 ms early, never late.
 */
static int64_t zero_time(int64_t now, double d, double s, int touch)
{
	const double exact = 9007199254740992.0; /* 2^53 */
	int64_t k;

	if (s == 0 || !isfinite(d) || !isfinite(s))
		return EVAL_NEVER;
	if (d != 0 && (d > 0) == (s > 0))
		return EVAL_NEVER;
	if (d == floor(d) && s == floor(s) && fabs(d) < exact && fabs(s) < exact) {
		int64_t dd = (int64_t)fabs(d), ss = (int64_t)fabs(s);
		k = touch ? (dd + ss - 1) / ss : dd / ss + 1;
	} else {
		double t = -d / s; /* > 0: how far ahead zero is */
		if (t > 9.0e18)
			return EVAL_NEVER;
		k = touch ? (int64_t)ceil(t - 1e-3) : (int64_t)floor(t - 1e-3) + 1;
	}
	if (k < 1)
		k = 1;
	return k > EVAL_NEVER - now ? EVAL_NEVER : now + k;
}

/* Where a linear form a(t) - b(t) = d + s (t - now) stops holding: past its zero. */
static int64_t crossing(int64_t now, double d, double s)
{
	return zero_time(now, d, s, 0);
}

static int compare_holds(enum node_kind k, double x)
{
	switch (k) {
	case NODE_LT: return x < 0;
	case NODE_LE: return x <= 0;
	case NODE_GT: return x > 0;
	case NODE_GE: return x >= 0;
	case NODE_EQ: return x == 0;
	default: return x != 0;
	}
}

/*
 * The first ms after now at which `a OP b` changes, a - b being d with slope s:
 * at the zero itself if the comparison there differs from now (>=, <, == from
 * one side), else once the difference has passed zero (>, <=, and any leaving
 * of the zero), else never.
 */
static int64_t flip_time(int64_t now, double d, double s, enum node_kind k)
{
	int now_holds = compare_holds(k, d);

	if (s == 0)
		return EVAL_NEVER;
	if (d != 0 && compare_holds(k, 0) != now_holds)
		return zero_time(now, d, s, 1);
	if (compare_holds(k, s) == now_holds)
		return EVAL_NEVER;
	return zero_time(now, d, s, 0);
}

static int eval_node(const struct node *n, struct eval_env *env, struct ev *o);

/* ---- state lookups --------------------------------------------------------- */

static int64_t latest(const struct cust *c, const struct node *n)
{
	int64_t best = TIME_NONE;

	for (size_t i = 0; i < n->ntypes; i++) {
		const struct type_stat *t = cust_type_hashed(c, n->types[i], n->type_hashes[i]);
		if (t && t->last > best)
			best = t->last;
	}
	return best;
}

/* The newest (≤ STATE_RECENT) times over the types, ascending. */
static size_t recent_union(const struct cust *c, const struct node *n, int64_t *out, int *complete,
			   int64_t from)
{
	size_t total = 0;

	*complete = 1;
	for (size_t i = 0; i < n->ntypes; i++) {
		const struct type_stat *t = cust_type_hashed(c, n->types[i], n->type_hashes[i]);
		if (!t)
			continue;
		/* all of this type's events in the window are kept only if the oldest kept is outside it */
		if (t->count > t->nrecent && (t->nrecent == 0 || t->recent[0] > from))
			*complete = 0;
		for (int j = 0; j < t->nrecent; j++) {
			size_t k = total++;
			while (k > 0 && out[k - 1] > t->recent[j]) {
				out[k] = out[k - 1];
				k--;
			}
			out[k] = t->recent[j];
		}
	}
	return total;
}

static int fn_count(const struct node *n, struct eval_env *env, int64_t window, struct ev *o)
{
	int64_t times[STATE_RECENT * 8], from = env->now - window, oldest = EVAL_NEVER, next_in = EVAL_NEVER;
	int complete;
	double total = 0;

	if (n->ntypes > 8) {
		complete = 0; /* more times than `times` holds: only the timeline can answer */
	} else {
		size_t k = recent_union(env->c, n, times, &complete, from);
		for (size_t i = 0; i < k && complete; i++) {
			if (times[i] > from && times[i] <= env->now) {
				total++;
				oldest = min64(oldest, times[i]);
			} else if (times[i] > env->now) {
				next_in = min64(next_in, times[i]);
			}
		}
	}
	if (!complete || n->fn == FN_SUM) {
		if (!env->scan) {
			runtime_error(env, "window not answerable without the timeline", n->text);
			set_null(o);
			return 0;
		}
		total = 0;
		oldest = EVAL_NEVER;
		if (env->scan(env->scan_ctx, env->c, n->types, n->ntypes, n->fn == FN_SUM ? n->attr : NULL,
			      from, env->now, &total, &oldest) < 0) {
			runtime_error(env, "reading the timeline failed", n->text);
			set_null(o);
			return 0;
		}
	}
	o->v.type = TYPE_NUM;
	o->v.num = total;
	o->slope = 0;
	/* the value changes when the oldest counted event leaves, or a future one enters */
	o->until = min64(oldest == EVAL_NEVER ? EVAL_NEVER : oldest + window, next_in);
	return 0;
}

static int fn_gap(const struct node *n, struct eval_env *env, struct ev *o)
{
	int64_t times[STATE_RECENT * 8], gaps[STATE_RECENT];
	int complete;
	size_t k, ng = 0;

	if (n->ntypes > 8) {
		runtime_error(env, "gap() over more than 8 types", n->text);
		set_null(o);
		return 0;
	}
	k = recent_union(env->c, n, times, &complete, INT64_MIN);
	if (k < 2) {
		set_null(o);
		return 0;
	}
	/* the newest STATE_RECENT times give the last 12 gaps */
	size_t start = k > STATE_RECENT ? k - STATE_RECENT : 0;
	for (size_t i = start + 1; i < k; i++) {
		int64_t g = times[i] - times[i - 1], j = (int64_t)ng++;
		while (j > 0 && gaps[j - 1] > g) {
			gaps[j] = gaps[j - 1];
			j--;
		}
		gaps[j] = g;
	}
	o->v.type = TYPE_DUR;
	o->v.ms = ng % 2 ? gaps[ng / 2] : (gaps[ng / 2 - 1] + gaps[ng / 2]) / 2;
	o->slope = 0;
	o->until = EVAL_NEVER;
	return 0;
}

static int fn_case(const struct node *n, struct eval_env *env, struct ev *o)
{
	const struct cust *c = env->c;
	int64_t opened = TIME_NONE, next_due = EVAL_NEVER;
	double count = 0;

	for (size_t i = 0; i < c->ncases; i++) {
		const struct open_case *oc = &c->cases[i];
		if (oc->closed != TIME_NONE || strcmp(oc->name, n->text) != 0)
			continue;
		if (n->fn == FN_OPEN)
			count++;
		else if (n->fn == FN_OLDEST && (opened == TIME_NONE || oc->opened < opened))
			opened = oc->opened;
		else if (n->fn == FN_OVERDUE && oc->due != TIME_NONE) {
			if (oc->due < env->now)
				count++;
			else
				next_due = min64(next_due, oc->due + 1);
		}
	}
	o->until = EVAL_NEVER;
	o->slope = 0;
	if (n->fn == FN_OLDEST) {
		if (opened == TIME_NONE) {
			set_null(o);
			return 0;
		}
		o->v.type = TYPE_DUR;
		o->v.ms = env->now - opened;
		o->slope = 1;
		return 0;
	}
	o->v.type = TYPE_NUM;
	o->v.num = count;
	o->until = next_due;
	return 0;
}

static int eval_call(const struct node *n, struct eval_env *env, struct ev *o)
{
	struct ev a, b;
	int64_t t;

	switch (n->fn) {
	case FN_SINCE:
		t = latest(env->c, n);
		if (t == TIME_NONE) {
			set_null(o);
			return 0;
		}
		o->v.type = TYPE_DUR;
		o->v.ms = env->now - t;
		o->slope = 1;
		o->until = EVAL_NEVER;
		return 0;
	case FN_AGE:
		if (env->c->first_seen == TIME_NONE) {
			set_null(o);
			return 0;
		}
		o->v.type = TYPE_DUR;
		o->v.ms = env->now - env->c->first_seen;
		o->slope = 1;
		o->until = EVAL_NEVER;
		return 0;
	case FN_COUNT:
	case FN_SUM: {
		struct ev w;
		if (eval_node(n->kids[n->fn == FN_SUM ? 2 : 1], env, &w) < 0)
			return -1;
		if (w.v.type != TYPE_DUR) {
			set_null(o);
			return 0;
		}
		return fn_count(n, env, w.v.ms, o);
	}
	case FN_GAP:
		return fn_gap(n, env, o);
	case FN_OPEN:
	case FN_OLDEST:
	case FN_OVERDUE:
		return fn_case(n, env, o);
	case FN_MIN:
	case FN_MAX:
		if (eval_node(n->kids[0], env, &a) < 0 || eval_node(n->kids[1], env, &b) < 0)
			return -1;
		if (a.v.type == TYPE_NULL || b.v.type == TYPE_NULL || !is_moving_type(a.v.type) ||
		    a.v.type != b.v.type) {
			if (a.v.type != TYPE_NULL && b.v.type != TYPE_NULL)
				runtime_error(env, "min/max of different types", NULL);
			set_null(o);
			return 0;
		}
		{
			double d = as_double(&a.v) - as_double(&b.v);
			int pick_a = n->fn == FN_MIN ? d <= 0 : d >= 0;
			*o = pick_a ? a : b;
			o->until = min64(min64(a.until, b.until), crossing(env->now, d, a.slope - b.slope));
		}
		return 0;
	case FN_ABS:
		if (eval_node(n->kids[0], env, &a) < 0)
			return -1;
		if (a.v.type != TYPE_NUM && a.v.type != TYPE_DUR) {
			set_null(o);
			return 0;
		}
		*o = a;
		if (as_double(&a.v) < 0) {
			set_number(o, a.v.type, -as_double(&a.v));
			o->slope = -a.slope;
		}
		o->until = min64(a.until, crossing(env->now, as_double(&a.v), a.slope));
		return 0;
	case FN_DAYS:
		if (eval_node(n->kids[0], env, &a) < 0)
			return -1;
		if (a.v.type != TYPE_DUR) {
			set_null(o);
			return 0;
		}
		o->v.type = TYPE_NUM;
		o->v.num = (double)a.v.ms / (double)MS_PER_DAY;
		o->slope = a.slope / (double)MS_PER_DAY;
		o->until = a.until;
		return 0;
	}
	set_null(o);
	return 0;
}

/* ---- names ----------------------------------------------------------------- */

static void eval_name(const struct node *n, struct eval_env *env, struct ev *o)
{
	const struct profile_field *f;

	set_null(o);
	switch (n->name) {
	case NAME_ID:
		o->v.type = TYPE_STR;
		o->v.str.s = env->c->id;
		o->v.str.len = env->c->id_len;
		return;
	case NAME_NOW:
		o->v.type = TYPE_TIME;
		o->v.ms = env->now;
		o->slope = 1;
		return;
	case NAME_PROFILE:
		if (!(f = cust_profile_get(env->c, n->text)))
			return;
		switch (f->kind) {
		case PROFILE_STRING:
			o->v.type = TYPE_STR;
			o->v.str.s = f->str;
			o->v.str.len = f->str_len;
			return;
		case PROFILE_INT:
		case PROFILE_DOUBLE:
			o->v.type = TYPE_NUM;
			o->v.num = f->kind == PROFILE_INT ? (double)f->v.i : f->v.d;
			return;
		case PROFILE_BOOL:
			o->v.type = TYPE_BOOL;
			o->v.b = f->v.b;
			return;
		default:
			return;
		}
	}
}

/* ---- operators ------------------------------------------------------------- */

static int eval_arith(const struct node *n, struct eval_env *env, struct ev *o)
{
	struct ev a, b;

	if (eval_node(n->kids[0], env, &a) < 0 || eval_node(n->kids[1], env, &b) < 0)
		return -1;
	set_null(o);
	o->until = min64(a.until, b.until);
	if (a.v.type == TYPE_NULL || b.v.type == TYPE_NULL)
		return 0;
	enum vtype la = a.v.type, lb = b.v.type, rt;
	double x = la == TYPE_NUM ? a.v.num : (double)a.v.ms;
	double y = lb == TYPE_NUM ? b.v.num : (double)b.v.ms;
	if (!is_moving_type(la) || !is_moving_type(lb))
		goto mismatch;
	switch (n->kind) {
	case NODE_ADD:
	case NODE_SUB:
		if (la == lb && la != TYPE_TIME)
			rt = la;
		else if (la == TYPE_TIME && lb == TYPE_DUR)
			rt = TYPE_TIME;
		else if (n->kind == NODE_ADD && la == TYPE_DUR && lb == TYPE_TIME)
			rt = TYPE_TIME;
		else if (n->kind == NODE_SUB && la == TYPE_TIME && lb == TYPE_TIME)
			rt = TYPE_DUR;
		else
			goto mismatch;
		set_number(o, rt, n->kind == NODE_ADD ? x + y : x - y);
		o->slope = n->kind == NODE_ADD ? a.slope + b.slope : a.slope - b.slope;
		return 0;
	case NODE_MUL:
		if (la == TYPE_NUM && lb == TYPE_NUM)
			rt = TYPE_NUM;
		else if ((la == TYPE_NUM && lb == TYPE_DUR) || (la == TYPE_DUR && lb == TYPE_NUM))
			rt = TYPE_DUR;
		else
			goto mismatch;
		set_number(o, rt, x * y);
		o->slope = a.slope * y + b.slope * x;
		if (a.slope != 0 && b.slope != 0)
			o->until = min64(o->until, env->now + NONLINEAR_STEP_MS);
		return 0;
	case NODE_DIV:
		if (la == TYPE_NUM && lb == TYPE_NUM)
			rt = TYPE_NUM;
		else if (la == TYPE_DUR && lb == TYPE_NUM)
			rt = TYPE_DUR;
		else if (la == TYPE_DUR && lb == TYPE_DUR)
			rt = TYPE_NUM;
		else
			goto mismatch;
		if (y == 0) {
			runtime_error(env, "division by zero", NULL);
			if (b.slope != 0) /* a moving divisor is zero for this ms only */
				o->until = min64(o->until, env->now + 1);
			return 0;
		}
		set_number(o, rt, x / y);
		o->slope = a.slope / y;
		if (b.slope != 0) /* the quotient of moving values is not linear */
			o->until = min64(o->until, env->now + NONLINEAR_STEP_MS);
		return 0;
	default:
		break;
	}
mismatch:
	runtime_error(env, "operands of different types", vtype_name(la == TYPE_NUM ? lb : la));
	set_null(o);
	o->until = min64(a.until, b.until);
	return 0;
}

static int values_equal(const struct value *a, const struct value *b)
{
	if (a->type == TYPE_NULL || b->type == TYPE_NULL)
		return a->type == b->type;
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TYPE_BOOL: return !a->b == !b->b;
	case TYPE_NUM: return a->num == b->num;
	case TYPE_DUR:
	case TYPE_TIME: return a->ms == b->ms;
	case TYPE_STR: return a->str.len == b->str.len && memcmp(a->str.s, b->str.s, a->str.len) == 0;
	default: return 0;
	}
}

static int eval_compare(const struct node *n, struct eval_env *env, struct ev *o)
{
	struct ev a, b;
	int r = 0;

	if (eval_node(n->kids[0], env, &a) < 0 || eval_node(n->kids[1], env, &b) < 0)
		return -1;
	set_null(o);
	o->v.type = TYPE_BOOL;
	o->until = min64(a.until, b.until);
	if (n->kind == NODE_EQ || n->kind == NODE_NE) {
		if ((a.v.type == TYPE_NULL || b.v.type == TYPE_NULL) && n->kids[0]->type != TYPE_NULL &&
		    n->kids[1]->type != TYPE_NULL) {
			r = 0; /* PROTOCOL.md §7.5: a comparison with null is false, except `== null` / `!= null` */
		} else {
			r = values_equal(&a.v, &b.v);
			if (n->kind == NODE_NE)
				r = !r;
		}
	} else if (a.v.type == TYPE_NULL || b.v.type == TYPE_NULL) {
		r = 0; /* PROTOCOL.md §7.5: an ordering with null is false */
	} else if (a.v.type == TYPE_STR && b.v.type == TYPE_STR) {
		size_t len = a.v.str.len < b.v.str.len ? a.v.str.len : b.v.str.len;
		int c = memcmp(a.v.str.s, b.v.str.s, len);
		if (c == 0)
			c = (a.v.str.len > b.v.str.len) - (a.v.str.len < b.v.str.len);
		r = n->kind == NODE_LT ? c < 0 : n->kind == NODE_LE ? c <= 0 : n->kind == NODE_GT ? c > 0 : c >= 0;
	} else if (is_moving_type(a.v.type) && a.v.type == b.v.type) {
		double d = as_double(&a.v) - as_double(&b.v);
		r = compare_holds(n->kind, d);
		o->until = min64(o->until, flip_time(env->now, d, a.slope - b.slope, n->kind));
	} else {
		runtime_error(env, "cannot compare", vtype_name(a.v.type));
	}
	if (is_moving_type(a.v.type) && (n->kind == NODE_EQ || n->kind == NODE_NE) && a.v.type == b.v.type)
		o->until = min64(o->until, flip_time(env->now, as_double(&a.v) - as_double(&b.v),
						     a.slope - b.slope, n->kind));
	o->v.b = r;
	return 0;
}

static int eval_in(const struct node *n, struct eval_env *env, struct ev *o)
{
	const struct node *list = n->kids[1];
	struct ev a, item;
	int found = 0;

	if (eval_node(n->kids[0], env, &a) < 0)
		return -1;
	set_null(o);
	o->v.type = TYPE_BOOL;
	o->until = a.until;
	for (size_t i = 0; i < list->nkids; i++) {
		if (eval_node(list->kids[i], env, &item) < 0)
			return -1;
		o->until = min64(o->until, item.until);
		if (values_equal(&a.v, &item.v))
			found = 1;
		if (is_moving_type(a.v.type) && a.v.type == item.v.type)
			o->until = min64(o->until, flip_time(env->now, as_double(&a.v) - as_double(&item.v),
							     a.slope - item.slope, NODE_EQ));
	}
	/* PROTOCOL.md §7.5: null compares false, so neither `in` nor `not in` holds for it */
	o->v.b = a.v.type == TYPE_NULL ? 0 : n->kind == NODE_IN ? found : !found;
	return 0;
}

static int eval_logic(const struct node *n, struct eval_env *env, struct ev *o)
{
	int is_and = n->kind == NODE_AND;
	int64_t until_all = EVAL_NEVER, until_decisive = INT64_MIN;
	int result = is_and;

	for (size_t i = 0; i < n->nkids; i++) {
		struct ev k;
		if (eval_node(n->kids[i], env, &k) < 0)
			return -1;
		int t = value_truthy(&k.v);
		until_all = min64(until_all, k.until);
		if (t != is_and) { /* a false operand of `and`, a true one of `or` */
			result = !is_and;
			until_decisive = max64(until_decisive, k.until);
			/*
			 * Decided until the next event: the operands after it can change
			 * neither the result nor when it changes (`tier == "C" and ...`
			 * for most customers), so they are not evaluated.
			 */
			if (until_decisive == EVAL_NEVER)
				break;
		}
	}
	set_null(o);
	o->v.type = TYPE_BOOL;
	o->v.b = result;
	/* decided by some operands: holds while any of them holds */
	o->until = result != is_and ? until_decisive : until_all;
	return 0;
}

static int eval_node(const struct node *n, struct eval_env *env, struct ev *o)
{
	switch (n->kind) {
	case NODE_LIT:
		set_null(o);
		o->v = n->lit;
		return 0;
	case NODE_NAME:
		eval_name(n, env, o);
		return 0;
	case NODE_CALL:
		return eval_call(n, env, o);
	case NODE_NEG:
		if (eval_node(n->kids[0], env, o) < 0)
			return -1;
		if (o->v.type == TYPE_NUM || o->v.type == TYPE_DUR) {
			set_number(o, o->v.type, -as_double(&o->v));
			o->slope = -o->slope;
		} else if (o->v.type != TYPE_NULL) {
			runtime_error(env, "cannot negate", vtype_name(o->v.type));
			set_null(o);
		}
		return 0;
	case NODE_NOT:
		if (eval_node(n->kids[0], env, o) < 0)
			return -1;
		{
			int64_t until = o->until;
			int t = value_truthy(&o->v);
			set_null(o);
			o->v.type = TYPE_BOOL;
			o->v.b = !t;
			o->until = until;
		}
		return 0;
	case NODE_AND:
	case NODE_OR:
		return eval_logic(n, env, o);
	case NODE_ADD:
	case NODE_SUB:
	case NODE_MUL:
	case NODE_DIV:
		return eval_arith(n, env, o);
	case NODE_EQ:
	case NODE_NE:
	case NODE_LT:
	case NODE_LE:
	case NODE_GT:
	case NODE_GE:
		return eval_compare(n, env, o);
	case NODE_IN:
	case NODE_NOT_IN:
		return eval_in(n, env, o);
	case NODE_LIST:
		set_null(o);
		return 0;
	}
	set_null(o);
	return 0;
}

int expr_eval(const struct expr *e, struct eval_env *env, struct value *out, int64_t *next_change)
{
	struct ev o;

	if (eval_node(e->root, env, &o) < 0)
		return -1;
	*out = o.v;
	/* a value that moves with time itself (since(T), age(), now) changes at the next ms */
	if (o.slope != 0 && is_moving_type(o.v.type))
		o.until = env->now + 1;
	if (next_change)
		*next_change = o.until > env->now ? o.until : EVAL_NEVER;
	return 0;
}

int node_eval_value(const struct node *n, struct eval_env *env, struct value *out)
{
	struct ev o;

	if (eval_node(n, env, &o) < 0)
		return -1;
	*out = o.v;
	return 0;
}

int value_truthy(const struct value *v)
{
	return v->type == TYPE_BOOL && v->b;
}

struct json_object *value_to_json(const struct value *v)
{
	char buf[TIME_BUF];

	switch (v->type) {
	case TYPE_BOOL: return json_object_new_boolean(v->b);
	case TYPE_NUM:
		if (v->num == floor(v->num) && fabs(v->num) < 9e15)
			return json_object_new_int64((int64_t)v->num);
		return json_object_new_double(v->num);
	case TYPE_DUR: return json_object_new_int64(v->ms);
	case TYPE_TIME: return json_object_new_string(time_format(v->ms, buf, sizeof(buf)));
	case TYPE_STR: return json_object_new_string_len(v->str.s, (int)v->str.len);
	default: return NULL;
	}
}

/* s[0..n) into buf as a string, cut to fit (as snprintf would, without its cost per alert shown). */
static void copy_text(char *buf, size_t size, const char *s, size_t n)
{
	if (size == 0)
		return;
	if (n > size - 1)
		n = size - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
}

void value_format(const struct value *v, char *buf, size_t size)
{
	switch (v->type) {
	case TYPE_BOOL: copy_text(buf, size, v->b ? "true" : "false", v->b ? 4 : 5); return;
	case TYPE_NUM:
		if (v->num == floor(v->num) && fabs(v->num) < 9e15) {
			char digits[I64_TEXT];
			copy_text(buf, size, digits, i64_text((int64_t)v->num, digits));
		} else {
			snprintf(buf, size, "%.2f", v->num);
		}
		return;
	case TYPE_DUR: duration_format(v->ms, buf, size); return;
	case TYPE_TIME: time_format(v->ms, buf, size); return;
	case TYPE_STR: copy_text(buf, size, v->str.s, v->str.len); return;
	default: copy_text(buf, size, "-", 1); return;
	}
}
