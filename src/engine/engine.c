/*
 * The engine (include/hearth/engine.h): rule evaluation and alert publishing,
 * owned by the writer thread. This file opens and closes it; the work is by
 * concern beside it:
 *   env.c          what an evaluation reads (window scans, stored alert states)
 *   step.c         one customer's rules stepped, their changes and next deadline
 *   commit.c       changes written with their notifications, published when durable
 *   ingest_group.c the customers of an ingest group commit
 *   tick.c         due customers, every evaluation.interval
 *   reeval.c       every customer, after a reload (reeval_worker.c: its workers,
 *                  which large ticks and ingest groups lend customers to as well)
 *   reload.c       a new rule set taking over
 *   defer.c, load_end.c  history loads, evaluated at their end
 *   silences.c, steering.c  the operator's side: silences, acks, listings, forget
 * Work is bounded per loop turn: each kind of work goes in slices, one per
 * zero-delay timer, so sockets keep being served.
 */
#include <json-c/json.h>
#include <stdlib.h>

#include "engine_impl.h"
#include "hearth/alert.h"
#include "hearth/engine.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"
#include "reeval_worker.h"

/* Evaluates for others (window scans of engine_env) and never writes: no rules, outbox or timers. */
struct engine *engine_open_reader(struct timeline *tl, struct herr *err)
{
	struct engine *eng = calloc(1, sizeof(*eng));

	if (!eng || !(eng->tok = json_tokener_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		engine_close(eng);
		return NULL;
	}
	eng->tl = tl;
	eng->stats.last_tick = TIME_NONE;
	return eng;
}

struct engine *engine_open(const struct config *cfg, struct store *st, struct timeline *tl,
			   struct outbox *ob, struct loop *loop, const struct ingest_clock *clock,
			   struct ruleset *rs, struct herr *err)
{
	struct engine *eng = calloc(1, sizeof(*eng));

	if (!eng) {
		herr_set(err, HERR_NOMEM, "out of memory");
		ruleset_free(rs);
		return NULL;
	}
	eng->cfg = cfg;
	eng->st = st;
	eng->tl = tl;
	eng->ob = ob;
	eng->loop = loop;
	eng->clock = clock;
	eng->rs = rs;
	eng->memo_gen = 1;
	eng->stats.last_tick = TIME_NONE;
	eng->errors_gen = eng->silences_gen = 1;        /* the board's first post differs (0) */
	eng->due = calloc(DUE_MAX, sizeof(*eng->due));
	eng->due_refs = calloc(DUE_MAX, sizeof(*eng->due_refs));
	eng->tok = json_tokener_new();
	if (!eng->due || !eng->due_refs || !eng->tok || engine_size_rules(eng) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	if (engine_load_silences(eng, err) < 0 || engine_count_alerts(eng, err) < 0 ||
	    engine_load_open(eng, err) < 0)
		goto fail;
	engine_load_resume(eng);
	engine_reeval_open(eng);
	engine_tick_start(eng);
	engine_drop_removed_rules(eng, NULL);
	engine_record_rules(eng);
	engine_check_cases(eng);
	/* the rules may have changed while we were stopped, and a crash may have left work */
	engine_reevaluate_all(eng);
	return eng;
fail:
	engine_close(eng);
	return NULL;
}

void engine_close(struct engine *eng)
{
	if (!eng)
		return;
	engine_reeval_close(eng);
	for (size_t i = 0; eng->alerts && eng->rs && i < eng->rs->n; i++)
		alert_clear(&eng->alerts[i]);
	free(eng->alerts);
	free(eng->changes);
	free(eng->lent_by);
	free(eng->lent_res);
	wbuf_free(&eng->bodies);
	free(eng->silences);
	free(eng->due);
	free(eng->due_refs);
	if (eng->tok)
		json_tokener_free(eng->tok);
	engine_load_close(eng);
	ruleset_free(eng->rs);
	free(eng);
}

const struct ruleset *engine_rules(const struct engine *eng)
{
	return eng->rs;
}

uint64_t engine_errors_gen(const struct engine *eng)
{
	return eng->errors_gen;
}

uint64_t engine_seq(const struct engine *eng)
{
	return outbox_last_seq(eng->ob);
}

void engine_get_stats(const struct engine *eng, struct engine_stats *out)
{
	*out = eng->stats;
	out->reevaluating = eng->reeval;
	out->reeval_workers = eng->pool ? reeval_pool_size(eng->pool) : 0;
	out->deferred = eng->deferred.count;
	out->load_ending = eng->undeferring;
}
