/*
 * The measurements, phase by phase. Each phase starts its own hearthd on a
 * fresh store, measures through the real sockets, and stops it; baselines run
 * between hearth's runs on the same events, so that a noisy moment of the
 * machine hits both sides of a ratio.
 *
 *   phase_ingest  durable ingest over ZeroMQ vs raw LMDB vs SQLite; then, on
 *                 the loaded store: ingest → alert latency, `customer` latency
 *                 idle and beside a paced ingest, store bytes per event
 *   phase_import  `hearthctl import` of a CSV; then ticks and a full
 *                 re-evaluation on that (smaller) store
 *   phase_big     the big store: ticks, re-evaluation with ping latency, RSS,
 *                 and the default rules as SQL over the same events
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "hearth/ctlclient.h"
#include "hearth/units.h"

#define BATCH        1000
#define INFLIGHT     8
#define REEVAL_TIMEOUT_S 900
#define IMPORT_TIMEOUT_S 900
#define SQL_LIMIT_S      120   /* the rules as SQL stop here and count as at least this */

static void pause_ms(int ms)
{
	poll(NULL, 0, ms);
}

static double mib(double bytes)
{
	return bytes / (1024.0 * 1024.0);
}

/* ---- shared steps ------------------------------------------------------------ */

/*
 * *eps: acknowledged (durable) events per second. *indexed_eps: the same
 * events over the time until the flush also wrote their derived state, which
 * a flush may finish after the last reply (up to the backlog limit behind).
 */
static int ingest_all(struct bench *b, struct daemon *d, const struct frames *f, double *eps,
		      double *indexed_eps, struct herr *err)
{
	struct ingest_result res;
	double cpu = daemon_cpu_seconds(d), cpu_all, t_acked;
	uint64_t faults = daemon_minor_faults(d);

	if (produce(b->zctx, d->ingest, f, 0, f->n, INFLIGHT, 0, 0, &res, err) < 0)
		return -1;
	t_acked = now_s();
	cpu_all = daemon_cpu_seconds(d);
	cpu = cpu_all - cpu;
	uint64_t faults_now = daemon_minor_faults(d);
	faults = faults_now > faults ? faults_now - faults : 0; /* 0: the count could not be read */
	if (daemon_wait_flushed(d, err) < 0)
		return -1;
	double tail = now_s() - t_acked;
	cpu_all = cpu + daemon_cpu_seconds(d) - cpu_all;
	double flushes = daemon_metric(d, "hearth_store_flushes_total", err);
	double flush_s = daemon_metric(d, "hearth_store_flush_seconds_total", err);
	double groups = daemon_metric(d, "hearth_ingest_groups_total", err);
	say("hearthd: %.0f commits (groups) of %.0f events on average; %.0f flushes of derived state, "
	    "hearth_store_flush_seconds_total %.1f s", groups, (double)res.events / groups, flushes, flush_s);
	say("hearthd used %.1f s of CPU in %.1f s of ingest (%.0f%% of a core; %.1f µs per event); "
	    "%llu minor page faults", cpu, res.seconds, 100 * cpu / res.seconds, 1e6 * cpu / (double)res.events,
	    (unsigned long long)faults);
	say("everything flushed %.1f s after the last reply: %.0f events/s until indexed; %.1f µs of CPU "
	    "per event, flush included", tail, (double)res.events / (res.seconds + tail),
	    1e6 * cpu_all / (double)res.events);
	if (indexed_eps)
		*indexed_eps = (double)res.events / (res.seconds + tail);
	if (res.accepted != res.events)
		return herr_set(err, HERR_IO, "bench, %zu of %zu events accepted (%zu duplicates, %zu rejected)",
				res.accepted, res.events, res.duplicates, res.rejected);
	*eps = (double)res.events / res.seconds;
	return 0;
}

static int store_counts(struct daemon *d, uint64_t *customers, uint64_t *events, struct herr *err)
{
	int64_t c = daemon_status_int(d, "customers", err), e = daemon_status_int(d, "events", err);

	if (c < 0 || e < 0)
		return -1;
	*customers = (uint64_t)c;
	*events = (uint64_t)e;
	return 0;
}

/* Round trip of one control request, in microseconds; -1 on failure. */
static double round_trip_us(struct ctl_client *cc, const char *req, struct herr *err)
{
	const char *line;
	size_t len;
	int64_t t0 = mono_now_us();

	if (ctl_send(cc, req, strlen(req), err) < 0 || ctl_recv(cc, &line, &len, 300000, err) != 0)
		return -1;
	int64_t t1 = mono_now_us();
	if (!strstr(line, "\"ok\":true")) {
		herr_set(err, HERR_IO, "bench, %s answered %.200s", req, line);
		return -1;
	}
	return (double)(t1 - t0);
}

