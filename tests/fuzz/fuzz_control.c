/*
 * libFuzzer: a control request line through the real request path: JSON
 * parsing, command lookup, the admin check and every command handler, against
 * a real store (in a scratch directory) and rule engine. The store starts with
 * several MiB of large notifications (long CJK names), so that `replay`,
 * `forget`, `alerts` and the other readers of stored bodies walk more of them
 * than a stack could hold copies of.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/engine.h"
#include "hearth/loop.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct server srv;
static struct json_tokener *tok;

#define PRELOAD_CUSTOMERS 4000          /* x ~2.4 KB of notification: more than an 8 MiB stack */
#define PRELOAD_BATCH     200
#define LONG_NAME_CHARS   700

/* Customers F0000.. with a 700-character CJK name and an open complaint, so each fires. */
static int preload(void)
{
	struct control_peer admin = { .uid = 0, .admin = 1 };
	char name[LONG_NAME_CHARS * 3 + 1], cid[16], eid[24];
	int rc = 0;

	for (int i = 0; i < LONG_NAME_CHARS; i++)
		memcpy(name + i * 3, "\xe5\x90\x8d", 3);        /* 名 */
	name[LONG_NAME_CHARS * 3] = '\0';
	for (int start = 0; rc == 0 && start < PRELOAD_CUSTOMERS; start += PRELOAD_BATCH) {
		struct json_object *req = json_object_new_object(), *events = json_object_new_array(), *ans, *ok;
		for (int i = start; i < start + PRELOAD_BATCH; i++) {
			struct json_object *p = json_object_new_object(), *c = json_object_new_object(),
					   *attrs = json_object_new_object();
			snprintf(cid, sizeof(cid), "F%04d", i);
			snprintf(eid, sizeof(eid), "p-%s", cid);
			json_object_object_add(attrs, "name", json_object_new_string(name));
			json_object_object_add(attrs, "tier", json_object_new_string("B"));
			json_object_object_add(p, "customer", json_object_new_string(cid));
			json_object_object_add(p, "ts", json_object_new_string("2026-01-01T00:00:00Z"));
			json_object_object_add(p, "type", json_object_new_string("profile"));
			json_object_object_add(p, "id", json_object_new_string(eid));
			json_object_object_add(p, "attrs", attrs);
			json_object_object_add(c, "customer", json_object_new_string(cid));
			json_object_object_add(c, "ts", json_object_new_string("2026-01-01T00:00:01Z"));
			json_object_object_add(c, "type", json_object_new_string("complaint"));
			json_object_object_add(c, "ref", json_object_new_string("T1"));
			json_object_array_add(events, p);
			json_object_array_add(events, c);
		}
		json_object_object_add(req, "cmd", json_object_new_string("ingest"));
		json_object_object_add(req, "events", events);
		const char *line = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
		ans = control_answer(&srv, tok, line, strlen(line), &admin, NULL);
		if (!ans || !json_object_object_get_ex(ans, "ok", &ok) || !json_object_get_boolean(ok))
			rc = -1;
		json_object_put(ans);
		json_object_put(req);
	}
	return rc;
}

static int setup(void)
{
	static char dir[] = "/tmp/hearth-fuzz-XXXXXX", path[256];
	char errors[4096], text[2048];
	struct ruleset *rs;
	struct herr err = { 0 };
	FILE *f;

	if (!mkdtemp(dir))
		return -1;
	snprintf(text, sizeof(text),
		 "store: {path: %s/store, map_size: 64MiB, max_size: 512MiB}\n"
		 "publish: {listen: [\"ipc://%s/alerts.sock\"]}\n"
		 "control: {path: %s/control.sock}\n"
		 "events:\n  sets: {touch: [call, visit]}\n"
		 "  cases: {complaint: {open: complaint, close: complaint_resolved}}\n"
		 "priority: 'value * 1'\n"
		 "rules:\n  - name: cooling\n    when: 'since(touch) > 30d'\n"
		 "  - name: complaint_open\n    when: 'open(complaint) > 0'\n    repeat: 1d\n",
		 dir, dir, dir);
	snprintf(path, sizeof(path), "%s/hearth.yaml", dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fputs(text, f);
	fclose(f);
	srv.config_path = path;
	srv.test_clock = 1;
	srv.cfg = server_load_config(path, &rs, errors, sizeof(errors));
	srv.loop = loop_new();
	srv.zctx = zmq_ctx_new();
	if (!srv.cfg || !srv.loop || !srv.zctx)
		return -1;
	srv.st = store_open(srv.cfg->store_path, srv.cfg->map_size, srv.cfg->max_size, &err);
	if (!srv.st || !(srv.tl = timeline_open(srv.st, srv.cfg, &err)))
		return -1;
	srv.outbox = outbox_open(srv.cfg, srv.st, srv.loop, srv.zctx, &srv.ingest_clock, &err);
	srv.engine = srv.outbox ? engine_open(srv.cfg, srv.st, srv.tl, srv.outbox, srv.loop, &srv.ingest_clock,
					      rs, &err) : NULL;
	srv.gc = (struct group_committer){ srv.st, srv.tl, srv.engine, NULL, NULL };
	tok = json_tokener_new_ex(64);
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	if (!srv.engine || !tok)
		return -1;
	return preload();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -1;
	struct control_peer admin = { .uid = 0, .admin = 1 };

	if (ready < 0)
		ready = setup();
	if (ready != 0 || size > (1u << 20))
		return 0;
	struct json_object *ans = control_answer(&srv, tok, (const char *)data, size, &admin, NULL);
	struct json_object *ok;
	/* every answer is an object with a boolean "ok" */
	if (!ans || !json_object_object_get_ex(ans, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
		__builtin_trap();
	json_object_put(ans);
	return 0;
}
