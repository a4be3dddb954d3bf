/*
 * One target's delivery: its queue, its one request in flight, retries with
 * exponential backoff and jitter, Retry-After, the rate limit, group_wait,
 * hold_firing, and the durable last-handled seq. Nothing here waits: a request
 * is started on the shared curl multi handle and its outcome comes back to
 * target_done().
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "hearth/units.h"
#include "runtime.h"

#define RETRY_AFTER_MAX_MS (60 * 60 * 1000LL)

static uint64_t body_seq(struct json_object *body)
{
	return (uint64_t)json_object_get_int64(json_at(body, "seq"));
}

struct target *target_new(const struct target_conf *conf, const char *state_dir, struct herr *err)
{
	struct target *t = calloc(1, sizeof(*t));
	struct relay_state st = { 0 };
	int found = 0;

	if (!t) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	t->conf = conf;
	if (state_read(state_dir, conf->name, &st, &found, err) < 0)
		goto fail;
	t->fresh = !found;
	t->seen = st.upto;
	if (st.nheld) {
		/* firings held when it stopped: replay from the first, skip what went out */
		if (!(t->keep = malloc(st.nheld * sizeof(*t->keep)))) {
			herr_set(err, HERR_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(t->keep, st.held, st.nheld * sizeof(*t->keep));
		t->nkeep = st.nheld;
		t->keep_upto = st.upto;
		t->seen = st.held[0] - 1;
	}
	t->saved = st;
	return t;
fail:
	free(st.held);
	free(t);
	return NULL;
}

static void keep_clear(struct target *t)
{
	free(t->keep);
	t->keep = NULL;
	t->nkeep = t->ikeep = 0;
	t->keep_upto = 0;
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
	for (size_t i = 0; i < t->qlen; i++)
		json_object_put(t->q[t->qhead + i].body);
	free(t->q);
	free(t->saved.held);
	keep_clear(t);
	free(t);
}

/*
 * The durable form of the target's progress: every seq <= upto is handled but
 * those in held. The held ones are the unhandled seqs before the first that
 * is not held (a queued item ready to go, or one in flight), at most
 * STATE_HELD_MAX of them, so the file stays one line without hold_firing.
 */
static int state_of(const struct target *t, struct relay_state *st)
{
	size_t cap = 0;

	memset(st, 0, sizeof(*st));
	st->upto = t->seen > t->keep_upto ? t->seen : t->keep_upto;
	for (size_t i = 0; i < t->qlen + (t->nkeep - t->ikeep); i++) {
		int held;
		uint64_t seq;
		if (i < t->qlen) {
			const struct qitem *it = &t->q[t->qhead + i];
			held = it->hold_until != 0;
			seq = it->seq;
		} else {
			/* kept from before the restart and not replayed yet */
			held = 1;
			seq = t->keep[t->ikeep + i - t->qlen];
		}
		if (!held || st->nheld == STATE_HELD_MAX) {
			st->upto = seq - 1;
			break;
		}
		if (st->nheld == cap) {
			uint64_t *h = realloc(st->held, (cap ? 2 * cap : 16) * sizeof(*h));
			if (!h) {
				free(st->held);
				return -1;
			}
			st->held = h;
			cap = cap ? 2 * cap : 16;
		}
		st->held[st->nheld++] = seq;
	}
	return 0;
}

static int state_same(const struct relay_state *a, const struct relay_state *b)
{
	return a->upto == b->upto && a->nheld == b->nheld &&
	       (!a->nheld || memcmp(a->held, b->held, a->nheld * sizeof(*a->held)) == 0);
}

void target_save(struct target *t, const char *state_dir)
{
	struct relay_state st;
	struct herr err;

	if (state_of(t, &st) < 0) {
		log_error("relay, target '%s' cannot save its seq (out of memory)", t->conf->name);
		return;
	}
	if (state_same(&st, &t->saved)) {
		free(st.held);
		return;
	}
	if (state_write(state_dir, t->conf->name, &st, &err) < 0) {
		log_error("relay, target '%s' cannot save its seq (%s)", t->conf->name, err.msg);
		free(st.held);
		return;
	}
	free(t->saved.held);
	t->saved = st;
}

void target_start_at(struct target *t, uint64_t seq)
{
	if (t->seen >= seq)
		return;
	t->seen = seq;
	if (seq >= t->keep_upto)
		keep_clear(t);
	else
		while (t->ikeep < t->nkeep && t->keep[t->ikeep] <= seq)
			t->ikeep++;
	t->overflow = 0;
}

void target_begin(struct target *t, uint64_t seq, const char *state_dir)
{
	if (!t->fresh)
		return;
	target_start_at(t, seq);
	t->fresh = 0;
	/* at once: a restart before the first delivery must not move the start again */
	free(t->saved.held);
	memset(&t->saved, 0, sizeof(t->saved));
	t->saved.upto = UINT64_MAX;     /* differs from anything, so it is written */
	target_save(t, state_dir);
}

