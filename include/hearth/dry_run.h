/* `reload.dry_run` (PROTOCOL.md §5.20), a control job; see src/engine/dry_run.c. */
#ifndef HEARTH_DRY_RUN_H
#define HEARTH_DRY_RUN_H

#include <stdint.h>

#include "hearth/err.h"

struct config;
struct job;
struct job_deps;
struct json_object;
struct ruleset;

/*
 * next_cfg and next, loaded and compiled as a reload would, against the rules
 * d's engine runs. Takes next_cfg and next (also on failure); NULL with err set.
 */
struct job *dry_run_job_new(const struct job_deps *d, struct config *next_cfg, struct ruleset *next,
			    struct herr *err);

/*
 * The same dry run to its end, outside a running daemon (hearthd --check
 * --against): d holds the store, its timeline and a reader engine
 * (engine_open_reader); the running rules are those the store records. Takes
 * next_cfg and next; at is the moment to judge (TIME_NONE: now).
 */
int dry_run_against(const struct job_deps *d, struct config *next_cfg, struct ruleset *next, int64_t at,
		    struct json_object *ans, struct herr *err);

#endif
