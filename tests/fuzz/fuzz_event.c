/* libFuzzer: an ingest frame through the event parser and validator (PROTOCOL.md §2, §3.2). */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok;
	struct batch *b = batch_new();
	struct wbuf rec;

	if (!tok)
		tok = batch_tokener_new();
	if (!b || !tok)
		return 0;
	batch_parse_frame(b, tok, (const char *)data, size, 1763600000000LL, 3600000);
	wbuf_init(&rec);
	for (size_t i = 0; i < b->nevents; i++) {
		struct event back;
		struct herr err;
		wbuf_reset(&rec);
		/* what validation accepted must encode and decode to itself */
		if (event_encode(&b->events[i].ev, &rec, &err) == 0 &&
		    (event_decode(rec.data, rec.len, &back) < 0 || back.ts != b->events[i].ev.ts))
			__builtin_trap();
	}
	wbuf_free(&rec);
	json_object_put(batch_reply(b));
	batch_free(b);
	return 0;
}
