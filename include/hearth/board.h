/*
 * What one thread shows the others of its counters: a struct copied in and
 * out under a mutex this module owns. The writer posts its status (counts,
 * alerts, clock) after each loop turn and before the answers of what changes
 * it; the control thread posts its connection counters. A reader's copy may
 * be a loop turn old.
 */
#ifndef HEARTH_BOARD_H
#define HEARTH_BOARD_H

#include <stdint.h>

struct board;

/* The writer's, for `status` answered off the writer. */
struct board_status {
	uint64_t customers, events;
	uint64_t firing, pending, deferred, seq;
	int64_t last_tick;              /* TIME_NONE before the first */
	int64_t tick_ms;
	int reevaluating, load_ending;
	int64_t clock_offset_ms;        /* --test-clock: added to the wall clock */
	uint64_t map_size, used;
};

/* The control thread's, for `metrics` answered on the writer. */
struct board_control {
	uint64_t requests, errors, forbidden;
	uint64_t connections;
};

struct board *board_new(void);
void board_free(struct board *b);
void board_put_status(struct board *b, const struct board_status *s);
void board_get_status(struct board *b, struct board_status *out);
void board_put_control(struct board *b, const struct board_control *c);
void board_get_control(struct board *b, struct board_control *out);

#endif
