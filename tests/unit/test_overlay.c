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

/* A note naming customers ids (one letter each); an UPDATE's records say how many events each has. */
static struct overlay_note *note(enum overlay_kind kind, uint64_t gen, const char *ids, uint64_t events)
{
	struct overlay_note *n = overlay_note_new(kind, gen);

	assert_non_null(n);
	for (const char *id = ids; *id; id++) {
		if (kind == OVERLAY_UPDATE) {
			struct cust *c = cust_new(id, 1);
			assert_non_null(c);
			c->events = events;
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
	struct cust *c = overlay_customer(ov, fx->st, fx->txn, id, strlen(id), &err);
	long long events;

	if (!c) {
		assert_int_equal(err.code, HERR_NOT_FOUND);
		return -1;
	}
	events = (long long)c->events;
	cust_free(c);
	return events;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_fold_their_customer_first, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_slices_give_the_same_answers, fx_setup, fx_teardown),
		cmocka_unit_test(test_an_unread_queue_is_freed),
		cmocka_unit_test(test_a_customers_entries_follow_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
