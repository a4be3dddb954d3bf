/*
 * Control over NATS, the client side (include/hearth/natsctl.h, PROTOCOL.md
 * §9.6): a connection, and batches of requests routed to their partition or
 * scattered to every shard, all sent at once and answered on one inbox.
 *
 * Each request of a batch gets its own reply subject, <inbox>.<index>, under
 * one wildcard subscription, so answers are told apart by subject and the
 * batch waits once for all of them. A partition that did not answer the last
 * scatter in time (its shard is down) is waited for only briefly by the next
 * one: a page of several scattered commands then costs one full wait while a
 * shard is down, not one per command, and a shard that is back answers within
 * the brief wait and is waited for in full again.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/cluster.h"
#include "hearth/json.h"
#include "hearth/natsctl.h"
#include "hearth/units.h"

#define MAX_URLS            16
#define DEFAULT_REQUEST_MS  10000
#define DEFAULT_SCATTER_MS  5000
#define LAGGING_MAX         65536       /* partitions remembered as lagging */

struct natsctl {
	natsConnection *nc;
	char *prefix;
	uint32_t partitions;
	int64_t request_ms, scatter_ms;
	struct json_tokener *tok;
	unsigned char *lagging;         /* [p]: p missed the last scatter's full wait */
	uint32_t nlagging;
};

/* One request of a batch. */
struct pending {
	struct json_object *req;
	const char *key;                /* routed: the customer; NULL: scattered */
	uint32_t partition;
	char subject[160];
	int64_t deadline;
	int done;
	struct json_object *answer;     /* routed: the owner's answer */
	struct json_object *answers;    /* scattered: every shard's so far */
	uint32_t partitions;            /* scattered: the count the shards give */
	char why[320];                  /* set when it failed */
};

static natsStatus set_servers(natsOptions *opts, const char *urls)
{
	char *copy = strdup(urls), *save = NULL;
	const char *list[MAX_URLS];
	int n = 0;
	natsStatus s;

	if (!copy)
		return NATS_NO_MEMORY;
	for (char *u = strtok_r(copy, ", ", &save); u && n < MAX_URLS; u = strtok_r(NULL, ", ", &save))
		list[n++] = u;
	s = n ? natsOptions_SetServers(opts, list, n) : NATS_INVALID_ARG;
	free(copy);
	return s;
}

static natsStatus connect_with(const struct natsctl_opts *o, natsConnection **nc)
{
	natsOptions *opts = NULL;
	natsStatus s = natsOptions_Create(&opts);

	if (s == NATS_OK)
		s = set_servers(opts, o->urls ? o->urls : "");
	if (s == NATS_OK && o->name)
		s = natsOptions_SetName(opts, o->name);
	if (s == NATS_OK && o->creds && *o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, o->creds, NULL);
	else if (s == NATS_OK && o->user && *o->user)
		s = natsOptions_SetUserInfo(opts, o->user, o->password ? o->password : "");
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK && o->background_connect)
		s = natsOptions_SetRetryOnFailedConnect(opts, true, NULL, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, opts);
	/* with background_connect, "not yet connected" is a connection that keeps trying */
	if (s == NATS_NOT_YET_CONNECTED && o->background_connect)
		s = NATS_OK;
	natsOptions_Destroy(opts);
	return s;
}

struct natsctl *natsctl_new(const struct natsctl_opts *o, struct herr *err)
{
	struct natsctl *c = calloc(1, sizeof(*c));
	natsStatus s;

