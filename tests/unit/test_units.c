/*
 * units.h: RFC 3339 times, durations and sizes as PROTOCOL.md §1 writes them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hearth/units.h"

/* 2026-11-20T02:00:00Z, the example instant of PROTOCOL.md §1.1. */
#define SPEC_MS 1795140000000LL

static int parse(const char *s, int64_t *ms)
{
	*ms = 12345; /* a sentinel that no test expects */
	return time_parse_rfc3339(s, strlen(s), ms);
}

static int64_t parse_ok(const char *s)
{
	int64_t ms;

	if (parse(s, &ms) != 0)
		fail_msg("'%s' should parse", s);
	return ms;
}

static void assert_time_rejected(const char *s)
{
	int64_t ms;

	if (parse(s, &ms) != -1)
		fail_msg("'%s' should be rejected, got %lld", s, (long long)ms);
}

static void test_rfc3339_zones(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2026-11-20T02:00:00Z"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20T02:00:00z"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20t02:00:00Z"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20T10:00:00+08:00"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-19T20:30:00-05:30"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20T02:00:00+00:00"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20T02:00:00-00:00"), SPEC_MS);
	/* an offset crossing a month boundary */
	assert_int_equal(parse_ok("2026-03-01T11:00:00+05:30"), 1772343000000LL);
}

static void test_rfc3339_fraction(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2026-11-20T02:00:00.5Z"), SPEC_MS + 500);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.12Z"), SPEC_MS + 120);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.123Z"), SPEC_MS + 123);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.1239Z"), SPEC_MS + 123);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.98765Z"), SPEC_MS + 987);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.000001Z"), SPEC_MS);
	assert_int_equal(parse_ok("2026-11-20T02:00:00.123456789Z"), SPEC_MS + 123);
	assert_int_equal(parse_ok("2026-11-20T10:00:00.250+08:00"), SPEC_MS + 250);
	assert_time_rejected("2026-11-20T02:00:00.Z");
	assert_time_rejected("2026-11-20T02:00:00,5Z");
}

static void test_rfc3339_calendar(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800000LL);
	assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), 951825600000LL);
	assert_int_equal(parse_ok("2024-12-31T23:59:59Z") - parse_ok("2024-01-01T00:00:00Z"),
			 (366 * MS_PER_DAY) - 1000);
	assert_time_rejected("2026-02-29T00:00:00Z");  /* not a leap year */
	assert_time_rejected("1900-02-29T00:00:00Z");  /* century, not a leap year */
	assert_time_rejected("2026-13-01T00:00:00Z");
	assert_time_rejected("2026-00-01T00:00:00Z");
	assert_time_rejected("2026-04-31T00:00:00Z");
	assert_time_rejected("2026-01-00T00:00:00Z");
	assert_time_rejected("2026-01-01T24:00:00Z");
	assert_time_rejected("2026-01-01T00:60:00Z");
	assert_time_rejected("2026-01-01T00:00:61Z");
	/* a leap second is held at :59 rather than refused */
	assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2016-12-31T23:59:59Z"));
}

static void test_rfc3339_pre_1970(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("1969-07-20T20:17:40Z"), -14182940000LL);
	assert_int_equal(parse_ok("1900-01-01T00:00:00Z"), -2208988800000LL);
	assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
	assert_int_equal(parse_ok("1970-01-01T07:59:59.999+08:00"), -1);
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), -62135596800000LL);
}

static void test_rfc3339_rejects(void **state)
{
	(void)state;
	assert_time_rejected("");
	assert_time_rejected("2026-11-20T02:00:00");            /* no offset */
	assert_time_rejected("2026-11-20T02:00:00.123");        /* no offset */
	assert_time_rejected("2026-11-20T02:00:00Zjunk");
	assert_time_rejected("2026-11-20T02:00:00Z ");
	assert_time_rejected("2026-11-20T10:00:00+08:00x");
	assert_time_rejected("2026-11-20T10:00:00+0800");
	assert_time_rejected("2026-11-20T10:00:00+08");
	assert_time_rejected("2026-11-20T10:00:00+24:00");
	assert_time_rejected("2026-11-20T10:00:00+08:60");
	assert_time_rejected("2026-11-20");
	assert_time_rejected("2026-11-20T10:00Z");
	assert_time_rejected("26-11-20T10:00:00Z");
	assert_time_rejected("2026/11/20T10:00:00Z");
	assert_time_rejected("2026-1-20T10:00:00Z");
	assert_time_rejected("+2026-11-20T10:00:00Z");
	assert_time_rejected("1795140000000");
}

