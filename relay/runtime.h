/*
 * The relay's running state: one struct relay handed down (no globals spread
 * over files), holding the source (SUB + control client) and the targets.
 */
#ifndef HEARTH_RELAY_RUNTIME_H
#define HEARTH_RELAY_RUNTIME_H

#include <curl/curl.h>
#include <stdint.h>

#include "relay.h"

struct json_object;
struct ctl_client;

/*
 * One queued notification. A firing under hold_firing waits until hold_until
 * (monotonic ms) for its resolution; 0 means it may go.
 */
struct qitem {
	struct json_object *body;
	uint64_t seq;
	int64_t hold_until;
	int inflight;
};

/*
 * A target at run time. Invariant: every seq <= seen that is not in the queue
 * has been handled (delivered, skipped, dropped as a flap, or not matched);
 * the queue holds the rest, the matched bodies, in seq order. At most one
 * request is in flight; it carries the first ready items (not held), so
 * messages keep their order except that later ones may pass a held firing,
 * never one of the same alert (its repeat or resolution releases it first).
 * A full queue stops taking alerts without moving `seen`; once it has drained,
 * the loop replays from `seen` for it, so a long outage costs memory up to
 * queue_max and nothing else.
 *
 * What is saved (state.c) is the first unhandled seq that is not held, less
 * one, with the held ones before it; after a restart `keep` lists those, and
 * the replay skips every other seq up to keep_upto, which went out already.
 */
struct target {
	const struct target_conf *conf;   /* borrowed from the current config */
	uint64_t seen;
	int fresh;                        /* no state file yet: starts at the current seq */
	int overflow;                     /* queue was full: ignores the source until it drains */
	struct qitem *q;
	size_t qhead, qlen, qcap;
	size_t nheld;                     /* queued items with hold_until != 0 */
	int64_t next_release;             /* the earliest hold_until */
	uint64_t *keep, keep_upto;        /* after a restart: see above */
	size_t nkeep, ikeep;
	struct relay_state saved;         /* as last written */
	CURL *easy;
	struct curl_slist *headers;
	struct message msg;               /* the request in flight (body must outlive it) */
	size_t inflight_n;
	int attempts;                     /* consecutive failures of the head message */
	int64_t not_before;               /* monotonic ms: backoff, Retry-After, rate */
	int64_t group_deadline;
	int64_t last_send;
	char errbuf[CURL_ERROR_SIZE];
	char reply[256];                  /* the start of the service's answer */
	size_t reply_len;
	uint64_t delivered, skipped, retried, flaps;
};

struct relay {
	struct relay_config *cfg;
	struct target **targets;
	size_t ntargets;
	CURLM *multi;
	void *zctx, *sub;
	struct ctl_client *cc;
	struct relay_nats *nats;          /* source.nats: source_nats.c; NULL with ZeroMQ */
	uint64_t last;                    /* the last seq handed to the targets */
	int synced;                       /* the start point has been established */
	int64_t next_sync;
	int64_t next_catch_up;            /* after a failed catch-up replay */
	int stopping;
};

/* target.c */
struct target *target_new(const struct target_conf *conf, const char *state_dir, struct herr *err);
void target_free(struct target *t, CURLM *multi);
/* Moves the target on to seq (after `gone`). */
void target_start_at(struct target *t, uint64_t seq);
/* A target without a state file starts at seq, saved at once. */
void target_begin(struct target *t, uint64_t seq, const char *state_dir);
void target_offer(struct target *t, struct json_object *body, int64_t now);
/* One notification to every target; r->last becomes its seq. */
void targets_offer(struct relay *r, struct json_object *body, int64_t now);
/* Starts the next request when the target may; lowers *wake to its next deadline. */
void target_step(struct target *t, CURLM *multi, int64_t now, int64_t *wake);
void target_done(struct target *t, CURLM *multi, CURLcode rc, const char *state_dir, int64_t now);
void target_save(struct target *t, const char *state_dir);
static inline int target_busy(const struct target *t) { return t->inflight_n > 0; }

/* source.c */
int source_open(struct relay *r, struct herr *err);
void source_close(struct relay *r);
void *source_socket(struct relay *r);
/* Reads waiting PUB messages, filling gaps from replay; 1 if more remain. */
int source_drain(struct relay *r, int64_t now);
/* Establishes the start point (status + replay); 0 once done. */
int source_sync(struct relay *r, int64_t now);
/* Hands what the outbox holds after r->last up to (excluding) upto to the targets. */
int source_fill(struct relay *r, uint64_t upto, int64_t now);

/*
 * source_nats.c: the same four for source.nats. The alerts stream's sequence is
 * the relay's seq: bodies are handed on with "seq" set to it ("shard" and
 * "shard_seq" added), live through an ordered consumer feeding r->sub (an
 * inproc PULL), gaps and catch-ups read message by message from the stream.
 */
struct relay_nats;
int nats_source_open(struct relay *r, struct herr *err);
void nats_source_close(struct relay *r);
int nats_source_sync(struct relay *r, int64_t now);
int nats_source_fill(struct relay *r, uint64_t upto, int64_t now);

#endif
