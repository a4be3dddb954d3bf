/*
 * What the control files share, not for use elsewhere: request parsing and
 * the synchronous path (request.c), the control thread that owns the socket
 * and its connections (control.c), and the writer's end of the queue between
 * them (relay.c).
 *
 * Between the two threads runs one inproc PAIR carrying struct msg values
 * (pointers). A pointer belongs to the thread that last received it; the
 * `handoffs` atomic is bumped (release) before each send and read (acquire)
 * after each receive, making libzmq's ordering, which ThreadSanitizer does
 * not see, visible to it (as struct request's owner in src/ingest/ingest.c).
 */
#ifndef HEARTH_CONTROL_IMPL_H
#define HEARTH_CONTROL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "hearth/board.h"
#include "hearth/control.h"
#include "hearth/err.h"

struct client;
struct command;
struct config;
struct job;
struct json_object;
struct json_tokener;
struct loop;
struct overlay;
struct ruleset;
struct server;

enum msg_kind {
	MSG_REQUEST,                    /* control → writer: run this (struct fwd) */
	MSG_ANSWER,                     /* writer → control: its answer is in it (struct fwd) */
	MSG_NOTE,                       /* writer → control: struct overlay_note */
	MSG_SNAPSHOT,                   /* writer → control: struct snapshot, after a reload */
	MSG_STOP,                       /* writer → control: close everything and return */
};

struct msg {
	enum msg_kind kind;
	void *ptr;
};

/* A request the control thread hands to the writer, and back with its answer. */
struct fwd {
	struct client *c;               /* the control thread's: the writer only carries it */
	const struct command *cmd;
	struct json_object *req;
	struct json_object *ans;        /* the answer, once run */
	struct job *job;                /* the writer's, while a job runs in slices */
	int job_timer;
	struct fwd *next;               /* the writer's list of running jobs */
	struct control *ctl;
};

/* What the control thread reads of the configuration, its own to free. */
struct snapshot {
	struct config *cfg;             /* a reference (config_ref) */
	struct ruleset *rs;             /* compiled for the reader alone */
	gid_t *admin_gids;
	size_t nadmin;
};

struct control {
	/* fixed from open to close */
	struct server *srv;             /* the writer's half (relay.c) only: the control thread never reads it */
	struct store *st;               /* the control thread's read transactions open on it */
	int64_t started_mono_ms;        /* when the daemon started, for `status` */
	struct board *board;
	atomic_uint_fast64_t handoffs;
	pthread_t thread;
	int started;
	char *path;                     /* set when we bound it and must unlink it */
	/* the control thread's, from pthread_create to pthread_join */
	struct loop *loop;
	void *t_pair;
	int listen_fd;
	struct client **clients;
	size_t n, cap;
	struct snapshot *snap;
	struct overlay *ov;
	struct alert_states *alerts;    /* the alert journal as this thread last read it */
	int64_t read_us;                /* when a command last read alert states (mono): the journal is followed since */
	struct json_tokener *tok;
	struct json_tokener *scan_tok;
	struct board_control counters;
	int stopping;
	/* the writer's */
	void *w_pair;
	struct fwd *jobs;               /* running in slices */
};

/* request.c */
struct json_object *error_answer(const struct herr *err);
/* A request line to its request object and command; NULL with err set. */
struct json_object *request_parse(struct json_tokener *tok, const char *line, size_t len,
				  const struct command **command, struct herr *err);
/* May this peer run it? -1 with err set (and a warning logged) if not. */
int request_allowed(const struct command *command, const struct control_peer *peer,
		    struct herr *err);

/* relay.c: the writer's end */
int relay_send(struct control *ctl, void *pair, enum msg_kind kind, void *ptr);
/* 0 a message, 1 none waiting, -1 error. */
int relay_recv(struct control *ctl, void *pair, struct msg *m);
int relay_open(struct control *ctl, struct herr *err);
void relay_close(struct control *ctl);
struct snapshot *snapshot_new(struct server *srv);
void snapshot_free(struct snapshot *s);
/* Frees whatever a message carries (at close: nobody will take it). */
void msg_drop(struct msg *m);

#endif
