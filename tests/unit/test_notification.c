/*
 * notification.h and json_out.h: bodies written straight into a buffer are,
 * byte for byte, what the json-c tree they replaced serialized to (subscribers
 * compare bodies, `replay` returns stored ones). The reference below is that
 * tree-building code; many generated alerts, customers and rules go through
 * both.
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

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/json_out.h"
#include "hearth/notification.h"
#include "hearth/state.h"
#include "hearth/units.h"

#define PLAIN_NOSLASH (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- the json-c reference: the code notification_body replaced ------------ */

static struct json_object *ref_profile_field(const struct profile_field *f)
{
	switch (f->kind) {
	case PROFILE_STRING: return json_object_new_string_len(f->str, (int)f->str_len);
	case PROFILE_INT: return json_object_new_int64(f->v.i);
	case PROFILE_DOUBLE: return json_object_new_double(f->v.d);
	case PROFILE_BOOL: return json_object_new_boolean(f->v.b);
	default: return NULL;
	}
}

static struct json_object *ref_customer_brief(const struct cust *c)
{
	static const char *const keys[] = { "name", "owner", "tier" };
	struct json_object *o = json_object_new_object();
	const struct profile_field *f;

	json_object_object_add(o, "id", json_object_new_string_len(c->id, (int)c->id_len));
	for (size_t i = 0; i < 3; i++)
		if ((f = cust_profile_get(c, keys[i])))
			json_object_object_add(o, keys[i], ref_profile_field(f));
	return o;
}

/* values: the tree the rule's values were evaluated into (a reference is taken) */
static char *ref_body(const struct alert *a, const struct cust *c, const struct config_rule *rule,
		      enum notify_kind kind, uint64_t seq, int64_t now, struct json_object *values)
{
	struct json_object *body = json_object_new_object(), *alert, *labels = json_object_new_object();
	char buf[TIME_BUF];
	char *text;

	json_object_object_add(body, "seq", json_object_new_int64((int64_t)seq));
	json_object_object_add(body, "ts", json_object_new_string(time_format(now, buf, sizeof(buf))));
	json_object_object_add(body, "kind", json_object_new_string(notify_kind_name(kind)));
	alert = alert_to_json(a, c->id, c->id_len, severity_name(rule->severity));
	if (values)
		json_object_object_add(alert, "values", json_object_get(values));
	json_object_object_del(alert, "acked");
	for (size_t i = 0; i < rule->nlabels; i++)
		json_object_object_add(labels, rule->labels[i].key,
				       json_object_new_string(rule->labels[i].value));
	json_object_object_add(alert, "labels", labels);
	json_object_object_add(body, "alert", alert);
	json_object_object_add(body, "customer", ref_customer_brief(c));
	text = strdup(json_object_to_json_string_ext(body, PLAIN_NOSLASH));
	json_object_put(body);
	return text;
}

/* ---- generated inputs ------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static const char *const pieces[] = {
	"", "a", "plain text", "\"", "\\", "/", "\\/", "</script>", "a\"b\\c/d",
	"\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "\x0b\x0e\x1b",
	"日本語", "客户", "😀", "é", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "{\"not\":\"json\"}",
	"null", "-1", "%s%d", " ", "\xc3\xa9t\xc3\xa9",
};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

/* A string of up to max - 1 bytes glued from pieces; sometimes long. */
static size_t gen_text(char *out, size_t max)
{
	size_t len = 0, n = next() % 6, want = next() % 8 == 0 ? max - 1 : 0;

	for (size_t i = 0; i < n || len < want; i++) {
		const char *p = pieces[next() % NPIECES];
		size_t plen = strlen(p);
		if (len + plen >= max)
			break;
		memcpy(out + len, p, plen);
		len += plen;
	}
	out[len] = '\0';
	return len;
}

static const int64_t ints[] = {
	0, 1, -1, 42, -42, 2678400000LL, INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
	INT64_MAX, INT64_MIN, INT64_MIN + 1, 9007199254740993LL, -9007199254740993LL,
};

