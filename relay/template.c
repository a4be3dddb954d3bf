/*
 * Message templates (docs/RELAY.md): "{alert.summary} (owner {customer.owner})".
 * A placeholder is any dotted path into the PROTOCOL.md §4.4 body, or a derived name that
 * reads well on a phone ({status}, {icon}, {rule}, {severity}, {when},
 * {duration}). A missing path expands to nothing rather than failing a
 * delivery.
 *
 * Values are written the way people read them, in the target's language and
 * time zone, because the body's forms are for programs: an RFC 3339 time
 * (alone, or inside a summary) becomes "2026-12-01 21:58 CST", and a rule value
 * whose term is a duration (since(), age(), gap(), oldest(), or min/max/abs of
 * one: the body has it in ms) becomes "62d 19h", as hearthd's own summaries
 * write durations. {path|raw} keeps the body's form; {path|duration} and
 * {path|time} read any number of ms as a duration or a time.
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/tz.h"
#include "hearth/units.h"
#include "relay.h"

#define JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* json_at, also telling where the last key begins in dotted (to judge the value by its name). */
static struct json_object *lookup(struct json_object *o, const char *dotted, const char **last)
{
	char key[256];

	*last = dotted;
	while (o && *dotted) {
		struct json_object *whole;
		if (!json_object_is_type(o, json_type_object))
			return NULL;
		*last = dotted;
		/* a value's key may hold dots of its own: max(score, 0.5) */
		if (strchr(dotted, '.') && json_object_object_get_ex(o, dotted, &whole))
			return whole;
		const char *dot = strchr(dotted, '.');
		size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, dotted, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		dotted += n + (dot ? 1 : 0);
	}
	return o;
}

struct json_object *json_at(struct json_object *o, const char *dotted)
{
	const char *last;
	return lookup(o, dotted, &last);
}

/* ---- what values are ---------------------------------------------------------------- */

int term_is_duration(const char *term)
{
	static const char *const durations[] = { "since(", "age(", "gap(", "oldest(" };
	static const char *const same_as_first[] = { "min(", "max(", "abs(" };

	while (*term == ' ')
		term++;
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
		if (strncmp(term, durations[i], strlen(durations[i])) == 0)
			return 1;
	for (size_t i = 0; i < sizeof(same_as_first) / sizeof(same_as_first[0]); i++)
		if (strncmp(term, same_as_first[i], strlen(same_as_first[i])) == 0)
			return term_is_duration(term + strlen(same_as_first[i]));
	return 0;
}

/* ---- words of each language --------------------------------------------------------- */

static const char *kind_of(struct json_object *body)
{
	const char *k = json_object_get_string(json_at(body, "kind"));
	return k ? k : "";
}

static int locale_of(const struct target_conf *tc)
{
	return tc && tc->locale == LOCALE_ZH ? LOCALE_ZH : LOCALE_EN;
}

static const char *status_word(struct json_object *body, int zh)
{
	const char *k = kind_of(body);

	if (!strcmp(k, "resolved"))
		return zh ? "已恢复" : "RESOLVED";
	if (!strcmp(k, "repeat"))
		return zh ? "仍在触发" : "STILL FIRING";
	return zh ? "触发" : "FIRING";
}

static const char *severity_word(struct json_object *body, int zh)
{
	static const char *const names[][2] = {
		{ "critical", "严重" }, { "warning", "警告" }, { "info", "提示" },
	};
	const char *sev = json_object_get_string(json_at(body, "alert.severity"));

	if (!sev)
		return "";
	for (size_t i = 0; zh && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(sev, names[i][0]))
			return names[i][1];
	return sev;
}

/* The default rules of etc/hearth.yaml, as a Chinese sales team calls them. */
static const char *const zh_rules[][2] = {
	{ "customer_cooling", "客户降温" },
	{ "followup_below_cadence", "跟进频次不足" },
	{ "cadence_slowing", "复购节奏放缓" },
	{ "complaint_unresolved", "投诉未解决" },
	{ "promise_overdue", "承诺逾期" },
	{ "upsell_window", "追销时机" },
	{ "signed_needs_care", "签约客户待关怀" },
	{ "new_customer_wobble", "新客户波动" },
};

/* rule_labels of the config first, then the built-in names; else the rule's own name. */
static const char *rule_word(struct json_object *body, const struct target_conf *tc)
{
	const char *rule = json_object_get_string(json_at(body, "alert.rule"));

	if (!rule)
		return "";
	if (tc && tc->rule_labels)
		for (size_t i = 0; i < tc->rule_labels->keys.n; i++)
			if (!strcmp(tc->rule_labels->keys.v[i], rule))
				return tc->rule_labels->values.v[i];
	for (size_t i = 0; locale_of(tc) == LOCALE_ZH && i < sizeof(zh_rules) / sizeof(zh_rules[0]); i++)
		if (!strcmp(zh_rules[i][0], rule))
			return zh_rules[i][1];
	return rule;
}

