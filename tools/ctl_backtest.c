/*
 * `hearthctl backtest` (PROTOCOL.md §5.22): asks the daemon what a rule would
 * have done over a window and shows it as people read it: the totals, the
 * alerts per week or day as bars, where two rules differ, and with --svg a
 * chart of alerts per day for a page or a mail.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "hearth/ctlclient.h"
#include "hearth/units.h"

#define BAR_MAX   40                    /* columns of the longest text bar */
#define SVG_W     900
#define SVG_H     260
#define SVG_PAD   40

static int64_t get_int(struct json_object *o, const char *path)
{
	struct json_object *v = json_path(o, path);
	return v ? json_object_get_int64(v) : 0;
}

static void print_totals(struct json_object *r, const char *name)
{
	char p50[32] = "-", p90[32] = "-";

	if (json_path(r, "time_to_resolve.p50_ms") && !json_object_is_type(json_path(r, "time_to_resolve.p50_ms"), json_type_null)) {
		duration_format(get_int(r, "time_to_resolve.p50_ms"), p50, sizeof(p50));
		duration_format(get_int(r, "time_to_resolve.p90_ms"), p90, sizeof(p90));
	}
	printf("%-24s fired %lld  resolved %lld  repeats %lld  peak firing %lld  firing at the end %lld\n",
	       name, (long long)get_int(r, "fired"), (long long)get_int(r, "resolved"),
	       (long long)get_int(r, "repeats"), (long long)get_int(r, "peak_firing"),
	       (long long)get_int(r, "firing_at_end"));
	printf("%-24s time to resolve: p50 %s, p90 %s (%lld resolved)\n", "", p50, p90,
	       (long long)get_int(r, "time_to_resolve.count"));
}

/* Weeks (from the first day) when the window is long, days when it is a month or less. */
static void print_bars(struct json_object *days)
{
	size_t n = days ? json_object_array_length(days) : 0, step = n > 31 ? 7 : 1;
	int64_t top = 1;

	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i += step) {
			int64_t fired = 0, resolved = 0;
			for (size_t j = i; j < i + step && j < n; j++) {
				struct json_object *d = json_object_array_get_idx(days, j);
				fired += get_int(d, "fired");
				resolved += get_int(d, "resolved");
			}
			if (pass == 0) {
				top = fired > top ? fired : top;
				continue;
			}
			if (fired == 0 && resolved == 0)
				continue;
			char bar[BAR_MAX + 1];
			size_t w = (size_t)(fired * BAR_MAX / top);
			memset(bar, '#', w);
			bar[w] = '\0';
			printf("  %s%s  %5lld fired %5lld resolved  %s\n",
			       json_object_get_string(json_path(json_object_array_get_idx(days, i), "day")),
			       step > 1 ? " week" : "", (long long)fired, (long long)resolved, bar);
		}
	}
}

static void print_only(struct json_object *list, const char *who)
{
	size_t n = list ? json_object_array_length(list) : 0;

	if (!n)
		return;
	printf("fired by %s only (%zu):", who, n);
	for (size_t i = 0; i < n && i < 20; i++)
		printf(" %s", json_object_get_string(json_object_array_get_idx(list, i)));
	printf("%s\n", n > 20 ? " ..." : "");
}

static const struct column transition_cols[] = {
	{ "CUSTOMER", "customer", CELL_TEXT },
	{ "RULE", "rule", CELL_TEXT },
	{ "KIND", "kind", CELL_TEXT },
	{ "AT", "at", CELL_TIME },
	{ "VALUES", "values", CELL_ATTRS },
};

static void print_backtest(struct json_object *ans)
{
	struct json_object *cmp = json_path(ans, "compare"), *tr = json_path(ans, "transitions");
	char from[64], to[64];

	human_time(json_object_get_string(json_path(ans, "from")), from, sizeof(from));
	human_time(json_object_get_string(json_path(ans, "to")), to, sizeof(to));
	printf("backtest %s → %s over %lld customers (silences and acks are not replayed)\n", from, to,
	       (long long)get_int(ans, "customers"));
	print_totals(ans, json_object_get_string(json_path(ans, "rule")));
	if (cmp)
		print_totals(cmp, json_object_get_string(json_path(cmp, "rule")));
	printf("\nalerts fired per %s:\n", json_object_array_length(json_path(ans, "per_day")) > 31 ? "week" : "day");
	print_bars(json_path(ans, "per_day"));
	if (cmp) {
		printf("\n");
		print_only(json_path(ans, "only_this"), json_object_get_string(json_path(ans, "rule")));
		print_only(json_path(cmp, "only_this"), json_object_get_string(json_path(cmp, "rule")));
	}
	if (tr) {
		printf("\n");
		table_print(stdout, "", transition_cols, cmp ? 5 : 5, tr);
		if (json_object_get_boolean(json_path(ans, "truncated")))
			ctl_warn("only the first transitions are listed");
	}
}

