/*
 * The body of a notification (PROTOCOL.md §4.4): what subscribers get, what the
 * outbox stores and `replay` returns. Bodies are compared byte for byte, so
 * their members, order and escapes are fixed.
 */
#ifndef HEARTH_NOTIFICATION_H
#define HEARTH_NOTIFICATION_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/alert.h"

struct config_rule;
struct cust;
struct wbuf;

/*
 * Appends the body of a's notification of kind (its `seq`, sent at `now`) for
 * customer c under rule to out; out->failed if memory ran out. a->values_json
 * is embedded as is: it is the rule's values as just evaluated.
 */
void notification_body(const struct alert *a, const struct cust *c, const struct config_rule *rule,
		       enum notify_kind kind, uint64_t seq, int64_t now, struct wbuf *out);
/*
 * The same in two steps, for a thread that evaluates before the writer numbers
 * (the re-evaluation and tick workers): everything after the seq, then the
 * body from it. join(seq, rest(...)) is byte for byte notification_body.
 */
void notification_body_rest(const struct alert *a, const struct cust *c, const struct config_rule *rule,
			    enum notify_kind kind, int64_t now, struct wbuf *out);
void notification_body_join(uint64_t seq, const void *rest, size_t len, struct wbuf *out);

#endif