/*
 * Ticks: before cohort k's due time, `ticks` clock.advance by 1 ms (nothing
 * due) timed by their round trip; then the clock moves just past the due
 * time, where the cohort (1% of the customers) comes due.
 */
static int measure_ticks(struct bench *b, struct daemon *d, int which, size_t cohorts, struct herr *err)
{
	double *s = calloc(b->sz.ticks, sizeof(*s));
	char req[128];
	int rc = -1;

	if (!s)
		return herr_set(err, HERR_NOMEM, "bench, out of memory");
	for (size_t k = 0; k < cohorts && k < b->sz.runs; k++) {
		struct json_object *ans, *v;
		int64_t most = 0;
		/* catch up to just before the cohort, then let the evaluated customers be flushed:
		 * the 1 ms ticks are measured on a loaded store at rest */
		if (daemon_clock_set(d, b->cohort_due[k] - 10 * MS_PER_SECOND, err) < 0 ||
		    daemon_wait_flushed(d, err) < 0)
			goto out;
		pause_ms(2000);         /* held customers go with the next flush, due within 1 s */
		for (size_t i = 0; i < b->sz.ticks; i++) {
			int64_t t0 = mono_now_us();
			if (!(ans = daemon_call(d, "{\"cmd\":\"clock.advance\",\"by\":\"1ms\"}", err)))
				goto out;
			s[i] = (double)(mono_now_us() - t0) / 1000.0;
			if (json_object_object_get_ex(ans, "evaluated", &v) && json_object_get_int64(v) > most)
				most = json_object_get_int64(v);
			json_object_put(ans);
		}
		sort_doubles(s, b->sz.ticks);
		fig_add(&b->r.tick_idle[which], pct(s, b->sz.ticks, 50));
		if (s[b->sz.ticks - 1] > b->r.tick_idle_max[which])
			b->r.tick_idle_max[which] = s[b->sz.ticks - 1];
		say("tick, nothing due (run %zu): median %.3f ms, min %.3f, max %.3f over %zu; at most %lld evaluated",
		    k + 1, pct(s, b->sz.ticks, 50), s[0], s[b->sz.ticks - 1], b->sz.ticks, (long long)most);
		snprintf(req, sizeof(req), "{\"cmd\":\"clock.set\",\"at\":%lld}",
			 (long long)(b->cohort_due[k] + MS_PER_SECOND));
		int64_t t0 = mono_now_us();
		if (!(ans = daemon_call(d, req, err)))
			goto out;
		double ms = (double)(mono_now_us() - t0) / 1000.0;
		size_t n = json_object_object_get_ex(ans, "evaluated", &v) ? (size_t)json_object_get_int64(v) : 0;
		json_object_put(ans);
		fig_add(&b->r.tick_due[which], ms);
		b->r.tick_due_evaluated[which] = n;
		say("tick, cohort %zu due: %.2f ms, %zu customers evaluated (%.2f%%)", k + 1, ms, n,
		    100.0 * (double)n / (double)(b->r.customers[which] ? b->r.customers[which] : 1));
	}
	rc = 0;
out:
	free(s);
	return rc;
}

/* ---- re-evaluation with a pinger ------------------------------------------------- */

struct pinger {
	const char *path;
	const char *request;            /* NULL: ping */
	atomic_int stop;
	double max_ms;
	size_t n;
	double *samples;                /* round trips in ms, when samples_cap > 0 */
	size_t samples_cap;
	int failed;
	char error[256];
};

static void *ping_loop(void *arg)
{
	struct pinger *p = arg;
	struct herr err = { 0 };
	struct ctl_client *cc = ctl_connect(p->path, &err);

	if (!cc) {
		p->failed = 1;
		snprintf(p->error, sizeof(p->error), "%s", err.msg);
		return NULL;
	}
	while (!atomic_load(&p->stop)) {
		double us = round_trip_us(cc, p->request ? p->request : "{\"cmd\":\"ping\"}", &err);
		if (us < 0) {
			p->failed = 1;
			snprintf(p->error, sizeof(p->error), "%s", err.msg);
			break;
		}
		if (us / 1000.0 > p->max_ms)
			p->max_ms = us / 1000.0;
		if (p->n < p->samples_cap)
			p->samples[p->n] = us / 1000.0;
		p->n++;
		pause_ms(10);
	}
	ctl_close(cc);
	return NULL;
}

