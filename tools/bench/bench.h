/*
 * hearth-bench: what its files share. The bench measures the real daemon
 * (build/hearthd) through its real sockets on a scratch store, and runs the
 * baselines (a raw LMDB append loop, SQLite) on the same generated events in
 * the same run, so that every budget of issue 6 is a ratio taken on one
 * machine at one moment.
 *
 *   gen.c       deterministic timelines: customers, tiers, the event mix
 *   daemon.c    starting and stopping hearthd, control calls, RSS, store size
 *   producer.c  the pipelined DEALER producer, the rate-limited one, the SUB probe
 *   baseline.c  the raw LMDB loop, SQLite ingest, the default rules as SQL
 *   stats.c     samples, medians, percentiles, the final table
 *   phases.c    the measurements, one function per phase
 *   shard.c     beyond one machine: 1, 2, 4 instances sharded by customer
 *   main.c      options, the phases top to bottom, the table, the scaling data
 *
 * Nothing here is library code: times, the control client and the event
 * record come from libhearth.
 */
#ifndef HEARTH_TOOLS_BENCH_H
#define HEARTH_TOOLS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hearth/err.h"

struct json_object;
struct ctl_client;

/* ---- gen.c: the timelines -------------------------------------------------- */

enum gen_type {
	GT_PROFILE, GT_CONTACT, GT_CALL, GT_VISIT, GT_MEETING, GT_MESSAGE, GT_PURCHASE,
	GT_OFFER, GT_COMPLAINT, GT_COMPLAINT_RESOLVED, GT_PROMISE, GT_PROMISE_KEPT,
	GT_WEB_VISIT, GT__COUNT
};

/* One generated event, compact; its text forms are made by gen_json / gen_csv. */
struct gen_event {
	int64_t ts;
	int64_t due;            /* promise: attrs.due */
	uint32_t cust;
	uint32_t ref;           /* case number (complaint, promise and their closes), 0 none */
	uint32_t num;           /* a number attribute: value, amount, minutes */
	uint8_t type;           /* enum gen_type */
	uint8_t tier;           /* profile: 'A'..'D'; 0 when the profile sets no tier */
	uint8_t full_profile;   /* profile: the customer's first, with name/owner/value */
	uint8_t pick;           /* a small deterministic choice (channel, owner, ...) */
};

#define GEN_COHORTS_MAX 4

struct gen_params {
	uint64_t seed;
	size_t customers;
	size_t events;
	int64_t end_ms;         /* the newest event time; the daemon's clock is set here */
	int64_t span_ms;        /* events spread over [end - span, end] */
	char id_prefix;         /* event ids are PREFIX + 9 digits: unique per stream */
	const char *cust_prefix;/* customer ids are PREFIX + 7 digits */
	/*
	 * Planted cohorts: per cohort, cohort_frac × customers tier-B customers whose
	 * last touch is exactly so old that customer_cooling comes due just before
	 * cohort_due[k]: a tick at that time finds them (and hardly anyone else).
	 */
	size_t ncohorts;
	double cohort_frac;
	int64_t cohort_due[GEN_COHORTS_MAX];
};

struct gen_stream {
	struct gen_params p;
	struct gen_event *ev;
	size_t n;
	size_t customers_seen;
	size_t planted_first;   /* customers [planted_first, customers) are planted */
};

int gen_stream_make(struct gen_stream *s, const struct gen_params *p, struct herr *err);
void gen_stream_free(struct gen_stream *s);
const char *gen_type_name(enum gen_type t);
/* "C0012345"; buf needs 32 bytes. */
size_t gen_customer_id(const struct gen_stream *s, uint32_t cust, char *buf, size_t size);
/* The attrs object as compact JSON ("" when the event has none). */
size_t gen_attrs_json(const struct gen_stream *s, const struct gen_event *e, char *buf, size_t size);
size_t gen_event_id(const struct gen_stream *s, size_t index, char *buf, size_t size);
size_t gen_ref(const struct gen_event *e, char *buf, size_t size);
/* The PROTOCOL.md §2.1 JSON form of event index i (no newline). */
size_t gen_json(const struct gen_stream *s, size_t i, char *buf, size_t size);
/* CSV: header and one record (with newline). */
const char *gen_csv_header(void);
size_t gen_csv(const struct gen_stream *s, size_t i, char *buf, size_t size);
int gen_write_csv(const struct gen_stream *s, const char *path, struct herr *err);

