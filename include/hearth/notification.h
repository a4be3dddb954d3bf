/*
 * The body of a notification (PROTOCOL.md §4.4): what subscribers get, what the
 * outbox stores and `replay` returns. Bodies are compared byte for byte, so
 * their members, order and escapes are fixed.
 */
#ifndef HEARTH_NOTIFICATION_H
#define HEARTH_NOTIFICATION_H

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

#endif
