/*
 * alert_states.h against a real LMDB store: changes go to the journal, not to
 * DB_ALERTS, until applied; what the writer and a reader see is DB_ALERTS
 * overlaid with the journal's newest entry per (customer, rule), in key order;
 * a failed transaction leaves nothing behind; recovery applies a journal a
 * crash left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hearth/alert_states.h"
#include "hearth/log.h"
#include "hearth/store.h"
#include "hearth/strmap.h"

struct fx {
	char dir[64];
	struct store *st;
	struct alert_states *writer, *reader;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct herr err;

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/hearth-as-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->st = store_open(fx->dir, 8 << 20, 1 << 30, &err);
	assert_non_null(fx->st);
	fx->writer = alert_states_new();
	fx->reader = alert_states_new();
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	alert_states_free(fx->writer);
	alert_states_free(fx->reader);
	store_close(fx->st);
	nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ---- writes ------------------------------------------------------------------ */

struct change {
	const char *id, *rule, *rec; /* rec NULL: gone */
};

struct changes {
	struct alert_states *as;
	const struct change *c;
	size_t n;
	int apply_first, fail;
};

static int put_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct changes *ch = vctx;

	if (ch->apply_first)
		alert_states_apply(ch->as, w);
	for (size_t i = 0; i < ch->n; i++)
		alert_states_put(ch->as, w, ch->c[i].id, strlen(ch->c[i].id), ch->c[i].rule, ch->c[i].rec,
				 ch->c[i].rec ? strlen(ch->c[i].rec) : 0);
	if (ch->fail)
		return herr_set(err, HERR_IO, "failing on purpose");
	return w->rc ? -1 : 0;
}

static void put(struct fx *fx, const struct change *c, size_t n)
{
	struct changes ch = { fx->writer, c, n, 0, 0 };
	struct herr err;

	assert_int_equal(store_write(fx->st, put_fn, &ch, &err), 0);
	alert_states_commit(fx->writer);
}

static void apply(struct fx *fx)
{
	struct changes ch = { fx->writer, NULL, 0, 1, 0 };
	struct herr err;

	assert_int_equal(store_write(fx->st, put_fn, &ch, &err), 0);
	alert_states_commit(fx->writer);
}

/* ---- reads -------------------------------------------------------------------- */

struct seen {
	char text[1024];
};

static int walk_one(const char *id, size_t idlen, const char *rule, const void *rec, size_t len, void *vctx)
{
	struct seen *s = vctx;
	size_t at = strlen(s->text);

	snprintf(s->text + at, sizeof(s->text) - at, "%.*s/%s=%.*s ", (int)idlen, id, rule, (int)len,
		 (const char *)rec);
	return 0;
}

static void customer_one(const char *rule, const void *rec, size_t len, void *vctx)
{
	struct seen *s = vctx;
	size_t at = strlen(s->text);

	snprintf(s->text + at, sizeof(s->text) - at, "%s=%.*s ", rule, (int)len, (const char *)rec);
}

/* What as shows, as of a fresh read transaction (synced first when sync). */
static void look(struct fx *fx, struct alert_states *as, int sync, const char *from, const char *customer,
		 struct seen *all, struct seen *one)
{
	MDB_txn *txn;
	struct herr err;

	memset(all, 0, sizeof(*all));
	memset(one, 0, sizeof(*one));
	assert_int_equal(store_read_begin(fx->st, &txn, &err), 0);
	if (sync)
		assert_int_equal(alert_states_sync(as, fx->st, txn, &err), 0);
	assert_int_equal(alert_states_walk(as, fx->st, txn, from, from ? strlen(from) : 0, walk_one, all, &err), 0);
	if (customer)
		alert_states_customer(as, fx->st, txn, customer, strlen(customer), customer_one, one);
	store_read_end(txn);
}

struct lookup {
	const char *key;
	size_t klen;
	char *buf;
	size_t size;
	int found;
};

static int lookup_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct lookup *l = vctx;
	const void *val;
	size_t vlen;

	(void)err;
	l->found = wtxn_get(w, DB_ALERTS, l->key, l->klen, &val, &vlen) == 0;
	if (l->found)
		snprintf(l->buf, l->size, "%.*s", (int)vlen, (const char *)val);
	return -1; /* nothing to commit */
}