static const char *icon_value(struct json_object *body)
{
	const char *sev = json_object_get_string(json_at(body, "alert.severity"));

	if (strcmp(kind_of(body), "resolved") == 0)
		return "✅";
	if (sev && strcmp(sev, "critical") == 0)
		return "🔴";
	if (sev && strcmp(sev, "warning") == 0)
		return "🟠";
	return "🔵";
}

/* ---- times ------------------------------------------------------------------------- */

static int time_of(struct json_object *v, int64_t *ms)
{
	const char *s = v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
	return s && time_parse_rfc3339(s, strlen(s), ms) == 0 ? 0 : -1;
}

static void put_time(FILE *f, const struct target_conf *tc, int64_t ms)
{
	char buf[TZ_BUF];
	fputs(tz_format(tc ? tc->tz : NULL, ms, TZ_FMT_ZONE, buf, sizeof(buf)), f);
}

static void put_duration(FILE *f, int64_t ms)
{
	char buf[64];
	fputs(duration_format(ms, buf, sizeof(buf)), f);
}

/* How long the alert has fired: to its resolution, else to this notification. */
/*
 * When the alert's condition began to hold: alert.active_since when hearthd
 * knows it (an alert raised by a history load or a new rule began long before
 * it fired), else when it fired.
 */
static int began(struct json_object *body, int64_t *ms)
{
	if (time_of(json_at(body, "alert.active_since"), ms) == 0)
		return 0;
	return time_of(json_at(body, "alert.since"), ms);
}

static int firing_for(struct json_object *body, int64_t *ms)
{
	int64_t since, until;

	if (began(body, &since) < 0 ||
	    (time_of(json_at(body, "alert.resolved_at"), &until) < 0 && time_of(json_at(body, "ts"), &until) < 0))
		return -1;
	*ms = until > since ? until - since : 0;
	return 0;
}

/* "since …", "since …, firing for 3d 2h", "resolved …, after 11h 2m", in the target's language. */
static void put_when(FILE *f, struct json_object *body, const struct target_conf *tc)
{
	int zh = locale_of(tc) == LOCALE_ZH;
	const char *kind = kind_of(body);
	int64_t since, end, dur;

	if (began(body, &since) < 0)
		return;
	if (!strcmp(kind, "resolved") &&
	    (time_of(json_at(body, "alert.resolved_at"), &end) == 0 || time_of(json_at(body, "ts"), &end) == 0)) {
		fputs(zh ? "恢复于 " : "resolved ", f);
		put_time(f, tc, end);
		if (firing_for(body, &dur) == 0) {
			fputs(zh ? "，持续 " : ", after ", f);
			put_duration(f, dur);
		}
		return;
	}
	fputs(zh ? "开始于 " : "since ", f);
	put_time(f, tc, since);
	if (!strcmp(kind, "repeat") && firing_for(body, &dur) == 0) {
		fputs(zh ? "，已持续 " : ", firing for ", f);
		put_duration(f, dur);
	}
}

/* Length of an RFC 3339 time at s (…T…, fraction, Z or offset), or 0. */
static size_t time_at(const char *s, int64_t *ms)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t n = 0;

	for (; shape[n]; n++) {
		char c = s[n];
		if (shape[n] == 'd' ? !(c >= '0' && c <= '9') : shape[n] == 'T' ? (c != 'T' && c != 't')
								 : c != shape[n])
			return 0;
	}
	if (s[n] == '.')
		for (n++; s[n] >= '0' && s[n] <= '9'; n++)
			;
	if (s[n] == 'Z' || s[n] == 'z')
		n++;
	else if ((s[n] == '+' || s[n] == '-') && s[n + 1] && s[n + 2] && s[n + 3] == ':')
		n += 6;
	else
		return 0;
	return time_parse_rfc3339(s, n, ms) == 0 ? n : 0;
}

/* Text with every RFC 3339 time in it shown as a local time (summaries quote times so). */
static void put_text(FILE *f, const char *s, const struct target_conf *tc)
{
	while (*s) {
		int64_t ms;
		size_t n = (s[0] >= '0' && s[0] <= '9') ? time_at(s, &ms) : 0;
		if (n) {
			put_time(f, tc, ms);
			s += n;
		} else {
			fputc(*s++, f);
		}
	}
}