/* Touches the config, sends reload, polls status.reevaluating until false. */
static int measure_reeval(struct daemon *d, double *seconds, double *ping_max_ms, double *workers_cpu,
			  double *writer_cpu, struct herr *err)
{
	struct pinger p = { .path = d->control };
	struct json_object *ans;
	pthread_t th;
	double t0, deadline;
	int rc = -1, done = 0;

	if (pthread_create(&th, NULL, ping_loop, &p) != 0)
		return herr_set(err, HERR_IO, "bench, cannot start the pinger");
	pause_ms(50);
	*workers_cpu = -daemon_thread_cpu_seconds(d, "hearth-reeval");
	*writer_cpu = -daemon_thread_cpu_seconds(d, "hearthd");
	utimes(d->config, NULL);
	t0 = now_s();
	deadline = t0 + REEVAL_TIMEOUT_S;
	if (!(ans = daemon_call(d, "{\"cmd\":\"reload\"}", err)))
		goto out;
	json_object_put(ans);
	while (now_s() < deadline) {
		int64_t r = daemon_status_int(d, "reevaluating", err);
		if (r < 0)
			goto out;
		if (r == 0) {
			done = 1;
			break;
		}
		pause_ms(5);
	}
	*seconds = now_s() - t0;
	*workers_cpu += daemon_thread_cpu_seconds(d, "hearth-reeval");
	*writer_cpu += daemon_thread_cpu_seconds(d, "hearthd");
	if (!done) {
		herr_set(err, HERR_IO, "bench, re-evaluation still running after %d s", REEVAL_TIMEOUT_S);
		goto out;
	}
	rc = 0;
out:
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	if (rc == 0 && p.failed)
		rc = herr_set(err, HERR_IO, "bench, pinger: %s", p.error);
	*ping_max_ms = p.max_ms;
	return rc;
}

static int measure_reevals(struct bench *b, struct daemon *d, int which, struct herr *err)
{
	for (size_t r = 0; r < b->sz.runs; r++) {
		double s, ping, workers, writer;
		if (measure_reeval(d, &s, &ping, &workers, &writer, err) < 0)
			return -1;
		fig_add(&b->r.reeval_s[which], s);
		fig_add(&b->r.ping_max_ms[which], ping);
		fig_add(&b->r.reeval_workers_cpu_s[which], workers);
		fig_add(&b->r.reeval_writer_cpu_s[which], writer);
		say("full re-evaluation (run %zu): %.3f s for %llu customers (%.0f/s); ping max %.1f ms; "
		    "CPU: workers %.2f s, writer %.2f s",
		    r + 1, s, (unsigned long long)b->r.customers[which], (double)b->r.customers[which] / s, ping,
		    workers, writer);
	}
	return 0;
}

/* ---- ingest and its store -------------------------------------------------------- */

/* `customer` round trips, one every gap_ms, until n are taken or child (if any) ends. */
static int customer_latency(struct daemon *d, const struct gen_stream *s, size_t n, pid_t *child,
			    int *status, double *p50, double *p99, size_t *taken, struct herr *err)
{
	struct ctl_client *cc = ctl_connect(d->control, err);
	double *us = calloc(n, sizeof(*us));
	uint64_t seed = 42;
	char req[128], id[32];
	int rc = -1;

	*taken = 0;
	if (!cc || !us)
		goto out;
	while (*taken < n) {
		if (child && *child > 0 && waitpid(*child, status, WNOHANG) == *child) {
			*child = -1;    /* reaped: the load is over */
			break;
		}
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		const struct gen_event *e = &s->ev[(seed >> 33) % s->n];
		gen_customer_id(s, e->cust, id, sizeof(id));
		snprintf(req, sizeof(req), "{\"cmd\":\"customer\",\"id\":\"%s\"}", id);
		if ((us[*taken] = round_trip_us(cc, req, err)) < 0)
			goto out;
		(*taken)++;
		pause_ms(1);
	}
	sort_doubles(us, *taken);
	*p50 = pct(us, *taken, 50);
	*p99 = pct(us, *taken, 99);
	rc = 0;
out:
	ctl_close(cc);
	free(us);
	return rc;
}

/*
 * `alerts` with its default limit: readers render what each firing alert says
 * as they answer (a customer read per row), so its time grows with the rows.
 */
#define ALERTS_LISTINGS 20

static int alerts_listing(struct bench *b, struct daemon *d, struct herr *err)
{
	struct ctl_client *cc = ctl_connect(d->control, err);
	double ms[ALERTS_LISTINGS];
	int rc = -1;

	if (!cc)
		return -1;
	for (size_t i = 0; i < ALERTS_LISTINGS; i++) {
		double us = round_trip_us(cc, "{\"cmd\":\"alerts\"}", err);
		if (us < 0)
			goto out;
		ms[i] = us / 1000;
	}
	sort_doubles(ms, ALERTS_LISTINGS);
	b->r.alerts_list_p50_ms = pct(ms, ALERTS_LISTINGS, 50);
	b->r.alerts_list_max_ms = ms[ALERTS_LISTINGS - 1];
	if ((b->r.alerts_firing = daemon_status_int(d, "firing", err)) < 0)
		goto out;
	say("alerts (up to 1,000 of %lld firing): %d calls, p50 %.2f ms, max %.2f ms", b->r.alerts_firing,
	    ALERTS_LISTINGS, b->r.alerts_list_p50_ms, b->r.alerts_list_max_ms);
	rc = 0;
out:
	ctl_close(cc);
	return rc;
}

