/*
 * Beyond one machine (issue 6, docs/SCALING.md): hearth grows past one
 * server by sharding customers over independent hearthd instances, each with
 * its own LMDB store, rather than by a cluster of its own. A customer lives on
 * instance shard_hash(customer) % N, so every rule still sees a customer's
 * whole timeline in one store.
 *
 * phase_shard runs the same generated stream into 1, 2 and 4 instances:
 *
 *   ingest   the stream is split by hash and sent to all instances at once,
 *            one pipelined DEALER producer (a thread) per instance; the figure
 *            is the aggregate of durable (replied) events over the wall time
 *   fan-out  `status` and paged `customers` summed over the instances must
 *            give the generated customers, and a filtered `customers` query
 *            must give, summed, what one instance alone answers
 *   fan-in   one SUB socket connected to every instance's PUB hears each of
 *            them, and a clock.set that brings a cohort due delivers every
 *            notification each instance numbered: seq is per instance, so
 *            a message is matched to its instance by its customer's hash
 *
 * On a small machine the instances and the producers share the same cores
 * and the same disk, so N instances do not give N times the rate there: the
 * phase reports what it measures, and how busy the CPUs were.
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench.h"
#include "hearth/json.h"
#include "hearth/limits.h"
#include "hearth/units.h"

#define BATCH           1000
#define INFLIGHT        8
#define WARMUP_ROUNDS   50      /* probes per instance before the SUB must have heard it */
#define WARMUP_WAIT_MS  100
#define DRAIN_QUIET_MS  200
#define FANIN_TIMEOUT_MS 10000
#define OPEN_QUERY      "open(complaint) > 0"

const size_t shard_counts[SHARD_CONFIGS] = { 1, 2, 4 };

uint32_t shard_hash(const char *id, size_t len)
{
	uint32_t h = 2166136261u;       /* FNV-1a offset basis and prime: see docs/SCALING.md */

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)id[i];
		h *= 16777619u;
	}
	return h;
}

static size_t shard_of(const char *id, size_t n)
{
	return shard_hash(id, strlen(id)) % n;
}

static double cpu_self_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- routing ----------------------------------------------------------------- */

/* Each generated customer's hash, computed once for all configurations. */
static uint32_t *customer_hashes(const struct gen_stream *s, struct herr *err)
{
	uint32_t *h = calloc(s->p.customers ? s->p.customers : 1, sizeof(*h));
	char id[32];

	if (!h) {
		herr_set(err, HERR_NOMEM, "bench, out of memory");
		return NULL;
	}
	for (size_t c = 0; c < s->p.customers; c++)
		h[c] = shard_hash(id, gen_customer_id(s, (uint32_t)c, id, sizeof(id)));
	return h;
}

/*
 * f[k]: the frames of instance k's share of the stream, in stream order. A
 * share is a stream of its own, so event ids are unique within an instance,
 * which is all that idempotency asks.
 */
static int shard_frames(const struct gen_stream *s, const uint32_t *hash, size_t n, struct frames *f,
			struct herr *err)
{
	struct gen_stream part = *s;
	int rc = -1;

	if (!(part.ev = malloc((s->n ? s->n : 1) * sizeof(*part.ev))))
		return herr_set(err, HERR_NOMEM, "bench, out of memory");
	for (size_t k = 0; k < n; k++) {
		part.n = 0;
		for (size_t i = 0; i < s->n; i++)
			if (hash[s->ev[i].cust] % n == k)
				part.ev[part.n++] = s->ev[i];
		if (frames_make(&f[k], &part, BATCH, err) < 0)
			goto out;
	}
	rc = 0;
out:
	free(part.ev);
	return rc;
}

/* ---- the instances ------------------------------------------------------------- */

static int start_all(struct daemon *d, size_t n, int64_t at, struct herr *err)
{
	char name[48];

	for (size_t k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "shard%zu-%zu", n, k);
		if (daemon_start(&d[k], name, err) < 0 || daemon_clock_set(&d[k], at, err) < 0)
			return -1;
	}
	return 0;
}

static void stop_all(struct daemon *d, size_t n, int remove)
{
	for (size_t k = 0; k < n; k++) {
		daemon_stop(&d[k]);
		if (remove && d[k].dir[0])
			rm_rf(d[k].dir);
	}
}

