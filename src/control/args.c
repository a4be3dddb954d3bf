/*
 * Reading a control request's arguments (PROTOCOL.md §5.2): every helper names the
 * argument in its error, so an operator reads which field was wrong and why.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/group_commit.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
#include "hearth/notify.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

/* ---- arguments ------------------------------------------------------------- */

struct json_object *arg(struct json_object *req, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, name, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

int arg_string(struct json_object *req, const char *name, int required, const char **s,
		      size_t *len, struct herr *err)
{
	struct json_object *v = arg(req, name);

	*s = NULL;
	*len = 0;
	if (!v)
		return required ? herr_set(err, HERR_BAD_REQUEST, "%s: required", name) : 0;
	if (!json_object_is_type(v, json_type_string))
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be a string", name);
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return 0;
}

int arg_id(struct json_object *req, const char *name, const char **s, size_t *len,
		  struct herr *err)
{
	if (arg_string(req, name, 1, s, len, err) < 0)
		return -1;
	if (!id_is_valid(*s, *len))
		return herr_set(err, HERR_BAD_REQUEST,
				"%s: must be 1 to %d bytes without control characters", name,
				HEARTH_ID_MAX);
	return 0;
}

int arg_limit(struct json_object *req, size_t def, size_t *out, struct herr *err)
{
	struct json_object *v = arg(req, "limit");

	*out = def;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
	    json_object_get_int64(v) > HEARTH_LIST_MAX)
		return herr_set(err, HERR_BAD_REQUEST, "limit: must be an integer from 1 to %d",
				HEARTH_LIST_MAX);
	*out = (size_t)json_object_get_int64(v);
	return 0;
}

int arg_bool(struct json_object *req, const char *name, int *out, struct herr *err)
{
	struct json_object *v = arg(req, name);

	*out = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be true or false", name);
	*out = json_object_get_boolean(v);
	return 0;
}

int arg_time(struct json_object *req, const char *name, int64_t *out, struct herr *err)
{
	struct json_object *v = arg(req, name);

	if (!v)
		return 0;
	if (time_from_json(v, out) < 0)
		return herr_set(err, HERR_BAD_REQUEST,
				"%s: must be RFC 3339 text or integer unix milliseconds", name);
	return 0;
}

struct json_object *time_or_null(int64_t ms)
{
	char buf[TIME_BUF];
	return ms == TIME_NONE ? NULL : json_object_new_string(time_format(ms, buf, sizeof(buf)));
}

/* The config's priority for a customer now; null without a priority. */
/* Compiles an expression given in a request; bad_expr names the column. */
struct expr *arg_expr(const struct config *cfg, struct json_object *req, const char *name,
			     int required, struct herr *err)
{
	const char *src;
	size_t len, pos;
	char msg[200];
	struct expr *e;

	if (arg_string(req, name, required, &src, &len, err) < 0 || !src)
		return NULL;
	e = expr_compile(src, cfg, msg, sizeof(msg), &pos);
	if (!e)
		herr_set(err, HERR_BAD_EXPR, "%s: column %zu: %s", name, pos + 1, msg);
	return e;
}


int arg_duration(struct json_object *req, const char *name, int64_t *out, struct herr *err)
{
	const char *s;
	size_t len;

	if (arg_string(req, name, 0, &s, &len, err) < 0)
		return -1;
	if (s && duration_parse(s, len, out) < 0)
		return herr_set(err, HERR_BAD_REQUEST, "%s: must be a duration such as 30d, 12h or 0s", name);
	return 0;
}
