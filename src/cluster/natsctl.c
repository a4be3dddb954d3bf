/*
 * Control over NATS, the client side (include/hearth/natsctl.h, PROTOCOL.md
 * §9.6): a connection, and batches of requests routed to their partition or
 * scattered to every shard, all sent at once and answered on one inbox.
 *
 * Each request of a batch gets its own reply subject, <inbox>.<batch>.<index>,
 * under one wildcard subscription kept for the connection's life, so answers
 * are told apart by subject, late ones of an earlier batch are dropped, and
 * the batch waits once for all of them. The subscription is asynchronous
 * because only a message handler sees which request a "no responders" status
 * answers (a synchronous one reports the status without the subject): libnats'
 * thread queues the messages, the caller's thread takes them. A partition that did not answer the last
 * scatter in time (its shard is down) is waited for only briefly by the next
 * one: a page of several scattered commands then costs one full wait while a
 * shard is down, not one per command, and a shard that is back answers within
 * the brief wait and is waited for in full again.
 */
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	/* the inbox: answers arrive on libnats' thread, queued under mu */
	char inbox[128];
	uint64_t batch;
	natsSubscription *sub;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	natsMsg **queue;
	size_t head, len, cap;
	int sub_closed;                 /* libnats will call on_msg no more */
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

/* ---- the inbox ------------------------------------------------------------------------ */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct natsctl *c = closure;

	(void)nc;
	(void)sub;
	pthread_mutex_lock(&c->mu);
	if (c->head == c->len)
		c->head = c->len = 0;
	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		natsMsg **q = realloc(c->queue, cap * sizeof(*q));
		if (!q) {
			pthread_mutex_unlock(&c->mu);
			natsMsg_Destroy(msg);   /* lost: its request ends at its deadline */
			return;
		}
		c->queue = q;
		c->cap = cap;
	}
	c->queue[c->len++] = msg;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void on_closed(void *closure)
{
	struct natsctl *c = closure;

	pthread_mutex_lock(&c->mu);
	c->sub_closed = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* The next queued message, waiting until the monotonic deadline; NULL when none came. */
static natsMsg *next_msg(struct natsctl *c, int64_t deadline)
{
	struct timespec ts = { .tv_sec = deadline / 1000, .tv_nsec = (long)(deadline % 1000) * 1000000 };
	natsMsg *m = NULL;

	pthread_mutex_lock(&c->mu);
	while (c->head == c->len && mono_now_ms() < deadline)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
			break;
	if (c->head < c->len)
		m = c->queue[c->head++];
	pthread_mutex_unlock(&c->mu);
	return m;
}

static natsStatus open_inbox(struct natsctl *c)
{
	natsInbox *inbox = NULL;
	char wild[160];
	natsStatus s = natsInbox_Create(&inbox);

	if (s != NATS_OK)
		return s;
	snprintf(c->inbox, sizeof(c->inbox), "%s", (const char *)inbox);
	natsInbox_Destroy(inbox);
	snprintf(wild, sizeof(wild), "%s.>", c->inbox);
	if ((s = natsConnection_Subscribe(&c->sub, c->nc, wild, on_msg, c)) == NATS_OK)
		s = natsSubscription_SetOnCompleteCB(c->sub, on_closed, c);
	return s;
}

/* Stops the subscription and waits until libnats is done calling on_msg. */
static void close_inbox(struct natsctl *c)
{
	if (!c->sub)
		return;
	if (natsSubscription_Unsubscribe(c->sub) == NATS_OK) {
		pthread_mutex_lock(&c->mu);
		while (!c->sub_closed)
			pthread_cond_wait(&c->cv, &c->mu);
		pthread_mutex_unlock(&c->mu);
	}
	natsSubscription_Destroy(c->sub);
	c->sub = NULL;
	for (size_t i = c->head; i < c->len; i++)
		natsMsg_Destroy(c->queue[i]);
	c->head = c->len = 0;
}

struct natsctl *natsctl_new(const struct natsctl_opts *o, struct herr *err)
{
	struct natsctl *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	natsStatus s;

	if (!c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);      /* deadlines are mono_now_ms() */
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!(c->prefix = strdup(o->prefix ? o->prefix : "hearth")) || !(c->tok = json_tokener_new())) {
		natsctl_free(c);
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	c->partitions = o->partitions ? o->partitions : 16;
	c->request_ms = o->request_ms > 0 ? o->request_ms : DEFAULT_REQUEST_MS;
	c->scatter_ms = o->scatter_ms > 0 ? o->scatter_ms : DEFAULT_SCATTER_MS;
	if ((s = connect_with(o, &c->nc)) != NATS_OK || (s = open_inbox(c)) != NATS_OK) {
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
	close_inbox(c);
	natsConnection_Destroy(c->nc);
	free(c->queue);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
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
static int send_all(struct natsctl *c, struct pending *p, size_t n, struct herr *err)
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
		snprintf(reply, sizeof(reply), "%s.%llu.%zu", c->inbox, (unsigned long long)c->batch, i);
		natsStatus s = natsConnection_PublishRequestString(c->nc, p[i].subject, reply, text);
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "cannot send on %s (%s)", p[i].subject, natsStatus_GetText(s));
	}
	return 0;
}

/* Which request of this batch a message on the inbox answers; n when none. */
static size_t request_of(const struct natsctl *c, natsMsg *m, size_t n)
{
	const char *subject = natsMsg_GetSubject(m);
	size_t len = strlen(c->inbox);
	char *end = NULL;
	unsigned long long batch;
	size_t i;

	if (strncmp(subject, c->inbox, len) || subject[len] != '.')
		return n;
	batch = strtoull(subject + len + 1, &end, 10);
	if (batch != c->batch || *end != '.')
		return n;               /* late, for a batch that has ended */
	i = strtoul(end + 1, &end, 10);
	return *end ? n : i;
}

/* Waits until every request is done or past its deadline. */
static void wait_all(struct natsctl *c, struct pending *p, size_t n)
{
	for (;;) {
		int64_t first = next_deadline(p, n);
		natsMsg *m;

		if (first == INT64_MAX)
			return;
		if (first <= mono_now_ms()) {
			for (size_t i = 0; i < n; i++)
				if (!p[i].done && p[i].deadline <= first)
					expire(&p[i]);
			continue;
		}
		if (!(m = next_msg(c, first)))
			continue;
		size_t i = request_of(c, m, n);
		if (i < n)
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
	int rc = -1;

	memset(answers, 0, n * sizeof(*answers));
	if (!p) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto out;
	}
	c->batch++;
	for (size_t i = 0; i < n; i++)
		p[i].req = reqs[i];
	if (send_all(c, p, n, err) < 0)
		goto out;
	wait_all(c, p, n);
	if (settle(c, p, n, answers, err) < 0)
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