/* After a restart: whether seq went out before it (so the replay skips it). */
static int handled_before(struct target *t, uint64_t seq)
{
	if (!t->keep)
		return 0;
	if (seq > t->keep_upto) {
		keep_clear(t);
		return 0;
	}
	while (t->ikeep < t->nkeep && t->keep[t->ikeep] < seq)
		t->ikeep++;
	if (t->ikeep < t->nkeep && t->keep[t->ikeep] == seq) {
		t->ikeep++;
		return 0;
	}
	return 1;
}

static int enqueue(struct target *t, struct json_object *body, uint64_t seq, int64_t hold_until)
{
	if (t->qhead + t->qlen == t->qcap) {
		if (t->qhead > 0) {
			memmove(t->q, t->q + t->qhead, t->qlen * sizeof(*t->q));
			t->qhead = 0;
		} else {
			size_t cap = t->qcap ? 2 * t->qcap : 64;
			struct qitem *q = realloc(t->q, cap * sizeof(*q));
			if (!q)
				return -1;
			t->q = q;
			t->qcap = cap;
		}
	}
	t->q[t->qhead + t->qlen++] = (struct qitem){ json_object_get(body), seq, hold_until, 0 };
	if (hold_until) {
		if (!t->nheld || hold_until < t->next_release)
			t->next_release = hold_until;
		t->nheld++;
	}
	return 0;
}

/* Removes the items for which drop() says so, keeping the order of the rest. */
static void remove_items(struct target *t, int (*drop)(const struct qitem *it, const void *arg), const void *arg)
{
	size_t w = t->qhead;

	for (size_t i = t->qhead; i < t->qhead + t->qlen; i++) {
		if (drop(&t->q[i], arg)) {
			if (t->q[i].hold_until)
				t->nheld--;
			json_object_put(t->q[i].body);
			continue;
		}
		t->q[w++] = t->q[i];
	}
	t->qlen = w - t->qhead;
	if (t->qlen == 0)
		t->qhead = 0;
}

static int is_inflight(const struct qitem *it, const void *arg)
{
	(void)arg;
	return it->inflight;
}

static int is_item(const struct qitem *it, const void *arg)
{
	return it == arg;
}

static int same_alert(struct json_object *a, struct json_object *b)
{
	const char *ra = json_object_get_string(json_at(a, "alert.rule"));
	const char *rb = json_object_get_string(json_at(b, "alert.rule"));
	const char *ca = json_object_get_string(json_at(a, "alert.customer"));
	const char *cb = json_object_get_string(json_at(b, "alert.customer"));

	return ra && rb && ca && cb && !strcmp(ra, rb) && !strcmp(ca, cb);
}

/* How long the alert fired, by hearthd's clock: the resolution's ts less the firing's. */
static int fired_for(struct json_object *firing, struct json_object *resolved, int64_t *ms)
{
	const char *a = json_object_get_string(json_at(firing, "ts"));
	const char *b = json_object_get_string(json_at(resolved, "ts"));
	int64_t ta, tb;

	if (!a || !b || time_parse_rfc3339(a, strlen(a), &ta) < 0 || time_parse_rfc3339(b, strlen(b), &tb) < 0)
		return -1;
	*ms = tb - ta;
	return 0;
}

/*
 * A repeat or resolution of an alert whose firing is held. A resolution that
 * came within hold_firing of the firing (by hearthd's clock, so that a relay
 * catching up after an outage does not take a long alert for a flap) drops
 * both: 1. Otherwise the firing goes at once, ahead of what follows it: 0.
 */
static int settle_held(struct target *t, struct json_object *body, const char *kind, uint64_t seq)
{
	struct qitem *f = NULL;
	int64_t fired = 0;

	for (size_t i = 0; i < t->qlen && !f; i++) {
		struct qitem *it = &t->q[t->qhead + t->qlen - 1 - i];  /* the latest first */
		if (it->hold_until && same_alert(it->body, body))
			f = it;
	}
	if (!f)
		return 0;
	if (!strcmp(kind, "resolved") &&
	    (fired_for(f->body, body, &fired) < 0 || fired <= t->conf->hold_firing_ms)) {
		char d[64];
		duration_format(fired, d, sizeof(d));
		log_info("relay, target '%s' dropped %s for %s: it fired at seq %llu and resolved at seq %llu "
			 "within hold_firing (after %s)", t->conf->name,
			 json_object_get_string(json_at(body, "alert.rule")),
			 json_object_get_string(json_at(body, "alert.customer")), (unsigned long long)f->seq,
			 (unsigned long long)seq, d);
		t->flaps++;
		remove_items(t, is_item, f);
		return 1;
	}
	f->hold_until = 0;
	t->nheld--;
	return 0;
}

