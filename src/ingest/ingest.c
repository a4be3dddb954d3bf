/*
 * The ROUTER socket of PROTOCOL.md §3. A readable socket is drained of up to a
 * group's worth of requests; all of them are parsed, committed together in one
 * durable transaction, and only then answered, each with its own envelope.
 * Producers may use REQ (envelope: identity, empty) or DEALER (identity, and
 * whatever frames they put before the payload): the last frame is the payload,
 * everything before it goes back unchanged.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/batch.h"
#include "hearth/config.h"
#include "hearth/curve.h"
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/ingest.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/notify.h"
#include "hearth/server.h"
#include "hearth/timeline.h"

#define GROUP_MAX_REQUESTS 64
#define GROUP_MAX_EVENTS   4000    /* bounds a loop turn: control waits for at most one group */
#define ENVELOPE_MAX       8

struct request {
	zmq_msg_t envelope[ENVELOPE_MAX];
	size_t nenvelope;
	struct batch *batch;
};

struct ingest {
	struct server *srv;
	void *sock;
	struct json_tokener *tok;
	struct request group[GROUP_MAX_REQUESTS];
	struct batch *batches[GROUP_MAX_REQUESTS];
	int paused;
	struct ingest_stats stats;
};

/* Receives one whole message; 0 ok, 1 nothing waiting, -1 error. */
static int receive_request(struct ingest *in, struct request *req)
{
	zmq_msg_t frame, payload;
	int more, first = 1, have_payload = 0;

	req->nenvelope = 0;
	req->batch = NULL;
	do {
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, in->sock, first ? ZMQ_DONTWAIT : 0) < 0) {
			int e = errno;
			zmq_msg_close(&frame);
			if (first && e == EAGAIN)
				return 1;
			goto fail;
		}
		first = 0;
		more = zmq_msg_more(&frame);
		/* the previous candidate payload was an envelope frame after all */
		if (have_payload) {
			if (req->nenvelope < ENVELOPE_MAX)
				req->envelope[req->nenvelope++] = payload;
			else
				zmq_msg_close(&payload);
		}
		payload = frame;
		have_payload = 1;
	} while (more);
	req->batch = batch_new();
	if (!req->batch)
		goto fail;
	batch_parse_frame(req->batch, in->tok, zmq_msg_data(&payload), zmq_msg_size(&payload),
			  server_now(in->srv), in->srv->cfg->max_future_ms);
	zmq_msg_close(&payload);
	return 0;
fail:
	if (have_payload)
		zmq_msg_close(&payload);
	for (size_t i = 0; i < req->nenvelope; i++)
		zmq_msg_close(&req->envelope[i]);
	req->nenvelope = 0;
	return -1;
}

static void send_reply(struct ingest *in, struct request *req)
{
	struct json_object *reply = batch_reply(req->batch);
	const char *text = reply ? json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN) : NULL;
	int ok = text != NULL;

	for (size_t i = 0; i < req->nenvelope; i++) {
		if (ok && zmq_msg_send(&req->envelope[i], in->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
			continue; /* sent: the message is now empty */
		ok = 0;
		zmq_msg_close(&req->envelope[i]);
	}
	/* A peer that went away or stopped reading loses its reply, never the loop. */
	if (ok && zmq_send(in->sock, text, strlen(text), ZMQ_DONTWAIT) < 0)
		log_debug("ingest, reply dropped (%s)", zmq_strerror(errno));
	json_object_put(reply);
}

static void on_readable(struct loop *loop, short revents, void *ctx)
{
	struct ingest *in = ctx;
	size_t n = 0, events = 0, nbatches = 0;

	(void)loop;
	if (!(revents & ZMQ_POLLIN))
		return;
	while (n < GROUP_MAX_REQUESTS && events < GROUP_MAX_EVENTS) {
		int rc = receive_request(in, &in->group[n]);
		if (rc == 1)
			break;
		if (rc < 0) {
			log_warning("ingest, receiving a request failed (%s)", zmq_strerror(errno));
			break;
		}
		struct batch *b = in->group[n].batch;
		events += b->nevents;
		in->stats.events_rejected += b->nrejects;
		if (b->fail.code == HERR_TOO_LARGE)
			in->stats.too_large++;
		if (b->nevents && b->fail.code == HERR_OK)
			in->batches[nbatches++] = b;
		n++;
	}
	if (n == 0)
		return;
	in->stats.requests += n;
	in->stats.groups++;
	if (nbatches > 0)
		group_commit(in->srv, in->batches, nbatches);
	for (size_t i = 0; i < n; i++) {
		const struct batch *b = in->group[i].batch;
		/* after the group's commit: the load's last events are stored and deferred */
		if (b->load_end && b->fail.code == HERR_OK)
			engine_load_end(in->srv->engine);
		send_reply(in, &in->group[i]);
		batch_free(in->group[i].batch);
	}
}

void ingest_pause(struct ingest *in, int paused)
{
	if (!in || paused == in->paused)
		return;
	in->paused = paused;
	in->stats.pauses += (unsigned long long)paused;
	loop_set_events(in->srv->loop, in->sock, -1, paused ? 0 : ZMQ_POLLIN);
}

struct ingest *ingest_open(struct server *srv, struct herr *err)
{
	struct ingest *in = calloc(1, sizeof(*in));
	const struct config *cfg = srv->cfg;
	int64_t maxmsg = HEARTH_BATCH_BYTES;
	int linger = 2000, hwm = 10000;

	if (!in || !(in->tok = batch_tokener_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	in->srv = srv;
	in->sock = zmq_socket(srv->zctx, ZMQ_ROUTER);
	if (!in->sock ||
	    zmq_setsockopt(in->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0 ||
	    zmq_setsockopt(in->sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(in->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(in->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0) {
		herr_set(err, HERR_IO, "ingest, cannot create the ROUTER socket (%s)",
			 zmq_strerror(errno));
		goto fail;
	}
	if (curve_server_setup(in->sock, cfg, err) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->ningest_listen; i++) {
		/* socket activation: systemd's descriptor serves the first endpoint */
		int fd = i == 0 ? notify_listen_fd("ingest") : -1;
		if (fd >= 0 && zmq_setsockopt(in->sock, ZMQ_USE_FD, &fd, sizeof(fd)) < 0)
			log_warning("ingest, cannot adopt the passed descriptor (%s)", zmq_strerror(errno));
		if (zmq_bind(in->sock, cfg->ingest_listen[i]) < 0) {
			herr_set(err, HERR_IO, "ingest, cannot bind '%s' (%s)", cfg->ingest_listen[i],
				 zmq_strerror(errno));
			goto fail;
		}
	}
	if (loop_watch(srv->loop, in->sock, -1, ZMQ_POLLIN, on_readable, in) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	return in;
fail:
	ingest_close(in);
	return NULL;
}

void ingest_close(struct ingest *in)
{
	if (!in)
		return;
	if (in->sock) {
		loop_unwatch(in->srv->loop, in->sock, -1);
		zmq_close(in->sock);
	}
	json_tokener_free(in->tok);
	free(in);
}

void ingest_get_stats(const struct ingest *in, struct ingest_stats *out)
{
	*out = in->stats;
}
