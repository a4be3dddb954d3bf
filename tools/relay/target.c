/*
 * One target's delivery: its queue, its one request in flight, retries with
 * exponential backoff and jitter, Retry-After, the rate limit, group_wait,
 * and the durable last-handled seq. Nothing here waits: a request is started
 * on the shared curl multi handle and its outcome comes back to target_done().
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "runtime.h"

#define RETRY_AFTER_MAX_MS (60 * 60 * 1000LL)

static uint64_t body_seq(struct json_object *body)
{
	return (uint64_t)json_object_get_int64(json_at(body, "seq"));
}

struct target *target_new(const struct target_conf *conf, const char *state_dir, struct herr *err)
{
	struct target *t = calloc(1, sizeof(*t));
	uint64_t seq = 0;
	int found = 0;

	if (!t) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	t->conf = conf;
	if (state_read(state_dir, conf->name, &seq, &found, err) < 0) {
		free(t);
		return NULL;
	}
	t->fresh = !found;
	t->seen = t->acked = t->saved = seq;
	return t;
}

static void drop_queue(struct target *t, size_t n)
{
	for (size_t i = 0; i < n && t->qlen > 0; i++) {
		json_object_put(t->q[t->qhead]);
		t->q[t->qhead] = NULL;
		t->qhead++;
		t->qlen--;
	}
	if (t->qlen == 0)
		t->qhead = 0;
}

void target_free(struct target *t, CURLM *multi)
{
	if (!t)
		return;
	if (t->easy) {
		if (t->inflight_n && multi)
			curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	curl_slist_free_all(t->headers);
	message_clear(&t->msg);
	drop_queue(t, t->qlen);
	free(t->q);
	free(t);
}

void target_start_at(struct target *t, uint64_t seq)
{
	if (t->seen >= seq)
		return;
	t->seen = seq;
	if (t->qlen == 0 && !t->inflight_n)
		t->acked = seq;
	t->overflow = 0;
}

void target_begin(struct target *t, uint64_t seq, const char *state_dir)
{
	struct herr err;

	if (!t->fresh)
		return;
	target_start_at(t, seq);
	t->fresh = 0;
	/* at once: a restart before the first delivery must not move the start again */
	if (state_write(state_dir, t->conf->name, t->acked, &err) < 0)
		log_error("relay, target '%s' cannot save its seq (%s)", t->conf->name, err.msg);
	else
		t->saved = t->acked;
}

static int enqueue(struct target *t, struct json_object *body)
{
	if (t->qhead + t->qlen == t->qcap) {
		if (t->qhead > 0) {
			memmove(t->q, t->q + t->qhead, t->qlen * sizeof(*t->q));
			t->qhead = 0;
		} else {
			size_t cap = t->qcap ? 2 * t->qcap : 64;
			struct json_object **q = realloc(t->q, cap * sizeof(*q));
			if (!q)
				return -1;
			t->q = q;
			t->qcap = cap;
		}
	}
	t->q[t->qhead + t->qlen++] = json_object_get(body);
	return 0;
}

void target_offer(struct target *t, struct json_object *body, int64_t now)
{
	uint64_t seq = body_seq(body);

	if (seq <= t->seen || t->overflow)
		return;
	if (target_matches(t->conf, body)) {
		if (t->qlen >= t->conf->queue_max) {
			t->overflow = 1;
			log_warning("relay, target '%s' has %zu alerts queued; the rest waits in hearthd's outbox",
				    t->conf->name, t->qlen);
			return;
		}
		if (enqueue(t, body) < 0) {
			/* not seen: a later replay (restart) brings it back */
			log_error("relay, target '%s' cannot queue seq %llu (out of memory)",
				  t->conf->name, (unsigned long long)seq);
			t->overflow = 1;
			return;
		}
		if (t->qlen == 1)
			t->group_deadline = now + t->conf->group_wait_ms;
	} else if (t->qlen == 0 && !t->inflight_n) {
		t->acked = seq;
	}
	t->seen = seq;
}