/* Ingest frames: batches of `per` events as newline-separated JSON. */
struct frames {
	char *text;
	size_t *off;            /* frame i is text[off[i], off[i+1]) */
	size_t *count;          /* events in frame i */
	size_t n;
	size_t events;
	size_t bytes;
};

int frames_make(struct frames *f, const struct gen_stream *s, size_t per, struct herr *err);
void frames_free(struct frames *f);

/* ---- daemon.c: the real hearthd ---------------------------------------------- */

struct daemon {
	pid_t pid;
	char dir[400];          /* scratch directory: config, store, sockets, log */
	char config[512];
	char store[512];
	char control[512];
	char ingest[512];       /* ZeroMQ endpoints */
	char publish[512];
	char log[512];
	struct ctl_client *cc;
};

struct bench_env {
	const char *build;      /* where hearthd and hearthctl are */
	const char *rules_from; /* the config whose events/priority/rules are copied */
	char scratch[256];      /* everything lives under it */
	int keep;               /* keep the scratch directory */
	int verbose;
};

extern struct bench_env benv;
/* YAML appended to the next daemon_start's configuration (cluster.c: a `cluster:` section). */
extern const char *daemon_extra_yaml;

/* Writes the config into d->dir and starts hearthd --test-clock on a fresh store. */
int daemon_start(struct daemon *d, const char *name, struct herr *err);
/* SIGTERM, waits (bounded); returns hearthd's exit status or -1. */
int daemon_stop(struct daemon *d);
/* A control call; err set when the transport fails or the answer is not ok. */
struct json_object *daemon_call(struct daemon *d, const char *line, struct herr *err);
int daemon_clock_set(struct daemon *d, int64_t at_ms, struct herr *err);
int64_t daemon_now(struct daemon *d, struct herr *err);
/* A numeric field of `status` (dotted path allowed), or -1. */
int64_t daemon_status_int(struct daemon *d, const char *path, struct herr *err);
/* A value from `metrics`' text by its full sample name, or -1. */
double daemon_metric(struct daemon *d, const char *sample, struct herr *err);
/* Waits until every stored event is in the indexes (bounded). */
int daemon_wait_flushed(struct daemon *d, struct herr *err);
/* VmRSS minus the Rss of the data.mdb mapping, and both parts, in bytes. */
int daemon_rss(struct daemon *d, uint64_t *rss, uint64_t *map_rss, struct herr *err);
/* Bytes the daemon handed to write calls (wchar) and sent to storage (write_bytes) so far. */
int daemon_io(struct daemon *d, uint64_t *wchar, uint64_t *write_bytes);
/* User + system CPU seconds the daemon has used so far. */
double daemon_cpu_seconds(struct daemon *d);
/* The daemon's minor page faults so far, all threads. */
uint64_t daemon_minor_faults(struct daemon *d);
/* The same for the daemon's threads of that name (hearthd's own: "hearthd", the writer). */
double daemon_thread_cpu_seconds(struct daemon *d, const char *name);
/* Allocated bytes of data.mdb (what du reports). */
uint64_t daemon_store_bytes(struct daemon *d);
/* The bytes of the store's tables but the outbox (status.store.tables): events and indexes. */
/* The tables' bytes but the outbox's; split gets each table's bytes per event ("log 89, ..."). */
int64_t daemon_table_bytes(struct daemon *d, uint64_t events, char *split, size_t size,
			   struct herr *err);
/* Runs argv (bounded by timeout_s); returns the exit status or -1. */
int run_program(char *const argv[], const char *out_path, int timeout_s, struct herr *err);
int rm_rf(const char *path);

/* ---- producer.c: ZeroMQ sides ------------------------------------------------ */

struct ingest_result {
	size_t events, accepted, duplicates, rejected;
	double seconds;
};

