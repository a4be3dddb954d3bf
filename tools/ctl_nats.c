/*
 * hearthctl --nats URL (PROTOCOL.md §9): one entry point to a cluster of shards.
 *
 * - Commands: libhearth's natsctl (include/hearth/natsctl.h) routes a command
 *   about one customer to its partition's subject, scatters the others on
 *   <prefix>.ctl.all and merges the answers; hearth-web uses the same.
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
#include "hearth/natsctl.h"
#include "hearth/units.h"

#define IMPORT_BATCH      500
#define IMPORT_BYTES      (512 * 1024)
#define IMPORT_PENDING    256               /* PubAcks awaited at once */
#define ACK_WAIT_MS       5000

struct nats {
	struct natsctl *ctl;            /* the connection, routing and merging: libhearth */
	natsConnection *nc;             /* ctl's */
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

static void nats_close(struct nats *n)
{
	jsCtx_Destroy(n->js);
	natsctl_free(n->ctl);
	for (size_t i = 0; i < n->nfailed; i++)
		natsMsg_Destroy(n->failed[i]);
	free(n->failed);
	pthread_mutex_destroy(&n->mu);
	nats_Close();
}

/* Connects (libhearth's natsctl) and adds JetStream for import; closes n itself on failure. */
static int nats_open(const struct ctl_opts *o, struct nats *n)
{
	const char *creds = getenv("HEARTH_NATS_CREDS");
	struct natsctl_opts no = {
		.urls = o->nats, .user = getenv("HEARTH_NATS_USER"), .password = getenv("HEARTH_NATS_PASSWORD"),
		.creds = creds && *creds ? creds : NULL, .prefix = o->nats_prefix, .partitions = o->partitions,
		.name = "hearthctl",
	};
	struct herr err;
	jsOptions jo;
	natsStatus s;

	memset(n, 0, sizeof(*n));
	pthread_mutex_init(&n->mu, NULL);
	if (!(n->ctl = natsctl_new(&no, &err))) {
		ctl_warn("%s", err.msg);
		nats_close(n);
		return -1;
	}
	n->nc = natsctl_connection(n->ctl);
	n->prefix = natsctl_prefix(n->ctl);
	n->partitions = natsctl_partitions(n->ctl);
	jsOptions_Init(&jo);
	jo.Wait = ACK_WAIT_MS;
	jo.PublishAsync.MaxPending = IMPORT_PENDING;
	jo.PublishAsync.StallWait = ACK_WAIT_MS;
	jo.PublishAsync.ErrHandler = on_pub_error;
	jo.PublishAsync.ErrHandlerClosure = n;
	if ((s = natsConnection_JetStream(&n->js, n->nc, &jo)) != NATS_OK) {
		const char *last = nats_GetLastError(NULL);
		ctl_warn("cannot reach NATS at %s (%s)", o->nats, last && *last ? last : natsStatus_GetText(s));
		nats_close(n);
		return -1;
	}
	return 0;
}

/* ---- one customer, or every shard: natsctl_calls ------------------------------------- */

struct json_object *nats_call(const struct ctl_opts *o, struct json_object *req, char **raw)
{
	struct json_object *ans = NULL, *missing;
	struct herr err;
	struct nats n;

	*raw = NULL;
	if (nats_open(o, &n) < 0)
		return NULL;
	if (natsctl_calls(n.ctl, &req, &ans, 1, &err) < 0)
		ctl_warn("%s", err.msg);
	else if (json_object_object_get_ex(ans, "missing_partitions", &missing))
		ctl_warn("partitions %s did not answer: the merged answer is partial",
			 json_object_to_json_string(missing));
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
		struct json_object *answers = natsctl_gather(im->n.ctl, applied ? "{\"cmd\":\"status\"}"
							     : "{\"cmd\":\"metrics\"}", &partitions);
		size_t n = json_object_array_length(answers);
		int done = n > 0 && natsctl_covered(answers, partitions, NULL);
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