static void test_rfc3339_honours_len(void **state)
{
	const char *s = "2026-11-20T02:00:00Z and then some";
	int64_t ms = 0;

	(void)state;
	assert_int_equal(time_parse_rfc3339(s, 20, &ms), 0);
	assert_int_equal(ms, SPEC_MS);
	assert_int_equal(time_parse_rfc3339(s, 19, &ms), -1);   /* offset cut off */
	assert_int_equal(time_parse_rfc3339(s, 21, &ms), -1);   /* trailing space */
}

static void assert_format(int64_t ms, const char *want)
{
	char buf[TIME_BUF];

	assert_ptr_equal(time_format(ms, buf, sizeof(buf)), buf);
	assert_string_equal(buf, want);
}

static void test_time_format_exact(void **state)
{
	(void)state;
	assert_format(parse_ok("2026-11-20T10:00:00+08:00"), "2026-11-20T02:00:00.000Z");
	assert_format(SPEC_MS + 7, "2026-11-20T02:00:00.007Z");
	assert_format(0, "1970-01-01T00:00:00.000Z");
	assert_format(-1, "1969-12-31T23:59:59.999Z");
	assert_format(-MS_PER_DAY, "1969-12-31T00:00:00.000Z");
	assert_format(-MS_PER_DAY - 1, "1969-12-30T23:59:59.999Z");
	assert_format(-14182940000LL, "1969-07-20T20:17:40.000Z");
	assert_format(-2208988800000LL, "1900-01-01T00:00:00.000Z");
	assert_format(1709164800000LL + MS_PER_DAY - 1, "2024-02-29T23:59:59.999Z");
	assert_format(-62135596800000LL, "0001-01-01T00:00:00.000Z");
}

static void test_time_format_round_trip(void **state)
{
	static const int64_t samples[] = {
		0, 1, -1, 999, -999, 1000, -1000, SPEC_MS, SPEC_MS + 123, -14182940000LL,
		951825600000LL, 4102444799999LL /* 2099-12-31T23:59:59.999Z */,
		-2208988800001LL, 253402300799999LL /* 9999-12-31T23:59:59.999Z */,
	};
	char buf[TIME_BUF];

	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		time_format(samples[i], buf, sizeof(buf));
		assert_int_equal(strlen(buf), 24);
		assert_int_equal(parse_ok(buf), samples[i]);
	}
	/* every millisecond offset within a day, sampled, both sides of the epoch */
	for (int64_t ms = -3 * MS_PER_DAY; ms < 3 * MS_PER_DAY; ms += 7777777) {
		time_format(ms, buf, sizeof(buf));
		assert_int_equal(parse_ok(buf), ms);
	}
}

/* The hand-written formatting says what printf would, outside the years it covers too. */
static void test_time_format_as_printf(void **state)
{
	static const int64_t edges[] = {
		-62135596800001LL /* year 0 */, -62167219200001LL /* year -1 */,
		253402300800000LL /* year 10000 */, INT64_MAX / 4, INT64_MIN / 4,
	};
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	char got[TIME_BUF], want[TIME_BUF];

	(void)state;
	for (int i = 0; i < 20000 + (int)(sizeof(edges) / sizeof(edges[0])); i++) {
		int64_t ms;
		if (i < (int)(sizeof(edges) / sizeof(edges[0]))) {
			ms = edges[i];
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			ms = (int64_t)(x % 600000000000000ULL) - 300000000000000LL;
		}
		int64_t days = ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
		int64_t rem = ms - days * MS_PER_DAY, y;
		int m, d;
		civil_from_days(days, &y, &m, &d);
		snprintf(want, sizeof(want), "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
			 (int)(rem / MS_PER_HOUR), (int)(rem / MS_PER_MINUTE % 60),
			 (int)(rem / MS_PER_SECOND % 60), (int)(rem % 1000));
		time_format(ms, got, sizeof(got));
		assert_string_equal(got, want);
	}
	/* a buffer too small is cut, never overrun */
	memset(got, 'x', sizeof(got));
	time_format(SPEC_MS, got, 10);
	assert_string_equal(got, "2026-11-2");
	assert_int_equal(got[10], 'x');
}

