/*
 * Time zones: a reader of TZif files (RFC 8536) and of the POSIX TZ rule that
 * ends them (used past the last transition, and on its own for "CST-8").
 *
 * Why not localtime_r(): the relay shows each target's times in that target's
 * zone, and switching the process-wide TZ between targets would race the
 * resolver threads of libcurl, which read the environment; and glibc takes an
 * unknown zone name silently for UTC, where a config must refuse it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hearth/tz.h"
#include "hearth/units.h"

#define TZIF_MAX   (1 << 20)        /* real files are under 4 KiB */
#define NAME_MAX_LEN 255

struct tz_date {
	char kind;                      /* 'J': Jn (no Feb 29), 'D': n (0-based), 'M': Mm.w.d */
	int m, w, d, n;
	int32_t time;                   /* seconds after local midnight; may be <0 or >24h */
};

struct tz_rule {
	char std[TZ_ABBR_MAX], dst[TZ_ABBR_MAX];
	int32_t std_off, dst_off;       /* seconds east of UTC */
	int has_dst;
	struct tz_date start, end;
};

struct tz_type {
	int32_t utoff;
	int isdst;
	char abbr[TZ_ABBR_MAX];
};

struct tz {
	char *name;
	int64_t *trans;                 /* transition instants, unix seconds, ascending */
	uint8_t *idx;                   /* the type in force from each transition on */
	size_t ntrans;
	struct tz_type *types;
	size_t ntypes;
	int has_rule;
	struct tz_rule rule;
};


static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 ? 28 + is_leap(y) : days[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* ---- POSIX TZ rules ---------------------------------------------------------------- */

/* "CST" (3+ letters) or "<+08>" (quoted: letters, digits, + and -). */
static const char *parse_abbr(const char *p, char *out)
{
	size_t n = 0;

	if (*p == '<') {
		for (p++; *p && *p != '>'; p++) {
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= '0' && *p <= '9') || *p == '+' || *p == '-') || n + 1 >= TZ_ABBR_MAX)
				return NULL;
			out[n++] = *p;
		}
		if (*p != '>')
			return NULL;
		p++;
	} else {
		for (; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'); p++) {
			if (n + 1 >= TZ_ABBR_MAX)
				return NULL;
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return n >= 3 ? p : NULL;
}

/* [+-]h[h[h]][:mm[:ss]], hours up to max_h; seconds into *secs. */
static const char *parse_hms(const char *p, int max_h, int32_t *secs)
{
	int sign = 1, h = 0, mi = 0, s = 0, digits = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	while (*p >= '0' && *p <= '9' && digits < 3) {
		h = h * 10 + (*p++ - '0');
		digits++;
	}
	if (!digits || h > max_h)
		return NULL;
	if (*p == ':') {
		p++;
		if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'))
			return NULL;
		mi = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
		if (*p == ':') {
			p++;
			if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'))
				return NULL;
			s = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
	}
	*secs = sign * (h * 3600 + mi * 60 + s);
	return p;
}

static const char *parse_int(const char *p, int lo, int hi, int *out)
{
	int v = 0, digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 4) {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (!digits || v < lo || v > hi)
		return NULL;
	*out = v;
	return p;
}

static const char *parse_date(const char *p, struct tz_date *d)
{
	d->time = 2 * 3600;
	if (*p == 'J') {
		d->kind = 'J';
		p = parse_int(p + 1, 1, 365, &d->n);
	} else if (*p == 'M') {
		d->kind = 'M';
		if (!(p = parse_int(p + 1, 1, 12, &d->m)) || *p++ != '.' ||
		    !(p = parse_int(p, 1, 5, &d->w)) || *p++ != '.')
			return NULL;
		p = parse_int(p, 0, 6, &d->d);
	} else {
		d->kind = 'D';
		p = parse_int(p, 0, 365, &d->n);
	}
	if (p && *p == '/')
		p = parse_hms(p + 1, 167, &d->time);
	return p;
}

static int rule_parse(const char *s, struct tz_rule *r)
{
	const char *p = s;
	int32_t off;

	memset(r, 0, sizeof(*r));
	if (!(p = parse_abbr(p, r->std)) || !(p = parse_hms(p, 24, &off)))
		return -1;
	r->std_off = -off;              /* POSIX counts west of Greenwich as positive */
	if (!*p)
		return 0;
	if (!(p = parse_abbr(p, r->dst)))
		return -1;
	r->has_dst = 1;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = parse_hms(p, 24, &off)))
			return -1;
		r->dst_off = -off;
	}
	if (!*p) {
		/* no rule given: the US rule, as glibc assumes */
		r->start = (struct tz_date){ 'M', 3, 2, 0, 0, 2 * 3600 };
		r->end = (struct tz_date){ 'M', 11, 1, 0, 0, 2 * 3600 };
		return 0;
	}
	if (*p++ != ',' || !(p = parse_date(p, &r->start)) || *p++ != ',' ||
	    !(p = parse_date(p, &r->end)) || *p)
		return -1;
	return 0;
}

