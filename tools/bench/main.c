/*
 * hearth-bench: measures the real hearthd against the budgets of issue 6 and
 * prints one table. `--quick` runs every measurement at small sizes, once (it
 * proves the bench works; timing never fails it); the default full mode runs
 * the sizes of the budgets, three times where that is feasible.
 *
 * Exit status: 0 when every measurement ran (whatever the timings), 1 when
 * something failed to run, 2 on usage errors.
 *
 * Besides the table, the figures that depend on the store's size go to
 * bench-scaling.dat beside hearthd (and scaling.dat in the scratch
 * directory): `make bench-plot` draws docs/perf-scaling.svg from it.
 */
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "hearth/units.h"

static const struct sizes quick = {
	.mode = "quick",
	.ingest_customers = 20000, .ingest_events = 200000,
	.import_customers = 10000, .import_rows = 100000,
	.big_customers = 40000, .big_events = 160000,
	.runs = 1, .ticks = 20, .alert_pairs = 100, .queries = 500,
	.load_rate = 100000, .load_seconds = 2,
	.shard_customers = 20000, .shard_events = 200000, .shard_runs = 1,
};

static const struct sizes full = {
	.mode = "full",
	.ingest_customers = 200000, .ingest_events = 2000000,
	.import_customers = 100000, .import_rows = 1000000,
	.big_customers = 1000000, .big_events = 3000000,
	.runs = 3, .ticks = 20, .alert_pairs = 500, .queries = 2000,
	.load_rate = 100000, .load_seconds = 10,
	.shard_customers = 200000, .shard_events = 1000000, .shard_runs = 1,
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hearth-bench [--quick] [--build DIR] [--rules FILE] [--scratch DIR] [--keep]\n"
		"  --quick         small sizes, one run: proves the bench works (never fails on timing)\n"
		"  --build DIR     where hearthd and hearthctl are (default: this program's directory)\n"
		"  --rules FILE    config whose events, priority and rules are used (default etc/hearth.yaml)\n"
		"  --scratch DIR   parent of the scratch directory (default /tmp)\n"
		"  --keep          keep the scratch stores and logs\n"
		"  --phases LIST   a subset of ingest,import,big,shard,cluster (the table then has gaps);\n"
		"                  ingest-only: hearth's ingest alone, for experiments\n"
		"  --runs N        repeat each measurement N times (default: 3 full, 1 quick)\n"
		"environment: HEARTH_BENCH_WRAP=\"perf record -g -o FILE\" runs hearthd under a profiler\n");
}

static const char *count(double n, char *buf, size_t size)
{
	if (n >= 1e6 && (long long)n % 1000000 == 0)
		snprintf(buf, size, "%.0fM", n / 1e6);
	else if (n >= 1e3 && (long long)n % 1000 == 0)
		snprintf(buf, size, "%.0fk", n / 1e3);
	else
		snprintf(buf, size, "%.0f", n);
	return buf;
}

/* The rows of phase_shard (docs/SCALING.md), when it ran. */
static void report_shard(const struct bench *b)
{
	const struct results *r = &b->r;
	const int last = SHARD_CONFIGS - 1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char f[128], a[16], c[16], note[256];

	if (r->shard_eps[0].n == 0)
		return;
	for (int i = 0; i < SHARD_CONFIGS; i++) {
		if (i == 0)
			snprintf(f, sizeof(f), "sharded ingest, 1 instance, %s customers / %s events",
				 count((double)b->sz.shard_customers, a, sizeof(a)),
				 count((double)b->sz.shard_events, c, sizeof(c)));
		else
			snprintf(f, sizeof(f), "sharded ingest, %zu instances by FNV-1a %% %zu, aggregate",
				 shard_counts[i], shard_counts[i]);
		snprintf(note, sizeof(note), "%.2f× one instance; %.2f of %ld CPUs busy (daemons + producers)",
			 fig_median(&r->shard_eps[i]) / fig_median(&r->shard_eps[0]), r->shard_cores[i], cpus);
		table_add(f, fig_median(&r->shard_eps[i]), "%.0f", "events/s", INFO, 0, note);
	}
	if (r->shard_generated == 0)
		return;
	snprintf(f, sizeof(f), "fan-in: alerts at one SUB connected to %zu instances", shard_counts[last]);
	snprintf(note, sizeof(note), "each instance's seq range received whole: %zu published in all",
		 r->fanin_published[last]);
	table_add(f, (double)r->fanin_received[last], "%.0f", "alerts", INFO, 0, note);
	snprintf(f, sizeof(f), "fan-out: status customers summed over %zu instances", shard_counts[last]);
	snprintf(note, sizeof(note), "generated %llu; paged customers %llu; open(complaint) > 0: %llu summed, "
		 "%llu on one instance", (unsigned long long)r->shard_generated,
		 (unsigned long long)r->fanout_listed[last], (unsigned long long)r->fanout_open[last],
		 (unsigned long long)r->fanout_open[0]);
	table_add(f, (double)r->fanout_customers[last], "%.0f", "customers", INFO, 0, note);
}

