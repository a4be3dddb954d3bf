/*
 * relay: the pure parts of the relay — templates, signatures, matching,
 * message shapes per target type, and the durable seq file. The network side
 * is covered end to end by tests/e2e/test_relay.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../relay/runtime.h"
#include "hearth/tz.h"

static const char body_text[] =
	"{\"seq\": 1042, \"ts\": \"2026-11-22T08:00:00.000Z\", \"kind\": \"firing\","
	" \"alert\": {\"rule\": \"customer_cooling\", \"customer\": \"C1001\", \"severity\": \"warning\","
	" \"state\": \"firing\", \"since\": \"2026-11-22T08:00:00.000Z\","
	" \"summary\": \"Lin Wei (C1001) has had no contact for 31d\", \"labels\": {\"team\": \"sales\"},"
	" \"values\": {\"since(touch)\": 2678400000}},"
	" \"customer\": {\"id\": \"C1001\", \"name\": \"Lin Wei\", \"owner\": \"zhang\", \"tier\": \"C\"}}";

static struct json_object *body(void)
{
	struct json_object *b = json_tokener_parse(body_text);
	assert_non_null(b);
	return b;
}

static void test_template(void **state)
{
	(void)state;
	struct json_object *b = body();
	char *s = template_expand("{alert.summary} (owner {customer.owner}) #{seq} {kind} {status} "
				  "{{literal}} [{nope.nothing}] {alert.values.since(touch)} {alert.labels}", b, NULL);
	/* a value named by a duration term reads as one, as the daemon's summaries write it */
	assert_string_equal(s, "Lin Wei (C1001) has had no contact for 31d (owner zhang) #1042 firing FIRING "
			       "{literal} [] 31d {\"team\":\"sales\"}");
	free(s);
	json_object_object_add(b, "kind", json_object_new_string("resolved"));
	s = template_expand("{icon} {status} {unclosed", b, NULL);
	assert_string_equal(s, "✅ RESOLVED {unclosed");
	free(s);
	json_object_put(b);
}

static char *expand(const char *tpl, struct json_object *b, const struct target_conf *tc)
{
	static char buf[1024];
	char *s = template_expand(tpl, b, tc);

	assert_non_null(s);
	snprintf(buf, sizeof(buf), "%s", s);
	free(s);
	return buf;
}

static void set(struct json_object *b, const char *parent, const char *key, struct json_object *v)
{
	json_object_object_add(parent ? json_at(b, parent) : b, key, v);
}