static double cpu_all(struct daemon *d, size_t n)
{
	double s = 0;

	for (size_t k = 0; k < n; k++)
		s += daemon_cpu_seconds(&d[k]);
	return s;
}

/* ---- concurrent ingest ------------------------------------------------------------ */

struct sender {
	void *zctx;
	const char *endpoint;
	const struct frames *f;
	struct ingest_result res;
	double t0, t1;
	int rc;
	struct herr err;
};

static void *send_share(void *arg)
{
	struct sender *s = arg;

	s->t0 = now_s();
	s->rc = produce(s->zctx, s->endpoint, s->f, 0, s->f->n, INFLIGHT, 0, 0, &s->res, &s->err);
	s->t1 = now_s();
	return NULL;
}

/* The first failure among the senders, or one that got fewer acceptances than events. */
static int senders_verdict(const struct sender *s, size_t n, struct herr *err)
{
	for (size_t k = 0; k < n; k++) {
		if (s[k].rc < 0)
			return herr_set(err, s[k].err.code, "%s (instance %zu)", s[k].err.msg, k);
		if (s[k].res.accepted != s[k].res.events)
			return herr_set(err, HERR_IO, "bench, instance %zu accepted %zu of %zu events", k,
					s[k].res.accepted, s[k].res.events);
	}
	return 0;
}

/*
 * Every share at once, one thread per instance. The threads start within
 * microseconds of each other, a skew the seconds of ingest make negligible:
 * the rate is all events over first start to last reply.
 */
static int send_all(struct bench *b, struct daemon *d, const struct frames *f, size_t n, int c,
		    struct herr *err)
{
	struct sender s[SHARD_MAX] = { 0 };
	pthread_t th[SHARD_MAX];
	size_t started = 0, events = 0;
	double cpu_d = cpu_all(d, n), cpu_p = cpu_self_s(), first, last;

	for (; started < n; started++) {
		s[started] = (struct sender){ .zctx = b->zctx, .endpoint = d[started].ingest, .f = &f[started] };
		if (pthread_create(&th[started], NULL, send_share, &s[started]) != 0) {
			herr_set(err, HERR_IO, "bench, cannot start a producer thread");
			break;
		}
	}
	for (size_t k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	if (started < n || senders_verdict(s, n, err) < 0)
		return -1;
	cpu_d = cpu_all(d, n) - cpu_d;
	cpu_p = cpu_self_s() - cpu_p;
	first = s[0].t0;
	last = s[0].t1;
	for (size_t k = 0; k < n; k++) {
		events += s[k].res.events;
		first = s[k].t0 < first ? s[k].t0 : first;
		last = s[k].t1 > last ? s[k].t1 : last;
		say("instance %zu: %zu events in %.2f s = %.0f events/s", k, s[k].res.events, s[k].res.seconds,
		    (double)s[k].res.events / s[k].res.seconds);
	}
	fig_add(&b->r.shard_eps[c], (double)events / (last - first));
	b->r.shard_cores[c] = (cpu_d + cpu_p) / (last - first);
	say("%zu instance(s): %zu events in %.2f s = %.0f events/s aggregate; CPU: daemons %.1f s, "
	    "producers %.1f s (%.2f cores busy)", n, events, last - first, (double)events / (last - first),
	    cpu_d, cpu_p, b->r.shard_cores[c]);
	return 0;
}

/* ---- fan-out ------------------------------------------------------------------ */

/* Rows of `customers` (filtered by `where` when given), all pages. */
static int count_customers(struct daemon *d, const char *where, uint64_t *n, struct herr *err)
{
	struct json_object *req = json_object_new_object(), *ans = NULL, *v;
	int rc = -1;

	*n = 0;
	json_object_object_add(req, "cmd", json_object_new_string("customers"));
	json_object_object_add(req, "limit", json_object_new_int(HEARTH_LIST_MAX));
	if (where)
		json_object_object_add(req, "where", json_object_new_string(where));
	for (;;) {
		if (!(ans = daemon_call(d, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), err)))
			goto out;
		if (!json_object_object_get_ex(ans, "customers", &v) || !json_object_is_type(v, json_type_array)) {
			herr_set(err, HERR_IO, "bench, customers answered without a list");
			goto out;
		}
		*n += json_object_array_length(v);
		if (!json_object_object_get_ex(ans, "cursor", &v))
			break;
		json_object_object_add(req, "cursor", json_object_get(v));
		json_object_put(ans);
		ans = NULL;
	}
	rc = 0;
out:
	json_object_put(ans);
	json_object_put(req);
	return rc;
}