static double gen_double(void)
{
	static const double d[] = {
		0.0, -0.0, 0.5, -0.5, 0.1, 1.0 / 3, 2.5, 1e15, 1e16, 1e17, 1e21, 1e300, 1e-7,
		1e-300, 5e-324, -1.7976931348623157e308, 123456789.125, 3.0, -3.0,
		9007199254740993.0, NAN, INFINITY, -INFINITY,
	};
	return d[next() % (sizeof(d) / sizeof(d[0]))];
}

/* One of the forms value_to_json gives a rule's term */
static struct json_object *gen_value(void)
{
	char buf[300];

	switch (next() % 6) {
	case 0: return NULL;
	case 1: return json_object_new_boolean((int)(next() % 2));
	case 2: return json_object_new_int64(ints[next() % (sizeof(ints) / sizeof(ints[0]))]);
	case 3: return json_object_new_double(gen_double());
	default: {
		size_t n = gen_text(buf, sizeof(buf));
		return json_object_new_string_len(buf, (int)n);
	}
	}
}

static void set_text(char **dst, size_t max)
{
	char *buf = malloc(max);
	assert_non_null(buf);
	gen_text(buf, max);
	*dst = buf;
}

static void add_profile(struct cust *c, const char *key)
{
	struct profile_field *f;

	c->profile = realloc(c->profile, (c->nprofile + 1) * sizeof(*c->profile));
	assert_non_null(c->profile);
	f = &c->profile[c->nprofile++];
	memset(f, 0, sizeof(*f));
	snprintf(f->key, sizeof(f->key), "%s", key);
	switch (next() % 6) {
	case 0: f->kind = PROFILE_ABSENT; break;
	case 1: f->kind = PROFILE_INT; f->v.i = ints[next() % (sizeof(ints) / sizeof(ints[0]))]; break;
	case 2: f->kind = PROFILE_DOUBLE; f->v.d = gen_double(); break;
	case 3: f->kind = PROFILE_BOOL; f->v.b = (int)(next() % 2); break;
	default:
		f->kind = PROFILE_STRING;
		set_text(&f->str, 400);
		f->str_len = strlen(f->str);
	}
}

static struct cust *gen_cust(void)
{
	static const char *const keys[] = { "name", "owner", "tier", "plan", "region" };
	char id[HEARTH_ID_MAX + 1];
	size_t len = gen_text(id, sizeof(id));
	struct cust *c;

	/* ids are bytes with a length: one with a NUL inside */
	if (len == 0 && next() % 2)
		len = 3, memcpy(id, "a\0b", 3);
	c = cust_new(len ? id : "C1001", len ? len : 5);
	assert_non_null(c);
	for (size_t i = 0; i < 5; i++)
		if (next() % 3)
			add_profile(c, keys[next() % 5]);
	return c;
}

static void gen_rule(struct config_rule *r)
{
	static const char *const names[] = { "team", "runbook", "page", "x" };

	memset(r, 0, sizeof(*r));
	r->severity = (enum severity)(next() % 3);
	r->nlabels = next() % 4;
	r->labels = calloc(r->nlabels ? r->nlabels : 1, sizeof(*r->labels));
	assert_non_null(r->labels);
	for (size_t i = 0; i < r->nlabels; i++) {
		/* names are unique in a mapping (the loader rejects a key twice) */
		r->labels[i].key = strdup(names[i]);
		set_text(&r->labels[i].value, 200);
	}
}

static void free_rule(struct config_rule *r)
{
	for (size_t i = 0; i < r->nlabels; i++) {
		free(r->labels[i].key);
		free(r->labels[i].value);
	}
	free(r->labels);
}

static const int64_t times[] = { 0, 1, 1800000000000LL, 1800000000123LL, -1, 253402300799999LL };
#define TIME() times[next() % (sizeof(times) / sizeof(times[0]))]

/* The alert and the tree of its values; values_json is that tree as render_alert keeps it. */
static struct json_object *gen_alert(struct alert *a)
{
	struct json_object *values = NULL;

