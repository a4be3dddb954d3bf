/*
 * The control socket transport (PROTOCOL.md §5). One connection is kept open
 * and reused; a page's requests are pipelined on it (sent together, the
 * answers read in order), so a view of several commands costs one round trip.
 * Every answer must come within the configured deadline, so a hung hearthd
 * costs a page a few seconds and a banner, not a hung hearth-web.
 *
 * The reads (api.c keeps their list) are harmless to repeat, so a batch whose
 * connection broke is simply sent again once on a fresh connection: the kept
 * connection may have been closed by a hearthd that restarted since. A write
 * (ack, silence.add, silence.remove) is not: hearthd may have done it before the
 * connection broke, and a silence added twice is two silences. It is sent once,
 * on a new connection, so that a stale kept one cannot be why it fails.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/ctlclient.h"
#include "hearth/json.h"
#include "hearth/units.h"
#include "web.h"

struct socket_transport {
	struct web_transport base;      /* first: the transport is this */
	char *path;
	int64_t timeout_ms;
	struct ctl_client *cc;
	struct json_tokener *tok;
};

static void drop(struct socket_transport *c)
{
	ctl_close(c->cc);
	c->cc = NULL;
}

/* One attempt: send all, read all. 0, or -1 with *got answers read (and kept). */
static int attempt(struct socket_transport *c, struct json_object **reqs, struct json_object **answers,
		   size_t n, size_t *got, struct herr *err)
{
	int64_t deadline = mono_now_ms() + c->timeout_ms;

	*got = 0;
	if (!c->cc && !(c->cc = ctl_connect(c->path, err)))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (ctl_send_json(c->cc, reqs[i], err) < 0)
			return -1;
	for (size_t i = 0; i < n; i++) {
		const char *line;
		size_t len;
		int64_t left = deadline - mono_now_ms();
		int rc = ctl_recv(c->cc, &line, &len, left > 0 ? (int)left : 0, err);
		if (rc == 1)
			return herr_set(err, HERR_IO, "hearthd did not answer within %lld ms",
					(long long)c->timeout_ms);
		if (rc < 0)
			return -1;
		answers[i] = json_parse_whole(c->tok, line, len, NULL);
		if (!answers[i] || !json_object_is_type(answers[i], json_type_object)) {
			json_object_put(answers[i]);
			answers[i] = NULL;
			return herr_set(err, HERR_IO, "hearthd sent an answer that is not a JSON object");
		}
		(*got)++;
	}
	return 0;
}

static int failed(struct socket_transport *c, struct json_object **answers, size_t n)
{
	drop(c);
	for (size_t i = 0; i < n; i++) {
		json_object_put(answers[i]);
		answers[i] = NULL;
	}
	return -1;
}

static int socket_calls(struct web_transport *t, struct json_object **reqs, struct json_object **answers,
			size_t n, struct herr *err)
{
	struct socket_transport *c = (struct socket_transport *)t;
	int reused = c->cc != NULL;
	size_t got = 0;

	memset(answers, 0, n * sizeof(*answers));
	if (attempt(c, reqs, answers, n, &got, err) == 0)
		return 0;
	drop(c);
	/* a kept connection that broke before any answer: hearthd may have restarted */
	if (reused && got == 0 && err->code == HERR_IO && attempt(c, reqs, answers, n, &got, err) == 0)
		return 0;
	return failed(c, answers, n);
}

static int socket_write(struct web_transport *t, struct json_object *req, struct json_object **answer,
			struct herr *err)
{
	struct socket_transport *c = (struct socket_transport *)t;
	size_t got = 0;

	*answer = NULL;
	drop(c);
	if (attempt(c, &req, answer, 1, &got, err) == 0)
		return 0;
	return failed(c, answer, 1);
}

static void socket_free(struct web_transport *t)
{
	struct socket_transport *c = (struct socket_transport *)t;

	if (!c)
		return;
	ctl_close(c->cc);
	json_tokener_free(c->tok);
	free(c->path);
	free(c);
}

static const struct web_transport_ops socket_ops = {
	.calls = socket_calls,
	.write = socket_write,
	.free = socket_free,
};

struct web_transport *web_socket_transport_new(const char *path, int64_t timeout_ms)
{
	struct socket_transport *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (!(c->path = strdup(path)) || !(c->tok = json_tokener_new())) {
		socket_free(&c->base);
		return NULL;
	}
	c->base.ops = &socket_ops;
	c->timeout_ms = timeout_ms;
	return &c->base;
}
