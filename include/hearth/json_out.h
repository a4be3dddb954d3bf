/*
 * JSON text written straight into a wbuf, for hearth's own output where
 * building a json-c tree only to serialize and free it would cost a malloc per
 * value. The bytes are json-c's JSON_C_TO_STRING_PLAIN form (no spaces; the
 * same escapes, number and double forms), so text written here and text
 * json-c wrote can be compared and mixed: notification bodies are stored,
 * replayed and compared byte for byte.
 *
 * Objects only, no arrays: what the callers need. A key writes the comma that
 * separates it from the previous member, so callers track no state.
 */
#ifndef HEARTH_JSON_OUT_H
#define HEARTH_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

struct wbuf;

struct json_out {
	struct wbuf *b;
	/* json-c's default writes '/' as "\/"; JSON_C_TO_STRING_NOSLASHESCAPE does not */
	int escape_slash;
};

void json_out_open(struct json_out *o);
void json_out_close(struct json_out *o);
/* A member's key (NUL-terminated, as json-c keys are); its value follows. */
void json_out_key(struct json_out *o, const char *key);
void json_out_str(struct json_out *o, const char *s, size_t len);
void json_out_cstr(struct json_out *o, const char *s);
void json_out_int64(struct json_out *o, int64_t v);
/* "%.17g", ".0" added to a whole number; NaN, Infinity, -Infinity as json-c writes them */
void json_out_double(struct json_out *o, double v);
void json_out_bool(struct json_out *o, int v);
void json_out_null(struct json_out *o);
/*
 * A value already serialized with '/' escaped (json-c's default, how alert
 * values are stored), embedded as is; without escape_slash its "\/" escapes
 * become '/', which is what serializing its tree here would have written.
 */
void json_out_raw(struct json_out *o, const char *text, size_t len);

#endif
