/*
 * The time index in chunks (src/store/tindex.c) against a plain model: entries
 * added in order, out of order and again (a replay after a crash), chunks
 * split by count and by size, walks and seeks both ways, customers whose ids
 * are prefixes of each other, taking a customer out, and the upgrade from one
 * key per event.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/store.h"
#include "../../src/store/tindex.h"
#include "../../src/store/type_names.h"

#define MAP_SIZE (64ULL << 20)

static const char *const custs[] = { "A", "A0", "B", "C1001" };
#define NCUST 4

/* Long names on purpose: chunks of them are cut by size before count. */
static const char *const types[] = {
	"call", "visit", "complaint", "a_type_name_of_thirty_two_bytes_",
	"another_type_name_thirty_two_by_", "promise",
};
#define NTYPES 6

struct model {
	struct tindex_entry *e[NCUST];
	size_t n[NCUST], cap[NCUST];
};

struct fx {
	char dir[64];
	struct store *st;
	struct model m;
	uint64_t seq;
	unsigned rand;
	struct tindex_scratch s;
};

static unsigned next_rand(struct fx *f)
{
	f->rand = f->rand * 1103515245u + 12345u;
	return f->rand >> 8;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct herr err = { 0 };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/hearth-tindex-XXXXXX");
	if (!mkdtemp(f->dir) || !(f->st = store_open(f->dir, MAP_SIZE, MAP_SIZE * 4, &err)))
		return -1;
	f->rand = 7;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	for (int c = 0; c < NCUST; c++)
		free(f->m.e[c]);
	tindex_scratch_free(&f->s);
	free(f);
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct tindex_entry *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static void model_add(struct model *m, int c, const struct tindex_entry *e)
{
	for (size_t i = 0; i < m->n[c]; i++)
		if (entry_cmp(&m->e[c][i], e) == 0)
			return;
	if (m->n[c] == m->cap[c]) {
		m->cap[c] = m->cap[c] ? m->cap[c] * 2 : 64;
		m->e[c] = realloc(m->e[c], m->cap[c] * sizeof(*e));
		assert_non_null(m->e[c]);
	}
	m->e[c][m->n[c]++] = *e;
	qsort(m->e[c], m->n[c], sizeof(*e), entry_cmp);
}

struct add_ctx {
	struct fx *f;
	int c;
	const struct tindex_entry *e;
	size_t n;
};

static int add_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct add_ctx *a = vctx;

	(void)err;
	tindex_add(w, custs[a->c], strlen(custs[a->c]), a->e, a->n, &a->f->s);
	/* as the flush does: the numbers of new types go in the same transaction */
	type_names_put_new(store_type_names(w->st), w);
	return w->rc ? -1 : 0;
}

/* Adds n entries to customer c: times from base on, spread as asked, in sorted order. */
static void add(struct fx *f, int c, size_t n, int64_t base, int64_t spread, int again)
{
	struct tindex_entry *e = calloc(n, sizeof(*e));
	struct herr err = { 0 };

	assert_non_null(e);
	for (size_t i = 0; i < n; i++) {
		if (again && f->m.n[c]) {
			e[i] = f->m.e[c][next_rand(f) % f->m.n[c]];
		} else {
			const char *t = types[next_rand(f) % NTYPES];
			e[i] = (struct tindex_entry){ base + (int64_t)(next_rand(f) % (uint64_t)spread),
						      ++f->seq, t, (uint8_t)strlen(t) };
		}
	}
	qsort(e, n, sizeof(*e), entry_cmp);
	struct add_ctx a = { f, c, e, n };
	if (store_write(f->st, add_fn, &a, &err) < 0)
		fail_msg("store_write: %s", err.msg);
	type_names_committed(store_type_names(f->st));
	for (size_t i = 0; i < n; i++)
		model_add(&f->m, c, &e[i]);
	free(e);
}

static void expect_same(const struct tindex_entry *got, const struct tindex_entry *want)
{
	assert_non_null(got);
	assert_int_equal(got->ts, want->ts);
	assert_int_equal(got->seq, want->seq);
	assert_int_equal(got->type_len, want->type_len);
	assert_memory_equal(got->type, want->type, want->type_len);
}

