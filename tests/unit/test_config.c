/*
 * config.h and yamltree.h: PROTOCOL.md §6 configuration, its defaults, and errors
 * that name file:line:col, all of them at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/log.h"
#include "hearth/units.h"
#include "hearth/yamltree.h"

#define EXAMPLE "etc/hearth.yaml"   /* tests run from the repository root */

static char errors[8192];

static struct config *load(const char *yaml)
{
	memset(errors, 'Z', sizeof(errors)); /* no stale text can pass for an answer */
	return config_load_string(yaml, strlen(yaml), "t.yaml", errors, sizeof(errors));
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Loading must fail with exactly these lines, in order: each line is a prefix to match. */
static void expect_errors(const char *yaml, const char *const *want, int nwant)
{
	struct config *cfg = load(yaml);
	const char *line = errors;

	if (cfg) {
		config_free(cfg);
		fail_msg("config should have been refused:\n%s", yaml);
	}
	if (count_lines(errors) != nwant)
		fail_msg("want %d error line(s), got:\n%s", nwant, errors);
	for (int i = 0; i < nwant; i++) {
		if (strncmp(line, want[i], strlen(want[i])) != 0)
			fail_msg("error %d: want prefix '%s', got:\n%s", i, want[i], errors);
		line = strchr(line, '\n') + 1;
	}
}

static void expect_error(const char *yaml, const char *want)
{
	expect_errors(yaml, &want, 1);
}

/* 1-based number of the first line of path starting with prefix, 0 if none. */
static int line_of(const char *path, const char *prefix)
{
	char line[1024];
	int n = 0, found = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		n++;
		found = strncmp(line, prefix, strlen(prefix)) == 0;
	}
	fclose(f);
	return found ? n : 0;
}

static void test_example_file(void **state)
{
	char err[4096];
	struct config *cfg = config_load(EXAMPLE, err, sizeof(err));
	const struct config_set *touch;
	const struct config_case *cc;

	(void)state;
	if (!cfg)
		fail_msg("%s: %s", EXAMPLE, err);
	assert_string_equal(cfg->file, EXAMPLE);
	assert_string_equal(cfg->store_path, "./var/lib");
	assert_true(cfg->map_size == 256ULL << 20);
	assert_true(cfg->max_size == 64ULL << 30);
	assert_int_equal(cfg->ningest_listen, 1);
	assert_string_equal(cfg->ingest_listen[0], "ipc://./var/run/ingest.sock");
	assert_int_equal(cfg->max_future_ms, MS_PER_HOUR);
	assert_int_equal(cfg->npublish_listen, 1);
	assert_string_equal(cfg->publish_listen[0], "ipc://./var/run/alerts.sock");
	assert_int_equal(cfg->heartbeat_ms, 5000);
	assert_int_equal(cfg->retain_ms, 7 * MS_PER_DAY);
	assert_string_equal(cfg->control_path, "./var/run/control.sock");
	assert_int_equal(cfg->control_mode, 0660);
	assert_int_equal(cfg->nadmin_groups, 1);
	assert_string_equal(cfg->admin_groups[0], "hearth");
	assert_int_equal(cfg->eval_interval_ms, 60000);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);

	assert_int_equal(cfg->nsets, 1);
	touch = config_find_set(cfg, "touch");
	assert_non_null(touch);
	assert_int_equal(touch->ntypes, 5);
	static const char *const touch_types[] = { "contact", "call", "visit", "meeting", "message" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(touch->types[i], touch_types[i]);
	assert_null(config_find_set(cfg, "complaint"));

	assert_int_equal(cfg->ncases, 2);
	cc = config_find_case(cfg, "complaint");
	assert_non_null(cc);
	assert_string_equal(cc->open, "complaint");
	assert_string_equal(cc->close, "complaint_resolved");
	assert_null(cc->due);
	cc = config_find_case(cfg, "promise");
	assert_non_null(cc);
	assert_string_equal(cc->open, "promise");
	assert_string_equal(cc->close, "promise_kept");
	assert_string_equal(cc->due, "due");
	assert_null(config_find_case(cfg, "touch"));

	assert_non_null(cfg->priority);
	assert_true(strncmp(cfg->priority, "value / 10000 * min(since(touch) / 30d, 3)", 42) == 0);
	assert_int_equal(cfg->priority_pos.line, line_of(EXAMPLE, "priority: \""));
	assert_int_equal(cfg->priority_pos.col, 11);
	assert_int_equal(cfg->priority_pos.quoted, 1);

	static const char *const names[] = {
		"customer_cooling", "followup_below_cadence", "cadence_slowing",
		"complaint_unresolved", "promise_overdue", "upsell_window", "signed_needs_care",
		"new_customer_wobble",
	};
	assert_int_equal(cfg->nrules, 8);
	for (size_t i = 0; i < 8; i++)
		assert_string_equal(cfg->rules[i].name, names[i]);

	const struct config_rule *r = &cfg->rules[0];
	assert_string_equal(r->when, "tier in [\"B\", \"C\"] and (since(touch) > 30d or "
				     "(since(touch) == null and age() > 30d))");
	assert_int_equal(r->when_pos.line, line_of(EXAMPLE, "    when: 'tier in [\"B\", \"C\"]"));
	assert_int_equal(r->when_pos.col, 11);
	assert_int_equal(r->when_pos.quoted, 1);
	assert_int_equal(r->for_ms, 0);
	assert_int_equal(r->severity, SEVERITY_WARNING);
	assert_int_equal(r->repeat_ms, 7 * MS_PER_DAY);
	assert_string_equal(r->summary, "{name} ({id}, tier {tier}) has had no contact for {since(touch)}");
	assert_int_equal(r->nlabels, 1);
	assert_string_equal(r->labels[0].key, "team");
	assert_string_equal(r->labels[0].value, "sales");

	r = &cfg->rules[1];
	assert_int_equal(r->severity, SEVERITY_INFO);
	assert_int_equal(r->repeat_ms, 0);
	r = &cfg->rules[3];
	assert_string_equal(r->when, "oldest(complaint) > 48h");
	assert_int_equal(r->severity, SEVERITY_CRITICAL);
	assert_int_equal(r->repeat_ms, MS_PER_DAY);
	assert_string_equal(r->labels[0].value, "service");
	assert_int_equal(cfg->rules[2].repeat_ms, 14 * MS_PER_DAY);
	assert_int_equal(cfg->rules[7].repeat_ms, 3 * MS_PER_DAY);
	config_free(cfg);
}