/* DB_ALERTS itself at key, or NULL. */
static const char *stored(struct fx *fx, const char *key, size_t klen, char *buf, size_t size)
{
	struct lookup l = { key, klen, buf, size, 0 };
	struct herr err;

	store_write(fx->st, lookup_fn, &l, &err);
	return l.found ? buf : NULL;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_changes_are_journaled_then_applied(void **state)
{
	struct fx *fx = *state;
	const struct change c[] = { { "B", "r2", "b2" }, { "A", "r1", "a1" }, { "A", "r0", "a0" } };
	struct seen all, one;
	char buf[64];

	put(fx, c, 3);
	/* durable in the journal, not in DB_ALERTS */
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 3);
	assert_int_equal(store_count(fx->st, DB_ALERTS), 0);
	assert_int_equal(alert_states_pending(fx->writer), 3);
	/* the writer knows them; a reader learns them from the journal; both in key order */
	look(fx, fx->writer, 0, NULL, "A", &all, &one);
	assert_string_equal(all.text, "A/r0=a0 A/r1=a1 B/r2=b2 ");
	assert_string_equal(one.text, "r0=a0 r1=a1 ");
	look(fx, fx->reader, 1, NULL, "B", &all, &one);
	assert_string_equal(all.text, "A/r0=a0 A/r1=a1 B/r2=b2 ");
	assert_string_equal(one.text, "r2=b2 ");

	apply(fx);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 0);
	assert_int_equal(store_count(fx->st, DB_ALERTS), 3);
	assert_int_equal(alert_states_pending(fx->writer), 0);
	assert_non_null(stored(fx, "A\0r1", 4, buf, sizeof(buf)));
	assert_string_equal(buf, "a1");
	/* the reader drops its copy on the next sync and reads the same from DB_ALERTS */
	look(fx, fx->reader, 1, NULL, "A", &all, &one);
	assert_string_equal(all.text, "A/r0=a0 A/r1=a1 B/r2=b2 ");
	assert_int_equal(alert_states_pending(fx->reader), 0);
}

static void test_newest_entry_wins_over_the_store(void **state)
{
	struct fx *fx = *state;
	const struct change base[] = { { "A", "r1", "old" }, { "C", "r1", "c1" }, { "C", "r2", "c2" },
				       { "E", "r1", "e1" } };
	const struct change later[] = { { "A", "r1", "mid" }, { "C", "r1", NULL }, { "D", "r3", "d3" },
					{ "A", "r1", "new" }, { "A", "r0", "a0" }, { "E", "r1", NULL } };
	struct seen all, one;

	put(fx, base, 4);
	apply(fx);
	put(fx, later, 6);
	/* gone states vanish, newer ones replace, new customers fall in key order */
	const char *want = "A/r0=a0 A/r1=new C/r2=c2 D/r3=d3 ";
	look(fx, fx->writer, 0, NULL, "C", &all, &one);
	assert_string_equal(all.text, want);
	assert_string_equal(one.text, "r2=c2 ");
	look(fx, fx->reader, 1, NULL, "E", &all, &one);
	assert_string_equal(all.text, want);
	assert_string_equal(one.text, "");
	/* a walk from a customer on */
	look(fx, fx->reader, 1, "C", NULL, &all, &one);
	assert_string_equal(all.text, "C/r2=c2 D/r3=d3 ");
	look(fx, fx->reader, 1, "B", NULL, &all, &one);
	assert_string_equal(all.text, "C/r2=c2 D/r3=d3 ");
	/* and once applied, the store says the same */
	apply(fx);
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, want);
	assert_int_equal(store_count(fx->st, DB_ALERTS), 4);
}

static void test_a_failed_transaction_leaves_nothing(void **state)
{
	struct fx *fx = *state;
	const struct change c[] = { { "A", "r1", "a1" } };
	struct changes ch = { fx->writer, c, 1, 0, 1 };
	struct seen all, one;
	struct herr err;

	assert_int_equal(store_write(fx->st, put_fn, &ch, &err), -1);
	alert_states_discard(fx->writer);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 0);
	look(fx, fx->writer, 0, NULL, "A", &all, &one);
	assert_string_equal(all.text, "");
	/* the next one numbers on from where the failed one began */
	put(fx, c, 1);
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a1 ");
}

