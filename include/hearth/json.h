/*
 * JSON text that is not NUL-terminated (LMDB values, ZeroMQ frames, lines in a
 * buffer) parsed by its length. Copying such text to the stack first would let
 * stored data or a request size the stack, and a loop of such copies outgrow it.
 */
#ifndef HEARTH_JSON_H
#define HEARTH_JSON_H

#include <stddef.h>

#include "hearth/err.h"

struct json_object;
struct json_tokener;

/*
 * Exactly one JSON value spanning text[0..len) (trailing white space allowed),
 * or NULL with a bad_json message in err (err may be NULL). tok is reset here,
 * so one tokener serves a whole loop.
 */
struct json_object *json_parse_whole(struct json_tokener *tok, const char *text, size_t len,
				     struct herr *err);

/*
 * The same with the calling thread's own tokener (made on first use, freed
 * when the thread ends), for a parse without one at hand; NULL if not JSON.
 */
struct json_object *json_parse_once(const char *text, size_t len);

/* 1 when p[0..len) is only JSON white space (space, tab, CR, LF). */
int json_only_space(const char *p, size_t len);

#endif