static void test_missing_file(void **state)
{
	char err[512];

	(void)state;
	assert_null(config_load("tests/unit/no-such-config.yaml", err, sizeof(err)));
	assert_true(strncmp(err, "tests/unit/no-such-config.yaml: cannot open", 43) == 0);
}

static void assert_defaults(const struct config *cfg)
{
	assert_string_equal(cfg->store_path, "/var/lib/hearth");
	assert_true(cfg->map_size == 256ULL << 20);
	assert_true(cfg->max_size == 64ULL << 30);
	assert_int_equal(cfg->ningest_listen, 1);
	assert_string_equal(cfg->ingest_listen[0], "ipc:///run/hearth/ingest.sock");
	assert_int_equal(cfg->max_future_ms, MS_PER_HOUR);
	assert_int_equal(cfg->npublish_listen, 1);
	assert_string_equal(cfg->publish_listen[0], "ipc:///run/hearth/alerts.sock");
	assert_int_equal(cfg->heartbeat_ms, 5 * MS_PER_SECOND);
	assert_int_equal(cfg->retain_ms, 7 * MS_PER_DAY);
	assert_string_equal(cfg->control_path, "/run/hearth/control.sock");
	assert_int_equal(cfg->control_mode, 0660);
	assert_int_equal(cfg->nadmin_groups, 1);
	assert_string_equal(cfg->admin_groups[0], "hearth");
	assert_int_equal(cfg->eval_interval_ms, 60 * MS_PER_SECOND);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg->nsets, 0);
	assert_int_equal(cfg->ncases, 0);
	assert_null(cfg->priority);
	assert_int_equal(cfg->nrules, 0);
}

static void test_defaults(void **state)
{
	static const char *const docs[] = {
		"",
		"# nothing but a comment\n",
		"{}\n",
		"store: {}\ningest: {}\npublish: {}\ncontrol: {}\nevaluation: {}\nlog: {}\nevents: {}\n",
		"rules: []\n",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct config *cfg = load(docs[i]);
		if (!cfg)
			fail_msg("'%s' refused: %s", docs[i], errors);
		assert_string_equal(errors, "");
		assert_string_equal(cfg->file, "t.yaml");
		assert_defaults(cfg);
		config_free(cfg);
	}
}

