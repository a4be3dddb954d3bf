/*
 * Parsing an ingest request into candidate events. Which form a frame holds is
 * decided by its first value: '[' means an array; a single value that spans the
 * whole frame is one event; anything after the first value means JSON lines,
 * each line an event on its own, so one bad line rejects only itself.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/limits.h"

struct batch *batch_new(void)
{
	return calloc(1, sizeof(struct batch));
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	while (b->blocks) {
		struct batch_block *next = b->blocks->next;
		free(b->blocks);
		b->blocks = next;
	}
	for (size_t i = 0; i < b->nrejects; i++)
		free(b->rejects[i].message);
	free(b->rejects);
	free(b->events);
	free(b);
}

#define BLOCK_MIN (64 * 1024)

/* A copy of s[0..len) (NUL-terminated) in the batch's blocks; NULL when out of memory. */
static const char *keep_string(struct batch *b, const char *s, size_t len)
{
	struct batch_block *blk = b->blocks;

	if (!blk || blk->cap - blk->used < len + 1) {
		size_t cap = len + 1 > BLOCK_MIN ? len + 1 : BLOCK_MIN;
		if (!(blk = malloc(sizeof(*blk) + cap)))
			return NULL;
		blk->next = b->blocks;
		blk->used = 0;
		blk->cap = cap;
		b->blocks = blk;
	}
	char *out = blk->data + blk->used;
	memcpy(out, s, len);
	out[len] = '\0';
	blk->used += len + 1;
	return out;
}

/* Moves what ev borrows from its JSON value into the batch. */
static int keep_event(struct batch *b, struct event *ev)
{
	ev->attrs = NULL;
	if (!(ev->customer = keep_string(b, ev->customer, ev->customer_len)) ||
	    !(ev->type = keep_string(b, ev->type, ev->type_len)) ||
	    (ev->id && !(ev->id = keep_string(b, ev->id, ev->id_len))) ||
	    (ev->ref && !(ev->ref = keep_string(b, ev->ref, ev->ref_len))) ||
	    (ev->attrs_json && !(ev->attrs_json = keep_string(b, ev->attrs_json, ev->attrs_len))))
		return herr_set(&b->fail, HERR_NOMEM, "out of memory");
	return 0;
}

static int reject(struct batch *b, uint32_t index, enum herr_code code, const char *message)
{
	if (array_reserve((void **)&b->rejects, &b->rejects_cap, b->nrejects + 1, sizeof(*b->rejects)) < 0)
		return herr_set(&b->fail, HERR_NOMEM, "out of memory");
	struct batch_reject *r = &b->rejects[b->nrejects];
	r->index = index;
	r->code = code;
	r->message = strdup(message);
	if (!r->message)
		return herr_set(&b->fail, HERR_NOMEM, "out of memory");
	b->nrejects++;
	return 0;
}

static int count_event(struct batch *b)
{
	if (b->nevents + b->nrejects >= HEARTH_BATCH_EVENTS)
		return herr_set(&b->fail, HERR_TOO_LARGE, "more than %d events in one request",
				HEARTH_BATCH_EVENTS);
	return 0;
}

/* Validates one value at index; it becomes a candidate or a rejection. */
static int take_value(struct batch *b, struct json_object *value, uint32_t index, int64_t now,
		      int64_t max_future)
{
	struct herr err = { 0 };
	struct batch_event *be;

	if (count_event(b) < 0)
		return -1;
	if (array_reserve((void **)&b->events, &b->events_cap, b->nevents + 1, sizeof(*b->events)) < 0)
		return herr_set(&b->fail, HERR_NOMEM, "out of memory");
	be = &b->events[b->nevents];
	if (event_from_json(value, now, max_future, &be->ev, &err) < 0)
		return reject(b, index, err.code, err.msg);
	if (keep_event(b, &be->ev) < 0)
		return -1;
	be->index = index;
	be->status = BATCH_PENDING;
	b->nevents++;
	return 0;
}

static void parse_error(char *buf, size_t size, struct json_tokener *tok)
{
	snprintf(buf, size, "not valid JSON: %s at byte %zu",
		 json_tokener_error_desc(json_tokener_get_error(tok)),
		 json_tokener_get_parse_end(tok));
}

/* Parses exactly one JSON value spanning data[0..len); NULL with msg on failure. */
static struct json_object *parse_one(struct json_tokener *tok, const char *data, size_t len,
				     size_t *consumed, char *msg, size_t msg_size)
{
	struct json_object *value;

	json_tokener_reset(tok);
	value = json_tokener_parse_ex(tok, data, (int)len);
	if (!value && json_tokener_get_error(tok) == json_tokener_continue) {
		/* json-c waits for more input after a bare number; a final call ends it */
		value = json_tokener_parse_ex(tok, "", 1);
		if (!value)
			snprintf(msg, msg_size, "not valid JSON: unexpected end of input");
		*consumed = len;
		return value;
	}
	if (!value) {
		parse_error(msg, msg_size, tok);
		return NULL;
	}
	*consumed = json_tokener_get_parse_end(tok);
	return value;
}