static void test_i64_text(void **state)
{
	static const int64_t edges[] = { 0, 1, -1, 9, 10, -10, 99, 100, INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	uint64_t x = 88172645463325252ULL;
	char got[I64_TEXT + 1], want[32];

	(void)state;
	for (int i = 0; i < 20000; i++) {
		int64_t v;
		if (i < (int)(sizeof(edges) / sizeof(edges[0]))) {
			v = edges[i];
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			v = (int64_t)x >> (x % 63); /* every magnitude, both signs */
		}
		got[i64_text(v, got)] = '\0';
		snprintf(want, sizeof(want), "%lld", (long long)v);
		assert_string_equal(got, want);
	}
}

static int64_t dur_ok(const char *s)
{
	int64_t ms = -12345;

	if (duration_parse(s, strlen(s), &ms) != 0)
		fail_msg("duration '%s' should parse", s);
	return ms;
}

static void assert_duration_rejected(const char *s)
{
	int64_t ms = -12345;

	if (duration_parse(s, strlen(s), &ms) != -1)
		fail_msg("duration '%s' should be rejected, got %lld", s, (long long)ms);
	assert_int_equal(ms, -12345); /* untouched on failure */
}

static void test_duration_parse(void **state)
{
	(void)state;
	assert_int_equal(dur_ok("500ms"), 500);
	assert_int_equal(dur_ok("90s"), 90000);
	assert_int_equal(dur_ok("15m"), 15 * MS_PER_MINUTE);
	assert_int_equal(dur_ok("12h"), 12 * MS_PER_HOUR);
	assert_int_equal(dur_ok("30d"), 30 * MS_PER_DAY);
	assert_int_equal(dur_ok("2w"), 14 * MS_PER_DAY);
	assert_int_equal(dur_ok("1d12h"), 36 * MS_PER_HOUR);
	assert_int_equal(dur_ok("1h30m15s250ms"), MS_PER_HOUR + 30 * MS_PER_MINUTE + 15250);
	assert_int_equal(dur_ok("0s"), 0);
	assert_int_equal(dur_ok("0"  "ms"), 0);
	assert_duration_rejected("");
	assert_duration_rejected("30x");
	assert_duration_rejected("d");
	assert_duration_rejected("-1s");
	assert_duration_rejected("30");
	assert_duration_rejected("30 d");
	assert_duration_rejected("1d 12h");
	assert_duration_rejected("1.5h");
	assert_duration_rejected("30D");
	assert_duration_rejected("1d12");
	assert_duration_rejected("9999999999999999999d");
	assert_duration_rejected("99999999999999999999ms");
	/* each term fits but their sum does not */
	assert_duration_rejected("9223372036854775000ms1s");
}

static void test_duration_limits(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(dur_ok("15250w"), 15250 * 7 * MS_PER_DAY);
	/* 106751991167 days fit in int64 ms, 106751991168 do not */
	assert_int_equal(dur_ok("106751991167d"), 106751991167LL * MS_PER_DAY);
	assert_duration_rejected("106751991168d");
	/* the parser honours len, not the NUL */
	assert_int_equal(duration_parse("90sXYZ", 3, &ms), 0);
	assert_int_equal(ms, 90000);
}

static void assert_duration_format(int64_t ms, const char *want)
{
	char buf[64];

	assert_ptr_equal(duration_format(ms, buf, sizeof(buf)), buf);
	assert_string_equal(buf, want);
}

static void test_duration_format(void **state)
{
	(void)state;
	assert_duration_format(31 * MS_PER_DAY, "31d");
	assert_duration_format(2 * MS_PER_DAY + 4 * MS_PER_HOUR, "2d 4h");
	assert_duration_format(250, "250ms");
	assert_duration_format(90 * MS_PER_SECOND, "1m 30s");
	assert_duration_format(0, "0ms");
	assert_duration_format(1000, "1s");
	assert_duration_format(15 * MS_PER_MINUTE + 3000, "15m 3s");
	/* two most significant units: a zero middle unit still counts as one */
	assert_duration_format(2 * MS_PER_DAY + 5 * MS_PER_MINUTE, "2d");
	assert_duration_format(31 * MS_PER_DAY + 2 * MS_PER_HOUR + 59 * MS_PER_MINUTE, "31d 2h");
	assert_duration_format(-5000, "-5s");
	assert_duration_format(-250, "-250ms");
	assert_duration_format(INT64_MIN, "-106751991167d 7h");
	/* what duration_format writes, duration_parse reads back (without the space) */
	assert_int_equal(dur_ok("2d4h"), 2 * MS_PER_DAY + 4 * MS_PER_HOUR);
}

/* A buffer too small gets what fits, terminated, as snprintf would cut it. */
static void test_duration_format_cut(void **state)
{
	static const int64_t values[] = { 250, -250, 31 * MS_PER_DAY + 2 * MS_PER_HOUR, -90 * MS_PER_SECOND };
	char full[64], buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		duration_format(values[i], full, sizeof(full));
		for (size_t size = 1; size <= strlen(full) + 1; size++) {
			memset(buf, 'x', sizeof(buf));
			duration_format(values[i], buf, size);
			assert_int_equal(strlen(buf), size - 1);
			assert_memory_equal(buf, full, size - 1);
		}
	}
}

