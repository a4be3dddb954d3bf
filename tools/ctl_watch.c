/*
 * hearthctl watch: alerts as they are published (PROTOCOL.md §4.6, §8.5). A subscriber can
 * miss messages (it connected late, its queue overflowed, the daemon
 * restarted); a jump in seq, or a heartbeat whose seq is ahead of the last one
 * seen, shows the gap, and `replay` fills it from the outbox, so every
 * notification is printed once and in order.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "hearth/ctlclient.h"
#include "hearth/json.h"
#include "hearth/units.h"

struct watch {
	const struct ctl_opts *o;
	struct ctl_client *cc;
	uint64_t last;                  /* the last seq printed */
	long remaining;                 /* --count: stop after this many; < 0 never */
	const char *topic;
	struct json_tokener *tok;        /* published bodies are parsed by their length */
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* raw: the body as published (rawlen bytes), or NULL to print the parsed one */
static void print_body(struct watch *w, struct json_object *body, const char *raw, size_t rawlen)
{
	struct json_object *alert = json_path(body, "alert");
	const char *kind = json_object_get_string(json_path(body, "kind"));
	char when[64];

	if (w->o->json) {
		if (raw) {
			fwrite(raw, 1, rawlen, stdout);
			putchar('\n');
		} else {
			puts(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
								JSON_C_TO_STRING_NOSLASHESCAPE));
		}
	} else {
		/* padded by columns, not bytes: ids and rule names may be Chinese */
		const char *cols[] = {
			human_time(json_object_get_string(json_path(body, "ts")), when, sizeof(when)),
			kind ? kind : "?", json_object_get_string(json_path(alert, "severity")),
			json_object_get_string(json_path(alert, "rule")),
			json_object_get_string(json_path(alert, "customer")),
		};
		static const size_t widths[] = { 26, 8, 8, 24, 10 };
		printf("%-6lld ", (long long)json_object_get_int64(json_path(body, "seq")));
		for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
			pad_to(stdout, cols[i] ? cols[i] : "", widths[i]);
			fputc(' ', stdout);
		}
		printf("%s\n", json_object_get_string(json_path(alert, "summary")));
	}
	fflush(stdout);
	if (w->remaining > 0)
		w->remaining--;
}

static int topic_wanted(const struct watch *w, struct json_object *body)
{
	char topic[128];
	struct json_object *alert = json_path(body, "alert");

	if (!w->topic)
		return 1;
	snprintf(topic, sizeof(topic), "alert.%s.%s", json_object_get_string(json_path(alert, "severity")),
		 json_object_get_string(json_path(alert, "rule")));
	return strncmp(topic, w->topic, strlen(w->topic)) == 0;
}

/* Prints what the outbox holds after w->last up to (excluding) `upto`. */
static int fill_gap(struct watch *w, uint64_t upto)
{
	while (w->last + 1 < upto && w->remaining != 0) {
		struct json_object *req = json_object_new_object(), *ans, *list, *v;
		struct herr err;
		json_object_object_add(req, "cmd", json_object_new_string("replay"));
		json_object_object_add(req, "after", json_object_new_int64((int64_t)w->last));
		ans = ctl_call(w->cc, req, &err);
		json_object_put(req);
		if (!ans) {
			ctl_warn("%s", err.msg);
			return CTL_EXIT_UNREACHABLE;
		}
		if (!json_object_object_get_ex(ans, "ok", &v) || !json_object_get_boolean(v)) {
			ctl_warn("replay after %llu: %s; continuing from %llu", (unsigned long long)w->last,
				 json_object_get_string(json_path(ans, "error.message")),
				 (unsigned long long)(upto - 1));
			w->last = upto - 1;
			json_object_put(ans);
			return 0;
		}
		list = json_path(ans, "notifications");
		size_t n = list ? json_object_array_length(list) : 0;
		for (size_t i = 0; i < n && w->remaining != 0; i++) {
			struct json_object *body = json_object_array_get_idx(list, i);
			uint64_t seq = (uint64_t)json_object_get_int64(json_path(body, "seq"));
			if (seq >= upto)
				break;
			if (seq > w->last) {
				if (topic_wanted(w, body))
					print_body(w, body, NULL, 0);
				w->last = seq;
			}
		}
		json_object_put(ans);
		if (n == 0)
			break;
	}
	return 0;
}

