/*
 * alert.h: the lifecycle step of PROTOCOL.md §4.1 (pending while `for` runs, firing,
 * repeat unless acknowledged, resolved, firing again) with its wake times, and
 * the stored record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/store.h"
#include "hearth/units.h"

#define T0 1800000000000LL
#define MIN MS_PER_MINUTE
#define HOUR MS_PER_HOUR
#define DAY MS_PER_DAY
#define NONE INT64_MAX

static struct alert fresh(void)
{
	struct alert a;

	memset(&a, 0, sizeof(a));
	strcpy(a.rule, "customer_cooling");
	return a;
}

/* One step; checks what it notifies, the state after it and the wake time. */
static void step(struct alert *a, int holds, int64_t now, int64_t for_ms, int64_t repeat_ms,
		 enum notify_kind want_kind, enum alert_state want_state, int64_t want_wake)
{
	int64_t wake = 12345;
	enum notify_kind k = alert_step(a, holds, now, for_ms, repeat_ms, &wake);

	if (k != want_kind)
		fail_msg("at T0%+lld ms: want notify %s, got %s", (long long)(now - T0),
			 notify_kind_name(want_kind), notify_kind_name(k));
	if (a->state != want_state)
		fail_msg("at T0%+lld ms: want state %s, got %s", (long long)(now - T0),
			 alert_state_name(want_state), alert_state_name(a->state));
	if (wake != want_wake)
		fail_msg("at T0%+lld ms: want wake %lld, got %lld", (long long)(now - T0),
			 (long long)want_wake, (long long)wake);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(alert_state_name(ALERT_INACTIVE), "inactive");
	assert_string_equal(alert_state_name(ALERT_PENDING), "pending");
	assert_string_equal(alert_state_name(ALERT_FIRING), "firing");
	assert_string_equal(alert_state_name(ALERT_RESOLVED), "resolved");
	assert_string_equal(alert_state_name((enum alert_state)9), "?");
	assert_int_equal(alert_state_parse("inactive"), ALERT_INACTIVE);
	assert_int_equal(alert_state_parse("pending"), ALERT_PENDING);
	assert_int_equal(alert_state_parse("firing"), ALERT_FIRING);
	assert_int_equal(alert_state_parse("resolved"), ALERT_RESOLVED);
	assert_int_equal(alert_state_parse("Firing"), -1);
	assert_int_equal(alert_state_parse(""), -1);
	assert_string_equal(notify_kind_name(NOTIFY_NONE), "none");
	assert_string_equal(notify_kind_name(NOTIFY_FIRING), "firing");
	assert_string_equal(notify_kind_name(NOTIFY_REPEAT), "repeat");
	assert_string_equal(notify_kind_name(NOTIFY_RESOLVED), "resolved");
}

static void test_inactive_stays(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 0, T0, 0, 0, NOTIFY_NONE, ALERT_INACTIVE, NONE);
	step(&a, 0, T0 + DAY, 5 * MIN, DAY, NOTIFY_NONE, ALERT_INACTIVE, NONE);
}

static void test_inactive_to_firing_for_zero(void **state)
{
	struct alert a = fresh();

	(void)state;
	/* for 0s, no repeat: fires at once, nothing to wake for */
	step(&a, 1, T0, 0, 0, NOTIFY_FIRING, ALERT_FIRING, NONE);
	assert_true(a.since == T0);
	assert_true(a.last_notified == T0);
	assert_false(a.acked);
	/* still holding: nothing more, ever */
	step(&a, 1, T0 + 30 * DAY, 0, 0, NOTIFY_NONE, ALERT_FIRING, NONE);
	assert_true(a.since == T0);

	/* with a repeat: the wake is the first repeat */
	a = fresh();
	step(&a, 1, T0, 0, 7 * DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + 7 * DAY);
}