	memset(a, 0, sizeof(*a));
	gen_text(a->rule, sizeof(a->rule));
	a->state = (enum alert_state)(next() % 4);
	a->since = TIME();
	a->active_since = next() % 2 ? TIME() : 0;
	a->resolved_at = TIME();
	a->values_at = next() % 2 ? TIME() : 0;
	a->acked = (int)(next() % 2);
	if (next() % 2)
		gen_text(a->acked_by, sizeof(a->acked_by));
	gen_text(a->summary, sizeof(a->summary));
	if (next() % 5) {
		char key[256];
		values = json_object_new_object();
		for (size_t i = 0, n = next() % 6; i < n; i++) {
			gen_text(key, sizeof(key));
			json_object_object_add(values, key, gen_value());
		}
		a->values_json = strdup(json_object_to_json_string_ext(values, JSON_C_TO_STRING_PLAIN));
	}
	return values;
}

/* ---- tests ----------------------------------------------------------------- */

static void assert_same(struct wbuf *b, const char *want)
{
	assert_false(b->failed);
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
		fail_msg("bodies differ:\n  json_out %.*s\n  json-c   %s", (int)b->len, (const char *)b->data, want);
}

static void test_bodies_are_json_c_bytes(void **state)
{
	struct wbuf b;

	(void)state;
	wbuf_init(&b);
	for (int i = 0; i < 20000; i++) {
		struct alert a;
		struct config_rule rule;
		struct json_object *values = gen_alert(&a), *parsed;
		struct cust *c = gen_cust();
		enum notify_kind kind = (enum notify_kind)(1 + next() % 3);
		uint64_t seq = next() % 4 ? next() : UINT64_MAX / (1 + next() % 3);
		int64_t now = TIME();
		char *want;

		gen_rule(&rule);
		want = ref_body(&a, c, &rule, kind, seq, now, values);
		wbuf_reset(&b);
		notification_body(&a, c, &rule, kind, seq, now, &b);
		assert_same(&b, want);
		parsed = json_tokener_parse(want);
		assert_non_null(parsed);
		json_object_put(parsed);
		free(want);
		json_object_put(values);
		alert_clear(&a);
		cust_free(c);
		free_rule(&rule);
	}
	wbuf_free(&b);
}

/* A body put together from its rest (built before the seq is known) is the same body. */
static void test_rest_then_join(void **state)
{
	struct wbuf whole, rest, joined;

	(void)state;
	wbuf_init(&whole);
	wbuf_init(&rest);
	wbuf_init(&joined);
	for (int i = 0; i < 5000; i++) {
		struct alert a;
		struct config_rule rule;
		struct json_object *values = gen_alert(&a);
		struct cust *c = gen_cust();
		enum notify_kind kind = (enum notify_kind)(1 + next() % 3);
		uint64_t seq = next() % 4 ? next() : UINT64_MAX / (1 + next() % 3);
		int64_t now = TIME();

		gen_rule(&rule);
		wbuf_reset(&whole);
		wbuf_reset(&rest);
		wbuf_reset(&joined);
		notification_body(&a, c, &rule, kind, seq, now, &whole);
		notification_body_rest(&a, c, &rule, kind, now, &rest);
		notification_body_join(seq, rest.data, rest.len, &joined);
		assert_false(joined.failed);
		assert_int_equal(joined.len, whole.len);
		assert_memory_equal(joined.data, whole.data, whole.len);
		json_object_put(values);
		alert_clear(&a);
		cust_free(c);
		free_rule(&rule);
	}
	wbuf_free(&whole);
	wbuf_free(&rest);
	wbuf_free(&joined);
}