static int only_space(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

int batch_take_array(struct batch *b, struct json_object *arr, int64_t now, int64_t max_future)
{
	size_t n = json_object_array_length(arr);

	if (n > HEARTH_BATCH_EVENTS)
		return herr_set(&b->fail, HERR_TOO_LARGE, "more than %d events in one request",
				HEARTH_BATCH_EVENTS);
	for (size_t i = 0; i < n; i++)
		if (take_value(b, json_object_array_get_idx(arr, i), (uint32_t)i, now, max_future) < 0)
			return -1;
	return 0;
}

static int parse_lines(struct batch *b, struct json_tokener *tok, const char *data, size_t len,
		       int64_t now, int64_t max_future)
{
	const char *p = data, *end = data + len;
	uint32_t index = 0;
	char msg[200];

	for (; p < end; index++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line_len = (size_t)((nl ? nl : end) - p), consumed = 0;
		if (!only_space(p, line_len)) {
			struct json_object *value = parse_one(tok, p, line_len, &consumed, msg, sizeof(msg));
			if (value && !only_space(p + consumed, line_len - consumed)) {
				json_object_put(value);
				value = NULL;
				snprintf(msg, sizeof(msg), "not valid JSON: text after the event at byte %zu",
					 consumed);
			}
			if (!value) {
				if (count_event(b) < 0 || reject(b, index, HERR_BAD_JSON, msg) < 0)
					return -1;
			} else {
				int rc = take_value(b, value, index, now, max_future);
				json_object_put(value);
				if (rc < 0)
					return -1;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/* {"load": true | "end", "events": [...]}: events of a history load, or its end. */
static int take_envelope(struct batch *b, struct json_object *env, int64_t now, int64_t max_future)
{
	struct json_object *load = NULL, *events = NULL;

	json_object_object_foreach(env, key, val) {
		if (strcmp(key, "load") == 0)
			load = val;
		else if (strcmp(key, "events") == 0)
			events = val;
		else
			return herr_set(&b->fail, HERR_BAD_REQUEST, "%.40s: unknown field of a load envelope", key);
	}
	if (json_object_is_type(load, json_type_string) && strcmp(json_object_get_string(load), "end") == 0)
		b->load_end = 1;
	else if (!json_object_is_type(load, json_type_boolean))
		return herr_set(&b->fail, HERR_BAD_REQUEST, "load: must be true, false or \"end\"");
	b->defer = b->load_end || json_object_get_boolean(load);
	if (!events)
		return b->load_end ? 0 : herr_set(&b->fail, HERR_BAD_REQUEST, "events: required, an array of events");
	if (!json_object_is_type(events, json_type_array))
		return herr_set(&b->fail, HERR_BAD_REQUEST, "events: must be an array of events");
	return batch_take_array(b, events, now, max_future);
}

int batch_parse_frame(struct batch *b, struct json_tokener *tok, const char *data, size_t len,
		      int64_t now, int64_t max_future)
{
	struct json_object *load;
	struct json_object *value;
	size_t consumed = 0;
	char msg[200];

	if (len > HEARTH_BATCH_BYTES)
		return herr_set(&b->fail, HERR_TOO_LARGE, "request larger than %u bytes",
				HEARTH_BATCH_BYTES);
	value = parse_one(tok, data, len, &consumed, msg, sizeof(msg));
	if (value && only_space(data + consumed, len - consumed)) {
		int rc = json_object_is_type(value, json_type_array)
				 ? batch_take_array(b, value, now, max_future)
			 : json_object_object_get_ex(value, "load", &load)
				 ? take_envelope(b, value, now, max_future)
				 : take_value(b, value, 0, now, max_future);
		json_object_put(value);
		return rc;
	}
	json_object_put(value);
	if (!memchr(data, '\n', len))
		return reject(b, 0, HERR_BAD_JSON, value ? "not valid JSON: text after the event" : msg);
	return parse_lines(b, tok, data, len, now, max_future);
}

struct json_object *batch_reply(const struct batch *b)
{
	struct json_object *reply = json_object_new_object(), *rejected;

	if (!reply)
		return NULL;
	if (b->fail.code != HERR_OK) {
		struct json_object *error = json_object_new_object();
		json_object_object_add(reply, "ok", json_object_new_boolean(0));
		json_object_object_add(error, "code", json_object_new_string(herr_name(b->fail.code)));
		json_object_object_add(error, "message", json_object_new_string(b->fail.msg));
		json_object_object_add(reply, "error", error);
		return reply;
	}
	json_object_object_add(reply, "ok", json_object_new_boolean(1));
	json_object_object_add(reply, "accepted", json_object_new_int64((int64_t)b->accepted));
	json_object_object_add(reply, "duplicates", json_object_new_int64((int64_t)b->duplicates));
	rejected = json_object_new_array_ext((int)b->nrejects);
	for (size_t i = 0; i < b->nrejects; i++) {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "index", json_object_new_int64(b->rejects[i].index));
		json_object_object_add(r, "code", json_object_new_string(herr_name(b->rejects[i].code)));
		json_object_object_add(r, "message", json_object_new_string(b->rejects[i].message));
		json_object_array_add(rejected, r);
	}
	json_object_object_add(reply, "rejected", rejected);
	return reply;
}

struct json_tokener *batch_tokener_new(void)
{
	struct json_tokener *tok = json_tokener_new_ex(64);

	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return tok;
}
