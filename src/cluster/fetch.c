/*
 * A fetcher thread, one per owned partition: it pulls from the partition's
 * durable consumer, parses what it fetched, hands the batch to the loop and
 * waits until it has been applied; only then does it ack (AckAll: the last
 * message acks the batch), and it publishes the batch's rejection reports.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_impl.h"
#include "hearth/batch.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"

#define FETCH_WAIT_MS      1000

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
		cluster_item_push(cl, &it);
		cluster_item_wait(cl, &it);
		if (it.ok)
			break;
		if (cluster_stopping(cl))
			goto out;
		cluster_nap(cl, RETRY_MS);
	}
	p->applied = it.mark;
	/* AckAll: the last message acks the batch; a lost ack is only a redelivery, skipped */
	natsMsg_Ack(list->Msgs[list->Count - 1], NULL);
out:
	publish_rejects(p, &it);
	free_parsed(&it);
	free(it.seqs);
}

void *cluster_fetch_main(void *arg)
{
	struct part *p = arg;
	struct cluster *cl = p->cl;
	int failures = 0;

	while (!cluster_stopping(cl)) {
		natsMsgList list = { 0 };
		jsErrCode jerr = 0;
		natsStatus s;

		if (!p->sub && (!cluster_connected(cl) || cluster_consumer_start(p) < 0)) {
			cluster_nap(cl, cluster_connected(cl) ? 1000 : 100);
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
					    p->id, cluster_js_text(s));
				natsSubscription_Destroy(p->sub);
				p->sub = NULL;
				failures = 0;
			}
			cluster_nap(cl, 100);
		}
		natsMsgList_Destroy(&list);
	}
	return NULL;
}