static void test_values_override_defaults(void **state)
{
	struct config *cfg = load(
		"store:\n"
		"  path: /srv/hearth\n"
		"  map_size: 1MiB\n"
		"  max_size: 4096MiB\n"
		"ingest:\n"
		"  listen: [\"tcp://127.0.0.1:5555\", \"ipc:///tmp/in.sock\"]\n"
		"  max_future: 90s\n"
		"publish:\n"
		"  heartbeat: 500ms\n"
		"  retain: 1d12h\n"
		"control:\n"
		"  mode: \"0600\"\n"
		"  admin_groups: []\n"
		"evaluation: {interval: 15m}\n"
		"log: {level: debug}\n");

	(void)state;
	if (!cfg)
		fail_msg("%s", errors);
	assert_string_equal(cfg->store_path, "/srv/hearth");
	assert_true(cfg->map_size == 1ULL << 20);
	assert_true(cfg->max_size == 4ULL << 30);
	assert_int_equal(cfg->ningest_listen, 2);
	assert_string_equal(cfg->ingest_listen[0], "tcp://127.0.0.1:5555");
	assert_string_equal(cfg->ingest_listen[1], "ipc:///tmp/in.sock");
	assert_int_equal(cfg->max_future_ms, 90000);
	assert_int_equal(cfg->heartbeat_ms, 500);
	assert_int_equal(cfg->retain_ms, 36 * MS_PER_HOUR);
	assert_string_equal(cfg->control_path, "/run/hearth/control.sock");
	assert_int_equal(cfg->control_mode, 0600);
	assert_int_equal(cfg->nadmin_groups, 0);
	assert_int_equal(cfg->eval_interval_ms, 15 * MS_PER_MINUTE);
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	config_free(cfg);
}

static void test_rule_defaults(void **state)
{
	struct config *cfg = load("rules:\n  - name: r1\n    when: x > 1\n");

	(void)state;
	if (!cfg)
		fail_msg("%s", errors);
	assert_int_equal(cfg->nrules, 1);
	assert_string_equal(cfg->rules[0].name, "r1");
	assert_string_equal(cfg->rules[0].when, "x > 1");
	assert_int_equal(cfg->rules[0].when_pos.line, 3);
	assert_int_equal(cfg->rules[0].when_pos.col, 11);
	assert_int_equal(cfg->rules[0].when_pos.quoted, 0);
	assert_int_equal(cfg->rules[0].for_ms, 0);
	assert_int_equal(cfg->rules[0].severity, SEVERITY_WARNING);
	assert_int_equal(cfg->rules[0].repeat_ms, 0);
	assert_null(cfg->rules[0].summary);
	assert_int_equal(cfg->rules[0].nlabels, 0);
	config_free(cfg);
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_error("store:\n  path: /x\n  bogus: 1\n", "t.yaml:3:3: unknown key 'bogus' in store");
	expect_error("stroe:\n  path: /x\n", "t.yaml:1:1: unknown key 'stroe' in the configuration");
	expect_error("rules:\n  - name: a\n    when: x\n    sevrity: info\n",
		     "t.yaml:4:5: unknown key 'sevrity' in a rule");
	expect_error("events:\n  cases:\n    c: {open: a, close: b, deu: x}\n",
		     "t.yaml:3:28: unknown key 'deu' in a case");
	expect_error("store:\n  path: /x\nstore:\n  path: /y\n",
		     "t.yaml:3:1: duplicate key 'store'");
}

static void test_bad_duration_and_size(void **state)
{
	(void)state;
	expect_error("publish:\n  heartbeat: 5q\n",
		     "t.yaml:2:14: publish.heartbeat: bad duration '5q'");
	expect_error("ingest:\n  max_future: -1h\n",
		     "t.yaml:2:15: ingest.max_future: bad duration '-1h'");
	expect_error("rules:\n  - name: a\n    when: x\n    for: 9999999999999999999d\n",
		     "t.yaml:4:10: for: bad duration '9999999999999999999d'");
	expect_error("store:\n  map_size: 64XB\n", "t.yaml:2:13: store.map_size: bad size '64XB'");
	expect_error("store:\n  max_size: 99999999999999999999\n",
		     "t.yaml:2:13: store.max_size: bad size '99999999999999999999'");
	expect_error("store:\n  map_size: 4096\n",
		     "t.yaml:2:13: store.map_size must be at least 1MiB");
	expect_error("store:\n  map_size: 2GiB\n  max_size: 1GiB\n",
		     "t.yaml:3:13: store.max_size must not be smaller than store.map_size");
	expect_error("control:\n  mode: \"0999\"\n", "t.yaml:2:9: control.mode: bad file mode '0999'");
	expect_error("log:\n  level: loud\n", "t.yaml:2:10: log.level: unknown level 'loud'");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_error("store:\n  path: [a, b]\n", "t.yaml:2:9: store.path must be a value, not a list");
	expect_error("publish:\n  retain: {days: 7}\n",
		     "t.yaml:2:11: publish.retain must be a value, not a mapping");
	expect_error("store: /var/lib/hearth\n", "t.yaml:1:8: store must be a mapping, not a value");
	expect_error("ingest:\n  listen: ipc:///x\n",
		     "t.yaml:2:11: ingest.listen must be a list, not a value");
	expect_error("rules: {name: a}\n", "t.yaml:1:8: rules must be a list, not a mapping");
	expect_error("- a\n- b\n", "t.yaml:1:1: the configuration must be a mapping, not a list");
}