/* The rows of phase_cluster (docs/SCALING.md §8), when it ran. */
static void report_cluster(const struct bench *b)
{
	const struct results *r = &b->r;
	char f[160], a[16], note[256];

	if (r->cluster_events == 0)
		return;
	snprintf(f, sizeof(f), "cluster ingest: 3-node R3 JetStream into 2 shards, %s events, %d per message",
		 count((double)r->cluster_events, a, sizeof(a)), 100);
	snprintf(note, sizeof(note), "applied by the shards; PubAcks alone %.0f/s; %.2f× one hearthd over ZeroMQ",
		 r->cluster_acked_eps, r->cluster_eps / r->cluster_zmq_eps);
	table_add(f, r->cluster_eps, "%.0f", "events/s", AT_LEAST, 100000, note);
	table_add("the same events, one hearthd over ZeroMQ (same run)", r->cluster_zmq_eps, "%.0f", "events/s",
		  INFO, 0, NULL);
	snprintf(note, sizeof(note), "%zu samples, one at a time; p50 %.2f ms", r->cluster_alert_n,
		 r->cluster_alert_p50_ms);
	table_add("cluster: event -> alert in HEARTH_ALERTS, p99", r->cluster_alert_p99_ms, "%.2f", "ms",
		  AT_MOST, 20, note);
	snprintf(note, sizeof(note), "%zu calls at rest; p50 %.2f ms", r->cluster_query_n, r->cluster_query_p50_ms);
	table_add("cluster: customer via NATS to its shard, p99", r->cluster_query_p99_ms, "%.2f", "ms", AT_MOST, 5,
		  note);
	snprintf(note, sizeof(note), "one event per message, synchronous; %zu acked, all applied",
		 r->cluster_stall_acked);
	table_add("cluster: stall after kill -9 of the stream leader", r->cluster_stall_ms, "%.0f", "ms", INFO, 0,
		  note);
}

