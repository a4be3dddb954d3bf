/*
 * The reader's overlay (hearth/overlay.h): notes queued as they come, folded
 * in a slice at a time or one customer at a time when a read needs it, and
 * either way the same answers as folding everything in order.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/store.h"

struct fx {
	char dir[64];
	struct store *st;
	MDB_txn *txn;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct herr err = { 0 };

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/hearth-unit-XXXXXX");
	if (!mkdtemp(fx->dir) || !(fx->st = store_open(fx->dir, 1ULL << 20, 1ULL << 20, &err)) ||
	    store_read_begin(fx->st, &fx->txn, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	store_read_end(fx->txn);
	store_close(fx->st);
	nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

struct logged {
	uint64_t seq;
	const char *customer, *type;
	int64_t ts;
};

/* What the writer left in the store: log records, and a customer record (may be NULL). */
struct stored {
	const struct logged *log;
	size_t nlog;
	const struct cust *rec;
};

static int put_stored(struct wtxn *w, void *vctx, struct herr *err)
{
	const struct stored *s = vctx;
	struct wbuf b;

	wbuf_init(&b);
	for (size_t i = 0; i < s->nlog; i++) {
		const struct logged *l = &s->log[i];
		struct event ev = { .ts = l->ts, .seq = l->seq, .customer = l->customer,
				    .customer_len = strlen(l->customer), .type = l->type,
				    .type_len = strlen(l->type) };
		wbuf_reset(&b);
		if (event_encode(&ev, &b, err) < 0)
			break;
		wtxn_append_seq(w, DB_LOG, l->seq, b.data, b.len);
	}
	if (!err->code && s->rec) {
		wbuf_reset(&b);
		assert_int_equal(cust_encode(s->rec, NULL, &b), 0);
		wtxn_put(w, DB_CUSTOMERS, s->rec->id, s->rec->id_len, b.data, b.len, 0);
	}
	wbuf_free(&b);
	return err->code ? -1 : 0;
}

static void store_these(struct fx *fx, const struct stored *s)
{
	struct herr err = { 0 };

	assert_int_equal(store_write(fx->st, put_stored, (void *)s, &err), 0);
	store_read_end(fx->txn);
	assert_int_equal(store_read_begin(fx->st, &fx->txn, &err), 0);
}

/*
 * A note naming customers ids (one letter each); an UPDATE's records, sent
 * whole, say how many events each has and that they hold its event.
 */
static struct overlay_note *note(enum overlay_kind kind, uint64_t gen, const char *ids, uint64_t events)
{
	struct overlay_note *n = overlay_note_new(kind, gen);

	assert_non_null(n);
	for (const char *id = ids; *id; id++) {
		if (kind == OVERLAY_UPDATE) {
			struct cust *c = cust_new(id, 1);
			assert_non_null(c);
			c->events = events;
			c->applied_seq = events;
			assert_int_equal(cust_encode(c, NULL, overlay_note_records(n)), 0);
			cust_free(c);
		}
		ssize_t ci = overlay_note_cust(n, id, 1, kind == OVERLAY_UPDATE);
		assert_true(ci >= 0);
		if (kind == OVERLAY_UPDATE)
			assert_int_equal(overlay_note_event(n, (size_t)ci, 1000 + (int64_t)events, events, "t", 1), 0);
	}
	return n;
}

/* The events count of the customer as the overlay shows it; -1: none held, nor stored. */
static long long shown(struct fx *fx, struct overlay *ov, const char *id)
{
	struct herr err = { 0 };
	struct cust *c = overlay_customer(ov, fx->st, fx->txn, NULL, id, strlen(id), &err);
	long long events;

	if (!c) {
		assert_int_equal(err.code, HERR_NOT_FOUND);
		return -1;
	}
	events = (long long)c->events;
	cust_free(c);
	return events;
}

/* The log holds the seqs the story's records hold (C's too: its forget is told by a note). */
static void log_story(struct fx *fx)
{
	static const struct logged log[] = { { 1, "A", "t", 1001 }, { 2, "A", "t", 1002 }, { 3, "B", "t", 1003 } };

	store_these(fx, &(struct stored){ log, 3, NULL });
}

