/*
 * Evaluating compiled expressions against one customer at one moment. Besides
 * the value, evaluation reports the next moment at which the value can change
 * without a new event (a `since(T) > 30d` crossing, an event leaving a count
 * window, a due time passing), which is what the deadline index stores: a
 * tick then only visits customers whose deadline has come.
 */
#ifndef HEARTH_EVAL_H
#define HEARTH_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/expr.h"

struct config;
struct cust;
struct json_object;

#define EVAL_NEVER INT64_MAX

/*
 * Counts and sums events of the given types with from < ts <= to, for windows
 * that the customer's state cannot answer alone. *oldest is the earliest
 * matching ts (EVAL_NEVER if none). Returns 0 or -1.
 */
typedef int (*eval_scan_fn)(void *ctx, const struct cust *c, const char *const *types,
			    size_t ntypes, const char *attr, int64_t from, int64_t to,
			    double *total, int64_t *oldest);

struct eval_env {
	const struct cust *c;
	int64_t now;
	eval_scan_fn scan;              /* NULL: windows beyond the state give null */
	void *scan_ctx;
	char error[160];                /* the first runtime problem, if any */
};

/* Evaluates e; *next_change (> now, or EVAL_NEVER) may be NULL. */
int expr_eval(const struct expr *e, struct eval_env *env, struct value *out, int64_t *next_change);
int node_eval_value(const struct node *n, struct eval_env *env, struct value *out);

int value_truthy(const struct value *v);
/* JSON form: durations as integer ms, times as RFC 3339 text (PROTOCOL.md §1). */
struct json_object *value_to_json(const struct value *v);
/* Text for templates: durations human-readable, times RFC 3339, null as "-". */
void value_format(const struct value *v, char *buf, size_t size);

#endif