static void test_puts_after_an_apply_in_one_transaction_stay_journaled(void **state)
{
	struct fx *fx = *state;
	const struct change first[] = { { "A", "r1", "a1" } }, second[] = { { "B", "r1", "b1" } };
	struct changes ch = { fx->writer, second, 1, 1, 0 };
	struct seen all, one;
	struct herr err;

	put(fx, first, 1);
	assert_int_equal(store_write(fx->st, put_fn, &ch, &err), 0);
	alert_states_commit(fx->writer);
	assert_int_equal(store_count(fx->st, DB_ALERTS), 1);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 1);
	assert_int_equal(alert_states_pending(fx->writer), 1);
	look(fx, fx->writer, 0, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a1 B/r1=b1 ");
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a1 B/r1=b1 ");
}

static void test_recovery_applies_what_a_crash_left(void **state)
{
	struct fx *fx = *state;
	const struct change c[] = { { "A", "r1", "a1" }, { "B", "r1", "b1" }, { "A", "r1", "a2" } };
	struct alert_states *after;
	struct seen all, one;
	struct herr err;

	put(fx, c, 3);
	/* the writer dies here: a new one starts on the same store */
	assert_non_null(after = alert_states_new());
	assert_int_equal(alert_states_recover(after, fx->st, &err), 0);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 0);
	assert_int_equal(store_count(fx->st, DB_ALERTS), 2);
	look(fx, after, 0, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 ");
	/* and numbers its own entries on from there */
	const struct change more[] = { { "C", "r1", "c1" } };
	struct changes ch = { after, more, 1, 0, 0 };
	assert_int_equal(store_write(fx->st, put_fn, &ch, &err), 0);
	alert_states_commit(after);
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 C/r1=c1 ");
	alert_states_free(after);
}

static int slice_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	(void)err;
	alert_states_apply_slice(vctx, w, 1);
	return w->rc ? -1 : 0;
}

static int end_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	(void)err;
	alert_states_apply_end(vctx, w);
	return w->rc ? -1 : 0;
}

static void write_with(struct fx *fx, store_write_fn fn)
{
	struct herr err;

	assert_int_equal(store_write(fx->st, fn, fx->writer, &err), 0);
	alert_states_commit(fx->writer);
}

static void test_an_apply_in_slices_keeps_what_changed_meanwhile(void **state)
{
	struct fx *fx = *state;
	const struct change first[] = { { "A", "r1", "a1" }, { "B", "r1", "b1" }, { "C", "r1", "c1" } };
	const struct change meanwhile[] = { { "D", "r1", "d1" }, { "A", "r1", "a2" } };
	const struct change after[] = { { "B", "r1", NULL } };
	struct seen all, one;
	char buf[64];
	int slices = 0;

	put(fx, first, 3);
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_int_equal(alert_states_apply_begin(fx->writer), 0);
	/* changes while the apply runs go to the other table */
	put(fx, meanwhile, 2);
	while (alert_states_apply_more(fx->writer)) {
		write_with(fx, slice_fn);
		slices++;
		if (slices == 2)
			put(fx, after, 1); /* B was written already: its removal stays journaled */
		/* whatever the moment, everyone reads the newest states */
		look(fx, fx->writer, 0, NULL, NULL, &all, &one);
		assert_string_equal(all.text, slices < 2 ? "A/r1=a2 B/r1=b1 C/r1=c1 D/r1=d1 "
							 : "A/r1=a2 C/r1=c1 D/r1=d1 ");
		look(fx, fx->reader, 1, NULL, NULL, &all, &one);
		assert_string_equal(all.text, slices < 2 ? "A/r1=a2 B/r1=b1 C/r1=c1 D/r1=d1 "
							 : "A/r1=a2 C/r1=c1 D/r1=d1 ");
	}
	assert_int_equal(slices, 3); /* one customer per slice: A, B, C */
	write_with(fx, end_fn);
	/* the first table went whole; what came after the begin is still journaled */
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG), 0);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG2), 3);
	assert_int_equal(alert_states_pending(fx->writer), 3);
	assert_non_null(stored(fx, "A\0r1", 4, buf, sizeof(buf)));
	assert_string_equal(buf, "a2"); /* the newest at its slice */
	assert_non_null(stored(fx, "B\0r1", 4, buf, sizeof(buf)));
	assert_string_equal(buf, "b1"); /* removed after its slice: journaled */
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 C/r1=c1 D/r1=d1 ");
	look(fx, fx->writer, 0, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 C/r1=c1 D/r1=d1 ");

	/* the next apply takes the rest, from the other table */
	assert_int_equal(alert_states_apply_begin(fx->writer), 0);
	while (alert_states_apply_more(fx->writer))
		write_with(fx, slice_fn);
	write_with(fx, end_fn);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG) + store_count(fx->st, DB_ALERT_LOG2), 0);
	assert_int_equal(alert_states_pending(fx->writer), 0);
	assert_null(stored(fx, "B\0r1", 4, buf, sizeof(buf)));
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 C/r1=c1 D/r1=d1 ");
	assert_int_equal(alert_states_pending(fx->reader), 0);
	/* and a crash now leaves nothing to recover */
	struct alert_states *again = alert_states_new();
	struct herr err;
	assert_int_equal(alert_states_recover(again, fx->st, &err), 0);
	assert_int_equal(alert_states_pending(again), 0);
	alert_states_free(again);
}

