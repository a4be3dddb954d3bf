/*
 * The baselines, on the very events hearth got:
 *
 *  - raw LMDB: the ceiling. hearth's own log records (event_encode), appended
 *    with MDB_APPEND under a rising u64 key, one durable commit per batch:
 *    what hearth's ingest would cost with no parsing, no ids, no indexes.
 *  - SQLite: what a user would otherwise build. WAL with synchronous=FULL (a
 *    commit is durable when it returns, as hearth's reply promises), a rowid
 *    table plus a (customer, ts) index, one transaction per batch.
 *  - the default rules of etc/hearth.yaml as the SQL a cron job would run over
 *    that table, one query per rule, each counting the customers it fires for.
 */
#include <errno.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "hearth/codec.h"
#include "hearth/event.h"
#include "hearth/units.h"

/* ---- hearth's records ------------------------------------------------------- */

int records_make(struct records *r, const struct gen_stream *s, struct herr *err)
{
	struct wbuf b;
	char id[32], cust[32], ref[32], attrs[256];

	memset(r, 0, sizeof(*r));
	wbuf_init(&b);
	if (!(r->off = malloc((s->n + 1) * sizeof(*r->off))))
		return herr_set(err, HERR_NOMEM, "bench, out of memory for records");
	for (size_t i = 0; i < s->n; i++) {
		const struct gen_event *e = &s->ev[i];
		struct event ev = { .ts = e->ts };
		const char *type = gen_type_name(e->type);
		ev.id_len = gen_event_id(s, i, id, sizeof(id));
		ev.id = id;
		ev.customer_len = gen_customer_id(s, e->cust, cust, sizeof(cust));
		ev.customer = cust;
		ev.type = type;
		ev.type_len = strlen(type);
		if ((ev.ref_len = gen_ref(e, ref, sizeof(ref))))
			ev.ref = ref;
		if ((ev.attrs_len = gen_attrs_json(s, e, attrs, sizeof(attrs))))
			ev.attrs_json = attrs;
		r->off[i] = b.len;
		if (event_encode(&ev, &b, err) < 0) {
			wbuf_free(&b);
			free(r->off);
			return -1;
		}
	}
	if (b.failed) {
		wbuf_free(&b);
		free(r->off);
		return herr_set(err, HERR_NOMEM, "bench, out of memory for records");
	}
	r->off[s->n] = b.len;
	r->data = b.data;
	r->n = s->n;
	r->bytes = b.len;
	return 0;
}

void records_free(struct records *r)
{
	free(r->data);
	free(r->off);
	memset(r, 0, sizeof(*r));
}

/* ---- raw LMDB ---------------------------------------------------------------- */

int raw_lmdb(const char *dir, const struct records *r, size_t per, double *eps, struct herr *err)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	uint8_t key[8];
	double t0;
	int rc;

	rm_rf(dir);
	if (mkdir(dir, 0700) < 0)
		return herr_set(err, HERR_IO, "bench, cannot create '%s' (%s)", dir, strerror(errno));
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, 16ULL << 30)) ||
	    (rc = mdb_env_open(env, dir, 0, 0600)))
		goto fail;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
	    (rc = mdb_txn_commit(txn)))
		goto fail;
	txn = NULL;
	t0 = now_s();
	for (size_t i = 0; i < r->n; i += per) {
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
			goto fail;
		for (size_t j = i; j < i + per && j < r->n; j++) {
			be64_put(key, j + 1);
			MDB_val k = { 8, key }, v = { r->off[j + 1] - r->off[j], r->data + r->off[j] };
			if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND)))
				goto fail;
		}
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc)
			goto fail;
	}
	*eps = (double)r->n / (now_s() - t0);
	mdb_env_close(env);
	rm_rf(dir);
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	rm_rf(dir);
	return herr_set(err, HERR_IO, "bench, raw LMDB: %s", mdb_strerror(rc));
}

/* ---- SQLite ------------------------------------------------------------------ */

