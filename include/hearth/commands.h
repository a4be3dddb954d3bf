/*
 * The control commands as data (cf. Redis's and Knot's command tables): the
 * socket dispatches from this table, the admin check reads its flags, and help
 * text lives beside each entry.
 */
#ifndef HEARTH_COMMANDS_H
#define HEARTH_COMMANDS_H

#include <stdint.h>

#include "hearth/err.h"

struct board;
struct config;
struct job;
struct json_object;
struct json_tokener;
struct overlay;
struct ruleset;
struct server;
struct store;
struct timeline;

#define CMD_CHANGES_STATE 0x1   /* admins only (PROTOCOL.md §5.4) */
#define CMD_READER        0x2   /* answered by `read` off the writer (issue 14) */

/*
 * What a reader command may use: never the writer's mutable state. On the
 * control thread its pending state is the overlay of the writer's notes
 * (hearth/overlay.h), its status, counters, rule errors and silences what the
 * writer posted (hearth/board.h) and its rules a snapshot of its own; on the writer (control_answer, for the
 * cluster's control and the fuzzer) the same reads go to the writer's own.
 */
struct reader {
	struct store *st;
	struct overlay *ov;             /* control thread: the overlay */
	struct alert_states *as;        /* alert states: the writer's, or the control thread's copy */
	struct board *board;            /* control thread: the posted status */
	struct server *srv;             /* writer: pending state and status, read directly */
	const struct config *cfg;
	const struct ruleset *rs;
	int64_t started_mono_ms;
	struct json_tokener *tok;       /* attribute sums of window scans */
	int read_alerts;                /* set when the command read alert states (the control thread follows them) */
};

typedef int (*command_read_fn)(struct reader *rd, struct json_object *req, struct json_object *ans,
			       struct herr *err);

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
	command_read_fn read;           /* CMD_READER: instead of fn */
};

const struct command *command_find(const char *name);
/* The table, ended by an entry with name NULL. */
extern const struct command command_table[];

#endif
