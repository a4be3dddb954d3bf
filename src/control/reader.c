/*
 * Reads for reader commands (hearth/commands.h, struct reader): the same
 * calls whether the reader is the control thread (overlay, posted status,
 * shared transactions) or the writer itself (control_answer).
 */
#include <json-c/json.h>
#include <stdio.h>

#include "commands_impl.h"
#include "hearth/alert_states.h"
#include "hearth/board.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/metrics.h"
#include "hearth/overlay.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/silence.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

void reader_status(struct reader *rd, struct board_status *out)
{
	if (rd->srv)
		control_status_fill(rd->srv, out);
	else
		board_get_status(rd->board, out);
}

int64_t reader_now(struct reader *rd)
{
	struct board_status s;

	if (rd->srv)
		return server_now(rd->srv);
	board_get_status(rd->board, &s);
	return time_now_ms() + s.clock_offset_ms;
}

int reader_begin_store(struct reader *rd, MDB_txn **txn, struct herr *err)
{
	return rd->srv ? store_read_begin(rd->st, txn, err) : store_shared_begin(rd->st, txn, err);
}

int reader_begin(struct reader *rd, MDB_txn **txn, struct herr *err)
{
	if (reader_begin_store(rd, txn, err) < 0)
		return -1;
	if (rd->srv)
		return 0;
	rd->read_alerts = 1;
	/* the writer's alert changes since the last read, as of this transaction */
	if (alert_states_sync(rd->as, rd->st, *txn, err) < 0) {
		store_shared_end(rd->st, *txn);
		*txn = NULL;
		return -1;
	}
	return 0;
}

/*
 * Only one customer's alert changes: after an ingest group they can be
 * thousands, all of them taken in ~1 ms that a query of one customer need
 * not wait for (the control thread catches up between requests).
 */
int reader_begin_customer(struct reader *rd, MDB_txn **txn, const char *id, size_t len, struct herr *err)
{
	if (reader_begin_store(rd, txn, err) < 0)
		return -1;
	if (rd->srv)
		return 0;
	rd->read_alerts = 1;
	if (alert_states_sync_customer(rd->as, rd->st, *txn, id, len, err) < 0) {
		store_shared_end(rd->st, *txn);
		*txn = NULL;
		return -1;
	}
	return 0;
}

void reader_end(struct reader *rd, MDB_txn *txn)
{
	if (!txn)
		return;
	if (rd->srv)
		store_read_end(txn);
	else
		store_shared_end(rd->st, txn);
}

struct cust *reader_customer(struct reader *rd, MDB_txn *txn, const char *id, size_t len, int *owned,
			     struct herr *err)
{
	if (rd->srv)
		return timeline_customer(rd->srv->tl, txn, id, len, owned, err);
	*owned = 1;
	return overlay_customer(rd->ov, rd->st, txn, rd->cfg, id, len, err);
}

int reader_query(struct reader *rd, MDB_txn *txn, const struct timeline_query *q,
		 timeline_event_fn fn, void *ctx, int *more, struct herr *err)
{
	if (rd->srv)
		return timeline_query(rd->srv->tl, txn, q, fn, ctx, more, err);
	return overlay_query(rd->ov, rd->st, txn, q, fn, ctx, more, err);
}

static int query_fn(void *qctx, MDB_txn *txn, const struct timeline_query *q,
		    int (*fn)(const struct event *ev, void *ctx), void *ctx, int *more, struct herr *err)
{
	return reader_query(qctx, txn, q, fn, ctx, more, err);
}

/*
 * The writer's listing walks the stored customers after a flush of what is
 * pending (timeline_customers); the control thread's merges the overlay in.
 */
int reader_customers(struct reader *rd, MDB_txn *txn, const char *after, size_t after_len,
		     size_t limit, int (*fn)(const struct cust *c, void *ctx), void *ctx, int *more,
		     struct herr *err)
{
	if (rd->srv)
		return timeline_customers(rd->srv->tl, after, after_len, limit, fn, ctx, more, err);
	return overlay_customers(rd->ov, rd->st, txn, rd->cfg, after, after_len, limit, fn, ctx, more, err);
}

int reader_settle(struct reader *rd, struct herr *err)
{
	return rd->srv ? timeline_flush(rd->srv->tl, 1, err) : 0;
}

/* Window scans go through the reader's view, not the writer's timeline. */
void reader_env(struct reader *rd, MDB_txn *txn, struct engine_scan *scan, const struct cust *c,
		int64_t now, struct eval_env *env)
{
	*scan = (struct engine_scan){ .query = query_fn, .qctx = rd, .txn = txn, .tok = rd->tok };
	engine_scan_env(scan, c, now, env);
}

struct json_object *reader_score(struct reader *rd, MDB_txn *txn, const struct cust *c)
{
	struct engine_scan scan;
	struct eval_env env;
	struct value v;

	if (!rd->rs || !rd->rs->priority)
		return NULL;
	reader_env(rd, txn, &scan, c, reader_now(rd), &env);
	if (expr_eval(rd->rs->priority, &env, &v, NULL) < 0)
		return NULL;
	return value_to_json(&v);
}

/* On the writer rd->rs is the writer's own rules, whose last_error is live. */
int reader_rule_error(struct reader *rd, const struct rule *r, char *out, size_t size)
{
	if (!rd->srv)
		return board_get_rule_error(rd->board, r->cfg->name, out, size);
	if (!r->last_error[0])
		return 0;
	snprintf(out, size, "%s", r->last_error);
	return 1;
}

int reader_silences(struct reader *rd, struct silence **s, size_t *n, int *owned, struct herr *err)
{
	const struct silence *kept;
	uint64_t gen;

	*owned = !rd->srv;
	if (rd->srv) {
		engine_silences(rd->srv->engine, &kept, n, &gen);
		*s = (struct silence *)kept;
		return 0;
	}
	if (board_get_silences(rd->board, s, n) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	return 0;
}

void reader_metrics(struct reader *rd, struct wbuf *out)
{
	struct metrics_writer m;
	struct board_control bc;
	struct wbuf extra;

	if (rd->srv) {
		metrics_render(rd->srv, out);
		return;
	}
	wbuf_init(&extra);
	board_get_metrics(rd->board, &m, &extra);
	board_get_control(rd->board, &bc);
	metrics_format(&m, &bc, mono_now_ms() - rd->started_mono_ms, out);
	if (extra.failed)
		out->failed = 1;
	else if (extra.len)
		wbuf_put(out, extra.data, extra.len);
	wbuf_free(&extra);
}