static int sql_exec(sqlite3 *db, const char *sql, struct herr *err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		herr_set(err, HERR_IO, "bench, SQLite: %s (in %.80s)", msg ? msg : "?", sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int sql_open(const char *path, sqlite3 **db, const char *pragmas, struct herr *err)
{
	char wal[320], shm[320];

	snprintf(wal, sizeof(wal), "%s-wal", path);
	snprintf(shm, sizeof(shm), "%s-shm", path);
	unlink(path);
	unlink(wal);
	unlink(shm);
	if (sqlite3_open(path, db) != SQLITE_OK) {
		herr_set(err, HERR_IO, "bench, SQLite cannot open '%s'", path);
		sqlite3_close(*db);
		return -1;
	}
	return sql_exec(*db, pragmas, err);
}

static const char schema[] =
	"CREATE TABLE events (id TEXT, customer TEXT NOT NULL, ts INTEGER NOT NULL,"
	" type TEXT NOT NULL, ref TEXT, attrs TEXT);";
static const char schema_index[] = "CREATE INDEX events_customer_ts ON events (customer, ts);";

/* Inserts events [from, to) with a prepared statement (no transaction control). */
static int sql_insert(sqlite3_stmt *ins, const struct gen_stream *s, size_t from, size_t to,
		      struct herr *err)
{
	char id[32], cust[32], ref[32], attrs[256];

	for (size_t i = from; i < to; i++) {
		const struct gen_event *e = &s->ev[i];
		size_t idl = gen_event_id(s, i, id, sizeof(id));
		size_t cl = gen_customer_id(s, e->cust, cust, sizeof(cust));
		size_t rl = gen_ref(e, ref, sizeof(ref));
		size_t al = gen_attrs_json(s, e, attrs, sizeof(attrs));
		sqlite3_bind_text(ins, 1, id, (int)idl, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, cust, (int)cl, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, e->ts);
		sqlite3_bind_text(ins, 4, gen_type_name(e->type), -1, SQLITE_STATIC);
		if (rl)
			sqlite3_bind_text(ins, 5, ref, (int)rl, SQLITE_STATIC);
		else
			sqlite3_bind_null(ins, 5);
		if (al)
			sqlite3_bind_text(ins, 6, attrs, (int)al, SQLITE_STATIC);
		else
			sqlite3_bind_null(ins, 6);
		if (sqlite3_step(ins) != SQLITE_DONE)
			return herr_set(err, HERR_IO, "bench, SQLite insert: %s",
					sqlite3_errmsg(sqlite3_db_handle(ins)));
		sqlite3_reset(ins);
	}
	return 0;
}

static int sql_batches(sqlite3 *db, const struct gen_stream *s, size_t per, struct herr *err)
{
	sqlite3_stmt *ins = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", -1, &ins, NULL)) {
		herr_set(err, HERR_IO, "bench, SQLite prepare: %s", sqlite3_errmsg(db));
		return -1;
	}
	for (size_t i = 0; i < s->n; i += per) {
		size_t to = i + per < s->n ? i + per : s->n;
		if (sql_exec(db, "BEGIN", err) < 0 || sql_insert(ins, s, i, to, err) < 0 ||
		    sql_exec(db, "COMMIT", err) < 0)
			goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(ins);
	return rc;
}

int sqlite_ingest(const char *path, const struct gen_stream *s, size_t per, double *eps,
		  struct herr *err)
{
	sqlite3 *db = NULL;
	double t0;
	int rc = -1;

	if (sql_open(path, &db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) < 0 ||
	    sql_exec(db, schema, err) < 0 || sql_exec(db, schema_index, err) < 0)
		goto out;
	t0 = now_s();
	if (sql_batches(db, s, per, err) < 0)
		goto out;
	*eps = (double)s->n / (now_s() - t0);
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}

int sqlite_load(const char *path, const struct gen_stream *s, struct herr *err)
{
	sqlite3 *db = NULL;
	int rc = -1;

	/* a bulk load, not the measured figure: no sync, the index built at the end */
	if (sql_open(path, &db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;", err) < 0 ||
	    sql_exec(db, schema, err) < 0 || sql_batches(db, s, 100000, err) < 0 ||
	    sql_exec(db, schema_index, err) < 0 || sql_exec(db, "PRAGMA wal_checkpoint(TRUNCATE);", err) < 0)
		goto out;
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}

/* ---- the default rules as SQL ---------------------------------------------- */

#define TOUCH "('contact','call','visit','meeting','message')"
#define DAY "86400000"
/* The latest tier a profile event set, per customer (SQLite's bare column with max()). */
#define TIERS "tiers AS (SELECT customer, json_extract(attrs, '$.tier') AS tier, max(ts) " \
	      "FROM events WHERE type = 'profile' AND json_extract(attrs, '$.tier') IS NOT NULL " \
	      "GROUP BY customer)"
#define OPEN_COMPLAINT(c) "NOT EXISTS (SELECT 1 FROM events r WHERE r.customer = " c ".customer " \
	      "AND r.type = 'complaint_resolved' AND r.ref = " c ".ref)"

const char *const sql_rule_names[SQL_RULES] = {
	"customer_cooling", "followup_below_cadence", "cadence_slowing", "complaint_unresolved",
	"promise_overdue", "upsell_window", "signed_needs_care", "new_customer_wobble",
};

/* Each counts the customers the rule fires for at ?1 = now (unix ms). */
static const char *const sql_rules[SQL_RULES] = {
	/* tier in [B, C] and (since(touch) > 30d or (since(touch) == null and age() > 30d)) */
	"WITH " TIERS ","
	" lt AS (SELECT customer, max(ts) AS last FROM events WHERE type IN " TOUCH " GROUP BY customer),"
	" fs AS (SELECT customer, min(ts) AS first FROM events GROUP BY customer)"
	" SELECT count(*) FROM tiers JOIN fs USING (customer) LEFT JOIN lt USING (customer)"
	" WHERE tier IN ('B', 'C') AND ((last IS NOT NULL AND ?1 - last > 30 * " DAY ")"
	" OR (last IS NULL AND ?1 - first > 30 * " DAY "))",
	/* tier == C and count(touch, 30d) < 2 and since(touch) <= 30d */
	"WITH " TIERS ","
	" c AS (SELECT customer, count(*) AS n FROM events WHERE type IN " TOUCH
	" AND ts > ?1 - 30 * " DAY " AND ts <= ?1 GROUP BY customer)"
	" SELECT count(*) FROM tiers JOIN c USING (customer) WHERE tier = 'C' AND n < 2",
	/* count(purchase, 365d) >= 3 and since(purchase) > 2 * gap(purchase) (median of the last 12 gaps) */
	"WITH p AS (SELECT customer, ts - lag(ts) OVER (PARTITION BY customer ORDER BY ts) AS gap,"
	" row_number() OVER (PARTITION BY customer ORDER BY ts DESC) AS rn"
	" FROM events WHERE type = 'purchase'),"
	" g AS (SELECT customer, gap, row_number() OVER (PARTITION BY customer ORDER BY gap) AS r,"
	" count(*) OVER (PARTITION BY customer) AS k FROM p WHERE rn <= 12 AND gap IS NOT NULL),"
	" med AS (SELECT customer, avg(gap) AS median FROM g WHERE r IN ((k + 1) / 2, (k + 2) / 2)"
	" GROUP BY customer),"
	" s AS (SELECT customer, max(ts) AS last, sum(ts > ?1 - 365 * " DAY " AND ts <= ?1) AS n"
	" FROM events WHERE type = 'purchase' GROUP BY customer)"
	" SELECT count(*) FROM s JOIN med USING (customer) WHERE n >= 3 AND ?1 - last > 2 * median",
	/* oldest(complaint) > 48h */
	"SELECT count(*) FROM (SELECT c.customer FROM events c WHERE c.type = 'complaint' AND "
	OPEN_COMPLAINT("c") " GROUP BY c.customer HAVING ?1 - min(c.ts) > 2 * " DAY ")",
	/* overdue(promise) > 0 */
	"SELECT count(DISTINCT p.customer) FROM events p WHERE p.type = 'promise'"
	" AND CAST((julianday(json_extract(p.attrs, '$.due')) - 2440587.5) * 86400000.0 AS INTEGER) < ?1"
	" AND NOT EXISTS (SELECT 1 FROM events k WHERE k.customer = p.customer"
	" AND k.type = 'promise_kept' AND k.ref = p.ref)",
	/* count(purchase, 3650d) == 1 and 7d <= since(purchase) <= 30d and no offer since and open(complaint) == 0 */
	"WITH pu AS (SELECT customer, count(*) AS n, max(ts) AS last FROM events"
	" WHERE type = 'purchase' AND ts > ?1 - 3650 * " DAY " AND ts <= ?1 GROUP BY customer)"
	" SELECT count(*) FROM pu WHERE n = 1 AND ?1 - last BETWEEN 7 * " DAY " AND 30 * " DAY
	" AND NOT EXISTS (SELECT 1 FROM events o WHERE o.customer = pu.customer AND o.type = 'offer'"
	" AND o.ts >= pu.last)"
	" AND NOT EXISTS (SELECT 1 FROM events c WHERE c.customer = pu.customer"
	" AND c.type = 'complaint' AND " OPEN_COMPLAINT("c") ")",
	/* tier == D and (since(touch) > 90d or (since(touch) == null and age() > 90d)) */
	"WITH " TIERS ","
	" lt AS (SELECT customer, max(ts) AS last FROM events WHERE type IN " TOUCH " GROUP BY customer),"
	" fs AS (SELECT customer, min(ts) AS first FROM events GROUP BY customer)"
	" SELECT count(*) FROM tiers JOIN fs USING (customer) LEFT JOIN lt USING (customer)"
	" WHERE tier = 'D' AND ((last IS NOT NULL AND ?1 - last > 90 * " DAY ")"
	" OR (last IS NULL AND ?1 - first > 90 * " DAY "))",
	/* age() < 60d and count(complaint, 14d) > 0 */
	"SELECT count(*) FROM (SELECT customer, min(ts) AS first FROM events GROUP BY customer) f"
	" WHERE ?1 - first < 60 * " DAY " AND EXISTS (SELECT 1 FROM events c"
	" WHERE c.customer = f.customer AND c.type = 'complaint' AND c.ts > ?1 - 14 * " DAY
	" AND c.ts <= ?1)",
};

/* Interrupts a query once the deadline (seconds, now_s() clock) has passed. */
static int past_deadline(void *ctx)
{
	return now_s() > *(const double *)ctx;
}

int sqlite_rules(const char *path, int64_t now, double limit_s, double *seconds,
		 long counts[SQL_RULES], int *cut, struct herr *err)
{
	sqlite3 *db = NULL;
	double t0, deadline;
	int rc = -1;

	*cut = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		herr_set(err, HERR_IO, "bench, SQLite cannot open '%s'", path);
		goto out;
	}
	t0 = now_s();
	deadline = t0 + limit_s;
	sqlite3_progress_handler(db, 10000, past_deadline, &deadline);
	for (size_t i = 0; i < SQL_RULES; i++) {
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(db, sql_rules[i], -1, &q, NULL) != SQLITE_OK) {
			herr_set(err, HERR_IO, "bench, SQL of %s: %s", sql_rule_names[i], sqlite3_errmsg(db));
			goto out;
		}
		sqlite3_bind_int64(q, 1, now);
		int step = sqlite3_step(q);
		if (step == SQLITE_INTERRUPT) {
			/* out of time: what was spent is a lower bound */
			for (size_t j = i; j < SQL_RULES; j++)
				counts[j] = -1;
			sqlite3_finalize(q);
			*cut = 1;
			break;
		}
		if (step != SQLITE_ROW) {
			herr_set(err, HERR_IO, "bench, SQL of %s: %s", sql_rule_names[i], sqlite3_errmsg(db));
			sqlite3_finalize(q);
			goto out;
		}
		counts[i] = (long)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	*seconds = now_s() - t0;
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}
