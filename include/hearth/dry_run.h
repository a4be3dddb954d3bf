/* `reload.dry_run` (PROTOCOL.md §5.20), a control job; see src/engine/dry_run.c. */
#ifndef HEARTH_DRY_RUN_H
#define HEARTH_DRY_RUN_H

#include "hearth/err.h"

struct job;
struct server;

/* Loads and compiles the configuration file as a reload would; NULL with err set. */
struct job *dry_run_job_new(struct server *srv, struct herr *err);

#endif
