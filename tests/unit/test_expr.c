/*
 * expr.h: the rule language of PROTOCOL.md §7 — lexing (numbers, durations, strings in
 * both quote styles), the grammar and its precedence, static types, and every
 * load-time error with its message and byte offset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/expr.h"
#include "hearth/state.h"
#include "hearth/units.h"

static const char YAML[] =
	"events:\n"
	"  sets:\n"
	"    touch: [contact, call, visit, meeting, message]\n"
	"  cases:\n"
	"    complaint: {open: complaint, close: complaint_resolved}\n"
	"    promise: {open: promise, close: promise_kept, due: due}\n";

static struct config *cfg;
static struct cust *empty;

static int setup(void **state)
{
	char errors[1024];

	(void)state;
	cfg = config_load_string(YAML, strlen(YAML), "t.yaml", errors, sizeof(errors));
	if (!cfg) {
		fprintf(stderr, "config: %s\n", errors);
		return -1;
	}
	empty = cust_new("C1", 2);
	return empty ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	cust_free(empty);
	config_free(cfg);
	return 0;
}

static struct expr *compile_ok(const char *src)
{
	char msg[256] = "";
	size_t pos = 999;
	struct expr *e = expr_compile(src, cfg, msg, sizeof(msg), &pos);

	if (!e)
		fail_msg("'%s' should compile, got error at %zu: %s", src, pos, msg);
	return e;
}

/* Compilation must fail at byte `want_pos` with a message starting with `want`. */
static void expect_error(const char *src, size_t want_pos, const char *want)
{
	char msg[256];
	size_t pos = 999;
	struct expr *e;

	memset(msg, 'Z', sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	e = expr_compile(src, cfg, msg, sizeof(msg), &pos);
	if (e) {
		expr_free(e);
		fail_msg("'%s' should not compile", src);
	}
	if (strncmp(msg, want, strlen(want)) != 0)
		fail_msg("'%s': want message '%s', got '%s'", src, want, msg);
	if (pos != want_pos)
		fail_msg("'%s': want error at %zu, got %zu (%s)", src, want_pos, pos, msg);
}

static enum vtype type_of(const char *src)
{
	struct expr *e = compile_ok(src);
	enum vtype t = e->root->type;

	expr_free(e);
	return t;
}

/* Evaluates a constant expression (against a customer without events). */
static struct value eval_const(struct expr *e)
{
	struct eval_env env;
	struct value v;
	int64_t next = 0;

	memset(&env, 0, sizeof(env));
	env.c = empty;
	env.now = 1800000000000LL;
	assert_int_equal(expr_eval(e, &env, &v, &next), 0);
	assert_true(next == EVAL_NEVER);
	assert_string_equal(env.error, "");
	return v;
}

static double num_of(const char *src)
{
	struct expr *e = compile_ok(src);
	struct value v = eval_const(e);

	expr_free(e);
	if (v.type != TYPE_NUM)
		fail_msg("'%s': want a number, got %s", src, vtype_name(v.type));
	return v.num;
}

static int64_t dur_of(const char *src)
{
	struct expr *e = compile_ok(src);
	struct value v = eval_const(e);

	expr_free(e);
	if (v.type != TYPE_DUR)
		fail_msg("'%s': want a duration, got %s", src, vtype_name(v.type));
	return v.ms;
}

static int bool_of(const char *src)
{
	struct expr *e = compile_ok(src);
	struct value v = eval_const(e);

	expr_free(e);
	if (v.type != TYPE_BOOL)
		fail_msg("'%s': want a bool, got %s", src, vtype_name(v.type));
	return v.b;
}

/* ---- lexing ---------------------------------------------------------------- */

static void test_numbers(void **state)
{
	(void)state;
	assert_true(num_of("42") == 42);
	assert_true(num_of("3.25") == 3.25);
	assert_true(num_of("0") == 0);
	assert_true(num_of("007") == 7);
	expect_error("1.5.3", 3, "unexpected character '.'");
	expect_error(".5", 0, "unexpected character '.'");
}

static void test_durations(void **state)
{
	(void)state;
	assert_int_equal(dur_of("500ms"), 500);
	assert_int_equal(dur_of("90s"), 90 * MS_PER_SECOND);
	assert_int_equal(dur_of("15m"), 15 * MS_PER_MINUTE);
	assert_int_equal(dur_of("12h"), 12 * MS_PER_HOUR);
	assert_int_equal(dur_of("30d"), 30 * MS_PER_DAY);
	assert_int_equal(dur_of("2w"), 14 * MS_PER_DAY);
	assert_int_equal(dur_of("1d12h"), 36 * MS_PER_HOUR);
	assert_int_equal(dur_of("1h30m15s500ms"), MS_PER_HOUR + 30 * MS_PER_MINUTE + 15500);
	assert_int_equal(dur_of("0s"), 0);
	expect_error("3x", 0, "bad duration '3x'");
	expect_error("since(touch) > 1.5d", 15, "bad duration '1.5d'");
	expect_error("1d12", 0, "bad duration '1d12'");
	expect_error("30days", 0, "bad duration '30days'");
}

static const char *str_lit(struct expr *e)
{
	assert_int_equal(e->root->kind, NODE_LIT);
	assert_int_equal(e->root->type, TYPE_STR);
	return e->root->lit.str.s;
}

static void test_strings(void **state)
{
	struct expr *e;

	(void)state;
	e = compile_ok("\"double\"");
	assert_string_equal(str_lit(e), "double");
	assert_int_equal(e->root->lit.str.len, 6);
	expr_free(e);
	e = compile_ok("'single'");
	assert_string_equal(str_lit(e), "single");
	expr_free(e);
	e = compile_ok("'it\\'s'");
	assert_string_equal(str_lit(e), "it's");
	expr_free(e);
	e = compile_ok("\"say \\\"hi\\\"\"");
	assert_string_equal(str_lit(e), "say \"hi\"");
	expr_free(e);
	e = compile_ok("\"a\\tb\\nc\\\\d\\qe\"");
	assert_string_equal(str_lit(e), "a\tb\nc\\dqe");
	expr_free(e);
	e = compile_ok("'with \"double\" inside'");
	assert_string_equal(str_lit(e), "with \"double\" inside");
	expr_free(e);
	e = compile_ok("\"客户\"");
	assert_string_equal(str_lit(e), "客户");
	expr_free(e);
	e = compile_ok("''");
	assert_string_equal(str_lit(e), "");
	expr_free(e);
	assert_true(bool_of("'it\\'s' == \"it's\""));
	assert_true(bool_of("'a' != \"b\""));
	assert_true(bool_of("\"abc\" < \"abd\""));
	assert_true(bool_of("\"ab\" < \"abc\""));
	assert_false(bool_of("\"b\" <= \"a\""));
}

static void test_keywords_and_names(void **state)
{
	struct expr *e;

	(void)state;
	assert_int_equal(type_of("true"), TYPE_BOOL);
	assert_int_equal(type_of("false"), TYPE_BOOL);
	assert_int_equal(type_of("null"), TYPE_NULL);
	assert_int_equal(type_of("id"), TYPE_STR);
	assert_int_equal(type_of("now"), TYPE_TIME);
	assert_int_equal(type_of("tier"), TYPE_ANY);
	assert_int_equal(type_of("_private2"), TYPE_ANY);
	e = compile_ok("owner");
	assert_int_equal(e->root->kind, NODE_NAME);
	assert_int_equal(e->root->name, NAME_PROFILE);
	assert_string_equal(e->root->text, "owner");
	expr_free(e);
	e = compile_ok("trueish"); /* a keyword prefix is still a name */
	assert_int_equal(e->root->kind, NODE_NAME);
	expr_free(e);
	expr_free(compile_ok("abcdefghijklmnopqrstuvwxyz012345")); /* 32 bytes */
	expect_error("abcdefghijklmnopqrstuvwxyz0123456", 0, "name 'abcdefghijklmnopqrstuvwxyz0123456' is longer than 32");
	expect_error("Tier == \"A\"", 0, "unexpected character 'T'");
	expect_error("since", 0, "'since' is a function: call it as since(...)");
}

/* ---- grammar and precedence ------------------------------------------------ */

static void test_precedence_logic(void **state)
{
	struct expr *e;
	const struct node *r;

	(void)state;
	/* not a and b or c  ==  ((not a) and b) or c */
	e = compile_ok("not a and b or c");
	r = e->root;
	assert_int_equal(r->kind, NODE_OR);
	assert_int_equal(r->type, TYPE_BOOL);
	assert_int_equal(r->kids[0]->kind, NODE_AND);
	assert_int_equal(r->kids[0]->kids[0]->kind, NODE_NOT);
	assert_string_equal(r->kids[0]->kids[0]->kids[0]->text, "a");
	assert_string_equal(r->kids[0]->kids[1]->text, "b");
	assert_string_equal(r->kids[1]->text, "c");
	expr_free(e);

	/* a or b and c  ==  a or (b and c) */
	e = compile_ok("a or b and c");
	r = e->root;
	assert_int_equal(r->kind, NODE_OR);
	assert_int_equal(r->kids[0]->kind, NODE_NAME);
	assert_int_equal(r->kids[1]->kind, NODE_AND);
	expr_free(e);

	/* not binds looser than a comparison */
	e = compile_ok("not a == 1");
	assert_int_equal(e->root->kind, NODE_NOT);
	assert_int_equal(e->root->kids[0]->kind, NODE_EQ);
	expr_free(e);
	e = compile_ok("not not a");
	assert_int_equal(e->root->kind, NODE_NOT);
	assert_int_equal(e->root->kids[0]->kind, NODE_NOT);
	expr_free(e);

	/* and/or chains are left-associative */
	e = compile_ok("a and b and c");
	assert_int_equal(e->root->kind, NODE_AND);
	assert_int_equal(e->root->kids[0]->kind, NODE_AND);
	assert_string_equal(e->root->kids[1]->text, "c");
	expr_free(e);

	assert_true(bool_of("not true and false or true"));
	assert_false(bool_of("not true and (false or true)"));
	assert_true(bool_of("true or true and false"));
	assert_false(bool_of("(true or true) and false"));
	assert_true(bool_of("not false == true"));  /* not (false == true) */
	assert_true(bool_of("not 1 > 2"));
	assert_false(bool_of("not not false"));
}

static void test_precedence_arith(void **state)
{
	struct expr *e;

	(void)state;
	e = compile_ok("1 + 2 * 3");
	assert_int_equal(e->root->kind, NODE_ADD);
	assert_int_equal(e->root->kids[1]->kind, NODE_MUL);
	expr_free(e);
	assert_true(num_of("1 + 2 * 3") == 7);
	assert_true(num_of("(1 + 2) * 3") == 9);
	assert_true(num_of("10 - 2 - 3") == 5);
	assert_true(num_of("12 / 2 / 3") == 2);
	assert_true(num_of("2 * 3 / 4") == 1.5);
	assert_true(num_of("7 - 2 * 3 + 1") == 2);
	assert_true(num_of("((((2))))") == 2);

	/* unary minus binds tighter than * and can repeat */
	e = compile_ok("-2 * 3");
	assert_int_equal(e->root->kind, NODE_MUL);
	assert_int_equal(e->root->kids[0]->kind, NODE_NEG);
	expr_free(e);
	assert_true(num_of("-2 * 3") == -6);
	assert_true(num_of("2 - -1") == 3);
	assert_true(num_of("--1") == 1);
	assert_true(num_of("- (1 + 2)") == -3);
	assert_int_equal(dur_of("-1d + 2d"), MS_PER_DAY);
	assert_int_equal(dur_of("-(2h)"), -2 * MS_PER_HOUR);

	/* arithmetic binds tighter than comparison */
	e = compile_ok("1 + 1 == 2");
	assert_int_equal(e->root->kind, NODE_EQ);
	expr_free(e);
	assert_true(bool_of("1 + 1 == 2"));
	assert_true(bool_of("2 * 3 > 5 and 1 < 2"));
}

static void test_comparisons(void **state)
{
	static const struct { const char *src; enum node_kind kind; int value; } cases[] = {
		{ "1 == 1", NODE_EQ, 1 }, { "1 != 1", NODE_NE, 0 }, { "1 < 2", NODE_LT, 1 },
		{ "2 <= 2", NODE_LE, 1 }, { "2 > 2", NODE_GT, 0 }, { "2 >= 3", NODE_GE, 0 },
		{ "1d > 23h", NODE_GT, 1 }, { "1d == 24h", NODE_EQ, 1 }, { "true == true", NODE_EQ, 1 },
		{ "true != false", NODE_NE, 1 }, { "\"a\" == 'a'", NODE_EQ, 1 },
		{ "now == now", NODE_EQ, 1 }, { "now - 1d < now", NODE_LT, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct expr *e = compile_ok(cases[i].src);
		assert_int_equal(e->root->kind, cases[i].kind);
		assert_int_equal(e->root->type, TYPE_BOOL);
		expr_free(e);
		if (bool_of(cases[i].src) != cases[i].value)
			fail_msg("'%s' should be %d", cases[i].src, cases[i].value);
	}
	/* comparisons do not chain */
	expect_error("1 < 2 < 3", 6, "unexpected '<' after a complete expression");
	/* a profile value (known only when evaluated) compares with anything */
	expr_free(compile_ok("tier == \"A\" or tier == 1 or tier > 1d or tier == null"));
}

static void test_in(void **state)
{
	struct expr *e;

	(void)state;
	e = compile_ok("tier in [\"B\", 'C']");
	assert_int_equal(e->root->kind, NODE_IN);
	assert_int_equal(e->root->type, TYPE_BOOL);
	assert_int_equal(e->root->kids[1]->kind, NODE_LIST);
	assert_int_equal(e->root->kids[1]->nkids, 2);
	expr_free(e);
	e = compile_ok("tier not in [\"A\"]");
	assert_int_equal(e->root->kind, NODE_NOT_IN);
	expr_free(e);
	e = compile_ok("not tier in [\"A\"]");
	assert_int_equal(e->root->kind, NODE_NOT);
	assert_int_equal(e->root->kids[0]->kind, NODE_IN);
	expr_free(e);
	assert_true(bool_of("\"B\" in [\"A\", \"B\"]"));
	assert_false(bool_of("\"C\" in [\"A\", \"B\"]"));
	assert_true(bool_of("\"C\" not in [\"A\", \"B\"]"));
	assert_false(bool_of("\"A\" not in [\"A\", \"B\"]"));
	assert_true(bool_of("2 in [1, 1 + 1, 3]"));
	assert_true(bool_of("1d in [24h]"));
	assert_false(bool_of("1 in []"));
	assert_true(bool_of("1 not in []"));
	assert_true(bool_of("1 in [1] and 2 not in [1]"));
	assert_true(bool_of("1 + 1 in [2]")); /* in binds looser than + */
}

/* ---- static types ----------------------------------------------------------- */

static void test_types(void **state)
{
	static const struct { const char *src; enum vtype type; } cases[] = {
		{ "since(touch)", TYPE_DUR }, { "since(purchase)", TYPE_DUR },
		{ "count(call, 7d)", TYPE_NUM }, { "sum(purchase, \"amount\", 30d)", TYPE_NUM },
		{ "gap(touch)", TYPE_DUR }, { "age()", TYPE_DUR },
		{ "open(complaint)", TYPE_NUM }, { "oldest(complaint)", TYPE_DUR },
		{ "overdue(promise)", TYPE_NUM },
		{ "min(1d, since(touch))", TYPE_DUR }, { "max(1, 2)", TYPE_NUM },
		{ "min(null, 2d)", TYPE_DUR }, { "max(tier, 2)", TYPE_ANY },
		{ "abs(-1d)", TYPE_DUR }, { "abs(-1)", TYPE_NUM }, { "days(since(touch))", TYPE_NUM },
		{ "1d / 1h", TYPE_NUM }, { "since(touch) / 30d", TYPE_NUM }, { "1d / 2", TYPE_DUR },
		{ "2 * 1d", TYPE_DUR }, { "1d * 2", TYPE_DUR }, { "2 * 3", TYPE_NUM },
		{ "1d + 1h", TYPE_DUR }, { "1d - 1h", TYPE_DUR }, { "1 - 2", TYPE_NUM },
		{ "now - now", TYPE_DUR }, { "now + 1d", TYPE_TIME }, { "1d + now", TYPE_TIME },
		{ "now - 1d", TYPE_TIME }, { "-since(touch)", TYPE_DUR },
		{ "value * 2", TYPE_ANY }, { "value + 1d", TYPE_ANY }, { "1 + null", TYPE_NULL },
		{ "tier == \"A\"", TYPE_BOOL }, { "since(touch) > 30d", TYPE_BOOL },
		{ "not tier", TYPE_BOOL }, { "a or b", TYPE_BOOL }, { "x in [1]", TYPE_BOOL },
		{ "\"s\"", TYPE_STR }, { "1", TYPE_NUM }, { "1d", TYPE_DUR },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum vtype t = type_of(cases[i].src);
		if (t != cases[i].type)
			fail_msg("'%s': want type %s, got %s", cases[i].src, vtype_name(cases[i].type),
				 vtype_name(t));
	}
	assert_string_equal(vtype_name(TYPE_DUR), "duration");
	assert_string_equal(vtype_name(TYPE_ANY), "value");
}

static void test_call_resolution(void **state)
{
	struct expr *e;

	(void)state;
	e = compile_ok("since(touch)");
	assert_int_equal(e->root->kind, NODE_CALL);
	assert_int_equal(e->root->fn, FN_SINCE);
	assert_int_equal(e->root->ntypes, 5);
	assert_string_equal(e->root->types[0], "contact");
	assert_string_equal(e->root->types[4], "message");
	assert_int_equal(e->uses_window, 0);
	expr_free(e);
	e = compile_ok("since(purchase)");
	assert_int_equal(e->root->ntypes, 1);
	assert_string_equal(e->root->types[0], "purchase");
	expr_free(e);
	e = compile_ok("since('purchase')"); /* a quoted type works too */
	assert_int_equal(e->root->ntypes, 1);
	assert_string_equal(e->root->types[0], "purchase");
	expr_free(e);
	e = compile_ok("count(touch, 30d) > 1");
	assert_int_equal(e->uses_window, 1);
	assert_int_equal(e->root->kids[0]->fn, FN_COUNT);
	expr_free(e);
	e = compile_ok("sum(purchase, \"amount\", 90d)");
	assert_int_equal(e->uses_window, 1);
	assert_string_equal(e->root->attr, "amount");
	expr_free(e);
	e = compile_ok("open(complaint)");
	assert_int_equal(e->root->fn, FN_OPEN);
	assert_string_equal(e->root->text, "complaint");
	expr_free(e);
}

struct terms {
	char text[8][64];
	int n;
};

static void collect_term(const struct node *term, const char *text, size_t len, void *ctx)
{
	struct terms *t = ctx;

	(void)term;
	if (t->n < 8)
		snprintf(t->text[t->n++], sizeof(t->text[0]), "%.*s", (int)len, text);
}

static void test_walk_terms(void **state)
{
	struct expr *e = compile_ok("tier in [\"B\", \"C\"] and since(touch) > 30d or count(call, 7d) >= 2");
	struct terms t = { .n = 0 };

	(void)state;
	expr_walk_terms(e, collect_term, &t);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.text[0], "tier");
	assert_string_equal(t.text[1], "since(touch)");
	assert_string_equal(t.text[2], "count(call, 7d)");
	expr_free(e);
}

/* ---- errors ----------------------------------------------------------------- */

static void test_error_unknown_function(void **state)
{
	(void)state;
	expect_error("foo(1)", 0, "unknown function 'foo'");
	expect_error("since(touch) > 1d and bar(x)", 22, "unknown function 'bar'");
	expect_error("count(touch, 7d) > 1 and median(purchase) > 1d", 25, "unknown function 'median'");
}

static void test_error_argument_count(void **state)
{
	(void)state;
	expect_error("since()", 0, "since() takes 1 argument, not 0");
	expect_error("since(touch, 1d)", 0, "since() takes 1 argument, not 2");
	expect_error("count(touch)", 0, "count() takes 2 arguments, not 1");
	expect_error("sum(purchase, 7d)", 0, "sum() takes 3 arguments, not 2");
	expect_error("age(1d)", 0, "age() takes 0 arguments, not 1");
	expect_error("x and min(1)", 6, "min() takes 2 arguments, not 1");
	expect_error("abs(1, 2)", 0, "abs() takes 1 argument, not 2");
	expect_error("days()", 0, "days() takes 1 argument, not 0");
	expect_error("open(complaint, promise)", 0, "open() takes 1 argument, not 2");
}

static void test_error_arguments(void **state)
{
	(void)state;
	expect_error("open(ticket)", 5, "unknown case 'ticket' (events.cases defines the cases)");
	expect_error("oldest(touch) > 1d", 7, "unknown case 'touch'");
	expect_error("overdue(\"x\") > 0", 8, "unknown case 'x'");
	expect_error("open(1)", 5, "expected a case name here");
	expect_error("since(1)", 6, "expected an event type or set name here");
	expect_error("since(\"Bad Type\")", 6, "expected an event type or set name here");
	expect_error("count(touch, 7)", 13, "count() expects a duration here, not a number");
	expect_error("sum(purchase, amount, 7d)", 14, "sum() expects an attr name in quotes here");
	expect_error("sum(purchase, \"Amount\", 7d)", 14, "sum() expects an attr name in quotes here");
	expect_error("days(1)", 5, "days() expects a duration here, not a number");
	expect_error("abs(\"x\")", 4, "abs() expects a number or duration, not a string");
	expect_error("min(1, 1d)", 7, "min() needs two values of the same type, not number and duration");
	expect_error("max(since(touch), 3)", 18, "max() needs two values of the same type");
	expect_error("since(touch", 11, "expected ',' or ')' in the arguments of since()");
}

static void test_error_duration_number(void **state)
{
	(void)state;
	expect_error("since(touch) > 30", 13, "cannot compare duration > number");
	expect_error("30 <= since(touch)", 3, "cannot compare number <= duration");
	expect_error("30d + 1", 4, "cannot compute duration + number");
	expect_error("1 - 30d", 2, "cannot compute number - duration");
	expect_error("1 / 1d", 2, "cannot compute number / duration");
	expect_error("1d * 1d", 3, "cannot compute duration * duration");
	expect_error("now + now", 4, "cannot compute time + time");
	expect_error("1d - now", 3, "cannot compute duration - time");
	expect_error("now * 2", 4, "cannot compute time * number");
	expect_error("now > 1d", 4, "cannot compare time > duration");
	expect_error("tier == \"C\" and count(touch, 30d) < 2d", 34, "cannot compare number < duration");
	expect_error("-\"a\"", 0, "cannot negate a string");
	expect_error("-true", 0, "cannot negate a bool");
	expect_error("\"a\" + \"b\"", 4, "cannot compute string + string");
	expect_error("true + 1", 5, "cannot compute bool + number");
	expect_error("tier + \"x\"", 5, "cannot compute value + string");
}

static void test_error_compare_types(void **state)
{
	(void)state;
	expect_error("\"a\" == 1", 4, "cannot compare string == number");
	expect_error("id < 3", 3, "cannot compare string < number");
	expect_error("since(touch) != \"x\"", 13, "cannot compare duration != string");
	expect_error("true < false", 5, "booleans can only be compared with == and !=");
	expect_error("true == 1", 5, "cannot compare bool == number");
}

static void test_error_in_without_list(void **state)
{
	(void)state;
	expect_error("tier in \"A\"", 8, "expected a list '[...]' after 'in'");
	expect_error("tier not in x", 12, "expected a list '[...]' after 'in'");
	expect_error("tier in", 7, "expected a list '[...]' after 'in'");
	expect_error("tier not \"A\"", 9, "expected 'in' after 'not'");
	expect_error("not in [1]", 4, "expected a value, found 'in'");
	expect_error("x in [1", 7, "expected ',' or ']' in a list");
	expect_error("x in [1,]", 8, "expected a value, found ']'");
	expect_error("x in [[1]]", 6, "lists cannot be nested");
}

static void test_error_strings(void **state)
{
	(void)state;
	expect_error("tier == \"abc", 8, "unterminated string");
	expect_error("'abc\\'", 0, "unterminated string");
	expect_error("\"", 0, "unterminated string");
	expect_error("x in ['a', 'b]", 11, "unterminated string");
}

static void test_error_unexpected(void **state)
{
	(void)state;
	expect_error("1 + )", 4, "expected a value, found ')'");
	expect_error("since(touch) >", 14, "expected a value, found the end of the expression");
	expect_error("", 0, "expected a value, found the end of the expression");
	expect_error("   ", 3, "expected a value, found the end of the expression");
	expect_error("a and", 5, "expected a value, found the end of the expression");
	expect_error("and", 0, "expected a value, found 'and'");
	expect_error("a or or b", 5, "expected a value, found 'or'");
	expect_error("1 # 2", 2, "unexpected character '#'");
	expect_error("tier = \"A\"", 5, "unexpected character '='");
	expect_error("a && b", 2, "unexpected character '&'");
	expect_error("(1 + 2", 6, "expected ')' to close the '('");
	expect_error("* 2", 0, "expected a value, found '*'");
	expect_error("f(", 0, "unknown function 'f'");
}

static void test_error_trailing(void **state)
{
	(void)state;
	expect_error("1 2", 2, "unexpected '2' after a complete expression");
	expect_error("since(touch) > 1d )", 18, "unexpected ')' after a complete expression");
	expect_error("tier == \"A\" tier", 12, "unexpected 'tier' after a complete expression");
	expect_error("(1) (2)", 4, "unexpected '(' after a complete expression");
	expect_error("x in [1] [2]", 9, "unexpected '[' after a complete expression");
}

static void test_error_list_outside_in(void **state)
{
	char msg[256];
	size_t pos;
	struct expr *e;

	(void)state;
	expect_error("[1, 2]", 0, "a list can only follow 'in'");
	expect_error("[]", 0, "a list can only follow 'in'");
	expect_error("[1] == 1", 4, "a list can only follow 'in'");
	expect_error("tier == [\"A\"]", 5, "a list can only follow 'in'");
	expect_error("tier < [1]", 5, "a list can only follow 'in'");
	/* a list is not a condition either */
	expect_error("not [1]", 4, "a list can only follow 'in'");
	expect_error("[1] and true", 0, "a list can only follow 'in'");
	expect_error("true or [1]", 8, "a list can only follow 'in'");
	expect_error("[1] in [1]", 0, "a list can only follow 'in'");
	/* in arithmetic or as an argument, any error will do, but it is an error */
	const char *const others[] = { "1 + [2]", "-[1]", "min([1], 2)", "count(touch, [1d])",
				       "since([1])", "days([1d])" };
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		e = expr_compile(others[i], cfg, msg, sizeof(msg), &pos);
		if (e) {
			expr_free(e);
			fail_msg("'%s' should not compile", others[i]);
		}
	}
}

