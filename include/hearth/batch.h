/*
 * One ingest request (PROTOCOL.md §3.2): a frame holding one event, a JSON array of
 * events, or JSON lines, parsed into candidate events and rejections, and the
 * reply that goes back once the accepted events are durable.
 */
#ifndef HEARTH_BATCH_H
#define HEARTH_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"
#include "hearth/event.h"

struct json_object;
struct json_tokener;

enum batch_status { BATCH_PENDING, BATCH_ACCEPTED, BATCH_DUPLICATE };

struct batch_event {
	struct event ev;
	uint32_t index;                 /* position in the request */
	uint8_t status;                 /* enum batch_status */
};

struct batch_reject {
	uint32_t index;
	enum herr_code code;
	char *message;
};

/*
 * The events' strings, copied out of each parsed value so that the value is
 * freed at once: a request's JSON trees never pile up, and malloc hands the
 * same chunks to the next event. Blocks never move, so the pointers hold.
 */
struct batch_block {
	struct batch_block *next;
	size_t used, cap;
	char data[];
};

struct batch {
	struct batch_block *blocks;     /* newest first */
	struct batch_event *events;
	size_t nevents, events_cap;
	struct batch_reject *rejects;
	size_t nrejects, rejects_cap;
	size_t accepted, duplicates;
	struct herr fail;               /* whole-batch failure (store_full, too_large) */
	uint8_t defer;                  /* part of a history load: evaluated when the load ends */
	uint8_t load_end;               /* the load ends after these events */
};

struct batch *batch_new(void);
void batch_free(struct batch *b);

/*
 * Parses a frame; tok is reused across calls. Whole-frame problems go to b->fail.
 * Besides events, a frame may be a load envelope, {"load": true, "events": [...]}
 * or {"load": "end"} (PROTOCOL.md, history loads).
 */
int batch_parse_frame(struct batch *b, struct json_tokener *tok, const char *data, size_t len,
		      int64_t now, int64_t max_future);
/* Takes events from an already parsed JSON array (control `ingest`); borrows arr. */
int batch_take_array(struct batch *b, struct json_object *arr, int64_t now, int64_t max_future);

/* The reply: {"ok":true,"accepted":..} or {"ok":false,"error":..}. Caller frees. */
struct json_object *batch_reply(const struct batch *b);
/* Tokener configured for ingest: strict JSON, UTF-8 validated. */
struct json_tokener *batch_tokener_new(void);

#endif