static void test_rule_errors(void **state)
{
	(void)state;
	expect_error("rules:\n  - name: a\n    when: x\n  - name: a\n    when: y\n",
		     "t.yaml:4:11: duplicate rule name 'a'");
	expect_error("rules:\n  - name: Bad-Name\n    when: x\n",
		     "t.yaml:2:11: rule name 'Bad-Name' must match [a-z][a-z0-9_]{0,31}");
	expect_error("rules:\n  - name: abcdefghijklmnopqrstuvwxyz0123456\n    when: x\n",
		     "t.yaml:2:11: rule name 'abcdefghijklmnopqrstuvwxyz0123456' must match");
	expect_error("rules:\n  - name: a\n    when: x\n    severity: loud\n",
		     "t.yaml:4:15: severity must be info, warning or critical, not 'loud'");
	expect_error("rules:\n  - when: x\n", "t.yaml:2:5: a rule needs a 'name'");
	expect_error("rules:\n  - name: a\n", "t.yaml:2:5: rule 'a' needs a 'when' expression");
	expect_error("rules:\n  - name: a\n    when: x\n    labels: [team]\n",
		     "t.yaml:4:13: labels must be a mapping of name to value");
}

static void test_case_and_set_errors(void **state)
{
	(void)state;
	expect_error("events:\n  cases:\n    complaint: {open: complaint}\n",
		     "t.yaml:3:16: case 'complaint' needs both 'open' and 'close' event types");
	static const char *const bad_open[] = {
		"t.yaml:3:23: event type 'Complaint' must match",
		"t.yaml:3:16: case 'complaint' needs both 'open' and 'close' event types",
	};
	expect_errors("events:\n  cases:\n    complaint: {open: Complaint, close: done}\n",
		      bad_open, 2);
	expect_error("events:\n  cases:\n    Bad: {open: a, close: b}\n",
		     "t.yaml:3:5: case name 'Bad' must match");
	expect_error("events:\n  sets:\n    touch: call\n",
		     "t.yaml:3:12: events.sets entry must be a list, not a value");
	expect_error("events:\n  sets:\n    touch: [call, Visit]\n",
		     "t.yaml:3:19: event type 'Visit' must match");
	expect_error("events:\n  sets:\n    x: [a]\n  cases:\n    x: {open: a, close: b}\n",
		     "t.yaml:2:3: 'x' is both a set and a case");
}

static void test_yaml_syntax_error(void **state)
{
	(void)state;
	expect_error("store:\n  path: [\n", "t.yaml:3:1: ");
	expect_error("a: b\n  c: d\n", "t.yaml:2:4: mapping values are not allowed in this context");
	expect_error("store: &s {path: /x}\ningest: *s\n", "t.yaml:2:9: aliases are not supported");
	expect_error("? [a, b]\n: c\n", "t.yaml:1:3: a key must be a plain value");
	expect_error("store: {}\n---\nlog: {}\n", "t.yaml:2:1: only one YAML document is allowed");
}