static char *repeat(const char *head, int n, const char *mid, const char *tail, int m)
{
	size_t hl = strlen(head), tl = strlen(tail), ml = strlen(mid);
	char *s = malloc(hl * (size_t)n + ml + tl * (size_t)m + 1), *p = s;

	assert_non_null(s);
	for (int i = 0; i < n; i++, p += hl)
		memcpy(p, head, hl);
	memcpy(p, mid, ml);
	p += ml;
	for (int i = 0; i < m; i++, p += tl)
		memcpy(p, tail, tl);
	*p = '\0';
	return s;
}

static void test_error_depth(void **state)
{
	char *s;
	struct expr *e;

	(void)state;
	/* the whole expression is level 1; each parenthesis adds one: 63 fit */
	s = repeat("(", 63, "1", ")", 63);
	e = compile_ok(s);
	assert_true(num_of(s) == 1);
	expr_free(e);
	free(s);
	s = repeat("(", 64, "1", ")", 64);
	expect_error(s, 64, "expression nested more than 64 deep");
	free(s);
	s = repeat("(", 500, "1", ")", 500);
	expect_error(s, 64, "expression nested more than 64 deep");
	free(s);
	s = repeat("not ", 64, "true", "", 0);
	expect_error(s, 63 * 4, "expression nested more than 64 deep");
	free(s);
	s = repeat("not ", 62, "true", "", 0);
	assert_true(bool_of(s));
	free(s);
	s = repeat("-", 64, "1", "", 0);
	expect_error(s, 63, "expression nested more than 64 deep");
	free(s);
	s = repeat("abs(", 64, "1", ")", 64);
	expect_error(s, 64 * 4, "expression nested more than 64 deep");
	free(s);
	s = repeat("abs(", 63, "1", ")", 63);
	assert_true(num_of(s) == 1);
	free(s);
	/* long flat chains are not nesting */
	s = repeat("1 + ", 1000, "1", "", 0);
	assert_true(num_of(s) == 1001);
	free(s);
	s = repeat("true and ", 400, "true", "", 0);
	assert_true(bool_of(s));
	free(s);
}