/* ---- links to hearth-web ----------------------------------------------------------- */

static void put_escaped(FILE *f, const char *s)
{
	char *e = s ? curl_easy_escape(NULL, s, 0) : NULL;

	if (e)
		fputs(e, f);
	curl_free(e);
}

/*
 * The page of this alert (<web_url>/alerts#<rule>/<customer>) or of its customer
 * (<web_url>/c/<customer>), ids percent-encoded as the page expects (docs/WEB.md);
 * nothing without web_url.
 */
static void put_link(FILE *f, struct json_object *body, const struct target_conf *tc, int customer_page)
{
	const char *rule = json_object_get_string(json_at(body, "alert.rule"));
	const char *customer = json_object_get_string(json_at(body, "alert.customer"));

	if (!tc || !tc->web_url || !customer)
		return;
	fputs(tc->web_url, f);
	if (customer_page || !rule) {
		fputs("/c/", f);
	} else {
		fputs("/alerts#", f);
		put_escaped(f, rule);
		fputc('/', f);
	}
	put_escaped(f, customer);
}

/* ---- placeholders ------------------------------------------------------------------ */

enum filter { FILTER_NONE, FILTER_RAW, FILTER_DURATION, FILTER_TIME };

static int derived(FILE *f, const char *name, struct json_object *body, const struct target_conf *tc)
{
	int zh = locale_of(tc) == LOCALE_ZH;
	int64_t ms;

	if (!strcmp(name, "status"))
		fputs(status_word(body, zh), f);
	else if (!strcmp(name, "icon"))
		fputs(icon_value(body), f);
	else if (!strcmp(name, "rule"))
		fputs(rule_word(body, tc), f);
	else if (!strcmp(name, "severity"))
		fputs(severity_word(body, zh), f);
	else if (!strcmp(name, "when"))
		put_when(f, body, tc);
	else if (!strcmp(name, "link"))
		put_link(f, body, tc, 0);
	else if (!strcmp(name, "customer_link"))
		put_link(f, body, tc, 1);
	else if (!strcmp(name, "link_line")) {
		if (tc && tc->web_url) {
			fputc('\n', f);
			put_link(f, body, tc, 0);
		}
	}
	else if (!strcmp(name, "duration")) {
		if (firing_for(body, &ms) == 0)
			put_duration(f, ms);
	} else
		return 0;
	return 1;
}

static void put_value(FILE *f, const char *path, enum filter filter, struct json_object *body,
		      const struct target_conf *tc)
{
	const char *key;
	struct json_object *v = lookup(body, path, &key);
	int is_int = v && json_object_is_type(v, json_type_int);
	int64_t ms;

	if (!v)
		return;
	if (filter == FILTER_NONE && is_int && term_is_duration(key))
		filter = FILTER_DURATION;
	if (filter == FILTER_DURATION && (is_int || json_object_is_type(v, json_type_double))) {
		put_duration(f, json_object_get_int64(v));
	} else if (filter == FILTER_TIME && is_int) {
		put_time(f, tc, json_object_get_int64(v));
	} else if (filter != FILTER_RAW && time_of(v, &ms) == 0) {
		put_time(f, tc, ms);
	} else if (json_object_is_type(v, json_type_string)) {
		if (filter == FILTER_RAW)
			fputs(json_object_get_string(v), f);
		else
			put_text(f, json_object_get_string(v), tc);
	} else {
		fputs(json_object_to_json_string_ext(v, JSON_OUT), f);
	}
}

char *template_expand(const char *tpl, struct json_object *body, const struct target_conf *tc)
{
	static const char *const filters[] = { "", "raw", "duration", "time" };
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	if (!f)
		return NULL;
	for (const char *p = tpl; *p; p++) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			fputc(*p++, f);
			continue;
		}
		const char *end = p[0] == '{' ? strchr(p, '}') : NULL;
		if (!end) {
			fputc(*p, f);
			continue;
		}
		char name[256];
		size_t n = (size_t)(end - p - 1);
		if (n >= sizeof(name)) {
			fputc(*p, f);
			continue;
		}
		memcpy(name, p + 1, n);
		name[n] = '\0';
		p = end;
		enum filter filter = FILTER_NONE;
		char *bar = strrchr(name, '|');
		if (bar) {
			for (size_t i = 1; i < sizeof(filters) / sizeof(filters[0]); i++)
				if (!strcmp(bar + 1, filters[i])) {
					filter = (enum filter)i;
					*bar = '\0';
				}
		}
		if (filter != FILTER_NONE || !derived(f, name, body, tc))
			put_value(f, name, filter, body, tc);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