/* Times in the target's zone, durations as hearthd writes them, words in its language. */
static void test_template_reads_well(void **state)
{
	(void)state;
	struct herr err;
	struct tz *cst = tz_load("CST-8", &err);
	struct json_object *b = body();
	struct target_conf zh = { .locale = LOCALE_ZH, .tz = cst }, en = { .locale = LOCALE_EN, .tz = cst };

	assert_non_null(cst);
	set(b, "alert.values", "max(since(touch), gap(purchase))", json_object_new_int64(5427184548LL));
	set(b, "alert.values", "count(touch, 30d)", json_object_new_int(3));
	set(b, "alert.values", "days(since(touch))", json_object_new_int(31));
	set(b, "alert.values", "now", json_object_new_string("2026-11-22T08:00:00.000Z"));
	set(b, "alert.values", "max(score, 0.5)", json_object_new_double(2.5));
	assert_string_equal(expand("{alert.since}", b, &zh), "2026-11-22 16:00 CST");
	assert_string_equal(expand("{alert.since}", b, NULL), "2026-11-22 08:00 UTC");
	assert_string_equal(expand("{ts|raw}", b, &zh), "2026-11-22T08:00:00.000Z");
	assert_string_equal(expand("{alert.values.since(touch)}", b, &zh), "31d");
	assert_string_equal(expand("{alert.values.since(touch)|raw}", b, &zh), "2678400000");
	assert_string_equal(expand("{alert.values.max(since(touch), gap(purchase))}", b, &zh), "62d 19h");
	assert_string_equal(expand("{alert.values.count(touch, 30d)}", b, &zh), "3");
	assert_string_equal(expand("{alert.values.days(since(touch))}", b, &zh), "31");
	assert_string_equal(expand("{alert.values.now}", b, &zh), "2026-11-22 16:00 CST");
	assert_string_equal(expand("{alert.values.max(score, 0.5)}", b, &zh), "2.5");
	assert_string_equal(expand("{alert.values.count(touch, 30d)|duration} {seq|time}", b, &en),
			    "3ms 1970-01-01 08:00 CST");
	/* a time quoted inside a summary too */
	set(b, "alert", "summary", json_object_new_string("P-1 due 2026-11-23T02:00:00.000Z, 2026-11-23T02:00:00+08:00."));
	assert_string_equal(expand("{alert.summary}", b, &zh), "P-1 due 2026-11-23 10:00 CST, 2026-11-23 02:00 CST.");
	assert_string_equal(expand("{alert.summary|raw}", b, &zh),
			    "P-1 due 2026-11-23T02:00:00.000Z, 2026-11-23T02:00:00+08:00.");
	/* words */
	assert_string_equal(expand("{status} {severity} {rule} {icon}", b, &zh), "触发 警告 客户降温 🟠");
	assert_string_equal(expand("{status} {severity} {rule}", b, &en), "FIRING warning customer_cooling");
	assert_string_equal(expand("{when}", b, &zh), "开始于 2026-11-22 16:00 CST");
	assert_string_equal(expand("{when}", b, &en), "since 2026-11-22 16:00 CST");
	set(b, NULL, "kind", json_object_new_string("repeat"));
	set(b, NULL, "ts", json_object_new_string("2026-11-25T10:00:00.000Z"));
	assert_string_equal(expand("{status}：{when}", b, &zh), "仍在触发：开始于 2026-11-22 16:00 CST，已持续 3d 2h");
	assert_string_equal(expand("{status}: {when}", b, &en),
			    "STILL FIRING: since 2026-11-22 16:00 CST, firing for 3d 2h");
	set(b, NULL, "kind", json_object_new_string("resolved"));
	set(b, "alert", "resolved_at", json_object_new_string("2026-11-25T10:30:00.000Z"));
	set(b, "alert", "severity", json_object_new_string("critical"));
	assert_string_equal(expand("{status} {severity} {when} {duration}", b, &zh),
			    "已恢复 严重 恢复于 2026-11-25 18:30 CST，持续 3d 2h 3d 2h");
	assert_string_equal(expand("{status} {when}", b, &en), "RESOLVED resolved 2026-11-25 18:30 CST, after 3d 2h");
	/* rule_labels of the config come before the built-in names */
	char *keys[] = { "customer_cooling" }, *values[] = { "冷掉的客户" };
	struct labelmap labels = { { keys, 1 }, { values, 1 } };
	zh.rule_labels = &labels;
	assert_string_equal(expand("{rule}", b, &zh), "冷掉的客户");
	en.rule_labels = &labels;
	assert_string_equal(expand("{rule}", b, &en), "冷掉的客户");
	json_object_put(b);
	tz_free(cst);
}

static void test_duration_terms(void **state)
{
	(void)state;
	assert_true(term_is_duration("since(touch)"));
	assert_true(term_is_duration("age()"));
	assert_true(term_is_duration("gap(purchase)"));
	assert_true(term_is_duration("oldest(complaint)"));
	assert_true(term_is_duration("min(gap(purchase), 3d)"));
	assert_true(term_is_duration("abs(max(since(a), since(b)))"));
	assert_false(term_is_duration("max(count(touch, 30d), 2)"));
	assert_false(term_is_duration("days(since(touch))"));
	assert_false(term_is_duration("count(touch, 30d)"));
	assert_false(term_is_duration("open(complaint)"));
	assert_false(term_is_duration("now"));
	assert_false(term_is_duration("since_last"));
}

