/*
 * Cluster mode on NATS JetStream; see include/hearth/cluster.h.
 *
 * One fetcher thread per owned partition pulls from its durable consumer,
 * parses what it fetched, hands the batch to the loop thread and waits until
 * it has been applied; only then does it ack. The loop commits the events and the
 * partition's watermark (the stream sequence of the batch's last message) in
 * one LMDB transaction, and skips messages at or below the watermark, so a
 * redelivery, or a crash between the commit and the ack, applies nothing
 * twice. Each consumer is re-created at start from the watermark + 1: a
 * consumer re-bound after a crash would hand out newer messages first.
 *
 * The alerts thread publishes the outbox in seq order to the alerts stream,
 * one message per notification with Nats-Msg-Id "<shard>-<seq>"; it resumes
 * after the last one the stream holds for this shard, so a crash republishes
 * nothing twice. Control requests arrive on libnats' subscription threads and
 * are answered once the loop has run them.
 *
 * Every item a thread hands to the loop lives on that thread's stack until
 * the loop marks it done; cluster_close completes whatever is still queued, so
 * no thread waits for ever.
 */
#include <errno.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/body_codec.h"
#include "hearth/batch.h"
#include "hearth/cluster.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/exposition.h"
#include "hearth/group_commit.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/outbox.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define FETCH_WAIT_MS      1000
#define RETRY_MS           500
#define ACK_WAIT_NS        (30LL * 1000000000LL)
#define OUTBOX_PAGE        256
#define PUBLISH_WAIT_MS    5000
#define JS_NOT_FOUND_STREAM   10059
#define JS_NOT_FOUND_MESSAGE  10037
#define JS_NOT_FOUND_CONSUMER 10014

enum item_kind { ITEM_BATCH, ITEM_REQUEST, ITEM_OUTBOX };

struct outbox_entry {
	uint64_t seq;
	char *body;
	size_t len;
};

struct part;

struct item {
	struct item *next;
	enum item_kind kind;
	int done, ok;
	/* ITEM_BATCH: messages in stream order with their stream sequences */
	struct part *part;
	natsMsg **msgs;
	uint64_t *seqs;
	struct batch **batches;         /* the messages parsed by the fetcher, one each */
	int nmsgs;
	char **rejects;                 /* rejection reports to publish, JSON */
	size_t nrejects;
	uint64_t mark;                  /* the partition's watermark once applied */
	/* ITEM_REQUEST */
	const char *data;
	size_t len;
	int scatter;
	char *answer;
	/* ITEM_OUTBOX: entries with seq > after, up to a page */
	uint64_t after, upto;
	struct outbox_entry *entries;
	size_t nentries;
};

struct part {
	struct cluster *cl;
	uint32_t id;
	char durable[64];
	char filter[128];
	char mark_name[32];             /* meta key of the watermark */
	char rejects_subject[128];
	uint64_t applied;               /* fetcher's copy: the last watermark it saw committed */
	uint64_t mark;                  /* loop's copy */
	struct json_tokener *tok;       /* the fetcher's: it parses what it fetched */
	int load_ended;                 /* loop's: {"load": "end"} came on this partition */
	natsSubscription *sub;
	uint64_t next_delivery;         /* fetcher's: the consumer sequence the next message must have */
	pthread_t thread;
	int started;
};

struct ctl_sub {
	struct cluster *cl;
	int scatter;                    /* the deployment-wide subject: answers say what they cover */
};

struct cluster_stats {
	uint64_t batches, messages, skipped, events_rejected, messages_failed, requests;
};

struct cluster {
	const struct group_committer *gc; /* the daemon's store and engine, written through it */
	struct loop *loop;
	cluster_answer_fn answer;       /* control requests */
	void *answer_ctx;
	struct cluster_config *cc;      /* taken from the configuration: a reload keeps it */
	int64_t alerts_max_age_ms;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription **ctl_subs;
	size_t nctl_subs;
	struct ctl_sub ctl_one, ctl_all;
	struct part *parts;
	size_t nparts;
	pthread_t alerts_thread;
	int alerts_started;
	char alerts_subject[128];

	pthread_mutex_t setup_mu;       /* the first fetcher makes sure the events stream exists */
	int events_ready;

	pthread_mutex_t mu;             /* guards everything below */
	pthread_cond_t cv;              /* an item done, committed moved, or stopping */
	struct item *head, *tail;
	int stopping;
	uint64_t committed;             /* the outbox's last seq */
	struct outbox *ob;              /* tells us of commits (outbox_on_committed) */
	int efd;
	int paused;                     /* loop thread only */

	struct json_tokener *tok;       /* loop thread only: control requests */
	const struct ingest_clock *clock; /* the writer's clock and max_future, for the fetchers */
	struct cluster_stats stats;     /* loop thread only */
	uint64_t alerts_published;      /* atomic: the alerts thread writes it */
	uint64_t alerts_retries;        /* atomic */
};

uint32_t cluster_fnv1a32(const char *s, size_t len)
{
	uint32_t h = 0x811C9DC5u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x01000193u;
	}
	return h;
}

/* ---- the queue between the threads and the loop ------------------------------------ */

