/*
 * Work a control command does in slices between other work (a backtest reads
 * every customer's history): the loop keeps serving ingest, ticks and queries
 * meanwhile, and the command's peer gets its answer when the job is done, in
 * the order of its requests.
 */
#ifndef HEARTH_JOB_H
#define HEARTH_JOB_H

#include "hearth/err.h"

struct engine;
struct ingest_clock;
struct json_object;
struct store;
struct timeline;

#define JOB_SLICE_US 2000       /* a slice's budget before the loop's other work */

struct job {
	/* One slice: 1 when more remains, 0 done (ans filled), -1 failed (err set). */
	int (*step)(struct job *job, struct json_object *ans, struct herr *err);
	void (*free)(struct job *job);
};

/*
 * What a job over the stored customers (backtest, dry run) reads through: the
 * daemon's store, timeline, engine and clock, or for hearthd --check --against
 * a store opened read-only with a reader engine (engine_open_reader).
 */
struct job_deps {
	struct store *st;
	struct timeline *tl;
	struct engine *engine;                  /* evaluates; its rules are the running ones */
	const struct ingest_clock *clock;       /* now */
};

#endif
