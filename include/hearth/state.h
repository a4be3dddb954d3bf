/*
 * A customer's derived state, kept up to date as events are stored so that
 * answering `customer` or evaluating a rule never rescans a whole timeline:
 * profile, first/last seen, the latest time and a short history per event type,
 * and the open cases. Stored as one binary record per customer.
 */
#ifndef HEARTH_STATE_H
#define HEARTH_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/limits.h"

struct config;
struct event;
struct json_object;
struct wbuf;
struct type_names;

#define STATE_RECORD_VERSION 5      /* 4: type names as text; 3: fixed-width times and counts; 2: profile as JSON text; all still read */
#define STATE_RECENT 13         /* newest times kept per type: 12 gaps for gap() */
#define TIME_NONE INT64_MIN

struct type_stat {
	char type[HEARTH_NAME_MAX + 1];
	uint8_t type_len;               /* kept: the writer encodes and compares types per event */
	uint32_t hash;                  /* type_name_hash(type): most lookups end on it */
	int64_t last;
	uint64_t count;
	uint8_t nrecent;
	int64_t recent[STATE_RECENT];   /* ascending */
};

struct open_case {
	char name[HEARTH_NAME_MAX + 1];
	char ref[HEARTH_ID_MAX + 1];    /* "" when the opening event had none */
	uint8_t name_len, ref_len;
	int64_t opened;
	int64_t due;                    /* TIME_NONE if no deadline */
	int64_t closed;                 /* TIME_NONE: open; else a close that came before its open */
};

/*
 * One profile key: its value and the time of the event that set it. A key a
 * profile event set to null stays, absent, so that an older event cannot
 * bring its value back.
 */
enum profile_kind { PROFILE_ABSENT, PROFILE_STRING, PROFILE_INT, PROFILE_DOUBLE, PROFILE_BOOL };

struct profile_field {
	char key[HEARTH_NAME_MAX + 1];
	uint8_t key_len;
	uint8_t kind;                   /* enum profile_kind */
	int64_t ts;
	union {
		int64_t i;
		double d;
		int b;
	} v;
	char *str;                      /* PROFILE_STRING, owned, NUL-terminated */
	size_t str_len;
};

#define STATE_EARLY_CLOSES 8    /* closes remembered while their open has not arrived */

struct cust {
	char id[HEARTH_ID_MAX + 1];
	size_t id_len;
	int64_t first_seen, last_seen;
	uint64_t events;
	uint64_t applied_seq;           /* newest log seq folded in: replay skips older */
	int64_t deadline;               /* next moment a rule can change by time alone */
	struct profile_field *profile;  /* owned; in the order keys first appeared */
	size_t nprofile, profile_cap;
	struct type_stat *types;
	size_t ntypes, types_cap;
	struct open_case *cases;
	size_t ncases, cases_cap;
	/*
	 * Not stored: what the writer remembers between two evaluations of a
	 * customer it holds (engine/step.c), so that an event re-evaluates only the
	 * rules it can change. `changed`: what folds changed since the last one, as
	 * cust_changed_bit()s; quiet_until[i]: rule i's condition did not hold at
	 * quiet_at and cannot before that moment without such a change (TIME_NONE:
	 * not known), under the ruleset of generation quiet_gen (0: none).
	 * heads: under the same generation, the customer's alerts that are pending
	 * or firing, as far as a step that changes nothing reads them; every other
	 * rule's alert is inactive or resolved. A step that changes nothing then
	 * skips reading the stored states.
	 */
	uint64_t changed;
	int64_t *quiet_until;
	size_t nquiet;
	uint64_t quiet_gen;
	int64_t quiet_at;
	struct alert_head *heads;
	size_t nheads, heads_cap;
};

/* A pending or firing alert as a customer's memo keeps it (engine/step.c). */
struct alert_head {
	uint32_t rule;                  /* its index in the ruleset */
	uint8_t state;                  /* ALERT_PENDING or ALERT_FIRING */
	uint8_t acked;
	int64_t at;                     /* pending: since; firing: last_notified */
};

/* What a fold changes, as bits a rule's terms are tested against: a type's by its hash. */
#define CUST_CHANGED_FIRST_SEEN (1ULL << 63)
#define CUST_CHANGED_ALL        UINT64_MAX
static inline uint64_t cust_changed_bit(uint32_t type_hash)
{
	return 1ULL << (type_hash % 63);
}

struct cust *cust_new(const char *id, size_t len);
void cust_free(struct cust *c);
/* Reads a stored record; NULL if damaged or out of memory. */
/*
 * types: the store's type numbers (store_type_names), which name types in a
 * record in a byte; encoding hands out new ones (the writer's). NULL: names
 * spelled out, and a record that uses numbers does not decode.
 */
struct cust *cust_decode(const char *id, size_t id_len, const void *data, size_t len,
			 const struct type_names *types);
/*
 * The same into c, which keeps its arrays for the next: a thread that reads
 * one customer after another decodes without allocating. -1 as NULL above
 * (c then holds no customer).
 */
int cust_decode_into(struct cust *c, const char *id, size_t id_len, const void *data, size_t len,
		     const struct type_names *types);
int cust_encode(const struct cust *c, struct type_names *types, struct wbuf *out);

/*
 * Folds one stored event into c. Everything but cases is order-independent;
 * cases follow the order events come in, which is time order unless a case
 * event arrives older than the newest one seen (cust_case_event_is_late):
 * then the caller applies it with skip_cases and rebuilds the cases from the
 * timeline in time order (cust_cases_reset + cust_apply_case_event).
 */
int cust_apply(struct cust *c, const struct event *ev, const struct config *cfg);
int cust_apply_ex(struct cust *c, const struct event *ev, const struct config *cfg, int skip_cases);
int cust_case_event_is_late(const struct cust *c, const struct event *ev, const struct config *cfg);
void cust_cases_reset(struct cust *c);
int cust_apply_case_event(struct cust *c, const struct event *ev, const struct config *cfg);

const struct type_stat *cust_type(const struct cust *c, const char *type);
/* The same with the type's hash worked out once, where the type is known ahead (a compiled rule). */
const struct type_stat *cust_type_hashed(const struct cust *c, const char *type, uint32_t hash);
uint32_t type_name_hash(const char *type, size_t len);
/* A present profile key, or NULL. */
const struct profile_field *cust_profile_get(const struct cust *c, const char *key);
/* A present profile key's text when it is a string, else NULL. */
const char *cust_profile_string(const struct cust *c, const char *key);
/* The profile key's value as JSON (a new reference). */
struct json_object *profile_field_json(const struct profile_field *f);
/* The profile as a JSON object of its present keys. */
struct json_object *cust_profile_json(const struct cust *c);
/* The `customer` answer body (PROTOCOL.md §5.9) without alerts and score. */
struct json_object *cust_to_json(const struct cust *c);
/* A short row for listings: id, name, owner, tier, last_seen, events. */
struct json_object *cust_row_json(const struct cust *c);

#endif