static void test_a_known_body(void **state)
{
	struct alert a = { .rule = "customer_cooling", .state = ALERT_FIRING, .since = 1800000000000LL,
			   .active_since = 1799990000000LL, .values_at = 1800000000000LL,
			   .summary = "C1001: no touch in 31d" };
	struct config_label labels[] = { { "team", "care/eu" } };
	struct config_rule rule = { .severity = SEVERITY_WARNING, .labels = labels, .nlabels = 1 };
	struct cust *c = cust_new("C1001", 5);
	struct wbuf b;

	(void)state;
	a.values_json = strdup("{\"since(touch)\":2678400000,\"url\":\"a\\/b\"}");
	assert_non_null(c);
	wbuf_init(&b);
	notification_body(&a, c, &rule, NOTIFY_FIRING, 7, 1800000000000LL, &b);
	assert_same(&b, "{\"seq\":7,\"ts\":\"2027-01-15T08:00:00.000Z\",\"kind\":\"firing\","
			"\"alert\":{\"rule\":\"customer_cooling\",\"customer\":\"C1001\",\"severity\":\"warning\","
			"\"state\":\"firing\",\"since\":\"2027-01-15T08:00:00.000Z\","
			"\"active_since\":\"2027-01-15T05:13:20.000Z\",\"summary\":\"C1001: no touch in 31d\","
			"\"values_at\":\"2027-01-15T08:00:00.000Z\","
			"\"values\":{\"since(touch)\":2678400000,\"url\":\"a/b\"},"
			"\"labels\":{\"team\":\"care/eu\"}},\"customer\":{\"id\":\"C1001\"}}");
	wbuf_free(&b);
	alert_clear(&a);
	cust_free(c);
}

/* Each value form against json-c's, with and without its slash escapes. */
static void test_values_are_json_c_bytes(void **state)
{
	struct wbuf b;

	(void)state;
	wbuf_init(&b);
	for (int i = 0; i < 20000; i++) {
		struct json_object *v = gen_value();
		struct json_out o = { .b = &b, .escape_slash = (int)(next() % 2) };
		const char *want = json_object_to_json_string_ext(v, o.escape_slash ? JSON_C_TO_STRING_PLAIN
										 : PLAIN_NOSLASH);
		wbuf_reset(&b);
		switch (json_object_get_type(v)) {
		case json_type_null: json_out_null(&o); break;
		case json_type_boolean: json_out_bool(&o, json_object_get_boolean(v)); break;
		case json_type_int: json_out_int64(&o, json_object_get_int64(v)); break;
		case json_type_double: json_out_double(&o, json_object_get_double(v)); break;
		default:
			json_out_str(&o, json_object_get_string(v), (size_t)json_object_get_string_len(v));
			break;
		}
		assert_same(&b, want);
		json_object_put(v);
	}
	wbuf_free(&b);
}

/* Every byte value escaped as json-c escapes it, as a key and as a string. */
static void test_every_byte(void **state)
{
	struct wbuf b;
	char s[3] = "x";

	(void)state;
	wbuf_init(&b);
	for (int c = 1; c < 256; c++) {
		struct json_out o = { .b = &b };
		struct json_object *obj = json_object_new_object();
		s[1] = (char)c;
		json_object_object_add(obj, s, json_object_new_string(s));
		wbuf_reset(&b);
		json_out_open(&o);
		json_out_key(&o, s);
		json_out_cstr(&o, s);
		json_out_close(&o);
		assert_same(&b, json_object_to_json_string_ext(obj, PLAIN_NOSLASH));
		json_object_put(obj);
	}
	wbuf_free(&b);
}

/* Embedded text loses exactly its "\/" escapes: "\\/" is a backslash, then '/'. */
static void test_raw_drops_slash_escapes(void **state)
{
	static const char *const cases[][2] = {
		{ "{\"a\\/b\":\"\\/\"}", "{\"a/b\":\"/\"}" },
		{ "{\"k\":\"\\\\\\/\"}", "{\"k\":\"\\\\/\"}" },
		{ "{\"k\":\"\\\\\"}", "{\"k\":\"\\\\\"}" },
		{ "{\"k\":\"\\\"\\/\\\\\"}", "{\"k\":\"\\\"/\\\\\"}" },
		{ "{}", "{}" },
	};
	struct wbuf b;

	(void)state;
	wbuf_init(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_out o = { .b = &b };
		wbuf_reset(&b);
		json_out_raw(&o, cases[i][0], strlen(cases[i][0]));
		assert_same(&b, cases[i][1]);
		o.escape_slash = 1;
		wbuf_reset(&b);
		json_out_raw(&o, cases[i][0], strlen(cases[i][0]));
		assert_same(&b, cases[i][0]);
	}
	wbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rest_then_join),
		cmocka_unit_test(test_a_known_body),
		cmocka_unit_test(test_bodies_are_json_c_bytes),
		cmocka_unit_test(test_values_are_json_c_bytes),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_raw_drops_slash_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
