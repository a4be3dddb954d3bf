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
struct engine;
struct store;
struct timeline;

/* What a group is committed through: the daemon's, filled once it has them all. */
struct group_committer {
	struct store *st;
	struct timeline *tl;
	struct engine *engine;
	/* after each group, before its replies (the daemon posts its status); may be NULL */
	void (*committed)(void *ctx);
	void *ctx;
};

/*
 * Stores the candidate events of n batches, evaluates the customers they touch
 * and, once durable, publishes the notifications. On a store failure every
 * batch gets b->fail set and nothing is stored or published. Returns 0 or -1.
 */
int group_commit(const struct group_committer *gc, struct batch **batches, size_t n);

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
int group_commit_marked(const struct group_committer *gc, struct batch **batches, size_t n,
			const struct group_mark *marks, size_t nmarks);

#endif