/* Sums over the instances; compares them with the stream and with one instance's answer. */
static int fan_out(struct bench *b, const struct gen_stream *s, struct daemon *d, size_t n, int c,
		   struct herr *err)
{
	struct results *r = &b->r;
	uint64_t events = 0, listed, open;

	r->fanout_customers[c] = r->fanout_listed[c] = r->fanout_open[c] = 0;
	for (size_t k = 0; k < n; k++) {
		int64_t cu = daemon_status_int(&d[k], "customers", err), ev = daemon_status_int(&d[k], "events", err);
		if (cu < 0 || ev < 0 || count_customers(&d[k], NULL, &listed, err) < 0 ||
		    count_customers(&d[k], OPEN_QUERY, &open, err) < 0)
			return -1;
		say("instance %zu: %lld customers, %lld events; %llu with an open complaint", k, (long long)cu,
		    (long long)ev, (unsigned long long)open);
		r->fanout_customers[c] += (uint64_t)cu;
		r->fanout_listed[c] += listed;
		r->fanout_open[c] += open;
		events += (uint64_t)ev;
	}
	r->shard_generated = s->customers_seen;
	if (r->fanout_customers[c] != s->customers_seen || r->fanout_listed[c] != s->customers_seen ||
	    events != s->n)
		return herr_set(err, HERR_IO, "bench, %zu instances hold %llu customers (%llu listed) and %llu "
				"events; generated %zu and %zu", n, (unsigned long long)r->fanout_customers[c],
				(unsigned long long)r->fanout_listed[c], (unsigned long long)events,
				s->customers_seen, s->n);
	if (c > 0 && r->fanout_open[c] != r->fanout_open[0])
		return herr_set(err, HERR_IO, "bench, '%s' summed over %zu instances is %llu, one instance says %llu",
				OPEN_QUERY, n, (unsigned long long)r->fanout_open[c],
				(unsigned long long)r->fanout_open[0]);
	say("fan-out: %llu customers summed (status and paged customers) = %zu generated; '%s': %llu",
	    (unsigned long long)r->fanout_customers[c], s->customers_seen, OPEN_QUERY,
	    (unsigned long long)r->fanout_open[c]);
	return 0;
}

/* ---- fan-in ------------------------------------------------------------------- */

/*
 * The next alert on the SUB within timeout_ms: its seq and the instance its
 * customer hashes to. 1 when one came, 0 on timeout, -1 on error.
 */
static int next_alert(void *sub, size_t n, int64_t timeout_ms, size_t *shard, int64_t *seq, struct herr *err)
{
	zmq_pollitem_t it = { sub, 0, ZMQ_POLLIN, 0 };
	struct json_object *body = NULL, *v;
	zmq_msg_t topic, msg;
	int more = 0, rc = -1;
	size_t len = sizeof(more);

	if (timeout_ms <= 0 || (rc = zmq_poll(&it, 1, (long)timeout_ms)) == 0)
		return 0;
	if (rc < 0)
		return herr_set(err, HERR_IO, "bench, polling the SUB: %s", zmq_strerror(errno));
	rc = -1;
	zmq_msg_init(&topic);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&topic, sub, 0) < 0 || zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &len) < 0 || !more ||
	    zmq_msg_recv(&msg, sub, 0) < 0) {
		herr_set(err, HERR_IO, "bench, a PUB message without its two frames");
		goto out;
	}
	body = json_parse_once(zmq_msg_data(&msg), zmq_msg_size(&msg));
	if (!json_object_object_get_ex(body, "seq", &v) || (*seq = json_object_get_int64(v)) <= 0 ||
	    !json_object_object_get_ex(body, "alert", &v) || !json_object_object_get_ex(v, "customer", &v)) {
		herr_set(err, HERR_IO, "bench, an alert without seq or alert.customer");
		goto out;
	}
	*shard = shard_of(json_object_get_string(v), n);
	rc = 1;
