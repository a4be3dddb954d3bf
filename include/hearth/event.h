/*
 * Events of PROTOCOL.md §2: validation of a parsed JSON value, the stored record, and
 * the JSON form for answers. One parser for every door (ZeroMQ ingest, the
 * control socket's `ingest`, recovery from the log).
 */
#ifndef HEARTH_EVENT_H
#define HEARTH_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct json_object;
struct wbuf;

#define EVENT_RECORD_VERSION 1

/* Strings are borrowed from the JSON value or the LMDB page they came from. */
struct event {
	int64_t ts;
	uint64_t seq;                   /* log position, set when stored */
	const char *customer;
	size_t customer_len;
	const char *type;
	size_t type_len;
	const char *id;                 /* NULL if absent */
	size_t id_len;
	const char *ref;                /* NULL if absent */
	size_t ref_len;
	const char *attrs_json;         /* compact JSON object text, NULL if absent */
	size_t attrs_len;
	struct json_object *attrs;      /* parsed attrs when they came from JSON, else NULL */
};

/*
 * Checks obj against PROTOCOL.md §2.2 and fills ev with pointers into obj. now and
 * max_future bound `ts`. On rejection returns -1 with err->code one of
 * HERR_BAD_JSON, HERR_BAD_FIELD, HERR_UNKNOWN_FIELD, HERR_TOO_LARGE,
 * HERR_TS_IN_FUTURE and a message naming the field.
 */
int event_from_json(struct json_object *obj, int64_t now, int64_t max_future,
		    struct event *ev, struct herr *err);

/* Bytes of the stored record; PROTOCOL.md §2.2 limits it to 8 KiB. */
size_t event_encoded_size(const struct event *ev);
/* Appends the log record of ev to out; HERR_TOO_LARGE past the 8 KiB of PROTOCOL.md §2.2. */
int event_encode(const struct event *ev, struct wbuf *out, struct herr *err);
/* Reads a log record; strings borrow from data. -1 if the record is damaged. */
int event_decode(const void *data, size_t len, struct event *ev);
/* The answer form: {"seq","id"?,"customer","ts","type","ref"?,"attrs"?}. */
struct json_object *event_to_json(const struct event *ev);

/* A time given as RFC 3339 text or integer unix ms (PROTOCOL.md §1.1). */
int time_from_json(struct json_object *v, int64_t *ms);
/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points past U+10FFFF. */
int utf8_is_valid(const char *s, size_t len);
/* The length of s without a UTF-8 sequence cut off at its end (after truncation). */
size_t utf8_cut(const char *s, size_t len);
/* 1..128 bytes, no control characters (PROTOCOL.md §1.4). */
int id_is_valid(const char *s, size_t len);

#endif