/* ---- the chart --------------------------------------------------------------------- */

static int64_t max_per_day(struct json_object *days)
{
	int64_t top = 1;
	for (size_t i = 0; days && i < json_object_array_length(days); i++) {
		int64_t f = get_int(json_object_array_get_idx(days, i), "fired");
		top = f > top ? f : top;
	}
	return top;
}

static void svg_bars(FILE *f, struct json_object *days, int64_t top, double offset, double width,
		     const char *colour)
{
	size_t n = json_object_array_length(days);
	double slot = (double)(SVG_W - 2 * SVG_PAD) / (double)n, plot = SVG_H - 2 * SVG_PAD;

	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(days, i);
		double h = (double)get_int(d, "fired") * plot / (double)top;
		if (h <= 0)
			continue;
		fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">"
			"<title>%s: %lld fired</title></rect>\n",
			SVG_PAD + slot * ((double)i + offset), SVG_H - SVG_PAD - h, slot * width, h, colour,
			json_object_get_string(json_path(d, "day")), (long long)get_int(d, "fired"));
	}
}

/* Alerts fired per day as bars, the compared rule's beside them; month ticks below. */
static int write_svg(const char *path, struct json_object *ans)
{
	struct json_object *days = json_path(ans, "per_day"), *cmp = json_path(ans, "compare");
	struct json_object *cdays = cmp ? json_path(cmp, "per_day") : NULL;
	size_t n = days ? json_object_array_length(days) : 0;
	int64_t top = max_per_day(days), ctop = cdays ? max_per_day(cdays) : 0;
	FILE *f;

	if (!n)
		return 0;
	if (!(f = fopen(path, "w"))) {
		ctl_warn("cannot write %s", path);
		return -1;
	}
	top = ctop > top ? ctop : top;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"14\">alerts fired per day: %s%s%s%s</text>\n", SVG_PAD,
		json_object_get_string(json_path(ans, "rule")), cmp ? " (blue) vs " : "",
		cmp ? json_object_get_string(json_path(cmp, "rule")) : "", cmp ? " (orange)" : "");
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n", SVG_PAD, SVG_H - SVG_PAD,
		SVG_W - SVG_PAD, SVG_H - SVG_PAD);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lld</text>\n", SVG_PAD - 4, SVG_PAD + 4,
		(long long)top);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n", SVG_PAD - 4, SVG_H - SVG_PAD);
	svg_bars(f, days, top, 0.0, cdays ? 0.5 : 0.9, "#2b6cb0");
	if (cdays && json_object_array_length(cdays) == n)
		svg_bars(f, cdays, top, 0.5, 0.5, "#dd6b20");
	for (size_t i = 0; i < n; i++) {
		const char *day = json_object_get_string(json_path(json_object_array_get_idx(days, i), "day"));
		if (day && strlen(day) == 10 && strcmp(day + 8, "01") == 0)
			fprintf(f, "<text x=\"%.1f\" y=\"%d\">%.7s</text>\n",
				SVG_PAD + (double)(SVG_W - 2 * SVG_PAD) * (double)i / (double)n, SVG_H - SVG_PAD + 16, day);
	}
	fprintf(f, "</svg>\n");
	return fclose(f) == 0 ? 0 : -1;
}

int backtest_run(const struct ctl_opts *o, const char *rule, struct json_object *opts)
{
	struct json_object *req = json_object_new_object(), *ans = NULL, *svg = NULL;
	struct ctl_client *cc;
	struct herr err;
	int rc = CTL_EXIT_UNREACHABLE;

	json_object_object_add(req, "cmd", json_object_new_string("backtest"));
	if (rule)
		json_object_object_add(req, "rule", json_object_new_string(rule));
	json_object_object_foreach(opts, key, val) {
		if (strcmp(key, "svg") == 0)
			svg = val;
		else if (strcmp(key, "cmd") != 0)
			json_object_object_add(req, key, json_object_get(val));
	}
	if (!(cc = ctl_connect(o->socket, &err))) {
		ctl_warn("%s", err.msg);
		goto out;
	}
	if (!(ans = ctl_call(cc, req, &err))) {
		ctl_warn("%s", err.msg);
		goto out;
	}
	if (!json_object_get_boolean(json_path(ans, "ok"))) {
		ctl_warn("%s: %s", json_object_get_string(json_path(ans, "error.code")),
			 json_object_get_string(json_path(ans, "error.message")));
		rc = CTL_EXIT_NO;
		goto out;
	}
	if (o->json)
		puts(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		print_backtest(ans);
	rc = svg && write_svg(json_object_get_string(svg), ans) < 0 ? CTL_EXIT_NO : CTL_EXIT_OK;
out:
	json_object_put(ans);
	json_object_put(req);
	ctl_close(cc);
	return rc;
}
