/*
 * The event loop: one thread around zmq_poll over ZeroMQ sockets and plain
 * descriptors (control connections, signalfd, timerfd), plus timers on the
 * monotonic clock (cf. Redis ae.c). Handlers must not block.
 */
#ifndef HEARTH_LOOP_H
#define HEARTH_LOOP_H

#include <stdint.h>

struct loop;

/* revents carries ZMQ_POLLIN / ZMQ_POLLOUT / ZMQ_POLLERR. */
typedef void (*loop_io_fn)(struct loop *loop, short revents, void *ctx);
typedef void (*loop_timer_fn)(struct loop *loop, void *ctx);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Watches a ZeroMQ socket (zsock) or a descriptor (fd, with zsock NULL). */
int loop_watch(struct loop *loop, void *zsock, int fd, short events, loop_io_fn fn, void *ctx);
int loop_set_events(struct loop *loop, void *zsock, int fd, short events);
void loop_unwatch(struct loop *loop, void *zsock, int fd);

/* One-shot timer at mono_now_ms() + after_ms; returns an id > 0. */
int loop_timer_add(struct loop *loop, int64_t after_ms, loop_timer_fn fn, void *ctx);
void loop_timer_cancel(struct loop *loop, int id);

/* A hook run before each poll; returns the longest wait it allows (ms, -1 any). */
typedef int64_t (*loop_prepare_fn)(struct loop *loop, void *ctx);
void loop_set_prepare(struct loop *loop, loop_prepare_fn fn, void *ctx);

/* Runs until loop_stop() (0) or loop_fail() (-1); -1 also if polling itself failed. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* For a handler that finds the daemon cannot go on: the loop ends, the process exits 1. */
void loop_fail(struct loop *loop);

#endif