/* Every walk and a hundred seeks each way agree with the model. */
static void check(struct fx *f)
{
	struct tindex_iter *it = malloc(sizeof(*it));
	struct herr err = { 0 };
	MDB_txn *txn;

	assert_non_null(it);
	assert_int_equal(store_read_begin(f->st, &txn, &err), 0);
	for (int c = 0; c < NCUST; c++) {
		const struct tindex_entry *m = f->m.e[c];
		size_t n = f->m.n[c], k;
		for (int desc = 0; desc < 2; desc++) {
			assert_int_equal(tindex_iter_open(it, f->st, txn, custs[c], strlen(custs[c]), desc, &err), 0);
			tindex_iter_seek(it, desc ? INT64_MAX : INT64_MIN, desc ? UINT64_MAX : 0);
			for (k = 0; tindex_iter_entry(it); tindex_iter_step(it), k++)
				expect_same(tindex_iter_entry(it), &m[desc ? n - 1 - k : k]);
			assert_int_equal(k, n);
			for (int s = 0; s < 100 && n; s++) {
				/* at an entry, or just past one */
				struct tindex_entry at = m[next_rand(f) % n];
				int past = next_rand(f) % 2;
				uint64_t seq = at.seq + (past ? (desc ? (uint64_t)-1 : 1) : 0);
				size_t want = 0;
				if (desc) {
					while (want < n && entry_cmp(&m[want], &(struct tindex_entry){ at.ts, seq, NULL, 0 }) <= 0)
						want++;
				} else {
					while (want < n && entry_cmp(&m[want], &(struct tindex_entry){ at.ts, seq, NULL, 0 }) < 0)
						want++;
				}
				tindex_iter_seek(it, at.ts, seq);
				if (desc ? want == 0 : want == n)
					assert_null(tindex_iter_entry(it));
				else
					expect_same(tindex_iter_entry(it), &m[desc ? want - 1 : want]);
			}
			assert_false(it->damaged);
			tindex_iter_close(it);
		}
	}
	store_read_end(txn);
	free(it);
}

static void test_appends_backfills_and_replays(void **state)
{
	struct fx *f = *state;

	for (int round = 0; round < 30; round++) {
		int c = (int)(next_rand(f) % NCUST);
		int64_t base = 1000000 + (int64_t)round * 100000;
		size_t n = 1 + next_rand(f) % 90;
		switch (round % 3) {
		case 0: add(f, c, n, base, 100000, 0); break;             /* new events, later */
		case 1: add(f, c, n, 0, 4000000, 0); break;               /* backfill across all */
		case 2: add(f, c, n, 0, 1, 1); break;                     /* the same again */
		}
		check(f);
	}
	/* a long history: a customer with many chunks, appended to in small groups */
	for (int i = 0; i < 40; i++)
		add(f, 0, 25, 10000000 + i * 1000, 1000, 0);
	check(f);
	/* and a burst into the middle of it */
	add(f, 0, 500, 10000000, 40000, 0);
	check(f);
	assert_true(store_count(f->st, DB_TIMELINE) > 10);
}

static void test_equal_times(void **state)
{
	struct fx *f = *state;

	/* many events at the same instant: ordered by seq, split across chunks */
	for (int i = 0; i < 5; i++)
		add(f, 2, 200, 5000, 1, 0);
	check(f);
}

struct take_ctx {
	const char *cust;
	struct wbuf seqs;
};

static int take_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct take_ctx *t = vctx;

	(void)err;
	tindex_take(w, t->cust, strlen(t->cust), &t->seqs);
	return w->rc ? -1 : 0;
}

static void test_take(void **state)
{
	struct fx *f = *state;
	struct take_ctx t = { .cust = "A" };
	struct herr err = { 0 };

	for (int c = 0; c < NCUST; c++)
		add(f, c, 300, 0, 1000000, 0);
	wbuf_init(&t.seqs);
	assert_int_equal(store_write(f->st, take_fn, &t, &err), 0);
	assert_int_equal(t.seqs.len, f->m.n[0] * 8);
	for (size_t i = 0; i < f->m.n[0]; i++) {
		uint64_t seq;
		memcpy(&seq, t.seqs.data + i * 8, 8);
		assert_int_equal(seq, f->m.e[0][i].seq);
	}
	wbuf_free(&t.seqs);
	f->m.n[0] = 0;
	check(f); /* A is empty; A0, whose id A prefixes, is whole */
}

struct upgrade_ctx {
	struct fx *f;
	size_t per_cust;
};