/*
 * Sends the frames over one DEALER with `inflight` requests outstanding, at
 * `rate` events/s (0: as fast as replies come), stopping early after
 * max_seconds (0: never).
 */
int produce(void *zctx, const char *endpoint, const struct frames *f, size_t first, size_t nframes,
	    int inflight, double rate, double max_seconds, struct ingest_result *res, struct herr *err);
/*
 * Runs produce() at `rate` events/s for at most max_seconds in a child
 * process; returns its pid. The child exits 0 when every event sent was accepted.
 */
pid_t produce_in_child(const char *endpoint, const struct frames *f, double rate, double max_seconds,
		       int inflight);

/* ingest → alert latency: pairs of (open, resolve) complaints of new customers. */
int alert_latency(void *zctx, struct daemon *d, size_t pairs, double *us, size_t *n,
		  struct herr *err);

/* ---- baseline.c ------------------------------------------------------------ */

/* The events as hearth's own log records (event_encode), for the raw loop. */
struct records {
	uint8_t *data;
	size_t *off;
	size_t n;
	size_t bytes;
};

int records_make(struct records *r, const struct gen_stream *s, struct herr *err);
void records_free(struct records *r);
/* MDB_APPEND, one durable commit per `per` records; events/s. */
int raw_lmdb(const char *dir, const struct records *r, size_t per, double *eps, struct herr *err);
/* WAL, synchronous=FULL, rowid table + (customer, ts) index, `per` per transaction. */
int sqlite_ingest(const char *path, const struct gen_stream *s, size_t per, double *eps,
		  struct herr *err);
/* Bulk load for the rules as SQL (not timed, indexes built after). */
int sqlite_load(const char *path, const struct gen_stream *s, struct herr *err);
/* The default rules as the SQL a user's cron job would run; counts per rule. */
#define SQL_RULES 8
extern const char *const sql_rule_names[SQL_RULES];
/* Stops after limit_s (then *cut is set, the unanswered counts are -1, and *seconds a lower bound). */
int sqlite_rules(const char *path, int64_t now, double limit_s, double *seconds,
		 long counts[SQL_RULES], int *cut, struct herr *err);

/* ---- stats.c ----------------------------------------------------------------- */

double now_s(void);
void sort_doubles(double *v, size_t n);
/* Nearest-rank percentile of sorted values; p in [0, 100]. */
double pct(const double *sorted, size_t n, double p);

/* A figure measured in several runs. */
#define RUNS_MAX 8
struct figure {
	double v[RUNS_MAX];
	size_t n;
};

void fig_add(struct figure *f, double v);
/* NaN when nothing was measured: the table then says "not run". */
double fig_median(const struct figure *f);
double fig_min(const struct figure *f);
double fig_max(const struct figure *f);
/* "median (min–max, n runs)" with a printf format for one number. */
const char *fig_text(const struct figure *f, const char *fmt, char *buf, size_t size);

enum budget_kind { AT_LEAST, AT_MOST, INFO };

void table_add(const char *figure, double measured, const char *fmt, const char *unit,
	       enum budget_kind kind, double budget, const char *note);
void table_print(void);
/* Prints "  name: text" as a phase goes, and remembers nothing. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- phases.c ---------------------------------------------------------------- */

struct sizes {
	const char *mode;               /* "quick" or "full" */
	size_t ingest_customers, ingest_events;
	size_t import_customers, import_rows;
	size_t big_customers, big_events;
	size_t runs;
	size_t ticks;                   /* 1 ms advances per run */
	size_t alert_pairs;
	size_t queries;                 /* `customer` calls, idle */
	double load_rate, load_seconds; /* the ingest beside `customer` under load */
	size_t shard_customers, shard_events;
	size_t shard_runs;              /* each configuration: the full bench cannot afford 3 × 3 */
};

/* phase_shard runs 1, 2 and 4 instances; index i of its figures is shard_counts[i] instances. */
#define SHARD_CONFIGS 3
#define SHARD_MAX 4
extern const size_t shard_counts[SHARD_CONFIGS];