static int probes(struct bench *b, struct daemon *d, const struct gen_stream *s, struct herr *err)
{
	struct gen_stream load = { 0 };
	struct frames lf = { 0 };
	uint64_t customers, events;
	double *us = NULL;
	size_t n;
	pid_t child = -1;
	int rc = -1, status = 0;

	/* store size once the indexes hold everything */
	if (daemon_wait_flushed(d, err) < 0 || store_counts(d, &customers, &events, err) < 0)
		goto out;
	char split[512];
	int64_t tables = daemon_table_bytes(d, events, split, sizeof(split), err);
	if (tables < 0)
		goto out;
	b->r.bytes_per_event = (double)tables / (double)events;
	b->r.file_per_event = (double)daemon_store_bytes(d) / (double)events;
	say("store: %.1f MiB of tables but the outbox for %llu events = %.0f bytes/event (%llu customers): "
	    "%s; data.mdb %.1f MiB = %.0f bytes/event",
	    mib((double)tables), (unsigned long long)events, b->r.bytes_per_event,
	    (unsigned long long)customers, split, mib((double)daemon_store_bytes(d)), b->r.file_per_event);

	/* ingest → alert */
	if (!(us = calloc(2 * b->sz.alert_pairs, sizeof(*us))))
		goto nomem;
	if (alert_latency(b->zctx, d, b->sz.alert_pairs, us, &n, err) < 0)
		goto out;
	sort_doubles(us, n);
	b->r.alert_n = n;
	b->r.alert_p50_us = pct(us, n, 50);
	b->r.alert_p99_us = pct(us, n, 99);
	b->r.alert_max_us = us[n - 1];
	say("ingest → alert at a SUB: %zu single events, p50 %.0f µs, p99 %.0f µs, max %.0f µs", n,
	    b->r.alert_p50_us, b->r.alert_p99_us, b->r.alert_max_us);

	/* `customer`, idle */
	if (customer_latency(d, s, b->sz.queries, NULL, NULL, &b->r.cust_idle_p50_us,
			     &b->r.cust_idle_p99_us, &b->r.cust_idle_n, err) < 0)
		goto out;
	say("customer, idle: %zu calls, p50 %.0f µs, p99 %.0f µs", b->r.cust_idle_n,
	    b->r.cust_idle_p50_us, b->r.cust_idle_p99_us);
	if (alerts_listing(b, d, err) < 0)
		goto out;

	/* `customer` beside another process ingesting at load_rate */
	struct gen_params lp = s->p;
	lp.seed = s->p.seed + 1000;
	lp.id_prefix = 'b';
	lp.events = (size_t)(b->sz.load_rate * b->sz.load_seconds);
	lp.ncohorts = 0;
	if (gen_stream_make(&load, &lp, err) < 0 || frames_make(&lf, &load, BATCH, err) < 0)
		goto out;
	double t0 = now_s();
	double before = daemon_metric(d, "hearth_ingest_events_total{result=\"accepted\"}", err);
	fflush(stdout);
	child = produce_in_child(d->ingest, &lf, b->sz.load_rate, b->sz.load_seconds, 4);
	if (child < 0) {
		herr_set(err, HERR_IO, "bench, fork failed (%s)", strerror(errno));
		goto out;
	}
	pause_ms(200);                  /* let the load reach its pace */
	if (customer_latency(d, s, (size_t)(b->sz.load_seconds * 2000), &child, &status,
			     &b->r.cust_load_p50_us, &b->r.cust_load_p99_us, &b->r.cust_load_n, err) < 0)
		goto out;
	if (child > 0 && waitpid(child, &status, 0) != child)
		status = -1;
	child = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		herr_set(err, HERR_IO, "bench, the background producer failed");
		goto out;
	}
	double after = daemon_metric(d, "hearth_ingest_events_total{result=\"accepted\"}", err);
	b->r.load_eps = (after - before) / (now_s() - t0);
	say("customer, beside %.0f events/s of ingest: %zu calls, p50 %.0f µs, p99 %.0f µs",
	    b->r.load_eps, b->r.cust_load_n, b->r.cust_load_p50_us, b->r.cust_load_p99_us);
	rc = 0;
	goto out;
nomem:
	herr_set(err, HERR_NOMEM, "bench, out of memory");
out:
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	free(us);
	frames_free(&lf);
	gen_stream_free(&load);
	return rc;
}