static void test_all_errors_at_once(void **state)
{
	static const char *const want[] = {
		"t.yaml:2:3: unknown key 'bogus' in store",
		"t.yaml:3:13: store.map_size: bad size '12XB'",
		"t.yaml:5:11: publish.retain: bad duration '7x'",
		"t.yaml:7:9: control.path must be a value, not a list",
		"t.yaml:10:11: rule name 'A' must match",
		"t.yaml:12:15: severity must be info, warning or critical, not 'loud'",
		"t.yaml:14:12: duplicate rule name 'b'",
	};
	(void)state;
	expect_errors("store:\n"                          /* 1 */
		      "  bogus: 1\n"                      /* 2 */
		      "  map_size: 12XB\n"                /* 3 */
		      "publish:\n"                        /* 4 */
		      "  retain: 7x\n"                    /* 5 */
		      "control:\n"                        /* 6 */
		      "  path: [a]\n"                     /* 7 */
		      "rules:\n"                          /* 8 */
		      "  - when: x\n"                     /* 9 */
		      "    name: A\n"                     /* 10 */
		      "  - name: b\n"                     /* 11 */
		      "    severity: loud\n"              /* 12 */
		      "    when: x\n"                     /* 13 */
		      "  - {name: b, when: y}\n",         /* 14 */
		      want, (int)(sizeof(want) / sizeof(want[0])));
}

static void test_small_error_buffer(void **state)
{
	char small[48];
	const char *yaml = "store:\n  bogus: 1\npublish:\n  retain: 7x\nlog:\n  level: loud\n";
	struct config *cfg;

	(void)state;
	memset(small, 'Z', sizeof(small));
	cfg = config_load_string(yaml, strlen(yaml), "t.yaml", small, sizeof(small));
	assert_null(cfg);
	assert_non_null(memchr(small, '\0', sizeof(small)));
	assert_true(strncmp(small, "t.yaml:2:3: unknown key 'bogus' in store\n", 41) == 0);
}

static void test_name_is_valid(void **state)
{
	(void)state;
	assert_true(name_is_valid("a", 1));
	assert_true(name_is_valid("complaint_resolved", 18));
	assert_true(name_is_valid("a0123456789012345678901234567890", 32));
	assert_false(name_is_valid("a01234567890123456789012345678901", 33));
	assert_false(name_is_valid("", 0));
	assert_false(name_is_valid("0a", 2));
	assert_false(name_is_valid("_a", 2));
	assert_false(name_is_valid("Abc", 3));
	assert_false(name_is_valid("a-b", 3));
	assert_false(name_is_valid("a b", 3));
	assert_false(name_is_valid("aB", 2));
}

static void test_severity_names(void **state)
{
	(void)state;
	assert_string_equal(severity_name(SEVERITY_INFO), "info");
	assert_string_equal(severity_name(SEVERITY_WARNING), "warning");
	assert_string_equal(severity_name(SEVERITY_CRITICAL), "critical");
}

static void test_yamltree_positions(void **state)
{
	const char *text = "top:\n  key: value\n  list: [1, 'two']\n  quoted: \"q\"\n";
	char msg[256];
	struct ynode *root = ynode_load_string(text, strlen(text), "y", msg, sizeof(msg));
	struct ynode *top, *v;

	(void)state;
	assert_non_null(root);
	assert_int_equal(root->kind, YNODE_MAP);
	assert_int_equal(root->n, 1);
	top = ynode_get(root, "top");
	assert_non_null(top);
	assert_int_equal(top->kind, YNODE_MAP);
	assert_int_equal(top->n, 3);
	assert_int_equal(top->line, 2);
	assert_int_equal(top->col, 3);
	v = ynode_get(top, "key");
	assert_int_equal(v->kind, YNODE_SCALAR);
	assert_string_equal(v->value, "value");
	assert_int_equal(v->len, 5);
	assert_int_equal(v->line, 2);
	assert_int_equal(v->col, 8);
	assert_true(v->plain);
	assert_int_equal(ynode_key(top, 0)->col, 3);
	v = ynode_get(top, "list");
	assert_int_equal(v->kind, YNODE_SEQ);
	assert_int_equal(v->n, 2);
	assert_int_equal(v->line, 3);
	assert_int_equal(v->col, 9);
	assert_string_equal(v->items[1]->value, "two");
	assert_false(v->items[1]->plain);
	assert_int_equal(v->items[1]->col, 13);
	v = ynode_get(top, "quoted");
	assert_false(v->plain);
	assert_null(ynode_get(top, "missing"));
	assert_null(ynode_get(v, "x"));   /* not a map */
	ynode_free(root);
	ynode_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_override_defaults),
		cmocka_unit_test(test_rule_defaults),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_duration_and_size),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_case_and_set_errors),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_all_errors_at_once),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_name_is_valid),
		cmocka_unit_test(test_severity_names),
		cmocka_unit_test(test_yamltree_positions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
