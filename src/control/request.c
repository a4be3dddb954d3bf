/*
 * A control request line: parsed and checked (on the control thread), and
 * the whole path on the writer for those who call it there (control_answer:
 * the cluster's control subjects, the fuzzer).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "control_impl.h"
#include "hearth/commands.h"
#include "hearth/engine.h"
#include "hearth/job.h"
#include "hearth/log.h"
#include "hearth/server.h"
#include "hearth/timeline.h"

struct json_object *error_answer(const struct herr *err)
{
	struct json_object *ans = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(ans, "ok", json_object_new_boolean(0));
	json_object_object_add(e, "code", json_object_new_string(herr_name(err->code)));
	json_object_object_add(e, "message", json_object_new_string(err->msg));
	json_object_object_add(ans, "error", e);
	return ans;
}

struct json_object *request_parse(struct json_tokener *tok, const char *line, size_t len,
				  const struct command **command, struct herr *err)
{
	struct json_object *req, *cmd;

	json_tokener_reset(tok);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (!req || json_tokener_get_parse_end(tok) < len) {
		size_t end = json_tokener_get_parse_end(tok);
		int trailing = req != NULL;
		while (trailing && end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
			end++;
		if (!req || end < len) {
			herr_set(err, HERR_BAD_REQUEST, "not valid JSON: %s",
				 req ? "text after the request"
				     : json_tokener_error_desc(json_tokener_get_error(tok)));
			goto fail;
		}
	}
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) || !json_object_is_type(cmd, json_type_string)) {
		herr_set(err, HERR_BAD_REQUEST, "a request is an object with a string \"cmd\"");
		goto fail;
	}
	*command = command_find(json_object_get_string(cmd));
	if (!*command) {
		herr_set(err, HERR_UNKNOWN_COMMAND, "unknown command '%.60s'", json_object_get_string(cmd));
		goto fail;
	}
	return req;
fail:
	json_object_put(req);
	return NULL;
}

int request_allowed(const struct command *command, const struct control_peer *peer, struct herr *err)
{
	if (!(command->flags & CMD_CHANGES_STATE) || peer->admin)
		return 0;
	log_warning("control, refused '%s' to uid %d pid %d (not an admin)", command->name,
		    (int)peer->uid, (int)peer->pid);
	return herr_set(err, HERR_FORBIDDEN, "'%s' changes state: only root, the daemon's user "
			"and members of control.admin_groups may use it", command->name);
}

struct json_object *control_job_answer(struct server *srv, struct json_object *ans, int rc,
				       const struct herr *err)
{
	if (rc == 0)
		return ans;
	json_object_put(ans);
	if (srv)
		srv->counters.control_errors++;
	return error_answer(err);
}

/* A job with nobody to wait for it (the fuzzer): its slices, one after another. */
static struct json_object *run_job(struct server *srv, struct job *job, struct json_object *ans)
{
	struct herr err = { 0 };
	int rc;

	while ((rc = job->step(job, ans, &err)) == 1)
		;
	job->free(job);
	return control_job_answer(srv, ans, rc, &err);
}

/* A reader command on the writer: its reads go to the writer's own state. */
static int run_read(struct server *srv, const struct command *command, struct json_object *req,
		    struct json_object *ans, struct herr *err)
{
	struct reader rd = {
		.st = srv->st, .srv = srv, .as = timeline_alert_states(srv->tl), .cfg = srv->cfg,
		.rs = engine_rules(srv->engine),
		.started_mono_ms = srv->started_mono_ms, .tok = json_tokener_new(),
	};
	int rc;

	if (!rd.tok)
		return herr_set(err, HERR_NOMEM, "out of memory");
	rc = command->read(&rd, req, ans, err);
	json_tokener_free(rd.tok);
	return rc;
}

struct json_object *control_answer(struct server *srv, struct json_tokener *tok, const char *line,
				   size_t len, const struct control_peer *peer, struct job **later)
{
	const struct command *command = NULL;
	struct json_object *req, *ans = NULL;
	struct herr err = { 0 };

	srv->counters.control_requests++;
	req = request_parse(tok, line, len, &command, &err);
	if (!req)
		goto out;
	if (request_allowed(command, peer, &err) < 0) {
		srv->counters.control_forbidden++;
		goto out;
	}
	ans = json_object_new_object();
	json_object_object_add(ans, "ok", json_object_new_boolean(1));
	if (command->read) {
		if (run_read(srv, command, req, ans, &err) < 0) {
			json_object_put(ans);
			ans = NULL;
		}
	} else if (!command->fn) {
		struct job *job = command->start(srv, req, &err);
		if (!job) {
			json_object_put(ans);
			ans = NULL;
		} else if (later) {
			*later = job;
			json_object_put(ans);
			json_object_put(req);
			return NULL;
		} else {
			ans = run_job(srv, job, ans);
		}
	} else if (command->fn(srv, req, ans, &err) < 0) {
		json_object_put(ans);
		ans = NULL;
	}
out:
	if (!ans) {
		srv->counters.control_errors++;
		ans = error_answer(&err);
	}
	json_object_put(req);
	return ans;
}