/* Index 0: the smaller store (the import's), 1: the big one. */
struct results {
	struct figure ingest_eps, raw_eps, sql_eps, ratio_raw, ratio_sql;
	struct figure indexed_eps;      /* ingest until the flush wrote everything */
	struct figure wchar_per_event, disk_per_event;  /* written per ingested event, flush included */
	double json_bytes, record_bytes;
	struct figure import_eps;
	struct figure backtest_s, backtest_ping_p99_ms;   /* one rule over the import's year */
	double backtest_ping_max_ms;
	int64_t backtest_fired;
	int64_t import_notes, import_firing;   /* notifications of the (quiet) import, alerts firing after it */
	double live_import_eps;                 /* the same rows with --live, once */
	int64_t live_notes, live_firing;
	struct figure tick_idle[2], tick_due[2], reeval_s[2], ping_max_ms[2];
	/* CPU seconds during a re-evaluation: less noisy than its wall time on a shared machine */
	struct figure reeval_workers_cpu_s[2], reeval_writer_cpu_s[2];
	double tick_idle_max[2];
	size_t tick_due_evaluated[2];
	uint64_t customers[2], events[2];
	struct figure sql_rules_s;
	int sql_cut;                    /* the SQL ran out of its time limit: a lower bound */
	long sql_counts[SQL_RULES], hearth_counts[SQL_RULES];
	int64_t rules_now;
	double alert_p50_us, alert_p99_us, alert_max_us;
	size_t alert_n;
	double cust_idle_p50_us, cust_idle_p99_us, cust_load_p50_us, cust_load_p99_us;
	double alerts_list_p50_ms, alerts_list_max_ms;  /* `alerts`, its default 1,000 firing rows */
	long long alerts_firing;
	double status_import_p50_ms, status_import_p99_ms, status_import_max_ms;
	size_t status_import_n;
	size_t cust_idle_n, cust_load_n;
	double load_eps;
	double rss_mib, map_rss_mib, hwm_mib;
	double bytes_per_event, bytes_per_event_big; /* the tables, outbox apart */
	double file_per_event, file_per_event_big;  /* data.mdb on disk, free pages and outbox included */
	double big_ingest_eps;
	/* phase_shard, per configuration (see shard_counts) */
	struct figure shard_eps[SHARD_CONFIGS];         /* aggregate durable events/s */
	double shard_cores[SHARD_CONFIGS];              /* CPU (daemons + producers) / wall, last run */
	uint64_t fanout_customers[SHARD_CONFIGS];       /* status.customers summed over the instances */
	uint64_t fanout_listed[SHARD_CONFIGS];          /* rows of `customers`, paged, summed */
	uint64_t fanout_open[SHARD_CONFIGS];            /* `customers where open(complaint) > 0`, summed */
	uint64_t shard_generated;                       /* distinct customers in the stream */
	size_t fanin_published[SHARD_CONFIGS];          /* seq advanced by the clock.set, summed */
	size_t fanin_received[SHARD_CONFIGS];           /* of those, received by the one SUB */
	/* phase_cluster (cluster.c) */
	double cluster_eps, cluster_acked_eps, cluster_zmq_eps;
	size_t cluster_events, cluster_messages;
	double cluster_alert_p50_ms, cluster_alert_p99_ms, cluster_query_p50_ms, cluster_query_p99_ms;
	size_t cluster_alert_n, cluster_query_n;
	double cluster_stall_ms;
	size_t cluster_stall_acked;
};

struct bench {
	struct sizes sz;
	void *zctx;
	int64_t end_ms;
	int64_t cohort_due[GEN_COHORTS_MAX];
	int ingest_only;                /* --phases ingest-only: hearth's ingest, no baselines, no probes */
	struct results r;
};

int phase_ingest(struct bench *b, struct herr *err);
int phase_import(struct bench *b, struct herr *err);
int phase_big(struct bench *b, struct herr *err);

/* ---- shard.c ------------------------------------------------------------------- */

/* FNV-1a (32 bits) of a customer id; a customer lives on instance shard_hash(id) % N. */
uint32_t shard_hash(const char *id, size_t len);
int phase_shard(struct bench *b, struct herr *err);

/* ---- cluster.c: cluster mode on NATS JetStream ---------------------------------- */

int phase_cluster(struct bench *b, struct herr *err);

#endif