static int on_message(struct watch *w, const char *topic, const char *data, size_t len)
{
	struct json_object *body = json_parse_whole(w->tok, data, len, NULL);
	uint64_t seq;
	int rc = 0;

	if (!body)
		return 0;
	seq = (uint64_t)json_object_get_int64(json_path(body, "seq"));
	if (strcmp(topic, "hb") == 0) {
		rc = fill_gap(w, seq + 1); /* the heartbeat's seq is the last one published */
	} else if (seq > w->last) {
		rc = fill_gap(w, seq);
		if (rc == 0 && w->remaining != 0) {
			if (topic_wanted(w, body))
				print_body(w, body, data, len);
			w->last = seq;
		}
	}
	json_object_put(body);
	return rc;
}

static const char *status_endpoint(struct watch *w, uint64_t *seq)
{
	static char endpoint[512];
	struct json_object *req = json_object_new_object(), *ans, *pub;
	struct herr err;

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	ans = ctl_call(w->cc, req, &err);
	json_object_put(req);
	if (!ans)
		return NULL;
	pub = json_path(ans, "publish");
	*seq = (uint64_t)json_object_get_int64(json_path(ans, "seq"));
	endpoint[0] = '\0';
	if (pub && json_object_array_length(pub) > 0)
		snprintf(endpoint, sizeof(endpoint), "%s",
			 json_object_get_string(json_object_array_get_idx(pub, 0)));
	json_object_put(ans);
	return endpoint[0] ? endpoint : NULL;
}

static int receive_loop(struct watch *w, void *sub)
{
	while (!stop_requested && w->remaining != 0) {
		zmq_pollitem_t item = { .socket = sub, .events = ZMQ_POLLIN };
		char topic[128];
		int n = zmq_poll(&item, 1, 500);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		int tlen = zmq_recv(sub, topic, sizeof(topic) - 1, 0);
		if (tlen < 0)
			continue;
		topic[tlen < (int)sizeof(topic) ? tlen : (int)sizeof(topic) - 1] = '\0';
		zmq_msg_t body;
		zmq_msg_init(&body);
		if (zmq_msg_recv(&body, sub, 0) >= 0) {
			int rc = on_message(w, topic, zmq_msg_data(&body), zmq_msg_size(&body));
			zmq_msg_close(&body);
			if (rc)
				return rc;
		} else {
			zmq_msg_close(&body);
		}
	}
	return CTL_EXIT_OK;
}

int watch_run(const struct ctl_opts *o, const char *endpoint, const char *topic, long after, long count)
{
	struct watch w = { .o = o, .remaining = count > 0 ? count : -1, .topic = topic };
	struct herr err;
	void *zctx = NULL, *sub = NULL;
	uint64_t current = 0;
	int rc = CTL_EXIT_UNREACHABLE;

	if (!(w.tok = json_tokener_new())) {
		ctl_warn("out of memory");
		return CTL_EXIT_UNREACHABLE;
	}
	if (!(w.cc = ctl_connect(o->socket, &err))) {
		ctl_warn("%s", err.msg);
		goto out;
	}
	const char *ep = status_endpoint(&w, &current);
	if (!endpoint)
		endpoint = ep;
	if (!endpoint) {
		ctl_warn("the daemon names no publish endpoint; give one with --endpoint");
		goto out;
	}
	w.last = after >= 0 ? (uint64_t)after : current;
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	zctx = zmq_ctx_new();
	sub = zctx ? zmq_socket(zctx, ZMQ_SUB) : NULL;
	if (!sub || zmq_connect(sub, endpoint) < 0) {
		ctl_warn("cannot subscribe to %s (%s)", endpoint, zmq_strerror(errno));
		goto out;
	}
	/* alerts by the asked prefix are filtered here: gaps are judged on every seq */
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
	if (!o->json)
		fprintf(stderr, "watching %s after seq %llu (Ctrl-C stops)\n", endpoint,
			(unsigned long long)w.last);
	rc = fill_gap(&w, current + 1);
	if (rc == 0)
		rc = receive_loop(&w, sub);
out:
	if (sub) {
		int linger = 0;
		zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(sub);
	}
	if (zctx)
		zmq_ctx_term(zctx);
	ctl_close(w.cc);
	json_tokener_free(w.tok);
	return rc;
}
