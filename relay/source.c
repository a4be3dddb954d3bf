/*
 * The relay's source: hearthd's PUB socket for live alerts, and the control
 * socket's `replay` for everything the SUB missed (late join, overflow while
 * stalled, a relay restart). A seq jump or a heartbeat ahead of r->last shows
 * a gap; replay fills it before the live message is handed on, so each target
 * sees every seq in order. This is how tools/ctl_watch.c does it too.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/ctlclient.h"
#include "hearth/curve.h"
#include "hearth/log.h"
#include "runtime.h"

#define SYNC_RETRY_MS 1000
#define CONTROL_TIMEOUT_MS 5000

int source_open(struct relay *r, struct herr *err)
{
	int hwm = 100000, linger = 0;

	if (r->cfg->nats)
		return nats_source_open(r, err);
	if (!(r->zctx = zmq_ctx_new()) || !(r->sub = zmq_socket(r->zctx, ZMQ_SUB)))
		return herr_set(err, HERR_IO, "source, cannot create a SUB socket (%s)", zmq_strerror(errno));
	if (r->cfg->curve &&
	    (zmq_setsockopt(r->sub, ZMQ_CURVE_SERVERKEY, r->cfg->curve_server, CURVE_KEY_Z85) < 0 ||
	     zmq_setsockopt(r->sub, ZMQ_CURVE_PUBLICKEY, r->cfg->curve_public, CURVE_KEY_Z85) < 0 ||
	     zmq_setsockopt(r->sub, ZMQ_CURVE_SECRETKEY, r->cfg->curve_secret, CURVE_KEY_Z85) < 0))
		return herr_set(err, HERR_IO, "source, cannot set the CURVE keys (%s)", zmq_strerror(errno));
	if (zmq_setsockopt(r->sub, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(r->sub, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, "", 0) < 0 ||
	    zmq_connect(r->sub, r->cfg->publish) < 0)
		return herr_set(err, HERR_IO, "source, cannot subscribe to '%s' (%s)", r->cfg->publish,
				zmq_strerror(errno));
	return 0;
}

void source_close(struct relay *r)
{
	nats_source_close(r);
	if (r->sub)
		zmq_close(r->sub);
	if (r->zctx)
		zmq_ctx_term(r->zctx);
	ctl_close(r->cc);
	r->sub = r->zctx = NULL;
	r->cc = NULL;
}

void *source_socket(struct relay *r)
{
	return r->sub;
}

/*
 * A control call with a deadline, so a hung hearthd cannot stall every
 * target; reconnects once when the connection went away.
 */
static struct json_object *control_call(struct relay *r, struct json_object *req, struct herr *err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		const char *line;
		size_t len;
		int rc;
		if (!r->cc && !(r->cc = ctl_connect(r->cfg->control, err)))
			return NULL;
		if (ctl_send_json(r->cc, req, err) == 0) {
			rc = ctl_recv(r->cc, &line, &len, CONTROL_TIMEOUT_MS, err);
			if (rc == 0) {
				struct json_tokener *tok = json_tokener_new();
				struct json_object *ans = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
				json_tokener_free(tok);
				if (ans)
					return ans;
				herr_set(err, HERR_BAD_JSON, "control, the answer is not JSON");
			} else if (rc == 1) {
				herr_set(err, HERR_IO, "control, no answer within %d ms", CONTROL_TIMEOUT_MS);
			}
		}
		/* the connection's state is unknown now: start a fresh one */
		ctl_close(r->cc);
		r->cc = NULL;
	}
	return NULL;
}

static int answer_ok(struct json_object *ans)
{
	struct json_object *v;
	return json_object_object_get_ex(ans, "ok", &v) && json_object_get_boolean(v);
}

/* When the outbox no longer holds r->last + 1: go on from upto - 1. */
static void skip_gone(struct relay *r, uint64_t upto, const char *why)
{
	log_warning("source, replay after seq %llu impossible (%s); continuing from seq %llu",
		    (unsigned long long)r->last, why, (unsigned long long)(upto - 1));
	r->last = upto - 1;
	for (size_t i = 0; i < r->ntargets; i++)
		target_start_at(r->targets[i], r->last);
}

