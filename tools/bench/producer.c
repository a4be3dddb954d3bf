/*
 * The ZeroMQ sides of the bench: a DEALER producer that keeps a window of
 * batches in flight (PROTOCOL.md §3.1: DEALER may pipeline) and counts what the
 * replies say, optionally paced to a target rate, in this process or a child;
 * and the ingest → alert probe, which times single events from send to SUB
 * receipt of the alert they start or end.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "hearth/json.h"
#include "hearth/units.h"

#define REPLY_TIMEOUT_MS 120000
#define ALERT_TIMEOUT_MS 5000

static void *dealer(void *zctx, const char *endpoint, struct herr *err)
{
	void *s = zmq_socket(zctx, ZMQ_DEALER);
	int linger = 0, hwm = 100000;

	if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 || zmq_connect(s, endpoint) < 0) {
		herr_set(err, HERR_IO, "bench, DEALER to %s: %s", endpoint, zmq_strerror(errno));
		if (s)
			zmq_close(s);
		return NULL;
	}
	return s;
}

/* Reads one ingest reply and adds its counts; -1 with err when it says no. */
static int take_reply(void *s, struct ingest_result *res, struct herr *err)
{
	zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
	struct json_object *r, *v;
	zmq_msg_t msg;
	int rc = -1;

	if (zmq_poll(&it, 1, REPLY_TIMEOUT_MS) <= 0)
		return herr_set(err, HERR_IO, "bench, no ingest reply within %d s", REPLY_TIMEOUT_MS / 1000);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, s, 0) < 0) {
		zmq_msg_close(&msg);
		return herr_set(err, HERR_IO, "bench, receiving a reply: %s", zmq_strerror(errno));
	}
	r = json_parse_once(zmq_msg_data(&msg), zmq_msg_size(&msg));
	if (!r || !json_object_object_get_ex(r, "ok", &v) || !json_object_get_boolean(v)) {
		herr_set(err, HERR_IO, "bench, ingest refused a batch: %.200s",
			 r ? json_object_to_json_string(r) : "(not JSON)");
		goto out;
	}
	if (json_object_object_get_ex(r, "accepted", &v))
		res->accepted += (size_t)json_object_get_int64(v);
	if (json_object_object_get_ex(r, "duplicates", &v))
		res->duplicates += (size_t)json_object_get_int64(v);
	if (json_object_object_get_ex(r, "rejected", &v) && json_object_is_type(v, json_type_array)) {
		res->rejected += json_object_array_length(v);
		if (json_object_array_length(v) && res->rejected == json_object_array_length(v))
			fprintf(stderr, "bench: first rejection: %.300s\n",
				json_object_to_json_string(json_object_array_get_idx(v, 0)));
	}
	rc = 0;
out:
	json_object_put(r);
	zmq_msg_close(&msg);
	return rc;
}

int produce(void *zctx, const char *endpoint, const struct frames *f, size_t first, size_t nframes,
	    int inflight, double rate, double max_seconds, struct ingest_result *res, struct herr *err)
{
	void *s = dealer(zctx, endpoint, err);
	size_t sent = 0, answered = 0, events_sent = 0;
	double t0;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (!s)
		return -1;
	if (first + nframes > f->n)
		nframes = f->n - first;
	t0 = now_s();
	while (answered < nframes) {
		double wait = 0;
		/* send while the window has room (and, when paced, the next batch is due) */
		if (max_seconds > 0 && sent < nframes && now_s() - t0 > max_seconds)
			nframes = sent;         /* time is up: collect what is in flight */
		while (sent < nframes && sent - answered < (size_t)inflight) {
			size_t k = first + sent;
			if (rate > 0 && (wait = t0 + (double)events_sent / rate - now_s()) > 0)
				break;
			if (zmq_send_const(s, f->text + f->off[k], f->off[k + 1] - f->off[k], 0) < 0) {
				herr_set(err, HERR_IO, "bench, sending a batch: %s", zmq_strerror(errno));
				goto out;
			}
			events_sent += f->count[k];
			res->events += f->count[k];
			sent++;
			wait = 0;
		}
		if (wait > 0) {
			/* paced: read replies only until the next batch is due */
			zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
			if (zmq_poll(&it, 1, (long)(wait * 1000) + 1) <= 0)
				continue;
		}
		if (sent > answered) {
			if (take_reply(s, res, err) < 0)
				goto out;
			answered++;
		}
	}
	res->seconds = now_s() - t0;
	rc = 0;
out:
	zmq_close(s);
	return rc;
}

pid_t produce_in_child(const char *endpoint, const struct frames *f, double rate, double max_seconds,
		       int inflight)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* the child: its own ZeroMQ context, never the parent's */
	void *zctx = zmq_ctx_new();
	struct ingest_result res;
	struct herr err = { 0 };
	int rc = produce(zctx, endpoint, f, 0, f->n, inflight, rate, max_seconds, &res, &err);
	if (rc < 0)
		fprintf(stderr, "bench: background producer: %s\n", err.msg);
	else if (res.accepted + res.duplicates != res.events)
		fprintf(stderr, "bench: background producer: %zu of %zu events accepted\n",
			res.accepted, res.events);
	else
		fprintf(stdout, "  background producer: %zu events in %.2f s = %.0f events/s\n",
			res.events, res.seconds, (double)res.events / res.seconds);
	fflush(stdout);
	zmq_ctx_term(zctx);
	_exit(rc < 0 || res.accepted + res.duplicates != res.events);
}