/* Hands an item to the loop; with the cluster stopping, it is done at once, not ok. */
static void item_push(struct cluster *cl, struct item *it)
{
	uint64_t one = 1;

	it->done = it->ok = 0;
	it->next = NULL;
	pthread_mutex_lock(&cl->mu);
	if (cl->stopping) {
		it->done = 1;
		pthread_mutex_unlock(&cl->mu);
		return;
	}
	if (cl->tail)
		cl->tail->next = it;
	else
		cl->head = it;
	cl->tail = it;
	pthread_mutex_unlock(&cl->mu);
	if (write(cl->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("cluster, cannot wake the loop (%s)", strerror(errno));
}

static void item_wait(struct cluster *cl, struct item *it)
{
	pthread_mutex_lock(&cl->mu);
	while (!it->done)
		pthread_cond_wait(&cl->cv, &cl->mu);
	pthread_mutex_unlock(&cl->mu);
}

static int stopping(struct cluster *cl)
{
	pthread_mutex_lock(&cl->mu);
	int s = cl->stopping;
	pthread_mutex_unlock(&cl->mu);
	return s;
}

/* Sleeps ms, or less when the cluster stops. */
static void nap(struct cluster *cl, int64_t ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cl->mu);
	while (!cl->stopping && pthread_cond_timedwait(&cl->cv, &cl->mu, &until) == 0)
		;
	pthread_mutex_unlock(&cl->mu);
}

/* ---- the loop's side ---------------------------------------------------------------- */

static void add_reject(struct item *it, char *report)
{
	char **list;

	if (!report)
		return;
	list = realloc(it->rejects, (it->nrejects + 1) * sizeof(*list));
	if (!list) {
		free(report);
		return;
	}
	it->rejects = list;
	it->rejects[it->nrejects++] = report;
}

/* An event whose customer hashes to another partition was sent around the mapping. */
static void reject_strays(struct cluster *cl, struct part *p, struct batch *b)
{
	size_t keep = 0;

	for (size_t i = 0; i < b->nevents; i++) {
		struct batch_event *be = &b->events[i];
		uint32_t owner = cluster_fnv1a32(be->ev.customer, be->ev.customer_len) % cl->cc->partitions;
		if (owner == p->id) {
			b->events[keep++] = *be;
			continue;
		}
		struct batch_reject *r = realloc(b->rejects, (b->nrejects + 1) * sizeof(*r));
		char msg[160];
		if (!r)
			continue;       /* dropped, not stored on the wrong shard */
		b->rejects = r;
		b->rejects_cap = b->nrejects + 1;
		snprintf(msg, sizeof(msg), "customer: belongs to partition %u, not %u (publish to %s.in.<customer>)",
			 owner, p->id, cl->cc->prefix);
		r[b->nrejects].index = be->index;
		r[b->nrejects].code = HERR_BAD_FIELD;
		r[b->nrejects].message = strdup(msg);
		if (r[b->nrejects].message)
			b->nrejects++;
	}
	b->nevents = keep;
}

/* {"shard","partition","stream_seq","msg_id", "rejected":[...] | "error":{...}} */
static char *reject_report(struct cluster *cl, struct part *p, natsMsg *msg, uint64_t seq,
			   const struct batch *b)
{
	struct json_object *o = json_object_new_object(), *reply = batch_reply(b), *v;
	const char *msg_id = NULL;
	char *text = NULL;

	if (!o || !reply)
		goto out;
	natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id);
	json_object_object_add(o, "shard", json_object_new_string(cl->cc->shard));
	json_object_object_add(o, "partition", json_object_new_int64(p->id));
	json_object_object_add(o, "stream_seq", json_object_new_uint64(seq));
	json_object_object_add(o, "subject", json_object_new_string(natsMsg_GetSubject(msg)));
	if (msg_id)
		json_object_object_add(o, "msg_id", json_object_new_string(msg_id));
	if (json_object_object_get_ex(reply, "error", &v))
		json_object_object_add(o, "error", json_object_get(v));
	if (json_object_object_get_ex(reply, "rejected", &v))
		json_object_object_add(o, "rejected", json_object_get(v));
	json_object_object_add(o, "accepted", json_object_new_int64((int64_t)b->accepted));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(reply);
	json_object_put(o);
	return text;
}

/*
 * A history load's end is sent on every partition (hearthctl import --nats): the
 * shard's load ends once each partition it owns has brought its end, so that no
 * customer is evaluated while batches of the load still wait on another
 * partition. A producer that ends on some partitions only is ended by
 * evaluation.load_idle.
 */
static void load_end_seen(struct cluster *cl, struct part *p)
{
	p->load_ended = 1;
	for (size_t i = 0; i < cl->nparts; i++)
		if (!cl->parts[i].load_ended)
			return;
	for (size_t i = 0; i < cl->nparts; i++)
		cl->parts[i].load_ended = 0;
	engine_load_end(cl->gc->engine);
}

/*
 * Applies fetched batches of any partitions in one transaction with their
 * watermarks. Messages at or below a watermark were applied before (a
 * redelivery) and are skipped. On a store failure nothing moves and every
 * item comes back not ok, for its fetcher to hand it again.
 */