static void report(const struct bench *b)
{
	const struct results *r = &b->r;
	const struct sizes *z = &b->sz;
	char f[128], a[16], c[16], note[256];

	printf("\n== results (%s mode; medians of %zu run(s), min–max above)\n", z->mode, z->runs);
	snprintf(f, sizeof(f), "durable ingest over ZeroMQ, %s customers / %s events",
		 count((double)z->ingest_customers, a, sizeof(a)), count((double)z->ingest_events, c, sizeof(c)));
	table_add(f, fig_median(&r->ingest_eps), "%.0f", "events/s", AT_LEAST, 200000, NULL);
	table_add("the same until every event is also indexed (flush done)", fig_median(&r->indexed_eps), "%.0f",
		  "events/s", INFO, 0, NULL);
	table_add("raw LMDB append loop (same events, same run)", fig_median(&r->raw_eps), "%.0f",
		  "events/s", INFO, 0, NULL);
	table_add("hearth / raw LMDB", fig_median(&r->ratio_raw), "%.2f", "", AT_LEAST, 0.25, NULL);
	table_add("SQLite WAL synchronous=FULL (same events, run 1 only)", fig_median(&r->sql_eps), "%.0f",
		  "events/s", INFO, 0, NULL);
	table_add("hearth / SQLite", fig_median(&r->ratio_sql), "%.1f", "×", AT_LEAST, 10, NULL);
	snprintf(f, sizeof(f), "hearthctl import, %s CSV rows", count((double)z->import_rows, a, sizeof(a)));
	table_add(f, fig_median(&r->import_eps), "%.0f", "events/s", AT_LEAST, 100000, NULL);
	snprintf(note, sizeof(note), "%zu calls, every 10 ms; p50 %.2f ms, max %.2f ms", r->status_import_n,
		 r->status_import_p50_ms, r->status_import_max_ms);
	table_add("status during that import, p99", r->status_import_p99_ms, "%.2f", "ms", INFO, 0, note);
	snprintf(note, sizeof(note), "%lld notifications, %lld alerts firing after it", (long long)r->live_notes,
		 (long long)r->live_firing);
	table_add("the same rows with import --live", r->live_import_eps > 0 ? r->live_import_eps : NAN, "%.0f",
		  "events/s", INFO, 0, note);
	snprintf(f, sizeof(f), "backtest of one rule over that store's year (%s customers)",
		 count((double)z->import_customers, a, sizeof(a)));
	snprintf(note, sizeof(note), "customer_cooling, %lld fired; ping max %.1f ms",
		 (long long)r->backtest_fired, r->backtest_ping_max_ms);
	table_add(f, fig_median(&r->backtest_s), "%.2f", "s", AT_MOST, 10, note);
	table_add("ping during that backtest, p99", fig_max(&r->backtest_ping_p99_ms), "%.2f", "ms", AT_MOST, 5,
		  NULL);
	snprintf(note, sizeof(note), "%lld notifications, %lld alerts firing after the import",
		 (long long)r->import_notes, (long long)r->import_firing);
	table_add("notifications of that import / alerts firing after it",
		  r->import_firing > 0 ? (double)r->import_notes / (double)r->import_firing : NAN, "%.2f", "×",
		  AT_MOST, 1.0, note);
	for (int w = 0; w < 2; w++) {
		const char *who = count((double)r->customers[w], a, sizeof(a));
		snprintf(f, sizeof(f), "tick, nothing due, %s customers", who);
		snprintf(note, sizeof(note), "clock.advance 1ms round trip; slowest of all %.3f ms",
			 r->tick_idle_max[w]);
		table_add(f, fig_median(&r->tick_idle[w]), "%.3f", "ms", w ? AT_MOST : INFO, 1, note);
	}
	table_add("tick, nothing due: big / small store", fig_median(&r->tick_idle[1]) /
		  (fig_median(&r->tick_idle[0]) > 0 ? fig_median(&r->tick_idle[0]) : 1), "%.2f", "×",
		  AT_MOST, 2, NULL);
	for (int w = 0; w < 2; w++) {
		snprintf(f, sizeof(f), "tick, 1%% due, %s customers", count((double)r->customers[w], a, sizeof(a)));
		snprintf(note, sizeof(note), "%zu customers evaluated", r->tick_due_evaluated[w]);
		table_add(f, fig_median(&r->tick_due[w]), "%.1f", "ms", w ? AT_MOST : INFO, 100, note);
	}
	for (int w = 0; w < 2; w++) {
		snprintf(f, sizeof(f), "full re-evaluation after reload, %s customers",
			 count((double)r->customers[w], a, sizeof(a)));
		table_add(f, fig_median(&r->reeval_s[w]), "%.2f", "s", w ? AT_MOST : INFO, 2, NULL);
	}
	snprintf(note, sizeof(note), "writer %.2f s", fig_median(&r->reeval_writer_cpu_s[1]));
	table_add("CPU of the re-evaluation workers, big store", fig_median(&r->reeval_workers_cpu_s[1]), "%.2f", "s",
		  INFO, 0, note);
	/* issue 14's budget: the control thread answers while both cores re-evaluate */
	table_add("ping during re-evaluation (max), big store", fig_max(&r->ping_max_ms[1]), "%.1f", "ms",
		  AT_MOST, 5, NULL);
	snprintf(note, sizeof(note), "SQL %s%.2f s vs hearth %.2f s%s", r->sql_cut ? "≥ " : "",
		 fig_median(&r->sql_rules_s), fig_median(&r->reeval_s[1]),
		 r->sql_cut ? " (SQL stopped at its time limit: the ratio is a lower bound)" : "");
	table_add("default rules as SQL in SQLite / hearth re-evaluation",
		  fig_median(&r->sql_rules_s) / fig_median(&r->reeval_s[1]), "%.1f", "×", AT_LEAST, 10, note);
	table_add("ingest → alert at SUB, p50", r->alert_p50_us / 1000, "%.2f", "ms", AT_MOST, 1, NULL);
	table_add("ingest → alert at SUB, p99", r->alert_p99_us / 1000, "%.2f", "ms", AT_MOST, 5, NULL);
	table_add("customer, p99, idle", r->cust_idle_p99_us / 1000, "%.3f", "ms", AT_MOST, 0.5, NULL);
	snprintf(note, sizeof(note), "of %lld firing, each rendered as read; max %.2f ms", r->alerts_firing,
		 r->alerts_list_max_ms);
	table_add("alerts, up to 1,000 firing rows, p50", r->alerts_list_p50_ms, "%.2f", "ms", INFO, 0, note);
	snprintf(f, sizeof(f), "customer, p99, beside ~%s events/s ingest", count(z->load_rate, a, sizeof(a)));
	snprintf(note, sizeof(note), "achieved %.0f events/s", r->load_eps);
	table_add(f, r->cust_load_p99_us / 1000, "%.3f", "ms", AT_MOST, 5, note);
	snprintf(f, sizeof(f), "daemon RSS minus LMDB map, %s customers", count((double)r->customers[1], a, sizeof(a)));
	snprintf(note, sizeof(note), "the data.mdb mapping's own Rss was %.1f MiB", r->map_rss_mib);
	table_add(f, r->rss_mib, "%.1f", "MiB", AT_MOST, 150, note);
	snprintf(note, sizeof(note), "to storage (write_bytes): %.0f B", fig_median(&r->disk_per_event));
	table_add("bytes written per ingested event (wchar, flush included)", fig_median(&r->wchar_per_event),
		  "%.0f", "B", AT_MOST, 500, note);
	snprintf(f, sizeof(f), "store bytes per event (%s events; tables, outbox apart)",
		 count((double)z->ingest_events, a, sizeof(a)));
	table_add(f, r->bytes_per_event, "%.0f", "B", AT_MOST, 200, NULL);
	table_add("the same: data.mdb on disk per event (outbox, free pages)", r->file_per_event, "%.0f", "B",
		  INFO, 0, NULL);
	snprintf(f, sizeof(f), "store bytes per event (big store; tables, outbox apart)");
	table_add(f, r->bytes_per_event_big, "%.0f", "B", INFO, 0, NULL);
	table_add("the same: data.mdb on disk per event (big store)", r->file_per_event_big, "%.0f", "B", INFO, 0,
		  NULL);
	snprintf(f, sizeof(f), "ingest over ZeroMQ into the big store");
	table_add(f, r->big_ingest_eps, "%.0f", "events/s", INFO, 0, NULL);
	report_shard(b);
	report_cluster(b);
	table_print();
	if (z->runs > 1) {
		char t[128];
		printf("\nspreads (median (min–max)):\n");
		printf("  ingest %s events/s; raw LMDB %s; SQLite %s\n",
		       fig_text(&r->ingest_eps, "%.0f", t, sizeof(t)), fig_text(&r->raw_eps, "%.0f", f, sizeof(f)),
		       fig_text(&r->sql_eps, "%.0f", note, sizeof(note)));
		printf("  hearth/raw %s; hearth/SQLite %s\n", fig_text(&r->ratio_raw, "%.2f", t, sizeof(t)),
		       fig_text(&r->ratio_sql, "%.1f", f, sizeof(f)));
		printf("  import %s events/s\n", fig_text(&r->import_eps, "%.0f", t, sizeof(t)));
		for (int w = 0; w < 2; w++)
			printf("  store %d: tick idle %s ms; tick 1%% %s ms; re-evaluation %s s\n", w,
			       fig_text(&r->tick_idle[w], "%.3f", t, sizeof(t)),
			       fig_text(&r->tick_due[w], "%.1f", f, sizeof(f)),
			       fig_text(&r->reeval_s[w], "%.2f", note, sizeof(note)));
		printf("  rules as SQL %s s\n", fig_text(&r->sql_rules_s, "%.2f", t, sizeof(t)));
	}
}