/* Unix seconds of the local midnight (read as UTC) starting the rule's day in year y. */
static int64_t rule_day(const struct tz_date *d, int64_t y)
{
	int64_t days;

	if (d->kind == 'J') {
		days = days_from_civil(y, 1, 1) + d->n - 1 + (is_leap(y) && d->n >= 60);
	} else if (d->kind == 'D') {
		days = days_from_civil(y, 1, 1) + d->n;
	} else {
		int64_t first = days_from_civil(y, d->m, 1);
		int wday = (int)((first % 7 + 7 + 4) % 7);   /* 1970-01-01 was a Thursday */
		int mday = 1 + (d->d - wday + 7) % 7 + (d->w - 1) * 7;
		while (mday > month_days(y, d->m))
			mday -= 7;
		days = first + mday - 1;
	}
	return days * 86400;
}

static void rule_at(const struct tz_rule *r, int64_t t, struct tz_time *out)
{
	int dst = 0;

	if (r->has_dst) {
		int64_t y;
		int m, d;
		civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
		/* a start given in standard time, an end in daylight time */
		int64_t start = rule_day(&r->start, y) + r->start.time - r->std_off;
		int64_t end = rule_day(&r->end, y) + r->end.time - r->dst_off;
		dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
	}
	out->utoff = dst ? r->dst_off : r->std_off;
	out->isdst = dst;
	snprintf(out->abbr, sizeof(out->abbr), "%s", dst ? r->dst : r->std);
}

/* ---- TZif -------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static int read_header(const unsigned char *p, size_t left, struct tzif_counts *c)
{
	if (left < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	/* bounds that also keep the block size below from overflowing */
	if (c->type == 0 || c->type > 256 || c->chars == 0 || c->time > 100000 || c->leap > 10000 ||
	    c->isut > 256 || c->isstd > 256 || c->chars > 4096)
		return -1;
	return 0;
}

static size_t block_size(const struct tzif_counts *c, size_t tsize)
{
	return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) +
	       c->isstd + c->isut;
}