static void apply_batches(struct cluster *cl, struct item **items, size_t n)
{
	struct batch **all = NULL, **good = NULL;
	struct group_mark *marks = NULL;
	size_t nall = 0, ngood = 0, nmarks = 0, total = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		total += (size_t)items[i]->nmsgs;
	all = calloc(total ? total : 1, sizeof(*all));
	good = calloc(total ? total : 1, sizeof(*good));
	marks = calloc(n ? n : 1, sizeof(*marks));
	if (!all || !good || !marks)
		goto out;       /* not ok: handed again */
	for (size_t i = 0; i < n; i++) {
		struct item *it = items[i];
		struct part *p = it->part;
		uint64_t mark = p->mark;
		for (int j = 0; j < it->nmsgs; j++) {
			if (it->seqs[j] <= mark) {
				cl->stats.skipped++;
				continue;
			}
			struct batch *b = it->batches[j];
			all[nall++] = b;
			if (b->nevents && b->fail.code == HERR_OK)
				good[ngood++] = b;
			mark = it->seqs[j];
		}
		it->mark = mark;
		/* one mark per partition: a later item of the same partition carries it further */
		size_t k = 0;
		while (k < nmarks && strcmp(marks[k].name, p->mark_name) != 0)
			k++;
		if (mark > p->mark) {
			marks[k].name = p->mark_name;
			marks[k].value = mark;
			nmarks += k == nmarks;
		}
	}
	rc = nmarks ? group_commit_marked(cl->gc, good, ngood, marks, nmarks) : 0;
	if (rc < 0) {
		log_warning("cluster, applying %zu fetched message(s) failed; they are fetched again",
			    nall);
		cl->stats.messages_failed += nall;
		goto out;
	}
	/* reports in the order of the messages, events then counted as stored */
	size_t b_at = 0;
	for (size_t i = 0; i < n; i++) {
		struct item *it = items[i];
		uint64_t before = it->part->mark;
		for (int j = 0; j < it->nmsgs; j++) {
			if (it->seqs[j] <= before)
				continue;
			struct batch *b = all[b_at++];
			before = it->seqs[j];
			cl->stats.messages++;
			cl->stats.events_rejected += b->nrejects;
			if (b->nrejects || b->fail.code != HERR_OK)
				add_reject(it, reject_report(cl, it->part, it->msgs[j], it->seqs[j], b));
			if (b->load_end && b->fail.code == HERR_OK)
				load_end_seen(cl, it->part);
		}
		if (it->mark > it->part->mark)
			it->part->mark = it->mark;
		it->mark = it->part->mark;
		it->ok = 1;
	}
	cl->stats.batches++;
out:
	free(all);
	free(good);
	free(marks);
}

static void answer_request(struct cluster *cl, struct item *it)
{
	struct json_object *ans = cl->answer(cl->answer_ctx, cl->tok, it->data, it->len);
	struct json_object *owns;

	cl->stats.requests++;
	if (!ans)
		return;
	json_object_object_add(ans, "shard", json_object_new_string(cl->cc->shard));
	if (it->scatter && (owns = json_object_new_array())) {
		for (size_t i = 0; i < cl->cc->nowns; i++)
			json_object_array_add(owns, json_object_new_int64(cl->cc->owns[i]));
		json_object_object_add(ans, "owns", owns);
		json_object_object_add(ans, "partitions", json_object_new_int64(cl->cc->partitions));
	}
	it->answer = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
	it->ok = it->answer != NULL;
	json_object_put(ans);
}

struct take_ctx {
	struct item *it;
	struct body_codec *codec;
};

static int take_entry(uint64_t seq, const void *val, size_t vlen, void *ctx)
{
	struct take_ctx *tc = ctx;
	struct item *it = tc->it;
	struct outbox_entry *e;
	const char *body;
	size_t len;

	if (it->nentries >= OUTBOX_PAGE)
		return 1;
	if (vlen < 8 || !(body = body_codec_unpack(tc->codec, seq, (const char *)val + 8, vlen - 8, &len)))
		return 0;
	e = &it->entries[it->nentries];
	e->seq = seq;
	e->len = len;
	if (!(e->body = malloc(e->len)))
		return 1;
	memcpy(e->body, body, e->len);
	it->upto = e->seq;
	it->nentries++;
	return 0;
}

/* A page of the outbox after it->after, for the alerts thread. */
static void read_outbox(struct cluster *cl, struct item *it)
{
	struct store *st = cl->gc->st;
	struct take_ctx tc = { it, NULL };
	MDB_txn *txn;
	struct herr err;

	it->upto = it->after;
	if (store_read_begin(st, &txn, &err) < 0)
		return;
	if (!(it->entries = calloc(OUTBOX_PAGE, sizeof(*it->entries))) || !(tc.codec = body_codec_new())) {
		store_read_end(txn);
		return;
	}
	/* nothing left but holes (forget) up to the last seq: the thread moves past them */
	if (store_seq_walk(txn, st, DB_OUTBOX, it->after, take_entry, &tc, &err) == 0)
		it->upto = outbox_last_seq(cl->ob) > it->upto ? outbox_last_seq(cl->ob) : it->upto;
	store_read_end(txn);
	body_codec_free(tc.codec);
	it->ok = 1;
}

