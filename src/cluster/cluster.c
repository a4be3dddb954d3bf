/*
 * Cluster mode on NATS JetStream; see include/hearth/cluster.h and
 * docs/SCALING.md. This file opens and closes it; beside it:
 *   handoff.c        the queue between the threads and the loop
 *   apply.c          the loop's side: batches committed with their watermarks
 *   fetch.c          a fetcher thread per owned partition
 *   alerts_stream.c  the alerts thread, the outbox to the alerts stream
 *   requests.c       control requests over NATS
 *   jetstream.c      the connection, streams and consumers
 *   partition.c      which partition a customer belongs to
 *
 * A fetcher acks only after the loop committed the batch with the
 * partition's watermark (the stream sequence of its last message), and the
 * loop skips messages at or below the watermark: a redelivery, or a crash
 * between the commit and the ack, applies nothing twice.
 */
#include <errno.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "cluster_impl.h"
#include "hearth/batch.h"
#include "hearth/config.h"
#include "hearth/exposition.h"
#include "hearth/group_commit.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/outbox.h"
#include "hearth/store.h"

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
	outbox_on_committed(cl->ob, cluster_on_outbox_committed, cl);
	cl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cl->efd < 0 || loop_watch(loop, NULL, cl->efd, ZMQ_POLLIN, cluster_on_wake, cl) < 0) {
		herr_set(err, HERR_IO, "cluster, cannot set up the wake-up (%s)", strerror(errno));
		goto fail;
	}
	if (cluster_connect(cl, err) < 0 || cluster_subscribe_control(cl, err) < 0)
		goto fail;
	for (size_t i = 0; i < cl->nparts; i++) {
		if (pthread_create(&cl->parts[i].thread, NULL, cluster_fetch_main, &cl->parts[i])) {
			herr_set(err, HERR_IO, "cluster, cannot start a thread");
			goto fail;
		}
		cl->parts[i].started = 1;
	}
	if (pthread_create(&cl->alerts_thread, NULL, cluster_alerts_main, cl)) {
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
