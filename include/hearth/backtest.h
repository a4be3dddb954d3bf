/*
 * Backtest (PROTOCOL.md §5.22): what a rule would have done over a window of
 * the stored history. Each customer's timeline is replayed through the same
 * expression evaluator and alert lifecycle step the live engine uses, at
 * every event and at every moment time alone moves a rule, exactly when it
 * moves (the live engine sees such moments at its next tick). Silences and
 * acks are not replayed. The work runs as a control job, a few customers per
 * slice, so ingest and queries go on meanwhile.
 */
#ifndef HEARTH_BACKTEST_H
#define HEARTH_BACKTEST_H

#include <stdint.h>

#include "hearth/err.h"

struct config;
struct expr;
struct job;
struct job_deps;

#define BACKTEST_RULES 2                /* a rule and, with compare, a second one */

struct backtest_rule {
	char name[64];                  /* the rule's name, or "when" for an ad hoc one */
	struct expr *when;              /* owned */
	int64_t for_ms, repeat_ms;
};

struct backtest_params {
	struct backtest_rule rules[BACKTEST_RULES];
	int nrules;
	int64_t from, to;
	struct expr *where;             /* owned; NULL: every customer */
	int detail;                     /* list every transition with its values */
};

/*
 * Over what d reads, the rules of p compiled against cfg, the running
 * configuration (d's engine runs the rules compiled from it). Takes the
 * expressions of p (also on failure); NULL with err set.
 */
struct job *backtest_job_new(const struct job_deps *d, const struct config *cfg,
			     struct backtest_params *p, struct herr *err);

#endif