static void complete(struct cluster *cl, struct item **items, size_t n)
{
	pthread_mutex_lock(&cl->mu);
	for (size_t i = 0; i < n; i++)
		items[i]->done = 1;
	pthread_cond_broadcast(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
}

#define TURN_MAX 64
#define TURN_MAX_MSGS 256       /* bounds a loop turn (and its transaction) as ingest groups do */

static void on_wake(struct loop *loop, short revents, void *ctx)
{
	struct cluster *cl = ctx;
	struct item *list, *batches[TURN_MAX], *others[TURN_MAX];
	size_t nb = 0, no = 0, nmsgs = 0;
	uint64_t count;

	(void)loop;
	(void)revents;
	if (read(cl->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&cl->mu);
	list = cl->head;
	/* a bounded turn: the rest stays queued and the eventfd is kicked again */
	while (list && nb < TURN_MAX && no < TURN_MAX && nmsgs < TURN_MAX_MSGS) {
		if (list->kind == ITEM_BATCH) {
			batches[nb++] = list;
			nmsgs += (size_t)list->nmsgs;
		} else {
			others[no++] = list;
		}
		list = list->next;
	}
	cl->head = list;
	if (!list)
		cl->tail = NULL;
	pthread_mutex_unlock(&cl->mu);
	if (list) {
		uint64_t one = 1;
		if (write(cl->efd, &one, sizeof(one)) < 0)
			log_debug("cluster, cannot kick the loop (%s)", strerror(errno));
	}
	for (size_t i = 0; i < no; i++) {
		if (others[i]->kind == ITEM_REQUEST)
			answer_request(cl, others[i]);
		else
			read_outbox(cl, others[i]);
	}
	if (nb)
		apply_batches(cl, batches, nb);
	complete(cl, others, no);
	complete(cl, batches, nb);
}

void cluster_pause(struct cluster *cl, int paused)
{
	if (!cl || paused == cl->paused)
		return;
	cl->paused = paused;
	loop_set_events(cl->loop, NULL, cl->efd, paused ? 0 : ZMQ_POLLIN);
}

/* The outbox's last seq after a commit (outbox_on_committed, loop thread). */
static void on_outbox_committed(void *ctx, uint64_t last_seq)
{
	struct cluster *cl = ctx;

	pthread_mutex_lock(&cl->mu);
	if (last_seq > cl->committed) {
		cl->committed = last_seq;
		pthread_cond_broadcast(&cl->cv);
	}
	pthread_mutex_unlock(&cl->mu);
}

/* ---- JetStream set-up --------------------------------------------------------------- */

static const char *js_text(natsStatus s)
{
	const char *last = nats_GetLastError(NULL);
	return last && *last ? last : natsStatus_GetText(s);
}

/* Creates the stream when it is missing; an operator's own stream is taken as it is. */
static int ensure_stream(struct cluster *cl, const char *name, const char *subject, int64_t max_age_ms)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	const char *subjects[1] = { subject };
	natsStatus s = js_GetStreamInfo(&si, cl->js, name, NULL, &jerr);

	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND && jerr != JS_NOT_FOUND_STREAM) {
		log_warning("cluster, stream %s: %s", name, js_text(s));
		return -1;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = cl->cc->replicas;
	sc.MaxAge = max_age_ms * 1000000LL;
	s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, cannot create stream %s (%s, %d)", name, js_text(s), (int)jerr);
		return -1;
	}
	log_info("cluster, created stream %s (%s, %lld replicas)", name, subject, (long long)sc.Replicas);
	jsStreamInfo_Destroy(si);
	return 0;
}

/* JetStream calls wait for their whole timeout while no server is there: don't start one. */
static int connected(struct cluster *cl)
{
	return natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* Replaces the partition's consumer by one starting after the watermark. */
static int consumer_start(struct part *p)
{
	struct cluster *cl = p->cl;
	char subject[128];
	jsConsumerInfo *ci = NULL;
	jsConsumerConfig cc;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	snprintf(subject, sizeof(subject), "%s.ev.>", cl->cc->prefix);
	pthread_mutex_lock(&cl->setup_mu);
	if (!cl->events_ready)
		cl->events_ready = ensure_stream(cl, cl->cc->events_stream, subject,
						 cl->cc->events_max_age_ms) == 0;
	int ready = cl->events_ready;
	pthread_mutex_unlock(&cl->setup_mu);
	if (!ready)
		return -1;
	s = js_DeleteConsumer(cl->js, cl->cc->events_stream, p->durable, NULL, &jerr);
	if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JS_NOT_FOUND_CONSUMER) {
		log_warning("cluster, partition %u: cannot delete the old consumer (%s)", p->id, js_text(s));
		return -1;
	}
	jsConsumerConfig_Init(&cc);
	cc.Durable = p->durable;
	cc.Description = cl->cc->shard;
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = p->applied + 1;
	cc.AckPolicy = js_AckAll;
	cc.AckWait = ACK_WAIT_NS;
	cc.FilterSubject = p->filter;
	cc.MaxAckPending = 100000;
	s = js_AddConsumer(&ci, cl->js, cl->cc->events_stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, partition %u: cannot create consumer %s (%s, %d)", p->id, p->durable,
			    js_text(s), (int)jerr);
		return -1;
	}
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = cl->cc->events_stream;
	so.Consumer = p->durable;
	s = js_PullSubscribe(&p->sub, cl->js, p->filter, p->durable, NULL, &so, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, partition %u: cannot bind consumer %s (%s)", p->id, p->durable,
			    js_text(s));
		p->sub = NULL;
		return -1;
	}
	p->next_delivery = 1; /* a new consumer numbers its deliveries from 1 */
	log_info("cluster, partition %u: consuming %s from stream seq %llu", p->id, p->filter,
		 (unsigned long long)(p->applied + 1));
	return 0;
}

/* ---- fetchers ----------------------------------------------------------------------- */