void target_offer(struct target *t, struct json_object *body, int64_t now)
{
	uint64_t seq = body_seq(body);
	const char *kind = json_object_get_string(json_at(body, "kind"));

	if (seq <= t->seen || t->overflow)
		return;
	if (handled_before(t, seq)) {
		t->seen = seq;
		return;
	}
	kind = kind ? kind : "";
	/* whether or not the target takes resolutions, one ends a held firing */
	if (t->nheld && strcmp(kind, "firing") != 0 && settle_held(t, body, kind, seq) > 0) {
		t->seen = seq;
		return;
	}
	if (target_matches(t->conf, body)) {
		int hold = t->conf->hold_firing_ms > 0 && !strcmp(kind, "firing");
		int had_ready = t->qlen > t->nheld;
		if (t->qlen >= t->conf->queue_max) {
			t->overflow = 1;
			log_warning("relay, target '%s' has %zu alerts queued; the rest waits in hearthd's outbox",
				    t->conf->name, t->qlen);
			return;
		}
		if (enqueue(t, body, seq, hold ? now + t->conf->hold_firing_ms : 0) < 0) {
			/* not seen: a later replay (restart) brings it back */
			log_error("relay, target '%s' cannot queue seq %llu (out of memory)",
				  t->conf->name, (unsigned long long)seq);
			t->overflow = 1;
			return;
		}
		if (!hold && !had_ready)
			t->group_deadline = now + t->conf->group_wait_ms;
	}
	t->seen = seq;
}

void targets_offer(struct relay *r, struct json_object *body, int64_t now)
{
	for (size_t i = 0; i < r->ntargets; i++)
		target_offer(r->targets[i], body, now);
	r->last = body_seq(body);
}

/* Firings whose hold_firing has passed may go; the wake-up for the next one. */
static void release_held(struct target *t, int64_t now)
{
	int64_t next = INT64_MAX;

	if (!t->nheld || (now < t->next_release && t->conf->hold_firing_ms > 0))
		return;
	for (size_t i = 0; i < t->qlen; i++) {
		struct qitem *it = &t->q[t->qhead + i];
		if (!it->hold_until)
			continue;
		/* a reload that turned hold_firing off lets them all go */
		if (it->hold_until <= now || t->conf->hold_firing_ms <= 0) {
			it->hold_until = 0;
			t->nheld--;
		} else if (it->hold_until < next) {
			next = it->hold_until;
		}
	}
	t->next_release = next;
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
	size_t n = 0, max;

	if (t->inflight_n || t->qlen == 0)
		return;
	release_held(t, now);
	if (t->nheld && t->next_release < *wake)
		*wake = t->next_release;
	if (t->qlen == t->nheld)
		return;                 /* all held */
	int64_t at = t->not_before;
	if (t->attempts == 0 && t->group_deadline > at)
		at = t->group_deadline;
	if (now < at) {
		if (at < *wake)
			*wake = at;
		return;
	}
	max = t->conf->group_wait_ms > 0 ? RELAY_GROUP_MAX : 1;
	for (size_t i = 0; i < t->qlen && n < max; i++)
		if (!t->q[t->qhead + i].hold_until)
			batch[n++] = t->q[t->qhead + i].body;
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
	for (size_t i = 0, k = 0; i < t->qlen && k < n; i++)
		if (!t->q[t->qhead + i].hold_until) {
			t->q[t->qhead + i].inflight = 1;
			k++;
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
	size_t head = 0;

	while (head < t->inflight_n && t->q[t->qhead + head].inflight)
		head++;
	if (head == t->inflight_n) {
		/* what went out is the head of the queue (always so without hold_firing) */
		for (size_t i = 0; i < t->inflight_n; i++)
			json_object_put(t->q[t->qhead + i].body);
		t->qhead += t->inflight_n;
		t->qlen -= t->inflight_n;
		if (t->qlen == 0)
			t->qhead = 0;
	} else {
		remove_items(t, is_inflight, NULL);
	}
	t->inflight_n = 0;
	if (t->overflow && t->qlen <= t->conf->queue_max / 2)
		t->overflow = 0;    /* room again: the loop catches up from replay */
	t->attempts = 0;
	if (t->qlen > t->nheld)
		t->group_deadline = 0; /* the rest has waited already */
	target_save(t, state_dir);
}

static uint64_t first_inflight(const struct target *t)
{
	for (size_t i = 0; i < t->qlen; i++)
		if (t->q[t->qhead + i].inflight)
			return t->q[t->qhead + i].seq;
	return 0;
}

void target_done(struct target *t, CURLM *multi, CURLcode rc, const char *state_dir, int64_t now)
{
	long status = 0, svc = 0;
	curl_off_t retry_after = 0;
	int retry = 0;
	uint64_t first = first_inflight(t);

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
		for (size_t i = 0; i < t->qlen; i++)
			t->q[t->qhead + i].inflight = 0;
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