static int parse_tzif(struct tz *z, const unsigned char *buf, size_t len)
{
	struct tzif_counts c;
	const unsigned char *p = buf, *end = buf + len;
	size_t tsize = 4;

	if (read_header(p, len, &c) < 0)
		return -1;
	if (buf[4] >= '2') {
		/* version 2+: skip the 32-bit block for the 64-bit one that follows */
		p += 44 + block_size(&c, 4);
		if (p > end || read_header(p, (size_t)(end - p), &c) < 0)
			return -1;
		tsize = 8;
	}
	p += 44;
	if ((size_t)(end - p) < block_size(&c, tsize))
		return -1;
	z->trans = calloc(c.time ? c.time : 1, sizeof(*z->trans));
	z->idx = calloc(c.time ? c.time : 1, 1);
	z->types = calloc(c.type, sizeof(*z->types));
	if (!z->trans || !z->idx || !z->types)
		return -1;
	z->ntrans = c.time;
	z->ntypes = c.type;
	for (size_t i = 0; i < c.time; i++, p += tsize)
		z->trans[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
	for (size_t i = 0; i < c.time; i++) {
		if ((z->idx[i] = *p++) >= c.type)
			return -1;
		if (i && z->trans[i] <= z->trans[i - 1])
			return -1;
	}
	const unsigned char *types = p, *chars = p + c.type * 6;
	for (size_t i = 0; i < c.type; i++) {
		const unsigned char *t = types + i * 6;
		z->types[i].utoff = (int32_t)be32(t);
		z->types[i].isdst = t[4] != 0;
		if (t[5] >= c.chars || z->types[i].utoff < -25 * 3600 || z->types[i].utoff > 26 * 3600)
			return -1;
		size_t n = strnlen((const char *)chars + t[5], c.chars - t[5]);
		snprintf(z->types[i].abbr, sizeof(z->types[i].abbr), "%.*s", (int)n, chars + t[5]);
	}
	p += block_size(&c, tsize) - c.time * tsize - c.time;
	/* the footer: "\n<POSIX TZ>\n"; empty means no rule past the last transition */
	if (tsize == 8 && p < end && *p == '\n') {
		const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		char footer[128];
		if (nl && nl > p + 1 && (size_t)(nl - p - 1) < sizeof(footer)) {
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			z->has_rule = rule_parse(footer, &z->rule) == 0;
		}
	}
	return 0;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TZIF_MAX)
		goto out;
	if (!(buf = malloc((size_t)st.st_size)))
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- loading ----------------------------------------------------------------------- */

void tz_free(struct tz *z)
{
	if (!z)
		return;
	free(z->name);
	free(z->trans);
	free(z->idx);
	free(z->types);
	free(z);
}

static struct tz *tz_new(const char *name)
{
	struct tz *z = calloc(1, sizeof(*z));

	if (z && !(z->name = strdup(name))) {
		free(z);
		return NULL;
	}
	return z;
}

static struct tz *tz_from_file(const char *name, const char *path)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	struct tz *z = NULL;

	if (read_file(path, &buf, &len) < 0)
		return NULL;
	if (!(z = tz_new(name)) || parse_tzif(z, buf, len) < 0) {
		tz_free(z);
		z = NULL;
	}
	free(buf);
	return z;
}

static struct tz *tz_from_rule(const char *name, const char *rule)
{
	struct tz *z = tz_new(name);

	if (z && rule_parse(rule, &z->rule) < 0) {
		tz_free(z);
		return NULL;
	}
	if (z)
		z->has_rule = 1;
	return z;
}

/* An IANA name: letters, digits, _ + - and '/' between parts, none of them "." or "..". */
static int valid_zone_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '/' || s[n - 1] == '/' || strstr(s, "//"))
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      strchr("_+-/.", *p)))
			return 0;
	return strncmp(s, "./", 2) && strncmp(s, "../", 3) && !strstr(s, "/./") && !strstr(s, "/../") &&
	       strcmp(s, ".") && strcmp(s, "..");
}

struct tz *tz_load(const char *name, struct herr *err)
{
	const char *dir = getenv("TZDIR");
	char path[4096];
	struct tz *z;

	if (name && *name == ':')
		name++;
	if (!name || !*name) {
		herr_set(err, HERR_CONFIG_ERROR, "empty time zone name");
		return NULL;
	}
	if (name[0] == '/') {
		if (!(z = tz_from_file(name, name)))
			herr_set(err, HERR_CONFIG_ERROR, "time zone file '%s' cannot be read as a TZif file", name);
		return z;
	}
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	if (valid_zone_name(name)) {
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if ((z = tz_from_file(name, path)))
			return z;
	}
	/* UTC needs no file: containers often come without tzdata */
	if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC") || !strcmp(name, "GMT") || !strcmp(name, "Z"))
		return tz_from_rule(name, "UTC0");
	if (strpbrk(name, "0123456789") && (z = tz_from_rule(name, name)))
		return z;
	herr_set(err, HERR_CONFIG_ERROR,
		 "unknown time zone '%s' (not under %s, and not a POSIX TZ string such as CST-8)", name, dir);
	return NULL;
}

