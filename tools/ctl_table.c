/*
 * hearthctl's human output: answer values turned into cells (times in local
 * time with how long ago, durations and sizes the way people say them) and
 * rows of cells printed as aligned columns. Widths count terminal columns,
 * not bytes, because customer names are often Chinese and take two columns a
 * character.
 */
#include <json-c/json.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "ctl.h"
#include "hearth/tz.h"
#include "hearth/units.h"

#define CELL_BUF     2048
#define CELL_MAX_TTY 72     /* widest cell on a terminal; a pipe gets everything */

static int64_t human_now = INT64_MIN;

void ctl_warn(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("hearthctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- times, durations, sizes ------------------------------------------------------- */

void human_set_now(int64_t ms)
{
	human_now = ms;
}

static int64_t now_ms(void)
{
	return human_now == INT64_MIN ? time_now_ms() : human_now;
}

/* "3d ago", "in 2h": the largest unit is enough beside a full date. */
static void relative(int64_t diff, char *buf, size_t size)
{
	char d[64];
	int64_t mag = diff < 0 ? -diff : diff;

	if (mag < MS_PER_SECOND) {
		snprintf(buf, size, "now");
		return;
	}
	duration_format(mag, d, sizeof(d));
	d[strcspn(d, " ")] = '\0';
	snprintf(buf, size, diff >= 0 ? "%s ago" : "in %s", d);
}

/* The zone times are shown in: --tz, else the system's ($TZ, /etc/localtime). */
static struct tz *display_tz;

int human_set_tz(const char *name, struct herr *err)
{
	struct tz *z = tz_load(name, err);

	if (!z)
		return -1;
	tz_free(display_tz);
	display_tz = z;
	return 0;
}

static const struct tz *shown_tz(void)
{
	if (!display_tz)
		display_tz = tz_system();
	return display_tz;
}

char *human_time_ms(int64_t ms, char *buf, size_t size)
{
	char day[TZ_BUF], rel[64];

	tz_format(shown_tz(), ms, 0, day, sizeof(day));
	relative(now_ms() - ms, rel, sizeof(rel));
	snprintf(buf, size, "%s (%s)", day, rel);
	return buf;
}

char *human_time(const char *s, char *buf, size_t size)
{
	int64_t ms;

	if (!s || time_parse_rfc3339(s, strlen(s), &ms) < 0) {
		snprintf(buf, size, "%s", s ? s : "-");
		return buf;
	}
	return human_time_ms(ms, buf, size);
}

char *human_bytes(int64_t n, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lld B", (long long)n);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* ---- cells ------------------------------------------------------------------------- */

struct json_object *json_path(struct json_object *o, const char *path)
{
	char key[128];

	while (o && path && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key) || !json_object_is_type(o, json_type_object))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o && json_object_is_type(o, json_type_null) ? NULL : o;
}

/* Copies text, turning control characters (a newline in a note) into spaces. */
static void plain_text(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; *s && i + 1 < size; s++)
		buf[i++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	buf[i] = '\0';
}

static const char *compact(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A string value, quoted when it would not read as one word. */
static void attr_value(struct json_object *v, char *buf, size_t size)
{
	const char *s = json_object_get_string(v);

	if (json_object_is_type(v, json_type_string) && (!*s || strpbrk(s, " =\"")))
		snprintf(buf, size, "%s", compact(v));
	else
		snprintf(buf, size, "%s", s);
}

static void attrs_cell(struct json_object *v, char *buf, size_t size)
{
	size_t off = 0;
	char val[CELL_BUF];

	buf[0] = '\0';
	if (!json_object_is_type(v, json_type_object)) {
		snprintf(buf, size, "%s", compact(v));
		return;
	}
	json_object_object_foreach(v, key, val_obj) {
		if (val_obj)
			attr_value(val_obj, val, sizeof(val));
		else
			snprintf(val, sizeof(val), "null");
		int n = snprintf(buf + off, size - off, "%s%s=%s", off ? " " : "", key, val);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
}

/* Scores and averages: two decimals say enough; small values keep three digits. */
static void human_double(double d, char *buf, size_t size)
{
	if (!isfinite(d) || fabs(d) >= 1e15 || d == trunc(d)) {
		snprintf(buf, size, "%.15g", d);
		return;
	}
	if (fabs(d) < 1) {
		snprintf(buf, size, "%.3g", d);
		return;
	}
	snprintf(buf, size, "%.2f", d);
	size_t n = strlen(buf);
	while (buf[n - 1] == '0')
		buf[--n] = '\0';
	if (buf[n - 1] == '.')
		buf[n - 1] = '\0';
}

char *human_cell(struct json_object *v, enum cell_fmt fmt, char *buf, size_t size)
{
	char tmp[CELL_BUF];
	int is_int = v && json_object_is_type(v, json_type_int);

	if (!v)
		snprintf(tmp, sizeof(tmp), "-");
	else if (fmt == CELL_TIME && json_object_is_type(v, json_type_string))
		human_time(json_object_get_string(v), tmp, sizeof(tmp));
	else if (fmt == CELL_TIME && is_int)
		human_time_ms(json_object_get_int64(v), tmp, sizeof(tmp));
	else if (fmt == CELL_DURATION && (is_int || json_object_is_type(v, json_type_double)))
		duration_format(json_object_get_int64(v), tmp, sizeof(tmp));
	else if (fmt == CELL_BYTES && is_int)
		human_bytes(json_object_get_int64(v), tmp, sizeof(tmp));
	else if (fmt == CELL_ATTRS)
		attrs_cell(v, tmp, sizeof(tmp));
	else if (json_object_is_type(v, json_type_string))
		snprintf(tmp, sizeof(tmp), "%s", json_object_get_string(v));
	else if (json_object_is_type(v, json_type_double))
		human_double(json_object_get_double(v), tmp, sizeof(tmp));
	else
		snprintf(tmp, sizeof(tmp), "%s", compact(v));
	plain_text(tmp, buf, size);
	return buf;
}

/* ---- widths ------------------------------------------------------------------------ */

/*
 * Columns come from the C library's wcwidth() under a UTF-8 LC_CTYPE, whatever
 * the user's locale: the daemon's text is always UTF-8, and glibc's tables
 * follow Unicode (East Asian Wide and Fullwidth take 2 columns, emoji too,
 * combining marks none). The locale is used only here (uselocale), so nothing
 * else in hearthctl changes with it. Without any UTF-8 locale installed, a
 * small table of the common wide ranges stands in.
 */
static locale_t utf8_locale(void)
{
	static const char *const names[] = { "C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8" };
	static locale_t loc;
	static int tried;

	for (size_t i = 0; !tried && i < sizeof(names) / sizeof(names[0]) && !loc; i++)
		loc = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
	tried = 1;
	return loc;
}

/* Code points shown two columns wide (East Asian Wide and Fullwidth, in short). */
static const struct { uint32_t lo, hi; } wide[] = {
	{ 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
	{ 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
	{ 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
	{ 0x1F680, 0x1F6FF }, { 0x1F7E0, 0x1F7EB }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
};

/* Code points that take no column of their own (combining marks, joiners). */
static const struct { uint32_t lo, hi; } zero[] = {
	{ 0x0300, 0x036F }, { 0x200B, 0x200F }, { 0xFE00, 0xFE0F },
};

static int in_ranges(uint32_t cp, const void *ranges, size_t n)
{
	const struct { uint32_t lo, hi; } *r = ranges;

	for (size_t i = 0; i < n; i++)
		if (cp >= r[i].lo && cp <= r[i].hi)
			return 1;
	return 0;
}

/* Decodes one UTF-8 sequence at s; a stray byte counts as one code point. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
	size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;

	*cp = n == 1 ? s[0] : s[0] & (0x3F >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*cp = s[0];
			return 1;
		}
		*cp = (*cp << 6) | (s[i] & 0x3F);
	}
	return n;
}

static size_t table_width(uint32_t cp)
{
	if (in_ranges(cp, zero, sizeof(zero) / sizeof(zero[0])))
		return 0;
	return in_ranges(cp, wide, sizeof(wide) / sizeof(wide[0])) ? 2 : 1;
}

/*
 * The next character of s: its bytes into *len, its columns returned. A byte
 * that does not start a valid sequence counts as one column, as terminals
 * show it (a replacement character).
 */
static size_t char_width(const char *s, size_t *len, locale_t loc)
{
	uint32_t cp;

	if (loc) {
		mbstate_t st;
		wchar_t wc;
		memset(&st, 0, sizeof(st));
		size_t n = mbrtowc(&wc, s, MB_LEN_MAX, &st);
		if (n != (size_t)-1 && n != (size_t)-2 && n != 0) {
			int w = wcwidth(wc);
			*len = n;
			return w < 0 ? 1 : (size_t)w;
		}
		*len = 1;
		return 1;
	}
	*len = utf8_next((const unsigned char *)s, &cp);
	return table_width(cp);
}

size_t text_width(const char *s)
{
	locale_t loc = utf8_locale(), old = loc ? uselocale(loc) : (locale_t)0;
	size_t w = 0, n;

	for (; *s; s += n)
		w += char_width(s, &n, loc);
	if (loc)
		uselocale(old);
	return w;
}

/* Cuts text to max columns, ending it with "…" when something was cut. */
static void clip(char *s, size_t max)
{
	locale_t loc, old;
	size_t w = 0, n;

	if (text_width(s) <= max)
		return;
	loc = utf8_locale();
	old = loc ? uselocale(loc) : (locale_t)0;
	for (; *s; s += n) {
		size_t cw = char_width(s, &n, loc);
		if (w + cw > max - 1)
			break;
		w += cw;
	}
	if (loc)
		uselocale(old);
	strcpy(s, "\xE2\x80\xA6");
}

void pad_to(FILE *out, const char *text, size_t width)
{
	size_t w = text_width(text);

	fputs(text, out);
	for (; w < width; w++)
		fputc(' ', out);
}

/* ---- tables ------------------------------------------------------------------------ */

static void row_cell(struct json_object *row, const struct column *col, size_t max, char *buf)
{
	human_cell(json_path(row, col->path), col->fmt, buf, CELL_BUF - 4);
	if (max)
		clip(buf, max);
}

static void pad(FILE *out, size_t n)
{
	while (n-- > 0)
		fputc(' ', out);
}

static void print_cell(FILE *out, const char *text, size_t width, int right, int last)
{
	size_t w = text_width(text);

	if (right)
		pad(out, width - w);
	fputs(text, out);
	if (!right && !last)
		pad(out, width - w);
	fputs(last ? "\n" : "  ", out);
}

int table_print(FILE *out, const char *prefix, const struct column *cols, size_t ncols,
		struct json_object *rows)
{
	size_t n = json_object_array_length(rows), max = isatty(fileno(out)) ? CELL_MAX_TTY : 0;
	size_t *width = calloc(ncols, sizeof(*width));
	char buf[CELL_BUF];

	if (!width)
		return -1;
	for (size_t c = 0; c < ncols; c++)
		width[c] = text_width(cols[c].header);
	for (size_t r = 0; r < n; r++)
		for (size_t c = 0; c < ncols; c++) {
			row_cell(json_object_array_get_idx(rows, r), &cols[c], max, buf);
			size_t w = text_width(buf);
			width[c] = w > width[c] ? w : width[c];
		}
	fputs(prefix, out);
	for (size_t c = 0; c < ncols; c++)
		print_cell(out, cols[c].header, width[c], cols[c].fmt == CELL_NUM, c + 1 == ncols);
	for (size_t r = 0; r < n; r++) {
		fputs(prefix, out);
		for (size_t c = 0; c < ncols; c++) {
			row_cell(json_object_array_get_idx(rows, r), &cols[c], max, buf);
			print_cell(out, buf, width[c], cols[c].fmt == CELL_NUM, c + 1 == ncols);
		}
	}
	free(width);
	return 0;
}

void kv_print(FILE *out, const char *prefix, const struct kv *kv, size_t n)
{
	size_t width = 0;

	for (size_t i = 0; i < n; i++) {
		size_t w = text_width(kv[i].key);
		width = w > width ? w : width;
	}
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s%s:", prefix, kv[i].key);
		pad(out, width - text_width(kv[i].key) + 1);
		fprintf(out, "%s\n", kv[i].value);
	}
}
