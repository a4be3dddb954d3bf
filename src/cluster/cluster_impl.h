/*
 * What the cluster's files share (cluster.c names each). Not for use outside them.
 *
 * Threads: one fetcher per owned partition (fetch.c), the alerts thread
 * (alerts_stream.c), libnats' subscription threads for control requests
 * (requests.c), and the loop thread, which alone writes (apply.c). They meet
 * only in the queue of items (handoff.c), under cl->mu.
 */
#ifndef HEARTH_CLUSTER_IMPL_H
#define HEARTH_CLUSTER_IMPL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/cluster.h"

struct batch;
struct group_committer;
struct ingest_clock;
struct json_tokener;
struct loop;
struct outbox;

#define RETRY_MS           500
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

/* handoff.c: the queue between the threads and the loop */
/* Hands an item to the loop; with the cluster stopping, it is done at once, not ok. */
void cluster_item_push(struct cluster *cl, struct item *it);
void cluster_item_wait(struct cluster *cl, struct item *it);
/* Marks items done and wakes the threads waiting for them (loop thread). */
void cluster_complete(struct cluster *cl, struct item **items, size_t n);
int cluster_stopping(struct cluster *cl);
/* Sleeps ms, or less when the cluster stops. */
void cluster_nap(struct cluster *cl, int64_t ms);

/* apply.c: the loop's side */
void cluster_on_wake(struct loop *loop, short revents, void *ctx);
/* The outbox's last seq after a commit (outbox_on_committed, loop thread). */
void cluster_on_outbox_committed(void *ctx, uint64_t last_seq);

/* jetstream.c */
int cluster_connect(struct cluster *cl, struct herr *err);
/* JetStream calls wait for their whole timeout while no server is there: don't start one. */
int cluster_connected(struct cluster *cl);
const char *cluster_js_text(natsStatus s);
/* Creates the stream when it is missing; an operator's own stream is taken as it is. */
int cluster_ensure_stream(struct cluster *cl, const char *name, const char *subject, int64_t max_age_ms);
/* Replaces the partition's consumer by one starting after the watermark. */
int cluster_consumer_start(struct part *p);

/* fetch.c: a fetcher thread (arg: its struct part) */
void *cluster_fetch_main(void *arg);

/* alerts_stream.c: the alerts thread (arg: the cluster) */
void *cluster_alerts_main(void *arg);

/* requests.c */
int cluster_subscribe_control(struct cluster *cl, struct herr *err);

#endif