static void test_pending_then_firing(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 10 * MIN);
	assert_true(a.since == T0);
	/* still holding, not long enough: the wake stays at since + for */
	step(&a, 1, T0 + 3 * MIN, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 10 * MIN);
	step(&a, 1, T0 + 10 * MIN - 1, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 10 * MIN);
	assert_true(a.since == T0);
	/* at the wake time: firing, since = when it fired */
	step(&a, 1, T0 + 10 * MIN, 10 * MIN, HOUR, NOTIFY_FIRING, ALERT_FIRING, T0 + 10 * MIN + HOUR);
	assert_true(a.since == T0 + 10 * MIN);
	assert_true(a.last_notified == T0 + 10 * MIN);

	/* a late tick fires as soon as it comes */
	a = fresh();
	step(&a, 1, T0, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 10 * MIN);
	step(&a, 1, T0 + 2 * HOUR, 10 * MIN, 0, NOTIFY_FIRING, ALERT_FIRING, NONE);
	assert_true(a.since == T0 + 2 * HOUR);
}

static void test_pending_drops(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 10 * MIN);
	step(&a, 0, T0 + 5 * MIN, 10 * MIN, 0, NOTIFY_NONE, ALERT_INACTIVE, NONE);
	/* holding again restarts the clock */
	step(&a, 1, T0 + 6 * MIN, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 16 * MIN);
	assert_true(a.since == T0 + 6 * MIN);
	step(&a, 1, T0 + 10 * MIN, 10 * MIN, 0, NOTIFY_NONE, ALERT_PENDING, T0 + 16 * MIN);
	step(&a, 1, T0 + 16 * MIN, 10 * MIN, 0, NOTIFY_FIRING, ALERT_FIRING, NONE);
}

static void test_repeat(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, 0, DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + DAY);
	/* before the repeat: nothing, wake at last_notified + repeat */
	step(&a, 1, T0 + HOUR, 0, DAY, NOTIFY_NONE, ALERT_FIRING, T0 + DAY);
	step(&a, 1, T0 + DAY - 1, 0, DAY, NOTIFY_NONE, ALERT_FIRING, T0 + DAY);
	/* at it: repeat, and the next one a full period later */
	step(&a, 1, T0 + DAY, 0, DAY, NOTIFY_REPEAT, ALERT_FIRING, T0 + 2 * DAY);
	assert_true(a.last_notified == T0 + DAY);
	assert_true(a.since == T0); /* still firing since it began */
	/* a late tick: one repeat, counted from when it was sent */
	step(&a, 1, T0 + 5 * DAY + HOUR, 0, DAY, NOTIFY_REPEAT, ALERT_FIRING, T0 + 6 * DAY + HOUR);
	step(&a, 1, T0 + 5 * DAY + 2 * HOUR, 0, DAY, NOTIFY_NONE, ALERT_FIRING, T0 + 6 * DAY + HOUR);
	/* repeat 0 means never */
	step(&a, 1, T0 + 30 * DAY, 0, 0, NOTIFY_NONE, ALERT_FIRING, NONE);
}

static void test_acked_no_repeat(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, 0, DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + DAY);
	a.acked = 1;
	strcpy(a.acked_by, "zhang");
	step(&a, 1, T0 + DAY, 0, DAY, NOTIFY_NONE, ALERT_FIRING, NONE);
	step(&a, 1, T0 + 10 * DAY, 0, DAY, NOTIFY_NONE, ALERT_FIRING, NONE);
	assert_true(a.acked);
	assert_string_equal(a.acked_by, "zhang");
	/* resolving clears the acknowledgement */
	step(&a, 0, T0 + 11 * DAY, 0, DAY, NOTIFY_RESOLVED, ALERT_RESOLVED, NONE);
	assert_false(a.acked);
	assert_string_equal(a.acked_by, "");
}