static void publish_rejects(struct part *p, struct item *it)
{
	for (size_t i = 0; i < it->nrejects; i++) {
		natsConnection_PublishString(p->cl->nc, p->rejects_subject, it->rejects[i]);
		free(it->rejects[i]);
	}
	free(it->rejects);
	it->rejects = NULL;
	it->nrejects = 0;
}

static void free_parsed(struct item *it)
{
	for (int i = 0; it->batches && i < it->nmsgs; i++)
		batch_free(it->batches[i]);
	free(it->batches);
	it->batches = NULL;
}

/*
 * Parsing here, beside the loop's commits, rather than on the loop: the loop
 * gets finished batches. 0, or -1 out of memory, which is no verdict on a
 * message: it is fetched again, not skipped.
 */
static int parse_fetched(struct part *p, struct item *it)
{
	struct cluster *cl = p->cl;

	free_parsed(it);
	if (!(it->batches = calloc((size_t)it->nmsgs, sizeof(*it->batches))))
		return -1;
	for (int i = 0; i < it->nmsgs; i++) {
		struct batch *b = it->batches[i] = batch_new();
		if (!b)
			return -1;
		batch_parse_frame(b, p->tok, natsMsg_GetData(it->msgs[i]),
				  (size_t)natsMsg_GetDataLength(it->msgs[i]), ingest_clock_now(cl->clock),
				  ingest_clock_max_future(cl->clock));
		reject_strays(cl, p, b);
		if (b->fail.code == HERR_NOMEM)
			return -1;
	}
	return 0;
}

/* Hands the fetched messages to the loop until they are applied; then acks them. */
static void hand_over(struct part *p, natsMsgList *list)
{
	struct cluster *cl = p->cl;
	struct item it = { .kind = ITEM_BATCH, .part = p, .msgs = list->Msgs, .nmsgs = list->Count };

	if (!(it.seqs = calloc((size_t)list->Count, sizeof(*it.seqs))))
		return;         /* not acked: redelivered after the ack wait */
	for (int i = 0; i < list->Count; i++) {
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, list->Msgs[i]) != NATS_OK) {
			log_warning("cluster, partition %u: a message without JetStream metadata", p->id);
			goto out;
		}
		it.seqs[i] = meta->Sequence.Stream;
		uint64_t delivery = meta->Sequence.Consumer;
		jsMsgMetaData_Destroy(meta);
		/*
		 * A delivery missing (sent into a connection that then dropped): with
		 * AckAll the ack of a later message would ack it too, and it would
		 * never come again. The consumer starts over from the applied mark.
		 */
		if (delivery != p->next_delivery) {
			log_warning("cluster, partition %u: delivery %llu came where %llu was due; "
				    "consuming again from stream seq %llu", p->id, (unsigned long long)delivery,
				    (unsigned long long)p->next_delivery, (unsigned long long)(p->applied + 1));
			natsSubscription_Destroy(p->sub);
			p->sub = NULL;
			goto out;
		}
		p->next_delivery = delivery + 1;
	}
	for (;;) {
		/* again after a failed commit: that attempt marked the batches */
		if (parse_fetched(p, &it) < 0)
			goto out;
		item_push(cl, &it);
		item_wait(cl, &it);
		if (it.ok)
			break;
		if (stopping(cl))
			goto out;
		nap(cl, RETRY_MS);
	}
	p->applied = it.mark;
	/* AckAll: the last message acks the batch; a lost ack is only a redelivery, skipped */
	natsMsg_Ack(list->Msgs[list->Count - 1], NULL);
out:
	publish_rejects(p, &it);
	free_parsed(&it);
	free(it.seqs);
}

static void *fetch_main(void *arg)
{
	struct part *p = arg;
	struct cluster *cl = p->cl;
	int failures = 0;

	while (!stopping(cl)) {
		natsMsgList list = { 0 };
		jsErrCode jerr = 0;
		natsStatus s;

		if (!p->sub && (!connected(cl) || consumer_start(p) < 0)) {
			nap(cl, connected(cl) ? 1000 : 100);
			continue;
		}
		s = natsSubscription_Fetch(&list, p->sub, cl->cc->fetch, FETCH_WAIT_MS, &jerr);
		if (s == NATS_OK && list.Count > 0) {
			failures = 0;
			hand_over(p, &list);
		} else if (s != NATS_OK && s != NATS_TIMEOUT) {
			/* the consumer went away (deleted, or its stream): start over from the mark */
			if (jerr == JS_NOT_FOUND_CONSUMER || s == NATS_NOT_FOUND || ++failures >= 20) {
				log_warning("cluster, partition %u: fetching failed (%s); re-creating the consumer",
					    p->id, js_text(s));
				natsSubscription_Destroy(p->sub);
				p->sub = NULL;
				failures = 0;
			}
			nap(cl, 100);
		}
		natsMsgList_Destroy(&list);
	}
	return NULL;
}

/* ---- alerts ------------------------------------------------------------------------- */

/* The seq of this shard's last notification in the alerts stream: 0 none, -1 unknown yet. */
static int last_published(struct cluster *cl, uint64_t *seq)
{
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	const char *v = NULL;
	natsStatus s = js_GetLastMsg(&m, cl->js, cl->cc->alerts_stream, cl->alerts_subject, NULL, &jerr);

	if (s == NATS_NOT_FOUND || jerr == JS_NOT_FOUND_MESSAGE) {
		*seq = 0;
		return 0;
	}
	if (s != NATS_OK)
		return -1;
	*seq = natsMsgHeader_Get(m, "Hearth-Seq", &v) == NATS_OK && v ? strtoull(v, NULL, 10) : 0;
	natsMsg_Destroy(m);
	return 0;
}