/* ---- the growth data ------------------------------------------------------------ */

/* One store the run measured; NaN where that store had no such figure. */
struct scaling_row {
	const char *store;
	double customers, events, tick_idle_ms, tick_due_ms, reeval_s, ingest_eps, import_eps;
};

static int by_customers(const void *a, const void *b)
{
	const struct scaling_row *x = a, *y = b;
	return (x->customers > y->customers) - (x->customers < y->customers);
}

/* Up to three rows (the import's store, the ingest's, the big one), smallest first. */
static size_t scaling_rows(const struct bench *b, struct scaling_row rows[3])
{
	const struct results *r = &b->r;
	size_t n = 0;

	if (r->customers[0])
		rows[n++] = (struct scaling_row){ "import", (double)r->customers[0], (double)r->events[0],
			fig_median(&r->tick_idle[0]), fig_median(&r->tick_due[0]),
			fig_median(&r->reeval_s[0]), NAN, fig_median(&r->import_eps) };
	if (r->ingest_eps.n)
		rows[n++] = (struct scaling_row){ "ingest", (double)b->sz.ingest_customers,
			(double)b->sz.ingest_events, NAN, NAN, NAN, fig_median(&r->ingest_eps), NAN };
	if (r->customers[1])
		rows[n++] = (struct scaling_row){ "big", (double)r->customers[1], (double)r->events[1],
			fig_median(&r->tick_idle[1]), fig_median(&r->tick_due[1]),
			fig_median(&r->reeval_s[1]), r->big_ingest_eps, NAN };
	qsort(rows, n, sizeof(*rows), by_customers);
	return n;
}

