/*
 * source.nats: the relay follows a cluster's alerts stream (PROTOCOL.md §9.5)
 * instead of one hearthd's PUB socket and `replay`.
 *
 * The stream's sequence is the deployment's one alert sequence, so it is the
 * relay's seq: each body is handed on with "seq" set to its stream sequence
 * and the shard's own in "shard" and "shard_seq". Everything else stays as
 * with ZeroMQ: targets keep one seq each in their state files, a jump is
 * filled before the live message, a catch-up reads from a target's seq.
 *
 * Live messages come from an ordered consumer, whose callback runs on a
 * libnats thread: it turns each message into the two frames a PUB would
 * send (topic, body) on an inproc PUSH socket that only it uses, and the
 * relay's loop reads them from r->sub, the PULL end, exactly as from a SUB.
 * Gaps and catch-ups read message by message by stream sequence.
 */
#include <errno.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/log.h"
#include "runtime.h"

#define NATS_WAIT_MS 5000

struct relay_nats {
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	pthread_mutex_t mu;             /* the PUSH socket: the subscription's thread, until closed */
	void *push;
	int closed;
	char *stream, *subject;         /* as started: a reload keeps the source */
	char endpoint[64];
};

/* The body as the relay sees it: seq is the stream's, the shard's kept beside it. */
static struct json_object *relay_body(natsMsg *m, uint64_t stream_seq)
{
	struct json_object *body = json_tokener_parse(natsMsg_GetData(m)), *seq;
	const char *shard = NULL;

	if (!body || !json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		return NULL;
	}
	if (json_object_object_get_ex(body, "seq", &seq))
		json_object_object_add(body, "shard_seq", json_object_get(seq));
	if (natsMsgHeader_Get(m, "Hearth-Shard", &shard) == NATS_OK && shard)
		json_object_object_add(body, "shard", json_object_new_string(shard));
	json_object_object_add(body, "seq", json_object_new_uint64(stream_seq));
	return body;
}

static void on_alert(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct relay_nats *rn = closure;
	jsMsgMetaData *meta = NULL;
	struct json_object *body = NULL, *alert;
	char topic[256];

	(void)nc;
	(void)sub;
	if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
		goto out;
	if (!(body = relay_body(m, meta->Sequence.Stream)))
		goto out;
	alert = json_at(body, "alert");
	snprintf(topic, sizeof(topic), "alert.%s.%s", json_object_get_string(json_at(alert, "severity")),
		 json_object_get_string(json_at(alert, "rule")));
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	/* an unbounded inproc queue (alerts are few): nothing is dropped while the loop is busy */
	pthread_mutex_lock(&rn->mu);
	if (!rn->closed && (zmq_send(rn->push, topic, strlen(topic), ZMQ_SNDMORE) < 0 ||
			    zmq_send(rn->push, text, strlen(text), 0) < 0))
		log_warning("source, cannot hand an alert to the loop (%s)", zmq_strerror(errno));
	pthread_mutex_unlock(&rn->mu);
out:
	json_object_put(body);
	jsMsgMetaData_Destroy(meta);
	natsMsg_Destroy(m);
}