static int publish_alert(struct cluster *cl, const struct outbox_entry *e)
{
	char id[96], seq[24];
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsPubOptions po;
	jsErrCode jerr = 0;
	natsStatus s;

	snprintf(id, sizeof(id), "%s-%llu", cl->cc->shard, (unsigned long long)e->seq);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->seq);
	s = natsMsg_Create(&m, cl->alerts_subject, NULL, e->body, (int)e->len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Hearth-Shard", cl->cc->shard);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Hearth-Seq", seq);
	if (s == NATS_OK) {
		jsPubOptions_Init(&po);
		po.MsgId = id;
		po.MaxWait = PUBLISH_WAIT_MS;
		s = js_PublishMsg(&pa, cl->js, m, &po, &jerr);
	}
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(m);
	return s == NATS_OK ? 0 : -1;
}

static void *alerts_main(void *arg)
{
	struct cluster *cl = arg;
	char subject[128];
	uint64_t published = 0;
	int64_t backoff = 100;

	snprintf(subject, sizeof(subject), "%s.alerts.>", cl->cc->prefix);
	while (!stopping(cl) && (!connected(cl) ||
				 ensure_stream(cl, cl->cc->alerts_stream, subject, cl->alerts_max_age_ms) < 0 ||
				 last_published(cl, &published) < 0))
		nap(cl, connected(cl) ? 1000 : 100);
	if (!stopping(cl))
		log_info("cluster, alerts: the stream has this shard's notifications up to seq %llu",
			 (unsigned long long)published);
	/*
	 * A store that never reached what the stream holds (new, or restored from a backup)
	 * numbers its notifications anew: publish them rather than wait for ever, and say
	 * that this shard's seq in the stream is no longer one sequence.
	 */
	pthread_mutex_lock(&cl->mu);
	if (published > cl->committed) {
		log_error("cluster, alerts: %s holds seq %llu of shard %s but this store's last is %llu "
			  "(a new or restored store): its seq restarts below; give such a store a new "
			  "cluster.shard name (docs/SCALING.md §6)", cl->cc->alerts_stream,
			  (unsigned long long)published, cl->cc->shard, (unsigned long long)cl->committed);
		published = cl->committed;
	}
	pthread_mutex_unlock(&cl->mu);
	while (!stopping(cl)) {
		struct item it = { .kind = ITEM_OUTBOX, .after = published };

		pthread_mutex_lock(&cl->mu);
		while (!cl->stopping && cl->committed <= published)
			pthread_cond_wait(&cl->cv, &cl->mu);
		pthread_mutex_unlock(&cl->mu);
		item_push(cl, &it);
		item_wait(cl, &it);
		for (size_t i = 0; it.ok && i < it.nentries && !stopping(cl);) {
			if (publish_alert(cl, &it.entries[i]) < 0) {
				__atomic_add_fetch(&cl->alerts_retries, 1, __ATOMIC_RELAXED);
				nap(cl, backoff);
				backoff = backoff < 2000 ? backoff * 2 : 2000;
				continue;       /* the same Nats-Msg-Id: the stream drops a copy */
			}
			backoff = 100;
			published = it.entries[i].seq;
			__atomic_add_fetch(&cl->alerts_published, 1, __ATOMIC_RELAXED);
			i++;
		}
		if (it.ok && !stopping(cl) && it.upto > published &&
		    (it.nentries == 0 || published == it.entries[it.nentries - 1].seq))
			published = it.upto;
		for (size_t i = 0; i < it.nentries; i++)
			free(it.entries[i].body);
		free(it.entries);
		if (!it.ok && !stopping(cl))
			nap(cl, RETRY_MS);
	}
	return NULL;
}

/* ---- control requests --------------------------------------------------------------- */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct ctl_sub *cs = closure;
	const char *reply = natsMsg_GetReply(msg);
	struct item it = { .kind = ITEM_REQUEST, .scatter = cs->scatter };

	(void)sub;
	if (reply && *reply) {
		it.data = natsMsg_GetData(msg);
		it.len = (size_t)natsMsg_GetDataLength(msg);
		item_push(cs->cl, &it);
		item_wait(cs->cl, &it);
		if (it.answer)
			natsConnection_PublishString(nc, reply, it.answer);
		free(it.answer);
	}
	natsMsg_Destroy(msg);
}

static int subscribe_control(struct cluster *cl, struct herr *err)
{
	char subject[128];
	natsStatus s;

	cl->ctl_one = (struct ctl_sub){ cl, 0 };
	cl->ctl_all = (struct ctl_sub){ cl, 1 };
	if (!(cl->ctl_subs = calloc(cl->nparts + 1, sizeof(*cl->ctl_subs))))
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i <= cl->nparts; i++) {
		if (i < cl->nparts)
			snprintf(subject, sizeof(subject), "%s.ctl.p.%u", cl->cc->prefix, cl->parts[i].id);
		else
			snprintf(subject, sizeof(subject), "%s.ctl.all", cl->cc->prefix);
		s = natsConnection_Subscribe(&cl->ctl_subs[i], cl->nc, subject, on_request,
					     i < cl->nparts ? &cl->ctl_one : &cl->ctl_all);
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "cluster, cannot subscribe to %s (%s)", subject,
					js_text(s));
		cl->nctl_subs++;
	}
	return 0;
}

