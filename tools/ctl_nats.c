/*
 * hearthctl --nats URL (PROTOCOL.md §9): one entry point to a cluster of shards.
 *
 * - A command about one customer (`id`, or `customer` for eval, explain, ack)
 *   is a request on <prefix>.ctl.p.<partition>, which only the owning shard
 *   subscribes to; the partition is FNV-1a of the id modulo the partition count.
 * - Anything else is scattered on <prefix>.ctl.all; every shard answers with
 *   the partitions it owns, answers are gathered until those cover every
 *   partition (or the wait ends: the answer then says which are missing), and
 *   merged: counts added, lists joined, `top` ranked again and cut to n (each
 *   shard's top n holds the deployment's top n, so the merge is exact).
 * - import publishes JetStream messages of up to IMPORT_BATCH events, one
 *   partition each, with a Nats-Msg-Id per message; a message whose PubAck did
 *   not come is published again with the same id, and the stream keeps one copy.
 * - watch follows the alerts stream with an ordered consumer.
 */
#include <json-c/json.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "hearth/cluster.h"
#include "hearth/units.h"

#define IMPORT_BATCH      500
#define IMPORT_BYTES      (512 * 1024)
#define IMPORT_PENDING    256               /* PubAcks awaited at once */
#define ACK_WAIT_MS       5000
#define SCATTER_WAIT_MS   5000
#define REQUEST_WAIT_MS   10000

struct nats {
	natsConnection *nc;
	jsCtx *js;
	const char *prefix;
	uint32_t partitions;
	/* failed async publishes, taken from libnats' thread, sent again from ours */
	pthread_mutex_t mu;
	natsMsg **failed;
	size_t nfailed, failed_cap;
	uint64_t retries;
};

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	struct nats *n = closure;

	(void)js;
	pthread_mutex_lock(&n->mu);
	if (n->nfailed == n->failed_cap) {
		size_t cap = n->failed_cap ? n->failed_cap * 2 : 64;
		natsMsg **list = realloc(n->failed, cap * sizeof(*list));
		if (!list) {
			pthread_mutex_unlock(&n->mu);
			return;         /* the import then ends with messages unacknowledged */
		}
		n->failed = list;
		n->failed_cap = cap;
	}
	n->failed[n->nfailed++] = pae->Msg;
	pae->Msg = NULL;        /* ours now */
	pthread_mutex_unlock(&n->mu);
}