int source_fill(struct relay *r, uint64_t upto, int64_t now)
{
	if (r->nats)
		return nats_source_fill(r, upto, now);
	while (r->last + 1 < upto) {
		struct json_object *req = json_object_new_object(), *ans, *list;
		struct herr err;
		json_object_object_add(req, "cmd", json_object_new_string("replay"));
		json_object_object_add(req, "after", json_object_new_int64((int64_t)r->last));
		json_object_object_add(req, "limit", json_object_new_int(RELAY_REPLAY_LIMIT));
		ans = control_call(r, req, &err);
		json_object_put(req);
		if (!ans) {
			log_warning("source, replay after seq %llu failed (%s); will retry",
				    (unsigned long long)r->last, err.msg);
			return -1;
		}
		if (!answer_ok(ans)) {
			const char *code = json_object_get_string(json_at(ans, "error.code"));
			if (code && strcmp(code, "gone") == 0) {
				skip_gone(r, upto, json_object_get_string(json_at(ans, "error.message")));
				json_object_put(ans);
				return 0;
			}
			log_warning("source, replay after seq %llu refused (%s)", (unsigned long long)r->last,
				    json_object_get_string(json_at(ans, "error.message")));
			json_object_put(ans);
			return -1;
		}
		list = json_at(ans, "notifications");
		size_t n = list ? json_object_array_length(list) : 0;
		for (size_t i = 0; i < n; i++) {
			struct json_object *body = json_object_array_get_idx(list, i);
			uint64_t seq = (uint64_t)json_object_get_int64(json_at(body, "seq"));
			if (seq >= upto)
				break;
			if (seq > r->last)
				targets_offer(r, body, now);
		}
		json_object_put(ans);
		if (n == 0) {
			/* the outbox has nothing more in range: nothing was missed */
			r->last = upto - 1;
			break;
		}
	}
	return 0;
}

int source_sync(struct relay *r, int64_t now)
{
	struct json_object *req = json_object_new_object(), *ans;
	struct herr err;
	uint64_t current, start = UINT64_MAX;

	if (now < r->next_sync) {
		json_object_put(req);
		return -1;
	}
	r->next_sync = now + SYNC_RETRY_MS;
	if (r->nats) {
		json_object_put(req);
		return nats_source_sync(r, now);
	}
	json_object_object_add(req, "cmd", json_object_new_string("status"));
	ans = control_call(r, req, &err);
	json_object_put(req);
	if (!ans || !answer_ok(ans)) {
		log_warning("source, cannot ask hearthd for its seq (%s); will retry",
			    ans ? json_object_get_string(json_at(ans, "error.message")) : err.msg);
		json_object_put(ans);
		return -1;
	}
	current = (uint64_t)json_object_get_int64(json_at(ans, "seq"));
	json_object_put(ans);
	/* a target seen for the first time starts now, not at the outbox's start */
	for (size_t i = 0; i < r->ntargets; i++) {
		struct target *t = r->targets[i];
		target_begin(t, current, r->cfg->state_dir);
		if (t->seen < start)
			start = t->seen;
	}
	r->last = start == UINT64_MAX ? current : start;
	if (r->last > current) {
		log_warning("source, the targets are ahead of hearthd (seq %llu > %llu): was the store reset?",
			    (unsigned long long)r->last, (unsigned long long)current);
		r->last = current;
	}
	if (source_fill(r, current + 1, now) < 0)
		return -1;
	r->synced = 1;
	log_info("source, following %s from seq %llu", r->cfg->publish, (unsigned long long)r->last);
	return 0;
}

static void on_message(struct relay *r, const char *topic, const char *data, size_t len, int64_t now)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *body = tok ? json_tokener_parse_ex(tok, data, (int)len) : NULL;
	uint64_t seq;

	json_tokener_free(tok);
	if (!body)
		return;
	seq = (uint64_t)json_object_get_int64(json_at(body, "seq"));
	if (strcmp(topic, "hb") == 0) {
		/* the heartbeat's seq is the last published */
		if (seq > r->last) {
			log_info("source, heartbeat at seq %llu is ahead of seq %llu; replaying the gap",
				 (unsigned long long)seq, (unsigned long long)r->last);
			source_fill(r, seq + 1, now);
		}
	} else if (seq > r->last) {
		if (seq > r->last + 1)
			log_info("source, seq jumped from %llu to %llu; replaying the gap",
				 (unsigned long long)r->last, (unsigned long long)seq);
		if (source_fill(r, seq, now) == 0 && r->last + 1 == seq)
			targets_offer(r, body, now);
	}
	json_object_put(body);
}

int source_drain(struct relay *r, int64_t now)
{
	for (int budget = 0; budget < 10000; budget++) {
		char topic[256];
		int tlen = zmq_recv(r->sub, topic, sizeof(topic) - 1, ZMQ_DONTWAIT);
		if (tlen < 0)
			return 0;
		topic[tlen < (int)sizeof(topic) ? tlen : (int)sizeof(topic) - 1] = '\0';
		int more = 0;
		size_t ml = sizeof(more);
		if (zmq_getsockopt(r->sub, ZMQ_RCVMORE, &more, &ml) < 0 || !more)
			continue;
		zmq_msg_t body;
		zmq_msg_init(&body);
		if (zmq_msg_recv(&body, r->sub, ZMQ_DONTWAIT) >= 0 && r->synced)
			on_message(r, topic, zmq_msg_data(&body), zmq_msg_size(&body), now);
		zmq_msg_close(&body);
	}
	return 1; /* more is waiting: the caller polls again at once */
}