/* ---- open and close ----------------------------------------------------------------- */

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	log_warning("cluster, disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	char url[256] = "";

	(void)closure;
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("cluster, reconnected to %s", url);
}

/* With this callback set, the first connect returns at once when no server answers yet. */
static void on_connected(natsConnection *nc, void *closure)
{
	char url[256] = "";

	(void)closure;
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("cluster, connected to %s", url);
}

static int connect_nats(struct cluster *cl, struct herr *err)
{
	struct cluster_config *cc = cl->cc;
	natsOptions *opts = NULL;
	jsOptions jo;
	natsStatus s;
	char name[96];

	snprintf(name, sizeof(name), "hearthd %s", cc->shard);
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(opts, (const char **)cc->servers, (int)cc->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, name);
	if (s == NATS_OK && cc->creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, cc->creds, NULL);
	else if (s == NATS_OK)
		s = natsOptions_SetUserInfo(opts, cc->user, cc->password);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);          /* never give up */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnected, cl);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&cl->nc, opts);
		if (s == NATS_NOT_YET_CONNECTED) {
			log_warning("cluster, no NATS server reachable yet; retrying in the background");
			s = NATS_OK;
		}
	}
	if (s == NATS_OK) {
		jsOptions_Init(&jo);
		jo.Wait = PUBLISH_WAIT_MS;
		s = natsConnection_JetStream(&cl->js, cl->nc, &jo);
	}
	natsOptions_Destroy(opts);
	if (s != NATS_OK)
		return herr_set(err, HERR_IO, "cluster, cannot connect to NATS (%s)", js_text(s));
	return 0;
}

/* The watermarks, and the partition count the store was filled with. */
static int read_marks(struct cluster *cl, struct herr *err)
{
	struct store *st = cl->gc->st;
	MDB_txn *txn;

	if (store_read_begin(st, &txn, err) < 0)
		return -1;
	uint64_t had = store_meta_u64(txn, st, "cluster.partitions");
	for (size_t i = 0; i < cl->nparts; i++)
		cl->parts[i].applied = cl->parts[i].mark = store_meta_u64(txn, st, cl->parts[i].mark_name);
	store_read_end(txn);
	/* another N moves customers between partitions: the stores would no longer match */
	if (had && had != cl->cc->partitions)
		return herr_set(err, HERR_CONFIG_ERROR, "cluster.partitions is %u but this store was filled "
				"with %llu partitions; re-partitioning needs new shards (docs/SCALING.md)",
				cl->cc->partitions, (unsigned long long)had);
	return 0;
}

static int partitions_mark(struct wtxn *w, void *ctx, struct herr *err)
{
	(void)err;
	wtxn_meta_u64(w, "cluster.partitions", *(const uint64_t *)ctx);
	return 0;
}

struct cluster *cluster_open(struct cluster_config *cc, int64_t retain_ms, const struct group_committer *gc,
			     struct outbox *ob, struct loop *loop, const struct ingest_clock *clock,
			     cluster_answer_fn answer, void *answer_ctx, struct herr *err)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	uint64_t partitions;

	if (!cl) {
		herr_set(err, HERR_NOMEM, "out of memory");
		cluster_config_free(cc);
		return NULL;
	}
	cl->gc = gc;
	cl->loop = loop;
	cl->answer = answer;
	cl->answer_ctx = answer_ctx;
	cl->efd = -1;
	pthread_mutex_init(&cl->mu, NULL);
	pthread_mutex_init(&cl->setup_mu, NULL);
	pthread_cond_init(&cl->cv, NULL);
	cl->clock = clock;
	cl->cc = cc;
	cl->alerts_max_age_ms = cc->alerts_max_age_ms ? cc->alerts_max_age_ms : retain_ms;
	snprintf(cl->alerts_subject, sizeof(cl->alerts_subject), "%s.alerts.%s", cl->cc->prefix,
		 cl->cc->shard);
	cl->nparts = cl->cc->nowns;
	if (!(cl->parts = calloc(cl->nparts, sizeof(*cl->parts))) || !(cl->tok = batch_tokener_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < cl->nparts; i++) {
		struct part *p = &cl->parts[i];
		p->cl = cl;
		p->id = cl->cc->owns[i];
		snprintf(p->durable, sizeof(p->durable), "%s_p%u", cl->cc->prefix, p->id);
		snprintf(p->filter, sizeof(p->filter), "%s.ev.%u.>", cl->cc->prefix, p->id);
		snprintf(p->mark_name, sizeof(p->mark_name), "cluster.p.%u", p->id);
		snprintf(p->rejects_subject, sizeof(p->rejects_subject), "%s.rejects.%u", cl->cc->prefix, p->id);
		if (!(p->tok = batch_tokener_new())) {
			herr_set(err, HERR_NOMEM, "out of memory");
			goto fail;
		}
	}
	if (read_marks(cl, err) < 0)
		goto fail;
	partitions = cl->cc->partitions;
	if (store_write(gc->st, partitions_mark, &partitions, err) < 0)
		goto fail;
	cl->committed = outbox_last_seq(ob);
	cl->ob = ob;
	outbox_on_committed(cl->ob, on_outbox_committed, cl);
	cl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cl->efd < 0 || loop_watch(loop, NULL, cl->efd, ZMQ_POLLIN, on_wake, cl) < 0) {
		herr_set(err, HERR_IO, "cluster, cannot set up the wake-up (%s)", strerror(errno));
		goto fail;
	}
	if (connect_nats(cl, err) < 0 || subscribe_control(cl, err) < 0)
		goto fail;
	for (size_t i = 0; i < cl->nparts; i++) {
		if (pthread_create(&cl->parts[i].thread, NULL, fetch_main, &cl->parts[i])) {
			herr_set(err, HERR_IO, "cluster, cannot start a thread");
			goto fail;
		}
		cl->parts[i].started = 1;
	}
	if (pthread_create(&cl->alerts_thread, NULL, alerts_main, cl)) {
		herr_set(err, HERR_IO, "cluster, cannot start a thread");
		goto fail;
	}
	cl->alerts_started = 1;
	log_info("cluster, shard %s: %zu of %u partitions, alerts to %s", cl->cc->shard, cl->nparts,
		 cl->cc->partitions, cl->alerts_subject);
	return cl;
