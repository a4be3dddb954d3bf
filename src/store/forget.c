/*
 * Forgetting a customer (the `forget` command): their events, indexes, alert
 * states, deadline and notifications leave the store in one transaction,
 * after a flush has written whatever of them was pending.
 */
#include <errno.h>
#include <json-c/json.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert_states.h"
#include "hearth/body_codec.h"
#include "hearth/codec.h"
#include "hearth/event.h"
#include "hearth/json.h"
#include "hearth/limits.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/strmap.h"
#include "hearth/timeline.h"
#include "pending.h"
#include "tindex.h"

struct forget_ctx {
	struct timeline *tl;
	const char *id;
	size_t len;
	uint64_t removed;
	int found;
};

/* Notifications about the customer: their bodies name them as "customer":{"id": ...}. */
static void forget_notifications(struct wtxn *w, struct forget_ctx *ctx)
{
	struct json_tokener *tok = json_tokener_new();
	struct body_codec *codec = body_codec_new();
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int rc;

	if (!tok || !codec) {
		wtxn_fail(w, ENOMEM, "forget");
		goto out;
	}
	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_OUTBOX), &cur))) {
		wtxn_fail(w, rc, "forget");
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct json_object *body, *customer, *id;
		const char *text;
		size_t len;
		if (val.mv_size <= 8 || key.mv_size != 8 ||
		    !(text = body_codec_unpack(codec, be64_get(key.mv_data), (const char *)val.mv_data + 8,
					       val.mv_size - 8, &len)))
			continue;
		body = json_parse_whole(tok, text, len, NULL);
		int match = body && json_object_object_get_ex(body, "customer", &customer) &&
			    json_object_object_get_ex(customer, "id", &id) &&
			    (size_t)json_object_get_string_len(id) == ctx->len &&
			    memcmp(json_object_get_string(id), ctx->id, ctx->len) == 0;
		json_object_put(body);
		if (match && (rc = mdb_cursor_del(cur, 0))) {
			wtxn_fail(w, rc, "forget");
			break;
		}
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	json_tokener_free(tok);
	body_codec_free(codec);
}

/* Alert states are keyed customer 0x00 rule: delete that whole prefix. */
static void forget_related(struct wtxn *w, struct forget_ctx *ctx)
{
	uint8_t prefix[TL_KEY_MAX];
	MDB_cursor *cur;
	MDB_val key = { ctx->len + 1, prefix }, val;
	int rc;

	wtxn_del(w, DB_DEFERRED, ctx->id, ctx->len);
	/* the customer's journaled states go to DB_ALERTS first, to be deleted there with the rest */
	alert_states_apply(ctx->tl->alerts, w);
	memcpy(prefix, ctx->id, ctx->len);
	prefix[ctx->len] = 0;
	if ((rc = mdb_cursor_open(w->txn, store_dbi(ctx->tl->st, DB_ALERTS), &cur))) {
		wtxn_fail(w, rc, "forget");
		return;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     rc == 0 && key.mv_size > ctx->len && memcmp(key.mv_data, prefix, ctx->len + 1) == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
		if ((rc = mdb_cursor_del(cur, 0))) {
			wtxn_fail(w, rc, "forget");
			break;
		}
	mdb_cursor_close(cur);
}

/* Takes the customer's entries out of the time index, then deletes what each points at. */
static int forget_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct forget_ctx *ctx = vctx;
	uint8_t prefix[TL_KEY_MAX];
	struct wbuf seqs;
	const void *rec;
	size_t rlen;

	ctx->removed = 0;
	wbuf_init(&seqs);
	tindex_take(w, ctx->id, ctx->len, &seqs);
	if (w->rc == ENOMEM) {
		wbuf_free(&seqs);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	for (size_t off = 0; off + 8 <= seqs.len && !w->rc; off += 8) {
		uint64_t seq;
		uint8_t seqkey[8];
		struct event ev;
		memcpy(&seq, seqs.data + off, 8);
		be64_put(seqkey, seq);
		if (wtxn_get(w, DB_LOG, seqkey, 8, &rec, &rlen) == 0 &&
		    event_decode(rec, rlen, &ev) == 0 && ev.id) {
			char id[HEARTH_ID_MAX];
			size_t id_len = ev.id_len;
			memcpy(id, ev.id, id_len); /* the page may change under the delete */
			wtxn_del(w, DB_IDS, id, id_len);
		}
		wtxn_del(w, DB_LOG, seqkey, 8);
		ctx->removed++;
	}
	wbuf_free(&seqs);
	forget_related(w, ctx);
	forget_notifications(w, ctx);
	ctx->found = wtxn_get(w, DB_CUSTOMERS, ctx->id, ctx->len, &rec, &rlen) == 0;
	if (ctx->found) {
		struct cust *c = cust_decode(ctx->id, ctx->len, rec, rlen, store_type_names(ctx->tl->st));
		if (c && c->deadline != INT64_MAX) {
			size_t dlen = timeline_deadline_key(prefix, c->deadline, ctx->id, ctx->len);
			wtxn_del(w, DB_DEADLINES, prefix, dlen);
		}
		cust_free(c);
	}
	wtxn_del(w, DB_CUSTOMERS, ctx->id, ctx->len);
	return w->rc ? -1 : 0;
}

int timeline_forget(struct timeline *tl, const char *id, size_t len, uint64_t *removed,
		    struct herr *err)
{
	struct forget_ctx ctx = { .tl = tl, .id = id, .len = len };

	if (len > HEARTH_ID_MAX)
		return herr_set(err, HERR_BAD_REQUEST, "id: longer than %d bytes", HEARTH_ID_MAX);
	write_watch_note(&tl->watch, id, len);
	if (timeline_flush(tl, 1, err) < 0)
		return -1;
	cust_free(timeline_clean_take(tl, id, len, strmap_hash(id, len)));
	if (store_write(tl->st, forget_fn, &ctx, err) < 0) {
		alert_states_discard(tl->alerts);
		return -1;
	}
	alert_states_commit(tl->alerts);
	if (tl->sink)
		timeline_publish_forget(tl, id, len);
	if (!ctx.found && ctx.removed == 0)
		return herr_set(err, HERR_NOT_FOUND, "no customer '%.*s'", (int)len, id);
	*removed = ctx.removed;
	return 0;
}

