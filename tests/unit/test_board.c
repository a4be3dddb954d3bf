/*
 * board.h: what the writer shows the control thread of its counters. A reader
 * copying while the writer posts must get one whole post, never fields of two
 * (a `status` whose firing count belongs to another moment than its seq), and
 * never an older post than one it already saw. Run by `make tsan` too, where
 * a missing lock is a report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "hearth/board.h"

#define POSTS 20000

struct run {
	struct board *b;
	atomic_int done;
};

static void fill(struct board_status *s, uint64_t n)
{
	*s = (struct board_status){
		.customers = n, .events = n, .firing = n, .pending = n, .deferred = n, .seq = n,
		.last_tick = (int64_t)n, .tick_ms = (int64_t)n, .clock_offset_ms = (int64_t)n,
		.map_size = n, .used = n,
	};
}

/* Every field of one post: compared one by one, padding is no field. */
static void assert_whole(const struct board_status *s, uint64_t n)
{
	assert_int_equal(s->customers, n);
	assert_int_equal(s->events, n);
	assert_int_equal(s->firing, n);
	assert_int_equal(s->pending, n);
	assert_int_equal(s->deferred, n);
	assert_int_equal(s->last_tick, (int64_t)n);
	assert_int_equal(s->tick_ms, (int64_t)n);
	assert_int_equal(s->clock_offset_ms, (int64_t)n);
	assert_int_equal(s->map_size, n);
	assert_int_equal(s->used, n);
}

static void *writer(void *arg)
{
	struct run *r = arg;
	struct board_status s;

	for (uint64_t n = 1; n <= POSTS; n++) {
		fill(&s, n);
		board_put_status(r->b, &s);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

static void test_a_reader_sees_whole_posts_in_order(void **state)
{
	struct run r = { .b = board_new() };
	struct board_status s;
	uint64_t last = 0;
	pthread_t t;
	int finished;

	(void)state;
	assert_non_null(r.b);
	assert_int_equal(pthread_create(&t, NULL, writer, &r), 0);
	do {
		finished = atomic_load(&r.done);
		board_get_status(r.b, &s);
		if (s.seq == 0)
			continue;       /* nothing posted yet */
		assert_whole(&s, s.seq);
		assert_true(s.seq >= last);
		last = s.seq;
	} while (!finished);
	assert_int_equal(pthread_join(t, NULL), 0);
	board_get_status(r.b, &s);
	assert_int_equal(s.seq, POSTS);
	board_free(r.b);
}

static void test_control_counters_round_trip(void **state)
{
	struct board *b = board_new();
	struct board_control in = { .requests = 7, .errors = 2, .forbidden = 1, .connections = 3 }, out = { 0 };

	(void)state;
	assert_non_null(b);
	board_put_control(b, &in);
	board_get_control(b, &out);
	assert_int_equal(out.requests, 7);
	assert_int_equal(out.errors, 2);
	assert_int_equal(out.forbidden, 1);
	assert_int_equal(out.connections, 3);
	board_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_reader_sees_whole_posts_in_order),
		cmocka_unit_test(test_control_counters_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