static int upgrade_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct upgrade_ctx *u = vctx;
	MDB_dbi old;

	assert_int_equal(mdb_dbi_open(w->txn, "timeline", MDB_CREATE, &old), 0);
	for (int c = 0; c < NCUST; c++) {
		for (size_t i = 0; i < u->per_cust; i++) {
			uint8_t key[64];
			size_t len = strlen(custs[c]);
			const char *t = types[next_rand(u->f) % NTYPES];
			struct tindex_entry e = { (int64_t)(next_rand(u->f) % 100000) - 50000, ++u->f->seq, t,
						  (uint8_t)strlen(t) };
			memcpy(key, custs[c], len);
			key[len] = 0;
			be64_put(key + len + 1, i64_to_ordered(e.ts));
			be64_put(key + len + 9, e.seq);
			MDB_val k = { len + 17, key }, v = { e.type_len, (void *)t };
			assert_int_equal(mdb_put(w->txn, old, &k, &v, 0), 0);
			model_add(&u->f->m, c, &e);
		}
	}
	if (tindex_upgrade(w, old, err) < 0)
		return -1;
	type_names_put_new(store_type_names(w->st), w);
	return w->rc ? -1 : 0;
}

static void test_upgrade_from_a_key_per_event(void **state)
{
	struct fx *f = *state;
	struct upgrade_ctx u = { f, 700 };
	struct herr err = { 0 };

	if (store_write(f->st, upgrade_fn, &u, &err) < 0)
		fail_msg("upgrade: %s", err.msg);
	type_names_committed(store_type_names(f->st));
	check(f);
	/* and it takes new events like any other */
	add(f, 1, 50, -60000, 200000, 0);
	check(f);
}

static int put_format1_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct wbuf *chunk = vctx;
	uint8_t key[32];

	(void)err;
	memcpy(key, "B", 1);
	key[1] = 0;
	be64_put(key + 2, i64_to_ordered(1000));
	be64_put(key + 10, 5);
	wtxn_put(w, DB_TIMELINE, key, 18, chunk->data, chunk->len, 0);
	return w->rc ? -1 : 0;
}

/* Chunks written before type numbers (format 1: a table of names first) still read. */
static void test_format_1_chunks(void **state)
{
	struct fx *f = *state;
	struct herr err = { 0 };
	struct wbuf chunk;
	static const struct tindex_entry want[] = {
		{ 1000, 5, "call", 4 }, { 1500, 8, "visit", 5 }, { 1500, 9, "call", 4 },
	};

	wbuf_init(&chunk);
	wbuf_u8(&chunk, 1);
	wbuf_u8(&chunk, 2);
	wbuf_str8(&chunk, "call", 4);
	wbuf_str8(&chunk, "visit", 5);
	for (int i = 0; i < 3; i++) {
		wbuf_u8(&chunk, i == 1);
		wbuf_varint(&chunk, zigzag64((uint64_t)want[i].ts - (uint64_t)(i ? want[i - 1].ts : 1000)));
		wbuf_varint(&chunk, zigzag64(want[i].seq - (i ? want[i - 1].seq : 5)));
	}
	assert_int_equal(store_write(f->st, put_format1_fn, &chunk, &err), 0);
	wbuf_free(&chunk);
	for (int i = 0; i < 3; i++)
		model_add(&f->m, 2, &want[i]);
	check(f);
	/* new events merge into it: the chunk is rewritten in the current format */
	add(f, 2, 30, 1200, 1000, 0);
	check(f);
}

static int failing_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	(void)vctx;
	/* a type numbered and put in a write that then fails: only memory has it */
	assert_true(type_names_number(store_type_names(w->st), "numbered_then_aborted", 21) >= 0);
	type_names_put_new(store_type_names(w->st), w);
	return herr_set(err, HERR_STORE_ERROR, "on purpose");
}

static void test_type_numbers_outlive_reopen_and_failed_writes(void **state)
{
	struct fx *f = *state;
	struct herr err = { 0 };
	size_t len;

	add(f, 0, 40, 0, 100000, 0);
	assert_int_equal(store_write(f->st, failing_fn, NULL, &err), -1);
	add(f, 1, 40, 0, 100000, 0);    /* puts the aborted write's number too */
	store_close(f->st);
	f->st = store_open(f->dir, MAP_SIZE, MAP_SIZE * 4, &err);
	assert_non_null(f->st);
	check(f);                       /* every chunk's numbers resolve */
	const struct type_names *tn = store_type_names(f->st);
	int found = 0;
	for (uint64_t n = 0; type_names_name(tn, n, &len); n++)
		found |= len == 21 && memcmp(type_names_name(tn, n, &len), "numbered_then_aborted", 21) == 0;
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_appends_backfills_and_replays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equal_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_a_key_per_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_numbers_outlive_reopen_and_failed_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_1_chunks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
