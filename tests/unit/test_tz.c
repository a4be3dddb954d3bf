/*
 * src/common/tz.c: TZif files and POSIX TZ rules, against fixed instants (DST edges
 * both ways, southern hemisphere, numeric abbreviations) and against glibc's
 * localtime_r() over two centuries of instants in zones with odd offsets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hearth/tz.h"
#include "hearth/units.h"

static int64_t at(const char *rfc3339)
{
	int64_t ms;
	assert_int_equal(time_parse_rfc3339(rfc3339, strlen(rfc3339), &ms), 0);
	return ms;
}

static void expect(const struct tz *z, const char *when, unsigned flags, const char *want)
{
	char buf[TZ_BUF];
	tz_format(z, at(when), flags, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static int have_zone(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	return access(path, R_OK) == 0;
}

static void test_shanghai(void **state)
{
	(void)state;
	struct herr err;
	if (!have_zone("Asia/Shanghai"))
		skip();
	struct tz *z = tz_load("Asia/Shanghai", &err);
	assert_non_null(z);
	assert_string_equal(tz_name(z), "Asia/Shanghai");
	expect(z, "2026-12-01T13:58:25.583Z", 0, "2026-12-01 21:58");
	expect(z, "2026-12-01T13:58:25.583Z", TZ_FMT_ZONE, "2026-12-01 21:58 CST");
	expect(z, "2026-12-01T16:00:00Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-12-02 00:00:00 CST");
	tz_free(z);
	/* as $TZ writes it */
	assert_non_null(z = tz_load(":Asia/Shanghai", &err));
	tz_free(z);
}

static void test_new_york_edges(void **state)
{
	(void)state;
	struct herr err;
	if (!have_zone("America/New_York"))
		skip();
	struct tz *z = tz_load("America/New_York", &err);
	assert_non_null(z);
	expect(z, "2026-03-08T06:59:59Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-03-08 01:59:59 EST");
	expect(z, "2026-03-08T07:00:00Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-03-08 03:00:00 EDT");
	expect(z, "2026-11-01T05:59:59Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-11-01 01:59:59 EDT");
	expect(z, "2026-11-01T06:00:00Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-11-01 01:00:00 EST");
	/* past any table (2037 in "fat" files): the footer's rule */
	expect(z, "2099-07-04T16:00:00Z", TZ_FMT_ZONE, "2099-07-04 12:00 EDT");
	expect(z, "2099-12-25T17:00:00Z", TZ_FMT_ZONE, "2099-12-25 12:00 EST");
	tz_free(z);
}

static void test_posix_rules(void **state)
{
	(void)state;
	struct herr err;
	struct tz *z = tz_load("CET-1CEST,M3.5.0,M10.5.0/3", &err);

	assert_non_null(z);
	expect(z, "2026-03-29T00:59:59Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-03-29 01:59:59 CET");
	expect(z, "2026-03-29T01:00:00Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-03-29 03:00:00 CEST");
	expect(z, "2026-10-25T00:59:59Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-10-25 02:59:59 CEST");
	expect(z, "2026-10-25T01:00:00Z", TZ_FMT_ZONE | TZ_FMT_SECONDS, "2026-10-25 02:00:00 CET");
	tz_free(z);
	/* southern hemisphere: daylight time spans the new year */
	assert_non_null(z = tz_load("AEST-10AEDT,M10.1.0,M4.1.0/3", &err));
	expect(z, "2026-01-15T00:00:00Z", TZ_FMT_ZONE, "2026-01-15 11:00 AEDT");
	expect(z, "2026-07-01T00:00:00Z", TZ_FMT_ZONE, "2026-07-01 10:00 AEST");
	tz_free(z);
	/* a numeric abbreviation shows as an offset */
	assert_non_null(z = tz_load("<+0530>-5:30", &err));
	expect(z, "2026-12-01T13:58:00Z", TZ_FMT_ZONE, "2026-12-01 19:28 +05:30");
	tz_free(z);
	assert_non_null(z = tz_load("<-03>3", &err));
	expect(z, "2026-12-01T02:00:00Z", TZ_FMT_ZONE, "2026-11-30 23:00 -03:00");
	tz_free(z);
	/* before 1970 */
	assert_non_null(z = tz_load("CST-8", &err));
	expect(z, "1969-12-31T15:59:59Z", TZ_FMT_SECONDS, "1969-12-31 23:59:59");
	expect(z, "1969-12-31T16:00:00Z", TZ_FMT_SECONDS, "1970-01-01 00:00:00");
	tz_free(z);
}

static void test_errors_and_utc(void **state)
{
	(void)state;
	struct herr err;
	struct tz *z;

	assert_null(tz_load("Asia/Shangai", &err));
	assert_non_null(strstr(err.msg, "unknown time zone 'Asia/Shangai'"));
	assert_null(tz_load("../../etc/passwd", &err));
	assert_null(tz_load("Asia/../../../etc/passwd", &err));
	assert_null(tz_load("", &err));
	assert_null(tz_load("CST-8CDT,M13.1.0,M11.1.0", &err));  /* no 13th month */
	assert_null(tz_load("/etc/hostname", &err));            /* not TZif */
	/* UTC needs no tzdata */
	setenv("TZDIR", "/nonexistent", 1);
	assert_non_null(z = tz_load("UTC", &err));
	expect(z, "2026-12-01T13:58:25.583Z", TZ_FMT_ZONE, "2026-12-01 13:58 UTC");
	tz_free(z);
	unsetenv("TZDIR");
	expect(NULL, "2026-12-01T13:58:25.583Z", 0, "2026-12-01 13:58");
	/* the system's zone follows $TZ */
	setenv("TZ", "CST-8", 1);
	assert_non_null(z = tz_system());
	expect(z, "2026-12-01T13:58:25.583Z", 0, "2026-12-01 21:58");
	tz_free(z);
	unsetenv("TZ");
}

/* Every 3 days and 7 hours from 1901 to 2099, against glibc, in zones that are not whole hours. */
static void test_against_glibc(void **state)
{
	(void)state;
	static const char *const zones[] = {
		"Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Sydney",
		"America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns",
		"Australia/Lord_Howe", "Africa/Casablanca",
	};
	int tested = 0;

	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		struct herr err;
		struct tz *z;
		if (!have_zone(zones[i]))
			continue;
		assert_non_null(z = tz_load(zones[i], &err));
		setenv("TZ", zones[i], 1);
		tzset();
		for (int64_t t = -2177452800LL; t < 4102444800LL; t += 3 * 86400 + 7 * 3600 + 13) {
			struct tz_time mine;
			struct tm tm;
			time_t tt = (time_t)t;
			assert_non_null(localtime_r(&tt, &tm));
			tz_local(z, t * 1000, &mine);
			if (mine.utoff != tm.tm_gmtoff || mine.hour != tm.tm_hour || mine.mday != tm.tm_mday ||
			    strcmp(mine.abbr, tm.tm_zone) != 0 || mine.isdst != (tm.tm_isdst > 0))
				fail_msg("%s at %lld: %d %s %02d:%02d, glibc %ld %s %02d:%02d", zones[i],
					 (long long)t, mine.utoff, mine.abbr, mine.hour, mine.min,
					 tm.tm_gmtoff, tm.tm_zone, tm.tm_hour, tm.tm_min);
		}
		tz_free(z);
		tested++;
	}
	unsetenv("TZ");
	if (!tested)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shanghai),
		cmocka_unit_test(test_new_york_edges),
		cmocka_unit_test(test_posix_rules),
		cmocka_unit_test(test_errors_and_utc),
		cmocka_unit_test(test_against_glibc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