/* ---- ingest → alert ---------------------------------------------------------- */

/* Waits for the alert `kind` of customer `cust` and for the ingest reply. */
static int await_alert(void *sub, void *dl, const char *cust, const char *kind, int64_t t0,
		       double *us, struct herr *err)
{
	int got_alert = 0, got_reply = 0;
	int64_t deadline = mono_now_us() + ALERT_TIMEOUT_MS * 1000LL;

	while (!got_alert || !got_reply) {
		zmq_pollitem_t it[2] = { { sub, 0, ZMQ_POLLIN, 0 }, { dl, 0, ZMQ_POLLIN, 0 } };
		int64_t left = deadline - mono_now_us();
		if (left <= 0 || zmq_poll(it, 2, left / 1000 + 1) < 0)
			return herr_set(err, HERR_IO, "bench, no %s alert for %s within %d ms", kind, cust,
					ALERT_TIMEOUT_MS);
		if (it[0].revents & ZMQ_POLLIN) {
			char topic[128], body[8192];
			int tn = zmq_recv(sub, topic, sizeof(topic), 0);
			int more = 0;
			size_t ml = sizeof(more);
			zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml);
			if (tn < 0 || !more)
				continue;
			int bn = zmq_recv(sub, body, sizeof(body) - 1, 0);
			int64_t t1 = mono_now_us();
			if (bn < 0)
				continue;
			body[bn < (int)sizeof(body) ? bn : (int)sizeof(body) - 1] = '\0';
			struct json_object *b = json_tokener_parse(body), *k, *a, *c;
			if (b && json_object_object_get_ex(b, "kind", &k) &&
			    json_object_object_get_ex(b, "alert", &a) &&
			    json_object_object_get_ex(a, "customer", &c) &&
			    strcmp(json_object_get_string(k), kind) == 0 &&
			    strcmp(json_object_get_string(c), cust) == 0) {
				*us = (double)(t1 - t0);
				got_alert = 1;
			}
			json_object_put(b);
		}
		if (it[1].revents & ZMQ_POLLIN) {
			struct ingest_result r = { 0 };
			if (take_reply(dl, &r, err) < 0)
				return -1;
			if (r.accepted != 1)
				return herr_set(err, HERR_IO, "bench, the probe event for %s was not accepted", cust);
			got_reply = 1;
		}
	}
	return 0;
}

static int send_event(void *dl, const char *json, struct herr *err)
{
	if (zmq_send(dl, json, strlen(json), 0) < 0)
		return herr_set(err, HERR_IO, "bench, sending a probe event: %s", zmq_strerror(errno));
	return 0;
}

int alert_latency(void *zctx, struct daemon *d, size_t pairs, double *us, size_t *n,
		  struct herr *err)
{
	static const char topic[] = "alert.critical.complaint_unresolved";
	void *sub = zmq_socket(zctx, ZMQ_SUB), *dl = dealer(zctx, d->ingest, err);
	char ev[512], cust[32];
	int64_t now = daemon_now(d, err), ts;
	int linger = 0, rc = -1, ready = 0;

	*n = 0;
	if (!sub || !dl || now < 0)
		goto out;
	ts = now - 3 * MS_PER_DAY;      /* a complaint open for 3 days: complaint_unresolved fires */
	if (zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) < 0 ||
	    zmq_connect(sub, d->publish) < 0) {
		herr_set(err, HERR_IO, "bench, SUB to %s: %s", d->publish, zmq_strerror(errno));
		goto out;
	}
	/* a SUB joins late: warm up with throwaway customers until an alert gets through */
	for (int i = 0; i < 50 && !ready; i++) {
		double ignored;
		struct herr e2;
		snprintf(cust, sizeof(cust), "W%07d", i);
		snprintf(ev, sizeof(ev), "{\"customer\":\"%s\",\"ts\":%lld,\"type\":\"complaint\",\"ref\":\"WK-%d\"}",
			 cust, (long long)ts, i);
		if (send_event(dl, ev, err) < 0)
			goto out;
		ready = await_alert(sub, dl, cust, "firing", mono_now_us(), &ignored, &e2) == 0;
	}
	if (!ready) {
		herr_set(err, HERR_IO, "bench, the subscriber never received an alert");
		goto out;
	}
	for (size_t i = 0; i < pairs; i++) {
		static const char *const kinds[2] = { "firing", "resolved" };
		static const char *const types[2] = { "complaint", "complaint_resolved" };
		snprintf(cust, sizeof(cust), "L%07zu", i);
		for (int k = 0; k < 2; k++) {
			snprintf(ev, sizeof(ev),
				 "{\"id\":\"lat-%zu-%d\",\"customer\":\"%s\",\"ts\":%lld,\"type\":\"%s\",\"ref\":\"LK-%zu\"}",
				 i, k, cust, (long long)(ts + k), types[k], i);
			int64_t t0 = mono_now_us();
			if (send_event(dl, ev, err) < 0 ||
			    await_alert(sub, dl, cust, kinds[k], t0, &us[*n], err) < 0)
				goto out;
			(*n)++;
		}
	}
	rc = 0;
out:
	if (sub)
		zmq_close(sub);
	if (dl)
		zmq_close(dl);
	return rc;
}