static size_t on_reply(char *data, size_t size, size_t nmemb, void *user)
{
	struct target *t = user;
	size_t n = size * nmemb, room = sizeof(t->reply) - 1 - t->reply_len;

	if (n < room)
		room = n;
	memcpy(t->reply + t->reply_len, data, room);
	t->reply_len += room;
	t->reply[t->reply_len] = '\0';
	return n;
}

static int setup_easy(struct target *t, struct herr *err)
{
	const struct target_conf *c = t->conf;

	if (!t->easy && !(t->easy = curl_easy_init()))
		return herr_set(err, HERR_NOMEM, "cannot create a curl handle");
	if (!t->headers) {
		struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
		if (!h || !(t->headers = curl_slist_append(h, "Expect:"))) {
			curl_slist_free_all(h);
			return herr_set(err, HERR_NOMEM, "out of memory");
		}
	}
	CURL *e = t->easy;
	curl_easy_reset(e);     /* options of the last request (or config) go; connections stay */
	if (curl_easy_setopt(e, CURLOPT_URL, t->msg.url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->msg.body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(t->msg.body)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "hearth-relay/" HEARTH_VERSION) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_reply) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK ||
	    (c->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) != CURLE_OK))
		return herr_set(err, HERR_IO, "cannot set up the request");
	return 0;
}

void target_step(struct target *t, CURLM *multi, int64_t now, int64_t *wake)
{
	struct json_object *batch[RELAY_GROUP_MAX];
	struct herr err;
	size_t n;

	if (t->inflight_n || t->qlen == 0)
		return;
	int64_t at = t->not_before;
	if (t->attempts == 0 && t->group_deadline > at)
		at = t->group_deadline;
	if (now < at) {
		if (at < *wake)
			*wake = at;
		return;
	}
	n = t->conf->group_wait_ms > 0 ? (t->qlen < RELAY_GROUP_MAX ? t->qlen : RELAY_GROUP_MAX) : 1;
	for (size_t i = 0; i < n; i++)
		batch[i] = t->q[t->qhead + i];
	message_clear(&t->msg);
	t->errbuf[0] = '\0';
	t->reply_len = 0;
	t->reply[0] = '\0';
	if (t->conf->type->build(t->conf, batch, n, &t->msg, &err) < 0 || setup_easy(t, &err) < 0) {
		log_error("relay, target '%s' cannot build its message (%s)", t->conf->name, err.msg);
		t->not_before = now + t->conf->backoff_ms;
		if (t->not_before < *wake)
			*wake = t->not_before;
		return;
	}
	CURLMcode mc = curl_multi_add_handle(multi, t->easy);
	if (mc != CURLM_OK) {
		log_error("relay, target '%s' cannot start a request (%s)", t->conf->name,
			  curl_multi_strerror(mc));
		t->not_before = now + t->conf->backoff_ms;
		return;
	}
	t->inflight_n = n;
	t->last_send = now;
}

/* Exponential backoff with jitter: a random point in the upper half of the step. */
static int64_t backoff_delay(const struct target *t)
{
	int64_t d = t->conf->backoff_ms;

	for (int i = 1; i < t->attempts && d < t->conf->backoff_max_ms; i++)
		d *= 2;
	if (d > t->conf->backoff_max_ms)
		d = t->conf->backoff_max_ms;
	return d / 2 + (int64_t)(random() % (d / 2 + 1));
}

/*
 * Some robots answer 200 with an error in the body (DingTalk and WeCom
 * `errcode`, Feishu `code`). 0: fine; 1: rate limited, retry; -1: rejected.
 */
static int service_verdict(const struct target *t, long *code)
{
	struct json_object *ans = t->conf->type->errcode_in_body ? json_tokener_parse(t->reply) : NULL;
	struct json_object *v = NULL;
	int verdict = 0;

	*code = 0;
	if (!ans)
		return 0;
	if ((json_object_object_get_ex(ans, "errcode", &v) || json_object_object_get_ex(ans, "code", &v)) &&
	    json_object_is_type(v, json_type_int) && (*code = (long)json_object_get_int64(v)) != 0) {
		/* DingTalk 130101 "send too fast", WeCom 45009 "api freq out of limit",
		 * Feishu 9499 / 11232 "too many requests" */
		verdict = (*code == 130101 || *code == 45009 || *code == 9499 || *code == 11232) ? 1 : -1;
	}
	json_object_put(ans);
	return verdict;
}