/* "NaN" whatever the C library's spelling, so gnuplot's `set datafile missing` matches it. */
static void put_value(FILE *f, double v)
{
	if (isnan(v))
		fputs(" NaN", f);
	else
		fprintf(f, " %.6g", v);
}

static int write_scaling_file(const char *path, const char *mode, const struct scaling_row *rows, size_t n,
			      struct herr *err)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return herr_set(err, HERR_IO, "bench, cannot create '%s'", path);
	fprintf(f, "# hearth-bench growth figures, one row per store (tools/bench/plot.sh draws them)\n"
		"# mode: %s\n"
		"# store customers events tick_idle_ms tick_due_ms reeval_s ingest_eps import_eps\n", mode);
	for (size_t i = 0; i < n; i++) {
		fputs(rows[i].store, f);
		put_value(f, rows[i].customers);
		put_value(f, rows[i].events);
		put_value(f, rows[i].tick_idle_ms);
		put_value(f, rows[i].tick_due_ms);
		put_value(f, rows[i].reeval_s);
		put_value(f, rows[i].ingest_eps);
		put_value(f, rows[i].import_eps);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		return herr_set(err, HERR_IO, "bench, writing '%s' failed", path);
	return 0;
}

/*
 * scaling.dat in the scratch directory and bench-scaling.dat beside hearthd;
 * a run that measured no store (--phases shard) leaves the last one alone.
 */
