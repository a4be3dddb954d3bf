/*
 * The loop's side of cluster mode: fetched batches of any partitions are
 * committed in one transaction with their watermarks (messages at or below a
 * watermark were applied before and are skipped), control requests are run,
 * and pages of the outbox read for the alerts thread. Bounded per loop turn.
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cluster_impl.h"
#include "hearth/batch.h"
#include "hearth/body_codec.h"
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/outbox.h"
#include "hearth/store.h"

#define OUTBOX_PAGE        256

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

#define TURN_MAX 64
#define TURN_MAX_MSGS 256       /* bounds a loop turn (and its transaction) as ingest groups do */

void cluster_on_wake(struct loop *loop, short revents, void *ctx)
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
	cluster_complete(cl, others, no);
	cluster_complete(cl, batches, nb);
}

void cluster_pause(struct cluster *cl, int paused)
{
	if (!cl || paused == cl->paused)
		return;
	cl->paused = paused;
	loop_set_events(cl->loop, NULL, cl->efd, paused ? 0 : ZMQ_POLLIN);
}

void cluster_on_outbox_committed(void *ctx, uint64_t last_seq)
{
	struct cluster *cl = ctx;

	pthread_mutex_lock(&cl->mu);
	if (last_seq > cl->committed) {
		cl->committed = last_seq;
		pthread_cond_broadcast(&cl->cv);
	}
	pthread_mutex_unlock(&cl->mu);
}