static void advance(struct target *t, const char *state_dir)
{
	struct herr err;
	size_t n = t->inflight_n;

	drop_queue(t, n);
	t->inflight_n = 0;
	if (t->overflow && t->qlen <= t->conf->queue_max / 2)
		t->overflow = 0;    /* room again: the loop catches up from replay */
	t->attempts = 0;
	t->acked = t->qlen ? (uint64_t)json_object_get_int64(json_at(t->q[t->qhead], "seq")) - 1 : t->seen;
	if (t->qlen)
		t->group_deadline = 0; /* the rest has waited already */
	if (t->acked != t->saved) {
		if (state_write(state_dir, t->conf->name, t->acked, &err) < 0)
			log_error("relay, target '%s' cannot save its seq (%s)", t->conf->name, err.msg);
		else
			t->saved = t->acked;
	}
}

void target_done(struct target *t, CURLM *multi, CURLcode rc, const char *state_dir, int64_t now)
{
	long status = 0, svc = 0;
	curl_off_t retry_after = 0;
	int retry = 0;
	uint64_t first = (uint64_t)json_object_get_int64(json_at(t->q[t->qhead], "seq"));

	curl_multi_remove_handle(multi, t->easy);
	if (rc != CURLE_OK) {
		retry = 1;
		log_warning("relay, target '%s' request for seq %llu failed (%s)", t->conf->name,
			    (unsigned long long)first, t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 429 || status >= 500) {
			retry = 1;
			curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
			log_warning("relay, target '%s' answered %ld for seq %llu, will retry", t->conf->name,
				    status, (unsigned long long)first);
		} else if (status < 200 || status >= 300) {
			log_warning("relay, target '%s' refused seq %llu with %ld, skipped (%.200s)",
				    t->conf->name, (unsigned long long)first, status, t->reply);
			t->skipped += t->inflight_n;
		} else {
			int verdict = service_verdict(t, &svc);
			if (verdict > 0) {
				retry = 1;
				log_warning("relay, target '%s' is rate limited (code %ld), will retry",
					    t->conf->name, svc);
			} else if (verdict < 0) {
				log_warning("relay, target '%s' refused seq %llu with code %ld, skipped (%.200s)",
					    t->conf->name, (unsigned long long)first, svc, t->reply);
				t->skipped += t->inflight_n;
			} else {
				t->delivered += t->inflight_n;
				log_debug("relay, target '%s' delivered seq %llu (%zu alerts)", t->conf->name,
					  (unsigned long long)first, t->inflight_n);
			}
		}
	}
	if (retry) {
		t->attempts++;
		t->retried++;
		t->inflight_n = 0;
		int64_t delay = retry_after > 0 ? (int64_t)retry_after * 1000 : backoff_delay(t);
		if (delay > RETRY_AFTER_MAX_MS)
			delay = RETRY_AFTER_MAX_MS;
		t->not_before = now + delay;
		if (t->conf->rate_interval_ms > 0 && t->not_before < t->last_send + t->conf->rate_interval_ms)
			t->not_before = t->last_send + t->conf->rate_interval_ms;
		return;
	}
	advance(t, state_dir);
	if (t->conf->rate_interval_ms > 0)
		t->not_before = t->last_send + t->conf->rate_interval_ms;
}

void target_save(struct target *t, const char *state_dir)
{
	struct herr err;

	if (t->acked == t->saved)
		return;
	if (state_write(state_dir, t->conf->name, t->acked, &err) < 0)
		log_error("relay, target '%s' cannot save its seq (%s)", t->conf->name, err.msg);
	else
		t->saved = t->acked;
}