static int write_scaling(const struct bench *b, struct herr *err)
{
	struct scaling_row rows[3];
	size_t n = scaling_rows(b, rows);
	char path[512];

	if (n == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/scaling.dat", benv.scratch);
	if (write_scaling_file(path, b->sz.mode, rows, n, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/bench-scaling.dat", benv.build);
	if (write_scaling_file(path, b->sz.mode, rows, n, err) < 0)
		return -1;
	printf("\ngrowth figures written to %s (make bench-plot draws docs/perf-scaling.svg)\n", path);
	return 0;
}

/* The table's single figures start as NaN, so a phase that did not run shows "not run". */
static void not_measured(struct results *r)
{
	double *single[] = { &r->alert_p50_us, &r->alert_p99_us, &r->cust_idle_p99_us, &r->alerts_list_p50_ms,
			     &r->cust_load_p99_us, &r->status_import_p99_ms, &r->rss_mib,
			     &r->bytes_per_event, &r->bytes_per_event_big, &r->file_per_event,
			     &r->file_per_event_big, &r->big_ingest_eps };

	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
		*single[i] = NAN;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "build", required_argument, NULL, 'b' },
		{ "rules", required_argument, NULL, 'r' },
		{ "scratch", required_argument, NULL, 's' },
		{ "keep", no_argument, NULL, 'k' },
		{ "phases", required_argument, NULL, 'p' },
		{ "runs", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct bench b;
	const char *scratch_parent = "/tmp", *phases = "ingest,import,big,shard,cluster";
	char self[512];
	struct herr err = { 0 };
	double t0 = now_s();
	size_t runs = 0;
	int opt, rc = 1;

	b.sz = full;
	not_measured(&b.r);
	snprintf(self, sizeof(self), "%s", argv[0]);
	benv.build = dirname(self);
	benv.rules_from = "etc/hearth.yaml";
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'q': b.sz = quick; break;
		case 'b': benv.build = optarg; break;
		case 'r': benv.rules_from = optarg; break;
		case 's': scratch_parent = optarg; break;
		case 'k': benv.keep = 1; break;
		case 'p': phases = optarg; break;
		case 'n': runs = strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || runs > RUNS_MAX) {
		usage(stderr);
		return 2;
	}
	if (runs)
		b.sz.runs = runs;
	signal(SIGPIPE, SIG_IGN);
	snprintf(benv.scratch, sizeof(benv.scratch), "%s/hearth-bench.%d", scratch_parent, (int)getpid());
	if (mkdir(benv.scratch, 0700) < 0) {
		fprintf(stderr, "hearth-bench: cannot create %s\n", benv.scratch);
		return 1;
	}
	/* a fixed "now" so that every run generates the same year; cohorts come due after it */
	time_parse_rfc3339("2026-10-01T00:00:00Z", 20, &b.end_ms);
	for (int k = 0; k < GEN_COHORTS_MAX; k++)
		b.cohort_due[k] = b.end_ms + (k + 1) * MS_PER_HOUR;
	b.zctx = zmq_ctx_new();
	printf("hearth-bench, %s mode; scratch %s; hearthd from %s; rules from %s\n", b.sz.mode,
	       benv.scratch, benv.build, benv.rules_from);
	b.ingest_only = strstr(phases, "ingest-only") != NULL;
	if ((strstr(phases, "ingest") && phase_ingest(&b, &err) < 0) ||
	    (strstr(phases, "import") && phase_import(&b, &err) < 0) ||
	    (strstr(phases, "big") && phase_big(&b, &err) < 0) ||
	    (strstr(phases, "shard") && phase_shard(&b, &err) < 0) ||
	    (strstr(phases, "cluster") && phase_cluster(&b, &err) < 0)) {
		fprintf(stderr, "hearth-bench: %s\n", err.msg);
		fprintf(stderr, "hearth-bench: scratch kept in %s\n", benv.scratch);
		goto out;
	}
	report(&b);
	if (write_scaling(&b, &err) < 0) {
		fprintf(stderr, "hearth-bench: %s\n", err.msg);
		goto out;
	}
	printf("\nhearth-bench: done in %.0f s (timings are reported, never a reason to fail)\n",
	       now_s() - t0);
	rc = 0;
	if (!benv.keep)
		rm_rf(benv.scratch);
out:
	zmq_ctx_term(b.zctx);
	return rc;
}
