/*
 * One durable transaction per ingest group: the events' log records, the
 * pending state they change and the alerts they start or end. An ingest reply
 * and the alerts it causes thus wait for one disk sync, not two.
 */
#ifndef HEARTH_GROUP_COMMIT_H
#define HEARTH_GROUP_COMMIT_H

#include <stddef.h>

struct batch;
struct server;

/*
 * Stores the candidate events of n batches, evaluates the customers they touch
 * and, once durable, publishes the notifications. On a store failure every
 * batch gets b->fail set and nothing is stored or published. Returns 0 or -1.
 */
int group_commit(struct server *srv, struct batch **batches, size_t n);

#endif