static void test_resolved_and_again(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, 0, DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + DAY);
	step(&a, 0, T0 + 2 * HOUR, 0, DAY, NOTIFY_RESOLVED, ALERT_RESOLVED, NONE);
	assert_true(a.resolved_at == T0 + 2 * HOUR);
	/* resolved stays resolved while the condition is false */
	step(&a, 0, T0 + 3 * HOUR, 0, DAY, NOTIFY_NONE, ALERT_RESOLVED, NONE);
	assert_true(a.resolved_at == T0 + 2 * HOUR);
	/* and fires again when it holds again */
	step(&a, 1, T0 + 4 * HOUR, 0, DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + 4 * HOUR + DAY);
	assert_true(a.since == T0 + 4 * HOUR);
	assert_true(a.last_notified == T0 + 4 * HOUR);

	/* with a `for`: resolved → pending → firing */
	step(&a, 0, T0 + 5 * HOUR, 30 * MIN, DAY, NOTIFY_RESOLVED, ALERT_RESOLVED, NONE);
	step(&a, 1, T0 + 6 * HOUR, 30 * MIN, DAY, NOTIFY_NONE, ALERT_PENDING, T0 + 6 * HOUR + 30 * MIN);
	step(&a, 1, T0 + 6 * HOUR + 30 * MIN, 30 * MIN, DAY, NOTIFY_FIRING, ALERT_FIRING,
	     T0 + 6 * HOUR + 30 * MIN + DAY);
	/* acked before, but a new firing starts unacknowledged */
	a.acked = 1;
	step(&a, 0, T0 + 7 * HOUR, 0, DAY, NOTIFY_RESOLVED, ALERT_RESOLVED, NONE);
	a.acked = 1; /* even if an ack raced in */
	step(&a, 1, T0 + 8 * HOUR, 0, DAY, NOTIFY_FIRING, ALERT_FIRING, T0 + 8 * HOUR + DAY);
	assert_false(a.acked);
}

/* A pending alert that never fired resolves to nothing, not to `resolved`. */
static void test_pending_never_resolves(void **state)
{
	struct alert a = fresh();

	(void)state;
	step(&a, 1, T0, HOUR, DAY, NOTIFY_NONE, ALERT_PENDING, T0 + HOUR);
	step(&a, 0, T0 + MIN, HOUR, DAY, NOTIFY_NONE, ALERT_INACTIVE, NONE);
	step(&a, 0, T0 + 2 * MIN, HOUR, DAY, NOTIFY_NONE, ALERT_INACTIVE, NONE);
}

static void test_key(void **state)
{
	uint8_t buf[STORE_ALERT_KEY_MAX];
	size_t n = store_alert_key(buf, "C1001", 5, "customer_cooling");

	(void)state;
	assert_int_equal(n, 5 + 1 + 16);
	assert_memory_equal(buf, "C1001\0customer_cooling", n);
}

