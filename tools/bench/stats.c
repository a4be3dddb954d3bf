/*
 * Figures: samples, medians and percentiles, and the final table of
 * figure | measured | budget | pass/fail.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void sort_doubles(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
}

double pct(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void fig_add(struct figure *f, double v)
{
	if (f->n < RUNS_MAX)
		f->v[f->n++] = v;
}

double fig_median(const struct figure *f)
{
	double v[RUNS_MAX];

	if (f->n == 0)
		return NAN;
	memcpy(v, f->v, f->n * sizeof(*v));
	sort_doubles(v, f->n);
	return f->n % 2 ? v[f->n / 2] : (v[f->n / 2 - 1] + v[f->n / 2]) / 2;
}

double fig_min(const struct figure *f)
{
	double m = f->n ? f->v[0] : NAN;
	for (size_t i = 1; i < f->n; i++)
		if (f->v[i] < m)
			m = f->v[i];
	return m;
}

double fig_max(const struct figure *f)
{
	double m = f->n ? f->v[0] : NAN;
	for (size_t i = 1; i < f->n; i++)
		if (f->v[i] > m)
			m = f->v[i];
	return m;
}

const char *fig_text(const struct figure *f, const char *fmt, char *buf, size_t size)
{
	char a[32], b[32], c[32];

	if (f->n == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	snprintf(a, sizeof(a), fmt, fig_median(f));
	if (f->n <= 1) {
		snprintf(buf, size, "%s", a);
		return buf;
	}
	snprintf(b, sizeof(b), fmt, fig_min(f));
	snprintf(c, sizeof(c), fmt, fig_max(f));
	snprintf(buf, size, "%s (%s–%s, %zu runs)", a, b, c, f->n);
	return buf;
}

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("  ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

/* ---- the table -------------------------------------------------------------- */

#define ROWS_MAX 40

struct row {
	char figure[96];
	char measured[64];
	char budget[48];
	const char *verdict;
	char note[256];
};

static struct row rows[ROWS_MAX];
static size_t nrows;

/* Width in characters of UTF-8 text (for aligning "≥" and "–"). */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void pad(const char *s, size_t w)
{
	fputs(s, stdout);
	for (size_t i = width(s); i < w; i++)
		fputc(' ', stdout);
}

void table_add(const char *figure, double measured, const char *fmt, const char *unit,
	       enum budget_kind kind, double budget, const char *note)
{
	struct row *r;
	char num[32];

	if (nrows == ROWS_MAX)
		return;
	r = &rows[nrows++];
	snprintf(r->figure, sizeof(r->figure), "%s", figure);
	snprintf(r->note, sizeof(r->note), "%s", note ? note : "");
	if (isnan(measured)) {
		snprintf(r->measured, sizeof(r->measured), "not run");
		snprintf(r->budget, sizeof(r->budget), "-");
		r->verdict = "-";
		r->note[0] = '\0';
		return;
	}
	snprintf(num, sizeof(num), fmt, measured);
	snprintf(r->measured, sizeof(r->measured), "%s%s%s", num, unit[0] ? " " : "", unit);
	snprintf(num, sizeof(num), fmt, budget);
	if (kind == INFO) {
		snprintf(r->budget, sizeof(r->budget), "-");
		r->verdict = "info";
	} else {
		snprintf(r->budget, sizeof(r->budget), "%s %s%s%s", kind == AT_LEAST ? "≥" : "≤", num,
			 unit[0] ? " " : "", unit);
		int ok = kind == AT_LEAST ? measured >= budget : measured <= budget;
		r->verdict = ok ? "pass" : "FAIL";
	}
}

void table_print(void)
{
	size_t w[4] = { 6, 8, 6, 9 };

	for (size_t i = 0; i < nrows; i++) {
		if (width(rows[i].figure) > w[0])
			w[0] = width(rows[i].figure);
		if (width(rows[i].measured) > w[1])
			w[1] = width(rows[i].measured);
		if (width(rows[i].budget) > w[2])
			w[2] = width(rows[i].budget);
	}
	printf("\n| ");
	pad("figure", w[0]);
	printf(" | ");
	pad("measured", w[1]);
	printf(" | ");
	pad("budget", w[2]);
	printf(" | pass/fail |\n|");
	for (size_t c = 0; c < 4; c++) {
		for (size_t i = 0; i < w[c] + 2; i++)
			fputc('-', stdout);
		fputc('|', stdout);
	}
	fputc('\n', stdout);
	for (size_t i = 0; i < nrows; i++) {
		printf("| ");
		pad(rows[i].figure, w[0]);
		printf(" | ");
		pad(rows[i].measured, w[1]);
		printf(" | ");
		pad(rows[i].budget, w[2]);
		printf(" | ");
		pad(rows[i].verdict, w[3]);
		printf(" |\n");
	}
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].note[0])
			printf("  %s: %s\n", rows[i].figure, rows[i].note);
	fflush(stdout);
}
