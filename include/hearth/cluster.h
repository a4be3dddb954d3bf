/*
 * Cluster mode on NATS JetStream (docs/SCALING.md, PROTOCOL.md §9): the shard
 * consumes the partitions its configuration assigns from the events stream,
 * applies each fetched batch together with the partition's watermark (the
 * stream sequence) in one LMDB transaction and only then acks; it drains its
 * outbox in order into the alerts stream; it answers control requests sent to
 * its partitions' subjects and to the deployment-wide one.
 *
 * Threads: NATS I/O happens on threads of this module and of libnats. The loop
 * thread alone touches the store, the engine and the timeline: the other
 * threads hand it work through one queue (a mutex, and an eventfd the loop
 * watches) and wait for each item to be completed.
 */
#ifndef HEARTH_CLUSTER_H
#define HEARTH_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct cluster;
struct group_committer;
struct ingest_clock;
struct json_object;
struct json_tokener;
struct loop;
struct outbox;
struct wbuf;

/* The `cluster:` section (PROTOCOL.md §9.1); absent means single-server mode. */
struct cluster_config {
	char **servers;                 /* nats://host:port */
	size_t nservers;
	char *user, *password;          /* or creds */
	char *creds;                    /* a .creds file */
	char *shard;                    /* this shard's name, [a-z][a-z0-9_]{0,31} */
	uint32_t partitions;            /* N of the mapping's partition(N, 1) */
	uint32_t *owns;                 /* the partitions this shard consumes */
	size_t nowns;
	char *prefix;                   /* subjects begin with it, "hearth" */
	char *events_stream;            /* "HEARTH_EVENTS" */
	char *alerts_stream;            /* "HEARTH_ALERTS" */
	int replicas;                   /* of the streams hearthd creates when missing */
	int64_t events_max_age_ms;      /* 0: events are kept for ever (the system of record) */
	int64_t alerts_max_age_ms;      /* 0: publish.retain */
	int fetch;                      /* messages per fetch */
};

void cluster_config_free(struct cluster_config *cc);

/* The 32-bit FNV-1a of s (docs/SCALING.md §1), the hash of partition(N, 1). */
uint32_t cluster_fnv1a32(const char *s, size_t len);

/*
 * One control request line to its answer object (NULL: out of memory), as for
 * a peer that is no admin; tok is the cluster's own, for parsing it.
 */
typedef struct json_object *(*cluster_answer_fn)(void *ctx, struct json_tokener *tok, const char *line,
						 size_t len);

/*
 * Connects, ensures the streams, starts the consumers from the stored
 * watermarks. Takes cc (a reload keeps the cluster as started); fetched
 * batches are committed through gc, the alerts stream drains ob, and control
 * requests go to answer.
 */
struct cluster *cluster_open(struct cluster_config *cc, int64_t retain_ms, const struct group_committer *gc,
			     struct outbox *ob, struct loop *loop, const struct ingest_clock *clock,
			     cluster_answer_fn answer, void *answer_ctx, struct herr *err);
void cluster_close(struct cluster *cl);

/* Stops (or resumes) taking fetched batches while derived state is backlogged. */
void cluster_pause(struct cluster *cl, int paused);
/* Prometheus lines for the metrics command. */
void cluster_metrics(struct cluster *cl, struct wbuf *out);

#endif