/* gen 1: A B C at 1 event; gen 2: A at 2; flushed up to gen 1: A B; gen 3: B at 3; C forgotten. */
static void queue_story(struct overlay *ov)
{
	overlay_queue(ov, note(OVERLAY_UPDATE, 1, "ABC", 1));
	overlay_queue(ov, note(OVERLAY_UPDATE, 2, "A", 2));
	overlay_queue(ov, note(OVERLAY_FLUSHED, 1, "AB", 0));
	overlay_queue(ov, note(OVERLAY_UPDATE, 3, "B", 3));
	overlay_queue(ov, note(OVERLAY_FORGET, 3, "C", 0));
}

static void check_story(struct fx *fx, struct overlay *ov)
{
	assert_int_equal(shown(fx, ov, "A"), 2);  /* newer than the flush: kept */
	assert_int_equal(shown(fx, ov, "B"), 3);  /* dropped by the flush, then updated again */
	assert_int_equal(shown(fx, ov, "C"), -1); /* forgotten (and not stored) */
	assert_int_equal(shown(fx, ov, "D"), -1);
}

static void test_reads_fold_their_customer_first(void **state)
{
	struct fx *fx = *state;
	struct overlay *ov = overlay_new();

	log_story(fx);
	queue_story(ov);
	assert_int_equal(overlay_count(ov), 0); /* nothing folded yet */
	check_story(fx, ov);
	/* the reads folded A, B and C in, out of turn; the rest is folded once, not twice */
	while (overlay_fold(ov, 1) == 1)
		;
	assert_int_equal(overlay_fold(ov, 1), 0);
	check_story(fx, ov);
	assert_int_equal(overlay_count(ov), 2);
	overlay_free(ov);
}

static void test_slices_give_the_same_answers(void **state)
{
	struct fx *fx = *state;
	struct overlay *ov = overlay_new();
	size_t slices = 0;

	log_story(fx);
	queue_story(ov);
	/* a read in the middle of a note's folding sees the whole of it */
	assert_int_equal(overlay_fold(ov, 2), 1);
	assert_int_equal(shown(fx, ov, "C"), -1);
	assert_int_equal(shown(fx, ov, "A"), 2);
	while (overlay_fold(ov, 2) == 1)
		slices++;
	assert_true(slices >= 2);
	check_story(fx, ov);
	overlay_free(ov);
}

static void test_an_unread_queue_is_freed(void **state)
{
	(void)state;
	struct overlay *ov = overlay_new();

	queue_story(ov); /* ASan reports the notes if overlay_free leaves them */
	overlay_free(ov);
}

static void test_a_customers_entries_follow_it(void **state)
{
	(void)state;
	struct overlay_note *n = overlay_note_new(OVERLAY_UPDATE, 1);
	struct cust *c = cust_new("A", 1);

	for (int i = 0; i < 2; i++) {
		assert_int_equal(cust_encode(c, NULL, overlay_note_records(n)), 0);
		assert_int_equal(overlay_note_cust(n, i ? "B" : "A", 1, 1), i);
	}
	assert_int_equal(overlay_note_event(n, 1, 5, 5, "t", 1), 0);
	assert_int_equal(overlay_note_event(n, 0, 5, 6, "t", 1), -1); /* not the last customer added */
	assert_int_equal(overlay_note_event(n, 2, 5, 6, "t", 1), -1);
	cust_free(c);
	overlay_note_free(n);
}

/* ---- updates without records: the reader folds the log's events itself ---- */

/* An append's note: the customer's logged events, no record. */
static struct overlay_note *append_note(uint64_t gen, const struct logged *log, size_t n)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_UPDATE, gen);

	assert_non_null(note);
	for (size_t i = 0; i < n; i++) {
		ssize_t ci = overlay_note_cust(note, log[i].customer, strlen(log[i].customer), 0);
		assert_true(ci >= 0);
		assert_int_equal(overlay_note_event(note, (size_t)ci, log[i].ts, log[i].seq, log[i].type,
						    strlen(log[i].type)), 0);
	}
	return note;
}

