/*
 * The alerts thread: it publishes the outbox in seq order to the alerts
 * stream, one message per notification with Nats-Msg-Id "<shard>-<seq>",
 * and resumes after the last one the stream holds for this shard, so a
 * crash republishes nothing twice.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cluster_impl.h"
#include "hearth/log.h"

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

void *cluster_alerts_main(void *arg)
{
	struct cluster *cl = arg;
	char subject[128];
	uint64_t published = 0;
	int64_t backoff = 100;

	snprintf(subject, sizeof(subject), "%s.alerts.>", cl->cc->prefix);
	while (!cluster_stopping(cl) && (!cluster_connected(cl) ||
				 cluster_ensure_stream(cl, cl->cc->alerts_stream, subject, cl->alerts_max_age_ms) < 0 ||
				 last_published(cl, &published) < 0))
		cluster_nap(cl, cluster_connected(cl) ? 1000 : 100);
	if (!cluster_stopping(cl))
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
	while (!cluster_stopping(cl)) {
		struct item it = { .kind = ITEM_OUTBOX, .after = published };

		pthread_mutex_lock(&cl->mu);
		while (!cl->stopping && cl->committed <= published)
			pthread_cond_wait(&cl->cv, &cl->mu);
		pthread_mutex_unlock(&cl->mu);
		cluster_item_push(cl, &it);
		cluster_item_wait(cl, &it);
		for (size_t i = 0; it.ok && i < it.nentries && !cluster_stopping(cl);) {
			if (publish_alert(cl, &it.entries[i]) < 0) {
				__atomic_add_fetch(&cl->alerts_retries, 1, __ATOMIC_RELAXED);
				cluster_nap(cl, backoff);
				backoff = backoff < 2000 ? backoff * 2 : 2000;
				continue;       /* the same Nats-Msg-Id: the stream drops a copy */
			}
			backoff = 100;
			published = it.entries[i].seq;
			__atomic_add_fetch(&cl->alerts_published, 1, __ATOMIC_RELAXED);
			i++;
		}
		if (it.ok && !cluster_stopping(cl) && it.upto > published &&
		    (it.nentries == 0 || published == it.entries[it.nentries - 1].seq))
			published = it.upto;
		for (size_t i = 0; i < it.nentries; i++)
			free(it.entries[i].body);
		free(it.entries);
		if (!it.ok && !cluster_stopping(cl))
			cluster_nap(cl, RETRY_MS);
	}
	return NULL;
}
