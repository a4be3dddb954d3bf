/*
 * What one thread shows the others of its counters: a struct copied in and
 * out under a mutex this module owns. The writer posts its status (counts,
 * alerts, clock) after each loop turn and before the answers of what changes
 * it; the control thread posts its connection counters. A reader's copy may
 * be a loop turn old. The writer also posts what `metrics`, `rules` and
 * `silence.list` read of its state: its counters with the status, its rules'
 * last errors and its silences only when they changed.
 */
#ifndef HEARTH_BOARD_H
#define HEARTH_BOARD_H

#include <stddef.h>
#include <stdint.h>

struct board;
struct metrics_writer;
struct ruleset;
struct silence;
struct wbuf;

/* The writer's, for `status` answered off the writer. */
struct board_status {
	uint64_t customers, events;
	uint64_t firing, pending, deferred, seq;
	int64_t last_tick;              /* TIME_NONE before the first */
	int64_t tick_ms;
	int reevaluating, load_ending;
	uint64_t reeval_workers, reeval_by_workers, ingest_by_workers, ingest_by_seat;
	int64_t clock_offset_ms;        /* --test-clock: added to the wall clock */
	uint64_t map_size, used;
};

/* The control thread's, for `metrics`. */
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

/* The writer's counters, and text rendered on the writer to follow them (the cluster's). */
int board_put_metrics(struct board *b, const struct metrics_writer *m, const void *extra, size_t len);
/* extra: the posted text is appended to it. */
void board_get_metrics(struct board *b, struct metrics_writer *out, struct wbuf *extra);

/* The last error of each rule of rs that has one; -1 out of memory (the previous post stays). */
int board_put_rule_errors(struct board *b, const struct ruleset *rs);
/* The posted last error of the rule named so into out (size bytes): 1, or 0 if none. */
int board_get_rule_error(struct board *b, const char *rule, char *out, size_t size);

/* A copy of the silences; -1 out of memory (the previous post stays). */
int board_put_silences(struct board *b, const struct silence *s, size_t n);
/* A copy for the caller to free (*out NULL when none); -1 out of memory. */
int board_get_silences(struct board *b, struct silence **out, size_t *n);

#endif