struct tz *tz_system(void)
{
	const char *env = getenv("TZ");
	struct tz *z = NULL;
	char link[4096];
	ssize_t n;

	if (env && *env && (z = tz_load(env, NULL)))
		return z;
	/* the name /etc/localtime links to reads better in a message than "localtime" */
	n = readlink("/etc/localtime", link, sizeof(link) - 1);
	const char *name = "localtime";
	if (n > 0) {
		link[n] = '\0';
		const char *p = strstr(link, "zoneinfo/");
		if (p)
			name = p + strlen("zoneinfo/");
	}
	if ((z = tz_from_file(name, "/etc/localtime")))
		return z;
	return tz_from_rule("UTC", "UTC0");
}

const char *tz_name(const struct tz *z)
{
	return z ? z->name : "UTC";
}

void tz_local(const struct tz *z, int64_t ms, struct tz_time *out)
{
	int64_t t = floor_div(ms, 1000), days, rem, y;
	int m, d;

	memset(out, 0, sizeof(*out));
	snprintf(out->abbr, sizeof(out->abbr), "UTC");
	const struct tz_type *ty = NULL;
	if (!z) {
		/* UTC */
	} else if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		/* past the table: the footer's rule, else the last type in force */
		if (z->has_rule)
			rule_at(&z->rule, t, out);
		else
			ty = &z->types[z->ntrans ? z->idx[z->ntrans - 1] : 0];
	} else if (t < z->trans[0]) {
		ty = &z->types[0];      /* before the first transition (RFC 8536, 3.2) */
	} else {
		size_t lo = 0, hi = z->ntrans - 1;      /* trans[lo] <= t < trans[hi] */
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;
			if (z->trans[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		ty = &z->types[z->idx[lo]];
	}
	if (ty) {
		out->utoff = ty->utoff;
		out->isdst = ty->isdst;
		snprintf(out->abbr, sizeof(out->abbr), "%s", ty->abbr);
	}
	t += out->utoff;
	days = floor_div(t, 86400);
	rem = t - days * 86400;
	civil_from_days(days, &y, &m, &d);
	out->year = y;
	out->mon = m;
	out->mday = d;
	out->hour = (int)(rem / 3600);
	out->min = (int)(rem / 60 % 60);
	out->sec = (int)(rem % 60);
}

char *tz_format(const struct tz *z, int64_t ms, unsigned flags, char *buf, size_t size)
{
	struct tz_time lt;
	char zone[TZ_ABBR_MAX + 8] = "";

	tz_local(z, ms, &lt);
	if (flags & TZ_FMT_ZONE) {
		int letters = 0;
		for (const char *p = lt.abbr; *p; p++)
			letters |= (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z');
		if (letters) {
			snprintf(zone, sizeof(zone), " %s", lt.abbr);
		} else {
			int32_t off = lt.utoff < 0 ? -lt.utoff : lt.utoff;
			snprintf(zone, sizeof(zone), " %c%02d:%02d", lt.utoff < 0 ? '-' : '+',
				 (int)(off / 3600), (int)(off / 60 % 60));
		}
	}
	if (flags & TZ_FMT_SECONDS)
		snprintf(buf, size, "%04lld-%02d-%02d %02d:%02d:%02d%s", (long long)lt.year, lt.mon, lt.mday,
			 lt.hour, lt.min, lt.sec, zone);
	else
		snprintf(buf, size, "%04lld-%02d-%02d %02d:%02d%s", (long long)lt.year, lt.mon, lt.mday,
			 lt.hour, lt.min, zone);
	return buf;
}