/* One customer's states as the reader shows them, its copy not synced first. */
static void one_unsynced(struct fx *fx, struct alert_states *as, const char *customer, struct seen *one)
{
	MDB_txn *txn;
	struct herr err;

	memset(one, 0, sizeof(*one));
	assert_int_equal(store_read_begin(fx->st, &txn, &err), 0);
	alert_states_customer(as, fx->st, txn, customer, strlen(customer), customer_one, one);
	store_read_end(txn);
}

static int catch_up(struct fx *fx, struct alert_states *as, size_t max, const char *customer)
{
	MDB_txn *txn;
	struct herr err;
	int rc;

	assert_int_equal(store_read_begin(fx->st, &txn, &err), 0);
	rc = customer ? alert_states_sync_customer(as, fx->st, txn, customer, strlen(customer), &err)
		      : alert_states_catch_up(as, fx->st, txn, max, &err);
	store_read_end(txn);
	return rc;
}

static void test_a_reader_catches_up_in_slices_or_one_customer_first(void **state)
{
	struct fx *fx = *state;
	const struct change first[] = { { "A", "r1", "a1" }, { "B", "r1", "b1" }, { "C", "r1", "c1" } };
	const struct change meanwhile[] = { { "D", "r1", "d1" }, { "A", "r1", "a2" }, { "C", "r1", NULL } };
	struct alert_states *as = alert_states_new();
	struct seen all, one;
	int calls = 0;

	put(fx, first, 3);
	assert_int_equal(alert_states_apply_begin(fx->writer), 0);
	put(fx, meanwhile, 3); /* the newer entries in the other table */
	/* one customer's entries, from both tables: the newest wins */
	assert_int_equal(catch_up(fx, as, 0, "A"), 0);
	one_unsynced(fx, as, "A", &one);
	assert_string_equal(one.text, "r1=a2 ");
	one_unsynced(fx, as, "B", &one);
	assert_string_equal(one.text, ""); /* not read yet */
	/* the rest two at a time, oldest first: A's older entry comes after its newer one and loses */
	while (catch_up(fx, as, 2, NULL) == 1)
		calls++;
	assert_int_equal(calls, 2); /* 6 entries: 2, 2, then 2 and the end */
	one_unsynced(fx, as, "A", &one);
	assert_string_equal(one.text, "r1=a2 ");
	look(fx, as, 0, NULL, "C", &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 D/r1=d1 ");
	assert_string_equal(one.text, "");
	/* the same as a reader that read everything at once */
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 D/r1=d1 ");
	alert_states_free(as);
}

static int in_place_a3_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct alert_states *as = vctx;

	(void)err;
	alert_states_put_in_place(as, w, "A", 1, "r1", "a3", 2); /* the writer let go of A's entry: in place */
	return w->rc ? -1 : 0;
}

/*
 * A reader lets go of what a flush has written a slice at a time, between
 * other work, not in one pass over every customer; meanwhile it passes its
 * stale entries over, even where DB_ALERTS has changed in place since.
 */