out:
	json_object_put(body);
	zmq_msg_close(&topic);
	zmq_msg_close(&msg);
	return rc;
}

/* A complaint three days old for a new customer of instance k: complaint_unresolved fires at once. */
static int probe(struct daemon *d, size_t k, size_t n, int round, int64_t now, struct herr *err)
{
	struct json_object *ans, *v;
	char cust[32], req[384];
	unsigned j = 0;
	int rc = -1;

	do
		snprintf(cust, sizeof(cust), "W%d-%u", round, j++);
	while (shard_of(cust, n) != k);
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"ingest\",\"events\":[{\"customer\":\"%s\",\"ts\":%lld,\"type\":\"complaint\","
		 "\"ref\":\"WK-%d\"}]}", cust, (long long)(now - 3 * MS_PER_DAY), round);
	if (!(ans = daemon_call(d, req, err)))
		return -1;
	if (json_object_object_get_ex(ans, "accepted", &v) && json_object_get_int64(v) == 1)
		rc = 0;
	else
		herr_set(err, HERR_IO, "bench, instance %zu did not accept the probe for %s", k, cust);
	json_object_put(ans);
	return rc;
}

/* Takes what arrives until quiet_ms pass without an alert. */
static int drain(void *sub, size_t n, int quiet_ms, struct herr *err)
{
	size_t shard;
	int64_t seq;
	int got;

	while ((got = next_alert(sub, n, quiet_ms, &shard, &seq, err)) > 0)
		;
	return got;
}

/*
 * A SUB joins late (ZeroMQ's slow joiner): probes go to every instance not
 * yet heard until an alert of each has come through the one SUB.
 */
static int warm_up(void *sub, struct daemon *d, size_t n, int64_t now, struct herr *err)
{
	int heard[SHARD_MAX] = { 0 };
	size_t missing = n, shard;
	int64_t seq, until;
	int got;

	for (int round = 0; round < WARMUP_ROUNDS && missing; round++) {
		for (size_t k = 0; k < n; k++)
			if (!heard[k] && probe(&d[k], k, n, round, now, err) < 0)
				return -1;
		until = mono_now_ms() + WARMUP_WAIT_MS;
		while ((got = next_alert(sub, n, until - mono_now_ms(), &shard, &seq, err)) > 0) {
			missing -= !heard[shard];
			heard[shard] = 1;
		}
		if (got < 0)
			return -1;
	}
	if (missing)
		return herr_set(err, HERR_IO, "bench, the SUB heard nothing from %zu of %zu instances", missing, n);
	return drain(sub, n, DRAIN_QUIET_MS, err);
}

/*
 * Moves every instance's clock to `at` and takes the alerts that brings.
 * clock.set answers once its tick's notifications are published, so the
 * status seq before and after bounds exactly what each instance sent.
 */
static int count_fanin(struct bench *b, void *sub, struct daemon *d, size_t n, int c, int64_t at,
		       struct herr *err)
{
	int64_t before[SHARD_MAX], after[SHARD_MAX], seq, deadline;
	size_t got[SHARD_MAX] = { 0 }, want = 0, total = 0, shard;
	int rc = 0;

	for (size_t k = 0; k < n; k++)
		if ((before[k] = daemon_status_int(&d[k], "seq", err)) < 0)
			return -1;
	for (size_t k = 0; k < n; k++) {
		if (daemon_clock_set(&d[k], at, err) < 0 || (after[k] = daemon_status_int(&d[k], "seq", err)) < 0)
			return -1;
		want += (size_t)(after[k] - before[k]);
	}
	deadline = mono_now_ms() + FANIN_TIMEOUT_MS;
	while (total < want && (rc = next_alert(sub, n, deadline - mono_now_ms(), &shard, &seq, err)) > 0) {
		if (seq > before[shard] && seq <= after[shard]) {
			got[shard]++;
			total++;
		}
	}
	if (rc < 0)
		return -1;
	b->r.fanin_published[c] = want;
	b->r.fanin_received[c] = total;
	for (size_t k = 0; k < n; k++) {
		say("fan-in: instance %zu published seq %lld..%lld (%lld), the one SUB received %zu", k,
		    (long long)before[k] + 1, (long long)after[k], (long long)(after[k] - before[k]), got[k]);
		if (got[k] != (size_t)(after[k] - before[k]))
			return herr_set(err, HERR_IO, "bench, the SUB received %zu of instance %zu's %lld alerts",
					got[k], k, (long long)(after[k] - before[k]));
	}
	return 0;
}