static void test_hmac(void **state)
{
	(void)state;
	char out[128];
	const char msg[] = "1700000000000\nSECabc", key[] = "1700000000\nfs";
	/* expected values computed with Python's hmac and base64 */
	assert_int_equal(hmac_sha256_b64("SECabc", 6, msg, strlen(msg), out, sizeof(out)), 0);
	assert_string_equal(out, "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM=");
	assert_int_equal(hmac_sha256_b64(key, strlen(key), "", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "KnO01LyLeUz2sHjT1ogyJOBrkgWI59ibq0SodIhTzOk=");
	assert_int_equal(hmac_sha256_b64("k", 1, "m", 1, out, 10), -1);
}

static void test_match(void **state)
{
	(void)state;
	struct json_object *b = body();
	char *sev[] = { "critical", "warning" }, *owner[] = { "li" }, *lk[] = { "team" }, *lv[] = { "sales" };
	struct target_conf tc = { .kinds = KIND_ALL };

	assert_true(target_matches(&tc, b));
	tc.severity = (struct strlist){ sev, 2 };
	tc.label_keys = (struct strlist){ lk, 1 };
	tc.label_values = (struct strlist){ lv, 1 };
	assert_true(target_matches(&tc, b));
	tc.owner = (struct strlist){ owner, 1 };
	assert_false(target_matches(&tc, b));
	tc.owner = (struct strlist){ 0 };
	tc.kinds = KIND_RESOLVED;
	assert_false(target_matches(&tc, b));
	tc.kinds = KIND_ALL;
	lv[0] = "ops";
	assert_false(target_matches(&tc, b));
	json_object_put(b);
}

static struct json_object *build(const char *type, const char *url, const char *tpl, size_t n,
				 char **url_out)
{
	struct json_object *b = body(), *bodies[2] = { b, b };
	struct target_conf tc = { .name = "t", .url = (char *)url, .template = (char *)tpl,
				  .type = target_type_find(type) };
	struct message msg = { 0 };
	struct herr err;

	assert_non_null(tc.type);
	assert_int_equal(tc.type->build(&tc, bodies, n, &msg, &err), 0);
	struct json_object *out = json_tokener_parse(msg.body);
	assert_non_null(out);
	*url_out = strdup(msg.url);
	message_clear(&msg);
	json_object_put(b);
	return out;
}

static void test_formats(void **state)
{
	(void)state;
	char *url;
	struct json_object *o;

	o = build("slack", "http://h/x", "{alert.rule}: {customer.name}", 1, &url);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"text\":\"customer_cooling: Lin Wei\"}");
	json_object_put(o);
	free(url);

	o = build("webhook", "http://h/x", NULL, 1, &url);
	assert_int_equal(json_object_get_int(json_at(o, "seq")), 1042);
	json_object_put(o);
	free(url);
	o = build("webhook", "http://h/x", NULL, 2, &url);
	assert_true(json_object_is_type(o, json_type_array));
	assert_int_equal(json_object_array_length(o), 2);
	json_object_put(o);
	free(url);

	o = build("wecom", "http://h/x", "x", 1, &url);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"msgtype\":\"markdown\",\"markdown\":{\"content\":\"x\"}}");
	json_object_put(o);
	free(url);

	o = build("alertmanager", "http://am:9093/", NULL, 1, &url);
	assert_string_equal(url, "http://am:9093/api/v2/alerts");
	struct json_object *a = json_object_array_get_idx(o, 0);
	assert_string_equal(json_object_get_string(json_at(a, "labels.alertname")), "customer_cooling");
	assert_string_equal(json_object_get_string(json_at(a, "labels.team")), "sales");
	assert_string_equal(json_object_get_string(json_at(a, "annotations.summary")),
			    "Lin Wei (C1001) has had no contact for 31d");
	assert_null(json_at(a, "endsAt"));
	json_object_put(o);
	free(url);
	o = build("alertmanager", "http://am:9093/api/v2/alerts", NULL, 1, &url);
	assert_string_equal(url, "http://am:9093/api/v2/alerts");
	json_object_put(o);
	free(url);

	o = build("teams", "http://h/x", NULL, 1, &url);
	assert_string_equal(json_object_get_string(json_at(o, "@type")), "MessageCard");
	assert_non_null(strstr(json_object_get_string(json_at(o, "text")), "Lin Wei"));
	json_object_put(o);
	free(url);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_text(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Loads a relay.yaml written from text; its errors (file:line:col) into errs. */
static struct relay_config *load_text(const char *dir, const char *text, int *nerrors, char *errs, size_t size)
{
	char path[512], errpath[512];
	int saved = dup(2);

	snprintf(path, sizeof(path), "%s/relay.yaml", dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	write_file(path, text);
	fflush(stderr);
	assert_non_null(freopen(errpath, "w", stderr));
	struct relay_config *cfg = relay_config_load(path, nerrors);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	snprintf(errs, size, "%s", read_text(errpath));
	unlink(errpath);
	unlink(path);
	return cfg;
}

static const struct target_conf *conf_named(const struct relay_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntargets; i++)
		if (!strcmp(cfg->targets[i].name, name))
			return &cfg->targets[i];
	fail_msg("no target %s", name);
	return NULL;
}

static char *built_text(const struct target_conf *tc, const char *path)
{
	static char buf[2048];
	struct json_object *b = body(), *bodies[1] = { b };
	struct message msg = { 0 };
	struct herr err;

	assert_int_equal(tc->type->build(tc, bodies, 1, &msg, &err), 0);
	struct json_object *out = json_tokener_parse(msg.body);
	assert_non_null(out);
	snprintf(buf, sizeof(buf), "%s", json_object_get_string(json_at(out, path)));
	json_object_put(out);
	message_clear(&msg);
	json_object_put(b);
	return buf;
}

/* The Chinese services speak Chinese by default, in the configured zone; a target may differ. */
static void test_locale_timezone_and_hold_config(void **state)
{
	(void)state;
	char dir[] = "/tmp/relay-unit-XXXXXX", errs[4096];
	int nerrors = 0;
	static const char head[] =
		"source: {publish: \"ipc:///tmp/x\", control: /tmp/c}\n"
		"state: /tmp/s\n";

	assert_non_null(mkdtemp(dir));
	char text[2048];
	snprintf(text, sizeof(text), "%s"
		 "timezone: CST-8\n"
		 "rule_labels:\n"
		 "  en: {customer_cooling: Customer cooling}\n"
		 "targets:\n"
		 "  - {name: ding, type: dingtalk, url: \"http://h/d\"}\n"
		 "  - {name: fei, type: feishu, url: \"http://h/f\"}\n"
		 "  - {name: wc, type: wecom, url: \"http://h/w\"}\n"
		 "  - {name: sl, type: slack, url: \"http://h/s\"}\n"
		 "  - {name: slzh, type: slack, url: \"http://h/s\", locale: zh, timezone: UTC, hold_firing: 5m}\n"
		 "  - {name: feien, type: feishu, url: \"http://h/f\", locale: en}\n", head);
	struct relay_config *cfg = load_text(dir, text, &nerrors, errs, sizeof(errs));
	assert_non_null(cfg);
	assert_int_equal(nerrors, 0);
	const struct target_conf *ding = conf_named(cfg, "ding"), *slzh = conf_named(cfg, "slzh");
	assert_int_equal(ding->locale, LOCALE_ZH);
	assert_int_equal(conf_named(cfg, "sl")->locale, LOCALE_EN);
	assert_int_equal(conf_named(cfg, "feien")->locale, LOCALE_EN);
	assert_int_equal(slzh->locale, LOCALE_ZH);
	assert_string_equal(tz_name(slzh->tz), "UTC");
	assert_string_equal(tz_name(ding->tz), "CST-8");
	assert_true(slzh->hold_firing_ms == 5 * 60 * 1000 && ding->hold_firing_ms == 0);

	char *t = built_text(ding, "markdown.text");
	assert_non_null(strstr(t, "### 🟠 触发：客户降温\n\n**Lin Wei**（C1001）· 负责人 zhang · 警告\n\n"));
	assert_non_null(strstr(t, "\n\n开始于 2026-11-22 16:00 CST · 规则 customer_cooling · 序号 1042"));
	assert_string_equal(built_text(conf_named(cfg, "fei"), "content.text"),
			    "🟠 触发：客户降温（警告）\n"
			    "Lin Wei（C1001）· 负责人 zhang\n"
			    "Lin Wei (C1001) has had no contact for 31d\n"
			    "开始于 2026-11-22 16:00 CST · 规则 customer_cooling · 序号 1042");
	assert_non_null(strstr(built_text(conf_named(cfg, "wc"), "markdown.content"), "**🟠 触发：客户降温**（警告）"));
	assert_string_equal(built_text(conf_named(cfg, "sl"), "text"),
			    "🟠 *FIRING* · Customer cooling (warning)\n"
			    "*Lin Wei* (C1001) · owner zhang\n"
			    "Lin Wei (C1001) has had no contact for 31d\n"
			    "since 2026-11-22 16:00 CST · seq 1042");
	assert_non_null(strstr(built_text(slzh, "text"), "开始于 2026-11-22 08:00 UTC"));
	assert_non_null(strstr(built_text(conf_named(cfg, "feien"), "content.text"), "🟠 FIRING: Customer cooling (warning)"));
	relay_config_free(cfg);

	/* every mistake, each where it is */
	snprintf(text, sizeof(text), "%s"
		 "timezone: Asia/Shangai\n"
		 "locale: fr\n"
		 "rule_labels: {de: {a: b}}\n"
		 "targets:\n"
		 "  - name: a\n"
		 "    type: slack\n"
		 "    url: \"http://h/s\"\n"
		 "    timezone: Mars/Base\n"
		 "    hold_firing: soon\n", head);
	assert_null(load_text(dir, text, &nerrors, errs, sizeof(errs)));
	assert_int_equal(nerrors, 5);
	assert_non_null(strstr(errs, ":3:11: timezone: unknown time zone 'Asia/Shangai'"));
	assert_non_null(strstr(errs, ":4:9: locale: expected en or zh"));
	assert_non_null(strstr(errs, ":5:15: rule_labels: expected en or zh"));
	assert_non_null(strstr(errs, ":10:15: timezone: unknown time zone 'Mars/Base'"));
	assert_non_null(strstr(errs, ":11:18: hold_firing: expected a duration"));
	rmdir(dir);
}

static struct json_object *note(uint64_t seq, const char *kind, const char *customer, const char *ts)
{
	struct json_object *b = body();
	set(b, NULL, "seq", json_object_new_int64((int64_t)seq));
	set(b, NULL, "kind", json_object_new_string(kind));
	set(b, NULL, "ts", json_object_new_string(ts));
	set(b, "alert", "customer", json_object_new_string(customer));
	return b;
}

static void offer(struct target *t, uint64_t seq, const char *kind, const char *customer, const char *ts,
		  int64_t now)
{
	struct json_object *b = note(seq, kind, customer, ts);
	target_offer(t, b, now);
	json_object_put(b);
}

/* The request in flight is answered (the status does not matter here: any answer hands it over). */
static uint64_t send_one(struct target *t, CURLM *multi, const char *dir, int64_t now)
{
	int64_t wake = INT64_MAX;

	target_step(t, multi, now, &wake);
	assert_int_equal(t->inflight_n, 1);
	struct json_object *sent = json_tokener_parse(t->msg.body);
	uint64_t seq = (uint64_t)json_object_get_int64(json_at(sent, "seq"));
	json_object_put(sent);
	target_done(t, multi, CURLE_OK, dir, now);
	assert_int_equal(t->inflight_n, 0);
	return seq;
}

/*
 * hold_firing: a firing resolved within the window is dropped with its
 * resolution; one resolved later goes at once, before its resolution; the
 * rest pass a held firing; the state file keeps a held firing across a
 * restart, and the replay skips what went out.
 */
static void test_hold_firing(void **state)
{
	(void)state;
	char dir[] = "/tmp/relay-unit-XXXXXX", path[512];
	struct target_conf tc = {
		.name = "h", .type = target_type_find("webhook"), .url = "http://127.0.0.1:9/x",
		.kinds = KIND_ALL, .queue_max = 100, .backoff_ms = 1000, .backoff_max_ms = 1000,
		.connect_timeout_ms = 1000, .timeout_ms = 1000, .hold_firing_ms = 60000,
	};
	struct herr err;
	CURLM *multi = curl_multi_init();
	struct target *t;
	int64_t wake;

	assert_non_null(multi);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/h.seq", dir);
	assert_non_null(t = target_new(&tc, dir, &err));
	target_begin(t, 10, dir);
	assert_string_equal(read_text(path), "10\n");

	/* a flap: firing and resolution 30s apart by hearthd's clock */
	offer(t, 11, "firing", "C1", "2026-11-22T08:00:00.000Z", 1000);
	assert_true(t->qlen == 1 && t->nheld == 1);
	wake = INT64_MAX;
	target_step(t, multi, 1001, &wake);
	assert_int_equal(t->inflight_n, 0);
	assert_true(wake == 61000);
	offer(t, 12, "resolved", "C1", "2026-11-22T08:00:30.000Z", 2000);
	assert_true(t->qlen == 0 && t->nheld == 0 && t->flaps == 1 && t->seen == 12);
	target_save(t, dir);
	assert_string_equal(read_text(path), "12\n");

	/* C2 stays held; C3 resolves after 10 minutes (a relay catching up): both go, in order */
	offer(t, 13, "firing", "C2", "2026-11-22T09:00:00.000Z", 3000);
	offer(t, 14, "firing", "C3", "2026-11-22T09:00:00.000Z", 3000);
	offer(t, 15, "resolved", "C3", "2026-11-22T09:10:00.000Z", 3000);
	assert_true(t->qlen == 3 && t->nheld == 1 && t->flaps == 1);
	assert_true(send_one(t, multi, dir, 3001) == 14);
	assert_string_equal(read_text(path), "14\nheld 13\n");
	assert_true(send_one(t, multi, dir, 3002) == 15);
	assert_string_equal(read_text(path), "15\nheld 13\n");
	wake = INT64_MAX;
	target_step(t, multi, 3003, &wake);
	assert_true(t->inflight_n == 0 && wake == 63000);
	target_free(t, multi);

	/* restart: 13 is replayed and held again, 14 and 15 are not sent twice */
	assert_non_null(t = target_new(&tc, dir, &err));
	assert_true(t->seen == 12);
	offer(t, 13, "firing", "C2", "2026-11-22T09:00:00.000Z", 100000);
	offer(t, 14, "firing", "C3", "2026-11-22T09:00:00.000Z", 100000);
	offer(t, 15, "resolved", "C3", "2026-11-22T09:10:00.000Z", 100000);
	assert_true(t->qlen == 1 && t->nheld == 1 && t->seen == 15);
	target_save(t, dir);
	assert_string_equal(read_text(path), "15\nheld 13\n");
	/* a repeat lets the firing go at once, ahead of it */
	offer(t, 16, "repeat", "C2", "2026-11-22T09:00:40.000Z", 100001);
	assert_true(t->qlen == 2 && t->nheld == 0);
	assert_true(send_one(t, multi, dir, 100002) == 13);
	assert_true(send_one(t, multi, dir, 100003) == 16);
	assert_string_equal(read_text(path), "16\n");

	/* not resolved in time: posted when the window ends */
	offer(t, 17, "firing", "C4", "2026-11-22T10:00:00.000Z", 200000);
	wake = INT64_MAX;
	target_step(t, multi, 259999, &wake);
	assert_true(t->inflight_n == 0 && wake == 260000);
	assert_true(send_one(t, multi, dir, 260000) == 17);
	/* and its late resolution goes too */
	offer(t, 18, "resolved", "C4", "2026-11-22T10:01:10.000Z", 270000);
	assert_true(send_one(t, multi, dir, 270001) == 18);
	assert_true(t->flaps == 0);

	/* a held firing released while what passed it is in flight stays queued, first */
	offer(t, 19, "firing", "C5", "2026-11-22T11:00:00.000Z", 300000);
	offer(t, 20, "resolved", "C9", "2026-11-22T11:00:00.000Z", 300000);
	wake = INT64_MAX;
	target_step(t, multi, 300001, &wake);
	assert_true(t->inflight_n == 1 && t->qlen == 2);
	offer(t, 21, "repeat", "C5", "2026-11-22T11:00:50.000Z", 300002);
	assert_true(t->nheld == 0 && t->qlen == 3);
	target_done(t, multi, CURLE_OK, dir, 300003);
	assert_true(t->qlen == 2 && t->q[t->qhead].seq == 19 && t->q[t->qhead + 1].seq == 21);
	assert_true(send_one(t, multi, dir, 300004) == 19);
	assert_true(send_one(t, multi, dir, 300005) == 21);
	assert_string_equal(read_text(path), "21\n");
	target_free(t, multi);
	curl_multi_cleanup(multi);
	unlink(path);
	rmdir(dir);
}

static void test_state_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/relay-unit-XXXXXX", path[512];
	struct herr err;
	struct relay_state st = { .upto = 123456789012ULL };
	uint64_t held[] = { 40, 44 };
	int found = 1;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.seq", dir);
	assert_int_equal(state_read(dir, "a", &st, &found, &err), 0);
	assert_int_equal(found, 0);
	st.upto = 123456789012ULL;
	assert_int_equal(state_write(dir, "a", &st, &err), 0);
	st.upto = 123456789013ULL;
	assert_int_equal(state_write(dir, "a", &st, &err), 0);
	/* without held firings the file is the one line it always was */
	assert_string_equal(read_text(path), "123456789013\n");
	assert_int_equal(state_read(dir, "a", &st, &found, &err), 0);
	assert_int_equal(found, 1);
	assert_true(st.upto == 123456789013ULL && st.nheld == 0);
	st = (struct relay_state){ .upto = 50, .held = held, .nheld = 2 };
	assert_int_equal(state_write(dir, "a", &st, &err), 0);
	assert_string_equal(read_text(path), "50\nheld 40 44\n");
	assert_int_equal(state_read(dir, "a", &st, &found, &err), 0);
	assert_true(st.upto == 50 && st.nheld == 2 && st.held[0] == 40 && st.held[1] == 44);
	free(st.held);
	/* an older relay's file without a newline */
	write_file(path, "77");
	assert_int_equal(state_read(dir, "a", &st, &found, &err), 0);
	assert_true(st.upto == 77 && st.nheld == 0);
	static const char *const bad[] = {
		"junk", "50\nheld 51\n", "50\nheld 44 40\n", "50\nheld 40 40\n", "50\nkept 40\n",
		"50\nheld 40x\n", "50\nheld 40\n\n", "50\nheld 0 40\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i]);
		assert_int_equal(state_read(dir, "a", &st, &found, &err), -1);
		assert_int_equal(st.nheld, 0);
	}
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_template_reads_well),
		cmocka_unit_test(test_duration_terms),
		cmocka_unit_test(test_locale_timezone_and_hold_config),
		cmocka_unit_test(test_hold_firing),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_state_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
