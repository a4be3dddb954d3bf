/*
 * loop.h: handlers of ready descriptors (control connections, signals) run
 * before those of ready ZeroMQ sockets (ingest), so that a query never waits
 * for more than the ingest group in hand; timers run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/loop.h"

struct order {
	char seen[8];
	size_t n;
	int want;                       /* handlers to see before stopping */
	struct loop *loop;
};

static void note(struct order *o, char who)
{
	o->seen[o->n++] = who;
	if ((int)o->n == o->want)
		loop_stop(o->loop);
}

static void on_socket(struct loop *loop, short revents, void *ctx)
{
	(void)loop, (void)revents;
	note(ctx, 'z');
}

static void on_fd(struct loop *loop, short revents, void *ctx)
{
	(void)loop, (void)revents;
	note(ctx, 'f');
}

static void on_timer(struct loop *loop, void *ctx)
{
	(void)loop;
	note(ctx, 't');
}

static void test_descriptors_before_sockets(void **state)
{
	void *zctx = zmq_ctx_new(), *a = zmq_socket(zctx, ZMQ_PAIR), *b = zmq_socket(zctx, ZMQ_PAIR);
	struct order o = { .want = 2 };
	int pipefd[2], linger = 0;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	zmq_setsockopt(a, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(b, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_bind(a, "inproc://loop-order"), 0);
	assert_int_equal(zmq_connect(b, "inproc://loop-order"), 0);
	assert_int_equal(zmq_send(b, "x", 1, 0), 1);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	o.loop = loop_new();
	assert_non_null(o.loop);
	/* the socket is watched first: registration order must not decide */
	assert_int_equal(loop_watch(o.loop, a, -1, ZMQ_POLLIN, on_socket, &o), 0);
	assert_int_equal(loop_watch(o.loop, NULL, pipefd[0], ZMQ_POLLIN, on_fd, &o), 0);
	assert_int_equal(loop_run(o.loop), 0);
	assert_int_equal(o.n, 2);
	assert_memory_equal(o.seen, "fz", 2);
	loop_free(o.loop);
	close(pipefd[0]);
	close(pipefd[1]);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(zctx);
}

static void test_timer_fires(void **state)
{
	struct order o = { .want = 1 };

	(void)state;
	o.loop = loop_new();
	assert_non_null(o.loop);
	assert_true(loop_timer_add(o.loop, 5, on_timer, &o) > 0);
	assert_int_equal(loop_run(o.loop), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seen[0], 't');
	loop_free(o.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptors_before_sockets),
		cmocka_unit_test(test_timer_fires),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
