/*
 * One durable transaction per ingest group: the events' log records, the
 * pending state they change and the alerts they start or end. An ingest reply
 * and the alerts it causes thus wait for one disk sync, not two.
 */
#ifndef HEARTH_GROUP_COMMIT_H
#define HEARTH_GROUP_COMMIT_H

#include <stddef.h>
#include <stdint.h>

struct batch;
struct server;

/*
 * Stores the candidate events of n batches, evaluates the customers they touch
 * and, once durable, publishes the notifications. On a store failure every
 * batch gets b->fail set and nothing is stored or published. Returns 0 or -1.
 */
int group_commit(struct server *srv, struct batch **batches, size_t n);

/*
 * Cluster mode (hearth/cluster.h): the same, and the meta values in marks (each
 * partition's watermark) are written in the same transaction, so that what was
 * applied and how far the stream was read commit together or not at all.
 * n may be 0: a fetched batch whose events were all rejected still moves its mark.
 */
struct group_mark {
	const char *name;
	uint64_t value;
};
int group_commit_marked(struct server *srv, struct batch **batches, size_t n,
			const struct group_mark *marks, size_t nmarks);

#endif