static void test_error_too_long(void **state)
{
	char *s = malloc(EXPR_TEXT_MAX + 2);

	(void)state;
	assert_non_null(s);
	memset(s, ' ', EXPR_TEXT_MAX + 1);
	s[0] = '1';
	s[EXPR_TEXT_MAX] = '\0'; /* exactly 4096 bytes: fine */
	assert_true(num_of(s) == 1);
	s[EXPR_TEXT_MAX] = ' ';
	s[EXPR_TEXT_MAX + 1] = '\0'; /* 4097 bytes */
	expect_error(s, 0, "expression longer than 4096 bytes");
	free(s);
}

static void test_error_message_truncated(void **state)
{
	char msg[8];
	size_t pos = 999;

	(void)state;
	assert_null(expr_compile("foo(1)", cfg, msg, sizeof(msg), &pos));
	assert_int_equal(pos, 0);
	assert_string_equal(msg, "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_keywords_and_names),
		cmocka_unit_test(test_precedence_logic),
		cmocka_unit_test(test_precedence_arith),
		cmocka_unit_test(test_comparisons),
		cmocka_unit_test(test_in),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_call_resolution),
		cmocka_unit_test(test_walk_terms),
		cmocka_unit_test(test_error_unknown_function),
		cmocka_unit_test(test_error_argument_count),
		cmocka_unit_test(test_error_arguments),
		cmocka_unit_test(test_error_duration_number),
		cmocka_unit_test(test_error_compare_types),
		cmocka_unit_test(test_error_in_without_list),
		cmocka_unit_test(test_error_strings),
		cmocka_unit_test(test_error_unexpected),
		cmocka_unit_test(test_error_trailing),
		cmocka_unit_test(test_error_list_outside_in),
		cmocka_unit_test(test_error_depth),
		cmocka_unit_test(test_error_too_long),
		cmocka_unit_test(test_error_message_truncated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
