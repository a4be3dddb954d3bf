/*
 * A new rule set takes over (a reload, or the start): the alert table is
 * sized for it, its digests recorded in the store, alerts of removed rules
 * resolved and dropped, and every customer re-evaluated under it (reeval.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine_impl.h"
#include "hearth/alert.h"
#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/engine.h"
#include "hearth/ingest_clock.h"
#include "hearth/log.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"

/* fn over every alert state the writer knows, in one read transaction (given to fn's ctx as needed). */
static int walk_alerts(struct engine *eng, MDB_txn **txn, alert_walk_fn fn, void *ctx, struct herr *err)
{
	int rc;

	if (store_read_begin(eng->st, txn, err) < 0)
		return -1;
	rc = alert_states_walk(timeline_alert_states(eng->tl), eng->st, *txn, NULL, 0, fn, ctx,
			       err);
	store_read_end(*txn);
	*txn = NULL;
	return rc;
}

static int count_alert(const char *id, size_t idlen, const char *rule, const void *rec, size_t len,
		       void *ctx)
{
	(void)id;
	(void)idlen;
	(void)rule;
	if (len > 1)
		engine_count_state(ctx, (enum alert_state)((const uint8_t *)rec)[1], +1);
	return 0;
}

int engine_count_alerts(struct engine *eng, struct herr *err)
{
	MDB_txn *txn;
	return walk_alerts(eng, &txn, count_alert, eng, err);
}

/* One alert slot per rule, named once: evaluation only resets their state. */
int engine_size_rules(struct engine *eng)
{
	struct alert *alerts = calloc(eng->rs->n ? eng->rs->n : 1, sizeof(*alerts));

	if (!alerts)
		return -1;
	free(eng->alerts);
	eng->alerts = alerts;
	for (size_t i = 0; i < eng->rs->n; i++)
		snprintf(alerts[i].rule, sizeof(alerts[i].rule), "%s", eng->rs->rules[i].cfg->name);
	return 0;
}

static int put_rules_record(struct wtxn *w, void *ctx, struct herr *err)
{
	const struct wbuf *b = ctx;

	(void)err;
	wtxn_meta_put(w, "rules", b->data, b->len);
	return 0;
}

/* The running rules' digests in the store: what `hearthd --check --against` compares with. */
void engine_record_rules(struct engine *eng)
{
	struct rule_digests d = { 0 };
	struct wbuf b;
	struct herr err = { 0 };

	wbuf_init(&b);
	if (rule_digests_of(eng->rs, &d) < 0)
		herr_set(&err, HERR_NOMEM, "out of memory");
	else
		rule_digests_encode(&d, &b);
	if (err.code == HERR_OK && b.failed)
		herr_set(&err, HERR_NOMEM, "out of memory");
	if (err.code != HERR_OK || store_write(eng->st, put_rules_record, &b, &err) < 0)
		log_warning("rules, cannot record the running rules in the store (%s)", err.msg);
	rule_digests_free(&d);
	wbuf_free(&b);
}

/*
 * Alerts of rules that `next` no longer has: firing ones resolve (notified with
 * the old rule's severity and labels), and every record of them goes. With
 * next == NULL (at start), records of rules unknown to the running config are
 * only deleted: nothing is known to publish them with.
 */
struct drop_ctx {
	struct engine *eng;
	const struct ruleset *next;
	int64_t now;
	MDB_txn *txn;
};

static int drop_alert(const char *k, size_t idlen, const char *rule, const void *rec, size_t len,
		      void *vctx)
{
	struct drop_ctx *ctx = vctx;
	struct engine *eng = ctx->eng;
	struct herr err;
	int64_t wake;

	ssize_t old = ruleset_index(eng->rs, rule);
	if ((ctx->next && ruleset_index(ctx->next, rule) >= 0) || (!ctx->next && old >= 0))
		return 0;
	struct cust *c = timeline_hold(eng->tl, ctx->txn, k, idlen, &err);
	struct change *ch = c ? engine_push_change(eng) : NULL;
	if (!ch)
		return 0;
	ch->c = c;
	ch->drop = 1;
	snprintf(ch->a.rule, sizeof(ch->a.rule), "%s", rule);
	if (alert_decode(rec, len, &ch->a) < 0 || old < 0) {
		/* no rule config to notify with: the record just goes */
		ch->rule = 0;
		ch->before = ch->a.state;
		ch->a.state = ALERT_INACTIVE;
		return 0;
	}
	ch->rule = (size_t)old;
	ch->before = ch->a.state;
	ch->kind = alert_step(&ch->a, 0, ctx->now, 0, 0, &wake);
	ch->silenced = ch->kind != NOTIFY_NONE && engine_silenced(eng, rule, c, ctx->now);
	if (ch->kind == NOTIFY_RESOLVED)
		engine_render_resolution(eng, ctx->txn, c, (size_t)old, ctx->now, &ch->a);
	return 0;
}

void engine_drop_removed_rules(struct engine *eng, const struct ruleset *next)
{
	struct drop_ctx ctx = { eng, next, ingest_clock_now(eng->clock), NULL };
	struct herr err;

	if (walk_alerts(eng, &ctx.txn, drop_alert, &ctx, &err) < 0)
		log_error("rules, cannot read alert states to drop those of removed rules (%s)", err.msg);
	if (eng->nchanges)
		log_info("rules, %zu alert(s) of removed rules resolved or dropped", eng->nchanges);
	engine_commit_changes(eng, ctx.now, WRITES_IN_KEY_ORDER);
}

/* Was a rule of the running set left out of the next? */
static int rules_removed(const struct ruleset *now, const struct ruleset *next)
{
	for (size_t i = 0; i < now->n; i++)
		if (ruleset_index(next, now->rules[i].cfg->name) < 0)
			return 1;
	return 0;
}

void engine_set_rules(struct engine *eng, const struct config *cfg, struct ruleset *rs)
{
	engine_drop_window(eng);
	eng->cfg = cfg;
	/* while the old rules can still describe them; a walk of every alert, so only when needed */
	if (rules_removed(eng->rs, rs))
		engine_drop_removed_rules(eng, rs);
	for (size_t i = 0; i < eng->rs->n; i++)
		alert_clear(&eng->alerts[i]);
	ruleset_free(eng->rs);
	eng->rs = rs;
	eng->memo_gen++;        /* what customers' memos say was under the old rules */
	eng->errors_gen++;
	if (engine_size_rules(eng) < 0)
		log_error("rules, out of memory sizing the rule table");
	engine_record_rules(eng);
	engine_check_cases(eng);
	engine_reevaluate_all(eng);
}