fail:
	cluster_close(cl);
	return NULL;
}

void cluster_close(struct cluster *cl)
{
	if (!cl)
		return;
	if (cl->ob)
		outbox_on_committed(cl->ob, NULL, NULL);
	/* stop first: whatever is queued or pushed from now on comes back done, not ok */
	pthread_mutex_lock(&cl->mu);
	cl->stopping = 1;
	for (struct item *it = cl->head; it; it = it->next)
		it->done = 1;
	cl->head = cl->tail = NULL;
	pthread_cond_broadcast(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
	/* control callbacks return at once now; no more of them after the unsubscribe */
	for (size_t i = 0; i < cl->nctl_subs; i++)
		natsSubscription_Unsubscribe(cl->ctl_subs[i]);
	for (size_t i = 0; i < cl->nparts; i++)
		if (cl->parts[i].started)
			pthread_join(cl->parts[i].thread, NULL);
	if (cl->alerts_started)
		pthread_join(cl->alerts_thread, NULL);
	for (size_t i = 0; i < cl->nctl_subs; i++)
		natsSubscription_Destroy(cl->ctl_subs[i]);
	free(cl->ctl_subs);
	for (size_t i = 0; i < cl->nparts; i++)
		natsSubscription_Destroy(cl->parts[i].sub);
	jsCtx_Destroy(cl->js);
	if (cl->nc) {
		if (natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED)
			natsConnection_FlushTimeout(cl->nc, 1000);  /* the last acks and reports */
		natsConnection_Close(cl->nc);
		natsConnection_Destroy(cl->nc);
	}
	/* a callback still running on a libnats thread must be gone before cl is */
	nats_CloseAndWait(5000);
	if (cl->efd >= 0) {
		loop_unwatch(cl->loop, NULL, cl->efd);
		close(cl->efd);
	}
	json_tokener_free(cl->tok);
	for (size_t i = 0; cl->parts && i < cl->nparts; i++)
		if (cl->parts[i].tok)
			json_tokener_free(cl->parts[i].tok);
	free(cl->parts);
	cluster_config_free(cl->cc);
	pthread_cond_destroy(&cl->cv);
	pthread_mutex_destroy(&cl->mu);
	pthread_mutex_destroy(&cl->setup_mu);
	free(cl);
}

void cluster_metrics(struct cluster *cl, struct wbuf *out)
{
	if (!cl)
		return;
	metric_family(out, "hearth_cluster_messages_total", "counter",
		      "Stream messages by outcome: applied, skipped (at or below the watermark), failed (fetched again).");
	metric_value(out, "hearth_cluster_messages_total", "result=\"applied\"", (double)cl->stats.messages);
	metric_value(out, "hearth_cluster_messages_total", "result=\"skipped\"", (double)cl->stats.skipped);
	metric_value(out, "hearth_cluster_messages_total", "result=\"failed\"",
		     (double)cl->stats.messages_failed);
	metric_family(out, "hearth_cluster_events_rejected_total", "counter",
		      "Events of stream messages rejected, each reported on <prefix>.rejects.<partition>.");
	metric_value(out, "hearth_cluster_events_rejected_total", NULL, (double)cl->stats.events_rejected);
	metric_family(out, "hearth_cluster_requests_total", "counter", "Control requests answered over NATS.");
	metric_value(out, "hearth_cluster_requests_total", NULL, (double)cl->stats.requests);
	metric_family(out, "hearth_cluster_alerts_published_total", "counter",
		      "Notifications published to the alerts stream.");
	metric_value(out, "hearth_cluster_alerts_published_total", NULL,
		     (double)__atomic_load_n(&cl->alerts_published, __ATOMIC_RELAXED));
	metric_family(out, "hearth_cluster_alerts_retries_total", "counter",
		      "Publishes to the alerts stream tried again (no PubAck in time).");
	metric_value(out, "hearth_cluster_alerts_retries_total", NULL,
		     (double)__atomic_load_n(&cl->alerts_retries, __ATOMIC_RELAXED));
	for (size_t i = 0; i < cl->nparts; i++) {
		char labels[32];
		if (i == 0)
			metric_family(out, "hearth_cluster_watermark", "gauge",
				      "Stream sequence of the last message applied, per partition.");
		snprintf(labels, sizeof(labels), "partition=\"%u\"", cl->parts[i].id);
		metric_value(out, "hearth_cluster_watermark", labels, (double)cl->parts[i].mark);
	}
}