int phase_ingest(struct bench *b, struct herr *err)
{
	struct gen_params p = {
		.seed = 1, .customers = b->sz.ingest_customers, .events = b->sz.ingest_events,
		.end_ms = b->end_ms, .span_ms = 365 * MS_PER_DAY, .id_prefix = 'a', .cust_prefix = "C",
	};
	struct gen_stream s = { 0 };
	struct frames f = { 0 };
	struct records rec = { 0 };
	struct daemon d = { 0 };
	char path[512], name[32];
	double sql_first = 0;
	int rc = -1;

	printf("\n== durable ingest: %zu customers, %zu events, batches of %d, %d in flight\n",
	       p.customers, p.events, BATCH, INFLIGHT);
	if (gen_stream_make(&s, &p, err) < 0 || frames_make(&f, &s, BATCH, err) < 0 ||
	    records_make(&rec, &s, err) < 0)
		goto out;
	b->r.json_bytes = (double)(f.bytes - (f.n - 1)) / (double)f.events;
	b->r.record_bytes = (double)rec.bytes / (double)rec.n;
	say("generated %zu events for %zu customers: %.0f bytes of JSON, %.0f-byte log records on average",
	    s.n, s.customers_seen, b->r.json_bytes, b->r.record_bytes);
	for (size_t r = 0; r < b->sz.runs; r++) {
		double h, hi, raw, sql;
		snprintf(name, sizeof(name), "ingest-%zu", r + 1);
		uint64_t w0 = 0, d0 = 0, w1 = 0, d1 = 0;
		if (daemon_start(&d, name, err) < 0 || daemon_clock_set(&d, b->end_ms, err) < 0)
			goto out;
		int io = daemon_io(&d, &w0, &d0);
		if (ingest_all(b, &d, &f, &h, &hi, err) < 0)
			goto out;
		/* the flush included: what an event costs the disk until it is fully indexed */
		if (io == 0 && daemon_io(&d, &w1, &d1) == 0) {
			fig_add(&b->r.wchar_per_event, (double)(w1 - w0) / (double)f.events);
			fig_add(&b->r.disk_per_event, (double)(d1 - d0) / (double)f.events);
			say("hearthd wrote %.0f B per event through write calls (wchar), %.0f B to storage "
			    "(write_bytes), flush included", (double)(w1 - w0) / (double)f.events,
			    (double)(d1 - d0) / (double)f.events);
		}
		if (b->ingest_only) {
			fig_add(&b->r.ingest_eps, h);
			fig_add(&b->r.indexed_eps, hi);
			say("run %zu: hearth %.0f events/s", r + 1, h);
		}
		if (r + 1 < b->sz.runs || b->ingest_only) {
			daemon_stop(&d);
			rm_rf(d.dir);
		}
		if (b->ingest_only)
			continue;
		snprintf(path, sizeof(path), "%s/raw-lmdb", benv.scratch);
		if (raw_lmdb(path, &rec, BATCH, &raw, err) < 0)
			goto out;
		/* SQLite is ten times slower than the rest: one run, whose figure serves every ratio */
		if (r == 0) {
			snprintf(path, sizeof(path), "%s/sqlite.db", benv.scratch);
			if (sqlite_ingest(path, &s, BATCH, &sql_first, err) < 0)
				goto out;
			unlink(path);
			strcat(path, "-wal");
			unlink(path);
			fig_add(&b->r.sql_eps, sql_first);
		}
		sql = sql_first;
		fig_add(&b->r.ingest_eps, h);
		fig_add(&b->r.indexed_eps, hi);
		fig_add(&b->r.raw_eps, raw);
		fig_add(&b->r.ratio_raw, h / raw);
		fig_add(&b->r.ratio_sql, h / sql);
		say("run %zu: hearth %.0f events/s, raw LMDB %.0f (ratio %.2f), SQLite %.0f (hearth %.1f×)",
		    r + 1, h, raw, h / raw, sql, h / sql);
	}
	if (b->ingest_only) {
		rc = 0;
		goto out;
	}
	printf("\n== on the loaded store: latency and size\n");
	if (probes(b, &d, &s, err) < 0)
		goto out;
	rc = 0;
out:
	daemon_stop(&d);
	if (rc == 0 && !benv.keep)
		rm_rf(d.dir);
	records_free(&rec);
	frames_free(&f);
	gen_stream_free(&s);
	return rc;
}

/* ---- backtest with a pinger --------------------------------------------------------- */

#define BACKTEST_PINGS 100000

/*
 * `backtest customer_cooling` over the store's whole year, with `ping` every
 * 10 ms on another connection: the job runs in slices, so the loop answers.
 */
