/*
 * tools/relay: the pure parts of the relay — templates, signatures, matching,
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

#include "../../tools/relay/relay.h"

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
				  "{{literal}} [{nope.nothing}] {alert.values.since(touch)} {alert.labels}", b);
	assert_string_equal(s, "Lin Wei (C1001) has had no contact for 31d (owner zhang) #1042 firing FIRING "
			       "{literal} [] 2678400000 {\"team\":\"sales\"}");
	free(s);
	json_object_object_add(b, "kind", json_object_new_string("resolved"));
	s = template_expand("{icon} {status} {unclosed", b);
	assert_string_equal(s, "✅ RESOLVED {unclosed");
	free(s);
	json_object_put(b);
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

static void test_state_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/relay-unit-XXXXXX";
	struct herr err;
	uint64_t seq = 7;
	int found = 1;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_read(dir, "a", &seq, &found, &err), 0);
	assert_int_equal(found, 0);
	assert_int_equal(state_write(dir, "a", 123456789012ULL, &err), 0);
	assert_int_equal(state_write(dir, "a", 123456789013ULL, &err), 0);
	assert_int_equal(state_read(dir, "a", &seq, &found, &err), 0);
	assert_int_equal(found, 1);
	assert_true(seq == 123456789013ULL);
	char path[512];
	snprintf(path, sizeof(path), "%s/a.seq", dir);
	FILE *f = fopen(path, "w");
	fputs("junk", f);
	fclose(f);
	assert_int_equal(state_read(dir, "a", &seq, &found, &err), -1);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_state_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