static int nats_open(const struct ctl_opts *o, struct nats *n)
{
	const char *user = getenv("HEARTH_NATS_USER"), *password = getenv("HEARTH_NATS_PASSWORD");
	const char *creds = getenv("HEARTH_NATS_CREDS");
	natsOptions *opts = NULL;
	jsOptions jo;
	natsStatus s;

	memset(n, 0, sizeof(*n));
	pthread_mutex_init(&n->mu, NULL);
	n->prefix = o->nats_prefix ? o->nats_prefix : "hearth";
	n->partitions = o->partitions ? o->partitions : 16;
	/* "url,url,...": every server of the cluster, any one of them will do */
	char *urls = strdup(o->nats), *save = NULL;
	const char *list[16];
	int nurls = 0;
	for (char *u = strtok_r(urls, ", ", &save); u && nurls < 16; u = strtok_r(NULL, ", ", &save))
		list[nurls++] = u;
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = nurls ? natsOptions_SetServers(opts, list, nurls) : NATS_INVALID_ARG;
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, "hearthctl");
	if (s == NATS_OK && creds && *creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL);
	else if (s == NATS_OK && user && *user)
		s = natsOptions_SetUserInfo(opts, user, password ? password : "");
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK)
		s = natsConnection_Connect(&n->nc, opts);
	natsOptions_Destroy(opts);
	free(urls);
	if (s == NATS_OK) {
		jsOptions_Init(&jo);
		jo.Wait = ACK_WAIT_MS;
		jo.PublishAsync.MaxPending = IMPORT_PENDING;
		jo.PublishAsync.StallWait = ACK_WAIT_MS;
		jo.PublishAsync.ErrHandler = on_pub_error;
		jo.PublishAsync.ErrHandlerClosure = n;
		s = natsConnection_JetStream(&n->js, n->nc, &jo);
	}
	if (s != NATS_OK) {
		const char *last = nats_GetLastError(NULL);
		ctl_warn("cannot reach NATS at %s (%s)", o->nats, last && *last ? last : natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

static void nats_close(struct nats *n)
{
	jsCtx_Destroy(n->js);
	natsConnection_Destroy(n->nc);
	for (size_t i = 0; i < n->nfailed; i++)
		natsMsg_Destroy(n->failed[i]);
	free(n->failed);
	pthread_mutex_destroy(&n->mu);
	nats_Close();
}

/* ---- one customer, or every shard ---------------------------------------------------- */

static const char *route_key(struct json_object *req)
{
	struct json_object *v;

	if ((json_object_object_get_ex(req, "id", &v) || json_object_object_get_ex(req, "customer", &v)) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static int has_partition(struct json_object *ans, uint32_t p)
{
	struct json_object *owns;

	if (!json_object_object_get_ex(ans, "owns", &owns) || !json_object_is_type(owns, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(owns); i++)
		if (json_object_get_int64(json_object_array_get_idx(owns, i)) == (int64_t)p)
			return 1;
	return 0;
}

static int covered(struct json_object *answers, uint32_t partitions, struct json_object *missing)
{
	int all = 1;

	for (uint32_t p = 0; p < partitions; p++) {
		int have = 0;
		for (size_t i = 0; !have && i < json_object_array_length(answers); i++)
			have = has_partition(json_object_array_get_idx(answers, i), p);
		if (!have) {
			all = 0;
			if (missing)
				json_object_array_add(missing, json_object_new_int64(p));
		}
	}
	return all;
}

static double score_of(struct json_object *row)
{
	struct json_object *v;
	return json_object_object_get_ex(row, "score", &v) && v ? json_object_get_double(v) : -1e300;
}

static int by_score_desc(const void *a, const void *b)
{
	double x = score_of(*(struct json_object *const *)a), y = score_of(*(struct json_object *const *)b);
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Counts added, lists joined; `top` ranked again and cut to n, `alerts` cut to limit. */
static struct json_object *merge(struct json_object *req, struct json_object *answers,
				 struct json_object *missing)
{
	static const char *const sums[] = { "customers", "events", "firing", "pending", "deferred",
					    "seq_total", NULL };
	struct json_object *first = json_object_array_get_idx(answers, 0), *out, *shards, *v;
	const char *cmd = json_object_get_string(json_object_object_get(req, "cmd"));
	size_t n = json_object_array_length(answers);

	for (size_t i = 0; i < n; i++) {
		struct json_object *ok, *a = json_object_array_get_idx(answers, i);
		if (!json_object_object_get_ex(a, "ok", &ok) || !json_object_get_boolean(ok))
			return json_object_get(a);      /* the first refusal explains itself */
	}
	out = json_object_new_object();
	shards = json_object_new_array();
	json_object_object_foreach(first, key, val) {
		if (!strcmp(key, "shard") || !strcmp(key, "owns") || !strcmp(key, "seq"))
			continue;
		int summed = 0;
		for (const char *const *s = sums; *s; s++)
			summed |= !strcmp(key, *s) && json_object_is_type(val, json_type_int);
		if (summed) {
			int64_t total = 0;
			for (size_t i = 0; i < n; i++)
				total += json_object_get_int64(json_object_object_get(json_object_array_get_idx(answers, i), key));
			json_object_object_add(out, key, json_object_new_int64(total));
		} else if (json_object_is_type(val, json_type_array)) {
			struct json_object *list = json_object_new_array();
			for (size_t i = 0; i < n; i++) {
				struct json_object *part = json_object_object_get(json_object_array_get_idx(answers, i), key);
				for (size_t j = 0; part && j < json_object_array_length(part); j++)
					json_object_array_add(list, json_object_get(json_object_array_get_idx(part, j)));
			}
			json_object_object_add(out, key, list);
		} else {
			json_object_object_add(out, key, json_object_get(val));
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(answers, i), *s = json_object_new_object();
		json_object_object_add(s, "shard", json_object_get(json_object_object_get(a, "shard")));
		json_object_object_add(s, "owns", json_object_get(json_object_object_get(a, "owns")));
		if (json_object_object_get_ex(a, "seq", &v))
			json_object_object_add(s, "seq", json_object_get(v));
		json_object_array_add(shards, s);
	}
	json_object_object_add(out, "shards", shards);
	json_object_object_del(out, "cursor");  /* cursors are per shard */
	if (cmd && !strcmp(cmd, "top") && json_object_object_get_ex(out, "customers", &v)) {
		struct json_object *nv;
		size_t want = json_object_object_get_ex(req, "n", &nv) ? (size_t)json_object_get_int64(nv) : 0;
		json_object_array_sort(v, by_score_desc);
		/* every shard cut its own list to n (or its default): none is longer than n */
		if (!want)
			for (size_t i = 0; i < n; i++) {
				struct json_object *l = json_object_object_get(json_object_array_get_idx(answers, i), "customers");
				if (l && json_object_array_length(l) > want)
					want = json_object_array_length(l);
			}
		if (json_object_array_length(v) > want)
			json_object_array_del_idx(v, want, json_object_array_length(v) - want);
	}
	if (json_object_array_length(missing) > 0) {
		json_object_object_add(out, "complete", json_object_new_boolean(0));
		json_object_object_add(out, "missing_partitions", json_object_get(missing));
	} else {
		json_object_object_add(out, "complete", json_object_new_boolean(1));
	}
	return out;
}

/* Every shard's answer to text on <prefix>.ctl.all, gathered until they cover all partitions. */
static struct json_object *gather(struct nats *n, const char *text, uint32_t *partitions, int quiet)
{
	struct json_object *answers = json_object_new_array();
	natsSubscription *sub = NULL;
	natsInbox *inbox = NULL;
	char subject[160];
	int64_t end = mono_now_ms() + SCATTER_WAIT_MS;

	*partitions = n->partitions;
	snprintf(subject, sizeof(subject), "%s.ctl.all", n->prefix);
	if (natsInbox_Create(&inbox) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, n->nc, inbox) != NATS_OK ||
	    natsConnection_PublishRequestString(n->nc, subject, inbox, text) != NATS_OK)
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
		if (covered(answers, *partitions, NULL))
			break;
	}
	if (json_object_array_length(answers) == 0 && !quiet)
		ctl_warn("no shard answered on %s within %d ms", subject, SCATTER_WAIT_MS);
out:
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	return answers;
}

static struct json_object *scatter(struct nats *n, struct json_object *req, const char *text)
{
	struct json_object *missing = json_object_new_array(), *out = NULL;
	uint32_t partitions;
	struct json_object *answers = gather(n, text, &partitions, 0);

	if (json_object_array_length(answers) == 0)
		goto out;
	covered(answers, partitions, missing);
	if (json_object_array_length(missing) > 0)
		ctl_warn("partitions %s did not answer: the merged answer is partial",
			 json_object_to_json_string(missing));
	out = merge(req, answers, missing);
out:
	json_object_put(answers);
	json_object_put(missing);
	return out;
}

struct json_object *nats_call(const struct ctl_opts *o, struct json_object *req, char **raw)
{
	struct json_object *ans = NULL;
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), *key;
	struct nats n;

	*raw = NULL;
	if (nats_open(o, &n) < 0)
		return NULL;
	if ((key = route_key(req))) {
		char subject[160];
		natsMsg *m = NULL;
		uint32_t p = cluster_fnv1a32(key, strlen(key)) % n.partitions;
		snprintf(subject, sizeof(subject), "%s.ctl.p.%u", n.prefix, p);
		natsStatus s = natsConnection_RequestString(&m, n.nc, subject, text, REQUEST_WAIT_MS);
		if (s != NATS_OK)
			ctl_warn("partition %u (%s): %s", p, subject,
				 s == NATS_NO_RESPONDERS ? "no shard owns it" : natsStatus_GetText(s));
		else
			ans = json_tokener_parse(natsMsg_GetData(m));
		natsMsg_Destroy(m);
	} else {
		ans = scatter(&n, req, text);
	}
	if (ans)
		*raw = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	nats_close(&n);
	return ans;
}

/* ---- import ------------------------------------------------------------------------- */

struct pbuf {
	char *text;
	size_t len, cap;
	uint32_t n;
	uint64_t batch;
};

struct nimport {
	const struct ctl_opts *o;
	int live;                       /* 0: one quiet history load (PROTOCOL.md §3.6, §9.3) */
	struct nats n;
	struct pbuf *parts;
	char run[48];                   /* Nats-Msg-Id prefix of this run */
	uint64_t events, messages, rejected;
	int failed;
};

static int put(struct pbuf *b, const char *s, size_t len)
{
	if (b->len + len + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len + 2)
			cap *= 2;
		char *t = realloc(b->text, cap);
		if (!t)
			return -1;
		b->text = t;
		b->cap = cap;
	}
	memcpy(b->text + b->len, s, len);
	b->len += len;
	return 0;
}

/* Publishes the failed ones again (same ids) and waits for every PubAck. */
static int settle(struct nimport *im, int64_t deadline)
{
	jsPubOptions po;

	for (;;) {
		jsPubOptions_Init(&po);
		po.MaxWait = ACK_WAIT_MS;
		natsStatus s = js_PublishAsyncComplete(im->n.js, &po);
		if (s == NATS_TIMEOUT) {
			natsMsgList pending = { 0 };
			if (js_PublishAsyncGetPendingList(&pending, im->n.js) == NATS_OK) {
				pthread_mutex_lock(&im->n.mu);
				for (int i = 0; i < pending.Count; i++) {
					if (im->n.nfailed == im->n.failed_cap) {
						size_t cap = im->n.failed_cap ? im->n.failed_cap * 2 : 64;
						natsMsg **l = realloc(im->n.failed, cap * sizeof(*l));
						if (!l)
							break;
						im->n.failed = l;
						im->n.failed_cap = cap;
					}
					im->n.failed[im->n.nfailed++] = pending.Msgs[i];
					pending.Msgs[i] = NULL;
				}
				pthread_mutex_unlock(&im->n.mu);
				natsMsgList_Destroy(&pending);
			}
		}
		pthread_mutex_lock(&im->n.mu);
		natsMsg **again = im->n.failed;
		size_t nagain = im->n.nfailed;
		im->n.failed = NULL;
		im->n.nfailed = im->n.failed_cap = 0;
		pthread_mutex_unlock(&im->n.mu);
		if (nagain == 0 && s == NATS_OK)
			return 0;
		if (mono_now_ms() > deadline) {
			for (size_t i = 0; i < nagain; i++)
				natsMsg_Destroy(again[i]);
			free(again);
			ctl_warn("%zu message(s) got no PubAck in time: the import is incomplete "
				 "(run it again: ids make it idempotent)", nagain);
			return -1;
		}
		if (nagain)
			usleep(100000);        /* a leader election takes seconds: do not spin */
		for (size_t i = 0; i < nagain; i++) {
			im->n.retries++;
			jsPubOptions_Init(&po);
			po.MaxWait = ACK_WAIT_MS;
			if (js_PublishMsgAsync(im->n.js, &again[i], &po) != NATS_OK) {
				/* not taken: keep it for the next round */
				pthread_mutex_lock(&im->n.mu);
				on_pub_error(NULL, &(jsPubAckErr){ .Msg = again[i] }, &im->n);
				pthread_mutex_unlock(&im->n.mu);
			}
		}
		free(again);
	}
}

static int send_part(struct nimport *im, uint32_t p, int64_t deadline)
{
	struct pbuf *b = &im->parts[p];
	char subject[160], id[96];
	natsMsg *m = NULL;
	jsPubOptions po;
	natsStatus s;

	if (b->n == 0)
		return 0;
	if (put(b, im->live ? "]" : "]}", im->live ? 1 : 2) < 0)
		return -1;
	snprintf(subject, sizeof(subject), "%s.ev.%u.batch", im->n.prefix, p);
	snprintf(id, sizeof(id), "%s-%u-%llu", im->run, p, (unsigned long long)b->batch++);
	s = natsMsg_Create(&m, subject, NULL, b->text, (int)b->len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
	for (int tries = 0; s == NATS_OK; tries++) {
		jsPubOptions_Init(&po);
		po.MaxWait = ACK_WAIT_MS;
		s = js_PublishMsgAsync(im->n.js, &m, &po);
		if (s != NATS_TIMEOUT || mono_now_ms() > deadline)
			break;
		/* MaxPending PubAcks outstanding for StallWait: settle them, then go on */
		if (settle(im, deadline) < 0)
			break;
		s = NATS_OK;
	}
	natsMsg_Destroy(m);     /* NULL once published */
	if (s != NATS_OK) {
		ctl_warn("publishing to %s failed (%s)", subject, natsStatus_GetText(s));
		return -1;
	}
	im->events += b->n;
	im->messages++;
	b->len = 0;
	b->n = 0;
	return 0;
}

/* The value of `name{partition="p"} V` in a metrics text, or -1. */
static double watermark_of(const char *text, uint32_t p)
{
	char needle[96];
	const char *at;

	snprintf(needle, sizeof(needle), "hearth_cluster_watermark{partition=\"%u\"} ", p);
	at = text ? strstr(text, needle) : NULL;
	return at ? strtod(at + strlen(needle), NULL) : -1;
}

/*
 * The load's end went to every partition: wait until each shard has applied it
 * (its watermark reached the end's stream sequence) and then evaluated the
 * customers the load deferred.
 */
static int wait_load_end(struct nimport *im, const uint64_t *end_seq, int64_t deadline)
{
	uint32_t partitions;
	int applied = 0;

	while (mono_now_ms() < deadline) {
		struct json_object *answers = gather(&im->n, applied ? "{\"cmd\":\"status\"}" : "{\"cmd\":\"metrics\"}",
						     &partitions, 1);
		size_t n = json_object_array_length(answers);
		int done = n > 0 && covered(answers, partitions, NULL);
		for (uint32_t p = 0; done && !applied && p < im->n.partitions; p++) {
			int seen = 0;
			for (size_t i = 0; !seen && i < n; i++) {
				struct json_object *t = json_object_object_get(json_object_array_get_idx(answers, i), "text");
				seen = watermark_of(json_object_get_string(t), p) >= (double)end_seq[p];
			}
			done = seen;
		}
		for (size_t i = 0; done && applied && i < n; i++) {
			struct json_object *a = json_object_array_get_idx(answers, i);
			done = json_object_get_int64(json_object_object_get(a, "deferred")) == 0 &&
			       !json_object_get_boolean(json_object_object_get(a, "load_ending"));
		}
		json_object_put(answers);
		if (done && applied)
			return 0;
		if (done)
			applied = 1;
		else
			usleep(100000);
	}
	ctl_warn("the shards did not finish evaluating the load in time (--timeout)");
	return -1;
}

/* {"load": "end"} on every partition, each with its own id; their stream sequences into end_seq. */
static int send_load_end(struct nimport *im, uint64_t *end_seq, int64_t deadline)
{
	static const char body[] = "{\"load\":\"end\"}";
	char subject[160], id[96];

	for (uint32_t p = 0; p < im->n.partitions; p++) {
		snprintf(subject, sizeof(subject), "%s.ev.%u.batch", im->n.prefix, p);
		snprintf(id, sizeof(id), "%s-%u-end", im->run, p);
		for (;;) {
			jsPubAck *pa = NULL;
			jsPubOptions po;
			jsPubOptions_Init(&po);
			po.MsgId = id;
			po.MaxWait = ACK_WAIT_MS;
			natsStatus s = js_Publish(&pa, im->n.js, subject, body, (int)strlen(body), &po, NULL);
			if (s == NATS_OK)
				end_seq[p] = pa->Sequence;
			jsPubAck_Destroy(pa);
			if (s == NATS_OK)
				break;
			if (mono_now_ms() > deadline) {
				ctl_warn("publishing the load's end to %s failed (%s)", subject, natsStatus_GetText(s));
				return -1;
			}
			im->n.retries++;
			usleep(100000);
		}
	}
	return 0;
}

int nats_import_run(const struct ctl_opts *o, int nfiles, char **files, int live)
{
	struct nimport im = { .o = o, .live = live };
	uint64_t *end_seq = NULL;
	int64_t deadline;
	int rc = CTL_EXIT_NO;

	if (nats_open(o, &im.n) < 0)
		return CTL_EXIT_UNREACHABLE;
	deadline = mono_now_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 120000);
	snprintf(im.run, sizeof(im.run), "imp-%d-%llx", (int)getpid(), (unsigned long long)time_now_ms());
	if (!(im.parts = calloc(im.n.partitions, sizeof(*im.parts)))) {
		ctl_warn("out of memory");
		goto out;
	}
	for (int f = 0; f < nfiles && !im.failed; f++) {
		struct herr err;
		struct source *src = source_open(files[f], &err);
		if (!src) {
			ctl_warn("%s", err.msg);
			im.failed = 1;
			break;
		}
		for (;;) {
			struct json_object *ev = NULL, *cust;
			long line = 0;
			enum src_status st = source_next(src, &ev, &line, &err);
			if (st == SRC_END)
				break;
			if (st == SRC_FAIL) {
				ctl_warn("%s:%ld: %s", files[f], line, err.msg);
				im.failed = 1;
				break;
			}
			if (st == SRC_REJECT || !json_object_object_get_ex(ev, "customer", &cust) ||
			    !json_object_is_type(cust, json_type_string)) {
				ctl_warn("%s:%ld: %s", files[f], line,
					 st == SRC_REJECT ? err.msg : "customer: required, a string");
				im.rejected++;
				json_object_put(ev);
				continue;
			}
			const char *cid = json_object_get_string(cust);
			uint32_t p = cluster_fnv1a32(cid, strlen(cid)) % im.n.partitions;
			struct pbuf *b = &im.parts[p];
			const char *text = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
									  JSON_C_TO_STRING_NOSLASHESCAPE);
			const char *head = im.live ? "[" : "{\"load\":true,\"events\":[";
			if (put(b, b->n ? "," : head, b->n ? 1 : strlen(head)) < 0 || put(b, text, strlen(text)) < 0) {
				ctl_warn("out of memory");
				im.failed = 1;
			}
			b->n++;
			json_object_put(ev);
			if (!im.failed && (b->n >= IMPORT_BATCH || b->len >= IMPORT_BYTES) &&
			    send_part(&im, p, deadline) < 0)
				im.failed = 1;
			if (im.failed)
				break;
		}
		source_close(src);
	}
	for (uint32_t p = 0; !im.failed && p < im.n.partitions; p++)
		if (send_part(&im, p, deadline) < 0)
			im.failed = 1;
	if (!im.failed && settle(&im, deadline) < 0)
		im.failed = 1;
	if (!im.failed && !live) {
		if (!(end_seq = calloc(im.n.partitions, sizeof(*end_seq))) ||
		    send_load_end(&im, end_seq, deadline) < 0 || wait_load_end(&im, end_seq, deadline) < 0)
			im.failed = 1;
	}
	if (o->json)
		printf("{\"ok\":%s,\"published\":%llu,\"messages\":%llu,\"rejected\":%llu,\"retries\":%llu}\n",
		       im.failed ? "false" : "true", (unsigned long long)im.events,
		       (unsigned long long)im.messages, (unsigned long long)im.rejected,
		       (unsigned long long)im.n.retries);
	else
		printf("%llu events published in %llu messages (%llu rejected here)%s%s; rejections of the "
		       "shards are reported on %s.rejects.>\n", (unsigned long long)im.events,
		       (unsigned long long)im.messages, (unsigned long long)im.rejected,
		       live || im.failed ? "" : ", evaluated once by every shard at the load's end",
		       im.failed ? ", INCOMPLETE" : "", im.n.prefix);
	rc = im.failed ? CTL_EXIT_NO : im.rejected ? CTL_EXIT_NO : CTL_EXIT_OK;
out:
	free(end_seq);
	for (uint32_t p = 0; im.parts && p < im.n.partitions; p++)
		free(im.parts[p].text);
	free(im.parts);
	nats_close(&im.n);
	return rc;
}

/* ---- watch -------------------------------------------------------------------------- */

static volatile sig_atomic_t watch_stop;

static void on_watch_stop(int sig)
{
	(void)sig;
	watch_stop = 1;
}

int nats_watch_run(const struct ctl_opts *o, long after, long count)
{
	struct nats n;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	char subject[160];
	int rc = CTL_EXIT_UNREACHABLE;

	if (nats_open(o, &n) < 0)
		return CTL_EXIT_UNREACHABLE;
	signal(SIGINT, on_watch_stop);
	signal(SIGTERM, on_watch_stop);
	snprintf(subject, sizeof(subject), "%s.alerts.>", n.prefix);
	jsSubOptions_Init(&so);
	so.Ordered = true;      /* in stream order, gaps refilled by the library */
	if (after < 0) {
		so.Config.DeliverPolicy = js_DeliverNew;
	} else {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = (uint64_t)after + 1;
	}
	natsStatus s = js_SubscribeSync(&sub, n.js, subject, NULL, &so, &jerr);
	if (s != NATS_OK) {
		const char *last = nats_GetLastError(NULL);
		ctl_warn("cannot follow %s (%s)", subject, last && *last ? last : natsStatus_GetText(s));
		goto out;
	}
	if (!o->json)
		fprintf(stderr, "watching %s (Ctrl-C stops)\n", subject);
	rc = CTL_EXIT_OK;
	while (!watch_stop && count != 0) {
		natsMsg *m = NULL;
		jsMsgMetaData *meta = NULL;
		const char *shard = "", *seq = "0";
		s = natsSubscription_NextMsg(&m, sub, 500);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			ctl_warn("watching failed (%s)", natsStatus_GetText(s));
			rc = CTL_EXIT_UNREACHABLE;
			break;
		}
		natsMsgHeader_Get(m, "Hearth-Shard", &shard);
		natsMsgHeader_Get(m, "Hearth-Seq", &seq);
		unsigned long long sseq = natsMsg_GetMetaData(&meta, m) == NATS_OK ? (unsigned long long)meta->Sequence.Stream : 0;
		jsMsgMetaData_Destroy(meta);
		struct json_object *body = json_tokener_parse(natsMsg_GetData(m));
		if (o->json) {
			printf("{\"stream_seq\":%llu,\"shard\":\"%s\",\"shard_seq\":%s,\"body\":%.*s}\n", sseq, shard,
			       seq, natsMsg_GetDataLength(m), natsMsg_GetData(m));
		} else {
			struct json_object *alert = json_path(body, "alert");
			printf("%-8llu %-10s %-6s %-8s %-8s %-24s %-10s %s\n", sseq, shard, seq,
			       json_object_get_string(json_path(body, "kind")),
			       json_object_get_string(json_path(alert, "severity")),
			       json_object_get_string(json_path(alert, "rule")),
			       json_object_get_string(json_path(alert, "customer")),
			       json_object_get_string(json_path(alert, "summary")));
		}
		fflush(stdout);
		json_object_put(body);
		natsMsg_Destroy(m);
		if (count > 0)
			count--;
	}
out:
	natsSubscription_Destroy(sub);
	nats_close(&n);
	return rc;
}
