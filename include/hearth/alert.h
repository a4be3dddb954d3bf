/*
 * Alert lifecycle per (rule, customer) (PROTOCOL.md §4.1): pending while a rule's `for`
 * runs, firing, resolved; `repeat` while firing unless acknowledged. States
 * live in LMDB under customer 0x00 rule, so a restart neither re-fires nor
 * forgets. A customer with no record has every rule inactive.
 */
#ifndef HEARTH_ALERT_H
#define HEARTH_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/limits.h"
#include "hearth/store.h"

struct json_object;
struct wbuf;

enum alert_state { ALERT_INACTIVE, ALERT_PENDING, ALERT_FIRING, ALERT_RESOLVED };
const char *alert_state_name(enum alert_state s);
int alert_state_parse(const char *name);

#define ALERT_RECORD_VERSION 3     /* 2: fixed-width times; 1 lacks active_since and values_at; both still read */

struct alert {
	char rule[HEARTH_NAME_MAX + 1];
	enum alert_state state;
	int64_t since;                  /* pending: when it began; firing: when it fired */
	int64_t last_notified;
	int64_t resolved_at;
	int64_t active_since;           /* firing: when the condition began to hold; 0 unknown */
	int64_t values_at;              /* the moment summary and values were computed (its last notification); 0 unknown */
	int acked;
	char acked_by[64];
	char summary[512];              /* as last notified */
	char *values_json;              /* owned; terms as last evaluated */
};

enum notify_kind { NOTIFY_NONE, NOTIFY_FIRING, NOTIFY_REPEAT, NOTIFY_RESOLVED };
const char *notify_kind_name(enum notify_kind k);

/*
 * One step of the lifecycle at `now` for a rule whose condition is `holds`.
 * Updates a; returns what to notify. *wake is when the next step is due
 * (pending → firing, the next repeat), or INT64_MAX.
 */
enum notify_kind alert_step(struct alert *a, int holds, int64_t now, int64_t for_ms,
			    int64_t repeat_ms, int64_t *wake);

int alert_encode(const struct alert *a, struct wbuf *out);
int alert_decode(const void *data, size_t len, struct alert *a);
void alert_clear(struct alert *a);
/* Back to inactive, as if never stepped, the rule's name kept. */
void alert_reset(struct alert *a);

/* The `alerts` answer form of one alert. */
struct json_object *alert_to_json(const struct alert *a, const char *customer, size_t clen,
				  const char *severity);

#endif