int nats_source_open(struct relay *r, struct herr *err)
{
	const struct relay_config *cfg = r->cfg;
	struct relay_nats *rn = calloc(1, sizeof(*rn));
	natsOptions *opts = NULL;
	jsOptions jo;
	natsStatus s;
	char *urls = NULL, *save = NULL;
	const char *list[16];
	int n = 0, hwm = 0, linger = 0;

	if (!rn || !(rn->stream = strdup(cfg->nats_stream)) ||
	    asprintf(&rn->subject, "%s.alerts.>", cfg->nats_prefix) < 0 || !(urls = strdup(cfg->nats))) {
		free(rn);
		free(urls);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&rn->mu, NULL);
	r->nats = rn;
	snprintf(rn->endpoint, sizeof(rn->endpoint), "inproc://relay-nats-%p", (void *)rn);
	if (!(r->zctx = zmq_ctx_new()) || !(r->sub = zmq_socket(r->zctx, ZMQ_PULL)) ||
	    !(rn->push = zmq_socket(r->zctx, ZMQ_PUSH)) ||
	    zmq_setsockopt(r->sub, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(rn->push, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(rn->push, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(r->sub, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_bind(r->sub, rn->endpoint) < 0 || zmq_connect(rn->push, rn->endpoint) < 0) {
		free(urls);
		return herr_set(err, HERR_IO, "source, cannot set up the inproc sockets (%s)", zmq_strerror(errno));
	}
	for (char *u = strtok_r(urls, ", ", &save); u && n < 16; u = strtok_r(NULL, ", ", &save))
		list[n++] = u;
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = n ? natsOptions_SetServers(opts, list, n) : NATS_INVALID_ARG;
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, "hearth-relay");
	if (s == NATS_OK && cfg->nats_creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, cfg->nats_creds, NULL);
	else if (s == NATS_OK)
		s = natsOptions_SetUserInfo(opts, cfg->nats_user, cfg->nats_password);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK)
		s = natsConnection_Connect(&rn->nc, opts);
	natsOptions_Destroy(opts);
	free(urls);
	if (s == NATS_OK) {
		jsOptions_Init(&jo);
		jo.Wait = NATS_WAIT_MS;
		s = natsConnection_JetStream(&rn->js, rn->nc, &jo);
	}
	if (s != NATS_OK)
		return herr_set(err, HERR_IO, "source, cannot connect to NATS at %s (%s)", cfg->nats,
				natsStatus_GetText(s));
	return 0;
}

void nats_source_close(struct relay *r)
{
	struct relay_nats *rn = r->nats;

	if (!rn)
		return;
	/* no callback touches the PUSH socket after this; none runs once libnats has stopped */
	if (rn->sub)
		natsSubscription_Unsubscribe(rn->sub);
	pthread_mutex_lock(&rn->mu);
	rn->closed = 1;
	pthread_mutex_unlock(&rn->mu);
	natsSubscription_Destroy(rn->sub);
	jsCtx_Destroy(rn->js);
	natsConnection_Destroy(rn->nc);
	nats_CloseAndWait(2000);
	if (rn->push)
		zmq_close(rn->push);
	pthread_mutex_destroy(&rn->mu);
	free(rn->stream);
	free(rn->subject);
	free(rn);
	r->nats = NULL;
}

int nats_source_fill(struct relay *r, uint64_t upto, int64_t now)
{
	struct relay_nats *rn = r->nats;

	while (r->last + 1 < upto) {
		natsMsg *m = NULL;
		jsErrCode jerr = 0;
		uint64_t seq = r->last + 1;
		natsStatus s = js_GetMsg(&m, rn->js, rn->stream, seq, NULL, &jerr);
		if (s == NATS_NOT_FOUND || jerr == 10037) {
			r->last = seq;          /* deleted or aged out: nothing to hand on */
			continue;
		}
		if (s != NATS_OK) {
			log_warning("source, reading seq %llu of %s failed (%s); will retry", (unsigned long long)seq,
				    rn->stream, natsStatus_GetText(s));
			return -1;
		}
		struct json_object *body = relay_body(m, seq);
		natsMsg_Destroy(m);
		if (body)
			targets_offer(r, body, now);
		else
			r->last = seq;
		json_object_put(body);
	}
	return 0;
}

int nats_source_sync(struct relay *r, int64_t now)
{
	struct relay_nats *rn = r->nats;
	jsStreamInfo *si = NULL;
	jsSubOptions so;
	uint64_t current, start = UINT64_MAX;
	natsStatus s = js_GetStreamInfo(&si, rn->js, rn->stream, NULL, NULL);

	if (s != NATS_OK) {
		log_warning("source, cannot read stream %s (%s); will retry", rn->stream, natsStatus_GetText(s));
		return -1;
	}
	current = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	for (size_t i = 0; i < r->ntargets; i++) {
		struct target *t = r->targets[i];
		target_begin(t, current, r->cfg->state_dir);
		if (t->seen < start)
			start = t->seen;
	}
	r->last = start == UINT64_MAX || start > current ? current : start;
	if (nats_source_fill(r, current + 1, now) < 0)
		return -1;
	/* live from the next message on, in order (the library refills any gap of its own) */
	jsSubOptions_Init(&so);
	so.Stream = rn->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = current + 1;
	s = js_Subscribe(&rn->sub, rn->js, rn->subject, on_alert, rn, NULL, &so, NULL);
	if (s != NATS_OK) {
		log_warning("source, cannot follow %s (%s); will retry", rn->stream, natsStatus_GetText(s));
		rn->sub = NULL;
		return -1;
	}
	r->synced = 1;
	log_info("source, following stream %s from seq %llu", rn->stream, (unsigned long long)r->last);
	return 0;
}