	if (!c || !(c->prefix = strdup(o->prefix ? o->prefix : "hearth")) || !(c->tok = json_tokener_new())) {
		natsctl_free(c);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	c->partitions = o->partitions ? o->partitions : 16;
	c->request_ms = o->request_ms > 0 ? o->request_ms : DEFAULT_REQUEST_MS;
	c->scatter_ms = o->scatter_ms > 0 ? o->scatter_ms : DEFAULT_SCATTER_MS;
	if ((s = connect_with(o, &c->nc)) != NATS_OK) {
		const char *last = nats_GetLastError(NULL);
		herr_set(err, HERR_IO, "cannot reach NATS at %s (%s)", o->urls ? o->urls : "",
			 last && *last ? last : natsStatus_GetText(s));
		natsctl_free(c);
		return NULL;
	}
	return c;
}

void natsctl_free(struct natsctl *c)
{
	if (!c)
		return;
	natsConnection_Destroy(c->nc);
	json_tokener_free(c->tok);
	free(c->prefix);
	free(c->lagging);
	free(c);
}

natsConnection *natsctl_connection(const struct natsctl *c)
{
	return c->nc;
}

const char *natsctl_prefix(const struct natsctl *c)
{
	return c->prefix;
}

uint32_t natsctl_partitions(const struct natsctl *c)
{
	return c->partitions;
}

const char *natsctl_route_key(struct json_object *req)
{
	struct json_object *v;

	if ((json_object_object_get_ex(req, "id", &v) || json_object_object_get_ex(req, "customer", &v)) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* ---- lagging partitions ------------------------------------------------------------- */

static int is_lagging(const struct natsctl *c, uint32_t p)
{
	return p < c->nlagging && c->lagging[p];
}

/* What a finished scatter learnt: the missing ones lag, the others do not. */
static void note_lagging(struct natsctl *c, struct json_object *answers, uint32_t partitions)
{
	if (partitions > LAGGING_MAX)
		return;
	if (partitions > c->nlagging) {
		unsigned char *l = realloc(c->lagging, partitions);
		if (!l)
			return;         /* then every scatter waits in full: slower, still right */
		memset(l + c->nlagging, 0, partitions - c->nlagging);
		c->lagging = l;
		c->nlagging = partitions;
	}
	memset(c->lagging, 1, partitions);
	for (size_t i = 0; i < json_object_array_length(answers); i++) {
		struct json_object *owns = json_object_object_get(json_object_array_get_idx(answers, i), "owns");
		for (size_t j = 0; owns && j < json_object_array_length(owns); j++) {
			int64_t p = json_object_get_int64(json_object_array_get_idx(owns, j));
			if (p >= 0 && p < (int64_t)partitions)
				c->lagging[p] = 0;
		}
	}
}

/* 1 when every partition that has not answered lagged last time. */
static int only_laggards_left(const struct natsctl *c, struct json_object *answers, uint32_t partitions)
{
	struct json_object *missing = json_object_new_array();
	int only = 1;

	natsctl_covered(answers, partitions, missing);
	for (size_t i = 0; only && i < json_object_array_length(missing); i++)
		only = is_lagging(c, (uint32_t)json_object_get_int64(json_object_array_get_idx(missing, i)));
	json_object_put(missing);
	return only;
}

/* How long a laggard is waited for: a shard that is up answers well within it. */
static int64_t grace_ms(const struct natsctl *c)
{
	int64_t g = c->scatter_ms / 10;
	return g < 100 ? 100 : g > 500 ? 500 : g;
}

/* ---- one batch ---------------------------------------------------------------------- */

/* A routed request failed: its owner did not answer. */
static void fail(struct pending *p, const char *detail)
{
	p->done = 1;
	snprintf(p->why, sizeof(p->why), "partition %u (%s): %s", p->partition, p->subject, detail);
}

/* One message on the batch's inbox, for request p. */
static void deliver(struct natsctl *c, struct pending *p, natsMsg *m)
{
	struct json_object *a, *v;

	if (p->done)
		return;
	if (natsMsg_IsNoResponders(m)) {
		if (p->key)
			fail(p, "no shard owns it");
		else
			p->done = 1;
		return;
	}
	a = json_parse_whole(c->tok, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), NULL);
	if (!a || !json_object_is_type(a, json_type_object)) {
		json_object_put(a);
		if (p->key)
			fail(p, "the answer is not a JSON object");
		return;
	}
	if (p->key) {
		p->answer = a;
		p->done = 1;
		return;
	}
	if (json_object_object_get_ex(a, "partitions", &v))
		p->partitions = (uint32_t)json_object_get_int64(v);
	json_object_array_add(p->answers, a);
	if (natsctl_covered(p->answers, p->partitions, NULL)) {
		p->done = 1;
	} else if (only_laggards_left(c, p->answers, p->partitions)) {
		int64_t soon = mono_now_ms() + grace_ms(c);
		if (soon < p->deadline)
			p->deadline = soon;
	}
}

/* The deadline came: a routed request failed, a scatter ends with what it has. */
static void expire(struct pending *p)
{
	if (p->key)
		fail(p, natsStatus_GetText(NATS_TIMEOUT));
	else
		p->done = 1;
}

static int64_t next_deadline(struct pending *p, size_t n)
{
	int64_t first = INT64_MAX;

	for (size_t i = 0; i < n; i++)
		if (!p[i].done && p[i].deadline < first)
			first = p[i].deadline;
	return first;
}

/* Sends every request with its reply subject; 0, or -1 with err. */
static int send_all(struct natsctl *c, struct pending *p, size_t n, const char *inbox, struct herr *err)
{
	int64_t now = mono_now_ms();

	for (size_t i = 0; i < n; i++) {
		char reply[160];
		const char *text = json_object_to_json_string_ext(p[i].req, JSON_C_TO_STRING_PLAIN);
		if ((p[i].key = natsctl_route_key(p[i].req))) {
			p[i].partition = cluster_fnv1a32(p[i].key, strlen(p[i].key)) % c->partitions;
			snprintf(p[i].subject, sizeof(p[i].subject), "%s.ctl.p.%u", c->prefix, p[i].partition);
			p[i].deadline = now + c->request_ms;
		} else {
			snprintf(p[i].subject, sizeof(p[i].subject), "%s.ctl.all", c->prefix);
			p[i].deadline = now + c->scatter_ms;
			p[i].partitions = c->partitions;
			if (!(p[i].answers = json_object_new_array()))
				return herr_set(err, HERR_NOMEM, "out of memory");
		}
		snprintf(reply, sizeof(reply), "%s.%zu", inbox, i);
		natsStatus s = natsConnection_PublishRequestString(c->nc, p[i].subject, reply, text);
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "cannot send on %s (%s)", p[i].subject, natsStatus_GetText(s));
	}
	return 0;
}

/* Waits until every request is done or past its deadline. */
static int wait_all(struct natsctl *c, struct pending *p, size_t n, natsSubscription *sub, size_t inbox_len,
		    struct herr *err)
{
	for (;;) {
		int64_t first = next_deadline(p, n), left;
		natsMsg *m = NULL;
		natsStatus s;

		if (first == INT64_MAX)
			return 0;
		if ((left = first - mono_now_ms()) <= 0) {
			for (size_t i = 0; i < n; i++)
				if (!p[i].done && p[i].deadline <= first)
					expire(&p[i]);
			continue;
		}
		s = natsSubscription_NextMsg(&m, sub, left);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "NATS: %s", natsStatus_GetText(s));
		const char *subject = natsMsg_GetSubject(m);
		char *end = NULL;
		size_t i = strlen(subject) > inbox_len + 1 ? strtoul(subject + inbox_len + 1, &end, 10) : n;
		if (i < n && end && !*end)
			deliver(c, &p[i], m);
		natsMsg_Destroy(m);
	}
}