static int measure_backtests(struct bench *b, struct daemon *d, struct herr *err)
{
	char req[256], from[TIME_BUF];

	time_format(b->end_ms - 366 * MS_PER_DAY, from, sizeof(from));
	snprintf(req, sizeof(req), "{\"cmd\":\"backtest\",\"rule\":\"customer_cooling\",\"from\":\"%s\"}", from);
	for (size_t r = 0; r < b->sz.runs; r++) {
		struct pinger p = { .path = d->control };
		struct json_object *ans;
		pthread_t th;
		int rc = -1;
		if (!(p.samples = calloc(BACKTEST_PINGS, sizeof(double))))
			return herr_set(err, HERR_NOMEM, "out of memory");
		p.samples_cap = BACKTEST_PINGS;
		if (pthread_create(&th, NULL, ping_loop, &p) != 0) {
			free(p.samples);
			return herr_set(err, HERR_IO, "bench, cannot start the pinger");
		}
		pause_ms(50);
		double t0 = now_s();
		ans = daemon_call(d, req, err);
		double secs = now_s() - t0;
		atomic_store(&p.stop, 1);
		pthread_join(th, NULL);
		if (ans && !p.failed) {
			size_t n = p.n < p.samples_cap ? p.n : p.samples_cap;
			sort_doubles(p.samples, n);
			fig_add(&b->r.backtest_s, secs);
			fig_add(&b->r.backtest_ping_p99_ms, n ? pct(p.samples, n, 99) : NAN);
			if (p.max_ms > b->r.backtest_ping_max_ms)
				b->r.backtest_ping_max_ms = p.max_ms;
			b->r.backtest_fired = json_object_get_int64(json_object_object_get(ans, "fired"));
			say("backtest customer_cooling over a year (run %zu): %.2f s, %lld fired; ping p99 %.2f ms, "
			    "max %.2f ms over %zu", r + 1, secs, (long long)b->r.backtest_fired,
			    n ? pct(p.samples, n, 99) : NAN, p.max_ms, n);
			rc = 0;
		} else if (ans || p.failed) {
			herr_set(err, HERR_IO, "bench, backtest: %s", p.failed ? p.error : "no answer");
		}
		json_object_put(ans);
		free(p.samples);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- import ------------------------------------------------------------------- */

#define STATUS_SAMPLES 100000

static void status_latency(struct bench *b, struct pinger *sp)
{
	size_t n = sp->n < sp->samples_cap ? sp->n : sp->samples_cap;

	if (sp->failed || n == 0) {
		say("status during the import: the prober failed (%s)", sp->error);
		return;
	}
	sort_doubles(sp->samples, n);
	b->r.status_import_p50_ms = pct(sp->samples, n, 50);
	b->r.status_import_p99_ms = pct(sp->samples, n, 99);
	b->r.status_import_max_ms = sp->samples[n - 1];
	b->r.status_import_n = n;
	say("status during the import: %zu calls, p50 %.2f ms, p99 %.2f ms, max %.2f ms", n,
	    b->r.status_import_p50_ms, b->r.status_import_p99_ms, b->r.status_import_max_ms);
}

int phase_import(struct bench *b, struct herr *err)
{
	struct gen_params p = {
		.seed = 2, .customers = b->sz.import_customers, .events = b->sz.import_rows,
		.end_ms = b->end_ms, .span_ms = 365 * MS_PER_DAY, .id_prefix = 'i', .cust_prefix = "C",
		.ncohorts = 3, .cohort_frac = 0.01,
	};
	struct gen_stream s = { 0 };
	struct daemon d = { 0 };
	char csv[512], out_path[600], hearthctl[512];
	int rc = -1;

	memcpy(p.cohort_due, b->cohort_due, sizeof(p.cohort_due));
	printf("\n== hearthctl import: %zu CSV rows, %zu customers\n", p.events, p.customers);
	snprintf(csv, sizeof(csv), "%s/import.csv", benv.scratch);
	snprintf(hearthctl, sizeof(hearthctl), "%s/hearthctl", benv.build);
	if (gen_stream_make(&s, &p, err) < 0 || gen_write_csv(&s, csv, err) < 0)
		goto out;
	for (size_t r = 0; r < b->sz.runs; r++) {
		char name[32];
		snprintf(name, sizeof(name), "import-%zu", r + 1);
		if (r > 0) {
			daemon_stop(&d);
			rm_rf(d.dir);
		}
		if (daemon_start(&d, name, err) < 0 || daemon_clock_set(&d, b->end_ms, err) < 0)
			goto out;
		snprintf(out_path, sizeof(out_path), "%s/import.out", d.dir);
		char *argv[] = { hearthctl, "-s", d.control, "import", csv, NULL };
		/* the first run also asks `status` every 10 ms: what an operator sees during an import */
		struct pinger sp = { .path = d.control, .request = "{\"cmd\":\"status\"}" };
		pthread_t th;
		int probing = 0;
		if (r == 0 && (sp.samples = calloc(STATUS_SAMPLES, sizeof(double)))) {
			sp.samples_cap = STATUS_SAMPLES;
			probing = pthread_create(&th, NULL, ping_loop, &sp) == 0;
		}
		double t0 = now_s();
		int st = run_program(argv, out_path, IMPORT_TIMEOUT_S, err);
		double secs = now_s() - t0;
		if (probing) {
			atomic_store(&sp.stop, 1);
			pthread_join(th, NULL);
			status_latency(b, &sp);
		}
		free(sp.samples);
		if (st != 0) {
			if (st > 0)
				herr_set(err, HERR_IO, "bench, hearthctl import exited %d; see %s", st, out_path);
			goto out;
		}
		if (store_counts(&d, &b->r.customers[0], &b->r.events[0], err) < 0)
			goto out;
		if (b->r.events[0] != s.n) {
			herr_set(err, HERR_IO, "bench, the import stored %llu of %zu events",
				 (unsigned long long)b->r.events[0], s.n);
			goto out;
		}
		/* a quiet load notifies each alert that holds at its end, once, and nothing else */
		b->r.import_notes = daemon_status_int(&d, "seq", err);
		b->r.import_firing = daemon_status_int(&d, "firing", err);
		if (b->r.import_notes < 0 || b->r.import_firing < 0)
			goto out;
		fig_add(&b->r.import_eps, (double)s.n / secs);
		say("run %zu: %zu rows in %.2f s = %.0f events/s", r + 1, s.n, secs, (double)s.n / secs);
	}
	/* the same rows evaluated batch by batch, once: what a quiet load spares the chat */
	{
		struct daemon live = { 0 };
		char *largv[] = { hearthctl, "-s", NULL, "import", "--live", csv, NULL };
		if (daemon_start(&live, "import-live", err) < 0 || daemon_clock_set(&live, b->end_ms, err) < 0) {
			daemon_stop(&live);
			goto out;
		}
		largv[2] = live.control;
		snprintf(out_path, sizeof(out_path), "%s/import.out", live.dir);
		double t0 = now_s();
		int st = run_program(largv, out_path, IMPORT_TIMEOUT_S, err);
		double secs = now_s() - t0;
		if (st == 0) {
			b->r.live_import_eps = (double)s.n / secs;
			b->r.live_notes = daemon_status_int(&live, "seq", err);
			b->r.live_firing = daemon_status_int(&live, "firing", err);
			say("--live: %zu rows in %.2f s = %.0f events/s; %lld notifications, %lld firing after it",
			    s.n, secs, b->r.live_import_eps, (long long)b->r.live_notes, (long long)b->r.live_firing);
		}
		daemon_stop(&live);
		if (!benv.keep)
			rm_rf(live.dir);
		if (st != 0) {
			if (st > 0)
				herr_set(err, HERR_IO, "bench, hearthctl import --live exited %d", st);
			goto out;
		}
	}
	printf("\n== ticks and re-evaluation: %llu customers, %llu events\n",
	       (unsigned long long)b->r.customers[0], (unsigned long long)b->r.events[0]);
	if (daemon_wait_flushed(&d, err) < 0 || measure_ticks(b, &d, 0, p.ncohorts, err) < 0 ||
	    measure_reevals(b, &d, 0, err) < 0 || measure_backtests(b, &d, err) < 0)
		goto out;
	rc = 0;
out:
	daemon_stop(&d);
	if (rc == 0 && !benv.keep) {
		rm_rf(d.dir);
		unlink(csv);
	}
	gen_stream_free(&s);
	return rc;
}

/* ---- the big store ------------------------------------------------------------ */

/* Firing alerts per rule, from `rules`. */
static int hearth_counts(struct daemon *d, long counts[SQL_RULES], struct herr *err)
{
	struct json_object *ans = daemon_call(d, "{\"cmd\":\"rules\"}", err), *list, *v;

	if (!ans)
		return -1;
	for (size_t i = 0; i < SQL_RULES; i++)
		counts[i] = -1;
	if (json_object_object_get_ex(ans, "rules", &list) && json_object_is_type(list, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *r = json_object_array_get_idx(list, i), *name;
			if (!json_object_object_get_ex(r, "name", &name) ||
			    !json_object_object_get_ex(r, "firing", &v))
				continue;
			for (size_t k = 0; k < SQL_RULES; k++)
				if (strcmp(json_object_get_string(name), sql_rule_names[k]) == 0)
					counts[k] = (long)json_object_get_int64(v);
		}
	}
	json_object_put(ans);
	return 0;
}

static int rules_as_sql(struct bench *b, const struct gen_stream *s, struct herr *err)
{
	char path[512];
	double t0 = now_s();

	snprintf(path, sizeof(path), "%s/rules.db", benv.scratch);
	if (sqlite_load(path, s, err) < 0)
		return -1;
	say("SQLite loaded with the same %zu events in %.1f s (not timed)", s->n, now_s() - t0);
	for (size_t r = 0; r < b->sz.runs; r++) {
		double secs;
		if (sqlite_rules(path, b->r.rules_now, SQL_LIMIT_S, &secs, b->r.sql_counts, &b->r.sql_cut,
				 err) < 0)
			return -1;
		fig_add(&b->r.sql_rules_s, secs);
		say("the default rules as SQL (run %zu): %.3f s%s", r + 1, secs,
		    b->r.sql_cut ? ": stopped at the time limit, so a lower bound" : "");
		if (secs > 20) {
			say("(one run only: it takes %.0f s)", secs);
			break;
		}
	}
	say("%-24s %10s %10s", "rule", "hearth", "SQL");
	for (size_t i = 0; i < SQL_RULES; i++)
		say("%-24s %10ld %10ld", sql_rule_names[i], b->r.hearth_counts[i], b->r.sql_counts[i]);
	if (!benv.keep)
		unlink(path);
	/* the comparison only means something if both answered the same question */
	for (size_t i = 0; i < SQL_RULES; i++)
		if (b->r.sql_counts[i] >= 0 && b->r.sql_counts[i] != b->r.hearth_counts[i])
			return herr_set(err, HERR_IO, "bench, rule %s: hearth has %ld firing, the SQL %ld",
					sql_rule_names[i], b->r.hearth_counts[i], b->r.sql_counts[i]);
	return 0;
}

int phase_big(struct bench *b, struct herr *err)
{
	struct gen_params p = {
		.seed = 3, .customers = b->sz.big_customers, .events = b->sz.big_events,
		.end_ms = b->end_ms, .span_ms = 365 * MS_PER_DAY, .id_prefix = 'g', .cust_prefix = "C",
		.ncohorts = 3, .cohort_frac = 0.01,
	};
	struct gen_stream s = { 0 };
	struct frames f = { 0 };
	struct daemon d = { 0 };
	uint64_t rss, map_rss;
	int rc = -1;

	memcpy(p.cohort_due, b->cohort_due, sizeof(p.cohort_due));
	printf("\n== big store: %zu customers, %zu events\n", p.customers, p.events);
	if (gen_stream_make(&s, &p, err) < 0 || frames_make(&f, &s, BATCH, err) < 0)
		goto out;
	if (daemon_start(&d, "big", err) < 0 || daemon_clock_set(&d, b->end_ms, err) < 0 ||
	    ingest_all(b, &d, &f, &b->r.big_ingest_eps, NULL, err) < 0 ||
	    store_counts(&d, &b->r.customers[1], &b->r.events[1], err) < 0)
		goto out;
	frames_free(&f);
	say("loaded over ZeroMQ at %.0f events/s; %llu customers, %llu events", b->r.big_ingest_eps,
	    (unsigned long long)b->r.customers[1], (unsigned long long)b->r.events[1]);
	char split[512];
	int64_t tables = daemon_table_bytes(&d, b->r.events[1], split, sizeof(split), err);
	if (tables < 0)
		goto out;
	b->r.bytes_per_event_big = (double)tables / (double)b->r.events[1];
	say("store: %.0f bytes/event in tables but the outbox: %s", (double)tables / (double)b->r.events[1], split);
	b->r.file_per_event_big = (double)daemon_store_bytes(&d) / (double)b->r.events[1];
	if (daemon_rss(&d, &rss, &map_rss, err) < 0)
		goto out;
	say("RSS after the load: %.1f MiB, of which %.1f MiB is the LMDB map", mib((double)rss),
	    mib((double)map_rss));
	if (measure_ticks(b, &d, 1, p.ncohorts, err) < 0 || measure_reevals(b, &d, 1, err) < 0)
		goto out;
	if (daemon_rss(&d, &rss, &map_rss, err) < 0)
		goto out;
	b->r.rss_mib = mib((double)(rss - map_rss));
	b->r.map_rss_mib = mib((double)map_rss);
	say("RSS after re-evaluating everyone: %.1f MiB, of which %.1f MiB is the LMDB map: %.1f MiB own",
	    mib((double)rss), b->r.map_rss_mib, b->r.rss_mib);
	say("store: tables but the outbox %.0f bytes/event; data.mdb %.1f MiB = %.0f bytes/event",
	    b->r.bytes_per_event_big, mib((double)daemon_store_bytes(&d)), b->r.file_per_event_big);
	if ((b->r.rules_now = daemon_now(&d, err)) < 0 || hearth_counts(&d, b->r.hearth_counts, err) < 0)
		goto out;
	daemon_stop(&d);
	if (!benv.keep)
		rm_rf(d.dir);
	printf("\n== the default rules as SQL over the same events (SQLite %s)\n", "WAL");
	if (rules_as_sql(b, &s, err) < 0)
		goto out;
	rc = 0;
out:
	daemon_stop(&d);
	frames_free(&f);
	gen_stream_free(&s);
	return rc;
}