static void test_appends_are_folded_from_the_log_over_the_stored_record(void **state)
{
	struct fx *fx = *state;
	static const struct logged log[] = {
		{ 1, "A", "touch", 1000 }, { 2, "A", "order", 2000 }, { 3, "A", "touch", 3000 },
		{ 4, "N", "touch", 4000 },
	};
	struct cust *a = cust_new("A", 1), *c;
	struct overlay *ov = overlay_new();
	struct herr err = { 0 };

	/* A was flushed after its first event: the store's record holds seq 1 */
	assert_int_equal(cust_apply(a, &(struct event){ .ts = 1000, .seq = 1, .customer = "A", .customer_len = 1,
							 .type = "touch", .type_len = 5 }, NULL), 0);
	store_these(fx, &(struct stored){ log, 4, a });
	overlay_queue(ov, append_note(1, &log[0], 1));
	overlay_queue(ov, append_note(2, &log[1], 3));
	c = overlay_customer(ov, fx->st, fx->txn, NULL, "A", 1, &err);
	assert_non_null(c);
	assert_int_equal(c->events, 3); /* seq 1 once, from the record */
	assert_int_equal(c->applied_seq, 3);
	assert_int_equal(c->last_seen, 3000);
	assert_int_equal(cust_type(c, "touch")->count, 2);
	cust_free(c);
	c = overlay_customer(ov, fx->st, fx->txn, NULL, "N", 1, &err); /* not stored yet */
	assert_non_null(c);
	assert_int_equal(c->events, 1);
	assert_int_equal(c->first_seen, 4000);
	cust_free(c);
	/* once flushed (seq 1-3 stored), the stored record is the one shown, not folded twice */
	assert_int_equal(cust_apply(a, &(struct event){ .ts = 2000, .seq = 2, .customer = "A", .customer_len = 1,
							 .type = "order", .type_len = 5 }, NULL), 0);
	assert_int_equal(cust_apply(a, &(struct event){ .ts = 3000, .seq = 3, .customer = "A", .customer_len = 1,
							 .type = "touch", .type_len = 5 }, NULL), 0);
	store_these(fx, &(struct stored){ NULL, 0, a });
	c = overlay_customer(ov, fx->st, fx->txn, NULL, "A", 1, &err);
	assert_non_null(c);
	assert_int_equal(c->events, 3);
	cust_free(c);
	cust_free(a);
	overlay_free(ov);
}

/*
 * A complaint older than the newest case event came last: the writer replays
 * the cases in time order, and so must the reader. Opened at 1500 and 2000,
 * closed at 3000 (the oldest): one case open, since 2000. Skipping the late
 * one leaves none open; applying it as it comes leaves the one of 1500.
 */
static void test_a_late_case_event_replays_the_cases(void **state)
{
	struct fx *fx = *state;
	static const struct logged log[] = {
		{ 10, "L", "complaint", 2000 }, { 11, "L", "resolved", 3000 }, { 12, "L", "complaint", 1500 },
	};
	struct config_case cc = { .name = "complaint", .open = "complaint", .close = "resolved" };
	struct config cfg = { .cases = &cc, .ncases = 1 };
	struct overlay *ov = overlay_new();
	struct herr err = { 0 };
	struct cust *c;

	store_these(fx, &(struct stored){ log, 3, NULL });
	overlay_queue(ov, append_note(1, &log[0], 2));
	overlay_queue(ov, append_note(2, &log[2], 1));
	c = overlay_customer(ov, fx->st, fx->txn, &cfg, "L", 1, &err);
	assert_non_null(c);
	assert_int_equal(c->ncases, 1);
	assert_int_equal(c->cases[0].opened, 2000);
	assert_int_equal(c->cases[0].closed, TIME_NONE);
	cust_free(c);
	overlay_free(ov);
}

static int del_log(struct wtxn *w, void *vctx, struct herr *err)
{
	const struct stored *s = vctx;
	uint8_t key[8];

	(void)err;
	for (size_t i = 0; i < s->nlog; i++) {
		be64_put(key, s->log[i].seq);
		wtxn_del(w, DB_LOG, key, 8);
	}
	return 0;
}

