/*
 * Times, durations and sizes (PROTOCOL.md §1). Parsed by hand because the formats are
 * tiny and strptime() is both locale-bound and too lax for input validation.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hearth/units.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 ? 28 + leap : days[m - 1];
}

/* Reads exactly n digits at *p. */
static int read_digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;

	if (end - *p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int expect_char(const char **p, const char *end, const char *accepted)
{
	if (*p >= end || !strchr(accepted, **p) || **p == '\0')
		return -1;
	(*p)++;
	return 0;
}

int time_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
	const char *p = s, *end = s + len;
	int year, mon, day, hour, min, sec, frac_ms = 0;
	int64_t offset_min = 0;

	if (read_digits(&p, end, 4, &year) || expect_char(&p, end, "-") ||
	    read_digits(&p, end, 2, &mon) || expect_char(&p, end, "-") ||
	    read_digits(&p, end, 2, &day) || expect_char(&p, end, "Tt ") ||
	    read_digits(&p, end, 2, &hour) || expect_char(&p, end, ":") ||
	    read_digits(&p, end, 2, &min) || expect_char(&p, end, ":") ||
	    read_digits(&p, end, 2, &sec))
		return -1;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 60)
		return -1;
	if (p < end && *p == '.') {
		int digits = 0;
		p++;
		while (p < end && *p >= '0' && *p <= '9') {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		if (digits == 0)
			return -1;
		for (int i = digits; i < 3; i++)
			frac_ms *= 10;
	}
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (read_digits(&p, end, 2, &oh) || expect_char(&p, end, ":") ||
		    read_digits(&p, end, 2, &om) || oh > 23 || om > 59)
			return -1;
		offset_min = sign * (oh * 60 + om);
	} else {
		return -1;
	}
	if (p != end)
		return -1;
	if (sec == 60)
		sec = 59; /* a leap second is held at :59.999 rather than refused */
	int64_t days = days_from_civil(year, mon, day);
	*ms = ((days * 24 + hour) * 60 + min - offset_min) * MS_PER_MINUTE +
	      sec * MS_PER_SECOND + frac_ms;
	return 0;
}

/* v in exactly n digits, zero-padded (v < 10^n); the end. */
static char *put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

char *time_format(int64_t ms, char *buf, size_t size)
{
	int64_t days = ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
	int64_t rem = ms - days * MS_PER_DAY, y;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999 || size < 25) {
		snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
			 (int)(rem / MS_PER_HOUR), (int)(rem / MS_PER_MINUTE % 60),
			 (int)(rem / MS_PER_SECOND % 60), (int)(rem % 1000));
		return buf;
	}
	/* by hand: every time a firing alert shows is formatted at each of its evaluations */
	char *p = buf;
	p = put_digits(p, (unsigned)y, 4);
	*p++ = '-';
	p = put_digits(p, (unsigned)m, 2);
	*p++ = '-';
	p = put_digits(p, (unsigned)d, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned)(rem / MS_PER_HOUR), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(rem / MS_PER_MINUTE % 60), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(rem / MS_PER_SECOND % 60), 2);
	*p++ = '.';
	p = put_digits(p, (unsigned)(rem % 1000), 3);
	*p++ = 'Z';
	*p = '\0';
	return buf;
}

size_t i64_text(int64_t v, char *out)
{
	char tmp[I64_TEXT], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	size_t n;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	n = (size_t)(tmp + sizeof(tmp) - p);
	memcpy(out, p, n);
	return n;
}

struct unit { const char *name; int64_t ms; };

static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", MS_PER_SECOND }, { "m", MS_PER_MINUTE }, { "h", MS_PER_HOUR },
	{ "d", MS_PER_DAY }, { "w", 7 * MS_PER_DAY },
};

int duration_parse(const char *s, size_t len, int64_t *ms)
{
	const char *p = s, *end = s + len;
	int64_t total = 0;

	if (len == 0)
		return -1;
	while (p < end) {
		int64_t n = 0;
		const char *digits = p;
		while (p < end && *p >= '0' && *p <= '9') {
			if (n > (INT64_MAX - 9) / 10)
				return -1;
			n = n * 10 + (*p++ - '0');
		}
		if (p == digits)
			return -1;
		const char *unit = p;
		while (p < end && isalpha((unsigned char)*p))
			p++;
		const struct unit *u = NULL;
		for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
			if (strlen(duration_units[i].name) == (size_t)(p - unit) &&
			    memcmp(unit, duration_units[i].name, (size_t)(p - unit)) == 0)
				u = &duration_units[i];
		if (!u || n > (INT64_MAX - total) / u->ms)
			return -1;
		total += n * u->ms;
	}
	*ms = total;
	return 0;
}

/* s[0..n) put at buf + off as snprintf would (cut to fit, terminated); off + n, as it returns. */
static size_t put_text(char *buf, size_t size, size_t off, const char *s, size_t n)
{
	if (off < size) {
		size_t room = size - off - 1, k = n < room ? n : room;
		memcpy(buf + off, s, k);
		buf[off + k] = '\0';
	}
	return off + n;
}

char *duration_format(int64_t ms, char *buf, size_t size)
{
	static const struct unit parts[] = {
		{ "d", MS_PER_DAY }, { "h", MS_PER_HOUR }, { "m", MS_PER_MINUTE },
		{ "s", MS_PER_SECOND },
	};
	char digits[I64_TEXT];
	size_t off = 0;
	int shown = 0;
	uint64_t rest;

	/* by hand: the durations a firing alert's summary shows are formatted at each of its evaluations */
	if (ms < 0) {
		off = put_text(buf, size, off, "-", 1);
		rest = (uint64_t)(-(ms + 1)) + 1;
	} else {
		rest = (uint64_t)ms;
	}
	if (rest < 1000) {
		off = put_text(buf, size, off, digits, i64_text((int64_t)rest, digits));
		put_text(buf, size, off, "ms", 2);
		return buf;
	}
	/* Two most significant units read best in a chat message ("31d 2h"). */
	for (size_t i = 0; i < 4 && shown < 2 && off < size; i++) {
		uint64_t n = rest / (uint64_t)parts[i].ms;
		if (n == 0 && shown == 0)
			continue;
		rest -= n * (uint64_t)parts[i].ms;
		if (n == 0) {
			shown++;
			continue;
		}
		if (shown)
			off = put_text(buf, size, off, " ", 1);
		off = put_text(buf, size, off, digits, i64_text((int64_t)n, digits));
		off = put_text(buf, size, off, parts[i].name, strlen(parts[i].name));
		shown++;
	}
	return buf;
}

int size_parse(const char *s, size_t len, uint64_t *bytes)
{
	static const struct { const char *name; uint64_t mult; } units[] = {
		{ "", 1 }, { "B", 1 }, { "KiB", 1ULL << 10 }, { "MiB", 1ULL << 20 },
		{ "GiB", 1ULL << 30 }, { "TiB", 1ULL << 40 }, { "KB", 1000ULL },
		{ "MB", 1000000ULL }, { "GB", 1000000000ULL }, { "TB", 1000000000000ULL },
	};
	const char *p = s, *end = s + len;
	uint64_t n = 0;

	while (p < end && *p >= '0' && *p <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p++ - '0');
	}
	if (p == s)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].name) == (size_t)(end - p) &&
		    memcmp(p, units[i].name, (size_t)(end - p)) == 0) {
			if (n > UINT64_MAX / units[i].mult)
				return -1;
			*bytes = n * units[i].mult;
			return 0;
		}
	}
	return -1;
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