static void test_a_reader_lets_go_of_flushed_entries_in_slices(void **state)
{
	struct fx *fx = *state;
	enum { CUSTOMERS = 20000 };
	struct change *c = calloc(CUSTOMERS, sizeof(*c));
	char (*ids)[16] = calloc(CUSTOMERS, sizeof(*ids));
	struct seen one;
	int slices = 0;

	assert_non_null(c);
	assert_non_null(ids);
	for (size_t i = 0; i < CUSTOMERS; i++) {
		snprintf(ids[i], sizeof(ids[i]), i ? "C%05zu" : "A", i);
		c[i] = (struct change){ ids[i], "r1", i ? "on" : "a1" };
	}
	put(fx, c, CUSTOMERS);
	assert_int_equal(catch_up(fx, fx->reader, SIZE_MAX, NULL), 0);
	assert_int_equal(alert_states_pending(fx->reader), CUSTOMERS);
	apply(fx);
	write_with(fx, in_place_a3_fn);
	/* the first slice after the flush: most stale entries still held, none shown */
	assert_int_equal(catch_up(fx, fx->reader, 256, NULL), 1);
	assert_true(alert_states_pending(fx->reader) > 0);
	one_unsynced(fx, fx->reader, "A", &one);
	assert_string_equal(one.text, "r1=a3 ");
	one_unsynced(fx, fx->reader, "C00007", &one);
	assert_string_equal(one.text, "r1=on ");
	while (catch_up(fx, fx->reader, 256, NULL) == 1)
		slices++;
	assert_true(slices > 0);
	assert_int_equal(alert_states_pending(fx->reader), 0);
	one_unsynced(fx, fx->reader, "A", &one);
	assert_string_equal(one.text, "r1=a3 ");
	free(ids);
	free(c);
}

static void test_recovery_in_the_middle_of_an_apply(void **state)
{
	struct fx *fx = *state;
	const struct change first[] = { { "A", "r1", "a1" }, { "B", "r1", "b1" } };
	const struct change meanwhile[] = { { "A", "r1", "a2" }, { "C", "r1", "c1" } };
	struct alert_states *after;
	struct seen all, one;
	struct herr err;

	put(fx, first, 2);
	assert_int_equal(alert_states_apply_begin(fx->writer), 0);
	write_with(fx, slice_fn);       /* A, then the writer dies */
	put(fx, meanwhile, 2);
	assert_non_null(after = alert_states_new());
	assert_int_equal(alert_states_recover(after, fx->st, &err), 0);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG) + store_count(fx->st, DB_ALERT_LOG2), 0);
	look(fx, after, 0, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 C/r1=c1 ");
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 C/r1=c1 ");
	alert_states_free(after);
}

static int in_place_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct alert_states *as = vctx;

	(void)err;
	alert_states_put_in_place(as, w, "A", 1, "r1", "a2", 2); /* journaled: stays so */
	alert_states_put_in_place(as, w, "B", 1, "r1", "b1", 2); /* not: straight to DB_ALERTS */
	alert_states_put_in_place(as, w, "C", 1, "r1", NULL, 0);
	return w->rc ? -1 : 0;
}

