/*
 * The way to hearthd, whichever transport web.yaml names (web.h): the control
 * socket (ctl_socket.c) or the shards of a cluster over NATS (ctl_nats.c). What
 * does not depend on the transport lives here: counting failures, logging when
 * hearthd goes away and comes back (once each), and collecting the partitions
 * merged answers say are missing, so that a page can warn about them.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "web.h"

struct web_ctl {
	struct web_transport *t;
	char where[512];
	uint64_t failures;
	int down;                       /* the last attempt failed: log the recovery */
	struct json_object *missing;    /* partitions missing since the last take, or NULL */
};

struct web_ctl *web_ctl_new(const struct web_config *cfg, struct herr *err)
{
	struct web_ctl *c = calloc(1, sizeof(*c));

	if (!c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	if (cfg->nats.urls) {
		snprintf(c->where, sizeof(c->where), "NATS %s", cfg->nats.urls);
		c->t = web_nats_transport_new(&cfg->nats, cfg->control_timeout_ms, err);
	} else {
		snprintf(c->where, sizeof(c->where), "%s", cfg->control);
		if (!(c->t = web_socket_transport_new(cfg->control, cfg->control_timeout_ms)))
			herr_set(err, HERR_NOMEM, "out of memory");
	}
	if (!c->t) {
		free(c);
		return NULL;
	}
	return c;
}

void web_ctl_free(struct web_ctl *c)
{
	if (!c)
		return;
	c->t->ops->free(c->t);
	json_object_put(c->missing);
	free(c);
}

uint64_t web_ctl_failures(const struct web_ctl *c)
{
	return c->failures;
}

const char *web_ctl_where(const struct web_ctl *c)
{
	return c->where;
}

struct json_object *web_ctl_take_missing(struct web_ctl *c)
{
	struct json_object *m = c->missing;

	c->missing = NULL;
	return m;
}

static int has_int(struct json_object *list, int64_t v)
{
	for (size_t i = 0; i < json_object_array_length(list); i++)
		if (json_object_get_int64(json_object_array_get_idx(list, i)) == v)
			return 1;
	return 0;
}

static void note_missing(struct web_ctl *c, struct json_object **answers, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct json_object *m;
		if (!answers[i] || !json_object_object_get_ex(answers[i], "missing_partitions", &m) ||
		    !json_object_is_type(m, json_type_array))
			continue;
		if (!c->missing && !(c->missing = json_object_new_array()))
			return;
		for (size_t j = 0; j < json_object_array_length(m); j++) {
			int64_t p = json_object_get_int64(json_object_array_get_idx(m, j));
			if (!has_int(c->missing, p))
				json_object_array_add(c->missing, json_object_new_int64(p));
		}
	}
}

static int outcome(struct web_ctl *c, int rc, const struct herr *err)
{
	if (rc < 0) {
		c->failures++;
		if (!c->down)
			log_warning("control, %s", err->msg);
		c->down = 1;
		return -1;
	}
	if (c->down)
		log_info("control, hearthd answers again at %s", c->where);
	c->down = 0;
	return 0;
}

int web_ctl_calls(struct web_ctl *c, struct json_object **reqs, struct json_object **answers,
		  size_t n, struct herr *err)
{
	int rc = c->t->ops->calls(c->t, reqs, answers, n, err);

	if (rc == 0)
		note_missing(c, answers, n);
	return outcome(c, rc, err);
}

int web_ctl_write(struct web_ctl *c, struct json_object *req, struct json_object **answer, struct herr *err)
{
	return outcome(c, c->t->ops->write(c->t, req, answer, err), err);
}