static int count_event(const struct event *ev, void *ctx)
{
	(void)ev;
	++*(int *)ctx;
	return 0;
}

static int count_cust(const struct cust *c, void *ctx)
{
	(void)c;
	++*(int *)ctx;
	return 0;
}

/*
 * A forget committed before its note reaches the reader: the reader's snapshot
 * has neither the customer's record nor its log records, the overlay still
 * names its events. Reads answer as the snapshot says (no customer; no events;
 * not listed) instead of failing on the missing log records, and a customer
 * made again by new events shows those alone.
 */
static void test_a_forget_not_told_yet_reads_as_gone(void **state)
{
	struct fx *fx = *state;
	static const struct logged log[] = { { 20, "F", "touch", 1000 }, { 21, "F", "order", 2000 },
					     { 22, "F", "touch", 3000 } };
	struct timeline_query q = { .customer = "F", .customer_len = 1, .since = INT64_MIN, .until = INT64_MAX,
				    .limit = 100 };
	struct overlay *ov = overlay_new();
	struct herr err = { 0 };
	struct cust *c;
	int n = 0, more = 0;

	store_these(fx, &(struct stored){ log, 2, NULL });
	overlay_queue(ov, append_note(1, &log[0], 2));
	assert_int_equal(shown(fx, ov, "F"), 2);
	assert_int_equal(store_write(fx->st, del_log, &(struct stored){ log, 2, NULL }, &err), 0);
	store_read_end(fx->txn);
	assert_int_equal(store_read_begin(fx->st, &fx->txn, &err), 0);
	assert_int_equal(shown(fx, ov, "F"), -1);
	assert_int_equal(overlay_query(ov, fx->st, fx->txn, &q, count_event, &n, &more, &err), 0);
	assert_int_equal(n, 0);
	n = 0;
	assert_int_equal(overlay_customers(ov, fx->st, fx->txn, NULL, NULL, 0, 100, count_cust, &n, &more, &err), 0);
	assert_int_equal(n, 0);
	/* made again by a new event: that one alone */
	store_these(fx, &(struct stored){ &log[2], 1, NULL });
	overlay_queue(ov, append_note(2, &log[2], 1));
	c = overlay_customer(ov, fx->st, fx->txn, NULL, "F", 1, &err);
	assert_non_null(c);
	assert_int_equal(c->events, 1);
	assert_int_equal(c->first_seen, 3000);
	cust_free(c);
	n = 0;
	assert_int_equal(overlay_query(ov, fx->st, fx->txn, &q, count_event, &n, &more, &err), 0);
	assert_int_equal(n, 1);
	overlay_free(ov);
}

/* The same for a customer the writer sent whole (a start, cases rebuilt) and never stored. */
static void test_a_record_sent_whole_then_forgotten_reads_as_gone(void **state)
{
	struct fx *fx = *state;
	static const struct logged log[] = { { 5, "S", "t", 1005 } };
	struct overlay *ov = overlay_new();
	struct herr err = { 0 };

	store_these(fx, &(struct stored){ log, 1, NULL });
	overlay_queue(ov, note(OVERLAY_UPDATE, 1, "S", 5)); /* holds seq 5 */
	assert_int_equal(shown(fx, ov, "S"), 5);
	assert_int_equal(store_write(fx->st, del_log, &(struct stored){ log, 1, NULL }, &err), 0);
	store_read_end(fx->txn);
	assert_int_equal(store_read_begin(fx->st, &fx->txn, &err), 0);
	assert_int_equal(shown(fx, ov, "S"), -1);
	overlay_free(ov);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_fold_their_customer_first, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_slices_give_the_same_answers, fx_setup, fx_teardown),
		cmocka_unit_test(test_an_unread_queue_is_freed),
		cmocka_unit_test(test_a_customers_entries_follow_it),
		cmocka_unit_test_setup_teardown(test_appends_are_folded_from_the_log_over_the_stored_record,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_late_case_event_replays_the_cases, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_forget_not_told_yet_reads_as_gone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_record_sent_whole_then_forgotten_reads_as_gone, fx_setup,
						fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
