/*
 * Sequenced notifications (PROTOCOL.md §4.6): each is written to the outbox in the same
 * transaction as the alert state change it reports, then published on the PUB
 * socket as topic + body. `seq` rises by exactly one across restarts; the
 * outbox keeps publish.retain so `replay` can fill any subscriber's gap.
 * Key: seq (u64 BE). Value: i64 ts | body JSON.
 */
#ifndef HEARTH_OUTBOX_H
#define HEARTH_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/store.h"

struct config;
struct ingest_clock;
struct json_object;
struct loop;
struct outbox;

/* Binds publish.listen; heartbeats on loop, stamped by clock. */
struct outbox *outbox_open(const struct config *cfg, struct store *st, struct loop *loop, void *zctx,
			   const struct ingest_clock *clock, struct herr *err);
void outbox_close(struct outbox *ob);
/* After a reload: publish.heartbeat and publish.retain are read from cfg from now on. */
void outbox_set_config(struct outbox *ob, const struct config *cfg);
/* fn is called with the new last seq after each commit (NULL: no more). */
typedef void (*outbox_committed_fn)(void *ctx, uint64_t last_seq);
void outbox_on_committed(struct outbox *ob, outbox_committed_fn fn, void *ctx);
uint64_t outbox_last_seq(const struct outbox *ob);

/* Inside a write transaction: stores body (which carries seq) at seq. */
void outbox_put(struct outbox *ob, struct wtxn *w, uint64_t seq, int64_t ts, const char *body,
		size_t len);
/* The same with the body stored already (body_codec_pack_rest, by a re-evaluation worker). */
void outbox_put_packed(struct outbox *ob, struct wtxn *w, uint64_t seq, int64_t ts, const void *packed,
		       size_t len);
/* Once per transaction, after its last put: the seq numbering goes on from (kept past retention). */
void outbox_put_last_seq(struct wtxn *w, uint64_t seq);
/* After the commit: the new last seq, and the message on the PUB socket. */
void outbox_committed(struct outbox *ob, uint64_t last_seq);
void outbox_publish(struct outbox *ob, const char *topic, const char *body, size_t len);

/*
 * Bodies with seq > after (at most limit) into list, as of txn (any thread's);
 * HERR_GONE if pruned. last_seq: the last seq committed as of txn.
 */
int outbox_replay_in(struct store *st, MDB_txn *txn, uint64_t after, size_t limit,
		     struct json_object *list, uint64_t *last_seq, struct herr *err);
/* Deletes up to max entries older than now - retain. */
int outbox_prune(struct outbox *ob, int64_t now, size_t max, struct herr *err);

struct outbox_stats {
	uint64_t published, heartbeats, pruned;
};
void outbox_get_stats(const struct outbox *ob, struct outbox_stats *out);

#endif