static void test_encode_decode(void **state)
{
	struct alert a = fresh(), b;
	struct wbuf w;

	(void)state;
	a.state = ALERT_FIRING;
	a.since = T0;
	a.last_notified = T0 + DAY;
	a.resolved_at = -5; /* any int64, negative too */
	a.acked = 1;
	strcpy(a.acked_by, "zhang");
	strcpy(a.summary, "Lin Wei (C1001) has had no contact for 31d — 客户");
	a.values_json = strdup("{\"since(touch)\":2678400000}");
	wbuf_init(&w);
	assert_int_equal(alert_encode(&a, &w), 0);

	memset(&b, 0, sizeof(b));
	assert_int_equal(alert_decode(w.data, w.len, &b), 0);
	assert_int_equal(b.state, ALERT_FIRING);
	assert_true(b.since == T0);
	assert_true(b.last_notified == T0 + DAY);
	assert_true(b.resolved_at == -5);
	assert_int_equal(b.acked, 1);
	assert_string_equal(b.acked_by, "zhang");
	assert_string_equal(b.summary, a.summary);
	assert_string_equal(b.values_json, a.values_json);
	assert_string_equal(b.rule, ""); /* the rule is in the key, not the record */

	/* decoding over an alert that had values replaces them without a leak */
	assert_int_equal(alert_decode(w.data, w.len, &b), 0);
	assert_string_equal(b.values_json, a.values_json);

	/* every truncation is refused */
	for (size_t n = 0; n < w.len; n++) {
		struct alert c;
		memset(&c, 0, sizeof(c));
		if (alert_decode(w.data, n, &c) == 0)
			fail_msg("a record cut to %zu of %zu bytes decoded", n, w.len);
		alert_clear(&c);
	}
	/* a wrong version, an unknown state */
	w.data[0] = ALERT_RECORD_VERSION + 1;
	assert_int_equal(alert_decode(w.data, w.len, &b), -1);
	w.data[0] = ALERT_RECORD_VERSION;
	w.data[1] = 7;
	assert_int_equal(alert_decode(w.data, w.len, &b), -1);
	wbuf_free(&w);

	/* no values, empty strings, every state */
	for (int s = ALERT_INACTIVE; s <= ALERT_RESOLVED; s++) {
		struct alert e = fresh(), f;
		e.state = (enum alert_state)s;
		e.since = T0 + s;
		wbuf_init(&w);
		assert_int_equal(alert_encode(&e, &w), 0);
		memset(&f, 0, sizeof(f));
		assert_int_equal(alert_decode(w.data, w.len, &f), 0);
		assert_int_equal(f.state, s);
		assert_true(f.since == T0 + s);
		assert_string_equal(f.summary, "");
		assert_string_equal(f.acked_by, "");
		assert_true(f.values_json == NULL || f.values_json[0] == '\0');
		alert_clear(&f);
		wbuf_free(&w);
	}

	/* a full-length summary survives */
	memset(a.summary, 'x', sizeof(a.summary) - 1);
	a.summary[sizeof(a.summary) - 1] = '\0';
	wbuf_init(&w);
	assert_int_equal(alert_encode(&a, &w), 0);
	assert_int_equal(alert_decode(w.data, w.len, &b), 0);
	assert_int_equal(strlen(b.summary), sizeof(a.summary) - 1);
	wbuf_free(&w);

	alert_clear(&a);
	alert_clear(&b);
	assert_null(b.values_json);
	assert_int_equal(b.state, ALERT_INACTIVE);
}

/* A record as versions 1 and 2 wrote it: fixed-width times, version 2 with two more. */
static void put_fixed_width(struct wbuf *w, int version, const struct alert *a)
{
	wbuf_u8(w, (uint8_t)version);
	wbuf_u8(w, (uint8_t)a->state);
	wbuf_i64(w, a->since);
	wbuf_i64(w, a->last_notified);
	wbuf_i64(w, a->resolved_at);
	wbuf_u8(w, (uint8_t)a->acked);
	wbuf_str8(w, a->acked_by, strlen(a->acked_by));
	wbuf_u16(w, (uint16_t)strlen(a->summary));
	wbuf_put(w, a->summary, strlen(a->summary));
	wbuf_u32(w, (uint32_t)strlen(a->values_json));
	wbuf_put(w, a->values_json, strlen(a->values_json));
	if (version == 2) {
		wbuf_i64(w, a->active_since);
		wbuf_i64(w, a->values_at);
	}
}

/*
 * Version 2 added active_since and values_at, version 3 keeps the times as
 * varints from `since`; records written by versions 1 and 2 still load.
 */
