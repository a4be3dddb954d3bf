/*
 * libFuzzer: a control request line through the real request path: JSON
 * parsing, command lookup, the admin check and every command handler, against
 * a real store (in a scratch directory) and rule engine.
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
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct server srv;
static struct json_tokener *tok;

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
		 "store: {path: %s/store, map_size: 8MiB, max_size: 64MiB}\n"
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
	srv.engine = engine_open(&srv, rs, &err);
	tok = json_tokener_new_ex(64);
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return srv.engine && tok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -1;
	struct control_peer admin = { .uid = 0, .admin = 1 };

	if (ready < 0)
		ready = setup();
	if (ready != 0 || size > (1u << 20))
		return 0;
	struct json_object *ans = control_answer(&srv, tok, (const char *)data, size, &admin);
	struct json_object *ok;
	/* every answer is an object with a boolean "ok" */
	if (!ans || !json_object_object_get_ex(ans, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
		__builtin_trap();
	json_object_put(ans);
	return 0;
}
