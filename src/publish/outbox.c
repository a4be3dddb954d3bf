/*
 * The PUB socket, the durable outbox and the heartbeat. Publishing never
 * blocks: a subscriber that falls behind its high-water mark loses messages on
 * the wire, sees the gap in seq (or in the heartbeat's seq) and replays.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/body_codec.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/curve.h"
#include "hearth/ingest_clock.h"
#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/notify.h"
#include "hearth/outbox.h"
#include "hearth/units.h"

struct outbox {
	const struct config *cfg;       /* the running one (outbox_set_config) */
	struct store *st;
	const struct ingest_clock *clock;
	outbox_committed_fn committed;  /* cluster mode: the alerts stream drains the outbox */
	void *committed_ctx;
	void *pub;
	uint64_t last_seq;
	struct outbox_stats stats;
	struct body_codec *codec;       /* the writer's: bodies compressed as they are stored */
	struct wbuf rec;
};

static void heartbeat(struct loop *loop, void *ctx)
{
	struct outbox *ob = ctx;
	char body[96], ts[TIME_BUF];
	int n = snprintf(body, sizeof(body), "{\"seq\":%llu,\"ts\":\"%s\"}",
			 (unsigned long long)ob->last_seq, time_format(ingest_clock_now(ob->clock), ts, sizeof(ts)));

	outbox_publish(ob, "hb", body, (size_t)n);
	ob->stats.heartbeats++;
	loop_timer_add(loop, ob->cfg->heartbeat_ms, heartbeat, ob);
}