static int fan_in(struct bench *b, struct daemon *d, size_t n, int c, struct herr *err)
{
	void *sub = zmq_socket(b->zctx, ZMQ_SUB);
	int linger = 0, hwm = 1000000, rc = -1;

	if (!sub || zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "alert.", 6) < 0) {
		herr_set(err, HERR_IO, "bench, SUB socket: %s", zmq_strerror(errno));
		goto out;
	}
	/* one socket, several connects: ZeroMQ fair-queues what the instances publish */
	for (size_t k = 0; k < n; k++) {
		if (zmq_connect(sub, d[k].publish) < 0) {
			herr_set(err, HERR_IO, "bench, SUB to %s: %s", d[k].publish, zmq_strerror(errno));
			goto out;
		}
	}
	if (warm_up(sub, d, n, b->end_ms, err) < 0 ||
	    count_fanin(b, sub, d, n, c, b->cohort_due[0] + MS_PER_SECOND, err) < 0)
		goto out;
	rc = 0;
out:
	if (sub)
		zmq_close(sub);
	return rc;
}

/* ---- the phase -------------------------------------------------------------------- */

/* One run on fresh instances; the fan-out and fan-in checks on the first run only. */
static int shard_run(struct bench *b, const struct gen_stream *s, const struct frames *f, int c, int checks,
		     struct herr *err)
{
	size_t n = shard_counts[c];
	struct daemon *d = calloc(n, sizeof(*d));
	int rc = -1;

	if (!d)
		return herr_set(err, HERR_NOMEM, "bench, out of memory");
	if (start_all(d, n, b->end_ms, err) < 0 || send_all(b, d, f, n, c, err) < 0)
		goto out;
	for (size_t k = 0; k < n; k++)
		if (daemon_wait_flushed(&d[k], err) < 0)
			goto out;
	if (checks && (fan_out(b, s, d, n, c, err) < 0 || fan_in(b, d, n, c, err) < 0))
		goto out;
	rc = 0;
out:
	stop_all(d, n, rc == 0 && !benv.keep);
	free(d);
	return rc;
}

/* One configuration: the stream split once, then every run. */
static int shard_config(struct bench *b, const struct gen_stream *s, const uint32_t *hash, int c,
			struct herr *err)
{
	struct frames f[SHARD_MAX] = { 0 };
	int rc = -1;

	if (shard_frames(s, hash, shard_counts[c], f, err) < 0)
		goto out;
	for (size_t r = 0; r < b->sz.shard_runs; r++) {
		printf("  -- %zu instance(s), run %zu\n", shard_counts[c], r + 1);
		if (shard_run(b, s, f, c, r == 0, err) < 0)
			goto out;
	}
	rc = 0;
out:
	for (size_t k = 0; k < SHARD_MAX; k++)
		frames_free(&f[k]);
	return rc;
}

int phase_shard(struct bench *b, struct herr *err)
{
	struct gen_params p = {
		.seed = 4, .customers = b->sz.shard_customers, .events = b->sz.shard_events,
		.end_ms = b->end_ms, .span_ms = 365 * MS_PER_DAY, .id_prefix = 's', .cust_prefix = "C",
		.ncohorts = 1, .cohort_frac = 0.01,
	};
	struct gen_stream s = { 0 };
	uint32_t *hash = NULL;
	int rc = -1;

	memcpy(p.cohort_due, b->cohort_due, sizeof(p.cohort_due));
	printf("\n== sharded by FNV-1a(customer) %% N: %zu customers, %zu events into 1, 2 and 4 instances\n",
	       p.customers, p.events);
	if (gen_stream_make(&s, &p, err) < 0 || !(hash = customer_hashes(&s, err)))
		goto out;
	for (int c = 0; c < SHARD_CONFIGS; c++)
		if (shard_config(b, &s, hash, c, err) < 0)
			goto out;
	rc = 0;
out:
	free(hash);
	gen_stream_free(&s);
	return rc;
}
