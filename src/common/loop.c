/*
 * zmq_poll-based event loop. Watches live in one array so a poll call needs no
 * rebuilding unless watches change; timers are few (heartbeat, tick, flush),
 * so a linear scan for the nearest is the simplest correct choice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/units.h"

struct watch {
	loop_io_fn fn;
	void *ctx;
};

struct timer {
	int id;
	int64_t due_ms;
	loop_timer_fn fn;
	void *ctx;
};

struct loop {
	zmq_pollitem_t *items;
	struct watch *watches;
	size_t n, cap;
	int changed;                    /* a watch was removed during dispatch */
	struct timer *timers;
	size_t ntimers, timers_cap;
	int next_timer_id;
	loop_prepare_fn prepare;
	void *prepare_ctx;
	int running;
	int failed;                     /* loop_fail: loop_run returns -1 */
};

struct loop *loop_new(void)
{
	return calloc(1, sizeof(struct loop));
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	free(loop->items);
	free(loop->watches);
	free(loop->timers);
	free(loop);
}

static size_t find_watch(struct loop *loop, void *zsock, int fd)
{
	for (size_t i = 0; i < loop->n; i++)
		if (zsock ? loop->items[i].socket == zsock : (!loop->items[i].socket && loop->items[i].fd == fd))
			return i;
	return loop->n;
}

int loop_watch(struct loop *loop, void *zsock, int fd, short events, loop_io_fn fn, void *ctx)
{
	if (loop->n == loop->cap) {
		size_t cap = loop->cap ? loop->cap * 2 : 16;
		zmq_pollitem_t *items = realloc(loop->items, cap * sizeof(*items));
		if (!items)
			return -1;
		loop->items = items;
		struct watch *watches = realloc(loop->watches, cap * sizeof(*watches));
		if (!watches)
			return -1;
		loop->watches = watches;
		loop->cap = cap;
	}
	loop->items[loop->n] = (zmq_pollitem_t){ .socket = zsock, .fd = fd, .events = events };
	loop->watches[loop->n] = (struct watch){ fn, ctx };
	loop->n++;
	return 0;
}

int loop_set_events(struct loop *loop, void *zsock, int fd, short events)
{
	size_t i = find_watch(loop, zsock, fd);

	if (i == loop->n)
		return -1;
	loop->items[i].events = events;
	return 0;
}

void loop_unwatch(struct loop *loop, void *zsock, int fd)
{
	size_t i = find_watch(loop, zsock, fd);

	if (i == loop->n)
		return;
	loop->n--;
	loop->items[i] = loop->items[loop->n];
	loop->watches[i] = loop->watches[loop->n];
	loop->changed = 1;
}

int loop_timer_add(struct loop *loop, int64_t after_ms, loop_timer_fn fn, void *ctx)
{
	if (loop->ntimers == loop->timers_cap) {
		size_t cap = loop->timers_cap ? loop->timers_cap * 2 : 8;
		struct timer *timers = realloc(loop->timers, cap * sizeof(*timers));
		if (!timers)
			return -1;
		loop->timers = timers;
		loop->timers_cap = cap;
	}
	int id = ++loop->next_timer_id;
	loop->timers[loop->ntimers++] = (struct timer){ id, mono_now_ms() + after_ms, fn, ctx };
	return id;
}

void loop_timer_cancel(struct loop *loop, int id)
{
	for (size_t i = 0; i < loop->ntimers; i++)
		if (loop->timers[i].id == id) {
			loop->timers[i] = loop->timers[--loop->ntimers];
			return;
		}
}

void loop_set_prepare(struct loop *loop, loop_prepare_fn fn, void *ctx)
{
	loop->prepare = fn;
	loop->prepare_ctx = ctx;
}

static int64_t next_timeout(struct loop *loop)
{
	int64_t now = mono_now_ms(), wait = -1;

	for (size_t i = 0; i < loop->ntimers; i++) {
		int64_t left = loop->timers[i].due_ms - now;
		if (left < 0)
			left = 0;
		if (wait < 0 || left < wait)
			wait = left;
	}
	if (loop->prepare) {
		int64_t limit = loop->prepare(loop, loop->prepare_ctx);
		if (limit >= 0 && (wait < 0 || limit < wait))
			wait = limit;
	}
	return wait;
}

static void run_timers(struct loop *loop)
{
	int64_t now = mono_now_ms();

	for (size_t i = 0; i < loop->ntimers;) {
		if (loop->timers[i].due_ms > now) {
			i++;
			continue;
		}
		struct timer t = loop->timers[i];
		loop->timers[i] = loop->timers[--loop->ntimers];
		t.fn(loop, t.ctx); /* may add timers: the array may move */
	}
}

int loop_run(struct loop *loop)
{
	loop->running = 1;
	while (loop->running) {
		int64_t wait = next_timeout(loop);
		int rc = zmq_poll(loop->items, (int)loop->n, (long)wait);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_error("loop, zmq_poll failed (%s)", zmq_strerror(errno));
			return -1;
		}
		loop->changed = 0;
		/*
		 * Descriptors (control connections, signals) before ZeroMQ sockets:
		 * an ingest group can take a while, and a query that came in beside
		 * it should not wait for the next one too.
		 */
		for (int pass = 0; rc > 0 && pass < 2 && !loop->changed; pass++)
			for (size_t i = 0; i < loop->n && loop->running; i++) {
				short revents = loop->items[i].revents;
				if (!revents || (loop->items[i].socket != NULL) != pass)
					continue;
				loop->items[i].revents = 0;
				struct watch w = loop->watches[i];
				w.fn(loop, revents, w.ctx);
				if (loop->changed) /* the array was reordered: poll again */
					break;
			}
		run_timers(loop);
	}
	return loop->failed ? -1 : 0;
}

void loop_stop(struct loop *loop)
{
	loop->running = 0;
}

void loop_fail(struct loop *loop)
{
	loop->failed = 1;
	loop->running = 0;
}
