/*
 * Reading timelines: one customer as the writer knows them (pending state
 * first), one customer's events in time order (the stored time index merged
 * with what is pending), and the stored customers in id order.
 */
#include <errno.h>
#include <json-c/json.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/json.h"
#include "hearth/limits.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "pending.h"
#include "tindex.h"

struct cust *timeline_customer(struct timeline *tl, MDB_txn *txn, const char *id, size_t len,
			       int *owned, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, id, len);
	struct cust *c;
	int found;

	if (d) {
		*owned = 0;
		return d->c;
	}
	*owned = 1;
	c = timeline_load(tl->st, txn, id, len, &found, err);
	if (c && !found) {
		cust_free(c);
		herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
		return NULL;
	}
	return c;
}

struct tpos {
	int64_t ts;
	uint64_t seq;
};

static int tpos_cmp(struct tpos a, struct tpos b)
{
	if (a.ts != b.ts)
		return a.ts < b.ts ? -1 : 1;
	return (a.seq > b.seq) - (a.seq < b.seq);
}

static int type_wanted(const struct timeline_query *q, const char *type, size_t len)
{
	if (!q->types)
		return 1;
	for (size_t i = 0; i < q->ntypes; i++)
		if (strlen(q->types[i]) == len && memcmp(q->types[i], type, len) == 0)
			return 1;
	return 0;
}

int timeline_log_event(struct store *st, MDB_txn *txn, uint64_t seq, timeline_event_fn fn, void *ctx,
		       struct herr *err)
{
	uint8_t key[8];
	MDB_val val;
	struct event ev;
	int rc;

	be64_put(key, seq);
	rc = store_get(txn, st, DB_LOG, key, 8, &val);
	if (rc)
		return store_error(err, rc, "reading the log");
	if (event_decode(val.mv_data, val.mv_size, &ev) < 0)
		return herr_set(err, HERR_STORE_ERROR, "store, damaged log record %llu",
				(unsigned long long)seq);
	ev.seq = seq;
	return fn(&ev, ctx);
}

int timeline_query(struct timeline *tl, MDB_txn *txn, const struct timeline_query *q,
		   timeline_event_fn fn, void *ctx, int *more, struct herr *err)
{
	struct dirty *d = strmap_get(&tl->dirty, q->customer, q->customer_len);

	if (d && d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), pending_ev_cmp);
	return timeline_merge(tl->st, txn, q, d ? d->ev : NULL, d ? d->n : 0, fn, ctx, more, err);
}

/*
 * The stored time index and the pending entries pev (sorted), walked together.
 * An entry in both (a flush committed between the reader's note and its
 * transaction) is taken once, from the store.
 */
int timeline_merge(struct store *st, MDB_txn *txn, const struct timeline_query *q,
		   const struct pending_ev *pev, size_t pn, timeline_event_fn fn, void *ctx, int *more,
		   struct herr *err)
{
	struct tindex_iter *it = malloc(sizeof(*it));
	struct tpos lo = { q->since, 0 }, hi = { q->until, UINT64_MAX };
	size_t pi = 0, emitted = 0;
	int ret = -1;

	*more = 0;
	if (!it)
		return herr_set(err, HERR_NOMEM, "out of memory");
	if (q->has_after) {
		struct tpos after = { q->after_ts, q->after_seq };
		if (!q->desc && tpos_cmp(after, lo) >= 0) {
			lo = after;
			if (++lo.seq == 0)
				lo.ts++;
		} else if (q->desc && tpos_cmp(after, hi) <= 0) {
			hi = after;
			if (hi.seq-- == 0)
				hi.ts--;
		}
	}
	if (tindex_iter_open(it, st, txn, q->customer, q->customer_len, q->desc, err) < 0) {
		free(it);
		return -1;
	}
	tindex_iter_seek(it, q->desc ? hi.ts : lo.ts, q->desc ? hi.seq : lo.seq);
	/* pending events walk the same direction; pi counts from the walk's start */
	for (;;) {
		const struct pending_ev *p = NULL;
		const struct tindex_entry *s = tindex_iter_entry(it);
		struct tpos ppos = { 0, 0 }, spos = { s ? s->ts : 0, s ? s->seq : 0 };
		while (pi < pn) {
			p = &pev[q->desc ? pn - 1 - pi : pi];
			ppos = (struct tpos){ p->ts, p->seq };
			if ((q->desc ? tpos_cmp(ppos, hi) > 0 : tpos_cmp(ppos, lo) < 0)) {
				pi++;
				p = NULL;
				continue;
			}
			break;
		}
		if (p && (q->desc ? tpos_cmp(ppos, lo) < 0 : tpos_cmp(ppos, hi) > 0))
			p = NULL;
		if (s && (q->desc ? tpos_cmp(spos, lo) < 0 : tpos_cmp(spos, hi) > 0))
			s = NULL;
		if (!p && !s)
			break;
		if (p && s && tpos_cmp(spos, ppos) == 0) {
			pi++;
			continue;
		}
		int take_stored = s && (!p || (q->desc ? tpos_cmp(spos, ppos) > 0 : tpos_cmp(spos, ppos) < 0));
		if (take_stored ? type_wanted(q, s->type, s->type_len) : type_wanted(q, p->type, p->type_len)) {
			if (emitted == q->limit) {
				*more = 1;
				break;
			}
			if (timeline_log_event(st, txn, take_stored ? s->seq : p->seq, fn, ctx, err) < 0)
				goto out;
			emitted++;
		}
		if (take_stored)
			tindex_iter_step(it);
		else
			pi++;
	}
	if (it->damaged) {
		herr_set(err, HERR_STORE_ERROR, "store, a damaged time index for customer '%.*s'",
			 (int)q->customer_len, q->customer);
		goto out;
	}
	ret = 0;
out:
	tindex_iter_close(it);
	free(it);
	return ret;
}

struct case_ctx {
	struct cust *c;
	const struct config *cfg;
};

static int case_event(const struct event *ev, void *vctx)
{
	struct case_ctx *ctx = vctx;
	return cust_apply_case_event(ctx->c, ev, ctx->cfg);
}

int timeline_replay_cases(struct store *st, MDB_txn *txn, const struct config *cfg, struct cust *c,
			  const struct pending_ev *pev, size_t pn, struct herr *err)
{
	const char *types[2 * 16];
	struct timeline_query q = { .customer = c->id, .customer_len = c->id_len,
				    .since = INT64_MIN, .until = INT64_MAX, .limit = SIZE_MAX,
				    .types = types };
	struct case_ctx ctx = { c, cfg };
	int more;

	for (size_t i = 0; i < cfg->ncases && q.ntypes + 2 <= sizeof(types) / sizeof(types[0]); i++) {
		types[q.ntypes++] = cfg->cases[i].open;
		types[q.ntypes++] = cfg->cases[i].close;
	}
	cust_cases_reset(c);
	return timeline_merge(st, txn, &q, pev, pn, case_event, &ctx, &more, err);
}