static void test_record_versions(void **state)
{
	struct alert a = fresh(), b;
	struct wbuf w, old;

	(void)state;
	a.state = ALERT_FIRING;
	a.since = T0;
	a.last_notified = T0 + DAY;
	a.active_since = T0 - 3 * DAY;
	a.values_at = T0 + 5;
	strcpy(a.summary, "cooling");
	a.values_json = strdup("{\"since(touch)\":2678400000}");
	wbuf_init(&w);
	assert_int_equal(alert_encode(&a, &w), 0);
	assert_int_equal(w.data[0], 3);
	memset(&b, 0, sizeof(b));
	assert_int_equal(alert_decode(w.data, w.len, &b), 0);
	assert_true(b.active_since == T0 - 3 * DAY);
	assert_true(b.values_at == T0 + 5);
	assert_true(b.last_notified == T0 + DAY && b.resolved_at == 0);

	for (int version = 1; version <= 2; version++) {
		wbuf_init(&old);
		put_fixed_width(&old, version, &a);
		b.active_since = b.values_at = 99;
		assert_int_equal(alert_decode(old.data, old.len, &b), 0);
		assert_int_equal(b.state, ALERT_FIRING);
		assert_true(b.since == T0 && b.last_notified == T0 + DAY);
		assert_string_equal(b.summary, "cooling");
		assert_string_equal(b.values_json, a.values_json);
		if (version == 1)
			assert_true(b.active_since == 0 && b.values_at == 0);
		else
			assert_true(b.active_since == T0 - 3 * DAY && b.values_at == T0 + 5);
		/* the varint form is the smaller by the most of its eight-byte times */
		assert_true(w.len + 20 < old.len || version == 1);
		/* version 2 cut before its two times is refused */
		if (version == 2)
			assert_int_equal(alert_decode(old.data, old.len - 16, &b), -1);
		wbuf_free(&old);
	}
	wbuf_free(&w);
	alert_clear(&a);
	alert_clear(&b);
}

static void test_to_json(void **state)
{
	struct alert a = fresh();
	struct json_object *o, *v;

	(void)state;
	a.state = ALERT_RESOLVED;
	a.since = T0;
	a.resolved_at = T0 + DAY;
	strcpy(a.summary, "s");
	a.values_json = strdup("{\"open(complaint)\":2}");
	o = alert_to_json(&a, "C1001", 5, "critical");
	assert_true(json_object_object_get_ex(o, "rule", &v));
	assert_string_equal(json_object_get_string(v), "customer_cooling");
	assert_true(json_object_object_get_ex(o, "customer", &v));
	assert_string_equal(json_object_get_string(v), "C1001");
	assert_true(json_object_object_get_ex(o, "severity", &v));
	assert_string_equal(json_object_get_string(v), "critical");
	assert_true(json_object_object_get_ex(o, "state", &v));
	assert_string_equal(json_object_get_string(v), "resolved");
	assert_true(json_object_object_get_ex(o, "since", &v));
	assert_string_equal(json_object_get_string(v), "2027-01-15T08:00:00.000Z");
	assert_true(json_object_object_get_ex(o, "resolved_at", &v));
	assert_string_equal(json_object_get_string(v), "2027-01-16T08:00:00.000Z");
	assert_true(json_object_object_get_ex(o, "acked", &v));
	assert_false(json_object_get_boolean(v));
	assert_false(json_object_object_get_ex(o, "acked_by", NULL));
	assert_true(json_object_object_get_ex(o, "values", &v));
	assert_true(json_object_object_get_ex(v, "open(complaint)", &v));
	assert_int_equal(json_object_get_int(v), 2);
	json_object_put(o);

	a.state = ALERT_FIRING;
	a.acked = 1;
	strcpy(a.acked_by, "li");
	o = alert_to_json(&a, "C1001", 5, "warning");
	assert_false(json_object_object_get_ex(o, "resolved_at", NULL));
	assert_true(json_object_object_get_ex(o, "acked_by", &v));
	assert_string_equal(json_object_get_string(v), "li");
	json_object_put(o);
	alert_clear(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_inactive_stays),
		cmocka_unit_test(test_inactive_to_firing_for_zero),
		cmocka_unit_test(test_pending_then_firing),
		cmocka_unit_test(test_pending_drops),
		cmocka_unit_test(test_repeat),
		cmocka_unit_test(test_acked_no_repeat),
		cmocka_unit_test(test_resolved_and_again),
		cmocka_unit_test(test_pending_never_resolves),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_record_versions),
		cmocka_unit_test(test_to_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
