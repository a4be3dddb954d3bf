/*
 * The control commands as data (cf. Redis's and Knot's command tables): the
 * socket dispatches from this table, the admin check reads its flags, and help
 * text lives beside each entry.
 */
#ifndef HEARTH_COMMANDS_H
#define HEARTH_COMMANDS_H

#include "hearth/err.h"

struct job;
struct json_object;
struct server;

#define CMD_CHANGES_STATE 0x1   /* admins only (PROTOCOL.md §5.4) */

/* Fills ans (which already holds "ok": true) or returns -1 with err set. */
typedef int (*command_fn)(struct server *srv, struct json_object *req, struct json_object *ans,
			  struct herr *err);

/* A command that works in slices (hearth/job.h): the job, or NULL with err set. */
typedef struct job *(*command_job_fn)(struct server *srv, struct json_object *req, struct herr *err);

struct command {
	const char *name;
	command_fn fn;                  /* NULL: a job command, started by `start` */
	unsigned flags;
	const char *help;
	command_job_fn start;
};

const struct command *command_find(const char *name);
/* The table, ended by an entry with name NULL. */
extern const struct command command_table[];

#endif