struct outbox *outbox_open(const struct config *cfg, struct store *st, struct loop *loop, void *zctx,
			   const struct ingest_clock *clock, struct herr *err)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	MDB_txn *txn;
	int linger = 1000, hwm = 100000;

	if (!ob) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	ob->cfg = cfg;
	ob->st = st;
	ob->clock = clock;
	if (!(ob->codec = body_codec_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	if (store_read_begin(st, &txn, err) < 0)
		goto fail;
	ob->last_seq = store_meta_u64(txn, st, "alert_seq");
	store_read_end(txn);
	ob->pub = zmq_socket(zctx, ZMQ_PUB);
	if (!ob->pub || zmq_setsockopt(ob->pub, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(ob->pub, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0) {
		herr_set(err, HERR_IO, "publish, cannot create the PUB socket (%s)", zmq_strerror(errno));
		goto fail;
	}
	if (curve_server_setup(ob->pub, cfg, err) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->npublish_listen; i++) {
		int fd = i == 0 ? notify_listen_fd("publish") : -1;
		if (fd >= 0 && zmq_setsockopt(ob->pub, ZMQ_USE_FD, &fd, sizeof(fd)) < 0)
			log_warning("publish, cannot adopt the passed descriptor (%s)", zmq_strerror(errno));
		if (zmq_bind(ob->pub, cfg->publish_listen[i]) < 0) {
			herr_set(err, HERR_IO, "publish, cannot bind '%s' (%s)", cfg->publish_listen[i],
				 zmq_strerror(errno));
			goto fail;
		}
	}
	if (loop_timer_add(loop, cfg->heartbeat_ms, heartbeat, ob) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	return ob;
fail:
	outbox_close(ob);
	return NULL;
}

void outbox_set_config(struct outbox *ob, const struct config *cfg)
{
	ob->cfg = cfg;
}

void outbox_on_committed(struct outbox *ob, outbox_committed_fn fn, void *ctx)
{
	ob->committed = fn;
	ob->committed_ctx = ctx;
}

void outbox_close(struct outbox *ob)
{
	if (!ob)
		return;
	if (ob->pub)
		zmq_close(ob->pub);
	body_codec_free(ob->codec);
	wbuf_free(&ob->rec);
	free(ob);
}

uint64_t outbox_last_seq(const struct outbox *ob)
{
	return ob->last_seq;
}

void outbox_put(struct outbox *ob, struct wtxn *w, uint64_t seq, int64_t ts, const char *body,
		size_t len)
{
	wbuf_reset(&ob->rec);
	wbuf_i64(&ob->rec, ts);
	if (body_codec_pack(ob->codec, body, len, &ob->rec) < 0 || ob->rec.failed)
		wtxn_fail(w, ENOMEM, "outbox");
	else
		wtxn_append_seq(w, DB_OUTBOX, seq, ob->rec.data, ob->rec.len);
}

void outbox_put_packed(struct outbox *ob, struct wtxn *w, uint64_t seq, int64_t ts, const void *packed,
		       size_t len)
{
	wbuf_reset(&ob->rec);
	wbuf_i64(&ob->rec, ts);
	wbuf_put(&ob->rec, packed, len);
	if (ob->rec.failed)
		wtxn_fail(w, ENOMEM, "outbox");
	else
		wtxn_append_seq(w, DB_OUTBOX, seq, ob->rec.data, ob->rec.len);
}

void outbox_put_last_seq(struct wtxn *w, uint64_t seq)
{
	wtxn_meta_u64(w, "alert_seq", seq);
}

void outbox_committed(struct outbox *ob, uint64_t last_seq)
{
	ob->last_seq = last_seq;
	if (ob->committed)
		ob->committed(ob->committed_ctx, last_seq);
}

void outbox_publish(struct outbox *ob, const char *topic, const char *body, size_t len)
{
	if (zmq_send(ob->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(ob->pub, body, len, ZMQ_DONTWAIT) < 0) {
		log_debug("publish, message dropped (%s)", zmq_strerror(errno));
		return;
	}
	if (strcmp(topic, "hb") != 0)
		ob->stats.published++;
}

struct replay {
	struct json_tokener *tok;
	struct body_codec *codec;
	struct json_object *list;
	size_t limit, n;
};

static int replay_one(uint64_t seq, const void *val, size_t vlen, void *vctx)
{
	struct replay *ctx = vctx;
	struct json_object *body;
	const char *text;
	size_t len;

	if (ctx->n++ >= ctx->limit)
		return 1;
	if (vlen < 8 || !(text = body_codec_unpack(ctx->codec, seq, (const char *)val + 8, vlen - 8, &len)))
		return 0;
	if ((body = json_parse_whole(ctx->tok, text, len, NULL)))
		json_object_array_add(ctx->list, body);
	return 0;
}

/* The outbox and its last seq as of txn: each commit writes both (outbox_put, outbox_put_last_seq). */
int outbox_replay_in(struct store *st, MDB_txn *txn, uint64_t after, size_t limit,
		     struct json_object *list, uint64_t *last_seq, struct herr *err)
{
	struct replay ctx = { .list = list, .limit = limit };
	uint64_t first;
	int rc, ret = -1;

	*last_seq = store_meta_u64(txn, st, "alert_seq");
	if (after >= *last_seq)
		return 0;
	if (!(ctx.tok = json_tokener_new()) || !(ctx.codec = body_codec_new())) {
		json_tokener_free(ctx.tok);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	/* gone when retention pruned past `after`; `forget` may leave holes later on */
	if ((rc = store_seq_first(txn, st, DB_OUTBOX, &first, NULL, NULL, err)) < 0)
		goto out;
	if (rc == 1 || first > after + 1) {
		herr_set(err, HERR_GONE, "notifications after seq %llu are no longer kept "
			 "(publish.retain); resume from the current seq %llu",
			 (unsigned long long)after, (unsigned long long)*last_seq);
		goto out;
	}
	if (store_seq_walk(txn, st, DB_OUTBOX, after, replay_one, &ctx, err) < 0)
		goto out;
	ret = 0;
out:
	json_tokener_free(ctx.tok);
	body_codec_free(ctx.codec);
	return ret;
}

struct prune_ctx {
	int64_t before;
	size_t max, deleted;
};

/* Entries go oldest first until one is young enough to keep. */
static int older(const void *val, size_t vlen, int64_t before)
{
	struct rbuf r;

	rbuf_init(&r, val, vlen);
	return rbuf_i64(&r) < before;
}

static int prune_one(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct prune_ctx *ctx = vctx;

	(void)key;
	(void)klen;
	if (ctx->deleted >= ctx->max || !older(val, vlen, ctx->before))
		return 1;
	ctx->deleted++;
	return 0;
}

static int prune_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct prune_ctx *ctx = vctx;

	(void)err;
	ctx->deleted = 0;
	wtxn_walk_del(w, DB_OUTBOX, prune_one, ctx);
	return w->rc ? -1 : 0;
}

int outbox_prune(struct outbox *ob, int64_t now, size_t max, struct herr *err)
{
	struct prune_ctx ctx = { .before = now - ob->cfg->retain_ms, .max = max };
	MDB_txn *txn;
	const void *val;
	size_t vlen;
	uint64_t seq;
	struct herr e2;
	int due;

	/* a read first: most ticks have nothing to prune and need no write */
	if (store_read_begin(ob->st, &txn, err) < 0)
		return -1;
	due = store_seq_first(txn, ob->st, DB_OUTBOX, &seq, &val, &vlen, &e2) == 0 && vlen >= 8 &&
	      older(val, vlen, ctx.before);
	store_read_end(txn);
	if (!due)
		return 0;
	if (store_write(ob->st, prune_fn, &ctx, err) < 0)
		return -1;
	ob->stats.pruned += ctx.deleted;
	return 0;
}

void outbox_get_stats(const struct outbox *ob, struct outbox_stats *out)
{
	*out = ob->stats;
}
