/*
 * One printer per answer shape of PROTOCOL.md §5, for people: key: value blocks and
 * aligned tables (ctl_table.c). Answers of commands the daemon is still
 * growing are read defensively: when the expected list is not there, the
 * answer is shown as pretty JSON rather than guessed at.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "hearth/units.h"

#define NCOLS(cols) (sizeof(cols) / sizeof(cols[0]))

static struct json_object *list_of(struct json_object *ans, const char *key)
{
	struct json_object *v = json_path(ans, key);
	return v && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* Prints the list under key as a table, or the whole answer when it has none. */
static int print_list(struct json_object *ans, const char *key, const struct column *cols,
		      size_t ncols)
{
	struct json_object *rows = list_of(ans, key);

	if (!rows)
		return print_json(ans);
	if (json_object_array_length(rows) == 0) {
		printf("no %s\n", key);
		return 0;
	}
	return table_print(stdout, "", cols, ncols, rows);
}

static void section(const char *title)
{
	printf("\n%s:\n", title);
}

int print_json(struct json_object *ans)
{
	json_object_object_del(ans, "ok");
	puts(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PRETTY |
						  JSON_C_TO_STRING_SPACED |
						  JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}

int print_ping(struct json_object *ans)
{
	(void)ans;
	puts("pong");
	return 0;
}

int print_metrics(struct json_object *ans)
{
	struct json_object *text = json_path(ans, "text");

	if (!text)
		return print_json(ans);
	fputs(json_object_get_string(text), stdout);
	return 0;
}


/* ---- status ------------------------------------------------------------------------ */

static const struct status_line {
	const char *path, *label;
	enum cell_fmt fmt;
} status_lines[] = {
	{ "version", "version", CELL_TEXT },
	{ "uptime_ms", "uptime", CELL_DURATION },
	{ "now", "now", CELL_TIME },
	{ "customers", "customers", CELL_NUM },
	{ "events", "events", CELL_NUM },
	{ "firing", "firing", CELL_NUM },
	{ "seq", "seq", CELL_NUM },
	{ "last_tick", "last tick", CELL_TIME },
	{ "tick_ms", "tick took", CELL_DURATION },
	{ "store.path", "store path", CELL_TEXT },
	{ "store.map_size", "store map size", CELL_BYTES },
	{ "store.used", "store used", CELL_BYTES },
};

#define NSTATUS (sizeof(status_lines) / sizeof(status_lines[0]))

static int is_status_key(const char *key)
{
	for (size_t i = 0; i < NSTATUS; i++)
		if (strncmp(status_lines[i].path, key, strlen(key)) == 0 &&
		    (status_lines[i].path[strlen(key)] == '\0' || status_lines[i].path[strlen(key)] == '.'))
			return 1;
	return !strcmp(key, "ok");
}

/* A value the table above does not know: a time if it reads as one. */
static enum cell_fmt guess_fmt(const char *key, struct json_object *v)
{
	int64_t ms;
	size_t n = strlen(key);

	if (v && json_object_is_type(v, json_type_string) &&
	    time_parse_rfc3339(json_object_get_string(v), (size_t)json_object_get_string_len(v), &ms) == 0)
		return CELL_TIME;
	if (n > 3 && strcmp(key + n - 3, "_ms") == 0)
		return CELL_DURATION;
	return CELL_TEXT;
}

int print_status(struct json_object *ans)
{
	struct kv kv[NSTATUS + 32];
	size_t n = 0;

	for (size_t i = 0; i < NSTATUS; i++) {
		struct json_object *v = json_path(ans, status_lines[i].path);
		kv[n].key = status_lines[i].label;
		human_cell(v, status_lines[i].fmt, kv[n].value, sizeof(kv[n].value));
		n++;
	}
	json_object_object_foreach(ans, key, val) {
		if (n == sizeof(kv) / sizeof(kv[0]) || is_status_key(key))
			continue;
		kv[n].key = key;
		human_cell(val, guess_fmt(key, val), kv[n].value, sizeof(kv[n].value));
		n++;
	}
	kv_print(stdout, "", kv, n);
	return 0;
}

/* Whatever an answer holds besides "ok", as key: value lines; "ok" when nothing. */
int print_done(struct json_object *ans)
{
	struct kv kv[32];
	size_t n = 0;

	json_object_object_foreach(ans, key, val) {
		if (n == sizeof(kv) / sizeof(kv[0]) || !strcmp(key, "ok"))
			continue;
		kv[n].key = key;
		human_cell(val, guess_fmt(key, val), kv[n].value, sizeof(kv[n].value));
		n++;
	}
	if (n == 0)
		puts("ok");
	kv_print(stdout, "", kv, n);
	return 0;
}

/* ---- customers and their timelines ------------------------------------------------- */

static const struct column last_cols[] = {
	{ "TYPE", "type", CELL_TEXT },
	{ "LAST", "last", CELL_TIME },
};

static const struct column case_cols[] = {
	{ "CASE", "case", CELL_TEXT },
	{ "REF", "ref", CELL_TEXT },
	{ "OPENED", "opened", CELL_TIME },
	{ "DUE", "due", CELL_TIME },
};

static const struct column alert_cols[] = {
	{ "RULE", "rule", CELL_TEXT },
	{ "CUSTOMER", "customer", CELL_TEXT },
	{ "SEVERITY", "severity", CELL_TEXT },
	{ "STATE", "state", CELL_TEXT },
	{ "SINCE", "since", CELL_TIME },
	{ "SUMMARY", "summary", CELL_TEXT },
};

/* The profile, then when they were first and last seen. */
static void customer_block(struct json_object *c)
{
	struct json_object *profile = json_path(c, "profile");
	struct kv kv[48];
	size_t n = 0;

	kv[n].key = "id";
	human_cell(json_path(c, "id"), CELL_TEXT, kv[n++].value, sizeof(kv[0].value));
	if (profile && json_object_is_type(profile, json_type_object)) {
		json_object_object_foreach(profile, key, val) {
			if (n == sizeof(kv) / sizeof(kv[0]) - 4)
				break;
			kv[n].key = key;
			human_cell(val, guess_fmt(key, val), kv[n++].value, sizeof(kv[0].value));
		}
	}
	kv[n].key = "first seen";
	human_cell(json_path(c, "first_seen"), CELL_TIME, kv[n++].value, sizeof(kv[0].value));
	kv[n].key = "last seen";
	human_cell(json_path(c, "last_seen"), CELL_TIME, kv[n++].value, sizeof(kv[0].value));
	kv[n].key = "events";
	human_cell(json_path(c, "events"), CELL_NUM, kv[n++].value, sizeof(kv[0].value));
	kv[n].key = "score";
	human_cell(json_path(c, "score"), CELL_NUM, kv[n++].value, sizeof(kv[0].value));
	kv_print(stdout, "", kv, n);
}

static int by_last_desc(const void *a, const void *b)
{
	const char *x = json_object_get_string(json_path(*(struct json_object *const *)a, "last"));
	const char *y = json_object_get_string(json_path(*(struct json_object *const *)b, "last"));
	int64_t tx = 0, ty = 0;

	if (x)
		time_parse_rfc3339(x, strlen(x), &tx);
	if (y)
		time_parse_rfc3339(y, strlen(y), &ty);
	return tx < ty ? 1 : tx > ty ? -1 : 0;
}

/* {type: time} becomes rows, newest first. */
static struct json_object *last_rows(struct json_object *last)
{
	struct json_object *rows = json_object_new_array();

	if (!rows || !last || !json_object_is_type(last, json_type_object))
		return rows;
	json_object_object_foreach(last, type, when) {
		struct json_object *row = json_object_new_object();
		json_object_object_add(row, "type", json_object_new_string(type));
		json_object_object_add(row, "last", json_object_get(when));
		json_object_array_add(rows, row);
	}
	json_object_array_sort(rows, by_last_desc);
	return rows;
}

/* {case: [{ref, opened, due}]} becomes one row per open case. */
static struct json_object *case_rows(struct json_object *open)
{
	struct json_object *rows = json_object_new_array();

	if (!rows || !open || !json_object_is_type(open, json_type_object))
		return rows;
	json_object_object_foreach(open, name, list) {
		size_t n = list && json_object_is_type(list, json_type_array)
			   ? json_object_array_length(list) : 0;
		for (size_t i = 0; i < n; i++) {
			struct json_object *oc = json_object_array_get_idx(list, i), *row;
			if (!json_object_is_type(oc, json_type_object) || !(row = json_object_new_object()))
				continue;
			json_object_object_add(row, "case", json_object_new_string(name));
			json_object_object_foreach(oc, k, v)
				json_object_object_add(row, k, json_object_get(v));
			json_object_array_add(rows, row);
		}
	}
	return rows;
}

/* Prints rows under a title, or nothing when there are none; takes the rows. */
static void titled_table(const char *title, const struct column *cols, size_t ncols,
			 struct json_object *rows)
{
	if (rows && json_object_array_length(rows) > 0) {
		section(title);
		table_print(stdout, "  ", cols, ncols, rows);
	}
	json_object_put(rows);
}

int print_customer(struct json_object *ans)
{
	struct json_object *c = json_path(ans, "customer"), *alerts;

	if (!c)
		return print_json(ans);
	customer_block(c);
	titled_table("last by type", last_cols, NCOLS(last_cols), last_rows(json_path(c, "last")));
	titled_table("open cases", case_cols, NCOLS(case_cols), case_rows(json_path(c, "open")));
	alerts = list_of(c, "alerts");
	titled_table("alerts", alert_cols, NCOLS(alert_cols), json_object_get(alerts));
	return 0;
}

static const struct column customer_cols[] = {
	{ "ID", "id", CELL_TEXT },
	{ "NAME", "name", CELL_TEXT },
	{ "OWNER", "owner", CELL_TEXT },
	{ "TIER", "tier", CELL_TEXT },
	{ "LAST SEEN", "last_seen", CELL_TIME },
	{ "EVENTS", "events", CELL_NUM },
};

int print_customers(struct json_object *ans)
{
	return print_list(ans, "customers", customer_cols, NCOLS(customer_cols));
}

static const struct column event_cols[] = {
	{ "TIME", "ts", CELL_TIME },
	{ "TYPE", "type", CELL_TEXT },
	{ "REF", "ref", CELL_TEXT },
	{ "ATTRS", "attrs", CELL_ATTRS },
};

int print_timeline(struct json_object *ans)
{
	return print_list(ans, "events", event_cols, NCOLS(event_cols));
}

int print_forget(struct json_object *ans)
{
	struct json_object *n = json_path(ans, "events");

	if (!n)
		return print_done(ans);
	printf("forgotten: %lld events removed\n", (long long)json_object_get_int64(n));
	return 0;
}

/* ---- ingest ------------------------------------------------------------------------ */

int print_ingest(struct json_object *ans)
{
	struct json_object *rejected = list_of(ans, "rejected");
	size_t n = rejected ? json_object_array_length(rejected) : 0;

	printf("%lld accepted, %lld duplicates, %zu rejected\n",
	       (long long)json_object_get_int64(json_path(ans, "accepted")),
	       (long long)json_object_get_int64(json_path(ans, "duplicates")), n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(rejected, i);
		fprintf(stderr, "event %lld: %s: %s\n",
			(long long)json_object_get_int64(json_path(r, "index")),
			json_object_get_string(json_path(r, "code")),
			json_object_get_string(json_path(r, "message")));
	}
	return 0;
}

/* ---- what the daemon knows --------------------------------------------------------- */

static const struct column command_cols[] = {
	{ "COMMAND", "cmd", CELL_TEXT },
	{ "ADMIN", "changes_state", CELL_TEXT },
	{ "WHAT", "help", CELL_TEXT },
};

int print_commands(struct json_object *ans)
{
	return print_list(ans, "commands", command_cols, NCOLS(command_cols));
}

static const struct column rule_cols[] = {
	{ "NAME", "name", CELL_TEXT },
	{ "SEVERITY", "severity", CELL_TEXT },
	{ "FIRING", "firing", CELL_NUM },
	{ "PENDING", "pending", CELL_NUM },
	{ "WHEN", "when", CELL_TEXT },
	{ "LAST ERROR", "last_error", CELL_TEXT },
};

int print_rules(struct json_object *ans)
{
	return print_list(ans, "rules", rule_cols, NCOLS(rule_cols));
}

/* ---- reload --dry-run ---------------------------------------------------------------- */

static const struct column dry_rule_cols[] = {
	{ "RULE", "rule", CELL_TEXT },
	{ "STATUS", "status", CELL_TEXT },
	{ "FIRE", "fire", CELL_NUM },
	{ "RESOLVE", "resolve", CELL_NUM },
	{ "CHANGE", "change", CELL_NUM },
	{ "PENDING", "pending", CELL_NUM },
};

static const struct column dry_alert_cols[] = {
	{ "RULE", "rule", CELL_TEXT },
	{ "CUSTOMER", "customer", CELL_TEXT },
	{ "WOULD", "kind", CELL_TEXT },
};

int print_dry_run(struct json_object *ans)
{
	struct json_object *alerts = json_path(ans, "alerts");

	if (!json_path(ans, "rules"))
		return print_json(ans);
	printf("applied now, the configuration would fire %s, resolve %s, change %s and start %s pending "
	       "alert(s) over %s customer(s); nothing was applied\n",
	       json_object_get_string(json_path(ans, "fire")), json_object_get_string(json_path(ans, "resolve")),
	       json_object_get_string(json_path(ans, "change")), json_object_get_string(json_path(ans, "pending")),
	       json_object_get_string(json_path(ans, "customers")));
	table_print(stdout, "", dry_rule_cols, NCOLS(dry_rule_cols), json_path(ans, "rules"));
	if (alerts && json_object_array_length(alerts) > 0) {
		printf("\n");
		table_print(stdout, "", dry_alert_cols, NCOLS(dry_alert_cols), alerts);
	}
	return 0;
}

/* ---- alerts and silences ----------------------------------------------------------- */

int print_alerts(struct json_object *ans)
{
	return print_list(ans, "alerts", alert_cols, NCOLS(alert_cols));
}

int print_silence_add(struct json_object *ans)
{
	struct json_object *id = json_path(ans, "id");

	if (!id)
		return print_done(ans);
	printf("silence %s added\n", json_object_get_string(id));
	return 0;
}

static const struct column silence_cols[] = {
	{ "ID", "id", CELL_TEXT },
	{ "RULE", "rule", CELL_TEXT },
	{ "CUSTOMER", "customer", CELL_TEXT },
	{ "OWNER", "owner", CELL_TEXT },
	{ "UNTIL", "until", CELL_TIME },
	{ "BY", "by", CELL_TEXT },
	{ "COMMENT", "comment", CELL_TEXT },
};

int print_silences(struct json_object *ans)
{
	return print_list(ans, "silences", silence_cols, NCOLS(silence_cols));
}

/* ---- expressions ------------------------------------------------------------------- */

/* Value types an answer may name (eval's "type"), and how each reads. */
static const struct {
	const char *type;
	enum cell_fmt fmt;
} value_types[] = {
	{ "duration", CELL_DURATION },
	{ "time", CELL_TIME },
};

/* Expression functions whose value is a duration in ms (PROTOCOL.md §7.4). */
static const char *const duration_fns[] = { "since(", "age(", "gap(", "oldest(" };

static enum cell_fmt fmt_of_type(const char *type)
{
	for (size_t i = 0; type && i < sizeof(value_types) / sizeof(value_types[0]); i++)
		if (strcmp(value_types[i].type, type) == 0)
			return value_types[i].fmt;
	return CELL_TEXT;
}

/* A term that is one call of a duration function, such as since(touch). */
static enum cell_fmt fmt_of_term(const char *term)
{
	for (size_t i = 0; i < sizeof(duration_fns) / sizeof(duration_fns[0]); i++) {
		size_t n = strlen(duration_fns[i]);
		if (strncmp(term, duration_fns[i], n) == 0 && strchr(term, ')') == term + strlen(term) - 1)
			return CELL_DURATION;
	}
	return CELL_TEXT;
}

/* A value that came out null because evaluation met a type problem says so. */
static void value_warning(struct json_object *ans)
{
	struct json_object *w = json_path(ans, "warning");

	if (w)
		ctl_warn("warning: %s", json_object_get_string(w));
}

/* A value: null is an answer here ("no touch yet"), not a missing cell. */
static const char *value_text(struct json_object *v, enum cell_fmt fmt, char *buf, size_t size)
{
	return v ? human_cell(v, fmt, buf, size) : "null";
}

int print_value(struct json_object *ans)
{
	struct json_object *type = json_path(ans, "type");
	char buf[512];

	if (!json_object_object_get_ex(ans, "value", NULL))
		return print_json(ans);
	puts(value_text(json_path(ans, "value"), fmt_of_type(json_object_get_string(type)), buf,
			sizeof(buf)));
	value_warning(ans);
	return 0;
}

static const struct column term_cols[] = {
	{ "TERM", "term", CELL_TEXT },
	{ "VALUE", "value", CELL_TEXT },
};

static void add_term(struct json_object *rows, const char *term, struct json_object *value)
{
	struct json_object *row = json_object_new_object();
	char buf[512];

	json_object_object_add(row, "term", json_object_new_string(term));
	json_object_object_add(row, "value", json_object_new_string(
		value_text(value, fmt_of_term(term), buf, sizeof(buf))));
	json_object_array_add(rows, row);
}

/* Terms as {expr: value} or as [{term|expr, value}]: both read as two columns. */
static struct json_object *term_rows(struct json_object *terms)
{
	struct json_object *rows = json_object_new_array();

	if (!rows || !terms)
		return rows;
	if (json_object_is_type(terms, json_type_object)) {
		json_object_object_foreach(terms, expr, value)
			add_term(rows, expr, value);
		return rows;
	}
	for (size_t i = 0; json_object_is_type(terms, json_type_array) &&
			   i < json_object_array_length(terms); i++) {
		struct json_object *t = json_object_array_get_idx(terms, i);
		struct json_object *name = json_path(t, "term") ? json_path(t, "term") : json_path(t, "expr");
		if (name)
			add_term(rows, json_object_get_string(name), json_path(t, "value"));
	}
	return rows;
}

int print_explain(struct json_object *ans)
{
	struct kv kv[4];
	char buf[512];
	size_t n = 0;

	if (!json_object_object_get_ex(ans, "value", NULL))
		return print_json(ans);
	kv[n].key = "rule";
	human_cell(json_path(ans, "rule"), CELL_TEXT, kv[n++].value, sizeof(kv[0].value));
	kv[n].key = "value";
	snprintf(kv[n].value, sizeof(kv[0].value), "%s",
		 value_text(json_path(ans, "value"), CELL_TEXT, buf, sizeof(buf)));
	n++;
	if (json_path(ans, "summary")) {
		kv[n].key = "summary";
		human_cell(json_path(ans, "summary"), CELL_TEXT, kv[n++].value, sizeof(kv[0].value));
	}
	kv[n].key = "at";
	human_cell(json_path(ans, "at"), CELL_TIME, kv[n++].value, sizeof(kv[0].value));
	kv_print(stdout, "", kv, n);
	titled_table("terms", term_cols, NCOLS(term_cols), term_rows(json_path(ans, "terms")));
	value_warning(ans);
	return 0;
}

static const struct column top_cols[] = {
	{ "ID", "id", CELL_TEXT },
	{ "NAME", "name", CELL_TEXT },
	{ "OWNER", "owner", CELL_TEXT },
	{ "TIER", "tier", CELL_TEXT },
	{ "SCORE", "score", CELL_NUM },
	{ "LAST SEEN", "last_seen", CELL_TIME },
};

int print_top(struct json_object *ans)
{
	return print_list(ans, list_of(ans, "top") ? "top" : "customers", top_cols, NCOLS(top_cols));
}

/* ---- notifications ----------------------------------------------------------------- */

static const struct column notification_cols[] = {
	{ "SEQ", "seq", CELL_NUM },
	{ "TIME", "ts", CELL_TIME },
	{ "KIND", "kind", CELL_TEXT },
	{ "RULE", "alert.rule", CELL_TEXT },
	{ "CUSTOMER", "alert.customer", CELL_TEXT },
	{ "SUMMARY", "alert.summary", CELL_TEXT },
};

int print_replay(struct json_object *ans)
{
	int rc = print_list(ans, "notifications", notification_cols, NCOLS(notification_cols));
	struct json_object *last = json_path(ans, "last_seq");

	if (last && list_of(ans, "notifications"))
		printf("last seq: %lld\n", (long long)json_object_get_int64(last));
	return rc;
}
