/*
 * The daemon's one state struct (cf. Redis's struct server), handed to every
 * handler instead of globals spread over files.
 */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include "hearth/group_commit.h"
#include "hearth/ingest_clock.h"

struct board;
struct board_status;
struct cluster;
struct config;
struct control;
struct engine;
struct ingest;
struct ruleset;
struct zap;
struct loop;
struct outbox;
struct store;
struct timeline;

struct server_counters {
	uint64_t ingest_requests, ingest_rejected, ingest_failed;
	uint64_t control_requests, control_errors, control_forbidden;
	uint64_t reloads, reload_failures;
};

struct server {
	struct config *cfg;
	const char *config_path;
	struct store *st;
	struct timeline *tl;
	struct outbox *outbox;
	struct engine *engine;
	struct group_committer gc;      /* what ingest, the cluster and `ingest` commit through */
	struct loop *loop;
	void *zctx;
	struct ingest *ingest;
	struct control *control;
	struct board *board;            /* counters shown to the control thread (hearth/board.h) */
	struct zap *zap;                /* CURVE client check, NULL without curve */
	struct cluster *cluster;        /* cluster mode (hearth/cluster.h), NULL single-server */
	int signal_fd;
	int test_clock;
	int64_t clock_offset_ms;        /* --test-clock: added to the wall clock */
	struct ingest_clock ingest_clock; /* that and max_future, published for parsing threads */
	int64_t started_mono_ms;
	struct server_counters counters;
	uint64_t posted_errors_gen;     /* what the board has of the engine's (control_post_status) */
	uint64_t posted_silences_gen;
};

/* The daemon's notion of now: the wall clock, moved by clock.* under --test-clock. */
int64_t server_now(const struct server *srv);
/* Loads a configuration and compiles its rules; errors as file:line:col lines. */
struct config *server_load_config(const char *path, struct ruleset **rs, char *errors,
				  size_t size);
/* Publishes the clock and max_future to the parsing threads: after either changes. */
void server_publish_clock(struct server *srv);
/*
 * Re-reads the configuration; keeps the old one on error (errors in msg). The
 * control thread's copy is the caller's to renew (control_reload).
 */
int server_reload(struct server *srv, char *msg, size_t size);

#endif