/* The answers out of the finished requests; -1 with err at the first that failed. */
static int settle(struct natsctl *c, struct pending *p, size_t n, struct json_object **answers, struct herr *err)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].why[0])
			return herr_set(err, HERR_IO, "%s", p[i].why);
		if (p[i].key) {
			answers[i] = p[i].answer;
			p[i].answer = NULL;
			continue;
		}
		if (json_object_array_length(p[i].answers) == 0)
			return herr_set(err, HERR_IO, "no shard answered on %s within %lld ms", p[i].subject,
					(long long)c->scatter_ms);
		struct json_object *missing = json_object_new_array();
		natsctl_covered(p[i].answers, p[i].partitions, missing);
		note_lagging(c, p[i].answers, p[i].partitions);
		answers[i] = natsctl_merge(p[i].req, p[i].answers, missing);
		json_object_put(missing);
	}
	return 0;
}

int natsctl_calls(struct natsctl *c, struct json_object **reqs, struct json_object **answers, size_t n,
		  struct herr *err)
{
	struct pending *p = calloc(n ? n : 1, sizeof(*p));
	natsSubscription *sub = NULL;
	natsInbox *inbox = NULL;
	char wild[160];
	int rc = -1;

	memset(answers, 0, n * sizeof(*answers));
	if (!p) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		p[i].req = reqs[i];
	if (natsInbox_Create(&inbox) != NATS_OK) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(wild, sizeof(wild), "%s.*", (const char *)inbox);
	natsStatus s = natsConnection_SubscribeSync(&sub, c->nc, wild);
	if (s != NATS_OK) {
		herr_set(err, HERR_IO, "cannot subscribe to %s (%s)", wild, natsStatus_GetText(s));
		goto out;
	}
	if (send_all(c, p, n, (const char *)inbox, err) < 0 ||
	    wait_all(c, p, n, sub, strlen((const char *)inbox), err) < 0 || settle(c, p, n, answers, err) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; p && i < n; i++) {
		json_object_put(p[i].answer);
		json_object_put(p[i].answers);
		if (rc < 0) {
			json_object_put(answers[i]);
			answers[i] = NULL;
		}
	}
	free(p);
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	return rc;
}

struct json_object *natsctl_gather(struct natsctl *c, const char *text, uint32_t *partitions)
{
	struct json_object *answers = json_object_new_array();
	natsSubscription *sub = NULL;
	natsInbox *inbox = NULL;
	char subject[160];
	int64_t end = mono_now_ms() + c->scatter_ms;

	*partitions = c->partitions;
	snprintf(subject, sizeof(subject), "%s.ctl.all", c->prefix);
	if (natsInbox_Create(&inbox) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, c->nc, inbox) != NATS_OK ||
	    natsConnection_PublishRequestString(c->nc, subject, inbox, text) != NATS_OK)
		goto out;
	while (mono_now_ms() < end) {
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, end - mono_now_ms()) != NATS_OK)
			break;
		struct json_object *a = json_tokener_parse(natsMsg_GetData(m)), *p;
		natsMsg_Destroy(m);
		if (!a)
			continue;
		if (json_object_object_get_ex(a, "partitions", &p))
			*partitions = (uint32_t)json_object_get_int64(p);
		json_object_array_add(answers, a);
		if (natsctl_covered(answers, *partitions, NULL))
			break;
	}
out:
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	return answers;
}