static uint64_t size_ok(const char *s)
{
	uint64_t n = 12345;

	if (size_parse(s, strlen(s), &n) != 0)
		fail_msg("size '%s' should parse", s);
	return n;
}

static void assert_size_rejected(const char *s)
{
	uint64_t n = 12345;

	if (size_parse(s, strlen(s), &n) != -1)
		fail_msg("size '%s' should be rejected, got %llu", s, (unsigned long long)n);
	assert_int_equal(n, 12345);
}

static void test_size_parse(void **state)
{
	(void)state;
	assert_int_equal(size_ok("64MiB"), 64ULL << 20);
	assert_int_equal(size_ok("1GiB"), 1ULL << 30);
	assert_int_equal(size_ok("4096"), 4096);
	assert_int_equal(size_ok("4096B"), 4096);
	assert_int_equal(size_ok("8KiB"), 8192);
	assert_int_equal(size_ok("64GiB"), 64ULL << 30);
	assert_int_equal(size_ok("2TiB"), 2ULL << 40);
	assert_int_equal(size_ok("5MB"), 5000000);
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("16777215TiB"), 16777215ULL << 40);
	assert_size_rejected("64XB");
	assert_size_rejected("");
	assert_size_rejected("MiB");
	assert_size_rejected("64 MiB");
	assert_size_rejected("64mib");
	assert_size_rejected("-1");
	assert_size_rejected("1.5GiB");
	assert_size_rejected("99999999999999999999");     /* > UINT64_MAX */
	assert_size_rejected("16777216TiB");              /* 2^64 */
	assert_size_rejected("18446744073709551616");     /* 2^64 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339_zones),
		cmocka_unit_test(test_rfc3339_fraction),
		cmocka_unit_test(test_rfc3339_calendar),
		cmocka_unit_test(test_rfc3339_pre_1970),
		cmocka_unit_test(test_rfc3339_rejects),
		cmocka_unit_test(test_rfc3339_honours_len),
		cmocka_unit_test(test_time_format_exact),
		cmocka_unit_test(test_time_format_round_trip),
		cmocka_unit_test(test_time_format_as_printf),
		cmocka_unit_test(test_i64_text),
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_duration_limits),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_duration_format_cut),
		cmocka_unit_test(test_size_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
