/*
 * The control socket (PROTOCOL.md §5.1): a Unix stream socket speaking one JSON request
 * per line, answered in order, one line each. Peers are identified with
 * SO_PEERCRED so that commands that change state are kept to admins.
 */
#ifndef HEARTH_CONTROL_H
#define HEARTH_CONTROL_H

#include <stddef.h>

#include "hearth/err.h"

struct board_status;
struct job;
struct json_object;
struct json_tokener;
struct server;
struct control;

struct control_peer {
	unsigned uid;
	int pid;
	int admin;                      /* may change state (PROTOCOL.md §5.4) */
};

/* Binds control.path, or adopts listen_fd (socket activation) when >= 0. */
struct control *control_open(struct server *srv, int listen_fd, struct herr *err);
void control_close(struct control *ctl);
/* The writer's counters for `status`, read now (on the writer). */
void control_status_fill(struct server *srv, struct board_status *out);
/*
 * Posts them to srv->board (if any), with the counters of `metrics` and, when
 * they changed, the rules' last errors and the silences: after a loop turn, a
 * commit, a control command.
 */
void control_post_status(struct server *srv);
/* After a reload: hands the control thread the new configuration, re-resolving control.admin_groups. */
void control_reload(struct control *ctl);
size_t control_client_count(const struct control *ctl);
/*
 * One request line to its answer (never NULL but on exhausted memory). A job
 * command (hearth/job.h) goes to *later with NULL returned, for the caller to
 * run in slices; with later NULL it runs to its end here.
 */
struct json_object *control_answer(struct server *srv, struct json_tokener *tok, const char *line,
				   size_t len, const struct control_peer *peer, struct job **later);
/* The answer of a finished job step: ans as filled, or the error. Takes ans. */
struct json_object *control_job_answer(struct server *srv, struct json_object *ans, int rc,
				       const struct herr *err);

#endif
