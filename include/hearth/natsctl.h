/*
 * The client side of control over NATS (PROTOCOL.md §9.6), shared by
 * `hearthctl --nats` and hearth-web's `nats:` transport: one entry point to a
 * cluster of shards.
 *
 * - A command about one customer (`id`, or `customer` for eval, explain, ack)
 *   is a request on <prefix>.ctl.p.<partition>, which only the owning shard
 *   subscribes to; the partition is FNV-1a of the id modulo the partition count.
 * - Anything else is scattered on <prefix>.ctl.all; every shard answers with
 *   the partitions it owns, answers are gathered until those cover every
 *   partition (or the wait ends: the answer then says which are missing), and
 *   merged: counts added, lists joined, `top` ranked again and cut to n (each
 *   shard's top n holds the deployment's top n, so the merge is exact).
 *
 * Requests of one call go out together and are answered within one deadline,
 * so a page of several commands costs one round trip, and a shard that is down
 * costs it one wait, not one per command. Not thread-safe: one user at a time.
 */
#ifndef HEARTH_NATSCTL_H
#define HEARTH_NATSCTL_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct json_object;
struct natsctl;

struct natsctl_opts {
	const char *urls;               /* "nats://a:4222,nats://b:4222": any one will do */
	const char *user, *password;    /* or creds; all may be NULL */
	const char *creds;              /* a .creds file */
	const char *prefix;             /* NULL: "hearth" */
	uint32_t partitions;            /* 0: 16; the shards' own count wins once they answer */
	const char *name;               /* the connection's name on the server */
	int64_t request_ms;             /* a request to one partition; 0: 10 s */
	int64_t scatter_ms;             /* gathering every partition's answer; 0: 5 s */
	int background_connect;         /* 1: start even when no server answers yet, and keep trying */
};

/* Connects (HERR_IO when no server can be reached and background_connect is 0). */
struct natsctl *natsctl_new(const struct natsctl_opts *o, struct herr *err);
void natsctl_free(struct natsctl *c);

natsConnection *natsctl_connection(const struct natsctl *c);
const char *natsctl_prefix(const struct natsctl *c);
uint32_t natsctl_partitions(const struct natsctl *c);

/* The customer a command is about (its `id` or `customer`), or NULL: it is scattered. */
const char *natsctl_route_key(struct json_object *req);

/*
 * Sends the n requests at once and waits for their answers. Each answer is the
 * owning shard's, or the merge of every shard's (`complete`, and
 * `missing_partitions` when some did not answer in time). A request whose owner
 * did not answer, or a scatter nobody answered, fails the whole call: every
 * answer NULL, err (HERR_IO) names the partition or subject. Answers are the
 * caller's. A request is sent once, never again: safe for commands that change
 * state.
 */
int natsctl_calls(struct natsctl *c, struct json_object **reqs, struct json_object **answers, size_t n,
		  struct herr *err);

/*
 * The raw answers to text scattered on <prefix>.ctl.all, gathered until they
 * cover every partition or scatter_ms passed (an empty array then). *partitions
 * is the count the shards gave. For callers that read the shards one by one.
 */
struct json_object *natsctl_gather(struct natsctl *c, const char *text, uint32_t *partitions);
/* 1 when the answers' `owns` cover partitions 0..n-1; the missing ones into missing (if not NULL). */
int natsctl_covered(struct json_object *answers, uint32_t n, struct json_object *missing);
/*
 * natsctl_merge.c: the shards' answers to req as one (a new reference): counts
 * added, lists joined, `top` ranked again, `shards` who answered, `complete`
 * and `missing_partitions`. The first refusal (ok false) is the answer instead.
 */
struct json_object *natsctl_merge(struct json_object *req, struct json_object *answers,
				  struct json_object *missing);

#endif