static void test_in_place_unless_journaled(void **state)
{
	struct fx *fx = *state;
	const struct change first[] = { { "A", "r1", "a1" }, { "C", "r1", "c1" } };
	struct seen all, one;
	char buf[64];

	put(fx, first, 2);
	apply(fx);
	const struct change again[] = { { "A", "r1", "a1b" } };
	put(fx, again, 1);
	write_with(fx, in_place_fn);
	assert_int_equal(store_count(fx->st, DB_ALERT_LOG) + store_count(fx->st, DB_ALERT_LOG2), 2);
	assert_non_null(stored(fx, "B\0r1", 4, buf, sizeof(buf)));
	assert_string_equal(buf, "b1");
	assert_null(stored(fx, "C\0r1", 4, buf, sizeof(buf)));
	assert_non_null(stored(fx, "A\0r1", 4, buf, sizeof(buf)));
	assert_string_equal(buf, "a1"); /* the journal's a2 is newer, and read first */
	look(fx, fx->writer, 0, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 ");
	look(fx, fx->reader, 1, NULL, NULL, &all, &one);
	assert_string_equal(all.text, "A/r1=a2 B/r1=b1 ");
}

/* ---- the write watch ------------------------------------------------------------ */

static void note_all(struct write_watch *ww, const char *const *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		write_watch_note(ww, ids[i], strlen(ids[i]));
}

/*
 * One cursor reading customer after customer (alert_states_customer_at) reads
 * what a fresh seek for each reads: in key order, with customers that have no
 * states between, one whose id is another's prefix, the same customer twice,
 * backwards, past the last key, with journaled entries over stored ones.
 */
static void test_a_cursor_reads_customers_in_any_order(void **state)
{
	struct fx *fx = *state;
	static const struct change stored_states[] = {
		{ "A", "cooling", "a1" }, { "A", "silent", "a2" }, { "AB", "cooling", "ab" },
		{ "C", "cooling", "c1" },  { "E", "silent", "e1" }, { "E", "zz", "e2" },
	};
	static const struct change journaled[] = { { "C", "cooling", "c2" }, { "D", "silent", "d1" },
						   { "E", "silent", NULL } };
	static const char *const order[] = { "A", "AB", "AB", "B", "C", "C", "D", "E", "F", "A", "E", "0", "AB", "Z" };
	struct seen fresh, cursor;
	struct alert_cursor *ac;
	MDB_txn *txn;
	struct herr err;

	put(fx, stored_states, sizeof(stored_states) / sizeof(stored_states[0]));
	apply(fx);
	put(fx, journaled, sizeof(journaled) / sizeof(journaled[0]));
	assert_int_equal(store_read_begin(fx->st, &txn, &err), 0);
	assert_int_equal(alert_states_sync(fx->reader, fx->st, txn, &err), 0);
	assert_non_null(ac = alert_cursor_open(fx->st, txn, &err));
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		memset(&fresh, 0, sizeof(fresh));
		memset(&cursor, 0, sizeof(cursor));
		alert_states_customer(fx->reader, fx->st, txn, order[i], strlen(order[i]), customer_one, &fresh);
		alert_states_customer_at(fx->reader, ac, order[i], strlen(order[i]), customer_one, &cursor);
		if (strcmp(fresh.text, cursor.text) != 0)
			fail_msg("customer %s (read %zu): cursor '%s', fresh seek '%s'", order[i], i, cursor.text,
				 fresh.text);
	}
	/* the reads themselves: journal over store, a gone state left out */
	memset(&cursor, 0, sizeof(cursor));
	alert_states_customer_at(fx->reader, ac, "C", 1, customer_one, &cursor);
	assert_string_equal(cursor.text, "cooling=c2 ");
	memset(&cursor, 0, sizeof(cursor));
	alert_states_customer_at(fx->reader, ac, "E", 1, customer_one, &cursor);
	assert_string_equal(cursor.text, "zz=e2 ");
	alert_cursor_close(ac);
	store_read_end(txn);
}

static void test_watch_skips_ids_up_to_its_floor(void **state)
{
	static const char *const ids[] = { "c", "c4", "c5", "c50", "c6", "d" };
	struct strmap seen;
	struct write_watch ww = { .ids = &seen, .gen = 3 };

	(void)state;
	strmap_init(&seen);
	memcpy(ww.floor, "c5", 2);
	ww.floor_len = 2;
	note_all(&ww, ids, 6);
	/* in LMDB's order c < c4 < c5 < c50 < c6 < d: the first three are at most the floor */
	assert_null(strmap_get(&seen, "c", 1));
	assert_null(strmap_get(&seen, "c4", 2));
	assert_null(strmap_get(&seen, "c5", 2));
	assert_int_equal((uintptr_t)strmap_get(&seen, "c50", 3), 3);
	assert_int_equal((uintptr_t)strmap_get(&seen, "c6", 2), 3);
	assert_int_equal((uintptr_t)strmap_get(&seen, "d", 1), 3);
	/* no floor: every one */
	ww.floor_len = 0;
	ww.gen = 4;
	note_all(&ww, ids, 6);
	assert_int_equal(seen.count, 6);
	assert_int_equal((uintptr_t)strmap_get(&seen, "c", 1), 4);
	strmap_clear(&seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_changes_are_journaled_then_applied, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_newest_entry_wins_over_the_store, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_transaction_leaves_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_puts_after_an_apply_in_one_transaction_stay_journaled,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_recovery_applies_what_a_crash_left, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_an_apply_in_slices_keeps_what_changed_meanwhile, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_recovery_in_the_middle_of_an_apply, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_reader_catches_up_in_slices_or_one_customer_first, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_in_place_unless_journaled, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_reader_lets_go_of_flushed_entries_in_slices, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_watch_skips_ids_up_to_its_floor),
		cmocka_unit_test_setup_teardown(test_a_cursor_reads_customers_in_any_order, fx_setup, fx_teardown),
	};
	log_set_level(LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
